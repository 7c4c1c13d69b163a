//! One module per `shoal` subcommand group, and what they share: the global options, the
//! signing key and the connection to a node and the chain.

pub mod content;
pub mod deal;
pub mod devchain;
pub mod devstack;
pub mod job;
pub mod node;
pub mod operator;
pub mod pin;
pub mod pipeline;
pub mod run;
pub mod serve;
pub mod wallet;

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::Args;
use shoal_sdk::wallet::{KeySource, PASSWORD_ENV, PRIVATE_KEY_ENV};
use shoal_sdk::{Client, Config, Keystore};

/// Options every command takes.
#[derive(Debug, Clone, Args)]
pub struct Global {
    /// Requester node API URL [env: SHOAL_NODE] [default: http://127.0.0.1:7474].
    #[arg(long, global = true, value_name = "URL")]
    pub node: Option<String>,
    /// Chain JSON-RPC URL [env: SHOAL_RPC_URL] [default: the one the node reports].
    #[arg(long, global = true, value_name = "URL")]
    pub rpc_url: Option<String>,
    /// A deployment JSON (chainId, operatorRegistry, jobMarket, deployBlock[, rpcUrl]); chain
    /// commands then read the chain without asking the node where the contracts are.
    #[arg(long, global = true, value_name = "FILE", env = "SHOAL_DEPLOYMENT")]
    pub deployment: Option<PathBuf>,
    /// Sign with this keystore account (a name from `shoal wallet list`) [env: SHOAL_ACCOUNT].
    #[arg(long, global = true, value_name = "NAME")]
    pub account: Option<String>,
    /// Sign with this keystore file (e.g. one made by `cast wallet new`).
    #[arg(long, global = true, value_name = "FILE")]
    pub keystore: Option<PathBuf>,
    /// Folder of keystore accounts [env: SHOAL_KEYSTORE_DIR] [default: ~/.config/shoal/keystores].
    #[arg(long, global = true, value_name = "DIR")]
    pub keystore_dir: Option<PathBuf>,
    /// Read the keystore password from this file instead of SHOAL_PASSWORD or a prompt.
    #[arg(long, global = true, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// Client config file [env: SHOAL_CONFIG] [default: ~/.config/shoal/config.toml]
    /// (`shoal serve --config` is the node's own config).
    #[arg(long, global = true, value_name = "FILE")]
    pub client_config: Option<PathBuf>,
    /// Print results as JSON on stdout.
    #[arg(long, global = true)]
    pub json: bool,
}

/// The resolved options of one invocation.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub global: Global,
    pub config: Config,
}

impl Ctx {
    pub fn new(global: Global) -> anyhow::Result<Self> {
        let path = global
            .client_config
            .clone()
            .unwrap_or_else(Config::default_path);
        let config = Config::load(&path)?.with_env();
        Ok(Self { global, config })
    }

    pub fn json(&self) -> bool {
        self.global.json
    }

    pub fn node_url(&self) -> String {
        self.global
            .node
            .clone()
            .unwrap_or_else(|| self.config.node_url())
    }

    pub fn rpc_url(&self) -> Option<String> {
        self.global
            .rpc_url
            .clone()
            .or_else(|| self.config.rpc_url.clone())
    }

    pub fn keystore(&self) -> Keystore {
        Keystore::new(
            self.global
                .keystore_dir
                .clone()
                .unwrap_or_else(|| self.config.keystore_dir()),
        )
    }

    /// Where the signing key comes from: --keystore, --account, SHOAL_PRIVATE_KEY, then the
    /// configured account.
    pub fn key_source(&self) -> anyhow::Result<Option<KeySource>> {
        if let Some(p) = &self.global.keystore {
            return Ok(Some(KeySource::Keystore(p.clone())));
        }
        if let Some(name) = &self.global.account {
            return Ok(Some(KeySource::Keystore(self.keystore().find(name)?)));
        }
        if let Some(raw) = std::env::var(PRIVATE_KEY_ENV)
            .ok()
            .filter(|v| !v.is_empty())
        {
            let key = shoal_sdk::wallet::parse_private_key(&raw)
                .with_context(|| format!("{PRIVATE_KEY_ENV} is set"))?;
            return Ok(Some(KeySource::Raw(key)));
        }
        if let Some(name) = &self.config.account {
            return Ok(Some(KeySource::Keystore(self.keystore().find(name)?)));
        }
        Ok(None)
    }

