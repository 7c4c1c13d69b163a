//! The chain itself: state, blocks, receipts, the transaction pool and mining.
//!
//! Everything here is synchronous; [`crate::DevChain`] wraps one [`Chain`] in
//! a mutex.

use std::collections::{BTreeMap, HashMap};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use alloy::consensus::constants::EMPTY_OMMER_ROOT_HASH;
use alloy::consensus::constants::EMPTY_ROOT_HASH;
use alloy::consensus::proofs::{calculate_receipt_root, calculate_transaction_root};
use alloy::consensus::{
    Eip658Value, Header, Receipt, ReceiptEnvelope, ReceiptWithBloom, Transaction as _, TxEnvelope,
    TxReceipt, TxType,
};
use alloy::eips::eip1559::BaseFeeParams;
use alloy::eips::eip2718::{Decodable2718, Encodable2718, Typed2718};
use alloy::eips::eip7685::EMPTY_REQUESTS_HASH;
use alloy::primitives::{Address, B256, Bloom, Bytes, Log, TxKind, U256, keccak256};
use alloy::rlp::Encodable;
use alloy::rpc::types::{Filter, TransactionRequest};
use revm::context::{BlockEnv, CfgEnv, Context, TxEnv};
use revm::context_interface::either::Either;
use revm::context_interface::result::{
    EVMError, ExecutionResult, InvalidTransaction, ResultAndState,
};
use revm::database::InMemoryDB;
use revm::database_interface::WrapDatabaseRef;
use revm::primitives::hardfork::SpecId;
use revm::state::{AccountInfo, Bytecode};
use revm::{DatabaseCommit, ExecuteEvm, MainBuilder, MainContext};

use crate::error::RpcError;
use crate::journal::{Journal, Record};

/// Largest raw transaction accepted (as geth's pool does).
pub const MAX_TX_SIZE: usize = 128 * 1024;
/// How far ahead of the account nonce a queued transaction may be.
pub const MAX_NONCE_GAP: u64 = 1024;
/// Most transactions waiting in the pool.
pub const MAX_POOL: usize = 10_000;
/// Most installed filters; the least recently polled one is dropped beyond it.
pub const MAX_FILTERS: usize = 4096;
/// Most logs one `eth_getLogs` answers with.
pub const MAX_LOGS: usize = 100_000;
/// The EVM hardfork the devchain runs (solc 0.8.30's default target).
pub const SPEC: SpecId = SpecId::PRAGUE;
/// `eth_estimateGas` stops searching once its bounds are this close (relative to the upper
/// one), as geth does: an estimate is at most 1.5 % above the least gas that works.
pub const ESTIMATE_ERROR_RATIO: f64 = 0.015;
/// Nested call levels the first estimate guess leaves room for (each keeps 1/64 of its gas).
pub const ESTIMATE_CALL_DEPTH: u32 = 3;
/// The priority fee suggested to clients (1 gwei, as anvil).
pub const SUGGESTED_TIP: u128 = 1_000_000_000;

/// Fixed chain parameters.
#[derive(Debug, Clone, Copy)]
pub struct Params {
    pub chain_id: u64,
    pub gas_limit: u64,
}

/// A transaction waiting to be mined.
#[derive(Debug, Clone)]
pub struct PendingTx {
    pub tx: TxEnvelope,
    pub sender: Address,
    pub hash: B256,
}

/// A transaction in a block, with its receipt.
#[derive(Debug, Clone)]
pub struct MinedTx {
    pub tx: TxEnvelope,
    pub sender: Address,
    pub hash: B256,
    pub receipt: ReceiptEnvelope<Log>,
    pub gas_used: u64,
    pub effective_gas_price: u128,
    pub contract_address: Option<Address>,
    /// Index of this transaction's first log in the block.
    pub first_log_index: u64,
}

/// A mined block.
#[derive(Debug, Clone)]
pub struct MinedBlock {
    pub header: Header,
    pub hash: B256,
    pub txs: Vec<MinedTx>,
    pub size: u64,
}

#[derive(Debug, Clone)]
struct SnapshotState {
    db: InMemoryDB,
    height: u64,
    time_offset: i64,
    next_timestamp: Option<u64>,
}

/// An installed polling filter.
#[derive(Debug, Clone)]
pub enum FilterKind {
    Blocks,
    PendingTransactions,
    Logs(Box<Filter>),
}

#[derive(Debug, Clone)]
struct InstalledFilter {
    kind: FilterKind,
    next_block: u64,
    last_poll: Instant,
}

/// What a filter poll returns.
pub enum FilterChanges {
    Hashes(Vec<B256>),
    Logs(Vec<alloy::rpc::types::Log>),
}

/// Waiting transactions, per sender and nonce.
#[derive(Debug, Default)]
struct Pool {
    by_sender: HashMap<Address, BTreeMap<u64, PendingTx>>,
    by_hash: HashMap<B256, (Address, u64)>,
}

impl Pool {
    fn len(&self) -> usize {
        self.by_hash.len()
    }

    fn insert(&mut self, p: PendingTx) -> Option<PendingTx> {
        let nonce = p.tx.nonce();
        self.by_hash.insert(p.hash, (p.sender, nonce));
        let old = self.by_sender.entry(p.sender).or_default().insert(nonce, p);
        if let Some(old) = &old {
            self.by_hash.remove(&old.hash);
        }
        old
    }

    fn get(&self, sender: &Address, nonce: u64) -> Option<&PendingTx> {
        self.by_sender.get(sender).and_then(|m| m.get(&nonce))
    }

    fn get_by_hash(&self, hash: &B256) -> Option<&PendingTx> {
        self.by_hash.get(hash).and_then(|(s, n)| self.get(s, *n))
    }

    fn remove(&mut self, sender: &Address, nonce: u64) -> Option<PendingTx> {
        let m = self.by_sender.get_mut(sender)?;
        let p = m.remove(&nonce)?;
        if m.is_empty() {
            self.by_sender.remove(sender);
        }
        self.by_hash.remove(&p.hash);
        Some(p)
    }

