//! Elementwise activation functions: forward, derivative, and the fused
//! bias-add + activation that follows every dense layer's GEMM.
//!
//! Each public method dispatches on the enum once, outside the loop, into a
//! multiversioned kernel whose loop body is a branchless closure over
//! `kernels::math`, so every arm vectorises for the CPU it runs on. Work above
//! `PAR_THRESHOLD` elements is split into fixed-size chunks; every element is
//! computed independently, so the result is bit-identical for any thread count.

use multiversion::multiversion;
use rayon::prelude::*;

use crate::error::{unknown_name, Error, Result};
use crate::kernels::{math, parallel_for, PAR_CHUNK};

/// √(2/π), the GELU tanh-approximation scale.
const SQRT_2_OVER_PI: f32 = std::f32::consts::FRAC_2_SQRT_PI * std::f32::consts::FRAC_1_SQRT_2;
/// 1/√(2π), the standard normal density at 0.
const INV_SQRT_2PI: f32 = 0.5 * std::f32::consts::FRAC_2_SQRT_PI * std::f32::consts::FRAC_1_SQRT_2;
/// The cubic coefficient of the GELU tanh approximation (Hendrycks & Gimpel 2016).
const GELU_CUBIC: f32 = 0.044_715;

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

/// An elementwise activation function.
///
/// Serialises as `{"name": "relu"}` or `{"name": "leaky_relu", "alpha": 0.01}`.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "name", rename_all = "snake_case")]
pub enum Activation {
    /// f(x) = x.
    Identity,
    /// Logistic sigmoid 1/(1 + e^−x).
    Sigmoid,
    /// Hyperbolic tangent.
    Tanh,
    /// max(x, 0) (Nair & Hinton 2010); derivative 0 at exactly 0, as in PyTorch.
    Relu,
    /// x for x > 0, alpha·x otherwise (Maas et al. 2013).
    LeakyRelu {
        /// Slope of the negative side.
        alpha: f32,
    },
    /// x for x > 0, alpha·(e^x − 1) otherwise (Clevert et al. 2015).
    Elu {
        /// Value the negative side saturates to, negated.
        alpha: f32,
    },
    /// Exact GELU x·Φ(x), Φ the standard normal CDF (Hendrycks & Gimpel 2016).
    Gelu,
    /// GELU's tanh approximation 0.5x(1 + tanh(√(2/π)(x + 0.044715x³))).
    GeluTanh,
    /// SiLU / Swish x·σ(x) (Elfwing et al. 2017; Ramachandran et al. 2017).
    Silu,
    /// ln(1 + e^x) (Dugas et al. 2001).
    Softplus,
}

#[inline(always)]
fn gelu(v: f32) -> f32 {
    v * math::normal_cdf(v)
}

#[inline(always)]
fn gelu_grad(z: f32, _y: f32) -> f32 {
    math::normal_cdf(z) + z * INV_SQRT_2PI * math::exp(-0.5 * z * z)
}

#[inline(always)]
fn gelu_tanh(v: f32) -> f32 {
    // 1 + tanh(u) = 2σ(2u): the same function, without cancellation for v ≪ 0.
    v * math::sigmoid(2.0 * SQRT_2_OVER_PI * (v + GELU_CUBIC * v * v * v))
}

#[inline(always)]
fn gelu_tanh_grad(z: f32, _y: f32) -> f32 {
    // Beyond ±20 the derivative is exactly 1 or 0 in f32; clamping keeps z³ and
    // z² from overflowing into inf·0 = NaN for absurd inputs.
    let z = z.clamp(-20.0, 20.0);
    let z2 = z * z;
    let s = math::sigmoid(2.0 * SQRT_2_OVER_PI * (z + GELU_CUBIC * z2 * z));
    s + z * (s * (1.0 - s)) * (2.0 * SQRT_2_OVER_PI) * (1.0 + 3.0 * GELU_CUBIC * z2)
}

#[inline(always)]
fn silu(v: f32) -> f32 {
    v * math::sigmoid(v)
}

#[inline(always)]
fn silu_grad(z: f32, _y: f32) -> f32 {
    let s = math::sigmoid(z);
    s * (1.0 + z * (1.0 - s))
}

