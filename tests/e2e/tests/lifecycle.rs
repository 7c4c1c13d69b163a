//! End-to-end: real nodes in-process on the embedded devchain (and one run on
//! anvil) posting, bidding, executing, committing, revealing, verifying,
//! paying and publishing real WASM jobs.

use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use serde_json::Value;
use shoal_devstack::{self as devstack, Devstack, DevstackConfig, Fault};
use shoal_e2e::JobId;
use shoal_e2e::{
    FOX, HONEST_DEAL, anvil_or_skip, check_results_from, deal_of, deals_with, ensure_no_slashes,
    event_names, fault_on, get_json, init_tracing, listed, operator_of, post_spec, post_wordcount,
    requester_last, stack, stack_with, stack_with_faults, state_is, upload, wait_job,
    wait_published, wait_verified, wasm,
};

/// Three deals, two must agree, a mediator on disagreement.
const MEDIATED_DEAL: &str = "deal:\n  concurrency: 3\n  confidence: 2\n  min_bids: 3\n  mediation: true\n  windows: {bid: 6s, exec: 30s, reveal: 30s}\n";

/// Three deals, two must agree, no mediation, a short bid window.
const SHORT_BID_DEAL: &str = "deal:\n  concurrency: 3\n  confidence: 2\n  min_bids: 3\n  mediation: false\n  windows: {bid: 2s, exec: 10s, reveal: 10s}\n";

/// A four-node devstack in `dir`: the nodes in `liars` return a wrong result, node 3 never
/// bids (so it is the only mediator candidate).
async fn liars_and_mediator(dir: &tempfile::TempDir, liars: &[usize]) -> Result<Devstack> {
    let faults = liars.iter().map(|i| (*i, Fault::WrongResult)).collect();
    stack_with_faults(dir, 4, None, requester_last(4), faults).await
}

/// Four nodes on `chain_rpc` (or the embedded devchain), node 3 requester-only: an honest
/// job verifies, pays everyone and is published.
async fn honest_flow(chain_rpc: Option<String>) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let stack = stack_with(&dir, 4, chain_rpc, requester_last(4)).await?;
    let r = honest_job(&stack).await;
    stack.shutdown().await;
    r
}

