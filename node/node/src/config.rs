//! Node configuration: a TOML file, every key optional (see docs/node.md).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use alloy::primitives::Address;
use alloy::signers::local::PrivateKeySigner;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The whole node configuration.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct NodeConfig {
    /// Where the node keeps its state database, blocks and results.
    pub data_dir: PathBuf,
    /// The chain endpoint.
    pub chain: ChainConfig,
    /// Contract addresses; or `deployment_file` pointing at a deployment JSON.
    pub deployment: Option<DeploymentConfig>,
    /// A deployment file as written by `contracts/script/Deploy.s.sol` or the devstack.
    pub deployment_file: Option<PathBuf>,
    /// The operator key that bids, commits and reveals.
    pub operator: OperatorConfig,
    /// The HTTP API.
    pub api: ApiConfig,
    /// Other nodes' API base URLs (`http://host:port`), asked for content this node lacks.
    pub peers: Vec<String>,
    /// The libp2p swarm: job announcements, Bitswap, status requests.
    pub p2p: P2pConfig,
    /// Execution settings.
    pub executor: ExecutorConfig,
    /// When to bid.
    pub bid: BidPolicy,
    /// This node's labels (`region = "eu"`), matched against jobs' placement constraints and
    /// shown by `GET /api/v1/status`.
    pub labels: std::collections::BTreeMap<String, String>,
    /// The replicated pinset (docs/pinning.md).
    pub pinning: crate::pinning::PinningConfig,
    /// Re-running other operators' optimistic jobs and challenging wrong results.
    pub watch: WatchConfig,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("shoal-data"),
            chain: ChainConfig::default(),
            deployment: None,
            deployment_file: None,
            operator: OperatorConfig::default(),
            api: ApiConfig::default(),
            peers: Vec::new(),
            p2p: P2pConfig::default(),
            executor: ExecutorConfig::default(),
            bid: BidPolicy::default(),
            labels: std::collections::BTreeMap::new(),
            pinning: crate::pinning::PinningConfig::default(),
            watch: WatchConfig::default(),
        }
    }
}

/// The watcher (docs/node.md, "Watching optimistic jobs"): while an optimistic job's challenge
/// window is open, the node re-runs a sample of the jobs it has no deal on and challenges the
/// job when a revealed result differs from its own.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct WatchConfig {
    /// Watch at all.
    pub enabled: bool,
    /// Fraction of optimistic jobs re-run, 0.0..=1.0. Which jobs is decided by a hash of the
    /// job id and this node's operator address, so each watcher samples different jobs.
    pub sample: f64,
    /// Largest challenge bond this node pays, in wei; jobs asking more are not watched.
    pub max_bond_wei: u64,
    /// Jobs whose challenge window ends in fewer seconds than this are not started: a re-run
    /// that finishes after the window cannot challenge.
    pub min_window_left_secs: u64,
}

impl Default for WatchConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            sample: 0.1,
            max_bond_wei: 1_000_000_000_000_000_000,
            min_window_left_secs: 2,
        }
    }
}

/// The libp2p swarm (docs/p2p.md).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct P2pConfig {
    /// Start the swarm. Without it the node still works, moving content over `peers`' HTTP APIs.
    pub enabled: bool,
    /// Multiaddrs to listen on (TCP and QUIC).
    pub listen: Vec<String>,
    /// Peers to dial at start and re-dial when the connection drops (`…/p2p/<peer id>`).
    pub bootstrap: Vec<String>,
    /// The node's libp2p key (created on first start); relative paths are under `data_dir`.
    pub key_file: PathBuf,
    /// A private network's pre-shared key (`swarm.key` format or 64 hex digits): only nodes
    /// with the same key can connect. Disables QUIC.
    pub psk_file: Option<PathBuf>,
    /// How long to look for content on the swarm before asking `peers` over HTTP, in seconds.
    pub fetch_timeout_secs: u64,
}

impl Default for P2pConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: vec![
                "/ip4/0.0.0.0/tcp/4001".into(),
                "/ip4/0.0.0.0/udp/4001/quic-v1".into(),
            ],
            bootstrap: Vec::new(),
            key_file: PathBuf::from("p2p.key"),
            psk_file: None,
            fetch_timeout_secs: 10,
        }
    }
}

