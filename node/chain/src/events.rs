//! Typed events of the market and the registry.

use alloy::primitives::{Address, B256, Log};
use alloy::sol_types::SolEventInterface;

use crate::bindings::JobMarket::{self, JobMarketEvents as M};
use crate::bindings::OperatorRegistry::{self, OperatorRegistryEvents as R};
use crate::error::{Error, Result};
use crate::ids::JobId;

/// An event of Shoal's contracts, decoded with their ABIs. The market's events first, then the
/// registry's.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum MarketEvent {
    JobPosted(JobMarket::JobPosted),
    BidPlaced(JobMarket::BidPlaced),
    BidDropped(JobMarket::BidDropped),
    DealAccepted(JobMarket::DealAccepted),
    PhaseStarted(JobMarket::PhaseStarted),
    ResultCommitted(JobMarket::ResultCommitted),
    ResultRevealed(JobMarket::ResultRevealed),
    JobVerified(JobMarket::JobVerified),
    ResultPublished(JobMarket::ResultPublished),
    JobFailed(JobMarket::JobFailed),
    JobExpired(JobMarket::JobExpired),
    DisputeOpened(JobMarket::DisputeOpened),
    MediatorSelected(JobMarket::MediatorSelected),
    DisputeResolved(JobMarket::DisputeResolved),
    DrawRearmed(JobMarket::DrawRearmed),
    Paid(JobMarket::Paid),
    Refunded(JobMarket::Refunded),
    Slashed(JobMarket::Slashed),
    Claimed(JobMarket::Claimed),
    Burned(JobMarket::Burned),
    /// A call of a `batch` reverted (it belongs to no job; the sender learns it from its
    /// receipt).
    CallFailed(JobMarket::CallFailed),
    OperatorRegistered(OperatorRegistry::OperatorRegistered),
    OperatorUpdated(OperatorRegistry::OperatorUpdated),
    Staked(OperatorRegistry::Staked),
    WithdrawRequested(OperatorRegistry::WithdrawRequested),
    Withdrawn(OperatorRegistry::Withdrawn),
    StakeLocked(OperatorRegistry::StakeLocked),
    StakeUnlocked(OperatorRegistry::StakeUnlocked),
    StakeSlashed(OperatorRegistry::StakeSlashed),
    MarketSet(OperatorRegistry::MarketSet),
    ShardMarketSet(OperatorRegistry::ShardMarketSet),
}

impl From<M> for MarketEvent {
    fn from(e: M) -> Self {
        match e {
            M::JobPosted(e) => Self::JobPosted(e),
            M::BidPlaced(e) => Self::BidPlaced(e),
            M::BidDropped(e) => Self::BidDropped(e),
            M::DealAccepted(e) => Self::DealAccepted(e),
            M::PhaseStarted(e) => Self::PhaseStarted(e),
            M::ResultCommitted(e) => Self::ResultCommitted(e),
            M::ResultRevealed(e) => Self::ResultRevealed(e),
            M::JobVerified(e) => Self::JobVerified(e),
            M::ResultPublished(e) => Self::ResultPublished(e),
            M::JobFailed(e) => Self::JobFailed(e),
            M::JobExpired(e) => Self::JobExpired(e),
            M::DisputeOpened(e) => Self::DisputeOpened(e),
            M::MediatorSelected(e) => Self::MediatorSelected(e),
            M::DisputeResolved(e) => Self::DisputeResolved(e),
            M::DrawRearmed(e) => Self::DrawRearmed(e),
            M::Paid(e) => Self::Paid(e),
            M::Refunded(e) => Self::Refunded(e),
            M::Slashed(e) => Self::Slashed(e),
            M::Claimed(e) => Self::Claimed(e),
            M::Burned(e) => Self::Burned(e),
            M::CallFailed(e) => Self::CallFailed(e),
        }
    }
}

impl From<R> for MarketEvent {
    fn from(e: R) -> Self {
        match e {
            R::OperatorRegistered(e) => Self::OperatorRegistered(e),
            R::OperatorUpdated(e) => Self::OperatorUpdated(e),
            R::Staked(e) => Self::Staked(e),
            R::WithdrawRequested(e) => Self::WithdrawRequested(e),
            R::Withdrawn(e) => Self::Withdrawn(e),
            R::StakeLocked(e) => Self::StakeLocked(e),
            R::StakeUnlocked(e) => Self::StakeUnlocked(e),
            R::StakeSlashed(e) => Self::StakeSlashed(e),
            R::MarketSet(e) => Self::MarketSet(e),
            R::ShardMarketSet(e) => Self::ShardMarketSet(e),
        }
    }
}

impl MarketEvent {
    /// Decodes a log emitted by the market or the registry; `None` for other addresses.
    pub fn decode(log: &Log, market: Address, registry: Address) -> Option<Result<Self>> {
        let what = || {
            format!(
                "a log of {} with topic {:?}",
                log.address,
                log.topics().first()
            )
        };
        if log.address == market {
            Some(
                M::decode_log(log)
                    .map(|l| l.data.into())
                    .map_err(|source| Error::Decode {
                        what: what(),
                        source,
                    }),
            )
        } else if log.address == registry {
            Some(
                R::decode_log(log)
                    .map(|l| l.data.into())
                    .map_err(|source| Error::Decode {
                        what: what(),
                        source,
                    }),
            )
        } else {
            None
        }
    }

