//! The job spec: what to run, on which data, with which limits, and the deal
//! that pays for it.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Largest `deal.concurrency` and `deal.min_bids` the market accepts.
pub const MAX_CONCURRENCY: u32 = 32;
/// The `deal.min_bids` a spec gets when it does not set one: twice the concurrency (at most
/// [`MAX_CONCURRENCY`]). The deals are drawn at random from every bid of the bid window; the
/// floor makes a job expire (refund) rather than run when so few operators bid that a handful
/// of colluding identities would fill its deals (docs/protocol.md, market safety).
pub fn default_min_bids(concurrency: u32) -> u32 {
    concurrency.saturating_mul(2).min(MAX_CONCURRENCY)
}

/// Largest spec document accepted, in bytes.
pub const MAX_SPEC_BYTES: usize = 256 * 1024;

/// A complete job: engine, data, limits and deal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    /// A human label; not unique, not used for anything but display.
    #[serde(default)]
    pub name: String,
    /// What runs.
    #[serde(with = "serde_yaml::with::singleton_map")]
    pub engine: EngineSpec,
    /// Data mounted read-only into the job's work folder.
    #[serde(default)]
    pub inputs: Vec<InputSpec>,
    /// Writable folders whose contents become part of the results.
    #[serde(default)]
    pub outputs: Vec<OutputSpec>,
    /// Resource limits for one execution.
    #[serde(default)]
    pub resources: Resources,
    /// What the job may reach over the network (Docker only; WASM never can): `false`,
    /// `true`, or `{domains: [...]}` through the node's filtering proxy.
    #[serde(default)]
    pub network: crate::Network,
    /// The on-chain deal: how many nodes, how sure, how much.
    #[serde(default)]
    pub deal: DealParams,
    /// Where the job may run: selectors over node labels (`region=eu`, `gpu in (a100,h100)`);
    /// only nodes satisfying all of them bid.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub constraints: Vec<crate::Constraint>,
    /// A sharded job (docs/sharding.md): the files of an input tree selected here run one by
    /// one, in batches of `size` per operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shards: Option<crate::ShardRule>,
    /// How many nodes keep the verified results pinned (docs/pinning.md). Left out: between
    /// [`PinSpec::DEFAULT_MIN`] and [`PinSpec::DEFAULT_MAX`]; a spec without it keeps its
    /// canonical form (and hash).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin: Option<PinSpec>,
}

/// The replication of a job's verified results on the swarm's pinset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PinSpec {
    /// Fewest nodes that keep a copy.
    #[serde(default = "PinSpec::default_min")]
    pub replication_min: u32,
    /// Most nodes that keep a copy.
    #[serde(default = "PinSpec::default_max")]
    pub replication_max: u32,
}

impl PinSpec {
    /// Copies when the spec names none.
    pub const DEFAULT_MIN: u32 = 2;
    /// Most copies when the spec names none.
    pub const DEFAULT_MAX: u32 = 3;
    /// Most copies a spec may ask for.
    pub const MAX: u32 = 10;

    fn default_min() -> u32 {
        Self::DEFAULT_MIN
    }
    fn default_max() -> u32 {
        Self::DEFAULT_MAX
    }
}

impl Default for PinSpec {
    fn default() -> Self {
        Self {
            replication_min: Self::DEFAULT_MIN,
            replication_max: Self::DEFAULT_MAX,
        }
    }
}

/// The execution engine and its program.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum EngineSpec {
    /// A WASI preview-1 module, run deterministically.
    Wasm(WasmEngine),
    /// A container image on the node's Docker engine.
    Docker(DockerEngine),
}

impl EngineSpec {
    /// The engine's registry name, as executors are keyed (`wasm`, `docker`).
    pub fn kind(&self) -> &'static str {
        match self {
            EngineSpec::Wasm(_) => "wasm",
            EngineSpec::Docker(_) => "docker",
        }
    }
}

/// A WASM program.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WasmEngine {
    /// Where the module comes from (`ipfs://CID`, `https://…`, …).
    pub module: InputSource,
    /// Exported function to call; `_start` for WASI commands.
    #[serde(default = "default_entrypoint")]
    pub entrypoint: String,
    /// Arguments after the program name.
    #[serde(default)]
    pub args: Vec<String>,
    /// Environment variables.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

