//! What the node persists: one redb file in the data dir ([`StateStore`]) with the jobs as the
//! chain shows them, their event history, the follower's cursor, and this node's bid
//! decisions and executions (the model is `shoal-api`'s).

mod db;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use db::StateStore;

use crate::error::{Error, Result};

/// A redb database file: its writes waited for off the runtime's workers ([`blocking`]), its
/// errors naming it.
pub(crate) struct DbFile {
    pub(crate) db: redb::Database,
    pub(crate) path: PathBuf,
}

impl DbFile {
    /// Opens (or creates) the file; a handle of this process that is still closing (a node
    /// being restarted) is waited for up to a second.
    pub(crate) fn open(path: &Path) -> Result<Self> {
        let mut tries = 0;
        loop {
            match redb::Database::create(path) {
                Ok(db) => {
                    return Ok(Self {
                        db,
                        path: path.into(),
                    });
                }
                Err(redb::DatabaseError::DatabaseAlreadyOpen) if tries < 20 => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => {
                    return Err(Error::Db {
                        path: path.into(),
                        reason: e.to_string(),
                    });
                }
            }
        }
    }

    /// A read transaction.
    pub(crate) fn begin_read(&self) -> Result<redb::ReadTransaction> {
        redb::ReadableDatabase::begin_read(&self.db).map_err(|e| self.err(e))
    }

    /// A write transaction (waiting for the one before it to commit).
    pub(crate) fn begin_write(&self) -> Result<redb::WriteTransaction> {
        blocking(|| self.db.begin_write()).map_err(|e| self.err(e))
    }

    /// Commits `txn`; a durable commit's fsync is waited for off the runtime's worker.
    pub(crate) fn commit(&self, txn: redb::WriteTransaction) -> Result<()> {
        blocking(|| txn.commit()).map_err(|e| self.err(e))
    }

    pub(crate) fn err(&self, e: impl std::fmt::Display) -> Error {
        Error::Db {
            path: self.path.clone(),
            reason: e.to_string(),
        }
    }
}

/// Runs a call that may wait on the disk (a commit waiting for its fsync, a write transaction
/// waiting for the one before it to commit) without stalling the other tasks of a
/// multi-threaded runtime's worker: tokio hands them to another thread meanwhile. On a
/// current-thread runtime (tests) or outside a runtime it simply runs the call.
pub(crate) fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}
