//! Container jobs on a Docker engine (or podman's compatible API) via bollard.
//!
//! Inputs are bind-mounted read-only, outputs read-write; CPU, memory (swap
//! off) and pids are limited; the network is off unless the request allows
//! it. stdout/stderr are streamed through an attach and capped. The container
//! is labelled with its execution id and removed on every path: success,
//! failure, timeout, cancellation, and (through a guard) when the run's
//! future is dropped. [`DockerExecutor::remove_leftovers`] cleans what a
//! crashed node left behind.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bollard::Docker;
use bollard::container::LogOutput;
use bollard::models::{ContainerCreateBody, HostConfig, HostConfigLogConfig};
use bollard::query_parameters::{
    AttachContainerOptions, CreateContainerOptions, InspectContainerOptions, ListContainersOptions,
    RemoveContainerOptions, StartContainerOptions, WaitContainerOptions,
};
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::registry::Executor;
use crate::results::{Collected, Staging, tree_size};
use crate::spec::{
    DockerSpec, EngineKind, EngineSpec, ExecutionId, ExecutionRequest, ExecutionResult, Unsupported,
};

/// Label holding the execution id on every container this executor makes.
pub const EXECUTION_LABEL: &str = "shoal.execution";
/// Label holding [`DockerConfig::node_label`] on every container this executor makes.
pub const NODE_LABEL: &str = "shoal.node";
/// How often the output volumes are measured while a container runs.
const OUTPUT_CHECK_INTERVAL: Duration = Duration::from_millis(500);
/// How long to wait for the last stdout/stderr bytes after the container exits.
const LOG_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Settings of a [`DockerExecutor`].
#[derive(Debug, Clone)]
pub struct DockerConfig {
    /// Results folders are made under this folder, one per execution id.
    pub results_root: PathBuf,
    /// Identifies this node's containers, so that
    /// [`DockerExecutor::remove_leftovers`] never touches another node's.
    pub node_label: String,
    /// Run containers as the node's own uid:gid, so the node can always read
    /// and remove what they write. When false the image's user is used.
    pub run_as_node_user: bool,
}

impl DockerConfig {
    /// Defaults: node label `default`, containers run as the node's user.
    pub fn new(results_root: impl Into<PathBuf>) -> Self {
        Self {
            results_root: results_root.into(),
            node_label: "default".into(),
            run_as_node_user: true,
        }
    }
}

/// Runs container jobs on a Docker engine.
#[derive(Clone)]
pub struct DockerExecutor {
    docker: Docker,
    config: DockerConfig,
}

impl std::fmt::Debug for DockerExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DockerExecutor")
            .field("config", &self.config)
            .finish()
    }
}

impl DockerExecutor {
    /// Connects to the engine named by `DOCKER_HOST` (or the local socket),
    /// agrees on an API version and checks it answers.
    pub async fn connect(config: DockerConfig) -> Result<Self> {
        let docker = Docker::connect_with_defaults()
            .map_err(|source| Error::DockerUnavailable { source })?;
        Self::with_client(docker, config).await
    }

    /// Uses an already configured bollard client.
    pub async fn with_client(docker: Docker, config: DockerConfig) -> Result<Self> {
        let docker = docker
            .negotiate_version()
            .await
            .map_err(|source| Error::DockerUnavailable { source })?;
        docker
            .ping()
            .await
            .map_err(|source| Error::DockerUnavailable { source })?;
        Ok(Self { docker, config })
    }

    /// The bollard client.
    pub fn client(&self) -> &Docker {
        &self.docker
    }

    /// Whether `image` is present on this node (no registry is asked).
    pub async fn image_present(&self, image: &str) -> Result<bool> {
        match self.docker.inspect_image(image).await {
            Ok(_) => Ok(true),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(false),
            Err(source) => Err(Error::Docker {
                action: "inspecting an image",
                source,
            }),
        }
    }

