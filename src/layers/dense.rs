//! Fully connected layer `y = f(x·W + b)`.
//!
//! The bias add and the activation run as one pass over the GEMM's output, and
//! the backward pass turns `dy` into `dz` in place, so a layer touches each
//! activation-sized buffer the fewest times possible.
//!
//! On N-D inputs (a sequence `[P, F]`, an image `[H, W, F]`) Dense acts on the
//! last axis, as Keras' does: a sample's row `[P·F]` is `P` contiguous rows of
//! `F`, so the batch is one `[N·P, F]` matrix and the same GEMM serves it.

use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::activation::Activation;
use crate::error::{checked_size, ensure_config, ensure_shape, Result};
use crate::init::Init;
use crate::kernels::gemm::{matmul, Op};
use crate::kernels::join_shares;
use crate::kernels::reduce::col_sums;
use crate::layers::dense_rows::RowPass;
use crate::layers::kind::{check_backward, BuildLayer};
use crate::layers::{ActivationSpec, Alloc, Ctx, LayerKind, MaskFlow, ParamInfo, WeightSpec};
use crate::regularizer::Regularizer;
use crate::tensor::{MatMut, MatRef, Matrix};

/// Backward passes whose two products (`dW = xᵀ·dz` and `dx = dz·Wᵀ`, the
/// same number of multiply-adds each) are at least this large run them at the
/// same time, each on half of the threads ([`join_shares`]), instead of one
/// after the other, each split over all of them: split, a 256×128 layer's
/// products at batch 128 took as long on two threads as on one. Smaller
/// pairs cost less than a fork.
const CONCURRENT_MACS: usize = 1 << 18;

/// `{"type": "dense", "units": .., "activation": ..}`: `y = f(x·W + b)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DenseSpec {
    pub units: usize,
    #[serde(default = "identity")]
    pub activation: ActivationSpec,
    /// The size of the last axis of N-D inputs, when the layer acts on it
    /// (the input width is then a whole number of positions of this size).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_features: Option<usize>,
    #[serde(flatten)]
    pub weights: WeightSpec,
}

fn identity() -> ActivationSpec {
    ActivationSpec::Name("identity".into())
}

impl DenseSpec {
    /// Whether this Dense is linear, so that a following activation layer can
    /// be fused into it.
    ///
    /// # Errors
    /// As [`ActivationSpec::resolve`].
    pub fn is_linear(&self) -> Result<bool> {
        Ok(self.activation.resolve()? == Activation::Identity)
    }

    /// Builds the layer with activation `act` in place of the spec's (the
    /// activation of a following layer fused into this one).
    ///
    /// # Errors
    /// As [`BuildLayer::build`].
    pub fn build_with(&self, in_dim: usize, act: Activation, alloc: &mut Alloc) -> Result<Dense> {
        let (kernel, bias) = self.weights.inits(&act)?;
        let Some(features) = self.in_features else {
            return Dense::new(in_dim, self.units, act, kernel, bias, alloc);
        };
        ensure_config(features > 0 && in_dim % features == 0, || {
            format!("Dense on the last axis of size {features}: its input width {in_dim} is not a whole number of such rows")
        })?;
        let mut dense = Dense::new(features, self.units, act, kernel, bias, alloc)?;
        dense.positions = in_dim / features;
        dense.on_last_axis = true;
        checked_size(dense.positions, self.units, "Dense output (positions x units)")?;
        Ok(dense)
    }
}

impl BuildLayer for DenseSpec {
    type Layer = Dense;

    fn build(&self, in_dim: usize, alloc: &mut Alloc) -> Result<Dense> {
        self.build_with(in_dim, self.activation.resolve()?, alloc)
    }

    fn regularizers(&self) -> (Option<Regularizer>, Option<Regularizer>) {
        self.weights.regularizers()
    }
}

/// A dense layer. `W` is stored `[in_dim, out_dim]` row-major so that the forward
/// product is `x·W` with no transpose.
#[derive(Clone, Debug)]
pub struct Dense {
    in_dim: usize,
    out_dim: usize,
    act: Activation,
    kernel_init: Init,
    bias_init: Init,
    w_off: usize,
    b_off: usize,
    /// Rows of `in_dim` features per sample (1 unless on N-D inputs).
    positions: usize,
    /// Built on the last axis of N-D inputs (`in_features`): any number of positions.
    on_last_axis: bool,
    /// Samples in the last forward pass.
    samples: usize,
    /// Pre-activation `x·W + b` (kept for the activation's derivative).
    z: Matrix,
    /// Post-activation `f(z)`; unused when `f` is the identity.
    a: Matrix,
}

impl Dense {
    /// # Errors
    /// `Error::Config` when `units` or `in_dim` is zero.
    pub fn new(in_dim: usize, units: usize, act: Activation, kernel_init: Init, bias_init: Init, alloc: &mut Alloc) -> Result<Self> {
        ensure_config(units > 0, || "Dense units must be at least 1, got 0".into())?;
        ensure_config(in_dim > 0, || "Dense input width must be at least 1, got 0".into())?;
        let w_off = alloc.params(checked_size(in_dim, units, "Dense weight (inputs x units)")?, "Dense weight")?;
        let b_off = alloc.params(units, "Dense bias")?;
        Ok(Self {
            in_dim,
            out_dim: units,
            act,
            kernel_init,
            bias_init,
            w_off,
            b_off,
            positions: 1,
            on_last_axis: false,
            samples: 0,
            z: Matrix::zeros(0, units),
            a: Matrix::zeros(0, units),
        })
    }

