//! viem (the repository's pinned npm package, run by node) against a running
//! devchain: tests/js/devchain-viem.mjs deploys, calls, sends, waits for
//! receipts, reads logs and decodes a custom error.

mod common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viem_script_against_the_devchain() -> anyhow::Result<()> {
    let Some(node) = common::tool("node") else {
        return Ok(());
    };
    let root = common::repo_root();
    if !root.join("node_modules/viem").exists() {
        if std::env::var_os("CI").is_some() {
            panic!("node_modules/viem is missing: run `scripts/setup.sh`");
        }
        eprintln!("SKIPPED: node_modules/viem missing (run `scripts/setup.sh`)");
        return Ok(());
    }
    let (dc, server) = common::start().await?;
    let out = tokio::process::Command::new(node)
        .arg(root.join("tests/js/devchain-viem.mjs"))
        .arg(server.url())
        .current_dir(&root)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(std::time::Duration::from_secs(120), out).await??;
    assert!(
        out.status.success(),
        "viem script failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(summary["staked"], 2);
    assert_eq!(summary["error"], "OperatorRegistry__AlreadyRegistered");
    assert_eq!(summary["blocks"].as_u64(), Some(dc.block_number()));
    Ok(())
}
