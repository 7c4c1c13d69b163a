#![doc = include_str!("../README.md")]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use alloy::signers::local::PrivateKeySigner;
use anyhow::{Context, Result, bail, ensure};
use serde_json::Value;
pub use shoal_api::JobId;
use shoal_devstack::{self as devstack, Devstack, DevstackConfig, Fault};
use shoal_types::JobSpec;

/// Logs to the test's output; `RUST_LOG` overrides the filter.
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "shoal_node=info,warn".into()),
        )
        .with_test_writer()
        .try_init();
}

/// The repository's root folder.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A WASM test program from `node/executor/testdata/wasm` (built by `scripts/build-wasm-tests.sh`).
pub fn wasm(name: &str) -> Result<Vec<u8>> {
    let path = repo_root()
        .join("node/executor/testdata/wasm")
        .join(format!("{name}.wasm"));
    std::fs::read(&path).with_context(|| format!("reading {}", path.display()))
}

/// Adds `bytes` to `api`'s store and returns the CID.
pub async fn upload(api: &str, bytes: Vec<u8>) -> Result<String> {
    let resp = reqwest::Client::new()
        .post(format!("{api}/api/v1/content"))
        .body(bytes)
        .send()
        .await?;
    ensure!(
        resp.status().is_success(),
        "upload failed: {}",
        resp.text().await?
    );
    let v: Value = resp.json().await?;
    Ok(v["cid"].as_str().context("no cid")?.to_owned())
}

/// GETs `url` and fails unless it answers 2xx with JSON.
pub async fn get_json(url: &str) -> Result<Value> {
    let resp = reqwest::Client::new().get(url).send().await?;
    let status = resp.status();
    let v: Value = resp.json().await?;
    ensure!(status.is_success(), "GET {url}: {status} {v}");
    Ok(v)
}

/// The wordcount job's input.
pub const FOX: &[u8] = b"the quick brown fox\njumps over the lazy dog\n";

/// Three deals, two must agree, no mediation, roomy windows.
pub const HONEST_DEAL: &str = "deal:\n  concurrency: 3\n  confidence: 2\n  min_bids: 3\n  mediation: false\n  windows: {bid: 6s, exec: 30s, reveal: 30s}\n";

/// A posted job.
#[derive(Debug, Clone, Copy)]
pub struct Job {
    pub id: JobId,
}

/// Uploads the spec in `yaml` to `api` and posts it with the devstack's creator key.
pub async fn post_spec(stack: &Devstack, api: &str, yaml: &str) -> Result<Job> {
    let spec = JobSpec::from_yaml(yaml).with_context(|| format!("spec:\n{yaml}"))?;
    let spec_cid = upload(api, spec.to_canonical_json()).await?;
    let spec_cid = shoal_store::parse_cid(&spec_cid)?;
    let creator: PrivateKeySigner = stack.creator_key.parse()?;
    let id = shoal_node::post_job(
        &stack.rpc_url,
        stack.deployment.job_market,
        creator,
        &spec,
        &spec_cid,
    )
    .await?;
    Ok(Job { id })
}

/// Uploads the wordcount module, an input and the spec to node 0, then posts the job.
pub async fn post_wordcount(
    stack: &Devstack,
    deal_yaml: &str,
    engine_override: Option<&str>,
) -> Result<Job> {
    let api = &stack.nodes[0].api_url();
    let module = upload(api, wasm("wordcount")?).await?;
    let input = upload(api, FOX.to_vec()).await?;
    let engine = engine_override.map(str::to_owned).unwrap_or_else(|| {
        format!("  wasm:\n    module: ipfs://{module}\n    args: [\"/inputs\"]\n")
    });
    let yaml = format!(
        "name: wordcount\nengine:\n{engine}inputs:\n  - source: ipfs://{input}\n    path: /inputs/fox.txt\nresources:\n  timeout: 10s\n{deal_yaml}"
    );
    post_spec(stack, api, &yaml).await
}

/// Uploads the `spin` module to node 0 and posts a job that computes for `millions` million
/// steps (a few seconds for a few hundred) with a `timeout`.
pub async fn post_spin(
    stack: &Devstack,
    millions: u32,
    timeout: Duration,
    deal_yaml: &str,
) -> Result<Job> {
    let api = &stack.nodes[0].api_url();
    let module = upload(api, wasm("spin")?).await?;
    let yaml = format!(
        "name: spin\nengine:\n  wasm:\n    module: ipfs://{module}\n    args: [\"{millions}\"]\nresources:\n  timeout: {}s\n{deal_yaml}",
        timeout.as_secs().max(1)
    );
    post_spec(stack, api, &yaml).await
}

