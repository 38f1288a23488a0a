//! Configurations as dicts ⇄ the TOML files `shortlist train --config` reads.
//!
//! The Python layer merges overrides into a dict; the dict travels as JSON and
//! becomes TOML here (Python ≥ 3.9 has no TOML writer, and 3.9–3.10 no reader).

use pyo3::prelude::*;

use crate::bad;

/// The shipped default configuration of `kind` (`retrieval`, `ranking`, `ease`,
/// `ials`) as TOML text: the file `shortlist train KIND` uses without `--config`.
#[pyfunction]
pub fn default_config(kind: &str) -> PyResult<&'static str> {
    use shortlist_cli::cmd::{train, train_implicit};
    match kind {
        "retrieval" => Ok(train::RETRIEVAL_DEFAULT),
        "ranking" => Ok(train::RANKING_DEFAULT),
        "ease" => Ok(train_implicit::EASE_DEFAULT),
        "ials" => Ok(train_implicit::IALS_DEFAULT),
        other => Err(bad(format!(
            "unknown model kind {other:?}; expected one of retrieval, ranking, ease, ials"
        ))),
    }
}

/// A configuration given as JSON (a dict's `json.dumps`) as TOML text.
#[pyfunction]
pub fn config_to_toml(json: &str) -> PyResult<String> {
    let v: toml::Value = serde_json::from_str(json).map_err(|e| bad(format!("config: {e}")))?;
    if !v.is_table() {
        return Err(bad("config: expected a dict of settings"));
    }
    toml::to_string(&v).map_err(|e| bad(format!("config: {e}")))
}

/// TOML text (named `label` in errors) as JSON, for `json.loads`.
#[pyfunction]
pub fn toml_to_json(text: &str, label: &str) -> PyResult<String> {
    let v: toml::Value = toml::from_str(text).map_err(|e| bad(format!("{label}: {e}")))?;
    serde_json::to_string(&v).map_err(|e| bad(format!("{label}: {e}")))
}
