//! What an executor is asked to run and what it hands back.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Component, Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use cid::Cid;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// Names reserved for the files every results folder has.
pub const RESERVED_RESULT_NAMES: [&str; 3] = ["stdout", "stderr", "exitCode"];

/// Identifies one execution of one job on one node. Used in folder names and
/// container labels, so it is limited to `[A-Za-z0-9._-]`, 1 to 128
/// characters, not starting with `.` or `-`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExecutionId(String);

impl ExecutionId {
    /// Checks and wraps an execution id.
    pub fn new(id: impl Into<String>) -> Result<Self> {
        let id = id.into();
        let ok = !id.is_empty()
            && id.len() <= 128
            && !id.starts_with(['.', '-'])
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if ok {
            Ok(Self(id))
        } else {
            Err(Error::invalid(format!(
                "execution id {id:?} must be 1 to 128 characters of [A-Za-z0-9._-], not starting with '.' or '-'"
            )))
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ExecutionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for ExecutionId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::new(s)
    }
}

/// The SHA-256 of a WASM module's bytes: the key of the compiled-module cache.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ModuleHash(pub [u8; 32]);

impl ModuleHash {
    /// Hashes module bytes.
    pub fn of(bytes: &[u8]) -> Self {
        Self(Sha256::digest(bytes).into())
    }
}

impl fmt::Display for ModuleHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", hex::encode(self.0))
    }
}

impl fmt::Debug for ModuleHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Where a WASM module's bytes come from.
#[derive(Debug, Clone)]
pub enum WasmModule {
    /// A `.wasm` file on this node (already fetched by a storage provider).
    Path(PathBuf),
    /// The module bytes themselves.
    Bytes(Arc<[u8]>),
}

/// A WASI preview1 command module and how to start it.
#[derive(Debug, Clone)]
pub struct WasmSpec {
    pub module: WasmModule,
    /// The exported function to call; `_start` for every WASI command.
    pub entrypoint: String,
    /// `argv[1..]`; `argv[0]` is the entrypoint name.
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Seed of the job's deterministic random numbers (`random_get`). Every
    /// node running the job must use the same seed; the node derives it from
    /// the job id.
    pub random_seed: u64,
}

impl WasmSpec {
    /// A spec running `_start` of `module` with no args or env and seed 0.
    pub fn new(module: WasmModule) -> Self {
        Self {
            module,
            entrypoint: "_start".into(),
            args: Vec::new(),
            env: Vec::new(),
            random_seed: 0,
        }
    }
}

/// A container image and how to start it.
#[derive(Debug, Clone, Default)]
pub struct DockerSpec {
    /// Image reference as `docker images` shows it, e.g. `shoal-test/busybox:latest`.
    pub image: String,
    /// Overrides the image's entrypoint when set.
    pub entrypoint: Option<Vec<String>>,
    /// Overrides the image's command when set.
    pub cmd: Option<Vec<String>>,
    pub env: Vec<(String, String)>,
    pub working_dir: Option<String>,
}

impl DockerSpec {
    /// Runs `sh -c script` in `image`.
    pub fn shell(image: impl Into<String>, script: impl Into<String>) -> Self {
        Self {
            image: image.into(),
            cmd: Some(vec!["sh".into(), "-c".into(), script.into()]),
            ..Self::default()
        }
    }
}

/// The engine a job runs on.
#[derive(Debug, Clone)]
pub enum EngineSpec {
    Wasm(WasmSpec),
    Docker(DockerSpec),
}

/// The kinds of engine, which are also the names executors register under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EngineKind {
    Wasm,
    Docker,
}

impl EngineKind {
    /// The executor name for this kind (`wasm` or `docker`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Wasm => "wasm",
            Self::Docker => "docker",
        }
    }
}

impl fmt::Display for EngineKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl EngineSpec {
    /// Which kind of engine this spec needs.
    pub fn kind(&self) -> EngineKind {
        match self {
            Self::Wasm(_) => EngineKind::Wasm,
            Self::Docker(_) => EngineKind::Docker,
        }
    }
}

/// An input already fetched to this node, shown to the job read-only.
#[derive(Debug, Clone)]
pub struct InputMount {
    /// A file or folder on the node.
    pub host_path: PathBuf,
    /// Absolute path the job sees it at, e.g. `/inputs/scene.pgm`.
    pub container_path: String,
}

/// A named, writable output folder. Its contents become the folder
/// `<name>` at the top of the results folder.
#[derive(Debug, Clone)]
pub struct OutputVolume {
    /// `[A-Za-z0-9._-]`, not starting with `.`, not `stdout`, `stderr` or `exitCode`.
    pub name: String,
    /// Absolute path the job writes to, e.g. `/outputs`.
    pub container_path: String,
}

/// Resource limits of one execution.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// WASM: fuel units (about one per instruction). Ignored by Docker.
    pub fuel: u64,
    /// Docker: CPU share in thousandths of a core (1000 = one core). WASM
    /// jobs are single-threaded.
    pub cpu_millis: u32,
    /// Memory: WASM linear memory, or the container's memory (swap off).
    pub memory_bytes: u64,
    /// Docker: maximum number of processes and threads in the container.
    pub pids: u32,
    /// Wall-clock time from start to finish.
    pub timeout: Duration,
    /// Bytes of stdout kept; the rest is dropped and `stdout_truncated` set.
    pub max_stdout_bytes: u64,
    /// Bytes of stderr kept; the rest is dropped and `stderr_truncated` set.
    pub max_stderr_bytes: u64,
    /// Total bytes the job may write to its output volumes.
    pub max_output_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            fuel: 50_000_000_000,
            cpu_millis: 1000,
            memory_bytes: 512 << 20,
            pids: 256,
            timeout: Duration::from_secs(600),
            max_stdout_bytes: 16 << 20,
            max_stderr_bytes: 16 << 20,
            max_output_bytes: 1 << 30,
        }
    }
}

