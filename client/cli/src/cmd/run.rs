//! `shoal wasm run` and `shoal docker run`: a job from flags, Bacalhau style.

use std::path::Path;

use clap::Args;
use shoal_sdk::job::{EngineArg, InputArg, JobFlags, OutputArg, build_spec, parse_env};
use shoal_types::{InputSource, Verifier};

use super::Ctx;
use super::job::{SubmitFlags, submit};

/// Flags of a job built from the command line.
#[derive(Debug, Clone, Args)]
pub struct JobArgs {
    /// Input data `SRC:DST`: SRC is ipfs://CID, an http(s) URL or a local file or folder
    /// (uploaded to the node); DST is the absolute path in the job (default /inputs).
    #[arg(short = 'i', long = "input", value_name = "SRC:DST")]
    pub inputs: Vec<String>,
    /// Output folder `NAME:/path`, included in the results as NAME/.
    #[arg(short = 'o', long = "output", value_name = "NAME:/path")]
    pub outputs: Vec<String>,
    /// Environment variable `K=V`.
    #[arg(short = 'e', long = "env", value_name = "K=V")]
    pub env: Vec<String>,
    /// Operators that run the job (n).
    #[arg(long)]
    pub concurrency: Option<u32>,
    /// Equal results needed to verify (k ≤ n).
    #[arg(long)]
    pub confidence: Option<u32>,
    /// Bids the bid window must collect or the job expires (n ≤ m ≤ 32; default 2 × the
    /// concurrency). The deals are drawn at random from all bids.
    #[arg(long)]
    pub min_bids: Option<u32>,
    /// Highest price per execution (`0.001ether`, wei).
    #[arg(long)]
    pub max_price: Option<String>,
    /// Stake each selected operator locks (`0.001ether`, wei).
    #[arg(long)]
    pub collateral: Option<String>,
    /// How results are judged: deterministic (equal hashes) or optimistic (challenge window).
    #[arg(long, value_name = "deterministic|optimistic")]
    pub verifier: Option<String>,
    /// Execution time limit (`30s`, `5m`).
    #[arg(long)]
    pub timeout: Option<String>,
    /// CPU cores.
    #[arg(long)]
    pub cpu: Option<f64>,
    /// Memory limit (`256MiB`).
    #[arg(long)]
    pub memory: Option<String>,
    /// Give the job full network access (Docker only).
    #[arg(long, conflicts_with = "network_domains")]
    pub network: bool,
    /// Let the job reach only this host and its subdomains (repeatable; Docker only), over
    /// HTTP(S) through the node's egress proxy (`HTTP_PROXY`/`HTTPS_PROXY` are set in the job).
    #[arg(long = "network-domain", value_name = "DOMAIN")]
    pub network_domains: Vec<String>,
    /// How long operators may bid (`60s`).
    #[arg(long)]
    pub bid_window: Option<String>,
    /// How long selected operators have to run and commit (`10m`).
    #[arg(long)]
    pub exec_window: Option<String>,
    /// How long they have to reveal (`2m`).
    #[arg(long)]
    pub reveal_window: Option<String>,
    /// Do not escalate disagreement to mediators.
    #[arg(long)]
    pub no_mediation: bool,
    /// Run only on nodes whose labels match: `key=value`, `key!=value`, `key in (a,b)`,
    /// `key notin (a,b)` (repeatable; all must hold). Checked against the nodes' labels
    /// before posting: a job no known node matches is refused, naming the constraint.
    #[arg(long = "constraint", value_name = "SELECTOR")]
    pub constraints: Vec<String>,
    /// Shard the job (docs/sharding.md): every file of an input tree matching this glob
    /// (`/inputs/*.tif`; `*`/`?` within a path segment, `**` across segments) runs once, on
    /// its own, in batches of `--shard-size` per operator; one post for all of them.
    #[arg(long, value_name = "GLOB")]
    pub shard_glob: Option<String>,
    /// Shards per batch (with --shard-glob).
    #[arg(long, default_value_t = 100, requires = "shard_glob")]
    pub shard_size: u32,
    /// Job name, for display.
    #[arg(long)]
    pub name: Option<String>,
    #[command(flatten)]
    pub submit: SubmitFlags,
}

/// `shoal wasm run`.
#[derive(Debug, Args)]
pub struct WasmRun {
    /// The module: a local .wasm file (uploaded), a CID, ipfs://CID or an http(s) URL.
    pub module: String,
    /// Program arguments (after `--`).
    #[arg(last = true)]
    pub args: Vec<String>,
    /// Exported function to call.
    #[arg(long)]
    pub entrypoint: Option<String>,
    #[command(flatten)]
    pub job: JobArgs,
}