    /// Removes and returns `sender`'s transaction at `nonce`, dropping stale lower nonces.
    fn take_next(&mut self, sender: &Address, nonce: u64) -> Option<PendingTx> {
        let stale: Vec<u64> = self
            .by_sender
            .get(sender)?
            .range(..nonce)
            .map(|(n, _)| *n)
            .collect();
        for n in stale {
            self.remove(sender, n);
        }
        self.remove(sender, nonce)
    }

    /// The next nonce of `sender` counting consecutive pooled transactions.
    fn next_nonce(&self, sender: &Address, mut nonce: u64) -> u64 {
        if let Some(m) = self.by_sender.get(sender) {
            while m.contains_key(&nonce) {
                nonce += 1;
            }
        }
        nonce
    }

    fn senders(&self) -> Vec<Address> {
        self.by_sender.keys().copied().collect()
    }

    fn hashes(&self) -> Vec<B256> {
        self.by_hash.keys().copied().collect()
    }
}

/// What executing a block produced.
struct BlockOutcome {
    /// The sealed block, if one was made.
    number: Option<u64>,
    /// Transactions that must wait for a lower nonce.
    waiting: Vec<PendingTx>,
    /// Invalid transactions, dropped, with the reason.
    rejected: Vec<(B256, RpcError)>,
}

/// The result of submitting one transaction.
pub type Submitted = Result<B256, RpcError>;

/// The devchain state machine.
pub struct Chain {
    pub params: Params,
    db: InMemoryDB,
    blocks: Vec<MinedBlock>,
    block_index: HashMap<B256, u64>,
    tx_index: HashMap<B256, (u64, usize)>,
    pool: Pool,
    time_offset: i64,
    next_timestamp: Option<u64>,
    snapshots: Vec<Option<SnapshotState>>,
    filters: HashMap<u64, InstalledFilter>,
    next_filter_id: u64,
    cheats: u64,
    journal: Option<Journal>,
    /// Mine each transaction in its own block as it arrives.
    pub automine: bool,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn internal(e: impl std::fmt::Display) -> RpcError {
    RpcError::server(format!("internal error: {e}"))
}

/// Maps a transaction validation error to the message geth and anvil use.
fn invalid_tx(e: InvalidTransaction, sender: Address) -> RpcError {
    use InvalidTransaction as I;
    let msg = match e {
        I::NonceTooLow { tx, state } => {
            format!("nonce too low: next nonce {state}, tx nonce {tx} (account {sender})")
        }
        I::NonceTooHigh { tx, state } => {
            format!("nonce too high: next nonce {state}, tx nonce {tx} (account {sender})")
        }
        I::LackOfFundForMaxFee { fee, balance } => format!(
            "insufficient funds for gas * price + value: account {sender} has {balance}, needs {fee}"
        ),
        I::CallGasCostMoreThanGasLimit {
            initial_gas,
            gas_limit,
        } => {
            format!("intrinsic gas too low: gas {gas_limit}, minimum needed {initial_gas}")
        }
        I::GasFloorMoreThanGasLimit {
            gas_floor,
            gas_limit,
        } => {
            format!("intrinsic gas too low: gas {gas_limit}, calldata floor needs {gas_floor}")
        }
        I::GasPriceLessThanBasefee => "max fee per gas less than block base fee".to_string(),
        I::CallerGasLimitMoreThanBlock => "exceeds block gas limit".to_string(),
        I::InvalidChainId => "invalid chain id".to_string(),
        I::RejectCallerWithCode => format!("sender {sender} is not an EOA (it has code)"),
        other => other.to_string(),
    };
    RpcError::server(msg)
}

fn evm_error<E: std::fmt::Display>(e: EVMError<E>, sender: Address) -> RpcError {
    match e {
        EVMError::Transaction(t) => invalid_tx(t, sender),
        other => internal(other),
    }
}

/// Builds the revm transaction environment of a signed transaction.
fn tx_env(tx: &TxEnvelope, sender: Address) -> TxEnv {
    TxEnv {
        tx_type: tx.ty(),
        caller: sender,
        gas_limit: tx.gas_limit(),
        gas_price: tx.max_fee_per_gas(),
        kind: tx.kind(),
        value: tx.value(),
        data: tx.input().clone(),
        nonce: tx.nonce(),
        chain_id: tx.chain_id(),
        access_list: tx.access_list().cloned().unwrap_or_default(),
        gas_priority_fee: tx.max_priority_fee_per_gas(),
        authorization_list: tx
            .authorization_list()
            .map(|l| l.iter().cloned().map(Either::Left).collect())
            .unwrap_or_default(),
        ..TxEnv::default()
    }
}

/// Decodes a raw signed transaction and recovers its sender; needs no chain lock.
pub fn decode_raw(raw: &[u8]) -> Result<(TxEnvelope, Address), RpcError> {
    if raw.len() > MAX_TX_SIZE {
        return Err(RpcError::server(format!(
            "oversized data: transaction is {} bytes, the limit is {MAX_TX_SIZE}",
            raw.len()
        )));
    }
    let tx = TxEnvelope::decode_2718(&mut &raw[..]).map_err(|e| {
        RpcError::invalid_params(format!("could not decode the signed transaction: {e}"))
    })?;
    let sender = recover_sender(&tx)?;
    Ok((tx, sender))
}

/// Recovers a transaction's sender (libsecp256k1, low-s only as since Homestead).
pub fn recover_sender(tx: &TxEnvelope) -> Result<Address, RpcError> {
    let sig = tx.signature();
    if sig.normalize_s().is_some() {
        return Err(RpcError::server(
            "invalid signature: s is in the upper half of the curve order",
        ));
    }
    let mut compact = [0u8; 64];
    compact[..32].copy_from_slice(&sig.r().to_be_bytes::<32>());
    compact[32..].copy_from_slice(&sig.s().to_be_bytes::<32>());
    let hash = tx.signature_hash();
    revm::precompile::secp256k1::bitcoin_secp256k1::ecrecover(
        &compact.into(),
        u8::from(sig.v()),
        &hash,
    )
    .map(Address::from_word)
    .map_err(|e| RpcError::server(format!("invalid signature: {e}")))
}

impl Chain {
    /// Creates a chain at its genesis block.
    pub fn genesis(
        params: Params,
        timestamp: u64,
        base_fee: u64,
        alloc: &[(Address, U256)],
    ) -> Self {
        let mut db = InMemoryDB::default();
        for (addr, bal) in alloc {
            db.insert_account_info(
                *addr,
                AccountInfo {
                    balance: *bal,
                    ..AccountInfo::default()
                },
            );
        }
        let mut seed = Vec::new();
        for (a, b) in alloc {
            seed.extend_from_slice(a.as_slice());
            seed.extend_from_slice(&b.to_be_bytes::<32>());
        }
        let header = Header {
            parent_hash: B256::ZERO,
            ommers_hash: EMPTY_OMMER_ROOT_HASH,
            beneficiary: Address::ZERO,
            state_root: keccak256(&seed),
            transactions_root: EMPTY_ROOT_HASH,
            receipts_root: EMPTY_ROOT_HASH,
            logs_bloom: Bloom::ZERO,
            difficulty: U256::ZERO,
            number: 0,
            gas_limit: params.gas_limit,
            gas_used: 0,
            timestamp,
            extra_data: Bytes::from_static(b"shoal-devchain"),
            mix_hash: keccak256(params.chain_id.to_be_bytes()),
            nonce: Default::default(),
            base_fee_per_gas: Some(base_fee),
            withdrawals_root: Some(EMPTY_ROOT_HASH),
            blob_gas_used: Some(0),
            excess_blob_gas: Some(0),
            parent_beacon_block_root: Some(B256::ZERO),
            requests_hash: Some(EMPTY_REQUESTS_HASH),
            block_access_list_hash: None,
            slot_number: None,
        };
        let mut chain = Self {
            params,
            db,
            blocks: Vec::new(),
            block_index: HashMap::new(),
            tx_index: HashMap::new(),
            pool: Pool::default(),
            time_offset: 0,
            next_timestamp: None,
            snapshots: Vec::new(),
            filters: HashMap::new(),
            next_filter_id: 1,
            cheats: 0,
            journal: None,
            automine: true,
        };
        chain.push_block(header, Vec::new());
        chain
    }

