//! Deterministic WASM jobs on wasmtime with WASI preview1.
//!
//! Determinism by construction: the clocks are logical (they advance by one
//! microsecond per read from a fixed epoch), random numbers come from a
//! generator seeded by the job spec, NaNs are canonicalised, threads and
//! relaxed SIMD are off and there are no sockets. Limits: fuel, memory (a
//! resource limiter that traps), wall time and cancellation (epoch
//! interruption driven by a ticker thread), stdout/stderr caps and an output
//! size cap.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use tokio_util::sync::CancellationToken;
use wasmtime::{
    Config, Engine, InstancePre, Linker, Module, ResourceLimiter, Store, Trap, UpdateDeadline,
    WasmFeatures,
};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};
use wasmtime_wasi::{FsPerms, HostMonotonicClock, HostWallClock, I32Exit, WasiCtxBuilder};

use crate::error::{Error, Result};
use crate::registry::Executor;
use crate::results::{Collected, Staging};
use crate::spec::{
    EngineKind, EngineSpec, ExecutionRequest, ExecutionResult, InputMount, ModuleHash, Unsupported,
    WasmModule, WasmSpec,
};

/// `argv[0]` of every WASM job: the same on every node, whatever the module file is called.
const ARGV0: &str = "job.wasm";
/// The logical wall clock starts at 2000-01-01T00:00:00Z.
const CLOCK_EPOCH_SECS: u64 = 946_684_800;
/// Each clock read advances logical time by this much.
const CLOCK_STEP_NANOS: u64 = 1_000;
/// The output volumes are measured every this many epoch ticks.
const OUTPUT_CHECK_TICKS: u32 = 10;
/// The exit code recorded when the guest traps (as a C program that aborts).
pub const TRAP_EXIT_CODE: i32 = 134;

/// Settings of a [`WasmExecutor`].
#[derive(Debug, Clone)]
pub struct WasmConfig {
    /// Results folders are made under this folder, one per execution id.
    pub results_root: PathBuf,
    /// Compiled modules kept in memory (least recently used dropped first).
    pub module_cache_capacity: usize,
    /// How often running jobs check their deadline and cancellation.
    pub epoch_tick: Duration,
}

impl WasmConfig {
    /// Defaults: 64 cached modules, a 10 ms tick.
    pub fn new(results_root: impl Into<PathBuf>) -> Self {
        Self {
            results_root: results_root.into(),
            module_cache_capacity: 64,
            epoch_tick: Duration::from_millis(10),
        }
    }
}

/// Compiled-module cache counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Runs that found their module already compiled.
    pub hits: u64,
    /// Runs that compiled their module.
    pub compiles: u64,
    /// Modules currently cached.
    pub entries: usize,
}

/// Runs deterministic WASI preview1 command modules.
#[derive(Clone)]
pub struct WasmExecutor {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    linker: Linker<JobState>,
    cache: Mutex<ModuleCache>,
    config: WasmConfig,
    _ticker: Ticker,
}

#[derive(Default)]
struct ModuleCache {
    modules: HashMap<ModuleHash, CachedModule>,
    clock: u64,
    hits: u64,
    compiles: u64,
}

struct CachedModule {
    pre: InstancePre<JobState>,
    last_used: u64,
}

