//! Test endpoints: a real anvil from the repository's npm tooling, and the embedded devchain.
#![allow(dead_code)]

use std::path::PathBuf;

use alloy::node_bindings::{Anvil, AnvilInstance};
use alloy::providers::Provider;
use shoal_chain::{ChainClient, DeployParams, Deployment, PrivateKeySigner, U256, deploy};
use shoal_devchain::{DevChain, ServerHandle};

/// A running chain the test talks to over JSON-RPC.
pub enum Endpoint {
    Anvil(AnvilInstance),
    DevChain {
        _chain: DevChain,
        server: ServerHandle,
    },
}

impl Endpoint {
    pub fn url(&self) -> String {
        match self {
            Endpoint::Anvil(a) => a.endpoint(),
            Endpoint::DevChain { server, .. } => server.url(),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Endpoint::Anvil(_) => "anvil",
            Endpoint::DevChain { .. } => "devchain",
        }
    }
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The anvil binary installed by `scripts/setup.sh` (the platform binary, so that killing it stops the node), or
/// `SHOAL_ANVIL`.
pub fn anvil_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("SHOAL_ANVIL") {
        return Some(PathBuf::from(p));
    }
    let root = repo_root();
    [
        root.join("node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil"),
        root.join("node_modules/@foundry-rs/anvil-linux-arm64/bin/anvil"),
        root.join("node_modules/@foundry-rs/anvil-darwin-arm64/bin/anvil"),
        root.join("node_modules/.bin/anvil"),
    ]
    .into_iter()
    .find(|p| p.exists())
}

/// Starts anvil on a free loopback port. Without the binary: fails when `CI` is set, otherwise
/// returns `None` so the caller skips with a message.
pub fn start_anvil() -> Option<Endpoint> {
    let Some(path) = anvil_path() else {
        let msg = "anvil not found: run `scripts/setup.sh` (or set SHOAL_ANVIL)";
        if std::env::var_os("CI").is_some() {
            panic!("{msg}");
        }
        eprintln!("SKIPPED: {msg}");
        return None;
    };
    let anvil = Anvil::at(&path)
        .arg("--host")
        .arg("127.0.0.1")
        .try_spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", path.display()));
    Some(Endpoint::Anvil(anvil))
}

/// Starts the embedded devchain, served over HTTP on a free loopback port.
pub async fn start_devchain() -> Endpoint {
    let chain = DevChain::builder()
        .chain_id(31337)
        .data_dir(None)
        .build()
        .unwrap_or_else(|e| panic!("cannot build the devchain: {e}"));
    let server = chain
        .serve("127.0.0.1:0".parse().unwrap_or_else(|e| panic!("{e}")))
        .await
        .unwrap_or_else(|e| panic!("cannot serve the devchain: {e}"));
    Endpoint::DevChain {
        _chain: chain,
        server,
    }
}

/// The well-known dev keys (anvil's mnemonic), the same on both endpoints.
pub fn dev_keys(n: u32) -> Vec<PrivateKeySigner> {
    shoal_devchain::derive_dev_accounts(n)
        .unwrap_or_else(|e| panic!("cannot derive dev keys: {e}"))
        .into_iter()
        .map(|a| a.signer)
        .collect()
}

pub fn eth(milli: u64) -> U256 {
    U256::from(milli) * U256::from(10u64).pow(U256::from(15))
}

/// A client with key 0 and freshly deployed contracts.
pub async fn deployed(url: &str) -> (ChainClient, Deployment) {
    let keys = dev_keys(1);
    let client = ChainClient::connect(url, Some(keys[0].clone()))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let d = deploy(&client, DeployParams::default())
        .await
        .unwrap_or_else(|e| panic!("deploy: {e}"));
    let client = client
        .with_deployment(d.clone())
        .unwrap_or_else(|e| panic!("{e}"));
    (client, d)
}

/// Raw JSON-RPC call (time and mining controls).
pub async fn rpc(
    client: &ChainClient,
    method: &'static str,
    params: serde_json::Value,
) -> serde_json::Value {
    client
        .provider()
        .raw_request::<_, serde_json::Value>(method.into(), params)
        .await
        .unwrap_or_else(|e| panic!("{method}: {e}"))
}
