//! Storage providers and publishers on real folders and a loopback HTTP
//! server.

#![allow(clippy::unwrap_used)]

use std::{
    fs,
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
    },
    time::Duration,
};

use sha2::{Digest, Sha256};
use shoal_store::{
    Blockstore, Error, Profile, Providers, Publishers, hash_path,
    providers::{FileProvider, HttpProvider, InlineProvider, IpfsProvider},
    publishers::{CarPublisher, FolderPublisher, StorePublisher},
};
use shoal_types::{InputSource, InputSpec};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

fn input(source: &str, path: &str, checksum: Option<String>) -> InputSpec {
    InputSpec {
        source: source.parse::<InputSource>().unwrap(),
        path: path.into(),
        checksum,
    }
}

/// A loopback HTTP/1.0 server: `/ok` (small body), `/big` (2 MiB, no
/// length header), `/flaky` (500 twice, then the body), `/slow` (never answers).
async fn server() -> (String, Arc<AtomicU32>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let hits = Arc::new(AtomicU32::new(0));
    let h = hits.clone();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = l.accept().await.unwrap();
            let h = h.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let n = s.read(&mut buf).await.unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]).to_string();
                let path = req.split_whitespace().nth(1).unwrap_or("/").to_owned();
                match path.as_str() {
                    "/ok" => {
                        let _ = s
                            .write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 11\r\n\r\nhello world")
                            .await;
                    }
                    "/big" => {
                        let _ = s.write_all(b"HTTP/1.0 200 OK\r\n\r\n").await;
                        let chunk = vec![7u8; 64 << 10];
                        for _ in 0..32 {
                            if s.write_all(&chunk).await.is_err() {
                                break;
                            }
                        }
                    }
                    "/flaky" => {
                        if h.fetch_add(1, Ordering::SeqCst) < 2 {
                            let _ = s
                                .write_all(b"HTTP/1.0 500 Oops\r\nContent-Length: 0\r\n\r\n")
                                .await;
                        } else {
                            let _ = s
                                .write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nfinal")
                                .await;
                        }
                    }
                    "/slow" => tokio::time::sleep(Duration::from_secs(30)).await,
                    _ => {
                        let _ = s
                            .write_all(b"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                            .await;
                    }
                }
                let _ = s.shutdown().await;
            });
        }
    });
    (format!("http://{addr}"), hits)
}

fn sha(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(b)))
}

