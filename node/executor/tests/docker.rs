//! The Docker executor against a real Docker engine and the local busybox test
//! image (`scripts/setup.d/executor.sh` builds it).
//!
//! With `CI` set these tests fail when the engine or the image is missing;
//! without it they print why and skip.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{
    assert_nothing_left, assert_stdout_capped, assert_times_out, corpus, id, mount, output,
    run_err, run_ok,
};
use shoal_executor::{
    CancellationToken, DockerConfig, DockerExecutor, DockerSpec, EXECUTION_LABEL, EngineSpec,
    Error, ExecutionId, ExecutionRequest, Executor, NODE_LABEL, Unsupported,
};

const IMAGE: &str = "shoal-test/busybox:latest";

/// The executor, or `None` (with the reason printed) when no engine is
/// reachable outside CI.
async fn docker(root: &Path) -> Option<DockerExecutor> {
    let mut config = DockerConfig::new(root);
    config.node_label = format!("test-{}", std::process::id());
    let in_ci = std::env::var_os("CI").is_some();
    let exec = match DockerExecutor::connect(config).await {
        Ok(exec) => exec,
        Err(e) if in_ci => panic!("CI is set but the Docker engine is unreachable: {e}"),
        Err(e) => {
            eprintln!("skipping: {e} (set CI=1 to make this a failure)");
            return None;
        }
    };
    match exec.image_present(IMAGE).await {
        Ok(true) => Some(exec),
        Ok(false) if in_ci => {
            panic!("CI is set but {IMAGE} is missing; run scripts/setup.d/executor.sh")
        }
        Ok(false) => {
            eprintln!("skipping: {IMAGE} is missing; run scripts/setup.d/executor.sh");
            None
        }
        Err(e) => panic!("the Docker engine answers but cannot inspect images: {e}"),
    }
}

/// Execution ids are unique per test process, so that concurrent test runs
/// on one engine never see each other's containers.
fn unique(name: &str) -> ExecutionId {
    id(&format!("{name}-{}", std::process::id()))
}

fn shell(name: &str, script: &str) -> ExecutionRequest {
    ExecutionRequest::new(
        unique(name),
        EngineSpec::Docker(DockerSpec::shell(IMAGE, script)),
    )
}

async fn assert_no_container(exec: &DockerExecutor, name: &str) {
    let left = exec
        .containers_of(&unique(name))
        .await
        .expect("list containers");
    assert!(
        left.is_empty(),
        "containers left behind for {name}: {left:?}"
    );
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[tokio::test]
async fn runs_a_script_and_captures_everything() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(exec) = docker(dir.path()).await else {
        return;
    };
    let mut req = shell(
        "dk-hello",
        "echo hello from docker; echo oops >&2; echo \"$GREETING\"; exit 3",
    );
    if let EngineSpec::Docker(spec) = &mut req.engine {
        spec.env = vec![("GREETING".into(), "hi there".into())];
    }
    let res = run_ok(&exec, req, "runs").await;
    assert_eq!(res.exit_code, 3);
    assert_eq!(
        read(&res.results_dir.join("stdout")),
        "hello from docker\nhi there\n"
    );
    assert_eq!(read(&res.results_dir.join("stderr")), "oops\n");
    assert_eq!(read(&res.results_dir.join("exitCode")), "3");
    assert_eq!(
        res.result_hash,
        shoal_executor::hash_results(&res.results_dir).expect("hash")
    );
    assert_no_container(&exec, "dk-hello").await;
}

