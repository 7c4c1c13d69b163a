//! The results folder: staged while a job runs, hashed and moved into place
//! when it finishes, removed on every other path.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use cid::Cid;

use crate::error::{Error, Result};
use crate::spec::{ExecutionId, OutputVolume};

const STAGING_SUFFIX: &str = ".running";

/// A results folder under construction. Dropping it without [`Staging::finish`]
/// removes it and every scratch folder it made.
pub(crate) struct Staging {
    final_dir: PathBuf,
    dir: PathBuf,
    scratch: Vec<PathBuf>,
    root: PathBuf,
    id: ExecutionId,
    finished: bool,
}

/// What a job produced besides its output volumes.
pub(crate) struct Collected {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub exit_code: i32,
}

impl Staging {
    /// Makes `<root>/.<id>.running/` with one empty folder per output.
    pub fn create(root: &Path, id: &ExecutionId, outputs: &[OutputVolume]) -> Result<Self> {
        fs::create_dir_all(root).map_err(|e| Error::io("creating the results root", root, e))?;
        let final_dir = root.join(id.as_str());
        if final_dir.exists() {
            return Err(Error::ResultsExist {
                id: id.clone(),
                path: final_dir,
            });
        }
        let dir = root.join(format!(".{id}{STAGING_SUFFIX}"));
        if dir.exists() {
            remove_tree(&dir)?;
        }
        fs::create_dir(&dir).map_err(|e| Error::io("creating the results folder", &dir, e))?;
        let staging = Self {
            final_dir,
            dir,
            scratch: Vec::new(),
            root: root.to_owned(),
            id: id.clone(),
            finished: false,
        };
        for output in outputs {
            let path = staging.output_dir(&output.name);
            fs::create_dir(&path).map_err(|e| Error::io("creating an output folder", &path, e))?;
        }
        Ok(staging)
    }

    /// The folder an output volume is written to.
    pub fn output_dir(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The staging folder itself.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A scratch folder beside the results, removed with them.
    pub fn scratch_dir(&mut self, label: &str) -> Result<PathBuf> {
        let path = self
            .root
            .join(format!(".{}.{label}{STAGING_SUFFIX}", self.id));
        if path.exists() {
            remove_tree(&path)?;
        }
        fs::create_dir(&path).map_err(|e| Error::io("creating a scratch folder", &path, e))?;
        self.scratch.push(path.clone());
        Ok(path)
    }

    /// Bytes written to the output volumes so far.
    pub fn output_bytes(&self, outputs: &[OutputVolume]) -> u64 {
        outputs
            .iter()
            .map(|o| tree_size(&self.output_dir(&o.name)))
            .sum()
    }

    /// Writes `stdout`, `stderr` and `exitCode`, checks the outputs, hashes the
    /// folder and moves it to `<root>/<id>`. Blocking.
    pub fn finish(
        mut self,
        collected: &Collected,
        outputs: &[OutputVolume],
    ) -> Result<(PathBuf, Cid)> {
        for output in outputs {
            check_plain_tree(&self.output_dir(&output.name), &output.name)?;
        }
        for scratch in std::mem::take(&mut self.scratch) {
            remove_tree(&scratch)?;
        }
        write_file(&self.dir.join("stdout"), &collected.stdout)?;
        write_file(&self.dir.join("stderr"), &collected.stderr)?;
        write_file(
            &self.dir.join("exitCode"),
            collected.exit_code.to_string().as_bytes(),
        )?;
        let cid = hash_results(&self.dir)?;
        fs::rename(&self.dir, &self.final_dir)
            .map_err(|e| Error::io("moving the results folder into place", &self.final_dir, e))?;
        self.finished = true;
        Ok((self.final_dir.clone(), cid))
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        for path in std::iter::once(&self.dir).chain(&self.scratch) {
            if let Err(e) = remove_tree(path) {
                tracing::warn!(path = %path.display(), error = %e, "could not remove a staging folder");
            }
        }
    }
}

/// Exit code recorded for a run stopped at its timeout (as GNU `timeout` exits).
pub const TIMED_OUT_EXIT_CODE: i32 = 124;

/// The results folder of a run stopped at its timeout: empty outputs, an empty `stdout`, a
/// `stderr` that says so and exit code [`TIMED_OUT_EXIT_CODE`]. It is the same on every node
/// (nothing the run printed is kept), so operators whose runs all timed out agree on it and
/// the creator sees why. Written to `<root>/<id>`; its path and result hash. Blocking.
pub fn write_timed_out(
    root: &Path,
    id: &ExecutionId,
    outputs: &[OutputVolume],
    timeout: std::time::Duration,
) -> Result<(PathBuf, Cid)> {
    let staging = Staging::create(root, id, outputs)?;
    let collected = Collected {
        stdout: Vec::new(),
        stderr: format!(
            "shoal: the job ran longer than its timeout of {}s and was stopped\n",
            timeout.as_secs_f64()
        )
        .into_bytes(),
        exit_code: TIMED_OUT_EXIT_CODE,
    };
    staging.finish(&collected, outputs)
}

/// The result hash of a results folder: its UnixFS root with the
/// `unixfs-v1-2025` profile.
pub fn hash_results(dir: &Path) -> Result<Cid> {
    shoal_store::hash_path(dir, shoal_store::Profile::UnixfsV1_2025).map_err(|e| Error::Hash {
        path: dir.to_owned(),
        message: e.to_string(),
    })
}

/// Removes staging folders a previous run of the node left behind (after a
/// crash or a kill). Returns how many were removed. Call at node start.
pub fn remove_stale_staging(results_root: &Path) -> Result<usize> {
    let entries = match fs::read_dir(results_root) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(Error::io("listing the results root", results_root, e)),
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("listing the results root", results_root, e))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') && name.ends_with(STAGING_SUFFIX) {
            remove_tree(&entry.path())?;
            removed += 1;
        }
    }
    Ok(removed)
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    fs::write(path, bytes).map_err(|e| Error::io("writing", path, e))
}

