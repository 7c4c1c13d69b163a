//! The state store: one redb file in the data dir. The chain follower writes
//! jobs and events together with its block cursor in one transaction; the
//! compute side writes decisions and executions before acting on them (lazily
//! durable ones are gathered in memory and committed together every
//! [`FLUSH_EVERY`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use redb::{ReadableTable, TableDefinition};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::DbFile;
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
const LAZY_SYNC: Duration = Duration::from_secs(1);

/// How often the lazily durable decisions and executions written since the last commit are
/// committed, all in one transaction (a node writes several per job; one commit each cost
/// more than the rest of its bookkeeping).
const FLUSH_EVERY: Duration = Duration::from_millis(100);

/// Most jobs kept decoded in memory; past it the cache starts over (reads fill it again).
const JOB_CACHE: usize = 4096;

/// The chain follower's position (a `shoal_chain::Cursor` as JSON).
const CURSOR: &str = "follower_cursor";

/// The node's persistent state. Cheap to clone.
#[derive(Clone)]
pub struct StateStore {
    s: Arc<Shared>,
}

struct Shared {
    file: DbFile,
    /// When a lazy commit was last made durable.
    last_sync: Mutex<Instant>,
    /// Jobs whose execution by this node is not in a terminal step: an in-memory index kept
    /// with every execution write, so counting them reads no records.
    open: Mutex<BTreeSet<JobId>>,
    /// Lazily durable writes not committed yet; reads look here first.
    pending: Mutex<Pending>,
    /// Held from taking the pending writes to committing them (and by a roll-back), so two
    /// commits of one record cannot land in the other order.
    writer: Mutex<()>,
    /// Decoded jobs, as the follower last stored them.
    jobs: Mutex<HashMap<JobId, JobView>>,
}

/// Decisions and executions written since the last commit, each with its write number.
#[derive(Default)]
struct Pending {
    seq: u64,
    decisions: HashMap<Key, (u64, BidDecision)>,
    executions: HashMap<Key, (u64, Execution)>,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.decisions.is_empty() && self.executions.is_empty()
    }

    fn next(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Drop for Shared {
    fn drop(&mut self) {
        if let Err(e) = self.flush(true) {
            tracing::warn!(path = %self.file.path.display(), error = %e, "cannot save the last decisions and executions");
        }
    }
}

/// Commits the pending writes every [`FLUSH_EVERY`] until the store is dropped.
fn spawn_flusher(store: Weak<Shared>) -> std::io::Result<()> {
    let run = move || {
        loop {
            std::thread::sleep(FLUSH_EVERY);
            let Some(s) = store.upgrade() else {
                return;
            };
            if let Err(e) = s.flush(false) {
                tracing::warn!(path = %s.file.path.display(), error = %e, "cannot save decisions and executions; will retry");
            }
        }
    };
    std::thread::Builder::new()
        .name("state-flush".into())
        .spawn(run)
        .map(|_| ())
}

impl std::fmt::Debug for StateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateStore")
            .field("path", &self.s.file.path)
            .finish()
    }
}

/// Orders a job's events by block and log index.
fn event_key(e: &EventRecord) -> u64 {
    (e.block << 24) | (e.log_index & 0xff_ffff)
}

impl Shared {
    /// A write transaction whose commit may be lost in a crash: durable only when the last
    /// durable lazy commit is [`LAZY_SYNC`] old (a durable commit of any kind makes the earlier
    /// ones durable too).
    fn begin_lazy(&self) -> Result<redb::WriteTransaction> {
        let mut txn = self.file.begin_write()?;
        let mut last = lock(&self.last_sync);
        if last.elapsed() < LAZY_SYNC {
            txn.set_durability(redb::Durability::None)
                .map_err(|e| self.file.err(e))?;
        } else {
            *last = Instant::now();
        }
        Ok(txn)
    }

    fn encode<T: Serialize>(&self, v: &T) -> Result<Vec<u8>> {
        serde_json::to_vec(v).map_err(|e| self.file.err(e))
    }

