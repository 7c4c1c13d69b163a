// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Fixture} from "./utils/Fixture.sol";
import {IJobMarket} from "../src/interfaces/IJobMarket.sol";
import {IOperatorRegistry} from "../src/interfaces/IOperatorRegistry.sol";
import {Vm} from "./utils/Vm.sol";

/// @notice End-to-end scenarios of the job state machine: every transition and ending.
contract JobMarketScenariosTest is Fixture {
    uint96 internal constant PRICE = 0.08 ether;

    function _jobs(uint256 a) internal pure returns (uint256[] memory j) {
        j = new uint256[](1);
        j[0] = a;
    }

    function _everyone() internal view returns (address[] memory all) {
        all = new address[](ops.length + 1);
        for (uint256 i; i < ops.length; ++i) {
            all[i] = ops[i];
        }
        all[ops.length] = creator;
    }

    // ---- happy path ----

    function test_HonestThreeOfThree_VerifiedAndPaid() public {
        uint256 jobId = _post(_params(3, 3, 3));
        _assertState(jobId, IJobMarket.JobState.Posted);
        assertEq(address(market).balance, 3 * MAX_PRICE, "escrow held");
        _bidSelect(jobId, 0, 3, PRICE);
        _assertState(jobId, IJobMarket.JobState.Running);
        for (uint256 i; i < 3; ++i) {
            assertEq(_locked(ops[i]), COLLATERAL, "winner collateral locked");
        }
        _commitReveal(jobId, _results(GOOD, GOOD, GOOD));

        IJobMarket.Job memory job = market.getJob(jobId);
        assertEq(uint256(job.state), uint256(IJobMarket.JobState.Verified), "verified");
        assertEq(job.sealedResult, _sealed(jobId, GOOD), "sealed result hash");
        assertEq(job.revealCount, 3, "reveals");
        assertEq(job.escrow, 0, "escrow released");
        for (uint256 i; i < 3; ++i) {
            assertEq(market.withdrawable(ops[i]), PRICE, "operator paid its bid");
            assertEq(_locked(ops[i]), 0, "collateral unlocked");
            assertEq(_stake(ops[i]), OPERATOR_STAKE, "stake intact");
        }
        assertEq(market.withdrawable(creator), 3 * (MAX_PRICE - PRICE), "unused escrow refunded");
        _assertConservation(_jobs(jobId), _everyone());

        uint256 before = ops[0].balance;
        vm.prank(ops[0]);
        market.claim();
        assertEq(ops[0].balance - before, PRICE, "claim pays out");
        assertEq(market.withdrawable(ops[0]), 0, "claimed balance cleared");
        _assertConservation(_jobs(jobId), _everyone());
    }

    function test_EventsTellTheWholeStory() public {
        IJobMarket.JobParams memory p = _params(3, 3, 3);
        vm.expectEmit(true, true, false, true, address(market));
        emit IJobMarket.JobPosted(1, creator, p, 3 * MAX_PRICE, uint64(block.timestamp) + WINDOW);
        uint256 jobId = _post(p);

        _bids(jobId, 0, 2, PRICE);
        vm.expectEmit(true, true, false, true, address(market));
        emit IJobMarket.BidPlaced(jobId, ops[2], PRICE);
        vm.prank(ops[2]);
        market.bid(jobId, PRICE);
        _assertState(jobId, IJobMarket.JobState.Posted); // bidding stays open until the deadline

        vm.warp(block.timestamp + WINDOW + 1);
        // exactly three bids for three deals: nothing to draw, all are selected at once
        vm.expectEmit(true, true, false, true, address(registry));
        emit IOperatorRegistry.StakeLocked(jobId, ops[0], COLLATERAL);
        vm.expectEmit(true, true, false, true, address(market));
        emit IJobMarket.DealAccepted(jobId, ops[0], PRICE, COLLATERAL);
        market.closeBidding(jobId);
        _assertState(jobId, IJobMarket.JobState.Running);

        bytes32 c0 = market.commitmentOf(jobId, ops[0], market.sealedHashOf(jobId, GOOD), _salt(ops[0]));
        vm.expectEmit(true, true, false, true, address(market));
        emit IJobMarket.ResultCommitted(jobId, ops[0], c0);
        _commit(jobId, ops[0], GOOD);
        _commit(jobId, ops[1], GOOD);
        vm.expectEmit(true, true, false, true, address(market));
        emit IJobMarket.PhaseStarted(jobId, IJobMarket.JobState.Revealing, uint64(block.timestamp) + WINDOW);
        _commit(jobId, ops[2], GOOD);

        vm.expectEmit(true, true, false, true, address(market));
        emit IJobMarket.ResultRevealed(jobId, ops[0], _sealed(jobId, GOOD));
        _reveal(jobId, ops[0], GOOD);
        _reveal(jobId, ops[1], GOOD);
        vm.expectEmit(true, true, false, true, address(market));
        emit IJobMarket.Paid(jobId, ops[2], PRICE, IJobMarket.PaymentKind.Execution);
        vm.expectEmit(true, true, false, true, address(market));
        emit IJobMarket.Refunded(jobId, creator, 3 * (MAX_PRICE - PRICE));
        vm.expectEmit(true, false, false, true, address(market));
        emit IJobMarket.JobVerified(jobId, _sealed(jobId, GOOD), 3);
        _reveal(jobId, ops[2], GOOD);
    }

    // ---- tally ----

    function test_OneWrongOfThree_VerifiedAndWrongOneSlashed() public {
        uint256 jobId = _post(_params(3, 2, 3));
        _bidSelect(jobId, 0, 3, PRICE);
        address[] memory d = _dealOps(jobId);
        address last = _allButLastReveal(jobId, _results(GOOD, GOOD, BAD), false);
        vm.expectEmit(true, true, false, true, address(market));
        emit IJobMarket.Slashed(jobId, d[2], COLLATERAL, IJobMarket.SlashReason.WrongResult);
        _reveal(jobId, last, BAD);

        _assertState(jobId, IJobMarket.JobState.Verified);
        assertEq(market.getJob(jobId).sealedResult, _sealed(jobId, GOOD), "majority result");
        // the right operators: their bid and an equal share of the slashed collateral
        assertEq(market.withdrawable(d[0]), PRICE + COLLATERAL / 2, "right operator paid + compensated");
        assertEq(market.withdrawable(d[1]), PRICE + COLLATERAL / 2, "right operator paid + compensated");
        assertEq(market.withdrawable(d[2]), 0, "wrong operator unpaid");
        assertEq(_stake(d[2]), OPERATOR_STAKE - COLLATERAL, "wrong operator slashed");
        assertEq(_locked(d[2]), 0, "nothing left locked");
        // creator: only the unused escrow (one execution unpaid plus price slack), never collateral
        assertEq(market.withdrawable(creator), 3 * MAX_PRICE - 2 * PRICE, "refund only");
        _assertConservation(_jobs(jobId), _everyone());
    }

    function test_TwoThatDisagree_NoWinner() public {
        uint256 jobId = _post(_params(2, 2, 2));
        _bidSelect(jobId, 0, 2, PRICE);
        address[] memory d = _dealOps(jobId);
        _commit(jobId, d[0], GOOD);
        _commit(jobId, d[1], BAD);
        _reveal(jobId, d[0], GOOD);
        vm.expectEmit(true, false, false, true, address(market));
        emit IJobMarket.JobFailed(jobId, IJobMarket.FailReason.NoQuorum);
        _reveal(jobId, d[1], BAD);

        _assertState(jobId, IJobMarket.JobState.Failed);
        assertEq(market.getJob(jobId).sealedResult, bytes32(0), "no result");
        assertEq(market.withdrawable(creator), 2 * MAX_PRICE, "full refund");
        for (uint256 i; i < 2; ++i) {
            assertEq(_stake(d[i]), OPERATOR_STAKE, "nobody slashed: no way to tell who was right");
            assertEq(_locked(d[i]), 0, "collateral unlocked");
            assertEq(market.withdrawable(d[i]), 0, "nobody paid");
        }
        _assertConservation(_jobs(jobId), _everyone());
    }

    function test_FiveWithTwoWrong_ConfidenceFour_FailedAndRefunded() public {
        uint256 jobId = _post(_params(5, 4, 5));
        _bidSelect(jobId, 0, 5, PRICE);
        address[] memory d = _dealOps(jobId);
        bytes32[] memory r = new bytes32[](5);
        (r[0], r[1], r[2], r[3], r[4]) = (GOOD, BAD, GOOD, BAD, GOOD);
        _commitReveal(jobId, r);

        _assertState(jobId, IJobMarket.JobState.Failed);
        assertEq(market.withdrawable(creator), 5 * MAX_PRICE, "full refund");
        for (uint256 i; i < 5; ++i) {
            assertEq(_locked(d[i]), 0, "collateral unlocked");
        }
        _assertConservation(_jobs(jobId), _everyone());
    }

    function test_TiedGroups_NoWinner() public {
        uint256 jobId = _post(_params(4, 2, 4));
        _bidSelect(jobId, 0, 4, PRICE);
        bytes32[] memory r = new bytes32[](4);
        (r[0], r[1], r[2], r[3]) = (GOOD, BAD, BAD, GOOD);
        _commitReveal(jobId, r);
        _assertState(jobId, IJobMarket.JobState.Failed);
        assertEq(market.withdrawable(creator), 4 * MAX_PRICE, "full refund");
    }

    // ---- bidding ----

    function test_MinBidsNotReached_ExpiredWithFullRefund() public {
        uint256 jobId = _post(_params(3, 2, 4));
        _bids(jobId, 0, 2, PRICE);
        vm.warp(block.timestamp + WINDOW + 1);
        vm.expectEmit(true, false, false, true, address(market));
        emit IJobMarket.Refunded(jobId, creator, 3 * MAX_PRICE);
        vm.expectEmit(true, false, false, true, address(market));
        emit IJobMarket.JobExpired(jobId, 2);
        market.closeBidding(jobId);
        _assertState(jobId, IJobMarket.JobState.Expired);
        assertEq(market.withdrawable(creator), 3 * MAX_PRICE, "full refund");
        assertEq(market.getDeals(jobId).length, 0, "no deals");
        assertEq(_locked(ops[0]), 0, "bidders never locked");

        uint256 before = creator.balance;
        vm.prank(creator);
        market.claim();
        assertEq(creator.balance - before, 3 * MAX_PRICE, "refund claimed");
        assertEq(address(market).balance, 0, "market empty");
    }

    function test_CreatorParam_RefundsGoToItAndItCannotBid() public {
        address poster = address(0xB0B);
        vm.deal(poster, 10 ether);
        IJobMarket.JobParams memory p = _params(3, 2, 4);
        p.creator = ops[0];
        vm.expectEmit(true, true, false, true, address(market));
        emit IJobMarket.JobPosted(1, ops[0], p, 3 * MAX_PRICE, uint64(block.timestamp) + WINDOW);
        vm.prank(poster);
        uint256 jobId = market.postJob{value: 3 * MAX_PRICE}(p);
        assertEq(market.getJob(jobId).creator, ops[0], "creator is the one named");
        vm.expectRevert(abi.encodeWithSelector(IJobMarket.JobMarket__CreatorCannotBid.selector, jobId, ops[0]));
        vm.prank(ops[0]);
        market.bid(jobId, PRICE);
        _bids(jobId, 1, 2, PRICE);
        vm.warp(block.timestamp + WINDOW + 1);
        market.closeBidding(jobId);
        _assertState(jobId, IJobMarket.JobState.Expired);
        assertEq(market.withdrawable(ops[0]), 3 * MAX_PRICE, "the named creator is refunded");
        assertEq(market.withdrawable(poster), 0, "the poster is not");
    }

    function test_FinalizeExpiresLikeCloseBidding() public {
        uint256 jobId = _post(_params(3, 2, 3));
        vm.warp(block.timestamp + WINDOW + 1);
        market.finalize(jobId);
        _assertState(jobId, IJobMarket.JobState.Expired);
    }

    function test_CloseBiddingWithFewerThanMinBidsExpires() public {
        // minBids is a hard minimum: four bids, enough for n = 3, are not the six asked for.
        uint256 jobId = _post(_params(3, 2, 6));
        _bids(jobId, 0, 4, PRICE);
        _assertState(jobId, IJobMarket.JobState.Posted);
        vm.warp(block.timestamp + WINDOW + 1);
        market.closeBidding(jobId);
        _assertState(jobId, IJobMarket.JobState.Expired);
        assertEq(market.getDeals(jobId).length, 0, "no deals");
        for (uint256 i; i < 4; ++i) {
            assertEq(_locked(ops[i]), 0, "no collateral locked");
        }
    }

    function test_RandomSelectionPicksNDistinctBidders() public {
        uint256 jobId = _post(_params(3, 2, 8));
        _bidSelect(jobId, 0, 8, PRICE);
        _assertState(jobId, IJobMarket.JobState.Running);
        address[] memory d = _dealOps(jobId);
        assertEq(d.length, 3, "three deals");
        uint256 lockedCount;
        for (uint256 i; i < 8; ++i) {
            if (_locked(ops[i]) == COLLATERAL) ++lockedCount;
        }
        assertEq(lockedCount, 3, "only winners locked");
        assertTrue(d[0] != d[1] && d[1] != d[2] && d[0] != d[2], "distinct winners");
        for (uint256 i; i < 3; ++i) {
            assertEq(_locked(d[i]), COLLATERAL, "winner locked");
        }
    }

    function test_SelectionDependsOnRandomness() public {
        // Same bids, different draw blocks: the selections are not all the same.
        bool differs;
        address[] memory first;
        for (uint256 seed = 1; seed <= 6 && !differs; ++seed) {
            uint256 jobId = _post(_params(2, 1, 6));
            vm.roll(block.number + seed);
            _bidSelect(jobId, 0, 6, PRICE);
            address[] memory d = _dealOps(jobId);
            if (seed == 1) first = d;
            else if (d[0] != first[0] || d[1] != first[1]) differs = true;
            // release the locks for the next round
            vm.warp(block.timestamp + WINDOW + 1);
            market.finalize(jobId);
        }
        assertTrue(differs, "selection varies with the draw block's hash");
    }

    function test_BidDroppedWhenStakeWithdrawnBeforeSelection() public {
        uint256 jobId = _post(_params(3, 2, 3));
        _bids(jobId, 0, 4, PRICE);
        // ops[0] pulls its stake out of the bond before the draw
        vm.prank(ops[0]);
        registry.requestWithdrawal(OPERATOR_STAKE);
        vm.recordLogs();
        _close(jobId);
        _assertState(jobId, IJobMarket.JobState.Running);
        // ops[0] is dropped when the draw reaches it (BidDropped), or it is the bid left over
        bool dropped = market.getBids(jobId).length == 3;
        Vm.Log[] memory logs = vm.getRecordedLogs();
        bool emitted;
        for (uint256 i; i < logs.length; ++i) {
            if (logs[i].topics[0] == IJobMarket.BidDropped.selector) emitted = true;
        }
        assertEq(emitted, dropped, "BidDropped iff the bid was removed");
        address[] memory d = _dealOps(jobId);
        for (uint256 i; i < 3; ++i) {
            assertTrue(d[i] != ops[0], "the dropped bidder is not a deal");
            assertEq(_locked(d[i]), COLLATERAL, "winner locked");
        }
    }

    function test_ExpiredWhenTooFewBidsCanStillBeLockedAtClose() public {
        uint256 jobId = _post(_params(2, 1, 2));
        _bids(jobId, 0, 2, PRICE);
        vm.prank(ops[1]);
        registry.requestWithdrawal(OPERATOR_STAKE);
        _close(jobId);
        _assertState(jobId, IJobMarket.JobState.Expired);
        assertEq(_locked(ops[0]), 0, "tentative lock released");
        assertEq(market.withdrawable(creator), 2 * MAX_PRICE, "full refund");
    }

    function test_GetJobReportsParametersAndDeadlines() public {
        IJobMarket.JobParams memory p = _params(3, 2, 4);
        p.escalate = true;
        uint64 t0 = uint64(block.timestamp);
        uint256 jobId = _post(p);
        IJobMarket.Job memory job = market.getJob(jobId);
        assertEq(job.creator, creator, "creator");
        assertEq(uint256(job.state), uint256(IJobMarket.JobState.Posted), "state");
        assertEq(job.concurrency, 3, "n");
        assertEq(job.confidence, 2, "k");
        assertEq(job.minBids, 4, "m");
        assertEq(job.maxPrice, MAX_PRICE, "max price");
        assertEq(job.collateral, COLLATERAL, "collateral");
        assertEq(job.specHash, keccak256("spec"), "spec hash");
        assertTrue(job.escalate, "escalate");
        assertEq(job.bidDeadline, t0 + WINDOW, "bid deadline");
        assertEq(job.escrow, 3 * MAX_PRICE, "escrow");
        assertEq(market.nextJobId(), jobId + 1, "next id");
        vm.warp(t0 + 10);
        _bids(jobId, 0, 4, PRICE);
        vm.warp(t0 + WINDOW + 1);
        market.closeBidding(jobId);
        job = market.getJob(jobId);
        assertEq(uint256(job.state), uint256(IJobMarket.JobState.Drawing), "drawing");
        assertEq(job.phaseDeadline, block.number + DRAW_DELAY, "draw block");
        assertEq(market.getDeals(jobId).length, 0, "no deals while drawing");
        _draw(jobId);
        job = market.getJob(jobId);
        assertEq(job.bidCount, 4, "bids");
        assertEq(job.phaseDeadline, t0 + 1 + 2 * WINDOW, "commit deadline");
        t0 += WINDOW;
        vm.warp(t0 + 20);
        address[] memory d = _dealOps(jobId);
        for (uint256 i; i < 3; ++i) {
            _commit(jobId, d[i], GOOD);
        }
        job = market.getJob(jobId);
        assertEq(uint256(job.state), uint256(IJobMarket.JobState.Revealing), "revealing");
        assertEq(job.commitCount, 3, "commits");
        assertEq(job.phaseDeadline, t0 + 20 + WINDOW, "reveal deadline");
        IJobMarket.Deal[] memory deals = market.getDeals(jobId);
        assertTrue(deals[0].committed && !deals[0].revealed, "committed, not revealed");
        assertEq(deals[0].commitment, market.commitmentOf(jobId, d[0], _sealed(jobId, GOOD), _salt(d[0])), "commitment");
        _reveal(jobId, d[0], GOOD);
        deals = market.getDeals(jobId);
        assertTrue(deals[0].revealed, "revealed");
        assertEq(deals[0].sealedResult, _sealed(jobId, GOOD), "sealed result hash after reveal");
        assertEq(deals[0].commitment, bytes32(0), "commitment replaced");
    }

    // ---- commit / reveal deadlines ----

    function test_NonRevealerSlashed() public {
        uint256 jobId = _post(_params(3, 2, 3));
        _bidSelect(jobId, 0, 3, PRICE);
        address[] memory d = _dealOps(jobId);
        for (uint256 i; i < 3; ++i) {
            _commit(jobId, d[i], GOOD);
        }
        _reveal(jobId, d[0], GOOD);
        _reveal(jobId, d[1], GOOD);
        _assertState(jobId, IJobMarket.JobState.Revealing);
        vm.warp(block.timestamp + WINDOW + 1);
        vm.expectEmit(true, true, false, true, address(market));
        emit IJobMarket.Slashed(jobId, d[2], COLLATERAL, IJobMarket.SlashReason.NoReveal);
        market.finalize(jobId);
        _assertState(jobId, IJobMarket.JobState.Verified);
        assertEq(_stake(d[2]), OPERATOR_STAKE - COLLATERAL, "non-revealer slashed");
        assertEq(market.withdrawable(d[0]), PRICE + COLLATERAL / 2, "revealer paid + compensated");
        assertEq(market.withdrawable(creator), 3 * MAX_PRICE - 2 * PRICE, "creator: refund only");
        _assertConservation(_jobs(jobId), _everyone());
    }

    function test_NonCommitterSlashed() public {
        uint256 jobId = _post(_params(3, 2, 3));
        _bidSelect(jobId, 0, 3, PRICE);
        address[] memory d = _dealOps(jobId);
        _commit(jobId, d[0], GOOD);
        _commit(jobId, d[1], GOOD);
        vm.warp(block.timestamp + WINDOW + 1);
        market.finalize(jobId);
        _assertState(jobId, IJobMarket.JobState.Revealing);
        _reveal(jobId, d[0], GOOD);
        vm.expectEmit(true, true, false, true, address(market));
        emit IJobMarket.Slashed(jobId, d[2], COLLATERAL, IJobMarket.SlashReason.NoCommit);
        _reveal(jobId, d[1], GOOD);
        _assertState(jobId, IJobMarket.JobState.Verified);
        assertEq(_stake(d[2]), OPERATOR_STAKE - COLLATERAL, "non-committer slashed");
        _assertConservation(_jobs(jobId), _everyone());
    }

    function test_TooFewCommits_FailedAndRefunded() public {
        uint256 jobId = _post(_params(3, 2, 3));
        _bidSelect(jobId, 0, 3, PRICE);
        address[] memory d = _dealOps(jobId);
        _commit(jobId, d[0], GOOD);
        vm.warp(block.timestamp + WINDOW + 1);
        vm.expectEmit(true, false, false, true, address(market));
        emit IJobMarket.JobFailed(jobId, IJobMarket.FailReason.TooFewCommits);
        market.finalize(jobId);
        _assertState(jobId, IJobMarket.JobState.Failed);
        assertEq(_stake(d[0]), OPERATOR_STAKE, "committer kept its stake");
        assertEq(_locked(d[0]), 0, "committer unlocked");
        assertEq(_stake(d[1]), OPERATOR_STAKE - COLLATERAL, "non-committer slashed");
        assertEq(_stake(d[2]), OPERATOR_STAKE - COLLATERAL, "non-committer slashed");
        // nobody's result won: the slashed collateral is burned, the creator gets its refund only
        assertEq(market.withdrawable(creator), 3 * MAX_PRICE, "refund only");
        assertEq(market.withdrawable(address(0)), 2 * COLLATERAL, "burned");
        _assertConservation(_jobs(jobId), _everyone());
    }

    function test_TooFewReveals_Failed() public {
        uint256 jobId = _post(_params(3, 3, 3));
        _bidSelect(jobId, 0, 3, PRICE);
        address[] memory d = _dealOps(jobId);
        for (uint256 i; i < 3; ++i) {
            _commit(jobId, d[i], GOOD);
        }
        _reveal(jobId, d[0], GOOD);
        vm.warp(block.timestamp + WINDOW + 1);
        vm.expectEmit(true, false, false, true, address(market));
        emit IJobMarket.JobFailed(jobId, IJobMarket.FailReason.TooFewReveals);
        market.finalize(jobId);
        _assertState(jobId, IJobMarket.JobState.Failed);
        assertEq(_stake(d[1]), OPERATOR_STAKE - COLLATERAL, "non-revealer slashed");
        assertEq(_stake(d[0]), OPERATOR_STAKE, "revealer not slashed");
    }

    // ---- mediation ----

    function test_ColludingWrongMajorityOverturnedByMediation() public {
        IJobMarket.JobParams memory p = _params(3, 2, 3);
        p.escalate = true;
        uint256 jobId = _post(p);
        _bidSelect(jobId, 0, 3, PRICE);
        address[] memory d = _dealOps(jobId);
        // two selected operators collude on BAD; a plain tally would let them win (2 >= k)
        address last = _allButLastReveal(jobId, _results(BAD, GOOD, BAD), false);
        vm.expectEmit(true, true, false, true, address(market));
        emit IJobMarket.DisputeOpened(jobId, address(0), 0);
        _reveal(jobId, last, BAD);
        _assertState(jobId, IJobMarket.JobState.DisputeDrawing);
        assertEq(market.getMediators(jobId).length, 0, "not drawn yet");
        _draw(jobId);
        _assertState(jobId, IJobMarket.JobState.Disputed);

        address[] memory m = _mediatorOps(jobId);
        assertEq(m.length, MEDIATORS, "mediators drawn");
        for (uint256 i; i < m.length; ++i) {
            for (uint256 j; j < d.length; ++j) {
                assertTrue(m[i] != d[j], "mediators are fresh");
            }
            assertTrue(m[i] != creator, "creator is not a mediator");
            assertEq(_locked(m[i]), COLLATERAL, "mediator collateral locked");
        }
        last = _allButLastReveal(jobId, _results(GOOD, GOOD, GOOD), true);
        vm.expectEmit(true, false, false, true, address(market));
        emit IJobMarket.DisputeResolved(jobId, _sealed(jobId, GOOD), true);
        _reveal(jobId, last, GOOD);

        _assertState(jobId, IJobMarket.JobState.Verified);
        assertEq(market.getJob(jobId).sealedResult, _sealed(jobId, GOOD), "mediators decided");
        assertEq(_stake(d[0]), OPERATOR_STAKE - COLLATERAL, "colluder slashed");
        assertEq(_stake(d[2]), OPERATOR_STAKE - COLLATERAL, "colluder slashed");
        uint256 pot = 2 * COLLATERAL;
        for (uint256 i; i < m.length; ++i) {
            assertEq(market.withdrawable(m[i]), MAX_PRICE, "mediator fee from slashed stake");
            assertEq(_locked(m[i]), 0, "mediator unlocked");
            assertEq(_stake(m[i]), OPERATOR_STAKE, "mediator keeps stake");
        }
        pot -= 3 * MAX_PRICE;
        assertEq(market.withdrawable(d[1]), PRICE + pot, "honest minority paid + rest of the pot");
        assertEq(market.withdrawable(creator), 3 * MAX_PRICE - PRICE, "creator: refund only");
        _assertConservation(_jobs(jobId), _everyone());
    }

    function test_MediationSlashesDissentingMediator() public {
        IJobMarket.JobParams memory p = _params(3, 2, 3);
        p.escalate = true;
        uint256 jobId = _post(p);
        _bidSelect(jobId, 0, 3, PRICE);
        _commitReveal(jobId, _results(GOOD, GOOD, BAD));
        _assertState(jobId, IJobMarket.JobState.Disputed);
        address[] memory m = _mediatorOps(jobId);
        _mediate(jobId, _results(GOOD, BAD, GOOD));
        _assertState(jobId, IJobMarket.JobState.Verified);
        assertEq(_stake(m[1]), OPERATOR_STAKE - COLLATERAL, "dissenting mediator slashed");
        assertEq(market.withdrawable(m[0]), MAX_PRICE, "agreeing mediator paid");
        _assertConservation(_jobs(jobId), _everyone());
    }

    function test_MediationWithoutMajority_Failed() public {
        IJobMarket.JobParams memory p = _params(2, 2, 2);
        p.escalate = true;
        uint256 jobId = _post(p);
        _bidSelect(jobId, 0, 2, PRICE);
        address[] memory d = _dealOps(jobId);
        _commit(jobId, d[0], GOOD);
        _commit(jobId, d[1], BAD);
        _reveal(jobId, d[0], GOOD);
        _reveal(jobId, d[1], BAD);
        _draw(jobId);
        _assertState(jobId, IJobMarket.JobState.Disputed);
        address last = _allButLastReveal(jobId, _results(GOOD, BAD, keccak256("third")), true);
        vm.expectEmit(true, false, false, true, address(market));
        emit IJobMarket.JobFailed(jobId, IJobMarket.FailReason.NoMediatorMajority);
        _reveal(jobId, last, keccak256("third"));
        _assertState(jobId, IJobMarket.JobState.Failed);
        assertEq(market.withdrawable(creator), 2 * MAX_PRICE, "full refund");
        _assertConservation(_jobs(jobId), _everyone());
    }

    function test_MediatorsThatNeverCommit_Failed() public {
        IJobMarket.JobParams memory p = _params(2, 1, 2);
        p.escalate = true;
        uint256 jobId = _post(p);
        _bidSelect(jobId, 0, 2, PRICE);
        address[] memory d = _dealOps(jobId);
        _commit(jobId, d[0], GOOD);
        _commit(jobId, d[1], BAD);
        _reveal(jobId, d[0], GOOD);
        _reveal(jobId, d[1], BAD);
        _draw(jobId);
        address[] memory m = _mediatorOps(jobId);
        vm.warp(block.timestamp + WINDOW + 1);
        market.finalize(jobId);
        _assertState(jobId, IJobMarket.JobState.Failed);
        for (uint256 i; i < m.length; ++i) {
            assertEq(_stake(m[i]), OPERATOR_STAKE - COLLATERAL, "absent mediator slashed");
        }
        assertEq(_locked(d[0]), 0, "originals unlocked");
        assertEq(market.withdrawable(creator), 2 * MAX_PRICE, "refund only");
        assertEq(market.withdrawable(address(0)), 3 * COLLATERAL, "no honest recipient: burned");
        _assertConservation(_jobs(jobId), _everyone());
    }

    function test_MediatorCommitDeadline_FinalizeOpensMediatorReveals() public {
        IJobMarket.JobParams memory p = _params(3, 2, 3);
        p.escalate = true;
        uint256 jobId = _post(p);
        _bidSelect(jobId, 0, 3, PRICE);
        _commitReveal(jobId, _results(GOOD, BAD, GOOD));
        address[] memory m = _mediatorOps(jobId);
        _commit(jobId, m[0], GOOD);
        _commit(jobId, m[1], GOOD);
        vm.warp(block.timestamp + WINDOW + 1);
        vm.expectEmit(true, true, false, true, address(market));
        emit IJobMarket.PhaseStarted(jobId, IJobMarket.JobState.DisputeRevealing, uint64(block.timestamp) + WINDOW);
        market.finalize(jobId);
        _reveal(jobId, m[0], GOOD);
        _reveal(jobId, m[1], GOOD); // the last committed mediator settles
        _assertState(jobId, IJobMarket.JobState.Verified);
        assertEq(_stake(m[2]), OPERATOR_STAKE - COLLATERAL, "mediator that never committed slashed");
        assertEq(market.withdrawable(m[0]), MAX_PRICE, "mediator fee");
        _assertConservation(_jobs(jobId), _everyone());
    }

    function test_MediatorRevealAfterDeadline_Finalize() public {
        IJobMarket.JobParams memory p = _params(3, 2, 3);
        p.escalate = true;
        uint256 jobId = _post(p);
        _bidSelect(jobId, 0, 3, PRICE);
        _commitReveal(jobId, _results(GOOD, GOOD, BAD));
        address[] memory m = _mediatorOps(jobId);
        for (uint256 i; i < 3; ++i) {
            _commit(jobId, m[i], GOOD);
        }
        _assertState(jobId, IJobMarket.JobState.DisputeRevealing);
        _reveal(jobId, m[0], GOOD);
        _reveal(jobId, m[1], GOOD);
        vm.warp(block.timestamp + WINDOW + 1);
        market.finalize(jobId);
        _assertState(jobId, IJobMarket.JobState.Verified);
        assertEq(_stake(m[2]), OPERATOR_STAKE - COLLATERAL, "silent mediator slashed");
    }

    // ---- optimistic ----

    function _optimistic(uint8 n) internal pure returns (IJobMarket.JobParams memory p) {
        p = _params(n, 1, n);
        p.verifier = IJobMarket.Verifier.Optimistic;
        p.challengeWindow = WINDOW;
    }

    function test_OptimisticAcceptedAfterChallengeWindow() public {
        uint256 jobId = _post(_optimistic(1));
        _bidSelect(jobId, 0, 1, PRICE);
        address op = _dealOps(jobId)[0];
        _commit(jobId, op, GOOD);
        _reveal(jobId, op, GOOD);
        _assertState(jobId, IJobMarket.JobState.Challengeable);
        vm.expectRevert(
            abi.encodeWithSelector(
                IJobMarket.JobMarket__DeadlineNotReached.selector, jobId, uint64(block.timestamp) + WINDOW
            )
        );
        market.finalize(jobId);
        vm.warp(block.timestamp + WINDOW + 1);
        market.finalize(jobId);
        _assertState(jobId, IJobMarket.JobState.Verified);
        assertEq(market.getJob(jobId).sealedResult, _sealed(jobId, GOOD), "accepted result");
        assertEq(market.withdrawable(op), PRICE, "operator paid");
        assertEq(market.withdrawable(creator), MAX_PRICE - PRICE, "slack refunded");
        _assertConservation(_jobs(jobId), _everyone());
    }

    function test_OptimisticOverturnedByChallenge() public {
        uint256 jobId = _post(_optimistic(1));
        _bidSelect(jobId, 0, 1, PRICE);
        address op = _dealOps(jobId)[0];
        _commit(jobId, op, BAD);
        _reveal(jobId, op, BAD);
        vm.expectEmit(true, true, false, true, address(market));
        emit IJobMarket.DisputeOpened(jobId, creator, BOND);
        vm.prank(creator);
        market.challenge{value: BOND}(jobId);
        _assertState(jobId, IJobMarket.JobState.DisputeDrawing);
        assertEq(market.getJob(jobId).escrow, MAX_PRICE + BOND, "bond held");
        _assertConservation(_jobs(jobId), _everyone());
        _draw(jobId);
        _assertState(jobId, IJobMarket.JobState.Disputed);

        _mediate(jobId, _results(GOOD, GOOD, GOOD));
        _assertState(jobId, IJobMarket.JobState.Failed);
        assertEq(_stake(op), OPERATOR_STAKE - COLLATERAL, "wrong operator slashed");
        // creator (the challenger): escrow back, bond back and, from the slashed collateral after
        // three mediator fees, a reward up to the bond; no original result won, the rest is burned
        assertEq(market.withdrawable(creator), MAX_PRICE + 2 * BOND, "refund, bond and reward");
        assertEq(market.withdrawable(address(0)), COLLATERAL - 3 * MAX_PRICE - BOND, "rest burned");
        _assertConservation(_jobs(jobId), _everyone());
    }

    function test_OptimisticWrongChallengeLosesBond() public {
        uint256 jobId = _post(_optimistic(1));
        _bidSelect(jobId, 0, 1, PRICE);
        address op = _dealOps(jobId)[0];
        _commit(jobId, op, GOOD);
        _reveal(jobId, op, GOOD);
        address watcher = ops[11];
        vm.prank(watcher);
        market.challenge{value: BOND}(jobId);
        _draw(jobId);
        address[] memory m = _mediatorOps(jobId);
        for (uint256 i; i < m.length; ++i) {
            assertTrue(m[i] != watcher, "challenger is not a mediator");
        }
        _mediate(jobId, _results(GOOD, GOOD, GOOD));
        _assertState(jobId, IJobMarket.JobState.Verified);
        assertEq(market.withdrawable(watcher), 0, "bond lost");
        assertEq(market.withdrawable(m[0]), MAX_PRICE, "mediators paid from the bond");
        assertEq(market.withdrawable(op), PRICE + BOND - 3 * MAX_PRICE, "accused operator gets the rest of the bond");
        assertEq(market.withdrawable(creator), MAX_PRICE - PRICE, "creator gets only the price slack");
        _assertConservation(_jobs(jobId), _everyone());
    }

    function test_CreatorsWrongChallengeCostsTheWholeBond() public {
        uint256 jobId = _post(_optimistic(1));
        _bidSelect(jobId, 0, 1, PRICE);
        address op = _dealOps(jobId)[0];
        _commit(jobId, op, GOOD);
        _reveal(jobId, op, GOOD);
        vm.prank(creator);
        market.challenge{value: BOND}(jobId);
        _mediate(jobId, _results(GOOD, GOOD, GOOD));
        _assertState(jobId, IJobMarket.JobState.Verified);
        assertEq(market.withdrawable(creator), MAX_PRICE - PRICE, "no part of the bond comes back");
        assertEq(market.withdrawable(op), PRICE + BOND - 3 * MAX_PRICE, "accused operator compensated");
        _assertConservation(_jobs(jobId), _everyone());
    }

    function test_OptimisticNoReveal_Failed() public {
        uint256 jobId = _post(_optimistic(1));
        _bidSelect(jobId, 0, 1, PRICE);
        address op = _dealOps(jobId)[0];
        _commit(jobId, op, GOOD);
        vm.warp(block.timestamp + WINDOW + 1);
        market.finalize(jobId);
        _assertState(jobId, IJobMarket.JobState.Failed);
        assertEq(_stake(op), OPERATOR_STAKE - COLLATERAL, "non-revealer slashed");
    }

    // ---- stake ----

    function test_LockedStakeNotWithdrawable() public {
        uint256 jobId = _post(_params(3, 3, 3));
        _bidSelect(jobId, 0, 3, PRICE);
        address op = _dealOps(jobId)[0];
        vm.prank(op);
        vm.expectRevert(
            abi.encodeWithSelector(
                IOperatorRegistry.OperatorRegistry__InsufficientFreeStake.selector,
                op,
                OPERATOR_STAKE - COLLATERAL,
                OPERATOR_STAKE
            )
        );
        registry.requestWithdrawal(OPERATOR_STAKE);
        // the free part can go
        vm.prank(op);
        registry.requestWithdrawal(OPERATOR_STAKE - COLLATERAL);
        assertEq(_stake(op), COLLATERAL, "only locked stake left");
        // and the locked part is still slashable
        _commitReveal(jobId, _results(GOOD, GOOD, GOOD));
        assertEq(_locked(op), 0, "unlocked after settlement");
    }

    function test_ClaimedMoneyLeavesOnlyWhatIsOwed() public {
        uint256 jobId = _post(_params(3, 2, 3));
        _bidSelect(jobId, 0, 3, PRICE);
        _commitReveal(jobId, _results(GOOD, BAD, GOOD));
        address[] memory all = _everyone();
        for (uint256 i; i < all.length; ++i) {
            if (market.withdrawable(all[i]) != 0) {
                vm.prank(all[i]);
                market.claim();
            }
        }
        assertEq(address(market).balance, 0, "everything claimed");
    }
}
