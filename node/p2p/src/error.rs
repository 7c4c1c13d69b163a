use cid::Cid;

/// What can go wrong in the peer-to-peer layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot listen on {addr}: {reason}")]
    Listen { addr: String, reason: String },
    #[error("cannot dial {addr}: {reason}; check the address and that the peer is running")]
    Dial { addr: String, reason: String },
    #[error("transport setup failed: {0}")]
    Transport(String),
    #[error("the p2p event loop has stopped; restart the node")]
    Stopped,
    #[error(
        "timed out after {secs} s waiting for block {cid} from peers: check that a peer holding it is connected"
    )]
    Timeout { cid: Box<Cid>, secs: u64 },
    #[error("Bitswap could not get {cid}: {reason}")]
    Bitswap { cid: Box<Cid>, reason: String },
    #[error("Kademlia: {0}")]
    Kad(String),
    #[error(transparent)]
    Store(#[from] shoal_store::Error),
}

/// The p2p layer's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
