//! Optimizers: a serialisable [`OptimizerConfig`] and the [`Optimizer`] that
//! applies it.
//!
//! The network keeps every parameter in one flat slice and every gradient in
//! another, so an optimizer step is one fused pass over flat memory. The
//! bookkeeping every algorithm needs (the step counter, lazily sized state
//! buffers, the split into fixed chunks for the thread pool, gradient clipping,
//! which tensors get weight decay) lives here once; each algorithm supplies
//! only its per-chunk update through the `Rule` trait.

mod adagrad;
mod adam;
mod bound;
#[cfg(test)]
mod bound_tests;
mod clip;
mod config;
mod layout;
mod options;
mod rmsprop;
mod sgd;
mod state;
#[cfg(test)]
mod tests;
mod update;

pub use adagrad::AdagradConfig;
pub use adam::AdamConfig;
pub use clip::Clipping;
pub use config::OptimizerConfig;
pub use options::OptimizerOptions;
pub use rmsprop::RmspropConfig;
pub use sgd::SgdConfig;

use std::ops::Range;

use crate::error::{ensure_config, Error, Result};
use crate::kernels::reduce::abs_bits_to_f32;
use crate::layers::ParamInfo;
use layout::Layout;
use update::{apply, Rule};

/// For `skip_serializing_if`: leaves a `false` flag out of the JSON, so files
/// that do not use a newer option read as before.
pub(crate) fn is_false(b: &bool) -> bool {
    !*b
}

pub(crate) fn check_lr(lr: f32) -> Result<()> {
    ensure_config(lr.is_finite() && lr >= 0.0, || {
        format!("learning rate (lr) must be finite and >= 0, got {lr}")
    })
}

pub(crate) fn check_weight_decay(name: &str, wd: f32) -> Result<()> {
    ensure_config(wd.is_finite() && wd >= 0.0, || {
        format!("{name} weight_decay must be finite and >= 0, got {wd}")
    })
}

/// An optimizer: its configuration, its step count and its state buffers (one
/// per name in [`OptimizerConfig::state_names`], each as long as the
/// parameter vector), plus the tensor layout (for `clipnorm` and
/// `exclude_from_weight_decay`) and a scratch buffer for clipped gradients.
#[derive(Clone, Debug)]
pub struct Optimizer {
    config: OptimizerConfig,
    /// Steps taken since the state was last (re)initialised.
    t: u64,
    /// The parameter count the state belongs to.
    n_params: usize,
    /// Empty until the first step; then sized once and reused.
    bufs: Vec<Vec<f32>>,
    layout: Layout,
    /// The clipped gradients; empty unless clipping is configured, then sized
    /// on the first step and reused.
    clipped: Vec<f32>,
    /// The largest magnitude of each state buffer (an upper bound), when
    /// known; see `bound.rs`.
    bounds: Option<[f64; 3]>,
    /// The bounds after the next step, when it was shown to stay finite.
    pending_bounds: Option<[f64; 3]>,
}

