// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IOperatorRegistry} from "./IOperatorRegistry.sol";

/// @title Shoal job market
/// @notice Jobs with escrow, bids from staked operators, random selection, commit-reveal of
/// sealed result hashes, tally, blind mediation of disputes and optimistic acceptance. Payouts
/// are pulled with `claim()`. See docs/protocol.md for the full state machine.
/// @dev Sealed reveals. A result's plain hash `resultHash` (the digest of its CID) stays off
/// chain until mediation is committed: originals commit `keccak256(abi.encode(jobId, operator,
/// sealedHash, salt))` and reveal `sealedHash = keccak256(abi.encode(jobId, resultHash))`
/// (`sealedHashOf`); mediators commit `keccak256(abi.encode(jobId, mediator, resultHash, salt))`
/// over the plain hash and reveal it with `revealMediation`, which stores its sealed form. Every
/// tally compares sealed hashes, so a mediator that copies an original's public sealed hash (as if
/// it were its plain hash) votes for `sealedHashOf(jobId, sealedHash)`, which matches nobody.
/// Once Verified, anyone may publish the accepted plain hash (`publishResult`).
interface IJobMarket {
    /// @notice Life cycle of a job. Verified, Failed and Expired are final. In Drawing and
    /// DisputeDrawing `phaseDeadline` is the draw block (a block number, not a time): the draw is
    /// made by `closeBidding`/`finalize` in any later block.
    enum JobState {
        None, // no such job
        Posted, // accepting bids
        Drawing, // bidding closed, bids frozen; the deals are drawn in a block after the draw block
        Running, // deals selected, operators execute and commit
        Revealing, // commit phase closed, committers reveal (sealed hashes, `revealResult`)
        Challengeable, // optimistic job: results revealed, challenge window open
        DisputeDrawing, // dispute opened, pool snapshotted; mediators drawn after the draw block
        Disputed, // mediators execute and commit
        DisputeRevealing, // mediators reveal (plain hashes, `revealMediation`)
        Verified, // final: result accepted, winners paid
        Failed, // final: no acceptable result, escrow refunded
        Expired // final: never enough bids, escrow refunded
    }

    /// @notice How a job's result is accepted.
    enum Verifier {
        Deterministic, // the largest group of equal (sealed) result hashes (>= confidence, unique) wins
        Optimistic // revealed results are accepted unless challenged within the challenge window
    }

    enum SlashReason {
        NoCommit,
        NoReveal,
        WrongResult
    }

    enum FailReason {
        TooFewCommits,
        TooFewReveals,
        NoQuorum, // no group of equal results reached confidence (after mediation: originals + mediators)
        NoMediatorMajority,
        NoCorrectResult,
        NoMediators // escalation needed mediators and not enough eligible operators could be drawn
    }

    enum PaymentKind {
        Execution, // an operator's bid price for a correct result
        Mediation, // a mediator's fee, paid from slashed stake and lost bonds
        Compensation, // slashed stake or a lost bond left after mediation fees, shared by the operators whose result was accepted (never the creator)
        BondReturned, // a challenge bond returned to a challenger who was right (or whose dispute found no mediators)
        ChallengeReward // an upheld challenger's reward: slashed stake after mediator fees, at most its bond
    }

    /// @notice Parameters of `postJob`; immutable afterwards.
    /// @dev 1 <= confidence <= concurrency <= minBids <= MAX_BIDS. Escrow = concurrency * maxPrice.
    /// Windows are at least the deployment's `minBidWindow`/`minExecWindow`/`minRevealWindow`;
    /// `collateral <= maxCollateralFactor * maxPrice`.
    /// `challengeWindow` is used by optimistic jobs only (must be 0 for deterministic ones).
    /// `escalate`: any disagreement opens mediation instead of a plain tally.
    /// `mediators`: mediators a dispute of this job draws, 1..MAX_MEDIATORS; 0 = the deployment's
    /// `mediatorCount`.
    /// `creator`: the job's creator (its refunds are credited to it; it cannot bid); address(0) =
    /// msg.sender.
    struct JobParams {
        bytes specCid;
        bytes32 specHash;
        uint8 concurrency;
        uint8 confidence;
        uint8 minBids;
        uint96 maxPrice;
        uint96 collateral;
        uint32 bidWindow;
        uint32 execWindow;
        uint32 revealWindow;
        uint32 challengeWindow;
        Verifier verifier;
        bool escalate;
        uint8 mediators;
        address creator;
    }

