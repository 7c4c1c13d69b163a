#![doc = include_str!("../README.md")]

mod accounts;
mod chain;
mod error;
mod journal;
mod rpc;
mod server;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use alloy::primitives::U256;

pub use accounts::{DEV_MNEMONIC, DevAccount, derive_dev_accounts};
pub use chain::{MAX_TX_SIZE, SPEC};
pub use error::{Error, Result, RpcError};
pub use journal::JOURNAL_FILE;
pub use server::{MAX_BODY, ServerHandle};

use chain::{Chain, Params};
use journal::{Journal, Record};

/// Chain id used by default (anvil's and hardhat's).
pub const DEFAULT_CHAIN_ID: u64 = 31337;
/// Block gas limit.
pub const DEFAULT_GAS_LIMIT: u64 = 30_000_000;
/// Base fee of the genesis block (1 gwei).
pub const GENESIS_BASE_FEE: u64 = 1_000_000_000;
/// Balance of each dev account: 10,000 ETH.
pub const DEV_BALANCE_ETH: u64 = 10_000;

/// Configures a [`DevChain`].
#[derive(Debug, Clone)]
pub struct DevChainBuilder {
    chain_id: u64,
    data_dir: Option<PathBuf>,
    block_time: Option<Duration>,
    accounts: u32,
    gas_limit: u64,
}

impl Default for DevChainBuilder {
    fn default() -> Self {
        Self {
            chain_id: DEFAULT_CHAIN_ID,
            data_dir: None,
            block_time: None,
            accounts: 10,
            gas_limit: DEFAULT_GAS_LIMIT,
        }
    }
}

impl DevChainBuilder {
    /// The chain id (default 31337).
    pub fn chain_id(mut self, chain_id: u64) -> Self {
        self.chain_id = chain_id;
        self
    }

    /// Keep the chain in this directory across restarts; `None` keeps it in memory.
    pub fn data_dir(mut self, dir: impl Into<Option<PathBuf>>) -> Self {
        self.data_dir = dir.into();
        self
    }

    /// Mine a block every interval instead of one block per transaction.
    pub fn block_time(mut self, interval: impl Into<Option<Duration>>) -> Self {
        self.block_time = interval.into().filter(|d| !d.is_zero());
        self
    }

    /// Number of prefunded dev accounts (default 10).
    pub fn accounts(mut self, n: u32) -> Self {
        self.accounts = n;
        self
    }

    /// Block gas limit (default 30,000,000).
    pub fn gas_limit(mut self, gas_limit: u64) -> Self {
        self.gas_limit = gas_limit;
        self
    }

    /// Creates the chain, or restores it from its data directory.
    pub fn build(self) -> Result<DevChain> {
        let accounts = derive_dev_accounts(self.accounts)?;
        let mut chain = match &self.data_dir {
            None => Chain::genesis(
                self.params(),
                now(),
                GENESIS_BASE_FEE,
                &self.alloc(&accounts),
            ),
            Some(dir) => self.restore(dir, &accounts)?,
        };
        chain.automine = self.block_time.is_none();
        let inner = Arc::new(Inner {
            chain: Mutex::new(chain),
            accounts,
            builder: self.clone(),
        });
        if let Some(interval) = self.block_time {
            spawn_interval_miner(Arc::downgrade(&inner), interval);
        }
        Ok(DevChain { inner })
    }

    fn params(&self) -> Params {
        Params {
            chain_id: self.chain_id,
            gas_limit: self.gas_limit,
        }
    }

    fn alloc(&self, accounts: &[DevAccount]) -> Vec<(alloy::primitives::Address, U256)> {
        let balance = U256::from(DEV_BALANCE_ETH) * U256::from(10u64).pow(U256::from(18));
        accounts.iter().map(|a| (a.address, balance)).collect()
    }

