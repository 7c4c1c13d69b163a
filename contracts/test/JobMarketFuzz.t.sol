// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Fixture} from "./utils/Fixture.sol";
import {IJobMarket} from "../src/interfaces/IJobMarket.sol";

/// @notice Property tests over random job shapes, results, prices and draw blocks.
contract JobMarketFuzzTest is Fixture {
    function _all() internal view returns (address[] memory all) {
        all = new address[](ops.length + 1);
        for (uint256 i; i < ops.length; ++i) {
            all[i] = ops[i];
        }
        all[ops.length] = creator;
    }

    function _one(uint256 jobId) internal pure returns (uint256[] memory j) {
        j = new uint256[](1);
        j[0] = jobId;
    }

    /// @dev Random results from a small alphabet (so groups form), then checks the outcome against
    /// a reference tally, who was paid and slashed, and money conservation.
    function testFuzz_TallyPaysMajorityAndSlashesTheRest(
        uint8 n,
        uint8 k,
        uint256 pattern,
        uint96 price,
        bytes32 beacon
    ) public {
        n = uint8(bound(n, 1, 7));
        k = uint8(bound(k, 1, n));
        price = uint96(bound(price, 0, MAX_PRICE));
        vm.roll(block.number + uint256(beacon) % 100_000); // a different draw block
        uint256 jobId = _post(_params(n, k, n));
        _bidSelect(jobId, 0, n, price);
        bytes32[] memory r = new bytes32[](n);
        for (uint256 i; i < n; ++i) {
            r[i] = keccak256(abi.encode("result", (pattern >> (i * 2)) % 3));
        }
        _commitReveal(jobId, r);

        _checkOutcome(jobId, r, k, price);
        _assertConservation(_one(jobId), _all());
    }

    function _refTally(bytes32[] memory r) internal pure returns (bytes32 best, uint256 bestCount, bool tie) {
        for (uint256 i; i < r.length; ++i) {
            uint256 same;
            for (uint256 j; j < r.length; ++j) {
                if (r[j] == r[i]) ++same;
            }
            if (same > bestCount) (best, bestCount, tie) = (r[i], same, false);
            else if (same == bestCount && r[i] != best) tie = true;
        }
    }

    /// @dev Verified: winners get their bid plus an equal share of the losers' slashed collateral.
    /// Failed under unanimity (k == n) with a strict majority: the dissenters are slashed and the
    /// collateral burned. Any other failure: nobody slashed. The creator only ever gets escrow back.
    function _checkOutcome(uint256 jobId, bytes32[] memory r, uint8 k, uint96 price) internal view {
        (bytes32 best, uint256 bestCount, bool tie) = _refTally(r);
        bool verified = bestCount >= k && !tie;
        bool dissent = !verified && k == r.length && bestCount * 2 > r.length;
        _assertState(jobId, verified ? IJobMarket.JobState.Verified : IJobMarket.JobState.Failed);
        address[] memory d = _dealOps(jobId);
        uint256 wrong = verified || dissent ? r.length - bestCount : 0;
        uint256 share = verified ? wrong * COLLATERAL / bestCount : 0;
        for (uint256 i; i < r.length; ++i) {
            assertEq(_locked(d[i]), 0, "nothing stays locked");
            if ((verified || dissent) && r[i] == best) {
                assertEq(market.withdrawable(d[i]), verified ? price + share : 0, "winner paid its bid + share");
                assertEq(_stake(d[i]), OPERATOR_STAKE, "winner keeps stake");
            } else if (verified || dissent) {
                assertEq(market.withdrawable(d[i]), 0, "loser unpaid");
                assertEq(_stake(d[i]), OPERATOR_STAKE - COLLATERAL, "wrong result slashed");
            } else {
                assertEq(market.withdrawable(d[i]), 0, "nobody paid");
                assertEq(_stake(d[i]), OPERATOR_STAKE, "no verdict, no slash");
            }
        }
        uint256 expectedCreator =
            verified ? uint256(r.length) * MAX_PRICE - bestCount * price : uint256(r.length) * MAX_PRICE;
        assertEq(market.withdrawable(creator), expectedCreator, "creator: refund only, never collateral");
        uint256 burned = dissent ? wrong * COLLATERAL : (verified ? wrong * COLLATERAL - share * bestCount : 0);
        assertEq(market.withdrawable(address(0)), burned, "burned: dissent collateral and share dust");
    }

    /// @dev Whatever the bids and the draw block, selection picks `n` distinct bidders and locks
    /// exactly their collateral.
    function testFuzz_SelectionPicksDistinctBidders(uint8 n, uint8 m, bytes32 beacon) public {
        n = uint8(bound(n, 1, 6));
        m = uint8(bound(m, n, 12));
        vm.roll(block.number + uint256(beacon) % 100_000); // a different draw block
        uint256 jobId = _post(_params(n, 1, m));
        _bidSelect(jobId, 0, m, MAX_PRICE);
        _assertState(jobId, IJobMarket.JobState.Running);
        address[] memory d = _dealOps(jobId);
        assertEq(d.length, n, "n deals");
        for (uint256 i; i < n; ++i) {
            assertEq(_locked(d[i]), COLLATERAL, "winner locked");
            for (uint256 j = i + 1; j < n; ++j) {
                assertTrue(d[i] != d[j], "distinct");
            }
        }
        uint256 lockedCount;
        for (uint256 i; i < m; ++i) {
            if (_locked(ops[i]) != 0) ++lockedCount;
        }
        assertEq(lockedCount, n, "only winners locked");
        assertEq(market.getBids(jobId).length, m, "all bids kept");
    }

    /// @dev A reveal opens only the commitment made for exactly that job, operator, sealed hash and
    /// salt; the sealed hash is `keccak256(abi.encode(jobId, resultHash))`.
    function testFuzz_CommitmentBindsEverything(bytes32 result, bytes32 salt, bytes32 otherResult, bytes32 otherSalt)
        public
    {
        vm.assume(result != bytes32(0) && otherResult != bytes32(0));
        vm.assume(result != otherResult || salt != otherSalt);
        uint256 jobId = _post(_params(1, 1, 1));
        _bidSelect(jobId, 0, 1, MAX_PRICE);
        address op = ops[0];
        bytes32 sealedHash = market.sealedHashOf(jobId, result);
        assertEq(sealedHash, keccak256(abi.encode(jobId, result)), "documented sealing");
        bytes32 otherSealed = market.sealedHashOf(jobId, otherResult);
        bytes32 commitment = market.commitmentOf(jobId, op, sealedHash, salt);
        assertEq(commitment, keccak256(abi.encode(jobId, op, sealedHash, salt)), "documented formula");
        vm.prank(op);
        market.commitResult(jobId, commitment);
        vm.prank(op);
        vm.expectRevert(
            abi.encodeWithSelector(
                IJobMarket.JobMarket__CommitmentMismatch.selector,
                jobId,
                op,
                commitment,
                keccak256(abi.encode(jobId, op, otherSealed, otherSalt))
            )
        );
        market.revealResult(jobId, otherSealed, otherSalt);
        vm.prank(op);
        market.revealResult(jobId, sealedHash, salt);
        _assertState(jobId, IJobMarket.JobState.Verified);
        assertEq(market.getJob(jobId).sealedResult, sealedHash, "the sealed hash is the job's result");
    }

    /// @dev `publishResult` accepts exactly the plain hash whose sealed form was verified.
    function testFuzz_PublishAcceptsOnlyThePreimage(bytes32 result, bytes32 other) public {
        vm.assume(result != bytes32(0) && other != result);
        uint256 jobId = _post(_params(1, 1, 1));
        _bidSelect(jobId, 0, 1, MAX_PRICE);
        _commit(jobId, ops[0], result);
        _reveal(jobId, ops[0], result);
        bytes32 accepted = _sealed(jobId, result);
        vm.expectRevert(
            abi.encodeWithSelector(
                IJobMarket.JobMarket__NotTheResult.selector, jobId, accepted, keccak256(abi.encode(jobId, other))
            )
        );
        market.publishResult(jobId, other);
        vm.expectEmit(true, false, false, true, address(market));
        emit IJobMarket.ResultPublished(jobId, result);
        market.publishResult(jobId, result);
    }

    /// @dev Any valid parameter set posts with exactly n * maxPrice and expires with a full refund.
    function testFuzz_PostAndExpireRefundsInFull(uint8 n, uint8 k, uint8 m, uint96 maxPrice, uint32 bidWindow) public {
        n = uint8(bound(n, 1, 32));
        k = uint8(bound(k, 1, n));
        m = uint8(bound(m, n, 32));
        maxPrice = uint96(bound(maxPrice, 1, 10 ether));
        bidWindow = uint32(bound(bidWindow, MIN_BID_WINDOW, 30 days));
        IJobMarket.JobParams memory p = _params(n, k, m);
        p.maxPrice = maxPrice;
        if (p.collateral > uint256(maxPrice) * COLLATERAL_FACTOR) p.collateral = maxPrice * COLLATERAL_FACTOR;
        p.bidWindow = bidWindow;
        uint256 jobId = _post(p);
        IJobMarket.Job memory job = market.getJob(jobId);
        assertEq(job.escrow, uint256(n) * maxPrice, "escrow");
        assertEq(job.bidDeadline, uint64(block.timestamp) + bidWindow, "bid deadline");
        vm.warp(block.timestamp + bidWindow + 1);
        market.finalize(jobId);
        _assertState(jobId, IJobMarket.JobState.Expired);
        assertEq(market.withdrawable(creator), uint256(n) * maxPrice, "full refund");
        assertEq(address(market).balance, uint256(n) * maxPrice, "held until claimed");
    }

    /// @dev Whatever the draw blocks, a dispute draws `mediatorCount` distinct operators that are not
    /// on the job, and locks exactly their collateral.
    function testFuzz_MediatorsAreFreshDistinctAndLocked(bytes32 beacon, bytes32 disputeBeacon) public {
        vm.roll(block.number + uint256(beacon) % 100_000); // a different draw block
        IJobMarket.JobParams memory p = _params(3, 2, 3);
        p.escalate = true;
        uint256 jobId = _post(p);
        _bidSelect(jobId, 0, 3, MAX_PRICE);
        address[] memory d = _dealOps(jobId);
        vm.roll(block.number + uint256(disputeBeacon) % 100_000);
        _commitReveal(jobId, _results(GOOD, BAD, GOOD));
        _assertState(jobId, IJobMarket.JobState.Disputed);
        address[] memory m = _mediatorOps(jobId);
        assertEq(m.length, MEDIATORS, "mediator count");
        for (uint256 i; i < m.length; ++i) {
            assertEq(_locked(m[i]), COLLATERAL, "mediator locked");
            for (uint256 j; j < d.length; ++j) {
                assertTrue(m[i] != d[j], "not on the job");
            }
            for (uint256 j = i + 1; j < m.length; ++j) {
                assertTrue(m[i] != m[j], "distinct");
            }
        }
    }

    /// @dev Mediators are drawn one by one, not as a contiguous run of the registry: across
    /// draw blocks some draw is not three consecutive registrations.
    function test_MediatorsAreNotAContiguousRun() public {
        bool scattered;
        for (uint256 seed = 1; seed <= 8 && !scattered; ++seed) {
            IJobMarket.JobParams memory p = _params(3, 2, 3);
            p.escalate = true;
            uint256 jobId = _post(p);
            _bidSelect(jobId, 0, 3, MAX_PRICE);
            vm.roll(block.number + seed);
            _commitReveal(jobId, _results(GOOD, BAD, GOOD));
            address[] memory m = _mediatorOps(jobId);
            // operator i is registered at index i, its address is 0x1000 + i
            uint256 a = uint160(m[0]);
            uint256 b = uint160(m[1]);
            uint256 c = uint160(m[2]);
            if (b != a + 1 || c != b + 1) scattered = true;
            _mediate(jobId, _results(GOOD, GOOD, GOOD));
        }
        assertTrue(scattered, "mediator draws are not contiguous runs");
    }
}
