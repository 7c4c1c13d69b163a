//! The chain follower: reads the market's events from a persisted block
//! cursor, folds them into job records and the per-job event history, and
//! wakes the compute side.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::bindings::JobMarket::JobMarketEvents;
use alloy::primitives::U256;
use alloy::providers::Provider;
use alloy::rpc::types::{Filter, Log};
use alloy::sol_types::SolEventInterface;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::chain::Chain;
use crate::db::StateStore;
use crate::error::{Error, Result};
use crate::model::{
    BidView, DealView, EventRecord, FAIL_REASON, JobId, JobParamsView, JobRecord, JobState,
    PAYMENT_KIND, SLASH_REASON, Transfer, VERIFIER, enum_name,
};
use crate::results::{cid_from_chain_bytes, results_cid_of};

/// Most blocks asked for in one `eth_getLogs`.
const MAX_RANGE: u64 = 2_000;

fn job_id(v: U256) -> JobId {
    JobId(u64::try_from(v).unwrap_or(u64::MAX))
}

/// Follows the chain until cancelled. Calls `on_change` after every batch that changed something.
pub async fn run(
    chain: Arc<Chain>,
    db: StateStore,
    poll: std::time::Duration,
    confirmations: u64,
    cancel: CancellationToken,
    on_change: impl Fn() + Send + Sync,
) {
    loop {
        match poll_once(&chain, &db, confirmations).await {
            Ok(true) => {
                on_change();
                continue;
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "chain follower: poll failed, retrying"),
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(poll) => {}
        }
    }
}

/// Reads one range of blocks; returns whether anything was stored.
pub async fn poll_once(chain: &Chain, db: &StateStore, confirmations: u64) -> Result<bool> {
    let head = chain
        .provider
        .get_block_number()
        .await
        .map_err(Error::chain)?;
    let Some(safe) = head.checked_sub(confirmations) else {
        return Ok(false);
    };
    let from = db.cursor()?.unwrap_or(chain.deployment.deploy_block);
    if from > safe {
        return Ok(false);
    }
    let to = safe.min(from + MAX_RANGE - 1);
    let filter = Filter::new()
        .address(chain.deployment.job_market)
        .from_block(from)
        .to_block(to);
    let logs = chain
        .provider
        .get_logs(&filter)
        .await
        .map_err(Error::chain)?;
    let mut jobs: BTreeMap<JobId, JobRecord> = BTreeMap::new();
    let mut events = Vec::new();
    for log in &logs {
        let Ok(decoded) = JobMarketEvents::decode_log(&log.inner) else {
            tracing::debug!(?log, "skipping an undecodable log");
            continue;
        };
        let Some((id, record)) = describe_event(log, &decoded.data) else {
            continue;
        };
        if let std::collections::btree_map::Entry::Vacant(slot) = jobs.entry(id)
            && let Some(existing) = db.job(id)?
        {
            slot.insert(existing);
        }
        apply(&mut jobs, id, &decoded.data, log);
        events.push((id, record));
    }
    // The contract's view at the last block read is authoritative for the
    // state and the phase deadline (at a later block it could run ahead of the events).
    for (id, job) in jobs.iter_mut() {
        let at = alloy::eips::BlockId::number(to);
        if let Ok(onchain) = chain.market.getJob(U256::from(id.0)).call().block(at).await {
            if let Some(st) = JobState::from_index(onchain.state) {
                job.state = st;
            }
            job.phase_deadline = onchain.phaseDeadline;
            job.bid_deadline = onchain.bidDeadline;
        }
    }
    let jobs: Vec<JobRecord> = jobs.into_values().collect();
    db.apply(&jobs, &events, to + 1)?;
    Ok(!events.is_empty())
}

fn wei(v: impl ToString) -> String {
    v.to_string()
}

/// Updates (or creates) the job record an event belongs to.
fn apply(jobs: &mut BTreeMap<JobId, JobRecord>, id: JobId, ev: &JobMarketEvents, log: &Log) {
    use JobMarketEvents as E;
    if let E::JobPosted(e) = ev {
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
                verifier: enum_name(VERIFIER, p.verifier),
                escalate: p.escalate,
            },
            escrow: wei(e.escrow),
            bid_deadline: e.bidDeadline,
            phase_deadline: e.bidDeadline,
            posted_block: log.block_number.unwrap_or(0),
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
    match ev {
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
            if let Some(st) = JobState::from_index(e.state) {
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
            job.fail_reason = Some(enum_name(FAIL_REASON, e.reason));
        }
        E::JobExpired(_) => job.state = JobState::Expired,
        E::Paid(e) => job.payments.push(Transfer {
            account: e.to,
            amount: wei(e.amount),
            kind: enum_name(PAYMENT_KIND, e.kind),
        }),
        E::Refunded(e) => job.refunds.push(Transfer {
            account: e.creator,
            amount: wei(e.amount),
            kind: "Refund".into(),
        }),
        E::Slashed(e) => job.slashes.push(Transfer {
            account: e.operator,
            amount: wei(e.amount),
            kind: enum_name(SLASH_REASON, e.reason),
        }),
        _ => {}
    }
}

/// The event as stored in a job's history; `None` for events that are not about one job.
fn describe_event(log: &Log, ev: &JobMarketEvents) -> Option<(JobId, EventRecord)> {
    use JobMarketEvents as E;
    let (id, name, fields) = match ev {
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
            json!({"state": JobState::from_index(e.state).map(|s| s.name()), "deadline": e.deadline}),
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
            json!({"reason": enum_name(FAIL_REASON, e.reason)}),
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
            json!({"to": e.to, "amount": wei(e.amount), "kind": enum_name(PAYMENT_KIND, e.kind)}),
        ),
        E::Refunded(e) => (
            e.jobId,
            "Refunded",
            json!({"creator": e.creator, "amount": wei(e.amount)}),
        ),
        E::Slashed(e) => (
            e.jobId,
            "Slashed",
            json!({"operator": e.operator, "amount": wei(e.amount), "reason": enum_name(SLASH_REASON, e.reason)}),
        ),
        _ => return None,
    };
    Some((
        job_id(id),
        EventRecord {
            block: log.block_number.unwrap_or(0),
            log_index: log.log_index.unwrap_or(0),
            tx: log.transaction_hash,
            event: name.to_owned(),
            fields,
        },
    ))
}
