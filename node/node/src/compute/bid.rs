//! Deciding on a posted job (always with a reason, persisted) and sending the bid.

use std::sync::Arc;

use shoal_api::{BidDecision, Execution, JobId, JobView, Role, Step, now_secs};
use shoal_chain::U256;
use shoal_chain::bindings::JobMarket::JobMarketErrors as Revert;
use shoal_types::{InputSource, JobSpec};

use super::inputs::load_spec;
use super::strategy::{BidContext, Verdict};
use crate::error::Result;
use crate::metrics::Metrics;
use crate::node::Node;

/// Decides on `job`, records the decision (and, when bidding, the execution it starts) and
/// sends the bid.
pub(crate) async fn decide(node: Arc<Node>, job: JobView) -> Result<()> {
    let verdict = match load_spec(&node.content, &job).await {
        Err(e) => Verdict::decline(format!("cannot use the job's spec: {e}")),
        Ok(spec) => {
            let unreachable = if node.cfg.bid.require_reachable_data {
                unreachable_data(&node, &spec).await
            } else {
                None
            };
            let not_local = if node.cfg.bid.require_local_data {
                ipfs_sources(&spec).find_map(|path| {
                    let root = path.split('/').next().unwrap_or_default();
                    let here = shoal_store::parse_cid(root).is_ok_and(|c| node.content.has_dag(&c));
                    (!here).then(|| format!("ipfs://{path}"))
                })
            } else {
                None
            };
            match crate::pipeline::check_stage(&node, job.id, false, &spec, None).await {
                Some(reason) => Verdict::decline(reason),
                None => {
                    let ctx = BidContext {
                        job: &job,
                        spec: &spec,
                        active_jobs: node.db.open_executions(),
                        unreachable,
                        not_local,
                        labels: &node.cfg.labels,
                    };
                    node.strategy.decide(&ctx).await
                }
            }
        }
    };
    tracing::info!(job = %job.id, bid = verdict.bid, reason = %verdict.reason, "bid decision");
    let decision = BidDecision {
        bid: verdict.bid,
        reason: verdict.reason.clone(),
        price: verdict.price,
        at: now_secs(),
    };
    if !verdict.bid {
        node.db.put_decision(job.id, &decision, None)?;
        Metrics::inc(&node.metrics.decisions_declined);
        return Ok(());
    }
    Metrics::inc(&node.metrics.decisions_bid);
    let bidding = Execution::new(job.id, Role::Worker, Step::Bidding);
    node.db.put_decision(job.id, &decision, Some(&bidding))?;
    send_bid(node, job.id, verdict.price.unwrap_or_default(), true).await
}

/// The first `ipfs://` module or input of `spec` that no one this node knows holds. Content
/// found once stays known (it is immutable), so each CID is located once.
async fn unreachable_data(node: &Node, spec: &JobSpec) -> Option<String> {
    for path in ipfs_sources(spec) {
        let root = path.split('/').next().unwrap_or_default();
        let Ok(cid) = shoal_store::parse_cid(root) else {
            return Some(format!("ipfs://{path} (not a CID)"));
        };
        if node.scheduler.is_located(&cid) {
            continue;
        }
        match node.content.locate(&cid).await {
            Some(_) => node.scheduler.located(cid),
            None => return Some(format!("ipfs://{path}")),
        }
    }
    None
}

/// The `ipfs://CID[/path]` module and inputs of `spec` (without the scheme).
fn ipfs_sources(spec: &JobSpec) -> impl Iterator<Item = &String> {
    let module = match &spec.engine {
        shoal_types::EngineSpec::Wasm(w) => Some(&w.module),
        shoal_types::EngineSpec::Docker(_) => None,
    };
    module
        .into_iter()
        .chain(spec.inputs.iter().map(|i| &i.source))
        .filter_map(|s| match s {
            InputSource::Ipfs(path) => Some(path),
            _ => None,
        })
}

