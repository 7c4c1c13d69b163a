//! End-to-end over the libp2p swarm: nodes that share no HTTP peers find each
//! other from their bootstrap addresses, hear of a job from a gossipsub
//! announcement, move its module, input, spec and results over Bitswap, and
//! answer a job's status and logs over `/shoal/status/1.0.0`; the verified results go on the
//! swarm's pinset with the replication the spec asks for.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use serde_json::Value;
use shoal_devstack::Devstack;
use shoal_e2e::{
    FOX, HONEST_DEAL, check_results_from, get_json, init_tracing, post_spec, stack_with, upload,
    wait_verified, wasm,
};

/// A counter from a node's Prometheus metrics.
async fn counter(api: &str, name: &str) -> Result<u64> {
    let text = reqwest::get(format!("{api}/metrics")).await?.text().await?;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .with_context(|| format!("no {name} in the metrics of {api}"))
}

/// Polls `url` until `pred` holds on its JSON.
async fn wait_json(url: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Result<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = Value::Null;
    while Instant::now() < deadline {
        if let Ok(v) = get_json(url).await {
            if pred(&v) {
                return Ok(v);
            }
            last = v;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("timed out waiting for {what} at {url}; last seen: {last:#}")
}

async fn flow(stack: &Devstack) -> Result<()> {
    let api0 = stack.nodes[0].api_url();
    let req = stack.nodes[3].api_url();
    // Each node dialled the ones before it; gossipsub and identify fill in the rest.
    for n in &stack.nodes {
        wait_json(
            &format!("{}/api/v1/peers", n.api_url()),
            "3 peers on the jobs topic",
            |v| {
                v["peers"]
                    .as_array()
                    .is_some_and(|p| p.iter().filter(|p| p["jobsTopic"] == true).count() == 3)
            },
        )
        .await?;
    }
    // Everything the job needs is uploaded to node 3 only, which never bids.
    let module = upload(&req, wasm("wordcount")?).await?;
    let input = upload(&req, FOX.to_vec()).await?;
    let yaml = format!(
        "name: wordcount\nengine:\n  wasm:\n    module: ipfs://{module}\n    args: [\"/inputs\"]\ninputs:\n  - source: ipfs://{input}\n    path: /inputs/fox.txt\nresources:\n  timeout: 30s\n{HONEST_DEAL}pin: {{replication_min: 4, replication_max: 4}}\n"
    );
    let job = post_spec(stack, &req, &yaml).await?;
    let v = wait_verified(&api0, job.id, Duration::from_secs(60)).await?;
    let result_cid = v["resultCid"].as_str().context("no result cid")?.to_owned();
    // Node 3 ran nothing and has no HTTP peers: the results reach it over Bitswap.
    let stdout = check_results_from(&req, job.id, &result_cid).await?;
    ensure!(stdout.contains("words 9"), "unexpected stdout {stdout:?}");
    // The spec asks for 4 copies of the results: every node, node 3 included, pins them.
    wait_json(
        &format!("{req}/api/v1/pins/{result_cid}"),
        "the results pinned on all 4 nodes",
        |v| v["pin"]["pinnedCopies"] == 4 && v["pin"]["replicationMin"] == 4,
    )
    .await?;

    // The spec was uploaded to node 3, so it announced the job; the operators heard it and,
    // holding the spec only because they fetched it, did not announce it again.
    ensure!(
        counter(&req, "shoal_job_announcements_sent_total").await? == 1,
        "node 3 did not announce the job"
    );
    for n in &stack.nodes[..3] {
        let got = counter(&n.api_url(), "shoal_job_announcements_received_total").await?;
        ensure!(got >= 1, "{} received no announcement", n.api_url());
        let sent = counter(&n.api_url(), "shoal_job_announcements_sent_total").await?;
        ensure!(
            sent == 0,
            "{} announced a job it only fetched the spec of",
            n.api_url()
        );
    }

    // Node 3 asks node 0 for its execution and logs over the status protocol.
    let peers0 = get_json(&format!("{api0}/api/v1/peers")).await?;
    let peer0 = peers0["peerId"].as_str().context("no peer id")?;
    let status = wait_json(
        &format!("{req}/api/v1/peers/{peer0}/jobs/{}?logs=true", job.id),
        "node 0's published execution",
        |v| v["executions"][0]["step"] == "published",
    )
    .await?;
    ensure!(
        status["found"] == true && status["state"] == "Verified",
        "{status:#}"
    );
    let logs = status["logs"]["stdout"].as_str().unwrap_or_default();
    ensure!(logs.contains("words 9"), "logs over the swarm: {status:#}");
    let unknown = get_json(&format!("{req}/api/v1/peers/{peer0}/jobs/999999")).await?;
    ensure!(unknown["found"] == false, "{unknown:#}");
    let bad = reqwest::get(format!("{req}/api/v1/peers/not-a-peer/jobs/1")).await?;
    ensure!(bad.status() == 400, "bad peer id answered {}", bad.status());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn content_announcements_and_status_travel_over_the_swarm() -> Result<()> {
    init_tracing();
    let dir = tempfile::tempdir()?;
    let stack = stack_with(
        &dir,
        4,
        None,
        Some(Arc::new(|i, c: &mut shoal_node::NodeConfig| {
            // No HTTP content exchange: whatever a node lacks comes over Bitswap.
            c.peers.clear();
            if i == 3 {
                c.bid.enabled = false;
            }
        })),
    )
    .await?;
    let r = flow(&stack).await;
    stack.shutdown().await;
    r
}
