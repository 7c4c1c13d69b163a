//! Publishers: where a verified results folder goes. Each returns the
//! folder's CID (the result hash, profile `unixfs-v1-2025`).

use std::{
    collections::BTreeMap,
    io::Write,
    path::{Path, PathBuf},
    sync::Arc,
};

use async_trait::async_trait;
use cid::Cid;

use crate::{
    Blockstore, Error, Profile, Result, car, error::IoContext, hash_path, paths::copy_tree,
};

/// Tells the network this node holds a CID (Kademlia provider records in
/// `shoal-p2p`).
#[async_trait]
pub trait Announcer: Send + Sync {
    async fn announce(&self, cid: &Cid) -> Result<()>;
}

/// Where a publication ended up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub cid: Cid,
    /// `ipfs://CID`, a folder path or a CAR path.
    pub location: String,
}

/// Publishes a results folder.
#[async_trait]
pub trait Publisher: Send + Sync {
    /// The registry name: `store`, `folder` or `car`.
    fn name(&self) -> &'static str;
    async fn publish(&self, results: &Path) -> Result<Published>;
}

/// The boxed form kept in registries.
pub type BoxedPublisher = Box<dyn Publisher>;

/// Publishers keyed by name.
#[derive(Default)]
pub struct Publishers {
    by_name: BTreeMap<&'static str, BoxedPublisher>,
}

impl Publishers {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn register(&mut self, p: BoxedPublisher) -> &mut Self {
        self.by_name.insert(p.name(), p);
        self
    }
    pub fn get(&self, name: &str) -> Result<&dyn Publisher> {
        self.by_name
            .get(name)
            .map(|b| b.as_ref())
            .ok_or_else(|| Error::NoPublisher(name.into()))
    }
}

fn join_err(e: tokio::task::JoinError) -> Error {
    Error::Input {
        what: "background task".into(),
        reason: e.to_string(),
    }
}

/// The node's own store: imported, pinned and announced.
pub struct StorePublisher {
    pub store: Arc<Blockstore>,
    pub announcer: Option<Arc<dyn Announcer>>,
}

#[async_trait]
impl Publisher for StorePublisher {
    fn name(&self) -> &'static str {
        "store"
    }
    async fn publish(&self, results: &Path) -> Result<Published> {
        let (store, path) = (self.store.clone(), results.to_path_buf());
        let imported =
            tokio::task::spawn_blocking(move || store.add_path(&path, Profile::UnixfsV1_2025))
                .await
                .map_err(join_err)??;
        if let Some(a) = &self.announcer {
            a.announce(&imported.cid).await?;
        }
        Ok(Published {
            cid: imported.cid,
            location: format!("ipfs://{}", imported.cid),
        })
    }
}

/// A copy in a local folder, at `DIR/CID`.
pub struct FolderPublisher {
    pub dir: PathBuf,
}

#[async_trait]
impl Publisher for FolderPublisher {
    fn name(&self) -> &'static str {
        "folder"
    }
    async fn publish(&self, results: &Path) -> Result<Published> {
        let (dir, src) = (self.dir.clone(), results.to_path_buf());
        tokio::task::spawn_blocking(move || {
            let cid = hash_path(&src, Profile::UnixfsV1_2025)?;
            std::fs::create_dir_all(&dir).at(&dir)?;
            let dest = dir.join(cid.to_string());
            if !dest.exists() {
                let tmp = dir.join(format!(".{cid}.partial"));
                let _ = std::fs::remove_dir_all(&tmp);
                copy_tree(&src, &tmp)?;
                std::fs::rename(&tmp, &dest).at(&dest)?;
            }
            Ok(Published {
                cid,
                location: dest.display().to_string(),
            })
        })
        .await
        .map_err(join_err)?
    }
}

/// A CAR v1 file at `DIR/CID.car` (for Filecoin storage deals); the blocks
/// also go into the store, pinned.
pub struct CarPublisher {
    pub store: Arc<Blockstore>,
    pub dir: PathBuf,
}

#[async_trait]
impl Publisher for CarPublisher {
    fn name(&self) -> &'static str {
        "car"
    }
    async fn publish(&self, results: &Path) -> Result<Published> {
        let (store, dir, src) = (self.store.clone(), self.dir.clone(), results.to_path_buf());
        tokio::task::spawn_blocking(move || {
            let cid = store.add_path(&src, Profile::UnixfsV1_2025)?.cid;
            std::fs::create_dir_all(&dir).at(&dir)?;
            let dest = dir.join(format!("{cid}.car"));
            let tmp = dir.join(format!(".{cid}.car.partial"));
            let f = std::fs::File::create(&tmp).at(&tmp)?;
            let mut w = std::io::BufWriter::new(f);
            car::export_car(&store, &cid, &mut w)?;
            w.flush().at(&tmp)?;
            std::fs::rename(&tmp, &dest).at(&dest)?;
            Ok(Published {
                cid,
                location: dest.display().to_string(),
            })
        })
        .await
        .map_err(join_err)?
    }
}
