//! Transactions per second, devchain vs anvil, with the same client code in one run.
//!
//! ```text
//! cargo run --release -p shoal-devchain --example bench -- [--txs N] [--bids N] [--senders S]
//! ```
//!
//! For each node: pre-sign N plain transfers from S funded senders (default
//! 16) and N `JobMarket.bid` calls from 16 staked operators on jobs posted
//! beforehand; each sender sends its own transactions one after another over
//! HTTP JSON-RPC (`eth_sendRawTransaction`), all senders at once; the clock
//! stops when every sender's last receipt is in. Bid receipts' `gasUsed` must
//! be the same on both nodes. Anvil is `node_modules/.bin/anvil` (the
//! repository's pinned Foundry); the devchain runs in this process on its own
//! runtime, serving HTTP on loopback like anvil.
// The market constructor takes nine parameters; `sol!` binds it as one function.
#![allow(clippy::too_many_arguments)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use alloy::consensus::{SignableTransaction, TxEip1559, TxEnvelope};
use alloy::eips::eip2718::Encodable2718;
use alloy::primitives::{Address, B256, Bytes, TxKind, U256, aliases::U96, keccak256};
use alloy::providers::{Provider, ProviderBuilder};
use alloy::signers::SignerSync;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol;
use alloy::sol_types::SolCall;
use anyhow::{Context as _, bail};
use serde_json::{Value, json};
use shoal_devchain::DevChain;

sol!(
    #[sol(rpc)]
    OperatorRegistry,
    "../../contracts/artifacts/OperatorRegistry.json"
);
sol!(
    #[sol(rpc)]
    JobMarket,
    "../../contracts/artifacts/JobMarket.json"
);

const ETH: u128 = 1_000_000_000_000_000_000;
const OPERATORS: usize = 16;
const KEY0: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";

struct Opts {
    txs: usize,
    bids: usize,
    concurrency: usize,
}

fn opts() -> anyhow::Result<Opts> {
    let mut o = Opts {
        txs: 2000,
        bids: 800,
        concurrency: 16,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let v: usize = args
            .next()
            .context("every option takes a number")?
            .parse()?;
        match a.as_str() {
            "--txs" => o.txs = v,
            "--bids" => o.bids = v,
            "--senders" => o.concurrency = v.max(1),
            other => bail!("unknown option {other}; use --txs N --bids N --senders S"),
        }
    }
    Ok(o)
}

struct Rpc {
    url: String,
    http: reqwest::Client,
}

impl Rpc {
    async fn call(&self, method: &str, params: Value) -> anyhow::Result<Value> {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let v: Value = self
            .http
            .post(&self.url)
            .json(&body)
            .send()
            .await?
            .json()
            .await?;
        if let Some(e) = v.get("error") {
            bail!("{method}: {e}");
        }
        Ok(v["result"].clone())
    }

