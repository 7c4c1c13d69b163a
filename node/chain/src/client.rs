//! The chain client: typed calls to the registry and the market over any JSON-RPC endpoint.

use std::sync::Arc;
use std::time::Duration;

use alloy::eips::BlockNumberOrTag;
use alloy::network::TransactionBuilder;
use alloy::primitives::ruint::UintTryFrom;
use alloy::primitives::{Address, B256, Bytes, U256, aliases::U96, keccak256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::types::{TransactionReceipt, TransactionRequest};
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::{SolCall, SolEvent, SolValue};

use crate::bindings::{JobMarket, OperatorRegistry};
use crate::deploy::Deployment;
use crate::error::{Error, Result};
use crate::ids::JobId;
use crate::tx::{TxConfig, TxManager};

/// A job as `getJob` returns it.
pub type Job = JobMarket::Job;
/// Parameters of `postJob`.
pub type JobParams = JobMarket::JobParams;
/// A bid as `getBids` returns it.
pub type Bid = JobMarket::Bid;
/// A selected operator or mediator and its progress.
pub type Deal = JobMarket::Deal;
/// An operator as the registry knows it.
pub type Operator = OperatorRegistry::Operator;
/// What an operator's node can run.
pub type Capabilities = OperatorRegistry::Capabilities;

/// `operatorStatus`: whether the operator is registered, its bonded stake and its free stake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OperatorStatus {
    pub registered: bool,
    pub stake: U256,
    pub free: U256,
}

/// Configures a [`ChainClient`].
#[derive(Debug, Clone)]
pub struct ChainClientBuilder {
    url: String,
    signer: Option<PrivateKeySigner>,
    deployment: Option<Deployment>,
    tx: TxConfig,
    rpc_timeout: Duration,
}

/// Longest wait for one JSON-RPC answer over HTTP unless configured otherwise.
pub const DEFAULT_RPC_TIMEOUT: Duration = Duration::from_secs(30);

impl ChainClientBuilder {
    /// Signs transactions with this key.
    pub fn signer(mut self, signer: impl Into<Option<PrivateKeySigner>>) -> Self {
        self.signer = signer.into();
        self
    }

    /// Uses the contracts of this deployment (its chain id must match the endpoint's).
    pub fn deployment(mut self, deployment: impl Into<Option<Deployment>>) -> Self {
        self.deployment = deployment.into();
        self
    }

    /// Receipt polling, fee bumping and gas margins.
    pub fn tx_config(mut self, config: TxConfig) -> Self {
        self.tx = config;
        self
    }

    /// Longest wait for one JSON-RPC answer over HTTP (default [`DEFAULT_RPC_TIMEOUT`]): an
    /// endpoint that stops answering fails the call instead of hanging it.
    pub fn rpc_timeout(mut self, timeout: Duration) -> Self {
        self.rpc_timeout = timeout;
        self
    }

    /// Connects (http(s):// or ws(s)://) and reads the chain id.
    pub async fn connect(self) -> Result<ChainClient> {
        let http = self
            .url
            .starts_with("http")
            .then(|| {
                self.url
                    .parse::<alloy::transports::http::reqwest::Url>()
                    .ok()
            })
            .flatten();
        let provider = match http {
            Some(url) => {
                let timeout = self.rpc_timeout;
                ProviderBuilder::new()
                    .disable_recommended_fillers()
                    .with_reqwest(url, |b| b.timeout(timeout).build().unwrap_or_default())
                    .erased()
            }
            None => ProviderBuilder::new()
                .disable_recommended_fillers()
                .connect(&self.url)
                .await
                .map_err(|source| Error::Connect {
                    url: self.url.clone(),
                    source,
                })?
                .erased(),
        };
        let chain_id = provider
            .get_chain_id()
            .await
            .map_err(|source| Error::Connect {
                url: self.url.clone(),
                source,
            })?;
        let tx = self
            .signer
            .map(|s| TxManager::new(provider.clone(), s, chain_id, self.tx.clone()));
        let client = ChainClient {
            inner: Arc::new(Inner {
                provider,
                url: self.url,
                chain_id,
                tx_config: self.tx,
            }),
            tx,
            deployment: None,
        };
        match self.deployment {
            Some(d) => client.with_deployment(d),
            None => Ok(client),
        }
    }
}

struct Inner {
    provider: DynProvider,
    url: String,
    chain_id: u64,
    tx_config: TxConfig,
}

