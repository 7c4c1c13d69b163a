//! The chain follower: reads the market's events through `shoal-chain`'s
//! [`EventFollower`] from a cursor persisted with the state store, folds them
//! into job records and the per-job event history, rolls back what a reorg
//! voided, and wakes the compute side.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use alloy::eips::BlockId;
use alloy::primitives::{B256, U256};
use alloy::providers::Provider;
use alloy::rpc::types::Filter;
use serde_json::json;
use shoal_chain::bindings::JobMarket as M;
use shoal_chain::{
    ChainEvent, Cursor, CursorStore, EventFollower, FollowerConfig, FollowerUpdate, MarketEvent,
};
use tokio_util::sync::CancellationToken;

use crate::chain::{Chain, job_id};
use crate::db::StateStore;
use crate::error::{Error, Result};
use crate::model::{
    BidView, DealView, EventRecord, FAIL_REASON, JobId, JobParamsView, JobRecord, JobState,
    PAYMENT_KIND, SLASH_REASON, Transfer, VERIFIER, enum_name,
};
use crate::results::{cid_from_chain_bytes, results_cid_of};

/// Most blocks asked for in one `eth_getLogs`.
const MAX_RANGE: u64 = 2_000;
/// Recent block hashes remembered to find where a reorg forked.
const REMEMBER: usize = 256;

/// The follower's cursor lives in the state store, written in the same transaction as the
/// records it produced; `save` is only used by the follower's own `ack`, which the node does
/// not call.
struct DbCursor(StateStore);

impl CursorStore for DbCursor {
    fn load(&self) -> shoal_chain::Result<Option<Cursor>> {
        self.0
            .follower_cursor()
            .map_err(|e| shoal_chain::Error::File {
                path: self.0.path().to_path_buf(),
                reason: e.to_string(),
            })
    }

    fn save(&self, _cursor: &Cursor) -> shoal_chain::Result<()> {
        Ok(())
    }
}

