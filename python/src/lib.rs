//! `shortlist._shortlist`: the Rust half of the `shortlist` Python package.
//!
//! Nothing here trains, loads or scores by itself: every call goes to the functions
//! the `shortlist` command runs (`shortlist_cli::cmd`, which calls the library
//! crates), so a model fitted from Python is the model `shortlist train` would write
//! for the same data, configuration and seed, saved as the same artifacts. The
//! Python layer (`python/shortlist/`) adds pandas conversions and the estimator
//! classes; this module holds the data, the models and the error mapping.

mod config;
mod dataset;
mod ids;
mod model;
mod pipeline;
mod threads;

use pyo3::exceptions::{PyFileNotFoundError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;

/// An error of the command-line functions as a Python exception carrying the
/// message `shortlist` prints after `error: ` (with its causes): a missing file is
/// a `FileNotFoundError`, other bad input (what the CLI exits 2 for) a
/// `ValueError`, anything else a `RuntimeError`.
pub(crate) fn py_err(e: anyhow::Error) -> PyErr {
    let msg = shortlist_cli::cmd::message(&e);
    let not_found = e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::NotFound)
            || matches!(
                c.downcast_ref::<shortlist_data::Error>(),
                Some(shortlist_data::Error::Io(io)) if io.kind() == std::io::ErrorKind::NotFound
            )
            || matches!(
                c.downcast_ref::<shortlist_model::Error>(),
                Some(shortlist_model::Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound
            )
    });
    if not_found {
        PyFileNotFoundError::new_err(msg)
    } else if shortlist_cli::cmd::is_bad_input(&e) {
        PyValueError::new_err(msg)
    } else {
        PyRuntimeError::new_err(msg)
    }
}

/// A `ValueError` with `msg` (the user's arguments are wrong).
pub(crate) fn bad(msg: impl Into<String>) -> PyErr {
    PyValueError::new_err(msg.into())
}

/// The extension module.
#[pymodule]
fn _shortlist(m: &Bound<'_, PyModule>) -> PyResult<()> {
    threads::init_pool();
    m.add_class::<dataset::Dataset>()?;
    m.add_class::<model::Model>()?;
    m.add_class::<pipeline::Pipeline>()?;
    m.add_function(wrap_pyfunction!(config::default_config, m)?)?;
    m.add_function(wrap_pyfunction!(config::config_to_toml, m)?)?;
    m.add_function(wrap_pyfunction!(config::toml_to_json, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