fn default_entrypoint() -> String {
    "_start".to_owned()
}

/// A container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DockerEngine {
    /// Image reference; it must be present on the node (no registry pulls).
    pub image: String,
    /// Overrides the image's entrypoint.
    #[serde(default)]
    pub entrypoint: Option<Vec<String>>,
    /// Command and arguments.
    #[serde(default)]
    pub cmd: Vec<String>,
    /// Environment variables.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Working directory inside the container.
    #[serde(default)]
    pub working_dir: Option<String>,
}

/// Where a piece of input data comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum InputSource {
    /// Content by CID from the node's store or its peers: `ipfs://CID[/path]`.
    Ipfs(String),
    /// A download: `http://…` or `https://…`.
    Url(String),
    /// A local path on the node, from an allow-listed folder: `file:///…`.
    File(String),
    /// Small literal content: `inline:TEXT` or `inline;base64,DATA`.
    Inline(Vec<u8>),
}

impl FromStr for InputSource {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        if let Some(rest) = s.strip_prefix("ipfs://") {
            if rest.is_empty() {
                return Err(Error::invalid("source", "`ipfs://` needs a CID after it"));
            }
            return Ok(Self::Ipfs(rest.to_owned()));
        }
        if s.starts_with("http://") || s.starts_with("https://") {
            return Ok(Self::Url(s.to_owned()));
        }
        if let Some(rest) = s.strip_prefix("file://") {
            if !rest.starts_with('/') {
                return Err(Error::invalid("source", "`file://` needs an absolute path"));
            }
            return Ok(Self::File(rest.to_owned()));
        }
        if let Some(rest) = s.strip_prefix("inline;base64,") {
            return decode_base64(rest)
                .map(Self::Inline)
                .ok_or_else(|| Error::invalid("source", "`inline;base64,` data is not base64"));
        }
        if let Some(rest) = s.strip_prefix("inline:") {
            return Ok(Self::Inline(rest.as_bytes().to_vec()));
        }
        Err(Error::invalid(
            "source",
            format!(
                "`{s}` is not a source: use ipfs://CID, https://URL, file:///PATH, inline:TEXT \
                 or inline;base64,DATA"
            ),
        ))
    }
}

impl TryFrom<String> for InputSource {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        s.parse()
    }
}

impl From<InputSource> for String {
    fn from(s: InputSource) -> String {
        s.to_string()
    }
}

impl fmt::Display for InputSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InputSource::Ipfs(c) => write!(f, "ipfs://{c}"),
            InputSource::Url(u) => f.write_str(u),
            InputSource::File(p) => write!(f, "file://{p}"),
            InputSource::Inline(b) => write!(f, "inline;base64,{}", encode_base64(b)),
        }
    }
}

/// One input mounted into the job's work folder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    /// Where the data comes from.
    pub source: InputSource,
    /// Absolute path inside the job where it appears (read-only).
    pub path: String,
    /// Expected `sha256:HEX` of a downloaded file (URL sources).
    #[serde(default)]
    pub checksum: Option<String>,
}

/// One named writable output folder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSpec {
    /// Folder name in the results (`[A-Za-z0-9_-]`, not `stdout`/`stderr`/`exitCode`).
    pub name: String,
    /// Absolute path inside the job.
    pub path: String,
}

/// Limits for one execution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    /// CPU cores (may be fractional).
    #[serde(default = "default_cpu")]
    pub cpu: f64,
    /// Memory limit, e.g. `256MiB`.
    #[serde(default = "default_memory", with = "byte_size")]
    pub memory: u64,
    /// Wall-clock limit, e.g. `5m`.
    #[serde(default = "default_timeout", with = "duration")]
    pub timeout: Duration,
}

fn default_cpu() -> f64 {
    1.0
}
fn default_memory() -> u64 {
    256 * 1024 * 1024
}
fn default_timeout() -> Duration {
    Duration::from_secs(300)
}

impl Default for Resources {
    fn default() -> Self {
        Self {
            cpu: default_cpu(),
            memory: default_memory(),
            timeout: default_timeout(),
        }
    }
}

