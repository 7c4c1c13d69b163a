//! Bad input gets a clear JSON-RPC error, never a crash or a hang.

mod common;

use alloy::consensus::{SignableTransaction, TxEip1559, TxEnvelope, TxLegacy};
use alloy::eips::eip2718::Encodable2718;
use alloy::primitives::{Bytes, TxKind, U256};
use alloy::signers::SignerSync;
use alloy::signers::local::PrivateKeySigner;
use serde_json::{Value, json};
use shoal_devchain::DevAccount;

fn sign_1559(a: &DevAccount, tx: TxEip1559) -> anyhow::Result<Bytes> {
    let sig = a.signer.sign_hash_sync(&tx.signature_hash())?;
    Ok(TxEnvelope::from(tx.into_signed(sig)).encoded_2718().into())
}

fn transfer(nonce: u64, to: alloy::primitives::Address) -> TxEip1559 {
    TxEip1559 {
        chain_id: 31337,
        nonce,
        gas_limit: 21_000,
        max_fee_per_gas: 10_000_000_000,
        max_priority_fee_per_gas: 1_000_000_000,
        to: TxKind::Call(to),
        value: U256::from(1),
        ..Default::default()
    }
}

async fn send_raw(url: &str, raw: &Bytes) -> anyhow::Result<Value> {
    common::rpc(url, "eth_sendRawTransaction", json!([raw])).await
}

