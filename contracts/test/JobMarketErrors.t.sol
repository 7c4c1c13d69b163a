// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Fixture} from "./utils/Fixture.sol";
import {IJobMarket} from "../src/interfaces/IJobMarket.sol";
import {IOperatorRegistry} from "../src/interfaces/IOperatorRegistry.sol";
import {JobMarket} from "../src/JobMarket.sol";
import {OperatorRegistry} from "../src/OperatorRegistry.sol";

/// @dev A job creator whose wallet refuses payments.
contract RefusingCreator {
    function post(IJobMarket market, IJobMarket.JobParams calldata p) external payable returns (uint256) {
        return market.postJob{value: msg.value}(p);
    }

    function claim(IJobMarket market) external {
        market.claim();
    }
}

/// @notice Every JobMarket custom error, each triggered with the values it reports.
contract JobMarketErrorsTest is Fixture {
    uint96 internal constant PRICE = 0.08 ether;

    function _expect(bytes memory err) internal {
        vm.expectRevert(err);
    }

    function _running() internal returns (uint256 jobId, address[] memory d) {
        jobId = _post(_params(3, 2, 3));
        _bidSelect(jobId, 0, 3, PRICE);
        d = _dealOps(jobId);
    }

    function _revealing() internal returns (uint256 jobId, address[] memory d) {
        (jobId, d) = _running();
        for (uint256 i; i < 3; ++i) {
            _commit(jobId, d[i], GOOD);
        }
    }

    // ---- constructor ----

    function test_RevertWhen_BadConfig() public {
        IOperatorRegistry r = IOperatorRegistry(address(registry));
        _expect(abi.encodeWithSelector(IJobMarket.JobMarket__BadConfig.selector, uint8(0), BOND));
        new JobMarket(r, 0, BOND, 1, 2, 2, 10, 100, 0);
        _expect(abi.encodeWithSelector(IJobMarket.JobMarket__BadConfig.selector, uint8(17), BOND));
        new JobMarket(r, 17, BOND, 1, 2, 2, 10, 100, 0);
        _expect(abi.encodeWithSelector(IJobMarket.JobMarket__BadConfig.selector, uint8(3), uint96(0)));
        new JobMarket(r, 3, 0, 1, 2, 2, 10, 100, 0);
    }

    function test_RevertWhen_BadSafetyConfig() public {
        IOperatorRegistry r = IOperatorRegistry(address(registry));
        bytes4 sel = IJobMarket.JobMarket__BadSafetyConfig.selector;
        _expect(abi.encodeWithSelector(sel, uint32(0), uint32(2), uint32(2), uint16(10)));
        new JobMarket(r, 3, BOND, 0, 2, 2, 10, 100, 0);
        _expect(abi.encodeWithSelector(sel, uint32(1), uint32(0), uint32(2), uint16(10)));
        new JobMarket(r, 3, BOND, 1, 0, 2, 10, 100, 0);
        _expect(abi.encodeWithSelector(sel, uint32(1), uint32(2), uint32(0), uint16(10)));
        new JobMarket(r, 3, BOND, 1, 2, 0, 10, 100, 0);
        _expect(abi.encodeWithSelector(sel, uint32(1), uint32(2), uint32(2), uint16(0)));
        new JobMarket(r, 3, BOND, 1, 2, 2, 0, 100, 0);
        JobMarket m = new JobMarket(r, 3, BOND, 1, 2, 2, 20, 100, 0);
        assertEq(m.minBidWindow(), 1, "min bid window");
        assertEq(m.minExecWindow(), 2, "min exec window");
        assertEq(m.minRevealWindow(), 2, "min reveal window");
        assertEq(m.maxCollateralFactor(), 20, "collateral factor");
    }

    // ---- postJob ----

    function _postExpect(IJobMarket.JobParams memory p, uint256 value, bytes memory err) internal {
        vm.prank(creator);
        vm.expectRevert(err);
        market.postJob{value: value}(p);
    }

    function test_RevertWhen_BadConcurrency() public {
        IJobMarket.JobParams memory p = _params(0, 0, 0);
        _postExpect(p, 0, abi.encodeWithSelector(IJobMarket.JobMarket__BadConcurrency.selector, uint8(0)));
        p = _params(33, 1, 33);
        _postExpect(p, 0, abi.encodeWithSelector(IJobMarket.JobMarket__BadConcurrency.selector, uint8(33)));
    }

    function test_RevertWhen_BadConfidence() public {
        _postExpect(
            _params(3, 4, 3),
            0,
            abi.encodeWithSelector(IJobMarket.JobMarket__BadConfidence.selector, uint8(4), uint8(3))
        );
        _postExpect(
            _params(3, 0, 3),
            0,
            abi.encodeWithSelector(IJobMarket.JobMarket__BadConfidence.selector, uint8(0), uint8(3))
        );
    }

    function test_RevertWhen_BadMinBids() public {
        _postExpect(
            _params(3, 2, 2), 0, abi.encodeWithSelector(IJobMarket.JobMarket__BadMinBids.selector, uint8(2), uint8(3))
        );
        _postExpect(
            _params(3, 2, 33), 0, abi.encodeWithSelector(IJobMarket.JobMarket__BadMinBids.selector, uint8(33), uint8(3))
        );
    }

    function test_RevertWhen_ZeroMaxPrice() public {
        IJobMarket.JobParams memory p = _params(3, 2, 3);
        p.maxPrice = 0;
        _postExpect(p, 0, abi.encodeWithSelector(IJobMarket.JobMarket__ZeroMaxPrice.selector));
    }

    function test_RevertWhen_BadWindow() public {
        IJobMarket.JobParams memory p = _params(3, 2, 3);
        p.execWindow = 0;
        _postExpect(
            p,
            3 * MAX_PRICE,
            abi.encodeWithSelector(IJobMarket.JobMarket__BadWindow.selector, WINDOW, uint32(0), WINDOW, uint32(0))
        );
        p = _params(3, 2, 3);
        p.challengeWindow = WINDOW; // deterministic jobs have no challenge window
        _postExpect(
            p,
            3 * MAX_PRICE,
            abi.encodeWithSelector(IJobMarket.JobMarket__BadWindow.selector, WINDOW, WINDOW, WINDOW, WINDOW)
        );
        p = _params(3, 2, 3);
        p.verifier = IJobMarket.Verifier.Optimistic; // optimistic jobs need one
        _postExpect(
            p,
            3 * MAX_PRICE,
            abi.encodeWithSelector(IJobMarket.JobMarket__BadWindow.selector, WINDOW, WINDOW, WINDOW, uint32(0))
        );
    }

    function test_RevertWhen_EmptySpec() public {
        IJobMarket.JobParams memory p = _params(3, 2, 3);
        p.specCid = "";
        _postExpect(p, 3 * MAX_PRICE, abi.encodeWithSelector(IJobMarket.JobMarket__EmptySpec.selector));
    }

    function test_RevertWhen_WrongEscrow() public {
        _postExpect(
            _params(3, 2, 3),
            MAX_PRICE,
            abi.encodeWithSelector(IJobMarket.JobMarket__WrongEscrow.selector, MAX_PRICE, 3 * MAX_PRICE)
        );
    }

    // ---- job lookups and states ----

    function test_RevertWhen_UnknownJob() public {
        _expect(abi.encodeWithSelector(IJobMarket.JobMarket__UnknownJob.selector, 99));
        market.bid(99, PRICE);
        _expect(abi.encodeWithSelector(IJobMarket.JobMarket__UnknownJob.selector, 0));
        market.finalize(0);
    }

    function test_RevertWhen_WrongState() public {
        (uint256 jobId, address[] memory d) = _running();
        vm.prank(ops[5]);
        _expect(abi.encodeWithSelector(IJobMarket.JobMarket__WrongState.selector, jobId, IJobMarket.JobState.Running));
        market.bid(jobId, PRICE);
        vm.prank(d[0]);
        _expect(abi.encodeWithSelector(IJobMarket.JobMarket__WrongState.selector, jobId, IJobMarket.JobState.Running));
        market.revealResult(jobId, _sealed(jobId, GOOD), _salt(d[0]));
        _expect(abi.encodeWithSelector(IJobMarket.JobMarket__WrongState.selector, jobId, IJobMarket.JobState.Running));
        market.closeBidding(jobId);
        _commitReveal(jobId, _results(GOOD, GOOD, GOOD));
        _expect(abi.encodeWithSelector(IJobMarket.JobMarket__WrongState.selector, jobId, IJobMarket.JobState.Verified));
        market.finalize(jobId);
        vm.prank(d[0]);
        _expect(abi.encodeWithSelector(IJobMarket.JobMarket__WrongState.selector, jobId, IJobMarket.JobState.Verified));
        market.commitResult(jobId, keccak256("x"));
    }

    // ---- bid ----

    function test_RevertWhen_BiddingOver() public {
        uint256 jobId = _post(_params(3, 2, 3));
        uint64 deadline = uint64(block.timestamp) + WINDOW;
        vm.warp(deadline + 1);
        vm.prank(ops[0]);
        _expect(abi.encodeWithSelector(IJobMarket.JobMarket__BiddingOver.selector, jobId, deadline));
        market.bid(jobId, PRICE);
    }

    function test_RevertWhen_CreatorCannotBid() public {
        vm.deal(ops[0], 10 ether);
        IJobMarket.JobParams memory p = _params(3, 2, 3);
        vm.prank(ops[0]);
        uint256 jobId = market.postJob{value: 3 * MAX_PRICE}(p);
        vm.prank(ops[0]);
        _expect(abi.encodeWithSelector(IJobMarket.JobMarket__CreatorCannotBid.selector, jobId, ops[0]));
        market.bid(jobId, PRICE);
    }

    function test_RevertWhen_NotRegistered() public {
        uint256 jobId = _post(_params(3, 2, 3));
        address stranger = address(0xBEEF);
        vm.prank(stranger);
        _expect(abi.encodeWithSelector(IJobMarket.JobMarket__NotRegistered.selector, stranger));
        market.bid(jobId, PRICE);
    }

    function test_RevertWhen_InsufficientStake() public {
        IJobMarket.JobParams memory p = _params(3, 2, 3);
        p.maxPrice = 2 ether; // so that the collateral cap (10 x maxPrice) allows it
        p.collateral = OPERATOR_STAKE + 1;
        uint256 jobId = _post(p);
        vm.prank(ops[0]);
        _expect(
            abi.encodeWithSelector(
                IJobMarket.JobMarket__InsufficientStake.selector, ops[0], OPERATOR_STAKE, OPERATOR_STAKE + 1
            )
        );
        market.bid(jobId, PRICE);
    }

    function test_RevertWhen_PriceTooHigh() public {
        uint256 jobId = _post(_params(3, 2, 3));
        vm.prank(ops[0]);
        _expect(abi.encodeWithSelector(IJobMarket.JobMarket__PriceTooHigh.selector, MAX_PRICE + 1, MAX_PRICE));
        market.bid(jobId, MAX_PRICE + 1);
    }

    function test_RevertWhen_AlreadyBid() public {
        uint256 jobId = _post(_params(3, 2, 3));
        _bids(jobId, 0, 1, PRICE);
        vm.prank(ops[0]);
        _expect(abi.encodeWithSelector(IJobMarket.JobMarket__AlreadyBid.selector, jobId, ops[0]));
        market.bid(jobId, PRICE);
    }

    // ---- commit / reveal ----

    function test_RevertWhen_NotOnJob() public {
        uint256 jobId = _post(_params(3, 2, 4));
        _bidSelect(jobId, 0, 4, PRICE);
        address loser;
        for (uint256 i; i < 4; ++i) {
            if (_locked(ops[i]) == 0) loser = ops[i];
        }
        vm.prank(loser);
        _expect(abi.encodeWithSelector(IJobMarket.JobMarket__NotOnJob.selector, jobId, loser));
        market.commitResult(jobId, keccak256("x"));
    }

    function test_RevertWhen_ZeroCommitment() public {
        (uint256 jobId, address[] memory d) = _running();
        vm.prank(d[0]);
        _expect(abi.encodeWithSelector(IJobMarket.JobMarket__ZeroCommitment.selector));
        market.commitResult(jobId, bytes32(0));
    }

    function test_RevertWhen_AlreadyCommitted() public {
        (uint256 jobId, address[] memory d) = _running();
        _commit(jobId, d[0], GOOD);
        vm.prank(d[0]);
        _expect(abi.encodeWithSelector(IJobMarket.JobMarket__AlreadyCommitted.selector, jobId, d[0]));
        market.commitResult(jobId, keccak256("again"));
    }

    function test_RevertWhen_CommitAfterDeadline() public {
        (uint256 jobId, address[] memory d) = _running();
        uint64 deadline = uint64(block.timestamp) + WINDOW;
        vm.warp(deadline + 1);
        vm.prank(d[0]);
        _expect(abi.encodeWithSelector(IJobMarket.JobMarket__DeadlinePassed.selector, jobId, deadline));
        market.commitResult(jobId, keccak256("late"));
    }

    function test_RevertWhen_ZeroResultHash() public {
        (uint256 jobId, address[] memory d) = _revealing();
        vm.prank(d[0]);
        _expect(abi.encodeWithSelector(IJobMarket.JobMarket__ZeroResultHash.selector));
        market.revealResult(jobId, bytes32(0), _salt(d[0]));
    }

    function test_RevertWhen_NotCommitted() public {
        (uint256 jobId, address[] memory d) = _running();
        _commit(jobId, d[0], GOOD);
        _commit(jobId, d[1], GOOD);
        vm.warp(block.timestamp + WINDOW + 1);
        market.finalize(jobId);
        vm.prank(d[2]);
        _expect(abi.encodeWithSelector(IJobMarket.JobMarket__NotCommitted.selector, jobId, d[2]));
        market.revealResult(jobId, _sealed(jobId, GOOD), _salt(d[2]));
    }

    function test_RevertWhen_AlreadyRevealed() public {
        (uint256 jobId, address[] memory d) = _revealing();
        _reveal(jobId, d[0], GOOD);
        vm.prank(d[0]);
        _expect(abi.encodeWithSelector(IJobMarket.JobMarket__AlreadyRevealed.selector, jobId, d[0]));
        market.revealResult(jobId, _sealed(jobId, GOOD), _salt(d[0]));
    }

    function test_RevertWhen_CopiedCommitmentRevealed() public {
        (uint256 jobId, address[] memory d) = _running();
        // d[1] watches d[0]'s commitment in the mempool and submits the same bytes
        bytes32 honest = keccak256(abi.encode(jobId, d[0], _sealed(jobId, GOOD), _salt(d[0])));
        vm.prank(d[0]);
        market.commitResult(jobId, honest);
        vm.prank(d[1]);
        market.commitResult(jobId, honest);
        _commit(jobId, d[2], GOOD);
        _reveal(jobId, d[0], GOOD);
        // even knowing the revealed hash and salt, the copy cannot be opened: the operator is bound
        bytes32 computed = keccak256(abi.encode(jobId, d[1], _sealed(jobId, GOOD), _salt(d[0])));
        vm.prank(d[1]);
        _expect(
            abi.encodeWithSelector(IJobMarket.JobMarket__CommitmentMismatch.selector, jobId, d[1], honest, computed)
        );
        market.revealResult(jobId, _sealed(jobId, GOOD), _salt(d[0]));
        // the copier ends up slashed as a non-revealer
        vm.warp(block.timestamp + WINDOW + 1);
        market.finalize(jobId);
        assertEq(_stake(d[1]), OPERATOR_STAKE - COLLATERAL, "copier slashed");
    }

    function test_RevertWhen_RevealWrongSalt() public {
        (uint256 jobId, address[] memory d) = _revealing();
        bytes32 committed = keccak256(abi.encode(jobId, d[0], _sealed(jobId, GOOD), _salt(d[0])));
        bytes32 computed = keccak256(abi.encode(jobId, d[0], _sealed(jobId, GOOD), bytes32(0)));
        vm.prank(d[0]);
        _expect(
            abi.encodeWithSelector(IJobMarket.JobMarket__CommitmentMismatch.selector, jobId, d[0], committed, computed)
        );
        market.revealResult(jobId, _sealed(jobId, GOOD), bytes32(0));
    }

    /// @dev Originals reveal sealed hashes with `revealResult` in Revealing only; mediators reveal
    /// plain hashes with `revealMediation` in DisputeRevealing only.
    function test_RevertWhen_RevealMediationOutsideADispute() public {
        (uint256 jobId, address[] memory d) = _revealing();
        vm.prank(d[0]);
        _expect(abi.encodeWithSelector(IJobMarket.JobMarket__WrongState.selector, jobId, IJobMarket.JobState.Revealing));
        market.revealMediation(jobId, GOOD, _salt(d[0]));
        vm.prank(d[0]);
        _expect(abi.encodeWithSelector(IJobMarket.JobMarket__ZeroResultHash.selector));
        market.revealMediation(jobId, bytes32(0), _salt(d[0]));
    }

    function test_RevertWhen_RevealAfterDeadline() public {
        (uint256 jobId, address[] memory d) = _revealing();
        uint64 deadline = uint64(block.timestamp) + WINDOW;
        vm.warp(deadline + 1);
        vm.prank(d[0]);
        _expect(abi.encodeWithSelector(IJobMarket.JobMarket__DeadlinePassed.selector, jobId, deadline));
        market.revealResult(jobId, _sealed(jobId, GOOD), _salt(d[0]));
    }

    // ---- deadlines ----

    function test_RevertWhen_DeadlineNotReached() public {
        uint256 jobId = _post(_params(3, 2, 3));
        uint64 bidDeadline = uint64(block.timestamp) + WINDOW;
        _expect(abi.encodeWithSelector(IJobMarket.JobMarket__DeadlineNotReached.selector, jobId, bidDeadline));
        market.closeBidding(jobId);
        _expect(abi.encodeWithSelector(IJobMarket.JobMarket__DeadlineNotReached.selector, jobId, bidDeadline));
        market.finalize(jobId);
        _bidSelect(jobId, 0, 3, PRICE);
        uint64 execDeadline = uint64(block.timestamp) + WINDOW;
        _expect(abi.encodeWithSelector(IJobMarket.JobMarket__DeadlineNotReached.selector, jobId, execDeadline));
        market.finalize(jobId);
    }

    // ---- challenge ----

    function _challengeable() internal returns (uint256 jobId) {
        IJobMarket.JobParams memory p = _params(1, 1, 1);
        p.verifier = IJobMarket.Verifier.Optimistic;
        p.challengeWindow = WINDOW;
        jobId = _post(p);
        _bidSelect(jobId, 0, 1, PRICE);
        _commit(jobId, ops[0], GOOD);
        _reveal(jobId, ops[0], GOOD);
    }

    function test_RevertWhen_NotOptimistic() public {
        (uint256 jobId,) = _running();
        vm.prank(creator);
        _expect(abi.encodeWithSelector(IJobMarket.JobMarket__NotOptimistic.selector, jobId));
        market.challenge{value: BOND}(jobId);
    }

    function test_RevertWhen_ChallengeInWrongState() public {
        IJobMarket.JobParams memory p = _params(1, 1, 1);
        p.verifier = IJobMarket.Verifier.Optimistic;
        p.challengeWindow = WINDOW;
        uint256 jobId = _post(p);
        vm.prank(creator);
        _expect(abi.encodeWithSelector(IJobMarket.JobMarket__WrongState.selector, jobId, IJobMarket.JobState.Posted));
        market.challenge{value: BOND}(jobId);
    }

    function test_RevertWhen_WrongBond() public {
        uint256 jobId = _challengeable();
        vm.prank(creator);
        _expect(abi.encodeWithSelector(IJobMarket.JobMarket__WrongBond.selector, uint256(1), BOND));
        market.challenge{value: 1}(jobId);
    }

    function test_RevertWhen_ChallengeAfterWindow() public {
        uint256 jobId = _challengeable();
        uint64 deadline = uint64(block.timestamp) + WINDOW;
        vm.warp(deadline + 1);
        vm.prank(creator);
        _expect(abi.encodeWithSelector(IJobMarket.JobMarket__DeadlinePassed.selector, jobId, deadline));
        market.challenge{value: BOND}(jobId);
    }

    // ---- money ----

    function test_RevertWhen_NothingToClaim() public {
        vm.prank(ops[0]);
        _expect(abi.encodeWithSelector(IJobMarket.JobMarket__NothingToClaim.selector, ops[0]));
        market.claim();
    }

    function test_RevertWhen_TransferFailed() public {
        RefusingCreator wallet = new RefusingCreator();
        vm.deal(address(wallet), 1 ether);
        uint256 jobId = wallet.post{value: 3 * MAX_PRICE}(market, _params(3, 2, 3));
        vm.warp(block.timestamp + WINDOW + 1);
        market.finalize(jobId);
        _expect(abi.encodeWithSelector(IJobMarket.JobMarket__TransferFailed.selector, address(wallet), 3 * MAX_PRICE));
        wallet.claim(market);
        assertEq(market.withdrawable(address(wallet)), 3 * MAX_PRICE, "still owed after the failed transfer");
    }

    function test_RevertWhen_OnlyRegistry() public {
        vm.deal(address(this), 1 ether);
        _expect(abi.encodeWithSelector(IJobMarket.JobMarket__OnlyRegistry.selector, address(this)));
        (bool ok,) = address(market).call{value: 1}("");
        ok;
    }
}

