//! Inverted dropout: random units zeroed in training, identity in inference.
//!
//! The mask comes from the layer's own random stream at the current optimizer
//! step (`Ctx::rng`), so a training step can be replayed exactly, also after
//! a save and load. ChaCha can seek to any word, so each fixed-size block of
//! the mask starts its own copy of the generator at its element index: the
//! mask is the same whether the blocks run on one thread or many.

use rand::RngCore;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::kind::{check_backward, Alloc, BuildLayer, Ctx, LayerKind, ParamInfo};
use super::mask::MaskFlow;
use crate::error::{ensure_config, ensure_shape, Result};
use crate::kernels::{parallel_for, PAR_CHUNK};
use crate::tensor::{MatRef, Matrix};

/// `{"type": "dropout", "rate": ..}`: inverted dropout, active in training mode only.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DropoutSpec {
    /// The fraction of units dropped, in `[0, 1)`.
    pub rate: f32,
}

impl BuildLayer for DropoutSpec {
    type Layer = Dropout;

    fn build(&self, in_dim: usize, alloc: &mut Alloc) -> Result<Dropout> {
        Dropout::new(in_dim, self.rate, alloc)
    }
}

/// Dropout (Srivastava et al. 2014, "Dropout: A Simple Way to Prevent Neural
/// Networks from Overfitting"), inverted: kept units are scaled by
/// `1/(1 − rate)` during training, so inference needs no rescaling.
#[derive(Clone, Debug)]
pub struct Dropout {
    dim: usize,
    rate: f32,
    uid: u64,
    /// A unit is kept when its uniform 32-bit draw is below this (out of 2³²).
    keep_below: u64,
    /// `1/(1 − rate)`.
    scale: f32,
    /// `scale` for kept units, 0 for dropped ones, from the last training pass.
    mask: Matrix,
    y: Matrix,
    /// Whether the last forward pass applied a mask (training with rate > 0).
    masked: bool,
}

impl Dropout {
    /// # Errors
    /// `Error::Config` when `dim` is zero or `rate` is not in `[0, 1)`.
    pub fn new(dim: usize, rate: f32, alloc: &mut Alloc) -> Result<Self> {
        ensure_config(dim > 0, || "Dropout input width must be at least 1, got 0".into())?;
        ensure_config((0.0..1.0).contains(&rate), || {
            format!("dropout rate is the fraction of units dropped and must be in [0, 1), got {rate}")
        })?;
        let keep = 1.0 - f64::from(rate);
        Ok(Self {
            dim,
            rate,
            uid: alloc.uid(),
            keep_below: (keep * 4_294_967_296.0).round() as u64,
            scale: (1.0 / keep) as f32,
            mask: Matrix::zeros(0, dim),
            y: Matrix::zeros(0, dim),
            masked: false,
        })
    }
}

/// Mask and output for elements `start..start + x.len()` of the batch.
fn mask_block(rng: &ChaCha8Rng, start: usize, keep_below: u64, scale: f32, x: &[f32], mask: &mut [f32], y: &mut [f32]) {
    let mut rng = rng.clone();
    // One u32 per element is one ChaCha word, so element i is word i.
    rng.set_word_pos(start as u128);
    for ((m, o), &v) in mask.iter_mut().zip(y.iter_mut()).zip(x) {
        *m = if u64::from(rng.next_u32()) < keep_below { scale } else { 0.0 };
        *o = v * *m;
    }
}

fn times(a: &[f32], b: &[f32], out: &mut [f32]) {
    for ((o, &u), &v) in out.iter_mut().zip(a).zip(b) {
        *o = u * v;
    }
}

impl LayerKind for Dropout {
    fn out_dim(&self) -> usize {
        self.dim
    }

    fn row_products_only(&self) -> bool {
        true
    }

    fn params(&self) -> Vec<ParamInfo> {
        Vec::new()
    }

    fn forward(&mut self, x: MatRef<'_>, _params: &[f32], _buffers: &[f32], ctx: &Ctx) -> Result<()> {
        ensure_shape(x.cols == self.dim, || format!("Dropout layer expects inputs with {} features, got {}", self.dim, x.cols))?;
        self.y.resize_rows(x.rows)?;
        self.masked = ctx.training && self.rate > 0.0;
        if !self.masked {
            // The output must live in this layer, so identity is still a copy.
            self.y.as_mut_slice().copy_from_slice(x.data);
            return Ok(());
        }
        self.mask.resize_rows(x.rows)?;
        let rng = ctx.rng(self.uid);
        let (keep, scale) = (self.keep_below, self.scale);
        if parallel_for(x.data.len()) {
            x.data
                .par_chunks(PAR_CHUNK)
                .zip(self.mask.as_mut_slice().par_chunks_mut(PAR_CHUNK))
                .zip(self.y.as_mut_slice().par_chunks_mut(PAR_CHUNK))
                .enumerate()
                .for_each(|(i, ((xc, mc), yc))| mask_block(&rng, i * PAR_CHUNK, keep, scale, xc, mc, yc));
        } else {
            mask_block(&rng, 0, keep, scale, x.data, self.mask.as_mut_slice(), self.y.as_mut_slice());
        }
        Ok(())
    }

