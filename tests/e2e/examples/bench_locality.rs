//! Data locality of sharded jobs (docs/sharding.md, docs/benchmarks.md "Sharded jobs"): the
//! same sharded wordcount job on a fresh in-process devstack, once with nodes declaring the
//! batches whose files they hold (`[bid] prefer_local = true`, the default) and once without,
//! and the bytes the nodes fetched from each other (`shoal_content_fetched_bytes_total`).
//!
//! The input files are spread: node i holds the files of batches b with b mod N == i (uploaded
//! as its own folder; a UnixFS file's CID depends only on its bytes, so they are the tree's
//! shards). The manifest is built here from a local import of the whole tree, so no node holds
//! more than its part.
//!
//!   cargo run --release -p shoal-e2e --example bench_locality -- \
//!       [--nodes 5] [--files 1000] [--batch 100] [--kib 16] [--mode both|on|off]

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use serde_json::Value;
use sha2::{Digest, Sha256};
use shoal_chain::{ChainClient, shard_job_params};
use shoal_devstack::{self as devstack, DevstackConfig};
use shoal_e2e::{get_json, upload, wasm};
use shoal_sdk::api::NodeApi;
use shoal_types::{JobSpec, Manifest};

#[derive(Debug, Clone)]
struct Args {
    nodes: usize,
    files: usize,
    batch: u32,
    kib: usize,
    modes: Vec<bool>,
}

fn args() -> Result<Args> {
    let mut a = Args {
        nodes: 5,
        files: 1000,
        batch: 100,
        kib: 16,
        modes: vec![true, false],
    };
    for (k, v) in shoal_devstack::flags()? {
        match k.as_str() {
            "--nodes" => a.nodes = v.parse()?,
            "--files" => a.files = v.parse()?,
            "--batch" => a.batch = v.parse()?,
            "--kib" => a.kib = v.parse()?,
            "--mode" => {
                a.modes = match v.as_str() {
                    "both" => vec![true, false],
                    "on" => vec![true],
                    "off" => vec![false],
                    other => bail!("--mode is both, on or off, not {other}"),
                }
            }
            other => bail!("unknown option {other}"),
        }
    }
    ensure!(a.nodes >= 3, "--nodes must be at least 3 (concurrency 3)");
    ensure!(
        a.files > 0 && a.batch > 0 && a.kib > 0,
        "sizes must be positive"
    );
    Ok(a)
}

/// Distinct text of `len` bytes for file `i` (words, so wordcount has work).
fn text(i: usize, len: usize) -> Vec<u8> {
    let mut out = format!("file{i} ").into_bytes();
    let mut h = Sha256::digest(i.to_be_bytes()).to_vec();
    while out.len() < len {
        h = Sha256::digest(&h).to_vec();
        for b in &h {
            out.push(b'a' + b % 26);
            if b % 7 == 0 {
                out.push(b' ');
            }
        }
    }
    out.truncate(len);
    out
}

/// `shoal_content_fetched_bytes_total` of one node.
async fn fetched_bytes(api: &str) -> Result<u64> {
    let body = reqwest::get(format!("{api}/metrics")).await?.text().await?;
    body.lines()
        .find_map(|l| l.strip_prefix("shoal_content_fetched_bytes_total "))
        .context("no shoal_content_fetched_bytes_total in /metrics")?
        .trim()
        .parse()
        .context("metric value")
}

struct Run {
    prefer: bool,
    wall: Duration,
    verified: u64,
    batches: usize,
    fetched: u64,
    local_slots: usize,
    slots: usize,
}