/// Calls `$kernel(args.., f)` with `f` the activation's scalar function, one
/// `match` arm per activation, so that each arm's loop is monomorphised (and
/// vectorised) on its own rather than branching per element.
macro_rules! dispatch_forward {
    ($act:expr, $kernel:ident($($arg:expr),*)) => {
        match $act {
            Activation::Identity => $kernel($($arg,)* |v: f32| v),
            Activation::Sigmoid => $kernel($($arg,)* math::sigmoid),
            Activation::Tanh => $kernel($($arg,)* math::tanh),
            // A select rather than `max`, so that NaN propagates.
            Activation::Relu => $kernel($($arg,)* |v: f32| if v < 0.0 { 0.0 } else { v }),
            Activation::LeakyRelu { alpha } => $kernel($($arg,)* move |v: f32| if v > 0.0 { v } else { alpha * v }),
            Activation::Elu { alpha } => $kernel($($arg,)* move |v: f32| if v > 0.0 { v } else { alpha * math::expm1(v) }),
            Activation::Gelu => $kernel($($arg,)* gelu),
            Activation::GeluTanh => $kernel($($arg,)* gelu_tanh),
            Activation::Silu => $kernel($($arg,)* silu),
            Activation::Softplus => $kernel($($arg,)* math::softplus),
        }
    };
}

/// Like `dispatch_forward!`, with f'(z) given z and y = f(z). Identity does
/// nothing: its derivative is 1.
macro_rules! dispatch_derivative {
    ($act:expr, $kernel:ident($($arg:expr),*)) => {
        match $act {
            Activation::Identity => {}
            Activation::Sigmoid => $kernel($($arg,)* |_z: f32, y: f32| y * (1.0 - y)),
            Activation::Tanh => $kernel($($arg,)* |_z: f32, y: f32| 1.0 - y * y),
            Activation::Relu => $kernel($($arg,)* |z: f32, _y: f32| if z > 0.0 { 1.0 } else { 0.0 }),
            Activation::LeakyRelu { alpha } => $kernel($($arg,)* move |z: f32, _y: f32| if z > 0.0 { 1.0 } else { alpha }),
            Activation::Elu { alpha } => $kernel($($arg,)* move |z: f32, y: f32| if z > 0.0 { 1.0 } else { y + alpha }),
            Activation::Gelu => $kernel($($arg,)* gelu_grad),
            Activation::GeluTanh => $kernel($($arg,)* gelu_tanh_grad),
            Activation::Silu => $kernel($($arg,)* silu_grad),
            Activation::Softplus => $kernel($($arg,)* |z: f32, _y: f32| math::sigmoid(z)),
        }
    };
}

#[inline(always)]
fn apply_one(x: f32, f: impl Fn(f32) -> f32) -> f32 {
    f(x)
}

#[inline(always)]
fn map_into(x: &[f32], out: &mut [f32], f: impl Fn(f32) -> f32) {
    for (o, &v) in out.iter_mut().zip(x) {
        *o = f(v);
    }
}

#[inline(always)]
fn bias_rows(z: &mut [f32], bias: &[f32], out: &mut [f32], f: impl Fn(f32) -> f32) {
    let cols = bias.len();
    for (zr, or) in z.chunks_exact_mut(cols).zip(out.chunks_exact_mut(cols)) {
        for ((zv, o), &b) in zr.iter_mut().zip(or.iter_mut()).zip(bias) {
            let v = *zv + b;
            *zv = v;
            *o = f(v);
        }
    }
}

#[inline(always)]
fn scale_by_derivative(z: &[f32], y: &[f32], grad: &mut [f32], d: impl Fn(f32, f32) -> f32) {
    for ((g, &zv), &yv) in grad.iter_mut().zip(z).zip(y) {
        *g *= d(zv, yv);
    }
}

#[multiversion(targets("x86_64+avx512f+avx512bw+avx512vl+avx512dq", "x86_64+avx2+fma"))]
fn forward_chunk(act: Activation, x: &[f32], out: &mut [f32]) {
    dispatch_forward!(act, map_into(x, out))
}

#[multiversion(targets("x86_64+avx512f+avx512bw+avx512vl+avx512dq", "x86_64+avx2+fma"))]
fn bias_activate_chunk(act: Activation, z: &mut [f32], bias: &[f32], out: &mut [f32]) {
    dispatch_forward!(act, bias_rows(z, bias, out))
}

#[multiversion(targets("x86_64+avx512f+avx512bw+avx512vl+avx512dq", "x86_64+avx2+fma"))]
fn backward_chunk(act: Activation, z: &[f32], y: &[f32], grad: &mut [f32]) {
    dispatch_derivative!(act, scale_by_derivative(z, y, grad))
}

#[multiversion(targets("x86_64+avx512f+avx512bw+avx512vl+avx512dq", "x86_64+avx2+fma"))]
fn add_bias_chunk(z: &mut [f32], bias: &[f32]) {
    for zr in z.chunks_exact_mut(bias.len()) {
        for (zv, &b) in zr.iter_mut().zip(bias) {
            *zv += b;
        }
    }
}

/// Chunk length for row-wise parallel loops: whole rows, about `PAR_CHUNK` values.
fn row_chunk(cols: usize) -> usize {
    cols * (PAR_CHUNK / cols).max(1)
}

