//! Elementwise activation functions: forward, derivative, and the fused
//! bias-add + activation that follows every dense layer's GEMM.
//!
//! Each public method dispatches on the enum once, outside the loop, into a
//! multiversioned kernel whose loop body is a branchless closure over
//! `kernels::math`, so every arm vectorises for the CPU it runs on. Work above
//! `PAR_THRESHOLD` elements is split into fixed-size chunks; every element is
//! computed independently, so the result is bit-identical for any thread count.

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::kernels::{math, parallel_for, PAR_CHUNK};

/// √(2/π), the GELU tanh-approximation scale.
const SQRT_2_OVER_PI: f32 = std::f32::consts::FRAC_2_SQRT_PI * std::f32::consts::FRAC_1_SQRT_2;
/// 1/√(2π), the standard normal density at 0.
const INV_SQRT_2PI: f32 = 0.5 * std::f32::consts::FRAC_2_SQRT_PI * std::f32::consts::FRAC_1_SQRT_2;
/// The cubic coefficient of the GELU tanh approximation (Hendrycks & Gimpel 2016).
const GELU_CUBIC: f32 = 0.044_715;

/// Every name [`Activation::from_name`] accepts, aliases included.
pub const ACTIVATION_NAMES: [&str; 12] = [
    "identity", "linear", "sigmoid", "tanh", "relu", "leaky_relu", "elu", "gelu", "gelu_tanh", "silu", "swish",
    "softplus",
];

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

/// Expands `$body` once per activation with `$f` bound to its scalar function,
/// so that each arm's loop is monomorphised (and vectorised) on its own.
macro_rules! with_forward_fn {
    ($act:expr, |$f:ident| $body:expr) => {
        match $act {
            Activation::Identity => {
                let $f = |v: f32| v;
                $body
            }
            Activation::Sigmoid => {
                let $f = math::sigmoid;
                $body
            }
            Activation::Tanh => {
                let $f = math::tanh;
                $body
            }
            Activation::Relu => {
                // Written as a select rather than `max` so that NaN propagates.
                let $f = |v: f32| if v < 0.0 { 0.0 } else { v };
                $body
            }
            Activation::LeakyRelu { alpha } => {
                let $f = move |v: f32| if v > 0.0 { v } else { alpha * v };
                $body
            }
            Activation::Elu { alpha } => {
                let $f = move |v: f32| if v > 0.0 { v } else { alpha * math::expm1(v) };
                $body
            }
            Activation::Gelu => {
                let $f = |v: f32| v * math::normal_cdf(v);
                $body
            }
            Activation::GeluTanh => {
                // 1 + tanh(u) = 2σ(2u): same function, but no cancellation for v ≪ 0.
                let $f = |v: f32| v * math::sigmoid(2.0 * SQRT_2_OVER_PI * (v + GELU_CUBIC * v * v * v));
                $body
            }
            Activation::Silu => {
                let $f = |v: f32| v * math::sigmoid(v);
                $body
            }
            Activation::Softplus => {
                let $f = math::softplus;
                $body
            }
        }
    };
}