    /// Sends each lane's raw transactions in order, all lanes at once (one
    /// lane per sender, so no nonce ever arrives early); returns when every
    /// lane's last receipt exists.
    async fn blast(&self, lanes: &[Vec<(B256, Bytes)>]) -> anyhow::Result<Duration> {
        let start = Instant::now();
        let sends = lanes.iter().map(|lane| async move {
            for (_, raw) in lane {
                self.call("eth_sendRawTransaction", json!([raw])).await?;
            }
            Ok::<_, anyhow::Error>(())
        });
        for r in futures::future::join_all(sends).await {
            r.context("a transaction was refused")?;
        }
        for h in lanes.iter().filter_map(|l| l.last().map(|t| t.0)) {
            let deadline = Instant::now() + Duration::from_secs(120);
            while self
                .call("eth_getTransactionReceipt", json!([h]))
                .await?
                .is_null()
            {
                if Instant::now() > deadline {
                    let tx = self.call("eth_getTransactionByHash", json!([h])).await?;
                    let from = tx["from"].clone();
                    let mined = self
                        .call("eth_getTransactionCount", json!([from, "latest"]))
                        .await?;
                    bail!("no receipt for {h} after 120 s: tx {tx}, sender's mined nonce {mined}");
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
        Ok(start.elapsed())
    }

    /// Number of failed receipts, and each receipt's `gasUsed`.
    async fn failed(&self, hashes: &[B256]) -> anyhow::Result<(usize, Vec<u64>)> {
        let mut failed = 0;
        let mut gas = Vec::with_capacity(hashes.len());
        for h in hashes {
            let r = self.call("eth_getTransactionReceipt", json!([h])).await?;
            if r["status"] != "0x1" {
                failed += 1;
            }
            let g = r["gasUsed"]
                .as_str()
                .unwrap_or("0x0")
                .trim_start_matches("0x");
            gas.push(u64::from_str_radix(g, 16)?);
        }
        Ok((failed, gas))
    }
}

fn sign(signer: &PrivateKeySigner, tx: TxEip1559) -> anyhow::Result<(B256, Bytes)> {
    let sig = signer.sign_hash_sync(&tx.signature_hash())?;
    let env = TxEnvelope::from(tx.into_signed(sig));
    Ok((*env.tx_hash(), env.encoded_2718().into()))
}

/// Deterministic benchmark keys, so both nodes see the same accounts.
fn keys(label: &str, n: usize) -> anyhow::Result<Vec<PrivateKeySigner>> {
    (0..n)
        .map(|i| {
            Ok(PrivateKeySigner::from_bytes(&keccak256(format!(
                "{label}-{i}"
            )))?)
        })
        .collect()
}

fn tx(nonce: u64, to: Address, gas: u64, input: Bytes, value: U256) -> TxEip1559 {
    TxEip1559 {
        chain_id: 31337,
        nonce,
        gas_limit: gas,
        max_fee_per_gas: 100_000_000_000,
        max_priority_fee_per_gas: 1_000_000_000,
        to: TxKind::Call(to),
        value,
        input,
        access_list: Default::default(),
    }
}

struct Figures {
    transfers_tps: f64,
    bids_tps: f64,
    /// `gasUsed` of every bid receipt, in order (must match between nodes).
    bid_gas: Vec<u64>,
}

async fn run(url: &str, o: &Opts) -> anyhow::Result<Figures> {
    let rpc = Rpc {
        url: url.to_string(),
        http: reqwest::Client::new(),
    };
    let owner: PrivateKeySigner = KEY0.parse()?;
    let provider = ProviderBuilder::new()
        .wallet(owner.clone())
        .connect_http(url.parse()?);

    // Plain transfers from S funded senders, one lane each.
    let senders = keys("shoal-bench-sender", o.concurrency)?;
    for k in &senders {
        rpc.call(
            "anvil_setBalance",
            json!([k.address(), U256::from(1000 * ETH)]),
        )
        .await?;
    }
    let sink = Address::repeat_byte(0x42);
    let mut lanes: Vec<Vec<(B256, Bytes)>> = vec![Vec::new(); senders.len()];
    for i in 0..o.txs {
        let lane = i % senders.len();
        let nonce = lanes[lane].len() as u64;
        let t = tx(nonce, sink, 21_000, Bytes::new(), U256::from(1));
        lanes[lane].push(sign(&senders[lane], t)?);
    }
    let t = rpc.blast(&lanes).await?;
    let transfers_tps = o.txs as f64 / t.as_secs_f64();
    let hashes: Vec<B256> = lanes.iter().flatten().map(|t| t.0).collect();
    let (failed, _) = rpc.failed(&hashes).await?;
    if failed > 0 {
        bail!("{failed} transfers failed");
    }

    // The market: registry + market, 16 staked operators, jobs to bid on.
    let registry = OperatorRegistry::deploy(&provider, 3600u64, U96::from(ETH)).await?;
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
    registry
        .setMarket(*market.address())
        .send()
        .await?
        .get_receipt()
        .await?;
    let operators = keys("shoal-bench-operator", OPERATORS)?;
    for (i, op) in operators.iter().enumerate() {
        rpc.call(
            "anvil_setBalance",
            json!([op.address(), U256::from(1000 * ETH)]),
        )
        .await?;
        let p = ProviderBuilder::new()
            .wallet(op.clone())
            .connect_http(url.parse()?);
        let caps = IOperatorRegistry::Capabilities {
            engines: 1,
            cpuMillicores: 1000,
            memoryMiB: 1024,
            diskGiB: 1,
            gpus: 0,
        };
        OperatorRegistry::new(*registry.address(), &p)
            .register(format!("peer-{i}").into_bytes().into(), caps)
            .value(U256::from(100 * ETH))
            .send()
            .await?
            .get_receipt()
            .await?;
    }
    let jobs = o.bids.div_ceil(OPERATORS);
    let first_job = market.nextJobId().call().await?;
    for _ in 0..jobs {
        let params = IJobMarket::JobParams {
            specCid: b"bafy-bench".to_vec().into(),
            specHash: keccak256(b"bench"),
            concurrency: 1,
            confidence: 1,
            minBids: 32,
            maxPrice: U96::from(ETH / 100),
            collateral: U96::from(ETH / 1000),
            bidWindow: 86_400,
            execWindow: 600,
            revealWindow: 600,
            challengeWindow: 0,
            verifier: 0,
            escalate: false,
            mediators: 0,
            creator: alloy::primitives::Address::ZERO,
        };
        let r = market
            .postJob(params)
            .value(U256::from(ETH / 100))
            .send()
            .await?
            .get_receipt()
            .await?;
        if !r.status() {
            bail!("postJob failed");
        }
    }
    // One lane per operator: its bids on job 1, 2, 3, ... in nonce order.
    let mut lanes: Vec<Vec<(B256, Bytes)>> = vec![Vec::new(); OPERATORS];
    let mut count = 0;
    for (k, op) in operators.iter().enumerate() {
        let mut nonce = provider.get_transaction_count(op.address()).await?;
        for j in 0..jobs {
            // Bids are dealt job-major, so job j gets operators 0..16 until o.bids is reached.
            if j * OPERATORS + k >= o.bids {
                break;
            }
            let call = JobMarket::bidCall {
                jobId: first_job + U256::from(j),
                price: U96::from(ETH / 200),
            };
            let input: Bytes = call.abi_encode().into();
            lanes[k].push(sign(
                op,
                tx(nonce, *market.address(), 400_000, input, U256::ZERO),
            )?);
            nonce += 1;
            count += 1;
        }
    }
    let t = rpc.blast(&lanes).await?;
    let bids_tps = count as f64 / t.as_secs_f64();
    let hashes: Vec<B256> = lanes.iter().flatten().map(|t| t.0).collect();
    // Every bid is mined by now (each operator's last one is).
    let (failed, bid_gas) = rpc.failed(&hashes).await?;
    if failed > 0 {
        bail!("{failed} of {count} bids failed");
    }
    Ok(Figures {
        transfers_tps,
        bids_tps,
        bid_gas,
    })
}

fn start_anvil(port: u16) -> anyhow::Result<Child> {
    let bin = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../node_modules/.bin/anvil");
    Command::new(&bin)
        .args(["--port", &port.to_string(), "--silent"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("cannot start {} (run `scripts/setup.sh`)", bin.display()))
}

async fn wait_ready(url: &str) -> anyhow::Result<()> {
    let rpc = Rpc {
        url: url.to_string(),
        http: reqwest::Client::new(),
    };
    for _ in 0..200 {
        if rpc.call("eth_chainId", json!([])).await.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("{url} did not answer within 10 s")
}

fn main() -> anyhow::Result<()> {
    let o = opts()?;
    // The devchain gets its own runtime and threads, as anvil has its own process.
    let (tx_url, rx_url) = std::sync::mpsc::channel();
    std::thread::spawn(move || -> anyhow::Result<()> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        rt.block_on(async {
            let dc = DevChain::builder().build()?;
            let server = dc.serve("127.0.0.1:0".parse()?).await?;
            let _ = tx_url.send(server.url());
            server.wait().await;
            Ok(())
        })
    });
    let devchain_url = rx_url.recv_timeout(Duration::from_secs(30))?;

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let port = 18_000 + (std::process::id() % 2000) as u16;
        let mut anvil = start_anvil(port)?;
        let anvil_url = format!("http://127.0.0.1:{port}");
        let result = async {
            wait_ready(&anvil_url).await?;
            eprintln!("anvil ...");
            let a = run(&anvil_url, &o).await?;
            eprintln!("devchain ...");
            let d = run(&devchain_url, &o).await?;
            Ok::<_, anyhow::Error>((a, d))
        }
        .await;
        let _ = anvil.kill();
        let _ = anvil.wait();
        let (a, d) = result?;
        println!(
            "transfers: {} txs from {} senders | bids: {} txs from {OPERATORS} operators",
            o.txs, o.concurrency, o.bids
        );
        println!("| node | transfer tx/s | bid tx/s |");
        println!("|---|---:|---:|");
        println!(
            "| anvil 1.7.1 | {:.0} | {:.0} |",
            a.transfers_tps, a.bids_tps
        );
        println!(
            "| shoal devchain | {:.0} | {:.0} |",
            d.transfers_tps, d.bids_tps
        );
        // Arrival order within a job varies with concurrency; compare as multisets.
        let (mut ag, mut dg) = (a.bid_gas.clone(), d.bid_gas.clone());
        ag.sort_unstable();
        dg.sort_unstable();
        let same = ag == dg;
        println!(
            "bid receipts' gasUsed identical on both nodes: {} (total {} vs {})",
            if same { "yes" } else { "NO" },
            a.bid_gas.iter().sum::<u64>(),
            d.bid_gas.iter().sum::<u64>()
        );
        if !same {
            bail!("the devchain and anvil disagree on gas used");
        }
        Ok(())
    })
}
