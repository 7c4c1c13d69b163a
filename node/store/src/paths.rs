//! Path checks: nothing a job spec or a DAG names may escape the folder it
//! belongs in, by `..` or through a symlink.

use std::{
    fs,
    path::{Component, Path, PathBuf},
};

use crate::{Error, Result, error::IoContext};

fn bad(path: &Path, reason: impl Into<String>) -> Error {
    Error::BadPath {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Maps a job path (absolute inside the job, e.g. `/inputs/data`) to a
/// host path under `work`. Refuses `..`, an empty or root-only path, and any
/// symlink already present along the way.
pub fn job_path(work: &Path, inner: &str) -> Result<PathBuf> {
    let p = Path::new(inner);
    if !p.is_absolute() {
        return Err(bad(p, "job paths must be absolute, e.g. `/inputs/data`"));
    }
    let mut out = work.to_path_buf();
    let mut depth = 0;
    for c in p.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(n) => {
                out.push(n);
                depth += 1;
                if fs::symlink_metadata(&out)
                    .map(|m| m.file_type().is_symlink())
                    .unwrap_or(false)
                {
                    return Err(bad(p, "a component of the path is a symlink"));
                }
            }
            Component::ParentDir => return Err(bad(p, "`..` is not allowed in job paths")),
            Component::Prefix(_) => return Err(bad(p, "path prefixes are not allowed")),
        }
    }
    if depth == 0 {
        return Err(bad(p, "the job root itself cannot be an input path"));
    }
    Ok(out)
}

/// Resolves a `file://` path and checks it lies inside one of the
/// allow-listed folders after following symlinks. Returns the resolved path.
pub fn allowed_file(allow: &[PathBuf], path: &Path) -> Result<PathBuf> {
    if path.components().any(|c| c == Component::ParentDir) {
        return Err(bad(path, "`..` is not allowed in file:// inputs"));
    }
    let real = fs::canonicalize(path).at(path)?;
    for root in allow {
        if let Ok(root) = fs::canonicalize(root)
            && real.starts_with(&root)
        {
            return Ok(real);
        }
    }
    Err(bad(
        path,
        "is outside the node's allow-listed folders (storage.allow); ask the operator to allow it",
    ))
}

/// Copies a file or folder from `src` to the new path `dest`, refusing
/// symlinks and special files inside.
pub fn copy_tree(src: &Path, dest: &Path) -> Result<u64> {
    let meta = fs::symlink_metadata(src).at(src)?;
    if meta.is_file() {
        return fs::copy(src, dest).at(dest);
    }
    if !meta.is_dir() {
        return Err(bad(
            src,
            "is a symlink or special file; only regular files and folders are copied",
        ));
    }
    fs::create_dir(dest).at(dest)?;
    let mut n = 0;
    for e in fs::read_dir(src).at(src)? {
        let e = e.at(src)?;
        n += copy_tree(&e.path(), &dest.join(e.file_name()))?;
    }
    Ok(n)
}

/// Makes a file or folder tree read-only.
pub fn make_read_only(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let meta = fs::symlink_metadata(path).at(path)?;
    if meta.is_dir() {
        for e in fs::read_dir(path).at(path)? {
            make_read_only(&e.at(path)?.path())?;
        }
        fs::set_permissions(path, fs::Permissions::from_mode(0o555)).at(path)
    } else if meta.is_file() {
        fs::set_permissions(path, fs::Permissions::from_mode(0o444)).at(path)
    } else {
        Ok(())
    }
}

/// Removes a tree that [`make_read_only`] may have locked (its folders made writable first).
pub fn remove_tree(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fn unlock(path: &Path) -> Result<()> {
        let meta = fs::symlink_metadata(path).at(path)?;
        if meta.is_dir() {
            fs::set_permissions(path, fs::Permissions::from_mode(0o755)).at(path)?;
            for e in fs::read_dir(path).at(path)? {
                unlock(&e.at(path)?.path())?;
            }
        }
        Ok(())
    }
    if fs::symlink_metadata(path).is_err() {
        return Ok(());
    }
    unlock(path)?;
    fs::remove_dir_all(path).at(path)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn segment() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("..".to_owned()),
            Just(".".to_owned()),
            Just(String::new()),
            "[a-zA-Z0-9_. -]{1,8}",
            "[ü日é]{1,3}",
        ]
    }

    proptest! {
        /// Whatever the spec says, an accepted job path stays under the
        /// work folder, and any `..` is refused.
        #[test]
        fn job_paths_never_escape(segs in proptest::collection::vec(segment(), 0..6)) {
            let work = tempfile::tempdir().unwrap();
            let inner = format!("/{}", segs.join("/"));
            match job_path(work.path(), &inner) {
                Ok(p) => {
                    prop_assert!(p.starts_with(work.path()));
                    prop_assert!(p != work.path());
                    prop_assert!(!segs.iter().any(|s| s == ".."));
                }
                Err(_) => prop_assert!(segs.iter().any(|s| s == "..") || segs.iter().all(|s| s.is_empty() || s == ".")),
            }
        }

        /// A file:// path is accepted only when it resolves inside the
        /// allow-list.
        #[test]
        fn allow_list_holds(segs in proptest::collection::vec("[a-c]{1,2}|\\.\\.", 1..5)) {
            let tmp = tempfile::tempdir().unwrap();
            let allowed = tmp.path().join("allowed");
            let mut p = allowed.clone();
            for s in &segs { p.push(s); }
            // Create what the path names when it has no `..`.
            if !segs.iter().any(|s| s == "..") {
                fs::create_dir_all(&p).unwrap();
            } else {
                fs::create_dir_all(&allowed).unwrap();
            }
            match allowed_file(std::slice::from_ref(&allowed), &p) {
                Ok(real) => prop_assert!(real.starts_with(fs::canonicalize(&allowed).unwrap())),
                Err(_) => prop_assert!(segs.iter().any(|s| s == "..")),
            }
        }
    }

    #[test]
    fn symlinks_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let work = tmp.path().join("work");
        let outside = tmp.path().join("outside");
        fs::create_dir_all(&work).unwrap();
        fs::create_dir_all(&outside).unwrap();
        fs::write(outside.join("secret"), b"s").unwrap();
        std::os::unix::fs::symlink(&outside, work.join("link")).unwrap();
        assert!(job_path(&work, "/link/x").is_err());
        assert!(job_path(&work, "/ok/x").is_ok());
        // A symlink inside an allowed folder pointing out of it.
        let allowed = tmp.path().join("allowed");
        fs::create_dir_all(&allowed).unwrap();
        std::os::unix::fs::symlink(outside.join("secret"), allowed.join("esc")).unwrap();
        assert!(allowed_file(std::slice::from_ref(&allowed), &allowed.join("esc")).is_err());
        // And copy_tree refuses symlinks inside a tree.
        let tree = tmp.path().join("tree");
        fs::create_dir_all(&tree).unwrap();
        std::os::unix::fs::symlink(outside.join("secret"), tree.join("esc")).unwrap();
        assert!(copy_tree(&tree, &tmp.path().join("copy")).is_err());
    }
}
