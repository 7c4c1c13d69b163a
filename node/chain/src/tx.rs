//! The transaction manager: one per key.

use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy::consensus::TxEnvelope;
use alloy::eips::BlockId;
use alloy::eips::eip1559::Eip1559Estimation;
use alloy::eips::eip2718::Encodable2718;
use alloy::network::{Ethereum, EthereumWallet, NetworkWallet, TransactionBuilder};
use alloy::primitives::{Address, B256, Bytes};
use alloy::providers::{DynProvider, Provider};
use alloy::rpc::types::{TransactionReceipt, TransactionRequest};
use alloy::signers::local::PrivateKeySigner;
use alloy::transports::TransportError;

use crate::batch::Batchers;
use crate::error::{ContractError, Error, Result, revert_data};

/// How the transaction manager sends and waits.
#[derive(Debug, Clone)]
pub struct TxConfig {
    /// How often to poll for a receipt.
    pub poll_interval: Duration,
    /// How long to wait for a receipt before replacing the transaction with higher fees.
    pub bump_after: Duration,
    /// How many times to raise the fees of one transaction before giving up.
    pub max_bumps: u32,
    /// Fee increase per bump, in percent (nodes require at least 10 to replace).
    pub bump_percent: u64,
    /// Gas limit = estimate × (100 + this) / 100 + `gas_headroom`, at most `max_gas`.
    pub gas_margin_percent: u64,
    /// Gas added to every estimate: a call whose cost depends on the state it is mined on
    /// (the bid that selects the deals, the reveal that settles a job) needs room.
    pub gas_headroom: u64,
    /// Largest gas limit the manager sets on an estimated transaction.
    pub max_gas: u64,
    /// How long a fee estimate (`eth_feeHistory`) is reused for the next transactions. A
    /// transaction sent with fees that went stale is replaced after `bump_after` anyway.
    pub fee_ttl: Duration,
    /// Most calls [`TxManager::send_batched`] puts in one `batch` transaction; 1 sends every
    /// call on its own.
    pub max_batch: usize,
}

impl Default for TxConfig {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_millis(100),
            bump_after: Duration::from_secs(30),
            max_bumps: 5,
            bump_percent: 25,
            gas_margin_percent: 25,
            gas_headroom: 0,
            max_gas: 30_000_000,
            fee_ttl: Duration::from_secs(1),
            max_batch: 1,
        }
    }
}

/// Sends transactions from one key: assigns nonces locally so concurrent senders never collide,
/// waits for receipts, replaces transactions that are not mined in time with higher fees, and
/// decodes reverts into [`ContractError`]. Cheap to clone; clones share the nonce.
#[derive(Clone)]
pub struct TxManager {
    inner: Arc<Inner>,
}

struct Inner {
    provider: DynProvider,
    wallet: EthereumWallet,
    address: Address,
    chain_id: u64,
    /// The next nonce to use; `None` means "read it from the chain".
    nonce: std::sync::Mutex<Option<u64>>,
    /// The last fee estimate and when it was read.
    fees: std::sync::Mutex<Option<(Instant, Eip1559Estimation)>>,
    config: TxConfig,
    batchers: Batchers,
}

/// A [`TxManager`] that does not keep it alive (held by its batchers' tasks).
pub(crate) struct WeakTxManager(std::sync::Weak<Inner>);

impl WeakTxManager {
    pub(crate) fn upgrade(&self) -> Option<TxManager> {
        self.0.upgrade().map(|inner| TxManager { inner })
    }
}

impl std::fmt::Debug for TxManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TxManager")
            .field("address", &self.inner.address)
            .finish()
    }
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A transaction that was sent and not yet mined.
struct InFlight {
    nonce: u64,
    hashes: Vec<B256>,
    max_fee: u128,
    tip: u128,
}

impl TxManager {
    /// A manager for `signer` on the chain behind `provider`.
    pub fn new(
        provider: DynProvider,
        signer: PrivateKeySigner,
        chain_id: u64,
        config: TxConfig,
    ) -> Self {
        let address = signer.address();
        let wallet = EthereumWallet::from(signer);
        Self {
            inner: Arc::new(Inner {
                provider,
                wallet,
                address,
                chain_id,
                nonce: std::sync::Mutex::new(None),
                fees: std::sync::Mutex::new(None),
                config,
                batchers: Batchers::default(),
            }),
        }
    }

    /// The sending address.
    pub fn address(&self) -> Address {
        self.inner.address
    }

    pub(crate) fn downgrade(&self) -> WeakTxManager {
        WeakTxManager(Arc::downgrade(&self.inner))
    }