#[tokio::test]
async fn mounts_inputs_read_only_and_outputs_writable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(exec) = docker(&dir.path().join("results")).await else {
        return;
    };
    let docs = dir.path().join("docs");
    let words = corpus(&docs, 120);
    let single = dir.path().join("single.txt");
    std::fs::write(&single, "one two three").expect("write");
    let mut req = shell(
        "dk-wc",
        "wc -w /docs/* | tail -n 1 | awk '{print $1}' > /out/words.txt && cp /in/single.txt /out/copy.txt && \
         if touch /docs/new 2>/dev/null; then echo input writable; exit 9; fi",
    );
    req.inputs = vec![mount(docs, "/docs"), mount(single, "/in/single.txt")];
    req.outputs = vec![output("report", "/out")];
    let res = run_ok(&exec, req, "runs").await;
    assert_eq!(
        res.exit_code,
        0,
        "stdout {} stderr {}",
        read(&res.results_dir.join("stdout")),
        read(&res.results_dir.join("stderr"))
    );
    assert_eq!(
        read(&res.results_dir.join("report/words.txt")).trim(),
        words.to_string()
    );
    assert_eq!(
        read(&res.results_dir.join("report/copy.txt")),
        "one two three"
    );
    assert_no_container(&exec, "dk-wc").await;
}

#[tokio::test]
async fn has_no_network_unless_allowed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(exec) = docker(dir.path()).await else {
        return;
    };
    let res = exec
        .run(
            shell("dk-net", "ls /sys/class/net"),
            CancellationToken::new(),
        )
        .await
        .expect("runs");
    assert_eq!(
        read(&res.results_dir.join("stdout"))
            .split_whitespace()
            .collect::<Vec<_>>(),
        vec!["lo"]
    );
    let mut req = shell("dk-net-on", "ls /sys/class/net");
    req.network = true;
    let res = run_ok(&exec, req, "runs").await;
    assert!(
        read(&res.results_dir.join("stdout"))
            .split_whitespace()
            .count()
            > 1,
        "network allowed gives an interface"
    );
}

#[tokio::test]
async fn timeout_kills_and_removes_the_container() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(exec) = docker(dir.path()).await else {
        return;
    };
    let mut req = shell("dk-timeout", "echo started; sleep 60");
    req.limits.timeout = Duration::from_secs(1);
    assert_times_out(&exec, req, "must time out", Duration::from_secs(15)).await;
    assert_no_container(&exec, "dk-timeout").await;
    assert_nothing_left(dir.path());
}

#[tokio::test]
async fn memory_limit_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(exec) = docker(dir.path()).await else {
        return;
    };
    let mut req = shell("dk-oom", "dd if=/dev/zero of=/dev/null bs=256M count=1");
    req.limits.memory_bytes = 32 << 20;
    let err = run_err(&exec, req, "must hit the memory limit").await;
    assert!(matches!(err, Error::MemoryLimit { .. }), "{err}");
    assert_no_container(&exec, "dk-oom").await;
    assert_nothing_left(dir.path());
}

#[tokio::test]
async fn pids_limit_stops_a_fork_bomb() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(exec) = docker(dir.path()).await else {
        return;
    };
    let mut req = shell(
        "dk-pids",
        "for i in $(seq 1 40); do sleep 2 & done; wait; echo all started",
    );
    req.limits.pids = 8;
    let res = run_ok(&exec, req, "runs").await;
    let stderr = read(&res.results_dir.join("stderr"));
    assert!(
        stderr.contains("fork"),
        "forks beyond the pids limit fail: {stderr:?}"
    );
    assert_no_container(&exec, "dk-pids").await;
}

#[tokio::test]
async fn output_limit_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(exec) = docker(dir.path()).await else {
        return;
    };
    let mut req = shell("dk-big", "head -c 3000000 /dev/zero > /out/big");
    req.outputs = vec![output("out", "/out")];
    req.limits.max_output_bytes = 1_000_000;
    let err = run_err(&exec, req, "must hit the output limit").await;
    assert!(matches!(err, Error::OutputTooLarge { .. }), "{err}");
    assert_no_container(&exec, "dk-big").await;
    assert_nothing_left(dir.path());
}

