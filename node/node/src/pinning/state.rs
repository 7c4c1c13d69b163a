//! The replicated pinset: desired pins and observed statuses, each a last-writer-wins
//! register per key, versioned by `(lamport, peer id)` (docs/pinning.md, State).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use cid::Cid;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use shoal_api::PinState;
use shoal_p2p::PeerId;

/// Longest pin name, in bytes.
pub(crate) const MAX_NAME_BYTES: usize = 64;
/// Longest status message, in bytes.
pub(crate) const MAX_MESSAGE_BYTES: usize = 200;
/// Most placement constraints on one pin.
pub(crate) const MAX_CONSTRAINTS: usize = 8;
/// Most labels a heartbeat carries.
pub(crate) const MAX_LABELS: usize = 16;
/// Most copies a pin may ask for (an entry with its allocations must fit one gossip message).
pub(crate) const MAX_REPLICATION: u32 = 10;

/// A peer id that serialises as its base58 text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Peer(pub PeerId);

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for Peer {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        s.parse()
            .map(Peer)
            .map_err(|e| format!("`{s}` is not a peer id: {e}"))
    }
}

impl Serialize for Peer {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Peer {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A CID that serialises as its text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct PinCid(pub Cid);

impl fmt::Display for PinCid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Serialize for PinCid {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for PinCid {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        shoal_store::parse_cid(&text)
            .map(PinCid)
            .map_err(serde::de::Error::custom)
    }
}

/// The version of a register: larger wins; the peer id breaks lamport ties.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub(crate) struct Version {
    pub lamport: u64,
    pub peer: Peer,
}

/// A pin as the swarm wants it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PinEntry {
    pub cid: PinCid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub rmin: u32,
    pub rmax: u32,
    /// The peers that should hold it, in allocation order.
    pub allocations: Vec<Peer>,
    /// Only peers whose labels satisfy all of these hold it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub constraints: Vec<shoal_types::Constraint>,
    /// A tombstone: `rm` was the last write.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
    pub version: Version,
}

impl PinEntry {
    /// Checks what a peer could have got wrong; the reason when it is not acceptable.
    pub(crate) fn check(&self) -> Result<(), String> {
        if self.rmin == 0 || self.rmin > self.rmax || self.rmax > MAX_REPLICATION {
            return Err(format!(
                "replication {}..{} is not within 1..={MAX_REPLICATION} with min <= max",
                self.rmin, self.rmax
            ));
        }
        if self.name.as_ref().is_some_and(|n| n.len() > MAX_NAME_BYTES) {
            return Err(format!("name longer than {MAX_NAME_BYTES} bytes"));
        }
        if self.constraints.len() > MAX_CONSTRAINTS {
            return Err(format!("more than {MAX_CONSTRAINTS} constraints"));
        }
        if self.allocations.len() > self.rmax as usize {
            return Err(format!(
                "{} allocations for at most {} copies",
                self.allocations.len(),
                self.rmax
            ));
        }
        Ok(())
    }
}

/// What a peer reports about one CID. Only that peer writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StatusEntry {
    pub cid: PinCid,
    pub peer: Peer,
    pub state: PinState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    pub updated_at: u64,
    /// The owner's lamport time of the write.
    pub lamport: u64,
}

impl StatusEntry {
    pub(crate) fn check(&self) -> Result<(), String> {
        if self
            .message
            .as_ref()
            .is_some_and(|m| m.len() > MAX_MESSAGE_BYTES)
        {
            return Err(format!(
                "status message longer than {MAX_MESSAGE_BYTES} bytes"
            ));
        }
        Ok(())
    }
}

/// The whole replicated state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct PinSet {
    pub pins: BTreeMap<PinCid, PinEntry>,
    /// Per CID, each peer's report.
    pub status: BTreeMap<PinCid, BTreeMap<Peer, StatusEntry>>,
    /// The Lamport clock: at least every lamport seen.
    pub clock: u64,
}

impl PinSet {
    /// The next version written by `me`.
    pub(crate) fn tick(&mut self, me: Peer) -> Version {
        self.clock += 1;
        Version {
            lamport: self.clock,
            peer: me,
        }
    }

    fn witness(&mut self, lamport: u64) {
        self.clock = self.clock.max(lamport);
    }

    /// Merges a pin entry; whether it replaced what was here.
    pub(crate) fn merge_pin(&mut self, e: PinEntry) -> bool {
        self.witness(e.version.lamport);
        match self.pins.get(&e.cid) {
            Some(have) if have.version >= e.version => false,
            _ => {
                self.pins.insert(e.cid, e);
                true
            }
        }
    }

    /// Merges a status entry; whether it replaced what was here.
    pub(crate) fn merge_status(&mut self, e: StatusEntry) -> bool {
        self.witness(e.lamport);
        let per_cid = self.status.entry(e.cid).or_default();
        match per_cid.get(&e.peer) {
            Some(have) if have.lamport >= e.lamport => false,
            _ => {
                per_cid.insert(e.peer, e);
                true
            }
        }
    }

