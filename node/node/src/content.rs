//! Content on this node: the verified blockstore, and fetching DAGs this node
//! lacks: first over Bitswap from the swarm, then from peers' trustless-gateway
//! style CAR endpoint; every block is checked against its CID before it is stored.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use cid::Cid;
use shoal_store::{Blockstore, Profile};

use crate::error::{Error, Result};

/// Longest wait for one peer or the swarm when locating content.
const LOCATE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// Uploaded roots remembered for [`Content::was_uploaded`]; the oldest are forgotten
/// all at once past this.
const MAX_UPLOADS: usize = 4_096;

/// Largest CAR accepted from a peer.
const MAX_PEER_CAR: usize = 1 << 30;

/// The node's content: its blockstore and its peers.
#[derive(Clone)]
pub struct Content {
    pub store: Arc<Blockstore>,
    peers: Arc<Vec<String>>,
    http: reqwest::Client,
    p2p: Option<(shoal_p2p::P2p, std::time::Duration)>,
    /// Bytes of blocks `ensure` received from other nodes (Bitswap and peers' CARs).
    fetched_bytes: Arc<AtomicU64>,
    /// Roots uploaded through this node's API since it started (at most [`MAX_UPLOADS`]).
    uploads: Arc<std::sync::Mutex<std::collections::HashSet<Cid>>>,
}

impl std::fmt::Debug for Content {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Content")
            .field("root", &self.store.root())
            .field("peers", &self.peers)
            .finish()
    }
}

