//! Building a job spec from Bacalhau-style command-line flags.

use std::path::PathBuf;

use serde_json::{Map, Value, json};
use shoal_types::{InputSource, JobSpec};

use crate::{Error, Result};

/// Where an `-i/--input SRC:DST` comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum InputLocation {
    /// Already addressable by the nodes (`ipfs://CID`, `https://…`, `file:///…`, `inline:…`).
    Remote(InputSource),
    /// A file or folder on this machine; uploaded to the requester node before posting.
    Local(PathBuf),
}

/// One `-i/--input SRC:DST`.
#[derive(Debug, Clone, PartialEq)]
pub struct InputArg {
    /// Where the data comes from.
    pub source: InputLocation,
    /// Absolute path inside the job.
    pub target: String,
}

impl std::str::FromStr for InputArg {
    type Err = Error;

    /// `SRC:DST` where DST is an absolute path; a bare `ipfs://CID` or URL mounts at `/inputs`.
    fn from_str(s: &str) -> Result<Self> {
        let (src, dst) = match s.rsplit_once(':') {
            Some((src, dst))
                if dst.starts_with('/') && !dst.starts_with("//") && !src.is_empty() =>
            {
                (src, dst.to_owned())
            }
            _ => (s, "/inputs".to_owned()),
        };
        let looks_remote = [
            "ipfs://", "http://", "https://", "file://", "inline:", "inline;",
        ]
        .iter()
        .any(|p| src.starts_with(p));
        let source = if looks_remote {
            InputLocation::Remote(
                src.parse()
                    .map_err(|e: shoal_types::Error| Error::bad_arg("--input", s, e.to_string()))?,
            )
        } else {
            let path = PathBuf::from(src);
            if !path.exists() {
                return Err(Error::bad_arg(
                    "--input",
                    s,
                    format!("`{src}` is not ipfs://CID, an http(s) URL, or an existing local path"),
                ));
            }
            InputLocation::Local(path)
        };
        Ok(Self {
            source,
            target: dst,
        })
    }
}

/// One `-o/--output NAME:/path`.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputArg {
    /// Folder name in the results.
    pub name: String,
    /// Absolute path inside the job.
    pub path: String,
}

impl std::str::FromStr for OutputArg {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.split_once(':') {
            Some((name, path)) if !name.is_empty() && path.starts_with('/') => Ok(Self {
                name: name.to_owned(),
                path: path.to_owned(),
            }),
            _ => Err(Error::bad_arg(
                "--output",
                s,
                "expected NAME:/absolute/path, e.g. outputs:/outputs",
            )),
        }
    }
}

/// Parses one `-e/--env K=V`.
pub fn parse_env(s: &str) -> Result<(String, String)> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(Error::bad_arg("--env", s, "expected KEY=VALUE")),
    }
}

/// The engine of a job built from flags.
#[derive(Debug, Clone, PartialEq)]
pub enum EngineArg {
    /// `shoal wasm run MODULE [-- args]`; `module` is already a source (local modules are
    /// uploaded first).
    Wasm {
        /// The module's source.
        module: InputSource,
        /// Program arguments.
        args: Vec<String>,
        /// Entry point (`_start` when `None`).
        entrypoint: Option<String>,
    },
    /// `shoal docker run IMAGE [-- cmd args]`.
    Docker {
        /// Image reference present on the nodes.
        image: String,
        /// Command and arguments.
        cmd: Vec<String>,
        /// Entrypoint override.
        entrypoint: Option<Vec<String>>,
    },
}

/// Job flags as `shoal wasm run` / `shoal docker run` take them. Unset values keep the
/// spec defaults (docs/job-spec.md).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobFlags {
    /// Display name.
    pub name: Option<String>,
    /// Inputs, already resolved to sources.
    pub inputs: Vec<(InputSource, String)>,
    /// Outputs.
    pub outputs: Vec<OutputArg>,
    /// Environment.
    pub env: Vec<(String, String)>,
    /// `--concurrency`.
    pub concurrency: Option<u32>,
    /// `--confidence`.
    pub confidence: Option<u32>,
    /// `--min-bids`.
    pub min_bids: Option<u32>,
    /// `--max-price` in wei.
    pub max_price: Option<u128>,
    /// `--collateral` in wei.
    pub collateral: Option<u128>,
    /// `--verifier deterministic|optimistic`.
    pub verifier: Option<shoal_types::Verifier>,
    /// `--timeout` (`30s`, `5m`).
    pub timeout: Option<String>,
    /// `--cpu`.
    pub cpu: Option<f64>,
    /// `--memory` (`256MiB`).
    pub memory: Option<String>,
    /// `--network`.
    pub network: bool,
    /// `--bid-window`.
    pub bid_window: Option<String>,
    /// `--exec-window`.
    pub exec_window: Option<String>,
    /// `--reveal-window`.
    pub reveal_window: Option<String>,
    /// `--no-mediation`.
    pub no_mediation: bool,
    /// `--constraint` (`region=eu`, `gpu in (a100,h100)`).
    pub constraints: Vec<String>,
    /// `--network-domain`: reach only these hosts (and subdomains), through the node's proxy.
    pub network_domains: Vec<String>,
}

