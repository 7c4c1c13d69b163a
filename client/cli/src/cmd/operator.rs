//! `shoal operator`: register, stake, unstake and withdraw from the user's own key.

use clap::Subcommand;
use serde_json::json;

use super::{Ctx, eth, parse_amount, print_json};

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Register the key as an operator with an initial stake (at least the registry's minimum).
    Register {
        /// Initial stake (`1ether`, wei).
        #[arg(long)]
        stake: String,
        /// The node's libp2p peer id (default: the operator address).
        #[arg(long)]
        peer_id: Option<String>,
        /// Engines offered, comma separated.
        #[arg(long, default_value = "wasm", value_delimiter = ',')]
        engines: Vec<String>,
        /// CPU millicores offered.
        #[arg(long, default_value_t = 4000)]
        cpu_millicores: u32,
        /// Memory offered, MiB.
        #[arg(long, default_value_t = 4096)]
        memory_mib: u32,
        /// Disk offered, GiB.
        #[arg(long, default_value_t = 10)]
        disk_gib: u32,
    },
    /// Add stake.
    Stake {
        /// Amount (`1ether`, wei).
        amount: String,
    },
    /// Start unbonding part of the free stake; withdraw it after the unbonding period.
    Unstake {
        /// Amount (`1ether`, wei).
        amount: String,
    },
    /// Withdraw stake whose unbonding period is over.
    Withdraw,
    /// Show an operator's registration and stake (default: the selected key's).
    Status {
        /// Operator address.
        address: Option<alloy::primitives::Address>,
    },
}

fn chain_err(e: shoal_chain::Error) -> anyhow::Error {
    anyhow::anyhow!("{e}")
}

pub async fn run(ctx: &Ctx, cmd: Command) -> anyhow::Result<()> {
    if let Command::Status { address } = cmd {
        return status(ctx, address).await;
    }
    let client = ctx.client(true).await?;
    let chain = client.chain();
    let me = client.address()?;
    let balance = chain.balance(me).await.map_err(chain_err)?;
    let need_funds = |value: alloy::primitives::U256, action: &str| -> anyhow::Result<()> {
        if balance <= value {
            return Err(shoal_sdk::Error::NoFunds {
                address: me,
                balance,
                action: action.into(),
                needed: value,
            }
            .into());
        }
        Ok(())
    };
    let op_status = chain.operator_status(me).await.map_err(chain_err)?;
    let (what, receipt) = match cmd {
        Command::Register {
            stake,
            peer_id,
            engines,
            cpu_millicores,
            memory_mib,
            disk_gib,
        } => {
            let value = parse_amount(&stake)?;
            if op_status.registered {
                anyhow::bail!("{me} is already registered; add stake with `shoal operator stake`");
            }
            let min = chain.min_stake().await.map_err(chain_err)?;
            if value < min {
                anyhow::bail!(
                    "a stake of {} is below the registry's minimum of {}; pass --stake {}",
                    eth(value),
                    eth(min),
                    eth(min).replace(' ', "").to_lowercase()
                );
            }
            need_funds(value, "registering")?;
            let mut bits = 0u32;
            for e in &engines {
                bits |= match e.as_str() {
                    "wasm" => 1,
                    "docker" => 2,
                    other => anyhow::bail!("engine `{other}` is not wasm or docker"),
                };
            }
            let caps = shoal_chain::Capabilities {
                engines: bits,
                cpuMillicores: cpu_millicores,
                memoryMiB: memory_mib,
                diskGiB: disk_gib,
                gpus: 0,
            };
            let peer = peer_id.unwrap_or_else(|| me.to_string());
            (
                "registered",
                chain
                    .register(peer.into_bytes().into(), caps, value)
                    .await
                    .map_err(chain_err)?,
            )
        }
        Command::Stake { amount } => {
            let value = parse_amount(&amount)?;
            if !op_status.registered {
                anyhow::bail!(
                    "{me} is not a registered operator; register first with `shoal operator register --stake AMOUNT`"
                );
            }
            need_funds(value, "staking")?;
            ("staked", chain.stake(value).await.map_err(chain_err)?)
        }
        Command::Unstake { amount } => {
            let value = parse_amount(&amount)?;
            if !op_status.registered {
                anyhow::bail!("{me} is not a registered operator; there is no stake to unbond");
            }
            if value > op_status.free {
                anyhow::bail!(
                    "{me} has {} of free stake (of {} bonded; the rest is locked as collateral in running jobs); unstake at most that",
                    eth(op_status.free),
                    eth(op_status.stake)
                );
            }
            (
                "unbonding started",
                chain.request_withdrawal(value).await.map_err(chain_err)?,
            )
        }
        Command::Withdraw => {
            let op = chain.get_operator(me).await.map_err(chain_err)?;
            if op.pendingWithdrawal.is_zero() {
                anyhow::bail!(
                    "{me} has no pending withdrawal; start one with `shoal operator unstake AMOUNT`"
                );
            }
            let now = chain.block_timestamp().await.map_err(chain_err)?;
            if now < op.unlockTime {
                anyhow::bail!(
                    "{} is still unbonding until {} (unix time, {}s from the chain's clock); withdraw after that",
                    eth(alloy::primitives::U256::from(op.pendingWithdrawal)),
                    op.unlockTime,
                    op.unlockTime - now
                );
            }
            ("withdrawn", chain.withdraw().await.map_err(chain_err)?)
        }
        Command::Status { address } => return status(ctx, address).await,
    };
    if ctx.json() {
        print_json(&json!({ "operator": me, "action": what, "tx": receipt.transaction_hash }))?;
    } else {
        println!("{}", receipt.transaction_hash);
        eprintln!("{me}: {what}");
    }
    Ok(())
}

async fn status(ctx: &Ctx, address: Option<alloy::primitives::Address>) -> anyhow::Result<()> {
    let address = match address {
        Some(a) => a,
        None => ctx.signer()?.address(),
    };
    let client = ctx.client(false).await?;
    let chain = client.chain();
    let op = chain.get_operator(address).await.map_err(chain_err)?;
    let now = chain.block_timestamp().await.map_err(chain_err)?;
    let stake = alloy::primitives::U256::from(op.stake);
    let locked = alloy::primitives::U256::from(op.locked);
    let pending = alloy::primitives::U256::from(op.pendingWithdrawal);
    if ctx.json() {
        return print_json(&json!({
            "operator": address,
            "registered": op.registered,
            "peerId": String::from_utf8_lossy(&op.peerId),
            "engines": op.capabilities.engines,
            "stake": stake.to_string(),
            "locked": locked.to_string(),
            "free": (stake - locked).to_string(),
            "pendingWithdrawal": pending.to_string(),
            "unlockTime": op.unlockTime,
            "withdrawable": !pending.is_zero() && now >= op.unlockTime,
        }));
    }
    if !op.registered {
        println!(
            "{address}: not registered (register with `shoal operator register --stake AMOUNT`)"
        );
        return Ok(());
    }
    println!("operator     {address}");
    println!("peer id      {}", String::from_utf8_lossy(&op.peerId));
    println!("stake        {}", eth(stake));
    println!("locked       {}", eth(locked));
    println!("free         {}", eth(stake - locked));
    if !pending.is_zero() {
        let when = if now >= op.unlockTime {
            "withdrawable now".to_owned()
        } else {
            format!("unlocks in {}s", op.unlockTime - now)
        };
        println!("unbonding    {} ({when})", eth(pending));
    }
    Ok(())
}
