//! CID equality with helia's importer for both IPIP-499 profiles. Needs
//! `node` and the npm tooling `scripts/setup.sh` installs (helia, ipfs-unixfs-importer).

#![allow(clippy::unwrap_used)]

mod common;

use std::{fs, io::Write, path::Path};

use shoal_store::{
    BlockSink, Importer, Profile, hash_path,
    pb::{PbNode, Unixfs, UnixfsType},
};

fn write(path: &Path, bytes: &[u8]) {
    if let Some(p) = path.parent() {
        fs::create_dir_all(p).unwrap();
    }
    fs::write(path, bytes).unwrap();
}

/// Deterministic, non-repeating bytes.
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn compare(paths: &[&Path]) {
    for profile in Profile::ALL {
        let want = common::helia_cids(profile, paths);
        for (path, want) in paths.iter().zip(want) {
            let got = hash_path(path, profile).unwrap().to_string();
            assert_eq!(got, want, "{profile} {}", path.display());
        }
    }
}

#[test]
fn files_match_helia() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut paths = Vec::new();
    let cases: [(&str, usize); 8] = [
        ("empty", 0),
        ("one-byte", 1),
        ("v0-one-chunk", 256 << 10),
        ("v0-chunk-plus-one", (256 << 10) + 1),
        ("v1-one-chunk", 1 << 20),
        ("v1-chunk-plus-one", (1 << 20) + 1),
        ("v0-two-levels", 175 * (256 << 10) + 7),
        ("odd", 3 * (1 << 20) + 12345),
    ];
    for (i, (name, len)) in cases.iter().enumerate() {
        write(&d.join(name), &pattern(*len, i as u64 + 1));
        paths.push(d.join(name));
    }
    let refs: Vec<&Path> = paths.iter().map(|p| p.as_path()).collect();
    compare(&refs);
}

/// 1025 MiB: the v1 profile needs a second tree level. The file is sparse
/// (zeros plus a marker per MiB) so it costs a few MiB of disk.
#[test]
fn second_level_v1_matches_helia() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big");
    let mut f = fs::File::create(&path).unwrap();
    let mib = 1u64 << 20;
    f.set_len(1025 * mib + 99).unwrap();
    for i in 0..1025u64 {
        use std::io::Seek;
        f.seek(std::io::SeekFrom::Start(i * mib + (i % 1000)))
            .unwrap();
        f.write_all(&i.to_le_bytes()).unwrap();
    }
    drop(f);
    compare(&[&path]);
}

#[test]
fn nested_folder_matches_helia() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("results");
    write(&root.join("stdout"), b"hello\n");
    write(&root.join("stderr"), b"");
    write(&root.join("exitCode"), b"0");
    write(
        &root.join("outputs/données/été.txt"),
        "ünïcødé ✓".as_bytes(),
    );
    write(
        &root.join("outputs/données/日本語/ファイル"),
        &pattern(3 << 20, 9),
    );
    write(&root.join("outputs/Zeta"), b"capital first");
    write(&root.join("outputs/a b"), b"space");
    write(&root.join("outputs/🦀.bin"), &pattern(1 << 20, 3));
    fs::create_dir_all(root.join("outputs/empty")).unwrap();
    fs::create_dir_all(root.join("outputs/deep/er/empty-too")).unwrap();
    fs::create_dir_all(root.join("empty-top")).unwrap();
    let lone = dir.path().join("only-empty");
    fs::create_dir_all(&lone).unwrap();
    compare(&[&root, &lone]);
}

#[test]
fn hamt_sharded_folder_matches_helia() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("many");
    for i in 0..6000 {
        write(
            &root.join(format!("entry-{i:05}-ñ.txt")),
            format!("{i}").as_bytes(),
        );
    }
    write(&root.join("sub/inner.txt"), b"inside a shard");
    fs::create_dir_all(root.join("an-empty-folder")).unwrap();
    // Just below the v1 threshold: stays a flat directory.
    let small = dir.path().join("few");
    for i in 0..3000 {
        write(&small.join(format!("f{i:04}")), format!("{i}").as_bytes());
    }
    compare(&[&root, &small]);
}

/// Folders a few bytes under the shard threshold whose non-empty or empty
/// sub-folder tips the estimate over it: helia counts only files and empty
/// folders, and so must Shoal.
#[test]
fn shard_threshold_borderline_matches_helia() {
    let dir = tempfile::tempdir().unwrap();
    // v1 (`block-bytes`): 4 + 50 bytes per `fNNNNN` one-byte file; 5242
    // files = 262,104 bytes, 40 under 256 KiB; one more link tips it.
    // v0 (`links-bytes`): 40 bytes per file; 6553 files = 262,120.
    let cases = [
        ("v1-sub", 5242, true),
        ("v1-empty", 5242, false),
        ("v0-sub", 6553, true),
        ("v0-empty", 6553, false),
    ];
    let mut paths = Vec::new();
    for (name, files, non_empty) in cases {
        let root = dir.path().join(name);
        for i in 0..files {
            write(&root.join(format!("f{i:05}")), b"x");
        }
        if non_empty {
            write(&root.join("d0/x"), b"y");
        } else {
            fs::create_dir_all(root.join("e0")).unwrap();
        }
        paths.push(root);
    }
    // The cases sit on the boundary: the sub-folder decides the layout.
    let kinds: Vec<_> = paths
        .iter()
        .zip([
            Profile::UnixfsV1_2025,
            Profile::UnixfsV1_2025,
            Profile::UnixfsV0_2015,
            Profile::UnixfsV0_2015,
        ])
        .map(|(p, prof)| root_kind(p, prof))
        .collect();
    assert_eq!(
        kinds,
        [
            UnixfsType::Directory,
            UnixfsType::HamtShard,
            UnixfsType::Directory,
            UnixfsType::HamtShard
        ]
    );
    let refs: Vec<&Path> = paths.iter().map(|p| p.as_path()).collect();
    compare(&refs);
}

/// The UnixFS type of the root block of an import (the last block written).
fn root_kind(path: &Path, profile: Profile) -> UnixfsType {
    struct Last(Vec<u8>);
    impl BlockSink for Last {
        fn put_block(&mut self, _: &shoal_store::Cid, data: &[u8]) -> shoal_store::Result<()> {
            self.0 = data.to_vec();
            Ok(())
        }
    }
    let mut last = Last(Vec::new());
    Importer::new(profile, &mut last).import_path(path).unwrap();
    let node = PbNode::decode(&last.0).unwrap();
    Unixfs::decode(node.data.as_deref().unwrap()).unwrap().kind
}
