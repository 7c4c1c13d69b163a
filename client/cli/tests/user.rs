//! What a user coming from Bacalhau expects, through the real binary against a devstack:
//! content added through the node and used by a job (a zero-byte file too), the program's
//! exit code as the command's, a timeout said plainly, JSON on failure, `--id-only` without
//! waiting, `job cancel` on an ended job, placement constraints, `--min-bids` as a hard
//! minimum, and `devstack --node-config`.

mod common;

use std::time::{Duration, Instant};

use common::{Devstack, fails, http, json, ok, repo_root};

const SOLO: [&str; 12] = [
    "--concurrency",
    "1",
    "--min-bids",
    "1",
    "--bid-window",
    "3s",
    "--exec-window",
    "20s",
    "--reveal-window",
    "10s",
    "--wait-timeout",
    "2m",
];

fn wasm(name: &str) -> String {
    repo_root()
        .join(format!("node/executor/testdata/wasm/{name}.wasm"))
        .display()
        .to_string()
}

#[test]
fn what_a_bacalhau_user_expects() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Node 1 asks more than any job here pays: only node 0 bids.
    let node_config = dir.path().join("nodes.toml");
    std::fs::write(
        &node_config,
        "[executor]\nmax_parallel = 2\n[nodes.0.labels]\nregion = \"eu\"\n\
         [nodes.1.labels]\nregion = \"us\"\n[nodes.1.bid]\nmin_price = 5000000000000000000\n",
    )
    .expect("write node config");
    let stack = Devstack::start(&[
        "--nodes",
        "2",
        "--node-config",
        node_config.to_str().expect("utf-8 path"),
    ]);

    // 1. Content added through the node is what jobs read; a zero-byte file works.
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).expect("mkdir");
    std::fs::write(data.join("words.txt"), "one two three\n").expect("write");
    std::fs::write(data.join("empty.txt"), "").expect("write");
    let out = ok(stack.shoal().args(["content", "add", "--json"]).arg(&data));
    let added = json(&out);
    let cid = added["cid"].as_str().expect("cid").to_owned();
    assert_eq!(added["node"], stack.var("SHOAL_NODE"), "{added}");
    let empty = dir.path().join("zero");
    std::fs::write(&empty, "").expect("write");
    let zero_cid = common::stdout(&ok(stack.shoal().args(["content", "add"]).arg(&empty)));
    let out = ok(stack
        .shoal()
        .args(["wasm", "run", &wasm("wordcount"), "--json", "-i"])
        .arg(format!("ipfs://{cid}:/inputs"))
        .arg("-i")
        .arg(format!("ipfs://{}:/zero/empty", zero_cid.trim()))
        .args(SOLO)
        .args(["--", "/inputs"]));
    let r = json(&out);
    assert_eq!(r["state"], "Verified", "{r}");
    let stdout = r["stdout"].as_str().unwrap_or_default();
    assert!(
        stdout.contains("words.txt 3") && stdout.contains("empty.txt 0"),
        "{stdout}"
    );
    let back = dir.path().join("back");
    ok(stack
        .shoal()
        .args(["content", "get", &format!("{cid}/words.txt"), "-o"])
        .arg(&back));
    assert_eq!(
        std::fs::read_to_string(&back).expect("read back"),
        "one two three\n"
    );

    // 2. The program's exit code is the command's; --json still prints the outcome.
    let out = stack
        .shoal()
        .args([
            "wasm",
            "run",
            &wasm("exit_code"),
            "--json",
            "-e",
            "EXIT_CODE=3",
        ])
        .args(SOLO)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let r = json(&out);
    assert_eq!(
        (r["state"].as_str(), r["exitCode"].as_i64()),
        (Some("Verified"), Some(3))
    );

    // 3. A run longer than its timeout verifies as timed out, exit 124, and says so.
    let out = stack
        .shoal()
        .args(["wasm", "run", &wasm("spin"), "--json", "--timeout", "1s"])
        .args(SOLO)
        .args(["--", "1000000"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(124), "{out:?}");
    let r = json(&out);
    let stderr = r["stderr"].as_str().unwrap_or_default();
    assert!(stderr.contains("ran longer than its timeout of 1s"), "{r}");
    let id = r["jobId"].as_u64().expect("job id").to_string();
    let logs = ok(stack.shoal().args(["job", "logs", &id]));
    assert!(
        String::from_utf8_lossy(&logs.stderr).contains("ran longer than its timeout of 1s"),
        "{logs:?}"
    );

    // 4. Cancelling an ended job says so and fails.
    let err = fails(stack.shoal().args(["job", "cancel", &id]));
    assert!(err.contains("already ended"), "{err}");

    // 5. --id-only prints the id at once.
    let started = Instant::now();
    let out = ok(stack
        .shoal()
        .args(["wasm", "run", &wasm("hello"), "--id-only"])
        .args(SOLO));
    let quick = common::stdout(&out);
    assert!(quick.trim().parse::<u64>().is_ok(), "{quick}");
    assert!(started.elapsed() < Duration::from_secs(20), "it waited");

    // 6. --node-config reached node 1: it declined with its reason.
    let (status, nodes) = http(&format!("{}/api/v1/nodes", stack.var("SHOAL_NODE")), None);
    assert_eq!(status, 200, "{nodes}");
    let nodes: serde_json::Value = serde_json::from_str(&nodes).expect("nodes");
    let url = nodes
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| n["apiUrl"].as_str())
        .find(|u| *u != stack.var("SHOAL_NODE"))
        .expect("node 1's URL")
        .to_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    let reason = loop {
        // Node 1 may not have read the job yet: retry until it has decided.
        let out = stack
            .shoal()
            .args(["job", "describe", quick.trim(), "--json", "--node", &url])
            .output()
            .expect("run job describe");
        let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        if let Some(reason) = r["decision"]["reason"].as_str() {
            break reason.to_owned();
        }
        assert!(Instant::now() < deadline, "node 1 never decided: {out:?}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(reason.contains("minimum"), "{reason}");

    // 7. Placement: a constraint node 0 satisfies runs there; one no node satisfies is
    // refused before posting, naming it.
    let out = ok(stack
        .shoal()
        .args([
            "wasm",
            "run",
            &wasm("hello"),
            "--json",
            "--constraint",
            "region=eu",
        ])
        .args(SOLO));
    let r = json(&out);
    assert_eq!(r["state"], "Verified", "{r}");
    let (status, me) = http(&format!("{}/api/v1/status", stack.var("SHOAL_NODE")), None);
    assert_eq!(status, 200, "{me}");
    let me: serde_json::Value = serde_json::from_str(&me).expect("status");
    assert_eq!(me["labels"]["region"], "eu", "{me}");
    let id = r["jobId"].as_u64().expect("job id").to_string();
    let d = json(&ok(stack.shoal().args(["job", "describe", &id, "--json"])));
    assert_eq!(
        d["deals"][0]["operator"].as_str().map(str::to_lowercase),
        me["operator"].as_str().map(str::to_lowercase),
        "{d}"
    );
    let out = stack
        .shoal()
        .args(["wasm", "run", &wasm("hello"), "--constraint", "region=mars"])
        .args(SOLO)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(125), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("`region=mars`") && err.contains("region=eu"),
        "{err}"
    );

    // 8. --min-bids is a hard minimum: one node bids, three bids are asked, the job expires.
    let out = stack
        .shoal()
        .args([
            "wasm",
            "run",
            &wasm("hello"),
            "--json",
            "--concurrency",
            "1",
        ])
        .args(["--min-bids", "3"])
        .args(&SOLO[4..])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(125), "{out:?}");
    assert_eq!(json(&out)["state"], "Expired", "{out:?}");

    // 9. A job that cannot verify: exit 125 with a JSON outcome on stdout.
    let out = stack
        .shoal()
        .args(["docker", "run", "busybox:latest", "--json"])
        .args(SOLO)
        .args(["--", "true"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(125), "{out:?}");
    let r = json(&out);
    assert_eq!(r["state"], "Expired", "{r}");
    assert!(r["error"].as_str().is_some_and(|e| !e.is_empty()), "{r}");
}
