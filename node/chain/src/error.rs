//! The crate's error type and the contracts' custom errors.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use alloy::primitives::utils::format_ether;
use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::sol_types::{GenericContractError, SolInterface};
use alloy::transports::TransportError;

use crate::bindings::JobMarket::{self, JobMarketErrors as M};
use crate::bindings::OperatorRegistry::{self, OperatorRegistryErrors as R};

/// Result with [`enum@Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong talking to the chain.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The RPC URL could not be used.
    #[error(
        "cannot connect to the chain at {url}: {source}; check the RPC URL and that the node is running"
    )]
    Connect {
        url: String,
        #[source]
        source: TransportError,
    },
    /// A JSON-RPC call failed (the endpoint is down, or answered with an error).
    #[error("JSON-RPC {method} failed: {source}")]
    Rpc {
        method: &'static str,
        #[source]
        source: TransportError,
    },
    /// A contract call or transaction reverted; the error says why and what to do.
    #[error("{0}")]
    Reverted(ContractError),
    /// A transaction was mined but failed without revert data (e.g. out of gas).
    #[error("transaction {tx_hash} failed in block {block}: {reason}")]
    Failed {
        tx_hash: B256,
        block: u64,
        reason: String,
    },
    /// A transaction needs a key and the client has none.
    #[error(
        "this action sends a transaction but the chain client has no signing key; configure the node's chain key"
    )]
    NoSigner,
    /// A market or registry call before the contracts' addresses are known.
    #[error("the contracts' addresses are not configured; deploy them or pass a deployment file")]
    NoDeployment,
    /// A sharded-job call on a deployment without a `ShardMarket`.
    #[error(
        "this deployment has no ShardMarket (sharded jobs); redeploy with a current Shoal or pass a deployment file with `shardMarket`"
    )]
    NoShardMarket,
    /// The deployment has no PipelineMarket.
    #[error(
        "this deployment has no PipelineMarket (pipelines); redeploy with a current Shoal or pass a deployment file with `pipelineMarket`"
    )]
    NoPipelineMarket,
    /// The endpoint serves another chain than the one expected.
    #[error(
        "the chain at {url} has chain id {actual}, expected {expected}; use the right RPC URL or deployment file"
    )]
    WrongChain {
        url: String,
        expected: u64,
        actual: u64,
    },
    /// A transaction was not mined in time, even after raising its fees.
    #[error(
        "transaction {tx_hash} (nonce {nonce}) was not mined within {waited:?} after {bumps} fee bumps; \
         the chain may be stalled or fees too low — check the node, then retry"
    )]
    Timeout {
        tx_hash: B256,
        nonce: u64,
        waited: Duration,
        bumps: u32,
    },
    /// The batcher a call was queued with stopped before answering (the runtime is shutting
    /// down); the call may or may not have been mined.
    #[error(
        "the transaction batcher stopped before the call was answered; check the chain state and retry"
    )]
    BatcherStopped,
    /// The node rejected a signed transaction.
    #[error("the chain rejected transaction (nonce {nonce}): {source}")]
    Rejected {
        nonce: u64,
        #[source]
        source: TransportError,
    },
    /// Signing failed.
    #[error("cannot sign the transaction: {0}")]
    Sign(String),
    /// A receipt lacked an event the contract always emits.
    #[error(
        "transaction {tx_hash} has no {event} event; is the address really Shoal's {contract}?"
    )]
    MissingEvent {
        tx_hash: B256,
        event: &'static str,
        contract: &'static str,
    },
    /// A contract call failed for a reason other than the transport or a revert.
    #[error("calling {what} failed: {source}")]
    Call {
        what: &'static str,
        #[source]
        source: Box<alloy::contract::Error>,
    },
    /// An amount does not fit the contracts' 96-bit amounts.
    #[error(
        "{what} of {value} wei does not fit the contracts' 96-bit amounts; use a smaller amount"
    )]
    AmountTooLarge { what: &'static str, value: U256 },
    /// A value from the chain did not decode as the ABI says.
    #[error("cannot decode {what}: {source}")]
    Decode {
        what: String,
        #[source]
        source: alloy::sol_types::Error,
    },
    /// A log came without where it happened (a pending log): only mined logs are followed.
    #[error(
        "the endpoint returned a log without its {field}; only mined logs can be read — check the endpoint's eth_getLogs"
    )]
    IncompleteLog { field: &'static str },
    /// A block the follower needs is not served.
    #[error("block {0} is not available from the endpoint; is it a pruned node?")]
    MissingBlock(u64),
    /// The chain reorganised deeper than the follower remembers.
    #[error(
        "the chain reorganised below block {oldest_known}, deeper than the {remembered} blocks the follower remembers; \
         raise the confirmation depth, then reset the cursor to an older block"
    )]
    DeepReorg {
        oldest_known: u64,
        remembered: usize,
    },
    /// Reading or writing a cursor or deployment file failed.
    #[error("{path}: {reason}")]
    File { path: PathBuf, reason: String },
    /// The consumer of the event follower went away.
    #[error("the event consumer stopped")]
    ConsumerGone,
}

