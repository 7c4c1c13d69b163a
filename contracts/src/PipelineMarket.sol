// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IPipelineMarket} from "./interfaces/IPipelineMarket.sol";
import {IJobMarket} from "./interfaces/IJobMarket.sol";
import {IShardMarket, IShardMarketTypes} from "./interfaces/IShardMarket.sol";

/// @title Shoal pipeline market
/// @notice Holds the escrow of a pipeline's stages and posts them one after the other on the
/// JobMarket (plain stages) and the ShardMarket (sharded stages). See IPipelineMarket and
/// docs/protocol.md.
/// @dev Money: the contract's balance is always the sum of `reserved` over Running pipelines
/// plus the sum of `withdrawable`. A stage's escrow leaves `reserved` when the stage is posted
/// (the market then holds it and credits its refunds to the pipeline's creator); a tip leaves it
/// when its stage verified (to whoever started the stage); the rest leaves it when the pipeline
/// ends (to the creator). Both markets are trusted (set at construction, immutable).
contract PipelineMarket is IPipelineMarket {
    uint256 public constant MAX_STAGES = 16;

    IJobMarket public immutable jobMarket;
    address public immutable shardMarket;

    /// @notice The id the next `postPipeline` returns.
    uint256 public nextPipelineId = 1;

    mapping(address => uint256) public withdrawable;

    /// @dev A stage as stored: its template (`job` or `shard`, the other left empty; stage 0's
    /// is not stored, `postPipeline` posts it from calldata) and, once started, who started it,
    /// its job and the previous result it was given. `escrow` is the reserved escrow until the
    /// stage starts, then what its post paid. `tip` shares the slot `advance` writes `startedBy`
    /// into, so that starting a tipped stage (the keeper's cost) does not fill a fresh slot.
    struct StageData {
        address startedBy;
        uint96 tip;
        bool sharded;
        uint248 escrow;
        uint256 jobId;
        bytes32 previousResult;
        bytes32 templateHash;
        bytes templateCid;
        IJobMarket.JobParams job;
        IShardMarketTypes.ShardJobParams shard;
    }

    mapping(uint256 => Pipeline) private _pipelines;
    mapping(uint256 => mapping(uint256 => StageData)) private _stages;
    /// @dev market => jobId => (pipelineId << 8 | stage); 0 = none (pipeline ids start at 1).
    mapping(address => mapping(uint256 => uint256)) private _stageOf;

    constructor(IJobMarket jobMarket_, address shardMarket_) {
        jobMarket = jobMarket_;
        shardMarket = shardMarket_;
    }

    // =====================================================================================
    // creator
    // =====================================================================================

    function postPipeline(StageParams[] calldata stages, StageInput calldata first)
        external
        payable
        returns (uint256 pipelineId)
    {
        uint256 count = stages.length;
        if (count == 0 || count > MAX_STAGES) revert PipelineMarket__BadStageCount(count, MAX_STAGES);
        if (stages[0].tip != 0) revert PipelineMarket__FirstStageTip(stages[0].tip);
        if (stages[0].sharded && first.shardCount == 0) revert PipelineMarket__EmptySelection(msg.sender);
        pipelineId = nextPipelineId++;
        uint256 total;
        for (uint256 i; i < count; ++i) {
            total += _storeStage(pipelineId, i, stages[i]);
        }
        if (msg.value != total) revert PipelineMarket__WrongValue(msg.value, total);
        Pipeline storage pl = _pipelines[pipelineId];
        pl.creator = msg.sender;
        pl.state = PipelineState.Running;
        pl.stageCount = uint8(count);
        pl.reserved = total;
        emit PipelinePosted(pipelineId, msg.sender, uint8(count), total);
        // stage 0 is posted from calldata (its template is not stored)
        if (stages[0].sharded) _startSharded(pipelineId, pl, 0, first, 0, stages[0].shard);
        else _startPlain(pipelineId, pl, 0, first, 0, stages[0].job);
    }

    /// @notice The creator: no later stage starts; everything still reserved (the escrow and
    /// tips of later stages, the current stage's tip) is refunded. The current stage runs on.
    function cancel(uint256 pipelineId) external {
        Pipeline storage pl = _pipelines[pipelineId];
        if (msg.sender != pl.creator) revert PipelineMarket__NotCreator(msg.sender);
        if (pl.state != PipelineState.Running) revert PipelineMarket__NotRunning(pipelineId, pl.state);
        _end(pipelineId, pl, PipelineState.Stopped, pl.current);
    }

    // =====================================================================================
    // anyone
    // =====================================================================================

    function advance(uint256 pipelineId, StageInput calldata input) external {
        Pipeline storage pl = _pipelines[pipelineId];
        if (pl.state != PipelineState.Running) revert PipelineMarket__NotRunning(pipelineId, pl.state);
        uint8 i = pl.current;
        StageData storage st = _stages[pipelineId][i];
        (bool verified, bytes32 sealedResult) = _outcome(pipelineId, i, st);
        if (!verified) {
            // the tip is still reserved: it goes back with the rest
            _end(pipelineId, pl, PipelineState.Stopped, i);
            return;
        }
        uint96 tip = st.tip;
        if (tip != 0) {
            pl.reserved -= tip;
            address to = st.startedBy;
            withdrawable[to] += tip;
            emit TipPaid(pipelineId, i, to, tip);
        }
        uint8 next = i + 1;
        if (next == pl.stageCount) {
            _end(pipelineId, pl, PipelineState.Done, next);
            return;
        }
        if (_stages[pipelineId][next].sharded && input.shardCount == 0) {
            if (msg.sender != pl.creator) revert PipelineMarket__EmptySelection(msg.sender);
            _end(pipelineId, pl, PipelineState.Done, next);
            return;
        }
        bytes32 previous = input.previousResult;
        if (previous == 0 || (!st.sharded && jobMarket.sealedHashOf(st.jobId, previous) != sealedResult)) {
            revert PipelineMarket__NotThePreviousResult(pipelineId, i, previous);
        }
        StageData storage ns = _stages[pipelineId][next];
        if (ns.sharded) _startSharded(pipelineId, pl, next, input, previous, ns.shard);
        else _startPlain(pipelineId, pl, next, input, previous, ns.job);
    }

    function claim() external {
        uint256 amount = withdrawable[msg.sender];
        if (amount == 0) revert PipelineMarket__NothingToClaim(msg.sender);
        withdrawable[msg.sender] = 0;
        emit Claimed(msg.sender, amount);
        (bool ok,) = msg.sender.call{value: amount}("");
        if (!ok) revert PipelineMarket__TransferFailed(msg.sender, amount);
    }

    // =====================================================================================
    // views
    // =====================================================================================

    function getPipeline(uint256 pipelineId) external view returns (Pipeline memory) {
        return _pipelines[pipelineId];
    }

    function getStage(uint256 pipelineId, uint8 stage) external view returns (Stage memory s) {
        StageData storage st = _stages[pipelineId][stage];
        s.sharded = st.sharded;
        s.jobId = st.jobId;
        s.startedBy = st.startedBy;
        s.previousResult = st.previousResult;
        s.templateCid = st.templateCid;
        s.templateHash = st.templateHash;
        s.tip = st.tip;
        s.escrow = st.escrow;
    }

    function stageOf(address market, uint256 jobId) external view returns (uint256 pipelineId, uint8 stage) {
        uint256 packed = _stageOf[market][jobId];
        return (packed >> 8, uint8(packed));
    }

    // =====================================================================================
    // internals
    // =====================================================================================

    /// @dev Stores stage `i` (the template of a later stage; stage 0 is posted at once) and
    /// returns what it reserves: its escrow (for its most shards) and tip.
    function _storeStage(uint256 pipelineId, uint256 i, StageParams calldata s) private returns (uint256) {
        if (s.job.creator != address(0) || s.shard.creator != address(0)) revert PipelineMarket__CreatorSet(uint8(i));
        StageData storage st = _stages[pipelineId][i];
        uint256 escrow;
        if (s.sharded) {
            st.sharded = true;
            if (i != 0) st.shard = s.shard;
            escrow = uint256(s.shard.shardCount) * s.shard.concurrency * s.shard.pricePerShard;
        } else {
            if (i != 0) st.job = s.job;
            escrow = uint256(s.job.concurrency) * s.job.maxPrice;
        }
        // at most msg.value (checked by the caller against the sum), far below 2^248
        st.escrow = uint248(escrow);
        st.tip = s.tip;
        st.templateHash = s.templateHash;
        st.templateCid = s.templateCid;
        return escrow + s.tip;
    }

    /// @dev Whether the stage's job verified (`sealedResult`: a plain job's accepted sealed
    /// hash). A sharded job verified when Done with a verified batch: `verifiedBatches` counts
    /// Verified batches and batches settled per shard with at least one accepted shard (one
    /// settled per shard with none is Failed). Reverts while the job is not final.
    function _outcome(uint256 pipelineId, uint8 i, StageData storage st)
        private
        view
        returns (bool verified, bytes32 sealedResult)
    {
        if (st.sharded) {
            IShardMarketTypes.ShardJob memory j = IShardMarket(shardMarket).getShardJob(st.jobId);
            if (j.state == IShardMarketTypes.ShardJobState.Done) return (j.verifiedBatches != 0, 0);
            if (j.state == IShardMarketTypes.ShardJobState.Expired) return (false, 0);
        } else {
            IJobMarket.Job memory j = jobMarket.getJob(st.jobId);
            if (j.state == IJobMarket.JobState.Verified) return (true, j.sealedResult);
            if (j.state == IJobMarket.JobState.Failed || j.state == IJobMarket.JobState.Expired) return (false, 0);
        }
        revert PipelineMarket__StageNotFinal(pipelineId, i);
    }

    /// @dev Posts plain stage `i` from its template `p` with `input`, started by msg.sender; its
    /// escrow leaves `reserved`.
    function _startPlain(
        uint256 pipelineId,
        Pipeline storage pl,
        uint8 i,
        StageInput calldata input,
        bytes32 previous,
        IJobMarket.JobParams memory p
    ) private {
        StageData storage st = _stages[pipelineId][i];
        p.specCid = input.specCid;
        p.specHash = input.specHash;
        p.creator = pl.creator;
        uint256 escrow = st.escrow;
        pl.reserved -= escrow;
        _started(pl, st, i, previous);
        uint256 jobId = jobMarket.postJob{value: escrow}(p);
        _posted(pipelineId, st, i, address(jobMarket), jobId, previous);
    }

    /// @dev Posts sharded stage `i` from its template `p` for `input.shardCount` shards (1..its
    /// most); the escrow reserved for the shards it does not run is refunded to the creator.
    function _startSharded(
        uint256 pipelineId,
        Pipeline storage pl,
        uint8 i,
        StageInput calldata input,
        bytes32 previous,
        IShardMarketTypes.ShardJobParams memory p
    ) private {
        if (input.shardCount > p.shardCount) {
            revert PipelineMarket__TooManyShards(input.shardCount, p.shardCount);
        }
        StageData storage st = _stages[pipelineId][i];
        p.specCid = input.specCid;
        p.specHash = input.specHash;
        p.manifestCid = input.manifestCid;
        p.manifestHash = input.manifestHash;
        p.shardCount = input.shardCount;
        p.creator = pl.creator;
        uint256 escrow = uint256(input.shardCount) * p.concurrency * p.pricePerShard;
        uint256 unused = st.escrow - escrow;
        st.escrow = uint248(escrow);
        pl.reserved -= escrow + unused;
        if (unused != 0) _credit(pipelineId, pl.creator, unused);
        _started(pl, st, i, previous);
        uint256 jobId = IShardMarket(shardMarket).postShardedJob{value: escrow}(p);
        _posted(pipelineId, st, i, shardMarket, jobId, previous);
    }

    function _started(Pipeline storage pl, StageData storage st, uint8 i, bytes32 previous) private {
        pl.current = i;
        st.startedBy = msg.sender;
        st.previousResult = previous;
    }

    function _posted(uint256 pipelineId, StageData storage st, uint8 i, address market, uint256 jobId, bytes32 previous)
        private
    {
        st.jobId = jobId;
        _stageOf[market][jobId] = (pipelineId << 8) | i;
        emit StageStarted(pipelineId, i, market, jobId, msg.sender, previous);
    }

    /// @dev Ends a Running pipeline: what is still reserved is refunded to its creator.
    function _end(uint256 pipelineId, Pipeline storage pl, PipelineState state, uint8 stagesVerified) private {
        pl.state = state;
        uint256 rest = pl.reserved;
        pl.reserved = 0;
        if (rest != 0) _credit(pipelineId, pl.creator, rest);
        emit PipelineEnded(pipelineId, state, stagesVerified);
    }

    function _credit(uint256 pipelineId, address to, uint256 amount) private {
        withdrawable[to] += amount;
        emit Refunded(pipelineId, to, amount);
    }
}
