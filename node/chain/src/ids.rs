//! Typed identifiers.

use std::fmt;
use std::str::FromStr;

use alloy::primitives::U256;

/// A job's id in the market (assigned by `postJob`, counting from 1). Displayed and parsed as a
/// decimal number; serialized as a JSON number while it fits 64 bits (every id the market
/// hands out in practice) and as a decimal string beyond; both forms are read back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct JobId(pub U256);

impl JobId {
    /// The id as the contract's `uint256`.
    pub fn as_u256(&self) -> U256 {
        self.0
    }
}

impl From<U256> for JobId {
    fn from(v: U256) -> Self {
        JobId(v)
    }
}

impl From<u64> for JobId {
    fn from(v: u64) -> Self {
        JobId(U256::from(v))
    }
}

impl From<JobId> for U256 {
    fn from(v: JobId) -> Self {
        v.0
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// A job id that is not a decimal number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a job id; job ids are decimal numbers such as 42")]
pub struct ParseJobIdError(String);

impl FromStr for JobId {
    type Err = ParseJobIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ParseJobIdError(s.to_string()));
        }
        U256::from_str_radix(t, 10)
            .map(JobId)
            .map_err(|_| ParseJobIdError(s.to_string()))
    }
}

impl serde::Serialize for JobId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match u64::try_from(self.0) {
            Ok(n) => s.serialize_u64(n),
            Err(_) => s.collect_str(self),
        }
    }
}

impl<'de> serde::Deserialize<'de> for JobId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Form {
            Number(u64),
            Text(String),
        }
        match Form::deserialize(d)? {
            Form::Number(n) => Ok(JobId::from(n)),
            Form::Text(s) => s.parse().map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_id_round_trips_as_decimal() {
        let id: JobId = "12345678901234567890123".parse().unwrap_or_default();
        assert_eq!(id.to_string(), "12345678901234567890123");
        assert_eq!(
            serde_json::to_string(&id).ok().as_deref(),
            Some("\"12345678901234567890123\"")
        );
        assert_eq!(
            serde_json::to_string(&JobId::from(7u64)).ok().as_deref(),
            Some("7")
        );
        assert_eq!(
            serde_json::from_str::<JobId>("7").ok(),
            Some(JobId::from(7u64))
        );
        assert_eq!(
            serde_json::from_str::<JobId>("\"7\"").ok(),
            Some(JobId::from(7u64))
        );
        assert!("0x10".parse::<JobId>().is_err());
        assert!("".parse::<JobId>().is_err());
        assert!("-1".parse::<JobId>().is_err());
        assert_eq!(JobId::from(7u64).to_string(), "7");
    }
}
