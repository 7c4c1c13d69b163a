//! Pipelines (docs/pipelines.md) on the PipelineMarket: `post_pipeline` pays the escrow of
//! every stage at once and starts stage 0; once a stage is final, anyone may start the next
//! (`advance_pipeline`) — derive its spec (and, for a fan-out, its manifest) from the stage
//! template and the previous stage's verified results, exactly as the nodes re-derive them
//! before they bid. `run_pipeline` does both from the creator's wallet and keeps each stage's
//! verified results.

use std::path::{Path, PathBuf};
use std::time::Duration;

use alloy::primitives::{Bytes, U256, keccak256};
use serde::{Deserialize, Serialize};
use shoal_chain::{JobId, JobState, PipelineState, ShardJobState, StageInput, StageParams};
use shoal_store::Cid;

use crate::client::chain_err;
use crate::error::{Error, Result};

pub use shoal_types::pipeline::{MAX_STAGES, Pipeline, Stage, select, selected_paths};

/// The record `run_pipeline` keeps in `OUT/pipeline.json`, rewritten after each stage:
/// what `shoal pipeline describe OUT` reads.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PipelineRecord {
    /// The pipeline's name.
    pub name: String,
    /// Its id on the PipelineMarket.
    pub pipeline_id: String,
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

/// A posted pipeline.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PostedPipeline {
    /// Its id on the PipelineMarket.
    pub pipeline_id: String,
    /// Stage 0's job id (on the JobMarket, or the ShardMarket for a sharded stage).
    pub first_job: u64,
    /// The post transaction.
    pub tx: String,
    /// Wei paid: every stage's escrow and keeper tip.
    pub value: String,
}

/// What one `advance_pipeline` call did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase", tag = "step")]
pub enum Advanced {
    /// The current stage's job is not final yet: nothing was sent.
    NotFinal {
        /// The stage.
        stage: u8,
        /// Its job.
        job_id: u64,
        /// Its state now.
        state: String,
    },
    /// The next stage was posted.
    Started {
        /// The stage started.
        stage: u8,
        /// Its job id.
        job_id: u64,
        /// The previous stage's verified result it was derived from.
        previous: String,
        /// The transaction.
        tx: String,
    },
    /// The pipeline ended (Done or Stopped); what was still reserved went to the creator.
    Ended {
        /// `Done` or `Stopped`.
        state: String,
        /// The transaction (none when it had already ended).
        tx: Option<String>,
    },
}

/// A stage's job once final: its verified result (CID, shards) or why it did not verify.
enum StageEnd {
    Running(String),
    Verified,
    NotVerified(String),
}

fn chain(e: shoal_chain::Error) -> Error {
    Error::Pipeline(e.to_string())
}

impl crate::Client {
    /// A stage's on-chain parameters: its deal (from its spec; the most shards its glob can
    /// select), its template uploaded, its keeper tip; and a sharded stage's full manifest.
    async fn stage_params(
        &self,
        stage: &Stage,
        tip: u128,
    ) -> Result<(StageParams, Option<shoal_types::Manifest>)> {
        let placeholder = stage.previous_at.as_ref().map(|_| "bafkqaaa");
        let spec = stage.spec_with(placeholder)?;
        let template = stage.to_template();
        let template_cid =
            shoal_store::parse_cid(&self.api().upload_bytes(template.clone()).await?)?;
        let sharded = spec.shards.is_some();
        let full = if sharded {
            Some(self.manifest_of(&spec).await?)
        } else {
            None
        };
        let shards = full.as_ref().map_or(0, |m| m.shards.len() as u32);
        // Both markets' parameters follow from the spec; the market uses the one its kind
        // takes.
        let job = shoal_chain::job_params(&spec, Bytes::new());
        let shard = shoal_chain::shard_job_params(&spec, Bytes::new(), &[], Bytes::new(), shards);
        let params = StageParams {
            sharded,
            templateCid: Bytes::from(template_cid.to_bytes()),
            templateHash: keccak256(&template),
            job: shoal_chain::pipeline_job_params(&job),
            shard: shoal_chain::pipeline_shard_params(&shard),
            tip: shoal_chain::U96::saturating_from(tip),
        };
        Ok((params, full))
    }

