//! The blockstore, export and CAR files, end to end on real folders.

#![allow(clippy::unwrap_used)]

mod common;

use std::{collections::BTreeMap, fs, path::Path, process::Command};

use sha2::{Digest, Sha256};
use shoal_store::{Blockstore, Error, Profile, car, export, hash_path};

fn sample_tree(root: &Path) {
    fs::create_dir_all(root.join("sub/empty")).unwrap();
    fs::create_dir_all(root.join("ünï/deeper")).unwrap();
    fs::write(root.join("a.txt"), b"alpha").unwrap();
    fs::write(root.join("empty-file"), b"").unwrap();
    fs::write(
        root.join("sub/big.bin"),
        (0..3_000_000u32)
            .map(|i| (i * 7 % 251) as u8)
            .collect::<Vec<_>>(),
    )
    .unwrap();
    fs::write(root.join("ünï/deeper/z"), "zèta".as_bytes()).unwrap();
}

/// Relative path → sha256 hex (files) or "dir".
fn listing(root: &Path) -> BTreeMap<String, String> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        for e in fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(base).unwrap().to_string_lossy().into_owned();
            if p.is_dir() {
                out.insert(rel, "dir".into());
                walk(base, &p, out);
            } else {
                out.insert(rel, hex::encode(Sha256::digest(fs::read(&p).unwrap())));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

#[test]
fn add_export_roundtrip_both_profiles() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    sample_tree(&src);
    let store = Blockstore::open(tmp.path().join("store")).unwrap();
    for profile in Profile::ALL {
        let added = store.add_path(&src, profile).unwrap();
        assert_eq!(added.cid, hash_path(&src, profile).unwrap());
        assert!(store.is_pinned(&added.cid));
        let out = tmp.path().join(format!("out-{profile}"));
        export::export(&store, &added.cid, &out).unwrap();
        assert_eq!(listing(&out), listing(&src));
        // The exported copy hashes to the same CID.
        assert_eq!(hash_path(&out, profile).unwrap(), added.cid);
        let err = export::export(&store, &added.cid, &out).unwrap_err();
        assert!(err.to_string().contains("already exists"), "{err}");
    }
}

#[test]
fn corrupt_block_is_an_error_never_data() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Blockstore::open(tmp.path().join("store")).unwrap();
    let f = tmp.path().join("f");
    fs::write(&f, b"some bytes").unwrap();
    let cid = store.add_path(&f, Profile::default()).unwrap().cid;
    assert_eq!(store.get(&cid).unwrap(), b"some bytes");
    // Flip the stored bytes behind the store's back.
    let mut corrupted = false;
    for e in walkdir(&tmp.path().join("store/blocks")) {
        fs::write(&e, b"some bytez").unwrap();
        corrupted = true;
    }
    assert!(corrupted);
    assert!(matches!(store.get(&cid), Err(Error::Corrupt { .. })));
    let out = tmp.path().join("out");
    assert!(matches!(
        export::export(&store, &cid, &out),
        Err(Error::Corrupt { .. })
    ));
    // A block that does not match its CID is refused on the way in too.
    assert!(matches!(
        store.put(&cid, b"other"),
        Err(Error::Corrupt { .. })
    ));
}

fn walkdir(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walkdir(&p))
        } else {
            out.push(p)
        }
    }
    out
}

#[test]
fn unknown_cid_is_not_found() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Blockstore::open(tmp.path()).unwrap();
    let cid = shoal_store::parse_cid("bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku")
        .unwrap();
    let err = store.get(&cid).unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }));
    assert!(
        err.to_string()
            .contains("bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku")
    );
    let bad = shoal_store::parse_cid("not-a-cid").unwrap_err();
    assert!(bad.to_string().contains("not-a-cid"), "{bad}");
}

#[test]
fn gc_removes_only_unpinned_blocks() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Blockstore::open(tmp.path().join("store")).unwrap();
    let keep = tmp.path().join("keep");
    let drop_ = tmp.path().join("drop");
    fs::write(&keep, vec![1u8; 3 << 20]).unwrap();
    fs::write(&drop_, vec![2u8; 2 << 20]).unwrap();
    let k = store.add_path(&keep, Profile::default()).unwrap().cid;
    let d = store.add_path(&drop_, Profile::default()).unwrap().cid;
    let before = store.list().unwrap().len();
    let stats = store.gc().unwrap();
    assert_eq!(stats.removed, 0);
    store.unpin(&d).unwrap();
    let stats = store.gc().unwrap();
    // The dropped file: its root and one distinct leaf (2 identical chunks).
    assert_eq!(stats.removed, 2, "{stats:?}");
    assert_eq!(store.list().unwrap().len(), before - 2);
    assert!(!store.has(&d));
    assert_eq!(store.dag(&k).unwrap().len(), 2);
    let out = tmp.path().join("out");
    export::export(&store, &k, &out).unwrap();
    assert_eq!(fs::read(&out).unwrap(), fs::read(&keep).unwrap());
}