/// Builds and validates a spec from an engine and flags.
pub fn build_spec(engine: EngineArg, flags: &JobFlags) -> Result<JobSpec> {
    let env: Map<String, Value> = flags
        .env
        .iter()
        .map(|(k, v)| (k.clone(), v.clone().into()))
        .collect();
    let engine = match engine {
        EngineArg::Wasm {
            module,
            args,
            entrypoint,
        } => {
            let mut w = json!({ "module": module.to_string(), "args": args, "env": env });
            if let Some(e) = entrypoint {
                w["entrypoint"] = e.into();
            }
            json!({ "wasm": w })
        }
        EngineArg::Docker {
            image,
            cmd,
            entrypoint,
        } => {
            let mut d = json!({ "image": image, "cmd": cmd, "env": env });
            if let Some(e) = entrypoint {
                d["entrypoint"] = json!(e);
            }
            json!({ "docker": d })
        }
    };
    let mut resources = Map::new();
    if let Some(c) = flags.cpu {
        resources.insert("cpu".into(), json!(c));
    }
    if let Some(m) = &flags.memory {
        resources.insert("memory".into(), json!(m));
    }
    // Without --timeout the spec's rule applies: the default, or the exec window if shorter.
    if let Some(t) = &flags.timeout {
        resources.insert("timeout".into(), json!(t));
    }
    let mut deal = Map::new();
    let mut put = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            deal.insert(k.into(), v);
        }
    };
    put("concurrency", flags.concurrency.map(Value::from));
    // Keep the defaults consistent with a smaller concurrency: k ≤ n ≤ m.
    let confidence = flags
        .confidence
        .or_else(|| flags.concurrency.map(|n| n.min(2).min(n)));
    put("confidence", confidence.map(Value::from));
    put(
        "min_bids",
        flags
            .min_bids
            .or(flags.concurrency.map(shoal_types::default_min_bids))
            .map(Value::from),
    );
    put("max_price", flags.max_price.map(|p| p.to_string().into()));
    put("collateral", flags.collateral.map(|p| p.to_string().into()));
    put(
        "verifier",
        flags.verifier.map(|v| match v {
            shoal_types::Verifier::Deterministic => "deterministic".into(),
            shoal_types::Verifier::Optimistic => "optimistic".into(),
        }),
    );
    if flags.no_mediation {
        put("mediation", Some(false.into()));
    }
    let mut windows = Map::new();
    for (k, v) in [
        ("bid", &flags.bid_window),
        ("exec", &flags.exec_window),
        ("reveal", &flags.reveal_window),
    ] {
        if let Some(v) = v {
            windows.insert(k.into(), json!(v));
        }
    }
    if !windows.is_empty() {
        deal.insert("windows".into(), Value::Object(windows));
    }
    let inputs: Vec<Value> = flags
        .inputs
        .iter()
        .map(|(s, p)| json!({ "source": s.to_string(), "path": p }))
        .collect();
    let outputs: Vec<Value> = flags
        .outputs
        .iter()
        .map(|o| json!({ "name": o.name, "path": o.path }))
        .collect();
    let doc = json!({
        "name": flags.name.clone().unwrap_or_default(),
        "engine": engine,
        "inputs": inputs,
        "outputs": outputs,
        "resources": resources,
        "network": if flags.network_domains.is_empty() {
            json!(flags.network)
        } else {
            json!({ "domains": flags.network_domains })
        },
        "deal": deal,
        "constraints": flags.constraints,
    });
    // YAML is a superset of JSON, so the spec's own parser (with its duration, size and wei
    // formats and every validation rule) reads this document.
    Ok(JobSpec::from_yaml(&doc.to_string())?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_inputs_outputs_env() -> Result<()> {
        let i: InputArg = "ipfs://bafkqaaa:/data".parse()?;
        assert_eq!(i.target, "/data");
        assert!(matches!(
            i.source,
            InputLocation::Remote(InputSource::Ipfs(_))
        ));
        let u: InputArg = "http://127.0.0.1:8080/a.txt:/in/a.txt".parse()?;
        assert_eq!(u.target, "/in/a.txt");
        assert_eq!(
            u.source,
            InputLocation::Remote(InputSource::Url("http://127.0.0.1:8080/a.txt".into()))
        );
        let bare: InputArg = "https://example.org/x".parse()?;
        assert_eq!(bare.target, "/inputs");
        assert!("/definitely/not/here:/x".parse::<InputArg>().is_err());
        let o: OutputArg = "outputs:/outputs".parse()?;
        assert_eq!(o.name, "outputs");
        assert!("outputs".parse::<OutputArg>().is_err());
        assert_eq!(parse_env("A=b=c")?, ("A".into(), "b=c".into()));
        assert!(parse_env("=x").is_err());
        Ok(())
    }

    #[test]
    fn builds_a_valid_spec_from_flags() -> Result<()> {
        let flags = JobFlags {
            inputs: vec![(InputSource::Ipfs("bafkqaaa".into()), "/inputs".into())],
            outputs: vec![OutputArg {
                name: "outputs".into(),
                path: "/outputs".into(),
            }],
            env: vec![("K".into(), "V".into())],
            concurrency: Some(1),
            timeout: Some("30s".into()),
            memory: Some("64MiB".into()),
            max_price: Some(5),
            ..Default::default()
        };
        let spec = build_spec(
            EngineArg::Wasm {
                module: InputSource::Ipfs("bafkqaaa".into()),
                args: vec!["/inputs".into()],
                entrypoint: None,
            },
            &flags,
        )?;
        assert_eq!(spec.deal.concurrency, 1);
        assert_eq!(spec.deal.confidence, 1);
        // the floor follows --concurrency: twice it
        assert_eq!(spec.deal.min_bids, 2);
        assert_eq!(spec.deal.max_price, 5);
        assert_eq!(spec.resources.memory, 64 * 1024 * 1024);
        assert_eq!(spec.resources.timeout.as_secs(), 30);
        let bad = JobFlags {
            confidence: Some(4),
            ..flags
        };
        assert!(
            build_spec(
                EngineArg::Docker {
                    image: "x".into(),
                    cmd: vec![],
                    entrypoint: None
                },
                &bad
            )
            .is_err()
        );
        Ok(())
    }
}
