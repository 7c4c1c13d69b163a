//! The HTTP API clients and other nodes use (see docs/api.md).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use alloy::primitives::Address;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use crate::metrics::Metrics;
use crate::model::{BidDecision, EventRecord, JobId, JobRecord, JobState, Step};
use crate::node::{NodeInner, load_spec};

/// MIME type of CAR files.
pub const CAR_MIME: &str = "application/vnd.ipld.car";

type Shared = Arc<NodeInner>;

/// An API error: `{"error": "...", "hint": "..."}`.
#[derive(Debug, Serialize, Deserialize)]
pub struct ApiError {
    #[serde(skip)]
    pub status: StatusCode,
    pub error: String,
    pub hint: String,
}

impl ApiError {
    fn new(status: StatusCode, error: impl Into<String>, hint: impl Into<String>) -> Self {
        Self {
            status,
            error: error.into(),
            hint: hint.into(),
        }
    }
    fn not_found(error: impl Into<String>, hint: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, error, hint)
    }
    fn bad_request(error: impl Into<String>, hint: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, error, hint)
    }
    fn internal(e: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            e.to_string(),
            "see the node's log; retry later",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self)).into_response()
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// Builds the router.
pub fn router(inner: Shared) -> Router {
    let limiter = Arc::new(RateLimiter::new(
        inner.cfg.api.rate_limit_per_sec,
        inner.cfg.api.rate_limit_burst,
    ));
    let max_body = inner.cfg.api.max_body_bytes;
    Router::new()
        .route("/api/v1/content", axum::routing::post(post_content))
        .route("/api/v1/content/{cid}", get(get_content).head(head_content))
        .route("/api/v1/jobs", get(list_jobs))
        .route("/api/v1/jobs/{id}", get(get_job))
        .route("/api/v1/jobs/{id}/events", get(job_events))
        .route("/api/v1/jobs/{id}/results", get(job_results))
        .route("/api/v1/jobs/{id}/logs", get(job_logs))
        .route("/api/v1/nodes", get(list_nodes))
        .route("/api/v1/peers", get(list_peers))
        .route("/api/v1/peers/{peer}/jobs/{id}", get(peer_job_status))
        .route("/api/v1/status", get(status))
        .route("/api/v1/deployment", get(deployment))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .route("/explorer", get(explorer))
        .fallback(|| async {
            ApiError::not_found("no such endpoint", "see /openapi.json for the API")
        })
        .layer(DefaultBodyLimit::max(max_body))
        .layer(middleware::from_fn_with_state(
            (inner.clone(), limiter),
            rate_limit,
        ))
        .with_state(inner)
}

/// A token bucket per client IP.
struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<IpAddr, (f64, Instant)>>,
}

