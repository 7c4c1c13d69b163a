//! Job announcements over gossipsub: the topic, the message, how a received
//! message is judged, and the peer-scoring parameters that make a peer who
//! sends junk lose its voice.

use std::{collections::HashMap, time::Duration};

use libp2p::gossipsub::{
    self, IdentTopic, MessageAcceptance, MessageAuthenticity, MessageId, PeerScoreParams,
    PeerScoreThresholds, TopicScoreParams, ValidationMode,
};
use multihash_codetable::{Code, MultihashDigest};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Largest announcement payload (the JSON) accepted or published.
pub const MAX_ANNOUNCEMENT_BYTES: usize = 2048;
/// Largest gossipsub RPC frame (payload + signature, key, topic and control).
pub const MAX_TRANSMIT_BYTES: usize = 4096;

/// Which chain and market a node serves: peers only gossip jobs with nodes
/// of the same network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkId {
    pub chain_id: u64,
    /// The market contract's address, `0x` + 40 hex digits (any case).
    pub market: String,
}

impl NetworkId {
    /// The market address normalised to lowercase `0x…`, or an error naming
    /// what is wrong with it.
    pub fn normalized_market(&self) -> Result<String> {
        normalize_market(&self.market).ok_or_else(|| {
            Error::Config(format!(
                "market {:?} is not a 0x-prefixed 20-byte hex address",
                self.market
            ))
        })
    }

    /// The pinset topic: `shoal/pins/<chain id>/<market, lowercase hex>` (docs/pinning.md).
    pub fn pins_topic(&self) -> Result<String> {
        Ok(format!(
            "shoal/pins/{}/{}",
            self.chain_id,
            self.normalized_market()?
        ))
    }

    /// The gossipsub topic: `shoal/jobs/<chain id>/<market, lowercase hex>`.
    pub fn jobs_topic(&self) -> Result<String> {
        Ok(format!(
            "shoal/jobs/{}/{}",
            self.chain_id,
            self.normalized_market()?
        ))
    }
}

pub(crate) fn normalize_market(m: &str) -> Option<String> {
    let hex_part = m.strip_prefix("0x").or_else(|| m.strip_prefix("0X"))?;
    (hex_part.len() == 40 && hex_part.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| format!("0x{}", hex_part.to_ascii_lowercase()))
}

/// "A job was posted": sent by the client or any node that saw it on chain,
/// so executors hear about it before their next chain poll.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobAnnouncement {
    pub chain_id: u64,
    /// Market address, lowercase `0x…`.
    pub market: String,
    /// The on-chain job id, in decimal (a uint256 does not fit JSON numbers).
    pub job_id: String,
    /// CID of the job spec.
    pub spec_cid: String,
    /// Block the job was posted in.
    pub block: u64,
}

/// Why a received message was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    Accept(JobAnnouncement),
    /// Provably bad: penalises the sender.
    Reject(String),
    /// Not for us, not provably bad: dropped without penalty.
    Ignore(String),
}

impl Verdict {
    pub(crate) fn acceptance(&self) -> MessageAcceptance {
        match self {
            Verdict::Accept(_) => MessageAcceptance::Accept,
            Verdict::Reject(_) => MessageAcceptance::Reject,
            Verdict::Ignore(_) => MessageAcceptance::Ignore,
        }
    }
}

/// Judges one received payload against our network (`market` normalised).
pub(crate) fn judge(data: &[u8], chain_id: u64, market: &str) -> Verdict {
    if data.len() > MAX_ANNOUNCEMENT_BYTES {
        return Verdict::Reject(format!(
            "{} bytes, limit {MAX_ANNOUNCEMENT_BYTES}",
            data.len()
        ));
    }
    let a: JobAnnouncement = match serde_json::from_slice(data) {
        Ok(a) => a,
        Err(e) => return Verdict::Reject(format!("not a job announcement: {e}")),
    };
    match check(&a, chain_id, market) {
        Ok(()) => Verdict::Accept(a),
        Err(e) => Verdict::Reject(e),
    }
}

/// The checks shared by sending and receiving.
pub(crate) fn check(a: &JobAnnouncement, chain_id: u64, market: &str) -> Result<(), String> {
    if a.chain_id != chain_id {
        return Err(format!("chain id {} is not ours ({chain_id})", a.chain_id));
    }
    if a.market != market {
        return Err(format!("market {:?} is not ours ({market})", a.market));
    }
    // A uint256 has at most 78 decimal digits.
    if a.job_id.is_empty() || a.job_id.len() > 78 || !a.job_id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("job id {:?} is not a decimal number", a.job_id));
    }
    if a.spec_cid.len() > 256 || cid::Cid::try_from(a.spec_cid.as_str()).is_err() {
        return Err(format!("spec cid {:?} is not a CID", a.spec_cid));
    }
    Ok(())
}

