//! A typed client of a Shoal node's HTTP API (docs/api.md).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// A job as the node indexes it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Job {
    /// Job id.
    pub id: u64,
    /// Who posted it.
    pub creator: String,
    /// Contract state name (`Posted`, `Running`, … `Verified`).
    pub state: String,
    /// The posted parameters.
    pub params: JobParams,
    /// Escrow the market still holds, wei.
    pub escrow: String,
    /// End of bidding (unix seconds).
    pub bid_deadline: u64,
    /// End of the current phase (unix seconds).
    pub phase_deadline: u64,
    /// Block of the post.
    pub posted_block: u64,
    /// Bids.
    pub bids: Vec<Bid>,
    /// Selected operators and mediators.
    pub deals: Vec<Deal>,
    /// Verified result hash.
    pub result_hash: Option<String>,
    /// Verified result CID.
    pub result_cid: Option<String>,
    /// Payments.
    pub payments: Vec<Transfer>,
    /// Refunds to the creator.
    pub refunds: Vec<Transfer>,
    /// Slashes.
    pub slashes: Vec<Transfer>,
    /// Why the job failed.
    pub fail_reason: Option<String>,
    /// The spec, when the node has it.
    pub spec: Option<serde_json::Value>,
    /// This node's bid decision.
    pub decision: Option<Decision>,
    /// This node's execution.
    pub execution: Option<serde_json::Value>,
    /// This node's operator address.
    pub node: Option<String>,
}

/// Posted job parameters.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct JobParams {
    /// Spec CID.
    pub spec_cid: String,
    /// keccak256 of the canonical spec.
    pub spec_hash: String,
    /// n.
    pub concurrency: u32,
    /// k.
    pub confidence: u32,
    /// m.
    pub min_bids: u32,
    /// Max price per execution, wei.
    pub max_price: String,
    /// Collateral per operator, wei.
    pub collateral: String,
    /// Seconds.
    pub bid_window: u64,
    /// Seconds.
    pub exec_window: u64,
    /// Seconds.
    pub reveal_window: u64,
    /// Seconds.
    pub challenge_window: u64,
    /// `Deterministic` | `Optimistic`.
    pub verifier: String,
    /// Disagreement goes to mediation.
    pub escalate: bool,
}

/// A bid.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Bid {
    /// Bidder.
    pub operator: String,
    /// Price, wei.
    pub price: String,
    /// Dropped (no free stake at selection).
    pub dropped: bool,
}

/// A selected operator or mediator.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Deal {
    /// Operator.
    pub operator: String,
    /// Price, wei.
    pub price: String,
    /// Locked collateral, wei.
    pub collateral: String,
    /// Drawn for a dispute.
    pub mediator: bool,
    /// Commitment.
    pub commitment: Option<String>,
    /// Revealed result hash.
    pub result_hash: Option<String>,
    /// Revealed result CID.
    pub result_cid: Option<String>,
}

/// A payment, refund or slash.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Transfer {
    /// Who.
    pub account: String,
    /// Wei.
    pub amount: String,
    /// Payment kind, `Refund`, or slash reason.
    pub kind: String,
}

/// A node's bid decision for a job.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Decision {
    /// Whether it bid.
    pub bid: bool,
    /// Why (or why not).
    pub reason: String,
    /// Its price.
    pub price: Option<String>,
}

/// Page of jobs.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct JobList {
    /// Total matching.
    pub total: u64,
    /// Offset of this page.
    pub offset: u64,
    /// Jobs, newest first.
    pub jobs: Vec<Job>,
}

/// One decoded chain event of a job.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct JobEvent {
    /// Block.
    pub block: u64,
    /// Log index.
    pub log_index: u64,
    /// Transaction hash.
    pub tx: String,
    /// Event name.
    pub event: String,
    /// Decoded fields.
    pub fields: serde_json::Value,
}

/// A registered operator.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct NodeInfo {
    /// Operator address.
    pub operator: String,
    /// libp2p peer id.
    pub peer_id: String,
    /// Engines.
    pub engines: serde_json::Value,
    /// Stake, wei.
    pub stake: String,
    /// Locked stake, wei.
    pub locked: String,
    /// API URL, when known.
    pub api_url: Option<String>,
}

/// Where the contracts are.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Deployment {
    /// Chain id.
    pub chain_id: u64,
    /// The node's RPC URL.
    #[serde(default)]
    pub rpc_url: String,
    /// Registry address.
    pub operator_registry: alloy::primitives::Address,
    /// Market address.
    pub job_market: alloy::primitives::Address,
    /// First block with market events.
    #[serde(default)]
    pub deploy_block: u64,
}

/// A job's execution logs on one node.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Logs {
    /// Stdout.
    pub stdout: String,
    /// Stderr.
    pub stderr: String,
    /// Exit code.
    pub exit_code: Option<i64>,
}

#[derive(Deserialize)]
struct ApiError {
    error: String,
    #[serde(default)]
    hint: Option<String>,
}

#[derive(Deserialize)]
struct CidReply {
    cid: String,
}

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
        Err(match serde_json::from_slice::<ApiError>(&body) {
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

    /// `GET /healthz`.
    pub async fn health(&self) -> Result<serde_json::Value> {
        self.get_json("/healthz").await
    }

    /// `GET /api/v1/deployment`.
    pub async fn deployment(&self) -> Result<Deployment> {
        self.get_json("/api/v1/deployment").await
    }

    /// `GET /api/v1/nodes`.
    pub async fn nodes(&self) -> Result<Vec<NodeInfo>> {
        self.get_json("/api/v1/nodes").await
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
    pub async fn job(&self, id: u64) -> Result<Job> {
        self.get_json(&format!("/api/v1/jobs/{id}")).await
    }

    /// `GET /api/v1/jobs/{id}/events`.
    pub async fn job_events(&self, id: u64) -> Result<Vec<JobEvent>> {
        self.get_json(&format!("/api/v1/jobs/{id}/events")).await
    }

    /// `GET /api/v1/jobs/{id}/logs`.
    pub async fn job_logs(&self, id: u64) -> Result<Logs> {
        self.get_json(&format!("/api/v1/jobs/{id}/logs")).await
    }

    /// A job's logs from this node, or else from a node that ran it (found through the job's
    /// deals and `GET /api/v1/nodes`).
    pub async fn job_logs_any(&self, id: u64) -> Result<(String, Logs)> {
        let first = match self.job_logs(id).await {
            Ok(l) => return Ok((self.base.clone(), l)),
            Err(e) => e,
        };
        let job = self.job(id).await?;
        let nodes = self.nodes().await.unwrap_or_default();
        for deal in &job.deals {
            let url = nodes
                .iter()
                .find(|n| n.operator.eq_ignore_ascii_case(&deal.operator))
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
    pub async fn job_results_car(&self, id: u64) -> Result<bytes::Bytes> {
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
        let reply = resp.json::<CidReply>().await.map_err(|e| Error::Api {
            status: 200,
            message: format!("the node's reply to an upload is not {{\"cid\": ...}}: {e}"),
            hint: None,
        })?;
        Ok(reply.cid)
    }
}
