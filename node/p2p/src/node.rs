//! The swarm: one event loop owns it; cloneable [`P2p`] handles talk to it
//! through a bounded command channel with one-shot replies.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::{Duration, Instant},
};

use async_trait::async_trait;
use cid::Cid;
use futures::StreamExt;
use libp2p::{
    Multiaddr, PeerId, StreamProtocol, SwarmBuilder, Transport,
    core::{muxing::StreamMuxerBox, transport::Boxed, upgrade::Version},
    gossipsub::{self, IdentTopic},
    identify,
    identity::Keypair,
    kad::{self, store::MemoryStore},
    multiaddr::Protocol,
    noise, ping,
    pnet::{PnetConfig, PreSharedKey},
    request_response::{
        self, OutboundFailure, OutboundRequestId, ProtocolSupport, ResponseChannel,
    },
    swarm::{ConnectionId, NetworkBehaviour, Swarm, SwarmEvent, dial_opts::DialOpts},
    tcp, yamux,
};
use tokio::sync::{Semaphore, broadcast, mpsc, oneshot};

use crate::{
    Error, Result,
    blocks::StoreAdapter,
    jobs::{self, JobAnnouncement, MAX_ANNOUNCEMENT_BYTES, NetworkId, Verdict},
    status::{
        JobLogs, MAX_REQUEST_BYTES, MAX_RESPONSE_BYTES, STATUS_PROTOCOL, StatusRequest,
        StatusResponse, StatusSource,
    },
};

/// Kademlia protocol: the IPFS DHT's.
const KAD_PROTOCOL: StreamProtocol = StreamProtocol::new("/ipfs/kad/1.0.0");
/// Largest CID multihash Bitswap accepts.
const MAX_MULTIHASH: usize = 64;
const COMMAND_QUEUE: usize = 256;
/// How long an announced provider record is not announced again (unless peers joined).
const REPROVIDE_AFTER: Duration = Duration::from_secs(600);
/// Provided keys remembered for [`REPROVIDE_AFTER`]; all forgotten at once past this.
const MAX_PROVIDED: usize = 4_096;

/// Announcements buffered per [`P2p::job_announcements`] receiver.
const ANNOUNCEMENT_QUEUE: usize = 256;
/// Pinset messages buffered per [`P2p::pin_messages`] receiver.
const PIN_MESSAGE_QUEUE: usize = 1024;
/// Largest pinset message (payload) accepted or published; the gossip frame limit
/// (`MAX_TRANSMIT_BYTES`) must hold it with its envelope.
pub const MAX_PIN_MESSAGE_BYTES: usize = 3 * 1024;
/// Status lookups answered at once; further requests are dropped.
const MAX_STATUS_LOOKUPS: usize = 32;
/// Time a [`StatusSource`] gets to answer.
const STATUS_LOOKUP_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait between two dials of an unreachable bootstrap peer.
const MAX_REDIAL_BACKOFF: Duration = Duration::from_secs(60);

#[derive(NetworkBehaviour)]
struct Behaviour {
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    kad: kad::Behaviour<MemoryStore>,
    bitswap: beetswap::Behaviour<MAX_MULTIHASH, StoreAdapter>,
    gossipsub: gossipsub::Behaviour,
    status: request_response::json::Behaviour<StatusRequest, StatusResponse>,
}

/// How to start the swarm.
#[derive(Clone)]
pub struct Config {
    /// Addresses to listen on, e.g. `/ip4/0.0.0.0/tcp/4001`,
    /// `/ip4/0.0.0.0/udp/4001/quic-v1`.
    pub listen: Vec<Multiaddr>,
    /// Peers dialed at start and re-dialed (with backoff) whenever the
    /// connection is down; with `/p2p/PEER_ID` they also seed Kademlia.
    pub bootstrap: Vec<Multiaddr>,
    /// The node's identity; a fresh one when `None` (see
    /// [`crate::load_or_create_keypair`]).
    pub keypair: Option<Keypair>,
    /// Private-network key: TCP connections run the pre-shared-key
    /// handshake and QUIC is off. See [`crate::parse_psk`].
    pub psk: Option<[u8; 32]>,
    /// Chain and market whose job announcements this node gossips; no
    /// gossip topic when `None`.
    pub network: Option<NetworkId>,
    /// Answers `/shoal/status/1.0.0` requests; "not found" when `None`.
    pub status: Option<Arc<dyn StatusSource>>,
    /// Bounded wait for one block from peers.
    pub block_timeout: Duration,
    /// Blocks fetched at once when fetching a DAG.
    pub fetch_concurrency: usize,
    /// Bounded wait for a status answer.
    pub request_timeout: Duration,
    /// How often bootstrap connections are checked (and re-dialed).
    pub redial_interval: Duration,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("bootstrap", &self.bootstrap)
            .field(
                "keypair",
                &self.keypair.as_ref().map(|k| k.public().to_peer_id()),
            )
            .field(
                "psk",
                &self
                    .psk
                    .map(|k| PreSharedKey::new(k).fingerprint().to_string()),
            )
            .field("network", &self.network)
            .field("status", &self.status.is_some())
            .field("block_timeout", &self.block_timeout)
            .field("fetch_concurrency", &self.fetch_concurrency)
            .field("request_timeout", &self.request_timeout)
            .field("redial_interval", &self.redial_interval)
            .finish()
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: Vec::new(),
            bootstrap: Vec::new(),
            keypair: None,
            psk: None,
            network: None,
            status: None,
            block_timeout: Duration::from_secs(30),
            fetch_concurrency: 32,
            request_timeout: Duration::from_secs(15),
            redial_interval: Duration::from_secs(5),
        }
    }
}

