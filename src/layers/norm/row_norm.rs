//! [`LayerNorm`] (Ba et al. 2016) and [`RMSNorm`] (Zhang & Sennrich 2019), the
//! per-row norms, with their specs: both are one core, `RowNorm`, that
//! normalises each row of `x` over its features, centring it (LayerNorm) or not
//! (RMSNorm). The helpers they share with BatchNorm live in `norm.rs`.

use multiversion::multiversion;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::{block_rows, check_backward, check_config, check_input, eps_norm, grad_sums, store, sum_f64};
use crate::error::{try_grow, try_vec, Result};
use crate::kernels::parallel_for;
use crate::layers::kind::{Alloc, BuildLayer, Ctx, LayerKind, ParamInfo};
use crate::tensor::{MatRef, Matrix};

fn eps_rms() -> f32 {
    1e-6
}

/// `{"type": "layer_norm", "eps": ..}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerNormSpec {
    #[serde(default = "eps_norm")]
    pub eps: f32,
}

impl BuildLayer for LayerNormSpec {
    type Layer = LayerNorm;

    fn build(&self, in_dim: usize, alloc: &mut Alloc) -> Result<LayerNorm> {
        LayerNorm::new(in_dim, self.eps, alloc)
    }
}

/// `{"type": "rms_norm", "eps": ..}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RmsNormSpec {
    #[serde(default = "eps_rms")]
    pub eps: f32,
}

impl BuildLayer for RmsNormSpec {
    type Layer = RMSNorm;

    fn build(&self, in_dim: usize, alloc: &mut Alloc) -> Result<RMSNorm> {
        RMSNorm::new(in_dim, self.eps, alloc)
    }
}

/// The computation LayerNorm and RMSNorm share: per row,
/// `xhat = (x - mean)/sqrt(var + eps)` with `mean = 0` and `var = mean(x²)`
/// when not centring, then `y = gamma·xhat (+ beta)`.
#[derive(Clone, Debug)]
struct RowNorm {
    kind: &'static str,
    dim: usize,
    eps: f32,
    /// Subtract the row mean (LayerNorm) or not (RMSNorm).
    center: bool,
    gamma_off: usize,
    /// Only LayerNorm has a shift.
    beta_off: Option<usize>,
    y: Matrix,
    /// The normalised input of the last forward pass, for the backward pass.
    xhat: Matrix,
    /// `1/sqrt(var + eps)` of each row of the last forward pass.
    inv_std: Vec<f32>,
    /// `f64` accumulators of the parameter gradients, `2·dim`.
    acc: Vec<f64>,
}

impl RowNorm {
    fn new(kind: &'static str, dim: usize, eps: f32, center: bool, alloc: &mut Alloc) -> Result<Self> {
        check_config(kind, dim, eps)?;
        let gamma_off = alloc.params(dim, &format!("{kind} gamma"))?;
        let beta_off = if center { Some(alloc.params(dim, &format!("{kind} beta"))?) } else { None };
        Ok(Self {
            kind,
            dim,
            eps,
            center,
            gamma_off,
            beta_off,
            y: Matrix::zeros(0, dim),
            xhat: Matrix::zeros(0, dim),
            inv_std: Vec::new(),
            acc: Vec::new(),
        })
    }

    fn params(&self) -> Vec<ParamInfo> {
        let mut p = vec![ParamInfo::new("gamma", self.gamma_off, vec![self.dim])];
        p.extend(self.beta_off.map(|o| ParamInfo::new("beta", o, vec![self.dim])));
        p
    }

    fn init(&self, params: &mut [f32]) {
        params[self.gamma_off..self.gamma_off + self.dim].fill(1.0);
        if let Some(o) = self.beta_off {
            params[o..o + self.dim].fill(0.0);
        }
    }