    /// Attaches the journal; from now on every change is persisted.
    pub fn attach_journal(&mut self, journal: Journal) {
        self.journal = Some(journal);
    }

    fn persist(&mut self, records: &[Record]) -> Result<(), RpcError> {
        match &mut self.journal {
            Some(j) => j
                .append(records)
                .map_err(|e| RpcError::server(e.to_string())),
            None => Ok(()),
        }
    }

    fn push_block(&mut self, header: Header, txs: Vec<MinedTx>) -> B256 {
        let hash = header.hash_slow();
        let size = header.length() as u64
            + txs
                .iter()
                .map(|t| t.tx.encode_2718_len() as u64)
                .sum::<u64>()
            + 8;
        let number = header.number;
        for (i, t) in txs.iter().enumerate() {
            self.tx_index.insert(t.hash, (number, i));
        }
        self.block_index.insert(hash, number);
        self.db.cache.block_hashes.insert(U256::from(number), hash);
        self.blocks.push(MinedBlock {
            header,
            hash,
            txs,
            size,
        });
        hash
    }

    // ---- reads ----

    pub fn latest(&self) -> &MinedBlock {
        // There is always a genesis block.
        &self.blocks[self.blocks.len() - 1]
    }

    pub fn height(&self) -> u64 {
        self.latest().header.number
    }

    pub fn block(&self, number: u64) -> Option<&MinedBlock> {
        self.blocks.get(usize::try_from(number).ok()?)
    }

    pub fn block_by_hash(&self, hash: &B256) -> Option<&MinedBlock> {
        self.block_index.get(hash).and_then(|n| self.block(*n))
    }

    /// A mined transaction and its block, by hash.
    pub fn mined_tx(&self, hash: &B256) -> Option<(&MinedBlock, usize)> {
        let (n, i) = self.tx_index.get(hash)?;
        Some((self.block(*n)?, *i))
    }

    pub fn pending_tx(&self, hash: &B256) -> Option<&PendingTx> {
        self.pool.get_by_hash(hash)
    }

    pub fn account(&self, addr: &Address) -> AccountInfo {
        self.db
            .cache
            .accounts
            .get(addr)
            .and_then(|a| a.info())
            .unwrap_or_default()
    }

    pub fn code(&self, addr: &Address) -> Bytes {
        let info = self.account(addr);
        if let Some(code) = &info.code {
            return code.original_bytes();
        }
        self.db
            .cache
            .contracts
            .get(&info.code_hash)
            .map(|c| c.original_bytes())
            .unwrap_or_default()
    }

    pub fn storage(&self, addr: &Address, slot: U256) -> U256 {
        self.db
            .cache
            .accounts
            .get(addr)
            .and_then(|a| a.storage.get(&slot).copied())
            .unwrap_or_default()
    }

    /// The account nonce counting transactions waiting in the pool.
    pub fn pending_nonce(&self, addr: &Address) -> u64 {
        self.pool.next_nonce(addr, self.account(addr).nonce)
    }

    pub fn next_base_fee(&self) -> u64 {
        self.latest()
            .header
            .next_block_base_fee(BaseFeeParams::ethereum())
            .unwrap_or(0)
    }

    fn next_timestamp_peek(&self) -> u64 {
        let parent = self.latest().header.timestamp;
        match self.next_timestamp {
            Some(t) => t,
            None => {
                let now = (unix_now() as i64).saturating_add(self.time_offset);
                (now.max(0) as u64).max(parent)
            }
        }
    }

    fn block_env(&self, number: u64, timestamp: u64, basefee: u64, prevrandao: B256) -> BlockEnv {
        BlockEnv {
            number: U256::from(number),
            beneficiary: Address::ZERO,
            timestamp: U256::from(timestamp),
            gas_limit: self.params.gas_limit,
            basefee,
            difficulty: U256::ZERO,
            prevrandao: Some(prevrandao),
            ..BlockEnv::default()
        }
    }

    fn cfg(&self) -> CfgEnv {
        let mut cfg = CfgEnv::new_with_spec(SPEC);
        cfg.chain_id = self.params.chain_id;
        cfg
    }

