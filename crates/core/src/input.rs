//! Reading input files defensively: only regular files are read as data (a FIFO
//! would block forever, `/dev/zero` would never end, a directory is a mistake),
//! and never more than a size limit, checked before reading.

use std::io::{self, Read};
use std::path::Path;

/// The default size limit of one input file: 16 GiB, or the number of bytes in the
/// `SHORTLIST_MAX_INPUT_BYTES` environment variable.
pub fn max_input_bytes() -> u64 {
    std::env::var("SHORTLIST_MAX_INPUT_BYTES")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(16 << 30)
}

/// What kind of file `meta` describes, for messages.
fn kind(meta: &std::fs::Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_dir() {
        return "a directory";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if t.is_char_device() {
            return "a character device";
        }
        if t.is_block_device() {
            return "a block device";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    "not a regular file"
}

fn invalid(path: &Path, msg: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{}: {msg}", path.display()),
    )
}

/// Checks that `path` names an existing path (not empty, no NUL byte): the
/// errors every reader gives for such paths, as [`io::ErrorKind::InvalidInput`].
pub fn check_path(path: &Path) -> io::Result<()> {
    let s = path.as_os_str();
    if s.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "an empty path was given where a file was expected",
        ));
    }
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        if s.as_bytes().contains(&0) {
            return Err(invalid(path, "the path contains a NUL byte"));
        }
    }
    Ok(())
}

/// Opens `path` for reading if it is a regular file of at most `max_bytes`;
/// returns the file and its size. The file is opened without blocking (a FIFO
/// cannot hang the caller) and checked after opening (no race with a rename).
/// Errors name the path and say what it is instead.
pub fn open_regular(path: &Path, max_bytes: u64) -> io::Result<(std::fs::File, u64)> {
    check_path(path)?;
    let mut opts = std::fs::OpenOptions::new();
    opts.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.custom_flags(libc::O_NONBLOCK);
    }
    let file = opts
        .open(path)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    let meta = file
        .metadata()
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    if !meta.is_file() {
        return Err(invalid(
            path,
            format!("is {}, expected a regular file", kind(&meta)),
        ));
    }
    if meta.len() > max_bytes {
        return Err(invalid(
            path,
            format!(
                "is {} bytes, over the limit of {max_bytes} bytes (SHORTLIST_MAX_INPUT_BYTES raises it)",
                meta.len()
            ),
        ));
    }
    Ok((file, meta.len()))
}

/// Reads a whole regular file of at most `max_bytes` (see [`open_regular`]). A file
/// that grows past the limit while being read is refused too.
pub fn read_regular(path: &Path, max_bytes: u64) -> io::Result<Vec<u8>> {
    let (file, len) = open_regular(path, max_bytes)?;
    let mut buf = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    file.take(max_bytes.saturating_add(1))
        .read_to_end(&mut buf)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    if buf.len() as u64 > max_bytes {
        return Err(invalid(
            path,
            format!("grew past the limit of {max_bytes} bytes while being read"),
        ));
    }
    Ok(buf)
}

/// [`read_regular`] with the default limit, as UTF-8 text (the error names the file).
pub fn read_text(path: &Path) -> io::Result<String> {
    let bytes = read_regular(path, max_input_bytes())?;
    String::from_utf8(bytes).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{}: not UTF-8 text (invalid byte at offset {})",
                path.display(),
                e.utf8_error().valid_up_to()
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regular_files_only() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("a.tsv");
        std::fs::write(&f, b"hello").unwrap();
        assert_eq!(read_regular(&f, 100).unwrap(), b"hello");
        assert_eq!(read_text(&f).unwrap(), "hello");

        let e = read_regular(&f, 3).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert!(e.to_string().ends_with("a.tsv: is 5 bytes, over the limit of 3 bytes (SHORTLIST_MAX_INPUT_BYTES raises it)"), "{e}");

        let e = read_regular(d.path(), 100).unwrap_err();
        assert!(
            e.to_string().contains("is a directory, expected a regular file")
            // Some systems refuse to open a directory at all.
            || e.kind() == io::ErrorKind::IsADirectory,
            "{e}"
        );

        let e = read_regular(Path::new("/dev/zero"), 100).unwrap_err();
        assert_eq!(
            e.to_string(),
            "/dev/zero: is a character device, expected a regular file"
        );

        let e = read_regular(Path::new(""), 100).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert_eq!(
            e.to_string(),
            "an empty path was given where a file was expected"
        );

        let e = read_regular(&d.path().join("missing"), 100).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert!(e.to_string().contains("missing"));
    }

    #[cfg(unix)]
    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let d = tempfile::tempdir().unwrap();
        let fifo = d.path().join("pipe");
        let status = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(status.success());
        let e = read_regular(&fifo, 100).unwrap_err();
        assert!(
            e.to_string()
                .ends_with("pipe: is a FIFO (named pipe), expected a regular file"),
            "{e}"
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_nul_byte_in_a_path_is_refused() {
        use std::os::unix::ffi::OsStrExt;
        let p = Path::new(std::ffi::OsStr::from_bytes(b"a\0b"));
        let e = read_regular(p, 100).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert!(e.to_string().ends_with("the path contains a NUL byte"));
    }
}
