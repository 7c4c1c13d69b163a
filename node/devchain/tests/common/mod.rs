//! Shared helpers for the devchain integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

use shoal_devchain::{DevChain, ServerHandle};

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A tool from the repository's npm tooling (`node_modules/.bin/NAME`) or PATH (`node`).
///
/// Returns `None` (the test then does nothing) only outside CI; with `CI` set a
/// missing tool fails the test with what to install.
pub fn tool(name: &str) -> Option<PathBuf> {
    let local = repo_root().join("node_modules/.bin").join(name);
    if local.exists() {
        return Some(local);
    }
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            let p = dir.join(name);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    if std::env::var_os("CI").is_some() {
        panic!(
            "{name} is required for this test: run `scripts/setup.sh` (it installs the npm tooling)"
        );
    }
    eprintln!("SKIPPED: {name} not found (run `scripts/setup.sh`); with CI set this fails");
    None
}

/// An in-memory devchain served on a free loopback port.
pub async fn start() -> anyhow::Result<(DevChain, ServerHandle)> {
    let dc = DevChain::builder().build()?;
    let server = dc.serve("127.0.0.1:0".parse()?).await?;
    Ok((dc, server))
}

/// Dev account 0's private key (the public, well-known anvil key).
pub const KEY0: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
/// Dev account 0.
pub const ADDR0: &str = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266";
/// Dev account 1.
pub const ADDR1: &str = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";

/// Sends one JSON-RPC call and returns the whole response object.
pub async fn rpc(
    url: &str,
    method: &str,
    params: serde_json::Value,
) -> anyhow::Result<serde_json::Value> {
    let body = serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    Ok(reqwest::Client::new()
        .post(url)
        .json(&body)
        .send()
        .await?
        .json()
        .await?)
}
