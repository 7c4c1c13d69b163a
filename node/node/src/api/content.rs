//! `POST /api/v1/content`, `GET|HEAD /api/v1/content/{cid}`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;

use super::{Path, Query};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use shoal_api::CidResponse;

use super::{ApiError, ApiResult, CAR_MIME, Shared};

pub(super) async fn post_content(
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
        inner.content.uploaded(c);
        inner.content.announce(&c).await;
    }
    Ok(Json(CidResponse { cid }))
}

#[derive(Debug, Deserialize)]
pub(super) struct ContentQuery {
    format: Option<String>,
}

/// Whether the whole DAG is here: 200 or 404, no body (how peers check before bidding).
pub(super) async fn head_content(
    State(inner): State<Shared>,
    Path(cid): Path<String>,
) -> StatusCode {
    match shoal_store::parse_cid(&cid) {
        Ok(c) if inner.content.has_dag(&c) => StatusCode::OK,
        Ok(_) => StatusCode::NOT_FOUND,
        Err(_) => StatusCode::BAD_REQUEST,
    }
}

pub(super) async fn get_content(
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
