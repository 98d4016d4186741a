//! Stochastic gradient descent, with optional momentum, dampening, Nesterov
//! momentum and L2 weight decay.
//!
//! The update follows PyTorch's `torch.optim.SGD` step for step, so a model
//! trained here and one trained there move their weights the same way. Nesterov
//! momentum is the reformulation of Sutskever et al., "On the importance of
//! initialization and momentum in deep learning" (ICML 2013), as PyTorch uses it.

use serde::{Deserialize, Serialize};

use super::bound::{up, Peak, Sizes};
use super::{OptimizerOptions, Rule};
use crate::error::{ensure_config, Result};

/// Hyperparameters of [`SGD`](crate::optim::OptimizerConfig::Sgd).
///
/// Per parameter, with `g` the gradient (PyTorch's rule):
///
/// ```text
/// g = g + weight_decay * p
/// if momentum != 0:
///     b = g                                      (first step)
///     b = momentum * b + (1 - dampening) * g     (later steps)
///     g = g + momentum * b   if nesterov   else   g = b
/// p = p - lr * g
/// ```
///
/// Nesterov momentum as in Sutskever et al. (2013). [`Default`] gives
/// PyTorch's defaults except `lr`, which PyTorch leaves required: 1e-3.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SgdConfig {
    /// Learning rate, `>= 0`.
    pub lr: f32,
    /// Momentum factor, `>= 0`; 0 disables the momentum buffer.
    pub momentum: f32,
    /// Fraction of the new gradient withheld from the momentum buffer, in `[0, 1]`.
    pub dampening: f32,
    /// Use Nesterov momentum; requires `momentum > 0` and `dampening == 0`.
    pub nesterov: bool,
    /// L2 penalty added to the gradient, `>= 0`.
    pub weight_decay: f32,
    /// Clipping and weight-decay exclusions, shared by every optimizer. Not
    /// serialised with this struct: [`OptimizerConfig`](crate::optim::OptimizerConfig)
    /// writes them flat beside the fields above.
    #[serde(skip)]
    pub options: OptimizerOptions,
}

impl Default for SgdConfig {
    fn default() -> Self {
        Self {
            lr: 1e-3,
            momentum: 0.0,
            dampening: 0.0,
            nesterov: false,
            weight_decay: 0.0,
            options: OptimizerOptions::default(),
        }
    }
}

impl SgdConfig {
    /// Checks every hyperparameter against its valid range.
    ///
    /// # Errors
    /// `Error::Config` naming the first offending field, its value and the range.
    pub fn validate(&self) -> Result<()> {
        super::check_lr(self.lr)?;
        let m = self.momentum;
        ensure_config(m.is_finite() && m >= 0.0, || {
            format!("sgd momentum must be finite and >= 0, got {m}")
        })?;
        let d = self.dampening;
        ensure_config((0.0..=1.0).contains(&d), || {
            format!("sgd dampening must be in [0, 1], got {d}")
        })?;
        super::check_weight_decay("sgd", self.weight_decay)?;
        ensure_config(!self.nesterov || (m > 0.0 && d == 0.0), || {
            format!(
                "sgd nesterov requires momentum > 0 and dampening == 0, \
                 got momentum {m} and dampening {d}"
            )
        })
    }
}

/// One step of plain SGD (no momentum buffer).
pub(crate) struct PlainStep {
    lr: f32,
    weight_decay: f32,
}

impl PlainStep {
    /// A step with weight decay `weight_decay` (the configured one, or 0 for
    /// tensors excluded from decay).
    pub(crate) fn new(c: &SgdConfig, weight_decay: f32) -> Self {
        Self {
            lr: c.lr,
            weight_decay,
        }
    }
}

impl PlainStep {
    /// Bounds this step (see `optim::bound`): no state, and the new weights'
    /// bound `|p| + lr·(|g| + wd·|p|)`.
    pub(crate) fn bound(&self, s: Sizes, pk: &mut Peak) -> ([f64; 3], f64) {
        let f = |x: f32| f64::from(x).abs();
        let g = pk.see(up(s.g + up(f(self.weight_decay) * s.p)));
        let p = pk.see(up(s.p + up(f(self.lr) * g)));
        ([0.0; 3], p)
    }
}

impl Rule<0> for PlainStep {
    const STATE_NAMES: [&'static str; 0] = [];

    fn update(&self, p: &mut [f32], g: &[f32], _: [&mut [f32]; 0]) {
        let (lr, wd) = (self.lr, self.weight_decay);
        // Two loops rather than `g + 0 * p`, which would turn an infinite
        // weight's update into NaN where PyTorch leaves the term out.
        if wd == 0.0 {
            for (p, &g) in p.iter_mut().zip(g) {
                *p -= lr * g;
            }
        } else {
            for (p, &g) in p.iter_mut().zip(g) {
                *p -= lr * (g + wd * *p);
            }
        }
    }
}

/// One step of SGD with a momentum buffer (classical or Nesterov).
pub(crate) struct MomentumStep {
    lr: f32,
    weight_decay: f32,
    momentum: f32,
    /// `1 - dampening`, rounded once from f64 as PyTorch's Python scalar is.
    keep: f32,
    nesterov: bool,
    /// PyTorch has no buffer before the first step and seeds it with the
    /// gradient itself, undamped; a zero buffer would damp that first gradient.
    first: bool,
}

impl MomentumStep {
    /// The step `t` (1-based) with weight decay `weight_decay`.
    pub(crate) fn new(c: &SgdConfig, t: u64, weight_decay: f32) -> Self {
        Self {
            lr: c.lr,
            weight_decay,
            momentum: c.momentum,
            keep: (1.0 - f64::from(c.dampening)) as f32,
            nesterov: c.nesterov,
            first: t == 1,
        }
    }

    #[inline(always)]
    fn run(&self, p: &mut [f32], g: &[f32], buf: &mut [f32], decayed: impl Fn(f32, f32) -> f32) {
        let (lr, mom, keep) = (self.lr, self.momentum, self.keep);
        for ((p, &g), b) in p.iter_mut().zip(g).zip(buf.iter_mut()) {
            let g = decayed(g, *p);
            *b = if self.first { g } else { mom * *b + keep * g };
            let d = if self.nesterov { g + mom * *b } else { *b };
            *p -= lr * d;
        }
    }
}

impl MomentumStep {
    /// Bounds this step (see `optim::bound`) from the largest `|g|`, `|p|`
    /// and momentum buffer value: the buffer's bound after the step and the
    /// new weights' bound.
    pub(crate) fn bound(&self, s: Sizes, [b, _, _]: [f64; 3], pk: &mut Peak) -> ([f64; 3], f64) {
        // Magnitudes: a bound must not shrink through a negative factor.
        let f = |x: f32| f64::from(x).abs();
        let g = pk.see(up(s.g + up(f(self.weight_decay) * s.p)));
        let b = if self.first { g } else { pk.see(up(up(f(self.momentum) * b) + up(f(self.keep) * g))) };
        let d = if self.nesterov { pk.see(up(g + up(f(self.momentum) * b))) } else { b };
        let p = pk.see(up(s.p + up(f(self.lr) * d)));
        ([b, 0.0, 0.0], p)
    }
}

impl Rule<1> for MomentumStep {
    const STATE_NAMES: [&'static str; 1] = ["momentum_buffer"];

    fn update(&self, p: &mut [f32], g: &[f32], [buf]: [&mut [f32]; 1]) {
        let wd = self.weight_decay;
        if wd == 0.0 {
            self.run(p, g, buf, |g, _| g);
        } else {
            self.run(p, g, buf, |g, p| g + wd * p);
        }
    }
}
