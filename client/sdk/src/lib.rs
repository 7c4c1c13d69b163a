#![doc = include_str!("../README.md")]

pub mod config;
mod error;
pub mod job;
pub mod pipeline;
pub mod shards;
pub mod wallet;

pub use config::Config;
pub use error::{Error, Result};
pub use wallet::{KeySource, Keystore};

pub mod api;
mod client;

pub use client::{Client, Outcome, Posted, job_params, pack_car};