    /// @notice A job as returned by `getJob`.
    /// @dev `phaseDeadline` is the end of the current phase: commit deadline in Running and
    /// Disputed, reveal deadline in Revealing and DisputeRevealing, end of the challenge window in
    /// Challengeable; the draw block (a block number) in Drawing and DisputeDrawing; the time the
    /// job ended in a final state. `mediatorCount` is the number of mediators drawn (0 before).
    /// `sealedResult` is set once Verified: the accepted result's sealed hash
    /// `keccak256(abi.encode(jobId, resultHash))`; its plain hash is what `publishResult` accepts.
    /// `escrow` is the money the market still holds for the job (escrow and challenge bond).
    struct Job {
        address creator;
        JobState state;
        Verifier verifier;
        bool escalate;
        uint8 concurrency;
        uint8 confidence;
        uint8 minBids;
        uint8 bidCount;
        uint8 commitCount;
        uint8 revealCount;
        uint8 mediatorCount;
        uint96 maxPrice;
        uint96 collateral;
        uint32 execWindow;
        uint32 revealWindow;
        uint32 challengeWindow;
        uint64 bidDeadline;
        uint64 phaseDeadline;
        bytes32 specHash;
        bytes32 sealedResult;
        address challenger;
        uint256 escrow;
    }

    struct Bid {
        address operator;
        uint96 price;
    }

    /// @notice A selected operator (or a mediator) and its progress.
    /// @dev Before reveal `commitment` is set and `sealedResult` is zero; after reveal
    /// `sealedResult` (the sealed hash, for mediators too) is set and `commitment` is zero (the
    /// contract keeps one of the two).
    struct Deal {
        address operator;
        uint96 price;
        bool committed;
        bool revealed;
        bytes32 commitment;
        bytes32 sealedResult;
    }

    // ---- events (jobId and operator indexed) ----

    event JobPosted(
        uint256 indexed jobId, address indexed creator, JobParams params, uint256 escrow, uint64 bidDeadline
    );
    event BidPlaced(uint256 indexed jobId, address indexed operator, uint96 price);
    event BidDropped(uint256 indexed jobId, address indexed operator);
    event DealAccepted(uint256 indexed jobId, address indexed operator, uint96 price, uint96 collateral);
    /// @notice A new phase. For Drawing and DisputeDrawing `deadline` is the draw block number
    /// (also emitted again when a draw is re-armed).
    event PhaseStarted(uint256 indexed jobId, JobState indexed state, uint64 deadline);
    /// @notice The draw block's hash expired (more than 256 blocks passed) before anyone drew:
    /// the draw is re-armed with a new draw block; nothing else changes.
    event DrawRearmed(uint256 indexed jobId, uint64 staleDrawBlock, uint64 drawBlock);
    event ResultCommitted(uint256 indexed jobId, address indexed operator, bytes32 commitment);
    /// @notice A reveal: always the sealed hash (an original's as revealed, a mediator's as the
    /// market sealed its plain hash); the plain hash is never in this event.
    event ResultRevealed(uint256 indexed jobId, address indexed operator, bytes32 sealedHash);
    /// @notice `sealedHash`: the accepted result's sealed hash.
    event JobVerified(uint256 indexed jobId, bytes32 sealedHash, uint8 winners);
    event JobFailed(uint256 indexed jobId, FailReason reason);
    event JobExpired(uint256 indexed jobId, uint8 bids);
    event DisputeOpened(uint256 indexed jobId, address indexed challenger, uint96 bond);
    event MediatorSelected(uint256 indexed jobId, address indexed operator, uint96 collateral);
    /// @notice `sealedHash`: the mediators' majority (sealed), 0 without a majority.
    event DisputeResolved(uint256 indexed jobId, bytes32 sealedHash, bool challengeUpheld);
    /// @notice The plain hash of a Verified job's accepted result, checked against its sealed hash.
    event ResultPublished(uint256 indexed jobId, bytes32 resultHash);
    event Paid(uint256 indexed jobId, address indexed to, uint256 amount, PaymentKind kind);
    event Refunded(uint256 indexed jobId, address indexed creator, uint256 amount);
    event Slashed(uint256 indexed jobId, address indexed operator, uint96 amount, SlashReason reason);
    event Claimed(address indexed account, uint256 amount);
    /// @notice Slashed stake (or a lost bond) of a job with no honest recipient left after fees:
    /// kept by the market, unowned, under `withdrawable(address(0))`, which nobody can claim.
    event Burned(uint256 indexed jobId, uint256 amount);
    /// @notice Call `index` of the caller's `batch` reverted with `reason` (its revert data);
    /// the other calls of the batch went on.
    event CallFailed(uint256 indexed index, bytes reason);