    /// The gateway address of `name`, an internal Docker network (no route out of the host),
    /// created when missing. A proxy the node binds on that address is the only way out for
    /// containers attached to it.
    pub async fn egress_network(&self, name: &str) -> Result<std::net::IpAddr> {
        let inspect = |action| async move {
            match self.docker.inspect_network(name, None).await {
                Ok(n) => Ok(Some(n)),
                Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 404, ..
                }) => Ok(None),
                Err(source) => Err(Error::Docker { action, source }),
            }
        };
        let network = match inspect("inspecting the egress network").await? {
            Some(n) => n,
            None => {
                let req = bollard::models::NetworkCreateRequest {
                    name: name.to_owned(),
                    driver: Some("bridge".into()),
                    internal: Some(true),
                    labels: Some(HashMap::from([(
                        NODE_LABEL.to_owned(),
                        self.config.node_label.clone(),
                    )])),
                    ..Default::default()
                };
                match self.docker.create_network(req).await {
                    Ok(_) => {}
                    // Another node on this engine made it meanwhile.
                    Err(bollard::errors::Error::DockerResponseServerError {
                        status_code: 409,
                        ..
                    }) => {}
                    Err(source) => {
                        return Err(Error::Docker {
                            action: "creating the egress network",
                            source,
                        });
                    }
                }
                inspect("inspecting the egress network")
                    .await?
                    .ok_or_else(|| Error::DockerProtocol(format!("network {name} vanished")))?
            }
        };
        if network.internal != Some(true) {
            return Err(Error::DockerProtocol(format!(
                "network {name} exists but is not internal: containers on it could bypass the \
                 proxy; remove it (docker network rm {name})"
            )));
        }
        network
            .ipam
            .and_then(|i| i.config)
            .into_iter()
            .flatten()
            .find_map(|c| c.gateway.and_then(|g| g.parse().ok()))
            .ok_or_else(|| Error::DockerProtocol(format!("network {name} has no gateway address")))
    }

    /// Ids of the containers (running or not) labelled with this execution id.
    pub async fn containers_of(&self, id: &ExecutionId) -> Result<Vec<String>> {
        self.list_labelled(&format!("{EXECUTION_LABEL}={id}")).await
    }

    /// Force-removes every container this node made that is still around
    /// (after a crash or a kill). Returns how many were removed. Call at start.
    pub async fn remove_leftovers(&self) -> Result<usize> {
        let ids = self
            .list_labelled(&format!("{NODE_LABEL}={}", self.config.node_label))
            .await?;
        for id in &ids {
            remove_container(&self.docker, id).await?;
        }
        Ok(ids.len())
    }

    async fn list_labelled(&self, label: &str) -> Result<Vec<String>> {
        let filters = HashMap::from([("label".to_owned(), vec![label.to_owned()])]);
        let options = ListContainersOptions {
            all: true,
            filters: Some(filters),
            ..Default::default()
        };
        let containers = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(|source| Error::Docker {
                action: "listing containers",
                source,
            })?;
        Ok(containers.into_iter().filter_map(|c| c.id).collect())
    }

    fn container_body(
        &self,
        req: &ExecutionRequest,
        spec: &DockerSpec,
        staging: &Staging,
    ) -> Result<ContainerCreateBody> {
        let mut binds = Vec::new();
        for input in &req.inputs {
            let host = std::path::absolute(&input.host_path)
                .map_err(|e| Error::io("resolving the input", &input.host_path, e))?;
            if !host.exists() {
                return Err(Error::io(
                    "reading the input",
                    &host,
                    std::io::Error::from(std::io::ErrorKind::NotFound),
                ));
            }
            binds.push(format!("{}:{}:ro", host.display(), input.container_path));
        }
        for output in &req.outputs {
            let host = std::path::absolute(staging.output_dir(&output.name)).map_err(|e| {
                Error::io(
                    "resolving the output folder",
                    staging.output_dir(&output.name),
                    e,
                )
            })?;
            binds.push(format!("{}:{}:rw", host.display(), output.container_path));
        }
        let user = if self.config.run_as_node_user {
            let meta = std::fs::metadata(staging.dir())
                .map_err(|e| Error::io("reading", staging.dir(), e))?;
            Some(format!("{}:{}", meta.uid(), meta.gid()))
        } else {
            None
        };
        let limits = &req.limits;
        let memory = i64::try_from(limits.memory_bytes).unwrap_or(i64::MAX);
        let host_config = HostConfig {
            binds: Some(binds),
            nano_cpus: Some(i64::from(limits.cpu_millis) * 1_000_000),
            memory: Some(memory),
            memory_swap: Some(memory),
            pids_limit: Some(i64::from(limits.pids)),
            network_mode: if req.network {
                req.docker_network.clone()
            } else {
                Some("none".to_owned())
            },
            log_config: Some(HostConfigLogConfig {
                typ: Some("none".into()),
                config: None,
            }),
            cap_drop: Some(vec!["ALL".into()]),
            security_opt: Some(vec!["no-new-privileges".into()]),
            ..Default::default()
        };
        let labels = HashMap::from([
            (EXECUTION_LABEL.to_owned(), req.execution_id.to_string()),
            (NODE_LABEL.to_owned(), self.config.node_label.clone()),
        ]);
        Ok(ContainerCreateBody {
            image: Some(spec.image.clone()),
            entrypoint: spec.entrypoint.clone(),
            cmd: spec.cmd.clone(),
            env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            working_dir: spec.working_dir.clone(),
            user,
            labels: Some(labels),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            tty: Some(false),
            open_stdin: Some(false),
            network_disabled: Some(!req.network),
            host_config: Some(host_config),
            ..Default::default()
        })
    }

    async fn run_container(
        &self,
        req: &ExecutionRequest,
        spec: &DockerSpec,
        cancel: &CancellationToken,
    ) -> Result<ExecutionResult> {
        let limits = &req.limits;
        let staging = Staging::create(&self.config.results_root, &req.execution_id, &req.outputs)?;
        let body = self.container_body(req, spec, &staging)?;
        let created = self
            .docker
            .create_container(None::<CreateContainerOptions>, body)
            .await
            .map_err(|source| match source {
                bollard::errors::Error::DockerResponseServerError {
                    status_code: 404, ..
                } => Error::ImageMissing {
                    image: spec.image.clone(),
                },
                source => Error::Docker {
                    action: "creating the container",
                    source,
                },
            })?;
        let mut guard = ContainerGuard {
            docker: self.docker.clone(),
            id: Some(created.id.clone()),
        };
        let id = created.id;

        let attach = AttachContainerOptions {
            stdout: true,
            stderr: true,
            stream: true,
            ..Default::default()
        };
        let attached = self
            .docker
            .attach_container(&id, Some(attach))
            .await
            .map_err(|source| Error::Docker {
                action: "attaching to the container",
                source,
            })?;
        let (max_out, max_err) = (cap(limits.max_stdout_bytes), cap(limits.max_stderr_bytes));
        let mut output = attached.output;
        let reader = tokio::spawn(async move {
            let (mut out, mut err) = (Capped::new(max_out), Capped::new(max_err));
            while let Some(item) = output.next().await {
                match item {
                    Ok(LogOutput::StdOut { message }) | Ok(LogOutput::Console { message }) => {
                        out.push(&message)
                    }
                    Ok(LogOutput::StdErr { message }) => err.push(&message),
                    Ok(LogOutput::StdIn { .. }) => {}
                    Err(_) => break,
                }
            }
            (out, err)
        });
        let started = Instant::now();
        self.docker
            .start_container(&id, None::<StartContainerOptions>)
            .await
            .map_err(|source| Error::Docker {
                action: "starting the container",
                source,
            })?;
        // Started, so "not-running" means "has exited" (even if it already has).
        let wait = self.docker.wait_container(
            &id,
            Some(WaitContainerOptions {
                condition: "not-running".into(),
            }),
        );
        let mut wait = std::pin::pin!(wait);

        let deadline = tokio::time::Instant::from_std(started + limits.timeout);
        let output_dirs: Vec<PathBuf> = req
            .outputs
            .iter()
            .map(|o| staging.output_dir(&o.name))
            .collect();
        let mut check = tokio::time::interval(OUTPUT_CHECK_INTERVAL);
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let waited = loop {
            tokio::select! {
                waited = wait.next() => break waited,
                () = cancel.cancelled() => {
                    guard.remove().await?;
                    return Err(Error::Cancelled { id: req.execution_id.clone() });
                }
                () = tokio::time::sleep_until(deadline) => {
                    guard.remove().await?;
                    return Err(Error::Timeout { timeout: limits.timeout });
                }
                _ = check.tick(), if !output_dirs.is_empty() => {
                    let dirs = output_dirs.clone();
                    let written = tokio::task::spawn_blocking(move || dirs.iter().map(|d| tree_size(d)).sum::<u64>())
                        .await
                        .unwrap_or(0);
                    if written > limits.max_output_bytes {
                        guard.remove().await?;
                        return Err(Error::OutputTooLarge { limit_bytes: limits.max_output_bytes });
                    }
                }
            }
        };
        let duration = started.elapsed();
        let exit_code = match waited {
            Some(Ok(response)) => response.status_code,
            Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => code,
            Some(Err(source)) => {
                guard.remove().await?;
                return Err(Error::Docker {
                    action: "waiting for the container",
                    source,
                });
            }
            None => {
                guard.remove().await?;
                return Err(Error::DockerProtocol(
                    "the wait stream ended without an exit status".into(),
                ));
            }
        };
        let exit_code = i32::try_from(exit_code).unwrap_or(i32::MAX);
        let inspected = self
            .docker
            .inspect_container(&id, None::<InspectContainerOptions>)
            .await
            .map_err(|source| Error::Docker {
                action: "inspecting the container",
                source,
            });
        let oom_killed = inspected
            .as_ref()
            .ok()
            .and_then(|c| c.state.as_ref())
            .and_then(|s| s.oom_killed);
        let (out, err) = match tokio::time::timeout(LOG_DRAIN_TIMEOUT, reader).await {
            Ok(Ok(logs)) => logs,
            _ => (Capped::new(0), Capped::new(0)),
        };
        guard.remove().await?;
        inspected?;
        if oom_killed == Some(true) {
            return Err(Error::MemoryLimit {
                limit_bytes: limits.memory_bytes,
            });
        }

        let outputs = req.outputs.clone();
        let max_output = limits.max_output_bytes;
        let collected = Collected {
            stdout: out.bytes,
            stderr: err.bytes,
            exit_code,
        };
        let (results_dir, result_hash) = tokio::task::spawn_blocking(move || {
            if staging.output_bytes(&outputs) > max_output {
                return Err(Error::OutputTooLarge {
                    limit_bytes: max_output,
                });
            }
            staging.finish(&collected, &outputs)
        })
        .await
        .map_err(|e| Error::Internal(format!("collecting results: {e}")))??;
        Ok(ExecutionResult {
            execution_id: req.execution_id.clone(),
            results_dir,
            exit_code,
            result_hash,
            stdout_truncated: out.truncated,
            stderr_truncated: err.truncated,
            duration,
            fuel_consumed: None,
        })
    }
}

