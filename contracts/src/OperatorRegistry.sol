// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IOperatorRegistry} from "./interfaces/IOperatorRegistry.sol";

/// @title OperatorRegistry
/// @notice Bonded native-token stake of Shoal operators. The job market locks collateral out of
/// free stake while an operator holds a deal, and unlocks or slashes it when the job settles.
/// @dev Balance invariant: `address(this).balance == sum(stake) + sum(pendingWithdrawal)`.
/// Eligibility invariant: an operator is in `_eligible` (the mediator draw pool) iff it is
/// registered and its free stake (`stake - locked`) is at least `max(minStake, 1)`. Free stake
/// changes only in register, stake, requestWithdrawal, lock and unlock (a slash lowers stake and
/// locked alike), so only those update the set, and only when the threshold is crossed.
/// `eligibleSince` is the block in which an operator last took its current index in `_eligible`
/// (joined, or was moved by a swap-and-pop): a mediator draw armed before that block skips it, so
/// joining, leaving and rejoining after a draw is armed cannot change who that draw can pick.
contract OperatorRegistry is IOperatorRegistry {
    /// @dev Hot slot: read and written by every lock, unlock and slash.
    struct Bond {
        uint96 stake;
        uint96 locked;
        uint64 unlockTime;
    }

    struct Meta {
        bool registered;
        uint96 pendingWithdrawal;
        uint32 eligibleIndex; // index in `_eligible` + 1; 0 = not eligible
        uint64 eligibleSince; // block number of the last entry into `_eligible` or move within it
    }

    uint64 public immutable unbondingPeriod;
    uint96 public immutable minStake;
    /// @dev Free stake an operator needs to be in the mediator draw pool: max(minStake, 1).
    uint96 private immutable _eligibleFree;
    address public immutable deployer;
    address public market;
    /// @dev The second market allowed to lock, unlock and slash (ShardMarket); 0 until set.
    address public shardMarket;

    mapping(address => Bond) private _bonds;
    mapping(address => Meta) private _meta;
    mapping(address => Capabilities) private _capabilities;
    mapping(address => bytes) private _peerIds;
    address[] private _operators;
    /// @dev Operators that can be drawn as mediators (see the eligibility invariant); swap-and-pop.
    address[] private _eligible;

    modifier onlyMarket() {
        if (msg.sender != market && msg.sender != shardMarket) revert OperatorRegistry__OnlyMarket(msg.sender);
        _;
    }

    constructor(uint64 unbondingPeriod_, uint96 minStake_) {
        unbondingPeriod = unbondingPeriod_;
        minStake = minStake_;
        _eligibleFree = minStake_ == 0 ? 1 : minStake_;
        deployer = msg.sender;
    }

    // ---- operators ----

    function register(bytes calldata peerId, Capabilities calldata capabilities) external payable {
        if (_meta[msg.sender].registered) revert OperatorRegistry__AlreadyRegistered(msg.sender);
        if (peerId.length == 0) revert OperatorRegistry__EmptyPeerId();
        if (msg.value < minStake || msg.value == 0) revert OperatorRegistry__StakeBelowMinimum(msg.value, minStake);
        uint96 amount = _toUint96(msg.value);
        _meta[msg.sender].registered = true;
        _peerIds[msg.sender] = peerId;
        _capabilities[msg.sender] = capabilities;
        _operators.push(msg.sender);
        _bonds[msg.sender].stake = amount;
        if (amount >= _eligibleFree) _addEligible(msg.sender);
        emit OperatorRegistered(msg.sender, peerId, capabilities);
        emit Staked(msg.sender, amount, amount);
    }

    function updateOperator(bytes calldata peerId, Capabilities calldata capabilities) external {
        if (!_meta[msg.sender].registered) revert OperatorRegistry__NotRegistered(msg.sender);
        if (peerId.length == 0) revert OperatorRegistry__EmptyPeerId();
        _peerIds[msg.sender] = peerId;
        _capabilities[msg.sender] = capabilities;
        emit OperatorUpdated(msg.sender, peerId, capabilities);
    }

    function stake() external payable {
        if (!_meta[msg.sender].registered) revert OperatorRegistry__NotRegistered(msg.sender);
        if (msg.value == 0) revert OperatorRegistry__ZeroAmount();
        Bond storage b = _bonds[msg.sender];
        (uint96 before, uint96 l) = (b.stake, b.locked);
        uint96 total = _toUint96(uint256(before) + msg.value);
        b.stake = total;
        if (before - l < _eligibleFree && total - l >= _eligibleFree) _addEligible(msg.sender);
        emit Staked(msg.sender, uint96(msg.value), total);
    }

    function requestWithdrawal(uint96 amount) external {
        if (!_meta[msg.sender].registered) revert OperatorRegistry__NotRegistered(msg.sender);
        if (amount == 0) revert OperatorRegistry__ZeroAmount();
        Bond storage b = _bonds[msg.sender];
        uint96 free = b.stake - b.locked;
        if (amount > free) revert OperatorRegistry__InsufficientFreeStake(msg.sender, free, amount);
        b.stake -= amount;
        if (free >= _eligibleFree && free - amount < _eligibleFree) _removeEligible(msg.sender);
        uint64 unlockTime = uint64(block.timestamp) + unbondingPeriod;
        b.unlockTime = unlockTime;
        Meta storage m = _meta[msg.sender];
        uint96 pending = m.pendingWithdrawal + amount;
        m.pendingWithdrawal = pending;
        emit WithdrawRequested(msg.sender, amount, pending, unlockTime);
    }

    function withdraw() external {
        Meta storage m = _meta[msg.sender];
        uint96 amount = m.pendingWithdrawal;
        if (amount == 0) revert OperatorRegistry__NoPendingWithdrawal(msg.sender);
        uint64 unlockTime = _bonds[msg.sender].unlockTime;
        if (block.timestamp < unlockTime) {
            revert OperatorRegistry__StillUnbonding(msg.sender, unlockTime, block.timestamp);
        }
        m.pendingWithdrawal = 0;
        emit Withdrawn(msg.sender, amount);
        (bool ok,) = payable(msg.sender).call{value: amount}("");
        if (!ok) revert OperatorRegistry__TransferFailed(msg.sender, amount);
    }

    // ---- market only ----

    function setMarket(address market_) external {
        if (msg.sender != deployer) revert OperatorRegistry__OnlyDeployer(msg.sender);
        if (market != address(0)) revert OperatorRegistry__MarketAlreadySet(market);
        if (market_ == address(0)) revert OperatorRegistry__ZeroAddress();
        market = market_;
        emit MarketSet(market_);
    }

    /// @dev Same rules as `setMarket`. Locks are per operator, not per job, so the two markets'
    /// job ids never meet in the registry's bookkeeping (ShardMarket sets bit 255 of the ids it
    /// passes, so that the lock, unlock and slash events stay apart too).
    function setShardMarket(address shardMarket_) external {
        if (msg.sender != deployer) revert OperatorRegistry__OnlyDeployer(msg.sender);
        if (shardMarket != address(0)) revert OperatorRegistry__MarketAlreadySet(shardMarket);
        if (shardMarket_ == address(0)) revert OperatorRegistry__ZeroAddress();
        shardMarket = shardMarket_;
        emit ShardMarketSet(shardMarket_);
    }

    function lock(address operator, uint256 jobId, uint96 amount) external onlyMarket returns (bool) {
        Bond storage b = _bonds[operator];
        (uint96 s, uint96 l) = (b.stake, b.locked);
        uint96 free = s - l;
        if (free < amount || s < minStake || s == 0) return false;
        b.locked = l + amount;
        if (free >= _eligibleFree && free - amount < _eligibleFree) _removeEligible(operator);
        emit StakeLocked(jobId, operator, amount);
        return true;
    }

    function unlock(address operator, uint256 jobId, uint96 amount) external onlyMarket {
        Bond storage b = _bonds[operator];
        uint96 l = b.locked;
        if (l < amount) revert OperatorRegistry__InsufficientLockedStake(operator, l, amount);
        b.locked = l - amount;
        uint96 free = b.stake - l;
        if (free < _eligibleFree && free + amount >= _eligibleFree) _addEligible(operator);
        emit StakeUnlocked(jobId, operator, amount);
    }

    function slash(address operator, uint256 jobId, uint96 amount) external onlyMarket {
        Bond storage b = _bonds[operator];
        uint96 l = b.locked;
        if (l < amount) revert OperatorRegistry__InsufficientLockedStake(operator, l, amount);
        b.locked = l - amount;
        b.stake -= amount;
        emit StakeSlashed(jobId, operator, amount);
        (bool ok,) = payable(msg.sender).call{value: amount}("");
        if (!ok) revert OperatorRegistry__TransferFailed(msg.sender, amount);
    }

    // ---- views ----

    function getOperator(address operator) external view returns (Operator memory op) {
        Bond memory b = _bonds[operator];
        Meta memory m = _meta[operator];
        op.registered = m.registered;
        op.peerId = _peerIds[operator];
        op.capabilities = _capabilities[operator];
        op.stake = b.stake;
        op.locked = b.locked;
        op.pendingWithdrawal = m.pendingWithdrawal;
        op.unlockTime = b.unlockTime;
    }

    function operatorStatus(address operator) external view returns (bool registered, uint96 stake_, uint96 free) {
        Bond memory b = _bonds[operator];
        return (b.stake != 0 || _meta[operator].registered, b.stake, b.stake - b.locked);
    }

    function isRegistered(address operator) external view returns (bool) {
        return _meta[operator].registered;
    }

    function freeStake(address operator) external view returns (uint96) {
        Bond memory b = _bonds[operator];
        return b.stake - b.locked;
    }

    function operatorCount() external view returns (uint256) {
        return _operators.length;
    }

    function operatorAt(uint256 index) external view returns (address) {
        return _operators[index];
    }

    function eligibleCount() external view returns (uint256) {
        return _eligible.length;
    }

    function eligibleAt(uint256 index) external view returns (address) {
        return _eligible[index];
    }

    function isEligible(address operator) external view returns (bool) {
        return _meta[operator].eligibleIndex != 0;
    }

    function eligibleSince(address operator) external view returns (uint64) {
        return _meta[operator].eligibleSince;
    }

    function eligibleEntry(uint256 index) external view returns (address operator, uint64 since) {
        operator = _eligible[index];
        since = _meta[operator].eligibleSince;
    }

    // ---- internals ----

    function _addEligible(address operator) private {
        _eligible.push(operator);
        Meta storage m = _meta[operator];
        m.eligibleIndex = uint32(_eligible.length);
        m.eligibleSince = uint64(block.number);
    }

    function _removeEligible(address operator) private {
        uint256 i = _meta[operator].eligibleIndex - 1;
        uint256 last = _eligible.length - 1;
        if (i != last) {
            address moved = _eligible[last];
            _eligible[i] = moved;
            Meta storage m = _meta[moved];
            m.eligibleIndex = uint32(i + 1);
            m.eligibleSince = uint64(block.number);
        }
        _eligible.pop();
        _meta[operator].eligibleIndex = 0;
    }

    function _toUint96(uint256 amount) private pure returns (uint96) {
        if (amount > type(uint96).max) revert OperatorRegistry__AmountTooLarge(amount);
        return uint96(amount);
    }
}
