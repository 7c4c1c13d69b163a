//! End-to-end: a chain reorganisation on a real anvil. A job is posted, the nodes see it, then
//! anvil's `anvil_reorg` replaces the blocks from the post's block up with empty ones (same
//! height, new hashes, the post gone). Every node must forget the job and its event history,
//! and then follow the new chain: a job posted afterwards (reusing the voided job's id) shows
//! up with its own spec.

use std::time::{Duration, Instant};

use alloy::signers::local::PrivateKeySigner;
use anyhow::{Context, Result, bail, ensure};
use serde_json::{Value, json};
use shoal_devstack::Devstack;
use shoal_e2e::JobId;
use shoal_e2e::{anvil_or_skip, get_json, init_tracing, stack_with, upload, wait_job, wasm};
use shoal_types::JobSpec;

/// Nobody bids and the bid window outlasts the test, so the job stays `Posted` and no node
/// sends a transaction (anvil mines only on transactions: the chain moves only when we say).
const DEAL: &str = "deal:\n  concurrency: 1\n  confidence: 1\n  min_bids: 1\n  mediation: false\n  windows: {bid: 10m, exec: 30s, reveal: 30s}\n";

/// How long a node may take to notice something on the chain (it polls every 100 ms).
const NOTICE: Duration = Duration::from_secs(20);

/// One JSON-RPC call to anvil; fails on an RPC error.
async fn rpc(url: &str, method: &str, params: Value) -> Result<Value> {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    let v: Value = reqwest::Client::new()
        .post(url)
        .json(&body)
        .send()
        .await?
        .json()
        .await?;
    if let Some(e) = v.get("error") {
        bail!("{method} {params}: {e}");
    }
    Ok(v["result"].clone())
}

fn hex_u64(v: &Value) -> Result<u64> {
    let s = v.as_str().context("not a hex string")?;
    Ok(u64::from_str_radix(s.trim_start_matches("0x"), 16)?)
}

async fn block_number(url: &str) -> Result<u64> {
    hex_u64(&rpc(url, "eth_blockNumber", json!([])).await?)
}

/// `(hash, transaction count)` of block `n`.
async fn block(url: &str, n: u64) -> Result<(String, usize)> {
    let b = rpc(
        url,
        "eth_getBlockByNumber",
        json!([format!("{n:#x}"), false]),
    )
    .await?;
    let hash = b["hash"].as_str().context("block hash")?.to_owned();
    let txs = b["transactions"].as_array().map_or(0, Vec::len);
    Ok((hash, txs))
}

/// Uploads a wordcount spec named `name` to node 0 and posts it; the job id and the spec CID.
async fn post_named(stack: &Devstack, name: &str) -> Result<(JobId, String)> {
    let api = stack.nodes[0].api_url();
    let module = upload(&api, wasm("wordcount")?).await?;
    let yaml = format!(
        "name: {name}\nengine:\n  wasm:\n    module: ipfs://{module}\n    args: [\"/inputs\"]\nresources:\n  timeout: 30s\n{DEAL}"
    );
    let spec = JobSpec::from_yaml(&yaml).with_context(|| format!("spec:\n{yaml}"))?;
    let cid = upload(&api, spec.to_canonical_json()).await?;
    let creator: PrivateKeySigner = stack.creator_key.parse()?;
    let id = shoal_node::post_job(
        &stack.rpc_url,
        stack.deployment.job_market,
        creator,
        &spec,
        &shoal_store::parse_cid(&cid)?,
    )
    .await?;
    Ok((id, cid))
}

/// Waits until `api` answers 404 for job `id`.
async fn wait_forgotten(api: &str, id: JobId) -> Result<()> {
    let url = format!("{api}/api/v1/jobs/{id}");
    let deadline = Instant::now() + NOTICE;
    let mut last = String::new();
    while Instant::now() < deadline {
        let resp = reqwest::Client::new().get(&url).send().await?;
        if resp.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(());
        }
        last = format!("{} {}", resp.status(), resp.text().await?);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("{api} still knows job {id} {NOTICE:?} after the reorg; last answer: {last}")
}

/// The event names of a job on `api`.
async fn event_names(api: &str, id: JobId) -> Result<Vec<Value>> {
    let events = get_json(&format!("{api}/api/v1/jobs/{id}/events")).await?;
    Ok(events.as_array().context("events")?.clone())
}

