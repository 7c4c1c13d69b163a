//! Storage providers: how a job's inputs get into its work folder. One per
//! source kind (`ipfs`, `url`, `file`, `inline`), looked up by name.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use async_trait::async_trait;
use cid::Cid;
use futures::StreamExt;
use sha2::{Digest, Sha256};
use shoal_types::{InputSource, InputSpec};
use tokio::io::AsyncWriteExt;

use crate::{
    Blockstore, Error, Result,
    blockstore::links_of,
    error::IoContext,
    export, parse_cid,
    paths::{allowed_file, copy_tree, job_path, make_read_only},
};

/// Gets blocks from other nodes (Bitswap in `shoal-p2p`).
#[async_trait]
pub trait BlockFetcher: Send + Sync {
    /// One block's bytes, not yet verified. Implementations should give up
    /// after their own bounded wait.
    async fn fetch_block(&self, cid: &Cid) -> Result<Vec<u8>>;
}

/// Blocks requested from peers at once by [`fetch_dag`].
const FETCH_CONCURRENCY: usize = 32;

/// Makes sure every block of the DAG under `root` is in `store`, fetching
/// missing ones through `fetcher` (up to 32 at once), each within
/// `timeout`. Blocks are verified before they are stored. Returns how many
/// blocks came from peers.
pub async fn fetch_dag(
    store: &Arc<Blockstore>,
    fetcher: &dyn BlockFetcher,
    root: &Cid,
    timeout: Duration,
) -> Result<u64> {
    let mut frontier = vec![*root];
    let mut seen = std::collections::HashSet::new();
    let mut fetched = 0;
    while !frontier.is_empty() {
        let batch: Vec<Cid> = frontier
            .drain(..frontier.len().min(FETCH_CONCURRENCY))
            .filter(|c| seen.insert(*c))
            .collect();
        let results = futures::future::join_all(batch.into_iter().map(|cid| async move {
            match store.get(&cid) {
                Ok(d) => Ok((cid, d, false)),
                Err(Error::NotFound { .. } | Error::Corrupt { .. }) => {
                    let data = tokio::time::timeout(timeout, fetcher.fetch_block(&cid))
                        .await
                        .map_err(|_| Error::FetchTimeout {
                            cid: Box::new(cid),
                            secs: timeout.as_secs(),
                        })??;
                    store.put(&cid, &data)?;
                    Ok((cid, data, true))
                }
                Err(e) => Err(e),
            }
        }))
        .await;
        for r in results {
            let (cid, data, from_peer) = r?;
            fetched += u64::from(from_peer);
            frontier.extend(links_of(&cid, &data)?);
        }
    }
    Ok(fetched)
}

/// Puts one input at its place in a job's work folder.
#[async_trait]
pub trait StorageProvider: Send + Sync {
    /// The registry name: `ipfs`, `url`, `file` or `inline`.
    fn name(&self) -> &'static str;
    /// Writes the input's content at `dest` (a host path that does not exist yet).
    async fn provide(&self, input: &InputSpec, dest: &Path) -> Result<()>;
}

/// The boxed form kept in registries.
pub type BoxedProvider = Box<dyn StorageProvider>;

/// The provider name a source needs.
pub fn provider_name(source: &InputSource) -> &'static str {
    match source {
        InputSource::Ipfs(_) => "ipfs",
        InputSource::Url(_) => "url",
        InputSource::File(_) => "file",
        InputSource::Inline(_) => "inline",
    }
}

/// Storage providers keyed by name.
#[derive(Default)]
pub struct Providers {
    by_name: BTreeMap<&'static str, BoxedProvider>,
}

