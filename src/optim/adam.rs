//! Adam and AdamW, which differ only in how weight decay enters the step.
//!
//! Adam: Kingma & Ba, "Adam: A Method for Stochastic Optimization" (ICLR 2015).
//! AdamW: Loshchilov & Hutter, "Decoupled Weight Decay Regularization" (ICLR 2019).
//! Both follow PyTorch's `torch.optim.Adam` / `torch.optim.AdamW` update rule,
//! including the order of operations, except that the second moment's bias
//! correction is a multiplication by its reciprocal where PyTorch divides
//! (one rounding more or less in the denominator: results agree to rounding).

use serde::{Deserialize, Serialize};

use super::bound::{up, Peak, Sizes};
use super::{OptimizerOptions, Rule};
use crate::error::{ensure_config, Result};

/// Hyperparameters shared by [`Adam`](crate::optim::OptimizerConfig::Adam) and
/// [`AdamW`](crate::optim::OptimizerConfig::Adamw).
///
/// Per parameter at step `t` (PyTorch's rule; bias corrections in f64):
///
/// ```text
/// AdamW only: p = p * (1 - lr * weight_decay)
/// Adam only:  g = g + weight_decay * p
/// m = beta1 * m + (1 - beta1) * g
/// v = beta2 * v + (1 - beta2) * g * g
/// amsgrad:    v_max = max(v_max, v), and v_max replaces v below
/// p = p - (lr / (1 - beta1^t)) * m / (sqrt(v) * (1 / sqrt(1 - beta2^t)) + eps)
/// ```
///
/// (PyTorch writes `sqrt(v) / sqrt(1 - beta2^t)`; the reciprocal, taken once
/// per step, spares the divider, which bounds the update, a third of its work.)
///
/// AMSGrad: Reddi, Kale & Kumar, "On the Convergence of Adam and Beyond"
/// (ICLR 2018), in PyTorch's form (the running maximum of the raw second
/// moment, bias-corrected with the current step's correction).
///
/// [`Default`] gives PyTorch's Adam defaults; AdamW's default weight decay is
/// 0.01, see [`OptimizerConfig::adamw_default`](crate::optim::OptimizerConfig::adamw_default).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdamConfig {
    /// Learning rate, `>= 0`.
    pub lr: f32,
    /// Decay rate of the first-moment average, in `[0, 1)`.
    pub beta1: f32,
    /// Decay rate of the second-moment average, in `[0, 1)`.
    pub beta2: f32,
    /// Added to the denominator for numerical stability, `> 0`.
    pub eps: f32,
    /// Weight decay, `>= 0`: an L2 term in the gradient for Adam, a decoupled
    /// shrink of the weights for AdamW.
    pub weight_decay: f32,
    /// Use AMSGrad: normalise by the running maximum of the second moment;
    /// keeps a third buffer, `max_exp_avg_sq`.
    #[serde(default, skip_serializing_if = "super::is_false")]
    pub amsgrad: bool,
    /// Clipping and weight-decay exclusions, shared by every optimizer. Not
    /// serialised with this struct: [`OptimizerConfig`](crate::optim::OptimizerConfig)
    /// writes them flat beside the fields above.
    #[serde(skip)]
    pub options: OptimizerOptions,
}

impl Default for AdamConfig {
    fn default() -> Self {
        Self {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            amsgrad: false,
            options: OptimizerOptions::default(),
        }
    }
}

impl AdamConfig {
    /// Checks every hyperparameter against its valid range; `name` ("adam" or
    /// "adamw") prefixes the message.
    ///
    /// # Errors
    /// `Error::Config` naming the first offending field, its value and the range.
    pub fn validate(&self, name: &str) -> Result<()> {
        super::check_lr(self.lr)?;
        for (field, b) in [("beta1", self.beta1), ("beta2", self.beta2)] {
            // `contains` is false for NaN, so NaN is rejected too.
            ensure_config((0.0..1.0).contains(&b), || {
                format!("{name} {field} must be in [0, 1), got {b}")
            })?;
        }
        let eps = self.eps;
        ensure_config(eps.is_finite() && eps > 0.0, || {
            format!("{name} eps must be finite and > 0, got {eps}")
        })?;
        super::check_weight_decay(name, self.weight_decay)
    }
}

/// One Adam or AdamW step, with every per-step scalar computed once up front.
pub(crate) struct AdamStep {
    beta1: f32,
    beta2: f32,
    /// `1 - beta1` and `1 - beta2`, rounded once from f64 like PyTorch's scalars.
    one_minus_beta1: f32,
    one_minus_beta2: f32,
    /// `lr / (1 - beta1^t)`.
    step_size: f32,
    /// `1 / sqrt(1 - beta2^t)`, rounded once from f64: the kernels multiply
    /// by it where PyTorch divides by `sqrt(1 - beta2^t)` (see `adam_loop`).
    recip_bias_correction2_sqrt: f32,
    eps: f32,
    /// Adam's L2 coefficient (0 for AdamW).
    l2: f32,
    /// AdamW's weight shrink `1 - lr * weight_decay` (exactly 1 for Adam).
    shrink: f32,
    /// Fused gradient clipping `(bound, scale)`: the update reads
    /// `clamp(g, -bound, bound) · scale` (see `Clipping::fused_factors`).
    clip: Option<(f32, f32)>,
}