/// Polls `api`'s view of job `id` until `pred` holds.
pub async fn wait_job(
    api: &str,
    id: JobId,
    timeout: Duration,
    what: &str,
    pred: impl Fn(&Value) -> bool,
) -> Result<Value> {
    let deadline = Instant::now() + timeout;
    let mut last = Value::Null;
    while Instant::now() < deadline {
        if let Ok(v) = get_json(&format!("{api}/api/v1/jobs/{id}")).await {
            if pred(&v) {
                return Ok(v);
            }
            last = v;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("timed out waiting for job {id} to be {what}; last seen: {last:#}")
}

/// A `wait_job` predicate: the job's on-chain state is `s`.
pub fn state_is(s: &'static str) -> impl Fn(&Value) -> bool {
    move |v| v["state"] == s
}

/// A `wait_job` predicate: the node's own execution is at step `s`.
pub fn step_is(s: &'static str) -> impl Fn(&Value) -> bool {
    move |v| v["execution"]["step"] == s
}

/// Polls `api` until job `id` is `Verified` there and its result is published on chain
/// (`ResultPublished`: `resultCid` set).
pub async fn wait_verified(api: &str, id: JobId, timeout: Duration) -> Result<Value> {
    wait_job(api, id, timeout, "Verified and published", |v| {
        v["state"] == "Verified" && !v["resultCid"].is_null()
    })
    .await
}

/// Polls `api` (for 20s) until its node has published its result of job `id`; `what` names
/// the wait in the timeout error.
pub async fn wait_published(api: &str, id: JobId, what: &str) -> Result<Value> {
    wait_job(api, id, Duration::from_secs(20), what, step_is("published")).await
}

/// Fails with "someone was slashed" unless the job JSON lists no slashes.
pub fn ensure_no_slashes(job: &Value) -> Result<()> {
    ensure!(
        job["slashes"].as_array().is_some_and(|s| s.is_empty()),
        "someone was slashed: {job:#}"
    );
    Ok(())
}

/// The names of job `id`'s events on `api`, oldest first.
pub async fn event_names(api: &str, id: JobId) -> Result<Vec<String>> {
    Ok(get_json(&format!("{api}/api/v1/jobs/{id}/events"))
        .await?
        .as_array()
        .context("events")?
        .iter()
        .filter_map(|e| e["event"].as_str().map(String::from))
        .collect())
}

/// The operator address of an in-process node, as the API prints it.
pub fn operator_of(node: &shoal_node::NodeHandle) -> Result<String> {
    Ok(addr(node.operator().context("operator")?))
}

/// An address as the API prints it, for comparisons.
pub fn addr(a: alloy::primitives::Address) -> String {
    format!("{a:?}").to_lowercase()
}

/// The deal of `operator` in a job JSON.
pub fn deal_of<'a>(job: &'a Value, operator: &str) -> Option<&'a Value> {
    job["deals"]
        .as_array()?
        .iter()
        .find(|d| d["operator"].as_str().map(str::to_lowercase).as_deref() == Some(operator))
}

/// How many deals of a job JSON have `field` set (`commitment`, `resultHash`).
pub fn deals_with(job: &Value, field: &str) -> usize {
    job["deals"]
        .as_array()
        .map_or(0, |d| d.iter().filter(|d| !d[field].is_null()).count())
}

/// Whether `operator` appears in the job's `payments` / `slashes` list.
pub fn listed(job: &Value, list: &str, operator: &str) -> bool {
    job[list].as_array().is_some_and(|l| {
        l.iter()
            .any(|e| e["account"].as_str().map(str::to_lowercase).as_deref() == Some(operator))
    })
}

/// A devstack of `nodes` nodes, the last `bad` of them lying, in `dir`.
pub async fn stack(
    dir: &tempfile::TempDir,
    nodes: usize,
    bad: usize,
    chain_rpc: Option<String>,
) -> Result<Devstack> {
    Ok(devstack::start(DevstackConfig {
        nodes,
        bad_nodes: bad,
        chain_rpc,
        base_dir: dir.path().to_path_buf(),
        ..Default::default()
    })
    .await?)
}

