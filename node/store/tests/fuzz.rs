//! Property-based fuzzing of what the store reads from outside: CID strings
//! (`parse_cid`) and CAR files (`car::import_car`). Whatever the input, nothing
//! panics, an error says what is wrong, and a failed import leaves no block in
//! the store whose bytes do not hash to its CID (and pins nothing).

use std::collections::BTreeSet;
use std::fs;

use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestRunner};
use shoal_store::{Blockstore, Cid, Error, Profile, car, parse_cid};

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 10_000,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Runs `test` on `cases` of `strategy`, panicking with proptest's minimal failing input.
fn run<S: Strategy>(strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>)
where
    S::Value: std::fmt::Debug,
{
    let mut runner = TestRunner::new(config());
    if let Err(e) = runner.run(&strategy, test) {
        panic!("{e}");
    }
}

/// Valid CARs: a small folder (dag-pb directory, raw leaves) in both profiles.
fn valid_cars() -> Vec<Vec<u8>> {
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("src");
    fs::create_dir_all(src.join("sub")).expect("mkdir");
    fs::write(src.join("a.txt"), b"hello shoal\n").expect("write");
    fs::write(src.join("sub/b.bin"), vec![7u8; 300]).expect("write");
    fs::write(src.join("empty"), b"").expect("write");
    Profile::ALL
        .iter()
        .map(|&profile| {
            let store = Blockstore::open(tmp.path().join(profile.name())).expect("store");
            let root = store.add_path(&src, profile).expect("import").cid;
            let mut bytes = Vec::new();
            car::export_car(&store, &root, &mut bytes).expect("export");
            bytes
        })
        .collect()
}

fn valid_cids() -> Vec<String> {
    vec![
        "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi".to_owned(),
        "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG".to_owned(),
        "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku".to_owned(),
        "f01551220e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855".to_owned(),
        "zb2rhe5P4gXftAwvA4eXQ5HJwsER2owDyS9sKaQRRVQPn93bA".to_owned(),
        "bafkqaaa".to_owned(),
    ]
}

/// The import's error must say what is wrong: the CAR's problem, or the block
/// that does not hash to its CID, or the unsupported hash/codec.
fn assert_clear_import_error(e: &Error) {
    let msg = e.to_string();
    assert!(!msg.trim().is_empty(), "empty error");
    match e {
        Error::Car { reason, .. } => assert!(!reason.trim().is_empty(), "no reason: {msg}"),
        Error::Corrupt { .. } | Error::Unsupported { .. } => {}
        other => panic!("unexpected kind of CAR import error: {other:?} ({msg})"),
    }
}

/// Every block in the store hashes to its CID.
fn assert_store_sound(store: &Blockstore) {
    for cid in store.list().expect("list") {
        if let Err(e) = store.get(&cid) {
            panic!("the store holds block {cid} that does not verify: {e}");
        }
    }
}

fn pins(store: &Blockstore) -> BTreeSet<String> {
    store
        .pins()
        .expect("pins")
        .iter()
        .map(Cid::to_string)
        .collect()
}

fn check_import(store: &Blockstore, bytes: &[u8]) {
    let before = pins(store);
    match car::import_car(store, &mut &bytes[..]) {
        Ok(roots) => {
            for r in &roots {
                assert!(store.is_pinned(r), "root {r} not pinned");
            }
        }
        Err(e) => {
            assert_clear_import_error(&e);
            assert_eq!(pins(store), before, "a failed import pinned something: {e}");
        }
    }
    assert_store_sound(store);
}

#[derive(Debug, Clone)]
enum Edit {
    Flip(usize, u8),
    Set(usize, u8),
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
    Truncate(usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        3 => (any::<usize>(), 0u8..8).prop_map(|(i, b)| Edit::Flip(i, b)),
        2 => (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Edit::Set(i, b)),
        2 => (any::<usize>(), prop::collection::vec(any::<u8>(), 1..12))
            .prop_map(|(i, b)| Edit::Insert(i, b)),
        1 => (any::<usize>(), 1usize..40).prop_map(|(i, n)| Edit::Delete(i, n)),
        1 => any::<usize>().prop_map(Edit::Truncate),
    ]
}

fn apply(mut bytes: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for e in edits {
        let len = bytes.len();
        match e {
            Edit::Flip(i, bit) if len > 0 => bytes[i % len] ^= 1 << bit,
            Edit::Set(i, b) if len > 0 => bytes[i % len] = *b,
            Edit::Insert(i, b) => {
                let at = i % (len + 1);
                bytes.splice(at..at, b.iter().copied());
            }
            Edit::Delete(i, n) if len > 0 => {
                let at = i % len;
                bytes.drain(at..(at + n).min(len));
            }
            Edit::Truncate(i) => bytes.truncate(i % (len + 1)),
            _ => {}
        }
    }
    bytes
}

#[test]
fn arbitrary_strings_are_cids_or_clear_errors() {
    let cids = valid_cids();
    let mutated = (
        prop::sample::select(cids),
        any::<usize>(),
        any::<char>(),
        0u8..3,
    )
        .prop_map(|(cid, at, c, op)| {
            let mut chars: Vec<char> = cid.chars().collect();
            let i = at % chars.len();
            match op {
                0 => chars[i] = c,
                1 => chars.insert(i, c),
                _ => chars.truncate(i),
            }
            chars.into_iter().collect::<String>()
        });
    let strategy = prop_oneof![
        any::<String>(),
        "[bBfFzmMuUkKQ1 ][a-zA-Z0-9+/=_-]{0,80}",
        "(b|B)[a-z2-7]{0,120}",
        "f[0-9a-fA-F]{0,140}",
        mutated,
    ];
    run(strategy, |s| {
        match parse_cid(&s) {
            Ok(cid) => {
                let again = parse_cid(&cid.to_string()).expect("a parsed CID's text parses");
                prop_assert_eq!(again, cid);
            }
            Err(Error::BadCid { input, reason }) => {
                prop_assert_eq!(&input, &s);
                prop_assert!(!reason.trim().is_empty(), "no reason for {:?}", s);
            }
            Err(other) => prop_assert!(false, "{:?} gave {:?}", s, other),
        }
        Ok(())
    });
}

#[test]
fn arbitrary_bytes_import_no_bad_block() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = Blockstore::open(tmp.path()).expect("store");
    let header = valid_cars()[0][..60].to_vec();
    let strategy = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..1024),
        // A plausible start, then garbage sections.
        prop::collection::vec(any::<u8>(), 0..512).prop_map(move |tail| {
            let mut b = header.clone();
            b.extend(tail);
            b
        }),
    ];
    run(strategy, |bytes| {
        check_import(&store, &bytes);
        Ok(())
    });
}

#[test]
fn damaged_cars_import_no_bad_block() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = Blockstore::open(tmp.path()).expect("store");
    let cars = valid_cars();
    for c in &cars {
        let fresh = Blockstore::open(tmp.path().join("fresh")).expect("store");
        car::import_car(&fresh, &mut &c[..]).expect("the valid CAR imports");
    }
    let strategy = (
        prop::sample::select(cars),
        prop::collection::vec(edit(), 1..6),
    );
    run(strategy, |(car_bytes, edits)| {
        let damaged = apply(car_bytes, &edits);
        check_import(&store, &damaged);
        Ok(())
    });
}
