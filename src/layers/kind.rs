//! What every layer kind provides, and the per-call context it runs in.
//!
//! The `Layer` enum (layers/mod.rs) dispatches to these methods with `match`;
//! the trait only keeps the kinds' signatures identical and gives the common
//! defaults (no buffers, nothing to initialise). [`BuildLayer`] is the other
//! half of a kind: its spec struct, and how a layer is built from it.

use rand_chacha::ChaCha8Rng;

use crate::error::{ensure_shape, Error, Result};
use crate::init::rng_for;
use crate::regularizer::{Penalty, Regularizer};
use crate::layers::mask::{MaskFlow, StepMask};
use crate::layers::LayerSpec;
use crate::tensor::{MatRef, Matrix};

/// A named tensor of a layer: offset into the network's flat parameter vector
/// (or its buffer vector, for non-trainable state such as running statistics)
/// and its shape. Names are relative to the layer (`weight`, `block.0.bias`).
#[derive(Clone, Debug, PartialEq)]
pub struct ParamInfo {
    pub name: String,
    pub offset: usize,
    pub shape: Vec<usize>,
}

impl ParamInfo {
    pub fn new(name: impl Into<String>, offset: usize, shape: Vec<usize>) -> Self {
        Self { name: name.into(), offset, shape }
    }

    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn range(&self) -> std::ops::Range<usize> {
        self.offset..self.offset + self.len()
    }
}

/// Random stream base for dropout masks (weights use 0, shuffles 1).
const STREAM_DROPOUT: u64 = 1 << 32;

/// How a forward pass runs: training or inference mode, and the seed and
/// optimizer step that make dropout masks reproducible (the same seed and step
/// give the same mask, also after a save and load).
#[derive(Clone, Copy, Debug, Default)]
pub struct Ctx {
    pub training: bool,
    pub seed: u64,
    pub step: u64,
}

impl Ctx {
    pub fn inference() -> Self {
        Self { training: false, seed: 0, step: 0 }
    }

    /// The generator for layer `uid` at this step.
    pub fn rng(&self, uid: u64) -> ChaCha8Rng {
        rng_for(self.seed ^ self.step.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15), STREAM_DROPOUT + uid)
    }
}

/// Offsets handed out while a network is built: each layer takes its
/// parameters and buffers from the running offsets, and a unique id (its
/// random stream).
///
/// The sizes come from a user's spec or a model file, so every reservation is
/// checked: the running totals never wrap and never exceed what a `Vec<f32>`
/// can address. Building reserves only offsets; the network allocates the
/// totals afterwards, so it can compare them with what a file holds first.
#[derive(Clone, Debug, Default)]
pub struct Alloc {
    pub params: usize,
    pub buffers: usize,
    pub uid: u64,
}

/// The most `f32` values one vector can hold (its byte size must fit `isize`).
const MAX_VALUES: usize = isize::MAX as usize / std::mem::size_of::<f32>();

impl Alloc {
    /// Reserves `n` parameters for `what` (e.g. "Dense weight"); returns their offset.
    ///
    /// # Errors
    /// `Error::Config` naming `what` when the total overflows.
    pub fn params(&mut self, n: usize, what: &str) -> Result<usize> {
        take(&mut self.params, n, what)
    }

    /// Reserves `n` buffer values for `what`; returns their offset.
    ///
    /// # Errors
    /// As [`Alloc::params`].
    pub fn buffers(&mut self, n: usize, what: &str) -> Result<usize> {
        take(&mut self.buffers, n, what)
    }

    pub fn uid(&mut self) -> u64 {
        let at = self.uid;
        self.uid += 1;
        at
    }
}

fn take(counter: &mut usize, n: usize, what: &str) -> Result<usize> {
    let at = *counter;
    *counter = at.checked_add(n).filter(|&e| e <= MAX_VALUES).ok_or_else(|| Error::Config(format!("{what} is too large: {n} values after {at} overflow the address space")))?;
    Ok(at)
}

/// `Error::Shape` unless `x` is the `[rows, in_dim]` input and `dy` the
/// `[rows, out_dim]` output gradient of the last forward pass: the check every
/// kind's backward starts with.
pub fn check_backward(kind: &str, x: MatRef<'_>, dy: &Matrix, rows: usize, in_dim: usize, out_dim: usize) -> Result<()> {
    ensure_shape(x.rows == rows && x.cols == in_dim, || {
        format!("{kind} backward: input is {}x{}, the last forward pass had {rows}x{in_dim}", x.rows, x.cols)
    })?;
    ensure_shape(dy.rows() == rows && dy.cols() == out_dim, || {
        format!("{kind} backward: output gradient is {}x{}, expected {rows}x{out_dim}", dy.rows(), dy.cols())
    })
}

/// The operations of one layer kind.
///
/// `params`/`grads` are the network's whole flat vectors (a layer indexes them
/// by its own offsets); `buffers` likewise. A layer owns its output workspace,
/// sized to the largest batch seen.
pub trait LayerKind {
    fn out_dim(&self) -> usize;

    /// Trainable tensors, in a fixed order.
    fn params(&self) -> Vec<ParamInfo>;

    /// Non-trainable state (running statistics), in a fixed order.
    fn buffers(&self) -> Vec<ParamInfo> {
        Vec::new()
    }

    /// Writes initial values of the layer's parameters and buffers.
    fn init(&self, _params: &mut [f32], _buffers: &mut [f32], _rng: &mut ChaCha8Rng) {}

