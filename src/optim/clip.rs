//! Gradient clipping (Keras' `clipvalue`, `clipnorm` and `global_clipnorm`).
//!
//! Clipping never touches the caller's gradients: they are copied once per
//! step into a scratch buffer the [`Optimizer`](super::Optimizer) owns (sized
//! on the first step), clipped there, and the update reads the copy. Norms are
//! sums of squares in f64 over fixed `PAR_CHUNK` chunks, combined by a binary
//! tree whose shape depends only on the length, so a norm (and hence every
//! clipped value) is the same bits on any number of threads.

use std::ops::Range;

use rayon::prelude::*;

use crate::kernels::{parallel_for, PAR_CHUNK};

/// `eps` in the global-norm coefficient `max_norm / (norm + eps)`, as
/// `torch.nn.utils.clip_grad_norm_` uses it.
pub(crate) const GLOBAL_NORM_EPS: f64 = 1e-6;

/// Which clipping a configuration asks for; every field is `None` when it
/// asks for none.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Clipping {
    /// Clamp every gradient element to `[-clipvalue, clipvalue]`.
    pub clipvalue: Option<f32>,
    /// Rescale each parameter tensor's gradient to L2 norm `<= clipnorm`.
    pub clipnorm: Option<f32>,
    /// Rescale all gradients together to global L2 norm `<= global_clipnorm`.
    pub global_clipnorm: Option<f32>,
}

impl Clipping {
    /// Whether any clipping is configured.
    pub fn is_active(&self) -> bool {
        self.clipvalue.is_some() || self.clipnorm.is_some() || self.global_clipnorm.is_some()
    }

    /// Writes the clipped `grads` into `out` (same length): first `clipvalue`,
    /// then `clipnorm` per tensor of `tensors` (ranges tiling `out`), then
    /// `global_clipnorm`. Allocates nothing, and reads `grads` directly until
    /// a stage changes them (so global clipping alone is one norm pass and one
    /// scaled copy).
    pub(crate) fn apply(&self, grads: &[f32], out: &mut [f32], tensors: &[Range<usize>]) {
        debug_assert_eq!(grads.len(), out.len());
        // Whether `out` holds the current values (else they are still `grads`).
        let mut written = false;
        if let Some(v) = self.clipvalue {
            zip_chunks(out, grads, |o, g| clamp_chunk(o, g, v));
            written = true;
        }
        if let Some(c) = self.clipnorm {
            for r in tensors {
                let norm = if written {
                    sum_sq(&out[r.clone()])
                } else {
                    sum_sq(&grads[r.clone()])
                }
                .sqrt();
                // Keras: g * c / max(norm, c); a tensor within the bound is
                // left exactly as it is.
                let factor = (norm > f64::from(c)).then(|| (f64::from(c) / norm) as f32);
                rescale(written, &grads[r.clone()], &mut out[r.clone()], factor);
            }
            written = true;
        }
        if let Some(c) = self.global_clipnorm {
            let norm = if written { sum_sq(out) } else { sum_sq(grads) }.sqrt();
            let coef = f64::from(c) / (norm + GLOBAL_NORM_EPS);
            rescale(written, grads, out, (coef < 1.0).then_some(coef as f32));
            written = true;
        }
        if !written {
            zip_chunks(out, grads, |o, g| o.copy_from_slice(g));
        }
    }
}

impl Clipping {
    /// Whether the update can apply this clipping itself, element by element
    /// (`clamp(g, -bound, bound) · scale`), with no copy of the gradients:
    /// true for `clipvalue` and `global_clipnorm`, not for per-tensor `clipnorm`.
    pub(crate) fn fusable(&self) -> bool {
        self.is_active() && self.clipnorm.is_none()
    }

