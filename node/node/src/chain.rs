//! The node's view of the contracts: typed calls through the generated
//! bindings, one serialized transaction sender per key, and revert reasons
//! decoded from the market's custom errors.

use crate::bindings::{IJobMarket, JobMarket, OperatorRegistry};
use alloy::contract::{CallBuilder, CallDecoder};
use alloy::network::EthereumWallet;
use alloy::primitives::{Address, B256, U256, keccak256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::types::TransactionReceipt;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::SolValue;

use crate::config::DeploymentConfig;
use crate::error::{Error, Result};
use crate::model::JobId;

/// Gas added to every estimate (selection and settlement can run in the same transaction).
const GAS_HEADROOM: u64 = 1_500_000;
/// Most gas one transaction of the node may use.
const MAX_GAS: u64 = 15_000_000;

/// A connection to the chain, optionally with this node's operator key.
pub struct Chain {
    pub provider: DynProvider,
    pub market: JobMarket::JobMarketInstance<DynProvider>,
    pub registry: OperatorRegistry::OperatorRegistryInstance<DynProvider>,
    pub operator: Option<Address>,
    pub deployment: DeploymentConfig,
    pub rpc_url: String,
    pub chain_id: u64,
    tx_lock: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chain")
            .field("rpc_url", &self.rpc_url)
            .field("operator", &self.operator)
            .finish()
    }
}

/// `keccak256(abi.encode(jobId, operator, resultHash, salt))`, as the market computes it.
pub fn commitment(job: JobId, operator: Address, result_hash: B256, salt: B256) -> B256 {
    keccak256((U256::from(job.0), operator, result_hash, salt).abi_encode())
}

/// Connects a provider, with a wallet when a signer is given.
pub fn provider(rpc_url: &str, signer: Option<PrivateKeySigner>) -> Result<DynProvider> {
    let url: reqwest::Url = rpc_url
        .parse()
        .map_err(|e| Error::Config(format!("chain.rpc_url `{rpc_url}` is not a URL: {e}")))?;
    Ok(match signer {
        Some(s) => ProviderBuilder::new()
            .wallet(EthereumWallet::from(s))
            .connect_http(url)
            .erased(),
        None => ProviderBuilder::new().connect_http(url).erased(),
    })
}

impl Chain {
    /// Connects to `rpc_url` and checks the deployment is there.
    pub async fn connect(
        rpc_url: &str,
        deployment: DeploymentConfig,
        signer: Option<PrivateKeySigner>,
    ) -> Result<Self> {
        let operator = signer.as_ref().map(|s| s.address());
        let provider = provider(rpc_url, signer)?;
        let chain_id = provider.get_chain_id().await.map_err(|e| {
            Error::Chain(format!("cannot reach the chain at {rpc_url}: {e}; check chain.rpc_url and that the node is up"))
        })?;
        if let Some(expected) = deployment.chain_id
            && expected != chain_id
        {
            return Err(Error::Config(format!(
                "the deployment is for chain {expected} but {rpc_url} is chain {chain_id}"
            )));
        }
        let code = provider
            .get_code_at(deployment.job_market)
            .await
            .map_err(Error::chain)?;
        if code.is_empty() {
            return Err(Error::Config(format!(
                "no JobMarket contract at {} on chain {chain_id}; check the deployment addresses",
                deployment.job_market
            )));
        }
        let market = JobMarket::new(deployment.job_market, provider.clone());
        let registry = OperatorRegistry::new(deployment.operator_registry, provider.clone());
        Ok(Self {
            provider,
            market,
            registry,
            operator,
            deployment,
            rpc_url: rpc_url.to_owned(),
            chain_id,
            tx_lock: tokio::sync::Mutex::new(()),
        })
    }

    /// The operator address, or an error for a node without a key.
    pub fn operator(&self) -> Result<Address> {
        self.operator.ok_or_else(|| {
            Error::Config("this node has no operator key (operator.private_key)".into())
        })
    }

    /// Sends one transaction and waits for its receipt. Transactions of one
    /// node go out one at a time, so nonces never collide.
    pub async fn send<D: CallDecoder + Unpin>(
        &self,
        what: &str,
        call: CallBuilder<&DynProvider, D>,
    ) -> Result<TransactionReceipt> {
        let _guard = self.tx_lock.lock().await;
        // The gas a call needs depends on the state when it is mined: the m-th
        // bid selects deals, the last reveal settles the job. Leave room.
        let estimate = call
            .estimate_gas()
            .await
            .map_err(|e| Error::Chain(format!("{what}: {}", describe(&e))))?;
        let call = call.gas(
            estimate
                .saturating_mul(2)
                .saturating_add(GAS_HEADROOM)
                .min(MAX_GAS),
        );
        let pending = call
            .send()
            .await
            .map_err(|e| Error::Chain(format!("{what}: {}", describe(&e))))?;
        let receipt = pending
            .with_timeout(Some(std::time::Duration::from_secs(60)))
            .get_receipt()
            .await
            .map_err(|e| Error::Chain(format!("{what}: no receipt: {e}")))?;
        if !receipt.status() {
            return Err(Error::Chain(format!(
                "{what}: transaction {} reverted",
                receipt.transaction_hash
            )));
        }
        Ok(receipt)
    }

