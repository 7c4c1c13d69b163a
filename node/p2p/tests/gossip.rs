//! Job announcements over gossipsub between real swarms on 127.0.0.1:
//! relaying along a line of nodes, validation, and scoring of a peer that
//! publishes junk.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{Node, eventually, tcp};
use shoal_p2p::{Config, Error, JobAnnouncement, NetworkId, P2p, PeerId};
use tokio::sync::broadcast;

const CHAIN: u64 = 31337;
const MARKET: &str = "0x5FbDB2315678afecb367f032d93F642f64180aa3";
const SPEC: &str = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy";

fn network() -> NetworkId {
    NetworkId {
        chain_id: CHAIN,
        market: MARKET.into(),
    }
}

fn job(id: u64, block: u64) -> JobAnnouncement {
    JobAnnouncement {
        chain_id: CHAIN,
        market: MARKET.to_lowercase(),
        job_id: id.to_string(),
        spec_cid: SPEC.into(),
        block,
    }
}

async fn member() -> Node {
    Node::start(Config {
        listen: vec![tcp()],
        network: Some(network()),
        ..Config::default()
    })
    .await
}

async fn link(from: &Node, to: &Node) {
    from.p2p.dial(to.addr().await).await.unwrap();
    let (f, t) = (from.p2p.peer_id(), to.p2p.peer_id());
    eventually(
        "both ends see each other on the topic",
        Duration::from_secs(10),
        || async { from.sees_on_topic(t).await && to.sees_on_topic(f).await },
    )
    .await;
}

/// Announces (a new message each time, so none is a duplicate) until `rx`
/// gets one from `from`; returns it.
async fn announce_until_received(
    from: &P2p,
    rx: &mut broadcast::Receiver<(PeerId, JobAnnouncement)>,
    job_id: u64,
) -> JobAnnouncement {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    for block in 1.. {
        from.announce_job(job(job_id, block)).await.unwrap();
        if let Ok(Ok((sender, a))) =
            tokio::time::timeout(Duration::from_millis(500), rx.recv()).await
        {
            assert_eq!(sender, from.peer_id());
            return a;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "announcement never arrived"
        );
    }
    unreachable!()
}

/// Nothing arrives on `rx` within `wait`.
async fn silent(rx: &mut broadcast::Receiver<(PeerId, JobAnnouncement)>, wait: Duration) {
    match tokio::time::timeout(wait, rx.recv()).await {
        Err(_) => {}
        Ok(got) => panic!("unexpected delivery: {got:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn announcement_travels_a_line_of_three_nodes() {
    let (a, b, c) = (member().await, member().await, member().await);
    // Announcing with nobody around is fine.
    a.p2p.announce_job(job(1, 1)).await.unwrap();
    link(&a, &b).await;
    link(&b, &c).await;
    assert!(
        !a.is_connected_to(c.p2p.peer_id()).await,
        "A and C must not be direct peers"
    );

    let mut at_b = b.p2p.job_announcements();
    let mut at_c = c.p2p.job_announcements();
    let got = announce_until_received(&a.p2p, &mut at_c, 42).await;
    assert_eq!(got.job_id, "42");
    assert_eq!(got.market, MARKET.to_lowercase());
    assert_eq!(got.spec_cid, SPEC);
    // B delivered it to its application too, before relaying.
    let (sender, at_b_got) = at_b.recv().await.unwrap();
    assert_eq!((sender, at_b_got.job_id.as_str()), (a.p2p.peer_id(), "42"));

    // What the sender refuses to send.
    let bad = JobAnnouncement {
        chain_id: 1,
        ..job(43, 1)
    };
    assert!(matches!(
        a.p2p.announce_job(bad).await,
        Err(Error::Announcement(_))
    ));
    let bad = JobAnnouncement {
        job_id: "0x2b".into(),
        ..job(43, 1)
    };
    assert!(matches!(
        a.p2p.announce_job(bad).await,
        Err(Error::Announcement(_))
    ));
    // Without a network there is no topic.
    let loner = Node::start(Config::default()).await;
    assert!(matches!(
        loner.p2p.announce_job(job(1, 1)).await,
        Err(Error::NoNetwork)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_publishing_junk_is_graylisted_and_never_heard() {
    // F (flooder) – B – C, and A – B.
    let (a, b, c, f) = (
        member().await,
        member().await,
        member().await,
        member().await,
    );
    link(&a, &b).await;
    link(&b, &c).await;
    link(&f, &b).await;
    let mut at_b = b.p2p.job_announcements();
    let mut at_c = c.p2p.job_announcements();

    // Honest traffic first: F's score at B starts at zero or above.
    announce_until_received(&a.p2p, &mut at_c, 1).await;
    while at_b.try_recv().is_ok() {}
    let before = b.p2p.peer_score(f.p2p.peer_id()).await.unwrap().unwrap();
    assert!(before >= 0.0, "{before}");

    let wrong_chain = serde_json::to_vec(&JobAnnouncement {
        chain_id: 1,
        ..job(2, 1)
    })
    .unwrap();
    let hex_id = serde_json::to_vec(&JobAnnouncement {
        job_id: "0xdeadbeef".into(),
        ..job(2, 1)
    })
    .unwrap();
    let bad_cid = serde_json::to_vec(&JobAnnouncement {
        spec_cid: "QmNotACid".into(),
        ..job(2, 1)
    })
    .unwrap();
    let junk: Vec<Vec<u8>> = vec![
        b"not json at all".to_vec(),
        br#"{"chain_id":31337}"#.to_vec(),
        wrong_chain,
        hex_id,
        bad_cid,
    ];
    for j in junk {
        f.p2p.publish_raw_for_tests(j).await.unwrap();
    }
    let f_id = f.p2p.peer_id();
    eventually(
        "B scores F below the graylist threshold",
        Duration::from_secs(10),
        || async {
            b.p2p
                .peer_score(f_id)
                .await
                .unwrap()
                .is_some_and(|s| s < -80.0)
        },
    )
    .await;
    let info = b.p2p.peers().await.unwrap();
    let f_info = info.iter().find(|p| p.peer_id == f_id).unwrap();
    assert!(f_info.score.unwrap() < -80.0, "{f_info:?}");
    // A keeps a good name.
    assert!(b.p2p.peer_score(a.p2p.peer_id()).await.unwrap().unwrap() >= 0.0);

    // Even a valid announcement from the graylisted F goes nowhere.
    f.p2p
        .publish_raw_for_tests(serde_json::to_vec(&job(3, 1)).unwrap())
        .await
        .unwrap();
    silent(&mut at_b, Duration::from_secs(3)).await;
    silent(&mut at_c, Duration::from_millis(100)).await;

    // While A's still do, through B to C.
    let got = announce_until_received(&a.p2p, &mut at_c, 4).await;
    assert_eq!(got.job_id, "4");
    let (sender, got) = at_b.recv().await.unwrap();
    assert_eq!((sender, got.job_id.as_str()), (a.p2p.peer_id(), "4"));
}