    /// `(bound, scale)` for a fused update: the clamp bound (`inf` without
    /// `clipvalue`) and the global-norm factor (1 when within the bound), from
    /// one read pass over `grads`. Applying them gives exactly the values
    /// [`Clipping::apply`] writes.
    pub(crate) fn fused_factors(&self, grads: &[f32]) -> (f32, f32) {
        let bound = self.clipvalue.unwrap_or(f32::INFINITY);
        let scale = match self.global_clipnorm {
            Some(c) => {
                let norm = sum_sq_clamped(grads, bound).sqrt();
                let coef = f64::from(c) / (norm + GLOBAL_NORM_EPS);
                if coef < 1.0 { coef as f32 } else { 1.0 }
            }
            None => 1.0,
        };
        (bound, scale)
    }
}

/// `Σ clamp(x, -bound, bound)²` in f64, in the same fixed order as [`sum_sq`].
fn sum_sq_clamped(x: &[f32], bound: f32) -> f64 {
    chunk_tree(x, parallel_for(x.len()), &|c| chunk_sum_sq_clamped(c, bound))
}

/// One chunk (at most `PAR_CHUNK` values) of [`sum_sq_clamped`]: 64 f32 lanes
/// (four vector accumulators, so the adds overlap), added into f64 at the end;
/// a chunk's partial sums stay far from f32's precision limits for gradients.
#[multiversion::multiversion(targets("x86_64+avx512f+avx512bw+avx512vl+avx512dq", "x86_64+avx2+fma"))]
fn chunk_sum_sq_clamped(x: &[f32], bound: f32) -> f64 {
    const LANES: usize = 64;
    let mut acc = [0.0f32; LANES];
    let mut it = x.chunks_exact(LANES);
    for c in &mut it {
        for (a, &v) in acc.iter_mut().zip(c) {
            let v = v.max(-bound).min(bound);
            *a += v * v;
        }
    }
    let mut total: f64 = acc.iter().map(|&a| f64::from(a)).sum();
    for &v in it.remainder() {
        let v = f64::from(v.max(-bound).min(bound));
        total += v * v;
    }
    total
}

/// Multiplies the current values by `factor` (`None`: leaves them as they
/// are), reading them from `out` when `written`, else from `grads`; `out`
/// then holds the result.
fn rescale(written: bool, grads: &[f32], out: &mut [f32], factor: Option<f32>) {
    match (written, factor) {
        (true, Some(s)) => scale(out, s),
        (true, None) => {}
        (false, Some(s)) => zip_chunks(out, grads, |o, g| {
            for (o, &g) in o.iter_mut().zip(g) {
                *o = g * s;
            }
        }),
        (false, None) => zip_chunks(out, grads, |o, g| o.copy_from_slice(g)),
    }
}

/// `f(out_chunk, in_chunk)` over matching `PAR_CHUNK` chunks, on the pool when large.
fn zip_chunks(out: &mut [f32], inp: &[f32], f: impl Fn(&mut [f32], &[f32]) + Sync) {
    if parallel_for(out.len()) {
        out.par_chunks_mut(PAR_CHUNK)
            .zip(inp.par_chunks(PAR_CHUNK))
            .for_each(|(o, i)| f(o, i));
    } else {
        f(out, inp);
    }
}

/// Multiplies every element by `s`.
fn scale(x: &mut [f32], s: f32) {
    let f = |c: &mut [f32]| c.iter_mut().for_each(|v| *v *= s);
    if parallel_for(x.len()) {
        x.par_chunks_mut(PAR_CHUNK).for_each(f);
    } else {
        f(x);
    }
}

/// `Σ x²` in f64, in an order fixed by the length alone.
pub(crate) fn sum_sq(x: &[f32]) -> f64 {
    chunk_tree(x, parallel_for(x.len()), &chunk_sum_sq)
}

