// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IOperatorRegistry} from "./IOperatorRegistry.sol";

/// @title Shoal sharded-job market: types, events and errors
/// @notice (Apart from the functions in `IShardMarket` so that `ShardSettlement`, which runs the
/// draw and the settlement by delegatecall, shares them without implementing every function.)
/// One program over many input files (shards), split into batches that are assigned,
/// committed, revealed, tallied and paid independently: one post, one bid per operator, a
/// two-step random draw, per-batch commit-reveal of Merkle roots over the batch's shard results,
/// pull payments. See docs/sharding.md.
/// @dev Every batch-taking function takes arrays so that one transaction serves all of an
/// operator's batches. Batch b holds shards `[b * batchSize, min((b + 1) * batchSize, shardCount))`.
interface IShardMarketTypes {
    /// @notice Life cycle of a sharded job. Done and Expired are final.
    enum ShardJobState {
        None, // no such job
        Bidding, // accepting bids until the bid deadline
        Drawing, // draw armed (`drawBlock`); `closeBidding` in a later block assigns the batches
        Running, // every batch assigned (or failed at the draw); batches run, commit, reveal, settle
        Done, // final: every batch Verified or Failed, unused escrow refunded
        Expired // final: fewer than `minBids` bidders, escrow refunded
    }

    /// @notice Life cycle of a batch. Verified, Failed and SettledPerShard are final.
    enum BatchState {
        None, // not assigned yet
        Assigned, // `concurrency` operators hold it and commit until `deadline`
        Revealing, // committers reveal until `deadline`
        Verified, // final: >= confidence equal roots; their operators paid
        Failed, // final: its escrow refunded (after Proving: no shard accepted)
        Proving, // >= confidence reveals, no root with as many: revealers prove their leaves until `deadline`
        SettledPerShard // final: settled shard by shard after Proving (`BatchSettledPerShard`)
    }

    enum SlashReason {
        NoCommit,
        NoReveal,
        WrongResult,
        NoProof // revealed, then did not prove its leaves while the batch was Proving
    }

    enum BatchFailReason {
        NoOperators, // fewer than `concurrency` bidders could lock the collateral (draw or re-assignment)
        TooFewCommits, // the third attempt still had fewer than `confidence` commits
        NoQuorum // fewer than `confidence` equal roots (or a tie)
    }

    enum PaymentKind {
        Execution, // batchShards x pricePerShard per verified batch, summed per settling transaction
        Compensation // slashed collateral shared by the operators whose root was accepted
    }

    /// @notice Parameters of `postShardedJob`; immutable afterwards.
    /// @dev 1 <= shardCount <= MAX_SHARDS; 1 <= batchSize <= MAX_BATCH_SIZE with
    /// ceil(shardCount / batchSize) <= MAX_BATCHES; 1 <= confidence <= concurrency <= MAX_CONCURRENCY; concurrency <= minBids <=
    /// MAX_BIDDERS; pricePerShard > 0; collateralPerBatch <= maxCollateralFactor x batchSize x
    /// pricePerShard; windows at least the deployment's minimums. Escrow = shardCount x
    /// concurrency x pricePerShard. `creator`: the job's creator (its refunds are credited to it;
    /// it cannot bid); address(0) = msg.sender.
    struct ShardJobParams {
        bytes specCid;
        bytes32 specHash;
        bytes manifestCid;
        bytes32 manifestHash;
        uint32 shardCount;
        uint16 batchSize;
        uint8 concurrency;
        uint8 confidence;
        uint8 minBids;
        uint96 pricePerShard;
        uint96 collateralPerBatch;
        uint32 bidWindow;
        uint32 execWindow;
        uint32 revealWindow;
        address creator;
    }