/// One client for the devchain, anvil or any EVM chain: reads, typed contract calls, and
/// transactions through a [`TxManager`]. Cheap to clone; clones share the connection and the
/// key's nonce.
#[derive(Clone)]
pub struct ChainClient {
    inner: Arc<Inner>,
    tx: Option<TxManager>,
    deployment: Option<Deployment>,
}

impl std::fmt::Debug for ChainClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainClient")
            .field("url", &self.inner.url)
            .field("chain_id", &self.inner.chain_id)
            .field("address", &self.address())
            .field("deployment", &self.deployment)
            .finish()
    }
}

impl ChainClient {
    /// Starts configuring a client for `url`.
    pub fn builder(url: impl Into<String>) -> ChainClientBuilder {
        ChainClientBuilder {
            url: url.into(),
            signer: None,
            deployment: None,
            tx: TxConfig::default(),
            rpc_timeout: DEFAULT_RPC_TIMEOUT,
        }
    }

    /// Connects to `url`, with an optional signing key.
    pub async fn connect(url: &str, signer: Option<PrivateKeySigner>) -> Result<Self> {
        Self::builder(url).signer(signer).connect().await
    }

    /// The same connection with the contracts of `deployment`.
    pub fn with_deployment(&self, deployment: Deployment) -> Result<Self> {
        if deployment.chain_id != self.inner.chain_id {
            return Err(Error::WrongChain {
                url: self.inner.url.clone(),
                expected: deployment.chain_id,
                actual: self.inner.chain_id,
            });
        }
        Ok(Self {
            deployment: Some(deployment),
            ..self.clone()
        })
    }

    /// The same connection signing with another key (with its own nonce tracking).
    pub fn with_signer(&self, signer: PrivateKeySigner) -> Self {
        let tx = TxManager::new(
            self.inner.provider.clone(),
            signer,
            self.inner.chain_id,
            self.inner.tx_config.clone(),
        );
        Self {
            tx: Some(tx),
            ..self.clone()
        }
    }

    /// The endpoint's chain id.
    pub fn chain_id(&self) -> u64 {
        self.inner.chain_id
    }

    /// The RPC URL.
    pub fn url(&self) -> &str {
        &self.inner.url
    }

    /// The signing address, if the client has a key.
    pub fn address(&self) -> Option<Address> {
        self.tx.as_ref().map(TxManager::address)
    }

    /// The underlying alloy provider, for calls this client does not wrap.
    pub fn provider(&self) -> &DynProvider {
        &self.inner.provider
    }

    /// The key's transaction manager.
    pub fn tx_manager(&self) -> Result<&TxManager> {
        self.tx.as_ref().ok_or(Error::NoSigner)
    }

    /// The contracts' addresses.
    pub fn deployment(&self) -> Result<&Deployment> {
        self.deployment.as_ref().ok_or(Error::NoDeployment)
    }

    fn market(&self) -> Result<JobMarket::JobMarketInstance<DynProvider>> {
        Ok(JobMarket::new(
            self.deployment()?.job_market,
            self.inner.provider.clone(),
        ))
    }

    fn registry(&self) -> Result<OperatorRegistry::OperatorRegistryInstance<DynProvider>> {
        Ok(OperatorRegistry::new(
            self.deployment()?.operator_registry,
            self.inner.provider.clone(),
        ))
    }

    // ---- chain ----

    /// The latest block number.
    pub async fn block_number(&self) -> Result<u64> {
        self.inner
            .provider
            .get_block_number()
            .await
            .map_err(Error::rpc("eth_blockNumber"))
    }

    /// The timestamp of the latest block (unix seconds).
    pub async fn block_timestamp(&self) -> Result<u64> {
        self.timestamp_of(BlockNumberOrTag::Latest).await
    }

    /// The timestamp of block `number` (unix seconds).
    pub async fn block_timestamp_at(&self, number: u64) -> Result<u64> {
        self.timestamp_of(BlockNumberOrTag::Number(number)).await
    }

    async fn timestamp_of(&self, block: BlockNumberOrTag) -> Result<u64> {
        let found = self
            .inner
            .provider
            .get_block_by_number(block)
            .await
            .map_err(Error::rpc("eth_getBlockByNumber"))?;
        found.map(|b| b.header.timestamp).ok_or(Error::Rpc {
            method: "eth_getBlockByNumber",
            source: alloy::transports::TransportErrorKind::custom_str(&format!(
                "the endpoint has no block {block}"
            )),
        })
    }

