//! The node's error type.

use std::path::PathBuf;

use shoal_chain::ContractError;
use shoal_chain::bindings::JobMarket::JobMarketErrors;

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
    /// A chain call or transaction failed (a revert carries the decoded custom error).
    #[error("{what}: {source}")]
    Chain {
        what: &'static str,
        #[source]
        source: Box<shoal_chain::Error>,
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
    /// A result hash or CID conversion failed.
    #[error(transparent)]
    Cid(#[from] shoal_api::Error),
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
    /// A pin request was wrong (a bad CID, replication or name).
    #[error("{0}")]
    PinRequest(String),
    /// Too few nodes to allocate a pin to.
    #[error(
        "a pin needs at least {needed} nodes to hold it and this node knows {eligible} live, \
         non-leaving ones (itself included); lower --replication-min or start more nodes \
         (peers are known once their heartbeats arrive, a few seconds after they join)"
    )]
    NotEnoughPeers { needed: u32, eligible: usize },
    /// The CID is not in the pinset.
    #[error("{0} is not in the pinset")]
    PinNotFound(String),
    /// Pinning failed or is off.
    #[error("pinning: {0}")]
    Pinning(String),
    /// A critical task of the node stopped while the node was running.
    #[error("the node's {task} task {how}; the node stopped (see the log above for the cause)")]
    TaskDied { task: &'static str, how: String },
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

    /// Wraps a chain error with what the node was doing.
    pub(crate) fn chain(what: &'static str) -> impl FnOnce(shoal_chain::Error) -> Self {
        move |source| Self::Chain {
            what,
            source: Box::new(source),
        }
    }

    /// The market's custom error this is a revert with, decoded from the revert data.
    pub fn market_revert(&self) -> Option<&JobMarketErrors> {
        match self {
            Self::Chain { source, .. } => match source.contract_error()? {
                ContractError::Market(e) => Some(e.as_ref()),
                _ => None,
            },
            _ => None,
        }
    }
}
