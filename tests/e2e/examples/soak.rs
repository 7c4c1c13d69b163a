//! Reliability and trust soak: a devstack whose nodes are separate processes posts JOBS jobs
//! of mixed kinds from several creator wallets at a steady rate, SIGKILLs a random node every
//! K seconds and restarts it after a delay (at most a tenth of the nodes down at once), with
//! B colluding bad nodes (the same wrong result). At the end it checks every verified result
//! against a reference run of the same program, counts who was slashed, checks the market's
//! and the registry's balances against what they owe, and prints the figures.
//!
//! `scripts/soak.sh [--nodes 10] [--jobs 10000] [--rate 5] [--kill-every 10] [--down-for 4]
//! [--bad-nodes 1] [--creators 4] [--docker-every 50]` (see docs/benchmarks.md).
//! Exits non-zero when a wrong result was accepted, an honest node was slashed or money is
//! not conserved.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy::primitives::{Address, B256, U256};
use alloy::providers::Provider as _;
use alloy::rpc::types::Filter;
use alloy::signers::local::PrivateKeySigner;
use anyhow::{Context, Result, bail, ensure};
use shoal_chain::{ChainClient, ChainEvent, JobId, JobState, MarketEvent};
use shoal_devstack::{self as devstack, DevstackConfig, ETHER, Fault};
use shoal_e2e::{FOX, NodeProcess, upload, wasm};
use shoal_executor::{
    DockerConfig, DockerExecutor, DockerSpec, EngineSpec, ExecutionId, ExecutionRequest, Executor,
    InputMount, WasmConfig, WasmExecutor, WasmModule, WasmSpec,
};
use shoal_types::JobSpec;
use tokio::sync::Mutex;

/// The deal of every soak job: three operators, two must agree, mediation on.
const DEAL: &str = "deal:\n  concurrency: 3\n  confidence: 2\n  min_bids: 3\n  mediation: true\n  windows: {bid: 5s, exec: 40s, reveal: 40s}\nresources:\n  timeout: 20s\n";

#[derive(Debug, Clone)]
struct Args {
    nodes: usize,
    jobs: usize,
    rate: f64,
    kill_every: f64,
    down_for: f64,
    bad_nodes: usize,
    creators: usize,
    docker_every: usize,
    node_bin: PathBuf,
    wait_secs: u64,
}

fn args() -> Result<Args> {
    let mut a = Args {
        nodes: 10,
        jobs: 10_000,
        rate: 5.0,
        kill_every: 10.0,
        down_for: 4.0,
        bad_nodes: 1,
        creators: 4,
        docker_every: 0,
        node_bin: PathBuf::new(),
        wait_secs: 600,
    };
    for (flag, v) in shoal_devstack::flags()? {
        match flag.as_str() {
            "--nodes" => a.nodes = v.parse()?,
            "--jobs" => a.jobs = v.parse()?,
            "--rate" => a.rate = v.parse()?,
            "--kill-every" => a.kill_every = v.parse()?,
            "--down-for" => a.down_for = v.parse()?,
            "--bad-nodes" => a.bad_nodes = v.parse()?,
            "--creators" => a.creators = v.parse()?,
            "--docker-every" => a.docker_every = v.parse()?,
            "--node-bin" => a.node_bin = PathBuf::from(v),
            "--wait" => a.wait_secs = v.parse()?,
            other => bail!("unknown flag {other}; see the header of tests/e2e/examples/soak.rs"),
        }
    }
    ensure!(
        a.node_bin.is_file(),
        "--node-bin must name the built shoal-e2e-node binary (scripts/soak.sh passes it)"
    );
    ensure!(
        a.nodes >= 4 && a.bad_nodes * 3 < a.nodes,
        "need at least 4 nodes, under a third bad"
    );
    ensure!(
        a.rate > 0.0 && a.jobs > 0,
        "--rate and --jobs must be positive"
    );
    Ok(a)
}

/// The kinds of job the soak posts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Hello,
    Wordcount,
    Docker,
}

/// A kind's spec and the result hash a correct run of it has.
struct Program {
    spec: JobSpec,
    params: shoal_chain::JobParams,
    reference: B256,
}

/// Runs `engine` (with `fox` mounted at /inputs/fox.txt when given) on this machine: the
/// result hash every honest node must reach.
async fn reference_run(
    executor: &dyn Executor,
    root: &std::path::Path,
    name: &str,
    engine: EngineSpec,
    fox: Option<&std::path::Path>,
) -> Result<B256> {
    let mut req = ExecutionRequest::new(ExecutionId::new(format!("reference-{name}"))?, engine);
    if let Some(f) = fox {
        req.inputs.push(InputMount {
            host_path: f.to_path_buf(),
            container_path: "/inputs/fox.txt".into(),
        });
    }
    let r = executor
        .run(req, shoal_executor::CancellationToken::new())
        .await?;
    let _ = std::fs::remove_dir_all(root.join(format!("reference-{name}")));
    Ok(shoal_api::result_hash_of(&r.result_hash)?)
}