impl P2pConfig {
    /// The listen and bootstrap addresses, parsed.
    pub fn addrs(&self) -> Result<(Vec<shoal_p2p::Multiaddr>, Vec<shoal_p2p::Multiaddr>)> {
        let parse = |key: &str, list: &[String]| {
            list.iter()
                .map(|a| {
                    a.parse().map_err(|e| {
                        Error::Config(format!("p2p.{key}: `{a}` is not a multiaddr: {e}"))
                    })
                })
                .collect::<Result<Vec<_>>>()
        };
        Ok((
            parse("listen", &self.listen)?,
            parse("bootstrap", &self.bootstrap)?,
        ))
    }
}

/// Default `chain.max_batch`: a batch of 32 typical calls stays far below a block's gas.
pub const DEFAULT_MAX_BATCH: usize = 32;

/// The chain endpoint and how it is followed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ChainConfig {
    /// JSON-RPC URL.
    pub rpc_url: String,
    /// How often the node asks for new blocks, in milliseconds.
    pub poll_interval_ms: u64,
    /// Blocks to stay behind the head (reorg safety); 0 on dev chains.
    pub confirmations: u64,
    /// Most market calls (bids, commits, reveals, keeper calls of any jobs) the node sends in
    /// one `batch` transaction when they queue up behind one in flight; 1 sends each alone.
    pub max_batch: usize,
}

impl Default for ChainConfig {
    fn default() -> Self {
        Self {
            rpc_url: "http://127.0.0.1:8545".into(),
            poll_interval_ms: 500,
            confirmations: 0,
            max_batch: DEFAULT_MAX_BATCH,
        }
    }
}

impl ChainConfig {
    /// The poll interval as a duration (at least 10 ms).
    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.poll_interval_ms.max(10))
    }
}

/// Where the contracts are.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeploymentConfig {
    /// Chain id the deployment is on (checked against the endpoint when set).
    #[serde(default)]
    pub chain_id: Option<u64>,
    /// `OperatorRegistry` address.
    pub operator_registry: Address,
    /// `JobMarket` address.
    pub job_market: Address,
    /// `ShardMarket` address (sharded jobs), when deployed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard_market: Option<Address>,
    /// `PipelineMarket` address (pipelines), when deployed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline_market: Option<Address>,
    /// First block to read events from.
    #[serde(default)]
    pub deploy_block: u64,
}

impl DeploymentConfig {
    /// The deployment as `shoal-chain` takes it, on the chain with `chain_id`.
    pub fn on_chain(&self, chain_id: u64) -> shoal_chain::Deployment {
        shoal_chain::Deployment {
            chain_id,
            operator_registry: self.operator_registry,
            job_market: self.job_market,
            shard_market: self.shard_market,
            pipeline_market: self.pipeline_market,
            deploy_block: self.deploy_block,
            params: None,
        }
    }

    /// Reads a deployment JSON file (`chainId`, `operatorRegistry`, `jobMarket`, `deployBlock`; other keys ignored).
    pub fn from_file(path: &Path) -> Result<Self> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct File {
            chain_id: Option<u64>,
            operator_registry: Address,
            job_market: Address,
            #[serde(default)]
            shard_market: Option<Address>,
            #[serde(default)]
            pipeline_market: Option<Address>,
            #[serde(default)]
            deploy_block: u64,
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::io("reading the deployment file", path, e))?;
        let f: File = serde_json::from_str(&text).map_err(|e| {
            Error::Config(format!(
                "{} is not a deployment file ({e}); it needs operatorRegistry, jobMarket and deployBlock",
                path.display()
            ))
        })?;
        Ok(Self {
            chain_id: f.chain_id,
            operator_registry: f.operator_registry,
            job_market: f.job_market,
            shard_market: f.shard_market,
            pipeline_market: f.pipeline_market,
            deploy_block: f.deploy_block,
        })
    }
}

/// The operator's chain key.
#[derive(Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct OperatorConfig {
    /// Hex private key (prefer `keystore` outside development).
    pub private_key: Option<String>,
    /// An encrypted JSON keystore file.
    pub keystore: Option<PathBuf>,
    /// Name of the environment variable holding the keystore password.
    pub password_env: Option<String>,
}

impl std::fmt::Debug for OperatorConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OperatorConfig")
            .field(
                "private_key",
                &self.private_key.as_ref().map(|_| "<redacted>"),
            )
            .field("keystore", &self.keystore)
            .field("password_env", &self.password_env)
            .finish()
    }
}

