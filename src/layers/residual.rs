//! Residual (skip) connection `y = x + block(x)` (He et al. 2016).
//!
//! The identity path carries the gradient straight back to earlier layers,
//! which is what lets deep stacks train. When the block changes the width, a
//! learned projection takes the identity's place: on flat inputs the core makes
//! a linear `x·P + c`; on images the spec states it (Python writes a 1x1 strided
//! convolution, optionally followed by a BatchNorm: the "downsample" of
//! PyTorch's and Keras' ResNet basic blocks), built here as a chain.

use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::activation::Activation;
use crate::error::{ensure_config, ensure_shape, Result};
use crate::init::Init;
use crate::layers::kind::{check_backward, BuildLayer};
use crate::layers::{Alloc, Chain, Ctx, Dense, LayerKind, LayerSpec, ParamInfo};
use crate::regularizer::Penalty;
use crate::tensor::{MatRef, Matrix};

/// `{"type": "residual", "layers": [..], "projection": [..]}`:
/// `y = skip(x) + block(x)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResidualSpec {
    /// The block, built as a chain (so a Dense and its activation fuse here too).
    pub layers: Vec<LayerSpec>,
    /// The skip path's layers, when given; absent, the skip is the identity,
    /// or a linear Dense the core makes when the block changes the width.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub projection: Option<Vec<LayerSpec>>,
}

impl BuildLayer for ResidualSpec {
    type Layer = Residual;

    fn build(&self, in_dim: usize, alloc: &mut Alloc) -> Result<Residual> {
        Residual::with_projection(in_dim, &self.layers, self.projection.as_deref(), alloc)
    }

    fn nested(&self) -> &[LayerSpec] {
        &self.layers
    }
}

/// What the skip path computes.
#[derive(Clone, Debug)]
enum Skip {
    Identity,
    /// The core's own `x·P + c` for a flat block that changes the width.
    Dense(Dense),
    /// Layers the spec gave (a 1x1 strided convolution, maybe a BatchNorm).
    Chain(Chain),
}

/// A block with a skip connection around it.
#[derive(Clone, Debug)]
pub struct Residual {
    in_dim: usize,
    block: Chain,
    projection: Skip,
    out: Matrix,
    /// The block's copy of the output gradient (its backward overwrites it).
    dy_block: Matrix,
    scratch: Matrix,
}

impl Residual {
    /// # Errors
    /// `Error::Config` for an empty or invalid block.
    pub fn new(in_dim: usize, specs: &[LayerSpec], alloc: &mut Alloc) -> Result<Self> {
        Self::with_projection(in_dim, specs, None, alloc)
    }

    /// As [`Residual::new`], with the skip path's layers given (`projection`).
    ///
    /// # Errors
    /// `Error::Config` for an invalid block or projection, or a projection
    /// whose output width differs from the block's.
    pub fn with_projection(in_dim: usize, specs: &[LayerSpec], projection: Option<&[LayerSpec]>, alloc: &mut Alloc) -> Result<Self> {
        let block = Chain::build(specs, in_dim, alloc)?;
        let out_dim = block.out_dim();
        let projection = match projection {
            Some(p) => {
                // Only flat kinds: nothing nested escapes the network's layer limit.
                ensure_config(p.iter().all(|s| matches!(s, LayerSpec::Conv(_) | LayerSpec::BatchNorm(_))), || {
                    "Residual's projection may hold only conv and batch_norm layers".into()
                })?;
                let chain = Chain::build(p, in_dim, alloc)?;
                let got = chain.out_dim();
                ensure_config(got == out_dim, || format!("Residual's projection gives {got} values per sample, but its block gives {out_dim}"))?;
                Skip::Chain(chain)
            }
            None if out_dim != in_dim => Skip::Dense(Dense::new(in_dim, out_dim, Activation::Identity, Init::XavierUniform, Init::Zeros, alloc)?),
            None => Skip::Identity,
        };
        Ok(Self { in_dim, block, projection, out: Matrix::zeros(0, out_dim), dy_block: Matrix::default(), scratch: Matrix::default() })
    }

    /// The block's layers (for diagnostics that switch on per-layer recording).
    pub fn block_mut(&mut self) -> &mut Chain {
        &mut self.block
    }
}

impl LayerKind for Residual {
    fn out_dim(&self) -> usize {
        self.block.out_dim()
    }

    fn params(&self) -> Vec<ParamInfo> {
        let mut out = self.block.params("block.");
        match &self.projection {
            Skip::Identity => {}
            Skip::Dense(p) => out.extend(p.params().into_iter().map(|i| ParamInfo { name: format!("projection.{}", i.name), ..i })),
            Skip::Chain(c) => out.extend(c.params("projection.")),
        }
        out
    }

    fn buffers(&self) -> Vec<ParamInfo> {
        let mut out = self.block.buffers("block.");
        if let Skip::Chain(c) = &self.projection {
            out.extend(c.buffers("projection."));
        }
        out
    }

    fn init(&self, params: &mut [f32], buffers: &mut [f32], rng: &mut ChaCha8Rng) {
        self.block.init(params, buffers, rng);
        match &self.projection {
            Skip::Identity => {}
            Skip::Dense(p) => p.init(params, buffers, rng),
            Skip::Chain(c) => c.init(params, buffers, rng),
        }
    }