    fn transact(
        &self,
        cfg: CfgEnv,
        block: BlockEnv,
        tx: TxEnv,
    ) -> Result<ResultAndState, EVMError<std::convert::Infallible>> {
        let mut evm = Context::mainnet()
            .with_db(WrapDatabaseRef(&self.db))
            .with_cfg(cfg)
            .with_block(block)
            .build_mainnet();
        evm.transact(tx)
    }

    // ---- calls and estimates ----

    fn call_env(&self, req: &TransactionRequest, gas: u64) -> (CfgEnv, BlockEnv, TxEnv) {
        let number = self.height() + 1;
        let block = self.block_env(
            number,
            self.next_timestamp_peek(),
            self.next_base_fee(),
            keccak256(self.latest().hash),
        );
        let mut cfg = self.cfg();
        cfg.disable_nonce_check = true;
        cfg.disable_eip3607 = true;
        let gas_price = req.gas_price.or(req.max_fee_per_gas).unwrap_or(0);
        if gas_price == 0 {
            cfg.disable_base_fee = true;
            cfg.disable_balance_check = true;
        }
        let is_1559 = req.max_fee_per_gas.is_some() && req.gas_price.is_none();
        let access_list = req.access_list.clone().unwrap_or_default();
        let tx_type = if is_1559 {
            2
        } else if !access_list.is_empty() {
            1
        } else {
            0
        };
        let tx = TxEnv {
            tx_type,
            caller: req.from.unwrap_or_default(),
            gas_limit: gas,
            gas_price,
            kind: req.to.unwrap_or(TxKind::Create),
            value: req.value.unwrap_or_default(),
            data: req.input.input().cloned().unwrap_or_default(),
            nonce: 0,
            chain_id: Some(self.params.chain_id),
            access_list,
            gas_priority_fee: if is_1559 {
                req.max_priority_fee_per_gas.or(Some(0))
            } else {
                None
            },
            ..TxEnv::default()
        };
        (cfg, block, tx)
    }

    fn call_gas(&self, req: &TransactionRequest) -> u64 {
        req.gas
            .unwrap_or(self.params.gas_limit)
            .min(self.params.gas_limit)
    }

    /// `eth_call` against the latest state.
    pub fn call(&self, req: &TransactionRequest) -> Result<Bytes, RpcError> {
        let (cfg, block, tx) = self.call_env(req, self.call_gas(req));
        let sender = tx.caller;
        let out = self
            .transact(cfg, block, tx)
            .map_err(|e| evm_error(e, sender))?;
        match out.result {
            ExecutionResult::Success { output, .. } => Ok(output.into_data()),
            ExecutionResult::Revert { output, .. } => Err(RpcError::reverted(output)),
            ExecutionResult::Halt { reason, .. } => {
                Err(RpcError::server(format!("execution halted: {reason:?}")))
            }
        }
    }

    /// Runs the call with `gas`: the gas it used (after refunds) and the gas it spent before
    /// refunds (what had to be available while it ran), or its revert.
    fn try_gas(
        &self,
        req: &TransactionRequest,
        gas: u64,
    ) -> Result<Result<(u64, u64), RpcError>, RpcError> {
        let (cfg, block, tx) = self.call_env(req, gas);
        let sender = tx.caller;
        match self.transact(cfg, block, tx) {
            Ok(out) => Ok(match out.result {
                ExecutionResult::Success { gas, .. } => {
                    Ok((gas.tx_gas_used(), gas.total_gas_spent()))
                }
                ExecutionResult::Revert { output, .. } => Err(RpcError::reverted(output)),
                ExecutionResult::Halt { reason, .. } => {
                    Err(RpcError::server(format!("execution halted: {reason:?}")))
                }
            }),
            Err(EVMError::Transaction(
                InvalidTransaction::CallGasCostMoreThanGasLimit { .. }
                | InvalidTransaction::GasFloorMoreThanGasLimit { .. },
            )) => Ok(Err(RpcError::server("intrinsic gas too low"))),
            Err(e) => Err(evm_error(e, sender)),
        }
    }

    /// `eth_estimateGas`: a gas limit with which the call succeeds, within
    /// [`ESTIMATE_ERROR_RATIO`] of the least one (geth's rule). The first guess is the gas the
    /// call spent before refunds plus what each of up to [`ESTIMATE_CALL_DEPTH`] nested call
    /// levels keeps back (1/64): most calls need no search at all.
    pub fn estimate_gas(&self, req: &TransactionRequest) -> Result<u64, RpcError> {
        let cap = self.call_gas(req);
        let (used, spent) = self.try_gas(req, cap)??;
        let mut lo = used.saturating_sub(1);
        let mut hi = cap;
        let mut optimistic = spent + 2300;
        for _ in 0..ESTIMATE_CALL_DEPTH {
            optimistic = optimistic * 64 / 63;
        }
        if optimistic < hi {
            match self.try_gas(req, optimistic)? {
                Ok(_) => hi = optimistic,
                Err(_) => lo = optimistic,
            }
        }
        while lo + 1 < hi && (hi - lo) as f64 / hi as f64 >= ESTIMATE_ERROR_RATIO {
            let mid = lo + (hi - lo) / 2;
            match self.try_gas(req, mid)? {
                Ok(_) => hi = mid,
                Err(_) => lo = mid,
            }
        }
        Ok(hi)
    }

    // ---- transactions and mining ----

