//! What the node persists: one redb file in the data dir ([`StateStore`]) with the jobs as the
//! chain shows them, their event history, the follower's cursor, and this node's bid
//! decisions and executions (the model is `shoal-api`'s).

mod db;

pub use db::StateStore;

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
