//! The running pinset: merges what peers gossip, sends heartbeats and anti-entropy, fetches
//! and unpins what this node is allocated, re-allocates the CIDs it is responsible for, and
//! carries out a graceful leave (docs/pinning.md).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use shoal_api::{
    LeaveView, LeaveWait, PeerPinStatus, PinPeerView, PinRequest, PinState, PinStatusView, PinView,
    now_secs,
};
use shoal_p2p::P2p;
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;

use super::alloc::{self, Candidate};
use super::config::PinningConfig;
use super::db::{Held, PinDb};
use shoal_types::Constraint;

use super::state::{
    MAX_LABELS, MAX_MESSAGE_BYTES, MAX_NAME_BYTES, Peer, PinCid, PinEntry, PinSet, StatusEntry,
};
use super::wire::{Heartbeat, Message, chunks};
use crate::content::Content;
use crate::error::{Error, Result};

/// Least time between two flushes of pin and status changes to the swarm when changes come
/// one after another (each flush is a signed gossip message every peer checks).
const FLUSH_GAP: Duration = Duration::from_millis(250);

/// What this node knows of another.
#[derive(Debug, Clone)]
struct Seen {
    last: Instant,
    free: u64,
    leaving: bool,
    gone: bool,
    labels: BTreeMap<String, String>,
    /// The pins digest of its last heartbeat, and ours when it arrived.
    digests: (String, String),
}

#[derive(Debug, Default)]
struct Inner {
    set: PinSet,
    held: BTreeMap<PinCid, Held>,
    peers: HashMap<Peer, Seen>,
    fetching: HashSet<PinCid>,
    retry_at: HashMap<PinCid, Instant>,
    leaving: bool,
    left: bool,
    outbox_pins: Vec<PinEntry>,
    outbox_status: Vec<StatusEntry>,
    /// Unsaved merges from peers.
    dirty_pins: Vec<PinEntry>,
    dirty_status: Vec<StatusEntry>,
    pins_digest: Option<String>,
    last_full_sync: Option<Instant>,
    last_status_sync: Option<Instant>,
    wants_sent: HashMap<Peer, Instant>,
    send_full: bool,
    send_own_status: bool,
    /// Peers to ask for their status entries.
    wants: Vec<Peer>,
    seq: u64,
    /// Free bytes, as last measured for a heartbeat.
    my_free: u64,
    last_durable: Option<Instant>,
    /// A commit since the last durable one was not durable.
    undurable: bool,
    /// Local pin writes so far (see `Pinning::durable`).
    written: u64,
}

/// The pinset of one node. Shared by the API handlers and the pinning task.
pub(crate) struct Pinning {
    me: Peer,
    cfg: PinningConfig,
    p2p: P2p,
    content: Content,
    db: Arc<PinDb>,
    /// How many local pin writes are known durable (group commit: one fsync for every write
    /// made while the previous one ran).
    durable: tokio::sync::Mutex<u64>,
    data_dir: PathBuf,
    inner: Mutex<Inner>,
    wake: Notify,
    started: Instant,
    fetches: Arc<Semaphore>,
    stop: CancellationToken,
    nonce: std::sync::atomic::AtomicU64,
    /// This node's `[labels]`.
    labels: BTreeMap<String, String>,
}

