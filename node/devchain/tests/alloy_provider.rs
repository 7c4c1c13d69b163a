//! alloy providers against the devchain: deploy the real market contracts, send,
//! call, decode custom errors, read logs with filters, fee filling, time controls.
// The market constructor takes nine parameters; `sol!` binds it as one function.
#![allow(clippy::too_many_arguments)]

mod common;

use std::time::Duration;

use alloy::eips::BlockNumberOrTag;
use alloy::network::{EthereumWallet, TransactionBuilder};
use alloy::primitives::{Address, B256, U256, aliases::U96, keccak256};
use alloy::providers::{Provider, ProviderBuilder};
use alloy::rpc::types::{Filter, TransactionRequest};
use alloy::signers::local::PrivateKeySigner;
use alloy::sol;
use alloy::sol_types::SolEvent;
use shoal_devchain::DevChain;

sol!(
    #[sol(rpc)]
    #[derive(Debug)]
    OperatorRegistry,
    "../../contracts/artifacts/OperatorRegistry.json"
);
sol!(
    #[sol(rpc)]
    #[derive(Debug)]
    JobMarket,
    "../../contracts/artifacts/JobMarket.json"
);

const ETH: u128 = 1_000_000_000_000_000_000;

fn caps() -> IOperatorRegistry::Capabilities {
    IOperatorRegistry::Capabilities {
        engines: 1,
        cpuMillicores: 2000,
        memoryMiB: 1024,
        diskGiB: 10,
        gpus: 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_send_call_revert_and_logs() -> anyhow::Result<()> {
    let (dc, server) = common::start().await?;
    let accounts = dc.dev_accounts().to_vec();
    let url = server.url().parse()?;
    let provider = ProviderBuilder::new()
        .wallet(accounts[0].signer.clone())
        .connect_http(url);

    assert_eq!(provider.get_chain_id().await?, 31337);
    assert_eq!(provider.get_block_number().await?, 0);
    let start_balance = provider.get_balance(accounts[0].address).await?;
    assert_eq!(start_balance, U256::from(10_000u64) * U256::from(ETH));

    // Deploy the registry (fills nonce, gas and EIP-1559 fees), then register with stake.
    let registry = OperatorRegistry::deploy(&provider, 3600u64, U96::from(ETH)).await?;
    assert!(!provider.get_code_at(*registry.address()).await?.is_empty());
    assert_eq!(registry.minStake().call().await?, U96::from(ETH));

    let reg = OperatorRegistry::new(*registry.address(), &provider);
    let receipt = reg
        .register(b"peer-0".to_vec().into(), caps())
        .value(U256::from(2 * ETH))
        .send()
        .await?
        .get_receipt()
        .await?;
    assert!(receipt.status());
    assert_eq!(receipt.block_number, Some(2));
    let decoded: Vec<_> = receipt
        .inner
        .logs()
        .iter()
        .filter_map(|l| l.log_decode::<OperatorRegistry::Staked>().ok())
        .collect();
    assert_eq!(decoded.len(), 1);
    assert_eq!(decoded[0].inner.operator, accounts[0].address);
    assert_eq!(decoded[0].inner.totalStake, U96::from(2 * ETH));
    assert!(reg.isRegistered(accounts[0].address).call().await?);

    // A second registration reverts with a custom error alloy decodes.
    let err = reg
        .register(b"peer-0".to_vec().into(), caps())
        .value(U256::from(2 * ETH))
        .call()
        .await
        .expect_err("registering twice must revert");
    let decoded = err
        .as_decoded_interface_error::<OperatorRegistry::OperatorRegistryErrors>()
        .expect("the revert data decodes as a registry error");
    match decoded {
        OperatorRegistry::OperatorRegistryErrors::OperatorRegistry__AlreadyRegistered(e) => {
            assert_eq!(e.operator, accounts[0].address)
        }
        other => panic!("unexpected error {other:?}"),
    }
    // Gas estimation reports the same revert.
    let err = reg
        .register(Default::default(), caps())
        .from(accounts[1].address)
        .value(U256::from(ETH))
        .estimate_gas()
        .await
        .expect_err("an empty peer id must revert");
    assert!(matches!(
        err.as_decoded_interface_error::<OperatorRegistry::OperatorRegistryErrors>(),
        Some(OperatorRegistry::OperatorRegistryErrors::OperatorRegistry__EmptyPeerId(_))
    ));

    // Two more operators register from their own keys; logs by address, topic and range.
    for (i, a) in accounts[1..3].iter().enumerate() {
        let p = ProviderBuilder::new()
            .wallet(a.signer.clone())
            .connect_http(server.url().parse()?);
        let r = OperatorRegistry::new(*registry.address(), &p)
            .register(format!("peer-{}", i + 1).into_bytes().into(), caps())
            .value(U256::from(ETH))
            .send()
            .await?
            .get_receipt()
            .await?;
        assert!(r.status());
    }
    let head = provider.get_block_number().await?;
    assert_eq!(head, 4);
    let all = provider
        .get_logs(
            &Filter::new()
                .address(*registry.address())
                .event_signature(OperatorRegistry::Staked::SIGNATURE_HASH)
                .from_block(0),
        )
        .await?;
    assert_eq!(all.len(), 3);
    assert_eq!(
        all.iter()
            .map(|l| l.block_number.unwrap_or_default())
            .collect::<Vec<_>>(),
        vec![2, 3, 4]
    );
    let by_operator = provider
        .get_logs(
            &Filter::new()
                .address(*registry.address())
                .event_signature(OperatorRegistry::Staked::SIGNATURE_HASH)
                .topic1(accounts[1].address.into_word())
                .from_block(0),
        )
        .await?;
    assert_eq!(by_operator.len(), 1);
    assert_eq!(by_operator[0].block_number, Some(3));
    let in_range = provider
        .get_logs(
            &Filter::new()
                .address(*registry.address())
                .from_block(3)
                .to_block(3),
        )
        .await?;
    assert!(!in_range.is_empty() && in_range.iter().all(|l| l.block_number == Some(3)));
    let other = provider
        .get_logs(&Filter::new().address(Address::repeat_byte(7)).from_block(0))
        .await?;
    assert!(other.is_empty());

    // The market deploys against the registry; posting a job emits JobPosted.
    let market = JobMarket::deploy(
        &provider,
        *registry.address(),
        3u8,
        U96::from(ETH / 10),
        1u32,
        2u32,
        2u32,
        20u16,
        100u16,
        0u32,
    )
    .await?;
    reg.setMarket(*market.address())
        .send()
        .await?
        .get_receipt()
        .await?;
    let params = IJobMarket::JobParams {
        specCid: b"bafy-spec".to_vec().into(),
        specHash: keccak256(b"spec"),
        concurrency: 1,
        confidence: 1,
        minBids: 1,
        maxPrice: U96::from(ETH / 100),
        collateral: U96::from(ETH / 100),
        bidWindow: 600,
        execWindow: 600,
        revealWindow: 600,
        challengeWindow: 0,
        verifier: 0,
        escalate: false,
        mediators: 0,
        creator: alloy::primitives::Address::ZERO,
    };
    let receipt = market
        .postJob(params)
        .value(U256::from(ETH / 100))
        .send()
        .await?
        .get_receipt()
        .await?;
    assert!(receipt.status(), "postJob failed: {receipt:?}");
    assert!(
        receipt
            .inner
            .logs()
            .iter()
            .any(|l| l.log_decode::<JobMarket::JobPosted>().is_ok())
    );

    // Block and transaction shapes alloy relies on.
    let block = provider
        .get_block_by_number(BlockNumberOrTag::Latest)
        .full()
        .await?
        .expect("latest block");
    assert_eq!(block.transactions.len(), 1);
    assert!(block.header.base_fee_per_gas.is_some());
    let tx = provider
        .get_transaction_by_hash(receipt.transaction_hash)
        .await?
        .expect("mined tx");
    assert_eq!(tx.block_hash, Some(block.header.hash));
    assert!(
        provider
            .get_transaction_receipt(B256::repeat_byte(1))
            .await?
            .is_none()
    );
    drop(server);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transaction_types_fees_and_time_controls() -> anyhow::Result<()> {
    let (dc, server) = common::start().await?;
    let a = dc.dev_accounts().to_vec();
    let provider = ProviderBuilder::new()
        .wallet(a[0].signer.clone())
        .connect_http(server.url().parse()?);
    let to = a[5].address;
    let before = provider.get_balance(to).await?;

    // Type 0 (legacy), type 1 (access list) and type 2 (EIP-1559).
    let gas_price = provider.get_gas_price().await?;
    let legacy = TransactionRequest::default()
        .with_to(to)
        .with_value(U256::from(1))
        .with_gas_price(gas_price);
    let r0 = provider
        .send_transaction(legacy)
        .await?
        .get_receipt()
        .await?;
    let al = TransactionRequest::default()
        .with_to(to)
        .with_value(U256::from(2))
        .with_gas_price(gas_price)
        .with_access_list(Default::default());
    let r1 = provider.send_transaction(al).await?.get_receipt().await?;
    let r2 = provider
        .send_transaction(
            TransactionRequest::default()
                .with_to(to)
                .with_value(U256::from(3)),
        )
        .await?
        .get_receipt()
        .await?;
    assert!(r0.status() && r1.status() && r2.status());
    assert_eq!(provider.get_balance(to).await? - before, U256::from(6));
    assert_eq!(provider.get_transaction_count(a[0].address).await?, 3);

    // Fee history and priority fee.
    let fh = provider
        .get_fee_history(3, BlockNumberOrTag::Latest, &[50.0])
        .await?;
    assert_eq!(fh.base_fee_per_gas.len(), 4);
    assert!(provider.get_max_priority_fee_per_gas().await? > 0);

    // eth_sendTransaction from an unlocked dev account.
    let hash: B256 = provider
        .raw_request(
            "eth_sendTransaction".into(),
            [serde_json::json!({"from": a[3].address, "to": to, "value": "0x10"})],
        )
        .await?;
    let r = provider
        .get_transaction_receipt(hash)
        .await?
        .expect("mined at once");
    assert_eq!(r.from, a[3].address);

    // Time controls.
    let t0 = provider
        .get_block_by_number(BlockNumberOrTag::Latest)
        .await?
        .expect("block")
        .header
        .timestamp;
    let _: serde_json::Value = provider
        .raw_request("evm_increaseTime".into(), [3600])
        .await?;
    let _: serde_json::Value = provider.raw_request("evm_mine".into(), ()).await?;
    let t1 = provider
        .get_block_by_number(BlockNumberOrTag::Latest)
        .await?
        .expect("block")
        .header
        .timestamp;
    assert!(t1 >= t0 + 3600, "{t1} < {t0} + 3600");
    let _: serde_json::Value = provider
        .raw_request("evm_setNextBlockTimestamp".into(), [t1 + 10_000])
        .await?;
    let n: u64 = provider.get_block_number().await?;
    let _: serde_json::Value = provider.raw_request("anvil_mine".into(), ["0x3"]).await?;
    assert_eq!(provider.get_block_number().await?, n + 3);
    let b = provider
        .get_block_by_number(BlockNumberOrTag::Number(n + 1))
        .await?
        .expect("block");
    assert_eq!(b.header.timestamp, t1 + 10_000);

    // Snapshot and revert.
    let snap: U256 = provider.raw_request("evm_snapshot".into(), ()).await?;
    let height = provider.get_block_number().await?;
    provider
        .send_transaction(
            TransactionRequest::default()
                .with_to(to)
                .with_value(U256::from(100)),
        )
        .await?
        .get_receipt()
        .await?;
    let reverted: bool = provider.raw_request("evm_revert".into(), [snap]).await?;
    assert!(reverted);
    assert_eq!(provider.get_block_number().await?, height);
    assert_eq!(provider.get_balance(to).await? - before, U256::from(6 + 16));

    // anvil_setBalance.
    let fresh = PrivateKeySigner::random();
    let _: serde_json::Value = provider
        .raw_request(
            "anvil_setBalance".into(),
            (fresh.address(), U256::from(ETH)),
        )
        .await?;
    assert_eq!(
        provider.get_balance(fresh.address()).await?,
        U256::from(ETH)
    );
    let p2 = ProviderBuilder::new()
        .wallet(EthereumWallet::from(fresh))
        .connect_http(server.url().parse()?);
    let r = p2
        .send_transaction(
            TransactionRequest::default()
                .with_to(to)
                .with_value(U256::from(1)),
        )
        .await?
        .get_receipt()
        .await?;
    assert!(r.status());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interval_mining_and_queued_nonces() -> anyhow::Result<()> {
    let dc = DevChain::builder()
        .block_time(Duration::from_millis(300))
        .build()?;
    let server = dc.serve("127.0.0.1:0".parse()?).await?;
    let a = dc.dev_accounts().to_vec();
    let provider = ProviderBuilder::new()
        .wallet(a[0].signer.clone())
        .connect_http(server.url().parse()?);
    // Several transactions land in one interval block.
    let mut pending = Vec::new();
    for i in 0..5u64 {
        let tx = TransactionRequest::default()
            .with_to(a[1].address)
            .with_value(U256::from(i + 1));
        pending.push(provider.send_transaction(tx).await?);
    }
    let mut blocks = Vec::new();
    for p in pending {
        let r = tokio::time::timeout(Duration::from_secs(20), p.get_receipt()).await??;
        blocks.push(r.block_number.unwrap_or_default());
    }
    assert!(blocks.windows(2).all(|w| w[0] <= w[1]));
    assert!(
        blocks.len()
            > blocks
                .iter()
                .collect::<std::collections::BTreeSet<_>>()
                .len(),
        "{blocks:?}"
    );
    // Empty blocks keep coming.
    let n = provider.get_block_number().await?;
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert!(provider.get_block_number().await? > n);
    Ok(())
}

/// A call whose refund lowers the gas it uses below what it needs while running (clearing a
/// storage slot): the estimate leaves room for the refunded gas, the call succeeds with it,
/// and it is within 1.5 % of the least limit that works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn estimate_covers_refunded_gas() -> anyhow::Result<()> {
    let (dc, server) = common::start().await?;
    let accounts = dc.dev_accounts().to_vec();
    let provider = ProviderBuilder::new()
        .wallet(accounts[0].signer.clone())
        .connect_http(server.url().parse()?);
    // Constructor: slot 0 = 1, then return the runtime `sstore(0, 0); stop`.
    let init: alloy::primitives::Bytes =
        "0x600160005560068060106000396000f3600060005500".parse()?;
    let deployed = provider
        .send_transaction(TransactionRequest::default().with_deploy_code(init))
        .await?
        .get_receipt()
        .await?;
    let clearer = deployed
        .contract_address
        .ok_or_else(|| anyhow::anyhow!("no contract address"))?;
    let call = TransactionRequest::default()
        .with_from(accounts[0].address)
        .with_to(clearer);
    let estimate = provider.estimate_gas(call.clone()).await?;
    let short = estimate * 97 / 100;
    let err = provider
        .call(call.clone().with_gas_limit(short))
        .await
        .err();
    assert!(
        err.is_some(),
        "{short} gas (3 % under the estimate {estimate}) is not enough"
    );
    let receipt = provider
        .send_transaction(call.with_gas_limit(estimate))
        .await?
        .get_receipt()
        .await?;
    assert!(receipt.status(), "the call succeeds with the estimate");
    assert!(
        receipt.gas_used < estimate,
        "the refund makes it use less ({}) than it needs ({estimate})",
        receipt.gas_used
    );
    Ok(())
}
