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
