//! Submit-to-verified latency and sustained verified jobs per second for a hello-world WASM
//! job on an in-process devstack (embedded devchain, NODES staked nodes).
//!
//! `scripts/bench-node.sh [--nodes 10] [--jobs 1000] [--rate 20] [--creators 4]
//! [--latency-jobs 5] [--bid-window 5] [--poll-ms 100] [--distinct true]`: first LATENCY-JOBS jobs one
//! after another (submit → verified, chain rounds, transactions per job), then JOBS jobs posted
//! at RATE per second (0: all at once) from CREATORS wallets, followed until every one is
//! verified. With `--distinct true` each job's spec passes the job's number as an argument, so
//! every job has its own result (a new CID for the swarm to pin); otherwise every job has the
//! same result.

use std::time::{Duration, Instant};

use alloy::signers::local::PrivateKeySigner;
use anyhow::{Context, Result, bail, ensure};
use shoal_api::JobId;
use shoal_chain::JobState;
use shoal_devstack::{self as devstack, DevstackConfig, ETHER};
use shoal_types::JobSpec;

/// Once every job is posted, a run with pending jobs and no verification for this long stops
/// and shows where each pending job is.
const STALL: Duration = Duration::from_secs(60);

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

struct Args {
    nodes: usize,
    jobs: usize,
    rate: f64,
    creators: usize,
    latency_jobs: usize,
    bid_window: u64,
    poll_ms: u64,
    distinct: bool,
}