    /// Sends the call `input` to `to`, a contract with `batch(bytes[])` (the JobMarket): calls
    /// queued while an earlier one to the same contract is in flight go out together in one
    /// transaction (at most `max_batch`; see the `batch` module). The receipt may be shared
    /// with other calls; a revert is this call's own [`Error::Reverted`].
    pub async fn send_batched(&self, to: Address, input: Bytes) -> Result<TransactionReceipt> {
        let max = self.inner.config.max_batch;
        if max <= 1 {
            let tx = TransactionRequest::default().with_to(to).with_input(input);
            return self.send(tx).await;
        }
        self.inner.batchers.send(self, to, input, max).await
    }

    /// Forgets the local nonce; the next transaction reads it from the chain.
    pub async fn resync_nonce(&self) {
        *lock(&self.inner.nonce) = None;
    }

    /// Sends a transaction (`to`, `input`, `value` set by the caller) and waits for its receipt.
    /// The gas limit is estimated unless the caller set one. A revert at estimate time or in the
    /// mined receipt is [`Error::Reverted`].
    pub async fn send(&self, tx: TransactionRequest) -> Result<TransactionReceipt> {
        let inner = &self.inner;
        let tx = tx.with_from(inner.address).with_chain_id(inner.chain_id);
        let gas = match tx.gas {
            Some(gas) => gas,
            None => {
                let estimate = inner
                    .provider
                    .estimate_gas(tx.clone())
                    .await
                    .map_err(Error::rpc("eth_estimateGas"))?;
                let cfg = &inner.config;
                (estimate.saturating_mul(100 + cfg.gas_margin_percent) / 100)
                    .saturating_add(cfg.gas_headroom)
                    .min(cfg.max_gas.max(estimate))
            }
        };
        let fees = self.fees().await?;
        let tx = tx.with_gas_limit(gas);
        let mut flight = self
            .submit(
                tx.clone(),
                fees.max_fee_per_gas,
                fees.max_priority_fee_per_gas,
            )
            .await?;
        let receipt = self.wait(&tx, &mut flight).await?;
        if receipt.status() {
            return Ok(receipt);
        }
        Err(self.explain_failure(tx, &receipt).await)
    }

    /// The current fee estimate, read again once it is older than `fee_ttl`.
    async fn fees(&self) -> Result<Eip1559Estimation> {
        let inner = &self.inner;
        if let Some((at, fees)) = *lock(&inner.fees)
            && at.elapsed() < inner.config.fee_ttl
        {
            return Ok(fees);
        }
        let fees = inner
            .provider
            .estimate_eip1559_fees()
            .await
            .map_err(Error::rpc("eth_feeHistory"))?;
        *lock(&inner.fees) = Some((Instant::now(), fees));
        Ok(fees)
    }

    /// Takes the next local nonce, reading it from the chain first when it is not known. The
    /// lock is never held across an RPC call: concurrent sends reserve consecutive nonces and
    /// go out in parallel (the node queues a nonce that arrives before its predecessor).
    async fn reserve_nonce(&self) -> Result<u64> {
        let inner = &self.inner;
        loop {
            {
                let mut next = lock(&inner.nonce);
                if let Some(n) = *next {
                    *next = Some(n + 1);
                    return Ok(n);
                }
            }
            let n = inner
                .provider
                .get_transaction_count(inner.address)
                .pending()
                .await
                .map_err(Error::rpc("eth_getTransactionCount"))?;
            lock(&inner.nonce).get_or_insert(n);
        }
    }

    /// `nonce` was reserved but the node did not take a transaction with it: hand it back when
    /// no later nonce was reserved, else re-read the next nonce from the chain (which then
    /// fills the gap).
    fn release_nonce(&self, nonce: u64) {
        let mut next = lock(&self.inner.nonce);
        *next = match *next {
            Some(n) if n == nonce + 1 => Some(nonce),
            _ => None,
        };
    }

    /// Signs with the next local nonce and submits; a nonce the node refused is released.
    async fn submit(&self, tx: TransactionRequest, max_fee: u128, tip: u128) -> Result<InFlight> {
        let inner = &self.inner;
        let mut resynced = false;
        loop {
            let nonce = self.reserve_nonce().await?;
            let signed = match self.sign(tx.clone().with_nonce(nonce), max_fee, tip).await {
                Ok(s) => s,
                Err(e) => {
                    self.release_nonce(nonce);
                    return Err(e);
                }
            };
            match inner
                .provider
                .send_raw_transaction(&signed.encoded_2718())
                .await
            {
                Ok(pending) => {
                    return Ok(InFlight {
                        nonce,
                        hashes: vec![*pending.tx_hash()],
                        max_fee,
                        tip,
                    });
                }
                // This very transaction is already in the node's pool: it was submitted.
                Err(e) if is_already_known(&e) => {
                    return Ok(InFlight {
                        nonce,
                        hashes: vec![*signed.tx_hash()],
                        max_fee,
                        tip,
                    });
                }
                Err(e) if !resynced && is_nonce_error(&e) => {
                    tracing::debug!(nonce, error = %e, "nonce out of sync, re-reading it from the chain");
                    *lock(&inner.nonce) = None;
                    resynced = true;
                }
                Err(e) => {
                    // The node may have seen a nonce we do not know about; re-read it next time.
                    self.release_nonce(nonce);
                    if let Some(data) = revert_data(&e) {
                        return Err(Error::Reverted(ContractError::decode(&data)));
                    }
                    return Err(Error::Rejected { nonce, source: e });
                }
            }
        }
    }

