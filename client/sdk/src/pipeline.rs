//! Pipelines (docs/pipelines.md): stages that run one after the other, each a job or a sharded
//! job, where a stage may read the verified results of the stage before it (mounted as an
//! input) and may fan out over only the files the stage before it selected (a list of paths in
//! its verified results). The client drives the stages from the creator's wallet: each stage is
//! posted once the one before is verified and its results were downloaded and checked.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use shoal_types::{JobSpec, Manifest};

use crate::error::{Error, Result};

/// Most stages in one pipeline.
pub const MAX_STAGES: usize = 16;

/// A pipeline document (`shoal pipeline run FILE`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pipeline {
    /// A name for people.
    pub name: String,
    /// The stages, in order.
    pub stages: Vec<Stage>,
}

/// One stage: a job spec, and how it takes the previous stage's verified results.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stage {
    /// Unique within the pipeline; the stage's results are written to `OUT/<name>`.
    pub name: String,
    /// The job spec (docs/job-spec.md), with or without `shards`.
    pub spec: serde_yaml::Value,
    /// Mount the previous stage's verified results folder at this path (read-only).
    #[serde(default)]
    pub previous_at: Option<String>,
    /// A file of the previous stage's verified results (`stdout`, `outputs/selected.txt`)
    /// listing, one per line, the paths of this stage's sharded input to run: the stage fans
    /// out over only those files. Needs `shards` with a `glob` in `spec`.
    #[serde(default)]
    pub select: Option<String>,
}

/// The record `run_pipeline` keeps in `OUT/pipeline.json`, rewritten after each stage:
/// what `shoal pipeline describe OUT` reads.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PipelineRecord {
    /// The pipeline's name.
    pub name: String,
    /// Stages in the pipeline.
    pub stage_count: usize,
    /// The stages that ended, in order.
    pub stages: Vec<StageOutcome>,
}

/// The record's file name inside the results folder.
pub const RECORD_FILE: &str = "pipeline.json";

/// How one stage ended.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StageOutcome {
    /// The stage's name.
    pub name: String,
    /// `job` or `sharded`.
    pub kind: String,
    /// Its job id (JobMarket or ShardMarket; `null` when a selection was empty).
    pub job_id: Option<u64>,
    /// The verified result CID (a sharded stage: its merged folder).
    pub result_cid: Option<String>,
    /// Where its results were written.
    pub path: PathBuf,
    /// A sharded stage: the shards it ran (after the selection).
    pub shards: Option<u32>,
    /// Why nothing ran (an empty selection).
    pub skipped: Option<String>,
}

impl Pipeline {
    /// Parses a pipeline document and checks it (each stage's spec included; a stage that
    /// mounts the previous results is checked with a placeholder for their CID).
    pub fn from_yaml(doc: &str) -> Result<Self> {
        let p: Pipeline = serde_yaml::from_str(doc)
            .map_err(|e| Error::Pipeline(format!("the pipeline does not parse: {e}")))?;
        if p.stages.is_empty() || p.stages.len() > MAX_STAGES {
            return Err(Error::Pipeline(format!(
                "a pipeline has 1 to {MAX_STAGES} stages, this one {}",
                p.stages.len()
            )));
        }
        let mut names = BTreeSet::new();
        for (i, s) in p.stages.iter().enumerate() {
            let valid = !s.name.is_empty()
                && s.name.len() <= 64
                && s.name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !valid || !names.insert(s.name.clone()) {
                return Err(Error::Pipeline(format!(
                    "stage {i}: the name `{}` must be unique, 1-64 letters, digits, `-` or `_`",
                    s.name
                )));
            }
            if i == 0 && (s.previous_at.is_some() || s.select.is_some()) {
                return Err(Error::Pipeline(format!(
                    "stage `{}` is the first: it has no previous stage for `previous_at` or `select`",
                    s.name
                )));
            }
            if let Some(sel) = &s.select
                && (sel.trim().is_empty() || sel.split('/').any(|c| c == ".."))
            {
                return Err(Error::Pipeline(format!(
                    "stage `{}`: `select` names a file inside the previous stage's results folder (`stdout`, `outputs/list.txt`); `{sel}` is not one",
                    s.name
                )));
            }
            let spec = s.spec_with(Some("bafkqaaa"))?;
            if s.select.is_some() && spec.shards.as_ref().is_none_or(|r| r.glob.is_none()) {
                return Err(Error::Pipeline(format!(
                    "stage `{}`: `select` picks files of a sharded input, so its spec needs `shards: {{glob: …, size: …}}`",
                    s.name
                )));
            }
        }
        Ok(p)
    }
}

