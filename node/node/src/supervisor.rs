//! Named tasks under one supervisor. A *critical* task (the chain follower, the compute loop,
//! the HTTP API, the swarm's announcement listener) must run as long as the node does: when
//! one ends — returns, fails or panics — while the node was not asked to stop, the supervisor
//! records which one and why and stops the whole node, so that `shoal serve` exits non-zero
//! instead of running on half-dead. Other tasks (one per action on a job) are tracked so a
//! shutdown waits for them.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::task::AbortHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::error::{Error, Result};

/// Spawns and watches the node's tasks. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Supervisor {
    cancel: CancellationToken,
    tracker: TaskTracker,
    critical: Arc<Mutex<BTreeMap<&'static str, AbortHandle>>>,
    failure: Arc<Mutex<Option<(&'static str, String)>>>,
}

impl Supervisor {
    /// A supervisor stopping everything through `cancel`.
    pub fn new(cancel: CancellationToken) -> Self {
        Self {
            cancel,
            ..Self::default()
        }
    }

    /// The token every task stops on.
    pub fn token(&self) -> &CancellationToken {
        &self.cancel
    }

    /// Runs `fut` as the critical task `name`: its end stops the node.
    pub fn spawn_critical<F>(&self, name: &'static str, fut: F)
    where
        F: Future<Output = Result<()>> + Send + 'static,
    {
        let handle = self.tracker.spawn(fut);
        self.lock_critical().insert(name, handle.abort_handle());
        let me = self.clone();
        self.tracker.spawn(async move {
            let how = match handle.await {
                Ok(Ok(())) => "ended".to_owned(),
                Ok(Err(e)) => format!("failed: {e}"),
                Err(e) if e.is_panic() => "panicked".to_owned(),
                Err(_) => "was aborted".to_owned(),
            };
            me.lock_critical().remove(name);
            if me.cancel.is_cancelled() {
                return;
            }
            tracing::error!(task = name, "critical task {how}; stopping the node");
            me.failure
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get_or_insert((name, how));
            me.cancel.cancel();
        });
    }

    /// Runs `fut` until the node stops; a shutdown waits for it.
    pub fn spawn<F>(&self, fut: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let cancel = self.cancel.clone();
        self.tracker.spawn(async move {
            tokio::select! {
                _ = cancel.cancelled() => {}
                () = fut => {}
            }
        });
    }

    /// The critical tasks that run, by name.
    pub fn running(&self) -> Vec<&'static str> {
        self.lock_critical().keys().copied().collect()
    }

    /// Aborts the critical task `name` (as a crash of that task would end it); whether it ran.
    pub fn abort(&self, name: &str) -> bool {
        match self.lock_critical().get(name) {
            Some(h) => {
                h.abort();
                true
            }
            None => false,
        }
    }

    /// Asks every task to stop and waits for them.
    pub async fn shutdown(&self) {
        self.cancel.cancel();
        self.stopped().await;
    }

    /// Waits until every task ended; the error names the critical task that stopped the node.
    pub async fn stopped(&self) {
        self.cancel.cancelled().await;
        self.tracker.close();
        self.tracker.wait().await;
    }

    /// Why the node stopped by itself, if it did.
    pub fn failure(&self) -> Option<Error> {
        self.failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .map(|(task, how)| Error::TaskDied { task, how })
    }

    fn lock_critical(&self) -> std::sync::MutexGuard<'_, BTreeMap<&'static str, AbortHandle>> {
        self.critical.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_dead_critical_task_stops_everything() {
        let sup = Supervisor::new(CancellationToken::new());
        let token = sup.token().clone();
        sup.spawn_critical("waiter", async move {
            token.cancelled().await;
            Ok(())
        });
        sup.spawn_critical("sleeper", async {
            tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
            Ok(())
        });
        assert_eq!(sup.running(), vec!["sleeper", "waiter"]);
        assert!(sup.abort("sleeper") && !sup.abort("nobody"));
        sup.stopped().await;
        let err = sup.failure().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("sleeper task was aborted"), "{err}");
    }

    #[tokio::test]
    async fn a_requested_shutdown_is_not_a_failure() {
        let sup = Supervisor::new(CancellationToken::new());
        let token = sup.token().clone();
        sup.spawn_critical("waiter", async move {
            token.cancelled().await;
            Ok(())
        });
        sup.shutdown().await;
        assert!(sup.failure().is_none());
    }
}
