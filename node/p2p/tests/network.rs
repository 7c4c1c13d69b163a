//! Transports, private networks, peer bookkeeping and bootstrap re-dialing,
//! between real swarms on 127.0.0.1.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{Node, eventually, quic, tcp};
use multiaddr_ext::has;
use shoal_p2p::{Config, Error, Multiaddr, load_or_create_keypair, parse_psk, start};

mod multiaddr_ext {
    use shoal_p2p::Multiaddr;
    /// Whether `addr` contains the protocol named `name` (e.g. "quic-v1").
    pub fn has(addr: &Multiaddr, name: &str) -> bool {
        addr.iter().any(|p| p.tag() == name)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quic_only_nodes_connect_and_exchange_a_block() {
    let a = Node::start(Config {
        listen: vec![quic()],
        ..Config::default()
    })
    .await;
    let b = Node::start(Config {
        listen: vec![quic()],
        block_timeout: Duration::from_secs(10),
        ..Config::default()
    })
    .await;
    let a_addr = a.addr().await;
    assert!(has(&a_addr, "quic-v1"), "{a_addr}");
    assert!(!has(&a_addr, "tcp"), "{a_addr}");
    assert_eq!(b.p2p.dial(a_addr).await.unwrap(), a.p2p.peer_id());

    let cid = a.put(b"over quic");
    assert_eq!(b.p2p.get_block(cid).await.unwrap(), b"over quic");

    // Identify and ping fill in the peer's details.
    let a_id = a.p2p.peer_id();
    eventually(
        "identify and ping about A at B",
        Duration::from_secs(10),
        || async {
            b.p2p.peers().await.unwrap().iter().any(|p| {
                p.peer_id == a_id
                    && p.rtt.is_some()
                    && p.agent_version
                        .as_deref()
                        .is_some_and(|v| v.starts_with("shoal/"))
                    && p.protocol_version.is_some()
            })
        },
    )
    .await;
    let info = b.p2p.peers().await.unwrap();
    let a_info = info.iter().find(|p| p.peer_id == a_id).unwrap();
    assert!(a_info.addrs.iter().all(|x| has(x, "quic-v1")), "{a_info:?}");
    assert!(a_info.score.is_some(), "{a_info:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_and_quic_listeners_together() {
    let a = Node::start(Config {
        listen: vec![tcp(), quic()],
        ..Config::default()
    })
    .await;
    let addrs = a.p2p.local_addrs().await.unwrap();
    let me = a.p2p.peer_id().to_string();
    assert!(addrs.iter().any(|x| has(x, "tcp")), "{addrs:?}");
    assert!(addrs.iter().any(|x| has(x, "quic-v1")), "{addrs:?}");
    assert!(
        addrs
            .iter()
            .all(|x| x.to_string().ends_with(&format!("/p2p/{me}"))),
        "{addrs:?}"
    );
    // A TCP-only dialer reaches it over TCP.
    let b = Node::start(Config {
        listen: vec![tcp()],
        ..Config::default()
    })
    .await;
    let tcp_addr = addrs.iter().find(|x| has(x, "tcp")).unwrap().clone();
    assert_eq!(b.p2p.dial(tcp_addr).await.unwrap(), a.p2p.peer_id());
}

fn key(byte: u8) -> [u8; 32] {
    [byte; 32]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_network_admits_only_holders_of_the_key() {
    let psk = parse_psk(&format!(
        "/key/swarm/psk/1.0.0/\n/base16/\n{}\n",
        "ab".repeat(32)
    ))
    .unwrap();
    let private = |psk| Config {
        listen: vec![tcp()],
        psk,
        block_timeout: Duration::from_secs(5),
        ..Config::default()
    };
    let a = Node::start(private(Some(psk))).await;
    let b = Node::start(private(Some(psk))).await;
    let a_addr = a.addr().await;
    assert_eq!(b.p2p.dial(a_addr.clone()).await.unwrap(), a.p2p.peer_id());
    let cid = a.put(b"members only");
    assert_eq!(b.p2p.get_block(cid).await.unwrap(), b"members only");

    // Another key, and no key: the handshake fails, nothing connects.
    let other = Node::start(private(Some(key(0xcd)))).await;
    let open = Node::start(private(None)).await;
    for outsider in [&other, &open] {
        let t = std::time::Instant::now();
        let r =
            tokio::time::timeout(Duration::from_secs(30), outsider.p2p.dial(a_addr.clone())).await;
        assert!(
            !matches!(r, Ok(Ok(_))),
            "an outsider connected to the private network: {r:?}"
        );
        assert!(t.elapsed() < Duration::from_secs(30));
        assert!(!a.is_connected_to(outsider.p2p.peer_id()).await);
        assert!(!outsider.is_connected_to(a.p2p.peer_id()).await);
    }
    // And the private node cannot dial out to them either.
    let r = tokio::time::timeout(Duration::from_secs(30), a.p2p.dial(open.addr().await)).await;
    assert!(!matches!(r, Ok(Ok(_))), "{r:?}");
    // The members still talk.
    let cid = a.put(b"still members only");
    assert_eq!(b.p2p.get_block(cid).await.unwrap(), b"still members only");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_psk_with_a_quic_address_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(shoal_store::Blockstore::open(dir.path()).unwrap());
    let err = start(
        store.clone(),
        Config {
            listen: vec![tcp(), quic()],
            psk: Some(key(1)),
            ..Config::default()
        },
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::QuicWithPsk { .. }), "{err}");
    assert!(err.to_string().contains("quic-v1"), "{err}");
    let err = start(
        store,
        Config {
            listen: vec![tcp()],
            bootstrap: vec!["/ip4/127.0.0.1/udp/4001/quic-v1".parse().unwrap()],
            psk: Some(key(1)),
            ..Config::default()
        },
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::QuicWithPsk { .. }), "{err}");
}

/// B bootstraps from A; A goes away and comes back on the same address with
/// the same identity (loaded from its key file); B reconnects on its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_peer_is_redialed_after_it_restarts() {
    let keys = tempfile::tempdir().unwrap();
    let key_file = keys.path().join("node.key");
    let a_key = load_or_create_keypair(&key_file).unwrap();
    let a = Node::start(Config {
        listen: vec![tcp()],
        keypair: Some(a_key.clone()),
        ..Config::default()
    })
    .await;
    let a_id = a.p2p.peer_id();
    assert_eq!(a_id, a_key.public().to_peer_id());
    let a_addr = a.addr().await;
    let b = Node::start(Config {
        listen: vec![tcp()],
        bootstrap: vec![a_addr.clone()],
        redial_interval: Duration::from_millis(200),
        ..Config::default()
    })
    .await;
    assert!(
        b.is_connected_to(a_id).await,
        "bootstrap peer not dialed at start"
    );

    // Stop A: every handle dropped ends its event loop and its connections.
    drop(a);
    eventually("B notices A is gone", Duration::from_secs(10), || async {
        !b.is_connected_to(a_id).await
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;

    // A comes back on the same port, with the identity from its key file.
    let plain: Multiaddr = a_addr.iter().filter(|p| p.tag() != "p2p").collect();
    let a2 = Node::start(Config {
        listen: vec![plain],
        keypair: Some(load_or_create_keypair(&key_file).unwrap()),
        ..Config::default()
    })
    .await;
    assert_eq!(a2.p2p.peer_id(), a_id);
    eventually(
        "B re-dials its bootstrap peer",
        Duration::from_secs(15),
        || async { b.is_connected_to(a_id).await },
    )
    .await;
}
