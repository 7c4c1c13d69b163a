//! Sharded jobs' result commitments (docs/sharding.md): a leaf per shard, a Merkle root per
//! batch, and the leaves document an operator reveals with its root. The same rules are in
//! `ShardMarket.verifyLeaf`.

use alloy::primitives::keccak256;
use serde::{Deserialize, Serialize};
use shoal_chain::{B256, JobId, U256};

/// `keccak256(abi.encode(uint32 shardIndex, bytes32 resultHash))`.
pub fn leaf(shard: u32, result_hash: B256) -> B256 {
    let mut buf = [0u8; 64];
    buf[..32].copy_from_slice(&U256::from(shard).to_be_bytes::<32>());
    buf[32..].copy_from_slice(result_hash.as_slice());
    keccak256(buf)
}

fn parent(left: &B256, right: &B256) -> B256 {
    let mut buf = [0u8; 64];
    buf[..32].copy_from_slice(left.as_slice());
    buf[32..].copy_from_slice(right.as_slice());
    keccak256(buf)
}

/// One level up: pairs hashed left ‖ right, an odd last node carried up unchanged.
fn level_up(level: &[B256]) -> Vec<B256> {
    level
        .chunks(2)
        .map(|p| match p {
            [l, r] => parent(l, r),
            [one] => *one,
            _ => B256::ZERO,
        })
        .collect()
}

/// The Merkle root over `leaves` in order; a one-leaf tree's root is its leaf; no leaves give
/// zero.
pub fn root(leaves: &[B256]) -> B256 {
    let mut level = leaves.to_vec();
    while level.len() > 1 {
        level = level_up(&level);
    }
    level.first().copied().unwrap_or(B256::ZERO)
}

/// The sibling hashes from leaf `position` up to the root (levels where the node is carried up
/// unchanged have no sibling and add nothing).
pub fn proof(leaves: &[B256], position: usize) -> Vec<B256> {
    let mut out = Vec::new();
    let mut level = leaves.to_vec();
    let mut pos = position;
    while level.len() > 1 {
        let sibling = pos ^ 1;
        if sibling < level.len() {
            out.push(level[sibling]);
        }
        level = level_up(&level);
        pos /= 2;
    }
    out
}

/// Whether `leaf` sits at `position` of a `count`-leaf tree with `root`, by `proof`.
pub fn verify(root: B256, leaf: B256, proof: &[B256], position: usize, count: usize) -> bool {
    if position >= count {
        return false;
    }
    let (mut node, mut pos, mut width) = (leaf, position, count);
    let mut siblings = proof.iter();
    while width > 1 {
        let sibling = pos ^ 1;
        if sibling < width {
            let Some(s) = siblings.next() else {
                return false;
            };
            node = if pos % 2 == 0 {
                parent(&node, s)
            } else {
                parent(s, &node)
            };
        }
        pos /= 2;
        width = width.div_ceil(2);
    }
    siblings.next().is_none() && node == root
}

/// The merged result's entry name of a shard: `shard-000042`.
pub fn shard_name(index: u32) -> String {
    format!("shard-{index:06}")
}

/// One shard's result in a leaves document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ShardResult {
    /// The shard's index in the manifest.
    pub index: u32,
    /// The CID of the shard's results folder.
    pub result_cid: String,
}

/// What an operator computed for one batch; its leaves give the root it reveals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LeavesDoc {
    /// The sharded job.
    pub job: JobId,
    /// The batch.
    pub batch: u32,
    /// Its shards' results, in index order.
    pub shards: Vec<ShardResult>,
}

impl LeavesDoc {
    /// The leaves, in order.
    pub fn leaves(&self) -> Result<Vec<B256>, crate::Error> {
        self.shards
            .iter()
            .map(|s| {
                let cid: cid::Cid = s.result_cid.parse().map_err(|e| crate::Error::Cid {
                    cid: s.result_cid.clone(),
                    reason: format!("not a CID: {e}"),
                })?;
                Ok(leaf(s.index, crate::result_hash_of(&cid)?))
            })
            .collect()
    }

    /// The batch root these results commit to.
    pub fn root(&self) -> Result<B256, crate::Error> {
        Ok(root(&self.leaves()?))
    }

    /// The canonical JSON (what is stored and revealed by CID).
    pub fn to_canonical_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(n: u32) -> Vec<B256> {
        (0..n)
            .map(|i| leaf(i, B256::repeat_byte(i as u8 + 1)))
            .collect()
    }

    #[test]
    fn the_root_follows_the_documented_rule() {
        let l = leaves(5);
        // ((l0 l1) (l2 l3)) l4
        let want = parent(&parent(&parent(&l[0], &l[1]), &parent(&l[2], &l[3])), &l[4]);
        assert_eq!(root(&l), want);
        assert_eq!(root(&l[..1]), l[0]);
        assert_eq!(root(&[]), B256::ZERO);
    }

    #[test]
    fn every_leaf_proves_and_a_wrong_one_does_not() {
        for n in 1..=17u32 {
            let l = leaves(n);
            let r = root(&l);
            for pos in 0..n as usize {
                let p = proof(&l, pos);
                assert!(verify(r, l[pos], &p, pos, l.len()), "n={n} pos={pos}");
                assert!(!verify(r, B256::repeat_byte(0xee), &p, pos, l.len()));
                if n > 1 {
                    assert!(!verify(r, l[pos], &p, (pos + 1) % l.len(), l.len()) || l.len() == 1);
                }
            }
        }
    }

    #[test]
    fn a_leaf_is_the_abi_encoding_hashed() {
        let h = B256::repeat_byte(0xab);
        let mut enc = vec![0u8; 28];
        enc.extend_from_slice(&7u32.to_be_bytes());
        enc.extend_from_slice(h.as_slice());
        assert_eq!(leaf(7, h), keccak256(enc));
    }
}

/// A sharded job as `GET /api/v1/shards/{id}` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShardJobView {
    /// The sharded job.
    pub id: JobId,
    /// `Bidding`, `Drawing`, `Running`, `Done` or `Expired`.
    pub state: String,
    /// Shards in the manifest.
    pub shard_count: u32,
    /// Shards per batch.
    pub batch_size: u16,
    /// Operators per batch.
    pub concurrency: u8,
    /// Equal roots that verify a batch.
    pub confidence: u8,
    /// Batches verified so far.
    pub verified: u16,
    /// Batches failed so far.
    pub failed: u16,
    /// Every batch.
    pub batches: Vec<BatchView>,
}

/// One batch of a sharded job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchView {
    /// Its index.
    pub batch: u32,
    /// `Assigned`, `Revealing`, `Verified` or `Failed`.
    pub state: String,
    /// Assignment round (re-assignment keeps the index).
    pub attempt: u8,
    /// End of its current phase (unix seconds).
    pub deadline: u64,
    /// Its operators, by slot.
    pub operators: Vec<shoal_chain::Address>,
    /// The verified root.
    pub root: Option<B256>,
}

/// The merged result of a sharded job: `GET /api/v1/shards/{id}/result`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MergedResult {
    /// The folder `shard-000000/ …` of every verified shard's results.
    pub cid: String,
    /// Shards in it.
    pub shards: u32,
    /// Batches that failed (their shards are missing from the folder).
    pub failed_batches: Vec<u32>,
}
