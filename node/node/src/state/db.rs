//! The state store: one redb file in the data dir. The chain follower writes
//! jobs and events together with its block cursor in one transaction; the
//! compute side writes decisions and executions before acting on them.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use shoal_api::{BidDecision, EventRecord, Execution, JobId, JobView, Step, WatchCheck};
use shoal_chain::{Cursor, U256};

use crate::shards::BatchWork;

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("follower");
const JOBS: TableDefinition<Key, &[u8]> = TableDefinition::new("jobs");
const EVENTS: TableDefinition<(Key, u64), &[u8]> = TableDefinition::new("events");
const DECISIONS: TableDefinition<Key, &[u8]> = TableDefinition::new("decisions");
const EXECUTIONS: TableDefinition<Key, &[u8]> = TableDefinition::new("executions");
const WATCHES: TableDefinition<Key, &[u8]> = TableDefinition::new("watches");
/// (sharded job, shard index) → the CID of this node's results of the shard.
const SHARD_RESULTS: TableDefinition<(Key, u32), &str> = TableDefinition::new("shard_results");
/// (sharded job, batch) → this node's root, salt and leaves document for the batch.
const SHARD_BATCHES: TableDefinition<(Key, u32), &[u8]> = TableDefinition::new("shard_batches");

/// A job id as a table key: its 32 big-endian bytes (ordered as the ids are).
type Key = [u8; 32];

fn key(id: JobId) -> Key {
    id.as_u256().to_be_bytes()
}

fn id_of(key: Key) -> JobId {
    JobId(U256::from_be_bytes(key))
}

/// Longest time a commit that may be lost in a crash (the follower's, and every record the
/// node can rebuild from the chain) stays non-durable: at most one such commit a second waits
/// for the disk, and it makes every earlier one durable with it.
const LAZY_SYNC: std::time::Duration = std::time::Duration::from_secs(1);

/// The chain follower's position (a `shoal_chain::Cursor` as JSON).
const CURSOR: &str = "follower_cursor";

/// The node's persistent state. Cheap to clone.
#[derive(Clone)]
pub struct StateStore {
    db: Arc<Database>,
    path: PathBuf,
    /// When a lazy commit was last made durable.
    last_sync: Arc<std::sync::Mutex<std::time::Instant>>,
    /// Jobs whose execution by this node is not in a terminal step: an in-memory index kept
    /// with every execution write, so counting them reads no records.
    open: Arc<std::sync::Mutex<std::collections::BTreeSet<JobId>>>,
}

impl std::fmt::Debug for StateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateStore")
            .field("path", &self.path)
            .finish()
    }
}

/// Orders a job's events by block and log index.
fn event_key(e: &EventRecord) -> u64 {
    (e.block << 24) | (e.log_index & 0xff_ffff)
}

