//! Keys: encrypted Web3 Secret Storage keystores (the format Foundry's `cast wallet`
//! and geth use) in a folder, or a raw key from the environment for CI.

use std::fmt;
use std::path::{Path, PathBuf};

use alloy::primitives::{Address, B256};
use alloy::signers::local::PrivateKeySigner;

use crate::{Error, Result};

/// Environment variable holding a raw private key (hex), for CI and scripts.
pub const PRIVATE_KEY_ENV: &str = "SHOAL_PRIVATE_KEY";
/// Environment variable holding the keystore password.
pub const PASSWORD_ENV: &str = "SHOAL_PASSWORD";

/// A folder of keystore files, one per account, named by the file name.
#[derive(Debug, Clone)]
pub struct Keystore {
    dir: PathBuf,
}

/// One keystore file in a [`Keystore`] folder.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KeystoreEntry {
    /// File name, used as `--account NAME`.
    pub name: String,
    /// Full path.
    pub path: PathBuf,
    /// The address, when the file records it (ours and geth's do; cast's do not).
    pub address: Option<Address>,
}

impl Keystore {
    /// A keystore folder (created on first write).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file of account `name`.
    pub fn path_of(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Every keystore file in the folder, sorted by name.
    pub fn list(&self) -> Result<Vec<KeystoreEntry>> {
        let rd = match std::fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io("keystore folder", &self.dir, e)),
        };
        let mut out = Vec::new();
        for entry in rd {
            let entry = entry.map_err(|e| Error::io("keystore folder", &self.dir, e))?;
            let path = entry.path();
            if !path.is_file() {
                continue;
            }
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            let Ok(json) = serde_json::from_str::<serde_json::Value>(&text) else {
                continue;
            };
            if json.get("crypto").or_else(|| json.get("Crypto")).is_none() {
                continue;
            }
            out.push(KeystoreEntry {
                name: entry.file_name().to_string_lossy().into_owned(),
                address: recorded_address(&json),
                path,
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Finds account `name` (a file name in the folder).
    pub fn find(&self, name: &str) -> Result<PathBuf> {
        let path = self.path_of(name);
        if name.contains('/') || !path.is_file() {
            return Err(Error::KeystoreNotFound {
                name: name.to_owned(),
                dir: self.dir.clone(),
            });
        }
        Ok(path)
    }

    /// Creates a new random key encrypted with `password` as account `name`.
    pub fn create(&self, name: &str, password: &str) -> Result<(Address, PathBuf)> {
        let signer = PrivateKeySigner::random();
        self.import_key(name, &signer.to_bytes(), password)
    }

    /// Encrypts an existing key as account `name`.
    pub fn import_key(&self, name: &str, key: &B256, password: &str) -> Result<(Address, PathBuf)> {
        check_name(name)?;
        let path = self.path_of(name);
        if path.exists() {
            return Err(Error::KeystoreExists { path });
        }
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| Error::io("keystore folder", &self.dir, e))?;
        let (signer, _) = PrivateKeySigner::encrypt_keystore(
            &self.dir,
            &mut rand::thread_rng(),
            key.as_slice(),
            password,
            Some(name),
        )
        .map_err(|e| Error::Decrypt {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        record_address(&path, signer.address())?;
        restrict_permissions(&path)?;
        Ok((signer.address(), path))
    }

    /// Copies an existing keystore file (e.g. one made by `cast wallet new`) in as account
    /// `name`, after checking that `password` decrypts it.
    pub fn import_file(
        &self,
        name: &str,
        file: &Path,
        password: &str,
    ) -> Result<(Address, PathBuf)> {
        check_name(name)?;
        let signer = decrypt(file, password)?;
        let path = self.path_of(name);
        if path.exists() {
            return Err(Error::KeystoreExists { path });
        }
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| Error::io("keystore folder", &self.dir, e))?;
        std::fs::copy(file, &path).map_err(|e| Error::io("keystore", &path, e))?;
        restrict_permissions(&path)?;
        Ok((signer.address(), path))
    }
}

fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::bad_arg(
            "account name",
            name,
            "use 1-64 of [A-Za-z0-9._-], not starting with `.`",
        ))
    }
}

