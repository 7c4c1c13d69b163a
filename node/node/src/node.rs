//! The running node: wires the state store, chain follower, compute loop,
//! content and HTTP API together, and drives every job this node touches
//! from its persisted state (so a restart picks up where it stopped).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long a failed action waits before it is tried again.
const RETRY_AFTER: Duration = Duration::from_secs(1);
/// How often the compute loop looks at every active job (deadlines, retries after backoff).
const FULL_PASS: Duration = Duration::from_secs(1);
/// Least time between two payout claims of one node.
const CLAIM_EVERY: Duration = Duration::from_secs(2);

use alloy::primitives::{Address, B256, keccak256};
use cid::Cid;
use shoal_executor::{
    DockerConfig, DockerExecutor, DockerSpec, EngineSpec, ExecutionId, ExecutionRequest,
    ExecutorRegistry, InputMount, Limits, OutputVolume, WasmConfig, WasmExecutor, WasmModule,
    WasmSpec,
};
use shoal_types::{InputSource, JobSpec};
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::chain::{Chain, commitment};
use crate::config::{Fault, NodeConfig};
use crate::content::Content;
use crate::db::StateStore;
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::model::{BidDecision, Execution, JobId, JobRecord, JobState, Role, Step, now_secs};
use crate::results::result_hash_of;
use crate::strategy::{BidContext, BidStrategy, PolicyStrategy, Verdict};

/// What the compute loop may be doing for a job; one of each at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Action {
    /// Deciding and bidding (one key, so a bid is never sent twice at once).
    Bid,
    Close,
    Execute,
    Commit,
    Reveal,
    Finalize,
    Publish,
    Claim,
}

/// Shared state of a running node.
pub struct NodeInner {
    pub cfg: NodeConfig,
    pub db: StateStore,
    pub chain: Arc<Chain>,
    pub content: Content,
    pub executors: ExecutorRegistry,
    pub strategy: Arc<dyn BidStrategy>,
    pub metrics: Metrics,
    pub api_url: OnceLock<String>,
    pub http: reqwest::Client,
    /// The libp2p swarm, when `p2p.enabled`.
    pub p2p: Option<shoal_p2p::P2p>,
    announcer: crate::network::Announcer,
    wake: Notify,
    /// Jobs the compute loop still looks at: not final, or with this node's execution not
    /// yet closed and claimed.
    active: Mutex<BTreeSet<JobId>>,
    /// Active jobs that changed since the compute loop last looked.
    dirty: Mutex<BTreeSet<JobId>>,
    last_claim: Mutex<Option<Instant>>,
    /// CIDs seen reachable (here, on the swarm or at a peer) when deciding on bids.
    located: Mutex<HashSet<Cid>>,
    /// Makes the chain follower read now (a job announcement arrived).
    poke: Arc<Notify>,
    inflight: Mutex<HashSet<(JobId, Action)>>,
    /// Actions that failed are not retried before this instant.
    backoff: Mutex<HashMap<(JobId, Action), Instant>>,
    exec_slots: Semaphore,
    cancel: CancellationToken,
    tracker: TaskTracker,
    results_root: PathBuf,
    work_root: PathBuf,
}

impl NodeInner {
    /// Marks a job for the compute loop's next look and wakes it.
    fn touch(&self, id: JobId) {
        self.dirty
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id);
        self.wake.notify_one();
    }

    /// Drops a job from the compute loop's view.
    fn forget(&self, id: JobId) {
        self.active
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
    }
}

impl std::fmt::Debug for NodeInner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeInner")
            .field("operator", &self.chain.operator)
            .field("api_url", &self.api_url)
            .finish()
    }
}

/// A running node. Dropping it does not stop it; call [`NodeHandle::shutdown`].
#[derive(Debug, Clone)]
pub struct NodeHandle {
    inner: Arc<NodeInner>,
    addr: SocketAddr,
}

impl NodeHandle {
    /// The API base URL, e.g. `http://127.0.0.1:7474`.
    pub fn api_url(&self) -> String {
        self.inner
            .api_url
            .get()
            .cloned()
            .unwrap_or_else(|| format!("http://{}", self.addr))
    }

    /// The address the API listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The operator address (`None` for a node without a key).
    pub fn operator(&self) -> Option<Address> {
        self.inner.chain.operator
    }

    /// The node's state store (read it, do not write it).
    pub fn state(&self) -> &StateStore {
        &self.inner.db
    }

    /// The node's shared state.
    pub fn inner(&self) -> &Arc<NodeInner> {
        &self.inner
    }

    /// Whether the node stopped (shut down, or a fault stopped it).
    pub fn is_stopped(&self) -> bool {
        self.inner.cancel.is_cancelled()
    }

    /// Stops every task (in-flight transactions and executions are dropped,
    /// as in a crash; persisted state is kept) and waits for them to end.
    pub async fn shutdown(&self) {
        self.inner.cancel.cancel();
        self.inner.tracker.close();
        self.inner.tracker.wait().await;
    }

