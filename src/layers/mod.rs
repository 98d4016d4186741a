//! Layers: the closed set of kinds a network is built from, dispatched by `match`.
//!
//! A layer does not own its parameters: they live in the network's one flat
//! parameter vector (so the optimizer updates everything in one pass), and a
//! layer only knows its offsets into it. Non-trainable state (BatchNorm's
//! running statistics) lives the same way in a second flat vector, the
//! buffers. A layer does own its workspaces, sized to the largest batch seen.
//!
//! A kind lives in its own file: the layer (a [`LayerKind`]) and its spec
//! struct (a [`BuildLayer`]). The one [`layer_kinds!`] invocation below
//! registers it, generating the [`Layer`] enum, the [`LayerSpec`] enum of
//! model files and the `match`es that dispatch to the kinds.

pub mod activation_layer;
pub mod bidirectional;
#[cfg(test)]
mod bidirectional_tests;
pub mod chain;
pub mod conv;
#[cfg(test)]
mod conv_tests;
#[cfg(test)]
mod conv_winograd_tests;
pub mod dense;
pub(crate) mod dense_rows;
pub mod dropout;
pub mod embedding;
pub mod gated;
pub mod grid;
pub mod kind;
pub mod mask;
pub mod masking;
pub mod norm;
pub mod pool;
#[cfg(test)]
mod pool_mask_tests;
pub mod prelu;
pub mod recurrent;
pub mod recurrent_cells;
mod recurrent_grads;
mod recurrent_pass;
#[cfg(test)]
mod recurrent_tests;
pub mod reshape;
pub mod residual;
#[cfg(test)]
mod sequence_tests;
pub mod spec;
#[cfg(test)]
pub(crate) mod testkit;

use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::regularizer::{Penalty, Regularizer};
use crate::tensor::{MatRef, Matrix};

pub use activation_layer::{ActivationLayer, ActivationLayerSpec, LogSoftmaxSpec, Softmax, SoftmaxSpec};
pub use bidirectional::{Bidirectional, BidirectionalSpec, MergeMode};
pub use chain::Chain;
pub use conv::{Conv, ConvSpec};
pub use dense::{Dense, DenseSpec};
pub use dropout::{Dropout, DropoutSpec};
pub use embedding::{Embedding, EmbeddingSpec};
pub use gated::{Gated, GatedSpec};
pub use kind::{Alloc, BuildLayer, Ctx, LayerKind, ParamInfo};
pub use mask::{MaskFlow, StepMask};
pub use masking::{Masking, MaskingSpec};
pub use norm::{BatchNorm, BatchNormSpec, LayerNorm, LayerNormSpec, RMSNorm, RmsNormSpec};
pub use pool::{Pool, PoolSpec};
pub use prelu::{PRelu, PReluSpec};
pub use recurrent::{CellKind, Recurrent, RecurrentSpec};
pub use reshape::{FlattenSpec, Reshape, ReshapeSpec};
pub use residual::{Residual, ResidualSpec};
pub use spec::{ActivationSpec, InitSpec, WeightSpec};

