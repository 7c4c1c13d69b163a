use cid::Cid;
use libp2p::PeerId;

/// What can go wrong in the peer-to-peer layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "cannot listen on {addr}: {reason}; the address must be local and its port free (port 0 picks one)"
    )]
    Listen { addr: String, reason: String },
    #[error("cannot dial {addr}: {reason}; check the address and that the peer is running")]
    Dial { addr: String, reason: String },
    #[error("transport setup failed: {0}")]
    Transport(String),
    #[error("invalid p2p configuration: {0}")]
    Config(String),
    #[error(
        "{addr} is a QUIC address but a private-network key (psk) is set: QUIC cannot carry the \
         pre-shared-key handshake; use a /tcp/ address or remove the psk"
    )]
    QuicWithPsk { addr: String },
    #[error(
        "invalid pre-shared key: {0}; expected a go-ipfs swarm.key \
         (\"/key/swarm/psk/1.0.0/\\n/base16/\\n<64 hex digits>\") or 64 hex digits"
    )]
    Psk(String),
    #[error("node key {path}: {reason}")]
    Key { path: String, reason: String },
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
    #[error("job announcements need a network: set Config.network (chain id and market address)")]
    NoNetwork,
    #[error("invalid job announcement: {0}")]
    Announcement(String),
    #[error("gossipsub: {0}")]
    Gossip(String),
    #[error("status request to {peer} failed: {reason}")]
    Status { peer: Box<PeerId>, reason: String },
    #[error(transparent)]
    Store(#[from] shoal_store::Error),
}

/// The p2p layer's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