    fn restore(&self, dir: &std::path::Path, accounts: &[DevAccount]) -> Result<Chain> {
        let (journal, records) = Journal::open(dir)?;
        let path = journal.path().to_path_buf();
        let bad = |reason: String| Error::Journal {
            path: path.clone(),
            reason,
        };
        let mut records = records.into_iter();
        let mut chain = match records.next() {
            None => {
                let (timestamp, base_fee, alloc) = (now(), GENESIS_BASE_FEE, self.alloc(accounts));
                let mut chain = Chain::genesis(self.params(), timestamp, base_fee, &alloc);
                let mut journal = journal;
                journal.append(&[Record::Genesis {
                    chain_id: self.chain_id,
                    timestamp,
                    gas_limit: self.gas_limit,
                    base_fee,
                    alloc,
                }])?;
                chain.attach_journal(journal);
                return Ok(chain);
            }
            Some(Record::Genesis {
                chain_id,
                timestamp,
                gas_limit,
                base_fee,
                alloc,
            }) => {
                if chain_id != self.chain_id {
                    return Err(bad(format!(
                        "it holds chain id {chain_id}, not {}; pass chain id {chain_id} or use another directory",
                        self.chain_id
                    )));
                }
                Chain::genesis(
                    Params {
                        chain_id,
                        gas_limit,
                    },
                    timestamp,
                    base_fee,
                    &alloc,
                )
            }
            Some(other) => {
                return Err(bad(format!(
                    "it starts with {other:?} instead of a genesis record"
                )));
            }
        };
        for record in records {
            chain
                .replay(record)
                .map_err(|e| bad(format!("cannot replay the journal: {e}")))?;
        }
        tracing::info!(blocks = chain.height(), path = %path.display(), "devchain restored");
        chain.attach_journal(journal);
        Ok(chain)
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn spawn_interval_miner(inner: Weak<Inner>, interval: Duration) {
    std::thread::Builder::new()
        .name("devchain-miner".into())
        .spawn(move || {
            loop {
                std::thread::sleep(interval);
                let Some(inner) = inner.upgrade() else { return };
                let mut chain = lock(&inner.chain);
                if let Err(e) = chain.mine(None) {
                    tracing::error!(error = %e, "interval mining failed");
                }
            }
        })
        .map(|_| ())
        .unwrap_or_else(|e| tracing::error!(error = %e, "cannot start the interval miner"));
}

struct Inner {
    chain: Mutex<Chain>,
    accounts: Vec<DevAccount>,
    builder: DevChainBuilder,
}

fn lock(m: &Mutex<Chain>) -> MutexGuard<'_, Chain> {
    // A panic while holding the lock leaves the chain as it was before the call.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// An embedded EVM chain on revm. Cheap to clone; all clones share one chain.
#[derive(Clone)]
pub struct DevChain {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for DevChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevChain")
            .field("chain_id", &self.chain_id())
            .field("block_number", &self.block_number())
            .finish()
    }
}

impl DevChain {
    /// Starts configuring a devchain.
    pub fn builder() -> DevChainBuilder {
        DevChainBuilder::default()
    }

    /// The chain id.
    pub fn chain_id(&self) -> u64 {
        self.inner.builder.chain_id
    }

    /// The data directory, if the chain is persistent.
    pub fn data_dir(&self) -> Option<&std::path::Path> {
        self.inner.builder.data_dir.as_deref()
    }

    /// The prefunded, unlocked dev accounts.
    pub fn dev_accounts(&self) -> &[DevAccount] {
        &self.inner.accounts
    }

    /// The latest block number.
    pub fn block_number(&self) -> u64 {
        self.chain().height()
    }

    /// Mines one block now with whatever transactions are waiting; returns its number.
    pub fn mine(&self) -> Result<u64> {
        Ok(self.chain().mine(None)?)
    }

    /// Answers one JSON-RPC call in-process (no HTTP).
    pub fn request(
        &self,
        method: &str,
        params: serde_json::Value,
    ) -> Result<serde_json::Value, RpcError> {
        let raw = rpc::dispatch(self, method, params)?;
        serde_json::from_str(raw.get())
            .map_err(|e| RpcError::server(format!("internal error: {e}")))
    }

    /// Answers a JSON-RPC request body (a single call or a batch) in-process; `None` when
    /// nothing is to be answered (a notification, or a batch of notifications).
    pub fn handle_body(&self, body: &[u8]) -> Option<serde_json::Value> {
        let bytes = rpc::handle_body(self, body)?;
        Some(serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null))
    }

    /// [`DevChain::handle_body`], answering with the response's JSON bytes (what the HTTP
    /// server sends).
    pub fn handle_body_bytes(&self, body: &[u8]) -> Option<Vec<u8>> {
        rpc::handle_body(self, body)
    }

    /// The HTTP JSON-RPC service, to mount in another axum server.
    pub fn router(&self) -> axum::Router {
        server::router(self.clone())
    }

    /// Serves JSON-RPC over HTTP on `addr` (port 0 picks a free port) until the handle is dropped.
    pub async fn serve(&self, addr: SocketAddr) -> Result<ServerHandle> {
        server::serve(self.clone(), addr).await
    }

    pub(crate) fn chain(&self) -> MutexGuard<'_, Chain> {
        lock(&self.inner.chain)
    }
}