/// Advances the engine's epoch every tick until dropped.
struct Ticker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Ticker {
    fn start(engine: Engine, tick: Duration) -> Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("wasm-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(tick);
                    engine.increment_epoch();
                }
            })
            .map_err(|e| Error::Internal(format!("cannot start the WASM epoch thread: {e}")))?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl WasmExecutor {
    /// Builds the engine (deterministic settings) and starts its epoch ticker.
    pub fn new(config: WasmConfig) -> Result<Self> {
        let mut wasm = Config::new();
        wasm.consume_fuel(true)
            .epoch_interruption(true)
            .cranelift_nan_canonicalization(true)
            .relaxed_simd_deterministic(true)
            .wasm_relaxed_simd(false)
            .wasm_features(
                WasmFeatures::THREADS | WasmFeatures::SHARED_EVERYTHING_THREADS,
                false,
            );
        let engine = Engine::new(&wasm)
            .map_err(|e| Error::Internal(format!("cannot configure wasmtime: {e:#}")))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |s: &mut JobState| &mut s.wasi)
            .map_err(|e| Error::Internal(format!("cannot link WASI: {e:#}")))?;
        let ticker = Ticker::start(engine.clone(), config.epoch_tick)?;
        Ok(Self {
            inner: Arc::new(Inner {
                engine,
                linker,
                cache: Mutex::new(ModuleCache::default()),
                config,
                _ticker: ticker,
            }),
        })
    }

    /// Compiled-module cache counters.
    pub fn cache_stats(&self) -> CacheStats {
        let cache = self.inner.cache();
        CacheStats {
            hits: cache.hits,
            compiles: cache.compiles,
            entries: cache.modules.len(),
        }
    }

    /// Compiles a module into the cache ahead of its first run (blocking).
    pub fn precompile(&self, module: &WasmModule) -> Result<ModuleHash> {
        let bytes = load_module(module)?;
        let hash = ModuleHash::of(&bytes);
        self.inner.instance_pre(hash, &bytes, "_start")?;
        Ok(hash)
    }
}

impl Inner {
    fn cache(&self) -> MutexGuard<'_, ModuleCache> {
        self.cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn instance_pre(
        &self,
        hash: ModuleHash,
        bytes: &[u8],
        entrypoint: &str,
    ) -> Result<InstancePre<JobState>> {
        {
            let mut cache = self.cache();
            cache.clock += 1;
            let now = cache.clock;
            if let Some(entry) = cache.modules.get_mut(&hash) {
                entry.last_used = now;
                let pre = entry.pre.clone();
                cache.hits += 1;
                return Ok(pre);
            }
        }
        let module = Module::new(&self.engine, bytes).map_err(|e| Error::WasmCompile {
            module_hash: hash.to_string(),
            message: format!("{e:#}"),
        })?;
        let pre = self
            .linker
            .instantiate_pre(&module)
            .map_err(|e| Error::WasmInstantiate {
                module_hash: hash.to_string(),
                entrypoint: entrypoint.to_owned(),
                message: format!("{e:#}"),
            })?;
        let mut cache = self.cache();
        cache.compiles += 1;
        let now = cache.clock;
        cache.modules.insert(
            hash,
            CachedModule {
                pre: pre.clone(),
                last_used: now,
            },
        );
        while cache.modules.len() > self.config.module_cache_capacity.max(1) {
            let oldest = cache
                .modules
                .iter()
                .min_by_key(|(_, m)| m.last_used)
                .map(|(h, _)| *h);
            match oldest {
                Some(h) => cache.modules.remove(&h),
                None => break,
            };
        }
        Ok(pre)
    }

    /// Runs one job on the current (blocking) thread.
    fn run_blocking(
        &self,
        req: &ExecutionRequest,
        spec: &WasmSpec,
        cancel: CancellationToken,
    ) -> Result<ExecutionResult> {
        let started = Instant::now();
        let limits = &req.limits;
        let mut staging =
            Staging::create(&self.config.results_root, &req.execution_id, &req.outputs)?;

        let bytes = load_module(&spec.module)?;
        let hash = ModuleHash::of(&bytes);
        let pre = self.instance_pre(hash, &bytes, &spec.entrypoint)?;
        drop(bytes);

        let stdout = CappedPipe::new(limits.max_stdout_bytes);
        let stderr = CappedPipe::new(limits.max_stderr_bytes);
        let mut wasi = WasiCtxBuilder::new();
        wasi.allow_blocking_current_thread(true)
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .arg(ARGV0)
            .args(&spec.args)
            .envs(&spec.env)
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        let time = Arc::new(AtomicU64::new(0));
        wasi.wall_clock(LogicalClock(time.clone()))
            .monotonic_clock(LogicalClock(time));
        wasi.secure_random(SeededRng::new(spec.random_seed, 1))
            .insecure_random(SeededRng::new(spec.random_seed, 2))
            .insecure_random_seed(u128::from(SeededRng::new(spec.random_seed, 3).next()));
        preopen_inputs(&mut wasi, &mut staging, &req.inputs)?;
        for output in &req.outputs {
            let host = staging.output_dir(&output.name);
            wasi.preopened_dir(&host, &output.container_path, FsPerms::ReadWrite)
                .map_err(|e| Error::io("opening the output folder", &host, to_io(e)))?;
        }

        let state = JobState {
            wasi: wasi.build_p1(),
            memory_limit: usize::try_from(limits.memory_bytes).unwrap_or(usize::MAX),
            memory_exceeded: false,
            stop: None,
            deadline: started + limits.timeout,
            cancel,
            ticks: 0,
            output_dirs: req
                .outputs
                .iter()
                .map(|o| staging.output_dir(&o.name))
                .collect(),
            max_output_bytes: limits.max_output_bytes,
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s: &mut JobState| -> &mut dyn ResourceLimiter { s });
        store
            .set_fuel(limits.fuel)
            .map_err(|e| Error::Internal(format!("cannot set fuel: {e:#}")))?;
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|mut ctx| {
            let state = ctx.data_mut();
            match state.check() {
                None => Ok(UpdateDeadline::Continue(1)),
                Some(stop) => {
                    state.stop = Some(stop);
                    Err(wasmtime::Error::msg("execution stopped by the host"))
                }
            }
        });