/// A connected peer as the node sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerInfo {
    pub peer_id: PeerId,
    /// Remote address of each open connection.
    pub addrs: Vec<Multiaddr>,
    /// From identify, once received.
    pub agent_version: Option<String>,
    pub protocol_version: Option<String>,
    /// Last ping round trip.
    pub rtt: Option<Duration>,
    /// Its gossipsub score here.
    pub score: Option<f64>,
    /// Whether it subscribed to our job topic.
    pub jobs_topic: bool,
}

enum Command {
    Shutdown {
        reply: oneshot::Sender<()>,
    },
    DialPeer {
        peer: PeerId,
        reply: oneshot::Sender<Result<()>>,
    },
    Dial {
        addr: Multiaddr,
        reply: oneshot::Sender<Result<PeerId>>,
    },
    ListenAddrs {
        reply: oneshot::Sender<Vec<Multiaddr>>,
    },
    LocalAddrs {
        reply: oneshot::Sender<Vec<Multiaddr>>,
    },
    Get {
        cid: Cid,
        reply: oneshot::Sender<Result<Vec<u8>>>,
    },
    Cancel {
        cid: Cid,
    },
    Provide {
        cid: Cid,
        reply: oneshot::Sender<Result<()>>,
    },
    FindProviders {
        cid: Cid,
        reply: oneshot::Sender<Result<Vec<PeerId>>>,
    },
    PublishPins {
        data: Vec<u8>,
        reply: Reply<()>,
    },
    Publish {
        data: Vec<u8>,
        /// Report "no peers yet" and "already published" as errors.
        strict: bool,
        reply: Reply<()>,
    },
    PeerScore {
        peer: PeerId,
        reply: oneshot::Sender<Option<f64>>,
    },
    Peers {
        reply: oneshot::Sender<Vec<PeerInfo>>,
    },
    Status {
        peer: PeerId,
        req: StatusRequest,
        reply: Reply<StatusResponse>,
    },
    /// A spawned status lookup finished: send its answer.
    StatusAnswer {
        channel: ResponseChannel<StatusResponse>,
        resp: StatusResponse,
    },
}

/// What a DAG fetch took from peers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Fetched {
    /// Blocks received from peers (blocks already in the store are not counted).
    pub blocks: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// A handle to the running swarm. Dropping the last one stops it.
#[derive(Clone)]
pub struct P2p {
    tx: mpsc::Sender<Command>,
    peer_id: PeerId,
    store: Arc<shoal_store::Blockstore>,
    block_timeout: Duration,
    fetch_concurrency: usize,
    request_timeout: Duration,
    /// Chain id and normalised market address.
    network: Option<(u64, String)>,
    announcements: broadcast::Sender<(PeerId, JobAnnouncement)>,
    pin_messages: broadcast::Sender<(PeerId, Vec<u8>)>,
}

impl std::fmt::Debug for P2p {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("P2p")
            .field("peer_id", &self.peer_id)
            .finish()
    }
}

fn is_quic(addr: &Multiaddr) -> bool {
    addr.iter()
        .any(|p| matches!(p, Protocol::QuicV1 | Protocol::Quic))
}

/// TCP wrapped in the private-network handshake, then noise and yamux.
fn pnet_tcp(
    key: &Keypair,
    psk: [u8; 32],
) -> std::result::Result<Boxed<(PeerId, StreamMuxerBox)>, Box<dyn std::error::Error + Send + Sync>>
{
    let noise = noise::Config::new(key)?;
    Ok(
        tcp::tokio::Transport::new(tcp::Config::default().nodelay(true))
            .and_then(move |socket, _| PnetConfig::new(PreSharedKey::new(psk)).handshake(socket))
            .upgrade(Version::V1Lazy)
            .authenticate(noise)
            .multiplex(yamux::Config::default())
            .timeout(Duration::from_secs(10))
            .map(|(peer, muxer), _| (peer, StreamMuxerBox::new(muxer)))
            .boxed(),
    )
}

fn behaviour(
    key: &Keypair,
    adapter: Arc<StoreAdapter>,
    topics: &[&IdentTopic],
    request_timeout: Duration,
) -> Result<Behaviour> {
    let peer_id = key.public().to_peer_id();
    let mut kad = kad::Behaviour::with_config(
        peer_id,
        MemoryStore::new(peer_id),
        kad::Config::new(KAD_PROTOCOL),
    );
    kad.set_mode(Some(kad::Mode::Server));
    let mut gossipsub = jobs::behaviour(key)?;
    gossipsub
        .with_peer_score(
            jobs::peer_score_params(topics),
            jobs::peer_score_thresholds(),
        )
        .map_err(|e| Error::Config(format!("gossipsub scoring: {e}")))?;
    for t in topics {
        gossipsub
            .subscribe(t)
            .map_err(|e| Error::Config(format!("cannot subscribe to {t}: {e}")))?;
    }
    let codec = request_response::json::codec::Codec::default()
        .set_request_size_maximum(MAX_REQUEST_BYTES)
        .set_response_size_maximum(MAX_RESPONSE_BYTES);
    let status = request_response::Behaviour::with_codec(
        codec,
        [(StreamProtocol::new(STATUS_PROTOCOL), ProtocolSupport::Full)],
        request_response::Config::default().with_request_timeout(request_timeout),
    );
    Ok(Behaviour {
        identify: identify::Behaviour::new(
            identify::Config::new("/ipfs/id/1.0.0".into(), key.public())
                .with_agent_version(format!("shoal/{}", env!("CARGO_PKG_VERSION"))),
        ),
        ping: ping::Behaviour::new(ping::Config::new()),
        kad,
        bitswap: beetswap::Behaviour::new(adapter),
        gossipsub,
        status,
    })
}

