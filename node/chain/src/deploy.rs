//! Deploying the contracts from their artifacts, and the deployment file.

use std::path::Path;

use alloy::network::TransactionBuilder;
use alloy::primitives::{Address, U256};
use alloy::rpc::types::TransactionRequest;
use alloy::sol_types::SolConstructor;

use crate::bindings::{JobMarket, OperatorRegistry, PipelineMarket, ShardMarket};
use crate::client::{ChainClient, to_u96};
use crate::error::{Error, Result};

/// Where Shoal's contracts live on one chain. Same JSON shape as
/// `contracts/deployments/<chainId>.json` written by `script/Deploy.s.sol`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Deployment {
    /// The chain id the contracts are deployed on.
    pub chain_id: u64,
    /// The `OperatorRegistry` contract.
    #[serde(serialize_with = "checksummed")]
    pub operator_registry: Address,
    /// The `JobMarket` contract.
    #[serde(serialize_with = "checksummed")]
    pub job_market: Address,
    /// The `ShardMarket` contract (sharded jobs), when deployed.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "checksummed_opt"
    )]
    pub shard_market: Option<Address>,
    /// The `PipelineMarket` contract (pipelines), when deployed.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "checksummed_opt"
    )]
    pub pipeline_market: Option<Address>,
    /// A block at or before the deployment: where to start reading events.
    pub deploy_block: u64,
    /// Constructor parameters, when known.
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    pub params: Option<DeployParams>,
}

/// Constructor parameters of the two contracts.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeployParams {
    /// Seconds between a withdrawal request and the withdrawal.
    pub unbonding_period: u64,
    /// Minimum stake to register, in wei.
    #[serde(with = "decimal")]
    pub min_stake: U256,
    /// Mediators drawn per dispute (1..=16).
    pub mediator_count: u8,
    /// Bond to challenge an optimistic job, in wei.
    #[serde(with = "decimal")]
    pub challenge_bond: U256,
    /// Shortest bid window a job may post, seconds.
    #[serde(default = "defaults::min_bid_window")]
    pub min_bid_window: u32,
    /// Shortest exec window a job may post, seconds (a commit must land in it).
    #[serde(default = "defaults::min_exec_window")]
    pub min_exec_window: u32,
    /// Shortest reveal window a job may post, seconds.
    #[serde(default = "defaults::min_reveal_window")]
    pub min_reveal_window: u32,
    /// Largest collateral a job may ask, as a multiple of its max price.
    #[serde(default = "defaults::max_collateral_factor")]
    pub max_collateral_factor: u16,
    /// A challenge's bond as a percentage of the job's escrow (at least `challenge_bond`).
    #[serde(default = "defaults::challenge_bond_percent")]
    pub challenge_bond_percent: u16,
    /// Blocks between arming a draw (bid selection, mediators) and the block whose hash seeds
    /// it; 0 uses the arming block's own hash (2 recommended on a chain with 12 s blocks).
    #[serde(default)]
    pub draw_delay: u32,
}

/// The devchain defaults of `script/Deploy.s.sol` for the safety parameters (docs/protocol.md
/// recommends 120 s / 300 s / 300 s on a chain with 12 s blocks).
mod defaults {
    pub fn min_bid_window() -> u32 {
        1
    }
    pub fn min_exec_window() -> u32 {
        2
    }
    pub fn min_reveal_window() -> u32 {
        2
    }
    pub fn max_collateral_factor() -> u16 {
        20
    }
    pub fn challenge_bond_percent() -> u16 {
        100
    }
}

impl Default for DeployParams {
    /// The defaults of `script/Deploy.s.sol`: 7 days, 1 ETH, 3 mediators, 0.1 ETH.
    fn default() -> Self {
        let eth = U256::from(10u64).pow(U256::from(18));
        Self {
            unbonding_period: 7 * 24 * 3600,
            min_stake: eth,
            mediator_count: 3,
            challenge_bond: eth / U256::from(10),
            min_bid_window: defaults::min_bid_window(),
            min_exec_window: defaults::min_exec_window(),
            min_reveal_window: defaults::min_reveal_window(),
            max_collateral_factor: defaults::max_collateral_factor(),
            challenge_bond_percent: defaults::challenge_bond_percent(),
            draw_delay: 0,
        }
    }
}

/// Addresses in EIP-55 mixed case, as Foundry writes them.
fn checksummed<S: serde::Serializer>(a: &Address, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&a.to_checksum(None))
}

fn checksummed_opt<S: serde::Serializer>(a: &Option<Address>, s: S) -> Result<S::Ok, S::Error> {
    match a {
        Some(a) => checksummed(a, s),
        None => s.serialize_none(),
    }
}

mod decimal {
    use alloy::primitives::U256;

    pub fn serialize<S: serde::Serializer>(v: &U256, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(v)
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<U256, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Num {
            Text(String),
            Int(u64),
        }
        match <Num as serde::Deserialize>::deserialize(d)? {
            Num::Int(n) => Ok(U256::from(n)),
            Num::Text(t) => t.parse::<U256>().map_err(serde::de::Error::custom),
        }
    }
}

