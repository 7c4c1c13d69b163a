//! Submit-to-verified latency, verified jobs per second and chain rounds per
//! job for a hello-world WASM job on an in-process devstack.
//!
//! `scripts/bench-node.sh [NODES] [JOBS] [CREATORS]` (= `cargo run --release -p shoal-node --example bench`)

use std::time::{Duration, Instant};

use alloy::signers::local::PrivateKeySigner;
use anyhow::{Context, Result, bail};
use shoal_api::JobId;
use shoal_chain::JobState;
use shoal_devstack::{self as devstack, DevstackConfig, ETHER};
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
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let nodes = args.first().copied().unwrap_or(3);
    let jobs = args.get(1).copied().unwrap_or(20);
    let creators = args.get(2).copied().unwrap_or(1).max(1);
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
        "name: hello\nengine:\n  wasm:\n    module: ipfs://{module}\ndeal:\n  concurrency: 3\n  confidence: 2\n  min_bids: 3\n  mediation: false\n  windows: {{bid: 5s, exec: 60s, reveal: 60s}}\n"
    );
    let spec = JobSpec::from_yaml(&yaml)?;
    let spec_cid = shoal_store::parse_cid(&upload(&api, spec.to_canonical_json()).await?)?;
    let creator: PrivateKeySigner = stack.creator_key.parse()?;
    let state = stack.nodes[0].state().clone();
    // One client per creator wallet: a transaction manager numbers its nonces locally, so
    // posts go out concurrently; several wallets post in parallel, as users would.
    let d = &stack.deployment;
    let connect = |signer: PrivateKeySigner| {
        shoal_chain::ChainClient::builder(&stack.rpc_url)
            .signer(signer)
            .tx_config(shoal_chain::TxConfig {
                poll_interval: Duration::from_millis(5),
                ..Default::default()
            })
            .deployment(d.on_chain(stack.chain_id))
            .connect()
    };
    let funder = connect(creator).await?;
    let mut clients = vec![funder.clone()];
    let first_extra = u32::try_from(nodes + 2)?;
    let extra = shoal_devchain::derive_dev_accounts(first_extra + u32::try_from(creators)? - 1)?;
    for acct in extra.into_iter().skip(first_extra as usize) {
        funder
            .transfer(acct.address, alloy::primitives::U256::from(100u128 * ETHER))
            .await?;
        clients.push(connect(acct.signer).await?);
    }
    let params = shoal_chain::job_params(&spec, spec_cid.to_bytes());
    let next = std::sync::atomic::AtomicUsize::new(0);
    let post = || {
        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % clients.len();
        let (client, params) = (clients[i].clone(), params.clone());
        async move {
            let (id, _) = client.post_job(params).await?;
            anyhow::Ok(id)
        }
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
    // Chain rounds: transactions that must wait for an earlier one of the same job (post,
    // then the bids, then the commits, then the reveals: each phase change starts a round).
    // Transactions: distinct transactions with an event of the job up to its verification.
    let mut rounds = Vec::new();
    let mut txs = Vec::new();
    for id in &ids {
        let events = state.events(*id)?;
        let upto: Vec<_> = events
            .iter()
            .take_while(|e| e.event != "JobVerified")
            .collect();
        let phases = upto.iter().filter(|e| e.event == "PhaseStarted").count();
        rounds.push(2 + phases);
        let mut hashes: Vec<_> = upto.iter().map(|e| e.tx).collect();
        hashes.sort();
        hashes.dedup();
        txs.push(hashes.len());
    }
    // Throughput: post them all at once, then wait for every one.
    let t0 = Instant::now();
    let posts: Vec<_> = (0..jobs).map(|_| tokio::spawn(post())).collect();
    let mut batch = Vec::with_capacity(jobs);
    for p in posts {
        batch.push(p.await??);
    }
    let posted = t0.elapsed();
    // Only the jobs not yet seen verified are read again (reading every job each time would
    // cost the nodes CPU they need).
    let mut pending = batch.clone();
    loop {
        pending.retain(|id| !verified(*id));
        if pending.is_empty() {
            break;
        }
        if t0.elapsed() > Duration::from_secs(300) {
            let done = jobs - pending.len();
            for id in &pending {
                let job = state.job(*id)?.context("job")?;
                eprintln!(
                    "job {id}: {:?}, {} bids, {} deals",
                    job.state,
                    job.bids.len(),
                    job.deals.len()
                );
                for (i, n) in stack.nodes.iter().enumerate() {
                    let e = n.state().execution(*id)?;
                    let d = n.state().decision(*id)?;
                    eprintln!(
                        "  node {i}: {:?} / {:?}",
                        e.map(|e| e.step),
                        d.map(|d| d.reason)
                    );
                }
            }
            bail!("batch not verified after 300 s ({done} of {jobs} verified)");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let secs = t0.elapsed().as_secs_f64();
    println!("nodes {nodes}, jobs {jobs}, creator wallets {creators}");
    println!(
        "submit-to-verified p50 {:?}, p95 {:?}",
        percentile(&lat, 0.5),
        percentile(&lat, 0.95)
    );
    println!(
        "verified jobs/s {:.1} ({jobs} jobs posted in {:.2} s, all verified after {secs:.2} s)",
        jobs as f64 / secs,
        posted.as_secs_f64()
    );
    println!(
        "chain rounds per job up to verification: min {:?}, max {:?}; transactions per job: max {:?}",
        rounds.iter().min(),
        rounds.iter().max(),
        txs.iter().max()
    );
    stack.shutdown().await;
    Ok(())
}
