//! Layers: the closed set of kinds a network is built from, dispatched by `match`.
//!
//! A layer does not own its parameters: they live in the network's one flat
//! parameter vector (so the optimizer updates everything in one pass), and a
//! layer only knows its offsets into it. Non-trainable state (BatchNorm's
//! running statistics) lives the same way in a second flat vector, the
//! buffers. A layer does own its workspaces, sized to the largest batch seen.

pub mod activation_layer;
pub mod chain;
pub mod dense;
pub mod dropout;
pub mod gated;
pub mod kind;
pub mod norm;
pub mod prelu;
pub mod residual;
pub mod spec;

use rand_chacha::ChaCha8Rng;

use crate::error::Result;
use crate::tensor::{MatRef, Matrix};

pub use activation_layer::{ActivationLayer, Softmax};
pub use chain::Chain;
pub use dense::Dense;
pub use dropout::Dropout;
pub use gated::Gated;
pub use kind::{Alloc, Ctx, LayerKind, ParamInfo};
pub use norm::{BatchNorm, LayerNorm, RMSNorm};
pub use prelu::PRelu;
pub use residual::Residual;
pub use spec::{ActivationSpec, InitSpec, LayerSpec};

/// A built layer.
#[derive(Clone, Debug)]
pub enum Layer {
    Dense(Dense),
    Activation(ActivationLayer),
    Softmax(Softmax),
    PRelu(PRelu),
    Gated(Gated),
    Dropout(Dropout),
    BatchNorm(BatchNorm),
    LayerNorm(LayerNorm),
    RmsNorm(RMSNorm),
    Residual(Box<Residual>),
}

/// Calls the same method on whichever kind `$layer` holds.
macro_rules! dispatch {
    ($layer:expr, $l:ident => $call:expr) => {
        match $layer {
            Layer::Dense($l) => $call,
            Layer::Activation($l) => $call,
            Layer::Softmax($l) => $call,
            Layer::PRelu($l) => $call,
            Layer::Gated($l) => $call,
            Layer::Dropout($l) => $call,
            Layer::BatchNorm($l) => $call,
            Layer::LayerNorm($l) => $call,
            Layer::RmsNorm($l) => $call,
            Layer::Residual($l) => $call,
        }
    };
}

impl LayerKind for Layer {
    fn out_dim(&self) -> usize {
        dispatch!(self, l => l.out_dim())
    }

    fn params(&self) -> Vec<ParamInfo> {
        dispatch!(self, l => l.params())
    }

    fn buffers(&self) -> Vec<ParamInfo> {
        dispatch!(self, l => l.buffers())
    }

    fn init(&self, params: &mut [f32], buffers: &mut [f32], rng: &mut ChaCha8Rng) {
        dispatch!(self, l => l.init(params, buffers, rng))
    }

    fn forward(&mut self, x: MatRef<'_>, params: &[f32], buffers: &mut [f32], ctx: &Ctx) -> Result<()> {
        dispatch!(self, l => l.forward(x, params, buffers, ctx))
    }

    fn output(&self) -> MatRef<'_> {
        dispatch!(self, l => l.output())
    }

    fn backward(&mut self, x: MatRef<'_>, params: &[f32], grads: &mut [f32], dy: &mut Matrix, dx: Option<&mut Matrix>) -> Result<()> {
        dispatch!(self, l => l.backward(x, params, grads, dy, dx))
    }
}

impl Layer {
    /// Number of trainable scalars.
    pub fn n_params(&self) -> usize {
        self.params().iter().map(ParamInfo::len).sum()
    }
}
