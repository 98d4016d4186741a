//! Parametric ReLU: a leaky ReLU whose negative slope is learned: one slope
//! per unit, one shared by all, or one per channel of images and sequences
//! (Keras' `shared_axes` over the positions, PyTorch's `nn.PReLU(C)`).

use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::kind::{check_backward, Alloc, BuildLayer, Ctx, LayerKind, ParamInfo};
use crate::error::{ensure_config, ensure_shape, try_vec, Result};
use crate::layers::grid::DataFormat;
use crate::kernels::reduce::col_sums;
use crate::kernels::{parallel_for, PAR_CHUNK};
use crate::tensor::{MatRef, Matrix};

/// `{"type": "prelu", "shared": .., "init": ..}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PReluSpec {
    /// One slope for all units instead of one per unit.
    #[serde(default)]
    pub shared: bool,
    /// The starting slope.
    #[serde(default = "quarter")]
    pub init: f32,
    /// One slope per channel of N-D samples with this many channels (on the
    /// axis `data_format` says), shared across the positions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channels: Option<usize>,
    #[serde(default, skip_serializing_if = "DataFormat::is_channels_last")]
    pub data_format: DataFormat,
}

fn quarter() -> f32 {
    0.25
}

impl BuildLayer for PReluSpec {
    type Layer = PRelu;

    fn build(&self, in_dim: usize, alloc: &mut Alloc) -> Result<PRelu> {
        match self.channels {
            Some(c) if !self.shared => PRelu::per_channel(in_dim, c, self.data_format, self.init, alloc),
            _ => PRelu::new(in_dim, self.shared, self.init, alloc),
        }
    }
}

/// `y = x` for `x > 0`, `alpha_j·x` otherwise, with one learned slope per unit
/// (or one shared by all units), after He et al. 2015 ("Delving Deep into
/// Rectifiers"), whose suggested starting slope is 0.25.
#[derive(Clone, Debug)]
pub struct PRelu {
    dim: usize,
    shared: bool,
    /// Per-channel slopes: `(channels, positions per channel, channels first)`.
    channels: Option<(usize, usize, bool)>,
    /// Per-channel mode: each column's slope, refreshed by every forward pass,
    /// and each column's `dalpha` before the per-channel fold.
    column_alpha: Vec<f32>,
    column_grad: Vec<f32>,
    init: f32,
    a_off: usize,
    y: Matrix,
    /// Per-chunk partial sums of `dalpha`, `[chunks, dim]`: each block of rows
    /// sums into its own row, and the rows are then added in order, so the
    /// gradient is the same whether the blocks ran on one thread or many.
    partial: Matrix,
}

impl PRelu {
    /// # Errors
    /// `Error::Config` when `dim` is zero or `init` is not finite.
    pub fn new(dim: usize, shared: bool, init: f32, alloc: &mut Alloc) -> Result<Self> {
        ensure_config(dim > 0, || "PReLU input width must be at least 1, got 0".into())?;
        ensure_config(init.is_finite(), || format!("PReLU initial slope must be a finite number, got {init}"))?;
        let a_off = alloc.params(if shared { 1 } else { dim }, "PReLU alpha")?;
        Ok(Self { dim, shared, channels: None, column_alpha: Vec::new(), column_grad: Vec::new(), init, a_off, y: Matrix::zeros(0, dim), partial: Matrix::zeros(0, dim) })
    }

    /// One slope per channel of samples of `dim` values, `channels` of them
    /// (innermost for channels_last, outermost for channels_first).
    ///
    /// # Errors
    /// `Error::Config` when `channels` is zero or does not divide `dim`, or
    /// `init` is not finite.
    pub fn per_channel(dim: usize, channels: usize, format: DataFormat, init: f32, alloc: &mut Alloc) -> Result<Self> {
        ensure_config(channels > 0 && dim % channels == 0, || format!("PReLU per channel: {channels} channels do not divide the input width {dim}"))?;
        ensure_config(dim > 0, || "PReLU input width must be at least 1, got 0".into())?;
        ensure_config(init.is_finite(), || format!("PReLU initial slope must be a finite number, got {init}"))?;
        let a_off = alloc.params(channels, "PReLU alpha")?;
        let first = format == DataFormat::ChannelsFirst;
        Ok(Self {
            dim,
            shared: false,
            channels: Some((channels, dim / channels, first)),
            column_alpha: try_vec(dim, 0.0, "PReLU workspaces")?,
            column_grad: try_vec(dim, 0.0, "PReLU workspaces")?,
            init,
            a_off,
            y: Matrix::zeros(0, dim),
            partial: Matrix::zeros(0, dim),
        })
    }

