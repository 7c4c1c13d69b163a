//! Sharded jobs (docs/sharding.md): the sharding rule of a spec, the shard manifest the client
//! writes once, and how shards group into batches.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Most shards in one job.
pub const MAX_SHARDS: u32 = 65_536;
/// Most batches in one job.
pub const MAX_BATCHES: u32 = 1_024;
/// Most shards in one batch (`ShardMarket.MAX_BATCH_SIZE`): a disputed batch's per-shard
/// settlement must fit one transaction.
pub const MAX_BATCH_SIZE: u32 = 1_024;
/// The manifest format written by this version.
pub const MANIFEST_VERSION: u32 = 1;

/// A spec's `shards:` section: which files of the input tree are shards, and how many shards
/// one operator runs as a batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShardRule {
    /// A glob over the input tree's paths as mounted (`/inputs/*.txt`): `*` and `?` match
    /// within one path segment, `**` any number of segments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub glob: Option<String>,
    /// An explicit manifest (`ipfs://CID`) instead of a glob.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<String>,
    /// Shards per batch.
    pub size: u32,
}

impl ShardRule {
    /// Checks the rule on its own (the manifest is checked when it is built or fetched).
    pub fn validate(&self) -> Result<()> {
        match (&self.glob, &self.manifest) {
            (Some(_), Some(_)) => {
                return Err(Error::invalid(
                    "shards",
                    "give either `glob` or `manifest`, not both",
                ));
            }
            (None, None) => {
                return Err(Error::invalid(
                    "shards",
                    "needs `glob` (e.g. /inputs/*.txt) or `manifest` (ipfs://CID)",
                ));
            }
            (Some(g), None) if !g.starts_with('/') => {
                return Err(Error::invalid(
                    "shards.glob",
                    format!("must be an absolute path pattern like /inputs/*.txt, got `{g}`"),
                ));
            }
            (None, Some(m)) if !m.starts_with("ipfs://") => {
                return Err(Error::invalid(
                    "shards.manifest",
                    format!("must be an ipfs://CID, got `{m}`"),
                ));
            }
            _ => {}
        }
        if self.size == 0 || self.size > MAX_BATCH_SIZE {
            return Err(Error::invalid(
                "shards.size",
                format!("must be between 1 and {MAX_BATCH_SIZE}, got {}", self.size),
            ));
        }
        Ok(())
    }
}

/// One shard: a file of the input tree, mounted at `path` when the shard runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShardEntry {
    /// Where the file is mounted (`/inputs/a.txt`).
    pub path: String,
    /// The file's CID.
    pub cid: String,
    /// Its size in bytes.
    pub size: u64,
}

/// The content-addressed list of a job's shards; shard `i` is `shards[i]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// [`MANIFEST_VERSION`].
    pub version: u32,
    /// The input tree's CID.
    pub root: String,
    /// Where the input tree is mounted (`/inputs`).
    pub mount: String,
    /// The shards, sorted by path (bytes).
    pub shards: Vec<ShardEntry>,
}

impl Manifest {
    /// The manifest of the files `files` (path, CID, size) of the tree `root` mounted at
    /// `mount` that match `glob`, sorted by path.
    pub fn from_files(
        root: &str,
        mount: &str,
        glob: &str,
        files: impl IntoIterator<Item = (String, String, u64)>,
    ) -> Result<Self> {
        let mut shards: Vec<ShardEntry> = files
            .into_iter()
            .filter(|(path, _, _)| glob_match(glob, path))
            .map(|(path, cid, size)| ShardEntry { path, cid, size })
            .collect();
        shards.sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
        let m = Self {
            version: MANIFEST_VERSION,
            root: root.to_owned(),
            mount: mount.to_owned(),
            shards,
        };
        if m.shards.is_empty() {
            return Err(Error::invalid(
                "shards.glob",
                format!("`{glob}` matches no file of the input tree {root} mounted at {mount}"),
            ));
        }
        m.validate()?;
        Ok(m)
    }

    /// The canonical JSON (what is stored and hashed).
    pub fn to_canonical_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Parses and checks a manifest.
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        let m: Self = serde_json::from_slice(bytes)
            .map_err(|e| Error::invalid("manifest", format!("not a shard manifest: {e}")))?;
        m.validate()?;
        Ok(m)
    }

    fn validate(&self) -> Result<()> {
        if self.version != MANIFEST_VERSION {
            return Err(Error::invalid(
                "manifest.version",
                format!(
                    "version {} is not supported (this build reads {MANIFEST_VERSION})",
                    self.version
                ),
            ));
        }
        let n = self.shards.len();
        if n == 0 || n > MAX_SHARDS as usize {
            return Err(Error::invalid(
                "manifest.shards",
                format!("needs 1 to {MAX_SHARDS} shards, has {n}"),
            ));
        }
        for w in self.shards.windows(2) {
            if w[0].path.as_bytes() >= w[1].path.as_bytes() {
                return Err(Error::invalid(
                    "manifest.shards",
                    format!(
                        "paths must be sorted and distinct: `{}` then `{}`",
                        w[0].path, w[1].path
                    ),
                ));
            }
        }
        for s in &self.shards {
            if !s
                .path
                .starts_with(&format!("{}/", self.mount.trim_end_matches('/')))
                || s.path.split('/').any(|seg| seg == "..")
            {
                return Err(Error::invalid(
                    "manifest.shards",
                    format!("`{}` is not a path under {}", s.path, self.mount),
                ));
            }
        }
        Ok(())
    }

    /// How many batches of `size` shards.
    pub fn batch_count(&self, size: u32) -> u32 {
        batch_count(self.shards.len() as u32, size)
    }
}

