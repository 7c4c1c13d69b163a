//! A job's network access: none (the default), full, or only to an allow-list of domains
//! through the node's filtering proxy. Written `network: false`, `network: true` or
//! `network: {domains: [example.org, "*.example.net"]}`.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{Error, Result};

/// Most domains in one allow-list.
pub const MAX_DOMAINS: usize = 64;

/// What a job may reach.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Network {
    /// No network at all.
    #[default]
    None,
    /// Any address.
    Full,
    /// Only these hosts (and their subdomains), over HTTP(S) through the node's proxy.
    Domains(Vec<String>),
}

impl Network {
    /// Whether the job gets any network.
    pub fn is_none(&self) -> bool {
        *self == Network::None
    }

    /// Whether `host` may be reached: an allow-listed domain or one of its subdomains.
    pub fn allows(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        match self {
            Network::None => false,
            Network::Full => true,
            Network::Domains(ds) => ds.iter().any(|d| {
                let d = d.trim_start_matches("*.");
                host == d || host.strip_suffix(d).is_some_and(|rest| rest.ends_with('.'))
            }),
        }
    }

    /// Checks an allow-list's domains.
    pub fn validate(&self) -> Result<()> {
        let Network::Domains(ds) = self else {
            return Ok(());
        };
        if ds.is_empty() || ds.len() > MAX_DOMAINS {
            return Err(Error::invalid(
                "network.domains",
                format!("list 1 to {MAX_DOMAINS} domains, got {}", ds.len()),
            ));
        }
        for d in ds {
            let name = d.strip_prefix("*.").unwrap_or(d);
            let ok = !name.is_empty()
                && name.len() <= 253
                && name.split('.').all(|label| {
                    !label.is_empty()
                        && label.len() <= 63
                        && label
                            .bytes()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                });
            if !ok {
                return Err(Error::invalid(
                    "network.domains",
                    format!(
                        "`{d}` is not a domain: lowercase labels of letters, digits and '-', \
                         optionally starting with `*.`"
                    ),
                ));
            }
        }
        Ok(())
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DomainList {
    domains: Vec<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Raw {
    Flag(bool),
    List(DomainList),
}

impl Serialize for Network {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            Network::None => s.serialize_bool(false),
            Network::Full => s.serialize_bool(true),
            Network::Domains(d) => DomainList { domains: d.clone() }.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Network {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        match Raw::deserialize(d).map_err(|_| {
            serde::de::Error::custom("network must be false, true or {domains: [example.org, ...]}")
        })? {
            Raw::Flag(false) => Ok(Network::None),
            Raw::Flag(true) => Ok(Network::Full),
            Raw::List(l) => Ok(Network::Domains(l.domains)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_forms_parse_validate_and_match() {
        let n: Network =
            serde_json::from_str(r#"{"domains": ["example.org", "*.pypi.org"]}"#).expect("a list");
        assert!(n.validate().is_ok());
        assert!(n.allows("example.org") && n.allows("files.pypi.org") && n.allows("pypi.org"));
        assert!(!n.allows("evil.org") && !n.allows("notexample.org"));
        assert_eq!(
            serde_json::from_str::<Network>("true").ok(),
            Some(Network::Full)
        );
        assert_eq!(
            serde_json::to_string(&Network::None).ok().as_deref(),
            Some("false")
        );
        assert!(serde_json::from_str::<Network>(r#"{"hosts": []}"#).is_err());
        assert!(
            Network::Domains(vec!["Bad Domain".into()])
                .validate()
                .is_err()
        );
        assert!(Network::Domains(vec![]).validate().is_err());
    }
}