/// Generates, from one line per kind (`Variant(LayerType) <= Tag(SpecType), ..`):
/// the [`Layer`] enum, the [`LayerSpec`] enum (JSON internally tagged by
/// `"type"`, the tag being the spec variant's name in snake_case), the
/// [`LayerKind`] impl of `Layer` that dispatches to the kind, and
/// `LayerSpec::build` / `LayerSpec::regularizers`. A kind may have several tags
/// (softmax and log_softmax build one `Softmax`).
macro_rules! layer_kinds {
    ($( $var:ident($layer:ty) <= $( $tag:ident($spec:ty) ),+ ; )*) => {
        /// A built layer.
        #[derive(Clone, Debug)]
        pub enum Layer {
            $( $var($layer), )*
        }

        /// The architecture of one layer, as stored in model files: the kind's
        /// spec fields beside `"type": "<tag>"`.
        #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "type", rename_all = "snake_case")]
        pub enum LayerSpec {
            $( $( $tag($spec), )+ )*
        }

        impl LayerSpec {
            /// Builds the layer for inputs of width `in_dim`.
            ///
            /// # Errors
            /// `Error::Config`/`Error::UnknownName` for an invalid spec.
            pub fn build(&self, in_dim: usize, alloc: &mut Alloc) -> Result<Layer> {
                Ok(match self {
                    $( $( LayerSpec::$tag(s) => Layer::$var(s.build(in_dim, alloc)?.into()), )+ )*
                })
            }

            /// The (kernel, bias) regularizers of the kinds that take them.
            pub fn regularizers(&self) -> (Option<Regularizer>, Option<Regularizer>) {
                match self {
                    $( $( LayerSpec::$tag(s) => s.regularizers(), )+ )*
                }
            }

            /// The specs nested inside this one (a residual block's layers).
            pub fn nested(&self) -> &[LayerSpec] {
                match self {
                    $( $( LayerSpec::$tag(s) => s.nested(), )+ )*
                }
            }
        }

        /// Layers in `specs`, nested ones included.
        pub fn layer_count(specs: &[LayerSpec]) -> usize {
            specs.iter().map(|s| 1 + layer_count(s.nested())).sum()
        }

        impl LayerKind for Layer {
            fn out_dim(&self) -> usize {
                match self { $( Layer::$var(l) => l.out_dim(), )* }
            }

            fn params(&self) -> Vec<ParamInfo> {
                match self { $( Layer::$var(l) => l.params(), )* }
            }

            fn buffers(&self) -> Vec<ParamInfo> {
                match self { $( Layer::$var(l) => l.buffers(), )* }
            }

            fn init(&self, params: &mut [f32], buffers: &mut [f32], rng: &mut ChaCha8Rng) {
                match self { $( Layer::$var(l) => l.init(params, buffers, rng), )* }
            }

            fn forward(&mut self, x: MatRef<'_>, params: &[f32], buffers: &[f32], ctx: &Ctx) -> Result<()> {
                match self { $( Layer::$var(l) => l.forward(x, params, buffers, ctx), )* }
            }

            fn update_buffers(&self, buffers: &mut [f32]) {
                match self { $( Layer::$var(l) => l.update_buffers(buffers), )* }
            }

            fn output(&self) -> MatRef<'_> {
                match self { $( Layer::$var(l) => l.output(), )* }
            }

            fn backward(&mut self, x: MatRef<'_>, params: &[f32], grads: &mut [f32], dy: &mut Matrix, dx: Option<&mut Matrix>) -> Result<()> {
                match self { $( Layer::$var(l) => l.backward(x, params, grads, dy, dx), )* }
            }

            fn nested_penalties(&self) -> Vec<Penalty> {
                match self { $( Layer::$var(l) => l.nested_penalties(), )* }
            }

            fn step_width(&self) -> Option<usize> {
                match self { $( Layer::$var(l) => l.step_width(), )* }
            }

            fn row_products_only(&self) -> bool {
                match self { $( Layer::$var(l) => l.row_products_only(), )* }
            }

            fn forward_masked(&mut self, x: MatRef<'_>, params: &[f32], buffers: &[f32], ctx: &Ctx, mask: Option<&StepMask>) -> Result<()> {
                match self { $( Layer::$var(l) => l.forward_masked(x, params, buffers, ctx, mask), )* }
            }

            fn mask_flow(&self) -> MaskFlow {
                match self { $( Layer::$var(l) => l.mask_flow(), )* }
            }

            fn step_mask(&self) -> Option<&StepMask> {
                match self { $( Layer::$var(l) => l.step_mask(), )* }
            }

            fn mask_refusal(&self) -> Option<&'static str> {
                match self { $( Layer::$var(l) => l.mask_refusal(), )* }
            }

            fn set_steps(&mut self, steps: usize) -> Result<()> {
                match self { $( Layer::$var(l) => l.set_steps(steps), )* }
            }
        }
    };
}

