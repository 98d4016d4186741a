//! Adagrad (Duchi, Hazan & Singer, "Adaptive Subgradient Methods for Online
//! Learning and Stochastic Optimization", JMLR 2011), following PyTorch's
//! `torch.optim.Adagrad` step for step.

use serde::{Deserialize, Serialize};

use super::adam::poison;
use super::bound::{up, Peak, Sizes};
use super::{OptimizerOptions, Rule};
use crate::error::{ensure_config, Result};

/// Hyperparameters of [`Adagrad`](crate::optim::OptimizerConfig::Adagrad).
///
/// Per parameter at step `t` (1-based; PyTorch's rule, the `sum` state starting
/// at `initial_accumulator_value`):
///
/// ```text
/// g = g + weight_decay * p
/// clr = lr / (1 + (t - 1) * lr_decay)
/// s = s + g * g                                (sum)
/// p = p - clr * g / (sqrt(s) + eps)
/// ```
///
/// [`Default`] gives PyTorch's defaults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdagradConfig {
    /// Learning rate, `>= 0`.
    pub lr: f32,
    /// Learning-rate decay per step, `>= 0`.
    pub lr_decay: f32,
    /// L2 penalty added to the gradient, `>= 0`.
    pub weight_decay: f32,
    /// Starting value of the squared-gradient sum, `>= 0`.
    pub initial_accumulator_value: f32,
    /// Added to the denominator for numerical stability, `> 0`.
    pub eps: f32,
    /// Clipping and weight-decay exclusions, shared by every optimizer. Not
    /// serialised with this struct: [`OptimizerConfig`](crate::optim::OptimizerConfig)
    /// writes them flat beside the fields above.
    #[serde(skip)]
    pub options: OptimizerOptions,
}

impl Default for AdagradConfig {
    fn default() -> Self {
        Self {
            lr: 1e-2,
            lr_decay: 0.0,
            weight_decay: 0.0,
            initial_accumulator_value: 0.0,
            eps: 1e-10,
            options: OptimizerOptions::default(),
        }
    }
}

impl AdagradConfig {
    /// Checks every hyperparameter against its valid range.
    ///
    /// # Errors
    /// `Error::Config` naming the first offending field, its value and the range.
    pub fn validate(&self) -> Result<()> {
        super::check_lr(self.lr)?;
        for (field, v) in [
            ("lr_decay", self.lr_decay),
            ("initial_accumulator_value", self.initial_accumulator_value),
        ] {
            ensure_config(v.is_finite() && v >= 0.0, || {
                format!("adagrad {field} must be finite and >= 0, got {v}")
            })?;
        }
        let eps = self.eps;
        ensure_config(eps.is_finite() && eps > 0.0, || {
            format!("adagrad eps must be finite and > 0, got {eps}")
        })?;
        super::check_weight_decay("adagrad", self.weight_decay)
    }
}

/// One Adagrad step, its decayed learning rate computed once.
pub(crate) struct AdagradStep {
    /// `lr / (1 + (t - 1) * lr_decay)`, in f64 then rounded, like PyTorch's
    /// Python scalar.
    clr: f32,
    eps: f32,
    weight_decay: f32,
}

impl AdagradStep {
    /// The step `t` (1-based) with weight decay `weight_decay` (the configured
    /// one, or 0 for tensors excluded from decay).
    pub(crate) fn new(c: &AdagradConfig, t: u64, weight_decay: f32) -> Self {
        let steps_before = t.saturating_sub(1) as f64;
        Self {
            clr: (f64::from(c.lr) / (1.0 + steps_before * f64::from(c.lr_decay))) as f32,
            eps: c.eps,
            weight_decay,
        }
    }

    #[inline(always)]
    fn run(&self, p: &mut [f32], g: &[f32], sum: &mut [f32], decayed: impl Fn(f32, f32) -> f32) {
        let (clr, eps) = (self.clr, self.eps);
        for ((p, &g), s) in p.iter_mut().zip(g).zip(sum.iter_mut()) {
            let g = decayed(g, *p);
            *s += g * g;
            // An overflowed sum poisons the weight (see `adam::poison`).
            *p = *p - clr * (g / (s.sqrt() + eps)) - poison(*s);
        }
    }
}

impl AdagradStep {
    /// Bounds this step (see `optim::bound`) from the largest `|g|`, `|p|`
    /// and sum: the sum's bound after the step and the new weights' bound
    /// (the denominator is at least `eps`).
    pub(crate) fn bound(&self, s: Sizes, [sum, _, _]: [f64; 3], pk: &mut Peak) -> ([f64; 3], f64) {
        // Magnitudes: a bound must not shrink through a negative factor.
        let f = |x: f32| f64::from(x).abs();
        let g = pk.see(up(s.g + up(f(self.weight_decay) * s.p)));
        let sum = pk.see(up(sum + up(g * g)));
        pk.see(up(up(sum.sqrt()) + f(self.eps)));
        let ratio = pk.see(up(g / f(self.eps)));
        let p = pk.see(up(s.p + up(f(self.clr) * ratio)));
        ([sum, 0.0, 0.0], p)
    }
}

impl Rule<1> for AdagradStep {
    const STATE_NAMES: [&'static str; 1] = ["sum"];

    fn update(&self, p: &mut [f32], g: &[f32], [sum]: [&mut [f32]; 1]) {
        // Two loops rather than `g + 0 * p`, which would turn an infinite
        // weight's update into NaN where PyTorch leaves the term out.
        let wd = self.weight_decay;
        if wd == 0.0 {
            self.run(p, g, sum, |g, _| g);
        } else {
            self.run(p, g, sum, |g, p| g + wd * p);
        }
    }
}
