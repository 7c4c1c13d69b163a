//! The HTTP JSON-RPC server.

use std::net::SocketAddr;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::json;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::DevChain;
use crate::error::{Error, Result, RpcError};

/// Largest request body accepted, in bytes.
pub const MAX_BODY: usize = 8 * 1024 * 1024;

pub(crate) fn router(dc: DevChain) -> Router {
    Router::new()
        .route("/", post(handle).get(info))
        .with_state(dc)
}

async fn info(State(dc): State<DevChain>) -> impl IntoResponse {
    axum::Json(json!({
        "client": concat!("shoal-devchain/v", env!("CARGO_PKG_VERSION")),
        "chainId": dc.chain_id(),
        "blockNumber": dc.block_number(),
        "usage": "POST Ethereum JSON-RPC requests to this URL",
    }))
}

async fn handle(State(dc): State<DevChain>, body: Body) -> Response {
    let bytes = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(_) => {
            let e = RpcError::invalid_request(format!("request body larger than {MAX_BODY} bytes"));
            return json_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                json!({"jsonrpc": "2.0", "id": null, "error": e}),
            );
        }
    };
    match dc.handle_body_bytes(&bytes) {
        Some(body) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response(),
        None => StatusCode::NO_CONTENT.into_response(),
    }
}

fn json_response(status: StatusCode, v: serde_json::Value) -> Response {
    let body = serde_json::to_vec(&v).unwrap_or_default();
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// A running JSON-RPC server; dropping it (or [`ServerHandle::shutdown`]) stops it.
#[derive(Debug)]
pub struct ServerHandle {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl ServerHandle {
    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The HTTP JSON-RPC URL, e.g. `http://127.0.0.1:8545`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting requests and waits for in-flight ones to finish.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    /// Waits until the server stops.
    pub async fn wait(mut self) {
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

pub(crate) async fn serve(dc: DevChain, addr: SocketAddr) -> Result<ServerHandle> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind { addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| Error::Bind { addr, source })?;
    let (stop, stopped) = oneshot::channel::<()>();
    let app = router(dc);
    let task = tokio::spawn(async move {
        let res = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await;
        if let Err(e) = res {
            tracing::error!(error = %e, "devchain JSON-RPC server stopped");
        }
    });
    Ok(ServerHandle {
        addr: local,
        stop: Some(stop),
        task: Some(task),
    })
}
