#![doc = include_str!("../README.md")]

mod batch;
pub mod bindings;
mod client;
mod cursor;
mod deploy;
mod error;
mod events;
mod follower;
mod ids;
mod params;
mod pipelines;
mod shards;
mod tx;

pub use alloy::primitives::{Address, B256, Bytes, U256, aliases::U96};
pub use alloy::signers::local::PrivateKeySigner;
pub use bindings::JobMarket::{FailReason, JobState, PaymentKind, SlashReason, Verifier};
pub use bindings::{AbiEnum, ParseEnumError};
pub use client::{
    Bid, Capabilities, ChainClient, ChainClientBuilder, Deal, Job, JobParams, Operator,
    OperatorStatus, commitment, sealed_hash, u96,
};
pub use cursor::{Cursor, CursorStore, JsonFileCursorStore, MemoryCursorStore};
pub use deploy::{DeployParams, Deployment, deploy};
pub use error::{ContractError, Error, Result};
pub use events::{ChainEvent, MarketEvent};
pub use follower::{Delivery, EventBatch, EventFollower, FollowerConfig, FollowerUpdate};
pub use ids::{JobId, ParseJobIdError};
pub use params::{job_params, shard_job_params};
pub use pipelines::{
    Pipeline, PipelineStage, PipelineState, StageInput, StageParams, empty_stage_input,
    pipeline_job_params, pipeline_shard_params, stage_value,
};
pub use shards::{
    BatchReveal, BatchState, LeavesProof, ShardBatch, ShardJob, ShardJobParams, ShardJobState,
    batch_commitment,
};
pub use tx::{TxConfig, TxManager};
