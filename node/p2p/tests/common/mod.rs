//! Helpers for tests that start real swarms on 127.0.0.1.

#![allow(dead_code, clippy::unwrap_used)]

use std::{future::Future, sync::Arc, time::Duration};

use shoal_p2p::{Config, Multiaddr, P2p, PeerId, start};
use shoal_store::{Blockstore, Profile};

pub fn tcp() -> Multiaddr {
    "/ip4/127.0.0.1/tcp/0".parse().unwrap()
}

pub fn quic() -> Multiaddr {
    "/ip4/127.0.0.1/udp/0/quic-v1".parse().unwrap()
}

pub struct Node {
    pub p2p: P2p,
    pub store: Arc<Blockstore>,
    _dir: tempfile::TempDir,
}

impl Node {
    pub async fn start(config: Config) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Blockstore::open(dir.path()).unwrap());
        let p2p = start(store.clone(), config).await.unwrap();
        Self {
            p2p,
            store,
            _dir: dir,
        }
    }

    pub async fn addr(&self) -> Multiaddr {
        self.p2p.listen_addrs().await.unwrap().remove(0)
    }

    /// Stores `data` and returns its CID.
    pub fn put(&self, data: &[u8]) -> cid::Cid {
        self.store.add_reader(data, Profile::default()).unwrap().cid
    }

    pub async fn is_connected_to(&self, peer: PeerId) -> bool {
        self.p2p
            .peers()
            .await
            .unwrap()
            .iter()
            .any(|p| p.peer_id == peer)
    }

    /// Whether `peer` is connected and subscribed to our job topic.
    pub async fn sees_on_topic(&self, peer: PeerId) -> bool {
        self.p2p
            .peers()
            .await
            .unwrap()
            .iter()
            .any(|p| p.peer_id == peer && p.jobs_topic)
    }
}

/// Polls `check` every 100 ms until it holds; panics naming `what` after
/// `limit`.
pub async fn eventually<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {limit:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
