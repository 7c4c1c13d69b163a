//! The event follower: restart from a persisted cursor, reorgs, the channel form.

mod common;

use std::time::Duration;

use shoal_chain::{
    Bytes, Capabilities, ChainClient, ChainEvent, Cursor, CursorStore, EventFollower,
    FollowerConfig, FollowerUpdate, JsonFileCursorStore, MarketEvent, MemoryCursorStore, U256,
};

use common::{Endpoint, dev_keys, eth};

fn ok<T, E: std::fmt::Display>(what: &str, r: Result<T, E>) -> T {
    r.unwrap_or_else(|e| panic!("{what}: {e}"))
}

fn caps() -> Capabilities {
    Capabilities {
        engines: 3,
        cpuMillicores: 1000,
        memoryMiB: 1024,
        diskGiB: 1,
        gpus: 0,
    }
}

fn config(max_range: u64) -> FollowerConfig {
    FollowerConfig {
        max_range,
        poll_interval: Duration::from_millis(50),
        ..Default::default()
    }
}

type Key = (u64, u64);

fn key(e: &ChainEvent) -> Key {
    (e.block_number, e.log_index)
}

/// Polls until the follower has read up to the head, acking every batch; returns the events.
async fn drain(f: &mut EventFollower, client: &ChainClient) -> Vec<ChainEvent> {
    let head = ok("head", client.block_number().await);
    let mut out = Vec::new();
    while f.cursor().next_block <= head {
        match ok("poll", f.poll().await) {
            Some(u @ FollowerUpdate::Events(_)) => {
                if let FollowerUpdate::Events(b) = &u {
                    out.extend(b.events.clone());
                }
                ok("ack", f.ack(&u));
            }
            Some(FollowerUpdate::Reorg { to_block, .. }) => {
                panic!("unexpected reorg to {to_block}")
            }
            None => break,
        }
    }
    out
}

