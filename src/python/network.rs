//! `ferronn._core.Network`: the core `Network` behind a Python handle.
//! Every method borrows its numpy inputs, then runs through [`compute`].
//!
//! The handle is shared between Python threads: the network sits behind a
//! read-write lock. Inference, saving and reading tensors take the shared
//! lock and run in parallel (inference needs only `&Network`); training and
//! every setter take the exclusive one, so they serialise against each other
//! and against inference. Locks are taken with the GIL released (compute.rs).

use std::path::PathBuf;
use std::sync::RwLock;

use numpy::{PyArray1, PyArray2, PyArrayMethods, PyArrayDyn, PyReadonlyArray1, PyReadonlyArray2, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::error::Error;
use crate::io;
use crate::layers::ParamInfo;
use crate::tensor::MatMut;
use crate::network::{Network, NetworkSpec};
use crate::train::EpochOptions;
use crate::python::compute::{compute, peek, read, write};
use crate::python::convert::{c_slice, mat, PyTargets};
use crate::python::functional::{array2, shaped};
use crate::python::results::{PyEpochReport, PyLossStats};

/// `(name, array, trainable)`: one tensor as `Network.tensors` returns it.
type NamedTensor<'py> = (String, Bound<'py, PyArrayDyn<f32>>, bool);

#[pyclass(name = "Network", module = "ferronn._core", frozen)]
pub struct PyNetwork {
    inner: RwLock<Network>,
}

impl PyNetwork {
    fn wrap(net: Network) -> Self {
        Self { inner: RwLock::new(net) }
    }
}

/// Borrows optional per-sample weights.
fn weights<'a>(w: &'a Option<PyReadonlyArray1<'_, f32>>) -> PyResult<Option<&'a [f32]>> {
    w.as_ref().map(|a| a.as_slice().map_err(|_| Error::Shape("sample_weight must be a C-contiguous float32 array".into()).into())).transpose()
}

/// `(name, shape, values)` copies of the tensors `infos` describe in `flat`:
/// taken under the lock, turned into arrays after it is released.
fn named_copies(infos: Vec<ParamInfo>, flat: &[f32]) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    infos.into_iter().map(|p| (p.name.clone(), p.shape.clone(), flat[p.range()].to_vec())).collect()
}

/// Outputs of at most this many values are written straight into a numpy
/// array by `predict` (4 MiB; numpy's allocation failing is not a named error).
const DIRECT_OUTPUT: usize = 1 << 20;

#[pymethods]
impl PyNetwork {
    /// Builds and initialises a network from its JSON spec.
    #[new]
    fn new(py: Python<'_>, spec_json: &str) -> PyResult<Self> {
        let spec: NetworkSpec = serde_json::from_str(spec_json).map_err(|e| Error::Config(format!("invalid network spec: {e}")))?;
        Ok(Self::wrap(compute(py, || Network::new(spec))?))
    }

    #[getter]
    fn spec_json(&self, py: Python<'_>) -> PyResult<String> {
        peek(py, &self.inner, |n| serde_json::to_string(n.spec())).map_err(|e| Error::Format(e.to_string()).into())
    }

    #[getter]
    fn input_dim(&self, py: Python<'_>) -> usize {
        peek(py, &self.inner, |n| n.input_dim())
    }

    #[getter]
    fn output_dim(&self, py: Python<'_>) -> usize {
        peek(py, &self.inner, |n| n.output_dim())
    }

    #[getter]
    fn n_params(&self, py: Python<'_>) -> usize {
        peek(py, &self.inner, |n| n.params().len())
    }

    #[getter]
    fn optimizer_steps(&self, py: Python<'_>) -> u64 {
        peek(py, &self.inner, |n| n.optimizer().steps())
    }

    /// The base learning rate (a schedule, when set, replaces it).
    #[getter]
    fn lr(&self, py: Python<'_>) -> f32 {
        peek(py, &self.inner, |n| n.base_lr())
    }

    #[setter]
    fn set_lr(&self, py: Python<'_>, lr: f32) -> PyResult<()> {
        write(py, &self.inner, |n| n.set_base_lr(lr))
    }

    /// Factor on the base or scheduled rate (ReduceLROnPlateau lowers it).
    #[getter]
    fn lr_scale(&self, py: Python<'_>) -> f32 {
        peek(py, &self.inner, |n| n.lr_scale())
    }

    #[setter]
    fn set_lr_scale(&self, py: Python<'_>, scale: f32) -> PyResult<()> {
        write(py, &self.inner, |n| n.set_lr_scale(scale))
    }

