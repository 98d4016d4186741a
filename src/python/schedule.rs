//! Learning-rate schedules: `ferronn.schedules` computes every rate here, from
//! the same JSON spec the training step uses.

use pyo3::prelude::*;

use crate::schedule::Schedule;

/// The rate of the schedule `spec_json` for the next batch, after `step`
/// optimizer steps in (0-based) epoch `epoch`.
#[pyfunction]
pub fn schedule_lr(spec_json: &str, step: u64, epoch: u64) -> PyResult<f32> {
    Ok(Schedule::from_json(spec_json)?.lr_at(step, epoch))
}

/// Validates `spec_json` and returns it as canonical JSON, with every default
/// (including `per`) filled in.
#[pyfunction]
pub fn schedule_check(spec_json: &str) -> PyResult<String> {
    Ok(Schedule::from_json(spec_json)?.to_json())
}