impl Content {
    /// Opens the blockstore at `root`.
    pub fn open(root: &Path, peers: Vec<String>) -> Result<Self> {
        let store = Blockstore::open(root)?;
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(60))
            .build()
            .map_err(|e| Error::Http(e.to_string()))?;
        Ok(Self {
            store: Arc::new(store),
            peers: Arc::new(peers),
            http,
            p2p: None,
            fetched_bytes: Arc::new(AtomicU64::new(0)),
            uploads: Arc::default(),
        })
    }

    /// Bytes of blocks this node fetched from other nodes for jobs and content requests
    /// (`ensure`), since it started: what locality saves.
    pub fn fetched_bytes(&self) -> u64 {
        self.fetched_bytes.load(Ordering::Relaxed)
    }

    /// Also fetches over Bitswap (for at most `timeout` per DAG) and announces content as
    /// provided on the swarm.
    pub fn with_p2p(mut self, p2p: shoal_p2p::P2p, timeout: std::time::Duration) -> Self {
        self.p2p = Some((p2p, timeout));
        self
    }

    /// Tells the swarm this node provides `cid` (a Kademlia provider record); a no-op
    /// without a swarm.
    pub async fn announce(&self, cid: &Cid) {
        if let Some((p2p, _)) = &self.p2p
            && let Err(e) = p2p.provide(*cid).await
        {
            tracing::debug!(%cid, error = %e, "cannot announce content on the swarm");
        }
    }

    /// Remembers that a user uploaded `root` through this node's API.
    pub fn uploaded(&self, root: Cid) {
        let mut uploads = self.uploads.lock().unwrap_or_else(|p| p.into_inner());
        if uploads.len() >= MAX_UPLOADS {
            uploads.clear();
        }
        uploads.insert(root);
    }

    /// Whether a user uploaded `root` through this node's API since it started (content fetched
    /// from other nodes is held too, but was not uploaded here).
    pub fn was_uploaded(&self, root: &Cid) -> bool {
        self.uploads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(root)
    }

    /// Imports bytes as one UnixFS file (`unixfs-v1-2025`) and pins it.
    pub fn add_bytes(&self, bytes: &[u8]) -> Result<Cid> {
        Ok(self.store.add_reader(bytes, Profile::UnixfsV1_2025)?.cid)
    }

    /// Imports a CAR (every block verified); returns its roots, pinned.
    pub fn add_car(&self, bytes: &[u8]) -> Result<Vec<Cid>> {
        let mut r = bytes;
        Ok(shoal_store::car::import_car(&self.store, &mut r)?)
    }

    /// Whether the whole DAG under `root` is here and intact.
    pub fn has_dag(&self, root: &Cid) -> bool {
        self.store.dag(root).is_ok()
    }

    /// The DAG as a CAR v1.
    pub fn car(&self, root: &Cid) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        shoal_store::car::export_car(&self.store, root, &mut out)?;
        Ok(out)
    }

    /// A file's bytes.
    pub fn read_file(&self, cid: &Cid) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        shoal_store::export::write_file(&self.store, cid, &mut out)?;
        Ok(out)
    }

    /// Where the DAG under `root` can be had: `here`, `swarm` (a provider record), or a
    /// peer's API URL that holds it; `None` when nowhere. Each remote check is bounded by
    /// `LOCATE_TIMEOUT`.
    pub async fn locate(&self, root: &Cid) -> Option<String> {
        if self.has_dag(root) {
            return Some("here".into());
        }
        if let Some((p2p, _)) = &self.p2p
            && let Ok(Ok(providers)) =
                tokio::time::timeout(LOCATE_TIMEOUT, p2p.find_providers(*root)).await
            && !providers.is_empty()
        {
            return Some("swarm".into());
        }
        let asks = self.peers.iter().map(|peer| async move {
            let url = format!("{}/api/v1/content/{root}", peer.trim_end_matches('/'));
            let ok = self
                .http
                .head(url)
                .timeout(LOCATE_TIMEOUT)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            ok.then(|| peer.clone())
        });
        futures::future::join_all(asks)
            .await
            .into_iter()
            .flatten()
            .next()
    }

    /// Makes sure the DAG under `root` is here: local, else fetched from a peer.
    pub async fn ensure(&self, root: &Cid) -> Result<()> {
        if self.has_dag(root) {
            return Ok(());
        }
        let mut reasons = Vec::new();
        if let Some((p2p, timeout)) = &self.p2p {
            // Bitswap asks connected peers: providers found on the DHT are dialled while the
            // fetch already runs against the peers connected now.
            let (finder, root_cid) = (p2p.clone(), *root);
            let dial_providers = tokio::spawn(async move {
                let Ok(Ok(providers)) =
                    tokio::time::timeout(LOCATE_TIMEOUT, finder.find_providers(root_cid)).await
                else {
                    return;
                };
                for peer in providers {
                    if let Err(e) = finder.dial_peer(peer).await {
                        tracing::debug!(root = %root_cid, %peer, error = %e, "cannot dial a provider");
                    }
                }
            });
            let fetched = tokio::time::timeout(*timeout, p2p.fetch_dag_counted(*root)).await;
            dial_providers.abort();
            match fetched {
                Ok(Ok(got)) => match self.store.dag(root).and_then(|_| self.store.pin(root)) {
                    Ok(()) => {
                        self.fetched_bytes.fetch_add(got.bytes, Ordering::Relaxed);
                        tracing::debug!(%root, blocks = got.blocks, bytes = got.bytes, "fetched over bitswap");
                        return Ok(());
                    }
                    Err(e) => reasons.push(format!("bitswap: {e}")),
                },
                Ok(Err(e)) => reasons.push(format!("bitswap: {e}")),
                Err(_) => reasons.push(format!(
                    "bitswap: no peer sent it within {} s",
                    timeout.as_secs()
                )),
            }
        }
        for peer in self.peers.iter() {
            match self.fetch_from(peer, root).await {
                Ok(()) => return Ok(()),
                Err(e) => reasons.push(format!("{peer}: {e}")),
            }
        }
        Err(Error::Content {
            cid: root.to_string(),
            reason: if reasons.is_empty() {
                "not in this node's store, the swarm is off and no peers are configured (set `peers`, enable `p2p`, or upload it here)".into()
            } else {
                format!(
                    "not in this node's store and no peer had it ({})",
                    reasons.join("; ")
                )
            },
        })
    }

    async fn fetch_from(&self, peer: &str, root: &Cid) -> Result<()> {
        let url = format!(
            "{}/api/v1/content/{root}?format=car",
            peer.trim_end_matches('/')
        );
        let err = |reason: String| Error::Content {
            cid: root.to_string(),
            reason,
        };
        let resp = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|e| err(e.to_string()))?;
        if !resp.status().is_success() {
            return Err(err(format!("HTTP {}", resp.status())));
        }
        let bytes = resp.bytes().await.map_err(|e| err(e.to_string()))?;
        if bytes.len() > MAX_PEER_CAR {
            return Err(err("CAR too large".into()));
        }
        self.fetched_bytes
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        let store = self.store.clone();
        let root = *root;
        tokio::task::spawn_blocking(move || -> Result<()> {
            // Blocks are verified against their CIDs as they are stored; the
            // DAG must then be complete under the root we asked for.
            let mut r = &bytes[..];
            let roots = shoal_store::car::import_car(&store, &mut r)?;
            for other in roots.iter().filter(|c| **c != root) {
                store.unpin(other)?;
            }
            store.dag(&root).map_err(|e| Error::Content {
                cid: root.to_string(),
                reason: format!("the peer's CAR does not hold the whole DAG: {e}"),
            })?;
            store.pin(&root)?;
            Ok(())
        })
        .await
        .map_err(|e| err(e.to_string()))?
    }

    /// Writes the content at `ipfs://CID[/path]` to `dest` (a file or a folder).
    pub async fn export_to(&self, cid_path: &str, dest: &Path) -> Result<PathBuf> {
        let (cid_text, path) = cid_path.split_once('/').unwrap_or((cid_path, ""));
        let root = shoal_store::parse_cid(cid_text)?;
        self.ensure(&root).await?;
        let target = if path.is_empty() {
            root
        } else {
            shoal_store::export::resolve(&self.store, &root, path)?
        };
        shoal_store::export::export(&self.store, &target, dest)?;
        Ok(dest.to_path_buf())
    }
}
