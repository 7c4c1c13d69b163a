//! `shoal devchain`: the embedded EVM node as a JSON-RPC server.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args as ClapArgs;
use shoal_devchain::{DEV_MNEMONIC, DevChain};

#[derive(Debug, ClapArgs)]
pub struct Args {
    /// Port of the HTTP JSON-RPC server.
    #[arg(long, short, default_value_t = 8545)]
    port: u16,
    /// Address to listen on.
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    host: IpAddr,
    /// Keep the chain in this directory across restarts (default: in memory).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Mine a block every S seconds instead of one block per transaction.
    #[arg(long, value_name = "S")]
    block_time: Option<f64>,
    /// Chain id.
    #[arg(long, default_value_t = shoal_devchain::DEFAULT_CHAIN_ID)]
    chain_id: u64,
    /// Number of prefunded dev accounts.
    #[arg(long, default_value_t = 10)]
    accounts: u32,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let block_time = match args.block_time {
        Some(s) if !(s.is_finite() && s > 0.0) => {
            anyhow::bail!("--block-time must be a positive number of seconds")
        }
        Some(s) => Some(Duration::from_secs_f64(s)),
        None => None,
    };
    let data_dir = args.data_dir.clone();
    let chain = tokio::task::spawn_blocking(move || {
        DevChain::builder()
            .chain_id(args.chain_id)
            .data_dir(data_dir)
            .block_time(block_time)
            .accounts(args.accounts)
            .build()
    })
    .await
    .context("devchain start-up was interrupted")??;
    let server = chain.serve(SocketAddr::new(args.host, args.port)).await?;

    println!("shoal devchain (chain id {})", chain.chain_id());
    println!();
    println!("Available accounts (10000 ETH each)");
    for (i, a) in chain.dev_accounts().iter().enumerate() {
        println!("({i}) {}", a.address);
    }
    println!();
    println!("Private keys (public, well-known dev keys: never use them on a real network)");
    for (i, a) in chain.dev_accounts().iter().enumerate() {
        println!("({i}) {}", a.private_key());
    }
    println!();
    println!("Mnemonic: {DEV_MNEMONIC}");
    println!("Derivation path: m/44'/60'/0'/0/i");
    match &args.data_dir {
        Some(d) => println!(
            "Data directory: {} (block {})",
            d.display(),
            chain.block_number()
        ),
        None => println!("Data directory: none (in memory)"),
    }
    match block_time {
        Some(t) => println!("Mining: a block every {}s", t.as_secs_f64()),
        None => println!("Mining: instant (one block per transaction)"),
    }
    println!();
    println!("Listening on {}", server.url());
    tokio::signal::ctrl_c()
        .await
        .context("cannot wait for Ctrl-C")?;
    eprintln!("shutting down");
    server.shutdown().await;
    Ok(())
}
