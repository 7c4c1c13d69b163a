//! `shoal node`: a running node's membership of the swarm.

use std::time::{Duration, Instant};

use clap::Subcommand;
use shoal_sdk::api::{LeaveView, NodeApi};

use super::{Ctx, print_json};

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Leave the swarm gracefully: the node (--node) stops taking new pins, its pins are
    /// re-allocated to other nodes, and once every CID it holds has at least its
    /// replication-min copies elsewhere it announces its departure and stops (`shoal serve`
    /// then exits 0). Waits for that unless --no-wait.
    Leave {
        /// Return at once; follow with `GET /api/v1/node/leave`.
        #[arg(long)]
        no_wait: bool,
        /// Longest wait, in seconds.
        #[arg(long, default_value_t = 600, value_name = "SECS")]
        timeout: u64,
    },
}

pub async fn run(ctx: &Ctx, cmd: Command) -> anyhow::Result<()> {
    let Command::Leave { no_wait, timeout } = cmd;
    let api = NodeApi::new(&ctx.node_url())?;
    let mut view = api.leave().await?;
    let deadline = Instant::now() + Duration::from_secs(timeout);
    let mut last_report = 0;
    while !no_wait && !view.done {
        tokio::time::sleep(Duration::from_millis(500)).await;
        match api.leave_progress().await {
            Ok(v) => view = v,
            // The node stopped: its leave finished.
            Err(shoal_sdk::Error::NodeUnreachable { .. }) => {
                view.done = true;
                view.waiting.clear();
                break;
            }
            Err(e) => return Err(e.into()),
        }
        if !ctx.json() && view.waiting.len() != last_report {
            last_report = view.waiting.len();
            eprintln!(
                "waiting for {} CIDs to have their copies elsewhere",
                last_report
            );
        }
        if Instant::now() > deadline {
            report(ctx, &view)?;
            anyhow::bail!(
                "the node still waits for {} CIDs after {timeout} s (too few other live nodes for \
                 their replication-min?); it keeps trying — run `shoal node leave` again to wait more",
                view.waiting.len()
            );
        }
    }
    report(ctx, &view)
}

fn report(ctx: &Ctx, v: &LeaveView) -> anyhow::Result<()> {
    if ctx.json() {
        return print_json(v);
    }
    if v.done {
        println!("left the swarm; the node has stopped");
    } else {
        println!(
            "leaving; {} CIDs still lack copies elsewhere",
            v.waiting.len()
        );
        for w in &v.waiting {
            println!(
                "  {} {} of {} copies elsewhere",
                w.cid, w.copies_elsewhere, w.replication_min
            );
        }
    }
    Ok(())
}
