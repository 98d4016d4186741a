//! Stateless functions: activations, softmax and losses on numpy arrays.
//! Users call them through `ferronn.functional`; tests use them to check the
//! core's math against float64 references.

use numpy::ndarray::{Array2, ArrayD, IxDyn};
use numpy::{IntoPyArray, PyArray2, PyArrayDyn, PyReadonlyArray2, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::prelude::*;

use crate::activation::Activation;
use crate::error::{ensure_config, ensure_shape, Error, Result};
use crate::kernels::{gemm, softmax};
use crate::loss::Loss;
use crate::python::compute::compute;
use crate::python::convert::{c_slice, mat, PyTargets};

fn slice<'a>(a: &'a PyReadonlyArrayDyn<'_, f32>) -> PyResult<&'a [f32]> {
    c_slice(a, "expected a C-contiguous float32 array")
}

/// Wraps a row-major buffer as a 2-D numpy array (no copy).
pub fn array2<'py>(py: Python<'py>, rows: usize, cols: usize, data: Vec<f32>) -> PyResult<Bound<'py, PyArray2<f32>>> {
    Ok(Array2::from_shape_vec((rows, cols), data).map_err(|e| Error::Shape(e.to_string()))?.into_pyarray(py))
}

/// Wraps a row-major buffer as an n-D numpy array of `shape` (no copy).
pub fn shaped<'py>(py: Python<'py>, shape: &[usize], data: Vec<f32>) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
    Ok(ArrayD::from_shape_vec(IxDyn(shape), data).map_err(|e| Error::Shape(e.to_string()))?.into_pyarray(py))
}

/// `f(x)` elementwise for the named activation.
#[pyfunction]
#[pyo3(signature = (name, x, alpha=None))]
pub fn activation_forward<'py>(py: Python<'py>, name: &str, x: PyReadonlyArrayDyn<'_, f32>, alpha: Option<f32>) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
    let act = Activation::from_name(name, alpha)?;
    let xs = slice(&x)?;
    let out = compute(py, || {
        let mut out = vec![0.0; xs.len()];
        act.forward(xs, &mut out);
        Ok(out)
    })?;
    shaped(py, x.shape(), out)
}

/// `dy ⊙ f'(x)`: the gradient w.r.t. the activation's input.
#[pyfunction]
#[pyo3(signature = (name, x, dy, alpha=None))]
pub fn activation_backward<'py>(py: Python<'py>, name: &str, x: PyReadonlyArrayDyn<'_, f32>, dy: PyReadonlyArrayDyn<'_, f32>, alpha: Option<f32>) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
    let act = Activation::from_name(name, alpha)?;
    let (xs, dys) = (slice(&x)?, slice(&dy)?);
    ensure_shape(x.shape() == dy.shape(), || format!("x has shape {:?} but dy has shape {:?}; expected equal", x.shape(), dy.shape()))?;
    let out = compute(py, || {
        let mut y = vec![0.0; xs.len()];
        act.forward(xs, &mut y);
        let mut g = dys.to_vec();
        act.backward(xs, &y, &mut g);
        Ok(g)
    })?;
    shaped(py, x.shape(), out)
}

fn check_temperature(t: f32) -> Result<()> {
    ensure_config(t.is_finite() && t > 0.0, || format!("temperature must be a finite number > 0, got {t}"))
}

fn rowwise<'py>(py: Python<'py>, x: PyReadonlyArray2<'_, f32>, f: impl FnOnce(&[f32], usize, &mut [f32]) + Send) -> PyResult<Bound<'py, PyArray2<f32>>> {
    let m = mat(&x)?;
    let out = compute(py, || {
        let mut out = vec![0.0; m.data.len()];
        f(m.data, m.cols, &mut out);
        Ok(out)
    })?;
    array2(py, m.rows, m.cols, out)
}

/// Softmax over the last axis of a 2-D array, with temperature.
#[pyfunction]
#[pyo3(signature = (x, temperature=1.0))]
pub fn softmax_rows<'py>(py: Python<'py>, x: PyReadonlyArray2<'_, f32>, temperature: f32) -> PyResult<Bound<'py, PyArray2<f32>>> {
    check_temperature(temperature)?;
    rowwise(py, x, |x, c, o| softmax::softmax_rows(x, c, temperature, o))
}

