// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ShardFixture} from "./utils/ShardFixture.sol";
import {IShardMarketTypes} from "../src/interfaces/IShardMarket.sol";

/// @notice Random job shapes and random operator behaviour (honest, lying — with a root of no
/// leaves, or wrong on a few shards with a provable root —, never committing, committing but
/// never revealing): every job ends with every batch final (disagreeing batches through
/// Proving and `settleProven`), nothing left locked, and the money conserved — what the creator
/// paid plus what was slashed equals what the operators and the creator can claim plus what
/// was burned.
contract ShardMarketFuzzTest is ShardFixture {
    uint8 internal constant HONEST = 0;
    uint8 internal constant LIAR = 1;
    uint8 internal constant IDLE = 2;
    uint8 internal constant SILENT = 3; // commits, never reveals

    uint256 internal constant ROUNDS = 8;

    mapping(address => uint8) internal _behaviour;
    /// @dev A LIAR that reveals roots of no leaves (it cannot prove them); the other LIARs are
    /// wrong on a few shards and prove their (wrong) leaves.
    mapping(address => bool) internal _rootLiar;

    /// @dev Makes `op` a LIAR: a root liar or wrong on up to 3 shards of `count`, from `r`.
    function _makeLiar(address op, uint256 r, uint256 count) internal {
        _behaviour[op] = LIAR;
        if (r & 1 == 1) {
            _rootLiar[op] = true;
            return;
        }
        for (uint256 w; w < 3; ++w) {
            if ((r >> (1 + w)) & 1 == 1 || w == 0) _setWrong(op, (r >> (8 + 16 * w)) % count);
        }
    }

    /// @dev One round of a job: every committing behaviour commits its Assigned batches, every
    /// revealing one reveals, every liar or honest operator that can prove proves; then the
    /// deadlines pass and every open batch is settled. Returns false when nothing was open.
    function _round(uint256 jobId, uint256 bidders) internal returns (bool) {
        for (uint256 i; i < bidders; ++i) {
            uint8 b = _behaviour[ops[i]];
            if (b != IDLE) _commitAll(jobId, ops[i], _rootLiar[ops[i]]);
        }
        for (uint256 i; i < bidders; ++i) {
            uint8 b = _behaviour[ops[i]];
            if (b == HONEST || b == LIAR) _revealAll(jobId, ops[i], _rootLiar[ops[i]]);
        }
        for (uint256 i; i < bidders; ++i) {
            uint8 b = _behaviour[ops[i]];
            if ((b == HONEST || b == LIAR) && !_rootLiar[ops[i]]) _proveAll(jobId, ops[i]);
        }
        vm.warp(block.timestamp + WINDOW + 1);
        return _settleOpen(jobId);
    }

    function _settleOpen(uint256 jobId) internal returns (bool) {
        uint32[] memory open = _open(jobId);
        if (open.length == 0) return false;
        uint256 tally;
        for (uint256 j; j < open.length; ++j) {
            if (_batchState(jobId, open[j]) == IShardMarketTypes.BatchState.Proving) {
                _settleProven(jobId, open[j]);
            } else {
                open[tally++] = open[j];
            }
        }
        assembly ("memory-safe") {
            mstore(open, tally)
        }
        if (tally != 0) shards.settleBatches(jobId, open);
        return true;
    }

    function testFuzz_EveryJobEndsConserved(uint256 seed) public {
        seed = uint256(keccak256(abi.encode(seed)));
        uint8 n = uint8(bound(seed & 0xff, 1, 5));
        uint8 k = uint8(bound((seed >> 8) & 0xff, 1, n));
        uint8 bidders = uint8(bound((seed >> 16) & 0xff, n, 10));
        uint32 count = uint32(bound((seed >> 24) & 0xffff, 1, 40));
        uint16 size = uint16(bound((seed >> 40) & 0xff, 2, 10));
        IShardMarketTypes.ShardJobParams memory p = _sparams(count, size, n, k, bidders);
        uint256 jobId = _spost(p);
        for (uint256 i; i < bidders; ++i) {
            uint8 b = uint8((seed >> (48 + 2 * i)) & 3);
            // mostly honest: behaviour codes 2 and 3 only when the next bits agree
            _behaviour[ops[i]] = b >= IDLE && (seed >> (80 + i)) & 1 == 0 ? HONEST : b;
            if (b == LIAR) _makeLiar(ops[i], uint256(keccak256(abi.encode(seed, "liar", i))), count);
            uint256[] memory prefer = new uint256[](1);
            prefer[0] = uint256(keccak256(abi.encode(seed, i)));
            vm.prank(ops[i]);
            shards.bid(jobId, prefer);
        }
        uint256 stakeBefore = _totalStake();
        _sdraw(jobId);
        for (uint256 round; round < ROUNDS && _round(jobId, bidders); ++round) {}
        assertEq(_open(jobId).length, 0, "every batch final after at most 8 rounds");
        shards.finalize(jobId);

        IShardMarketTypes.ShardJob memory job = shards.getShardJob(jobId);
        assertEq(uint256(job.verifiedBatches) + job.failedBatches, job.batchCount, "all counted");
        assertEq(job.escrow, 0, "escrow released");
        uint256 claims = shards.withdrawable(creator) + shards.withdrawable(address(0));
        for (uint256 i; i < bidders; ++i) {
            assertEq(_locked(ops[i]), 0, "nothing left locked");
            claims += shards.withdrawable(ops[i]);
            if (_behaviour[ops[i]] == HONEST) {
                assertEq(_stake(ops[i]), OPERATOR_STAKE, "an honest operator is never slashed");
            }
        }
        uint256 slashed = stakeBefore - _totalStake();
        assertEq(claims, _escrowOf(p) + slashed, "escrow + slashed == payouts + refund + burned");
        _assertShardConservation(_one(jobId), _everyone());
    }

    /// @dev Two jobs over the same bidders, drawn and settled interleaved: the registry's locks
    /// are per operator, so both markets' and both jobs' locks must add up and all come back.
    function testFuzz_TwoJobsInterleaved(uint256 seed) public {
        seed = uint256(keccak256(abi.encode(seed)));
        uint8 bidders = uint8(bound(seed & 0xff, 3, 8));
        IShardMarketTypes.ShardJobParams memory a = _sparams(uint32(bound((seed >> 8) & 0xff, 1, 30)), 3, 3, 2, bidders);
        IShardMarketTypes.ShardJobParams memory b =
            _sparams(uint32(bound((seed >> 16) & 0xff, 1, 30)), 2, 2, 1, bidders);
        uint256[] memory jobs = new uint256[](2);
        jobs[0] = _spost(a);
        jobs[1] = _spost(b);
        for (uint256 i; i < bidders; ++i) {
            if (uint8((seed >> (24 + 2 * i)) & 3) == LIAR) {
                _makeLiar(ops[i], uint256(keccak256(abi.encode(seed, "liar", i))), 30);
            }
            for (uint256 j; j < 2; ++j) {
                vm.prank(ops[i]);
                shards.bid(jobs[j], _none());
            }
        }
        uint256 stakeBefore = _totalStake();
        vm.warp(block.timestamp + WINDOW + 1);
        shards.closeBidding(jobs[0]);
        shards.closeBidding(jobs[1]);
        vm.roll(block.number + SHARD_DRAW_DELAY + 1);
        shards.closeBidding(jobs[1]);
        shards.closeBidding(jobs[0]);
        for (uint256 round; round < ROUNDS; ++round) {
            for (uint256 i; i < bidders; ++i) {
                for (uint256 j; j < 2; ++j) {
                    _commitAll(jobs[j], ops[i], _rootLiar[ops[i]]);
                }
            }
            for (uint256 i; i < bidders; ++i) {
                for (uint256 j; j < 2; ++j) {
                    _revealAll(jobs[1 - j], ops[i], _rootLiar[ops[i]]);
                }
            }
            for (uint256 i; i < bidders; ++i) {
                for (uint256 j; j < 2; ++j) {
                    if (!_rootLiar[ops[i]]) _proveAll(jobs[j], ops[i]);
                }
            }
            vm.warp(block.timestamp + WINDOW + 1);
            _settleOpen(jobs[1]);
            _settleOpen(jobs[0]);
        }
        for (uint256 j; j < 2; ++j) {
            shards.finalize(jobs[j]);
        }
        uint256 claims = shards.withdrawable(creator) + shards.withdrawable(address(0));
        for (uint256 i; i < bidders; ++i) {
            assertEq(_locked(ops[i]), 0, "nothing left locked");
            claims += shards.withdrawable(ops[i]);
        }
        uint256 slashed = stakeBefore - _totalStake();
        assertEq(claims, _escrowOf(a) + _escrowOf(b) + slashed, "escrow + slashed == payouts + refund + burned");
        _assertShardConservation(jobs, _everyone());
    }

    function _open(uint256 jobId) internal view returns (uint32[] memory list) {
        uint256 count = shards.getShardJob(jobId).batchCount;
        uint32[] memory tmp = new uint32[](count);
        uint256 found;
        for (uint256 b; b < count; ++b) {
            IShardMarketTypes.BatchState s = _batchState(jobId, b);
            if (
                s == IShardMarketTypes.BatchState.Assigned || s == IShardMarketTypes.BatchState.Revealing
                    || s == IShardMarketTypes.BatchState.Proving
            ) {
                tmp[found++] = uint32(b);
            }
        }
        list = new uint32[](found);
        for (uint256 i; i < found; ++i) {
            list[i] = tmp[i];
        }
    }

    function _totalStake() internal view returns (uint256 total) {
        for (uint256 i; i < ops.length; ++i) {
            total += _stake(ops[i]);
        }
    }
}