fn lock(m: &Mutex<Inner>) -> MutexGuard<'_, Inner> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Pinning {
    /// Opens the pinset saved in `data_dir/pins.redb`. `stop` ends the node after a leave.
    pub(crate) fn open(
        cfg: PinningConfig,
        labels: BTreeMap<String, String>,
        p2p: P2p,
        content: Content,
        data_dir: PathBuf,
        stop: CancellationToken,
    ) -> Result<Self> {
        let db = PinDb::open(&data_dir.join("pins.redb"))?;
        let (set, held) = db.load()?;
        tracing::info!(pins = set.pins.len(), held = held.len(), "pinset loaded");
        Ok(Self {
            me: Peer(p2p.peer_id()),
            fetches: Arc::new(Semaphore::new(cfg.max_concurrent_fetches.max(1))),
            cfg,
            p2p,
            content,
            db: Arc::new(db),
            durable: tokio::sync::Mutex::new(0),
            data_dir,
            inner: Mutex::new(Inner {
                set,
                held,
                ..Inner::default()
            }),
            wake: Notify::new(),
            started: Instant::now(),
            stop,
            labels: labels
                .into_iter()
                .filter(|(k, v)| k.len() + v.len() <= 128)
                .take(MAX_LABELS)
                .collect(),
            // Distinct from an earlier run's nonces.
            nonce: std::sync::atomic::AtomicU64::new(now_nanos()),
        })
    }

    fn nonce(&self) -> u64 {
        self.nonce
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    // ---- liveness -------------------------------------------------------------------------

    fn is_live(&self, inner: &Inner, p: Peer, now: Instant) -> bool {
        if p == self.me {
            return !inner.left;
        }
        match inner.peers.get(&p) {
            Some(s) => !s.gone && now.duration_since(s.last) <= self.cfg.grace(),
            // Named in the state but not heard since this node started: live until this
            // node has listened for a whole grace period.
            None => now.duration_since(self.started) <= self.cfg.grace(),
        }
    }

    /// Whether this node is the current sync period's sender of whole maps: of itself and the
    /// peers heard within the grace period, the one whose hash with the period's number is
    /// lowest (periods of `sync_interval_secs` on the wall clock).
    fn sync_turn(&self, inner: &Inner, now: Instant) -> bool {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let period = secs / self.cfg.sync().as_secs().max(1);
        let rank = |p: &Peer| {
            alloy::primitives::keccak256(
                [period.to_be_bytes().as_slice(), &p.0.to_bytes()].concat(),
            )
        };
        let mine = rank(&self.me);
        !inner
            .peers
            .keys()
            .filter(|p| self.heard(inner, **p, now))
            .any(|p| rank(p) < mine)
    }

    /// Another peer whose heartbeat arrived within the grace period.
    fn heard(&self, inner: &Inner, p: Peer, now: Instant) -> bool {
        p != self.me
            && inner
                .peers
                .get(&p)
                .is_some_and(|s| !s.gone && now.duration_since(s.last) <= self.cfg.grace())
    }

    /// What views call live: this node until it left, others when heard within the grace
    /// period (never merely presumed).
    fn shown_live(&self, inner: &Inner, p: Peer, now: Instant) -> bool {
        if p == self.me {
            return !inner.left;
        }
        self.heard(inner, p, now)
    }

    fn is_leaving(&self, inner: &Inner, p: Peer) -> bool {
        if p == self.me {
            return inner.leaving;
        }
        inner.peers.get(&p).is_some_and(|s| s.leaving)
    }

    fn free_bytes(&self) -> u64 {
        let used = || -> u64 { walk_size(&self.data_dir.join("blocks")) };
        match self.cfg.capacity_bytes {
            Some(cap) => cap.saturating_sub(used()),
            None => rustix::fs::statvfs(&self.data_dir)
                .map(|s| s.f_bavail.saturating_mul(s.f_frsize))
                .unwrap_or(0),
        }
    }

    /// Peers that may get new allocations of a pin with `constraints`: live, heard from (or
    /// this node), not leaving, labels matching.
    fn eligible(
        &self,
        inner: &Inner,
        now: Instant,
        my_free: u64,
        constraints: &[Constraint],
    ) -> Vec<Candidate> {
        let me = (!inner.leaving && !inner.left)
            .then(|| (Candidate::new(self.me, Some(my_free)), &self.labels));
        let others = inner
            .peers
            .iter()
            .filter(|(p, s)| !s.leaving && self.is_live(inner, **p, now))
            .map(|(p, s)| (Candidate::new(*p, Some(s.free)), &s.labels));
        alloc::placeable(me.into_iter().chain(others), constraints)
    }

    // ---- local writes ---------------------------------------------------------------------

    /// Writes a local change of a pin; [`Pinning::make_durable`] then waits for the disk.
    fn write_pin(&self, inner: &mut Inner, mut e: PinEntry) -> Result<PinEntry> {
        e.version = inner.set.tick(self.me);
        inner.set.merge_pin(e.clone());
        inner.pins_digest = None;
        self.db
            .save(std::slice::from_ref(&e), &[], inner.set.clock, false)?;
        inner.written += 1;
        Ok(e)
    }

    /// Makes every local pin write so far durable: one durable commit covers the writes made
    /// before it, so concurrent callers share an fsync.
    async fn make_durable(&self) -> Result<()> {
        let want = lock(&self.inner).written;
        let mut done = self.durable.lock().await;
        if *done >= want {
            return Ok(());
        }
        let (covered, clock) = {
            let inner = lock(&self.inner);
            (inner.written, inner.set.clock)
        };
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || db.save(&[], &[], clock, true))
            .await
            .map_err(|e| Error::Pinning(format!("saving the pinset was interrupted: {e}")))??;
        *done = covered;
        Ok(())
    }

    fn set_status(&self, inner: &mut Inner, cid: PinCid, state: PinState, message: Option<String>) {
        let same = inner
            .set
            .status
            .get(&cid)
            .and_then(|m| m.get(&self.me))
            .is_some_and(|e| e.state == state && e.message == message);
        if same {
            return;
        }
        let mut message = message;
        if let Some(m) = &mut message {
            truncate(m, MAX_MESSAGE_BYTES);
        }
        let lamport = inner.set.tick(self.me).lamport;
        let e = StatusEntry {
            cid,
            peer: self.me,
            state,
            message,
            updated_at: now_secs(),
            lamport,
        };
        inner.set.merge_status(e.clone());
        inner.dirty_status.push(e.clone());
        inner.outbox_status.push(e);
    }

    /// Whether the pinset holds `cid` (not removed) with at least this replication: adding it
    /// again would only bump its version and cost the swarm a message.
    pub(crate) fn covers(&self, cid: &cid::Cid, rmin: u32, rmax: u32) -> bool {
        lock(&self.inner)
            .set
            .pins
            .get(&PinCid(*cid))
            .is_some_and(|e| !e.deleted && e.rmin >= rmin && e.rmax >= rmax)
    }

    /// `pin add`: allocates and gossips the pin; an existing pin gets the new name and
    /// replication and keeps its allocations where it can.
    pub(crate) async fn add(&self, req: PinRequest) -> Result<PinView> {
        let cid = PinCid(
            shoal_store::parse_cid(req.cid.trim())
                .map_err(|e| Error::PinRequest(format!("`{}` is not a CID: {e}", req.cid)))?,
        );
        let rmin = req
            .replication_min
            .unwrap_or(self.cfg.default_replication_min);
        let rmax = req
            .replication_max
            .unwrap_or(self.cfg.default_replication_max.max(rmin));
        if let Some(n) = &req.name
            && n.len() > MAX_NAME_BYTES
        {
            return Err(Error::PinRequest(format!(
                "the name is {} bytes; at most {MAX_NAME_BYTES}",
                n.len()
            )));
        }
        let constraints = req
            .constraints
            .iter()
            .map(|c| {
                c.parse::<Constraint>()
                    .map_err(|e| Error::PinRequest(format!("constraint `{c}`: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        let entry = {
            let mut inner = lock(&self.inner);
            if inner.leaving || inner.left {
                return Err(Error::PinRequest(
                    "this node is leaving the swarm; send the pin to another node".into(),
                ));
            }
            let now = Instant::now();
            let eligible = self.eligible(&inner, now, inner.my_free, &constraints);
            let mut e = PinEntry {
                cid,
                name: req.name.clone().filter(|n| !n.is_empty()),
                rmin,
                rmax,
                allocations: Vec::new(),
                constraints,
                deleted: false,
                version: inner.set.tick(self.me),
            };
            e.check().map_err(Error::PinRequest)?;
            if eligible.len() < rmin as usize {
                return Err(Error::NotEnoughPeers {
                    needed: rmin,
                    eligible: eligible.len(),
                });
            }
            e.allocations = match inner.set.pins.get(&cid).filter(|p| !p.deleted) {
                Some(old) => {
                    if e.name.is_none() {
                        e.name = old.name.clone();
                    }
                    let mut kept = old.allocations.clone();
                    kept.truncate(rmax as usize);
                    let tmp = PinEntry {
                        allocations: kept.clone(),
                        ..e.clone()
                    };
                    let holders = self.holders(&inner, cid, now);
                    alloc::reallocate(&tmp, &eligible, &holders).unwrap_or(kept)
                }
                None => {
                    alloc::allocate(cid, rmin, rmax, &eligible).ok_or(Error::NotEnoughPeers {
                        needed: rmin,
                        eligible: eligible.len(),
                    })?
                }
            };
            let e = self.write_pin(&mut inner, e)?;
            (self.view(&inner, &e, now), e)
        };
        let (entry, written) = entry;
        self.make_durable().await?;
        let mine = written.allocations.contains(&self.me);
        let msg = Message::Pins {
            nonce: self.nonce(),
            entries: vec![written],
        };
        self.publish(msg.encode()).await;
        if mine {
            self.wake.notify_one();
        }
        Ok(entry)
    }

    /// `pin rm`: writes a tombstone; every node holding it for the pinset unpins it.
    pub(crate) async fn remove(&self, cid: &str) -> Result<PinView> {
        let cid = self.known_cid(cid)?;
        let (view, entry) = {
            let mut inner = lock(&self.inner);
            let old = inner
                .set
                .pins
                .get(&cid)
                .filter(|p| !p.deleted)
                .cloned()
                .ok_or_else(|| Error::PinNotFound(cid.to_string()))?;
            let e = self.write_pin(
                &mut inner,
                PinEntry {
                    deleted: true,
                    ..old
                },
            )?;
            (self.view(&inner, &e, Instant::now()), e)
        };
        self.make_durable().await?;
        let msg = Message::Pins {
            nonce: self.nonce(),
            entries: vec![entry],
        };
        self.publish(msg.encode()).await;
        self.wake.notify_one();
        Ok(view)
    }

    fn known_cid(&self, cid: &str) -> Result<PinCid> {
        shoal_store::parse_cid(cid.trim())
            .map(PinCid)
            .map_err(|e| Error::PinRequest(format!("`{cid}` is not a CID: {e}")))
    }

    /// Starts a graceful leave (idempotent); its progress.
    pub(crate) async fn leave(&self) -> LeaveView {
        {
            let mut inner = lock(&self.inner);
            if !inner.leaving {
                tracing::info!(
                    "leaving the swarm: waiting for every held CID to have its copies elsewhere"
                );
            }
            inner.leaving = true;
        }
        self.send_heartbeat(false).await;
        self.wake.notify_one();
        self.leave_progress()
    }

    /// Whether a leave finished (the node stops, or stopped).
    pub(crate) fn has_left(&self) -> bool {
        lock(&self.inner).left
    }

    // ---- views ----------------------------------------------------------------------------

    fn holders(&self, inner: &Inner, cid: PinCid, now: Instant) -> BTreeSet<Peer> {
        inner
            .set
            .statuses_of(cid)
            .filter(|s| s.state == PinState::Pinned)
            .filter(|s| self.is_live(inner, s.peer, now) && !self.is_leaving(inner, s.peer))
            .map(|s| s.peer)
            .collect()
    }

    fn view(&self, inner: &Inner, e: &PinEntry, now: Instant) -> PinView {
        let pinned = inner
            .set
            .statuses_of(e.cid)
            .filter(|s| s.state == PinState::Pinned && self.shown_live(inner, s.peer, now))
            .count() as u32;
        let state_of = |p: &Peer| inner.set.state_of(e.cid, *p);
        let summary = if e.deleted {
            "removed"
        } else if pinned >= e.rmin {
            "pinned"
        } else if e
            .allocations
            .iter()
            .any(|p| state_of(p) == Some(PinState::Error))
        {
            "error"
        } else if e.allocations.iter().any(|p| {
            self.is_live(inner, *p, now) && matches!(state_of(p), None | Some(PinState::Pinning))
        }) {
            "pinning"
        } else {
            "under-replicated"
        };
        PinView {
            cid: e.cid.to_string(),
            name: e.name.clone(),
            replication_min: e.rmin,
            replication_max: e.rmax,
            allocations: e.allocations.iter().map(ToString::to_string).collect(),
            constraints: e.constraints.iter().map(ToString::to_string).collect(),
            pinned_copies: pinned,
            summary: summary.into(),
            removed: e.deleted,
            version: e.version.lamport,
            changed_by: e.version.peer.to_string(),
        }
    }

    /// Every pin (`removed`: tombstones too), in CID order.
    pub(crate) fn list(&self, removed: bool) -> Vec<PinView> {
        let inner = lock(&self.inner);
        let now = Instant::now();
        inner
            .set
            .pins
            .values()
            .filter(|e| removed || !e.deleted)
            .map(|e| self.view(&inner, e, now))
            .collect()
    }

    /// One pin and every node's status of it.
    pub(crate) fn status(&self, cid: &str) -> Result<PinStatusView> {
        let cid = self.known_cid(cid)?;
        let inner = lock(&self.inner);
        let now = Instant::now();
        let e = inner
            .set
            .pins
            .get(&cid)
            .ok_or_else(|| Error::PinNotFound(cid.to_string()))?;
        let mut peers: BTreeMap<Peer, PeerPinStatus> = BTreeMap::new();
        for s in inner.set.statuses_of(cid) {
            peers.insert(
                s.peer,
                PeerPinStatus {
                    peer_id: s.peer.to_string(),
                    state: s.state,
                    message: s.message.clone(),
                    allocated: e.allocations.contains(&s.peer),
                    live: self.shown_live(&inner, s.peer, now),
                    updated_at: s.updated_at,
                },
            );
        }
        for p in &e.allocations {
            peers.entry(*p).or_insert_with(|| PeerPinStatus {
                peer_id: p.to_string(),
                state: PinState::Pinning,
                message: Some("allocated; no report yet".into()),
                allocated: true,
                live: self.shown_live(&inner, *p, now),
                updated_at: 0,
            });
        }
        Ok(PinStatusView {
            pin: self.view(&inner, e, now),
            peers: peers.into_values().collect(),
        })
    }

    /// The members of the pinning swarm this node knows.
    pub(crate) fn peers(&self) -> Vec<PinPeerView> {
        let inner = lock(&self.inner);
        let now = Instant::now();
        let pinned_by = |p: Peer| {
            inner
                .set
                .status
                .values()
                .filter(|m| m.get(&p).is_some_and(|s| s.state == PinState::Pinned))
                .count() as u32
        };
        let mut out = vec![PinPeerView {
            peer_id: self.me.to_string(),
            me: true,
            live: !inner.left,
            leaving: inner.leaving,
            last_seen_secs: None,
            free_bytes: Some(inner.my_free),
            pinned: pinned_by(self.me),
            labels: self.labels.clone(),
        }];
        let mut others: Vec<_> = inner.peers.iter().collect();
        others.sort_by_key(|(p, _)| **p);
        for (p, s) in others {
            out.push(PinPeerView {
                peer_id: p.to_string(),
                me: false,
                live: self.shown_live(&inner, *p, now),
                leaving: s.leaving,
                last_seen_secs: Some(now.duration_since(s.last).as_secs()),
                free_bytes: Some(s.free),
                pinned: pinned_by(*p),
                labels: s.labels.clone(),
            });
        }
        out
    }

    /// What a leave still waits for.
    pub(crate) fn leave_progress(&self) -> LeaveView {
        let inner = lock(&self.inner);
        let waiting = self.leave_waits(&inner, Instant::now());
        LeaveView {
            leaving: inner.leaving,
            done: inner.left,
            waiting,
        }
    }

    fn leave_waits(&self, inner: &Inner, now: Instant) -> Vec<LeaveWait> {
        inner
            .held
            .keys()
            .filter_map(|cid| {
                let e = inner.set.pins.get(cid).filter(|e| !e.deleted)?;
                let elsewhere = inner
                    .set
                    .statuses_of(*cid)
                    .filter(|s| s.peer != self.me && s.state == PinState::Pinned)
                    .filter(|s| self.heard(inner, s.peer, now) && !self.is_leaving(inner, s.peer))
                    .count() as u32;
                (elsewhere < e.rmin).then(|| LeaveWait {
                    cid: cid.to_string(),
                    copies_elsewhere: elsewhere,
                    replication_min: e.rmin,
                })
            })
            .collect()
    }

    // ---- gossip ---------------------------------------------------------------------------

    async fn publish(&self, data: Vec<u8>) {
        if let Err(e) = self.p2p.publish_pins(data).await {
            tracing::debug!(error = %e, "cannot publish a pin message");
        }
    }

    fn on_message(&self, from: Peer, data: &[u8]) {
        let msg = match Message::decode(data) {
            Ok(m) => m,
            Err(why) => {
                tracing::debug!(peer = %from, %why, "dropping a pin message");
                return;
            }
        };
        let mut inner = lock(&self.inner);
        let now = Instant::now();
        match msg {
            Message::Heartbeat(h) => {
                let was_live = self.is_live(&inner, from, now) && inner.peers.contains_key(&from);
                let mine = self.pins_digest(&mut inner);
                let digests = (h.pins_digest.clone(), mine.clone());
                let settled = inner.peers.get(&from).is_some_and(|s| s.digests == digests);
                inner.peers.insert(
                    from,
                    Seen {
                        last: now,
                        free: h.free_bytes,
                        leaving: h.leaving,
                        gone: h.gone,
                        labels: h.labels.into_iter().take(MAX_LABELS).collect(),
                        digests,
                    },
                );
                if !was_live && !h.gone {
                    tracing::info!(peer = %from, "pinning peer is up");
                }
                if h.gone {
                    tracing::info!(peer = %from, "pinning peer left the swarm");
                }
                // While pins are being added the digests differ because messages are in
                // flight; were every node to answer with its whole map, the topic would flood
                // as the pinset grows. So a node answers when neither map changed since the
                // peer's last heartbeat (a real difference), or when it is this sync period's
                // sender.
                if h.pins_digest != mine
                    && (settled || self.sync_turn(&inner, now))
                    && due(inner.last_full_sync, now, self.cfg.sync())
                {
                    inner.send_full = true;
                }
                if h.status_digest != inner.set.status_digest(from)
                    && due(inner.wants_sent.get(&from).copied(), now, self.cfg.sync())
                {
                    inner.wants_sent.insert(from, now);
                    inner.outbox_want(from);
                }
            }
            Message::Pins { entries, .. } => {
                let mut changed = false;
                for e in entries {
                    if let Err(why) = e.check() {
                        tracing::debug!(peer = %from, %why, "dropping a pin entry");
                        continue;
                    }
                    if inner.set.merge_pin(e.clone()) {
                        inner.dirty_pins.push(e);
                        changed = true;
                    }
                }
                if changed {
                    inner.pins_digest = None;
                    self.wake.notify_one();
                }
            }
            Message::Status { entries, .. } => {
                for e in entries {
                    // Only the owner speaks for its status.
                    if e.peer != from || e.check().is_err() {
                        continue;
                    }
                    if inner.set.merge_status(e.clone()) {
                        inner.dirty_status.push(e);
                    }
                }
            }
            Message::Want { peer, .. } => {
                if peer == self.me && due(inner.last_status_sync, now, self.cfg.sync()) {
                    inner.send_own_status = true;
                }
            }
        }
    }

    fn pins_digest(&self, inner: &mut Inner) -> String {
        if let Some(d) = &inner.pins_digest {
            return d.clone();
        }
        let d = inner.set.pins_digest();
        inner.pins_digest = Some(d.clone());
        d
    }

    async fn send_heartbeat(&self, gone: bool) {
        let free = self.free_bytes();
        let msg = {
            let mut inner = lock(&self.inner);
            inner.my_free = free;
            inner.seq += 1;
            Message::Heartbeat(Heartbeat {
                seq: inner.seq,
                free_bytes: free,
                leaving: inner.leaving,
                gone,
                pins_digest: self.pins_digest(&mut inner),
                status_digest: inner.set.status_digest(self.me),
                labels: self.labels.clone(),
            })
        };
        self.publish(msg.encode()).await;
    }

    /// Sends what is queued: changed entries, and full state when asked.
    async fn flush(&self) {
        let now = Instant::now();
        let out = {
            let mut inner = lock(&self.inner);
            let mut out = Vec::new();
            if inner.send_full {
                inner.send_full = false;
                inner.last_full_sync = Some(now);
                inner.outbox_pins.clear();
                let all: Vec<PinEntry> = inner.set.pins.values().cloned().collect();
                out.extend(chunks(&all, |entries| Message::Pins {
                    nonce: self.nonce(),
                    entries,
                }));
            } else if !inner.outbox_pins.is_empty() {
                let pins = std::mem::take(&mut inner.outbox_pins);
                out.extend(chunks(&pins, |entries| Message::Pins {
                    nonce: self.nonce(),
                    entries,
                }));
            }
            if inner.send_own_status {
                inner.send_own_status = false;
                inner.last_status_sync = Some(now);
                inner.outbox_status.clear();
                let mine: Vec<StatusEntry> = inner
                    .set
                    .status
                    .values()
                    .filter_map(|m| m.get(&self.me).cloned())
                    .collect();
                out.extend(chunks(&mine, |entries| Message::Status {
                    nonce: self.nonce(),
                    entries,
                }));
            } else if !inner.outbox_status.is_empty() {
                let st = std::mem::take(&mut inner.outbox_status);
                out.extend(chunks(&st, |entries| Message::Status {
                    nonce: self.nonce(),
                    entries,
                }));
            }
            for p in std::mem::take(&mut inner.wants) {
                out.push(
                    Message::Want {
                        nonce: self.nonce(),
                        peer: p,
                    }
                    .encode(),
                );
            }
            out
        };
        for m in out {
            self.publish(m).await;
        }
    }

    /// Saves merges from peers and this node's status changes.
    fn save_dirty(&self) {
        let (pins, status, clock, durable) = {
            let mut inner = lock(&self.inner);
            // At most a second of merges is lost in a crash (anti-entropy brings it back).
            let now = Instant::now();
            let durable = due(inner.last_durable, now, Duration::from_secs(1));
            let nothing = inner.dirty_pins.is_empty() && inner.dirty_status.is_empty();
            if nothing && !(inner.undurable && durable) {
                return;
            }
            if durable {
                inner.last_durable = Some(now);
            }
            inner.undurable = !durable;
            (
                std::mem::take(&mut inner.dirty_pins),
                std::mem::take(&mut inner.dirty_status),
                inner.set.clock,
                durable,
            )
        };
        if let Err(e) = self.db.save(&pins, &status, clock, durable) {
            tracing::warn!(error = %e, "cannot save the pinset");
        }
    }

    // ---- reconcile ------------------------------------------------------------------------

    /// One pass: start fetches, unpin what is no longer ours, re-allocate what this node is
    /// responsible for, finish a leave.
    /// `full`: also re-allocate (each tick); a wake-up (a merge, a finished fetch) only starts
    /// fetches and unpins.
    fn reconcile(self: &Arc<Self>, spawn: &impl Fn(PinCid, Vec<Peer>), full: bool) {
        let now = Instant::now();
        let mut unpin = Vec::new();
        let mut fetch = Vec::new();
        let mut realloc = Vec::new();
        {
            let mut inner = lock(&self.inner);
            let settled = now.duration_since(self.started) >= self.cfg.grace();
            let everyone = self.eligible(&inner, now, inner.my_free, &[]);
            let pins: Vec<PinEntry> = inner.set.pins.values().cloned().collect();
            for e in &pins {
                let mine = !e.deleted && e.allocations.contains(&self.me);
                let held = inner.held.contains_key(&e.cid);
                if mine && !held && !inner.leaving {
                    let wait = inner.retry_at.get(&e.cid).is_some_and(|t| now < *t);
                    if !wait && !inner.fetching.contains(&e.cid) {
                        inner.fetching.insert(e.cid);
                        fetch.push((e.cid, e.allocations.clone()));
                    }
                } else if !mine && held {
                    if e.deleted || self.others_hold(&inner, e, now) {
                        unpin.push(e.cid);
                    }
                } else if mine && held {
                    if inner.set.state_of(e.cid, self.me) != Some(PinState::Pinned) {
                        self.set_status(&mut inner, e.cid, PinState::Pinned, None);
                    }
                } else if !mine
                    && !held
                    && !inner.fetching.contains(&e.cid)
                    && matches!(
                        inner.set.state_of(e.cid, self.me),
                        Some(PinState::Pinning | PinState::Error | PinState::Pinned)
                    )
                {
                    self.set_status(&mut inner, e.cid, PinState::Unpinned, None);
                }
                if !full {
                    continue;
                }
                let constrained;
                let eligible = if e.constraints.is_empty() {
                    &everyone
                } else {
                    constrained = self.eligible(&inner, now, inner.my_free, &e.constraints);
                    &constrained
                };
                if !e.deleted
                    && settled
                    && !inner.leaving
                    && alloc::responsible(e.cid, eligible) == Some(self.me)
                {
                    let holders = self.holders(&inner, e.cid, now);
                    if let Some(new) = alloc::reallocate(e, eligible, &holders) {
                        tracing::info!(cid = %e.cid, from = ?e.allocations.iter().map(ToString::to_string).collect::<Vec<_>>(), to = ?new.iter().map(ToString::to_string).collect::<Vec<_>>(), "re-allocating");
                        realloc.push(PinEntry {
                            allocations: new,
                            ..e.clone()
                        });
                    }
                }
            }
            for e in realloc {
                match self.write_pin(&mut inner, e) {
                    Ok(e) => inner.outbox_pins.push(e),
                    Err(err) => tracing::warn!(error = %err, "cannot save a re-allocation"),
                }
            }
            for cid in &unpin {
                self.set_status(&mut inner, *cid, PinState::Unpinned, None);
            }
        }
        for cid in unpin {
            self.unpin(cid);
        }
        for (cid, allocations) in fetch {
            spawn(cid, allocations);
        }
    }

    /// Whether every live allocated peer reports `cid` pinned and at least `rmin` do: this
    /// node's extra copy may go.
    fn others_hold(&self, inner: &Inner, e: &PinEntry, now: Instant) -> bool {
        let live: Vec<Peer> = e
            .allocations
            .iter()
            .copied()
            .filter(|p| *p != self.me && self.is_live(inner, *p, now))
            .collect();
        // Only peers actually heard from count as holding it (not ones merely presumed live
        // during this node's first grace period).
        let pinned = live
            .iter()
            .filter(|p| self.heard(inner, **p, now))
            .filter(|p| inner.set.state_of(e.cid, **p) == Some(PinState::Pinned))
            .count();
        pinned == live.len() && pinned >= e.rmin as usize
    }

    fn unpin(&self, cid: PinCid) {
        let held = lock(&self.inner).held.remove(&cid);
        if let Some(h) = held
            && !h.pinned_before
            && let Err(e) = self.content.store.unpin(&cid.0)
        {
            tracing::warn!(%cid, error = %e, "cannot unpin");
        }
        if let Err(e) = self.db.set_held(cid, None) {
            tracing::warn!(%cid, error = %e, "cannot record the unpin");
        }
        tracing::info!(%cid, "unpinned (no longer allocated here)");
    }

    /// Fetches and pins `cid` (every block verified), then reports it.
    async fn fetch(self: Arc<Self>, cid: PinCid, allocations: Vec<Peer>) {
        let _permit = self.fetches.clone().acquire_owned().await;
        {
            let mut inner = lock(&self.inner);
            self.set_status(&mut inner, cid, PinState::Pinning, None);
        }
        let pinned_before = self.content.store.is_pinned(&cid.0);
        let r = self.fetch_dag(cid, &allocations).await;
        let mut inner = lock(&self.inner);
        inner.fetching.remove(&cid);
        match r {
            Ok(()) => {
                let h = Held { pinned_before };
                if let Err(e) = self.db.set_held(cid, Some(h)) {
                    tracing::warn!(%cid, error = %e, "cannot record the pin");
                }
                inner.held.insert(cid, h);
                inner.retry_at.remove(&cid);
                self.set_status(&mut inner, cid, PinState::Pinned, None);
                tracing::debug!(%cid, "pinned");
            }
            Err(e) => {
                tracing::warn!(%cid, error = %e, "cannot pin; will retry");
                inner.retry_at.insert(
                    cid,
                    Instant::now() + Duration::from_secs(self.cfg.retry_secs),
                );
                self.set_status(&mut inner, cid, PinState::Error, Some(e.to_string()));
            }
        }
        drop(inner);
        self.wake.notify_one();
    }

    async fn fetch_dag(&self, cid: PinCid, allocations: &[Peer]) -> Result<()> {
        let store = self.content.store.clone();
        let root = cid.0;
        if self.content.has_dag(&root) {
            store.pin(&root)?;
            return Ok(());
        }
        for p in allocations.iter().filter(|p| **p != self.me) {
            let _ = self.p2p.dial_peer(p.0).await;
        }
        let timeout = Duration::from_secs(self.cfg.fetch_timeout_secs.max(1));
        let swarm = match tokio::time::timeout(timeout, self.p2p.fetch_dag(root)).await {
            Ok(Ok(_)) => {
                let s = store.clone();
                tokio::task::spawn_blocking(move || s.dag(&root).map(|_| ()))
                    .await
                    .map_err(|e| Error::Pinning(e.to_string()))?
                    .map_err(Error::from)
            }
            Ok(Err(e)) => Err(Error::Pinning(format!("bitswap: {e}"))),
            Err(_) => Err(Error::Pinning(format!(
                "bitswap: not complete within {} s",
                timeout.as_secs()
            ))),
        };
        match swarm {
            Ok(()) => store.pin(&root)?,
            Err(e) => {
                tracing::debug!(%cid, error = %e, "falling back to the HTTP peers");
                self.content.ensure(&root).await?;
            }
        }
        self.content.announce(&root).await;
        Ok(())
    }

    /// After a leave: once nothing waits, says goodbye and stops the node.
    async fn finish_leave(&self) -> bool {
        let ready = {
            let inner = lock(&self.inner);
            inner.leaving && !inner.left && self.leave_waits(&inner, Instant::now()).is_empty()
        };
        if !ready {
            return false;
        }
        tracing::info!("every held CID has its copies elsewhere; leaving the swarm");
        // The copies here no longer count: the blocks stay on disk, the node goes.
        {
            let mut inner = lock(&self.inner);
            let held: Vec<PinCid> = inner.held.keys().copied().collect();
            for cid in held {
                self.set_status(
                    &mut inner,
                    cid,
                    PinState::Unpinned,
                    Some("left the swarm".into()),
                );
            }
        }
        self.save_dirty();
        self.flush().await;
        self.send_heartbeat(true).await;
        lock(&self.inner).left = true;
        self.send_heartbeat(true).await;
        // Give gossip a moment to carry the goodbye before the swarm closes.
        tokio::time::sleep(Duration::from_millis(500)).await;
        self.stop.cancel();
        true
    }

    /// One pass of the task ([`Pinning::reconcile`]; `full` on its ticks), then saves and
    /// gossips what changed.
    async fn pass(self: &Arc<Self>, spawn: &impl Fn(PinCid, Vec<Peer>), full: bool) {
        self.reconcile(spawn, full);
        if let Err(e) = self.make_durable().await {
            tracing::warn!(error = %e, "cannot save re-allocations");
        }
        self.save_dirty();
        self.flush().await;
    }

    /// The pinning task: runs until the node stops.
    pub(crate) async fn run(self: Arc<Self>, tasks: crate::supervisor::Supervisor) -> Result<()> {
        let mut rx = self.p2p.pin_messages();
        let mut beat = tokio::time::interval(self.cfg.heartbeat());
        let mut tick = tokio::time::interval(self.cfg.reconcile());
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let cancel = self.stop.clone();
        // A wake (a pin added or merged, a fetch finished) is handled at once unless the last
        // pass was less than FLUSH_GAP ago; then once that gap is over, with whatever else
        // changed: under a stream of merges a node saves and gossips a few times a second, not
        // once per message.
        let mut last_flush = tokio::time::Instant::now();
        let mut flush_at: Option<tokio::time::Instant> = None;
        let spawn = {
            let me = self.clone();
            move |cid: PinCid, allocations: Vec<Peer>| {
                let me = me.clone();
                tasks.spawn(async move { me.fetch(cid, allocations).await });
            }
        };
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                got = rx.recv() => match got {
                    Ok((from, data)) => self.on_message(Peer(from), &data),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        tracing::debug!(missed = n, "pin messages lagged; anti-entropy will catch up");
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                        return Err(Error::P2p("the swarm stopped delivering pin messages".into()));
                    }
                },
                _ = beat.tick() => self.send_heartbeat(false).await,
                _ = tick.tick() => {
                    self.pass(&spawn, true).await;
                    (last_flush, flush_at) = (tokio::time::Instant::now(), None);
                    if self.finish_leave().await {
                        return Ok(());
                    }
                }
                () = self.wake.notified() => {
                    let due = last_flush + FLUSH_GAP;
                    if tokio::time::Instant::now() >= due {
                        self.pass(&spawn, false).await;
                        (last_flush, flush_at) = (tokio::time::Instant::now(), None);
                    } else {
                        flush_at.get_or_insert(due);
                    }
                }
                () = sleep_until_some(flush_at) => {
                    self.pass(&spawn, false).await;
                    (last_flush, flush_at) = (tokio::time::Instant::now(), None);
                }
            }
        }
    }
}

impl Inner {
    fn outbox_want(&mut self, peer: Peer) {
        self.wants.push(peer);
    }
}

/// Waits until `at`, or forever when there is nothing to wait for.
async fn sleep_until_some(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn due(last: Option<Instant>, now: Instant, every: Duration) -> bool {
    last.is_none_or(|t| now.duration_since(t) >= every)
}

fn truncate(s: &mut String, max: usize) {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
}

/// Bytes of the files under `dir` (the blockstore's blocks).
fn walk_size(dir: &std::path::Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in rd.flatten() {
            match entry.metadata() {
                Ok(m) if m.is_dir() => stack.push(entry.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}

fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
