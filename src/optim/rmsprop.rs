//! RMSprop (Hinton, Coursera lecture 6e, 2012), optionally centered (Graves,
//! "Generating Sequences With Recurrent Neural Networks", 2013) and with
//! momentum, following PyTorch's `torch.optim.RMSprop` step for step.

use serde::{Deserialize, Serialize};

use super::adam::poison;
use super::bound::{up, Peak, Sizes};
use super::{OptimizerOptions, Rule};
use crate::error::{ensure_config, Result};

/// Hyperparameters of [`RMSprop`](crate::optim::OptimizerConfig::Rmsprop).
///
/// Per parameter, with `g` the gradient (PyTorch's rule; all state starts at 0):
///
/// ```text
/// g = g + weight_decay * p
/// v = alpha * v + (1 - alpha) * g * g                 (square_avg)
/// if centered:
///     a = alpha * a + (1 - alpha) * g                  (grad_avg)
///     d = sqrt(v - a * a) + eps       (sqrt(v - a * a + eps) with eps_inside_sqrt)
/// else:
///     d = sqrt(v) + eps               (sqrt(v + eps) with eps_inside_sqrt)
/// if momentum > 0:
///     b = momentum * b + g / d                         (momentum_buffer)
///     p = p - lr * b
/// else:
///     p = p - lr * g / d
/// ```
///
/// [`Default`] gives PyTorch's defaults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RmspropConfig {
    /// Learning rate, `>= 0`.
    pub lr: f32,
    /// Smoothing constant of the squared-gradient average, in `[0, 1]`.
    pub alpha: f32,
    /// Added to the denominator for numerical stability, `> 0`.
    pub eps: f32,
    /// L2 penalty added to the gradient, `>= 0`.
    pub weight_decay: f32,
    /// Momentum factor, `>= 0`; 0 keeps no momentum buffer.
    pub momentum: f32,
    /// Normalise by the estimated variance (`v - a²`) rather than the raw
    /// second moment; keeps a `grad_avg` buffer.
    pub centered: bool,
    /// Add `eps` under the square root, `sqrt(v + eps)`, as Keras does, instead of
    /// PyTorch's `sqrt(v) + eps`. Absent from a spec means false.
    #[serde(default, skip_serializing_if = "is_false")]
    pub eps_inside_sqrt: bool,
    /// Clipping and weight-decay exclusions, shared by every optimizer. Not
    /// serialised with this struct: [`OptimizerConfig`](crate::optim::OptimizerConfig)
    /// writes them flat beside the fields above.
    #[serde(skip)]
    pub options: OptimizerOptions,
}

impl Default for RmspropConfig {
    fn default() -> Self {
        Self {
            lr: 1e-2,
            alpha: 0.99,
            eps: 1e-8,
            weight_decay: 0.0,
            momentum: 0.0,
            centered: false,
            eps_inside_sqrt: false,
            options: OptimizerOptions::default(),
        }
    }
}

impl RmspropConfig {
    /// Checks every hyperparameter against its valid range.
    ///
    /// # Errors
    /// `Error::Config` naming the first offending field, its value and the range.
    pub fn validate(&self) -> Result<()> {
        super::check_lr(self.lr)?;
        let a = self.alpha;
        ensure_config((0.0..=1.0).contains(&a), || {
            format!("rmsprop alpha must be in [0, 1], got {a}")
        })?;
        let eps = self.eps;
        ensure_config(eps.is_finite() && eps > 0.0, || {
            format!("rmsprop eps must be finite and > 0, got {eps}")
        })?;
        let m = self.momentum;
        ensure_config(m.is_finite() && m >= 0.0, || {
            format!("rmsprop momentum must be finite and >= 0, got {m}")
        })?;
        super::check_weight_decay("rmsprop", self.weight_decay)
    }

