// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ShardFixture} from "./utils/ShardFixture.sol";
import {IShardMarketTypes} from "../src/interfaces/IShardMarket.sol";
import {Vm} from "./utils/Vm.sol";

/// @notice Per-shard settlement of a batch whose roots disagree (docs/sharding.md, "Disputes"):
/// the batch goes Proving, its revealers prove their leaves, and `settleProven` accepts every
/// shard that `confidence` proofs agree on; only shards without such agreement fail.
contract ShardDisputeTest is ShardFixture {
    /// @dev One batch of 8 shards, n = 3, k = 2, three bidders (all three on the batch).
    function _oneBatchJob() internal returns (uint256 jobId, IShardMarketTypes.ShardJobParams memory p) {
        p = _sparams(8, 8, 3, 2, 3);
        jobId = _spost(p);
        _sbids(jobId, 0, 3);
        _sdraw(jobId);
    }

    /// @dev ops[0..count) commit and reveal their (possibly wrong, always provable) roots.
    function _commitReveal(uint256 jobId, uint256 count) internal {
        for (uint256 i; i < count; ++i) {
            _commitAll(jobId, ops[i], false);
        }
        for (uint256 i; i < count; ++i) {
            _revealAll(jobId, ops[i], false);
        }
    }

    function _honest(uint256 first, uint256 count) internal pure returns (bytes32[] memory r) {
        r = new bytes32[](count);
        for (uint256 i; i < count; ++i) {
            r[i] = _result(first + i);
        }
    }

    function _slotOf(uint256 jobId, uint256 b, address op) internal view returns (uint8) {
        address[] memory o = shards.getBatch(jobId, uint32(b)).operators;
        for (uint256 s; s < o.length; ++s) {
            if (o[s] == op) return uint8(s);
        }
        revert("not on the batch");
    }

    // ---- the attack the design answers ----

    /// @dev Two operators each wrong on a different shard: no two roots agree, so the batch would
    /// have failed whole. Per shard, 2 of 3 agree everywhere: all 8 shards accepted, both wrong
    /// operators slashed once (and not paid: a slashed operator is paid for no shard), the honest
    /// one paid 8 x price plus both collaterals.
    function test_Attack_OneWrongShardDoesNotFailTheBatch() public {
        (uint256 jobId,) = _oneBatchJob();
        _setWrong(ops[1], 3);
        _setWrong(ops[2], 5);
        _commitReveal(jobId, 3);
        vm.expectEmit(true, false, false, true, address(shards));
        emit IShardMarketTypes.BatchProving(jobId, 0, uint64(block.timestamp) + WINDOW);
        shards.settleBatches(jobId, _allBatches(jobId));
        IShardMarketTypes.Batch memory bt = shards.getBatch(jobId, 0);
        assertEq(uint256(bt.state), uint256(IShardMarketTypes.BatchState.Proving), "proving");
        assertEq(bt.deadline, block.timestamp + WINDOW, "proof deadline");
        assertEq(bt.revealed, 7, "all revealed");
        assertEq(bt.proven, 0, "nobody proved yet");
        assertTrue(
            bt.hashes[0] != bt.hashes[1] && bt.hashes[1] != bt.hashes[2] && bt.hashes[0] != bt.hashes[2],
            "no two roots agree"
        );
        for (uint256 i; i < 3; ++i) {
            assertEq(_locked(ops[i]), BATCH_COLLATERAL, "still locked while Proving");
        }

        for (uint256 i; i < 3; ++i) {
            vm.expectEmit(true, true, false, true, address(shards));
            emit IShardMarketTypes.LeavesProven(jobId, 0, ops[i], _shardResults(jobId, ops[i], 0));
            _proveAll(jobId, ops[i]);
        }
        assertEq(shards.getBatch(jobId, 0).proven, 7, "all proved");

        // every revealer proved: settleable before the deadline; slashes come in slot order
        (address a, address b) =
            _slotOf(jobId, 0, ops[1]) < _slotOf(jobId, 0, ops[2]) ? (ops[1], ops[2]) : (ops[2], ops[1]);
        vm.expectEmit(true, true, false, true, address(shards));
        emit IShardMarketTypes.Slashed(jobId, 0, a, BATCH_COLLATERAL, IShardMarketTypes.SlashReason.WrongResult);
        vm.expectEmit(true, true, false, true, address(shards));
        emit IShardMarketTypes.Slashed(jobId, 0, b, BATCH_COLLATERAL, IShardMarketTypes.SlashReason.WrongResult);
        vm.expectEmit(true, false, false, true, address(shards));
        emit IShardMarketTypes.BatchSettledPerShard(jobId, 0, _honest(0, 8), 8);
        _settleProven(jobId, 0);

        bt = shards.getBatch(jobId, 0);
        assertEq(uint256(bt.state), uint256(IShardMarketTypes.BatchState.SettledPerShard), "settled per shard");
        assertEq(bt.root, bytes32(0), "no single accepted root");
        assertEq(shards.getShardJob(jobId).verifiedBatches, 1, "counted verified");
        assertEq(shards.withdrawable(ops[0]), 8 * SHARD_PRICE + 2 * BATCH_COLLATERAL, "honest: 8 shards + both slashes");
        for (uint256 i = 1; i < 3; ++i) {
            assertEq(shards.withdrawable(ops[i]), 0, "a slashed operator is not paid");
            assertEq(_stake(ops[i]), OPERATOR_STAKE - BATCH_COLLATERAL, "slashed once");
        }
        for (uint256 i; i < 3; ++i) {
            assertEq(_locked(ops[i]), 0, "nothing left locked");
        }
        assertEq(_stake(ops[0]), OPERATOR_STAKE, "honest not slashed");
        assertEq(shards.withdrawable(address(0)), 0, "nothing burned");
        _assertShardConservation(_one(jobId), _everyone());

        vm.expectEmit(true, false, false, true, address(shards));
        emit IShardMarketTypes.ShardJobDone(jobId, 1, 0);
        shards.finalize(jobId);
        assertEq(shards.withdrawable(creator), 16 * SHARD_PRICE, "the two unpaid slots refunded");
        _assertShardConservation(_one(jobId), _everyone());
    }

    /// @dev All three disagree on shard 2 (each its own result): that shard fails, the other 7
    /// are accepted 3 of 3; nobody is slashed (no result of shard 2 is accepted or held by a
    /// majority), everybody is paid 7 shards, and shard 2's escrow is refunded at finalize.
    function test_ShardWithoutQuorumFailsAlone() public {
        (uint256 jobId,) = _oneBatchJob();
        _setWrong(ops[0], 2);
        _setWrong(ops[1], 2);
        _commitReveal(jobId, 3);
        shards.settleBatches(jobId, _allBatches(jobId));
        for (uint256 i; i < 3; ++i) {
            _proveAll(jobId, ops[i]);
        }
        bytes32[] memory accepted = _honest(0, 8);
        accepted[2] = bytes32(0);
        vm.expectEmit(true, false, false, true, address(shards));
        emit IShardMarketTypes.BatchSettledPerShard(jobId, 0, accepted, 7);
        _settleProven(jobId, 0);
        assertEq(
            uint256(_batchState(jobId, 0)), uint256(IShardMarketTypes.BatchState.SettledPerShard), "settled per shard"
        );
        for (uint256 i; i < 3; ++i) {
            assertEq(shards.withdrawable(ops[i]), 7 * SHARD_PRICE, "paid its 7 accepted shards");
            assertEq(_stake(ops[i]), OPERATOR_STAKE, "nobody slashed");
            assertEq(_locked(ops[i]), 0, "unlocked");
        }
        assertEq(shards.withdrawable(creator), 0, "refunds wait for finalize");
        assertEq(shards.getShardJob(jobId).escrow, 3 * SHARD_PRICE, "shard 2's escrow held");
        shards.finalize(jobId);
        assertEq(shards.withdrawable(creator), 3 * SHARD_PRICE, "shard 2 refunded, not re-run");
        assertEq(shards.getShardJob(jobId).escrow, 0, "escrow released");
        _assertShardConservation(_one(jobId), _everyone());
    }

    /// @dev n = 2, k = 2, a 1-1 split on one shard: that shard fails, the other is accepted by
    /// both; with no majority nobody can tell who was right and nobody is slashed.
    function test_NoQuorum_SplitShardFailsNobodySlashedWithoutMajority() public {
        IShardMarketTypes.ShardJobParams memory p = _sparams(4, 2, 2, 2, 2);
        uint256 jobId = _spost(p);
        _sbids(jobId, 0, 2);
        _sdraw(jobId);
        _setWrong(ops[0], 1); // batch 0 only
        _commitReveal(jobId, 2);
        shards.settleBatches(jobId, _allBatches(jobId));
        assertEq(uint256(_batchState(jobId, 0)), uint256(IShardMarketTypes.BatchState.Proving), "batch 0 proving");
        assertEq(uint256(_batchState(jobId, 1)), uint256(IShardMarketTypes.BatchState.Verified), "batch 1 verified");
        _proveAll(jobId, ops[0]);
        _proveAll(jobId, ops[1]);
        _settleProven(jobId, 0);
        shards.finalize(jobId);
        for (uint256 i; i < 2; ++i) {
            assertEq(_stake(ops[i]), OPERATOR_STAKE, "no way to tell who was right");
            assertEq(_locked(ops[i]), 0, "unlocked");
            assertEq(shards.withdrawable(ops[i]), 3 * SHARD_PRICE, "shard 0 and batch 1");
        }
        assertEq(shards.withdrawable(creator), 2 * SHARD_PRICE, "shard 1 refunded");
        _assertShardConservation(_one(jobId), _everyone());
    }

    /// @dev n = k = 3, one dissenter wrong on shard 1 of 2: shard 0 is accepted 3 of 3; shard 1
    /// has 2 of 3, short of k, so it fails, but a strict majority of the slots holds it, so the
    /// dissenter is slashed (as a batch-level dissent against a majority is) and its collateral
    /// goes to the two paid provers.
    function test_DissentAgainstAMajorityIsSlashedPerShard() public {
        IShardMarketTypes.ShardJobParams memory p = _sparams(2, 2, 3, 3, 3);
        uint256 jobId = _spost(p);
        _sbids(jobId, 0, 3);
        _sdraw(jobId);
        _setWrong(ops[0], 1);
        _commitReveal(jobId, 3);
        shards.settleBatches(jobId, _allBatches(jobId));
        for (uint256 i; i < 3; ++i) {
            _proveAll(jobId, ops[i]);
        }
        bytes32[] memory accepted = new bytes32[](2);
        accepted[0] = _result(0);
        vm.expectEmit(true, false, false, true, address(shards));
        emit IShardMarketTypes.BatchSettledPerShard(jobId, 0, accepted, 1);
        _settleProven(jobId, 0);
        assertEq(_stake(ops[0]), OPERATOR_STAKE - BATCH_COLLATERAL, "dissenter slashed");
        for (uint256 i = 1; i < 3; ++i) {
            assertEq(shards.withdrawable(ops[i]), SHARD_PRICE + BATCH_COLLATERAL / 2, "one shard + half the slash");
        }
        assertEq(shards.withdrawable(ops[0]), 0, "dissenter unpaid");
        shards.finalize(jobId);
        assertEq(shards.withdrawable(creator), 4 * SHARD_PRICE, "shard 1 and the dissenter's slot refunded");
        _assertShardConservation(_one(jobId), _everyone());
    }

    // ---- who must prove ----

    /// @dev ops[2] reveals but never proves: slashed NoProof after the deadline, its collateral
    /// shared by the two provers. Its missing list leaves shard 1 at 1 against 1 (ops[1] is wrong
    /// there), so that shard fails without a judgment; the other 7 are accepted 2 of 2.
    function test_UnprovenRevealerIsSlashed() public {
        (uint256 jobId,) = _oneBatchJob();
        _setWrong(ops[1], 1);
        _setWrong(ops[2], 4);
        _commitReveal(jobId, 3);
        shards.settleBatches(jobId, _allBatches(jobId));
        _proveAll(jobId, ops[0]);
        _proveAll(jobId, ops[1]);
        uint64 deadline = shards.getBatch(jobId, 0).deadline;
        bytes32[][] memory lists = _provenLists(jobId, 0);
        vm.expectRevert(abi.encodeWithSelector(IShardMarketTypes.ShardMarket__BatchNotDue.selector, jobId, 0, deadline));
        shards.settleProven(jobId, 0, lists);
        vm.warp(deadline + 1);
        bytes32[] memory r = _shardResults(jobId, ops[2], 0);
        bytes32[][] memory late = new bytes32[][](1);
        late[0] = r;
        uint32[] memory one = new uint32[](1);
        vm.prank(ops[2]);
        vm.expectRevert(
            abi.encodeWithSelector(IShardMarketTypes.ShardMarket__DeadlinePassed.selector, jobId, 0, deadline)
        );
        shards.proveBatches(jobId, one, late);

        vm.expectEmit(true, true, false, true, address(shards));
        emit IShardMarketTypes.Slashed(jobId, 0, ops[2], BATCH_COLLATERAL, IShardMarketTypes.SlashReason.NoProof);
        shards.settleProven(jobId, 0, lists);
        assertEq(_stake(ops[2]), OPERATOR_STAKE - BATCH_COLLATERAL, "unproven revealer slashed");
        assertEq(_locked(ops[2]), 0, "nothing left locked");
        for (uint256 i; i < 2; ++i) {
            assertEq(shards.withdrawable(ops[i]), 7 * SHARD_PRICE + BATCH_COLLATERAL / 2, "7 shards + half the slash");
            assertEq(_stake(ops[i]), OPERATOR_STAKE, "provers not slashed");
        }
        shards.finalize(jobId);
        assertEq(shards.withdrawable(creator), 24 * SHARD_PRICE - 14 * SHARD_PRICE, "unpaid escrow refunded");
        _assertShardConservation(_one(jobId), _everyone());
    }

    /// @dev A liar that revealed a root of no leaves cannot prove it (NoProof); a committer that
    /// never revealed is slashed NoReveal when the Proving batch settles; with one prover left no
    /// shard reaches k = 2: the batch fails, its escrow refunded at once, the slashes burned.
    function test_UnprovableRootAndMissingRevealSlashed_NoShardAccepted() public {
        (uint256 jobId,) = _oneBatchJob();
        _commitAll(jobId, ops[0], false);
        _commitAll(jobId, ops[1], true); // a root of nothing
        _commitAll(jobId, ops[2], false);
        _revealAll(jobId, ops[0], false);
        _revealAll(jobId, ops[1], true);
        vm.warp(block.timestamp + WINDOW + 1);
        shards.settleBatches(jobId, _allBatches(jobId)); // 2 reveals >= k, roots differ
        assertEq(uint256(_batchState(jobId, 0)), uint256(IShardMarketTypes.BatchState.Proving), "proving");
        bytes32[][] memory honest = new bytes32[][](1);
        honest[0] = _honest(0, 8);
        bytes32 revealed = shards.getBatch(jobId, 0).hashes[_slotOf(jobId, 0, ops[1])];
        bytes32 honestRoot = _root(jobId, 0);
        uint32[] memory one = new uint32[](1);
        vm.prank(ops[1]);
        vm.expectRevert(
            abi.encodeWithSelector(
                IShardMarketTypes.ShardMarket__RootMismatch.selector, jobId, 0, ops[1], revealed, honestRoot
            )
        );
        shards.proveBatches(jobId, one, honest);
        vm.prank(ops[2]);
        vm.expectRevert(abi.encodeWithSelector(IShardMarketTypes.ShardMarket__NotRevealed.selector, jobId, 0, ops[2]));
        shards.proveBatches(jobId, one, honest);
        _proveAll(jobId, ops[0]);
        vm.warp(block.timestamp + WINDOW + 1);

        vm.expectEmit(true, false, false, true, address(shards));
        emit IShardMarketTypes.BatchSettledPerShard(jobId, 0, new bytes32[](8), 0);
        vm.expectEmit(true, false, false, true, address(shards));
        emit IShardMarketTypes.BatchFailed(jobId, 0, IShardMarketTypes.BatchFailReason.NoQuorum);
        _settleProven(jobId, 0);
        assertEq(uint256(_batchState(jobId, 0)), uint256(IShardMarketTypes.BatchState.Failed), "failed");
        assertEq(_stake(ops[1]), OPERATOR_STAKE - BATCH_COLLATERAL, "NoProof");
        assertEq(_stake(ops[2]), OPERATOR_STAKE - BATCH_COLLATERAL, "NoReveal");
        assertEq(_stake(ops[0]), OPERATOR_STAKE, "the lone prover not slashed");
        assertEq(shards.withdrawable(ops[0]), 0, "and not paid: no shard accepted");
        assertEq(shards.withdrawable(address(0)), 2 * BATCH_COLLATERAL, "burned, not given to the creator");
        assertEq(shards.withdrawable(creator), 24 * SHARD_PRICE, "whole batch refunded at once");
        for (uint256 i; i < 3; ++i) {
            assertEq(_locked(ops[i]), 0, "nothing left locked");
        }
        shards.finalize(jobId);
        assertEq(shards.getShardJob(jobId).failedBatches, 1, "counted failed");
        _assertShardConservation(_one(jobId), _everyone());
    }

    /// @dev Fewer than k reveals is a lack of results, not a disagreement: Failed as before.
    function test_TooFewRevealsStillFailsWithoutProving() public {
        (uint256 jobId,) = _oneBatchJob();
        for (uint256 i; i < 3; ++i) {
            _commitAll(jobId, ops[i], false);
        }
        _revealAll(jobId, ops[0], false);
        vm.warp(block.timestamp + WINDOW + 1);
        vm.expectEmit(true, false, false, true, address(shards));
        emit IShardMarketTypes.BatchFailed(jobId, 0, IShardMarketTypes.BatchFailReason.NoQuorum);
        shards.settleBatches(jobId, _allBatches(jobId));
        _assertShardConservation(_one(jobId), _everyone());
    }

    // ---- proofs and lists are checked ----

    function test_RevertWhen_ProofDoesNotMatchRoot() public {
        (uint256 jobId,) = _oneBatchJob();
        _setWrong(ops[1], 3);
        _setWrong(ops[2], 5);
        _commitReveal(jobId, 3);
        uint32[] memory one = new uint32[](1);
        bytes32[][] memory lists = new bytes32[][](1);
        lists[0] = _honest(0, 8);
        // not Proving yet
        vm.prank(ops[0]);
        vm.expectRevert(
            abi.encodeWithSelector(
                IShardMarketTypes.ShardMarket__WrongBatchState.selector,
                jobId,
                0,
                IShardMarketTypes.BatchState.Revealing
            )
        );
        shards.proveBatches(jobId, one, lists);
        shards.settleBatches(jobId, _allBatches(jobId));

        // ops[1] claims the honest results, but its revealed root has its wrong shard 3
        bytes32 revealed = shards.getBatch(jobId, 0).hashes[_slotOf(jobId, 0, ops[1])];
        assertEq(revealed, _rootOf(jobId, ops[1], 0), "revealed its own root");
        bytes32 honestRoot = _root(jobId, 0);
        vm.prank(ops[1]);
        vm.expectRevert(
            abi.encodeWithSelector(
                IShardMarketTypes.ShardMarket__RootMismatch.selector, jobId, 0, ops[1], revealed, honestRoot
            )
        );
        shards.proveBatches(jobId, one, lists);

        // a list of the wrong length, a zero result, the wrong shard order
        lists[0] = _honest(0, 7);
        vm.prank(ops[0]);
        vm.expectRevert(abi.encodeWithSelector(IShardMarketTypes.ShardMarket__BadLeafCount.selector, jobId, 0, 7, 8));
        shards.proveBatches(jobId, one, lists);
        lists[0] = _honest(0, 8);
        lists[0][6] = bytes32(0);
        vm.prank(ops[0]);
        vm.expectRevert(abi.encodeWithSelector(IShardMarketTypes.ShardMarket__ZeroResult.selector, jobId, 0, 6));
        shards.proveBatches(jobId, one, lists);
        lists[0] = _honest(0, 8);
        (lists[0][0], lists[0][1]) = (lists[0][1], lists[0][0]);
        vm.prank(ops[0]);
        vm.expectRevert(); // RootMismatch with the computed root of the swapped leaves
        shards.proveBatches(jobId, one, lists);
        lists[0] = _honest(0, 8);
        vm.prank(ops[0]);
        vm.expectRevert(abi.encodeWithSelector(IShardMarketTypes.ShardMarket__LengthMismatch.selector));
        shards.proveBatches(jobId, one, new bytes32[][](2));
        vm.prank(ops[5]);
        vm.expectRevert(abi.encodeWithSelector(IShardMarketTypes.ShardMarket__NotBidder.selector, jobId, ops[5]));
        shards.proveBatches(jobId, one, lists);

        vm.prank(ops[0]);
        shards.proveBatches(jobId, one, lists);
        assertEq(shards.getBatch(jobId, 0).hashes[_slotOf(jobId, 0, ops[0])], honestRoot, "proved the honest root");
        vm.prank(ops[0]);
        vm.expectRevert(abi.encodeWithSelector(IShardMarketTypes.ShardMarket__AlreadyProven.selector, jobId, 0, ops[0]));
        shards.proveBatches(jobId, one, lists);
    }

    /// @dev The settler hands in the lists, but every one is checked against what its slot
    /// proved: no substituted, reordered, missing or extra list is taken.
    function test_SettleProvenChecksTheLists() public {
        (uint256 jobId,) = _oneBatchJob();
        _setWrong(ops[1], 3);
        _setWrong(ops[2], 5);
        _commitReveal(jobId, 3);
        uint32[] memory all = _allBatches(jobId);
        shards.settleBatches(jobId, all);
        vm.expectRevert(
            abi.encodeWithSelector(
                IShardMarketTypes.ShardMarket__WrongBatchState.selector, jobId, 0, IShardMarketTypes.BatchState.Proving
            )
        );
        shards.settleBatches(jobId, all);
        for (uint256 i; i < 3; ++i) {
            _proveAll(jobId, ops[i]);
        }
        bytes32[][] memory lists = _provenLists(jobId, 0);
        uint8 s1 = _slotOf(jobId, 0, ops[1]);

        // substitute ops[1]'s list with the honest one (would spare it the slash)
        bytes32[] memory own = lists[s1];
        lists[s1] = _honest(0, 8);
        vm.expectRevert(
            abi.encodeWithSelector(
                IShardMarketTypes.ShardMarket__ListMismatch.selector,
                jobId,
                0,
                s1,
                keccak256(abi.encode(own)),
                keccak256(abi.encode(lists[s1]))
            )
        );
        shards.settleProven(jobId, 0, lists);
        lists[s1] = own;

        // swap two lists
        uint8 other = s1 == 0 ? 1 : 0;
        (lists[s1], lists[other]) = (lists[other], lists[s1]);
        vm.expectRevert();
        shards.settleProven(jobId, 0, lists);
        (lists[s1], lists[other]) = (lists[other], lists[s1]);

        // one list left out, one too many
        bytes32[][] memory two = new bytes32[][](2);
        (two[0], two[1]) = (lists[0], lists[1]);
        vm.expectRevert(abi.encodeWithSelector(IShardMarketTypes.ShardMarket__BadListCount.selector, jobId, 0, 2, 3));
        shards.settleProven(jobId, 0, two);
        bytes32[][] memory four = new bytes32[][](4);
        (four[0], four[1], four[2], four[3]) = (lists[0], lists[1], lists[2], lists[2]);
        vm.expectRevert(abi.encodeWithSelector(IShardMarketTypes.ShardMarket__BadListCount.selector, jobId, 0, 4, 3));
        shards.settleProven(jobId, 0, four);

        shards.settleProven(jobId, 0, lists);
        vm.expectRevert(
            abi.encodeWithSelector(
                IShardMarketTypes.ShardMarket__WrongBatchState.selector,
                jobId,
                0,
                IShardMarketTypes.BatchState.SettledPerShard
            )
        );
        shards.settleProven(jobId, 0, lists);
        assertEq(_stake(ops[1]), OPERATOR_STAKE - BATCH_COLLATERAL, "the real list slashed ops[1]");
        _assertShardConservation(_one(jobId), _everyone());
    }

    // ---- random disputes ----

    /// @dev Random shapes (n 2..5, k 2..n, one to three batches), every operator wrong on a few
    /// random shards with its own wrong results, some provers absent: every batch ends final,
    /// an accepted shard is always the honest result, the honest operator is never slashed and
    /// is paid for every accepted shard of its batches, nothing stays locked, and the money is
    /// conserved.
    function testFuzz_PerShardDisputeConserved(uint256 seed) public {
        seed = uint256(keccak256(abi.encode(seed)));
        uint8 n = uint8(bound(seed & 0xff, 2, 5));
        uint8 k = uint8(bound((seed >> 8) & 0xff, 2, n));
        uint16 size = uint16(bound((seed >> 16) & 0xff, 1, 12));
        uint32 count = uint32(bound((seed >> 24) & 0xff, 1, 3 * size));
        IShardMarketTypes.ShardJobParams memory p = _sparams(count, size, n, k, n);
        p.collateralPerBatch = uint96(size) * SHARD_PRICE; // within the cap for every size
        uint256 jobId = _spost(p);
        _sbids(jobId, 0, n);
        _sdraw(jobId);
        // ops[0] is honest; the others are wrong on up to 3 random shards each
        for (uint256 i = 1; i < n; ++i) {
            for (uint256 w; w < 3; ++w) {
                if ((seed >> (32 + 8 * i + w)) & 1 == 1) _setWrong(ops[i], (seed >> (64 + 16 * i + 5 * w)) % count);
            }
        }
        uint256 stakeBefore = _totalStake(n);
        _commitReveal(jobId, n);
        shards.settleBatches(jobId, _allBatches(jobId));
        for (uint256 i; i < n; ++i) {
            // ops[0] always proves; the others skip with probability 1/4
            if (i == 0 || (seed >> (200 + 2 * i)) & 3 != 0) _proveAll(jobId, ops[i]);
        }
        vm.warp(block.timestamp + WINDOW + 1);
        uint256 batches = shards.getShardJob(jobId).batchCount;
        uint256 honestPay;
        for (uint256 b; b < batches; ++b) {
            if (_batchState(jobId, b) != IShardMarketTypes.BatchState.Proving) continue;
            vm.recordLogs();
            _settleProven(jobId, b);
            honestPay += _checkAccepted(jobId, b);
        }
        shards.finalize(jobId);
        assertEq(_stake(ops[0]), OPERATOR_STAKE, "the honest operator is never slashed");
        assertGe(shards.withdrawable(ops[0]), honestPay, "paid every accepted shard");
        uint256 claims = shards.withdrawable(creator) + shards.withdrawable(address(0));
        for (uint256 i; i < n; ++i) {
            assertEq(_locked(ops[i]), 0, "nothing left locked");
            claims += shards.withdrawable(ops[i]);
        }
        assertEq(claims, _escrowOf(p) + stakeBefore - _totalStake(n), "escrow + slashed == payouts + refunds + burned");
        _assertShardConservation(_one(jobId), _everyone());
    }

    /// @dev Checks the BatchSettledPerShard of batch b: accepted entries are honest results.
    /// Returns what the honest operator earns from them.
    function _checkAccepted(uint256 jobId, uint256 b) internal returns (uint256 pay) {
        bytes32 topic = IShardMarketTypes.BatchSettledPerShard.selector;
        uint256 first = b * shards.getShardJob(jobId).batchSize;
        Vm.Log[] memory logs = vm.getRecordedLogs();
        for (uint256 l; l < logs.length; ++l) {
            if (logs[l].topics[0] != topic) continue;
            (uint32 batch, bytes32[] memory accepted, uint32 verified) =
                abi.decode(logs[l].data, (uint32, bytes32[], uint32));
            assertEq(batch, b, "this batch");
            uint256 nonzero;
            for (uint256 i; i < accepted.length; ++i) {
                if (accepted[i] == bytes32(0)) continue;
                assertEq(accepted[i], _result(first + i), "only honest results are accepted");
                ++nonzero;
            }
            assertEq(nonzero, verified, "verifiedShards counts the accepted");
            return nonzero * SHARD_PRICE;
        }
        revert("no BatchSettledPerShard");
    }

    function _totalStake(uint256 count) internal view returns (uint256 total) {
        for (uint256 i; i < count; ++i) {
            total += _stake(ops[i]);
        }
    }
}