        let outcome = pre
            .instantiate(&mut store)
            .and_then(|instance| instance.get_typed_func::<(), ()>(&mut store, &spec.entrypoint))
            .map_err(|e| (e, true))
            .and_then(|start| start.call(&mut store, ()).map_err(|e| (e, false)));
        let fuel_consumed = limits.fuel.saturating_sub(store.get_fuel().unwrap_or(0));
        let state = store.data();
        let mut trap_note = None;
        let exit_code = match outcome {
            Ok(()) => 0,
            Err((e, instantiating)) => {
                if let Some(stop) = state.stop {
                    return Err(stop.into_error(req, limits));
                }
                if state.memory_exceeded {
                    return Err(Error::MemoryLimit {
                        limit_bytes: limits.memory_bytes,
                    });
                }
                if let Some(exit) = e.downcast_ref::<I32Exit>() {
                    exit.0
                } else if let Some(Trap::OutOfFuel) = e.downcast_ref::<Trap>() {
                    return Err(Error::FuelExhausted { fuel: limits.fuel });
                } else if instantiating {
                    return Err(Error::WasmInstantiate {
                        module_hash: hash.to_string(),
                        entrypoint: spec.entrypoint.clone(),
                        message: format!("{e:#}"),
                    });
                } else if let Some(trap) = e.downcast_ref::<Trap>() {
                    trap_note = Some(format!("\nwasm trap: {trap}\n"));
                    TRAP_EXIT_CODE
                } else {
                    return Err(Error::Internal(format!(
                        "the WASM job failed in a host call: {e:#}"
                    )));
                }
            }
        };
        let duration = started.elapsed();
        drop(store);

        if staging.output_bytes(&req.outputs) > limits.max_output_bytes {
            return Err(Error::OutputTooLarge {
                limit_bytes: limits.max_output_bytes,
            });
        }
        let (stdout, stdout_truncated) = stdout.take();
        let (mut stderr, mut stderr_truncated) = stderr.take();
        if let Some(note) = trap_note {
            let room = usize::try_from(limits.max_stderr_bytes)
                .unwrap_or(usize::MAX)
                .saturating_sub(stderr.len());
            stderr_truncated |= note.len() > room;
            stderr.extend_from_slice(&note.as_bytes()[..note.len().min(room)]);
        }
        let collected = Collected {
            stdout,
            stderr,
            exit_code,
        };
        let (results_dir, result_hash) = staging.finish(&collected, &req.outputs)?;
        Ok(ExecutionResult {
            execution_id: req.execution_id.clone(),
            results_dir,
            exit_code,
            result_hash,
            stdout_truncated,
            stderr_truncated,
            duration,
            fuel_consumed: Some(fuel_consumed),
        })
    }
}

