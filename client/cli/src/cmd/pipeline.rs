//! `shoal pipeline`: stages run one after the other on the PipelineMarket; the escrow of every
//! stage is paid at post and anyone may start the next stage (docs/pipelines.md).

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Subcommand;
use serde_json::json;
use shoal_chain::U256;
use shoal_sdk::pipeline::{Advanced, Pipeline};

use super::job::parse_duration;
use super::{Ctx, eth, parse_amount, print_json};

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Post a pipeline file on the PipelineMarket (paying every stage's escrow and keeper tip
    /// at once) and drive it: wait for each stage, write its verified results to OUT/<stage>
    /// (checked against the chain), start the next stage from them. A stage can mount the
    /// previous stage's verified results (`previous_at`) and fan out over only the files it
    /// selected (`select`). With --detach, post and return: anyone may then start each next
    /// stage with `shoal pipeline advance ID`.
    Run {
        /// The pipeline (YAML; see docs/pipelines.md).
        file: PathBuf,
        /// Where the stages' results go (default: pipeline-<name>).
        #[arg(long, short = 'o', value_name = "DIR")]
        output_dir: Option<PathBuf>,
        /// Longest wait for one stage.
        #[arg(long, default_value = "30m")]
        wait_timeout: String,
        /// Paid to whoever starts each stage after the first, once that stage verifies
        /// (`0.001ether`, `1000gwei`, wei).
        #[arg(long, default_value = "0")]
        tip: String,
        /// Post the pipeline and stage 0, print its id and return.
        #[arg(long)]
        detach: bool,
    },
    /// Start the next stage of pipeline ID (from any wallet) once its current stage's job is
    /// final: download its verified result, derive the next stage's spec (and manifest) from
    /// the stage template, post it; or end the pipeline after its last or a failed stage. The
    /// stage's tip is paid to you once the stage you started verifies.
    Advance {
        /// The pipeline id.
        id: String,
        /// Keep advancing until the pipeline ends.
        #[arg(long)]
        follow: bool,
        /// Longest wait with --follow.
        #[arg(long, default_value = "30m")]
        wait_timeout: String,
    },
    /// Stop pipeline ID (its creator): no later stage starts; their escrow and tips are
    /// refunded and claimed. A stage already posted runs on.
    Cancel {
        /// The pipeline id.
        id: String,
    },
    /// Check a pipeline file (every stage's spec) without posting anything.
    Validate {
        /// The pipeline (YAML).
        file: PathBuf,
    },
    /// Describe a pipeline: by id (read from the PipelineMarket), or from the results folder
    /// `shoal pipeline run` wrote (OUT/pipeline.json): each stage's job, its state on chain
    /// now, and its verified result.
    Describe {
        /// A pipeline id, or the results folder of `shoal pipeline run`.
        target: String,
    },
}

fn load(file: &PathBuf) -> anyhow::Result<Pipeline> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("reading the pipeline {}", file.display()))?;
    Ok(Pipeline::from_yaml(&text)?)
}

fn pipeline_id(id: &str) -> anyhow::Result<U256> {
    id.trim()
        .parse::<U256>()
        .ok()
        .filter(|v| !v.is_zero())
        .ok_or_else(|| {
            anyhow::anyhow!(
                "`{id}` is not a pipeline id (a number from 1; `shoal pipeline run` prints it)"
            )
        })
}

