//! Real crashes: one node of three runs as its own process (`shoal-e2e-node`, started
//! like `shoal serve --config FILE`), is killed with SIGKILL at a chosen step of a job and
//! started again on the same data dir and config. The job must still verify, and the
//! killed node must be paid, not slashed.
//!
//! The moment to kill is read from outside, from the node's HTTP API
//! (`GET /api/v1/jobs/{id}`: `execution.step` and the on-chain `deals`).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use shoal_devstack::{self as devstack, Devstack, DevstackConfig, Fault};
use shoal_e2e::JobId;
use shoal_e2e::{
    NodeProcess, addr, deal_of, deals_with, ensure_no_slashes, fault_on, init_tracing, listed,
    post_spin, post_wordcount, step_is, wait_job, wait_published, wait_verified,
};
use shoal_node::NodeConfig;

const NODE_BIN: &str = env!("CARGO_BIN_EXE_shoal-e2e-node");

/// The node that runs as a process.
const EXTERNAL: usize = 2;

/// A 3-node devstack whose node 2 is not started in-process, and that node as a process.
async fn stack_with_process(
    dir: &tempfile::TempDir,
    faults: BTreeMap<usize, Fault>,
) -> Result<(Devstack, NodeProcess, String)> {
    let stack = devstack::start(DevstackConfig {
        nodes: 3,
        base_dir: dir.path().to_path_buf(),
        external: vec![EXTERNAL],
        faults,
        ..Default::default()
    })
    .await?;
    let ext = stack
        .external()
        .iter()
        .find(|e| e.index == EXTERNAL)
        .context("node 2 is not external")?
        .clone();
    ensure!(stack.external_config_file(EXTERNAL) == Some(ext.config_file.as_path()));
    // The process reads exactly what the devstack wrote.
    ensure!(NodeConfig::load(&ext.config_file)? == ext.config);
    let operator = addr(
        ext.config
            .operator
            .signer()?
            .context("node 2 has no operator key")?
            .address(),
    );
    let node = NodeProcess::start(Path::new(NODE_BIN), &ext).await?;
    Ok((stack, node, operator))
}

/// The job verified with every deal paid, nobody slashed, and `killed` published its result.
async fn verified_and_paid(
    api: &str,
    id: JobId,
    killed: &NodeProcess,
    operator: &str,
) -> Result<()> {
    let v = wait_job(api, id, Duration::from_secs(20), "paid", |v| {
        v["payments"].as_array().is_some_and(|p| p.len() == 3)
    })
    .await?;
    ensure_no_slashes(&v)?;
    ensure!(
        listed(&v, "payments", operator),
        "the killed node was not paid: {v:#}"
    );
    ensure!(
        deal_of(&v, operator).is_some_and(|d| !d["sealedResult"].is_null()),
        "the killed node did not reveal: {v:#}"
    );
    wait_published(killed.api_url(), id, "published by the killed node")
        .await
        .with_context(|| format!("log:\n{}", killed.log_tail()))?;
    Ok(())
}

/// Restarts the killed `node`, waits up to `timeout` for job `id` to verify on `api0` and
/// checks [`verified_and_paid`]; returns the node's log before and after `killed_at`.
async fn restart_until_paid(
    node: &mut NodeProcess,
    api0: &str,
    id: JobId,
    timeout: Duration,
    operator: &str,
    killed_at: usize,
) -> Result<(String, String)> {
    node.restart().await?;
    wait_verified(api0, id, timeout)
        .await
        .with_context(|| format!("node 2's log:\n{}", node.log_tail()))?;
    verified_and_paid(api0, id, node, operator).await?;
    let log = node.log();
    let (before, after) = log.split_at(killed_at.min(log.len()));
    Ok((before.to_owned(), after.to_owned()))
}

