//! The one event describer: a decoded market or registry event becomes an [`EventRecord`], a
//! line for people and its fields for machines (amounts in wei as decimal strings, addresses
//! checksummed, CIDs as text).

use alloy::primitives::utils::format_ether;
use alloy::primitives::{Address, B256, U256};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use shoal_chain::{ChainEvent, JobState, MarketEvent};

use crate::cid::{cid_text, results_cid_of};

/// One decoded chain event, as `GET /api/v1/jobs/{id}/events` and `shoal deal show` give it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventRecord {
    /// Block number.
    pub block: u64,
    /// Index of the log in its block.
    pub log_index: u64,
    /// Transaction hash.
    pub tx: B256,
    /// Event name as in the contract (`BidPlaced`, `Slashed`, …).
    pub event: String,
    /// One line for people.
    pub summary: String,
    /// The event's fields.
    pub fields: Value,
}

/// Describes a decoded event for people and machines.
pub fn describe(e: &ChainEvent) -> EventRecord {
    let (summary, fields) = summary_and_fields(&e.event);
    EventRecord {
        block: e.block_number,
        log_index: e.log_index,
        tx: e.tx_hash,
        event: e.event.name().to_owned(),
        summary,
        fields,
    }
}

fn eth<T>(v: T) -> String
where
    U256: alloy::primitives::ruint::UintTryFrom<T>,
{
    let s = format_ether(U256::from(v));
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    };
    format!("{s} ETH")
}

fn a(x: &Address) -> String {
    x.to_checksum(None)
}