async fn reorg_flow(stack: &Devstack, rpc_url: &str) -> Result<()> {
    // A job below the fork, which the reorg must leave alone.
    let (kept_id, kept_cid) = post_named(stack, "kept-below-fork").await?;
    for n in &stack.nodes {
        wait_job(&n.api_url(), kept_id, NOTICE, "known", |v| {
            v["state"] == "Posted"
        })
        .await?;
    }
    // A job on the old chain (in a later block: anvil mines one per transaction), seen by
    // every node.
    let (old_id, old_cid) = post_named(stack, "voided-by-reorg").await?;
    ensure!(old_id != kept_id, "two posts, one id: {old_id}");
    let mut posted = 0;
    for n in &stack.nodes {
        let v = wait_job(&n.api_url(), old_id, NOTICE, "known", |v| {
            v["state"] == "Posted"
        })
        .await?;
        ensure!(v["params"]["specCid"] == old_cid.as_str(), "spec: {v:#}");
        posted = v["postedBlock"].as_u64().context("postedBlock")?;
        let events = event_names(&n.api_url(), old_id).await?;
        ensure!(
            events.len() == 1 && events[0]["event"] == "JobPosted",
            "one JobPosted expected: {events:#?}"
        );
    }
    let head = block_number(rpc_url).await?;
    ensure!(
        head >= posted,
        "head {head} below the post's block {posted}"
    );
    let (old_hash, txs) = block(rpc_url, posted).await?;
    ensure!(txs == 1, "the post's block {posted} has {txs} transactions");

    // Replace every block from the post's on with an empty one: same height, new hashes.
    let depth = head - posted + 1;
    rpc(rpc_url, "anvil_reorg", json!([depth, []])).await?;
    ensure!(
        block_number(rpc_url).await? == head,
        "anvil_reorg changed the height"
    );
    let (new_hash, txs) = block(rpc_url, posted).await?;
    ensure!(
        new_hash != old_hash && txs == 0,
        "block {posted} was not replaced: {old_hash} -> {new_hash} with {txs} transactions"
    );

    // Every node forgets the voided job and its history, and rewinds below the post.
    for n in &stack.nodes {
        wait_forgotten(&n.api_url(), old_id).await?;
        let db = n.state();
        ensure!(
            db.events(old_id)?.is_empty(),
            "events of the voided job remain: {:?}",
            db.events(old_id)?
        );
        ensure!(
            db.jobs_with_events_after(posted - 1)?.is_empty(),
            "events above the fork remain"
        );
        let kept = get_json(&format!("{}/api/v1/jobs/{kept_id}", n.api_url())).await?;
        ensure!(
            kept["params"]["specCid"] == kept_cid.as_str()
                && kept["postedBlock"].as_u64() < Some(posted),
            "the job below the fork changed: {kept:#}"
        );
        let events = event_names(&n.api_url(), kept_id).await?;
        ensure!(
            events.len() == 1 && events[0]["event"] == "JobPosted",
            "the job below the fork lost its history: {events:#?}"
        );
    }

    // The follower goes on with the new chain: the next post is seen normally. The market's
    // counter was reorganised too, so the new job takes the voided one's id.
    let (new_id, new_cid) = post_named(stack, "after-reorg").await?;
    ensure!(new_cid != old_cid, "the two specs should differ");
    for n in &stack.nodes {
        let api = n.api_url();
        let v = wait_job(&api, new_id, NOTICE, "known", |v| v["state"] == "Posted").await?;
        ensure!(
            v["params"]["specCid"] == new_cid.as_str(),
            "{api} shows spec {} for job {new_id}, expected the new chain's {new_cid} (voided: {old_cid})",
            v["params"]["specCid"]
        );
        let events = event_names(&api, new_id).await?;
        ensure!(
            events.len() == 1
                && events[0]["event"] == "JobPosted"
                && events[0]["fields"]["specCid"] == new_cid.as_str(),
            "one JobPosted of the new spec expected: {events:#?}"
        );
        ensure!(
            events[0]["block"].as_u64() > Some(head),
            "the new post should be above the old head {head}: {events:#?}"
        );
    }
    ensure!(
        new_id == old_id,
        "the market's job counter should have been rolled back too: {old_id} then {new_id}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reorg_on_anvil_voids_a_posted_job() -> Result<()> {
    init_tracing();
    let Some(anvil) = anvil_or_skip()? else {
        return Ok(());
    };
    let dir = tempfile::tempdir()?;
    let stack = stack_with(
        &dir,
        3,
        Some(anvil.endpoint()),
        Some(std::sync::Arc::new(|_, c: &mut shoal_node::NodeConfig| {
            c.bid.enabled = false;
        })),
    )
    .await?;
    let r = reorg_flow(&stack, &anvil.endpoint()).await;
    stack.shutdown().await;
    drop(anvil);
    r
}
