//! Keys read from disk: the node's identity (so its peer id survives
//! restarts) and the private network's pre-shared key.

use std::path::Path;

use libp2p::identity::Keypair;

use crate::{Error, Result};

/// The header line of a go-ipfs / kubo `swarm.key` file.
const SWARM_KEY_HEADER: &str = "/key/swarm/psk/1.0.0/";

/// Parses a private-network key: either a go-ipfs `swarm.key`
/// (`/key/swarm/psk/1.0.0/`, `/base16/`, 64 hex digits, one per line) or a
/// bare string of 64 hex digits. Surrounding whitespace is ignored.
pub fn parse_psk(text: &str) -> Result<[u8; 32]> {
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let first = lines.next().ok_or_else(|| Error::Psk("empty".into()))?;
    let hex_key = if first == SWARM_KEY_HEADER {
        match lines.next() {
            Some("/base16/") => {}
            Some(enc) => {
                return Err(Error::Psk(format!(
                    "encoding {enc:?} is not supported, only /base16/"
                )));
            }
            None => return Err(Error::Psk("missing the /base16/ line".into())),
        }
        lines
            .next()
            .ok_or_else(|| Error::Psk("missing the key line".into()))?
    } else {
        first
    };
    if lines.next().is_some() {
        return Err(Error::Psk("unexpected text after the key".into()));
    }
    let bytes = hex::decode(hex_key).map_err(|e| Error::Psk(format!("not hex: {e}")))?;
    <[u8; 32]>::try_from(bytes.as_slice())
        .map_err(|_| Error::Psk(format!("{} bytes, need 32", bytes.len())))
}

/// Reads and parses a private-network key file (see [`parse_psk`]).
pub fn load_psk(path: impl AsRef<Path>) -> Result<[u8; 32]> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Psk(format!("cannot read {}: {e}", path.display())))?;
    parse_psk(&text)
}

/// Formats `key` as a go-ipfs `swarm.key` file.
pub fn format_swarm_key(key: &[u8; 32]) -> String {
    format!("{SWARM_KEY_HEADER}\n/base16/\n{}\n", hex::encode(key))
}

/// The node identity stored at `path` (libp2p protobuf encoding), or a new
/// ed25519 one written there (mode 0600) when the file does not exist.
pub fn load_or_create_keypair(path: impl AsRef<Path>) -> Result<Keypair> {
    let path = path.as_ref();
    let err = |reason: String| Error::Key {
        path: path.display().to_string(),
        reason,
    };
    match std::fs::read(path) {
        Ok(bytes) => Keypair::from_protobuf_encoding(&bytes).map_err(|e| {
            err(format!(
                "not a libp2p private key ({e}); move it away to create a new identity"
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = Keypair::generate_ed25519();
            let bytes = key
                .to_protobuf_encoding()
                .map_err(|e| err(format!("cannot encode: {e}")))?;
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .map_err(|e| err(format!("cannot create {}: {e}", dir.display())))?;
            }
            let tmp = path.with_extension("tmp");
            write_private(&tmp, &bytes).map_err(|e| err(format!("cannot write: {e}")))?;
            std::fs::rename(&tmp, path).map_err(|e| err(format!("cannot write: {e}")))?;
            Ok(key)
        }
        Err(e) => Err(err(format!("cannot read: {e}"))),
    }
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::{io::Write, os::unix::fs::OpenOptionsExt};
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_psk_forms() {
        let hex_key = "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF";
        let plain = parse_psk(hex_key).expect("plain");
        let file =
            parse_psk(&format!("/key/swarm/psk/1.0.0/\n/base16/\n{hex_key}\n")).expect("file");
        assert_eq!(plain, file);
        assert_eq!(plain[0], 0x00);
        assert_eq!(plain[31], 0xff);
        assert_eq!(
            parse_psk(&format_swarm_key(&plain)).expect("round trip"),
            plain
        );
    }

    #[test]
    fn rejects_bad_psks() {
        for bad in [
            "",
            "abcd",
            &"zz".repeat(32),
            &"00".repeat(33),
            &format!("/key/swarm/psk/1.0.0/\n/base64/\n{}", "00".repeat(32)),
            "/key/swarm/psk/1.0.0/\n/base16/\n",
            &format!("{}\nextra", "00".repeat(32)),
        ] {
            assert!(parse_psk(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn keypair_survives_reload() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("keys/node.key");
        let a = load_or_create_keypair(&path).expect("create");
        let b = load_or_create_keypair(&path).expect("load");
        assert_eq!(a.public().to_peer_id(), b.public().to_peer_id());
        std::fs::write(&path, b"garbage").expect("write");
        let e = load_or_create_keypair(&path).expect_err("garbage loads");
        assert!(e.to_string().contains("node.key"), "{e}");
    }
}
