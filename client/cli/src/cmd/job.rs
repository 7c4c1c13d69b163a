//! `shoal job`: post, follow, inspect and download jobs.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use serde_json::json;
use shoal_chain::JobId;
use shoal_sdk::Client;
use shoal_types::JobSpec;

use super::{Ctx, eth, human_bytes, print_json};

/// Waiting and output flags of every command that posts a job.
#[derive(Debug, Clone, Args)]
pub struct SubmitFlags {
    /// Wait until the job is verified and print its output (the default).
    #[arg(long, overrides_with = "no_wait")]
    pub wait: bool,
    /// Print the job id and return once it is posted.
    #[arg(long)]
    pub no_wait: bool,
    /// Print only the job id and return once it is posted (implies --no-wait).
    #[arg(long)]
    pub id_only: bool,
    /// Give up waiting after this long (`10m`).
    #[arg(long, default_value = "15m")]
    pub wait_timeout: String,
    /// Where the verified results are downloaded (default: a temporary folder, removed after
    /// printing stdout).
    #[arg(long, value_name = "DIR")]
    pub download: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Post a job from a spec file (YAML or JSON, docs/job-spec.md) and (by default) wait for
    /// its verified result.
    ///
    /// Exit status: the program's own exit code once the job verified (0 when it succeeded;
    /// 124 when it ran longer than its timeout); 125 when shoal could not post the job, the job
    /// did not verify or the wait timed out.
    Run {
        /// The spec.
        spec: PathBuf,
        #[command(flatten)]
        submit: SubmitFlags,
    },
    /// Check a spec file without posting it.
    Validate {
        /// The spec.
        spec: PathBuf,
    },
    /// List jobs the node knows, newest first.
    List {
        /// Only jobs in this state (Posted, Running, Revealing, Verified, Failed, Expired, …).
        #[arg(long)]
        state: Option<String>,
        /// Only jobs posted by this address.
        #[arg(long)]
        creator: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Skip this many.
        #[arg(long, default_value_t = 0)]
        offset: u64,
    },
    /// Show a job: state, deal, bids, operators, results and this node's decision.
    Describe {
        /// Job id.
        id: JobId,
    },
    /// Show a sharded job (docs/sharding.md): every batch with its state, attempt and
    /// operators, and (once Done) the merged result folder's CID.
    Shards {
        /// Sharded job id (the ShardMarket's own sequence, as `job run` printed it).
        id: JobId,
    },
    /// Print a job's stdout and stderr as run by the node.
    Logs {
        /// Job id.
        id: JobId,
    },
    /// Download a verified job's results and check they hash to the verified result.
    Get {
        /// Job id (a sharded job's id with --sharded or --shard).
        id: JobId,
        /// Destination folder (default: job-<ID>).
        #[arg(long, short = 'o', value_name = "DIR")]
        output_dir: Option<PathBuf>,
        /// The id is a sharded job's: download its merged result (`shard-000042/…` per
        /// verified shard), each shard checked against the batch roots verified on chain.
        #[arg(long)]
        sharded: bool,
        /// Only this shard of a sharded job (its results folder; implies --sharded).
        #[arg(long, value_name = "INDEX")]
        shard: Option<u32>,
    },
    /// Move a job whose deadline passed to its end and claim refunds (there is no cancel of a
    /// running job on chain: see `shoal job cancel --help`).
    ///
    /// The market has no cancel: once posted, a job's escrow is committed to the operators
    /// who bid. A job that gets too few bids expires when its bid window ends; any phase whose
    /// deadline passes can be closed by anyone. This command does that (closeBidding or
    /// finalize) when the job's deadline has passed, then claims what the market owes you.
    Cancel {
        /// Job id.
        id: JobId,
        /// The id is a sharded job's (ShardMarket): expire it after its bid window (too few
        /// bidders), or finalize it once every batch is settled, then claim the refunds.
        #[arg(long)]
        sharded: bool,
    },
}

