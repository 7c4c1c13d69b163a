//! The transaction manager: concurrent nonces, nonce re-sync, revert decoding, fee bumping.

mod common;

use std::time::Duration;

use alloy::consensus::Transaction as _;
use alloy::network::TransactionBuilder;
use alloy::primitives::keccak256;
use alloy::providers::Provider;
use alloy::rpc::types::TransactionRequest;
use alloy::sol_types::SolCall;
use futures::future::join_all;
use shoal_chain::bindings::JobMarket;
use shoal_chain::{
    Address, Bytes, Capabilities, ChainClient, ContractError, Error, JobId, JobParams, TxConfig,
    U256, Verifier, u96,
};

use common::{Endpoint, dev_keys, eth};

fn ok<T, E: std::fmt::Display>(what: &str, r: Result<T, E>) -> T {
    r.unwrap_or_else(|e| panic!("{what}: {e}"))
}

fn caps() -> Capabilities {
    Capabilities {
        engines: 1,
        cpuMillicores: 1000,
        memoryMiB: 1024,
        diskGiB: 1,
        gpus: 0,
    }
}

/// 20 concurrent transactions (stakes and transfers) from one key all land, with consecutive
/// nonces.
async fn concurrent_nonces(endpoint: &Endpoint) {
    let (client, _) = common::deployed(&endpoint.url()).await;
    let op = client.with_signer(dev_keys(2)[1].clone());
    let me = op.address().unwrap_or_default();
    ok(
        "register",
        op.register(Bytes::from_static(b"peer"), caps(), eth(1000))
            .await,
    );
    let sink = Address::repeat_byte(0x77);
    let sends = (0..20).map(|i| {
        let op = op.clone();
        async move {
            if i % 2 == 0 {
                op.stake(eth(10)).await
            } else {
                op.transfer(sink, U256::from(1000 + i)).await
            }
        }
    });
    let receipts: Vec<_> = join_all(sends)
        .await
        .into_iter()
        .map(|r| ok("concurrent send", r))
        .collect();
    assert!(receipts.iter().all(|r| r.status()));
    let mut nonces = Vec::new();
    for r in &receipts {
        let tx = ok(
            "tx",
            client
                .provider()
                .get_transaction_by_hash(r.transaction_hash)
                .await,
        );
        nonces.push(tx.map(|t| t.inner.nonce()).unwrap_or(u64::MAX));
    }
    nonces.sort_unstable();
    let first = nonces[0];
    assert_eq!(
        nonces,
        (first..first + 20).collect::<Vec<_>>(),
        "{}: consecutive nonces",
        endpoint.name()
    );
    let status = ok("status", op.operator_status(me).await);
    assert_eq!(status.stake, eth(1000) + eth(10) * U256::from(10));
    let total: u64 = (0..20).filter(|i| i % 2 == 1).map(|i| 1000 + i).sum();
    assert_eq!(ok("balance", client.balance(sink).await), U256::from(total));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_nonces_anvil() {
    let Some(e) = common::start_anvil() else {
        return;
    };
    concurrent_nonces(&e).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_nonces_devchain() {
    concurrent_nonces(&common::start_devchain().await).await;
}

/// A key used by another sender meanwhile: the manager's nonce is stale, it re-reads it from
/// the chain and the transaction lands.
async fn nonce_resync(endpoint: &Endpoint) {
    let url = endpoint.url();
    let key = dev_keys(3)[2].clone();
    let a = ok(
        "connect",
        ChainClient::connect(&url, Some(key.clone())).await,
    );
    let b = ok("connect", ChainClient::connect(&url, Some(key)).await);
    let to = Address::repeat_byte(0x55);
    ok("a1", a.transfer(to, U256::from(1)).await);
    ok("b1", b.transfer(to, U256::from(2)).await);
    ok("b2", b.transfer(to, U256::from(3)).await);
    // `a` still thinks its next nonce is 1.
    ok(
        "a2 after the key was used elsewhere",
        a.transfer(to, U256::from(4)).await,
    );
    assert_eq!(ok("balance", a.balance(to).await), U256::from(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nonce_resync_anvil() {
    let Some(e) = common::start_anvil() else {
        return;
    };
    nonce_resync(&e).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nonce_resync_devchain() {
    nonce_resync(&common::start_devchain().await).await;
}

fn job_params() -> JobParams {
    JobParams {
        specCid: Bytes::from_static(b"bafkspec"),
        specHash: keccak256(b"spec"),
        concurrency: 1,
        confidence: 1,
        minBids: 1,
        maxPrice: ok("u96", u96(eth(100))),
        collateral: ok("u96", u96(eth(2000))),
        bidWindow: 600,
        execWindow: 600,
        revealWindow: 600,
        challengeWindow: 0,
        verifier: Verifier::Deterministic,
        escalate: false,
        mediators: 0,
        creator: alloy::primitives::Address::ZERO,
    }
}

/// Reverts come back as typed contract errors with a useful message, both when the estimate
/// fails and when a mined transaction failed.
async fn reverts_are_decoded(endpoint: &Endpoint) {
    let (creator, _) = common::deployed(&endpoint.url()).await;
    let keys = dev_keys(3);
    let (job, _) = ok("post_job", creator.post_job(job_params()).await);

    // Not registered: caught by the estimate.
    let stranger = creator.with_signer(keys[2].clone());
    let who = keys[2].address();
    let err = stranger.bid(job, eth(50)).await.err();
    match &err {
        Some(Error::Reverted(ContractError::Market(m))) => match m.as_ref() {
            JobMarket::JobMarketErrors::JobMarket__NotRegistered(e) => assert_eq!(e.operator, who),
            other => panic!(
                "{}: expected JobMarket__NotRegistered, got {other:?}",
                endpoint.name()
            ),
        },
        other => panic!(
            "{}: expected JobMarket__NotRegistered, got {other:?}",
            endpoint.name()
        ),
    }
    let text = err.map(|e| e.to_string()).unwrap_or_default();
    assert!(text.contains("shoal operator register"), "{text}");

    // Registered with 1 ETH, the job needs 2 ETH of collateral.
    let op = creator.with_signer(keys[1].clone());
    ok(
        "register",
        op.register(Bytes::from_static(b"peer"), caps(), eth(1000))
            .await,
    );
    let err = op.bid(job, eth(50)).await.err();
    let Some(Error::Reverted(ce @ ContractError::Market(_))) = &err else {
        panic!("{}: expected a market error, got {err:?}", endpoint.name())
    };
    assert_eq!(ce.name(), "JobMarket__InsufficientStake");
    let text = ce.to_string();
    assert!(
        text.contains("has 1 ETH free") || text.contains("has 1.0"),
        "{text}"
    );
    assert!(text.contains("shoal operator stake"), "{text}");

    // A mined failure (gas limit given, so no estimate): decoded by replaying the call.
    let call = JobMarket::bidCall {
        jobId: job.as_u256(),
        price: ok("u96", u96(eth(50))),
    };
    let market = creator
        .deployment()
        .map(|d| d.job_market)
        .unwrap_or_default();
    let tx = TransactionRequest::default()
        .with_to(market)
        .with_input(call.abi_encode())
        .with_gas_limit(300_000);
    let nonce_before = ok("nonce", creator.provider().get_transaction_count(who).await);
    match stranger.send(tx).await {
        Err(Error::Reverted(e)) => assert_eq!(e.name(), "JobMarket__NotRegistered"),
        other => panic!(
            "{}: expected a mined revert, got {other:?}",
            endpoint.name()
        ),
    }
    let nonce_after = ok("nonce", creator.provider().get_transaction_count(who).await);
    assert_eq!(
        nonce_after,
        nonce_before + 1,
        "the failed transaction was mined"
    );

    // Unknown job and wrong escrow.
    match creator.get_job(JobId::from(99u64)).await {
        Ok(job) => assert_eq!(job.creator, Address::ZERO, "an unknown job reads as empty"),
        Err(Error::Reverted(e)) => assert_eq!(e.name(), "JobMarket__UnknownJob"),
        Err(e) => panic!("{e}"),
    }
    let call = JobMarket::postJobCall {
        params: job_params(),
    };
    let tx = TransactionRequest::default()
        .with_to(market)
        .with_input(call.abi_encode())
        .with_value(U256::from(1));
    match creator.send(tx).await {
        Err(Error::Reverted(e)) => {
            assert_eq!(e.name(), "JobMarket__WrongEscrow");
            assert!(e.to_string().contains("send exactly"), "{e}");
        }
        other => panic!("expected WrongEscrow, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reverts_are_decoded_anvil() {
    let Some(e) = common::start_anvil() else {
        return;
    };
    reverts_are_decoded(&e).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reverts_are_decoded_devchain() {
    reverts_are_decoded(&common::start_devchain().await).await;
}

/// A transaction that is not mined in time is replaced (same nonce) with higher fees.
async fn fee_bump(endpoint: &Endpoint) {
    let url = endpoint.url();
    let config = TxConfig {
        bump_after: Duration::from_millis(300),
        poll_interval: Duration::from_millis(50),
        ..Default::default()
    };
    let client = ok(
        "connect",
        ChainClient::builder(&url)
            .signer(dev_keys(4)[3].clone())
            .tx_config(config)
            .connect()
            .await,
    );
    let start_fee = ok("fees", client.provider().estimate_eip1559_fees().await).max_fee_per_gas;
    common::rpc(&client, "evm_setAutomine", serde_json::json!([false])).await;
    let sender = client.clone();
    let send = tokio::spawn(async move {
        sender
            .transfer(Address::repeat_byte(0x66), U256::from(5))
            .await
    });
    tokio::time::sleep(Duration::from_millis(1000)).await;
    common::rpc(&client, "evm_mine", serde_json::json!([])).await;
    let receipt = ok(
        "send",
        ok(
            "join",
            tokio::time::timeout(Duration::from_secs(20), send).await,
        )
        .unwrap_or_else(|e| panic!("{e}")),
    );
    common::rpc(&client, "evm_setAutomine", serde_json::json!([true])).await;
    let tx = ok(
        "tx",
        client
            .provider()
            .get_transaction_by_hash(receipt.transaction_hash)
            .await,
    );
    let max_fee = tx.map(|t| t.inner.max_fee_per_gas()).unwrap_or_default();
    assert!(
        max_fee >= start_fee * 125 / 100,
        "{}: fee bumped: {max_fee} vs start {start_fee}",
        endpoint.name()
    );
    assert_eq!(
        ok("balance", client.balance(Address::repeat_byte(0x66)).await),
        U256::from(5),
        "mined once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fee_bump_anvil() {
    let Some(e) = common::start_anvil() else {
        return;
    };
    fee_bump(&e).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fee_bump_devchain() {
    fee_bump(&common::start_devchain().await).await;
}

/// The same client works over WebSocket, and refuses a deployment of another chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_and_wrong_chain_anvil() {
    let Some(e) = common::start_anvil() else {
        return;
    };
    let Endpoint::Anvil(anvil) = &e else { return };
    let (http, d) = common::deployed(&e.url()).await;
    let ws = ok(
        "connect ws",
        ChainClient::builder(anvil.ws_endpoint())
            .deployment(d.clone())
            .connect()
            .await,
    );
    assert_eq!(ws.chain_id(), 31337);
    assert_eq!(
        ok("ws block", ws.block_number().await),
        ok("http block", http.block_number().await)
    );
    assert_eq!(
        ok("ws operators", ws.operators().await),
        Vec::<Address>::new()
    );
    let other = shoal_chain::Deployment { chain_id: 1, ..d };
    match http.with_deployment(other) {
        Err(Error::WrongChain {
            expected: 1,
            actual: 31337,
            ..
        }) => {}
        other => panic!("expected WrongChain, got {other:?}"),
    }
    assert!(matches!(
        ChainClient::connect("http://127.0.0.1:1", None).await,
        Err(Error::Connect { .. })
    ));
}

/// A transaction that is never mined ends in `Error::Timeout` after the configured bumps.
async fn stuck_times_out(endpoint: &Endpoint) {
    let config = TxConfig {
        bump_after: Duration::from_millis(200),
        poll_interval: Duration::from_millis(50),
        max_bumps: 2,
        ..Default::default()
    };
    let client = ok(
        "connect",
        ChainClient::builder(endpoint.url())
            .signer(dev_keys(6)[5].clone())
            .tx_config(config)
            .connect()
            .await,
    );
    common::rpc(&client, "evm_setAutomine", serde_json::json!([false])).await;
    let r = client
        .transfer(Address::repeat_byte(0x44), U256::from(1))
        .await;
    common::rpc(&client, "evm_setAutomine", serde_json::json!([true])).await;
    match r {
        Err(e @ Error::Timeout { bumps: 2, .. }) => {
            assert!(e.to_string().contains("not mined"), "{e}")
        }
        other => panic!("{}: expected a timeout, got {other:?}", endpoint.name()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stuck_times_out_anvil() {
    let Some(e) = common::start_anvil() else {
        return;
    };
    stuck_times_out(&e).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stuck_times_out_devchain() {
    stuck_times_out(&common::start_devchain().await).await;
}

/// Market calls queued behind the ones in flight go out together in `batch` transactions;
/// each caller gets its own outcome (a duplicate bid its own `AlreadyBid`), and every bid
/// lands.
async fn batched_calls(endpoint: &Endpoint) {
    let url = endpoint.url();
    let (creator, deployment) = common::deployed(&url).await;
    let op = ok(
        "connect",
        ChainClient::builder(&url)
            .signer(dev_keys(2)[1].clone())
            .deployment(deployment)
            .tx_config(TxConfig {
                max_batch: 8,
                ..TxConfig::default()
            })
            .connect()
            .await,
    );
    let me = op.address().unwrap_or_default();
    ok(
        "register",
        op.register(Bytes::from_static(b"peer"), caps(), eth(10_000))
            .await,
    );
    let mut jobs = Vec::new();
    for _ in 0..12 {
        jobs.push(ok("post_job", creator.post_job(job_params()).await).0);
    }
    // Every job once, and the first job a second time.
    let targets: Vec<JobId> = jobs.iter().copied().chain([jobs[0]]).collect();
    let outcomes = join_all(targets.iter().map(|&job| op.bid(job, eth(50)))).await;
    let mut hashes = Vec::new();
    let mut already_bid = 0;
    for (job, outcome) in targets.iter().zip(outcomes) {
        match outcome {
            Ok(receipt) => hashes.push(receipt.transaction_hash),
            Err(Error::Reverted(e)) if e.name() == "JobMarket__AlreadyBid" && *job == jobs[0] => {
                already_bid += 1
            }
            Err(e) => panic!("{}: bid on job {job}: {e}", endpoint.name()),
        }
    }
    assert_eq!(
        already_bid,
        1,
        "{}: one duplicate bid refused",
        endpoint.name()
    );
    assert_eq!(
        hashes.len(),
        12,
        "{}: every job got its bid",
        endpoint.name()
    );
    hashes.sort_unstable();
    hashes.dedup();
    assert!(
        hashes.len() < 12,
        "{}: the calls queued behind the first ones went out in batches ({} transactions)",
        endpoint.name(),
        hashes.len()
    );
    for job in jobs {
        let bids = ok("getBids", creator.get_bids(job).await);
        assert_eq!(bids.len(), 1, "{}: job {job} has one bid", endpoint.name());
        assert_eq!(bids[0].operator, me);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batched_calls_anvil() {
    let Some(e) = common::start_anvil() else {
        return;
    };
    batched_calls(&e).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batched_calls_devchain() {
    batched_calls(&common::start_devchain().await).await;
}