/// Sends this node's bid; `first` when no bid transaction was sent for the job before (so a
/// refusal means this node's bid is certainly not on chain).
pub(crate) async fn send_bid(node: Arc<Node>, id: JobId, price: U256, first: bool) -> Result<()> {
    let sent = node.chain.bid(id, price).await;
    match sent.as_ref().map_err(|e| e.market_revert()) {
        Ok(tx) => {
            Metrics::inc(&node.metrics.bids_sent);
            tracing::info!(job = %id, %tx, "bid placed");
            Ok(())
        }
        // Already on chain (a resend after a restart): nothing to record.
        Err(Some(Revert::JobMarket__AlreadyBid(_))) => Ok(()),
        Err(Some(Revert::JobMarket__WrongState(_) | Revert::JobMarket__BiddingOver(_))) => {
            tracing::info!(job = %id, "bidding is over");
            // Too late for this job: nothing to run, nothing to be paid.
            if first && let Some(exec) = node.db.execution(id)? {
                node.db.put_execution(&Execution {
                    step: Step::Done {
                        reason: "not selected: bidding closed before this node's bid".into(),
                    },
                    claimed: true,
                    updated_at: now_secs(),
                    ..exec
                })?;
            }
            Ok(())
        }
        Err(_) => {
            Metrics::inc(&node.metrics.tx_errors);
            let e = sent.err();
            let decision = BidDecision {
                bid: false,
                reason: format!(
                    "decided to bid but the bid transaction failed: {}",
                    e.as_ref().map(ToString::to_string).unwrap_or_default()
                ),
                price: Some(price),
                at: now_secs(),
            };
            node.db.put_decision(id, &decision, None)?;
            if let Some(exec) = node.db.execution(id)? {
                node.db.put_execution(&Execution {
                    step: Step::Failed {
                        reason: decision.reason.clone(),
                    },
                    updated_at: now_secs(),
                    ..exec
                })?;
            }
            e.map_or(Ok(()), Err)
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::testkit::{Kit, SOLO_DEAL};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_job_for_an_engine_the_node_lacks_is_declined_with_the_reason() {
        let kit = Kit::start(|_| {}).await;
        let id = kit
            .post(&format!(
                "name: d\nengine:\n  docker:\n    image: busybox:latest\n{SOLO_DEAL}"
            ))
            .await;
        let decision = kit
            .wait_for("a decision", |s| s.decision(id).ok().flatten())
            .await;
        assert!(!decision.bid, "{decision:?}");
        assert!(decision.reason.contains("docker"), "{decision:?}");
        assert!(kit.node.state().execution(id).expect("state").is_none());
        kit.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn deals_that_risk_the_collateral_are_declined_with_the_reason() {
        let kit = Kit::start(|c| {
            c.bid.max_collateral_ratio = 2;
            c.bid.min_exec_window_secs = 15;
        })
        .await;
        let rich = SOLO_DEAL.replace(
            "mediation: false",
            "mediation: false\n  max_price: 1000\n  collateral: 5000",
        );
        let short = SOLO_DEAL.replace("exec: 20s", "exec: 10s");
        for (deal, why) in [
            (rich, "bid.max_collateral_ratio"),
            (short, "bid.min_exec_window_secs"),
        ] {
            let id = kit.post_hello(&deal).await;
            let decision = kit
                .wait_for("a decision", |s| s.decision(id).ok().flatten())
                .await;
            assert!(
                !decision.bid && decision.reason.contains(why),
                "{decision:?}"
            );
        }
        kit.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn labels_and_local_data_decide_where_jobs_run() {
        let kit = Kit::start(|c| {
            c.labels.insert("region".into(), "eu".into());
            c.bid.require_reachable_data = false;
            c.bid.require_local_data = true;
        })
        .await;
        let away = SOLO_DEAL.to_owned() + "constraints: [\"region in (us,asia)\"]\n";
        let id = kit.post_hello(&away).await;
        let d = kit
            .wait_for("a decision", |s| s.decision(id).ok().flatten())
            .await;
        assert!(
            !d.bid && d.reason.contains("`region in (us,asia)`"),
            "{d:?}"
        );
        assert!(d.reason.contains("region=eu"), "{d:?}");
        // A module nobody has: not local, so no bid.
        let missing = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku";
        let id = kit
            .post(&format!(
                "name: m\nengine:\n  wasm:\n    module: ipfs://{missing}\nresources:\n  timeout: 10s\n{SOLO_DEAL}constraints: [\"region=eu\"]\n"
            ))
            .await;
        let d = kit
            .wait_for("a decision", |s| s.decision(id).ok().flatten())
            .await;
        assert!(!d.bid && d.reason.contains("require_local_data"), "{d:?}");
        // Its own data and a matching constraint: a bid.
        let home = SOLO_DEAL.to_owned() + "constraints: [\"region=eu\"]\n";
        let id = kit.post_hello(&home).await;
        let d = kit
            .wait_for("a decision", |s| s.decision(id).ok().flatten())
            .await;
        assert!(d.bid, "{d:?}");
        kit.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn jobs_over_the_node_limits_are_declined_naming_the_limit() {
        let kit = Kit::start(|c| {
            c.bid.max_timeout_secs = 5;
            c.bid.allow_network = false;
        })
        .await;
        let hello = |resources: &str| {
            format!(
                "name: big\nengine:\n  wasm:\n    module: inline:x\nresources: {resources}\n{SOLO_DEAL}"
            )
        };
        let docker = format!(
            "name: net\nengine:\n  docker:\n    image: busybox:latest\nnetwork: true\n{SOLO_DEAL}"
        );
        for (spec, why) in [
            (hello("{memory: 64GiB, timeout: 2s}"), "memory"),
            (hello("{timeout: 10s}"), "bid.max_timeout_secs"),
            (docker, "bid.allow_network"),
        ] {
            let id = kit.post(&spec).await;
            let d = kit
                .wait_for("a decision", |s| s.decision(id).ok().flatten())
                .await;
            assert!(!d.bid && d.reason.contains(why), "{why}: {d:?}");
        }
        kit.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_job_it_can_run_is_bid_on_at_the_max_price() {
        let kit = Kit::start(|_| {}).await;
        let id = kit.post_hello(SOLO_DEAL).await;
        let (job, _) = kit
            .wait(id, "this node's bid on chain", |j, _| !j.bids.is_empty())
            .await;
        let decision = kit.node.state().decision(id).expect("state");
        let decision = decision.expect("a decision");
        assert!(decision.bid && decision.price == Some(job.params.max_price));
        assert_eq!(Some(job.bids[0].operator), kit.node.operator());
        kit.stop().await;
    }
}