pub(crate) fn parse_duration(s: &str) -> anyhow::Result<Duration> {
    let t = s.trim();
    let (n, mul) = if let Some(n) = t.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = t.strip_suffix('h') {
        (n, 3600.0)
    } else {
        (t, 1.0)
    };
    let v: f64 = n
        .trim()
        .parse()
        .map_err(|_| anyhow::anyhow!("`{s}` is not a duration; write e.g. 90s, 10m or 1h"))?;
    if !(v.is_finite() && v >= 0.0) {
        anyhow::bail!("`{s}` is not a duration");
    }
    Ok(Duration::from_secs_f64(v * mul))
}

/// The verified job's program exited with this non-zero code; `shoal` exits with it too.
#[derive(Debug, thiserror::Error)]
#[error("the job verified, but its program exited with code {0}")]
pub struct ProgramExit(pub i32);

impl ProgramExit {
    /// The process exit status for it: the code itself when it is 1..=255, else 1.
    pub fn status(&self) -> u8 {
        u8::try_from(self.0).ok().filter(|c| *c != 0).unwrap_or(1)
    }
}

/// Refuses a job whose placement constraints no node it can see satisfies, before it is
/// posted (the nodes' labels come from `GET /api/v1/status` of the requester node and of every
/// node it knows the URL of). With no node to ask, the nodes decide when they bid.
async fn check_placement(ctx: &Ctx, client: &Client, spec: &JobSpec) -> anyhow::Result<()> {
    if spec.constraints.is_empty() {
        return Ok(());
    }
    let mut seen = Vec::new();
    for url in client.api().known_node_urls().await {
        let Ok(api) = shoal_sdk::api::NodeApi::new(&url) else {
            continue;
        };
        let Ok(Ok(status)) = tokio::time::timeout(Duration::from_secs(3), api.status()).await
        else {
            continue;
        };
        if spec.constraints.iter().all(|c| c.matches(&status.labels)) {
            return Ok(());
        }
        seen.push((url, status.labels));
    }
    if seen.is_empty() {
        return Ok(());
    }
    let first_unmet = spec
        .constraints
        .iter()
        .find(|c| seen.iter().all(|(_, l)| !c.matches(l)))
        .or(spec.constraints.first())
        .map(ToString::to_string)
        .unwrap_or_default();
    let nodes: Vec<String> = seen
        .iter()
        .map(|(url, labels)| {
            let l: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!("{url} [{}]", l.join(", "))
        })
        .collect();
    if ctx.json() {
        print_json(&json!({
            "state": null,
            "error": format!("no node matches the placement constraint `{first_unmet}`"),
            "nodes": nodes,
        }))?;
    }
    anyhow::bail!(
        "no node matches the placement constraint `{first_unmet}`; nodes seen: {}. Change \
         --constraint, or give a node matching labels ([labels] in its config)",
        nodes.join("; ")
    )
}

/// Posts a spec and, unless --no-wait, follows it to the end and prints the verified output.
/// One line per batch of a sharded job.
fn print_shards(v: &shoal_api::shard::ShardJobView) {
    println!(
        "sharded job {}: {} — {} shards in batches of {}, n={} k={}, {} verified, {} failed",
        v.id,
        v.state,
        v.shard_count,
        v.batch_size,
        v.concurrency,
        v.confidence,
        v.verified,
        v.failed
    );
    for b in &v.batches {
        let ops: Vec<String> = b.operators.iter().map(|o| o.to_string()).collect();
        println!(
            "  batch {:>4}  {:<9} attempt {}  {}",
            b.batch,
            b.state,
            b.attempt,
            ops.join(" ")
        );
    }
}