async fn honest_job(stack: &Devstack) -> Result<()> {
    let job = post_wordcount(stack, HONEST_DEAL, None).await?;
    let api0 = stack.nodes[0].api_url();
    let v = wait_verified(&api0, job.id, Duration::from_secs(60)).await?;
    let result_cid = v["resultCid"].as_str().context("no result cid")?.to_owned();
    let winners: Vec<String> = v["deals"]
        .as_array()
        .context("deals")?
        .iter()
        .map(|d| d["operator"].to_string())
        .collect();
    ensure!(winners.len() == 3, "3 deals expected: {v:#}");
    // Every operator is paid, nobody slashed, and the creator gets what was not spent.
    let v = wait_job(&api0, job.id, Duration::from_secs(10), "paid", |v| {
        v["payments"].as_array().is_some_and(|p| p.len() == 3)
    })
    .await?;
    ensure!(
        v["slashes"].as_array().is_some_and(|s| s.is_empty()),
        "slashed: {v:#}"
    );
    // The node that ran it published; the requester-only node fetches it from peers and checks it.
    for n in &stack.nodes[..3] {
        wait_published(&n.api_url(), job.id, "published").await?;
    }
    let stdout = check_results_from(&stack.nodes[3].api_url(), job.id, &result_cid).await?;
    ensure!(stdout.contains("words 9"), "unexpected stdout {stdout:?}");
    let names = event_names(&api0, job.id).await?;
    for want in [
        "JobPosted",
        "BidPlaced",
        "DealAccepted",
        "ResultCommitted",
        "ResultRevealed",
        "JobVerified",
        "Paid",
    ] {
        ensure!(
            names.iter().any(|n| n == want),
            "{want} missing from {names:?}"
        );
    }
    let logs = get_json(&format!("{api0}/api/v1/jobs/{}/logs", job.id)).await?;
    ensure!(logs["exitCode"] == 0, "logs: {logs}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn honest_three_nodes_verify_pay_and_publish() -> Result<()> {
    init_tracing();
    honest_flow(None).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn honest_job_on_anvil() -> Result<()> {
    init_tracing();
    let Some(anvil) = anvil_or_skip()? else {
        return Ok(());
    };
    let r = honest_flow(Some(anvil.endpoint())).await;
    drop(anvil);
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_bad_node_of_three_is_slashed() -> Result<()> {
    init_tracing();
    let dir = tempfile::tempdir()?;
    let stack = stack(&dir, 3, 1, None).await?;
    let r = async {
        let job = post_wordcount(&stack, HONEST_DEAL, None).await?;
        let api = stack.nodes[0].api_url();
        let v = wait_verified(&api, job.id, Duration::from_secs(60)).await?;
        let bad = operator_of(&stack.nodes[2])?;
        let v = wait_job(&api, job.id, Duration::from_secs(10), "slashed", |v| {
            v["slashes"].as_array().is_some_and(|s| !s.is_empty())
        })
        .await
        .with_context(|| format!("after verification: {v:#}"))?;
        let slashes = v["slashes"].as_array().context("slashes")?;
        ensure!(slashes.len() == 1, "one slash expected: {v:#}");
        ensure!(
            slashes[0]["account"].as_str().map(str::to_lowercase) == Some(bad.clone()),
            "wrong node slashed: {v:#}"
        );
        ensure!(slashes[0]["kind"] == "WrongResult", "slash reason: {v:#}");
        let bad_view = wait_job(
            &stack.nodes[2].api_url(),
            job.id,
            Duration::from_secs(10),
            "failed on the bad node",
            |v| v["execution"]["step"] == "failed",
        )
        .await?;
        ensure!(
            bad_view["execution"]["reason"]
                .as_str()
                .is_some_and(|r| r.contains("not the verified result"))
        );
        Ok(())
    }
    .await;
    stack.shutdown().await;
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn too_few_bids_expire_and_refund() -> Result<()> {
    init_tracing();
    let dir = tempfile::tempdir()?;
    let stack = stack(&dir, 3, 0, None).await?;
    let r = async {
        let deal = "deal:\n  concurrency: 4\n  confidence: 2\n  min_bids: 4\n  mediation: false\n  windows: {bid: 2s, exec: 10s, reveal: 10s}\n";
        let job = post_wordcount(&stack, deal, None).await?;
        let api = stack.nodes[1].api_url();
        let v = wait_job(&api, job.id, Duration::from_secs(30), "Expired", state_is("Expired")).await?;
        let v = wait_job(&api, job.id, Duration::from_secs(10), "refunded", |v| {
            v["refunds"].as_array().is_some_and(|r| !r.is_empty())
        })
        .await
        .with_context(|| format!("{v:#}"))?;
        ensure!(v["refunds"][0]["amount"] == v["escrow"], "full refund expected: {v:#}");
        ensure!(v["bids"].as_array().is_some_and(|b| b.len() == 3), "every node bid: {v:#}");
        Ok(())
    }
    .await;
    stack.shutdown().await;
    r
}

/// Every node of `stack` declines job `id` (`job` says what it is) with a reason that names
/// its `part` (`needle`), and the job expires.
async fn all_decline(
    stack: &Devstack,
    id: JobId,
    job: &str,
    part: &str,
    needle: &str,
) -> Result<()> {
    for n in &stack.nodes {
        let v = wait_job(&n.api_url(), id, Duration::from_secs(20), "decided", |v| {
            v["decision"].is_object()
        })
        .await?;
        ensure!(v["decision"]["bid"] == false, "node bid on {job}: {v:#}");
        let reason = v["decision"]["reason"].as_str().unwrap_or_default();
        ensure!(
            reason.contains(needle),
            "the reason does not name the {part}: {reason}"
        );
    }
    wait_job(
        &stack.nodes[0].api_url(),
        id,
        Duration::from_secs(30),
        "Expired",
        state_is("Expired"),
    )
    .await?;
    Ok(())
}

/// Node 0 of `stack` stops at its fault in job `id` (`stopped` says where, if it never
/// does); once node 1 sees the job `what` (`pred`), node 0 restarts without the fault.
/// Returns node 1's view of the job once it is Verified.
async fn restart_node0_until_verified(
    stack: &mut Devstack,
    id: JobId,
    stopped: &'static str,
    what: &str,
    pred: impl Fn(&Value) -> bool,
) -> Result<Value> {
    tokio::time::timeout(Duration::from_secs(60), stack.nodes[0].stopped())
        .await
        .context(stopped)??;
    let api1 = stack.nodes[1].api_url();
    wait_job(&api1, id, Duration::from_secs(30), what, pred).await?;
    stack.restart_node(0, None, |_| {}).await?;
    wait_verified(&api1, id, Duration::from_secs(30)).await
}

/// Waits up to `timeout` for job `id` to verify on `api` and be published there; returns
/// the job's stdout from the checked results.
async fn verified_stdout(api: &str, id: JobId, timeout: Duration) -> Result<String> {
    let v = wait_verified(api, id, timeout).await?;
    let cid = v["resultCid"].as_str().context("result cid")?.to_owned();
    wait_published(api, id, "published").await?;
    check_results_from(api, id, &cid).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unsupported_engine_is_declined_with_a_reason() -> Result<()> {
    init_tracing();
    let dir = tempfile::tempdir()?;
    let stack = stack(&dir, 3, 0, None).await?;
    let r = async {
        let docker = "  docker:\n    image: shoal-test/busybox:latest\n    cmd: [\"sh\", \"-c\", \"wc -w /inputs/fox.txt\"]\n";
        let job = post_wordcount(&stack, SHORT_BID_DEAL, Some(docker)).await?;
        all_decline(&stack, job.id, "a docker job", "engine", "docker").await
    }
    .await;
    stack.shutdown().await;
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn input_no_one_holds_is_declined_with_a_reason() -> Result<()> {
    init_tracing();
    let dir = tempfile::tempdir()?;
    let stack = stack(&dir, 3, 0, None).await?;
    let r = async {
        // A CID computed here and never uploaded anywhere.
        let missing = shoal_store::hash_reader(&b"nobody has these bytes"[..], shoal_store::Profile::UnixfsV1_2025)?;
        let api = stack.nodes[0].api_url();
        let module = upload(&api, wasm("wordcount")?).await?;
        let yaml = format!(
            "name: missing\nengine:\n  wasm:\n    module: ipfs://{module}\ninputs:\n  - source: ipfs://{missing}\n    path: /inputs/x\n{SHORT_BID_DEAL}"
        );
        let job = post_spec(&stack, &api, &yaml).await?;
        let missing = missing.to_string();
        all_decline(&stack, job.id, "a job with unreachable input", "input", &missing).await
    }
    .await;
    stack.shutdown().await;
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn node_killed_after_commit_reveals_after_restart() -> Result<()> {
    init_tracing();
    let dir = tempfile::tempdir()?;
    let mut stack =
        stack_with_faults(&dir, 3, None, None, fault_on(0, Fault::CrashAfterCommit)).await?;
    let r = async {
        let job = post_wordcount(&stack, HONEST_DEAL, None).await?;
        // The others committed and revealed; the job waits for node 0's reveal.
        let v = restart_node0_until_verified(
            &mut stack,
            job.id,
            "node 0 never committed and stopped",
            "waiting in Revealing",
            |v| v["state"] == "Revealing" && deals_with(v, "sealedResult") == 2,
        )
        .await?;
        let op0 = operator_of(&stack.nodes[0])?;
        let revealed = deal_of(&v, &op0).is_some_and(|d| !d["sealedResult"].is_null());
        ensure!(revealed, "node 0 did not reveal: {v:#}");
        ensure_no_slashes(&v)?;
        wait_published(&stack.nodes[0].api_url(), job.id, "published by node 0").await?;
        Ok(())
    }
    .await;
    stack.shutdown().await;
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn disagreement_goes_to_a_mediator_who_reruns_the_job() -> Result<()> {
    init_tracing();
    let dir = tempfile::tempdir()?;
    // Nodes 0-2 bid (node 2 lies); node 3 never bids, so it is the only mediator candidate.
    let stack = liars_and_mediator(&dir, &[2]).await?;
    let r = async {
        let job = post_wordcount(&stack, MEDIATED_DEAL, None).await?;
        let api = stack.nodes[0].api_url();
        let v = wait_verified(&api, job.id, Duration::from_secs(60)).await?;
        let mediator = operator_of(&stack.nodes[3])?;
        let deals = v["deals"].as_array().context("deals")?;
        ensure!(
            deals.iter().any(|d| d["mediator"] == true
                && d["operator"].as_str().map(str::to_lowercase) == Some(mediator.clone())
                && !d["sealedResult"].is_null()),
            "node 3 did not mediate: {v:#}"
        );
        let names = event_names(&api, job.id).await?;
        for want in [
            "DisputeOpened",
            "MediatorSelected",
            "DisputeResolved",
            "JobVerified",
        ] {
            ensure!(
                names.iter().any(|n| n == want),
                "{want} missing from {names:?}"
            );
        }
        let bad = operator_of(&stack.nodes[2])?;
        wait_job(
            &api,
            job.id,
            Duration::from_secs(10),
            "bad node slashed",
            |v| listed(v, "slashes", &bad),
        )
        .await?;
        let m = get_json(&format!(
            "{}/api/v1/jobs/{}",
            stack.nodes[3].api_url(),
            job.id
        ))
        .await?;
        ensure!(
            m["execution"]["role"] == "mediator",
            "node 3's execution: {m:#}"
        );
        Ok(())
    }
    .await;
    stack.shutdown().await;
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn url_input_is_downloaded_and_checked() -> Result<()> {
    use sha2::Digest;
    init_tracing();
    let data = b"one two three four five\n".to_vec();
    let checksum = format!("sha256:{}", hex::encode(sha2::Sha256::digest(&data)));
    let served = data.clone();
    let app = axum::Router::new().route(
        "/words.txt",
        axum::routing::get(move || async move { served.clone() }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/words.txt", listener.local_addr()?);
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let dir = tempfile::tempdir()?;
    let stack = stack(&dir, 3, 0, None).await?;
    let r = async {
        let api = stack.nodes[0].api_url();
        let module = upload(&api, wasm("wordcount")?).await?;
        let yaml = format!(
            "name: url-input\nengine:\n  wasm:\n    module: ipfs://{module}\n    args: [\"/data\"]\ninputs:\n  - source: {url}\n    path: /data/words.txt\n    checksum: {checksum}\n{HONEST_DEAL}"
        );
        let id = post_spec(&stack, &api, &yaml).await?.id;
        let stdout = verified_stdout(&api, id, Duration::from_secs(60)).await?;
        ensure!(stdout.contains("words 5"), "stdout {stdout:?}");
        Ok(())
    }
    .await;
    stack.shutdown().await;
    server.abort();
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn api_answers_errors_metrics_openapi_and_rate_limits() -> Result<()> {
    init_tracing();
    let dir = tempfile::tempdir()?;
    let stack = stack_with(
        &dir,
        1,
        None,
        Some(std::sync::Arc::new(|_, c: &mut shoal_node::NodeConfig| {
            c.api.rate_limit_per_sec = 1;
            c.api.rate_limit_burst = 30;
            c.api.max_body_bytes = 1024;
        })),
    )
    .await?;
    let r = async {
        let api = stack.nodes[0].api_url();
        let http = reqwest::Client::new();
        let health = get_json(&format!("{api}/healthz")).await?;
        ensure!(health["ok"] == true, "{health}");
        let doc = get_json(&format!("{api}/openapi.json")).await?;
        for p in [
            "/api/v1/content",
            "/api/v1/jobs/{id}/results",
            "/api/v1/nodes",
            "/api/v1/deployment",
        ] {
            ensure!(
                doc["paths"][p].is_object(),
                "{p} missing from the OpenAPI document"
            );
        }
        let dep = get_json(&format!("{api}/api/v1/deployment")).await?;
        ensure!(
            dep["jobMarket"]
                .as_str()
                .is_some_and(|a| a.eq_ignore_ascii_case(&stack.deployment.job_market.to_string()))
        );
        let nodes = get_json(&format!("{api}/api/v1/nodes")).await?;
        ensure!(
            nodes
                .as_array()
                .is_some_and(|n| n.len() == 1 && n[0]["apiUrl"] == api.as_str()),
            "{nodes}"
        );
        let resp = http.get(format!("{api}/api/v1/jobs/99")).send().await?;
        ensure!(resp.status() == 404);
        let err: Value = resp.json().await?;
        ensure!(err["error"].is_string() && err["hint"].is_string(), "{err}");
        let resp = http
            .get(format!("{api}/api/v1/jobs?state=Bogus"))
            .send()
            .await?;
        ensure!(resp.status() == 400, "bad state filter accepted");
        let resp = http
            .post(format!("{api}/api/v1/content"))
            .body(vec![0u8; 4096])
            .send()
            .await?;
        ensure!(resp.status() == 413, "oversized body: {}", resp.status());
        let cid = upload(&api, b"hello".to_vec()).await?;
        let bytes = http
            .get(format!("{api}/api/v1/content/{cid}"))
            .send()
            .await?
            .bytes()
            .await?;
        ensure!(&bytes[..] == b"hello");
        let car = http
            .get(format!("{api}/api/v1/content/{cid}?format=car"))
            .send()
            .await?
            .bytes()
            .await?;
        let other = devstack::start(DevstackConfig {
            nodes: 1,
            base_dir: dir.path().join("other"),
            ..Default::default()
        })
        .await?;
        let resp = http
            .post(format!("{}/api/v1/content", other.nodes[0].api_url()))
            .header("content-type", shoal_node::CAR_MIME)
            .body(car.to_vec())
            .send()
            .await?;
        let v: Value = resp.json().await?;
        other.shutdown().await;
        ensure!(v["cid"] == cid.as_str(), "CAR import: {v}");
        let metrics = http
            .get(format!("{api}/metrics"))
            .send()
            .await?
            .text()
            .await?;
        ensure!(metrics.contains("shoal_http_requests_total"), "{metrics}");
        let mut limited = false;
        for _ in 0..60 {
            if http.get(format!("{api}/healthz")).send().await?.status() == 429 {
                limited = true;
                break;
            }
        }
        ensure!(limited, "no request was rate limited");
        Ok(())
    }
    .await;
    stack.shutdown().await;
    r
}

/// Whether the Docker engine and the busybox test image are here (a failure under CI).
async fn docker_ready() -> Result<bool> {
    const IMAGE: &str = "shoal-test/busybox:latest";
    let in_ci = std::env::var_os("CI").is_some();
    let root = tempfile::tempdir()?;
    let exec = match shoal_executor::DockerExecutor::connect(shoal_executor::DockerConfig::new(
        root.path(),
    ))
    .await
    {
        Ok(e) => e,
        Err(e) if in_ci => bail!("CI is set but the Docker engine is unreachable: {e}"),
        Err(e) => {
            eprintln!("skipping: {e}");
            return Ok(false);
        }
    };
    match exec.image_present(IMAGE).await {
        Ok(true) => Ok(true),
        Ok(false) if in_ci => {
            bail!("CI is set but {IMAGE} is missing; run scripts/setup.d/executor.sh")
        }
        Ok(false) => {
            eprintln!("skipping: {IMAGE} is missing; run scripts/setup.d/executor.sh");
            Ok(false)
        }
        Err(e) => bail!("the Docker engine cannot inspect images: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn docker_job_end_to_end() -> Result<()> {
    init_tracing();
    if !docker_ready().await? {
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    let stack = devstack::start(DevstackConfig {
        nodes: 3,
        docker: true,
        base_dir: dir.path().to_path_buf(),
        ..Default::default()
    })
    .await?;
    let r = async {
        let docker = "  docker:\n    image: shoal-test/busybox:latest\n    cmd: [\"sh\", \"-c\", \"wc -w < /inputs/fox.txt\"]\n";
        let job = post_wordcount(&stack, HONEST_DEAL, Some(docker)).await?;
        let api = stack.nodes[1].api_url();
        let stdout = verified_stdout(&api, job.id, Duration::from_secs(90)).await?;
        ensure!(stdout.trim() == "9", "stdout {stdout:?}");
        Ok(())
    }
    .await;
    stack.shutdown().await;
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn node_killed_mid_execution_reruns_after_restart() -> Result<()> {
    init_tracing();
    let dir = tempfile::tempdir()?;
    let mut stack =
        stack_with_faults(&dir, 3, None, None, fault_on(0, Fault::CrashWhileRunning)).await?;
    let r = async {
        // Everything the job needs is on every node, so the others do not depend on node 0.
        for n in &stack.nodes[1..] {
            upload(&n.api_url(), wasm("wordcount")?).await?;
            upload(&n.api_url(), FOX.to_vec()).await?;
        }
        let job = post_wordcount(&stack, HONEST_DEAL, None).await?;
        // Two commits are in; the job waits in Running for node 0's.
        let v = restart_node0_until_verified(
            &mut stack,
            job.id,
            "node 0 never started the execution",
            "two commits in",
            |v| v["state"] == "Running" && deals_with(v, "commitment") == 2,
        )
        .await?;
        ensure_no_slashes(&v)?;
        ensure!(
            v["payments"].as_array().is_some_and(|p| p.len() == 3),
            "all three paid: {v:#}"
        );
        Ok(())
    }
    .await;
    stack.shutdown().await;
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn colluding_majority_is_overturned_by_mediation() -> Result<()> {
    init_tracing();
    let dir = tempfile::tempdir()?;
    // Nodes 1 and 2 return the same wrong result; node 3 never bids and is the mediator.
    let stack = liars_and_mediator(&dir, &[1, 2]).await?;
    let r = async {
        let job = post_wordcount(&stack, MEDIATED_DEAL, None).await?;
        let api = stack.nodes[3].api_url();
        let v = wait_verified(&api, job.id, Duration::from_secs(60)).await?;
        let honest = deal_of(&v, &operator_of(&stack.nodes[0])?)
            .context("node 0 has no deal")?["sealedResult"]
            .clone();
        ensure!(
            v["sealedResult"] == honest,
            "the colluders' result won: {v:#}"
        );
        let v = wait_job(&api, job.id, Duration::from_secs(10), "two slashes", |v| {
            v["slashes"].as_array().is_some_and(|s| s.len() == 2)
        })
        .await?;
        for i in [1, 2] {
            let bad = operator_of(&stack.nodes[i])?;
            ensure!(
                listed(&v, "slashes", &bad),
                "node {i} was not slashed: {v:#}"
            );
        }
        check_results_from(&api, job.id, v["resultCid"].as_str().context("cid")?).await?;
        Ok(())
    }
    .await;
    stack.shutdown().await;
    r
}

/// One deal, accepted optimistically after a challenge window unless challenged.
const OPTIMISTIC_DEAL: &str = "deal:\n  concurrency: 1\n  confidence: 1\n  min_bids: 1\n  verifier: optimistic\n  mediation: true\n  windows: {bid: 3s, exec: 30s, reveal: 30s}\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn watcher_challenges_a_wrong_optimistic_result() -> Result<()> {
    init_tracing();
    let dir = tempfile::tempdir()?;
    // Node 0 lies and is the only bidder; nodes 1-3 never bid and watch every optimistic job.
    let customize: devstack::Customize =
        std::sync::Arc::new(|i, c: &mut shoal_node::NodeConfig| {
            if i > 0 {
                c.bid.enabled = false;
                c.watch.sample = 1.0;
            }
        });
    let faults = fault_on(0, Fault::WrongResult);
    let stack = stack_with_faults(&dir, 4, None, Some(customize), faults).await?;
    let r = async {
        let job = post_wordcount(&stack, OPTIMISTIC_DEAL, None).await?;
        let api = stack.nodes[1].api_url();
        let v = wait_job(&api, job.id, Duration::from_secs(90), "settled", |v| {
            v["state"] == "Failed" || v["state"] == "Verified"
        })
        .await?;
        ensure!(
            v["state"] == "Failed" && v["failReason"] == "NoCorrectResult",
            "the wrong result was not overturned: {v:#}"
        );
        let liar = operator_of(&stack.nodes[0])?;
        let v = wait_job(&api, job.id, Duration::from_secs(10), "liar slashed", |v| {
            listed(v, "slashes", &liar)
        })
        .await?;
        let names = event_names(&api, job.id).await?;
        for want in ["DisputeOpened", "MediatorSelected", "DisputeResolved"] {
            ensure!(
                names.iter().any(|n| n == want),
                "{want} missing from {names:?}"
            );
        }
        // Exactly one watcher challenged; it got its bond back and is not slashed.
        let mut challengers = Vec::new();
        for i in 1..4 {
            let d = get_json(&format!(
                "{}/api/v1/jobs/{}",
                stack.nodes[i].api_url(),
                job.id
            ))
            .await?;
            if d["watch"]["verdict"] == "challenged" {
                challengers.push(operator_of(&stack.nodes[i])?);
            }
        }
        ensure!(challengers.len() == 1, "challengers {challengers:?}: {v:#}");
        ensure!(
            !listed(&v, "slashes", &challengers[0]),
            "the challenger was slashed: {v:#}"
        );
        wait_job(
            &api,
            job.id,
            Duration::from_secs(10),
            "bond returned",
            |v| listed(v, "payments", &challengers[0]),
        )
        .await?;
        Ok(())
    }
    .await;
    stack.shutdown().await;
    r
}

/// A Docker job with `network: {domains: [localhost]}` reaches an allow-listed origin through
/// the node's egress proxy, is refused another host with the reason, and has no route out
/// around the proxy.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn docker_job_reaches_only_allow_listed_domains() -> Result<()> {
    init_tracing();
    if !docker_ready().await? {
        return Ok(());
    }
    let origin = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = origin.local_addr()?.port();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        while let Ok((mut c, _)) = origin.accept().await {
            let mut buf = [0u8; 1024];
            let _ = c.read(&mut buf).await;
            let _ = c
                .write_all(b"HTTP/1.0 200 OK\r\n\r\nallowed origin\n")
                .await;
        }
    });
    let dir = tempfile::tempdir()?;
    let stack = devstack::start(DevstackConfig {
        nodes: 1,
        docker: true,
        base_dir: dir.path().to_path_buf(),
        ..Default::default()
    })
    .await?;
    let r = async {
        let api = stack.nodes[0].api_url();
        let script = format!(
            "p=${{HTTP_PROXY#http://}}; h=${{p%:*}}; n=${{p#*:}}; \
             printf 'GET http://localhost:{port}/ok HTTP/1.0\\r\\n\\r\\n' | nc -w 5 $h $n | tail -1; \
             printf 'GET http://127.0.0.1:{port}/ HTTP/1.0\\r\\n\\r\\n' | nc -w 5 $h $n | head -1; \
             printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 1.1.1.1 80 >/dev/null 2>&1 || echo no route out"
        );
        let yaml = format!(
            "name: egress\nengine:\n  docker:\n    image: shoal-test/busybox:latest\n    cmd: [\"sh\", \"-c\", {script:?}]\nnetwork: {{domains: [localhost]}}\nresources:\n  timeout: 20s\ndeal:\n  concurrency: 1\n  confidence: 1\n  min_bids: 1\n  mediation: false\n  windows: {{bid: 5s, exec: 30s, reveal: 30s}}\n"
        );
        let job = post_spec(&stack, &api, &yaml).await?;
        let stdout = verified_stdout(&api, job.id, Duration::from_secs(90)).await?;
        let lines: Vec<&str> = stdout.lines().map(str::trim).collect();
        ensure!(
            lines == ["allowed origin", "HTTP/1.1 403 Forbidden", "no route out"],
            "stdout {stdout:?}"
        );
        Ok(())
    }
    .await;
    stack.shutdown().await;
    r
}