/// Describes an event for people and machines.
fn summary_and_fields(e: &MarketEvent) -> (String, Value) {
    use MarketEvent as M;
    match e {
        M::JobPosted(p) => (
            format!(
                "posted by {}: n={} k={} m={}, max price {}, collateral {}, escrow {}, {}{}",
                a(&p.creator),
                p.params.concurrency,
                p.params.confidence,
                p.params.minBids,
                eth(p.params.maxPrice),
                eth(p.params.collateral),
                eth(p.escrow),
                p.params.verifier,
                if p.params.escalate {
                    ", mediation on disagreement"
                } else {
                    ""
                }
            ),
            json!({
                "creator": a(&p.creator), "specCid": cid_text(&p.params.specCid), "specHash": p.params.specHash.to_string(),
                "concurrency": p.params.concurrency, "confidence": p.params.confidence, "minBids": p.params.minBids,
                "maxPrice": p.params.maxPrice.to_string(), "collateral": p.params.collateral.to_string(),
                "escrow": p.escrow.to_string(), "bidDeadline": p.bidDeadline, "verifier": p.params.verifier.to_string(),
                "escalate": p.params.escalate,
            }),
        ),
        M::BidPlaced(b) => (
            format!("bid from {} at {}", a(&b.operator), eth(b.price)),
            json!({ "operator": a(&b.operator), "price": b.price.to_string() }),
        ),
        M::BidDropped(b) => (
            format!(
                "bid of {} dropped (not enough free stake at selection)",
                a(&b.operator)
            ),
            json!({ "operator": a(&b.operator) }),
        ),
        M::DealAccepted(d) => (
            format!(
                "selected {} at {}, collateral {} locked",
                a(&d.operator),
                eth(d.price),
                eth(d.collateral)
            ),
            json!({ "operator": a(&d.operator), "price": d.price.to_string(), "collateral": d.collateral.to_string() }),
        ),
        M::PhaseStarted(p) => (
            if matches!(p.state, JobState::Drawing | JobState::DisputeDrawing) {
                format!(
                    "phase {}: drawn from the hash of block {}",
                    p.state, p.deadline
                )
            } else {
                format!("phase {} until {}", p.state, p.deadline)
            },
            json!({ "state": p.state.to_string(), "deadline": p.deadline }),
        ),
        M::ResultCommitted(c) => (
            format!("commitment from {}: {}", a(&c.operator), c.commitment),
            json!({ "operator": a(&c.operator), "commitment": c.commitment.to_string() }),
        ),
        M::ResultRevealed(r) => (
            format!(
                "reveal from {}: sealed result {}",
                a(&r.operator),
                r.sealedHash
            ),
            json!({ "operator": a(&r.operator), "sealedHash": r.sealedHash.to_string() }),
        ),
        M::JobVerified(v) => (
            format!(
                "verified: sealed result {} agreed by {} operator(s)",
                v.sealedHash, v.winners
            ),
            json!({ "sealedHash": v.sealedHash.to_string(), "winners": v.winners }),
        ),
        M::ResultPublished(p) => {
            let cid = results_cid_of(p.resultHash).ok().map(|c| c.to_string());
            (
                format!(
                    "result published: {}",
                    cid.as_deref().unwrap_or("(not a results CID)")
                ),
                json!({ "resultHash": p.resultHash.to_string(), "resultCid": cid }),
            )
        }
        M::JobFailed(f) => (
            format!("failed: {}", f.reason),
            json!({ "reason": f.reason.to_string() }),
        ),
        M::JobExpired(x) => (
            format!(
                "expired with {} bid(s): too few operators bid before the deadline",
                x.bids
            ),
            json!({ "bids": x.bids }),
        ),
        M::DisputeOpened(d) => (
            format!(
                "dispute opened by {} (bond {})",
                a(&d.challenger),
                eth(d.bond)
            ),
            json!({ "challenger": a(&d.challenger), "bond": d.bond.to_string() }),
        ),
        M::MediatorSelected(m) => (
            format!(
                "mediator {} drawn, collateral {} locked",
                a(&m.operator),
                eth(m.collateral)
            ),
            json!({ "operator": a(&m.operator), "collateral": m.collateral.to_string() }),
        ),
        M::DisputeResolved(r) => (
            format!(
                "dispute resolved: sealed result {}{}",
                r.sealedHash,
                if r.challengeUpheld {
                    ", challenge upheld"
                } else {
                    ""
                }
            ),
            json!({ "sealedHash": r.sealedHash.to_string(), "challengeUpheld": r.challengeUpheld }),
        ),
        M::DrawRearmed(r) => (
            format!(
                "the draw from block {} was not taken within 256 blocks; re-armed at block {}",
                r.staleDrawBlock, r.drawBlock
            ),
            json!({ "staleDrawBlock": r.staleDrawBlock, "drawBlock": r.drawBlock }),
        ),
        M::Paid(p) => (
            format!("paid {} to {} ({})", eth(p.amount), a(&p.to), p.kind),
            json!({ "to": a(&p.to), "amount": p.amount.to_string(), "kind": p.kind.to_string() }),
        ),
        M::Refunded(r) => (
            format!("refunded {} to {}", eth(r.amount), a(&r.creator)),
            json!({ "creator": a(&r.creator), "amount": r.amount.to_string() }),
        ),
        M::Slashed(s) => (
            format!(
                "slashed {} from {} ({})",
                eth(s.amount),
                a(&s.operator),
                s.reason
            ),
            json!({ "operator": a(&s.operator), "amount": s.amount.to_string(), "reason": s.reason.to_string() }),
        ),
        M::Claimed(c) => (
            format!("{} claimed {}", a(&c.account), eth(c.amount)),
            json!({ "account": a(&c.account), "amount": c.amount.to_string() }),
        ),
        M::Burned(b) => (
            format!(
                "{} of slashed collateral burned (no honest party to pay it to)",
                eth(b.amount)
            ),
            json!({ "amount": b.amount.to_string() }),
        ),
        M::OperatorRegistered(r) => (
            format!("operator {} registered", a(&r.operator)),
            json!({ "operator": a(&r.operator), "peerId": cid_text(&r.peerId) }),
        ),
        M::OperatorUpdated(r) => (
            format!("operator {} updated", a(&r.operator)),
            json!({ "operator": a(&r.operator) }),
        ),
        M::Staked(s) => (
            format!(
                "{} staked {} (total {})",
                a(&s.operator),
                eth(s.amount),
                eth(s.totalStake)
            ),
            json!({ "operator": a(&s.operator), "amount": s.amount.to_string(), "totalStake": s.totalStake.to_string() }),
        ),
        M::WithdrawRequested(w) => (
            format!(
                "{} requested withdrawal of {} (unlocks at {})",
                a(&w.operator),
                eth(w.amount),
                w.unlockTime
            ),
            json!({ "operator": a(&w.operator), "amount": w.amount.to_string(), "pendingWithdrawal": w.pendingWithdrawal.to_string(), "unlockTime": w.unlockTime }),
        ),
        M::Withdrawn(w) => (
            format!("{} withdrew {}", a(&w.operator), eth(w.amount)),
            json!({ "operator": a(&w.operator), "amount": w.amount.to_string() }),
        ),
        M::StakeLocked(s) => (
            format!("{} of {}'s stake locked", eth(s.amount), a(&s.operator)),
            json!({ "operator": a(&s.operator), "amount": s.amount.to_string() }),
        ),
        M::StakeUnlocked(s) => (
            format!("{} of {}'s stake unlocked", eth(s.amount), a(&s.operator)),
            json!({ "operator": a(&s.operator), "amount": s.amount.to_string() }),
        ),
        M::StakeSlashed(s) => (
            format!(
                "{} of {}'s stake taken by the market",
                eth(s.amount),
                a(&s.operator)
            ),
            json!({ "operator": a(&s.operator), "amount": s.amount.to_string() }),
        ),
        M::MarketSet(m) => (
            format!("market set to {}", a(&m.market)),
            json!({ "market": a(&m.market) }),
        ),
        M::ShardMarketSet(m) => (
            format!("shard market set to {}", a(&m.shardMarket)),
            json!({ "market": a(&m.shardMarket) }),
        ),
        M::CallFailed(c) => (
            format!(
                "call {} of a batch reverted: {}",
                c.index,
                shoal_chain::ContractError::decode(&c.reason)
            ),
            json!({ "index": c.index.to_string(), "reason": c.reason.to_string() }),
        ),
    }
}