    /// @notice A sharded job as returned by `getShardJob`.
    /// @dev `assignedBatches` counts batches the draw has handled (assigned or failed at the
    /// draw); the draw is over when it equals `batchCount`. `escrow` is what the market still
    /// holds for the job.
    struct ShardJob {
        address creator;
        ShardJobState state;
        uint32 shardCount;
        uint16 batchSize;
        uint16 batchCount;
        uint8 concurrency;
        uint8 confidence;
        uint8 minBids;
        uint8 bidCount;
        uint96 pricePerShard;
        uint96 collateralPerBatch;
        uint32 execWindow;
        uint32 revealWindow;
        uint64 bidDeadline;
        uint64 drawBlock;
        uint16 assignedBatches;
        uint16 verifiedBatches;
        uint16 failedBatches;
        bytes32 specHash;
        bytes32 manifestHash;
        uint256 escrow;
    }

    /// @notice A batch as returned by `getBatch`.
    /// @dev `operators[i]` holds slot i (slot 0 is the locality slot). `hashes[i]` is slot i's
    /// commitment until it reveals, then its root (0 = not committed). Bit i of `committed` /
    /// `revealed` / `proven` is slot i. `deadline`: commit deadline while Assigned, reveal
    /// deadline while Revealing, proof deadline while Proving, settlement time when final.
    /// `root` is the accepted root once Verified (0 for a batch settled per shard: its accepted
    /// results are in `BatchSettledPerShard`).
    struct Batch {
        BatchState state;
        uint8 attempt;
        uint64 deadline;
        uint8 committed;
        uint8 revealed;
        address[] operators;
        bytes32[] hashes;
        bytes32 root;
        uint8 proven;
    }

    // ---- events (jobId and operator indexed) ----

    event ShardJobPosted(
        uint256 indexed jobId,
        address indexed creator,
        ShardJobParams params,
        uint256 escrow,
        uint64 bidDeadline,
        uint16 batchCount
    );
    event ShardBid(uint256 indexed jobId, address indexed operator, uint256[] prefer);
    /// @notice The draw is armed (or re-armed, when `blockhash(drawBlock)` was no longer
    /// available): `closeBidding` in a block after `drawBlock` draws.
    event DrawArmed(uint256 indexed jobId, uint64 drawBlock);
    /// @notice The draw's seed, `keccak256(abi.encode(blockhash(drawBlock), jobId))`.
    event DrawSeeded(uint256 indexed jobId, uint256 seed);
    event BatchAssigned(uint256 indexed jobId, uint32 batch, address[] operators, uint64 commitDeadline);
    /// @notice Every batch has been handled by the draw.
    event ShardJobRunning(uint256 indexed jobId);
    event BatchCommitted(uint256 indexed jobId, uint32 batch, address indexed operator, bytes32 commitment);
    event BatchRevealing(uint256 indexed jobId, uint32 batch, uint64 revealDeadline);
    event BatchRevealed(uint256 indexed jobId, uint32 batch, address indexed operator, bytes32 root, bytes leavesCid);
    event BatchVerified(uint256 indexed jobId, uint32 batch, bytes32 root, uint8 agreeing);
    /// @notice At least `confidence` slots revealed but no root has `confidence` equal reveals:
    /// every revealer hands its per-shard result hashes to `proveBatches` before `proveDeadline`.
    event BatchProving(uint256 indexed jobId, uint32 batch, uint64 proveDeadline);
    /// @notice `operator` proved the leaves of its revealed root on a Proving batch: its result
    /// hash per shard of the batch, in shard order (the list `settleProven` takes for its slot).
    event LeavesProven(uint256 indexed jobId, uint32 batch, address indexed operator, bytes32[] resultHashes);
    /// @notice A Proving batch settled shard by shard: `accepted[i]` is the result hash accepted
    /// for shard `batch * batchSize + i` (>= confidence equal proven entries, no tie), 0 for a
    /// shard that failed; `verifiedShards` counts the nonzero entries. With 0 the batch is
    /// Failed (`BatchFailed(NoQuorum)` follows), else SettledPerShard.
    event BatchSettledPerShard(uint256 indexed jobId, uint32 batch, bytes32[] accepted, uint32 verifiedShards);
    event BatchFailed(uint256 indexed jobId, uint32 batch, BatchFailReason reason);
    event ShardJobExpired(uint256 indexed jobId, uint8 bidders);
    event ShardJobDone(uint256 indexed jobId, uint16 verified, uint16 failed);
    event Paid(uint256 indexed jobId, address indexed to, uint256 amount, PaymentKind kind);
    event Refunded(uint256 indexed jobId, address indexed creator, uint256 amount);
    event Slashed(uint256 indexed jobId, uint32 batch, address indexed operator, uint96 amount, SlashReason reason);
    /// @notice Slashed collateral with no honest recipient: kept under `withdrawable(address(0))`,
    /// which nobody can claim.
    event Burned(uint256 indexed jobId, uint256 amount);
    event Claimed(address indexed account, uint256 amount);

