//! The on-chain parameters of a job spec.

use std::time::Duration;

use alloy::primitives::{Bytes, keccak256};
use shoal_types::{JobSpec, Verifier as SpecVerifier};

use crate::bindings::JobMarket::Verifier;
use crate::client::JobParams;

/// The `postJob` parameters for `spec` stored under the CID whose binary form is `spec_cid`:
/// the spec hash is keccak256 of the spec's canonical JSON, the CID goes on chain as bytes.
/// Values beyond what the contract's field widths hold saturate (the spec validator rejects
/// them before they get here).
pub fn job_params(spec: &JobSpec, spec_cid: impl Into<Bytes>) -> JobParams {
    let d = &spec.deal;
    let secs = |t: Duration| u32::try_from(t.as_secs()).unwrap_or(u32::MAX);
    let u8c = |v: u32| u8::try_from(v).unwrap_or(u8::MAX);
    let u96 = |v: u128| alloy::primitives::aliases::U96::saturating_from(v);
    let optimistic = d.verifier == SpecVerifier::Optimistic;
    JobParams {
        specCid: spec_cid.into(),
        specHash: keccak256(spec.to_canonical_json()),
        concurrency: u8c(d.concurrency),
        confidence: u8c(d.confidence),
        minBids: u8c(d.min_bids),
        maxPrice: u96(d.max_price),
        collateral: u96(d.collateral),
        bidWindow: secs(d.windows.bid),
        execWindow: secs(d.windows.exec),
        revealWindow: secs(d.windows.reveal),
        challengeWindow: if optimistic {
            secs(d.windows.reveal)
        } else {
            0
        },
        verifier: if optimistic {
            Verifier::Optimistic
        } else {
            Verifier::Deterministic
        },
        escalate: d.mediation,
        mediators: d.mediators.map_or(0, u8c),
        creator: alloy::primitives::Address::ZERO,
    }
}

/// The `postShardedJob` parameters for a sharded `spec` stored at `spec_cid`, whose manifest
/// (`shard_count` shards, canonical JSON `manifest_json`) is stored at `manifest_cid`.
/// Per shard, the price is the spec's `deal.max_price`; per batch, the collateral is the
/// spec's `deal.collateral`.
pub fn shard_job_params(
    spec: &JobSpec,
    spec_cid: impl Into<Bytes>,
    manifest_json: &[u8],
    manifest_cid: impl Into<Bytes>,
    shard_count: u32,
) -> crate::ShardJobParams {
    let d = &spec.deal;
    let secs = |t: Duration| u32::try_from(t.as_secs()).unwrap_or(u32::MAX);
    let u8c = |v: u32| u8::try_from(v).unwrap_or(u8::MAX);
    let u96 = |v: u128| alloy::primitives::aliases::U96::saturating_from(v);
    let size = spec.shards.as_ref().map_or(1, |s| s.size);
    crate::ShardJobParams {
        specCid: spec_cid.into(),
        specHash: keccak256(spec.to_canonical_json()),
        manifestCid: manifest_cid.into(),
        manifestHash: keccak256(manifest_json),
        shardCount: shard_count,
        batchSize: u16::try_from(size).unwrap_or(u16::MAX),
        concurrency: u8c(d.concurrency),
        confidence: u8c(d.confidence),
        minBids: u8c(d.min_bids),
        pricePerShard: u96(d.max_price),
        collateralPerBatch: u96(d.collateral),
        bidWindow: secs(d.windows.bid),
        execWindow: secs(d.windows.exec),
        revealWindow: secs(d.windows.reveal),
        creator: alloy::primitives::Address::ZERO,
    }
}