impl Error {
    /// The decoded contract error, if this is a revert.
    pub fn contract_error(&self) -> Option<&ContractError> {
        match self {
            Error::Reverted(e) => Some(e),
            _ => None,
        }
    }

    pub(crate) fn rpc(method: &'static str) -> impl FnOnce(TransportError) -> Error {
        move |source| match revert_data(&source) {
            Some(data) => Error::Reverted(ContractError::decode(&data)),
            None => Error::Rpc { method, source },
        }
    }
}

/// Revert data carried by a JSON-RPC error, if any.
pub(crate) fn revert_data(e: &TransportError) -> Option<Bytes> {
    let resp = e.as_error_resp()?;
    resp.as_revert_data().or_else(|| {
        // Some nodes report a revert with an empty reason as `execution reverted` and no data.
        resp.message.contains("revert").then(Bytes::new)
    })
}

/// Why a contract call reverted, decoded from the revert data with the contracts' ABIs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContractError {
    /// A `JobMarket__*` custom error.
    Market(Box<M>),
    /// An `OperatorRegistry__*` custom error.
    Registry(Box<R>),
    /// A `ShardMarket__*` custom error (sharded jobs).
    Shards(Box<crate::bindings::ShardMarket::ShardMarketErrors>),
    /// A `PipelineMarket__*` custom error (pipelines).
    Pipelines(Box<crate::bindings::PipelineMarket::PipelineMarketErrors>),
    /// `Error(string)` from `require` or a library.
    Message(String),
    /// A Solidity panic (`Panic(uint256)`: overflow, division by zero, …).
    Panic(U256),
    /// Revert data that matches no known error (empty when there was no reason).
    Unknown(Bytes),
}

impl ContractError {
    /// Decodes revert data with the market's and the registry's error ABIs.
    pub fn decode(data: &[u8]) -> Self {
        if let Ok(e) = M::abi_decode(data) {
            return ContractError::Market(Box::new(e));
        }
        if let Ok(e) = R::abi_decode(data) {
            return ContractError::Registry(Box::new(e));
        }
        if let Ok(e) = crate::bindings::ShardMarket::ShardMarketErrors::abi_decode(data) {
            return ContractError::Shards(Box::new(e));
        }
        if let Ok(e) = crate::bindings::PipelineMarket::PipelineMarketErrors::abi_decode(data) {
            return ContractError::Pipelines(Box::new(e));
        }
        match GenericContractError::abi_decode(data) {
            Ok(GenericContractError::Revert(r)) => ContractError::Message(r.reason),
            Ok(GenericContractError::Panic(p)) => ContractError::Panic(p.code),
            Err(_) => ContractError::Unknown(Bytes::copy_from_slice(data)),
        }
    }

    /// The custom error's name, e.g. `JobMarket__InsufficientStake`.
    pub fn name(&self) -> String {
        match self {
            ContractError::Market(e) => variant_name(e.as_ref()),
            ContractError::Registry(e) => variant_name(e.as_ref()),
            ContractError::Shards(e) => variant_name(e.as_ref()),
            ContractError::Pipelines(e) => variant_name(e.as_ref()),
            ContractError::Message(_) => "Error".into(),
            ContractError::Panic(_) => "Panic".into(),
            ContractError::Unknown(_) => "Unknown".into(),
        }
    }
}