    /// Validates a raw transaction and adds it to the pool, mining it at once in automine mode.
    /// Adds a signed transaction whose sender was recovered with [`recover_sender`].
    pub fn submit_recovered(&mut self, tx: TxEnvelope, sender: Address) -> Submitted {
        if tx.ty() == TxType::Eip4844 as u8 {
            return Err(RpcError::server(
                "blob (EIP-4844) transactions are not supported by the devchain",
            ));
        }
        if let Some(id) = tx.chain_id()
            && id != self.params.chain_id
        {
            return Err(RpcError::server(format!(
                "invalid chain id: transaction is for chain {id}, this chain is {}",
                self.params.chain_id
            )));
        }
        let hash = *tx.tx_hash();
        if self.tx_index.contains_key(&hash) || self.pool.get_by_hash(&hash).is_some() {
            return Err(RpcError::server("already known"));
        }
        let state_nonce = self.account(&sender).nonce;
        let nonce = tx.nonce();
        if nonce < state_nonce {
            return Err(invalid_tx(
                InvalidTransaction::NonceTooLow {
                    tx: nonce,
                    state: state_nonce,
                },
                sender,
            ));
        }
        if nonce > state_nonce + MAX_NONCE_GAP {
            return Err(RpcError::server(format!(
                "nonce too high: next nonce {state_nonce}, tx nonce {nonce} (account {sender}); \
                 at most {MAX_NONCE_GAP} transactions may wait ahead of the account nonce"
            )));
        }
        if tx.gas_limit() > self.params.gas_limit {
            return Err(RpcError::server(format!(
                "exceeds block gas limit: gas {} > block gas limit {}",
                tx.gas_limit(),
                self.params.gas_limit
            )));
        }
        let base_fee = self.next_base_fee();
        if tx.max_fee_per_gas() < u128::from(base_fee) {
            return Err(RpcError::server(format!(
                "max fee per gas less than block base fee: maxFeePerGas {}, baseFee {base_fee}",
                tx.max_fee_per_gas()
            )));
        }
        if let Some(old) = self.pool.get(&sender, nonce) {
            let (old_fee, new_fee) = (old.tx.max_fee_per_gas(), tx.max_fee_per_gas());
            let (old_tip, new_tip) = (
                old.tx.max_priority_fee_per_gas().unwrap_or(old_fee),
                tx.max_priority_fee_per_gas().unwrap_or(new_fee),
            );
            if new_fee < old_fee + old_fee / 10 || new_tip < old_tip + old_tip / 10 {
                return Err(RpcError::server("replacement transaction underpriced"));
            }
        } else if self.pool.len() >= MAX_POOL {
            return Err(RpcError::server(
                "txpool is full; wait for blocks to be mined",
            ));
        }
        let pending = PendingTx { tx, sender, hash };
        if !self.automine {
            if nonce == state_nonce {
                // Check it executes (intrinsic gas, funds) before it waits for the next block.
                let env = self.block_env(
                    self.height() + 1,
                    self.next_timestamp_peek(),
                    base_fee,
                    B256::ZERO,
                );
                if let Err(e) = self.transact(self.cfg(), env, tx_env(&pending.tx, sender)) {
                    return Err(evm_error(e, sender));
                }
            }
            self.pool.insert(pending);
            return Ok(hash);
        }
        if nonce == state_nonce {
            // Executed once: mined in its own block, or refused with the reason.
            let ts = self.next_timestamp_peek();
            let outcome = self.mine_block(vec![pending], ts, false)?;
            if let Some((_, e)) = outcome.rejected.into_iter().next() {
                return Err(e);
            }
        } else {
            self.pool.insert(pending);
        }
        self.mine_sender(sender)?;
        Ok(hash)
    }

    /// Mines every executable pooled transaction of `sender`, one block each.
    fn mine_sender(&mut self, sender: Address) -> Result<(), RpcError> {
        loop {
            let nonce = self.account(&sender).nonce;
            let Some(p) = self.pool.take_next(&sender, nonce) else {
                return Ok(());
            };
            let ts = self.next_timestamp_peek();
            self.mine_block(vec![p], ts, false)?;
        }
    }

    /// Mines one block with every executable pooled transaction that fits (`evm_mine`, interval mining).
    pub fn mine(&mut self, timestamp: Option<u64>) -> Result<u64, RpcError> {
        let ts = timestamp.unwrap_or_else(|| self.next_timestamp_peek());
        let mut picked = Vec::new();
        let mut gas = 0u64;
        for sender in self.pool.senders() {
            let mut nonce = self.account(&sender).nonce;
            while let Some(p) = self.pool.take_next(&sender, nonce) {
                if gas + p.tx.gas_limit() > self.params.gas_limit {
                    self.pool.insert(p);
                    break;
                }
                gas += p.tx.gas_limit();
                picked.push(p);
                nonce += 1;
            }
        }
        let outcome = self.mine_block(picked, ts, true)?;
        for p in outcome.waiting {
            self.pool.insert(p);
        }
        Ok(self.height())
    }

    /// Executes `txs` into a new block on top of the latest one and persists it.
    /// With `seal_empty` false, no block is made when no transaction is valid.
    fn mine_block(
        &mut self,
        txs: Vec<PendingTx>,
        timestamp: u64,
        seal_empty: bool,
    ) -> Result<BlockOutcome, RpcError> {
        let outcome = self.execute_block(txs, timestamp, seal_empty);
        if let Some(number) = outcome.number {
            self.next_timestamp = None;
            let raw: Vec<Bytes> = self
                .latest()
                .txs
                .iter()
                .map(|t| t.tx.encoded_2718().into())
                .collect();
            self.persist(&[Record::Block {
                number,
                timestamp,
                txs: raw,
            }])?;
        }
        Ok(outcome)
    }

