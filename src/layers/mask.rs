//! Step masks of padded sequences (Keras' masking): which time steps of each
//! sample are real and which are padding.
//!
//! A producing layer (`Embedding` with `mask_zero`, `Masking`) fills its own
//! [`StepMask`] in its forward pass; the chain hands it to the layers after it
//! while they keep the time axis ([`MaskFlow`]), and a consumer (the recurrent
//! kinds) copies what it needs for its backward pass. The mask is `[batch, T]`,
//! sample-major, indexed by input time step, and grows with the batch like
//! every workspace (fallibly, never shrinking).

use crate::error::{ensure_shape, try_grow, Result};

/// What a layer does with the step mask of its input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MaskFlow {
    /// The time axis ends here (or the kind does not support masks): no mask after it.
    Ends,
    /// The output keeps the time axis step for step: the input's mask carries on.
    Keeps,
    /// The layer makes a new mask ([`crate::layers::LayerKind::step_mask`]).
    Produces,
}

/// `keep[i·T + t]`: whether step `t` of sample `i` is real (not padding).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StepMask {
    rows: usize,
    steps: usize,
    keep: Vec<bool>,
}

impl StepMask {
    /// Sets the mask of `rows` samples of `steps` steps from `keep(i, t)`,
    /// reusing the memory.
    ///
    /// # Errors
    /// `Error::Memory` when it cannot grow (the size was checked by the
    /// layer's own workspaces, which are larger).
    pub fn fill(&mut self, rows: usize, steps: usize, mut keep: impl FnMut(usize, usize) -> bool) -> Result<()> {
        let len = rows * steps;
        try_grow(&mut self.keep, len, "the step mask")?;
        self.keep.clear();
        for i in 0..rows {
            self.keep.extend((0..steps).map(|t| keep(i, t)));
        }
        self.rows = rows;
        self.steps = steps;
        Ok(())
    }

    /// Makes this a copy of `other`, reusing the memory.
    ///
    /// # Errors
    /// As [`StepMask::fill`].
    pub fn copy_from(&mut self, other: &StepMask) -> Result<()> {
        self.fill(other.rows, other.steps, |i, t| other.keep(i, t))
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn steps(&self) -> usize {
        self.steps
    }

    /// Whether step `t` of sample `i` is real.
    pub fn keep(&self, i: usize, t: usize) -> bool {
        self.keep[i * self.steps + t]
    }

    /// The flags, sample-major `[rows, steps]`.
    pub fn as_slice(&self) -> &[bool] {
        &self.keep[..self.rows * self.steps]
    }

    /// `Error::Shape` unless the mask is for `rows` samples of `steps` steps
    /// (`who` names the consuming layer).
    ///
    /// # Errors
    /// As said.
    pub fn check(&self, who: &str, rows: usize, steps: usize) -> Result<()> {
        ensure_shape(self.rows == rows && self.steps == steps, || {
            format!("{who}: its input's step mask is for {} samples of {} steps, the input has {rows} samples of {steps} steps", self.rows, self.steps)
        })
    }
}
