//! Sharded jobs on the client (docs/sharding.md): the input tree is walked once, here, into
//! the shard manifest the nodes work from.

use shoal_store::{Blockstore, Cid};
use shoal_types::{JobSpec, Manifest};

use crate::api::NodeApi;
use crate::error::{Error, Result};

use shoal_store::export;
pub use shoal_store::export::tree_files;

/// The manifest of a glob-sharded spec whose tree input is `ipfs://` content: the folder's
/// blocks are fetched from `api` once (every block verified) and walked here.
pub async fn build_manifest(api: &NodeApi, spec: &JobSpec) -> Result<Manifest> {
    let rule = spec
        .shards
        .as_ref()
        .ok_or_else(|| Error::Shards("the spec has no `shards` section".into()))?;
    let glob = rule.glob.as_deref().ok_or_else(|| {
        Error::Shards("the spec names a manifest; there is nothing to build".into())
    })?;
    let input = spec.shard_input().ok_or_else(|| {
        Error::Shards(format!(
            "shards.glob `{glob}` is not under the path of any input"
        ))
    })?;
    let shoal_types::InputSource::Ipfs(root) = &input.source else {
        return Err(Error::Shards(format!(
            "the sharded input at {} must be ipfs:// content (upload a local folder first)",
            input.path
        )));
    };
    let root_cid = shoal_store::parse_cid(root)?;
    let car = api.content_car(root).await?;
    let mount = input.path.clone();
    let glob = glob.to_owned();
    let root = root.clone();
    tokio::task::spawn_blocking(move || -> Result<Manifest> {
        let tmp = crate::client::tempdir()?;
        let store = Blockstore::open(tmp.path())?;
        shoal_store::car::import_car(&store, &mut &car[..])?;
        let files = tree_files(&store, &root_cid, &mount)?;
        Ok(Manifest::from_files(&root, &mount, &glob, files)?)
    })
    .await
    .map_err(|e| Error::Shards(format!("walking the input tree was interrupted: {e}")))?
}

/// A posted sharded job.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PostedShards {
    /// The sharded job's id (ShardMarket ids are their own sequence).
    pub job_id: shoal_chain::JobId,
    /// CID of the canonical spec.
    pub spec_cid: String,
    /// CID of the manifest.
    pub manifest_cid: String,
    /// Shards in the manifest.
    pub shards: u32,
    /// Batches they make.
    pub batches: u32,
    /// The post transaction.
    pub tx: String,
    /// Escrow paid, wei: shards × concurrency × max price.
    pub escrow: String,
}

impl crate::Client {
    /// The manifest of a sharded spec: the one it names (`shards.manifest`), or the one its
    /// glob makes of its input tree.
    pub async fn manifest_of(&self, spec: &JobSpec) -> Result<Manifest> {
        let rule = spec
            .shards
            .as_ref()
            .ok_or_else(|| Error::Shards("the spec has no `shards` section".into()))?;
        match &rule.manifest {
            Some(m) => {
                let cid = m.trim_start_matches("ipfs://");
                Ok(Manifest::from_json(&self.api().content(cid).await?)?)
            }
            None => build_manifest(self.api(), spec).await,
        }
    }

    /// Builds the manifest of a sharded spec (walking its input tree once, through the node),
    /// uploads the manifest and the spec, and posts the job on the ShardMarket, paying
    /// `shards × concurrency × deal.max_price`.
    pub async fn post_sharded(&self, spec: &JobSpec) -> Result<PostedShards> {
        spec.validate()?;
        let rule = spec
            .shards
            .as_ref()
            .ok_or_else(|| Error::Shards("the spec has no `shards` section".into()))?;
        let manifest = self.manifest_of(spec).await?;
        let shards = manifest.shards.len() as u32;
        let batches = manifest.batch_count(rule.size);
        if batches > shoal_types::shard::MAX_BATCHES {
            return Err(Error::Shards(format!(
                "{shards} shards in batches of {} make {batches} batches; the market takes at most {}: raise shards.size",
                rule.size,
                shoal_types::shard::MAX_BATCHES
            )));
        }
        let escrow = shoal_chain::U256::from(shards)
            * shoal_chain::U256::from(spec.deal.concurrency)
            * shoal_chain::U256::from(spec.deal.max_price);
        let me = self.address()?;
        let balance = self
            .chain()
            .balance(me)
            .await
            .map_err(|e| Error::Chain(e.to_string()))?;
        if balance <= escrow {
            return Err(Error::NoFunds {
                address: me,
                balance,
                action: "posting this sharded job".into(),
                needed: escrow,
            });
        }
        let manifest_json = manifest.to_canonical_json();
        let manifest_cid =
            shoal_store::parse_cid(&self.api().upload_bytes(manifest_json.clone()).await?)?;
        let spec_cid =
            shoal_store::parse_cid(&self.api().upload_bytes(spec.to_canonical_json()).await?)?;
        let params = shoal_chain::shard_job_params(
            spec,
            spec_cid.to_bytes(),
            &manifest_json,
            manifest_cid.to_bytes(),
            shards,
        );
        let (id, receipt) = self
            .chain()
            .post_sharded_job(params)
            .await
            .map_err(|e| Error::Chain(e.to_string()))?;
        Ok(PostedShards {
            job_id: id,
            spec_cid: spec_cid.to_string(),
            manifest_cid: manifest_cid.to_string(),
            shards,
            batches,
            tx: receipt.transaction_hash.to_string(),
            escrow: escrow.to_string(),
        })
    }

