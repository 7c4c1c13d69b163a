//! Contract bindings read straight from the build artifacts in `contracts/artifacts`.
#![allow(missing_docs, clippy::too_many_arguments)]

alloy::sol!(
    #[sol(rpc)]
    #[derive(Debug, PartialEq, Eq)]
    JobMarket,
    "../../contracts/artifacts/JobMarket.json"
);

alloy::sol!(
    #[sol(rpc)]
    #[derive(Debug, PartialEq, Eq)]
    OperatorRegistry,
    "../../contracts/artifacts/OperatorRegistry.json"
);
