// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {Vm} from "../test/utils/Vm.sol";
import {OperatorRegistry} from "../src/OperatorRegistry.sol";
import {JobMarket} from "../src/JobMarket.sol";
import {ShardMarket} from "../src/ShardMarket.sol";
import {PipelineMarket} from "../src/PipelineMarket.sol";
import {IJobMarket} from "../src/interfaces/IJobMarket.sol";
import {IOperatorRegistry} from "../src/interfaces/IOperatorRegistry.sol";

/// @notice Deploys Shoal's contracts to any JSON-RPC endpoint and writes a deployment file.
///
///   cd contracts && ../node_modules/.bin/forge script script/Deploy.s.sol \
///       --rpc-url http://127.0.0.1:8545 --private-key $KEY --broadcast \
///       --offline --use $PWD/solc-wrapper.cjs
///
/// Order (reproducible from contracts/artifacts alone, see docs/protocol.md):
///   1. OperatorRegistry(unbondingPeriod, minStake)
///   2. JobMarket(registry, mediatorCount, challengeBond, minBidWindow, minExecWindow,
///                minRevealWindow, maxCollateralFactor, challengeBondPercent, drawDelay)
///   3. registry.setMarket(market)   (once, by the registry's deployer)
///   4. ShardMarket(registry, minBidWindow, minExecWindow, minRevealWindow, drawDelay,
///                  maxCollateralFactor)   (its constructor deploys its ShardSettlement)
///   5. registry.setShardMarket(shardMarket)   (once, by the registry's deployer)
///   6. PipelineMarket(market, shardMarket)
///
/// Environment (all optional): SHOAL_UNBONDING_PERIOD (seconds, default 604800),
/// SHOAL_MIN_STAKE (wei, default 1 ether), SHOAL_MEDIATOR_COUNT (default 3),
/// SHOAL_CHALLENGE_BOND (wei, default 0.1 ether), SHOAL_MIN_BID_WINDOW (seconds, default 1),
/// SHOAL_MIN_EXEC_WINDOW (seconds, default 2), SHOAL_MIN_REVEAL_WINDOW (seconds, default 2),
/// SHOAL_MAX_COLLATERAL_FACTOR (collateral <= factor x maxPrice, default 20),
/// SHOAL_CHALLENGE_BOND_PERCENT (a challenge bond is max(challengeBond, escrow x percent / 100),
/// default 100), SHOAL_DRAW_DELAY (blocks between arming a random draw and the block whose hash
/// seeds it, default 0: the arming block's own hash; 2 recommended on a 12 s-block chain),
/// SHOAL_DEPLOYMENT_FILE (default deployments/<chainId>.json, relative to contracts/).
/// The window defaults suit fast local devchains; on a 12 s-block chain use at least
/// SHOAL_MIN_BID_WINDOW=120 SHOAL_MIN_EXEC_WINDOW=300 SHOAL_MIN_REVEAL_WINDOW=300 (10, 25 and 25
/// blocks: time for a commit or reveal to be included under congestion).
contract Deploy {
    Vm internal constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));
    bool public IS_SCRIPT = true;

    struct Safety {
        uint32 minBidWindow;
        uint32 minExecWindow;
        uint32 minRevealWindow;
        uint16 maxCollateralFactor;
        uint16 challengeBondPercent;
        uint32 drawDelay;
    }

    function _safetyJson(Safety memory s) internal pure returns (string memory) {
        return string.concat(
            '  "minBidWindow": ',
            vm.toString(uint256(s.minBidWindow)),
            ",\n",
            '  "minExecWindow": ',
            vm.toString(uint256(s.minExecWindow)),
            ",\n",
            '  "minRevealWindow": ',
            vm.toString(uint256(s.minRevealWindow)),
            ",\n",
            '  "maxCollateralFactor": ',
            vm.toString(uint256(s.maxCollateralFactor)),
            ",\n",
            '  "challengeBondPercent": ',
            vm.toString(uint256(s.challengeBondPercent)),
            ",\n",
            '  "drawDelay": ',
            vm.toString(uint256(s.drawDelay)),
            "\n"
        );
    }

    function run()
        external
        returns (OperatorRegistry registry, JobMarket market, ShardMarket shardMarket, PipelineMarket pipelineMarket)
    {
        uint64 unbonding = uint64(vm.envOr("SHOAL_UNBONDING_PERIOD", uint256(7 days)));
        uint96 minStake = uint96(vm.envOr("SHOAL_MIN_STAKE", uint256(1 ether)));
        uint8 mediators = uint8(vm.envOr("SHOAL_MEDIATOR_COUNT", uint256(3)));
        uint96 bond = uint96(vm.envOr("SHOAL_CHALLENGE_BOND", uint256(0.1 ether)));
        Safety memory safety = Safety({
            minBidWindow: uint32(vm.envOr("SHOAL_MIN_BID_WINDOW", uint256(1))),
            minExecWindow: uint32(vm.envOr("SHOAL_MIN_EXEC_WINDOW", uint256(2))),
            minRevealWindow: uint32(vm.envOr("SHOAL_MIN_REVEAL_WINDOW", uint256(2))),
            maxCollateralFactor: uint16(vm.envOr("SHOAL_MAX_COLLATERAL_FACTOR", uint256(20))),
            challengeBondPercent: uint16(vm.envOr("SHOAL_CHALLENGE_BOND_PERCENT", uint256(100))),
            drawDelay: uint32(vm.envOr("SHOAL_DRAW_DELAY", uint256(0)))
        });
        string memory file =
            vm.envOr("SHOAL_DEPLOYMENT_FILE", string.concat("deployments/", vm.toString(block.chainid), ".json"));
        uint256 startBlock = block.number;

        vm.startBroadcast();
        registry = new OperatorRegistry(unbonding, minStake);
        market = new JobMarket(
            IOperatorRegistry(address(registry)),
            mediators,
            bond,
            safety.minBidWindow,
            safety.minExecWindow,
            safety.minRevealWindow,
            safety.maxCollateralFactor,
            safety.challengeBondPercent,
            safety.drawDelay
        );
        registry.setMarket(address(market));
        // the sharded-job market shares the windows, the collateral factor and the draw delay
        shardMarket = new ShardMarket(
            IOperatorRegistry(address(registry)),
            safety.minBidWindow,
            safety.minExecWindow,
            safety.minRevealWindow,
            safety.drawDelay,
            safety.maxCollateralFactor
        );
        registry.setShardMarket(address(shardMarket));
        pipelineMarket = new PipelineMarket(IJobMarket(address(market)), address(shardMarket));
        vm.stopBroadcast();

        string memory json = string.concat(
            "{\n",
            '  "chainId": ',
            vm.toString(block.chainid),
            ",\n",
            '  "operatorRegistry": "',
            vm.toString(address(registry)),
            '",\n',
            '  "jobMarket": "',
            vm.toString(address(market)),
            '",\n',
            '  "shardMarket": "',
            vm.toString(address(shardMarket)),
            '",\n',
            '  "pipelineMarket": "',
            vm.toString(address(pipelineMarket)),
            '",\n',
            '  "deployBlock": ',
            vm.toString(startBlock),
            ",\n",
            '  "unbondingPeriod": ',
            vm.toString(uint256(unbonding)),
            ",\n",
            '  "minStake": "',
            vm.toString(uint256(minStake)),
            '",\n',
            '  "mediatorCount": ',
            vm.toString(uint256(mediators)),
            ",\n",
            '  "challengeBond": "',
            vm.toString(uint256(bond)),
            '",\n',
            _safetyJson(safety),
            "}\n"
        );
        vm.writeFile(file, json);
    }
}