impl OperatorConfig {
    /// The signer, or `None` for a node that only follows and serves (no key configured).
    pub fn signer(&self) -> Result<Option<PrivateKeySigner>> {
        if let Some(key) = &self.private_key {
            let signer = key.trim().parse::<PrivateKeySigner>().map_err(|e| {
                Error::Config(format!(
                    "operator.private_key is not a hex secp256k1 key: {e}"
                ))
            })?;
            return Ok(Some(signer));
        }
        if let Some(path) = &self.keystore {
            let var = self
                .password_env
                .as_deref()
                .unwrap_or("SHOAL_KEYSTORE_PASSWORD");
            let password = std::env::var(var).map_err(|_| {
                Error::Config(format!(
                    "operator.keystore is set but the password variable {var} is not"
                ))
            })?;
            let signer = PrivateKeySigner::decrypt_keystore(path, password).map_err(|e| {
                Error::Config(format!(
                    "cannot decrypt keystore {}: {e}; check the password",
                    path.display()
                ))
            })?;
            return Ok(Some(signer));
        }
        Ok(None)
    }
}

/// The HTTP API.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    /// Listen address; port 0 picks a free port.
    pub listen: SocketAddr,
    /// The URL other nodes and clients reach this node at (defaults to `http://<listen>`).
    pub public_url: Option<String>,
    /// Requests per second allowed per client IP (0 disables rate limiting).
    pub rate_limit_per_sec: u32,
    /// Burst of requests allowed above the rate.
    pub rate_limit_burst: u32,
    /// Largest request body in bytes (content uploads).
    pub max_body_bytes: usize,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 7474)),
            public_url: None,
            rate_limit_per_sec: 100,
            rate_limit_burst: 400,
            max_body_bytes: 64 << 20,
        }
    }
}

/// Execution settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ExecutorConfig {
    /// Offer the WASM executor.
    pub wasm: bool,
    /// Offer the Docker executor (needs a reachable Docker engine).
    pub docker: bool,
    /// Executions running at the same time; further accepted deals wait in the queue.
    pub max_parallel: usize,
    /// Folders `file://` inputs may read from.
    pub file_allow: Vec<PathBuf>,
    /// Largest URL input download in bytes.
    pub max_download_bytes: u64,
}

impl Default for ExecutorConfig {
    fn default() -> Self {
        Self {
            wasm: true,
            docker: false,
            max_parallel: 2,
            file_allow: Vec::new(),
            max_download_bytes: 1 << 30,
        }
    }
}

/// When the node bids on a posted job.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct BidPolicy {
    /// Bid at all (false: follow and serve only).
    pub enabled: bool,
    /// Lowest price per execution this node works for, in wei.
    pub min_price: u64,
    /// Most jobs this node holds bids or deals on at once.
    pub max_concurrent_jobs: usize,
    /// Engines offered (`wasm`, `docker`); empty offers every installed executor.
    pub engines: Vec<String>,
    /// Most memory a job may ask for, in bytes.
    pub max_memory: u64,
    /// Most CPU cores a job may ask for.
    pub max_cpu: f64,
    /// An operator hook asked last: `{"bid": bool, "reason": "..."}`.
    pub hook: Option<BidHook>,
    /// Decline jobs whose `ipfs://` module or inputs are neither here nor with a peer
    /// (a swarm provider record or a `peers` node that has them).
    pub require_reachable_data: bool,
    /// Decline jobs whose exec window is shorter than this (seconds): a commit must land in
    /// it or the collateral is slashed. Raise it on chains with slow blocks.
    pub min_exec_window_secs: u64,
    /// Decline jobs whose reveal window is shorter than this (seconds).
    pub min_reveal_window_secs: u64,
    /// Decline jobs whose collateral is more than this many times their max price.
    pub max_collateral_ratio: u64,
    /// Bid only on jobs whose `ipfs://` module and inputs are already in this node's store
    /// ("data must already be here"), so jobs run where their data is.
    pub require_local_data: bool,
    /// Bid on jobs that ask for network access (Docker `network: true`).
    pub allow_network: bool,
    /// Longest `resources.timeout` a job may ask for, in seconds.
    pub max_timeout_secs: u64,
    /// Sharded jobs: declare, with the bid, the batches whose shards are all in this node's
    /// store, so the draw gives this node one slot of each (docs/sharding.md, locality).
    pub prefer_local: bool,
}

