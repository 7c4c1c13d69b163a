// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Test} from "./utils/Test.sol";
import {OperatorRegistry} from "../src/OperatorRegistry.sol";
import {IOperatorRegistry} from "../src/interfaces/IOperatorRegistry.sol";

/// @dev An operator wallet that refuses payments.
contract RefusingOperator {
    function register(OperatorRegistry r) external payable {
        r.register{value: msg.value}("peer", IOperatorRegistry.Capabilities(1, 1, 1, 1, 0));
    }

    function requestWithdrawal(OperatorRegistry r, uint96 amount) external {
        r.requestWithdrawal(amount);
    }

    function withdraw(OperatorRegistry r) external {
        r.withdraw();
    }
}

/// @notice Registration, staking, unbonding and the market-only stake operations.
/// The test contract itself plays the market.
contract OperatorRegistryTest is Test {
    uint64 internal constant UNBONDING = 7 days;
    uint96 internal constant MIN_STAKE = 1 ether;
    OperatorRegistry internal registry;
    address internal op = address(0xA11CE);
    address internal other = address(0xB0B);

    receive() external payable {}

    function setUp() public {
        registry = new OperatorRegistry(UNBONDING, MIN_STAKE);
        registry.setMarket(address(this));
        vm.deal(op, 100 ether);
        vm.deal(other, 100 ether);
        vm.warp(1_700_000_000);
    }

    function _caps() internal pure returns (IOperatorRegistry.Capabilities memory) {
        return IOperatorRegistry.Capabilities({engines: 1, cpuMillicores: 2000, memoryMiB: 4096, diskGiB: 20, gpus: 0});
    }

    function _register(address who, uint256 amount) internal {
        vm.prank(who);
        registry.register{value: amount}("12D3KooWpeer", _caps());
    }

    // ---- transitions ----

    function test_RegisterStoresPeerCapabilitiesAndStake() public {
        vm.expectEmit(true, false, false, true, address(registry));
        emit IOperatorRegistry.OperatorRegistered(op, "12D3KooWpeer", _caps());
        vm.expectEmit(true, false, false, true, address(registry));
        emit IOperatorRegistry.Staked(op, 2 ether, 2 ether);
        _register(op, 2 ether);
        IOperatorRegistry.Operator memory o = registry.getOperator(op);
        assertTrue(o.registered, "registered");
        assertEq(keccak256(o.peerId), keccak256("12D3KooWpeer"), "peer id");
        assertEq(o.capabilities.memoryMiB, 4096, "capabilities");
        assertEq(o.stake, 2 ether, "stake");
        assertEq(registry.operatorCount(), 1, "listed");
        assertEq(registry.operatorAt(0), op, "listed address");
        assertTrue(registry.isRegistered(op), "isRegistered");
        (bool reg, uint96 s, uint96 free) = registry.operatorStatus(op);
        assertTrue(reg, "status registered");
        assertEq(s, 2 ether, "status stake");
        assertEq(free, 2 ether, "status free");
    }

    function test_UpdateOperator() public {
        _register(op, 2 ether);
        IOperatorRegistry.Capabilities memory c = _caps();
        c.gpus = 2;
        vm.expectEmit(true, false, false, true, address(registry));
        emit IOperatorRegistry.OperatorUpdated(op, "newpeer", c);
        vm.prank(op);
        registry.updateOperator("newpeer", c);
        assertEq(registry.getOperator(op).capabilities.gpus, 2, "updated");
    }

    function test_StakeAddsToBond() public {
        _register(op, 2 ether);
        vm.expectEmit(true, false, false, true, address(registry));
        emit IOperatorRegistry.Staked(op, 3 ether, 5 ether);
        vm.prank(op);
        registry.stake{value: 3 ether}();
        assertEq(registry.getOperator(op).stake, 5 ether, "stake added");
        assertEq(address(registry).balance, 5 ether, "held");
    }

    function test_WithdrawAfterUnbonding() public {
        _register(op, 5 ether);
        vm.expectEmit(true, false, false, true, address(registry));
        emit IOperatorRegistry.WithdrawRequested(op, 2 ether, 2 ether, uint64(block.timestamp) + UNBONDING);
        vm.prank(op);
        registry.requestWithdrawal(2 ether);
        IOperatorRegistry.Operator memory o = registry.getOperator(op);
        assertEq(o.stake, 3 ether, "left the bond");
        assertEq(o.pendingWithdrawal, 2 ether, "pending");
        assertEq(o.unlockTime, uint64(block.timestamp) + UNBONDING, "unlock time");
        vm.warp(block.timestamp + UNBONDING);
        uint256 before = op.balance;
        vm.expectEmit(true, false, false, true, address(registry));
        emit IOperatorRegistry.Withdrawn(op, 2 ether);
        vm.prank(op);
        registry.withdraw();
        assertEq(op.balance - before, 2 ether, "paid out");
        assertEq(registry.getOperator(op).pendingWithdrawal, 0, "nothing pending");
        assertEq(address(registry).balance, 3 ether, "rest still bonded");
    }

    function test_MarketLocksUnlocksAndSlashes() public {
        _register(op, 5 ether);
        vm.expectEmit(true, true, false, true, address(registry));
        emit IOperatorRegistry.StakeLocked(7, op, 2 ether);
        assertTrue(registry.lock(op, 7, 2 ether), "locked");
        assertEq(registry.freeStake(op), 3 ether, "free shrinks");
        assertFalse(registry.lock(op, 8, 4 ether), "cannot lock more than free");
        assertFalse(registry.lock(other, 8, 1), "cannot lock an unregistered operator");
        registry.unlock(op, 7, 1 ether);
        assertEq(registry.getOperator(op).locked, 1 ether, "unlocked part");
        uint256 before = address(this).balance;
        vm.expectEmit(true, true, false, true, address(registry));
        emit IOperatorRegistry.StakeSlashed(7, op, 1 ether);
        registry.slash(op, 7, 1 ether);
        assertEq(address(this).balance - before, 1 ether, "slashed stake sent to the market");
        IOperatorRegistry.Operator memory o = registry.getOperator(op);
        assertEq(o.stake, 4 ether, "stake reduced");
        assertEq(o.locked, 0, "nothing locked");
    }

    function test_LockedStakeCannotBeWithdrawn() public {
        _register(op, 5 ether);
        registry.lock(op, 1, 4 ether);
        vm.prank(op);
        vm.expectRevert(
            abi.encodeWithSelector(
                IOperatorRegistry.OperatorRegistry__InsufficientFreeStake.selector, op, uint96(1 ether), uint96(2 ether)
            )
        );
        registry.requestWithdrawal(2 ether);
    }

    function test_LockRefusedBelowMinimumStake() public {
        _register(op, 2 ether);
        vm.prank(op);
        registry.requestWithdrawal(1.5 ether);
        assertFalse(registry.lock(op, 1, 0.1 ether), "below min stake cannot take deals");
    }

    function test_EligiblePoolTracksFreeStake() public {
        address third = address(0xCA7);
        vm.deal(third, 100 ether);
        _register(op, 3 ether);
        _register(other, 3 ether);
        _register(third, 3 ether);
        assertEq(registry.eligibleCount(), 3, "all three eligible");
        // full withdrawal: swap-and-pop moves the last entry into the hole
        vm.prank(op);
        registry.requestWithdrawal(3 ether);
        assertFalse(registry.isEligible(op), "withdrawn operator leaves the pool");
        assertEq(registry.eligibleCount(), 2, "pool shrank");
        assertEq(registry.eligibleAt(0), third, "last entry moved into the hole");
        assertEq(registry.eligibleAt(1), other, "others unchanged");
        assertEq(registry.operatorCount(), 3, "registration history unchanged");
        // locking below minStake free leaves the pool, unlocking rejoins
        assertTrue(registry.lock(other, 1, 2.5 ether), "locked");
        assertFalse(registry.isEligible(other), "0.5 ether free < min stake");
        registry.unlock(other, 1, 2.5 ether);
        assertTrue(registry.isEligible(other), "back in the pool");
        // a lock that leaves minStake free keeps the operator in; a slash does not change free stake
        assertTrue(registry.lock(third, 2, 1 ether), "locked");
        assertTrue(registry.isEligible(third), "2 ether free");
        registry.slash(third, 2, 1 ether);
        assertTrue(registry.isEligible(third), "still 2 ether free");
        // restaking rejoins
        vm.prank(op);
        registry.stake{value: 1 ether}();
        assertTrue(registry.isEligible(op), "restaked operator rejoins");
        assertEq(registry.eligibleCount(), 3, "pool back to three");
        for (uint256 i; i < 3; ++i) {
            assertTrue(registry.isEligible(registry.eligibleAt(i)), "index consistent");
        }
    }

    // ---- errors ----

    function test_RevertWhen_AlreadyRegistered() public {
        _register(op, 2 ether);
        vm.prank(op);
        vm.expectRevert(abi.encodeWithSelector(IOperatorRegistry.OperatorRegistry__AlreadyRegistered.selector, op));
        registry.register{value: 2 ether}("x", _caps());
    }

    function test_RevertWhen_NotRegistered() public {
        bytes memory err = abi.encodeWithSelector(IOperatorRegistry.OperatorRegistry__NotRegistered.selector, op);
        vm.prank(op);
        vm.expectRevert(err);
        registry.stake{value: 1 ether}();
        vm.prank(op);
        vm.expectRevert(err);
        registry.updateOperator("x", _caps());
        vm.prank(op);
        vm.expectRevert(err);
        registry.requestWithdrawal(1);
    }

    function test_RevertWhen_EmptyPeerId() public {
        vm.prank(op);
        vm.expectRevert(abi.encodeWithSelector(IOperatorRegistry.OperatorRegistry__EmptyPeerId.selector));
        registry.register{value: 2 ether}("", _caps());
        _register(op, 2 ether);
        vm.prank(op);
        vm.expectRevert(abi.encodeWithSelector(IOperatorRegistry.OperatorRegistry__EmptyPeerId.selector));
        registry.updateOperator("", _caps());
    }

    function test_RevertWhen_StakeBelowMinimum() public {
        vm.prank(op);
        vm.expectRevert(
            abi.encodeWithSelector(
                IOperatorRegistry.OperatorRegistry__StakeBelowMinimum.selector, uint256(0.5 ether), uint256(MIN_STAKE)
            )
        );
        registry.register{value: 0.5 ether}("x", _caps());
    }

    function test_RevertWhen_ZeroAmount() public {
        _register(op, 2 ether);
        vm.prank(op);
        vm.expectRevert(abi.encodeWithSelector(IOperatorRegistry.OperatorRegistry__ZeroAmount.selector));
        registry.stake();
        vm.prank(op);
        vm.expectRevert(abi.encodeWithSelector(IOperatorRegistry.OperatorRegistry__ZeroAmount.selector));
        registry.requestWithdrawal(0);
    }

    function test_RevertWhen_AmountTooLarge() public {
        uint256 huge = uint256(type(uint96).max) + 1;
        vm.deal(op, huge);
        vm.prank(op);
        vm.expectRevert(abi.encodeWithSelector(IOperatorRegistry.OperatorRegistry__AmountTooLarge.selector, huge));
        registry.register{value: huge}("x", _caps());
    }

    function test_RevertWhen_InsufficientLockedStake() public {
        _register(op, 2 ether);
        registry.lock(op, 1, 1 ether);
        bytes memory err = abi.encodeWithSelector(
            IOperatorRegistry.OperatorRegistry__InsufficientLockedStake.selector, op, uint96(1 ether), uint96(2 ether)
        );
        vm.expectRevert(err);
        registry.unlock(op, 1, 2 ether);
        vm.expectRevert(err);
        registry.slash(op, 1, 2 ether);
    }

    function test_RevertWhen_NoPendingWithdrawal() public {
        _register(op, 2 ether);
        vm.prank(op);
        vm.expectRevert(abi.encodeWithSelector(IOperatorRegistry.OperatorRegistry__NoPendingWithdrawal.selector, op));
        registry.withdraw();
    }

    function test_RevertWhen_StillUnbonding() public {
        _register(op, 2 ether);
        vm.prank(op);
        registry.requestWithdrawal(1 ether);
        uint64 unlock = uint64(block.timestamp) + UNBONDING;
        vm.warp(unlock - 1);
        vm.prank(op);
        vm.expectRevert(
            abi.encodeWithSelector(
                IOperatorRegistry.OperatorRegistry__StillUnbonding.selector, op, unlock, uint256(unlock - 1)
            )
        );
        registry.withdraw();
    }

    function test_RevertWhen_OnlyMarket() public {
        _register(op, 2 ether);
        bytes memory err = abi.encodeWithSelector(IOperatorRegistry.OperatorRegistry__OnlyMarket.selector, other);
        vm.startPrank(other);
        vm.expectRevert(err);
        registry.lock(op, 1, 1);
        vm.expectRevert(err);
        registry.unlock(op, 1, 1);
        vm.expectRevert(err);
        registry.slash(op, 1, 1);
        vm.stopPrank();
    }

    function test_RevertWhen_OnlyDeployer() public {
        OperatorRegistry r = new OperatorRegistry(UNBONDING, MIN_STAKE);
        vm.prank(other);
        vm.expectRevert(abi.encodeWithSelector(IOperatorRegistry.OperatorRegistry__OnlyDeployer.selector, other));
        r.setMarket(other);
    }

    function test_RevertWhen_MarketAlreadySet() public {
        vm.expectRevert(
            abi.encodeWithSelector(IOperatorRegistry.OperatorRegistry__MarketAlreadySet.selector, address(this))
        );
        registry.setMarket(other);
    }

    function test_RevertWhen_ZeroAddress() public {
        OperatorRegistry r = new OperatorRegistry(UNBONDING, MIN_STAKE);
        vm.expectRevert(abi.encodeWithSelector(IOperatorRegistry.OperatorRegistry__ZeroAddress.selector));
        r.setMarket(address(0));
    }

    function test_RevertWhen_TransferFailed() public {
        RefusingOperator wallet = new RefusingOperator();
        vm.deal(address(wallet), 5 ether);
        wallet.register{value: 2 ether}(registry);
        wallet.requestWithdrawal(registry, 1 ether);
        vm.warp(block.timestamp + UNBONDING);
        vm.expectRevert(
            abi.encodeWithSelector(
                IOperatorRegistry.OperatorRegistry__TransferFailed.selector, address(wallet), uint256(1 ether)
            )
        );
        wallet.withdraw(registry);
    }

    // ---- fuzz ----

    /// @dev Whatever is locked can never leave through a withdrawal, and the balance always
    /// equals stake + pending withdrawals.
    function testFuzz_LockedStakeNeverWithdrawable(uint96 stakeAmount, uint96 lockAmount, uint96 withdrawAmount)
        public
    {
        stakeAmount = uint96(bound(stakeAmount, MIN_STAKE, 1_000_000 ether));
        lockAmount = uint96(bound(lockAmount, 0, stakeAmount));
        withdrawAmount = uint96(bound(withdrawAmount, 1, type(uint96).max));
        vm.deal(op, stakeAmount);
        _register(op, stakeAmount);
        assertTrue(registry.lock(op, 1, lockAmount), "lock within stake");
        vm.prank(op);
        if (withdrawAmount > stakeAmount - lockAmount) {
            vm.expectRevert(
                abi.encodeWithSelector(
                    IOperatorRegistry.OperatorRegistry__InsufficientFreeStake.selector,
                    op,
                    stakeAmount - lockAmount,
                    withdrawAmount
                )
            );
            registry.requestWithdrawal(withdrawAmount);
        } else {
            registry.requestWithdrawal(withdrawAmount);
        }
        IOperatorRegistry.Operator memory o = registry.getOperator(op);
        assertGe(o.stake, o.locked, "locked stake stays bonded");
        assertEq(address(registry).balance, uint256(o.stake) + o.pendingWithdrawal, "balance == bonded + pending");
    }
}
