// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Fixture} from "./utils/Fixture.sol";
import {Vm} from "./utils/Vm.sol";
import {IJobMarket} from "../src/interfaces/IJobMarket.sol";

/// @notice `batch`: an operator's calls of many jobs in one transaction, each as if sent alone,
/// and the attacks a batch must not enable.
contract JobMarketBatchTest is Fixture {
    uint96 internal constant PRICE = 0.08 ether;
    address internal attacker = address(0xBAD);

    function _jobs(uint256 count) internal returns (uint256[] memory ids) {
        ids = new uint256[](count);
        for (uint256 i; i < count; ++i) {
            ids[i] = _post(_params(3, 2, 3));
        }
    }

    function _bidCalls(uint256[] memory ids) internal pure returns (bytes[] memory calls) {
        calls = new bytes[](ids.length);
        for (uint256 i; i < ids.length; ++i) {
            calls[i] = abi.encodeCall(IJobMarket.bid, (ids[i], PRICE));
        }
    }

    /// @dev The (index, revert data) of every CallFailed the market emitted since recordLogs.
    function _failures() internal returns (uint256[] memory index, bytes[] memory reason) {
        Vm.Log[] memory logs = vm.getRecordedLogs();
        uint256 n;
        for (uint256 i; i < logs.length; ++i) {
            if (logs[i].emitter == address(market) && logs[i].topics[0] == IJobMarket.CallFailed.selector) n++;
        }
        index = new uint256[](n);
        reason = new bytes[](n);
        n = 0;
        for (uint256 i; i < logs.length; ++i) {
            if (logs[i].emitter == address(market) && logs[i].topics[0] == IJobMarket.CallFailed.selector) {
                index[n] = uint256(logs[i].topics[1]);
                reason[n] = abi.decode(logs[i].data, (bytes));
                n++;
            }
        }
    }

    function _assertOneBid(uint256 jobId, address op) internal view {
        IJobMarket.Bid[] memory bids = market.getBids(jobId);
        assertEq(bids.length, 1, "one bid");
        assertEq(bids[0].operator, op, "the batch's sender bid");
        assertEq(uint256(bids[0].price), PRICE, "at its price");
    }

    function test_BatchBidsOnManyJobs() public {
        uint256[] memory ids = _jobs(5);
        vm.recordLogs();
        vm.prank(ops[0]);
        market.batch(_bidCalls(ids));
        (uint256[] memory failed,) = _failures();
        assertEq(failed.length, 0, "no call failed");
        for (uint256 i; i < ids.length; ++i) {
            _assertOneBid(ids[i], ops[0]);
        }
    }

    function test_BatchReportsAFailedCallAndGoesOn() public {
        uint256[] memory ids = _jobs(2);
        bytes[] memory calls = new bytes[](3);
        calls[0] = abi.encodeCall(IJobMarket.bid, (ids[0], PRICE));
        calls[1] = abi.encodeCall(IJobMarket.bid, (ids[0], PRICE)); // a second bid: reverts alone
        calls[2] = abi.encodeCall(IJobMarket.bid, (ids[1], PRICE));
        vm.recordLogs();
        vm.prank(ops[0]);
        market.batch(calls);
        (uint256[] memory failed, bytes[] memory reason) = _failures();
        assertEq(failed.length, 1, "one call failed");
        assertEq(failed[0], 1, "the second");
        assertEq(
            keccak256(reason[0]),
            keccak256(abi.encodeWithSelector(IJobMarket.JobMarket__AlreadyBid.selector, ids[0], ops[0])),
            "with the revert data it has when sent alone"
        );
        _assertOneBid(ids[0], ops[0]);
        _assertOneBid(ids[1], ops[0]);
    }

    /// @dev Each operator commits and reveals two jobs in two batches; both verify as they do
    /// when every call is its own transaction.
    function test_BatchedCommitsAndRevealsSettleJobs() public {
        uint256[] memory ids = _jobs(2);
        for (uint256 j; j < ids.length; ++j) {
            _bids(ids[j], 0, 3, PRICE);
        }
        for (uint256 j; j < ids.length; ++j) {
            _close(ids[j]);
        }
        address[] memory d = _dealOps(ids[0]);
        for (uint256 pass; pass < 2; ++pass) {
            for (uint256 i; i < d.length; ++i) {
                bytes[] memory calls = new bytes[](ids.length);
                for (uint256 j; j < ids.length; ++j) {
                    calls[j] = pass == 0
                        ? abi.encodeCall(IJobMarket.commitResult, (ids[j], _commitmentFor(ids[j], d[i], GOOD)))
                        : abi.encodeCall(IJobMarket.revealResult, (ids[j], _sealed(ids[j], GOOD), _salt(d[i])));
                }
                vm.recordLogs();
                vm.prank(d[i]);
                market.batch(calls);
                (uint256[] memory failed,) = _failures();
                assertEq(failed.length, 0, "no call failed");
            }
        }
        for (uint256 j; j < ids.length; ++j) {
            _assertState(ids[j], IJobMarket.JobState.Verified);
        }
        address[] memory all = new address[](ops.length + 1);
        for (uint256 i; i < ops.length; ++i) {
            all[i] = ops[i];
        }
        all[ops.length] = creator;
        _assertConservation(ids, all);
    }

    /// @dev The multicall hole: value sent once, counted by every call. `batch` is not payable,
    /// and inside it `msg.value` is 0, so a batch of `postJob`s funds nothing.
    function test_Attack_BatchCannotSpendItsValueTwice() public {
        IJobMarket.JobParams memory p = _params(3, 2, 3);
        uint256 escrow = uint256(p.concurrency) * p.maxPrice;
        bytes[] memory calls = new bytes[](2);
        calls[0] = abi.encodeCall(IJobMarket.postJob, (p));
        calls[1] = calls[0];
        vm.deal(attacker, escrow);
        vm.prank(attacker);
        (bool ok,) = address(market).call{value: escrow}(abi.encodeCall(IJobMarket.batch, (calls)));
        assertFalse(ok, "a batch with value reverts");
        vm.recordLogs();
        vm.prank(attacker);
        market.batch(calls);
        (uint256[] memory failed, bytes[] memory reason) = _failures();
        assertEq(failed.length, 2, "both posts failed");
        for (uint256 i; i < 2; ++i) {
            assertEq(
                keccak256(reason[i]),
                keccak256(abi.encodeWithSelector(IJobMarket.JobMarket__WrongEscrow.selector, 0, escrow)),
                "postJob saw no value"
            );
        }
        assertEq(address(market).balance, 0, "the market holds nothing");
        assertEq(attacker.balance, escrow, "the attacker kept its money");
    }

    /// @dev A batch acts only as its sender: an outsider cannot commit for a selected operator,
    /// and claiming twice in one batch pays once.
    function test_Attack_BatchActsOnlyAsItsSender() public {
        uint256[] memory ids = _jobs(1);
        uint256 id = ids[0];
        _bids(id, 0, 3, PRICE);
        _close(id);
        address[] memory d = _dealOps(id);
        bytes[] memory calls = new bytes[](1);
        calls[0] = abi.encodeCall(IJobMarket.commitResult, (id, _commitmentFor(id, d[0], BAD)));
        vm.recordLogs();
        vm.prank(attacker);
        market.batch(calls);
        (uint256[] memory failed, bytes[] memory reason) = _failures();
        assertEq(failed.length, 1, "the outsider's commit failed");
        assertEq(
            keccak256(reason[0]),
            keccak256(abi.encodeWithSelector(IJobMarket.JobMarket__NotOnJob.selector, id, attacker)),
            "as the outsider's own"
        );

        _commitReveal(id, _results(GOOD, GOOD, GOOD));
        _assertState(id, IJobMarket.JobState.Verified);
        uint256 owed = market.withdrawable(d[0]);
        assertGe(owed, 1, "the deal is owed its payment");
        uint256 before = d[0].balance;
        calls = new bytes[](2);
        calls[0] = abi.encodeCall(IJobMarket.claim, ());
        calls[1] = calls[0];
        vm.recordLogs();
        vm.prank(d[0]);
        market.batch(calls);
        (failed, reason) = _failures();
        assertEq(failed.length, 1, "the second claim failed");
        assertEq(
            keccak256(reason[0]),
            keccak256(abi.encodeWithSelector(IJobMarket.JobMarket__NothingToClaim.selector, d[0])),
            "nothing left to claim"
        );
        assertEq(d[0].balance - before, owed, "paid once");
    }
}
