//! Flatten and Reshape: the values of a sample stay where they are.
//!
//! The core stores a sample as the row-major flattening of its shape in the
//! layout in use, so flattening `[h, w, c]` (or `[c, h, w]`) and reshaping to
//! another shape with the same count change only what Python calls the shape.
//! The layer still copies its input into its own output (a layer owns the
//! buffer `output()` returns); that copy is one pass over the activations.

use serde::{Deserialize, Serialize};

use crate::error::{checked_size, ensure_config, ensure_shape, Result};
use crate::layers::kind::{check_backward, BuildLayer};
use crate::layers::{Alloc, Ctx, LayerKind, ParamInfo};
use crate::tensor::{MatRef, Matrix};

/// `{"type": "flatten"}`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FlattenSpec {}

/// `{"type": "reshape", "shape": [..]}`: the per-sample target shape.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReshapeSpec {
    pub shape: Vec<usize>,
}

impl BuildLayer for FlattenSpec {
    type Layer = Reshape;

    fn build(&self, in_dim: usize, _alloc: &mut Alloc) -> Result<Reshape> {
        Ok(Reshape::new(in_dim))
    }
}

impl BuildLayer for ReshapeSpec {
    type Layer = Reshape;

    fn build(&self, in_dim: usize, _alloc: &mut Alloc) -> Result<Reshape> {
        ensure_config(!self.shape.is_empty(), || "Reshape needs a target shape with at least one axis".into())?;
        let count = self.shape.iter().try_fold(1usize, |acc, &s| checked_size(acc, s, "Reshape target shape"))?;
        ensure_config(count == in_dim, || format!("Reshape to {:?} needs {count} values per sample, its input has {in_dim}", self.shape))?;
        Ok(Reshape::new(in_dim))
    }
}

/// A built Flatten or Reshape: the identity on each sample's values.
#[derive(Clone, Debug)]
pub struct Reshape {
    dim: usize,
    y: Matrix,
}

impl Reshape {
    fn new(dim: usize) -> Self {
        Self { dim, y: Matrix::zeros(0, dim) }
    }
}

impl LayerKind for Reshape {
    fn out_dim(&self) -> usize {
        self.dim
    }

    fn params(&self) -> Vec<ParamInfo> {
        Vec::new()
    }

    fn forward(&mut self, x: MatRef<'_>, _params: &[f32], _buffers: &[f32], _ctx: &Ctx) -> Result<()> {
        ensure_shape(x.cols == self.dim, || format!("Flatten/Reshape expects inputs of {} values per sample, got {}", self.dim, x.cols))?;
        self.y.resize_rows(x.rows)?;
        self.y.as_mut_slice().copy_from_slice(x.data);
        Ok(())
    }

    fn output(&self) -> MatRef<'_> {
        self.y.view()
    }

    fn backward(&mut self, x: MatRef<'_>, _params: &[f32], _grads: &mut [f32], dy: &mut Matrix, dx: Option<&mut Matrix>) -> Result<()> {
        check_backward("Flatten/Reshape", x, dy, self.y.rows(), self.dim, self.dim)?;
        if let Some(dx) = dx {
            dx.reshape_for(dy.rows(), self.dim)?;
            dx.as_mut_slice().copy_from_slice(dy.as_slice());
        }
        Ok(())
    }
}