    /// An account's balance in wei.
    pub async fn balance(&self, account: Address) -> Result<U256> {
        self.inner
            .provider
            .get_balance(account)
            .await
            .map_err(Error::rpc("eth_getBalance"))
    }

    /// Sends any transaction from the client's key and waits for its receipt.
    pub async fn send(&self, tx: TransactionRequest) -> Result<TransactionReceipt> {
        self.tx_manager()?.send(tx).await
    }

    /// Sends `value` wei to `to`.
    pub async fn transfer(&self, to: Address, value: U256) -> Result<TransactionReceipt> {
        self.send(TransactionRequest::default().with_to(to).with_value(value))
            .await
    }

    pub(crate) async fn send_call(
        &self,
        to: Address,
        call: impl SolCall,
        value: U256,
    ) -> Result<TransactionReceipt> {
        let tx = TransactionRequest::default()
            .with_to(to)
            .with_input(call.abi_encode())
            .with_value(value);
        self.send(tx).await
    }

    /// A JobMarket call through the key's batcher (see [`TxManager::send_batched`]).
    async fn send_market(&self, call: impl SolCall) -> Result<TransactionReceipt> {
        let to = self.deployment()?.job_market;
        self.tx_manager()?
            .send_batched(to, call.abi_encode().into())
            .await
    }

    // ---- registry ----

    /// Registers the key as an operator with `stake` wei of initial stake.
    pub async fn register(
        &self,
        peer_id: Bytes,
        capabilities: Capabilities,
        stake: U256,
    ) -> Result<TransactionReceipt> {
        let to = self.deployment()?.operator_registry;
        self.send_call(
            to,
            OperatorRegistry::registerCall {
                peerId: peer_id,
                capabilities,
            },
            stake,
        )
        .await
    }

    /// Replaces the operator's peer id and capabilities.
    pub async fn update_operator(
        &self,
        peer_id: Bytes,
        capabilities: Capabilities,
    ) -> Result<TransactionReceipt> {
        let to = self.deployment()?.operator_registry;
        self.send_call(
            to,
            OperatorRegistry::updateOperatorCall {
                peerId: peer_id,
                capabilities,
            },
            U256::ZERO,
        )
        .await
    }

    /// Adds `amount` wei to the operator's stake.
    pub async fn stake(&self, amount: U256) -> Result<TransactionReceipt> {
        let to = self.deployment()?.operator_registry;
        self.send_call(to, OperatorRegistry::stakeCall {}, amount)
            .await
    }

    /// Moves `amount` wei of free stake into a pending withdrawal.
    pub async fn request_withdrawal(&self, amount: U256) -> Result<TransactionReceipt> {
        let to = self.deployment()?.operator_registry;
        let amount = to_u96("withdrawal amount", amount)?;
        self.send_call(
            to,
            OperatorRegistry::requestWithdrawalCall { amount },
            U256::ZERO,
        )
        .await
    }

    /// Pays out the pending withdrawal after the unbonding period.
    pub async fn withdraw(&self) -> Result<TransactionReceipt> {
        let to = self.deployment()?.operator_registry;
        self.send_call(to, OperatorRegistry::withdrawCall {}, U256::ZERO)
            .await
    }

    /// `registry.setMarket(market)`; once, by the registry's deployer.
    pub async fn set_market(&self, market: Address) -> Result<TransactionReceipt> {
        let to = self.deployment()?.operator_registry;
        self.send_call(
            to,
            OperatorRegistry::setMarketCall { market_: market },
            U256::ZERO,
        )
        .await
    }

    /// An operator's registration and stake.
    pub async fn get_operator(&self, operator: Address) -> Result<Operator> {
        self.registry()?
            .getOperator(operator)
            .call()
            .await
            .map_err(call_error("getOperator"))
    }

    /// Registered, bonded stake and free stake of an operator.
    pub async fn operator_status(&self, operator: Address) -> Result<OperatorStatus> {
        let r = self
            .registry()?
            .operatorStatus(operator)
            .call()
            .await
            .map_err(call_error("operatorStatus"))?;
        Ok(OperatorStatus {
            registered: r.registered,
            stake: U256::from(r.stake_),
            free: U256::from(r.free),
        })
    }

