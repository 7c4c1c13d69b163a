// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Fixture} from "./utils/Fixture.sol";
import {IJobMarket} from "../src/interfaces/IJobMarket.sol";

/// @notice The headline cost figure: one verified 3-node deterministic job, from post to paid.
/// `forge snapshot` records these tests in contracts/.gas-snapshot; -vv prints each call's gas.
contract GasTest is Fixture {
    uint96 internal constant PRICE = 0.08 ether;

    /// @dev post, 3 bids, closeBidding after the bid window (exactly 3 bids for 3 deals: nothing to
    /// draw, selects and locks), 3 commits and 3 reveals of the sealed hash (the third settles),
    /// publishResult (the plain hash, by a winner), on fresh accounts: every payout creates its
    /// balance slot.
    function test_Gas_VerifiedThreeNodeLifecycle() public {
        uint256 total = _lifecycle(true);
        log("lifecycle total", total);
        assertLe(total, 600_000, "verified 3-node lifecycle within 600k gas");
    }

    /// @dev The same lifecycle again with the same creator and operators, their earlier payouts
    /// not yet claimed (the steady state of a busy market).
    function test_Gas_VerifiedThreeNodeLifecycle_Repeat() public {
        vm.pauseGasMetering();
        _lifecycle(false);
        vm.resumeGasMetering();
        uint256 total = _lifecycle(true);
        log("repeat lifecycle total", total);
        assertLe(total, 600_000, "verified 3-node lifecycle within 600k gas");
    }

    function _lifecycle(bool print) internal returns (uint256 total) {
        IJobMarket.JobParams memory p = _params(3, 3, 3);
        uint256 g;

        vm.prank(creator);
        g = gasleft();
        uint256 jobId = market.postJob{value: 3 * MAX_PRICE}(p);
        total += _report(print, "postJob", g - gasleft());

        for (uint256 i; i < 3; ++i) {
            vm.prank(ops[i]);
            g = gasleft();
            market.bid(jobId, PRICE);
            total += _report(print, "bid", g - gasleft());
        }
        vm.warp(block.timestamp + WINDOW + 1);
        g = gasleft();
        market.closeBidding(jobId);
        total += _report(print, "closeBidding (3 bids for 3 deals: selects, 3 locks)", g - gasleft());
        bytes32[3] memory commitments;
        for (uint256 i; i < 3; ++i) {
            commitments[i] = keccak256(abi.encode(jobId, ops[i], _sealed(jobId, GOOD), _salt(ops[i])));
        }
        for (uint256 i; i < 3; ++i) {
            vm.prank(ops[i]);
            g = gasleft();
            market.commitResult(jobId, commitments[i]);
            total += _report(print, "commitResult", g - gasleft());
        }
        bytes32 sealedHash = _sealed(jobId, GOOD);
        for (uint256 i; i < 3; ++i) {
            bytes32 salt = _salt(ops[i]);
            vm.prank(ops[i]);
            g = gasleft();
            market.revealResult(jobId, sealedHash, salt);
            total += _report(print, i == 2 ? "revealResult (settles)" : "revealResult", g - gasleft());
        }
        _assertState(jobId, IJobMarket.JobState.Verified);
        vm.prank(ops[0]);
        g = gasleft();
        market.publishResult(jobId, GOOD);
        total += _report(print, "publishResult", g - gasleft());
    }

    /// @dev More bids than deals: closeBidding after the bid window arms the draw, closeBidding in
    /// the next block draws 3 of the 6 bids and locks them.
    function test_Gas_DrawnSelection() public {
        uint256 jobId = _post(_params(3, 3, 3));
        _bids(jobId, 0, 6, PRICE);
        vm.warp(block.timestamp + WINDOW + 1);
        uint256 g = gasleft();
        market.closeBidding(jobId);
        _report(true, "closeBidding (6 bids: arms the draw)", g - gasleft());
        vm.roll(block.number + 1);
        g = gasleft();
        market.closeBidding(jobId);
        _report(true, "closeBidding (next block: draws 3 of 6, 3 locks)", g - gasleft());
        _assertState(jobId, IJobMarket.JobState.Running);
    }

    function test_Gas_Claim() public {
        uint256 jobId = _post(_params(3, 3, 3));
        _bidSelect(jobId, 0, 3, PRICE);
        _commitReveal(jobId, _results(GOOD, GOOD, GOOD));
        vm.prank(ops[0]);
        uint256 g = gasleft();
        market.claim();
        _report(true, "claim", g - gasleft());
    }

    function _report(bool print, string memory what, uint256 gas) internal view returns (uint256) {
        if (print) log(what, gas);
        return gas;
    }
}