/// Like `with_forward_fn!`, for f'(z) given z and y = f(z). Identity has no
/// arm: its derivative is 1 and callers skip the loop.
macro_rules! with_derivative_fn {
    ($act:expr, |$d:ident| $body:expr) => {
        match $act {
            Activation::Identity => {}
            Activation::Sigmoid => {
                let $d = |_z: f32, y: f32| y * (1.0 - y);
                $body
            }
            Activation::Tanh => {
                let $d = |_z: f32, y: f32| 1.0 - y * y;
                $body
            }
            Activation::Relu => {
                let $d = |z: f32, _y: f32| if z > 0.0 { 1.0 } else { 0.0 };
                $body
            }
            Activation::LeakyRelu { alpha } => {
                let $d = move |z: f32, _y: f32| if z > 0.0 { 1.0 } else { alpha };
                $body
            }
            Activation::Elu { alpha } => {
                let $d = move |z: f32, y: f32| if z > 0.0 { 1.0 } else { y + alpha };
                $body
            }
            Activation::Gelu => {
                let $d = |z: f32, _y: f32| math::normal_cdf(z) + z * INV_SQRT_2PI * math::exp(-0.5 * z * z);
                $body
            }
            Activation::GeluTanh => {
                // Beyond ±20 the derivative is exactly 1 or 0 in f32; clamping keeps
                // z³ and z² from overflowing into inf·0 = NaN for absurd inputs.
                let $d = |z: f32, _y: f32| {
                    let z = z.clamp(-20.0, 20.0);
                    let z2 = z * z;
                    let s = math::sigmoid(2.0 * SQRT_2_OVER_PI * (z + GELU_CUBIC * z2 * z));
                    s + z * (s * (1.0 - s)) * (2.0 * SQRT_2_OVER_PI) * (1.0 + 3.0 * GELU_CUBIC * z2)
                };
                $body
            }
            Activation::Silu => {
                let $d = |z: f32, _y: f32| {
                    let s = math::sigmoid(z);
                    s * (1.0 + z * (1.0 - s))
                };
                $body
            }
            Activation::Softplus => {
                let $d = |z: f32, _y: f32| math::sigmoid(z);
                $body
            }
        }
    };
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

#[multiversion::multiversion(targets("x86_64+avx512f+avx512bw+avx512vl+avx512dq", "x86_64+avx2+fma"))]
fn forward_chunk(act: Activation, x: &[f32], out: &mut [f32]) {
    with_forward_fn!(act, |f| map_into(x, out, f))
}

#[multiversion::multiversion(targets("x86_64+avx512f+avx512bw+avx512vl+avx512dq", "x86_64+avx2+fma"))]
fn bias_activate_chunk(act: Activation, z: &mut [f32], bias: &[f32], out: &mut [f32]) {
    with_forward_fn!(act, |f| bias_rows(z, bias, out, f))
}

#[multiversion::multiversion(targets("x86_64+avx512f+avx512bw+avx512vl+avx512dq", "x86_64+avx2+fma"))]
fn backward_chunk(act: Activation, z: &[f32], y: &[f32], grad: &mut [f32]) {
    with_derivative_fn!(act, |d| scale_by_derivative(z, y, grad, d))
}

#[multiversion::multiversion(targets("x86_64+avx512f+avx512bw+avx512vl+avx512dq", "x86_64+avx2+fma"))]
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
        z.par_chunks_mut(row_chunk(bias.len())).for_each(|zc| add_bias_chunk(zc, bias));
    } else {
        add_bias_chunk(z, bias);
    }
}

impl Activation {
    /// Parses a name (case-insensitive) with an optional parameter.
    ///
    /// Names: `identity` (alias `linear`), `sigmoid`, `tanh`, `relu`,
    /// `leaky_relu` (alpha defaults to 0.01), `elu` (alpha defaults to 1.0),
    /// `gelu` (exact, erf form), `gelu_tanh`, `silu` (alias `swish`), `softplus`.
    ///
    /// # Errors
    /// `Error::UnknownName` for any other name (the message lists the known
    /// ones); `Error::Config` if `alpha` is given for a function without one, or
    /// is not finite.
    pub fn from_name(name: &str, alpha: Option<f32>) -> Result<Activation> {
        let lower = name.to_ascii_lowercase();
        let act = match lower.as_str() {
            "identity" | "linear" => Activation::Identity,
            "sigmoid" => Activation::Sigmoid,
            "tanh" => Activation::Tanh,
            "relu" => Activation::Relu,
            "leaky_relu" => Activation::LeakyRelu { alpha: alpha.unwrap_or(0.01) },
            "elu" => Activation::Elu { alpha: alpha.unwrap_or(1.0) },
            "gelu" => Activation::Gelu,
            "gelu_tanh" => Activation::GeluTanh,
            "silu" | "swish" => Activation::Silu,
            "softplus" => Activation::Softplus,
            _ => {
                return Err(Error::UnknownName(format!(
                    "unknown activation '{name}'; expected one of: {}",
                    ACTIVATION_NAMES.join(", ")
                )))
            }
        };
        match (act.alpha(), alpha) {
            (None, Some(a)) => Err(Error::Config(format!(
                "activation '{}' takes no alpha, but alpha={a} was given; only leaky_relu and elu have one",
                act.name()
            ))),
            (Some(a), _) if !a.is_finite() => Err(Error::Config(format!(
                "alpha for '{}' must be a finite number, got {a}",
                act.name()
            ))),
            _ => Ok(act),
        }
    }