    /// Every operator ever registered, in registration order.
    pub async fn operators(&self) -> Result<Vec<Address>> {
        let registry = self.registry()?;
        let count = registry
            .operatorCount()
            .call()
            .await
            .map_err(call_error("operatorCount"))?;
        let mut out = Vec::new();
        let mut i = U256::ZERO;
        while i < count {
            out.push(
                registry
                    .operatorAt(i)
                    .call()
                    .await
                    .map_err(call_error("operatorAt"))?,
            );
            i += U256::from(1);
        }
        Ok(out)
    }

    /// The minimum stake to register, in wei.
    pub async fn min_stake(&self) -> Result<U256> {
        Ok(U256::from(
            self.registry()?
                .minStake()
                .call()
                .await
                .map_err(call_error("minStake"))?,
        ))
    }

    // ---- market ----

    /// Posts a job, paying the escrow (`concurrency × maxPrice`); returns its id from the
    /// `JobPosted` event.
    pub async fn post_job(&self, params: JobParams) -> Result<(JobId, TransactionReceipt)> {
        let to = self.deployment()?.job_market;
        let escrow = U256::from(params.concurrency) * U256::from(params.maxPrice);
        let receipt = self
            .send_call(to, JobMarket::postJobCall { params }, escrow)
            .await?;
        let posted = receipt
            .inner
            .logs()
            .iter()
            .filter(|l| l.address() == to)
            .find_map(|l| JobMarket::JobPosted::decode_log(&l.inner).ok())
            .ok_or(Error::MissingEvent {
                tx_hash: receipt.transaction_hash,
                event: "JobPosted",
                contract: "JobMarket",
            })?;
        Ok((JobId(posted.jobId), receipt))
    }

    /// Bids `price` wei for one execution of `job`.
    pub async fn bid(&self, job: JobId, price: U256) -> Result<TransactionReceipt> {
        let price = to_u96("bid price", price)?;
        self.send_market(JobMarket::bidCall {
            jobId: job.0,
            price,
        })
        .await
    }

    /// Commits `commitment` (see [`commitment`]) for `job`.
    pub async fn commit_result(&self, job: JobId, commitment: B256) -> Result<TransactionReceipt> {
        self.send_market(JobMarket::commitResultCall {
            jobId: job.0,
            commitment,
        })
        .await
    }

    /// An original deal's reveal: the committed sealed hash ([`sealed_hash`] of the result
    /// hash) and its salt. The plain result hash stays private until the job is verified.
    pub async fn reveal_result(
        &self,
        job: JobId,
        sealed: B256,
        salt: B256,
    ) -> Result<TransactionReceipt> {
        let call = JobMarket::revealResultCall {
            jobId: job.0,
            sealedHash: sealed,
            salt,
        };
        self.send_market(call).await
    }

    /// A mediator's reveal: the plain result hash it committed and its salt.
    pub async fn reveal_mediation(
        &self,
        job: JobId,
        result_hash: B256,
        salt: B256,
    ) -> Result<TransactionReceipt> {
        let call = JobMarket::revealMediationCall {
            jobId: job.0,
            resultHash: result_hash,
            salt,
        };
        self.send_market(call).await
    }

    /// Publishes a verified job's plain result hash (its results folder's CID digest); the
    /// market checks it against the accepted sealed hash.
    pub async fn publish_result(
        &self,
        job: JobId,
        result_hash: B256,
    ) -> Result<TransactionReceipt> {
        let call = JobMarket::publishResultCall {
            jobId: job.0,
            resultHash: result_hash,
        };
        self.send_market(call).await
    }

    /// After the bid deadline: selects deals, or expires the job.
    pub async fn close_bidding(&self, job: JobId) -> Result<TransactionReceipt> {
        self.send_market(JobMarket::closeBiddingCall { jobId: job.0 })
            .await
    }

    /// Moves a job past a phase whose deadline is over.
    pub async fn finalize(&self, job: JobId) -> Result<TransactionReceipt> {
        self.send_market(JobMarket::finalizeCall { jobId: job.0 })
            .await
    }

    /// The bond `challenge` takes for a job (it scales with the job's escrow).
    pub async fn challenge_bond_of(&self, job: JobId) -> Result<U256> {
        self.market()?
            .challengeBondOf(job.0)
            .call()
            .await
            .map_err(call_error("challengeBondOf"))
    }

