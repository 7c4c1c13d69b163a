//! dag-pb and UnixFS protobuf encoding, written by hand so the byte layout is
//! exactly the canonical one: links first (field 2), then data (field 1);
//! inside a link: hash, name, tsize; UnixFS fields in field-number order.

use cid::Cid;

/// A dag-pb link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PbLink {
    pub cid: Cid,
    pub name: Option<Vec<u8>>,
    pub tsize: Option<u64>,
}

/// A decoded dag-pb node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PbNode {
    pub links: Vec<PbLink>,
    pub data: Option<Vec<u8>>,
}

/// UnixFS node kinds (`Data.DataType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnixfsType {
    Raw = 0,
    Directory = 1,
    File = 2,
    Metadata = 3,
    Symlink = 4,
    HamtShard = 5,
}

impl UnixfsType {
    fn from_u64(v: u64) -> Option<Self> {
        Some(match v {
            0 => Self::Raw,
            1 => Self::Directory,
            2 => Self::File,
            3 => Self::Metadata,
            4 => Self::Symlink,
            5 => Self::HamtShard,
            _ => return None,
        })
    }
}

/// The UnixFS `Data` message (without mode and mtime, which Shoal never writes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unixfs {
    pub kind: UnixfsType,
    pub data: Option<Vec<u8>>,
    pub filesize: Option<u64>,
    pub blocksizes: Vec<u64>,
    pub hash_type: Option<u64>,
    pub fanout: Option<u64>,
}

impl Unixfs {
    pub fn new(kind: UnixfsType) -> Self {
        Self {
            kind,
            data: None,
            filesize: None,
            blocksizes: Vec::new(),
            hash_type: None,
            fanout: None,
        }
    }
}

pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub fn varint_len(v: u64) -> usize {
    let bits = 64 - (v | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

fn put_bytes(out: &mut Vec<u8>, tag: u8, bytes: &[u8]) {
    out.push(tag);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

impl Unixfs {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            16 + self.data.as_ref().map_or(0, Vec::len) + self.blocksizes.len() * 5,
        );
        out.push(0x08);
        put_varint(&mut out, self.kind as u64);
        if let Some(d) = self.data.as_ref().filter(|d| !d.is_empty()) {
            put_bytes(&mut out, 0x12, d);
        }
        if let Some(s) = self.filesize {
            out.push(0x18);
            put_varint(&mut out, s);
        }
        for &b in &self.blocksizes {
            out.push(0x20);
            put_varint(&mut out, b);
        }
        if let Some(h) = self.hash_type {
            out.push(0x28);
            put_varint(&mut out, h);
        }
        if let Some(f) = self.fanout {
            out.push(0x30);
            put_varint(&mut out, f);
        }
        out
    }

    pub fn decode(buf: &[u8]) -> Result<Self, String> {
        let mut r = Reader { buf, pos: 0 };
        let mut kind = None;
        let mut me = Unixfs::new(UnixfsType::File);
        while !r.done() {
            let (field, wire) = r.key()?;
            match (field, wire) {
                (1, 0) => {
                    kind = Some(UnixfsType::from_u64(r.varint()?).ok_or("unknown UnixFS type")?)
                }
                (2, 2) => me.data = Some(r.bytes()?.to_vec()),
                (3, 0) => me.filesize = Some(r.varint()?),
                (4, 0) => me.blocksizes.push(r.varint()?),
                (4, 2) => {
                    let packed = r.bytes()?;
                    let mut pr = Reader {
                        buf: packed,
                        pos: 0,
                    };
                    while !pr.done() {
                        me.blocksizes.push(pr.varint()?);
                    }
                }
                (5, 0) => me.hash_type = Some(r.varint()?),
                (6, 0) => me.fanout = Some(r.varint()?),
                _ => r.skip(wire)?,
            }
        }
        me.kind = kind.ok_or("UnixFS data has no type")?;
        Ok(me)
    }
}

/// Size in bytes of a link as encoded in a dag-pb node (including its tag
/// and length prefix).
pub fn link_encoded_len(name_len: usize, cid_len: usize, tsize: u64) -> usize {
    let inner = 1
        + varint_len(cid_len as u64)
        + cid_len
        + 1
        + varint_len(name_len as u64)
        + name_len
        + 1
        + varint_len(tsize);
    1 + varint_len(inner as u64) + inner
}

impl PbNode {
    pub fn encode(&self) -> Vec<u8> {
        let mut out =
            Vec::with_capacity(self.data.as_ref().map_or(0, Vec::len) + self.links.len() * 48 + 8);
        let mut link = Vec::with_capacity(64);
        for l in &self.links {
            link.clear();
            put_bytes(&mut link, 0x0a, &l.cid.to_bytes());
            if let Some(n) = &l.name {
                put_bytes(&mut link, 0x12, n);
            }
            if let Some(t) = l.tsize {
                link.push(0x18);
                put_varint(&mut link, t);
            }
            put_bytes(&mut out, 0x12, &link);
        }
        if let Some(d) = &self.data {
            put_bytes(&mut out, 0x0a, d);
        }
        out
    }

    pub fn decode(buf: &[u8]) -> Result<Self, String> {
        let mut r = Reader { buf, pos: 0 };
        let mut node = PbNode::default();
        while !r.done() {
            let (field, wire) = r.key()?;
            match (field, wire) {
                (1, 2) => node.data = Some(r.bytes()?.to_vec()),
                (2, 2) => {
                    let mut lr = Reader {
                        buf: r.bytes()?,
                        pos: 0,
                    };
                    let mut cid = None;
                    let mut name = None;
                    let mut tsize = None;
                    while !lr.done() {
                        let (f, w) = lr.key()?;
                        match (f, w) {
                            (1, 2) => {
                                cid = Some(
                                    Cid::try_from(lr.bytes()?)
                                        .map_err(|e| format!("bad link CID: {e}"))?,
                                )
                            }
                            (2, 2) => name = Some(lr.bytes()?.to_vec()),
                            (3, 0) => tsize = Some(lr.varint()?),
                            _ => return Err(format!("unexpected field {f} in a link")),
                        }
                    }
                    node.links.push(PbLink {
                        cid: cid.ok_or("link without a hash")?,
                        name,
                        tsize,
                    });
                }
                _ => return Err(format!("unexpected field {field} in a dag-pb node")),
            }
        }
        Ok(node)
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }
    fn varint(&mut self) -> Result<u64, String> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = *self.buf.get(self.pos).ok_or("truncated varint")?;
            self.pos += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("varint too long".into())
    }
    fn key(&mut self) -> Result<(u64, u8), String> {
        let k = self.varint()?;
        Ok((k >> 3, (k & 7) as u8))
    }
    fn bytes(&mut self) -> Result<&'a [u8], String> {
        let len = usize::try_from(self.varint()?).map_err(|_| "length too large")?;
        let end = self
            .pos
            .checked_add(len)
            .filter(|&e| e <= self.buf.len())
            .ok_or("truncated field")?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn skip(&mut self, wire: u8) -> Result<(), String> {
        match wire {
            0 => self.varint().map(|_| ()),
            1 => self.advance(8),
            2 => self.bytes().map(|_| ()),
            5 => self.advance(4),
            _ => Err(format!("unsupported wire type {wire}")),
        }
    }
    fn advance(&mut self, n: usize) -> Result<(), String> {
        if self.pos + n > self.buf.len() {
            return Err("truncated field".into());
        }
        self.pos += n;
        Ok(())
    }
}

/// Reads an unsigned LEB128 varint from the front of `buf`, returning it and
/// the number of bytes used.
pub fn read_varint(buf: &[u8]) -> Option<(u64, usize)> {
    let mut v: u64 = 0;
    for (i, &b) in buf.iter().enumerate().take(10) {
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn varint_len_matches_encoding(v in any::<u64>()) {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            prop_assert_eq!(out.len(), varint_len(v));
            prop_assert_eq!(read_varint(&out), Some((v, out.len())));
        }
    }

    #[test]
    fn empty_directory_bytes() {
        let node = PbNode {
            links: vec![],
            data: Some(Unixfs::new(UnixfsType::Directory).encode()),
        };
        assert_eq!(node.encode(), [0x0a, 0x02, 0x08, 0x01]);
    }
}