#[tokio::test]
async fn http_provider_cap_checksum_retries_timeout() {
    let (base, hits) = server().await;
    let work = tempfile::tempdir().unwrap();
    let mut providers = Providers::new();
    providers.register(Box::new(HttpProvider::new(
        1 << 20,
        Duration::from_secs(2),
        3,
    )));

    let dest = providers
        .mount(
            &input(
                &format!("{base}/ok"),
                "/in/ok.txt",
                Some(sha(b"hello world")),
            ),
            work.path(),
        )
        .await
        .unwrap();
    assert_eq!(fs::read(&dest).unwrap(), b"hello world");
    assert!(fs::metadata(&dest).unwrap().permissions().readonly());

    let err = providers
        .mount(
            &input(&format!("{base}/ok"), "/in/bad.txt", Some(sha(b"other"))),
            work.path(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Checksum { .. }), "{err}");
    assert!(!work.path().join("in/bad.txt").exists());

    let err = providers
        .mount(&input(&format!("{base}/big"), "/in/big", None), work.path())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::TooLarge { .. }), "{err}");
    assert!(!work.path().join("in/big").exists());

    let dest = providers
        .mount(
            &input(&format!("{base}/flaky"), "/in/flaky", None),
            work.path(),
        )
        .await
        .unwrap();
    assert_eq!(fs::read(&dest).unwrap(), b"final");
    assert_eq!(hits.load(Ordering::SeqCst), 3);

    let err = providers
        .mount(
            &input(&format!("{base}/missing"), "/in/404", None),
            work.path(),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("404"), "{err}");

    let mut quick = Providers::new();
    quick.register(Box::new(HttpProvider::new(
        1 << 20,
        Duration::from_millis(300),
        1,
    )));
    let t = std::time::Instant::now();
    let err = quick
        .mount(
            &input(&format!("{base}/slow"), "/in/slow", None),
            work.path(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Download { .. }), "{err}");
    assert!(t.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn file_inline_and_ipfs_providers() {
    let tmp = tempfile::tempdir().unwrap();
    let allowed = tmp.path().join("allowed");
    fs::create_dir_all(allowed.join("data/sub")).unwrap();
    fs::write(allowed.join("data/sub/x"), b"x").unwrap();
    fs::write(tmp.path().join("secret"), b"s").unwrap();
    std::os::unix::fs::symlink(tmp.path().join("secret"), allowed.join("escape")).unwrap();
    let store = Arc::new(Blockstore::open(tmp.path().join("store")).unwrap());
    let cid = store
        .add_path(&allowed.join("data"), Profile::default())
        .unwrap()
        .cid;

    let mut providers = Providers::new();
    providers
        .register(Box::new(FileProvider {
            allow: vec![allowed.clone()],
        }))
        .register(Box::new(InlineProvider))
        .register(Box::new(IpfsProvider {
            store: store.clone(),
            fetcher: None,
            timeout: Duration::from_secs(1),
        }));
    let work = tmp.path().join("work");
    fs::create_dir_all(&work).unwrap();

    let d = providers
        .mount(
            &input(
                &format!("file://{}", allowed.join("data").display()),
                "/inputs/data",
                None,
            ),
            &work,
        )
        .await
        .unwrap();
    assert_eq!(fs::read(d.join("sub/x")).unwrap(), b"x");
    for bad in [
        format!("file://{}", tmp.path().join("secret").display()),
        format!("file://{}", allowed.join("escape").display()),
        format!("file://{}/../secret", allowed.display()),
    ] {
        let err = providers
            .mount(&input(&bad, "/inputs/bad", None), &work)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::BadPath { .. }), "{bad}: {err}");
    }
    let err = providers
        .mount(&input("inline:hi", "/inputs/../../etc/x", None), &work)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::BadPath { .. }), "{err}");

    let d = providers
        .mount(&input("inline:hello", "/inputs/hello.txt", None), &work)
        .await
        .unwrap();
    assert_eq!(fs::read(d).unwrap(), b"hello");

    let d = providers
        .mount(
            &input(&format!("ipfs://{cid}"), "/inputs/ipfs", None),
            &work,
        )
        .await
        .unwrap();
    assert_eq!(hash_path(&d, Profile::default()).unwrap(), cid);
    let d = providers
        .mount(
            &input(&format!("ipfs://{cid}/sub/x"), "/inputs/one", None),
            &work,
        )
        .await
        .unwrap();
    assert_eq!(fs::read(d).unwrap(), b"x");
    let err = providers
        .mount(
            &input(
                "ipfs://bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku",
                "/inputs/none",
                None,
            ),
            &work,
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"),
        "{err}"
    );
    let err = providers
        .mount(&input("ipfs://nonsense", "/inputs/bad-cid", None), &work)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::BadCid { .. }), "{err}");

    let empty = Providers::new();
    assert!(matches!(
        empty.mount(&input("inline:x", "/a", None), &work).await,
        Err(Error::NoProvider(_))
    ));
}

fn results(root: &Path) {
    fs::create_dir_all(root.join("outputs/out")).unwrap();
    fs::write(root.join("stdout"), b"ok\n").unwrap();
    fs::write(root.join("stderr"), b"").unwrap();
    fs::write(root.join("exitCode"), b"0").unwrap();
    fs::write(root.join("outputs/out/r.txt"), b"result").unwrap();
}

#[tokio::test]
async fn publishers_return_the_result_hash() {
    let tmp = tempfile::tempdir().unwrap();
    let res = tmp.path().join("results");
    results(&res);
    let want = hash_path(&res, Profile::UnixfsV1_2025).unwrap();
    let store = Arc::new(Blockstore::open(tmp.path().join("store")).unwrap());
    let mut pubs = Publishers::new();
    pubs.register(Box::new(StorePublisher {
        store: store.clone(),
        announcer: None,
    }))
    .register(Box::new(FolderPublisher {
        dir: tmp.path().join("published"),
    }))
    .register(Box::new(CarPublisher {
        store: store.clone(),
        dir: tmp.path().join("cars"),
    }));
    for name in ["store", "folder", "car"] {
        let p = pubs.get(name).unwrap().publish(&res).await.unwrap();
        assert_eq!(p.cid, want, "{name}");
    }
    assert!(store.is_pinned(&want));
    assert_eq!(
        hash_path(
            &tmp.path().join("published").join(want.to_string()),
            Profile::default()
        )
        .unwrap(),
        want
    );
    let car = tmp.path().join("cars").join(format!("{want}.car"));
    let other = Blockstore::open(tmp.path().join("other")).unwrap();
    assert_eq!(
        shoal_store::car::import_car(&other, &mut fs::File::open(car).unwrap()).unwrap(),
        vec![want]
    );
    assert!(matches!(pubs.get("s3"), Err(Error::NoPublisher(_))));
}
