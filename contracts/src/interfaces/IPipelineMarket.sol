// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IJobMarket} from "./IJobMarket.sol";
import {IShardMarketTypes} from "./IShardMarket.sol";

/// @title Shoal pipeline market
/// @notice A pipeline is a chain of stages, each a job on the JobMarket or a sharded job on the
/// ShardMarket. `postPipeline` pays the escrow of every stage (and each stage's keeper tip) at
/// once and posts stage 0; once a stage is final, anyone may `advance` the pipeline, which posts
/// the next stage with the escrow held for it. See docs/pipelines.md.
/// @dev Stage jobs are posted with `creator` = the pipeline's creator, so the markets credit
/// their refunds to the creator directly. The contract cannot read IPFS: a stage's spec and
/// manifest are supplied by whoever advances, and the nodes check them against the stage's
/// template (`templateCid`) and the previous stage's verified result before they bid. A plain
/// previous stage's result hash is checked here against its sealed result.
interface IPipelineMarket {
    /// @notice Life cycle of a pipeline. Done and Stopped are final.
    enum PipelineState {
        None, // no such pipeline
        Running, // a stage is posted; `advance` once it is final
        Done, // every stage verified (or a selection was empty): unspent escrow refunded
        Stopped // a stage ended without a verified result, or the creator cancelled: the rest refunded
    }

    /// @notice One stage as posted.
    /// @dev A plain stage uses `job` (every field but `specCid`, `specHash` and `creator`, which
    /// the post or `advance` fills in); a sharded stage uses `shard` (every field but `specCid`,
    /// `specHash`, `manifestCid`, `manifestHash` and `creator`; `shardCount` is the most shards
    /// the stage may run, and its escrow is reserved for that many). `templateCid` names the
    /// stage document (docs/pipelines.md: its spec, `previous_at` and `select`), `templateHash`
    /// is keccak256 of its bytes. `tip` is paid to whoever started the stage once it verified
    /// (0 for stage 0, which the creator starts).
    struct StageParams {
        bool sharded;
        bytes templateCid;
        bytes32 templateHash;
        IJobMarket.JobParams job;
        IShardMarketTypes.ShardJobParams shard;
        uint96 tip;
    }

    /// @notice What starting a stage needs besides its StageParams.
    /// @dev `manifestCid`, `manifestHash` and `shardCount` for sharded stages only (`shardCount`
    /// 0 means the selection is empty: only the creator may say so, and the pipeline ends
    /// Done). `previousResult` is the result hash of the previous stage (0 for stage 0): for a
    /// plain previous stage it must be the accepted result
    /// (`jobMarket.sealedHashOf(job, previousResult) == getJob(job).sealedResult`); for a
    /// sharded one it is the digest of its merged result folder's CID, which the nodes check.
    /// For stage 0 (`postPipeline`'s `first`): `previousResult` is ignored (recorded as 0) and a
    /// sharded stage 0 needs `shardCount` >= 1 (0 reverts `EmptySelection`).
    struct StageInput {
        bytes specCid;
        bytes32 specHash;
        bytes manifestCid;
        bytes32 manifestHash;
        uint32 shardCount;
        bytes32 previousResult;
    }

    /// @notice A pipeline as returned by `getPipeline`. `current` is the index of the stage
    /// started last; `reserved` is the escrow and tips still held for it and later stages.
    struct Pipeline {
        address creator;
        PipelineState state;
        uint8 stageCount;
        uint8 current;
        uint256 reserved;
    }

    /// @notice A stage as returned by `getStage`. `jobId` is 0 until the stage starts (job ids
    /// start at 1 in both markets); `escrow` is what its post paid (or will reserve).
    struct Stage {
        bool sharded;
        uint256 jobId;
        address startedBy;
        bytes32 previousResult;
        bytes templateCid;
        bytes32 templateHash;
        uint96 tip;
        uint256 escrow;
    }

    event PipelinePosted(uint256 indexed pipelineId, address indexed creator, uint8 stageCount, uint256 value);
    /// @notice Stage `stage` was posted as job `jobId` on `market` by `startedBy`.
    event StageStarted(
        uint256 indexed pipelineId,
        uint8 stage,
        address indexed market,
        uint256 indexed jobId,
        address startedBy,
        bytes32 previousResult
    );
    /// @notice Only for a nonzero tip.
    event TipPaid(uint256 indexed pipelineId, uint8 stage, address indexed to, uint256 amount);
    event PipelineEnded(uint256 indexed pipelineId, PipelineState state, uint8 stagesVerified);
    event Refunded(uint256 indexed pipelineId, address indexed to, uint256 amount);
    event Claimed(address indexed to, uint256 amount);

    error PipelineMarket__BadStageCount(uint256 count, uint256 max);
    error PipelineMarket__WrongValue(uint256 sent, uint256 expected);
    error PipelineMarket__FirstStageTip(uint96 tip);
    error PipelineMarket__CreatorSet(uint8 stage);
    error PipelineMarket__NotRunning(uint256 pipelineId, PipelineState state);
    error PipelineMarket__StageNotFinal(uint256 pipelineId, uint8 stage);
    /// @notice `stage`: the previous stage (the one whose result `given` should be).
    error PipelineMarket__NotThePreviousResult(uint256 pipelineId, uint8 stage, bytes32 given);
    error PipelineMarket__TooManyShards(uint32 shardCount, uint32 max);
    error PipelineMarket__EmptySelection(address caller);
    error PipelineMarket__NotCreator(address caller);
    error PipelineMarket__NothingToClaim(address caller);
    error PipelineMarket__TransferFailed(address to, uint256 amount);

    /// @notice Most stages in a pipeline.
    function MAX_STAGES() external view returns (uint256);

    /// @notice Posts a pipeline: `msg.value` must be the sum over stages of its escrow (plain:
    /// `concurrency * maxPrice`; sharded: `shardCount * concurrency * pricePerShard`) and its
    /// tip. Posts stage 0 with `first`. Returns the pipeline id (from 1).
    function postPipeline(StageParams[] calldata stages, StageInput calldata first)
        external
        payable
        returns (uint256 pipelineId);

    /// @notice Anyone: once the current stage's job is final. Verified (a sharded stage: Done
    /// with at least one verified batch): pays its tip to whoever started it, then posts the
    /// next stage with `input`, or ends the pipeline Done after the last one. Not verified
    /// (Failed, Expired, or Done without a verified batch): ends the pipeline Stopped; the tip
    /// returns to the creator. Ending refunds what is still reserved to the creator.
    function advance(uint256 pipelineId, StageInput calldata input) external;

    /// @notice The creator: no later stage starts; their escrow and tips are refunded. A stage
    /// already posted runs on.
    function cancel(uint256 pipelineId) external;

    /// @notice Withdraws the caller's refunds and tips.
    function claim() external;

    function getPipeline(uint256 pipelineId) external view returns (Pipeline memory);

    function getStage(uint256 pipelineId, uint8 stage) external view returns (Stage memory);

    /// @notice The pipeline and stage that job `jobId` of `market` runs (pipelineId 0: none).
    function stageOf(address market, uint256 jobId) external view returns (uint256 pipelineId, uint8 stage);

    function withdrawable(address who) external view returns (uint256);

    function jobMarket() external view returns (IJobMarket);

    function shardMarket() external view returns (address);
}