    /// Uploads a stage's manifest and names it in `input`; its CID.
    async fn put_manifest(
        &self,
        input: &mut StageInput,
        manifest: &shoal_types::Manifest,
    ) -> Result<String> {
        let json = manifest.to_canonical_json();
        let cid = self.api().upload_bytes(json.clone()).await?;
        input.manifestCid = Bytes::from(shoal_store::parse_cid(&cid)?.to_bytes());
        input.manifestHash = keccak256(&json);
        input.shardCount = manifest.shards.len() as u32;
        Ok(cid)
    }

    /// What starting `stage` needs: its spec (and a sharded stage's manifest) derived from
    /// the previous stage's verified result (`previous`: its CID and the folder it was
    /// downloaded to), uploaded. `None`: the stage fans out over an empty selection.
    /// `known`: the manifest of the stage's glob when already built (stage 0 at post).
    async fn stage_input(
        &self,
        stage: &Stage,
        previous: Option<(&Cid, &Path)>,
        known: Option<shoal_types::Manifest>,
    ) -> Result<Option<StageInput>> {
        let prev_text = previous.map(|(c, _)| c.to_string());
        let prev = prev_text.as_deref();
        let mut input = shoal_chain::empty_stage_input();
        if let Some((cid, _)) = previous {
            input.previousResult =
                shoal_api::result_hash_of(cid).map_err(|e| Error::Pipeline(e.to_string()))?;
        }
        let spec = if let Some(file) = &stage.select {
            let (_, dir) = previous.ok_or_else(|| {
                Error::Pipeline(format!("stage `{}` has no previous stage", stage.name))
            })?;
            let list = dir.join(file.trim_start_matches('/'));
            let text = std::fs::read_to_string(&list).map_err(|e| {
                Error::Pipeline(format!(
                    "stage `{}`: the selection {} cannot be read: {e}",
                    stage.name,
                    list.display()
                ))
            })?;
            let full = self.manifest_of(&stage.spec_with(prev)?).await?;
            let Some(chosen) = select(&full, &selected_paths(&text))? else {
                return Ok(None);
            };
            let cid = self.put_manifest(&mut input, &chosen).await?;
            stage.derive(prev, Some(&cid))?
        } else {
            let spec = stage.derive(prev, None)?;
            if spec.shards.is_some() {
                let manifest = match known {
                    Some(m) => m,
                    None => self.manifest_of(&spec).await?,
                };
                self.put_manifest(&mut input, &manifest).await?;
            }
            spec
        };
        let json = spec.to_canonical_json();
        let cid = self.api().upload_bytes(json.clone()).await?;
        input.specCid = Bytes::from(shoal_store::parse_cid(&cid)?.to_bytes());
        input.specHash = keccak256(&json);
        Ok(Some(input))
    }

    /// Posts `pipeline` on the PipelineMarket, paying every stage's escrow and `tip` per
    /// stage after the first (paid to whoever starts that stage, once it verifies); starts
    /// stage 0.
    pub async fn post_pipeline(&self, pipeline: &Pipeline, tip: u128) -> Result<PostedPipeline> {
        let mut stages = Vec::with_capacity(pipeline.stages.len());
        let mut first_manifest = None;
        for (i, stage) in pipeline.stages.iter().enumerate() {
            let (params, full) = self
                .stage_params(stage, if i == 0 { 0 } else { tip })
                .await?;
            if i == 0 {
                first_manifest = full;
            }
            stages.push(params);
        }
        let value = stages
            .iter()
            .map(shoal_chain::stage_value)
            .fold(U256::ZERO, |a, b| a + b);
        let me = self.address()?;
        let balance = self.chain().balance(me).await.map_err(chain_err)?;
        if balance <= value {
            return Err(Error::NoFunds {
                address: me,
                balance,
                action: "posting this pipeline (every stage's escrow and tip)".into(),
                needed: value,
            });
        }
        let first = self
            .stage_input(&pipeline.stages[0], None, first_manifest)
            .await?
            .ok_or_else(|| Error::Pipeline("the first stage cannot select".into()))?;
        let (id, receipt) = self
            .chain()
            .post_pipeline(stages, first)
            .await
            .map_err(chain)?;
        let stage = self
            .chain()
            .get_pipeline_stage(id, 0)
            .await
            .map_err(chain)?;
        Ok(PostedPipeline {
            pipeline_id: id.to_string(),
            first_job: stage.jobId.to::<u64>(),
            tx: receipt.transaction_hash.to_string(),
            value: value.to_string(),
        })
    }