    // ---- errors ----

    error JobMarket__BadConcurrency(uint8 concurrency);
    error JobMarket__BadConfidence(uint8 confidence, uint8 concurrency);
    error JobMarket__BadMinBids(uint8 minBids, uint8 concurrency);
    error JobMarket__ZeroMaxPrice();
    error JobMarket__BadWindow(uint32 bidWindow, uint32 execWindow, uint32 revealWindow, uint32 challengeWindow);
    error JobMarket__EmptySpec();
    error JobMarket__WrongEscrow(uint256 sent, uint256 required);
    error JobMarket__UnknownJob(uint256 jobId);
    error JobMarket__WrongState(uint256 jobId, JobState state);
    error JobMarket__BiddingOver(uint256 jobId, uint64 bidDeadline);
    error JobMarket__CreatorCannotBid(uint256 jobId, address creator);
    error JobMarket__NotRegistered(address operator);
    error JobMarket__InsufficientStake(address operator, uint96 free, uint96 required);
    error JobMarket__PriceTooHigh(uint96 price, uint96 maxPrice);
    error JobMarket__AlreadyBid(uint256 jobId, address operator);
    error JobMarket__NotOnJob(uint256 jobId, address operator);
    error JobMarket__ZeroCommitment();
    error JobMarket__ZeroResultHash();
    error JobMarket__AlreadyCommitted(uint256 jobId, address operator);
    error JobMarket__NotCommitted(uint256 jobId, address operator);
    error JobMarket__AlreadyRevealed(uint256 jobId, address operator);
    error JobMarket__CommitmentMismatch(uint256 jobId, address operator, bytes32 committed, bytes32 computed);
    error JobMarket__DeadlinePassed(uint256 jobId, uint64 deadline);
    error JobMarket__DeadlineNotReached(uint256 jobId, uint64 deadline);
    error JobMarket__NotOptimistic(uint256 jobId);
    error JobMarket__WrongBond(uint256 sent, uint256 required);
    error JobMarket__NothingToClaim(address account);
    error JobMarket__TransferFailed(address to, uint256 amount);
    error JobMarket__OnlyRegistry(address caller);
    error JobMarket__BadConfig(uint8 mediatorCount, uint96 challengeBond);
    error JobMarket__BadSafetyConfig(
        uint32 minBidWindow, uint32 minExecWindow, uint32 minRevealWindow, uint16 maxCollateralFactor
    );
    error JobMarket__WindowTooShort(
        uint32 bidWindow,
        uint32 execWindow,
        uint32 revealWindow,
        uint32 minBidWindow,
        uint32 minExecWindow,
        uint32 minRevealWindow
    );
    error JobMarket__CollateralTooHigh(uint96 collateral, uint256 maxCollateral);
    error JobMarket__BadMediators(uint8 mediators, uint8 maxMediators);
    error JobMarket__DrawNotReady(uint256 jobId, uint64 drawBlock);
    error JobMarket__NotTheResult(uint256 jobId, bytes32 accepted, bytes32 computed);
    /// @notice A mediator tried to reveal, as its plain result, a sealed hash an original deal
    /// revealed: a copy, not a result of running the job.
    error JobMarket__CopiedResult(uint256 jobId, address mediator);

