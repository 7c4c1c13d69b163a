#![doc = include_str!("../README.md")]

mod fault;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use alloy::primitives::{Address, Bytes, U256};
use alloy::signers::local::PrivateKeySigner;
pub use fault::{Fault, FaultyExecutor, start_node};
use shoal_chain::{Capabilities, ChainClient, DeployParams};
use shoal_devchain::{DevAccount, DevChain, ServerHandle};
use shoal_node::{DeploymentConfig, NodeConfig, NodeHandle};

/// What can go wrong bringing up a devstack.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A setup step failed; the message says which.
    #[error("devstack: {0}")]
    Setup(String),
    /// A node failed to start.
    #[error(transparent)]
    Node(#[from] shoal_node::Error),
    /// A benchmark's command line is malformed.
    #[error("{0}")]
    Usage(String),
    /// A file could not be written.
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

/// The devstack's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The command line of a benchmark run on a devstack: its `--name value` pairs, in order.
pub fn flags() -> Result<Vec<(String, String)>> {
    let mut it = std::env::args().skip(1);
    let mut out = Vec::new();
    while let Some(name) = it.next() {
        let value = it
            .next()
            .ok_or_else(|| Error::Usage(format!("{name} needs a value")))?;
        out.push((name, value));
    }
    Ok(out)
}

/// One wei-denominated ether.
pub const ETHER: u128 = 1_000_000_000_000_000_000;

/// A change to node `i`'s config before it starts.
pub type Customize = std::sync::Arc<dyn Fn(usize, &mut NodeConfig) + Send + Sync>;

/// What to start.
#[derive(Clone)]
pub struct DevstackConfig {
    /// Operator nodes.
    pub nodes: usize,
    /// How many of them (the last ones) return wrong results.
    pub bad_nodes: usize,
    /// Use this chain instead of starting the embedded devchain (its dev accounts must be anvil's).
    pub chain_rpc: Option<String>,
    /// Each node gets `<base_dir>/node-<i>`; the deployment is written to `<base_dir>/deployment.json`.
    pub base_dir: PathBuf,
    /// How often nodes poll the chain.
    pub poll_interval: Duration,
    /// Stake each operator bonds, in wei.
    pub stake: u128,
    /// Mediators drawn per dispute.
    pub mediators: u8,
    /// Offer the Docker executor too.
    pub docker: bool,
    /// Run the libp2p swarm on each node (TCP and QUIC on loopback).
    pub p2p: bool,
    /// Called for each node's config before it starts (index from 0).
    pub customize: Option<Customize>,
    /// Faults injected into nodes, by index (the last `bad_nodes` get [`Fault::WrongResult`]
    /// unless listed here).
    pub faults: BTreeMap<usize, Fault>,
    /// Nodes (indices from 0) that are registered and configured but not started here: their
    /// config is written to `<base_dir>/node-<i>/node.toml` for another process to run (the
    /// way `shoal serve --config` does). [`Devstack::nodes`] holds the others, in index order.
    pub external: Vec<usize>,
}

impl std::fmt::Debug for DevstackConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevstackConfig")
            .field("nodes", &self.nodes)
            .field("bad_nodes", &self.bad_nodes)
            .field("chain_rpc", &self.chain_rpc)
            .field("base_dir", &self.base_dir)
            .field("faults", &self.faults)
            .field("external", &self.external)
            .finish()
    }
}

impl Default for DevstackConfig {
    fn default() -> Self {
        Self {
            nodes: 3,
            bad_nodes: 0,
            chain_rpc: None,
            base_dir: PathBuf::from("shoal-devstack"),
            poll_interval: Duration::from_millis(100),
            stake: 10 * ETHER,
            mediators: 1,
            docker: false,
            p2p: true,
            customize: None,
            faults: BTreeMap::new(),
            external: Vec::new(),
        }
    }
}

/// A devstack node that runs outside the devstack's process (see [`DevstackConfig::external`]).
#[derive(Debug, Clone)]
pub struct ExternalNode {
    /// The node's index in the devstack.
    pub index: usize,
    /// `<base_dir>/node-<i>/node.toml`: the config to start it with.
    pub config_file: PathBuf,
    /// The same config (its `data_dir` absolute).
    pub config: NodeConfig,
    /// The fault its process is to run with (`shoal-e2e-node --fault`).
    pub fault: Option<Fault>,
}

impl ExternalNode {
    /// The API URL the node will serve at.
    pub fn api_url(&self) -> String {
        format!("http://{}", self.config.api.listen)
    }
}