/// Starts the swarm: TCP + noise + yamux and QUIC (or, with a `psk`, TCP
/// behind the private-network handshake only), serving `store` over
/// Bitswap, gossiping job announcements when `config.network` is set.
pub async fn start(store: Arc<shoal_store::Blockstore>, config: Config) -> Result<P2p> {
    if config.psk.is_some()
        && let Some(addr) = config
            .listen
            .iter()
            .chain(&config.bootstrap)
            .find(|a| is_quic(a))
    {
        return Err(Error::QuicWithPsk {
            addr: addr.to_string(),
        });
    }
    let network = match &config.network {
        Some(n) => Some((n.chain_id, n.normalized_market()?)),
        None => None,
    };
    let topic = match &config.network {
        Some(n) => Some(IdentTopic::new(n.jobs_topic()?)),
        None => None,
    };
    let pins_topic = match &config.network {
        Some(n) => Some(IdentTopic::new(n.pins_topic()?)),
        None => None,
    };
    let keypair = config
        .keypair
        .clone()
        .unwrap_or_else(Keypair::generate_ed25519);
    let adapter = Arc::new(StoreAdapter(store.clone()));
    let request_timeout = config.request_timeout;
    let topics: Vec<&IdentTopic> = topic.iter().chain(pins_topic.iter()).collect();
    let behaviour = behaviour(&keypair, adapter, &topics, request_timeout)?;
    let swarm_config =
        move |c: libp2p::swarm::Config| c.with_idle_connection_timeout(Duration::from_secs(120));
    let transport_err = |e: &dyn std::fmt::Display| Error::Transport(e.to_string());
    let builder = SwarmBuilder::with_existing_identity(keypair).with_tokio();
    let mut swarm = match config.psk {
        None => builder
            .with_tcp(
                tcp::Config::default().nodelay(true),
                noise::Config::new,
                yamux::Config::default,
            )
            .map_err(|e| transport_err(&e))?
            .with_quic()
            .with_behaviour(|_| behaviour)
            .map_err(|e| transport_err(&e))?
            .with_swarm_config(swarm_config)
            .build(),
        Some(psk) => builder
            .with_other_transport(|key| pnet_tcp(key, psk))
            .map_err(|e| transport_err(&e))?
            .with_behaviour(|_| behaviour)
            .map_err(|e| transport_err(&e))?
            .with_swarm_config(swarm_config)
            .build(),
    };
    for addr in &config.listen {
        swarm.listen_on(addr.clone()).map_err(|e| Error::Listen {
            addr: addr.to_string(),
            reason: e.to_string(),
        })?;
    }
    let peer_id = *swarm.local_peer_id();
    let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
    let (announcements, _) = broadcast::channel(ANNOUNCEMENT_QUEUE);
    let (pin_messages, _) = broadcast::channel(PIN_MESSAGE_QUEUE);
    let mut event_loop = EventLoop {
        swarm,
        rx,
        weak_tx: tx.downgrade(),
        dials: HashMap::new(),
        gets: HashMap::new(),
        finds: HashMap::new(),
        provided: HashMap::new(),
        listen: Vec::new(),
        peers: HashMap::new(),
        jobs: topic.zip(network.clone()),
        pins: pins_topic,
        pin_messages: pin_messages.clone(),
        announcements: announcements.clone(),
        status_source: config.status.clone(),
        status_lookups: Arc::new(Semaphore::new(MAX_STATUS_LOOKUPS)),
        status_reqs: HashMap::new(),
        request_timeout,
        bootstrap: config
            .bootstrap
            .iter()
            .map(|addr| BootPeer {
                addr: addr.clone(),
                peer: match addr.iter().last() {
                    Some(Protocol::P2p(p)) => Some(p),
                    _ => None,
                },
                dialing: false,
                next_try: Instant::now(),
                backoff: config.redial_interval,
            })
            .collect(),
        boot_dials: HashMap::new(),
        redial_interval: config.redial_interval.max(Duration::from_millis(100)),
    };
    // Wait for the listeners so `listen_addrs` is complete at once.
    event_loop.await_listeners(config.listen.len()).await;
    tokio::spawn(event_loop.run());
    let p2p = P2p {
        tx,
        peer_id,
        store,
        block_timeout: config.block_timeout,
        fetch_concurrency: config.fetch_concurrency.max(1),
        request_timeout,
        network,
        announcements,
        pin_messages,
    };
    for addr in config.bootstrap {
        if let Err(e) = p2p.dial(addr.clone()).await {
            tracing::warn!(%addr, error = %e, "bootstrap peer unreachable; will retry");
        }
    }
    Ok(p2p)
}

