//! The parts of layer specifications that several kinds share: an activation
//! and an initialiser as the Python API writes them. Each kind's own spec
//! struct lives in the kind's file; `LayerSpec` (layers/mod.rs) tags them.

use serde::{Deserialize, Serialize};

use crate::activation::Activation;
use crate::error::Result;
use crate::init::Init;

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
