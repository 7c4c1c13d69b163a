//! Helpers shared by the executor integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use shoal_executor::{
    CancellationToken, Error, ExecutionId, ExecutionRequest, ExecutionResult, Executor, InputMount,
    OutputVolume, WasmModule,
};

/// A built test program from `testdata/wasm`.
pub fn wasm(name: &str) -> WasmModule {
    WasmModule::Path(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("testdata/wasm")
            .join(format!("{name}.wasm")),
    )
}

pub fn id(s: &str) -> ExecutionId {
    ExecutionId::new(s).expect("valid execution id")
}

/// `host_path` mounted read-only at `container_path`.
pub fn mount(host_path: impl Into<PathBuf>, container_path: &str) -> InputMount {
    InputMount {
        host_path: host_path.into(),
        container_path: container_path.into(),
    }
}

/// The output volume `name`, writable at `container_path`.
pub fn output(name: &str, container_path: &str) -> OutputVolume {
    OutputVolume {
        name: name.into(),
        container_path: container_path.into(),
    }
}

/// Runs `req` uncancelled; panics with `what` unless it gives a result.
pub async fn run_ok(exec: &impl Executor, req: ExecutionRequest, what: &str) -> ExecutionResult {
    exec.run(req, CancellationToken::new()).await.expect(what)
}

/// Runs `req` uncancelled; panics with `what` unless it fails, and returns the error.
pub async fn run_err(exec: &impl Executor, req: ExecutionRequest, what: &str) -> Error {
    exec.run(req, CancellationToken::new())
        .await
        .expect_err(what)
}

/// Runs `req`, which must time out (`what`) within `limit`.
pub async fn assert_times_out(
    exec: &impl Executor,
    req: ExecutionRequest,
    what: &str,
    limit: Duration,
) {
    let started = Instant::now();
    let err = run_err(exec, req, what).await;
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    assert!(started.elapsed() < limit, "took {:?}", started.elapsed());
}

/// Entries left in a results root (hidden staging folders included).
pub fn leftovers(root: &Path) -> Vec<PathBuf> {
    match std::fs::read_dir(root) {
        Ok(entries) => entries.map(|e| e.expect("read_dir entry").path()).collect(),
        Err(_) => Vec::new(),
    }
}

pub fn assert_nothing_left(root: &Path) {
    let left = leftovers(root);
    assert!(
        left.is_empty(),
        "the failed execution left files behind: {left:?}"
    );
}

/// A folder of `n` text files with a known total word count.
pub fn corpus(dir: &Path, n: usize) -> u64 {
    std::fs::create_dir_all(dir).expect("create corpus dir");
    let mut total = 0;
    for i in 0..n {
        let words = 1 + (i * 7) % 23;
        let text: Vec<String> = (0..words).map(|w| format!("w{i}x{w}")).collect();
        std::fs::write(
            dir.join(format!("doc-{i:04}.txt")),
            text.join(if i % 2 == 0 { " " } else { "\n" }),
        )
        .expect("write corpus file");
        total += words as u64;
    }
    total
}

/// A `w`×`h` binary PGM with a diagonal gradient.
pub fn pgm(w: usize, h: usize) -> Vec<u8> {
    let mut bytes = format!("P5\n# test scene\n{w} {h}\n255\n").into_bytes();
    for y in 0..h {
        for x in 0..w {
            bytes.push(((x + y) * 255 / (w + h - 2)) as u8);
        }
    }
    bytes
}

/// The job's stdout was cut at `limit` bytes, in the result and in the results folder.
pub fn assert_stdout_capped(res: &ExecutionResult, limit: usize) {
    assert!(res.stdout_truncated);
    assert_eq!(
        std::fs::read(res.results_dir.join("stdout"))
            .expect("stdout")
            .len(),
        limit
    );
}
