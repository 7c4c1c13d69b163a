//! The node's view of the contracts, through `shoal-chain`: typed calls, one
//! [`shoal_chain::TxManager`] per operator key (local nonces, so a node's
//! bids, commits and reveals of different jobs go out concurrently), and
//! reverts decoded from the contracts' custom errors.

use std::time::Duration;

use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::providers::Provider;
use alloy::signers::local::PrivateKeySigner;
use shoal_chain::{ChainClient, Deployment, TxConfig};

use crate::config::DeploymentConfig;
use crate::error::{Error, Result};
use crate::model::JobId;

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

impl From<JobId> for shoal_chain::JobId {
    fn from(id: JobId) -> Self {
        shoal_chain::JobId(U256::from(id.0))
    }
}

/// A chain job id as the node's (ids beyond `u64` do not occur: the market counts from 1).
pub fn job_id(v: U256) -> JobId {
    JobId(u64::try_from(v).unwrap_or(u64::MAX))
}

/// `keccak256(abi.encode(jobId, operator, resultHash, salt))`, as the market computes it.
pub fn commitment(job: JobId, operator: Address, result_hash: B256, salt: B256) -> B256 {
    shoal_chain::commitment(job.into(), operator, result_hash, salt)
}

/// How the node's transactions are sent: receipts polled often (a devchain mines at once),
/// estimates with room for state-dependent costs.
fn tx_config(poll: Duration) -> TxConfig {
    TxConfig {
        poll_interval: poll.clamp(Duration::from_millis(5), Duration::from_millis(250)),
        gas_margin_percent: 100,
        gas_headroom: GAS_HEADROOM,
        max_gas: MAX_GAS,
        ..TxConfig::default()
    }
}

/// Maps a chain error, keeping the contract error's name (e.g. `JobMarket__AlreadyBid`) so a
/// caller can tell an expected revert from a failure.
fn chain_err(what: &'static str) -> impl FnOnce(shoal_chain::Error) -> Error {
    move |e| match e.contract_error() {
        Some(c) => Error::Reverted {
            what,
            name: c.name(),
            reason: e.to_string(),
        },
        None => Error::Chain(format!("{what}: {e}")),
    }
}

impl Chain {
    /// Connects to `rpc_url` and checks the deployment is there.
    pub async fn connect(
        rpc_url: &str,
        deployment: DeploymentConfig,
        signer: Option<PrivateKeySigner>,
        receipt_poll: Duration,
    ) -> Result<Self> {
        let operator = signer.as_ref().map(|s| s.address());
        let client = ChainClient::builder(rpc_url)
            .signer(signer)
            .tx_config(tx_config(receipt_poll))
            .connect()
            .await
            .map_err(|e| Error::Chain(format!("{e}; check chain.rpc_url")))?;
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
            .map_err(Error::chain)?;
        let code = client
            .provider()
            .get_code_at(deployment.job_market)
            .await
            .map_err(Error::chain)?;
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
    pub async fn bid(&self, job: JobId, price: u128) -> Result<B256> {
        let r = self
            .client
            .bid(job.into(), U256::from(price))
            .await
            .map_err(chain_err("bid"))?;
        Ok(r.transaction_hash)
    }

    /// `commitResult(jobId, commitment)`.
    pub async fn commit(&self, job: JobId, commitment: B256) -> Result<B256> {
        let r = self
            .client
            .commit_result(job.into(), commitment)
            .await
            .map_err(chain_err("commitResult"))?;
        Ok(r.transaction_hash)
    }

    /// `revealResult(jobId, resultHash, salt, resultCid)`.
    pub async fn reveal(
        &self,
        job: JobId,
        result_hash: B256,
        salt: B256,
        result_cid: Vec<u8>,
    ) -> Result<B256> {
        let r = self
            .client
            .reveal_result(job.into(), result_hash, salt, Bytes::from(result_cid))
            .await
            .map_err(chain_err("revealResult"))?;
        Ok(r.transaction_hash)
    }

    /// `closeBidding(jobId)`.
    pub async fn close_bidding(&self, job: JobId) -> Result<B256> {
        let r = self
            .client
            .close_bidding(job.into())
            .await
            .map_err(chain_err("closeBidding"))?;
        Ok(r.transaction_hash)
    }

    /// `finalize(jobId)`.
    pub async fn finalize(&self, job: JobId) -> Result<B256> {
        let r = self
            .client
            .finalize(job.into())
            .await
            .map_err(chain_err("finalize"))?;
        Ok(r.transaction_hash)
    }

    /// `claim()` when something is withdrawable; returns the amount claimed.
    pub async fn claim_if_any(&self) -> Result<U256> {
        let me = self.operator()?;
        let amount = self
            .client
            .withdrawable(me)
            .await
            .map_err(chain_err("withdrawable"))?;
        if amount.is_zero() {
            return Ok(amount);
        }
        self.client.claim().await.map_err(chain_err("claim"))?;
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
        .map_err(Error::chain)?;
    let chain_id = client.chain_id();
    let registry = market_registry(&client, market).await?;
    let client = client
        .with_deployment(Deployment {
            chain_id,
            operator_registry: registry,
            job_market: market,
            deploy_block: 0,
            params: None,
        })
        .map_err(Error::chain)?;
    let (id, _) = client
        .post_job(shoal_chain::job_params(spec, spec_cid.to_bytes()))
        .await
        .map_err(chain_err("postJob"))?;
    Ok(job_id(id.0))
}

/// The registry a market was deployed with.
async fn market_registry(client: &ChainClient, market: Address) -> Result<Address> {
    shoal_chain::bindings::JobMarket::new(market, client.provider().clone())
        .registry()
        .call()
        .await
        .map_err(|e| Error::Chain(format!("reading the market's registry: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::primitives::keccak256;

    #[test]
    fn commitment_binds_every_field() {
        let (job, op, h, s) = (
            JobId(1),
            Address::repeat_byte(7),
            B256::repeat_byte(1),
            B256::repeat_byte(2),
        );
        let c = commitment(job, op, h, s);
        assert_ne!(c, commitment(JobId(2), op, h, s));
        assert_ne!(c, commitment(job, Address::repeat_byte(8), h, s));
        assert_ne!(c, commitment(job, op, B256::repeat_byte(3), s));
        assert_ne!(c, commitment(job, op, h, B256::repeat_byte(3)));
        let mut manual = Vec::new();
        manual.extend_from_slice(&U256::from(1u64).to_be_bytes::<32>());
        manual.extend_from_slice(B256::left_padding_from(op.as_slice()).as_slice());
        manual.extend_from_slice(h.as_slice());
        manual.extend_from_slice(s.as_slice());
        assert_eq!(c, keccak256(manual));
    }
}
