//! Layers: the closed set of kinds a network is built from, dispatched by `match`.
//!
//! A layer does not own its parameters: they live in the network's one flat
//! parameter vector (so the optimizer updates everything in one pass), and a
//! layer only knows its offsets into it. A layer does own its activation
//! workspaces, sized to the largest batch seen so far.

pub mod dense;

use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::activation::Activation;
use crate::error::Result;
use crate::init::Init;
use crate::tensor::{MatRef, Matrix};

pub use dense::Dense;

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

/// The architecture of one layer, as stored in model files.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LayerSpec {
    Dense {
        units: usize,
        #[serde(default = "identity")]
        activation: ActivationSpec,
        #[serde(default)]
        kernel_initializer: Option<InitSpec>,
        #[serde(default)]
        bias_initializer: Option<InitSpec>,
    },
}

fn identity() -> ActivationSpec {
    ActivationSpec::Name("identity".into())
}

/// A named parameter tensor of a layer: offset into the flat vector and shape.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamInfo {
    pub name: &'static str,
    pub offset: usize,
    pub shape: Vec<usize>,
}

impl ParamInfo {
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A built layer.
#[derive(Clone, Debug)]
pub enum Layer {
    Dense(Dense),
}

impl Layer {
    /// Builds the layer for inputs of width `in_dim`, its parameters starting at
    /// `offset` in the flat vector.
    ///
    /// # Errors
    /// `Error::Config`/`Error::UnknownName` for an invalid spec.
    pub fn build(spec: &LayerSpec, in_dim: usize, offset: usize) -> Result<Layer> {
        match spec {
            LayerSpec::Dense { units, activation, kernel_initializer, bias_initializer } => {
                let act = activation.resolve()?;
                let kernel = kernel_initializer.as_ref().map(InitSpec::resolve).transpose()?.unwrap_or_else(|| Init::default_for(&act));
                let bias = bias_initializer.as_ref().map(InitSpec::resolve).transpose()?.unwrap_or(Init::Zeros);
                Ok(Layer::Dense(Dense::new(in_dim, *units, act, kernel, bias, offset)?))
            }
        }
    }

    pub fn out_dim(&self) -> usize {
        match self {
            Layer::Dense(d) => d.out_dim(),
        }
    }

    /// The layer's parameter tensors, in a fixed order.
    pub fn params(&self) -> Vec<ParamInfo> {
        match self {
            Layer::Dense(d) => d.params(),
        }
    }

    /// Number of scalar parameters.
    pub fn n_params(&self) -> usize {
        self.params().iter().map(ParamInfo::len).sum()
    }

    pub fn init_params(&self, params: &mut [f32], rng: &mut ChaCha8Rng) {
        match self {
            Layer::Dense(d) => d.init_params(params, rng),
        }
    }

    /// Runs the layer on `x`; the result is then in [`Layer::output`].
    pub fn forward(&mut self, x: MatRef<'_>, params: &[f32]) -> Result<()> {
        match self {
            Layer::Dense(d) => d.forward(x, params),
        }
    }

    pub fn output(&self) -> MatRef<'_> {
        match self {
            Layer::Dense(d) => d.output(),
        }
    }

    /// Back-propagates `dy` (gradient w.r.t. this layer's output for input `x`;
    /// overwritten as scratch), adds parameter gradients into `grads`, and writes
    /// the gradient w.r.t. `x` into `dx` when asked.
    pub fn backward(&mut self, x: MatRef<'_>, params: &[f32], grads: &mut [f32], dy: &mut Matrix, dx: Option<&mut Matrix>) -> Result<()> {
        match self {
            Layer::Dense(d) => d.backward(x, params, grads, dy, dx),
        }
    }
}
