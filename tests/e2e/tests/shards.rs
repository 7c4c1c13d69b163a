//! Sharded jobs end to end (docs/sharding.md): 1,000 small files in batches of 100 on a
//! 5-node devstack, one post, every batch verified by commit-reveal of Merkle roots, a lying
//! node slashed on its batches only, and the merged result folder built from the verified
//! leaves documents.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use serde_json::Value;
use shoal_chain::ChainClient;
use shoal_devstack::Fault;
use shoal_e2e::{fault_on, get_json, init_tracing, stack_with_faults, upload, wasm};
use shoal_types::JobSpec;

const FILES: usize = 1000;
const BATCH: u32 = 100;

async fn wait_shards(url: &str, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Result<Value> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let v = get_json(url).await.unwrap_or(Value::Null);
        if pred(&v) {
            return Ok(v);
        }
        ensure!(
            std::time::Instant::now() < deadline,
            "timed out waiting on {url}: {v:#}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Writes `files` small files (and one non-shard), uploads the tree to every node, builds the
/// manifest, and posts the sharded wordcount job from the devstack's creator: (job id, the
/// spec, the creator's client).
async fn post_sharded(
    stack: &shoal_devstack::Devstack,
    dir: &std::path::Path,
    files: usize,
    batch: u32,
    confidence: u32,
    exec_window: &str,
) -> Result<(shoal_chain::JobId, JobSpec, ChainClient)> {
    let api = stack.nodes[0].api_url();
    let module = upload(&api, wasm("wordcount")?).await?;
    let tree = dir.join("tree");
    std::fs::create_dir_all(&tree)?;
    for i in 0..files {
        std::fs::write(tree.join(format!("f{i:04}.txt")), "word ".repeat(i % 7 + 1))?;
    }
    std::fs::write(tree.join("README"), "not a shard")?;
    // Every node holds the tree (data locality: each prefers every batch).
    let mut root = None;
    for n in &stack.nodes {
        let node = shoal_sdk::api::NodeApi::new(&n.api_url())?;
        root = Some(node.upload_path(&tree).await?);
    }
    let root = root.context("no nodes")?;
    let spec = JobSpec::from_yaml(&format!(
        "name: wordcount-many\nengine:\n  wasm:\n    module: ipfs://{module}\n    args: [\"/inputs\"]\ninputs:\n  - source: ipfs://{root}\n    path: /inputs\nshards:\n  glob: /inputs/*.txt\n  size: {batch}\nresources:\n  timeout: 10s\ndeal:\n  concurrency: 3\n  confidence: {confidence}\n  min_bids: 3\n  mediation: false\n  windows: {{bid: 6s, exec: {exec_window}, reveal: 60s}}\n"
    ))?;
    spec.validate()?;
    let node0 = shoal_sdk::api::NodeApi::new(&api)?;
    let manifest = shoal_sdk::shards::build_manifest(&node0, &spec).await?;
    ensure!(
        manifest.shards.len() == files,
        "{} shards",
        manifest.shards.len()
    );
    let manifest_json = manifest.to_canonical_json();
    let manifest_cid = shoal_store::parse_cid(&upload(&api, manifest_json.clone()).await?)?;
    let spec_cid = shoal_store::parse_cid(&upload(&api, spec.to_canonical_json()).await?)?;
    let creator = ChainClient::connect(&stack.rpc_url, Some(stack.creator_key.parse()?))
        .await?
        .with_deployment(stack.deployment.on_chain(stack.chain_id))?;
    let params = shoal_chain::shard_job_params(
        &spec,
        spec_cid.to_bytes(),
        &manifest_json,
        manifest_cid.to_bytes(),
        files as u32,
    );
    let (id, receipt) = creator.post_sharded_job(params).await?;
    eprintln!("sharded job {id} posted, {} gas", receipt.gas_used);
    Ok((id, spec, creator))
}

/// The batches `operator` was drawn on.
fn batches_of(view: &Value, operator: shoal_chain::Address) -> usize {
    let me = format!("{operator:?}").to_lowercase();
    view["batches"].as_array().map_or(0, |batches| {
        batches
            .iter()
            .filter(|b| {
                b["operators"].as_array().is_some_and(|o| {
                    o.iter()
                        .any(|a| a.as_str().map(str::to_lowercase).as_deref() == Some(me.as_str()))
                })
            })
            .count()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_files_verify_per_batch_and_a_liar_loses_only_its_batches() -> Result<()> {
    init_tracing();
    let dir = tempfile::tempdir()?;
    // Node 4 returns wrong results for every shard it runs.
    let stack = stack_with_faults(&dir, 5, None, None, fault_on(4, Fault::WrongResult)).await?;
    let r = async {
        let api = stack.nodes[0].api_url();
        let liar = stack.nodes[4].operator().context("operator")?;
        let (id, spec, creator) = post_sharded(&stack, dir.path(), FILES, BATCH, 2, "120s").await?;
        let staked = creator.operator_status(liar).await?.stake;
        let node0 = shoal_sdk::api::NodeApi::new(&api)?;
        let url = format!("{api}/api/v1/shards/{id}");
        let v = wait_shards(&url, Duration::from_secs(300), |v| v["state"] == "Done").await?;
        let batches = v["batches"].as_array().context("batches")?;
        ensure!(batches.len() == FILES / BATCH as usize, "{v:#}");
        ensure!(
            v["verified"] == FILES / BATCH as usize && v["failed"] == 0,
            "every batch verifies despite the liar: {v:#}"
        );
        let liar_batches = batches_of(&v, liar);
        ensure!(liar_batches > 0, "the liar was drawn on no batch: {v:#}");
        // Slashed once per batch it lied on; honest operators keep their stake.
        let after = creator.operator_status(liar).await?.stake;
        let collateral = shoal_chain::U256::from(spec.deal.collateral);
        ensure!(
            staked - after == collateral * shoal_chain::U256::from(liar_batches),
            "the liar lost {} for {liar_batches} batches",
            staked - after
        );
        for n in &stack.nodes[..4] {
            let op = n.operator().context("operator")?;
            ensure!(
                creator.operator_status(op).await?.stake == staked,
                "honest {op} was slashed"
            );
        }

        // The merged result: one folder with every shard's results.
        let m = get_json(&format!("{api}/api/v1/shards/{id}/result")).await?;
        ensure!(
            m["shards"] == FILES && m["failedBatches"] == serde_json::json!([]),
            "{m:#}"
        );
        let cid = m["cid"].as_str().context("cid")?;
        let car = node0.content_car(cid).await?;
        let store = shoal_store::Blockstore::open(dir.path().join("check"))?;
        let roots = shoal_store::car::import_car(&store, &mut &car[..])?;
        ensure!(roots.first().map(ToString::to_string).as_deref() == Some(cid));
        let merged = shoal_store::parse_cid(cid)?;
        let listed = shoal_store::export::list_dir(&store, &merged)?;
        ensure!(listed.len() == FILES, "{} entries", listed.len());
        let stdout = shoal_store::export::resolve(&store, &merged, "shard-000009/stdout")?;
        let mut out = Vec::new();
        shoal_store::export::write_file(&store, &stdout, &mut out)?;
        let text = String::from_utf8_lossy(&out);
        // f0009.txt holds "word " three times (9 % 7 + 1).
        ensure!(text.contains('3'), "shard 9's own count: {text}");
        Ok(())
    }
    .await;
    stack.shutdown().await;
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_nodes_batches_are_reassigned_keeping_their_index_and_finish() -> Result<()> {
    init_tracing();
    let dir = tempfile::tempdir()?;
    // Node 3 stops dead as soon as it starts running a shard.
    let faults = fault_on(3, Fault::CrashWhileRunning);
    let stack = stack_with_faults(&dir, 5, None, None, faults).await?;
    let r = async {
        let api = stack.nodes[0].api_url();
        let killed = stack.nodes[3].operator().context("operator")?;
        // Unanimity: a batch missing one commit cannot reveal; it is re-assigned.
        let (id, spec, creator) = post_sharded(&stack, dir.path(), 300, 30, 3, "15s").await?;
        let staked = creator.operator_status(killed).await?.stake;
        let url = format!("{api}/api/v1/shards/{id}");
        let drawn = wait_shards(&url, Duration::from_secs(60), |v| v["state"] == "Running").await?;
        let lost = batches_of(&drawn, killed);
        ensure!(lost > 0, "the killed node was drawn on no batch: {drawn:#}");
        let v = wait_shards(&url, Duration::from_secs(240), |v| v["state"] == "Done").await?;
        ensure!(v["verified"] == 10 && v["failed"] == 0, "{v:#}");
        // Every batch the killed node was drawn on is re-assigned (attempt 2) to others and
        // verifies under its index; the others verify at their first attempt.
        let first = drawn["batches"].as_array().context("batches")?;
        let last = v["batches"].as_array().context("batches")?;
        for (a, b) in first.iter().zip(last) {
            let had = batches_of(&serde_json::json!({ "batches": [a] }), killed) == 1;
            let attempt = b["attempt"].as_u64().unwrap_or(0);
            ensure!(
                a["batch"] == b["batch"] && (attempt > 1) == had,
                "batch {}: drawn with the killed node {had}, attempt {attempt}: {v:#}",
                a["batch"]
            );
        }
        ensure!(batches_of(&v, killed) == 0, "{v:#}");
        let after = creator.operator_status(killed).await?.stake;
        ensure!(
            staked - after
                == shoal_chain::U256::from(spec.deal.collateral) * shoal_chain::U256::from(lost),
            "the killed node lost {} for {lost} batches",
            staked - after
        );
        Ok(())
    }
    .await;
    stack.shutdown().await;
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_batch_whose_roots_disagree_is_settled_shard_by_shard() -> Result<()> {
    init_tracing();
    let dir = tempfile::tempdir()?;
    // Three nodes, all on every batch: node 1 is wrong on odd shards only, node 2 on even
    // shards only. No two roots agree, yet every shard has two equal results.
    let faults = [(1, Fault::WrongOddShards), (2, Fault::WrongEvenShards)]
        .into_iter()
        .collect();
    let stack = stack_with_faults(&dir, 3, None, None, faults).await?;
    let r = async {
        let api = stack.nodes[0].api_url();
        let (id, spec, creator) = post_sharded(&stack, dir.path(), 20, 10, 2, "60s").await?;
        let liars = [
            stack.nodes[1].operator().context("operator")?,
            stack.nodes[2].operator().context("operator")?,
        ];
        let honest = stack.nodes[0].operator().context("operator")?;
        let staked = creator.operator_status(honest).await?.stake;
        let url = format!("{api}/api/v1/shards/{id}");
        let v = wait_shards(&url, Duration::from_secs(240), |v| v["state"] == "Done").await?;
        let batches = v["batches"].as_array().context("batches")?;
        ensure!(
            batches.iter().all(|b| b["state"] == "SettledPerShard"),
            "both batches went through Proving and were settled shard by shard: {v:#}"
        );
        // Every liar is slashed once per batch; the honest node keeps its stake.
        let collateral = shoal_chain::U256::from(spec.deal.collateral);
        for liar in liars {
            let after = creator.operator_status(liar).await?.stake;
            ensure!(
                staked - after == collateral * shoal_chain::U256::from(2u8),
                "{liar} lost {}",
                staked - after
            );
        }
        ensure!(creator.operator_status(honest).await?.stake == staked);
        // The merged result holds all 20 shards, each the honest result.
        let m = get_json(&format!("{api}/api/v1/shards/{id}/result")).await?;
        ensure!(m["shards"] == 20, "{m:#}");
        let node0 = shoal_sdk::api::NodeApi::new(&api)?;
        let cid = m["cid"].as_str().context("cid")?;
        let car = node0.content_car(cid).await?;
        let store = shoal_store::Blockstore::open(dir.path().join("check"))?;
        shoal_store::car::import_car(&store, &mut &car[..])?;
        let merged = shoal_store::parse_cid(cid)?;
        for shard in [3u32, 4] {
            let f =
                shoal_store::export::resolve(&store, &merged, &format!("shard-{shard:06}/stdout"))?;
            let mut out = Vec::new();
            shoal_store::export::write_file(&store, &f, &mut out)?;
            let text = String::from_utf8_lossy(&out);
            ensure!(
                !text.contains("fault injected"),
                "shard {shard} took a wrong result: {text}"
            );
        }
        Ok(())
    }
    .await;
    stack.shutdown().await;
    r
}
