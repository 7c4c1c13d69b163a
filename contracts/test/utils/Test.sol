// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Vm} from "./Vm.sol";

/// @notice Shoal's own minimal test base: the cheatcode handle, assertions that revert with the
/// values that differed, `bound` for fuzz inputs, a `console`-compatible log and the target
/// lists forge reads for invariant tests.
abstract contract Test {
    Vm internal constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));

    /// @dev forge's console address; calls to it are printed with -vv.
    address private constant CONSOLE = 0x000000000000000000636F6e736F6c652e6c6f67;

    bool public IS_TEST = true;

    struct FuzzSelector {
        address addr;
        bytes4[] selectors;
    }

    address[] private _targetContracts;
    FuzzSelector[] private _targetSelectors;

    // ---- invariant targets (read by forge) ----

    function targetContracts() public view returns (address[] memory) {
        return _targetContracts;
    }

    function targetSelectors() public view returns (FuzzSelector[] memory) {
        return _targetSelectors;
    }

    function targetContract(address target) internal {
        _targetContracts.push(target);
    }

    function targetSelector(FuzzSelector memory selector) internal {
        _targetSelectors.push(selector);
    }

    // ---- logging ----

    function log(string memory message, uint256 value) internal view {
        _console(abi.encodeWithSignature("log(string,uint256)", message, value));
    }

    function log(string memory message) internal view {
        _console(abi.encodeWithSignature("log(string)", message));
    }

    function _console(bytes memory payload) private view {
        address target = CONSOLE;
        assembly ("memory-safe") {
            pop(staticcall(gas(), target, add(payload, 32), mload(payload), 0, 0))
        }
    }

    // ---- assertions ----

    error AssertionFailed(string message);
    error AssertEqUint(uint256 left, uint256 right, string message);
    error AssertEqBytes32(bytes32 left, bytes32 right, string message);
    error AssertEqAddress(address left, address right, string message);
    error AssertEqBool(bool left, bool right, string message);
    error AssertLe(uint256 left, uint256 right, string message);
    error AssertGe(uint256 left, uint256 right, string message);

    function assertTrue(bool condition, string memory message) internal pure {
        if (!condition) revert AssertionFailed(message);
    }

    function assertFalse(bool condition, string memory message) internal pure {
        if (condition) revert AssertionFailed(message);
    }

    function assertEq(uint256 left, uint256 right, string memory message) internal pure {
        if (left != right) revert AssertEqUint(left, right, message);
    }

    function assertEq(bytes32 left, bytes32 right, string memory message) internal pure {
        if (left != right) revert AssertEqBytes32(left, right, message);
    }

    function assertEq(address left, address right, string memory message) internal pure {
        if (left != right) revert AssertEqAddress(left, right, message);
    }

    function assertEq(bool left, bool right, string memory message) internal pure {
        if (left != right) revert AssertEqBool(left, right, message);
    }

    function assertLe(uint256 left, uint256 right, string memory message) internal pure {
        if (left > right) revert AssertLe(left, right, message);
    }

    function assertGe(uint256 left, uint256 right, string memory message) internal pure {
        if (left < right) revert AssertGe(left, right, message);
    }

    // ---- fuzz helpers ----

    /// @dev Maps `x` into [min, max] without discarding runs.
    function bound(uint256 x, uint256 min, uint256 max) internal pure returns (uint256) {
        if (min > max) revert AssertionFailed("bound: min > max");
        uint256 size = max - min + 1;
        if (size == 0) return x; // full range
        return min + (x % size);
    }
}
