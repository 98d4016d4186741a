//! Step masks of padded sequences (Keras' masking): which time steps of each
//! sample are real and which are padding.
//!
//! A producing layer (`Embedding` with `mask_zero`, `Masking`) fills its own
//! [`StepMask`] in its forward pass; the chain hands it to the layers after it
//! while they keep the time axis ([`MaskFlow`]), and a consumer (the recurrent
//! kinds) copies what it needs for its backward pass. The mask is `[batch, T]`,
//! sample-major, indexed by input time step, and grows with the batch like
//! every workspace (fallibly, never shrinking).

use crate::error::{ensure_shape, try_grow, Error, Result};
use crate::layers::{Layer, LayerKind};

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

/// `Error::Config` when the step mask of a producer reaches a layer that
/// refuses it ([`LayerKind::mask_refusal`]), walking the mask as
/// [`crate::layers::Chain::run`] hands it on (`(spec index, layer)` pairs, in
/// order). The core so rejects by itself what the Python package's
/// `_mask_flow.check_mask_flow` rejects before building, for networks whose
/// spec comes straight to the core; layers that merely end the mask (Keras 3
/// warns there) stay allowed.
///
/// # Errors
/// As said, naming the layer and the producer.
pub fn check_mask_flow<'a>(layers: impl IntoIterator<Item = (usize, &'a Layer)>) -> Result<()> {
    let mut source: Option<usize> = None;
    for (i, layer) in layers {
        let flow = layer.mask_flow();
        if let (Some(j), true) = (source, flow != MaskFlow::Produces) {
            if let Some(why) = layer.mask_refusal() {
                return Err(Error::Config(format!("layer {i} is reached by the step mask of padded sequences made by layer {j}: {why}")));
            }
        }
        source = match flow {
            MaskFlow::Ends => None,
            MaskFlow::Keeps => source,
            MaskFlow::Produces => Some(i),
        };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::error::Error;
    use crate::layers::{Alloc, Chain, LayerSpec};

    fn chain(json: &str) -> crate::error::Result<Chain> {
        let specs: Vec<LayerSpec> = serde_json::from_str(json).unwrap();
        Chain::build(&specs, 8, &mut Alloc::default())
    }

    /// A mask reaching BatchNorm or PReLU (through a layer that keeps it) is refused at
    /// build; ended first (Flatten) or never made, the same layers build.
    #[test]
    fn a_mask_reaching_a_layer_that_refuses_it_is_a_config_error() {
        for (bad, kind) in [(r#"{"type":"batch_norm"}"#, "BatchNorm"), (r#"{"type":"prelu"}"#, "PReLU")] {
            let err = chain(&format!(r#"[{{"type":"masking","features":2}},{{"type":"dropout","rate":0.1}},{bad}]"#)).unwrap_err();
            assert!(matches!(&err, Error::Config(m) if m.starts_with(&format!("layer 2 is reached by the step mask of padded sequences made by layer 0: {kind}"))), "{err}");
            chain(&format!(r#"[{{"type":"masking","features":2}},{{"type":"flatten"}},{bad}]"#)).unwrap();
            chain(&format!(r#"[{{"type":"dropout","rate":0.1}},{bad}]"#)).unwrap();
        }
    }
}
