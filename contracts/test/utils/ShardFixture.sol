// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Fixture} from "./Fixture.sol";
import {ShardMarket} from "../../src/ShardMarket.sol";
import {IShardMarketTypes} from "../../src/interfaces/IShardMarket.sol";
import {IOperatorRegistry} from "../../src/interfaces/IOperatorRegistry.sol";

/// @notice The registry and job market of `Fixture` plus a ShardMarket on the same registry,
/// with helpers to drive a sharded job: post, bid, draw, commit/reveal per operator, settle.
abstract contract ShardFixture is Fixture {
    uint96 internal constant SHARD_PRICE = 0.01 ether;
    /// @dev <= COLLATERAL_FACTOR x batchSize x SHARD_PRICE for batch sizes >= 2.
    uint96 internal constant BATCH_COLLATERAL = 0.2 ether;
    uint32 internal constant SHARD_DRAW_DELAY = 2;
    bytes internal constant MANIFEST_CID =
        hex"0155122099887766554433221100ffeeddccbbaa99887766554433221100ffeeddccbbaa";

    ShardMarket internal shards;

    /// @dev op => shard => the op's result of that shard is wrong (see `_setWrong`).
    mapping(address => mapping(uint256 => bool)) internal _wrongOn;
    /// @dev op => it has at least one wrong shard (the common case skips the per-shard lookups).
    mapping(address => bool) internal _anyWrong;

    function setUp() public virtual override {
        super.setUp();
        shards = new ShardMarket(
            IOperatorRegistry(address(registry)),
            MIN_BID_WINDOW,
            MIN_EXEC_WINDOW,
            MIN_REVEAL_WINDOW,
            SHARD_DRAW_DELAY,
            COLLATERAL_FACTOR
        );
        registry.setShardMarket(address(shards));
        vm.roll(100);
    }

    function _sparams(uint32 count, uint16 size, uint8 n, uint8 k, uint8 m)
        internal
        pure
        returns (IShardMarketTypes.ShardJobParams memory p)
    {
        p.specCid = SPEC_CID;
        p.specHash = keccak256("spec");
        p.manifestCid = MANIFEST_CID;
        p.manifestHash = keccak256("manifest");
        p.shardCount = count;
        p.batchSize = size;
        p.concurrency = n;
        p.confidence = k;
        p.minBids = m;
        p.pricePerShard = SHARD_PRICE;
        p.collateralPerBatch = BATCH_COLLATERAL;
        p.bidWindow = WINDOW;
        p.execWindow = WINDOW;
        p.revealWindow = WINDOW;
    }

    function _escrowOf(IShardMarketTypes.ShardJobParams memory p) internal pure returns (uint256) {
        return uint256(p.shardCount) * p.concurrency * p.pricePerShard;
    }

    function _spost(IShardMarketTypes.ShardJobParams memory p) internal returns (uint256 jobId) {
        vm.prank(creator);
        jobId = shards.postShardedJob{value: _escrowOf(p)}(p);
    }

    function _none() internal pure returns (uint256[] memory) {
        return new uint256[](0);
    }

    function _prefer1(uint256 batch) internal pure returns (uint256[] memory w) {
        w = new uint256[](1);
        w[0] = 1 << batch;
    }

    /// @dev Bids from ops[first..first+count) without preferences.
    function _sbids(uint256 jobId, uint256 first, uint256 count) internal {
        for (uint256 i = first; i < first + count; ++i) {
            vm.prank(ops[i]);
            shards.bid(jobId, _none());
        }
    }

    /// @dev Closes bidding, arms the draw, rolls past the draw block and draws to the end.
    function _sdraw(uint256 jobId) internal {
        vm.warp(shards.getShardJob(jobId).bidDeadline + 1);
        shards.closeBidding(jobId);
        vm.roll(shards.getShardJob(jobId).drawBlock + 1);
        while (shards.getShardJob(jobId).state == IShardMarketTypes.ShardJobState.Drawing) {
            shards.closeBidding(jobId);
        }
    }

    /// @dev The honest result hash of a shard.
    function _result(uint256 shard) internal pure returns (bytes32) {
        return keccak256(abi.encode("result", shard));
    }

    /// @dev `op`'s own wrong result of `shard` (wrong operators do not collude).
    function _wrongResult(address op, uint256 shard) internal pure returns (bytes32) {
        return keccak256(abi.encode("wrong", op, shard));
    }

    /// @dev From now on `op` computes a wrong result for `shard` (and only for it): its root of
    /// that shard's batch is a real Merkle root that differs from the honest one.
    function _setWrong(address op, uint256 shard) internal {
        _wrongOn[op][shard] = true;
        _anyWrong[op] = true;
    }

    function _resultOf(address op, uint256 shard) internal view returns (bytes32) {
        return _anyWrong[op] && _wrongOn[op][shard] ? _wrongResult(op, shard) : _result(shard);
    }

    /// @dev `op`'s result hashes of the shards of batch b, in shard order (what it proves).
    function _shardResults(uint256 jobId, address op, uint256 b) internal view returns (bytes32[] memory r) {
        IShardMarketTypes.ShardJob memory job = shards.getShardJob(jobId);
        uint256 first = b * job.batchSize;
        uint256 left = job.shardCount - first;
        r = new bytes32[](left < job.batchSize ? left : job.batchSize);
        for (uint256 i; i < r.length; ++i) {
            r[i] = _resultOf(op, first + i);
        }
    }

    /// @dev The Merkle root over `leafOf(first + i, results[i])`, computed here independently of
    /// the contract (docs/sharding.md): pairs hashed, an odd last node carried up.
    function _merkle(uint256 first, bytes32[] memory results) internal pure returns (bytes32) {
        uint256 len = results.length;
        bytes32[] memory level = new bytes32[](len);
        for (uint256 i; i < len; ++i) {
            level[i] = keccak256(abi.encode(uint32(first + i), results[i]));
        }
        while (len > 1) {
            uint256 next = (len + 1) / 2;
            for (uint256 i; i < next; ++i) {
                level[i] = 2 * i + 1 < len ? keccak256(abi.encodePacked(level[2 * i], level[2 * i + 1])) : level[2 * i];
            }
            len = next;
        }
        return level[0];
    }

    /// @dev `op`'s root of batch b: the honest root unless `_setWrong` made some shard wrong.
    /// Frees the memory it used (tests compute thousands of roots).
    function _rootOf(uint256 jobId, address op, uint256 b) internal view returns (bytes32 root) {
        uint256 free;
        assembly ("memory-safe") {
            free := mload(0x40)
        }
        root = _merkle(b * shards.getShardJob(jobId).batchSize, _shardResults(jobId, op, b));
        assembly ("memory-safe") {
            mstore(0x40, free)
        }
    }

    /// @dev The honest root of batch b.
    function _root(uint256 jobId, uint256 b) internal view returns (bytes32) {
        return _rootOf(jobId, address(0), b);
    }

    /// @dev Each liar's own wrong root (liars do not collude), not the root of any leaves: a
    /// liar revealing it cannot prove it.
    function _lie(address op, uint256 batch) internal pure returns (bytes32) {
        return keccak256(abi.encode("lie", op, batch));
    }

    function _bsalt(address op, uint256 batch) internal pure returns (bytes32) {
        return keccak256(abi.encode("salt", op, batch));
    }

    /// @dev Batches currently in `state` that `op` holds (in Revealing: that it has not revealed).
    function _held(uint256 jobId, address op, IShardMarketTypes.BatchState state)
        internal
        view
        returns (uint32[] memory list)
    {
        uint256 count = shards.getShardJob(jobId).batchCount;
        uint32[] memory tmp = new uint32[](count);
        uint256 found;
        for (uint256 b; b < count; ++b) {
            IShardMarketTypes.Batch memory bt = shards.getBatch(jobId, uint32(b));
            if (bt.state != state) continue;
            for (uint256 s; s < bt.operators.length; ++s) {
                if (bt.operators[s] == op && bt.revealed & (1 << s) == 0) tmp[found++] = uint32(b);
            }
        }
        list = new uint32[](found);
        for (uint256 i; i < found; ++i) {
            list[i] = tmp[i];
        }
    }

    /// @dev `op` commits every Assigned batch it holds in one transaction (lying: a wrong root).
    function _commitAll(uint256 jobId, address op, bool lying) internal returns (uint32[] memory list) {
        list = _held(jobId, op, IShardMarketTypes.BatchState.Assigned);
        if (list.length == 0) return list;
        bytes32[] memory c = new bytes32[](list.length);
        for (uint256 i; i < list.length; ++i) {
            bytes32 r = lying ? _lie(op, list[i]) : _rootOf(jobId, op, list[i]);
            c[i] = shards.commitmentOf(jobId, list[i], op, r, _bsalt(op, list[i]));
        }
        vm.prank(op);
        shards.commitBatches(jobId, list, c);
    }

    /// @dev `op` reveals every Revealing batch it committed, in one transaction.
    function _revealAll(uint256 jobId, address op, bool lying) internal returns (uint32[] memory list) {
        list = _held(jobId, op, IShardMarketTypes.BatchState.Revealing);
        (bytes32[] memory roots, bytes32[] memory salts, bytes[] memory cids) = _revealArgs(jobId, op, list, lying);
        if (list.length == 0) return list;
        vm.prank(op);
        shards.revealBatches(jobId, list, roots, salts, cids);
    }

    function _revealArgs(uint256 jobId, address op, uint32[] memory list, bool lying)
        internal
        view
        returns (bytes32[] memory roots, bytes32[] memory salts, bytes[] memory cids)
    {
        roots = new bytes32[](list.length);
        salts = new bytes32[](list.length);
        cids = new bytes[](list.length);
        for (uint256 i; i < list.length; ++i) {
            roots[i] = lying ? _lie(op, list[i]) : _rootOf(jobId, op, list[i]);
            salts[i] = _bsalt(op, list[i]);
            cids[i] = RESULT_CID;
        }
    }

    /// @dev Proving batches where `op` revealed and has not proved yet.
    function _toProve(uint256 jobId, address op) internal view returns (uint32[] memory list) {
        uint256 count = shards.getShardJob(jobId).batchCount;
        uint32[] memory tmp = new uint32[](count);
        uint256 found;
        for (uint256 b; b < count; ++b) {
            IShardMarketTypes.Batch memory bt = shards.getBatch(jobId, uint32(b));
            if (bt.state != IShardMarketTypes.BatchState.Proving) continue;
            for (uint256 s; s < bt.operators.length; ++s) {
                uint256 bit = 1 << s;
                if (bt.operators[s] == op && bt.revealed & bit != 0 && bt.proven & bit == 0) tmp[found++] = uint32(b);
            }
        }
        list = new uint32[](found);
        for (uint256 i; i < found; ++i) {
            list[i] = tmp[i];
        }
    }

    /// @dev `op` proves its leaves on every Proving batch it revealed, in one transaction.
    function _proveAll(uint256 jobId, address op) internal returns (uint32[] memory list) {
        list = _toProve(jobId, op);
        if (list.length == 0) return list;
        bytes32[][] memory hashes = new bytes32[][](list.length);
        for (uint256 i; i < list.length; ++i) {
            hashes[i] = _shardResults(jobId, op, list[i]);
        }
        vm.prank(op);
        shards.proveBatches(jobId, list, hashes);
    }

    /// @dev The lists of batch b's proven slots in slot order, as `settleProven` takes them (what
    /// each prover's `_shardResults` gave).
    function _provenLists(uint256 jobId, uint256 b) internal view returns (bytes32[][] memory lists) {
        IShardMarketTypes.Batch memory bt = shards.getBatch(jobId, uint32(b));
        uint256 count;
        for (uint256 s; s < bt.operators.length; ++s) {
            if (bt.proven & (1 << s) != 0) ++count;
        }
        lists = new bytes32[][](count);
        uint256 p;
        for (uint256 s; s < bt.operators.length; ++s) {
            if (bt.proven & (1 << s) != 0) lists[p++] = _shardResults(jobId, bt.operators[s], b);
        }
    }

    function _settleProven(uint256 jobId, uint256 b) internal {
        shards.settleProven(jobId, uint32(b), _provenLists(jobId, b));
    }

    function _allBatches(uint256 jobId) internal view returns (uint32[] memory list) {
        uint256 count = shards.getShardJob(jobId).batchCount;
        list = new uint32[](count);
        for (uint256 b; b < count; ++b) {
            list[b] = uint32(b);
        }
    }

    function _batchState(uint256 jobId, uint256 b) internal view returns (IShardMarketTypes.BatchState) {
        return shards.getBatch(jobId, uint32(b)).state;
    }

    function _shardsIn(IShardMarketTypes.ShardJobParams memory p, uint256 b) internal pure returns (uint256) {
        uint256 left = p.shardCount - b * p.batchSize;
        return left < p.batchSize ? left : p.batchSize;
    }

    /// @dev The shard market holds exactly what it owes: open escrow plus unclaimed balances
    /// (burned included); the registry holds every stake and pending withdrawal.
    function _assertShardConservation(uint256[] memory jobIds, address[] memory accounts) internal view {
        uint256 owed;
        for (uint256 i; i < jobIds.length; ++i) {
            owed += shards.getShardJob(jobIds[i]).escrow;
        }
        for (uint256 i; i < accounts.length; ++i) {
            owed += shards.withdrawable(accounts[i]);
        }
        owed += shards.withdrawable(address(0));
        assertEq(address(shards).balance, owed, "shard market balance == open escrow + withdrawable");
        uint256 bonded;
        for (uint256 i; i < registry.operatorCount(); ++i) {
            IOperatorRegistry.Operator memory o = registry.getOperator(registry.operatorAt(i));
            bonded += uint256(o.stake) + o.pendingWithdrawal;
        }
        assertEq(address(registry).balance, bonded, "registry balance == stakes + pending withdrawals");
    }

    function _everyone() internal view returns (address[] memory all) {
        all = new address[](ops.length + 1);
        for (uint256 i; i < ops.length; ++i) {
            all[i] = ops[i];
        }
        all[ops.length] = creator;
    }

    function _one(uint256 a) internal pure returns (uint256[] memory j) {
        j = new uint256[](1);
        j[0] = a;
    }
}
