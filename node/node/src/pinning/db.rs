//! The pinset on disk: `<data_dir>/pins.redb`, so a restart keeps it.

use std::collections::BTreeMap;
use std::path::Path;

use redb::{ReadableTable, TableDefinition};

use super::state::{PinCid, PinEntry, PinSet, StatusEntry};
use crate::error::Result;
use crate::state::DbFile;

const PINS: TableDefinition<&str, &[u8]> = TableDefinition::new("pins");
const STATUS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("status");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// CIDs this node pins for the pinset: `1` when the store already had them pinned for
/// another reason (then the pinset never unpins them), `0` otherwise.
const HELD: TableDefinition<&str, u8> = TableDefinition::new("held");
const CLOCK: &str = "clock";

/// The pinset database.
pub(crate) struct PinDb {
    file: DbFile,
}

/// What a pinned CID was before the pinset took it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Held {
    /// The store had it pinned already (an upload, a published result).
    pub pinned_before: bool,
}

impl PinDb {
    pub(crate) fn open(path: &Path) -> Result<Self> {
        let me = Self {
            file: DbFile::open(path)?,
        };
        let txn = me.file.begin_write()?;
        {
            txn.open_table(PINS).map_err(|e| me.file.err(e))?;
            txn.open_table(STATUS).map_err(|e| me.file.err(e))?;
            txn.open_table(META).map_err(|e| me.file.err(e))?;
            txn.open_table(HELD).map_err(|e| me.file.err(e))?;
        }
        me.file.commit(txn)?;
        Ok(me)
    }

    /// The saved pinset and the CIDs held here.
    pub(crate) fn load(&self) -> Result<(PinSet, BTreeMap<PinCid, Held>)> {
        let txn = self.file.begin_read()?;
        let mut set = PinSet::default();
        fn decode<T: serde::de::DeserializeOwned>(db: &PinDb, b: &[u8]) -> Result<T> {
            serde_json::from_slice(b).map_err(|e| db.file.err(format!("corrupt pin record: {e}")))
        }
        for row in txn
            .open_table(PINS)
            .map_err(|e| self.file.err(e))?
            .iter()
            .map_err(|e| self.file.err(e))?
        {
            let (_, v) = row.map_err(|e| self.file.err(e))?;
            let e: PinEntry = decode(self, v.value())?;
            set.merge_pin(e);
        }
        for row in txn
            .open_table(STATUS)
            .map_err(|e| self.file.err(e))?
            .iter()
            .map_err(|e| self.file.err(e))?
        {
            let (_, v) = row.map_err(|e| self.file.err(e))?;
            let e: StatusEntry = decode(self, v.value())?;
            set.merge_status(e);
        }
        let meta = txn.open_table(META).map_err(|e| self.file.err(e))?;
        if let Some(c) = meta.get(CLOCK).map_err(|e| self.file.err(e))? {
            set.clock = set.clock.max(c.value());
        }
        let mut held = BTreeMap::new();
        for row in txn
            .open_table(HELD)
            .map_err(|e| self.file.err(e))?
            .iter()
            .map_err(|e| self.file.err(e))?
        {
            let (k, v) = row.map_err(|e| self.file.err(e))?;
            if let Ok(c) = shoal_store::parse_cid(k.value()) {
                held.insert(
                    PinCid(c),
                    Held {
                        pinned_before: v.value() == 1,
                    },
                );
            }
        }
        Ok((set, held))
    }

    /// Writes changed entries and the clock in one transaction; `durable` waits for the disk
    /// (local writes), otherwise the next durable commit carries them (merges from peers,
    /// which anti-entropy would bring again after a crash).
    pub(crate) fn save(
        &self,
        pins: &[PinEntry],
        status: &[StatusEntry],
        clock: u64,
        durable: bool,
    ) -> Result<()> {
        let mut txn = self.file.begin_write()?;
        if !durable {
            txn.set_durability(redb::Durability::None)
                .map_err(|e| self.file.err(e))?;
        }
        {
            let mut t = txn.open_table(PINS).map_err(|e| self.file.err(e))?;
            for e in pins {
                let bytes = serde_json::to_vec(e).map_err(|e| self.file.err(e))?;
                t.insert(e.cid.to_string().as_str(), bytes.as_slice())
                    .map_err(|e| self.file.err(e))?;
            }
            let mut t = txn.open_table(STATUS).map_err(|e| self.file.err(e))?;
            for e in status {
                let bytes = serde_json::to_vec(e).map_err(|e| self.file.err(e))?;
                let (c, p) = (e.cid.to_string(), e.peer.to_string());
                t.insert((c.as_str(), p.as_str()), bytes.as_slice())
                    .map_err(|e| self.file.err(e))?;
            }
            let mut t = txn.open_table(META).map_err(|e| self.file.err(e))?;
            t.insert(CLOCK, clock).map_err(|e| self.file.err(e))?;
        }
        self.file.commit(txn)
    }

    /// Records that this node holds `cid` for the pinset (`None`: no longer).
    pub(crate) fn set_held(&self, cid: PinCid, held: Option<Held>) -> Result<()> {
        let txn = self.file.begin_write()?;
        {
            let mut t = txn.open_table(HELD).map_err(|e| self.file.err(e))?;
            let k = cid.to_string();
            match held {
                Some(h) => {
                    t.insert(k.as_str(), u8::from(h.pinned_before))
                        .map_err(|e| self.file.err(e))?;
                }
                None => {
                    t.remove(k.as_str()).map_err(|e| self.file.err(e))?;
                }
            }
        }
        self.file.commit(txn)
    }
}

#[cfg(test)]
mod tests {
    use super::super::state::Peer;
    use super::*;
    use cid::Cid;
    use multihash_codetable::MultihashDigest;
    use shoal_api::PinState;
    use shoal_p2p::PeerId;

    #[test]
    fn a_reopened_database_has_the_same_pinset() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("pins.redb");
        let me = Peer(PeerId::random());
        let mut set = PinSet::default();
        let cid = PinCid(Cid::new_v1(
            0x55,
            multihash_codetable::Code::Sha2_256.digest(b"x"),
        ));
        let version = set.tick(me);
        let pin = PinEntry {
            cid,
            name: Some("x".into()),
            rmin: 2,
            rmax: 3,
            allocations: vec![me],
            constraints: Vec::new(),
            deleted: false,
            version,
        };
        let st = StatusEntry {
            cid,
            peer: me,
            state: PinState::Pinned,
            message: None,
            updated_at: 7,
            lamport: set.tick(me).lamport,
        };
        set.merge_pin(pin.clone());
        set.merge_status(st.clone());
        {
            let db = PinDb::open(&path).expect("open");
            db.save(&[pin], &[st], set.clock, true).expect("save");
            db.set_held(
                cid,
                Some(Held {
                    pinned_before: true,
                }),
            )
            .expect("held");
        }
        let db = PinDb::open(&path).expect("reopen");
        let (loaded, held) = db.load().expect("load");
        assert_eq!(loaded, set);
        assert_eq!(
            held.get(&cid),
            Some(&Held {
                pinned_before: true
            })
        );
        db.set_held(cid, None).expect("unheld");
        assert!(db.load().expect("load").1.is_empty());
    }
}