/// A running devstack.
pub struct Devstack {
    pub rpc_url: String,
    pub chain_id: u64,
    pub deployment: DeploymentConfig,
    /// The in-process nodes in index order ([`DevstackConfig::external`] ones left out).
    pub nodes: Vec<NodeHandle>,
    /// Their configs, in the same order.
    pub configs: Vec<NodeConfig>,
    /// Their injected faults, in the same order.
    pub faults: Vec<Option<Fault>>,
    /// A funded key for posting jobs (hex), and its address.
    pub creator_key: String,
    pub creator: Address,
    /// The embedded devchain, when one was started.
    pub devchain: Option<DevChain>,
    server: Option<ServerHandle>,
    external: Vec<ExternalNode>,
}

impl std::fmt::Debug for Devstack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Devstack")
            .field("rpc_url", &self.rpc_url)
            .field("nodes", &self.api_urls())
            .finish()
    }
}

fn free_udp_port() -> Result<u16> {
    let s = std::net::UdpSocket::bind("127.0.0.1:0")
        .map_err(|e| Error::Setup(format!("no free UDP port: {e}")))?;
    s.local_addr()
        .map(|a| a.port())
        .map_err(|e| Error::Setup(e.to_string()))
}

fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| Error::Setup(format!("no free port: {e}")))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| Error::Setup(e.to_string()))
}

fn devstack_err(what: &str) -> impl FnOnce(shoal_chain::Error) -> Error {
    move |e| Error::Setup(format!("{what}: {e}"))
}

/// Deploys `OperatorRegistry` and `JobMarket` from the artifacts with `deployer` and links them.
pub async fn deploy(
    rpc_url: &str,
    deployer: PrivateKeySigner,
    min_stake: u128,
    unbonding: u64,
    mediators: u8,
    challenge_bond: u128,
) -> Result<DeploymentConfig> {
    let client = ChainClient::connect(rpc_url, Some(deployer))
        .await
        .map_err(devstack_err("connecting"))?;
    let params = DeployParams {
        unbonding_period: unbonding,
        min_stake: U256::from(min_stake),
        mediator_count: mediators,
        challenge_bond: U256::from(challenge_bond),
        // The devchain mines at once: the smallest safety windows of Deploy.s.sol.
        ..DeployParams::default()
    };
    let d = shoal_chain::deploy(&client, params)
        .await
        .map_err(devstack_err("deploying the contracts"))?;
    Ok(DeploymentConfig {
        chain_id: Some(d.chain_id),
        operator_registry: d.operator_registry,
        job_market: d.job_market,
        shard_market: d.shard_market,
        pipeline_market: d.pipeline_market,
        deploy_block: d.deploy_block,
    })
}

/// A client of `deployment` signing with `signer`.
async fn client(
    rpc_url: &str,
    deployment: &DeploymentConfig,
    signer: PrivateKeySigner,
) -> Result<ChainClient> {
    let client = ChainClient::connect(rpc_url, Some(signer))
        .await
        .map_err(devstack_err("connecting"))?;
    let chain_id = client.chain_id();
    client
        .with_deployment(deployment.on_chain(chain_id))
        .map_err(devstack_err("connecting"))
}

/// Registers `signer` as an operator with `stake` and the given engines bit set.
pub async fn register_operator(
    rpc_url: &str,
    deployment: &DeploymentConfig,
    signer: PrivateKeySigner,
    peer_id: &str,
    engines: u32,
    stake: u128,
) -> Result<()> {
    let caps = Capabilities {
        engines,
        cpuMillicores: 4000,
        memoryMiB: 4096,
        diskGiB: 10,
        gpus: 0,
    };
    client(rpc_url, deployment, signer)
        .await?
        .register(
            Bytes::from(peer_id.as_bytes().to_vec()),
            caps,
            U256::from(stake),
        )
        .await
        .map_err(devstack_err(&format!("registering {peer_id}")))?;
    Ok(())
}