#[async_trait]
impl Executor for DockerExecutor {
    fn name(&self) -> &'static str {
        EngineKind::Docker.name()
    }

    async fn is_installed(&self) -> bool {
        self.docker.ping().await.is_ok()
    }

    async fn can_run(&self, engine: &EngineSpec) -> Result<(), Unsupported> {
        let EngineSpec::Docker(spec) = engine else {
            return Err(Unsupported::WrongEngine {
                executor: self.name(),
                engine: engine.kind(),
            });
        };
        match self.image_present(&spec.image).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(Unsupported::ImageMissing {
                image: spec.image.clone(),
            }),
            Err(e) => Err(Unsupported::NotAvailable {
                executor: self.name(),
                reason: e.to_string(),
            }),
        }
    }

    async fn run(
        &self,
        req: ExecutionRequest,
        cancel: CancellationToken,
    ) -> Result<ExecutionResult> {
        req.validate()?;
        let EngineSpec::Docker(spec) = &req.engine else {
            return Err(Error::Unsupported(Unsupported::WrongEngine {
                executor: self.name(),
                engine: req.engine.kind(),
            }));
        };
        if cancel.is_cancelled() {
            return Err(Error::Cancelled {
                id: req.execution_id,
            });
        }
        if !self.image_present(&spec.image).await? {
            return Err(Error::ImageMissing {
                image: spec.image.clone(),
            });
        }
        self.run_container(&req, spec, &cancel).await
    }
}

