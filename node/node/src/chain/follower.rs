//! The chain follower: reads the market's events through `shoal-chain`'s
//! [`EventFollower`] from a cursor persisted with the state store, folds them
//! into job views ([`super::projection`]) and the per-job event history
//! ([`shoal_api::describe`]), rolls back what a reorg voided, and wakes the
//! compute side.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use alloy::eips::BlockId;
use alloy::primitives::B256;
use alloy::providers::Provider;
use alloy::rpc::types::Filter;
use shoal_api::{EventRecord, JobId, JobView, describe};
use shoal_chain::bindings::JobMarket as M;
use shoal_chain::{ChainEvent, Cursor, CursorStore, EventFollower, FollowerConfig, FollowerUpdate};
use tokio_util::sync::CancellationToken;

use super::Chain;
use super::projection::apply;
use crate::error::{Error, Result};
use crate::state::StateStore;

/// Most blocks asked for in one `eth_getLogs`.
const MAX_RANGE: u64 = 2_000;
/// Recent block hashes remembered to find where a reorg forked.
const REMEMBER: usize = 256;

/// The follower's cursor lives in the state store, written in the same transaction as the
/// records it produced; `save` is only used by the follower's own `ack`, which the node does
/// not call.
struct DbCursor(StateStore);

impl CursorStore for DbCursor {
    fn load(&self) -> shoal_chain::Result<Option<Cursor>> {
        self.0
            .follower_cursor()
            .map_err(|e| shoal_chain::Error::File {
                path: self.0.path().to_path_buf(),
                reason: e.to_string(),
            })
    }

    fn save(&self, _cursor: &Cursor) -> shoal_chain::Result<()> {
        Ok(())
    }
}

/// The event as stored in a job's history; `None` for events that are not about one job.
fn job_event(ev: &ChainEvent) -> Option<(JobId, EventRecord)> {
    Some((ev.event.job_id()?, describe(ev)))
}

/// Follows the chain until cancelled. Calls `on_change` after every batch that changed something.
/// Returns an error only when the follower cannot start at all.
pub async fn run(
    chain: Arc<Chain>,
    db: StateStore,
    poll: Duration,
    confirmations: u64,
    cancel: CancellationToken,
    poke: Arc<tokio::sync::Notify>,
    on_change: impl Fn(&[JobId]) + Send + Sync,
) -> Result<()> {
    let config = FollowerConfig {
        confirmations,
        max_range: MAX_RANGE,
        poll_interval: poll,
        remember: REMEMBER,
    };
    let open = || EventFollower::new(chain.client(), DbCursor(db.clone()), config.clone());
    let mut follower = open().map_err(Error::chain("starting the chain follower"))?;
    let mut backoff = poll;
    loop {
        if cancel.is_cancelled() {
            return Ok(());
        }
        let polled_at = tokio::time::Instant::now();
        let wait = match poll_once(&chain, &db, &mut follower).await {
            Ok(Some(Polled { changed, caught_up })) => {
                backoff = poll;
                if !changed.is_empty() {
                    on_change(&changed);
                }
                if !caught_up {
                    continue;
                }
                // At the head: wait for the next poll (or an announcement) rather than read
                // again at once. On a chain that mines a block per transaction there is always
                // a new block, and reading each one as it comes costs every node a handful of
                // RPCs and a database commit per block.
                poll
            }
            Ok(None) => poll,
            Err(e) => {
                tracing::warn!(error = %e, "chain follower: poll failed, retrying");
                // The follower may have moved past a batch that was not stored: start again
                // from the stored cursor.
                match open() {
                    Ok(f) => follower = f,
                    Err(e) => tracing::warn!(error = %e, "chain follower: cannot reopen"),
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
                backoff
            }
        };
        let poked = tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            _ = poke.notified() => true,
            _ = tokio::time::sleep(wait) => false,
        };
        if poked {
            // An announcement: read sooner than the next poll, but at most twice per poll
            // interval. On a busy market announcements come faster than blocks are worth
            // reading; each read costs every node a handful of RPCs and a database commit.
            tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                _ = tokio::time::sleep_until(polled_at + poll / 2) => {}
            }
        }
    }
}

/// What one step of the follower read.
pub(crate) struct Polled {
    /// The jobs that changed.
    pub(crate) changed: Vec<JobId>,
    /// Whether the follower reached the newest confirmed block.
    pub(crate) caught_up: bool,
}

/// One step of the follower: `None` when there was no new block.
pub(crate) async fn poll_once(
    chain: &Chain,
    db: &StateStore,
    follower: &mut EventFollower,
) -> Result<Option<Polled>> {
    let Some(update) = follower
        .poll()
        .await
        .map_err(Error::chain("reading the market's events"))?
    else {
        return Ok(None);
    };
    let cursor = update.cursor().clone();
    match update {
        FollowerUpdate::Events(batch) => Ok(Some(Polled {
            changed: store_events(db, &batch.events, &cursor)?,
            caught_up: batch.caught_up,
        })),
        FollowerUpdate::Reorg { to_block, .. } => Ok(Some(Polled {
            changed: roll_back(chain, db, to_block, &cursor).await?,
            caught_up: false,
        })),
    }
}