/// Posts a sharded spec and (by default) waits until every batch is final, showing progress,
/// then prints the merged result's CID.
async fn submit_sharded(
    ctx: &Ctx,
    client: &Client,
    spec: &JobSpec,
    flags: &SubmitFlags,
) -> anyhow::Result<()> {
    let posted = client.post_sharded(spec).await?;
    let id = posted.job_id;
    if !ctx.json() && !flags.id_only {
        eprintln!(
            "sharded job {id} posted: {} shards in {} batches (tx {}, escrow {}, manifest ipfs://{})",
            posted.shards,
            posted.batches,
            posted.tx,
            eth(posted.escrow.parse().unwrap_or_default()),
            posted.manifest_cid
        );
    }
    if flags.no_wait || flags.id_only {
        if ctx.json() {
            print_json(&json!({ "shardJobId": id, "posted": posted }))?;
        } else {
            println!("{id}");
        }
        return Ok(());
    }
    let timeout = parse_duration(&flags.wait_timeout)?;
    let quiet = ctx.json();
    let view = client
        .wait_sharded(id, timeout, |v| {
            if !quiet {
                eprintln!(
                    "  {:<8} batches: {} verified, {} failed, {} in all",
                    v.state,
                    v.verified,
                    v.failed,
                    v.batches.len()
                );
            }
        })
        .await?;
    // The unused escrow (all of it when the job expired) is credited to the creator on the
    // ShardMarket: withdraw it now.
    let me = client.address()?;
    let owed = client
        .chain()
        .shard_withdrawable(me)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    if !owed.is_zero() {
        let r = client
            .chain()
            .claim_shards()
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        if !quiet {
            eprintln!("claimed {} of refunds ({})", eth(owed), r.transaction_hash);
        }
    }
    if view.state == "Expired" {
        anyhow::bail!(
            "sharded job {id} expired: fewer than {} operators bid; the escrow was refunded to you",
            spec.deal.min_bids
        );
    }
    let merged = client.api().merged_result(id).await?;
    if ctx.json() {
        return print_json(
            &json!({ "shardJobId": id, "job": view, "merged": merged, "posted": posted }),
        );
    }
    println!(
        "merged result ipfs://{} ({} shards)",
        merged.cid, merged.shards
    );
    if !merged.failed_batches.is_empty() {
        anyhow::bail!(
            "sharded job {id}: batches {:?} failed (no agreeing results); their shards are not in the merged result",
            merged.failed_batches
        );
    }
    Ok(())
}