    // ---- job creator ----

    /// @notice Posts a job; `msg.value` must equal `concurrency * maxPrice`. Returns the job id (from 1).
    function postJob(JobParams calldata params) external payable returns (uint256 jobId);

    /// @notice Challenges an optimistic job's results during its challenge window by paying
    /// exactly `challengeBondOf(jobId)`; opens the dispute (DisputeDrawing: the mediators are
    /// drawn by `finalize` in a later block). Anyone may challenge. The bond comes back only when
    /// the challenge is upheld (a mediator majority finds some revealed result wrong), with a
    /// reward of up to the bond from the slashed stake after mediator fees; or when no mediators
    /// can be drawn (the result stands). Otherwise it pays the mediators' fees and the operators
    /// whose result stood.
    function challenge(uint256 jobId) external payable;

    // ---- operators ----

    /// @notice Bids `price` (<= maxPrice) for one execution. One bid per operator, until the bid
    /// deadline, with at least `collateral` free stake. The `MAX_BIDS`-th bid closes bidding early
    /// (arms the draw, as `closeBidding` does after the deadline).
    function bid(uint256 jobId, uint96 price) external;

    /// @notice Commits a result. Selected operators in Running commit
    /// `keccak256(abi.encode(jobId, msg.sender, sealedHash, salt))` over the sealed hash
    /// `sealedHash = keccak256(abi.encode(jobId, resultHash))`; mediators in Disputed commit
    /// `keccak256(abi.encode(jobId, msg.sender, resultHash, salt))` over the plain hash.
    function commitResult(uint256 jobId, bytes32 commitment) external;

    /// @notice A selected operator reveals its sealed hash (Revealing only; `WrongState` in
    /// DisputeRevealing). The market stores and tallies it; the plain hash is not disclosed. The
    /// last expected reveal settles the phase.
    function revealResult(uint256 jobId, bytes32 sealedHash, bytes32 salt) external;

    /// @notice A mediator reveals its plain result hash (DisputeRevealing only; `WrongState` in
    /// Revealing): checks the commitment over `resultHash`, stores and emits
    /// `keccak256(abi.encode(jobId, resultHash))`, which counts with the originals' sealed hashes.
    /// The last expected reveal resolves the dispute.
    function revealMediation(uint256 jobId, bytes32 resultHash, bytes32 salt) external;

    // ---- anyone ----

    /// @notice Posted, after the bid deadline: arms the draw (-> Drawing, draw block =
    /// `block.number + drawDelay`) when there are at least `minBids` bids, otherwise expires the
    /// job and refunds the creator. Drawing, in a block after the draw block: draws `concurrency`
    /// winners uniformly from all bids and locks their collateral (-> Running), or expires when
    /// fewer can be locked; re-arms instead when the draw block's hash has expired.
    function closeBidding(uint256 jobId) external;

    /// @notice Moves a job past a phase that is over: bidding and the selection draw (as
    /// `closeBidding`), the mediator draw (DisputeDrawing, in a block after the draw block),
    /// commit, reveal, challenge window and mediation (after their deadline), settling it when that
    /// ends the job.
    function finalize(uint256 jobId) external;

