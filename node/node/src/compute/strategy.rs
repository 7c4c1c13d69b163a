//! Deciding whether to bid on a posted job, always with a reason.

use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;
use shoal_executor::ExecutorRegistry;
use shoal_types::JobSpec;

use crate::config::{BidHook, BidPolicy};
use shoal_api::JobView;
use shoal_chain::U256;

/// What a bid strategy sees.
#[derive(Debug)]
pub struct BidContext<'a> {
    /// The job as the chain shows it.
    pub job: &'a JobView,
    /// Its spec, checked against the posted spec hash.
    pub spec: &'a JobSpec,
    /// Jobs this node holds bids or deals on right now.
    pub active_jobs: usize,
    /// The first `ipfs://` module or input that is neither here nor with a known peer, when
    /// `bid.require_reachable_data` is on.
    pub unreachable: Option<String>,
    /// The first `ipfs://` module or input not in this node's store, when
    /// `bid.require_local_data` is on.
    pub not_local: Option<String>,
    /// This node's labels (`[labels]` in the node config).
    pub labels: &'a std::collections::BTreeMap<String, String>,
}

/// A decision and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Whether to bid.
    pub bid: bool,
    /// Why (or why not).
    pub reason: String,
    /// Price to bid (when bidding).
    pub price: Option<U256>,
}

impl Verdict {
    /// A refusal.
    pub fn decline(reason: impl Into<String>) -> Self {
        Self {
            bid: false,
            reason: reason.into(),
            price: None,
        }
    }
}

/// Decides on posted jobs.
#[async_trait]
pub trait BidStrategy: Send + Sync {
    /// The verdict on one posted job.
    async fn decide(&self, ctx: &BidContext<'_>) -> Verdict;
}

/// The configured policy: engines, executors installed and able to run the
/// job, resources, price, concurrency, then the operator's hook.
pub struct PolicyStrategy {
    /// The `[bid]` section of the node config.
    pub policy: BidPolicy,
    /// The executors this node runs jobs with.
    pub executors: ExecutorRegistry,
    /// For the operator's HTTP hook.
    pub http: reqwest::Client,
}

impl std::fmt::Debug for PolicyStrategy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyStrategy")
            .field("policy", &self.policy)
            .finish()
    }
}

/// The executor-side engine spec used to ask an executor whether it can run a job.
pub fn probe_engine(spec: &JobSpec) -> shoal_executor::EngineSpec {
    match &spec.engine {
        shoal_types::EngineSpec::Wasm(_) => shoal_executor::EngineSpec::Wasm(
            shoal_executor::WasmSpec::new(shoal_executor::WasmModule::Bytes(Arc::from(Vec::new()))),
        ),
        shoal_types::EngineSpec::Docker(d) => {
            shoal_executor::EngineSpec::Docker(shoal_executor::DockerSpec {
                image: d.image.clone(),
                ..Default::default()
            })
        }
    }
}

