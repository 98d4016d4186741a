//! The parts of layer specifications that several kinds share: an activation
//! and an initialiser as the Python API writes them. Each kind's own spec
//! struct lives in the kind's file; `LayerSpec` (layers/mod.rs) tags them.

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

}

/// The initializers and regularizers of a layer with a kernel and a bias
/// (Dense, the gated units), flattened into its spec's JSON after the kind's
/// own fields: `"kernel_initializer"`, `"bias_initializer"`, and the
/// regularizers when set.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WeightSpec {
    #[serde(default)]
    pub kernel_initializer: Option<InitSpec>,
    #[serde(default)]
    pub bias_initializer: Option<InitSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel_regularizer: Option<Regularizer>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bias_regularizer: Option<Regularizer>,
}

impl WeightSpec {
    /// The (kernel, bias) initialisers: the given ones, else the default for
    /// `act` (He for the ReLU family, Xavier otherwise) and zeros.
    ///
    /// # Errors
    /// As [`InitSpec::resolve`].
    pub fn inits(&self, act: &Activation) -> Result<(Init, Init)> {
        let resolve = |spec: &Option<InitSpec>| spec.as_ref().map(InitSpec::resolve).transpose();
        Ok((resolve(&self.kernel_initializer)?.unwrap_or_else(|| Init::default_for(act)), resolve(&self.bias_initializer)?.unwrap_or(Init::Zeros)))
    }

    /// The (kernel, bias) regularizers.
    pub fn regularizers(&self) -> (Option<Regularizer>, Option<Regularizer>) {
        (self.kernel_regularizer, self.bias_regularizer)
    }
}
