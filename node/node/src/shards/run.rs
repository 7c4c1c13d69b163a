//! Running a batch of a sharded job: each shard once, its results imported into the
//! blockstore and recorded before the next, so a restarted node runs only the shards it has
//! not; then the batch's leaves document and the merged result folder.

use std::sync::Arc;

use futures::StreamExt;
use shoal_api::JobId;
use shoal_api::shard::{LeavesDoc, ShardResult};
use shoal_store::{Cid, Importer, Profile, StoreSink};
use shoal_types::{JobSpec, Manifest, batch_range};

use crate::compute::execute::run_spec;
use crate::error::{Error, Result};
use crate::node::Node;

/// The random seed of shard `shard` of `job`: the job id's low 64 bits plus the shard index,
/// the same on every node.
fn seed(job: JobId, shard: u32) -> u64 {
    job.as_u256().as_limbs()[0].wrapping_add(u64::from(shard))
}

/// Runs the shards of batch `batch` (of `size` shards) not run yet, at most
/// `executor.max_parallel` at once, and returns the batch's leaves document.
pub(crate) async fn run_batch(
    node: &Arc<Node>,
    job: JobId,
    spec: &JobSpec,
    manifest: &Manifest,
    batch: u32,
    size: u32,
) -> Result<LeavesDoc> {
    let range = batch_range(batch, size, manifest.shards.len() as u32);
    let parallel = node.cfg.executor.max_parallel.max(1);
    let results: Vec<Result<ShardResult>> = futures::stream::iter(range)
        .map(|i| run_shard(node, job, spec, manifest, i))
        .buffered(parallel)
        .collect()
        .await;
    let shards = results.into_iter().collect::<Result<Vec<_>>>()?;
    Ok(LeavesDoc { job, batch, shards })
}

/// Runs one shard unless its result is recorded; its results folder is imported (pinned) so
/// that anyone checking the batch can fetch it.
async fn run_shard(
    node: &Arc<Node>,
    job: JobId,
    spec: &JobSpec,
    manifest: &Manifest,
    shard: u32,
) -> Result<ShardResult> {
    if let Some(cid) = node.db.shard_result(job, shard)? {
        return Ok(ShardResult {
            index: shard,
            result_cid: cid,
        });
    }
    let shard_spec = spec.for_shard(manifest, shard)?;
    let name = format!("shard-{job}-{shard}");
    let (cid, dir, _) = run_spec(node, &shard_spec, &name, seed(job, shard), || Ok(())).await?;
    let store = node.content.store.clone();
    let imported = tokio::task::spawn_blocking(move || {
        let imported = store.add_path(&dir, Profile::UnixfsV1_2025);
        if let Err(e) = shoal_store::paths::remove_tree(&dir) {
            tracing::warn!(folder = %dir.display(), error = %e, "cannot remove a shard's results folder");
        }
        imported
    })
    .await
    .map_err(|e| Error::Content {
        cid: format!("results of shard {shard} of sharded job {job}"),
        reason: format!("importing the results was interrupted: {e}"),
    })??;
    if imported.cid != cid {
        return Err(Error::Content {
            cid: format!("results of shard {shard} of sharded job {job}"),
            reason: format!(
                "the results folder changed after the run ({cid} became {})",
                imported.cid
            ),
        });
    }
    node.db.put_shard_result(job, shard, &cid.to_string())?;
    Ok(ShardResult {
        index: shard,
        result_cid: cid.to_string(),
    })
}

