//! UnixFS import: files become balanced trees of fixed-size chunks,
//! folders become dag-pb directories (HAMT-sharded when large), exactly as
//! helia's importer lays them out for the same profile.

use std::{
    collections::BTreeMap,
    fs,
    io::{self, Read},
    path::Path,
};

use cid::{Cid, multihash::Multihash};
use sha2::{Digest, Sha256};

use crate::{
    Error, Profile, Result,
    error::IoContext,
    murmur3::murmur3_x64_128,
    pb::{PbLink, PbNode, Unixfs, UnixfsType, link_encoded_len},
    profile::ShardEstimate,
};

/// Multicodec of dag-pb blocks.
pub const DAG_PB: u64 = 0x70;
/// Multicodec of raw blocks.
pub const RAW: u64 = 0x55;
/// Multihash code of sha2-256.
pub const SHA2_256: u64 = 0x12;
/// Multihash code of murmur3-x64-64, the HAMT hash.
const MURMUR3_X64_64: u64 = 0x22;
const HAMT_FANOUT: usize = 256;

/// Where imported blocks go: the blockstore, or nowhere when only the CID
/// is wanted.
pub trait BlockSink {
    /// Takes one block whose CID has already been computed from `data`.
    fn put_block(&mut self, cid: &Cid, data: &[u8]) -> Result<()>;
}

/// Discards blocks (only-hash import).
#[derive(Debug, Default, Clone, Copy)]
pub struct NullSink;

impl BlockSink for NullSink {
    fn put_block(&mut self, _: &Cid, _: &[u8]) -> Result<()> {
        Ok(())
    }
}

/// The sha2-256 CID of `data` with the given version and codec.
pub fn cid_of(version: u64, codec: u64, data: &[u8]) -> Cid {
    let digest = Sha256::digest(data);
    let mh = Multihash::<64>::wrap(SHA2_256, &digest).unwrap_or_default();
    if version == 0 && codec == DAG_PB {
        // A sha2-256 multihash is always a valid CIDv0.
        if let Ok(c) = Cid::new_v0(mh) {
            return c;
        }
    }
    Cid::new_v1(codec, mh)
}

/// One imported DAG: its root, cumulative size (the `Tsize` a parent link
/// records) and the number of content bytes under it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Imported {
    pub cid: Cid,
    pub tsize: u64,
    pub file_size: u64,
}

/// Imports files and folders with one profile into one sink.
pub struct Importer<'a> {
    profile: Profile,
    sink: &'a mut dyn BlockSink,
    /// Chunk size and links per node; the profile's, except in layout tests.
    shape: (usize, usize),
}

impl<'a> Importer<'a> {
    pub fn new(profile: Profile, sink: &'a mut dyn BlockSink) -> Self {
        Self {
            profile,
            sink,
            shape: (profile.chunk_size(), profile.max_links()),
        }
    }

    #[cfg(test)]
    fn with_shape(mut self, chunk_size: usize, max_links: usize) -> Self {
        self.shape = (chunk_size, max_links);
        self
    }

    fn put_node(&mut self, node: &PbNode) -> Result<(Cid, u64)> {
        let bytes = node.encode();
        let cid = cid_of(self.profile.cid_version(), DAG_PB, &bytes);
        self.sink.put_block(&cid, &bytes)?;
        Ok((cid, bytes.len() as u64))
    }

    fn leaf(&mut self, chunk: &[u8]) -> Result<Imported> {
        if self.profile.raw_leaves() {
            let cid = cid_of(1, RAW, chunk);
            self.sink.put_block(&cid, chunk)?;
            let n = chunk.len() as u64;
            return Ok(Imported {
                cid,
                tsize: n,
                file_size: n,
            });
        }
        let mut fs = Unixfs::new(UnixfsType::File);
        fs.data = Some(chunk.to_vec());
        fs.filesize = Some(chunk.len() as u64);
        let (cid, len) = self.put_node(&PbNode {
            links: vec![],
            data: Some(fs.encode()),
        })?;
        Ok(Imported {
            cid,
            tsize: len,
            file_size: chunk.len() as u64,
        })
    }

    fn file_node(&mut self, children: &[Imported]) -> Result<Imported> {
        let mut fs = Unixfs::new(UnixfsType::File);
        let mut links = Vec::with_capacity(children.len());
        let mut total = 0u64;
        let mut tsizes = 0u64;
        for c in children.iter().filter(|c| c.file_size > 0) {
            fs.blocksizes.push(c.file_size);
            total += c.file_size;
            tsizes += c.tsize;
            links.push(PbLink {
                cid: c.cid,
                name: Some(Vec::new()),
                tsize: Some(c.tsize),
            });
        }
        fs.filesize = Some(total);
        let (cid, len) = self.put_node(&PbNode {
            links,
            data: Some(fs.encode()),
        })?;
        Ok(Imported {
            cid,
            tsize: len + tsizes,
            file_size: total,
        })
    }

