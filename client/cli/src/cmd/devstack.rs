//! `shoal devstack`: a whole local network in one process — the embedded devchain (or a
//! given RPC endpoint), the contracts, and N staked operator nodes on loopback.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use clap::Args as ClapArgs;
use shoal_devstack::{self as devstack, DevstackConfig};

#[derive(Debug, ClapArgs)]
pub struct Args {
    /// Operator nodes (6 by default: enough bids for a job with the default deal, whose
    /// `min_bids` is twice its concurrency of 3).
    #[arg(long, default_value_t = 6)]
    nodes: usize,
    /// How many of them (the last ones) return wrong results, to see slashing.
    #[arg(long, default_value_t = 0)]
    bad_nodes: usize,
    /// Use this chain (e.g. anvil) instead of the embedded devchain; its dev accounts must be anvil's.
    #[arg(long, value_name = "URL")]
    chain_rpc: Option<String>,
    /// Where nodes keep their data, and where deployment.json and devstack.env are written
    /// (default: a new temporary folder).
    #[arg(long, value_name = "DIR")]
    base_dir: Option<PathBuf>,
    /// API port of node 0 (the one `shoal` talks to by default); 0 picks a free port.
    #[arg(long, default_value_t = 7474)]
    port: u16,
    /// Offer the Docker executor (needs a reachable Docker engine).
    #[arg(long)]
    docker: bool,
    /// Mediators drawn per dispute.
    #[arg(long, default_value_t = 1)]
    mediators: u8,
    /// A node config file (TOML, as `shoal serve --config` reads) laid over every node's
    /// config: e.g. `[bid]` settings or `[executor]` limits. A `[nodes.N]` table applies to
    /// node N only (`[nodes.1.bid] enabled = false`). The devstack's own keys, ports, chain
    /// and data folders are set after it.
    #[arg(long, value_name = "FILE")]
    node_config: Option<PathBuf>,
}

/// `--node-config`: the tables laid over every node, and over node N (`[nodes.N]`).
#[derive(Debug, Clone, Default)]
struct Overlay {
    all: toml::Table,
    nodes: std::collections::BTreeMap<usize, toml::Table>,
}

impl Overlay {
    fn load(path: &std::path::Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the node config {}", path.display()))?;
        let mut all: toml::Table = text
            .parse()
            .with_context(|| format!("{} is not TOML", path.display()))?;
        let mut nodes = std::collections::BTreeMap::new();
        if let Some(v) = all.remove("nodes") {
            let toml::Value::Table(per_node) = v else {
                anyhow::bail!(
                    "{}: `nodes` must be a table of [nodes.N] tables",
                    path.display()
                );
            };
            for (k, v) in per_node {
                let i: usize = k.parse().with_context(|| {
                    format!("{}: [nodes.{k}] is not a node index", path.display())
                })?;
                let toml::Value::Table(t) = v else {
                    anyhow::bail!("{}: [nodes.{k}] must be a table", path.display());
                };
                nodes.insert(i, t);
            }
        }
        Ok(Self { all, nodes })
    }

    /// `cfg` with the overlay of node `i` laid over it.
    fn apply(
        &self,
        i: usize,
        cfg: &shoal_node::NodeConfig,
    ) -> anyhow::Result<shoal_node::NodeConfig> {
        let mut base: toml::Table = cfg.to_toml()?.parse()?;
        merge(&mut base, &self.all);
        if let Some(t) = self.nodes.get(&i) {
            merge(&mut base, t);
        }
        Ok(shoal_node::NodeConfig::from_toml(&toml::to_string(&base)?)?)
    }
}

