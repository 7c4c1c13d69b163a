#![doc = include_str!("../README.md")]

pub mod api;
pub mod chain;
pub mod config;
pub mod content;
pub mod db;
pub mod devstack;
mod error;
pub mod follower;
pub mod metrics;
pub mod model;
mod network;
pub mod node;
mod openapi;
pub mod results;
pub mod strategy;

pub use config::{BidHook, BidPolicy, DeploymentConfig, Fault, NodeConfig};
pub use error::{Error, Result};
pub use node::{NodeHandle, start};
