//! A persistent blockstore: one file per block, written atomically, every
//! read checked against its CID; recursive pins and mark-and-sweep GC.

use std::{
    collections::HashSet,
    fs,
    io::{self, Write},
    path::{Path, PathBuf},
    sync::{
        RwLock,
        atomic::{AtomicU64, Ordering},
    },
};

use cid::Cid;
use sha2::{Digest, Sha256};

use crate::{
    BlockSink, Error, Imported, Importer, Profile, Result,
    error::IoContext,
    pb::PbNode,
    unixfs::{DAG_PB, RAW, SHA2_256},
};

/// Multihash code of the identity "hash" (the digest is the data).
const IDENTITY: u64 = 0x00;

/// What a garbage collection removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GcStats {
    /// Blocks kept because a pin reaches them.
    pub kept: u64,
    /// Blocks deleted.
    pub removed: u64,
    /// Bytes freed.
    pub bytes_freed: u64,
}

/// The on-disk block store of a node.
#[derive(Debug)]
pub struct Blockstore {
    root: PathBuf,
    /// Imports hold it shared, GC exclusively, so GC never sweeps a DAG
    /// that is being added and not yet pinned.
    gc_lock: RwLock<()>,
    tmp_seq: AtomicU64,
}

/// The storage key of a CID: CIDv1 in base32, so that the CIDv0 and CIDv1
/// forms of one dag-pb block share a file.
fn key(cid: &Cid) -> String {
    Cid::new_v1(cid.codec(), *cid.hash()).to_string()
}

/// Checks that `data` hashes to `cid`.
pub fn verify(cid: &Cid, data: &[u8]) -> Result<()> {
    let mh = cid.hash();
    let ok = match mh.code() {
        SHA2_256 => Sha256::digest(data)[..] == *mh.digest(),
        IDENTITY => mh.digest() == data,
        other => {
            return Err(Error::Unsupported {
                cid: Box::new(*cid),
                what: format!("multihash 0x{other:x}"),
            });
        }
    };
    if ok {
        Ok(())
    } else {
        Err(Error::Corrupt {
            cid: Box::new(*cid),
        })
    }
}

/// The CIDs a block links to (dag-pb links; raw blocks have none).
pub fn links_of(cid: &Cid, data: &[u8]) -> Result<Vec<Cid>> {
    match cid.codec() {
        DAG_PB => Ok(PbNode::decode(data)
            .map_err(|reason| Error::Malformed {
                cid: Box::new(*cid),
                what: "dag-pb",
                reason,
            })?
            .links
            .into_iter()
            .map(|l| l.cid)
            .collect()),
        RAW => Ok(Vec::new()),
        other => Err(Error::Unsupported {
            cid: Box::new(*cid),
            what: format!("codec 0x{other:x}"),
        }),
    }
}

