//! `shoal content`: add, get and CAR import/export.

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the CID of a file or folder.
    Add {
        /// File or folder to import.
        path: std::path::PathBuf,
    },
}

pub async fn run(cmd: Command) -> anyhow::Result<()> {
    match cmd {
        Command::Add { path } => anyhow::bail!("content add {}: not available yet", path.display()),
    }
}