pub async fn submit(
    ctx: &Ctx,
    client: &Client,
    spec: &JobSpec,
    flags: &SubmitFlags,
) -> anyhow::Result<()> {
    check_placement(ctx, client, spec).await?;
    if spec.shards.is_some() {
        return submit_sharded(ctx, client, spec, flags).await;
    }
    let posted = client.post(spec).await?;
    let id = posted.job_id;
    if !ctx.json() && !flags.id_only {
        eprintln!(
            "job {id} posted (tx {}, escrow {}, spec ipfs://{})",
            posted.tx,
            eth(posted.escrow.parse().unwrap_or_default()),
            posted.spec_cid
        );
    }
    if flags.no_wait || flags.id_only {
        if ctx.json() {
            print_json(&json!({ "jobId": id, "posted": posted }))?;
        } else {
            println!("{id}");
        }
        return Ok(());
    }
    let timeout = parse_duration(&flags.wait_timeout)?;
    let quiet = ctx.json() || flags.id_only;
    let waited = client
        .wait(id, timeout, |e| {
            if !quiet {
                eprintln!("  [block {:>4}] {:<16} {}", e.block, e.event, e.summary);
            }
        })
        .await;
    let outcome = match waited {
        Ok(o) => o,
        Err(e) => {
            if ctx.json() {
                let state = match &e {
                    shoal_sdk::Error::JobEnded { state, .. }
                    | shoal_sdk::Error::WaitTimeout { state, .. } => Some(state.clone()),
                    _ => None,
                };
                print_json(&json!({
                    "jobId": id,
                    "state": state,
                    "error": e.to_string(),
                    "specCid": posted.spec_cid,
                    "tx": posted.tx,
                }))?;
            }
            return Err(e.into());
        }
    };
    let scratch;
    let dir = match &flags.download {
        Some(d) => d.clone(),
        None => {
            scratch = tempfile::tempdir().context("cannot create a temporary folder")?;
            scratch.path().join("results")
        }
    };
    let root = client.download_results(id, &dir).await?;
    let read = |name: &str| std::fs::read(dir.join(name)).unwrap_or_default();
    let stdout = read("stdout");
    let exit_code = String::from_utf8_lossy(&read("exitCode")).trim().to_owned();
    if ctx.json() {
        print_json(&json!({
            "jobId": id,
            "state": outcome.state,
            "resultCid": root.to_string(),
            "resultHash": outcome.result_hash,
            "specCid": posted.spec_cid,
            "tx": posted.tx,
            "exitCode": exit_code.parse::<i64>().ok(),
            "stdout": String::from_utf8_lossy(&stdout),
            "stderr": String::from_utf8_lossy(&read("stderr")),
            "download": flags.download,
        }))?;
    } else {
        eprintln!(
            "job {id} verified; result ipfs://{root} (checked against the on-chain result hash)"
        );
        if let Some(d) = &flags.download {
            eprintln!("results in {}", d.display());
        }
        println!("job:    {id}");
        println!("result: {root}");
        println!("exit:   {exit_code}");
        println!("stdout:");
        print!("{}", String::from_utf8_lossy(&stdout));
        let stderr = read("stderr");
        if !stderr.is_empty() {
            eprintln!("stderr:");
            eprint!("{}", String::from_utf8_lossy(&stderr));
        }
    }
    match exit_code.parse::<i32>() {
        Ok(0) => Ok(()),
        Ok(code) => Err(ProgramExit(code).into()),
        Err(_) => anyhow::bail!("the results have no readable exitCode ({exit_code:?})"),
    }
}