    /// The event's name as in the contract.
    pub fn name(&self) -> &'static str {
        match self {
            Self::JobPosted(_) => "JobPosted",
            Self::BidPlaced(_) => "BidPlaced",
            Self::BidDropped(_) => "BidDropped",
            Self::DealAccepted(_) => "DealAccepted",
            Self::PhaseStarted(_) => "PhaseStarted",
            Self::ResultCommitted(_) => "ResultCommitted",
            Self::ResultRevealed(_) => "ResultRevealed",
            Self::JobVerified(_) => "JobVerified",
            Self::ResultPublished(_) => "ResultPublished",
            Self::JobFailed(_) => "JobFailed",
            Self::JobExpired(_) => "JobExpired",
            Self::DisputeOpened(_) => "DisputeOpened",
            Self::MediatorSelected(_) => "MediatorSelected",
            Self::DisputeResolved(_) => "DisputeResolved",
            Self::DrawRearmed(_) => "DrawRearmed",
            Self::Paid(_) => "Paid",
            Self::Refunded(_) => "Refunded",
            Self::Slashed(_) => "Slashed",
            Self::Claimed(_) => "Claimed",
            Self::Burned(_) => "Burned",
            Self::OperatorRegistered(_) => "OperatorRegistered",
            Self::OperatorUpdated(_) => "OperatorUpdated",
            Self::Staked(_) => "Staked",
            Self::WithdrawRequested(_) => "WithdrawRequested",
            Self::Withdrawn(_) => "Withdrawn",
            Self::StakeLocked(_) => "StakeLocked",
            Self::StakeUnlocked(_) => "StakeUnlocked",
            Self::StakeSlashed(_) => "StakeSlashed",
            Self::MarketSet(_) => "MarketSet",
            Self::ShardMarketSet(_) => "ShardMarketSet",
            Self::CallFailed(_) => "CallFailed",
        }
    }

    /// The job the event is about, if any.
    pub fn job_id(&self) -> Option<JobId> {
        let id = match self {
            Self::JobPosted(e) => e.jobId,
            Self::BidPlaced(e) => e.jobId,
            Self::BidDropped(e) => e.jobId,
            Self::DealAccepted(e) => e.jobId,
            Self::PhaseStarted(e) => e.jobId,
            Self::ResultCommitted(e) => e.jobId,
            Self::ResultRevealed(e) => e.jobId,
            Self::JobVerified(e) => e.jobId,
            Self::ResultPublished(e) => e.jobId,
            Self::JobFailed(e) => e.jobId,
            Self::JobExpired(e) => e.jobId,
            Self::DisputeOpened(e) => e.jobId,
            Self::MediatorSelected(e) => e.jobId,
            Self::DisputeResolved(e) => e.jobId,
            Self::DrawRearmed(e) => e.jobId,
            Self::Paid(e) => e.jobId,
            Self::Refunded(e) => e.jobId,
            Self::Slashed(e) => e.jobId,
            Self::StakeLocked(e) => e.jobId,
            Self::StakeUnlocked(e) => e.jobId,
            Self::StakeSlashed(e) => e.jobId,
            Self::Burned(e) => e.jobId,
            Self::Claimed(_)
            | Self::OperatorRegistered(_)
            | Self::OperatorUpdated(_)
            | Self::Staked(_)
            | Self::WithdrawRequested(_)
            | Self::Withdrawn(_)
            | Self::MarketSet(_)
            | Self::ShardMarketSet(_)
            | Self::CallFailed(_) => return None,
        };
        Some(JobId(id))
    }
}

/// An event with where it happened on chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainEvent {
    pub block_number: u64,
    pub block_hash: B256,
    pub tx_hash: B256,
    pub log_index: u64,
    pub event: MarketEvent,
}

impl ChainEvent {
    /// Decodes a mined RPC log; `None` when it is not from the market or the registry, an
    /// error when it does not decode or lacks its block, transaction or index.
    pub fn from_rpc_log(
        log: &alloy::rpc::types::Log,
        market: Address,
        registry: Address,
    ) -> Option<Result<Self>> {
        let event = MarketEvent::decode(&log.inner, market, registry)?;
        let missing = |field: &'static str| Error::IncompleteLog { field };
        Some(event.and_then(|event| {
            Ok(ChainEvent {
                block_number: log.block_number.ok_or_else(|| missing("blockNumber"))?,
                block_hash: log.block_hash.ok_or_else(|| missing("blockHash"))?,
                tx_hash: log
                    .transaction_hash
                    .ok_or_else(|| missing("transactionHash"))?,
                log_index: log.log_index.ok_or_else(|| missing("logIndex"))?,
                event,
            })
        }))
    }
}
