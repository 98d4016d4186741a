//! The activation name table: one [`ActivationInfo`] row per function in
//! [`ACTIVATIONS`] (names, aliases, default parameter, properties), the derived
//! [`ACTIVATION_NAMES`], and the `Activation` methods that read it (`from_name`,
//! `info`, `name`, `alpha`, `is_relu_family`).

use super::Activation;
use crate::error::{unknown_name, Error, Result};

/// What the library knows about one activation besides its arithmetic: its
/// names, its parameter, and the properties initialisers and tools ask about.
/// [`ACTIVATIONS`] holds one row per function; `from_name`, `name`, `alpha`'s
/// default and `is_relu_family` all read it, and the Python package reads it
/// through `_core.activation_table()` instead of keeping copies.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ActivationInfo {
    /// The function with its default parameter (if it has one).
    pub act: Activation,
    /// The canonical name, as serialised models store it.
    pub name: &'static str,
    /// Other names accepted for the same function (`swish` for `silu`).
    pub aliases: &'static [&'static str],
    /// He rather than Xavier initialisation suits it (ReLU-like, not symmetric).
    pub relu_family: bool,
    /// The derivative jumps at 0, so finite differences across 0 are wrong
    /// (gradient checks skip such points).
    pub kinked: bool,
    /// Each output value depends on its input value alone (so it can be fused
    /// into the layer before it).
    pub elementwise: bool,
}

impl ActivationInfo {
    /// The default of `alpha` for the functions that take one.
    pub fn default_alpha(&self) -> Option<f32> {
        self.act.alpha()
    }
}

