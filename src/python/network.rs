//! `ferronn._core.Network`: the core `Network` behind a Python handle.
//! Every method borrows its numpy inputs, then runs through [`compute`].

use std::path::PathBuf;

use numpy::{PyArray2, PyArrayDyn, PyReadonlyArray1, PyReadonlyArray2, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::error::Error;
use crate::io;
use crate::network::{Network, NetworkSpec};
use crate::train::EpochOptions;
use crate::python::compute::compute;
use crate::python::convert::{mat, PyTargets};
use crate::python::functional::{array2, shaped};
use crate::python::results::{PyEpochReport, PyLossStats};

#[pyclass(name = "Network", module = "ferronn._core")]
pub struct PyNetwork {
    inner: Network,
}

/// Borrows optional per-sample weights.
fn weights<'a>(w: &'a Option<PyReadonlyArray1<'_, f32>>) -> PyResult<Option<&'a [f32]>> {
    w.as_ref().map(|a| a.as_slice().map_err(|_| Error::Shape("sample_weight must be a C-contiguous float32 array".into()).into())).transpose()
}

fn tensor_copy<'py>(py: Python<'py>, shape: &[usize], data: &[f32]) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
    shaped(py, shape, data.to_vec())
}

#[pymethods]
impl PyNetwork {
    /// Builds and initialises a network from its JSON spec.
    #[new]
    fn new(py: Python<'_>, spec_json: &str) -> PyResult<Self> {
        let spec: NetworkSpec = serde_json::from_str(spec_json).map_err(|e| Error::Config(format!("invalid network spec: {e}")))?;
        let inner = compute(py, || Network::new(spec))?;
        Ok(Self { inner })
    }

    #[getter]
    fn spec_json(&self) -> PyResult<String> {
        serde_json::to_string(self.inner.spec()).map_err(|e| Error::Format(e.to_string()).into())
    }

    #[getter]
    fn input_dim(&self) -> usize {
        self.inner.input_dim()
    }

    #[getter]
    fn output_dim(&self) -> usize {
        self.inner.output_dim()
    }

    #[getter]
    fn n_params(&self) -> usize {
        self.inner.params().len()
    }

    #[getter]
    fn optimizer_steps(&self) -> u64 {
        self.inner.optimizer().steps()
    }

    /// The base learning rate (a schedule, when set, replaces it).
    #[getter]
    fn lr(&self) -> f32 {
        self.inner.base_lr()
    }

    #[setter]
    fn set_lr(&mut self, lr: f32) -> PyResult<()> {
        Ok(self.inner.set_base_lr(lr)?)
    }

    /// Factor on the base or scheduled rate (ReduceLROnPlateau lowers it).
    #[getter]
    fn lr_scale(&self) -> f32 {
        self.inner.lr_scale()
    }

    #[setter]
    fn set_lr_scale(&mut self, scale: f32) -> PyResult<()> {
        Ok(self.inner.set_lr_scale(scale)?)
    }

    /// The learning rate the next step uses.
    #[getter]
    fn current_lr(&self) -> f32 {
        self.inner.current_lr()
    }

    /// The epoch index that per-epoch schedules see.
    #[getter]
    fn epoch(&self) -> u64 {
        self.inner.epoch()
    }

    #[setter]
    fn set_epoch(&mut self, epoch: u64) {
        self.inner.set_epoch(epoch);
    }

    /// One training step; returns the batch's summed statistics (a NaN loss
    /// sum when the step was refused as non-finite).
    #[pyo3(signature = (x, y, sample_weight=None))]
    fn train_step(&mut self, py: Python<'_>, x: PyReadonlyArray2<'_, f32>, y: &Bound<'_, PyAny>, sample_weight: Option<PyReadonlyArray1<'_, f32>>) -> PyResult<PyLossStats> {
        let y = PyTargets::extract(y)?;
        let (x, t, w) = (mat(&x)?, y.view()?, weights(&sample_weight)?);
        let net = &mut self.inner;
        compute(py, || net.train_step(x, t, w)).map(PyLossStats::from)
    }