impl RateLimiter {
    fn new(per_sec: u32, burst: u32) -> Self {
        Self {
            rate: f64::from(per_sec),
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    fn allow(&self, ip: IpAddr) -> bool {
        if self.rate <= 0.0 {
            return true;
        }
        let now = Instant::now();
        let mut map = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > 100_000 {
            map.retain(|_, (_, t)| now.duration_since(*t).as_secs() < 60);
        }
        let (tokens, last) = map.entry(ip).or_insert((self.burst, now));
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * self.rate).min(self.burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

async fn rate_limit(
    State((inner, limiter)): State<(Shared, Arc<RateLimiter>)>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    req: Request,
    next: Next,
) -> Response {
    Metrics::inc(&inner.metrics.http_requests);
    if !limiter.allow(addr.ip()) {
        Metrics::inc(&inner.metrics.http_rate_limited);
        let mut resp = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too many requests from this address",
            format!(
                "slow down to at most {} requests per second",
                inner.cfg.api.rate_limit_per_sec
            ),
        )
        .into_response();
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return resp;
    }
    next.run(req).await
}

/// `{"cid": "..."}`.
#[derive(Debug, Serialize, Deserialize)]
pub struct CidResponse {
    pub cid: String,
}

async fn post_content(
    State(inner): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<CidResponse>> {
    if body.is_empty() {
        return Err(ApiError::bad_request(
            "empty body",
            "send the file's bytes, or a CAR with Content-Type application/vnd.ipld.car",
        ));
    }
    let is_car = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with(CAR_MIME));
    let content = inner.content.clone();
    let cid = tokio::task::spawn_blocking(move || -> crate::Result<String> {
        if is_car {
            let roots = content.add_car(&body)?;
            roots
                .first()
                .map(|c| c.to_string())
                .ok_or_else(|| crate::Error::Content {
                    cid: String::new(),
                    reason: "the CAR has no root".into(),
                })
        } else {
            Ok(content.add_bytes(&body)?.to_string())
        }
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(|e| {
        ApiError::bad_request(
            e.to_string(),
            "check the upload is a complete file or a valid CAR v1",
        )
    })?;
    if let Ok(c) = shoal_store::parse_cid(&cid) {
        inner.content.announce(&c).await;
    }
    Ok(Json(CidResponse { cid }))
}

#[derive(Debug, Deserialize)]
struct ContentQuery {
    format: Option<String>,
}

/// Whether the whole DAG is here: 200 or 404, no body (how peers check before bidding).
async fn head_content(State(inner): State<Shared>, Path(cid): Path<String>) -> StatusCode {
    match shoal_store::parse_cid(&cid) {
        Ok(c) if inner.content.has_dag(&c) => StatusCode::OK,
        Ok(_) => StatusCode::NOT_FOUND,
        Err(_) => StatusCode::BAD_REQUEST,
    }
}

async fn get_content(
    State(inner): State<Shared>,
    Path(cid): Path<String>,
    Query(q): Query<ContentQuery>,
) -> ApiResult<Response> {
    let cid = shoal_store::parse_cid(&cid)
        .map_err(|e| ApiError::bad_request(e.to_string(), "pass a CID such as bafy…"))?;
    if !inner.content.has_dag(&cid) {
        return Err(ApiError::not_found(
            format!("{cid} is not on this node"),
            "upload it with POST /api/v1/content, or ask the node that holds it",
        ));
    }
    let content = inner.content.clone();
    let car = q.format.as_deref() == Some("car");
    if let Some(f) = q.format.as_deref().filter(|f| *f != "car" && *f != "raw") {
        return Err(ApiError::bad_request(
            format!("unknown format `{f}`"),
            "use format=car or leave it out",
        ));
    }
    let bytes = tokio::task::spawn_blocking(move || {
        if car {
            content.car(&cid)
        } else {
            content.read_file(&cid)
        }
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(|e| {
        ApiError::bad_request(
            e.to_string(),
            "a folder can only be fetched with ?format=car",
        )
    })?;
    let mime = if car {
        CAR_MIME
    } else {
        "application/octet-stream"
    };
    Ok(([(header::CONTENT_TYPE, mime)], bytes).into_response())
}

#[derive(Debug, Deserialize)]
struct JobsQuery {
    state: Option<String>,
    creator: Option<String>,
    limit: Option<usize>,
    offset: Option<usize>,
}

/// A page of jobs, newest first.
#[derive(Debug, Serialize, Deserialize)]
pub struct JobList {
    pub total: usize,
    pub offset: usize,
    pub jobs: Vec<JobRecord>,
}

async fn list_jobs(
    State(inner): State<Shared>,
    Query(q): Query<JobsQuery>,
) -> ApiResult<Json<JobList>> {
    let state = q
        .state
        .as_deref()
        .map(str::parse::<JobState>)
        .transpose()
        .map_err(|e| {
            ApiError::bad_request(e, "filter with ?state=Posted (or Running, Verified, …)")
        })?;
    let creator = q
        .creator
        .as_deref()
        .map(str::parse::<Address>)
        .transpose()
        .map_err(|e| ApiError::bad_request(format!("creator: {e}"), "pass a 0x… address"))?;
    let mut jobs: Vec<JobRecord> = inner
        .db
        .jobs()
        .map_err(ApiError::internal)?
        .into_iter()
        .filter(|j| state.is_none_or(|s| j.state == s) && creator.is_none_or(|c| j.creator == c))
        .collect();
    jobs.reverse();
    let total = jobs.len();
    let offset = q.offset.unwrap_or(0);
    let limit = q.limit.unwrap_or(50).min(500);
    let jobs = jobs.into_iter().skip(offset).take(limit).collect();
    Ok(Json(JobList {
        total,
        offset,
        jobs,
    }))
}

/// This node's execution of a job, without its secret salt.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionView {
    pub role: crate::model::Role,
    pub step: String,
    pub result_cid: Option<String>,
    pub exit_code: Option<i32>,
    pub reason: Option<String>,
}

/// Everything known about a job.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobDetail {
    #[serde(flatten)]
    pub job: JobRecord,
    pub spec: Option<serde_json::Value>,
    /// This node's bid decision and its reason.
    pub decision: Option<BidDecision>,
    pub execution: Option<ExecutionView>,
    /// The node that answered.
    pub node: Option<Address>,
}

fn parse_id(id: &str) -> ApiResult<JobId> {
    id.parse::<u64>().map(JobId).map_err(|_| {
        ApiError::bad_request(
            format!("`{id}` is not a job id"),
            "job ids are decimal numbers from 1",
        )
    })
}

fn load_job(inner: &NodeInner, id: JobId) -> ApiResult<JobRecord> {
    inner.db.job(id).map_err(ApiError::internal)?.ok_or_else(|| {
        ApiError::not_found(
            format!("job {id} is not known to this node"),
            "the node may still be catching up with the chain; retry in a moment, or check the job id",
        )
    })
}

async fn get_job(
    State(inner): State<Shared>,
    Path(id): Path<String>,
) -> ApiResult<Json<JobDetail>> {
    let id = parse_id(&id)?;
    let job = load_job(&inner, id)?;
    let spec = match shoal_store::parse_cid(&job.params.spec_cid) {
        Ok(cid) if inner.content.has_dag(&cid) => load_spec(&inner.content, &job)
            .await
            .ok()
            .and_then(|s| serde_json::to_value(s).ok()),
        _ => None,
    };
    let decision = inner.db.decision(id).map_err(ApiError::internal)?;
    let execution = inner
        .db
        .execution(id)
        .map_err(ApiError::internal)?
        .map(|e| {
            let (result_cid, reason) = match &e.step {
                Step::Revealed { result_cid, .. } | Step::Published { result_cid } => {
                    (Some(result_cid.clone()), None)
                }
                Step::Failed { reason } | Step::Done { reason } => (None, Some(reason.clone())),
                _ => (None, None),
            };
            ExecutionView {
                role: e.role,
                step: e.step.name().to_owned(),
                result_cid,
                exit_code: e.exit_code,
                reason,
            }
        });
    Ok(Json(JobDetail {
        job,
        spec,
        decision,
        execution,
        node: inner.chain.operator,
    }))
}

async fn job_events(
    State(inner): State<Shared>,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<EventRecord>>> {
    let id = parse_id(&id)?;
    load_job(&inner, id)?;
    Ok(Json(inner.db.events(id).map_err(ApiError::internal)?))
}

#[derive(Debug, Deserialize)]
struct ResultsQuery {
    /// A file inside the results folder (`stdout`, `outputs/report.txt`) instead of the CAR.
    file: Option<String>,
}

async fn job_results(
    State(inner): State<Shared>,
    Path(id): Path<String>,
    Query(q): Query<ResultsQuery>,
) -> ApiResult<Response> {
    let id = parse_id(&id)?;
    let job = load_job(&inner, id)?;
    let cid = match (job.state, &job.result_cid) {
        (JobState::Verified, Some(c)) => shoal_store::parse_cid(c).map_err(ApiError::internal)?,
        _ => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!(
                    "job {id} is {} and has no verified results",
                    job.state.name()
                ),
                "results are published only once the job is Verified; poll GET /api/v1/jobs/{id}",
            ));
        }
    };
    inner.content.ensure(&cid).await.map_err(|e| {
        ApiError::not_found(
            e.to_string(),
            "the operators publish results right after verification; retry shortly",
        )
    })?;
    let content = inner.content.clone();
    let (bytes, mime) =
        tokio::task::spawn_blocking(move || -> crate::Result<(Vec<u8>, &'static str)> {
            match q.file {
                Some(path) => {
                    let target = shoal_store::export::resolve(&content.store, &cid, &path)?;
                    Ok((content.read_file(&target)?, "application/octet-stream"))
                }
                None => Ok((content.car(&cid)?, CAR_MIME)),
            }
        })
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| {
            ApiError::not_found(
                e.to_string(),
                "the results folder has stdout, stderr, exitCode and one folder per output",
            )
        })?;
    let mut resp = ([(header::CONTENT_TYPE, mime)], bytes).into_response();
    if let Ok(v) = HeaderValue::from_str(&cid.to_string()) {
        resp.headers_mut().insert("x-shoal-result-cid", v);
    }
    Ok(resp)
}

/// This node's execution output.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Logs {
    pub stdout: String,
    pub stderr: String,
    pub exit_code: Option<i32>,
}

async fn job_logs(State(inner): State<Shared>, Path(id): Path<String>) -> ApiResult<Json<Logs>> {
    let id = parse_id(&id)?;
    let job = load_job(&inner, id)?;
    if !job.state.is_final() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("job {id} is {}", job.state.name()),
            "logs stay private until the job is verified or has ended",
        ));
    }
    let exec = inner.db.execution(id).map_err(ApiError::internal)?;
    let Some(dir) = exec.as_ref().and_then(|e| e.results_dir.clone()) else {
        return Err(ApiError::not_found(
            format!("this node did not run job {id}"),
            "ask a node that ran it (see the job's deals)",
        ));
    };
    let read = |name: &str| {
        std::fs::read(std::path::Path::new(&dir).join(name))
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    };
    Ok(Json(Logs {
        stdout: read("stdout"),
        stderr: read("stderr"),
        exit_code: exec.and_then(|e| e.exit_code),
    }))
}

