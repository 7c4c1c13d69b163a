//! `shoal devchain`: the embedded EVM node as a JSON-RPC server.

use clap::Args as ClapArgs;

#[derive(Debug, ClapArgs)]
pub struct Args {}

pub async fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("devchain: not available yet")
}