/// Lays `over` onto `base`, table by table.
fn merge(base: &mut toml::Table, over: &toml::Table) {
    for (k, v) in over {
        match (base.get_mut(k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            _ => {
                base.insert(k.clone(), v.clone());
            }
        }
    }
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let base_dir = match args.base_dir {
        Some(d) => d,
        None => std::env::temp_dir().join(format!("shoal-devstack-{}", std::process::id())),
    };
    std::fs::create_dir_all(&base_dir)
        .with_context(|| format!("cannot create {}", base_dir.display()))?;
    let port = args.port;
    let overlay = match &args.node_config {
        Some(path) => {
            let o = Overlay::load(path)?;
            if let Some(i) = o.nodes.keys().find(|i| **i >= args.nodes) {
                anyhow::bail!(
                    "{}: [nodes.{i}] names no node; there are {} (0..{})",
                    path.display(),
                    args.nodes,
                    args.nodes
                );
            }
            for i in 0..args.nodes {
                o.apply(i, &shoal_node::NodeConfig::default())
                    .with_context(|| format!("{} for node {i}", path.display()))?;
            }
            o
        }
        None => Overlay::default(),
    };
    let old_url: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
    let customize = move |i: usize, c: &mut shoal_node::NodeConfig| {
        // Checked above against the default config: the keys and values are valid.
        match overlay.apply(i, c) {
            Ok(applied) => {
                let own = c.clone();
                *c = applied;
                // The devstack's wiring stays its own.
                c.data_dir = own.data_dir;
                c.chain = own.chain;
                c.deployment = own.deployment;
                c.operator = own.operator;
                c.api.listen = own.api.listen;
                c.peers = own.peers;
                c.p2p.listen = own.p2p.listen;
                c.p2p.bootstrap = own.p2p.bootstrap;
            }
            Err(e) => tracing::warn!(node = i, error = %e, "--node-config not applied"),
        }
        if port == 0 {
            return;
        }
        let mut old = old_url.lock().unwrap_or_else(|p| p.into_inner());
        if i == 0 {
            *old = Some(format!("http://{}", c.api.listen));
            c.api.listen = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        } else if let Some(o) = old.as_ref() {
            for p in &mut c.peers {
                if p == o {
                    *p = format!("http://127.0.0.1:{port}");
                }
            }
        }
    };
    let cfg = DevstackConfig {
        nodes: args.nodes,
        bad_nodes: args.bad_nodes,
        chain_rpc: args.chain_rpc,
        base_dir: base_dir.clone(),
        docker: args.docker,
        mediators: args.mediators,
        customize: Some(Arc::new(customize)),
        ..DevstackConfig::default()
    };
    if port != 0 && std::net::TcpListener::bind(("127.0.0.1", port)).is_err() {
        anyhow::bail!(
            "port {port} is taken (another devstack or node?); stop it or pass --port 0 for a free port"
        );
    }
    let stack = devstack::start(cfg)
        .await
        .context("the devstack did not start")?;
    let node = stack.api_urls().first().cloned().unwrap_or_default();
    let deployment = base_dir.join("deployment.json");
    let env_file = base_dir.join("devstack.env");
    let env = format!(
        "# Source this file to talk to the devstack: . {}\n\
         # The key is a well-known dev key of the devstack's funded creator account; never use it elsewhere.\n\
         export SHOAL_NODE={node}\n\
         export SHOAL_RPC_URL={}\n\
         export SHOAL_DEPLOYMENT={}\n\
         export SHOAL_PRIVATE_KEY={}\n",
        env_file.display(),
        stack.rpc_url,
        deployment.display(),
        stack.creator_key,
    );
    std::fs::write(&env_file, env)
        .with_context(|| format!("cannot write {}", env_file.display()))?;
    println!(
        "{}",
        stack
            .summary()
            .replace(&stack.creator_key, "(in devstack.env)")
    );
    println!("env file      {}", env_file.display());
    println!("deployment    {}", deployment.display());
    eprintln!(
        "devstack ready; `. {}` then run jobs with `shoal wasm run …`; Ctrl-C stops it",
        env_file.display()
    );
    wait_for_stop().await?;
    eprintln!("stopping the devstack");
    stack.shutdown().await;
    Ok(())
}

async fn wait_for_stop() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("cannot listen for SIGTERM")?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.context("cannot wait for Ctrl-C")?,
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c()
        .await
        .context("cannot wait for Ctrl-C")?;
    Ok(())
}