/// The merged result of a sharded job: one folder, `shard-000000` … → each shard's results,
/// from the verified leaves documents of every batch (fetched first if missing here). Anyone
/// builds the same CID from the same documents.
pub(crate) async fn merged_result(node: &Arc<Node>, docs: &[LeavesDoc]) -> Result<Cid> {
    let mut roots = Vec::new();
    for d in docs {
        for s in &d.shards {
            let cid = shoal_store::parse_cid(&s.result_cid)?;
            node.content.ensure(&cid).await?;
            roots.push((s.index, cid));
        }
    }
    let store = node.content.store.clone();
    tokio::task::spawn_blocking(move || -> Result<Cid> {
        let mut entries = Vec::with_capacity(roots.len());
        for (index, cid) in roots {
            let imported = shoal_store::export::imported_of(&store, &cid)?;
            entries.push((shard_name(index), imported, false));
        }
        let mut sink = StoreSink(&store);
        let dir = Importer::new(Profile::UnixfsV1_2025, &mut sink).directory(entries)?;
        store.pin(&dir.cid)?;
        Ok(dir.cid)
    })
    .await
    .map_err(|e| Error::Content {
        cid: "merged result".into(),
        reason: format!("building the merged result was interrupted: {e}"),
    })?
}

pub use shoal_api::shard::shard_name;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::Kit;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_runs_each_shard_once_and_the_merged_result_is_a_plain_folder() {
        let kit = Kit::start(|_| {}).await;
        let node = kit.node.inner().clone();
        let wasm = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../executor/testdata/wasm/wordcount.wasm"
        );
        let module = kit.upload(std::fs::read(wasm).expect("wordcount")).await;
        let dir = tempfile::tempdir().expect("tmp");
        let tree = dir.path().join("tree");
        std::fs::create_dir_all(&tree).expect("mkdir");
        let mut files = Vec::new();
        for i in 0..5 {
            let body = "word ".repeat(i + 1);
            std::fs::write(tree.join(format!("f{i}.txt")), &body).expect("write");
            let cid = node.content.add_bytes(body.as_bytes()).expect("add");
            files.push((
                format!("/inputs/f{i}.txt"),
                cid.to_string(),
                body.len() as u64,
            ));
        }
        let root = node
            .content
            .store
            .add_path(&tree, Profile::UnixfsV1_2025)
            .expect("tree")
            .cid;
        let manifest =
            Manifest::from_files(&root.to_string(), "/inputs", "/inputs/*.txt", files).expect("m");
        let spec = JobSpec::from_yaml(&format!(
            "engine:\n  wasm:\n    module: ipfs://{module}\n    args: [\"/inputs\"]\ninputs:\n  - source: ipfs://{root}\n    path: /inputs\nshards:\n  glob: /inputs/*.txt\n  size: 3\n"
        ))
        .expect("spec");
        let job = JobId::from(77u64);
        let b0 = run_batch(&node, job, &spec, &manifest, 0, 3)
            .await
            .expect("batch 0");
        assert_eq!(
            b0.shards.iter().map(|s| s.index).collect::<Vec<_>>(),
            [0, 1, 2]
        );
        let b1 = run_batch(&node, job, &spec, &manifest, 1, 3)
            .await
            .expect("batch 1");
        assert_eq!(b1.shards.len(), 2);
        // Each shard saw only its own file: different inputs, different results.
        assert_ne!(b0.shards[0].result_cid, b0.shards[1].result_cid);
        // Again: recorded, not re-run (a removed results folder would fail the import).
        let again = run_batch(&node, job, &spec, &manifest, 0, 3)
            .await
            .expect("again");
        assert_eq!(again, b0);
        assert_eq!(again.root().expect("root"), b0.root().expect("root"));
        // The merged result equals the same folders exported and imported from disk.
        let merged = merged_result(&node, &[b0.clone(), b1.clone()])
            .await
            .expect("merged");
        let out = dir.path().join("merged");
        std::fs::create_dir_all(&out).expect("mkdir");
        for s in b0.shards.iter().chain(&b1.shards) {
            let cid = shoal_store::parse_cid(&s.result_cid).expect("cid");
            shoal_store::export::export(&node.content.store, &cid, &out.join(shard_name(s.index)))
                .expect("export");
        }
        assert_eq!(
            merged,
            shoal_store::hash_path(&out, Profile::UnixfsV1_2025).expect("hash")
        );
        let stdout = std::fs::read_to_string(out.join("shard-000001/stdout")).expect("stdout");
        assert!(
            stdout.contains('2'),
            "shard 1 counts its own file's two words: {stdout}"
        );
        kit.stop().await;
    }
}
