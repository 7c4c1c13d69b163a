//! CAR v1 (content-addressed archive) export and import: a varint-framed
//! dag-cbor header `{roots, version: 1}` followed by varint-framed
//! `CID ++ block` sections.

use std::io::{Read, Write};

use cid::Cid;

use crate::{Blockstore, Error, Result, pb::put_varint};

fn car_err(reason: impl Into<String>) -> Error {
    Error::Car {
        path: "<car>".into(),
        reason: reason.into(),
    }
}

/// The dag-cbor header for `roots`.
pub fn header(roots: &[Cid]) -> Vec<u8> {
    let mut h = Vec::new();
    h.push(0xa2); // map of 2, keys in length-first order
    h.push(0x65);
    h.extend_from_slice(b"roots");
    cbor_head(&mut h, 4, roots.len() as u64);
    for r in roots {
        let bytes = r.to_bytes();
        h.extend_from_slice(&[0xd8, 0x2a]); // tag 42: CID
        cbor_head(&mut h, 2, bytes.len() as u64 + 1);
        h.push(0x00); // multibase identity prefix
        h.extend_from_slice(&bytes);
    }
    h.push(0x67);
    h.extend_from_slice(b"version");
    h.push(0x01);
    h
}

fn cbor_head(out: &mut Vec<u8>, major: u8, v: u64) {
    let m = major << 5;
    if v < 24 {
        out.push(m | v as u8);
    } else if v < 0x100 {
        out.extend_from_slice(&[m | 24, v as u8]);
    } else if v < 0x1_0000 {
        out.push(m | 25);
        out.extend_from_slice(&(v as u16).to_be_bytes());
    } else if v < 0x1_0000_0000 {
        out.push(m | 26);
        out.extend_from_slice(&(v as u32).to_be_bytes());
    } else {
        out.push(m | 27);
        out.extend_from_slice(&v.to_be_bytes());
    }
}

/// Writes the DAG under `root` as a CAR v1 to `out`; returns the number of
/// blocks written. Every block is read verified.
pub fn export_car(store: &Blockstore, root: &Cid, out: &mut dyn Write) -> Result<u64> {
    let w = |out: &mut dyn Write, b: &[u8]| out.write_all(b).map_err(|e| car_err(e.to_string()));
    let h = header(std::slice::from_ref(root));
    let mut frame = Vec::new();
    put_varint(&mut frame, h.len() as u64);
    w(out, &frame)?;
    w(out, &h)?;
    let mut n = 0;
    for cid in store.dag(root)? {
        let data = store.get(&cid)?;
        let cid_bytes = cid.to_bytes();
        frame.clear();
        put_varint(&mut frame, (cid_bytes.len() + data.len()) as u64);
        w(out, &frame)?;
        w(out, &cid_bytes)?;
        w(out, &data)?;
        n += 1;
    }
    Ok(n)
}

fn read_varint(r: &mut dyn Read) -> Result<Option<u64>> {
    let mut v: u64 = 0;
    for i in 0..10 {
        let mut b = [0u8; 1];
        match r.read(&mut b) {
            Ok(0) if i == 0 => return Ok(None),
            Ok(0) => return Err(car_err("truncated length prefix")),
            Ok(_) => {}
            Err(e) => return Err(car_err(e.to_string())),
        }
        v |= u64::from(b[0] & 0x7f) << (7 * i);
        if b[0] & 0x80 == 0 {
            return Ok(Some(v));
        }
    }
    Err(car_err("length prefix too long"))
}

/// Largest header or section accepted (a block is at most a few MiB).
const MAX_SECTION: u64 = 16 << 20;

/// Reads a CAR v1 into the store, verifying every block; returns its roots.
/// The roots are pinned.
pub fn import_car(store: &Blockstore, input: &mut dyn Read) -> Result<Vec<Cid>> {
    let len = read_varint(input)?.ok_or_else(|| car_err("empty file"))?;
    if len > MAX_SECTION {
        return Err(car_err("header too large"));
    }
    let mut h = vec![0u8; len as usize];
    input
        .read_exact(&mut h)
        .map_err(|e| car_err(format!("truncated header: {e}")))?;
    let roots = parse_header(&h)?;
    let mut buf = Vec::new();
    while let Some(len) = read_varint(input)? {
        if len > MAX_SECTION {
            return Err(car_err(format!("section of {len} bytes is too large")));
        }
        buf.resize(len as usize, 0);
        input
            .read_exact(&mut buf)
            .map_err(|e| car_err(format!("truncated block: {e}")))?;
        let mut cur = std::io::Cursor::new(&buf[..]);
        let cid =
            Cid::read_bytes(&mut cur).map_err(|e| car_err(format!("bad CID in section: {e}")))?;
        let data = &buf[cur.position() as usize..];
        store.put(&cid, data)?;
    }
    for r in &roots {
        store.pin(r)?;
    }
    Ok(roots)
}