/// Node 2 is SIGKILLed while its WASM execution runs, restarted, runs it again and commits
/// within the exec window.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn process_killed_mid_execution_reruns_after_restart() -> Result<()> {
    init_tracing();
    let dir = tempfile::tempdir()?;
    let (stack, mut node, operator) = stack_with_process(&dir, BTreeMap::new()).await?;
    let r = async {
        // A few seconds of computing on each node; the exec window leaves room for a rerun.
        let deal = "deal:\n  concurrency: 3\n  confidence: 2\n  min_bids: 3\n  mediation: false\n  windows: {bid: 6s, exec: 180s, reveal: 60s}\n";
        let job = post_spin(&stack, 1500, Duration::from_secs(120), deal).await?;
        wait_job(
            node.api_url(),
            job.id,
            Duration::from_secs(60),
            "running on node 2",
            step_is("running"),
        )
        .await?;
        node.kill().await?;
        let killed_at = node.log().len();
        let api0 = stack.nodes[0].api_url();
        // The other two commit; the job waits in Running for node 2, which never committed.
        let v = wait_job(
            &api0,
            job.id,
            Duration::from_secs(120),
            "two commits in",
            |v| deals_with(v, "commitment") == 2,
        )
        .await?;
        ensure!(
            deal_of(&v, &operator).is_some_and(|d| d["commitment"].is_null()),
            "node 2 committed before it was killed: {v:#}"
        );
        ensure!(v["state"] == "Running", "{v:#}");
        let (before, after) = restart_until_paid(
            &mut node,
            &api0,
            job.id,
            Duration::from_secs(150),
            &operator,
            killed_at,
        )
        .await?;
        ensure!(
            before.contains("execution started") && !before.contains("result committed"),
            "node 2 was not killed mid-execution:\n{before}"
        );
        ensure!(
            after.contains("execution started") && after.contains("result committed"),
            "node 2 did not run the job again after the restart:\n{after}"
        );
        Ok(())
    }
    .await;
    stack.shutdown().await;
    r
}

/// Node 2 is SIGKILLed after its commit is on chain; the reveal phase opens while it is
/// down (node 1 holds the job in Running until then); restarted, it reveals in time.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn process_killed_after_commit_reveals_after_restart() -> Result<()> {
    init_tracing();
    let dir = tempfile::tempdir()?;
    // Node 1 stops as soon as its execution starts, so nobody can reveal before it restarts.
    let (mut stack, mut node, operator) =
        stack_with_process(&dir, fault_on(1, Fault::CrashWhileRunning)).await?;
    let r = async {
        let deal = "deal:\n  concurrency: 3\n  confidence: 2\n  min_bids: 3\n  mediation: false\n  windows: {bid: 6s, exec: 90s, reveal: 90s}\n";
        let job = post_wordcount(&stack, deal, None).await?;
        // Committed locally and the commitment read back from the chain by node 2 itself.
        let v = wait_job(
            node.api_url(),
            job.id,
            Duration::from_secs(60),
            "committed on chain by node 2",
            |v| {
                v["execution"]["step"] == "committed"
                    && deal_of(v, &operator).is_some_and(|d| !d["commitment"].is_null())
            },
        )
        .await?;
        ensure!(v["state"] == "Running", "the reveal phase opened early: {v:#}");
        node.kill().await?;
        let killed_at = node.log().len();
        tokio::time::timeout(Duration::from_secs(60), stack.nodes[1].stopped())
            .await
            .context("node 1 never started the execution")??;
        // Node 1 runs it again and commits; nodes 0 and 1 reveal while node 2 is down.
        stack.restart_node(1, None, |_| {}).await?;
        let api0 = stack.nodes[0].api_url();
        let v = wait_job(
            &api0,
            job.id,
            Duration::from_secs(60),
            "Revealing with two reveals",
            |v| v["state"] == "Revealing" && deals_with(v, "sealedResult") == 2,
        )
        .await?;
        ensure!(
            deal_of(&v, &operator).is_some_and(|d| d["sealedResult"].is_null()),
            "node 2 revealed while killed: {v:#}"
        );
        // The restarted node revealed what it committed before the kill; it did not run again.
        let (before, after) = restart_until_paid(
            &mut node,
            &api0,
            job.id,
            Duration::from_secs(90),
            &operator,
            killed_at,
        )
        .await?;
        ensure!(
            before.contains("result committed") && !before.contains("result revealed"),
            "node 2 was not killed between its commit and its reveal:\n{before}"
        );
        ensure!(
            after.contains("result revealed") && !after.contains("execution started"),
            "node 2 did not reveal its persisted result after the restart:\n{after}"
        );
        Ok(())
    }
    .await;
    stack.shutdown().await;
    r
}