    /// The learning rate the next step uses.
    #[getter]
    fn current_lr(&self, py: Python<'_>) -> f32 {
        peek(py, &self.inner, |n| n.current_lr())
    }

    /// The epoch index that per-epoch schedules see.
    #[getter]
    fn epoch(&self, py: Python<'_>) -> u64 {
        peek(py, &self.inner, |n| n.epoch())
    }

    #[setter]
    fn set_epoch(&self, py: Python<'_>, epoch: u64) -> PyResult<()> {
        write(py, &self.inner, |n| {
            n.set_epoch(epoch);
            Ok(())
        })
    }

    /// One training step; returns the batch's summed statistics (a NaN loss
    /// sum when the step was refused as non-finite).
    #[pyo3(signature = (x, y, sample_weight=None))]
    fn train_step(&self, py: Python<'_>, x: PyReadonlyArray2<'_, f32>, y: &Bound<'_, PyAny>, sample_weight: Option<PyReadonlyArray1<'_, f32>>) -> PyResult<PyLossStats> {
        let y = PyTargets::extract(y)?;
        let (x, t, w) = (mat(&x)?, y.view()?, weights(&sample_weight)?);
        write(py, &self.inner, |net| net.train_step(x, t, w)).map(PyLossStats::from)
    }

    /// Batches `start_batch..start_batch + max_batches` of one epoch: what ran,
    /// and where a non-finite step stopped the call. `training` overrides the
    /// mode for this call only (other threads never see it changed).
    #[pyo3(signature = (x, y, batch_size, shuffle, seed, epoch, sample_weight=None, start_batch=0, max_batches=None, trusted=false, training=None))]
    #[allow(clippy::too_many_arguments)]
    fn train_epoch(
        &self,
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
        training: Option<bool>,
    ) -> PyResult<PyEpochReport> {
        let y = PyTargets::extract(y)?;
        let (x, t, w) = (mat(&x)?, y.view()?, weights(&sample_weight)?);
        let opts = EpochOptions { batch_size, shuffle, seed, epoch, start_batch, max_batches, trusted };
        write(py, &self.inner, |net| {
            let mode = net.training();
            net.set_training(training.unwrap_or(mode));
            let report = net.train_epoch(x, t, w, &opts);
            net.set_training(mode);
            report
        })
        .map(PyEpochReport::from)
    }

    /// Validates `(x, y)` (and sample weights) against the model without using it.
    #[pyo3(signature = (x, y, sample_weight=None))]
    fn check(&self, py: Python<'_>, x: PyReadonlyArray2<'_, f32>, y: &Bound<'_, PyAny>, sample_weight: Option<PyReadonlyArray1<'_, f32>>) -> PyResult<()> {
        let y = PyTargets::extract(y)?;
        let (x, t, w) = (mat(&x)?, y.view()?, weights(&sample_weight)?);
        read(py, &self.inner, |net| net.check(x, &t, w))
    }

    /// Loss statistics (L1/L2 penalties included) without training.
    #[pyo3(signature = (x, y, sample_weight=None))]
    fn evaluate(&self, py: Python<'_>, x: PyReadonlyArray2<'_, f32>, y: &Bound<'_, PyAny>, sample_weight: Option<PyReadonlyArray1<'_, f32>>) -> PyResult<PyLossStats> {
        let y = PyTargets::extract(y)?;
        let (x, t, w) = (mat(&x)?, y.view()?, weights(&sample_weight)?);
        read(py, &self.inner, |net| net.evaluate(x, t, w)).map(PyLossStats::from)
    }