fn variant_name(e: &impl fmt::Debug) -> String {
    let s = format!("{e:?}");
    s.split('(').next().unwrap_or_default().to_string()
}

impl std::error::Error for ContractError {}

/// Wei as ETH without trailing zeros: `0.5 ETH`, `1 ETH`.
fn eth(x: impl Into<U256>) -> String {
    let s = format_ether(x.into());
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        &s
    };
    format!("{s} ETH")
}

fn wei96(x: alloy::primitives::Uint<96, 2>) -> U256 {
    U256::from(x)
}

fn addr(a: &Address) -> String {
    a.to_checksum(None)
}

impl fmt::Display for ContractError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ContractError::Market(e) => market(e, f),
            ContractError::Registry(e) => registry(e, f),
            // The error's name and fields, e.g. `ShardMarket__NotOnBatch(jobId: 1, batch: 3,
            // operator: 0x…)`: each ShardMarket error names what was wrong (docs/sharding.md).
            ContractError::Shards(e) => {
                let text = format!("{e:?}");
                let inner = text
                    .split_once('(')
                    .map_or(text.as_str(), |(_, rest)| rest.trim_end_matches(')'));
                write!(f, "the sharded-job market refused: {inner}")
            }
            ContractError::Pipelines(e) => pipelines(e, f),
            ContractError::Message(m) => write!(f, "the contract reverted: {m}"),
            ContractError::Panic(code) => write!(
                f,
                "the contract panicked (code {code:#x}); this is a bug in the contract or in the call, please report it"
            ),
            ContractError::Unknown(data) if data.is_empty() => write!(
                f,
                "the transaction reverted without a reason; check that the address is Shoal's contract and the gas limit is enough"
            ),
            ContractError::Unknown(data) => {
                write!(
                    f,
                    "the contract reverted with unknown error data {data}; is the address Shoal's contract?"
                )
            }
        }
    }
}

