//! A job as the chain shows it, folded from the market's events.

use serde::{Deserialize, Serialize};
use shoal_chain::{
    Address, B256, FailReason, JobId, JobState, PaymentKind, SlashReason, U256, Verifier,
};

use crate::execution::{BidDecision, ExecutionView, WatchCheck};

/// Job parameters as posted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobParamsView {
    /// The spec's CID (or `0x…` when the posted bytes are not a CID).
    pub spec_cid: String,
    /// keccak256 of the canonical spec.
    pub spec_hash: B256,
    /// Operators that run the job (n).
    pub concurrency: u8,
    /// Agreeing results needed (k).
    pub confidence: u8,
    /// Bids needed before selection (m).
    pub min_bids: u8,
    /// Highest price per execution.
    #[serde(with = "crate::wei")]
    pub max_price: U256,
    /// Collateral each selected operator locks.
    #[serde(with = "crate::wei")]
    pub collateral: U256,
    /// Seconds.
    pub bid_window: u32,
    /// Seconds.
    pub exec_window: u32,
    /// Seconds.
    pub reveal_window: u32,
    /// Seconds.
    pub challenge_window: u32,
    /// How results are accepted.
    pub verifier: Verifier,
    /// Disagreement goes to mediation.
    pub escalate: bool,
}

/// A bid on a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BidView {
    /// The bidder.
    pub operator: Address,
    /// Price asked.
    #[serde(with = "crate::wei")]
    pub price: U256,
    /// Dropped at selection (not enough free stake).
    pub dropped: bool,
}

/// A selected operator or a mediator and its progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DealView {
    /// The operator.
    pub operator: Address,
    /// Price agreed (0 for a mediator).
    #[serde(with = "crate::wei")]
    pub price: U256,
    /// Collateral locked.
    #[serde(with = "crate::wei")]
    pub collateral: U256,
    /// Drawn for a dispute.
    pub mediator: bool,
    /// The commitment, once committed.
    pub commitment: Option<B256>,
    /// The revealed sealed hash (`keccak256(abi.encode(jobId, resultHash))`; a mediator's
    /// reveal is sealed by the market).
    pub sealed_result: Option<B256>,
    /// The result CID, once the job's result is published and this deal revealed it.
    pub result_cid: Option<String>,
}

/// The kind of a refund to the creator (refunds have one kind).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RefundKind {
    /// Escrow returned.
    Refund,
}

/// A payment, refund or slash; `kind` is a [`PaymentKind`], [`RefundKind`] or [`SlashReason`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Transfer<K> {
    /// Who was paid, refunded or slashed.
    pub account: Address,
    /// How much.
    #[serde(with = "crate::wei")]
    pub amount: U256,
    /// Why.
    pub kind: K,
}

/// A job as a node's chain follower has seen it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobView {
    /// The job's id.
    pub id: JobId,
    /// Who posted it.
    pub creator: Address,
    /// The contract's state.
    pub state: JobState,
    /// The posted parameters.
    pub params: JobParamsView,
    /// Escrow paid at post.
    #[serde(with = "crate::wei")]
    pub escrow: U256,
    /// End of bidding (unix seconds).
    pub bid_deadline: u64,
    /// End of the current phase (unix seconds); the end time once final.
    pub phase_deadline: u64,
    /// Block of the post.
    pub posted_block: u64,
    /// Bids, in order.
    pub bids: Vec<BidView>,
    /// Selected operators, then mediators.
    pub deals: Vec<DealView>,
    /// The accepted sealed hash (`JobVerified`, or a dispute's truth).
    pub sealed_result: Option<B256>,
    /// The verified result hash, once published (`ResultPublished`).
    pub result_hash: Option<B256>,
    /// The verified results folder's CID (from the result hash).
    pub result_cid: Option<String>,
    /// Payments to operators and challengers.
    pub payments: Vec<Transfer<PaymentKind>>,
    /// Refunds to the creator.
    pub refunds: Vec<Transfer<RefundKind>>,
    /// Slashes of operators' collateral.
    pub slashes: Vec<Transfer<SlashReason>>,
    /// Why the job failed.
    pub fail_reason: Option<FailReason>,
}

impl JobView {
    /// The deal of `operator` (worker or mediator; the most recent one).
    pub fn deal_of(&self, operator: Address) -> Option<&DealView> {
        self.deals.iter().rev().find(|d| d.operator == operator)
    }

    /// Whether `operator` was paid for this job.
    pub fn paid(&self, operator: Address) -> bool {
        self.payments.iter().any(|p| p.account == operator)
    }
}

/// Everything a node knows about a job: `GET /api/v1/jobs/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobDetail {
    /// The job as the chain shows it.
    #[serde(flatten)]
    pub job: JobView,
    /// The spec, when the node has it.
    pub spec: Option<serde_json::Value>,
    /// This node's bid decision and its reason.
    pub decision: Option<BidDecision>,
    /// This node's execution.
    pub execution: Option<ExecutionView>,
    /// This node's watcher check, for an optimistic job it re-ran.
    pub watch: Option<WatchCheck>,
    /// The operator of the node that answered.
    pub node: Option<Address>,
}

/// A page of jobs, newest first: `GET /api/v1/jobs`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobList {
    /// Jobs matching the filter.
    pub total: usize,
    /// Offset of this page.
    pub offset: usize,
    /// The page.
    pub jobs: Vec<JobView>,
}

impl std::ops::Deref for JobDetail {
    type Target = JobView;

    fn deref(&self) -> &JobView {
        &self.job
    }
}
