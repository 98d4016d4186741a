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

    /// `l1·Σ|w| + l2·Σw²`, summed in f64.
    pub fn penalty(&self, w: &[f32]) -> f64 {
        let (l1, l2) = (self.l1 as f64, self.l2 as f64);
        let (mut abs, mut sq) = (0.0f64, 0.0f64);
        for &v in w {
            abs += (v as f64).abs();
            sq += (v as f64) * (v as f64);
        }
        l1 * abs + l2 * sq
    }

    /// Adds the penalty's gradient to `g` and returns the penalty.
    pub fn add_grad(&self, w: &[f32], g: &mut [f32]) -> f64 {
        let (l1, l2x2) = (self.l1, 2.0 * self.l2);
        for (gi, &wi) in g.iter_mut().zip(w) {
            // sign(0) = 0, as PyTorch's and Keras' subgradient choice.
            let sign = if wi > 0.0 { 1.0 } else if wi < 0.0 { -1.0 } else { 0.0 };
            *gi += l1 * sign + l2x2 * wi;
        }
        self.penalty(w)
    }
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

/// Adds every penalty's gradient into `grads`; returns the summed penalty.
pub fn add_grads(penalties: &[Penalty], params: &[f32], grads: &mut [f32]) -> f64 {
    penalties.iter().map(|p| p.reg.add_grad(&params[p.range.clone()], &mut grads[p.range.clone()])).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn penalty_and_gradient() {
        let r = Regularizer { l1: 0.1, l2: 0.5 };
        let w = [1.0, -2.0, 0.0];
        let mut g = [0.0; 3];
        let p = r.add_grad(&w, &mut g);
        assert!((p - (0.1 * 3.0 + 0.5 * 5.0)).abs() < 1e-6);
        assert_eq!(g, [0.1 + 1.0, -0.1 - 2.0, 0.0]);
        assert!(Regularizer { l1: -1.0, l2: 0.0 }.validate().is_err());
        assert!(Regularizer { l1: 0.0, l2: f32::NAN }.validate().is_err());
    }
}
