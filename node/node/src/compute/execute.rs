//! Running a job this node was selected (or drawn as a mediator) for: fetch, execute, persist
//! the result and its salt, commit; then reveal.

use std::path::PathBuf;
use std::sync::Arc;

use cid::Cid;
use shoal_api::{Execution, JobId, JobView, Role, Step, now_secs, result_hash_of};
use shoal_chain::bindings::JobMarket::JobMarketErrors as Revert;
use shoal_chain::{Address, B256};
use shoal_executor::{
    DockerSpec, EngineSpec, ExecutionId, ExecutionRequest, InputMount, Limits, OutputVolume,
    WasmModule, WasmSpec,
};

use super::egress::{EGRESS_NETWORK, EgressProxy};
use super::inputs::{load_spec, module_bytes, mount};
use crate::chain::{commitment, sealed_hash};
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::node::Node;

/// Records `step` as this node's execution of `job`.
fn set_step(node: &Node, job: &JobView, role: Role, step: Step) -> Result<Execution> {
    let e = match node.db.execution(job.id)? {
        Some(p) => Execution {
            role,
            step,
            updated_at: now_secs(),
            ..p
        },
        None => Execution::new(job.id, role, step),
    };
    node.db.put_execution(&e)?;
    Ok(e)
}

/// Runs the job and persists the result and salt; the commit follows.
pub(crate) async fn execute(node: Arc<Node>, job: JobView, role: Role) -> Result<()> {
    let id = job.id;
    set_step(&node, &job, role, Step::Selected)?;
    set_step(&node, &job, role, Step::Fetching)?;
    Metrics::inc(&node.metrics.executions_started);
    tracing::info!(job = %id, ?role, "execution started");
    let (cid, results_dir, exit_code) = match run_job(&node, &job, RunFor::Deal(role)).await {
        Ok(v) => v,
        // Data that cannot be fetched now may be fetchable later (a peer restarting): retry.
        Err(e @ (Error::Content { .. } | Error::Input { .. })) => {
            set_step(&node, &job, role, Step::Selected)?;
            return Err(e);
        }
        Err(e) => {
            Metrics::inc(&node.metrics.executions_failed);
            let reason = e.to_string();
            set_step(&node, &job, role, Step::Failed { reason })?;
            return Err(e);
        }
    };
    tracing::info!(job = %id, result = %cid, exit_code, "execution finished");
    let result_hash = result_hash_of(&cid)?;
    let prev = node.db.execution(id)?;
    let exec = Execution {
        job_id: id,
        role,
        step: Step::Committed {
            result_hash,
            result_cid: cid.to_string(),
            salt: B256::random(),
            commit_confirmed: false,
        },
        results_dir: Some(results_dir.display().to_string()),
        exit_code: Some(exit_code),
        claimed: prev.is_some_and(|p| p.claimed),
        updated_at: now_secs(),
    };
    // The salt is on disk before the commitment leaves the node.
    node.db.put_execution(&exec)?;
    let me = node.chain.operator()?;
    send_commit(node, &job, exec, me).await
}

/// Sends the commitment of a persisted result (unless the chain already has it) and records
/// it confirmed.
pub(crate) async fn send_commit(
    node: Arc<Node>,
    job: &JobView,
    exec: Execution,
    me: Address,
) -> Result<()> {
    let Some((result_hash, result_cid, salt)) = committed(&exec.step) else {
        return Ok(());
    };
    // An original deal commits the sealed hash it will reveal; a mediator the plain hash.
    let value = if exec.role == Role::Mediator {
        result_hash
    } else {
        sealed_hash(job.id, result_hash)
    };
    let c = commitment(job.id, me, value, salt);
    let already = job.deal_of(me).is_some_and(|d| d.commitment == Some(c));
    if !already {
        match node.chain.commit(job.id, c).await {
            Ok(tx) => tracing::info!(job = %job.id, %tx, %result_cid, "result committed"),
            Err(e)
                if matches!(
                    e.market_revert(),
                    Some(Revert::JobMarket__AlreadyCommitted(_))
                ) => {}
            Err(e) => {
                Metrics::inc(&node.metrics.tx_errors);
                return Err(e);
            }
        }
        Metrics::inc(&node.metrics.commits);
    }
    node.db.put_execution(&Execution {
        step: Step::Committed {
            result_hash,
            result_cid,
            salt,
            commit_confirmed: true,
        },
        updated_at: now_secs(),
        ..exec
    })?;
    node.observe(crate::node::NodeEvent::Committed { job: job.id });
    Ok(())
}