/// Starts a devstack.
pub async fn start(cfg: DevstackConfig) -> Result<Devstack> {
    if cfg.nodes == 0 {
        return Err(Error::Setup("--nodes must be at least 1".into()));
    }
    if cfg.bad_nodes > cfg.nodes {
        return Err(Error::Setup(format!(
            "--bad-nodes {} is more than --nodes {}",
            cfg.bad_nodes, cfg.nodes
        )));
    }
    if let Some(i) = cfg.external.iter().find(|i| **i >= cfg.nodes) {
        return Err(Error::Setup(format!(
            "external node {i} is not one of the {} nodes",
            cfg.nodes
        )));
    }
    let n_accounts =
        u32::try_from(cfg.nodes + 2).map_err(|_| Error::Setup("too many nodes".into()))?;
    let accounts: Vec<DevAccount> =
        shoal_devchain::derive_dev_accounts(n_accounts).map_err(|e| Error::Setup(e.to_string()))?;
    let (rpc_url, devchain, server) = match &cfg.chain_rpc {
        Some(url) => (url.clone(), None, None),
        None => {
            let dc = DevChain::builder()
                .accounts(n_accounts)
                .build()
                .map_err(|e| Error::Setup(e.to_string()))?;
            let server = dc
                .serve(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
                .await
                .map_err(|e| Error::Setup(e.to_string()))?;
            (server.url(), Some(dc), Some(server))
        }
    };
    std::fs::create_dir_all(&cfg.base_dir).map_err(|e| Error::io("creating", &cfg.base_dir, e))?;
    let deployer = accounts[0].signer.clone();
    let deployment = deploy(
        &rpc_url,
        deployer.clone(),
        ETHER,
        7 * 24 * 3600,
        cfg.mediators,
        ETHER / 10,
    )
    .await?;
    let chain_id = deployment.chain_id.unwrap_or(0);

    // Accounts beyond the chain's prefunded ones get funds from the deployer.
    let funder = client(&rpc_url, &deployment, deployer).await?;
    let need = U256::from(cfg.stake + 10 * ETHER);
    for acct in accounts.iter().skip(1) {
        let balance = funder
            .balance(acct.address)
            .await
            .map_err(devstack_err("reading a balance"))?;
        if balance < need {
            funder
                .transfer(acct.address, need - balance)
                .await
                .map_err(devstack_err("funding an account"))?;
        }
    }

    let engines = 1 | if cfg.docker { 2 } else { 0 };
    let ports: Vec<u16> = (0..cfg.nodes).map(|_| free_port()).collect::<Result<_>>()?;
    let urls: Vec<String> = ports
        .iter()
        .map(|p| format!("http://127.0.0.1:{p}"))
        .collect();
    // Each node's libp2p identity is made here so that its peer id goes on chain and into
    // the others' bootstrap lists: node i dials every node before it.
    let mut swarm = Vec::new();
    for i in 0..cfg.nodes {
        let dir = cfg.base_dir.join(format!("node-{i}"));
        let key = shoal_p2p::load_or_create_keypair(dir.join("p2p.key"))
            .map_err(|e| Error::Setup(format!("node {i}'s p2p key: {e}")))?;
        let tcp = free_port()?;
        let quic = free_udp_port()?;
        swarm.push((key.public().to_peer_id(), tcp, quic));
    }
    let mut configs = Vec::new();
    for i in 0..cfg.nodes {
        let acct = &accounts[i + 1];
        let (peer_id, tcp, quic) = swarm[i];
        register_operator(
            &rpc_url,
            &deployment,
            acct.signer.clone(),
            &peer_id.to_string(),
            engines,
            cfg.stake,
        )
        .await?;
        let mut c = NodeConfig {
            data_dir: cfg.base_dir.join(format!("node-{i}")),
            ..NodeConfig::default()
        };
        c.p2p.enabled = cfg.p2p;
        c.p2p.listen = vec![
            format!("/ip4/127.0.0.1/tcp/{tcp}"),
            format!("/ip4/127.0.0.1/udp/{quic}/quic-v1"),
        ];
        c.p2p.bootstrap = swarm[..i]
            .iter()
            .map(|(id, tcp, _)| format!("/ip4/127.0.0.1/tcp/{tcp}/p2p/{id}"))
            .collect();
        c.chain.rpc_url = rpc_url.clone();
        c.chain.poll_interval_ms = u64::try_from(cfg.poll_interval.as_millis()).unwrap_or(100);
        c.deployment = Some(deployment);
        c.operator.private_key = Some(format!("0x{}", hex::encode(acct.private_key())));
        c.api.listen = std::net::SocketAddr::from(([127, 0, 0, 1], ports[i]));
        c.api.rate_limit_per_sec = 1000;
        c.api.rate_limit_burst = 5000;
        c.peers = urls
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, u)| u.clone())
            .collect();
        c.executor.docker = cfg.docker;
        if let Some(f) = &cfg.customize {
            f(i, &mut c);
        }
        configs.push(c);
    }
    let fault_of = |i: usize| {
        cfg.faults
            .get(&i)
            .copied()
            .or((i >= cfg.nodes - cfg.bad_nodes).then_some(Fault::WrongResult))
    };
    let mut nodes = Vec::new();
    let mut external = Vec::new();
    let mut started = Vec::new();
    let mut faults = Vec::new();
    for (i, mut c) in configs.into_iter().enumerate() {
        if !cfg.external.contains(&i) {
            nodes.push(start_node(c.clone(), fault_of(i)).await?);
            started.push(c);
            faults.push(fault_of(i));
            continue;
        }
        c.data_dir =
            std::path::absolute(&c.data_dir).map_err(|e| Error::io("resolving", &c.data_dir, e))?;
        std::fs::create_dir_all(&c.data_dir).map_err(|e| Error::io("creating", &c.data_dir, e))?;
        let config_file = c.data_dir.join("node.toml");
        std::fs::write(&config_file, c.to_toml()?)
            .map_err(|e| Error::io("writing", &config_file, e))?;
        external.push(ExternalNode {
            index: i,
            config_file,
            config: c,
            fault: fault_of(i),
        });
    }
    let configs = started;
    let creator = &accounts[cfg.nodes + 1];
    let deployment_file = cfg.base_dir.join("deployment.json");
    let doc = serde_json::json!({
        "chainId": chain_id,
        "operatorRegistry": deployment.operator_registry,
        "jobMarket": deployment.job_market,
        "shardMarket": deployment.shard_market,
        "pipelineMarket": deployment.pipeline_market,
        "deployBlock": deployment.deploy_block,
        "rpcUrl": rpc_url,
    });
    std::fs::write(
        &deployment_file,
        serde_json::to_vec_pretty(&doc).unwrap_or_default(),
    )
    .map_err(|e| Error::io("writing", &deployment_file, e))?;
    Ok(Devstack {
        rpc_url,
        chain_id,
        deployment,
        nodes,
        configs,
        faults,
        creator_key: format!("0x{}", hex::encode(creator.private_key())),
        creator: creator.address,
        devchain,
        server,
        external,
    })
}

