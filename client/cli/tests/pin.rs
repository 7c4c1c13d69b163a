//! `shoal pin` through the real binary against `shoal devstack --nodes 3`: add with a
//! replication factor and wait for the copies, list, per-node status, remove, and the errors
//! for too few nodes, unmet or malformed constraints and a CID outside the pinset.

mod common;

use std::time::{Duration, Instant};

use common::{Devstack, fails, json, ok};

#[test]
fn pin_add_ls_status_rm() {
    let stack = Devstack::start(&["--nodes", "3"]);
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("data.bin");
    std::fs::write(&file, vec![42u8; 2 * 1024 * 1024 + 5]).expect("write");
    let cid = common::stdout(&ok(stack.shoal().args(["content", "add"]).arg(&file)))
        .trim()
        .to_owned();

    // The nodes know each other once their first heartbeats arrive.
    let deadline = Instant::now() + Duration::from_secs(60);
    let added = loop {
        let out = stack
            .shoal()
            .args([
                "pin",
                "add",
                &cid,
                "--replication-min",
                "2",
                "--replication-max",
                "3",
            ])
            .args(["--name", "data", "--wait", "--timeout", "60", "--json"])
            .output()
            .expect("run shoal pin add");
        if out.status.success() {
            break json(&out);
        }
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            err.contains("nodes to hold it") && Instant::now() < deadline,
            "pin add failed: {err}"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(added["cid"], cid.as_str());
    assert_eq!(added["name"], "data");
    assert!(
        added["pinnedCopies"].as_u64().unwrap_or(0) >= 2,
        "{added:#}"
    );
    assert_eq!(added["allocations"].as_array().map(Vec::len), Some(3));

    let ls = json(&ok(stack.shoal().args(["pin", "ls", "--json"])));
    assert!(
        ls.as_array()
            .is_some_and(|a| a.iter().any(|p| p["cid"] == cid.as_str())),
        "{ls:#}"
    );
    let human = common::stdout(&ok(stack.shoal().args(["pin", "ls"])));
    assert!(human.contains(&cid) && human.contains("2-3"), "{human}");

    let st = json(&ok(stack.shoal().args(["pin", "status", &cid, "--json"])));
    let pinned = st["peers"]
        .as_array()
        .map(|p| p.iter().filter(|p| p["state"] == "pinned").count())
        .unwrap_or(0);
    assert!(pinned >= 2, "{st:#}");

    let err = fails(stack.shoal().args([
        "pin",
        "add",
        &cid,
        "--replication-min",
        "5",
        "--replication-max",
        "5",
    ]));
    assert!(err.contains("at least 5 nodes"), "{err}");

    // No node has the label: nobody may hold it.
    let err = fails(
        stack
            .shoal()
            .args(["pin", "add", &cid, "--constraint", "region=nowhere"]),
    );
    assert!(err.contains("at least 2 nodes"), "{err}");
    let err = fails(
        stack
            .shoal()
            .args(["pin", "add", &cid, "--constraint", "no operator"]),
    );
    assert!(err.contains("constraint `no operator`"), "{err}");

    let rm = json(&ok(stack.shoal().args(["pin", "rm", &cid, "--json"])));
    assert_eq!(rm["removed"], true);
    assert_eq!(rm["summary"], "removed");
    let ls = json(&ok(stack.shoal().args(["pin", "ls", "--json"])));
    assert_eq!(ls.as_array().map(Vec::len), Some(0), "{ls:#}");
    let err = fails(stack.shoal().args(["pin", "rm", &cid]));
    assert!(err.contains("not in the pinset"), "{err}");
    let err = fails(stack.shoal().args(["pin", "status", "not-a-cid"]));
    assert!(err.contains("not a CID"), "{err}");
}
