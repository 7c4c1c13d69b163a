//! Wallet round trips with Foundry's `cast wallet`: each side decrypts the other's keystore.

mod common;

use common::{fails, json, npm_tool, ok, shoal, stdout};

#[test]
fn keystores_round_trip_with_cast() {
    let Some(cast) = npm_tool("cast") else { return };
    let dir = tempfile::tempdir().expect("temp dir");
    let keys = dir.path().join("keys");
    let cast_dir = dir.path().join("cast");
    std::fs::create_dir_all(&cast_dir).expect("mkdir");

    // cast makes a keystore; shoal imports and decrypts it.
    let out = ok(std::process::Command::new(&cast)
        .args(["wallet", "new"])
        .arg(&cast_dir)
        .args(["castkey", "--unsafe-password", "pw-cast"]));
    let text = stdout(&out);
    let cast_addr = text
        .split_whitespace()
        .find(|w| w.starts_with("0x") && w.len() == 42)
        .unwrap_or_else(|| panic!("no address in cast's output:\n{text}"))
        .to_owned();
    let cast_file = cast_dir.join("castkey");
    assert!(
        cast_file.exists(),
        "cast did not write {}",
        cast_file.display()
    );
    ok(shoal()
        .args(["wallet", "import", "fromcast", "--file"])
        .arg(&cast_file)
        .arg("--keystore-dir")
        .arg(&keys)
        .env("SHOAL_PASSWORD", "pw-cast"));
    let out = ok(shoal()
        .args([
            "wallet",
            "address",
            "--account",
            "fromcast",
            "--keystore-dir",
        ])
        .arg(&keys)
        .env("SHOAL_PASSWORD", "pw-cast"));
    assert_eq!(stdout(&out).trim().to_lowercase(), cast_addr.to_lowercase());
    // A wrong password is refused with a hint.
    let err = fails(
        shoal()
            .args(["wallet", "address", "--keystore"])
            .arg(&cast_file)
            .env("SHOAL_PASSWORD", "nope"),
    );
    assert!(err.contains("cannot decrypt keystore"), "{err}");

    // shoal makes a keystore; cast decrypts it.
    let out = ok(shoal()
        .args(["wallet", "new", "mine", "--json", "--keystore-dir"])
        .arg(&keys)
        .env("SHOAL_PASSWORD", "pw-shoal"));
    let created = json(&out);
    let addr = created["address"].as_str().expect("address").to_owned();
    let path = created["path"].as_str().expect("path").to_owned();
    let out = ok(std::process::Command::new(&cast).args([
        "wallet",
        "address",
        "--keystore",
        &path,
        "--password",
        "pw-shoal",
    ]));
    assert_eq!(stdout(&out).trim().to_lowercase(), addr.to_lowercase());

    // list shows both accounts; the secret is printed only with --reveal.
    let list = json(&ok(shoal()
        .args(["wallet", "list", "--json", "--keystore-dir"])
        .arg(&keys)));
    let names: Vec<&str> = list
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|e| e["name"].as_str())
        .collect();
    assert_eq!(names, ["fromcast", "mine"]);
    let err = fails(
        shoal()
            .args([
                "wallet",
                "private-key",
                "--account",
                "mine",
                "--keystore-dir",
            ])
            .arg(&keys)
            .env("SHOAL_PASSWORD", "pw-shoal"),
    );
    assert!(err.contains("--reveal"), "{err}");
    let out = ok(shoal()
        .args([
            "wallet",
            "private-key",
            "--reveal",
            "--account",
            "mine",
            "--keystore-dir",
        ])
        .arg(&keys)
        .env("SHOAL_PASSWORD", "pw-shoal"));
    let key = stdout(&out).trim().to_owned();
    let out =
        ok(std::process::Command::new(&cast).args(["wallet", "address", "--private-key", &key]));
    assert_eq!(stdout(&out).trim().to_lowercase(), addr.to_lowercase());

    // A raw key from the environment, for CI.
    let out = ok(shoal()
        .args(["wallet", "address"])
        .env("SHOAL_PRIVATE_KEY", &key));
    assert_eq!(stdout(&out).trim().to_lowercase(), addr.to_lowercase());
    let err = fails(shoal().args(["wallet", "address"]));
    assert!(err.contains("no key is set"), "{err}");
    // The raw key imported into a keystore gives the same account.
    ok(shoal()
        .args(["wallet", "import", "ci", "--keystore-dir"])
        .arg(&keys)
        .env("SHOAL_PRIVATE_KEY", &key)
        .env("SHOAL_PASSWORD", "pw-ci"));
    let out = ok(shoal()
        .args(["wallet", "address", "--account", "ci", "--keystore-dir"])
        .arg(&keys)
        .env("SHOAL_PASSWORD", "pw-ci"));
    assert_eq!(stdout(&out).trim().to_lowercase(), addr.to_lowercase());
    // The config file names the default account and keystore folder.
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!("account = \"ci\"\nkeystore_dir = \"{}\"\n", keys.display()),
    )
    .expect("write config");
    let out = ok(shoal()
        .args(["wallet", "address", "--client-config"])
        .arg(&config)
        .env("SHOAL_PASSWORD", "pw-ci"));
    assert_eq!(stdout(&out).trim().to_lowercase(), addr.to_lowercase());
    // … and the environment overrides it.
    let err = fails(
        shoal()
            .args(["wallet", "address", "--client-config"])
            .arg(&config)
            .env("SHOAL_ACCOUNT", "nobody"),
    );
    assert!(err.contains("no keystore `nobody`"), "{err}");
}

#[test]
fn job_validate_checks_specs() {
    let dir = tempfile::tempdir().expect("temp dir");
    let good = dir.path().join("good.yaml");
    std::fs::write(
        &good,
        "name: wc\nengine:\n  wasm:\n    module: ipfs://bafkreifcnh6ed3z6zz2cewf3oeyyoa2csqtzz3cerujehgskfdgibpyz3i\n    args: [/inputs]\n\
         inputs:\n  - source: https://example.org/a.txt\n    path: /inputs/a.txt\ndeal:\n  concurrency: 3\n  confidence: 2\n",
    )
    .expect("write");
    let v = json(&ok(shoal().args(["job", "validate", "--json"]).arg(&good)));
    assert_eq!(v["valid"], true);
    assert_eq!(v["engine"], "wasm");
    assert_eq!(v["escrow"], "3000000000000000");
    assert!(v["specCid"].as_str().is_some_and(|c| c.starts_with("baf")));
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "engine:\n  wasm:\n    module: ipfs://x\ndeal:\n  concurrency: 2\n  confidence: 3\n",
    )
    .expect("write");
    let err = fails(shoal().args(["job", "validate"]).arg(&bad));
    assert!(err.contains("deal.confidence"), "{err}");
}
