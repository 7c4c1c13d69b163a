//! The node's error type.

use std::path::PathBuf;

/// Everything that can go wrong in the node.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The node configuration is invalid.
    #[error("invalid node configuration: {0}")]
    Config(String),
    /// The embedded state database failed.
    #[error(
        "state store {path}: {reason}; check the data dir is writable and not used by another node"
    )]
    Db { path: PathBuf, reason: String },
    /// A chain call or transaction failed.
    #[error("chain: {0}")]
    Chain(String),
    /// A contract call reverted with the named custom error.
    #[error("{what}: {reason}")]
    Reverted {
        what: &'static str,
        /// The custom error's name, e.g. `JobMarket__AlreadyBid`.
        name: String,
        reason: String,
    },
    /// The content store failed.
    #[error(transparent)]
    Store(#[from] shoal_store::Error),
    /// An executor failed.
    #[error(transparent)]
    Executor(#[from] shoal_executor::Error),
    /// A job spec is invalid.
    #[error(transparent)]
    Spec(#[from] shoal_types::Error),
    /// Content could not be found or was wrong.
    #[error("content {cid}: {reason}")]
    Content { cid: String, reason: String },
    /// An input of a job could not be fetched.
    #[error("input {source_uri}: {reason}")]
    Input { source_uri: String, reason: String },
    /// A file system operation failed.
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The HTTP server could not start.
    #[error("HTTP API: {0}")]
    Http(String),
    /// The libp2p swarm could not start or failed.
    #[error("p2p: {0}")]
    P2p(String),
    /// The devstack could not start.
    #[error("devstack: {0}")]
    Devstack(String),
}

/// The node's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Self::Io {
            action,
            path: path.into(),
            source,
        }
    }

    /// Whether this is a revert whose custom error name ends with `suffix` (e.g. `AlreadyBid`).
    pub fn reverted_with(&self, suffix: &str) -> bool {
        matches!(self, Self::Reverted { name, .. } if name.ends_with(suffix))
    }

    pub(crate) fn chain(e: impl std::fmt::Display) -> Self {
        Self::Chain(e.to_string())
    }
}
