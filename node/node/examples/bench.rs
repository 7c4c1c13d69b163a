//! Submit-to-verified latency, verified jobs per second and chain rounds per
//! job for a hello-world WASM job on an in-process devstack.
//!
//! `cargo run --release -p shoal-node --example bench -- [NODES] [JOBS]`

use std::time::{Duration, Instant};

use alloy::signers::local::PrivateKeySigner;
use anyhow::{Context, Result, bail};
use shoal_node::devstack::{self, DevstackConfig};
use shoal_node::model::{JobId, JobState};
use shoal_types::JobSpec;

async fn upload(api: &str, bytes: Vec<u8>) -> Result<String> {
    let v: serde_json::Value = reqwest::Client::new()
        .post(format!("{api}/api/v1/content"))
        .body(bytes)
        .send()
        .await?
        .json()
        .await?;
    Ok(v["cid"].as_str().context("no cid")?.to_owned())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<()> {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let nodes = args.first().copied().unwrap_or(3);
    let jobs = args.get(1).copied().unwrap_or(20);
    let dir = tempfile::tempdir()?;
    let stack = devstack::start(DevstackConfig {
        nodes,
        base_dir: dir.path().to_path_buf(),
        poll_interval: Duration::from_millis(20),
        customize: Some(std::sync::Arc::new(|_, c: &mut shoal_node::NodeConfig| {
            c.bid.max_concurrent_jobs = 10_000;
            c.executor.max_parallel = 4;
        })),
        ..Default::default()
    })
    .await?;
    let api = stack.nodes[0].api_url();
    let module = upload(
        &api,
        std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../executor/testdata/wasm/hello.wasm"
        ))?,
    )
    .await?;
    let yaml = format!(
        "name: hello\nengine:\n  wasm:\n    module: ipfs://{module}\ndeal:\n  concurrency: 3\n  confidence: 2\n  min_bids: 3\n  mediation: false\n  windows: {{bid: 60s, exec: 60s, reveal: 60s}}\n"
    );
    let spec = JobSpec::from_yaml(&yaml)?;
    let spec_cid = shoal_store::parse_cid(&upload(&api, spec.to_canonical_json()).await?)?;
    let creator: PrivateKeySigner = stack.creator_key.parse()?;
    let state = stack.nodes[0].state().clone();
    let post = || {
        shoal_node::chain::post_job(
            &stack.rpc_url,
            stack.deployment.job_market,
            creator.clone(),
            &spec,
            &spec_cid,
        )
    };
    let verified = |id: JobId| {
        state
            .job(id)
            .ok()
            .flatten()
            .is_some_and(|j| j.state == JobState::Verified)
    };

    // Latency: one job at a time.
    let mut lat = Vec::new();
    let mut ids = Vec::new();
    for _ in 0..jobs {
        let t0 = Instant::now();
        let id = post().await?;
        while !verified(id) {
            if t0.elapsed() > Duration::from_secs(60) {
                bail!("job {id} not verified after 60 s");
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        lat.push(t0.elapsed());
        ids.push(id);
    }
    lat.sort();
    // Chain rounds: distinct blocks holding the job's events from post to verification.
    let mut rounds = Vec::new();
    for id in &ids {
        let events = state.events(*id)?;
        let mut blocks: Vec<u64> = events
            .iter()
            .take_while(|e| e.event != "Paid")
            .map(|e| e.block)
            .collect();
        blocks.dedup();
        rounds.push(blocks.len());
    }
    // Throughput: post them all, then wait for every one.
    let t0 = Instant::now();
    let mut batch = Vec::new();
    for _ in 0..jobs {
        batch.push(post().await?);
    }
    while !batch.iter().all(|id| verified(*id)) {
        if t0.elapsed() > Duration::from_secs(120) {
            bail!("batch not verified after 120 s");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let secs = t0.elapsed().as_secs_f64();
    println!("nodes {nodes}, jobs {jobs}");
    println!(
        "submit-to-verified p50 {:?}, p95 {:?}",
        percentile(&lat, 0.5),
        percentile(&lat, 0.95)
    );
    println!(
        "verified jobs/s {:.1} ({jobs} jobs in {secs:.2} s)",
        jobs as f64 / secs
    );
    println!(
        "blocks per job up to verification (instant mining: one transaction per block): max {:?}",
        rounds.iter().max()
    );
    stack.shutdown().await;
    Ok(())
}