fn market(e: &M, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    use JobMarket as J;
    match e {
        M::JobMarket__BadConcurrency(J::JobMarket__BadConcurrency { concurrency }) => write!(
            f,
            "JobMarket__BadConcurrency: concurrency {concurrency} is out of range; use 1 to MAX_BIDS executions"
        ),
        M::JobMarket__BadConfidence(J::JobMarket__BadConfidence {
            confidence,
            concurrency,
        }) => write!(
            f,
            "JobMarket__BadConfidence: confidence {confidence} must be between 1 and the concurrency ({concurrency})"
        ),
        M::JobMarket__BadMinBids(J::JobMarket__BadMinBids {
            minBids,
            concurrency,
        }) => write!(
            f,
            "JobMarket__BadMinBids: min bids {minBids} must be at least the concurrency ({concurrency}) and at most MAX_BIDS"
        ),
        M::JobMarket__ZeroMaxPrice(_) => {
            write!(
                f,
                "JobMarket__ZeroMaxPrice: the job's max price is 0; offer a price above 0"
            )
        }
        M::JobMarket__BadWindow(J::JobMarket__BadWindow {
            bidWindow,
            execWindow,
            revealWindow,
            challengeWindow,
        }) => {
            write!(
                f,
                "JobMarket__BadWindow: windows bid {bidWindow}s, exec {execWindow}s, reveal {revealWindow}s, challenge {challengeWindow}s are not allowed; \
                 bid, exec and reveal windows must be non-zero and the challenge window is only for optimistic jobs"
            )
        }
        M::JobMarket__EmptySpec(_) => write!(
            f,
            "JobMarket__EmptySpec: the job has no spec CID; upload the spec first"
        ),
        M::JobMarket__WrongEscrow(J::JobMarket__WrongEscrow { sent, required }) => write!(
            f,
            "JobMarket__WrongEscrow: sent {} but the escrow is concurrency × max price = {}; send exactly that",
            eth(*sent),
            eth(*required)
        ),
        M::JobMarket__UnknownJob(J::JobMarket__UnknownJob { jobId }) => {
            write!(
                f,
                "JobMarket__UnknownJob: there is no job {jobId}; check the job id"
            )
        }
        M::JobMarket__WrongState(J::JobMarket__WrongState { jobId, state }) => write!(
            f,
            "JobMarket__WrongState: job {jobId} is {state:?}, which does not allow this action; check the job's state with `shoal job status`"
        ),
        M::JobMarket__BiddingOver(J::JobMarket__BiddingOver { jobId, bidDeadline }) => write!(
            f,
            "JobMarket__BiddingOver: bidding on job {jobId} closed at {bidDeadline} (unix time); bid on another job"
        ),
        M::JobMarket__CreatorCannotBid(J::JobMarket__CreatorCannotBid { jobId, creator }) => {
            write!(
                f,
                "JobMarket__CreatorCannotBid: {} created job {jobId} and cannot bid on it; bid from another operator key",
                addr(creator)
            )
        }
        M::JobMarket__NotRegistered(J::JobMarket__NotRegistered { operator }) => write!(
            f,
            "JobMarket__NotRegistered: {} is not a registered operator; register with `shoal operator register`",
            addr(operator)
        ),
        M::JobMarket__InsufficientStake(J::JobMarket__InsufficientStake {
            operator,
            free,
            required,
        }) => write!(
            f,
            "JobMarket__InsufficientStake: operator {} has {} free, the job needs {} of collateral — add stake with `shoal operator stake`",
            addr(operator),
            eth(wei96(*free)),
            eth(wei96(*required))
        ),
        M::JobMarket__PriceTooHigh(J::JobMarket__PriceTooHigh { price, maxPrice }) => write!(
            f,
            "JobMarket__PriceTooHigh: the bid of {} is above the job's max price of {}; bid at most the max price",
            eth(wei96(*price)),
            eth(wei96(*maxPrice))
        ),
        M::JobMarket__AlreadyBid(J::JobMarket__AlreadyBid { jobId, operator }) => write!(
            f,
            "JobMarket__AlreadyBid: {} already bid on job {jobId}; one bid per operator",
            addr(operator)
        ),
        M::JobMarket__NotOnJob(J::JobMarket__NotOnJob { jobId, operator }) => write!(
            f,
            "JobMarket__NotOnJob: {} was not selected for job {jobId} (nor drawn as its mediator); only selected operators commit and reveal",
            addr(operator)
        ),
        M::JobMarket__ZeroCommitment(_) => {
            write!(
                f,
                "JobMarket__ZeroCommitment: the commitment is zero; compute it with `commitment(job, operator, result hash, salt)`"
            )
        }
        M::JobMarket__ZeroResultHash(_) => {
            write!(
                f,
                "JobMarket__ZeroResultHash: the result hash is zero; reveal the hash of the results folder"
            )
        }
        M::JobMarket__AlreadyCommitted(J::JobMarket__AlreadyCommitted { jobId, operator }) => {
            write!(
                f,
                "JobMarket__AlreadyCommitted: {} already committed a result for job {jobId}; reveal it when the reveal phase starts",
                addr(operator)
            )
        }
        M::JobMarket__NotCommitted(J::JobMarket__NotCommitted { jobId, operator }) => write!(
            f,
            "JobMarket__NotCommitted: {} has no commitment on job {jobId}, so there is nothing to reveal",
            addr(operator)
        ),
        M::JobMarket__AlreadyRevealed(J::JobMarket__AlreadyRevealed { jobId, operator }) => {
            write!(
                f,
                "JobMarket__AlreadyRevealed: {} already revealed its result for job {jobId}",
                addr(operator)
            )
        }
        M::JobMarket__CommitmentMismatch(J::JobMarket__CommitmentMismatch {
            jobId,
            operator,
            committed,
            computed,
        }) => {
            write!(
                f,
                "JobMarket__CommitmentMismatch: the reveal of {} on job {jobId} hashes to {computed}, but it committed {committed}; \
                 reveal the same value and salt that were committed (an original deal: the sealed hash \
                 keccak256(abi.encode(jobId, resultHash)) with revealResult; a mediator: the plain result hash with revealMediation)",
                addr(operator)
            )
        }
        M::JobMarket__CopiedResult(J::JobMarket__CopiedResult { jobId, mediator }) => write!(
            f,
            "JobMarket__CopiedResult: mediator {} on job {jobId} tried to reveal a sealed hash an original deal revealed; \
             a mediator reveals the plain hash of its own run of the job",
            addr(mediator)
        ),
        M::JobMarket__NotTheResult(J::JobMarket__NotTheResult {
            jobId,
            accepted,
            computed,
        }) => write!(
            f,
            "JobMarket__NotTheResult: that result hash seals to {computed}, but job {jobId} accepted {accepted}; \
             publish the hash of the verified results folder (its CID's sha2-256 digest)"
        ),
        M::JobMarket__DeadlinePassed(J::JobMarket__DeadlinePassed { jobId, deadline }) => write!(
            f,
            "JobMarket__DeadlinePassed: the current phase of job {jobId} ended at {deadline} (unix time); call `finalize` to move the job on"
        ),
        M::JobMarket__DeadlineNotReached(J::JobMarket__DeadlineNotReached { jobId, deadline }) => {
            write!(
                f,
                "JobMarket__DeadlineNotReached: the current phase of job {jobId} runs until {deadline} (unix time); wait until then"
            )
        }
        M::JobMarket__NotOptimistic(J::JobMarket__NotOptimistic { jobId }) => write!(
            f,
            "JobMarket__NotOptimistic: job {jobId} is deterministic and cannot be challenged; only optimistic jobs have a challenge window"
        ),
        M::JobMarket__WrongBond(J::JobMarket__WrongBond { sent, required }) => write!(
            f,
            "JobMarket__WrongBond: sent {} as challenge bond, the market requires exactly {}",
            eth(*sent),
            eth(*required)
        ),
        M::JobMarket__NothingToClaim(J::JobMarket__NothingToClaim { account }) => {
            write!(
                f,
                "JobMarket__NothingToClaim: {} has no payouts or refunds to claim",
                addr(account)
            )
        }
        M::JobMarket__TransferFailed(J::JobMarket__TransferFailed { to, amount }) => write!(
            f,
            "JobMarket__TransferFailed: sending {} to {} failed; claim from an account that accepts ETH",
            eth(*amount),
            addr(to)
        ),
        M::JobMarket__OnlyRegistry(J::JobMarket__OnlyRegistry { caller }) => write!(
            f,
            "JobMarket__OnlyRegistry: only the operator registry may send ETH to the market, not {}",
            addr(caller)
        ),
        M::JobMarket__BadMediators(J::JobMarket__BadMediators {
            mediators,
            maxMediators,
        }) => write!(
            f,
            "JobMarket__BadMediators: a job may ask for at most {maxMediators} mediators, not {mediators}; use 0 for the market's default"
        ),
        M::JobMarket__DrawNotReady(J::JobMarket__DrawNotReady { jobId, drawBlock }) => write!(
            f,
            "JobMarket__DrawNotReady: job {jobId} draws from the hash of block {drawBlock}; send this again in a block after it"
        ),
        M::JobMarket__BadConfig(J::JobMarket__BadConfig {
            mediatorCount,
            challengeBond,
        }) => write!(
            f,
            "JobMarket__BadConfig: {mediatorCount} mediators and a challenge bond of {} are not allowed; use 1..=16 mediators and a bond above 0",
            eth(wei96(*challengeBond))
        ),
        M::JobMarket__BadSafetyConfig(J::JobMarket__BadSafetyConfig {
            minBidWindow,
            minExecWindow,
            minRevealWindow,
            maxCollateralFactor,
        }) => write!(
            f,
            "JobMarket__BadSafetyConfig: minimum windows {minBidWindow}/{minExecWindow}/{minRevealWindow}s and collateral factor {maxCollateralFactor} are not allowed; each must be at least 1"
        ),
        M::JobMarket__WindowTooShort(J::JobMarket__WindowTooShort {
            bidWindow,
            execWindow,
            revealWindow,
            minBidWindow,
            minExecWindow,
            minRevealWindow,
        }) => write!(
            f,
            "JobMarket__WindowTooShort: windows bid {bidWindow}s, exec {execWindow}s, reveal {revealWindow}s are below this market's minimums of {minBidWindow}s, {minExecWindow}s, {minRevealWindow}s; lengthen them (operators could not commit or reveal in time)"
        ),
        M::JobMarket__CollateralTooHigh(J::JobMarket__CollateralTooHigh {
            collateral,
            maxCollateral,
        }) => write!(
            f,
            "JobMarket__CollateralTooHigh: a collateral of {} is above this market's cap of {} (its collateral factor times the max price); lower the collateral or raise the max price",
            eth(wei96(*collateral)),
            eth(*maxCollateral)
        ),
    }
}