    /// The canonical name, as accepted by [`Activation::from_name`] and used in
    /// serialised models.
    pub fn name(&self) -> &'static str {
        match self {
            Activation::Identity => "identity",
            Activation::Sigmoid => "sigmoid",
            Activation::Tanh => "tanh",
            Activation::Relu => "relu",
            Activation::LeakyRelu { .. } => "leaky_relu",
            Activation::Elu { .. } => "elu",
            Activation::Gelu => "gelu",
            Activation::GeluTanh => "gelu_tanh",
            Activation::Silu => "silu",
            Activation::Softplus => "softplus",
        }
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
        !matches!(self, Activation::Identity | Activation::Sigmoid | Activation::Tanh)
    }

    /// f(x) for one value (the same arithmetic as the slice kernels).
    pub fn apply(&self, x: f32) -> f32 {
        with_forward_fn!(*self, |f| f(x))
    }

    /// `out[i] = f(x[i])`.
    ///
    /// # Shapes
    /// `x` and `out` have the same length.
    pub fn forward(&self, x: &[f32], out: &mut [f32]) {
        debug_assert_eq!(x.len(), out.len(), "forward: input and output lengths differ");
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
        debug_assert_eq!(z.len(), out.len(), "add_bias_activate: z and out lengths differ");
        debug_assert_eq!(z.len() % bias.len(), 0, "add_bias_activate: z is not a whole number of rows");
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

    #[test]
    fn names_round_trip_and_aliases() {
        for name in ACTIVATION_NAMES {
            let act = Activation::from_name(name, None).unwrap();
            assert_eq!(Activation::from_name(act.name(), act.alpha()).unwrap(), act);
        }
        assert_eq!(Activation::from_name("SWISH", None).unwrap(), Activation::Silu);
        assert_eq!(Activation::from_name("Linear", None).unwrap(), Activation::Identity);
        assert_eq!(Activation::from_name("leaky_relu", None).unwrap(), Activation::LeakyRelu { alpha: 0.01 });
        assert_eq!(Activation::from_name("elu", Some(0.5)).unwrap(), Activation::Elu { alpha: 0.5 });
    }

    #[test]
    fn bad_names_and_alphas_are_rejected() {
        match Activation::from_name("relu6", None) {
            Err(Error::UnknownName(msg)) => assert!(msg.contains("relu6") && msg.contains("gelu_tanh")),
            other => panic!("expected UnknownName, got {other:?}"),
        }
        assert!(matches!(Activation::from_name("relu", Some(0.1)), Err(Error::Config(_))));
        assert!(matches!(Activation::from_name("elu", Some(f32::NAN)), Err(Error::Config(_))));
        assert!(matches!(Activation::from_name("leaky_relu", Some(f32::INFINITY)), Err(Error::Config(_))));
    }

    #[test]
    fn relu_family_split() {
        let family: Vec<&str> = ACTIVATION_NAMES
            .iter()
            .filter(|n| Activation::from_name(n, None).unwrap().is_relu_family())
            .copied()
            .collect();
        assert_eq!(family, ["relu", "leaky_relu", "elu", "gelu", "gelu_tanh", "silu", "swish", "softplus"]);
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