/// How many batches `shards` shards of `size` per batch make.
pub fn batch_count(shards: u32, size: u32) -> u32 {
    if size == 0 {
        return 0;
    }
    shards.div_ceil(size)
}

/// The shard indices of batch `batch`.
pub fn batch_range(batch: u32, size: u32, shards: u32) -> std::ops::Range<u32> {
    let start = batch.saturating_mul(size).min(shards);
    start..start.saturating_add(size).min(shards)
}

/// Whether `path` matches `pattern`: `*` and `?` within one `/`-separated segment, `**` as a
/// whole segment any number of segments (including none).
pub fn glob_match(pattern: &str, path: &str) -> bool {
    let pat: Vec<&str> = pattern.split('/').collect();
    let segs: Vec<&str> = path.split('/').collect();
    match_segments(&pat, &segs)
}

fn match_segments(pat: &[&str], segs: &[&str]) -> bool {
    match pat.split_first() {
        None => segs.is_empty(),
        Some((&"**", rest)) => (0..=segs.len()).any(|i| match_segments(rest, &segs[i..])),
        Some((p, rest)) => segs.split_first().is_some_and(|(s, tail)| {
            match_segment(p.as_bytes(), s.as_bytes()) && match_segments(rest, tail)
        }),
    }
}

fn match_segment(p: &[u8], s: &[u8]) -> bool {
    // Iterative wildcard matching with backtracking to the last `*`.
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() && (p[pi] == b'?' || p[pi] == s[si]) {
            pi += 1;
            si += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, si));
            pi += 1;
        } else if let Some((sp, ss)) = star {
            pi = sp + 1;
            si = ss + 1;
            star = Some((sp, ss + 1));
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == b'*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_within_and_across_segments() {
        assert!(glob_match("/inputs/*.txt", "/inputs/a.txt"));
        assert!(!glob_match("/inputs/*.txt", "/inputs/sub/a.txt"));
        assert!(glob_match("/inputs/**/*.txt", "/inputs/sub/deep/a.txt"));
        assert!(glob_match("/inputs/**/*.txt", "/inputs/a.txt"));
        assert!(glob_match("/inputs/img-??.tif", "/inputs/img-07.tif"));
        assert!(!glob_match("/inputs/img-??.tif", "/inputs/img-7.tif"));
        assert!(glob_match("/inputs/*", "/inputs/x"));
        assert!(!glob_match("/inputs/*.txt", "/inputs/a.txt.bak"));
        assert!(glob_match("/inputs/*a*b*", "/inputs/xxaYYbzz"));
    }

    #[test]
    fn batches_cover_every_shard_once() {
        assert_eq!(batch_count(10, 3), 4);
        let all: Vec<u32> = (0..4).flat_map(|b| batch_range(b, 3, 10)).collect();
        assert_eq!(all, (0..10).collect::<Vec<_>>());
        assert_eq!(batch_range(3, 3, 10), 9..10);
        assert_eq!(batch_range(9, 3, 10), 10..10);
    }

    #[test]
    fn a_manifest_is_sorted_checked_and_round_trips() {
        let files = vec![
            ("/inputs/b.txt".to_owned(), "bafkb".to_owned(), 2),
            ("/inputs/a.txt".to_owned(), "bafka".to_owned(), 1),
            ("/inputs/skip.bin".to_owned(), "bafks".to_owned(), 3),
        ];
        let m = Manifest::from_files("bafyroot", "/inputs", "/inputs/*.txt", files).expect("ok");
        assert_eq!(m.shards.len(), 2);
        assert_eq!(m.shards[0].path, "/inputs/a.txt");
        let back = Manifest::from_json(&m.to_canonical_json()).expect("parses");
        assert_eq!(back, m);
        let err = Manifest::from_files("r", "/inputs", "/inputs/*.png", Vec::new())
            .expect_err("must fail");
        assert!(err.to_string().contains("matches no file"), "{err}");
        let mut bad = m.clone();
        bad.shards[0].path = "/etc/passwd".into();
        let err =
            Manifest::from_json(&serde_json::to_vec(&bad).expect("json")).expect_err("must fail");
        assert!(err.to_string().contains("not a path under"), "{err}");
    }

    #[test]
    fn a_rule_needs_exactly_one_source_and_a_size() {
        let ok = ShardRule {
            glob: Some("/inputs/*".into()),
            manifest: None,
            size: 10,
        };
        assert!(ok.validate().is_ok());
        let both = ShardRule {
            manifest: Some("ipfs://x".into()),
            ..ok.clone()
        };
        assert!(both.validate().is_err());
        let zero = ShardRule { size: 0, ..ok };
        assert!(
            zero.validate()
                .expect_err("must fail")
                .to_string()
                .contains("shards.size")
        );
    }
}
