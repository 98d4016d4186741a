//! Batch normalisation (Ioffe & Szegedy 2015) with PyTorch's semantics.
//!
//! Training mode normalises each feature by the batch's mean and biased
//! variance and moves the running statistics towards them
//! (`running = (1 - momentum)·running + momentum·batch`, with the unbiased
//! variance); inference mode uses the running statistics and leaves them alone.
//!
//! Column statistics and gradient sums go row by row in `f64` (the variance in
//! a second pass around the mean), so they are precise and never depend on the
//! thread count; only the elementwise passes are split across threads.
//!
//! On N-D inputs the statistics are per value of the last axis (Keras'
//! `axis=-1`; for channels_last images, per channel as PyTorch's BatchNorm2d):
//! a sample `[P·C]` is `P` rows of `C`, so the batch is `[N·P, C]` rows. With
//! `data_format: "channels_first"` (Keras' `axis=1`, PyTorch's BatchNorm2d on
//! NCHW) a sample is `[C, P]`: it is transposed to `[P, C]` rows on the way in
//! and back on the way out (and the gradients likewise), so both layouts share
//! one set of kernels and the statistics are summed in the same fixed order.

use multiversion::multiversion;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::{block_rows, check_backward, check_config, check_input, eps_norm, grad_sums, store};
use crate::error::{ensure_config, try_vec, Error, Result};
use crate::kernels::parallel_for;
use crate::layers::grid::{transpose_samples, DataFormat};
use crate::layers::kind::{Alloc, BuildLayer, Ctx, LayerKind, ParamInfo};
use crate::tensor::{MatRef, Matrix};

/// `{"type": "batch_norm", "momentum": .., "eps": ..}` (PyTorch's momentum convention).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BatchNormSpec {
    #[serde(default = "bn_momentum")]
    pub momentum: f32,
    #[serde(default = "eps_norm")]
    pub eps: f32,
    /// The size of the last axis of N-D inputs, normalised per value of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_features: Option<usize>,
    /// Where the normalised axis is in N-D samples: last (the default) or first.
    #[serde(default, skip_serializing_if = "DataFormat::is_channels_last")]
    pub data_format: DataFormat,
}


fn bn_momentum() -> f32 {
    0.1
}

impl BuildLayer for BatchNormSpec {
    type Layer = BatchNorm;

    fn build(&self, in_dim: usize, alloc: &mut Alloc) -> Result<BatchNorm> {
        let Some(features) = self.in_features else {
            return BatchNorm::new(in_dim, self.momentum, self.eps, alloc);
        };
        let axis = if self.data_format.is_channels_last() { "last" } else { "first" };
        ensure_config(features > 0 && in_dim % features == 0, || {
            format!("BatchNorm over the {axis} axis of size {features}: its input width {in_dim} is not a whole number of such rows")
        })?;
        let mut layer = BatchNorm::new(features, self.momentum, self.eps, alloc)?;
        layer.positions = in_dim / features;
        layer.channels_first = !self.data_format.is_channels_last() && layer.positions > 1;
        Ok(layer)
    }
}