impl P2p {
    /// This node's peer id.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    async fn call<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(make(reply))
            .await
            .map_err(|_| Error::Stopped)?;
        rx.await.map_err(|_| Error::Stopped)
    }

    /// Stops the swarm: connections close and listeners are released. Every handle then
    /// answers with an error.
    pub async fn shutdown(&self) {
        let _ = self.call(|reply| Command::Shutdown { reply }).await;
    }

    /// Addresses the node listens on, each ending in `/p2p/PEER_ID`.
    pub async fn listen_addrs(&self) -> Result<Vec<Multiaddr>> {
        self.call(|reply| Command::ListenAddrs { reply }).await
    }

    /// Connects to a peer; resolves once the connection is up.
    pub async fn dial(&self, addr: Multiaddr) -> Result<PeerId> {
        self.call(|reply| Command::Dial { addr, reply }).await?
    }

    /// One block from the store, else from connected peers over Bitswap
    /// (verified), within the configured timeout.
    pub async fn get_block(&self, cid: Cid) -> Result<Vec<u8>> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Get { cid, reply })
            .await
            .map_err(|_| Error::Stopped)?;
        match tokio::time::timeout(self.block_timeout, rx).await {
            Ok(r) => r.map_err(|_| Error::Stopped)?,
            Err(_) => {
                let _ = self.tx.send(Command::Cancel { cid }).await;
                Err(Error::Timeout {
                    cid: Box::new(cid),
                    secs: self.block_timeout.as_secs(),
                })
            }
        }
    }

    /// Fetches every missing block of the DAG under `root` into the store.
    /// Returns how many blocks came from peers.
    pub async fn fetch_dag(&self, root: Cid) -> Result<u64> {
        Ok(self.fetch_dag_counted(root).await?.blocks)
    }

    /// [`P2p::fetch_dag`], also counting the bytes that came from peers.
    pub async fn fetch_dag_counted(&self, root: Cid) -> Result<Fetched> {
        let mut frontier = vec![root];
        let mut seen = HashSet::new();
        let mut fetched = Fetched::default();
        while !frontier.is_empty() {
            let batch: Vec<Cid> = frontier
                .drain(..frontier.len().min(self.fetch_concurrency))
                .filter(|c| seen.insert(*c))
                .collect();
            let results = futures::future::join_all(batch.into_iter().map(|cid| async move {
                let store = self.store.clone();
                let local = tokio::task::spawn_blocking(move || store.get(&cid))
                    .await
                    .map_err(|e| Error::Kad(e.to_string()))?;
                let (data, from_peer) = match local {
                    Ok(d) => (d, false),
                    Err(
                        shoal_store::Error::NotFound { .. } | shoal_store::Error::Corrupt { .. },
                    ) => (self.get_block(cid).await?, true),
                    Err(e) => return Err(e.into()),
                };
                if from_peer {
                    let (store, d) = (self.store.clone(), data.clone());
                    tokio::task::spawn_blocking(move || store.put(&cid, &d))
                        .await
                        .map_err(|e| Error::Kad(e.to_string()))??;
                }
                let peer_bytes = if from_peer { data.len() as u64 } else { 0 };
                Ok::<_, Error>((shoal_store::links_of(&cid, &data)?, from_peer, peer_bytes))
            }))
            .await;
            for r in results {
                let (links, from_peer, peer_bytes) = r?;
                fetched.blocks += u64::from(from_peer);
                fetched.bytes += peer_bytes;
                frontier.extend(links);
            }
        }
        Ok(fetched)
    }

    /// Announces that this node holds `cid` (a Kademlia provider record,
    /// keyed by the multihash as in IPFS).
    pub async fn provide(&self, cid: Cid) -> Result<()> {
        self.call(|reply| Command::Provide { cid, reply }).await?
    }

    /// Peers that announced `cid`.
    pub async fn find_providers(&self, cid: Cid) -> Result<Vec<PeerId>> {
        self.call(|reply| Command::FindProviders { cid, reply })
            .await?
    }

    /// Starts connecting to `peer` at the addresses Kademlia knows for it (nothing to do when
    /// already connected); does not wait for the connection.
    pub async fn dial_peer(&self, peer: PeerId) -> Result<()> {
        self.call(|reply| Command::DialPeer { peer, reply }).await?
    }
}

impl P2p {
    /// Addresses this node can be reached at (listen and confirmed external
    /// addresses), each ending in `/p2p/PEER_ID`.
    pub async fn local_addrs(&self) -> Result<Vec<Multiaddr>> {
        self.call(|reply| Command::LocalAddrs { reply }).await
    }

    /// Connected peers.
    pub async fn peers(&self) -> Result<Vec<PeerInfo>> {
        self.call(|reply| Command::Peers { reply }).await
    }

    /// The gossipsub score this node gives `peer` (`None` if unknown).
    pub async fn peer_score(&self, peer: PeerId) -> Result<Option<f64>> {
        self.call(|reply| Command::PeerScore { peer, reply }).await
    }

    /// Gossips a job announcement on this node's network topic. Having no
    /// subscribed peer yet (or having announced the same message before)
    /// is not an error: it is logged at debug level.
    pub async fn announce_job(&self, mut a: JobAnnouncement) -> Result<()> {
        let (chain_id, market) = self.network.as_ref().ok_or(Error::NoNetwork)?;
        // Receivers compare the market in its normal form; any spelling of the same
        // address (e.g. EIP-55 checksummed) is sent as that.
        if let Some(m) = jobs::normalize_market(&a.market) {
            a.market = m;
        }
        jobs::check(&a, *chain_id, market).map_err(Error::Announcement)?;
        let data = serde_json::to_vec(&a).map_err(|e| Error::Announcement(e.to_string()))?;
        if data.len() > MAX_ANNOUNCEMENT_BYTES {
            return Err(Error::Announcement(format!(
                "{} bytes, limit {MAX_ANNOUNCEMENT_BYTES}",
                data.len()
            )));
        }
        self.call(|reply| Command::Publish {
            data,
            strict: false,
            reply,
        })
        .await?
    }

    /// Test hook: publishes `data` on the job topic unchecked, reporting
    /// "no peers" as an error. Not part of the API.
    #[doc(hidden)]
    pub async fn publish_raw_for_tests(&self, data: Vec<u8>) -> Result<()> {
        self.call(|reply| Command::Publish {
            data,
            strict: true,
            reply,
        })
        .await?
    }