/// The result hash, result CID and salt of a committed step.
fn committed(step: &Step) -> Option<(B256, String, B256)> {
    match step {
        Step::Committed {
            result_hash,
            result_cid,
            salt,
            ..
        } => Some((*result_hash, result_cid.clone(), *salt)),
        _ => None,
    }
}

/// Reveals a committed result.
pub(crate) async fn reveal(node: Arc<Node>, exec: Execution) -> Result<()> {
    let Some((result_hash, result_cid, salt)) = committed(&exec.step) else {
        return Ok(());
    };
    let mediator = exec.role == Role::Mediator;
    match node
        .chain
        .reveal(exec.job_id, mediator, result_hash, salt)
        .await
    {
        Ok(tx) => {
            Metrics::inc(&node.metrics.reveals);
            tracing::info!(job = %exec.job_id, %tx, "result revealed");
        }
        Err(e)
            if matches!(
                e.market_revert(),
                Some(Revert::JobMarket__AlreadyRevealed(_))
            ) => {}
        Err(e) => {
            Metrics::inc(&node.metrics.tx_errors);
            return Err(e);
        }
    }
    node.db.put_execution(&Execution {
        step: Step::Revealed {
            result_hash,
            result_cid,
        },
        updated_at: now_secs(),
        ..exec
    })
}

/// The executor's request for `spec`'s engine, with the module's bytes.
fn engine(spec: &shoal_types::EngineSpec, module: Option<Arc<[u8]>>, seed: u64) -> EngineSpec {
    match spec {
        shoal_types::EngineSpec::Wasm(w) => EngineSpec::Wasm(WasmSpec {
            module: WasmModule::Bytes(module.unwrap_or_else(|| Arc::from(Vec::new()))),
            entrypoint: w.entrypoint.clone(),
            args: w.args.clone(),
            env: w.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            random_seed: seed,
        }),
        shoal_types::EngineSpec::Docker(d) => EngineSpec::Docker(DockerSpec {
            image: d.image.clone(),
            entrypoint: d.entrypoint.clone(),
            cmd: (!d.cmd.is_empty()).then(|| d.cmd.clone()),
            env: d.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            working_dir: d.working_dir.clone(),
        }),
    }
}

/// Why a job is run here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RunFor {
    /// This node's deal (or mediation): the execution's steps are recorded.
    Deal(Role),
    /// A watcher's re-run of an optimistic job (`[watch]`): nothing is recorded.
    Watch,
}

impl RunFor {
    /// The execution id and work folder name of a run of `job`.
    fn name(self, job: JobId) -> String {
        match self {
            Self::Deal(_) => format!("job-{job}"),
            Self::Watch => format!("watch-{job}"),
        }
    }
}

/// Fetches the module and inputs, runs the executor, returns (result CID, results folder, exit
/// code).
pub(crate) async fn run_job(
    node: &Arc<Node>,
    job: &JobView,
    run_for: RunFor,
) -> Result<(Cid, PathBuf, i32)> {
    let spec = load_spec(&node.content, job).await?;
    // The seed of the job's randomness: the job id's low 64 bits, the same on every node.
    let seed = job.id.as_u256().as_limbs()[0];
    run_spec(node, &spec, &run_for.name(job.id), seed, || match run_for {
        RunFor::Deal(role) => set_step(node, job, role, Step::Running).map(|_| ()),
        RunFor::Watch => Ok(()),
    })
    .await
}