    /// Runs the layer on `x` (`[batch, in_dim]`); the result is then in `output()`.
    /// `buffers` (running statistics) are only read: inference runs through a
    /// shared network, many threads at once, each with its own workspaces. A
    /// training-mode pass folds its batch statistics into them afterwards, in
    /// [`LayerKind::update_buffers`].
    ///
    /// # Errors
    /// `Error::Shape` when `x` has the wrong width.
    fn forward(&mut self, x: MatRef<'_>, params: &[f32], buffers: &[f32], ctx: &Ctx) -> Result<()>;

    /// After a training-mode `forward`, updates the running statistics in
    /// `buffers` from that pass's batch statistics (BatchNorm's momentum
    /// update); nothing for kinds without buffers, or after an inference pass.
    fn update_buffers(&self, _buffers: &mut [f32]) {}

    fn output(&self) -> MatRef<'_>;

    /// Back-propagates `dy` (gradient w.r.t. the output of the last forward on
    /// `x`; may be overwritten as scratch). Writes (overwrites, never adds) this
    /// layer's parameter gradients into their slots of `grads`, and the gradient
    /// w.r.t. `x` into `dx` when asked (reshaping `dx` to `[batch, in_dim]`).
    ///
    /// # Errors
    /// `Error::Shape` when `x` or `dy` do not match the last forward pass.
    fn backward(&mut self, x: MatRef<'_>, params: &[f32], grads: &mut [f32], dy: &mut Matrix, dx: Option<&mut Matrix>) -> Result<()>;

    /// For kinds that work step by step along a sequence's time axis, and so
    /// take any number of steps (recurrent layers, Embedding, Dense on the last
    /// axis, elementwise layers): the width of one step of their input. `None`
    /// (the default): the kind takes only the width it was built for.
    fn step_width(&self) -> Option<usize> {
        None
    }

    /// Whether this layer's inference forward is at most one product of its
    /// sample rows by a row-major weight plus elementwise passes (a Dense
    /// layer on flat inputs, activations, dropout): a small batch through
    /// such layers alone runs faster on the calling thread and the helper
    /// thread than through the pool (`crate::infer`). `false` (the default)
    /// keeps the pool: convolutions and recurrences do much more work per row.
    fn row_products_only(&self) -> bool {
        false
    }

    /// Re-targets a kind with a [`LayerKind::step_width`] at `steps` time steps
    /// per sample; `out_dim` follows. Nothing is allocated: workspaces grow at
    /// the next forward pass (and never shrink), so alternating lengths reuse them.
    ///
    /// # Errors
    /// `Error::Config` when the sizes for `steps` overflow.
    fn set_steps(&mut self, _steps: usize) -> Result<()> {
        Ok(())
    }

    /// [`LayerKind::forward`] for an input that carries the step mask of
    /// padded sequences (`None`: every step is real). Only the kinds that
    /// consume masks (the recurrent ones, the global 1-D average pool) override it; they keep what their
    /// backward pass needs, so `backward` takes no mask.
    ///
    /// # Errors
    /// As [`LayerKind::forward`], and `Error::Shape` for a mask of another shape.
    fn forward_masked(&mut self, x: MatRef<'_>, params: &[f32], buffers: &[f32], ctx: &Ctx, _mask: Option<&StepMask>) -> Result<()> {
        self.forward(x, params, buffers, ctx)
    }

    /// Whether the step mask of this layer's input carries on to its output
    /// (see [`MaskFlow`]). Default: it ends here, as for every kind that
    /// does not keep the time axis step for step.
    fn mask_flow(&self) -> MaskFlow {
        MaskFlow::Ends
    }

    /// A producing kind's mask, made by its last forward pass.
    fn step_mask(&self) -> Option<&StepMask> {
        None
    }

    /// Why a step mask of padded sequences must not reach this layer, or
    /// `None` (the default: the kind passes the mask on, uses it, or ends it,
    /// each as Keras 3 does). A kind that Keras would mask but this one cannot
    /// (its output would silently count the padded steps), or one that would
    /// read the mask along the wrong axis, says why; [`crate::layers::Chain::build`]
    /// then refuses the network with `Error::Config`.
    fn mask_refusal(&self) -> Option<&'static str> {
        None
    }

    /// L1/L2 penalties of layers nested inside this one (a residual block's);
    /// the chain that holds this layer collects its own layers' penalties itself.
    fn nested_penalties(&self) -> Vec<Penalty> {
        Vec::new()
    }
}

/// A layer kind's spec (its part of a model file's JSON) and how to build the
/// layer from it, as burn's `Config::init`. Registered once in layers/mod.rs.
pub trait BuildLayer {
    /// The layer this spec builds.
    type Layer;

    /// Builds the layer for inputs of width `in_dim`, taking its tensor offsets
    /// (and random stream id) from `alloc`.
    ///
    /// # Errors
    /// `Error::Config`/`Error::UnknownName` for an invalid spec.
    fn build(&self, in_dim: usize, alloc: &mut Alloc) -> Result<Self::Layer>;

    /// The (kernel, bias) regularizers, for the kinds that take them: applied to
    /// the layer's tensors named `weight` and `bias`.
    fn regularizers(&self) -> (Option<Regularizer>, Option<Regularizer>) {
        (None, None)
    }

    /// The specs of the layers nested inside this one (a residual block's).
    fn nested(&self) -> &[LayerSpec] {
        &[]
    }
}