    /// @notice Pays out the caller's accumulated payouts and refunds.
    function claim() external;

    /// @notice Anyone, Verified only (else `WrongState`): publishes the accepted result's plain
    /// hash; reverts `NotTheResult` unless `keccak256(abi.encode(jobId, resultHash))` equals
    /// `getJob(jobId).sealedResult`. Emits `ResultPublished`; stores nothing (repeatable).
    function publishResult(uint256 jobId, bytes32 resultHash) external;

    /// @notice Runs each of `calls` (ABI-encoded calls of this market's functions) as if the
    /// caller had sent it on its own, in order, in one transaction: an operator's bids, commits,
    /// reveals and keeper calls of many jobs share one transaction's base cost. A call that
    /// reverts emits `CallFailed(index, reason)` and undoes only itself. Not payable: a call
    /// that needs value (`postJob`, `challenge`) fails inside a batch.
    function batch(bytes[] calldata calls) external;

    // ---- views ----

    function getJob(uint256 jobId) external view returns (Job memory);

    function getBids(uint256 jobId) external view returns (Bid[] memory);

    /// @notice The selected operators (empty before selection).
    function getDeals(uint256 jobId) external view returns (Deal[] memory);

    /// @notice The mediators drawn for a dispute (empty when there was none).
    function getMediators(uint256 jobId) external view returns (Deal[] memory);

    function withdrawable(address account) external view returns (uint256);

    /// @notice The commitment `operator` must submit for `value` and `salt`:
    /// `keccak256(abi.encode(jobId, operator, value, salt))`; `value` is the sealed hash for a
    /// selected operator, the plain result hash for a mediator.
    function commitmentOf(uint256 jobId, address operator, bytes32 value, bytes32 salt) external pure returns (bytes32);

    /// @notice The sealed form of a result hash, `keccak256(abi.encode(jobId, resultHash))`: what
    /// originals commit over and reveal, and what every tally, `Deal.sealedResult`,
    /// `Job.sealedResult` and the events carry.
    function sealedHashOf(uint256 jobId, bytes32 resultHash) external pure returns (bytes32);

    function registry() external view returns (IOperatorRegistry);

    function nextJobId() external view returns (uint256);

    /// @notice Mediators a dispute draws for a job that does not set `JobParams.mediators`.
    function mediatorCount() external view returns (uint8);

    /// @notice Blocks between arming a draw and the block whose hash seeds it (0: the arming
    /// block's own hash; the draw is made in any later block).
    function drawDelay() external view returns (uint32);

    /// @notice The helper contract (deployed by the constructor) that computes the draws.
    function draws() external view returns (address);

    /// @notice Largest `JobParams.mediators`.
    function MAX_MEDIATORS() external view returns (uint8);

    /// @notice The smallest challenge bond; see `challengeBondOf`.
    function challengeBond() external view returns (uint96);

    /// @notice The bond `challenge(jobId)` requires: `max(challengeBond, concurrency * maxPrice *
    /// challengeBondPercent / 100)` (the job's escrow scaled by the deployment's percentage);
    /// `challengeBond` for an unknown job.
    function challengeBondOf(uint256 jobId) external view returns (uint256);

    /// @notice Percentage of a job's escrow its challenge bond must reach (0: the fixed
    /// `challengeBond` only).
    function challengeBondPercent() external view returns (uint16);

    /// @notice Shortest `bidWindow` / `execWindow` / `revealWindow` `postJob` accepts (seconds).
    function minBidWindow() external view returns (uint32);

    function minExecWindow() external view returns (uint32);

    function minRevealWindow() external view returns (uint32);

    /// @notice `postJob` requires `collateral <= maxCollateralFactor * maxPrice`.
    function maxCollateralFactor() external view returns (uint16);

    /// @notice Largest allowed `minBids` (and so `concurrency`).
    function MAX_BIDS() external view returns (uint8);
}
