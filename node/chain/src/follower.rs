//! The event follower: the market's and the registry's events from a persisted cursor.

use std::time::Duration;

use alloy::eips::BlockNumberOrTag;
use alloy::primitives::{Address, B256};
use alloy::providers::{DynProvider, Provider};
use alloy::rpc::types::Filter;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::client::ChainClient;
use crate::cursor::{Cursor, CursorStore};
use crate::error::{Error, Result};
use crate::events::ChainEvent;

/// How the follower reads.
#[derive(Debug, Clone)]
pub struct FollowerConfig {
    /// Blocks below the head a block must be before its events are delivered (0 = at once).
    pub confirmations: u64,
    /// Most blocks read with one `eth_getLogs`.
    pub max_range: u64,
    /// How often to look for new blocks when caught up.
    pub poll_interval: Duration,
    /// How many recent block hashes to remember to find where a reorg forked.
    pub remember: usize,
}

impl Default for FollowerConfig {
    fn default() -> Self {
        Self {
            confirmations: 0,
            max_range: 1000,
            poll_interval: Duration::from_millis(500),
            remember: 128,
        }
    }
}

/// Events of consecutive blocks `from_block..=to_block`, in chain order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventBatch {
    pub from_block: u64,
    pub to_block: u64,
    pub events: Vec<ChainEvent>,
    /// Whether the batch ends at the newest confirmed block when it was read (else more
    /// blocks are waiting: the batch hit `max_range`).
    pub caught_up: bool,
    cursor: Cursor,
}

/// What the follower yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FollowerUpdate {
    /// New events.
    Events(EventBatch),
    /// The chain reorganised: every event delivered from a block above `to_block` is void;
    /// the events of the new chain follow.
    Reorg { to_block: u64, cursor: Cursor },
}

impl FollowerUpdate {
    /// The cursor that [`EventFollower::ack`] persists for this update.
    pub fn cursor(&self) -> &Cursor {
        match self {
            FollowerUpdate::Events(b) => &b.cursor,
            FollowerUpdate::Reorg { cursor, .. } => cursor,
        }
    }
}

/// Reads the market's and the registry's logs in bounded block ranges from a persisted
/// [`Cursor`], `confirmations` blocks behind the head. The persisted cursor advances only when
/// the consumer acknowledges an update, so after a restart nothing is missed or repeated.
/// Short reorgs are detected from remembered block hashes and reported as
/// [`FollowerUpdate::Reorg`] before the new chain's events.
pub struct EventFollower {
    provider: DynProvider,
    market: Address,
    registry: Address,
    store: Box<dyn CursorStore>,
    /// Position after the last yielded update (ahead of the persisted one until acked).
    cursor: Cursor,
    config: FollowerConfig,
}

impl std::fmt::Debug for EventFollower {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventFollower")
            .field("cursor", &self.cursor)
            .field("config", &self.config)
            .finish()
    }
}

impl EventFollower {
    /// A follower of the client's deployment; starts at the saved cursor, or at the deployment
    /// block when none was saved.
    pub fn new(
        client: &ChainClient,
        store: impl CursorStore + 'static,
        config: FollowerConfig,
    ) -> Result<Self> {
        let d = client.deployment()?;
        let cursor = store.load()?.unwrap_or_else(|| Cursor::at(d.deploy_block));
        Ok(Self {
            provider: client.provider().clone(),
            market: d.job_market,
            registry: d.operator_registry,
            store: Box::new(store),
            cursor,
            config,
        })
    }

    /// The position after the last yielded update.
    pub fn cursor(&self) -> &Cursor {
        &self.cursor
    }

    /// Persists the position after `update`: it will not be delivered again after a restart.
    pub fn ack(&mut self, update: &FollowerUpdate) -> Result<()> {
        self.store.save(update.cursor())
    }

    /// Waits for the next update.
    pub async fn next(&mut self) -> Result<FollowerUpdate> {
        loop {
            if let Some(update) = self.poll().await? {
                return Ok(update);
            }
            tokio::time::sleep(self.config.poll_interval).await;
        }
    }

    /// One step: a reorg notice, a batch of events (possibly empty), or `None` when there is
    /// no new confirmed block.
    ///
    /// A step with new blocks reads the head, the first new block's header, the last one's
    /// hash (when there are several) and the logs. A reorg of the blocks read before shows as
    /// the first new block's parent not being the last block read; a reorg while the logs are
    /// read, as a log whose block hash differs from the one read before (or else, as that
    /// parent mismatch at the next step, which then rewinds).
    pub async fn poll(&mut self) -> Result<Option<FollowerUpdate>> {
        let head = self
            .provider
            .get_block_number()
            .await
            .map_err(Error::rpc("eth_blockNumber"))?;
        let safe = head.saturating_sub(self.config.confirmations);
        let from = self.cursor.next_block;
        if from > safe {
            // No new block: only the remembered ones can have changed.
            return self.rewind_if_reorged().await;
        }
        let Some((from_hash, parent)) = self.header(from).await? else {
            // The head moved back since it was read: a reorg to a shorter chain.
            return self.rewind_if_reorged().await;
        };
        if let Some((n, h)) = self.cursor.recent.last()
            && *n + 1 == from
            && *h != parent
        {
            return self.rewind_if_reorged().await;
        }
        let to = safe.min(from.saturating_add(self.config.max_range.max(1) - 1));
        let to_hash = if to == from {
            from_hash
        } else {
            self.block_hash(to).await?
        };
        let filter = Filter::new()
            .address(vec![self.market, self.registry])
            .from_block(from)
            .to_block(to);
        let logs = self
            .provider
            .get_logs(&filter)
            .await
            .map_err(Error::rpc("eth_getLogs"))?;
        let mut events = Vec::with_capacity(logs.len());
        let mut seen = Vec::new();
        for log in &logs {
            if log.removed {
                continue;
            }
            let (Some(n), Some(h)) = (log.block_number, log.block_hash) else {
                continue;
            };
            if (n == to && h != to_hash) || (n == from && h != from_hash) {
                return Ok(None);
            }
            if seen.last().is_none_or(|(m, _)| *m != n) {
                seen.push((n, h));
            }
            if let Some(event) = ChainEvent::from_rpc_log(log, self.market, self.registry) {
                events.push(event?);
            }
        }
        events.sort_by_key(|e| (e.block_number, e.log_index));
        let mut recent = std::mem::take(&mut self.cursor.recent);
        recent.push((from, from_hash));
        recent.extend(seen);
        recent.push((to, to_hash));
        recent.sort_by_key(|(n, _)| *n);
        recent.dedup_by_key(|(n, _)| *n);
        let excess = recent.len().saturating_sub(self.config.remember.max(1));
        recent.drain(..excess);
        self.cursor = Cursor {
            next_block: to + 1,
            recent,
        };
        Ok(Some(FollowerUpdate::Events(EventBatch {
            from_block: from,
            to_block: to,
            events,
            caught_up: to == safe,
            cursor: self.cursor.clone(),
        })))
    }