    /// `bid(jobId, price)`.
    pub async fn bid(&self, job: JobId, price: u128) -> Result<B256> {
        let price = alloy::primitives::Uint::<96, 2>::saturating_from(price);
        let r = self
            .send("bid", self.market.bid(U256::from(job.0), price))
            .await?;
        Ok(r.transaction_hash)
    }

    /// `commitResult(jobId, commitment)`.
    pub async fn commit(&self, job: JobId, commitment: B256) -> Result<B256> {
        let r = self
            .send(
                "commitResult",
                self.market.commitResult(U256::from(job.0), commitment),
            )
            .await?;
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
        let call =
            self.market
                .revealResult(U256::from(job.0), result_hash, salt, result_cid.into());
        Ok(self.send("revealResult", call).await?.transaction_hash)
    }

    /// `closeBidding(jobId)`.
    pub async fn close_bidding(&self, job: JobId) -> Result<B256> {
        Ok(self
            .send("closeBidding", self.market.closeBidding(U256::from(job.0)))
            .await?
            .transaction_hash)
    }

    /// `finalize(jobId)`.
    pub async fn finalize(&self, job: JobId) -> Result<B256> {
        Ok(self
            .send("finalize", self.market.finalize(U256::from(job.0)))
            .await?
            .transaction_hash)
    }

    /// `claim()` when something is withdrawable; returns the amount claimed.
    pub async fn claim_if_any(&self) -> Result<U256> {
        let me = self.operator()?;
        let amount = self
            .market
            .withdrawable(me)
            .call()
            .await
            .map_err(|e| Error::Chain(describe(&e)))?;
        if amount.is_zero() {
            return Ok(amount);
        }
        self.send("claim", self.market.claim()).await?;
        Ok(amount)
    }
}

/// A contract error with the market's or registry's custom error decoded when there is one.
pub fn describe(e: &alloy::contract::Error) -> String {
    if let Some(decoded) = e.as_decoded_interface_error::<JobMarket::JobMarketErrors>() {
        return format!("reverted with {decoded:?}");
    }
    if let Some(decoded) =
        e.as_decoded_interface_error::<OperatorRegistry::OperatorRegistryErrors>()
    {
        return format!("reverted with {decoded:?}");
    }
    e.to_string()
}

/// The `postJob` parameters for a spec stored under `spec_cid`: the spec hash is
/// keccak256 of the canonical JSON, the CID goes on chain as binary CID bytes.
pub fn job_params(spec: &shoal_types::JobSpec, spec_cid: &cid::Cid) -> IJobMarket::JobParams {
    let d = &spec.deal;
    let secs = |t: std::time::Duration| u32::try_from(t.as_secs()).unwrap_or(u32::MAX);
    let u8c = |v: u32| u8::try_from(v).unwrap_or(u8::MAX);
    let u96 = |v: u128| alloy::primitives::Uint::<96, 2>::saturating_from(v);
    let optimistic = d.verifier == shoal_types::Verifier::Optimistic;
    IJobMarket::JobParams {
        specCid: spec_cid.to_bytes().into(),
        specHash: keccak256(spec.to_canonical_json()),
        concurrency: u8c(d.concurrency),
        confidence: u8c(d.confidence),
        minBids: u8c(d.min_bids),
        maxPrice: u96(d.max_price),
        collateral: u96(d.collateral),
        bidWindow: secs(d.windows.bid),
        execWindow: secs(d.windows.exec),
        revealWindow: secs(d.windows.reveal),
        challengeWindow: if optimistic {
            secs(d.windows.reveal)
        } else {
            0
        },
        verifier: u8::from(optimistic),
        escalate: d.mediation,
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
    use alloy::sol_types::SolEvent;
    let p = provider(rpc_url, Some(creator))?;
    let m = JobMarket::new(market, p);
    let receipt = m
        .postJob(job_params(spec, spec_cid))
        .value(U256::from(spec.deal.escrow()))
        .send()
        .await
        .map_err(|e| Error::Chain(format!("postJob: {}", describe(&e))))?
        .get_receipt()
        .await
        .map_err(|e| Error::Chain(format!("postJob: {e}")))?;
    for log in receipt.inner.logs() {
        if let Ok(ev) = JobMarket::JobPosted::decode_log(&log.inner) {
            return Ok(JobId(u64::try_from(ev.data.jobId).unwrap_or(u64::MAX)));
        }
    }
    Err(Error::Chain(format!(
        "postJob: transaction {} emitted no JobPosted",
        receipt.transaction_hash
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

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