/// A devstack of `nodes` nodes in `dir`, on `chain_rpc` (or an embedded devchain), each node
/// configured by `customize`.
pub async fn stack_with(
    dir: &tempfile::TempDir,
    nodes: usize,
    chain_rpc: Option<String>,
    customize: Option<devstack::Customize>,
) -> Result<Devstack> {
    stack_with_faults(dir, nodes, chain_rpc, customize, BTreeMap::new()).await
}

/// [`stack_with`], with `faults` injected into the nodes they name.
pub async fn stack_with_faults(
    dir: &tempfile::TempDir,
    nodes: usize,
    chain_rpc: Option<String>,
    customize: Option<devstack::Customize>,
    faults: BTreeMap<usize, Fault>,
) -> Result<Devstack> {
    Ok(devstack::start(DevstackConfig {
        nodes,
        chain_rpc,
        customize,
        faults,
        base_dir: dir.path().to_path_buf(),
        ..Default::default()
    })
    .await?)
}

/// Spawns anvil from `node_modules/.bin`. `None` when it is not installed (the test is
/// skipped), an error when it is missing under CI.
pub fn anvil_or_skip() -> Result<Option<alloy::node_bindings::AnvilInstance>> {
    let anvil_bin = repo_root().join("node_modules/.bin/anvil");
    if !anvil_bin.exists() {
        if std::env::var_os("CI").is_some() {
            bail!(
                "anvil is missing at {}; run `scripts/setup.sh`",
                anvil_bin.display()
            );
        }
        eprintln!(
            "skipping: anvil not installed at {} (run scripts/setup.sh)",
            anvil_bin.display()
        );
        return Ok(None);
    }
    Ok(Some(
        alloy::node_bindings::Anvil::new()
            .path(&anvil_bin)
            .try_spawn()?,
    ))
}

/// A devstack customization: node `n - 1` never bids.
pub fn requester_last(n: usize) -> Option<devstack::Customize> {
    Some(std::sync::Arc::new(
        move |i, c: &mut shoal_node::NodeConfig| {
            if i == n - 1 {
                c.bid.enabled = false;
            }
        },
    ))
}

/// Node `n` runs with `fault`.
pub fn fault_on(n: usize, fault: Fault) -> BTreeMap<usize, Fault> {
    BTreeMap::from([(n, fault)])
}

/// Fetches the results CAR from `api`, imports it into a fresh store (every
/// block verified) and checks the root is the verified result CID; returns the job's stdout.
pub async fn check_results_from(api: &str, id: JobId, result_cid: &str) -> Result<String> {
    // Each node follows the chain on its own; this one may be a block behind.
    wait_job(
        api,
        id,
        Duration::from_secs(20),
        "Verified and published on this node",
        |v: &Value| v["state"] == "Verified" && !v["resultCid"].is_null(),
    )
    .await?;
    let resp = reqwest::Client::new()
        .get(format!("{api}/api/v1/jobs/{id}/results"))
        .send()
        .await?;
    ensure!(
        resp.status().is_success(),
        "results from {api}: {}",
        resp.text().await?
    );
    let car = resp.bytes().await?;
    let tmp = tempfile::tempdir()?;
    let store = shoal_store::Blockstore::open(tmp.path())?;
    let roots = shoal_store::car::import_car(&store, &mut &car[..])?;
    ensure!(
        roots.len() == 1 && roots[0].to_string() == result_cid,
        "CAR roots {roots:?} are not {result_cid}"
    );
    store.dag(&roots[0])?;
    let out = tmp.path().join("out");
    shoal_store::export::export(&store, &roots[0], &out)?;
    let rehashed = shoal_store::hash_path(&out, shoal_store::Profile::UnixfsV1_2025)?;
    ensure!(
        rehashed.to_string() == result_cid,
        "re-hashed results {rehashed} differ from {result_cid}"
    );
    Ok(std::fs::read_to_string(out.join("stdout"))?)
}

/// One node running as its own OS process (`shoal-e2e-node --config FILE`), so a test can
/// kill it with SIGKILL and start it again on the same data dir. Killed when dropped.
#[derive(Debug)]
pub struct NodeProcess {
    bin: PathBuf,
    config_file: PathBuf,
    fault: Option<Fault>,
    api: String,
    log: PathBuf,
    child: Option<tokio::process::Child>,
}