    /// The password of a keystore: --password-file, SHOAL_PASSWORD, else a prompt.
    pub fn password(&self, keystore: &Path) -> shoal_sdk::Result<String> {
        password(
            self.global.password_file.as_deref(),
            &format!("password for {}: ", keystore.display()),
        )
    }

    /// The signer, or an error that says how to configure one.
    pub fn signer(&self) -> anyhow::Result<alloy::signers::local::PrivateKeySigner> {
        let source = self.key_source()?.ok_or(shoal_sdk::Error::NoKey)?;
        Ok(source.signer(|p| self.password(p))?)
    }

    /// A client; with `sign` it loads the key first.
    pub async fn client(&self, sign: bool) -> anyhow::Result<Client> {
        let signer = if sign { Some(self.signer()?) } else { None };
        let rpc = self.rpc_url();
        match &self.global.deployment {
            Some(path) => {
                let text = std::fs::read_to_string(path).with_context(|| {
                    format!("cannot read the deployment file {}", path.display())
                })?;
                let d: shoal_sdk::api::Deployment = serde_json::from_str(&text)
                    .with_context(|| format!("{} is not a deployment file", path.display()))?;
                Ok(Client::with_deployment(&self.node_url(), d, rpc.as_deref(), signer).await?)
            }
            None => Ok(Client::connect(&self.node_url(), rpc.as_deref(), signer).await?),
        }
    }
}

/// Reads a password: from `file`, SHOAL_PASSWORD, or a prompt on the terminal.
pub fn password(file: Option<&Path>, prompt: &str) -> shoal_sdk::Result<String> {
    if let Some(f) = file {
        let text = std::fs::read_to_string(f).map_err(|e| shoal_sdk::Error::Io {
            what: "password file",
            path: f.to_path_buf(),
            source: e,
        })?;
        return Ok(text.trim_end_matches(['\n', '\r']).to_owned());
    }
    if let Ok(pw) = std::env::var(PASSWORD_ENV) {
        return Ok(pw);
    }
    if !std::io::stdin().is_terminal() {
        return Err(shoal_sdk::Error::Decrypt {
            path: PathBuf::from(prompt.trim_end_matches(": ")),
            reason: format!(
                "no terminal to ask for the password; set {PASSWORD_ENV} or pass --password-file"
            ),
        });
    }
    rpassword::prompt_password(prompt).map_err(|e| shoal_sdk::Error::Io {
        what: "terminal",
        path: PathBuf::from("/dev/tty"),
        source: e,
    })
}

/// Prints a value as pretty JSON on stdout.
/// Refuses a destination folder that already holds something (results are never mixed into
/// existing files).
pub fn ensure_empty_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    if dir.exists()
        && std::fs::read_dir(dir)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        anyhow::bail!(
            "{} already exists and is not empty; pick another folder with -o",
            dir.display()
        );
    }
    Ok(())
}

pub fn print_json(v: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// Parses an amount: `1.5ether`, `2eth`, `100gwei`, `123wei` or a plain number of wei.
pub fn parse_amount(s: &str) -> anyhow::Result<alloy::primitives::U256> {
    let t = s.trim().to_ascii_lowercase();
    let (num, unit) = if let Some(n) = t.strip_suffix("ether") {
        (n, "ether")
    } else if let Some(n) = t.strip_suffix("eth") {
        (n, "ether")
    } else if let Some(n) = t.strip_suffix("gwei") {
        (n, "gwei")
    } else if let Some(n) = t.strip_suffix("wei") {
        (n, "wei")
    } else {
        (t.as_str(), "wei")
    };
    let v = alloy::primitives::utils::parse_units(num.trim(), unit).map_err(|e| {
        anyhow::anyhow!("`{s}` is not an amount ({e}); write e.g. 1.5ether, 100gwei or 1000 (wei)")
    })?;
    Ok(v.get_absolute())
}

/// Formats wei as ETH.
pub use shoal_types::human_bytes;

pub fn eth(v: alloy::primitives::U256) -> String {
    let s = alloy::primitives::utils::format_ether(v);
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    };
    format!("{s} ETH")
}
