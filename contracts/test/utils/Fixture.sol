// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Test} from "./Test.sol";
import {OperatorRegistry} from "../../src/OperatorRegistry.sol";
import {JobMarket} from "../../src/JobMarket.sol";
import {IJobMarket} from "../../src/interfaces/IJobMarket.sol";
import {IOperatorRegistry} from "../../src/interfaces/IOperatorRegistry.sol";

/// @notice A deployed registry and market with funded, registered operators and helpers to drive
/// a job through its phases.
abstract contract Fixture is Test {
    uint64 internal constant UNBONDING = 7 days;
    uint96 internal constant MIN_STAKE = 1 ether;
    uint8 internal constant MEDIATORS = 3;
    uint96 internal constant BOND = 0.5 ether;
    uint96 internal constant OPERATOR_STAKE = 10 ether;
    uint96 internal constant MAX_PRICE = 0.1 ether;
    uint96 internal constant COLLATERAL = 1 ether;
    uint32 internal constant WINDOW = 1 hours;
    uint32 internal constant MIN_BID_WINDOW = 60;
    uint32 internal constant MIN_EXEC_WINDOW = 300;
    uint32 internal constant MIN_REVEAL_WINDOW = 300;
    /// @dev collateral <= 10 x maxPrice; COLLATERAL is exactly 10 x MAX_PRICE.
    uint16 internal constant COLLATERAL_FACTOR = 10;
    /// @dev The challenge bond is at least the job's escrow (100 %).
    uint16 internal constant BOND_PERCENT = 100;
    /// @dev The devchain/anvil setting: the arming block's own hash seeds the draw.
    uint32 internal constant DRAW_DELAY = 0;

    bytes32 internal constant GOOD = keccak256("the right result");
    bytes32 internal constant BAD = keccak256("a wrong result");
    bytes internal constant SPEC_CID = hex"01551220aabbccddeeff00112233445566778899aabbccddeeff00112233445566778899";
    bytes internal constant RESULT_CID = hex"01701220112233445566778899aabbccddeeff00112233445566778899aabbccddeeff00";

    OperatorRegistry internal registry;
    JobMarket internal market;
    address internal creator = address(0xC0FFEE);
    address[] internal ops;

    function setUp() public virtual {
        registry = new OperatorRegistry(UNBONDING, MIN_STAKE);
        market = _newMarket(registry);
        registry.setMarket(address(market));
        vm.deal(creator, 1000 ether);
        vm.label(creator, "creator");
        vm.warp(1_700_000_000);
        for (uint256 i; i < 12; ++i) {
            ops.push(_newOperator(i));
        }
        // a mediator draw armed in the block an operator joined the pool skips it: start a block on
        vm.roll(block.number + 1);
    }

    function _newMarket(OperatorRegistry r) internal returns (JobMarket) {
        return new JobMarket(
            IOperatorRegistry(address(r)),
            MEDIATORS,
            BOND,
            MIN_BID_WINDOW,
            MIN_EXEC_WINDOW,
            MIN_REVEAL_WINDOW,
            COLLATERAL_FACTOR,
            BOND_PERCENT,
            DRAW_DELAY
        );
    }

    function _newOperator(uint256 i) internal returns (address op) {
        op = address(uint160(0x1000 + i));
        vm.deal(op, 100 ether);
        vm.label(op, string.concat("operator", vm.toString(i)));
        vm.prank(op);
        registry.register{value: OPERATOR_STAKE}(abi.encodePacked("peer-", vm.toString(i)), _caps());
    }

    function _caps() internal pure returns (IOperatorRegistry.Capabilities memory) {
        return IOperatorRegistry.Capabilities({engines: 3, cpuMillicores: 4000, memoryMiB: 8192, diskGiB: 100, gpus: 0});
    }

    function _params(uint8 n, uint8 k, uint8 m) internal pure returns (IJobMarket.JobParams memory p) {
        p.specCid = SPEC_CID;
        p.specHash = keccak256("spec");
        p.concurrency = n;
        p.confidence = k;
        p.minBids = m;
        p.maxPrice = MAX_PRICE;
        p.collateral = COLLATERAL;
        p.bidWindow = WINDOW;
        p.execWindow = WINDOW;
        p.revealWindow = WINDOW;
        p.challengeWindow = 0;
        p.verifier = IJobMarket.Verifier.Deterministic;
        p.escalate = false;
    }

    function _post(IJobMarket.JobParams memory p) internal returns (uint256 jobId) {
        vm.prank(creator);
        jobId = market.postJob{value: uint256(p.concurrency) * p.maxPrice}(p);
    }

    /// @dev Bids from ops[first..first+count) at `price`.
    function _bids(uint256 jobId, uint256 first, uint256 count, uint96 price) internal {
        for (uint256 i = first; i < first + count; ++i) {
            vm.prank(ops[i]);
            market.bid(jobId, price);
        }
    }

    /// @dev Makes an armed draw (Drawing or DisputeDrawing): mines up to the block after the draw
    /// block and calls `finalize` there, like the node does.
    function _draw(uint256 jobId) internal {
        uint256 drawBlock = market.getJob(jobId).phaseDeadline;
        if (block.number <= drawBlock) vm.roll(drawBlock + 1);
        market.finalize(jobId);
    }

    /// @dev Ends bidding in a new block after the bid deadline: selects (exactly `concurrency`
    /// bids), arms the selection draw and draws in the next block (more bids), or expires.
    function _close(uint256 jobId) internal {
        IJobMarket.Job memory j = market.getJob(jobId);
        if (block.timestamp <= j.bidDeadline) vm.warp(j.bidDeadline + 1);
        vm.roll(block.number + 1);
        market.closeBidding(jobId);
        if (_state(jobId) == IJobMarket.JobState.Drawing) _draw(jobId);
    }

    /// @dev Bids from ops[first..first+count) at `price`, then closes bidding and draws the deals.
    function _bidSelect(uint256 jobId, uint256 first, uint256 count, uint96 price) internal {
        _bids(jobId, first, count, price);
        _close(jobId);
    }

    function _salt(address op) internal pure returns (bytes32) {
        return keccak256(abi.encode("salt", op));
    }

    /// @dev The sealed form of a plain result hash: what originals reveal and tallies compare.
    function _sealed(uint256 jobId, bytes32 result) internal pure returns (bytes32) {
        return keccak256(abi.encode(jobId, result));
    }

    /// @dev What `op` commits for the plain result hash `result` in the job's current phase: over
    /// the sealed hash as a selected operator (Running), over the plain hash as a mediator
    /// (Disputed).
    function _commitmentFor(uint256 jobId, address op, bytes32 result) internal view returns (bytes32) {
        bytes32 value = _state(jobId) == IJobMarket.JobState.Disputed ? result : _sealed(jobId, result);
        return keccak256(abi.encode(jobId, op, value, _salt(op)));
    }

    /// @dev Commits the plain result hash `result` by the rules of the phase (see `_commitmentFor`).
    function _commit(uint256 jobId, address op, bytes32 result) internal {
        bytes32 commitment = _commitmentFor(jobId, op, result);
        vm.prank(op);
        market.commitResult(jobId, commitment);
    }

    /// @dev Reveals the plain result hash `result` by the rules of the phase: its sealed hash with
    /// `revealResult` (Revealing), the plain hash with `revealMediation` (DisputeRevealing).
    function _reveal(uint256 jobId, address op, bytes32 result) internal {
        if (_state(jobId) == IJobMarket.JobState.DisputeRevealing) {
            vm.prank(op);
            market.revealMediation(jobId, result, _salt(op));
        } else {
            vm.prank(op);
            market.revealResult(jobId, _sealed(jobId, result), _salt(op));
        }
    }

    function _dealOps(uint256 jobId) internal view returns (address[] memory out) {
        IJobMarket.Deal[] memory d = market.getDeals(jobId);
        out = new address[](d.length);
        for (uint256 i; i < d.length; ++i) {
            out[i] = d[i].operator;
        }
    }

    function _mediatorOps(uint256 jobId) internal view returns (address[] memory out) {
        IJobMarket.Deal[] memory d = market.getMediators(jobId);
        out = new address[](d.length);
        for (uint256 i; i < d.length; ++i) {
            out[i] = d[i].operator;
        }
    }

    /// @dev Commits results[i] for deal i, then reveals them all (the last reveal settles); when
    /// that opens a dispute, draws its mediators in the next block.
    function _commitReveal(uint256 jobId, bytes32[] memory results) internal {
        address[] memory d = _dealOps(jobId);
        for (uint256 i; i < d.length; ++i) {
            _commit(jobId, d[i], results[i]);
        }
        for (uint256 i; i < d.length; ++i) {
            _reveal(jobId, d[i], results[i]);
        }
        if (_state(jobId) == IJobMarket.JobState.DisputeDrawing) _draw(jobId);
    }

    /// @dev Commits results[i] for deal i (or mediator i) and reveals all but the last; returns
    /// the last operator, whose reveal settles the phase.
    function _allButLastReveal(uint256 jobId, bytes32[] memory results, bool mediators)
        internal
        returns (address last)
    {
        if (mediators && _state(jobId) == IJobMarket.JobState.DisputeDrawing) _draw(jobId);
        address[] memory d = mediators ? _mediatorOps(jobId) : _dealOps(jobId);
        for (uint256 i; i < d.length; ++i) {
            _commit(jobId, d[i], results[i]);
        }
        for (uint256 i; i + 1 < d.length; ++i) {
            _reveal(jobId, d[i], results[i]);
        }
        return d[d.length - 1];
    }

    /// @dev Draws the mediators of a dispute the last reveal (or a challenge) opened, if not yet
    /// drawn, then commits results[i] for mediator i and reveals them all.
    function _mediate(uint256 jobId, bytes32[] memory results) internal {
        if (_state(jobId) == IJobMarket.JobState.DisputeDrawing) _draw(jobId);
        address[] memory d = _mediatorOps(jobId);
        for (uint256 i; i < d.length; ++i) {
            _commit(jobId, d[i], results[i]);
        }
        for (uint256 i; i < d.length; ++i) {
            _reveal(jobId, d[i], results[i]);
        }
    }

    function _state(uint256 jobId) internal view returns (IJobMarket.JobState) {
        return market.getJob(jobId).state;
    }

    function _assertState(uint256 jobId, IJobMarket.JobState expected) internal view {
        assertEq(uint256(_state(jobId)), uint256(expected), "job state");
    }

    function _stake(address op) internal view returns (uint96) {
        return registry.getOperator(op).stake;
    }

    function _locked(address op) internal view returns (uint96) {
        return registry.getOperator(op).locked;
    }

    function _results(bytes32 a, bytes32 b, bytes32 c) internal pure returns (bytes32[] memory r) {
        r = new bytes32[](3);
        (r[0], r[1], r[2]) = (a, b, c);
    }

    /// @dev The money each contract holds equals what it owes (burned money included).
    function _assertConservation(uint256[] memory jobIds, address[] memory accounts) internal view {
        uint256 owed;
        for (uint256 i; i < jobIds.length; ++i) {
            owed += market.getJob(jobIds[i]).escrow;
        }
        for (uint256 i; i < accounts.length; ++i) {
            owed += market.withdrawable(accounts[i]);
        }
        owed += market.withdrawable(address(0)); // burned: unowned, never claimable
        assertEq(address(market).balance, owed, "market balance == open escrow + unclaimed payouts + burned");
        uint256 bonded;
        for (uint256 i; i < registry.operatorCount(); ++i) {
            IOperatorRegistry.Operator memory o = registry.getOperator(registry.operatorAt(i));
            bonded += uint256(o.stake) + o.pendingWithdrawal;
        }
        assertEq(address(registry).balance, bonded, "registry balance == stakes + pending withdrawals");
    }
}
