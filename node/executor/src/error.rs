use std::path::PathBuf;
use std::time::Duration;

use crate::spec::{ExecutionId, Unsupported};

/// Everything that can go wrong while preparing, running or collecting a job.
///
/// A job that runs to completion with a non-zero exit code is **not** an error:
/// it is an [`ExecutionResult`](crate::ExecutionResult) whose `exitCode` says so.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The request itself is malformed (bad output name, relative path, …).
    #[error("invalid execution request: {reason}")]
    InvalidRequest { reason: String },

    /// This executor cannot run this engine spec on this node.
    #[error("{0}")]
    Unsupported(Unsupported),

    /// No executor with this name is registered.
    #[error("no executor named `{name}` is registered on this node (registered: {registered})")]
    UnknownExecutor { name: String, registered: String },

    /// A results folder for this execution already exists.
    #[error(
        "results for execution {id} already exist at {}; remove that folder or use a new execution id",
        path.display()
    )]
    ResultsExist { id: ExecutionId, path: PathBuf },

    /// A file-system operation on the node failed.
    #[error("{action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The WASM module could not be compiled.
    #[error("the WASM module {module_hash} is not a valid module for this node: {message}")]
    WasmCompile {
        module_hash: String,
        message: String,
    },

    /// The module could not be instantiated (missing imports, no `_start`, …).
    #[error(
        "the WASM module {module_hash} cannot start: {message} (a job must be a WASI preview1 command exporting `{entrypoint}`)"
    )]
    WasmInstantiate {
        module_hash: String,
        entrypoint: String,
        message: String,
    },

    /// The WASM job used up its fuel (instruction budget).
    #[error(
        "the job used all of its fuel ({fuel} units, about one per WASM instruction) and was stopped; raise limits.fuel or shrink the job"
    )]
    FuelExhausted { fuel: u64 },

    /// The job tried to use more memory than allowed.
    #[error(
        "the job tried to use more than its memory limit of {limit_bytes} bytes and was stopped; raise limits.memory_bytes or use less memory"
    )]
    MemoryLimit { limit_bytes: u64 },

    /// The job ran longer than its timeout.
    #[error(
        "the job ran longer than its timeout of {timeout:?} and was stopped; raise limits.timeout or shrink the job"
    )]
    Timeout { timeout: Duration },

    /// The job wrote more output than allowed.
    #[error(
        "the job wrote more than its output limit of {limit_bytes} bytes to its output volumes and was stopped; raise limits.max_output_bytes or write less"
    )]
    OutputTooLarge { limit_bytes: u64 },

    /// The job was cancelled.
    #[error("execution {id} was cancelled")]
    Cancelled { id: ExecutionId },

    /// The Docker engine could not be reached.
    #[error(
        "cannot reach the Docker engine: {source}; start dockerd (or podman's API service) or point DOCKER_HOST at it"
    )]
    DockerUnavailable {
        #[source]
        source: bollard::errors::Error,
    },

    /// The job's image is not on this node.
    #[error(
        "image {image} is not present on this node; load it with `docker load -i <image.tar>` or `docker pull {image}`, then retry"
    )]
    ImageMissing { image: String },

    /// A Docker Engine API call failed.
    #[error("docker: {action} failed: {source}")]
    Docker {
        action: &'static str,
        #[source]
        source: bollard::errors::Error,
    },

    /// The Docker engine reported something the executor does not understand.
    #[error("docker: {0}")]
    DockerProtocol(String),

    /// The results folder could not be hashed.
    #[error("hashing the results folder {}: {message}", path.display())]
    Hash { path: PathBuf, message: String },

    /// A worker task died (panic in a blocking task).
    #[error("internal executor failure: {0}")]
    Internal(String),
}

impl Error {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Self::Io {
            action,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn invalid(reason: impl Into<String>) -> Self {
        Self::InvalidRequest {
            reason: reason.into(),
        }
    }

    /// True when the error is a resource limit firing (fuel, memory, time, output size).
    pub fn is_limit(&self) -> bool {
        matches!(
            self,
            Self::FuelExhausted { .. }
                | Self::MemoryLimit { .. }
                | Self::Timeout { .. }
                | Self::OutputTooLarge { .. }
        )
    }
}

/// Result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