    /// How the job of stage `stage` of pipeline `id` stands.
    async fn stage_end(&self, stage: &shoal_chain::PipelineStage) -> Result<StageEnd> {
        let job = JobId(stage.jobId);
        if stage.sharded {
            let j = self.chain().get_shard_job(job).await.map_err(chain)?;
            return Ok(match j.state {
                ShardJobState::Done if j.verifiedBatches > 0 => StageEnd::Verified,
                ShardJobState::Done => StageEnd::NotVerified(format!(
                    "sharded job {job} is Done without a verified batch"
                )),
                ShardJobState::Expired => {
                    StageEnd::NotVerified(format!("sharded job {job} expired (too few bidders)"))
                }
                s => StageEnd::Running(format!("{s:?}")),
            });
        }
        let j = self.job(job).await?;
        Ok(match j.state {
            // Verified and published: the next stage can be derived from the result.
            JobState::Verified if self.published_result(job).await?.is_some() => StageEnd::Verified,
            JobState::Verified => StageEnd::Running("Verified, result not yet published".into()),
            JobState::Failed | JobState::Expired => {
                StageEnd::NotVerified(format!("job {job} is {}", j.state))
            }
            s => StageEnd::Running(s.to_string()),
        })
    }

    /// Downloads the verified result of a stage's job into `dest`: its CID and, for a
    /// sharded stage, the shards written.
    async fn stage_result(
        &self,
        stage: &shoal_chain::PipelineStage,
        dest: &Path,
    ) -> Result<(Cid, Option<u32>)> {
        let job = JobId(stage.jobId);
        if stage.sharded {
            let got = self.download_shards(job, None, dest).await?;
            Ok((shoal_store::parse_cid(&got.cid)?, Some(got.shards)))
        } else {
            Ok((self.download_results(job, dest).await?, None))
        }
    }

    /// The template of stage `index` of pipeline `id`, fetched by its CID and checked against
    /// its hash on chain.
    async fn stage_template(&self, id: U256, index: u8) -> Result<Stage> {
        let st = self
            .chain()
            .get_pipeline_stage(id, index)
            .await
            .map_err(chain)?;
        let cid = shoal_api::cid_from_chain_bytes(&st.templateCid)
            .map_err(|e| Error::Pipeline(e.to_string()))?;
        let bytes = self.api().content(&cid.to_string()).await?;
        if keccak256(&bytes) != st.templateHash {
            return Err(Error::Pipeline(format!(
                "the template of stage {index} (ipfs://{cid}) does not hash to the pipeline's templateHash"
            )));
        }
        Stage::from_template(&bytes).map_err(Error::from)
    }

    /// One step of pipeline `id`, from any wallet: when the current stage's job is final,
    /// starts the next stage (downloading the verified result into `work/<stage>` and
    /// deriving the next stage from it) or ends the pipeline. `work` must not hold a folder
    /// named after the stage.
    pub async fn advance_pipeline(&self, id: U256, work: &Path) -> Result<Advanced> {
        let p = self.chain().get_pipeline(id).await.map_err(chain)?;
        if p.state != PipelineState::Running {
            if p.state == PipelineState::None {
                return Err(Error::Pipeline(format!("pipeline {id} does not exist")));
            }
            return Ok(Advanced::Ended {
                state: format!("{:?}", p.state),
                tx: None,
            });
        }
        let st = self
            .chain()
            .get_pipeline_stage(id, p.current)
            .await
            .map_err(chain)?;
        match self.stage_end(&st).await? {
            StageEnd::Running(state) => Ok(Advanced::NotFinal {
                stage: p.current,
                job_id: st.jobId.to::<u64>(),
                state,
            }),
            StageEnd::NotVerified(_) => self.end_pipeline(id).await,
            StageEnd::Verified if p.current + 1 >= p.stageCount => self.end_pipeline(id).await,
            StageEnd::Verified => {
                let current = self.stage_template(id, p.current).await?;
                std::fs::create_dir_all(work)
                    .map_err(|e| Error::io("the pipeline's work folder", work, e))?;
                let dest = work.join(&current.name);
                let (cid, _) = self.stage_result(&st, &dest).await?;
                self.start_next(id, p.current + 1, &p, (&cid, &dest)).await
            }
        }
    }