    fn output(&self) -> MatRef<'_> {
        self.y.view()
    }

    /// Elementwise: any width.
    fn step_width(&self) -> Option<usize> {
        Some(1)
    }

    /// Elementwise: the time axis, and its mask, stay.
    fn mask_flow(&self) -> MaskFlow {
        MaskFlow::Keeps
    }

    fn set_steps(&mut self, steps: usize) -> Result<()> {
        ensure_config(steps > 0, || "Dropout input width must be at least 1, got 0".into())?;
        self.dim = steps;
        self.masked = false;
        self.mask.reshape_for(0, steps)?;
        self.y.reshape_for(0, steps)
    }

    fn backward(&mut self, x: MatRef<'_>, _params: &[f32], _grads: &mut [f32], dy: &mut Matrix, dx: Option<&mut Matrix>) -> Result<()> {
        let batch = self.y.rows();
        check_backward("Dropout", x, dy, batch, self.dim, self.dim)?;
        let Some(dx) = dx else { return Ok(()) };
        dx.reshape_for(batch, self.dim)?;
        if !self.masked {
            dx.as_mut_slice().copy_from_slice(dy.as_slice());
        } else if parallel_for(dy.as_slice().len()) {
            dy.as_slice()
                .par_chunks(PAR_CHUNK)
                .zip(self.mask.as_slice().par_chunks(PAR_CHUNK))
                .zip(dx.as_mut_slice().par_chunks_mut(PAR_CHUNK))
                .for_each(|((d, m), o)| times(d, m, o));
        } else {
            times(dy.as_slice(), self.mask.as_slice(), dx.as_mut_slice());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn train(seed: u64, step: u64) -> Ctx {
        Ctx { training: true, seed, step }
    }

    fn run(layer: &mut Dropout, x: &[f32], ctx: &Ctx) -> Vec<f32> {
        let x = MatRef::new(x.len() / layer.dim, layer.dim, x).unwrap();
        layer.forward(x, &[], &[], ctx).unwrap();
        layer.output().data.to_vec()
    }

    #[test]
    fn keeps_the_expected_fraction_scaled() {
        let (dim, rows, rate) = (100, 1000, 0.3f32);
        let mut layer = Dropout::new(dim, rate, &mut Alloc::default()).unwrap();
        let x: Vec<f32> = (0..dim * rows).map(|i| 1.0 + (i % 7) as f32).collect();
        let y = run(&mut layer, &x, &train(11, 4));
        let n = x.len() as f64;
        let kept = y.iter().filter(|&&v| v != 0.0).count() as f64;
        let p = 1.0 - f64::from(rate);
        let se = (p * (1.0 - p) / n).sqrt();
        assert!((kept / n - p).abs() <= 3.0 * se, "kept fraction {} vs {p} (se {se})", kept / n);
        for (&o, &v) in y.iter().zip(&x) {
            // Scaled by a multiply with 1/(1 − rate): equal to x/(1 − rate) up to rounding.
            assert!(o == 0.0 || (o - v / (1.0 - rate)).abs() <= 1e-6 * v.abs(), "{o} from {v}");
        }
        // Backward passes the gradient through the same mask.
        let mut dy = Matrix::from_vec(rows, dim, vec![2.0; x.len()]).unwrap();
        let mut dx = Matrix::default();
        let xr = MatRef::new(rows, dim, &x).unwrap();
        layer.backward(xr, &[], &mut [], &mut dy, Some(&mut dx)).unwrap();
        for (&g, &o) in dx.as_slice().iter().zip(&y) {
            assert_eq!(g, if o == 0.0 { 0.0 } else { 2.0 * layer.scale });
        }
    }

    #[test]
    fn inference_and_zero_rate_are_identity() {
        let x: Vec<f32> = (0..40).map(|i| i as f32 - 20.0).collect();
        let mut layer = Dropout::new(8, 0.5, &mut Alloc::default()).unwrap();
        assert_eq!(run(&mut layer, &x, &Ctx::inference()), x);
        let mut dy = Matrix::from_vec(5, 8, x.clone()).unwrap();
        let mut dx = Matrix::default();
        let xr = MatRef::new(5, 8, &x).unwrap();
        layer.backward(xr, &[], &mut [], &mut dy, Some(&mut dx)).unwrap();
        assert_eq!(dx.as_slice(), &x[..]);
        let mut zero = Dropout::new(8, 0.0, &mut Alloc::default()).unwrap();
        assert_eq!(run(&mut zero, &x, &train(1, 1)), x);
    }

    #[test]
    fn masks_follow_seed_step_and_uid() {
        let mut alloc = Alloc::default();
        let mut a = Dropout::new(64, 0.5, &mut alloc).unwrap();
        let mut b = Dropout::new(64, 0.5, &mut alloc).unwrap();
        let x = vec![1.0f32; 64 * 64];
        let first = run(&mut a, &x, &train(3, 7));
        assert_eq!(first, run(&mut a, &x, &train(3, 7)), "same ctx, same mask");
        assert_ne!(first, run(&mut a, &x, &train(3, 8)), "next step, new mask");
        assert_ne!(first, run(&mut b, &x, &train(3, 7)), "other layer, other mask");
    }

    #[test]
    fn mask_does_not_depend_on_thread_count() {
        let x = vec![1.0f32; 300 * 200];
        let mut layer = Dropout::new(200, 0.25, &mut Alloc::default()).unwrap();
        let mut on = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| run(&mut layer, &x, &train(9, 2)))
        };
        assert_eq!(on(1), on(4));
    }

    #[test]
    fn bad_rates_are_rejected() {
        for rate in [-0.1, 1.0, 1.5, f32::NAN] {
            let err = Dropout::new(4, rate, &mut Alloc::default()).unwrap_err().to_string();
            assert!(err.contains("[0, 1)"), "{err}");
        }
    }
}