    /// The full-batch objective (mean loss plus penalties) and its flat gradient,
    /// laid out like `flat_params`, without updating anything (src/objective.rs).
    #[pyo3(signature = (x, y, sample_weight=None))]
    fn loss_and_grads<'py>(&self, py: Python<'py>, x: PyReadonlyArray2<'_, f32>, y: &Bound<'_, PyAny>, sample_weight: Option<PyReadonlyArray1<'_, f32>>) -> PyResult<(f64, Bound<'py, PyArray1<f32>>)> {
        let y = PyTargets::extract(y)?;
        let (x, t, w) = (mat(&x)?, y.view()?, weights(&sample_weight)?);
        let (loss, grad) = write(py, &self.inner, |net| net.loss_and_grads(x, t, w))?;
        Ok((loss, PyArray1::from_vec(py, grad)))
    }

    /// Per recurrent layer, `(name, ‖∂L/∂h_t‖ per input time step)` of one
    /// full-batch evaluation of the objective, as `loss_and_grads` (nothing updated).
    #[pyo3(signature = (x, y, sample_weight=None))]
    fn time_step_grad_norms<'py>(&self, py: Python<'py>, x: PyReadonlyArray2<'_, f32>, y: &Bound<'_, PyAny>, sample_weight: Option<PyReadonlyArray1<'_, f32>>) -> PyResult<Vec<(String, Bound<'py, PyArray1<f64>>)>> {
        let y = PyTargets::extract(y)?;
        let (x, t, w) = (mat(&x)?, y.view()?, weights(&sample_weight)?);
        let norms = write(py, &self.inner, |net| net.time_step_grad_norms(x, t, w))?;
        Ok(norms.into_iter().map(|(name, v)| (name, PyArray1::from_vec(py, v))).collect())
    }

    /// A copy of every parameter, flat, in layer order (the layout of `loss_and_grads`).
    fn flat_params<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray1<f32>>> {
        let flat = read(py, &self.inner, |net| Ok(net.params().to_vec()))?;
        Ok(PyArray1::from_vec(py, flat))
    }

    /// Overwrites every parameter from one flat vector (the layout of `flat_params`).
    fn set_flat_params(&self, py: Python<'_>, values: PyReadonlyArray1<'_, f32>) -> PyResult<()> {
        let data = values.as_slice().map_err(|_| Error::Shape("values must be a C-contiguous float32 array".into()))?;
        write(py, &self.inner, |net| net.set_params_flat(data))
    }

    /// Raw outputs (logits for classification losses).
    fn predict<'py>(&self, py: Python<'py>, x: PyReadonlyArray2<'_, f32>) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let x = mat(&x)?;
        // Small outputs go straight into a numpy array when their width is
        // known (a one-sample call of a small model spent a tenth of its time
        // on the Rust result's allocation and its wrapping into an array).
        // Large ones keep the core's fallible allocation (`AllocationError`).
        if x.rows > 0 {
            let cols = peek(py, &self.inner, |net| net.output_dim_for(x.cols).ok());
            if let Some(cols) = cols.filter(|&c| x.rows.saturating_mul(c) <= DIRECT_OUTPUT) {
                let out = PyArray2::<f32>::zeros(py, [x.rows, cols], false);
                // SAFETY: the array was just created and is not shared yet, so
                // nothing else reads or writes it while the core fills it.
                let data = unsafe { out.as_slice_mut() }.map_err(|_| Error::Shape("a fresh output array is not contiguous".into()))?;
                read(py, &self.inner, |net| net.predict_into(x, MatMut { rows: x.rows, cols, data }))?;
                return Ok(out);
            }
        }
        let out = read(py, &self.inner, |net| net.predict(x))?;
        let (r, c) = (out.rows(), out.cols());
        array2(py, r, c, out.into_vec())
    }

    /// Copies of the trainable tensors, as `[(name, array)]` in layer order.
    fn params<'py>(&self, py: Python<'py>) -> PyResult<Vec<(String, Bound<'py, PyArrayDyn<f32>>)>> {
        let copies = read(py, &self.inner, |net| Ok(named_copies(net.param_infos(), net.params())))?;
        copies.into_iter().map(|(name, shape, data)| Ok((name, shaped(py, &shape, data)?))).collect()
    }

    /// Copies of the gradients of the last training step, named like `params`.
    fn grads<'py>(&self, py: Python<'py>) -> PyResult<Vec<(String, Bound<'py, PyArrayDyn<f32>>)>> {
        let copies = read(py, &self.inner, |net| Ok(named_copies(net.param_infos(), &net.grads())))?;
        copies.into_iter().map(|(name, shape, data)| Ok((name, shaped(py, &shape, data)?))).collect()
    }

    /// Per trainable tensor, `(name, Σ grad², Σ weight²)` of the last step, in
    /// f64: what a gradient monitor needs, without copying the arrays to Python.
    fn sq_norms(&self, py: Python<'_>) -> PyResult<Vec<(String, f64, f64)>> {
        read(py, &self.inner, |net| {
            let (g, p) = (net.grads(), net.params());
            let sq = |x: &[f32]| x.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>();
            Ok(net.param_infos().into_iter().map(|i| (i.name.clone(), sq(&g[i.range()]), sq(&p[i.range()]))).collect())
        })
    }

    /// Every tensor (parameters and buffers such as running statistics) in layer
    /// order, as `[(name, array, trainable)]`: one consistent state.
    fn tensors<'py>(&self, py: Python<'py>) -> PyResult<Vec<NamedTensor<'py>>> {
        let copies = read(py, &self.inner, |net| {
            Ok(net
                .tensor_infos()
                .into_iter()
                .map(|(p, trainable)| {
                    let flat = if trainable { net.params() } else { net.buffers() };
                    (p.name.clone(), p.shape.clone(), flat[p.range()].to_vec(), trainable)
                })
                .collect::<Vec<_>>())
        })?;
        copies.into_iter().map(|(name, shape, data, trainable)| Ok((name, shaped(py, &shape, data)?, trainable))).collect()
    }

    /// A copy of one tensor (parameter or buffer).
    fn get_param<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
        let (shape, data) = read(py, &self.inner, |net| net.get_tensor(name))?;
        shaped(py, &shape, data)
    }

    /// Overwrites one tensor, parameter or buffer (shape-checked).
    fn set_param(&self, py: Python<'_>, name: &str, values: PyReadonlyArrayDyn<'_, f32>) -> PyResult<()> {
        let shape = values.shape().to_vec();
        let data = c_slice(&values, "values must be C-contiguous")?;
        write(py, &self.inner, |net| {
            let info = net.tensor_infos().into_iter().find(|(p, _)| p.name == name).map(|(p, _)| p);
            if let Some(info) = info {
                if shape != info.shape {
                    return Err(Error::Shape(format!("parameter '{name}' has shape {:?}, got an array of shape {shape:?}", info.shape)));
                }
            }
            net.set_param(name, data)
        })
    }

    /// Whether train_step / train_epoch / forward run in training mode.
    #[getter]
    fn training(&self, py: Python<'_>) -> bool {
        peek(py, &self.inner, |n| n.training())
    }

    #[setter]
    fn set_training(&self, py: Python<'_>, training: bool) -> PyResult<()> {
        write(py, &self.inner, |n| {
            n.set_training(training);
            Ok(())
        })
    }

    /// Whether each training step keeps the weights its gradients were taken
    /// at, so that grads() is exact after a multi-batch train_epoch too.
    #[getter]
    fn record_grads(&self, py: Python<'_>) -> bool {
        peek(py, &self.inner, |n| n.record_grads())
    }

    #[setter]
    fn set_record_grads(&self, py: Python<'_>, on: bool) -> PyResult<()> {
        write(py, &self.inner, |n| {
            n.set_record_grads(on);
            Ok(())
        })
    }

    /// Outputs in the current mode, or in the mode `training` gives for this
    /// call only. Inference mode shares the lock (parallel); training mode
    /// updates running statistics, so it takes the exclusive one.
    #[pyo3(signature = (x, training=None))]
    fn forward<'py>(&self, py: Python<'py>, x: PyReadonlyArray2<'_, f32>, training: Option<bool>) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let x = mat(&x)?;
        let train = training.unwrap_or_else(|| peek(py, &self.inner, |n| n.training()));
        let out = if train {
            write(py, &self.inner, |net| {
                let mode = net.training();
                net.set_training(true);
                let out = net.forward(x);
                net.set_training(mode);
                out
            })?
        } else {
            read(py, &self.inner, |net| net.forward_inference(x))?
        };
        let (r, c) = (out.rows(), out.cols());
        array2(py, r, c, out.into_vec())
    }

    /// The model as safetensors bytes; `extra` is stored in the metadata.
    fn to_bytes<'py>(&self, py: Python<'py>, extra: &str) -> PyResult<Bound<'py, PyBytes>> {
        let bytes = read(py, &self.inner, |net| io::to_bytes(net, extra))?;
        Ok(PyBytes::new(py, &bytes))
    }

    #[staticmethod]
    fn from_bytes(py: Python<'_>, data: &[u8]) -> PyResult<(Self, String)> {
        let (inner, extra) = compute(py, || io::from_bytes(data))?;
        Ok((Self::wrap(inner), extra))
    }

    #[staticmethod]
    fn load(py: Python<'_>, path: PathBuf) -> PyResult<(Self, String)> {
        let (inner, extra) = compute(py, || io::load(&path))?;
        Ok((Self::wrap(inner), extra))
    }

    /// An independent copy (weights, optimizer state, workspaces).
    fn copy(&self, py: Python<'_>) -> PyResult<Self> {
        read(py, &self.inner, |net| Ok(Self::wrap(net.clone())))
    }
}
