// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ShardFixture} from "./utils/ShardFixture.sol";
import {ShardMarket} from "../src/ShardMarket.sol";
import {IShardMarketTypes} from "../src/interfaces/IShardMarket.sol";
import {IOperatorRegistry} from "../src/interfaces/IOperatorRegistry.sol";
import {OperatorRegistry} from "../src/OperatorRegistry.sol";

/// @notice Sharded jobs end to end: draw, per-batch commit-reveal and tally, re-assignment,
/// locality, the draw's seed, parameter checks, the Merkle rule, and the registry's second market.
contract ShardMarketTest is ShardFixture {
    // ---- happy path ----

    /// @dev 10 shards in batches of 3: batches 0..2 hold 3 shards, batch 3 holds 1.
    function test_HappyPath_EveryBatchVerifiedPaidExactly() public {
        IShardMarketTypes.ShardJobParams memory p = _sparams(10, 3, 3, 2, 4);
        uint256 jobId = _spost(p);
        IShardMarketTypes.ShardJob memory job = shards.getShardJob(jobId);
        assertEq(job.batchCount, 4, "4 batches");
        assertEq(job.escrow, 10 * 3 * SHARD_PRICE, "escrow");
        assertEq(uint256(job.state), uint256(IShardMarketTypes.ShardJobState.Bidding), "bidding");
        assertEq(shards.batchOf(jobId, 9), 3, "shard 9 in the short last batch");
        _sbids(jobId, 0, 4);
        assertEq(shards.getBidders(jobId).length, 4, "4 bidders");

        _sdraw(jobId);
        job = shards.getShardJob(jobId);
        assertEq(uint256(job.state), uint256(IShardMarketTypes.ShardJobState.Running), "running");
        assertEq(job.assignedBatches, 4, "all drawn");
        uint256 slots;
        for (uint256 b; b < 4; ++b) {
            IShardMarketTypes.Batch memory bt = shards.getBatch(jobId, uint32(b));
            assertEq(uint256(bt.state), uint256(IShardMarketTypes.BatchState.Assigned), "assigned");
            assertEq(bt.attempt, 1, "first attempt");
            assertEq(bt.operators.length, 3, "n operators");
            assertTrue(
                bt.operators[0] != bt.operators[1] && bt.operators[1] != bt.operators[2]
                    && bt.operators[0] != bt.operators[2],
                "distinct operators"
            );
            slots += 3;
        }
        uint256 lockedTotal;
        for (uint256 i; i < 4; ++i) {
            lockedTotal += _locked(ops[i]);
        }
        assertEq(lockedTotal, slots * BATCH_COLLATERAL, "one collateral locked per assigned slot");

        for (uint256 i; i < 4; ++i) {
            _commitAll(jobId, ops[i], false);
        }
        for (uint256 b; b < 4; ++b) {
            assertEq(uint256(_batchState(jobId, b)), uint256(IShardMarketTypes.BatchState.Revealing), "revealing");
        }
        for (uint256 i; i < 4; ++i) {
            _revealAll(jobId, ops[i], false);
        }
        // every committer revealed: settleable at once
        shards.settleBatches(jobId, _allBatches(jobId));
        for (uint256 b; b < 4; ++b) {
            IShardMarketTypes.Batch memory bt = shards.getBatch(jobId, uint32(b));
            assertEq(uint256(bt.state), uint256(IShardMarketTypes.BatchState.Verified), "verified");
            assertEq(bt.root, _root(jobId, b), "accepted root");
        }
        vm.expectEmit(true, false, false, true, address(shards));
        emit IShardMarketTypes.ShardJobDone(jobId, 4, 0);
        shards.finalize(jobId);

        // each operator: batchShards x price per batch it held; nothing slashed, nothing locked
        uint256 paid;
        for (uint256 i; i < 4; ++i) {
            uint256 expected;
            for (uint256 b; b < 4; ++b) {
                address[] memory o = shards.getBatch(jobId, uint32(b)).operators;
                for (uint256 s; s < 3; ++s) {
                    if (o[s] == ops[i]) expected += _shardsIn(p, b) * SHARD_PRICE;
                }
            }
            assertEq(shards.withdrawable(ops[i]), expected, "paid exactly its shards");
            assertEq(_locked(ops[i]), 0, "unlocked");
            assertEq(_stake(ops[i]), OPERATOR_STAKE, "not slashed");
            paid += expected;
        }
        assertEq(paid, 10 * 3 * SHARD_PRICE, "every slot of every shard paid");
        assertEq(shards.withdrawable(creator), 0, "nothing left to refund");
        assertEq(shards.getShardJob(jobId).escrow, 0, "escrow released");
        _assertShardConservation(_one(jobId), _everyone());

        uint256 before = ops[0].balance;
        uint256 owed = shards.withdrawable(ops[0]);
        vm.prank(ops[0]);
        shards.claim();
        assertEq(ops[0].balance - before, owed, "claim pays out");
        _assertShardConservation(_one(jobId), _everyone());
    }

    // ---- a liar ----

    function test_LiarSlashedOnItsBatchesOnly_BatchesStillVerify() public {
        IShardMarketTypes.ShardJobParams memory p = _sparams(10, 3, 3, 2, 4);
        uint256 jobId = _spost(p);
        _sbids(jobId, 0, 4);
        _sdraw(jobId);
        address liar = ops[0];
        uint32[] memory lied = _commitAll(jobId, liar, true);
        assertTrue(lied.length > 0, "the liar holds batches");
        for (uint256 i = 1; i < 4; ++i) {
            _commitAll(jobId, ops[i], false);
        }
        for (uint256 i; i < 4; ++i) {
            _revealAll(jobId, ops[i], i == 0);
        }
        shards.settleBatches(jobId, _allBatches(jobId));
        shards.finalize(jobId);

        uint256 refund;
        for (uint256 b; b < 4; ++b) {
            IShardMarketTypes.Batch memory bt = shards.getBatch(jobId, uint32(b));
            assertEq(uint256(bt.state), uint256(IShardMarketTypes.BatchState.Verified), "still verified");
            assertEq(bt.root, _root(jobId, b), "the honest root");
        }
        for (uint256 j; j < lied.length; ++j) {
            refund += _shardsIn(p, lied[j]) * SHARD_PRICE; // the liar's slot is not paid
        }
        assertEq(_stake(liar), OPERATOR_STAKE - lied.length * BATCH_COLLATERAL, "slashed once per batch it held");
        assertEq(_locked(liar), 0, "nothing left locked");
        assertEq(shards.withdrawable(liar), 0, "liar unpaid");
        assertEq(shards.withdrawable(creator), refund, "creator refunded only the unpaid slots");
        // the honest: their shards, plus half the liar's collateral on each batch they shared
        for (uint256 i = 1; i < 4; ++i) {
            uint256 expected;
            for (uint256 b; b < 4; ++b) {
                address[] memory o = shards.getBatch(jobId, uint32(b)).operators;
                bool mine;
                bool withLiar;
                for (uint256 s; s < 3; ++s) {
                    if (o[s] == ops[i]) mine = true;
                    if (o[s] == liar) withLiar = true;
                }
                if (mine) expected += _shardsIn(p, b) * SHARD_PRICE + (withLiar ? BATCH_COLLATERAL / 2 : 0);
            }
            assertEq(shards.withdrawable(ops[i]), expected, "honest paid + compensated");
            assertEq(_stake(ops[i]), OPERATOR_STAKE, "honest not slashed");
            assertEq(_locked(ops[i]), 0, "honest unlocked");
        }
        assertEq(shards.withdrawable(address(0)), 0, "nothing burned");
        _assertShardConservation(_one(jobId), _everyone());
    }

    /// @dev n = 2, k = 2, every batch a 1-1 split between roots of no leaves: the batches go
    /// Proving, nobody can prove, and after the proof deadline both are slashed (NoProof) and
    /// the batches fail with their escrow refunded and the collateral burned.
    /// (A split between provable roots: ShardDispute.t.sol.)
    function test_NoQuorum_UnprovableSplitFailsRefundedBothSlashed() public {
        IShardMarketTypes.ShardJobParams memory p = _sparams(4, 2, 2, 2, 2);
        uint256 jobId = _spost(p);
        _sbids(jobId, 0, 2);
        _sdraw(jobId);
        _commitAll(jobId, ops[0], true);
        _commitAll(jobId, ops[1], true);
        _revealAll(jobId, ops[0], true);
        _revealAll(jobId, ops[1], true);
        vm.expectEmit(true, false, false, true, address(shards));
        emit IShardMarketTypes.BatchProving(jobId, 0, uint64(block.timestamp) + WINDOW);
        shards.settleBatches(jobId, _allBatches(jobId));
        vm.warp(block.timestamp + WINDOW + 1);
        for (uint256 b; b < 2; ++b) {
            vm.expectEmit(true, false, false, true, address(shards));
            emit IShardMarketTypes.BatchFailed(jobId, uint32(b), IShardMarketTypes.BatchFailReason.NoQuorum);
            shards.settleProven(jobId, uint32(b), new bytes32[][](0));
        }
        shards.finalize(jobId);
        assertEq(shards.withdrawable(creator), 4 * 2 * SHARD_PRICE, "full refund");
        for (uint256 i; i < 2; ++i) {
            assertEq(_stake(ops[i]), OPERATOR_STAKE - 2 * BATCH_COLLATERAL, "NoProof on both batches");
            assertEq(_locked(ops[i]), 0, "unlocked");
        }
        assertEq(shards.withdrawable(address(0)), 4 * BATCH_COLLATERAL, "burned");
        _assertShardConservation(_one(jobId), _everyone());
    }

    function test_FailedWithMajority_UnprovableDissenterSlashedMajorityUnpaidBurned() public {
        // n = 3, k = 3: a 2-1 split goes Proving; the dissenter's root is no Merkle root, so it
        // cannot prove and is slashed (NoProof); 2 proofs per shard are short of k = 3, the
        // batch fails, its collateral is burned and its escrow refunded
        IShardMarketTypes.ShardJobParams memory p = _sparams(2, 2, 3, 3, 3);
        uint256 jobId = _spost(p);
        _sbids(jobId, 0, 3);
        _sdraw(jobId);
        _commitAll(jobId, ops[0], true);
        _commitAll(jobId, ops[1], false);
        _commitAll(jobId, ops[2], false);
        for (uint256 i; i < 3; ++i) {
            _revealAll(jobId, ops[i], i == 0);
        }
        shards.settleBatches(jobId, _allBatches(jobId));
        assertEq(uint256(_batchState(jobId, 0)), uint256(IShardMarketTypes.BatchState.Proving), "proving");
        _proveAll(jobId, ops[1]);
        _proveAll(jobId, ops[2]);
        vm.warp(block.timestamp + WINDOW + 1);
        _settleProven(jobId, 0);
        assertEq(uint256(_batchState(jobId, 0)), uint256(IShardMarketTypes.BatchState.Failed), "failed");
        assertEq(_stake(ops[0]), OPERATOR_STAKE - BATCH_COLLATERAL, "dissenter slashed");
        assertEq(shards.withdrawable(address(0)), BATCH_COLLATERAL, "burned, not given to the creator");
        assertEq(shards.withdrawable(creator), 2 * 3 * SHARD_PRICE, "batch escrow refunded");
        assertEq(shards.withdrawable(ops[1]), 0, "majority unpaid");
        shards.finalize(jobId);
        _assertShardConservation(_one(jobId), _everyone());
    }

    // ---- re-assignment ----

    function test_NonCommitter_BatchesReassignedKeepingIndex_AndFinish() public {
        IShardMarketTypes.ShardJobParams memory p = _sparams(12, 3, 3, 3, 6);
        uint256 jobId = _spost(p);
        _sbids(jobId, 0, 6);
        _sdraw(jobId);
        address idle = ops[0];
        uint32[] memory idleBatches = _held(jobId, idle, IShardMarketTypes.BatchState.Assigned);
        assertTrue(idleBatches.length > 0, "the idle operator holds batches");
        for (uint256 i = 1; i < 6; ++i) {
            _commitAll(jobId, ops[i], false);
        }
        for (uint256 i = 1; i < 6; ++i) {
            _revealAll(jobId, ops[i], false); // the batches without the idle operator
        }
        vm.warp(block.timestamp + WINDOW + 1);
        uint64 newDeadline = uint64(block.timestamp) + WINDOW;
        shards.settleBatches(jobId, idleBatches);
        for (uint256 j; j < idleBatches.length; ++j) {
            IShardMarketTypes.Batch memory bt = shards.getBatch(jobId, idleBatches[j]);
            assertEq(uint256(bt.state), uint256(IShardMarketTypes.BatchState.Assigned), "re-assigned");
            assertEq(bt.attempt, 2, "second attempt");
            assertEq(bt.deadline, newDeadline, "new commit deadline");
            assertEq(bt.committed, 0, "commits cleared");
            for (uint256 s; s < 3; ++s) {
                assertTrue(bt.operators[s] != idle, "the non-committer is not drawn again");
            }
        }
        assertEq(_stake(idle), OPERATOR_STAKE - idleBatches.length * BATCH_COLLATERAL, "slashed per batch");
        assertEq(_locked(idle), 0, "nothing left locked");
        assertEq(shards.withdrawable(address(0)), idleBatches.length * BATCH_COLLATERAL, "no-commit stake burned");

        for (uint256 i = 1; i < 6; ++i) {
            _commitAll(jobId, ops[i], false);
        }
        for (uint256 i = 1; i < 6; ++i) {
            _revealAll(jobId, ops[i], false);
        }
        shards.settleBatches(jobId, _allBatches(jobId));
        shards.finalize(jobId);
        IShardMarketTypes.ShardJob memory job = shards.getShardJob(jobId);
        assertEq(job.verifiedBatches, 4, "every batch verified");
        assertEq(shards.withdrawable(creator), 0, "all paid");
        for (uint256 i = 1; i < 6; ++i) {
            assertEq(_locked(ops[i]), 0, "unlocked");
        }
        _assertShardConservation(_one(jobId), _everyone());
    }

    function test_ThreeAttemptsWithoutCommits_BatchFailedAndRefunded() public {
        // n = k = 2 with 6 bidders; nobody ever commits: attempts 1, 2, 3, then Failed
        IShardMarketTypes.ShardJobParams memory p = _sparams(2, 2, 2, 2, 6);
        uint256 jobId = _spost(p);
        _sbids(jobId, 0, 6);
        _sdraw(jobId);
        uint32[] memory one = new uint32[](1);
        for (uint256 a = 1; a <= 3; ++a) {
            assertEq(shards.getBatch(jobId, 0).attempt, a, "attempt");
            vm.warp(block.timestamp + WINDOW + 1);
            shards.settleBatches(jobId, one);
        }
        assertEq(uint256(_batchState(jobId, 0)), uint256(IShardMarketTypes.BatchState.Failed), "failed");
        shards.finalize(jobId);
        assertEq(shards.withdrawable(creator), 2 * 2 * SHARD_PRICE, "refunded");
        assertEq(shards.withdrawable(address(0)), 6 * BATCH_COLLATERAL, "six no-commit slashes burned");
        _assertShardConservation(_one(jobId), _everyone());
    }

    function test_SettleRevealingBatchWithOneMissingReveal() public {
        // k = 2 of n = 3: the one that committed but never revealed is slashed (NoReveal)
        IShardMarketTypes.ShardJobParams memory p = _sparams(3, 3, 3, 2, 3);
        uint256 jobId = _spost(p);
        _sbids(jobId, 0, 3);
        _sdraw(jobId);
        for (uint256 i; i < 3; ++i) {
            _commitAll(jobId, ops[i], false);
        }
        _revealAll(jobId, ops[0], false);
        _revealAll(jobId, ops[1], false);
        uint32[] memory one = new uint32[](1);
        vm.expectRevert(
            abi.encodeWithSelector(
                IShardMarketTypes.ShardMarket__BatchNotDue.selector, jobId, 0, uint64(block.timestamp) + WINDOW
            )
        );
        shards.settleBatches(jobId, one);
        vm.warp(block.timestamp + WINDOW + 1);
        vm.expectEmit(true, true, false, true, address(shards));
        emit IShardMarketTypes.Slashed(jobId, 0, ops[2], BATCH_COLLATERAL, IShardMarketTypes.SlashReason.NoReveal);
        shards.settleBatches(jobId, one);
        assertEq(shards.getBatch(jobId, 0).root, _root(jobId, 0), "verified by two");
        assertEq(shards.withdrawable(ops[0]), 3 * SHARD_PRICE + BATCH_COLLATERAL / 2, "paid + half the slash");
        shards.finalize(jobId);
        assertEq(shards.withdrawable(creator), 3 * SHARD_PRICE, "the unrevealed slot refunded");
        _assertShardConservation(_one(jobId), _everyone());
    }

    // ---- locality ----

    function test_Locality_SlotZeroGoesToAPreferringBidder() public {
        IShardMarketTypes.ShardJobParams memory p = _sparams(8, 2, 3, 2, 4);
        uint256 jobId = _spost(p);
        for (uint256 i; i < 4; ++i) {
            vm.prank(ops[i]);
            shards.bid(jobId, _prefer1(i)); // bidder i holds the data of batch i only
        }
        assertEq(shards.preferOf(jobId, ops[2])[0], 4, "prefer stored");
        _sdraw(jobId);
        for (uint256 b; b < 4; ++b) {
            assertEq(shards.getBatch(jobId, uint32(b)).operators[0], ops[b], "slot 0 is the data holder");
        }
    }

    function test_Locality_UniformAmongSeveralPreferring() public {
        IShardMarketTypes.ShardJobParams memory p = _sparams(64, 1, 2, 1, 6);
        p.collateralPerBatch = 0.1 ether; // cap: 10 x 1 x 0.01 ether
        uint256 jobId = _spost(p);
        uint256[] memory w = new uint256[](1);
        w[0] = type(uint64).max; // every batch
        vm.prank(ops[0]);
        shards.bid(jobId, w);
        vm.prank(ops[1]);
        shards.bid(jobId, w);
        _sbids(jobId, 2, 4);
        _sdraw(jobId);
        uint256 first;
        for (uint256 b; b < 64; ++b) {
            address s0 = shards.getBatch(jobId, uint32(b)).operators[0];
            assertTrue(s0 == ops[0] || s0 == ops[1], "slot 0 among the preferring");
            if (s0 == ops[0]) ++first;
        }
        assertTrue(first > 16 && first < 48, "both preferring bidders get slot 0");
    }

    // ---- the draw ----

    function test_DrawCannotBeSteeredByTheDrawingTransaction() public {
        uint256 jobId = _spost(_sparams(30, 3, 3, 2, 5));
        _sbids(jobId, 0, 5);
        vm.warp(shards.getShardJob(jobId).bidDeadline + 1);
        shards.closeBidding(jobId);
        uint64 drawBlock = shards.getShardJob(jobId).drawBlock;
        assertEq(drawBlock, block.number + SHARD_DRAW_DELAY, "draw block");
        vm.expectRevert(abi.encodeWithSelector(IShardMarketTypes.ShardMarket__DrawNotReady.selector, jobId, drawBlock));
        shards.closeBidding(jobId);
        vm.roll(drawBlock + 1);
        vm.setBlockhash(drawBlock, keccak256("the draw block"));

        uint256 snap = vm.snapshotState();
        vm.prevrandao(bytes32(uint256(1)));
        vm.warp(block.timestamp + 5);
        shards.closeBidding(jobId);
        address[][] memory first = _assignments(jobId, 10);
        vm.revertToState(snap);
        vm.prevrandao(bytes32(uint256(999)));
        vm.warp(block.timestamp + 500);
        vm.roll(drawBlock + 7);
        vm.setBlockhash(drawBlock, keccak256("the draw block"));
        shards.closeBidding(jobId);
        address[][] memory second = _assignments(jobId, 10);
        bool differs;
        for (uint256 b; b < 10; ++b) {
            for (uint256 s; s < 3; ++s) {
                assertEq(first[b][s], second[b][s], "same assignment");
                if (first[b][s] != first[0][s]) differs = true;
            }
        }
        assertTrue(differs, "batches get different operators");
    }

    /// @dev A bidder that makes itself unable to lock (here: withdrawing below minStake after the
    /// seed is known) only takes itself off its batches: everyone else drawn stays drawn.
    function test_DrawSkippingABidderChangesNobodyElse() public {
        uint256 jobId = _spost(_sparams(30, 3, 3, 2, 5));
        uint256[] memory all = new uint256[](1);
        all[0] = (1 << 10) - 1;
        vm.prank(ops[0]);
        shards.bid(jobId, all); // prefers every batch: slot 0 whenever it can
        _sbids(jobId, 1, 4);
        vm.warp(shards.getShardJob(jobId).bidDeadline + 1);
        shards.closeBidding(jobId);
        vm.roll(shards.getShardJob(jobId).drawBlock + 1);

        uint256 snap = vm.snapshotState();
        shards.closeBidding(jobId);
        address[][] memory first = _assignments(jobId, 10);
        vm.revertToState(snap);
        vm.prank(ops[0]);
        registry.requestWithdrawal(OPERATOR_STAKE - 0.5 ether);
        shards.closeBidding(jobId);
        address[][] memory second = _assignments(jobId, 10);
        uint256 held;
        for (uint256 b; b < 10; ++b) {
            for (uint256 s; s < 3; ++s) {
                assertTrue(second[b][s] != ops[0], "the unable bidder is skipped");
                if (first[b][s] == ops[0]) {
                    ++held;
                    continue;
                }
                bool still;
                for (uint256 t; t < 3; ++t) {
                    if (second[b][t] == first[b][s]) still = true;
                }
                assertTrue(still, "every other drawn operator stays on its batch");
            }
        }
        assertEq(held, 10, "with stake it held slot 0 of every batch");
    }

    function _assignments(uint256 jobId, uint256 count) internal view returns (address[][] memory out) {
        out = new address[][](count);
        for (uint256 b; b < count; ++b) {
            out[b] = shards.getBatch(jobId, uint32(b)).operators;
        }
    }

    /// @dev 200 batches: the first drawing call assigns 128, batches of that chunk can already run
    /// and settle while the job is Drawing, the second call assigns the rest; finalize waits.
    function test_DrawInChunks_EarlyBatchesRunMeanwhile() public {
        IShardMarketTypes.ShardJobParams memory p = _sparams(400, 2, 2, 2, 3);
        p.collateralPerBatch = 0.01 ether;
        uint256 jobId = _spost(p);
        _sbids(jobId, 0, 3);
        vm.warp(shards.getShardJob(jobId).bidDeadline + 1);
        shards.closeBidding(jobId);
        vm.roll(shards.getShardJob(jobId).drawBlock + 1);
        shards.closeBidding(jobId);
        IShardMarketTypes.ShardJob memory job = shards.getShardJob(jobId);
        assertEq(uint256(job.state), uint256(IShardMarketTypes.ShardJobState.Drawing), "still drawing");
        assertEq(job.assignedBatches, 128, "one chunk");
        assertEq(uint256(_batchState(jobId, 128)), uint256(IShardMarketTypes.BatchState.None), "not yet drawn");
        for (uint256 i; i < 3; ++i) {
            _commitAll(jobId, ops[i], false);
        }
        for (uint256 i; i < 3; ++i) {
            _revealAll(jobId, ops[i], false);
        }
        uint32[] memory first = new uint32[](1);
        shards.settleBatches(jobId, first);
        assertEq(uint256(_batchState(jobId, 0)), uint256(IShardMarketTypes.BatchState.Verified), "settled meanwhile");
        vm.expectRevert(
            abi.encodeWithSelector(
                IShardMarketTypes.ShardMarket__WrongState.selector, jobId, IShardMarketTypes.ShardJobState.Drawing
            )
        );
        shards.finalize(jobId);
        vm.roll(block.number + 1000); // later chunks use the stored seed, not a block hash
        shards.closeBidding(jobId);
        job = shards.getShardJob(jobId);
        assertEq(uint256(job.state), uint256(IShardMarketTypes.ShardJobState.Running), "running");
        assertEq(job.assignedBatches, 200, "all drawn");
        assertEq(uint256(_batchState(jobId, 199)), uint256(IShardMarketTypes.BatchState.Assigned), "last drawn");
    }

    function test_DrawRearmsWhenTheBlockHashIsGone() public {
        uint256 jobId = _spost(_sparams(6, 3, 3, 2, 3));
        _sbids(jobId, 0, 3);
        vm.warp(shards.getShardJob(jobId).bidDeadline + 1);
        shards.closeBidding(jobId);
        uint64 drawBlock = shards.getShardJob(jobId).drawBlock;
        vm.roll(drawBlock + 300);
        vm.expectEmit(true, false, false, true, address(shards));
        emit IShardMarketTypes.DrawArmed(jobId, uint64(block.number) + SHARD_DRAW_DELAY);
        shards.closeBidding(jobId);
        IShardMarketTypes.ShardJob memory job = shards.getShardJob(jobId);
        assertEq(uint256(job.state), uint256(IShardMarketTypes.ShardJobState.Drawing), "still drawing");
        assertEq(job.drawBlock, block.number + SHARD_DRAW_DELAY, "re-armed");
        assertEq(job.assignedBatches, 0, "nothing assigned");
        vm.roll(job.drawBlock + 1);
        shards.closeBidding(jobId);
        assertEq(uint256(shards.getShardJob(jobId).state), uint256(IShardMarketTypes.ShardJobState.Running), "drawn");
    }

    function test_TooFewBidders_ExpiredWithFullRefund() public {
        IShardMarketTypes.ShardJobParams memory p = _sparams(6, 3, 3, 2, 4);
        uint256 jobId = _spost(p);
        _sbids(jobId, 0, 3);
        vm.expectRevert(
            abi.encodeWithSelector(
                IShardMarketTypes.ShardMarket__BiddingOpen.selector, jobId, shards.getShardJob(jobId).bidDeadline
            )
        );
        shards.closeBidding(jobId);
        vm.warp(block.timestamp + WINDOW + 1);
        vm.expectEmit(true, false, false, true, address(shards));
        emit IShardMarketTypes.ShardJobExpired(jobId, 3);
        shards.closeBidding(jobId);
        assertEq(uint256(shards.getShardJob(jobId).state), uint256(IShardMarketTypes.ShardJobState.Expired), "expired");
        assertEq(shards.withdrawable(creator), _escrowOf(p), "full refund");
        _assertShardConservation(_one(jobId), _everyone());
    }

    function test_CreatorParam_RefundsGoToItAndItCannotBid() public {
        address poster = address(0xB0B);
        vm.deal(poster, 10 ether);
        IShardMarketTypes.ShardJobParams memory p = _sparams(6, 3, 3, 2, 4);
        p.creator = ops[0];
        vm.expectEmit(true, true, false, true, address(shards));
        emit IShardMarketTypes.ShardJobPosted(1, ops[0], p, _escrowOf(p), uint64(block.timestamp) + WINDOW, 2);
        vm.prank(poster);
        uint256 jobId = shards.postShardedJob{value: _escrowOf(p)}(p);
        assertEq(shards.getShardJob(jobId).creator, ops[0], "creator is the one named");
        vm.expectRevert(abi.encodeWithSelector(IShardMarketTypes.ShardMarket__CreatorCannotBid.selector, jobId, ops[0]));
        vm.prank(ops[0]);
        shards.bid(jobId, _none());
        _sbids(jobId, 1, 3);
        vm.warp(block.timestamp + WINDOW + 1);
        shards.closeBidding(jobId);
        assertEq(uint256(shards.getShardJob(jobId).state), uint256(IShardMarketTypes.ShardJobState.Expired), "expired");
        assertEq(shards.withdrawable(ops[0]), _escrowOf(p), "the named creator is refunded");
        assertEq(shards.withdrawable(poster), 0, "the poster is not");
    }

    function test_BidderWithoutStakeForMoreBatches_Skipped_BatchFailsWhenTooFew() public {
        // three bidders with free stake for one batch each: batch 0 takes all three, batch 1
        // cannot get n = 3 and fails at the draw, its escrow refunded
        IShardMarketTypes.ShardJobParams memory p = _sparams(4, 2, 3, 2, 3);
        p.pricePerShard = 0.1 ether;
        p.collateralPerBatch = 1 ether;
        uint256 jobId = _spost(p);
        for (uint256 i; i < 3; ++i) {
            vm.prank(ops[i]);
            registry.requestWithdrawal(OPERATOR_STAKE - 1.5 ether);
        }
        _sbids(jobId, 0, 3);
        vm.warp(block.timestamp + WINDOW + 1);
        shards.closeBidding(jobId);
        vm.roll(block.number + SHARD_DRAW_DELAY + 1);
        vm.expectEmit(true, false, false, true, address(shards));
        emit IShardMarketTypes.BatchFailed(jobId, 1, IShardMarketTypes.BatchFailReason.NoOperators);
        shards.closeBidding(jobId);
        assertEq(uint256(_batchState(jobId, 0)), uint256(IShardMarketTypes.BatchState.Assigned), "first assigned");
        assertEq(uint256(_batchState(jobId, 1)), uint256(IShardMarketTypes.BatchState.Failed), "second failed");
        assertEq(shards.withdrawable(creator), 2 * 3 * 0.1 ether, "failed batch refunded at once");
        for (uint256 i; i < 3; ++i) {
            assertEq(_locked(ops[i]), 1 ether, "one batch locked");
        }
        _assertShardConservation(_one(jobId), _everyone());
    }

    // ---- bad input ----

    function test_RevertWhen_BadParams() public {
        IShardMarketTypes.ShardJobParams memory p = _sparams(10, 3, 3, 2, 4);
        _expectPostRevert(p, 0, "");

        p = _sparams(0, 3, 3, 2, 4);
        _expectPostRevert(p, 1, abi.encodeWithSelector(IShardMarketTypes.ShardMarket__BadShardCount.selector, 0));
        p = _sparams(65537, 100, 3, 2, 4);
        _expectPostRevert(p, 1, abi.encodeWithSelector(IShardMarketTypes.ShardMarket__BadShardCount.selector, 65537));
        p = _sparams(10, 0, 3, 2, 4);
        _expectPostRevert(p, 1, abi.encodeWithSelector(IShardMarketTypes.ShardMarket__BadBatchSize.selector, 0, 0));
        p = _sparams(2000, 1, 3, 2, 4);
        _expectPostRevert(p, 1, abi.encodeWithSelector(IShardMarketTypes.ShardMarket__BadBatchSize.selector, 1, 2000));
        p = _sparams(4096, 1025, 3, 2, 4);
        _expectPostRevert(p, 1, abi.encodeWithSelector(IShardMarketTypes.ShardMarket__BadBatchSize.selector, 1025, 4));
        p = _sparams(4096, 1024, 3, 2, 4);
        _expectPostRevert(p, 0, "");
        p = _sparams(10, 3, 9, 2, 9);
        _expectPostRevert(p, 1, abi.encodeWithSelector(IShardMarketTypes.ShardMarket__BadConcurrency.selector, 9));
        p = _sparams(10, 3, 0, 0, 4);
        _expectPostRevert(p, 1, abi.encodeWithSelector(IShardMarketTypes.ShardMarket__BadConcurrency.selector, 0));
        p = _sparams(10, 3, 3, 4, 4);
        _expectPostRevert(p, 1, abi.encodeWithSelector(IShardMarketTypes.ShardMarket__BadConfidence.selector, 4, 3));
        p = _sparams(10, 3, 3, 0, 4);
        _expectPostRevert(p, 1, abi.encodeWithSelector(IShardMarketTypes.ShardMarket__BadConfidence.selector, 0, 3));
        p = _sparams(10, 3, 3, 2, 2);
        _expectPostRevert(p, 1, abi.encodeWithSelector(IShardMarketTypes.ShardMarket__BadMinBids.selector, 2, 3));
        p = _sparams(10, 3, 3, 2, 65);
        _expectPostRevert(p, 1, abi.encodeWithSelector(IShardMarketTypes.ShardMarket__BadMinBids.selector, 65, 3));
        p = _sparams(10, 3, 3, 2, 4);
        p.pricePerShard = 0;
        _expectPostRevert(p, 1, abi.encodeWithSelector(IShardMarketTypes.ShardMarket__ZeroPrice.selector));
        p = _sparams(10, 3, 3, 2, 4);
        p.collateralPerBatch = 0.3 ether + 1; // cap: 10 x 3 x 0.01 ether
        _expectPostRevert(
            p,
            1,
            abi.encodeWithSelector(IShardMarketTypes.ShardMarket__CollateralTooHigh.selector, 0.3 ether + 1, 0.3 ether)
        );
        p = _sparams(10, 3, 3, 2, 4);
        p.execWindow = MIN_EXEC_WINDOW - 1;
        _expectPostRevert(
            p,
            1,
            abi.encodeWithSelector(
                IShardMarketTypes.ShardMarket__WindowTooShort.selector,
                WINDOW,
                MIN_EXEC_WINDOW - 1,
                WINDOW,
                MIN_BID_WINDOW,
                MIN_EXEC_WINDOW,
                MIN_REVEAL_WINDOW
            )
        );
        p = _sparams(10, 3, 3, 2, 4);
        p.specCid = "";
        _expectPostRevert(p, 1, abi.encodeWithSelector(IShardMarketTypes.ShardMarket__EmptySpec.selector));
        p = _sparams(10, 3, 3, 2, 4);
        p.manifestCid = "";
        _expectPostRevert(p, 1, abi.encodeWithSelector(IShardMarketTypes.ShardMarket__EmptyManifest.selector));
        p = _sparams(10, 3, 3, 2, 4);
        vm.prank(creator);
        vm.expectRevert(
            abi.encodeWithSelector(IShardMarketTypes.ShardMarket__WrongEscrow.selector, 1, 10 * 3 * SHARD_PRICE)
        );
        shards.postShardedJob{value: 1}(p);
    }

    /// @dev mode 0: posts successfully; 1: expects `err`.
    function _expectPostRevert(IShardMarketTypes.ShardJobParams memory p, uint256 mode, bytes memory err) internal {
        // the parameters are checked before the escrow
        uint256 escrow = mode == 1 ? 0 : uint256(p.shardCount) * p.concurrency * p.pricePerShard;
        vm.prank(creator);
        if (mode == 1) vm.expectRevert(err);
        shards.postShardedJob{value: escrow}(p);
    }

    function test_RevertWhen_BadBids() public {
        uint256 jobId = _spost(_sparams(10, 3, 3, 2, 4));
        vm.prank(creator);
        vm.expectRevert(
            abi.encodeWithSelector(IShardMarketTypes.ShardMarket__CreatorCannotBid.selector, jobId, creator)
        );
        shards.bid(jobId, _none());

        address stranger = address(0xBEEF);
        vm.prank(stranger);
        vm.expectRevert(abi.encodeWithSelector(IShardMarketTypes.ShardMarket__NotRegistered.selector, stranger));
        shards.bid(jobId, _none());

        uint256[] memory tooLong = new uint256[](2);
        vm.prank(ops[0]);
        vm.expectRevert(abi.encodeWithSelector(IShardMarketTypes.ShardMarket__BadPrefer.selector, 2, 1));
        shards.bid(jobId, tooLong);

        vm.prank(ops[0]);
        shards.bid(jobId, _none());
        vm.prank(ops[0]);
        vm.expectRevert(abi.encodeWithSelector(IShardMarketTypes.ShardMarket__AlreadyBid.selector, jobId, ops[0]));
        shards.bid(jobId, _none());

        vm.prank(ops[1]);
        registry.requestWithdrawal(OPERATOR_STAKE - 0.5 ether);
        vm.prank(ops[1]);
        vm.expectRevert(
            abi.encodeWithSelector(
                IShardMarketTypes.ShardMarket__InsufficientStake.selector, ops[1], 0.5 ether, MIN_STAKE
            )
        );
        shards.bid(jobId, _none());

        vm.warp(block.timestamp + WINDOW + 1);
        uint64 bidDeadline = shards.getShardJob(jobId).bidDeadline;
        vm.prank(ops[2]);
        vm.expectRevert(abi.encodeWithSelector(IShardMarketTypes.ShardMarket__BiddingOver.selector, jobId, bidDeadline));
        shards.bid(jobId, _none());

        vm.expectRevert(abi.encodeWithSelector(IShardMarketTypes.ShardMarket__UnknownJob.selector, 99));
        shards.bid(99, _none());
    }

    function test_RevertWhen_TooManyBidders() public {
        uint256 jobId = _spost(_sparams(10, 3, 3, 2, 4));
        for (uint256 i; i < 64; ++i) {
            address op = address(uint160(0x9000 + i));
            vm.deal(op, 2 ether);
            vm.prank(op);
            registry.register{value: 1 ether}("p", _caps());
            vm.prank(op);
            shards.bid(jobId, _none());
        }
        vm.prank(ops[0]);
        vm.expectRevert(abi.encodeWithSelector(IShardMarketTypes.ShardMarket__TooManyBidders.selector, jobId));
        shards.bid(jobId, _none());
    }

    function test_RevertWhen_BadCommitsAndReveals() public {
        uint256 jobId = _spost(_sparams(10, 3, 3, 2, 4));
        _sbids(jobId, 0, 4);
        _sdraw(jobId);
        // someone not on batch b
        IShardMarketTypes.Batch memory bt = shards.getBatch(jobId, 0);
        address outsider;
        for (uint256 i; i < 4 && outsider == address(0); ++i) {
            if (ops[i] != bt.operators[0] && ops[i] != bt.operators[1] && ops[i] != bt.operators[2]) {
                outsider = ops[i];
            }
        }
        uint32[] memory one = new uint32[](1);
        bytes32[] memory c = new bytes32[](1);
        c[0] = keccak256("c");
        vm.prank(outsider);
        vm.expectRevert(abi.encodeWithSelector(IShardMarketTypes.ShardMarket__NotOnBatch.selector, jobId, 0, outsider));
        shards.commitBatches(jobId, one, c);
        vm.prank(ops[5]);
        vm.expectRevert(abi.encodeWithSelector(IShardMarketTypes.ShardMarket__NotBidder.selector, jobId, ops[5]));
        shards.commitBatches(jobId, one, c);
        vm.prank(bt.operators[0]);
        vm.expectRevert(abi.encodeWithSelector(IShardMarketTypes.ShardMarket__LengthMismatch.selector));
        shards.commitBatches(jobId, one, new bytes32[](2));
        vm.prank(bt.operators[0]);
        vm.expectRevert(abi.encodeWithSelector(IShardMarketTypes.ShardMarket__ZeroCommitment.selector));
        shards.commitBatches(jobId, one, new bytes32[](1));
        vm.prank(bt.operators[0]);
        shards.commitBatches(jobId, one, c);
        vm.prank(bt.operators[0]);
        vm.expectRevert(
            abi.encodeWithSelector(IShardMarketTypes.ShardMarket__AlreadyCommitted.selector, jobId, 0, bt.operators[0])
        );
        shards.commitBatches(jobId, one, c);
        // reveal before the batch is Revealing
        bytes32[] memory r = new bytes32[](1);
        r[0] = _root(jobId, 0);
        vm.prank(bt.operators[0]);
        vm.expectRevert(
            abi.encodeWithSelector(
                IShardMarketTypes.ShardMarket__WrongBatchState.selector, jobId, 0, IShardMarketTypes.BatchState.Assigned
            )
        );
        shards.revealBatches(jobId, one, r, r, new bytes[](1));
        // the other two commit: Revealing; a reveal that does not match its commitment
        for (uint256 s = 1; s < 3; ++s) {
            vm.prank(bt.operators[s]);
            shards.commitBatches(jobId, one, c);
        }
        bytes32 computed = shards.commitmentOf(jobId, 0, bt.operators[0], r[0], r[0]);
        vm.prank(bt.operators[0]);
        vm.expectRevert(
            abi.encodeWithSelector(
                IShardMarketTypes.ShardMarket__CommitmentMismatch.selector, jobId, 0, bt.operators[0], c[0], computed
            )
        );
        shards.revealBatches(jobId, one, r, r, new bytes[](1));
        vm.warp(block.timestamp + WINDOW + 1);
        uint64 deadline = shards.getBatch(jobId, 0).deadline;
        vm.prank(bt.operators[0]);
        vm.expectRevert(
            abi.encodeWithSelector(IShardMarketTypes.ShardMarket__DeadlinePassed.selector, jobId, 0, deadline)
        );
        shards.revealBatches(jobId, one, r, r, new bytes[](1));
        vm.expectRevert(abi.encodeWithSelector(IShardMarketTypes.ShardMarket__NotAllFinal.selector, jobId, 0, 4));
        shards.finalize(jobId);
    }

    function test_RevertWhen_SlashedStakeFromAnyoneButTheRegistry() public {
        vm.deal(address(this), 1 ether);
        (bool ok, bytes memory ret) = address(shards).call{value: 1}("");
        assertFalse(ok, "rejected");
        assertEq(
            keccak256(ret),
            keccak256(abi.encodeWithSelector(IShardMarketTypes.ShardMarket__OnlyRegistry.selector, address(this))),
            "OnlyRegistry"
        );
    }

    // ---- Merkle rule ----

    /// @dev Five leaves `keccak256(abi.encode(uint32 i, keccak256("result-i")))`; the root below
    /// was computed with `cast keccak` / `cast concat-hex`: ((l0 l1)(l2 l3)) l4, l4 carried up twice.
    function test_MerkleVector_FiveLeaves() public view {
        bytes32 root = 0xa8b0c7f3e907127163d022dcf2c559eb716a1f9823dea7f9fc44bdea3fd756d5;
        bytes32[] memory leaves = new bytes32[](5);
        bytes32[] memory results = new bytes32[](5);
        for (uint256 i; i < 5; ++i) {
            results[i] = keccak256(abi.encodePacked("result-", vm.toString(i)));
            leaves[i] = shards.leafOf(uint32(i), results[i]);
        }
        assertEq(leaves[4], 0x02d5f1265476bb64a2a319dc7fe730e10c3d704e41882b356f6cc0e7a709bd21, "leaf 4");
        assertEq(shards.batchRoot(leaves), root, "batch root");
        bytes32 h01 = 0x08c549fd074a1c4c6cb2d7665f70b837b7569be4feb5392155b8d601328158d6;
        bytes32 h0123 = 0x6d59d867ec2aeb89165a359301c4ca889656e1f768c1337649bbd36f2d8d83d3;

        bytes32[] memory proof = new bytes32[](3);
        (proof[0], proof[1], proof[2]) = (leaves[3], h01, leaves[4]);
        assertTrue(shards.verifyLeaf(root, 2, results[2], proof, 2, 5), "leaf 2");
        assertFalse(shards.verifyLeaf(root, 2, results[3], proof, 2, 5), "wrong result");
        assertFalse(shards.verifyLeaf(root, 3, results[2], proof, 2, 5), "wrong shard index");

        bytes32[] memory last = new bytes32[](1);
        last[0] = h0123;
        assertTrue(shards.verifyLeaf(root, 4, results[4], last, 4, 5), "odd last leaf: one sibling");
        assertFalse(shards.verifyLeaf(root, 4, results[4], last, 4, 6), "different leaf count");
        assertFalse(shards.verifyLeaf(root, 4, results[4], last, 5, 5), "position out of range");

        bytes32[] memory single = new bytes32[](1);
        single[0] = leaves[0];
        assertEq(shards.batchRoot(single), leaves[0], "one leaf is its own root");
        assertTrue(shards.verifyLeaf(leaves[0], 0, results[0], new bytes32[](0), 0, 1), "one-leaf batch");
    }

    function testFuzz_VerifyLeafMatchesBatchRoot(uint256 seed, uint8 count, uint8 pos) public view {
        uint256 n = bound(count, 1, 40);
        uint256 at = bound(pos, 0, n - 1);
        bytes32[] memory leaves = new bytes32[](n);
        for (uint256 i; i < n; ++i) {
            leaves[i] = shards.leafOf(uint32(100 + i), keccak256(abi.encode(seed, i)));
        }
        (bytes32 root, bytes32[] memory proof) = _proofOf(leaves, at);
        assertEq(shards.batchRoot(leaves), root, "same root");
        bytes32 result = keccak256(abi.encode(seed, at));
        assertTrue(shards.verifyLeaf(root, uint32(100 + at), result, proof, at, n), "proof verifies");
        if (n > 1) assertFalse(shards.verifyLeaf(root, uint32(100 + at), ~result, proof, at, n), "other result");
    }

    /// @dev The root and the proof of leaf `at`, built level by level as an operator does.
    function _proofOf(bytes32[] memory level, uint256 at) internal pure returns (bytes32, bytes32[] memory proof) {
        proof = new bytes32[](8);
        uint256 used;
        uint256 len = level.length;
        while (len > 1) {
            if (at & 1 == 1) proof[used++] = level[at - 1];
            else if (at + 1 < len) proof[used++] = level[at + 1];
            uint256 next = (len + 1) / 2;
            bytes32[] memory up = new bytes32[](next);
            for (uint256 i; i < next; ++i) {
                up[i] = 2 * i + 1 < len ? keccak256(abi.encodePacked(level[2 * i], level[2 * i + 1])) : level[2 * i];
            }
            level = up;
            len = next;
            at >>= 1;
        }
        assembly ("memory-safe") {
            mstore(proof, used)
        }
        return (level[0], proof);
    }

    // ---- registry: the second market ----

    function test_Registry_ShardMarketSetOnceByTheDeployer() public {
        assertEq(registry.shardMarket(), address(shards), "set");
        vm.expectRevert(
            abi.encodeWithSelector(IOperatorRegistry.OperatorRegistry__MarketAlreadySet.selector, address(shards))
        );
        registry.setShardMarket(address(1));
        OperatorRegistry r = new OperatorRegistry(UNBONDING, MIN_STAKE);
        vm.prank(ops[0]);
        vm.expectRevert(abi.encodeWithSelector(IOperatorRegistry.OperatorRegistry__OnlyDeployer.selector, ops[0]));
        r.setShardMarket(address(1));
        vm.expectRevert(abi.encodeWithSelector(IOperatorRegistry.OperatorRegistry__ZeroAddress.selector));
        r.setShardMarket(address(0));
        vm.expectEmit(true, false, false, true, address(r));
        emit IOperatorRegistry.ShardMarketSet(address(1));
        r.setShardMarket(address(1));
    }

    function test_Registry_BothMarketsMayLockOthersMayNot() public {
        uint256 rid = shards.registryJobId(1);
        vm.prank(address(shards));
        assertTrue(registry.lock(ops[0], rid, 1 ether), "shard market locks");
        vm.prank(address(market));
        assertTrue(registry.lock(ops[0], 1, 1 ether), "job market locks");
        assertEq(_locked(ops[0]), 2 ether, "both locks held");
        vm.prank(address(shards));
        registry.unlock(ops[0], rid, 1 ether);
        assertEq(_locked(ops[0]), 1 ether, "job market's lock intact");
        vm.prank(ops[1]);
        vm.expectRevert(abi.encodeWithSelector(IOperatorRegistry.OperatorRegistry__OnlyMarket.selector, ops[1]));
        registry.lock(ops[0], 1, 1);
        assertEq(shards.registryJobId(1), (1 << 255) | 1, "bit 255 set");
    }
}
