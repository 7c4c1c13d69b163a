//! Foundry's `forge script --broadcast` (the repository's `script/Deploy.s.sol`,
//! through `scripts/contracts.sh deploy`) deploys the market to a running
//! devchain, and the deployment it records is live on chain.

mod common;

use std::process::Command;

use common::KEY0;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forge_script_deploys_the_market() -> anyhow::Result<()> {
    let Some(_forge) = common::tool("forge") else {
        return Ok(());
    };
    let (dc, server) = common::start().await?;
    let rpc = server.url();
    let root = common::repo_root();
    // Inside `contracts/deployments/` (forge's only writable path); `*.local.json` is ignored by git.
    let name = format!(
        "deployments/forge-script-test-{}.local.json",
        std::process::id()
    );
    let file = root.join("contracts").join(&name);

    let (rpc_arg, name_arg, root_arg) = (rpc.clone(), name.clone(), root.clone());
    let out = tokio::task::spawn_blocking(move || {
        Command::new(root_arg.join("scripts/contracts.sh"))
            .args(["deploy", "--rpc-url", &rpc_arg, "--private-key", KEY0])
            .env("SHOAL_DEPLOYMENT_FILE", &name_arg)
            .current_dir(&root_arg)
            .output()
    })
    .await??;
    let deployment = std::fs::read(&file);
    let _ = std::fs::remove_file(&file);
    anyhow::ensure!(
        out.status.success(),
        "forge script failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let deployment: Value = serde_json::from_slice(&deployment?)?;
    assert_eq!(deployment["chainId"], 31337);
    let registry = deployment["operatorRegistry"].as_str().unwrap_or_default();
    let market = deployment["jobMarket"].as_str().unwrap_or_default();

    // Three transactions mined: two deployments and `setMarket`.
    assert!(
        dc.block_number() >= 3,
        "only {} blocks mined",
        dc.block_number()
    );
    for addr in [registry, market] {
        let code = dc.request("eth_getCode", json!([addr, "latest"]));
        let code = code.map_err(|e| anyhow::anyhow!("eth_getCode {addr}: {e:?}"))?;
        assert!(
            code.as_str().is_some_and(|c| c.len() > 2),
            "no code at {addr}"
        );
    }
    // registry.market() == market: selector of `market()` is 0x80f55605.
    let got = dc
        .request(
            "eth_call",
            json!([{ "to": registry, "data": "0x80f55605" }, "latest"]),
        )
        .map_err(|e| anyhow::anyhow!("eth_call market(): {e:?}"))?;
    let got = got.as_str().unwrap_or_default().to_lowercase();
    assert!(
        got.ends_with(&market.trim_start_matches("0x").to_lowercase()),
        "registry.market() = {got}, deployed market {market}"
    );
    Ok(())
}
