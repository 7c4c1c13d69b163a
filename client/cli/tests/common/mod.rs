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
    for v in [
        "SHOAL_NODE",
        "SHOAL_RPC_URL",
        "SHOAL_DEPLOYMENT",
        "SHOAL_PRIVATE_KEY",
        "SHOAL_PASSWORD",
        "SHOAL_ACCOUNT",
        "SHOAL_KEYSTORE_DIR",
    ] {
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
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
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
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        !out.status.success(),
        "{cmd:?} should have failed:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}):\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// A tool from the repository's npm install (`node_modules/.bin`); `None` (the test is skipped
/// with a message) only outside CI — with `CI` set a missing tool fails the test.
pub fn npm_tool(name: &str) -> Option<PathBuf> {
    let p = repo_root().join("node_modules/.bin").join(name);
    if p.exists() {
        return Some(p);
    }
    if std::env::var_os("CI").is_some() {
        panic!(
            "{} is missing; run scripts/setup.sh (it installs the npm tooling)",
            p.display()
        );
    }
    eprintln!(
        "skipping: {} is missing (run scripts/setup.sh)",
        p.display()
    );
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
        let mut stack = Devstack {
            child,
            dir,
            env: HashMap::new(),
        };
        let env_file = base.join("devstack.env");
        let start = Instant::now();
        while !env_file.exists() {
            if let Ok(Some(status)) = stack.child.try_wait() {
                panic!("shoal devstack exited ({status}):\n{}", stack.log());
            }
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "devstack not up after 120s:\n{}",
                stack.log()
            );
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
        self.env
            .get(k)
            .cloned()
            .unwrap_or_else(|| panic!("devstack.env has no {k}"))
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
        let body =
            serde_json::json!({ "jsonrpc": "2.0", "id": 1, "method": method, "params": params });
        let (status, reply) = http(&self.var("SHOAL_RPC_URL"), Some(&body.to_string()));
        assert_eq!(status, 200, "{method}: {reply}");
        serde_json::from_str(&reply).unwrap_or_else(|e| panic!("{method}: not JSON ({e}): {reply}"))
    }
}

/// A minimal HTTP/1.1 request to a loopback URL (`http://127.0.0.1:PORT/path`): GET, or POST
/// of a JSON body. Returns the status and the body.
pub fn http(url: &str, json_body: Option<&str>) -> (u16, String) {
    use std::io::{Read as _, Write as _};
    let rest = url
        .strip_prefix("http://")
        .unwrap_or_else(|| panic!("not an http URL: {url}"));
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let mut s = match std::net::TcpStream::connect(host) {
        Ok(s) => s,
        Err(_) => return (0, String::new()),
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
    let req = match json_body {
        Some(b) => format!(
            "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{b}",
            b.len()
        ),
        None => format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
    };
    if s.write_all(req.as_bytes()).is_err() {
        return (0, String::new());
    }
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return (0, text);
    };
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    (status, body)
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((len, rest)) = s.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(len.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

impl Drop for Devstack {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
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
