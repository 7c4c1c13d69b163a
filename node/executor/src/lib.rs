#![doc = include_str!("../README.md")]

mod docker;
mod error;
mod registry;
mod results;
mod spec;
mod wasm;

pub use docker::{DockerConfig, DockerExecutor, EXECUTION_LABEL, NODE_LABEL};
pub use error::{Error, Result};
pub use registry::{Executor, ExecutorRegistry};
pub use results::{TIMED_OUT_EXIT_CODE, hash_results, remove_stale_staging, write_timed_out};
pub use spec::{
    DockerSpec, EngineKind, EngineSpec, ExecutionId, ExecutionRequest, ExecutionResult, InputMount,
    Limits, ModuleHash, OutputVolume, RESERVED_RESULT_NAMES, Unsupported, WasmModule, WasmSpec,
};
pub use tokio_util::sync::CancellationToken;
pub use wasm::{CacheStats, WasmConfig, WasmExecutor};
