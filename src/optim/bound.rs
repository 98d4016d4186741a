//! A cheap proof that the next update writes only finite values, so the
//! training step can skip its undo copy.
//!
//! `train_step` must leave the model unchanged when a step would make it
//! non-finite. Copying the weights and the optimizer state before every step
//! costs several passes over them (about 12% of a step of a 784-256-128-10
//! MLP at batch 128). But an update can only turn non-finite if one of its
//! intermediate values overflows, and every one of them is bounded by a short
//! expression in a few maxima: the largest gradient `|g|` (one read pass), the
//! largest weight `|p|` (kept from the previous step's finiteness check), the
//! largest value of each state buffer (carried from step to step by the same
//! recurrence as the update, or scanned once when unknown) and the step's
//! scalars. Each rule bounds its own arithmetic (`bound` beside each `Rule`);
//! this module supplies the rounding slack and the driver.
//!
//! The bound is evaluated in f64 and every f32 operation it models is widened
//! by [`SLACK`] (16 times the worst f32 rounding), so it holds for the computed
//! f32 values, not only for exact arithmetic. When it stays below [`LIMIT`]
//! (a quarter of `f32::MAX`) nothing can overflow, and without an overflow an
//! update made of `+ - * /`, `sqrt` of non-negative values, and divisions by
//! at least `eps > 0` produces no NaN either. The update is the same code
//! either way: the bound decides only whether an undo copy is taken first.

use super::Optimizer;
use crate::kernels::reduce::max_abs;

/// Relative widening per modelled f32 operation (rounding is at most 2^-24).
const SLACK: f64 = 1.0 + 1.0 / (1u64 << 20) as f64;

/// Every value the update computes must stay below this for the bound to hold.
const LIMIT: f64 = f32::MAX as f64 / 4.0;

/// One rounded f32 operation's result, widened.
#[inline]
pub(crate) fn up(x: f64) -> f64 {
    x * SLACK
}

/// The largest magnitudes going into one update: the gradient as read (before
/// clipping, which never enlarges it) and the weights.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Sizes {
    pub(crate) g: f64,
    pub(crate) p: f64,
}

/// Tracks whether every bounded intermediate stays below [`LIMIT`].
#[derive(Debug)]
pub(crate) struct Peak {
    ok: bool,
}

impl Peak {
    /// Records `x` as a value the update may compute; returns it. A NaN bound
    /// (say 0/0 for a zero `eps`) fails, as it should.
    #[inline]
    pub(crate) fn see(&mut self, x: f64) -> f64 {
        // `<` is false for NaN.
        self.ok &= x < LIMIT;
        x
    }
}

impl Optimizer {
    /// Whether the next [`Optimizer::step`] with `grads` and the learning rate
    /// `lr` provably writes only finite weights and state, given the largest
    /// `|g|` and `|p|` (`+inf` when not finite). Also true only when a
    /// penalty's sums over the new weights (see `regularizer::finite_sums`)
    /// cannot overflow, so the step's post-update check is sure to pass.
    ///
    /// False before the state is sized for `n` parameters (the first step, or
    /// after the parameter count changed), and whenever a bound fails.
    ///
    /// On true, that step then carries the state bounds forward; any other
    /// change of the state forgets them, and the next call scans the state.
    pub(crate) fn update_stays_finite(&mut self, n: usize, g_max: f32, p_max: f32, lr: f32) -> bool {
        self.pending_bounds = None;
        // A rate `set_lr` would refuse is left to the copying path (it errors there).
        if !(self.is_sized(n) && g_max.is_finite() && p_max.is_finite() && lr.is_finite() && lr >= 0.0) {
            return false;
        }
        let state = self.state_bounds();
        let old_lr = self.config.lr();
        self.config.set_lr(lr);
        let l2 = self.largest_l2();
        let sizes = Sizes { g: f64::from(g_max), p: f64::from(p_max) };
        let mut peak = Peak { ok: state.iter().all(|s| s.is_finite()) };
        let (next, p) = super::update::bound(&self.config, self.t.saturating_add(1), l2, sizes, state, &mut peak);
        self.config.set_lr(old_lr);
        // A regularizer's check sums up to 17 squares per f32 lane; 2048 covers
        // it with room to spare.
        peak.see(up(p * p) * 2048.0);
        if peak.ok {
            self.pending_bounds = Some(next);
        }
        peak.ok
    }

    /// Whether the state buffers exist for `n` parameters (else the next step
    /// or `prepare` creates them).
    pub(crate) fn is_sized(&self, n: usize) -> bool {
        n == self.n_params && self.bufs.len() == self.config.state_names().len()
    }

    /// The largest magnitude of each state buffer: carried forward by the
    /// last bounded step, else scanned (and kept until the state changes).
    fn state_bounds(&mut self) -> [f64; 3] {
        if let Some(b) = self.bounds {
            return b;
        }
        let mut b = [0.0; 3];
        for (slot, buf) in b.iter_mut().zip(&self.bufs) {
            *slot = f64::from(max_abs(buf));
        }
        self.bounds = Some(b);
        b
    }

    /// The largest coefficient any run adds to its gradient times `p`: weight
    /// decay (counted for every run; AdamW's decoupled shrink reads it too)
    /// plus the largest regularizer coefficient.
    fn largest_l2(&self) -> (f32, f32) {
        let extra = self.layout.runs.iter().map(|r| r.2).fold(0.0f32, f32::max);
        (self.config.weight_decay(), extra)
    }

    /// Called by `step`: the bounds a bounded step computed become the state's.
    pub(super) fn carry_bounds(&mut self) {
        self.bounds = self.pending_bounds.take();
    }

    /// Forgets the state bounds (the state changed some other way).
    pub(super) fn forget_bounds(&mut self) {
        self.bounds = None;
        self.pending_bounds = None;
    }
}
