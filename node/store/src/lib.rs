#![doc = include_str!("../README.md")]

mod blockstore;
pub mod car;
mod error;
pub mod export;
mod murmur3;
pub mod paths;
pub mod pb;
mod profile;
pub mod providers;
pub mod publishers;
pub mod unixfs;

pub use blockstore::{Blockstore, GcStats, StoreSink, links_of, verify};
pub use cid::Cid;
pub use error::{Error, Result};
pub use profile::Profile;
pub use providers::{BlockFetcher, BoxedProvider, Providers, StorageProvider, fetch_dag};
pub use publishers::{Announcer, BoxedPublisher, Published, Publisher, Publishers};
pub use unixfs::{BlockSink, Imported, Importer, NullSink, hash_path, hash_reader};

/// Parses a CID string, with an error that names the input.
pub fn parse_cid(s: &str) -> Result<Cid> {
    s.trim().parse::<Cid>().map_err(|e| Error::BadCid {
        input: s.to_owned(),
        reason: e.to_string(),
    })
}
