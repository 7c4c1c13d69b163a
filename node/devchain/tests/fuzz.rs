//! Property-based fuzzing of the devchain's JSON-RPC, in process
//! (`DevChain::handle_body`, no server): arbitrary bytes, arbitrary JSON, and
//! well-formed calls of the real methods with random parameters. Nothing
//! panics, and every answer is valid JSON-RPC: a response with the request's
//! id and either a result or an error object with a code and a message; no
//! answer only for notifications.
//!
//! One chain per test; every case runs between `evm_snapshot` and
//! `evm_revert`, so cases do not see each other's blocks and time changes.

use alloy::consensus::{SignableTransaction, TxEip1559, TxEnvelope, TxLegacy};
use alloy::eips::eip2718::Encodable2718;
use alloy::primitives::{Address, Bytes, TxKind, U256};
use alloy::signers::SignerSync;
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestRunner};
use serde_json::{Value, json};
use shoal_devchain::{DevAccount, DevChain};
use std::sync::LazyLock;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 10_000,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn run<S: Strategy>(strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>)
where
    S::Value: std::fmt::Debug,
{
    let mut runner = TestRunner::new(config());
    if let Err(e) = runner.run(&strategy, test) {
        panic!("{e}");
    }
}

/// Dev accounts 0 and 1, derived once (key derivation is slow in a debug build).
static DEV: LazyLock<Vec<DevAccount>> =
    LazyLock::new(|| shoal_devchain::derive_dev_accounts(2).expect("dev accounts"));

fn chain() -> DevChain {
    DevChain::builder().build().expect("devchain")
}

/// Runs `f` between a snapshot and a revert (and turns automine back on).
fn isolated<T>(dc: &DevChain, f: impl FnOnce() -> T) -> T {
    let snap = dc.request("evm_snapshot", json!([])).expect("snapshot");
    let out = f();
    if dc.request("anvil_getAutomine", json!([])) != Ok(json!(true)) {
        dc.request("evm_setAutomine", json!([true]))
            .expect("automine on");
    }
    let reverted = dc.request("evm_revert", json!([snap])).expect("revert");
    assert_eq!(reverted, json!(true), "snapshot {snap} reverted");
    out
}

/// One JSON-RPC response object for a call with `id` (`None`: not known).
fn check_response(resp: &Value, id: Option<&Value>, ctx: &str) {
    let Value::Object(o) = resp else {
        panic!("response is not an object: {resp} (for {ctx})");
    };
    assert_eq!(o.get("jsonrpc"), Some(&json!("2.0")), "{resp} (for {ctx})");
    let got_id = o
        .get("id")
        .unwrap_or_else(|| panic!("no id in {resp} (for {ctx})"));
    if let Some(id) = id {
        assert_eq!(got_id, id, "id not echoed in {resp} (for {ctx})");
    }
    match (o.get("result"), o.get("error")) {
        (Some(_), None) => {}
        (None, Some(Value::Object(e))) => {
            assert!(
                e.get("code").and_then(Value::as_i64).is_some(),
                "error without an integer code: {resp} (for {ctx})"
            );
            let msg = e.get("message").and_then(Value::as_str).unwrap_or("");
            assert!(
                !msg.trim().is_empty(),
                "error without a message: {resp} (for {ctx})"
            );
        }
        _ => panic!("neither one result nor one error object: {resp} (for {ctx})"),
    }
}

/// The id a call's response must carry, and whether it is a notification.
fn expected_id(call: &Value) -> (Option<Value>, bool) {
    match call {
        Value::Object(o) => match o.get("id") {
            Some(id) => (Some(id.clone()), false),
            None => (
                Some(Value::Null),
                matches!(o.get("method"), Some(Value::String(_))),
            ),
        },
        _ => (Some(Value::Null), false),
    }
}

