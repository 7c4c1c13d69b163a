//! `shoal serve`: a follower node from a config file and environment overrides, against a
//! devstack's chain.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{Devstack, ok, shoal, stdout};

#[test]
fn serve_from_config_file_with_env_overrides() {
    let stack = Devstack::start(&["--nodes", "1"]);
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("node.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = \"{}\"\n\n[api]\nlisten = \"127.0.0.1:1\"\n",
            dir.path().join("data").display()
        ),
    )
    .expect("write config");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    // The devstack's node 0 on the swarm: the new node dials it.
    let (_, peers) = common::http(&format!("{}/api/v1/peers", stack.var("SHOAL_NODE")), None);
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
    let env = |c: &mut std::process::Command| {
        c.env("SHOAL_CHAIN_RPC", stack.var("SHOAL_RPC_URL"))
            .env("SHOAL_DEPLOYMENT_FILE", stack.var("SHOAL_DEPLOYMENT"))
            .env("SHOAL_LISTEN", format!("127.0.0.1:{port}"))
            .env("SHOAL_P2P_LISTEN", "/ip4/127.0.0.1/tcp/0")
            .env("SHOAL_BOOTSTRAP", &bootstrap);
    };
    let mut print = shoal();
    print
        .args(["serve", "--print-config", "--config"])
        .arg(&config);
    env(&mut print);
    let effective = stdout(&ok(&mut print));
    assert!(
        effective.contains(&format!("127.0.0.1:{port}")),
        "{effective}"
    );
    assert!(
        effective.contains(&stack.var("SHOAL_RPC_URL")),
        "{effective}"
    );
    assert!(effective.contains(&bootstrap), "{effective}");

    let mut serve = shoal();
    serve
        .args(["serve", "--config"])
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    env(&mut serve);
    let mut child = serve.spawn().expect("start shoal serve");
    let url = format!("http://127.0.0.1:{port}");
    let start = Instant::now();
    let health = loop {
        let (status, body) = common::http(&format!("{url}/healthz"), None);
        if status == 200 {
            break body;
        }
        if let Ok(Some(s)) = child.try_wait() {
            panic!("shoal serve exited: {s}");
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "shoal serve did not answer on {url}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(health.contains("\"ok\":true"), "{health}");
    // The new node knows the devstack's contracts.
    let d = ok(shoal().args([
        "wallet",
        "balance",
        "0x0000000000000000000000000000000000000001",
        "--json",
        "--node",
        &url,
    ]));
    assert!(stdout(&d).contains("\"wei\""));
    // It joined the swarm through its bootstrap peer.
    let start = Instant::now();
    loop {
        let (status, body) = common::http(&format!("{url}/api/v1/peers"), None);
        assert_eq!(status, 200, "{body}");
        if body.contains(bootstrap.rsplit('/').next().unwrap_or_default()) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the node did not connect to its bootstrap peer: {body}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = std::process::Command::new("kill")
        .arg("-INT")
        .arg(child.id().to_string())
        .status();
    let _ = child.wait();
}