impl Deployment {
    /// Reads a deployment file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::File {
            path: path.to_path_buf(),
            reason: format!("cannot read the deployment file: {e}; deploy the contracts first"),
        })?;
        serde_json::from_str(&text).map_err(|e| Error::File {
            path: path.to_path_buf(),
            reason: format!("not a deployment file: {e}"),
        })
    }

    /// Writes a deployment file atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_vec_pretty(self).map_err(|e| Error::File {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        crate::cursor::write_atomically(path, &json)
    }
}

/// Deploys `OperatorRegistry`, then `JobMarket`, then calls `registry.setMarket(market)` from
/// the client's key, with the bytecode of `contracts/artifacts`.
pub async fn deploy(client: &ChainClient, params: DeployParams) -> Result<Deployment> {
    let deploy_block = client.block_number().await?;
    let registry_args = OperatorRegistry::constructorCall {
        unbondingPeriod_: params.unbonding_period,
        minStake_: to_u96("min stake", params.min_stake)?,
    };
    let registry = create(
        client,
        &OperatorRegistry::BYTECODE,
        &registry_args.abi_encode(),
        "OperatorRegistry",
    )
    .await?;
    let market_args = JobMarket::constructorCall {
        registry_: registry,
        mediatorCount_: params.mediator_count,
        challengeBond_: to_u96("challenge bond", params.challenge_bond)?,
        minBidWindow_: params.min_bid_window,
        minExecWindow_: params.min_exec_window,
        minRevealWindow_: params.min_reveal_window,
        maxCollateralFactor_: params.max_collateral_factor,
        challengeBondPercent_: params.challenge_bond_percent,
        drawDelay_: params.draw_delay,
    };
    let market = create(
        client,
        &JobMarket::BYTECODE,
        &market_args.abi_encode(),
        "JobMarket",
    )
    .await?;
    let shard_args = ShardMarket::constructorCall {
        registry_: registry,
        minBidWindow_: params.min_bid_window,
        minExecWindow_: params.min_exec_window,
        minRevealWindow_: params.min_reveal_window,
        drawDelay_: params.draw_delay,
        maxCollateralFactor_: params.max_collateral_factor,
    };
    let shard_market = create(
        client,
        &ShardMarket::BYTECODE,
        &shard_args.abi_encode(),
        "ShardMarket",
    )
    .await?;
    let pipeline_args = PipelineMarket::constructorCall {
        jobMarket_: market,
        shardMarket_: shard_market,
    };
    let pipeline_market = create(
        client,
        &PipelineMarket::BYTECODE,
        &pipeline_args.abi_encode(),
        "PipelineMarket",
    )
    .await?;
    let deployment = Deployment {
        chain_id: client.chain_id(),
        operator_registry: registry,
        job_market: market,
        shard_market: Some(shard_market),
        pipeline_market: Some(pipeline_market),
        deploy_block,
        params: Some(params),
    };
    let deployed = client.with_deployment(deployment.clone())?;
    deployed.set_market(market).await?;
    deployed.set_shard_market(shard_market).await?;
    Ok(deployment)
}

async fn create(
    client: &ChainClient,
    code: &[u8],
    args: &[u8],
    name: &'static str,
) -> Result<Address> {
    let mut input = Vec::with_capacity(code.len() + args.len());
    input.extend_from_slice(code);
    input.extend_from_slice(args);
    let tx = TransactionRequest::default().with_deploy_code(input);
    let receipt = client.send(tx).await?;
    receipt.contract_address.ok_or(Error::MissingEvent {
        tx_hash: receipt.transaction_hash,
        event: "contract address",
        contract: name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The exact shape `script/Deploy.s.sol` writes.
    const FORGE_FILE: &str = r#"{
  "chainId": 31337,
  "operatorRegistry": "0x5FbDB2315678afecb367f032d93F642f64180aa3",
  "jobMarket": "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512",
  "shardMarket": "0x9fE46736679d2D9a65F0992F2272dE9f3c7fa6e0",
  "deployBlock": 0,
  "unbondingPeriod": 604800,
  "minStake": "1000000000000000000",
  "mediatorCount": 3,
  "challengeBond": "100000000000000000",
  "minBidWindow": 1,
  "minExecWindow": 2,
  "minRevealWindow": 2,
  "maxCollateralFactor": 20,
  "challengeBondPercent": 100,
  "drawDelay": 0
}
"#;

    #[test]
    fn reads_and_writes_the_forge_deployment_file() -> anyhow::Result<()> {
        let d: Deployment = serde_json::from_str(FORGE_FILE)?;
        assert_eq!(d.chain_id, 31337);
        assert_eq!(d.deploy_block, 0);
        assert_eq!(d.params, Some(DeployParams::default()));
        let back: serde_json::Value = serde_json::to_value(&d)?;
        assert_eq!(back, serde_json::from_str::<serde_json::Value>(FORGE_FILE)?);

        // Addresses and the deploy block alone are enough.
        let minimal = r#"{"chainId":1,"operatorRegistry":"0x5FbDB2315678afecb367f032d93F642f64180aa3","jobMarket":"0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512","deployBlock":7}"#;
        let d: Deployment = serde_json::from_str(minimal)?;
        assert_eq!(d.params, None);

        let dir = tempfile::tempdir()?;
        let path = dir.path().join("31337.json");
        d.save(&path)?;
        assert_eq!(Deployment::load(&path)?, d);
        let missing = Deployment::load(&dir.path().join("nope.json"))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(missing.contains("deploy the contracts first"), "{missing}");
        Ok(())
    }
}
