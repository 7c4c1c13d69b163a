//! Replicated pinning on a real swarm (docs/pinning.md): five node processes
//! (`shoal-e2e-node`, as `shoal serve --config FILE` runs them) pin 100 CIDs at rf 2–3; one is
//! SIGKILLed and its copies are made again elsewhere within the grace period, every copy
//! re-verified block by block; it comes back without moving any allocation; another leaves
//! gracefully with never fewer than rmin copies; every node restarts with the pinset intact;
//! garbage collection of each node's blockstore keeps every DAG it holds.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use sha2::{Digest, Sha256};
use shoal_api::{PinPeerView, PinState, PinStatusView, PinView};
use shoal_devstack::{self as devstack, DevstackConfig};
use shoal_e2e::{NodeProcess, init_tracing, upload};

const NODE_BIN: &str = env!("CARGO_BIN_EXE_shoal-e2e-node");
const NODES: usize = 5;
const PINS: usize = 100;
/// Pins added before the leave, at rf 3–3.
const EXTRA: usize = 10;
/// Short, so the test sees a dead node's pins move.
const GRACE_SECS: u64 = 6;

async fn get<T: serde::de::DeserializeOwned>(url: &str) -> Result<T> {
    let resp = reqwest::Client::new()
        .get(url)
        .timeout(Duration::from_secs(10))
        .send()
        .await?;
    let status = resp.status();
    ensure!(
        status.is_success(),
        "GET {url}: {status} {}",
        resp.text().await?
    );
    Ok(resp.json().await?)
}

async fn post<T: serde::de::DeserializeOwned>(url: &str, body: serde_json::Value) -> Result<T> {
    let resp = reqwest::Client::new().post(url).json(&body).send().await?;
    let status = resp.status();
    ensure!(
        status.is_success(),
        "POST {url}: {status} {}",
        resp.text().await?
    );
    Ok(resp.json().await?)
}

async fn pins(api: &str) -> Result<Vec<PinView>> {
    get(&format!("{api}/api/v1/pins")).await
}

async fn my_peer_id(api: &str) -> Result<String> {
    let peers: Vec<PinPeerView> = get(&format!("{api}/api/v1/pinning/peers")).await?;
    peers
        .into_iter()
        .find(|p| p.me)
        .map(|p| p.peer_id)
        .context("no `me` in /api/v1/pinning/peers")
}