    fn forward(&mut self, x: MatRef<'_>, params: &[f32]) -> Result<()> {
        check_input(self.kind, x, self.dim)?;
        let (dim, eps, center) = (self.dim, f64::from(self.eps), self.center);
        let gamma = &params[self.gamma_off..self.gamma_off + dim];
        let beta = self.beta_off.map(|o| &params[o..o + dim]);
        self.y.resize_rows(x.rows)?;
        self.xhat.resize_rows(x.rows)?;
        try_grow(&mut self.inv_std, x.rows, "a normalisation workspace")?;
        self.inv_std.resize(x.rows, 0.0);
        let run = |x: &[f32], y: &mut [f32], xhat: &mut [f32], inv: &mut [f32]| {
            normalize_rows(x, gamma, beta, eps, center, y, xhat, inv);
        };
        if parallel_for(x.data.len()) {
            let rows = block_rows(dim);
            x.data
                .par_chunks(rows * dim)
                .zip(self.y.as_mut_slice().par_chunks_mut(rows * dim))
                .zip(self.xhat.as_mut_slice().par_chunks_mut(rows * dim))
                .zip(self.inv_std.par_chunks_mut(rows))
                .for_each(|(((xc, yc), hc), ic)| run(xc, yc, hc, ic));
        } else {
            run(x.data, self.y.as_mut_slice(), self.xhat.as_mut_slice(), &mut self.inv_std);
        }
        Ok(())
    }

    fn backward(&mut self, x: MatRef<'_>, params: &[f32], grads: &mut [f32], dy: &mut Matrix, dx: Option<&mut Matrix>) -> Result<()> {
        let (rows, dim, center) = (self.xhat.rows(), self.dim, self.center);
        check_backward(self.kind, x, dy, rows, dim)?;
        // Reserved here, the first use, so building reserves only offsets.
        if self.acc.is_empty() {
            self.acc = try_vec(2 * dim, 0.0, &format!("{} workspaces", self.kind))?;
        }
        // Parameter gradients first: the dx pass below turns dy into dxhat.
        grad_sums(dy.as_slice(), self.xhat.as_slice(), &mut self.acc);
        store(&mut grads[self.gamma_off..self.gamma_off + dim], &self.acc[..dim]);
        if let Some(o) = self.beta_off {
            store(&mut grads[o..o + dim], &self.acc[dim..]);
        }
        let Some(dx) = dx else { return Ok(()) };
        dx.reshape_for(rows, dim)?;
        let gamma = &params[self.gamma_off..self.gamma_off + dim];
        let run = |dy: &mut [f32], xhat: &[f32], inv: &[f32], dx: &mut [f32]| backward_rows(dy, xhat, inv, gamma, center, dx);
        if parallel_for(dy.as_slice().len()) {
            let n = block_rows(dim) * dim;
            dy.as_mut_slice()
                .par_chunks_mut(n)
                .zip(self.xhat.as_slice().par_chunks(n))
                .zip(self.inv_std.par_chunks(n / dim))
                .zip(dx.as_mut_slice().par_chunks_mut(n))
                .for_each(|(((dc, hc), ic), xc)| run(dc, hc, ic, xc));
        } else {
            run(dy.as_mut_slice(), self.xhat.as_slice(), &self.inv_std, dx.as_mut_slice());
        }
        Ok(())
    }
}

/// Forward pass over a block of whole rows (`dim = gamma.len()`).
#[multiversion(targets("x86_64+avx512f+avx512bw+avx512vl+avx512dq", "x86_64+avx2+fma"))]
#[allow(clippy::too_many_arguments)]
fn normalize_rows(x: &[f32], gamma: &[f32], beta: Option<&[f32]>, eps: f64, center: bool, y: &mut [f32], xhat: &mut [f32], inv_std: &mut [f32]) {
    let dim = gamma.len();
    let n = dim as f64;
    let rows = x.chunks_exact(dim).zip(y.chunks_exact_mut(dim)).zip(xhat.chunks_exact_mut(dim));
    for (((xr, yr), hr), inv) in rows.zip(inv_std) {
        let mean = if center { sum_f64(xr, xr, |v, _| v) / n } else { 0.0 };
        let var = sum_f64(xr, xr, |v, _| (v - mean) * (v - mean)) / n;
        let s = 1.0 / (var + eps).sqrt();
        *inv = s as f32;
        // x - mean in f64: in f32 a mean large against the spread would cost digits.
        for ((h, &v), (o, &g)) in hr.iter_mut().zip(xr).zip(yr.iter_mut().zip(gamma)) {
            *h = ((f64::from(v) - mean) * s) as f32;
            *o = g * *h;
        }
        if let Some(beta) = beta {
            yr.iter_mut().zip(beta).for_each(|(o, &b)| *o += b);
        }
    }
}