impl Providers {
    pub fn new() -> Self {
        Self::default()
    }
    /// Adds (or replaces) a provider under its name.
    pub fn register(&mut self, p: BoxedProvider) -> &mut Self {
        self.by_name.insert(p.name(), p);
        self
    }
    pub fn get(&self, name: &str) -> Option<&dyn StorageProvider> {
        self.by_name.get(name).map(|b| b.as_ref())
    }
    /// Places `input` inside `work` at the job path it names, read-only.
    /// Returns the host path.
    pub async fn mount(&self, input: &InputSpec, work: &Path) -> Result<PathBuf> {
        let name = provider_name(&input.source);
        let p = self
            .get(name)
            .ok_or_else(|| Error::NoProvider(name.into()))?;
        let dest = job_path(work, &input.path)?;
        if tokio::fs::symlink_metadata(&dest).await.is_ok() {
            return Err(Error::BadPath {
                path: dest,
                reason: "two inputs name the same job path".into(),
            });
        }
        if let Some(parent) = dest.parent() {
            tokio::fs::create_dir_all(parent).await.at(parent)?;
        }
        p.provide(input, &dest).await?;
        let d = dest.clone();
        tokio::task::spawn_blocking(move || make_read_only(&d))
            .await
            .map_err(join_err)??;
        Ok(dest)
    }
}

fn join_err(e: tokio::task::JoinError) -> Error {
    Error::Input {
        what: "background task".into(),
        reason: e.to_string(),
    }
}

/// `ipfs://CID[/path]`: from the node's store, else from peers.
pub struct IpfsProvider {
    pub store: Arc<Blockstore>,
    pub fetcher: Option<Arc<dyn BlockFetcher>>,
    /// Bounded wait per missing block.
    pub timeout: Duration,
}

#[async_trait]
impl StorageProvider for IpfsProvider {
    fn name(&self) -> &'static str {
        "ipfs"
    }
    async fn provide(&self, input: &InputSpec, dest: &Path) -> Result<()> {
        let InputSource::Ipfs(s) = &input.source else {
            return Err(Error::Input {
                what: input.source.to_string(),
                reason: "not an ipfs:// source".into(),
            });
        };
        let (root, sub) = s.split_once('/').unwrap_or((s.as_str(), ""));
        let root = parse_cid(root)?;
        if let Some(f) = &self.fetcher {
            fetch_dag(&self.store, f.as_ref(), &root, self.timeout).await?;
        }
        let (store, sub, dest) = (self.store.clone(), sub.to_owned(), dest.to_path_buf());
        tokio::task::spawn_blocking(move || {
            let target = export::resolve(&store, &root, &sub)?;
            export::export(&store, &target, &dest)
        })
        .await
        .map_err(join_err)?
    }
}

/// `http(s)://`: a download with a size cap, a timeout, retries and an
/// optional `sha256:HEX` checksum.
pub struct HttpProvider {
    pub client: reqwest::Client,
    pub max_bytes: u64,
    pub timeout: Duration,
    pub retries: u32,
}

impl HttpProvider {
    pub fn new(max_bytes: u64, timeout: Duration, retries: u32) -> Self {
        Self {
            client: reqwest::Client::new(),
            max_bytes,
            timeout,
            retries,
        }
    }

