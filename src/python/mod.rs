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

/// Starts (clearing earlier figures) or stops the opt-in profile of products
/// and training-step phases (`ferronn::profile`).
#[pyfunction]
fn profile_enable(on: bool) {
    crate::profile::set_enabled(on);
}

/// One product shape's figures: `(m, n, k, threads, calls, wall_ns, busy_ns)`.
type ProductRow = (usize, usize, usize, usize, u64, u64, u64);

/// The profile's figures since the last call, then cleared: the products as
/// `(m, n, k, threads, calls, wall_ns, busy_ns)`, and `(phase, calls, ns)`
/// for each phase of a training step.
#[pyfunction]
fn profile_take() -> (Vec<ProductRow>, Vec<(&'static str, u64, u64)>) {
    let p = crate::profile::take();
    let products = p.products.iter().map(|s| (s.m, s.n, s.k, s.threads, s.calls, s.wall_ns, s.busy_ns)).collect();
    let phases = p.phases.iter().map(|&(phase, calls, ns)| (phase.name(), calls, ns)).collect();
    (products, phases)
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
    m.add_function(wrap_pyfunction!(profile_enable, m)?)?;
    m.add_function(wrap_pyfunction!(profile_take, m)?)?;
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