impl Default for BidPolicy {
    fn default() -> Self {
        Self {
            enabled: true,
            min_price: 0,
            max_concurrent_jobs: 16,
            engines: Vec::new(),
            max_memory: 4 << 30,
            max_cpu: 4.0,
            hook: None,
            require_reachable_data: true,
            min_exec_window_secs: 2,
            min_reveal_window_secs: 2,
            max_collateral_ratio: 10,
            require_local_data: false,
            allow_network: true,
            max_timeout_secs: 3600,
            prefer_local: true,
        }
    }
}

/// An operator's own bid check. It receives the job as JSON (on stdin or as the POST body) and
/// answers `{"bid": true|false, "reason": "..."}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum BidHook {
    /// Run a program: `argv[0]` and its arguments.
    Command(Vec<String>),
    /// POST to a URL.
    Http(String),
}

impl NodeConfig {
    /// Parses a TOML document.
    pub fn from_toml(doc: &str) -> Result<Self> {
        toml::from_str(doc).map_err(|e| Error::Config(e.to_string()))
    }

    /// Reads a TOML file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::io("reading the config file", path, e))?;
        Self::from_toml(&text).map_err(|e| Error::Config(format!("{}: {e}", path.display())))
    }

    /// The TOML form.
    pub fn to_toml(&self) -> Result<String> {
        toml::to_string_pretty(self).map_err(|e| Error::Config(e.to_string()))
    }

    /// The contract addresses from `deployment` or `deployment_file`.
    pub fn resolve_deployment(&self) -> Result<DeploymentConfig> {
        match (&self.deployment, &self.deployment_file) {
            (Some(d), _) => Ok(*d),
            (None, Some(path)) => DeploymentConfig::from_file(path),
            (None, None) => Err(Error::Config(
                "no contracts: set [deployment] (operatorRegistry, jobMarket, deployBlock) or deployment_file".into(),
            )),
        }
    }

    /// Checks values that would only fail later.
    pub fn validate(&self) -> Result<()> {
        if self.executor.max_parallel == 0 {
            return Err(Error::Config(
                "executor.max_parallel must be at least 1".into(),
            ));
        }
        for e in &self.bid.engines {
            if e != "wasm" && e != "docker" {
                return Err(Error::Config(format!(
                    "bid.engines: `{e}` is not an engine; use wasm or docker"
                )));
            }
        }
        for p in &self.peers {
            if !(p.starts_with("http://") || p.starts_with("https://")) {
                return Err(Error::Config(format!("peers: `{p}` is not an http(s) URL")));
            }
        }
        if !(0.0..=1.0).contains(&self.watch.sample) {
            return Err(Error::Config(format!(
                "watch.sample must be between 0.0 and 1.0, got {}",
                self.watch.sample
            )));
        }
        if self.p2p.enabled {
            self.p2p.addrs()?;
        }
        self.pinning.validate()?;
        self.resolve_deployment()?;
        self.operator.signer()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_round_trips_through_toml() {
        let mut c = NodeConfig {
            deployment: Some(DeploymentConfig {
                chain_id: Some(31337),
                operator_registry: Address::repeat_byte(1),
                job_market: Address::repeat_byte(2),
                shard_market: Some(Address::repeat_byte(3)),
                pipeline_market: Some(Address::repeat_byte(4)),
                deploy_block: 7,
            }),
            ..NodeConfig::default()
        };
        c.bid.hook = Some(BidHook::Command(vec!["/bin/true".into()]));
        let text = c.to_toml().expect("toml");
        assert_eq!(NodeConfig::from_toml(&text).expect("parse"), c);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_rejected() {
        assert!(NodeConfig::from_toml("dta_dir = \"x\"").is_err());
        let mut c = NodeConfig::from_toml("[bid]\nengines = [\"cobol\"]").expect("parses");
        c.deployment_file = Some("/nonexistent/deployment.json".into());
        assert!(matches!(c.validate(), Err(Error::Config(_))));
        let c = NodeConfig::from_toml("[operator]\nprivate_key = \"0x12\"").expect("parses");
        assert!(c.operator.signer().is_err());
    }
}