    /// Starts stage `next` from the previous stage's verified result.
    async fn start_next(
        &self,
        id: U256,
        next: u8,
        p: &shoal_chain::Pipeline,
        previous: (&Cid, &Path),
    ) -> Result<Advanced> {
        let stage = self.stage_template(id, next).await?;
        let input = match self.stage_input(&stage, Some(previous), None).await? {
            Some(input) => input,
            None if self.address()? == p.creator => StageInput {
                previousResult: shoal_api::result_hash_of(previous.0)
                    .map_err(|e| Error::Pipeline(e.to_string()))?,
                ..shoal_chain::empty_stage_input()
            },
            None => {
                return Err(Error::Pipeline(format!(
                    "stage `{}` selects no file; only the pipeline's creator may end it for an empty selection",
                    stage.name
                )));
            }
        };
        let empty = input.specCid.is_empty();
        let receipt = self
            .chain()
            .advance_pipeline(id, input)
            .await
            .map_err(chain)?;
        let tx = receipt.transaction_hash.to_string();
        if empty {
            return Ok(Advanced::Ended {
                state: "Done".into(),
                tx: Some(tx),
            });
        }
        let st = self
            .chain()
            .get_pipeline_stage(id, next)
            .await
            .map_err(chain)?;
        Ok(Advanced::Started {
            stage: next,
            job_id: st.jobId.to::<u64>(),
            previous: previous.0.to_string(),
            tx,
        })
    }

    /// Ends a pipeline whose current stage is final (verified last stage, or not verified).
    async fn end_pipeline(&self, id: U256) -> Result<Advanced> {
        let receipt = self
            .chain()
            .advance_pipeline(id, shoal_chain::empty_stage_input())
            .await
            .map_err(chain)?;
        let p = self.chain().get_pipeline(id).await.map_err(chain)?;
        Ok(Advanced::Ended {
            state: format!("{:?}", p.state),
            tx: Some(receipt.transaction_hash.to_string()),
        })
    }

    /// Claims what the PipelineMarket holds for this wallet (refunds, tips); the amount.
    pub async fn claim_pipeline_refunds(&self) -> Result<U256> {
        let me = self.address()?;
        let owed = self
            .chain()
            .pipeline_withdrawable(me)
            .await
            .map_err(chain)?;
        if !owed.is_zero() {
            self.chain().claim_pipeline_market().await.map_err(chain)?;
        }
        Ok(owed)
    }

