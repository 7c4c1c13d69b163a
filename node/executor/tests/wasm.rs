//! The WASM executor on wasmtime, with the C test programs from testdata/wasm.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::{
    assert_nothing_left, assert_stdout_capped, assert_times_out, corpus, id, mount, output, pgm,
    run_err, run_ok, wasm,
};
use shoal_executor::{
    CancellationToken, EngineSpec, Error, ExecutionRequest, Executor, ExecutorRegistry, Limits,
    WasmConfig, WasmExecutor, WasmModule, WasmSpec,
};
use std::sync::Arc;

fn executor(root: &std::path::Path) -> WasmExecutor {
    WasmExecutor::new(WasmConfig::new(root)).expect("wasm executor")
}

fn request(name: &str, program: &str) -> ExecutionRequest {
    ExecutionRequest::new(id(name), EngineSpec::Wasm(WasmSpec::new(wasm(program))))
}

fn spec(req: &mut ExecutionRequest) -> &mut WasmSpec {
    match &mut req.engine {
        EngineSpec::Wasm(spec) => spec,
        EngineSpec::Docker(_) => unreachable!("wasm request"),
    }
}

#[tokio::test]
async fn hello_writes_the_results_folder() {
    let dir = tempfile::tempdir().expect("tempdir");
    let exec = executor(dir.path());
    let mut req = request("hello", "hello");
    spec(&mut req).args = vec!["one".into(), "two words".into()];
    let res = run_ok(&exec, req, "hello runs").await;
    assert_eq!(res.exit_code, 0);
    assert_eq!(res.results_dir, dir.path().join("hello"));
    let stdout = std::fs::read_to_string(res.results_dir.join("stdout")).expect("stdout");
    assert_eq!(stdout, "hello from wasm\narg 1: one\narg 2: two words\n");
    let stderr = std::fs::read_to_string(res.results_dir.join("stderr")).expect("stderr");
    assert_eq!(stderr, "hello on stderr\n");
    assert_eq!(
        std::fs::read(res.results_dir.join("exitCode")).expect("exitCode"),
        b"0"
    );
    assert!(!res.stdout_truncated && !res.stderr_truncated);
    assert!(res.fuel_consumed.is_some_and(|f| f > 0));
    assert_eq!(
        res.result_hash,
        shoal_executor::hash_results(&res.results_dir).expect("hash")
    );
    assert_eq!(
        res.result_hash.codec(),
        0x70,
        "the result hash is a dag-pb UnixFS folder"
    );
}

#[tokio::test]
async fn exit_code_comes_from_env() {
    let dir = tempfile::tempdir().expect("tempdir");
    let exec = executor(dir.path());
    let mut req = request("exit7", "exit_code");
    spec(&mut req).env = vec![("EXIT_CODE".into(), "7".into())];
    let res = run_ok(&exec, req, "runs").await;
    assert_eq!(res.exit_code, 7);
    assert_eq!(
        std::fs::read(res.results_dir.join("exitCode")).expect("exitCode"),
        b"7"
    );
}

#[tokio::test]
async fn copies_an_input_file_to_an_output() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = tempfile::tempdir().expect("tempdir");
    let input = data.path().join("scene.bin");
    let bytes: Vec<u8> = (0..300_000u32).map(|i| (i * 31 % 251) as u8).collect();
    std::fs::write(&input, &bytes).expect("write input");
    std::fs::write(data.path().join("secret.txt"), "not an input").expect("write sibling");

    let exec = executor(&dir.path().join("results"));
    let mut req = request("copy", "copy");
    spec(&mut req).args = vec!["/inputs/scene.bin".into(), "/outputs/copy.bin".into()];
    req.inputs = vec![mount(input, "/inputs/scene.bin")];
    req.outputs = vec![output("out", "/outputs")];
    let res = run_ok(&exec, req, "copy runs").await;
    assert_eq!(
        res.exit_code,
        0,
        "stderr: {:?}",
        std::fs::read_to_string(res.results_dir.join("stderr"))
    );
    assert_eq!(
        std::fs::read(res.results_dir.join("out/copy.bin")).expect("output"),
        bytes
    );
    let names: BTreeSet<String> = std::fs::read_dir(&res.results_dir)
        .expect("results")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        BTreeSet::from([
            "exitCode".into(),
            "out".into(),
            "stderr".into(),
            "stdout".into()
        ])
    );

    // Only the named file is visible, not its siblings on the host.
    let mut req = request("peek", "copy");
    spec(&mut req).args = vec!["/inputs/secret.txt".into(), "/outputs/x".into()];
    req.inputs = vec![mount(data.path().join("scene.bin"), "/inputs/scene.bin")];
    req.outputs = vec![output("out", "/outputs")];
    let res = run_ok(&exec, req, "peek runs").await;
    assert_eq!(
        res.exit_code, 1,
        "a sibling of an input file must not be readable"
    );
}

