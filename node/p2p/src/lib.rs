#![doc = include_str!("../README.md")]

mod blocks;
mod error;
mod jobs;
mod keys;
mod node;
mod status;

pub use blocks::StoreAdapter;
pub use error::{Error, Result};
pub use jobs::{JobAnnouncement, MAX_ANNOUNCEMENT_BYTES, NetworkId};
pub use keys::{format_swarm_key, load_or_create_keypair, load_psk, parse_psk};
pub use libp2p::{Multiaddr, PeerId, identity::Keypair};
pub use node::{Config, Fetched, MAX_PIN_MESSAGE_BYTES, P2p, PeerInfo, start};
pub use status::{
    ExecutionStatus, JobLogs, MAX_LOG_BYTES, STATUS_PROTOCOL, StatusRequest, StatusResponse,
    StatusSource,
};