/// Log-softmax over the last axis of a 2-D array, with temperature.
#[pyfunction]
#[pyo3(signature = (x, temperature=1.0))]
pub fn log_softmax_rows<'py>(py: Python<'py>, x: PyReadonlyArray2<'_, f32>, temperature: f32) -> PyResult<Bound<'py, PyArray2<f32>>> {
    check_temperature(temperature)?;
    rowwise(py, x, |x, c, o| softmax::log_softmax_rows(x, c, temperature, o))
}

/// Gradient w.r.t. the logits of softmax (`log=False`) or log-softmax (`log=True`), given `dy`.
#[pyfunction]
#[pyo3(signature = (x, dy, temperature=1.0, log=false))]
pub fn softmax_backward<'py>(py: Python<'py>, x: PyReadonlyArray2<'_, f32>, dy: PyReadonlyArray2<'_, f32>, temperature: f32, log: bool) -> PyResult<Bound<'py, PyArray2<f32>>> {
    check_temperature(temperature)?;
    let (m, d) = (mat(&x)?, mat(&dy)?);
    ensure_shape(m.rows == d.rows && m.cols == d.cols, || "x and dy must have the same shape".into())?;
    let out = compute(py, || {
        let mut y = vec![0.0; m.data.len()];
        let mut dx = vec![0.0; m.data.len()];
        if log {
            softmax::log_softmax_rows(m.data, m.cols, temperature, &mut y);
            softmax::log_softmax_backward(&y, d.data, m.cols, temperature, &mut dx);
        } else {
            softmax::softmax_rows(m.data, m.cols, temperature, &mut y);
            softmax::softmax_backward(&y, d.data, m.cols, temperature, &mut dx);
        }
        Ok(dx)
    })?;
    array2(py, m.rows, m.cols, out)
}

/// The batch-mean loss and its gradient w.r.t. `output`.
#[pyfunction]
pub fn loss_and_grad<'py>(py: Python<'py>, name: &str, output: PyReadonlyArray2<'_, f32>, y: &Bound<'py, PyAny>) -> PyResult<(f64, Bound<'py, PyArray2<f32>>)> {
    let loss = Loss::from_name(name)?;
    let y = PyTargets::extract(y)?;
    let (o, t) = (mat(&output)?, y.view()?);
    let (value, grad) = compute(py, || {
        o.check_samples("output")?;
        loss.check_targets(&t, o.rows, o.cols)?;
        let mut g = vec![0.0; o.data.len()];
        let s = loss.evaluate(o, &t, None, None, Some(&mut g));
        Ok((s.mean_loss(), g))
    })?;
    Ok((value, array2(py, o.rows, o.cols, grad)?))
}

/// `a @ b` for 2-D float32 arrays, through the same GEMM the layers use (for
/// benchmarks and for users who want it).
#[pyfunction]
pub fn matmul<'py>(py: Python<'py>, a: PyReadonlyArray2<'_, f32>, b: PyReadonlyArray2<'_, f32>) -> PyResult<Bound<'py, PyArray2<f32>>> {
    let (a, b) = (mat(&a)?, mat(&b)?);
    let (m, n) = (a.rows, b.cols);
    let out = compute(py, || {
        // The output's size is the caller's: reserved fallibly (AllocationError, not an abort).
        let mut c = crate::tensor::Matrix::try_zeros(m, n)?;
        let work = m.saturating_mul(n).saturating_mul(a.cols);
        let run = |c: &mut crate::tensor::Matrix| gemm::matmul(a, gemm::Op::N, b, gemm::Op::N, c.view_mut(), false);
        // Large products run in ferronn's thread pool, small ones on this thread.
        if work >= 1 << 18 {
            crate::threads::install(|| run(&mut c))?;
        } else {
            run(&mut c)?;
        }
        Ok(c.into_vec())
    })?;
    array2(py, m, n, out)
}