    fn decode<T: DeserializeOwned>(&self, b: &[u8]) -> Result<T> {
        serde_json::from_slice(b).map_err(|e| self.file.err(format!("corrupt record: {e}")))
    }

    /// Commits the pending decisions and executions in one transaction: waiting for the disk
    /// when `durable`, otherwise by the lazy rule ([`Shared::begin_lazy`]). A failed commit
    /// leaves them pending for the next try.
    fn flush(&self, durable: bool) -> Result<()> {
        let _writer = lock(&self.writer);
        let (upto, decisions, executions) = {
            let p = lock(&self.pending);
            if p.is_empty() && !durable {
                return Ok(());
            }
            let decisions = p
                .decisions
                .iter()
                .map(|(k, (_, d))| Ok((*k, self.encode(d)?)))
                .collect::<Result<Vec<_>>>()?;
            let executions = p
                .executions
                .iter()
                .map(|(k, (_, e))| Ok((*k, self.encode(e)?)))
                .collect::<Result<Vec<_>>>()?;
            (p.seq, decisions, executions)
        };
        let txn = if durable {
            self.file.begin_write()?
        } else {
            self.begin_lazy()?
        };
        {
            let mut t = txn.open_table(DECISIONS).map_err(|e| self.file.err(e))?;
            for (k, bytes) in &decisions {
                t.insert(*k, bytes.as_slice())
                    .map_err(|e| self.file.err(e))?;
            }
            let mut t = txn.open_table(EXECUTIONS).map_err(|e| self.file.err(e))?;
            for (k, bytes) in &executions {
                t.insert(*k, bytes.as_slice())
                    .map_err(|e| self.file.err(e))?;
            }
        }
        self.file.commit(txn)?;
        if durable {
            *lock(&self.last_sync) = Instant::now();
        }
        let mut p = lock(&self.pending);
        p.decisions.retain(|_, (seq, _)| *seq > upto);
        p.executions.retain(|_, (seq, _)| *seq > upto);
        Ok(())
    }
}

