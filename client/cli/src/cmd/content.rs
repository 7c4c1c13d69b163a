//! `shoal content`: add and get through the node (where jobs can read the data), or on a
//! local store with `--store`; CAR import/export and GC on a local store.

use std::{fs, io::BufWriter, io::Write, path::Path, path::PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};
use shoal_store::{Blockstore, Profile, car, export, hash_path, parse_cid};

use super::Ctx;

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Import a file or folder and print its CID. Without `--store` it goes to the node
    /// (`--node`/SHOAL_NODE), which pins it and announces it on the swarm, so jobs can use
    /// `ipfs://CID`; with `--store DIR` it stays in that local store.
    Add {
        /// File or folder to import.
        path: PathBuf,
        /// Only compute the CID; store nothing.
        #[arg(long)]
        only_hash: bool,
        /// CID profile: `unixfs-v1-2025` (default) or `unixfs-v0-2015`.
        #[arg(long, default_value_t = Profile::default())]
        profile: Profile,
        /// Print a JSON object instead of the bare CID.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: StoreArg,
    },
    /// Write the file or folder behind a CID (optionally `CID/sub/path`) to disk: from the node
    /// (every block checked against its CID), or from a local store with `--store`.
    Get {
        /// CID, optionally followed by `/path/inside`.
        cid: String,
        /// Where to write it; must not exist yet.
        #[arg(short, long)]
        output: PathBuf,
        #[command(flatten)]
        store: StoreArg,
    },
    /// CAR v1 archives (the format Filecoin storage deals take).
    #[command(subcommand)]
    Car(CarCommand),
    /// Delete every block that no pin reaches.
    Gc {
        #[command(flatten)]
        store: StoreArg,
    },
}

#[derive(Debug, Subcommand)]
pub enum CarCommand {
    /// Write the DAG under a CID to a CAR file.
    Export {
        cid: String,
        /// The CAR file to write.
        #[arg(short, long)]
        output: PathBuf,
        #[command(flatten)]
        store: StoreArg,
    },
    /// Read a CAR file into the store (every block verified) and pin its roots.
    Import {
        /// The CAR file to read.
        file: PathBuf,
        #[command(flatten)]
        store: StoreArg,
    },
}

#[derive(Debug, Args)]
pub struct StoreArg {
    /// A local block store folder (`add` and `get` use the node without it).
    #[arg(long = "store", env = "SHOAL_STORE", value_name = "DIR")]
    dir: Option<PathBuf>,
}

impl StoreArg {
    fn is_local(&self) -> bool {
        self.dir.is_some()
    }

    fn open(&self) -> anyhow::Result<Blockstore> {
        let dir = match &self.dir {
            Some(d) => d.clone(),
            None => std::env::var_os("HOME")
                .map(|h| PathBuf::from(h).join(".shoal/store"))
                .context("no store folder: pass --store DIR or set SHOAL_STORE")?,
        };
        Ok(Blockstore::open(dir)?)
    }
}

pub async fn run(ctx: &Ctx, cmd: Command) -> anyhow::Result<()> {
    match cmd {
        Command::Add {
            path,
            only_hash: false,
            profile,
            json,
            store,
        } if !store.is_local() => add_to_node(ctx, &path, profile, json || ctx.json()).await,
        Command::Get { cid, output, store } if !store.is_local() => {
            get_from_node(ctx, &cid, &output).await
        }
        cmd => tokio::task::spawn_blocking(move || run_blocking(cmd)).await?,
    }
}

async fn add_to_node(ctx: &Ctx, path: &Path, profile: Profile, json: bool) -> anyhow::Result<()> {
    if profile != Profile::UnixfsV1_2025 {
        anyhow::bail!(
            "the node stores content with the unixfs-v1-2025 profile; add with --profile {} to a local --store",
            profile.name()
        );
    }
    let api = shoal_sdk::api::NodeApi::new(&ctx.node_url())?;
    let cid = api.upload_path(path).await.with_context(|| {
        format!(
            "cannot add {} to the node at {}; start one (`shoal serve`, `shoal devstack`), \
             point --node/SHOAL_NODE at it, or keep the data local with --store DIR",
            path.display(),
            api.url()
        )
    })?;
    if json {
        let v = serde_json::json!({
            "cid": cid.to_string(),
            "profile": profile.name(),
            "stored": true,
            "node": api.url(),
        });
        println!("{v}");
    } else {
        eprintln!(
            "added to the node at {}; jobs can use ipfs://{cid}",
            api.url()
        );
        println!("{cid}");
    }
    Ok(())
}

async fn get_from_node(ctx: &Ctx, cid: &str, output: &Path) -> anyhow::Result<()> {
    let (root, sub) = cid.split_once('/').unwrap_or((cid, ""));
    let root = parse_cid(root)?;
    let api = shoal_sdk::api::NodeApi::new(&ctx.node_url())?;
    let car = api.content_car(&root.to_string()).await?;
    let (sub, output) = (sub.to_owned(), output.to_path_buf());
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let tmp = tempfile::tempdir().context("cannot create a temporary folder")?;
        let store = Blockstore::open(tmp.path())?;
        // Every block is checked against its CID as it is imported.
        car::import_car(&store, &mut &car[..])?;
        let target = export::resolve(&store, &root, &sub)?;
        export::export(&store, &target, &output)?;
        eprintln!("wrote {} to {}", target, output.display());
        Ok(())
    })
    .await?
}

fn run_blocking(cmd: Command) -> anyhow::Result<()> {
    match cmd {
        Command::Add {
            path,
            only_hash,
            profile,
            json,
            store,
        } => {
            let (cid, size) = if only_hash {
                (hash_path(&path, profile)?, None)
            } else {
                let imported = store.open()?.add_path(&path, profile)?;
                (imported.cid, Some(imported.tsize))
            };
            if json {
                let v = serde_json::json!({
                    "cid": cid.to_string(),
                    "profile": profile.name(),
                    "stored": !only_hash,
                    "dagSize": size,
                });
                println!("{v}");
            } else {
                println!("{cid}");
            }
        }
        Command::Get { cid, output, store } => {
            let (root, sub) = cid.split_once('/').unwrap_or((cid.as_str(), ""));
            let root = parse_cid(root)?;
            let store = store.open()?;
            let target = export::resolve(&store, &root, sub)?;
            export::export(&store, &target, &output)?;
            eprintln!("wrote {} to {}", target, output.display());
        }
        Command::Car(CarCommand::Export { cid, output, store }) => {
            let root = parse_cid(&cid)?;
            let store = store.open()?;
            let f = fs::File::create(&output)
                .with_context(|| format!("cannot create {}", output.display()))?;
            let mut w = BufWriter::with_capacity(1 << 20, f);
            let n = car::export_car(&store, &root, &mut w)?;
            w.flush()
                .with_context(|| format!("cannot write {}", output.display()))?;
            eprintln!("wrote {n} blocks to {}", output.display());
        }
        Command::Car(CarCommand::Import { file, store }) => {
            let store = store.open()?;
            let f =
                fs::File::open(&file).with_context(|| format!("cannot open {}", file.display()))?;
            let mut r = std::io::BufReader::with_capacity(1 << 20, f);
            for root in car::import_car(&store, &mut r)? {
                println!("{root}");
            }
        }
        Command::Gc { store } => {
            let stats = store.open()?.gc()?;
            println!(
                "removed {} blocks ({} bytes), kept {}",
                stats.removed, stats.bytes_freed, stats.kept
            );
        }
    }
    Ok(())
}
