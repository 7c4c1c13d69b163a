//! The append-only block journal that makes a devchain persistent.
//!
//! Every state change is one record: the genesis, each mined block (its
//! timestamp and raw signed transactions), and each cheat (balance, code,
//! nonce, storage, time, snapshot, revert). Starting from a data directory
//! replays the records in order, which re-executes every block and yields the
//! same state, blocks, receipts and logs. Each record is framed as
//! `len: u32 LE | check: 4 bytes of keccak256(payload) | payload (JSON)` and
//! fsynced before the call that produced it returns. A torn or corrupt tail
//! (a crash mid-write) is detected by its frame, logged and cut off.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use alloy::primitives::{Address, B256, Bytes, U256, keccak256};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The journal file name inside the data directory.
pub const JOURNAL_FILE: &str = "chain.journal";

/// Largest record accepted when reading (a block of many maximal transactions).
const MAX_RECORD: usize = 256 * 1024 * 1024;

/// One persisted state change.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Record {
    /// The first record: what the chain was created with.
    Genesis {
        /// Chain id.
        chain_id: u64,
        /// Genesis timestamp.
        timestamp: u64,
        /// Block gas limit.
        gas_limit: u64,
        /// Genesis base fee.
        base_fee: u64,
        /// Prefunded accounts and balances.
        alloc: Vec<(Address, U256)>,
    },
    /// A mined block.
    Block {
        /// Its number (checked on replay).
        number: u64,
        /// Its timestamp.
        timestamp: u64,
        /// Its transactions, EIP-2718 encoded, in order.
        txs: Vec<Bytes>,
    },
    /// `anvil_setBalance`.
    SetBalance {
        /// Account.
        address: Address,
        /// New balance.
        balance: U256,
    },
    /// `anvil_setCode`.
    SetCode {
        /// Account.
        address: Address,
        /// New runtime code.
        code: Bytes,
    },
    /// `anvil_setNonce`.
    SetNonce {
        /// Account.
        address: Address,
        /// New nonce.
        nonce: u64,
    },
    /// `anvil_setStorageAt`.
    SetStorage {
        /// Account.
        address: Address,
        /// Slot.
        slot: U256,
        /// Value.
        value: B256,
    },
    /// The offset added to the wall clock for new blocks (`evm_increaseTime`).
    TimeOffset {
        /// Seconds.
        offset: i64,
    },
    /// `evm_setNextBlockTimestamp`.
    NextTimestamp {
        /// The timestamp of the next block.
        timestamp: u64,
    },
    /// `evm_snapshot`.
    Snapshot,
    /// `evm_revert`.
    Revert {
        /// The snapshot id reverted to.
        id: u64,
    },
}

/// An open journal file, positioned at its end.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: File,
}

impl Journal {
    /// Opens (or creates) the journal in `dir`, returning it and its valid records.
    pub fn open(dir: &Path) -> Result<(Self, Vec<Record>)> {
        std::fs::create_dir_all(dir).map_err(|source| Error::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join(JOURNAL_FILE);
        let io = |source| Error::Io {
            path: path.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(io)?;
        let mut data = Vec::new();
        file.read_to_end(&mut data).map_err(io)?;
        let (records, valid_len) = decode_all(&data);
        if valid_len < data.len() {
            tracing::warn!(
                path = %path.display(),
                dropped_bytes = data.len() - valid_len,
                "devchain journal ends in a torn or corrupt record (interrupted write); dropping it"
            );
            file.set_len(valid_len as u64).map_err(io)?;
            file.sync_all().map_err(io)?;
        }
        file.seek(SeekFrom::End(0)).map_err(io)?;
        Ok((Self { path, file }, records))
    }

    /// Appends records and fsyncs them.
    pub fn append(&mut self, records: &[Record]) -> Result<()> {
        let mut buf = Vec::new();
        for r in records {
            encode(r, &mut buf);
        }
        let io = |source| Error::Io {
            path: self.path.clone(),
            source,
        };
        self.file.write_all(&buf).map_err(io)?;
        self.file.sync_data().map_err(io)
    }

    /// The journal file path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn encode(record: &Record, out: &mut Vec<u8>) {
    // Serializing these plain data types cannot fail.
    let payload = serde_json::to_vec(record).unwrap_or_default();
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&keccak256(&payload)[..4]);
    out.extend_from_slice(&payload);
}

/// Decodes the valid prefix of a journal; returns its records and byte length.
fn decode_all(data: &[u8]) -> (Vec<Record>, usize) {
    let mut records = Vec::new();
    let mut pos = 0;
    while data.len() - pos >= 8 {
        let len =
            u32::from_le_bytes([data[pos], data[pos + 1], data[pos + 2], data[pos + 3]]) as usize;
        if len > MAX_RECORD || data.len() - pos - 8 < len {
            break;
        }
        let payload = &data[pos + 8..pos + 8 + len];
        if keccak256(payload)[..4] != data[pos + 4..pos + 8] {
            break;
        }
        match serde_json::from_slice(payload) {
            Ok(r) => records.push(r),
            Err(_) => break,
        }
        pos += 8 + len;
    }
    (records, pos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn torn_tail_is_dropped_and_appends_continue() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let (mut j, recs) = Journal::open(dir.path())?;
        assert!(recs.is_empty());
        let a = Record::TimeOffset { offset: 5 };
        let b = Record::NextTimestamp { timestamp: 9 };
        j.append(&[a.clone(), b.clone()])?;
        drop(j);
        // Simulate a crash in the middle of writing a third record.
        let path = dir.path().join(JOURNAL_FILE);
        let mut bytes = std::fs::read(&path)?;
        let full = bytes.len();
        let mut third = Vec::new();
        encode(&Record::Snapshot, &mut third);
        bytes.extend_from_slice(&third[..third.len() - 3]);
        std::fs::write(&path, &bytes)?;
        let (mut j, recs) = Journal::open(dir.path())?;
        assert_eq!(recs, vec![a.clone(), b.clone()]);
        assert_eq!(std::fs::metadata(&path)?.len() as usize, full);
        j.append(&[Record::Snapshot])?;
        drop(j);
        // A flipped byte in the last record is detected too.
        let mut bytes = std::fs::read(&path)?;
        let last = bytes.len() - 2;
        bytes[last] ^= 0xff;
        std::fs::write(&path, &bytes)?;
        let (_j, recs) = Journal::open(dir.path())?;
        assert_eq!(recs, vec![a, b]);
        Ok(())
    }
}