fn error_of(v: &Value) -> (i64, String) {
    (
        v["error"]["code"].as_i64().unwrap_or(0),
        v["error"]["message"].as_str().unwrap_or("").to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn framing_errors() -> anyhow::Result<()> {
    let (_dc, server) = common::start().await?;
    let url = server.url();
    let client = reqwest::Client::new();
    let post = |body: Vec<u8>| {
        client
            .post(&url)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };

    let v: Value = post(b"{not json".to_vec()).await?.json().await?;
    assert_eq!(error_of(&v).0, -32700);
    let v: Value = post(b"[]".to_vec()).await?.json().await?;
    assert_eq!(error_of(&v).0, -32600);
    let v: Value = post(b"42".to_vec()).await?.json().await?;
    assert_eq!(error_of(&v).0, -32600);
    let v: Value = post(br#"{"jsonrpc":"2.0","id":7}"#.to_vec())
        .await?
        .json()
        .await?;
    assert_eq!((error_of(&v).0, v["id"].clone()), (-32600, json!(7)));
    let v = common::rpc(&url, "eth_noSuchMethod", json!([])).await?;
    assert_eq!(error_of(&v).0, -32601);
    let v = common::rpc(&url, "eth_getBalance", json!(["0x1234"])).await?;
    assert_eq!(error_of(&v).0, -32602);
    let v = common::rpc(
        &url,
        "eth_getBalance",
        json!(["0x70997970C51812dc3A010C7d01b50e0d17dc79C8", "latest", 1, 2]),
    )
    .await?;
    assert_eq!(error_of(&v).0, -32602);
    let v = common::rpc(&url, "eth_blockNumber", json!("nope")).await?;
    assert_eq!(error_of(&v).0, -32602);
    let v = common::rpc(
        &url,
        "eth_getBalance",
        json!(["0x70997970C51812dc3A010C7d01b50e0d17dc79C8", "0x99"]),
    )
    .await?;
    assert!(error_of(&v).1.contains("not found"), "{v}");

    // Batches answer each call in order, errors included.
    let batch = json!([
        {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"},
        {"jsonrpc": "2.0", "id": 2, "method": "nope"},
        {"jsonrpc": "2.0", "id": 3, "method": "eth_blockNumber", "params": []},
    ]);
    let v: Value = post(serde_json::to_vec(&batch)?).await?.json().await?;
    assert_eq!(v[0]["result"], json!("0x7a69"));
    assert_eq!(v[1]["error"]["code"], json!(-32601));
    assert_eq!(v[2]["result"], json!("0x0"));

    // An oversized body is refused without reading it all into the chain.
    let big = vec![b' '; shoal_devchain::MAX_BODY + 1];
    let resp = post(big).await?;
    assert_eq!(resp.status(), 413);
    let v: Value = resp.json().await?;
    assert_eq!(error_of(&v).0, -32600);

    // Still serving.
    let v = common::rpc(&url, "eth_chainId", json!([])).await?;
    assert_eq!(v["result"], json!("0x7a69"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transaction_errors() -> anyhow::Result<()> {
    let (dc, server) = common::start().await?;
    let url = server.url();
    let a = dc.dev_accounts().to_vec();
    let to = a[1].address;

    let ok = send_raw(&url, &sign_1559(&a[0], transfer(0, to))?).await?;
    assert!(ok["result"].is_string(), "{ok}");
    // Same transaction again.
    let v = send_raw(&url, &sign_1559(&a[0], transfer(0, to))?).await?;
    assert!(error_of(&v).1.contains("already known"), "{v}");
    // Nonce too low.
    let mut t = transfer(0, to);
    t.value = U256::from(2);
    let v = send_raw(&url, &sign_1559(&a[0], t)?).await?;
    assert!(error_of(&v).1.starts_with("nonce too low"), "{v}");
    // Nonce too high (beyond the queue window).
    let v = send_raw(&url, &sign_1559(&a[0], transfer(5000, to))?).await?;
    assert!(error_of(&v).1.starts_with("nonce too high"), "{v}");
    // Fee below the base fee.
    let mut t = transfer(1, to);
    t.max_fee_per_gas = 1;
    t.max_priority_fee_per_gas = 1;
    let v = send_raw(&url, &sign_1559(&a[0], t)?).await?;
    assert!(error_of(&v).1.contains("less than block base fee"), "{v}");
    // Intrinsic gas too low.
    let mut t = transfer(1, to);
    t.gas_limit = 20_000;
    let v = send_raw(&url, &sign_1559(&a[0], t)?).await?;
    assert!(error_of(&v).1.contains("intrinsic gas too low"), "{v}");
    // Wrong chain id.
    let mut t = transfer(1, to);
    t.chain_id = 1;
    let v = send_raw(&url, &sign_1559(&a[0], t)?).await?;
    assert!(error_of(&v).1.contains("invalid chain id"), "{v}");
    // Insufficient funds.
    let poor = PrivateKeySigner::random();
    let poor = DevAccount {
        address: poor.address(),
        signer: poor,
    };
    let v = send_raw(&url, &sign_1559(&poor, transfer(0, to))?).await?;
    assert!(error_of(&v).1.contains("insufficient funds"), "{v}");
    // Oversized transaction.
    let mut t = transfer(1, to);
    t.input = vec![1u8; 200 * 1024].into();
    t.gas_limit = 29_000_000;
    let v = send_raw(&url, &sign_1559(&a[0], t)?).await?;
    assert!(error_of(&v).1.contains("oversized"), "{v}");
    // Garbage bytes and a corrupted signature.
    let v = send_raw(&url, &Bytes::from_static(&[0x02, 0xc0, 0x01])).await?;
    assert_eq!(error_of(&v).0, -32602, "{v}");
    let legacy = TxLegacy {
        chain_id: Some(31337),
        nonce: 1,
        gas_price: 10_000_000_000,
        gas_limit: 21_000,
        to: TxKind::Call(to),
        value: U256::from(1),
        input: Default::default(),
    };
    let sig = a[0].signer.sign_hash_sync(&legacy.signature_hash())?;
    let bad_sig = alloy::primitives::Signature::new(U256::ZERO, sig.s(), sig.v());
    let raw: Bytes = TxEnvelope::from(legacy.into_signed(bad_sig))
        .encoded_2718()
        .into();
    let v = send_raw(&url, &raw).await?;
    assert!(v["error"].is_object(), "{v}");
    // eth_sendTransaction for an account the devchain does not hold.
    let v = common::rpc(
        &url,
        "eth_sendTransaction",
        json!([{"from": poor.address, "to": to}]),
    )
    .await?;
    assert!(error_of(&v).1.contains("unknown account"), "{v}");

    // Nothing above was mined; the chain still works.
    let v = common::rpc(&url, "eth_blockNumber", json!([])).await?;
    assert_eq!(v["result"], json!("0x1"));
    let ok = send_raw(&url, &sign_1559(&a[0], transfer(1, to))?).await?;
    assert!(ok["result"].is_string(), "{ok}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_nonces_are_mined_in_order() -> anyhow::Result<()> {
    let (dc, server) = common::start().await?;
    let url = server.url();
    let a = dc.dev_accounts().to_vec();
    // Nonce 1 waits for nonce 0; then both are mined.
    let r1 = send_raw(&url, &sign_1559(&a[0], transfer(1, a[1].address))?).await?;
    let h1 = r1["result"].clone();
    let v = common::rpc(&url, "eth_getTransactionReceipt", json!([h1])).await?;
    assert_eq!(v["result"], Value::Null);
    let v = common::rpc(
        &url,
        "eth_getTransactionCount",
        json!([a[0].address, "pending"]),
    )
    .await?;
    assert_eq!(v["result"], json!("0x0"));
    send_raw(&url, &sign_1559(&a[0], transfer(0, a[1].address))?).await?;
    let v = common::rpc(&url, "eth_getTransactionReceipt", json!([h1])).await?;
    assert_eq!(v["result"]["blockNumber"], json!("0x2"));
    Ok(())
}