impl Blockstore {
    /// Opens (creating if needed) a store rooted at `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        for sub in ["blocks", "pins", "tmp"] {
            let p = root.join(sub);
            fs::create_dir_all(&p).at(&p)?;
        }
        Ok(Self {
            root,
            gc_lock: RwLock::new(()),
            tmp_seq: AtomicU64::new(0),
        })
    }

    /// The folder this store lives in.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn block_path(&self, cid: &Cid) -> PathBuf {
        let k = key(cid);
        let shard = &k[k.len().saturating_sub(3)..k.len().saturating_sub(1)];
        self.root.join("blocks").join(shard).join(k)
    }

    fn write_atomic(&self, dest: &Path, data: &[u8]) -> Result<()> {
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent).at(parent)?;
        }
        let seq = self.tmp_seq.fetch_add(1, Ordering::Relaxed);
        let tmp = self
            .root
            .join("tmp")
            .join(format!("{}-{seq}", std::process::id()));
        let mut f = fs::File::create(&tmp).at(&tmp)?;
        f.write_all(data).at(&tmp)?;
        drop(f);
        fs::rename(&tmp, dest).at(dest)
    }

    /// Stores a block after checking that `data` hashes to `cid`.
    pub fn put(&self, cid: &Cid, data: &[u8]) -> Result<()> {
        verify(cid, data)?;
        self.put_trusted(cid, data)
    }

    /// Stores a block whose CID the caller has just computed from `data`.
    pub(crate) fn put_trusted(&self, cid: &Cid, data: &[u8]) -> Result<()> {
        let path = self.block_path(cid);
        if path.exists() {
            return Ok(());
        }
        self.write_atomic(&path, data)
    }

    /// Whether the block is present (not checked).
    pub fn has(&self, cid: &Cid) -> bool {
        self.block_path(cid).exists()
    }

    /// Reads a block and checks it against its CID; a corrupt block is an
    /// error and is never returned.
    pub fn get(&self, cid: &Cid) -> Result<Vec<u8>> {
        let path = self.block_path(cid);
        let data = match fs::read(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Error::NotFound {
                    cid: Box::new(*cid),
                });
            }
            Err(e) => return Err(Error::Io { path, source: e }),
        };
        verify(cid, &data)?;
        Ok(data)
    }

    /// Removes a block (pinned or not).
    pub fn delete(&self, cid: &Cid) -> Result<()> {
        let path = self.block_path(cid);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::Io { path, source: e }),
        }
    }

    /// Every block in the store.
    pub fn list(&self) -> Result<Vec<Cid>> {
        let mut out = Vec::new();
        let blocks = self.root.join("blocks");
        for shard in fs::read_dir(&blocks).at(&blocks)? {
            let shard = shard.at(&blocks)?.path();
            for f in fs::read_dir(&shard).at(&shard)? {
                let f = f.at(&shard)?;
                if let Some(c) = f.file_name().to_str().and_then(|s| s.parse::<Cid>().ok()) {
                    out.push(c);
                }
            }
        }
        Ok(out)
    }

    /// Pins a DAG recursively: GC keeps its root and everything under it.
    pub fn pin(&self, root: &Cid) -> Result<()> {
        let path = self.root.join("pins").join(key(root));
        self.write_atomic(&path, root.to_string().as_bytes())
    }

    /// Removes a pin (the blocks stay until the next GC).
    pub fn unpin(&self, root: &Cid) -> Result<()> {
        let path = self.root.join("pins").join(key(root));
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::Io { path, source: e }),
        }
    }

    /// Whether `root` is pinned.
    pub fn is_pinned(&self, root: &Cid) -> bool {
        self.root.join("pins").join(key(root)).exists()
    }

    /// All pinned roots.
    pub fn pins(&self) -> Result<Vec<Cid>> {
        let dir = self.root.join("pins");
        let mut out = Vec::new();
        for f in fs::read_dir(&dir).at(&dir)? {
            let p = f.at(&dir)?.path();
            let s = fs::read_to_string(&p).at(&p)?;
            if let Ok(c) = s.trim().parse::<Cid>() {
                out.push(c);
            }
        }
        Ok(out)
    }

    /// Every CID of the DAG under `root`, parents before children, each
    /// once. Fails on a missing or corrupt block.
    pub fn dag(&self, root: &Cid) -> Result<Vec<Cid>> {
        let mut seen = HashSet::new();
        let mut order = Vec::new();
        let mut stack = vec![*root];
        while let Some(c) = stack.pop() {
            if !seen.insert(key(&c)) {
                continue;
            }
            let data = self.get(&c)?;
            let links = links_of(&c, &data)?;
            order.push(c);
            stack.extend(links.into_iter().rev());
        }
        Ok(order)
    }

    /// Deletes every block no pin reaches. Missing blocks under a pin are
    /// tolerated (the pin keeps what is there).
    pub fn gc(&self) -> Result<GcStats> {
        let _guard = self.gc_lock.write().unwrap_or_else(|e| e.into_inner());
        let mut live = HashSet::new();
        let mut stack = self.pins()?;
        while let Some(c) = stack.pop() {
            if !live.insert(key(&c)) {
                continue;
            }
            match self.get(&c) {
                Ok(data) => stack.extend(links_of(&c, &data).unwrap_or_default()),
                Err(Error::NotFound { .. } | Error::Corrupt { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        let mut stats = GcStats::default();
        for c in self.list()? {
            if live.contains(&key(&c)) {
                stats.kept += 1;
                continue;
            }
            let path = self.block_path(&c);
            stats.bytes_freed += fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            self.delete(&c)?;
            stats.removed += 1;
        }
        Ok(stats)
    }

    /// Imports a file or folder into the store and pins it. Blocks are
    /// written by a second thread while the next chunk is hashed.
    pub fn add_path(&self, path: &Path, profile: Profile) -> Result<Imported> {
        let _guard = self.gc_lock.read().unwrap_or_else(|e| e.into_inner());
        let imported = self.with_writer(|sink| Importer::new(profile, sink).import_path(path))?;
        self.pin(&imported.cid)?;
        Ok(imported)
    }

    /// Imports a byte stream as one file into the store and pins it.
    pub fn add_reader(&self, reader: impl io::Read, profile: Profile) -> Result<Imported> {
        let _guard = self.gc_lock.read().unwrap_or_else(|e| e.into_inner());
        let imported =
            self.with_writer(|sink| Importer::new(profile, sink).import_reader(reader))?;
        self.pin(&imported.cid)?;
        Ok(imported)
    }

    /// Runs `f` with a sink whose blocks a writer thread stores (a bounded
    /// queue of 16 blocks); the first write error wins.
    fn with_writer<T>(&self, f: impl FnOnce(&mut dyn BlockSink) -> Result<T>) -> Result<T> {
        std::thread::scope(|scope| {
            let (tx, rx) = std::sync::mpsc::sync_channel::<(Cid, Vec<u8>)>(16);
            let writer = scope.spawn(move || {
                for (cid, data) in rx {
                    self.put_trusted(&cid, &data)?;
                }
                Ok::<_, Error>(())
            });
            let mut sink = QueuedSink { tx };
            let result = f(&mut sink);
            drop(sink);
            let written = writer.join().unwrap_or_else(|_| {
                Err(Error::Input {
                    what: "import".into(),
                    reason: "block writer thread panicked".into(),
                })
            });
            // A write error explains a closed queue, so it comes first.
            written?;
            result
        })
    }
}

struct QueuedSink {
    tx: std::sync::mpsc::SyncSender<(Cid, Vec<u8>)>,
}

impl BlockSink for QueuedSink {
    fn put_block(&mut self, cid: &Cid, data: &[u8]) -> Result<()> {
        self.tx
            .send((*cid, data.to_vec()))
            .map_err(|_| Error::Input {
                what: "import".into(),
                reason: "block writer stopped".into(),
            })
    }
}

/// A [`BlockSink`] writing into a [`Blockstore`].
pub struct StoreSink<'a>(pub &'a Blockstore);

impl BlockSink for StoreSink<'_> {
    fn put_block(&mut self, cid: &Cid, data: &[u8]) -> Result<()> {
        self.0.put_trusted(cid, data)
    }
}
