//! Foundry's `cast` (the real binary from the repository's npm tooling) against
//! a running devchain: block number, balance, send (signed and unlocked),
//! deploy, call, receipt, and the registry's logs decoded.

mod common;

use std::path::Path;
use std::process::Command;

use common::{ADDR0, ADDR1, KEY0};
use serde_json::Value;

/// Runs `cast SUBCOMMAND --rpc-url RPC ARGS...`.
fn cast(bin: &Path, rpc: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(bin)
        .arg(args[0])
        .args(["--rpc-url", rpc])
        .args(&args[1..])
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "cast {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?.trim().to_string())
}

/// Runs a cast command expected to report an error; returns everything it printed.
fn cast_err(bin: &Path, rpc: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(bin)
        .arg(args[0])
        .args(["--rpc-url", rpc])
        .args(&args[1..])
        .output()?;
    Ok(format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    ))
}

/// Runs a cast subcommand that needs no node.
fn offline(bin: &Path, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(bin).args(args).output()?;
    anyhow::ensure!(
        out.status.success(),
        "cast {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?.trim().to_string())
}

fn registry_bytecode() -> anyhow::Result<String> {
    let path = common::repo_root().join("contracts/artifacts/OperatorRegistry.json");
    let artifact: Value = serde_json::from_slice(&std::fs::read(path)?)?;
    Ok(artifact["bytecode"]["object"]
        .as_str()
        .unwrap_or_default()
        .to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cast_against_the_devchain() -> anyhow::Result<()> {
    let Some(bin) = common::tool("cast") else {
        return Ok(());
    };
    let (_dc, server) = common::start().await?;
    let rpc = server.url();
    // cast blocks; run it off the runtime's worker threads.
    tokio::task::spawn_blocking(move || run(&bin, &rpc)).await?
}

fn run(bin: &Path, rpc: &str) -> anyhow::Result<()> {
    assert_eq!(cast(bin, rpc, &["chain-id"])?, "31337");
    assert_eq!(cast(bin, rpc, &["block-number"])?, "0");
    assert_eq!(
        cast(bin, rpc, &["balance", ADDR1])?,
        "10000000000000000000000"
    );

    // A signed transfer and an unlocked one (eth_sendTransaction).
    let r: Value = serde_json::from_str(&cast(
        bin,
        rpc,
        &[
            "send",
            "--private-key",
            KEY0,
            ADDR1,
            "--value",
            "1ether",
            "--json",
        ],
    )?)?;
    assert_eq!(r["status"], "0x1");
    let r: Value = serde_json::from_str(&cast(
        bin,
        rpc,
        &[
            "send",
            "--unlocked",
            "--from",
            ADDR0,
            ADDR1,
            "--value",
            "2ether",
            "--json",
        ],
    )?)?;
    assert_eq!(r["status"], "0x1");
    assert_eq!(
        cast(bin, rpc, &["balance", ADDR1])?,
        "10003000000000000000000"
    );
    assert_eq!(cast(bin, rpc, &["block-number"])?, "2");
    assert_eq!(cast(bin, rpc, &["nonce", ADDR0])?, "2");

    // Deploy the registry and register an operator with stake.
    let code = registry_bytecode()?;
    let r: Value = serde_json::from_str(&cast(
        bin,
        rpc,
        &[
            "send",
            "--private-key",
            KEY0,
            "--json",
            "--create",
            &code,
            "constructor(uint64,uint96)",
            "3600",
            "1000000000000000000",
        ],
    )?)?;
    let registry = r["contractAddress"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(registry.starts_with("0x"), "{r}");
    assert_eq!(
        cast(bin, rpc, &["call", &registry, "minStake()(uint96)"])?,
        "1000000000000000000 [1e18]"
    );
    let reg_sig = "register(bytes,(uint32,uint32,uint32,uint32,uint32))";
    let r: Value = serde_json::from_str(&cast(
        bin,
        rpc,
        &[
            "send",
            "--private-key",
            KEY0,
            "--json",
            &registry,
            reg_sig,
            "0x1234",
            "(1,2,3,4,0)",
            "--value",
            "2ether",
        ],
    )?)?;
    assert_eq!(r["status"], "0x1");
    let tx = r["transactionHash"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_eq!(
        cast(
            bin,
            rpc,
            &["call", &registry, "isRegistered(address)(bool)", ADDR0]
        )?,
        "true"
    );

    // The receipt, and the registry's Staked log found and decoded.
    let receipt: Value = serde_json::from_str(&cast(bin, rpc, &["receipt", &tx, "--json"])?)?;
    assert_eq!(receipt["blockNumber"], "0x4");
    let status = cast(bin, rpc, &["receipt", &tx, "status"])?;
    assert!(status == "true" || status == "1 (success)", "{status}");
    let logs: Value = serde_json::from_str(&cast(
        bin,
        rpc,
        &[
            "logs",
            "--json",
            "--from-block",
            "0",
            "--address",
            &registry,
            "Staked(address indexed,uint96,uint96)",
        ],
    )?)?;
    let logs = logs.as_array().cloned().unwrap_or_default();
    assert_eq!(logs.len(), 1, "{logs:?}");
    let topic1 = logs[0]["topics"][1]
        .as_str()
        .unwrap_or_default()
        .to_lowercase();
    assert!(topic1.ends_with(&ADDR0[2..].to_lowercase()), "{topic1}");
    let data = logs[0]["data"].as_str().unwrap_or_default();
    let decoded = offline(bin, &["decode-abi", "--input", "f(uint96,uint96)", data])?;
    assert!(decoded.contains("2000000000000000000"), "{decoded}");

    // A reverting call reports the revert with its custom-error data.
    let err = cast_err(
        bin,
        rpc,
        &[
            "call",
            "--from",
            ADDR0,
            &registry,
            reg_sig,
            "0x1234",
            "(1,2,3,4,0)",
            "--value",
            "2ether",
        ],
    )?;
    assert!(err.contains("execution reverted"), "{err}");
    // The error selector of OperatorRegistry__AlreadyRegistered(address) is in the data.
    let selector = offline(
        bin,
        &["sig", "OperatorRegistry__AlreadyRegistered(address)"],
    )?;
    assert!(err.contains(&selector[2..]), "{err} lacks {selector}");
    Ok(())
}
