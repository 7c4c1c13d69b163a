#![doc = include_str!("../README.md")]

mod constraint;
mod error;
pub mod spec;

pub use constraint::{Constraint, ConstraintOp};
pub use error::{Error, Result};
pub use spec::{
    DealParams, DockerEngine, EngineSpec, InputSource, InputSpec, JobSpec, OutputSpec, Resources,
    Verifier, WasmEngine, Windows, human_bytes,
};