/// Per-feature normalisation over the batch: `y = gamma·(x - mean)/sqrt(var + eps) + beta`.
///
/// Parameters: `gamma` `[dim]` (starts at 1), `beta` `[dim]` (starts at 0).
/// Buffers: `running_mean` `[dim]` (starts at 0), `running_var` `[dim]` (starts at 1).
#[derive(Clone, Debug)]
pub struct BatchNorm {
    dim: usize,
    /// Rows of `dim` values per sample (1 unless on N-D inputs).
    positions: usize,
    /// Samples in the last forward pass.
    samples: usize,
    /// Samples are `[dim, positions]` (transposed to rows through `cf_in`/`cf_out`).
    channels_first: bool,
    /// Channels_first only: a sample-wise transposed input (or output gradient)
    /// in `[N·P, dim]` rows, and the output back in `[N, dim·P]`.
    cf_in: Matrix,
    cf_out: Matrix,
    /// Channels_first only: the input gradient in `[N·P, dim]` rows.
    cf_dx: Matrix,
    momentum: f32,
    eps: f32,
    gamma_off: usize,
    beta_off: usize,
    mean_off: usize,
    var_off: usize,
    y: Matrix,
    /// The normalised input of the last forward pass, for the backward pass.
    xhat: Matrix,
    /// Per-feature shift and scale of the last forward pass: the batch's mean
    /// and `1/sqrt(var + eps)` in training mode, the running ones in inference.
    shift: Vec<f64>,
    scale: Vec<f64>,
    /// Whether the last forward pass used batch statistics: then the gradient
    /// also flows through them, otherwise they were constants.
    batch_stats: bool,
    /// `f64` column accumulators, `2·dim`.
    acc: Vec<f64>,
    /// Per-feature coefficients of `dx`, `3·dim` (see `backward`).
    coef: Vec<f32>,
}

impl BatchNorm {
    /// # Errors
    /// `Error::Config` when `dim` is zero, `momentum` is outside `[0, 1]`, or
    /// `eps` is not finite and positive.
    pub fn new(dim: usize, momentum: f32, eps: f32, alloc: &mut Alloc) -> Result<Self> {
        check_config("BatchNorm", dim, eps)?;
        ensure_config((0.0..=1.0).contains(&momentum), || format!("BatchNorm momentum must be in [0, 1], got {momentum}"))?;
        let (gamma_off, beta_off) = (alloc.params(dim, "BatchNorm gamma")?, alloc.params(dim, "BatchNorm beta")?);
        let (mean_off, var_off) = (alloc.buffers(dim, "BatchNorm running_mean")?, alloc.buffers(dim, "BatchNorm running_var")?);
        // The alloc bounds `dim`, so these products cannot wrap.
        Ok(Self {
            dim,
            positions: 1,
            samples: 0,
            channels_first: false,
            cf_in: Matrix::default(),
            cf_out: Matrix::default(),
            cf_dx: Matrix::default(),
            momentum,
            eps,
            gamma_off,
            beta_off,
            mean_off,
            var_off,
            y: Matrix::zeros(0, dim),
            xhat: Matrix::zeros(0, dim),
            // Sized by the first forward pass (see `size_workspaces`).
            shift: Vec::new(),
            scale: Vec::new(),
            batch_stats: false,
            acc: Vec::new(),
            coef: Vec::new(),
        })
    }

    /// Reserves the per-feature workspaces on first use rather than at build
    /// time, so that building a network reserves nothing but offsets (a
    /// loader compares those with its file's tensors before any allocation).
    ///
    /// # Errors
    /// `Error::Memory` when they cannot be reserved.
    fn size_workspaces(&mut self) -> Result<()> {
        if self.coef.is_empty() {
            let dim = self.dim;
            self.shift = try_vec(dim, 0.0, "BatchNorm workspaces")?;
            self.scale = try_vec(dim, 1.0, "BatchNorm workspaces")?;
            self.acc = try_vec(2 * dim, 0.0, "BatchNorm workspaces")?;
            self.coef = try_vec(3 * dim, 0.0, "BatchNorm workspaces")?;
        }
        Ok(())
    }
}

/// The batch's per-feature mean into `acc[..dim]` and biased variance into
/// `acc[dim..]` (`dim = acc.len() / 2`): two passes, each summing row after row.
#[multiversion(targets("x86_64+avx512f+avx512bw+avx512vl+avx512dq", "x86_64+avx2+fma"))]
fn column_stats(x: &[f32], acc: &mut [f64]) {
    let dim = acc.len() / 2;
    let rows = (x.len() / dim) as f64;
    let (mean, var) = acc.split_at_mut(dim);
    mean.fill(0.0);
    var.fill(0.0);
    for row in x.chunks_exact(dim) {
        mean.iter_mut().zip(row).for_each(|(m, &v)| *m += f64::from(v));
    }
    mean.iter_mut().for_each(|m| *m /= rows);
    for row in x.chunks_exact(dim) {
        for ((s, &m), &v) in var.iter_mut().zip(mean.iter()).zip(row) {
            *s += (f64::from(v) - m) * (f64::from(v) - m);
        }
    }
    var.iter_mut().for_each(|s| *s /= rows);
}

