use std::path::PathBuf;

use cid::Cid;

/// Everything that can go wrong in the content store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("unknown CID profile `{0}`: use `unixfs-v1-2025` (the default) or `unixfs-v0-2015`")]
    UnknownProfile(String),
    #[error("`{input}` is not a valid CID: {reason}")]
    BadCid { input: String, reason: String },
    #[error("block {cid} is not in the store: import or fetch it first")]
    NotFound { cid: Box<Cid> },
    #[error(
        "block {cid} is corrupt (its bytes do not hash to its CID): remove it and fetch it again"
    )]
    Corrupt { cid: Box<Cid> },
    #[error(
        "CID {cid} uses an unsupported hash or codec ({what}): Shoal stores sha2-256 dag-pb and raw blocks"
    )]
    Unsupported { cid: Box<Cid>, what: String },
    #[error("block {cid} is not valid {what}: {reason}")]
    Malformed {
        cid: Box<Cid>,
        what: &'static str,
        reason: String,
    },
    #[error("{path}: {reason}")]
    BadPath { path: PathBuf, reason: String },
    #[error("CAR file {path}: {reason}")]
    Car { path: PathBuf, reason: String },
    #[error("download of {url} failed: {reason}")]
    Download { url: String, reason: String },
    #[error(
        "download of {url} is larger than the {cap}-byte cap: raise the cap or use a smaller input"
    )]
    TooLarge { url: String, cap: u64 },
    #[error("checksum mismatch for {what}: expected {expected}, got {actual}")]
    Checksum {
        what: String,
        expected: String,
        actual: String,
    },
    #[error("input {what}: {reason}")]
    Input { what: String, reason: String },
    #[error("no storage provider for `{0}`: the node has none registered under that name")]
    NoProvider(String),
    #[error("no publisher named `{0}`: use `store`, `folder` or `car`")]
    NoPublisher(String),
    #[error(
        "timed out after {secs} s waiting for {cid} from peers: check that a peer holding it is connected"
    )]
    FetchTimeout { cid: Box<Cid>, secs: u64 },
    #[error("fetching {cid} from peers failed: {reason}")]
    Fetch { cid: Box<Cid>, reason: String },
}

/// The content store's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) trait IoContext<T> {
    fn at(self, path: &std::path::Path) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: &std::path::Path) -> Result<T> {
        self.map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })
    }
}
