//! UnixFS export: a DAG back to a file or a folder, and path resolution
//! inside a DAG.

use std::{
    fs,
    io::{BufWriter, Write},
    path::{Component, Path},
};

use cid::Cid;

use crate::{
    Blockstore, Error, Result,
    error::IoContext,
    pb::{PbNode, Unixfs, UnixfsType},
    unixfs::{DAG_PB, RAW},
};

/// HAMT labels start with two hex digits (fanout 256).
const HAMT_PREFIX: usize = 2;

/// What a CID points to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    File,
    Directory,
}

fn decode(store: &Blockstore, cid: &Cid) -> Result<Option<(PbNode, Unixfs)>> {
    match cid.codec() {
        RAW => Ok(None),
        DAG_PB => {
            let data = store.get(cid)?;
            let node = PbNode::decode(&data).map_err(|reason| Error::Malformed {
                cid: Box::new(*cid),
                what: "dag-pb",
                reason,
            })?;
            let fs =
                Unixfs::decode(node.data.as_deref().unwrap_or_default()).map_err(|reason| {
                    Error::Malformed {
                        cid: Box::new(*cid),
                        what: "UnixFS",
                        reason,
                    }
                })?;
            Ok(Some((node, fs)))
        }
        other => Err(Error::Unsupported {
            cid: Box::new(*cid),
            what: format!("codec 0x{other:x}"),
        }),
    }
}

/// A folder entry name from a DAG, refused when it could escape the folder.
fn safe_name(cid: &Cid, name: &[u8]) -> Result<String> {
    let s = std::str::from_utf8(name).map_err(|_| Error::Malformed {
        cid: Box::new(*cid),
        what: "UnixFS directory",
        reason: "entry name is not UTF-8".into(),
    })?;
    let bad = s.is_empty() || s == "." || s == ".." || s.contains('/') || s.contains('\0');
    if bad {
        return Err(Error::Malformed {
            cid: Box::new(*cid),
            what: "UnixFS directory",
            reason: format!("unsafe entry name {s:?}"),
        });
    }
    Ok(s.to_owned())
}

/// The entries of a directory (flat or HAMT), as (name, CID).
/// A stored DAG's root as a parent folder links it: its CID, cumulative size (the root block
/// plus its links' recorded sizes) and content size (files only).
pub fn imported_of(store: &Blockstore, cid: &Cid) -> Result<crate::Imported> {
    let data = store.get(cid)?;
    let len = data.len() as u64;
    match decode(store, cid)? {
        None => Ok(crate::Imported {
            cid: *cid,
            tsize: len,
            file_size: len,
        }),
        Some((node, fs)) => {
            let links: u64 = node.links.iter().map(|l| l.tsize.unwrap_or(0)).sum();
            let file_size = match fs.kind {
                UnixfsType::File | UnixfsType::Raw => fs.filesize.unwrap_or(0),
                _ => 0,
            };
            Ok(crate::Imported {
                cid: *cid,
                tsize: len + links,
                file_size,
            })
        }
    }
}

pub fn list_dir(store: &Blockstore, cid: &Cid) -> Result<Vec<(String, Cid)>> {
    let Some((node, fs)) = decode(store, cid)? else {
        return Err(Error::Malformed {
            cid: Box::new(*cid),
            what: "UnixFS directory",
            reason: "is a raw block".into(),
        });
    };
    let mut out = Vec::new();
    match fs.kind {
        UnixfsType::Directory => {
            for l in node.links {
                out.push((
                    safe_name(cid, l.name.as_deref().unwrap_or_default())?,
                    l.cid,
                ));
            }
        }
        UnixfsType::HamtShard => hamt_entries(store, cid, node, &mut out)?,
        _ => {
            return Err(Error::Malformed {
                cid: Box::new(*cid),
                what: "UnixFS directory",
                reason: "is not a directory".into(),
            });
        }
    }
    Ok(out)
}

fn hamt_entries(
    store: &Blockstore,
    cid: &Cid,
    node: PbNode,
    out: &mut Vec<(String, Cid)>,
) -> Result<()> {
    for l in node.links {
        let name = l.name.unwrap_or_default();
        if name.len() < HAMT_PREFIX {
            return Err(Error::Malformed {
                cid: Box::new(*cid),
                what: "HAMT shard",
                reason: "link label too short".into(),
            });
        }
        if name.len() == HAMT_PREFIX {
            match decode(store, &l.cid)? {
                Some((sub, fs)) if fs.kind == UnixfsType::HamtShard => {
                    hamt_entries(store, &l.cid, sub, out)?
                }
                _ => {
                    return Err(Error::Malformed {
                        cid: Box::new(l.cid),
                        what: "HAMT shard",
                        reason: "sub-shard is not a shard".into(),
                    });
                }
            }
        } else {
            out.push((safe_name(cid, &name[HAMT_PREFIX..])?, l.cid));
        }
    }
    Ok(())
}