fn registry(e: &R, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    use OperatorRegistry as O;
    match e {
        R::OperatorRegistry__AlreadyRegistered(O::OperatorRegistry__AlreadyRegistered {
            operator,
        }) => write!(
            f,
            "OperatorRegistry__AlreadyRegistered: {} is already registered; use `updateOperator` to change its peer id or capabilities",
            addr(operator)
        ),
        R::OperatorRegistry__NotRegistered(O::OperatorRegistry__NotRegistered { operator }) => {
            write!(
                f,
                "OperatorRegistry__NotRegistered: {} is not a registered operator; register with `shoal operator register`",
                addr(operator)
            )
        }
        R::OperatorRegistry__EmptyPeerId(_) => {
            write!(
                f,
                "OperatorRegistry__EmptyPeerId: the peer id is empty; pass the node's libp2p peer id"
            )
        }
        R::OperatorRegistry__StakeBelowMinimum(O::OperatorRegistry__StakeBelowMinimum {
            stake,
            minStake,
        }) => write!(
            f,
            "OperatorRegistry__StakeBelowMinimum: a stake of {} is below the minimum of {}; register with at least the minimum",
            eth(*stake),
            eth(*minStake)
        ),
        R::OperatorRegistry__ZeroAmount(_) => write!(
            f,
            "OperatorRegistry__ZeroAmount: the amount is 0; pass an amount above 0"
        ),
        R::OperatorRegistry__AmountTooLarge(O::OperatorRegistry__AmountTooLarge { amount }) => {
            write!(
                f,
                "OperatorRegistry__AmountTooLarge: {} does not fit the registry's 96-bit stake amounts; stake less",
                eth(*amount)
            )
        }
        R::OperatorRegistry__InsufficientFreeStake(
            O::OperatorRegistry__InsufficientFreeStake {
                operator,
                free,
                requested,
            },
        ) => write!(
            f,
            "OperatorRegistry__InsufficientFreeStake: operator {} has {} free stake, {} was requested; \
             wait for running jobs to release collateral or request less",
            addr(operator),
            eth(wei96(*free)),
            eth(wei96(*requested))
        ),
        R::OperatorRegistry__InsufficientLockedStake(
            O::OperatorRegistry__InsufficientLockedStake {
                operator,
                locked,
                requested,
            },
        ) => write!(
            f,
            "OperatorRegistry__InsufficientLockedStake: operator {} has {} locked, the market asked for {}; this is a market bug, please report it",
            addr(operator),
            eth(wei96(*locked)),
            eth(wei96(*requested))
        ),
        R::OperatorRegistry__NoPendingWithdrawal(O::OperatorRegistry__NoPendingWithdrawal {
            operator,
        }) => write!(
            f,
            "OperatorRegistry__NoPendingWithdrawal: {} has no pending withdrawal; request one with `shoal operator unstake` first",
            addr(operator)
        ),
        R::OperatorRegistry__StillUnbonding(O::OperatorRegistry__StillUnbonding {
            operator,
            unlockTime,
            nowTime,
        }) => {
            write!(
                f,
                "OperatorRegistry__StillUnbonding: the withdrawal of {} unlocks at {unlockTime} (unix time), it is now {nowTime}; \
                 withdraw after the unbonding period",
                addr(operator)
            )
        }
        R::OperatorRegistry__OnlyMarket(O::OperatorRegistry__OnlyMarket { caller }) => {
            write!(
                f,
                "OperatorRegistry__OnlyMarket: only the job market may lock, unlock or slash stake, not {}",
                addr(caller)
            )
        }
        R::OperatorRegistry__OnlyDeployer(O::OperatorRegistry__OnlyDeployer { caller }) => write!(
            f,
            "OperatorRegistry__OnlyDeployer: only the registry's deployer may set the market, not {}; use the deployer key",
            addr(caller)
        ),
        R::OperatorRegistry__MarketAlreadySet(O::OperatorRegistry__MarketAlreadySet { market }) => {
            write!(
                f,
                "OperatorRegistry__MarketAlreadySet: the registry already belongs to market {}; deploy a new registry for a new market",
                addr(market)
            )
        }
        R::OperatorRegistry__ZeroAddress(_) => write!(
            f,
            "OperatorRegistry__ZeroAddress: the market address is zero"
        ),
        R::OperatorRegistry__TransferFailed(O::OperatorRegistry__TransferFailed { to, amount }) => {
            write!(
                f,
                "OperatorRegistry__TransferFailed: sending {} to {} failed; withdraw to an account that accepts ETH",
                eth(*amount),
                addr(to)
            )
        }
    }
}

