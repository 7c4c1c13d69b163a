//! The pinset's gossip messages (docs/pinning.md, Messages): JSON, at most
//! [`shoal_p2p::MAX_PIN_MESSAGE_BYTES`] each; bigger sets go out in chunks.

use serde::{Deserialize, Serialize};
use shoal_p2p::MAX_PIN_MESSAGE_BYTES;

use super::state::{Peer, PinEntry, StatusEntry};

/// A node's periodic "I am here".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Heartbeat {
    /// Counts up; makes every heartbeat a distinct gossip message.
    pub seq: u64,
    /// Free bytes for pins.
    pub free_bytes: u64,
    /// Leaving: do not allocate to it.
    #[serde(default)]
    pub leaving: bool,
    /// Left: down now.
    #[serde(default)]
    pub gone: bool,
    /// Digest of the sender's pins map.
    pub pins_digest: String,
    /// Digest of the sender's own status entries.
    pub status_digest: String,
    /// The sender's `[labels]`, matched against pins' constraints.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub labels: std::collections::BTreeMap<String, String>,
}

/// One gossip message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub(crate) enum Message {
    Heartbeat(Heartbeat),
    /// `nonce` makes a re-send of the same entries a new gossip message (gossipsub drops
    /// payloads it has seen within its duplicate-cache time).
    Pins {
        nonce: u64,
        entries: Vec<PinEntry>,
    },
    Status {
        nonce: u64,
        entries: Vec<StatusEntry>,
    },
    /// Asks `peer` to send all its status entries again.
    Want {
        nonce: u64,
        peer: Peer,
    },
}

impl Message {
    pub(crate) fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub(crate) fn decode(data: &[u8]) -> Result<Self, String> {
        serde_json::from_slice(data).map_err(|e| format!("not a pin message: {e}"))
    }
}

/// `entries` as messages of at most [`MAX_PIN_MESSAGE_BYTES`] each (an entry too big on its
/// own is left out: the checks on entries keep that from happening).
pub(crate) fn chunks<T: Clone>(entries: &[T], wrap: impl Fn(Vec<T>) -> Message) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut batch: Vec<T> = Vec::new();
    for e in entries {
        batch.push(e.clone());
        if wrap(batch.clone()).encode().len() > MAX_PIN_MESSAGE_BYTES {
            let last = batch.pop();
            if !batch.is_empty() {
                out.push(wrap(std::mem::take(&mut batch)).encode());
            }
            if let Some(l) = last {
                let alone = wrap(vec![l.clone()]).encode();
                if alone.len() <= MAX_PIN_MESSAGE_BYTES {
                    batch.push(l);
                }
            }
        }
    }
    if !batch.is_empty() {
        out.push(wrap(batch).encode());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::state::{PinCid, Version};
    use super::*;
    use cid::Cid;
    use multihash_codetable::MultihashDigest;
    use shoal_p2p::PeerId;

    #[test]
    fn chunks_fit_and_round_trip() {
        let peers: Vec<Peer> = (0..3).map(|_| Peer(PeerId::random())).collect();
        let entries: Vec<PinEntry> = (0..100u32)
            .map(|i| PinEntry {
                cid: PinCid(Cid::new_v1(
                    0x55,
                    multihash_codetable::Code::Sha2_256.digest(&i.to_be_bytes()),
                )),
                name: Some("n".repeat(64)),
                rmin: 2,
                rmax: 3,
                allocations: peers.clone(),
                constraints: Vec::new(),
                deleted: false,
                version: Version {
                    lamport: u64::from(i),
                    peer: peers[0],
                },
            })
            .collect();
        let msgs = chunks(&entries, |entries| Message::Pins { nonce: 1, entries });
        assert!(msgs.len() > 1);
        let mut back = Vec::new();
        for m in &msgs {
            assert!(m.len() <= MAX_PIN_MESSAGE_BYTES);
            match Message::decode(m).expect("decodes") {
                Message::Pins { entries, .. } => back.extend(entries),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(back, entries);
        assert!(Message::decode(b"{\"type\":\"nope\"}").is_err());
    }
}