    /// Publishes a pinset message (at most [`MAX_PIN_MESSAGE_BYTES`]) on the network's pin
    /// topic (docs/pinning.md). No subscribed peer yet, or the same bytes published before,
    /// is not an error.
    pub async fn publish_pins(&self, data: Vec<u8>) -> Result<()> {
        if self.network.is_none() {
            return Err(Error::NoNetwork);
        }
        if data.len() > MAX_PIN_MESSAGE_BYTES {
            return Err(Error::Gossip(format!(
                "pin message of {} bytes, limit {MAX_PIN_MESSAGE_BYTES}",
                data.len()
            )));
        }
        self.call(|reply| Command::PublishPins { data, reply })
            .await?
    }

    /// Pinset messages from peers, with their signed author. The payload is only checked for
    /// size here; the receiver judges it. A slow receiver loses the oldest ones.
    pub fn pin_messages(&self) -> broadcast::Receiver<(PeerId, Vec<u8>)> {
        self.pin_messages.subscribe()
    }

    /// Announcements accepted from peers (after validation), with the peer
    /// that published each. A slow receiver loses the oldest ones
    /// (`RecvError::Lagged`).
    pub fn job_announcements(&self) -> broadcast::Receiver<(PeerId, JobAnnouncement)> {
        self.announcements.subscribe()
    }

    /// Asks `peer` for a job's status (and logs), over a connection or the
    /// addresses this node knows for it, within the request timeout.
    pub async fn job_status(&self, peer: PeerId, req: StatusRequest) -> Result<StatusResponse> {
        let limit = self.request_timeout + Duration::from_secs(2);
        match tokio::time::timeout(
            limit,
            self.call(|reply| Command::Status { peer, req, reply }),
        )
        .await
        {
            Ok(r) => r?,
            Err(_) => Err(Error::Status {
                peer: Box::new(peer),
                reason: format!("no answer within {} s", limit.as_secs()),
            }),
        }
    }
}

#[async_trait]
impl shoal_store::BlockFetcher for P2p {
    async fn fetch_block(&self, cid: &Cid) -> shoal_store::Result<Vec<u8>> {
        self.get_block(*cid).await.map_err(|e| match e {
            Error::Timeout { cid, secs } => shoal_store::Error::FetchTimeout { cid, secs },
            Error::Store(s) => s,
            other => shoal_store::Error::Fetch {
                cid: Box::new(*cid),
                reason: other.to_string(),
            },
        })
    }
}

#[async_trait]
impl shoal_store::Announcer for P2p {
    async fn announce(&self, cid: &Cid) -> shoal_store::Result<()> {
        self.provide(*cid)
            .await
            .map_err(|e| shoal_store::Error::Fetch {
                cid: Box::new(*cid),
                reason: e.to_string(),
            })
    }
}

type Reply<T> = oneshot::Sender<Result<T>>;

#[derive(Default)]
struct PeerState {
    conns: HashMap<ConnectionId, Multiaddr>,
    agent_version: Option<String>,
    protocol_version: Option<String>,
    rtt: Option<Duration>,
}

struct BootPeer {
    addr: Multiaddr,
    peer: Option<PeerId>,
    dialing: bool,
    next_try: Instant,
    backoff: Duration,
}

struct EventLoop {
    swarm: Swarm<Behaviour>,
    rx: mpsc::Receiver<Command>,
    /// For spawned status lookups to hand their answer back; weak so that
    /// dropping every [`P2p`] still stops the loop.
    weak_tx: mpsc::WeakSender<Command>,
    dials: HashMap<ConnectionId, (Multiaddr, oneshot::Sender<Result<PeerId>>)>,
    gets: HashMap<beetswap::QueryId, (Cid, Reply<Vec<u8>>)>,
    finds: HashMap<kad::QueryId, (HashSet<PeerId>, Reply<Vec<PeerId>>)>,
    /// Keys this node started providing: when, and to how many connected peers.
    provided: HashMap<kad::RecordKey, (Instant, usize)>,
    listen: Vec<Multiaddr>,
    peers: HashMap<PeerId, PeerState>,
    /// The job topic with our chain id and normalised market.
    jobs: Option<(IdentTopic, (u64, String))>,
    announcements: broadcast::Sender<(PeerId, JobAnnouncement)>,
    /// The pinset topic.
    pins: Option<IdentTopic>,
    pin_messages: broadcast::Sender<(PeerId, Vec<u8>)>,
    status_source: Option<Arc<dyn StatusSource>>,
    status_lookups: Arc<Semaphore>,
    status_reqs: HashMap<OutboundRequestId, (PeerId, String, Reply<StatusResponse>)>,
    request_timeout: Duration,
    bootstrap: Vec<BootPeer>,
    boot_dials: HashMap<ConnectionId, usize>,
    redial_interval: Duration,
}

impl EventLoop {
    async fn await_listeners(&mut self, n: usize) {
        let deadline = tokio::time::sleep(Duration::from_secs(5));
        tokio::pin!(deadline);
        while self.listen.len() < n {
            tokio::select! {
                ev = self.swarm.select_next_some() => self.on_event(ev),
                _ = &mut deadline => break,
            }
        }
    }