    fn w<'p>(&self, params: &'p [f32]) -> MatRef<'p> {
        MatRef { rows: self.in_dim, cols: self.out_dim, data: &params[self.w_off..self.b_off] }
    }

    fn is_identity(&self) -> bool {
        self.act == Activation::Identity
    }

    /// Values in the weight matrix.
    pub(crate) fn weight_len(&self) -> usize {
        self.in_dim * self.out_dim
    }

    /// Sizes the buffers for `samples` samples of `rows` rows in all, and
    /// hands them out with the pass that fills them: `(pass, z, a)`, `a`
    /// empty for the identity.
    ///
    /// # Errors
    /// `Error::Memory` when a buffer cannot grow.
    pub(crate) fn buffers_for(&mut self, samples: usize, rows: usize) -> Result<(RowPass, &mut [f32], &mut [f32])> {
        self.z.resize_rows(rows)?;
        if !self.is_identity() {
            self.a.resize_rows(rows)?;
        }
        self.samples = samples;
        let pass = RowPass { in_dim: self.in_dim, out_dim: self.out_dim, act: self.act, w_off: self.w_off, b_off: self.b_off };
        let a = if self.is_identity() { &mut [][..] } else { self.a.as_mut_slice() };
        Ok((pass, self.z.as_mut_slice(), a))
    }
}

impl LayerKind for Dense {
    fn out_dim(&self) -> usize {
        self.positions * self.out_dim
    }

    /// On flat inputs only: on N-D ones each sample is many rows.
    fn row_products_only(&self) -> bool {
        self.positions == 1 && !self.on_last_axis
    }

    fn params(&self) -> Vec<ParamInfo> {
        vec![ParamInfo::new("weight", self.w_off, vec![self.in_dim, self.out_dim]), ParamInfo::new("bias", self.b_off, vec![self.out_dim])]
    }

    fn init(&self, params: &mut [f32], _buffers: &mut [f32], rng: &mut ChaCha8Rng) {
        let (w, rest) = params[self.w_off..].split_at_mut(self.in_dim * self.out_dim);
        self.kernel_init.fill(w, self.in_dim, self.out_dim, rng);
        self.bias_init.fill(&mut rest[..self.out_dim], self.in_dim, self.out_dim, rng);
    }

    /// # Errors
    /// `Error::Shape` when `x` is not `[batch, in_dim]`.
    fn forward(&mut self, x: MatRef<'_>, params: &[f32], _buffers: &[f32], _ctx: &Ctx) -> Result<()> {
        ensure_shape(x.cols == self.in_dim * self.positions, || format!("Dense expects inputs of width {}, got {}", self.in_dim * self.positions, x.cols))?;
        let rows = checked_size(x.rows, self.positions, "Dense rows")?;
        let (pass, z, a) = self.buffers_for(x.rows, rows)?;
        pass.run(MatRef { rows, cols: pass.in_dim, data: x.data }, params, z, a)
    }

    fn output(&self) -> MatRef<'_> {
        let data = if self.is_identity() { self.z.as_slice() } else { self.a.as_slice() };
        MatRef { rows: self.samples, cols: self.positions * self.out_dim, data }
    }

    fn step_width(&self) -> Option<usize> {
        self.on_last_axis.then_some(self.in_dim)
    }

    /// On the last axis of sequences the time axis stays, and its mask with it.
    fn mask_flow(&self) -> MaskFlow {
        if self.on_last_axis {
            MaskFlow::Keeps
        } else {
            MaskFlow::Ends
        }
    }

    fn set_steps(&mut self, steps: usize) -> Result<()> {
        ensure_config(steps > 0, || "Dense on the last axis needs at least one position, got none".into())?;
        checked_size(steps, self.in_dim.max(self.out_dim), "Dense rows (positions x features)")?;
        self.positions = steps;
        self.samples = 0;
        Ok(())
    }

    /// `dz = dy ⊙ f'(z)` (in place in `dy`), then `db = Σ_rows dz`, `dW = xᵀ·dz`,
    /// `dx = dz·Wᵀ`. Parameter gradients overwrite their slots in `grads`.
    ///
    /// # Errors
    /// `Error::Shape` when `x` or `dy` do not match the last forward pass.
    fn backward(&mut self, x: MatRef<'_>, params: &[f32], grads: &mut [f32], dy: &mut Matrix, dx: Option<&mut Matrix>) -> Result<()> {
        check_backward("Dense", x, dy, self.samples, self.in_dim * self.positions, self.out_dim * self.positions)?;
        let rows = self.z.rows();
        let x = MatRef { rows, cols: self.in_dim, data: x.data };
        if !self.is_identity() {
            self.act.backward(self.z.as_slice(), self.a.as_slice(), dy.as_mut_slice());
        }
        let (gw, gb) = grads[self.w_off..self.b_off + self.out_dim].split_at_mut(self.in_dim * self.out_dim);
        let dz = MatRef { rows, cols: self.out_dim, data: dy.as_slice() };
        let gw = MatMut::new(self.in_dim, self.out_dim, gw)?;
        let weight_grads = || {
            col_sums(dz.data, gb);
            matmul(x, Op::T, dz, Op::N, gw, false)
        };
        let Some(dx) = dx else {
            return weight_grads();
        };
        dx.reshape_for(self.samples, self.in_dim * self.positions)?;
        let dx = MatMut { rows, cols: self.in_dim, data: dx.as_mut_slice() };
        let input_grads = || matmul(dz, Op::N, self.w(params), Op::T, dx, false);
        if rows.saturating_mul(self.in_dim).saturating_mul(self.out_dim) < CONCURRENT_MACS {
            weight_grads()?;
            return input_grads();
        }
        // The two products have the same size: each takes half of the threads.
        let (w, i) = join_shares(weight_grads, input_grads);
        w.and(i)
    }
}
