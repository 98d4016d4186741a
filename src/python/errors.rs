//! Maps each core `Error` variant to its named Python exception.
//!
//! The exception classes are defined in Python (`ferronn/errors.py`) so that each
//! can also derive from the built-in a user expects (`ShapeError` is a
//! `ValueError`); this file only looks them up by name.

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyType;

use crate::error::Error;

/// The exception class name in `ferronn.errors` for each variant.
fn class_name(err: &Error) -> &'static str {
    match err {
        Error::Shape(_) => "ShapeError",
        Error::NonFinite(_) => "NonFiniteError",
        Error::Label(_) => "LabelError",
        Error::Empty(_) => "EmptyInputError",
        Error::UnknownName(_) => "UnknownNameError",
        Error::Config(_) => "ConfigError",
        Error::Format(_) => "ModelFileError",
        Error::Io(_) => "OSError",
        Error::Memory(_) => "AllocationError",
    }
}

/// Builds an exception of the named class in `ferronn.errors`, falling back to
/// a built-in one if the Python package is not importable (a bare `_core`).
pub fn named(name: &str, msg: String) -> PyErr {
    Python::attach(|py| {
        let class = py
            .import("ferronn.errors")
            .and_then(|m| m.getattr(name))
            .and_then(|c| c.cast_into::<PyType>().map_err(PyErr::from));
        match class {
            Ok(class) => PyErr::from_type(class, msg),
            Err(_) if name == "InternalError" => PyRuntimeError::new_err(msg),
            Err(_) => PyValueError::new_err(msg),
        }
    })
}

impl From<Error> for PyErr {
    fn from(err: Error) -> PyErr {
        match err {
            Error::Io(e) => PyErr::from(e),
            other => {
                let name = class_name(&other);
                named(name, other.to_string())
            }
        }
    }
}