    /// Waits until the node stopped by itself or by [`NodeHandle::shutdown`].
    pub async fn stopped(&self) {
        self.inner.cancel.cancelled().await;
        self.inner.tracker.close();
        self.inner.tracker.wait().await;
    }
}

/// Starts a node: opens its state, connects to the chain, serves the API and
/// follows and acts on the market until shut down.
pub async fn start(cfg: NodeConfig) -> Result<NodeHandle> {
    cfg.validate()?;
    let deployment = cfg.resolve_deployment()?;
    let signer = cfg.operator.signer()?;
    std::fs::create_dir_all(&cfg.data_dir)
        .map_err(|e| Error::io("creating the data dir", &cfg.data_dir, e))?;
    let results_root = cfg.data_dir.join("results");
    let work_root = cfg.data_dir.join("work");
    for dir in [&results_root, &work_root] {
        std::fs::create_dir_all(dir).map_err(|e| Error::io("creating", dir, e))?;
    }
    shoal_executor::remove_stale_staging(&results_root)?;
    let db = StateStore::open(&cfg.data_dir.join("state.redb"))?;
    let mut content = Content::open(&cfg.data_dir.join("blocks"), cfg.peers.clone())?;

    let mut executors = ExecutorRegistry::new();
    if cfg.executor.wasm {
        executors.register(Arc::new(WasmExecutor::new(WasmConfig::new(&results_root))?));
    }
    if cfg.executor.docker {
        match DockerExecutor::connect(DockerConfig::new(&results_root)).await {
            Ok(d) => {
                executors.register(Arc::new(d));
            }
            Err(e) => {
                tracing::warn!(error = %e, "the docker executor is configured but unavailable")
            }
        }
    }
    let chain = Arc::new(
        Chain::connect(
            &cfg.chain.rpc_url,
            deployment,
            signer,
            cfg.chain.poll_interval(),
        )
        .await?,
    );
    let p2p = crate::network::start(
        &cfg,
        chain.chain_id,
        chain.deployment.job_market,
        db.clone(),
        content.store.clone(),
    )
    .await?;
    if let Some(p) = &p2p {
        content = content.with_p2p(p.clone(), Duration::from_secs(cfg.p2p.fetch_timeout_secs));
        // Provider records live in memory: announce what this node already holds.
        let c = content.clone();
        tokio::spawn(async move {
            let pins = c.store.pins().unwrap_or_default();
            let n = pins.len();
            for cid in pins {
                c.announce(&cid).await;
            }
            tracing::debug!(roots = n, "held content announced on the swarm");
        });
    }
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| Error::Http(e.to_string()))?;
    let strategy: Arc<dyn BidStrategy> = Arc::new(PolicyStrategy {
        policy: cfg.bid.clone(),
        executors: executors.clone(),
        http: http.clone(),
    });
    let listener = tokio::net::TcpListener::bind(cfg.api.listen)
        .await
        .map_err(|e| Error::Http(format!("cannot listen on {}: {e}", cfg.api.listen)))?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::Http(e.to_string()))?;

    let inner = Arc::new(NodeInner {
        exec_slots: Semaphore::new(cfg.executor.max_parallel),
        cfg,
        db,
        chain,
        content,
        executors,
        strategy,
        metrics: Metrics::default(),
        api_url: OnceLock::new(),
        http,
        p2p,
        announcer: crate::network::Announcer::default(),
        wake: Notify::new(),
        active: Mutex::new(BTreeSet::new()),
        dirty: Mutex::new(BTreeSet::new()),
        last_claim: Mutex::new(None),
        located: Mutex::new(HashSet::new()),
        poke: Arc::new(Notify::new()),
        inflight: Mutex::new(HashSet::new()),
        backoff: Mutex::new(HashMap::new()),
        cancel: CancellationToken::new(),
        tracker: TaskTracker::new(),
        results_root,
        work_root,
    });
    // Every known job is looked at once; the first pass forgets the ones that are done.
    inner
        .active
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .extend(inner.db.jobs()?.iter().map(|j| j.id));
    let url = inner
        .cfg
        .api
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{addr}"));
    let _ = inner.api_url.set(url.trim_end_matches('/').to_owned());

    let api = crate::api::router(inner.clone());
    let cancel = inner.cancel.clone();
    inner.tracker.spawn(async move {
        let serve = axum::serve(
            listener,
            api.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move { cancel.cancelled().await });
        if let Err(e) = serve.await {
            tracing::error!(error = %e, "HTTP API stopped");
        }
    });

    let f = inner.clone();
    inner.tracker.spawn(async move {
        let wake = f.clone();
        crate::follower::run(
            f.chain.clone(),
            f.db.clone(),
            f.cfg.chain.poll_interval(),
            f.cfg.chain.confirmations,
            f.cancel.clone(),
            f.poke.clone(),
            move |changed: &[JobId]| {
                wake.active
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .extend(changed.iter().copied());
                for id in changed {
                    wake.touch(*id);
                }
            },
        )
        .await;
    });

    if let Some(p2p) = inner.p2p.clone() {
        let i = inner.clone();
        inner.tracker.spawn(async move {
            let mut rx = p2p.job_announcements();
            loop {
                tokio::select! {
                    _ = i.cancel.cancelled() => break,
                    got = rx.recv() => match got {
                        Ok((peer, a)) => {
                            Metrics::inc(&i.metrics.announcements_received);
                            tracing::debug!(%peer, job = %a.job_id, "job announced on the swarm");
                            // Announced already: this node need not announce it too.
                            if let Ok(id) = a.job_id.parse::<u64>() {
                                i.announcer.first_time(JobId(id));
                            }
                            i.poke.notify_one();
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                            tracing::debug!(missed = n, "job announcements lagged");
                            i.poke.notify_one();
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                    },
                }
            }
            p2p.shutdown().await;
        });
    }

    let r = inner.clone();
    inner.tracker.spawn(async move { compute_loop(r).await });
    tracing::info!(api = %inner.api_url.get().map_or("", |s| s.as_str()), operator = ?inner.chain.operator, "node started");
    Ok(NodeHandle { inner, addr })
}