fn pipelines(
    e: &crate::bindings::PipelineMarket::PipelineMarketErrors,
    f: &mut fmt::Formatter<'_>,
) -> fmt::Result {
    use crate::bindings::PipelineMarket::PipelineMarketErrors as P;
    match e {
        P::PipelineMarket__StageNotFinal(e) => write!(
            f,
            "stage {} of pipeline {} has not ended yet; advance it once its job is final (`shoal pipeline describe {}`)",
            e.stage, e.pipelineId, e.pipelineId
        ),
        P::PipelineMarket__NotRunning(e) => write!(
            f,
            "pipeline {} is {:?}: it has ended, nothing is left to advance",
            e.pipelineId, e.state
        ),
        P::PipelineMarket__NotThePreviousResult(e) => write!(
            f,
            "{} is not the verified result of stage {} of pipeline {}: derive the next stage from the published result",
            e.given, e.stage, e.pipelineId
        ),
        P::PipelineMarket__WrongValue(e) => write!(
            f,
            "the pipeline needs {} (every stage's escrow and tip), {} was sent",
            eth(e.expected),
            eth(e.sent)
        ),
        P::PipelineMarket__EmptySelection(e) => write!(
            f,
            "only the pipeline's creator may end it for an empty selection ({} is not)",
            addr(&e.caller)
        ),
        P::PipelineMarket__NotCreator(e) => write!(
            f,
            "only the pipeline's creator may do this ({} is not)",
            addr(&e.caller)
        ),
        P::PipelineMarket__NothingToClaim(e) => write!(
            f,
            "{} has nothing to claim from the pipeline market",
            addr(&e.caller)
        ),
        other => {
            let text = format!("{other:?}");
            let inner = text
                .split_once('(')
                .map_or(text.as_str(), |(_, rest)| rest.trim_end_matches(')'));
            write!(f, "the pipeline market refused: {inner}")
        }
    }
}

