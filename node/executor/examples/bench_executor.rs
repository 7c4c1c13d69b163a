//! Executor overhead benchmark (run by `scripts/bench-executor.sh`, release mode).
//!
//! - WASM: a warm executor job (cached module, results folder written and
//!   hashed) against a bare wasmtime instantiate-and-run of the same module
//!   with WASI in the same process. Target: job ≤ 1.2 × bare + 2 ms.
//! - Docker: an executor job against `docker run --rm` of the same image and
//!   command. Target: job ≤ 1.1 × `docker run --rm`.
//!
//! Prints a markdown table on stdout; progress on stderr.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use shoal_executor::{
    CancellationToken, DockerConfig, DockerExecutor, DockerSpec, EngineSpec, ExecutionId,
    ExecutionRequest, Executor, InputMount, OutputVolume, WasmConfig, WasmExecutor, WasmModule,
    WasmSpec,
};
use wasmtime::{Engine, InstancePre, Linker, Module, Store};
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;

const IMAGE: &str = "shoal-test/busybox:latest";

fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/wasm")
        .join(format!("{name}.wasm"))
}

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

struct Row {
    case: String,
    job: Duration,
    baseline: Duration,
    target: String,
    ok: bool,
}

/// Bare wasmtime: a compiled module, then a fresh store and WASI context per
/// run, with the same on-thread file I/O as the executor.
struct Bare {
    engine: Engine,
    pre: InstancePre<WasiP1Ctx>,
}

impl Bare {
    fn new(module_path: &Path) -> Result<Self> {
        let engine = Engine::default();
        let module =
            Module::from_file(&engine, module_path).map_err(|e| anyhow::anyhow!("{e:#}"))?;
        let mut linker: Linker<WasiP1Ctx> = Linker::new(&engine);
        wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |s| s)
            .map_err(|e| anyhow::anyhow!("{e:#}"))?;
        let pre = linker
            .instantiate_pre(&module)
            .map_err(|e| anyhow::anyhow!("{e:#}"))?;
        Ok(Self { engine, pre })
    }

    fn run(&self, args: &[String], preopen: Option<&(PathBuf, String)>) -> Result<()> {
        let mut wasi = WasiCtxBuilder::new();
        wasi.allow_blocking_current_thread(true)
            .stdout(MemoryOutputPipe::new(1 << 24))
            .stderr(MemoryOutputPipe::new(1 << 24))
            .arg("job.wasm")
            .args(args);
        if let Some((host, guest)) = preopen {
            wasi.preopened_dir(host, guest, wasmtime_wasi::FsPerms::ReadOnly)
                .map_err(|e| anyhow::anyhow!("{e:#}"))?;
        }
        let mut store = Store::new(&self.engine, wasi.build_p1());
        let instance = self
            .pre
            .instantiate(&mut store)
            .map_err(|e| anyhow::anyhow!("{e:#}"))?;
        let start = instance
            .get_typed_func::<(), ()>(&mut store, "_start")
            .map_err(|e| anyhow::anyhow!("{e:#}"))?;
        start
            .call(&mut store, ())
            .map_err(|e| anyhow::anyhow!("{e:#}"))
    }
}

/// A program, its args and an optional input folder with its guest path.
type Case<'a> = (&'a str, Vec<String>, Option<(&'a Path, &'a str)>);

/// Alternates bare runs and executor jobs (both on a blocking thread, both
/// timed from the async caller) and returns the medians (job, bare).
async fn wasm_case(
    exec: &WasmExecutor,
    case: &Case<'_>,
    runs: usize,
) -> Result<(Duration, Duration)> {
    let (program, args, input) = case;
    let bare = std::sync::Arc::new(Bare::new(&testdata(program))?);
    let preopen = input.map(|(h, g)| (h.to_owned(), g.to_owned()));
    exec.precompile(&WasmModule::Path(testdata(program)))?;
    let (mut jobs, mut bares) = (Vec::with_capacity(runs), Vec::with_capacity(runs));
    for i in 0..runs {
        let (b, a, p) = (bare.clone(), args.clone(), preopen.clone());
        let started = Instant::now();
        tokio::task::spawn_blocking(move || b.run(&a, p.as_ref())).await??;
        bares.push(started.elapsed());

        let mut spec = WasmSpec::new(WasmModule::Path(testdata(program)));
        spec.args = args.clone();
        let mut req = ExecutionRequest::new(
            ExecutionId::new(format!("{program}-{i}"))?,
            EngineSpec::Wasm(spec),
        );
        if let Some((host, guest)) = input {
            req.inputs = vec![InputMount {
                host_path: host.to_path_buf(),
                container_path: (*guest).into(),
            }];
        }
        let started = Instant::now();
        let res = exec.run(req, CancellationToken::new()).await?;
        jobs.push(started.elapsed());
        if res.exit_code != 0 {
            bail!("{program} exited with {}", res.exit_code);
        }
        std::fs::remove_dir_all(&res.results_dir)?;
    }
    Ok((median(jobs), median(bares)))
}