    // ---- errors ----

    error ShardMarket__BadConfig(
        uint32 minBidWindow, uint32 minExecWindow, uint32 minRevealWindow, uint16 maxCollateralFactor
    );
    error ShardMarket__BadShardCount(uint32 shardCount);
    error ShardMarket__BadBatchSize(uint16 batchSize, uint256 batchCount);
    error ShardMarket__BadConcurrency(uint8 concurrency);
    error ShardMarket__BadConfidence(uint8 confidence, uint8 concurrency);
    error ShardMarket__BadMinBids(uint8 minBids, uint8 concurrency);
    error ShardMarket__ZeroPrice();
    error ShardMarket__CollateralTooHigh(uint96 collateral, uint256 maxCollateral);
    error ShardMarket__WindowTooShort(
        uint32 bidWindow,
        uint32 execWindow,
        uint32 revealWindow,
        uint32 minBidWindow,
        uint32 minExecWindow,
        uint32 minRevealWindow
    );
    error ShardMarket__EmptySpec();
    error ShardMarket__EmptyManifest();
    error ShardMarket__WrongEscrow(uint256 sent, uint256 required);
    error ShardMarket__UnknownJob(uint256 jobId);
    error ShardMarket__WrongState(uint256 jobId, ShardJobState state);
    error ShardMarket__BiddingOver(uint256 jobId, uint64 bidDeadline);
    error ShardMarket__BiddingOpen(uint256 jobId, uint64 bidDeadline);
    error ShardMarket__CreatorCannotBid(uint256 jobId, address creator);
    error ShardMarket__NotRegistered(address operator);
    error ShardMarket__InsufficientStake(address operator, uint96 free, uint96 required);
    error ShardMarket__AlreadyBid(uint256 jobId, address operator);
    error ShardMarket__TooManyBidders(uint256 jobId);
    error ShardMarket__BadPrefer(uint256 words, uint256 maxWords);
    error ShardMarket__DrawNotReady(uint256 jobId, uint64 drawBlock);
    error ShardMarket__LengthMismatch();
    error ShardMarket__NotBidder(uint256 jobId, address operator);
    error ShardMarket__WrongBatchState(uint256 jobId, uint32 batch, BatchState state);
    error ShardMarket__NotOnBatch(uint256 jobId, uint32 batch, address operator);
    error ShardMarket__ZeroCommitment();
    error ShardMarket__ZeroRoot();
    error ShardMarket__AlreadyCommitted(uint256 jobId, uint32 batch, address operator);
    error ShardMarket__NotCommitted(uint256 jobId, uint32 batch, address operator);
    error ShardMarket__AlreadyRevealed(uint256 jobId, uint32 batch, address operator);
    error ShardMarket__CommitmentMismatch(
        uint256 jobId, uint32 batch, address operator, bytes32 committed, bytes32 computed
    );
    error ShardMarket__DeadlinePassed(uint256 jobId, uint32 batch, uint64 deadline);
    error ShardMarket__BatchNotDue(uint256 jobId, uint32 batch, uint64 deadline);
    error ShardMarket__NotAllFinal(uint256 jobId, uint256 finalBatches, uint256 batchCount);
    error ShardMarket__BadShardIndex(uint256 jobId, uint32 shard);
    error ShardMarket__NothingToClaim(address account);
    error ShardMarket__TransferFailed(address to, uint256 amount);
    error ShardMarket__OnlyRegistry(address caller);
    error ShardMarket__LockFailed(address operator, uint256 amount);
    error ShardMarket__NotRevealed(uint256 jobId, uint32 batch, address operator);
    error ShardMarket__AlreadyProven(uint256 jobId, uint32 batch, address operator);
    error ShardMarket__BadLeafCount(uint256 jobId, uint32 batch, uint256 count, uint256 batchShards);
    error ShardMarket__ZeroResult(uint256 jobId, uint32 batch, uint32 shard);
    /// @notice The leaves handed to `proveBatches` do not build the caller's revealed root.
    error ShardMarket__RootMismatch(uint256 jobId, uint32 batch, address operator, bytes32 revealed, bytes32 computed);
    error ShardMarket__BadListCount(uint256 jobId, uint32 batch, uint256 lists, uint256 proven);
    /// @notice A list handed to `settleProven` is not the one slot `slot` proved.
    error ShardMarket__ListMismatch(uint256 jobId, uint32 batch, uint8 slot, bytes32 proven, bytes32 given);
}