/// Stop after acking part of the events (and reading one more batch without acking it), add
/// more events, restart from the cursor file: together exactly the events of a fresh read.
async fn restart(endpoint: &Endpoint) {
    let (client, _) = common::deployed(&endpoint.url()).await;
    let keys = dev_keys(5);
    let ops: Vec<ChainClient> = keys[1..5]
        .iter()
        .map(|k| client.with_signer(k.clone()))
        .collect();
    for (i, op) in ops.iter().enumerate().take(2) {
        ok(
            "register",
            op.register(Bytes::from(vec![b'p', i as u8]), caps(), eth(1000))
                .await,
        );
        ok("stake", op.stake(eth(100)).await);
    }
    let dir = ok("tempdir", tempfile::tempdir());
    let path = dir.path().join("cursor.json");

    let mut acked = Vec::new();
    {
        let mut f = ok(
            "follower",
            EventFollower::new(&client, JsonFileCursorStore::new(&path), config(2)),
        );
        for _ in 0..2 {
            let Some(u) = ok("poll", f.poll().await) else {
                panic!("expected a batch")
            };
            if let FollowerUpdate::Events(b) = &u {
                acked.extend(b.events.clone());
            }
            ok("ack", f.ack(&u));
        }
        // Read but never acknowledged: must come again after the restart.
        let _unacked = ok("poll", f.poll().await);
    }
    let saved = ok("load", JsonFileCursorStore::new(&path).load()).unwrap_or_default();
    assert!(
        saved.next_block > 0 && !saved.recent.is_empty(),
        "cursor persisted: {saved:?}"
    );

    for (i, op) in ops.iter().enumerate().skip(2) {
        ok(
            "register",
            op.register(Bytes::from(vec![b'p', i as u8]), caps(), eth(1000))
                .await,
        );
    }
    let mut f = ok(
        "follower",
        EventFollower::new(&client, JsonFileCursorStore::new(&path), config(2)),
    );
    assert_eq!(f.cursor(), &saved, "restarts at the persisted cursor");
    let after = drain(&mut f, &client).await;

    let mut fresh = ok(
        "follower",
        EventFollower::new(&client, MemoryCursorStore::default(), config(1000)),
    );
    let all = drain(&mut fresh, &client).await;
    let mut joined: Vec<Key> = acked.iter().chain(after.iter()).map(key).collect();
    let want: Vec<Key> = all.iter().map(key).collect();
    assert_eq!(
        joined,
        want,
        "{}: no gaps, no duplicates across the restart",
        endpoint.name()
    );
    joined.dedup();
    assert_eq!(joined.len(), want.len());
    let registered = all
        .iter()
        .filter(|e| matches!(e.event, MarketEvent::OperatorRegistered(_)))
        .count();
    assert_eq!(registered, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_anvil() {
    let Some(e) = common::start_anvil() else {
        return;
    };
    restart(&e).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_devchain() {
    restart(&common::start_devchain().await).await;
}

/// Blocks the follower delivered are replaced (snapshot, revert, other transactions): it
/// reports the reorg, rewinds and delivers the new chain's events.
async fn reorg(endpoint: &Endpoint) {
    let (client, _) = common::deployed(&endpoint.url()).await;
    let keys = dev_keys(3);
    let a = client.with_signer(keys[1].clone());
    let b = client.with_signer(keys[2].clone());
    ok(
        "register a",
        a.register(Bytes::from_static(b"a"), caps(), eth(1000))
            .await,
    );
    ok(
        "register b",
        b.register(Bytes::from_static(b"b"), caps(), eth(1000))
            .await,
    );
    let mut f = ok(
        "follower",
        EventFollower::new(&client, MemoryCursorStore::default(), config(1000)),
    );
    drain(&mut f, &client).await;
    let fork = ok("head", client.block_number().await);
    let snapshot = common::rpc(&client, "evm_snapshot", serde_json::json!([])).await;

    // The old branch: a stakes twice.
    ok("stake a", a.stake(eth(1)).await);
    ok("stake a", a.stake(eth(2)).await);
    let old = drain(&mut f, &client).await;
    assert_eq!(old.len(), 2);

    // The new branch, as long as the old one plus one block: b stakes.
    let reverted = common::rpc(&client, "evm_revert", serde_json::json!([snapshot])).await;
    assert_eq!(reverted, serde_json::json!(true));
    // Nonces moved back with the chain.
    a.tx_manager()
        .map(|t| t.resync_nonce())
        .unwrap_or_else(|e| panic!("{e}"))
        .await;
    ok("stake b", b.stake(eth(5)).await);
    ok("stake a", a.stake(eth(7)).await);
    ok("stake b", b.stake(eth(9)).await);

    match ok("poll", f.poll().await) {
        Some(FollowerUpdate::Reorg { to_block, cursor }) => {
            assert_eq!(
                to_block,
                fork,
                "{}: rewinds to the fork point",
                endpoint.name()
            );
            assert_eq!(cursor.next_block, fork + 1);
            ok("ack", f.ack(&FollowerUpdate::Reorg { to_block, cursor }));
        }
        other => panic!(
            "{}: expected a reorg notice, got {other:?}",
            endpoint.name()
        ),
    }
    let new = drain(&mut f, &client).await;
    let amounts: Vec<U256> = new
        .iter()
        .filter_map(|e| match &e.event {
            MarketEvent::Staked(s) => Some(U256::from(s.amount)),
            _ => None,
        })
        .collect();
    assert_eq!(
        amounts,
        vec![eth(5), eth(7), eth(9)],
        "{}: the new branch's events",
        endpoint.name()
    );
    assert!(new.iter().all(|e| e.block_number > fork));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reorg_anvil() {
    let Some(e) = common::start_anvil() else {
        return;
    };
    reorg(&e).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reorg_devchain() {
    reorg(&common::start_devchain().await).await;
}

/// The channel form: updates arrive through a bounded channel; the cursor is saved on ack only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawned_follower_persists_on_ack() {
    let endpoint = common::start_devchain().await;
    let (client, d) = common::deployed(&endpoint.url()).await;
    let op = client.with_signer(dev_keys(2)[1].clone());
    ok(
        "register",
        op.register(Bytes::from_static(b"p"), caps(), eth(1000))
            .await,
    );
    let dir = ok("tempdir", tempfile::tempdir());
    let path = dir.path().join("cursor.json");
    let f = ok(
        "follower",
        EventFollower::new(&client, JsonFileCursorStore::new(&path), config(1000)),
    );
    let (mut rx, task) = f.spawn(4);
    let first = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .ok()
        .flatten();
    let Some(delivery) = first else {
        panic!("no update")
    };
    let FollowerUpdate::Events(batch) = &delivery.update else {
        panic!("expected events")
    };
    assert!(
        batch
            .events
            .iter()
            .any(|e| matches!(e.event, MarketEvent::OperatorRegistered(_)))
    );
    let to = batch.to_block;
    let store = JsonFileCursorStore::new(&path);
    assert_eq!(
        ok("load", store.load()),
        None,
        "nothing saved before the ack"
    );
    delivery.ack();
    let mut saved: Option<Cursor> = None;
    for _ in 0..100 {
        saved = ok("load", store.load());
        if saved.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(saved.map(|c| c.next_block), Some(to + 1));
    assert!(d.deploy_block <= to);
    drop(rx);
    let ended = tokio::time::timeout(Duration::from_secs(10), task).await;
    assert!(
        matches!(ended, Ok(Ok(Ok(())))),
        "the follower stops when the receiver is dropped"
    );
}

/// With a confirmation depth, the newest blocks wait; a reorg deeper than the remembered hashes
/// is an error that says what to do, not a silent skip.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirmations_and_deep_reorg_devchain() {
    let endpoint = common::start_devchain().await;
    let (client, _) = common::deployed(&endpoint.url()).await;
    let op = client.with_signer(dev_keys(2)[1].clone());
    let cfg = FollowerConfig {
        confirmations: 2,
        remember: 1,
        ..config(1000)
    };
    let mut f = ok(
        "follower",
        EventFollower::new(&client, MemoryCursorStore::default(), cfg),
    );
    let snapshot = common::rpc(&client, "evm_snapshot", serde_json::json!([])).await;
    ok(
        "register",
        op.register(Bytes::from_static(b"p"), caps(), eth(1000))
            .await,
    );
    let registered_at = ok("head", client.block_number().await);
    let mut seen = Vec::new();
    while let Some(FollowerUpdate::Events(b)) = ok("poll", f.poll().await) {
        assert!(
            b.to_block + 2 <= registered_at,
            "stays 2 blocks behind the head"
        );
        seen.extend(b.events.clone());
        ok("ack", f.ack(&FollowerUpdate::Events(b)));
    }
    assert!(
        seen.iter()
            .all(|e| !matches!(e.event, MarketEvent::OperatorRegistered(_)))
    );
    common::rpc(&client, "evm_mine", serde_json::json!([])).await;
    common::rpc(&client, "evm_mine", serde_json::json!([])).await;
    let mut late = Vec::new();
    while let Some(FollowerUpdate::Events(b)) = ok("poll", f.poll().await) {
        late.extend(b.events.clone());
        ok("ack", f.ack(&FollowerUpdate::Events(b)));
    }
    assert!(
        late.iter()
            .any(|e| matches!(e.event, MarketEvent::OperatorRegistered(_))),
        "delivered once confirmed"
    );

    // Replace everything since before the registration; only one block hash is remembered.
    common::rpc(&client, "evm_revert", serde_json::json!([snapshot])).await;
    for _ in 0..5 {
        common::rpc(&client, "evm_mine", serde_json::json!([])).await;
    }
    match f.poll().await {
        Err(e @ shoal_chain::Error::DeepReorg { .. }) => {
            assert!(
                e.to_string().contains("raise the confirmation depth"),
                "{e}"
            )
        }
        other => panic!("expected DeepReorg, got {other:?}"),
    }
}
