//! After a job ended: publish verified results that are ours, close this node's execution,
//! and claim what the market owes.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use shoal_api::{Execution, JobId, JobView, Step, now_secs, result_hash_of};
use shoal_chain::bindings::JobMarket::JobMarketErrors as Revert;
use shoal_chain::{B256, JobState};

use super::scheduler::{Action, spawn_action};
use crate::chain::sealed_hash;
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::node::Node;

/// Least time between two payout claims of one node.
const CLAIM_EVERY: Duration = Duration::from_secs(2);

/// Publishes, closes or claims for an ended job.
pub(crate) fn settle(node: &Arc<Node>, job: &JobView, exec: Execution) {
    let id = job.id;
    match exec.step.result_hash() {
        Some(ours) if job.state == JobState::Verified => {
            let (n, j) = (node.clone(), job.clone());
            spawn_action(node, id, Action::Publish, async move {
                publish(n, j, exec, ours).await
            });
        }
        _ if !exec.step.is_terminal() => {
            let reason = match job.state {
                JobState::Verified => "the job verified without this node's result".to_string(),
                JobState::Expired => "the job expired (too few bids)".to_string(),
                _ => format!(
                    "the job failed ({})",
                    job.fail_reason
                        .map_or_else(|| "unknown reason".to_owned(), |r| r.to_string())
                ),
            };
            let reason = if exec.step == Step::Bidding {
                format!("not selected; {reason}")
            } else {
                reason
            };
            // Nothing owed (a bidder not selected): nothing to claim either.
            let paid = node.chain.operator.is_some_and(|me| job.paid(me));
            close(
                node,
                Execution {
                    step: Step::Done { reason },
                    claimed: exec.claimed || !paid,
                    ..exec
                },
            );
            node.scheduler.touch(id);
        }
        _ if !exec.claimed => {
            let paid = node.chain.operator.is_some_and(|me| job.paid(me));
            if paid {
                claim(node);
            } else {
                // Nothing of this job to withdraw: done with it.
                close(
                    node,
                    Execution {
                        claimed: true,
                        ..exec
                    },
                );
            }
        }
        _ => {}
    }
}

fn close(node: &Node, exec: Execution) {
    let e = Execution {
        updated_at: now_secs(),
        ..exec
    };
    if let Err(err) = node.db.put_execution(&e) {
        tracing::warn!(job = %e.job_id, error = %err, "cannot record the end of an execution");
    }
}

/// One `claim()` withdraws every payout credited so far, so one claim (at most one in flight,
/// at most one per [`CLAIM_EVERY`]) settles every ended job waiting for it.
fn claim(node: &Arc<Node>) {
    if node.scheduler.claimed_within(CLAIM_EVERY) {
        return;
    }
    let n = node.clone();
    spawn_action(node, JobId::default(), Action::Claim, async move {
        // Jobs whose payout is credited before the claim is sent.
        let waiting: Vec<Execution> = n
            .scheduler
            .active()
            .into_iter()
            .filter_map(|id| n.db.execution(id).ok().flatten())
            .filter(|e| e.step.is_terminal() && !e.claimed)
            .filter(|e| {
                n.db.job(e.job_id)
                    .ok()
                    .flatten()
                    .is_some_and(|j| j.state.is_final())
            })
            .collect();
        match n.chain.claim_if_any().await {
            Ok(amount) => tracing::info!(%amount, jobs = waiting.len(), "claimed payouts"),
            Err(e)
                if matches!(
                    e.market_revert(),
                    Some(Revert::JobMarket__NothingToClaim(_))
                ) => {}
            Err(e) => return Err(e),
        }
        n.scheduler.claimed_now();
        for exec in waiting {
            n.db.put_execution(&Execution {
                claimed: true,
                updated_at: now_secs(),
                ..exec
            })?;
            n.scheduler.touch(exec.job_id);
        }
        Ok(())
    });
}