impl Stage {
    /// The stage's job spec, with the previous stage's results mounted at `previous_at`
    /// (`previous`: their CID).
    fn spec_with(&self, previous: Option<&str>) -> Result<JobSpec> {
        let mut doc = self.spec.clone();
        if let (Some(at), Some(cid)) = (&self.previous_at, previous) {
            let map = doc.as_mapping_mut().ok_or_else(|| {
                Error::Pipeline(format!("stage `{}`: `spec` must be a mapping", self.name))
            })?;
            let inputs = map
                .entry("inputs".into())
                .or_insert_with(|| serde_yaml::Value::Sequence(Vec::new()));
            let list = inputs.as_sequence_mut().ok_or_else(|| {
                Error::Pipeline(format!(
                    "stage `{}`: `spec.inputs` must be a list",
                    self.name
                ))
            })?;
            let mut input = serde_yaml::Mapping::new();
            input.insert("source".into(), format!("ipfs://{cid}").into());
            input.insert("path".into(), at.clone().into());
            list.push(serde_yaml::Value::Mapping(input));
        }
        let text = serde_yaml::to_string(&doc)
            .map_err(|e| Error::Pipeline(format!("stage `{}`: {e}", self.name)))?;
        JobSpec::from_yaml(&text)
            .map_err(|e| Error::Pipeline(format!("stage `{}`: {e}", self.name)))
    }
}

/// Writes `OUT/pipeline.json` with the stages ended so far.
fn record(pipeline: &Pipeline, out: &Path, done: &[StageOutcome]) -> Result<()> {
    let rec = PipelineRecord {
        name: pipeline.name.clone(),
        stage_count: pipeline.stages.len(),
        stages: done.to_vec(),
    };
    let path = out.join(RECORD_FILE);
    let text = serde_json::to_vec_pretty(&rec).unwrap_or_default();
    std::fs::write(&path, text).map_err(|e| Error::io("the pipeline record", path, e))
}

/// The paths a selection file lists: one per line, blank lines and `#` comments skipped.
fn selected_paths(text: &str) -> BTreeSet<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

