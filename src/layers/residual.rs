//! Residual (skip) connection `y = x + block(x)` (He et al. 2016).
//!
//! The identity path carries the gradient straight back to earlier layers,
//! which is what lets deep stacks train. When the block changes the width, a
//! learned linear projection `x·P + c` takes the identity's place.

use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::activation::Activation;
use crate::error::{ensure_shape, Result};
use crate::init::Init;
use crate::layers::kind::{check_backward, BuildLayer};
use crate::layers::{Alloc, Chain, Ctx, Dense, LayerKind, LayerSpec, ParamInfo};
use crate::regularizer::Penalty;
use crate::tensor::{MatRef, Matrix};

/// `{"type": "residual", "layers": [..]}`: `y = x + block(x)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResidualSpec {
    /// The block, built as a chain (so a Dense and its activation fuse here too).
    pub layers: Vec<LayerSpec>,
}

impl BuildLayer for ResidualSpec {
    type Layer = Residual;

    fn build(&self, in_dim: usize, alloc: &mut Alloc) -> Result<Residual> {
        Residual::new(in_dim, &self.layers, alloc)
    }

    fn nested(&self) -> &[LayerSpec] {
        &self.layers
    }
}

/// A block with a skip connection around it.
#[derive(Clone, Debug)]
pub struct Residual {
    in_dim: usize,
    block: Chain,
    projection: Option<Dense>,
    out: Matrix,
    /// The block's copy of the output gradient (its backward overwrites it).
    dy_block: Matrix,
    scratch: Matrix,
}

impl Residual {
    /// # Errors
    /// `Error::Config` for an empty or invalid block.
    pub fn new(in_dim: usize, specs: &[LayerSpec], alloc: &mut Alloc) -> Result<Self> {
        let block = Chain::build(specs, in_dim, alloc)?;
        let out_dim = block.out_dim();
        let projection = if out_dim != in_dim { Some(Dense::new(in_dim, out_dim, Activation::Identity, Init::XavierUniform, Init::Zeros, alloc)?) } else { None };
        Ok(Self { in_dim, block, projection, out: Matrix::zeros(0, out_dim), dy_block: Matrix::default(), scratch: Matrix::default() })
    }
}

impl LayerKind for Residual {
    fn out_dim(&self) -> usize {
        self.block.out_dim()
    }

    fn params(&self) -> Vec<ParamInfo> {
        let mut out = self.block.params("block.");
        if let Some(p) = &self.projection {
            out.extend(p.params().into_iter().map(|i| ParamInfo { name: format!("projection.{}", i.name), ..i }));
        }
        out
    }

    fn buffers(&self) -> Vec<ParamInfo> {
        self.block.buffers("block.")
    }

    fn init(&self, params: &mut [f32], buffers: &mut [f32], rng: &mut ChaCha8Rng) {
        self.block.init(params, buffers, rng);
        if let Some(p) = &self.projection {
            p.init(params, buffers, rng);
        }
    }

    fn forward(&mut self, x: MatRef<'_>, params: &[f32], buffers: &[f32], ctx: &Ctx) -> Result<()> {
        ensure_shape(x.cols == self.in_dim, || format!("Residual expects inputs of width {}, got {}", self.in_dim, x.cols))?;
        self.block.run(x, params, buffers, ctx)?;
        let skip = match &mut self.projection {
            Some(p) => {
                p.forward(x, params, buffers, ctx)?;
                p.output()
            }
            None => x,
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
        if let Some(p) = &self.projection {
            p.update_buffers(buffers);
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
            (Some(p), Some(dx)) => {
                p.backward(x, params, grads, dy, Some(dx))?;
                add_into(dx, &self.dy_block);
            }
            (Some(p), None) => p.backward(x, params, grads, dy, None)?,
            (None, Some(dx)) => {
                dx.reshape_for(x.rows, self.in_dim)?;
                dx.as_mut_slice().copy_from_slice(dy.as_slice());
                add_into(dx, &self.dy_block);
            }
            (None, None) => {}
        }
        Ok(())
    }

    fn nested_penalties(&self) -> Vec<Penalty> {
        self.block.penalties()
    }
}

fn add_into(dst: &mut Matrix, src: &Matrix) {
    for (d, s) in dst.as_mut_slice().iter_mut().zip(src.as_slice()) {
        *d += s;
    }
}
