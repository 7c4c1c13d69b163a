//! The running node: opens its state, connects to the chain and the swarm, and starts its
//! critical tasks under a [`Supervisor`]: the chain follower, the compute loop, the HTTP API
//! and (with the swarm) the job-announcement listener.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use shoal_chain::Address;
use shoal_executor::{
    DockerConfig, DockerExecutor, Executor, ExecutorRegistry, WasmConfig, WasmExecutor,
};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::chain::{Chain, JobId};
use crate::compute::{BidStrategy, PolicyStrategy, Scheduler};
use crate::config::NodeConfig;
use crate::content::Content;
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::state::StateStore;
use crate::supervisor::Supervisor;

/// Replaces each configured executor before the node starts; given the node's stop token (the
/// devstack wraps executors this way to inject faults).
pub type ExecutorLayer =
    Arc<dyn Fn(Arc<dyn Executor>, CancellationToken) -> Arc<dyn Executor> + Send + Sync>;

/// A step of this node's work, told to a [`NodeOptions::observer`] as it happens.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NodeEvent {
    /// This node's commitment for the job is on chain (and recorded as such).
    Committed { job: JobId },
}

/// Called inline with every [`NodeEvent`], with the token that stops the node (the devstack's
/// crash faults use it to stop a node at an exact step). Keep it quick.
pub type Observer = Arc<dyn Fn(&NodeEvent, &CancellationToken) + Send + Sync>;

/// How [`start_with`] changes a node from [`start`]'s defaults.
#[derive(Default)]
pub struct NodeOptions {
    /// Replaces each configured executor.
    pub executor_layer: Option<ExecutorLayer>,
    /// Told of each [`NodeEvent`].
    pub observer: Option<Observer>,
}

/// What a node's tasks share.
pub(crate) struct Node {
    pub(crate) cfg: NodeConfig,
    pub(crate) db: StateStore,
    pub(crate) chain: Arc<Chain>,
    pub(crate) content: Content,
    pub(crate) executors: ExecutorRegistry,
    /// How job inputs get into a work folder, by source kind.
    pub(crate) providers: shoal_store::Providers,
    pub(crate) strategy: Arc<dyn BidStrategy>,
    pub(crate) metrics: Metrics,
    pub(crate) api_url: OnceLock<String>,
    pub(crate) http: reqwest::Client,
    /// The libp2p swarm, when `p2p.enabled`.
    pub(crate) p2p: Option<shoal_p2p::P2p>,
    pub(crate) announcer: crate::network::Announcer,
    /// The replicated pinset, with the swarm and `pinning.enabled`.
    pub(crate) pinning: Option<Arc<crate::pinning::Pinning>>,
    /// Makes the chain follower read now (a job announcement arrived).
    pub(crate) poke: Arc<Notify>,
    /// What the compute loop looks at, and what it is doing.
    pub(crate) scheduler: Scheduler,
    pub(crate) tasks: Supervisor,
    pub(crate) observer: Option<Observer>,
    pub(crate) results_root: std::path::PathBuf,
    pub(crate) work_root: std::path::PathBuf,
    /// Merged result folders of Done sharded jobs (final, so built once).
    pub(crate) merged:
        std::sync::Mutex<std::collections::BTreeMap<JobId, shoal_api::shard::MergedResult>>,
}

/// A running node. Dropping it does not stop it; call [`NodeHandle::shutdown`].
#[derive(Clone)]
pub struct NodeHandle {
    node: Arc<Node>,
    addr: SocketAddr,
}

impl std::fmt::Debug for NodeHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeHandle")
            .field("operator", &self.node.chain.operator)
            .field("api", &self.addr)
            .finish()
    }
}

impl Node {
    /// Tells the observer, if any, of `event`.
    pub(crate) fn observe(&self, event: NodeEvent) {
        if let Some(o) = &self.observer {
            o(&event, self.tasks.token());
        }
    }
}

impl NodeHandle {
    /// The API base URL, e.g. `http://127.0.0.1:7474`.
    pub fn api_url(&self) -> String {
        self.node
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
        self.node.chain.operator
    }

    /// The node itself, for the crate's unit tests.
    #[cfg(test)]
    pub(crate) fn inner(&self) -> &Arc<Node> {
        &self.node
    }

    /// The node's state store (read it, do not write it).
    pub fn state(&self) -> &StateStore {
        &self.node.db
    }

    /// The node's libp2p peer id, when it runs the swarm.
    pub fn peer_id(&self) -> Option<shoal_p2p::PeerId> {
        self.node.p2p.as_ref().map(|p| p.peer_id())
    }

    /// The addresses the libp2p swarm listens on (none without the swarm).
    pub async fn p2p_addrs(&self) -> Vec<String> {
        match &self.node.p2p {
            Some(p) => p
                .local_addrs()
                .await
                .unwrap_or_default()
                .iter()
                .map(ToString::to_string)
                .collect(),
            None => Vec::new(),
        }
    }