/// `dx = inv_std·(dxhat - mean(dxhat) - xhat·mean(dxhat·xhat))` over a block
/// of rows, with `dxhat = dy·gamma` written into `dy` (scratch by contract);
/// without centring the `mean(dxhat)` term is absent.
#[multiversion(targets("x86_64+avx512f+avx512bw+avx512vl+avx512dq", "x86_64+avx2+fma"))]
fn backward_rows(dy: &mut [f32], xhat: &[f32], inv_std: &[f32], gamma: &[f32], center: bool, dx: &mut [f32]) {
    let dim = gamma.len();
    let n = dim as f64;
    let rows = dy.chunks_exact_mut(dim).zip(xhat.chunks_exact(dim)).zip(dx.chunks_exact_mut(dim));
    for (((dr, hr), xr), &s) in rows.zip(inv_std) {
        dr.iter_mut().zip(gamma).for_each(|(d, &g)| *d *= g);
        let a = if center { (sum_f64(dr, dr, |d, _| d) / n) as f32 } else { 0.0 };
        let b = (sum_f64(dr, hr, |d, h| d * h) / n) as f32;
        for ((o, &d), &h) in xr.iter_mut().zip(dr.iter()).zip(hr) {
            *o = s * (d - a - h * b);
        }
    }
}

/// Layer normalisation: each sample is normalised over its features,
/// `y = gamma·(x - mean)/sqrt(var + eps) + beta` with the row's mean and
/// biased variance; the same in training and inference.
///
/// Parameters: `gamma` `[dim]` (starts at 1), `beta` `[dim]` (starts at 0).
#[derive(Clone, Debug)]
pub struct LayerNorm(RowNorm);

impl LayerNorm {
    /// # Errors
    /// `Error::Config` when `dim` is zero or `eps` is not finite and positive.
    pub fn new(dim: usize, eps: f32, alloc: &mut Alloc) -> Result<Self> {
        RowNorm::new("LayerNorm", dim, eps, true, alloc).map(Self)
    }
}

/// Root-mean-square normalisation: `y = gamma·x / sqrt(mean(x²) + eps)` per
/// sample, with no centring and no shift; the same in training and inference.
///
/// Parameters: `gamma` `[dim]` (starts at 1).
#[derive(Clone, Debug)]
pub struct RMSNorm(RowNorm);

impl RMSNorm {
    /// # Errors
    /// `Error::Config` when `dim` is zero or `eps` is not finite and positive.
    pub fn new(dim: usize, eps: f32, alloc: &mut Alloc) -> Result<Self> {
        RowNorm::new("RMSNorm", dim, eps, false, alloc).map(Self)
    }
}

/// Both are a `RowNorm` with a different flag; the trait just forwards.
macro_rules! row_norm_kind {
    ($ty:ident) => {
        impl LayerKind for $ty {
            fn out_dim(&self) -> usize {
                self.0.dim
            }

            fn params(&self) -> Vec<ParamInfo> {
                self.0.params()
            }

            fn init(&self, params: &mut [f32], _buffers: &mut [f32], _rng: &mut ChaCha8Rng) {
                self.0.init(params);
            }

            fn forward(&mut self, x: MatRef<'_>, params: &[f32], _buffers: &[f32], _ctx: &Ctx) -> Result<()> {
                self.0.forward(x, params)
            }

            fn output(&self) -> MatRef<'_> {
                self.0.y.view()
            }

            fn backward(&mut self, x: MatRef<'_>, params: &[f32], grads: &mut [f32], dy: &mut Matrix, dx: Option<&mut Matrix>) -> Result<()> {
                self.0.backward(x, params, grads, dy, dx)
            }
        }
    };
}

row_norm_kind!(LayerNorm);
row_norm_kind!(RMSNorm);
#[cfg(test)]
mod tests {
    use crate::layers::testkit::{self, check_grads, random, run_in_pool};
    use super::*;
    use crate::error::Error;

