//! `GET /api/v1/status`, `/nodes`, `/peers`, `/peers/{peer}/jobs/{id}`, `/deployment`,
//! `/healthz` and `/metrics`.

use std::collections::HashMap;

use axum::Json;
use axum::body::Body;
use axum::extract::State;

use super::{Path, Query};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use shoal_api::{DeploymentView, Health, NodeStatus, NodeView, PeerView, PeersView};
use shoal_chain::{AbiEnum, Address, JobState};

use super::jobs::parse_id;
use super::{ApiError, ApiResult, Shared};

pub(super) async fn status(State(inner): State<Shared>) -> Json<NodeStatus> {
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
        labels: inner.cfg.labels.clone(),
    })
}

pub(super) async fn list_nodes(State(inner): State<Shared>) -> ApiResult<Json<Vec<NodeView>>> {
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
            stake: op.stake.to(),
            locked: op.locked.to(),
            api_url: urls.get(&addr).cloned(),
        });
    }
    Ok(Json(out))
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

pub(super) async fn list_peers(State(inner): State<Shared>) -> ApiResult<Json<PeersView>> {
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
pub(super) struct PeerStatusQuery {
    logs: Option<bool>,
}

/// A job's live status (and, once it ended, logs) asked of a peer over `/shoal/status/1.0.0`.
pub(super) async fn peer_job_status(
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

pub(super) async fn deployment(State(inner): State<Shared>) -> Json<DeploymentView> {
    let d = inner.chain.deployment;
    Json(DeploymentView {
        chain_id: inner.chain.chain_id,
        rpc_url: inner.chain.rpc_url.clone(),
        operator_registry: d.operator_registry,
        job_market: d.job_market,
        shard_market: d.shard_market,
        pipeline_market: d.pipeline_market,
        deploy_block: d.deploy_block,
    })
}

/// Most blocks the follower may lag behind the chain's head (beyond its confirmation depth)
/// before `/healthz` reports the node unhealthy.
const MAX_LAG_BLOCKS: u64 = 64;

/// … unless the blocks it has yet to read span at most this many seconds: on a chain that
/// makes a block per transaction (the devchain) 64 blocks can be under a second of history.
const MAX_LAG_SECS: u64 = 30;

/// Whether the node's critical tasks run, the state store answers and the follower keeps up.
/// 200 when healthy, 503 with the problem otherwise.
pub(super) async fn healthz(State(inner): State<Shared>) -> Response {
    let tasks: Vec<String> = inner
        .tasks
        .running()
        .into_iter()
        .map(String::from)
        .collect();
    let synced = inner.db.cursor().map(|c| c.map(|c| c.saturating_sub(1)));
    let head = tokio::time::timeout(
        std::time::Duration::from_secs(2),
        inner.chain.client().block_number(),
    )
    .await
    .ok()
    .and_then(Result::ok);
    let lag = match (&synced, head) {
        (Ok(Some(s)), Some(h)) => Some(h.saturating_sub(*s)),
        _ => None,
    };
    let allowed = inner.cfg.chain.confirmations + MAX_LAG_BLOCKS;
    // Only when the block count is over: how much time those blocks span.
    let lag_secs = match (&synced, head) {
        (Ok(Some(s)), Some(h)) if h.saturating_sub(*s) > allowed => {
            let client = inner.chain.client();
            let span = async {
                let newest = client.block_timestamp_at(h).await.ok()?;
                let read = client.block_timestamp_at(*s).await.ok()?;
                Some(newest.saturating_sub(read))
            };
            tokio::time::timeout(std::time::Duration::from_secs(2), span)
                .await
                .ok()
                .flatten()
        }
        _ => None,
    };
    let problem = match &synced {
        Err(e) => Some(format!("the state store does not answer: {e}")),
        Ok(_) if inner.tasks.token().is_cancelled() => Some("the node is stopping".into()),
        Ok(_) if head.is_none() => Some("the chain's RPC endpoint does not answer".into()),
        Ok(_) => lag
            .filter(|l| *l > allowed && lag_secs.is_none_or(|s| s > MAX_LAG_SECS))
            .map(|l| match lag_secs {
                Some(s) => format!(
                    "the chain follower is {l} blocks ({s} s of the chain) behind the chain's head"
                ),
                None => format!("the chain follower is {l} blocks behind the chain's head"),
            }),
    };
    let health = Health {
        ok: problem.is_none(),
        synced_block: synced.ok().flatten(),
        chain_head: head,
        follower_lag_blocks: lag,
        follower_lag_secs: lag_secs,
        tasks,
        problem,
    };
    let status = if health.ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(health)).into_response()
}

pub(super) async fn metrics(State(inner): State<Shared>) -> Response {
    let jobs = inner.db.jobs().unwrap_or_default();
    let by_state: Vec<(String, usize)> = JobState::all()
        .into_iter()
        .map(|s| (s.to_string(), jobs.iter().filter(|j| j.state == s).count()))
        .collect();
    let body = inner
        .metrics
        .render(&by_state, inner.content.fetched_bytes());
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        Body::from(body),
    )
        .into_response()
}