#[cfg(test)]
mod tests {
    use alloy::primitives::aliases::U96;
    use alloy::sol_types::{Revert, SolError};

    use super::*;

    #[test]
    fn custom_errors_decode_and_explain() {
        let operator = Address::repeat_byte(0xab);
        let data = JobMarket::JobMarket__InsufficientStake {
            operator,
            free: U96::from(500_000_000_000_000_000u64),
            required: U96::from(1_000_000_000_000_000_000u64),
        }
        .abi_encode();
        let e = ContractError::decode(&data);
        assert_eq!(e.name(), "JobMarket__InsufficientStake");
        let text = e.to_string();
        assert!(text.contains("has 0.5 ETH free"), "{text}");
        assert!(
            text.contains("needs 1.0 ETH") || text.contains("needs 1 ETH"),
            "{text}"
        );
        assert!(text.contains("shoal operator stake"), "{text}");

        let data = OperatorRegistry::OperatorRegistry__StillUnbonding {
            operator,
            unlockTime: 100,
            nowTime: U256::from(50),
        }
        .abi_encode();
        let e = ContractError::decode(&data);
        assert_eq!(e.name(), "OperatorRegistry__StillUnbonding");
        assert!(e.to_string().contains("unlocks at 100"));

        let e = ContractError::decode(&Revert::from("nope").abi_encode());
        assert_eq!(e, ContractError::Message("nope".into()));
        assert_eq!(
            ContractError::decode(&[]),
            ContractError::Unknown(Bytes::new())
        );
        assert!(matches!(
            ContractError::decode(&[1, 2, 3, 4, 5]),
            ContractError::Unknown(_)
        ));
    }
}
