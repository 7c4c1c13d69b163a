#![doc = include_str!("../README.md")]

mod constraint;
mod error;
mod network;
pub mod pipeline;
pub mod shard;
pub mod spec;

pub use constraint::{Constraint, ConstraintOp};
pub use error::{Error, Result};
pub use network::Network;
pub use pipeline::{Pipeline, Stage};
pub use shard::{Manifest, ShardEntry, ShardRule, batch_count, batch_range, glob_match};
pub use spec::{
    DealParams, DockerEngine, EngineSpec, InputSource, InputSpec, JobSpec, OutputSpec, PinSpec,
    Resources, Verifier, WasmEngine, Windows, default_min_bids, human_bytes,
};