/// Sums `chunk` over the `PAR_CHUNK` pieces of `x`: halves at a chunk
/// boundary down to single chunks and adds the halves' sums; the tree is the
/// same whether or not the halves run in parallel.
fn chunk_tree(x: &[f32], par: bool, chunk: &(dyn Fn(&[f32]) -> f64 + Sync)) -> f64 {
    if x.len() <= PAR_CHUNK {
        return chunk(x);
    }
    let mid = x.len().div_ceil(PAR_CHUNK) / 2 * PAR_CHUNK;
    let (lo, hi) = x.split_at(mid);
    if par {
        let (a, b) = rayon::join(|| chunk_tree(lo, true, chunk), || chunk_tree(hi, true, chunk));
        a + b
    } else {
        chunk_tree(lo, false, chunk) + chunk_tree(hi, false, chunk)
    }
}

/// `o = clamp(g, -v, v)`, compiled for AVX-512 and AVX2 (picked at run time).
#[multiversion::multiversion(targets("x86_64+avx512f+avx512bw+avx512vl+avx512dq", "x86_64+avx2+fma"))]
fn clamp_chunk(o: &mut [f32], g: &[f32], v: f32) {
    for (o, &g) in o.iter_mut().zip(g) {
        // max/min rather than clamp: NaN passes through as NaN
        // (clamp would too, but panics on a NaN bound).
        *o = g.max(-v).min(v);
    }
}

/// One chunk's sum of squares over eight independent f64 lanes (so it
/// vectorises without reassociation), the lanes then added in order;
/// compiled for AVX-512 and AVX2 (picked at run time).
#[multiversion::multiversion(targets("x86_64+avx512f+avx512bw+avx512vl+avx512dq", "x86_64+avx2+fma"))]
fn chunk_sum_sq(x: &[f32]) -> f64 {
    const LANES: usize = 8;
    let mut acc = [0.0f64; LANES];
    let mut it = x.chunks_exact(LANES);
    for c in &mut it {
        for (a, &v) in acc.iter_mut().zip(c) {
            let v = f64::from(v);
            *a += v * v;
        }
    }
    for (a, &v) in acc.iter_mut().zip(it.remainder()) {
        let v = f64::from(v);
        *a += v * v;
    }
    acc.iter().sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sum_sq_matches_and_ignores_threads() {
        let n = (1 << 15) * 3 + 77;
        let x: Vec<f32> = (0..n)
            .map(|i| ((i * 7919) % 1000) as f32 / 997.0 - 0.5)
            .collect();
        let exact: f64 = x.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
        let at = |threads| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| sum_sq(&x))
        };
        let (one, two) = (at(1), at(2));
        assert_eq!(one.to_bits(), two.to_bits());
        assert!((one - exact).abs() <= 1e-12 * exact, "{one} vs {exact}");
        assert_eq!(sum_sq(&[]), 0.0);
        assert_eq!(sum_sq(&[3.0, 4.0]), 25.0);
    }

    #[test]
    fn clips_in_order() {
        let c = Clipping {
            clipvalue: Some(2.0),
            clipnorm: Some(1.0),
            global_clipnorm: None,
        };
        let g = [3.0f32, -4.0, 0.5, 0.0];
        let mut out = [0.0f32; 4];
        // Tensors [0..2] and [2..4]: values clamp to (2, -2), norm 2.83 > 1
        // rescales; (0.5, 0) is within the bound and stays.
        c.apply(&g, &mut out, &[0..2, 2..4]);
        let s = 1.0 / 8.0f32.sqrt();
        assert!(
            (out[0] - 2.0 * s).abs() < 1e-6 && (out[1] + 2.0 * s).abs() < 1e-6,
            "{out:?}"
        );
        assert_eq!(&out[2..], &[0.5, 0.0]);

        let c = Clipping {
            global_clipnorm: Some(1.0),
            ..Clipping::default()
        };
        let whole = 0..2;
        c.apply(&[3.0, 4.0], &mut out[..2], std::slice::from_ref(&whole));
        let k = (1.0 / (5.0 + GLOBAL_NORM_EPS)) as f32;
        assert_eq!(&out[..2], &[3.0 * k, 4.0 * k]);
        c.apply(&[0.3, 0.4], &mut out[..2], std::slice::from_ref(&whole));
        assert_eq!(&out[..2], &[0.3, 0.4]);
    }
}
