// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Fixture} from "./utils/Fixture.sol";
import {Vm} from "./utils/Vm.sol";
import {IJobMarket} from "../src/interfaces/IJobMarket.sol";
import {IOperatorRegistry} from "../src/interfaces/IOperatorRegistry.sol";
import {JobMarket} from "../src/JobMarket.sol";
import {OperatorRegistry} from "../src/OperatorRegistry.sol";

/// @notice The "market safety" exploits, each performed against the market: it must now revert
/// or cost the attacker.
contract JobMarketSafetyTest is Fixture {
    uint96 internal constant PRICE = 0.08 ether;

    function _one(uint256 jobId) internal pure returns (uint256[] memory j) {
        j = new uint256[](1);
        j[0] = jobId;
    }

    function _all() internal view returns (address[] memory all) {
        all = new address[](ops.length + 1);
        for (uint256 i; i < ops.length; ++i) {
            all[i] = ops[i];
        }
        all[ops.length] = creator;
    }

    function _postExpect(IJobMarket.JobParams memory p, bytes memory err) internal {
        vm.prank(creator);
        vm.expectRevert(err);
        market.postJob{value: uint256(p.concurrency) * p.maxPrice}(p);
    }

    function _tooShort(IJobMarket.JobParams memory p) internal pure returns (bytes memory) {
        return abi.encodeWithSelector(
            IJobMarket.JobMarket__WindowTooShort.selector,
            p.bidWindow,
            p.execWindow,
            p.revealWindow,
            MIN_BID_WINDOW,
            MIN_EXEC_WINDOW,
            MIN_REVEAL_WINDOW
        );
    }

    // =====================================================================================
    // 1. creator steals operators' collateral
    // =====================================================================================

    /// @dev The attack: post with a 1-second exec (or reveal) window and a huge collateral, let
    /// honest nodes bid, let the deadline pass before any commit can land, finalize and collect
    /// the slashed collateral as "compensation". Now the post reverts; and when operators really
    /// are slashed the creator gets its refund only, never the collateral.
    function test_Attack_CreatorCannotStealCollateralWithTinyWindows() public {
        // tiny windows: rejected
        IJobMarket.JobParams memory p = _params(3, 3, 3);
        p.execWindow = 1;
        _postExpect(p, _tooShort(p));
        p = _params(3, 3, 3);
        p.revealWindow = 1;
        _postExpect(p, _tooShort(p));
        p = _params(3, 3, 3);
        p.bidWindow = 1;
        _postExpect(p, _tooShort(p));
        // huge collateral for a tiny price: rejected
        p = _params(3, 3, 3);
        p.maxPrice = 1 gwei;
        p.collateral = OPERATOR_STAKE;
        _postExpect(
            p,
            abi.encodeWithSelector(
                IJobMarket.JobMarket__CollateralTooHigh.selector, OPERATOR_STAKE, uint256(1 gwei) * COLLATERAL_FACTOR
            )
        );

        // the most the creator can still do: the shortest windows and the largest collateral;
        // the operators do not manage to commit in time and are slashed
        uint256 creatorBefore = creator.balance;
        p = _params(3, 3, 3);
        p.bidWindow = MIN_BID_WINDOW;
        p.execWindow = MIN_EXEC_WINDOW;
        p.revealWindow = MIN_REVEAL_WINDOW;
        p.collateral = MAX_PRICE * COLLATERAL_FACTOR;
        uint256 jobId = _post(p);
        _bidSelect(jobId, 0, 3, PRICE);
        address[] memory d = _dealOps(jobId);
        vm.warp(block.timestamp + MIN_EXEC_WINDOW + 1);
        market.finalize(jobId);
        _assertState(jobId, IJobMarket.JobState.Failed);
        for (uint256 i; i < 3; ++i) {
            assertEq(_stake(d[i]), OPERATOR_STAKE - p.collateral, "non-committer slashed");
        }
        assertEq(market.withdrawable(creator), 3 * MAX_PRICE, "creator: its refund only");
        assertEq(market.withdrawable(address(0)), 3 * uint256(p.collateral), "no honest recipient: burned");
        _assertConservation(_one(jobId), _all());
        vm.prank(creator);
        market.claim();
        assertEq(creator.balance, creatorBefore, "the attack earns the creator nothing");
    }

    /// @dev When some operators are slashed and others were right, the slashed collateral goes
    /// to the right ones, not to the creator.
    function test_SlashedCollateralPaysTheHonestSideNotTheCreator() public {
        uint256 jobId = _post(_params(3, 1, 3));
        _bidSelect(jobId, 0, 3, PRICE);
        address[] memory d = _dealOps(jobId);
        _commit(jobId, d[0], GOOD);
        vm.warp(block.timestamp + WINDOW + 1);
        market.finalize(jobId); // two non-committers; the reveal phase opens with one commit
        vm.expectEmit(true, true, false, true, address(market));
        emit IJobMarket.Paid(jobId, d[0], 2 * COLLATERAL, IJobMarket.PaymentKind.Compensation);
        _reveal(jobId, d[0], GOOD);
        _assertState(jobId, IJobMarket.JobState.Verified);
        assertEq(market.withdrawable(d[0]), PRICE + 2 * COLLATERAL, "the honest operator gets the collateral");
        assertEq(market.withdrawable(creator), 3 * MAX_PRICE - PRICE, "creator: refund only");
        assertEq(market.withdrawable(address(0)), 0, "nothing burned");
        _assertConservation(_one(jobId), _all());
    }

    function test_RevertWhen_WindowTooShort() public {
        IJobMarket.JobParams memory p = _params(3, 2, 3);
        p.bidWindow = MIN_BID_WINDOW - 1;
        _postExpect(p, _tooShort(p));
        p = _params(3, 2, 3);
        p.execWindow = MIN_EXEC_WINDOW - 1;
        _postExpect(p, _tooShort(p));
        p = _params(3, 2, 3);
        p.revealWindow = MIN_REVEAL_WINDOW - 1;
        _postExpect(p, _tooShort(p));
        // exactly the minimums are fine
        p = _params(3, 2, 3);
        (p.bidWindow, p.execWindow, p.revealWindow) = (MIN_BID_WINDOW, MIN_EXEC_WINDOW, MIN_REVEAL_WINDOW);
        _post(p);
    }

    function test_RevertWhen_CollateralTooHigh() public {
        IJobMarket.JobParams memory p = _params(3, 2, 3);
        p.collateral = MAX_PRICE * COLLATERAL_FACTOR + 1;
        _postExpect(
            p,
            abi.encodeWithSelector(
                IJobMarket.JobMarket__CollateralTooHigh.selector, p.collateral, uint256(MAX_PRICE) * COLLATERAL_FACTOR
            )
        );
        p.collateral = MAX_PRICE * COLLATERAL_FACTOR; // exactly the cap is fine
        _post(p);
    }

    // =====================================================================================
    // 2. first bidders capture a job
    // =====================================================================================

    /// @dev The attack: three colluding identities watch `JobPosted` and get their bids in first.
    /// With minBids == concurrency the third bid used to run the selection on the spot, without a
    /// shuffle, so the first three bidders always held the whole job (and verified any result).
    /// Now bidding stays open until the deadline and the three deals are drawn uniformly from all
    /// twelve bids: over 24 draw blocks the colluders hold about a quarter of the deals (18 of 72
    /// expected) and the whole job at most rarely (1 in 220 per job).
    function test_Attack_FirstBiddersCannotCaptureJob() public {
        IJobMarket.JobParams memory p = _params(3, 2, 3);
        p.collateral = 0; // nothing locked: 24 jobs in a row on the same operators
        uint256 seats;
        uint256 captured;
        for (uint256 j; j < 24; ++j) {
            uint256 jobId = _post(p);
            _bids(jobId, 0, 3, PRICE); // the colluders, first
            _assertState(jobId, IJobMarket.JobState.Posted); // the third bid no longer selects
            _bids(jobId, 3, 9, PRICE); // nine honest operators, later in the window
            vm.roll(block.number + 1 + j); // a different draw block per job
            _close(jobId);
            address[] memory d = _dealOps(jobId);
            uint256 mine;
            for (uint256 i; i < 3; ++i) {
                if (uint160(d[i]) < uint160(ops[3])) ++mine; // ops[0..2]
            }
            seats += mine;
            if (mine == 3) ++captured;
        }
        assertLe(captured, 1, "the first bidders do not capture the job");
        assertGe(seats, 6, "the colluders are drawn like anyone else");
        assertLe(seats, 36, "at about their share of the bids (18 of 72 expected)");
    }

    /// @dev minBids stays a hard minimum: fewer bids by the deadline expire the job (refund).
    function test_MinBidsIsAHardMinimum() public {
        uint256 jobId = _post(_params(3, 2, 5));
        _bids(jobId, 0, 4, PRICE);
        _close(jobId);
        _assertState(jobId, IJobMarket.JobState.Expired);
        assertEq(market.withdrawable(creator), 3 * MAX_PRICE, "full refund");
    }

    /// @dev The MAX_BIDS-th bid closes bidding early (arms the draw); later bids are rejected.
    function test_MaxBidsClosesBiddingEarly() public {
        for (uint256 i = ops.length; i < market.MAX_BIDS() + 1; ++i) {
            ops.push(_newOperator(i));
        }
        uint256 jobId = _post(_params(3, 2, 3));
        _bids(jobId, 0, market.MAX_BIDS(), PRICE);
        _assertState(jobId, IJobMarket.JobState.Drawing);
        vm.prank(ops[market.MAX_BIDS()]);
        vm.expectRevert(
            abi.encodeWithSelector(IJobMarket.JobMarket__WrongState.selector, jobId, IJobMarket.JobState.Drawing)
        );
        market.bid(jobId, PRICE);
        _draw(jobId);
        _assertState(jobId, IJobMarket.JobState.Running);
    }

    // =====================================================================================
    // 3. steerable randomness
    // =====================================================================================

    /// @dev The attack: the last revealer opens the dispute, so it used to choose the block (and so
    /// the `prevrandao`) that seeded the mediator draw, and kept the best of the blocks in its
    /// reveal window. Now its reveal only arms the draw; the mediators follow from the hash of the
    /// arming block, drawn by a later transaction. Whatever beacon value the attacker's block has,
    /// whenever and by whomever the draw is sent, the same mediators are drawn; only the block
    /// hash, which nobody but the block's builder knows when sending the reveal, changes them.
    function test_Attack_LastRevealerCannotSteerMediators() public {
        IJobMarket.JobParams memory p = _params(3, 2, 3);
        p.escalate = true;
        uint256 jobId = _post(p);
        _bidSelect(jobId, 0, 3, PRICE);
        address last = _allButLastReveal(jobId, _results(BAD, GOOD, BAD), false);
        uint256 before = vm.snapshotState();
        address[] memory first;
        for (uint256 t; t < 8; ++t) {
            vm.revertToState(before);
            vm.prevrandao(bytes32(t * 7919)); // the attacker grinds its block's beacon value
            _reveal(jobId, last, BAD);
            _assertState(jobId, IJobMarket.JobState.DisputeDrawing);
            assertEq(market.getMediators(jobId).length, 0, "nothing drawn by the reveal");
            vm.roll(block.number + 1 + t * 31); // and the time of the draw
            vm.prevrandao(bytes32(t));
            vm.prank(t % 2 == 0 ? last : ops[11]); // and who sends it
            market.finalize(jobId);
            address[] memory m = _mediatorOps(jobId);
            if (t == 0) first = m;
            for (uint256 i; i < m.length; ++i) {
                assertEq(m[i], first[i], "the same mediators whatever the attacker tries");
            }
        }
        // the draw does depend on the block hash (so the test above can fail)
        bool differs;
        for (uint256 h = 1; h <= 8 && !differs; ++h) {
            vm.revertToState(before);
            _reveal(jobId, last, BAD);
            vm.setBlockhash(block.number, keccak256(abi.encode(h)));
            vm.roll(block.number + 1);
            market.finalize(jobId);
            address[] memory m = _mediatorOps(jobId);
            for (uint256 i; i < m.length; ++i) {
                if (m[i] != first[i]) differs = true;
            }
        }
        assertTrue(differs, "another block hash draws other mediators");
    }

    /// @dev The same for the selection: the bids are frozen once the draw is armed, and neither
    /// the beacon value nor the time or sender of the drawing transaction changes the deals.
    function test_Attack_CloserCannotSteerSelection() public {
        uint256 jobId = _post(_params(3, 2, 3));
        _bids(jobId, 0, 9, PRICE);
        vm.warp(block.timestamp + WINDOW + 1);
        market.closeBidding(jobId); // arms
        vm.prank(ops[9]);
        vm.expectRevert(
            abi.encodeWithSelector(IJobMarket.JobMarket__WrongState.selector, jobId, IJobMarket.JobState.Drawing)
        );
        market.bid(jobId, PRICE); // bids are frozen
        uint256 before = vm.snapshotState();
        address[] memory first;
        for (uint256 t; t < 6; ++t) {
            vm.revertToState(before);
            vm.roll(block.number + 1 + t * 40);
            vm.prevrandao(bytes32(t * 104729));
            vm.prank(ops[t]);
            market.closeBidding(jobId);
            address[] memory d = _dealOps(jobId);
            if (t == 0) first = d;
            for (uint256 i; i < 3; ++i) {
                assertEq(d[i], first[i], "the same deals whatever the closer tries");
            }
        }
    }

    /// @dev The attack: once the dispute is armed (and, with a delay of 0, the seed can be read
    /// from the next block on), operators leave and rejoin the pool and register new identities to
    /// change who sits at the drawn indices. The draw uses the pool size at the arm block and skips
    /// every entry that took its index in or after that block: the newcomers and the re-entered
    /// are never drawn, and everyone else is drawn exactly as without the manipulation.
    function test_Attack_ReRegisteringDoesNotReshufflePool() public {
        IJobMarket.JobParams memory p = _params(3, 2, 3);
        p.escalate = true;
        uint256 jobId = _post(p);
        _bidSelect(jobId, 0, 3, PRICE);
        address last = _allButLastReveal(jobId, _results(BAD, GOOD, BAD), false);
        _reveal(jobId, last, BAD); // arms the mediator draw
        uint256 armBlock = block.number;
        uint256 before = vm.snapshotState();
        vm.roll(armBlock + 1);
        market.finalize(jobId);
        address[] memory honest = _mediatorOps(jobId);

        vm.revertToState(before);
        vm.roll(armBlock + 1);
        // the attacker: the last registered operator, if it was not drawn, leaves and rejoins (it
        // is popped from the end, nobody moves) ...
        address mover = ops[ops.length - 1];
        bool moverDrawn;
        for (uint256 i; i < honest.length; ++i) {
            if (honest[i] == mover) moverDrawn = true;
        }
        if (!moverDrawn) {
            vm.startPrank(mover);
            registry.requestWithdrawal(OPERATOR_STAKE);
            registry.stake{value: OPERATOR_STAKE}();
            vm.stopPrank();
            assertGe(registry.eligibleSince(mover), armBlock + 1, "rejoining never resets to an earlier block");
        }
        // ... and five fresh identities register
        for (uint256 i; i < 5; ++i) {
            _newOperator(500 + i);
        }
        assertEq(registry.eligibleCount(), ops.length + 5, "the live pool grew");
        market.finalize(jobId);
        address[] memory m = _mediatorOps(jobId);
        for (uint256 i; i < m.length; ++i) {
            assertEq(m[i], honest[i], "the same mediators as without the manipulation");
            assertLe(registry.eligibleSince(m[i]) + 1, armBlock, "drawn from the pool at the arm block");
        }
    }

    /// @dev An operator moved by a swap-and-pop after the arm block (another one left) is skipped
    /// at its new index: leaving cannot put someone else at a drawn index.
    function test_MovedOperatorIsSkippedByAnArmedDraw() public {
        uint256 armBlock = block.number;
        vm.roll(armBlock + 1);
        address last = ops[ops.length - 1];
        vm.prank(ops[0]);
        registry.requestWithdrawal(OPERATOR_STAKE); // `last` moves to index 0
        (address op, uint64 since) = registry.eligibleEntry(0);
        assertEq(op, last, "swap-and-pop");
        assertGe(since, armBlock + 1, "moved after the arm block: skipped by that draw");
    }

    /// @dev Nobody draws for more than 256 blocks: the draw block's hash is gone. The next call
    /// re-arms (DrawRearmed) instead of drawing from anything else, and a later call draws.
    function test_DrawRearmsAfter256Blocks() public {
        uint256 jobId = _post(_params(3, 2, 3));
        _bids(jobId, 0, 5, PRICE);
        vm.warp(block.timestamp + WINDOW + 1);
        market.closeBidding(jobId);
        uint64 stale = market.getJob(jobId).phaseDeadline;
        vm.roll(stale + 300);
        vm.expectEmit(true, false, false, true, address(market));
        emit IJobMarket.DrawRearmed(jobId, stale, uint64(block.number + DRAW_DELAY));
        market.closeBidding(jobId);
        _assertState(jobId, IJobMarket.JobState.Drawing);
        assertEq(market.getJob(jobId).phaseDeadline, block.number + DRAW_DELAY, "new draw block");
        assertEq(market.getDeals(jobId).length, 0, "nothing drawn");
        _draw(jobId);
        _assertState(jobId, IJobMarket.JobState.Running);

        // the same for a dispute's mediators
        IJobMarket.JobParams memory p = _params(3, 2, 3);
        p.escalate = true;
        uint256 other = _post(p);
        _bidSelect(other, 5, 3, PRICE);
        address last = _allButLastReveal(other, _results(BAD, GOOD, BAD), false);
        _reveal(other, last, BAD);
        stale = market.getJob(other).phaseDeadline;
        vm.roll(stale + 257);
        vm.expectEmit(true, false, false, true, address(market));
        emit IJobMarket.DrawRearmed(other, stale, uint64(block.number + DRAW_DELAY));
        market.finalize(other);
        _assertState(other, IJobMarket.JobState.DisputeDrawing);
        _draw(other);
        _assertState(other, IJobMarket.JobState.Disputed);
        assertEq(_mediatorOps(other).length, MEDIATORS, "mediators drawn");
    }

    /// @dev With a draw delay the draw block is later than the arming block, and the draw waits
    /// for the block after it.
    function test_DrawDelayPostponesTheDraw() public {
        registry = new OperatorRegistry(UNBONDING, MIN_STAKE);
        market = new JobMarket(
            IOperatorRegistry(address(registry)),
            MEDIATORS,
            BOND,
            MIN_BID_WINDOW,
            MIN_EXEC_WINDOW,
            MIN_REVEAL_WINDOW,
            COLLATERAL_FACTOR,
            BOND_PERCENT,
            2
        );
        registry.setMarket(address(market));
        _newOperator(0);
        _newOperator(1);
        uint256 jobId = _post(_params(1, 1, 1));
        _bids(jobId, 0, 2, PRICE);
        vm.warp(block.timestamp + WINDOW + 1);
        market.closeBidding(jobId);
        uint64 drawBlock = uint64(block.number + 2);
        assertEq(market.getJob(jobId).phaseDeadline, drawBlock, "draw block = arm block + delay");
        vm.roll(drawBlock);
        vm.expectRevert(abi.encodeWithSelector(IJobMarket.JobMarket__DrawNotReady.selector, jobId, drawBlock));
        market.closeBidding(jobId);
        vm.roll(drawBlock + 1);
        market.closeBidding(jobId);
        _assertState(jobId, IJobMarket.JobState.Running);
    }

    // =====================================================================================
    // 5. a challenge is a free refund
    // =====================================================================================

    /// @dev The attack: the creator challenges its own optimistic job, whatever the result, for
    /// the fixed 0.5 ether bond, hoping the mediators reach no majority: the job used to fail with
    /// a full refund and the bond back, so the creator got the work for free. Now the bond scales
    /// with the escrow, and a challenge that is not upheld (no mediator majority included) loses
    /// it: the bond pays the mediators, and the operator is paid as if unchallenged.
    function test_Attack_ChallengeIsNoLongerAFreeRefund() public {
        uint96 maxPrice = 0.9 ether;
        uint96 price = 0.8 ether;
        IJobMarket.JobParams memory p = _params(1, 1, 1);
        p.maxPrice = maxPrice;
        p.verifier = IJobMarket.Verifier.Optimistic;
        p.challengeWindow = WINDOW;
        uint256 creatorBefore = creator.balance;
        uint256 jobId = _post(p);
        _bidSelect(jobId, 0, 1, price);
        address op = _dealOps(jobId)[0];
        _commit(jobId, op, GOOD);
        _reveal(jobId, op, GOOD);
        _assertState(jobId, IJobMarket.JobState.Challengeable);

        // the fixed bond no longer buys a challenge of a larger job: max(0.5, 0.9 x 100 %)
        assertEq(market.challengeBondOf(jobId), maxPrice, "bond = the escrow");
        vm.prank(creator);
        vm.expectRevert(abi.encodeWithSelector(IJobMarket.JobMarket__WrongBond.selector, BOND, maxPrice));
        market.challenge{value: BOND}(jobId);

        vm.expectEmit(true, true, false, true, address(market));
        emit IJobMarket.DisputeOpened(jobId, creator, maxPrice);
        vm.prank(creator);
        market.challenge{value: maxPrice}(jobId);
        assertEq(market.getJob(jobId).escrow, 2 * uint256(maxPrice), "escrow + bond held");
        // the mediators reach no majority (three different hashes): the refund route of old
        address[] memory m = _mediatorOps(jobId);
        address last = _allButLastReveal(jobId, _results(GOOD, BAD, keccak256("third")), true);
        vm.expectEmit(true, false, false, true, address(market));
        emit IJobMarket.JobVerified(jobId, _sealed(jobId, GOOD), 1);
        vm.expectEmit(true, false, false, true, address(market));
        emit IJobMarket.DisputeResolved(jobId, bytes32(0), false);
        _reveal(jobId, last, keccak256("third"));

        _assertState(jobId, IJobMarket.JobState.Verified);
        assertEq(market.getJob(jobId).sealedResult, _sealed(jobId, GOOD), "the challenged result stands");
        assertEq(market.withdrawable(op), price, "operator paid as if unchallenged");
        assertEq(_locked(op), 0, "operator unlocked");
        assertEq(_stake(op), OPERATOR_STAKE, "operator not slashed");
        for (uint256 i; i < m.length; ++i) {
            assertEq(market.withdrawable(m[i]), maxPrice / 3, "mediators paid from the lost bond");
            assertEq(_stake(m[i]), OPERATOR_STAKE, "revealing mediator not slashed");
        }
        assertEq(market.withdrawable(creator), maxPrice - price, "creator: price slack only, no refund, no bond");
        assertEq(market.withdrawable(address(0)), 0, "nothing burned");
        _assertConservation(_one(jobId), _all());
        vm.prank(creator);
        market.claim();
        assertEq(creatorBefore - creator.balance, uint256(price) + maxPrice, "the attack costs the price and the bond");
    }

    /// @dev When the mediators never show up the challenge is not upheld either: the result
    /// stands and the operator gets the bond and the absent mediators' collateral.
    function test_ChallengeWithAbsentMediators_ResultStands() public {
        IJobMarket.JobParams memory p = _params(1, 1, 1);
        p.verifier = IJobMarket.Verifier.Optimistic;
        p.challengeWindow = WINDOW;
        uint256 jobId = _post(p);
        _bidSelect(jobId, 0, 1, PRICE);
        address op = _dealOps(jobId)[0];
        _commit(jobId, op, GOOD);
        _reveal(jobId, op, GOOD);
        address watcher = ops[11];
        vm.prank(watcher);
        market.challenge{value: BOND}(jobId); // max(0.5 ether, 0.1 ether): the floor
        _draw(jobId);
        vm.warp(block.timestamp + WINDOW + 1);
        market.finalize(jobId);
        _assertState(jobId, IJobMarket.JobState.Verified);
        assertEq(market.withdrawable(watcher), 0, "bond lost");
        assertEq(market.withdrawable(op), PRICE + BOND + 3 * COLLATERAL, "price + bond + absent mediators' collateral");
        assertEq(market.withdrawable(creator), MAX_PRICE - PRICE, "creator: price slack");
        _assertConservation(_one(jobId), _all());
    }

    /// @dev An upheld challenge used to get only its bond back, so watching paid nothing. Now the
    /// challenger is paid from the slashed collateral after the mediators' fees, up to its bond,
    /// before the operators that were right are compensated: three optimistic results, one wrong;
    /// its 1 ether pays 3 x 0.1 fees, 0.5 to the challenger, 0.1 to each right operator.
    function test_UpheldChallengeIsPaid() public {
        IJobMarket.JobParams memory p = _params(3, 1, 3);
        p.verifier = IJobMarket.Verifier.Optimistic;
        p.challengeWindow = WINDOW;
        uint256 jobId = _post(p);
        _bidSelect(jobId, 0, 3, PRICE);
        address[] memory d = _dealOps(jobId);
        _commitReveal(jobId, _results(GOOD, BAD, GOOD));
        _assertState(jobId, IJobMarket.JobState.Challengeable);
        address watcher = ops[11];
        uint256 bond = market.challengeBondOf(jobId);
        vm.prank(watcher);
        market.challenge{value: bond}(jobId);
        assertEq(_mediatorOps(jobId).length, 0, "drawn later");
        address last = _allButLastReveal(jobId, _results(GOOD, GOOD, GOOD), true);
        vm.expectEmit(true, true, false, true, address(market));
        emit IJobMarket.Paid(jobId, watcher, bond, IJobMarket.PaymentKind.BondReturned);
        vm.expectEmit(true, true, false, true, address(market));
        emit IJobMarket.Paid(jobId, watcher, bond, IJobMarket.PaymentKind.ChallengeReward);
        _reveal(jobId, last, GOOD);
        _assertState(jobId, IJobMarket.JobState.Verified);
        uint256 rest = COLLATERAL - 3 * MAX_PRICE - bond;
        assertEq(market.withdrawable(watcher), 2 * bond, "bond back and a reward of the bond");
        assertEq(market.withdrawable(d[0]), PRICE + rest / 2, "right operator: price + compensation");
        assertEq(market.withdrawable(d[1]), 0, "wrong operator: nothing");
        assertEq(_stake(d[1]), OPERATOR_STAKE - COLLATERAL, "wrong operator slashed");
        _assertConservation(_one(jobId), _all());
    }

    // =====================================================================================
    // 4. mediation is a small vote that overrides confidence
    // =====================================================================================

    function _five(bytes32 a, bytes32 b, bytes32 c, bytes32 d, bytes32 e) internal pure returns (bytes32[] memory r) {
        r = new bytes32[](5);
        (r[0], r[1], r[2], r[3], r[4]) = (a, b, c, d, e);
    }

    /// @dev The attack: on a job asking for 4 agreeing results of 5, one attacker deal dissents,
    /// which opens mediation, and two of the three mediators (the attacker's) vote its hash: the
    /// mediators' 2-vote majority used to verify a result only one original revealed, slash the
    /// four honest originals and pay the attacker their collateral. Now the winning hash needs
    /// `confidence` agreeing results, originals and mediators together (1 + 2 < 4): the job fails
    /// safe, refunded, and the attacker is paid nothing.
    function test_Attack_MediatorsAloneCannotVerifyAgainstConfidence() public {
        IJobMarket.JobParams memory p = _params(5, 4, 5);
        p.escalate = true;
        uint256 jobId = _post(p);
        _bidSelect(jobId, 0, 5, PRICE);
        address[] memory d = _dealOps(jobId);
        _commitReveal(jobId, _five(GOOD, GOOD, GOOD, GOOD, BAD)); // d[4] is the attacker's
        _assertState(jobId, IJobMarket.JobState.Disputed);
        address[] memory m = _mediatorOps(jobId); // m[0], m[1] are the attacker's
        address last = _allButLastReveal(jobId, _results(BAD, BAD, GOOD), true);
        vm.expectEmit(true, false, false, true, address(market));
        emit IJobMarket.DisputeResolved(jobId, _sealed(jobId, BAD), true);
        vm.expectEmit(true, false, false, true, address(market));
        emit IJobMarket.JobFailed(jobId, IJobMarket.FailReason.NoQuorum);
        _reveal(jobId, last, GOOD);

        _assertState(jobId, IJobMarket.JobState.Failed);
        assertEq(market.getJob(jobId).sealedResult, bytes32(0), "the mediators' hash is not verified");
        assertEq(market.withdrawable(creator), 5 * MAX_PRICE, "full refund");
        // the attacker: unlocked, paid nothing (no price, no fee, no compensation)
        assertEq(market.withdrawable(d[4]), 0, "attacker deal unpaid");
        assertEq(_locked(d[4]), 0, "attacker deal unlocked");
        for (uint256 i; i < 2; ++i) {
            assertEq(market.withdrawable(m[i]), 0, "attacker mediator unpaid");
            assertEq(_locked(m[i]), 0, "attacker mediator unlocked");
        }
        // results differing from the mediators' majority are slashed; with no honest recipient
        // the collateral is burned, so nobody profits from it
        for (uint256 i; i < 4; ++i) {
            assertEq(market.withdrawable(d[i]), 0, "nobody paid");
        }
        assertEq(market.withdrawable(address(0)), 5 * uint256(COLLATERAL), "slashed collateral burned");
        _assertConservation(_one(jobId), _all());
    }

    /// @dev The count includes the mediators: originals 2 GOOD + 3 BAD under unanimity (k = 5),
    /// three honest mediators on GOOD: 2 + 3 >= 5, verified, the three colluders slashed. With
    /// only one GOOD original (1 + 3 < 5) the job fails safe, and the colluders are still slashed.
    function test_MediatedResultCountsOriginalsAndMediators() public {
        IJobMarket.JobParams memory p = _params(5, 5, 5);
        p.escalate = true;
        uint256 jobId = _post(p);
        _bidSelect(jobId, 0, 5, PRICE);
        address[] memory d = _dealOps(jobId);
        _commitReveal(jobId, _five(GOOD, GOOD, BAD, BAD, BAD));
        _mediate(jobId, _results(GOOD, GOOD, GOOD));
        _assertState(jobId, IJobMarket.JobState.Verified);
        assertEq(market.getJob(jobId).sealedResult, _sealed(jobId, GOOD), "2 originals + 3 mediators reach k = 5");
        assertEq(_stake(d[2]), OPERATOR_STAKE - COLLATERAL, "colluder slashed");

        uint256 other = _post(p);
        _bidSelect(other, 5, 5, PRICE);
        d = _dealOps(other);
        uint256 before = market.withdrawable(d[0]); // a mediator fee from the first job, maybe
        _commitReveal(other, _five(GOOD, BAD, BAD, BAD, BAD));
        address[] memory m = _mediatorOps(other);
        uint96[3] memory medStake = [_stake(m[0]), _stake(m[1]), _stake(m[2])];
        _mediate(other, _results(GOOD, GOOD, GOOD));
        _assertState(other, IJobMarket.JobState.Failed);
        assertEq(_stake(d[0]), OPERATOR_STAKE, "the lone right original is not slashed");
        assertEq(_locked(d[0]), 0, "and unlocked");
        assertEq(market.withdrawable(d[0]), before, "failed: unpaid");
        for (uint256 i = 1; i < 5; ++i) {
            assertEq(_stake(d[i]), OPERATOR_STAKE - COLLATERAL, "proven wrong by the mediators: slashed");
        }
        for (uint256 i; i < 3; ++i) {
            assertEq(_locked(m[i]), 0, "mediators unlocked");
            assertEq(_stake(m[i]), medStake[i], "mediators not slashed");
        }
    }

    /// @dev A job sets its own mediator count (here 5 instead of the deployment's 3); 0 means the
    /// deployment's; more than MAX_MEDIATORS is rejected.
    function test_JobChoosesItsMediatorCount() public {
        IJobMarket.JobParams memory p = _params(3, 2, 3);
        p.escalate = true;
        p.mediators = 5;
        uint256 jobId = _post(p);
        _bidSelect(jobId, 0, 3, PRICE);
        _commitReveal(jobId, _results(BAD, GOOD, BAD));
        _assertState(jobId, IJobMarket.JobState.Disputed);
        assertEq(_mediatorOps(jobId).length, 5, "five mediators");
        assertEq(market.getJob(jobId).mediatorCount, 5, "getJob reports them");
        bytes32[] memory r = new bytes32[](5);
        for (uint256 i; i < 5; ++i) {
            r[i] = GOOD;
        }
        _mediate(jobId, r);
        _assertState(jobId, IJobMarket.JobState.Verified);

        p.mediators = market.MAX_MEDIATORS() + 1;
        _postExpect(
            p, abi.encodeWithSelector(IJobMarket.JobMarket__BadMediators.selector, p.mediators, market.MAX_MEDIATORS())
        );
    }

    // =====================================================================================
    // 4. mediators can copy: sealed reveals, blind mediators
    // =====================================================================================

    /// @dev The attack: mediators commit after the originals revealed, so a lazy mediator used to
    /// commit to a revealed hash without executing, and mediation became a vote on the revealed
    /// results. Now originals reveal only sealed hashes `keccak256(jobId, resultHash)` and
    /// mediators commit over the plain hash. Two of three originals collude on BAD on an escalated
    /// job; a lazy mediator takes the colluders' public sealed hash as its result: its vote is the
    /// sealed form of that sealed hash, which counts for nobody, and it is slashed WrongResult
    /// while the two honest mediators decide. It cannot hand the sealed hash in as a sealed
    /// reveal (`revealResult` is for originals in Revealing), and its commitment cannot be opened
    /// with the real plain hash either, which it does not know (and would not help it once known).
    function test_Attack_MediatorCannotCopyRevealedResult() public {
        IJobMarket.JobParams memory p = _params(3, 2, 3);
        p.escalate = true;
        uint256 jobId = _post(p);
        _bidSelect(jobId, 0, 3, PRICE);
        address[] memory d = _dealOps(jobId);
        _commitReveal(jobId, _results(BAD, GOOD, BAD)); // d[0], d[2] collude on BAD
        _assertState(jobId, IJobMarket.JobState.Disputed);

        // everything the chain shows of the originals' results: sealed hashes, not BAD or GOOD
        IJobMarket.Deal[] memory deals = market.getDeals(jobId);
        bytes32 copied = deals[0].sealedResult; // the colluders' result, as revealed
        assertEq(copied, _sealed(jobId, BAD), "revealed: the sealed hash");
        assertEq(deals[2].sealedResult, copied, "the colluders revealed the same sealed hash");
        assertTrue(copied != BAD && deals[1].sealedResult != GOOD, "the plain hashes are not on chain");

        address[] memory m = _mediatorOps(jobId);
        address lazy = m[0];
        bytes32 salt = _salt(lazy);
        bytes32 committed = market.commitmentOf(jobId, lazy, copied, salt); // the copy, as its result
        vm.prank(lazy);
        market.commitResult(jobId, committed);
        _commit(jobId, m[1], GOOD);
        _commit(jobId, m[2], GOOD); // all committed: DisputeRevealing
        _assertState(jobId, IJobMarket.JobState.DisputeRevealing);

        // a mediator cannot hand in a sealed hash as an original does
        vm.prank(lazy);
        vm.expectRevert(
            abi.encodeWithSelector(
                IJobMarket.JobMarket__WrongState.selector, jobId, IJobMarket.JobState.DisputeRevealing
            )
        );
        market.revealResult(jobId, copied, salt);
        // its commitment binds the copy: the real plain hash (unknown to it anyway) does not open it
        vm.prank(lazy);
        vm.expectRevert(
            abi.encodeWithSelector(
                IJobMarket.JobMarket__CommitmentMismatch.selector,
                jobId,
                lazy,
                committed,
                keccak256(abi.encode(jobId, lazy, BAD, salt))
            )
        );
        market.revealMediation(jobId, BAD, salt);
        // and what it can open is the copied sealed hash itself: refused as a copy, it never votes
        vm.prank(lazy);
        vm.expectRevert(abi.encodeWithSelector(IJobMarket.JobMarket__CopiedResult.selector, jobId, lazy));
        market.revealMediation(jobId, copied, salt);

        _reveal(jobId, m[1], GOOD);
        _reveal(jobId, m[2], GOOD);
        _assertState(jobId, IJobMarket.JobState.DisputeRevealing); // the copier's reveal is missing
        vm.warp(market.getJob(jobId).phaseDeadline + 1);
        vm.expectEmit(true, true, false, true, address(market));
        emit IJobMarket.Slashed(jobId, lazy, COLLATERAL, IJobMarket.SlashReason.NoReveal);
        vm.expectEmit(true, false, false, true, address(market));
        emit IJobMarket.DisputeResolved(jobId, _sealed(jobId, GOOD), true);
        vm.expectEmit(true, false, false, true, address(market));
        emit IJobMarket.JobVerified(jobId, _sealed(jobId, GOOD), 1);
        market.finalize(jobId);

        _assertState(jobId, IJobMarket.JobState.Verified);
        assertEq(market.getJob(jobId).sealedResult, _sealed(jobId, GOOD), "the honest mediators decided");
        assertEq(_stake(lazy), OPERATOR_STAKE - COLLATERAL, "the copier is slashed");
        assertEq(market.withdrawable(lazy), 0, "and unpaid");
        assertEq(_stake(d[0]), OPERATOR_STAKE - COLLATERAL, "colluder slashed");
        assertEq(_stake(d[2]), OPERATOR_STAKE - COLLATERAL, "colluder slashed");
        for (uint256 i = 1; i < 3; ++i) {
            assertEq(market.withdrawable(m[i]), MAX_PRICE, "honest mediator: its fee");
            assertEq(_stake(m[i]), OPERATOR_STAKE, "honest mediator not slashed");
        }
        // the pot (three collaterals) pays two fees; the rest compensates the honest original
        assertEq(market.withdrawable(d[1]), PRICE + 3 * COLLATERAL - 2 * MAX_PRICE, "honest original");
        _assertConservation(_one(jobId), _all());
    }

    /// @dev The same on the optimistic path: a wrong result is challenged, and a lazy mediator
    /// copies the challenged (sealed) result hoping the majority keeps it standing. Its vote
    /// counts for nobody; the two honest mediators uphold the challenge: the wrong operator and the
    /// copier are slashed, the honest mediators and the challenger are paid.
    function test_Attack_MediatorCannotCopyChallengedResult() public {
        IJobMarket.JobParams memory p = _params(1, 1, 1);
        p.verifier = IJobMarket.Verifier.Optimistic;
        p.challengeWindow = WINDOW;
        uint256 jobId = _post(p);
        _bidSelect(jobId, 0, 1, PRICE);
        address op = _dealOps(jobId)[0];
        _commit(jobId, op, BAD);
        _reveal(jobId, op, BAD);
        _assertState(jobId, IJobMarket.JobState.Challengeable);
        bytes32 copied = market.getDeals(jobId)[0].sealedResult;
        assertEq(copied, _sealed(jobId, BAD), "only the sealed hash is public");

        address watcher = ops[11];
        uint256 bond = market.challengeBondOf(jobId);
        vm.prank(watcher);
        market.challenge{value: bond}(jobId);
        _draw(jobId);
        _assertState(jobId, IJobMarket.JobState.Disputed);
        address[] memory m = _mediatorOps(jobId);
        address lazy = m[0];
        bytes32 committed = market.commitmentOf(jobId, lazy, copied, _salt(lazy)); // the copy, as its result
        vm.prank(lazy);
        market.commitResult(jobId, committed);
        _commit(jobId, m[1], GOOD);
        _commit(jobId, m[2], GOOD);
        vm.prank(lazy);
        vm.expectRevert(abi.encodeWithSelector(IJobMarket.JobMarket__CopiedResult.selector, jobId, lazy));
        market.revealMediation(jobId, copied, _salt(lazy));
        _reveal(jobId, m[1], GOOD);
        _reveal(jobId, m[2], GOOD);
        vm.warp(market.getJob(jobId).phaseDeadline + 1);
        vm.expectEmit(true, true, false, true, address(market));
        emit IJobMarket.Slashed(jobId, op, COLLATERAL, IJobMarket.SlashReason.WrongResult);
        vm.expectEmit(true, true, false, true, address(market));
        emit IJobMarket.Slashed(jobId, lazy, COLLATERAL, IJobMarket.SlashReason.NoReveal);
        vm.expectEmit(true, false, false, true, address(market));
        emit IJobMarket.DisputeResolved(jobId, _sealed(jobId, GOOD), true);
        vm.expectEmit(true, false, false, true, address(market));
        emit IJobMarket.JobFailed(jobId, IJobMarket.FailReason.NoCorrectResult);
        market.finalize(jobId);

        _assertState(jobId, IJobMarket.JobState.Failed);
        assertEq(_stake(op), OPERATOR_STAKE - COLLATERAL, "wrong operator slashed");
        assertEq(_stake(lazy), OPERATOR_STAKE - COLLATERAL, "copier slashed");
        assertEq(market.withdrawable(lazy), 0, "copier unpaid");
        for (uint256 i = 1; i < 3; ++i) {
            assertEq(market.withdrawable(m[i]), MAX_PRICE, "honest mediator: its fee");
        }
        assertEq(market.withdrawable(watcher), 2 * bond, "upheld: bond back and a reward of the bond");
        assertEq(market.withdrawable(creator), MAX_PRICE, "full refund");
        assertEq(market.withdrawable(address(0)), 2 * COLLATERAL - 2 * MAX_PRICE - bond, "the rest burned");
        _assertConservation(_one(jobId), _all());
    }

    /// @dev Whether `needle` appears anywhere in a log: a topic or any 32 bytes of its data.
    function _inLog(Vm.Log memory entry, bytes32 needle) internal pure returns (bool) {
        for (uint256 i; i < entry.topics.length; ++i) {
            if (entry.topics[i] == needle) return true;
        }
        bytes memory data = entry.data;
        for (uint256 i; i + 32 <= data.length; ++i) {
            bytes32 w;
            assembly ("memory-safe") {
                w := mload(add(add(data, 32), i))
            }
            if (w == needle) return true;
        }
        return false;
    }

    function _assertNotLogged(Vm.Log[] memory logs, bytes32 needle, string memory what) internal pure {
        for (uint256 i; i < logs.length; ++i) {
            assertFalse(_inLog(logs[i], needle), what);
        }
    }

    /// @dev The plain result hash (the digest of the result's CID) is not in any log from the post
    /// to the end of the reveal phase, nor, on a disputed job, until every mediator has committed:
    /// `ResultRevealed` carries sealed hashes only. It is logged first by `publishResult`.
    function test_RevealsDoNotDiscloseTheResult() public {
        vm.recordLogs();
        uint256 jobId = _post(_params(3, 2, 3));
        _bidSelect(jobId, 0, 3, PRICE);
        _commitReveal(jobId, _results(GOOD, GOOD, GOOD));
        _assertState(jobId, IJobMarket.JobState.Verified);
        Vm.Log[] memory logs = vm.getRecordedLogs();
        _assertNotLogged(logs, GOOD, "plain result hash logged before publication");
        uint256 reveals;
        for (uint256 i; i < logs.length; ++i) {
            if (logs[i].topics.length != 0 && logs[i].topics[0] == IJobMarket.ResultRevealed.selector) {
                assertEq(keccak256(logs[i].data), keccak256(abi.encode(_sealed(jobId, GOOD))), "sealed hash only");
                ++reveals;
            }
        }
        assertEq(reveals, 3, "three reveals logged");

        // a disputed job: neither result is logged until the mediators have committed, and their
        // reveals are logged sealed too
        IJobMarket.JobParams memory p = _params(3, 2, 3);
        p.escalate = true;
        vm.recordLogs();
        uint256 other = _post(p);
        _bidSelect(other, 3, 3, PRICE);
        _commitReveal(other, _results(BAD, GOOD, BAD));
        address[] memory m = _mediatorOps(other);
        for (uint256 i; i < m.length; ++i) {
            _commit(other, m[i], GOOD);
        }
        _assertState(other, IJobMarket.JobState.DisputeRevealing);
        logs = vm.getRecordedLogs();
        _assertNotLogged(logs, GOOD, "right result logged before the mediators committed");
        _assertNotLogged(logs, BAD, "wrong result logged before the mediators committed");
        for (uint256 i; i < m.length; ++i) {
            _reveal(other, m[i], GOOD);
        }
        _assertState(other, IJobMarket.JobState.Verified);
        logs = vm.getRecordedLogs();
        _assertNotLogged(logs, GOOD, "mediators' reveals are logged sealed");

        market.publishResult(other, GOOD);
        logs = vm.getRecordedLogs();
        assertEq(logs.length, 1, "one log");
        assertEq(logs[0].topics[0], IJobMarket.ResultPublished.selector, "ResultPublished");
        assertTrue(_inLog(logs[0], GOOD), "published: the plain hash");
    }

    /// @dev `publishResult` takes the accepted result's plain hash only: anything else (another
    /// result, the sealed hash itself) reverts NotTheResult; it works in Verified only, for
    /// anyone, any number of times, and changes nothing.
    function test_PublishResultChecksThePreimage() public {
        uint256 jobId = _post(_params(3, 2, 3));
        vm.expectRevert(
            abi.encodeWithSelector(IJobMarket.JobMarket__WrongState.selector, jobId, IJobMarket.JobState.Posted)
        );
        market.publishResult(jobId, GOOD);
        _bidSelect(jobId, 0, 3, PRICE);
        address last = _allButLastReveal(jobId, _results(GOOD, GOOD, BAD), false);
        vm.expectRevert(
            abi.encodeWithSelector(IJobMarket.JobMarket__WrongState.selector, jobId, IJobMarket.JobState.Revealing)
        );
        market.publishResult(jobId, GOOD);
        _reveal(jobId, last, BAD);
        _assertState(jobId, IJobMarket.JobState.Verified);

        bytes32 accepted = market.getJob(jobId).sealedResult;
        assertEq(accepted, market.sealedHashOf(jobId, GOOD), "accepted: the sealed right result");
        vm.expectRevert(
            abi.encodeWithSelector(IJobMarket.JobMarket__NotTheResult.selector, jobId, accepted, _sealed(jobId, BAD))
        );
        market.publishResult(jobId, BAD); // a result that was revealed, but not accepted
        vm.expectRevert(
            abi.encodeWithSelector(
                IJobMarket.JobMarket__NotTheResult.selector, jobId, accepted, _sealed(jobId, accepted)
            )
        );
        market.publishResult(jobId, accepted); // the sealed hash is not its own preimage
        for (uint256 i; i < 2; ++i) {
            vm.expectEmit(true, false, false, true, address(market));
            emit IJobMarket.ResultPublished(jobId, GOOD);
            vm.prank(ops[11 - i]); // anyone, again
            market.publishResult(jobId, GOOD);
        }
        _assertState(jobId, IJobMarket.JobState.Verified);
        assertEq(market.getJob(jobId).sealedResult, accepted, "nothing changed");

        // a failed job has no result to publish; an unknown job none either
        uint256 failed = _post(_params(2, 2, 2));
        _bidSelect(failed, 3, 2, PRICE);
        _commitReveal(failed, _results2(GOOD, BAD));
        vm.expectRevert(
            abi.encodeWithSelector(IJobMarket.JobMarket__WrongState.selector, failed, IJobMarket.JobState.Failed)
        );
        market.publishResult(failed, GOOD);
        vm.expectRevert(abi.encodeWithSelector(IJobMarket.JobMarket__UnknownJob.selector, 99));
        market.publishResult(99, GOOD);
    }

    function _results2(bytes32 a, bytes32 b) internal pure returns (bytes32[] memory r) {
        r = new bytes32[](2);
        (r[0], r[1]) = (a, b);
    }

    // =====================================================================================
    // 6. dead registry entries switch mediation off
    // =====================================================================================

    /// @dev Registers `count` operators that then withdraw all their stake: entries that stay in
    /// the registry's history but can never serve.
    function _deadOperators(uint256 count) internal {
        for (uint256 i; i < count; ++i) {
            address op = _newOperator(1000 + i);
            vm.prank(op);
            registry.requestWithdrawal(OPERATOR_STAKE);
        }
    }

    /// @dev The attack: flood the registry with operators that withdrew (cheap: the stake comes
    /// back after unbonding), so that the bounded mediator draw only finds dead entries and an
    /// escalated disagreement silently falls back to the plain tally, where two colluders win.
    /// Now dead entries are not drawn: the mediators come from the live operators and overturn
    /// the colluders.
    function test_Attack_DeadOperatorsCannotSwitchOffMediation() public {
        // Before the fix the draw made 64 independent picks over all 1012 entries: about 0.6
        // expected hits on the 9 live non-deal operators, so mediation was almost always skipped.
        _deadOperators(1000);
        assertEq(registry.operatorCount(), 1012, "registry history keeps the dead entries");
        assertEq(registry.eligibleCount(), 12, "only live operators can be drawn");

        IJobMarket.JobParams memory p = _params(3, 2, 3);
        p.escalate = true;
        uint256 jobId = _post(p);
        _bidSelect(jobId, 0, 3, PRICE);
        address[] memory d = _dealOps(jobId);
        _commitReveal(jobId, _results(BAD, GOOD, BAD)); // d[0], d[2] collude on BAD
        _assertState(jobId, IJobMarket.JobState.Disputed);
        address[] memory m = _mediatorOps(jobId);
        assertEq(m.length, MEDIATORS, "mediators drawn");
        for (uint256 i; i < m.length; ++i) {
            assertTrue(registry.getOperator(m[i]).stake >= MIN_STAKE, "mediator is live");
            assertEq(_locked(m[i]), COLLATERAL, "mediator locked");
        }
        _mediate(jobId, _results(GOOD, GOOD, GOOD));
        _assertState(jobId, IJobMarket.JobState.Verified);
        assertEq(market.getJob(jobId).sealedResult, _sealed(jobId, GOOD), "mediators decided, not the colluding tally");
        assertEq(_stake(d[0]), OPERATOR_STAKE - COLLATERAL, "colluder slashed");
        assertEq(_stake(d[2]), OPERATOR_STAKE - COLLATERAL, "colluder slashed");
        assertEq(market.withdrawable(d[0]), 0, "colluder unpaid");
        _assertConservation(_one(jobId), _all());
    }

    /// @dev The same attack when the live pool really is too small (the live operators withdrew
    /// too): the job fails safe, refunded, nobody slashed, the colluders' tally never decides.
    function test_Attack_DeadOperatorsCannotSwitchOffMediation_FailsSafe() public {
        _deadOperators(100);
        IJobMarket.JobParams memory p = _params(3, 2, 3);
        p.escalate = true;
        uint256 jobId = _post(p);
        _bidSelect(jobId, 0, 3, PRICE);
        address[] memory d = _dealOps(jobId);
        for (uint256 i = 3; i < ops.length - 1; ++i) {
            vm.prank(ops[i]);
            registry.requestWithdrawal(OPERATOR_STAKE);
        }
        assertEq(registry.eligibleCount(), 4, "three busy deal holders and one live operator");
        address last = _allButLastReveal(jobId, _results(BAD, GOOD, BAD), false);
        _reveal(jobId, last, BAD);
        vm.expectEmit(true, false, false, true, address(market));
        emit IJobMarket.JobFailed(jobId, IJobMarket.FailReason.NoMediators);
        _draw(jobId);
        _assertState(jobId, IJobMarket.JobState.Failed);
        assertEq(market.getJob(jobId).sealedResult, bytes32(0), "no result");
        assertEq(market.withdrawable(creator), 3 * MAX_PRICE, "full refund");
        for (uint256 i; i < 3; ++i) {
            assertEq(_stake(d[i]), OPERATOR_STAKE, "nobody slashed");
            assertEq(_locked(d[i]), 0, "unlocked");
            assertEq(market.withdrawable(d[i]), 0, "nobody paid");
        }
        assertEq(_locked(ops[ops.length - 1]), 0, "the live candidate was never locked");
        _assertConservation(_one(jobId), _all());
    }

    /// @dev An operator whose free stake drops below minStake (locked by deals) is not drawn,
    /// and is back in the pool when the deal unlocks.
    function test_BusyOperatorLeavesAndRejoinsThePool() public {
        address op = ops[0];
        vm.prank(op);
        registry.requestWithdrawal(OPERATOR_STAKE - 1.5 ether); // 1.5 ether stake left
        assertTrue(registry.isEligible(op), "1.5 ether free >= min stake");
        uint256 jobId = _post(_params(1, 1, 1));
        _bidSelect(jobId, 0, 1, PRICE); // locks 1 ether: 0.5 ether free
        assertFalse(registry.isEligible(op), "busy: not drawable");
        assertEq(registry.eligibleCount(), 11, "pool shrank");
        _commitReveal(jobId, _one32(GOOD));
        assertTrue(registry.isEligible(op), "unlocked: drawable again");
        assertEq(registry.eligibleCount(), 12, "pool restored");
    }

    function _one32(bytes32 a) internal pure returns (bytes32[] memory r) {
        r = new bytes32[](1);
        r[0] = a;
    }

    // =====================================================================================
    // 7. free griefing
    // =====================================================================================

    /// @dev The attack: under unanimity (confidence == concurrency) one selected operator reveals
    /// a different result and the job fails for free. Now, when a strict majority agrees, the
    /// dissenter is slashed (WrongResult) and its collateral burned; the majority is unlocked.
    function test_Attack_DissentUnderUnanimityIsSlashed() public {
        uint256 jobId = _post(_params(3, 3, 3));
        _bidSelect(jobId, 0, 3, PRICE);
        address[] memory d = _dealOps(jobId);
        address last = _allButLastReveal(jobId, _results(GOOD, GOOD, BAD), false);
        vm.expectEmit(true, true, false, true, address(market));
        emit IJobMarket.Slashed(jobId, last, COLLATERAL, IJobMarket.SlashReason.WrongResult);
        vm.expectEmit(true, false, false, true, address(market));
        emit IJobMarket.JobFailed(jobId, IJobMarket.FailReason.NoQuorum);
        _reveal(jobId, last, BAD);

        _assertState(jobId, IJobMarket.JobState.Failed);
        assertEq(market.getJob(jobId).sealedResult, bytes32(0), "unanimity not reached: no result");
        assertEq(_stake(d[2]), OPERATOR_STAKE - COLLATERAL, "the dissenter pays for the failure");
        for (uint256 i; i < 2; ++i) {
            assertEq(_stake(d[i]), OPERATOR_STAKE, "majority not slashed");
            assertEq(_locked(d[i]), 0, "majority unlocked");
            assertEq(market.withdrawable(d[i]), 0, "failed job: nobody paid");
        }
        assertEq(market.withdrawable(creator), 3 * MAX_PRICE, "full refund, no collateral");
        assertEq(market.withdrawable(address(0)), COLLATERAL, "dissenter's collateral burned");
        _assertConservation(_one(jobId), _all());
    }

    /// @dev Without a strict majority under unanimity nobody can tell who was right: nobody slashed.
    function test_DissentUnderUnanimityWithoutMajority_NobodySlashed() public {
        uint256 jobId = _post(_params(4, 4, 4));
        _bidSelect(jobId, 0, 4, PRICE);
        address[] memory d = _dealOps(jobId);
        bytes32[] memory r = new bytes32[](4);
        (r[0], r[1], r[2], r[3]) = (GOOD, BAD, GOOD, BAD);
        _commitReveal(jobId, r);
        _assertState(jobId, IJobMarket.JobState.Failed);
        for (uint256 i; i < 4; ++i) {
            assertEq(_stake(d[i]), OPERATOR_STAKE, "no majority, no slash");
            assertEq(_locked(d[i]), 0, "unlocked");
        }
        assertEq(market.withdrawable(address(0)), 0, "nothing burned");
    }
}