/// The module, inputs and spec of each kind, uploaded to every node, with its reference.
async fn programs(
    apis: &[String],
    docker: bool,
    scratch: &std::path::Path,
) -> Result<BTreeMap<Kind, Program>> {
    let upload_all = |bytes: Vec<u8>| async move {
        let mut cid = String::new();
        for api in apis {
            cid = upload(api, bytes.clone()).await?;
        }
        anyhow::Ok(cid)
    };
    let hello = wasm("hello")?;
    let wordcount = wasm("wordcount")?;
    let hello_cid = upload_all(hello.clone()).await?;
    let wc_cid = upload_all(wordcount.clone()).await?;
    let fox_cid = upload_all(FOX.to_vec()).await?;
    let fox = scratch.join("fox.txt");
    std::fs::write(&fox, FOX)?;
    let results = scratch.join("results");
    let wasm_exec = WasmExecutor::new(WasmConfig::new(&results))?;
    let wasm_engine = |bytes: &[u8], args: Vec<String>| {
        EngineSpec::Wasm(WasmSpec {
            module: WasmModule::Bytes(Arc::from(bytes)),
            args,
            ..WasmSpec::new(WasmModule::Bytes(Arc::from(bytes)))
        })
    };
    let mut out = BTreeMap::new();
    let mut add = |kind, yaml: String, reference| -> Result<()> {
        let spec = JobSpec::from_yaml(&yaml)?;
        let cid = shoal_store::hash_reader(
            &spec.to_canonical_json()[..],
            shoal_store::Profile::UnixfsV1_2025,
        )?;
        let params = shoal_chain::job_params(&spec, cid.to_bytes());
        out.insert(
            kind,
            Program {
                spec,
                params,
                reference,
            },
        );
        Ok(())
    };
    let r = reference_run(
        &wasm_exec,
        &results,
        "hello",
        wasm_engine(&hello, vec![]),
        None,
    )
    .await?;
    add(
        Kind::Hello,
        format!("name: hello\nengine:\n  wasm:\n    module: ipfs://{hello_cid}\n{DEAL}"),
        r,
    )?;
    let args = vec!["/inputs".to_owned()];
    let r = reference_run(
        &wasm_exec,
        &results,
        "wordcount",
        wasm_engine(&wordcount, args),
        Some(&fox),
    )
    .await?;
    add(
        Kind::Wordcount,
        format!(
            "name: wordcount\nengine:\n  wasm:\n    module: ipfs://{wc_cid}\n    args: [\"/inputs\"]\ninputs:\n  - source: ipfs://{fox_cid}\n    path: /inputs/fox.txt\n{DEAL}"
        ),
        r,
    )?;
    if docker {
        let d = DockerExecutor::connect(DockerConfig::new(&results)).await?;
        let engine = EngineSpec::Docker(DockerSpec {
            image: "shoal-test/busybox:latest".into(),
            cmd: Some(vec!["echo".into(), "soak".into()]),
            ..Default::default()
        });
        let r = reference_run(&d, &results, "docker", engine, None).await?;
        add(
            Kind::Docker,
            format!(
                "name: docker\nengine:\n  docker:\n    image: shoal-test/busybox:latest\n    cmd: [echo, soak]\n{DEAL}"
            ),
            r,
        )?;
    }
    for p in out.values() {
        upload_all(p.spec.to_canonical_json()).await?;
    }
    Ok(out)
}

/// One posted job.
#[derive(Debug, Clone)]
struct Posted {
    kind: Kind,
    at: Instant,
    ended: Option<(JobState, Instant)>,
}

