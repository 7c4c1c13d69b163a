//! A job's spec and data: the spec checked against its on-chain hash, and the module and
//! inputs put in the job's work folder by the store's storage providers (`ipfs` through this
//! node's content — store, Bitswap, peers —, `url` with a size cap, retries and checksum,
//! `file` from `executor.file_allow`, `inline`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use alloy::primitives::keccak256;
use async_trait::async_trait;
use shoal_api::JobView;
use shoal_store::providers::{FileProvider, HttpProvider, InlineProvider};
use shoal_store::{Providers, StorageProvider};
use shoal_types::{InputSource, InputSpec, JobSpec};

use crate::config::NodeConfig;
use crate::content::Content;
use crate::error::{Error, Result};

/// Longest wait for one download.
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(60);
/// Retries of a download that failed for a reason worth retrying.
const DOWNLOAD_RETRIES: u32 = 2;

/// Fetches the spec by CID and checks it against the on-chain spec hash.
pub(crate) async fn load_spec(content: &Content, job: &JobView) -> Result<JobSpec> {
    let bytes = fetch_checked(content, &job.params.spec_cid, job.params.spec_hash, "spec").await?;
    Ok(JobSpec::from_canonical_json(&bytes)?)
}

/// A document (a spec, a shard manifest) by CID, from here or the network, whose keccak256
/// must be the `what` hash posted on chain.
pub(crate) async fn fetch_checked(
    content: &Content,
    cid: &str,
    posted: alloy::primitives::B256,
    what: &str,
) -> Result<Vec<u8>> {
    let cid = shoal_store::parse_cid(cid)?;
    content.ensure(&cid).await?;
    let bytes = content.read_file(&cid)?;
    let hash = keccak256(&bytes);
    if hash != posted {
        return Err(Error::Content {
            cid: cid.to_string(),
            reason: format!(
                "its keccak256 {hash} is not the {what} hash {posted} posted on chain; the creator posted a wrong {what} CID or hash"
            ),
        });
    }
    Ok(bytes)
}

/// `ipfs://CID[/path]` from this node's content: its store, else the swarm, else its peers.
struct ContentProvider(Content);

#[async_trait]
impl StorageProvider for ContentProvider {
    fn name(&self) -> &'static str {
        "ipfs"
    }

    async fn provide(&self, input: &InputSpec, dest: &Path) -> shoal_store::Result<()> {
        let InputSource::Ipfs(s) = &input.source else {
            return Err(shoal_store::Error::Input {
                what: input.source.to_string(),
                reason: "not an ipfs:// source".into(),
            });
        };
        self.0
            .export_to(s, dest)
            .await
            .map(|_| ())
            .map_err(|e| shoal_store::Error::Input {
                what: input.source.to_string(),
                reason: e.to_string(),
            })
    }
}

/// The storage providers of a node with `cfg` and `content`.
pub(crate) fn providers(cfg: &NodeConfig, content: &Content) -> Providers {
    let mut p = Providers::new();
    p.register(Box::new(ContentProvider(content.clone())))
        .register(Box::new(HttpProvider::new(
            cfg.executor.max_download_bytes,
            DOWNLOAD_TIMEOUT,
            DOWNLOAD_RETRIES,
        )))
        .register(Box::new(FileProvider {
            allow: cfg.executor.file_allow.clone(),
        }))
        .register(Box::new(InlineProvider));
    p
}

/// Puts `input` at its path inside `work` (read-only); the host path. A failure is an
/// [`Error::Input`]: the data may be there later (a peer restarting), so the caller retries.
pub(crate) async fn mount(
    providers: &Providers,
    input: &InputSpec,
    work: &Path,
) -> Result<PathBuf> {
    providers
        .mount(input, work)
        .await
        .map_err(|e| Error::Input {
            source_uri: input.source.to_string(),
            reason: e.to_string(),
        })
}

/// The WASM module's bytes, through the same providers (put in `scratch` first).
pub(crate) async fn module_bytes(
    providers: &Providers,
    source: &InputSource,
    scratch: &Path,
) -> Result<Arc<[u8]>> {
    if let InputSource::Inline(b) = source {
        return Ok(Arc::from(b.as_slice()));
    }
    let spec = InputSpec {
        source: source.clone(),
        path: "/module.wasm".into(),
        checksum: None,
    };
    let path = mount(providers, &spec, scratch).await?;
    let bytes = std::fs::read(&path).map_err(|e| Error::io("reading", &path, e))?;
    Ok(Arc::from(bytes))
}
