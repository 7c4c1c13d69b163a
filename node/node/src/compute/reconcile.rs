//! From a job's state on chain and this node's own progress on it to the next action.

use std::sync::Arc;

use alloy::primitives::keccak256;
use shoal_api::{Execution, JobId, JobView, Role, Step, now_secs};
use shoal_chain::{Address, JobState};

use super::scheduler::{Action, spawn_action};
use super::{bid, execute, settle, watch};
use crate::error::Result;
use crate::metrics::Metrics;
use crate::node::Node;

/// Seconds after which a bid decided but not seen on chain is sent again.
const BID_RESEND_AFTER: u64 = 2;

/// Looks at the given active jobs and starts what is due; forgets the ones that are done.
pub(crate) fn reconcile(node: &Arc<Node>, ids: Vec<JobId>) -> Result<()> {
    let now = now_secs();
    for id in ids {
        let Some(job) = node.db.job(id)? else {
            node.scheduler.forget(id);
            continue;
        };
        let exec = node.db.execution(id)?;
        if job.state.is_final()
            && exec
                .as_ref()
                .is_none_or(|e| e.step.is_terminal() && e.claimed)
        {
            node.scheduler.forget(id);
            continue;
        }
        if !job.state.is_final() {
            announce(node, &job);
        }
        let Some(me) = node.chain.operator else {
            continue;
        };
        step(node, &job, exec, me, now)?;
    }
    Ok(())
}

fn step(
    node: &Arc<Node>,
    job: &JobView,
    exec: Option<Execution>,
    me: Address,
    now: u64,
) -> Result<()> {
    let id = job.id;
    let deal = job.deal_of(me);
    match job.state {
        JobState::Posted if now <= job.bid_deadline => {
            let decided = node.db.decision(id)?;
            if decided.is_none() && node.cfg.bid.enabled {
                let (n, j) = (node.clone(), job.clone());
                spawn_action(
                    node,
                    id,
                    Action::Bid,
                    async move { bid::decide(n, j).await },
                );
            } else if exec
                .as_ref()
                .is_some_and(|e| e.step == Step::Bidding && now > e.updated_at + BID_RESEND_AFTER)
                && !job.bids.iter().any(|b| b.operator == me)
                && let Some(price) = decided.and_then(|d| d.price)
            {
                let n = node.clone();
                spawn_action(node, id, Action::Bid, async move {
                    bid::send_bid(n, id, price, false).await
                });
            }
        }
        // After the bid window: close the bidding (which selects at once, expires, or arms
        // the draw); an armed draw is taken by the next call in a later block (with
        // `drawDelay` 0, the next transaction). Anyone may send these; nodes take turns
        // (`keeper_delay`) so that usually one sends it, and a node that loses the race gets a
        // revert and looks again.
        JobState::Posted | JobState::Drawing
            if now > job.bid_deadline.saturating_add(keeper_delay(job, me)) =>
        {
            let n = node.clone();
            spawn_action(node, id, Action::Close, async move {
                n.chain.close_bidding(id).await.map(|_| ())
            });
        }
        JobState::DisputeDrawing => {
            let n = node.clone();
            spawn_action(node, id, Action::Finalize, async move {
                n.chain.finalize(id).await.map(|_| ())
            });
        }
        JobState::Running | JobState::Disputed => {
            let mine = deal.is_some_and(|d| d.mediator == (job.state == JobState::Disputed));
            if mine {
                drive_execution(node, job, exec.as_ref(), me);
            }
            due_finalize(node, job, now, me);
        }
        JobState::Revealing | JobState::DisputeRevealing => {
            if let Some(
                e @ Execution {
                    step: Step::Committed { .. },
                    ..
                },
            ) = exec
                && deal.is_some_and(|d| d.sealed_result.is_none())
            {
                let n = node.clone();
                spawn_action(node, id, Action::Reveal, async move {
                    execute::reveal(n, e).await
                });
            }
            due_finalize(node, job, now, me);
        }
        JobState::Challengeable => {
            watch::due(node, job, me, now)?;
            due_finalize(node, job, now, me);
        }
        JobState::Verified | JobState::Failed | JobState::Expired => {
            if let Some(e) = exec {
                settle::settle(node, job, e);
            }
        }
        _ => {}
    }
    Ok(())
}

/// Announces a newly posted job on the swarm when its spec was uploaded here (the creator's
/// node), once per job. Every node soon holds a popular spec; were each to announce, every job
/// would cost the swarm one signed message per node.
fn announce(node: &Arc<Node>, job: &JobView) {
    let Some(p2p) = node.p2p.clone() else {
        return;
    };
    if !node.announcer.first_time(job.id) {
        return;
    }
    let uploaded = shoal_store::parse_cid(&job.params.spec_cid)
        .is_ok_and(|cid| node.content.was_uploaded(&cid));
    if !uploaded {
        return;
    }
    let network = (
        node.chain.chain_id,
        node.chain.deployment.job_market.to_string(),
    );
    let (job, n) = (job.clone(), node.clone());
    node.tasks.spawn(async move {
        if crate::network::announce(&p2p, network, &job).await {
            Metrics::inc(&n.metrics.announcements_sent);
        }
    });
}

