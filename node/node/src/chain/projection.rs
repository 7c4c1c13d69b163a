//! Folds the market's events into [`JobView`]s. Every state change of the market emits an
//! event (`PhaseStarted` with its deadline, or a final `JobVerified`/`JobFailed`/
//! `JobExpired`), so a job's view follows from its events alone.

use std::collections::BTreeMap;

use shoal_api::{
    BidView, DealView, JobId, JobParamsView, JobView, RefundKind, Transfer, cid_text,
    results_cid_of,
};
use shoal_chain::{ChainEvent, JobState, MarketEvent, U256, sealed_hash};

/// Updates (or, for `JobPosted`, creates) the view of the job `ev` belongs to.
pub fn apply(jobs: &mut BTreeMap<JobId, JobView>, id: JobId, ev: &ChainEvent) {
    use MarketEvent as E;
    if let E::JobPosted(e) = &ev.event {
        let p = &e.params;
        let view = JobView {
            id,
            creator: e.creator,
            state: JobState::Posted,
            params: JobParamsView {
                spec_cid: cid_text(&p.specCid),
                spec_hash: p.specHash,
                concurrency: p.concurrency,
                confidence: p.confidence,
                min_bids: p.minBids,
                max_price: U256::from(p.maxPrice),
                collateral: U256::from(p.collateral),
                bid_window: p.bidWindow,
                exec_window: p.execWindow,
                reveal_window: p.revealWindow,
                challenge_window: p.challengeWindow,
                verifier: p.verifier,
                escalate: p.escalate,
            },
            escrow: U256::from(e.escrow),
            bid_deadline: e.bidDeadline,
            phase_deadline: e.bidDeadline,
            posted_block: ev.block_number,
            bids: Vec::new(),
            deals: Vec::new(),
            sealed_result: None,
            result_hash: None,
            result_cid: None,
            payments: Vec::new(),
            refunds: Vec::new(),
            slashes: Vec::new(),
            fail_reason: None,
        };
        jobs.insert(id, view);
        return;
    }
    let Some(job) = jobs.get_mut(&id) else {
        tracing::warn!(job = %id, "event for a job posted before the follower's start block");
        return;
    };
    match &ev.event {
        E::BidPlaced(e) => job.bids.push(BidView {
            operator: e.operator,
            price: U256::from(e.price),
            dropped: false,
        }),
        E::BidDropped(e) => {
            for b in job.bids.iter_mut().filter(|b| b.operator == e.operator) {
                b.dropped = true;
            }
        }
        E::DealAccepted(e) => job.deals.push(DealView {
            operator: e.operator,
            price: U256::from(e.price),
            collateral: U256::from(e.collateral),
            mediator: false,
            commitment: None,
            sealed_result: None,
            result_cid: None,
        }),
        E::MediatorSelected(e) => job.deals.push(DealView {
            operator: e.operator,
            price: U256::ZERO,
            collateral: U256::from(e.collateral),
            mediator: true,
            commitment: None,
            sealed_result: None,
            result_cid: None,
        }),
        E::PhaseStarted(e) => {
            job.state = e.state;
            job.phase_deadline = e.deadline;
        }
        E::ResultCommitted(e) => {
            if let Some(d) = deal(job, e.operator) {
                d.commitment = Some(e.commitment);
            }
        }
        E::ResultRevealed(e) => {
            if let Some(d) = deal(job, e.operator) {
                d.sealed_result = Some(e.sealedHash);
            }
        }
        E::JobVerified(e) => {
            job.state = JobState::Verified;
            job.sealed_result = Some(e.sealedHash);
        }
        E::DisputeResolved(e) if !e.sealedHash.is_zero() => {
            job.sealed_result = Some(e.sealedHash);
        }
        E::ResultPublished(e) => {
            let cid = results_cid_of(e.resultHash).ok().map(|c| c.to_string());
            let sealed = sealed_hash(id, e.resultHash);
            for d in job
                .deals
                .iter_mut()
                .filter(|d| d.sealed_result == Some(sealed))
            {
                d.result_cid.clone_from(&cid);
            }
            job.result_hash = Some(e.resultHash);
            job.result_cid = cid;
        }
        E::JobFailed(e) => {
            job.state = JobState::Failed;
            job.fail_reason = Some(e.reason);
        }
        E::JobExpired(_) => job.state = JobState::Expired,
        E::Paid(e) => job.payments.push(Transfer {
            account: e.to,
            amount: U256::from(e.amount),
            kind: e.kind,
        }),
        E::Refunded(e) => job.refunds.push(Transfer {
            account: e.creator,
            amount: U256::from(e.amount),
            kind: RefundKind::Refund,
        }),
        E::Slashed(e) => job.slashes.push(Transfer {
            account: e.operator,
            amount: U256::from(e.amount),
            kind: e.reason,
        }),
        _ => {}
    }
}

/// The deal of `op` (a mediator's is the one most recently added for that operator).
fn deal(job: &mut JobView, op: shoal_chain::Address) -> Option<&mut DealView> {
    job.deals.iter_mut().rev().find(|d| d.operator == op)
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_chain::bindings::JobMarket as M;
    use shoal_chain::{Address, B256, FailReason};

    fn event(block: u64, event: MarketEvent) -> ChainEvent {
        ChainEvent {
            block_number: block,
            block_hash: B256::ZERO,
            tx_hash: B256::ZERO,
            log_index: 0,
            event,
        }
    }

    #[test]
    fn a_job_follows_from_its_events() {
        let id = JobId::from(1u64);
        let mut jobs = BTreeMap::new();
        let params = M::JobParams {
            specCid: b"bafkqaaa".to_vec().into(),
            specHash: B256::ZERO,
            concurrency: 1,
            confidence: 1,
            minBids: 1,
            maxPrice: Default::default(),
            collateral: Default::default(),
            bidWindow: 10,
            execWindow: 10,
            revealWindow: 10,
            challengeWindow: 0,
            verifier: shoal_chain::Verifier::Deterministic,
            escalate: false,
            mediators: 0,
            creator: shoal_chain::Address::ZERO,
        };
        let posted = M::JobPosted {
            jobId: U256::from(1u64),
            creator: Address::repeat_byte(1),
            params,
            escrow: Default::default(),
            bidDeadline: 10,
        };
        apply(&mut jobs, id, &event(1, MarketEvent::JobPosted(posted)));
        let op = Address::repeat_byte(2);
        let deal = M::DealAccepted {
            jobId: U256::from(1u64),
            operator: op,
            price: Default::default(),
            collateral: Default::default(),
        };
        apply(&mut jobs, id, &event(2, MarketEvent::DealAccepted(deal)));
        let failed = M::JobFailed {
            jobId: U256::from(1u64),
            reason: FailReason::TooFewCommits,
        };
        apply(&mut jobs, id, &event(3, MarketEvent::JobFailed(failed)));
        let job = jobs.get(&id).cloned();
        assert!(job.as_ref().is_some_and(|j| j.state == JobState::Failed
            && j.fail_reason == Some(FailReason::TooFewCommits)
            && j.deal_of(op).is_some()
            && j.params.spec_cid == "bafkqaaa"));
    }
}
