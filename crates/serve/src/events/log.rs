//! The durable event log: one append-only file of length-prefixed, checksummed
//! records under the model base path (`BASE/.events/events.log`; the leading dot
//! keeps it out of model discovery).
//!
//! ```text
//! file    := magic "SLEVLOG1" record*
//! record  := len: u32 LE | crc: u32 LE | payload[len]
//! payload := timestamp: i64 LE | strength: f32 LE
//!            | user_len: u16 LE | user_id | item_len: u16 LE | item_id
//!            | event_len: u8 | event
//! crc     := CRC-32 (IEEE) of payload
//! ```
//!
//! A crash can leave a torn last record (a short write); replay detects it by its
//! length or checksum, drops it and truncates the file there, so later appends start
//! on a record boundary. Records are only appended: an acknowledged record is never
//! rewritten.

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::Event;

/// First bytes of every event log.
pub const MAGIC: &[u8; 8] = b"SLEVLOG1";
/// Longest accepted user or item id, in bytes.
pub const MAX_ID_BYTES: usize = 1024;
/// Longest accepted event name, in bytes.
pub const MAX_EVENT_BYTES: usize = 64;
const MAX_PAYLOAD: usize = 8 + 4 + 2 + MAX_ID_BYTES + 2 + MAX_ID_BYTES + 1 + MAX_EVENT_BYTES;

/// What a log file holds: the same framing (`len | crc | payload`, torn tails cut)
/// serves the event log and the item log (`crate::items`), each with its magic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogKind {
    /// The file's first 8 bytes.
    pub magic: &'static [u8; 8],
    /// What the records are, for messages ("event", "item").
    pub name: &'static str,
    /// The longest valid payload: a longer length field is a torn or damaged record.
    pub max_payload: usize,
}

/// The event log.
pub const EVENT_LOG: LogKind = LogKind {
    magic: MAGIC,
    name: "event",
    max_payload: MAX_PAYLOAD,
};

/// Appends one record (`len | crc | payload`) to `out`.
pub fn frame(payload: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// Appends the record of `e` to `out`. The caller has checked the lengths.
pub fn encode(e: &Event, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; 8]); // length and checksum, filled below
    out.extend_from_slice(&e.timestamp.to_le_bytes());
    out.extend_from_slice(&e.strength.to_le_bytes());
    for id in [&e.user_id, &e.item_id] {
        out.extend_from_slice(&(id.len() as u16).to_le_bytes());
        out.extend_from_slice(id.as_bytes());
    }
    out.push(e.event.len() as u8);
    out.extend_from_slice(e.event.as_bytes());
    let payload = &out[start + 8..];
    let len = payload.len() as u32;
    let crc = crc32fast::hash(payload);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// Decodes one event record's payload (`None`: not an event record).
pub fn decode_event(p: &[u8]) -> Option<Event> {
    decode(p)
}

fn decode(p: &[u8]) -> Option<Event> {
    let mut at = 0usize;
    let mut take = |n: usize| -> Option<&[u8]> {
        let s = p.get(at..at + n)?;
        at += n;
        Some(s)
    };
    let timestamp = i64::from_le_bytes(take(8)?.try_into().ok()?);
    let strength = f32::from_le_bytes(take(4)?.try_into().ok()?);
    let mut id = || -> Option<String> {
        let n = u16::from_le_bytes(take(2)?.try_into().ok()?) as usize;
        String::from_utf8(take(n)?.to_vec()).ok()
    };
    let user_id = id()?;
    let item_id = id()?;
    let n = *take(1)?.first()? as usize;
    let event = String::from_utf8(take(n)?.to_vec()).ok()?;
    (at == p.len()).then_some(Event {
        user_id,
        item_id,
        event,
        strength,
        timestamp,
    })
}

/// What reading a log found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Replay {
    /// Bytes of whole, valid records (plus the magic): where the next append goes.
    pub valid_len: u64,
    /// Bytes after them that are not a whole valid record (a torn last write).
    pub dropped_bytes: u64,
}

/// Reads every valid record of the log at `path` into `sink`, in order, stopping at
/// the first record that is short, too long, fails its checksum or does not decode.
/// A missing file reads as empty. Errors: I/O, or a file that is not an event log.
pub fn read(path: &Path, mut sink: impl FnMut(Event)) -> io::Result<Replay> {
    read_records(path, &EVENT_LOG, |p| decode(p).map(&mut sink).is_some())
}

