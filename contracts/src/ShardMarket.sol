// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IShardMarket} from "./interfaces/IShardMarket.sol";
import {IOperatorRegistry} from "./interfaces/IOperatorRegistry.sol";
import {ShardMarketStorage} from "./ShardMarketStorage.sol";
import {ShardSettlement} from "./ShardSettlement.sol";

/// @title ShardMarket
/// @notice Sharded jobs (docs/sharding.md): one post escrows `shardCount x concurrency x
/// pricePerShard`; operators bid once with a bit set of the batches whose data they hold; a
/// two-step draw seeded by a future block hash assigns every batch `concurrency` distinct
/// bidders (slot 0 from those that preferred it); each batch is committed, revealed (a Merkle
/// root over its shards' results), tallied, paid and slashed on its own. A batch whose roots
/// disagree is settled shard by shard: its revealers prove their leaves (`proveBatches`) and
/// `settleProven` accepts every shard that `confidence` proofs agree on.
/// @dev Balance invariant: `address(this).balance == sum(open jobs' escrow) + sum(withdrawable)`,
/// `withdrawable(address(0))` being burned money. Storage: see ShardMarketStorage. The draw and
/// the settlement (`closeBidding`, `settleBatches`, `settleProven`) run in `ShardSettlement` by
/// delegatecall.
contract ShardMarket is IShardMarket, ShardMarketStorage {
    /// @notice The draw and settlement code this market delegates `closeBidding`,
    /// `settleBatches` and `settleProven` to; deployed by the constructor.
    address public immutable settlement;

    constructor(
        IOperatorRegistry registry_,
        uint32 minBidWindow_,
        uint32 minExecWindow_,
        uint32 minRevealWindow_,
        uint32 drawDelay_,
        uint16 maxCollateralFactor_
    ) ShardMarketStorage(registry_, minBidWindow_, minExecWindow_, minRevealWindow_, drawDelay_, maxCollateralFactor_) {
        settlement = address(
            new ShardSettlement(
                registry_, minBidWindow_, minExecWindow_, minRevealWindow_, drawDelay_, maxCollateralFactor_
            )
        );
    }

    /// @notice Accepts slashed stake from the registry only.
    receive() external payable {
        if (msg.sender != address(_registry)) revert ShardMarket__OnlyRegistry(msg.sender);
    }

    // =====================================================================================
    // creator
    // =====================================================================================

    function postShardedJob(ShardJobParams calldata p) external payable returns (uint256 jobId) {
        uint256 batches = _checkParams(p);
        uint256 escrow = uint256(p.shardCount) * p.concurrency * p.pricePerShard;
        if (msg.value != escrow) revert ShardMarket__WrongEscrow(msg.value, escrow);
        address creator = p.creator == address(0) ? msg.sender : p.creator;
        jobId = _nextJobId++;
        uint64 bidDeadline = uint64(block.timestamp) + p.bidWindow;
        _core[jobId] = Core({
            creator: creator,
            bidDeadline: bidDeadline,
            state: ShardJobState.Bidding,
            n: p.concurrency,
            k: p.confidence,
            minBids: p.minBids
        });
        _terms[jobId] = Terms({
            price: p.pricePerShard,
            collateral: p.collateralPerBatch,
            execWindow: p.execWindow,
            revealWindow: p.revealWindow
        });
        Shape memory s;
        s.shardCount = p.shardCount;
        s.batchSize = p.batchSize;
        s.batchCount = uint16(batches);
        _shape[jobId] = s;
        _escrow[jobId] = escrow;
        _specHash[jobId] = p.specHash;
        _manifestHash[jobId] = p.manifestHash;
        emit ShardJobPosted(jobId, creator, p, escrow, bidDeadline, uint16(batches));
    }

    function _checkParams(ShardJobParams calldata p) private view returns (uint256 batches) {
        if (p.shardCount == 0 || p.shardCount > MAX_SHARDS) revert ShardMarket__BadShardCount(p.shardCount);
        if (p.batchSize != 0) batches = (uint256(p.shardCount) + p.batchSize - 1) / p.batchSize;
        if (p.batchSize == 0 || p.batchSize > MAX_BATCH_SIZE || batches > MAX_BATCHES) {
            revert ShardMarket__BadBatchSize(p.batchSize, batches);
        }
        uint8 n = p.concurrency;
        if (n == 0 || n > MAX_CONCURRENCY) revert ShardMarket__BadConcurrency(n);
        if (p.confidence == 0 || p.confidence > n) revert ShardMarket__BadConfidence(p.confidence, n);
        if (p.minBids < n || p.minBids > MAX_BIDDERS) revert ShardMarket__BadMinBids(p.minBids, n);
        if (p.pricePerShard == 0) revert ShardMarket__ZeroPrice();
        uint256 maxCollateral = uint256(_maxCollateralFactor) * p.batchSize * p.pricePerShard;
        if (p.collateralPerBatch > maxCollateral) {
            revert ShardMarket__CollateralTooHigh(p.collateralPerBatch, maxCollateral);
        }
        if (p.bidWindow < _minBidWindow || p.execWindow < _minExecWindow || p.revealWindow < _minRevealWindow) {
            revert ShardMarket__WindowTooShort(
                p.bidWindow, p.execWindow, p.revealWindow, _minBidWindow, _minExecWindow, _minRevealWindow
            );
        }
        if (p.specCid.length == 0) revert ShardMarket__EmptySpec();
        if (p.manifestCid.length == 0) revert ShardMarket__EmptyManifest();
    }

    function bid(uint256 jobId, uint256[] calldata prefer) external {
        Core memory c = _loadCore(jobId);
        if (c.state != ShardJobState.Bidding) revert ShardMarket__WrongState(jobId, c.state);
        if (block.timestamp > c.bidDeadline) revert ShardMarket__BiddingOver(jobId, c.bidDeadline);
        if (msg.sender == c.creator) revert ShardMarket__CreatorCannotBid(jobId, c.creator);
        if (_bidderIndex[jobId][msg.sender] != 0) revert ShardMarket__AlreadyBid(jobId, msg.sender);
        Shape memory s = _shape[jobId];
        uint256 count = s.bidCount;
        if (count == MAX_BIDDERS) revert ShardMarket__TooManyBidders(jobId);
        uint256 words = (uint256(s.batchCount) + 255) >> 8;
        if (prefer.length > words) revert ShardMarket__BadPrefer(prefer.length, words);
        uint96 collateral = _terms[jobId].collateral;
        (bool registered, uint96 staked, uint96 free) = _registry.operatorStatus(msg.sender);
        if (!registered) revert ShardMarket__NotRegistered(msg.sender);
        uint96 required = collateral > _minStake ? collateral : _minStake;
        if (free < required || staked < _minStake) revert ShardMarket__InsufficientStake(msg.sender, free, required);
        _bidders[jobId][count] = msg.sender;
        _bidderIndex[jobId][msg.sender] = count + 1;
        for (uint256 w; w < prefer.length; ++w) {
            if (prefer[w] != 0) _prefer[jobId][count * 4 + w] = prefer[w];
        }
        s.bidCount = uint8(count + 1);
        _shape[jobId] = s;
        emit ShardBid(jobId, msg.sender, prefer);
    }

    function commitBatches(uint256 jobId, uint32[] calldata batches, bytes32[] calldata commitments) external {
        if (batches.length != commitments.length) revert ShardMarket__LengthMismatch();
        uint256 n = _core[jobId].n;
        uint32 revealWindow = _terms[jobId].revealWindow;
        uint256 me = _myIndex(jobId);
        for (uint256 j; j < batches.length; ++j) {
            _commit(jobId, n, me, revealWindow, batches[j], commitments[j]);
        }
    }

    function _commit(uint256 jobId, uint256 n, uint256 me, uint32 revealWindow, uint32 b, bytes32 commitment) private {
        if (commitment == bytes32(0)) revert ShardMarket__ZeroCommitment();
        Slot memory bt = _slots[jobId][b];
        if (bt.state != BatchState.Assigned) revert ShardMarket__WrongBatchState(jobId, b, bt.state);
        if (block.timestamp > bt.deadline) revert ShardMarket__DeadlinePassed(jobId, b, bt.deadline);
        uint256 slot = _slotOf(jobId, b, bt.operators, n, me);
        uint8 bit = uint8(1 << slot);
        if (bt.committed & bit != 0) revert ShardMarket__AlreadyCommitted(jobId, b, msg.sender);
        _commits[jobId][uint256(b) * 8 + slot] = commitment;
        bt.committed |= bit;
        emit BatchCommitted(jobId, b, msg.sender, commitment);
        if (bt.committed == uint8((1 << n) - 1)) {
            bt.state = BatchState.Revealing;
            bt.deadline = uint64(block.timestamp) + revealWindow;
            emit BatchRevealing(jobId, b, bt.deadline);
        }
        _slots[jobId][b] = bt;
    }

    function revealBatches(
        uint256 jobId,
        uint32[] calldata batches,
        bytes32[] calldata roots,
        bytes32[] calldata salts,
        bytes[] calldata leavesCids
    ) external {
        uint256 len = batches.length;
        if (roots.length != len || salts.length != len || leavesCids.length != len) {
            revert ShardMarket__LengthMismatch();
        }
        uint256 n = _core[jobId].n;
        uint256 me = _myIndex(jobId);
        for (uint256 j; j < len; ++j) {
            _reveal(jobId, n, me, batches[j], roots[j], salts[j]);
            emit BatchRevealed(jobId, batches[j], msg.sender, roots[j], leavesCids[j]);
        }
    }

    function _reveal(uint256 jobId, uint256 n, uint256 me, uint32 b, bytes32 root, bytes32 salt) private {
        if (root == bytes32(0)) revert ShardMarket__ZeroRoot();
        Slot memory bt = _slots[jobId][b];
        if (bt.state != BatchState.Revealing) revert ShardMarket__WrongBatchState(jobId, b, bt.state);
        if (block.timestamp > bt.deadline) revert ShardMarket__DeadlinePassed(jobId, b, bt.deadline);
        uint256 slot = _slotOf(jobId, b, bt.operators, n, me);
        uint8 bit = uint8(1 << slot);
        if (bt.committed & bit == 0) revert ShardMarket__NotCommitted(jobId, b, msg.sender);
        if (bt.revealed & bit != 0) revert ShardMarket__AlreadyRevealed(jobId, b, msg.sender);
        uint256 key = uint256(b) * 8 + slot;
        bytes32 committed = _commits[jobId][key];
        bytes32 computed = keccak256(abi.encode(jobId, b, msg.sender, root, salt));
        if (computed != committed) revert ShardMarket__CommitmentMismatch(jobId, b, msg.sender, committed, computed);
        _commits[jobId][key] = root;
        bt.revealed |= bit;
        _slots[jobId][b] = bt;
    }

    function proveBatches(uint256 jobId, uint32[] calldata batches, bytes32[][] calldata resultHashes) external {
        if (batches.length != resultHashes.length) revert ShardMarket__LengthMismatch();
        uint256 n = _core[jobId].n;
        uint256 me = _myIndex(jobId);
        Shape memory s = _shape[jobId];
        for (uint256 j; j < batches.length; ++j) {
            _prove(jobId, n, me, s, batches[j], resultHashes[j]);
            emit LeavesProven(jobId, batches[j], msg.sender, resultHashes[j]);
        }
    }

    function _prove(uint256 jobId, uint256 n, uint256 me, Shape memory s, uint32 b, bytes32[] calldata results)
        private
    {
        Slot memory bt = _slots[jobId][b];
        if (bt.state != BatchState.Proving) revert ShardMarket__WrongBatchState(jobId, b, bt.state);
        if (block.timestamp > bt.deadline) revert ShardMarket__DeadlinePassed(jobId, b, bt.deadline);
        uint256 slot = _slotOf(jobId, b, bt.operators, n, me);
        uint8 bit = uint8(1 << slot);
        if (bt.revealed & bit == 0) revert ShardMarket__NotRevealed(jobId, b, msg.sender);
        if (bt.proven & bit != 0) revert ShardMarket__AlreadyProven(jobId, b, msg.sender);
        uint256 key = uint256(b) * 8 + slot;
        bytes32 revealed = _commits[jobId][key];
        bytes32 computed = _leavesRoot(jobId, s, b, results);
        if (computed != revealed) revert ShardMarket__RootMismatch(jobId, b, msg.sender, revealed, computed);
        _proofs[jobId][key] = keccak256(abi.encode(results));
        bt.proven |= bit;
        _slots[jobId][b] = bt;
    }

    /// @dev The root over `leafOf(firstShard + i, results[i])` of batch b; every shard listed,
    /// none with a zero result.
    function _leavesRoot(uint256 jobId, Shape memory s, uint32 b, bytes32[] calldata results)
        private
        pure
        returns (bytes32)
    {
        uint256 count = _batchShards(s, b);
        if (results.length != count) revert ShardMarket__BadLeafCount(jobId, b, results.length, count);
        uint256 first = uint256(b) * s.batchSize;
        bytes32[] memory level = new bytes32[](count);
        uint256 zero = count; // index of the first zero result, if any
        assembly ("memory-safe") {
            let at := add(level, 0x20)
            for { let i := 0 } lt(i, count) { i := add(i, 1) } {
                let h := calldataload(add(results.offset, shl(5, i)))
                if iszero(h) {
                    zero := i
                    break
                }
                // leafOf(first + i, h) = keccak256(abi.encode(uint32(first + i), h))
                mstore(0x00, add(first, i))
                mstore(0x20, h)
                mstore(add(at, shl(5, i)), keccak256(0x00, 0x40))
            }
        }
        if (zero != count) revert ShardMarket__ZeroResult(jobId, b, uint32(first + zero));
        return _reduce(level, count);
    }

    // =====================================================================================
    // anyone
    // =====================================================================================

    /// @dev Runs in `settlement` (ShardSettlement.closeBidding) on this contract's storage.
    function closeBidding(uint256 jobId) external {
        jobId; // named for the ABI; the calldata is forwarded as is
        _delegate();
    }

    /// @dev Runs in `settlement` (ShardSettlement.settleBatches) on this contract's storage.
    function settleBatches(uint256 jobId, uint32[] calldata batches) external {
        (jobId, batches); // named for the ABI; the calldata is forwarded as is
        _delegate();
    }

    /// @dev Runs in `settlement` (ShardSettlement.settleProven) on this contract's storage.
    function settleProven(uint256 jobId, uint32 batch, bytes32[][] calldata lists) external {
        (jobId, batch, lists); // named for the ABI; the calldata is forwarded as is
        _delegate();
    }

    function finalize(uint256 jobId) external {
        Core memory c = _loadCore(jobId);
        if (c.state != ShardJobState.Running) revert ShardMarket__WrongState(jobId, c.state);
        Shape memory s = _shape[jobId];
        uint256 done = uint256(s.verified) + s.failed;
        if (done != s.batchCount) revert ShardMarket__NotAllFinal(jobId, done, s.batchCount);
        c.state = ShardJobState.Done;
        _core[jobId] = c;
        uint256 escrow = _escrow[jobId];
        if (escrow != 0) {
            _escrow[jobId] = 0;
            _refund(jobId, c.creator, escrow);
        }
        emit ShardJobDone(jobId, s.verified, s.failed);
    }

    function claim() external {
        uint256 amount = _withdrawable[msg.sender];
        if (amount == 0) revert ShardMarket__NothingToClaim(msg.sender);
        _withdrawable[msg.sender] = 0;
        emit Claimed(msg.sender, amount);
        (bool ok,) = payable(msg.sender).call{value: amount}("");
        if (!ok) revert ShardMarket__TransferFailed(msg.sender, amount);
    }

    // =====================================================================================
    // views
    // =====================================================================================
    function getShardJob(uint256 jobId) external view returns (ShardJob memory job) {
        Core memory c = _core[jobId];
        Terms memory t = _terms[jobId];
        Shape memory s = _shape[jobId];
        job.creator = c.creator;
        job.state = c.state;
        job.shardCount = s.shardCount;
        job.batchSize = s.batchSize;
        job.batchCount = s.batchCount;
        job.concurrency = c.n;
        job.confidence = c.k;
        job.minBids = c.minBids;
        job.bidCount = s.bidCount;
        job.pricePerShard = t.price;
        job.collateralPerBatch = t.collateral;
        job.execWindow = t.execWindow;
        job.revealWindow = t.revealWindow;
        job.bidDeadline = c.bidDeadline;
        job.drawBlock = s.drawBlock;
        job.assignedBatches = s.assigned;
        job.verifiedBatches = s.verified;
        job.failedBatches = s.failed;
        job.specHash = _specHash[jobId];
        job.manifestHash = _manifestHash[jobId];
        job.escrow = _escrow[jobId];
    }

    function getBatch(uint256 jobId, uint32 batch) external view returns (Batch memory out) {
        Slot memory bt = _slots[jobId][batch];
        out.state = bt.state;
        out.attempt = bt.attempt;
        out.deadline = bt.deadline;
        out.committed = bt.committed;
        out.revealed = bt.revealed;
        out.proven = bt.proven;
        if (bt.attempt == 0) return out; // never assigned
        uint256 n = _core[jobId].n;
        out.operators = new address[](n);
        out.hashes = new bytes32[](n);
        for (uint256 s; s < n; ++s) {
            out.operators[s] = _bidders[jobId][uint8(bt.operators >> (8 * s))];
            out.hashes[s] = _commits[jobId][uint256(batch) * 8 + s];
        }
        if (bt.state == BatchState.Verified) {
            uint256 k = _core[jobId].k;
            for (uint256 s; s < n && out.root == bytes32(0); ++s) {
                if (bt.revealed & (1 << s) == 0) continue;
                uint256 same;
                for (uint256 r; r < n; ++r) {
                    if (bt.revealed & (1 << r) != 0 && out.hashes[r] == out.hashes[s]) ++same;
                }
                if (same >= k) out.root = out.hashes[s];
            }
        }
    }

    function getBidders(uint256 jobId) external view returns (address[] memory list) {
        uint256 count = _shape[jobId].bidCount;
        list = new address[](count);
        for (uint256 i; i < count; ++i) {
            list[i] = _bidders[jobId][i];
        }
    }

    function preferOf(uint256 jobId, address operator) external view returns (uint256[] memory words) {
        uint256 idx = _bidderIndex[jobId][operator];
        if (idx == 0) return words;
        words = new uint256[]((uint256(_shape[jobId].batchCount) + 255) >> 8);
        for (uint256 w; w < words.length; ++w) {
            words[w] = _prefer[jobId][(idx - 1) * 4 + w];
        }
    }

    function batchOf(uint256 jobId, uint32 shard) external view returns (uint32) {
        Shape memory s = _shape[jobId];
        if (shard >= s.shardCount) revert ShardMarket__BadShardIndex(jobId, shard);
        return shard / s.batchSize;
    }

    function commitmentOf(uint256 jobId, uint32 batch, address operator, bytes32 root, bytes32 salt)
        external
        pure
        returns (bytes32)
    {
        return keccak256(abi.encode(jobId, batch, operator, root, salt));
    }

    function leafOf(uint32 shardIndex, bytes32 resultHash) public pure returns (bytes32) {
        return keccak256(abi.encode(shardIndex, resultHash));
    }

    function batchRoot(bytes32[] calldata leaves) external pure returns (bytes32) {
        if (leaves.length == 0) return bytes32(0);
        return _reduce(leaves, leaves.length);
    }

    function verifyLeaf(
        bytes32 root,
        uint32 shardIndex,
        bytes32 resultHash,
        bytes32[] calldata proof,
        uint256 position,
        uint256 leafCount
    ) external pure returns (bool) {
        if (position >= leafCount) return false;
        bytes32 h = leafOf(shardIndex, resultHash);
        uint256 used;
        while (leafCount > 1) {
            if (position & 1 == 1) {
                if (used == proof.length) return false;
                h = _hashPair(proof[used++], h);
            } else if (position + 1 < leafCount) {
                if (used == proof.length) return false;
                h = _hashPair(h, proof[used++]);
            }
            // else: the odd last node of its level is carried up unchanged
            position >>= 1;
            leafCount = (leafCount + 1) >> 1;
        }
        return used == proof.length && h == root;
    }

    function registryJobId(uint256 jobId) external pure returns (uint256) {
        return _registryJobId(jobId);
    }

    function withdrawable(address account) external view returns (uint256) {
        return _withdrawable[account];
    }

    function registry() external view returns (IOperatorRegistry) {
        return _registry;
    }

    function nextJobId() external view returns (uint256) {
        return _nextJobId;
    }

    function minBidWindow() external view returns (uint32) {
        return _minBidWindow;
    }

    function minExecWindow() external view returns (uint32) {
        return _minExecWindow;
    }

    function minRevealWindow() external view returns (uint32) {
        return _minRevealWindow;
    }

    function drawDelay() external view returns (uint32) {
        return _drawDelay;
    }

    function maxCollateralFactor() external view returns (uint16) {
        return _maxCollateralFactor;
    }

    // =====================================================================================
    // helpers
    // =====================================================================================

    /// @dev Runs the current call's calldata in `settlement` on this contract's storage and
    /// returns or reverts with its result.
    function _delegate() private {
        address target = settlement;
        assembly {
            calldatacopy(0, 0, calldatasize())
            let ok := delegatecall(gas(), target, 0, calldatasize(), 0, 0)
            returndatacopy(0, 0, returndatasize())
            if iszero(ok) { revert(0, returndatasize()) }
            return(0, returndatasize())
        }
    }

    function _myIndex(uint256 jobId) private view returns (uint256) {
        uint256 idx = _bidderIndex[jobId][msg.sender];
        if (idx == 0) revert ShardMarket__NotBidder(jobId, msg.sender);
        return idx - 1;
    }

    /// @dev The caller's slot (bidder index `me`) in a batch; reverts when it holds none.
    function _slotOf(uint256 jobId, uint32 b, uint64 operators, uint256 n, uint256 me) private view returns (uint256) {
        for (uint256 s; s < n; ++s) {
            if (uint8(operators >> (8 * s)) == me) return s;
        }
        revert ShardMarket__NotOnBatch(jobId, b, msg.sender);
    }

    /// @dev The Merkle root over `level[0..count)` (1 <= count <= level.length), built in place:
    /// node i of the next level is hash(2i, 2i + 1), or node 2i carried up when it is the last.
    function _reduce(bytes32[] memory level, uint256 count) private pure returns (bytes32 root) {
        assembly ("memory-safe") {
            let at := add(level, 0x20)
            for {} gt(count, 1) {} {
                let next := shr(1, add(count, 1))
                for { let i := 0 } lt(i, next) { i := add(i, 1) } {
                    let l := add(at, shl(6, i))
                    switch lt(add(shl(1, i), 1), count)
                    case 1 {
                        mstore(0x00, mload(l))
                        mstore(0x20, mload(add(l, 0x20)))
                        mstore(add(at, shl(5, i)), keccak256(0x00, 0x40))
                    }
                    default { mstore(add(at, shl(5, i)), mload(l)) }
                }
                count := next
            }
            root := mload(at)
        }
    }

    function _hashPair(bytes32 left, bytes32 right) private pure returns (bytes32 h) {
        assembly ("memory-safe") {
            mstore(0x00, left)
            mstore(0x20, right)
            h := keccak256(0x00, 0x40)
        }
    }
}