impl crate::Client {
    /// Runs `pipeline` stage by stage from this client's wallet, writing each stage's verified
    /// results to `out/<stage>`; `progress` gets a line per step. Stops at the first stage that
    /// does not verify (its error says which).
    pub async fn run_pipeline(
        &self,
        pipeline: &Pipeline,
        out: &Path,
        timeout: Duration,
        mut progress: impl FnMut(&str),
    ) -> Result<Vec<StageOutcome>> {
        std::fs::create_dir_all(out)
            .map_err(|e| Error::io("the pipeline's results folder", out, e))?;
        let mut done: Vec<StageOutcome> = Vec::new();
        for stage in &pipeline.stages {
            let dest = out.join(&stage.name);
            let previous = done.last();
            let prev_cid = previous.and_then(|p| p.result_cid.clone());
            if stage.previous_at.is_some() && prev_cid.is_none() {
                return Err(Error::Pipeline(format!(
                    "stage `{}` mounts the previous results, but the previous stage produced none",
                    stage.name
                )));
            }
            let mut spec = stage.spec_with(prev_cid.as_deref())?;
            if let Some(file) = &stage.select {
                let prev = previous.ok_or_else(|| {
                    Error::Pipeline(format!("stage `{}` has no previous stage", stage.name))
                })?;
                let list = prev.path.join(file.trim_start_matches('/'));
                let text = std::fs::read_to_string(&list).map_err(|e| {
                    Error::Pipeline(format!(
                        "stage `{}`: the selection {} of stage `{}` cannot be read: {e}",
                        stage.name,
                        list.display(),
                        prev.name
                    ))
                })?;
                let chosen = selected_paths(&text);
                let manifest = crate::shards::build_manifest(self.api(), &spec).await?;
                let unknown: Vec<&String> = chosen
                    .iter()
                    .filter(|p| !manifest.shards.iter().any(|s| &s.path == *p))
                    .collect();
                if !unknown.is_empty() {
                    return Err(Error::Pipeline(format!(
                        "stage `{}`: the selection names paths its sharded input does not hold: {unknown:?}",
                        stage.name
                    )));
                }
                let shards: Vec<_> = manifest
                    .shards
                    .iter()
                    .filter(|s| chosen.contains(&s.path))
                    .cloned()
                    .collect();
                if shards.is_empty() {
                    progress(&format!(
                        "stage {}: the selection is empty; nothing to run",
                        stage.name
                    ));
                    done.push(StageOutcome {
                        name: stage.name.clone(),
                        kind: "sharded".into(),
                        job_id: None,
                        result_cid: None,
                        path: dest,
                        shards: Some(0),
                        skipped: Some(format!("stage `{}` selected no file", prev.name)),
                    });
                    record(pipeline, out, &done)?;
                    continue;
                }
                let selected = Manifest { shards, ..manifest };
                let cid = self
                    .api()
                    .upload_bytes(selected.to_canonical_json())
                    .await?;
                if let Some(rule) = spec.shards.as_mut() {
                    rule.glob = None;
                    rule.manifest = Some(format!("ipfs://{cid}"));
                }
                progress(&format!(
                    "stage {}: fan-out over {} selected file(s)",
                    stage.name,
                    selected.shards.len()
                ));
            }
            let outcome = if spec.shards.is_some() {
                let posted = self.post_sharded(&spec).await?;
                let id = posted.job_id;
                progress(&format!(
                    "stage {}: sharded job {id} posted ({} shards)",
                    stage.name, posted.shards
                ));
                let view = self.wait_sharded(id, timeout, |_| {}).await?;
                if view.state != "Done" || view.verified == 0 {
                    return Err(Error::Pipeline(format!(
                        "stage `{}`: sharded job {id} ended {} with {} verified batches",
                        stage.name, view.state, view.verified
                    )));
                }
                let got = self.download_shards(id, None, &dest).await?;
                StageOutcome {
                    name: stage.name.clone(),
                    kind: "sharded".into(),
                    job_id: Some(id.0.to::<u64>()),
                    result_cid: Some(got.cid),
                    path: dest,
                    shards: Some(got.shards),
                    skipped: None,
                }
            } else {
                let posted = self.post(&spec).await?;
                let id = posted.job_id;
                progress(&format!("stage {}: job {id} posted", stage.name));
                self.wait(id, timeout, |_| {}).await?;
                let root = self.download_results(id, &dest).await?;
                StageOutcome {
                    name: stage.name.clone(),
                    kind: "job".into(),
                    job_id: Some(id.0.to::<u64>()),
                    result_cid: Some(root.to_string()),
                    path: dest,
                    shards: None,
                    skipped: None,
                }
            };
            progress(&format!(
                "stage {}: verified, result ipfs://{}",
                stage.name,
                outcome.result_cid.as_deref().unwrap_or("-")
            ));
            done.push(outcome);
            record(pipeline, out, &done)?;
        }
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO: &str = r#"
name: clouds
stages:
  - name: detect
    spec:
      engine: {docker: {image: "busybox:latest", cmd: ["sh", "-c", "ls /inputs"]}}
      inputs: [{source: "ipfs://bafkqaaa", path: /inputs}]
  - name: fix
    select: stdout
    previous_at: /previous
    spec:
      engine: {wasm: {module: "ipfs://bafkqaaa", args: ["/inputs"]}}
      inputs: [{source: "ipfs://bafkqaaa", path: /inputs}]
      shards: {glob: "/inputs/*.txt", size: 1}
"#;

    #[test]
    fn a_pipeline_parses_and_its_stages_are_checked() {
        let p = Pipeline::from_yaml(TWO).expect("parses");
        assert_eq!(p.stages.len(), 2);
        let spec = p.stages[1].spec_with(Some("bafyprevious")).expect("spec");
        assert_eq!(spec.inputs.len(), 2, "the previous results are mounted");
        assert_eq!(spec.inputs[1].path, "/previous");
        for (bad, why) in [
            (TWO.replace("name: fix", "name: detect"), "unique"),
            (
                TWO.replace("shards: {glob: \"/inputs/*.txt\", size: 1}", ""),
                "shards",
            ),
            (
                TWO.replace("name: clouds\nstages:", "name: x\nstages: []\nother:"),
                "parse",
            ),
        ] {
            let err = Pipeline::from_yaml(&bad).expect_err(why).to_string();
            assert!(err.contains(why) || err.contains("stage"), "{why}: {err}");
        }
        let escape = TWO.replace("select: stdout", "select: ../../etc/passwd");
        let err = Pipeline::from_yaml(&escape)
            .expect_err("escape")
            .to_string();
        assert!(err.contains("inside the previous stage's results"), "{err}");
        let first = TWO.replacen(
            "  - name: detect\n",
            "  - name: detect\n    select: stdout\n",
            1,
        );
        let err = Pipeline::from_yaml(&first)
            .expect_err("first stage")
            .to_string();
        assert!(err.contains("is the first"), "{err}");
    }

    #[test]
    fn a_selection_is_one_path_per_line() {
        let s = selected_paths("/inputs/a.txt\n\n# cloudy\n  /inputs/c.txt  \n/inputs/a.txt\n");
        assert_eq!(
            s.into_iter().collect::<Vec<_>>(),
            ["/inputs/a.txt", "/inputs/c.txt"]
        );
    }
}
