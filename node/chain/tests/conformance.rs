//! The conformance scenario, one function run against a real anvil and the embedded devchain:
//! deploy, register and stake three operators, run a 3-node job to Verified with commit-reveal,
//! read back every event through the follower, and check the money.

mod common;

use std::collections::BTreeMap;

use alloy::primitives::keccak256;
use shoal_chain::{
    Address, B256, Bytes, Capabilities, ChainClient, EventFollower, FollowerConfig, FollowerUpdate,
    JobId, JobParams, JobState, MarketEvent, MemoryCursorStore, PaymentKind, U256, Verifier,
    commitment, sealed_hash, u96,
};

use common::{Endpoint, dev_keys, eth};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_anvil() {
    let Some(endpoint) = common::start_anvil() else {
        return;
    };
    scenario(&endpoint).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_devchain() {
    let endpoint = common::start_devchain().await;
    scenario(&endpoint).await;
}

fn ok<T, E: std::fmt::Display>(what: &str, r: Result<T, E>) -> T {
    r.unwrap_or_else(|e| panic!("{what}: {e}"))
}

async fn scenario(endpoint: &Endpoint) {
    let url = endpoint.url();
    let name = endpoint.name();
    let keys = dev_keys(4);
    let (creator, deployment) = common::deployed(&url).await;
    let operators: Vec<ChainClient> = keys[1..4]
        .iter()
        .map(|k| creator.with_signer(k.clone()))
        .collect();
    let op_addr: Vec<Address> = keys[1..4].iter().map(|k| k.address()).collect();
    let mut gas: Vec<(String, u64)> = Vec::new();

    // Register with 2 ETH, then stake 1 ETH more each.
    for (i, op) in operators.iter().enumerate() {
        let caps = Capabilities {
            engines: 1,
            cpuMillicores: 2000,
            memoryMiB: 4096,
            diskGiB: 10,
            gpus: 0,
        };
        let peer = Bytes::from(format!("12D3KooWoperator{i}").into_bytes());
        ok("register", op.register(peer, caps, eth(2000)).await);
        ok("stake", op.stake(eth(1000)).await);
        let status = ok("operator_status", op.operator_status(op_addr[i]).await);
        assert!(status.registered);
        assert_eq!(status.stake, eth(3000));
        assert_eq!(status.free, eth(3000));
    }
    assert_eq!(ok("operators", creator.operators().await), op_addr);

    // Post a 3-node job: escrow 3 × 0.1 ETH, 1 ETH collateral.
    let max_price = eth(100);
    let params = JobParams {
        specCid: Bytes::from_static(b"bafkreispecspecspecspec"),
        specHash: keccak256(b"spec"),
        concurrency: 3,
        confidence: 2,
        minBids: 3,
        maxPrice: ok("u96", u96(max_price)),
        collateral: ok("u96", u96(eth(1000))),
        bidWindow: 2,
        execWindow: 3600,
        revealWindow: 3600,
        challengeWindow: 0,
        verifier: Verifier::Deterministic,
        escalate: false,
        mediators: 0,
        creator: alloy::primitives::Address::ZERO,
    };
    let creator_addr = creator.address().unwrap_or_default();
    let (job, receipt) = ok("post_job", creator.post_job(params).await);
    gas.push(("postJob".into(), receipt.gas_used));
    assert_eq!(job, JobId::from(1u64));
    assert_eq!(
        ok("get_job", creator.get_job(job).await).state,
        JobState::Posted
    );

    // Three bids; after the bid window, closing the bidding selects all three (exactly
    // `concurrency` bids need no draw).
    let prices = [eth(50), eth(60), eth(70)];
    for (i, op) in operators.iter().enumerate() {
        let r = ok("bid", op.bid(job, prices[i]).await);
        gas.push((format!("bid #{}", i + 1), r.gas_used));
    }
    assert_eq!(
        ok("get_job", creator.get_job(job).await).state,
        JobState::Posted,
        "bidding stays open until the bid deadline"
    );
    tokio::time::sleep(std::time::Duration::from_millis(3100)).await;
    let r = ok("close_bidding", creator.close_bidding(job).await);
    gas.push(("closeBidding".into(), r.gas_used));
    let state = ok("get_job", creator.get_job(job).await);
    assert_eq!(state.state, JobState::Running);
    assert_eq!(ok("get_bids", creator.get_bids(job).await).len(), 3);
    let deals = ok("get_deals", creator.get_deals(job).await);
    let mut selected: Vec<Address> = deals.iter().map(|d| d.operator).collect();
    selected.sort();
    let mut expected = op_addr.clone();
    expected.sort();
    assert_eq!(selected, expected, "all three bidders are selected");
    for (i, a) in op_addr.iter().enumerate() {
        let s = ok("operator_status", creator.operator_status(*a).await);
        assert_eq!(s.free, eth(2000), "operator {i}: 1 ETH collateral locked");
    }

    // Commit the sealed hash, then reveal it; the local commitment equals the contract's.
    let result_hash = keccak256(b"the results folder");
    let sealed = sealed_hash(job, result_hash);
    let salts: Vec<B256> = (0..3u8).map(|i| keccak256([i, 42])).collect();
    for (i, op) in operators.iter().enumerate() {
        let c = commitment(job, op_addr[i], sealed, salts[i]);
        assert_eq!(
            c,
            ok(
                "commitment_of",
                op.commitment_of(job, op_addr[i], sealed, salts[i]).await
            )
        );
        let r = ok("commit_result", op.commit_result(job, c).await);
        gas.push((format!("commitResult #{}", i + 1), r.gas_used));
    }
    assert_eq!(
        ok("get_job", creator.get_job(job).await).state,
        JobState::Revealing
    );
    for (i, op) in operators.iter().enumerate() {
        let r = ok(
            "reveal_result",
            op.reveal_result(job, sealed, salts[i]).await,
        );
        gas.push((format!("revealResult #{}", i + 1), r.gas_used));
    }
    let done = ok("get_job", creator.get_job(job).await);
    assert_eq!(done.state, JobState::Verified);
    assert!(done.state.is_final() && !JobState::Revealing.is_final());
    assert_eq!(done.sealedResult, sealed);
    // Publishing the plain hash: a wrong one is refused, the right one is public.
    let wrong = operators[0]
        .publish_result(job, keccak256(b"another folder"))
        .await;
    let err = wrong.expect_err("a hash that does not seal to the accepted one");
    assert!(err.to_string().contains("NotTheResult"), "{err}");
    let r = ok(
        "publish_result",
        operators[0].publish_result(job, result_hash).await,
    );
    gas.push(("publishResult".into(), r.gas_used));

    // Money: winners are owed their bids, the creator the unused escrow; collateral is free.
    let escrow = max_price * U256::from(3);
    let paid: U256 = prices.iter().copied().sum();
    for (i, a) in op_addr.iter().enumerate() {
        assert_eq!(
            ok("withdrawable", creator.withdrawable(*a).await),
            prices[i],
            "operator {i} payout"
        );
        let s = ok("operator_status", creator.operator_status(*a).await);
        assert_eq!(s.free, eth(3000), "operator {i}: collateral unlocked");
    }
    assert_eq!(
        ok("withdrawable", creator.withdrawable(creator_addr).await),
        escrow - paid,
        "refund"
    );
    let market_balance = ok("balance", creator.balance(deployment.job_market).await);
    assert_eq!(
        market_balance, escrow,
        "the market holds exactly what it owes"
    );
    let registry_balance = ok(
        "balance",
        creator.balance(deployment.operator_registry).await,
    );
    assert_eq!(
        registry_balance,
        eth(9000),
        "the registry holds exactly the stakes"
    );

    // Claim one payout.
    let before = ok("balance", creator.balance(op_addr[0]).await);
    let r = ok("claim", operators[0].claim().await);
    let fee = U256::from(r.gas_used) * U256::from(r.effective_gas_price);
    assert_eq!(
        ok("balance", creator.balance(op_addr[0]).await),
        before + prices[0] - fee
    );
    assert_eq!(
        ok("withdrawable", creator.withdrawable(op_addr[0]).await),
        U256::ZERO
    );

    // Every event, read back through the follower.
    let mut follower = ok(
        "follower",
        EventFollower::new(
            &creator,
            MemoryCursorStore::default(),
            FollowerConfig {
                max_range: 7,
                ..Default::default()
            },
        ),
    );
    let head = ok("block_number", creator.block_number().await);
    let mut events = Vec::new();
    while follower.cursor().next_block <= head {
        match ok("poll", follower.poll().await) {
            Some(FollowerUpdate::Events(batch)) => {
                assert!(batch.to_block - batch.from_block < 7, "bounded ranges");
                events.extend(batch.events.clone());
                ok("ack", follower.ack(&FollowerUpdate::Events(batch)));
            }
            Some(FollowerUpdate::Reorg { to_block, .. }) => {
                panic!("{name}: unexpected reorg to {to_block}")
            }
            None => break,
        }
    }
    let names: Vec<&str> = events.iter().map(|e| e.event.name()).collect();
    eprintln!("{name}: events {names:?}");
    let mut want = vec!["MarketSet", "ShardMarketSet"];
    want.extend(["OperatorRegistered", "Staked", "Staked"].repeat(3));
    want.extend(["JobPosted", "BidPlaced", "BidPlaced", "BidPlaced"]);
    want.extend(["StakeLocked"; 3]);
    want.extend(["DealAccepted"; 3]);
    want.extend([
        "PhaseStarted",
        "ResultCommitted",
        "ResultCommitted",
        "ResultCommitted",
        "PhaseStarted",
    ]);
    want.extend(["ResultRevealed"; 3]);
    want.extend(["StakeUnlocked", "Paid"].repeat(3));
    want.extend(["Refunded", "JobVerified", "ResultPublished", "Claimed"]);
    assert_eq!(names, want, "{name}: event sequence");
    for w in events.windows(2) {
        assert!(
            (w[0].block_number, w[0].log_index) < (w[1].block_number, w[1].log_index),
            "chain order"
        );
    }
    let mut payments = BTreeMap::new();
    let mut refund = U256::ZERO;
    for e in &events {
        match &e.event {
            MarketEvent::Paid(p) => {
                assert_eq!(p.kind, PaymentKind::Execution);
                payments.insert(p.to, p.amount);
            }
            MarketEvent::Refunded(r) => {
                assert_eq!(r.creator, creator_addr);
                refund = r.amount;
            }
            MarketEvent::StakeUnlocked(u) => assert_eq!(U256::from(u.amount), eth(1000)),
            MarketEvent::PhaseStarted(p) => {
                assert!(matches!(p.state, JobState::Running | JobState::Revealing))
            }
            MarketEvent::JobVerified(v) => {
                assert_eq!(v.sealedHash, sealed);
                assert_eq!(v.winners, 3);
            }
            MarketEvent::ResultRevealed(r) => assert_eq!(r.sealedHash, sealed),
            MarketEvent::ResultPublished(p) => assert_eq!(p.resultHash, result_hash),
            MarketEvent::Claimed(c) => assert_eq!((c.account, c.amount), (op_addr[0], prices[0])),
            _ => {}
        }
        if let Some(id) = e.event.job_id() {
            assert_eq!(id, job);
        }
    }
    for (i, a) in op_addr.iter().enumerate() {
        assert_eq!(
            payments.get(a),
            Some(&prices[i]),
            "payment to operator {i} = its bid"
        );
    }
    assert_eq!(refund, escrow - paid, "refund = escrow − paid");

    // Gas per transaction of the lifecycle.
    let total: u64 = gas.iter().map(|(_, g)| g).sum();
    eprintln!("{name}: lifecycle gas per transaction");
    for (tx, g) in &gas {
        eprintln!("  {tx:<16} {g:>9}");
    }
    eprintln!("  {:<16} {total:>9}", "total");
}
