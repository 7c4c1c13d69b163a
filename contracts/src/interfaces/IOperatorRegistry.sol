// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title Shoal operator registry
/// @notice Operators register a libp2p peer id and their capabilities, bond native-token stake,
/// and withdraw it after an unbonding period. Only the markets (the job market and the shard
/// market) may lock, unlock and slash stake; locked stake can never be withdrawn.
interface IOperatorRegistry {
    /// @notice What an operator's node can run. `engines` is a bit set: bit 0 = wasm, bit 1 = docker.
    struct Capabilities {
        uint32 engines;
        uint32 cpuMillicores;
        uint32 memoryMiB;
        uint32 diskGiB;
        uint32 gpus;
    }

    /// @notice An operator as the registry knows it.
    /// @dev `stake` is the bonded amount including `locked`; free stake is `stake - locked`.
    /// `pendingWithdrawal` has left the bond and can be withdrawn from `unlockTime` on.
    struct Operator {
        bool registered;
        bytes peerId;
        Capabilities capabilities;
        uint96 stake;
        uint96 locked;
        uint96 pendingWithdrawal;
        uint64 unlockTime;
    }

    event OperatorRegistered(address indexed operator, bytes peerId, Capabilities capabilities);
    event OperatorUpdated(address indexed operator, bytes peerId, Capabilities capabilities);
    event Staked(address indexed operator, uint96 amount, uint96 totalStake);
    event WithdrawRequested(address indexed operator, uint96 amount, uint96 pendingWithdrawal, uint64 unlockTime);
    event Withdrawn(address indexed operator, uint96 amount);
    event StakeLocked(uint256 indexed jobId, address indexed operator, uint96 amount);
    event StakeUnlocked(uint256 indexed jobId, address indexed operator, uint96 amount);
    event StakeSlashed(uint256 indexed jobId, address indexed operator, uint96 amount);
    event MarketSet(address indexed market);
    event ShardMarketSet(address indexed shardMarket);

    error OperatorRegistry__AlreadyRegistered(address operator);
    error OperatorRegistry__NotRegistered(address operator);
    error OperatorRegistry__EmptyPeerId();
    error OperatorRegistry__StakeBelowMinimum(uint256 stake, uint256 minStake);
    error OperatorRegistry__ZeroAmount();
    error OperatorRegistry__AmountTooLarge(uint256 amount);
    error OperatorRegistry__InsufficientFreeStake(address operator, uint96 free, uint96 requested);
    error OperatorRegistry__InsufficientLockedStake(address operator, uint96 locked, uint96 requested);
    error OperatorRegistry__NoPendingWithdrawal(address operator);
    error OperatorRegistry__StillUnbonding(address operator, uint64 unlockTime, uint256 nowTime);
    error OperatorRegistry__OnlyMarket(address caller);
    error OperatorRegistry__OnlyDeployer(address caller);
    error OperatorRegistry__MarketAlreadySet(address market);
    error OperatorRegistry__ZeroAddress();
    error OperatorRegistry__TransferFailed(address to, uint256 amount);

    // ---- operators ----

    /// @notice Registers the caller with an initial stake of `msg.value` (at least `minStake()`).
    function register(bytes calldata peerId, Capabilities calldata capabilities) external payable;

    /// @notice Replaces the caller's peer id and capabilities.
    function updateOperator(bytes calldata peerId, Capabilities calldata capabilities) external;

    /// @notice Adds `msg.value` to the caller's stake.
    function stake() external payable;

    /// @notice Moves `amount` of free stake into a pending withdrawal; restarts the unbonding clock.
    function requestWithdrawal(uint96 amount) external;

    /// @notice Pays out the caller's pending withdrawal once its unbonding period is over.
    function withdraw() external;

    // ---- market only ----

    /// @notice Sets the only address allowed to lock, unlock and slash. Once, by the deployer.
    function setMarket(address market) external;

    /// @notice Sets the second address allowed to lock, unlock and slash (the ShardMarket). Once,
    /// by the deployer.
    function setShardMarket(address shardMarket) external;

    /// @notice Locks `amount` of `operator`'s free stake for `jobId`. Returns false (and changes
    /// nothing) when the operator is not registered or has too little free stake.
    function lock(address operator, uint256 jobId, uint96 amount) external returns (bool);

    /// @notice Releases `amount` of `operator`'s stake locked for `jobId`.
    function unlock(address operator, uint256 jobId, uint96 amount) external;

    /// @notice Removes `amount` of `operator`'s locked stake and sends it to the market.
    function slash(address operator, uint256 jobId, uint96 amount) external;

    // ---- views ----

    function getOperator(address operator) external view returns (Operator memory);

    /// @notice (registered, bonded stake, free stake) in one call, for the market's bid checks.
    function operatorStatus(address operator) external view returns (bool registered, uint96 stake, uint96 free);

    function isRegistered(address operator) external view returns (bool);

    function freeStake(address operator) external view returns (uint96);

    /// @notice Number of operators ever registered (the list never shrinks; not the draw pool).
    function operatorCount() external view returns (uint256);

    function operatorAt(uint256 index) external view returns (address);

    /// @notice Size of the mediator draw pool: registered operators with free stake (stake -
    /// locked) of at least `max(minStake, 1)`. An operator leaves it by withdrawing (or locking)
    /// its free stake below that and rejoins when it is back above; order is not stable
    /// (swap-and-pop).
    function eligibleCount() external view returns (uint256);

    function eligibleAt(uint256 index) external view returns (address);

    /// @notice Whether `operator` is in the mediator draw pool.
    function isEligible(address operator) external view returns (bool);

    /// @notice Block number in which `operator` last took its current index in the pool (joined
    /// it, or was moved there when another operator left); 0 = never eligible. A mediator draw
    /// armed in or before that block skips the operator (see `JobMarket`): entering, leaving or
    /// re-entering the pool after a draw is armed cannot change who that draw picks.
    function eligibleSince(address operator) external view returns (uint64);

    /// @notice `eligibleAt(index)` and its `eligibleSince`, in one call.
    function eligibleEntry(uint256 index) external view returns (address operator, uint64 since);

    function market() external view returns (address);

    function shardMarket() external view returns (address);

    function deployer() external view returns (address);

    function unbondingPeriod() external view returns (uint64);

    function minStake() external view returns (uint96);
}