#[tokio::test]
async fn inputs_are_read_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = tempfile::tempdir().expect("tempdir");
    std::fs::write(data.path().join("a.txt"), "original").expect("write");
    let exec = executor(&dir.path().join("results"));
    let mut req = request("ro2", "writer");
    spec(&mut req).args = vec!["0".into(), "/data/a.txt".into(), "5".into()];
    req.inputs = vec![mount(data.path().to_owned(), "/data")];
    let res = run_ok(&exec, req, "runs").await;
    assert_ne!(res.exit_code, 0, "writing into an input folder must fail");
    assert_eq!(
        std::fs::read_to_string(data.path().join("a.txt")).expect("read"),
        "original"
    );
}

#[tokio::test]
async fn cloud_mask_thresholds_a_pgm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = tempfile::tempdir().expect("tempdir");
    let (w, h) = (64, 48);
    std::fs::write(data.path().join("scene.pgm"), pgm(w, h)).expect("write scene");
    let exec = executor(&dir.path().join("results"));
    let mut req = request("mask", "cloudmask");
    spec(&mut req).args = vec![
        "/scenes/scene.pgm".into(),
        "/masks/mask.pgm".into(),
        "200".into(),
    ];
    req.inputs = vec![mount(data.path().to_owned(), "/scenes")];
    req.outputs = vec![output("masks", "/masks")];
    let res = run_ok(&exec, req, "mask runs").await;
    assert_eq!(res.exit_code, 0);
    let mask = std::fs::read(res.results_dir.join("masks/mask.pgm")).expect("mask");
    let header = format!("P5\n{w} {h}\n255\n");
    assert!(mask.starts_with(header.as_bytes()));
    let pixels = &mask[header.len()..];
    assert_eq!(pixels.len(), w * h);
    let scene = pgm(w, h);
    let scene_pixels = &scene[scene.len() - w * h..];
    for (m, s) in pixels.iter().zip(scene_pixels) {
        assert_eq!(*m, if *s >= 200 { 255 } else { 0 });
    }
    let cloudy = pixels.iter().filter(|p| **p == 255).count();
    let stdout = std::fs::read_to_string(res.results_dir.join("stdout")).expect("stdout");
    assert!(
        stdout.starts_with(&format!("pixels {} cloudy {cloudy} ", w * h)),
        "{stdout}"
    );
}

/// The same job, 20 runs alternating between two executor instances, gives one
/// result hash: word count over a folder of many files, and the program that
/// reads clocks and random numbers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_runs_on_two_executors_give_one_hash() {
    let dir = tempfile::tempdir().expect("tempdir");
    let docs = dir.path().join("docs");
    let words = corpus(&docs, 300);
    let execs = [
        executor(&dir.path().join("a")),
        executor(&dir.path().join("b")),
    ];

    let mut hashes = BTreeSet::new();
    for i in 0..20 {
        let mut req = request(&format!("wc-{i}"), "wordcount");
        spec(&mut req).args = vec!["/docs".into(), "/report/words.txt".into()];
        req.inputs = vec![mount(docs.clone(), "/docs")];
        req.outputs = vec![output("report", "/report")];
        let res = run_ok(&execs[i % 2], req, "wordcount runs").await;
        assert_eq!(res.exit_code, 0);
        let stdout = std::fs::read_to_string(res.results_dir.join("stdout")).expect("stdout");
        assert_eq!(stdout, format!("files 300 words {words}\n"));
        hashes.insert(res.result_hash);
    }
    assert_eq!(
        hashes.len(),
        1,
        "word count gave different result hashes: {hashes:?}"
    );

    let mut hashes = BTreeSet::new();
    let mut first_stdout = None;
    for i in 0..20 {
        let mut req = request(&format!("clock-{i}"), "clockrand");
        spec(&mut req).random_seed = 42;
        let res = run_ok(&execs[i % 2], req, "clockrand runs").await;
        assert_eq!(res.exit_code, 0);
        let stdout = std::fs::read_to_string(res.results_dir.join("stdout")).expect("stdout");
        first_stdout.get_or_insert(stdout);
        hashes.insert(res.result_hash);
    }
    assert_eq!(
        hashes.len(),
        1,
        "clock/random gave different result hashes: {hashes:?}"
    );
    let stdout = first_stdout.expect("ran");
    assert!(
        stdout.starts_with("realtime 946684800."),
        "the wall clock is logical: {stdout}"
    );
    assert!(
        stdout.contains("nan bits 7ff8000000000000 7fc00000"),
        "NaNs are canonical: {stdout}"
    );

    // A different seed gives different random numbers (the seed is used).
    let mut req = request("clock-other-seed", "clockrand");
    spec(&mut req).random_seed = 43;
    let res = run_ok(&execs[0], req, "clockrand runs").await;
    let other = std::fs::read_to_string(res.results_dir.join("stdout")).expect("stdout");
    let entropy = |s: &str| {
        s.lines()
            .find(|l| l.starts_with("entropy"))
            .map(str::to_owned)
    };
    assert_ne!(entropy(&stdout), entropy(&other));
    assert!(!hashes.contains(&res.result_hash));
}

