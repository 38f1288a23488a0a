//! Progress bars on stderr (indicatif): drawn only on a terminal, never on stdout,
//! so `--json` output stays clean.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use shortlist_core::progress::Progress;

/// An indicatif-backed [`Progress`]; silent when `quiet`, or handing every event to
/// another reporter instead ([`Bars::forwarding`]).
pub struct Bars {
    bar: Mutex<Option<ProgressBar>>,
    quiet: bool,
    forward: Option<Arc<dyn Progress + Send>>,
}

impl Bars {
    /// New reporter.
    pub fn new(quiet: bool) -> Self {
        Bars {
            bar: Mutex::new(None),
            quiet,
            forward: None,
        }
    }

    /// A reporter that draws nothing and passes every event to `to`.
    pub fn forwarding(to: Arc<dyn Progress + Send>) -> Self {
        Bars {
            bar: Mutex::new(None),
            quiet: true,
            forward: Some(to),
        }
    }
}

impl Bars {
    /// Runs `f` (e.g. a log line) with the current bar hidden, then redraws it, so
    /// lines written to stderr during a phase do not tear the bar.
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        let bar = self.bar.lock().ok().and_then(|slot| slot.clone());
        match bar {
            Some(b) => b.suspend(f),
            None => f(),
        }
    }
}

impl Progress for Bars {
    fn start(&self, label: &str, total: Option<u64>) {
        if let Some(to) = &self.forward {
            return to.start(label, total);
        }
        if self.quiet {
            return;
        }
        let bar = match total {
            Some(t) => {
                // Byte counts for I/O phases, item counts for the rest.
                let template = if label.starts_with("downloading") || label.starts_with("parsing") {
                    "{msg:40!} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}"
                } else {
                    "{msg:40!} [{bar:30}] {human_pos}/{human_len} eta {eta}"
                };
                ProgressBar::with_draw_target(Some(t), ProgressDrawTarget::stderr()).with_style(
                    ProgressStyle::with_template(template)
                        .unwrap_or_else(|_| ProgressStyle::default_bar())
                        .progress_chars("=> "),
                )
            }
            None => {
                let b = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
                b.enable_steady_tick(Duration::from_millis(120));
                b
            }
        };
        bar.set_message(label.to_owned());
        if let Ok(mut slot) = self.bar.lock() {
            *slot = Some(bar);
        }
    }

    fn advance(&self, delta: u64) {
        if let Some(to) = &self.forward {
            return to.advance(delta);
        }
        if let Ok(slot) = self.bar.lock() {
            if let Some(b) = slot.as_ref() {
                b.inc(delta);
            }
        }
    }

    fn finish(&self) {
        if let Some(to) = &self.forward {
            return to.finish();
        }
        if let Ok(mut slot) = self.bar.lock() {
            if let Some(b) = slot.take() {
                b.finish_and_clear();
            }
        }
    }

    fn cancelled(&self) -> bool {
        self.forward.as_ref().is_some_and(|to| to.cancelled())
    }
}
