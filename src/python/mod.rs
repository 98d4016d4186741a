//! PyO3 bindings: the `ferronn._core` extension module. Conversion, error
//! mapping and GIL handling only; all numeric work is in the core.

mod compute;
mod convert;
mod errors;
mod functional;
mod network;
mod results;
pub mod schedule;
mod tables;

use pyo3::prelude::*;

/// Uses `n` threads for all later work.
#[pyfunction]
fn set_num_threads(n: usize) -> PyResult<()> {
    Ok(crate::threads::set_num_threads(n)?)
}

/// The number of threads in use (default: every available core).
#[pyfunction]
fn get_num_threads() -> usize {
    crate::threads::num_threads()
}

#[pymodule]
#[pyo3(name = "_core")]
fn core_module(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<network::PyNetwork>()?;
    m.add_class::<results::PyLossStats>()?;
    m.add_class::<results::PyEpochReport>()?;
    m.add_function(wrap_pyfunction!(set_num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(get_num_threads, m)?)?;
    m.add_function(wrap_pyfunction!(functional::activation_forward, m)?)?;
    m.add_function(wrap_pyfunction!(functional::activation_backward, m)?)?;
    m.add_function(wrap_pyfunction!(functional::softmax_rows, m)?)?;
    m.add_function(wrap_pyfunction!(functional::log_softmax_rows, m)?)?;
    m.add_function(wrap_pyfunction!(functional::softmax_backward, m)?)?;
    m.add_function(wrap_pyfunction!(functional::loss_and_grad, m)?)?;
    m.add_function(wrap_pyfunction!(functional::matmul, m)?)?;
    m.add_function(wrap_pyfunction!(schedule::schedule_lr, m)?)?;
    m.add_function(wrap_pyfunction!(schedule::schedule_check, m)?)?;
    m.add_class::<tables::ActivationInfo>()?;
    m.add_class::<tables::LossInfo>()?;
    m.add_function(wrap_pyfunction!(tables::activation_table, m)?)?;
    m.add_function(wrap_pyfunction!(tables::loss_table, m)?)?;
    Ok(())
}