    fn execute_block(
        &mut self,
        txs: Vec<PendingTx>,
        timestamp: u64,
        seal_empty: bool,
    ) -> BlockOutcome {
        let parent = self.latest();
        let parent_hash = parent.hash;
        let parent_state = parent.header.state_root;
        let number = parent.header.number + 1;
        let base_fee = self.next_base_fee();
        let mut seed = parent_hash.to_vec();
        seed.extend_from_slice(&number.to_be_bytes());
        let prevrandao = keccak256(&seed);
        let env = self.block_env(number, timestamp, base_fee, prevrandao);
        let cfg = self.cfg();
        let mut mined = Vec::new();
        let mut waiting = Vec::new();
        let mut rejected = Vec::new();
        let mut cumulative = 0u64;
        let mut log_index = 0u64;
        for p in txs {
            let out = match self.transact(cfg.clone(), env.clone(), tx_env(&p.tx, p.sender)) {
                Ok(out) => out,
                Err(EVMError::Transaction(InvalidTransaction::NonceTooHigh { .. })) => {
                    waiting.push(p);
                    continue;
                }
                Err(e) => {
                    let e = evm_error(e, p.sender);
                    tracing::debug!(tx = %p.hash, error = %e, "dropping invalid transaction");
                    rejected.push((p.hash, e));
                    continue;
                }
            };
            self.db.commit(out.state);
            let result = out.result;
            let gas_used = match &result {
                ExecutionResult::Success { gas, .. }
                | ExecutionResult::Revert { gas, .. }
                | ExecutionResult::Halt { gas, .. } => gas.tx_gas_used(),
            };
            cumulative += gas_used;
            let contract_address = result.created_address().or_else(|| match p.tx.kind() {
                TxKind::Create if !result.is_success() => Some(p.sender.create(p.tx.nonce())),
                _ => None,
            });
            let contract_address = if p.tx.kind().is_create() {
                contract_address
            } else {
                None
            };
            let success = result.is_success();
            let logs = result.into_logs();
            let n_logs = logs.len() as u64;
            let receipt = Receipt {
                status: Eip658Value::Eip658(success),
                cumulative_gas_used: cumulative,
                logs,
            };
            let ty = TxType::try_from(p.tx.ty()).unwrap_or(TxType::Legacy);
            let receipt = ReceiptEnvelope::from_typed(ty, ReceiptWithBloom::from(receipt));
            let effective_gas_price = p.tx.effective_gas_price(Some(base_fee));
            mined.push(MinedTx {
                tx: p.tx,
                sender: p.sender,
                hash: p.hash,
                receipt,
                gas_used,
                effective_gas_price,
                contract_address,
                first_log_index: log_index,
            });
            log_index += n_logs;
        }
        if mined.is_empty() && !seal_empty {
            return BlockOutcome {
                number: None,
                waiting,
                rejected,
            };
        }
        let envelopes: Vec<&TxEnvelope> = mined.iter().map(|t| &t.tx).collect();
        let receipts: Vec<&ReceiptEnvelope<Log>> = mined.iter().map(|t| &t.receipt).collect();
        let mut bloom = Bloom::ZERO;
        for r in &receipts {
            bloom.accrue_bloom(&r.bloom());
        }
        let transactions_root = if mined.is_empty() {
            EMPTY_ROOT_HASH
        } else {
            calculate_transaction_root(&envelopes)
        };
        let receipts_root = if mined.is_empty() {
            EMPTY_ROOT_HASH
        } else {
            calculate_receipt_root(&receipts)
        };
        self.cheats = 0;
        let mut seed = parent_state.to_vec();
        seed.extend_from_slice(transactions_root.as_slice());
        seed.extend_from_slice(receipts_root.as_slice());
        let header = Header {
            parent_hash,
            ommers_hash: EMPTY_OMMER_ROOT_HASH,
            beneficiary: Address::ZERO,
            state_root: keccak256(&seed),
            transactions_root,
            receipts_root,
            logs_bloom: bloom,
            difficulty: U256::ZERO,
            number,
            gas_limit: self.params.gas_limit,
            gas_used: cumulative,
            timestamp,
            extra_data: Bytes::new(),
            mix_hash: prevrandao,
            nonce: Default::default(),
            base_fee_per_gas: Some(base_fee),
            withdrawals_root: Some(EMPTY_ROOT_HASH),
            blob_gas_used: Some(0),
            excess_blob_gas: Some(0),
            parent_beacon_block_root: Some(B256::ZERO),
            requests_hash: Some(EMPTY_REQUESTS_HASH),
            block_access_list_hash: None,
            slot_number: None,
        };
        self.push_block(header, mined);
        BlockOutcome {
            number: Some(number),
            waiting,
            rejected,
        }
    }

    // ---- replay ----

    /// Applies one journal record while restoring a chain from its data directory.
    pub fn replay(&mut self, record: Record) -> Result<(), String> {
        match record {
            Record::Genesis { .. } => return Err("a second genesis record".into()),
            Record::Block {
                number,
                timestamp,
                txs,
            } => {
                if number != self.height() + 1 {
                    return Err(format!("block {number} follows block {}", self.height()));
                }
                let mut pending = Vec::with_capacity(txs.len());
                for raw in &txs {
                    let (tx, sender) =
                        decode_raw(raw).map_err(|e| format!("block {number}: {}", e.message))?;
                    pending.push(PendingTx {
                        hash: *tx.tx_hash(),
                        tx,
                        sender,
                    });
                }
                self.next_timestamp = None;
                self.execute_block(pending, timestamp, true);
                let included = self.latest().txs.len();
                if included != txs.len() {
                    return Err(format!(
                        "block {number}: {} of {} transactions replayed",
                        included,
                        txs.len()
                    ));
                }
            }
            Record::SetBalance { address, balance } => self.apply_balance(address, balance),
            Record::SetCode { address, code } => self.apply_code(address, code),
            Record::SetNonce { address, nonce } => self.apply_nonce(address, nonce),
            Record::SetStorage {
                address,
                slot,
                value,
            } => self.apply_storage(address, slot, value),
            Record::TimeOffset { offset } => self.time_offset = offset,
            Record::NextTimestamp { timestamp } => self.next_timestamp = Some(timestamp),
            Record::Snapshot => {
                self.take_snapshot();
            }
            Record::Revert { id } => {
                self.apply_revert(id);
            }
        }
        Ok(())
    }

    // ---- cheats ----

    fn apply_balance(&mut self, address: Address, balance: U256) {
        let mut info = self.account(&address);
        info.balance = balance;
        self.db.insert_account_info(address, info);
        self.cheats += 1;
    }

    fn apply_code(&mut self, address: Address, code: Bytes) {
        let mut info = self.account(&address);
        let bytecode = Bytecode::new_raw(code);
        info.code_hash = bytecode.hash_slow();
        info.code = Some(bytecode);
        self.db.insert_account_info(address, info);
        self.cheats += 1;
    }

    fn apply_nonce(&mut self, address: Address, nonce: u64) {
        let mut info = self.account(&address);
        info.nonce = nonce;
        self.db.insert_account_info(address, info);
        self.cheats += 1;
    }

    fn apply_storage(&mut self, address: Address, slot: U256, value: B256) {
        if self
            .db
            .insert_account_storage(address, slot, value.into())
            .is_err()
        {
            tracing::warn!(%address, "cannot set storage");
        }
        self.cheats += 1;
    }