fn args() -> Result<Args> {
    let mut a = Args {
        nodes: 10,
        jobs: 1_000,
        rate: 20.0,
        creators: 4,
        latency_jobs: 5,
        bid_window: 5,
        poll_ms: 100,
        distinct: false,
    };
    for (flag, v) in shoal_devstack::flags()? {
        match flag.as_str() {
            "--nodes" => a.nodes = v.parse()?,
            "--jobs" => a.jobs = v.parse()?,
            "--rate" => a.rate = v.parse()?,
            "--creators" => a.creators = v.parse()?,
            "--latency-jobs" => a.latency_jobs = v.parse()?,
            "--bid-window" => a.bid_window = v.parse()?,
            "--poll-ms" => a.poll_ms = v.parse()?,
            "--distinct" => a.distinct = v.parse()?,
            other => {
                bail!(
                    "unknown flag {other}; see the header of node/devstack/examples/bench_node.rs"
                )
            }
        }
    }
    ensure!(a.nodes >= 3, "--nodes: the job needs 3 bidders");
    ensure!(
        a.jobs > 0 && a.creators > 0 && a.bid_window > 0,
        "--jobs, --creators and --bid-window must be positive"
    );
    Ok(a)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let a = args()?;
    let (nodes, jobs, creators) = (a.nodes, a.jobs, a.creators);
    let dir = tempfile::tempdir()?;
    let stack = devstack::start(DevstackConfig {
        nodes,
        base_dir: dir.path().to_path_buf(),
        poll_interval: Duration::from_millis(a.poll_ms),
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
    // One spec for every job, or (`--distinct`) one per job with the job's number as its
    // argument, all uploaded before the clock starts.
    let specs = if a.distinct { a.latency_jobs + jobs } else { 1 };
    let mut params = Vec::with_capacity(specs);
    for i in 0..specs {
        let args = if a.distinct {
            format!("\n    args: [\"{i}\"]")
        } else {
            String::new()
        };
        let yaml = format!(
            "name: hello\nengine:\n  wasm:\n    module: ipfs://{module}{args}\ndeal:\n  concurrency: 3\n  confidence: 2\n  min_bids: 3\n  mediation: false\n  windows: {{bid: {}s, exec: 60s, reveal: 60s}}\n",
            a.bid_window
        );
        let spec = JobSpec::from_yaml(&yaml)?;
        let spec_cid = shoal_store::parse_cid(&upload(&api, spec.to_canonical_json()).await?)?;
        params.push(shoal_chain::job_params(&spec, spec_cid.to_bytes()));
    }
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
    let (clients, params) = (std::sync::Arc::new(clients), std::sync::Arc::new(params));
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let post = move || {
        let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let client = clients[n % clients.len()].clone();
        let params = params[n % params.len()].clone();
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

    // Latency: one job at a time. Every job waits out its bid window (at least a second).
    let mut lat = Vec::new();
    let mut ids = Vec::new();
    for _ in 0..a.latency_jobs {
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
    // Throughput: JOBS jobs posted at RATE per second, each followed from its post until node 0
    // has it verified, while the rest are still being posted. The sustained rate is taken
    // between the first and the last verification (the bid window delays every job alike; it
    // is latency, not throughput).
    let t0 = Instant::now();
    let (posted_tx, mut posted_rx) = tokio::sync::mpsc::channel::<(JobId, Instant)>(jobs);
    let mut poster = Some({
        let rate = a.rate;
        let post = post.clone();
        tokio::spawn(async move {
            let mut posts = Vec::with_capacity(jobs);
            for i in 0..jobs {
                if rate > 0.0 {
                    tokio::time::sleep_until(
                        (t0 + Duration::from_secs_f64(i as f64 / rate)).into(),
                    )
                    .await;
                }
                let (post, tx) = (post.clone(), posted_tx.clone());
                posts.push(tokio::spawn(async move {
                    let at = Instant::now();
                    let id = post().await?;
                    tx.send((id, at)).await.ok();
                    anyhow::Ok(())
                }));
            }
            for p in posts {
                p.await??;
            }
            anyhow::Ok(t0.elapsed())
        })
    });
    // Only the jobs not yet seen verified are read again (reading every job each time would
    // cost the nodes CPU they need).
    let mut pending: Vec<(JobId, Instant)> = Vec::new();
    let mut under_load = Vec::with_capacity(jobs);
    let mut first_verified = None;
    let mut last_report = Instant::now();
    let mut posted = None;
    let mut progress = Instant::now();
    loop {
        while let Ok(p) = posted_rx.try_recv() {
            pending.push(p);
        }
        if let Some(p) = poster.take_if(|p| p.is_finished()) {
            posted = Some(p.await??);
            while let Ok(p) = posted_rx.try_recv() {
                pending.push(p);
            }
        }
        pending.retain(|(id, at)| {
            if !verified(*id) {
                return true;
            }
            under_load.push(at.elapsed());
            first_verified.get_or_insert_with(|| t0.elapsed());
            progress = Instant::now();
            false
        });
        let done = under_load.len();
        if last_report.elapsed() >= Duration::from_secs(5) {
            last_report = Instant::now();
            eprintln!(
                "bench: {:>4} s: {done} of {jobs} verified",
                t0.elapsed().as_secs()
            );
        }
        if posted.is_some() && pending.is_empty() {
            break;
        }
        let stalled = posted.is_some() && progress.elapsed() > STALL;
        if stalled
            || t0.elapsed()
                > Duration::from_secs_f64(jobs as f64 / a.rate.max(1.0)) + Duration::from_secs(300)
        {
            for (id, _) in &pending {
                let job = state.job(*id)?.context("job")?;
                eprintln!(
                    "job {id}: {:?}, {} bids, {} deals, bid deadline {}",
                    job.state,
                    job.bids.len(),
                    job.deals.len(),
                    job.bid_deadline
                );
                for (i, n) in stack.nodes.iter().enumerate() {
                    let e = n.state().execution(*id)?;
                    let d = n.state().decision(*id)?;
                    eprintln!(
                        "  node {i}: {:?} / {:?}",
                        e.map(|e| (e.step, e.updated_at)),
                        d.map(|d| (d.reason, d.at))
                    );
                }
            }
            bail!(
                "jobs not verified ({done} of {jobs} verified; {})",
                if stalled {
                    format!("none for {} s", STALL.as_secs())
                } else {
                    "300 s after posting".into()
                }
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let posted = posted.unwrap_or_default();
    let secs = t0.elapsed().as_secs_f64();
    let first = first_verified.unwrap_or_default().as_secs_f64();
    under_load.sort();
    println!(
        "nodes {nodes}, creator wallets {creators}, bid window {} s, {}",
        a.bid_window,
        if a.distinct {
            "a distinct result per job"
        } else {
            "the same result for every job"
        }
    );
    if !lat.is_empty() {
        println!(
            "submit-to-verified over {} jobs: p50 {:?}, p95 {:?}",
            lat.len(),
            percentile(&lat, 0.5),
            percentile(&lat, 0.95)
        );
    }
    println!(
        "throughput: {jobs} jobs posted at {} in {:.2} s; first verified after {first:.2} s, all after {secs:.2} s",
        if a.rate > 0.0 {
            format!("{}/s", a.rate)
        } else {
            "once".to_owned()
        },
        posted.as_secs_f64()
    );
    println!(
        "submit-to-verified under load: p50 {:?}, p95 {:?}",
        percentile(&under_load, 0.5),
        percentile(&under_load, 0.95)
    );
    println!(
        "verified jobs/s: sustained {:.1} (first to last verification), overall {:.1} (first post to last verification)",
        (jobs.saturating_sub(1)) as f64 / (secs - first).max(1e-3),
        jobs as f64 / secs
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
