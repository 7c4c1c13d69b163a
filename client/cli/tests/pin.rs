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
    let node = stack.var("SHOAL_NODE");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, body) = common::http(&format!("{node}/api/v1/pinning/peers"), None);
        let live = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| {
                v.as_array()
                    .map(|a| a.iter().filter(|p| p["live"] == true).count())
            });
        if live == Some(3) {
            break;
        }
        assert!(Instant::now() < deadline, "no 3 live members: {body}");
        std::thread::sleep(Duration::from_millis(250));
    }
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
    // Malformed requests get a JSON error with a hint, like the rest of the API.
    for (url, body) in [
        (format!("{node}/api/v1/pins"), Some("{\"cid\": 5}")),
        (format!("{node}/api/v1/pins"), Some("not json")),
        (format!("{node}/api/v1/pins?removed=maybe"), None),
    ] {
        let (status, text) = common::http(&url, body);
        assert_eq!(status, 400, "{url}: {text}");
        assert!(text.contains("\"hint\""), "{url}: {text}");
    }
}

/// A node joins the pinning swarm with `shoal serve --bootstrap`, takes its share of a pin,
/// and leaves with `shoal node leave`: it waits for the copies elsewhere, then `shoal serve`
/// exits 0.
#[test]
fn a_node_joins_with_bootstrap_and_leaves_with_node_leave() {
    let stack = Devstack::start(&["--nodes", "2"]);
    let node0 = stack.var("SHOAL_NODE");
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("node.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = \"{}\"\n\n[bid]\nenabled = false\n\n[pinning]\nheartbeat_interval_ms = 500\n",
            dir.path().join("data").display()
        ),
    )
    .expect("write config");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let (_, peers) = common::http(&format!("{node0}/api/v1/peers"), None);
    let peers: serde_json::Value = serde_json::from_str(&peers).expect("peers JSON");
    let bootstrap = peers["listen"]
        .as_array()
        .and_then(|a| {
            a.iter()
                .filter_map(|v| v.as_str())
                .find(|a| a.contains("/tcp/"))
        })
        .expect("node 0 listens on TCP")
        .to_owned();
    let mut child = common::shoal()
        .args(["serve", "--config"])
        .arg(&config)
        .args([
            "--bootstrap",
            &bootstrap,
            "--p2p-listen",
            "/ip4/127.0.0.1/tcp/0",
        ])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--chain-rpc", &stack.var("SHOAL_RPC_URL")])
        .args(["--deployment-file", &stack.var("SHOAL_DEPLOYMENT")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start shoal serve");
    let url = format!("http://127.0.0.1:{port}");

    // Node 0 hears the newcomer's heartbeats: three live members.
    let start = Instant::now();
    loop {
        let (status, body) = common::http(&format!("{node0}/api/v1/pinning/peers"), None);
        let live = serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| {
                v.as_array()
                    .map(|a| a.iter().filter(|p| p["live"] == true).count())
            });
        if status == 200 && live == Some(3) {
            break;
        }
        if let Ok(Some(s)) = child.try_wait() {
            panic!("shoal serve exited: {s}");
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no 3 live members: {body}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }

    // rf 3 on three nodes: the newcomer must hold a copy.
    let file = dir.path().join("data.bin");
    std::fs::write(&file, vec![7u8; 1024 * 1024 + 3]).expect("write");
    let cid = common::stdout(&ok(stack.shoal().args(["content", "add"]).arg(&file)))
        .trim()
        .to_owned();
    let pinned = json(&ok(stack.shoal().args([
        "pin",
        "add",
        &cid,
        "--replication-min",
        "3",
        "--replication-max",
        "3",
        "--wait",
        "--timeout",
        "60",
        "--json",
    ])));
    assert_eq!(pinned["pinnedCopies"], 3, "{pinned:#}");
    // Lowered to rf 2–3 (same allocation), the newcomer may leave: 2 copies stay elsewhere.
    let again = json(&ok(stack.shoal().args([
        "pin",
        "add",
        &cid,
        "--replication-min",
        "2",
        "--replication-max",
        "3",
        "--json",
    ])));
    assert_eq!(again["allocations"], pinned["allocations"], "{again:#}");
    let left = json(&ok(common::shoal().args([
        "node",
        "leave",
        "--node",
        &url,
        "--timeout",
        "60",
        "--json",
    ])));
    assert_eq!(left["done"], true, "{left:#}");
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "shoal serve did not stop after the leave"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        status.success(),
        "shoal serve exited with {status} after a leave"
    );
    let st = json(&ok(stack.shoal().args(["pin", "status", &cid, "--json"])));
    assert!(
        st["pin"]["pinnedCopies"].as_u64().unwrap_or(0) >= 2,
        "{st:#}"
    );
}
