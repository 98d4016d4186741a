//! Masking: marks the time steps of padded sequences `[batch, T, F]` whose
//! features all equal `mask_value` as padding (Keras' `Masking`), zeroes them
//! in its output, and hands the step mask on to the recurrent layers after it,
//! which then skip those steps.

use serde::{Deserialize, Serialize};

use crate::error::{checked_size, ensure_config, ensure_shape, Result};
use crate::layers::kind::{check_backward, BuildLayer};
use crate::layers::{Alloc, Ctx, LayerKind, MaskFlow, ParamInfo, StepMask};
use crate::tensor::{MatRef, Matrix};

/// `{"type": "masking", "mask_value": 0.0, "features": F}`: a step is
/// padding when all its `F` features equal `mask_value`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MaskingSpec {
    #[serde(default)]
    pub mask_value: f32,
    /// Features per time step (the last axis).
    pub features: usize,
}

impl BuildLayer for MaskingSpec {
    type Layer = Masking;

    fn build(&self, in_dim: usize, _alloc: &mut Alloc) -> Result<Masking> {
        let f = self.features;
        ensure_config(self.mask_value.is_finite(), || format!("Masking mask_value must be a finite number, got {}", self.mask_value))?;
        ensure_config(f > 0 && in_dim > 0 && in_dim % f == 0, || {
            format!("Masking with {f} features per step: its input width {in_dim} is not a whole, non-zero number of steps")
        })?;
        Ok(Masking { value: self.mask_value, features: f, steps: in_dim / f, y: Matrix::default(), mask: StepMask::default() })
    }
}

/// A built Masking layer: no parameters; its output is its input with the
/// padded steps zeroed, and it produces the step mask.
#[derive(Clone, Debug)]
pub struct Masking {
    value: f32,
    features: usize,
    steps: usize,
    y: Matrix,
    mask: StepMask,
}

impl LayerKind for Masking {
    fn out_dim(&self) -> usize {
        self.steps * self.features
    }

    fn params(&self) -> Vec<ParamInfo> {
        Vec::new()
    }

    fn forward(&mut self, x: MatRef<'_>, _params: &[f32], _buffers: &[f32], _ctx: &Ctx) -> Result<()> {
        let (t, f) = (self.steps, self.features);
        ensure_shape(x.cols == t * f, || format!("Masking expects sequences of {t} steps of {f} features ({} values per sample), got {}", t * f, x.cols))?;
        self.y.reshape_for(x.rows, t * f)?;
        let value = self.value;
        // A step is real when any feature differs from mask_value (Keras' rule).
        self.mask.fill(x.rows, t, |i, s| x.data[(i * t + s) * f..(i * t + s + 1) * f].iter().any(|&v| v != value))?;
        let keep = self.mask.as_slice();
        for ((out, inp), &k) in self.y.as_mut_slice().chunks_exact_mut(f).zip(x.data.chunks_exact(f)).zip(keep) {
            if k {
                out.copy_from_slice(inp);
            } else {
                out.fill(0.0);
            }
        }
        Ok(())
    }

    fn output(&self) -> MatRef<'_> {
        self.y.view()
    }

    /// `dx = dy` on real steps, 0 on padded ones (their output is the constant 0).
    fn backward(&mut self, x: MatRef<'_>, _params: &[f32], _grads: &mut [f32], dy: &mut Matrix, dx: Option<&mut Matrix>) -> Result<()> {
        let w = self.out_dim();
        check_backward("Masking", x, dy, self.y.rows(), w, w)?;
        let Some(dx) = dx else { return Ok(()) };
        dx.reshape_for(x.rows, w)?;
        let f = self.features;
        for ((out, d), &k) in dx.as_mut_slice().chunks_exact_mut(f).zip(dy.as_slice().chunks_exact(f)).zip(self.mask.as_slice()) {
            if k {
                out.copy_from_slice(d);
            } else {
                out.fill(0.0);
            }
        }
        Ok(())
    }

    fn step_width(&self) -> Option<usize> {
        Some(self.features)
    }

    fn set_steps(&mut self, steps: usize) -> Result<()> {
        ensure_config(steps > 0, || "Masking needs at least one time step, got a zero-length sequence".into())?;
        checked_size(steps, self.features, "Masking input")?;
        self.steps = steps;
        self.y.reshape_for(0, steps * self.features)
    }

    fn mask_flow(&self) -> MaskFlow {
        MaskFlow::Produces
    }

    fn step_mask(&self) -> Option<&StepMask> {
        Some(&self.mask)
    }
}