pub async fn run(ctx: &Ctx, cmd: Command) -> anyhow::Result<()> {
    match cmd {
        Command::Run {
            spec,
            submit: flags,
        } => {
            let spec = load_spec(&spec)?;
            let client = ctx.client(true).await?;
            submit(ctx, &client, &spec, &flags).await
        }
        Command::Validate { spec: path } => {
            let spec = load_spec(&path)?;
            let json = spec.to_canonical_json();
            let cid = shoal_store::hash_reader(&json[..], shoal_store::Profile::UnixfsV1_2025)?;
            let params = shoal_sdk::job_params(&spec, &cid);
            if ctx.json() {
                print_json(&json!({
                    "valid": true,
                    "engine": spec.engine.kind(),
                    "specCid": cid.to_string(),
                    "specHash": params.specHash.to_string(),
                    "escrow": spec.deal.escrow().to_string(),
                    "spec": spec,
                }))?;
            } else {
                println!("{}: valid {} job", path.display(), spec.engine.kind());
                println!("spec cid   {cid}");
                println!("spec hash  {}", params.specHash);
                println!(
                    "deal       n={} k={} m={}, {:?}, escrow {}",
                    spec.deal.concurrency,
                    spec.deal.confidence,
                    spec.deal.min_bids,
                    spec.deal.verifier,
                    eth(alloy::primitives::U256::from(spec.deal.escrow()))
                );
                println!(
                    "resources  {} CPU, {} memory, timeout {}s",
                    spec.resources.cpu,
                    human_bytes(spec.resources.memory),
                    spec.resources.timeout.as_secs_f64()
                );
            }
            Ok(())
        }
        Command::List {
            state,
            creator,
            limit,
            offset,
        } => {
            let api = shoal_sdk::api::NodeApi::new(&ctx.node_url())?;
            let list = api
                .jobs(state.as_deref(), creator.as_deref(), limit, offset)
                .await?;
            if ctx.json() {
                return print_json(&list);
            }
            println!(
                "{:>5}  {:<17} {:<44} {:>3}  {:<10} RESULT",
                "ID", "STATE", "CREATOR", "N", "ESCROW"
            );
            for j in &list.jobs {
                println!(
                    "{:>5}  {:<17} {:<44} {:>3}  {:<10} {}",
                    j.id,
                    j.state,
                    j.creator,
                    j.params.concurrency,
                    eth(j.escrow),
                    j.result_cid.as_deref().unwrap_or("-")
                );
            }
            eprintln!("{} of {} job(s)", list.jobs.len(), list.total);
            Ok(())
        }
        Command::Shards { id } => {
            let api = shoal_sdk::api::NodeApi::new(&ctx.node_url())?;
            let view = api.shard_job(id).await?;
            let merged = if view.state == "Done" {
                Some(api.merged_result(id).await?)
            } else {
                None
            };
            if ctx.json() {
                return print_json(&json!({ "job": view, "merged": merged }));
            }
            print_shards(&view);
            if let Some(m) = merged {
                println!("merged result ipfs://{} ({} shards)", m.cid, m.shards);
            }
            Ok(())
        }
        Command::Describe { id } => {
            let api = shoal_sdk::api::NodeApi::new(&ctx.node_url())?;
            let job = api.job(id).await?;
            if ctx.json() {
                return print_json(&job);
            }
            println!("job          {}", job.id);
            println!("state        {}", job.state);
            println!("creator      {}", job.creator);
            println!("spec         ipfs://{}", job.params.spec_cid);
            println!(
                "deal         n={} k={} m={} {} max price {} collateral {}",
                job.params.concurrency,
                job.params.confidence,
                job.params.min_bids,
                job.params.verifier,
                eth(job.params.max_price),
                eth(job.params.collateral)
            );
            println!("escrow held  {}", eth(job.escrow));
            println!("bids         {}", job.bids.len());
            for b in &job.bids {
                println!(
                    "  {} {}{}",
                    b.operator,
                    eth(b.price),
                    if b.dropped { " (dropped)" } else { "" }
                );
            }
            println!("deals        {}", job.deals.len());
            for d in &job.deals {
                // The CID once the verified result is published and this deal revealed it;
                // otherwise the sealed hash it revealed.
                let result = match (&d.result_cid, d.sealed_result) {
                    (Some(c), _) => c.clone(),
                    (None, Some(s)) => format!("sealed {s}"),
                    (None, None) => "-".into(),
                };
                println!(
                    "  {}{} result {}",
                    d.operator,
                    if d.mediator { " (mediator)" } else { "" },
                    result
                );
            }
            if let Some(c) = &job.result_cid {
                println!("result       ipfs://{c}");
            }
            for p in &job.payments {
                println!(
                    "paid         {} to {} ({})",
                    eth(p.amount),
                    p.account,
                    p.kind
                );
            }
            for s in &job.slashes {
                println!(
                    "slashed      {} from {} ({})",
                    eth(s.amount),
                    s.account,
                    s.kind
                );
            }
            if let Some(r) = &job.fail_reason {
                println!("failed       {r}");
            }
            if let Some(d) = &job.decision {
                println!(
                    "this node    {} ({})",
                    if d.bid { "bid" } else { "declined" },
                    d.reason
                );
            }
            Ok(())
        }
        Command::Logs { id } => {
            let api = shoal_sdk::api::NodeApi::new(&ctx.node_url())?;
            let (from, logs) = api.job_logs_any(id).await?;
            if ctx.json() {
                return print_json(
                    &json!({ "node": from, "stdout": logs.stdout, "stderr": logs.stderr, "exitCode": logs.exit_code }),
                );
            }
            eprintln!("logs from the node at {from}");
            print!("{}", logs.stdout);
            eprint!("{}", logs.stderr);
            if let Some(c) = logs.exit_code {
                eprintln!("exit code {c}");
            }
            Ok(())
        }
        Command::Get {
            id,
            output_dir,
            sharded,
            shard,
        } => {
            let dir = output_dir.unwrap_or_else(|| PathBuf::from(format!("job-{id}")));
            super::ensure_empty_dir(&dir)?;
            let client = ctx.client(false).await?;
            if sharded || shard.is_some() {
                let got = client.download_shards(id, shard, &dir).await?;
                if ctx.json() {
                    print_json(&json!({
                        "shardJobId": id,
                        "shard": shard,
                        "cid": got.cid,
                        "shards": got.shards,
                        "failedBatches": got.failed_batches,
                        "path": dir,
                        "verified": true,
                    }))?;
                } else {
                    println!("{}", dir.display());
                    eprintln!(
                        "{} of sharded job {id} in {} — CID {}, every shard checked against the verified batch roots{}",
                        shard.map_or_else(
                            || format!("{} verified shards", got.shards),
                            |i| format!("shard {i}")
                        ),
                        dir.display(),
                        got.cid,
                        if got.failed_batches.is_empty() {
                            String::new()
                        } else {
                            format!(" (batches {:?} failed: not included)", got.failed_batches)
                        }
                    );
                }
                return Ok(());
            }
            let root = client.download_results(id, &dir).await?;
            if ctx.json() {
                print_json(
                    &json!({ "jobId": id, "resultCid": root.to_string(), "path": dir, "verified": true }),
                )?;
            } else {
                println!("{}", dir.display());
                eprintln!(
                    "results of job {id} in {} — CID {root} equals the verified result hash",
                    dir.display()
                );
            }
            Ok(())
        }
        Command::Cancel { id, sharded: false } => cancel(ctx, id).await,
        Command::Cancel { id, sharded: true } => cancel_sharded(ctx, id).await,
    }
}