#[async_trait]
impl BidStrategy for PolicyStrategy {
    async fn decide(&self, ctx: &BidContext<'_>) -> Verdict {
        let engine = ctx.spec.engine.kind();
        if !self.policy.engines.is_empty() && !self.policy.engines.iter().any(|e| e == engine) {
            return Verdict::decline(format!(
                "engine {engine} is not offered by this node (bid.engines = [{}])",
                self.policy.engines.join(", ")
            ));
        }
        if !ctx.spec.network.is_none() && !self.policy.allow_network {
            return Verdict::decline(
                "the job asks for network access and this node refuses networked jobs \
                 (bid.allow_network = false)",
            );
        }
        if let Err(why) = self.executors.can_run(&probe_engine(ctx.spec)).await {
            return Verdict::decline(format!("cannot run {engine} jobs here: {why}"));
        }
        if let Some(c) = ctx.spec.constraints.iter().find(|c| !c.matches(ctx.labels)) {
            let have = if ctx.labels.is_empty() {
                "none".to_owned()
            } else {
                ctx.labels
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            return Verdict::decline(format!(
                "placement constraint `{c}` does not hold here (this node's labels: {have})"
            ));
        }
        if let Some(what) = &ctx.not_local {
            return Verdict::decline(format!(
                "{what} is not in this node's store and bid.require_local_data is on"
            ));
        }
        if let Some(what) = &ctx.unreachable {
            return Verdict::decline(format!(
                "{what} is neither on this node nor with any peer it knows; make it reachable: \
                 `shoal content add PATH --node URL` to a node of this network, or run the job \
                 with the data as a local input (`-i PATH:/inputs`), which uploads it"
            ));
        }
        let r = &ctx.spec.resources;
        if r.memory > self.policy.max_memory {
            return Verdict::decline(format!(
                "the job asks for {} of memory, more than this node's limit of {} \
                 (bid.max_memory)",
                shoal_types::human_bytes(r.memory),
                shoal_types::human_bytes(self.policy.max_memory)
            ));
        }
        if r.timeout.as_secs() > self.policy.max_timeout_secs {
            return Verdict::decline(format!(
                "the job asks for a timeout of {}s, more than this node's limit of {}s \
                 (bid.max_timeout_secs)",
                r.timeout.as_secs(),
                self.policy.max_timeout_secs
            ));
        }
        if r.cpu > self.policy.max_cpu {
            return Verdict::decline(format!(
                "the job asks for {} CPUs, more than this node's limit of {}",
                r.cpu, self.policy.max_cpu
            ));
        }
        if let Some(why) = self.unsafe_deal(ctx) {
            return Verdict::decline(why);
        }
        let max_price = ctx.job.params.max_price;
        if max_price < U256::from(self.policy.min_price) {
            return Verdict::decline(format!(
                "max price {max_price} wei is below this node's minimum of {} wei",
                self.policy.min_price
            ));
        }
        if ctx.active_jobs >= self.policy.max_concurrent_jobs {
            return Verdict::decline(format!(
                "busy: {} jobs in progress (bid.max_concurrent_jobs = {})",
                ctx.active_jobs, self.policy.max_concurrent_jobs
            ));
        }
        if let Some(hook) = &self.policy.hook {
            let body = serde_json::json!({ "job": ctx.job, "spec": ctx.spec });
            if let Some(reason) = hook_declines(hook, &self.http, &body).await {
                return Verdict::decline(reason);
            }
        }
        Verdict {
            bid: true,
            reason: format!("{engine} job accepted at the max price"),
            price: Some(max_price),
        }
    }
}

impl PolicyStrategy {
    /// Why bidding on this job would put the collateral at risk without the node at fault: a
    /// window too short to commit or reveal in, a run longer than the exec window, or a
    /// collateral out of proportion to the pay.
    fn unsafe_deal(&self, ctx: &BidContext<'_>) -> Option<String> {
        let p = &ctx.job.params;
        let policy = &self.policy;
        if u64::from(p.exec_window) < policy.min_exec_window_secs {
            return Some(format!(
                "the exec window of {}s is shorter than this node's minimum of {}s \
                 (bid.min_exec_window_secs): a commit might not land in time",
                p.exec_window, policy.min_exec_window_secs
            ));
        }
        if u64::from(p.reveal_window) < policy.min_reveal_window_secs {
            return Some(format!(
                "the reveal window of {}s is shorter than this node's minimum of {}s \
                 (bid.min_reveal_window_secs): a reveal might not land in time",
                p.reveal_window, policy.min_reveal_window_secs
            ));
        }
        let timeout = ctx.spec.resources.timeout;
        if timeout.as_secs_f64() > f64::from(p.exec_window) {
            return Some(format!(
                "the job may run for {}s (resources.timeout) but the exec window is {}s: \
                 it could not commit in time",
                timeout.as_secs_f64(),
                p.exec_window
            ));
        }
        if p.collateral
            > p.max_price
                .saturating_mul(U256::from(policy.max_collateral_ratio))
        {
            return Some(format!(
                "the collateral of {} wei is more than {} times the max price of {} wei \
                 (bid.max_collateral_ratio)",
                p.collateral, policy.max_collateral_ratio, p.max_price
            ));
        }
        None
    }
}

#[derive(Deserialize)]
struct HookAnswer {
    bid: bool,
    #[serde(default)]
    reason: String,
}

/// Why the operator's hook refuses the job described by `body` (its answer, or its failure),
/// if it does.
pub(crate) async fn hook_declines(
    hook: &BidHook,
    http: &reqwest::Client,
    body: &serde_json::Value,
) -> Option<String> {
    match ask_hook(hook, http, body).await {
        Ok(v) if !v.bid => Some(format!("operator hook declined: {}", v.reason)),
        Ok(_) => None,
        Err(e) => Some(format!("operator hook failed: {e}")),
    }
}

async fn ask_hook(
    hook: &BidHook,
    http: &reqwest::Client,
    body: &serde_json::Value,
) -> Result<HookAnswer, String> {
    let body = serde_json::to_vec(body).map_err(|e| e.to_string())?;
    let answer = match hook {
        BidHook::Http(url) => {
            let resp = http
                .post(url)
                .header("content-type", "application/json")
                .body(body)
                .timeout(std::time::Duration::from_secs(10))
                .send()
                .await
                .map_err(|e| e.to_string())?;
            resp.bytes().await.map_err(|e| e.to_string())?.to_vec()
        }
        BidHook::Command(argv) => {
            use tokio::io::AsyncWriteExt;
            let (prog, args) = argv.split_first().ok_or("the hook command is empty")?;
            let mut child = tokio::process::Command::new(prog)
                .args(args)
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .map_err(|e| format!("cannot start {prog}: {e}"))?;
            if let Some(mut stdin) = child.stdin.take() {
                stdin.write_all(&body).await.map_err(|e| e.to_string())?;
            }
            let out =
                tokio::time::timeout(std::time::Duration::from_secs(10), child.wait_with_output())
                    .await
                    .map_err(|_| "timed out after 10 s".to_string())?
                    .map_err(|e| e.to_string())?;
            out.stdout
        }
    };
    serde_json::from_slice(&answer)
        .map_err(|e| format!("answer is not {{\"bid\": bool, \"reason\": ...}}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> BidHook {
        BidHook::Command(vec!["sh".into(), "-c".into(), script.into()])
    }

    #[tokio::test]
    async fn the_hook_reads_the_job_and_its_answer_decides() {
        let http = reqwest::Client::new();
        let body = serde_json::json!({ "shardedJob": { "id": "7" }, "spec": {} });
        // The hook gets the body on stdin: it bids only on job 7.
        let hook = sh(
            r#"if grep -q '"id":"7"'; then echo '{"bid": true}'; else echo '{"bid": false, "reason": "not 7"}'; fi"#,
        );
        assert_eq!(hook_declines(&hook, &http, &body).await, None);
        let other = serde_json::json!({ "shardedJob": { "id": "8" } });
        let reason = hook_declines(&hook, &http, &other).await.expect("declined");
        assert_eq!(reason, "operator hook declined: not 7");
        let garbled = hook_declines(&sh("cat >/dev/null; echo yes"), &http, &body)
            .await
            .expect("a bad answer declines");
        assert!(garbled.contains("operator hook failed"), "{garbled}");
        let missing = hook_declines(
            &BidHook::Command(vec!["/nonexistent/hook".into()]),
            &http,
            &body,
        )
        .await
        .expect("a missing hook declines");
        assert!(missing.contains("cannot start"), "{missing}");
    }
}
