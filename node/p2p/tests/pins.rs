//! The pinset topic between real swarms on 127.0.0.1: messages reach a peer two hops away
//! with their signed author, a re-send of the same bytes is not an error, oversized messages
//! are refused, and a swarm without a network has no topic.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{Node, eventually, tcp};
use shoal_p2p::{Config, Error, MAX_PIN_MESSAGE_BYTES, NetworkId};

async fn member() -> Node {
    Node::start(Config {
        listen: vec![tcp()],
        network: Some(NetworkId {
            chain_id: 31337,
            market: "0x5fbdb2315678afecb367f032d93f642f64180aa3".into(),
        }),
        ..Config::default()
    })
    .await
}

#[tokio::test]
async fn pin_messages_travel_along_a_line_with_their_author() {
    let (a, b, c) = (member().await, member().await, member().await);
    b.p2p.dial(a.addr().await).await.unwrap();
    c.p2p.dial(b.addr().await).await.unwrap();
    eventually(
        "a line a - b - c on the topics",
        Duration::from_secs(10),
        || async {
            b.sees_on_topic(a.p2p.peer_id()).await && c.sees_on_topic(b.p2p.peer_id()).await
        },
    )
    .await;
    let mut rx = c.p2p.pin_messages();
    // Retry until the mesh carries it; each payload is new, so none is a duplicate.
    let mut n = 0u32;
    let got = loop {
        n += 1;
        a.p2p
            .publish_pins(format!("{{\"hello\":{n}}}").into_bytes())
            .await
            .unwrap();
        if let Ok(Ok(m)) = tokio::time::timeout(Duration::from_millis(500), rx.recv()).await {
            break m;
        }
        assert!(n < 40, "no pin message reached c");
    };
    assert_eq!(got.0, a.p2p.peer_id(), "the signed author, not the relay");
    assert!(got.1.starts_with(b"{\"hello\":"));
    // The same bytes again: not an error (gossipsub drops the duplicate).
    a.p2p.publish_pins(got.1.clone()).await.unwrap();
    let big = vec![b'x'; MAX_PIN_MESSAGE_BYTES + 1];
    assert!(matches!(
        a.p2p.publish_pins(big).await,
        Err(Error::Gossip(_))
    ));
}

#[tokio::test]
async fn without_a_network_there_is_no_pin_topic() {
    let n = Node::start(Config {
        listen: vec![tcp()],
        ..Config::default()
    })
    .await;
    assert!(matches!(
        n.p2p.publish_pins(b"{}".to_vec()).await,
        Err(Error::NoNetwork)
    ));
}

/// Two members publishing byte-identical pin messages (heartbeats of two fresh nodes on one
/// disk are) both reach a third: the message id includes the author on this topic.
#[tokio::test]
async fn identical_pin_messages_from_two_authors_both_arrive() {
    let (a, b, c) = (member().await, member().await, member().await);
    a.p2p.dial(c.addr().await).await.unwrap();
    b.p2p.dial(c.addr().await).await.unwrap();
    eventually("a and b on c's topic", Duration::from_secs(10), || async {
        c.sees_on_topic(a.p2p.peer_id()).await && c.sees_on_topic(b.p2p.peer_id()).await
    })
    .await;
    let mut rx = c.p2p.pin_messages();
    // Without the author in the id, c keeps only the first copy of each payload.
    let mut authors = std::collections::HashSet::new();
    for n in 0..40u32 {
        let same = format!("{{\"beat\":{n}}}").into_bytes();
        a.p2p.publish_pins(same.clone()).await.unwrap();
        b.p2p.publish_pins(same.clone()).await.unwrap();
        authors.clear();
        while let Ok(Ok(m)) = tokio::time::timeout(Duration::from_millis(300), rx.recv()).await {
            if m.1 == same {
                authors.insert(m.0);
            }
        }
        if authors.len() == 2 {
            return;
        }
    }
    panic!("only {authors:?} arrived");
}
