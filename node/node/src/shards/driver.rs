//! The node's side of `ShardMarket` (docs/sharding.md, "Calls, in order"): it polls the open
//! sharded jobs and, for each, bids, closes the bidding and takes the draw, runs and commits
//! its batches, reveals them, settles due batches, finalizes, and claims.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use shoal_api::shard::LeavesDoc;
use shoal_api::{JobId, now_secs, result_hash_of};
use shoal_chain::{Address, B256, BatchState, Bytes, ShardBatch, ShardJob, ShardJobState, U256};
use shoal_types::{JobSpec, Manifest};

use super::run::run_batch;
use crate::compute::inputs::fetch_checked;
use crate::error::{Error, Result};
use crate::node::Node;

/// What this node computed for one batch, persisted before the commitment is sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchWork {
    /// The batch root over the leaves document.
    pub root: B256,
    /// The commitment's salt.
    pub salt: B256,
    /// The leaves document's CID.
    pub leaves_cid: String,
}

/// A sharded job as this node follows it.
struct Followed {
    spec_cid: String,
    manifest_cid: String,
    /// The spec and manifest, once fetched and checked.
    loaded: Option<Arc<(JobSpec, Manifest)>>,
    bid_sent: bool,
}

/// Polls the sharded jobs until the node stops. A deployment without a ShardMarket makes
/// this a no-op.
pub(crate) async fn run(node: Arc<Node>) -> Result<()> {
    if node
        .chain
        .client()
        .deployment()
        .ok()
        .and_then(|d| d.shard_market)
        .is_none()
    {
        return Ok(());
    }
    let mut followed: BTreeMap<JobId, Followed> = BTreeMap::new();
    let mut next = JobId::from(1u64);
    let every = node
        .cfg
        .chain
        .poll_interval()
        .max(std::time::Duration::from_millis(250));
    loop {
        if let Err(e) = discover(&node, &mut followed, &mut next).await {
            tracing::debug!(error = %e, "shards: cannot list sharded jobs");
        }
        let ids: Vec<JobId> = followed.keys().copied().collect();
        for id in ids {
            let Some(f) = followed.get_mut(&id) else {
                continue;
            };
            match step(&node, id, f).await {
                Ok(true) => {
                    followed.remove(&id);
                }
                Ok(false) => {}
                Err(e) => tracing::warn!(job = %id, error = %e, "shards: step failed; retrying"),
            }
        }
        tokio::select! {
            _ = node.tasks.token().cancelled() => return Ok(()),
            _ = tokio::time::sleep(every) => {}
        }
    }
}

async fn discover(
    node: &Node,
    followed: &mut BTreeMap<JobId, Followed>,
    next: &mut JobId,
) -> Result<()> {
    let client = node.chain.client();
    let upto = client
        .next_shard_job_id()
        .await
        .map_err(Error::chain("nextJobId"))?;
    while next.as_u256() < upto.as_u256() {
        let id = *next;
        let posted = client
            .shard_job_posted(id)
            .await
            .map_err(Error::chain("ShardJobPosted"))?;
        followed.insert(
            id,
            Followed {
                spec_cid: shoal_api::cid_text(&posted.params.specCid),
                manifest_cid: shoal_api::cid_text(&posted.params.manifestCid),
                loaded: None,
                bid_sent: false,
            },
        );
        *next = JobId(id.as_u256() + U256::from(1u64));
    }
    Ok(())
}

/// The job's spec and manifest, fetched and checked once.
async fn load(node: &Node, job: &ShardJob, f: &mut Followed) -> Result<Arc<(JobSpec, Manifest)>> {
    if let Some(loaded) = &f.loaded {
        return Ok(loaded.clone());
    }
    let spec = fetch_checked(&node.content, &f.spec_cid, job.specHash, "spec").await?;
    let spec = JobSpec::from_canonical_json(&spec)?;
    let manifest =
        fetch_checked(&node.content, &f.manifest_cid, job.manifestHash, "manifest").await?;
    let manifest = Manifest::from_json(&manifest)?;
    if manifest.shards.len() != job.shardCount as usize {
        return Err(Error::Content {
            cid: f.manifest_cid.clone(),
            reason: format!(
                "the manifest lists {} shards, the job {}",
                manifest.shards.len(),
                job.shardCount
            ),
        });
    }
    let loaded = Arc::new((spec, manifest));
    f.loaded = Some(loaded.clone());
    Ok(loaded)
}