    /// The critical tasks that run (`api`, `compute`, `follower`, `announcements`).
    pub fn tasks(&self) -> Vec<&'static str> {
        self.node.tasks.running()
    }

    /// Aborts the critical task `name` as a crash of that task would; the node then stops with
    /// [`Error::TaskDied`]. For tests and diagnosis. Whether the task ran.
    pub fn abort_task(&self, name: &str) -> bool {
        self.node.tasks.abort(name)
    }

    /// Whether the node stopped (shut down, or a critical task ended).
    pub fn is_stopped(&self) -> bool {
        self.node.tasks.token().is_cancelled()
    }

    /// Stops every task (in-flight transactions and executions are dropped, as in a crash;
    /// persisted state is kept) and waits for them to end.
    pub async fn shutdown(&self) {
        self.node.tasks.shutdown().await;
    }

    /// Whether the node left the swarm (`POST /api/v1/node/leave` finished): it then stops by
    /// itself, and that is not a failure.
    pub fn has_left(&self) -> bool {
        self.node.pinning.as_ref().is_some_and(|p| p.has_left())
    }

    /// Waits until the node stopped, by [`NodeHandle::shutdown`] (`Ok`) or because a critical
    /// task ended ([`Error::TaskDied`]).
    pub async fn stopped(&self) -> Result<()> {
        self.node.tasks.stopped().await;
        match self.node.tasks.failure() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// The executors `cfg` asks for: WASM, and Docker when its engine answers.
pub async fn executors_for(cfg: &NodeConfig) -> Result<Vec<Arc<dyn Executor>>> {
    let results_root = cfg.data_dir.join("results");
    let mut out: Vec<Arc<dyn Executor>> = Vec::new();
    if cfg.executor.wasm {
        out.push(Arc::new(WasmExecutor::new(WasmConfig::new(&results_root))?));
    }
    if cfg.executor.docker {
        match DockerExecutor::connect(DockerConfig::new(&results_root)).await {
            Ok(d) => out.push(Arc::new(d)),
            Err(e) => {
                tracing::warn!(error = %e, "the docker executor is configured but unavailable")
            }
        }
    }
    Ok(out)
}

/// Starts a node: opens its state, connects to the chain, serves the API and follows and acts
/// on the market until shut down.
pub async fn start(cfg: NodeConfig) -> Result<NodeHandle> {
    start_with(cfg, NodeOptions::default()).await
}

/// [`start`], with every executor passed through `options.executor_layer` first and
/// `options.observer` told of each step.
pub async fn start_with(cfg: NodeConfig, options: NodeOptions) -> Result<NodeHandle> {
    let layer = options.executor_layer;
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

    let cancel = CancellationToken::new();
    let mut executors = ExecutorRegistry::new();
    for e in executors_for(&cfg).await? {
        let e = match &layer {
            Some(layer) => layer(e, cancel.clone()),
            None => e,
        };
        executors.register(e);
    }
    let chain = Arc::new(
        Chain::connect(
            &cfg.chain.rpc_url,
            deployment,
            signer,
            cfg.chain.poll_interval(),
            cfg.chain.max_batch,
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
    }
    let pinning = match &p2p {
        Some(p) if cfg.pinning.enabled => Some(Arc::new(crate::pinning::Pinning::open(
            cfg.pinning.clone(),
            cfg.labels.clone(),
            p.clone(),
            content.clone(),
            cfg.data_dir.clone(),
            cancel.clone(),
        )?)),
        _ => None,
    };
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

    let providers = crate::compute::inputs::providers(&cfg, &content);
    let node = Arc::new(Node {
        scheduler: Scheduler::new(cfg.executor.max_parallel),
        providers,
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
        pinning,
        poke: Arc::new(Notify::new()),
        tasks: Supervisor::new(cancel),
        observer: options.observer,
        results_root,
        work_root,
        merged: Default::default(),
    });
    // Every known job is looked at once; the first pass forgets the ones that are done.
    node.scheduler
        .activate(node.db.jobs()?.iter().map(|j| j.id));
    let url = node
        .cfg
        .api
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{addr}"));
    let _ = node.api_url.set(url.trim_end_matches('/').to_owned());

    spawn_api(&node, listener);
    spawn_follower(&node);
    if node.p2p.is_some() {
        announce_held_content(&node);
        crate::network::spawn_listener(&node);
    }
    if let Some(p) = node.pinning.clone() {
        let tasks = node.tasks.clone();
        node.tasks
            .spawn_critical("pinning", async move { p.run(tasks).await });
    }
    let n = node.clone();
    node.tasks
        .spawn_critical("compute", async move { crate::compute::run(n).await });
    let n = node.clone();
    node.tasks.spawn(async move {
        if let Err(e) = crate::shards::driver::run(n).await {
            tracing::error!(error = %e, "the sharded-job loop stopped");
        }
    });
    tracing::info!(api = %node.api_url.get().map_or("", |s| s.as_str()), operator = ?node.chain.operator, "node started");
    Ok(NodeHandle { node, addr })
}

fn spawn_api(node: &Arc<Node>, listener: tokio::net::TcpListener) {
    let api = crate::api::router(node.clone());
    let cancel = node.tasks.token().clone();
    node.tasks.spawn_critical("api", async move {
        axum::serve(
            listener,
            api.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move { cancel.cancelled().await })
        .await
        .map_err(|e| Error::Http(format!("the API server stopped: {e}")))
    });
}

fn spawn_follower(node: &Arc<Node>) {
    let f = node.clone();
    node.tasks.spawn_critical("follower", async move {
        let wake = f.clone();
        crate::chain::follower::run(
            f.chain.clone(),
            f.db.clone(),
            f.cfg.chain.poll_interval(),
            f.cfg.chain.confirmations,
            f.tasks.token().clone(),
            f.poke.clone(),
            move |changed: &[JobId]| wake.scheduler.changed(changed),
        )
        .await
    });
}

/// Provider records live in memory: announce what this node already holds.
fn announce_held_content(node: &Arc<Node>) {
    let c = node.content.clone();
    node.tasks.spawn(async move {
        let pins = c.store.pins().unwrap_or_default();
        let n = pins.len();
        for cid in pins {
            c.announce(&cid).await;
        }
        tracing::debug!(roots = n, "held content announced on the swarm");
    });
}
