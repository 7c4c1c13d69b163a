//! Bitswap throughput between two Shoal nodes on loopback:
//! `bench_bitswap [MIB]` (default 256) prints JSON with MiB/s.

use std::{io::Read, sync::Arc, time::Instant};

use shoal_p2p::{Config, start};
use shoal_store::{Blockstore, Profile};

/// Deterministic pseudo-random bytes (so no two chunks dedupe).
struct Noise {
    left: u64,
    x: u64,
}

impl Read for Noise {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (buf.len() as u64).min(self.left) as usize;
        for b in &mut buf[..n] {
            self.x ^= self.x << 13;
            self.x ^= self.x >> 7;
            self.x ^= self.x << 17;
            *b = self.x as u8;
        }
        self.left -= n as u64;
        Ok(n)
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mib: u64 = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(256);
    let tmp = tempfile::tempdir()?;
    let a_store = Arc::new(Blockstore::open(tmp.path().join("a"))?);
    let b_store = Arc::new(Blockstore::open(tmp.path().join("b"))?);
    let root = a_store
        .add_reader(
            Noise {
                left: mib << 20,
                x: 0x9e37_79b9_7f4a_7c15,
            },
            Profile::UnixfsV1_2025,
        )?
        .cid;
    let listen = vec!["/ip4/127.0.0.1/tcp/0".parse()?];
    let a = start(
        a_store.clone(),
        Config {
            listen: listen.clone(),
            ..Config::default()
        },
    )
    .await?;
    let b = start(
        b_store.clone(),
        Config {
            listen,
            ..Config::default()
        },
    )
    .await?;
    b.dial(a.listen_addrs().await?.remove(0)).await?;
    let t = Instant::now();
    let blocks = b.fetch_dag(root).await?;
    let secs = t.elapsed().as_secs_f64();
    anyhow::ensure!(
        b_store.dag(&root)?.len() as u64 == blocks,
        "not every block arrived"
    );
    println!(
        "{}",
        serde_json::json!({ "mib": mib, "blocks": blocks, "secs": secs, "mib_per_s": mib as f64 / secs })
    );
    Ok(())
}
