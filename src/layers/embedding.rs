//! Embedding: integer token ids `[batch, T]` to their rows of a learned table,
//! `[batch, T, output_dim]`.
//!
//! Ids travel in the network's `f32` rows, so they are exact for ids below
//! 2^24; an id that is not a whole number in `[0, input_dim)` is an
//! `Error::Label` naming it, checked before anything is written. The table's
//! gradient adds each position's output gradient into its id's row in input
//! order, one thread, so repeated ids sum the same way every time.

use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::{checked_size, ensure_config, ensure_shape, Error, Result};
use crate::init::Init;
use crate::layers::kind::{check_backward, BuildLayer};
use crate::layers::{Alloc, Ctx, InitSpec, LayerKind, MaskFlow, ParamInfo, StepMask};
use crate::tensor::{MatRef, Matrix};

/// Ids above this are not all representable in `f32`.
const MAX_EXACT_ID: usize = 1 << 24;

/// `{"type": "embedding", "input_dim": .., "output_dim": .., "length": T}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EmbeddingSpec {
    pub input_dim: usize,
    pub output_dim: usize,
    /// Tokens per sample (`T`); the spec is built for this input width.
    pub length: usize,
    /// Keras' default: uniform on [-0.05, 0.05].
    #[serde(default)]
    pub embeddings_initializer: Option<InitSpec>,
    /// Id 0 is padding (Keras' `mask_zero`): the layer produces the step
    /// mask `id != 0` for the recurrent layers after it.
    #[serde(default, skip_serializing_if = "is_false")]
    pub mask_zero: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl EmbeddingSpec {
    /// `Error::Label` naming the first id in `x` that is not a whole number
    /// in `[0, input_dim)`.
    ///
    /// # Errors
    /// As said.
    pub fn check_ids(&self, x: MatRef<'_>) -> Result<()> {
        check_ids(x.data, self.input_dim, x.cols)
    }
}

fn check_ids(ids: &[f32], vocab: usize, cols: usize) -> Result<()> {
    match ids.iter().position(|&v| !(v >= 0.0 && v.fract() == 0.0 && (v as usize) < vocab)) {
        None => Ok(()),
        Some(at) => Err(Error::Label(format!(
            "Embedding token ids must be whole numbers in [0, {vocab}); sample {}, position {} holds {}",
            at / cols.max(1),
            at % cols.max(1),
            ids[at]
        ))),
    }
}

impl BuildLayer for EmbeddingSpec {
    type Layer = Embedding;

    fn build(&self, in_dim: usize, alloc: &mut Alloc) -> Result<Embedding> {
        let (v, d, t) = (self.input_dim, self.output_dim, self.length);
        ensure_config(v > 0 && d > 0, || format!("Embedding input_dim and output_dim must be at least 1, got {v} and {d}"))?;
        ensure_config(v <= MAX_EXACT_ID, || format!("Embedding input_dim may be at most {MAX_EXACT_ID} (ids travel as float32), got {v}"))?;
        ensure_config(t == in_dim && t > 0, || format!("Embedding was built for sequences of {t} tokens, but its input has {in_dim} values per sample"))?;
        checked_size(t, d, "Embedding output")?;
        let init = self.embeddings_initializer.as_ref().map(InitSpec::resolve).transpose()?.unwrap_or(Init::Uniform { low: -0.05, high: 0.05 });
        let offset = alloc.params(checked_size(v, d, "Embedding table")?, "Embedding table")?;
        Ok(Embedding { vocab: v, dim: d, length: t, init, offset, out: Matrix::default(), mask_zero: self.mask_zero, mask: StepMask::default() })
    }
}

/// A built embedding table, `weight` `[input_dim, output_dim]` (PyTorch's
/// `weight`, Keras' `embeddings`).
#[derive(Clone, Debug)]
pub struct Embedding {
    vocab: usize,
    dim: usize,
    length: usize,
    init: Init,
    offset: usize,
    out: Matrix,
    mask_zero: bool,
    /// With `mask_zero`: which tokens of the last forward pass are not 0.
    mask: StepMask,
}

impl LayerKind for Embedding {
    fn out_dim(&self) -> usize {
        self.length * self.dim
    }

    fn params(&self) -> Vec<ParamInfo> {
        vec![ParamInfo::new("weight", self.offset, vec![self.vocab, self.dim])]
    }

    fn init(&self, params: &mut [f32], _buffers: &mut [f32], rng: &mut ChaCha8Rng) {
        self.init.fill(&mut params[self.offset..self.offset + self.vocab * self.dim], self.vocab, self.dim, rng);
    }

    fn forward(&mut self, x: MatRef<'_>, params: &[f32], _buffers: &[f32], _ctx: &Ctx) -> Result<()> {
        ensure_shape(x.cols == self.length, || format!("Embedding expects {} token ids per sample, got {}", self.length, x.cols))?;
        check_ids(x.data, self.vocab, x.cols)?;
        self.out.reshape_for(x.rows, self.out_dim())?;
        let d = self.dim;
        let table = &params[self.offset..self.offset + self.vocab * d];
        for (o, &id) in self.out.as_mut_slice().chunks_exact_mut(d).zip(x.data) {
            let id = id as usize;
            o.copy_from_slice(&table[id * d..(id + 1) * d]);
        }
        if self.mask_zero {
            let t = self.length;
            self.mask.fill(x.rows, t, |i, s| x.data[i * t + s] != 0.0)?;
        }
        Ok(())
    }

    fn output(&self) -> MatRef<'_> {
        self.out.view()
    }

    fn step_width(&self) -> Option<usize> {
        Some(1)
    }

    fn mask_flow(&self) -> MaskFlow {
        if self.mask_zero {
            MaskFlow::Produces
        } else {
            MaskFlow::Ends
        }
    }

    fn step_mask(&self) -> Option<&StepMask> {
        self.mask_zero.then_some(&self.mask)
    }

    fn set_steps(&mut self, steps: usize) -> Result<()> {
        ensure_config(steps > 0, || "Embedding needs at least one token per sample, got a zero-length sequence".into())?;
        checked_size(steps, self.dim, "Embedding output")?;
        self.length = steps;
        self.out.reshape_for(0, steps * self.dim)
    }

    /// Ids are not differentiable: `dx`, when asked, is zeros.
    fn backward(&mut self, x: MatRef<'_>, _params: &[f32], grads: &mut [f32], dy: &mut Matrix, dx: Option<&mut Matrix>) -> Result<()> {
        check_backward("Embedding", x, dy, self.out.rows(), self.length, self.out_dim())?;
        let d = self.dim;
        let g = &mut grads[self.offset..self.offset + self.vocab * d];
        g.fill(0.0);
        for (row, &id) in dy.as_slice().chunks_exact(d).zip(x.data) {
            let id = id as usize;
            g[id * d..(id + 1) * d].iter_mut().zip(row).for_each(|(a, b)| *a += b);
        }
        if let Some(dx) = dx {
            dx.reshape_for(x.rows, x.cols)?;
            dx.as_mut_slice().fill(0.0);
        }
        Ok(())
    }
}