impl StateStore {
    /// Opens (or creates) the database file.
    pub fn open(path: &Path) -> Result<Self> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io("creating", parent, e))?;
        }
        let store = Self {
            s: Arc::new(Shared {
                file: DbFile::open(path)?,
                last_sync: Mutex::new(Instant::now()),
                open: Mutex::default(),
                pending: Mutex::default(),
                writer: Mutex::new(()),
                jobs: Mutex::default(),
            }),
        };
        let txn = store.s.file.begin_write()?;
        {
            txn.open_table(META).map_err(|e| store.s.file.err(e))?;
            txn.open_table(JOBS).map_err(|e| store.s.file.err(e))?;
            txn.open_table(EVENTS).map_err(|e| store.s.file.err(e))?;
            txn.open_table(DECISIONS).map_err(|e| store.s.file.err(e))?;
            txn.open_table(EXECUTIONS)
                .map_err(|e| store.s.file.err(e))?;
            txn.open_table(WATCHES).map_err(|e| store.s.file.err(e))?;
            txn.open_table(SHARD_RESULTS)
                .map_err(|e| store.s.file.err(e))?;
            txn.open_table(SHARD_BATCHES)
                .map_err(|e| store.s.file.err(e))?;
        }
        store.s.file.commit(txn)?;
        let open = store
            .executions()?
            .into_iter()
            .filter(|e| !e.step.is_terminal())
            .map(|e| e.job_id)
            .collect();
        *lock(&store.s.open) = open;
        spawn_flusher(Arc::downgrade(&store.s)).map_err(|e| {
            store
                .s
                .file
                .err(format!("cannot start the state writer thread ({e}); the process is out of threads or memory: raise its limits (ulimit -u, memory) and start the node again"))
        })?;
        Ok(store)
    }

    /// Records in the index whether `e` is still open.
    fn index(&self, e: &Execution) {
        let mut open = lock(&self.s.open);
        if e.step.is_terminal() {
            open.remove(&e.job_id);
        } else {
            open.insert(e.job_id);
        }
    }

    /// How many of this node's executions are not in a terminal step.
    pub fn open_executions(&self) -> usize {
        lock(&self.s.open).len()
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.s.file.path
    }

    /// The follower's saved position, if it ever ran.
    pub fn follower_cursor(&self) -> Result<Option<Cursor>> {
        let txn = self.s.file.begin_read()?;
        let t = txn.open_table(META).map_err(|e| self.s.file.err(e))?;
        match t.get(CURSOR).map_err(|e| self.s.file.err(e))? {
            Some(g) => Ok(Some(self.s.decode(g.value())?)),
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
        let txn = self.s.begin_lazy()?;
        {
            let mut jt = txn.open_table(JOBS).map_err(|e| self.s.file.err(e))?;
            for j in jobs {
                let bytes = self.s.encode(j)?;
                jt.insert(key(j.id), bytes.as_slice())
                    .map_err(|e| self.s.file.err(e))?;
            }
            let mut et = txn.open_table(EVENTS).map_err(|e| self.s.file.err(e))?;
            for (id, e) in events {
                let bytes = self.s.encode(e)?;
                et.insert((key(*id), event_key(e)), bytes.as_slice())
                    .map_err(|e| self.s.file.err(e))?;
            }
        }
        self.put_cursor(&txn, cursor)?;
        self.s.file.commit(txn)?;
        let mut cache = lock(&self.s.jobs);
        if cache.len() + jobs.len() > JOB_CACHE {
            cache.clear();
        }
        for j in jobs {
            cache.insert(j.id, j.clone());
        }
        Ok(())
    }

    /// Stores the follower's position in `txn`.
    fn put_cursor(&self, txn: &redb::WriteTransaction, cursor: &Cursor) -> Result<()> {
        let mut mt = txn.open_table(META).map_err(|e| self.s.file.err(e))?;
        let bytes = self.s.encode(cursor)?;
        mt.insert(CURSOR, bytes.as_slice())
            .map_err(|e| self.s.file.err(e))?;
        Ok(())
    }

    /// Jobs with an event in a block above `block` (what a reorg to `block` voids).
    pub fn jobs_with_events_after(&self, block: u64) -> Result<Vec<JobId>> {
        let txn = self.s.file.begin_read()?;
        let t = txn.open_table(EVENTS).map_err(|e| self.s.file.err(e))?;
        let mut out: Vec<JobId> = Vec::new();
        for item in t.iter().map_err(|e| self.s.file.err(e))? {
            let (k, _) = item.map_err(|e| self.s.file.err(e))?;
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
        let _writer = lock(&self.s.writer);
        {
            let mut p = lock(&self.s.pending);
            for id in forgotten {
                p.decisions.remove(&key(*id));
                p.executions.remove(&key(*id));
            }
        }
        lock(&self.s.jobs).clear();
        let txn = self.s.file.begin_write()?;
        {
            let mut jt = txn.open_table(JOBS).map_err(|e| self.s.file.err(e))?;
            let mut et = txn.open_table(EVENTS).map_err(|e| self.s.file.err(e))?;
            let all = rebuilt
                .iter()
                .map(|(j, _)| j.id)
                .chain(forgotten.iter().copied());
            for id in all {
                et.retain_in((key(id), 0)..=(key(id), u64::MAX), |_, _| false)
                    .map_err(|e| self.s.file.err(e))?;
            }
            // A job posted above the fork never existed on the chain that won: this node's
            // decision and execution for it go too (its id may be reused by another job).
            let mut dt = txn.open_table(DECISIONS).map_err(|e| self.s.file.err(e))?;
            let mut xt = txn.open_table(EXECUTIONS).map_err(|e| self.s.file.err(e))?;
            let mut wt = txn.open_table(WATCHES).map_err(|e| self.s.file.err(e))?;
            for id in forgotten {
                lock(&self.s.open).remove(id);
                jt.remove(key(*id)).map_err(|e| self.s.file.err(e))?;
                dt.remove(key(*id)).map_err(|e| self.s.file.err(e))?;
                xt.remove(key(*id)).map_err(|e| self.s.file.err(e))?;
                wt.remove(key(*id)).map_err(|e| self.s.file.err(e))?;
            }
            for (job, events) in rebuilt {
                let bytes = self.s.encode(job)?;
                jt.insert(key(job.id), bytes.as_slice())
                    .map_err(|e| self.s.file.err(e))?;
                for e in events {
                    let bytes = self.s.encode(e)?;
                    et.insert((key(job.id), event_key(e)), bytes.as_slice())
                        .map_err(|e| self.s.file.err(e))?;
                }
            }
        }
        self.put_cursor(&txn, cursor)?;
        let done = self.s.file.commit(txn);
        lock(&self.s.jobs).clear();
        done
    }

    fn get<T: DeserializeOwned>(
        &self,
        table: TableDefinition<Key, &[u8]>,
        key: Key,
    ) -> Result<Option<T>> {
        let txn = self.s.file.begin_read()?;
        let t = txn.open_table(table).map_err(|e| self.s.file.err(e))?;
        match t.get(key).map_err(|e| self.s.file.err(e))? {
            Some(g) => Ok(Some(self.s.decode(g.value())?)),
            None => Ok(None),
        }
    }

    fn put<T: Serialize>(&self, table: TableDefinition<Key, &[u8]>, key: Key, v: &T) -> Result<()> {
        let bytes = self.s.encode(v)?;
        let txn = self.s.file.begin_write()?;
        {
            let mut t = txn.open_table(table).map_err(|e| self.s.file.err(e))?;
            t.insert(key, bytes.as_slice())
                .map_err(|e| self.s.file.err(e))?;
        }
        self.s.file.commit(txn)
    }

    fn all<T: DeserializeOwned>(&self, table: TableDefinition<Key, &[u8]>) -> Result<Vec<T>> {
        let txn = self.s.file.begin_read()?;
        let t = txn.open_table(table).map_err(|e| self.s.file.err(e))?;
        let mut out = Vec::new();
        for item in t.iter().map_err(|e| self.s.file.err(e))? {
            let (_, v) = item.map_err(|e| self.s.file.err(e))?;
            out.push(self.s.decode(v.value())?);
        }
        Ok(out)
    }

    /// A job.
    pub fn job(&self, id: JobId) -> Result<Option<JobView>> {
        // The lock is held over a miss's read so that a job the follower stores meanwhile is
        // not overwritten in the cache by the older copy read here.
        let mut cache = lock(&self.s.jobs);
        if let Some(j) = cache.get(&id) {
            return Ok(Some(j.clone()));
        }
        let job: Option<JobView> = self.get(JOBS, key(id))?;
        if let Some(j) = &job {
            if cache.len() >= JOB_CACHE {
                cache.clear();
            }
            cache.insert(id, j.clone());
        }
        Ok(job)
    }

    /// Every job, in id order.
    pub fn jobs(&self) -> Result<Vec<JobView>> {
        self.all(JOBS)
    }

    /// A job's events in chain order.
    pub fn events(&self, id: JobId) -> Result<Vec<EventRecord>> {
        let txn = self.s.file.begin_read()?;
        let t = txn.open_table(EVENTS).map_err(|e| self.s.file.err(e))?;
        let mut out = Vec::new();
        for item in t
            .range((key(id), 0)..=(key(id), u64::MAX))
            .map_err(|e| self.s.file.err(e))?
        {
            let (_, v) = item.map_err(|e| self.s.file.err(e))?;
            out.push(self.s.decode(v.value())?);
        }
        Ok(out)
    }

    /// This node's bid decision on a job.
    pub fn decision(&self, id: JobId) -> Result<Option<BidDecision>> {
        if let Some((_, d)) = lock(&self.s.pending).decisions.get(&key(id)) {
            return Ok(Some(d.clone()));
        }
        self.get(DECISIONS, key(id))
    }

    /// Records a bid decision, and with it the execution it starts (committed together).
    /// Lazily durable: a node that loses it in a crash decides again (a bid already on chain
    /// is recognised when resent).
    pub fn put_decision(&self, id: JobId, d: &BidDecision, exec: Option<&Execution>) -> Result<()> {
        {
            let mut p = lock(&self.s.pending);
            let seq = p.next();
            p.decisions.insert(key(id), (seq, d.clone()));
            if let Some(e) = exec {
                p.executions.insert(key(id), (seq, e.clone()));
            }
        }
        if let Some(e) = exec {
            self.index(e);
        }
        Ok(())
    }

    /// This node's execution of a job.
    pub fn execution(&self, id: JobId) -> Result<Option<Execution>> {
        if let Some((_, e)) = lock(&self.s.pending).executions.get(&key(id)) {
            return Ok(Some(e.clone()));
        }
        self.get(EXECUTIONS, key(id))
    }

    /// Every execution of this node, in job order.
    pub fn executions(&self) -> Result<Vec<Execution>> {
        let pending: Vec<Execution> = lock(&self.s.pending)
            .executions
            .values()
            .map(|(_, e)| e.clone())
            .collect();
        let mut all: BTreeMap<JobId, Execution> = self
            .all::<Execution>(EXECUTIONS)?
            .into_iter()
            .map(|e| (e.job_id, e))
            .collect();
        all.extend(pending.into_iter().map(|e| (e.job_id, e)));
        Ok(all.into_values().collect())
    }

    /// Persists an execution (before the step it records is acted on). Only a commitment's
    /// secret (the `committed` step: result hash and salt, needed to reveal) is made durable
    /// before this returns (with every write before it); every other step is lazily durable,
    /// as a node that loses it in a crash takes the job up from the step before, which the
    /// chain's state completes.
    pub fn put_execution(&self, e: &Execution) -> Result<()> {
        let k = key(e.job_id);
        let (seq, before) = {
            let mut p = lock(&self.s.pending);
            let seq = p.next();
            (seq, p.executions.insert(k, (seq, e.clone())))
        };
        self.index(e);
        if !matches!(e.step, Step::Committed { .. }) {
            return Ok(());
        }
        let Err(err) = self.s.flush(true) else {
            return Ok(());
        };
        // Not on disk: the step must not be acted on, so reads go back to the one before.
        {
            let mut p = lock(&self.s.pending);
            if p.executions.get(&k).is_some_and(|(s, _)| *s == seq) {
                match before {
                    Some(b) => p.executions.insert(k, b),
                    None => p.executions.remove(&k),
                };
            }
        }
        match self.execution(e.job_id) {
            Ok(Some(prev)) => self.index(&prev),
            _ => {
                lock(&self.s.open).remove(&e.job_id);
            }
        }
        Err(err)
    }

    /// The CID of this node's results of shard `shard` of sharded job `job`, once run.
    pub fn shard_result(&self, job: JobId, shard: u32) -> Result<Option<String>> {
        let txn = self.s.file.begin_read()?;
        let t = txn
            .open_table(SHARD_RESULTS)
            .map_err(|e| self.s.file.err(e))?;
        Ok(t.get((key(job), shard))
            .map_err(|e| self.s.file.err(e))?
            .map(|v| v.value().to_owned()))
    }

    /// Records a shard's results (after they are in the blockstore).
    pub fn put_shard_result(&self, job: JobId, shard: u32, cid: &str) -> Result<()> {
        let txn = self.s.file.begin_write()?;
        {
            let mut t = txn
                .open_table(SHARD_RESULTS)
                .map_err(|e| self.s.file.err(e))?;
            t.insert((key(job), shard), cid)
                .map_err(|e| self.s.file.err(e))?;
        }
        self.s.file.commit(txn)
    }

    /// This node's work on batch `batch` of sharded job `job`.
    pub fn shard_batch(&self, job: JobId, batch: u32) -> Result<Option<BatchWork>> {
        let txn = self.s.file.begin_read()?;
        let t = txn
            .open_table(SHARD_BATCHES)
            .map_err(|e| self.s.file.err(e))?;
        t.get((key(job), batch))
            .map_err(|e| self.s.file.err(e))?
            .map(|v| {
                serde_json::from_slice(v.value())
                    .map_err(|e| self.s.file.err(format!("a batch record: {e}")))
            })
            .transpose()
    }

    /// Records this node's work on a batch (before its commitment is sent).
    pub fn put_shard_batch(&self, job: JobId, batch: u32, w: &BatchWork) -> Result<()> {
        let bytes = self.s.encode(w)?;
        let txn = self.s.file.begin_write()?;
        {
            let mut t = txn
                .open_table(SHARD_BATCHES)
                .map_err(|e| self.s.file.err(e))?;
            t.insert((key(job), batch), bytes.as_slice())
                .map_err(|e| self.s.file.err(e))?;
        }
        self.s.file.commit(txn)
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
    use shoal_chain::B256;

    /// Records a decision to bid on `id`, with its `bidding` execution.
    fn bid(store: &StateStore, id: JobId) -> Result<()> {
        let decision = BidDecision {
            bid: true,
            reason: "test".into(),
            price: None,
            at: 0,
        };
        let exec = Execution::new(id, Role::Worker, Step::Bidding);
        store.put_decision(id, &decision, Some(&exec))
    }

    /// The open-execution count follows every write path and survives a reopen.
    #[test]
    fn open_executions_follow_writes_and_reopen() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::io("creating", Path::new("tmp"), e))?;
        let path = dir.path().join("state.redb");
        let store = StateStore::open(&path)?;
        let (a, b) = (JobId::from(1u64), JobId::from(2u64));
        store.put_execution(&Execution::new(a, Role::Worker, Step::Running))?;
        bid(&store, b)?;
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

    /// Decisions and steps are read back at once, reach the file within a few writer
    /// periods, and a `committed` step is on disk (with what was written before it) when its
    /// write returns.
    #[test]
    fn lazy_writes_are_read_back_then_committed_and_committed_steps_at_once() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::io("creating", Path::new("tmp"), e))?;
        let store = StateStore::open(&dir.path().join("state.redb"))?;
        let on_disk = |id: JobId| store.get::<Execution>(EXECUTIONS, key(id));
        let (a, b, c) = (JobId::from(1u64), JobId::from(2u64), JobId::from(3u64));
        bid(&store, a)?;
        store.put_execution(&Execution::new(b, Role::Worker, Step::Running))?;
        assert_eq!(store.decision(a)?.map(|d| d.reason), Some("test".into()));
        assert_eq!(store.execution(b)?.map(|e| e.step), Some(Step::Running));
        assert_eq!(store.executions()?.len(), 2);
        let deadline = Instant::now() + FLUSH_EVERY * 50;
        while on_disk(b)?.is_none() {
            assert!(
                Instant::now() < deadline,
                "the writer thread never committed"
            );
            std::thread::sleep(FLUSH_EVERY / 4);
        }
        assert!(on_disk(a)?.is_some(), "written in the same commit");

        // A lazy step, then a committed one: both on disk when the second write returns.
        store.put_execution(&Execution::new(a, Role::Worker, Step::Running))?;
        let committed = Step::Committed {
            result_hash: B256::repeat_byte(1),
            result_cid: "bafy".into(),
            salt: B256::repeat_byte(2),
            commit_confirmed: false,
        };
        store.put_execution(&Execution::new(c, Role::Worker, committed.clone()))?;
        assert_eq!(on_disk(c)?.map(|e| e.step), Some(committed));
        assert_eq!(on_disk(a)?.map(|e| e.step), Some(Step::Running));
        Ok(())
    }
}