/// One look at a sharded job; `true` once this node has nothing more to do for it.
async fn step(node: &Arc<Node>, id: JobId, f: &mut Followed) -> Result<bool> {
    let client = node.chain.client();
    let job = client
        .get_shard_job(id)
        .await
        .map_err(Error::chain("getShardJob"))?;
    let me = node.chain.operator;
    let now = now_secs();
    match job.state {
        ShardJobState::Bidding if now <= job.bidDeadline => {
            if let Some(me) = me
                && !f.bid_sent
                && node.cfg.bid.enabled
                && job.creator != me
            {
                bid(node, id, &job, f, me).await?;
            }
            Ok(false)
        }
        ShardJobState::Bidding | ShardJobState::Drawing => {
            if let Err(e) = client.shard_close_bidding(id).await {
                tracing::debug!(job = %id, error = %e, "shards: closeBidding not taken");
            }
            Ok(false)
        }
        ShardJobState::Running => {
            running(node, id, &job, f, me).await?;
            Ok(false)
        }
        _ => {
            // Done or Expired: collect what this node is owed.
            if let Some(me) = me {
                let owed = client
                    .shard_withdrawable(me)
                    .await
                    .map_err(Error::chain("withdrawable"))?;
                if !owed.is_zero() {
                    client.claim_shards().await.map_err(Error::chain("claim"))?;
                    tracing::info!(job = %id, amount = %owed, "shards: claimed payouts");
                }
            }
            Ok(true)
        }
    }
}

async fn bid(
    node: &Arc<Node>,
    id: JobId,
    job: &ShardJob,
    f: &mut Followed,
    me: Address,
) -> Result<()> {
    let client = node.chain.client();
    let bidders = client
        .get_bidders(id)
        .await
        .map_err(Error::chain("getBidders"))?;
    if bidders.contains(&me) {
        f.bid_sent = true;
        return Ok(());
    }
    let loaded = load(node, job, f).await?;
    let (spec, manifest) = &*loaded;
    if let Some(reason) = declines(&node.cfg.bid, &node.cfg.labels, spec, job, |e| {
        node.executors.get(e).is_some()
    }) {
        tracing::info!(job = %id, %reason, "shards: not bidding");
        f.bid_sent = true;
        return Ok(());
    }
    if let Some(reason) =
        crate::pipeline::check_stage(node, id, true, spec, Some((manifest, &f.manifest_cid))).await
    {
        tracing::warn!(job = %id, %reason, "shards: not bidding");
        f.bid_sent = true;
        return Ok(());
    }
    // The operator's hook sees a sharded job as its on-chain terms and its spec.
    if let Some(hook) = &node.cfg.bid.hook {
        let body = serde_json::json!({
            "shardedJob": {
                "id": id.to_string(),
                "shardCount": job.shardCount,
                "batchSize": job.batchSize,
                "concurrency": job.concurrency,
                "pricePerShard": job.pricePerShard.to_string(),
                "collateralPerBatch": job.collateralPerBatch.to_string(),
                "manifestCid": f.manifest_cid,
            },
            "spec": spec,
        });
        if let Some(reason) = crate::compute::strategy::hook_declines(hook, &node.http, &body).await
        {
            tracing::info!(job = %id, %reason, "shards: not bidding");
            f.bid_sent = true;
            return Ok(());
        }
    }
    // Locality: the batches whose every shard is already in this node's store (none declared
    // with `[bid] prefer_local = false`).
    let size = u32::from(job.batchSize);
    let mut prefer = vec![U256::ZERO; (usize::from(job.batchCount)).div_ceil(256)];
    let batches = if node.cfg.bid.prefer_local {
        u32::from(job.batchCount)
    } else {
        0
    };
    for b in 0..batches {
        let held = shoal_types::batch_range(b, size, job.shardCount).all(|i| {
            shoal_store::parse_cid(&manifest.shards[i as usize].cid)
                .is_ok_and(|c| node.content.has_dag(&c))
        });
        if held {
            prefer[(b / 256) as usize] |= U256::from(1u64) << (b % 256);
        }
    }
    // `require_local_data`: bid only when the files of at least one batch are already here.
    if node.cfg.bid.require_local_data && prefer.iter().all(U256::is_zero) {
        tracing::info!(
            job = %id,
            "shards: not bidding: no batch's files are in this node's store (bid.require_local_data)"
        );
        f.bid_sent = true;
        return Ok(());
    }
    client
        .shard_bid(id, prefer)
        .await
        .map_err(Error::chain("bid"))?;
    tracing::info!(job = %id, "shards: bid placed");
    f.bid_sent = true;
    Ok(())
}

