//! What the compute loop looks at and what it is doing: the active jobs, the ones that changed
//! since the last look, one action of each kind per job at a time, and a backoff after a
//! failed action.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use cid::Cid;
use shoal_api::JobId;
use shoal_chain::bindings::JobMarket::JobMarketErrors as Revert;
use tokio::sync::{Notify, Semaphore};

use crate::error::Result;
use crate::node::Node;

/// How long a failed action waits before it is tried again.
const RETRY_AFTER: Duration = Duration::from_secs(1);
/// Most CIDs remembered as reachable.
const MAX_LOCATED: usize = 10_000;

/// What the compute loop may be doing for a job; one of each at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Action {
    /// Deciding and bidding (one key, so a bid is never sent twice at once).
    Bid,
    Close,
    Execute,
    Commit,
    Reveal,
    Finalize,
    Publish,
    Claim,
    /// A watcher's re-run of an optimistic job.
    Watch,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The compute loop's bookkeeping (in memory; the jobs' progress itself is in the state store).
pub(crate) struct Scheduler {
    wake: Notify,
    /// Jobs still looked at: not final, or with this node's execution not yet closed and
    /// claimed.
    active: Mutex<BTreeSet<JobId>>,
    /// Active jobs that changed since the compute loop last looked.
    dirty: Mutex<BTreeSet<JobId>>,
    inflight: Mutex<HashSet<(JobId, Action)>>,
    /// Actions that failed are not retried before this instant.
    backoff: Mutex<HashMap<(JobId, Action), Instant>>,
    last_claim: Mutex<Option<Instant>>,
    /// CIDs seen reachable (here, on the swarm or at a peer) when deciding on bids.
    located: Mutex<HashSet<Cid>>,
    /// Executions running at once.
    pub(crate) exec_slots: Semaphore,
}

impl Scheduler {
    pub(crate) fn new(max_parallel: usize) -> Self {
        Self {
            wake: Notify::new(),
            active: Mutex::default(),
            dirty: Mutex::default(),
            inflight: Mutex::default(),
            backoff: Mutex::default(),
            last_claim: Mutex::default(),
            located: Mutex::default(),
            exec_slots: Semaphore::new(max_parallel),
        }
    }

    /// Makes jobs active (looked at on every full pass).
    pub(crate) fn activate(&self, ids: impl IntoIterator<Item = JobId>) {
        lock(&self.active).extend(ids);
    }

    /// Jobs the follower changed: active, and looked at at once.
    pub(crate) fn changed(&self, ids: &[JobId]) {
        self.activate(ids.iter().copied());
        lock(&self.dirty).extend(ids.iter().copied());
        self.wake.notify_one();
    }

    /// Marks a job for the compute loop's next look and wakes it.
    pub(crate) fn touch(&self, id: JobId) {
        lock(&self.dirty).insert(id);
        self.wake.notify_one();
    }

    /// Drops a job from the compute loop's view.
    pub(crate) fn forget(&self, id: JobId) {
        lock(&self.active).remove(&id);
    }

    /// Every active job.
    pub(crate) fn active(&self) -> Vec<JobId> {
        lock(&self.active).iter().copied().collect()
    }

    /// The jobs that changed since the last call.
    pub(crate) fn take_dirty(&self) -> Vec<JobId> {
        std::mem::take(&mut *lock(&self.dirty))
            .into_iter()
            .collect()
    }

    /// Waits until something changed.
    pub(crate) async fn woken(&self) {
        self.wake.notified().await;
    }

    pub(crate) fn is_running(&self, job: JobId, action: Action) -> bool {
        lock(&self.inflight).contains(&(job, action))
    }

    /// Whether the last claim was less than `every` ago.
    pub(crate) fn claimed_within(&self, every: Duration) -> bool {
        lock(&self.last_claim).is_some_and(|t| t.elapsed() < every)
    }

    pub(crate) fn claimed_now(&self) {
        *lock(&self.last_claim) = Some(Instant::now());
    }

    pub(crate) fn is_located(&self, cid: &Cid) -> bool {
        lock(&self.located).contains(cid)
    }

    /// Remembers that `cid` is reachable (content is immutable: once found, it stays known).
    pub(crate) fn located(&self, cid: Cid) {
        let mut located = lock(&self.located);
        if located.len() >= MAX_LOCATED {
            located.clear();
        }
        located.insert(cid);
    }

    /// Marks `(job, action)` as running unless it already runs or backs off after a failure.
    fn try_start(&self, job: JobId, action: Action) -> bool {
        if lock(&self.backoff)
            .get(&(job, action))
            .is_some_and(|t| Instant::now() < *t)
        {
            return false;
        }
        lock(&self.inflight).insert((job, action))
    }

    fn finish(&self, job: JobId, action: Action, result: Result<()>) {
        {
            let mut backoff = lock(&self.backoff);
            match result {
                Ok(()) => {
                    backoff.remove(&(job, action));
                }
                Err(e) => {
                    let keeper = matches!(action, Action::Close | Action::Finalize);
                    if keeper && matches!(e.market_revert(), Some(Revert::JobMarket__WrongState(_)))
                    {
                        // A call anyone may send, and another node sent it first (or this
                        // node's view of the chain lags): the follower brings the new state.
                        tracing::debug!(job = %job, ?action, error = %e, "the job moved on; looking again later");
                    } else {
                        tracing::warn!(job = %job, ?action, error = %e, "action failed; retrying later");
                    }
                    backoff.insert((job, action), Instant::now() + RETRY_AFTER);
                }
            }
        }
        lock(&self.inflight).remove(&(job, action));
        self.touch(job);
    }
}

/// Starts `fut` for `(job, action)` unless it already runs (or failed less than
/// [`RETRY_AFTER`] ago); the job is looked at again when it ends.
pub(crate) fn spawn_action<F>(node: &Arc<Node>, job: JobId, action: Action, fut: F)
where
    F: Future<Output = Result<()>> + Send + 'static,
{
    if !node.scheduler.try_start(job, action) {
        return;
    }
    let n = node.clone();
    let cancel = node.tasks.token().clone();
    node.tasks.spawn(async move {
        tokio::select! {
            // Stopped: nothing is recorded, the persisted step is taken up after a restart.
            _ = cancel.cancelled() => {}
            r = fut => n.scheduler.finish(job, action, r),
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_action_runs_once_and_backs_off_after_a_failure() {
        let s = Scheduler::new(1);
        let job = JobId::from(1u64);
        assert!(s.try_start(job, Action::Bid));
        assert!(!s.try_start(job, Action::Bid), "already running");
        assert!(s.try_start(job, Action::Close), "another action of the job");
        s.finish(
            job,
            Action::Bid,
            Err(crate::Error::Config("test failure".into())),
        );
        assert!(!s.is_running(job, Action::Bid));
        assert!(!s.try_start(job, Action::Bid), "backing off");
        assert_eq!(s.take_dirty(), vec![job]);
        assert!(s.take_dirty().is_empty());
    }
}