/// What `GET /api/v1/status` answers.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeStatus {
    pub operator: Option<Address>,
    pub api_url: String,
    pub chain_id: u64,
    pub executors: Vec<String>,
    pub synced_block: Option<u64>,
}

async fn status(State(inner): State<Shared>) -> Json<NodeStatus> {
    Json(NodeStatus {
        operator: inner.chain.operator,
        api_url: inner.api_url.get().cloned().unwrap_or_default(),
        chain_id: inner.chain.chain_id,
        executors: inner
            .executors
            .names()
            .into_iter()
            .map(String::from)
            .collect(),
        synced_block: inner
            .db
            .cursor()
            .ok()
            .flatten()
            .map(|c| c.saturating_sub(1)),
    })
}

/// An operator with its on-chain data and, when known, its API URL.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeView {
    pub operator: Address,
    pub peer_id: String,
    pub engines: Vec<String>,
    pub cpu_millicores: u32,
    pub memory_mib: u32,
    pub stake: String,
    pub locked: String,
    pub api_url: Option<String>,
}

async fn list_nodes(State(inner): State<Shared>) -> ApiResult<Json<Vec<NodeView>>> {
    let client = inner.chain.client();
    let operators = client
        .operators()
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let mut urls: HashMap<Address, String> = HashMap::new();
    if let (Some(me), Some(url)) = (inner.chain.operator, inner.api_url.get()) {
        urls.insert(me, url.clone());
    }
    let asks = inner.cfg.peers.iter().map(|p| {
        let http = inner.http.clone();
        let url = format!("{}/api/v1/status", p.trim_end_matches('/'));
        async move {
            let r = http
                .get(url)
                .timeout(std::time::Duration::from_secs(2))
                .send()
                .await
                .ok()?;
            r.json::<NodeStatus>().await.ok()
        }
    });
    for s in futures::future::join_all(asks).await.into_iter().flatten() {
        if let Some(op) = s.operator {
            urls.insert(op, s.api_url);
        }
    }
    let mut out = Vec::new();
    for addr in operators.into_iter().take(1000) {
        let op = client
            .get_operator(addr)
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?;
        let bits = op.capabilities.engines;
        let mut engines = Vec::new();
        if bits & 1 != 0 {
            engines.push("wasm".to_owned());
        }
        if bits & 2 != 0 {
            engines.push("docker".to_owned());
        }
        out.push(NodeView {
            operator: addr,
            peer_id: String::from_utf8(op.peerId.to_vec())
                .unwrap_or_else(|_| format!("0x{}", hex::encode(&op.peerId))),
            engines,
            cpu_millicores: op.capabilities.cpuMillicores,
            memory_mib: op.capabilities.memoryMiB,
            stake: op.stake.to_string(),
            locked: op.locked.to_string(),
            api_url: urls.get(&addr).cloned(),
        });
    }
    Ok(Json(out))
}

