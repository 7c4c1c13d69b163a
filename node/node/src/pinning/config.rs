//! `[pinning]`: the replicated pinset (docs/pinning.md).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The `[pinning]` section of the node config.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct PinningConfig {
    /// Take part in the shared pinset (needs `[p2p] enabled`).
    pub enabled: bool,
    /// A peer silent this long is down and its pins move to others, in seconds.
    pub grace_period_secs: u64,
    /// How often this node says it is alive, in milliseconds.
    pub heartbeat_interval_ms: u64,
    /// How often this node compares the pinset with what it holds, in milliseconds.
    pub reconcile_interval_ms: u64,
    /// At most one full-state send (anti-entropy) per this many seconds.
    pub sync_interval_secs: u64,
    /// How long Bitswap may take for one DAG before the HTTP `peers` are asked, in seconds.
    pub fetch_timeout_secs: u64,
    /// DAGs fetched at once.
    pub max_concurrent_fetches: usize,
    /// Wait after a failed fetch before trying again, in seconds.
    pub retry_secs: u64,
    /// Copies a pin gets when the request names none.
    pub default_replication_min: u32,
    /// Most copies a pin gets when the request names none.
    pub default_replication_max: u32,
    /// Space offered for pins, in bytes; the free space announced is this minus what the
    /// blockstore holds. Unset: the free space of the disk holding `data_dir`.
    pub capacity_bytes: Option<u64>,
}

impl Default for PinningConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            grace_period_secs: 120,
            heartbeat_interval_ms: 5000,
            reconcile_interval_ms: 1000,
            sync_interval_secs: 10,
            fetch_timeout_secs: 600,
            max_concurrent_fetches: 4,
            retry_secs: 10,
            default_replication_min: 2,
            default_replication_max: 3,
            capacity_bytes: None,
        }
    }
}

impl PinningConfig {
    pub(crate) fn grace(&self) -> Duration {
        Duration::from_secs(self.grace_period_secs.max(1))
    }
    pub(crate) fn heartbeat(&self) -> Duration {
        Duration::from_millis(self.heartbeat_interval_ms.max(50))
    }
    pub(crate) fn reconcile(&self) -> Duration {
        Duration::from_millis(self.reconcile_interval_ms.max(50))
    }
    pub(crate) fn sync(&self) -> Duration {
        Duration::from_secs(self.sync_interval_secs.max(1))
    }

    /// Checks values that would only fail later.
    pub fn validate(&self) -> Result<()> {
        let (lo, hi) = (self.default_replication_min, self.default_replication_max);
        if lo == 0 || lo > hi || hi > super::state::MAX_REPLICATION {
            return Err(Error::Config(format!(
                "pinning.default_replication_min/max {lo}/{hi}: need 1 <= min <= max <= {}",
                super::state::MAX_REPLICATION
            )));
        }
        if self.heartbeat_interval_ms.saturating_mul(2) > self.grace_period_secs * 1000 {
            return Err(Error::Config(format!(
                "pinning.grace_period_secs ({}) must be at least two heartbeats \
                 (heartbeat_interval_ms = {})",
                self.grace_period_secs, self.heartbeat_interval_ms
            )));
        }
        if self.max_concurrent_fetches == 0 {
            return Err(Error::Config(
                "pinning.max_concurrent_fetches must be at least 1".into(),
            ));
        }
        Ok(())
    }
}