/// Folds a batch of events into the jobs they belong to and stores both with the new cursor;
/// the jobs that changed.
fn store_events(db: &StateStore, events: &[ChainEvent], cursor: &Cursor) -> Result<Vec<JobId>> {
    let mut jobs: BTreeMap<JobId, JobView> = BTreeMap::new();
    let mut records = Vec::new();
    for ev in events {
        let Some((id, record)) = job_event(ev) else {
            continue;
        };
        if let std::collections::btree_map::Entry::Vacant(slot) = jobs.entry(id)
            && let Some(existing) = db.job(id)?
        {
            slot.insert(existing);
        }
        apply(&mut jobs, id, ev);
        records.push((id, record));
    }
    // Every state change of the market emits an event (`PhaseStarted` with its deadline, or a
    // final `JobVerified`/`JobFailed`/`JobExpired`), so the records follow from the events
    // alone.
    let jobs: Vec<JobView> = jobs.into_values().collect();
    db.apply(&jobs, &records, cursor)?;
    Ok(jobs.iter().map(|j| j.id).collect())
}

/// The contract's view at block `at` of the state and the phase deadline (after a reorg, the
/// rebuilt records take the state of the fork block).
async fn refresh_from_contract(chain: &Chain, jobs: &mut BTreeMap<JobId, JobView>, at: u64) {
    let market = M::new(
        chain.deployment.job_market,
        chain.client().provider().clone(),
    );
    let reads = jobs.keys().map(|id| {
        let call = market.getJob(id.as_u256());
        async move { call.call().block(BlockId::number(at)).await.ok() }
    });
    let onchain = futures::future::join_all(reads).await;
    for (job, onchain) in jobs.values_mut().zip(onchain) {
        if let Some(onchain) = onchain {
            job.state = onchain.state;
            job.phase_deadline = onchain.phaseDeadline;
            job.bid_deadline = onchain.bidDeadline;
        }
    }
}

/// Voids what the follower delivered above `to_block`: every job with an event up there is
/// rebuilt from the chain's logs up to `to_block` (or forgotten when it was posted above it).
/// Returns the rebuilt jobs.
async fn roll_back(
    chain: &Chain,
    db: &StateStore,
    to_block: u64,
    cursor: &Cursor,
) -> Result<Vec<JobId>> {
    let touched = db.jobs_with_events_after(to_block)?;
    let mut rebuilt = Vec::new();
    let mut forgotten = Vec::new();
    for id in touched {
        let posted = db.job(id)?.map(|j| j.posted_block).unwrap_or(u64::MAX);
        if posted > to_block {
            forgotten.push(id);
            continue;
        }
        let filter = Filter::new()
            .address(chain.deployment.job_market)
            .topic1(B256::from(id.as_u256()))
            .from_block(posted)
            .to_block(to_block);
        let logs = chain
            .client()
            .provider()
            .get_logs(&filter)
            .await
            .map_err(|e| Error::Chain {
                what: "re-reading a job's events after a reorg",
                source: Box::new(shoal_chain::Error::Rpc {
                    method: "eth_getLogs",
                    source: e,
                }),
            })?;
        let mut jobs = BTreeMap::new();
        let mut records = Vec::new();
        for log in &logs {
            let Some(Ok(ev)) = ChainEvent::from_rpc_log(
                log,
                chain.deployment.job_market,
                chain.deployment.operator_registry,
            ) else {
                continue;
            };
            if let Some((eid, record)) = job_event(&ev)
                && eid == id
            {
                apply(&mut jobs, id, &ev);
                records.push(record);
            }
        }
        refresh_from_contract(chain, &mut jobs, to_block).await;
        match jobs.remove(&id) {
            Some(job) => rebuilt.push((job, records)),
            None => forgotten.push(id),
        }
    }
    tracing::warn!(
        to_block,
        rebuilt = rebuilt.len(),
        forgotten = forgotten.len(),
        "chain reorganised: job records rolled back"
    );
    db.roll_back(&rebuilt, &forgotten, cursor)?;
    Ok(rebuilt.iter().map(|(j, _)| j.id).collect())
}

#[cfg(test)]
mod tests {
    use shoal_chain::JobState;

    use crate::testkit::{Kit, SOLO_DEAL};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_posted_job_becomes_a_view_with_its_history() {
        let kit = Kit::start(|c| c.bid.enabled = false).await;
        let id = kit.post_hello(SOLO_DEAL).await;
        let (job, exec) = kit
            .wait(id, "the posted job", |j, _| j.state == JobState::Posted)
            .await;
        assert_eq!((job.params.concurrency, job.params.min_bids), (1, 1));
        assert!(exec.is_none(), "a node that does not bid has no execution");
        let events = kit.node.state().events(id).expect("events");
        assert_eq!(events.len(), 1, "{events:#?}");
        assert_eq!(events[0].event, "JobPosted");
        assert!(events[0].summary.starts_with("posted by"), "{events:#?}");
        assert!(kit.node.state().cursor().expect("cursor").is_some());
        kit.stop().await;
    }
}
