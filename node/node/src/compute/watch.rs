//! The watcher (`[watch]`): while an optimistic job's challenge window is open, re-run a
//! sample of the jobs this node has no part in and challenge the job when a revealed result
//! differs from the re-run's. An upheld challenge returns the bond and pays the challenger from
//! the slashed collateral; one that is not upheld loses the bond, so a watcher only challenges
//! what it computed itself.

use std::sync::Arc;

use alloy::primitives::keccak256;
use shoal_api::{JobView, WatchCheck, WatchVerdict, now_secs, result_hash_of};
use shoal_chain::bindings::JobMarket::JobMarketErrors as Revert;
use shoal_chain::{Address, B256, JobState, U256, Verifier};

use super::execute::{RunFor, run_job};
use super::scheduler::{Action, spawn_action};
use crate::error::Result;
use crate::metrics::Metrics;
use crate::node::Node;

/// Starts a watcher check of `job` when it is due: an optimistic job in its challenge window,
/// not this node's, sampled, not checked before.
pub(crate) fn due(node: &Arc<Node>, job: &JobView, me: Address, now: u64) -> Result<()> {
    let cfg = &node.cfg.watch;
    if !cfg.enabled
        || job.state != JobState::Challengeable
        || job.params.verifier != Verifier::Optimistic
        || job.creator == me
        || job.deal_of(me).is_some()
        || now.saturating_add(cfg.min_window_left_secs) > job.phase_deadline
        || !sampled(job.id.as_u256(), me, cfg.sample)
        || node.db.watch(job.id)?.is_some()
    {
        return Ok(());
    }
    let (n, j) = (node.clone(), job.clone());
    spawn_action(
        node,
        job.id,
        Action::Watch,
        async move { check(n, j).await },
    );
    Ok(())
}

/// Whether this operator re-runs the job: a hash of the job id and the operator, below
/// `sample` of the range, so watchers sample independently of each other.
pub(crate) fn sampled(job: U256, me: Address, sample: f64) -> bool {
    if sample >= 1.0 {
        return true;
    }
    let mut buf = [0u8; 52];
    buf[..32].copy_from_slice(&job.to_be_bytes::<32>());
    buf[32..].copy_from_slice(me.as_slice());
    let h = keccak256(buf);
    let x = u64::from_be_bytes(h[..8].try_into().unwrap_or_default());
    (x as f64) < sample * (u64::MAX as f64)
}

/// The operators whose revealed (sealed) result differs from `ours`.
pub(crate) fn disagreeing(job: &JobView, ours: B256) -> Vec<Address> {
    let sealed = crate::chain::sealed_hash(job.id, ours);
    job.deals
        .iter()
        .filter(|d| !d.mediator && d.sealed_result.is_some_and(|h| h != sealed))
        .map(|d| d.operator)
        .collect()
}

fn record(node: &Node, job: &JobView, hash: Option<B256>, verdict: WatchVerdict) -> Result<()> {
    let check = WatchCheck {
        result_hash: hash,
        verdict,
        at: now_secs(),
    };
    node.db.put_watch(job.id, &check)
}

/// Re-runs `job` and challenges it when a revealed result differs.
async fn check(node: Arc<Node>, job: JobView) -> Result<()> {
    let id = job.id;
    let bond = node.chain.challenge_bond(id).await?;
    if bond > U256::from(node.cfg.watch.max_bond_wei) {
        let reason = format!(
            "the challenge bond ({bond} wei) is above watch.max_bond_wei ({})",
            node.cfg.watch.max_bond_wei
        );
        tracing::info!(job = %id, %reason, "not watching");
        return record(&node, &job, None, WatchVerdict::NotChallenged { reason });
    }
    Metrics::inc(&node.metrics.watch_checks);
    tracing::info!(job = %id, "watch: re-running an optimistic job");
    let (cid, dir, _) = run_job(&node, &job, RunFor::Watch).await?;
    if let Err(e) = shoal_store::paths::remove_tree(&dir) {
        tracing::warn!(job = %id, error = %e, "cannot remove the watcher's results");
    }
    let ours = result_hash_of(&cid)?;
    let wrong = disagreeing(&job, ours);
    if wrong.is_empty() {
        tracing::info!(job = %id, result = %cid, "watch: every revealed result agrees");
        return record(&node, &job, Some(ours), WatchVerdict::Agreed);
    }
    tracing::warn!(job = %id, result = %cid, ?wrong, "watch: revealed results differ; challenging");
    match node.chain.challenge(id).await {
        Ok(tx) => {
            Metrics::inc(&node.metrics.watch_challenges);
            tracing::info!(job = %id, %tx, %bond, "watch: challenged");
            record(
                &node,
                &job,
                Some(ours),
                WatchVerdict::Challenged { tx, bond },
            )
        }
        Err(e) => match e.market_revert() {
            // Final answers from the market: someone else challenged first or the window
            // closed. Not retried.
            Some(Revert::JobMarket__WrongState(_) | Revert::JobMarket__DeadlinePassed(_)) => {
                let reason = e.to_string();
                tracing::info!(job = %id, %reason, "watch: not challenged");
                record(
                    &node,
                    &job,
                    Some(ours),
                    WatchVerdict::NotChallenged { reason },
                )
            }
            _ => {
                Metrics::inc(&node.metrics.tx_errors);
                Err(e)
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampling_is_deterministic_and_close_to_the_rate() {
        let me = Address::repeat_byte(7);
        let hits = (0..10_000u64)
            .filter(|i| sampled(U256::from(*i), me, 0.1))
            .count();
        assert!((800..1200).contains(&hits), "{hits} of 10000 at 0.1");
        assert_eq!(
            sampled(U256::from(5u64), me, 0.1),
            sampled(U256::from(5u64), me, 0.1)
        );
        assert!((0..1000u64).all(|i| sampled(U256::from(i), me, 1.0)));
        assert!(!(0..1000u64).any(|i| sampled(U256::from(i), me, 0.0)));
        let other = Address::repeat_byte(8);
        assert!(
            (0..1000u64)
                .any(|i| sampled(U256::from(i), me, 0.5) != sampled(U256::from(i), other, 0.5)),
            "watchers sample different jobs"
        );
    }
}
