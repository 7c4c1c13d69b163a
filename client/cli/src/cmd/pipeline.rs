//! `shoal pipeline`: stages run one after the other from the creator's wallet
//! (docs/pipelines.md).

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Subcommand;
use serde_json::json;
use shoal_sdk::pipeline::Pipeline;

use super::job::parse_duration;
use super::{Ctx, print_json};

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a pipeline file: each stage (a job, or a sharded job) is posted once the stage
    /// before it verified; a stage can mount the previous stage's verified results
    /// (`previous_at`) and fan out over only the files it selected (`select`). Each stage's
    /// verified results are written to OUT/<stage>, checked against the chain.
    Run {
        /// The pipeline (YAML; see docs/pipelines.md).
        file: PathBuf,
        /// Where the stages' results go (default: pipeline-<name>).
        #[arg(long, short = 'o', value_name = "DIR")]
        output_dir: Option<PathBuf>,
        /// Longest wait for one stage.
        #[arg(long, default_value = "30m")]
        wait_timeout: String,
    },
    /// Check a pipeline file (every stage's spec) without posting anything.
    Validate {
        /// The pipeline (YAML).
        file: PathBuf,
    },
    /// Describe a pipeline run from its results folder (`OUT/pipeline.json`): each stage's
    /// job, its state on chain now, and its verified result.
    Describe {
        /// The results folder `shoal pipeline run` wrote.
        dir: PathBuf,
    },
}

fn load(file: &PathBuf) -> anyhow::Result<Pipeline> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("reading the pipeline {}", file.display()))?;
    Ok(Pipeline::from_yaml(&text)?)
}

pub async fn run(ctx: &Ctx, cmd: Command) -> anyhow::Result<()> {
    match cmd {
        Command::Describe { dir } => describe(ctx, &dir).await,
        Command::Validate { file } => {
            let p = load(&file)?;
            if ctx.json() {
                let names: Vec<&str> = p.stages.iter().map(|s| s.name.as_str()).collect();
                return print_json(&json!({ "name": p.name, "stages": names, "valid": true }));
            }
            println!("pipeline {}: {} stage(s), valid", p.name, p.stages.len());
            Ok(())
        }
        Command::Run {
            file,
            output_dir,
            wait_timeout,
        } => {
            let p = load(&file)?;
            let out = output_dir.unwrap_or_else(|| PathBuf::from(format!("pipeline-{}", p.name)));
            super::ensure_empty_dir(&out)?;
            let timeout = parse_duration(&wait_timeout)?;
            let client = ctx.client(true).await?;
            let quiet = ctx.json();
            let stages = client
                .run_pipeline(&p, &out, timeout, |line| {
                    if !quiet {
                        eprintln!("  {line}");
                    }
                })
                .await?;
            if ctx.json() {
                return print_json(&json!({ "pipeline": p.name, "stages": stages, "path": out }));
            }
            for s in &stages {
                println!(
                    "{:<16} {:<8} {:>6}  {}",
                    s.name,
                    s.kind,
                    s.job_id.map_or_else(|| "-".into(), |i| i.to_string()),
                    s.result_cid.as_deref().map_or_else(
                        || s.skipped.clone().unwrap_or_default(),
                        |c| format!("ipfs://{c}")
                    )
                );
            }
            eprintln!("pipeline {} done; results in {}", p.name, out.display());
            Ok(())
        }
    }
}

async fn describe(ctx: &Ctx, dir: &std::path::Path) -> anyhow::Result<()> {
    let path = dir.join(shoal_sdk::pipeline::RECORD_FILE);
    let text = std::fs::read(&path).with_context(|| {
        format!(
            "reading {}: is {} a folder `shoal pipeline run` wrote?",
            path.display(),
            dir.display()
        )
    })?;
    let rec: shoal_sdk::pipeline::PipelineRecord = serde_json::from_slice(&text)
        .with_context(|| format!("{} does not parse", path.display()))?;
    let client = ctx.client(false).await?;
    let mut rows = Vec::new();
    for s in &rec.stages {
        let state = match s.job_id {
            None => "skipped".to_owned(),
            Some(id) => {
                let id = shoal_chain::JobId::from(id);
                if s.kind == "sharded" {
                    let j = client
                        .chain()
                        .get_shard_job(id)
                        .await
                        .map_err(|e| anyhow::anyhow!("{e}"))?;
                    format!(
                        "{:?} ({} verified, {} failed batches)",
                        j.state, j.verifiedBatches, j.failedBatches
                    )
                } else {
                    client.job(id).await?.state.to_string()
                }
            }
        };
        rows.push(json!({
            "name": s.name, "kind": s.kind, "jobId": s.job_id, "state": state,
            "resultCid": s.result_cid, "path": s.path, "shards": s.shards, "skipped": s.skipped,
        }));
    }
    let complete = rec.stages.len() == rec.stage_count;
    if ctx.json() {
        return print_json(&json!({
            "pipeline": rec.name, "stages": rows, "stageCount": rec.stage_count, "complete": complete,
        }));
    }
    println!(
        "pipeline {}: {} of {} stage(s) ended",
        rec.name,
        rec.stages.len(),
        rec.stage_count
    );
    for r in &rows {
        println!(
            "  {:<16} {:<8} job {:>5}  {:<40} {}",
            r["name"].as_str().unwrap_or("-"),
            r["kind"].as_str().unwrap_or("-"),
            r["jobId"]
                .as_u64()
                .map_or_else(|| "-".into(), |i| i.to_string()),
            r["state"].as_str().unwrap_or("-"),
            r["resultCid"]
                .as_str()
                .map_or_else(|| "-".into(), |c| format!("ipfs://{c}"))
        );
    }
    Ok(())
}
