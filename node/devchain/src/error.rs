//! Errors of the devchain library and the JSON-RPC errors it answers with.

use std::path::PathBuf;

use alloy::primitives::Bytes;
use serde::Serialize;

/// Errors from building, persisting or serving a devchain.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The data directory could not be created, read or written.
    #[error("devchain data directory {path}: {source}; check the path and its permissions")]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The block journal in the data directory does not describe this chain.
    #[error("devchain data directory {path}: {reason}")]
    Journal {
        /// The journal file.
        path: PathBuf,
        /// What did not match.
        reason: String,
    },
    /// The dev accounts could not be derived from the mnemonic.
    #[error("cannot derive dev account {index}: {reason}")]
    Accounts {
        /// Account index in the derivation path.
        index: u32,
        /// What went wrong.
        reason: String,
    },
    /// The JSON-RPC server could not bind its address.
    #[error("cannot listen on {addr}: {source}; is another node using that port?")]
    Bind {
        /// The address asked for.
        addr: std::net::SocketAddr,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A block or transaction could not be executed.
    #[error("{0}")]
    Rpc(#[from] RpcError),
}

/// Result with the devchain [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A JSON-RPC error object, as sent to clients.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("JSON-RPC error {code}: {message}")]
pub struct RpcError {
    /// The JSON-RPC error code.
    pub code: i64,
    /// A human-readable description.
    pub message: String,
    /// Extra data; revert bytes for reverted calls.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Bytes>,
}

impl RpcError {
    /// The request body is not valid JSON.
    pub const PARSE: i64 = -32700;
    /// The request is not a valid JSON-RPC request object.
    pub const INVALID_REQUEST: i64 = -32600;
    /// The method does not exist.
    pub const METHOD_NOT_FOUND: i64 = -32601;
    /// The parameters are missing or of the wrong shape.
    pub const INVALID_PARAMS: i64 = -32602;
    /// A transaction or state error, as geth and anvil report them.
    pub const SERVER: i64 = -32000;
    /// Execution reverted; `data` carries the revert bytes.
    pub const REVERTED: i64 = 3;

    pub(crate) fn new(code: i64, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            data: None,
        }
    }

    pub(crate) fn parse(message: impl Into<String>) -> Self {
        Self::new(Self::PARSE, message)
    }

    pub(crate) fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(Self::INVALID_REQUEST, message)
    }

    pub(crate) fn method_not_found(method: &str) -> Self {
        Self::new(
            Self::METHOD_NOT_FOUND,
            format!("the method {method} does not exist/is not available"),
        )
    }

    pub(crate) fn invalid_params(message: impl Into<String>) -> Self {
        Self::new(Self::INVALID_PARAMS, message)
    }

    pub(crate) fn server(message: impl Into<String>) -> Self {
        Self::new(Self::SERVER, message)
    }

    pub(crate) fn reverted(output: Bytes) -> Self {
        let message = match decode_revert_reason(&output) {
            Some(reason) => format!("execution reverted: {reason}"),
            None => "execution reverted".to_string(),
        };
        Self {
            code: Self::REVERTED,
            message,
            data: Some(output),
        }
    }
}

/// Decodes `Error(string)` revert data into its message, if that is what it is.
fn decode_revert_reason(output: &[u8]) -> Option<String> {
    use alloy::sol_types::{Revert, SolError};
    Revert::abi_decode(output).ok().map(|r| r.reason)
}