/// Pins the verified results in the store (making them public) when they are ours, and
/// publishes their hash on chain (`publishResult`) unless someone did already.
async fn publish(node: Arc<Node>, job: JobView, exec: Execution, ours: B256) -> Result<()> {
    let results = || format!("results of job {}", job.id);
    let Some(verified) = job.sealed_result else {
        return Err(Error::Content {
            cid: results(),
            reason: "the job is verified but its JobVerified event is not read yet; retrying"
                .into(),
        });
    };
    let step = if verified == sealed_hash(job.id, ours) {
        let dir = exec
            .results_dir
            .clone()
            .map(PathBuf::from)
            .ok_or_else(|| Error::Content {
                cid: job.result_cid.clone().unwrap_or_else(results),
                reason: "this node has no results folder for the job".into(),
            })?;
        let store = node.content.store.clone();
        let imported = tokio::task::spawn_blocking(move || {
            store.add_path(&dir, shoal_store::Profile::UnixfsV1_2025)
        })
        .await
        .map_err(|e| Error::Content {
            cid: results(),
            reason: format!("importing the results folder was interrupted: {e}"),
        })??;
        if result_hash_of(&imported.cid)? != ours {
            Step::Failed {
                reason: format!(
                    "the results folder changed since the commit (now {})",
                    imported.cid
                ),
            }
        } else {
            Metrics::inc(&node.metrics.published);
            tracing::info!(job = %job.id, cid = %imported.cid, "verified results published");
            node.content.announce(&imported.cid).await;
            wait_turn(&node, &job, ours, &imported.cid).await?;
            crate::pinning::pin_results(&node, &job, &imported.cid).await;
            publish_on_chain(&node, &job, ours).await?;
            Step::Published {
                result_cid: imported.cid.to_string(),
            }
        }
    } else {
        Step::Failed {
            reason: format!(
                "this node's result {ours} is not the verified result (sealed {verified})"
            ),
        }
    };
    node.db.put_execution(&Execution {
        step,
        updated_at: now_secs(),
        ..exec
    })
}

/// How long the next deal with the accepted result waits before pinning and publishing it in
/// place of the previous one.
const PUBLISH_STAGGER: Duration = Duration::from_secs(5);

/// Every deal that revealed the accepted result holds it; the first (in deal order) pins it on
/// the swarm and publishes it on chain at once, each next one [`PUBLISH_STAGGER`] later per
/// rank and only what is still missing then, so one pin message and one transaction are the
/// usual cost.
async fn wait_turn(node: &Node, job: &JobView, ours: B256, cid: &cid::Cid) -> Result<()> {
    let Some(me) = node.chain.operator else {
        return Ok(());
    };
    let sealed = sealed_hash(job.id, ours);
    let rank = job
        .deals
        .iter()
        .filter(|d| d.sealed_result == Some(sealed))
        .position(|d| d.operator == me)
        .unwrap_or(0);
    let pinned = || node.pinning.as_ref().is_none_or(|p| p.covers(cid, 1, 1));
    if rank > 0 && !(published(node, job.id)? && pinned()) {
        let rank = u32::try_from(rank).unwrap_or(u32::MAX);
        tokio::time::sleep(PUBLISH_STAGGER.saturating_mul(rank)).await;
    }
    Ok(())
}

fn published(node: &Node, id: JobId) -> Result<bool> {
    Ok(node.db.job(id)?.is_some_and(|j| j.result_hash.is_some()))
}

/// Sends `publishResult` unless the result is public already.
async fn publish_on_chain(node: &Node, job: &JobView, ours: B256) -> Result<()> {
    if node.chain.operator.is_none() || published(node, job.id)? {
        return Ok(());
    }
    let tx = node.chain.publish_result(job.id, ours).await?;
    tracing::info!(job = %job.id, %tx, "result hash published on chain");
    Ok(())
}

#[cfg(test)]
mod tests {
    use shoal_api::Step;
    use shoal_chain::{JobState, PaymentKind};

    use crate::testkit::{Kit, SOLO_DEAL};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn verified_results_are_published_and_the_payout_claimed() {
        let kit = Kit::start(|_| {}).await;
        let id = kit.post_hello(SOLO_DEAL).await;
        let (job, exec) = kit
            .wait(id, "published and claimed", |j, e| {
                j.state == JobState::Verified
                    && j.result_cid.is_some()
                    && e.is_some_and(|e| matches!(e.step, Step::Published { .. }) && e.claimed)
            })
            .await;
        let me = kit.node.operator().expect("operator");
        assert!(
            job.payments
                .iter()
                .any(|p| p.account == me && p.kind == PaymentKind::Execution)
        );
        let Some(Step::Published { result_cid }) = exec.map(|e| e.step) else {
            unreachable!("waited for a published step");
        };
        assert_eq!(Some(result_cid), job.result_cid);
        let client = shoal_chain::ChainClient::connect(&kit.rpc, None)
            .await
            .expect("connect")
            .with_deployment(
                kit.deployment
                    .on_chain(kit.deployment.chain_id.unwrap_or(0)),
            )
            .expect("deployment");
        let owed = client.withdrawable(me).await.expect("withdrawable");
        assert!(owed.is_zero(), "everything was claimed, {owed} wei left");
        kit.stop().await;
    }
}
