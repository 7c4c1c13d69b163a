//! A typed client of a Shoal node's HTTP API (docs/api.md).

use std::time::Duration;

pub use shoal_api::{
    ApiErrorBody, DeploymentView as Deployment, EventRecord, Health, JobDetail, JobId, JobList,
    LeaveView, LeaveWait, Logs, NodeView, PeerPinStatus, PinPeerView, PinRequest, PinState,
    PinStatusView, PinView,
};

use crate::{Error, Result};

/// A node's HTTP API.
#[derive(Debug, Clone)]
pub struct NodeApi {
    base: String,
    http: reqwest::Client,
}

impl NodeApi {
    /// A client of the node at `url` (`http://127.0.0.1:7474`).
    pub fn new(url: &str) -> Result<Self> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| Error::NodeUnreachable {
                url: url.to_owned(),
                reason: e.to_string(),
            })?;
        Ok(Self {
            base: url.trim_end_matches('/').to_owned(),
            http,
        })
    }

    /// The node URL.
    pub fn url(&self) -> &str {
        &self.base
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<reqwest::Response> {
        let resp = req.send().await.map_err(|e| Error::NodeUnreachable {
            url: self.base.clone(),
            reason: e.to_string(),
        })?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status().as_u16();
        let body = resp.bytes().await.unwrap_or_default();
        Err(match serde_json::from_slice::<ApiErrorBody>(&body) {
            Ok(e) => Error::Api {
                status,
                message: e.error,
                hint: e.hint,
            },
            Err(_) => Error::Api {
                status,
                message: format!("HTTP {status}: {}", String::from_utf8_lossy(&body).trim()),
                hint: None,
            },
        })
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, path: &str) -> Result<T> {
        let resp = self
            .send(self.http.get(format!("{}{path}", self.base)))
            .await?;
        resp.json().await.map_err(|e| Error::Api {
            status: 200,
            message: format!("unexpected answer to GET {path}: {e}"),
            hint: Some("is this a Shoal node of the same version?".into()),
        })
    }

    async fn json_of<T: serde::de::DeserializeOwned>(
        &self,
        what: &str,
        resp: reqwest::Response,
    ) -> Result<T> {
        resp.json().await.map_err(|e| Error::Api {
            status: 200,
            message: format!("unexpected answer to {what}: {e}"),
            hint: Some("is this a Shoal node of the same version?".into()),
        })
    }

    /// `POST /api/v1/pins`: adds `req.cid` to the swarm's pinset (docs/pinning.md); the
    /// answer shows its allocation. The copies are made in the background: follow them with
    /// [`NodeApi::pin_status`].
    pub async fn pin_add(&self, req: &PinRequest) -> Result<PinView> {
        let resp = self
            .send(
                self.http
                    .post(format!("{}/api/v1/pins", self.base))
                    .json(req),
            )
            .await?;
        self.json_of("POST /api/v1/pins", resp).await
    }

    /// `GET /api/v1/pins` (`removed`: with tombstones).
    pub async fn pins(&self, removed: bool) -> Result<Vec<PinView>> {
        self.get_json(&format!("/api/v1/pins?removed={removed}"))
            .await
    }

    /// `GET /api/v1/pins/{cid}`: the pin and each node's status of it.
    pub async fn pin_status(&self, cid: &str) -> Result<PinStatusView> {
        self.get_json(&format!("/api/v1/pins/{cid}")).await
    }

    /// `DELETE /api/v1/pins/{cid}`: removes it from the pinset; every node unpins it.
    pub async fn pin_rm(&self, cid: &str) -> Result<PinView> {
        let path = format!("/api/v1/pins/{cid}");
        let resp = self
            .send(self.http.delete(format!("{}{path}", self.base)))
            .await?;
        self.json_of(&format!("DELETE {path}"), resp).await
    }

    /// `GET /api/v1/pinning/peers`: the pinning swarm as this node sees it.
    pub async fn pinning_peers(&self) -> Result<Vec<PinPeerView>> {
        self.get_json("/api/v1/pinning/peers").await
    }

    /// `POST /api/v1/node/leave`: starts a graceful leave; the node stops once every CID it
    /// holds has its copies elsewhere.
    pub async fn leave(&self) -> Result<LeaveView> {
        let resp = self
            .send(self.http.post(format!("{}/api/v1/node/leave", self.base)))
            .await?;
        self.json_of("POST /api/v1/node/leave", resp).await
    }

    /// `GET /api/v1/node/leave`: a leave's progress.
    pub async fn leave_progress(&self) -> Result<LeaveView> {
        self.get_json("/api/v1/node/leave").await
    }

    /// `GET /api/v1/shards/{id}`: a sharded job and its batches.
    pub async fn shard_job(&self, id: JobId) -> Result<shoal_api::shard::ShardJobView> {
        self.get_json(&format!("/api/v1/shards/{id}")).await
    }

    /// `GET /api/v1/shards/{id}/result`: the merged result folder of a finished sharded job.
    pub async fn merged_result(&self, id: JobId) -> Result<shoal_api::shard::MergedResult> {
        self.get_json(&format!("/api/v1/shards/{id}/result")).await
    }

    /// `GET /healthz` (an error when the node is unhealthy).
    pub async fn health(&self) -> Result<Health> {
        self.get_json("/healthz").await
    }

    /// `GET /api/v1/status`: the node's operator, executors, labels and sync position.
    pub async fn status(&self) -> Result<shoal_api::NodeStatus> {
        self.get_json("/api/v1/status").await
    }

    /// `GET /api/v1/deployment`.
    pub async fn deployment(&self) -> Result<Deployment> {
        self.get_json("/api/v1/deployment").await
    }

    /// `GET /api/v1/nodes`.
    pub async fn nodes(&self) -> Result<Vec<NodeView>> {
        self.get_json("/api/v1/nodes").await
    }

    /// The API URLs of this node and of every node it knows the URL of (`GET
    /// /api/v1/nodes`), sorted, without duplicates.
    pub async fn known_node_urls(&self) -> Vec<String> {
        let mut urls = vec![self.base.clone()];
        if let Ok(nodes) = self.nodes().await {
            urls.extend(nodes.into_iter().filter_map(|n| n.api_url));
        }
        urls.sort();
        urls.dedup();
        urls
    }

    /// `GET /api/v1/jobs`.
    pub async fn jobs(
        &self,
        state: Option<&str>,
        creator: Option<&str>,
        limit: u32,
        offset: u64,
    ) -> Result<JobList> {
        let mut q = format!("/api/v1/jobs?limit={limit}&offset={offset}");
        if let Some(s) = state {
            q.push_str(&format!("&state={s}"));
        }
        if let Some(c) = creator {
            q.push_str(&format!("&creator={c}"));
        }
        self.get_json(&q).await
    }

    /// `GET /api/v1/jobs/{id}`.
    pub async fn job(&self, id: JobId) -> Result<JobDetail> {
        self.get_json(&format!("/api/v1/jobs/{id}")).await
    }

    /// `GET /api/v1/jobs/{id}/events`.
    pub async fn job_events(&self, id: JobId) -> Result<Vec<EventRecord>> {
        self.get_json(&format!("/api/v1/jobs/{id}/events")).await
    }

    /// `GET /api/v1/jobs/{id}/logs`.
    pub async fn job_logs(&self, id: JobId) -> Result<Logs> {
        self.get_json(&format!("/api/v1/jobs/{id}/logs")).await
    }

    /// A job's logs from this node, or else from a node that ran it (found through the job's
    /// deals and `GET /api/v1/nodes`).
    pub async fn job_logs_any(&self, id: JobId) -> Result<(String, Logs)> {
        let first = match self.job_logs(id).await {
            Ok(l) => return Ok((self.base.clone(), l)),
            Err(e) => e,
        };
        let job = self.job(id).await?;
        let nodes = self.nodes().await.unwrap_or_default();
        for deal in &job.job.deals {
            let url = nodes
                .iter()
                .find(|n| n.operator == deal.operator)
                .and_then(|n| n.api_url.clone());
            let Some(url) = url else { continue };
            if url.trim_end_matches('/') == self.base {
                continue;
            }
            if let Ok(l) = NodeApi::new(&url)?.job_logs(id).await {
                return Ok((url, l));
            }
        }
        Err(first)
    }

    /// `GET /api/v1/jobs/{id}/results`: the verified results folder as a CAR.
    pub async fn job_results_car(&self, id: JobId) -> Result<bytes::Bytes> {
        let resp = self
            .send(
                self.http
                    .get(format!("{}/api/v1/jobs/{id}/results", self.base)),
            )
            .await?;
        resp.bytes().await.map_err(|e| Error::NodeUnreachable {
            url: self.base.clone(),
            reason: e.to_string(),
        })
    }

    /// `GET /api/v1/content/{cid}`: a file's bytes.
    pub async fn content(&self, cid: &str) -> Result<bytes::Bytes> {
        let resp = self
            .send(self.http.get(format!("{}/api/v1/content/{cid}", self.base)))
            .await?;
        resp.bytes().await.map_err(|e| Error::NodeUnreachable {
            url: self.base.clone(),
            reason: e.to_string(),
        })
    }

    /// Uploads a local file or folder (zero-byte files too) as a CAR and checks the node
    /// stored the root computed here; the CID. The node pins it and announces it on its swarm.
    pub async fn upload_path(&self, path: &std::path::Path) -> Result<shoal_store::Cid> {
        let p = path.to_path_buf();
        let (local, car) = tokio::task::spawn_blocking(move || crate::client::pack_car(&p))
            .await
            .map_err(|e| Error::Chain(format!("packing was interrupted: {e}")))??;
        let stored = shoal_store::parse_cid(&self.upload_car(car).await?)?;
        if stored != local {
            return Err(Error::UploadMismatch {
                expected: local.to_string(),
                got: stored.to_string(),
            });
        }
        Ok(local)
    }

    /// `GET /api/v1/content/{cid}?format=car`: the whole DAG, to be verified by the caller.
    pub async fn content_car(&self, cid: &str) -> Result<bytes::Bytes> {
        let resp = self
            .send(
                self.http
                    .get(format!("{}/api/v1/content/{cid}?format=car", self.base)),
            )
            .await?;
        resp.bytes().await.map_err(|e| Error::NodeUnreachable {
            url: self.base.clone(),
            reason: e.to_string(),
        })
    }

    /// `POST /api/v1/content` with raw bytes: stored as one UnixFS file; returns its CID.
    pub async fn upload_bytes(&self, data: Vec<u8>) -> Result<String> {
        self.upload(data, "application/octet-stream").await
    }

    /// `POST /api/v1/content` with a CAR: every block imported; returns the first root.
    pub async fn upload_car(&self, car: Vec<u8>) -> Result<String> {
        self.upload(car, "application/vnd.ipld.car").await
    }

    async fn upload(&self, body: Vec<u8>, content_type: &'static str) -> Result<String> {
        let resp = self
            .send(
                self.http
                    .post(format!("{}/api/v1/content", self.base))
                    .header(reqwest::header::CONTENT_TYPE, content_type)
                    .body(body),
            )
            .await?;
        let reply = resp
            .json::<shoal_api::CidResponse>()
            .await
            .map_err(|e| Error::Api {
                status: 200,
                message: format!("the node's reply to an upload is not {{\"cid\": ...}}: {e}"),
                hint: None,
            })?;
        Ok(reply.cid)
    }
}
