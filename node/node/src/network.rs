//! The node on the libp2p swarm (`shoal-p2p`, docs/p2p.md): its identity and
//! private-network key from the config, job announcements in and out, and a
//! job's live status and logs served from the state store.

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use shoal_p2p::{
    ExecutionStatus, JobAnnouncement, JobLogs, NetworkId, P2p, StatusResponse, StatusSource,
};
use shoal_store::Blockstore;

use shoal_api::{JobId, JobView, Step};

use crate::config::NodeConfig;
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::node::Node;
use crate::state::StateStore;

fn p2p_err(e: shoal_p2p::Error) -> Error {
    Error::P2p(e.to_string())
}

/// Starts the swarm when `p2p.enabled`: key from `p2p.key_file` (created on first start),
/// the market's announcement topic, and status answered from `db`.
pub(crate) async fn start(
    cfg: &NodeConfig,
    chain_id: u64,
    market: alloy::primitives::Address,
    db: StateStore,
    store: Arc<Blockstore>,
) -> Result<Option<P2p>> {
    let p = &cfg.p2p;
    if !p.enabled {
        return Ok(None);
    }
    let (listen, bootstrap) = p.addrs()?;
    let under_data = |f: &Path| {
        if f.is_absolute() {
            f.to_path_buf()
        } else {
            cfg.data_dir.join(f)
        }
    };
    let keypair = shoal_p2p::load_or_create_keypair(under_data(&p.key_file)).map_err(p2p_err)?;
    let psk = match &p.psk_file {
        Some(f) => Some(shoal_p2p::load_psk(under_data(f)).map_err(p2p_err)?),
        None => None,
    };
    let config = shoal_p2p::Config {
        listen,
        bootstrap,
        keypair: Some(keypair),
        psk,
        network: Some(NetworkId {
            chain_id,
            market: market.to_string(),
        }),
        status: Some(Arc::new(DbStatus { db })),
        ..shoal_p2p::Config::default()
    };
    let p2p = shoal_p2p::start(store, config).await.map_err(|e| {
        Error::P2p(format!(
            "{e} (the [p2p] section of the node config; `shoal serve --no-p2p` runs without the swarm)"
        ))
    })?;
    tracing::info!(peer_id = %p2p.peer_id(), "p2p swarm started");
    Ok(Some(p2p))
}

/// Remembers which jobs were considered for an announcement, so each is looked at once.
#[derive(Debug, Default)]
pub(crate) struct Announcer {
    seen: Mutex<HashSet<JobId>>,
}

impl Announcer {
    /// Whether `job` is seen for the first time.
    pub(crate) fn first_time(&self, job: JobId) -> bool {
        self.seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(job)
    }
}

/// Announces a posted job on the market's topic, so operators hear of it before their next
/// chain poll; whether it went out.
pub(crate) async fn announce(p2p: &P2p, network: (u64, String), job: &JobView) -> bool {
    let a = JobAnnouncement {
        chain_id: network.0,
        market: network.1,
        job_id: job.id.to_string(),
        spec_cid: job.params.spec_cid.clone(),
        block: job.posted_block,
    };
    match p2p.announce_job(a).await {
        Ok(()) => {
            tracing::debug!(job = %job.id, "job announced on the swarm");
            true
        }
        Err(e) => {
            tracing::warn!(job = %job.id, error = %e, "cannot announce the job on the swarm");
            false
        }
    }
}

/// A job's status as the state store has it; logs only once the job has ended (they stay
/// private until then, as on the HTTP API).
struct DbStatus {
    db: StateStore,
}

#[async_trait]
impl StatusSource for DbStatus {
    async fn status(&self, job_id: &str, logs: bool) -> StatusResponse {
        let Ok(id) = job_id.parse::<JobId>() else {
            return StatusResponse::not_found(job_id);
        };
        let Ok(Some(job)) = self.db.job(id) else {
            return StatusResponse::not_found(job_id);
        };
        let exec = self.db.execution(id).ok().flatten();
        let executions = exec
            .iter()
            .map(|e| ExecutionStatus {
                role: format!("{:?}", e.role).to_lowercase(),
                step: e.step.name().to_owned(),
                result_hash: e
                    .step
                    .result_hash()
                    .filter(|_| job.state.is_final())
                    .map(|h| h.to_string()),
                error: match &e.step {
                    Step::Failed { reason } => Some(reason.clone()),
                    _ => None,
                },
                updated_at: e.updated_at,
            })
            .collect();
        let logs = match exec.and_then(|e| e.results_dir) {
            Some(dir) if logs && job.state.is_final() => {
                let read = |name: &str| {
                    std::fs::read(Path::new(&dir).join(name))
                        .map(|b| String::from_utf8_lossy(&b).into_owned())
                        .unwrap_or_default()
                };
                Some(JobLogs::capped(&read("stdout"), &read("stderr")))
            }
            _ => None,
        };
        StatusResponse {
            job_id: job_id.to_owned(),
            found: true,
            state: Some(job.state.to_string()),
            executions,
            logs,
        }
    }
}

/// The critical task that hears job announcements: each wakes the chain follower (the job is
/// read from the chain, never taken from the message).
pub(crate) fn spawn_listener(node: &Arc<Node>) {
    let Some(p2p) = node.p2p.clone() else {
        return;
    };
    let n = node.clone();
    node.tasks.spawn_critical("announcements", async move {
        let mut rx = p2p.job_announcements();
        let cancel = n.tasks.token().clone();
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                got = rx.recv() => match got {
                    Ok((peer, a)) => {
                        Metrics::inc(&n.metrics.announcements_received);
                        tracing::debug!(%peer, job = %a.job_id, "job announced on the swarm");
                        // Announced already: this node need not announce it too.
                        if let Ok(id) = a.job_id.parse::<JobId>() {
                            n.announcer.first_time(id);
                        }
                        n.poke.notify_one();
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::debug!(missed, "job announcements lagged");
                        n.poke.notify_one();
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                        return Err(Error::P2p("the swarm stopped delivering job announcements".into()));
                    }
                },
            }
        }
        p2p.shutdown().await;
        Ok(())
    });
}