    /// Every peer's status of `cid`.
    pub(crate) fn statuses_of(&self, cid: PinCid) -> impl Iterator<Item = &StatusEntry> {
        self.status.get(&cid).into_iter().flat_map(|m| m.values())
    }

    /// `peer`'s state of `cid`, if it reported one.
    pub(crate) fn state_of(&self, cid: PinCid, peer: Peer) -> Option<PinState> {
        self.status.get(&cid)?.get(&peer).map(|e| e.state)
    }

    /// sha2-256 over every pin entry's key, version and content, in key order.
    pub(crate) fn pins_digest(&self) -> String {
        let mut h = Sha256::new();
        for e in self.pins.values() {
            h.update(serde_json::to_vec(e).unwrap_or_default());
            h.update([0]);
        }
        hex::encode(&h.finalize()[..16])
    }

    /// sha2-256 over `peer`'s status entries, in key order.
    pub(crate) fn status_digest(&self, peer: Peer) -> String {
        let mut h = Sha256::new();
        for e in self.status.values().filter_map(|m| m.get(&peer)) {
            h.update(e.cid.0.to_bytes());
            h.update(e.lamport.to_be_bytes());
        }
        hex::encode(&h.finalize()[..16])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cid(i: u8) -> PinCid {
        let mh = multihash_codetable::Code::Sha2_256.digest(&[i]);
        PinCid(Cid::new_v1(0x55, mh))
    }

    use multihash_codetable::MultihashDigest;

    fn pin(c: PinCid, lamport: u64, peer: Peer, deleted: bool) -> PinEntry {
        PinEntry {
            cid: c,
            name: Some(format!("v{lamport}")),
            rmin: 1,
            rmax: 2,
            allocations: vec![peer],
            constraints: Vec::new(),
            deleted,
            version: Version { lamport, peer },
        }
    }

    fn merged(ops: &[PinEntry]) -> PinSet {
        let mut s = PinSet::default();
        for o in ops {
            s.merge_pin(o.clone());
        }
        s
    }

    #[test]
    fn merge_is_order_independent_and_idempotent() {
        let (a, b) = (Peer(PeerId::random()), Peer(PeerId::random()));
        let ops = vec![
            pin(cid(1), 1, a, false),
            pin(cid(1), 2, b, false),
            pin(cid(1), 2, a, false), // a lamport tie: the larger peer id wins everywhere
            pin(cid(2), 1, a, false),
            pin(cid(2), 3, b, true), // rm
            pin(cid(3), 5, a, false),
        ];
        let reference = merged(&ops);
        // Every rotation and the reverse order, each op delivered twice.
        for r in 0..ops.len() {
            let mut o = ops.clone();
            o.rotate_left(r);
            let mut twice = o.clone();
            twice.extend(o.iter().rev().cloned());
            assert_eq!(merged(&twice).pins, reference.pins);
            assert_eq!(merged(&twice).pins_digest(), reference.pins_digest());
        }
        let winner = reference.pins[&cid(1)].version.peer;
        assert_eq!(winner, a.max(b));
        assert!(reference.pins[&cid(2)].deleted, "the newer rm wins");
        assert_eq!(reference.clock, 5);
    }

    #[test]
    fn a_stale_pin_does_not_undo_a_tombstone_but_a_newer_add_does() {
        let a = Peer(PeerId::random());
        let mut s = PinSet::default();
        s.merge_pin(pin(cid(1), 4, a, true));
        assert!(!s.merge_pin(pin(cid(1), 3, a, false)));
        assert!(s.pins[&cid(1)].deleted);
        let v = s.tick(a);
        assert!(v.lamport > 4, "local writes are newer than anything seen");
        assert!(s.merge_pin(PinEntry {
            version: v,
            ..pin(cid(1), 0, a, false)
        }));
        assert!(!s.pins[&cid(1)].deleted);
    }

    #[test]
    fn status_registers_are_per_peer() {
        let (a, b) = (Peer(PeerId::random()), Peer(PeerId::random()));
        let st = |p: Peer, lamport: u64, state: PinState| StatusEntry {
            cid: cid(1),
            peer: p,
            state,
            message: None,
            updated_at: 0,
            lamport,
        };
        let mut s = PinSet::default();
        s.merge_status(st(a, 2, PinState::Pinned));
        s.merge_status(st(b, 1, PinState::Pinning));
        assert!(!s.merge_status(st(a, 1, PinState::Pinning)), "older loses");
        assert_eq!(s.state_of(cid(1), a), Some(PinState::Pinned));
        assert_eq!(s.statuses_of(cid(1)).count(), 2);
        assert_eq!(s.statuses_of(cid(2)).count(), 0);
        let d = s.status_digest(a);
        s.merge_status(st(a, 3, PinState::Unpinned));
        assert_ne!(d, s.status_digest(a));
    }
}