/// Why this node does not bid on a sharded job, if it does not: the bid policy's limits
/// (engines, resources, windows, collateral per batch, network, price) and the spec's placement
/// constraints against this node's `labels`, as for a plain job.
fn declines(
    p: &crate::config::BidPolicy,
    labels: &BTreeMap<String, String>,
    spec: &JobSpec,
    job: &ShardJob,
    installed: impl Fn(&str) -> bool,
) -> Option<String> {
    let engine = spec.engine.kind();
    if !installed(engine) || (!p.engines.is_empty() && !p.engines.iter().any(|e| e == engine)) {
        return Some(format!("this node does not offer the {engine} engine"));
    }
    if spec.resources.memory > p.max_memory || spec.resources.cpu > p.max_cpu {
        return Some(
            "the job asks for more memory or CPU than bid.max_memory / bid.max_cpu".into(),
        );
    }
    if spec.resources.timeout.as_secs() > p.max_timeout_secs {
        return Some(format!(
            "resources.timeout is above bid.max_timeout_secs ({})",
            p.max_timeout_secs
        ));
    }
    if u64::from(job.execWindow) < p.min_exec_window_secs
        || u64::from(job.revealWindow) < p.min_reveal_window_secs
    {
        return Some(
            "the exec or reveal window is shorter than bid.min_exec/reveal_window_secs".into(),
        );
    }
    let per_batch = U256::from(job.pricePerShard) * U256::from(job.batchSize);
    if U256::from(job.collateralPerBatch) > per_batch * U256::from(p.max_collateral_ratio) {
        return Some(format!(
            "the collateral per batch is more than bid.max_collateral_ratio ({}) times a batch's pay",
            p.max_collateral_ratio
        ));
    }
    if !spec.network.is_none() && !p.allow_network {
        return Some("the job asks for network access (bid.allow_network = false)".into());
    }
    if U256::from(job.pricePerShard) < U256::from(p.min_price) {
        return Some(format!(
            "the price per shard is below bid.min_price ({})",
            p.min_price
        ));
    }
    if let Some(c) = spec.constraints.iter().find(|c| !c.matches(labels)) {
        return Some(format!(
            "this node's labels do not satisfy the placement constraint `{c}`"
        ));
    }
    None
}

/// The slot of `me` on a batch.
fn slot_of(batch: &ShardBatch, me: Address) -> Option<usize> {
    batch.operators.iter().position(|o| *o == me)
}

