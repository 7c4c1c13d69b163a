//! The Shoal blockstore as Bitswap sees it: reads are verified (a corrupt
//! block is reported missing, never served), writes are verified.

use std::sync::Arc;

use blockstore::Error as BsError;
use cid::{Cid, CidGeneric};

/// Adapts [`shoal_store::Blockstore`] to the `blockstore` trait beetswap uses.
#[derive(Debug, Clone)]
pub struct StoreAdapter(pub Arc<shoal_store::Blockstore>);

fn joined<T>(r: Result<Result<T, BsError>, tokio::task::JoinError>) -> Result<T, BsError> {
    r.map_err(|e| BsError::ExecutorError(e.to_string()))?
}

fn to_cid<const S: usize>(cid: &CidGeneric<S>) -> Result<Cid, BsError> {
    Cid::try_from(cid.to_bytes()).map_err(|_| BsError::CidTooLarge)
}

impl blockstore::Blockstore for StoreAdapter {
    async fn get<const S: usize>(&self, cid: &CidGeneric<S>) -> Result<Option<Vec<u8>>, BsError> {
        let cid = to_cid(cid)?;
        let store = self.0.clone();
        joined(
            tokio::task::spawn_blocking(move || match store.get(&cid) {
                Ok(d) => Ok(Some(d)),
                Err(shoal_store::Error::NotFound { .. }) => Ok(None),
                Err(e @ shoal_store::Error::Corrupt { .. }) => {
                    tracing::error!(error = %e, "not serving a corrupt block");
                    Ok(None)
                }
                Err(e) => Err(BsError::FatalDatabaseError(e.to_string())),
            })
            .await,
        )
    }

    async fn put_keyed<const S: usize>(
        &self,
        cid: &CidGeneric<S>,
        data: &[u8],
    ) -> Result<(), BsError> {
        let cid = to_cid(cid)?;
        let store = self.0.clone();
        let data = data.to_vec();
        joined(
            tokio::task::spawn_blocking(move || {
                store
                    .put(&cid, &data)
                    .map_err(|e| BsError::StoredDataError(e.to_string()))
            })
            .await,
        )
    }

    async fn remove<const S: usize>(&self, cid: &CidGeneric<S>) -> Result<(), BsError> {
        let cid = to_cid(cid)?;
        let store = self.0.clone();
        joined(
            tokio::task::spawn_blocking(move || {
                store
                    .delete(&cid)
                    .map_err(|e| BsError::FatalDatabaseError(e.to_string()))
            })
            .await,
        )
    }

    async fn has<const S: usize>(&self, cid: &CidGeneric<S>) -> Result<bool, BsError> {
        let cid = to_cid(cid)?;
        Ok(self.0.has(&cid))
    }

    async fn close(self) -> Result<(), BsError> {
        Ok(())
    }
}
