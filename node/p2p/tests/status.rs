//! `/shoal/status/1.0.0` between real swarms on 127.0.0.1.

#![allow(clippy::unwrap_used)]

mod common;

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use common::{Node, tcp};
use shoal_p2p::{
    Config, Error, ExecutionStatus, JobLogs, MAX_LOG_BYTES, PeerId, StatusRequest, StatusResponse,
    StatusSource,
};

/// Knows job 7 (running, with long logs); job "slow" takes 3 s to look up.
struct Jobs;

#[async_trait]
impl StatusSource for Jobs {
    async fn status(&self, job_id: &str, _logs: bool) -> StatusResponse {
        match job_id {
            "7" => StatusResponse {
                job_id: job_id.into(),
                found: true,
                state: Some("Running".into()),
                executions: vec![ExecutionStatus {
                    role: "executor".into(),
                    step: "running".into(),
                    result_hash: None,
                    error: None,
                    updated_at: 1_700_000_000,
                }],
                // A careless source: logs over the cap, and even when not asked.
                logs: Some(JobLogs {
                    stdout: format!("{}END", "x".repeat(MAX_LOG_BYTES * 2)),
                    stderr: "warning: ünïcode\n".into(),
                    truncated: false,
                }),
            },
            "slow" => {
                tokio::time::sleep(Duration::from_secs(3)).await;
                StatusResponse::not_found("slow")
            }
            other => StatusResponse::not_found(other),
        }
    }
}

fn req(job_id: &str, logs: bool) -> StatusRequest {
    StatusRequest {
        job_id: job_id.into(),
        logs,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_and_logs_from_a_peer() {
    let a = Node::start(Config {
        listen: vec![tcp()],
        status: Some(Arc::new(Jobs)),
        ..Config::default()
    })
    .await;
    let b = Node::start(Config {
        listen: vec![tcp()],
        request_timeout: Duration::from_secs(5),
        ..Config::default()
    })
    .await;
    b.p2p.dial(a.addr().await).await.unwrap();
    let a_id = a.p2p.peer_id();

    let r = b.p2p.job_status(a_id, req("7", true)).await.unwrap();
    assert!(r.found);
    assert_eq!(r.job_id, "7");
    assert_eq!(r.state.as_deref(), Some("Running"));
    assert_eq!(r.executions.len(), 1);
    assert_eq!(r.executions[0].role, "executor");
    let logs = r.logs.unwrap();
    assert!(logs.truncated);
    assert_eq!(logs.stdout.len(), MAX_LOG_BYTES);
    assert!(logs.stdout.ends_with("END"), "the tail is kept");
    assert_eq!(logs.stderr, "warning: ünïcode\n");

    // Logs only when asked for.
    let r = b.p2p.job_status(a_id, req("7", false)).await.unwrap();
    assert!(r.found && r.logs.is_none());

    let r = b.p2p.job_status(a_id, req("8", true)).await.unwrap();
    assert!(!r.found && r.state.is_none() && r.executions.is_empty());

    // A node without a status source says "not found".
    let r = a
        .p2p
        .job_status(b.p2p.peer_id(), req("7", true))
        .await
        .unwrap();
    assert_eq!(r, StatusResponse::not_found("7"));

    // A slow lookup does not hold up the swarm: other requests (and
    // Bitswap) are served meanwhile.
    let slow = {
        let p2p = b.p2p.clone();
        tokio::spawn(async move { p2p.job_status(a_id, req("slow", false)).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let t = std::time::Instant::now();
    assert!(b.p2p.job_status(a_id, req("7", false)).await.unwrap().found);
    let cid = a.put(b"served meanwhile");
    assert_eq!(b.p2p.get_block(cid).await.unwrap(), b"served meanwhile");
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert!(!slow.await.unwrap().unwrap().found);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_from_an_unreachable_peer_is_a_clear_error() {
    let b = Node::start(Config {
        listen: vec![tcp()],
        request_timeout: Duration::from_secs(5),
        ..Config::default()
    })
    .await;
    let nobody = PeerId::random();
    let t = std::time::Instant::now();
    let err = b.p2p.job_status(nobody, req("7", false)).await.unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(8), "{:?}", t.elapsed());
    assert!(matches!(err, Error::Status { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(&nobody.to_string()) && msg.contains("dial"),
        "{msg}"
    );

    // A peer that went away.
    let a = Node::start(Config {
        listen: vec![tcp()],
        status: Some(Arc::new(Jobs)),
        ..Config::default()
    })
    .await;
    let a_id = a.p2p.peer_id();
    b.p2p.dial(a.addr().await).await.unwrap();
    assert!(b.p2p.job_status(a_id, req("7", false)).await.unwrap().found);
    drop(a);
    common::eventually("B notices A is gone", Duration::from_secs(10), || async {
        !b.is_connected_to(a_id).await
    })
    .await;
    let t = std::time::Instant::now();
    let err = b.p2p.job_status(a_id, req("7", false)).await.unwrap_err();
    assert!(matches!(err, Error::Status { .. }), "{err}");
    assert!(t.elapsed() < Duration::from_secs(8), "{:?}", t.elapsed());
}