/// Looks at the jobs that changed (new events, a finished action) as soon as they change, and
/// at every active job once per [`FULL_PASS`] (deadlines pass without an event).
async fn compute_loop(inner: Arc<NodeInner>) {
    let full_every = FULL_PASS.max(inner.cfg.chain.poll_interval());
    let mut last_full: Option<Instant> = None;
    loop {
        let full = last_full.is_none_or(|t| t.elapsed() >= full_every);
        let dirty = std::mem::take(&mut *inner.dirty.lock().unwrap_or_else(|p| p.into_inner()));
        let ids: Vec<JobId> = if full {
            last_full = Some(Instant::now());
            inner
                .active
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .copied()
                .collect()
        } else {
            dirty.into_iter().collect()
        };
        if let Err(e) = reconcile(&inner, ids) {
            tracing::warn!(error = %e, "compute: cannot read the state store");
        }
        let next_full = full_every.saturating_sub(last_full.map_or(full_every, |t| t.elapsed()));
        tokio::select! {
            _ = inner.cancel.cancelled() => return,
            _ = inner.wake.notified() => {}
            _ = tokio::time::sleep(next_full) => {}
        }
    }
}

/// Starts `fut` for `(job, action)` unless it already runs.
fn spawn_action<F>(inner: &Arc<NodeInner>, job: JobId, action: Action, fut: F)
where
    F: std::future::Future<Output = Result<()>> + Send + 'static,
{
    {
        let backoff = inner.backoff.lock().unwrap_or_else(|p| p.into_inner());
        if backoff
            .get(&(job, action))
            .is_some_and(|t| Instant::now() < *t)
        {
            return;
        }
    }
    {
        let mut set = inner.inflight.lock().unwrap_or_else(|p| p.into_inner());
        if !set.insert((job, action)) {
            return;
        }
    }
    let me = inner.clone();
    let cancel = inner.cancel.clone();
    inner.tracker.spawn(async move {
        tokio::select! {
            _ = cancel.cancelled() => {}
            r = fut => {
                let mut backoff = me.backoff.lock().unwrap_or_else(|p| p.into_inner());
                match r {
                    Ok(()) => {
                        backoff.remove(&(job, action));
                    }
                    Err(e) => {
                        tracing::warn!(job = %job, ?action, error = %e, "action failed; retrying later");
                        backoff.insert((job, action), Instant::now() + RETRY_AFTER);
                    }
                }
            }
        }
        me.inflight.lock().unwrap_or_else(|p| p.into_inner()).remove(&(job, action));
        me.touch(job);
    });
}

/// Looks at the given active jobs and starts what is due; forgets the ones that are done.
fn reconcile(inner: &Arc<NodeInner>, ids: Vec<JobId>) -> Result<()> {
    let me = inner.chain.operator;
    let now = now_secs();
    for id in ids {
        let Some(job) = inner.db.job(id)? else {
            inner.forget(id);
            continue;
        };
        let exec = inner.db.execution(job.id)?;
        if job.state.is_final()
            && exec
                .as_ref()
                .is_none_or(|e| e.step.is_terminal() && e.claimed)
        {
            inner.forget(id);
            continue;
        }
        if !job.state.is_final() {
            announce(inner, &job);
        }
        let Some(me) = me else { continue };
        let id = job.id;
        let deal = job.deal_of(me).cloned();
        match job.state {
            JobState::Posted => {
                if now <= job.bid_deadline {
                    let decided = inner.db.decision(id)?;
                    if decided.is_none() && inner.cfg.bid.enabled {
                        let (i, j) = (inner.clone(), job.clone());
                        spawn_action(inner, id, Action::Bid, async move { decide(i, j).await });
                    } else if exec
                        .as_ref()
                        .is_some_and(|e| e.step == Step::Bidding && now > e.updated_at + 2)
                        && !job.bids.iter().any(|b| b.operator == me)
                        && let Some(price) = decided
                            .and_then(|d| d.price)
                            .and_then(|p| p.parse::<u128>().ok())
                    {
                        let i = inner.clone();
                        spawn_action(inner, id, Action::Bid, async move {
                            send_bid(i, id, price, false).await
                        });
                    }
                } else {
                    let i = inner.clone();
                    spawn_action(inner, id, Action::Close, async move {
                        i.chain.close_bidding(id).await.map(|_| ())
                    });
                }
            }
            JobState::Running | JobState::Disputed => {
                let mine = deal
                    .as_ref()
                    .is_some_and(|d| d.mediator == (job.state == JobState::Disputed));
                if mine {
                    drive_execution(inner, &job, exec.as_ref(), me);
                }
                due_finalize(inner, &job, now);
            }
            JobState::Revealing | JobState::DisputeRevealing => {
                if let Some(Execution {
                    step: Step::Committed { .. },
                    ..
                }) = &exec
                    && deal.as_ref().is_some_and(|d| d.result_hash.is_none())
                {
                    let (i, e) = (inner.clone(), exec.clone());
                    spawn_action(inner, id, Action::Reveal, async move {
                        match e {
                            Some(e) => reveal(i, e).await,
                            None => Ok(()),
                        }
                    });
                }
                due_finalize(inner, &job, now);
            }
            JobState::Challengeable => due_finalize(inner, &job, now),
            JobState::Verified | JobState::Failed | JobState::Expired => {
                if let Some(e) = exec {
                    settle(inner, &job, e);
                }
            }
            JobState::None => {}
        }
    }
    Ok(())
}