// The registry: one line per kind. The spec variant's name is its JSON tag
// (snake_case), so renaming one breaks model files.
layer_kinds! {
    Dense(Dense) <= Dense(DenseSpec);
    Activation(ActivationLayer) <= Activation(ActivationLayerSpec);
    Softmax(Softmax) <= Softmax(SoftmaxSpec), LogSoftmax(LogSoftmaxSpec);
    PRelu(PRelu) <= Prelu(PReluSpec);
    Gated(Gated) <= Gated(GatedSpec);
    Dropout(Dropout) <= Dropout(DropoutSpec);
    BatchNorm(BatchNorm) <= BatchNorm(BatchNormSpec);
    LayerNorm(LayerNorm) <= LayerNorm(LayerNormSpec);
    RmsNorm(RMSNorm) <= RmsNorm(RmsNormSpec);
    Residual(Box<Residual>) <= Residual(ResidualSpec);
    Conv(Conv) <= Conv(ConvSpec);
    Pool(Pool) <= Pool(PoolSpec);
    Reshape(Reshape) <= Flatten(FlattenSpec), Reshape(ReshapeSpec);
    Recurrent(Recurrent) <= Recurrent(RecurrentSpec);
    Embedding(Embedding) <= Embedding(EmbeddingSpec);
    Bidirectional(Box<Bidirectional>) <= Bidirectional(BidirectionalSpec);
    Masking(Masking) <= Masking(MaskingSpec);
}

#[cfg(test)]
mod tests {
    use super::LayerSpec;

    /// Model files written before the kinds described themselves must read
    /// and write back byte for byte: every tag, default and optional field.
    #[test]
    fn spec_json_is_stable() {
        let input = r#"[{"type":"dense","units":3},{"type":"dense","units":3,"activation":{"name":"leaky_relu","alpha":0.2},"kernel_initializer":"he_normal","bias_initializer":{"name":"uniform","low":-0.1,"high":0.1},"kernel_regularizer":{"l1":0.1,"l2":0.2},"bias_regularizer":{"l2":0.3}},{"type":"activation","activation":"relu"},{"type":"softmax"},{"type":"log_softmax","temperature":2.0},{"type":"prelu"},{"type":"prelu","shared":true,"init":0.1},{"type":"gated","units":4,"gate":"sigmoid"},{"type":"gated","units":4,"gate":"silu","kernel_regularizer":{"l2":0.5}},{"type":"dropout","rate":0.5},{"type":"batch_norm"},{"type":"batch_norm","momentum":0.2,"eps":0.001},{"type":"layer_norm"},{"type":"rms_norm"},{"type":"residual","layers":[{"type":"dense","units":2},{"type":"rms_norm","eps":0.01}]}]"#;
        // Written by the enum of struct variants this registry replaced.
        let expected = r#"[{"type":"dense","units":3,"activation":"identity","kernel_initializer":null,"bias_initializer":null},{"type":"dense","units":3,"activation":{"name":"leaky_relu","alpha":0.2},"kernel_initializer":"he_normal","bias_initializer":{"name":"uniform","low":-0.1,"high":0.1},"kernel_regularizer":{"l1":0.1,"l2":0.2},"bias_regularizer":{"l1":0.0,"l2":0.3}},{"type":"activation","activation":"relu"},{"type":"softmax","temperature":1.0},{"type":"log_softmax","temperature":2.0},{"type":"prelu","shared":false,"init":0.25},{"type":"prelu","shared":true,"init":0.1},{"type":"gated","units":4,"gate":"sigmoid","kernel_initializer":null,"bias_initializer":null},{"type":"gated","units":4,"gate":"silu","kernel_initializer":null,"bias_initializer":null,"kernel_regularizer":{"l1":0.0,"l2":0.5}},{"type":"dropout","rate":0.5},{"type":"batch_norm","momentum":0.1,"eps":0.00001},{"type":"batch_norm","momentum":0.2,"eps":0.001},{"type":"layer_norm","eps":0.00001},{"type":"rms_norm","eps":0.000001},{"type":"residual","layers":[{"type":"dense","units":2,"activation":"identity","kernel_initializer":null,"bias_initializer":null},{"type":"rms_norm","eps":0.01}]}]"#;
        let specs: Vec<LayerSpec> = serde_json::from_str(input).unwrap();
        assert_eq!(serde_json::to_string(&specs).unwrap(), expected);
        let again: Vec<LayerSpec> = serde_json::from_str(expected).unwrap();
        assert_eq!(again, specs);
        let regs: Vec<_> = specs.iter().map(|s| s.regularizers()).filter(|r| *r != (None, None)).collect();
        assert_eq!(format!("{regs:?}"), "[(Some(Regularizer { l1: 0.1, l2: 0.2 }), Some(Regularizer { l1: 0.0, l2: 0.3 })), (Some(Regularizer { l1: 0.0, l2: 0.5 }), None)]");
    }
}