/// Sends `body` and checks the answer against what was asked.
fn check_body(dc: &DevChain, body: &[u8]) {
    let answer = dc.handle_body(body);
    let ctx = String::from_utf8_lossy(body);
    let Ok(request) = serde_json::from_slice::<Value>(body) else {
        let resp = answer.unwrap_or_else(|| panic!("no answer to unparsable {ctx:?}"));
        check_response(&resp, Some(&Value::Null), &ctx);
        return;
    };
    match &request {
        Value::Array(calls) if !calls.is_empty() && calls.len() <= 1000 => {
            let expected: Vec<Option<Value>> = calls
                .iter()
                .map(expected_id)
                .filter(|(_, notification)| !notification)
                .map(|(id, _)| id)
                .collect();
            match answer {
                None => assert!(
                    expected.is_empty(),
                    "no answer to a batch with calls: {ctx}"
                ),
                Some(Value::Array(resps)) => {
                    assert_eq!(resps.len(), expected.len(), "batch answer for {ctx}");
                    for (r, id) in resps.iter().zip(&expected) {
                        check_response(r, id.as_ref(), &ctx);
                    }
                }
                Some(other) => panic!("a batch answered with {other} (for {ctx})"),
            }
        }
        Value::Array(_) => {
            let resp = answer.unwrap_or_else(|| panic!("no answer to {ctx}"));
            check_response(&resp, Some(&Value::Null), &ctx);
        }
        call => {
            let (id, notification) = expected_id(call);
            match answer {
                None => assert!(notification, "no answer to a call: {ctx}"),
                Some(resp) => {
                    assert!(
                        !notification,
                        "a notification was answered with {resp}: {ctx}"
                    );
                    check_response(&resp, id.as_ref(), &ctx);
                }
            }
        }
    }
}

// ---- generators ----

fn hex(bytes: &[u8]) -> String {
    format!("0x{}", alloy::hex::encode(bytes))
}

/// Quantities: small, at the edges of u64/i64, random, and malformed.
fn quantity() -> BoxedStrategy<Value> {
    prop_oneof![
        3 => (0u64..16).prop_map(|n| json!(format!("{n:#x}"))),
        2 => prop::sample::select(vec![
            u64::MAX, i64::MAX as u64, 1 << 63, (1 << 63) + 1, u32::MAX as u64, 1 << 32,
            100_001, 1024, 1025,
        ])
        .prop_map(|n| json!(format!("{n:#x}"))),
        1 => any::<u64>().prop_map(|n| json!(format!("{n:#x}"))),
        1 => any::<u64>().prop_map(|n| json!(n)),
        1 => (0u64..16).prop_map(|n| json!(n.to_string())),
        1 => prop::sample::select(vec![
            json!(-1), json!(1.5), json!("0x"), json!("0x-1"), json!("0xg"), json!(""),
            json!("0x10000000000000000"), json!("18446744073709551616"),
            json!("0x0000000000000000000000000000000000000000000000000000000000000001"),
            json!(null), json!(true), json!([]), json!({}), json!("1e3"),
        ]),
    ]
    .boxed()
}

fn block_tag() -> BoxedStrategy<Value> {
    prop_oneof![
        3 => prop::sample::select(vec!["latest", "pending", "earliest", "safe", "finalized"])
            .prop_map(|t| json!(t)),
        3 => quantity(),
        1 => prop::collection::vec(any::<u8>(), 32).prop_map(|h| json!({ "blockHash": hex(&h) })),
        1 => quantity().prop_map(|n| json!({ "blockNumber": n })),
        1 => prop::collection::vec(any::<u8>(), 32).prop_map(|h| json!(hex(&h))),
        1 => "\\PC{0,12}".prop_map(|s| json!(s)),
    ]
    .boxed()
}

fn address() -> BoxedStrategy<Value> {
    let dev = DEV.iter().map(|a| a.address).collect::<Vec<_>>();
    prop_oneof![
        2 => prop::sample::select(dev).prop_map(|a| json!(a)),
        2 => any::<[u8; 20]>().prop_map(|a| json!(hex(&a))),
        1 => Just(json!(Address::ZERO)),
        1 => prop::collection::vec(any::<u8>(), 0..24).prop_map(|a| json!(hex(&a))),
        1 => "\\PC{0,12}".prop_map(|s| json!(s)),
    ]
    .boxed()
}