/// Announces a newly posted job on the swarm when this node holds its spec (it was uploaded
/// here), once per job.
fn announce(inner: &Arc<NodeInner>, job: &JobRecord) {
    let Some(p2p) = inner.p2p.clone() else {
        return;
    };
    if !inner.announcer.first_time(job.id) {
        return;
    }
    let held =
        shoal_store::parse_cid(&job.params.spec_cid).is_ok_and(|cid| inner.content.has_dag(&cid));
    if !held {
        return;
    }
    let network = (
        inner.chain.chain_id,
        inner.chain.deployment.job_market.to_string(),
    );
    let (job, i) = (job.clone(), inner.clone());
    inner.tracker.spawn(async move {
        if crate::network::announce(&p2p, network, &job).await {
            Metrics::inc(&i.metrics.announcements_sent);
        }
    });
}

fn due_finalize(inner: &Arc<NodeInner>, job: &JobRecord, now: u64) {
    if job.phase_deadline > 0 && now > job.phase_deadline {
        let (i, id) = (inner.clone(), job.id);
        spawn_action(inner, id, Action::Finalize, async move {
            i.chain.finalize(id).await.map(|_| ())
        });
    }
}

fn drive_execution(inner: &Arc<NodeInner>, job: &JobRecord, exec: Option<&Execution>, me: Address) {
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
            let executing = inner
                .inflight
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .contains(&(id, Action::Execute));
            if executing {
                return;
            }
            let (i, e, j) = (inner.clone(), exec.cloned(), job.clone());
            spawn_action(inner, id, Action::Commit, async move {
                match e {
                    Some(e) => send_commit(i, &j, e, me).await,
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
            let (i, j) = (inner.clone(), job.clone());
            spawn_action(inner, id, Action::Execute, async move {
                execute(i, j, role).await
            });
        }
    }
}

/// After the job ended: publish verified results, close our execution, claim payouts.
fn settle(inner: &Arc<NodeInner>, job: &JobRecord, exec: Execution) {
    let id = job.id;
    match &exec.step {
        Step::Committed { result_hash, .. } | Step::Revealed { result_hash, .. }
            if job.state == JobState::Verified =>
        {
            let ours = *result_hash;
            let (i, j, e) = (inner.clone(), job.clone(), exec.clone());
            spawn_action(inner, id, Action::Publish, async move {
                publish(i, j, e, ours).await
            });
        }
        step if !step.is_terminal() => {
            let reason = match job.state {
                JobState::Verified => "the job verified without this node's result".to_string(),
                JobState::Expired => "the job expired (too few bids)".to_string(),
                _ => format!(
                    "the job failed ({})",
                    job.fail_reason.as_deref().unwrap_or("unknown reason")
                ),
            };
            let step = if matches!(step, Step::Bidding) {
                Step::Done {
                    reason: format!("not selected; {reason}"),
                }
            } else {
                Step::Done { reason }
            };
            let e = Execution {
                step,
                updated_at: now_secs(),
                ..exec
            };
            if let Err(err) = inner.db.put_execution(&e) {
                tracing::warn!(job = %id, error = %err, "cannot record the end of an execution");
            }
            inner.touch(id);
        }
        _ if !exec.claimed => {
            let paid = inner
                .chain
                .operator
                .is_some_and(|me| job.payments.iter().any(|p| p.account == me));
            if !paid {
                // Nothing of this job to withdraw: done with it.
                let e = Execution {
                    claimed: true,
                    updated_at: now_secs(),
                    ..exec
                };
                if let Err(err) = inner.db.put_execution(&e) {
                    tracing::warn!(job = %id, error = %err, "cannot record the end of an execution");
                }
                return;
            }
            claim(inner);
        }
        _ => {}
    }
}

/// One `claim()` withdraws every payout credited so far, so one claim (at most one in flight,
/// at most one per [`CLAIM_EVERY`]) settles every ended job waiting for it.
fn claim(inner: &Arc<NodeInner>) {
    {
        let last = inner.last_claim.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_some_and(|t| t.elapsed() < CLAIM_EVERY) {
            return;
        }
    }
    let i = inner.clone();
    spawn_action(inner, JobId(0), Action::Claim, async move {
        // Jobs whose payout is credited before the claim is sent.
        let waiting: Vec<Execution> = i
            .active
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .into_iter()
            .filter_map(|id| i.db.execution(id).ok().flatten())
            .filter(|e| e.step.is_terminal() && !e.claimed)
            .filter(|e| {
                i.db.job(e.job_id)
                    .ok()
                    .flatten()
                    .is_some_and(|j| j.state.is_final())
            })
            .collect();
        match i.chain.claim_if_any().await {
            Ok(amount) => tracing::info!(%amount, jobs = waiting.len(), "claimed payouts"),
            Err(e) if e.reverted_with("NothingToClaim") => {}
            Err(e) => return Err(e),
        }
        *i.last_claim.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
        for exec in waiting {
            i.db.put_execution(&Execution {
                claimed: true,
                updated_at: now_secs(),
                ..exec
            })?;
            i.touch(exec.job_id);
        }
        Ok(())
    });
}

/// This node's executions still under way (they are all on active jobs).
fn active_jobs(inner: &NodeInner) -> usize {
    let ids: Vec<JobId> = inner
        .active
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .copied()
        .collect();
    ids.into_iter()
        .filter_map(|id| inner.db.execution(id).ok().flatten())
        .filter(|e| !e.step.is_terminal())
        .count()
}

/// Fetches the spec by CID and checks it against the on-chain spec hash.
pub async fn load_spec(content: &Content, job: &JobRecord) -> Result<JobSpec> {
    let cid = shoal_store::parse_cid(&job.params.spec_cid)?;
    content.ensure(&cid).await?;
    let bytes = content.read_file(&cid)?;
    let hash = keccak256(&bytes);
    if hash != job.params.spec_hash {
        return Err(Error::Content {
            cid: cid.to_string(),
            reason: format!(
                "its keccak256 {hash} is not the spec hash {} posted on chain; the creator posted a wrong spec CID or hash",
                job.params.spec_hash
            ),
        });
    }
    Ok(JobSpec::from_canonical_json(&bytes)?)
}

async fn decide(inner: Arc<NodeInner>, job: JobRecord) -> Result<()> {
    let verdict = match load_spec(&inner.content, &job).await {
        Err(e) => Verdict::decline(format!("cannot use the job's spec: {e}")),
        Ok(spec) => {
            let unreachable = if inner.cfg.bid.require_reachable_data {
                unreachable_data(&inner, &spec).await
            } else {
                None
            };
            let ctx = BidContext {
                job: &job,
                spec: &spec,
                active_jobs: active_jobs(&inner),
                unreachable,
            };
            inner.strategy.decide(&ctx).await
        }
    };
    tracing::info!(job = %job.id, bid = verdict.bid, reason = %verdict.reason, "bid decision");
    let decision = BidDecision {
        bid: verdict.bid,
        reason: verdict.reason.clone(),
        price: verdict.price.map(|p| p.to_string()),
        at: now_secs(),
    };
    if !verdict.bid {
        inner.db.put_decision(job.id, &decision, None)?;
        Metrics::inc(&inner.metrics.decisions_declined);
        return Ok(());
    }
    Metrics::inc(&inner.metrics.decisions_bid);
    let bidding = Execution {
        job_id: job.id,
        role: Role::Worker,
        step: Step::Bidding,
        results_dir: None,
        exit_code: None,
        claimed: false,
        updated_at: now_secs(),
    };
    inner.db.put_decision(job.id, &decision, Some(&bidding))?;
    send_bid(inner, job.id, verdict.price.unwrap_or(0), true).await
}

/// The first `ipfs://` module or input of `spec` that no one this node knows holds. Content
/// found once stays known (it is immutable), so each CID is located once.
async fn unreachable_data(inner: &NodeInner, spec: &JobSpec) -> Option<String> {
    let module = match &spec.engine {
        shoal_types::EngineSpec::Wasm(w) => Some(&w.module),
        shoal_types::EngineSpec::Docker(_) => None,
    };
    let sources = module
        .into_iter()
        .chain(spec.inputs.iter().map(|i| &i.source));
    for source in sources {
        let InputSource::Ipfs(path) = source else {
            continue;
        };
        let root = path.split('/').next().unwrap_or_default();
        let Ok(cid) = shoal_store::parse_cid(root) else {
            return Some(format!("ipfs://{path} (not a CID)"));
        };
        let known = inner
            .located
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&cid);
        if known {
            continue;
        }
        match inner.content.locate(&cid).await {
            Some(_) => {
                let mut located = inner.located.lock().unwrap_or_else(|p| p.into_inner());
                if located.len() >= 10_000 {
                    located.clear();
                }
                located.insert(cid);
            }
            None => return Some(format!("ipfs://{path}")),
        }
    }
    None
}