#[test]
fn car_roundtrip_and_read_by_ipld_car() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    sample_tree(&src);
    let store = Blockstore::open(tmp.path().join("a")).unwrap();
    let root = store.add_path(&src, Profile::default()).unwrap().cid;
    let car_path = tmp.path().join("x.car");
    let mut f = fs::File::create(&car_path).unwrap();
    let n = car::export_car(&store, &root, &mut f).unwrap();
    drop(f);
    assert_eq!(n as usize, store.dag(&root).unwrap().len());

    // Into a second, empty store.
    let other = Blockstore::open(tmp.path().join("b")).unwrap();
    let roots = car::import_car(&other, &mut fs::File::open(&car_path).unwrap()).unwrap();
    assert_eq!(roots, vec![root]);
    let out = tmp.path().join("out");
    export::export(&other, &root, &out).unwrap();
    assert_eq!(listing(&out), listing(&src));

    // @ipld/car reads it, and ipfs-unixfs-exporter sees the same tree.
    common::require_node();
    let repo = common::repo_root();
    let o = Command::new("node")
        .current_dir(&repo)
        .arg(repo.join("tests/js/store-car.mjs"))
        .arg(&car_path)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["roots"][0], root.to_string());
    let js: BTreeMap<String, String> = serde_json::from_value(v["entries"].clone()).unwrap();
    let mut want = listing(&src);
    want.insert(String::new(), "dir".into());
    assert_eq!(js, want);
}

#[test]
fn truncated_or_tampered_car_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Blockstore::open(tmp.path().join("a")).unwrap();
    let f = tmp.path().join("f");
    fs::write(&f, b"content of a block").unwrap();
    let root = store.add_path(&f, Profile::default()).unwrap().cid;
    let mut bytes = Vec::new();
    car::export_car(&store, &root, &mut bytes).unwrap();
    let other = Blockstore::open(tmp.path().join("b")).unwrap();
    let cut = &bytes[..bytes.len() - 3];
    assert!(matches!(
        car::import_car(&other, &mut &cut[..]),
        Err(Error::Car { .. })
    ));
    let mut tampered = bytes.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    assert!(matches!(
        car::import_car(&other, &mut &tampered[..]),
        Err(Error::Corrupt { .. })
    ));
    assert!(!other.has(&root));
}

/// A folder built from already-stored DAGs (a sharded job's merged result) has the CID of the
/// same tree imported from disk, flat and past the HAMT threshold, in both profiles.
#[test]
fn a_folder_of_stored_dags_equals_importing_the_tree() {
    use shoal_store::{Importer, StoreSink};
    for profile in [Profile::UnixfsV1_2025, Profile::UnixfsV0_2015] {
        for (count, files_too) in [(3usize, true), (40, false), (3000, true)] {
            let dir = tempfile::tempdir().unwrap();
            let tree = dir.path().join("tree");
            for i in 0..count {
                let sub = tree.join(format!("shard-{i:06}"));
                fs::create_dir_all(sub.join("outputs")).unwrap();
                fs::write(sub.join("stdout"), format!("shard {i}\n")).unwrap();
                fs::write(sub.join("exitCode"), "0").unwrap();
                if files_too && i % 2 == 0 {
                    fs::write(tree.join(format!("note-{i}.txt")), b"n").unwrap();
                }
            }
            let want = hash_path(&tree, profile).unwrap();
            let store = Blockstore::open(dir.path().join("store")).unwrap();
            let mut entries = Vec::new();
            for e in fs::read_dir(&tree).unwrap() {
                let p = e.unwrap().path();
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                let added = store.add_path(&p, profile).unwrap();
                let imported = export::imported_of(&store, &added.cid).unwrap();
                assert_eq!(imported, added, "{name}");
                entries.push((name, imported, !p.is_dir()));
            }
            let mut sink = StoreSink(&store);
            let got = Importer::new(profile, &mut sink)
                .directory(entries)
                .unwrap();
            assert_eq!(got.cid, want, "{profile:?} {count}");
            let listed = export::list_dir(&store, &got.cid).unwrap();
            assert_eq!(
                listed.len(),
                count + if files_too { count.div_ceil(2) } else { 0 }
            );
        }
    }
}