fn data() -> BoxedStrategy<Value> {
    prop_oneof![
        4 => prop::collection::vec(any::<u8>(), 0..96).prop_map(|d| json!(hex(&d))),
        1 => "0x[0-9a-fA-F]{0,9}".prop_map(|s| json!(s)),
        1 => "\\PC{0,12}".prop_map(|s| json!(s)),
        1 => Just(json!(null)),
    ]
    .boxed()
}

fn word() -> BoxedStrategy<Value> {
    prop_oneof![any::<[u8; 32]>().prop_map(|w| json!(hex(&w))), quantity(),].boxed()
}

/// A transaction request with a random subset of fields.
fn tx_request() -> BoxedStrategy<Value> {
    let field = prop_oneof![
        address().prop_map(|v| ("from", v)),
        address().prop_map(|v| ("to", v)),
        quantity().prop_map(|v| ("gas", v)),
        quantity().prop_map(|v| ("gasPrice", v)),
        quantity().prop_map(|v| ("maxFeePerGas", v)),
        quantity().prop_map(|v| ("maxPriorityFeePerGas", v)),
        word().prop_map(|v| ("value", v)),
        data().prop_map(|v| ("data", v)),
        data().prop_map(|v| ("input", v)),
        quantity().prop_map(|v| ("nonce", v)),
        quantity().prop_map(|v| ("chainId", v)),
        quantity().prop_map(|v| ("type", v)),
        Just(("accessList", json!([]))),
    ];
    prop::collection::vec(field, 0..6)
        .prop_map(|fields| {
            Value::Object(fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
        })
        .boxed()
}

fn topic() -> BoxedStrategy<Value> {
    prop_oneof![
        Just(json!(null)),
        any::<[u8; 32]>().prop_map(|t| json!(hex(&t))),
        prop::collection::vec(any::<[u8; 32]>().prop_map(|t| json!(hex(&t))), 0..3)
            .prop_map(Value::Array),
        data(),
    ]
    .boxed()
}

fn log_filter() -> BoxedStrategy<Value> {
    let field = prop_oneof![
        block_tag().prop_map(|v| ("fromBlock", v)),
        block_tag().prop_map(|v| ("toBlock", v)),
        any::<[u8; 32]>().prop_map(|h| ("blockHash", json!(hex(&h)))),
        address().prop_map(|v| ("address", v)),
        prop::collection::vec(address(), 0..3).prop_map(|v| ("address", Value::Array(v))),
        prop::collection::vec(topic(), 0..5).prop_map(|v| ("topics", Value::Array(v))),
    ];
    prop::collection::vec(field, 0..4)
        .prop_map(|fields| {
            Value::Object(fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
        })
        .boxed()
}

/// A signed transaction of dev account 0 with random fields, or random bytes.
fn raw_tx() -> BoxedStrategy<Value> {
    let signer = DEV[0].signer.clone();
    let signed = (
        0u64..4,
        prop_oneof![Just(31337u64), any::<u64>()],
        prop_oneof![Just(21_000u64), any::<u64>(), 0u64..100_000],
        prop_oneof![
            Just(10_000_000_000u128),
            any::<u128>(),
            0u128..2_000_000_000
        ],
        any::<u128>(),
        any::<[u8; 32]>(),
        prop::collection::vec(any::<u8>(), 0..64),
        any::<bool>(),
    )
        .prop_map(
            move |(nonce, chain_id, gas_limit, fee, tip, value, input, legacy)| {
                let to = TxKind::Call(Address::with_last_byte(9));
                let value = U256::from_be_bytes(value) >> (tip % 256) as usize;
                let raw: Bytes = if legacy {
                    let tx = TxLegacy {
                        chain_id: Some(chain_id),
                        nonce,
                        gas_price: fee,
                        gas_limit,
                        to,
                        value,
                        input: input.into(),
                    };
                    let sig = signer.sign_hash_sync(&tx.signature_hash()).expect("signs");
                    TxEnvelope::from(tx.into_signed(sig)).encoded_2718().into()
                } else {
                    let tx = TxEip1559 {
                        chain_id,
                        nonce,
                        gas_limit,
                        max_fee_per_gas: fee,
                        max_priority_fee_per_gas: tip,
                        to,
                        value,
                        input: input.into(),
                        ..Default::default()
                    };
                    let sig = signer.sign_hash_sync(&tx.signature_hash()).expect("signs");
                    TxEnvelope::from(tx.into_signed(sig)).encoded_2718().into()
                };
                json!(raw)
            },
        );
    prop_oneof![
        2 => signed,
        2 => prop::collection::vec(any::<u8>(), 0..200).prop_map(|b| json!(hex(&b))),
        1 => data(),
    ]
    .boxed()
}

/// Any of the parameter shapes above, for methods given the wrong ones.
fn any_param() -> BoxedStrategy<Value> {
    prop_oneof![
        quantity(),
        block_tag(),
        address(),
        data(),
        tx_request(),
        log_filter(),
        any::<bool>().prop_map(Value::Bool),
    ]
    .boxed()
}

/// Random JSON, a few levels deep.
fn json_value() -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "\\PC{0,16}".prop_map(Value::String),
        prop::sample::select(vec!["jsonrpc", "2.0", "id", "method", "params", "eth_call"])
            .prop_map(|s| json!(s)),
    ];
    leaf.prop_recursive(4, 24, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    prop::sample::select(vec!["jsonrpc", "id", "method", "params"])
                        .prop_map(str::to_owned),
                    "\\PC{0,8}",
                ],
                inner,
                0..5
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
    .boxed()
}