/// @notice A world too small to staff a mediation.
contract JobMarketSmallWorldTest is Fixture {
    function setUp() public override {
        registry = new OperatorRegistry(UNBONDING, MIN_STAKE);
        market = _newMarket(registry);
        registry.setMarket(address(market));
        vm.deal(creator, 1000 ether);
        vm.warp(1_700_000_000);
        for (uint256 i; i < 4; ++i) {
            ops.push(_newOperator(i));
        }
    }

    /// @dev A challenge whose mediators cannot be drawn: the result stands and the bond comes back.
    function test_ChallengeWithoutMediators_ResultStandsBondReturned() public {
        IJobMarket.JobParams memory p = _params(2, 1, 2);
        p.verifier = IJobMarket.Verifier.Optimistic;
        p.challengeWindow = WINDOW;
        uint256 jobId = _post(p);
        _bidSelect(jobId, 0, 2, 0.05 ether);
        _commitReveal(jobId, _results(GOOD, GOOD, GOOD));
        _assertState(jobId, IJobMarket.JobState.Challengeable);
        // 4 operators: ops[0..1] are on the job, ops[2] challenges -> only ops[3] can mediate
        address watcher = ops[2];
        vm.prank(watcher);
        market.challenge{value: BOND}(jobId);
        _assertState(jobId, IJobMarket.JobState.DisputeDrawing);
        vm.expectEmit(true, true, false, true, address(market));
        emit IJobMarket.Paid(jobId, watcher, BOND, IJobMarket.PaymentKind.BondReturned);
        _draw(jobId);
        _assertState(jobId, IJobMarket.JobState.Verified);
        assertEq(market.withdrawable(watcher), BOND, "bond returned");
        assertEq(_locked(ops[3]), 0, "the lone candidate mediator was never locked");
    }

    /// @dev Escalation asked for mediators and they cannot be drawn: the job fails safe (full
    /// refund, nobody judged) instead of letting the plain tally decide.
    function test_DisagreementWithoutMediatorsFailsSafe() public {
        IJobMarket.JobParams memory p = _params(3, 2, 3);
        p.escalate = true;
        uint256 jobId = _post(p);
        _bidSelect(jobId, 0, 3, 0.05 ether);
        address[] memory d = _dealOps(jobId);
        address last = _allButLastReveal(jobId, _results(GOOD, GOOD, BAD), false);
        _reveal(jobId, last, BAD);
        vm.expectEmit(true, false, false, true, address(market));
        emit IJobMarket.JobFailed(jobId, IJobMarket.FailReason.NoMediators);
        _draw(jobId);
        _assertState(jobId, IJobMarket.JobState.Failed);
        assertEq(market.getJob(jobId).sealedResult, bytes32(0), "the plain tally did not decide");
        assertEq(market.withdrawable(creator), 3 * MAX_PRICE, "full refund");
        for (uint256 i; i < 3; ++i) {
            assertEq(_stake(d[i]), OPERATOR_STAKE, "nobody slashed");
            assertEq(_locked(d[i]), 0, "collateral unlocked");
            assertEq(market.withdrawable(d[i]), 0, "nobody paid");
        }
        assertEq(_locked(ops[3]), 0, "the lone candidate mediator was never locked");
        assertEq(market.withdrawable(address(0)), 0, "nothing burned");
    }
}
