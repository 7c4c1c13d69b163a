//! Replicated pinning figures (docs/benchmarks.md, "Pinning") on node processes:
//!
//! 1. pins/s accepted: `--pins` small CIDs pinned through one node's `POST /api/v1/pins`,
//!    one request at a time and `--concurrency` at a time;
//! 2. re-replication: `--mib` MiB of random data in `--chunk-mib` MiB files, pinned at rf 2–2;
//!    the non-uploading node holding the most of them is SIGKILLed; the time until every file
//!    has 2 live pinned copies again (grace period included, and without it).
//!
//! `scripts/bench-pinning.sh [--nodes 4] [--pins 300] [--concurrency 8] [--mib 1024]
//! [--chunk-mib 64] [--grace 5]`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use sha2::{Digest, Sha256};
use shoal_api::{PinPeerView, PinView};
use shoal_devstack::{self as devstack, DevstackConfig};
use shoal_e2e::{NodeProcess, upload};

#[derive(Debug, Clone)]
struct Args {
    nodes: usize,
    pins: usize,
    concurrency: usize,
    mib: usize,
    chunk_mib: usize,
    grace: u64,
    node_bin: PathBuf,
}

fn args() -> Result<Args> {
    let mut a = Args {
        nodes: 4,
        pins: 300,
        concurrency: 8,
        mib: 1024,
        chunk_mib: 64,
        grace: 5,
        node_bin: PathBuf::new(),
    };
    for (k, v) in shoal_devstack::flags()? {
        match k.as_str() {
            "--nodes" => a.nodes = v.parse()?,
            "--pins" => a.pins = v.parse()?,
            "--concurrency" => a.concurrency = v.parse()?,
            "--mib" => a.mib = v.parse()?,
            "--chunk-mib" => a.chunk_mib = v.parse()?,
            "--grace" => a.grace = v.parse()?,
            "--node-bin" => a.node_bin = PathBuf::from(v),
            other => bail!("unknown option {other}"),
        }
    }
    ensure!(
        a.node_bin.is_file(),
        "--node-bin must name the built shoal-e2e-node binary (scripts/bench-pinning.sh passes it)"
    );
    ensure!(a.nodes >= 3, "--nodes must be at least 3");
    Ok(a)
}

fn blob(seed: usize, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 32);
    let mut block = Sha256::digest(seed.to_be_bytes()).to_vec();
    while out.len() < len {
        block = Sha256::digest(&block).to_vec();
        out.extend_from_slice(&block);
    }
    out.truncate(len);
    out
}

async fn get<T: serde::de::DeserializeOwned>(url: &str) -> Result<T> {
    let resp = reqwest::get(url).await?;
    ensure!(resp.status().is_success(), "GET {url}: {}", resp.status());
    Ok(resp.json().await?)
}

async fn pin(client: &reqwest::Client, api: &str, cid: &str, rf: u32) -> Result<()> {
    let resp = client
        .post(format!("{api}/api/v1/pins"))
        .json(&serde_json::json!({"cid": cid, "replicationMin": rf, "replicationMax": rf}))
        .send()
        .await?;
    ensure!(
        resp.status().is_success(),
        "pin {cid}: {}",
        resp.text().await?
    );
    Ok(())
}