    /// Posts `pipeline` and drives it from this wallet: waits for each stage, writes its
    /// verified results to `out/<stage>`, starts the next (unless someone else already did),
    /// and claims the refunds at the end. Returns the pipeline id and the stages that ended.
    pub async fn run_pipeline(
        &self,
        pipeline: &Pipeline,
        out: &Path,
        timeout: Duration,
        tip: u128,
        mut progress: impl FnMut(&str),
    ) -> Result<(String, Vec<StageOutcome>)> {
        std::fs::create_dir_all(out)
            .map_err(|e| Error::io("the pipeline's results folder", out, e))?;
        let posted = self.post_pipeline(pipeline, tip).await?;
        let id: U256 = posted.pipeline_id.parse().unwrap_or_default();
        progress(&format!(
            "pipeline {id} posted ({} wei reserved); stage {} is job {}",
            posted.value, pipeline.stages[0].name, posted.first_job
        ));
        let mut done: Vec<StageOutcome> = Vec::new();
        let record = |done: &[StageOutcome]| -> Result<()> {
            let rec = PipelineRecord {
                name: pipeline.name.clone(),
                pipeline_id: id.to_string(),
                stage_count: pipeline.stages.len(),
                stages: done.to_vec(),
            };
            let path = out.join(RECORD_FILE);
            let text = serde_json::to_vec_pretty(&rec).unwrap_or_default();
            std::fs::write(&path, text).map_err(|e| Error::io("the pipeline record", path, e))
        };
        for (i, stage) in pipeline.stages.iter().enumerate() {
            let index = u8::try_from(i).unwrap_or(u8::MAX);
            let st = self
                .chain()
                .get_pipeline_stage(id, index)
                .await
                .map_err(chain)?;
            let job = JobId(st.jobId);
            let dest = out.join(&stage.name);
            let waited = if st.sharded {
                self.wait_sharded(job, timeout, |_| {}).await.map(|_| ())
            } else {
                self.wait(job, timeout, |_| {}).await.map(|_| ())
            };
            match (waited, self.stage_end(&st).await?) {
                (_, StageEnd::Verified) => {}
                (Err(e), _) => {
                    let _ = self.end_pipeline(id).await;
                    return Err(Error::Pipeline(format!("stage `{}`: {e}", stage.name)));
                }
                (Ok(()), StageEnd::NotVerified(why) | StageEnd::Running(why)) => {
                    let _ = self.end_pipeline(id).await;
                    return Err(Error::Pipeline(format!("stage `{}`: {why}", stage.name)));
                }
            }
            let (cid, shards) = self.stage_result(&st, &dest).await?;
            progress(&format!(
                "stage {}: verified, result ipfs://{cid}",
                stage.name
            ));
            done.push(StageOutcome {
                name: stage.name.clone(),
                kind: if st.sharded { "sharded" } else { "job" }.into(),
                job_id: Some(job.0.to::<u64>()),
                result_cid: Some(cid.to_string()),
                path: dest.clone(),
                shards,
                skipped: None,
            });
            record(&done)?;
            // Someone else may have advanced already.
            let p = self.chain().get_pipeline(id).await.map_err(chain)?;
            if p.state != PipelineState::Running || p.current != index {
                if p.state == PipelineState::Running {
                    progress(&format!("stage {}: started by another wallet", index + 1));
                    continue;
                }
                break;
            }
            if i + 1 == pipeline.stages.len() {
                self.end_pipeline(id).await?;
                break;
            }
            let next = match self.start_next(id, index + 1, &p, (&cid, &dest)).await {
                Ok(next) => next,
                Err(e) => {
                    // The next stage cannot be derived: nothing later can run, so the escrow
                    // still reserved for it goes back now.
                    let _ = self.chain().cancel_pipeline(id).await;
                    let _ = self.claim_pipeline_refunds().await;
                    return Err(Error::Pipeline(format!(
                        "{e}; pipeline {id} was cancelled and the escrow of its later stages refunded"
                    )));
                }
            };
            match next {
                Advanced::Started { job_id, .. } => progress(&format!(
                    "stage {}: posted as job {job_id}",
                    pipeline.stages[i + 1].name
                )),
                _ => {
                    let next = &pipeline.stages[i + 1];
                    progress(&format!(
                        "stage {}: the selection is empty; pipeline done",
                        next.name
                    ));
                    done.push(StageOutcome {
                        name: next.name.clone(),
                        kind: "sharded".into(),
                        job_id: None,
                        result_cid: None,
                        path: out.join(&next.name),
                        shards: Some(0),
                        skipped: Some(format!("stage `{}` selected no file", stage.name)),
                    });
                    record(&done)?;
                    break;
                }
            }
        }
        let owed = self.claim_pipeline_refunds().await?;
        if !owed.is_zero() {
            progress(&format!("claimed {owed} wei of pipeline refunds"));
        }
        Ok((id.to_string(), done))
    }
}
