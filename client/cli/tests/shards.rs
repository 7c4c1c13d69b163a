//! `shoal wasm run --shard-glob` and `shoal job shards` through the real binary against a
//! devstack: a local folder of files becomes one sharded job, every batch verifies, and the
//! merged result holds each file's own run.

mod common;

use common::{Devstack, fails, json, ok, repo_root};

#[test]
fn a_folder_of_files_runs_as_one_sharded_job() {
    let dir = tempfile::tempdir().expect("temp dir");
    let stack = Devstack::start(&["--nodes", "3"]);
    let tree = dir.path().join("tree");
    std::fs::create_dir_all(&tree).expect("mkdir");
    for i in 0..12 {
        std::fs::write(tree.join(format!("f{i:02}.txt")), "w ".repeat(i + 1)).expect("write");
    }
    std::fs::write(tree.join("skip.bin"), "not matched").expect("write");
    let wasm = repo_root().join("node/executor/testdata/wasm/wordcount.wasm");
    let run = |extra: &[&str]| {
        let mut c = stack.shoal();
        c.args(["wasm", "run"])
            .arg(&wasm)
            .arg("-i")
            .arg(format!("{}:/inputs", tree.display()))
            .args([
                "--shard-glob",
                "/inputs/*.txt",
                "--shard-size",
                "5",
                "--concurrency",
                "3",
                "--min-bids",
                "3",
                "--confidence",
                "2",
                "--bid-window",
                "5s",
                "--exec-window",
                "60s",
                "--reveal-window",
                "30s",
                "--wait-timeout",
                "3m",
            ])
            .args(extra)
            .args(["--", "/inputs"]);
        c
    };
    let out = ok(&mut run(&["--json"]));
    let v = json(&out);
    assert_eq!(v["job"]["state"], "Done", "{v:#}");
    assert_eq!(v["job"]["verified"], 3, "12 shards in batches of 5: {v:#}");
    assert_eq!(v["merged"]["shards"], 12, "{v:#}");
    let id = v["shardJobId"].to_string();
    let cid = v["merged"]["cid"].as_str().expect("cid").to_owned();

    // The merged folder: shard-000004/stdout counts f04.txt's five words.
    let got = dir.path().join("merged");
    ok(stack.shoal().args(["content", "get", &cid, "-o"]).arg(&got));
    let stdout = std::fs::read_to_string(got.join("shard-000004/stdout")).expect("stdout");
    assert!(stdout.contains('5'), "{stdout}");
    assert_eq!(std::fs::read_dir(&got).expect("merged").count(), 12);

    let shards = json(&ok(stack.shoal().args(["job", "shards", &id, "--json"])));
    assert_eq!(shards["merged"]["cid"], cid.as_str(), "{shards:#}");
    let text = common::stdout(&ok(stack.shoal().args(["job", "shards", &id])));
    assert!(text.contains("batch    2  Verified"), "{text}");

    // `job get --sharded`: the merged folder, checked against the verified roots; `--shard I`:
    // one shard's results folder; a shard that does not exist is refused with the range.
    let all = dir.path().join("all");
    let g = json(&ok(stack
        .shoal()
        .args(["job", "get", &id, "--sharded", "--json", "-o"])
        .arg(&all)));
    assert_eq!(g["cid"], cid.as_str(), "{g:#}");
    assert_eq!(g["shards"], 12, "{g:#}");
    assert_eq!(std::fs::read_dir(&all).expect("all").count(), 12);
    let one = dir.path().join("one");
    let g = json(&ok(stack
        .shoal()
        .args(["job", "get", &id, "--shard", "4", "--json", "-o"])
        .arg(&one)));
    assert_eq!(g["shards"], 1, "{g:#}");
    let stdout = std::fs::read_to_string(one.join("stdout")).expect("shard stdout");
    assert!(stdout.contains('5'), "{stdout}");
    let err = fails(
        stack
            .shoal()
            .args(["job", "get", &id, "--shard", "12", "-o"])
            .arg(dir.path().join("none")),
    );
    assert!(err.contains("there is no shard 12"), "{err}");
    // `job cancel --sharded` on an ended sharded job: nothing to cancel, said so.
    let err = fails(stack.shoal().args(["job", "cancel", &id, "--sharded"]));
    assert!(err.contains("had already ended (Done)"), "{err}");

    // A glob matching nothing is refused before posting, naming the glob.
    let err = fails(
        stack
            .shoal()
            .args(["wasm", "run"])
            .arg(&wasm)
            .arg("-i")
            .arg(format!("{}:/inputs", tree.display()))
            .args(["--shard-glob", "/inputs/*.png", "--bid-window", "5s"]),
    );
    assert!(err.contains("matches no file"), "{err}");
}