/// `job cancel --sharded`: what `cancel` does, on the ShardMarket.
async fn cancel_sharded(ctx: &Ctx, id: JobId) -> anyhow::Result<()> {
    let client = ctx.client(true).await?;
    let chain = client.chain();
    let err = |e: shoal_chain::Error| anyhow::anyhow!("{e}");
    let job = chain.get_shard_job(id).await.map_err(err)?;
    use shoal_chain::ShardJobState as S;
    let already_ended = matches!(job.state, S::Done | S::Expired);
    let now = chain_now(&client).await?;
    let mut actions = Vec::new();
    match job.state {
        S::Done | S::Expired => {}
        S::Bidding if now < job.bidDeadline => anyhow::bail!(
            "sharded job {id} is still taking bids until {} (in {}s); the market has no cancel: once the bid window \
             ends with fewer than {} bidders, run this again to expire it and get the escrow back",
            job.bidDeadline,
            job.bidDeadline - now,
            job.minBids
        ),
        S::Bidding | S::Drawing => {
            let r = chain.shard_close_bidding(id).await.map_err(err)?;
            actions.push(format!("closeBidding {}", r.transaction_hash));
        }
        _ => {
            let open = job
                .batchCount
                .saturating_sub(job.verifiedBatches)
                .saturating_sub(job.failedBatches);
            if open > 0 {
                anyhow::bail!(
                    "sharded job {id} has {open} batch(es) still running; the market has no cancel: each batch \
                     settles after its deadlines (see `shoal job shards {id}`), then run this again to finalize it"
                );
            }
            let r = chain.finalize_sharded(id).await.map_err(err)?;
            actions.push(format!("finalize {}", r.transaction_hash));
        }
    }
    let me = client.address()?;
    let owed = chain.shard_withdrawable(me).await.map_err(err)?;
    if !owed.is_zero() {
        let r = chain.claim_shards().await.map_err(err)?;
        actions.push(format!("claimed {} ({})", eth(owed), r.transaction_hash));
    }
    let state = format!("{:?}", chain.get_shard_job(id).await.map_err(err)?.state);
    cancel_outcome(
        ctx,
        ("shardJobId", "sharded job"),
        id,
        &state,
        already_ended,
        &actions,
    )
}