    /// Imports a byte stream as one UnixFS file, reading one chunk at a time.
    pub fn import_reader(&mut self, mut reader: impl Read) -> Result<Imported> {
        self.import_reader_at(&mut reader, Path::new("<stream>"))
    }

    fn import_reader_at(&mut self, reader: &mut dyn Read, path: &Path) -> Result<Imported> {
        let (size, max) = self.shape;
        let mut buf = vec![0u8; size];
        let mut levels: Vec<Vec<Imported>> = vec![Vec::new()];
        let mut counts: Vec<u64> = vec![0];
        let mut first = true;
        loop {
            let n = read_full(reader, &mut buf).at(path)?;
            if n == 0 && !first {
                break;
            }
            first = false;
            let leaf = self.leaf(&buf[..n])?;
            self.push(&mut levels, &mut counts, 0, leaf, max)?;
            if n < size {
                break;
            }
        }
        if counts[0] == 1 {
            // A single chunk is the file itself.
            return levels[0].pop().ok_or_else(|| internal("missing leaf"));
        }
        let mut i = 0;
        loop {
            if i > 0 && counts[i] == 1 {
                return levels[i].pop().ok_or_else(|| internal("missing root"));
            }
            if !levels[i].is_empty() {
                let batch = std::mem::take(&mut levels[i]);
                let node = self.file_node(&batch)?;
                self.push(&mut levels, &mut counts, i + 1, node, max)?;
            }
            i += 1;
        }
    }

    fn push(
        &mut self,
        levels: &mut Vec<Vec<Imported>>,
        counts: &mut Vec<u64>,
        level: usize,
        item: Imported,
        max: usize,
    ) -> Result<()> {
        if levels.len() <= level {
            levels.push(Vec::new());
            counts.push(0);
        }
        levels[level].push(item);
        counts[level] += 1;
        if levels[level].len() == max {
            let batch = std::mem::take(&mut levels[level]);
            let node = self.file_node(&batch)?;
            self.push(levels, counts, level + 1, node, max)?;
        }
        Ok(())
    }

    /// Imports a file or a folder (recursively). Symlinks and special files
    /// are refused.
    pub fn import_path(&mut self, path: &Path) -> Result<Imported> {
        let meta = fs::symlink_metadata(path).at(path)?;
        if meta.is_file() {
            let mut f = fs::File::open(path).at(path)?;
            self.import_reader_at(&mut f, path)
        } else if meta.is_dir() {
            self.import_dir(path)
        } else {
            Err(Error::BadPath {
                path: path.to_path_buf(),
                reason:
                    "is a symlink or special file; only regular files and folders can be imported"
                        .into(),
            })
        }
    }

    fn import_dir(&mut self, path: &Path) -> Result<Imported> {
        let mut names = Vec::new();
        for entry in fs::read_dir(path).at(path)? {
            let entry = entry.at(path)?;
            let name = entry
                .file_name()
                .into_string()
                .map_err(|n| Error::BadPath {
                    path: path.join(n),
                    reason: "file name is not UTF-8; UnixFS names must be UTF-8".into(),
                })?;
            names.push(name);
        }
        names.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        let mut entries = Vec::with_capacity(names.len());
        for name in names {
            let child = path.join(&name);
            let meta = fs::symlink_metadata(&child).at(&child)?;
            // Only files and empty folders count toward the shard estimate:
            // the reference importer adds a non-empty folder's link only
            // after deciding its parent's layout.
            let counts = !meta.is_dir() || fs::read_dir(&child).at(&child)?.next().is_none();
            let imported = self.import_path(&child)?;
            entries.push(DirEntry {
                name: name.into_bytes(),
                imported,
                counts,
            });
        }
        let estimate = self.estimate(&entries);
        if estimate > self.profile.shard_threshold() {
            let mut root = Bucket::default();
            for e in entries {
                root.insert(e, 0);
            }
            self.flush_bucket(root)
        } else {
            self.flat_dir(entries)
        }
    }

