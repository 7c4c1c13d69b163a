//! Replicated pins (docs/pinning.md): what `/api/v1/pins`, `/api/v1/pinning/peers` and
//! `/api/v1/node/leave` take and answer.

use serde::{Deserialize, Serialize};

/// Where a CID stands on one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PinState {
    /// The node is fetching the DAG.
    Pinning,
    /// The whole DAG is here, verified, and pinned.
    Pinned,
    /// The last fetch failed (see the message); retried later.
    Error,
    /// The node held it and let it go (re-allocated or removed).
    Unpinned,
}

impl PinState {
    /// The lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Pinning => "pinning",
            Self::Pinned => "pinned",
            Self::Error => "error",
            Self::Unpinned => "unpinned",
        }
    }
}

impl std::fmt::Display for PinState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// `POST /api/v1/pins`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PinRequest {
    /// The root CID.
    pub cid: String,
    /// A name to show (at most 64 bytes).
    #[serde(default)]
    pub name: Option<String>,
    /// Fewest copies wanted (default: the node's `pinning.default_replication_min`).
    #[serde(default)]
    pub replication_min: Option<u32>,
    /// Most copies wanted (default: the node's `pinning.default_replication_max`).
    #[serde(default)]
    pub replication_max: Option<u32>,
    /// Only nodes whose `[labels]` satisfy all of these hold it: `key=value`, `key!=value`,
    /// `key in (a,b)`, `key notin (a,b)` (as in job specs; at most 8).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub constraints: Vec<String>,
}

/// A pin of the shared pinset: `GET /api/v1/pins`, and the answer to add and remove.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PinView {
    /// The root CID.
    pub cid: String,
    /// Its name, if given.
    pub name: Option<String>,
    /// Fewest copies wanted.
    pub replication_min: u32,
    /// Most copies wanted.
    pub replication_max: u32,
    /// The peers that should hold it, in allocation order.
    pub allocations: Vec<String>,
    /// Placement constraints over node labels.
    #[serde(default)]
    pub constraints: Vec<String>,
    /// Live peers that report it pinned.
    pub pinned_copies: u32,
    /// `pinned` (at least `replicationMin` copies), `pinning`, `under-replicated`,
    /// `error` (a peer reports an error and fewer than `replicationMin` copies are pinned) or
    /// `removed`.
    pub summary: String,
    /// Whether the pin was removed (a tombstone).
    pub removed: bool,
    /// The version: Lamport time of the last change.
    pub version: u64,
    /// The peer that made the last change.
    pub changed_by: String,
}

/// One node's status of a CID.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerPinStatus {
    /// The node's peer id.
    pub peer_id: String,
    /// What it reports.
    pub state: PinState,
    /// Why, for `error`.
    pub message: Option<String>,
    /// Whether the CID is allocated to it.
    pub allocated: bool,
    /// Whether the node is live (heard within the grace period).
    pub live: bool,
    /// When it last changed, Unix seconds (the reporting node's clock).
    pub updated_at: u64,
}

/// `GET /api/v1/pins/{cid}`: the pin and every node's status of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PinStatusView {
    /// The pin.
    pub pin: PinView,
    /// Each node that holds, fetches or was allocated it; allocated peers that have not
    /// reported yet show as `pinning`.
    pub peers: Vec<PeerPinStatus>,
}

/// A member of the pinning swarm: `GET /api/v1/pinning/peers`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PinPeerView {
    /// Its peer id.
    pub peer_id: String,
    /// Whether this is the node answering.
    pub me: bool,
    /// Heard within the grace period.
    pub live: bool,
    /// Leaving: live, but no new allocations.
    pub leaving: bool,
    /// Seconds since its last heartbeat (`None` for this node, or never heard).
    pub last_seen_secs: Option<u64>,
    /// Free bytes it announced.
    pub free_bytes: Option<u64>,
    /// CIDs it reports pinned.
    pub pinned: u32,
    /// Its labels, matched against pins' constraints.
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
}

/// `GET|POST /api/v1/node/leave`: progress of a graceful leave.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LeaveView {
    /// A leave was asked for.
    pub leaving: bool,
    /// Every CID held here has its copies elsewhere; the node stops (or stopped).
    pub done: bool,
    /// CIDs held here that still lack copies elsewhere: `(cid, copies elsewhere, rmin)`.
    pub waiting: Vec<LeaveWait>,
}

/// A CID a leaving node still waits for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LeaveWait {
    /// The CID.
    pub cid: String,
    /// Pinned copies on other live nodes.
    pub copies_elsewhere: u32,
    /// Copies needed.
    pub replication_min: u32,
}