    /// Independent f64 forward of both kinds; params are `gamma` then `beta`.
    fn reference(x: &[f64], p: &[f64], dim: usize, center: bool, eps: f64) -> Vec<f64> {
        let mut y = Vec::with_capacity(x.len());
        for row in x.chunks(dim) {
            let mean = if center { row.iter().sum::<f64>() / dim as f64 } else { 0.0 };
            let var = row.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / dim as f64;
            for (j, v) in row.iter().enumerate() {
                let beta = if center { p[dim + j] } else { 0.0 };
                y.push(p[j] * (v - mean) / (var + eps).sqrt() + beta);
            }
        }
        y
    }

    fn setup(center: bool, dim: usize, rows: usize, offset: f32) -> (Box<dyn LayerKind + Send>, Vec<f32>, Matrix) {
        let mut alloc = Alloc::default();
        let layer: Box<dyn LayerKind + Send> = if center {
            Box::new(LayerNorm::new(dim, 1e-5, &mut alloc).unwrap())
        } else {
            Box::new(RMSNorm::new(dim, 1e-5, &mut alloc).unwrap())
        };
        let mut params = vec![f32::NAN; alloc.params];
        layer.init(&mut params, &mut [], &mut crate::init::rng_for(0, 0));
        assert!(params[..dim].iter().all(|&g| g == 1.0) && params[dim..].iter().all(|&b| b == 0.0));
        // Distinct gamma and beta, so a wrong column index would show.
        let p = random(params.len(), 1, 0.5, 1.5);
        params.iter_mut().zip(p).enumerate().for_each(|(i, (v, r))| *v = if i < dim { r } else { r - 1.0 });
        let x = random(rows * dim, 2, -1.0, 1.0).iter().map(|v| v + offset).collect();
        (layer, params, Matrix::from_vec(rows, dim, x).unwrap())
    }

    #[test]
    fn gradients_match_finite_differences() {
        for center in [true, false] {
            let (mut layer, params, x) = setup(center, 4, 5, 0.0);
            let names: Vec<String> = layer.params().into_iter().map(|p| p.name).collect();
            assert_eq!(names, if center { vec!["gamma", "beta"] } else { vec!["gamma"] });
            for ctx in [Ctx { training: true, seed: 0, step: 0 }, Ctx::inference()] {
                check_grads(&mut *layer, &x, &params, &mut [], &ctx, |x, p| reference(x, p, 4, center, 1e-5));
            }
        }
    }

    #[test]
    fn large_offsets_keep_precision() {
        for center in [true, false] {
            let (mut layer, params, x) = setup(center, 64, 3, 1e4);
            layer.forward(x.view(), &params, &[], &Ctx::inference()).unwrap();
            let want = reference(&testkit::to64(x.as_slice()), &testkit::to64(&params), 64, center, 1e-5);
            let e = testkit::rel_err(layer.output().data, &want);
            assert!(e < 1e-6, "center={center}: relative error {e}");
        }
    }

    #[test]
    fn same_results_on_any_thread_count() {
        for center in [true, false] {
            // 600 x 70 passes the parallel threshold; 70 does not divide PAR_CHUNK.
            let (mut layer, params, x) = setup(center, 70, 600, 0.0);
            let one = run_in_pool(&mut *layer, 1, &x, &params, &[], &Ctx::inference());
            assert_eq!(one, run_in_pool(&mut *layer, 4, &x, &params, &[], &Ctx::inference()));
        }
    }

    #[test]
    fn rejects_bad_config_and_shapes() {
        let mut alloc = Alloc::default();
        assert!(matches!(LayerNorm::new(0, 1e-5, &mut alloc), Err(Error::Config(_))));
        for eps in [0.0, -1.0, f32::NAN, f32::INFINITY] {
            assert!(matches!(RMSNorm::new(3, eps, &mut alloc), Err(Error::Config(_))));
        }
        let (mut layer, params, x) = setup(true, 4, 5, 0.0);
        let wide = Matrix::zeros(5, 3);
        assert!(matches!(layer.forward(wide.view(), &params, &[], &Ctx::inference()), Err(Error::Shape(_))));
        layer.forward(x.view(), &params, &[], &Ctx::inference()).unwrap();
        let mut grads = vec![0.0; params.len()];
        let mut dy = Matrix::zeros(4, 4);
        assert!(matches!(layer.backward(x.view(), &params, &mut grads, &mut dy, None), Err(Error::Shape(_))));
    }
}