/// Sends this node's bid; `first` when no bid transaction was sent for the job before (so a
/// refusal means this node's bid is certainly not on chain).
async fn send_bid(inner: Arc<NodeInner>, id: JobId, price: u128, first: bool) -> Result<()> {
    match inner.chain.bid(id, price).await {
        // Already on chain (a resend after a restart), or too late: nothing to record.
        Err(e) if e.reverted_with("AlreadyBid") => Ok(()),
        Err(e) if e.reverted_with("WrongState") || e.reverted_with("BiddingOver") => {
            tracing::info!(job = %id, error = %e, "bidding is over");
            // Too late for this job: nothing to run, nothing to be paid.
            if first && let Some(exec) = inner.db.execution(id)? {
                inner.db.put_execution(&Execution {
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
        Ok(tx) => {
            Metrics::inc(&inner.metrics.bids_sent);
            tracing::info!(job = %id, %tx, "bid placed");
            Ok(())
        }
        Err(e) => {
            Metrics::inc(&inner.metrics.tx_errors);
            let decision = BidDecision {
                bid: false,
                reason: format!("decided to bid but the bid transaction failed: {e}"),
                price: Some(price.to_string()),
                at: now_secs(),
            };
            inner.db.put_decision(id, &decision, None)?;
            if let Some(exec) = inner.db.execution(id)? {
                inner.db.put_execution(&Execution {
                    step: Step::Failed {
                        reason: decision.reason.clone(),
                    },
                    updated_at: now_secs(),
                    ..exec
                })?;
            }
            Err(e)
        }
    }
}

fn set_step(inner: &NodeInner, job: JobId, role: Role, step: Step) -> Result<Execution> {
    let prev = inner.db.execution(job)?;
    let e = match prev {
        Some(p) => Execution {
            role,
            step,
            updated_at: now_secs(),
            ..p
        },
        None => Execution {
            job_id: job,
            role,
            step,
            results_dir: None,
            exit_code: None,
            claimed: false,
            updated_at: now_secs(),
        },
    };
    inner.db.put_execution(&e)?;
    Ok(e)
}

/// Runs the job and persists the result and salt; the commit follows.
async fn execute(inner: Arc<NodeInner>, job: JobRecord, role: Role) -> Result<()> {
    let id = job.id;
    set_step(&inner, id, role, Step::Selected)?;
    set_step(&inner, id, role, Step::Fetching)?;
    Metrics::inc(&inner.metrics.executions_started);
    tracing::info!(job = %id, ?role, "execution started");
    let outcome = run_job(&inner, &job, role).await;
    let (cid, results_dir, exit_code) = match outcome {
        Ok(v) => v,
        // Data that cannot be fetched now may be fetchable later (a peer restarting): retry.
        Err(e @ (Error::Content { .. } | Error::Input { .. })) => {
            set_step(&inner, id, role, Step::Selected)?;
            return Err(e);
        }
        Err(e) => {
            Metrics::inc(&inner.metrics.executions_failed);
            set_step(
                &inner,
                id,
                role,
                Step::Failed {
                    reason: e.to_string(),
                },
            )?;
            return Err(e);
        }
    };
    tracing::info!(job = %id, result = %cid, exit_code, "execution finished");
    let result_hash = result_hash_of(&cid)?;
    let salt = B256::random();
    let prev = inner.db.execution(id)?;
    let exec = Execution {
        job_id: id,
        role,
        step: Step::Committed {
            result_hash,
            result_cid: cid.to_string(),
            salt,
            commit_confirmed: false,
        },
        results_dir: Some(results_dir.display().to_string()),
        exit_code: Some(exit_code),
        claimed: prev.is_some_and(|p| p.claimed),
        updated_at: now_secs(),
    };
    // The salt is on disk before the commitment leaves the node.
    inner.db.put_execution(&exec)?;
    let me = inner.chain.operator()?;
    send_commit(inner, &job, exec, me).await
}

async fn send_commit(
    inner: Arc<NodeInner>,
    job: &JobRecord,
    exec: Execution,
    me: Address,
) -> Result<()> {
    let Step::Committed {
        result_hash,
        result_cid,
        salt,
        ..
    } = exec.step.clone()
    else {
        return Ok(());
    };
    let c = commitment(job.id, me, result_hash, salt);
    let already = job.deal_of(me).is_some_and(|d| d.commitment == Some(c));
    if !already {
        match inner.chain.commit(job.id, c).await {
            Ok(tx) => tracing::info!(job = %job.id, %tx, %result_cid, "result committed"),
            Err(e) if e.reverted_with("AlreadyCommitted") => {}
            Err(e) => {
                Metrics::inc(&inner.metrics.tx_errors);
                return Err(e);
            }
        }
        Metrics::inc(&inner.metrics.commits);
    }
    let done = Execution {
        step: Step::Committed {
            result_hash,
            result_cid,
            salt,
            commit_confirmed: true,
        },
        updated_at: now_secs(),
        ..exec
    };
    inner.db.put_execution(&done)?;
    if inner.cfg.fault == Some(Fault::CrashAfterCommit) {
        tracing::warn!(job = %job.id, "fault injection: stopping the node after the commit");
        inner.cancel.cancel();
    }
    Ok(())
}

async fn reveal(inner: Arc<NodeInner>, exec: Execution) -> Result<()> {
    let Step::Committed {
        result_hash,
        result_cid,
        salt,
        ..
    } = exec.step.clone()
    else {
        return Ok(());
    };
    let cid: Cid = shoal_store::parse_cid(&result_cid)?;
    match inner
        .chain
        .reveal(exec.job_id, result_hash, salt, cid.to_bytes())
        .await
    {
        Ok(tx) => {
            Metrics::inc(&inner.metrics.reveals);
            tracing::info!(job = %exec.job_id, %tx, "result revealed");
        }
        Err(e) if e.reverted_with("AlreadyRevealed") => {}
        Err(e) => {
            Metrics::inc(&inner.metrics.tx_errors);
            return Err(e);
        }
    }
    inner.db.put_execution(&Execution {
        step: Step::Revealed {
            result_hash,
            result_cid,
        },
        updated_at: now_secs(),
        ..exec
    })
}

/// Pins the verified results in the store (making them public) when they are ours.
async fn publish(inner: Arc<NodeInner>, job: JobRecord, exec: Execution, ours: B256) -> Result<()> {
    let Some(verified) = job.result_hash else {
        return Err(Error::Chain(format!(
            "job {} is verified but its JobVerified event is not read yet",
            job.id
        )));
    };
    let step = if verified == ours {
        let dir = exec
            .results_dir
            .clone()
            .map(PathBuf::from)
            .ok_or_else(|| Error::Content {
                cid: job.result_cid.clone().unwrap_or_default(),
                reason: "this node has no results folder for the job".into(),
            })?;
        let store = inner.content.store.clone();
        let imported = tokio::task::spawn_blocking(move || {
            store.add_path(&dir, shoal_store::Profile::UnixfsV1_2025)
        })
        .await
        .map_err(|e| Error::Content {
            cid: String::new(),
            reason: e.to_string(),
        })??;
        if result_hash_of(&imported.cid)? != ours {
            Step::Failed {
                reason: format!(
                    "the results folder changed since the commit (now {})",
                    imported.cid
                ),
            }
        } else {
            Metrics::inc(&inner.metrics.published);
            tracing::info!(job = %job.id, cid = %imported.cid, "verified results published");
            inner.content.announce(&imported.cid).await;
            Step::Published {
                result_cid: imported.cid.to_string(),
            }
        }
    } else {
        Step::Failed {
            reason: format!(
                "this node's result {ours} is not the verified result {}",
                job.result_hash.map(|h| h.to_string()).unwrap_or_default()
            ),
        }
    };
    inner.db.put_execution(&Execution {
        step,
        updated_at: now_secs(),
        ..exec
    })
}

/// Fetches the module and inputs, runs the executor, returns (result CID, results folder, exit code).
async fn run_job(
    inner: &Arc<NodeInner>,
    job: &JobRecord,
    role: Role,
) -> Result<(Cid, PathBuf, i32)> {
    let spec = load_spec(&inner.content, job).await?;
    let work = inner.work_root.join(format!("job-{}", job.id));
    if work.exists() {
        std::fs::remove_dir_all(&work).map_err(|e| Error::io("cleaning", &work, e))?;
    }
    std::fs::create_dir_all(&work).map_err(|e| Error::io("creating", &work, e))?;
    let engine = match &spec.engine {
        shoal_types::EngineSpec::Wasm(w) => {
            let module = fetch_bytes(inner, &w.module, &work.join("module.wasm")).await?;
            EngineSpec::Wasm(WasmSpec {
                module: WasmModule::Bytes(Arc::from(module)),
                entrypoint: w.entrypoint.clone(),
                args: w.args.clone(),
                env: w.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                random_seed: job.id.0,
            })
        }
        shoal_types::EngineSpec::Docker(d) => EngineSpec::Docker(DockerSpec {
            image: d.image.clone(),
            entrypoint: d.entrypoint.clone(),
            cmd: if d.cmd.is_empty() {
                None
            } else {
                Some(d.cmd.clone())
            },
            env: d.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            working_dir: d.working_dir.clone(),
        }),
    };
    let exec_id = ExecutionId::new(format!("job-{}", job.id))?;
    let mut req = ExecutionRequest::new(exec_id.clone(), engine);
    for (i, input) in spec.inputs.iter().enumerate() {
        let host_path = fetch_input(
            inner,
            &input.source,
            input.checksum.as_deref(),
            &work.join(format!("input-{i}")),
        )
        .await?;
        req.inputs.push(InputMount {
            host_path,
            container_path: input.path.clone(),
        });
    }
    req.outputs = spec
        .outputs
        .iter()
        .map(|o| OutputVolume {
            name: o.name.clone(),
            container_path: o.path.clone(),
        })
        .collect();
    req.limits = Limits {
        memory_bytes: spec.resources.memory,
        timeout: spec.resources.timeout,
        cpu_millis: (spec.resources.cpu * 1000.0)
            .round()
            .clamp(1.0, f64::from(u32::MAX)) as u32,
        ..Limits::default()
    };
    req.network = spec.network;

    let old = inner.results_root.join(exec_id.as_str());
    if old.exists() {
        std::fs::remove_dir_all(&old).map_err(|e| Error::io("removing old results", &old, e))?;
    }
    let _slot = inner
        .exec_slots
        .acquire()
        .await
        .map_err(|_| Error::Config("the execution queue is closed".into()))?;
    set_step(inner, job.id, role, Step::Running)?;
    if inner.cfg.fault == Some(Fault::CrashWhileRunning) {
        tracing::warn!(job = %job.id, "fault injection: stopping the node during the execution");
        inner.cancel.cancel();
        std::future::pending::<()>().await;
    }
    let result = inner.executors.run(req, inner.cancel.child_token()).await?;
    let _ = std::fs::remove_dir_all(&work);
    let mut cid = result.result_hash;
    if inner.cfg.fault == Some(Fault::WrongResult) {
        let stdout = result.results_dir.join("stdout");
        let mut bytes = std::fs::read(&stdout).map_err(|e| Error::io("reading", &stdout, e))?;
        bytes.extend_from_slice(b"fault injected by this node\n");
        std::fs::write(&stdout, bytes).map_err(|e| Error::io("writing", &stdout, e))?;
        cid = shoal_executor::hash_results(&result.results_dir)?;
    }
    Ok((cid, result.results_dir, result.exit_code))
}

fn allowed_file(inner: &NodeInner, path: &str) -> Result<PathBuf> {
    let p = Path::new(path);
    let canon = p.canonicalize().map_err(|e| Error::Input {
        source_uri: format!("file://{path}"),
        reason: format!("cannot open it: {e}"),
    })?;
    let ok = inner
        .cfg
        .executor
        .file_allow
        .iter()
        .any(|a| a.canonicalize().is_ok_and(|a| canon.starts_with(a)));
    if ok {
        Ok(canon)
    } else {
        Err(Error::Input {
            source_uri: format!("file://{path}"),
            reason: "not below any folder in executor.file_allow on this node".into(),
        })
    }
}

async fn download(inner: &NodeInner, url: &str, checksum: Option<&str>) -> Result<Vec<u8>> {
    let err = |reason: String| Error::Input {
        source_uri: url.to_owned(),
        reason,
    };
    let resp = inner
        .http
        .get(url)
        .send()
        .await
        .map_err(|e| err(e.to_string()))?;
    if !resp.status().is_success() {
        return Err(err(format!("HTTP {}", resp.status())));
    }
    if resp
        .content_length()
        .is_some_and(|l| l > inner.cfg.executor.max_download_bytes)
    {
        return Err(err("larger than executor.max_download_bytes".into()));
    }
    let bytes = resp.bytes().await.map_err(|e| err(e.to_string()))?;
    if bytes.len() as u64 > inner.cfg.executor.max_download_bytes {
        return Err(err("larger than executor.max_download_bytes".into()));
    }
    if let Some(want) = checksum {
        use sha2::Digest;
        let got = format!("sha256:{}", hex::encode(sha2::Sha256::digest(&bytes)));
        if !got.eq_ignore_ascii_case(want) {
            return Err(err(format!("checksum {got} is not the expected {want}")));
        }
    }
    Ok(bytes.to_vec())
}

async fn fetch_bytes(inner: &NodeInner, source: &InputSource, scratch: &Path) -> Result<Vec<u8>> {
    match source {
        InputSource::Inline(b) => Ok(b.clone()),
        InputSource::Url(u) => download(inner, u, None).await,
        InputSource::File(p) => {
            let path = allowed_file(inner, p)?;
            std::fs::read(&path).map_err(|e| Error::io("reading", path, e))
        }
        InputSource::Ipfs(s) => {
            inner.content.export_to(s, scratch).await?;
            std::fs::read(scratch).map_err(|e| Error::io("reading", scratch, e))
        }
    }
}

async fn fetch_input(
    inner: &NodeInner,
    source: &InputSource,
    checksum: Option<&str>,
    dest: &Path,
) -> Result<PathBuf> {
    match source {
        InputSource::Inline(b) => {
            std::fs::write(dest, b).map_err(|e| Error::io("writing", dest, e))?;
            Ok(dest.to_path_buf())
        }
        InputSource::Url(u) => {
            let bytes = download(inner, u, checksum).await?;
            std::fs::write(dest, bytes).map_err(|e| Error::io("writing", dest, e))?;
            Ok(dest.to_path_buf())
        }
        InputSource::File(p) => allowed_file(inner, p),
        InputSource::Ipfs(s) => inner.content.export_to(s, dest).await,
    }
}