/// The methods the devchain serves.
const METHODS: &[&str] = &[
    "web3_clientVersion",
    "web3_sha3",
    "net_version",
    "net_listening",
    "net_peerCount",
    "eth_chainId",
    "eth_syncing",
    "eth_mining",
    "eth_hashrate",
    "eth_coinbase",
    "eth_accounts",
    "eth_blockNumber",
    "eth_gasPrice",
    "eth_maxPriorityFeePerGas",
    "eth_blobBaseFee",
    "eth_feeHistory",
    "eth_getBalance",
    "eth_getTransactionCount",
    "eth_getCode",
    "eth_getStorageAt",
    "eth_call",
    "eth_estimateGas",
    "eth_sendRawTransaction",
    "eth_sendTransaction",
    "eth_getTransactionByHash",
    "eth_getTransactionReceipt",
    "eth_getBlockReceipts",
    "eth_getBlockByNumber",
    "eth_getBlockByHash",
    "eth_getBlockTransactionCountByNumber",
    "eth_getBlockTransactionCountByHash",
    "eth_getUncleCountByBlockNumber",
    "eth_getUncleByBlockNumberAndIndex",
    "eth_getTransactionByBlockNumberAndIndex",
    "eth_getTransactionByBlockHashAndIndex",
    "eth_getLogs",
    "eth_newFilter",
    "eth_newBlockFilter",
    "eth_newPendingTransactionFilter",
    "eth_uninstallFilter",
    "eth_getFilterChanges",
    "eth_getFilterLogs",
    "evm_mine",
    "anvil_mine",
    "hardhat_mine",
    "evm_increaseTime",
    "evm_setNextBlockTimestamp",
    "evm_setAutomine",
    "anvil_getAutomine",
    "evm_snapshot",
    "evm_revert",
    "anvil_setBalance",
    "anvil_setCode",
    "anvil_setNonce",
    "anvil_setStorageAt",
];