/// Seconds past a deadline this node waits before sending a call anyone may send
/// (`closeBidding`, `finalize`): its place among the job's bidders in an order drawn from the
/// job id (0 for the first), or after every bidder when it did not bid. So usually one node
/// sends it and the others see it done; when that node is down, the next one sends it a
/// second later.
fn keeper_delay(job: &JobView, me: Address) -> u64 {
    turn(job.id, &job.bids, me)
}

/// `keeper_delay` over the job's id and bids.
fn turn(id: JobId, bids: &[shoal_api::BidView], me: Address) -> u64 {
    let rank =
        |op: &Address| keccak256([id.0.to_be_bytes::<32>().as_slice(), op.as_slice()].concat());
    let mine = rank(&me);
    let bidders = bids.iter().filter(|b| !b.dropped);
    if !bids.iter().any(|b| b.operator == me) {
        return bidders.count() as u64;
    }
    bidders.filter(|b| rank(&b.operator) < mine).count() as u64
}

fn due_finalize(node: &Arc<Node>, job: &JobView, now: u64, me: Address) {
    if job.phase_deadline > 0 && now > job.phase_deadline.saturating_add(keeper_delay(job, me)) {
        let (n, id) = (node.clone(), job.id);
        spawn_action(node, id, Action::Finalize, async move {
            n.chain.finalize(id).await.map(|_| ())
        });
    }
}

fn drive_execution(node: &Arc<Node>, job: &JobView, exec: Option<&Execution>, me: Address) {
    let role = if job.state == JobState::Disputed {
        Role::Mediator
    } else {
        Role::Worker
    };
    let id = job.id;
    match exec.map(|e| &e.step) {
        Some(Step::Committed {
            commit_confirmed: false,
            ..
        }) => {
            // The execution that just stored this step sends the commit itself; only a
            // commit left unconfirmed by a crash or a failure is sent from here.
            if node.scheduler.is_running(id, Action::Execute) {
                return;
            }
            let (n, j) = (node.clone(), job.clone());
            let e = exec.cloned();
            spawn_action(node, id, Action::Commit, async move {
                match e {
                    Some(e) => execute::send_commit(n, &j, e, me).await,
                    None => Ok(()),
                }
            });
        }
        Some(
            Step::Committed { .. }
            | Step::Revealed { .. }
            | Step::Published { .. }
            | Step::Failed { .. },
        ) => {}
        Some(Step::Done { .. }) if role == Role::Worker => {}
        _ => {
            let (n, j) = (node.clone(), job.clone());
            spawn_action(node, id, Action::Execute, async move {
                execute::execute(n, j, role).await
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use shoal_api::Step;
    use shoal_chain::JobState;

    use crate::testkit::Kit;

    #[test]
    fn bidders_take_turns_to_close_and_others_wait_for_all_of_them() {
        let ops: Vec<shoal_chain::Address> =
            (1..=5u8).map(shoal_chain::Address::repeat_byte).collect();
        let bids: Vec<shoal_api::BidView> = ops
            .iter()
            .map(|&operator| shoal_api::BidView {
                operator,
                price: shoal_chain::U256::from(1u8),
                dropped: false,
            })
            .collect();
        for id in [1u64, 2, 99] {
            let id = shoal_api::JobId::from(id);
            let mut turns: Vec<u64> = ops.iter().map(|&op| super::turn(id, &bids, op)).collect();
            turns.sort_unstable();
            assert_eq!(turns, [0, 1, 2, 3, 4], "job {id}: one bidder per turn");
            let outsider = shoal_chain::Address::repeat_byte(9);
            assert_eq!(
                super::turn(id, &bids, outsider),
                5,
                "a non-bidder goes last"
            );
        }
        let first = |id: u64| {
            let id = shoal_api::JobId::from(id);
            ops.iter().position(|&op| super::turn(id, &bids, op) == 0)
        };
        assert!(
            (1..20)
                .map(first)
                .collect::<std::collections::BTreeSet<_>>()
                .len()
                > 1,
            "the first turn moves between bidders from job to job"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_job_without_enough_bids_is_closed_and_the_execution_ends() {
        let kit = Kit::start(|_| {}).await;
        // Two operators needed, one node: the node bids, closes bidding after the window and
        // the job expires; its execution ends without a claim to make.
        let deal = "deal:\n  concurrency: 2\n  confidence: 2\n  min_bids: 2\n  mediation: false\n  windows: {bid: 2s, exec: 10s, reveal: 10s}\n";
        let id = kit.post_hello(deal).await;
        let (job, exec) = kit
            .wait(id, "expired and closed", |j, e| {
                j.state == JobState::Expired && e.is_some_and(|e| e.step.is_terminal() && e.claimed)
            })
            .await;
        assert_eq!(job.bids.len(), 1);
        assert!(!job.refunds.is_empty(), "the creator is refunded: {job:?}");
        let reason = match exec.map(|e| e.step) {
            Some(Step::Done { reason }) => reason,
            other => unreachable!("not done: {other:?}"),
        };
        assert!(reason.contains("expired"), "{reason}");
        kit.stop().await;
    }
}