    fn n_alpha(&self) -> usize {
        match self.channels {
            Some((c, _, _)) => c,
            None if self.shared => 1,
            None => self.dim,
        }
    }

    /// The slopes per column: the parameters themselves, or (per channel) each
    /// column's channel's slope, written into `column_alpha`.
    fn slopes<'a>(&'a mut self, params: &'a [f32]) -> &'a [f32] {
        let alpha = &params[self.a_off..self.a_off + self.n_alpha()];
        let Some((_, positions, first)) = self.channels else { return alpha };
        for (j, a) in self.column_alpha.iter_mut().enumerate() {
            *a = alpha[channel_of(j, alpha.len(), positions, first)];
        }
        &self.column_alpha
    }

    /// Whole rows per block, about `PAR_CHUNK` values (fixed, not per thread).
    fn chunk_rows(&self) -> usize {
        (PAR_CHUNK / self.dim).max(1)
    }
}

/// The channel of column `j` in a sample of `channels · positions` values.
#[inline]
fn channel_of(j: usize, channels: usize, positions: usize, first: bool) -> usize {
    if first {
        j / positions
    } else {
        j % channels
    }
}

/// The slope of column `j` (a shared slope repeats).
#[inline(always)]
fn slope(alpha: &[f32], j: usize) -> f32 {
    if alpha.len() == 1 {
        alpha[0]
    } else {
        alpha[j]
    }
}

fn forward_rows(x: &[f32], alpha: &[f32], dim: usize, y: &mut [f32]) {
    for (xr, yr) in x.chunks_exact(dim).zip(y.chunks_exact_mut(dim)) {
        for (j, (o, &v)) in yr.iter_mut().zip(xr).enumerate() {
            *o = if v > 0.0 { v } else { slope(alpha, j) * v };
        }
    }
}

/// `dx = dy·(x > 0 ? 1 : alpha_j)` for a block of rows (into `dy` in place),
/// and that block's `Σ_rows (x <= 0 ? dy·x : 0)` into `part`.
fn backward_rows(x: &[f32], alpha: &[f32], dim: usize, dy: &mut [f32], part: &mut [f32]) {
    part.fill(0.0);
    for (xr, dr) in x.chunks_exact(dim).zip(dy.chunks_exact_mut(dim)) {
        for (j, ((d, &v), p)) in dr.iter_mut().zip(xr).zip(part.iter_mut()).enumerate() {
            if v > 0.0 {
                continue;
            }
            *p += *d * v;
            *d *= slope(alpha, j);
        }
    }
}

impl LayerKind for PRelu {
    fn out_dim(&self) -> usize {
        self.dim
    }