#[tokio::test]
async fn a_second_run_does_not_recompile() {
    let dir = tempfile::tempdir().expect("tempdir");
    let exec = executor(dir.path());
    for i in 0..3 {
        run_ok(&exec, request(&format!("c{i}"), "hello"), "runs").await;
    }
    let stats = exec.cache_stats();
    assert_eq!(stats.compiles, 1, "{stats:?}");
    assert_eq!(stats.hits, 2, "{stats:?}");
    // The same bytes given inline hit the same cache entry.
    let bytes = std::fs::read(match wasm("hello") {
        WasmModule::Path(p) => p,
        WasmModule::Bytes(_) => unreachable!(),
    })
    .expect("read module");
    let req = ExecutionRequest::new(
        id("inline"),
        EngineSpec::Wasm(WasmSpec::new(WasmModule::Bytes(Arc::from(bytes)))),
    );
    run_ok(&exec, req, "runs").await;
    assert_eq!(exec.cache_stats().compiles, 1);
}

#[tokio::test]
async fn fuel_limit_stops_an_infinite_loop() {
    let dir = tempfile::tempdir().expect("tempdir");
    let exec = executor(dir.path());
    let mut req = request("fuel", "loop");
    req.limits.fuel = 20_000_000;
    req.outputs = vec![output("out", "/out")];
    let err = run_err(&exec, req, "must stop").await;
    assert!(
        matches!(err, Error::FuelExhausted { fuel: 20_000_000 }),
        "{err}"
    );
    assert!(err.to_string().contains("limits.fuel"), "{err}");
    assert_nothing_left(dir.path());
}

#[tokio::test]
async fn timeout_stops_an_infinite_loop() {
    let dir = tempfile::tempdir().expect("tempdir");
    let exec = executor(dir.path());
    let mut req = request("slow", "loop");
    req.limits = Limits {
        fuel: u64::MAX,
        timeout: Duration::from_millis(300),
        ..Limits::default()
    };
    assert_times_out(&exec, req, "must stop", Duration::from_secs(3)).await;
    assert_nothing_left(dir.path());
}

#[tokio::test]
async fn memory_limit_stops_a_memory_hog() {
    let dir = tempfile::tempdir().expect("tempdir");
    let exec = executor(dir.path());
    let mut req = request("hog", "memhog");
    req.limits.memory_bytes = 32 << 20;
    let err = run_err(&exec, req, "must stop").await;
    assert!(
        matches!(err, Error::MemoryLimit { limit_bytes } if limit_bytes == 32 << 20),
        "{err}"
    );
    assert!(err.to_string().contains("limits.memory_bytes"), "{err}");
    assert_nothing_left(dir.path());
}

#[tokio::test]
async fn output_limit_stops_a_big_writer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let exec = executor(dir.path());
    let mut req = request("big", "writer");
    spec(&mut req).args = vec!["0".into(), "/out/big".into(), "3000000".into()];
    req.outputs = vec![output("out", "/out")];
    req.limits.max_output_bytes = 1_000_000;
    let err = run_err(&exec, req, "must stop").await;
    assert!(
        matches!(
            err,
            Error::OutputTooLarge {
                limit_bytes: 1_000_000
            }
        ),
        "{err}"
    );
    assert_nothing_left(dir.path());
}

