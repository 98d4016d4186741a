//! numpy ↔ core conversions. Python has already made inputs C-contiguous
//! float32 / int64 (see `ferronn/_validate.py`); these only borrow them.

use numpy::{Element, PyReadonlyArray, PyReadonlyArray1, PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::prelude::*;

use crate::error::Error;
use crate::loss::Targets;
use crate::tensor::MatRef;

/// The values of a C-contiguous array, in row-major order; `Error::Shape`
/// with `message` otherwise. (`as_slice` alone also accepts a Fortran-ordered
/// array, whose values it would hand over column by column.)
pub fn c_slice<'a, T: Element, D: numpy::ndarray::Dimension>(a: &'a PyReadonlyArray<'_, T, D>, message: &str) -> PyResult<&'a [T]> {
    if !a.is_c_contiguous() {
        return Err(Error::Shape(message.into()).into());
    }
    Ok(a.as_slice().map_err(|_| Error::Shape(message.into()))?)
}

/// Borrows a 2-D float32 array as a matrix view.
pub fn mat<'a>(a: &'a PyReadonlyArray2<'_, f32>) -> PyResult<MatRef<'a>> {
    let (rows, cols) = (a.shape()[0], a.shape()[1]);
    let data = c_slice(a, "expected a C-contiguous float32 array")?;
    Ok(MatRef { rows, cols, data })
}

/// Targets passed from Python: int64 labels or a float32 matrix.
pub enum PyTargets<'py> {
    Labels(PyReadonlyArray1<'py, i64>),
    Values(PyReadonlyArray2<'py, f32>),
    /// `[N, T]` int64: per-step labels of sequences.
    Steps(PyReadonlyArray2<'py, i64>),
}

impl<'py> PyTargets<'py> {
    pub fn extract(y: &Bound<'py, PyAny>) -> PyResult<Self> {
        if let Ok(l) = y.extract::<PyReadonlyArray1<'py, i64>>() {
            return Ok(PyTargets::Labels(l));
        }
        if let Ok(v) = y.extract::<PyReadonlyArray2<'py, f32>>() {
            return Ok(PyTargets::Values(v));
        }
        if let Ok(s) = y.extract::<PyReadonlyArray2<'py, i64>>() {
            return Ok(PyTargets::Steps(s));
        }
        Err(Error::Shape("y must be a 1-D int64 array of labels, a 2-D int64 array of per-step labels or a 2-D float32 array of targets".into()).into())
    }

    pub fn view(&self) -> PyResult<Targets<'_>> {
        match self {
            PyTargets::Labels(l) => {
                Ok(Targets::Labels(l.as_slice().map_err(|_| Error::Shape("labels must be C-contiguous".into()))?))
            }
            PyTargets::Values(v) => Ok(Targets::Values(mat(v)?)),
            PyTargets::Steps(s) => {
                let steps = s.shape()[1];
                let labels = c_slice(s, "labels must be C-contiguous")?;
                if steps == 0 {
                    return Err(Error::Shape("per-step labels need at least one step".into()).into());
                }
                Ok(Targets::Steps { labels, steps })
            }
        }
    }
}
