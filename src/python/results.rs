//! What the core's training and evaluation calls return to Python: frozen
//! objects with named fields (`ferronn._core.LossStats`, `EpochReport`), so
//! no caller reads a tuple by position.

use pyo3::prelude::*;

use crate::loss::LossStats;
use crate::train::EpochReport;

/// Loss statistics of some batches, as sums, so that batches combine with `+`.
#[pyclass(name = "LossStats", module = "ferronn._core", frozen, eq, get_all)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PyLossStats {
    /// Σ over samples of the per-sample loss (penalties included where the call says so).
    pub loss_sum: f64,
    /// Samples counted in `loss_sum`.
    pub samples: u64,
    /// Correct predictions (argmax for labels, `logit > 0` per output for binary cross-entropy).
    pub correct: u64,
    /// Predictions `correct` counts over (0 for mse, which has no accuracy).
    pub counted: u64,
}

impl From<LossStats> for PyLossStats {
    fn from(s: LossStats) -> Self {
        Self { loss_sum: s.loss_sum, samples: s.samples, correct: s.correct, counted: s.counted }
    }
}

#[pymethods]
impl PyLossStats {
    #[new]
    #[pyo3(signature = (loss_sum=0.0, samples=0, correct=0, counted=0))]
    fn new(loss_sum: f64, samples: u64, correct: u64, counted: u64) -> Self {
        Self { loss_sum, samples, correct, counted }
    }

    /// The mean loss per sample (0 when no sample was counted).
    #[getter]
    fn mean_loss(&self) -> f64 {
        self.loss_sum / self.samples.max(1) as f64
    }

    /// The fraction of correct predictions (0 when none was counted).
    #[getter]
    fn accuracy(&self) -> f64 {
        self.correct as f64 / self.counted.max(1) as f64
    }

    fn __add__(&self, other: &Self) -> Self {
        Self {
            loss_sum: self.loss_sum + other.loss_sum,
            samples: self.samples + other.samples,
            correct: self.correct + other.correct,
            counted: self.counted + other.counted,
        }
    }

    fn __repr__(&self) -> String {
        format!("LossStats(loss_sum={}, samples={}, correct={}, counted={})", self.loss_sum, self.samples, self.correct, self.counted)
    }
}

/// What one `Network.train_epoch` call did.
#[pyclass(name = "EpochReport", module = "ferronn._core", frozen, get_all)]
#[derive(Clone, Debug)]
pub struct PyEpochReport {
    /// Statistics of the batches whose update was applied.
    pub stats: PyLossStats,
    /// Batches whose update was applied.
    pub batches: usize,
    /// The batch (index within the epoch) whose loss or gradients were not
    /// finite: its update was refused and the call stopped there.
    pub diverged_at: Option<usize>,
}

impl From<EpochReport> for PyEpochReport {
    fn from(r: EpochReport) -> Self {
        Self { stats: r.stats.into(), batches: r.batches, diverged_at: r.diverged_at }
    }
}

#[pymethods]
impl PyEpochReport {
    fn __repr__(&self) -> String {
        let at = self.diverged_at.map_or("None".to_string(), |b| b.to_string());
        format!("EpochReport(stats={}, batches={}, diverged_at={at})", self.stats.__repr__(), self.batches)
    }
}
