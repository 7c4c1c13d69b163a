//! `PipelineMarket` (pipelines, docs/pipelines.md): posting a pipeline with the escrow of
//! every stage, advancing it, cancelling it, claiming refunds and tips, reads.

use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::rpc::types::TransactionReceipt;
use alloy::sol_types::{SolEvent, SolValue};

use crate::bindings::PipelineMarket;
use crate::client::{ChainClient, call_error};
use crate::error::{Error, Result};
use crate::ids::JobId;

pub use crate::bindings::PipelineMarket::{
    Pipeline, PipelineState, Stage as PipelineStage, StageInput, StageParams,
};

/// The PipelineMarket's copy of a `JobParams` (the same ABI tuple as the JobMarket's).
pub fn pipeline_job_params(p: &crate::JobParams) -> PipelineMarket::JobParams {
    // Both are the ABI tuple of IJobMarket.JobParams: one decodes what the other encodes.
    PipelineMarket::JobParams::abi_decode(&p.abi_encode())
        .expect("IJobMarket.JobParams decodes from its own encoding")
}

/// The PipelineMarket's copy of a `ShardJobParams`.
pub fn pipeline_shard_params(p: &crate::ShardJobParams) -> PipelineMarket::ShardJobParams {
    PipelineMarket::ShardJobParams::abi_decode(&p.abi_encode())
        .expect("IShardMarketTypes.ShardJobParams decodes from its own encoding")
}

/// A `StageInput` with nothing in it: what `advance` takes to end a pipeline (after its last
/// stage, or a stage that did not verify); the caller fills in what starting a stage needs.
pub fn empty_stage_input() -> StageInput {
    StageInput {
        specCid: Bytes::new(),
        specHash: B256::ZERO,
        manifestCid: Bytes::new(),
        manifestHash: B256::ZERO,
        shardCount: 0,
        previousResult: B256::ZERO,
    }
}

/// What a stage reserves at post: its escrow (plain: concurrency × max price; sharded: shard
/// count × concurrency × price per shard) and its tip.
pub fn stage_value(stage: &StageParams) -> U256 {
    let escrow = if stage.sharded {
        let s = &stage.shard;
        U256::from(s.shardCount) * U256::from(s.concurrency) * U256::from(s.pricePerShard)
    } else {
        U256::from(stage.job.concurrency) * U256::from(stage.job.maxPrice)
    };
    escrow + U256::from(stage.tip)
}

impl ChainClient {
    /// The PipelineMarket's address.
    pub fn pipeline_market_address(&self) -> Result<Address> {
        self.deployment()?
            .pipeline_market
            .ok_or(Error::NoPipelineMarket)
    }

    fn pipeline_market(
        &self,
    ) -> Result<PipelineMarket::PipelineMarketInstance<alloy::providers::DynProvider>> {
        Ok(PipelineMarket::new(
            self.pipeline_market_address()?,
            self.provider().clone(),
        ))
    }

    /// Posts a pipeline and its stage 0, paying every stage's escrow and tip.
    pub async fn post_pipeline(
        &self,
        stages: Vec<StageParams>,
        first: StageInput,
    ) -> Result<(U256, TransactionReceipt)> {
        let to = self.pipeline_market_address()?;
        let value = stages
            .iter()
            .map(stage_value)
            .fold(U256::ZERO, |a, b| a + b);
        let receipt = self
            .send_call(
                to,
                PipelineMarket::postPipelineCall { stages, first },
                value,
            )
            .await?;
        let posted = receipt
            .inner
            .logs()
            .iter()
            .filter(|l| l.address() == to)
            .find_map(|l| PipelineMarket::PipelinePosted::decode_log(&l.inner).ok())
            .ok_or(Error::MissingEvent {
                tx_hash: receipt.transaction_hash,
                event: "PipelinePosted",
                contract: "PipelineMarket",
            })?;
        Ok((posted.pipelineId, receipt))
    }

    /// `advance`: settles the current stage (tip, or the end of the pipeline) and starts the
    /// next with `input`.
    pub async fn advance_pipeline(
        &self,
        id: U256,
        input: StageInput,
    ) -> Result<TransactionReceipt> {
        let to = self.pipeline_market_address()?;
        self.send_call(
            to,
            PipelineMarket::advanceCall {
                pipelineId: id,
                input,
            },
            U256::ZERO,
        )
        .await
    }

    /// `cancel` (the creator): no later stage starts; their escrow and tips are refunded.
    pub async fn cancel_pipeline(&self, id: U256) -> Result<TransactionReceipt> {
        let to = self.pipeline_market_address()?;
        self.send_call(
            to,
            PipelineMarket::cancelCall { pipelineId: id },
            U256::ZERO,
        )
        .await
    }

    /// Withdraws this key's PipelineMarket refunds and tips.
    pub async fn claim_pipeline_market(&self) -> Result<TransactionReceipt> {
        let to = self.pipeline_market_address()?;
        self.send_call(to, PipelineMarket::claimCall {}, U256::ZERO)
            .await
    }

    /// What `who` may claim from the PipelineMarket.
    pub async fn pipeline_withdrawable(&self, who: Address) -> Result<U256> {
        self.pipeline_market()?
            .withdrawable(who)
            .call()
            .await
            .map_err(call_error("withdrawable"))
    }

    /// A pipeline as the contract holds it.
    pub async fn get_pipeline(&self, id: U256) -> Result<Pipeline> {
        self.pipeline_market()?
            .getPipeline(id)
            .call()
            .await
            .map_err(call_error("getPipeline"))
    }

    /// One stage of a pipeline.
    pub async fn get_pipeline_stage(&self, id: U256, stage: u8) -> Result<PipelineStage> {
        self.pipeline_market()?
            .getStage(id, stage)
            .call()
            .await
            .map_err(call_error("getStage"))
    }

    /// The pipeline and stage a job runs: `None` for a job no pipeline posted (or a
    /// deployment without a PipelineMarket). `sharded`: a ShardMarket job.
    pub async fn stage_of(&self, job: JobId, sharded: bool) -> Result<Option<(U256, u8)>> {
        let Some(pipelines) = self.deployment()?.pipeline_market else {
            return Ok(None);
        };
        let market = if sharded {
            self.deployment()?
                .shard_market
                .ok_or(Error::NoShardMarket)?
        } else {
            self.deployment()?.job_market
        };
        let got = PipelineMarket::new(pipelines, self.provider().clone())
            .stageOf(market, job.0)
            .call()
            .await
            .map_err(call_error("stageOf"))?;
        Ok((!got.pipelineId.is_zero()).then_some((got.pipelineId, got.stage)))
    }
}
