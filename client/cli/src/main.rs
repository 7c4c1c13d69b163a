//! The `shoal` command: results on stdout, progress and diagnostics on stderr,
//! `--json` for machines.

mod cmd;

use clap::{Parser, Subcommand};

/// Shoal: a compute-over-data market on an EVM chain.
#[derive(Debug, Parser)]
#[command(name = "shoal", version, about, propagate_version = true)]
struct Cli {
    #[command(flatten)]
    global: cmd::Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Keystore accounts (Web3 Secret Storage, compatible with `cast wallet`).
    #[command(subcommand)]
    Wallet(cmd::wallet::Command),
    /// Run WASM jobs.
    #[command(subcommand)]
    Wasm(WasmCommand),
    /// Run Docker jobs.
    #[command(subcommand)]
    Docker(DockerCommand),
    /// Post jobs from spec files, list, inspect and download them.
    #[command(subcommand)]
    Job(cmd::job::Command),
    /// Register as an operator, stake, unstake and withdraw.
    #[command(subcommand)]
    Operator(cmd::operator::Command),
    /// A job's on-chain history, decoded from events.
    #[command(subcommand)]
    Deal(cmd::deal::Command),
    /// Run a node from a config file.
    Serve(cmd::serve::Args),
    /// Start a local network: devchain, contracts and N staked nodes.
    Devstack(cmd::devstack::Args),
    /// Add, fetch and export content-addressed data (UnixFS, CAR).
    #[command(subcommand)]
    Content(cmd::content::Command),
    /// Run the embedded EVM devchain as a standalone JSON-RPC server.
    Devchain(cmd::devchain::Args),
    /// Pin CIDs on the swarm with a replication factor; list, inspect and remove pins.
    #[command(subcommand)]
    Pin(cmd::pin::Command),
    /// A running node's membership of the swarm (`shoal node leave`).
    #[command(subcommand)]
    Node(cmd::node::Command),
    /// Run a pipeline: stages one after the other, a stage reading the previous stage's
    /// verified results or fanning out over the files it selected.
    #[command(subcommand)]
    Pipeline(cmd::pipeline::Command),
}

#[derive(Debug, Subcommand)]
enum WasmCommand {
    /// Post a WASM job and (by default) wait for its verified result.
    ///
    /// Exit status: the program's own exit code once the job verified (0 when it succeeded;
    /// 124 when it ran longer than its timeout); 125 when shoal could not post the job, the job
    /// did not verify (failed, expired) or the wait timed out. With --json a JSON object is
    /// printed on stdout in every case.
    Run(cmd::run::WasmRun),
}

#[derive(Debug, Subcommand)]
enum DockerCommand {
    /// Post a Docker job and (by default) wait for its verified result.
    ///
    /// Exit status: the program's own exit code once the job verified (0 when it succeeded;
    /// 124 when it ran longer than its timeout); 125 when shoal could not post the job, the job
    /// did not verify (failed, expired) or the wait timed out. With --json a JSON object is
    /// printed on stdout in every case.
    Run(cmd::run::DockerRun),
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
    // `wasm run`, `docker run` and `job run` exit with the job's own exit code, so shoal's own
    // failures there exit 125 (as `docker run` does) to stay apart from the program's.
    let runs_a_job = matches!(
        cli.command,
        Command::Wasm(_) | Command::Docker(_) | Command::Job(cmd::job::Command::Run { .. })
    );
    let result = async {
        let ctx = cmd::Ctx::new(cli.global)?;
        match cli.command {
            Command::Wallet(c) => cmd::wallet::run(&ctx, c).await,
            Command::Wasm(WasmCommand::Run(c)) => cmd::run::wasm(&ctx, c).await,
            Command::Docker(DockerCommand::Run(c)) => cmd::run::docker(&ctx, c).await,
            Command::Job(c) => cmd::job::run(&ctx, c).await,
            Command::Operator(c) => cmd::operator::run(&ctx, c).await,
            Command::Deal(c) => cmd::deal::run(&ctx, c).await,
            Command::Serve(a) => cmd::serve::run(a).await,
            Command::Devstack(a) => cmd::devstack::run(a).await,
            Command::Content(c) => cmd::content::run(&ctx, c).await,
            Command::Devchain(a) => cmd::devchain::run(a).await,
            Command::Pin(c) => cmd::pin::run(&ctx, c).await,
            Command::Pipeline(c) => cmd::pipeline::run(&ctx, c).await,
            Command::Node(c) => cmd::node::run(&ctx, c).await,
        }
    }
    .await;
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            if let Some(exit) = e.downcast_ref::<cmd::job::ProgramExit>() {
                eprintln!("{exit}");
                return std::process::ExitCode::from(exit.status());
            }
            eprintln!("error: {e:#}");
            if runs_a_job {
                std::process::ExitCode::from(125)
            } else {
                std::process::ExitCode::FAILURE
            }
        }
    }
}