pub async fn run(ctx: &Ctx, cmd: Command) -> anyhow::Result<()> {
    match cmd {
        Command::Describe { target } => match pipeline_id(&target) {
            Ok(id) => describe_on_chain(ctx, id).await,
            Err(_) => describe(ctx, std::path::Path::new(&target)).await,
        },
        Command::Validate { file } => {
            let p = load(&file)?;
            if ctx.json() {
                let names: Vec<&str> = p.stages.iter().map(|s| s.name.as_str()).collect();
                return print_json(&json!({ "name": p.name, "stages": names, "valid": true }));
            }
            println!("pipeline {}: {} stage(s), valid", p.name, p.stages.len());
            Ok(())
        }
        Command::Cancel { id } => {
            let id = pipeline_id(&id)?;
            let client = ctx.client(true).await?;
            let r = client
                .chain()
                .cancel_pipeline(id)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let owed = client.claim_pipeline_refunds().await?;
            if ctx.json() {
                return print_json(&json!({
                    "pipelineId": id.to_string(), "tx": r.transaction_hash.to_string(),
                    "claimed": owed.to_string(),
                }));
            }
            println!(
                "pipeline {id} cancelled ({}); claimed {}",
                r.transaction_hash,
                eth(owed)
            );
            Ok(())
        }
        Command::Advance {
            id,
            follow,
            wait_timeout,
        } => {
            let id = pipeline_id(&id)?;
            let timeout = parse_duration(&wait_timeout)?;
            let client = ctx.client(true).await?;
            let work =
                std::env::temp_dir().join(format!("shoal-pipeline-{id}-{}", std::process::id()));
            let start = std::time::Instant::now();
            let mut steps = Vec::new();
            let outcome = loop {
                let scratch = work.join(steps.len().to_string());
                let step = client.advance_pipeline(id, &scratch).await;
                let _ = std::fs::remove_dir_all(&scratch);
                let step = step?;
                if !ctx.json() {
                    match &step {
                        Advanced::NotFinal {
                            stage,
                            job_id,
                            state,
                        } => eprintln!("  stage {stage} (job {job_id}) is {state}: not final yet"),
                        Advanced::Started {
                            stage,
                            job_id,
                            previous,
                            tx,
                        } => eprintln!(
                            "  stage {stage} posted as job {job_id} from ipfs://{previous} ({tx})"
                        ),
                        Advanced::Ended { state, .. } => eprintln!("  pipeline {id} is {state}"),
                    }
                }
                let ended = matches!(step, Advanced::Ended { .. });
                let waiting = matches!(step, Advanced::NotFinal { .. });
                if !waiting {
                    steps.push(step.clone());
                }
                if ended || !follow {
                    break step;
                }
                if start.elapsed() > timeout {
                    anyhow::bail!(
                        "pipeline {id} did not end within {wait_timeout}; `shoal pipeline describe {id}` shows where it is"
                    );
                }
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            };
            let _ = std::fs::remove_dir_all(&work);
            let owed = client.claim_pipeline_refunds().await?;
            if ctx.json() {
                return print_json(&json!({
                    "pipelineId": id.to_string(), "steps": steps, "last": outcome,
                    "claimed": owed.to_string(),
                }));
            }
            if !owed.is_zero() {
                eprintln!("claimed {} (tips, refunds)", eth(owed));
            }
            Ok(())
        }
        Command::Run {
            file,
            output_dir,
            wait_timeout,
            tip,
            detach,
        } => {
            let p = load(&file)?;
            let tip = parse_amount(&tip)?;
            let tip = u128::try_from(tip).map_err(|_| anyhow::anyhow!("--tip is too large"))?;
            let client = ctx.client(true).await?;
            if detach {
                let posted = client.post_pipeline(&p, tip).await?;
                if ctx.json() {
                    return print_json(&posted);
                }
                println!("{}", posted.pipeline_id);
                eprintln!(
                    "pipeline {} posted ({} reserved); stage {} is job {}; advance it with `shoal pipeline advance {} --follow`",
                    posted.pipeline_id,
                    eth(posted.value.parse().unwrap_or_default()),
                    p.stages[0].name,
                    posted.first_job,
                    posted.pipeline_id
                );
                return Ok(());
            }
            let out = output_dir.unwrap_or_else(|| PathBuf::from(format!("pipeline-{}", p.name)));
            super::ensure_empty_dir(&out)?;
            let timeout = parse_duration(&wait_timeout)?;
            let quiet = ctx.json();
            let (id, stages) = client
                .run_pipeline(&p, &out, timeout, tip, |line| {
                    if !quiet {
                        eprintln!("  {line}");
                    }
                })
                .await?;
            if ctx.json() {
                return print_json(
                    &json!({ "pipeline": p.name, "pipelineId": id, "stages": stages, "path": out }),
                );
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
            eprintln!(
                "pipeline {} ({id}) done; results in {}",
                p.name,
                out.display()
            );
            Ok(())
        }
    }
}

/// A pipeline as the PipelineMarket holds it, with each started stage's job state.
async fn describe_on_chain(ctx: &Ctx, id: U256) -> anyhow::Result<()> {
    let client = ctx.client(false).await?;
    let chain = client.chain();
    let err = |e: shoal_chain::Error| anyhow::anyhow!("{e}");
    let p = chain.get_pipeline(id).await.map_err(err)?;
    if p.state == shoal_chain::PipelineState::None {
        anyhow::bail!("pipeline {id} does not exist on this PipelineMarket");
    }
    let mut rows = Vec::new();
    for i in 0..p.stageCount {
        let st = chain.get_pipeline_stage(id, i).await.map_err(err)?;
        let started = i <= p.current && !st.jobId.is_zero();
        let state = if !started {
            "not started".to_owned()
        } else {
            job_state(&client, st.sharded, shoal_chain::JobId(st.jobId)).await?
        };
        rows.push(json!({
            "stage": i,
            "kind": if st.sharded { "sharded" } else { "job" },
            "jobId": started.then(|| st.jobId.to::<u64>()),
            "state": state,
            "startedBy": started.then(|| st.startedBy.to_string()),
            "template": shoal_api::cid_text(&st.templateCid),
            "tip": st.tip.to_string(),
        }));
    }
    if ctx.json() {
        return print_json(&json!({
            "pipelineId": id.to_string(), "creator": p.creator.to_string(),
            "state": format!("{:?}", p.state), "current": p.current,
            "stageCount": p.stageCount, "reserved": p.reserved.to_string(), "stages": rows,
        }));
    }
    println!(
        "pipeline {id}: {:?}, stage {} of {}, {} reserved, creator {}",
        p.state,
        p.current,
        p.stageCount,
        eth(p.reserved),
        p.creator
    );
    for r in &rows {
        println!(
            "  {:>2} {:<8} job {:>5}  {}",
            r["stage"],
            r["kind"].as_str().unwrap_or("-"),
            r["jobId"]
                .as_u64()
                .map_or_else(|| "-".into(), |i| i.to_string()),
            r["state"].as_str().unwrap_or("-"),
        );
    }
    Ok(())
}

/// A stage job's state: a job's state name, or a sharded job's state and batch counts.
async fn job_state(
    client: &shoal_sdk::Client,
    sharded: bool,
    id: shoal_chain::JobId,
) -> anyhow::Result<String> {
    if sharded {
        let j = client
            .chain()
            .get_shard_job(id)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(format!(
            "{:?} ({} verified, {} failed batches)",
            j.state, j.verifiedBatches, j.failedBatches
        ))
    } else {
        Ok(client.job(id).await?.state.to_string())
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
                job_state(&client, s.kind == "sharded", shoal_chain::JobId::from(id)).await?
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
