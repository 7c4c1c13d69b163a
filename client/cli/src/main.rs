//! The `shoal` command: results on stdout, progress and diagnostics on stderr,
//! `--json` for machines.

mod cmd;

use clap::{Parser, Subcommand};

/// Shoal: a compute-over-data market on an EVM chain.
#[derive(Debug, Parser)]
#[command(name = "shoal", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Add, fetch and export content-addressed data (UnixFS, CAR).
    #[command(subcommand)]
    Content(cmd::content::Command),
    /// Run the embedded EVM devchain as a standalone JSON-RPC server.
    Devchain(cmd::devchain::Args),
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SHOAL_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Content(c) => cmd::content::run(c).await,
        Command::Devchain(a) => cmd::devchain::run(a).await,
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