/// Reads the state of every posted job that has not ended, every half second, and stamps its
/// end when it is first seen final; stops when posting is over and every job ended, or `wait`
/// after posting ended.
async fn follow_jobs(
    reader: ChainClient,
    jobs: Arc<Mutex<BTreeMap<JobId, Posted>>>,
    posting_done: tokio_util::sync::CancellationToken,
    wait: Duration,
) {
    let mut deadline = None;
    loop {
        let open: Vec<JobId> = jobs
            .lock()
            .await
            .iter()
            .filter(|(_, j)| j.ended.is_none())
            .map(|(id, _)| *id)
            .collect();
        if posting_done.is_cancelled() {
            let d = *deadline.get_or_insert_with(|| Instant::now() + wait);
            if open.is_empty() || Instant::now() > d {
                return;
            }
        }
        for chunk in open.chunks(200) {
            let reads = chunk.iter().map(|id| reader.get_job(*id));
            let states = futures::future::join_all(reads).await;
            let now = Instant::now();
            let mut jobs = jobs.lock().await;
            for (id, r) in chunk.iter().zip(states) {
                if let Ok(j) = r
                    && j.state.is_final()
                    && let Some(p) = jobs.get_mut(id)
                {
                    p.ended = Some((j.state, now));
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Kills a random running node every `every` and restarts it `down` later; at most a tenth of
/// the nodes (at least one) are down at once. Returns how many kills it made.
async fn chaos(
    procs: Arc<Vec<Mutex<NodeProcess>>>,
    every: Duration,
    down: Duration,
    stop: tokio_util::sync::CancellationToken,
) -> Result<usize> {
    let most_down = (procs.len() / 10).max(1);
    let down_now = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut kills = 0;
    let mut restarts: Vec<tokio::task::JoinHandle<Result<()>>> = Vec::new();
    let mut seed: u64 = 0x5eed;
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(every) => {}
        }
        // A node that did not come back is a finding: stop the soak with its diagnostics.
        let (done, running): (Vec<_>, Vec<_>) = restarts.into_iter().partition(|r| r.is_finished());
        restarts = running;
        for r in done {
            r.await??;
        }
        if down_now.load(std::sync::atomic::Ordering::SeqCst) >= most_down {
            continue;
        }
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let i = usize::try_from(seed >> 33).unwrap_or(0) % procs.len();
        let mut p = procs[i].lock().await;
        if p.pid().is_none() {
            continue;
        }
        p.kill()
            .await
            .with_context(|| format!("killing node {i}"))?;
        drop(p);
        kills += 1;
        down_now.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        eprintln!("soak: killed node {i}; restarting it in {down:?}");
        let (procs, down_now) = (procs.clone(), down_now.clone());
        restarts.push(tokio::spawn(async move {
            tokio::time::sleep(down).await;
            let r = procs[i].lock().await.restart().await;
            down_now.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
            r.with_context(|| format!("restarting node {i}"))
        }));
    }
    for r in restarts {
        r.await??;
    }
    Ok(kills)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<()> {
    shoal_e2e::init_tracing();
    let a = args()?;
    let dir = tempfile::tempdir()?;
    let faults = (a.nodes - a.bad_nodes..a.nodes)
        .map(|i| (i, Fault::WrongResult))
        .collect();
    let stack = devstack::start(DevstackConfig {
        nodes: a.nodes,
        faults,
        external: (0..a.nodes).collect(),
        base_dir: dir.path().to_path_buf(),
        poll_interval: Duration::from_millis(200),
        docker: a.docker_every > 0,
        customize: Some(Arc::new(|_, c: &mut shoal_node::NodeConfig| {
            c.bid.max_concurrent_jobs = 100_000;
            c.executor.max_parallel = 2;
        })),
        ..Default::default()
    })
    .await?;
    let operator_of = |e: &devstack::ExternalNode| {
        e.config
            .operator
            .signer()
            .ok()
            .flatten()
            .map(|s| s.address())
    };
    let bad: BTreeSet<Address> = stack
        .external()
        .iter()
        .filter(|e| e.fault.is_some())
        .filter_map(operator_of)
        .collect();
    let operators: Vec<Address> = stack.external().iter().filter_map(operator_of).collect();
    let mut procs = Vec::new();
    for ext in stack.external() {
        procs.push(Mutex::new(NodeProcess::start(&a.node_bin, ext).await?));
    }
    let mut apis = Vec::new();
    for p in &procs {
        apis.push(p.lock().await.api_url().to_owned());
    }
    eprintln!("soak: {} node processes up ({} bad)", a.nodes, bad.len());
    let programs = programs(&apis, a.docker_every > 0, dir.path()).await?;

    // Creator wallets, each with its own nonces.
    let d = stack.deployment.on_chain(stack.chain_id);
    let connect = |signer: PrivateKeySigner| {
        ChainClient::builder(&stack.rpc_url)
            .signer(signer)
            .deployment(d.clone())
            .connect()
    };
    let funder = connect(stack.creator_key.parse()?).await?;
    let mut creators = vec![funder.clone()];
    let first = u32::try_from(a.nodes + 2)?;
    let extra = shoal_devchain::derive_dev_accounts(first + u32::try_from(a.creators)?)?;
    for acct in extra.into_iter().skip(first as usize).take(a.creators - 1) {
        funder
            .transfer(acct.address, U256::from(500u128 * ETHER))
            .await?;
        creators.push(connect(acct.signer).await?);
    }
    let creator_addrs: Vec<Address> = creators.iter().filter_map(|c| c.address()).collect();

    let procs = Arc::new(procs);
    let stop = tokio_util::sync::CancellationToken::new();
    let chaos_task = tokio::spawn(chaos(
        procs.clone(),
        Duration::from_secs_f64(a.kill_every),
        Duration::from_secs_f64(a.down_for),
        stop.clone(),
    ));

    // Post at a steady rate while following every posted job to its end (a job's end is
    // stamped when the follower first sees it final, every half second).
    let reader = ChainClient::connect(&stack.rpc_url, None)
        .await?
        .with_deployment(d.clone())?;
    let followed: Arc<Mutex<BTreeMap<JobId, Posted>>> = Arc::default();
    let posting_done = tokio_util::sync::CancellationToken::new();
    let follower = tokio::spawn(follow_jobs(
        reader.clone(),
        followed.clone(),
        posting_done.clone(),
        Duration::from_secs(a.wait_secs),
    ));
    let started = Instant::now();
    let mut posting = Vec::new();
    for i in 0..a.jobs {
        let due = started + Duration::from_secs_f64(i as f64 / a.rate);
        tokio::time::sleep_until(due.into()).await;
        if chaos_task.is_finished() {
            // A node did not come back: its diagnostics are below.
            break;
        }
        let kind = if a.docker_every > 0 && i % a.docker_every == a.docker_every - 1 {
            Kind::Docker
        } else if i % 2 == 0 {
            Kind::Hello
        } else {
            Kind::Wordcount
        };
        let (client, params, followed) = (
            creators[i % creators.len()].clone(),
            programs[&kind].params.clone(),
            followed.clone(),
        );
        posting.push(tokio::spawn(async move {
            let at = Instant::now();
            let (id, _) = client.post_job(params).await?;
            followed.lock().await.insert(
                id,
                Posted {
                    kind,
                    at,
                    ended: None,
                },
            );
            anyhow::Ok(())
        }));
    }
    let mut post_errors = 0;
    for p in posting {
        if let Err(e) = p.await? {
            post_errors += 1;
            eprintln!("soak: a post failed: {e:#}");
        }
    }
    let posted_for = started.elapsed();
    eprintln!(
        "soak: {} jobs posted in {posted_for:.1?}",
        followed.lock().await.len()
    );
    posting_done.cancel();
    if chaos_task.is_finished() {
        stop.cancel();
        chaos_task.await??;
        bail!("the chaos task ended early");
    }
    follower.await?;
    let jobs = std::mem::take(&mut *followed.lock().await);
    stop.cancel();
    let kills = chaos_task.await??;

    // What happened, from the market's events.
    let head = reader.block_number().await?;
    let mut events = Vec::new();
    let mut from = d.deploy_block;
    while from <= head {
        let to = (from + 4_999).min(head);
        let filter = Filter::new()
            .address(vec![d.job_market, d.operator_registry])
            .from_block(from)
            .to_block(to);
        for log in reader.provider().get_logs(&filter).await? {
            if let Some(ev) = ChainEvent::from_rpc_log(&log, d.job_market, d.operator_registry) {
                events.push(ev?);
            }
        }
        from = to + 1;
    }
    let mut verified_hash = BTreeMap::new();
    let mut failed: BTreeMap<String, usize> = BTreeMap::new();
    let mut slashed_bad = 0;
    let mut slashed_honest = Vec::new();
    let mut bids_by: BTreeMap<Address, JobId> = BTreeMap::new();
    for e in &events {
        match &e.event {
            MarketEvent::JobVerified(v) => {
                // the sealed hash: compared with the reference result sealed for this job
                verified_hash.insert(JobId(v.jobId), v.sealedHash);
            }
            MarketEvent::JobFailed(f) => *failed.entry(f.reason.to_string()).or_default() += 1,
            MarketEvent::Slashed(s) if bad.contains(&s.operator) => slashed_bad += 1,
            MarketEvent::Slashed(s) => slashed_honest.push((JobId(s.jobId), s.operator, s.reason)),
            MarketEvent::BidPlaced(b) => {
                bids_by.insert(b.operator, JobId(b.jobId));
            }
            _ => {}
        }
    }
    let wrong: Vec<JobId> = verified_hash
        .iter()
        .filter(|(id, h)| {
            jobs.get(id)
                .is_some_and(|j| shoal_chain::sealed_hash(**id, programs[&j.kind].reference) != **h)
        })
        .map(|(id, _)| *id)
        .collect();
    let count = |s: JobState| {
        jobs.values()
            .filter(|j| j.ended.is_some_and(|(st, _)| st == s))
            .count()
    };
    let (verified, expired) = (count(JobState::Verified), count(JobState::Expired));
    let open = jobs.values().filter(|j| j.ended.is_none()).count();
    let mut latency: Vec<Duration> = jobs
        .values()
        .filter_map(|j| match j.ended {
            Some((JobState::Verified, t)) => Some(t - j.at),
            _ => None,
        })
        .collect();
    latency.sort();
    let last_verified = jobs
        .values()
        .filter_map(|j| match j.ended {
            Some((JobState::Verified, t)) => Some(t),
            _ => None,
        })
        .max()
        .unwrap_or(started);
    let throughput = verified as f64 / (last_verified - started).as_secs_f64().max(1e-3);

    // Money: the market holds the open escrow, every unclaimed payout and what was burned;
    // the registry every stake and pending withdrawal.
    let market_balance = reader.balance(d.job_market).await?;
    let mut owed = U256::ZERO;
    for id in jobs.keys() {
        owed += U256::from(reader.get_job(*id).await?.escrow);
    }
    for who in operators
        .iter()
        .chain(&creator_addrs)
        .chain(std::iter::once(&Address::ZERO))
    {
        owed += reader.withdrawable(*who).await?;
    }
    let registry_balance = reader.balance(d.operator_registry).await?;
    let mut bonded = U256::ZERO;
    for op in &operators {
        let o = reader.get_operator(*op).await?;
        bonded += U256::from(o.stake) + U256::from(o.pendingWithdrawal);
    }
    let money_ok = market_balance == owed && registry_balance == bonded;

    // No node stuck: every node follows the chain and bid on a job of the last fifth.
    let late = jobs.keys().nth(jobs.len() * 4 / 5).copied();
    let mut stuck = Vec::new();
    for (i, (api, op)) in apis.iter().zip(&operators).enumerate() {
        let synced = shoal_e2e::get_json(&format!("{api}/api/v1/status"))
            .await
            .ok()
            .and_then(|s| s["syncedBlock"].as_u64());
        let bid_late = late.is_none_or(|l| bids_by.get(op).is_some_and(|last| *last >= l));
        if synced.is_none_or(|s| s + 10 < head) || !bid_late {
            stuck.push(i);
        }
    }
    for p in procs.iter() {
        let mut p = p.lock().await;
        if p.pid().is_some() {
            let _ = p.kill().await;
        }
    }

    let total = jobs.len();
    let not_verified = total - verified;
    let pct = |n: usize| 100.0 * n as f64 / total.max(1) as f64;
    println!("| figure | value |");
    println!("|---|---|");
    println!(
        "| setup | {} node processes, {} bad (colluding), {} creators, {} jobs at {}/s, a node SIGKILLed every {}s and restarted after {}s ({} kills){} |",
        a.nodes,
        bad.len(),
        creators.len(),
        a.jobs,
        a.rate,
        a.kill_every,
        a.down_for,
        kills,
        if a.docker_every > 0 {
            format!(", a Docker job every {}th", a.docker_every)
        } else {
            String::new()
        }
    );
    println!("| posted | {total} ({post_errors} posts failed) |");
    println!("| verified | {verified} ({:.2} %) |", pct(verified));
    println!(
        "| not verified | {not_verified} ({:.2} %): failed {:?}, expired {expired}, still open {open} |",
        pct(not_verified),
        failed
    );
    println!("| wrong results accepted | {} |", wrong.len());
    println!("| bad nodes' slashes | {slashed_bad} |");
    println!("| honest nodes' slashes | {} |", slashed_honest.len());
    println!(
        "| money conserved | {} (market {market_balance} = owed {owed}; registry {registry_balance} = bonded {bonded}) |",
        if money_ok { "yes" } else { "NO" }
    );
    println!("| nodes stuck | {stuck:?} |");
    println!("| verified jobs/s | {throughput:.2} |");
    println!(
        "| submit → verified | p50 {:.1?}, p95 {:.1?} |",
        percentile(&latency, 0.5),
        percentile(&latency, 0.95)
    );
    for (id, op, reason) in &slashed_honest {
        eprintln!("soak: honest {op} slashed on job {id} ({reason})");
    }
    ensure!(
        wrong.is_empty(),
        "wrong results were accepted: jobs {wrong:?}"
    );
    ensure!(slashed_honest.is_empty(), "honest nodes were slashed");
    ensure!(money_ok, "money is not conserved");
    stack.shutdown().await;
    Ok(())
}