/// A tiny dag-cbor reader, enough for the CAR header.
struct Cbor<'a> {
    b: &'a [u8],
    p: usize,
}

enum Val {
    Uint(u64),
    Text(String),
    Bytes(Vec<u8>),
    Array(Vec<Val>),
    Map(Vec<(Val, Val)>),
    Tag(u64, Box<Val>),
    Other,
}

impl Cbor<'_> {
    fn byte(&mut self) -> Result<u8> {
        let v = *self
            .b
            .get(self.p)
            .ok_or_else(|| car_err("truncated header"))?;
        self.p += 1;
        Ok(v)
    }
    fn arg(&mut self, info: u8) -> Result<u64> {
        let n = match info {
            0..=23 => return Ok(u64::from(info)),
            24 => 1,
            25 => 2,
            26 => 4,
            27 => 8,
            _ => return Err(car_err("indefinite-length items are not dag-cbor")),
        };
        let mut v = 0u64;
        for _ in 0..n {
            v = (v << 8) | u64::from(self.byte()?);
        }
        Ok(v)
    }
    fn take(&mut self, n: u64) -> Result<&[u8]> {
        let end = usize::try_from(n)
            .ok()
            .and_then(|n| self.p.checked_add(n))
            .filter(|&e| e <= self.b.len());
        let end = end.ok_or_else(|| car_err("truncated header"))?;
        let s = &self.b[self.p..end];
        self.p = end;
        Ok(s)
    }
    fn val(&mut self, depth: u32) -> Result<Val> {
        if depth > 16 {
            return Err(car_err("header nested too deeply"));
        }
        let ib = self.byte()?;
        let (major, info) = (ib >> 5, ib & 0x1f);
        let a = self.arg(info)?;
        Ok(match major {
            0 => Val::Uint(a),
            2 => Val::Bytes(self.take(a)?.to_vec()),
            3 => Val::Text(
                String::from_utf8(self.take(a)?.to_vec()).map_err(|_| car_err("bad text"))?,
            ),
            4 => Val::Array(
                (0..a.min(1 << 16))
                    .map(|_| self.val(depth + 1))
                    .collect::<Result<_>>()?,
            ),
            5 => Val::Map(
                (0..a.min(1 << 16))
                    .map(|_| Ok((self.val(depth + 1)?, self.val(depth + 1)?)))
                    .collect::<Result<_>>()?,
            ),
            6 => Val::Tag(a, Box::new(self.val(depth + 1)?)),
            _ => Val::Other,
        })
    }
}

fn parse_header(h: &[u8]) -> Result<Vec<Cid>> {
    let Val::Map(entries) = (Cbor { b: h, p: 0 }).val(0)? else {
        return Err(car_err("header is not a map"));
    };
    let mut version = None;
    let mut roots = Vec::new();
    for (k, v) in entries {
        match (k, v) {
            (Val::Text(k), Val::Uint(n)) if k == "version" => version = Some(n),
            (Val::Text(k), Val::Array(items)) if k == "roots" => {
                for item in items {
                    let Val::Tag(42, inner) = item else {
                        return Err(car_err("root is not a CID"));
                    };
                    let Val::Bytes(b) = *inner else {
                        return Err(car_err("root is not a CID"));
                    };
                    let cid = b
                        .split_first()
                        .filter(|(z, _)| **z == 0)
                        .and_then(|(_, rest)| Cid::try_from(rest).ok());
                    roots.push(cid.ok_or_else(|| car_err("root is not a valid CID"))?);
                }
            }
            _ => {}
        }
    }
    match version {
        Some(1) => Ok(roots),
        Some(v) => Err(car_err(format!(
            "CAR version {v} is not supported; write a CAR v1"
        ))),
        None => Err(car_err("header has no version")),
    }
}