async fn running(
    node: &Arc<Node>,
    id: JobId,
    job: &ShardJob,
    f: &mut Followed,
    me: Option<Address>,
) -> Result<()> {
    let client = node.chain.client();
    let now = now_secs();
    let mut batches = Vec::with_capacity(usize::from(job.batchCount));
    for b in 0..u32::from(job.batchCount) {
        let batch = client
            .get_batch(id, b)
            .await
            .map_err(Error::chain("getBatch"))?;
        batches.push((b, batch));
    }
    if let Some(me) = me {
        // Run and commit the batches assigned to this node that it has not committed.
        let to_commit: Vec<u32> = batches
            .iter()
            .filter(|(_, x)| x.state == BatchState::Assigned && now <= x.deadline)
            .filter(|(_, x)| slot_of(x, me).is_some_and(|s| x.committed & (1 << s) == 0))
            .map(|(b, _)| *b)
            .collect();
        if !to_commit.is_empty() {
            let loaded = load(node, job, f).await?;
            let (spec, manifest) = &*loaded;
            let mut commitments = Vec::new();
            for b in &to_commit {
                let work =
                    batch_work(node, id, spec, manifest, *b, u32::from(job.batchSize)).await?;
                commitments.push(shoal_chain::batch_commitment(
                    id, *b, me, work.root, work.salt,
                ));
            }
            client
                .commit_batches(id, to_commit.clone(), commitments)
                .await
                .map_err(Error::chain("commitBatches"))?;
            tracing::info!(job = %id, batches = ?to_commit, "shards: batches committed");
        }
        // Reveal committed, unrevealed batches in their reveal phase.
        let mut reveal = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (b, x) in &batches {
            let Some(s) = slot_of(x, me) else { continue };
            if x.state != BatchState::Revealing
                || x.committed & (1 << s) == 0
                || x.revealed & (1 << s) != 0
            {
                continue;
            }
            let Some(w) = node.db.shard_batch(id, *b)? else {
                continue;
            };
            let cid = shoal_store::parse_cid(&w.leaves_cid)?;
            reveal.0.push(*b);
            reveal.1.push(w.root);
            reveal.2.push(w.salt);
            reveal.3.push(Bytes::from(cid.to_bytes()));
        }
        if !reveal.0.is_empty() {
            let which = reveal.0.clone();
            client
                .reveal_batches(id, reveal.0, reveal.1, reveal.2, reveal.3)
                .await
                .map_err(Error::chain("revealBatches"))?;
            tracing::info!(job = %id, batches = ?which, "shards: batches revealed");
        }
        // Prove the per-shard results behind the roots revealed on batches that went to
        // Proving (their roots disagreed), so they are settled shard by shard.
        let mut prove = (Vec::new(), Vec::new());
        for (b, x) in &batches {
            let Some(s) = slot_of(x, me) else { continue };
            if x.state != BatchState::Proving
                || now > x.deadline
                || x.revealed & (1 << s) == 0
                || x.proven & (1 << s) != 0
            {
                continue;
            }
            let Some(w) = node.db.shard_batch(id, *b)? else {
                continue;
            };
            prove.0.push(*b);
            prove.1.push(result_hashes(node, &w)?);
        }
        if !prove.0.is_empty() {
            let which = prove.0.clone();
            client
                .prove_batches(id, prove.0, prove.1)
                .await
                .map_err(Error::chain("proveBatches"))?;
            tracing::info!(job = %id, batches = ?which, "shards: leaves proven");
        }
    }
    // Settle what is due (anyone may; a node that loses the race sees a revert).
    let due: Vec<u32> = batches
        .iter()
        .filter(|(_, x)| match x.state {
            BatchState::Assigned => now > x.deadline,
            BatchState::Revealing => {
                now > x.deadline || (x.committed != 0 && x.revealed == x.committed)
            }
            _ => false,
        })
        .map(|(b, _)| *b)
        .collect();
    if !due.is_empty()
        && let Err(e) = client.settle_batches(id, due.clone()).await
    {
        tracing::debug!(job = %id, batches = ?due, error = %e, "shards: settleBatches not taken");
    }
    // Proving batches whose proof phase is over (or fully proven): settled shard by shard from
    // the proven lists, in slot order.
    let proving: Vec<&(u32, ShardBatch)> = batches
        .iter()
        .filter(|(_, x)| {
            x.state == BatchState::Proving
                && (now > x.deadline || (x.revealed != 0 && x.proven == x.revealed))
        })
        .collect();
    if !proving.is_empty() {
        let proofs = client
            .leaves_proofs(id)
            .await
            .map_err(Error::chain("LeavesProven"))?;
        for (b, x) in proving {
            let lists: Vec<Vec<B256>> = x
                .operators
                .iter()
                .enumerate()
                .filter(|(s, _)| x.proven & (1 << s) != 0)
                .filter_map(|(_, op)| {
                    proofs
                        .iter()
                        .rev()
                        .find(|p| p.batch == *b && p.operator == *op)
                        .map(|p| p.result_hashes.clone())
                })
                .collect();
            match client.settle_proven(id, *b, lists).await {
                Ok(_) => {
                    tracing::info!(job = %id, batch = b, "shards: batch settled shard by shard")
                }
                Err(e) => {
                    tracing::debug!(job = %id, batch = b, error = %e, "shards: settleProven not taken")
                }
            }
        }
    }
    let done = batches.iter().all(|(_, x)| {
        matches!(
            x.state,
            BatchState::Verified | BatchState::Failed | BatchState::SettledPerShard
        )
    });
    if done && let Err(e) = client.finalize_sharded(id).await {
        tracing::debug!(job = %id, error = %e, "shards: finalize not taken");
    }
    Ok(())
}

