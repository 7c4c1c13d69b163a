//! Placement constraints: where a job may run, as selectors over the labels operators give
//! their nodes (`[labels]` in the node config): `key=value`, `key!=value`,
//! `key in (a,b)`, `key notin (a,b)`. Every constraint of a job must hold on a node for it to
//! bid. A node without the key matches only `!=` and `notin`.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{Error, Result};

/// How a constraint compares a node's label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConstraintOp {
    /// `key=value`.
    Eq(String),
    /// `key!=value`.
    Ne(String),
    /// `key in (a,b)`.
    In(Vec<String>),
    /// `key notin (a,b)`.
    NotIn(Vec<String>),
}

/// One placement constraint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Constraint {
    /// The label's key.
    pub key: String,
    /// The comparison.
    pub op: ConstraintOp,
}

impl Constraint {
    /// Whether a node with these labels satisfies it.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let v = labels.get(&self.key);
        match &self.op {
            ConstraintOp::Eq(want) => v == Some(want),
            ConstraintOp::Ne(not) => v != Some(not),
            ConstraintOp::In(set) => v.is_some_and(|v| set.contains(v)),
            ConstraintOp::NotIn(set) => v.is_none_or(|v| !set.contains(v)),
        }
    }
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/' | b':'))
}

fn invalid(s: &str, why: &str) -> Error {
    Error::invalid(
        "constraints",
        format!(
            "`{s}` {why}; write key=value, key!=value, key in (a,b) or key notin (a,b) with \
             letters, digits and -_./: in keys and values"
        ),
    )
}

fn set(s: &str, body: &str) -> Result<Vec<String>> {
    let inner = body
        .trim()
        .strip_prefix('(')
        .and_then(|b| b.strip_suffix(')'))
        .ok_or_else(|| invalid(s, "needs its values in parentheses"))?;
    let values: Vec<String> = inner.split(',').map(|v| v.trim().to_owned()).collect();
    if values.iter().all(|v| is_token(v)) {
        Ok(values)
    } else {
        Err(invalid(s, "has an empty or malformed value"))
    }
}

impl FromStr for Constraint {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let t = s.trim();
        let (key, op) = if let Some((k, rest)) = t.split_once(" notin ") {
            (k, ConstraintOp::NotIn(set(s, rest)?))
        } else if let Some((k, rest)) = t.split_once(" in ") {
            (k, ConstraintOp::In(set(s, rest)?))
        } else if let Some((k, v)) = t.split_once("!=") {
            (k, ConstraintOp::Ne(v.trim().to_owned()))
        } else if let Some((k, v)) = t.split_once('=') {
            (k, ConstraintOp::Eq(v.trim().to_owned()))
        } else {
            return Err(invalid(s, "is not a constraint"));
        };
        let key = key.trim();
        if !is_token(key) {
            return Err(invalid(s, "has no valid key"));
        }
        if let ConstraintOp::Eq(v) | ConstraintOp::Ne(v) = &op
            && !is_token(v)
        {
            return Err(invalid(s, "has no valid value"));
        }
        Ok(Constraint {
            key: key.to_owned(),
            op,
        })
    }
}

impl fmt::Display for Constraint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let k = &self.key;
        match &self.op {
            ConstraintOp::Eq(v) => write!(f, "{k}={v}"),
            ConstraintOp::Ne(v) => write!(f, "{k}!={v}"),
            ConstraintOp::In(vs) => write!(f, "{k} in ({})", vs.join(",")),
            ConstraintOp::NotIn(vs) => write!(f, "{k} notin ({})", vs.join(",")),
        }
    }
}

impl Serialize for Constraint {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Constraint {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn constraints_parse_print_and_match() {
        let eu = labels(&[("region", "eu"), ("gpu", "a100")]);
        for (text, on_eu) in [
            ("region=eu", true),
            ("region!=eu", false),
            ("region in (us, eu)", true),
            ("region notin (eu)", false),
            ("zone=a", false),
            ("zone!=a", true),
            ("zone notin (a,b)", true),
        ] {
            let c: Constraint = text.parse().expect(text);
            assert_eq!(c.matches(&eu), on_eu, "{text}");
            let back: Constraint = c.to_string().parse().expect("round trip");
            assert_eq!(back, c);
        }
        for bad in [
            "region",
            "=eu",
            "region=",
            "region in eu",
            "region in (a,)",
            "a b=c",
        ] {
            assert!(bad.parse::<Constraint>().is_err(), "{bad}");
        }
    }
}