/// Polls `f` every 250 ms until it returns `Some`, for at most `timeout`.
async fn until<T, F, Fut>(timeout: Duration, what: &str, mut f: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    let mut last = String::new();
    loop {
        match f().await {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) => last = format!("{e:#}"),
        }
        if Instant::now() > deadline {
            bail!(
                "timed out after {} s waiting for {what}; last error: {last}",
                timeout.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Deterministic incompressible bytes.
fn blob(i: usize, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 32);
    let mut block = Sha256::digest(i.to_be_bytes()).to_vec();
    while out.len() < len {
        block = Sha256::digest(&block).to_vec();
        out.extend_from_slice(&block);
    }
    out.truncate(len);
    out
}

/// Every pin in `api`'s view has at least `n` live pinned copies.
async fn all_have(api: &str, n: u32, expect: usize) -> Result<Option<Vec<PinView>>> {
    let ps = pins(api).await?;
    let ok = ps.len() == expect && ps.iter().all(|p| p.pinned_copies >= n);
    Ok(ok.then_some(ps))
}

/// Downloads `cid` as a CAR from `api`, imports it into a fresh store (each block checked
/// against its CID) and walks the whole DAG.
async fn verify_copy(api: &str, cid: &str) -> Result<()> {
    let resp = reqwest::Client::new()
        .get(format!("{api}/api/v1/content/{cid}?format=car"))
        .send()
        .await?;
    ensure!(
        resp.status().is_success(),
        "{api} has no {cid}: {}",
        resp.status()
    );
    let car = resp.bytes().await?;
    let tmp = tempfile::tempdir()?;
    let store = shoal_store::Blockstore::open(tmp.path())?;
    let roots = shoal_store::car::import_car(&store, &mut &car[..])?;
    ensure!(
        roots.len() == 1 && roots[0].to_string() == cid,
        "{api}: roots {roots:?}"
    );
    store.dag(&roots[0])?;
    Ok(())
}

/// Every live pinned copy of every pin, re-verified from the node that holds it.
async fn verify_all(view_api: &str, apis: &BTreeMap<String, String>) -> Result<usize> {
    let mut checked = 0;
    for p in pins(view_api).await? {
        let st: PinStatusView = get(&format!("{view_api}/api/v1/pins/{}", p.cid)).await?;
        for s in st
            .peers
            .iter()
            .filter(|s| s.live && s.state == PinState::Pinned)
        {
            let api = apis.get(&s.peer_id).context("unknown peer")?;
            verify_copy(api, &p.cid)
                .await
                .with_context(|| format!("copy of {} on {}", p.cid, s.peer_id))?;
            checked += 1;
        }
        ensure!(
            st.pin.pinned_copies >= st.pin.replication_min,
            "{} has {} copies",
            p.cid,
            st.pin.pinned_copies
        );
    }
    Ok(checked)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_nodes_keep_100_pins_through_a_kill_a_leave_and_a_restart() -> Result<()> {
    init_tracing();
    let dir = tempfile::tempdir()?;
    let stack = devstack::start(DevstackConfig {
        nodes: NODES,
        base_dir: dir.path().to_path_buf(),
        external: (0..NODES).collect(),
        customize: Some(std::sync::Arc::new(|_, c: &mut shoal_node::NodeConfig| {
            c.bid.enabled = false;
            c.pinning.grace_period_secs = GRACE_SECS;
            c.pinning.heartbeat_interval_ms = 500;
            c.pinning.reconcile_interval_ms = 300;
            c.pinning.sync_interval_secs = 2;
            c.pinning.fetch_timeout_secs = 20;
            c.pinning.retry_secs = 2;
        })),
        ..Default::default()
    })
    .await?;
    let mut procs = Vec::new();
    for ext in stack.external() {
        procs.push(NodeProcess::start(Path::new(NODE_BIN), ext).await?);
    }
    let dirs: Vec<std::path::PathBuf> = stack
        .external()
        .iter()
        .map(|e| e.config.data_dir.clone())
        .collect();
    let r = scenario(&mut procs, &dirs).await;
    if r.is_err() {
        for (i, p) in procs.iter().enumerate() {
            eprintln!("---- node {i} ----\n{}", p.log_tail());
        }
    }
    r
}

async fn scenario(procs: &mut [NodeProcess], dirs: &[std::path::PathBuf]) -> Result<()> {
    let urls: Vec<String> = procs.iter().map(|p| p.api_url().to_owned()).collect();
    let mut by_peer = BTreeMap::new();
    let mut peer_of = Vec::new();
    for u in &urls {
        let id = my_peer_id(u).await?;
        by_peer.insert(id.clone(), u.clone());
        peer_of.push(id);
    }
    // Everyone hears everyone.
    for u in &urls {
        until(
            Duration::from_secs(60),
            "every node to see 5 live peers",
            move || async move {
                let ps: Vec<PinPeerView> = get(&format!("{u}/api/v1/pinning/peers")).await?;
                Ok((ps.iter().filter(|p| p.live).count() == NODES).then_some(()))
            },
        )
        .await?;
    }

    // 100 CIDs, uploaded to different nodes, every tenth of 2.5 MiB (3 blocks of 1 MiB and a
    // root), pinned through yet another node.
    let mut cids = Vec::new();
    for i in 0..PINS {
        let len = if i % 10 == 0 { 5 << 19 } else { 8192 + i };
        cids.push(upload(&urls[i % NODES], blob(i, len)).await?);
    }
    let t = Instant::now();
    for (i, cid) in cids.iter().enumerate() {
        let _: PinView = post(
            &format!("{}/api/v1/pins", urls[(i + 1) % NODES]),
            serde_json::json!({"cid": cid, "name": format!("blob-{i}"), "replicationMin": 2, "replicationMax": 3}),
        )
        .await?;
    }
    eprintln!(
        "{PINS} pins accepted in {:.2} s ({:.0} pins/s)",
        t.elapsed().as_secs_f64(),
        PINS as f64 / t.elapsed().as_secs_f64()
    );
    let u0 = urls[0].as_str();
    let settled = until(
        Duration::from_secs(120),
        "3 copies of every CID",
        move || all_have(u0, 3, PINS),
    )
    .await?;
    eprintln!(
        "all {PINS} CIDs have 3 copies after {:.1} s",
        t.elapsed().as_secs_f64()
    );
    // Every node has the same pinset.
    let settled_ref = &settled;
    for u in &urls[1..] {
        until(
            Duration::from_secs(30),
            "the same pinset everywhere",
            move || async move {
                let theirs = pins(u).await?;
                let same = theirs.len() == PINS
                    && theirs
                        .iter()
                        .zip(settled_ref)
                        .all(|(a, b)| a.cid == b.cid && a.allocations == b.allocations);
                Ok(same.then_some(()))
            },
        )
        .await?;
    }

    // ---- a node dies ----------------------------------------------------------------------
    let victim = 4;
    let victim_peer = peer_of[victim].clone();
    let held_by_victim = settled
        .iter()
        .filter(|p| p.allocations.contains(&victim_peer))
        .count();
    ensure!(
        held_by_victim > 20,
        "the victim holds only {held_by_victim} CIDs"
    );
    procs[victim].kill().await?;
    let killed = Instant::now();
    let min_seen = std::sync::atomic::AtomicU32::new(u32::MAX);
    let (min_ref, vp) = (&min_seen, victim_peer.as_str());
    let healed = until(
        Duration::from_secs(GRACE_SECS + 60),
        "3 live copies of every CID without the killed node",
        move || async move {
            let ps = pins(u0).await?;
            let low = ps.iter().map(|p| p.pinned_copies).min().unwrap_or(0);
            min_ref.fetch_min(low, std::sync::atomic::Ordering::Relaxed);
            let peers: Vec<PinPeerView> = get(&format!("{u0}/api/v1/pinning/peers")).await?;
            let victim_down = peers.iter().any(|p| p.peer_id == vp && !p.live);
            let ok = victim_down
                && ps
                    .iter()
                    .all(|p| p.pinned_copies >= 3 && !p.allocations.iter().any(|a| a == vp));
            Ok(ok.then_some(ps))
        },
    )
    .await?;
    let min_copies = min_seen.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!(
        "{held_by_victim} CIDs of the killed node re-replicated {:.1} s after the kill (grace {GRACE_SECS} s); fewest copies seen meanwhile {min_copies}",
        killed.elapsed().as_secs_f64()
    );
    ensure!(min_copies >= 2, "a CID fell to {min_copies} copies");
    let mut live_apis = by_peer.clone();
    live_apis.remove(&victim_peer);
    let checked = verify_all(&urls[0], &live_apis).await?;
    eprintln!("{checked} copies re-verified block by block");

    // ---- it comes back: no allocation moves, its extra copies go --------------------------
    procs[victim].restart().await?;
    until(
        Duration::from_secs(30),
        "the killed node to be live again",
        move || async move {
            let peers: Vec<PinPeerView> = get(&format!("{u0}/api/v1/pinning/peers")).await?;
            Ok(peers
                .iter()
                .any(|p| p.peer_id == vp && p.live)
                .then_some(()))
        },
    )
    .await?;
    until(
        Duration::from_secs(60),
        "the returned node to drop its extra copies",
        move || async move {
            let ps = pins(u0).await?;
            Ok(ps.iter().all(|p| p.pinned_copies == 3).then_some(()))
        },
    )
    .await?;
    let after_return = pins(&urls[0]).await?;
    for (a, b) in after_return.iter().zip(&healed) {
        ensure!(
            a.allocations == b.allocations,
            "{}: the return moved its allocation {:?} -> {:?}",
            a.cid,
            b.allocations,
            a.allocations
        );
    }

    // ---- a node leaves gracefully ---------------------------------------------------------
    // 10 more CIDs at rf 3–3: the leaver holds some of them and must wait for new copies
    // before it may go.
    for i in PINS..PINS + EXTRA {
        let cid = upload(&urls[i % NODES], blob(i, 8192 + i)).await?;
        let _: PinView = post(
            &format!("{}/api/v1/pins", urls[0]),
            serde_json::json!({"cid": cid, "name": format!("blob-{i}"), "replicationMin": 3, "replicationMax": 3}),
        )
        .await?;
    }
    until(
        Duration::from_secs(60),
        "3 copies of the rf 3 CIDs",
        move || all_have(u0, 3, PINS + EXTRA),
    )
    .await?;
    let leaver = 3;
    let leaver_peer = peer_of[leaver].clone();
    let _: serde_json::Value = post(
        &format!("{}/api/v1/node/leave", urls[leaver]),
        serde_json::json!({}),
    )
    .await?;
    let waits_for = pins(&urls[0])
        .await?
        .iter()
        .filter(|p| p.replication_min == 3 && p.allocations.contains(&leaver_peer))
        .count();
    ensure!(waits_for > 0, "the leaver holds none of the rf 3 CIDs");
    let started = Instant::now();
    let mut samples = 0;
    let mut fewest = u32::MAX;
    loop {
        let ps = pins(&urls[0]).await?;
        let low = ps.iter().map(|p| p.pinned_copies).min().unwrap_or(0);
        fewest = fewest.min(low);
        samples += 1;
        if let Some(p) = ps.iter().find(|p| p.pinned_copies < p.replication_min) {
            bail!(
                "during the leave {} had {} copies, below its rmin {} (sample {samples})",
                p.cid,
                p.pinned_copies,
                p.replication_min
            );
        }
        let exited = procs[leaver]
            .wait_exit(Duration::from_millis(200))
            .await
            .ok();
        if let Some(status) = exited {
            ensure!(status.success(), "the leaving node exited with {status}");
            break;
        }
        ensure!(
            started.elapsed() < Duration::from_secs(120),
            "the node did not leave within 120 s"
        );
    }
    eprintln!(
        "node {leaver} left after {:.1} s, waiting for new copies of {waits_for} rf 3 CIDs; {samples} samples, fewest copies {fewest}",
        started.elapsed().as_secs_f64()
    );
    let lp = leaver_peer.as_str();
    let after_leave = until(
        Duration::from_secs(60),
        "3 copies without the leaver",
        move || async move {
            let ps = pins(u0).await?;
            let ok = ps
                .iter()
                .all(|p| p.pinned_copies >= 3 && !p.allocations.iter().any(|a| a == lp));
            Ok(ok.then_some(ps))
        },
    )
    .await?;
    let mut live_apis = by_peer.clone();
    live_apis.remove(&leaver_peer);
    verify_all(&urls[0], &live_apis).await?;

    // ---- every node restarts --------------------------------------------------------------
    // A second for the last merges to be made durable.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let running: Vec<usize> = (0..NODES).filter(|i| *i != leaver).collect();
    for i in &running {
        procs[*i].kill().await?;
    }
    for i in &running {
        procs[*i].restart().await?;
    }
    let want: BTreeSet<(String, Vec<String>)> = after_leave
        .iter()
        .map(|p| (p.cid.clone(), p.allocations.clone()))
        .collect();
    for i in &running {
        // Straight from disk, before any gossip could fill a gap.
        let got: BTreeSet<(String, Vec<String>)> = pins(&urls[*i])
            .await?
            .into_iter()
            .map(|p| (p.cid, p.allocations))
            .collect();
        let missing: Vec<_> = want.difference(&got).take(3).collect();
        let extra: Vec<_> = got.difference(&want).take(3).collect();
        ensure!(
            got == want,
            "node {i}'s pinset after the restart differs: {} entries; missing {missing:?}, unexpected {extra:?}",
            got.len()
        );
    }
    until(
        Duration::from_secs(GRACE_SECS + 60),
        "3 copies after the restart",
        move || async move { all_have(u0, 3, PINS + EXTRA).await.map(|o| o.map(|_| ())) },
    )
    .await?;
    // Nothing moved: the allocations are those before the restart.
    let end: BTreeSet<(String, Vec<String>)> = pins(&urls[0])
        .await?
        .into_iter()
        .map(|p| (p.cid, p.allocations))
        .collect();
    ensure!(end == want, "allocations moved after the restart");
    verify_all(&urls[0], &live_apis).await?;

    // ---- garbage collection keeps every pinned DAG ----------------------------------------
    // Each node stopped, its blockstore collected: what it reports pinned is still whole.
    let mut held: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for p in pins(&urls[0]).await? {
        let st: PinStatusView = get(&format!("{}/api/v1/pins/{}", urls[0], p.cid)).await?;
        for s in st
            .peers
            .iter()
            .filter(|s| s.state == PinState::Pinned && s.live)
        {
            held.entry(s.peer_id.clone())
                .or_default()
                .push(p.cid.clone());
        }
    }
    for i in &running {
        procs[*i].kill().await?;
        let store = shoal_store::Blockstore::open(dirs[*i].join("blocks"))?;
        let stats = store.gc()?;
        let mine = held
            .get(&peer_of[*i])
            .map(Vec::as_slice)
            .unwrap_or_default();
        ensure!(!mine.is_empty(), "node {i} holds nothing");
        for cid in mine {
            store
                .dag(&shoal_store::parse_cid(cid)?)
                .with_context(|| format!("node {i} lost {cid} to GC"))?;
        }
        eprintln!(
            "node {i}: GC removed {} blocks, kept {}; its {} pinned CIDs are whole",
            stats.removed,
            stats.kept,
            mine.len()
        );
    }
    Ok(())
}