/// How results are judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Verifier {
    /// Independent executions must produce the same result hash.
    #[default]
    Deterministic,
    /// Results are accepted after a challenge window unless challenged.
    Optimistic,
}

impl FromStr for Verifier {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "deterministic" => Ok(Self::Deterministic),
            "optimistic" => Ok(Self::Optimistic),
            other => Err(Error::invalid(
                "deal.verifier",
                format!("`{other}` is not a verifier: use deterministic or optimistic"),
            )),
        }
    }
}

/// Bid, execution and reveal windows.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Windows {
    /// How long operators may bid.
    #[serde(default = "default_bid_window", with = "duration")]
    pub bid: Duration,
    /// How long selected operators have to run and commit.
    #[serde(default = "default_exec_window", with = "duration")]
    pub exec: Duration,
    /// How long they have to reveal (also the challenge window of optimistic jobs).
    #[serde(default = "default_reveal_window", with = "duration")]
    pub reveal: Duration,
}

fn default_bid_window() -> Duration {
    Duration::from_secs(60)
}
fn default_exec_window() -> Duration {
    Duration::from_secs(600)
}
fn default_reveal_window() -> Duration {
    Duration::from_secs(120)
}

impl Default for Windows {
    fn default() -> Self {
        Self {
            bid: default_bid_window(),
            exec: default_exec_window(),
            reveal: default_reveal_window(),
        }
    }
}

/// The deal posted on chain with the job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DealParams {
    /// Operators selected to run the job (n).
    #[serde(default = "default_concurrency")]
    pub concurrency: u32,
    /// Equal results needed to verify (k ≤ n).
    #[serde(default = "default_confidence")]
    pub confidence: u32,
    /// Bids the bid window must collect, or the job expires (n ≤ m ≤ 32); unset in YAML:
    /// [`default_min_bids`] of the concurrency.
    #[serde(default = "default_min_bids_of_default")]
    pub min_bids: u32,
    /// Highest price per execution, in wei (decimal string).
    #[serde(default = "default_price", with = "wei")]
    pub max_price: u128,
    /// Stake locked per accepted operator, in wei (decimal string).
    #[serde(default = "default_price", with = "wei")]
    pub collateral: u128,
    /// How results are judged.
    #[serde(default)]
    pub verifier: Verifier,
    /// Whether disagreement escalates to mediation by fresh operators.
    #[serde(default = "default_true")]
    pub mediation: bool,
    /// Mediators drawn for a dispute (1..=16); unset takes the market's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mediators: Option<u32>,
    /// Phase lengths.
    #[serde(default)]
    pub windows: Windows,
}

fn default_concurrency() -> u32 {
    3
}
fn default_min_bids_of_default() -> u32 {
    default_min_bids(default_concurrency())
}
fn default_confidence() -> u32 {
    2
}
fn default_price() -> u128 {
    1_000_000_000_000_000
}
fn default_true() -> bool {
    true
}

impl Default for DealParams {
    fn default() -> Self {
        Self {
            concurrency: default_concurrency(),
            confidence: default_confidence(),
            min_bids: default_min_bids_of_default(),
            max_price: default_price(),
            collateral: default_price(),
            verifier: Verifier::default(),
            mediation: true,
            mediators: None,
            windows: Windows::default(),
        }
    }
}

impl DealParams {
    /// Escrow the creator pays with the post: concurrency × max price.
    pub fn escrow(&self) -> u128 {
        u128::from(self.concurrency).saturating_mul(self.max_price)
    }
}

impl JobSpec {
    /// Parses a YAML (or JSON) document and validates it.
    pub fn from_yaml(doc: &str) -> Result<Self> {
        if doc.len() > MAX_SPEC_BYTES {
            return Err(Error::Parse(format!(
                "the document is {} bytes; the limit is {MAX_SPEC_BYTES}",
                doc.len()
            )));
        }
        let tree: serde_yaml::Value =
            serde_yaml::from_str(doc).map_err(|e| Error::Parse(e.to_string()))?;
        let timeout_given = tree
            .get("resources")
            .and_then(|r| r.get("timeout"))
            .is_some();
        let min_bids_given = tree.get("deal").and_then(|d| d.get("min_bids")).is_some();
        // From the text, not the tree: serde_yaml's errors then name the field
        // (`deal.concurrency: …`) and the line.
        let mut spec: JobSpec =
            serde_yaml::from_str(doc).map_err(|e| Error::Parse(e.to_string()))?;
        // An unset timeout is the default or the whole exec window, whichever is shorter.
        if !timeout_given {
            spec.resources.timeout = spec.resources.timeout.min(spec.deal.windows.exec);
        }
        // An unset floor follows the concurrency the document sets.
        if !min_bids_given {
            spec.deal.min_bids = default_min_bids(spec.deal.concurrency);
        }
        spec.validate()?;
        Ok(spec)
    }