/// Parameters shaped for `method` (most of the time), or anything.
fn params_for(method: &'static str) -> BoxedStrategy<Value> {
    let shaped: BoxedStrategy<Vec<Value>> = match method {
        "web3_sha3" => data().prop_map(|d| vec![d]).boxed(),
        "eth_feeHistory" => (
            quantity(),
            block_tag(),
            prop::collection::vec(-10.0f64..200.0, 0..5),
        )
            .prop_map(|(c, b, p)| vec![c, b, json!(p)])
            .boxed(),
        "eth_getBalance" | "eth_getTransactionCount" | "eth_getCode" => (address(), block_tag())
            .prop_map(|(a, b)| vec![a, b])
            .boxed(),
        "eth_getStorageAt" => (address(), word(), block_tag())
            .prop_map(|(a, s, b)| vec![a, s, b])
            .boxed(),
        "eth_call" | "eth_estimateGas" => (tx_request(), block_tag())
            .prop_map(|(t, b)| vec![t, b])
            .boxed(),
        "eth_sendRawTransaction" => raw_tx().prop_map(|r| vec![r]).boxed(),
        "eth_sendTransaction" => tx_request().prop_map(|t| vec![t]).boxed(),
        "eth_getTransactionByHash" | "eth_getTransactionReceipt" => {
            word().prop_map(|h| vec![h]).boxed()
        }
        "eth_getBlockReceipts"
        | "eth_getBlockTransactionCountByNumber"
        | "eth_getBlockTransactionCountByHash" => block_tag().prop_map(|b| vec![b]).boxed(),
        "eth_getBlockByNumber" | "eth_getBlockByHash" => (block_tag(), any::<Option<bool>>())
            .prop_map(|(b, f)| vec![b, json!(f)])
            .boxed(),
        "eth_getTransactionByBlockNumberAndIndex" | "eth_getTransactionByBlockHashAndIndex" => {
            (block_tag(), quantity())
                .prop_map(|(b, i)| vec![b, i])
                .boxed()
        }
        "eth_getLogs" | "eth_newFilter" => log_filter().prop_map(|f| vec![f]).boxed(),
        "eth_uninstallFilter"
        | "eth_getFilterChanges"
        | "eth_getFilterLogs"
        | "evm_revert"
        | "evm_increaseTime"
        | "evm_setNextBlockTimestamp" => quantity().prop_map(|q| vec![q]).boxed(),
        "evm_mine" => prop_oneof![
            quantity().prop_map(|q| vec![q]),
            quantity().prop_map(|q| vec![json!({ "timestamp": q })]),
        ]
        .boxed(),
        "anvil_mine" | "hardhat_mine" => (0u64..4, quantity())
            .prop_map(|(n, i)| vec![json!(n), i])
            .boxed(),
        "evm_setAutomine" => any::<bool>().prop_map(|b| vec![json!(b)]).boxed(),
        "anvil_setBalance" => (address(), word()).prop_map(|(a, b)| vec![a, b]).boxed(),
        "anvil_setCode" => (address(), data()).prop_map(|(a, c)| vec![a, c]).boxed(),
        "anvil_setNonce" => (address(), quantity())
            .prop_map(|(a, n)| vec![a, n])
            .boxed(),
        "anvil_setStorageAt" => (address(), word(), word())
            .prop_map(|(a, s, v)| vec![a, s, v])
            .boxed(),
        _ => Just(Vec::new()).boxed(),
    };
    prop_oneof![
        6 => shaped.prop_map(Value::Array),
        1 => prop::collection::vec(any_param(), 0..4).prop_map(Value::Array),
        1 => any_param(),
        1 => Just(Value::Null),
    ]
    .boxed()
}

fn call() -> BoxedStrategy<Value> {
    let method = prop_oneof![
        8 => prop::sample::select(METHODS),
        1 => prop::sample::select(METHODS).prop_map(|m| &*Box::leak(format!("{m}x").into_boxed_str())),
    ];
    prop_oneof![
        8 => prop::sample::select(METHODS).prop_flat_map(|m| (Just(m), params_for(m))),
        1 => ("[a-zA-Z_]{0,24}", any_param()).prop_map(|(m, p)| {
            (&*Box::leak(m.into_boxed_str()), p)
        }),
        1 => method.prop_flat_map(|m| (Just(m), any_param())),
    ]
    .prop_flat_map(|(m, p)| {
        (
            Just((m, p)),
            prop_oneof![
                4 => (0u64..1000).prop_map(|i| Some(json!(i))),
                1 => Just(Some(json!("id-ü"))),
                1 => Just(Some(Value::Null)),
                1 => Just(None),
            ],
        )
    })
    .prop_map(|((method, params), id)| {
        let mut call = json!({ "jsonrpc": "2.0", "method": method, "params": params });
        if let Some(id) = id {
            call["id"] = id;
        }
        call
    })
    .boxed()
}