    /// Waits until the sharded job is Done (or Expired), calling `progress` with each new view.
    pub async fn wait_sharded(
        &self,
        id: shoal_chain::JobId,
        timeout: std::time::Duration,
        mut progress: impl FnMut(&shoal_api::shard::ShardJobView),
    ) -> Result<shoal_api::shard::ShardJobView> {
        let deadline = std::time::Instant::now() + timeout;
        let mut last: Option<(String, u16, u16)> = None;
        loop {
            let v = self.api().shard_job(id).await?;
            let now = (v.state.clone(), v.verified, v.failed);
            if last.as_ref() != Some(&now) {
                progress(&v);
                last = Some(now);
            }
            if v.state == "Done" || v.state == "Expired" {
                return Ok(v);
            }
            if std::time::Instant::now() >= deadline {
                return Err(Error::Shards(format!(
                    "sharded job {id} is still {} after {}s ({} of {} batches verified); see it with `shoal job shards {id}`",
                    v.state,
                    timeout.as_secs(),
                    v.verified,
                    v.batches.len()
                )));
            }
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
    }
}

/// What `download_shards` wrote.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ShardDownload {
    /// The CID written: the merged folder, or the one shard's results folder.
    pub cid: String,
    /// Shards written (verified ones; a failed batch's shards are not in the merged folder).
    pub shards: u32,
    /// Batches that failed.
    pub failed_batches: Vec<u32>,
}

impl crate::Client {
    /// Downloads the verified results of a Done sharded job into `dest`: every verified shard
    /// (the merged folder, `shard-000042/…` per shard) or only shard `shard`. Nothing is taken
    /// on trust from the node: each batch's leaves document must hash to the root the chain
    /// verified, the blocks are checked against their CIDs, and each shard's folder must be
    /// the result CID its verified leaf names.
    pub async fn download_shards(
        &self,
        id: shoal_chain::JobId,
        shard: Option<u32>,
        dest: &std::path::Path,
    ) -> Result<ShardDownload> {
        let chain = self.chain();
        let err = |e: shoal_chain::Error| Error::Shards(e.to_string());
        let job = chain.get_shard_job(id).await.map_err(err)?;
        if job.state != shoal_chain::ShardJobState::Done {
            return Err(Error::Shards(format!(
                "sharded job {id} is {:?}; its results can be downloaded once it is Done (`shoal job shards {id}`)",
                job.state
            )));
        }
        let size = u32::from(job.batchSize).max(1);
        let reveals = chain.batch_reveals(id).await.map_err(err)?;
        // Read only when a batch was settled per shard (one log query).
        let mut per_shard = None;
        let batches: Vec<u32> = match shard {
            Some(i) if i >= job.shardCount => {
                return Err(Error::Shards(format!(
                    "sharded job {id} has {} shards (0 to {}); there is no shard {i}",
                    job.shardCount,
                    job.shardCount.saturating_sub(1)
                )));
            }
            Some(i) => vec![i / size],
            None => (0..u32::from(job.batchCount)).collect(),
        };
        // The verified result CID of every shard asked for, from leaves documents checked
        // against the chain's roots.
        let mut want: Vec<(u32, Cid)> = Vec::new();
        let mut failed = Vec::new();
        for b in batches {
            let x = chain.get_batch(id, b).await.map_err(err)?;
            if x.state == shoal_chain::BatchState::SettledPerShard {
                // Settled shard by shard: the accepted result hash of each shard is on chain
                // (zero for a shard that failed).
                if per_shard.is_none() {
                    per_shard = Some(chain.per_shard_results(id).await.map_err(err)?);
                }
                let accepted = per_shard
                    .as_ref()
                    .and_then(|m| m.get(&b))
                    .cloned()
                    .unwrap_or_default();
                for (i, h) in accepted.iter().enumerate().filter(|(_, h)| !h.is_zero()) {
                    let index = b * size + i as u32;
                    if shard.is_none_or(|s| s == index) {
                        let cid = shoal_api::results_cid_of(*h)
                            .map_err(|e| Error::Shards(e.to_string()))?;
                        want.push((index, cid));
                    }
                }
                continue;
            }
            if x.state != shoal_chain::BatchState::Verified {
                if shard.is_some() {
                    return Err(Error::Shards(format!(
                        "batch {b} of sharded job {id} is {:?}: its shards have no verified result",
                        x.state
                    )));
                }
                failed.push(b);
                continue;
            }
            let doc = self.verified_leaves(id, b, x.root, &reveals).await?;
            for s in doc.shards {
                if shard.is_none_or(|i| i == s.index) {
                    let cid: Cid = s.result_cid.parse().map_err(|e| {
                        Error::Shards(format!(
                            "leaves of batch {b}: bad CID {}: {e}",
                            s.result_cid
                        ))
                    })?;
                    want.push((s.index, cid));
                }
            }
        }
        let root = match shard {
            Some(_) => want.first().map(|(_, c)| *c).ok_or_else(|| {
                Error::Shards(format!("no verified leaf names that shard of job {id}"))
            })?,
            None => self
                .api()
                .merged_result(id)
                .await?
                .cid
                .parse()
                .map_err(|e| {
                    Error::Shards(format!("the node's merged result CID does not parse: {e}"))
                })?,
        };
        let car = self.api().content_car(&root.to_string()).await?;
        let dest = dest.to_path_buf();
        let count = want.len() as u32;
        tokio::task::spawn_blocking(move || -> Result<()> {
            let tmp = crate::client::tempdir()?;
            let store = Blockstore::open(tmp.path())?;
            shoal_store::car::import_car(&store, &mut &car[..])?;
            store.dag(&root).map_err(|e| {
                Error::Shards(format!("the node's CAR does not hold all of {root}: {e}"))
            })?;
            if shard.is_none() {
                // The merged folder holds exactly the verified shards, each its verified CID.
                let entries = export::list_dir(&store, &root)?;
                let expected: Vec<(String, Cid)> = want
                    .iter()
                    .map(|(i, c)| (shoal_api::shard::shard_name(*i), *c))
                    .collect();
                let mut got = entries.clone();
                got.sort();
                let mut exp = expected.clone();
                exp.sort();
                if got != exp {
                    return Err(Error::Shards(format!(
                        "the merged folder {root} does not match the verified leaves ({} entries, {} verified shards)",
                        entries.len(),
                        expected.len()
                    )));
                }
            }
            export::export(&store, &root, &dest)?;
            Ok(())
        })
        .await
        .map_err(|e| Error::Shards(format!("writing the results was interrupted: {e}")))??;
        Ok(ShardDownload {
            cid: root.to_string(),
            shards: count,
            failed_batches: failed,
        })
    }