    pub fn set_balance(&mut self, address: Address, balance: U256) -> Result<(), RpcError> {
        self.apply_balance(address, balance);
        self.persist(&[Record::SetBalance { address, balance }])
    }

    pub fn set_code(&mut self, address: Address, code: Bytes) -> Result<(), RpcError> {
        self.apply_code(address, code.clone());
        self.persist(&[Record::SetCode { address, code }])
    }

    pub fn set_nonce(&mut self, address: Address, nonce: u64) -> Result<(), RpcError> {
        self.apply_nonce(address, nonce);
        self.persist(&[Record::SetNonce { address, nonce }])
    }

    pub fn set_storage(
        &mut self,
        address: Address,
        slot: U256,
        value: B256,
    ) -> Result<(), RpcError> {
        self.apply_storage(address, slot, value);
        self.persist(&[Record::SetStorage {
            address,
            slot,
            value,
        }])
    }

    /// `evm_increaseTime`; returns the total offset in seconds.
    pub fn increase_time(&mut self, seconds: i64) -> Result<i64, RpcError> {
        self.time_offset = self.time_offset.saturating_add(seconds);
        let offset = self.time_offset;
        self.persist(&[Record::TimeOffset { offset }])?;
        Ok(offset)
    }

    /// `evm_setNextBlockTimestamp`.
    pub fn set_next_timestamp(&mut self, timestamp: u64) -> Result<(), RpcError> {
        let parent = self.latest().header.timestamp;
        if timestamp < parent {
            return Err(RpcError::server(format!(
                "timestamp {timestamp} is before the latest block's timestamp {parent}"
            )));
        }
        self.next_timestamp = Some(timestamp);
        // Later blocks keep counting from here, as anvil does.
        self.time_offset = i64::try_from(timestamp)
            .unwrap_or(i64::MAX)
            .saturating_sub(unix_now() as i64);
        let offset = self.time_offset;
        self.persist(&[
            Record::NextTimestamp { timestamp },
            Record::TimeOffset { offset },
        ])
    }

    fn take_snapshot(&mut self) -> u64 {
        self.snapshots.push(Some(SnapshotState {
            db: self.db.clone(),
            height: self.height(),
            time_offset: self.time_offset,
            next_timestamp: self.next_timestamp,
        }));
        self.snapshots.len() as u64
    }

    /// `evm_snapshot`; returns the snapshot id.
    pub fn snapshot(&mut self) -> Result<u64, RpcError> {
        let id = self.take_snapshot();
        self.persist(&[Record::Snapshot])?;
        Ok(id)
    }

    fn apply_revert(&mut self, id: u64) -> bool {
        let Some(idx) = id.checked_sub(1).and_then(|i| usize::try_from(i).ok()) else {
            return false;
        };
        let Some(Some(snap)) = self.snapshots.get(idx).cloned() else {
            return false;
        };
        for s in &mut self.snapshots[idx..] {
            *s = None;
        }
        while self.height() > snap.height {
            if let Some(b) = self.blocks.pop() {
                self.block_index.remove(&b.hash);
                for t in &b.txs {
                    self.tx_index.remove(&t.hash);
                }
            }
        }
        self.db = snap.db;
        self.time_offset = snap.time_offset;
        self.next_timestamp = snap.next_timestamp;
        self.pool = Pool::default();
        for f in self.filters.values_mut() {
            f.next_block = f.next_block.min(snap.height + 1);
        }
        true
    }

    /// `evm_revert`; returns whether the snapshot existed.
    pub fn revert(&mut self, id: u64) -> Result<bool, RpcError> {
        let ok = self.apply_revert(id);
        if ok {
            self.persist(&[Record::Revert { id }])?;
        }
        Ok(ok)
    }

    // ---- logs and filters ----

    /// Resolves a log filter's block range against the chain.
    pub fn filter_range(&self, filter: &Filter) -> Result<(u64, u64), RpcError> {
        use alloy::eips::BlockNumberOrTag as T;
        let resolve = |b: Option<&T>, default: u64| -> u64 {
            match b {
                None | Some(T::Latest | T::Pending | T::Safe | T::Finalized) => default,
                Some(T::Earliest) => 0,
                Some(T::Number(n)) => *n,
            }
        };
        let (from, to) = filter.block_option.as_range();
        let latest = self.height();
        Ok((resolve(from, latest), resolve(to, latest).min(latest)))
    }

    /// Logs of blocks `from..=to` matching `filter`.
    pub fn logs(
        &self,
        filter: &Filter,
        from: u64,
        to: u64,
    ) -> Result<Vec<alloy::rpc::types::Log>, RpcError> {
        let mut out = Vec::new();
        if let Some(hash) = filter.get_block_hash() {
            let Some(b) = self.block_by_hash(&hash) else {
                return Err(RpcError::server(format!("unknown block {hash}")));
            };
            self.block_logs(b, filter, &mut out)?;
            return Ok(out);
        }
        if from > to {
            return Ok(out);
        }
        for n in from..=to {
            let Some(b) = self.block(n) else { break };
            self.block_logs(b, filter, &mut out)?;
        }
        Ok(out)
    }

    fn block_logs(
        &self,
        b: &MinedBlock,
        filter: &Filter,
        out: &mut Vec<alloy::rpc::types::Log>,
    ) -> Result<(), RpcError> {
        if !filter.matches_bloom(b.header.logs_bloom) {
            return Ok(());
        }
        for (ti, t) in b.txs.iter().enumerate() {
            for (li, log) in t.receipt.logs().iter().enumerate() {
                if !filter.matches_address(log.address) || !filter.matches_topics(log.topics()) {
                    continue;
                }
                if out.len() >= MAX_LOGS {
                    return Err(RpcError::server(format!(
                        "query returned more than {MAX_LOGS} results; narrow the block range or the filter"
                    )));
                }
                out.push(rpc_log(b, ti, t, li, log));
            }
        }
        Ok(())
    }