    /// A folder linking DAGs that already exist (a merged result: one entry per shard's results
    /// folder): `entries` are (name, the child's root and cumulative size, whether it counts
    /// toward the HAMT size estimate — files and empty folders do, non-empty folders do not,
    /// exactly as when the folder is imported from disk). Only the folder's own blocks are
    /// written to the sink; the result equals importing the same tree from disk.
    pub fn directory(&mut self, entries: Vec<(String, Imported, bool)>) -> Result<Imported> {
        let mut entries: Vec<DirEntry> = entries
            .into_iter()
            .map(|(name, imported, counts)| DirEntry {
                name: name.into_bytes(),
                imported,
                counts,
            })
            .collect();
        entries.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        if entries.windows(2).any(|w| w[0].name == w[1].name) {
            return Err(internal(
                "a folder cannot hold two entries of the same name",
            ));
        }
        if self.estimate(&entries) > self.profile.shard_threshold() {
            let mut root = Bucket::default();
            for e in entries {
                root.insert(e, 0);
            }
            self.flush_bucket(root)
        } else {
            self.flat_dir(entries)
        }
    }

    fn estimate(&self, entries: &[DirEntry]) -> usize {
        let counted = entries.iter().filter(|e| e.counts);
        match self.profile.shard_estimate() {
            ShardEstimate::LinksBytes => counted
                .map(|e| e.name.len() + e.imported.cid.encoded_len())
                .sum(),
            ShardEstimate::BlockBytes => {
                // The UnixFS directory data field: tag, length, `08 01`.
                4 + counted
                    .map(|e| {
                        link_encoded_len(
                            e.name.len(),
                            e.imported.cid.encoded_len(),
                            e.imported.tsize,
                        )
                    })
                    .sum::<usize>()
            }
        }
    }

    fn flat_dir(&mut self, entries: Vec<DirEntry>) -> Result<Imported> {
        let mut tsizes = 0;
        let links = entries
            .into_iter()
            .map(|e| {
                tsizes += e.imported.tsize;
                PbLink {
                    cid: e.imported.cid,
                    name: Some(e.name),
                    tsize: Some(e.imported.tsize),
                }
            })
            .collect();
        let (cid, len) = self.put_node(&PbNode {
            links,
            data: Some(Unixfs::new(UnixfsType::Directory).encode()),
        })?;
        Ok(Imported {
            cid,
            tsize: len + tsizes,
            file_size: 0,
        })
    }

    fn flush_bucket(&mut self, bucket: Bucket) -> Result<Imported> {
        let mut links = Vec::with_capacity(bucket.slots.len());
        let mut bits = [0u8; HAMT_FANOUT / 8];
        let mut tsizes = 0;
        for (index, slot) in bucket.slots {
            bits[HAMT_FANOUT / 8 - 1 - usize::from(index / 8)] |= 1 << (index % 8);
            let mut label = format!("{index:02X}").into_bytes();
            let child = match slot {
                Slot::Leaf(e) => {
                    label.extend_from_slice(&e.name);
                    e.imported
                }
                Slot::Sub(b) => self.flush_bucket(b)?,
            };
            tsizes += child.tsize;
            links.push(PbLink {
                cid: child.cid,
                name: Some(label),
                tsize: Some(child.tsize),
            });
        }
        let first = bits.iter().position(|&b| b != 0).unwrap_or(bits.len() - 1);
        let mut fs = Unixfs::new(UnixfsType::HamtShard);
        fs.data = Some(bits[first..].to_vec());
        fs.hash_type = Some(MURMUR3_X64_64);
        fs.fanout = Some(HAMT_FANOUT as u64);
        let (cid, len) = self.put_node(&PbNode {
            links,
            data: Some(fs.encode()),
        })?;
        Ok(Imported {
            cid,
            tsize: len + tsizes,
            file_size: 0,
        })
    }
}

fn internal(what: &str) -> Error {
    Error::Input {
        what: "import".into(),
        reason: format!("internal layout error: {what}"),
    }
}

/// Reads until `buf` is full or the stream ends; returns the bytes read.
fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

struct DirEntry {
    name: Vec<u8>,
    imported: Imported,
    counts: bool,
}

enum Slot {
    Leaf(DirEntry),
    Sub(Bucket),
}

#[derive(Default)]
struct Bucket {
    slots: BTreeMap<u8, Slot>,
}

/// The HAMT index of `name` at `depth`: one byte of the murmur3 digest,
/// re-hashing with the round number appended once 64 bits are used up.
fn hamt_index(name: &[u8], depth: usize) -> u8 {
    let round = depth / 8;
    let digest = if round == 0 {
        murmur3_x64_128(name)
    } else {
        let mut v = name.to_vec();
        v.push(round as u8);
        murmur3_x64_128(&v)
    };
    digest[depth % 8]
}

