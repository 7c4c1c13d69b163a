//! `/api/v1/pins`, `/api/v1/pinning/peers`, `/api/v1/node/leave`: the replicated pinset
//! (docs/pinning.md).

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use shoal_api::{LeaveView, PinPeerView, PinRequest, PinStatusView, PinView};

use super::{ApiError, ApiResult, Shared};
use crate::error::Error;
use crate::pinning::Pinning;

fn pinning(inner: &Shared) -> ApiResult<Arc<Pinning>> {
    inner.pinning.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "pinning is off on this node",
            "it needs the libp2p swarm ([p2p] enabled) and [pinning] enabled = true",
        )
    })
}

fn pin_error(e: Error) -> ApiError {
    match e {
        Error::PinRequest(m) => ApiError::bad_request(
            m,
            "send {\"cid\": \"bafy…\", \"replicationMin\": 2, \"replicationMax\": 3, \"name\": \"…\"}",
        ),
        Error::PinNotFound(m) => ApiError::not_found(
            format!("{m} is not in the pinset"),
            "list pins with GET /api/v1/pins; add one with POST /api/v1/pins",
        ),
        e @ Error::NotEnoughPeers { .. } => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            e.to_string(),
            "GET /api/v1/pinning/peers shows the live peers",
        ),
        e => ApiError::internal(e),
    }
}

pub(super) async fn add_pin(
    State(inner): State<Shared>,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<PinView>)> {
    let p = pinning(&inner)?;
    // Parsed here rather than by the extractor, so a malformed body gets a JSON error too.
    let req: PinRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(
            format!("the body is not a pin request: {e}"),
            "send {\"cid\": \"bafy…\", \"replicationMin\": 2, \"replicationMax\": 3}",
        )
    })?;
    let v = p.add(req).await.map_err(pin_error)?;
    Ok((StatusCode::ACCEPTED, Json(v)))
}

#[derive(Debug, Deserialize)]
pub(super) struct ListQuery {
    /// Also list removed pins (tombstones).
    #[serde(default)]
    removed: bool,
}

pub(super) async fn list_pins(
    State(inner): State<Shared>,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Vec<PinView>>> {
    let Query(q) =
        q.map_err(|e| ApiError::bad_request(e.body_text(), "use ?removed=true or leave it out"))?;
    Ok(Json(pinning(&inner)?.list(q.removed)))
}

pub(super) async fn pin_status(
    State(inner): State<Shared>,
    Path(cid): Path<String>,
) -> ApiResult<Json<PinStatusView>> {
    pinning(&inner)?.status(&cid).map(Json).map_err(pin_error)
}

pub(super) async fn remove_pin(
    State(inner): State<Shared>,
    Path(cid): Path<String>,
) -> ApiResult<Json<PinView>> {
    let p = pinning(&inner)?;
    p.remove(&cid).await.map(Json).map_err(pin_error)
}

pub(super) async fn pinning_peers(
    State(inner): State<Shared>,
) -> ApiResult<Json<Vec<PinPeerView>>> {
    Ok(Json(pinning(&inner)?.peers()))
}

pub(super) async fn start_leave(
    State(inner): State<Shared>,
) -> ApiResult<(StatusCode, Json<LeaveView>)> {
    let p = pinning(&inner)?;
    Ok((StatusCode::ACCEPTED, Json(p.leave().await)))
}

pub(super) async fn leave_progress(State(inner): State<Shared>) -> ApiResult<Json<LeaveView>> {
    Ok(Json(pinning(&inner)?.leave_progress()))
}
