//! `shoal pin`: the swarm's replicated pinset through a node's API (docs/pinning.md).

use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Subcommand;
use shoal_sdk::api::{NodeApi, PinRequest, PinStatusView, PinView};

use super::{Ctx, print_json};

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Pin a CID on the swarm: between --replication-min and --replication-max nodes keep a
    /// verified copy, chosen by rendezvous hashing; copies lost with a node are made again
    /// elsewhere. Prints the pin and its allocation; the copies are made in the background
    /// (`--wait` waits for them).
    Add {
        /// The root CID (a file or folder DAG some node of the swarm holds).
        cid: String,
        /// Fewest copies [default: the node's pinning.default_replication_min, 2].
        #[arg(long, value_name = "N")]
        replication_min: Option<u32>,
        /// Most copies [default: the node's pinning.default_replication_max, 3].
        #[arg(long, value_name = "N")]
        replication_max: Option<u32>,
        /// A name to show in `shoal pin ls` (at most 64 bytes).
        #[arg(long)]
        name: Option<String>,
        /// Only nodes whose `[labels]` satisfy this hold it: `key=value`, `key!=value`,
        /// `key in (a,b)`, `key notin (a,b)`, as in job specs. Repeat for several (all must hold).
        #[arg(long = "constraint", value_name = "SELECTOR")]
        constraints: Vec<String>,
        /// Wait until at least --replication-min nodes report the CID pinned.
        #[arg(long)]
        wait: bool,
        /// Longest wait with --wait, in seconds.
        #[arg(long, default_value_t = 300, value_name = "SECS")]
        timeout: u64,
    },
    /// List the pinset: CID, name, replication, live pinned copies, state.
    Ls {
        /// Also list removed pins.
        #[arg(long)]
        removed: bool,
    },
    /// Each node's status of a CID: pinned, pinning or error (with the message), whether it is
    /// allocated there and whether the node is live.
    Status {
        /// The root CID.
        cid: String,
    },
    /// Remove a CID from the pinset: every node that holds it for the pinset unpins it (its
    /// blocks go at that node's next `shoal content gc`).
    Rm {
        /// The root CID.
        cid: String,
    },
}

pub async fn run(ctx: &Ctx, cmd: Command) -> anyhow::Result<()> {
    let api = NodeApi::new(&ctx.node_url())?;
    match cmd {
        Command::Add {
            cid,
            replication_min,
            replication_max,
            name,
            constraints,
            wait,
            timeout,
        } => {
            let req = PinRequest {
                cid: cid.clone(),
                name,
                replication_min,
                replication_max,
                constraints,
            };
            let mut pin = api
                .pin_add(&req)
                .await
                .with_context(|| format!("cannot pin {cid} through the node at {}", api.url()))?;
            if wait {
                pin = wait_pinned(&api, &cid, Duration::from_secs(timeout)).await?;
            }
            if ctx.json() {
                print_json(&pin)?;
            } else {
                if !wait {
                    eprintln!(
                        "pinned on the swarm; copies are being made (follow with `shoal pin status {cid}`)"
                    );
                }
                print_pins(&[pin]);
            }
        }
        Command::Ls { removed } => {
            let pins = api.pins(removed).await?;
            if ctx.json() {
                print_json(&pins)?;
            } else if pins.is_empty() {
                eprintln!("the pinset is empty; add with `shoal pin add CID`");
            } else {
                print_pins(&pins);
            }
        }
        Command::Status { cid } => {
            let st = api.pin_status(&cid).await?;
            if ctx.json() {
                print_json(&st)?;
            } else {
                print_status(&st);
            }
        }
        Command::Rm { cid } => {
            let pin = api.pin_rm(&cid).await?;
            if ctx.json() {
                print_json(&pin)?;
            } else {
                eprintln!("removed from the pinset; nodes unpin it");
                println!("{}", pin.cid);
            }
        }
    }
    Ok(())
}

async fn wait_pinned(api: &NodeApi, cid: &str, timeout: Duration) -> anyhow::Result<PinView> {
    let deadline = Instant::now() + timeout;
    loop {
        let st = api.pin_status(cid).await?;
        if st.pin.pinned_copies >= st.pin.replication_min {
            return Ok(st.pin);
        }
        if Instant::now() > deadline {
            print_status(&st);
            anyhow::bail!(
                "{cid} has {} of {} copies after {} s; see the errors above, or wait longer",
                st.pin.pinned_copies,
                st.pin.replication_min,
                timeout.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn print_pins(pins: &[PinView]) {
    println!(
        "{:<62} {:<16} {:>5} {:>6}  STATE",
        "CID", "NAME", "RF", "COPIES"
    );
    for p in pins {
        println!(
            "{:<62} {:<16} {:>5} {:>6}  {}",
            p.cid,
            p.name.as_deref().unwrap_or("-"),
            format!("{}-{}", p.replication_min, p.replication_max),
            p.pinned_copies,
            p.summary
        );
    }
}

fn print_status(st: &PinStatusView) {
    let p = &st.pin;
    println!(
        "{} {} — {} of {}..{} copies pinned ({})",
        p.cid,
        p.name.as_deref().unwrap_or(""),
        p.pinned_copies,
        p.replication_min,
        p.replication_max,
        p.summary
    );
    println!(
        "{:<54} {:<9} {:<10} {:<5}  MESSAGE",
        "PEER", "STATE", "ALLOCATED", "LIVE"
    );
    for s in &st.peers {
        println!(
            "{:<54} {:<9} {:<10} {:<5}  {}",
            s.peer_id,
            s.state,
            if s.allocated { "yes" } else { "no" },
            if s.live { "yes" } else { "no" },
            s.message.as_deref().unwrap_or("")
        );
    }
}
