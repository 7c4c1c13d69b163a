//! Contract bindings generated from `contracts/artifacts` (see `build.rs`): ABI, enums with
//! their variants, structs, events, custom errors and creation bytecode.
//!
//! The ABI's enums (`JobState`, `Verifier`, `SlashReason`, `FailReason`, `PaymentKind`) are the
//! only definitions of those types in Shoal. Their text form — `Display`, `FromStr` and serde —
//! is the variant name as the contract declares it (`Verified`, `TooFewCommits`), taken from
//! the generated enum itself, so it cannot drift from the contract.
#![allow(missing_docs, clippy::too_many_arguments)]

include!(concat!(env!("OUT_DIR"), "/JobMarket.rs"));
include!(concat!(env!("OUT_DIR"), "/OperatorRegistry.rs"));
include!(concat!(env!("OUT_DIR"), "/ShardMarket.rs"));
include!(concat!(env!("OUT_DIR"), "/PipelineMarket.rs"));

impl JobMarket::JobState {
    /// Verified, Failed and Expired are final: nothing changes the job afterwards.
    pub fn is_final(&self) -> bool {
        matches!(self, Self::Verified | Self::Failed | Self::Expired)
    }
}

/// An ABI enum value that is not one of the contract's variants.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{value}` is not a {kind}; use one of {expected}")]
pub struct ParseEnumError {
    /// The enum's name (`JobState`).
    pub kind: &'static str,
    /// What was given.
    pub value: String,
    /// The variants, comma separated.
    pub expected: String,
}

/// Text forms of the contract's enums, from the generated variants.
pub trait AbiEnum: Sized + Copy + std::fmt::Debug + TryFrom<u8> + Into<u8> + 'static {
    /// The enum's name in the contract.
    const KIND: &'static str;
    /// Number of variants the contract declares.
    const COUNT: usize;

    /// Every variant, in ABI order.
    fn all() -> Vec<Self> {
        (0..Self::COUNT)
            .filter_map(|i| u8::try_from(i).ok())
            .filter_map(|i| Self::try_from(i).ok())
            .collect()
    }

    /// The variant's name as in the contract; `Unknown(n)` for a value the ABI does not know.
    fn name(self) -> String {
        let n: u8 = self.into();
        if usize::from(n) < Self::COUNT {
            format!("{self:?}")
        } else {
            format!("Unknown({n})")
        }
    }

    /// The variant named `s` (any case).
    fn parse_name(s: &str) -> Result<Self, ParseEnumError> {
        Self::all()
            .into_iter()
            .find(|v| v.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| ParseEnumError {
                kind: Self::KIND,
                value: s.to_owned(),
                expected: Self::all()
                    .into_iter()
                    .map(AbiEnum::name)
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }
}

macro_rules! abi_enum_text {
    ($($ty:ident),* $(,)?) => {$(
        impl AbiEnum for JobMarket::$ty {
            const KIND: &'static str = stringify!($ty);
            const COUNT: usize = <JobMarket::$ty as alloy::sol_types::SolEnum>::COUNT;
        }

        impl std::fmt::Display for JobMarket::$ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&AbiEnum::name(*self))
            }
        }

        impl std::str::FromStr for JobMarket::$ty {
            type Err = ParseEnumError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                <Self as AbiEnum>::parse_name(s)
            }
        }

        impl serde::Serialize for JobMarket::$ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> serde::Deserialize<'de> for JobMarket::$ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    )*};
}

abi_enum_text!(JobState, Verifier, SlashReason, FailReason, PaymentKind);

#[cfg(test)]
mod tests {
    use super::JobMarket::{FailReason, JobState, PaymentKind};
    use super::*;

    #[test]
    fn enums_read_and_print_their_contract_names() {
        assert_eq!(JobState::Verified.to_string(), "Verified");
        assert_eq!("verified".parse::<JobState>(), Ok(JobState::Verified));
        assert_eq!(
            "TooFewCommits".parse::<FailReason>(),
            Ok(FailReason::TooFewCommits)
        );
        let err = "nope".parse::<JobState>().err().map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("Posted, Drawing, Running")));
        assert_eq!(JobState::all().len(), <JobState as AbiEnum>::COUNT);
        assert_eq!(
            serde_json::to_string(&PaymentKind::Compensation).ok(),
            Some("\"Compensation\"".to_owned())
        );
        assert_eq!(
            serde_json::from_str::<JobState>("\"Running\"").ok(),
            Some(JobState::Running)
        );
        assert!(serde_json::from_str::<JobState>("\"Sleeping\"").is_err());
    }
}
