//! The swarm: one event loop owns it; cloneable [`P2p`] handles talk to it
//! through a bounded command channel with one-shot replies.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::Duration,
};

use async_trait::async_trait;
use cid::Cid;
use futures::StreamExt;
use libp2p::{
    Multiaddr, PeerId, StreamProtocol, SwarmBuilder, identify,
    identity::Keypair,
    kad::{self, store::MemoryStore},
    noise,
    swarm::{NetworkBehaviour, Swarm, SwarmEvent, dial_opts::DialOpts},
    tcp, yamux,
};
use tokio::sync::{mpsc, oneshot};

use crate::{Error, Result, blocks::StoreAdapter};

/// Kademlia protocol: the IPFS DHT's.
const KAD_PROTOCOL: StreamProtocol = StreamProtocol::new("/ipfs/kad/1.0.0");
/// Largest CID multihash Bitswap accepts.
const MAX_MULTIHASH: usize = 64;
const COMMAND_QUEUE: usize = 256;

#[derive(NetworkBehaviour)]
struct Behaviour {
    identify: identify::Behaviour,
    kad: kad::Behaviour<MemoryStore>,
    bitswap: beetswap::Behaviour<MAX_MULTIHASH, StoreAdapter>,
}

/// How to start the swarm.
#[derive(Debug, Clone)]
pub struct Config {
    /// Addresses to listen on, e.g. `/ip4/127.0.0.1/tcp/0`.
    pub listen: Vec<Multiaddr>,
    /// Peers to dial at start (with `/p2p/PEER_ID` to seed Kademlia).
    pub bootstrap: Vec<Multiaddr>,
    /// The node's identity; a fresh one when `None`.
    pub keypair: Option<Keypair>,
    /// Bounded wait for one block from peers.
    pub block_timeout: Duration,
    /// Blocks fetched at once when fetching a DAG.
    pub fetch_concurrency: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: Vec::new(),
            bootstrap: Vec::new(),
            keypair: None,
            block_timeout: Duration::from_secs(30),
            fetch_concurrency: 32,
        }
    }
}

enum Command {
    Dial {
        addr: Multiaddr,
        reply: oneshot::Sender<Result<PeerId>>,
    },
    ListenAddrs {
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
}

/// A handle to the running swarm. Dropping the last one stops it.
#[derive(Clone)]
pub struct P2p {
    tx: mpsc::Sender<Command>,
    peer_id: PeerId,
    store: Arc<shoal_store::Blockstore>,
    block_timeout: Duration,
    fetch_concurrency: usize,
}

impl std::fmt::Debug for P2p {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("P2p")
            .field("peer_id", &self.peer_id)
            .finish()
    }
}

/// Starts the swarm over TCP + noise + yamux, serving `store` over Bitswap.
pub async fn start(store: Arc<shoal_store::Blockstore>, config: Config) -> Result<P2p> {
    let keypair = config
        .keypair
        .clone()
        .unwrap_or_else(Keypair::generate_ed25519);
    let adapter = Arc::new(StoreAdapter(store.clone()));
    let mut swarm = SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(|e| Error::Transport(e.to_string()))?
        .with_behaviour(|key| {
            let peer_id = key.public().to_peer_id();
            let mut kad = kad::Behaviour::with_config(
                peer_id,
                MemoryStore::new(peer_id),
                kad::Config::new(KAD_PROTOCOL),
            );
            kad.set_mode(Some(kad::Mode::Server));
            Behaviour {
                identify: identify::Behaviour::new(identify::Config::new(
                    "/ipfs/id/1.0.0".into(),
                    key.public(),
                )),
                kad,
                bitswap: beetswap::Behaviour::new(adapter),
            }
        })
        .map_err(|e| Error::Transport(e.to_string()))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(120)))
        .build();
    for addr in &config.listen {
        swarm.listen_on(addr.clone()).map_err(|e| Error::Listen {
            addr: addr.to_string(),
            reason: e.to_string(),
        })?;
    }
    let peer_id = *swarm.local_peer_id();
    let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
    let mut event_loop = EventLoop::new(swarm, rx);
    // Wait for the listeners so `listen_addrs` is complete at once.
    event_loop.await_listeners(config.listen.len()).await;
    tokio::spawn(event_loop.run());
    let p2p = P2p {
        tx,
        peer_id,
        store,
        block_timeout: config.block_timeout,
        fetch_concurrency: config.fetch_concurrency.max(1),
    };
    for addr in config.bootstrap {
        if let Err(e) = p2p.dial(addr.clone()).await {
            tracing::warn!(%addr, error = %e, "bootstrap peer unreachable");
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
        let mut frontier = vec![root];
        let mut seen = HashSet::new();
        let mut fetched = 0;
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
                Ok::<_, Error>((shoal_store::links_of(&cid, &data)?, from_peer))
            }))
            .await;
            for r in results {
                let (links, from_peer) = r?;
                fetched += u64::from(from_peer);
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

struct EventLoop {
    swarm: Swarm<Behaviour>,
    rx: mpsc::Receiver<Command>,
    dials: HashMap<libp2p::swarm::ConnectionId, (Multiaddr, oneshot::Sender<Result<PeerId>>)>,
    gets: HashMap<beetswap::QueryId, (Cid, Reply<Vec<u8>>)>,
    finds: HashMap<kad::QueryId, (HashSet<PeerId>, Reply<Vec<PeerId>>)>,
    listen: Vec<Multiaddr>,
}

impl EventLoop {
    fn new(swarm: Swarm<Behaviour>, rx: mpsc::Receiver<Command>) -> Self {
        Self {
            swarm,
            rx,
            dials: HashMap::new(),
            gets: HashMap::new(),
            finds: HashMap::new(),
            listen: Vec::new(),
        }
    }

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
        loop {
            tokio::select! {
                ev = self.swarm.select_next_some() => self.on_event(ev),
                cmd = self.rx.recv() => match cmd {
                    Some(c) => self.on_command(c),
                    None => break,
                },
            }
        }
    }

    fn on_command(&mut self, cmd: Command) {
        match cmd {
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
                let me = *self.swarm.local_peer_id();
                let addrs = self
                    .listen
                    .iter()
                    .map(|a| a.clone().with_p2p(me).unwrap_or_else(|a| a))
                    .collect();
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
                let r = self
                    .swarm
                    .behaviour_mut()
                    .kad
                    .start_providing(key)
                    .map(|_| ())
                    .map_err(|e| Error::Kad(e.to_string()));
                let _ = reply.send(r);
            }
            Command::FindProviders { cid, reply } => {
                let key = kad::RecordKey::new(&cid.hash().to_bytes());
                let id = self.swarm.behaviour_mut().kad.get_providers(key);
                self.finds.insert(id, (HashSet::new(), reply));
            }
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
                if let Some((_, reply)) = self.dials.remove(&connection_id) {
                    let _ = reply.send(Ok(peer_id));
                }
            }
            SwarmEvent::OutgoingConnectionError {
                connection_id,
                error,
                ..
            } => {
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
            _ => {}
        }
    }
}
