//! The one way bindings run core work: with the GIL released and panics caught.
//!
//! Like polars' `enter_polars`: the caller has already borrowed its numpy inputs
//! as slices; this runs the closure detached from the interpreter so other
//! Python threads keep going, and turns a panic (a ferronn bug) into
//! `ferronn.InternalError` instead of letting it cross into Python.

use std::panic::{catch_unwind, AssertUnwindSafe};

use pyo3::prelude::*;

use crate::error::Result;
use crate::python::errors::named;

pub fn compute<T: Send>(py: Python<'_>, f: impl FnOnce() -> Result<T> + Send) -> PyResult<T> {
    let outcome = py.detach(|| catch_unwind(AssertUnwindSafe(f)));
    match outcome {
        Ok(result) => result.map_err(PyErr::from),
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Err(named("InternalError", format!("internal error in ferronn's core: {what}; please report this")))
        }
    }
}
