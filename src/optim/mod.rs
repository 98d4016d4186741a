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
mod clip;
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
pub use options::OptimizerOptions;
pub use rmsprop::RmspropConfig;
pub use sgd::SgdConfig;

use std::ops::Range;

use serde::{Deserialize, Serialize};

use crate::error::{ensure_config, Error, Result};
use crate::layers::ParamInfo;
use layout::Layout;
use update::{apply, Rule};

/// Which optimizer to use, with its hyperparameters.
///
/// Serialises as a flat JSON object tagged by `name`, e.g.
/// `{"name":"adam","lr":0.001,"beta1":0.9,"beta2":0.999,"eps":1e-8,"weight_decay":0.0}`.
/// Every optimizer also takes the options `clipvalue`, `clipnorm`,
/// `global_clipnorm` and `exclude_from_weight_decay` (see
/// [`OptimizerOptions`]), written after the algorithm's own fields and left
/// out of the JSON when unset.
// `remote = "Self"`: the derive writes the tagged form as inherent functions,
// which the hand-written impls in options.rs wrap to add the options.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self", tag = "name", rename_all = "snake_case")]
pub enum OptimizerConfig {
    /// Stochastic gradient descent (optionally with momentum or Nesterov
    /// momentum, Sutskever et al. 2013), following PyTorch's update rule.
    Sgd(SgdConfig),
    /// Adam (Kingma & Ba 2015), following PyTorch's update rule; weight decay
    /// is an L2 term in the gradient.
    Adam(AdamConfig),
    /// AdamW (Loshchilov & Hutter 2019), following PyTorch's update rule;
    /// weight decay shrinks the weights directly.
    Adamw(AdamConfig),
    /// RMSprop (Hinton 2012), optionally centered and with momentum,
    /// following PyTorch's update rule.
    Rmsprop(RmspropConfig),
    /// Adagrad (Duchi et al. 2011), following PyTorch's update rule.
    Adagrad(AdagradConfig),
}

