//! The executor interface and the registry that picks one by name.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::spec::{EngineSpec, ExecutionRequest, ExecutionResult, Unsupported};

/// Runs jobs of one kind of engine and produces results folders.
#[async_trait]
pub trait Executor: Send + Sync {
    /// The name jobs select this executor by (`wasm`, `docker`).
    fn name(&self) -> &'static str;

    /// Whether the engine behind this executor is usable on this node now.
    async fn is_installed(&self) -> bool;

    /// Whether this node can run `engine` (right kind, image present, …).
    /// Bidding asks this before offering to run a job.
    async fn can_run(&self, engine: &EngineSpec) -> Result<(), Unsupported>;

    /// Runs one execution to completion, limit or cancellation. On success
    /// the results folder is in place and hashed; on error nothing of the
    /// execution is left on the node.
    async fn run(
        &self,
        req: ExecutionRequest,
        cancel: CancellationToken,
    ) -> Result<ExecutionResult>;
}

/// The executors of a node, keyed by name.
#[derive(Default, Clone)]
pub struct ExecutorRegistry {
    executors: BTreeMap<&'static str, Arc<dyn Executor>>,
}

impl ExecutorRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an executor under its own name, replacing one of the same name.
    pub fn register(&mut self, executor: Arc<dyn Executor>) -> &mut Self {
        self.executors.insert(executor.name(), executor);
        self
    }

    /// The executor registered as `name`.
    pub fn get(&self, name: &str) -> Option<Arc<dyn Executor>> {
        self.executors.get(name).cloned()
    }

    /// Registered names, sorted.
    pub fn names(&self) -> Vec<&'static str> {
        self.executors.keys().copied().collect()
    }

    /// The executor for an engine spec.
    pub fn for_engine(&self, engine: &EngineSpec) -> Result<Arc<dyn Executor>> {
        let name = engine.kind().name();
        self.get(name).ok_or_else(|| Error::UnknownExecutor {
            name: name.to_owned(),
            registered: self.names().join(", "),
        })
    }

    /// Whether some registered executor can run `engine` on this node.
    pub async fn can_run(&self, engine: &EngineSpec) -> Result<(), Unsupported> {
        match self.for_engine(engine) {
            Ok(executor) => executor.can_run(engine).await,
            Err(_) => Err(Unsupported::NotAvailable {
                executor: engine.kind().name(),
                reason: "no such executor is registered".into(),
            }),
        }
    }

    /// Runs `req` on the executor its engine names.
    pub async fn run(
        &self,
        req: ExecutionRequest,
        cancel: CancellationToken,
    ) -> Result<ExecutionResult> {
        self.for_engine(&req.engine)?.run(req, cancel).await
    }
}

impl std::fmt::Debug for ExecutorRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecutorRegistry")
            .field("executors", &self.names())
            .finish()
    }
}
