//! The node's side of the chain: [`Chain`], typed calls through `shoal-chain` with one
//! [`shoal_chain::TxManager`] per operator key (local nonces, so a node's bids, commits and
//! reveals of different jobs go out concurrently); the [`follower`] that reads the market's
//! events into the state store; and the [`projection`] that folds events into job views.

pub mod follower;
pub mod projection;

use std::time::Duration;

use alloy::primitives::{Address, B256, U256};
use alloy::providers::Provider;
use alloy::signers::local::PrivateKeySigner;
use shoal_chain::{ChainClient, Deployment, TxConfig};

use crate::config::DeploymentConfig;
use crate::error::{Error, Result};
pub use shoal_chain::{JobId, commitment, sealed_hash};

/// Gas added to every estimate: the bid that selects deals and the reveal that settles a job
/// cost more when mined than when estimated on a state where they do not.
const GAS_HEADROOM: u64 = 1_500_000;
/// Most gas one transaction of the node may use.
const MAX_GAS: u64 = 15_000_000;

/// A connection to the chain, optionally with this node's operator key.
#[derive(Debug)]
pub struct Chain {
    client: ChainClient,
    pub operator: Option<Address>,
    pub deployment: DeploymentConfig,
    pub rpc_url: String,
    pub chain_id: u64,
}

/// How the node's transactions are sent: receipts polled often (a devchain mines at once),
/// estimates with room for state-dependent costs, market calls batched up to `max_batch`.
fn tx_config(poll: Duration, max_batch: usize) -> TxConfig {
    TxConfig {
        poll_interval: poll.clamp(Duration::from_millis(5), Duration::from_millis(250)),
        gas_margin_percent: 100,
        gas_headroom: GAS_HEADROOM,
        max_gas: MAX_GAS,
        max_batch,
        ..TxConfig::default()
    }
}

impl Chain {
    /// Connects to `rpc_url` and checks the deployment is there.
    pub async fn connect(
        rpc_url: &str,
        deployment: DeploymentConfig,
        signer: Option<PrivateKeySigner>,
        receipt_poll: Duration,
        max_batch: usize,
    ) -> Result<Self> {
        let operator = signer.as_ref().map(|s| s.address());
        let client = ChainClient::builder(rpc_url)
            .signer(signer)
            .tx_config(tx_config(receipt_poll, max_batch))
            .connect()
            .await
            .map_err(Error::chain("connecting to chain.rpc_url"))?;
        let chain_id = client.chain_id();
        if let Some(expected) = deployment.chain_id
            && expected != chain_id
        {
            return Err(Error::Config(format!(
                "the deployment is for chain {expected} but {rpc_url} is chain {chain_id}"
            )));
        }
        let client = client
            .with_deployment(deployment.on_chain(chain_id))
            .map_err(Error::chain("using the deployment"))?;
        let code = client
            .provider()
            .get_code_at(deployment.job_market)
            .await
            .map_err(|e| Error::Chain {
                what: "reading the market's code",
                source: Box::new(shoal_chain::Error::Rpc {
                    method: "eth_getCode",
                    source: e,
                }),
            })?;
        if code.is_empty() {
            return Err(Error::Config(format!(
                "no JobMarket contract at {} on chain {chain_id}; check the deployment addresses",
                deployment.job_market
            )));
        }
        Ok(Self {
            client,
            operator,
            deployment,
            rpc_url: rpc_url.to_owned(),
            chain_id,
        })
    }

    /// The typed client (reads, the event follower).
    pub fn client(&self) -> &ChainClient {
        &self.client
    }

    /// The operator address, or an error for a node without a key.
    pub fn operator(&self) -> Result<Address> {
        self.operator.ok_or_else(|| {
            Error::Config("this node has no operator key (operator.private_key)".into())
        })
    }

    /// `bid(jobId, price)`; the transaction hash.
    pub async fn bid(&self, job: JobId, price: U256) -> Result<B256> {
        let r = self
            .client
            .bid(job, price)
            .await
            .map_err(Error::chain("bid"))?;
        Ok(r.transaction_hash)
    }

