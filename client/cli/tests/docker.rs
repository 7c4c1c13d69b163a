//! A Docker job through the real binary, on a devstack whose nodes offer Docker.

mod common;

use std::process::Command;

use common::{Devstack, json, ok};

const IMAGE: &str = "shoal-test/busybox:latest";

fn docker_ready() -> bool {
    let ok = Command::new("docker")
        .args(["image", "inspect", IMAGE])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!(
            "Docker or the image {IMAGE} is missing; run scripts/setup.sh (scripts/setup.d/executor.sh builds it)"
        );
    }
    eprintln!("skipping: Docker or the image {IMAGE} is not available");
    false
}

#[test]
fn docker_job_with_env_and_output() {
    if !docker_ready() {
        return;
    }
    let stack = Devstack::start(&["--nodes", "1", "--docker"]);
    let out = ok(stack.shoal().args([
        "docker",
        "run",
        IMAGE,
        "--json",
        "--concurrency",
        "1",
        "--min-bids",
        "1",
        "--verifier",
        "optimistic",
        "-e",
        "GREETING=hello from docker",
        "-o",
        "outputs:/outputs",
        "--bid-window",
        "6s",
        "--exec-window",
        "60s",
        "--reveal-window",
        "3s",
        "--",
        "sh",
        "-c",
        "echo $GREETING; echo saved > /outputs/file.txt",
    ]));
    let r = json(&out);
    assert_eq!(r["state"], "Verified", "{r}");
    assert_eq!(r["stdout"], "hello from docker\n");
    assert_eq!(r["exitCode"], 0);
    let id = r["jobId"].as_u64().expect("job id").to_string();
    let dir = tempfile::tempdir().expect("temp dir");
    ok(stack
        .shoal()
        .args(["job", "get", &id, "-o"])
        .arg(dir.path().join("r")));
    let saved =
        std::fs::read_to_string(dir.path().join("r/outputs/file.txt")).expect("output file");
    assert_eq!(saved, "saved\n");
}

/// `shoal pipeline run`: a Docker stage selects the files that mention clouds, a sharded WASM
/// stage runs over only those (docs/pipelines.md).
#[test]
fn a_two_stage_pipeline_fans_out_over_the_files_the_first_stage_selected() {
    if !docker_ready() {
        return;
    }
    let stack = Devstack::start(&["--nodes", "1", "--docker"]);
    let dir = tempfile::tempdir().expect("tmp");
    let tree = dir.path().join("images");
    std::fs::create_dir_all(&tree).expect("mkdir");
    for (name, body) in [
        ("a.txt", "clear sky"),
        ("b.txt", "cloud cloud"),
        ("c.txt", "clear"),
        ("d.txt", "one cloud here"),
    ] {
        std::fs::write(tree.join(name), body).expect("write");
    }
    let add = |path: &std::path::Path| {
        common::stdout(&ok(stack.shoal().args(["content", "add"]).arg(path)))
            .trim()
            .to_owned()
    };
    let root = add(&tree);
    let module = add(&common::repo_root().join("node/executor/testdata/wasm/wordcount.wasm"));
    let deal = "deal: {concurrency: 1, confidence: 1, min_bids: 1, mediation: false, windows: {bid: 3s, exec: 60s, reveal: 20s}}";
    let pipeline = format!(
        "name: declouds\nstages:\n  - name: detect\n    spec:\n      engine: {{docker: {{image: \"{IMAGE}\", cmd: [\"sh\", \"-c\", \"grep -l cloud /inputs/*.txt\"]}}}}\n      inputs: [{{source: \"ipfs://{root}\", path: /inputs}}]\n      resources: {{timeout: 30s}}\n      {deal}\n  - name: count\n    select: stdout\n    previous_at: /previous\n    spec:\n      engine: {{wasm: {{module: \"ipfs://{module}\", args: [\"/inputs\"]}}}}\n      inputs: [{{source: \"ipfs://{root}\", path: /inputs}}]\n      shards: {{glob: \"/inputs/*.txt\", size: 1}}\n      resources: {{timeout: 30s}}\n      {deal}\n"
    );
    let file = dir.path().join("pipeline.yaml");
    std::fs::write(&file, pipeline).expect("write");
    ok(stack.shoal().args(["pipeline", "validate"]).arg(&file));
    let out = dir.path().join("out");
    let r = json(&ok(stack
        .shoal()
        .args(["pipeline", "run", "--json", "-o"])
        .arg(&out)
        .arg(&file)));
    let id = r["pipelineId"].as_str().expect("pipeline id").to_owned();
    let stages = r["stages"].as_array().expect("stages");
    assert_eq!(stages.len(), 2, "{r:#}");
    assert_eq!(stages[0]["kind"], "job", "{r:#}");
    assert_eq!(stages[1]["kind"], "sharded", "{r:#}");
    assert_eq!(
        stages[1]["shards"], 2,
        "only the two cloudy files ran: {r:#}"
    );
    let selected = std::fs::read_to_string(out.join("detect/stdout")).expect("selection");
    assert!(selected.contains("/inputs/b.txt") && selected.contains("/inputs/d.txt"));
    let mut counted = Vec::new();
    for e in std::fs::read_dir(out.join("count")).expect("count") {
        let p = e.expect("entry").path().join("stdout");
        counted.push(std::fs::read_to_string(p).expect("shard stdout"));
    }
    counted.sort();
    assert_eq!(counted.len(), 2, "{counted:?}");
    assert!(
        counted[0].contains("b.txt") && counted[1].contains("d.txt"),
        "{counted:?}"
    );
    let d = json(&ok(stack
        .shoal()
        .args(["pipeline", "describe", "--json"])
        .arg(&out)));
    assert_eq!(d["complete"], true, "{d:#}");
    assert_eq!(d["stages"][0]["state"], "Verified", "{d:#}");
    assert!(
        d["stages"][1]["state"]
            .as_str()
            .is_some_and(|s| s.starts_with("Done")),
        "{d:#}"
    );

    // On chain: every stage verified, nothing left reserved.
    let d = json(&ok(stack
        .shoal()
        .args(["pipeline", "describe", "--json", &id])));
    assert_eq!(d["state"], "Done", "{d:#}");
    assert_eq!(d["reserved"], "0", "{d:#}");
    assert_eq!(d["stages"][1]["kind"], "sharded", "{d:#}");

    // A stage that selects from a file the previous stage did not write says so, and the
    // pipeline is cancelled with its later stages' escrow refunded.
    let bad = std::fs::read_to_string(&file)
        .expect("read")
        .replace("select: stdout", "select: outputs/missing.txt");
    let bad_file = dir.path().join("bad.yaml");
    std::fs::write(&bad_file, bad).expect("write");
    let err = common::fails(
        stack
            .shoal()
            .args(["pipeline", "run", "-o"])
            .arg(dir.path().join("out2"))
            .arg(&bad_file),
    );
    assert!(err.contains("cannot be read"), "{err}");
    assert!(err.contains("cancelled"), "{err}");
}
