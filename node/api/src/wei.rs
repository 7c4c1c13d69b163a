//! Amounts on the wire: `U256` wei as a decimal string (`"1000000000000000"`), so that
//! JavaScript readers do not lose precision and people can read them.

use serde::{Deserialize, Deserializer, Serializer};
use shoal_chain::U256;

/// `#[serde(with = "shoal_api::wei")]`.
pub fn serialize<S: Serializer>(v: &U256, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

/// `#[serde(with = "shoal_api::wei")]`: a decimal string (a `0x` hex string is accepted too).
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<U256, D::Error> {
    let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
    parse(&s).map_err(serde::de::Error::custom)
}

/// Parses an amount in wei (decimal, or `0x` hex).
pub fn parse(s: &str) -> Result<U256, String> {
    let t = s.trim();
    let r = match t.strip_prefix("0x") {
        Some(hex) => U256::from_str_radix(hex, 16),
        None => U256::from_str_radix(t, 10),
    };
    r.map_err(|e| format!("`{s}` is not an amount in wei: {e}"))
}

#[cfg(test)]
mod tests {
    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct A {
        #[serde(with = "super")]
        v: super::U256,
    }

    #[test]
    fn amounts_are_decimal_strings() {
        let a = A {
            v: super::U256::from(10u64).pow(super::U256::from(21u64)),
        };
        let s = serde_json::to_string(&a).unwrap_or_default();
        assert_eq!(s, r#"{"v":"1000000000000000000000"}"#);
        assert_eq!(serde_json::from_str::<A>(&s).ok(), Some(a));
        assert!(serde_json::from_str::<A>(r#"{"v":"ten"}"#).is_err());
    }
}