#[tokio::test]
async fn stdout_is_capped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(exec) = docker(dir.path()).await else {
        return;
    };
    let mut req = shell("dk-chatty", "head -c 200000 /dev/zero | tr '\\0' a");
    req.limits.max_stdout_bytes = 1000;
    let res = run_ok(&exec, req, "runs").await;
    assert_stdout_capped(&res, 1000);
}

#[tokio::test]
async fn cancellation_removes_the_container() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(exec) = docker(dir.path()).await else {
        return;
    };
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(800)).await;
        trigger.cancel();
    });
    let started = Instant::now();
    let err = exec
        .run(shell("dk-cancel", "sleep 60"), cancel)
        .await
        .expect_err("must be cancelled");
    assert!(matches!(err, Error::Cancelled { .. }), "{err}");
    assert!(started.elapsed() < Duration::from_secs(15));
    assert_no_container(&exec, "dk-cancel").await;
    assert_nothing_left(dir.path());
}

#[tokio::test]
async fn dropping_the_run_future_removes_the_container() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(exec) = docker(dir.path()).await else {
        return;
    };
    let run = exec.run(shell("dk-dropped", "sleep 60"), CancellationToken::new());
    assert!(
        tokio::time::timeout(Duration::from_millis(1500), run)
            .await
            .is_err()
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !exec
        .containers_of(&unique("dk-dropped"))
        .await
        .expect("list")
        .is_empty()
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_no_container(&exec, "dk-dropped").await;
    assert_nothing_left(dir.path());
}

#[tokio::test]
async fn a_missing_image_names_the_image() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(exec) = docker(dir.path()).await else {
        return;
    };
    let image = "shoal-test/absent:never";
    let engine = EngineSpec::Docker(DockerSpec::shell(image, "true"));
    assert_eq!(
        exec.can_run(&engine).await,
        Err(Unsupported::ImageMissing {
            image: image.into()
        })
    );
    assert_eq!(
        exec.can_run(&EngineSpec::Docker(DockerSpec::shell(IMAGE, "true")))
            .await,
        Ok(())
    );
    let err = exec
        .run(
            ExecutionRequest::new(unique("dk-noimage"), engine),
            CancellationToken::new(),
        )
        .await
        .expect_err("must fail");
    assert!(
        matches!(&err, Error::ImageMissing { image: i } if i == image),
        "{err}"
    );
    let msg = err.to_string();
    assert!(msg.contains(image) && msg.contains("docker load"), "{msg}");
    assert_nothing_left(dir.path());
}

#[tokio::test]
async fn leftovers_from_a_crash_are_removed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(exec) = docker(dir.path()).await else {
        return;
    };
    let mut config = DockerConfig::new(dir.path());
    config.node_label = format!("leftover-{}", std::process::id());
    let exec2 = DockerExecutor::connect(config.clone())
        .await
        .expect("connect");
    // A container a crashed node left: labelled, never removed.
    let crashed = "dk-crashed";
    let labels = HashMap::from([
        (EXECUTION_LABEL.to_owned(), unique(crashed).to_string()),
        (NODE_LABEL.to_owned(), config.node_label.clone()),
    ]);
    let body = bollard::models::ContainerCreateBody {
        image: Some(IMAGE.into()),
        cmd: Some(vec!["sleep".into(), "60".into()]),
        labels: Some(labels),
        ..Default::default()
    };
    exec2
        .client()
        .create_container(
            None::<bollard::query_parameters::CreateContainerOptions>,
            body,
        )
        .await
        .expect("create");
    assert_eq!(
        exec.containers_of(&unique(crashed))
            .await
            .expect("list")
            .len(),
        1
    );
    let mut other = DockerConfig::new(dir.path());
    other.node_label = format!("bystander-{}", std::process::id());
    let bystander = DockerExecutor::connect(other).await.expect("connect");
    assert_eq!(
        bystander.remove_leftovers().await.expect("cleanup"),
        0,
        "another node's containers are not touched"
    );
    assert_eq!(exec2.remove_leftovers().await.expect("cleanup"), 1);
    assert_no_container(&exec, crashed).await;
}