impl AdamStep {
    /// The step `t` (1-based) of Adam, or of AdamW when `decoupled`, with
    /// weight decay `weight_decay` (the configured one, or 0 for tensors
    /// excluded from decay).
    /// `extra_l2·p` is added to the gradient (an L2 regularizer's gradient;
    /// for AdamW too, where it is kept apart from the decoupled decay).
    pub(crate) fn new(c: &AdamConfig, t: u64, decoupled: bool, weight_decay: f32, extra_l2: f32, clip: Option<(f32, f32)>) -> Self {
        let (lr, b1, b2) = (f64::from(c.lr), f64::from(c.beta1), f64::from(c.beta2));
        // powf, not powi: `t` may exceed i32::MAX after a long (or loaded) run.
        let t = t as f64;
        let bias_correction1 = 1.0 - b1.powf(t);
        let bias_correction2 = 1.0 - b2.powf(t);
        let wd = f64::from(weight_decay);
        Self {
            beta1: c.beta1,
            beta2: c.beta2,
            one_minus_beta1: (1.0 - b1) as f32,
            one_minus_beta2: (1.0 - b2) as f32,
            step_size: (lr / bias_correction1) as f32,
            recip_bias_correction2_sqrt: (1.0 / bias_correction2.sqrt()) as f32,
            eps: c.eps,
            l2: if decoupled { extra_l2 } else { weight_decay + extra_l2 },
            shrink: if decoupled {
                (1.0 - lr * wd) as f32
            } else {
                1.0
            },
            clip,
        }
    }

    /// The per-step scalars, as the kernels take them.
    #[inline(always)]
    fn scalars(&self) -> [f32; 8] {
        [
            self.beta1,
            self.beta2,
            self.one_minus_beta1,
            self.one_minus_beta2,
            self.step_size,
            self.recip_bias_correction2_sqrt,
            self.eps,
            self.shrink,
        ]
    }
}

/// The Adam/AdamW update over one chunk, compiled for AVX-512 and AVX2 and
/// picked at run time: the default x86-64 target would only use 4-lane SSE.
/// No fused multiply-add is introduced, so every target gives the same bits.
/// Returns the largest `|p|` written as `max_abs_bits` would (one integer
/// max per value, in the loop: the finiteness check reads nothing again).
#[multiversion::multiversion(targets(
    "x86_64+avx512f+avx512bw+avx512vl+avx512dq",
    "x86_64+avx2+fma"
))]
fn adam_kernel(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], k: [f32; 8], l2: f32, clip: Option<(f32, f32)>) -> u32 {
    // Separate loops so a zero decay adds nothing, as in PyTorch, rather
    // than `0 * p`, which is NaN for an infinite weight; clipping likewise.
    match (clip, l2 == 0.0) {
        (None, true) => adam_loop(p, g, m, v, k, |g, _| g),
        (None, false) => adam_loop(p, g, m, v, k, |g, w| g + l2 * w),
        (Some((b, s)), true) => adam_loop(p, g, m, v, k, |g, _| g.max(-b).min(b) * s),
        (Some((b, s)), false) => adam_loop(p, g, m, v, k, |g, w| g.max(-b).min(b) * s + l2 * w),
    }
}

#[inline(always)]
fn adam_loop(
    p: &mut [f32],
    g: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    k: [f32; 8],
    grad: impl Fn(f32, f32) -> f32,
) -> u32 {
    let [b1, b2, c1, c2, step, rbc2, eps, shrink] = k;
    let mut top = 0u32;
    for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
        // Multiplying by exactly 1.0 (Adam) leaves the weight bit-identical.
        let w = *p * shrink;
        let g = grad(g, w);
        *m = b1 * *m + c1 * g;
        *v = b2 * *v + c2 * g * g;
        let denom = v.sqrt() * rbc2 + eps;
        *p = w - step * (*m / denom) - poison(*v);
        top = top.max(p.to_bits() & ABS);
    }
    top
}

/// Clears the sign bit (see `max_abs_bits`).
const ABS: u32 = 0x7fff_ffff;