    /// A revealed leaves document of `batch` whose leaves give the verified `root`.
    async fn verified_leaves(
        &self,
        id: shoal_chain::JobId,
        batch: u32,
        root: shoal_chain::B256,
        reveals: &[shoal_chain::BatchReveal],
    ) -> Result<shoal_api::shard::LeavesDoc> {
        let mut last = String::from("no operator revealed the verified root");
        for r in reveals
            .iter()
            .filter(|r| r.batch == batch && r.root == root)
        {
            let Ok(cid) = shoal_api::cid_from_chain_bytes(&r.leaves_cid) else {
                continue;
            };
            let doc = match self.api().content(&cid.to_string()).await {
                Ok(bytes) => serde_json::from_slice::<shoal_api::shard::LeavesDoc>(&bytes)
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            match doc {
                Ok(d) if d.job == id && d.batch == batch && d.root().is_ok_and(|x| x == root) => {
                    return Ok(d);
                }
                Ok(_) => {
                    last = format!("the leaves document {cid} does not give the verified root")
                }
                Err(e) => last = e,
            }
        }
        Err(Error::Shards(format!(
            "batch {batch} of sharded job {id}: {last}"
        )))
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tree_walks_into_a_sorted_manifest_of_the_matching_files() {
        let dir = tempfile::tempdir().expect("tmp");
        let tree = dir.path().join("tree");
        std::fs::create_dir_all(tree.join("sub")).expect("mkdir");
        for (p, body) in [
            ("b.txt", "bb"),
            ("a.txt", "a"),
            ("sub/c.txt", "ccc"),
            ("x.bin", "x"),
        ] {
            std::fs::write(tree.join(p), body).expect("write");
        }
        let store = Blockstore::open(dir.path().join("store")).expect("store");
        let root = store
            .add_path(&tree, shoal_store::Profile::UnixfsV1_2025)
            .expect("add")
            .cid;
        let files = tree_files(&store, &root, "/inputs/").expect("walk");
        assert_eq!(files.len(), 4);
        let m = Manifest::from_files(&root.to_string(), "/inputs", "/inputs/**/*.txt", files)
            .expect("manifest");
        let paths: Vec<&str> = m.shards.iter().map(|s| s.path.as_str()).collect();
        assert_eq!(
            paths,
            ["/inputs/a.txt", "/inputs/b.txt", "/inputs/sub/c.txt"]
        );
        assert_eq!(m.shards[2].size, 3);
        let a =
            shoal_store::hash_reader(&b"a"[..], shoal_store::Profile::UnixfsV1_2025).expect("hash");
        assert_eq!(m.shards[0].cid, a.to_string());
    }
}