/// `xhat = (x - shift)·scale`, `y = gamma·xhat + beta` over a block of rows.
#[multiversion(targets("x86_64+avx512f+avx512bw+avx512vl+avx512dq", "x86_64+avx2+fma"))]
fn normalize_rows(x: &[f32], shift: &[f64], scale: &[f64], gamma: &[f32], beta: &[f32], y: &mut [f32], xhat: &mut [f32]) {
    let dim = gamma.len();
    for ((xr, yr), hr) in x.chunks_exact(dim).zip(y.chunks_exact_mut(dim)).zip(xhat.chunks_exact_mut(dim)) {
        let per_feature = shift.iter().zip(scale).zip(gamma.iter().zip(beta));
        for (((h, o), &v), ((&m, &s), (&g, &b))) in hr.iter_mut().zip(yr.iter_mut()).zip(xr).zip(per_feature) {
            *h = ((f64::from(v) - m) * s) as f32;
            *o = g * *h + b;
        }
    }
}

/// `dx = k·(dy - a - xhat·b)` over a block of rows, `coef = [k | a | b]`.
#[multiversion(targets("x86_64+avx512f+avx512bw+avx512vl+avx512dq", "x86_64+avx2+fma"))]
fn backward_rows(dy: &[f32], xhat: &[f32], coef: &[f32], dx: &mut [f32]) {
    let dim = coef.len() / 3;
    let (k, rest) = coef.split_at(dim);
    let (a, b) = rest.split_at(dim);
    for ((dr, hr), xr) in dy.chunks_exact(dim).zip(xhat.chunks_exact(dim)).zip(dx.chunks_exact_mut(dim)) {
        for (((o, &d), &h), ((&k, &a), &b)) in xr.iter_mut().zip(dr).zip(hr).zip(k.iter().zip(a).zip(b)) {
            *o = k * (d - a - h * b);
        }
    }
}

impl LayerKind for BatchNorm {
    fn out_dim(&self) -> usize {
        self.dim * self.positions
    }