impl Bucket {
    fn insert(&mut self, entry: DirEntry, depth: usize) {
        let index = hamt_index(&entry.name, depth);
        let slot = match self.slots.remove(&index) {
            None => Slot::Leaf(entry),
            Some(Slot::Sub(mut b)) => {
                b.insert(entry, depth + 1);
                Slot::Sub(b)
            }
            Some(Slot::Leaf(existing)) => {
                let mut b = Bucket::default();
                b.insert(existing, depth + 1);
                b.insert(entry, depth + 1);
                Slot::Sub(b)
            }
        };
        self.slots.insert(index, slot);
    }
}

/// The CID of a file or folder imported with `profile`, without storing
/// anything. Files are read one chunk at a time.
pub fn hash_path(path: &Path, profile: Profile) -> Result<Cid> {
    let mut sink = NullSink;
    Ok(Importer::new(profile, &mut sink).import_path(path)?.cid)
}

/// The CID of a byte stream imported as one file with `profile`.
pub fn hash_reader(reader: impl Read, profile: Profile) -> Result<Cid> {
    let mut sink = NullSink;
    Ok(Importer::new(profile, &mut sink).import_reader(reader)?.cid)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;

    #[derive(Default)]
    struct Blocks(HashMap<Cid, Vec<u8>>);

    impl BlockSink for Blocks {
        fn put_block(&mut self, cid: &Cid, data: &[u8]) -> Result<()> {
            prop_assert_eq_cid(cid, data);
            self.0.insert(*cid, data.to_vec());
            Ok(())
        }
    }

    fn prop_assert_eq_cid(cid: &Cid, data: &[u8]) {
        assert_eq!(cid_of(cid.version() as u64, cid.codec(), data), *cid);
    }

    /// Walks a file DAG: returns its bytes and the depth of every leaf, and
    /// checks each interior node's links and sizes.
    fn walk(
        blocks: &Blocks,
        cid: &Cid,
        depth: usize,
        max: usize,
        out: &mut Vec<u8>,
        depths: &mut Vec<usize>,
    ) -> u64 {
        let data = &blocks.0[cid];
        if cid.codec() == RAW {
            out.extend_from_slice(data);
            depths.push(depth);
            return data.len() as u64;
        }
        let node = PbNode::decode(data).unwrap();
        let fs = Unixfs::decode(node.data.as_deref().unwrap()).unwrap();
        assert_eq!(fs.kind, UnixfsType::File);
        if node.links.is_empty() {
            let d = fs.data.clone().unwrap_or_default();
            out.extend_from_slice(&d);
            depths.push(depth);
            return d.len() as u64;
        }
        assert!(
            node.links.len() <= max,
            "{} links > {max}",
            node.links.len()
        );
        assert_eq!(fs.blocksizes.len(), node.links.len());
        let mut total = 0;
        for (l, &bs) in node.links.iter().zip(&fs.blocksizes) {
            let n = walk(blocks, &l.cid, depth + 1, max, out, depths);
            assert_eq!(n, bs);
            total += n;
        }
        assert_eq!(fs.filesize, Some(total));
        total
    }

    proptest! {
        /// Chunker and balanced layout: the bytes come back in order, every
        /// chunk but the last is full, all leaves sit at the same depth, no
        /// node has more than the allowed links, and the tree is as shallow
        /// as the leaf count allows.
        #[test]
        fn chunker_and_balanced_layout(len in 0usize..6000, chunk in 1usize..64, max in 2usize..8, v0 in any::<bool>()) {
            let profile = if v0 { Profile::UnixfsV0_2015 } else { Profile::UnixfsV1_2025 };
            let bytes: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            let mut blocks = Blocks::default();
            let root = Importer::new(profile, &mut blocks).with_shape(chunk, max).import_reader(&bytes[..]).unwrap();
            let (mut out, mut depths) = (Vec::new(), Vec::new());
            let total = walk(&blocks, &root.cid, 0, max, &mut out, &mut depths);
            prop_assert_eq!(&out, &bytes);
            prop_assert_eq!(total, len as u64);
            prop_assert_eq!(root.file_size, len as u64);
            let leaves = len.div_ceil(chunk).max(1);
            prop_assert_eq!(depths.len(), leaves);
            prop_assert!(depths.iter().all(|&d| d == depths[0]));
            let mut want_depth = 0;
            let mut cap = 1;
            while cap < leaves {
                cap *= max;
                want_depth += 1;
            }
            prop_assert_eq!(depths[0], want_depth);
        }
    }
}
