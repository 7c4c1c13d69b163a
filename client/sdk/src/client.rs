//! The client: content and job queries through a requester node, transactions from the
//! user's own key straight to the chain.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use alloy::primitives::{Address, B256, U256};
use alloy::providers::Provider as _;
use alloy::rpc::types::Filter;
use alloy::signers::local::PrivateKeySigner;
use shoal_api::{EventRecord, describe, results_cid_of};
use shoal_chain::{ChainClient, ChainEvent, FailReason, JobId, JobState, MarketEvent};
use shoal_store::{Blockstore, Cid, Profile};
use shoal_types::{InputSource, JobSpec};

use crate::api::{Deployment, NodeApi};
use crate::job::InputLocation;
use crate::{Error, Result};

/// A job posted on chain.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Posted {
    /// The job id.
    pub job_id: JobId,
    /// CID of the canonical spec.
    pub spec_cid: String,
    /// keccak256 of the canonical spec.
    pub spec_hash: String,
    /// The post transaction.
    pub tx: String,
    /// Escrow paid, wei.
    pub escrow: String,
    /// Block of the post.
    pub block: u64,
}

/// How a job ended.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    /// The job id.
    pub job_id: JobId,
    /// Final (or last seen) state.
    pub state: JobState,
    /// Verified result hash.
    pub result_hash: Option<String>,
    /// Verified result CID (UnixFS root of the results folder).
    pub result_cid: Option<String>,
}

/// The client.
#[derive(Debug, Clone)]
pub struct Client {
    api: NodeApi,
    chain: ChainClient,
    deployment: Deployment,
}

/// Converts a chain error, keeping its decoded revert reason.
pub(crate) fn chain_err(e: shoal_chain::Error) -> Error {
    Error::Chain(e.to_string())
}

impl Client {
    /// Connects to a node (for the deployment and content) and to the chain (`rpc_url`, or the
    /// one the node reports) with an optional signing key.
    pub async fn connect(
        node_url: &str,
        rpc_url: Option<&str>,
        signer: Option<PrivateKeySigner>,
    ) -> Result<Self> {
        let api = NodeApi::new(node_url)?;
        let deployment = api.deployment().await?;
        Self::with_deployment(node_url, deployment, rpc_url, signer).await
    }

    /// Like [`Client::connect`] with known contract addresses: nothing is asked of the node
    /// until a content or job query. `rpc_url` defaults to the deployment's.
    pub async fn with_deployment(
        node_url: &str,
        deployment: Deployment,
        rpc_url: Option<&str>,
        signer: Option<PrivateKeySigner>,
    ) -> Result<Self> {
        let api = NodeApi::new(node_url)?;
        let rpc = rpc_url
            .map(str::to_owned)
            .unwrap_or_else(|| deployment.rpc_url.clone());
        if rpc.is_empty() {
            return Err(Error::Chain(
                "no chain RPC URL: pass --rpc-url or add rpcUrl to the deployment file".into(),
            ));
        }
        let chain = ChainClient::builder(rpc)
            .signer(signer)
            .deployment(shoal_chain::Deployment {
                chain_id: deployment.chain_id,
                operator_registry: deployment.operator_registry,
                job_market: deployment.job_market,
                shard_market: deployment.shard_market,
                pipeline_market: deployment.pipeline_market,
                deploy_block: deployment.deploy_block,
                params: None,
            })
            .connect()
            .await
            .map_err(chain_err)?;
        Ok(Self {
            api,
            chain,
            deployment,
        })
    }

    /// The node API.
    pub fn api(&self) -> &NodeApi {
        &self.api
    }

    /// The chain client.
    pub fn chain(&self) -> &ChainClient {
        &self.chain
    }

    /// Where the contracts are.
    pub fn deployment(&self) -> &Deployment {
        &self.deployment
    }

    /// The signing address.
    pub fn address(&self) -> Result<Address> {
        self.chain.address().ok_or(Error::NoKey)
    }

    /// Uploads a local file (as one UnixFS file) or folder (as a CAR) to the node, and checks
    /// that the node stored exactly what this machine hashes.
    pub async fn upload_path(&self, path: &Path) -> Result<Cid> {
        self.api.upload_path(path).await
    }

    /// Turns an input into a source the nodes can fetch, uploading local data.
    pub async fn resolve_input(&self, input: &InputLocation) -> Result<InputSource> {
        match input {
            InputLocation::Remote(s) => Ok(s.clone()),
            InputLocation::Local(p) => {
                Ok(InputSource::Ipfs(self.upload_path(p).await?.to_string()))
            }
        }
    }

