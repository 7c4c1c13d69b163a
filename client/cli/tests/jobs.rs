//! WASM jobs through the real binary against a devstack: local and URL inputs, --wait and
//! --no-wait, describe, get, deal show, the explorer page in headless Chromium, and a job
//! nobody bids on.

mod common;

use std::io::{Read as _, Write as _};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use common::{Devstack, fails, json, ok, repo_root};

// A 3-node devstack: every node must bid (the default floor is twice the concurrency).
const WINDOWS: [&str; 8] = [
    "--min-bids",
    "3",
    "--bid-window",
    "6s",
    "--exec-window",
    "60s",
    "--reveal-window",
    "20s",
];

/// Serves one file at any path from a loopback port.
fn serve_file(body: &'static [u8]) -> String {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr");
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(head.as_bytes());
            let _ = s.write_all(body);
        }
    });
    format!("http://{addr}/words.txt")
}

fn wordcount() -> String {
    repo_root()
        .join("node/executor/testdata/wasm/wordcount.wasm")
        .display()
        .to_string()
}

#[test]
fn wasm_jobs_end_to_end() {
    let stack = Devstack::start(&["--nodes", "3"]);
    let dir = tempfile::tempdir().expect("temp dir");
    let input = dir.path().join("input");
    std::fs::create_dir_all(&input).expect("mkdir");
    std::fs::write(input.join("a.txt"), "one two three\n").expect("write");
    std::fs::write(input.join("b.txt"), "four five\n").expect("write");

    // 1. A local folder input, --wait (default) and --json.
    let out = ok(stack
        .shoal()
        .args(["wasm", "run", &wordcount(), "--json", "-i"])
        .arg(format!("{}:/inputs", input.display()))
        .args(WINDOWS)
        .args(["--", "/inputs"]));
    let r = json(&out);
    assert_eq!(r["state"], "Verified", "{r}");
    assert_eq!(r["exitCode"], 0);
    let stdout = r["stdout"].as_str().expect("stdout");
    assert!(
        stdout.contains("a.txt 3") && stdout.contains("b.txt 2"),
        "{stdout}"
    );
    let first = r["jobId"].as_u64().expect("job id");
    let cid = r["resultCid"].as_str().expect("cid").to_owned();
    assert!(cid.starts_with("bafy"), "{cid}");

    // 2. A URL input from a loopback server, --no-wait, then describe and get.
    let url = serve_file(b"alpha beta gamma delta\n");
    let out = ok(stack
        .shoal()
        .args(["wasm", "run", &wordcount(), "--no-wait", "--id-only", "-i"])
        .arg(format!("{url}:/inputs/words.txt"))
        .args(WINDOWS)
        .args(["--", "/inputs"]));
    let id: u64 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("a job id on stdout");
    assert_eq!(id, first + 1);
    let start = Instant::now();
    loop {
        let out = stack
            .shoal()
            .args(["job", "describe", &id.to_string(), "--json"])
            .output()
            .expect("run shoal");
        if !out.status.success() {
            // The node indexes the post a moment after it is mined.
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains("not known to this node"), "{err}");
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "the node never indexed job {id}: {err}"
            );
            std::thread::sleep(Duration::from_millis(300));
            continue;
        }
        let d = json(&out);
        if d["state"] == "Verified" {
            break;
        }
        assert!(
            !matches!(d["state"].as_str(), Some("Failed" | "Expired")),
            "job {id} ended {}: {d}",
            d["state"]
        );
        assert!(
            start.elapsed() < Duration::from_secs(240),
            "job {id} not verified in time: {d}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let got = dir.path().join("got");
    let g = json(&ok(stack
        .shoal()
        .args(["job", "get", &id.to_string(), "--json", "-o"])
        .arg(&got)));
    assert_eq!(g["verified"], true);
    let text = std::fs::read_to_string(got.join("stdout")).expect("stdout file");
    assert!(text.starts_with("words.txt 4\n"), "{text}");
    assert_eq!(
        std::fs::read_to_string(got.join("exitCode")).expect("exitCode"),
        "0"
    );
    // An existing folder is not overwritten.
    let err = fails(
        stack
            .shoal()
            .args(["job", "get", &id.to_string(), "-o"])
            .arg(&got),
    );
    assert!(err.contains("not empty"), "{err}");
    let listed = json(&ok(stack
        .shoal()
        .args(["job", "list", "--json", "--state", "Verified"])));
    assert!(
        listed["jobs"].as_array().is_some_and(|j| j.len() == 2),
        "{listed}"
    );

    // 3. The deal's on-chain history.
    let h = json(&ok(stack.shoal().args([
        "deal",
        "show",
        &first.to_string(),
        "--json",
    ])));
    assert_eq!(h["state"], "Verified");
    let names: Vec<&str> = h["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["event"].as_str())
        .collect();
    for want in [
        "JobPosted",
        "BidPlaced",
        "DealAccepted",
        "PhaseStarted",
        "ResultCommitted",
        "ResultRevealed",
        "JobVerified",
        "Paid",
    ] {
        assert!(names.contains(&want), "no {want} in {names:?}");
    }
    assert_eq!(
        names.iter().filter(|n| **n == "BidPlaced").count(),
        3,
        "{names:?}"
    );
    assert_eq!(
        names.iter().filter(|n| **n == "ResultRevealed").count(),
        3,
        "{names:?}"
    );
    assert_eq!(names.first(), Some(&"JobPosted"));
    // Reveals carry only sealed hashes; the CID is public once published after verification.
    let events = h["events"].as_array().expect("events");
    let revealed = events
        .iter()
        .find(|e| e["event"] == "ResultRevealed")
        .expect("reveal");
    assert!(revealed["fields"]["resultCid"].is_null(), "{revealed}");
    assert!(!revealed.to_string().contains(&cid), "{revealed}");
    let published = events
        .iter()
        .find(|e| e["event"] == "ResultPublished")
        .expect("ResultPublished");
    assert_eq!(published["fields"]["resultCid"], cid.as_str());
    let human = String::from_utf8_lossy(
        &ok(stack.shoal().args(["deal", "show", &first.to_string()])).stdout,
    )
    .into_owned();
    assert!(
        human.contains("verified: sealed result")
            && human.contains("result published")
            && human.contains("paid"),
        "{human}"
    );

    // 4. The same program from a spec file, with an inline input; its logs on the node.
    let spec = json(&ok(stack.shoal().args([
        "job",
        "describe",
        &first.to_string(),
        "--json",
    ])));
    let module = spec["spec"]["engine"]["wasm"]["module"]
        .as_str()
        .expect("module source")
        .to_owned();
    let spec_file = dir.path().join("wc.yaml");
    std::fs::write(
        &spec_file,
        format!(
            "name: wordcount\nengine:\n  wasm:\n    module: {module}\n    args: [/inputs]\n\
             inputs:\n  - source: \"inline:six seven eight\"\n    path: /inputs/inline.txt\n\
             deal:\n  concurrency: 2\n  confidence: 2\n  min_bids: 2\n  windows: {{bid: 10s, exec: 60s, reveal: 20s}}\n"
        ),
    )
    .expect("write spec");
    ok(stack.shoal().args(["job", "validate"]).arg(&spec_file));
    let r = json(&ok(stack
        .shoal()
        .args(["job", "run", "--json"])
        .arg(&spec_file)));
    assert_eq!(r["state"], "Verified", "{r}");
    assert!(
        r["stdout"]
            .as_str()
            .is_some_and(|s| s.starts_with("inline.txt 3\n")),
        "{r}"
    );
    let spec_job = r["jobId"].as_u64().expect("job id").to_string();
    let start = Instant::now();
    let logs = loop {
        let out = stack
            .shoal()
            .args(["job", "logs", &spec_job, "--json"])
            .output()
            .expect("run shoal");
        if out.status.success() {
            break json(&out);
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    assert!(
        logs["stdout"]
            .as_str()
            .is_some_and(|s| s.starts_with("inline.txt 3\n")),
        "{logs}"
    );

    // 5. A job no node bids on (Docker is not offered on this devstack) expires, and the
    // error says why the nodes declined.
    let err = fails(stack.shoal().args([
        "docker",
        "run",
        "shoal-test/busybox:latest",
        "--concurrency",
        "1",
        "--min-bids",
        "1",
        "--bid-window",
        "3s",
        "--wait-timeout",
        "2m",
        "--",
        "true",
    ]));
    assert!(err.contains("Expired") && err.contains("declined"), "{err}");

    // 6. `job cancel`: refused while bids are open, then expires the job and claims the refund.
    let out = ok(stack.shoal().args([
        "docker",
        "run",
        "shoal-test/busybox:latest",
        "--concurrency",
        "1",
        "--min-bids",
        "1",
        "--bid-window",
        "4s",
        "--no-wait",
        "--id-only",
        "--",
        "true",
    ]));
    let id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let err = fails(stack.shoal().args(["job", "cancel", &id]));
    assert!(
        err.contains("still taking bids") && err.contains("no cancel"),
        "{err}"
    );
    std::thread::sleep(Duration::from_secs(5));
    // Either this command expires the job, or a node already closed its bidding: then it says
    // the job had ended and exits non-zero. The refund is claimed either way.
    let out = stack
        .shoal()
        .args(["job", "cancel", &id, "--json"])
        .output()
        .expect("run job cancel");
    let c = json(&out);
    assert_eq!(c["state"], "Expired", "{c}");
    assert_eq!(
        out.status.success(),
        c["alreadyEnded"] == false,
        "{c} {out:?}"
    );
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("already ended"), "{err}");
    }
    let h = json(&ok(stack.shoal().args(["deal", "show", &id, "--json"])));
    let names: Vec<&str> = h["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["event"].as_str())
        .collect();
    assert!(
        names.contains(&"JobExpired") && names.contains(&"Refunded"),
        "{names:?}"
    );
}