#[async_trait]
impl Executor for WasmExecutor {
    fn name(&self) -> &'static str {
        EngineKind::Wasm.name()
    }

    async fn is_installed(&self) -> bool {
        true
    }

    async fn can_run(&self, engine: &EngineSpec) -> Result<(), Unsupported> {
        match engine {
            EngineSpec::Wasm(_) => Ok(()),
            other => Err(Unsupported::WrongEngine {
                executor: self.name(),
                engine: other.kind(),
            }),
        }
    }

    async fn run(
        &self,
        req: ExecutionRequest,
        cancel: CancellationToken,
    ) -> Result<ExecutionResult> {
        req.validate()?;
        let EngineSpec::Wasm(spec) = req.engine.clone() else {
            return Err(Error::Unsupported(Unsupported::WrongEngine {
                executor: self.name(),
                engine: req.engine.kind(),
            }));
        };
        if cancel.is_cancelled() {
            return Err(Error::Cancelled {
                id: req.execution_id,
            });
        }
        // Dropping this future (node shutdown) cancels the job too, so the
        // blocking task stops within a tick and removes its staging folder.
        let job_cancel = cancel.child_token();
        let _stop_on_drop = job_cancel.clone().drop_guard();
        let inner = self.inner.clone();
        let id = req.execution_id.clone();
        tokio::task::spawn_blocking(move || inner.run_blocking(&req, &spec, job_cancel))
            .await
            .map_err(|e| Error::Internal(format!("the WASM task for execution {id} died: {e}")))?
    }
}

fn load_module(module: &WasmModule) -> Result<Arc<[u8]>> {
    match module {
        WasmModule::Bytes(bytes) => Ok(bytes.clone()),
        WasmModule::Path(path) => std::fs::read(path)
            .map(Arc::from)
            .map_err(|e| Error::io("reading the WASM module", path, e)),
    }
}

/// Folders are preopened read-only where the spec says. Single files are
/// hard-linked (or copied) into a scratch folder per guest parent folder,
/// which is preopened in their place, so the guest sees only its inputs.
fn preopen_inputs(
    wasi: &mut WasiCtxBuilder,
    staging: &mut Staging,
    inputs: &[InputMount],
) -> Result<()> {
    let mut file_dirs: BTreeMap<String, PathBuf> = BTreeMap::new();
    for input in inputs {
        let meta = std::fs::metadata(&input.host_path)
            .map_err(|e| Error::io("reading the input", &input.host_path, e))?;
        if meta.is_dir() {
            wasi.preopened_dir(&input.host_path, &input.container_path, FsPerms::ReadOnly)
                .map_err(|e| Error::io("opening the input folder", &input.host_path, to_io(e)))?;
            continue;
        }
        let guest = Path::new(&input.container_path);
        let (Some(parent), Some(name)) = (guest.parent(), guest.file_name()) else {
            return Err(Error::invalid(format!(
                "input path {} has no folder",
                input.container_path
            )));
        };
        let parent = parent.to_string_lossy().into_owned();
        let dir = match file_dirs.get(&parent) {
            Some(dir) => dir.clone(),
            None => {
                let dir = staging.scratch_dir(&format!("in{}", file_dirs.len()))?;
                file_dirs.insert(parent.clone(), dir.clone());
                dir
            }
        };
        let target = dir.join(name);
        if std::fs::hard_link(&input.host_path, &target).is_err() {
            std::fs::copy(&input.host_path, &target)
                .map_err(|e| Error::io("staging the input", &input.host_path, e))?;
        }
    }
    for (guest, dir) in &file_dirs {
        if inputs.iter().any(|i| i.container_path == *guest) {
            return Err(Error::invalid(format!(
                "{guest} is mounted as a folder and also holds input files"
            )));
        }
        wasi.preopened_dir(dir, guest, FsPerms::ReadOnly)
            .map_err(|e| Error::io("opening the input folder", dir, to_io(e)))?;
    }
    Ok(())
}

fn to_io(e: wasmtime::Error) -> std::io::Error {
    std::io::Error::other(format!("{e:#}"))
}

/// What a running job's store holds.
struct JobState {
    wasi: WasiP1Ctx,
    memory_limit: usize,
    memory_exceeded: bool,
    stop: Option<Stop>,
    deadline: Instant,
    cancel: CancellationToken,
    ticks: u32,
    output_dirs: Vec<PathBuf>,
    max_output_bytes: u64,
}

#[derive(Debug, Clone, Copy)]
enum Stop {
    Cancelled,
    Timeout,
    OutputTooLarge,
}

