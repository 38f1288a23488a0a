//! Progress reporting seam: libraries report, the CLI draws (indicatif), tests ignore.

/// Receives progress of a long operation (download, file load, generation).
pub trait Progress: Sync {
    /// A new phase starts; `total` is in the unit of [`Progress::advance`] (bytes, rows) when known.
    fn start(&self, label: &str, total: Option<u64>);
    /// `delta` more units are done.
    fn advance(&self, delta: u64);
    /// The phase ended.
    fn finish(&self);
}

/// Reports nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn start(&self, _label: &str, _total: Option<u64>) {}
    fn advance(&self, _delta: u64) {}
    fn finish(&self) {}
}