async fn bench_wasm(
    rows: &mut Vec<Row>,
    runs: usize,
    results_parent: &Path,
    fs_label: &str,
) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let docs = dir.path().join("docs");
    std::fs::create_dir_all(&docs)?;
    for i in 0..200 {
        std::fs::write(
            docs.join(format!("doc-{i:03}.txt")),
            "lorem ipsum dolor sit amet ".repeat(40),
        )?;
    }
    let results = tempfile::tempdir_in(results_parent)?;
    let exec = WasmExecutor::new(WasmConfig::new(results.path()))?;
    let cases: [Case<'_>; 2] = [
        ("hello", vec![], None),
        (
            "wordcount",
            vec!["/docs".into()],
            Some((docs.as_path(), "/docs")),
        ),
    ];
    for case in &cases {
        eprintln!("bench: wasm {}, results on {fs_label}", case.0);
        let (job, baseline) = wasm_case(&exec, case, runs).await?;
        let limit = baseline.mul_f64(1.2) + Duration::from_millis(2);
        rows.push(Row {
            case: format!("WASM `{}`, results on {fs_label}", case.0),
            job,
            baseline,
            target: format!("≤ 1.2× + 2 ms = {:.2} ms", ms(limit)),
            ok: job <= limit,
        });
    }
    Ok(())
}

async fn bench_docker(rows: &mut Vec<Row>, runs: usize) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let root = dir.path().join("results");
    let exec = DockerExecutor::connect(DockerConfig::new(&root))
        .await
        .context("Docker engine")?;
    if !exec.image_present(IMAGE).await? {
        bail!("{IMAGE} is missing; run scripts/setup.d/executor.sh");
    }
    let script = "echo hello; wc -c /bin/busybox";
    let out = dir.path().join("cli-out");
    std::fs::create_dir_all(&out)?;
    let (mut job_times, mut cli_times) = (Vec::new(), Vec::new());
    for i in 0..runs + 1 {
        eprintln!("bench: docker run {i}");
        let started = Instant::now();
        let status = Command::new("docker")
            .args(["run", "--rm", "--network", "none", "-v"])
            .arg(format!("{}:/out", out.display()))
            .args([IMAGE, "sh", "-c", script])
            .output()
            .context("running the docker CLI")?;
        let cli = started.elapsed();
        if !status.status.success() {
            bail!(
                "docker run failed: {}",
                String::from_utf8_lossy(&status.stderr)
            );
        }
        let mut req = ExecutionRequest::new(
            ExecutionId::new(format!("docker-{i}"))?,
            EngineSpec::Docker(DockerSpec::shell(IMAGE, script)),
        );
        req.outputs = vec![OutputVolume {
            name: "out".into(),
            container_path: "/out".into(),
        }];
        let started = Instant::now();
        let res = exec.run(req, CancellationToken::new()).await?;
        let job = started.elapsed();
        std::fs::remove_dir_all(&res.results_dir)?;
        if i > 0 {
            job_times.push(job);
            cli_times.push(cli);
        }
    }
    let (job, baseline) = (median(job_times), median(cli_times));
    let limit = baseline.mul_f64(1.1);
    rows.push(Row {
        case: "Docker `sh -c` job".into(),
        job,
        baseline,
        target: format!("≤ 1.1× = {:.1} ms", ms(limit)),
        ok: job <= limit,
    });
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let wasm_runs = std::env::var("WASM_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50)
        .max(1);
    let docker_runs = std::env::var("DOCKER_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10)
        .max(1);
    let mut rows = Vec::new();
    // The results folder is written where the node keeps results; creating
    // files costs what the file system makes it cost, so both a disk and
    // (when present) a tmpfs are measured.
    bench_wasm(&mut rows, wasm_runs, &std::env::temp_dir(), "disk (TMPDIR)").await?;
    if Path::new("/dev/shm").is_dir() {
        bench_wasm(
            &mut rows,
            wasm_runs,
            Path::new("/dev/shm"),
            "tmpfs (/dev/shm)",
        )
        .await?;
    }
    bench_docker(&mut rows, docker_runs).await?;
    println!(
        "Medians of {wasm_runs} warm WASM runs and {docker_runs} Docker runs, baseline and job interleaved.\n"
    );
    println!("| case | executor job | baseline | ratio | target | met |");
    println!("|---|---|---|---|---|---|");
    let mut all_ok = true;
    for row in &rows {
        all_ok &= row.ok;
        println!(
            "| {} | {:.2} ms | {:.2} ms | {:.2}× | {} | {} |",
            row.case,
            ms(row.job),
            ms(row.baseline),
            row.job.as_secs_f64() / row.baseline.as_secs_f64(),
            row.target,
            if row.ok { "yes" } else { "no" }
        );
    }
    if !all_ok {
        eprintln!("bench: some targets were not met");
    }
    Ok(())
}
