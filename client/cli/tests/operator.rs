//! An operator registers, stakes, unstakes and withdraws after the unbonding period,
//! against a devstack's chain.

mod common;

use common::{Devstack, fails, json, ok};

#[test]
fn operator_stake_unstake_withdraw() {
    let stack = Devstack::start(&["--nodes", "1"]);
    let dir = tempfile::tempdir().expect("temp dir");
    let keys = dir.path().join("keys");
    // A fresh operator key, funded by the devstack's creator account.
    let created = json(&ok(stack
        .shoal()
        .args(["wallet", "new", "op", "--json", "--keystore-dir"])
        .arg(&keys)
        .env("SHOAL_PASSWORD", "pw")));
    let op = created["address"].as_str().expect("address").to_owned();
    let as_op = || {
        let mut c = stack.shoal();
        c.env_remove("SHOAL_PRIVATE_KEY")
            .env("SHOAL_PASSWORD", "pw")
            .args(["--account", "op", "--keystore-dir"])
            .arg(&keys);
        c
    };

    // Without funds, registering says so.
    let err = fails(as_op().args(["operator", "register", "--stake", "2ether"]));
    assert!(err.contains("fund it"), "{err}");
    ok(stack.shoal().args(["wallet", "send", &op, "5ether"]));
    let bal = json(&ok(stack
        .shoal()
        .args(["wallet", "balance", &op, "--json"])));
    assert_eq!(bal["wei"], "5000000000000000000");

    // Not registered yet: staking explains what to do.
    let err = fails(as_op().args(["operator", "stake", "1ether"]));
    assert!(err.contains("register first"), "{err}");
    // Below the registry minimum (1 ETH on a devstack).
    let err = fails(as_op().args(["operator", "register", "--stake", "0.5ether"]));
    assert!(err.contains("below the registry's minimum"), "{err}");

    ok(as_op().args([
        "operator",
        "register",
        "--stake",
        "1ether",
        "--peer-id",
        "test-peer",
    ]));
    ok(as_op().args(["operator", "stake", "1ether"]));
    let s = json(&ok(as_op().args(["operator", "status", "--json"])));
    assert_eq!(s["registered"], true);
    assert_eq!(s["stake"], "2000000000000000000");
    assert_eq!(s["free"], "2000000000000000000");
    assert_eq!(s["peerId"], "test-peer");

    let err = fails(as_op().args(["operator", "unstake", "3ether"]));
    assert!(err.contains("free stake"), "{err}");
    ok(as_op().args(["operator", "unstake", "1.5ether"]));
    let s = json(&ok(as_op().args(["operator", "status", "--json"])));
    assert_eq!(s["pendingWithdrawal"], "1500000000000000000");
    assert_eq!(s["stake"], "500000000000000000");
    assert_eq!(s["withdrawable"], false);
    let err = fails(as_op().args(["operator", "withdraw"]));
    assert!(err.contains("still unbonding"), "{err}");

    // Past the 7-day unbonding period on the chain's clock.
    stack.rpc("evm_increaseTime", serde_json::json!([7 * 24 * 3600 + 10]));
    stack.rpc("evm_mine", serde_json::json!([]));
    let before = json(&ok(stack
        .shoal()
        .args(["wallet", "balance", &op, "--json"])));
    ok(as_op().args(["operator", "withdraw"]));
    let s = json(&ok(as_op().args(["operator", "status", "--json"])));
    assert_eq!(s["pendingWithdrawal"], "0");
    let after = json(&ok(stack
        .shoal()
        .args(["wallet", "balance", &op, "--json"])));
    let (b, a): (u128, u128) = (
        before["wei"]
            .as_str()
            .and_then(|v| v.parse().ok())
            .expect("wei"),
        after["wei"]
            .as_str()
            .and_then(|v| v.parse().ok())
            .expect("wei"),
    );
    assert!(
        a > b + 1_400_000_000_000_000_000,
        "withdrawal did not arrive: {b} -> {a}"
    );
    let err = fails(as_op().args(["operator", "withdraw"]));
    assert!(err.contains("no pending withdrawal"), "{err}");
}