const fn row(act: Activation, name: &'static str, aliases: &'static [&'static str], relu_family: bool, kinked: bool) -> ActivationInfo {
    ActivationInfo { act, name, aliases, relu_family, kinked, elementwise: true }
}

/// Every activation, one row each (the order of error messages and docs).
#[rustfmt::skip]
pub const ACTIVATIONS: [ActivationInfo; 10] = [
    row(Activation::Identity, "identity", &["linear"], false, false),
    row(Activation::Sigmoid, "sigmoid", &[], false, false),
    row(Activation::Tanh, "tanh", &[], false, false),
    row(Activation::Relu, "relu", &[], true, true),
    row(Activation::LeakyRelu { alpha: 0.01 }, "leaky_relu", &[], true, true),
    row(Activation::Elu { alpha: 1.0 }, "elu", &[], true, true),
    row(Activation::Gelu, "gelu", &[], true, false),
    row(Activation::GeluTanh, "gelu_tanh", &[], true, false),
    row(Activation::Silu, "silu", &["swish"], true, false),
    row(Activation::Softplus, "softplus", &[], true, false),
];

const fn count_names() -> usize {
    let (mut n, mut i) = (0, 0);
    while i < ACTIVATIONS.len() {
        n += 1 + ACTIVATIONS[i].aliases.len();
        i += 1;
    }
    n
}

const fn all_names() -> [&'static str; count_names()] {
    let mut out = [""; count_names()];
    let (mut k, mut i) = (0, 0);
    while i < ACTIVATIONS.len() {
        out[k] = ACTIVATIONS[i].name;
        k += 1;
        let mut j = 0;
        while j < ACTIVATIONS[i].aliases.len() {
            out[k] = ACTIVATIONS[i].aliases[j];
            k += 1;
            j += 1;
        }
        i += 1;
    }
    out
}

/// Every name [`Activation::from_name`] accepts, aliases included (derived from
/// [`ACTIVATIONS`]).
pub const ACTIVATION_NAMES: [&str; count_names()] = all_names();

impl Activation {
    /// Parses a name (case-insensitive) with an optional parameter.
    ///
    /// The names, aliases and default alphas are the rows of [`ACTIVATIONS`]
    /// (`leaky_relu` defaults to 0.01, `elu` to 1.0; `swish` is `silu`).
    ///
    /// # Errors
    /// `Error::UnknownName` for any other name (the message lists the known
    /// ones); `Error::Config` if `alpha` is given for a function without one, or
    /// is not finite.
    pub fn from_name(name: &str, alpha: Option<f32>) -> Result<Activation> {
        let lower = name.to_ascii_lowercase();
        let Some(info) = ACTIVATIONS.iter().find(|r| r.name == lower || r.aliases.contains(&lower.as_str())) else {
            return Err(unknown_name("activation", name, ACTIVATIONS.iter().map(|r| (r.name, r.aliases))));
        };
        let act = info.act.with_alpha(alpha);
        match (act.alpha(), alpha) {
            (None, Some(a)) => {
                let takers: Vec<&str> = ACTIVATIONS.iter().filter(|r| r.default_alpha().is_some()).map(|r| r.name).collect();
                Err(Error::Config(format!(
                    "activation '{}' takes no alpha, but alpha={a} was given; only {} have one",
                    info.name,
                    takers.join(" and ")
                )))
            }
            (Some(a), _) if !a.is_finite() => Err(Error::Config(format!(
                "alpha for '{}' must be a finite number, got {a}",
                info.name
            ))),
            _ => Ok(act),
        }
    }

    /// This function with its parameter set to `alpha` (when it has one and
    /// `alpha` is given; otherwise unchanged).
    fn with_alpha(self, alpha: Option<f32>) -> Activation {
        match (self, alpha) {
            (Activation::LeakyRelu { .. }, Some(alpha)) => Activation::LeakyRelu { alpha },
            (Activation::Elu { .. }, Some(alpha)) => Activation::Elu { alpha },
            (act, _) => act,
        }
    }

    /// This function's row of [`ACTIVATIONS`].
    pub fn info(&self) -> &'static ActivationInfo {
        let kind = std::mem::discriminant(self);
        // Every variant has a row: `table_rows_match_the_enum` checks it for each one.
        ACTIVATIONS.iter().find(|r| std::mem::discriminant(&r.act) == kind).unwrap_or(&ACTIVATIONS[0])
    }

    /// The canonical name, as accepted by [`Activation::from_name`] and used in
    /// serialised models.
    pub fn name(&self) -> &'static str {
        self.info().name
    }

    /// The parameter of `leaky_relu` and `elu`; `None` for the others.
    pub fn alpha(&self) -> Option<f32> {
        match *self {
            Activation::LeakyRelu { alpha } | Activation::Elu { alpha } => Some(alpha),
            _ => None,
        }
    }

    /// Whether He (Kaiming) initialisation suits this function (the ReLU-like,
    /// non-symmetric ones) rather than Xavier (identity, sigmoid, tanh).
    pub fn is_relu_family(&self) -> bool {
        self.info().relu_family
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(name: &str, alpha: Option<f32>) -> Result<Activation> {
        Activation::from_name(name, alpha)
    }

    #[test]
    fn names_aliases_and_errors() {
        for name in ACTIVATION_NAMES {
            let act = parse(name, None).unwrap();
            assert_eq!(parse(act.name(), act.alpha()).unwrap(), act);
            let he = !matches!(name, "identity" | "linear" | "sigmoid" | "tanh");
            assert_eq!(act.is_relu_family(), he, "{name}");
        }
        assert_eq!(parse("SWISH", None).unwrap(), Activation::Silu);
        assert_eq!(parse("Linear", None).unwrap(), Activation::Identity);
        let leaky = parse("leaky_relu", None).unwrap();
        assert_eq!(leaky, Activation::LeakyRelu { alpha: 0.01 });
        assert_eq!(
            parse("elu", Some(0.5)).unwrap(),
            Activation::Elu { alpha: 0.5 }
        );
        let msg = parse("relu6", None).unwrap_err().to_string();
        assert!(msg.contains("relu6") && msg.contains("gelu_tanh"), "{msg}");
        assert!(matches!(parse("relu", Some(0.1)), Err(Error::Config(_))));
        assert!(matches!(
            parse("elu", Some(f32::NAN)),
            Err(Error::Config(_))
        ));
        let inf = parse("leaky_relu", Some(f32::INFINITY));
        assert!(matches!(inf, Err(Error::Config(_))));
    }

    #[test]
    fn table_rows_match_the_enum() {
        // The match fails to compile when a variant is added, pointing here; the
        // list below it then needs the variant, and the assertion its row.
        let _every_variant_listed = |act: Activation| match act {
            Activation::Identity | Activation::Sigmoid | Activation::Tanh | Activation::Relu
            | Activation::LeakyRelu { .. } | Activation::Elu { .. } | Activation::Gelu
            | Activation::GeluTanh | Activation::Silu | Activation::Softplus => (),
        };
        #[rustfmt::skip]
        let variants = [
            Activation::Identity, Activation::Sigmoid, Activation::Tanh, Activation::Relu,
            Activation::LeakyRelu { alpha: 0.3 }, Activation::Elu { alpha: 0.3 }, Activation::Gelu,
            Activation::GeluTanh, Activation::Silu, Activation::Softplus,
        ];
        for act in variants {
            assert_eq!(std::mem::discriminant(&act.info().act), std::mem::discriminant(&act), "{act:?}");
        }
        for row in ACTIVATIONS {
            // The serialised name is the table's name.
            let json = serde_json::to_value(row.act).unwrap();
            assert_eq!(json["name"], row.name);
            assert_eq!(parse(row.name, None).unwrap(), row.act);
            for alias in row.aliases {
                assert_eq!(parse(alias, None).unwrap(), row.act, "{alias}");
            }
        }
        assert_eq!(ACTIVATION_NAMES.len(), 12);
        assert_eq!(parse("elu", None).unwrap().info().default_alpha(), Some(1.0));
        let msg = parse("tanh", Some(0.5)).unwrap_err().to_string();
        assert!(msg.contains("only leaky_relu and elu have one"), "{msg}");
    }
}
