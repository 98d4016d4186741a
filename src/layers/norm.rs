//! Normalisation layers: [`LayerNorm`] (Ba et al. 2016) and [`RMSNorm`]
//! (Zhang & Sennrich 2019) in `norm/row_norm.rs`, [`BatchNorm`] (Ioffe &
//! Szegedy 2015) in `norm/batch_norm.rs`; here the helpers they share (row
//! blocks, `f64` sums, argument checks, parameter-gradient sums, the default
//! `eps`) and the test kit of all three.
//!
//! LayerNorm and RMSNorm normalise each row of `x` over its features, then
//! scale by a learned `gamma` (LayerNorm also shifts by `beta`). RMSNorm is
//! LayerNorm without the centring, so both run on one core, `RowNorm`. Neither
//! looks at other samples, so training and inference agree and blocks of rows
//! can go to different threads without changing any result.
//!
//! Statistics are summed in `f64`, and the variance takes a second pass around
//! the mean, so wide rows and inputs with a large offset keep their precision.

mod batch_norm;
mod row_norm;

pub use batch_norm::{BatchNorm, BatchNormSpec};
pub use row_norm::{LayerNorm, LayerNormSpec, RMSNorm, RmsNormSpec};

use multiversion::multiversion;

use crate::error::{ensure_config, ensure_shape, Result};
use crate::kernels::PAR_CHUNK;
use crate::tensor::{MatRef, Matrix};

/// Whole rows per parallel block, about `PAR_CHUNK` values. It depends on the
/// width only (never on the thread count), so results do not either.
fn block_rows(dim: usize) -> usize {
    (PAR_CHUNK / dim.max(1)).max(1)
}

/// `Σ_i f(a[i], b[i])` in `f64` over eight interleaved partial sums: a fixed
/// split, so the order (and the result) is always the same, that still lets
/// the loop vectorise where one running sum would serialise on its latency.
#[inline]
fn sum_f64(a: &[f32], b: &[f32], f: impl Fn(f64, f64) -> f64) -> f64 {
    debug_assert_eq!(a.len(), b.len());
    let mut acc = [0.0f64; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f64 = ca.remainder().iter().zip(cb.remainder()).map(|(&x, &y)| f(x.into(), y.into())).sum();
    for (xa, xb) in ca.zip(cb) {
        for ((s, &x), &y) in acc.iter_mut().zip(xa).zip(xb) {
            *s += f(x.into(), y.into());
        }
    }
    acc.iter().sum::<f64>() + tail
}

/// The default `eps` of LayerNorm and BatchNorm (PyTorch's).
fn eps_norm() -> f32 {
    1e-5
}

/// `Error::Config` unless `dim >= 1` and `eps` is finite and positive.
fn check_config(kind: &str, dim: usize, eps: f32) -> Result<()> {
    ensure_config(dim > 0, || format!("{kind} needs at least one feature, got dim=0"))?;
    ensure_config(eps.is_finite() && eps > 0.0, || format!("{kind} eps must be finite and > 0, got {eps}"))
}

/// `Error::Shape` unless `x` has `dim` columns.
fn check_input(kind: &str, x: MatRef<'_>, dim: usize) -> Result<()> {
    ensure_shape(x.cols == dim, || format!("{kind} expects inputs with {dim} features, got {} columns", x.cols))
}

/// `Error::Shape` unless `x` and `dy` are the `[rows, dim]` of the last forward pass.
fn check_backward(kind: &str, x: MatRef<'_>, dy: &Matrix, rows: usize, dim: usize) -> Result<()> {
    super::kind::check_backward(kind, x, dy, rows, dim, dim)
}

/// Column sums `Σ_rows dy·xhat` into `acc[..dim]` and `Σ_rows dy` into
/// `acc[dim..]` (`dim = acc.len() / 2`), in `f64`, one row after another so the
/// order is fixed. These are `dgamma` and `dbeta` of every norm layer here.
#[multiversion(targets("x86_64+avx512f+avx512bw+avx512vl+avx512dq", "x86_64+avx2+fma"))]
fn grad_sums(dy: &[f32], xhat: &[f32], acc: &mut [f64]) {
    let dim = acc.len() / 2;
    let (sg, sb) = acc.split_at_mut(dim);
    sg.fill(0.0);
    sb.fill(0.0);
    for (dr, hr) in dy.chunks_exact(dim).zip(xhat.chunks_exact(dim)) {
        for (((g, b), &d), &h) in sg.iter_mut().zip(sb.iter_mut()).zip(dr).zip(hr) {
            *g += f64::from(d) * f64::from(h);
            *b += f64::from(d);
        }
    }
}

/// Writes `src` (as `f32`) into `dst`, overwriting it.
fn store(dst: &mut [f32], src: &[f64]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = s as f32;
    }
}


