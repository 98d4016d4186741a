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
