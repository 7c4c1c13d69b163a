//! Pipelines (docs/pipelines.md): the pipeline document, its stages, and the one rule that
//! turns a stage and the previous stage's verified result into the stage's job spec and (for
//! a fan-out) its manifest. The client that starts a stage and every node that checks a
//! stage before bidding apply the same rule, so a stage posted with anything else is declined.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::{JobSpec, Manifest};

/// Most stages in one pipeline (the PipelineMarket's `MAX_STAGES`).
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

/// One stage: a job spec, and how it takes the previous stage's verified results. Its JSON
/// form (`to_template`) is the stage template whose CID and keccak256 the PipelineMarket
/// records for the stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stage {
    /// Unique within the pipeline; the stage's results are written to `OUT/<name>`.
    pub name: String,
    /// The job spec (docs/job-spec.md), with or without `shards`.
    pub spec: serde_json::Value,
    /// Mount the previous stage's verified results folder at this path (read-only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_at: Option<String>,
    /// A file of the previous stage's verified results (`stdout`, `outputs/selected.txt`)
    /// listing, one per line, the paths of this stage's sharded input to run: the stage fans
    /// out over only those files. Needs `shards` with a `glob` in `spec`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub select: Option<String>,
}

fn invalid(msg: String) -> Error {
    Error::Pipeline(msg)
}

impl Pipeline {
    /// Parses a pipeline document and checks it (each stage's spec included; a stage that
    /// mounts the previous results is checked with a placeholder for their CID).
    pub fn from_yaml(doc: &str) -> Result<Self> {
        let p: Pipeline = serde_yaml::from_str(doc)
            .map_err(|e| invalid(format!("the pipeline does not parse: {e}")))?;
        if p.stages.is_empty() || p.stages.len() > MAX_STAGES {
            return Err(invalid(format!(
                "a pipeline has 1 to {MAX_STAGES} stages, this one {}",
                p.stages.len()
            )));
        }
        let mut names = BTreeSet::new();
        for (i, s) in p.stages.iter().enumerate() {
            if !names.insert(s.name.clone()) {
                return Err(invalid(format!(
                    "stage {i}: the name `{}` must be unique",
                    s.name
                )));
            }
            if i == 0 && (s.previous_at.is_some() || s.select.is_some()) {
                return Err(invalid(format!(
                    "stage `{}` is the first: it has no previous stage for `previous_at` or `select`",
                    s.name
                )));
            }
            s.check()?;
        }
        Ok(p)
    }
}

impl Stage {
    /// Checks the stage on its own: its name, its `select`, and its spec (with a placeholder
    /// for the previous results' CID).
    pub fn check(&self) -> Result<()> {
        let valid = !self.name.is_empty()
            && self.name.len() <= 64
            && self
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid {
            return Err(invalid(format!(
                "the stage name `{}` must be 1-64 letters, digits, `-` or `_`",
                self.name
            )));
        }
        if let Some(sel) = &self.select
            && (sel.trim().is_empty() || sel.split('/').any(|c| c == ".."))
        {
            return Err(invalid(format!(
                "stage `{}`: `select` names a file inside the previous stage's results folder (`stdout`, `outputs/list.txt`); `{sel}` is not one",
                self.name
            )));
        }
        let spec = self.spec_with(Some("bafkqaaa"))?;
        if self.select.is_some() && spec.shards.as_ref().is_none_or(|r| r.glob.is_none()) {
            return Err(invalid(format!(
                "stage `{}`: `select` picks files of a sharded input, so its spec needs `shards: {{glob: …, size: …}}`",
                self.name
            )));
        }
        Ok(())
    }

