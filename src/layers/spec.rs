//! Layer specifications: the architecture as the Python API writes it and as
//! model files store it (JSON, tagged by `"type"`).

use serde::{Deserialize, Serialize};

use crate::activation::Activation;
use crate::error::Result;
use crate::init::Init;
use crate::regularizer::Regularizer;

/// An activation given by name (`"relu"`) or with its parameter
/// (`{"name": "leaky_relu", "alpha": 0.2}`), as the Python API writes it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ActivationSpec {
    Name(String),
    WithAlpha { name: String, alpha: Option<f32> },
}

impl ActivationSpec {
    /// # Errors
    /// `Error::UnknownName` / `Error::Config` from [`Activation::from_name`].
    pub fn resolve(&self) -> Result<Activation> {
        match self {
            ActivationSpec::Name(n) => Activation::from_name(n, None),
            ActivationSpec::WithAlpha { name, alpha } => Activation::from_name(name, *alpha),
        }
    }
}

/// An initialiser given by name (`"he_normal"`) or in full
/// (`{"name": "uniform", "low": -0.1, "high": 0.1}`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum InitSpec {
    Name(String),
    Full(Init),
}

impl InitSpec {
    /// # Errors
    /// `Error::UnknownName` for an unknown name, `Error::Config` for bad parameters.
    pub fn resolve(&self) -> Result<Init> {
        let init = match self {
            InitSpec::Name(n) => Init::from_name(n)?,
            InitSpec::Full(i) => *i,
        };
        init.validate()?;
        Ok(init)
    }

    /// The kernel initialiser: the given one, else the default for `act`.
    ///
    /// # Errors
    /// As [`InitSpec::resolve`].
    pub fn kernel(spec: &Option<InitSpec>, act: &Activation) -> Result<Init> {
        Ok(spec.as_ref().map(InitSpec::resolve).transpose()?.unwrap_or_else(|| Init::default_for(act)))
    }

    /// The bias initialiser: the given one, else zeros.
    ///
    /// # Errors
    /// As [`InitSpec::resolve`].
    pub fn bias(spec: &Option<InitSpec>) -> Result<Init> {
        Ok(spec.as_ref().map(InitSpec::resolve).transpose()?.unwrap_or(Init::Zeros))
    }
}

/// The architecture of one layer, as stored in model files.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LayerSpec {
    /// `y = f(x·W + b)`.
    Dense {
        units: usize,
        #[serde(default = "identity")]
        activation: ActivationSpec,
        #[serde(default)]
        kernel_initializer: Option<InitSpec>,
        #[serde(default)]
        bias_initializer: Option<InitSpec>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        kernel_regularizer: Option<Regularizer>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bias_regularizer: Option<Regularizer>,
    },
    /// An elementwise activation on its own (fused into a preceding linear Dense).
    Activation { activation: ActivationSpec },
    /// Softmax over the features, of `x / temperature`.
    Softmax {
        #[serde(default = "one")]
        temperature: f32,
    },
    /// Log-softmax over the features, of `x / temperature`.
    LogSoftmax {
        #[serde(default = "one")]
        temperature: f32,
    },
    /// Leaky ReLU with a learned slope per unit (or one shared).
    Prelu {
        #[serde(default)]
        shared: bool,
        #[serde(default = "quarter")]
        init: f32,
    },
    /// Gated linear unit `gate(x·Wg + bg) ⊙ (x·Wv + bv)`.
    Gated {
        units: usize,
        gate: ActivationSpec,
        #[serde(default)]
        kernel_initializer: Option<InitSpec>,
        #[serde(default)]
        bias_initializer: Option<InitSpec>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        kernel_regularizer: Option<Regularizer>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bias_regularizer: Option<Regularizer>,
    },
    /// Inverted dropout, active in training mode only.
    Dropout { rate: f32 },
    /// Batch normalisation with running statistics (PyTorch's momentum convention).
    BatchNorm {
        #[serde(default = "bn_momentum")]
        momentum: f32,
        #[serde(default = "eps_norm")]
        eps: f32,
    },
    /// Per-sample normalisation over the features.
    LayerNorm {
        #[serde(default = "eps_norm")]
        eps: f32,
    },
    /// Per-sample root-mean-square normalisation (no centring, no shift).
    RmsNorm {
        #[serde(default = "eps_rms")]
        eps: f32,
    },
    /// `y = x + block(x)`, with a learned projection of `x` when widths differ.
    Residual { layers: Vec<LayerSpec> },
}

impl LayerSpec {
    /// The (kernel, bias) regularizers of the layer kinds that take them.
    pub fn regularizers(&self) -> (Option<Regularizer>, Option<Regularizer>) {
        match self {
            LayerSpec::Dense { kernel_regularizer, bias_regularizer, .. } | LayerSpec::Gated { kernel_regularizer, bias_regularizer, .. } => (*kernel_regularizer, *bias_regularizer),
            _ => (None, None),
        }
    }
}

fn identity() -> ActivationSpec {
    ActivationSpec::Name("identity".into())
}

fn one() -> f32 {
    1.0
}

fn quarter() -> f32 {
    0.25
}

fn bn_momentum() -> f32 {
    0.1
}

fn eps_norm() -> f32 {
    1e-5
}

fn eps_rms() -> f32 {
    1e-6
}