    /// Challenges an optimistic job's results, paying the market's challenge bond.
    pub async fn challenge(&self, job: JobId) -> Result<TransactionReceipt> {
        let to = self.deployment()?.job_market;
        let bond = self.challenge_bond_of(job).await?;
        self.send_call(to, JobMarket::challengeCall { jobId: job.0 }, bond)
            .await
    }

    /// Pays out the key's accumulated payouts and refunds.
    pub async fn claim(&self) -> Result<TransactionReceipt> {
        let to = self.deployment()?.job_market;
        self.send_call(to, JobMarket::claimCall {}, U256::ZERO)
            .await
    }

    /// A job's state and parameters.
    pub async fn get_job(&self, job: JobId) -> Result<Job> {
        self.market()?
            .getJob(job.0)
            .call()
            .await
            .map_err(call_error("getJob"))
    }

    /// The bids on a job.
    pub async fn get_bids(&self, job: JobId) -> Result<Vec<Bid>> {
        self.market()?
            .getBids(job.0)
            .call()
            .await
            .map_err(call_error("getBids"))
    }

    /// The selected operators of a job (empty before selection).
    pub async fn get_deals(&self, job: JobId) -> Result<Vec<Deal>> {
        self.market()?
            .getDeals(job.0)
            .call()
            .await
            .map_err(call_error("getDeals"))
    }

    /// The mediators drawn for a job's dispute (empty when there was none).
    pub async fn get_mediators(&self, job: JobId) -> Result<Vec<Deal>> {
        self.market()?
            .getMediators(job.0)
            .call()
            .await
            .map_err(call_error("getMediators"))
    }

    /// What `account` can `claim()`, in wei.
    pub async fn withdrawable(&self, account: Address) -> Result<U256> {
        self.market()?
            .withdrawable(account)
            .call()
            .await
            .map_err(call_error("withdrawable"))
    }

    /// The id the next posted job gets.
    pub async fn next_job_id(&self) -> Result<JobId> {
        Ok(JobId(
            self.market()?
                .nextJobId()
                .call()
                .await
                .map_err(call_error("nextJobId"))?,
        ))
    }

    /// The commitment as the contract computes it (`commitmentOf`); see [`commitment`] for the
    /// same value without a call.
    pub async fn commitment_of(
        &self,
        job: JobId,
        operator: Address,
        result_hash: B256,
        salt: B256,
    ) -> Result<B256> {
        self.market()?
            .commitmentOf(job.0, operator, result_hash, salt)
            .call()
            .await
            .map_err(call_error("commitmentOf"))
    }
}

/// `keccak256(abi.encode(jobId, operator, value, salt))`, exactly as the market computes the
/// commitment an operator must submit: `value` is the [`sealed_hash`] of the result for an
/// original deal, the plain result hash for a mediator (so a mediator cannot commit to a result
/// it only saw sealed in the originals' reveals).
pub fn commitment(job: JobId, operator: Address, value: B256, salt: B256) -> B256 {
    keccak256((job.0, operator, value, salt).abi_encode())
}

/// `keccak256(abi.encode(jobId, resultHash))`: what original deals reveal and what the market
/// tallies, so a job's plain result hash is public only once it is verified (`publishResult`).
pub fn sealed_hash(job: JobId, result_hash: B256) -> B256 {
    keccak256((job.0, result_hash).abi_encode())
}

/// Converts wei to the contracts' `uint96` amounts (job prices, collateral, stake).
pub fn u96(value: U256) -> Result<U96> {
    to_u96("amount", value)
}

pub(crate) fn to_u96(what: &'static str, v: U256) -> Result<U96> {
    <U96 as UintTryFrom<U256>>::uint_try_from(v)
        .map_err(|_| Error::AmountTooLarge { what, value: v })
}

pub(crate) fn call_error(what: &'static str) -> impl FnOnce(alloy::contract::Error) -> Error {
    move |e| match e {
        alloy::contract::Error::TransportError(t) => Error::rpc("eth_call")(t),
        other => Error::Call {
            what,
            source: Box::new(other),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commitment_binds_every_field() {
        let (job, op, h, s) = (
            JobId::from(1u64),
            Address::repeat_byte(7),
            B256::repeat_byte(1),
            B256::repeat_byte(2),
        );
        let c = commitment(job, op, h, s);
        assert_ne!(c, commitment(JobId::from(2u64), op, h, s));
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