    /// Uploads the spec and posts the job from the user's key, paying the escrow.
    pub async fn post(&self, spec: &JobSpec) -> Result<Posted> {
        spec.validate()?;
        let me = self.address()?;
        let escrow = U256::from(spec.deal.escrow());
        let balance = self.chain.balance(me).await.map_err(chain_err)?;
        if balance <= escrow {
            return Err(Error::NoFunds {
                address: me,
                balance,
                action: "posting this job".into(),
                needed: escrow,
            });
        }
        let json = spec.to_canonical_json();
        let local = shoal_store::hash_reader(&json[..], Profile::UnixfsV1_2025)?;
        let stored = self.api.upload_bytes(json.clone()).await?;
        if shoal_store::parse_cid(&stored)? != local {
            return Err(Error::UploadMismatch {
                expected: local.to_string(),
                got: stored,
            });
        }
        let params = job_params(spec, &local);
        let spec_hash = params.specHash;
        let (id, receipt) = self.chain.post_job(params).await.map_err(chain_err)?;
        Ok(Posted {
            job_id: id,
            spec_cid: local.to_string(),
            spec_hash: spec_hash.to_string(),
            tx: receipt.transaction_hash.to_string(),
            escrow: escrow.to_string(),
            block: receipt.block_number.unwrap_or_default(),
        })
    }

    /// The job as the contract holds it.
    pub async fn job(&self, id: JobId) -> Result<shoal_chain::Job> {
        let job = self.chain.get_job(id).await.map_err(chain_err)?;
        if job.state == JobState::None {
            return Err(Error::UnknownJob(id));
        }
        Ok(job)
    }

    /// The verified result hash, once an operator published it (`ResultPublished`).
    pub async fn published_result(&self, id: JobId) -> Result<Option<B256>> {
        Ok(published_result(&self.events(id).await?))
    }

    /// Every event of a job, straight from the chain (market and registry), in chain order.
    pub async fn events(&self, id: JobId) -> Result<Vec<ChainEvent>> {
        self.events_from(id, self.deployment.deploy_block).await
    }

    async fn events_from(&self, id: JobId, from: u64) -> Result<Vec<ChainEvent>> {
        let d = &self.deployment;
        let filter = Filter::new()
            .address(vec![d.job_market, d.operator_registry])
            .topic1(B256::from(id.as_u256()))
            .from_block(from);
        let logs = self
            .chain
            .provider()
            .get_logs(&filter)
            .await
            .map_err(|e| Error::Chain(format!("eth_getLogs: {e}")))?;
        let mut out = Vec::new();
        for log in &logs {
            if let Some(ev) = ChainEvent::from_rpc_log(log, d.job_market, d.operator_registry) {
                let ev = ev.map_err(chain_err)?;
                if ev.event.job_id() == Some(id) {
                    out.push(ev);
                }
            }
        }
        out.sort_by_key(|e| (e.block_number, e.log_index));
        Ok(out)
    }

    /// The job's history for people and machines.
    pub async fn history(&self, id: JobId) -> Result<Vec<EventRecord>> {
        self.job(id).await?;
        Ok(self.events(id).await?.iter().map(describe).collect())
    }

