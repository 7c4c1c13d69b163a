//! `shoal content` through the real binary: add (stored and only-hash, both
//! profiles), get back byte for byte, CAR export into a second store, and the
//! errors for a malformed CID, an unknown CID and an existing output path.

mod common;

use std::fs;
use std::path::Path;

use common::{fails, ok, shoal};

fn line(out: &std::process::Output) -> String {
    common::stdout(out).trim().to_owned()
}

fn same_tree(a: &Path, b: &Path) {
    let mut names_a: Vec<_> = fs::read_dir(a)
        .expect("read a")
        .map(|e| e.expect("entry").file_name())
        .collect();
    let mut names_b: Vec<_> = fs::read_dir(b)
        .expect("read b")
        .map(|e| e.expect("entry").file_name())
        .collect();
    names_a.sort();
    names_b.sort();
    assert_eq!(names_a, names_b, "{} vs {}", a.display(), b.display());
    for name in names_a {
        let (pa, pb) = (a.join(&name), b.join(&name));
        if pa.is_dir() {
            same_tree(&pa, &pb);
        } else {
            assert_eq!(
                fs::read(&pa).expect("read"),
                fs::read(&pb).expect("read"),
                "{}",
                pa.display()
            );
        }
    }
}

#[test]
fn content_add_get_and_car_round_trip() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let input = tmp.path().join("in");
    fs::create_dir_all(input.join("sub/empty")).expect("mkdir");
    fs::write(input.join("a.txt"), b"hello shoal\n").expect("write");
    fs::write(input.join("sub/grüße.bin"), vec![7u8; 3 * 1024 * 1024 + 1]).expect("write");
    let store = tmp.path().join("store");
    let store_arg = store.to_str().expect("utf-8 path");

    // Only-hash and a stored add agree; the JSON form says which profile was used.
    let cid = line(&ok(shoal()
        .args(["content", "add", "--store", store_arg])
        .arg(&input)));
    let j: serde_json::Value = serde_json::from_slice(
        &ok(shoal()
            .args(["content", "add", "--only-hash", "--json"])
            .arg(&input))
        .stdout,
    )
    .expect("json");
    assert_eq!(j["cid"], cid.as_str());
    assert_eq!(j["profile"], "unixfs-v1-2025");
    assert!(cid.starts_with("bafy"), "CIDv1 expected, got {cid}");
    let v0 = line(&ok(shoal()
        .args([
            "content",
            "add",
            "--only-hash",
            "--profile",
            "unixfs-v0-2015",
        ])
        .arg(&input)));
    assert!(
        v0.starts_with("Qm") && v0 != cid,
        "CIDv0 expected, got {v0}"
    );

    // Get it back byte for byte, including the empty folder.
    let out = tmp.path().join("out");
    ok(shoal()
        .args(["content", "get", "--store", store_arg, &cid, "-o"])
        .arg(&out));
    same_tree(&input, &out);
    assert!(out.join("sub/empty").is_dir());

    // CAR export, import into a fresh store, get again.
    let car = tmp.path().join("dag.car");
    ok(shoal()
        .args(["content", "car", "export", "--store", store_arg, &cid, "-o"])
        .arg(&car));
    let store2 = tmp.path().join("store2");
    let store2_arg = store2.to_str().expect("utf-8 path");
    let imported = line(&ok(shoal()
        .args(["content", "car", "import", "--store", store2_arg])
        .arg(&car)));
    assert!(imported.contains(&cid), "import printed {imported}");
    let out2 = tmp.path().join("out2");
    ok(shoal()
        .args(["content", "get", "--store", store2_arg, &cid, "-o"])
        .arg(&out2));
    same_tree(&input, &out2);

    // Errors say what was wrong.
    let err = fails(
        shoal()
            .args(["content", "get", "--store", store_arg, "bafyNOTACID", "-o"])
            .arg(tmp.path().join("x")),
    );
    assert!(err.contains("not a valid CID"), "{err}");
    let other = tmp.path().join("other.txt");
    fs::write(&other, b"never added to any store").expect("write");
    let unknown = line(&ok(shoal()
        .args(["content", "add", "--only-hash"])
        .arg(&other)));
    let err = fails(
        shoal()
            .args(["content", "get", "--store", store2_arg, &unknown, "-o"])
            .arg(tmp.path().join("y")),
    );
    assert!(
        err.contains(&unknown),
        "the error should name the CID: {err}"
    );
    let err = fails(
        shoal()
            .args(["content", "get", "--store", store_arg, &cid, "-o"])
            .arg(&out),
    );
    assert!(err.to_lowercase().contains("exist"), "{err}");
}
