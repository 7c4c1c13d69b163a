//! A devstack with a node that returns wrong results: `deal show` lists the slash, and the
//! explorer page (headless Chromium) renders the verified job, the disputed one and the slash.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Devstack, json, ok, repo_root};

fn chromium() -> Option<&'static str> {
    let p = "/usr/bin/chromium";
    if Path::new(p).exists() {
        return Some(p);
    }
    if std::env::var_os("CI").is_some() {
        panic!("{p} is missing; run scripts/setup.sh (apt package chromium)");
    }
    eprintln!("skipping the explorer check: {p} is missing");
    None
}

fn dump_dom(url: &str) -> String {
    let Some(bin) = chromium() else {
        return String::new();
    };
    let profile = tempfile::tempdir().expect("temp dir");
    let out = ok(Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--virtual-time-budget=8000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(url));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn wait_final(stack: &Devstack, id: u64) -> serde_json::Value {
    let start = Instant::now();
    loop {
        let h = json(&ok(stack.shoal().args([
            "deal",
            "show",
            &id.to_string(),
            "--json",
        ])));
        if matches!(h["state"].as_str(), Some("Verified" | "Failed" | "Expired")) {
            return h;
        }
        assert!(
            start.elapsed() < Duration::from_secs(240),
            "job {id} did not end: {h}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn slashed_node_in_deal_history_and_explorer() {
    let stack = Devstack::start(&["--nodes", "4", "--bad-nodes", "1"]);
    let wasm = repo_root().join("node/executor/testdata/wasm/hello.wasm");
    let windows = [
        "--bid-window",
        "6s",
        "--exec-window",
        "30s",
        "--reveal-window",
        "15s",
    ];

    // All 4 nodes run the job without mediation: the 3 good ones agree, the bad one is slashed.
    // Posts the hello module with `deal` flags (and the windows above); the job id.
    let post = |deal: &[&str]| -> u64 {
        let out = ok(stack
            .shoal()
            .args(["wasm", "run"])
            .arg(&wasm)
            .args(["--no-wait", "--id-only"])
            .args(deal)
            .args(windows));
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("job id")
    };
    let plain = post(&[
        "--concurrency",
        "4",
        "--confidence",
        "3",
        "--min-bids",
        "4",
        "--no-mediation",
    ]);
    let h = wait_final(&stack, plain);
    assert_eq!(h["state"], "Verified", "{h}");
    let events = h["events"].as_array().expect("events");
    let slashed: Vec<&serde_json::Value> =
        events.iter().filter(|e| e["event"] == "Slashed").collect();
    assert_eq!(slashed.len(), 1, "{h}");
    assert_eq!(slashed[0]["fields"]["reason"], "WrongResult");
    let bad = slashed[0]["fields"]["operator"]
        .as_str()
        .expect("operator")
        .to_owned();
    let reveals: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["event"] == "ResultRevealed")
        .collect();
    assert_eq!(reveals.len(), 4);
    let human = String::from_utf8_lossy(
        &ok(stack.shoal().args(["deal", "show", &plain.to_string()])).stdout,
    )
    .into_owned();
    assert!(
        human.contains(&format!("from {bad} (WrongResult)")),
        "{human}"
    );

    // With mediation on, 3 of 4 nodes on the job and a fourth free as mediator: when the bad
    // node is among the 3 selected (selection is random), the job is disputed and mediated.
    let mut found = None;
    for _ in 0..6 {
        let id = post(&["--concurrency", "3", "--confidence", "2", "--min-bids", "3"]);
        let h = wait_final(&stack, id);
        let names: Vec<String> = h["events"]
            .as_array()
            .expect("events")
            .iter()
            .filter_map(|e| e["event"].as_str().map(str::to_owned))
            .collect();
        if names.iter().any(|n| n == "DisputeOpened") {
            found = Some((id, h, names));
            break;
        }
    }
    let (disputed, h2, names) = found.expect("the faulty node was never selected in 6 jobs");
    for want in [
        "MediatorSelected",
        "DisputeOpened",
        "DisputeResolved",
        "Slashed",
    ] {
        assert!(names.iter().any(|n| n == want), "no {want} in {names:?}");
    }
    // The free node mediates honestly: the good result wins.
    assert_eq!(h2["state"], "Verified", "{h2}");
    assert!(names.iter().any(|n| n == "JobVerified"), "{names:?}");

    // The explorer shows both jobs with the node API's states and the slash.
    let node = stack.var("SHOAL_NODE");
    let dom = dump_dom(&format!("{node}/explorer"));
    if dom.is_empty() {
        return;
    }
    assert!(dom.contains("Shoal explorer"), "{dom}");
    assert!(
        dom.contains(&format!("data-job-id=\"{plain}\" data-state=\"Verified\"")),
        "{dom}"
    );
    let state2 = h2["state"].as_str().expect("state");
    assert!(
        dom.contains(&format!(
            "data-job-id=\"{disputed}\" data-state=\"{state2}\""
        )),
        "{dom}"
    );
    assert!(dom.contains("slashed"), "{dom}");
    // The detail view of the second job lists its events, including the dispute when there was one.
    let dom = dump_dom(&format!("{node}/explorer#job-{disputed}"));
    assert!(dom.contains("data-event=\"JobPosted\""), "{dom}");
    assert!(dom.contains("data-event=\"DisputeOpened\""), "{dom}");
    assert!(dom.contains("data-event=\"MediatorSelected\""), "{dom}");
}
