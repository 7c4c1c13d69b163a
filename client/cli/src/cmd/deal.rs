//! `shoal deal show`: a job's full on-chain history, read from the chain's event logs.

use clap::Subcommand;
use serde_json::json;
use shoal_chain::JobId;

use super::{Ctx, print_json};

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print every event of a job (post, bids, selection, commits, reveals, payments, slashes,
    /// disputes), decoded from the chain's logs. With --deployment FILE nothing is asked of a node.
    Show {
        /// Job id.
        id: JobId,
    },
}

pub async fn run(ctx: &Ctx, cmd: Command) -> anyhow::Result<()> {
    let Command::Show { id } = cmd;
    let n = id;
    let client = ctx.client(false).await?;
    let job = client.job(n).await?;
    let history = client.history(n).await?;
    let published = client.published_result(n).await?;
    let sealed = (!job.sealedResult.is_zero()).then_some(job.sealedResult);
    let state = job.state.to_string();
    if ctx.json() {
        return print_json(&json!({
            "jobId": n,
            "state": state,
            "creator": job.creator,
            "sealedResult": sealed.map(|h| h.to_string()),
            "resultHash": published.map(|h| h.to_string()),
            "escrowHeld": job.escrow.to_string(),
            "market": client.deployment().job_market,
            "chainId": client.deployment().chain_id,
            "events": history,
        }));
    }
    println!(
        "job {n}: {state}  (market {} on chain {})",
        client.deployment().job_market,
        client.deployment().chain_id
    );
    for e in &history {
        println!("  block {:>5}  {:<18} {}", e.block, e.event, e.summary);
    }
    match (sealed, published) {
        (_, Some(h)) => println!("result hash {h}"),
        (Some(s), None) if job.state == shoal_chain::JobState::Verified => println!(
            "sealed result {s} (the plain result hash is not published yet: publishResult)"
        ),
        _ => {}
    }
    Ok(())
}