/// Adds `bias` to every row of the row-major matrix `z` in place.
///
/// # Shapes
/// `z` is `rows × bias.len()`; with an empty `bias` nothing happens.
pub fn add_bias(z: &mut [f32], bias: &[f32]) {
    if bias.is_empty() {
        return;
    }
    debug_assert_eq!(z.len() % bias.len(), 0, "z is not a whole number of rows");
    if parallel_for(z.len()) {
        z.par_chunks_mut(row_chunk(bias.len()))
            .for_each(|zc| add_bias_chunk(zc, bias));
    } else {
        add_bias_chunk(z, bias);
    }
}

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

    /// f(x) for one value (the same arithmetic as the slice kernels).
    pub fn apply(&self, x: f32) -> f32 {
        dispatch_forward!(*self, apply_one(x))
    }

    /// `out[i] = f(x[i])`.
    ///
    /// # Shapes
    /// `x` and `out` have the same length.
    pub fn forward(&self, x: &[f32], out: &mut [f32]) {
        debug_assert_eq!(x.len(), out.len(), "forward: lengths differ");
        if parallel_for(x.len()) {
            x.par_chunks(PAR_CHUNK)
                .zip(out.par_chunks_mut(PAR_CHUNK))
                .for_each(|(xc, oc)| forward_chunk(*self, xc, oc));
        } else {
            forward_chunk(*self, x, out);
        }
    }

    /// Fused bias add and activation: `z[r, j] += bias[j]` in place (so `z`
    /// holds the pre-activation for [`Activation::backward`]) and
    /// `out[r, j] = f(z[r, j])`, in one pass over each row.
    ///
    /// # Shapes
    /// `z` and `out` are row-major `rows × bias.len()`; with an empty `bias`
    /// nothing happens.
    pub fn add_bias_activate(&self, z: &mut [f32], bias: &[f32], out: &mut [f32]) {
        if bias.is_empty() {
            return;
        }
        debug_assert_eq!(z.len(), out.len(), "z and out lengths differ");
        debug_assert_eq!(z.len() % bias.len(), 0, "z is not whole rows");
        if parallel_for(z.len()) {
            let chunk = row_chunk(bias.len());
            z.par_chunks_mut(chunk)
                .zip(out.par_chunks_mut(chunk))
                .for_each(|(zc, oc)| bias_activate_chunk(*self, zc, bias, oc));
        } else {
            bias_activate_chunk(*self, z, bias, out);
        }
    }

    /// Chain rule through f: `grad[i] *= f'(z[i])`, where `y = f(z)` is the
    /// forward output (cheaper than recomputing f for sigmoid, tanh and elu).
    ///
    /// # Shapes
    /// `z`, `y` and `grad` have the same length. `y` is only read by sigmoid,
    /// tanh and elu.
    pub fn backward(&self, z: &[f32], y: &[f32], grad: &mut [f32]) {
        if *self == Activation::Identity {
            return;
        }
        debug_assert_eq!(z.len(), grad.len(), "backward: z and grad lengths differ");
        debug_assert_eq!(y.len(), grad.len(), "backward: y and grad lengths differ");
        if parallel_for(grad.len()) {
            z.par_chunks(PAR_CHUNK)
                .zip(y.par_chunks(PAR_CHUNK))
                .zip(grad.par_chunks_mut(PAR_CHUNK))
                .for_each(|((zc, yc), gc)| backward_chunk(*self, zc, yc, gc));
        } else {
            backward_chunk(*self, z, y, grad);
        }
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

    #[test]
    fn relu_edges() {
        let x = [-1.0, 0.0, 2.0, f32::NAN];
        let mut y = [0.0; 4];
        Activation::Relu.forward(&x, &mut y);
        assert_eq!(&y[..3], &[0.0, 0.0, 2.0]);
        assert!(y[3].is_nan());
        let mut g = [1.0; 4];
        Activation::Relu.backward(&x, &y, &mut g);
        assert_eq!(&g[..3], &[0.0, 0.0, 1.0], "derivative at exactly 0 is 0");
    }

    #[test]
    fn empty_bias_and_tails_are_harmless() {
        let mut z: [f32; 0] = [];
        Activation::Gelu.add_bias_activate(&mut z, &[], &mut []);
        add_bias(&mut z, &[]);
        for act in ACTIVATION_NAMES.map(|n| Activation::from_name(n, None).unwrap()) {
            let x = [-1e30f32, -1e20, 1e20, 1e30];
            let mut y = [0.0; 4];
            act.forward(&x, &mut y);
            let mut g = [1.0; 4];
            act.backward(&x, &y, &mut g);
            assert!(g.iter().all(|v| v.is_finite()), "{act:?} derivative {g:?}");
            assert!(y.iter().all(|v| !v.is_nan()), "{act:?} forward {y:?}");
        }
    }
}