    /// Keras takes the batch statistics over the real steps only; these are over every row.
    fn mask_refusal(&self) -> Option<&'static str> {
        Some("BatchNorm: Keras keeps the mask there (its batch statistics count only the real steps), ferronn cannot, so the padded steps would be counted silently; remove the mask or move BatchNorm")
    }

    fn params(&self) -> Vec<ParamInfo> {
        vec![ParamInfo::new("gamma", self.gamma_off, vec![self.dim]), ParamInfo::new("beta", self.beta_off, vec![self.dim])]
    }

    fn buffers(&self) -> Vec<ParamInfo> {
        vec![ParamInfo::new("running_mean", self.mean_off, vec![self.dim]), ParamInfo::new("running_var", self.var_off, vec![self.dim])]
    }

    fn init(&self, params: &mut [f32], buffers: &mut [f32], _rng: &mut ChaCha8Rng) {
        let d = self.dim;
        params[self.gamma_off..self.gamma_off + d].fill(1.0);
        params[self.beta_off..self.beta_off + d].fill(0.0);
        buffers[self.mean_off..self.mean_off + d].fill(0.0);
        buffers[self.var_off..self.var_off + d].fill(1.0);
    }

    /// The momentum update of the running statistics from the last forward
    /// pass's batch statistics (still in `acc`), when it was a training pass.
    fn update_buffers(&self, buffers: &mut [f32]) {
        if !self.batch_stats {
            return;
        }
        let (dim, rows) = (self.dim, self.y.rows());
        let (mean, var) = self.acc.split_at(dim);
        // PyTorch's running variance is unbiased; one sample has none, so keep the biased 0.
        let unbias = if rows > 1 { rows as f64 / (rows - 1) as f64 } else { 1.0 };
        let m = f64::from(self.momentum);
        for j in 0..dim {
            let rm = &mut buffers[self.mean_off + j];
            *rm = ((1.0 - m) * f64::from(*rm) + m * mean[j]) as f32;
            let rv = &mut buffers[self.var_off + j];
            *rv = ((1.0 - m) * f64::from(*rv) + m * var[j] * unbias) as f32;
        }
    }

    /// # Errors
    /// `Error::Shape` for the wrong width; `Error::Empty` for an empty batch in
    /// training mode (it has no statistics).
    fn forward(&mut self, x: MatRef<'_>, params: &[f32], buffers: &[f32], ctx: &Ctx) -> Result<()> {
        check_input("BatchNorm", x, self.dim * self.positions)?;
        self.samples = x.rows;
        self.size_workspaces()?;
        if self.channels_first {
            let mut rows = std::mem::take(&mut self.cf_in);
            let done = rows.reshape_for(x.rows, x.cols).and_then(|()| {
                transpose_samples(x.data, self.dim, self.positions, rows.as_mut_slice());
                self.forward_rows(MatRef { rows: x.rows * self.positions, cols: self.dim, data: rows.as_slice() }, params, buffers, ctx)
            });
            self.cf_in = rows;
            done?;
            self.cf_out.reshape_for(x.rows, x.cols)?;
            transpose_samples(self.y.as_slice(), self.positions, self.dim, self.cf_out.as_mut_slice());
            return Ok(());
        }
        self.forward_rows(MatRef { rows: x.rows * self.positions, cols: self.dim, data: x.data }, params, buffers, ctx)
    }

    fn output(&self) -> MatRef<'_> {
        let y = if self.channels_first { &self.cf_out } else { &self.y };
        MatRef { rows: self.samples, cols: self.dim * self.positions, data: &y.as_slice()[..self.samples * self.dim * self.positions] }
    }

    /// With `k = gamma·scale`: training mode `dx = k·(dy - mean(dy) - xhat·mean(dy·xhat))`
    /// (column means), which is `inv_std/N·(N·dxhat - Σdxhat - xhat·Σdxhat·xhat)`
    /// for `dxhat = gamma·dy`; inference mode `dx = k·dy`.
    fn backward(&mut self, x: MatRef<'_>, params: &[f32], grads: &mut [f32], dy: &mut Matrix, dx: Option<&mut Matrix>) -> Result<()> {
        check_backward("BatchNorm", x, dy, self.samples, self.dim * self.positions)?;
        self.size_workspaces()?;
        if !self.channels_first {
            return self.backward_rows(dy.as_slice(), params, grads, dx);
        }
        let (mut dy_rows, mut dx_rows) = (std::mem::take(&mut self.cf_in), std::mem::take(&mut self.cf_dx));
        let done = (|| {
            dy_rows.reshape_for(dy.rows(), dy.cols())?;
            transpose_samples(dy.as_slice(), self.dim, self.positions, dy_rows.as_mut_slice());
            let want = dx.is_some();
            self.backward_rows(dy_rows.as_slice(), params, grads, if want { Some(&mut dx_rows) } else { None })?;
            if let Some(dx) = dx {
                dx.reshape_for(dy.rows(), dy.cols())?;
                transpose_samples(dx_rows.as_slice(), self.positions, self.dim, dx.as_mut_slice());
            }
            Ok(())
        })();
        (self.cf_in, self.cf_dx) = (dy_rows, dx_rows);
        done
    }
}