    async fn run(mut self) {
        let mut redial = tokio::time::interval(self.redial_interval);
        redial.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                ev = self.swarm.select_next_some() => self.on_event(ev),
                cmd = self.rx.recv() => match cmd {
                    Some(Command::Shutdown { reply }) => {
                        let _ = reply.send(());
                        break;
                    }
                    Some(c) => self.on_command(c),
                    None => break,
                },
                _ = redial.tick() => self.redial_bootstrap(),
            }
        }
    }

    /// Dials every bootstrap peer that is not connected and whose backoff
    /// has passed.
    fn redial_bootstrap(&mut self) {
        let now = Instant::now();
        for (i, b) in self.bootstrap.iter_mut().enumerate() {
            if b.peer.is_some_and(|p| self.swarm.is_connected(&p)) {
                b.backoff = self.redial_interval;
                continue;
            }
            if b.dialing || now < b.next_try {
                continue;
            }
            let opts = DialOpts::from(b.addr.clone());
            let id = opts.connection_id();
            match self.swarm.dial(opts) {
                Ok(()) => {
                    tracing::debug!(addr = %b.addr, "re-dialing bootstrap peer");
                    b.dialing = true;
                    self.boot_dials.insert(id, i);
                }
                Err(e) => {
                    tracing::debug!(addr = %b.addr, error = %e, "cannot dial bootstrap peer");
                    b.next_try = now + b.backoff;
                    b.backoff = (b.backoff * 2).min(MAX_REDIAL_BACKOFF);
                }
            }
        }
    }

    fn publish(&mut self, data: Vec<u8>, strict: bool) -> Result<()> {
        let Some((topic, _)) = &self.jobs else {
            return Err(Error::NoNetwork);
        };
        let topic = topic.clone();
        self.publish_on(topic, data, strict)
    }

    fn publish_on(&mut self, topic: IdentTopic, data: Vec<u8>, strict: bool) -> Result<()> {
        match self
            .swarm
            .behaviour_mut()
            .gossipsub
            .publish(topic.clone(), data)
        {
            Ok(_) => Ok(()),
            Err(gossipsub::PublishError::NoPeersSubscribedToTopic) if !strict => {
                tracing::debug!(%topic, "no peer subscribed yet; announcement not sent");
                Ok(())
            }
            Err(gossipsub::PublishError::Duplicate) if !strict => {
                tracing::debug!(%topic, "announcement already published");
                Ok(())
            }
            Err(e) => Err(Error::Gossip(format!("cannot publish on {topic}: {e}"))),
        }
    }

    fn peer_infos(&self) -> Vec<PeerInfo> {
        let gossip = &self.swarm.behaviour().gossipsub;
        let on_topic: HashSet<PeerId> = match &self.jobs {
            Some((topic, _)) => {
                let hash = topic.hash();
                gossip
                    .all_peers()
                    .filter(|(_, topics)| topics.contains(&&hash))
                    .map(|(p, _)| *p)
                    .collect()
            }
            None => HashSet::new(),
        };
        self.peers
            .iter()
            .map(|(peer, st)| PeerInfo {
                peer_id: *peer,
                addrs: st.conns.values().cloned().collect(),
                agent_version: st.agent_version.clone(),
                protocol_version: st.protocol_version.clone(),
                rtt: st.rtt,
                score: gossip.peer_score(peer),
                jobs_topic: on_topic.contains(peer),
            })
            .collect()
    }

    fn with_p2p(&self, addr: &Multiaddr) -> Multiaddr {
        let me = *self.swarm.local_peer_id();
        if matches!(addr.iter().last(), Some(Protocol::P2p(_))) {
            return addr.clone();
        }
        addr.clone().with_p2p(me).unwrap_or_else(|a| a)
    }

    /// Answers an inbound status request off the event loop.
    fn serve_status(&mut self, req: StatusRequest, channel: ResponseChannel<StatusResponse>) {
        let Some(source) = self.status_source.clone() else {
            let _ = self
                .swarm
                .behaviour_mut()
                .status
                .send_response(channel, StatusResponse::not_found(req.job_id));
            return;
        };
        let Ok(permit) = self.status_lookups.clone().try_acquire_owned() else {
            tracing::warn!("too many status lookups in flight; dropping a request");
            return;
        };
        let tx = self.weak_tx.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let looked_up =
                tokio::time::timeout(STATUS_LOOKUP_TIMEOUT, source.status(&req.job_id, req.logs))
                    .await;
            let mut resp = match looked_up {
                Ok(r) => r,
                Err(_) => {
                    tracing::warn!(job_id = %req.job_id, "status lookup timed out");
                    return;
                }
            };
            resp.job_id = req.job_id;
            resp.logs = if req.logs {
                resp.logs.map(JobLogs::cap)
            } else {
                None
            };
            if let Some(tx) = tx.upgrade() {
                let _ = tx.send(Command::StatusAnswer { channel, resp }).await;
            }
        });
    }

    fn on_command(&mut self, cmd: Command) {
        match cmd {
            // Handled by the event loop, which stops.
            Command::Shutdown { reply } => {
                let _ = reply.send(());
            }
            Command::DialPeer { peer, reply } => {
                if self.swarm.is_connected(&peer) || peer == *self.swarm.local_peer_id() {
                    let _ = reply.send(Ok(()));
                    return;
                }
                // Kademlia supplies the addresses it knows for the peer.
                let r = self
                    .swarm
                    .dial(DialOpts::peer_id(peer).build())
                    .map_err(|e| Error::Dial {
                        addr: peer.to_string(),
                        reason: e.to_string(),
                    });
                let _ = reply.send(r);
            }
            Command::Dial { addr, reply } => {
                let opts = DialOpts::from(addr.clone());
                let id = opts.connection_id();
                match self.swarm.dial(opts) {
                    Ok(()) => {
                        self.dials.insert(id, (addr, reply));
                    }
                    Err(e) => {
                        let _ = reply.send(Err(Error::Dial {
                            addr: addr.to_string(),
                            reason: e.to_string(),
                        }));
                    }
                }
            }
            Command::ListenAddrs { reply } => {
                let addrs = self.listen.iter().map(|a| self.with_p2p(a)).collect();
                let _ = reply.send(addrs);
            }
            Command::LocalAddrs { reply } => {
                let mut addrs: Vec<Multiaddr> =
                    self.listen.iter().map(|a| self.with_p2p(a)).collect();
                for a in self.swarm.external_addresses() {
                    let a = self.with_p2p(a);
                    if !addrs.contains(&a) {
                        addrs.push(a);
                    }
                }
                let _ = reply.send(addrs);
            }
            Command::Get { cid, reply } => {
                let id = self.swarm.behaviour_mut().bitswap.get(&cid);
                self.gets.insert(id, (cid, reply));
            }
            Command::Cancel { cid } => {
                let ids: Vec<_> = self
                    .gets
                    .iter()
                    .filter(|(_, (c, r))| *c == cid && r.is_closed())
                    .map(|(id, _)| *id)
                    .collect();
                for id in ids {
                    self.gets.remove(&id);
                    self.swarm.behaviour_mut().bitswap.cancel(id);
                }
            }
            Command::Provide { cid, reply } => {
                let key = kad::RecordKey::new(&cid.hash().to_bytes());
                // The same content (every run of a deterministic job has the same results) is
                // announced again only when peers joined since or the last announcement is
                // old; Kademlia republishes provider records itself.
                let peers = self.swarm.connected_peers().count();
                if self
                    .provided
                    .get(&key)
                    .is_some_and(|(at, had)| at.elapsed() < REPROVIDE_AFTER && peers <= *had)
                {
                    let _ = reply.send(Ok(()));
                    return;
                }
                let r = self
                    .swarm
                    .behaviour_mut()
                    .kad
                    .start_providing(key.clone())
                    .map(|_| ())
                    .map_err(|e| Error::Kad(e.to_string()));
                if r.is_ok() {
                    if self.provided.len() >= MAX_PROVIDED {
                        self.provided.clear();
                    }
                    self.provided.insert(key, (Instant::now(), peers));
                }
                let _ = reply.send(r);
            }
            Command::FindProviders { cid, reply } => {
                let key = kad::RecordKey::new(&cid.hash().to_bytes());
                let id = self.swarm.behaviour_mut().kad.get_providers(key);
                self.finds.insert(id, (HashSet::new(), reply));
            }
            Command::Publish {
                data,
                strict,
                reply,
            } => {
                let _ = reply.send(self.publish(data, strict));
            }
            Command::PublishPins { data, reply } => {
                let r = match self.pins.clone() {
                    Some(topic) => self.publish_on(topic, data, false),
                    None => Err(Error::NoNetwork),
                };
                let _ = reply.send(r);
            }
            Command::PeerScore { peer, reply } => {
                let _ = reply.send(self.swarm.behaviour().gossipsub.peer_score(&peer));
            }
            Command::Peers { reply } => {
                let _ = reply.send(self.peer_infos());
            }
            Command::Status { peer, req, reply } => {
                let job_id = req.job_id.clone();
                let id = self.swarm.behaviour_mut().status.send_request(&peer, req);
                self.status_reqs.insert(id, (peer, job_id, reply));
            }
            Command::StatusAnswer { channel, resp } => {
                if self
                    .swarm
                    .behaviour_mut()
                    .status
                    .send_response(channel, resp)
                    .is_err()
                {
                    tracing::debug!("status requester went away before the answer");
                }
            }
        }
    }

    fn on_gossip(&mut self, ev: gossipsub::Event) {
        let gossipsub::Event::Message {
            propagation_source,
            message_id,
            message,
        } = ev
        else {
            return;
        };
        if let Some(pins) = &self.pins
            && message.topic == pins.hash()
        {
            let acceptance = if message.data.len() > MAX_PIN_MESSAGE_BYTES {
                tracing::debug!(peer = %propagation_source, "dropping an oversized pin message");
                gossipsub::MessageAcceptance::Reject
            } else {
                let from = message.source.unwrap_or(propagation_source);
                let _ = self.pin_messages.send((from, message.data));
                gossipsub::MessageAcceptance::Accept
            };
            self.swarm
                .behaviour_mut()
                .gossipsub
                .report_message_validation_result(&message_id, &propagation_source, acceptance);
            return;
        }
        let verdict = match &self.jobs {
            Some((topic, (chain_id, market))) if message.topic == topic.hash() => {
                jobs::judge(&message.data, *chain_id, market)
            }
            _ => Verdict::Ignore(format!("topic {} is not ours", message.topic)),
        };
        let acceptance = verdict.acceptance();
        match verdict {
            Verdict::Accept(a) => {
                let from = message.source.unwrap_or(propagation_source);
                tracing::debug!(%from, job_id = %a.job_id, "job announcement");
                // No receiver is fine: nobody is listening yet.
                let _ = self.announcements.send((from, a));
            }
            Verdict::Reject(why) | Verdict::Ignore(why) => {
                tracing::debug!(peer = %propagation_source, %why, "dropping a gossip message");
            }
        }
        self.swarm
            .behaviour_mut()
            .gossipsub
            .report_message_validation_result(&message_id, &propagation_source, acceptance);
    }

    fn on_status(&mut self, ev: request_response::Event<StatusRequest, StatusResponse>) {
        use request_response::{Event, Message};
        match ev {
            Event::Message {
                message:
                    Message::Request {
                        request, channel, ..
                    },
                ..
            } => self.serve_status(request, channel),
            Event::Message {
                message:
                    Message::Response {
                        request_id,
                        response,
                    },
                ..
            } => {
                if let Some((peer, job_id, reply)) = self.status_reqs.remove(&request_id) {
                    let r = if response.job_id == job_id {
                        let mut response = response;
                        response.logs = response.logs.map(JobLogs::cap);
                        Ok(response)
                    } else {
                        Err(Error::Status {
                            peer: Box::new(peer),
                            reason: format!(
                                "answered for job {:?} instead of {job_id:?}",
                                response.job_id
                            ),
                        })
                    };
                    let _ = reply.send(r);
                }
            }
            Event::OutboundFailure {
                request_id, error, ..
            } => {
                if let Some((peer, _, reply)) = self.status_reqs.remove(&request_id) {
                    let reason = match error {
                        OutboundFailure::DialFailure => {
                            "cannot reach the peer: not connected and no working address \
                             known; dial it first"
                                .to_owned()
                        }
                        OutboundFailure::Timeout => {
                            format!("no answer within {} s", self.request_timeout.as_secs())
                        }
                        OutboundFailure::UnsupportedProtocols => {
                            format!("the peer does not serve {STATUS_PROTOCOL}")
                        }
                        OutboundFailure::ConnectionClosed => {
                            "the connection closed before the answer (the peer may have \
                             dropped the request)"
                                .to_owned()
                        }
                        OutboundFailure::Io(e) => format!("bad answer: {e}"),
                    };
                    let _ = reply.send(Err(Error::Status {
                        peer: Box::new(peer),
                        reason,
                    }));
                }
            }
            Event::InboundFailure { peer, error, .. } => {
                tracing::debug!(%peer, %error, "inbound status request failed");
            }
            Event::ResponseSent { .. } => {}
        }
    }

    fn on_event(&mut self, ev: SwarmEvent<BehaviourEvent>) {
        match ev {
            SwarmEvent::NewListenAddr { address, .. } => {
                tracing::info!(%address, "listening");
                self.listen.push(address);
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                ..
            } => {
                if endpoint.is_dialer() {
                    self.swarm
                        .behaviour_mut()
                        .kad
                        .add_address(&peer_id, endpoint.get_remote_address().clone());
                }
                self.peers
                    .entry(peer_id)
                    .or_default()
                    .conns
                    .insert(connection_id, endpoint.get_remote_address().clone());
                if let Some((addr, reply)) = self.dials.remove(&connection_id) {
                    if let Some(b) = self
                        .bootstrap
                        .iter_mut()
                        .find(|b| b.addr == addr && b.peer.is_none())
                    {
                        b.peer = Some(peer_id);
                    }
                    let _ = reply.send(Ok(peer_id));
                }
                if let Some(i) = self.boot_dials.remove(&connection_id)
                    && let Some(b) = self.bootstrap.get_mut(i)
                {
                    tracing::info!(addr = %b.addr, "bootstrap peer reconnected");
                    b.dialing = false;
                    b.peer = Some(peer_id);
                    b.backoff = self.redial_interval;
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                connection_id,
                num_established,
                ..
            } => {
                if num_established == 0 {
                    self.peers.remove(&peer_id);
                } else if let Some(st) = self.peers.get_mut(&peer_id) {
                    st.conns.remove(&connection_id);
                }
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                self.listen.retain(|a| *a != address);
            }
            SwarmEvent::OutgoingConnectionError {
                connection_id,
                error,
                ..
            } => {
                if let Some(i) = self.boot_dials.remove(&connection_id)
                    && let Some(b) = self.bootstrap.get_mut(i)
                {
                    tracing::debug!(addr = %b.addr, %error, "bootstrap peer still unreachable");
                    b.dialing = false;
                    b.next_try = Instant::now() + b.backoff;
                    b.backoff = (b.backoff * 2).min(MAX_REDIAL_BACKOFF);
                }
                if let Some((addr, reply)) = self.dials.remove(&connection_id) {
                    let _ = reply.send(Err(Error::Dial {
                        addr: addr.to_string(),
                        reason: error.to_string(),
                    }));
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                info,
                ..
            })) => {
                if let Some(st) = self.peers.get_mut(&peer_id) {
                    st.agent_version = Some(info.agent_version);
                    st.protocol_version = Some(info.protocol_version);
                }
                for addr in info.listen_addrs {
                    self.swarm.behaviour_mut().kad.add_address(&peer_id, addr);
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Bitswap(ev)) => match ev {
                beetswap::Event::GetQueryResponse { query_id, data } => {
                    if let Some((_, reply)) = self.gets.remove(&query_id) {
                        let _ = reply.send(Ok(data));
                    }
                }
                beetswap::Event::GetQueryError { query_id, error } => {
                    if let Some((cid, reply)) = self.gets.remove(&query_id) {
                        let _ = reply.send(Err(Error::Bitswap {
                            cid: Box::new(cid),
                            reason: error.to_string(),
                        }));
                    }
                }
            },
            SwarmEvent::Behaviour(BehaviourEvent::Kad(kad::Event::OutboundQueryProgressed {
                id,
                result: kad::QueryResult::GetProviders(r),
                step,
                ..
            })) => {
                if let Some((found, _)) = self.finds.get_mut(&id)
                    && let Ok(kad::GetProvidersOk::FoundProviders { providers, .. }) = r
                {
                    found.extend(providers);
                }
                let done = step.last || self.finds.get(&id).is_some_and(|(f, _)| !f.is_empty());
                if done && let Some((found, reply)) = self.finds.remove(&id) {
                    if let Some(mut q) = self.swarm.behaviour_mut().kad.query_mut(&id) {
                        q.finish();
                    }
                    let _ = reply.send(Ok(found.into_iter().collect()));
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Ping(ping::Event {
                peer,
                result: Ok(rtt),
                ..
            })) => {
                if let Some(st) = self.peers.get_mut(&peer) {
                    st.rtt = Some(rtt);
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(ev)) => self.on_gossip(ev),
            SwarmEvent::Behaviour(BehaviourEvent::Status(ev)) => self.on_status(ev),
            _ => {}
        }
    }
}