    fn forward(&mut self, x: MatRef<'_>, params: &[f32], buffers: &[f32], ctx: &Ctx) -> Result<()> {
        ensure_shape(x.cols == self.in_dim, || format!("Residual expects inputs of width {}, got {}", self.in_dim, x.cols))?;
        self.block.run(x, params, buffers, ctx)?;
        let skip = match &mut self.projection {
            Skip::Dense(p) => {
                p.forward(x, params, buffers, ctx)?;
                p.output()
            }
            Skip::Chain(c) => {
                c.run(x, params, buffers, ctx)?;
                c.output()
            }
            Skip::Identity => x,
        };
        let body = self.block.output();
        self.out.resize_rows(x.rows)?;
        for ((o, a), b) in self.out.as_mut_slice().iter_mut().zip(body.data).zip(skip.data) {
            *o = a + b;
        }
        Ok(())
    }

    fn update_buffers(&self, buffers: &mut [f32]) {
        self.block.update_buffers(buffers);
        match &self.projection {
            Skip::Identity => {}
            Skip::Dense(p) => p.update_buffers(buffers),
            Skip::Chain(c) => c.update_buffers(buffers),
        }
    }

    fn output(&self) -> MatRef<'_> {
        self.out.view()
    }

    fn backward(&mut self, x: MatRef<'_>, params: &[f32], grads: &mut [f32], dy: &mut Matrix, dx: Option<&mut Matrix>) -> Result<()> {
        check_backward("Residual", x, dy, self.out.rows(), self.in_dim, self.out.cols())?;
        self.dy_block.reshape_for(dy.rows(), dy.cols())?;
        self.dy_block.as_mut_slice().copy_from_slice(dy.as_slice());
        let want_dx = dx.is_some();
        self.block.backward(x, params, grads, &mut self.dy_block, &mut self.scratch, want_dx)?;
        // The identity Dense leaves `dy` untouched; its dx is dy·Pᵀ.
        match (&mut self.projection, dx) {
            (Skip::Dense(p), Some(dx)) => {
                p.backward(x, params, grads, dy, Some(dx))?;
                add_into(dx, &self.dy_block);
            }
            (Skip::Dense(p), None) => p.backward(x, params, grads, dy, None)?,
            // The chain's input gradient ends in `dy` (the block is done with `scratch`).
            (Skip::Chain(c), Some(dx)) => {
                c.backward(x, params, grads, dy, &mut self.scratch, true)?;
                dx.reshape_for(x.rows, self.in_dim)?;
                dx.as_mut_slice().copy_from_slice(dy.as_slice());
                add_into(dx, &self.dy_block);
            }
            (Skip::Chain(c), None) => c.backward(x, params, grads, dy, &mut self.scratch, false)?,
            (Skip::Identity, Some(dx)) => {
                dx.reshape_for(x.rows, self.in_dim)?;
                dx.as_mut_slice().copy_from_slice(dy.as_slice());
                add_into(dx, &self.dy_block);
            }
            (Skip::Identity, None) => {}
        }
        Ok(())
    }

    fn nested_penalties(&self) -> Vec<Penalty> {
        let mut out = self.block.penalties();
        if let Skip::Chain(c) = &self.projection {
            out.extend(c.penalties());
        }
        out
    }
}

fn add_into(dst: &mut Matrix, src: &Matrix) {
    for (d, s) in dst.as_mut_slice().iter_mut().zip(src.as_slice()) {
        *d += s;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    fn specs(json: &str) -> Vec<LayerSpec> {
        serde_json::from_str(json).unwrap()
    }

    /// A stated projection is built as a chain beside the block: its tensors are
    /// named `projection.{i}.…` (buffers too); a width that differs from the
    /// block's, or a nested kind in it, is a ConfigError.
    #[test]
    fn stated_projection_builds_and_is_checked() {
        let block = specs(r#"[{"type":"conv","input":[4,4,2],"filters":3,"kernel":[3,3],"strides":[2,2],"pads":[1,1,1,1],"dilation":[1,1]}]"#);
        let conv = r#"{"type":"conv","input":[4,4,2],"filters":3,"kernel":[1,1],"strides":[2,2],"pads":[0,0,0,0],"dilation":[1,1],"use_bias":false}"#;
        let proj = specs(&format!(r#"[{conv},{{"type":"batch_norm","in_features":3}}]"#));
        let mut alloc = Alloc::default();
        let layer = Residual::with_projection(32, &block, Some(&proj), &mut alloc).unwrap();
        let names: Vec<String> = layer.params().into_iter().chain(layer.buffers()).map(|p| p.name).collect();
        assert_eq!(names, ["block.0.weight", "block.0.bias", "projection.0.weight", "projection.1.gamma", "projection.1.beta", "projection.1.running_mean", "projection.1.running_var"]);
        assert_eq!(layer.out_dim(), 12);
        let wide = specs(r#"[{"type":"conv","input":[4,4,2],"filters":4,"kernel":[1,1],"strides":[2,2],"pads":[0,0,0,0],"dilation":[1,1]}]"#);
        assert!(matches!(Residual::with_projection(32, &block, Some(&wide), &mut Alloc::default()), Err(Error::Config(_))));
        let nested = specs(&format!(r#"[{{"type":"residual","layers":[{conv}]}}]"#));
        assert!(matches!(Residual::with_projection(32, &block, Some(&nested), &mut Alloc::default()), Err(Error::Config(_))));
    }
}