impl BatchNorm {
    /// The forward pass on `[N·P, dim]` rows (the channels_last layout).
    fn forward_rows(&mut self, x: MatRef<'_>, params: &[f32], buffers: &[f32], ctx: &Ctx) -> Result<()> {
        let (dim, rows, eps) = (self.dim, x.rows, f64::from(self.eps));
        if ctx.training {
            if rows == 0 {
                return Err(Error::Empty("BatchNorm needs at least one sample per batch in training mode".into()));
            }
            column_stats(x.data, &mut self.acc);
            let (mean, var) = self.acc.split_at(dim);
            for j in 0..dim {
                self.shift[j] = mean[j];
                self.scale[j] = 1.0 / (var[j] + eps).sqrt();
            }
        } else {
            for j in 0..dim {
                self.shift[j] = f64::from(buffers[self.mean_off + j]);
                self.scale[j] = 1.0 / (f64::from(buffers[self.var_off + j]) + eps).sqrt();
            }
        }
        self.batch_stats = ctx.training;
        self.y.resize_rows(rows)?;
        self.xhat.resize_rows(rows)?;
        let gamma = &params[self.gamma_off..self.gamma_off + dim];
        let beta = &params[self.beta_off..self.beta_off + dim];
        let (shift, scale) = (&self.shift[..], &self.scale[..]);
        let run = |x: &[f32], y: &mut [f32], xhat: &mut [f32]| normalize_rows(x, shift, scale, gamma, beta, y, xhat);
        if parallel_for(x.data.len()) {
            let n = block_rows(dim) * dim;
            x.data
                .par_chunks(n)
                .zip(self.y.as_mut_slice().par_chunks_mut(n))
                .zip(self.xhat.as_mut_slice().par_chunks_mut(n))
                .for_each(|((xc, yc), hc)| run(xc, yc, hc));
        } else {
            run(x.data, self.y.as_mut_slice(), self.xhat.as_mut_slice());
        }
        Ok(())
    }

