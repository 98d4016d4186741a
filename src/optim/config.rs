//! [`OptimizerConfig`]: which optimizer to use with its hyperparameters, its
//! names, validation, and what it tells the [`Optimizer`](super::Optimizer)
//! (state buffer names, initial state values, learning rate, options). Its
//! serde impls, which add the shared options, live in `options.rs`.

use serde::{Deserialize, Serialize};

use super::update::Rule;
use super::{adagrad, adam, rmsprop, sgd};
use super::{AdagradConfig, AdamConfig, Clipping, OptimizerOptions, RmspropConfig, SgdConfig};
use crate::error::{Error, Result};

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

    /// Replaces the learning rate without checking it; see
    /// [`Optimizer::set_lr`](super::Optimizer::set_lr) for the checked version.
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
    /// [`Optimizer::state`](super::Optimizer::state) returns them. They depend
    /// on the settings: SGD keeps `momentum_buffer` only with momentum, Adam
    /// adds `max_exp_avg_sq` with AMSGrad, RMSprop adds `momentum_buffer` with
    /// momentum and `grad_avg` when centered.
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