// ---- properties ----

#[test]
fn arbitrary_bytes_get_a_json_rpc_answer() {
    let dc = chain();
    run(prop::collection::vec(any::<u8>(), 0..256), |body| {
        isolated(&dc, || check_body(&dc, &body));
        Ok(())
    });
}

#[test]
fn arbitrary_json_gets_a_json_rpc_answer() {
    let dc = chain();
    run(json_value(), |v| {
        let body = serde_json::to_vec(&v).expect("serializes");
        isolated(&dc, || check_body(&dc, &body));
        Ok(())
    });
}

#[test]
fn real_methods_with_random_params_answer_json_rpc() {
    let dc = chain();
    // A few calls in a row (time moves, nonces change, …), sometimes as a batch.
    let strategy = (prop::collection::vec(call(), 1..4), any::<bool>());
    run(strategy, |(calls, batch)| {
        isolated(&dc, || {
            if batch {
                let body = serde_json::to_vec(&Value::Array(calls.clone())).expect("JSON");
                check_body(&dc, &body);
            } else {
                for c in &calls {
                    check_body(&dc, &serde_json::to_vec(c).expect("JSON"));
                }
            }
        });
        Ok(())
    });
}

// ---- regressions found by the properties above ----

fn ask(dc: &DevChain, call: Value) -> Option<Value> {
    dc.handle_body(&serde_json::to_vec(&call).expect("JSON"))
}

/// Found by `arbitrary_json_gets_a_json_rpc_answer`: a single notification was answered
/// with `null` (HTTP 200 with a `null` body) instead of nothing (204).
#[test]
fn a_notification_gets_no_answer() {
    let dc = chain();
    let call = json!({ "jsonrpc": "2.0", "method": "eth_blockNumber", "params": [] });
    assert_eq!(ask(&dc, call.clone()), None);
    assert_eq!(ask(&dc, json!([call])), None);
    // Without a method it is not a call at all, and gets an error.
    let answer = ask(&dc, json!({ "jsonrpc": "2.0" })).expect("an error");
    check_response(&answer, Some(&Value::Null), "no method");
}

/// Found by `real_methods_with_random_params_answer_json_rpc`: `anvil_mine` with an interval
/// that overflows the timestamp panicked ("attempt to add with overflow").
#[test]
fn anvil_mine_with_a_huge_interval_is_an_error() {
    let dc = chain();
    let answer = ask(
        &dc,
        json!({ "jsonrpc": "2.0", "id": 0, "method": "anvil_mine", "params": [1, "0xffffffffffffffff"] }),
    )
    .expect("answer");
    check_response(&answer, Some(&json!(0)), "anvil_mine");
    assert_eq!(answer["error"]["code"], json!(-32602), "{answer}");
}

/// Found by `real_methods_with_random_params_answer_json_rpc`: a next timestamp beyond
/// i64::MAX, or an `evm_increaseTime` that saturates the offset, overflowed the time offset
/// ("attempt to subtract/add with overflow") when set or when the next block was built.
#[test]
fn huge_timestamps_and_time_jumps_do_not_overflow() {
    for (method, arg) in [
        ("evm_setNextBlockTimestamp", "0x8000000000000000"),
        ("evm_setNextBlockTimestamp", "0xffffffffffffffff"),
        ("evm_increaseTime", "0x7fffffffffffffff"),
    ] {
        let dc = chain();
        let answer = ask(
            &dc,
            json!({ "jsonrpc": "2.0", "id": 1, "method": method, "params": [arg] }),
        )
        .expect("answer");
        check_response(&answer, Some(&json!(1)), method);
        for then in ["evm_mine", "eth_call", "evm_mine"] {
            let params = if then == "eth_call" {
                json!([{}])
            } else {
                json!([])
            };
            let answer = ask(
                &dc,
                json!({ "jsonrpc": "2.0", "id": 2, "method": then, "params": params }),
            )
            .expect("answer");
            check_response(&answer, Some(&json!(2)), then);
        }
    }
}