    /// The backward pass from `[N·P, dim]` rows of `dy`; `dx` in the same layout.
    fn backward_rows(&mut self, dy: &[f32], params: &[f32], grads: &mut [f32], dx: Option<&mut Matrix>) -> Result<()> {
        let (rows, dim) = (self.xhat.rows(), self.dim);
        grad_sums(dy, self.xhat.as_slice(), &mut self.acc);
        let (sum_dy_xhat, sum_dy) = self.acc.split_at(dim);
        store(&mut grads[self.gamma_off..self.gamma_off + dim], sum_dy_xhat);
        store(&mut grads[self.beta_off..self.beta_off + dim], sum_dy);
        let Some(dx) = dx else { return Ok(()) };
        dx.reshape_for(self.samples, dim * self.positions)?;
        let gamma = &params[self.gamma_off..self.gamma_off + dim];
        let (k, rest) = self.coef.split_at_mut(dim);
        let (a, b) = rest.split_at_mut(dim);
        for j in 0..dim {
            k[j] = (f64::from(gamma[j]) * self.scale[j]) as f32;
            // Inference-mode statistics are constants: no gradient through them.
            let (sa, sb) = if self.batch_stats { (sum_dy[j] / rows as f64, sum_dy_xhat[j] / rows as f64) } else { (0.0, 0.0) };
            (a[j], b[j]) = (sa as f32, sb as f32);
        }
        let coef = &self.coef[..];
        if parallel_for(dy.len()) {
            let n = block_rows(dim) * dim;
            dy.par_chunks(n)
                .zip(self.xhat.as_slice().par_chunks(n))
                .zip(dx.as_mut_slice().par_chunks_mut(n))
                .for_each(|((dc, hc), xc)| backward_rows(dc, hc, coef, xc));
        } else {
            backward_rows(dy, self.xhat.as_slice(), coef, dx.as_mut_slice());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::layers::testkit::{check_grads, random, rel_err, run_in_pool, to64};
    use super::*;

    const TRAIN: Ctx = Ctx { training: true, seed: 0, step: 0 };

    /// Column means and biased variances of `x` (`[rows, dim]`), in f64.
    fn col_stats(x: &[f64], dim: usize) -> (Vec<f64>, Vec<f64>) {
        let n = (x.len() / dim) as f64;
        let mean: Vec<f64> = (0..dim).map(|j| x.iter().skip(j).step_by(dim).sum::<f64>() / n).collect();
        let var = (0..dim).map(|j| x.iter().skip(j).step_by(dim).map(|v| (v - mean[j]).powi(2)).sum::<f64>() / n).collect();
        (mean, var)
    }

    /// Independent f64 forward with the given statistics (`None`: the batch's).
    fn reference(x: &[f64], p: &[f64], dim: usize, stats: Option<(&[f64], &[f64])>) -> Vec<f64> {
        let own = col_stats(x, dim);
        let (mean, var) = stats.unwrap_or((&own.0, &own.1));
        let eps = 1e-5;
        x.iter().enumerate().map(|(i, v)| (v - mean[i % dim]) / (var[i % dim] + eps).sqrt() * p[i % dim] + p[dim + i % dim]).collect()
    }

    /// A layer with distinct gamma/beta, and running stats away from their start.
    fn setup(dim: usize, rows: usize, offset: f32) -> (BatchNorm, Vec<f32>, Vec<f32>, Matrix) {
        let mut alloc = Alloc::default();
        let layer = BatchNorm::new(dim, 0.1, 1e-5, &mut alloc).unwrap();
        let (mut params, mut buffers) = (vec![f32::NAN; alloc.params], vec![f32::NAN; alloc.buffers]);
        layer.init(&mut params, &mut buffers, &mut crate::init::rng_for(0, 0));
        assert_eq!([params[0], params[dim], buffers[0], buffers[dim]], [1.0, 0.0, 0.0, 1.0]);
        let params = random(2 * dim, 1, 0.5, 1.5).iter().enumerate().map(|(i, &r)| if i < dim { r } else { r - 1.0 }).collect();
        let buffers = random(2 * dim, 3, 0.5, 2.0).iter().enumerate().map(|(i, &r)| if i < dim { r - 1.25 } else { r }).collect();
        let x = random(rows * dim, 2, -1.0, 1.0).iter().map(|v| v + offset).collect();
        (layer, params, buffers, Matrix::from_vec(rows, dim, x).unwrap())
    }

    #[test]
    fn names_and_offsets() {
        let mut alloc = Alloc { params: 10, buffers: 3, uid: 0 };
        let layer = BatchNorm::new(4, 0.1, 1e-5, &mut alloc).unwrap();
        let info = |v: Vec<ParamInfo>| v.into_iter().map(|p| (p.name, p.offset, p.shape)).collect::<Vec<_>>();
        assert_eq!(info(layer.params()), [("gamma".into(), 10, vec![4]), ("beta".into(), 14, vec![4])]);
        assert_eq!(info(layer.buffers()), [("running_mean".into(), 3, vec![4]), ("running_var".into(), 7, vec![4])]);
        assert_eq!((alloc.params, alloc.buffers), (18, 11));
    }

    #[test]
    fn training_gradients_match_finite_differences() {
        let (mut layer, params, mut buffers, x) = setup(4, 5, 0.0);
        check_grads(&mut layer, &x, &params, &mut buffers, &TRAIN, |x, p| reference(x, p, 4, None));
    }

    #[test]
    fn inference_gradients_match_finite_differences() {
        let (mut layer, params, mut buffers, x) = setup(4, 5, 0.0);
        let running = to64(&buffers);
        let (rm, rv) = running.split_at(4);
        let before = buffers.clone();
        check_grads(&mut layer, &x, &params, &mut buffers, &Ctx::inference(), |x, p| reference(x, p, 4, Some((rm, rv))));
        assert_eq!(buffers, before, "inference must not touch the running statistics");
    }

    #[test]
    fn running_stats_follow_the_update() {
        let (dim, m) = (3, 0.1);
        let (mut layer, params, _, _) = setup(dim, 1, 0.0);
        let mut buffers = vec![0.0, 0.0, 0.0, 1.0, 1.0, 1.0];
        let (mut rm, mut rv) = (vec![0.0f64; dim], vec![1.0f64; dim]);
        for (stream, rows) in [(10, 6), (11, 4)] {
            let xv = random(rows * dim, stream, -2.0, 3.0);
            layer.forward(MatRef::new(rows, dim, &xv).unwrap(), &params, &buffers, &TRAIN).unwrap();
            layer.update_buffers(&mut buffers);
            let (mean, var) = col_stats(&to64(&xv), dim);
            for j in 0..dim {
                rm[j] = (1.0 - m) * rm[j] + m * mean[j];
                rv[j] = (1.0 - m) * rv[j] + m * var[j] * rows as f64 / (rows - 1) as f64;
            }
        }
        assert!(rel_err(&buffers[..dim], &rm) < 1e-6 && rel_err(&buffers[dim..], &rv) < 1e-6, "{buffers:?} vs {rm:?} {rv:?}");
        // Inference normalises with exactly these statistics and keeps them.
        let x = random(5 * dim, 12, -2.0, 2.0);
        let before = buffers.clone();
        layer.forward(MatRef::new(5, dim, &x).unwrap(), &params, &buffers, &Ctx::inference()).unwrap();
        assert_eq!(buffers, before);
        let want = reference(&to64(&x), &to64(&params), dim, Some((&to64(&buffers[..dim]), &to64(&buffers[dim..]))));
        assert!(rel_err(layer.output().data, &want) < 1e-6);
    }

    #[test]
    fn one_sample_uses_the_biased_variance() {
        let (mut layer, params, _, x) = setup(3, 1, 0.0);
        let mut buffers = vec![0.0, 0.0, 0.0, 1.0, 1.0, 1.0];
        layer.forward(x.view(), &params, &buffers, &TRAIN).unwrap();
        layer.update_buffers(&mut buffers);
        // xhat = 0, so y = beta; the running variance decays towards 0.
        assert_eq!(layer.output().data, &params[3..]);
        assert_eq!(&buffers[3..], &[0.9, 0.9, 0.9]);
    }

    #[test]
    fn large_offsets_keep_precision() {
        let (mut layer, params, buffers, x) = setup(16, 64, 1e4);
        layer.forward(x.view(), &params, &buffers, &TRAIN).unwrap();
        let want = reference(&to64(x.as_slice()), &to64(&params), 16, None);
        let e = rel_err(layer.output().data, &want);
        assert!(e < 1e-6, "relative error {e}");
    }

    #[test]
    fn same_results_on_any_thread_count() {
        // 600 x 70 passes the parallel threshold; 70 does not divide PAR_CHUNK.
        let (mut layer, params, buffers, x) = setup(70, 600, 0.5);
        for ctx in [TRAIN, Ctx::inference()] {
            let one = run_in_pool(&mut layer, 1, &x, &params, &buffers, &ctx);
            assert_eq!(one, run_in_pool(&mut layer, 4, &x, &params, &buffers, &ctx));
        }
    }

    #[test]
    fn rejects_bad_config_and_shapes() {
        let mut alloc = Alloc::default();
        assert!(matches!(BatchNorm::new(0, 0.1, 1e-5, &mut alloc), Err(Error::Config(_))));
        for momentum in [-0.1, 1.1, f32::NAN] {
            assert!(matches!(BatchNorm::new(3, momentum, 1e-5, &mut alloc), Err(Error::Config(_))));
        }
        for eps in [0.0, -1.0, f32::NAN, f32::INFINITY] {
            assert!(matches!(BatchNorm::new(3, 0.1, eps, &mut alloc), Err(Error::Config(_))));
        }
        let (mut layer, params, buffers, x) = setup(4, 5, 0.0);
        let wide = Matrix::zeros(5, 3);
        assert!(matches!(layer.forward(wide.view(), &params, &buffers, &TRAIN), Err(Error::Shape(_))));
        let empty = Matrix::zeros(0, 4);
        assert!(matches!(layer.forward(empty.view(), &params, &buffers, &TRAIN), Err(Error::Empty(_))));
        layer.forward(empty.view(), &params, &buffers, &Ctx::inference()).unwrap();
        layer.forward(x.view(), &params, &buffers, &TRAIN).unwrap();
        let mut grads = vec![0.0; params.len()];
        let mut dy = Matrix::zeros(4, 4);
        assert!(matches!(layer.backward(x.view(), &params, &mut grads, &mut dy, None), Err(Error::Shape(_))));
        let mut dy = Matrix::zeros(5, 4);
        let short = Matrix::zeros(4, 4);
        assert!(matches!(layer.backward(short.view(), &params, &mut grads, &mut dy, None), Err(Error::Shape(_))));
    }

    /// Over the last axis of N-D inputs: exactly the plain layer on the `[N·P, C]`
    /// rows (forward, gradients, input gradient, running statistics), and the
    /// running variance is unbiased over the N·P values (PyTorch's BatchNorm2d).
    #[test]
    fn last_axis_equals_the_plain_layer_on_rows() {
        let (mut plain, params, buffers, rows) = setup(3, 20, 0.5);
        let spec = BatchNormSpec { momentum: 0.1, eps: 1e-5, in_features: Some(3), data_format: DataFormat::ChannelsLast };
        let mut nd = spec.build(12, &mut Alloc::default()).unwrap();
        assert_eq!(nd.out_dim(), 12);
        assert!(matches!(spec.build(13, &mut Alloc::default()), Err(Error::Config(_))));
        let samples = Matrix::from_vec(5, 12, rows.as_slice().to_vec()).unwrap();
        for ctx in [TRAIN, Ctx::inference()] {
            let a = run_in_pool(&mut plain, 1, &rows, &params, &buffers, &ctx);
            // run_in_pool's output gradient is sin(x): the same values in both layouts.
            let b = run_in_pool(&mut nd, 1, &samples, &params, &buffers, &ctx);
            assert_eq!(a, b);
            assert_eq!(nd.output().cols, 12);
        }
    }

    /// Channels_first (`[C, P]` samples): exactly the channels_last layer on the
    /// sample-wise transposed inputs, outputs and gradients transposed back, and
    /// bit-identical on one thread or four.
    #[test]
    fn channels_first_is_the_transposed_last_axis() {
        let (c, p, n) = (3, 7, 40);
        let spec = |data_format| BatchNormSpec { momentum: 0.1, eps: 1e-5, in_features: Some(c), data_format };
        let mut last = spec(DataFormat::ChannelsLast).build(c * p, &mut Alloc::default()).unwrap();
        let mut first = spec(DataFormat::ChannelsFirst).build(c * p, &mut Alloc::default()).unwrap();
        let (_, params, buffers, _) = setup(c, 1, 0.0);
        let xl = Matrix::from_vec(n, c * p, random(n * c * p, 5, -1.0, 2.0)).unwrap();
        let mut xf = Matrix::zeros(n, c * p);
        transpose_samples(xl.as_slice(), p, c, xf.as_mut_slice());
        let back = |m: &[f32]| {
            let mut out = vec![0.0; m.len()];
            transpose_samples(m, c, p, &mut out);
            out
        };
        for ctx in [TRAIN, Ctx::inference()] {
            let [yl, dxl, gl, bl] = run_in_pool(&mut last, 1, &xl, &params, &buffers, &ctx);
            let f1 = run_in_pool(&mut first, 1, &xf, &params, &buffers, &ctx);
            assert_eq!(back(&f1[0]), yl);
            assert_eq!(back(&f1[1]), dxl);
            assert_eq!((&f1[2], &f1[3]), (&gl, &bl));
            assert_eq!(f1, run_in_pool(&mut first, 4, &xf, &params, &buffers, &ctx));
        }
    }
}