    /// Batches `start_batch..start_batch + max_batches` of one epoch: what ran,
    /// and where a non-finite step stopped the call.
    #[pyo3(signature = (x, y, batch_size, shuffle, seed, epoch, sample_weight=None, start_batch=0, max_batches=None, trusted=false))]
    #[allow(clippy::too_many_arguments)]
    fn train_epoch(
        &mut self,
        py: Python<'_>,
        x: PyReadonlyArray2<'_, f32>,
        y: &Bound<'_, PyAny>,
        batch_size: usize,
        shuffle: bool,
        seed: u64,
        epoch: u64,
        sample_weight: Option<PyReadonlyArray1<'_, f32>>,
        start_batch: usize,
        max_batches: Option<usize>,
        trusted: bool,
    ) -> PyResult<PyEpochReport> {
        let y = PyTargets::extract(y)?;
        let (x, t, w) = (mat(&x)?, y.view()?, weights(&sample_weight)?);
        let opts = EpochOptions { batch_size, shuffle, seed, epoch, start_batch, max_batches, trusted };
        let net = &mut self.inner;
        compute(py, || net.train_epoch(x, t, w, &opts)).map(PyEpochReport::from)
    }

    /// Validates `(x, y)` (and sample weights) against the model without using it.
    #[pyo3(signature = (x, y, sample_weight=None))]
    fn check(&self, py: Python<'_>, x: PyReadonlyArray2<'_, f32>, y: &Bound<'_, PyAny>, sample_weight: Option<PyReadonlyArray1<'_, f32>>) -> PyResult<()> {
        let y = PyTargets::extract(y)?;
        let (x, t, w) = (mat(&x)?, y.view()?, weights(&sample_weight)?);
        let net = &self.inner;
        compute(py, || net.check(x, &t, w))
    }

    /// Loss statistics (L1/L2 penalties included) without training.
    #[pyo3(signature = (x, y, sample_weight=None))]
    fn evaluate(&mut self, py: Python<'_>, x: PyReadonlyArray2<'_, f32>, y: &Bound<'_, PyAny>, sample_weight: Option<PyReadonlyArray1<'_, f32>>) -> PyResult<PyLossStats> {
        let y = PyTargets::extract(y)?;
        let (x, t, w) = (mat(&x)?, y.view()?, weights(&sample_weight)?);
        let net = &mut self.inner;
        compute(py, || net.evaluate(x, t, w)).map(PyLossStats::from)
    }