/// `shoal docker run`.
#[derive(Debug, Args)]
pub struct DockerRun {
    /// Image; it must be present on the nodes (nothing is pulled).
    pub image: String,
    /// Command and arguments (after `--`).
    #[arg(last = true)]
    pub cmd: Vec<String>,
    /// Entrypoint override (repeat for each word).
    #[arg(long)]
    pub entrypoint: Vec<String>,
    #[command(flatten)]
    pub job: JobArgs,
}

async fn flags(ctx: &Ctx, client: &shoal_sdk::Client, a: &JobArgs) -> anyhow::Result<JobFlags> {
    let mut inputs = Vec::new();
    for s in &a.inputs {
        let arg: InputArg = s.parse()?;
        let source = client.resolve_input(&arg.source).await?;
        if !ctx.json() && matches!(arg.source, shoal_sdk::job::InputLocation::Local(_)) {
            eprintln!("uploaded {s} as {source}");
        }
        inputs.push((source, arg.target));
    }
    let outputs = a
        .outputs
        .iter()
        .map(|s| s.parse::<OutputArg>())
        .collect::<Result<Vec<_>, _>>()?;
    let env = a
        .env
        .iter()
        .map(|s| parse_env(s))
        .collect::<Result<Vec<_>, _>>()?;
    let wei = |v: &Option<String>| -> anyhow::Result<Option<u128>> {
        v.as_deref()
            .map(|s| {
                let u = super::parse_amount(s)?;
                u128::try_from(u).map_err(|_| anyhow::anyhow!("`{s}` is too large"))
            })
            .transpose()
    };
    Ok(JobFlags {
        name: a.name.clone(),
        inputs,
        outputs,
        env,
        concurrency: a.concurrency,
        confidence: a.confidence,
        min_bids: a.min_bids,
        max_price: wei(&a.max_price)?,
        collateral: wei(&a.collateral)?,
        verifier: a
            .verifier
            .as_deref()
            .map(str::parse::<Verifier>)
            .transpose()?,
        timeout: a.timeout.clone(),
        cpu: a.cpu,
        memory: a.memory.clone(),
        network: a.network,
        bid_window: a.bid_window.clone(),
        exec_window: a.exec_window.clone(),
        reveal_window: a.reveal_window.clone(),
        no_mediation: a.no_mediation,
        constraints: a.constraints.clone(),
        network_domains: a.network_domains.clone(),
    })
}

pub async fn wasm(ctx: &Ctx, cmd: WasmRun) -> anyhow::Result<()> {
    let client = ctx.client(true).await?;
    let module = if Path::new(&cmd.module).is_file() {
        let cid = client.upload_path(Path::new(&cmd.module)).await?;
        if !ctx.json() {
            eprintln!("uploaded {} as ipfs://{cid}", cmd.module);
        }
        InputSource::Ipfs(cid.to_string())
    } else if cmd.module.contains("://") {
        cmd.module.parse()?
    } else if shoal_store::parse_cid(&cmd.module).is_ok() {
        InputSource::Ipfs(cmd.module.clone())
    } else {
        anyhow::bail!(
            "module `{}` is not a local file, a CID, ipfs://CID or an http(s) URL",
            cmd.module
        );
    };
    let flags = flags(ctx, &client, &cmd.job).await?;
    let mut spec = build_spec(
        EngineArg::Wasm {
            module,
            args: cmd.args,
            entrypoint: cmd.entrypoint,
        },
        &flags,
    )?;
    shard(&mut spec, &cmd.job)?;
    submit(ctx, &client, &spec, &cmd.job.submit).await
}

pub async fn docker(ctx: &Ctx, cmd: DockerRun) -> anyhow::Result<()> {
    let client = ctx.client(true).await?;
    let flags = flags(ctx, &client, &cmd.job).await?;
    let entrypoint = (!cmd.entrypoint.is_empty()).then_some(cmd.entrypoint);
    let mut spec = build_spec(
        EngineArg::Docker {
            image: cmd.image,
            cmd: cmd.cmd,
            entrypoint,
        },
        &flags,
    )?;
    shard(&mut spec, &cmd.job)?;
    submit(ctx, &client, &spec, &cmd.job.submit).await
}

/// Applies `--shard-glob`/`--shard-size`.
fn shard(spec: &mut shoal_types::JobSpec, a: &JobArgs) -> anyhow::Result<()> {
    if let Some(glob) = &a.shard_glob {
        spec.shards = Some(shoal_types::ShardRule {
            glob: Some(glob.clone()),
            manifest: None,
            size: a.shard_size,
        });
        spec.validate()?;
    }
    Ok(())
}