/// Gossipsub configured for announcements: signed messages checked
/// strictly, content-addressed ids (the same announcement relayed by two
/// nodes is one message), application validation before forwarding, small
/// frames.
pub(crate) fn behaviour(key: &libp2p::identity::Keypair) -> Result<gossipsub::Behaviour> {
    let config = gossipsub::ConfigBuilder::default()
        .validation_mode(ValidationMode::Strict)
        .validate_messages()
        .message_id_fn(|m: &gossipsub::Message| {
            // A job announcement is the same message whoever relays it; pinset messages
            // (heartbeats above all) from different nodes may be byte-identical and must
            // not be dropped as duplicates of each other, so their id includes the sender.
            if m.topic.as_str().starts_with("shoal/pins/")
                && let Some(source) = m.source
            {
                let mut bytes = source.to_bytes();
                bytes.extend_from_slice(&m.data);
                return MessageId::from(Code::Sha2_256.digest(&bytes).digest().to_vec());
            }
            MessageId::from(Code::Sha2_256.digest(&m.data).digest().to_vec())
        })
        .max_transmit_size(MAX_TRANSMIT_BYTES)
        .max_ihave_length(100)
        .heartbeat_interval(Duration::from_millis(700))
        .build()
        .map_err(|e| Error::Config(format!("gossipsub: {e}")))?;
    gossipsub::Behaviour::new(MessageAuthenticity::Signed(key.clone()), config)
        .map_err(|e| Error::Config(format!("gossipsub: {e}")))
}

/// Score parameters for the jobs topic (see docs/p2p.md for the reasoning).
pub(crate) fn topic_score_params() -> TopicScoreParams {
    TopicScoreParams {
        topic_weight: 1.0,
        // P1: a little credit for staying in the mesh, capped at +1.
        time_in_mesh_weight: 0.01,
        time_in_mesh_quantum: Duration::from_secs(1),
        time_in_mesh_cap: 100.0,
        // P2: credit for being first to deliver a valid announcement.
        first_message_deliveries_weight: 1.0,
        first_message_deliveries_decay: 0.9,
        first_message_deliveries_cap: 10.0,
        // P3/P3b off: announcements are rare, so "too few deliveries in the
        // mesh" would punish honest peers on a quiet market.
        mesh_message_deliveries_weight: 0.0,
        mesh_message_deliveries_decay: 0.5,
        mesh_message_deliveries_cap: 1.0,
        mesh_message_deliveries_threshold: 1.0,
        mesh_message_deliveries_window: Duration::from_millis(10),
        mesh_message_deliveries_activation: Duration::from_secs(5),
        mesh_failure_penalty_weight: 0.0,
        mesh_failure_penalty_decay: 0.5,
        // P4: one invalid message (-100) is below the graylist threshold;
        // the count decays by 1 % a second, so a single mistake is forgiven
        // in about 11 s and a flood of 10 in about 5 minutes.
        invalid_message_deliveries_weight: -100.0,
        invalid_message_deliveries_decay: 0.99,
    }
}

pub(crate) fn peer_score_params(topics_in: &[&IdentTopic]) -> PeerScoreParams {
    let mut topics = HashMap::new();
    for t in topics_in {
        topics.insert(t.hash(), topic_score_params());
    }
    PeerScoreParams {
        topics,
        topic_score_cap: 50.0,
        // No application-specific score yet.
        app_specific_weight: 0.0,
        ..PeerScoreParams::default()
    }
}

pub(crate) fn peer_score_thresholds() -> PeerScoreThresholds {
    PeerScoreThresholds {
        gossip_threshold: -10.0,
        publish_threshold: -50.0,
        graylist_threshold: -80.0,
        accept_px_threshold: 10.0,
        opportunistic_graft_threshold: 5.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MARKET: &str = "0x5fbdb2315678afecb367f032d93f642f64180aa3";

    fn good() -> JobAnnouncement {
        JobAnnouncement {
            chain_id: 31337,
            market: MARKET.into(),
            job_id: "42".into(),
            spec_cid: "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy".into(),
            block: 7,
        }
    }

    #[test]
    fn topic_is_lowercase() {
        let n = NetworkId {
            chain_id: 1,
            market: "0x5FbDB2315678afecb367f032d93F642f64180aa3".into(),
        };
        assert_eq!(
            n.jobs_topic().expect("topic"),
            format!("shoal/jobs/1/{MARKET}")
        );
        let bad = NetworkId {
            chain_id: 1,
            market: "5FbDB2".into(),
        };
        assert!(bad.jobs_topic().is_err());
    }

    #[test]
    fn judges_messages() {
        let ok = serde_json::to_vec(&good()).expect("json");
        assert_eq!(judge(&ok, 31337, MARKET), Verdict::Accept(good()));
        let reject = |a: JobAnnouncement| {
            let v = judge(&serde_json::to_vec(&a).expect("json"), 31337, MARKET);
            assert!(matches!(v, Verdict::Reject(_)), "{a:?}: {v:?}");
        };
        reject(JobAnnouncement {
            chain_id: 1,
            ..good()
        });
        reject(JobAnnouncement {
            market: "0x00".into(),
            ..good()
        });
        reject(JobAnnouncement {
            job_id: "0x2a".into(),
            ..good()
        });
        reject(JobAnnouncement {
            job_id: "".into(),
            ..good()
        });
        reject(JobAnnouncement {
            job_id: "1".repeat(79),
            ..good()
        });
        reject(JobAnnouncement {
            spec_cid: "not a cid".into(),
            ..good()
        });
        for junk in [&b"junk"[..], b"{}", b"[1,2]", &[0xff; 10], &[b' '; 3000]] {
            assert!(matches!(judge(junk, 31337, MARKET), Verdict::Reject(_)));
        }
    }

    #[test]
    fn score_params_are_valid() {
        let t = IdentTopic::new("shoal/jobs/1/x");
        peer_score_params(&[&t]).validate().expect("params");
        peer_score_thresholds().validate().expect("thresholds");
    }
}