impl Devstack {
    /// The nodes prepared but not started (see [`DevstackConfig::external`]).
    pub fn external(&self) -> &[ExternalNode] {
        &self.external
    }

    /// The config file of external node `i` (its devstack index), if `i` is external.
    pub fn external_config_file(&self, i: usize) -> Option<&Path> {
        self.external
            .iter()
            .find(|e| e.index == i)
            .map(|e| e.config_file.as_path())
    }

    /// Every in-process node's API URL.
    pub fn api_urls(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.api_url()).collect()
    }

    /// Stops node `i` as a crash would (its persisted state stays).
    pub async fn stop_node(&self, i: usize) {
        if let Some(n) = self.nodes.get(i) {
            n.shutdown().await;
        }
    }

    /// Starts node `i` again from its data dir, optionally with a changed config, with
    /// `fault` injected (`None`: a healthy node). If that fails the node is no longer in the
    /// devstack.
    pub async fn restart_node(
        &mut self,
        i: usize,
        fault: Option<Fault>,
        change: impl FnOnce(&mut NodeConfig),
    ) -> Result<()> {
        if i >= self.nodes.len() {
            return Err(Error::Setup(format!("no node {i}")));
        }
        // The old handle holds the state database open; it must be gone first.
        let old = self.nodes.remove(i);
        old.shutdown().await;
        drop(old);
        let mut c = self.configs[i].clone();
        change(&mut c);
        // The API port may take a moment to be released.
        let mut last = None;
        for _ in 0..50 {
            match start_node(c.clone(), fault).await {
                Ok(h) => {
                    self.nodes.insert(i, h);
                    self.configs[i] = c;
                    self.faults[i] = fault;
                    return Ok(());
                }
                Err(e) => {
                    last = Some(e);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        Err(last.map_or_else(|| Error::Setup("restart failed".into()), Error::Node))
    }

    /// A human summary: RPC URL, contracts, API URLs, creator key.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "chain id      {}\nrpc url       {}\nregistry      {}\njob market    {}\ndeploy block  {}\ncreator       {}\ncreator key   {}\n",
            self.chain_id,
            self.rpc_url,
            self.deployment.operator_registry,
            self.deployment.job_market,
            self.deployment.deploy_block,
            self.creator,
            self.creator_key
        );
        for ((n, c), fault) in self.nodes.iter().zip(&self.configs).zip(&self.faults) {
            let name = c
                .data_dir
                .file_name()
                .map(|f| f.to_string_lossy().replace('-', " "))
                .unwrap_or_default();
            let fault = fault.map(|f| format!(" (fault: {f})")).unwrap_or_default();
            s.push_str(&format!(
                "{name:<14}{}  operator {}{fault}\n",
                n.api_url(),
                n.operator().map(|a| a.to_string()).unwrap_or_default()
            ));
            if let (Some(peer), Some(listen)) = (n.peer_id(), c.p2p.listen.first()) {
                s.push_str(&format!("{:<14}{listen}/p2p/{peer}\n", ""));
            }
        }
        for e in &self.external {
            s.push_str(&format!(
                "node {}        {}  not started; config {}\n",
                e.index,
                e.api_url(),
                e.config_file.display()
            ));
        }
        s
    }

    /// Stops every node and the embedded chain.
    pub async fn shutdown(self) {
        for n in &self.nodes {
            n.shutdown().await;
        }
        if let Some(s) = self.server {
            s.shutdown().await;
        }
    }
}
