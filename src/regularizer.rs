//! L1 and L2 weight penalties (Keras' `kernel_regularizer` / `bias_regularizer`).
//!
//! A penalty `l1·Σ|w| + l2·Σw²` is added to the loss the model reports and its
//! gradient `l1·sign(w) + 2·l2·w` to the tensor's gradient, inside the training
//! step. This is not the optimizers' `weight_decay`: AdamW's decay is decoupled
//! from the gradient (it shrinks weights directly and never enters Adam's
//! moments), and SGD's / Adam's `weight_decay` adds `λ·w` to the gradient
//! without reporting a loss; a regularizer is part of the objective itself.

use serde::{Deserialize, Serialize};

use crate::error::{ensure_config, Result};
use crate::kernels::reduce::max_abs;

/// Penalty factors; either may be zero.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Regularizer {
    #[serde(default)]
    pub l1: f32,
    #[serde(default)]
    pub l2: f32,
}

impl Regularizer {
    /// # Errors
    /// `Error::Config` for negative or non-finite factors.
    pub fn validate(&self) -> Result<()> {
        ensure_config(self.l1.is_finite() && self.l1 >= 0.0 && self.l2.is_finite() && self.l2 >= 0.0, || {
            format!("regularizer factors must be finite and >= 0, got l1={}, l2={}", self.l1, self.l2)
        })
    }

    /// `l1·Σ|w| + l2·Σw²`, summed as the post-update check sums it (so the
    /// penalty a step reports does not depend on which path computed it).
    pub fn penalty(&self, w: &[f32]) -> f64 {
        let (_, abs, sq) = finite_sums(w, self.l1 != 0.0, self.l2 != 0.0);
        self.l1 as f64 * abs + self.l2 as f64 * sq
    }

    /// Adds the penalty's gradient `l1·sign(w) + 2·l2·w` to `g`.
    pub fn add_grad(&self, w: &[f32], g: &mut [f32]) {
        add_grad_kernel(w, g, self.l1, 2.0 * self.l2);
    }
}

#[multiversion::multiversion(targets("x86_64+avx512f+avx512bw+avx512vl+avx512dq", "x86_64+avx2+fma"))]
fn add_grad_kernel(w: &[f32], g: &mut [f32], l1: f32, l2x2: f32) {
    for (gi, &wi) in g.iter_mut().zip(w) {
        // sign(0) = 0, as PyTorch's and Keras' subgradient choice; copysign
        // and a mask keep the loop branch-free.
        let sign = if wi == 0.0 { 0.0 } else { 1.0f32.copysign(wi) };
        *gi += l1 * sign + l2x2 * wi;
    }
}

/// Values per partial sum: f32 lanes within a chunk, f64 across chunks, in a
/// fixed order (the same on every machine and thread count).
const CHUNK: usize = 1024;

/// Whether the penalty sums of `w` are finite, with `(Σ|w|, Σw²)` (each only
/// when asked for, else 0): the post-update check and the next step's penalty
/// in one pass. A NaN or infinite weight makes its sum NaN or infinite; so
/// does a weight whose square overflows f32 (|w| > 1.8e19), whose penalty
/// would make the next step's loss infinite anyway. At least one sum must be
/// asked for.
pub fn finite_sums(w: &[f32], l1: bool, l2: bool) -> (bool, f64, f64) {
    let (mut abs, mut sq) = (0.0, 0.0);
    for c in w.chunks(CHUNK) {
        let (a, s) = sums_kernel(c, l1, l2);
        abs += a;
        sq += s;
    }
    (abs.is_finite() && sq.is_finite(), abs, sq)
}

/// `(Σ|w|, Σw²)` of one chunk, each only when asked for. 64 f32 lanes = four
/// independent vector accumulators, to hide the add latency (a single f64
/// accumulator would serialise on it); compiled for AVX-512 and AVX2, picked
/// at run time.
#[multiversion::multiversion(targets("x86_64+avx512f+avx512bw+avx512vl+avx512dq", "x86_64+avx2+fma"))]
fn sums_kernel(w: &[f32], l1: bool, l2: bool) -> (f64, f64) {
    const LANES: usize = 64;
    let it = w.chunks_exact(LANES);
    let rem = it.remainder();
    // One accumulator array per loop: the vectoriser keeps each in registers.
    let (mut abs, mut sq) = ([0.0f32; LANES], [0.0f32; LANES]);
    if l1 {
        for c in it.clone() {
            for (a, &v) in abs.iter_mut().zip(c) {
                *a += v.abs();
            }
        }
    }
    if l2 {
        for c in it {
            for (a, &v) in sq.iter_mut().zip(c) {
                *a += v * v;
            }
        }
    }
    for (i, &v) in rem.iter().enumerate() {
        abs[i] += v.abs();
        sq[i] += v * v;
    }
    let sum = |x: [f32; LANES]| x.iter().map(|&v| v as f64).sum::<f64>();
    (if l1 { sum(abs) } else { 0.0 }, if l2 { sum(sq) } else { 0.0 })
}