    async fn sign(&self, tx: TransactionRequest, max_fee: u128, tip: u128) -> Result<TxEnvelope> {
        let tx = tx
            .with_max_fee_per_gas(max_fee)
            .with_max_priority_fee_per_gas(tip.min(max_fee));
        NetworkWallet::<Ethereum>::sign_request(&self.inner.wallet, tx)
            .await
            .map_err(|e| Error::Sign(e.to_string()))
    }

    /// Polls for a receipt of any of the flight's hashes; replaces the transaction with higher
    /// fees when it is not mined within `bump_after`.
    async fn wait(
        &self,
        tx: &TransactionRequest,
        flight: &mut InFlight,
    ) -> Result<TransactionReceipt> {
        let cfg = &self.inner.config;
        let started = Instant::now();
        let mut bumps = 0;
        let mut since_send = Instant::now();
        loop {
            for hash in flight.hashes.iter().rev() {
                let receipt = self
                    .inner
                    .provider
                    .get_transaction_receipt(*hash)
                    .await
                    .map_err(Error::rpc("eth_getTransactionReceipt"))?;
                if let Some(r) = receipt {
                    return Ok(r);
                }
            }
            if since_send.elapsed() >= cfg.bump_after {
                if bumps >= cfg.max_bumps {
                    self.resync_nonce().await;
                    let tx_hash = flight.hashes.last().copied().unwrap_or_default();
                    return Err(Error::Timeout {
                        tx_hash,
                        nonce: flight.nonce,
                        waited: started.elapsed(),
                        bumps,
                    });
                }
                bumps += 1;
                self.bump(tx, flight).await?;
                since_send = Instant::now();
            }
            tokio::time::sleep(cfg.poll_interval).await;
        }
    }

    /// Replaces the transaction (same nonce) with fees raised by `bump_percent`, or to the
    /// current market fees when those are higher.
    async fn bump(&self, tx: &TransactionRequest, flight: &mut InFlight) -> Result<()> {
        let pct = 100 + u128::from(self.inner.config.bump_percent.max(10));
        let mut max_fee = flight.max_fee.saturating_mul(pct).div_ceil(100);
        let mut tip = flight.tip.saturating_mul(pct).div_ceil(100).max(1);
        if let Ok(now) = self.inner.provider.estimate_eip1559_fees().await {
            max_fee = max_fee.max(now.max_fee_per_gas);
            tip = tip.max(now.max_priority_fee_per_gas);
        }
        let signed = self
            .sign(tx.clone().with_nonce(flight.nonce), max_fee, tip)
            .await?;
        match self
            .inner
            .provider
            .send_raw_transaction(&signed.encoded_2718())
            .await
        {
            Ok(pending) => {
                tracing::info!(nonce = flight.nonce, max_fee, tip, hash = %pending.tx_hash(), "replaced a slow transaction with higher fees");
                flight.hashes.push(*pending.tx_hash());
                flight.max_fee = max_fee;
                flight.tip = tip;
            }
            // Mined meanwhile (nonce used) or already replaced: keep polling the known hashes.
            Err(e) => tracing::debug!(nonce = flight.nonce, error = %e, "fee bump not accepted"),
        }
        Ok(())
    }

    /// Replays a failed transaction as a call on the state before its block to read the revert
    /// data; on nodes that keep no historical state, on the latest state (best effort).
    async fn explain_failure(&self, tx: TransactionRequest, receipt: &TransactionReceipt) -> Error {
        let block = receipt.block_number.unwrap_or_default();
        let tx_hash = receipt.transaction_hash;
        let mut reason = format!(
            "status 0 after using {} gas (out of gas?)",
            receipt.gas_used
        );
        for at in [BlockId::number(block.saturating_sub(1)), BlockId::latest()] {
            if let Err(e) = self.inner.provider.call(tx.clone()).block(at).await {
                match revert_data(&e) {
                    Some(data) => return Error::Reverted(ContractError::decode(&data)),
                    None => reason = format!("{reason}; replaying it failed: {e}"),
                }
            }
        }
        Error::Failed {
            tx_hash,
            block,
            reason,
        }
    }
}

fn is_nonce_error(e: &TransportError) -> bool {
    e.as_error_resp().is_some_and(|r| {
        let m = r.message.to_ascii_lowercase();
        m.contains("nonce too low") || m.contains("nonce too high") || m.contains("invalid nonce")
    })
}

fn is_already_known(e: &TransportError) -> bool {
    e.as_error_resp()
        .is_some_and(|r| r.message.to_ascii_lowercase().contains("already known"))
}
