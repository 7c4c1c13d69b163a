#![doc = include_str!("../README.md")]

mod blocks;
mod error;
mod node;

pub use blocks::StoreAdapter;
pub use error::{Error, Result};
pub use libp2p::{Multiaddr, PeerId, identity::Keypair};
pub use node::{Config, P2p, start};
