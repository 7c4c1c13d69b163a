use std::path::PathBuf;

/// Everything that can go wrong in the client, each with what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{what} {}: {source}", path.display())]
    Io {
        /// What the file is for ("keystore", "config file", …).
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// No keystore with this name or path.
    #[error("no keystore `{name}` in {} (list them with `shoal wallet list`, create one with `shoal wallet new`)", dir.display())]
    KeystoreNotFound {
        /// The name asked for.
        name: String,
        /// The folder searched.
        dir: PathBuf,
    },
    /// A keystore with this name already exists.
    #[error("keystore {} already exists; pick another name", path.display())]
    KeystoreExists {
        /// The existing file.
        path: PathBuf,
    },
    /// The keystore could not be decrypted.
    #[error("cannot decrypt keystore {}: {reason} (wrong password? it comes from the prompt, SHOAL_PASSWORD or --password-file)", path.display())]
    Decrypt {
        /// The keystore file.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
    /// A private key is malformed.
    #[error("not a private key: {0} (expected 32 bytes as 64 hex digits, with or without 0x)")]
    BadKey(String),
    /// No key was configured for a command that signs.
    #[error(
        "this command signs a transaction but no key is set: pass --account NAME (a keystore from `shoal wallet list`), --keystore FILE, or set SHOAL_PRIVATE_KEY"
    )]
    NoKey,
    /// The configuration is invalid.
    #[error("config {}: {reason}", path.display())]
    Config {
        /// The config file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The job spec is invalid.
    #[error(transparent)]
    Spec(#[from] shoal_types::Error),
    /// A sharded job cannot be prepared (docs/sharding.md).
    #[error("sharded job: {0}")]
    Shards(String),
    /// A pipeline is malformed or a stage did not verify (docs/pipelines.md).
    #[error("pipeline: {0}")]
    Pipeline(String),
    /// A command-line style argument is malformed.
    #[error("{flag} `{value}`: {reason}")]
    BadArg {
        /// The flag (`--input`, `--env`, …).
        flag: &'static str,
        /// The value given.
        value: String,
        /// What is wrong and what is expected.
        reason: String,
    },
    /// The requester node cannot be reached.
    #[error(
        "cannot reach the Shoal node at {url}: {reason} (is it running? start one with `shoal devstack` or `shoal serve`, or pass --node URL)"
    )]
    NodeUnreachable {
        /// The node URL.
        url: String,
        /// The transport error.
        reason: String,
    },
    /// The node answered with an error.
    #[error("node: {message}{}", hint.as_ref().map(|h| format!(" ({h})")).unwrap_or_default())]
    Api {
        /// HTTP status.
        status: u16,
        /// The node's error message.
        message: String,
        /// The node's hint, if any.
        hint: Option<String>,
    },
    /// The chain cannot be reached or a call failed.
    #[error("chain: {0}")]
    Chain(String),
    /// A transaction reverted; `reason` is the decoded contract error.
    #[error("transaction {action} reverted: {reason}{}", hint.as_ref().map(|h| format!(" — {h}")).unwrap_or_default())]
    Reverted {
        /// What was attempted.
        action: String,
        /// The decoded custom error.
        reason: String,
        /// What to do.
        hint: Option<String>,
    },
    /// The account cannot pay.
    #[error(
        "account {address} has {balance} wei but {action} needs {needed} wei plus gas; fund it (on a devstack: `shoal wallet fund`, or send from a dev account)"
    )]
    NoFunds {
        /// The account.
        address: alloy::primitives::Address,
        /// Its balance.
        balance: alloy::primitives::U256,
        /// What it tried.
        action: String,
        /// Value needed.
        needed: alloy::primitives::U256,
    },
    /// A job does not exist.
    #[error("job {0} does not exist on this market (list jobs with `shoal job list`)")]
    UnknownJob(shoal_chain::JobId),
    /// A job ended without a verified result.
    #[error("job {job} ended {state}: {reason}")]
    JobEnded {
        /// The job.
        job: shoal_chain::JobId,
        /// Its final state.
        state: String,
        /// Why, with what to do.
        reason: String,
    },
    /// Waiting took too long.
    #[error(
        "job {job} is still {state} after {secs}s; keep waiting with `shoal job describe {job}` or `shoal deal show {job}`"
    )]
    WaitTimeout {
        /// The job.
        job: shoal_chain::JobId,
        /// Its state when giving up.
        state: String,
        /// Seconds waited.
        secs: u64,
    },
    /// Downloaded results do not hash to the verified result.
    #[error(
        "results of job {job} hash to {got} but the chain verified {expected}: the node served something else; do not trust these files"
    )]
    ResultMismatch {
        /// The job.
        job: shoal_chain::JobId,
        /// The verified CID.
        expected: String,
        /// The CID of what was downloaded.
        got: String,
    },
    /// The node stored uploaded content under another CID than this machine computed.
    #[error(
        "the node stored the upload as {got} but it hashes to {expected} here (profile unixfs-v1-2025); is the node the same Shoal version?"
    )]
    UploadMismatch {
        /// The CID computed locally.
        expected: String,
        /// The CID the node answered.
        got: String,
    },
    /// Content-store failure.
    #[error(transparent)]
    Store(#[from] shoal_store::Error),
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(what: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            what,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn bad_arg(
        flag: &'static str,
        value: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Self::BadArg {
            flag,
            value: value.into(),
            reason: reason.into(),
        }
    }
}