/// Total size of the regular files under `path` (symlinks not followed).
pub(crate) fn tree_size(path: &Path) -> u64 {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return 0;
    };
    if meta.is_dir() {
        fs::read_dir(path)
            .map(|entries| entries.flatten().map(|e| tree_size(&e.path())).sum())
            .unwrap_or(0)
    } else {
        meta.len()
    }
}

/// Outputs may hold only regular files and folders: a symlink could point at
/// the node's own files when the results are published.
fn check_plain_tree(path: &Path, output: &str) -> Result<()> {
    let meta = fs::symlink_metadata(path).map_err(|e| Error::io("reading the output", path, e))?;
    if meta.is_dir() {
        // The job may have left folders it cannot read back; make them readable.
        let mode = meta.permissions().mode();
        if mode & 0o700 != 0o700 {
            fs::set_permissions(path, fs::Permissions::from_mode(mode | 0o700))
                .map_err(|e| Error::io("making an output folder readable", path, e))?;
        }
        let entries = fs::read_dir(path).map_err(|e| Error::io("reading the output", path, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("reading the output", path, e))?;
            check_plain_tree(&entry.path(), output)?;
        }
        Ok(())
    } else if meta.is_file() {
        let mode = meta.permissions().mode();
        if mode & 0o400 == 0 {
            fs::set_permissions(path, fs::Permissions::from_mode(mode | 0o400))
                .map_err(|e| Error::io("making an output file readable", path, e))?;
        }
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "output {output} holds {}, which is not a regular file or folder; outputs may only hold files and folders",
            path.display()
        )))
    }
}

/// Removes a tree even when the job left folders without write permission.
pub(crate) fn remove_tree(path: &Path) -> Result<()> {
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(_) => {
            make_writable(path);
            match fs::remove_dir_all(path) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(Error::io("removing", path, e)),
            }
        }
    }
}

fn make_writable(path: &Path) {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return;
    };
    if meta.is_dir() {
        let _ = fs::set_permissions(
            path,
            fs::Permissions::from_mode(meta.permissions().mode() | 0o700),
        );
        if let Ok(entries) = fs::read_dir(path) {
            for entry in entries.flatten() {
                make_writable(&entry.path());
            }
        }
    }
}
