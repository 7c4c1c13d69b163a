// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ShardMarketStorage} from "./ShardMarketStorage.sol";
import {IOperatorRegistry} from "./interfaces/IOperatorRegistry.sol";

/// @title ShardSettlement
/// @notice The draw and the per-batch settlement of sharded jobs. `ShardMarket` deploys one in
/// its constructor and runs `closeBidding`, `settleBatches` and `settleProven` here by
/// delegatecall, on its own storage (this contract alone would exceed the 24,576-byte code size
/// limit together with the rest). Called directly it only sees its own empty storage, and the
/// registry rejects it.
/// @dev Registry calls are aggregated per bidder and transaction (one unlock, lock and slash
/// each, in that order, at the end): the registry's locks are per operator, not per job.
contract ShardSettlement is ShardMarketStorage {
    /// @dev Running state of one draw or settlement transaction; per-bidder arrays by index.
    struct Ctx {
        uint256 jobId;
        Core c;
        Terms t;
        Shape s;
        uint256 escrow;
        uint256 refund;
        uint256 burned;
        address[] bidders;
        uint256[] unlockAmt;
        uint256[] lockAmt;
        uint256[] slashAmt;
        uint256[] pay;
        uint256[] comp;
        // draw pool, loaded on first use
        bool loaded;
        uint256 seed;
        uint256 words;
        uint64 usable; // stake is lockable (>= minStake, nonzero)
        uint64 barred; // slashed in this transaction
        uint64 able; // usable, not barred, free stake for one more batch
        uint256[] free;
        uint256[] prefer; // bidder * words + word
    }

    /// @dev One batch's tally.
    struct Tally {
        bytes32[8] roots;
        bytes32 best;
        uint256 bestCount;
        bool verified; // >= k equal roots, no tie
        bool judged; // verified, or a strict majority of the n slots agrees
        uint256 pay;
        uint256 pot;
        uint64 agreeSet;
        uint8 agreeing;
    }

    /// @dev One Proving batch's per-shard tally (`settleProven`).
    struct Proof {
        uint256 provers; // slots that proved (list p is the p-th of them in slot order)
        bytes32[] accepted; // per shard, 0 = failed
        uint256 verifiedShards;
        uint256 wrong; // bit p: list p has an entry against a judged shard's result
    }

    constructor(
        IOperatorRegistry registry_,
        uint32 minBidWindow_,
        uint32 minExecWindow_,
        uint32 minRevealWindow_,
        uint32 drawDelay_,
        uint16 maxCollateralFactor_
    )
        ShardMarketStorage(registry_, minBidWindow_, minExecWindow_, minRevealWindow_, drawDelay_, maxCollateralFactor_)
    {}

    /// @dev See IShardMarket.closeBidding.
    function closeBidding(uint256 jobId) external {
        Core memory c = _loadCore(jobId);
        if (c.state == ShardJobState.Bidding) {
            if (block.timestamp <= c.bidDeadline) revert ShardMarket__BiddingOpen(jobId, c.bidDeadline);
            Shape memory s = _shape[jobId];
            if (s.bidCount < c.minBids) {
                c.state = ShardJobState.Expired;
                _core[jobId] = c;
                uint256 escrow = _escrow[jobId];
                _escrow[jobId] = 0;
                _refund(jobId, c.creator, escrow);
                emit ShardJobExpired(jobId, s.bidCount);
                return;
            }
            c.state = ShardJobState.Drawing;
            _core[jobId] = c;
            _arm(jobId, s);
            return;
        }
        if (c.state != ShardJobState.Drawing) revert ShardMarket__WrongState(jobId, c.state);
        Ctx memory x = _ctx(jobId, c);
        if (x.seed == 0) {
            uint64 drawBlock = x.s.drawBlock;
            if (block.number <= drawBlock) revert ShardMarket__DrawNotReady(jobId, drawBlock);
            bytes32 h = blockhash(drawBlock);
            if (h == bytes32(0)) {
                // more than 256 blocks late: the hash is gone, arm again
                _arm(jobId, x.s);
                return;
            }
            x.seed = uint256(keccak256(abi.encode(h, jobId)));
            _seed[jobId] = x.seed;
            emit DrawSeeded(jobId, x.seed);
        }
        uint256 end = uint256(x.s.assigned) + DRAW_CHUNK;
        if (end > x.s.batchCount) end = x.s.batchCount;
        for (uint256 b = x.s.assigned; b < end; ++b) {
            Slot memory bt;
            bt.attempt = 1;
            if (!_assign(x, b, bt)) _failBatch(x, b, bt, BatchFailReason.NoOperators);
        }
        x.s.assigned = uint16(end);
        if (end == x.s.batchCount) {
            c.state = ShardJobState.Running;
            _core[jobId] = c;
            emit ShardJobRunning(jobId);
        }
        _flush(x);
    }

    /// @dev See IShardMarket.settleBatches.
    function settleBatches(uint256 jobId, uint32[] calldata batches) external {
        Core memory c = _loadCore(jobId);
        if (c.state != ShardJobState.Running && c.state != ShardJobState.Drawing) {
            revert ShardMarket__WrongState(jobId, c.state);
        }
        Ctx memory x = _ctx(jobId, c);
        for (uint256 j; j < batches.length; ++j) {
            _settle(x, batches[j]);
        }
        _flush(x);
    }

    /// @dev See IShardMarket.settleProven.
    function settleProven(uint256 jobId, uint32 b, bytes32[][] calldata lists) external {
        Core memory c = _loadCore(jobId);
        if (c.state != ShardJobState.Running && c.state != ShardJobState.Drawing) {
            revert ShardMarket__WrongState(jobId, c.state);
        }
        Slot memory bt = _slots[jobId][b];
        if (bt.state != BatchState.Proving) revert ShardMarket__WrongBatchState(jobId, b, bt.state);
        if (block.timestamp <= bt.deadline && bt.proven != bt.revealed) {
            revert ShardMarket__BatchNotDue(jobId, b, bt.deadline);
        }
        Ctx memory x = _ctx(jobId, c);
        Proof memory pf = _checkLists(x, b, bt, lists);
        _vote(x, pf, lists);
        _payProven(x, b, bt, pf);
        _flush(x);
    }

    /// @dev The lists of the slots that proved, in slot order, each the one its slot proved.
    function _checkLists(Ctx memory x, uint32 b, Slot memory bt, bytes32[][] calldata lists)
        private
        view
        returns (Proof memory pf)
    {
        mapping(uint256 => bytes32) storage proofs = _proofs[x.jobId];
        for (uint256 s; s < x.c.n; ++s) {
            if (bt.proven & (1 << s) == 0) continue;
            uint256 p = pf.provers++;
            if (p >= lists.length) continue; // counted below
            bytes32 proven = proofs[uint256(b) * 8 + s];
            bytes32 given = keccak256(abi.encode(lists[p]));
            if (given != proven) revert ShardMarket__ListMismatch(x.jobId, b, uint8(s), proven, given);
        }
        if (lists.length != pf.provers) revert ShardMarket__BadListCount(x.jobId, b, lists.length, pf.provers);
        pf.accepted = new bytes32[](_batchShards(x.s, b));
    }

    /// @dev Per shard: the entry with the most equal proven entries is accepted when they are at
    /// least k and no other entry has as many; lists differing from it are wrong when it is
    /// accepted or a strict majority of the n slots (as the batch tally judges roots). Every
    /// list holds batchShards entries (`proveBatches` checked it, `_checkLists` its hash), so
    /// the entries are read from calldata directly.
    function _vote(Ctx memory x, Proof memory pf, bytes32[][] calldata lists) private pure {
        uint256 provers = pf.provers;
        if (provers == 0) return; // no list: every shard fails
        uint256[8] memory at; // calldata offset of list p's first entry
        for (uint256 p; p < provers; ++p) {
            bytes32[] calldata list = lists[p];
            uint256 offset;
            assembly ("memory-safe") {
                offset := list.offset
            }
            at[p] = offset;
        }
        bytes32[8] memory v;
        uint256 count = pf.accepted.length;
        for (uint256 i; i < count; ++i) {
            (bytes32 best, uint256 bestCount, uint256 differs) = _voteShard(at, v, provers, i << 5);
            bool ok = bestCount >= x.c.k;
            if (ok) {
                pf.accepted[i] = best;
                ++pf.verifiedShards;
            }
            if (ok || bestCount * 2 > x.c.n) pf.wrong |= differs;
        }
    }

    /// @dev One shard's entries (at byte `off` of each list, loaded into `v`): the most frequent
    /// one and its count (0 when another entry has as many), and the set of lists whose entry
    /// differs from it. Entries that all agree (the common case) take one pass.
    function _voteShard(uint256[8] memory at, bytes32[8] memory v, uint256 provers, uint256 off)
        private
        pure
        returns (bytes32 best, uint256 bestCount, uint256 differs)
    {
        assembly ("memory-safe") {
            best := calldataload(add(mload(at), off))
            let agree := 1
            for { let p := 0 } lt(p, provers) { p := add(p, 1) } {
                let e := calldataload(add(mload(add(at, shl(5, p))), off))
                mstore(add(v, shl(5, p)), e)
                agree := and(agree, eq(e, best))
            }
            switch agree
            case 1 { bestCount := provers }
            default {
                let tie := 0
                for { let p := 0 } lt(p, provers) { p := add(p, 1) } {
                    let e := mload(add(v, shl(5, p)))
                    let same := 0
                    for { let q := 0 } lt(q, provers) { q := add(q, 1) } {
                        same := add(same, eq(mload(add(v, shl(5, q))), e))
                    }
                    switch gt(same, bestCount)
                    case 1 {
                        best := e
                        bestCount := same
                        tie := 0
                    }
                    default { if and(eq(same, bestCount), iszero(eq(e, best))) { tie := 1 } }
                }
                for { let p := 0 } lt(p, provers) { p := add(p, 1) } {
                    if iszero(eq(mload(add(v, shl(5, p))), best)) { differs := or(differs, shl(p, 1)) }
                }
                if tie { bestCount := 0 }
            }
        }
    }

    /// @dev Slashes, unlocks and pays the slots of a Proving batch after `_vote` and ends it:
    /// SettledPerShard with at least one accepted shard, else Failed.
    function _payProven(Ctx memory x, uint32 b, Slot memory bt, Proof memory pf) private {
        Tally memory tl;
        tl.pay = pf.verifiedShards * x.t.price;
        uint256 p;
        for (uint256 s; s < x.c.n; ++s) {
            uint256 i = uint8(bt.operators >> (8 * s));
            uint256 bit = 1 << s;
            if (bt.revealed & bit == 0) {
                tl.pot += _slash(x, b, i, bt.committed & bit != 0 ? SlashReason.NoReveal : SlashReason.NoCommit);
            } else if (bt.proven & bit == 0) {
                tl.pot += _slash(x, b, i, SlashReason.NoProof);
            } else if (pf.wrong & (1 << p++) != 0) {
                tl.pot += _slash(x, b, i, SlashReason.WrongResult);
            } else {
                _unlock(x, i);
                if (tl.pay != 0) {
                    x.pay[i] += tl.pay;
                    tl.agreeSet |= uint64(1 << i);
                    ++tl.agreeing;
                }
            }
        }
        emit BatchSettledPerShard(x.jobId, b, pf.accepted, uint32(pf.verifiedShards));
        if (pf.verifiedShards == 0) {
            x.burned += tl.pot;
            _failBatch(x, b, bt, BatchFailReason.NoQuorum);
            return;
        }
        _share(x, tl);
        bt.state = BatchState.SettledPerShard;
        bt.deadline = uint64(block.timestamp);
        _slots[x.jobId][b] = bt;
        ++x.s.verified;
    }

    /// @dev Takes the agreeing operators' pay out of the escrow and shares the slashed pot among
    /// them; what cannot be shared (no agreeing operator, rounding) is burned.
    function _share(Ctx memory x, Tally memory tl) private pure {
        x.escrow -= tl.pay * tl.agreeing;
        uint256 share = tl.agreeing == 0 ? 0 : tl.pot / tl.agreeing;
        if (share != 0) {
            for (uint256 i; tl.agreeSet != 0; ++i) {
                if (tl.agreeSet & (1 << i) != 0) {
                    tl.agreeSet &= ~uint64(1 << i);
                    x.comp[i] += share;
                }
            }
        }
        x.burned += tl.pot - share * tl.agreeing;
    }

    function _arm(uint256 jobId, Shape memory s) private {
        s.drawBlock = uint64(block.number) + _drawDelay;
        _shape[jobId] = s;
        emit DrawArmed(jobId, s.drawBlock);
    }

    function _ctx(uint256 jobId, Core memory c) private view returns (Ctx memory x) {
        x.jobId = jobId;
        x.c = c;
        x.t = _terms[jobId];
        x.s = _shape[jobId];
        x.escrow = _escrow[jobId];
        x.seed = _seed[jobId];
        uint256 count = x.s.bidCount;
        x.bidders = new address[](count);
        for (uint256 i; i < count; ++i) {
            x.bidders[i] = _bidders[jobId][i];
        }
        x.unlockAmt = new uint256[](count);
        x.lockAmt = new uint256[](count);
        x.slashAmt = new uint256[](count);
        x.pay = new uint256[](count);
        x.comp = new uint256[](count);
    }

    /// @dev Reads every bidder's stake from the registry and its prefer words (once per
    /// transaction, on the first assignment).
    function _loadPool(Ctx memory x) private view {
        x.loaded = true;
        uint256 count = x.bidders.length;
        uint256 words = (uint256(x.s.batchCount) + 255) >> 8;
        x.words = words;
        x.free = new uint256[](count);
        x.prefer = new uint256[](count * words);
        mapping(uint256 => uint256) storage prefer = _prefer[x.jobId];
        for (uint256 i; i < count; ++i) {
            (, uint96 staked, uint96 free) = _registry.operatorStatus(x.bidders[i]);
            // the conditions of `_registry.lock` besides free stake
            if (staked != 0 && staked >= _minStake) x.usable |= uint64(1 << i);
            x.free[i] = free;
            for (uint256 w; w < words; ++w) {
                x.prefer[i * words + w] = prefer[i * 4 + w];
            }
            _refresh(x, i);
        }
    }

    /// @dev Whether bidder i can take one more batch in this transaction: its free stake at load,
    /// plus what this transaction unlocks, minus what it locks, covers one more collateral.
    function _refresh(Ctx memory x, uint256 i) private pure {
        uint64 bit = uint64(1 << i);
        if (x.usable & bit != 0 && x.barred & bit == 0 && x.free[i] + x.unlockAmt[i] >= x.lockAmt[i] + x.t.collateral) {
            x.able |= bit;
        } else {
            x.able &= ~bit;
        }
    }

    /// @dev Assigns batch b (attempt `bt.attempt`) to n distinct bidders not excluded on it.
    /// Slot 0: the first able bidder in a random order of those that preferred b; the other
    /// slots: the first able bidders not yet on b in a random order of all candidates. The two
    /// orders come from keccak256(seed, batch, attempt, 0 | 1) alone, and a bidder that cannot
    /// lock is skipped, not removed from the order, so a bidder changing its own stake only
    /// decides whether it is on the batch (the next in line takes its place), never who else is.
    /// Returns false, and changes nothing, when fewer than n candidates can lock.
    function _assign(Ctx memory x, uint256 b, Slot memory bt) private returns (bool) {
        if (!x.loaded) _loadPool(x);
        uint64 cand = uint64((1 << x.bidders.length) - 1) & ~bt.excluded;
        uint256 n = x.c.n;
        if (_popcount(x.able & cand) < n) return false;
        uint64 pref = _preferMask(x, b) & cand;
        uint256 r0 = uint256(keccak256(abi.encode(x.seed, b, bt.attempt, 0)));
        uint256 r1 = uint256(keccak256(abi.encode(x.seed, b, bt.attempt, 1)));
        address[] memory picked = new address[](n);
        uint64 on;
        uint64 ops;
        uint256 s;
        while (s < n) {
            uint256 i;
            if (s == 0 && pref != 0) {
                i = _nth(pref, r0 % _popcount(pref));
                r0 = uint256(keccak256(abi.encode(r0)));
                pref &= ~uint64(1 << i);
            } else {
                i = _nth(cand, r1 % _popcount(cand));
                r1 = uint256(keccak256(abi.encode(r1)));
                cand &= ~uint64(1 << i);
            }
            if (x.able & (1 << i) == 0 || on & (1 << i) != 0) continue;
            on |= uint64(1 << i);
            ops |= uint64(i << (8 * s));
            picked[s++] = x.bidders[i];
            x.lockAmt[i] += x.t.collateral;
            _refresh(x, i);
        }
        bt.state = BatchState.Assigned;
        bt.operators = ops;
        bt.committed = 0;
        bt.revealed = 0;
        bt.deadline = uint64(block.timestamp) + x.t.execWindow;
        _slots[x.jobId][b] = bt;
        emit BatchAssigned(x.jobId, uint32(b), picked, bt.deadline);
        return true;
    }

    /// @dev Bit i set when bidder i declared batch b in its prefer words.
    function _preferMask(Ctx memory x, uint256 b) private pure returns (uint64 pref) {
        uint256 count = x.bidders.length;
        uint256 stride = x.words * 32;
        uint256[] memory words = x.prefer;
        assembly ("memory-safe") {
            let at := add(add(words, 32), mul(shr(8, b), 32))
            let bit := and(b, 255)
            for { let i := 0 } lt(i, count) { i := add(i, 1) } {
                if and(shr(bit, mload(add(at, mul(i, stride)))), 1) { pref := or(pref, shl(i, 1)) }
            }
        }
    }

    function _settle(Ctx memory x, uint32 b) private {
        Slot memory bt = _slots[x.jobId][b];
        if (bt.state == BatchState.Assigned) {
            if (block.timestamp <= bt.deadline) revert ShardMarket__BatchNotDue(x.jobId, b, bt.deadline);
            if (_popcount(bt.committed) >= x.c.k) {
                bt.state = BatchState.Revealing;
                bt.deadline = uint64(block.timestamp) + x.t.revealWindow;
                _slots[x.jobId][b] = bt;
                emit BatchRevealing(x.jobId, b, bt.deadline);
                return;
            }
            // Too few commits: committers get their collateral back, the others are slashed and
            // never drawn on this batch again; the batch is drawn anew (or fails).
            uint256 pot;
            for (uint256 s; s < x.c.n; ++s) {
                uint256 i = uint8(bt.operators >> (8 * s));
                if (bt.committed & (1 << s) != 0) {
                    _unlock(x, i);
                    delete _commits[x.jobId][uint256(b) * 8 + s];
                } else {
                    pot += _slash(x, b, i, SlashReason.NoCommit);
                    bt.excluded |= uint64(1 << i);
                }
            }
            x.burned += pot;
            BatchFailReason reason = BatchFailReason.TooFewCommits;
            if (bt.attempt < MAX_ATTEMPTS) {
                ++bt.attempt;
                if (_assign(x, b, bt)) return;
                reason = BatchFailReason.NoOperators;
            }
            _failBatch(x, b, bt, reason);
        } else if (bt.state == BatchState.Revealing) {
            if (block.timestamp <= bt.deadline && bt.revealed != bt.committed) {
                revert ShardMarket__BatchNotDue(x.jobId, b, bt.deadline);
            }
            _tally(x, b, bt);
        } else {
            revert ShardMarket__WrongBatchState(x.jobId, b, bt.state);
        }
    }

    /// @dev Ends a batch's reveal phase. >= k equal roots (and no tie): Verified, their operators
    /// paid and unlocked, other revealers slashed (WrongResult). Else, with >= k reveals (a
    /// disagreement): Proving, nothing settled yet (`settleProven`). Otherwise Failed: revealers
    /// are slashed only when a strict majority of the n slots agrees (the others are then wrong),
    /// else unlocked. Either way committed-but-unrevealed slots are slashed (NoReveal), slots that
    /// never committed (NoCommit). Slashed collateral goes to the accepted root's operators in
    /// equal shares, else it is burned.
    function _tally(Ctx memory x, uint32 b, Slot memory bt) private {
        Tally memory tl = _count(x, b, bt);
        if (!tl.verified && _popcount(bt.revealed) >= x.c.k) {
            bt.state = BatchState.Proving;
            bt.deadline = uint64(block.timestamp) + x.t.revealWindow;
            _slots[x.jobId][b] = bt;
            emit BatchProving(x.jobId, b, bt.deadline);
            return;
        }
        uint256 n = x.c.n;
        for (uint256 s; s < n; ++s) {
            uint256 i = uint8(bt.operators >> (8 * s));
            if (bt.revealed & (1 << s) == 0) {
                tl.pot += _slash(x, b, i, bt.committed & (1 << s) != 0 ? SlashReason.NoReveal : SlashReason.NoCommit);
            } else if (tl.judged && tl.roots[s] != tl.best) {
                tl.pot += _slash(x, b, i, SlashReason.WrongResult);
            } else {
                _unlock(x, i);
                if (tl.verified) {
                    x.pay[i] += tl.pay;
                    tl.agreeSet |= uint64(1 << i);
                    ++tl.agreeing;
                }
            }
        }
        if (!tl.verified) {
            x.burned += tl.pot;
            _failBatch(x, b, bt, BatchFailReason.NoQuorum);
            return;
        }
        _share(x, tl);
        bt.state = BatchState.Verified;
        bt.deadline = uint64(block.timestamp);
        _slots[x.jobId][b] = bt;
        ++x.s.verified;
        emit BatchVerified(x.jobId, b, tl.best, tl.agreeing);
    }

    /// @dev The revealed roots of a batch and their largest group of equal roots.
    function _count(Ctx memory x, uint32 b, Slot memory bt) private view returns (Tally memory tl) {
        uint256 n = x.c.n;
        mapping(uint256 => bytes32) storage commits = _commits[x.jobId];
        for (uint256 s; s < n; ++s) {
            if (bt.revealed & (1 << s) != 0) tl.roots[s] = commits[uint256(b) * 8 + s];
        }
        bool tie;
        for (uint256 s; s < n; ++s) {
            if (bt.revealed & (1 << s) == 0) continue;
            uint256 same;
            for (uint256 r; r < n; ++r) {
                if (bt.revealed & (1 << r) != 0 && tl.roots[r] == tl.roots[s]) ++same;
            }
            if (same > tl.bestCount) {
                (tl.best, tl.bestCount, tie) = (tl.roots[s], same, false);
            } else if (same == tl.bestCount && tl.roots[s] != tl.best) {
                tie = true;
            }
        }
        tl.verified = tl.bestCount >= x.c.k && !tie;
        tl.judged = tl.verified || tl.bestCount * 2 > n;
        tl.pay = _batchShards(x.s, b) * x.t.price;
    }

    function _failBatch(Ctx memory x, uint256 b, Slot memory bt, BatchFailReason reason) private {
        bt.state = BatchState.Failed;
        bt.deadline = uint64(block.timestamp);
        _slots[x.jobId][b] = bt;
        uint256 amount = _batchShards(x.s, b) * x.c.n * x.t.price;
        x.escrow -= amount;
        x.refund += amount;
        ++x.s.failed;
        emit BatchFailed(x.jobId, uint32(b), reason);
    }

    function _unlock(Ctx memory x, uint256 i) private pure {
        x.unlockAmt[i] += x.t.collateral;
        if (x.loaded) _refresh(x, i);
    }

    function _slash(Ctx memory x, uint32 b, uint256 i, SlashReason reason) private returns (uint256) {
        uint96 amount = x.t.collateral;
        x.slashAmt[i] += amount;
        x.barred |= uint64(1 << i);
        if (x.loaded) _refresh(x, i);
        emit Slashed(x.jobId, b, x.bidders[i], amount, reason);
        return amount;
    }

    /// @dev Applies a transaction's effects: per bidder one registry unlock, lock and slash (in
    /// that order, so each succeeds: unlocks free what the locks use, slashes take collateral
    /// locked earlier), then payouts, refund, burn, escrow and counters.
    function _flush(Ctx memory x) private {
        uint256 rid = _registryJobId(x.jobId);
        for (uint256 i; i < x.bidders.length; ++i) {
            address op = x.bidders[i];
            if (x.unlockAmt[i] != 0) _registry.unlock(op, rid, uint96(x.unlockAmt[i]));
            uint256 amount = x.lockAmt[i];
            if (amount != 0 && !_registry.lock(op, rid, uint96(amount))) revert ShardMarket__LockFailed(op, amount);
            if (x.slashAmt[i] != 0) _registry.slash(op, rid, uint96(x.slashAmt[i]));
            if (x.pay[i] != 0) _credit(x.jobId, op, x.pay[i], PaymentKind.Execution);
            if (x.comp[i] != 0) _credit(x.jobId, op, x.comp[i], PaymentKind.Compensation);
        }
        if (x.refund != 0) _refund(x.jobId, x.c.creator, x.refund);
        if (x.burned != 0) {
            _withdrawable[address(0)] += x.burned;
            emit Burned(x.jobId, x.burned);
        }
        _escrow[x.jobId] = x.escrow;
        _shape[x.jobId] = x.s;
    }

    function _credit(uint256 jobId, address to, uint256 amount, PaymentKind kind) private {
        _withdrawable[to] += amount;
        emit Paid(jobId, to, amount, kind);
    }

    /// @dev Number of set bits (SWAR).
    function _popcount(uint64 x) private pure returns (uint256) {
        unchecked {
            uint256 v = x;
            v = v - ((v >> 1) & 0x5555555555555555);
            v = (v & 0x3333333333333333) + ((v >> 2) & 0x3333333333333333);
            v = (v + (v >> 4)) & 0x0f0f0f0f0f0f0f0f;
            return ((v * 0x0101010101010101) >> 56) & 0xff;
        }
    }

    /// @dev Index of the r-th (from 0) set bit of `mask`; r < popcount(mask).
    function _nth(uint64 mask, uint256 r) private pure returns (uint256) {
        unchecked {
            for (; r != 0; --r) {
                mask &= mask - 1; // drop the lowest set bit
            }
            return _popcount((mask & (~mask + 1)) - 1); // trailing zeros
        }
    }
}