/// A peer on the libp2p swarm.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerView {
    pub peer_id: String,
    pub addrs: Vec<String>,
    pub agent_version: Option<String>,
    pub rtt_ms: Option<f64>,
    /// Gossipsub score (negative: misbehaving).
    pub score: Option<f64>,
    /// Subscribed to this market's job announcements.
    pub jobs_topic: bool,
}

/// What `GET /api/v1/peers` answers.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PeersView {
    pub peer_id: String,
    pub listen: Vec<String>,
    pub peers: Vec<PeerView>,
}

fn swarm(inner: &Shared) -> ApiResult<&shoal_p2p::P2p> {
    inner.p2p.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "this node runs without the libp2p swarm",
            "set [p2p] enabled = true in the node's config",
        )
    })
}

async fn list_peers(State(inner): State<Shared>) -> ApiResult<Json<PeersView>> {
    let p2p = swarm(&inner)?;
    let listen = p2p.local_addrs().await.map_err(ApiError::internal)?;
    let peers = p2p.peers().await.map_err(ApiError::internal)?;
    Ok(Json(PeersView {
        peer_id: p2p.peer_id().to_string(),
        listen: listen.iter().map(ToString::to_string).collect(),
        peers: peers
            .into_iter()
            .map(|p| PeerView {
                peer_id: p.peer_id.to_string(),
                addrs: p.addrs.iter().map(ToString::to_string).collect(),
                agent_version: p.agent_version,
                rtt_ms: p.rtt.map(|d| d.as_secs_f64() * 1000.0),
                score: p.score,
                jobs_topic: p.jobs_topic,
            })
            .collect(),
    }))
}

