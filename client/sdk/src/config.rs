//! The client configuration file, `~/.config/shoal/config.toml`, and its environment
//! overrides. Precedence: command-line flag > environment > config file > default.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Default requester node URL (the port `shoal serve` and `shoal devstack` listen on first).
pub const DEFAULT_NODE_URL: &str = "http://127.0.0.1:7070";

/// Environment variables that override the file.
pub mod env {
    /// Path of the config file.
    pub const CONFIG: &str = "SHOAL_CONFIG";
    /// Requester node URL.
    pub const NODE: &str = "SHOAL_NODE";
    /// Chain JSON-RPC URL.
    pub const RPC_URL: &str = "SHOAL_RPC_URL";
    /// Keystore folder.
    pub const KEYSTORE_DIR: &str = "SHOAL_KEYSTORE_DIR";
    /// Default account (keystore name).
    pub const ACCOUNT: &str = "SHOAL_ACCOUNT";
}

/// What the config file may hold; every field is optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Requester node URL.
    pub node: Option<String>,
    /// Chain JSON-RPC URL; by default the one the node reports in `/api/v1/deployment`.
    pub rpc_url: Option<String>,
    /// Folder of keystore files.
    pub keystore_dir: Option<PathBuf>,
    /// Account (keystore name) used to sign by default.
    pub account: Option<String>,
}

impl Config {
    /// `$SHOAL_CONFIG`, else `$XDG_CONFIG_HOME/shoal/config.toml`, else `~/.config/shoal/config.toml`.
    pub fn default_path() -> PathBuf {
        if let Some(p) = std::env::var_os(env::CONFIG) {
            return PathBuf::from(p);
        }
        config_home().join("shoal/config.toml")
    }

    /// Reads a config file; a missing file is an empty config.
    pub fn load(path: &Path) -> Result<Self> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(Error::io("config file", path, e)),
        };
        toml::from_str(&text).map_err(|e| Error::Config {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
    }

    /// Applies the `SHOAL_*` environment variables over the file's values.
    pub fn with_env(mut self) -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        if let Some(v) = var(env::NODE) {
            self.node = Some(v);
        }
        if let Some(v) = var(env::RPC_URL) {
            self.rpc_url = Some(v);
        }
        if let Some(v) = var(env::KEYSTORE_DIR) {
            self.keystore_dir = Some(v.into());
        }
        if let Some(v) = var(env::ACCOUNT) {
            self.account = Some(v);
        }
        self
    }

    /// The node URL to use.
    pub fn node_url(&self) -> String {
        self.node
            .clone()
            .unwrap_or_else(|| DEFAULT_NODE_URL.to_owned())
    }

    /// The keystore folder to use: the configured one, else `~/.config/shoal/keystores`.
    pub fn keystore_dir(&self) -> PathBuf {
        self.keystore_dir
            .clone()
            .unwrap_or_else(|| config_home().join("shoal/keystores"))
    }
}

fn config_home() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(x);
    }
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
        .join(".config")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects_unknown_keys() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::io("temp", "/tmp", e))?;
        let p = dir.path().join("config.toml");
        std::fs::write(&p, "node = \"http://127.0.0.1:9\"\naccount = \"alice\"\n")
            .map_err(|e| Error::io("t", &p, e))?;
        let c = Config::load(&p)?;
        assert_eq!(c.node_url(), "http://127.0.0.1:9");
        assert_eq!(c.account.as_deref(), Some("alice"));
        std::fs::write(&p, "nod = 1\n").map_err(|e| Error::io("t", &p, e))?;
        assert!(matches!(Config::load(&p), Err(Error::Config { .. })));
        assert_eq!(Config::load(&dir.path().join("none"))?, Config::default());
        Ok(())
    }
}