/// Test helpers shared by `row_norm.rs` and `batch_norm.rs`: random data and a finite-difference
/// check of a layer against an independent `f64` forward.
#[cfg(test)]
mod testkit {
    use rand::Rng;

    use crate::init::rng_for;
    use crate::layers::kind::{Ctx, LayerKind};
    use crate::tensor::Matrix;

    pub fn random(len: usize, stream: u64, lo: f32, hi: f32) -> Vec<f32> {
        let mut rng = rng_for(7, stream);
        (0..len).map(|_| rng.random_range(lo..hi)).collect()
    }

    pub fn to64(v: &[f32]) -> Vec<f64> {
        v.iter().map(|&a| f64::from(a)).collect()
    }

    /// `‖a - b‖ / ‖b‖`.
    pub fn rel_err(a: &[f32], b: &[f64]) -> f64 {
        let diff = a.iter().zip(b).map(|(&x, &y)| (f64::from(x) - y).powi(2)).sum::<f64>().sqrt();
        diff / b.iter().map(|y| y * y).sum::<f64>().sqrt().max(1e-12)
    }

    fn numeric_grad(at: &[f64], f: impl Fn(&[f64]) -> f64) -> Vec<f64> {
        let h = 1e-5;
        let mut p = at.to_vec();
        (0..at.len())
            .map(|i| {
                p[i] = at[i] + h;
                let up = f(&p);
                p[i] = at[i] - h;
                let down = f(&p);
                p[i] = at[i];
                (up - down) / (2.0 * h)
            })
            .collect()
    }

    /// Runs `layer` forward and backward on `x` for the loss `Σ w·y` (random
    /// `w`) and checks its output, `dx` and every parameter gradient against
    /// `reference(x, params)` (an `f64` forward) and its central differences.
    /// The gradient slots start as NaN, so a layer that adds into them fails.
    pub fn check_grads<L: LayerKind + ?Sized>(layer: &mut L, x: &Matrix, params: &[f32], buffers: &mut [f32], ctx: &Ctx, reference: impl Fn(&[f64], &[f64]) -> Vec<f64>) {
        let (x64, p64) = (to64(x.as_slice()), to64(params));
        layer.forward(x.view(), params, buffers, ctx).unwrap();
        let want = reference(&x64, &p64);
        assert!(rel_err(layer.output().data, &want) < 1e-5, "forward differs from the reference");
        let w = random(want.len(), 99, -1.0, 1.0);
        let w64 = to64(&w);
        let loss = |x: &[f64], p: &[f64]| reference(x, p).iter().zip(&w64).map(|(y, c)| y * c).sum::<f64>();
        let dy = Matrix::from_vec(x.rows(), layer.out_dim(), w).unwrap();
        let (mut grads, mut dx) = (vec![f32::NAN; params.len()], Matrix::default());
        layer.backward(x.view(), params, &mut grads, &mut dy.clone(), Some(&mut dx)).unwrap();
        assert_eq!((dx.rows(), dx.cols()), (x.rows(), x.cols()));
        let e = rel_err(dx.as_slice(), &numeric_grad(&x64, |v| loss(v, &p64)));
        assert!(e <= 1e-3, "dx relative error {e}");
        let dp = numeric_grad(&p64, |v| loss(&x64, v));
        for info in layer.params() {
            let e = rel_err(&grads[info.range()], &dp[info.range()]);
            assert!(e <= 1e-3, "{} relative error {e}", info.name);
        }
        // Without dx the parameter gradients come out the same.
        let mut again = vec![f32::NAN; params.len()];
        layer.backward(x.view(), params, &mut again, &mut dy.clone(), None).unwrap();
        assert_eq!(grads, again);
    }

    /// Forward and backward inside a pool of `threads` threads (one thread
    /// takes the serial path): output, dx, gradients and buffers afterwards.
    pub fn run_in_pool<L: LayerKind + Send + ?Sized>(layer: &mut L, threads: usize, x: &Matrix, params: &[f32], buffers: &[f32], ctx: &Ctx) -> [Vec<f32>; 4] {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| {
            let mut buffers = buffers.to_vec();
            layer.forward(x.view(), params, &buffers, ctx).unwrap();
            layer.update_buffers(&mut buffers);
            let mut dy = Matrix::from_vec(x.rows(), layer.out_dim(), x.as_slice().iter().map(|v| v.sin()).collect()).unwrap();
            let (mut grads, mut dx) = (vec![0.0; params.len()], Matrix::default());
            layer.backward(x.view(), params, &mut grads, &mut dy, Some(&mut dx)).unwrap();
            [layer.output().data.to_vec(), dx.into_vec(), grads, buffers]
        })
    }
}
