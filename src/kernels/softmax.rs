//! Row-wise softmax and log-softmax over the last axis, with temperature, and
//! their gradients.
//!
//! Logits are shifted by the row maximum before exponentiation (the
//! log-sum-exp trick), so logits of any finite size give finite results.
//! Row reductions accumulate in 16 fixed lanes: wide enough to vectorise, and
//! the summation order depends only on the row length, never on the CPU's
//! vector width or the thread count, so results are bit-reproducible.

use multiversion::multiversion;
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::kernels::{math, parallel_for, PAR_CHUNK};

const LANES: usize = 16;

/// Returns `Error::Config` unless `temperature` is finite and positive; the
/// kernels below assume it is.
///
/// # Errors
/// `Error::Config` naming the bad value.
pub fn check_temperature(temperature: f32) -> Result<()> {
    if temperature.is_finite() && temperature > 0.0 {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "softmax temperature must be a finite number > 0, got {temperature}"
        )))
    }
}

#[inline(always)]
fn row_max(x: &[f32]) -> f32 {
    let pick = |m: f32, &v: &f32| if v > m { v } else { m };
    if x.len() < LANES {
        // Short rows (e.g. 10 classes) would otherwise pay for folding 16 idle lanes.
        return x.iter().fold(f32::NEG_INFINITY, pick);
    }
    let mut acc = [f32::NEG_INFINITY; LANES];
    let mut chunks = x.chunks_exact(LANES);
    for c in &mut chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a = if v > *a { v } else { *a };
        }
    }
    acc.iter()
        .chain(chunks.remainder())
        .fold(f32::NEG_INFINITY, pick)
}

#[inline(always)]
fn fold_lanes(acc: [f32; LANES], tail: f32) -> f32 {
    // A fixed pairwise tree: its order is part of the result, so it never varies.
    let mut w = acc;
    let mut width = LANES / 2;
    while width > 0 {
        for i in 0..width {
            w[i] += w[i + width];
        }
        width /= 2;
    }
    w[0] + tail
}

#[inline(always)]
fn row_sum(x: &[f32]) -> f32 {
    if x.len() < LANES {
        return x.iter().sum();
    }
    let mut acc = [0.0f32; LANES];
    let mut chunks = x.chunks_exact(LANES);
    for c in &mut chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += v;
        }
    }
    fold_lanes(acc, chunks.remainder().iter().sum())
}

#[inline(always)]
fn row_dot(a: &[f32], b: &[f32]) -> f32 {
    if a.len() < LANES {
        return a.iter().zip(b).map(|(&u, &v)| u * v).sum();
    }
    let mut acc = [0.0f32; LANES];
    let mut ca = a.chunks_exact(LANES);
    let mut cb = b.chunks_exact(LANES);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for ((s, &u), &v) in acc.iter_mut().zip(x).zip(y) {
            *s += u * v;
        }
    }
    let tail = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(&u, &v)| u * v)
        .sum();
    fold_lanes(acc, tail)
}

/// Softmax of each row; `scale` divides by the temperature (or is the identity
/// when it is 1, sparing a division per element).
#[inline(always)]
fn softmax_rows_with(x: &[f32], cols: usize, out: &mut [f32], scale: impl Fn(f32) -> f32) {
    for (xr, or) in x.chunks_exact(cols).zip(out.chunks_exact_mut(cols)) {
        let m = row_max(xr);
        for (o, &v) in or.iter_mut().zip(xr) {
            *o = math::exp(scale(v - m));
        }
        // The sum is at least 1 (the maximum contributes e^0), so this is finite.
        let inv = 1.0 / row_sum(or);
        for o in or.iter_mut() {
            *o *= inv;
        }
    }
}

#[inline(always)]
fn log_softmax_rows_with(x: &[f32], cols: usize, out: &mut [f32], scale: impl Fn(f32) -> f32) {
    for (xr, or) in x.chunks_exact(cols).zip(out.chunks_exact_mut(cols)) {
        let m = row_max(xr);
        // `or` doubles as scratch for the exponentials before receiving the result.
        for (o, &v) in or.iter_mut().zip(xr) {
            *o = math::exp(scale(v - m));
        }
        let lse = row_sum(or).ln();
        for (o, &v) in or.iter_mut().zip(xr) {
            *o = scale(v - m) - lse;
        }
    }
}

