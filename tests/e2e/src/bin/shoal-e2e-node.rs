//! One Shoal node from a TOML config file, as `shoal serve --config FILE` runs it, for tests
//! that kill and restart a node as a process: `shoal-e2e-node --config FILE`.
//!
//! Prints the API URL on stdout once serving; logs to stderr (`RUST_LOG` sets the filter).
//! Stops on SIGTERM or Ctrl-C, and fails when the node stops by itself.

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use shoal_node::NodeConfig;
use tokio::signal::unix::{SignalKind, signal};

fn config_path() -> anyhow::Result<PathBuf> {
    let mut args = std::env::args_os().skip(1);
    match (args.next(), args.next(), args.next()) {
        (Some(flag), Some(path), None) if flag == "--config" => Ok(PathBuf::from(path)),
        _ => bail!("usage: shoal-e2e-node --config FILE"),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "shoal_node=info,warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let path = config_path()?;
    let cfg = NodeConfig::load(&path)?;
    let node = shoal_node::start(cfg)
        .await
        .context("the node did not start")?;
    println!("{}", node.api_url());
    let mut term = signal(SignalKind::terminate()).context("cannot wait for SIGTERM")?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.context("cannot wait for Ctrl-C")?,
        _ = term.recv() => {}
        _ = node.stopped() => bail!("the node stopped by itself; see the log above"),
    }
    eprintln!("shutting down");
    node.shutdown().await;
    Ok(())
}
