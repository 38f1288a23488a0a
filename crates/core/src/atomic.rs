//! Atomic writes: a reader sees the old file (or none) or the complete new one,
//! never half of it. Files go through a temporary file in the same directory,
//! synced and renamed over the target; directories are built under a temporary
//! name next to the target and renamed into place (on Linux an existing target
//! is swapped with the new directory in one `renameat2(RENAME_EXCHANGE)`, so the
//! target path always holds the old or the new directory).
//!
//! A writer killed mid-way leaves its `.<name>.partial-<pid>-*` directory behind;
//! the next writer of the same target removes those whose process is gone, and
//! the `<name>.old-<pid>` directory of a replacement killed between its two
//! renames (see [`sweep_stale`]).
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
    #[cfg_attr(not(unix), allow(unused_mut))]
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
        sweep_stale(parent, &name);
        let tmp = builder(true)
            .prefix(&format!(".{name}.partial-{}-", std::process::id()))
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
        if self.target.exists() && exchange(&tmp_path, &self.target).is_ok() {
            // The old directory is now at the temporary path.
            let _ = std::fs::remove_dir_all(&tmp_path);
        } else if self.target.exists() {
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

/// Swaps two paths atomically (Linux `renameat2(RENAME_EXCHANGE)`); an error where
/// the file system or system does not support it.
fn exchange(a: &Path, b: &Path) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use rustix::fs::{renameat_with, RenameFlags, CWD};
        renameat_with(CWD, a, CWD, b, RenameFlags::EXCHANGE).map_err(io::Error::from)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (a, b);
        Err(io::Error::from(io::ErrorKind::Unsupported))
    }
}

/// Whether process `pid` is gone (`false` when unknown).
fn process_gone(pid: u32) -> bool {
    #[cfg(unix)]
    {
        let Some(pid) = i32::try_from(pid)
            .ok()
            .and_then(rustix::process::Pid::from_raw)
        else {
            return false;
        };
        matches!(
            rustix::process::test_kill_process(pid),
            Err(e) if e == rustix::io::Errno::SRCH
        )
    }
    #[cfg(not(unix))]
    {
        let _ = pid;
        false
    }
}

/// Leftovers of killed writers of `parent/name`: `.name.partial-<pid>-*` and
/// `name.old-<pid>` directories whose process is gone are removed (returned in
/// `removed`); partial directories without a process id (older builds) are
/// returned in `unknown` and left alone. [`AtomicDir::new`] calls it and reports
/// both on standard error.
pub fn sweep_stale(parent: &Path, name: &str) -> StaleDirs {
    let mut out = StaleDirs::default();
    let Ok(rd) = std::fs::read_dir(parent) else {
        return out;
    };
    let partial = format!(".{name}.partial-");
    let old = format!("{name}.old-");
    for entry in rd.flatten() {
        let file_name = entry.file_name();
        let Some(n) = file_name.to_str() else {
            continue;
        };
        let pid_part = n
            .strip_prefix(&partial)
            .map(|rest| rest.split('-').next().unwrap_or(""))
            .or_else(|| n.strip_prefix(&old));
        let Some(pid_part) = pid_part else { continue };
        match pid_part.parse::<u32>() {
            Ok(pid) if pid != std::process::id() && process_gone(pid) => {
                if std::fs::remove_dir_all(entry.path()).is_ok() {
                    out.removed.push(entry.path());
                }
            }
            Ok(_) => {}
            Err(_) => out.unknown.push(entry.path()),
        }
    }
    if !out.removed.is_empty() {
        eprintln!(
            "note: removed {} directory(ies) left by killed writes of {}: {}",
            out.removed.len(),
            parent.join(name).display(),
            join(&out.removed)
        );
    }
    if !out.unknown.is_empty() {
        eprintln!(
            "note: left {} partial directory(ies) of an older writer of {} (remove them if no write is running): {}",
            out.unknown.len(),
            parent.join(name).display(),
            join(&out.unknown)
        );
    }
    out
}

fn join(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// What [`sweep_stale`] found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct StaleDirs {
    /// Removed: their writer's process is gone.
    pub removed: Vec<PathBuf>,
    /// Left alone: partial directories that do not name their writer's process.
    pub unknown: Vec<PathBuf>,
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

        // Replacing swaps in the new directory and leaves nothing else.
        let d = AtomicDir::new(&target).unwrap();
        std::fs::write(d.path().join("v"), b"z").unwrap();
        d.commit().unwrap();
        assert!(!target.join("w").exists());
        assert_eq!(std::fs::read(target.join("v")).unwrap(), b"z");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[cfg(unix)]
    #[test]
    fn leftovers_of_killed_writers_are_swept() {
        let dir = tempfile::tempdir().unwrap();
        // A process that has exited: its pid is free (unless reused at once).
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let mine = std::process::id();
        for n in [
            format!(".1.partial-{dead}-abc"),
            format!("1.old-{dead}"),
            format!(".1.partial-{mine}-xyz"),
            ".1.partial-Qw3rty".to_string(),
            format!(".2.partial-{dead}-abc"),
        ] {
            std::fs::create_dir(dir.path().join(n)).unwrap();
        }
        let found = sweep_stale(dir.path(), "1");
        let names = |v: &[PathBuf]| {
            let mut n: Vec<String> = v
                .iter()
                .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
                .collect();
            n.sort();
            n
        };
        assert_eq!(
            names(&found.removed),
            [format!(".1.partial-{dead}-abc"), format!("1.old-{dead}")]
        );
        assert_eq!(names(&found.unknown), [".1.partial-Qw3rty"]);
        // Ours (a live process) and another target's are left.
        assert!(dir.path().join(format!(".1.partial-{mine}-xyz")).exists());
        assert!(dir.path().join(format!(".2.partial-{dead}-abc")).exists());
    }
}
