#![doc = include_str!("../README.md")]

mod cid;
mod event;
mod execution;
mod job;
mod node;
mod pin;
pub mod shard;
pub mod wei;

pub use cid::{
    DAG_PB, RAW, SHA2_256, cid_from_chain_bytes, cid_text, result_hash_of, results_cid_of,
};
pub use event::{EventRecord, describe};
pub use execution::{BidDecision, Execution, ExecutionView, Role, Step, WatchCheck, WatchVerdict};
pub use job::{
    BidView, DealView, JobDetail, JobList, JobParamsView, JobView, RefundKind, Transfer,
};
pub use node::{
    ApiErrorBody, CidResponse, DeploymentView, Health, Logs, NodeStatus, NodeView, PeerView,
    PeersView,
};
pub use pin::{
    LeaveView, LeaveWait, PeerPinStatus, PinPeerView, PinRequest, PinState, PinStatusView, PinView,
};
pub use shoal_chain::{
    AbiEnum, Address, B256, FailReason, JobId, JobState, PaymentKind, SlashReason, U256, Verifier,
};

/// What can go wrong converting between result hashes and CIDs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A CID that cannot stand for an on-chain result hash, or bytes that are not a CID.
    #[error("CID {cid}: {reason}")]
    Cid { cid: String, reason: String },
}

/// Result with [`enum@Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Unix seconds now.
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
