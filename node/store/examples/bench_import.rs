//! Import throughput: `bench_import FILE [STORE_DIR]` prints JSON with the
//! only-hash and into-store import rates of FILE (unixfs-v1-2025).

use std::{path::PathBuf, time::Instant};

use shoal_store::{Blockstore, Profile, hash_path};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args_os().skip(1);
    let file = PathBuf::from(
        args.next()
            .ok_or_else(|| anyhow::anyhow!("usage: bench_import FILE [STORE_DIR]"))?,
    );
    let store_dir = args.next().map(PathBuf::from);
    let size = std::fs::metadata(&file)?.len() as f64 / (1024.0 * 1024.0);

    let t = Instant::now();
    let cid = hash_path(&file, Profile::UnixfsV1_2025)?;
    let only_hash = t.elapsed().as_secs_f64();

    let mut stored = serde_json::Value::Null;
    if let Some(dir) = store_dir {
        let store = Blockstore::open(&dir)?;
        let t = Instant::now();
        let imported = store.add_path(&file, Profile::UnixfsV1_2025)?;
        let secs = t.elapsed().as_secs_f64();
        anyhow::ensure!(imported.cid == cid, "store import gave a different CID");
        stored = serde_json::json!({ "secs": secs, "mib_per_s": size / secs });
    }
    println!(
        "{}",
        serde_json::json!({
            "cid": cid.to_string(),
            "mib": size,
            "only_hash": { "secs": only_hash, "mib_per_s": size / only_hash },
            "into_store": stored,
        })
    );
    Ok(())
}