    /// The canonical encoding stored by CID and hashed on chain: JSON with
    /// fields in declaration order and maps sorted.
    pub fn to_canonical_json(&self) -> Vec<u8> {
        // Serializing plain data with string keys cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Parses the canonical JSON form (as fetched by CID) and validates it.
    pub fn from_canonical_json(bytes: &[u8]) -> Result<Self> {
        let spec: JobSpec =
            serde_json::from_slice(bytes).map_err(|e| Error::Parse(e.to_string()))?;
        spec.validate()?;
        Ok(spec)
    }

    /// Checks every rule a spec must satisfy before it is posted or run.
    /// The spec one shard runs: the job's inputs without the sharded tree (the input mounted
    /// at the manifest's `mount`), plus the shard's file at its path; no `shards` section.
    pub fn for_shard(&self, manifest: &crate::Manifest, index: u32) -> Result<JobSpec> {
        let entry = manifest.shards.get(index as usize).ok_or_else(|| {
            Error::invalid(
                "shards",
                format!(
                    "shard {index} is not in the manifest ({} shards)",
                    manifest.shards.len()
                ),
            )
        })?;
        let mount = manifest.mount.trim_end_matches('/');
        let mut spec = self.clone();
        spec.shards = None;
        spec.inputs
            .retain(|i| i.path.trim_end_matches('/') != mount);
        spec.inputs.push(InputSpec {
            source: InputSource::Ipfs(entry.cid.clone()),
            path: entry.path.clone(),
            checksum: None,
        });
        Ok(spec)
    }

    /// The input whose tree a glob-sharded job splits: the one whose path the glob is under.
    pub fn shard_input(&self) -> Option<&InputSpec> {
        let glob = self.shards.as_ref()?.glob.as_ref()?;
        self.inputs
            .iter()
            .find(|i| glob.starts_with(&format!("{}/", i.path.trim_end_matches('/'))))
    }

    pub fn validate(&self) -> Result<()> {
        let d = &self.deal;
        if d.concurrency == 0 || d.concurrency > MAX_CONCURRENCY {
            return Err(Error::invalid(
                "deal.concurrency",
                format!(
                    "must be between 1 and {MAX_CONCURRENCY}, got {}",
                    d.concurrency
                ),
            ));
        }
        if d.confidence == 0 || d.confidence > d.concurrency {
            return Err(Error::invalid(
                "deal.confidence",
                format!(
                    "must be between 1 and concurrency ({}), got {}",
                    d.concurrency, d.confidence
                ),
            ));
        }
        if d.min_bids < d.concurrency || d.min_bids > MAX_CONCURRENCY {
            return Err(Error::invalid(
                "deal.min_bids",
                format!(
                    "must be between concurrency ({}) and {MAX_CONCURRENCY}, got {}",
                    d.concurrency, d.min_bids
                ),
            ));
        }
        if d.max_price == 0 {
            return Err(Error::invalid("deal.max_price", "must be more than 0 wei"));
        }
        if let Some(m) = d.mediators
            && !(1..=16).contains(&m)
        {
            return Err(Error::invalid(
                "deal.mediators",
                format!("must be between 1 and 16, got {m}"),
            ));
        }
        for (name, w) in [
            ("bid", d.windows.bid),
            ("exec", d.windows.exec),
            ("reveal", d.windows.reveal),
        ] {
            if w < Duration::from_secs(1) {
                return Err(Error::invalid(
                    format!("deal.windows.{name}"),
                    "must be at least 1s",
                ));
            }
        }
        if !(self.resources.cpu > 0.0 && self.resources.cpu <= 1024.0) {
            return Err(Error::invalid(
                "resources.cpu",
                "must be more than 0 and at most 1024",
            ));
        }
        if self.resources.memory < 1024 * 1024 {
            return Err(Error::invalid("resources.memory", "must be at least 1MiB"));
        }
        if self.constraints.len() > 32 {
            return Err(Error::invalid(
                "constraints",
                format!("at most 32, got {}", self.constraints.len()),
            ));
        }
        if let Some(p) = self.pin {
            let max = p.replication_max.max(p.replication_min);
            if p.replication_min == 0 || p.replication_min > p.replication_max || max > PinSpec::MAX
            {
                return Err(Error::invalid(
                    "pin",
                    format!(
                        "replication_min {} and replication_max {} must satisfy 1 <= min <= max <= {}",
                        p.replication_min,
                        p.replication_max,
                        PinSpec::MAX
                    ),
                ));
            }
        }
        if self.resources.timeout.is_zero() {
            return Err(Error::invalid("resources.timeout", "must be more than 0s"));
        }
        if let Some(rule) = &self.shards {
            rule.validate()?;
            if let Some(glob) = &rule.glob
                && self.shard_input().is_none()
            {
                return Err(Error::invalid(
                    "shards.glob",
                    format!(
                        "`{glob}` is not under the path of any input; mount the input tree \
                         (e.g. `inputs: [{{source: ipfs://CID, path: /inputs}}]`) and glob under it"
                    ),
                ));
            }
        }
        if self.resources.timeout > d.windows.exec {
            return Err(Error::invalid(
                "resources.timeout",
                format!(
                    "{}s is longer than the exec window of {}s: a run that long cannot commit in \
                     time and the operators would lose their collateral; shorten resources.timeout \
                     or lengthen deal.windows.exec",
                    self.resources.timeout.as_secs_f64(),
                    d.windows.exec.as_secs_f64()
                ),
            ));
        }
        match &self.engine {
            EngineSpec::Wasm(w) => {
                if w.entrypoint.is_empty() {
                    return Err(Error::invalid(
                        "engine.wasm.entrypoint",
                        "must not be empty",
                    ));
                }
                if !self.network.is_none() {
                    return Err(Error::invalid(
                        "network",
                        "WASM jobs never have network access; remove `network: true`",
                    ));
                }
            }
            EngineSpec::Docker(d) => {
                self.network.validate()?;
                if d.image.trim().is_empty() {
                    return Err(Error::invalid("engine.docker.image", "must not be empty"));
                }
            }
        }
        let mut paths: Vec<(&str, String)> = Vec::new();
        for (i, input) in self.inputs.iter().enumerate() {
            let field = format!("inputs[{i}].path");
            check_job_path(&field, &input.path)?;
            if let Some(sum) = &input.checksum {
                let ok = sum
                    .strip_prefix("sha256:")
                    .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()));
                if !ok {
                    return Err(Error::invalid(
                        format!("inputs[{i}].checksum"),
                        "must be `sha256:` followed by 64 hex digits",
                    ));
                }
            }
            paths.push((&input.path, field));
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, output) in self.outputs.iter().enumerate() {
            let name_ok = !output.name.is_empty()
                && output.name.len() <= 64
                && output
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
                && !matches!(output.name.as_str(), "stdout" | "stderr" | "exitCode");
            if !name_ok {
                return Err(Error::invalid(
                    format!("outputs[{i}].name"),
                    format!(
                        "`{}` must be 1-64 of [A-Za-z0-9_-] and not stdout, stderr or exitCode",
                        output.name
                    ),
                ));
            }
            if !names.insert(output.name.as_str()) {
                return Err(Error::invalid(
                    format!("outputs[{i}].name"),
                    format!("`{}` is used twice", output.name),
                ));
            }
            let field = format!("outputs[{i}].path");
            check_job_path(&field, &output.path)?;
            paths.push((&output.path, field));
        }
        for (a, (pa, fa)) in paths.iter().enumerate() {
            for (pb, fb) in paths.iter().skip(a + 1) {
                if nested(pa, pb) || nested(pb, pa) {
                    return Err(Error::invalid(
                        fb.clone(),
                        format!("`{pb}` overlaps `{pa}` ({fa}); mount points must be disjoint"),
                    ));
                }
            }
        }
        Ok(())
    }
}