    pub fn new_filter(&mut self, kind: FilterKind) -> u64 {
        if self.filters.len() >= MAX_FILTERS
            && let Some(oldest) = self
                .filters
                .iter()
                .min_by_key(|(_, f)| f.last_poll)
                .map(|(id, _)| *id)
        {
            self.filters.remove(&oldest);
        }
        let id = self.next_filter_id;
        self.next_filter_id += 1;
        let next_block = match &kind {
            FilterKind::Logs(f) => self
                .filter_range(f)
                .map(|(from, _)| from)
                .unwrap_or(0)
                .max(self.height() + 1),
            _ => self.height() + 1,
        };
        self.filters.insert(
            id,
            InstalledFilter {
                kind,
                next_block,
                last_poll: Instant::now(),
            },
        );
        id
    }

    pub fn uninstall_filter(&mut self, id: u64) -> bool {
        self.filters.remove(&id).is_some()
    }

    /// What happened since the last poll of filter `id`.
    pub fn filter_changes(&mut self, id: u64) -> Result<FilterChanges, RpcError> {
        let latest = self.height();
        let Some(f) = self.filters.get_mut(&id) else {
            return Err(RpcError::server("filter not found"));
        };
        f.last_poll = Instant::now();
        let from = f.next_block;
        f.next_block = latest + 1;
        let kind = f.kind.clone();
        match kind {
            FilterKind::Blocks => Ok(FilterChanges::Hashes(
                (from..=latest)
                    .filter_map(|n| self.block(n).map(|b| b.hash))
                    .collect(),
            )),
            FilterKind::PendingTransactions => Ok(FilterChanges::Hashes(self.pool.hashes())),
            FilterKind::Logs(filter) => {
                let (_, to) = self.filter_range(&filter)?;
                Ok(FilterChanges::Logs(self.logs(
                    &filter,
                    from,
                    to.min(latest),
                )?))
            }
        }
    }

    /// All logs of a log filter (`eth_getFilterLogs`).
    pub fn filter_logs(&mut self, id: u64) -> Result<Vec<alloy::rpc::types::Log>, RpcError> {
        let Some(f) = self.filters.get_mut(&id) else {
            return Err(RpcError::server("filter not found"));
        };
        f.last_poll = Instant::now();
        let FilterKind::Logs(filter) = f.kind.clone() else {
            return Err(RpcError::server("filter is not a log filter"));
        };
        let (from, to) = self.filter_range(&filter)?;
        self.logs(&filter, from, to)
    }

    /// Gas used ratios, base fees and tips for `eth_feeHistory`.
    pub fn fee_history(
        &self,
        count: u64,
        newest: u64,
        percentiles: &[f64],
    ) -> alloy::rpc::types::FeeHistory {
        let newest = newest.min(self.height());
        let count = count.clamp(1, 1024).min(newest + 1);
        let oldest = newest + 1 - count;
        let mut base_fee_per_gas = Vec::new();
        let mut gas_used_ratio = Vec::new();
        let mut reward = Vec::new();
        for n in oldest..=newest {
            let Some(b) = self.block(n) else { break };
            let base = b.header.base_fee_per_gas.unwrap_or(0);
            base_fee_per_gas.push(u128::from(base));
            gas_used_ratio.push(b.header.gas_used as f64 / b.header.gas_limit.max(1) as f64);
            let mut tips: Vec<(u128, u64)> = b
                .txs
                .iter()
                .map(|t| (t.tx.effective_tip_per_gas(base).unwrap_or(0), t.gas_used))
                .collect();
            tips.sort_unstable();
            let total: u64 = tips.iter().map(|t| t.1).sum();
            let row = percentiles
                .iter()
                .map(|p| {
                    if tips.is_empty() {
                        return 0;
                    }
                    let threshold = (total as f64 * p / 100.0) as u64;
                    let mut acc = 0;
                    for (tip, gas) in &tips {
                        acc += gas;
                        if acc >= threshold {
                            return *tip;
                        }
                    }
                    tips.last().map(|t| t.0).unwrap_or(0)
                })
                .collect();
            reward.push(row);
        }
        let next = self
            .block(newest)
            .and_then(|b| b.header.next_block_base_fee(BaseFeeParams::ethereum()))
            .unwrap_or(0);
        base_fee_per_gas.push(u128::from(next));
        alloy::rpc::types::FeeHistory {
            base_fee_per_gas,
            gas_used_ratio,
            base_fee_per_blob_gas: vec![1; count as usize + 1],
            blob_gas_used_ratio: vec![0.0; count as usize],
            oldest_block: oldest,
            reward: if percentiles.is_empty() {
                None
            } else {
                Some(reward)
            },
        }
    }
}

/// The RPC form of one log of a mined transaction.
pub fn rpc_log(
    b: &MinedBlock,
    tx_index: usize,
    t: &MinedTx,
    i: usize,
    log: &Log,
) -> alloy::rpc::types::Log {
    alloy::rpc::types::Log {
        inner: log.clone(),
        block_hash: Some(b.hash),
        block_number: Some(b.header.number),
        block_timestamp: Some(b.header.timestamp),
        transaction_hash: Some(t.hash),
        transaction_index: Some(tx_index as u64),
        log_index: Some(t.first_log_index + i as u64),
        removed: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::consensus::{SignableTransaction, TxEip1559};
    use alloy::signers::SignerSync;
    use alloy::signers::local::PrivateKeySigner;

    #[test]
    fn recovers_senders_and_refuses_high_s() -> anyhow::Result<()> {
        for _ in 0..20 {
            let signer = PrivateKeySigner::random();
            let tx = TxEip1559 {
                chain_id: 31337,
                gas_limit: 21_000,
                ..Default::default()
            };
            let sig = signer.sign_hash_sync(&tx.signature_hash())?;
            let env = TxEnvelope::from(tx.clone().into_signed(sig));
            assert_eq!(recover_sender(&env)?, signer.address());
            let (decoded, sender) = decode_raw(&env.encoded_2718())?;
            assert_eq!((decoded, sender), (env, signer.address()));
            // The same signature with s mirrored (n - s) is valid ECDSA but not for Ethereum.
            let n = U256::from_str_radix(
                "FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141",
                16,
            )?;
            let high = alloy::primitives::Signature::new(sig.r(), n - sig.s(), !sig.v());
            let env = TxEnvelope::from(tx.into_signed(high));
            assert!(recover_sender(&env).is_err());
        }
        Ok(())
    }
}
