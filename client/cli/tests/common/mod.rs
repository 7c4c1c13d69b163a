//! Helpers shared by the CLI tests: the real `shoal` binary, a devstack it starts, and the
//! repository's npm tools.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub fn shoal() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_shoal"));
    // Nothing from the developer's own setup leaks into a test.
    for v in ["SHOAL_NODE", "SHOAL_RPC_URL", "SHOAL_DEPLOYMENT", "SHOAL_PRIVATE_KEY", "SHOAL_PASSWORD", "SHOAL_ACCOUNT", "SHOAL_KEYSTORE_DIR"] {
        c.env_remove(v);
    }
    c.env("SHOAL_CONFIG", "/nonexistent/shoal-test-config.toml");
    c
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs a command and returns its output, failing the test with both streams when it fails.
pub fn ok(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs a command that must fail; returns its stderr.
pub fn fails(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(!out.status.success(), "{cmd:?} should have failed:\n{}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", String::from_utf8_lossy(&out.stdout)))
}

/// A tool from the repository's npm install (`node_modules/.bin`); `None` (the test is skipped
/// with a message) only outside CI — with `CI` set a missing tool fails the test.
pub fn npm_tool(name: &str) -> Option<PathBuf> {
    let p = repo_root().join("node_modules/.bin").join(name);
    if p.exists() {
        return Some(p);
    }
    if std::env::var_os("CI").is_some() {
        panic!("{} is missing; run scripts/setup.sh (npm ci at the repo root)", p.display());
    }
    eprintln!("skipping: {} is missing (run scripts/setup.sh)", p.display());
    None
}

/// A devstack started with `shoal devstack`, stopped on drop.
pub struct Devstack {
    child: Child,
    pub dir: tempfile::TempDir,
    pub env: HashMap<String, String>,
}

impl Devstack {
    pub fn start(extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let base = dir.path().join("stack");
        let log = std::fs::File::create(dir.path().join("devstack.log")).expect("log file");
        let child = shoal()
            .args(["devstack", "--port", "0", "--base-dir"])
            .arg(&base)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start shoal devstack");
        let mut stack = Devstack { child, dir, env: HashMap::new() };
        let env_file = base.join("devstack.env");
        let start = Instant::now();
        while !env_file.exists() {
            if let Ok(Some(status)) = stack.child.try_wait() {
                panic!("shoal devstack exited ({status}):\n{}", stack.log());
            }
            assert!(start.elapsed() < Duration::from_secs(120), "devstack not up after 120s:\n{}", stack.log());
            std::thread::sleep(Duration::from_millis(200));
        }
        std::thread::sleep(Duration::from_millis(200));
        let text = std::fs::read_to_string(&env_file).expect("read devstack.env");
        for line in text.lines() {
            if let Some((k, v)) = line.strip_prefix("export ").and_then(|l| l.split_once('=')) {
                stack.env.insert(k.to_owned(), v.to_owned());
            }
        }
        stack
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("devstack.log")).unwrap_or_default()
    }

    pub fn var(&self, k: &str) -> String {
        self.env.get(k).cloned().unwrap_or_else(|| panic!("devstack.env has no {k}"))
    }

    /// `shoal` pointed at this devstack, signing with its funded creator key.
    pub fn shoal(&self) -> Command {
        let mut c = shoal();
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    /// A JSON-RPC call to the devstack's chain.
    pub fn rpc(&self, method: &str, params: serde_json::Value) -> serde_json::Value {
        let body = serde_json::json!({ "jsonrpc": "2.0", "id": 1, "method": method, "params": params });
        let out = ok(Command::new("curl")
            .args(["-sS", "-H", "content-type: application/json", "--data"])
            .arg(body.to_string())
            .arg(self.var("SHOAL_RPC_URL")));
        json(&out)
    }

    pub fn node_get(&self, path: &str) -> serde_json::Value {
        let out = ok(Command::new("curl").args(["-sS", "--fail"]).arg(format!("{}{path}", self.var("SHOAL_NODE"))));
        json(&out)
    }
}

impl Drop for Devstack {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