/// Whether `cid` is a file or a directory.
pub fn kind(store: &Blockstore, cid: &Cid) -> Result<Kind> {
    Ok(match decode(store, cid)? {
        None => Kind::File,
        Some((_, fs)) => match fs.kind {
            UnixfsType::File | UnixfsType::Raw => Kind::File,
            UnixfsType::Directory | UnixfsType::HamtShard => Kind::Directory,
            other => {
                return Err(Error::Unsupported {
                    cid: Box::new(*cid),
                    what: format!("UnixFS {other:?} nodes"),
                });
            }
        },
    })
}

/// Follows a `/`-separated path below a directory CID.
pub fn resolve(store: &Blockstore, root: &Cid, path: &str) -> Result<Cid> {
    let mut cur = *root;
    for part in path.split('/').filter(|p| !p.is_empty()) {
        let entries = list_dir(store, &cur)?;
        cur = entries
            .into_iter()
            .find(|(n, _)| n == part)
            .map(|(_, c)| c)
            .ok_or_else(|| Error::Input {
                what: format!("{root}/{path}"),
                reason: format!("no entry named {part:?}"),
            })?;
    }
    Ok(cur)
}

/// Writes the bytes of a UnixFS file to `out`, block by block.
pub fn write_file(store: &Blockstore, cid: &Cid, out: &mut dyn Write) -> Result<u64> {
    let Some((node, fs)) = decode(store, cid)? else {
        let data = store.get(cid)?;
        out.write_all(&data).map_err(|source| Error::Io {
            path: "<output>".into(),
            source,
        })?;
        return Ok(data.len() as u64);
    };
    if !matches!(fs.kind, UnixfsType::File | UnixfsType::Raw) {
        return Err(Error::Malformed {
            cid: Box::new(*cid),
            what: "UnixFS file",
            reason: format!("is a {:?} node", fs.kind),
        });
    }
    let mut n = 0;
    if let Some(d) = &fs.data {
        out.write_all(d).map_err(|source| Error::Io {
            path: "<output>".into(),
            source,
        })?;
        n += d.len() as u64;
    }
    for l in node.links {
        n += write_file(store, &l.cid, out)?;
    }
    Ok(n)
}

/// Writes the DAG under `cid` to `dest` (a new file or folder).
pub fn export(store: &Blockstore, cid: &Cid, dest: &Path) -> Result<()> {
    if dest.components().any(|c| c == Component::ParentDir) {
        return Err(Error::BadPath {
            path: dest.to_path_buf(),
            reason: "output path must not contain `..`".into(),
        });
    }
    if fs::symlink_metadata(dest).is_ok() {
        return Err(Error::BadPath {
            path: dest.to_path_buf(),
            reason: "already exists; choose a new output path".into(),
        });
    }
    export_into(store, cid, dest)
}

fn export_into(store: &Blockstore, cid: &Cid, dest: &Path) -> Result<()> {
    match kind(store, cid)? {
        Kind::File => {
            let f = fs::File::create(dest).at(dest)?;
            let mut w = BufWriter::with_capacity(1 << 20, f);
            write_file(store, cid, &mut w)?;
            w.flush().at(dest)?;
            Ok(())
        }
        Kind::Directory => {
            fs::create_dir(dest).at(dest)?;
            for (name, child) in list_dir(store, cid)? {
                export_into(store, &child, &dest.join(name))?;
            }
            Ok(())
        }
    }
}

/// Every file under `root` (a UnixFS folder in `store`) as (path under `mount`, CID, size):
/// what a shard manifest is built from (docs/sharding.md).
pub fn tree_files(
    store: &Blockstore,
    root: &Cid,
    mount: &str,
) -> Result<Vec<(String, String, u64)>> {
    let mut out = Vec::new();
    let mut stack = vec![(mount.trim_end_matches('/').to_owned(), *root)];
    while let Some((path, cid)) = stack.pop() {
        match kind(store, &cid)? {
            Kind::File => {
                let size = imported_of(store, &cid)?.file_size;
                out.push((path, cid.to_string(), size));
            }
            Kind::Directory => {
                for (name, child) in list_dir(store, &cid)? {
                    stack.push((format!("{path}/{name}"), child));
                }
            }
        }
    }
    Ok(out)
}