/// Reads every valid record of the `kind` log at `path`, handing each payload to
/// `sink`, which returns false for a payload that does not decode (the log stops
/// there, as at a bad checksum). A missing file reads as empty.
pub fn read_records(
    path: &Path,
    kind: &LogKind,
    mut sink: impl FnMut(&[u8]) -> bool,
) -> io::Result<Replay> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Replay::default()),
        Err(e) => return Err(e),
    };
    let total = file.metadata()?.len();
    if !file.metadata()?.is_file() {
        return Err(io::Error::other(format!(
            "{}: expected a regular file (an event log)",
            path.display()
        )));
    }
    let mut r = BufReader::with_capacity(1 << 16, file);
    let mut magic = [0u8; 8];
    if total == 0 {
        return Ok(Replay::default());
    }
    if total < 8 || r.read_exact(&mut magic).is_err() || &magic != kind.magic {
        // A crash while writing the magic of a new log leaves fewer than 8 bytes.
        if total < 8 && kind.magic.starts_with(&read_prefix(path)?) {
            return Ok(Replay {
                valid_len: 0,
                dropped_bytes: total,
            });
        }
        return Err(io::Error::other(format!(
            "{}: not a shortlist {} log (expected the magic bytes \"{}\")",
            path.display(),
            kind.name,
            String::from_utf8_lossy(kind.magic)
        )));
    }
    let mut valid = 8u64;
    let mut head = [0u8; 8];
    let mut payload = Vec::with_capacity(256);
    loop {
        match r.read_exact(&mut head) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e),
        }
        let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        if len > kind.max_payload || valid + 8 + len as u64 > total {
            break;
        }
        payload.resize(len, 0);
        match r.read_exact(&mut payload) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e),
        }
        if crc32fast::hash(&payload) != crc {
            break;
        }
        if !sink(&payload) {
            break;
        }
        valid += 8 + len as u64;
    }
    Ok(Replay {
        valid_len: valid,
        dropped_bytes: total - valid,
    })
}

fn read_prefix(path: &Path) -> io::Result<Vec<u8>> {
    let mut v = Vec::new();
    File::open(path)?.take(8).read_to_end(&mut v)?;
    Ok(v)
}

/// The log opened for appending, holding an exclusive lock on the file so that a
/// second writer (another server, `shortlist events import`) is refused.
#[derive(Debug)]
pub struct Appender {
    file: File,
    path: PathBuf,
    len: u64,
    /// Why the log takes no more appends: a failed write could not be cut off, so
    /// what follows would not start on a record boundary.
    closed: Option<String>,
}

impl Appender {
    /// Opens (creating it and its directory) the log at `path`, locks it, replays it
    /// into `sink` and cuts a torn tail off. Errors name the path; a log locked by
    /// another process is an error saying so.
    pub fn open(path: &Path, mut sink: impl FnMut(Event)) -> io::Result<(Self, Replay)> {
        Self::open_kind(path, &EVENT_LOG, |p| decode(p).map(&mut sink).is_some())
    }