impl NodeProcess {
    /// Starts `bin --config config_file` and waits until its API answers. Output goes to
    /// `node.log` next to the config file.
    pub async fn start(bin: &Path, node: &devstack::ExternalNode) -> Result<Self> {
        let log = node.config_file.with_file_name("node.log");
        let mut p = Self {
            bin: bin.to_path_buf(),
            config_file: node.config_file.clone(),
            fault: node.fault,
            api: node.api_url(),
            log,
            child: None,
        };
        p.restart().await?;
        Ok(p)
    }

    /// The node's API base URL.
    pub fn api_url(&self) -> &str {
        &self.api
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(|c| c.id())
    }

    /// SIGKILLs the process and reaps it: no shutdown code runs.
    pub async fn kill(&mut self) -> Result<()> {
        let mut child = self.child.take().context("the node is not running")?;
        child.start_kill().context("cannot kill the node")?;
        let status = child.wait().await?;
        ensure!(
            std::os::unix::process::ExitStatusExt::signal(&status) == Some(9),
            "the node was not killed by SIGKILL: {status}"
        );
        Ok(())
    }

    /// Waits up to `timeout` for the process to exit by itself (e.g. after `shoal node leave`);
    /// its exit status.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Result<std::process::ExitStatus> {
        let child = self.child.as_mut().context("the node is not running")?;
        let status = tokio::time::timeout(timeout, child.wait())
            .await
            .with_context(|| {
                format!(
                    "the node at {} did not exit within {} s",
                    self.api,
                    timeout.as_secs()
                )
            })??;
        self.child = None;
        Ok(status)
    }

    /// Starts the process (again) with the same config and data dir; waits for its API. Retries
    /// while the API port is still held by the previous process.
    pub async fn restart(&mut self) -> Result<()> {
        ensure!(self.child.is_none(), "the node is already running");
        let mut last = String::new();
        for _ in 0..20 {
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.log)
                .with_context(|| format!("opening {}", self.log.display()))?;
            let mut cmd = tokio::process::Command::new(&self.bin);
            cmd.arg("--config").arg(&self.config_file);
            if let Some(f) = self.fault {
                cmd.arg("--fault").arg(f.to_string());
            }
            let mut child = cmd
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .kill_on_drop(true)
                .spawn()
                .with_context(|| format!("starting {}", self.bin.display()))?;
            // Its API must answer within 30 s; a node that answers but is still catching up
            // with the chain (503 from /healthz) gets up to 180 s more to become healthy.
            let deadline = Instant::now() + Duration::from_secs(30);
            let mut answered = false;
            let mut health = String::new();
            loop {
                if let Some(status) = child.try_wait()? {
                    last = format!("it exited with {status}");
                    break;
                }
                match reqwest::Client::new()
                    .get(format!("{}/healthz", self.api))
                    .send()
                    .await
                {
                    Ok(r) if r.status().is_success() => {
                        self.child = Some(child);
                        return Ok(());
                    }
                    Ok(r) => {
                        answered = true;
                        health = r.text().await.unwrap_or_default();
                    }
                    Err(_) => {}
                }
                let limit = if answered {
                    deadline + Duration::from_secs(180)
                } else {
                    deadline
                };
                if Instant::now() > limit {
                    // Where every thread of the process is, before it goes.
                    let stacks = child.id().map(thread_stacks).unwrap_or_default();
                    child.kill().await?;
                    bail!(
                        "the node at {} did not {}; last /healthz: {health}\nlog:\n{}\nthreads:\n{stacks}",
                        self.api,
                        if answered {
                            "catch up with the chain within 210s"
                        } else {
                            "answer within 30s"
                        },
                        self.log_tail()
                    );
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        bail!(
            "the node at {} did not start: {last}; log:\n{}",
            self.api,
            self.log_tail()
        )
    }

    /// Everything the process (and its earlier runs) logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last lines of the node's log, for error messages.
    pub fn log_tail(&self) -> String {
        let text = self.log();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

/// The stack of every thread of process `pid` (gdb, when installed), for a node that stopped
/// making progress.
fn thread_stacks(pid: u32) -> String {
    std::process::Command::new("gdb")
        .args([
            "-p",
            &pid.to_string(),
            "-batch",
            "-ex",
            "thread apply all bt 30",
        ])
        .stdin(Stdio::null())
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .filter(|l| l.starts_with('#') || l.starts_with("Thread"))
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_else(|e| format!("(no gdb: {e})"))
}
