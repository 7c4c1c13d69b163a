//! Bitswap between Shoal nodes and with a helia node (TCP + noise + yamux on
//! loopback), and Kademlia provider records. The helia side needs `node` and
//! the npm tooling `scripts/setup.sh` installs.

#![allow(clippy::unwrap_used)]

use std::{
    collections::BTreeMap,
    fs,
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::Arc,
    time::Duration,
};

use sha2_check::sha256_hex;
use shoal_p2p::{Config, P2p, start};
use shoal_store::{Blockstore, Profile, export};

mod sha2_check {
    /// sha256 of a file, via the store's own importer path (a raw leaf CID
    /// would do, but a plain digest is what the JS side prints).
    pub fn sha256_hex(path: &std::path::Path) -> String {
        let out = std::process::Command::new("sha256sum")
            .arg(path)
            .output()
            .unwrap();
        String::from_utf8(out.stdout)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .to_owned()
    }
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn require_node() {
    let ok = Command::new("node")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        ok,
        "this test needs `node` (Node 20) on PATH and `scripts/setup.sh`"
    );
    assert!(
        repo_root().join("node_modules/helia").is_dir(),
        "node_modules is missing: run `scripts/setup.sh`"
    );
}

fn sample(root: &Path) {
    fs::create_dir_all(root.join("sub/empty")).unwrap();
    fs::write(root.join("a.txt"), b"alpha").unwrap();
    let big: Vec<u8> = (0..5_500_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    fs::write(root.join("sub/big.bin"), big).unwrap();
    fs::write(root.join("sub/ünï.txt"), "ünï".as_bytes()).unwrap();
}

fn listing(root: &Path) -> BTreeMap<String, String> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        for e in fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(base).unwrap().to_string_lossy().into_owned();
            if p.is_dir() {
                out.insert(rel, "dir".into());
                walk(base, &p, out);
            } else {
                out.insert(rel, sha256_hex(&p));
            }
        }
    }
    let mut out = BTreeMap::new();
    out.insert(String::new(), "dir".into());
    walk(root, root, &mut out);
    out
}