/// The AMSGrad variant of [`adam_kernel`], with the running maximum `vmax`.
#[multiversion::multiversion(targets(
    "x86_64+avx512f+avx512bw+avx512vl+avx512dq",
    "x86_64+avx2+fma"
))]
#[allow(clippy::too_many_arguments)]
fn amsgrad_kernel(
    p: &mut [f32],
    g: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    vmax: &mut [f32],
    k: [f32; 8],
    l2: f32,
    clip: Option<(f32, f32)>,
) {
    match (clip, l2 == 0.0) {
        (None, true) => amsgrad_loop(p, g, m, v, vmax, k, |g, _| g),
        (None, false) => amsgrad_loop(p, g, m, v, vmax, k, |g, w| g + l2 * w),
        (Some((b, s)), true) => amsgrad_loop(p, g, m, v, vmax, k, |g, _| g.max(-b).min(b) * s),
        (Some((b, s)), false) => amsgrad_loop(p, g, m, v, vmax, k, |g, w| g.max(-b).min(b) * s + l2 * w),
    }
}

#[inline(always)]
fn amsgrad_loop(
    p: &mut [f32],
    g: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    vmax: &mut [f32],
    k: [f32; 8],
    grad: impl Fn(f32, f32) -> f32,
) {
    let [b1, b2, c1, c2, step, rbc2, eps, shrink] = k;
    let it = p
        .iter_mut()
        .zip(g)
        .zip(m.iter_mut())
        .zip(v.iter_mut())
        .zip(vmax.iter_mut());
    for ((((p, &g), m), v), vmax) in it {
        let w = *p * shrink;
        let g = grad(g, w);
        *m = b1 * *m + c1 * g;
        *v = b2 * *v + c2 * g * g;
        // torch.maximum: NaN propagates (f32::max would drop it).
        *vmax = if *v > *vmax || v.is_nan() { *v } else { *vmax };
        let denom = vmax.sqrt() * rbc2 + eps;
        *p = w - step * (*m / denom) - poison(*v);
    }
}

/// `+0.0` for a finite second moment `v >= 0`, NaN for an infinite (or NaN)
/// one. Subtracted from the new weight, it leaves every bit of it as it was
/// (`x - 0.0 == x`, `-0.0` included) unless `v` overflowed: `g²` past
/// `f32::MAX` makes `v` infinite and its update silently zero, and the NaN
/// makes the training step's finiteness check of the weights refuse the step.
/// So the state is checked inside the pass that writes it, at no extra
/// memory traffic (see train.rs).
#[inline(always)]
pub(crate) fn poison(v: f32) -> f32 {
    0.0 * v
}

impl AdamStep {
    /// Bounds this step's arithmetic (see `optim::bound`) from the largest
    /// `|g|`, `|p|` and state values `[m, v, vmax]`: returns the state's
    /// bounds after the step and the new weights' bound. The denominator is
    /// at least `eps`, so `|m / denom| <= |m| / eps`; the fused clipping only
    /// shrinks the gradient, so the bound holds with or without it.
    pub(crate) fn bound(&self, s: Sizes, [m, v, vmax]: [f64; 3], pk: &mut Peak) -> ([f64; 3], f64) {
        // Magnitudes: a bound must not shrink through a negative factor.
        let f = |x: f32| f64::from(x).abs();
        let w = pk.see(up(s.p * f(self.shrink).max(1.0)));
        let g = pk.see(up(s.g + up(f(self.l2) * w)));
        let m = pk.see(up(up(f(self.beta1) * m) + up(f(self.one_minus_beta1) * g)));
        let v = pk.see(up(up(f(self.beta2) * v) + up(up(f(self.one_minus_beta2) * g) * g)));
        // AMSGrad's running maximum is one of the v's, bounded by either.
        let vmax = v.max(vmax);
        pk.see(up(up(up(vmax.sqrt()) * f(self.recip_bias_correction2_sqrt)) + f(self.eps)));
        let ratio = pk.see(up(m / f(self.eps)));
        let p = pk.see(up(w + up(f(self.step_size) * ratio)));
        ([m, v, vmax], p)
    }
}

impl Rule<2> for AdamStep {
    const STATE_NAMES: [&'static str; 2] = ["exp_avg", "exp_avg_sq"];

    fn update(&self, p: &mut [f32], g: &[f32], state: [&mut [f32]; 2]) {
        self.update_max(p, g, state);
    }

    fn update_max(&self, p: &mut [f32], g: &[f32], [m, v]: [&mut [f32]; 2]) -> u32 {
        adam_kernel(p, g, m, v, self.scalars(), self.l2, self.clip)
    }
}

/// AMSGrad.
impl Rule<3> for AdamStep {
    const STATE_NAMES: [&'static str; 3] = ["exp_avg", "exp_avg_sq", "max_exp_avg_sq"];

    fn update(&self, p: &mut [f32], g: &[f32], [m, v, vmax]: [&mut [f32]; 3]) {
        amsgrad_kernel(p, g, m, v, vmax, self.scalars(), self.l2, self.clip);
    }
}