/// Follows the chain until cancelled. Calls `on_change` after every batch that changed something.
pub async fn run(
    chain: Arc<Chain>,
    db: StateStore,
    poll: Duration,
    confirmations: u64,
    cancel: CancellationToken,
    poke: Arc<tokio::sync::Notify>,
    on_change: impl Fn(&[JobId]) + Send + Sync,
) {
    let config = FollowerConfig {
        confirmations,
        max_range: MAX_RANGE,
        poll_interval: poll,
        remember: REMEMBER,
    };
    let open = || EventFollower::new(chain.client(), DbCursor(db.clone()), config.clone());
    let mut follower = match open() {
        Ok(f) => f,
        Err(e) => {
            tracing::error!(error = %e, "chain follower cannot start");
            return;
        }
    };
    let mut backoff = poll;
    loop {
        if cancel.is_cancelled() {
            return;
        }
        let wait = match poll_once(&chain, &db, &mut follower).await {
            Ok(Some(changed)) => {
                backoff = poll;
                if !changed.is_empty() {
                    on_change(&changed);
                }
                continue;
            }
            Ok(None) => poll,
            Err(e) => {
                tracing::warn!(error = %e, "chain follower: poll failed, retrying");
                // The follower may have moved past a batch that was not stored: start again
                // from the stored cursor.
                match open() {
                    Ok(f) => follower = f,
                    Err(e) => tracing::warn!(error = %e, "chain follower: cannot reopen"),
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
                backoff
            }
        };
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = poke.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// One step of the follower: `None` when there was no new block, else the jobs that changed.
pub(crate) async fn poll_once(
    chain: &Chain,
    db: &StateStore,
    follower: &mut EventFollower,
) -> Result<Option<Vec<JobId>>> {
    let Some(update) = follower.poll().await.map_err(Error::chain)? else {
        return Ok(None);
    };
    let cursor = update.cursor().clone();
    match update {
        FollowerUpdate::Events(batch) => {
            let changed = store_events(db, &batch.events, &cursor)?;
            Ok(Some(changed))
        }
        FollowerUpdate::Reorg { to_block, .. } => {
            Ok(Some(roll_back(chain, db, to_block, &cursor).await?))
        }
    }
}

/// Folds a batch of events into the jobs they belong to and stores both with the new cursor;
/// the jobs that changed.
fn store_events(db: &StateStore, events: &[ChainEvent], cursor: &Cursor) -> Result<Vec<JobId>> {
    let mut jobs: BTreeMap<JobId, JobRecord> = BTreeMap::new();
    let mut records = Vec::new();
    for ev in events {
        let Some((id, record)) = describe_event(ev) else {
            continue;
        };
        if let std::collections::btree_map::Entry::Vacant(slot) = jobs.entry(id)
            && let Some(existing) = db.job(id)?
        {
            slot.insert(existing);
        }
        apply(&mut jobs, id, ev);
        records.push((id, record));
    }
    // Every state change of the market emits an event (`PhaseStarted` with its deadline, or a
    // final `JobVerified`/`JobFailed`/`JobExpired`), so the records follow from the events
    // alone.
    let jobs: Vec<JobRecord> = jobs.into_values().collect();
    db.apply(&jobs, &records, cursor)?;
    Ok(jobs.iter().map(|j| j.id).collect())
}

/// The contract's view at block `at` of the state and the phase deadline (after a reorg, the
/// rebuilt records take the state of the fork block).
async fn refresh_from_contract(chain: &Chain, jobs: &mut BTreeMap<JobId, JobRecord>, at: u64) {
    let market = M::new(
        chain.deployment.job_market,
        chain.client().provider().clone(),
    );
    let reads = jobs.keys().map(|id| {
        let call = market.getJob(U256::from(id.0));
        async move { call.call().block(BlockId::number(at)).await.ok() }
    });
    let onchain = futures::future::join_all(reads).await;
    for (job, onchain) in jobs.values_mut().zip(onchain) {
        if let Some(onchain) = onchain {
            if let Some(st) = JobState::from_index(onchain.state as u8) {
                job.state = st;
            }
            job.phase_deadline = onchain.phaseDeadline;
            job.bid_deadline = onchain.bidDeadline;
        }
    }
}

/// Voids what the follower delivered above `to_block`: every job with an event up there is
/// rebuilt from the chain's logs up to `to_block` (or forgotten when it was posted above it).
/// Returns the rebuilt jobs.
async fn roll_back(
    chain: &Chain,
    db: &StateStore,
    to_block: u64,
    cursor: &Cursor,
) -> Result<Vec<JobId>> {
    let touched = db.jobs_with_events_after(to_block)?;
    let mut rebuilt = Vec::new();
    let mut forgotten = Vec::new();
    for id in touched {
        let posted = db.job(id)?.map(|j| j.posted_block).unwrap_or(u64::MAX);
        if posted > to_block {
            forgotten.push(id);
            continue;
        }
        let filter = Filter::new()
            .address(chain.deployment.job_market)
            .topic1(B256::from(U256::from(id.0)))
            .from_block(posted)
            .to_block(to_block);
        let logs = chain
            .client()
            .provider()
            .get_logs(&filter)
            .await
            .map_err(Error::chain)?;
        let mut jobs = BTreeMap::new();
        let mut records = Vec::new();
        for log in &logs {
            let Some(Ok(ev)) = ChainEvent::from_rpc_log(
                log,
                chain.deployment.job_market,
                chain.deployment.operator_registry,
            ) else {
                continue;
            };
            if let Some((eid, record)) = describe_event(&ev)
                && eid == id
            {
                apply(&mut jobs, id, &ev);
                records.push(record);
            }
        }
        refresh_from_contract(chain, &mut jobs, to_block).await;
        match jobs.remove(&id) {
            Some(job) => rebuilt.push((job, records)),
            None => forgotten.push(id),
        }
    }
    tracing::warn!(
        to_block,
        rebuilt = rebuilt.len(),
        forgotten = forgotten.len(),
        "chain reorganised: job records rolled back"
    );
    db.roll_back(&rebuilt, &forgotten, cursor)?;
    Ok(rebuilt.iter().map(|(j, _)| j.id).collect())
}

fn wei(v: impl ToString) -> String {
    v.to_string()
}

/// Updates (or creates) the job record an event belongs to.
fn apply(jobs: &mut BTreeMap<JobId, JobRecord>, id: JobId, ev: &ChainEvent) {
    use MarketEvent as E;
    if let E::JobPosted(e) = &ev.event {
        let p = &e.params;
        let spec_cid = cid_from_chain_bytes(&p.specCid)
            .map(|c| c.to_string())
            .unwrap_or_else(|_| format!("0x{}", hex::encode(&p.specCid)));
        let record = JobRecord {
            id,
            creator: e.creator,
            state: JobState::Posted,
            params: JobParamsView {
                spec_cid,
                spec_hash: p.specHash,
                concurrency: p.concurrency,
                confidence: p.confidence,
                min_bids: p.minBids,
                max_price: wei(p.maxPrice),
                collateral: wei(p.collateral),
                bid_window: p.bidWindow,
                exec_window: p.execWindow,
                reveal_window: p.revealWindow,
                challenge_window: p.challengeWindow,
                verifier: enum_name(VERIFIER, p.verifier as u8),
                escalate: p.escalate,
            },
            escrow: wei(e.escrow),
            bid_deadline: e.bidDeadline,
            phase_deadline: e.bidDeadline,
            posted_block: ev.block_number,
            bids: Vec::new(),
            deals: Vec::new(),
            result_hash: None,
            result_cid: None,
            payments: Vec::new(),
            refunds: Vec::new(),
            slashes: Vec::new(),
            fail_reason: None,
        };
        jobs.insert(id, record);
        return;
    }
    let Some(job) = jobs.get_mut(&id) else {
        tracing::warn!(job = %id, "event for a job posted before the follower's start block");
        return;
    };
    match &ev.event {
        E::BidPlaced(e) => job.bids.push(BidView {
            operator: e.operator,
            price: wei(e.price),
            dropped: false,
        }),
        E::BidDropped(e) => {
            for b in job.bids.iter_mut().filter(|b| b.operator == e.operator) {
                b.dropped = true;
            }
        }
        E::DealAccepted(e) => job.deals.push(DealView {
            operator: e.operator,
            price: wei(e.price),
            collateral: wei(e.collateral),
            mediator: false,
            commitment: None,
            result_hash: None,
            result_cid: None,
        }),
        E::MediatorSelected(e) => job.deals.push(DealView {
            operator: e.operator,
            price: "0".into(),
            collateral: wei(e.collateral),
            mediator: true,
            commitment: None,
            result_hash: None,
            result_cid: None,
        }),
        E::PhaseStarted(e) => {
            if let Some(st) = JobState::from_index(e.state as u8) {
                job.state = st;
            }
            job.phase_deadline = e.deadline;
        }
        E::ResultCommitted(e) => {
            // A mediator's deal is the one most recently added for that operator.
            if let Some(d) = job
                .deals
                .iter_mut()
                .rev()
                .find(|d| d.operator == e.operator)
            {
                d.commitment = Some(e.commitment);
            }
        }
        E::ResultRevealed(e) => {
            if let Some(d) = job
                .deals
                .iter_mut()
                .rev()
                .find(|d| d.operator == e.operator)
            {
                d.result_hash = Some(e.resultHash);
                d.result_cid = Some(
                    cid_from_chain_bytes(&e.resultCid)
                        .map(|c| c.to_string())
                        .unwrap_or_else(|_| format!("0x{}", hex::encode(&e.resultCid))),
                );
            }
        }
        E::JobVerified(e) => {
            job.state = JobState::Verified;
            job.result_hash = Some(e.resultHash);
            job.result_cid = results_cid_of(e.resultHash).ok().map(|c| c.to_string());
        }
        E::DisputeResolved(e) if !e.resultHash.is_zero() => {
            job.result_hash = Some(e.resultHash);
            job.result_cid = results_cid_of(e.resultHash).ok().map(|c| c.to_string());
        }
        E::JobFailed(e) => {
            job.state = JobState::Failed;
            job.fail_reason = Some(enum_name(FAIL_REASON, e.reason as u8));
        }
        E::JobExpired(_) => job.state = JobState::Expired,
        E::Paid(e) => job.payments.push(Transfer {
            account: e.to,
            amount: wei(e.amount),
            kind: enum_name(PAYMENT_KIND, e.kind as u8),
        }),
        E::Refunded(e) => job.refunds.push(Transfer {
            account: e.creator,
            amount: wei(e.amount),
            kind: "Refund".into(),
        }),
        E::Slashed(e) => job.slashes.push(Transfer {
            account: e.operator,
            amount: wei(e.amount),
            kind: enum_name(SLASH_REASON, e.reason as u8),
        }),
        _ => {}
    }
}

/// The event as stored in a job's history; `None` for events that are not about one job.
fn describe_event(ev: &ChainEvent) -> Option<(JobId, EventRecord)> {
    use MarketEvent as E;
    let (id, name, fields) = match &ev.event {
        E::JobPosted(e) => (
            e.jobId,
            "JobPosted",
            json!({
                "creator": e.creator,
                "specCid": cid_from_chain_bytes(&e.params.specCid).map(|c| c.to_string()).ok(),
                "specHash": e.params.specHash,
                "concurrency": e.params.concurrency,
                "confidence": e.params.confidence,
                "minBids": e.params.minBids,
                "maxPrice": wei(e.params.maxPrice),
                "collateral": wei(e.params.collateral),
                "escrow": wei(e.escrow),
                "bidDeadline": e.bidDeadline,
            }),
        ),
        E::BidPlaced(e) => (
            e.jobId,
            "BidPlaced",
            json!({"operator": e.operator, "price": wei(e.price)}),
        ),
        E::BidDropped(e) => (e.jobId, "BidDropped", json!({"operator": e.operator})),
        E::DealAccepted(e) => (
            e.jobId,
            "DealAccepted",
            json!({"operator": e.operator, "price": wei(e.price), "collateral": wei(e.collateral)}),
        ),
        E::PhaseStarted(e) => (
            e.jobId,
            "PhaseStarted",
            json!({"state": JobState::from_index(e.state as u8).map(|s| s.name()), "deadline": e.deadline}),
        ),
        E::ResultCommitted(e) => (
            e.jobId,
            "ResultCommitted",
            json!({"operator": e.operator, "commitment": e.commitment}),
        ),
        E::ResultRevealed(e) => (
            e.jobId,
            "ResultRevealed",
            json!({
                "operator": e.operator,
                "resultHash": e.resultHash,
                "resultCid": cid_from_chain_bytes(&e.resultCid).map(|c| c.to_string()).ok(),
            }),
        ),
        E::JobVerified(e) => (
            e.jobId,
            "JobVerified",
            json!({
                "resultHash": e.resultHash,
                "resultCid": results_cid_of(e.resultHash).map(|c| c.to_string()).ok(),
                "winners": e.winners,
            }),
        ),
        E::JobFailed(e) => (
            e.jobId,
            "JobFailed",
            json!({"reason": enum_name(FAIL_REASON, e.reason as u8)}),
        ),
        E::JobExpired(e) => (e.jobId, "JobExpired", json!({"bids": e.bids})),
        E::DisputeOpened(e) => (
            e.jobId,
            "DisputeOpened",
            json!({"challenger": e.challenger, "bond": wei(e.bond)}),
        ),
        E::MediatorSelected(e) => (
            e.jobId,
            "MediatorSelected",
            json!({"operator": e.operator, "collateral": wei(e.collateral)}),
        ),
        E::DisputeResolved(e) => (
            e.jobId,
            "DisputeResolved",
            json!({"resultHash": e.resultHash, "challengeUpheld": e.challengeUpheld}),
        ),
        E::Paid(e) => (
            e.jobId,
            "Paid",
            json!({"to": e.to, "amount": wei(e.amount), "kind": enum_name(PAYMENT_KIND, e.kind as u8)}),
        ),
        E::Refunded(e) => (
            e.jobId,
            "Refunded",
            json!({"creator": e.creator, "amount": wei(e.amount)}),
        ),
        E::Slashed(e) => (
            e.jobId,
            "Slashed",
            json!({"operator": e.operator, "amount": wei(e.amount), "reason": enum_name(SLASH_REASON, e.reason as u8)}),
        ),
        _ => return None,
    };
    Some((
        job_id(id),
        EventRecord {
            block: ev.block_number,
            log_index: ev.log_index,
            tx: Some(ev.tx_hash),
            event: name.to_owned(),
            fields,
        },
    ))
}