    /// [`open`](Self::open) for a log of `kind`, handing each replayed payload to
    /// `sink` (false: it does not decode, the log is cut there).
    pub fn open_kind(
        path: &Path,
        kind: &LogKind,
        sink: impl FnMut(&[u8]) -> bool,
    ) -> io::Result<(Self, Replay)> {
        let named = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", path.display()));
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(named)?;
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(named)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(io::Error::new(
                    io::ErrorKind::WouldBlock,
                    format!(
                    "{}: locked by another process (a running `shortlist serve` on this model base path?); send {}s to its POST /v1/{}s instead",
                        path.display(),
                        kind.name,
                        kind.name
                    ),
                ))
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(named(e)),
        }
        let replay = read_records(path, kind, sink)?;
        let mut a = Appender {
            file,
            path: path.to_path_buf(),
            len: replay.valid_len,
            closed: None,
        };
        if replay.valid_len == 0 {
            a.file.set_len(0).map_err(named)?;
            a.file.seek(SeekFrom::Start(0)).map_err(named)?;
            a.file.write_all(kind.magic).map_err(named)?;
            a.file.sync_all().map_err(named)?;
            a.len = kind.magic.len() as u64;
            if let Some(dir) = path.parent() {
                // The new file's name must survive a crash too.
                File::open(dir).and_then(|d| d.sync_all()).map_err(named)?;
            }
        } else if replay.dropped_bytes > 0 {
            a.file.set_len(replay.valid_len).map_err(named)?;
            a.file.sync_all().map_err(named)?;
        }
        a.file.seek(SeekFrom::Start(a.len)).map_err(named)?;
        Ok((a, replay))
    }

    /// [`open_kind`](Self::open_kind), retrying with backoff (10 ms doubling to
    /// 500 ms) for up to `wait` while another process holds the lock — a server
    /// still shutting down when its successor starts. A lock held longer is the error
    /// [`open_kind`](Self::open_kind) gives (kind `WouldBlock`).
    pub fn open_waiting(
        path: &Path,
        kind: &LogKind,
        wait: std::time::Duration,
        mut sink: impl FnMut(&[u8]) -> bool,
    ) -> io::Result<(Self, Replay)> {
        let start = std::time::Instant::now();
        let mut pause = std::time::Duration::from_millis(10);
        loop {
            match Self::open_kind(path, kind, &mut sink) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && start.elapsed() < wait => {
                    std::thread::sleep(pause.min(wait.saturating_sub(start.elapsed())));
                    pause = (pause * 2).min(std::time::Duration::from_millis(500));
                }
                r => return r,
            }
        }
    }

    /// Appends `bytes` (whole records) and, with `sync`, waits until they are on
    /// disk. On a failed write the file is cut back to its previous length so the
    /// log stays a sequence of whole records.
    pub fn append(&mut self, bytes: &[u8], sync: bool) -> io::Result<()> {
        if let Some(why) = &self.closed {
            return Err(io::Error::other(why.clone()));
        }
        let res =
            self.file
                .write_all(bytes)
                .and_then(|()| if sync { self.file.sync_data() } else { Ok(()) });
        let Err(e) = res else {
            self.len += bytes.len() as u64;
            return Ok(());
        };
        let restored = self
            .file
            .set_len(self.len)
            .and_then(|()| self.file.seek(SeekFrom::Start(self.len)).map(drop));
        match restored {
            Ok(()) => Err(io::Error::new(
                e.kind(),
                format!("{}: {e}", self.path.display()),
            )),
            Err(e2) => {
                let why = format!(
                    "{}: {e}; cutting the partial write off failed too ({e2}): the log is closed",
                    self.path.display()
                );
                self.closed = Some(why.clone());
                Err(io::Error::other(why))
            }
        }
    }

    /// Replaces the whole log with `kind`'s magic and `records` (whole framed
    /// records): a compaction. The new file is written beside the log under a
    /// temporary name, locked, fsynced and renamed over it, so a crash at any moment
    /// leaves the old log or the new one, and no other process can open either
    /// between the two (the old file stays locked until the new one is in place and
    /// locked). Appends continue on the new file.
    pub fn replace(&mut self, kind: &LogKind, records: &[u8]) -> io::Result<()> {
        let named =
            |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", self.path.display()));
        let mut tmp_name = self.path.as_os_str().to_owned();
        tmp_name.push(".compacting");
        let tmp = PathBuf::from(tmp_name);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(named)?;
        file.try_lock()
            .map_err(|e| named(io::Error::other(e.to_string())))?;
        let written = file
            .write_all(kind.magic)
            .and_then(|()| file.write_all(records))
            .and_then(|()| file.sync_all())
            .and_then(|()| std::fs::rename(&tmp, &self.path));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(named(e));
        }
        if let Some(dir) = self.path.parent() {
            File::open(dir).and_then(|d| d.sync_all()).map_err(named)?;
        }
        self.len = (kind.magic.len() + records.len()) as u64;
        self.file = file;
        Ok(())
    }

    /// Flushes appended records to disk.
    pub fn sync(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }

    /// Bytes in the log.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the log holds no record.
    pub fn is_empty(&self) -> bool {
        self.len <= MAGIC.len() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(u: &str, i: &str, t: i64) -> Event {
        Event {
            user_id: u.into(),
            item_id: i.into(),
            event: "click".into(),
            strength: 2.0,
            timestamp: t,
        }
    }

    /// A temporary directory, and the bytes of a log of two records (u1/i1 at 1, u2/i2
    /// at 2) with where the first record ends.
    fn two_records() -> (tempfile::TempDir, Vec<u8>, usize) {
        let dir = tempfile::tempdir().unwrap();
        let mut whole = MAGIC.to_vec();
        encode(&ev("u1", "i1", 1), &mut whole);
        let first_end = whole.len();
        encode(&ev("u2", "i2", 2), &mut whole);
        (dir, whole, first_end)
    }

    fn read_all(path: &Path) -> (Vec<Event>, Replay) {
        let mut v = Vec::new();
        let r = read(path, |e| v.push(e)).unwrap();
        (v, r)
    }

    #[test]
    fn records_round_trip_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x/events.log");
        let events = vec![ev("u1", "i1", 1), ev("ü", "", 2), ev("u1", "i3", -5)];
        {
            let (mut a, r) = Appender::open(&path, |_| panic!("empty")).unwrap();
            assert_eq!(r, Replay::default());
            let mut buf = Vec::new();
            for e in &events {
                encode(e, &mut buf);
            }
            a.append(&buf, true).unwrap();
            assert_eq!(a.len(), 8 + buf.len() as u64);
        }
        let (got, r) = read_all(&path);
        assert_eq!(got, events);
        assert_eq!(r.dropped_bytes, 0);
        // Reopening appends after the existing records.
        let (mut a, _) = Appender::open(&path, |_| {}).unwrap();
        let mut buf = Vec::new();
        encode(&ev("u2", "i9", 9), &mut buf);
        a.append(&buf, false).unwrap();
        drop(a);
        assert_eq!(read_all(&path).0.len(), 4);
    }

    #[test]
    fn a_torn_tail_is_dropped_and_cut_off_at_every_length() {
        let (dir, whole, first_end) = two_records();
        let path = dir.path().join("events.log");
        // Every prefix of the second record is a torn write of it.
        for cut in first_end..whole.len() {
            std::fs::write(&path, &whole[..cut]).unwrap();
            let (got, r) = read_all(&path);
            assert_eq!(got, vec![ev("u1", "i1", 1)], "cut at {cut}");
            assert_eq!(r.valid_len as usize, first_end);
            assert_eq!(r.dropped_bytes as usize, cut - first_end);
            let (a, _) = Appender::open(&path, |_| {}).unwrap();
            assert_eq!(a.len() as usize, first_end);
            drop(a);
            assert_eq!(std::fs::metadata(&path).unwrap().len() as usize, first_end);
        }
        // A torn magic (crash while creating the log) reads as empty.
        std::fs::write(&path, &MAGIC[..3]).unwrap();
        assert_eq!(read_all(&path).1.dropped_bytes, 3);
        let (a, _) = Appender::open(&path, |_| {}).unwrap();
        assert!(a.is_empty());
    }

    #[test]
    fn a_flipped_bit_stops_replay_at_that_record() {
        let (dir, mut whole, first_end) = two_records();
        let path = dir.path().join("events.log");
        encode(&ev("u3", "i3", 3), &mut whole);
        whole[first_end + 12] ^= 0x10;
        std::fs::write(&path, &whole).unwrap();
        let (got, r) = read_all(&path);
        assert_eq!(got.len(), 1);
        assert_eq!(r.dropped_bytes as usize, whole.len() - first_end);
    }

    #[test]
    fn foreign_files_and_second_writers_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.log");
        std::fs::write(&path, b"user_id\titem_id\n").unwrap();
        let e = read(&path, |_| {}).unwrap_err().to_string();
        assert!(
            e.ends_with(
                "events.log: not a shortlist event log (expected the magic bytes \"SLEVLOG1\")"
            ),
            "{e}"
        );
        std::fs::remove_file(&path).unwrap();
        let (_a, _) = Appender::open(&path, |_| {}).unwrap();
        let e = Appender::open(&path, |_| {}).unwrap_err().to_string();
        assert!(e.contains("events.log: locked by another process"), "{e}");
    }

    #[test]
    fn opening_waits_for_a_lock_released_soon_and_gives_up_on_one_held_on() {
        use std::time::{Duration, Instant};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.log");
        let (mut a, _) = Appender::open(&path, |_| {}).unwrap();
        let mut bytes = Vec::new();
        encode(&ev("u", "i", 1), &mut bytes);
        a.append(&bytes, true).unwrap();
        // Held past the wait: the lock error, after about the wait.
        let t = Instant::now();
        let e = Appender::open_waiting(&path, &EVENT_LOG, Duration::from_millis(150), |_| true)
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        assert!(
            t.elapsed() >= Duration::from_millis(150),
            "{:?}",
            t.elapsed()
        );
        // Released 200 ms from now (a server finishing its shutdown): opened, replayed.
        let holder = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            drop(a);
        });
        let t = Instant::now();
        let mut n = 0;
        let (_b, replay) =
            Appender::open_waiting(&path, &EVENT_LOG, Duration::from_secs(10), |p| {
                n += usize::from(decode(p).is_some());
                true
            })
            .unwrap();
        holder.join().unwrap();
        assert!(
            t.elapsed() >= Duration::from_millis(150),
            "{:?}",
            t.elapsed()
        );
        assert_eq!((n, replay.dropped_bytes), (1, 0));
    }
}
