//! Checking a pipeline stage before bidding on it (docs/pipelines.md, "What the nodes check").
//!
//! The PipelineMarket cannot read IPFS, so whoever advances a pipeline supplies the next
//! stage's spec (and a sharded stage's manifest). A node bids on such a job only when the
//! spec is the stage's template applied to the previous stage's verified result, by the same
//! rule the client used (`shoal_types::pipeline`), and the manifest lists exactly the files
//! the template's glob and the previous stage's selection give. Anything else is declined with
//! the reason, so a stage started with wrong inputs expires and its escrow returns to the
//! pipeline's creator.

use std::sync::Arc;

use shoal_chain::JobId;
use shoal_store::export;
use shoal_types::pipeline::{Stage, select, selected_paths};
use shoal_types::{InputSource, JobSpec, Manifest};

use crate::node::Node;

/// Why this node must not bid on job `job` (`sharded`: a ShardMarket job), if it is a stage
/// of a pipeline that was not derived from its template and the previous stage's verified
/// result. `manifest`: a sharded job's manifest and its CID.
pub(crate) async fn check_stage(
    node: &Arc<Node>,
    job: JobId,
    sharded: bool,
    spec: &JobSpec,
    manifest: Option<(&Manifest, &str)>,
) -> Option<String> {
    match stage_problem(node, job, sharded, spec, manifest).await {
        Ok(problem) => problem,
        Err(e) => Some(format!(
            "cannot check the pipeline stage this job runs: {e}"
        )),
    }
}

async fn stage_problem(
    node: &Arc<Node>,
    job: JobId,
    sharded: bool,
    spec: &JobSpec,
    manifest: Option<(&Manifest, &str)>,
) -> Result<Option<String>, String> {
    let chain = node.chain.client();
    let Some((pipeline, index)) = chain
        .stage_of(job, sharded)
        .await
        .map_err(|e| e.to_string())?
    else {
        return Ok(None);
    };
    // Stage 0 is posted by the creator itself, like any job.
    if index == 0 {
        return Ok(None);
    }
    let this = chain
        .get_pipeline_stage(pipeline, index)
        .await
        .map_err(|e| e.to_string())?;
    let before = chain
        .get_pipeline_stage(pipeline, index - 1)
        .await
        .map_err(|e| e.to_string())?;
    let template_cid = shoal_api::cid_from_chain_bytes(&this.templateCid)
        .map_err(|e| e.to_string())?
        .to_string();
    let bytes = crate::compute::inputs::fetch_checked(
        &node.content,
        &template_cid,
        this.templateHash,
        "stage template",
    )
    .await
    .map_err(|e| e.to_string())?;
    let stage = Stage::from_template(&bytes).map_err(|e| e.to_string())?;
    let previous = shoal_api::results_cid_of(this.previousResult).map_err(|e| e.to_string())?;
    // A plain previous stage's result was checked on chain against its sealed result; a
    // sharded one's merged folder is rebuilt here from the verified batches.
    if before.sharded {
        let merged = crate::api::shards::merged(node, JobId(before.jobId))
            .await
            .map_err(|e| e.to_string())?;
        if merged.cid != previous.to_string() {
            return Ok(Some(format!(
                "pipeline {pipeline} stage {index}: ipfs://{previous} is not the merged result of stage {} (sharded job {}), which is ipfs://{}",
                index - 1,
                before.jobId,
                merged.cid
            )));
        }
    }
    let previous = previous.to_string();
    let expected = match (&stage.select, manifest) {
        (Some(file), Some((posted, posted_cid))) => {
            let text = read_at(
                node,
                &format!("{previous}/{}", file.trim_start_matches('/')),
            )
            .await?;
            let full = full_manifest(
                node,
                &stage
                    .spec_with(Some(&previous))
                    .map_err(|e| e.to_string())?,
            )
            .await?;
            match select(&full, &selected_paths(&String::from_utf8_lossy(&text))) {
                Ok(Some(chosen)) if &chosen == posted => {}
                Ok(_) => {
                    return Ok(Some(format!(
                        "pipeline {pipeline} stage {index}: the manifest is not the files `{file}` of the previous result selects"
                    )));
                }
                Err(e) => return Ok(Some(format!("pipeline {pipeline} stage {index}: {e}"))),
            }
            stage.derive(Some(&previous), Some(posted_cid))
        }
        (None, Some((posted, _))) => {
            let derived = stage.derive(Some(&previous), None);
            if let Ok(d) = &derived
                && &full_manifest(node, d).await? != posted
            {
                return Ok(Some(format!(
                    "pipeline {pipeline} stage {index}: the manifest is not the files the template's glob matches"
                )));
            }
            derived
        }
        (_, None) => stage.derive(Some(&previous), None),
    };
    match expected {
        Ok(expected) if &expected == spec => Ok(None),
        Ok(_) => Ok(Some(format!(
            "pipeline {pipeline} stage {index}: the spec is not stage `{}`'s template applied to the previous stage's result ipfs://{previous}",
            stage.name
        ))),
        Err(e) => Ok(Some(format!("pipeline {pipeline} stage {index}: {e}"))),
    }
}

/// The bytes of the file at `ipfs://CID/path`.
async fn read_at(node: &Arc<Node>, cid_path: &str) -> Result<Vec<u8>, String> {
    let (root, path) = cid_path.split_once('/').unwrap_or((cid_path, ""));
    let root = shoal_store::parse_cid(root).map_err(|e| e.to_string())?;
    node.content
        .ensure(&root)
        .await
        .map_err(|e| e.to_string())?;
    let file = export::resolve(&node.content.store, &root, path)
        .map_err(|e| format!("ipfs://{cid_path}: {e}"))?;
    node.content.read_file(&file).map_err(|e| e.to_string())
}

/// The manifest a sharded spec's glob makes of its input tree.
async fn full_manifest(node: &Arc<Node>, spec: &JobSpec) -> Result<Manifest, String> {
    let (Some(rule), Some(input)) = (&spec.shards, spec.shard_input()) else {
        return Err("the stage's spec has no sharded input".into());
    };
    let (Some(glob), InputSource::Ipfs(root)) = (&rule.glob, &input.source) else {
        return Err("the stage's sharded input must be an ipfs:// tree with a glob".into());
    };
    let cid = shoal_store::parse_cid(root).map_err(|e| e.to_string())?;
    node.content.ensure(&cid).await.map_err(|e| e.to_string())?;
    let store = node.content.store.clone();
    let (root, mount, glob) = (root.clone(), input.path.clone(), glob.clone());
    tokio::task::spawn_blocking(move || {
        let files = export::tree_files(&store, &cid, &mount).map_err(|e| e.to_string())?;
        Manifest::from_files(&root, &mount, &glob, files).map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())?
}