async fn run(a: &Args, prefer: bool) -> Result<Run> {
    let dir = tempfile::tempdir()?;
    let stack = devstack::start(DevstackConfig {
        nodes: a.nodes,
        base_dir: dir.path().to_path_buf(),
        customize: Some(Arc::new(move |_, c: &mut shoal_node::NodeConfig| {
            c.bid.prefer_local = prefer;
            c.api.max_body_bytes = 512 << 20;
        })),
        ..Default::default()
    })
    .await?;
    let r = async {
        // The tree, imported here to list it; each node gets only its batches' files.
        let tree = dir.path().join("tree");
        std::fs::create_dir_all(&tree)?;
        let batches = a.files.div_ceil(a.batch as usize);
        let parts: Vec<std::path::PathBuf> = (0..a.nodes)
            .map(|i| dir.path().join(format!("part{i}")))
            .collect();
        for p in &parts {
            std::fs::create_dir_all(p)?;
        }
        for i in 0..a.files {
            let name = format!("f{i:05}.txt");
            let body = text(i, a.kib * 1024);
            std::fs::write(tree.join(&name), &body)?;
            let holder = (i / a.batch as usize) % a.nodes;
            std::fs::write(parts[holder].join(&name), &body)?;
        }
        let local = shoal_store::Blockstore::open(dir.path().join("local"))?;
        let root = local
            .add_path(&tree, shoal_store::Profile::UnixfsV1_2025)?
            .cid;
        let files = shoal_sdk::shards::tree_files(&local, &root, "/inputs/")?;
        let manifest = Manifest::from_files(&root.to_string(), "/inputs", "/inputs/*.txt", files)?;
        ensure!(manifest.shards.len() == a.files, "manifest of {} shards", manifest.shards.len());
        for (i, n) in stack.nodes.iter().enumerate() {
            NodeApi::new(&n.api_url())?.upload_path(&parts[i]).await?;
        }
        let api = stack.nodes[0].api_url();
        let module = upload(&api, wasm("wordcount")?).await?;
        let spec = JobSpec::from_yaml(&format!(
            "name: locality\nengine:\n  wasm:\n    module: ipfs://{module}\n    args: [\"/inputs\"]\ninputs:\n  - source: ipfs://{root}\n    path: /inputs\nshards:\n  glob: /inputs/*.txt\n  size: {}\nresources:\n  timeout: 30s\ndeal:\n  concurrency: 3\n  confidence: 2\n  min_bids: 3\n  mediation: false\n  windows: {{bid: 6s, exec: 600s, reveal: 120s}}\n",
            a.batch
        ))?;
        let manifest_json = manifest.to_canonical_json();
        let manifest_cid = shoal_store::parse_cid(&upload(&api, manifest_json.clone()).await?)?;
        let spec_cid = shoal_store::parse_cid(&upload(&api, spec.to_canonical_json()).await?)?;
        let mut before = 0;
        for n in &stack.nodes {
            before += fetched_bytes(&n.api_url()).await?;
        }
        let creator = ChainClient::connect(&stack.rpc_url, Some(stack.creator_key.parse()?))
            .await?
            .with_deployment(stack.deployment.on_chain(stack.chain_id))?;
        let params = shard_job_params(
            &spec,
            spec_cid.to_bytes(),
            &manifest_json,
            manifest_cid.to_bytes(),
            u32::try_from(a.files)?,
        );
        let started = Instant::now();
        let (id, _) = creator.post_sharded_job(params).await?;
        let url = format!("{api}/api/v1/shards/{id}");
        let view = loop {
            let v = get_json(&url).await.unwrap_or(Value::Null);
            if v["state"] == "Done" || v["state"] == "Expired" {
                break v;
            }
            ensure!(
                started.elapsed() < Duration::from_secs(3600),
                "not done after an hour: {v:#}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        };
        let wall = started.elapsed();
        ensure!(view["state"] == "Done", "the job ended {}: {view:#}", view["state"]);
        let mut after = 0;
        for n in &stack.nodes {
            after += fetched_bytes(&n.api_url()).await?;
        }
        // Which slots ran where their files were.
        let ops: Vec<String> = stack
            .nodes
            .iter()
            .map(|n| {
                n.operator()
                    .map(|o| format!("{o:?}").to_lowercase())
                    .context("operator")
            })
            .collect::<Result<_>>()?;
        let (mut local_slots, mut slots) = (0, 0);
        for (b, batch) in view["batches"].as_array().context("batches")?.iter().enumerate() {
            for op in batch["operators"].as_array().into_iter().flatten() {
                slots += 1;
                let op = op.as_str().unwrap_or_default().to_lowercase();
                if ops.iter().position(|o| *o == op) == Some(b % a.nodes) {
                    local_slots += 1;
                }
            }
        }
        Ok(Run {
            prefer,
            wall,
            verified: view["verified"].as_u64().unwrap_or(0),
            batches,
            fetched: after - before,
            local_slots,
            slots,
        })
    }
    .await;
    stack.shutdown().await;
    r
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<()> {
    let a = args()?;
    let input = (a.files * a.kib * 1024) as f64 / (1 << 20) as f64;
    println!(
        "sharded wordcount: {} files of {} KiB ({input:.1} MiB) in batches of {}, {} nodes, concurrency 3, node i holds batches b mod {} == i",
        a.files, a.kib, a.batch, a.nodes, a.nodes
    );
    println!();
    println!(
        "| prefer_local | wall time (post to Done) | batches verified | slots on a holder | fetched from other nodes | fetched / input |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    for &prefer in &a.modes {
        let r = run(&a, prefer).await?;
        let mib = r.fetched as f64 / (1 << 20) as f64;
        println!(
            "| {} | {:.1} s | {} / {} | {} / {} | {mib:.1} MiB | {:.2} |",
            r.prefer,
            r.wall.as_secs_f64(),
            r.verified,
            r.batches,
            r.local_slots,
            r.slots,
            mib / input
        );
    }
    Ok(())
}
