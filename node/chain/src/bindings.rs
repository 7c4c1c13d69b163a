//! Contract bindings generated from `contracts/artifacts` (see `build.rs`): ABI, enums with
//! their variants, structs, events, custom errors and creation bytecode.
#![allow(missing_docs, clippy::too_many_arguments)]

include!(concat!(env!("OUT_DIR"), "/JobMarket.rs"));
include!(concat!(env!("OUT_DIR"), "/OperatorRegistry.rs"));

impl JobMarket::JobState {
    /// Verified, Failed and Expired are final: nothing changes the job afterwards.
    pub fn is_final(&self) -> bool {
        matches!(self, Self::Verified | Self::Failed | Self::Expired)
    }
}