impl Optimizer {
    /// An optimizer with no state yet.
    ///
    /// # Errors
    /// `Error::Config` if a hyperparameter is out of range.
    pub fn new(config: OptimizerConfig) -> Result<Self> {
        config.validate()?;
        Ok(Self {
            config,
            t: 0,
            n_params: 0,
            bufs: Vec::new(),
            layout: Layout::default(),
            clipped: Vec::new(),
            bounds: None,
            pending_bounds: None,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &OptimizerConfig {
        &self.config
    }

    /// Tells the optimizer how the parameter vector splits into named tensors
    /// (the network calls this once, after building). `clipnorm` then clips
    /// each tensor's gradient on its own, and tensors whose name contains a
    /// string of `exclude_from_weight_decay` get no weight decay.
    ///
    /// Without a layout, or when the parameter vector stepped is not as long
    /// as the layout says, the whole vector is one tensor with weight decay.
    /// The state and step count are kept.
    pub fn set_layout(&mut self, tensors: &[ParamInfo]) {
        self.layout = Layout::new(&self.config, tensors);
    }

    /// Adds `coef·p` to the gradient of the parameters in each range, inside
    /// the update (an L2 regularizer `l2·Σw²` has `coef = 2·l2`). Ranges must
    /// be tensors of the layout set by [`Optimizer::set_layout`].
    pub fn set_extra_l2(&mut self, ranges: &[(Range<usize>, f32)]) {
        let extra: Vec<f32> = self.layout.tensors.iter().map(|t| ranges.iter().find(|(r, _)| r == t).map_or(0.0, |(_, c)| *c)).collect();
        self.layout.set_runs(&extra);
    }

    /// Changes the learning rate (for schedules); the state is kept.
    ///
    /// # Errors
    /// `Error::Config` if `lr` is negative or not finite; the old rate stays.
    pub fn set_lr(&mut self, lr: f32) -> Result<()> {
        check_lr(lr)?;
        self.config.set_lr(lr);
        Ok(())
    }

    /// Steps taken since the state was created or last reset.
    pub fn steps(&self) -> u64 {
        self.t
    }

    /// One update of every parameter from its gradient.
    ///
    /// The gradients are clipped first if the configuration asks for it (into
    /// a buffer of the optimizer's; `grads` is left as it is). The first step
    /// (and any step after the parameter count changed) sizes the state;
    /// later steps allocate nothing. Large vectors are updated on the thread
    /// pool in fixed chunks and norms are summed in a fixed order, so the
    /// result does not depend on the number of threads.
    ///
    /// Returns the largest `|p|` of the updated parameters, `+inf` when one
    /// of them is not finite (taken chunk by chunk inside the update, so the
    /// caller's finiteness check needs no pass of its own).
    ///
    /// # Shapes
    /// `params.len() == grads.len()`; a mismatch is a caller bug (checked in
    /// debug builds; release builds update only the common prefix).
    pub fn step(&mut self, params: &mut [f32], grads: &[f32]) -> f32 {
        debug_assert_eq!(
            params.len(),
            grads.len(),
            "params and grads differ in length"
        );
        let n = params.len().min(grads.len());
        let (params, grads) = (&mut params[..n], &grads[..n]);
        let names = self.config.state_names();
        if n != self.n_params || self.bufs.len() != names.len() {
            // A different parameter count means a different model: its
            // moments would be meaningless, so start afresh.
            self.forget_bounds();
            self.t = 0;
            self.n_params = n;
            self.bufs = names
                .iter()
                .map(|s| vec![self.config.initial_state_value(s); n])
                .collect();
        }
        self.t = self.t.saturating_add(1);
        debug_assert!(
            self.layout.len == 0 || self.layout.len == n,
            "layout for {} parameters, stepping {n}",
            self.layout.len
        );
        let (whole_tensor, whole_run) = (0..n, (0..n, true, 0.0));
        let (tensors, runs) = if self.layout.len == n {
            (&self.layout.tensors[..], &self.layout.runs[..])
        } else {
            (
                std::slice::from_ref(&whole_tensor),
                std::slice::from_ref(&whole_run),
            )
        };
        let clip = self.config.clipping();
        // Adam/AdamW apply value and global-norm clipping inside the update:
        // one read pass for the norm, no copy of the gradients.
        let adam = matches!(self.config, OptimizerConfig::Adam(_) | OptimizerConfig::Adamw(_));
        let fused = (adam && clip.fusable()).then(|| clip.fused_factors(grads));
        let grads = if clip.is_active() && fused.is_none() {
            if self.clipped.len() != n {
                self.clipped = vec![0.0; n];
            }
            clip.apply(grads, &mut self.clipped, tensors);
            &self.clipped[..]
        } else {
            grads
        };
        let (t, bufs) = (self.t, &mut self.bufs);
        let mut top = 0;
        for (r, decay, extra_l2) in runs {
            let (p, g) = (&mut params[r.clone()], &grads[r.clone()]);
            top = top.max(apply(&self.config, t, *decay, *extra_l2, fused, p, g, bufs, r.clone()));
        }
        self.carry_bounds();
        abs_bits_to_f32(top)
    }

    /// The named state buffers, e.g. `[("momentum_buffer", ..)]` or
    /// `[("exp_avg", ..), ("exp_avg_sq", ..)]`; empty before the first step.
    pub fn state(&self) -> Vec<(&'static str, &[f32])> {
        let names = self.config.state_names();
        names
            .iter()
            .copied()
            .zip(self.bufs.iter().map(Vec::as_slice))
            .collect()
    }

    /// Restores the state saved from [`state`](Self::state) and
    /// [`steps`](Self::steps), for a model with `n_params` parameters, so that
    /// training continues exactly as if it had not been interrupted.
    /// `buffers` may come in any order. `steps == 0` with no buffers is a
    /// fresh state.
    ///
    /// # Errors
    /// `Error::Format` if a buffer is missing, unknown, repeated or not
    /// `n_params` long, if one of
    /// [`non_negative_states`](OptimizerConfig::non_negative_states) holds a
    /// negative value, or if buffers come with `steps == 0`; the current
    /// state is then left unchanged.
    pub fn load_state(
        &mut self,
        steps: u64,
        buffers: &[(String, Vec<f32>)],
        n_params: usize,
    ) -> Result<()> {
        let name = self.config.name();
        // Before the first step there is no state to restore.
        let want = if steps == 0 {
            &[]
        } else {
            self.config.state_names()
        };
        let got: Vec<&str> = buffers.iter().map(|(b, _)| b.as_str()).collect();
        // Equal counts with every wanted name present leave no room for an
        // unknown or repeated buffer.
        if got.len() != want.len() || !want.iter().all(|w| got.contains(w)) {
            return Err(Error::Format(format!(
                "{name} state after {steps} steps must have buffers {want:?}, got {got:?}"
            )));
        }
        if let Some((b, data)) = buffers.iter().find(|(_, d)| d.len() != n_params) {
            return Err(Error::Format(format!(
                "{name} state buffer {b:?} has {} values, expected {n_params} (one per parameter)",
                data.len()
            )));
        }
        let non_negative = self.config.non_negative_states();
        if let Some((b, _)) = buffers
            .iter()
            .find(|(b, d)| non_negative.contains(&b.as_str()) && d.iter().any(|&v| v < 0.0))
        {
            return Err(Error::Format(format!(
                "{name} state buffer {b:?} holds negative values, which it never can"
            )));
        }
        if steps == 0 {
            self.reset();
            return Ok(());
        }
        self.forget_bounds();
        let find = |w: &&str| buffers.iter().find(|(b, _)| b == w).map(|(_, d)| d.clone());
        self.bufs = want.iter().map(|w| find(w).unwrap_or_default()).collect();
        self.t = steps;
        self.n_params = n_params;
        Ok(())
    }

    /// Forgets the state and the step count (for example after new weights
    /// were loaded); the next step starts like the first. The layout is kept.
    pub fn reset(&mut self) {
        self.forget_bounds();
        self.t = 0;
        self.n_params = 0;
        self.bufs = Vec::new();
    }
}