    /// `commitResult(jobId, commitment)`.
    pub async fn commit(&self, job: JobId, commitment: B256) -> Result<B256> {
        let r = self
            .client
            .commit_result(job, commitment)
            .await
            .map_err(Error::chain("commitResult"))?;
        Ok(r.transaction_hash)
    }

    /// An original deal's `revealResult(jobId, sealedHash, salt)`, or a mediator's
    /// `revealMediation(jobId, resultHash, salt)`.
    pub async fn reveal(
        &self,
        job: JobId,
        mediator: bool,
        result_hash: B256,
        salt: B256,
    ) -> Result<B256> {
        let r = if mediator {
            self.client
                .reveal_mediation(job, result_hash, salt)
                .await
                .map_err(Error::chain("revealMediation"))?
        } else {
            self.client
                .reveal_result(job, sealed_hash(job, result_hash), salt)
                .await
                .map_err(Error::chain("revealResult"))?
        };
        Ok(r.transaction_hash)
    }

    /// `publishResult(jobId, resultHash)`: makes a verified job's result hash (and CID) public.
    pub async fn publish_result(&self, job: JobId, result_hash: B256) -> Result<B256> {
        let r = self
            .client
            .publish_result(job, result_hash)
            .await
            .map_err(Error::chain("publishResult"))?;
        Ok(r.transaction_hash)
    }

    /// `closeBidding(jobId)`.
    pub async fn close_bidding(&self, job: JobId) -> Result<B256> {
        let r = self
            .client
            .close_bidding(job)
            .await
            .map_err(Error::chain("closeBidding"))?;
        Ok(r.transaction_hash)
    }

    /// The bond a challenge of `job` takes, in wei.
    pub async fn challenge_bond(&self, job: JobId) -> Result<U256> {
        self.client
            .challenge_bond_of(job)
            .await
            .map_err(Error::chain("challengeBondOf"))
    }

    /// `challenge(jobId)` with the job's bond.
    pub async fn challenge(&self, job: JobId) -> Result<B256> {
        let r = self
            .client
            .challenge(job)
            .await
            .map_err(Error::chain("challenge"))?;
        Ok(r.transaction_hash)
    }

    /// `finalize(jobId)`.
    pub async fn finalize(&self, job: JobId) -> Result<B256> {
        let r = self
            .client
            .finalize(job)
            .await
            .map_err(Error::chain("finalize"))?;
        Ok(r.transaction_hash)
    }

    /// `claim()` when something is withdrawable; returns the amount claimed.
    pub async fn claim_if_any(&self) -> Result<U256> {
        let me = self.operator()?;
        let amount = self
            .client
            .withdrawable(me)
            .await
            .map_err(Error::chain("withdrawable"))?;
        if amount.is_zero() {
            return Ok(amount);
        }
        self.client.claim().await.map_err(Error::chain("claim"))?;
        Ok(amount)
    }
}

/// Posts a job from `creator` (paying the escrow) and returns its id.
pub async fn post_job(
    rpc_url: &str,
    market: Address,
    creator: PrivateKeySigner,
    spec: &shoal_types::JobSpec,
    spec_cid: &cid::Cid,
) -> Result<JobId> {
    let client = ChainClient::connect(rpc_url, Some(creator))
        .await
        .map_err(Error::chain("connecting"))?;
    let chain_id = client.chain_id();
    let registry = market_registry(&client, market).await?;
    let client = client
        .with_deployment(Deployment {
            chain_id,
            operator_registry: registry,
            job_market: market,
            shard_market: None,
            pipeline_market: None,
            deploy_block: 0,
            params: None,
        })
        .map_err(Error::chain("using the market"))?;
    let (id, _) = client
        .post_job(shoal_chain::job_params(spec, spec_cid.to_bytes()))
        .await
        .map_err(Error::chain("postJob"))?;
    Ok(id)
}

/// The registry a market was deployed with.
async fn market_registry(client: &ChainClient, market: Address) -> Result<Address> {
    shoal_chain::bindings::JobMarket::new(market, client.provider().clone())
        .registry()
        .call()
        .await
        .map_err(|e| Error::Chain {
            what: "reading the market's registry",
            source: Box::new(shoal_chain::Error::Call {
                what: "registry()",
                source: Box::new(e),
            }),
        })
}