/// One job execution as an executor sees it.
#[derive(Debug, Clone)]
pub struct ExecutionRequest {
    pub execution_id: ExecutionId,
    pub engine: EngineSpec,
    pub inputs: Vec<InputMount>,
    pub outputs: Vec<OutputVolume>,
    pub limits: Limits,
    /// Docker only: allow network access (WASM jobs never have sockets).
    pub network: bool,
    /// Docker only, with `network`: attach the container to this Docker network (e.g. the
    /// internal egress network of [`crate::DockerExecutor::egress_network`], whose only way
    /// out is the node's filtering proxy) instead of the default bridge.
    pub docker_network: Option<String>,
}

impl ExecutionRequest {
    /// A request with no inputs or outputs, default limits and no network.
    pub fn new(execution_id: ExecutionId, engine: EngineSpec) -> Self {
        Self {
            execution_id,
            engine,
            inputs: Vec::new(),
            outputs: Vec::new(),
            limits: Limits::default(),
            network: false,
            docker_network: None,
        }
    }

    /// Checks names and paths; every executor calls it before doing anything.
    pub fn validate(&self) -> Result<()> {
        let mut paths = BTreeSet::new();
        for input in &self.inputs {
            check_container_path(&input.container_path)?;
            if !paths.insert(input.container_path.as_str()) {
                return Err(Error::invalid(format!(
                    "two mounts use the path {}",
                    input.container_path
                )));
            }
        }
        let mut names = BTreeSet::new();
        for output in &self.outputs {
            check_output_name(&output.name)?;
            if !names.insert(output.name.as_str()) {
                return Err(Error::invalid(format!(
                    "two outputs are named {}",
                    output.name
                )));
            }
            check_container_path(&output.container_path)?;
            if !paths.insert(output.container_path.as_str()) {
                return Err(Error::invalid(format!(
                    "two mounts use the path {}",
                    output.container_path
                )));
            }
        }
        if let EngineSpec::Wasm(spec) = &self.engine
            && spec.entrypoint.is_empty()
        {
            return Err(Error::invalid("the WASM entrypoint is empty; use _start"));
        }
        if let EngineSpec::Docker(spec) = &self.engine
            && spec.image.trim().is_empty()
        {
            return Err(Error::invalid("the Docker image is empty"));
        }
        if self.limits.timeout.is_zero() {
            return Err(Error::invalid("limits.timeout is zero"));
        }
        Ok(())
    }
}

fn check_output_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        && !RESERVED_RESULT_NAMES.contains(&name);
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "output name {name:?} must be [A-Za-z0-9._-], not start with '.', and not be stdout, stderr or exitCode"
        )))
    }
}

fn check_container_path(path: &str) -> Result<()> {
    let p = Path::new(path);
    let normal = p
        .components()
        .all(|c| matches!(c, Component::RootDir | Component::Normal(_)));
    if p.is_absolute() && normal && p.components().count() > 1 && !path.contains(':') {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "mount path {path:?} must be absolute, below '/', without '..', '.' or ':'"
        )))
    }
}

/// What a finished execution hands back.
#[derive(Debug, Clone)]
pub struct ExecutionResult {
    pub execution_id: ExecutionId,
    /// `stdout`, `stderr`, `exitCode` and one folder per named output.
    pub results_dir: PathBuf,
    pub exit_code: i32,
    /// UnixFS root (`unixfs-v1-2025`) of `results_dir`: the result hash.
    pub result_hash: Cid,
    pub stdout_truncated: bool,
    pub stderr_truncated: bool,
    /// Wall time from start to exit.
    pub duration: Duration,
    /// WASM: fuel the job used.
    pub fuel_consumed: Option<u64>,
}

/// Why an executor cannot run an engine spec on this node.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Unsupported {
    #[error("the {executor} executor does not run {engine} jobs")]
    WrongEngine {
        executor: &'static str,
        engine: EngineKind,
    },
    #[error("image {image} is not present on this node")]
    ImageMissing { image: String },
    #[error("the {executor} executor is not available on this node: {reason}")]
    NotAvailable {
        executor: &'static str,
        reason: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn execution_ids_are_checked() {
        assert!(ExecutionId::new("job-1.node_2").is_ok());
        for bad in ["", ".hidden", "-x", "a/b", "a b", &"x".repeat(129)] {
            assert!(ExecutionId::new(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn requests_are_validated() {
        let id = ExecutionId::new("v").expect("valid id");
        let mut req =
            ExecutionRequest::new(id, EngineSpec::Docker(DockerSpec::shell("img", "true")));
        assert!(req.validate().is_ok());
        for bad in ["stdout", "exitCode", ".x", "a/b", ""] {
            req.outputs = vec![OutputVolume {
                name: bad.into(),
                container_path: "/out".into(),
            }];
            assert!(req.validate().is_err(), "output name {bad:?} accepted");
        }
        for bad in ["relative", "/", "/a/../b", "/a:ro"] {
            req.outputs = vec![OutputVolume {
                name: "out".into(),
                container_path: bad.into(),
            }];
            assert!(req.validate().is_err(), "path {bad:?} accepted");
        }
        req.outputs = vec![
            OutputVolume {
                name: "a".into(),
                container_path: "/out".into(),
            },
            OutputVolume {
                name: "b".into(),
                container_path: "/out".into(),
            },
        ];
        assert!(req.validate().is_err(), "duplicate path accepted");
    }
}