    async fn attempt(&self, url: &str, dest: &Path) -> Result<String, (bool, Error)> {
        let err = |retry: bool, reason: String| {
            (
                retry,
                Error::Download {
                    url: url.to_owned(),
                    reason,
                },
            )
        };
        let resp = self
            .client
            .get(url)
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| err(true, e.to_string()))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(err(status.is_server_error(), format!("HTTP {status}")));
        }
        if resp.content_length().is_some_and(|n| n > self.max_bytes) {
            return Err((
                false,
                Error::TooLarge {
                    url: url.to_owned(),
                    cap: self.max_bytes,
                },
            ));
        }
        let mut file = tokio::fs::File::create(dest).await.map_err(|e| {
            (
                false,
                Error::Io {
                    path: dest.into(),
                    source: e,
                },
            )
        })?;
        let mut hasher = Sha256::new();
        let mut total = 0u64;
        let mut body = resp.bytes_stream();
        let deadline = tokio::time::Instant::now() + self.timeout;
        loop {
            let next = tokio::time::timeout_at(deadline, body.next())
                .await
                .map_err(|_| err(true, "timed out".into()))?;
            let Some(chunk) = next else { break };
            let chunk = chunk.map_err(|e| err(true, e.to_string()))?;
            total += chunk.len() as u64;
            if total > self.max_bytes {
                return Err((
                    false,
                    Error::TooLarge {
                        url: url.to_owned(),
                        cap: self.max_bytes,
                    },
                ));
            }
            hasher.update(&chunk);
            file.write_all(&chunk).await.map_err(|e| {
                (
                    false,
                    Error::Io {
                        path: dest.into(),
                        source: e,
                    },
                )
            })?;
        }
        file.flush().await.map_err(|e| {
            (
                false,
                Error::Io {
                    path: dest.into(),
                    source: e,
                },
            )
        })?;
        Ok(hex::encode(hasher.finalize()))
    }
}

#[async_trait]
impl StorageProvider for HttpProvider {
    fn name(&self) -> &'static str {
        "url"
    }
    async fn provide(&self, input: &InputSpec, dest: &Path) -> Result<()> {
        let InputSource::Url(url) = &input.source else {
            return Err(Error::Input {
                what: input.source.to_string(),
                reason: "not an http(s) source".into(),
            });
        };
        let want = match &input.checksum {
            None => None,
            Some(c) => Some(
                c.strip_prefix("sha256:")
                    .map(str::to_ascii_lowercase)
                    .ok_or_else(|| Error::Input {
                        what: url.clone(),
                        reason: format!("checksum {c:?} must look like `sha256:HEX`"),
                    })?,
            ),
        };
        let mut attempt = 0;
        let got = loop {
            match self.attempt(url, dest).await {
                Ok(h) => break h,
                Err((retry, e)) => {
                    let _ = tokio::fs::remove_file(dest).await;
                    if !retry || attempt >= self.retries {
                        return Err(e);
                    }
                    attempt += 1;
                    tracing::warn!(%url, attempt, error = %e, "download failed, retrying");
                    tokio::time::sleep(Duration::from_millis(200 << attempt.min(5))).await;
                }
            }
        };
        if let Some(want) = want
            && want != got
        {
            let _ = tokio::fs::remove_file(dest).await;
            return Err(Error::Checksum {
                what: url.clone(),
                expected: format!("sha256:{want}"),
                actual: format!("sha256:{got}"),
            });
        }
        Ok(())
    }
}

/// `file:///…`: a copy of a file or folder from the allow-listed folders.
pub struct FileProvider {
    pub allow: Vec<PathBuf>,
}

#[async_trait]
impl StorageProvider for FileProvider {
    fn name(&self) -> &'static str {
        "file"
    }
    async fn provide(&self, input: &InputSpec, dest: &Path) -> Result<()> {
        let InputSource::File(p) = &input.source else {
            return Err(Error::Input {
                what: input.source.to_string(),
                reason: "not a file:// source".into(),
            });
        };
        let (allow, src, dest) = (self.allow.clone(), PathBuf::from(p), dest.to_path_buf());
        tokio::task::spawn_blocking(move || {
            let real = allowed_file(&allow, &src)?;
            copy_tree(&real, &dest).map(|_| ())
        })
        .await
        .map_err(join_err)?
    }
}

/// Inline bytes from the spec.
pub struct InlineProvider;

#[async_trait]
impl StorageProvider for InlineProvider {
    fn name(&self) -> &'static str {
        "inline"
    }
    async fn provide(&self, input: &InputSpec, dest: &Path) -> Result<()> {
        let InputSource::Inline(bytes) = &input.source else {
            return Err(Error::Input {
                what: input.source.to_string(),
                reason: "not an inline source".into(),
            });
        };
        tokio::fs::write(dest, bytes).await.at(dest)
    }
}
