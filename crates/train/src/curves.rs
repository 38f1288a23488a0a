//! Learning curves: `curves.csv` (and `curves.png`).

use std::fmt::Write as _;
use std::path::Path;

use shortlist_core::atomic::write_file;

use crate::error::{Error, Result};
use crate::trainer::History;

fn opt(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.6}")).unwrap_or_default()
}

impl History {
    /// The per-epoch records as CSV.
    pub fn to_csv(&self) -> String {
        let mut s = String::from(
            "epoch,train_loss,train_rmse,valid_loss,valid_rmse,test_rmse,test_mae,seconds\n",
        );
        for e in &self.epochs {
            let _ = writeln!(
                s,
                "{},{:.6},{:.6},{},{},{},{},{:.4}",
                e.epoch,
                e.train_loss,
                e.train_rmse,
                opt(e.valid_loss),
                opt(e.valid_rmse),
                opt(e.test_rmse),
                opt(e.test_mae),
                e.seconds
            );
        }
        s
    }

    /// Writes `curves.csv` (and `curves.png`) into `dir`, atomically.
    pub fn write_curves(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::Output {
            path: dir.to_path_buf(),
            message: e.to_string(),
        })?;
        let csv = dir.join("curves.csv");
        write_file(&csv, self.to_csv().as_bytes()).map_err(|e| Error::Output {
            path: csv.clone(),
            message: e.to_string(),
        })?;
        Ok(())
    }
}