async fn shoal_node(dir: &Path) -> (Arc<Blockstore>, P2p) {
    let store = Arc::new(Blockstore::open(dir).unwrap());
    let config = Config {
        listen: vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()],
        block_timeout: Duration::from_secs(20),
        ..Config::default()
    };
    let p2p = start(store.clone(), config).await.unwrap();
    (store, p2p)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_shoal_nodes_exchange_a_dag_and_find_providers() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    sample(&src);
    let (a_store, a) = shoal_node(&tmp.path().join("a")).await;
    let (b_store, b) = shoal_node(&tmp.path().join("b")).await;
    let root = a_store.add_path(&src, Profile::default()).unwrap().cid;
    a.provide(root).await.unwrap();

    let a_addr = a.listen_addrs().await.unwrap().remove(0);
    assert_eq!(b.dial(a_addr).await.unwrap(), a.peer_id());
    // Give identify and Kademlia a moment to exchange routing info.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let providers = b.find_providers(root).await.unwrap();
    assert!(providers.contains(&a.peer_id()), "{providers:?}");

    let n = b.fetch_dag(root).await.unwrap();
    assert_eq!(n as usize, a_store.dag(&root).unwrap().len());
    let out = tmp.path().join("out");
    export::export(&b_store, &root, &out).unwrap();
    assert_eq!(listing(&out), listing(&src));

    // An unknown CID: a bounded wait, then an error naming it.
    let missing = shoal_store::hash_reader(&b"nobody has this"[..], Profile::default()).unwrap();
    let quick = start(
        b_store.clone(),
        Config {
            block_timeout: Duration::from_secs(2),
            ..Config::default()
        },
    )
    .await
    .unwrap();
    quick
        .dial(a.listen_addrs().await.unwrap().remove(0))
        .await
        .unwrap();
    let err = quick.get_block(missing).await.unwrap_err();
    assert!(err.to_string().contains(&missing.to_string()), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helia_fetches_from_shoal() {
    require_node();
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    sample(&src);
    let (store, p2p) = shoal_node(&tmp.path().join("store")).await;
    let root = store.add_path(&src, Profile::default()).unwrap().cid;
    let addr = p2p.listen_addrs().await.unwrap().remove(0);
    let repo = repo_root();
    let out = tokio::process::Command::new("node")
        .current_dir(&repo)
        .arg(repo.join("tests/js/store-bitswap.mjs"))
        .args(["fetch", &addr.to_string(), &root.to_string()])
        .output();
    let out = tokio::time::timeout(Duration::from_secs(120), out)
        .await
        .expect("helia fetch timed out")
        .unwrap();
    assert!(
        out.status.success(),
        "helia fetch failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let got: BTreeMap<String, String> = serde_json::from_value(v["entries"].clone()).unwrap();
    assert_eq!(got, listing(&src));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shoal_fetches_from_helia() {
    require_node();
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    sample(&src);
    let repo = repo_root();
    let mut child = Command::new("node")
        .current_dir(&repo)
        .arg(repo.join("tests/js/store-bitswap.mjs"))
        .arg("serve")
        .arg(&src)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let v: serde_json::Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("helia said {line:?}: {e}"));
    let cid = shoal_store::parse_cid(v["cid"].as_str().unwrap()).unwrap();
    let addr = v["addrs"][0].as_str().unwrap().parse().unwrap();
    // helia imported with the same profile: the CID is the one Shoal computes.
    assert_eq!(
        cid,
        shoal_store::hash_path(&src, Profile::default()).unwrap()
    );

    let (store, p2p) = shoal_node(&tmp.path().join("store")).await;
    p2p.dial(addr).await.unwrap();
    let fetched = p2p.fetch_dag(cid).await;
    drop(child.stdin.take());
    let _ = child.wait();
    assert!(fetched.unwrap() > 0);
    let out = tmp.path().join("out");
    export::export(&store, &cid, &out).unwrap();
    let mut want = listing(&src);
    want.remove("");
    let mut got = listing(&out);
    got.remove("");
    assert_eq!(got, want);
}

/// An `ipfs://` job input the node does not hold comes from a peer over
/// Bitswap; one nobody holds fails after the bounded wait, naming the CID.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipfs_input_is_fetched_from_a_peer() {
    use shoal_store::{Providers, providers::IpfsProvider};
    use shoal_types::{InputSource, InputSpec};

    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    sample(&src);
    let (a_store, a) = shoal_node(&tmp.path().join("a")).await;
    let root = a_store.add_path(&src, Profile::default()).unwrap().cid;
    let b_store = Arc::new(Blockstore::open(tmp.path().join("b")).unwrap());
    let b = start(
        b_store.clone(),
        Config {
            block_timeout: Duration::from_secs(3),
            ..Config::default()
        },
    )
    .await
    .unwrap();
    b.dial(a.listen_addrs().await.unwrap().remove(0))
        .await
        .unwrap();

    let mut providers = Providers::new();
    providers.register(Box::new(IpfsProvider {
        store: b_store.clone(),
        fetcher: Some(Arc::new(b.clone())),
        timeout: Duration::from_secs(3),
    }));
    let work = tmp.path().join("work");
    let spec = |s: String, p: &str| InputSpec {
        source: s.parse::<InputSource>().unwrap(),
        path: p.into(),
        checksum: None,
    };
    let got = providers
        .mount(
            &spec(format!("ipfs://{root}/sub/big.bin"), "/inputs/big.bin"),
            &work,
        )
        .await
        .unwrap();
    assert_eq!(
        fs::read(got).unwrap(),
        fs::read(src.join("sub/big.bin")).unwrap()
    );

    let missing = shoal_store::hash_reader(&b"held by nobody"[..], Profile::default()).unwrap();
    let t = std::time::Instant::now();
    let err = providers
        .mount(&spec(format!("ipfs://{missing}"), "/inputs/none"), &work)
        .await
        .unwrap_err();
    assert!(err.to_string().contains(&missing.to_string()), "{err}");
    assert!(t.elapsed() < Duration::from_secs(15));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_two_hops_away_is_found_and_fetched_from() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    sample(&src);
    // A holds the DAG; B knows A; C knows only B.
    let (a_store, a) = shoal_node(&tmp.path().join("a")).await;
    let (_, b) = shoal_node(&tmp.path().join("b")).await;
    let (c_store, c) = shoal_node(&tmp.path().join("c")).await;
    let root = a_store.add_path(&src, Profile::default()).unwrap().cid;
    b.dial(a.listen_addrs().await.unwrap().remove(0))
        .await
        .unwrap();
    c.dial(b.listen_addrs().await.unwrap().remove(0))
        .await
        .unwrap();
    assert!(
        !c.peers()
            .await
            .unwrap()
            .iter()
            .any(|p| p.peer_id == a.peer_id()),
        "C must not start connected to A"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    a.provide(root).await.unwrap();

    // What the node does before Bitswap: look the root up on the DHT, dial the providers.
    let providers = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let p = c.find_providers(root).await.unwrap();
            if p.contains(&a.peer_id()) {
                break p;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("C finds A as a provider within 10 s");
    for p in providers {
        c.dial_peer(p).await.unwrap();
    }
    let n = tokio::time::timeout(Duration::from_secs(20), c.fetch_dag(root))
        .await
        .expect("fetched within 20 s")
        .unwrap();
    assert_eq!(n as usize, a_store.dag(&root).unwrap().len());
    let out = tmp.path().join("out");
    export::export(&c_store, &root, &out).unwrap();
    assert_eq!(listing(&out), listing(&src));
    // Dialling a connected peer, or oneself, is not an error.
    c.dial_peer(a.peer_id()).await.unwrap();
    c.dial_peer(c.peer_id()).await.unwrap();
}
