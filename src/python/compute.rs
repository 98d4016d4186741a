//! The one way bindings run core work: with the GIL released and panics caught.
//!
//! Like polars' `enter_polars`: the caller has already borrowed its numpy inputs
//! as slices; this runs the closure detached from the interpreter so other
//! Python threads keep going, and turns a panic (a ferronn bug) into
//! `ferronn.InternalError` instead of letting it cross into Python. [`read`],
//! [`write`] and [`peek`] add the lock that a shared network sits behind.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{PoisonError, RwLock};

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

/// [`compute`] with a shared lock on `lock`: many readers at once (inference,
/// saving, reading weights) run in parallel. The lock is taken with the GIL
/// released, so a thread waiting for it never holds the GIL (a writer that
/// needs the GIL after its work would otherwise deadlock against it).
/// Poisoning is ignored: a panic is already reported as `InternalError`, and
/// the state it leaves is what the call left, as without a lock.
pub fn read<N: Send + Sync, T: Send>(py: Python<'_>, lock: &RwLock<N>, f: impl FnOnce(&N) -> Result<T> + Send) -> PyResult<T> {
    compute(py, || f(&lock.read().unwrap_or_else(PoisonError::into_inner)))
}

/// [`compute`] with the exclusive lock on `lock` (training, setting tensors
/// or options): waits for the readers in flight, with the GIL released.
pub fn write<N: Send + Sync, T: Send>(py: Python<'_>, lock: &RwLock<N>, f: impl FnOnce(&mut N) -> Result<T> + Send) -> PyResult<T> {
    compute(py, || f(&mut lock.write().unwrap_or_else(PoisonError::into_inner)))
}

/// A cheap read (a getter): takes the shared lock without releasing the GIL
/// when it is free, and through [`read`] when a writer holds it.
pub fn peek<N: Send + Sync, T: Send>(py: Python<'_>, lock: &RwLock<N>, f: impl Fn(&N) -> T + Send + Sync) -> T {
    if let Ok(net) = lock.try_read() {
        return f(&net);
    }
    let out = py.detach(|| f(&lock.read().unwrap_or_else(PoisonError::into_inner)));
    out
}