    /// Keras passes the mask through PReLU; here it would end, and the padded steps count after it.
    fn mask_refusal(&self) -> Option<&'static str> {
        Some("PReLU: Keras keeps the mask there, ferronn cannot, so the padded steps would be counted silently; remove the mask or move PReLU")
    }

    fn params(&self) -> Vec<ParamInfo> {
        vec![ParamInfo::new("alpha", self.a_off, vec![self.n_alpha()])]
    }

    fn init(&self, params: &mut [f32], _buffers: &mut [f32], _rng: &mut ChaCha8Rng) {
        params[self.a_off..self.a_off + self.n_alpha()].fill(self.init);
    }

    fn forward(&mut self, x: MatRef<'_>, params: &[f32], _buffers: &[f32], _ctx: &Ctx) -> Result<()> {
        ensure_shape(x.cols == self.dim, || format!("PReLU layer expects inputs with {} features, got {}", self.dim, x.cols))?;
        self.y.resize_rows(x.rows)?;
        let (dim, chunk) = (self.dim, self.chunk_rows() * self.dim);
        let mut y = std::mem::take(&mut self.y);
        let alpha = self.slopes(params);
        if parallel_for(x.data.len()) {
            x.data
                .par_chunks(chunk)
                .zip(y.as_mut_slice().par_chunks_mut(chunk))
                .for_each(|(xc, yc)| forward_rows(xc, alpha, dim, yc));
        } else {
            forward_rows(x.data, alpha, dim, y.as_mut_slice());
        }
        self.y = y;
        Ok(())
    }

    fn output(&self) -> MatRef<'_> {
        self.y.view()
    }

    fn backward(&mut self, x: MatRef<'_>, params: &[f32], grads: &mut [f32], dy: &mut Matrix, dx: Option<&mut Matrix>) -> Result<()> {
        let batch = self.y.rows();
        check_backward("PReLU", x, dy, batch, self.dim, self.dim)?;
        let (dim, rows) = (self.dim, self.chunk_rows());
        self.partial.resize_rows(batch.div_ceil(rows))?;
        let mut partial = std::mem::take(&mut self.partial);
        let alpha = self.slopes(params);
        // dy becomes dx in place (it is scratch by contract), sparing a buffer.
        if parallel_for(x.data.len()) {
            let chunks = x.data.par_chunks(rows * dim).zip(dy.as_mut_slice().par_chunks_mut(rows * dim));
            chunks
                .zip(partial.as_mut_slice().par_chunks_mut(dim))
                .for_each(|((xc, dc), p)| backward_rows(xc, alpha, dim, dc, p));
        } else {
            let chunks = x.data.chunks(rows * dim).zip(dy.as_mut_slice().chunks_mut(rows * dim));
            for ((xc, dc), p) in chunks.zip(partial.as_mut_slice().chunks_mut(dim)) {
                backward_rows(xc, alpha, dim, dc, p);
            }
        }
        self.partial = partial;
        let ga = &mut grads[self.a_off..self.a_off + self.n_alpha()];
        if let Some((channels, positions, first)) = self.channels {
            // Per column first, then each column into its channel, in column order.
            col_sums(self.partial.as_slice(), &mut self.column_grad);
            ga.fill(0.0);
            for (j, &g) in self.column_grad.iter().enumerate() {
                ga[channel_of(j, channels, positions, first)] += g;
            }
        } else if self.shared {
            // Per-unit totals first, then their sum: a fixed order either way.
            let mut total = 0.0;
            for p in self.partial.as_slice().chunks_exact(dim) {
                total += p.iter().sum::<f32>();
            }
            ga[0] = total;
        } else {
            col_sums(self.partial.as_slice(), ga);
        }
        if let Some(dx) = dx {
            dx.reshape_for(batch, dim)?;
            dx.as_mut_slice().copy_from_slice(dy.as_slice());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::testkit::{numeric_grad, rel_err};
    use crate::init::rng_for;
    use rand::Rng;

    /// Independent f64 forward: `Σ c·prelu(x)`.
    fn loss(x: &[f64], alpha: &[f64], c: &[f64], dim: usize) -> f64 {
        let mut total = 0.0;
        for (i, (&v, &cv)) in x.iter().zip(c).enumerate() {
            let a = if alpha.len() == 1 { alpha[0] } else { alpha[i % dim] };
            total += cv * if v > 0.0 { v } else { a * v };
        }
        total
    }



    #[test]
    fn gradients_match_finite_differences() {
        let (dim, batch) = (6, 5);
        for shared in [false, true] {
            let mut alloc = Alloc::default();
            let mut layer = PRelu::new(dim, shared, 0.25, &mut alloc).unwrap();
            let mut params = vec![0.0f32; alloc.params];
            layer.init(&mut params, &mut [], &mut rng_for(0, 0));
            assert!(params.iter().all(|&a| a == 0.25));
            let mut rng = rng_for(5, 0);
            // Distinct slopes, so a wrong column index would show.
            params.iter_mut().for_each(|a| *a = rng.random_range(0.05..0.6));
            // Inputs kept at least 0.05 away from the kink at 0.
            let xv: Vec<f32> = (0..batch * dim)
                .map(|_| {
                    let m: f32 = rng.random_range(0.05..2.0);
                    if rng.random::<bool>() { m } else { -m }
                })
                .collect();
            let c: Vec<f64> = (0..batch * dim).map(|_| rng.random_range(-1.0..1.0)).collect();
            let x = MatRef::new(batch, dim, &xv).unwrap();
            layer.forward(x, &params, &[], &Ctx::inference()).unwrap();
            let mut dy = Matrix::from_vec(batch, dim, c.iter().map(|&v| v as f32).collect()).unwrap();
            let (mut grads, mut dx) = (vec![f32::NAN; alloc.params], Matrix::default());
            layer.backward(x, &params, &mut grads, &mut dy, Some(&mut dx)).unwrap();

            let x64: Vec<f64> = xv.iter().map(|&v| v as f64).collect();
            let a64: Vec<f64> = params.iter().map(|&v| v as f64).collect();
            let got: f64 = layer.output().data.iter().zip(&c).map(|(&y, &cv)| y as f64 * cv).sum();
            assert!((got - loss(&x64, &a64, &c, dim)).abs() < 1e-5);
            let e_x = rel_err(dx.as_slice(), &numeric_grad(&x64, |xp| loss(xp, &a64, &c, dim)));
            let e_a = rel_err(&grads, &numeric_grad(&a64, |ap| loss(&x64, ap, &c, dim)));
            assert!(e_x <= 1e-3 && e_a <= 1e-3, "shared={shared}: dx error {e_x}, dalpha error {e_a}");
        }
    }

    #[test]
    fn config_and_thread_count() {
        let mut alloc = Alloc::default();
        assert!(PRelu::new(3, false, f32::NAN, &mut alloc).is_err());
        assert!(PRelu::new(0, false, 0.25, &mut alloc).is_err());
        let (dim, batch) = (33, 3000);
        let mut layer = PRelu::new(dim, false, 0.25, &mut alloc).unwrap();
        assert_eq!(layer.params()[0].shape, vec![dim]);
        let params: Vec<f32> = (0..alloc.params).map(|i| i as f32 / 50.0).collect();
        let xv: Vec<f32> = (0..batch * dim).map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0).collect();
        let x = MatRef::new(batch, dim, &xv).unwrap();
        let mut run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| {
                layer.forward(x, &params, &[], &Ctx::inference()).unwrap();
                let mut dy = Matrix::from_vec(batch, dim, xv.iter().map(|v| v.sin()).collect()).unwrap();
                let (mut grads, mut dx) = (vec![0.0f32; params.len()], Matrix::default());
                layer.backward(x, &params, &mut grads, &mut dy, Some(&mut dx)).unwrap();
                (layer.output().data.to_vec(), grads, dx)
            })
        };
        let one = run(1);
        assert_eq!(one, run(4));
    }

    /// Per channel: the slope of column `j` is its channel's (innermost for
    /// channels_last, outermost for channels_first); gradients against finite
    /// differences of an f64 reference, and the same on one thread or four.
    #[test]
    fn per_channel_slopes_and_gradients() {
        let (c, positions, batch) = (3, 5, 4);
        let dim = c * positions;
        for format in [DataFormat::ChannelsLast, DataFormat::ChannelsFirst] {
            let first = format == DataFormat::ChannelsFirst;
            let mut alloc = Alloc::default();
            let mut layer = PRelu::per_channel(dim, c, format, 0.25, &mut alloc).unwrap();
            assert_eq!(layer.params()[0].shape, vec![c]);
            let mut rng = rng_for(9, 0);
            let params: Vec<f32> = (0..c).map(|_| rng.random_range(0.05..0.6)).collect();
            let xv: Vec<f32> = (0..batch * dim)
                .map(|_| {
                    let m: f32 = rng.random_range(0.05..2.0);
                    if rng.random::<bool>() { m } else { -m }
                })
                .collect();
            let cw: Vec<f64> = (0..batch * dim).map(|_| rng.random_range(-1.0..1.0)).collect();
            let f = |x: &[f64], a: &[f64]| -> f64 {
                x.iter().zip(&cw).enumerate().map(|(i, (&v, &w))| w * if v > 0.0 { v } else { a[if first { (i % dim) / positions } else { i % c }] * v }).sum()
            };
            let x = MatRef::new(batch, dim, &xv).unwrap();
            let mut run = |threads: usize| {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                pool.install(|| {
                    layer.forward(x, &params, &[], &Ctx::inference()).unwrap();
                    let mut dy = Matrix::from_vec(batch, dim, cw.iter().map(|&v| v as f32).collect()).unwrap();
                    let (mut grads, mut dx) = (vec![f32::NAN; params.len()], Matrix::default());
                    layer.backward(x, &params, &mut grads, &mut dy, Some(&mut dx)).unwrap();
                    (layer.output().data.to_vec(), grads, dx)
                })
            };
            let (y, grads, dx) = run(1);
            assert_eq!((y.clone(), grads.clone(), dx.clone()), run(4));
            let (x64, a64): (Vec<f64>, Vec<f64>) = (xv.iter().map(|&v| v.into()).collect(), params.iter().map(|&v| v.into()).collect());
            let got: f64 = y.iter().zip(&cw).map(|(&v, &w)| f64::from(v) * w).sum();
            assert!((got - f(&x64, &a64)).abs() < 1e-5, "{format:?} forward");
            let e_x = rel_err(dx.as_slice(), &numeric_grad(&x64, |xp| f(xp, &a64)));
            let e_a = rel_err(&grads, &numeric_grad(&a64, |ap| f(&x64, ap)));
            assert!(e_x <= 1e-3 && e_a <= 1e-3, "{format:?}: dx error {e_x}, dalpha error {e_a}");
        }
        let mut alloc = Alloc::default();
        assert!(PRelu::per_channel(10, 3, DataFormat::ChannelsLast, 0.25, &mut alloc).is_err());
        assert!(PRelu::per_channel(10, 0, DataFormat::ChannelsLast, 0.25, &mut alloc).is_err());
    }
}