#[derive(Debug, Deserialize)]
struct PeerStatusQuery {
    logs: Option<bool>,
}

/// A job's live status (and, once it ended, logs) asked of a peer over `/shoal/status/1.0.0`.
async fn peer_job_status(
    State(inner): State<Shared>,
    Path((peer, id)): Path<(String, String)>,
    Query(q): Query<PeerStatusQuery>,
) -> ApiResult<Json<shoal_p2p::StatusResponse>> {
    let p2p = swarm(&inner)?;
    let peer: shoal_p2p::PeerId = peer.parse().map_err(|e| {
        ApiError::bad_request(
            format!("`{peer}` is not a peer id: {e}"),
            "use a peer id from GET /api/v1/peers",
        )
    })?;
    let id = parse_id(&id)?;
    let req = shoal_p2p::StatusRequest {
        job_id: id.to_string(),
        logs: q.logs.unwrap_or(false),
    };
    let r = p2p.job_status(peer, req).await.map_err(|e| {
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            e.to_string(),
            "check the peer is connected (GET /api/v1/peers) and try again",
        )
    })?;
    Ok(Json(r))
}

/// Where the contracts are.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentView {
    pub chain_id: u64,
    pub rpc_url: String,
    pub operator_registry: Address,
    pub job_market: Address,
    pub deploy_block: u64,
}

async fn deployment(State(inner): State<Shared>) -> Json<DeploymentView> {
    let d = inner.chain.deployment;
    Json(DeploymentView {
        chain_id: inner.chain.chain_id,
        rpc_url: inner.chain.rpc_url.clone(),
        operator_registry: d.operator_registry,
        job_market: d.job_market,
        deploy_block: d.deploy_block,
    })
}

async fn healthz(State(inner): State<Shared>) -> Response {
    match inner.db.cursor() {
        Ok(c) => {
            Json(serde_json::json!({"ok": true, "syncedBlock": c.map(|c| c.saturating_sub(1))}))
                .into_response()
        }
        Err(e) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            e.to_string(),
            "check the data dir",
        )
        .into_response(),
    }
}

async fn metrics(State(inner): State<Shared>) -> Response {
    let jobs = inner.db.jobs().unwrap_or_default();
    let by_state: Vec<(&str, usize)> = JobState::ALL
        .iter()
        .map(|s| (s.name(), jobs.iter().filter(|j| j.state == *s).count()))
        .collect();
    let body = inner.metrics.render(&by_state);
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        Body::from(body),
    )
        .into_response()
}

async fn openapi() -> Json<serde_json::Value> {
    Json(crate::openapi::document())
}

async fn explorer() -> Html<&'static str> {
    Html(include_str!("../assets/explorer.html"))
}
