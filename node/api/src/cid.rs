//! The one place where a results folder's UnixFS root CID and the `bytes32` result hash on
//! chain are converted into each other.
//!
//! A results folder is imported with the `unixfs-v1-2025` profile, so its root is a CIDv1 with
//! the dag-pb codec (0x70) and a sha2-256 multihash (0x12, 32 bytes). The on-chain
//! `resultHash` is that 32-byte digest; the reverse mapping rebuilds
//! `CIDv1(dag-pb, sha2-256(digest))`.

use ::cid::Cid;
use shoal_chain::B256;

use crate::{Error, Result};

/// Multicodec of dag-pb (UnixFS folders and chunked files).
pub const DAG_PB: u64 = 0x70;
/// Multicodec of raw blocks (single-chunk files).
pub const RAW: u64 = 0x55;
/// Multihash code of sha2-256.
pub const SHA2_256: u64 = 0x12;

/// The on-chain result hash of a results folder's root CID: its sha2-256 digest.
pub fn result_hash_of(cid: &Cid) -> Result<B256> {
    let mh = cid.hash();
    if mh.code() != SHA2_256 || mh.digest().len() != 32 {
        return Err(Error::Cid {
            cid: cid.to_string(),
            reason: "a result hash must be a sha2-256 CID (unixfs-v1-2025 profile)".into(),
        });
    }
    Ok(B256::from_slice(mh.digest()))
}

/// The results folder CID a result hash stands for: CIDv1, dag-pb, sha2-256.
pub fn results_cid_of(hash: B256) -> Result<Cid> {
    let mh = ::cid::multihash::Multihash::<64>::wrap(SHA2_256, hash.as_slice()).map_err(|e| {
        Error::Cid {
            cid: hash.to_string(),
            reason: e.to_string(),
        }
    })?;
    Ok(Cid::new_v1(DAG_PB, mh))
}

/// Parses the CID bytes of a `JobPosted` spec CID or a revealed result CID: binary CID bytes,
/// or (accepted as well) the CID's text form as UTF-8.
pub fn cid_from_chain_bytes(bytes: &[u8]) -> Result<Cid> {
    if let Ok(c) = Cid::try_from(bytes) {
        return Ok(c);
    }
    let not_a_cid = || Error::Cid {
        cid: format!("0x{}", hex::encode(bytes)),
        reason: "neither CID bytes nor a CID string".into(),
    };
    let text = std::str::from_utf8(bytes).map_err(|_| not_a_cid())?;
    Cid::try_from(text.trim()).map_err(|_| not_a_cid())
}

/// CID bytes from the chain as text: the CID, or `0x…` hex when they are not a CID.
pub fn cid_text(bytes: &[u8]) -> String {
    cid_from_chain_bytes(bytes)
        .map(|c| c.to_string())
        .unwrap_or_else(|_| format!("0x{}", hex::encode(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_hash_round_trips_through_the_cid() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("stdout"), b"hello\n").expect("write");
        std::fs::write(dir.path().join("exitCode"), b"0").expect("write");
        let cid =
            shoal_store::hash_path(dir.path(), shoal_store::Profile::UnixfsV1_2025).expect("hash");
        assert_eq!(cid.codec(), DAG_PB);
        let hash = result_hash_of(&cid).expect("sha2-256");
        assert_eq!(results_cid_of(hash).expect("cid"), cid);
        assert_eq!(cid_from_chain_bytes(&cid.to_bytes()).expect("bytes"), cid);
        assert_eq!(
            cid_from_chain_bytes(cid.to_string().as_bytes()).expect("text"),
            cid
        );
        assert!(cid_from_chain_bytes(b"\xff\x00nonsense").is_err());
        assert_eq!(cid_text(b"\xff"), "0xff");
    }
}