impl OptimizerConfig {
    /// The names [`from_name`](Self::from_name) accepts.
    pub const NAMES: [&'static str; 5] = ["sgd", "adam", "adamw", "rmsprop", "adagrad"];

    /// AdamW with PyTorch's defaults, including its weight decay of 0.01.
    pub fn adamw_default() -> Self {
        Self::Adamw(AdamConfig {
            weight_decay: 0.01,
            ..AdamConfig::default()
        })
    }

    /// The default configuration of the optimizer called `name` (one of
    /// [`NAMES`](Self::NAMES), with PyTorch's defaults).
    ///
    /// # Errors
    /// `Error::UnknownName` for any other name.
    pub fn from_name(name: &str) -> Result<Self> {
        match name {
            "sgd" => Ok(Self::Sgd(SgdConfig::default())),
            "adam" => Ok(Self::Adam(AdamConfig::default())),
            "adamw" => Ok(Self::adamw_default()),
            "rmsprop" => Ok(Self::Rmsprop(RmspropConfig::default())),
            "adagrad" => Ok(Self::Adagrad(AdagradConfig::default())),
            _ => Err(Error::UnknownName(format!(
                "unknown optimizer {name:?}; expected one of {}",
                Self::NAMES.join(", ")
            ))),
        }
    }

    /// Checks every hyperparameter against its valid range.
    ///
    /// # Errors
    /// `Error::Config` naming the first offending field, its value and the
    /// valid range.
    pub fn validate(&self) -> Result<()> {
        match self {
            Self::Sgd(c) => c.validate(),
            Self::Adam(c) | Self::Adamw(c) => c.validate(self.name()),
            Self::Rmsprop(c) => c.validate(),
            Self::Adagrad(c) => c.validate(),
        }?;
        self.options().validate(self.name())
    }

    /// The options every optimizer shares.
    pub fn options(&self) -> &OptimizerOptions {
        match self {
            Self::Sgd(c) => &c.options,
            Self::Adam(c) | Self::Adamw(c) => &c.options,
            Self::Rmsprop(c) => &c.options,
            Self::Adagrad(c) => &c.options,
        }
    }

    /// The options every optimizer shares, to change them.
    pub fn options_mut(&mut self) -> &mut OptimizerOptions {
        match self {
            Self::Sgd(c) => &mut c.options,
            Self::Adam(c) | Self::Adamw(c) => &mut c.options,
            Self::Rmsprop(c) => &mut c.options,
            Self::Adagrad(c) => &mut c.options,
        }
    }

    /// The gradient clipping this configuration asks for.
    pub fn clipping(&self) -> Clipping {
        self.options().clipping()
    }

    /// The substrings that exclude a tensor from weight decay.
    pub fn exclude_from_weight_decay(&self) -> &[String] {
        &self.options().exclude_from_weight_decay
    }

    /// The weight decay coefficient (L2 or, for AdamW, decoupled).
    pub fn weight_decay(&self) -> f32 {
        match self {
            Self::Sgd(c) => c.weight_decay,
            Self::Adam(c) | Self::Adamw(c) => c.weight_decay,
            Self::Rmsprop(c) => c.weight_decay,
            Self::Adagrad(c) => c.weight_decay,
        }
    }

    /// The learning rate.
    pub fn lr(&self) -> f32 {
        match self {
            Self::Sgd(c) => c.lr,
            Self::Adam(c) | Self::Adamw(c) => c.lr,
            Self::Rmsprop(c) => c.lr,
            Self::Adagrad(c) => c.lr,
        }
    }

    /// Replaces the learning rate without checking it; see [`Optimizer::set_lr`]
    /// for the checked version.
    pub fn set_lr(&mut self, lr: f32) {
        match self {
            Self::Sgd(c) => c.lr = lr,
            Self::Adam(c) | Self::Adamw(c) => c.lr = lr,
            Self::Rmsprop(c) => c.lr = lr,
            Self::Adagrad(c) => c.lr = lr,
        }
    }

    /// The optimizer's name, one of [`NAMES`](Self::NAMES).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Sgd(_) => "sgd",
            Self::Adam(_) => "adam",
            Self::Adamw(_) => "adamw",
            Self::Rmsprop(_) => "rmsprop",
            Self::Adagrad(_) => "adagrad",
        }
    }

    /// The names of the state buffers this configuration keeps, in the order
    /// [`Optimizer::state`] returns them. They depend on the settings: SGD
    /// keeps `momentum_buffer` only with momentum, Adam adds `max_exp_avg_sq`
    /// with AMSGrad, RMSprop adds `momentum_buffer` with momentum and
    /// `grad_avg` when centered.
    pub fn state_names(&self) -> &'static [&'static str] {
        match self {
            Self::Sgd(c) if c.momentum == 0.0 => &<sgd::PlainStep as Rule<0>>::STATE_NAMES,
            Self::Sgd(_) => &<sgd::MomentumStep as Rule<1>>::STATE_NAMES,
            Self::Adam(c) | Self::Adamw(c) if c.amsgrad => {
                &<adam::AdamStep as Rule<3>>::STATE_NAMES
            }
            Self::Adam(_) | Self::Adamw(_) => &<adam::AdamStep as Rule<2>>::STATE_NAMES,
            Self::Rmsprop(c) => match (c.has_momentum(), c.centered) {
                (false, false) => &<rmsprop::RmspropStep as Rule<1>>::STATE_NAMES,
                (true, false) => &<rmsprop::RmspropStep as Rule<2>>::STATE_NAMES,
                (false, true) => &rmsprop::RMSPROP_CENTERED,
                (true, true) => &<rmsprop::RmspropStep as Rule<3>>::STATE_NAMES,
            },
            Self::Adagrad(_) => &<adagrad::AdagradStep as Rule<1>>::STATE_NAMES,
        }
    }

    /// The state buffers that can never hold a negative value (second-moment
    /// estimates and sums of squares); a saved state with a negative value in
    /// one of them is corrupt.
    pub fn non_negative_states(&self) -> &'static [&'static str] {
        match self {
            Self::Sgd(_) => &[],
            Self::Adam(_) | Self::Adamw(_) => &["exp_avg_sq", "max_exp_avg_sq"],
            Self::Rmsprop(_) => &["square_avg"],
            Self::Adagrad(_) => &["sum"],
        }
    }

    /// The value the state buffer `state` starts from: Adagrad's `sum` starts
    /// at `initial_accumulator_value`, everything else at 0.
    pub fn initial_state_value(&self, state: &str) -> f32 {
        match self {
            Self::Adagrad(c) if state == "sum" => c.initial_accumulator_value,
            _ => 0.0,
        }
    }
}

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
    /// # Shapes
    /// `params.len() == grads.len()`; a mismatch is a caller bug (checked in
    /// debug builds; release builds update only the common prefix).
    pub fn step(&mut self, params: &mut [f32], grads: &[f32]) {
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
        for (r, decay, extra_l2) in runs {
            let (p, g) = (&mut params[r.clone()], &grads[r.clone()]);
            apply(&self.config, t, *decay, *extra_l2, fused, p, g, bufs, r.clone());
        }
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
        let find = |w: &&str| buffers.iter().find(|(b, _)| b == w).map(|(_, d)| d.clone());
        self.bufs = want.iter().map(|w| find(w).unwrap_or_default()).collect();
        self.t = steps;
        self.n_params = n_params;
        Ok(())
    }

    /// Forgets the state and the step count (for example after new weights
    /// were loaded); the next step starts like the first. The layout is kept.
    pub fn reset(&mut self) {
        self.t = 0;
        self.n_params = 0;
        self.bufs = Vec::new();
    }
}
