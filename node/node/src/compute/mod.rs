//! The compute side: a loop that reconciles every active job's state on chain with this
//! node's own progress on it, and starts what is due.
//!
//! - [`scheduler`]: the active jobs, one action of each kind per job, backoff.
//! - [`reconcile`]: from a job's state and this node's execution to the next action.
//! - [`bid`]: deciding on a posted job (the [`strategy`]) and bidding.
//! - [`execute`]: fetching inputs ([`inputs`]), running the executor, commit and reveal.
//! - [`settle`]: publishing verified results, closing executions, claiming payouts.
//! - [`watch`]: re-running other operators' optimistic jobs and challenging wrong results.
//!
//! Every step is persisted in the state store before it is acted on, so a restarted node
//! takes up each job where it stopped.

pub(crate) mod bid;
pub(crate) mod egress;
pub(crate) mod execute;
pub(crate) mod inputs;
pub(crate) mod reconcile;
pub(crate) mod scheduler;
pub(crate) mod settle;
pub mod strategy;
pub(crate) mod watch;

use std::sync::Arc;
use std::time::{Duration, Instant};

pub(crate) use scheduler::Scheduler;
pub use strategy::{BidContext, BidStrategy, PolicyStrategy, Verdict};

use crate::error::Result;
use crate::node::Node;

/// How often the compute loop looks at every active job (deadlines pass without an event).
const FULL_PASS: Duration = Duration::from_secs(1);

/// Looks at the jobs that changed (new events, a finished action) as soon as they change, and
/// at every active job once per [`FULL_PASS`]. Runs until the node stops; an error reading the
/// state store is logged and the pass is tried again.
pub(crate) async fn run(node: Arc<Node>) -> Result<()> {
    let full_every = FULL_PASS.max(node.cfg.chain.poll_interval());
    let mut last_full: Option<Instant> = None;
    loop {
        let full = last_full.is_none_or(|t| t.elapsed() >= full_every);
        let dirty = node.scheduler.take_dirty();
        let ids = if full {
            last_full = Some(Instant::now());
            node.scheduler.active()
        } else {
            dirty
        };
        if let Err(e) = reconcile::reconcile(&node, ids) {
            tracing::warn!(error = %e, "compute: cannot read the state store");
        }
        let next_full = full_every.saturating_sub(last_full.map_or(full_every, |t| t.elapsed()));
        tokio::select! {
            _ = node.tasks.token().cancelled() => return Ok(()),
            _ = node.scheduler.woken() => {}
            _ = tokio::time::sleep(next_full) => {}
        }
    }
}
