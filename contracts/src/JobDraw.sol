// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IOperatorRegistry} from "./interfaces/IOperatorRegistry.sol";

/// @title JobDraw
/// @notice The market's random draws as view logic: the order in which bids are tried for the
/// deals, and the mediators of a dispute. Deployed by `JobMarket`'s constructor (its address is
/// `JobMarket.draws()`); holds no state and no money, locks nothing: the market locks the picks.
/// @dev Every draw is a function of the seed the market passes (derived from the hash of a block
/// fixed before the seed is known) and of inputs frozen when the draw was armed: the bids, or the
/// registry's pool size and the arming block. See docs/protocol.md, "Selection and randomness".
contract JobDraw {
    /// @dev Registry entries drawn at most when looking for mediators.
    uint256 public constant MEDIATOR_SCAN = 64;

    IOperatorRegistry public immutable registry;
    address public immutable market;
    uint96 private immutable _minStake;

    /// @notice What a mediator draw needs to know. `pool` is the registry's `eligibleCount()` and
    /// `armBlock` the block number when the dispute was opened; `exclude` are the job's deals (and
    /// the creator and challenger).
    struct MediatorDraw {
        uint256 seed;
        uint256 pool;
        uint64 armBlock;
        uint8 need;
        uint96 collateral;
        address[] exclude;
    }

    constructor(IOperatorRegistry registry_, uint96 minStake_) {
        registry = registry_;
        market = msg.sender;
        _minStake = minStake_;
    }

    /// @notice A uniformly random permutation of `0..count-1` (Fisher-Yates, the seed re-hashed
    /// for each step). The market tries the bids in this order until `concurrency` are locked.
    function shuffle(uint256 seed, uint256 count) external pure returns (uint256[] memory order) {
        order = new uint256[](count);
        for (uint256 i; i < count; ++i) {
            order[i] = i;
        }
        for (uint256 i; i + 1 < count; ++i) {
            seed = uint256(keccak256(abi.encode(seed)));
            uint256 j = i + seed % (count - i);
            (order[i], order[j]) = (order[j], order[i]);
        }
    }

    /// @notice Draws up to `need` distinct mediators from the registry's eligible pool as it was
    /// when the dispute was armed: indices `0..pool-1` only, skipping entries that took their index
    /// in or after `armBlock` (joined, rejoined or moved by a swap-and-pop since), excluded
    /// addresses, those already drawn and those that cannot lock `collateral` now (the conditions
    /// of `registry.lock`). A pool of at most MEDIATOR_SCAN entries is visited in a random order,
    /// each entry once; a larger pool gets MEDIATOR_SCAN independent draws. Entries are drawn one
    /// by one (never a contiguous run), so operators registered together are not drawn together.
    function drawMediators(MediatorDraw memory d) external view returns (address[] memory picked, uint256 found) {
        picked = new address[](d.need);
        uint256 pool = d.pool;
        uint256 live = registry.eligibleCount();
        bool small = pool <= MEDIATOR_SCAN;
        uint256[] memory order;
        if (small) {
            order = new uint256[](pool);
            for (uint256 i; i < pool; ++i) {
                order[i] = i;
            }
        }
        uint256 tries = small ? pool : MEDIATOR_SCAN;
        uint256 seed = d.seed;
        for (uint256 a; a < tries && found < picked.length; ++a) {
            seed = uint256(keccak256(abi.encode(seed)));
            uint256 idx;
            if (small) {
                uint256 j = a + seed % (pool - a);
                (order[a], order[j]) = (order[j], order[a]);
                idx = order[a];
            } else {
                idx = seed % pool;
            }
            if (idx >= live) continue; // the pool shrank since the arm block
            (address op, uint64 since) = registry.eligibleEntry(idx);
            if (since >= d.armBlock || _contains(d.exclude, d.exclude.length, op) || _contains(picked, found, op)) {
                continue;
            }
            (, uint96 staked, uint96 free) = registry.operatorStatus(op);
            if (free >= d.collateral && staked >= _minStake) picked[found++] = op;
        }
    }

    function _contains(address[] memory list, uint256 count, address x) private pure returns (bool) {
        for (uint256 i; i < count; ++i) {
            if (list[i] == x) return true;
        }
        return false;
    }
}
