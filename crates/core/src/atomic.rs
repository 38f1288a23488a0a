//! Atomic writes: a reader sees the old file (or none) or the complete new one,
//! never half of it. Files go through a temporary file in the same directory,
//! synced and renamed over the target; directories are built under a temporary
//! name next to the target and renamed into place.
//!
//! Permissions follow the umask, as for any file a program creates: the temporary
//! file is opened with mode `0o666` and the directory made with `0o777`, and the
//! kernel clears the umask's bits (tempfile's default, `0o600`/`0o700`, would leave
//! models and splits unreadable to a server running as another user).

use std::io::{self, Write};
use std::path::{Path, PathBuf};

fn with_path(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// A tempfile builder whose files (`0o666`) and directories (`0o777`) get the
/// permissions the umask allows, like `File::create` and `create_dir`.
fn builder(dir_like: bool) -> tempfile::Builder<'static, 'static> {
    let mut b = tempfile::Builder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = if dir_like { 0o777 } else { 0o666 };
        b.permissions(std::fs::Permissions::from_mode(mode));
    }
    #[cfg(not(unix))]
    let _ = dir_like;
    b
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
    let mut tmp = builder(false)
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
        let tmp = builder(true)
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

    /// Files and directories get what the umask gives an ordinary `File::create` /
    /// `create_dir` in the same place (e.g. 0644 / 0755 under umask 022), not 0600.
    #[cfg(unix)]
    #[test]
    fn permissions_follow_the_umask() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("plain"), b"x").unwrap();
        std::fs::create_dir(dir.path().join("plain-dir")).unwrap();
        let (file_mode, dir_mode) = (
            mode(&dir.path().join("plain")),
            mode(&dir.path().join("plain-dir")),
        );
        // Under the usual umask 022 these are 0644 / 0755, which tempfile's default
        // (0600 / 0700) failed; under umask 077 the test cannot tell the two apart.
        write_file(&dir.path().join("a.txt"), b"one").unwrap();
        assert_eq!(mode(&dir.path().join("a.txt")), file_mode);
        let d = AtomicDir::new(&dir.path().join("model")).unwrap();
        write_file(&d.path().join("w"), b"x").unwrap();
        let target = d.commit().unwrap();
        assert_eq!(mode(&target), dir_mode);
        assert_eq!(mode(&target.join("w")), file_mode);
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
