// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ShardFixture} from "./utils/ShardFixture.sol";
import {PipelineMarket} from "../src/PipelineMarket.sol";
import {IPipelineMarket} from "../src/interfaces/IPipelineMarket.sol";
import {IJobMarket} from "../src/interfaces/IJobMarket.sol";
import {IShardMarketTypes} from "../src/interfaces/IShardMarket.sol";

/// @notice Claims its PipelineMarket balance and, from `receive`, tries to claim again.
contract ReentrantClaimer {
    PipelineMarket internal immutable pipes;
    bool public reentered;
    bool public reentryOk;

    constructor(PipelineMarket p) {
        pipes = p;
    }

    function post(IPipelineMarket.StageParams[] calldata stages, IPipelineMarket.StageInput calldata first)
        external
        payable
        returns (uint256)
    {
        return pipes.postPipeline{value: msg.value}(stages, first);
    }

    function cancel(uint256 id) external {
        pipes.cancel(id);
    }

    function claim() external {
        pipes.claim();
    }

    receive() external payable {
        if (!reentered) {
            reentered = true;
            (reentryOk,) = address(pipes).call(abi.encodeCall(PipelineMarket.claim, ()));
        }
    }
}

/// @notice Pipelines run through real jobs on the JobMarket and the ShardMarket of the fixture.
contract PipelineMarketTest is ShardFixture {
    uint96 internal constant PRICE = 0.08 ether;
    uint96 internal constant TIP = 0.01 ether;
    bytes internal constant TEMPLATE_CID =
        hex"01551220abababababababababababababababababababababababababababababababab";
    bytes internal constant BOGUS_CID = hex"0155122000000000000000000000000000000000000000000000000000000000000000";

    PipelineMarket internal pipes;
    address internal keeper = address(0x4EE9E4);
    address internal stranger = address(0x5714A6E4);

    function setUp() public override {
        super.setUp();
        pipes = new PipelineMarket(IJobMarket(address(market)), address(shards));
        vm.deal(keeper, 10 ether);
        vm.deal(stranger, 10 ether);
        vm.label(keeper, "keeper");
        vm.label(stranger, "stranger");
        vm.label(address(pipes), "pipes");
    }

    // ---- helpers ----

    function _plain(uint96 tip) internal pure returns (IPipelineMarket.StageParams memory s) {
        s.templateCid = TEMPLATE_CID;
        s.templateHash = keccak256("template");
        s.job = _params(3, 3, 3);
        s.job.specCid = "";
        s.job.specHash = 0;
        s.tip = tip;
    }

    /// @dev A sharded stage of at most `maxShards` shards in batches of 2, 3 operators, 2 agreeing.
    function _sharded(uint32 maxShards, uint96 tip) internal pure returns (IPipelineMarket.StageParams memory s) {
        s.sharded = true;
        s.templateCid = TEMPLATE_CID;
        s.templateHash = keccak256("template");
        s.shard = _sparams(maxShards, 2, 3, 2, 3);
        s.shard.specCid = "";
        s.shard.specHash = 0;
        s.shard.manifestCid = "";
        s.shard.manifestHash = 0;
        s.tip = tip;
    }

    function _stageEscrow(IPipelineMarket.StageParams memory s) internal pure returns (uint256) {
        return s.sharded
            ? uint256(s.shard.shardCount) * s.shard.concurrency * s.shard.pricePerShard
            : uint256(s.job.concurrency) * s.job.maxPrice;
    }

    function _value(IPipelineMarket.StageParams[] memory st) internal pure returns (uint256 v) {
        for (uint256 i; i < st.length; ++i) {
            v += _stageEscrow(st[i]) + st[i].tip;
        }
    }

    function _two(IPipelineMarket.StageParams memory a, IPipelineMarket.StageParams memory b)
        internal
        pure
        returns (IPipelineMarket.StageParams[] memory st)
    {
        st = new IPipelineMarket.StageParams[](2);
        (st[0], st[1]) = (a, b);
    }

    function _three(
        IPipelineMarket.StageParams memory a,
        IPipelineMarket.StageParams memory b,
        IPipelineMarket.StageParams memory c
    ) internal pure returns (IPipelineMarket.StageParams[] memory st) {
        st = new IPipelineMarket.StageParams[](3);
        (st[0], st[1], st[2]) = (a, b, c);
    }

    function _input(bytes32 previous) internal pure returns (IPipelineMarket.StageInput memory i) {
        i.specCid = SPEC_CID;
        i.specHash = keccak256("spec");
        i.previousResult = previous;
    }

    function _sinput(bytes32 previous, uint32 count) internal pure returns (IPipelineMarket.StageInput memory i) {
        i = _input(previous);
        i.manifestCid = MANIFEST_CID;
        i.manifestHash = keccak256("manifest");
        i.shardCount = count;
    }

    function _postPipe(IPipelineMarket.StageParams[] memory st) internal returns (uint256 id) {
        IPipelineMarket.StageInput memory first = st[0].sharded ? _sinput(0, st[0].shard.shardCount) : _input(0);
        vm.prank(creator);
        id = pipes.postPipeline{value: _value(st)}(st, first);
    }

    function _jobOf(uint256 id) internal view returns (uint256) {
        return pipes.getStage(id, pipes.getPipeline(id).current).jobId;
    }

    function _pstate(uint256 id) internal view returns (uint256) {
        return uint256(pipes.getPipeline(id).state);
    }

    /// @dev Three honest operators verify plain job `jobId` (result GOOD).
    function _verifyPlain(uint256 jobId) internal {
        _bidSelect(jobId, 0, 3, PRICE);
        _commitReveal(jobId, _results(GOOD, GOOD, GOOD));
        _assertState(jobId, IJobMarket.JobState.Verified);
    }

    /// @dev Three honest operators run every batch of sharded job `jobId`, then it is finalized.
    function _verifySharded(uint256 jobId) internal {
        _sbids(jobId, 0, 3);
        _sdraw(jobId);
        for (uint256 i; i < 3; ++i) {
            _commitAll(jobId, ops[i], false);
        }
        for (uint256 i; i < 3; ++i) {
            _revealAll(jobId, ops[i], false);
        }
        shards.settleBatches(jobId, _allBatches(jobId));
        shards.finalize(jobId);
        assertEq(uint256(shards.getShardJob(jobId).state), uint256(IShardMarketTypes.ShardJobState.Done), "done");
    }

    /// @dev Nobody bids: the job expires.
    function _expirePlain(uint256 jobId) internal {
        vm.warp(market.getJob(jobId).bidDeadline + 1);
        market.closeBidding(jobId);
        _assertState(jobId, IJobMarket.JobState.Expired);
    }

    function _expireSharded(uint256 jobId) internal {
        vm.warp(shards.getShardJob(jobId).bidDeadline + 1);
        shards.closeBidding(jobId);
        assertEq(uint256(shards.getShardJob(jobId).state), uint256(IShardMarketTypes.ShardJobState.Expired), "expired");
    }

    function _advance(address by, uint256 id, IPipelineMarket.StageInput memory input) internal {
        vm.prank(by);
        pipes.advance(id, input);
    }

    /// @dev The pipeline market holds exactly what it owes: reserved of `ids` plus withdrawable.
    function _assertPipeMoney(uint256[] memory ids, address[] memory accounts) internal view {
        uint256 owed;
        for (uint256 i; i < ids.length; ++i) {
            IPipelineMarket.Pipeline memory pl = pipes.getPipeline(ids[i]);
            if (pl.state != IPipelineMarket.PipelineState.Running) assertEq(pl.reserved, 0, "ended: nothing reserved");
            owed += pl.reserved;
        }
        for (uint256 i; i < accounts.length; ++i) {
            owed += pipes.withdrawable(accounts[i]);
        }
        assertEq(address(pipes).balance, owed, "pipes balance == reserved + withdrawable");
    }

    function _accounts() internal view returns (address[] memory a) {
        a = new address[](3);
        (a[0], a[1], a[2]) = (creator, keeper, stranger);
    }

    /// @dev Everything `who` is owed across the three contracts.
    function _owed(address who) internal view returns (uint256) {
        return pipes.withdrawable(who) + market.withdrawable(who) + shards.withdrawable(who);
    }

    function _opsPaid() internal view returns (uint256 paid) {
        for (uint256 i; i < ops.length; ++i) {
            paid += market.withdrawable(ops[i]) + shards.withdrawable(ops[i]);
        }
    }

    // ---- end to end ----

    function test_PlainToPlain_VerifiedEndToEnd_TipPaidAndRefunds() public {
        IPipelineMarket.StageParams[] memory st = _two(_plain(0), _plain(TIP));
        uint256 value = _value(st);
        assertEq(value, 6 * MAX_PRICE + TIP, "value");

        vm.expectEmit(true, true, false, true, address(pipes));
        emit IPipelineMarket.PipelinePosted(1, creator, 2, value);
        vm.expectEmit(true, true, true, true, address(pipes));
        emit IPipelineMarket.StageStarted(1, 0, address(market), 1, creator, 0);
        uint256 id = _postPipe(st);
        assertEq(id, 1, "ids from 1");
        IPipelineMarket.Pipeline memory pl = pipes.getPipeline(id);
        assertEq(pl.creator, creator, "creator");
        assertEq(uint256(pl.state), uint256(IPipelineMarket.PipelineState.Running), "running");
        assertEq(pl.stageCount, 2, "stages");
        assertEq(pl.current, 0, "stage 0");
        assertEq(pl.reserved, 3 * MAX_PRICE + TIP, "stage 1 reserved");
        uint256 job0 = _jobOf(id);
        assertEq(market.getJob(job0).creator, creator, "stage job's creator is the pipeline's");
        (uint256 pid, uint8 stage) = pipes.stageOf(address(market), job0);
        assertEq(pid, id, "stageOf pipeline");
        assertEq(stage, 0, "stageOf stage");
        IPipelineMarket.Stage memory s1 = pipes.getStage(id, 1);
        assertEq(s1.jobId, 0, "stage 1 not started");
        assertEq(s1.escrow, 3 * MAX_PRICE, "stage 1 escrow");
        assertEq(s1.templateHash, keccak256("template"), "template hash");
        assertEq(keccak256(s1.templateCid), keccak256(TEMPLATE_CID), "template cid");
        assertEq(address(pipes).balance, 3 * MAX_PRICE + TIP, "pipes holds the later stage");
        _assertPipeMoney(_one(id), _accounts());

        _verifyPlain(job0);
        _advance(keeper, id, _input(GOOD));
        pl = pipes.getPipeline(id);
        assertEq(pl.current, 1, "stage 1");
        assertEq(pl.reserved, TIP, "the tip stays until stage 1 verifies");
        uint256 job1 = _jobOf(id);
        assertEq(job1, job0 + 1, "stage 1 posted");
        assertEq(market.getJob(job1).creator, creator, "stage 1's creator");
        assertEq(market.getJob(job1).specHash, keccak256("spec"), "spec from the input");
        s1 = pipes.getStage(id, 1);
        assertEq(s1.startedBy, keeper, "started by the keeper");
        assertEq(s1.previousResult, GOOD, "previous result");
        (pid, stage) = pipes.stageOf(address(market), job1);
        assertEq(pid * 256 + stage, id * 256 + 1, "stageOf stage 1");
        _assertPipeMoney(_one(id), _accounts());

        _verifyPlain(job1);
        vm.expectEmit(true, true, false, true, address(pipes));
        emit IPipelineMarket.TipPaid(id, 1, keeper, TIP);
        vm.expectEmit(true, false, false, true, address(pipes));
        emit IPipelineMarket.PipelineEnded(id, IPipelineMarket.PipelineState.Done, 2);
        _advance(stranger, id, _input(0));
        assertEq(_pstate(id), uint256(IPipelineMarket.PipelineState.Done), "done");
        assertEq(pipes.withdrawable(keeper), TIP, "tip to whoever started stage 1");
        assertEq(pipes.withdrawable(stranger), 0, "nothing to the finisher");
        assertEq(pipes.withdrawable(creator), 0, "nothing left to refund");
        assertEq(market.withdrawable(creator), 6 * (MAX_PRICE - PRICE), "unused escrow of both jobs");
        assertEq(_owed(creator) + _opsPaid() + TIP, value, "every wei accounted for");
        _assertPipeMoney(_one(id), _accounts());

        vm.expectRevert(
            abi.encodeWithSelector(
                IPipelineMarket.PipelineMarket__NotRunning.selector, id, IPipelineMarket.PipelineState.Done
            )
        );
        _advance(keeper, id, _input(GOOD));

        uint256 before = keeper.balance;
        vm.expectEmit(true, false, false, true, address(pipes));
        emit IPipelineMarket.Claimed(keeper, TIP);
        vm.prank(keeper);
        pipes.claim();
        assertEq(keeper.balance - before, TIP, "tip claimed");
        assertEq(address(pipes).balance, 0, "pipes empty");
        vm.expectRevert(abi.encodeWithSelector(IPipelineMarket.PipelineMarket__NothingToClaim.selector, keeper));
        vm.prank(keeper);
        pipes.claim();
    }

    /// @dev plain -> sharded (4 of at most 10 shards) -> plain.
    function test_PlainToShardedToPlain_SmallerSelectionRefunded() public {
        IPipelineMarket.StageParams[] memory st = _three(_plain(0), _sharded(10, TIP), _plain(2 * TIP));
        uint256 value = _value(st);
        uint256 id = _postPipe(st);
        _verifyPlain(_jobOf(id));

        vm.expectRevert(abi.encodeWithSelector(IPipelineMarket.PipelineMarket__TooManyShards.selector, 11, 10));
        _advance(keeper, id, _sinput(GOOD, 11));

        uint256 unused = 6 * 3 * SHARD_PRICE;
        vm.expectEmit(true, true, false, true, address(pipes));
        emit IPipelineMarket.Refunded(id, creator, unused);
        _advance(keeper, id, _sinput(GOOD, 4));
        uint256 sjob = _jobOf(id);
        IShardMarketTypes.ShardJob memory j = shards.getShardJob(sjob);
        assertEq(j.creator, creator, "sharded stage's creator");
        assertEq(j.shardCount, 4, "the selection");
        assertEq(j.escrow, 4 * 3 * SHARD_PRICE, "escrow for the selection");
        assertEq(j.manifestHash, keccak256("manifest"), "manifest from the input");
        assertEq(pipes.withdrawable(creator), unused, "the rest of the reserved escrow refunded");
        assertEq(pipes.getStage(id, 1).escrow, 4 * 3 * SHARD_PRICE, "stage escrow is what it paid");
        (uint256 pid, uint8 stage) = pipes.stageOf(address(shards), sjob);
        assertEq(pid * 256 + stage, id * 256 + 1, "stageOf sharded stage");
        _assertPipeMoney(_one(id), _accounts());

        vm.expectRevert(abi.encodeWithSelector(IPipelineMarket.PipelineMarket__StageNotFinal.selector, id, 1));
        _advance(keeper, id, _input(keccak256("merged")));
        _verifySharded(sjob);

        // a sharded previous stage: any nonzero digest (the nodes check it), not zero
        vm.expectRevert(abi.encodeWithSelector(IPipelineMarket.PipelineMarket__NotThePreviousResult.selector, id, 1, 0));
        _advance(stranger, id, _input(0));
        _advance(stranger, id, _input(keccak256("merged")));
        assertEq(pipes.withdrawable(keeper), TIP, "keeper's tip for the sharded stage");
        assertEq(pipes.getStage(id, 2).startedBy, stranger, "stage 2 started by the stranger");

        _verifyPlain(_jobOf(id));
        _advance(keeper, id, _input(0));
        assertEq(_pstate(id), uint256(IPipelineMarket.PipelineState.Done), "done");
        assertEq(pipes.withdrawable(stranger), 2 * TIP, "stranger's tip for stage 2");
        assertEq(_owed(creator) + _opsPaid() + 3 * TIP, value, "every wei accounted for");
        _assertPipeMoney(_one(id), _accounts());
    }

    function test_ShardedFirstStage_SelectionAndVerification() public {
        IPipelineMarket.StageParams[] memory st = _two(_sharded(6, 0), _plain(TIP));
        uint256 value = _value(st);
        vm.prank(creator);
        uint256 id = pipes.postPipeline{value: value}(st, _sinput(0, 4));
        assertEq(pipes.withdrawable(creator), 2 * 3 * SHARD_PRICE, "two unselected shards refunded at post");
        _assertPipeMoney(_one(id), _accounts());
        _verifySharded(_jobOf(id));
        _advance(keeper, id, _input(keccak256("merged")));
        _verifyPlain(_jobOf(id));
        _advance(keeper, id, _input(0));
        assertEq(_pstate(id), uint256(IPipelineMarket.PipelineState.Done), "done");
        assertEq(_owed(creator) + _opsPaid() + TIP, value, "every wei accounted for");
        _assertPipeMoney(_one(id), _accounts());
    }

    // ---- stages that do not verify ----

    function test_ExpiredFirstStage_StopsAndRefundsEverything() public {
        IPipelineMarket.StageParams[] memory st = _three(_plain(0), _plain(TIP), _sharded(10, TIP));
        uint256 value = _value(st);
        uint256 id = _postPipe(st);
        _expirePlain(_jobOf(id));
        vm.expectEmit(true, true, false, true, address(pipes));
        emit IPipelineMarket.Refunded(id, creator, value - 3 * MAX_PRICE);
        vm.expectEmit(true, false, false, true, address(pipes));
        emit IPipelineMarket.PipelineEnded(id, IPipelineMarket.PipelineState.Stopped, 0);
        _advance(stranger, id, _input(GOOD));
        assertEq(_pstate(id), uint256(IPipelineMarket.PipelineState.Stopped), "stopped");
        assertEq(pipes.withdrawable(creator), value - 3 * MAX_PRICE, "later stages refunded");
        assertEq(market.withdrawable(creator), 3 * MAX_PRICE, "the expired stage refunded by the market");
        assertEq(_owed(creator), value, "every wei back");
        _assertPipeMoney(_one(id), _accounts());
    }

    function test_FailedStage_TipBackToCreator() public {
        IPipelineMarket.StageParams[] memory st = _three(_plain(0), _plain(TIP), _plain(TIP));
        uint256 value = _value(st);
        uint256 id = _postPipe(st);
        _verifyPlain(_jobOf(id));
        _advance(keeper, id, _input(GOOD));
        uint256 job1 = _jobOf(id);
        _bidSelect(job1, 0, 3, PRICE);
        _commitReveal(job1, _results(GOOD, GOOD, BAD)); // confidence 3: no quorum
        _assertState(job1, IJobMarket.JobState.Failed);
        _advance(keeper, id, _input(GOOD));
        assertEq(_pstate(id), uint256(IPipelineMarket.PipelineState.Stopped), "stopped");
        assertEq(pipes.withdrawable(keeper), 0, "no tip for a stage that failed");
        assertEq(pipes.withdrawable(creator), 3 * MAX_PRICE + 2 * TIP, "stage 2 and both tips refunded");
        // stage 0 paid its operators; the failed stage slashed nobody and refunded its escrow
        assertEq(_owed(creator) + _opsPaid(), value, "every wei accounted for");
        _assertPipeMoney(_one(id), _accounts());
    }

    function test_ShardedStageExpired_Stops() public {
        IPipelineMarket.StageParams[] memory st = _two(_plain(0), _sharded(4, TIP));
        uint256 value = _value(st);
        uint256 id = _postPipe(st);
        _verifyPlain(_jobOf(id));
        _advance(keeper, id, _sinput(GOOD, 4));
        vm.expectRevert(abi.encodeWithSelector(IPipelineMarket.PipelineMarket__StageNotFinal.selector, id, 1));
        _advance(keeper, id, _input(0));
        _expireSharded(_jobOf(id));
        _advance(keeper, id, _input(0));
        assertEq(_pstate(id), uint256(IPipelineMarket.PipelineState.Stopped), "stopped");
        assertEq(pipes.withdrawable(keeper), 0, "no tip");
        assertEq(_owed(creator) + _opsPaid(), value, "every wei accounted for");
        _assertPipeMoney(_one(id), _accounts());
    }

    // ---- cancel, selection, reverts ----

    function test_Cancel_RefundsReservedCurrentStageRunsOn() public {
        IPipelineMarket.StageParams[] memory st = _three(_plain(0), _plain(TIP), _plain(TIP));
        uint256 value = _value(st);
        uint256 id = _postPipe(st);
        _verifyPlain(_jobOf(id));
        _advance(keeper, id, _input(GOOD));
        uint256 job1 = _jobOf(id);
        vm.expectEmit(true, false, false, true, address(pipes));
        emit IPipelineMarket.PipelineEnded(id, IPipelineMarket.PipelineState.Stopped, 1);
        vm.prank(creator);
        pipes.cancel(id);
        assertEq(_pstate(id), uint256(IPipelineMarket.PipelineState.Stopped), "stopped");
        assertEq(pipes.withdrawable(creator), 3 * MAX_PRICE + 2 * TIP, "stage 2 and the current tip refunded");
        _assertState(job1, IJobMarket.JobState.Posted); // the posted stage runs on
        _verifyPlain(job1);
        vm.expectRevert(
            abi.encodeWithSelector(
                IPipelineMarket.PipelineMarket__NotRunning.selector, id, IPipelineMarket.PipelineState.Stopped
            )
        );
        _advance(keeper, id, _input(GOOD));
        vm.expectRevert(
            abi.encodeWithSelector(
                IPipelineMarket.PipelineMarket__NotRunning.selector, id, IPipelineMarket.PipelineState.Stopped
            )
        );
        vm.prank(creator);
        pipes.cancel(id);
        assertEq(pipes.withdrawable(keeper), 0, "a cancelled pipeline pays no tip");
        assertEq(_owed(creator) + _opsPaid(), value, "every wei accounted for");
        _assertPipeMoney(_one(id), _accounts());
    }

    function test_RevertWhen_WrongPreviousResult() public {
        uint256 id = _postPipe(_two(_plain(0), _plain(TIP)));
        uint256 job0 = _jobOf(id);
        _verifyPlain(job0);
        bytes32[3] memory wrong = [BAD, bytes32(0), _sealed(job0, GOOD)]; // the sealed hash is not the result
        for (uint256 i; i < 3; ++i) {
            vm.expectRevert(
                abi.encodeWithSelector(IPipelineMarket.PipelineMarket__NotThePreviousResult.selector, id, 0, wrong[i])
            );
            _advance(keeper, id, _input(wrong[i]));
        }
        _advance(keeper, id, _input(GOOD));
        assertEq(pipes.getPipeline(id).current, 1, "the right one starts stage 1");
    }

    function test_RevertWhen_StageNotFinal() public {
        uint256 id = _postPipe(_two(_plain(0), _plain(TIP)));
        uint256 job0 = _jobOf(id);
        vm.expectRevert(abi.encodeWithSelector(IPipelineMarket.PipelineMarket__StageNotFinal.selector, id, 0));
        _advance(keeper, id, _input(GOOD));
        _bidSelect(job0, 0, 3, PRICE);
        vm.expectRevert(abi.encodeWithSelector(IPipelineMarket.PipelineMarket__StageNotFinal.selector, id, 0));
        _advance(keeper, id, _input(GOOD));
        vm.expectRevert(
            abi.encodeWithSelector(
                IPipelineMarket.PipelineMarket__NotRunning.selector, 7, IPipelineMarket.PipelineState.None
            )
        );
        _advance(keeper, 7, _input(GOOD));
    }

    function test_EmptySelection_OnlyTheCreator() public {
        IPipelineMarket.StageParams[] memory st = _three(_plain(0), _sharded(10, TIP), _plain(TIP));
        uint256 value = _value(st);
        uint256 id = _postPipe(st);
        _verifyPlain(_jobOf(id));
        vm.expectRevert(abi.encodeWithSelector(IPipelineMarket.PipelineMarket__EmptySelection.selector, keeper));
        _advance(keeper, id, _sinput(GOOD, 0));
        vm.expectEmit(true, false, false, true, address(pipes));
        emit IPipelineMarket.PipelineEnded(id, IPipelineMarket.PipelineState.Done, 1);
        _advance(creator, id, _sinput(GOOD, 0));
        assertEq(_pstate(id), uint256(IPipelineMarket.PipelineState.Done), "done");
        assertEq(pipes.withdrawable(creator), value - 3 * MAX_PRICE, "both later stages refunded");
        assertEq(_owed(creator) + _opsPaid(), value, "every wei accounted for");
        _assertPipeMoney(_one(id), _accounts());
    }

    function test_RevertWhen_BadPost() public {
        IPipelineMarket.StageParams[] memory none = new IPipelineMarket.StageParams[](0);
        vm.expectRevert(abi.encodeWithSelector(IPipelineMarket.PipelineMarket__BadStageCount.selector, 0, 16));
        vm.prank(creator);
        pipes.postPipeline(none, _input(0));

        IPipelineMarket.StageParams[] memory many = new IPipelineMarket.StageParams[](17);
        for (uint256 i; i < 17; ++i) {
            many[i] = _plain(0);
        }
        vm.expectRevert(abi.encodeWithSelector(IPipelineMarket.PipelineMarket__BadStageCount.selector, 17, 16));
        vm.prank(creator);
        pipes.postPipeline{value: _value(many)}(many, _input(0));

        IPipelineMarket.StageParams[] memory st = _two(_plain(TIP), _plain(TIP));
        vm.expectRevert(abi.encodeWithSelector(IPipelineMarket.PipelineMarket__FirstStageTip.selector, TIP));
        vm.prank(creator);
        pipes.postPipeline{value: _value(st)}(st, _input(0));

        st = _two(_plain(0), _plain(TIP));
        st[1].job.creator = stranger;
        vm.expectRevert(abi.encodeWithSelector(IPipelineMarket.PipelineMarket__CreatorSet.selector, 1));
        vm.prank(creator);
        pipes.postPipeline{value: _value(st)}(st, _input(0));

        st = _two(_plain(0), _sharded(4, TIP));
        st[1].shard.creator = stranger;
        vm.expectRevert(abi.encodeWithSelector(IPipelineMarket.PipelineMarket__CreatorSet.selector, 1));
        vm.prank(creator);
        pipes.postPipeline{value: _value(st)}(st, _input(0));

        st = _two(_plain(0), _plain(TIP));
        uint256 v = _value(st);
        vm.expectRevert(abi.encodeWithSelector(IPipelineMarket.PipelineMarket__WrongValue.selector, v - 1, v));
        vm.prank(creator);
        pipes.postPipeline{value: v - 1}(st, _input(0));

        st = _two(_sharded(4, 0), _plain(TIP));
        vm.expectRevert(abi.encodeWithSelector(IPipelineMarket.PipelineMarket__EmptySelection.selector, creator));
        vm.prank(creator);
        pipes.postPipeline{value: _value(st)}(st, _sinput(0, 0));

        st = _two(_sharded(4, 0), _plain(TIP));
        vm.expectRevert(abi.encodeWithSelector(IPipelineMarket.PipelineMarket__TooManyShards.selector, 5, 4));
        vm.prank(creator);
        pipes.postPipeline{value: _value(st)}(st, _sinput(0, 5));

        // the market's own checks apply to stage 0 (an empty spec)
        st = _two(_plain(0), _plain(TIP));
        IPipelineMarket.StageInput memory noSpec = _input(0);
        noSpec.specCid = "";
        vm.expectRevert(abi.encodeWithSelector(IJobMarket.JobMarket__EmptySpec.selector));
        vm.prank(creator);
        pipes.postPipeline{value: _value(st)}(st, noSpec);

        assertEq(address(pipes).balance, 0, "nothing kept");
        assertEq(pipes.nextPipelineId(), 1, "nothing posted");
    }

    // ---- attacks ----

    /// @dev A stranger starts stage 1 with a spec the nodes decline: the stage expires, the
    /// stranger earns nothing and the creator gets back every wei not paid for stage 0's work.
    function test_Attack_StrangerBogusInputs_NoTipEveryWeiBack() public {
        IPipelineMarket.StageParams[] memory st = _three(_plain(0), _plain(TIP), _sharded(10, TIP));
        uint256 value = _value(st);
        uint256 id = _postPipe(st);
        _verifyPlain(_jobOf(id));
        IPipelineMarket.StageInput memory bogus = _input(GOOD);
        bogus.specCid = BOGUS_CID;
        bogus.specHash = keccak256("bogus");
        _advance(stranger, id, bogus);
        assertEq(pipes.getStage(id, 1).startedBy, stranger, "the stranger started stage 1");
        _expirePlain(_jobOf(id)); // the nodes decline the bogus spec
        _advance(stranger, id, bogus);
        assertEq(_pstate(id), uint256(IPipelineMarket.PipelineState.Stopped), "stopped");
        assertEq(_owed(stranger), 0, "no tip for a stage that did not verify");
        assertEq(_owed(creator), value - 3 * PRICE, "every wei back but stage 0's work");
        assertEq(_opsPaid(), 3 * PRICE, "stage 0's operators paid");
        _assertPipeMoney(_one(id), _accounts());

        uint256 before = creator.balance;
        vm.prank(creator);
        pipes.claim();
        vm.prank(creator);
        market.claim();
        assertEq(creator.balance - before, value - 3 * PRICE, "claimed");
        assertEq(address(pipes).balance, 0, "pipes empty");
    }

    function test_Attack_StrangerCannotCancel() public {
        uint256 id = _postPipe(_two(_plain(0), _plain(TIP)));
        vm.expectRevert(abi.encodeWithSelector(IPipelineMarket.PipelineMarket__NotCreator.selector, stranger));
        vm.prank(stranger);
        pipes.cancel(id);
        vm.expectRevert(abi.encodeWithSelector(IPipelineMarket.PipelineMarket__NotCreator.selector, keeper));
        vm.prank(keeper);
        pipes.cancel(id);
        assertEq(_pstate(id), uint256(IPipelineMarket.PipelineState.Running), "still running");
        assertEq(pipes.getPipeline(id).reserved, 3 * MAX_PRICE + TIP, "nothing moved");
    }

    function test_Attack_ReentrantClaimerCannotDrain() public {
        uint256 honest = _postPipe(_three(_plain(0), _plain(TIP), _plain(TIP)));
        ReentrantClaimer attacker = new ReentrantClaimer(pipes);
        vm.deal(address(attacker), 0);
        IPipelineMarket.StageParams[] memory st = _two(_plain(0), _plain(TIP));
        uint256 refund = 3 * MAX_PRICE + TIP;
        uint256 id = attacker.post{value: _value(st)}(st, _input(0));
        attacker.cancel(id);
        assertEq(pipes.withdrawable(address(attacker)), refund, "attacker's refund");
        uint256 held = address(pipes).balance;
        attacker.claim();
        assertTrue(attacker.reentered(), "it re-entered");
        assertFalse(attacker.reentryOk(), "the re-entered claim failed");
        assertEq(address(attacker).balance, refund, "paid once");
        assertEq(address(pipes).balance, held - refund, "nothing more left");
        assertEq(pipes.getPipeline(honest).reserved, 6 * MAX_PRICE + 2 * TIP, "the honest pipeline intact");
        uint256[] memory ids = new uint256[](2);
        (ids[0], ids[1]) = (honest, id);
        _assertPipeMoney(ids, _accounts());
    }

    function test_Attack_AdvanceCannotStartAStageTwice() public {
        uint256 id = _postPipe(_three(_plain(0), _plain(TIP), _plain(TIP)));
        _verifyPlain(_jobOf(id));
        _advance(keeper, id, _input(GOOD));
        uint256 job1 = _jobOf(id);
        uint256 next = market.nextJobId();
        uint256 reserved = pipes.getPipeline(id).reserved;
        // the same advance again (and a stranger's) finds stage 1 not final
        vm.expectRevert(abi.encodeWithSelector(IPipelineMarket.PipelineMarket__StageNotFinal.selector, id, 1));
        _advance(keeper, id, _input(GOOD));
        vm.expectRevert(abi.encodeWithSelector(IPipelineMarket.PipelineMarket__StageNotFinal.selector, id, 1));
        _advance(stranger, id, _input(GOOD));
        assertEq(market.nextJobId(), next, "no second job");
        assertEq(_jobOf(id), job1, "stage 1's job unchanged");
        assertEq(pipes.getPipeline(id).reserved, reserved, "nothing spent");
        assertEq(pipes.getStage(id, 1).startedBy, keeper, "the first starter keeps the stage");
        // once stage 1 verified, the next advance starts stage 2 (not stage 1 again)
        _verifyPlain(job1);
        _advance(stranger, id, _input(GOOD));
        assertEq(pipes.getPipeline(id).current, 2, "stage 2");
        assertEq(pipes.withdrawable(keeper), TIP, "stage 1's tip once, to its starter");
        assertEq(pipes.withdrawable(stranger), 0, "no tip to the second caller");
    }

    // ---- money conservation ----

    /// forge-config: default.fuzz.runs = 200
    function testFuzz_MoneyConserved(uint256 seed) public {
        uint256 count = bound(seed & 0xff, 1, 4);
        IPipelineMarket.StageParams[] memory st = new IPipelineMarket.StageParams[](count);
        for (uint256 i; i < count; ++i) {
            uint96 tip = i == 0 ? 0 : uint96(((seed >> (16 + 8 * i)) & 0xff) * 1e12);
            st[i] = (seed >> (8 + i)) & 1 == 1 ? _sharded(uint32(bound(seed >> (48 + 4 * i), 1, 6)), tip) : _plain(tip);
        }
        uint256 value = _value(st);
        uint256 id;
        {
            IPipelineMarket.StageInput memory first = st[0].sharded ? _sinput(0, 1) : _input(0);
            if (st[0].sharded) first.shardCount = uint32(bound(seed >> 96, 1, st[0].shard.shardCount));
            vm.prank(creator);
            id = pipes.postPipeline{value: value}(st, first);
        }
        uint256 cancelAt = (seed >> 104) % 6;
        uint256 tips;
        while (pipes.getPipeline(id).state == IPipelineMarket.PipelineState.Running) {
            uint8 i = pipes.getPipeline(id).current;
            uint256 jobId = _jobOf(id);
            if (cancelAt == i) {
                vm.prank(creator);
                pipes.cancel(id);
            }
            bool ok = (seed >> (112 + 2 * i)) & 3 != 0;
            if (st[i].sharded) {
                ok ? _verifySharded(jobId) : _expireSharded(jobId);
            } else {
                ok ? _verifyPlain(jobId) : _expirePlain(jobId);
            }
            _assertPipeMoney(_one(id), _accounts());
            if (cancelAt == i) break;
            if (ok) tips += st[i].tip;
            IPipelineMarket.StageInput memory input = _input(GOOD);
            address by = keeper;
            if (i + 1 < count && st[i + 1].sharded) {
                input = _sinput(GOOD, uint32(bound(seed >> (128 + 4 * i), 0, st[i + 1].shard.shardCount)));
                if (input.shardCount == 0) by = creator;
            }
            _advance(by, id, input);
            _assertPipeMoney(_one(id), _accounts());
        }
        assertTrue(pipes.getPipeline(id).state != IPipelineMarket.PipelineState.Running, "ended");
        assertEq(pipes.getPipeline(id).reserved, 0, "nothing reserved once ended");
        assertEq(pipes.withdrawable(keeper), tips, "tips of verified stages only");
        assertEq(_owed(creator) + _opsPaid() + tips, value, "every wei: creator, operators, keeper");
        _assertPipeMoney(_one(id), _accounts());
    }

    // ---- gas ----

    function test_Gas_PostPipelineTwoStages() public {
        IPipelineMarket.StageParams[] memory st = _two(_plain(0), _plain(TIP));
        uint256 value = _value(st);
        IPipelineMarket.StageInput memory first = _input(0);
        vm.prank(creator);
        uint256 g = gasleft();
        pipes.postPipeline{value: value}(st, first);
        log("postPipeline (2 plain stages)", g - gasleft());
    }

    function test_Gas_AdvancePlainToPlain() public {
        vm.pauseGasMetering();
        uint256 id = _postPipe(_two(_plain(0), _plain(TIP)));
        _verifyPlain(_jobOf(id));
        IPipelineMarket.StageInput memory input = _input(GOOD);
        vm.resumeGasMetering();
        vm.prank(keeper);
        uint256 g = gasleft();
        pipes.advance(id, input);
        log("advance (verified plain -> post plain)", g - gasleft());
    }
}