/// @title Shoal sharded-job market
/// @notice The functions of `ShardMarket`; its types, events and errors are in
/// `IShardMarketTypes` (name them as `IShardMarketTypes.X`). Call order for a node: see
/// docs/sharding.md and contracts/README.md.
interface IShardMarket is IShardMarketTypes {
    // ---- creator ----

    /// @notice Posts a sharded job; `msg.value` must equal `shardCount * concurrency *
    /// pricePerShard`. Returns the job id (from 1).
    function postShardedJob(ShardJobParams calldata params) external payable returns (uint256 jobId);

    // ---- operators ----

    /// @notice Bids for the job's batches: once per operator, before the bid deadline, registered
    /// with free stake of at least max(minStake, collateralPerBatch), not the creator, at most
    /// MAX_BIDDERS bidders. `prefer` is a bit set of batch indices (bit b of word b / 256) whose
    /// data the operator holds, at most ceil(batchCount / 256) words.
    function bid(uint256 jobId, uint256[] calldata prefer) external;

    /// @notice Commits `commitments[i] = keccak256(abi.encode(jobId, batch, operator, root, salt))`
    /// for `batches[i]`, each Assigned to the caller and before its commit deadline. A batch whose
    /// every slot has committed moves to Revealing.
    function commitBatches(uint256 jobId, uint32[] calldata batches, bytes32[] calldata commitments) external;

    /// @notice Reveals the committed roots of `batches` (each Revealing, before its reveal
    /// deadline) with the CIDs of the leaves documents they were built from.
    function revealBatches(
        uint256 jobId,
        uint32[] calldata batches,
        bytes32[] calldata roots,
        bytes32[] calldata salts,
        bytes[] calldata leavesCids
    ) external;

    /// @notice Proves the leaves of the caller's revealed root on each of `batches` (each
    /// Proving, before its proof deadline): `resultHashes[j]` holds the result hash of every
    /// shard of `batches[j]` in shard order (nonzero); the root over `leafOf(firstShard + i,
    /// resultHashes[j][i])` must equal the caller's revealed root (`RootMismatch`). Stores the
    /// list's hash and emits it in `LeavesProven`.
    function proveBatches(uint256 jobId, uint32[] calldata batches, bytes32[][] calldata resultHashes) external;

    // ---- anyone ----

    /// @notice After the bid deadline: expires the job (fewer than `minBids` bidders) or arms the
    /// draw. Then, in a block after `drawBlock`: draws (re-arms when the block hash is gone),
    /// assigning up to DRAW_CHUNK batches per call; call again until the job is Running.
    function closeBidding(uint256 jobId) external;