impl StateStore {
    /// Opens (or creates) the database file.
    pub fn open(path: &Path) -> Result<Self> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io("creating", parent, e))?;
        }
        let db = Database::create(path).map_err(|e| Error::Db {
            path: path.into(),
            reason: e.to_string(),
        })?;
        let store = Self {
            db: Arc::new(db),
            path: path.into(),
            last_sync: Arc::new(std::sync::Mutex::new(std::time::Instant::now())),
            open: Arc::default(),
        };
        let txn = store.begin_write()?;
        {
            txn.open_table(META).map_err(|e| store.err(e))?;
            txn.open_table(JOBS).map_err(|e| store.err(e))?;
            txn.open_table(EVENTS).map_err(|e| store.err(e))?;
            txn.open_table(DECISIONS).map_err(|e| store.err(e))?;
            txn.open_table(EXECUTIONS).map_err(|e| store.err(e))?;
            txn.open_table(WATCHES).map_err(|e| store.err(e))?;
            txn.open_table(SHARD_RESULTS).map_err(|e| store.err(e))?;
            txn.open_table(SHARD_BATCHES).map_err(|e| store.err(e))?;
        }
        store.commit(txn)?;
        let open = store
            .executions()?
            .into_iter()
            .filter(|e| !e.step.is_terminal())
            .map(|e| e.job_id)
            .collect();
        *store.open_index() = open;
        Ok(store)
    }

    /// A write transaction, waited for off the runtime's worker ([`crate::state::blocking`]).
    fn begin_write(&self) -> Result<redb::WriteTransaction> {
        crate::state::blocking(|| self.db.begin_write()).map_err(|e| self.err(e))
    }

    /// Commits `txn`; a durable commit's fsync is waited for off the runtime's worker.
    fn commit(&self, txn: redb::WriteTransaction) -> Result<()> {
        crate::state::blocking(|| txn.commit()).map_err(|e| self.err(e))
    }

    fn open_index(&self) -> std::sync::MutexGuard<'_, std::collections::BTreeSet<JobId>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records in the index whether `e` is still open (after its write committed).
    fn index(&self, e: &Execution) {
        let mut open = self.open_index();
        if e.step.is_terminal() {
            open.remove(&e.job_id);
        } else {
            open.insert(e.job_id);
        }
    }

    /// How many of this node's executions are not in a terminal step.
    pub fn open_executions(&self) -> usize {
        self.open_index().len()
    }

    fn err(&self, e: impl std::fmt::Display) -> Error {
        Error::Db {
            path: self.path.clone(),
            reason: e.to_string(),
        }
    }

    fn encode<T: Serialize>(&self, v: &T) -> Result<Vec<u8>> {
        serde_json::to_vec(v).map_err(|e| self.err(e))
    }

    fn decode<T: DeserializeOwned>(&self, b: &[u8]) -> Result<T> {
        serde_json::from_slice(b).map_err(|e| self.err(format!("corrupt record: {e}")))
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The follower's saved position, if it ever ran.
    pub fn follower_cursor(&self) -> Result<Option<Cursor>> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let t = txn.open_table(META).map_err(|e| self.err(e))?;
        match t.get(CURSOR).map_err(|e| self.err(e))? {
            Some(g) => Ok(Some(self.decode(g.value())?)),
            None => Ok(None),
        }
    }

    /// The next block the follower reads, if it ever ran.
    pub fn cursor(&self) -> Result<Option<u64>> {
        Ok(self.follower_cursor()?.map(|c| c.next_block))
    }

    /// Stores updated jobs, new events and the follower's new position atomically. These
    /// commits are made durable at most once a second (or by the next durable write of a
    /// decision or execution): losing the newest of them in a crash only makes the follower
    /// read those blocks again, as the cursor is lost with them.
    pub fn apply(
        &self,
        jobs: &[JobView],
        events: &[(JobId, EventRecord)],
        cursor: &Cursor,
    ) -> Result<()> {
        let txn = self.begin_lazy()?;
        {
            let mut jt = txn.open_table(JOBS).map_err(|e| self.err(e))?;
            for j in jobs {
                let bytes = self.encode(j)?;
                jt.insert(key(j.id), bytes.as_slice())
                    .map_err(|e| self.err(e))?;
            }
            let mut et = txn.open_table(EVENTS).map_err(|e| self.err(e))?;
            for (id, e) in events {
                let bytes = self.encode(e)?;
                et.insert((key(*id), event_key(e)), bytes.as_slice())
                    .map_err(|e| self.err(e))?;
            }
        }
        self.put_cursor(&txn, cursor)?;
        self.commit(txn)
    }

    /// A write transaction whose commit may be lost in a crash: durable only when the last
    /// durable lazy commit is [`LAZY_SYNC`] old (a durable commit of any kind makes the earlier
    /// ones durable too).
    fn begin_lazy(&self) -> Result<redb::WriteTransaction> {
        let mut txn = self.begin_write()?;
        let mut last = self.last_sync.lock().unwrap_or_else(|p| p.into_inner());
        if last.elapsed() < LAZY_SYNC {
            txn.set_durability(redb::Durability::None)
                .map_err(|e| self.err(e))?;
        } else {
            *last = std::time::Instant::now();
        }
        Ok(txn)
    }

    /// Stores the follower's position in `txn`.
    fn put_cursor(&self, txn: &redb::WriteTransaction, cursor: &Cursor) -> Result<()> {
        let mut mt = txn.open_table(META).map_err(|e| self.err(e))?;
        let bytes = self.encode(cursor)?;
        mt.insert(CURSOR, bytes.as_slice())
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Jobs with an event in a block above `block` (what a reorg to `block` voids).
    pub fn jobs_with_events_after(&self, block: u64) -> Result<Vec<JobId>> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let t = txn.open_table(EVENTS).map_err(|e| self.err(e))?;
        let mut out: Vec<JobId> = Vec::new();
        for item in t.iter().map_err(|e| self.err(e))? {
            let (k, _) = item.map_err(|e| self.err(e))?;
            let (job, key) = k.value();
            if key >> 24 > block && out.last() != Some(&id_of(job)) {
                out.push(id_of(job));
            }
        }
        Ok(out)
    }

    /// After a reorg: replaces the rebuilt jobs and their whole event history, deletes the
    /// forgotten jobs with this node's decisions and executions for them, and stores the
    /// follower's rewound position, in one transaction.
    pub fn roll_back(
        &self,
        rebuilt: &[(JobView, Vec<EventRecord>)],
        forgotten: &[JobId],
        cursor: &Cursor,
    ) -> Result<()> {
        let txn = self.begin_write()?;
        {
            let mut jt = txn.open_table(JOBS).map_err(|e| self.err(e))?;
            let mut et = txn.open_table(EVENTS).map_err(|e| self.err(e))?;
            let all = rebuilt
                .iter()
                .map(|(j, _)| j.id)
                .chain(forgotten.iter().copied());
            for id in all {
                et.retain_in((key(id), 0)..=(key(id), u64::MAX), |_, _| false)
                    .map_err(|e| self.err(e))?;
            }
            // A job posted above the fork never existed on the chain that won: this node's
            // decision and execution for it go too (its id may be reused by another job).
            let mut dt = txn.open_table(DECISIONS).map_err(|e| self.err(e))?;
            let mut xt = txn.open_table(EXECUTIONS).map_err(|e| self.err(e))?;
            let mut wt = txn.open_table(WATCHES).map_err(|e| self.err(e))?;
            for id in forgotten {
                self.open_index().remove(id);
                jt.remove(key(*id)).map_err(|e| self.err(e))?;
                dt.remove(key(*id)).map_err(|e| self.err(e))?;
                xt.remove(key(*id)).map_err(|e| self.err(e))?;
                wt.remove(key(*id)).map_err(|e| self.err(e))?;
            }
            for (job, events) in rebuilt {
                let bytes = self.encode(job)?;
                jt.insert(key(job.id), bytes.as_slice())
                    .map_err(|e| self.err(e))?;
                for e in events {
                    let bytes = self.encode(e)?;
                    et.insert((key(job.id), event_key(e)), bytes.as_slice())
                        .map_err(|e| self.err(e))?;
                }
            }
        }
        self.put_cursor(&txn, cursor)?;
        self.commit(txn)
    }

    fn get<T: DeserializeOwned>(
        &self,
        table: TableDefinition<Key, &[u8]>,
        key: Key,
    ) -> Result<Option<T>> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let t = txn.open_table(table).map_err(|e| self.err(e))?;
        match t.get(key).map_err(|e| self.err(e))? {
            Some(g) => Ok(Some(self.decode(g.value())?)),
            None => Ok(None),
        }
    }

    fn put<T: Serialize>(&self, table: TableDefinition<Key, &[u8]>, key: Key, v: &T) -> Result<()> {
        let bytes = self.encode(v)?;
        let txn = self.begin_write()?;
        self.put_in(txn, table, key, &bytes)
    }

    /// Writes `bytes` under `key` in `txn` and commits it.
    fn put_in(
        &self,
        txn: redb::WriteTransaction,
        table: TableDefinition<Key, &[u8]>,
        key: Key,
        bytes: &[u8],
    ) -> Result<()> {
        {
            let mut t = txn.open_table(table).map_err(|e| self.err(e))?;
            t.insert(key, bytes).map_err(|e| self.err(e))?;
        }
        self.commit(txn)
    }

    fn all<T: DeserializeOwned>(&self, table: TableDefinition<Key, &[u8]>) -> Result<Vec<T>> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let t = txn.open_table(table).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for item in t.iter().map_err(|e| self.err(e))? {
            let (_, v) = item.map_err(|e| self.err(e))?;
            out.push(self.decode(v.value())?);
        }
        Ok(out)
    }

    /// A job.
    pub fn job(&self, id: JobId) -> Result<Option<JobView>> {
        self.get(JOBS, key(id))
    }

    /// Every job, in id order.
    pub fn jobs(&self) -> Result<Vec<JobView>> {
        self.all(JOBS)
    }

    /// A job's events in chain order.
    pub fn events(&self, id: JobId) -> Result<Vec<EventRecord>> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let t = txn.open_table(EVENTS).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for item in t
            .range((key(id), 0)..=(key(id), u64::MAX))
            .map_err(|e| self.err(e))?
        {
            let (_, v) = item.map_err(|e| self.err(e))?;
            out.push(self.decode(v.value())?);
        }
        Ok(out)
    }

    /// This node's bid decision on a job.
    pub fn decision(&self, id: JobId) -> Result<Option<BidDecision>> {
        self.get(DECISIONS, key(id))
    }

    /// Records a bid decision, and with it the execution it starts (one transaction). Lazily
    /// durable: a node that loses it in a crash decides again (a bid already on chain is
    /// recognised when resent).
    pub fn put_decision(&self, id: JobId, d: &BidDecision, exec: Option<&Execution>) -> Result<()> {
        let decision = self.encode(d)?;
        let exec_bytes = exec.map(|e| self.encode(e)).transpose()?;
        let txn = self.begin_lazy()?;
        {
            let mut t = txn.open_table(DECISIONS).map_err(|e| self.err(e))?;
            t.insert(key(id), decision.as_slice())
                .map_err(|e| self.err(e))?;
            if let Some(bytes) = &exec_bytes {
                let mut x = txn.open_table(EXECUTIONS).map_err(|e| self.err(e))?;
                x.insert(key(id), bytes.as_slice())
                    .map_err(|e| self.err(e))?;
            }
        }
        self.commit(txn)?;
        if let Some(e) = exec {
            self.index(e);
        }
        Ok(())
    }

    /// This node's execution of a job.
    pub fn execution(&self, id: JobId) -> Result<Option<Execution>> {
        self.get(EXECUTIONS, key(id))
    }

    /// Every execution of this node.
    pub fn executions(&self) -> Result<Vec<Execution>> {
        self.all(EXECUTIONS)
    }

    /// Persists an execution (before the step it records is acted on). Only a commitment's
    /// secret (the `committed` step: result hash and salt, needed to reveal) is made durable
    /// before this returns; every other step is lazily durable, as a node that loses it in a
    /// crash takes the job up from the step before, which the chain's state completes.
    pub fn put_execution(&self, e: &Execution) -> Result<()> {
        if matches!(e.step, Step::Committed { .. }) {
            self.put(EXECUTIONS, key(e.job_id), e)?;
        } else {
            let bytes = self.encode(e)?;
            self.put_in(self.begin_lazy()?, EXECUTIONS, key(e.job_id), &bytes)?;
        }
        self.index(e);
        Ok(())
    }

    /// The CID of this node's results of shard `shard` of sharded job `job`, once run.
    pub fn shard_result(&self, job: JobId, shard: u32) -> Result<Option<String>> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let t = txn.open_table(SHARD_RESULTS).map_err(|e| self.err(e))?;
        Ok(t.get((key(job), shard))
            .map_err(|e| self.err(e))?
            .map(|v| v.value().to_owned()))
    }

    /// Records a shard's results (after they are in the blockstore).
    pub fn put_shard_result(&self, job: JobId, shard: u32, cid: &str) -> Result<()> {
        let txn = self.begin_write()?;
        {
            let mut t = txn.open_table(SHARD_RESULTS).map_err(|e| self.err(e))?;
            t.insert((key(job), shard), cid).map_err(|e| self.err(e))?;
        }
        self.commit(txn)
    }

    /// This node's work on batch `batch` of sharded job `job`.
    pub fn shard_batch(&self, job: JobId, batch: u32) -> Result<Option<BatchWork>> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let t = txn.open_table(SHARD_BATCHES).map_err(|e| self.err(e))?;
        t.get((key(job), batch))
            .map_err(|e| self.err(e))?
            .map(|v| {
                serde_json::from_slice(v.value())
                    .map_err(|e| self.err(format!("a batch record: {e}")))
            })
            .transpose()
    }

    /// Records this node's work on a batch (before its commitment is sent).
    pub fn put_shard_batch(&self, job: JobId, batch: u32, w: &BatchWork) -> Result<()> {
        let bytes = self.encode(w)?;
        let txn = self.begin_write()?;
        {
            let mut t = txn.open_table(SHARD_BATCHES).map_err(|e| self.err(e))?;
            t.insert((key(job), batch), bytes.as_slice())
                .map_err(|e| self.err(e))?;
        }
        self.commit(txn)
    }

    /// This node's watcher check of an optimistic job.
    pub fn watch(&self, id: JobId) -> Result<Option<WatchCheck>> {
        self.get(WATCHES, key(id))
    }

    /// Records a watcher check (before a challenge is sent, so it is sent once).
    pub fn put_watch(&self, id: JobId, w: &WatchCheck) -> Result<()> {
        self.put(WATCHES, key(id), w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shoal_api::Role;

    /// The open-execution count follows every write path and survives a reopen.
    #[test]
    fn open_executions_follow_writes_and_reopen() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::io("creating", Path::new("tmp"), e))?;
        let path = dir.path().join("state.redb");
        let store = StateStore::open(&path)?;
        let (a, b) = (JobId::from(1u64), JobId::from(2u64));
        store.put_execution(&Execution::new(a, Role::Worker, Step::Running))?;
        let decision = BidDecision {
            bid: true,
            reason: "test".into(),
            price: None,
            at: 0,
        };
        store.put_decision(
            b,
            &decision,
            Some(&Execution::new(b, Role::Worker, Step::Bidding)),
        )?;
        assert_eq!(store.open_executions(), 2);
        let done = Step::Done {
            reason: "not selected".into(),
        };
        store.put_execution(&Execution::new(b, Role::Worker, done))?;
        assert_eq!(store.open_executions(), 1);
        drop(store);
        let reopened = StateStore::open(&path)?;
        assert_eq!(reopened.open_executions(), 1, "rebuilt from the records");
        Ok(())
    }
}
