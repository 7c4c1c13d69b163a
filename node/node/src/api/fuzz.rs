//! The HTTP API under fuzzed requests (proptest, 10,000 cases): malformed ids, CIDs, peer ids,
//! query strings and upload bodies get a 4xx with a JSON `{error, hint}` body, never a 5xx or
//! a plain-text answer, and the node keeps serving.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use shoal_api::ApiErrorBody;

use crate::testkit::Kit;

/// One fuzzed request: method, URL built from a template and fuzzed parts, body, content type.
#[derive(Debug, Clone)]
struct Req {
    post: bool,
    path: Vec<String>,
    query: Vec<(String, String)>,
    body: Vec<u8>,
    content_type: &'static str,
}

/// Text that looks like what goes into a URL: ids, CIDs, garbage, huge numbers, traversal.
fn part() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9]{1,30}",
        "0x[0-9a-fA-F]{0,70}",
        "baf[a-z2-7]{0,70}",
        "Qm[1-9A-HJ-NP-Za-km-z]{0,50}",
        "12D3Koo[1-9A-HJ-NP-Za-km-z]{0,50}",
        "\\PC{0,40}",
        Just("..".to_owned()),
        Just("-1".to_owned()),
        Just("18446744073709551616".to_owned()),
    ]
}

fn request() -> impl Strategy<Value = Req> {
    let query = prop::collection::vec(
        (
            prop_oneof![
                Just("state".to_owned()),
                Just("creator".to_owned()),
                Just("limit".to_owned()),
                Just("offset".to_owned()),
                Just("file".to_owned()),
                Just("format".to_owned()),
                Just("logs".to_owned()),
                "\\PC{0,10}",
            ],
            part(),
        ),
        0..4,
    );
    let get_path = prop_oneof![
        part().prop_map(|c| vec!["content".to_owned(), c]),
        part().prop_map(|i| vec!["jobs".to_owned(), i]),
        (
            part(),
            prop_oneof![Just("events"), Just("results"), Just("logs")]
        )
            .prop_map(|(i, s)| vec!["jobs".to_owned(), i, s.to_owned()]),
        (part(), part()).prop_map(|(p, i)| vec!["peers".to_owned(), p, "jobs".to_owned(), i]),
        Just(vec!["jobs".to_owned()]),
    ];
    let body = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..512),
        // A CAR v1 header's first bytes followed by garbage.
        prop::collection::vec(any::<u8>(), 0..256).prop_map(|mut v| {
            let mut car = vec![0x3a, 0xa2, 0x65, 0x72, 0x6f, 0x6f, 0x74, 0x73];
            car.append(&mut v);
            car
        }),
    ];
    let content_type = prop_oneof![
        Just("application/octet-stream"),
        Just("application/vnd.ipld.car"),
        Just("text/plain"),
        Just("application/json"),
    ];
    prop_oneof![
        (get_path, query).prop_map(|(path, query)| Req {
            post: false,
            path,
            query,
            body: Vec::new(),
            content_type: "",
        }),
        (body, content_type).prop_map(|(body, content_type)| Req {
            post: true,
            path: vec!["content".to_owned()],
            query: Vec::new(),
            body,
            content_type,
        }),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuzzed_requests_get_a_clear_4xx_and_the_node_keeps_serving() {
    let kit = Kit::start(|c| {
        c.api.rate_limit_per_sec = 1_000_000;
        c.api.rate_limit_burst = 1_000_000;
    })
    .await;
    let base = kit.node.api_url();
    let http = reqwest::Client::new();
    let cases = std::env::var("SHOAL_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let rt = tokio::runtime::Handle::current();
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let result = tokio::task::block_in_place(|| {
        runner.run(&request(), |req| {
            let mut url = reqwest::Url::parse(&format!("{base}/api/v1")).expect("base url");
            url.path_segments_mut()
                .expect("a base")
                .extend(req.path.iter());
            if !req.query.is_empty() {
                url.query_pairs_mut().extend_pairs(req.query.iter());
            }
            let send = if req.post {
                http.post(url.clone())
                    .header("content-type", req.content_type)
                    .body(req.body.clone())
            } else {
                http.get(url.clone())
            };
            let (status, body) = rt.block_on(async {
                let resp = send.send().await.expect("the node answers");
                let status = resp.status();
                (status, resp.bytes().await.expect("a body"))
            });
            prop_assert!(
                !status.is_server_error()
                    || (req.path.first().map(String::as_str) == Some("peers")),
                "{url}: {status} {}",
                String::from_utf8_lossy(&body)
            );
            if !status.is_success() {
                let e: Result<ApiErrorBody, _> = serde_json::from_slice(&body);
                prop_assert!(
                    e.as_ref()
                        .is_ok_and(|e| !e.error.is_empty() && e.hint.is_some()),
                    "{url}: {status} without a JSON error and hint: {}",
                    String::from_utf8_lossy(&body)
                );
            }
            Ok(())
        })
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    let health = http
        .get(format!("{base}/healthz"))
        .send()
        .await
        .expect("healthz");
    assert!(health.status().is_success(), "{}", health.status());
    kit.stop().await;
}