/// This node's result hash per shard of a batch it ran, in shard order (from its leaves
/// document).
fn result_hashes(node: &Node, work: &BatchWork) -> Result<Vec<B256>> {
    let cid = shoal_store::parse_cid(&work.leaves_cid)?;
    let doc: LeavesDoc =
        serde_json::from_slice(&node.content.read_file(&cid)?).map_err(|e| Error::Content {
            cid: cid.to_string(),
            reason: format!("this node's leaves document does not parse: {e}"),
        })?;
    doc.shards
        .iter()
        .map(|s| Ok(result_hash_of(&shoal_store::parse_cid(&s.result_cid)?)?))
        .collect()
}

/// This node's result for a batch: recorded, or run now, its leaves document stored, and the
/// root and a fresh salt recorded before anything is sent.
async fn batch_work(
    node: &Arc<Node>,
    id: JobId,
    spec: &JobSpec,
    manifest: &Manifest,
    batch: u32,
    size: u32,
) -> Result<BatchWork> {
    if let Some(w) = node.db.shard_batch(id, batch)? {
        return Ok(w);
    }
    let doc: LeavesDoc = run_batch(node, id, spec, manifest, batch, size).await?;
    let root = doc.root()?;
    let leaves = node.content.add_bytes(&doc.to_canonical_json())?;
    node.content.announce(&leaves).await;
    let work = BatchWork {
        root,
        salt: B256::random(),
        leaves_cid: leaves.to_string(),
    };
    node.db.put_shard_batch(id, batch, &work)?;
    Ok(work)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BidPolicy;

    #[test]
    fn sharded_jobs_meet_the_bid_policy_or_are_declined_with_the_reason() {
        let spec = JobSpec::from_yaml(
            "engine:\n  wasm:\n    module: ipfs://bafkqaaa\nresources:\n  timeout: 10s\n",
        )
        .expect("spec");
        let job = ShardJob {
            creator: Address::ZERO,
            state: ShardJobState::Bidding,
            shardCount: 100,
            batchSize: 10,
            batchCount: 10,
            concurrency: 3,
            confidence: 2,
            minBids: 3,
            bidCount: 0,
            pricePerShard: shoal_chain::U96::from(100u64),
            collateralPerBatch: shoal_chain::U96::from(1000u64),
            execWindow: 60,
            revealWindow: 60,
            bidDeadline: 0,
            drawBlock: 0,
            assignedBatches: 0,
            verifiedBatches: 0,
            failedBatches: 0,
            specHash: B256::ZERO,
            manifestHash: B256::ZERO,
            escrow: U256::ZERO,
        };
        let p = BidPolicy::default();
        let none = BTreeMap::new();
        assert_eq!(declines(&p, &none, &spec, &job, |_| true), None);
        let reason = declines(&p, &none, &spec, &job, |_| false).expect("no executor");
        assert!(reason.contains("wasm"), "{reason}");
        let greedy = ShardJob {
            collateralPerBatch: shoal_chain::U96::from(1_000_000u64),
            ..job.clone()
        };
        let reason = declines(&p, &none, &spec, &greedy, |_| true).expect("collateral");
        assert!(reason.contains("max_collateral_ratio"), "{reason}");
        let hasty = ShardJob {
            execWindow: 1,
            ..job.clone()
        };
        assert!(declines(&p, &none, &spec, &hasty, |_| true).is_some());
        let strict = BidPolicy {
            max_timeout_secs: 5,
            ..BidPolicy::default()
        };
        let reason = declines(&strict, &none, &spec, &job, |_| true).expect("timeout");
        assert!(reason.contains("max_timeout_secs"), "{reason}");
        // Placement constraints hold for sharded jobs too.
        let placed = JobSpec::from_yaml(
            "engine:\n  wasm:\n    module: ipfs://bafkqaaa\nresources:\n  timeout: 10s\nconstraints: [\"region=eu\"]\n",
        )
        .expect("spec");
        let reason = declines(&p, &none, &placed, &job, |_| true).expect("unlabelled");
        assert!(reason.contains("region=eu"), "{reason}");
        let eu = BTreeMap::from([("region".to_owned(), "eu".to_owned())]);
        assert_eq!(declines(&p, &eu, &placed, &job, |_| true), None);
    }
}