    /// Waits until the job is final, calling `progress` for each new event, and returns how it
    /// ended. A job that did not verify is an error that says why.
    pub async fn wait(
        &self,
        id: JobId,
        timeout: Duration,
        mut progress: impl FnMut(&EventRecord),
    ) -> Result<Outcome> {
        let start = Instant::now();
        let mut seen = BTreeSet::new();
        let from = self.deployment.deploy_block;
        loop {
            let events = self.events_from(id, from).await?;
            for entry in events.iter().map(describe) {
                if seen.insert((entry.block, entry.log_index)) {
                    progress(&entry);
                }
            }
            let job = self.job(id).await?;
            match job.state {
                // Verified: the outcome once an operator has published the result hash
                // (`ResultPublished`, right after verification); until then keep waiting.
                JobState::Verified => {
                    if let Some(hash) = published_result(&events) {
                        return Ok(Outcome {
                            job_id: id,
                            state: JobState::Verified,
                            result_hash: Some(hash.to_string()),
                            result_cid: results_cid_of(hash).ok().map(|c| c.to_string()),
                        });
                    }
                }
                JobState::Failed => {
                    let reason = events
                        .iter()
                        .find_map(|e| match &e.event {
                            MarketEvent::JobFailed(f) => Some(fail_reason(f.reason)),
                            _ => None,
                        })
                        .unwrap_or_else(|| "no reason was recorded".into());
                    return Err(Error::JobEnded {
                        job: id,
                        state: "Failed".into(),
                        reason,
                    });
                }
                JobState::Expired => {
                    let reason = self.why_no_bids(id, job.bidCount, job.minBids).await;
                    return Err(Error::JobEnded {
                        job: id,
                        state: "Expired".into(),
                        reason,
                    });
                }
                _ => {}
            }
            if start.elapsed() >= timeout {
                let state = if job.state == JobState::Verified {
                    "Verified, but no operator has published the result hash yet (anyone who \
                     has it may call publishResult)"
                        .to_string()
                } else {
                    job.state.to_string()
                };
                return Err(Error::WaitTimeout {
                    job: id,
                    state,
                    secs: timeout.as_secs(),
                });
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// Why operators did not bid, from every node's recorded bid decision.
    pub async fn why_no_bids(&self, id: JobId, bids: u8, min_bids: u8) -> String {
        let mut reasons = Vec::new();
        for url in self.api.known_node_urls().await {
            let Ok(api) = NodeApi::new(&url) else {
                continue;
            };
            if let Ok(job) = api.job(id).await
                && let Some(d) = job.decision
                && !d.bid
            {
                let who = job.node.map_or(url, |a| a.to_string());
                reasons.push(format!("{who} declined: {}", d.reason));
            }
        }
        let mut msg = format!(
            "{bids} of the {min_bids} bids it needed arrived before the bid deadline; the escrow is refunded"
        );
        if reasons.is_empty() {
            msg.push_str(". No node recorded a reason: are enough operators registered and running (`shoal operator status`, GET /api/v1/nodes)? On a network smaller than the floor (it defaults to twice the concurrency) pass --min-bids (deal.min_bids) no larger than the number of operators");
        } else {
            msg.push_str(". ");
            msg.push_str(&reasons.join("; "));
        }
        msg
    }

    /// Downloads the verified results of a job into `dest`, checking that the downloaded
    /// folder hashes to the result hash the chain verified. Returns the result CID.
    pub async fn download_results(&self, id: JobId, dest: &Path) -> Result<Cid> {
        let job = self.job(id).await?;
        if job.state != JobState::Verified {
            return Err(Error::JobEnded {
                job: id,
                state: job.state.to_string(),
                reason: "only verified jobs have results; wait with `shoal job describe` or see `shoal deal show`".into(),
            });
        }
        let sealed = job.sealedResult;
        // The chain is the authority; the node may index the verification a moment later.
        let started = Instant::now();
        let car = loop {
            match self.api.job_results_car(id).await {
                Err(Error::Api {
                    status: 409 | 404, ..
                }) if started.elapsed() < Duration::from_secs(60) => {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
                other => break other?,
            }
        };
        let dest = dest.to_path_buf();
        tokio::task::spawn_blocking(move || -> Result<Cid> {
            let tmp = tempdir()?;
            let store = Blockstore::open(tmp.path())?;
            let roots = shoal_store::car::import_car(&store, &mut &car[..])?;
            let expected = || format!("the result sealed on chain as {sealed}");
            let root = *roots.first().ok_or_else(|| Error::ResultMismatch {
                job: id,
                expected: expected(),
                got: "a CAR without a root".into(),
            })?;
            let hash = shoal_api::result_hash_of(&root).ok();
            if hash.map(|h| shoal_chain::sealed_hash(id, h)) != Some(sealed) {
                return Err(Error::ResultMismatch {
                    job: id,
                    expected: expected(),
                    got: root.to_string(),
                });
            }
            shoal_store::export::export(&store, &root, &dest)?;
            let again = shoal_store::hash_path(&dest, Profile::UnixfsV1_2025)?;
            if again != root {
                return Err(Error::ResultMismatch {
                    job: id,
                    expected: root.to_string(),
                    got: again.to_string(),
                });
            }
            Ok(root)
        })
        .await
        .map_err(|e| Error::Chain(format!("download was interrupted: {e}")))?
    }
}

/// Imports a file or folder (any size, zero bytes included) into a scratch store and packs it
/// as a CAR v1: its root CID (profile `unixfs-v1-2025`) and the CAR bytes.
pub fn pack_car(path: &Path) -> Result<(Cid, Vec<u8>)> {
    let tmp = tempdir()?;
    let store = Blockstore::open(tmp.path())?;
    let imported = store.add_path(path, Profile::UnixfsV1_2025)?;
    let mut car = Vec::new();
    shoal_store::car::export_car(&store, &imported.cid, &mut car)?;
    Ok((imported.cid, car))
}

pub(crate) fn tempdir() -> Result<TempDir> {
    TempDir::new()
}

/// A scratch folder removed on drop.
pub(crate) struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new() -> Result<Self> {
        let p = std::env::temp_dir().join(format!(
            "shoal-client-{}-{}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::create_dir_all(&p).map_err(|e| Error::io("scratch folder", &p, e))?;
        Ok(Self(p))
    }
    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The result hash a `ResultPublished` event made public (the market checked it against the
/// accepted sealed hash).
fn published_result(events: &[ChainEvent]) -> Option<B256> {
    events.iter().rev().find_map(|e| match &e.event {
        MarketEvent::ResultPublished(p) => Some(p.resultHash),
        _ => None,
    })
}

fn fail_reason(reason: FailReason) -> String {
    let what = match reason {
        FailReason::TooFewCommits => {
            "too few selected operators committed a result in the execution window (the job may be too slow for its exec window, or nodes failed to run it: see `shoal job logs`)"
        }
        FailReason::TooFewReveals => "too few operators revealed their result in the reveal window",
        FailReason::NoQuorum => {
            "no group of equal results reached the confidence, counting the mediators' too when the job went to mediation (the program may not be deterministic)"
        }
        FailReason::NoMediatorMajority => "the mediators did not agree on a result",
        FailReason::NoCorrectResult => "mediation found none of the results correct",
        _ => "an unknown reason",
    };
    format!("{reason}: {what}; the escrow is refunded")
}

/// The on-chain parameters of a spec stored at `spec_cid` (see [`shoal_chain::job_params`]).
pub fn job_params(spec: &JobSpec, spec_cid: &Cid) -> shoal_chain::JobParams {
    shoal_chain::job_params(spec, spec_cid.to_bytes())
}
