//! What a node says about itself, its network and its deployment.

use serde::{Deserialize, Serialize};
use shoal_chain::{Address, U256};

/// An API error body: `{"error": "...", "hint": "..."}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApiErrorBody {
    /// What was wrong.
    pub error: String,
    /// What to do.
    pub hint: Option<String>,
}

/// `{"cid": "..."}`: the answer to an upload.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CidResponse {
    /// The root CID.
    pub cid: String,
}

/// A job's execution output on the node that ran it: `GET /api/v1/jobs/{id}/logs`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Logs {
    /// The program's stdout (capped by the executor).
    pub stdout: String,
    /// The program's stderr (capped by the executor).
    pub stderr: String,
    /// The program's exit code.
    pub exit_code: Option<i32>,
}

/// `GET /api/v1/status`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeStatus {
    /// The operator address (none for a node without a key).
    pub operator: Option<Address>,
    /// The node's public API URL.
    pub api_url: String,
    /// The chain the node follows.
    pub chain_id: u64,
    /// Executors this node runs jobs with (`wasm`, `docker`).
    pub executors: Vec<String>,
    /// The last block the follower has read.
    pub synced_block: Option<u64>,
    /// The node's labels, matched against jobs' placement constraints.
    pub labels: std::collections::BTreeMap<String, String>,
}

/// `GET /healthz`: whether the node's critical tasks run and how far the follower lags.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    /// Every critical task runs and the state store answers.
    pub ok: bool,
    /// The last block the follower has read.
    pub synced_block: Option<u64>,
    /// The chain's newest block when the follower last looked.
    pub chain_head: Option<u64>,
    /// Blocks between the chain's head and the follower (confirmations included).
    pub follower_lag_blocks: Option<u64>,
    /// Seconds of chain history those blocks span (asked only when they are more than the
    /// allowed block count).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub follower_lag_secs: Option<u64>,
    /// The node's critical tasks that run.
    pub tasks: Vec<String>,
    /// Why the node is not healthy.
    pub problem: Option<String>,
}

/// A registered operator with its on-chain data: `GET /api/v1/nodes`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeView {
    /// The operator address.
    pub operator: Address,
    /// Its libp2p peer id, as registered.
    pub peer_id: String,
    /// Engines it declares (`wasm`, `docker`).
    pub engines: Vec<String>,
    /// CPU it declares.
    pub cpu_millicores: u32,
    /// Memory it declares.
    pub memory_mib: u32,
    /// Stake.
    #[serde(with = "crate::wei")]
    pub stake: U256,
    /// Stake locked as collateral.
    #[serde(with = "crate::wei")]
    pub locked: U256,
    /// Its API URL, when this node knows it.
    pub api_url: Option<String>,
}

/// A peer on the libp2p swarm.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerView {
    /// Its peer id.
    pub peer_id: String,
    /// Addresses it is known at.
    pub addrs: Vec<String>,
    /// What it says it runs.
    pub agent_version: Option<String>,
    /// Round-trip time.
    pub rtt_ms: Option<f64>,
    /// Gossipsub score (negative: misbehaving).
    pub score: Option<f64>,
    /// Subscribed to this market's job announcements.
    pub jobs_topic: bool,
}

/// `GET /api/v1/peers`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PeersView {
    /// This node's peer id.
    pub peer_id: String,
    /// Addresses it listens on.
    pub listen: Vec<String>,
    /// Connected peers.
    pub peers: Vec<PeerView>,
}

/// Where the contracts are: `GET /api/v1/deployment`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentView {
    /// The chain id.
    pub chain_id: u64,
    /// The RPC URL the node uses (deployment files may leave it out).
    #[serde(default)]
    pub rpc_url: String,
    /// The registry's address.
    pub operator_registry: Address,
    /// The market's address.
    pub job_market: Address,
    /// The sharded-job market's address, when deployed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard_market: Option<Address>,
    /// The pipeline market's address, when deployed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline_market: Option<Address>,
    /// First block with market events (deployment files may leave it out).
    #[serde(default)]
    pub deploy_block: u64,
}
