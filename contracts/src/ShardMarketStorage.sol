// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IShardMarketTypes} from "./interfaces/IShardMarket.sol";
import {IOperatorRegistry} from "./interfaces/IOperatorRegistry.sol";

/// @title ShardMarketStorage
/// @notice The state of the sharded-job market, shared by `ShardMarket` and the
/// `ShardSettlement` code it delegates the draw and the settlement to (one storage layout, one
/// set of constructor parameters, so that both read the same immutables).
/// @dev Storage per job: three packed slots plus escrow, spec and manifest hashes and the draw
/// seed; per bidder its address, its index and its nonzero prefer words; per batch one slot
/// (state, attempt, deadline, commit/reveal bit sets, packed bidder indices of its slots, bidders
/// excluded from it); per assigned slot one word, the commitment until the reveal overwrites it
/// with the root, and on a Proving batch one more, the hash of the leaves list the slot proved.
abstract contract ShardMarketStorage is IShardMarketTypes {
    uint32 public constant MAX_SHARDS = 65536;
    uint16 public constant MAX_BATCHES = 1024;
    /// @notice Shards per batch at most: a disputed batch's `settleProven` takes `concurrency x
    /// batchSize` result hashes, which must fit one transaction (8 x 1024 takes 10.5M gas, under
    /// EIP-7825's 2^24 cap: ShardGas.t.sol).
    uint16 public constant MAX_BATCH_SIZE = 1024;
    uint8 public constant MAX_CONCURRENCY = 8;
    uint8 public constant MAX_BIDDERS = 64;
    uint8 public constant MAX_ATTEMPTS = 3;
    /// @notice Batches one `closeBidding` call assigns at most.
    uint16 public constant DRAW_CHUNK = 128;
    /// @dev Set in the job ids passed to the registry, apart from JobMarket's.
    uint256 internal constant REGISTRY_ID_FLAG = 1 << 255;

    /// @dev Slot 0.
    struct Core {
        address creator;
        uint64 bidDeadline;
        ShardJobState state;
        uint8 n;
        uint8 k;
        uint8 minBids;
    }

    /// @dev Slot 1.
    struct Terms {
        uint96 price;
        uint96 collateral;
        uint32 execWindow;
        uint32 revealWindow;
    }

    /// @dev Slot 2.
    struct Shape {
        uint32 shardCount;
        uint16 batchSize;
        uint16 batchCount;
        uint8 bidCount;
        uint64 drawBlock;
        uint16 assigned;
        uint16 verified;
        uint16 failed;
    }

    /// @dev One slot per batch. `operators`: byte i = bidder index of slot i. `excluded`: bidders
    /// slashed for not committing on this batch (never re-drawn on it). `proven`: slots that
    /// proved their leaves while the batch was Proving.
    struct Slot {
        BatchState state;
        uint8 attempt;
        uint8 committed;
        uint8 revealed;
        uint8 proven;
        uint64 deadline;
        uint64 operators;
        uint64 excluded;
    }

    IOperatorRegistry internal immutable _registry;
    uint96 internal immutable _minStake;
    uint32 internal immutable _minBidWindow;
    uint32 internal immutable _minExecWindow;
    uint32 internal immutable _minRevealWindow;
    uint32 internal immutable _drawDelay;
    uint16 internal immutable _maxCollateralFactor;

    uint256 internal _nextJobId = 1;

    mapping(uint256 => Core) internal _core;
    mapping(uint256 => Terms) internal _terms;
    mapping(uint256 => Shape) internal _shape;
    mapping(uint256 => uint256) internal _escrow;
    mapping(uint256 => bytes32) internal _specHash;
    mapping(uint256 => bytes32) internal _manifestHash;
    mapping(uint256 => uint256) internal _seed;
    /// @dev jobId => bidder index => address.
    mapping(uint256 => mapping(uint256 => address)) internal _bidders;
    /// @dev jobId => address => bidder index + 1.
    mapping(uint256 => mapping(address => uint256)) internal _bidderIndex;
    /// @dev jobId => bidder index * 4 + word => prefer word (nonzero words only).
    mapping(uint256 => mapping(uint256 => uint256)) internal _prefer;
    mapping(uint256 => mapping(uint256 => Slot)) internal _slots;
    /// @dev jobId => batch * 8 + slot => commitment, replaced by the root on reveal.
    mapping(uint256 => mapping(uint256 => bytes32)) internal _commits;
    mapping(address => uint256) internal _withdrawable;
    /// @dev jobId => batch * 8 + slot => keccak256(abi.encode(resultHashes)) the slot proved.
    mapping(uint256 => mapping(uint256 => bytes32)) internal _proofs;

    constructor(
        IOperatorRegistry registry_,
        uint32 minBidWindow_,
        uint32 minExecWindow_,
        uint32 minRevealWindow_,
        uint32 drawDelay_,
        uint16 maxCollateralFactor_
    ) {
        if (minBidWindow_ == 0 || minExecWindow_ == 0 || minRevealWindow_ == 0 || maxCollateralFactor_ == 0) {
            revert ShardMarket__BadConfig(minBidWindow_, minExecWindow_, minRevealWindow_, maxCollateralFactor_);
        }
        _registry = registry_;
        _minStake = registry_.minStake();
        _minBidWindow = minBidWindow_;
        _minExecWindow = minExecWindow_;
        _minRevealWindow = minRevealWindow_;
        _drawDelay = drawDelay_;
        _maxCollateralFactor = maxCollateralFactor_;
    }

    function _loadCore(uint256 jobId) internal view returns (Core memory c) {
        c = _core[jobId];
        if (c.state == ShardJobState.None) revert ShardMarket__UnknownJob(jobId);
    }

    function _batchShards(Shape memory s, uint256 b) internal pure returns (uint256) {
        uint256 first = b * s.batchSize;
        uint256 left = s.shardCount - first;
        return left < s.batchSize ? left : s.batchSize;
    }

    function _registryJobId(uint256 jobId) internal pure returns (uint256) {
        return jobId | REGISTRY_ID_FLAG;
    }

    function _refund(uint256 jobId, address creator, uint256 amount) internal {
        _withdrawable[creator] += amount;
        emit Refunded(jobId, creator, amount);
    }
}
