//! One Shoal node from a TOML config file, as `shoal serve --config FILE` runs it, for tests
//! that kill and restart a node as a process: `shoal-e2e-node --config FILE [--fault NAME]`
//! (a devstack fault: `wrong-result`, `crash-after-commit`, `crash-while-running`).
//!
//! Prints the API URL on stdout once serving; logs to stderr (`RUST_LOG` sets the filter).
//! Stops on SIGTERM or Ctrl-C, and exits non-zero when the node stops by itself (a critical
//! task died). With `SHOAL_E2E_ABORT_TASK=NAME` it aborts that critical task once serving, so
//! a test can see the node stop and the process fail.

use std::path::PathBuf;

use anyhow::{Context as _, bail, ensure};
use shoal_devstack::Fault;
use shoal_node::NodeConfig;
use tokio::signal::unix::{SignalKind, signal};

fn args() -> anyhow::Result<(PathBuf, Option<Fault>)> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: shoal-e2e-node --config FILE [--fault NAME]";
    match args.as_slice() {
        [flag, path] if flag == "--config" => Ok((PathBuf::from(path), None)),
        [flag, path, f, fault] if flag == "--config" && f == "--fault" => {
            let fault = fault
                .parse()
                .map_err(|e: String| anyhow::anyhow!("{e}; {usage}"))?;
            Ok((PathBuf::from(path), Some(fault)))
        }
        _ => bail!("{usage}"),
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
    let (path, fault) = args()?;
    let cfg = NodeConfig::load(&path)?;
    let node = shoal_devstack::start_node(cfg, fault)
        .await
        .context("the node did not start")?;
    println!("{}", node.api_url());
    if let Ok(task) = std::env::var("SHOAL_E2E_ABORT_TASK") {
        ensure!(node.abort_task(&task), "no critical task {task} to abort");
    }
    let mut term = signal(SignalKind::terminate()).context("cannot wait for SIGTERM")?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.context("cannot wait for Ctrl-C")?,
        _ = term.recv() => {}
        r = node.stopped() => {
            r.context("the node stopped by itself")?;
            if node.has_left() {
                eprintln!("left the swarm; stopped");
                return Ok(());
            }
            bail!("the node stopped by itself; see the log above");
        }
    }
    eprintln!("shutting down");
    node.shutdown().await;
    Ok(())
}
