#![doc = include_str!("../README.md")]

mod api;
pub mod chain;
pub mod compute;
pub mod config;
pub mod content;
mod error;
mod metrics;
mod network;
mod node;
mod openapi;
pub mod pinning;
mod pipeline;
pub mod shards;
pub mod state;
mod supervisor;
#[cfg(test)]
mod testkit;

pub use api::CAR_MIME;
pub use chain::post_job;
pub use config::{BidHook, BidPolicy, DeploymentConfig, NodeConfig};
pub use error::{Error, Result};
pub use node::{
    ExecutorLayer, NodeEvent, NodeHandle, NodeOptions, Observer, executors_for, start, start_with,
};
pub use state::StateStore;