#[multiversion(targets("x86_64+avx512f+avx512bw+avx512vl+avx512dq", "x86_64+avx2+fma"))]
fn softmax_block(x: &[f32], cols: usize, t: f32, out: &mut [f32], log: bool) {
    match (log, t == 1.0) {
        (false, true) => softmax_rows_with(x, cols, out, |v| v),
        (false, false) => softmax_rows_with(x, cols, out, move |v| v / t),
        (true, true) => log_softmax_rows_with(x, cols, out, |v| v),
        (true, false) => log_softmax_rows_with(x, cols, out, move |v| v / t),
    }
}

#[multiversion(targets("x86_64+avx512f+avx512bw+avx512vl+avx512dq", "x86_64+avx2+fma"))]
fn softmax_backward_block(y: &[f32], dy: &[f32], cols: usize, t: f32, dx: &mut [f32]) {
    let rows = y.chunks_exact(cols).zip(dy.chunks_exact(cols));
    for ((yr, dyr), dxr) in rows.zip(dx.chunks_exact_mut(cols)) {
        let s = row_dot(dyr, yr);
        for ((d, &yv), &g) in dxr.iter_mut().zip(yr).zip(dyr) {
            *d = yv * (g - s) / t;
        }
    }
}

#[multiversion(targets("x86_64+avx512f+avx512bw+avx512vl+avx512dq", "x86_64+avx2+fma"))]
fn log_softmax_backward_block(logy: &[f32], dy: &[f32], cols: usize, t: f32, dx: &mut [f32]) {
    let rows = logy.chunks_exact(cols).zip(dy.chunks_exact(cols));
    for ((lr, dyr), dxr) in rows.zip(dx.chunks_exact_mut(cols)) {
        let s = row_sum(dyr);
        for ((d, &l), &g) in dxr.iter_mut().zip(lr).zip(dyr) {
            *d = (g - math::exp(l) * s) / t;
        }
    }
}

/// Whole rows per parallel chunk, about `PAR_CHUNK` values.
fn row_chunk(cols: usize) -> usize {
    cols * (PAR_CHUNK / cols).max(1)
}

fn forward(x: &[f32], cols: usize, temperature: f32, out: &mut [f32], log: bool) {
    if cols == 0 {
        return;
    }
    debug_assert_eq!(
        x.len(),
        out.len(),
        "softmax: input and output lengths differ"
    );
    debug_assert_eq!(
        x.len() % cols,
        0,
        "softmax: input is not a whole number of rows"
    );
    debug_assert!(
        temperature.is_finite() && temperature > 0.0,
        "softmax: bad temperature {temperature}"
    );
    if parallel_for(x.len()) {
        let chunk = row_chunk(cols);
        x.par_chunks(chunk)
            .zip(out.par_chunks_mut(chunk))
            .for_each(|(xc, oc)| softmax_block(xc, cols, temperature, oc, log));
    } else {
        softmax_block(x, cols, temperature, out, log);
    }
}

/// Softmax over each row of `x` with logits divided by `temperature`:
/// `out[r, j] = exp(x[r, j]/T) / Σ_k exp(x[r, k]/T)`.
///
/// Higher temperatures flatten the distribution, lower ones sharpen it (Hinton
/// et al. 2015, distillation).
///
/// # Shapes
/// `x` and `out` are row-major `rows × cols`; `cols == 0` does nothing.
/// `temperature` must be finite and > 0 (see [`check_temperature`]).
pub fn softmax_rows(x: &[f32], cols: usize, temperature: f32, out: &mut [f32]) {
    forward(x, cols, temperature, out, false);
}