    /// Raw outputs (logits for classification losses).
    fn predict<'py>(&mut self, py: Python<'py>, x: PyReadonlyArray2<'_, f32>) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let x = mat(&x)?;
        let net = &mut self.inner;
        let out = compute(py, || net.predict(x))?;
        let (r, c) = (out.rows(), out.cols());
        array2(py, r, c, out.into_vec())
    }

    /// Copies of the trainable tensors, as `[(name, array)]` in layer order.
    fn params<'py>(&self, py: Python<'py>) -> PyResult<Vec<(String, Bound<'py, PyArrayDyn<f32>>)>> {
        let flat = self.inner.params();
        self.inner.param_infos().into_iter().map(|p| Ok((p.name.clone(), tensor_copy(py, &p.shape, &flat[p.range()])?))).collect()
    }

    /// Copies of the gradients of the last training step, named like `params`.
    fn grads<'py>(&self, py: Python<'py>) -> PyResult<Vec<(String, Bound<'py, PyArrayDyn<f32>>)>> {
        let flat = self.inner.grads();
        self.inner.param_infos().into_iter().map(|p| Ok((p.name.clone(), tensor_copy(py, &p.shape, &flat[p.range()])?))).collect()
    }

    /// Per trainable tensor, `(name, Σ grad², Σ weight²)` of the last step, in
    /// f64: what a gradient monitor needs, without copying the arrays to Python.
    fn sq_norms(&self) -> Vec<(String, f64, f64)> {
        let (g, p) = (self.inner.grads(), self.inner.params());
        let sq = |x: &[f32]| x.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>();
        self.inner.param_infos().into_iter().map(|i| (i.name.clone(), sq(&g[i.range()]), sq(&p[i.range()]))).collect()
    }

    /// Every tensor (parameters and buffers such as running statistics) in layer
    /// order, as `[(name, array, trainable)]`.
    fn tensors<'py>(&self, py: Python<'py>) -> PyResult<Vec<(String, Bound<'py, PyArrayDyn<f32>>, bool)>> {
        let net = &self.inner;
        net.tensor_infos()
            .into_iter()
            .map(|(p, trainable)| {
                let flat = if trainable { net.params() } else { net.buffers() };
                Ok((p.name.clone(), tensor_copy(py, &p.shape, &flat[p.range()])?, trainable))
            })
            .collect()
    }

    /// A copy of one tensor (parameter or buffer).
    fn get_param<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
        let (shape, data) = self.inner.get_tensor(name)?;
        shaped(py, &shape, data)
    }

    /// Overwrites one tensor, parameter or buffer (shape-checked).
    fn set_param(&mut self, name: &str, values: PyReadonlyArrayDyn<'_, f32>) -> PyResult<()> {
        let info = self.inner.tensor_infos().into_iter().find(|(p, _)| p.name == name).map(|(p, _)| p);
        if let Some(info) = info {
            if values.shape() != info.shape.as_slice() {
                return Err(Error::Shape(format!("parameter '{name}' has shape {:?}, got an array of shape {:?}", info.shape, values.shape())).into());
            }
        }
        let data = values.as_slice().map_err(|_| Error::Shape("values must be C-contiguous".into()))?;
        Ok(self.inner.set_param(name, data)?)
    }

    /// Whether train_step / train_epoch / forward run in training mode.
    #[getter]
    fn training(&self) -> bool {
        self.inner.training()
    }

    #[setter]
    fn set_training(&mut self, training: bool) {
        self.inner.set_training(training);
    }

    /// Whether each training step keeps the weights its gradients were taken
    /// at, so that grads() is exact after a multi-batch train_epoch too.
    #[getter]
    fn record_grads(&self) -> bool {
        self.inner.record_grads()
    }

    #[setter]
    fn set_record_grads(&mut self, on: bool) {
        self.inner.set_record_grads(on);
    }

    /// Outputs in the current mode (training mode updates running statistics).
    fn forward<'py>(&mut self, py: Python<'py>, x: PyReadonlyArray2<'_, f32>) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let x = mat(&x)?;
        let net = &mut self.inner;
        let out = compute(py, || net.forward(x))?;
        let (r, c) = (out.rows(), out.cols());
        array2(py, r, c, out.into_vec())
    }

    /// The model as safetensors bytes; `extra` is stored in the metadata.
    fn to_bytes<'py>(&self, py: Python<'py>, extra: &str) -> PyResult<Bound<'py, PyBytes>> {
        let net = &self.inner;
        let bytes = compute(py, || io::to_bytes(net, extra))?;
        Ok(PyBytes::new(py, &bytes))
    }

    #[staticmethod]
    fn from_bytes(py: Python<'_>, data: &[u8]) -> PyResult<(Self, String)> {
        let (inner, extra) = compute(py, || io::from_bytes(data))?;
        Ok((Self { inner }, extra))
    }

    /// Saves atomically to `path`.
    fn save(&self, py: Python<'_>, path: PathBuf, extra: &str) -> PyResult<()> {
        let net = &self.inner;
        compute(py, || io::save(net, &path, extra))
    }

    #[staticmethod]
    fn load(py: Python<'_>, path: PathBuf) -> PyResult<(Self, String)> {
        let (inner, extra) = compute(py, || io::load(&path))?;
        Ok((Self { inner }, extra))
    }

    /// An independent copy (weights, optimizer state, workspaces).
    fn copy(&self) -> Self {
        Self { inner: self.inner.clone() }
    }
}
