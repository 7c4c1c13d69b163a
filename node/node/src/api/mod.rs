//! The HTTP API clients and other nodes use (see docs/api.md); the views it answers with are
//! `shoal-api`'s.
//!
//! - [`content`]: uploads and content by CID.
//! - [`jobs`]: jobs, their events, results and logs.
//! - [`network`]: this node, the operators, the swarm, the deployment, health and metrics.
//! - [`pins`]: the replicated pinset and a node's graceful leave.

mod content;
#[cfg(test)]
mod fuzz;
mod jobs;
mod network;
mod pins;
pub(crate) mod shards;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{ConnectInfo, DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use crate::metrics::Metrics;
use crate::node::Node;
use content::{get_content, head_content, post_content};
use jobs::{get_job, job_events, job_logs, job_results, list_jobs};
use network::{deployment, healthz, list_nodes, list_peers, metrics, peer_job_status, status};

/// MIME type of CAR files.
pub const CAR_MIME: &str = "application/vnd.ipld.car";

pub(crate) type Shared = Arc<Node>;

/// An API error: `{"error": "...", "hint": "..."}` (read back as [`shoal_api::ApiErrorBody`]).
#[derive(Debug, Serialize)]
pub struct ApiError {
    #[serde(skip)]
    status: StatusCode,
    error: String,
    hint: String,
}

impl ApiError {
    pub(crate) fn new(
        status: StatusCode,
        error: impl Into<String>,
        hint: impl Into<String>,
    ) -> Self {
        Self {
            status,
            error: error.into(),
            hint: hint.into(),
        }
    }
    pub(crate) fn not_found(error: impl Into<String>, hint: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, error, hint)
    }
    pub(crate) fn bad_request(error: impl Into<String>, hint: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, error, hint)
    }
    pub(crate) fn internal(e: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            e.to_string(),
            "see the node's log; retry later",
        )
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.error, self.hint)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self)).into_response()
    }
}

pub(crate) type ApiResult<T> = Result<T, ApiError>;

/// `axum`'s query extractor, rejecting a malformed query string with a JSON [`ApiError`].
pub(crate) struct Query<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> axum::extract::FromRequestParts<S>
    for Query<T>
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Self(q.0))
            .map_err(|e| {
                ApiError::bad_request(
                    e.body_text(),
                    "check the query string's parameters and values (see /openapi.json)",
                )
            })
    }
}

/// `axum`'s path extractor, rejecting a malformed path with a JSON [`ApiError`].
pub(crate) struct Path<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned + Send> axum::extract::FromRequestParts<S>
    for Path<T>
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Self(p.0))
            .map_err(|e| {
                ApiError::bad_request(
                    e.body_text(),
                    "check the path: ids are decimal numbers, CIDs and peer ids as printed by shoal",
                )
            })
    }
}

/// Builds the router.
pub(crate) fn router(inner: Shared) -> Router {
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
        .route("/api/v1/shards/{id}", get(shards::get_shard_job))
        .route("/api/v1/shards/{id}/result", get(shards::get_merged_result))
        .route("/api/v1/pins", get(pins::list_pins).post(pins::add_pin))
        .route(
            "/api/v1/pins/{cid}",
            get(pins::pin_status).delete(pins::remove_pin),
        )
        .route("/api/v1/pinning/peers", get(pins::pinning_peers))
        .route(
            "/api/v1/node/leave",
            get(pins::leave_progress).post(pins::start_leave),
        )
        .route("/api/v1/status", get(status))
        .route("/api/v1/deployment", get(deployment))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .route("/explorer", get(explorer))
        .fallback(|| async {
            ApiError::not_found("no such endpoint", "see /openapi.json for the API")
        })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "this endpoint does not take this method",
                "see /openapi.json for the methods each endpoint takes",
            )
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

async fn openapi() -> Json<serde_json::Value> {
    Json(crate::openapi::document())
}

async fn explorer() -> Html<&'static str> {
    Html(include_str!("../../assets/explorer.html"))
}

#[cfg(test)]
mod tests {
    use crate::testkit::Kit;

    /// One client flooding the API is limited; a client at another address is still served.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_flood_from_one_address_does_not_stop_others() {
        let kit = Kit::start(|c| {
            c.api.rate_limit_per_sec = 5;
            c.api.rate_limit_burst = 10;
        })
        .await;
        let url = format!("{}/api/v1/status", kit.node.api_url());
        let client_from = |ip: [u8; 4]| {
            reqwest::Client::builder()
                .local_address(std::net::IpAddr::from(ip))
                .build()
                .expect("client")
        };
        let flooder = client_from([127, 0, 0, 1]);
        let mut limited = 0;
        for _ in 0..200 {
            let r = flooder.get(&url).send().await.expect("request");
            if r.status() == 429 {
                assert!(r.headers().contains_key("retry-after"));
                limited += 1;
            }
        }
        assert!(limited >= 150, "only {limited} of 200 were limited");
        let other = client_from([127, 0, 0, 2]);
        for _ in 0..5 {
            let r = other.get(&url).send().await.expect("request");
            assert_eq!(
                r.status(),
                200,
                "another address is served during the flood"
            );
        }
        kit.stop().await;
    }
}