/// Log-softmax over each row: `out[r, j] = x[r, j]/T − log Σ_k exp(x[r, k]/T)`,
/// computed as `(x − max)/T − log Σ exp((x − max)/T)` so that it never
/// overflows and keeps full precision for very negative outputs.
///
/// # Shapes
/// As for [`softmax_rows`].
pub fn log_softmax_rows(x: &[f32], cols: usize, temperature: f32, out: &mut [f32]) {
    forward(x, cols, temperature, out, true);
}

/// Gradient of [`softmax_rows`] w.r.t. its logits, given the output `y` and
/// the upstream gradient `dy`: `dx = y ⊙ (dy − Σ_row dy ⊙ y) / T`.
///
/// # Shapes
/// `y`, `dy` and `dx` are row-major `rows × cols`; `cols == 0` does nothing.
pub fn softmax_backward(y: &[f32], dy: &[f32], cols: usize, temperature: f32, dx: &mut [f32]) {
    if cols == 0 {
        return;
    }
    debug_assert!(
        y.len() == dy.len() && y.len() == dx.len(),
        "softmax_backward: lengths differ"
    );
    if parallel_for(y.len()) {
        let chunk = row_chunk(cols);
        y.par_chunks(chunk)
            .zip(dy.par_chunks(chunk))
            .zip(dx.par_chunks_mut(chunk))
            .for_each(|((yc, dyc), dxc)| softmax_backward_block(yc, dyc, cols, temperature, dxc));
    } else {
        softmax_backward_block(y, dy, cols, temperature, dx);
    }
}

/// Gradient of [`log_softmax_rows`] w.r.t. its logits, given the output `logy`
/// and the upstream gradient `dy`: `dx = (dy − exp(logy) · Σ_row dy) / T`.
///
/// # Shapes
/// As for [`softmax_backward`].
pub fn log_softmax_backward(
    logy: &[f32],
    dy: &[f32],
    cols: usize,
    temperature: f32,
    dx: &mut [f32],
) {
    if cols == 0 {
        return;
    }
    debug_assert!(
        logy.len() == dy.len() && logy.len() == dx.len(),
        "log_softmax_backward: lengths differ"
    );
    if parallel_for(logy.len()) {
        let chunk = row_chunk(cols);
        logy.par_chunks(chunk)
            .zip(dy.par_chunks(chunk))
            .zip(dx.par_chunks_mut(chunk))
            .for_each(|((lc, dyc), dxc)| {
                log_softmax_backward_block(lc, dyc, cols, temperature, dxc)
            });
    } else {
        log_softmax_backward_block(logy, dy, cols, temperature, dx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extreme_logits_stay_finite() {
        let x = [1e4f32, -1e4, 0.0];
        let mut y = [0.0; 3];
        softmax_rows(&x, 3, 1.0, &mut y);
        assert_eq!(y, [1.0, 0.0, 0.0]);
        log_softmax_rows(&x, 3, 1.0, &mut y);
        assert_eq!(y, [0.0, -2e4, -1e4]);
    }

    #[test]
    fn lane_reductions_cover_tails() {
        let x: Vec<f32> = (0..37).map(|i| i as f32).collect();
        assert_eq!(row_sum(&x), 666.0);
        assert_eq!(row_max(&x), 36.0);
        assert_eq!(
            row_dot(&x, &x),
            (0..37).map(|i| (i * i) as f32).sum::<f32>()
        );
        assert_eq!(row_max(&[]), f32::NEG_INFINITY);
    }

    #[test]
    fn temperature_check() {
        assert!(check_temperature(0.5).is_ok());
        for bad in [0.0, -1.0, f32::NAN, f32::INFINITY] {
            match check_temperature(bad) {
                Err(Error::Config(msg)) => assert!(msg.contains("temperature")),
                other => panic!("expected Config error, got {other:?}"),
            }
        }
    }

    #[test]
    fn uniform_row_and_empty_input() {
        let mut y = [0.0; 4];
        softmax_rows(&[3.0; 4], 4, 2.0, &mut y);
        assert!(y.iter().all(|&v| (v - 0.25).abs() < 1e-7));
        softmax_rows(&[], 0, 1.0, &mut []);
        log_softmax_backward(&[], &[], 0, 1.0, &mut []);
    }
}