async fn wait_copies(api: &str, cids: &[String], n: u32, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let ps: Vec<PinView> = get(&format!("{api}/api/v1/pins")).await?;
        let ok = cids
            .iter()
            .all(|c| ps.iter().any(|p| &p.cid == c && p.pinned_copies >= n));
        if ok {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("not every CID has {n} copies after {} s", timeout.as_secs());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let a = args()?;
    let dir = tempfile::tempdir()?;
    let grace = a.grace;
    let stack = devstack::start(DevstackConfig {
        nodes: a.nodes,
        base_dir: dir.path().to_path_buf(),
        external: (0..a.nodes).collect(),
        customize: Some(Arc::new(move |_, c: &mut shoal_node::NodeConfig| {
            c.bid.enabled = false;
            c.api.max_body_bytes = 256 << 20;
            c.pinning.grace_period_secs = grace;
            c.pinning.heartbeat_interval_ms = 500;
            c.pinning.reconcile_interval_ms = 300;
            c.pinning.sync_interval_secs = 2;
        })),
        ..Default::default()
    })
    .await?;
    let mut procs = Vec::new();
    for ext in stack.external() {
        procs.push(NodeProcess::start(&a.node_bin, ext).await?);
    }
    let urls: Vec<String> = procs.iter().map(|p| p.api_url().to_owned()).collect();
    for u in &urls {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ps: Vec<PinPeerView> = get(&format!("{u}/api/v1/pinning/peers")).await?;
            if ps.iter().filter(|p| p.live).count() == a.nodes {
                break;
            }
            ensure!(Instant::now() < deadline, "the swarm did not form");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    // 1. pins/s accepted.
    let mut small = Vec::new();
    for i in 0..a.pins * 2 {
        small.push(upload(&urls[i % a.nodes], blob(i, 1024 + i)).await?);
    }
    let client = reqwest::Client::new();
    let t = Instant::now();
    for cid in &small[..a.pins] {
        pin(&client, &urls[0], cid, 2).await?;
    }
    let serial = a.pins as f64 / t.elapsed().as_secs_f64();
    let t = Instant::now();
    let batch: Vec<String> = small[a.pins..].to_vec();
    let per = batch.len().div_ceil(a.concurrency.max(1));
    let mut tasks = Vec::new();
    for part in batch.chunks(per) {
        let (client, api, part) = (client.clone(), urls[0].clone(), part.to_vec());
        tasks.push(tokio::spawn(async move {
            for cid in &part {
                pin(&client, &api, cid, 2).await?;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let parallel = a.pins as f64 / t.elapsed().as_secs_f64();
    let t = Instant::now();
    wait_copies(&urls[0], &small, 2, Duration::from_secs(600)).await?;
    let settle = t.elapsed().as_secs_f64();

    // 2. re-replication after a node loss.
    let files = a.mib.div_ceil(a.chunk_mib);
    let mut big = Vec::new();
    let t = Instant::now();
    for i in 0..files {
        let len = (a.chunk_mib << 20).min((a.mib << 20) - i * (a.chunk_mib << 20));
        big.push(upload(&urls[0], blob(1_000_000 + i, len)).await?);
    }
    let upload_secs = t.elapsed().as_secs_f64();
    for cid in &big {
        pin(&client, &urls[0], cid, 2).await?;
    }
    let t = Instant::now();
    wait_copies(&urls[0], &big, 2, Duration::from_secs(3600)).await?;
    let first_copies = t.elapsed().as_secs_f64();
    // The node, other than the uploader, allocated the most of the big files.
    let ps: Vec<PinView> = get(&format!("{}/api/v1/pins", urls[0])).await?;
    let mut peer_ids = Vec::new();
    for u in &urls {
        let me: Vec<PinPeerView> = get(&format!("{u}/api/v1/pinning/peers")).await?;
        peer_ids.push(me.into_iter().find(|p| p.me).context("me")?.peer_id);
    }
    let (victim, held) = (1..a.nodes)
        .map(|i| {
            let n = ps
                .iter()
                .filter(|p| big.contains(&p.cid) && p.allocations.contains(&peer_ids[i]))
                .count();
            (i, n)
        })
        .max_by_key(|(_, n)| *n)
        .context("no victim")?;
    procs[victim].kill().await?;
    let killed = Instant::now();
    // Wait until the victim is down in node 0's view and every file has 2 copies again.
    loop {
        let peers: Vec<PinPeerView> = get(&format!("{}/api/v1/pinning/peers", urls[0])).await?;
        let down = peers
            .iter()
            .any(|p| p.peer_id == peer_ids[victim] && !p.live);
        if down {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let detected = killed.elapsed().as_secs_f64();
    wait_copies(&urls[0], &big, 2, Duration::from_secs(3600)).await?;
    let healed = killed.elapsed().as_secs_f64();
    let lost_mib = held * a.chunk_mib;

    println!("| figure | value |");
    println!("| --- | ---: |");
    println!("| nodes (processes) | {} |", a.nodes);
    println!("| pins accepted, one request at a time | {serial:.0} pins/s |");
    println!(
        "| pins accepted, {} clients at once | {parallel:.0} pins/s |",
        a.concurrency
    );
    println!(
        "| {} small CIDs at 2 copies after the last add | {settle:.1} s |",
        a.pins * 2
    );
    println!(
        "| upload of {} MiB ({} files) to one node | {upload_secs:.1} s |",
        a.mib, files
    );
    println!("| first 2 copies of {} MiB | {first_copies:.1} s |", a.mib);
    println!("| killed node held | {held} files, {lost_mib} MiB |");
    println!("| kill → node seen down (grace {grace} s) | {detected:.1} s |");
    println!("| kill → every file at 2 copies again | {healed:.1} s |");
    println!(
        "| re-replication after detection | {:.1} s ({:.0} MiB/s) |",
        healed - detected,
        lost_mib as f64 / (healed - detected).max(0.001)
    );
    drop(procs);
    drop(stack);
    Ok(())
}