    /// @notice Settles each of `batches`: an Assigned batch past its commit deadline goes to
    /// Revealing (>= confidence commits) or is re-assigned or failed; a Revealing batch past its
    /// reveal deadline, or whose committers all revealed, is tallied: Verified (>= confidence
    /// equal roots), Proving (>= confidence reveals, no such root) or Failed (fewer reveals).
    /// A Proving batch is settled by `settleProven`, not here.
    function settleBatches(uint256 jobId, uint32[] calldata batches) external;

    /// @notice Settles a Proving batch shard by shard, once its proof deadline passed or every
    /// revealer proved. `lists` are the `LeavesProven` lists of the slots that proved, in slot
    /// order (checked against what each proved). Per shard, the result hash with >= confidence
    /// equal entries and no tie is accepted; an entry differing from an accepted result, or from
    /// a strict majority of the `concurrency` slots, slashes its prover (WrongResult, once);
    /// revealers that did not prove are slashed (NoProof); the other provers are unlocked and
    /// paid `pricePerShard` per accepted shard. Slashed collateral is shared by the paid
    /// provers, else burned. Emits `BatchSettledPerShard`; unpaid escrow (failed shards,
    /// unpaid slots) is refunded at `finalize`.
    function settleProven(uint256 jobId, uint32 batch, bytes32[][] calldata lists) external;

    /// @notice Once every batch is Verified or Failed: Done, unused escrow refunded.
    function finalize(uint256 jobId) external;

    /// @notice Pays out the caller's accumulated payouts and refunds.
    function claim() external;

    // ---- views ----

    function getShardJob(uint256 jobId) external view returns (ShardJob memory);

    function getBatch(uint256 jobId, uint32 batch) external view returns (Batch memory);

    /// @notice Bidders in bid order; a bidder's position is its index in the draw.
    function getBidders(uint256 jobId) external view returns (address[] memory);

    /// @notice The `prefer` words a bidder bid with (empty for a non-bidder).
    function preferOf(uint256 jobId, address operator) external view returns (uint256[] memory);

    /// @notice The batch holding shard `shard`.
    function batchOf(uint256 jobId, uint32 shard) external view returns (uint32);

    function withdrawable(address account) external view returns (uint256);

    /// @notice The commitment an operator must submit for `root` and `salt` on `batch`.
    function commitmentOf(uint256 jobId, uint32 batch, address operator, bytes32 root, bytes32 salt)
        external
        pure
        returns (bytes32);

    /// @notice A shard's Merkle leaf: `keccak256(abi.encode(shardIndex, resultHash))`.
    function leafOf(uint32 shardIndex, bytes32 resultHash) external pure returns (bytes32);

    /// @notice The Merkle root over `leaves` (index order): pairs hashed keccak256(left ‖ right),
    /// an odd last node carried up unchanged; one leaf is its own root; no leaves: 0.
    function batchRoot(bytes32[] calldata leaves) external pure returns (bytes32);

    /// @notice Whether shard `shardIndex`'s leaf, at `position` of a batch of `leafCount`
    /// leaves, is under `root` with `proof` (siblings bottom-up; levels where the node is an odd
    /// last one take no sibling).
    function verifyLeaf(
        bytes32 root,
        uint32 shardIndex,
        bytes32 resultHash,
        bytes32[] calldata proof,
        uint256 position,
        uint256 leafCount
    ) external pure returns (bool);

    /// @notice The id this market passes to the registry for `jobId` (bit 255 set).
    function registryJobId(uint256 jobId) external pure returns (uint256);

    function registry() external view returns (IOperatorRegistry);

    function nextJobId() external view returns (uint256);

    function minBidWindow() external view returns (uint32);

    function minExecWindow() external view returns (uint32);

    function minRevealWindow() external view returns (uint32);

    /// @notice Blocks between arming the draw and the block whose hash seeds it.
    function drawDelay() external view returns (uint32);

    /// @notice `postShardedJob` requires `collateralPerBatch <= maxCollateralFactor * batchSize *
    /// pricePerShard`.
    function maxCollateralFactor() external view returns (uint16);
}
