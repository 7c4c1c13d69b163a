//! The event follower's persisted position.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use alloy::primitives::B256;

use crate::error::{Error, Result};

/// Where the follower is: the next block to read, and the hashes of the last blocks it read
/// (oldest first) to notice when the chain reorganises under it.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Cursor {
    /// The first block not yet delivered.
    pub next_block: u64,
    /// `(number, hash)` of recently delivered blocks, oldest first.
    pub recent: Vec<(u64, B256)>,
}

impl Cursor {
    /// A cursor that starts reading at `block`.
    pub fn at(block: u64) -> Self {
        Self {
            next_block: block,
            recent: Vec::new(),
        }
    }
}

/// Persists a [`Cursor`]. `save` must be durable when it returns.
pub trait CursorStore: Send + Sync {
    /// The saved cursor, or `None` if none was saved yet.
    fn load(&self) -> Result<Option<Cursor>>;
    /// Replaces the saved cursor.
    fn save(&self, cursor: &Cursor) -> Result<()>;
}

/// A cursor in a JSON file, replaced atomically (temp file, fsync, rename, fsync of the folder).
#[derive(Debug, Clone)]
pub struct JsonFileCursorStore {
    path: PathBuf,
}

impl JsonFileCursorStore {
    /// A store at `path` (its folder must exist or be creatable).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl CursorStore for JsonFileCursorStore {
    fn load(&self) -> Result<Option<Cursor>> {
        let text = match std::fs::read(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(file_error(
                    &self.path,
                    format!("cannot read the cursor: {e}"),
                ));
            }
        };
        serde_json::from_slice(&text).map(Some).map_err(|e| {
            file_error(
                &self.path,
                format!(
                    "not a cursor file ({e}); delete it to start again from the deployment block"
                ),
            )
        })
    }

    fn save(&self, cursor: &Cursor) -> Result<()> {
        let json =
            serde_json::to_vec_pretty(cursor).map_err(|e| file_error(&self.path, e.to_string()))?;
        write_atomically(&self.path, &json)
    }
}

/// A cursor kept in memory only (for consumers that keep their position elsewhere).
#[derive(Debug, Default)]
pub struct MemoryCursorStore(Mutex<Option<Cursor>>);

impl CursorStore for MemoryCursorStore {
    fn load(&self) -> Result<Option<Cursor>> {
        Ok(self.0.lock().unwrap_or_else(|p| p.into_inner()).clone())
    }

    fn save(&self, cursor: &Cursor) -> Result<()> {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(cursor.clone());
        Ok(())
    }
}

fn file_error(path: &Path, reason: String) -> Error {
    Error::File {
        path: path.to_path_buf(),
        reason,
    }
}

/// Writes `bytes` to `path` so that a crash leaves either the old or the new content.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let err = |what: &str, e: std::io::Error| file_error(path, format!("cannot {what}: {e}"));
    std::fs::create_dir_all(&dir).map_err(|e| err("create the folder", e))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let mut f = std::fs::File::create(&tmp).map_err(|e| err("create a temporary file", e))?;
    f.write_all(bytes).map_err(|e| err("write", e))?;
    f.sync_all().map_err(|e| err("fsync", e))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(|e| err("rename the temporary file", e))?;
    if let Ok(d) = std::fs::File::open(&dir) {
        // Makes the rename durable; not every platform can fsync a folder.
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_cursor_round_trips_and_replaces() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let store = JsonFileCursorStore::new(dir.path().join("sub/cursor.json"));
        assert_eq!(store.load()?, None);
        let c = Cursor {
            next_block: 7,
            recent: vec![(6, B256::repeat_byte(1))],
        };
        store.save(&c)?;
        assert_eq!(store.load()?, Some(c));
        let c2 = Cursor {
            next_block: 9,
            recent: vec![(8, B256::repeat_byte(2))],
        };
        store.save(&c2)?;
        assert_eq!(store.load()?, Some(c2));
        let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("sub"))?.collect();
        assert_eq!(leftovers.len(), 1, "only the cursor file remains");
        std::fs::write(store.path(), b"{ not json")?;
        let err = store
            .load()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("not a cursor file"), "{err}");
        Ok(())
    }
}
