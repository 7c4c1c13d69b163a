//! A devchain with a data directory keeps every account, contract, block,
//! receipt and log across a restart, and survives a torn journal tail.

mod common;

use alloy::eips::BlockNumberOrTag;
use alloy::network::TransactionBuilder;
use alloy::primitives::{U256, aliases::U96};
use alloy::providers::{Provider, ProviderBuilder};
use alloy::rpc::types::{Filter, TransactionRequest};
use alloy::sol;
use shoal_devchain::{DevChain, JOURNAL_FILE};

/// Sends `wei` to `to` from the provider's default account and waits for the receipt.
async fn send_wei(
    provider: &impl Provider,
    to: alloy::primitives::Address,
    wei: u64,
) -> anyhow::Result<()> {
    provider
        .send_transaction(
            TransactionRequest::default()
                .with_to(to)
                .with_value(U256::from(wei)),
        )
        .await?
        .get_receipt()
        .await?;
    Ok(())
}

sol!(
    #[sol(rpc)]
    OperatorRegistry,
    "../../contracts/artifacts/OperatorRegistry.json"
);

const ETH: u128 = 1_000_000_000_000_000_000;

async fn snapshot(url: &str) -> anyhow::Result<Vec<serde_json::Value>> {
    let mut out = Vec::new();
    let n = common::rpc(url, "eth_blockNumber", serde_json::json!([])).await?["result"].clone();
    out.push(n.clone());
    let n = u64::from_str_radix(n.as_str().unwrap_or("0x0").trim_start_matches("0x"), 16)?;
    for i in 0..=n {
        let b = common::rpc(
            url,
            "eth_getBlockByNumber",
            serde_json::json!([format!("{i:#x}"), true]),
        )
        .await?;
        out.push(b["result"].clone());
        let r = common::rpc(
            url,
            "eth_getBlockReceipts",
            serde_json::json!([format!("{i:#x}")]),
        )
        .await?;
        out.push(r["result"].clone());
    }
    out.push(
        common::rpc(
            url,
            "eth_getLogs",
            serde_json::json!([{"fromBlock": "0x0"}]),
        )
        .await?["result"]
            .clone(),
    );
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_state_blocks_receipts_and_logs() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let dc = DevChain::builder()
        .data_dir(dir.path().to_path_buf())
        .build()?;
    let server = dc.serve("127.0.0.1:0".parse()?).await?;
    let a = dc.dev_accounts().to_vec();
    let provider = ProviderBuilder::new()
        .wallet(a[0].signer.clone())
        .connect_http(server.url().parse()?);

    let registry = OperatorRegistry::deploy(&provider, 3600u64, U96::from(ETH)).await?;
    let receipt = registry
        .register(
            b"peer".to_vec().into(),
            IOperatorRegistry::Capabilities {
                engines: 1,
                cpuMillicores: 1,
                memoryMiB: 1,
                diskGiB: 1,
                gpus: 0,
            },
        )
        .value(U256::from(3 * ETH))
        .send()
        .await?
        .get_receipt()
        .await?;
    assert!(receipt.status());
    send_wei(&provider, a[4].address, 12345).await?;
    // Cheats are persisted too, including a snapshot that is reverted.
    let _: bool = provider
        .raw_request("anvil_setBalance".into(), (a[9].address, U256::from(7)))
        .await?;
    let _: serde_json::Value = provider
        .raw_request("evm_increaseTime".into(), [1000])
        .await?;
    let snap: U256 = provider.raw_request("evm_snapshot".into(), ()).await?;
    send_wei(&provider, a[4].address, 1).await?;
    let _: bool = provider.raw_request("evm_revert".into(), [snap]).await?;
    let _: serde_json::Value = provider.raw_request("evm_mine".into(), ()).await?;

    let before = snapshot(&server.url()).await?;
    let code = provider.get_code_at(*registry.address()).await?;
    let slot0 = provider
        .get_storage_at(*registry.address(), U256::ZERO)
        .await?;
    server.shutdown().await;
    drop(dc);

    // Restart from the same directory: everything is back, byte for byte.
    let dc = DevChain::builder()
        .data_dir(dir.path().to_path_buf())
        .build()?;
    let server = dc.serve("127.0.0.1:0".parse()?).await?;
    let provider = ProviderBuilder::new()
        .wallet(a[0].signer.clone())
        .connect_http(server.url().parse()?);
    assert_eq!(snapshot(&server.url()).await?, before);
    assert_eq!(provider.get_code_at(*registry.address()).await?, code);
    assert_eq!(
        provider
            .get_storage_at(*registry.address(), U256::ZERO)
            .await?,
        slot0
    );
    assert_eq!(provider.get_balance(a[9].address).await?, U256::from(7));
    assert_eq!(
        provider.get_balance(a[4].address).await?,
        U256::from(10_000u64) * U256::from(ETH) + U256::from(12345)
    );
    let reg = OperatorRegistry::new(*registry.address(), &provider);
    assert!(reg.isRegistered(a[0].address).call().await?);
    let logs = provider
        .get_logs(&Filter::new().address(*registry.address()).from_block(0))
        .await?;
    assert!(!logs.is_empty());
    let r = provider
        .get_transaction_receipt(receipt.transaction_hash)
        .await?
        .expect("receipt kept");
    assert_eq!(r.block_hash, receipt.block_hash);
    // The chain goes on from where it was.
    let height = provider.get_block_number().await?;
    send_wei(&provider, a[4].address, 1).await?;
    assert_eq!(provider.get_block_number().await?, height + 1);
    let latest = provider
        .get_block_by_number(BlockNumberOrTag::Latest)
        .await?
        .expect("block");
    server.shutdown().await;
    drop(dc);

    // A crash mid-write leaves a torn record: it is dropped, the rest restores.
    let path = dir.path().join(JOURNAL_FILE);
    let mut bytes = std::fs::read(&path)?;
    bytes.extend_from_slice(&[200, 0, 0, 0, 1, 2, 3, 4, b'{', b'"']);
    std::fs::write(&path, &bytes)?;
    let dc = DevChain::builder()
        .data_dir(dir.path().to_path_buf())
        .build()?;
    assert_eq!(dc.block_number(), latest.header.number);
    let server = dc.serve("127.0.0.1:0".parse()?).await?;
    let provider = ProviderBuilder::new().connect_http(server.url().parse()?);
    let again = provider
        .get_block_by_number(BlockNumberOrTag::Latest)
        .await?
        .expect("block");
    assert_eq!(again.header.hash, latest.header.hash);

    // A different chain id is refused with a clear message.
    let err = DevChain::builder()
        .chain_id(1234)
        .data_dir(dir.path().to_path_buf())
        .build()
        .expect_err("chain id mismatch");
    assert!(err.to_string().contains("chain id 31337"), "{err}");
    Ok(())
}