impl Stop {
    fn into_error(self, req: &ExecutionRequest, limits: &crate::spec::Limits) -> Error {
        match self {
            Self::Cancelled => Error::Cancelled {
                id: req.execution_id.clone(),
            },
            Self::Timeout => Error::Timeout {
                timeout: limits.timeout,
            },
            Self::OutputTooLarge => Error::OutputTooLarge {
                limit_bytes: limits.max_output_bytes,
            },
        }
    }
}

impl JobState {
    /// Called every epoch tick while the guest runs.
    fn check(&mut self) -> Option<Stop> {
        if self.cancel.is_cancelled() {
            return Some(Stop::Cancelled);
        }
        if Instant::now() >= self.deadline {
            return Some(Stop::Timeout);
        }
        self.ticks = self.ticks.wrapping_add(1);
        if self.ticks.is_multiple_of(OUTPUT_CHECK_TICKS) {
            let written: u64 = self
                .output_dirs
                .iter()
                .map(|d| crate::results::tree_size(d))
                .sum();
            if written > self.max_output_bytes {
                return Some(Stop::OutputTooLarge);
            }
        }
        None
    }
}

impl ResourceLimiter for JobState {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_limit {
            self.memory_exceeded = true;
            return Err(wasmtime::Error::msg("memory limit reached"));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1 << 20)
    }
}

/// A logical clock shared by the wall and monotonic clocks: every read
/// advances it by [`CLOCK_STEP_NANOS`], so time moves forward but the same
/// program sees the same times on every node.
struct LogicalClock(Arc<AtomicU64>);

impl LogicalClock {
    fn tick(&self) -> u64 {
        self.0.fetch_add(CLOCK_STEP_NANOS, Ordering::Relaxed) + CLOCK_STEP_NANOS
    }
}

impl HostWallClock for LogicalClock {
    fn resolution(&self) -> Duration {
        Duration::from_nanos(CLOCK_STEP_NANOS)
    }
    fn now(&self) -> Duration {
        Duration::from_secs(CLOCK_EPOCH_SECS) + Duration::from_nanos(self.tick())
    }
}

impl HostMonotonicClock for LogicalClock {
    fn resolution(&self) -> u64 {
        CLOCK_STEP_NANOS
    }
    fn now(&self) -> u64 {
        self.tick()
    }
}

/// xoshiro256** seeded through splitmix64 from the job's seed and a stream number.
struct SeededRng([u64; 4]);

impl SeededRng {
    fn new(seed: u64, stream: u64) -> Self {
        let mut x = seed ^ stream.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let mut next = || {
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        Self([next(), next(), next(), next()])
    }

    fn next(&mut self) -> u64 {
        let s = &mut self.0;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }
}

impl rand_core::TryRng for SeededRng {
    type Error = std::convert::Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        Ok((self.next() >> 32) as u32)
    }

    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        Ok(self.next())
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        for chunk in dst.chunks_mut(8) {
            let bytes = self.next().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
        Ok(())
    }
}

/// Captures a guest's stdout or stderr up to a cap; what is past the cap is
/// dropped (the guest never sees an error) and the truncation recorded.
#[derive(Clone)]
struct CappedPipe(Arc<Mutex<CappedBuf>>);

struct CappedBuf {
    bytes: Vec<u8>,
    cap: usize,
    truncated: bool,
}

impl CappedPipe {
    fn new(cap: u64) -> Self {
        Self(Arc::new(Mutex::new(CappedBuf {
            bytes: Vec::new(),
            cap: usize::try_from(cap).unwrap_or(usize::MAX),
            truncated: false,
        })))
    }

    fn lock(&self) -> MutexGuard<'_, CappedBuf> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn push(&self, data: &[u8]) {
        let mut buf = self.lock();
        let room = buf.cap.saturating_sub(buf.bytes.len());
        if data.len() > room {
            buf.truncated = true;
        }
        buf.bytes.extend_from_slice(&data[..data.len().min(room)]);
    }

    fn take(&self) -> (Vec<u8>, bool) {
        let mut buf = self.lock();
        (std::mem::take(&mut buf.bytes), buf.truncated)
    }
}

impl IsTerminal for CappedPipe {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CappedPipe {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for CappedPipe {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        self.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(1 << 20)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for CappedPipe {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for CappedPipe {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.push(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