#[tokio::test]
async fn stdout_is_capped_and_marked_truncated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let exec = executor(dir.path());
    let mut req = request("chatty", "writer");
    spec(&mut req).args = vec!["100000".into()];
    req.limits.max_stdout_bytes = 1000;
    let res = run_ok(&exec, req, "runs").await;
    assert_eq!(res.exit_code, 0);
    assert_stdout_capped(&res, 1000);
}

#[tokio::test]
async fn cancellation_stops_a_running_job() {
    let dir = tempfile::tempdir().expect("tempdir");
    let exec = executor(dir.path());
    let mut req = request("cancel", "loop");
    req.limits.fuel = u64::MAX;
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        trigger.cancel();
    });
    let started = Instant::now();
    let err = exec.run(req, cancel).await.expect_err("must stop");
    assert!(matches!(err, Error::Cancelled { .. }), "{err}");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_nothing_left(dir.path());
}

#[tokio::test]
async fn dropping_the_run_future_stops_the_job() {
    let dir = tempfile::tempdir().expect("tempdir");
    let exec = executor(dir.path());
    let mut req = request("dropped", "loop");
    req.limits.fuel = u64::MAX;
    let run = exec.run(req, CancellationToken::new());
    assert!(
        tokio::time::timeout(Duration::from_millis(200), run)
            .await
            .is_err()
    );
    // The guest notices within a tick and its blocking task cleans up.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !common::leftovers(dir.path()).is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_nothing_left(dir.path());
}

#[tokio::test]
async fn a_broken_module_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let exec = executor(dir.path());
    let req = ExecutionRequest::new(
        id("broken"),
        EngineSpec::Wasm(WasmSpec::new(WasmModule::Bytes(Arc::from(
            &b"\0asm not really"[..],
        )))),
    );
    let err = run_err(&exec, req, "must fail").await;
    assert!(matches!(err, Error::WasmCompile { .. }), "{err}");
    assert_nothing_left(dir.path());
}

#[tokio::test]
async fn results_are_not_overwritten() {
    let dir = tempfile::tempdir().expect("tempdir");
    let exec = executor(dir.path());
    run_ok(&exec, request("twice", "hello"), "first run").await;
    let err = run_err(&exec, request("twice", "hello"), "second run").await;
    assert!(matches!(err, Error::ResultsExist { .. }), "{err}");
}

#[tokio::test]
async fn the_registry_picks_the_executor_by_engine() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut registry = ExecutorRegistry::new();
    registry.register(Arc::new(executor(dir.path())));
    assert_eq!(registry.names(), vec!["wasm"]);
    let res = registry
        .run(request("reg", "hello"), CancellationToken::new())
        .await
        .expect("runs");
    assert_eq!(res.exit_code, 0);
    let docker = EngineSpec::Docker(shoal_executor::DockerSpec::shell("busybox", "true"));
    assert!(registry.can_run(&docker).await.is_err());
    let err = registry
        .run(
            ExecutionRequest::new(id("nodocker"), docker),
            CancellationToken::new(),
        )
        .await
        .expect_err("no docker executor");
    assert!(matches!(err, Error::UnknownExecutor { .. }), "{err}");
}

#[tokio::test]
async fn a_guest_trap_is_a_result_with_exit_code_134() {
    let dir = tempfile::tempdir().expect("tempdir");
    let exec = executor(dir.path());
    let res = run_ok(&exec, request("trap", "trap"), "a trap is a result").await;
    assert_eq!(res.exit_code, 134);
    assert_eq!(
        std::fs::read_to_string(res.results_dir.join("stdout")).expect("stdout"),
        "about to abort\n"
    );
    let stderr = std::fs::read_to_string(res.results_dir.join("stderr")).expect("stderr");
    assert!(stderr.contains("wasm trap: "), "{stderr}");
    // The same trap gives the same result hash on another executor.
    let other = tempfile::tempdir().expect("tempdir");
    let res2 = executor(other.path())
        .run(request("trap", "trap"), CancellationToken::new())
        .await
        .expect("runs");
    assert_eq!(res.result_hash, res2.result_hash);
}

#[tokio::test]
async fn stale_staging_folders_are_removed_at_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join(".crashed-job.running/out")).expect("mkdir");
    std::fs::create_dir_all(dir.path().join("finished-job")).expect("mkdir");
    assert_eq!(
        shoal_executor::remove_stale_staging(dir.path()).expect("cleanup"),
        1
    );
    assert!(
        dir.path().join("finished-job").exists(),
        "finished results are kept"
    );
    assert!(!dir.path().join(".crashed-job.running").exists());
}
