use std::{fmt, str::FromStr};

use crate::Error;

/// A named set of UnixFS import parameters (IPIP-499 CID profiles). The same
/// bytes imported with the same profile give the same CID in Shoal, helia and
/// kubo.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Profile {
    /// `unixfs-v1-2025`: CIDv1, raw leaves, 1 MiB chunks, 1024 links per
    /// node, HAMT past a 256 KiB estimated block size. Shoal's result hashes
    /// use it.
    #[default]
    UnixfsV1_2025,
    /// `unixfs-v0-2015`: CIDv0, dag-pb leaves, 256 KiB chunks, 174 links per
    /// node, HAMT past 256 KiB of link names and CIDs (kubo's classic import).
    UnixfsV0_2015,
}

/// How a directory's size is estimated to decide when it becomes a HAMT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ShardEstimate {
    /// Sum of name and CID lengths (`links-bytes`).
    LinksBytes,
    /// The exact dag-pb block size (`block-bytes`).
    BlockBytes,
}

impl Profile {
    /// All profiles, default first.
    pub const ALL: [Profile; 2] = [Profile::UnixfsV1_2025, Profile::UnixfsV0_2015];

    /// The profile's IPIP-499 name.
    pub fn name(self) -> &'static str {
        match self {
            Profile::UnixfsV1_2025 => "unixfs-v1-2025",
            Profile::UnixfsV0_2015 => "unixfs-v0-2015",
        }
    }
    /// Bytes per leaf.
    pub fn chunk_size(self) -> usize {
        match self {
            Profile::UnixfsV1_2025 => 1 << 20,
            Profile::UnixfsV0_2015 => 256 << 10,
        }
    }
    /// Children per interior node of a file's balanced tree.
    pub fn max_links(self) -> usize {
        match self {
            Profile::UnixfsV1_2025 => 1024,
            Profile::UnixfsV0_2015 => 174,
        }
    }
    /// Whether leaves are raw blocks (codec 0x55) rather than dag-pb nodes.
    pub fn raw_leaves(self) -> bool {
        matches!(self, Profile::UnixfsV1_2025)
    }
    /// CID version of dag-pb nodes.
    pub fn cid_version(self) -> u64 {
        match self {
            Profile::UnixfsV1_2025 => 1,
            Profile::UnixfsV0_2015 => 0,
        }
    }
    /// A flat directory whose estimated size exceeds this becomes a HAMT.
    pub fn shard_threshold(self) -> usize {
        256 << 10
    }
    pub(crate) fn shard_estimate(self) -> ShardEstimate {
        match self {
            Profile::UnixfsV1_2025 => ShardEstimate::BlockBytes,
            Profile::UnixfsV0_2015 => ShardEstimate::LinksBytes,
        }
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Profile {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Profile::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| Error::UnknownProfile(s.to_owned()))
    }
}
