//! The node's critical tasks are supervised: when one dies the whole node stops with an error
//! naming it, and a node process exits non-zero instead of running on half-dead.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use shoal_devstack::{self as devstack, DevstackConfig};
use shoal_e2e::{get_json, init_tracing, stack};

const NODE_BIN: &str = env!("CARGO_BIN_EXE_shoal-e2e-node");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_follower_stops_the_node_with_an_error() -> Result<()> {
    init_tracing();
    let dir = tempfile::tempdir()?;
    let stack = stack(&dir, 1, 0, None).await?;
    let r = async {
        let node = &stack.nodes[0];
        // Once the follower has read the chain, healthz reports its lag.
        let started = std::time::Instant::now();
        let health = loop {
            let h = get_json(&format!("{}/healthz", node.api_url())).await?;
            if h["followerLagBlocks"].is_u64() || started.elapsed() > Duration::from_secs(10) {
                break h;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        ensure!(health["ok"] == true, "a fresh node is healthy: {health:#}");
        ensure!(
            health["followerLagBlocks"].is_u64() && health["chainHead"].is_u64(),
            "healthz reports the follower's lag: {health:#}"
        );
        let tasks = node.tasks();
        for t in ["api", "compute", "follower"] {
            ensure!(tasks.contains(&t), "{t} runs: {tasks:?}");
        }
        ensure!(node.abort_task("follower"), "the follower ran");
        let stopped = tokio::time::timeout(Duration::from_secs(10), node.stopped())
            .await
            .context("the node kept running without its follower")?;
        let err = stopped.err().context("the node stopped without an error")?;
        ensure!(
            matches!(
                err,
                shoal_node::Error::TaskDied {
                    task: "follower",
                    ..
                }
            ),
            "the error names the follower: {err}"
        );
        ensure!(node.is_stopped() && node.tasks().is_empty());
        Ok(())
    }
    .await;
    stack.shutdown().await;
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_process_whose_follower_dies_exits_non_zero() -> Result<()> {
    init_tracing();
    let dir = tempfile::tempdir()?;
    let stack = devstack::start(DevstackConfig {
        nodes: 1,
        base_dir: dir.path().to_path_buf(),
        external: vec![0],
        ..Default::default()
    })
    .await?;
    let r = async {
        let node = stack.external().first().context("node 0 is external")?;
        let child = tokio::process::Command::new(NODE_BIN)
            .arg("--config")
            .arg(&node.config_file)
            .env("SHOAL_E2E_ABORT_TASK", "follower")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
            .await
            .context("the node process kept running without its follower")??;
        let stderr = String::from_utf8_lossy(&out.stderr);
        ensure!(
            !out.status.success(),
            "exit status {}: {stderr}",
            out.status
        );
        ensure!(
            stderr.contains("follower task was aborted"),
            "the process says which task died: {stderr}"
        );
        Ok(())
    }
    .await;
    stack.shutdown().await;
    r
}
