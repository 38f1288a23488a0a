//! Progress reporting seam: libraries report, the CLI draws (indicatif), tests ignore.

/// Receives progress of a long operation (download, file load, generation).
pub trait Progress: Sync {
    /// A new phase starts; `total` is in the unit of [`Progress::advance`] (bytes, rows) when known.
    fn start(&self, label: &str, total: Option<u64>);
    /// `delta` more units are done.
    fn advance(&self, delta: u64);
    /// The phase ended.
    fn finish(&self);
    /// Whether whoever watches the work has asked it to stop (Ctrl-C in Python, whose
    /// wait returns at once): training loops check it between batches and give up
    /// with a "cancelled" error rather than run on unseen. Never, by default.
    fn cancelled(&self) -> bool {
        false
    }
}

/// Reports nothing but passes on `0.cancelled()`: for an inner phase whose steps
/// the caller counts its own way.
pub struct CancelOnly<'a>(pub &'a dyn Progress);

impl Progress for CancelOnly<'_> {
    fn start(&self, _label: &str, _total: Option<u64>) {}
    fn advance(&self, _delta: u64) {}
    fn finish(&self) {}
    fn cancelled(&self) -> bool {
        self.0.cancelled()
    }
}

/// Reports nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn start(&self, _label: &str, _total: Option<u64>) {}
    fn advance(&self, _delta: u64) {}
    fn finish(&self) {}
}
