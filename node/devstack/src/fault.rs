//! Injected misbehaviour, for showing slashing and recovery. A faulty node runs the
//! production node unchanged: its executors are wrapped ([`FaultyExecutor`]), or a watcher
//! outside it stops it at the chosen moment.

use std::sync::Arc;

use async_trait::async_trait;
use shoal_executor::{
    EngineSpec, ExecutionRequest, ExecutionResult, Executor, Unsupported, hash_results,
};
use shoal_node::{ExecutorLayer, NodeConfig, NodeEvent, NodeHandle, NodeOptions};
use tokio_util::sync::CancellationToken;

/// A fault a devstack node runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Report a wrong result (the results folder gets an extra line in `stdout`).
    WrongResult,
    /// Stop the whole node right after its first commit is confirmed, as if killed.
    CrashAfterCommit,
    /// Stop the whole node when an execution has started, as if killed mid-run.
    CrashWhileRunning,
    /// Report a wrong result for the odd-numbered shards of sharded jobs only (other runs are
    /// honest): with a [`Fault::WrongEvenShards`] node on the same batch, no two batch roots
    /// agree while every shard still has a majority.
    WrongOddShards,
    /// Report a wrong result for the even-numbered shards of sharded jobs only.
    WrongEvenShards,
}

impl Fault {
    const ALL: [Fault; 5] = [
        Fault::WrongResult,
        Fault::CrashAfterCommit,
        Fault::CrashWhileRunning,
        Fault::WrongOddShards,
        Fault::WrongEvenShards,
    ];

    /// The fault's name: `wrong-result`, `crash-after-commit`, `crash-while-running`.
    pub fn name(self) -> &'static str {
        match self {
            Fault::WrongResult => "wrong-result",
            Fault::CrashAfterCommit => "crash-after-commit",
            Fault::CrashWhileRunning => "crash-while-running",
            Fault::WrongOddShards => "wrong-odd-shards",
            Fault::WrongEvenShards => "wrong-even-shards",
        }
    }
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Fault {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| {
                format!("`{s}` is not a fault; use wrong-result, crash-after-commit, crash-while-running, wrong-odd-shards or wrong-even-shards")
            })
    }
}

/// An executor that misbehaves as its [`Fault`] says, around a real one.
pub struct FaultyExecutor {
    inner: Arc<dyn Executor>,
    fault: Fault,
    /// Stops the whole node.
    node: CancellationToken,
}

impl FaultyExecutor {
    /// Wraps `inner`; `node` is the token that stops the node it runs in.
    pub fn new(inner: Arc<dyn Executor>, fault: Fault, node: CancellationToken) -> Self {
        Self { inner, fault, node }
    }

    /// The layer a node starts with to have its executors misbehave.
    pub fn layer(fault: Fault) -> ExecutorLayer {
        Arc::new(move |inner, node| Arc::new(FaultyExecutor::new(inner, fault, node)))
    }
}

#[async_trait]
impl Executor for FaultyExecutor {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    async fn is_installed(&self) -> bool {
        self.inner.is_installed().await
    }

    async fn can_run(&self, engine: &EngineSpec) -> Result<(), Unsupported> {
        self.inner.can_run(engine).await
    }

    async fn run(
        &self,
        req: ExecutionRequest,
        cancel: CancellationToken,
    ) -> shoal_executor::Result<ExecutionResult> {
        match self.fault {
            Fault::CrashWhileRunning => {
                tracing::warn!(execution = %req.execution_id, "fault injection: stopping the node during the execution");
                self.node.cancel();
                std::future::pending().await
            }
            Fault::WrongOddShards | Fault::WrongEvenShards
                if shard_of(req.execution_id.as_str())
                    .is_none_or(|s| (s % 2 == 1) != (self.fault == Fault::WrongOddShards)) =>
            {
                self.inner.run(req, cancel).await
            }
            Fault::WrongResult | Fault::WrongOddShards | Fault::WrongEvenShards => {
                let mut result = self.inner.run(req, cancel).await?;
                let stdout = result.results_dir.join("stdout");
                let mut bytes = std::fs::read(&stdout).map_err(|e| io_err(&stdout, e))?;
                bytes.extend_from_slice(b"fault injected by this node\n");
                std::fs::write(&stdout, bytes).map_err(|e| io_err(&stdout, e))?;
                result.result_hash = hash_results(&result.results_dir)?;
                Ok(result)
            }
            Fault::CrashAfterCommit => self.inner.run(req, cancel).await,
        }
    }
}

/// The shard index of a shard's execution (`shard-{job}-{index}`, as the node names it).
fn shard_of(execution: &str) -> Option<u64> {
    execution
        .strip_prefix("shard-")?
        .rsplit('-')
        .next()?
        .parse()
        .ok()
}

fn io_err(path: &std::path::Path, e: std::io::Error) -> shoal_executor::Error {
    shoal_executor::Error::Io {
        action: "injecting a wrong result into",
        path: path.to_path_buf(),
        source: e,
    }
}

/// Starts a node with `fault` injected (`None`: a healthy node).
pub async fn start_node(cfg: NodeConfig, fault: Option<Fault>) -> shoal_node::Result<NodeHandle> {
    let Some(fault) = fault else {
        return shoal_node::start(cfg).await;
    };
    let options = match fault {
        // Stopped inline, right after the commit is recorded: before any reveal can start.
        Fault::CrashAfterCommit => NodeOptions {
            observer: Some(Arc::new(|event: &NodeEvent, stop: &CancellationToken| {
                if matches!(event, NodeEvent::Committed { .. }) {
                    tracing::warn!("fault injection: stopping the node after the commit");
                    stop.cancel();
                }
            })),
            ..NodeOptions::default()
        },
        _ => NodeOptions {
            executor_layer: Some(FaultyExecutor::layer(fault)),
            ..NodeOptions::default()
        },
    };
    shoal_node::start_with(cfg, options).await
}