    /// The stage template: the stage as JSON (what is uploaded and named on chain).
    pub fn to_template(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Parses and checks a stage template fetched by its CID.
    pub fn from_template(bytes: &[u8]) -> Result<Self> {
        let stage: Stage = serde_json::from_slice(bytes)
            .map_err(|e| invalid(format!("not a stage template: {e}")))?;
        stage.check()?;
        Ok(stage)
    }

    /// The stage's job spec, with the previous stage's results (`previous`: their CID)
    /// mounted at `previous_at`.
    pub fn spec_with(&self, previous: Option<&str>) -> Result<JobSpec> {
        let mut doc = self.spec.clone();
        if let (Some(at), Some(cid)) = (&self.previous_at, previous) {
            let map = doc.as_object_mut().ok_or_else(|| {
                invalid(format!("stage `{}`: `spec` must be a mapping", self.name))
            })?;
            let inputs = map
                .entry("inputs")
                .or_insert_with(|| serde_json::Value::Array(Vec::new()));
            let list = inputs.as_array_mut().ok_or_else(|| {
                invalid(format!(
                    "stage `{}`: `spec.inputs` must be a list",
                    self.name
                ))
            })?;
            list.push(serde_json::json!({"source": format!("ipfs://{cid}"), "path": at}));
        }
        let text = serde_json::to_string(&doc).unwrap_or_default();
        JobSpec::from_yaml(&text).map_err(|e| invalid(format!("stage `{}`: {e}", self.name)))
    }

    /// The job spec this stage runs once started: `spec_with(previous)`, and for a fan-out
    /// (`select`) the sharded input named by the selection manifest `manifest_cid` instead of
    /// the glob.
    pub fn derive(&self, previous: Option<&str>, manifest_cid: Option<&str>) -> Result<JobSpec> {
        let mut spec = self.spec_with(previous)?;
        if self.select.is_some() {
            let cid = manifest_cid.ok_or_else(|| {
                invalid(format!(
                    "stage `{}` fans out over a selection: it needs the selection's manifest",
                    self.name
                ))
            })?;
            if let Some(rule) = spec.shards.as_mut() {
                rule.glob = None;
                rule.manifest = Some(format!("ipfs://{cid}"));
            }
        }
        Ok(spec)
    }
}

/// The paths a selection file lists: one per line, blank lines and `#` comments skipped.
pub fn selected_paths(text: &str) -> BTreeSet<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

/// The manifest of a fan-out: the shards of `full` (the manifest of the stage's whole glob)
/// whose paths `chosen` lists, in `full`'s order; `None` when the selection is empty. A chosen
/// path that `full` does not hold is an error naming it.
pub fn select(full: &Manifest, chosen: &BTreeSet<String>) -> Result<Option<Manifest>> {
    let unknown: Vec<&String> = chosen
        .iter()
        .filter(|p| !full.shards.iter().any(|s| &s.path == *p))
        .collect();
    if !unknown.is_empty() {
        return Err(invalid(format!(
            "the selection names paths the sharded input does not hold: {unknown:?}"
        )));
    }
    let shards: Vec<_> = full
        .shards
        .iter()
        .filter(|s| chosen.contains(&s.path))
        .cloned()
        .collect();
    Ok((!shards.is_empty()).then(|| Manifest {
        shards,
        ..full.clone()
    }))
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
    fn a_template_round_trips_and_derives_the_posted_spec() {
        let p = Pipeline::from_yaml(TWO).expect("parses");
        let stage = &p.stages[1];
        let back = Stage::from_template(&stage.to_template()).expect("template");
        assert_eq!(&back, stage);
        let spec = back
            .derive(Some("bafyprev"), Some("bafymanifest"))
            .expect("derive");
        let rule = spec.shards.as_ref().expect("sharded");
        assert_eq!(rule.glob, None);
        assert_eq!(rule.manifest.as_deref(), Some("ipfs://bafymanifest"));
        assert_eq!(
            spec,
            stage
                .derive(Some("bafyprev"), Some("bafymanifest"))
                .expect("again")
        );
        assert_ne!(
            spec,
            stage
                .derive(Some("bafyother"), Some("bafymanifest"))
                .expect("other")
        );
        let err = stage
            .derive(Some("bafyprev"), None)
            .expect_err("no manifest");
        assert!(err.to_string().contains("selection"), "{err}");
        assert!(Stage::from_template(b"{\"name\": 1}").is_err());
    }

    #[test]
    fn a_selection_is_one_path_per_line() {
        let s = selected_paths("/inputs/a.txt\n\n# cloudy\n  /inputs/c.txt  \n/inputs/a.txt\n");
        assert_eq!(
            s.into_iter().collect::<Vec<_>>(),
            ["/inputs/a.txt", "/inputs/c.txt"]
        );
    }

    #[test]
    fn a_selection_keeps_the_chosen_shards_in_order() {
        let files = ["/in/a.txt", "/in/b.txt", "/in/c.txt"]
            .map(|p| (p.to_owned(), format!("bafk{}", &p[4..5]), 1));
        let full = Manifest::from_files("bafyroot", "/in", "/in/*.txt", files).expect("manifest");
        let chosen = selected_paths("/in/c.txt\n/in/a.txt\n");
        let picked = select(&full, &chosen).expect("select").expect("not empty");
        let paths: Vec<_> = picked.shards.iter().map(|s| s.path.as_str()).collect();
        assert_eq!(paths, ["/in/a.txt", "/in/c.txt"]);
        assert!(select(&full, &BTreeSet::new()).expect("empty").is_none());
        let err = select(&full, &selected_paths("/in/z.txt")).expect_err("unknown");
        assert!(err.to_string().contains("/in/z.txt"), "{err}");
    }
}