    /// A reorg notice when the newest remembered block is no longer on the chain (the cursor
    /// rewound to the newest remembered block that still is), otherwise nothing.
    async fn rewind_if_reorged(&mut self) -> Result<Option<FollowerUpdate>> {
        let Some(to_block) = self.find_reorg().await? else {
            return Ok(None);
        };
        let keep = self
            .cursor
            .recent
            .iter()
            .take_while(|(n, _)| *n <= to_block)
            .count();
        self.cursor.recent.truncate(keep);
        self.cursor.next_block = to_block + 1;
        tracing::warn!(to_block, "chain reorganised; rewinding the event follower");
        Ok(Some(FollowerUpdate::Reorg {
            to_block,
            cursor: self.cursor.clone(),
        }))
    }

    /// When the newest remembered block is no longer on the chain: the newest remembered block
    /// that still is (the fork point, or below it).
    async fn find_reorg(&self) -> Result<Option<u64>> {
        let Some((n, h)) = self.cursor.recent.last().copied() else {
            return Ok(None);
        };
        if self.try_block_hash(n).await? == Some(h) {
            return Ok(None);
        }
        for (m, hm) in self.cursor.recent.iter().rev().skip(1) {
            if self.try_block_hash(*m).await? == Some(*hm) {
                return Ok(Some(*m));
            }
        }
        let oldest = self.cursor.recent.first().map(|(m, _)| *m).unwrap_or(n);
        Err(Error::DeepReorg {
            oldest_known: oldest,
            remembered: self.cursor.recent.len(),
        })
    }

    /// `(hash, parent hash)` of block `n`, if the endpoint has it.
    async fn header(&self, n: u64) -> Result<Option<(B256, B256)>> {
        let block = self
            .provider
            .get_block_by_number(BlockNumberOrTag::Number(n))
            .await
            .map_err(Error::rpc("eth_getBlockByNumber"))?;
        Ok(block.map(|b| (b.header.hash, b.header.parent_hash)))
    }

    async fn try_block_hash(&self, n: u64) -> Result<Option<B256>> {
        Ok(self.header(n).await?.map(|(hash, _)| hash))
    }

    async fn block_hash(&self, n: u64) -> Result<B256> {
        self.try_block_hash(n).await?.ok_or(Error::MissingBlock(n))
    }

    /// Runs the follower in a task that sends each update through a bounded channel and waits
    /// for its [`Delivery::ack`] before persisting it and reading on. Transient RPC errors are
    /// retried; the task ends when the receiver is dropped or on a fatal error.
    pub fn spawn(mut self, capacity: usize) -> (mpsc::Receiver<Delivery>, JoinHandle<Result<()>>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let task = tokio::spawn(async move {
            let mut backoff = self.config.poll_interval;
            loop {
                let next = tokio::select! {
                    next = self.next() => next,
                    () = tx.closed() => return Ok(()),
                };
                let update = match next {
                    Ok(u) => u,
                    Err(e @ (Error::Rpc { .. } | Error::MissingBlock(_))) => {
                        tracing::warn!(error = %e, "event follower: retrying");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(30));
                        continue;
                    }
                    Err(e) => return Err(e),
                };
                backoff = self.config.poll_interval;
                let (ack_tx, ack_rx) = oneshot::channel();
                let cursor = update.cursor().clone();
                if tx
                    .send(Delivery {
                        update,
                        ack: ack_tx,
                    })
                    .await
                    .is_err()
                {
                    return Ok(());
                }
                match ack_rx.await {
                    Ok(()) => self.store.save(&cursor)?,
                    Err(_) => return Ok(()),
                }
            }
        });
        (rx, task)
    }
}

/// An update from a spawned follower; call [`Delivery::ack`] once it is processed.
#[derive(Debug)]
pub struct Delivery {
    pub update: FollowerUpdate,
    ack: oneshot::Sender<()>,
}

impl Delivery {
    /// Confirms the update was processed; the follower persists its cursor and reads on.
    /// Dropping a delivery without acking stops the follower without advancing the cursor.
    pub fn ack(self) {
        let _ = self.ack.send(());
    }
}