/// Removes its container when dropped unless already removed.
struct ContainerGuard {
    docker: Docker,
    id: Option<String>,
}

impl ContainerGuard {
    async fn remove(&mut self) -> Result<()> {
        if let Some(id) = self.id.take() {
            remove_container(&self.docker, &id).await?;
        }
        Ok(())
    }
}

impl Drop for ContainerGuard {
    fn drop(&mut self) {
        let Some(id) = self.id.take() else { return };
        let docker = self.docker.clone();
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(async move {
                    if let Err(e) = remove_container(&docker, &id).await {
                        tracing::warn!(container = %id, error = %e, "could not remove an abandoned container");
                    }
                });
            }
            Err(_) => {
                tracing::warn!(container = %id, "container left behind; remove_leftovers() will clean it")
            }
        }
    }
}

async fn remove_container(docker: &Docker, id: &str) -> Result<()> {
    let options = RemoveContainerOptions {
        force: true,
        v: true,
        ..Default::default()
    };
    match docker.remove_container(id, Some(options)).await {
        Ok(()) => Ok(()),
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(()),
        // 409: removal already in progress.
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 409, ..
        }) => Ok(()),
        Err(source) => Err(Error::Docker {
            action: "removing the container",
            source,
        }),
    }
}

fn cap(bytes: u64) -> usize {
    usize::try_from(bytes).unwrap_or(usize::MAX)
}

struct Capped {
    bytes: Vec<u8>,
    cap: usize,
    truncated: bool,
}

impl Capped {
    fn new(cap: usize) -> Self {
        Self {
            bytes: Vec::new(),
            cap,
            truncated: false,
        }
    }

    fn push(&mut self, data: &[u8]) {
        let room = self.cap.saturating_sub(self.bytes.len());
        if data.len() > room {
            self.truncated = true;
        }
        self.bytes.extend_from_slice(&data[..data.len().min(room)]);
    }
}