/// Runs `spec` as execution `name` (its work folder and results folder) with the random seed
/// `seed`; `on_running` is called once the run has an executor slot, just before it starts.
pub(crate) async fn run_spec(
    node: &Arc<Node>,
    spec: &shoal_types::JobSpec,
    name: &str,
    seed: u64,
    on_running: impl FnOnce() -> Result<()>,
) -> Result<(Cid, PathBuf, i32)> {
    let work = node.work_root.join(name);
    shoal_store::paths::remove_tree(&work)?;
    let (scratch, inputs) = (work.join("module"), work.join("inputs"));
    for dir in [&scratch, &inputs] {
        std::fs::create_dir_all(dir).map_err(|e| Error::io("creating", dir, e))?;
    }
    let module = match &spec.engine {
        shoal_types::EngineSpec::Wasm(w) => {
            Some(module_bytes(&node.providers, &w.module, &scratch).await?)
        }
        shoal_types::EngineSpec::Docker(_) => None,
    };
    let exec_id = ExecutionId::new(name)?;
    let mut req = ExecutionRequest::new(exec_id.clone(), engine(&spec.engine, module, seed));
    for input in &spec.inputs {
        let host_path = mount(&node.providers, input, &inputs).await?;
        req.inputs.push(InputMount {
            host_path,
            container_path: input.path.clone(),
        });
    }
    req.outputs = spec
        .outputs
        .iter()
        .map(|o| OutputVolume {
            name: o.name.clone(),
            container_path: o.path.clone(),
        })
        .collect();
    req.limits = Limits {
        memory_bytes: spec.resources.memory,
        timeout: spec.resources.timeout,
        cpu_millis: (spec.resources.cpu * 1000.0)
            .round()
            .clamp(1.0, f64::from(u32::MAX)) as u32,
        ..Limits::default()
    };
    req.network = !spec.network.is_none();
    // An allow-list: the container runs on the internal egress network, whose only way out is
    // a proxy that forwards to the allow-listed hosts alone.
    let _proxy = match &spec.network {
        shoal_types::Network::Domains(_) => {
            let docker = shoal_executor::DockerExecutor::connect(
                shoal_executor::DockerConfig::new(&node.results_root),
            )
            .await?;
            let gateway = docker.egress_network(EGRESS_NETWORK).await?;
            let proxy = EgressProxy::start(gateway, spec.network.clone()).await?;
            req.docker_network = Some(EGRESS_NETWORK.to_owned());
            if let EngineSpec::Docker(d) = &mut req.engine {
                for k in ["HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"] {
                    d.env.push((k.to_owned(), proxy.url()));
                }
            }
            Some(proxy)
        }
        _ => None,
    };

    let old = node.results_root.join(exec_id.as_str());
    if old.exists() {
        std::fs::remove_dir_all(&old).map_err(|e| Error::io("removing old results", &old, e))?;
    }
    let _slot = node
        .scheduler
        .exec_slots
        .acquire()
        .await
        .map_err(|_| Error::Config("the execution queue is closed".into()))?;
    on_running()?;
    let outputs = req.outputs.clone();
    let ran = node
        .executors
        .run(req, node.tasks.token().child_token())
        .await;
    let (cid, dir, exit_code) = match ran {
        Ok(r) => (r.result_hash, r.results_dir, r.exit_code),
        // A run stopped at its timeout still has a result, the same on every node: the job
        // verifies as timed out and nobody loses collateral over a slow program.
        Err(shoal_executor::Error::Timeout { timeout }) => {
            tracing::info!(execution = %name, ?timeout, "the run took longer than its timeout");
            let root = node.results_root.clone();
            let (dir, cid) = tokio::task::spawn_blocking(move || {
                shoal_executor::write_timed_out(&root, &exec_id, &outputs, timeout)
            })
            .await
            .map_err(|e| Error::Content {
                cid: format!("results of {name}"),
                reason: format!("writing the timed-out result was interrupted: {e}"),
            })??;
            (cid, dir, shoal_executor::TIMED_OUT_EXIT_CODE)
        }
        Err(e) => return Err(e.into()),
    };
    if let Err(e) = shoal_store::paths::remove_tree(&work) {
        tracing::warn!(execution = %name, error = %e, "cannot remove the work folder");
    }
    Ok((cid, dir, exit_code))
}

#[cfg(test)]
mod tests {
    use shoal_api::{Step, results_cid_of};
    use shoal_chain::JobState;

    use crate::chain::sealed_hash;
    use crate::testkit::{Kit, SOLO_DEAL};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_selected_node_runs_commits_reveals_and_its_result_verifies() {
        let kit = Kit::start(|_| {}).await;
        let id = kit.post_hello(SOLO_DEAL).await;
        let (job, exec) = kit
            .wait(id, "verified and published", |j, _| {
                j.state == JobState::Verified && j.result_hash.is_some()
            })
            .await;
        let deal = job.deal_of(kit.node.operator().expect("operator"));
        let deal = deal.expect("this node's deal");
        // The deal revealed only the sealed hash; the node published the plain one after.
        assert!(deal.commitment.is_some() && deal.sealed_result == job.sealed_result);
        let hash = job.result_hash.expect("result hash");
        assert_eq!(job.sealed_result, Some(sealed_hash(id, hash)));
        assert_ne!(job.sealed_result, Some(hash));
        let cid = results_cid_of(hash).expect("cid").to_string();
        assert_eq!(job.result_cid.as_deref(), Some(cid.as_str()));
        assert_eq!(deal.result_cid, job.result_cid);
        let exec = exec.expect("an execution");
        assert_eq!(exec.exit_code, Some(0));
        let stdout =
            std::path::Path::new(exec.results_dir.as_deref().expect("results")).join("stdout");
        assert!(!std::fs::read(stdout).expect("stdout").is_empty());
        assert!(!matches!(exec.step, Step::Failed { .. }), "{exec:?}");
        kit.stop().await;
    }
}
