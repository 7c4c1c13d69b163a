//! Replicated pinning (docs/pinning.md): a pinset shared by every node over gossip, kept as a
//! CRDT ([`state`]) in `pins.redb` ([`db`]); each CID allocated by weighted rendezvous hashing
//! ([`alloc`]) to between `rmin` and `rmax` nodes, re-allocated by the one responsible peer
//! when a node dies or leaves ([`service`]).

mod alloc;
mod config;
mod db;
mod results;
mod service;
mod state;
mod wire;

pub use config::PinningConfig;
pub(crate) use results::pin_results;
pub(crate) use service::Pinning;
