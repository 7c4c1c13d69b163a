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
        mediators: d.mediators.map_or(0, |m| u8c(m)),
    }
}