/// Prints what `job cancel` did (`key`: the JSON id field and the words naming the job) and
/// fails when the job had already ended before the command.
fn cancel_outcome(
    ctx: &Ctx,
    (key, what): (&str, &str),
    id: JobId,
    state: &str,
    already_ended: bool,
    actions: &[String],
) -> anyhow::Result<()> {
    if ctx.json() {
        print_json(&json!({
            key: id, "state": state, "alreadyEnded": already_ended, "actions": actions,
        }))?;
    } else {
        println!("{state}");
        for a in actions {
            eprintln!("{a}");
        }
    }
    if already_ended {
        anyhow::bail!(
            "{what} {id} had already ended ({state}) before this command: there was nothing to cancel{}",
            if actions.is_empty() {
                ""
            } else {
                "; what the market owed you was claimed"
            }
        );
    }
    Ok(())
}

/// The chain's time for deadlines: a chain that mines only on demand has a stale latest block
/// (the next block is stamped with the current time), so the later of it and the wall clock.
async fn chain_now(client: &shoal_sdk::Client) -> anyhow::Result<u64> {
    let chain_now = client
        .chain()
        .block_timestamp()
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    Ok(chain_now.max(wall))
}

async fn cancel(ctx: &Ctx, id: JobId) -> anyhow::Result<()> {
    let client = ctx.client(true).await?;
    let n = id;
    let job = client.job(n).await?;
    let already_ended = job.state.is_final();
    let now = chain_now(&client).await?;
    use shoal_chain::JobState as S;
    let mut actions = Vec::new();
    match job.state {
        S::Verified | S::Failed | S::Expired => {}
        S::Posted if now < job.bidDeadline => anyhow::bail!(
            "job {n} is still taking bids until {} (in {}s); the market has no cancel: once the bid window ends with \
             fewer than {} bids, run this again to expire it and get the escrow back",
            job.bidDeadline,
            job.bidDeadline - now,
            job.concurrency
        ),
        S::Posted => match client.chain().close_bidding(id).await {
            Ok(r) => actions.push(format!("closeBidding {}", r.transaction_hash)),
            Err(e) => settled_by_someone_else(&client, n, e).await?,
        },
        s if now < job.phaseDeadline => anyhow::bail!(
            "job {n} is {s:?} until {} (in {}s): selected operators are working on it and the market has no cancel; \
             after the deadline, run this again to finalize it (unfinished work is slashed and refunded to you)",
            job.phaseDeadline,
            job.phaseDeadline - now
        ),
        _ => match client.chain().finalize(id).await {
            Ok(r) => actions.push(format!("finalize {}", r.transaction_hash)),
            Err(e) => settled_by_someone_else(&client, n, e).await?,
        },
    }
    let me = client.address()?;
    let owed = client
        .chain()
        .withdrawable(me)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    if !owed.is_zero() {
        let r = client
            .chain()
            .claim()
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        actions.push(format!("claimed {} ({})", eth(owed), r.transaction_hash));
    }
    let state = client.job(n).await?.state.to_string();
    cancel_outcome(ctx, ("jobId", "job"), n, &state, already_ended, &actions)
}

/// `closeBidding`/`finalize` may be sent by anyone, and the nodes send them too: when ours
/// fails because the job already reached a final state, that is the outcome we wanted.
async fn settled_by_someone_else(
    client: &shoal_sdk::Client,
    n: JobId,
    err: shoal_chain::Error,
) -> anyhow::Result<()> {
    match client.job(n).await {
        Ok(job) if job.state.is_final() => Ok(()),
        _ => Err(anyhow::anyhow!("{err}")),
    }
}

fn load_spec(path: &Path) -> anyhow::Result<JobSpec> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    JobSpec::from_yaml(&text).with_context(|| format!("{} is not a valid job spec", path.display()))
}