/// A regularized tensor: its range in the parameter vector and its factors.
#[derive(Clone, Debug, PartialEq)]
pub struct Penalty {
    pub range: std::ops::Range<usize>,
    pub reg: Regularizer,
}

/// Σ of every penalty over `params`.
pub fn total(penalties: &[Penalty], params: &[f32]) -> f64 {
    penalties.iter().map(|p| p.reg.penalty(&params[p.range.clone()])).sum()
}

/// The flat parameter vector with the penalty of its current values, when
/// known. Reading is free (it derefs to `[f32]`); every write goes through
/// [`Weights::write`], which forgets the penalty, so no path that changes the
/// parameters can leave a stale one behind. The post-update [`Weights::check`]
/// computes it, for the next step to report, and keeps the largest magnitude
/// the update found (the training step's bound on its update, see
/// `optim::bound`), forgotten on a write likewise.
#[derive(Clone, Debug)]
pub(crate) struct Weights {
    values: Vec<f32>,
    penalty: Option<f64>,
    max_abs: Option<f32>,
}

impl std::ops::Deref for Weights {
    type Target = [f32];

    fn deref(&self) -> &[f32] {
        &self.values
    }
}

impl Weights {
    pub(crate) fn new(values: Vec<f32>) -> Self {
        Self { values, penalty: None, max_abs: None }
    }

    /// The values, to change them (the cached penalty and maximum are dropped).
    pub(crate) fn write(&mut self) -> &mut [f32] {
        self.penalty = None;
        self.max_abs = None;
        &mut self.values
    }

    /// The largest `|w|` (`+inf` if a value is not finite), cached until the next write.
    pub(crate) fn max_abs(&mut self) -> f32 {
        let values = &self.values;
        *self.max_abs.get_or_insert_with(|| max_abs(values))
    }

    /// Σ of every penalty over the current values (cached until the next write).
    pub(crate) fn penalty(&mut self, penalties: &[Penalty]) -> f64 {
        let values = &self.values;
        *self.penalty.get_or_insert_with(|| total(penalties, values))
    }

    /// Whether every value is finite, given the largest `|w|` (`top`, `+inf`
    /// for a non-finite value), which the optimizer's update takes on its own
    /// pass; caches it and the penalty, reading only the regularized tensors
    /// (for their sums, which also catch a square that overflows).
    pub(crate) fn check(&mut self, top: f32, penalties: &[Penalty]) -> bool {
        debug_assert_eq!(top.to_bits(), max_abs(&self.values).to_bits(), "a stale maximum");
        let (mut ok, mut penalty) = (top.is_finite(), 0.0);
        if ok {
            for p in penalties.iter().filter(|p| p.reg.l1 != 0.0 || p.reg.l2 != 0.0) {
                let (finite, abs, sq) = finite_sums(&self.values[p.range.clone()], p.reg.l1 != 0.0, p.reg.l2 != 0.0);
                ok &= finite;
                penalty += p.reg.l1 as f64 * abs + p.reg.l2 as f64 * sq;
            }
        }
        self.max_abs = Some(top);
        self.penalty = ok.then_some(penalty);
        ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn penalty_and_gradient() {
        let r = Regularizer { l1: 0.1, l2: 0.5 };
        let w = [1.0, -2.0, 0.0];
        let mut g = [0.0; 3];
        r.add_grad(&w, &mut g);
        assert!((r.penalty(&w) - (0.1 * 3.0 + 0.5 * 5.0)).abs() < 1e-6);
        assert_eq!(g, [0.1 + 1.0, -0.1 - 2.0, 0.0]);
        assert!(Regularizer { l1: -1.0, l2: 0.0 }.validate().is_err());
        let mut v = vec![0.5f32; 3000];
        assert_eq!(finite_sums(&v, true, true), (true, 1500.0, 750.0));
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            v[2999] = bad;
            assert!(!finite_sums(&v, true, false).0 && !finite_sums(&v, false, true).0);
        }
        assert!(Regularizer { l1: 0.0, l2: f32::NAN }.validate().is_err());
    }
}
