// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ShardFixture} from "./utils/ShardFixture.sol";
import {IShardMarket, IShardMarketTypes} from "../src/interfaces/IShardMarket.sol";

/// @notice What a sharded job costs on chain: every transaction of a verified 10,000-shard job
/// (batches of 100, concurrency 3, 5 bidders), the largest draw chunk, a dispute of one
/// 100-shard batch and the largest dispute. -vv prints the figures. With `--isolate`
/// (`scripts/contracts.sh test --match-contract ShardGasTest --isolate -vv`) every call runs as
/// its own transaction on cold state and the gasleft delta is what a receipt says (21,000 +
/// calldata + execution): the figure to quote. Without it (the gas snapshot) the calls share the
/// test's warm state and each is counted as its gasleft delta + 21,000 + calldata (16 gas per
/// nonzero byte, 4 per zero byte, or the EIP-7623 floor of 10 per token when higher), an
/// underestimate.
contract ShardGasTest is ShardFixture {
    uint256 internal constant BLOCK_GAS_LIMIT = 30_000_000;
    /// @dev EIP-7825's cap on one transaction's gas (2^24).
    uint256 internal constant TX_GAS_CAP = 16_777_216;

    uint256 internal _total;
    uint256 internal _largest;
    /// @dev forge runs each call as a transaction of its own (--isolate): deltas include 21,000.
    bool internal _isolated;

    function setUp() public override {
        super.setUp();
        uint256 g = gasleft();
        (bool ok,) = address(shards).call(abi.encodeCall(IShardMarket.nextJobId, ()));
        _isolated = ok && g - gasleft() > 21_000;
    }

    /// @dev Sends `data` to the shard market from `from`, adds the transaction's gas to the total.
    function _send(address from, bytes memory data, string memory what) internal returns (uint256) {
        return _send(from, 0, data, what);
    }

    function _send(address from, uint256 value, bytes memory data, string memory what) internal returns (uint256 gas) {
        address target = address(shards);
        vm.prank(from);
        uint256 g = gasleft();
        bool ok;
        // a plain call on `data` in place: `.call(data)` would copy it first, and a large copy on
        // this test's large memory would be counted as the market's gas
        assembly ("memory-safe") {
            ok := call(gas(), target, value, add(data, 32), mload(data), 0, 0)
        }
        gas = g - gasleft();
        if (!ok) {
            assembly ("memory-safe") {
                let ret := mload(0x40)
                returndatacopy(ret, 0, returndatasize())
                revert(ret, returndatasize())
            }
        }
        if (!_isolated) gas = _intrinsic(gas, data);
        assertLe(gas, BLOCK_GAS_LIMIT, "fits a 30M block");
        if (gas > _largest) _largest = gas;
        _total += gas;
        log(what, gas);
    }

    /// @dev A transaction's gas from its execution gas: 21,000 + calldata (4 per zero byte, 16
    /// per other byte) + execution, or the EIP-7623 floor 21,000 + 10 x tokens (a zero byte one
    /// token, another byte four) when that is higher.
    function _intrinsic(uint256 execution, bytes memory data) internal pure returns (uint256) {
        uint256 tokens;
        for (uint256 i; i < data.length; ++i) {
            tokens += data[i] == 0 ? 1 : 4;
        }
        uint256 standard = 21_000 + 4 * tokens + execution;
        uint256 floor = 21_000 + 10 * tokens;
        return standard > floor ? standard : floor;
    }

    function test_Gas_ShardJob10kShards() public {
        IShardMarketTypes.ShardJobParams memory p = _sparams(10_000, 100, 3, 2, 5);
        p.pricePerShard = 0.0001 ether;
        p.collateralPerBatch = 0.05 ether;
        uint256 escrow = _escrowOf(p);
        vm.deal(creator, escrow + 1 ether);
        _send(
            creator,
            escrow,
            abi.encodeWithSignature(
                "postShardedJob((bytes,bytes32,bytes,bytes32,uint32,uint16,uint8,uint8,uint8,uint96,uint96,uint32,uint32,uint32,address))",
                p
            ),
            "postShardedJob"
        );
        uint256 jobId = shards.nextJobId() - 1;
        assertEq(shards.getShardJob(jobId).escrow, escrow, "posted");

        // bidder i holds the data of every fifth batch from i
        for (uint256 i; i < 5; ++i) {
            uint256[] memory prefer = new uint256[](1);
            for (uint256 b = i; b < 100; b += 5) {
                prefer[0] |= 1 << b;
            }
            _send(ops[i], abi.encodeCall(IShardMarket.bid, (jobId, prefer)), "bid");
        }
        vm.warp(block.timestamp + WINDOW + 1);
        _send(ops[11], abi.encodeCall(IShardMarket.closeBidding, (jobId)), "closeBidding (arms)");
        vm.roll(block.number + SHARD_DRAW_DELAY + 1);
        _send(ops[11], abi.encodeCall(IShardMarket.closeBidding, (jobId)), "closeBidding (draws 100 batches)");
        assertEq(
            uint256(shards.getShardJob(jobId).state), uint256(IShardMarketTypes.ShardJobState.Running), "one draw call"
        );

        vm.pauseGasMetering();
        uint32[][] memory held = new uint32[][](5);
        bytes[] memory reveals = new bytes[](5);
        for (uint256 i; i < 5; ++i) {
            held[i] = _held(jobId, ops[i], IShardMarketTypes.BatchState.Assigned);
        }
        vm.resumeGasMetering();
        for (uint256 i; i < 5; ++i) {
            vm.pauseGasMetering(); // the test computing the operators' roots is not the market's gas
            (bytes32[] memory roots, bytes32[] memory salts, bytes[] memory cids) =
                _revealArgs(jobId, ops[i], held[i], false);
            bytes32[] memory c = new bytes32[](held[i].length);
            for (uint256 j; j < c.length; ++j) {
                c[j] = shards.commitmentOf(jobId, held[i][j], ops[i], roots[j], salts[j]);
            }
            vm.resumeGasMetering();
            _send(
                ops[i],
                abi.encodeCall(IShardMarket.commitBatches, (jobId, held[i], c)),
                string.concat("commitBatches x", vm.toString(held[i].length))
            );
            reveals[i] = abi.encodeCall(IShardMarket.revealBatches, (jobId, held[i], roots, salts, cids));
        }
        for (uint256 i; i < 5; ++i) {
            _send(ops[i], reveals[i], string.concat("revealBatches x", vm.toString(held[i].length)));
        }
        _send(ops[11], abi.encodeCall(IShardMarket.settleBatches, (jobId, _allBatches(jobId))), "settleBatches x100");
        _send(ops[11], abi.encodeCall(IShardMarket.finalize, (jobId)), "finalize");

        IShardMarketTypes.ShardJob memory job = shards.getShardJob(jobId);
        assertEq(job.verifiedBatches, 100, "all verified");
        assertEq(uint256(job.state), uint256(IShardMarketTypes.ShardJobState.Done), "done");
        log("total gas, post to finalize", _total);
        log("gas per shard", _total / 10_000);
        log("largest transaction", _largest);
        log(_isolated ? "(isolated: per-transaction receipts)" : "(shared warm state: an underestimate)");
        assertLe(_total / 10_000, 3_000, "at most 3,000 gas per shard");
    }

    /// @dev One 100-shard batch, n = 3, k = 2, whose three roots all differ (two operators each
    /// wrong on one shard): the tally that moves it to Proving, one `proveBatches` per operator
    /// (100 result hashes each) and the `settleProven` that takes the three lists and accepts all
    /// 100 shards.
    function test_Gas_ShardDispute100Shards() public {
        vm.pauseGasMetering();
        IShardMarketTypes.ShardJobParams memory p = _sparams(100, 100, 3, 2, 3);
        p.pricePerShard = 0.0001 ether;
        p.collateralPerBatch = 0.05 ether;
        vm.deal(creator, _escrowOf(p));
        uint256 jobId = _spost(p);
        _sbids(jobId, 0, 3);
        _sdraw(jobId);
        _setWrong(ops[1], 3);
        _setWrong(ops[2], 57);
        for (uint256 i; i < 3; ++i) {
            _commitAll(jobId, ops[i], false);
        }
        for (uint256 i; i < 3; ++i) {
            _revealAll(jobId, ops[i], false);
        }
        uint32[] memory one = new uint32[](1);
        vm.resumeGasMetering();
        _send(ops[11], abi.encodeCall(IShardMarket.settleBatches, (jobId, one)), "settleBatches (tally -> Proving)");
        assertEq(uint256(_batchState(jobId, 0)), uint256(IShardMarketTypes.BatchState.Proving), "proving");
        for (uint256 i; i < 3; ++i) {
            vm.pauseGasMetering();
            bytes32[][] memory lists = new bytes32[][](1);
            lists[0] = _shardResults(jobId, ops[i], 0);
            vm.resumeGasMetering();
            _send(ops[i], abi.encodeCall(IShardMarket.proveBatches, (jobId, one, lists)), "proveBatches (100 shards)");
        }
        vm.pauseGasMetering();
        bytes32[][] memory proven = _provenLists(jobId, 0);
        vm.resumeGasMetering();
        _send(ops[11], abi.encodeCall(IShardMarket.settleProven, (jobId, 0, proven)), "settleProven (3 lists)");
        assertEq(
            uint256(_batchState(jobId, 0)), uint256(IShardMarketTypes.BatchState.SettledPerShard), "settled per shard"
        );
        assertEq(shards.withdrawable(ops[0]), 100 * p.pricePerShard + 2 * p.collateralPerBatch, "honest paid");
        log("dispute total (tally, 3 proofs, settleProven)", _total);
        log("largest transaction", _largest);
        log(_isolated ? "(isolated: per-transaction receipts)" : "(shared warm state: an underestimate)");
    }

    /// @dev The largest dispute: one batch of MAX_BATCH_SIZE shards at the largest concurrency
    /// (8), k = 5, every operator wrong on its own shard, so no two roots agree: every
    /// `proveBatches` and the `settleProven` of 8 x 1024 result hashes fit one transaction under
    /// EIP-7825's cap (2^24 gas), calldata floor included.
    function test_DisputeOfTheLargestBatchFitsOneTransaction() public {
        vm.pauseGasMetering();
        uint16 size = shards.MAX_BATCH_SIZE();
        IShardMarketTypes.ShardJobParams memory p = _sparams(size, size, 8, 5, 8);
        p.pricePerShard = 1e12;
        p.collateralPerBatch = 1e14;
        vm.deal(creator, _escrowOf(p));
        uint256 jobId = _spost(p);
        _sbids(jobId, 0, 8);
        _sdraw(jobId);
        for (uint256 i; i < 8; ++i) {
            _setWrong(ops[i], 100 * i + 7);
        }
        for (uint256 i; i < 8; ++i) {
            _commitAll(jobId, ops[i], false);
        }
        for (uint256 i; i < 8; ++i) {
            _revealAll(jobId, ops[i], false);
        }
        uint32[] memory one = new uint32[](1);
        shards.settleBatches(jobId, one);
        vm.resumeGasMetering();
        for (uint256 i; i < 8; ++i) {
            vm.pauseGasMetering();
            bytes32[][] memory lists = new bytes32[][](1);
            lists[0] = _shardResults(jobId, ops[i], 0);
            vm.resumeGasMetering();
            _send(ops[i], abi.encodeCall(IShardMarket.proveBatches, (jobId, one, lists)), "proveBatches (1024 shards)");
        }
        vm.pauseGasMetering();
        bytes32[][] memory proven = _provenLists(jobId, 0);
        vm.resumeGasMetering();
        _send(ops[11], abi.encodeCall(IShardMarket.settleProven, (jobId, 0, proven)), "settleProven (8 x 1024)");
        assertEq(
            uint256(_batchState(jobId, 0)), uint256(IShardMarketTypes.BatchState.SettledPerShard), "settled per shard"
        );
        for (uint256 i; i < 8; ++i) {
            assertEq(_stake(ops[i]), OPERATOR_STAKE - p.collateralPerBatch, "each wrong once");
        }
        assertLe(_largest, TX_GAS_CAP, "every transaction under the EIP-7825 cap");
        log("largest transaction", _largest);
    }

    /// @dev The largest job (1,024 batches) at the largest concurrency (8) with the most bidders
    /// (64): every `closeBidding` chunk of DRAW_CHUNK batches fits a 30M block.
    function test_DrawChunks_WorstCaseFitABlock() public {
        vm.pauseGasMetering();
        for (uint256 i = ops.length; i < 64; ++i) {
            ops.push(_newOperator(i));
        }
        IShardMarketTypes.ShardJobParams memory p = _sparams(65_536, 64, 8, 5, 64);
        p.pricePerShard = 1e12;
        p.collateralPerBatch = 1e14;
        vm.deal(creator, _escrowOf(p));
        uint256 jobId = _spost(p);
        for (uint256 i; i < 64; ++i) {
            uint256[] memory prefer = new uint256[](4);
            prefer[i % 4] = type(uint256).max; // many preferring bidders per batch
            vm.prank(ops[i]);
            shards.bid(jobId, prefer);
        }
        vm.warp(block.timestamp + WINDOW + 1);
        shards.closeBidding(jobId);
        vm.roll(block.number + SHARD_DRAW_DELAY + 1);
        vm.resumeGasMetering();
        uint256 calls;
        while (shards.getShardJob(jobId).state == IShardMarketTypes.ShardJobState.Drawing) {
            _send(ops[0], abi.encodeCall(IShardMarket.closeBidding, (jobId)), "closeBidding chunk");
            ++calls;
        }
        assertEq(calls, 8, "1024 batches in 8 chunks of 128");
        assertEq(shards.getShardJob(jobId).failedBatches, 0, "all assigned");
        log("largest chunk", _largest);
    }
}
