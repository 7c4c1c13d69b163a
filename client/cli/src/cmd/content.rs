//! `shoal content`: add, get, CAR import/export and GC on a local store.

use std::{fs, io::BufWriter, io::Write, path::PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};
use shoal_store::{Blockstore, Profile, car, export, hash_path, parse_cid};

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Import a file or folder and print its CID (pinned in the store).
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
    /// Write the file or folder behind a CID (optionally `CID/sub/path`) to disk.
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
    /// The block store folder.
    #[arg(long = "store", env = "SHOAL_STORE", value_name = "DIR")]
    dir: Option<PathBuf>,
}

impl StoreArg {
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

pub async fn run(cmd: Command) -> anyhow::Result<()> {
    tokio::task::spawn_blocking(move || run_blocking(cmd)).await?
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
