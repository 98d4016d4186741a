//! The options every optimizer takes (Keras' `clipvalue`, `clipnorm`,
//! `global_clipnorm` and `exclude_from_weight_decay`), held once in
//! [`OptimizerOptions`], and the JSON form of [`OptimizerConfig`] that writes
//! them flat beside the algorithm's own fields.
//!
//! serde's `flatten` cannot be combined with `deny_unknown_fields`, which every
//! algorithm's config keeps (a typo in a model file must not pass silently).
//! So the options are taken out of the JSON object first and the rest goes to
//! the tagged enum, as `Schedule` does with its `per` (schedule/mod.rs).

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{Clipping, OptimizerConfig};
use crate::error::{ensure_config, Result};

/// Gradient clipping and the weight-decay exclusions, the same for every
/// optimizer; left out of the JSON when unset.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimizerOptions {
    /// Clamp every gradient element to `[-clipvalue, clipvalue]` before the
    /// update (Keras' `clipvalue`), `> 0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clipvalue: Option<f32>,
    /// Rescale each parameter tensor's gradient, independently, to L2 norm
    /// `<= clipnorm` (Keras' `clipnorm`), `> 0`; applied after `clipvalue`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clipnorm: Option<f32>,
    /// Rescale all gradients together by `global_clipnorm / (norm + 1e-6)`
    /// when that is below 1, `norm` being their global L2 norm (Keras'
    /// `global_clipnorm`, with the `eps` of PyTorch's `clip_grad_norm_`),
    /// `> 0`; applied last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub global_clipnorm: Option<f32>,
    /// Parameter tensors whose name contains any of these strings get no
    /// weight decay (Keras' `exclude_from_weight_decay`), e.g. `["bias",
    /// "gamma", "beta"]`; for AdamW they are not shrunk. Names come from
    /// [`Optimizer::set_layout`](crate::optim::Optimizer::set_layout).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude_from_weight_decay: Vec<String>,
}

impl OptimizerOptions {
    /// The JSON keys of the options, as they sit beside the algorithm's fields.
    pub const KEYS: [&'static str; 4] = ["clipvalue", "clipnorm", "global_clipnorm", "exclude_from_weight_decay"];

    /// The gradient clipping these options ask for.
    pub fn clipping(&self) -> Clipping {
        Clipping { clipvalue: self.clipvalue, clipnorm: self.clipnorm, global_clipnorm: self.global_clipnorm }
    }

    /// # Errors
    /// `Error::Config` for a clipping bound that is not finite and > 0, or an
    /// empty exclusion string; the message starts with the optimizer's `name`.
    pub fn validate(&self, name: &str) -> Result<()> {
        for (field, v) in [("clipvalue", self.clipvalue), ("clipnorm", self.clipnorm), ("global_clipnorm", self.global_clipnorm)] {
            if let Some(v) = v {
                ensure_config(v.is_finite() && v > 0.0, || format!("{name} {field} must be finite and > 0 (or unset), got {v}"))?;
            }
        }
        ensure_config(self.exclude_from_weight_decay.iter().all(|s| !s.is_empty()), || {
            format!(
                "{name} exclude_from_weight_decay must not contain an empty string \
                 (it would match every tensor), got {:?}",
                self.exclude_from_weight_decay
            )
        })
    }
}

/// The algorithm's part of the JSON, as the derive on `OptimizerConfig`
/// (`remote = "Self"`) writes it.
struct Tagged<'a>(&'a OptimizerConfig);

impl Serialize for Tagged<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        OptimizerConfig::serialize(self.0, serializer)
    }
}

/// The flat JSON object: the algorithm's fields, then the options.
#[derive(Serialize)]
struct Flat<'a> {
    #[serde(flatten)]
    tagged: Tagged<'a>,
    #[serde(flatten)]
    options: &'a OptimizerOptions,
}

impl Serialize for OptimizerConfig {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        Flat { tagged: Tagged(self), options: self.options() }.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for OptimizerConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let mut map = serde_json::Map::<String, serde_json::Value>::deserialize(deserializer)?;
        let taken: serde_json::Map<_, _> = OptimizerOptions::KEYS.iter().filter_map(|&k| map.remove_entry(k)).collect();
        let options = OptimizerOptions::deserialize(serde_json::Value::Object(taken)).map_err(D::Error::custom)?;
        let mut config = OptimizerConfig::deserialize(serde_json::Value::Object(map)).map_err(D::Error::custom)?;
        *config.options_mut() = options;
        Ok(config)
    }
}
