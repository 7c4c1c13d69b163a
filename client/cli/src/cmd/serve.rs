//! `shoal serve`: a long-running node from a TOML config file (docs/node.md).

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args as ClapArgs;
use shoal_node::NodeConfig;

#[derive(Debug, ClapArgs)]
pub struct Args {
    /// The node's config file (docs/node.md); without it every setting has its default.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Overrides `data_dir`.
    #[arg(long, env = "SHOAL_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Overrides `chain.rpc_url`.
    #[arg(long = "chain-rpc", env = "SHOAL_CHAIN_RPC", value_name = "URL")]
    chain_rpc: Option<String>,
    /// Overrides `api.listen`.
    #[arg(long, env = "SHOAL_LISTEN", value_name = "ADDR")]
    listen: Option<std::net::SocketAddr>,
    /// Overrides `api.public_url`.
    #[arg(long, env = "SHOAL_PUBLIC_URL", value_name = "URL")]
    public_url: Option<String>,
    /// Overrides `deployment_file`.
    #[arg(
        long = "deployment-file",
        env = "SHOAL_DEPLOYMENT_FILE",
        value_name = "FILE"
    )]
    deployment_file: Option<PathBuf>,
    /// Overrides `operator.keystore`.
    #[arg(
        long = "operator-keystore",
        env = "SHOAL_OPERATOR_KEYSTORE",
        value_name = "FILE"
    )]
    operator_keystore: Option<PathBuf>,
    /// Overrides `operator.password_env`: the variable that holds the keystore's password.
    #[arg(
        long = "operator-password-env",
        env = "SHOAL_OPERATOR_PASSWORD_ENV",
        value_name = "VAR"
    )]
    operator_password_env: Option<String>,
    /// Overrides `executor.docker`.
    #[arg(long, env = "SHOAL_DOCKER")]
    docker: Option<bool>,
    /// Overrides `p2p.listen` (a multiaddr; repeat or separate with commas).
    #[arg(
        long = "p2p-listen",
        env = "SHOAL_P2P_LISTEN",
        value_name = "MULTIADDR",
        value_delimiter = ','
    )]
    p2p_listen: Vec<String>,
    /// Overrides `p2p.bootstrap`: peers to dial, `…/p2p/<peer id>` (repeat or separate with commas).
    #[arg(
        long,
        env = "SHOAL_BOOTSTRAP",
        value_name = "MULTIADDR",
        value_delimiter = ','
    )]
    bootstrap: Vec<String>,
    /// Overrides `p2p.psk_file`: join the private network of this swarm.key.
    #[arg(long = "swarm-key", env = "SHOAL_SWARM_KEY", value_name = "FILE")]
    swarm_key: Option<PathBuf>,
    /// Runs without the libp2p swarm (content then moves only over `peers`' HTTP APIs).
    #[arg(long = "no-p2p")]
    no_p2p: bool,
    /// Print the effective configuration and exit.
    #[arg(long)]
    print_config: bool,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let mut cfg = match &args.config {
        Some(p) => NodeConfig::load(p)?,
        None => NodeConfig::default(),
    };
    if let Some(v) = args.data_dir {
        cfg.data_dir = v;
    }
    if let Some(v) = args.chain_rpc {
        cfg.chain.rpc_url = v;
    }
    if let Some(v) = args.listen {
        cfg.api.listen = v;
    }
    if let Some(v) = args.public_url {
        cfg.api.public_url = Some(v);
    }
    if let Some(v) = args.deployment_file {
        cfg.deployment_file = Some(v);
        cfg.deployment = None;
    }
    if let Some(v) = args.operator_keystore {
        cfg.operator.keystore = Some(v);
    }
    if let Some(v) = args.operator_password_env {
        cfg.operator.password_env = Some(v);
    }
    if let Some(v) = args.docker {
        cfg.executor.docker = v;
    }
    if !args.p2p_listen.is_empty() {
        cfg.p2p.listen = args.p2p_listen;
    }
    if !args.bootstrap.is_empty() {
        cfg.p2p.bootstrap = args.bootstrap;
    }
    if let Some(v) = args.swarm_key {
        cfg.p2p.psk_file = Some(v);
    }
    if args.no_p2p {
        cfg.p2p.enabled = false;
    }
    if args.print_config {
        print!("{}", cfg.to_toml()?);
        return Ok(());
    }
    let node = shoal_node::start(cfg)
        .await
        .context("the node did not start")?;
    println!("{}", node.api_url());
    for a in node.p2p_addrs().await {
        eprintln!("libp2p listening on {a}");
    }
    match node.operator() {
        Some(a) => eprintln!(
            "shoal node serving {} as operator {a}; Ctrl-C or SIGTERM stops it",
            node.api_url()
        ),
        None => eprintln!(
            "shoal node serving {} without an operator key (follows and serves, never bids)",
            node.api_url()
        ),
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot wait for SIGTERM")?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.context("cannot wait for Ctrl-C")?,
        _ = term.recv() => {}
        r = node.stopped() => {
            r.context("the node stopped by itself")?;
            if node.has_left() {
                eprintln!("left the swarm (shoal node leave); stopped");
                return Ok(());
            }
            anyhow::bail!("the node stopped by itself; see the log above");
        }
    }
    eprintln!("shutting down");
    node.shutdown().await;
    Ok(())
}