    /// Whether a momentum buffer is kept.
    pub(crate) fn has_momentum(&self) -> bool {
        self.momentum > 0.0
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// One RMSprop step. Implements `Rule<1>` (plain), `Rule<2>` (momentum *or*
/// centered, whichever is configured) and `Rule<3>` (both); the optimizer
/// drives the one matching [`RmspropConfig`]'s state names.
pub(crate) struct RmspropStep {
    lr: f32,
    alpha: f32,
    /// `1 - alpha`, rounded once from f64 like PyTorch's Python scalar.
    one_minus_alpha: f32,
    eps: f32,
    weight_decay: f32,
    momentum: f32,
    centered: bool,
    eps_inside_sqrt: bool,
}

impl RmspropStep {
    /// A step with weight decay `weight_decay` (the configured one, or 0 for
    /// tensors excluded from decay).
    pub(crate) fn new(c: &RmspropConfig, weight_decay: f32) -> Self {
        Self {
            lr: c.lr,
            alpha: c.alpha,
            one_minus_alpha: (1.0 - f64::from(c.alpha)) as f32,
            eps: c.eps,
            weight_decay,
            momentum: c.momentum,
            centered: c.centered,
            eps_inside_sqrt: c.eps_inside_sqrt,
        }
    }

    /// One element: updates the state and returns the new parameter.
    #[inline(always)]
    fn elem(
        &self,
        p: f32,
        g: f32,
        sq: &mut f32,
        buf: Option<&mut f32>,
        avg: Option<&mut f32>,
    ) -> f32 {
        *sq = self.alpha * *sq + self.one_minus_alpha * (g * g);
        let var = match avg {
            Some(a) => {
                *a = self.alpha * *a + self.one_minus_alpha * g;
                // Mathematically >= 0; the max keeps rounding from making it
                // slightly negative (and the square root NaN).
                (*sq - *a * *a).max(0.0)
            }
            None => *sq,
        };
        let d = if self.eps_inside_sqrt {
            (var + self.eps).sqrt()
        } else {
            var.sqrt() + self.eps
        };
        // An overflowed square average poisons the weight (see `adam::poison`).
        let poison = poison(*sq);
        match buf {
            Some(b) => {
                *b = self.momentum * *b + g / d;
                p - self.lr * *b - poison
            }
            None => p - self.lr * (g / d) - poison,
        }
    }

    /// Plain RMSprop over a run, with the gradient transform `decayed`.
    #[inline(always)]
    fn run1(&self, p: &mut [f32], g: &[f32], sq: &mut [f32], decayed: impl Fn(f32, f32) -> f32) {
        for ((p, &g), sq) in p.iter_mut().zip(g).zip(sq.iter_mut()) {
            *p = self.elem(*p, decayed(g, *p), sq, None, None);
        }
    }

    /// Momentum or centered RMSprop over a run (`other` is the momentum
    /// buffer or the gradient average, as configured).
    #[inline(always)]
    fn run2(
        &self,
        p: &mut [f32],
        g: &[f32],
        sq: &mut [f32],
        other: &mut [f32],
        decayed: impl Fn(f32, f32) -> f32,
    ) {
        let it = p.iter_mut().zip(g).zip(sq.iter_mut()).zip(other.iter_mut());
        if self.centered {
            for (((p, &g), sq), a) in it {
                *p = self.elem(*p, decayed(g, *p), sq, None, Some(a));
            }
        } else {
            for (((p, &g), sq), b) in it {
                *p = self.elem(*p, decayed(g, *p), sq, Some(b), None);
            }
        }
    }

    /// Centered RMSprop with momentum over a run.
    #[inline(always)]
    fn run3(
        &self,
        p: &mut [f32],
        g: &[f32],
        sq: &mut [f32],
        buf: &mut [f32],
        avg: &mut [f32],
        decayed: impl Fn(f32, f32) -> f32,
    ) {
        let it = p
            .iter_mut()
            .zip(g)
            .zip(sq.iter_mut())
            .zip(buf.iter_mut())
            .zip(avg.iter_mut());
        for ((((p, &g), sq), b), a) in it {
            *p = self.elem(*p, decayed(g, *p), sq, Some(b), Some(a));
        }
    }
}

impl RmspropStep {
    /// Bounds this step (see `optim::bound`) from the largest `|g|`, `|p|`
    /// and state values, in the order of the configured state names
    /// (`square_avg`, then `momentum_buffer` and/or `grad_avg`): returns the
    /// state's bounds after the step and the new weights' bound. The centered
    /// variance is at most the square average, and the denominator is at least
    /// `eps` (or `sqrt(eps)` with `eps_inside_sqrt`).
    pub(crate) fn bound(&self, s: Sizes, state: [f64; 3], pk: &mut Peak) -> ([f64; 3], f64) {
        // Magnitudes: a bound must not shrink through a negative factor.
        let f = |x: f32| f64::from(x).abs();
        let (alpha, keep) = (f(self.alpha), f(self.one_minus_alpha));
        let g = pk.see(up(s.g + up(f(self.weight_decay) * s.p)));
        let sq = pk.see(up(up(alpha * state[0]) + up(keep * up(g * g))));
        // Where momentum and the gradient average sit among the buffers.
        let momentum = self.momentum > 0.0;
        let (buf_at, avg_at) = (1, if momentum { 2 } else { 1 });
        let mut next = [sq, 0.0, 0.0];
        if self.centered {
            next[avg_at] = pk.see(up(up(alpha * state[avg_at]) + up(keep * g)));
        }
        let eps = f(self.eps);
        let least = if self.eps_inside_sqrt { eps.sqrt() / SLACK_SQRT } else { eps };
        pk.see(up(up(sq + eps).sqrt()) + eps);
        let ratio = pk.see(up(g / least));
        let d = if momentum {
            next[buf_at] = pk.see(up(up(f(self.momentum) * state[buf_at]) + ratio));
            next[buf_at]
        } else {
            ratio
        };
        let p = pk.see(up(s.p + up(f(self.lr) * d)));
        (next, p)
    }
}

/// Widening for `sqrt(eps)` as f32 rounds it (and f64's own rounding).
const SLACK_SQRT: f64 = 1.0 + 1.0 / (1u64 << 20) as f64;

// Each rule has two loops rather than `g + 0 * p`, which would turn an
// infinite weight's update into NaN where PyTorch leaves the term out.

impl Rule<1> for RmspropStep {
    const STATE_NAMES: [&'static str; 1] = ["square_avg"];

    fn update(&self, p: &mut [f32], g: &[f32], [sq]: [&mut [f32]; 1]) {
        let wd = self.weight_decay;
        if wd == 0.0 {
            self.run1(p, g, sq, |g, _| g);
        } else {
            self.run1(p, g, sq, |g, p| g + wd * p);
        }
    }
}

impl Rule<2> for RmspropStep {
    /// The momentum variant's names; the centered variant's second buffer is
    /// `grad_avg` (see [`RMSPROP_CENTERED`]).
    const STATE_NAMES: [&'static str; 2] = ["square_avg", "momentum_buffer"];

    fn update(&self, p: &mut [f32], g: &[f32], [sq, other]: [&mut [f32]; 2]) {
        let wd = self.weight_decay;
        if wd == 0.0 {
            self.run2(p, g, sq, other, |g, _| g);
        } else {
            self.run2(p, g, sq, other, |g, p| g + wd * p);
        }
    }
}

/// State names of centered RMSprop without momentum.
pub(crate) const RMSPROP_CENTERED: [&str; 2] = ["square_avg", "grad_avg"];

impl Rule<3> for RmspropStep {
    const STATE_NAMES: [&'static str; 3] = ["square_avg", "momentum_buffer", "grad_avg"];

    fn update(&self, p: &mut [f32], g: &[f32], [sq, buf, avg]: [&mut [f32]; 3]) {
        let wd = self.weight_decay;
        if wd == 0.0 {
            self.run3(p, g, sq, buf, avg, |g, _| g);
        } else {
            self.run3(p, g, sq, buf, avg, |g, p| g + wd * p);
        }
    }
}
