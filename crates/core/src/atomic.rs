//! Atomic writes: a reader sees the old file (or none) or the complete new one,
//! never half of it. Files go through a temporary file in the same directory,
//! synced and renamed over the target; directories are built under a temporary
//! name next to the target and renamed into place.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

fn with_path(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Writes `bytes` to `path` atomically (temporary file in the same directory + rename).
/// Errors name the path.
pub fn write_file(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_file_with(path, |w| w.write_all(bytes))
}

/// Writes `path` atomically with a writer callback (buffered).
pub fn write_file_with(
    path: &Path,
    fill: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> io::Result<()> {
    let dir = parent_of(path);
    std::fs::create_dir_all(dir).map_err(|e| with_path(dir, e))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".shortlist-")
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(|e| with_path(dir, e))?;
    {
        let mut w = io::BufWriter::new(tmp.as_file_mut());
        fill(&mut w).map_err(|e| with_path(path, e))?;
        w.flush().map_err(|e| with_path(path, e))?;
    }
    tmp.as_file().sync_all().map_err(|e| with_path(path, e))?;
    tmp.persist(path).map_err(|e| with_path(path, e.error))?;
    Ok(())
}

/// A directory being built under a temporary name next to its final path.
/// [`AtomicDir::commit`] renames it into place; dropping it uncommitted removes it.
#[derive(Debug)]
pub struct AtomicDir {
    tmp: Option<tempfile::TempDir>,
    target: PathBuf,
}

impl AtomicDir {
    /// Starts building `target`. Its parent is created if needed.
    pub fn new(target: &Path) -> io::Result<Self> {
        let parent = parent_of(target);
        std::fs::create_dir_all(parent).map_err(|e| with_path(parent, e))?;
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "dir".into());
        let tmp = tempfile::Builder::new()
            .prefix(&format!(".{name}.partial-"))
            .tempdir_in(parent)
            .map_err(|e| with_path(parent, e))?;
        Ok(AtomicDir {
            tmp: Some(tmp),
            target: target.to_path_buf(),
        })
    }

    /// The temporary directory to write into.
    pub fn path(&self) -> &Path {
        match &self.tmp {
            Some(t) => t.path(),
            None => &self.target,
        }
    }

    /// The final path.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Moves the directory into place. An existing target is replaced: it is first
    /// renamed aside, so the target path never holds a half-written directory.
    pub fn commit(mut self) -> io::Result<PathBuf> {
        let Some(tmp) = self.tmp.take() else {
            return Ok(self.target.clone());
        };
        let tmp_path = tmp.keep();
        if self.target.exists() {
            let aside = self
                .target
                .with_extension(format!("old-{}", std::process::id()));
            std::fs::rename(&self.target, &aside).map_err(|e| with_path(&self.target, e))?;
            std::fs::rename(&tmp_path, &self.target).map_err(|e| with_path(&self.target, e))?;
            let _ = std::fs::remove_dir_all(&aside);
        } else {
            std::fs::rename(&tmp_path, &self.target).map_err(|e| with_path(&self.target, e))?;
        }
        Ok(self.target.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_write_replaces_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.txt");
        write_file(&p, b"one").unwrap();
        write_file(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn dir_appears_only_on_commit() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("model");
        let d = AtomicDir::new(&target).unwrap();
        std::fs::write(d.path().join("w"), b"x").unwrap();
        assert!(!target.exists());
        d.commit().unwrap();
        assert_eq!(std::fs::read(target.join("w")).unwrap(), b"x");

        let d = AtomicDir::new(&target).unwrap();
        std::fs::write(d.path().join("w"), b"y").unwrap();
        drop(d); // abandoned: the old directory stays, the partial one is gone
        assert_eq!(std::fs::read(target.join("w")).unwrap(), b"x");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
