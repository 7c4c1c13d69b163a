// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ShardFixture} from "./utils/ShardFixture.sol";
import {IShardMarketTypes} from "../src/interfaces/IShardMarket.sol";

/// @notice Random job shapes and random operator behaviour (honest, lying, never committing,
/// committing but never revealing): every job ends with every batch final, nothing left
/// locked, and the money conserved — what the creator paid plus what was slashed equals what
/// the operators and the creator can claim plus what was burned.
contract ShardMarketFuzzTest is ShardFixture {
    uint8 internal constant HONEST = 0;
    uint8 internal constant LIAR = 1;
    uint8 internal constant IDLE = 2;
    uint8 internal constant SILENT = 3; // commits, never reveals

    mapping(address => uint8) internal _behaviour;

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
            uint256[] memory prefer = new uint256[](1);
            prefer[0] = uint256(keccak256(abi.encode(seed, i)));
            vm.prank(ops[i]);
            shards.bid(jobId, prefer);
        }
        uint256 stakeBefore = _totalStake();
        _sdraw(jobId);
        for (uint256 round; round < 4; ++round) {
            for (uint256 i; i < bidders; ++i) {
                uint8 b = _behaviour[ops[i]];
                if (b != IDLE) _commitAll(jobId, ops[i], b == LIAR);
            }
            for (uint256 i; i < bidders; ++i) {
                uint8 b = _behaviour[ops[i]];
                if (b == HONEST || b == LIAR) _revealAll(jobId, ops[i], b == LIAR);
            }
            vm.warp(block.timestamp + WINDOW + 1);
            uint32[] memory open = _open(jobId);
            if (open.length == 0) break;
            shards.settleBatches(jobId, open);
        }
        assertEq(_open(jobId).length, 0, "every batch final after at most 4 rounds");
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
            _behaviour[ops[i]] = uint8((seed >> (24 + 2 * i)) & 3) == LIAR ? LIAR : HONEST;
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
        for (uint256 round; round < 4; ++round) {
            for (uint256 i; i < bidders; ++i) {
                for (uint256 j; j < 2; ++j) {
                    _commitAll(jobs[j], ops[i], _behaviour[ops[i]] == LIAR);
                }
            }
            for (uint256 i; i < bidders; ++i) {
                for (uint256 j; j < 2; ++j) {
                    _revealAll(jobs[1 - j], ops[i], _behaviour[ops[i]] == LIAR);
                }
            }
            vm.warp(block.timestamp + WINDOW + 1);
            for (uint256 j; j < 2; ++j) {
                uint32[] memory open = _open(jobs[j]);
                if (open.length != 0) shards.settleBatches(jobs[j], open);
            }
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
            if (s == IShardMarketTypes.BatchState.Assigned || s == IShardMarketTypes.BatchState.Revealing) {
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
