//! `shoal wallet`: keystore accounts compatible with Foundry's `cast wallet`.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Subcommand;
use serde_json::json;
use shoal_sdk::wallet::{self, KeySource, PRIVATE_KEY_ENV};

use super::{Ctx, eth, parse_amount, password, print_json};

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a new random key, encrypted in a keystore file (password from
    /// --password-file, SHOAL_PASSWORD, or a prompt).
    New {
        /// Account name (the keystore file name).
        #[arg(default_value = "default")]
        name: String,
    },
    /// Import a key: an existing keystore file (`--file`, e.g. from `cast wallet new`), or a raw
    /// private key from SHOAL_PRIVATE_KEY or a hidden prompt.
    Import {
        /// Account name.
        name: String,
        /// A Web3 Secret Storage keystore file to copy in (its password must decrypt it).
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
    },
    /// List the keystore accounts.
    List,
    /// Print the address of the selected key (--account, --keystore or SHOAL_PRIVATE_KEY).
    Address,
    /// Print the balance of an address (default: the selected key's).
    Balance {
        /// Address to look up.
        address: Option<alloy::primitives::Address>,
    },
    /// Send native tokens from the selected key.
    Send {
        /// Recipient.
        to: alloy::primitives::Address,
        /// Amount: `1.5ether`, `100gwei` or wei.
        amount: String,
    },
    /// Print the selected key's private key. Only with --reveal: anyone who sees it owns the account.
    PrivateKey {
        /// Yes, print the secret.
        #[arg(long)]
        reveal: bool,
    },
}

pub async fn run(ctx: &Ctx, cmd: Command) -> anyhow::Result<()> {
    match cmd {
        Command::New { name } => {
            let ks = ctx.keystore();
            let pw = new_password(ctx)?;
            let (address, path) = ks.create(&name, &pw)?;
            if ctx.json() {
                print_json(&json!({ "name": name, "address": address, "path": path }))?;
            } else {
                println!("{address}");
                eprintln!("created account `{name}` in {}", path.display());
            }
        }
        Command::Import { name, file } => {
            let ks = ctx.keystore();
            let (address, path) = match file {
                Some(f) => {
                    let pw = password(
                        ctx.global.password_file.as_deref(),
                        &format!("password of {}: ", f.display()),
                    )?;
                    ks.import_file(&name, &f, &pw)?
                }
                None => {
                    let raw = match std::env::var(PRIVATE_KEY_ENV).ok().filter(|v| !v.is_empty()) {
                        Some(k) => k,
                        None => rpassword::prompt_password("private key (hex): ").with_context(|| {
                            format!("no terminal to ask for the key; set {PRIVATE_KEY_ENV} or pass --file")
                        })?,
                    };
                    let key = wallet::parse_private_key(&raw)?;
                    let pw = new_password(ctx)?;
                    ks.import_key(&name, &key, &pw)?
                }
            };
            if ctx.json() {
                print_json(&json!({ "name": name, "address": address, "path": path }))?;
            } else {
                println!("{address}");
                eprintln!("imported account `{name}` into {}", path.display());
            }
        }
        Command::List => {
            let entries = ctx.keystore().list()?;
            if ctx.json() {
                print_json(&entries)?;
            } else if entries.is_empty() {
                eprintln!(
                    "no accounts in {}; create one with `shoal wallet new`",
                    ctx.keystore().dir().display()
                );
            } else {
                for e in entries {
                    let addr = e
                        .address
                        .map(|a| a.to_string())
                        .unwrap_or_else(|| "(address needs the password)".into());
                    println!("{:<20} {addr}", e.name);
                }
            }
        }
        Command::Address => {
            let address = match ctx.key_source()? {
                Some(KeySource::Keystore(p)) => match wallet::keystore_address(&p)? {
                    Some(a) => a,
                    None => ctx.signer()?.address(),
                },
                Some(KeySource::Raw(_)) => ctx.signer()?.address(),
                None => return Err(shoal_sdk::Error::NoKey.into()),
            };
            if ctx.json() {
                print_json(&json!({ "address": address }))?;
            } else {
                println!("{address}");
            }
        }
        Command::Balance { address } => {
            let address = match address {
                Some(a) => a,
                None => ctx.signer()?.address(),
            };
            let client = ctx.client(false).await?;
            let balance = client
                .chain()
                .balance(address)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            if ctx.json() {
                print_json(&json!({ "address": address, "wei": balance.to_string() }))?;
            } else {
                println!("{}", eth(balance));
            }
        }
        Command::Send { to, amount } => {
            let value = parse_amount(&amount)?;
            let client = ctx.client(true).await?;
            let me = client.address()?;
            let balance = client
                .chain()
                .balance(me)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            if balance <= value {
                return Err(shoal_sdk::Error::NoFunds {
                    address: me,
                    balance,
                    action: "this transfer".into(),
                    needed: value,
                }
                .into());
            }
            let receipt = client
                .chain()
                .transfer(to, value)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            if ctx.json() {
                print_json(
                    &json!({ "tx": receipt.transaction_hash, "to": to, "wei": value.to_string() }),
                )?;
            } else {
                println!("{}", receipt.transaction_hash);
                eprintln!("sent {} to {to}", eth(value));
            }
        }
        Command::PrivateKey { reveal } => {
            if !reveal {
                anyhow::bail!(
                    "this prints a secret; pass --reveal if you really want it on your screen"
                );
            }
            let signer = ctx.signer()?;
            println!("0x{}", alloy::hex::encode(signer.to_bytes()));
        }
    }
    Ok(())
}

/// A new password: --password-file, SHOAL_PASSWORD, or asked twice.
fn new_password(ctx: &Ctx) -> anyhow::Result<String> {
    if ctx.global.password_file.is_some() || std::env::var(shoal_sdk::wallet::PASSWORD_ENV).is_ok()
    {
        return Ok(password(ctx.global.password_file.as_deref(), "")?);
    }
    let a = password(None, "new password: ")?;
    let b = password(None, "repeat it: ")?;
    if a != b {
        anyhow::bail!("the passwords differ; try again");
    }
    if a.is_empty() {
        anyhow::bail!("an empty password would leave the key unprotected; choose one");
    }
    Ok(a)
}