fn nested(parent: &str, child: &str) -> bool {
    let p = parent.trim_end_matches('/');
    child == p
        || child
            .strip_prefix(p)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// A path inside the job: absolute, normalised, no `..`, not the root.
fn check_job_path(field: &str, path: &str) -> Result<()> {
    if !path.starts_with('/') || path == "/" {
        return Err(Error::invalid(
            field,
            format!("`{path}` must be an absolute path below /"),
        ));
    }
    if path.split('/').any(|c| c == ".." || c == ".") || path.contains("//") || path.contains('\0')
    {
        return Err(Error::invalid(
            field,
            format!("`{path}` must be normalised: no `.`, `..` or empty components"),
        ));
    }
    Ok(())
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn encode_base64(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn decode_base64(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=');
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in s.bytes() {
        let v = B64.iter().position(|&x| x == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

mod duration {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s).map_err(|e| {
            serde::de::Error::custom(format!("`{s}` is not a duration like 30s or 5m: {e}"))
        })
    }
}

/// Bytes in binary units, as specs write them: `512 B`, `64 MiB`, `1.5 GiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 || v.fract() == 0.0 {
        format!("{v:.0} {}", UNITS[unit])
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

mod byte_size {
    use serde::{Deserializer, Serializer, de};
    use std::fmt;

    pub fn serialize<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(*v)
    }

    /// A whole number of bytes or a size with a unit; every other value is
    /// refused with what it was (not serde's "no variant matched").
    struct Size;

    impl de::Visitor<'_> for Size {
        type Value = u64;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a size like 256MiB or a whole number of bytes")
        }

        fn visit_u64<E: de::Error>(self, n: u64) -> Result<u64, E> {
            Ok(n)
        }

        fn visit_i64<E: de::Error>(self, n: i64) -> Result<u64, E> {
            u64::try_from(n)
                .map_err(|_| E::custom(format!("`{n}` is not a size: it must not be negative")))
        }

        fn visit_u128<E: de::Error>(self, n: u128) -> Result<u64, E> {
            u64::try_from(n).map_err(|_| E::custom(format!("`{n}` bytes is too large a size")))
        }

        fn visit_i128<E: de::Error>(self, n: i128) -> Result<u64, E> {
            Err(E::custom(format!("`{n}` is not a size like 256MiB")))
        }

        fn visit_f64<E: de::Error>(self, n: f64) -> Result<u64, E> {
            Err(E::custom(format!(
                "`{n:?}` is not a size like 256MiB: write a whole number of bytes or a unit"
            )))
        }

        fn visit_str<E: de::Error>(self, t: &str) -> Result<u64, E> {
            t.parse::<bytesize::ByteSize>()
                .map(|b| b.as_u64())
                .map_err(|e| E::custom(format!("`{t}` is not a size like 256MiB: {e}")))
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        d.deserialize_any(Size)
    }
}

mod wei {
    use serde::{Deserializer, Serializer, de};
    use std::fmt;

    pub fn serialize<S: Serializer>(v: &u128, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&v.to_string())
    }

    /// A whole number of wei, as a number or a decimal string; every other
    /// value is refused with what it was (not serde's "no variant matched").
    struct Wei;

    fn not_wei<E: de::Error>(v: impl fmt::Display) -> E {
        E::custom(format!(
            "`{v}` is not an amount of wei (a whole number from 0 to 2^128-1)"
        ))
    }

    impl de::Visitor<'_> for Wei {
        type Value = u128;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an amount of wei: a whole number, best as a decimal string")
        }

        fn visit_u64<E: de::Error>(self, n: u64) -> Result<u128, E> {
            Ok(u128::from(n))
        }

        fn visit_u128<E: de::Error>(self, n: u128) -> Result<u128, E> {
            Ok(n)
        }

        fn visit_i64<E: de::Error>(self, n: i64) -> Result<u128, E> {
            u128::try_from(n).map_err(|_| not_wei(n))
        }

        fn visit_i128<E: de::Error>(self, n: i128) -> Result<u128, E> {
            u128::try_from(n).map_err(|_| not_wei(n))
        }

        fn visit_f64<E: de::Error>(self, n: f64) -> Result<u128, E> {
            Err(E::custom(format!(
                "`{n}` is not an amount of wei (a whole number); write large amounts as a \
                 decimal string, e.g. \"1000000000000000000\""
            )))
        }

        fn visit_str<E: de::Error>(self, t: &str) -> Result<u128, E> {
            t.trim().parse::<u128>().map_err(|_| not_wei(t))
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u128, D::Error> {
        d.deserialize_any(Wei)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pin_field_is_optional_and_checked() {
        let base = EXAMPLE.to_owned();
        let plain = JobSpec::from_yaml(&base).expect("a spec without pin");
        assert_eq!(plain.pin, None);
        assert!(
            !String::from_utf8_lossy(&plain.to_canonical_json()).contains("pin"),
            "a spec without pin keeps its canonical form"
        );
        let with = JobSpec::from_yaml(&format!("{base}pin: {{replication_min: 3}}\n"))
            .expect("a spec with pin");
        assert_eq!(
            with.pin,
            Some(PinSpec {
                replication_min: 3,
                replication_max: PinSpec::DEFAULT_MAX
            })
        );
        for bad in [
            "pin: {replication_min: 0}",
            "pin: {replication_min: 4, replication_max: 3}",
            "pin: {replication_min: 2, replication_max: 11}",
            "pin: {copies: 2}",
        ] {
            assert!(
                JobSpec::from_yaml(&format!("{base}{bad}\n")).is_err(),
                "{bad} is accepted"
            );
        }
    }

    const EXAMPLE: &str = r#"
name: wordcount
engine:
  wasm:
    module: ipfs://bafkreiexample
    args: ["/inputs/books"]
inputs:
  - source: ipfs://bafybeiexample
    path: /inputs/books
outputs:
  - name: counts
    path: /outputs/counts
resources: { cpu: 1, memory: 64MiB, timeout: 30s }
deal:
  concurrency: 3
  confidence: 2
  min_bids: 3
  max_price: "1000"
  collateral: 500
  windows: { bid: 10s, exec: 1m, reveal: 30s }
"#;

    #[test]
    fn parses_and_round_trips_canonical_json() {
        let spec = JobSpec::from_yaml(EXAMPLE).expect("example parses");
        assert_eq!(spec.engine.kind(), "wasm");
        assert_eq!(spec.resources.memory, 64 * 1024 * 1024);
        assert_eq!(spec.deal.max_price, 1000);
        assert_eq!(spec.deal.collateral, 500);
        assert_eq!(spec.deal.escrow(), 3000);
        assert_eq!(spec.deal.windows.exec, Duration::from_secs(60));
        let json = spec.to_canonical_json();
        let back = JobSpec::from_canonical_json(&json).expect("canonical json parses");
        assert_eq!(back, spec);
        assert_eq!(back.to_canonical_json(), json, "canonical form is stable");
    }

    #[test]
    fn an_unset_min_bids_is_twice_the_concurrency() {
        let base = EXAMPLE.replace("  min_bids: 3\n", "");
        assert_eq!(JobSpec::from_yaml(&base).expect("parses").deal.min_bids, 6);
        let four = base.replace("concurrency: 3", "concurrency: 4");
        assert_eq!(JobSpec::from_yaml(&four).expect("parses").deal.min_bids, 8);
        let wide = base.replace("concurrency: 3", "concurrency: 20");
        assert_eq!(
            JobSpec::from_yaml(&wide).expect("parses").deal.min_bids,
            MAX_CONCURRENCY
        );
        // a set floor is kept, and the canonical form carries the resolved value
        let set = JobSpec::from_yaml(EXAMPLE).expect("parses");
        assert_eq!(set.deal.min_bids, 3);
        let derived = JobSpec::from_yaml(&base).expect("parses");
        let back = JobSpec::from_canonical_json(&derived.to_canonical_json()).expect("json");
        assert_eq!(back.deal.min_bids, 6);
        assert_eq!(DealParams::default().min_bids, 6);
    }

    #[test]
    fn rejects_bad_deals_with_the_field_named() {
        for (from, to, field) in [
            ("confidence: 2", "confidence: 4", "deal.confidence"),
            ("min_bids: 3", "min_bids: 2", "deal.min_bids"),
            ("concurrency: 3", "concurrency: 0", "deal.concurrency"),
            ("max_price: \"1000\"", "max_price: \"0\"", "deal.max_price"),
            ("bid: 10s", "bid: 0s", "deal.windows.bid"),
            ("exec: 1m", "exec: 20s", "resources.timeout"),
        ] {
            let doc = EXAMPLE.replace(from, to);
            match JobSpec::from_yaml(&doc) {
                Err(Error::Invalid { field: f, .. }) => assert_eq!(f, field, "for {to}"),
                other => panic!("{to}: expected Invalid({field}), got {other:?}"),
            }
        }
    }

    #[test]
    fn sizes_print_in_binary_units() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(64 << 20), "64 MiB");
        assert_eq!(human_bytes(3 << 29), "1.5 GiB");
    }

    #[test]
    fn an_unset_timeout_is_at_most_the_exec_window() {
        let doc = EXAMPLE.replace(", timeout: 30s", "");
        let spec = JobSpec::from_yaml(&doc).expect("parses");
        assert_eq!(spec.resources.timeout, Duration::from_secs(60));
        let long = doc.replace("exec: 1m", "exec: 1h");
        let spec = JobSpec::from_yaml(&long).expect("parses");
        assert_eq!(spec.resources.timeout, Resources::default().timeout);
    }

    #[test]
    fn rejects_unknown_fields_and_bad_values() {
        assert!(matches!(
            JobSpec::from_yaml(&EXAMPLE.replace("name: wordcount", "nmae: x")),
            Err(Error::Parse(_))
        ));
        let err = JobSpec::from_yaml(&EXAMPLE.replace("timeout: 30s", "timeout: soon"))
            .expect_err("bad duration");
        assert!(err.to_string().contains("duration"), "{err}");
        let err = JobSpec::from_yaml(&EXAMPLE.replace("ipfs://bafybeiexample", "ftp://x"))
            .expect_err("bad source");
        assert!(err.to_string().contains("not a source"), "{err}");
    }

    #[test]
    fn rejects_escaping_and_overlapping_paths() {
        for bad in ["/inputs/../etc", "relative", "/", "/a//b", "/a/./b"] {
            let doc = EXAMPLE.replace("path: /inputs/books", &format!("path: {bad}"));
            assert!(
                matches!(JobSpec::from_yaml(&doc), Err(Error::Invalid { .. })),
                "{bad} accepted"
            );
        }
        let doc = EXAMPLE.replace("path: /outputs/counts", "path: /inputs/books/out");
        let err = JobSpec::from_yaml(&doc).expect_err("overlap");
        assert!(err.to_string().contains("overlaps"), "{err}");
        let doc = EXAMPLE.replace("name: counts", "name: stdout");
        assert!(JobSpec::from_yaml(&doc).is_err());
    }

    #[test]
    fn wasm_jobs_cannot_ask_for_network() {
        let doc = format!("{EXAMPLE}\nnetwork: true\n");
        let err = JobSpec::from_yaml(&doc).expect_err("network");
        assert!(err.to_string().contains("network"), "{err}");
    }

    #[test]
    fn input_sources_round_trip() {
        for s in [
            "ipfs://bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi/a.txt",
            "https://example.org/data.csv",
            "file:///srv/data",
            "inline;base64,aGVsbG8gd29ybGQ=",
        ] {
            let src: InputSource = s.parse().expect(s);
            assert_eq!(src.to_string(), s);
        }
        assert_eq!(
            "inline:hi".parse::<InputSource>().ok(),
            Some(InputSource::Inline(b"hi".to_vec()))
        );
        for data in [
            &b""[..],
            b"a",
            b"ab",
            b"abc",
            b"abcd",
            &[0u8, 255, 128, 7, 9],
        ] {
            assert_eq!(decode_base64(&encode_base64(data)).as_deref(), Some(data));
        }
        assert!("file://relative".parse::<InputSource>().is_err());
        assert!("ipfs://".parse::<InputSource>().is_err());
    }
}