/// Decrypts a keystore file.
pub fn decrypt(path: &Path, password: &str) -> Result<PrivateKeySigner> {
    if !path.is_file() {
        return Err(Error::io(
            "keystore",
            path,
            std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
        ));
    }
    PrivateKeySigner::decrypt_keystore(path, password).map_err(|e| Error::Decrypt {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// The address a keystore file records, if any (no password needed).
pub fn keystore_address(path: &Path) -> Result<Option<Address>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io("keystore", path, e))?;
    let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::Decrypt {
        path: path.to_path_buf(),
        reason: format!("not a keystore: {e}"),
    })?;
    Ok(recorded_address(&json))
}

fn recorded_address(json: &serde_json::Value) -> Option<Address> {
    let s = json.get("address")?.as_str()?;
    let s = s.strip_prefix("0x").unwrap_or(s);
    format!("0x{s}").parse().ok()
}

/// Adds the geth-style `address` field (lowercase hex, no 0x) so the address can be shown
/// without the password; `cast` and geth ignore or accept it.
fn record_address(path: &Path, address: Address) -> Result<()> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io("keystore", path, e))?;
    let mut json: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::Decrypt {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    if let Some(obj) = json.as_object_mut() {
        obj.insert("address".into(), hex::encode(address.as_slice()).into());
    }
    std::fs::write(path, json.to_string()).map_err(|e| Error::io("keystore", path, e))
}

fn restrict_permissions(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| Error::io("keystore", path, e))?;
    }
    Ok(())
}

/// Parses a private key given as 64 hex digits (0x optional).
pub fn parse_private_key(s: &str) -> Result<B256> {
    let t = s.trim();
    let t = t.strip_prefix("0x").unwrap_or(t);
    if t.len() != 64 {
        return Err(Error::BadKey(format!("{} hex digits", t.len())));
    }
    let bytes = hex::decode(t).map_err(|_| Error::BadKey("not hex".into()))?;
    let key = B256::from_slice(&bytes);
    PrivateKeySigner::from_bytes(&key)
        .map_err(|_| Error::BadKey("not a valid secp256k1 scalar".into()))?;
    Ok(key)
}

/// Where the signing key comes from.
#[derive(Clone)]
pub enum KeySource {
    /// An encrypted keystore file; the password is asked for when the key is needed.
    Keystore(PathBuf),
    /// A raw key (from [`PRIVATE_KEY_ENV`]).
    Raw(B256),
}

impl fmt::Debug for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySource::Keystore(p) => f.debug_tuple("Keystore").field(p).finish(),
            KeySource::Raw(_) => f.write_str("Raw(<secret>)"),
        }
    }
}

impl KeySource {
    /// Loads the signer; `password` is called only for keystores.
    pub fn signer(
        &self,
        password: impl FnOnce(&Path) -> Result<String>,
    ) -> Result<PrivateKeySigner> {
        match self {
            KeySource::Keystore(path) => {
                let pw = password(path)?;
                decrypt(path, &pw)
            }
            KeySource::Raw(key) => PrivateKeySigner::from_bytes(key)
                .map_err(|_| Error::BadKey("not a valid secp256k1 scalar".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_list_decrypt_round_trip() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::io("temp", "/tmp", e))?;
        let ks = Keystore::new(dir.path().join("keys"));
        assert!(ks.list()?.is_empty());
        let (addr, path) = ks.create("alice", "pw")?;
        let listed = ks.list()?;
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].name, "alice");
        assert_eq!(listed[0].address, Some(addr));
        assert_eq!(decrypt(&path, "pw")?.address(), addr);
        assert!(matches!(
            decrypt(&path, "wrong"),
            Err(Error::Decrypt { .. })
        ));
        assert!(matches!(
            ks.create("alice", "pw"),
            Err(Error::KeystoreExists { .. })
        ));
        assert!(matches!(ks.create("../x", "pw"), Err(Error::BadArg { .. })));
        Ok(())
    }

    #[test]
    fn import_key_gives_the_known_address() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::io("temp", "/tmp", e))?;
        let ks = Keystore::new(dir.path());
        // The first well-known dev key (anvil, hardhat).
        let key = parse_private_key(
            "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
        )?;
        let (addr, _) = ks.import_key("dev0", &key, "pw")?;
        assert_eq!(
            addr.to_string(),
            "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
        );
        assert!(parse_private_key("0x12").is_err());
        Ok(())
    }
}
