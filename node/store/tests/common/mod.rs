//! Helpers to drive the helia reference scripts in `tests/js`.
#![allow(dead_code, clippy::unwrap_used)]

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use shoal_store::Profile;

/// The repository root (where `node_modules` and `tests/js` live).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// Fails with a clear message when node or the npm packages are missing.
pub fn require_node() {
    let ok = Command::new("node")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        ok,
        "these tests need `node` (Node 20) on PATH; install it and run `scripts/setup.sh`"
    );
    assert!(
        repo_root()
            .join("node_modules/ipfs-unixfs-importer")
            .is_dir(),
        "node_modules is missing: run `scripts/setup.sh`"
    );
}

/// CIDs helia's importer gives each path with `profile`.
pub fn helia_cids(profile: Profile, paths: &[&Path]) -> Vec<String> {
    require_node();
    let root = repo_root();
    let out = Command::new("node")
        .current_dir(&root)
        .arg(root.join("tests/js/store-import.mjs"))
        .arg(profile.name())
        .args(paths)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "helia import failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cids: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(cids.len(), paths.len());
    cids
}
