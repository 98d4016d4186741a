//! Elementwise activation functions: forward, derivative, and the fused
//! bias-add + activation that follows every dense layer's GEMM.
//!
//! Each public method dispatches on the enum once, outside the loop, into a
//! multiversioned kernel whose loop body is a branchless closure over
//! `kernels::math`, so every arm vectorises for the CPU it runs on. Work above
//! `PAR_THRESHOLD` elements is split into fixed-size chunks; every element is
//! computed independently, so the result is bit-identical for any thread count.
//!
//! The names, aliases and properties of each function are the rows of
//! [`ACTIVATIONS`], in `table.rs`.

use multiversion::multiversion;
use rayon::prelude::*;

use crate::kernels::{math, parallel_for, PAR_CHUNK};

mod table;

pub use table::{ActivationInfo, ACTIVATIONS, ACTIVATION_NAMES};

/// √(2/π), the GELU tanh-approximation scale.
const SQRT_2_OVER_PI: f32 = std::f32::consts::FRAC_2_SQRT_PI * std::f32::consts::FRAC_1_SQRT_2;
/// 1/√(2π), the standard normal density at 0.
const INV_SQRT_2PI: f32 = 0.5 * std::f32::consts::FRAC_2_SQRT_PI * std::f32::consts::FRAC_1_SQRT_2;
/// The cubic coefficient of the GELU tanh approximation (Hendrycks & Gimpel 2016).
const GELU_CUBIC: f32 = 0.044_715;

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
fn bias_rows_in_place(z: &mut [f32], bias: &[f32], f: impl Fn(f32) -> f32) {
    for zr in z.chunks_exact_mut(bias.len()) {
        for (zv, &b) in zr.iter_mut().zip(bias) {
            *zv = f(*zv + b);
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
fn bias_activate_in_place_chunk(act: Activation, z: &mut [f32], bias: &[f32]) {
    dispatch_forward!(act, bias_rows_in_place(z, bias))
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

    /// Whether [`Activation::backward`] gives the same bits when handed the
    /// output `f(z)` in place of `z`, so a layer may keep the output alone:
    /// ReLU (`f(z) > 0` exactly when `z > 0`, NaN and -0 included) and the
    /// identity.
    pub fn output_gives_derivative(&self) -> bool {
        matches!(self, Activation::Relu | Activation::Identity)
    }

    /// `z[r, j] = f(z[r, j] + bias[j])` in place, on the calling thread (for
    /// callers that split their work themselves): the values of
    /// [`Activation::add_bias_activate`]'s `out`, when the pre-activation
    /// need not be kept (see [`Activation::output_gives_derivative`]).
    ///
    /// # Shapes
    /// `z` is row-major `rows × bias.len()`; with an empty `bias` nothing happens.
    pub fn add_bias_activate_in_place(&self, z: &mut [f32], bias: &[f32]) {
        if bias.is_empty() {
            return;
        }
        debug_assert_eq!(z.len() % bias.len(), 0, "z is not whole rows");
        bias_activate_in_place_chunk(*self, z, bias);
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
    fn in_place_relu_and_its_derivative_from_the_output_match() {
        let z0: Vec<f32> = vec![-1.5, -0.0, 0.0, 0.25, 3.0, f32::NAN, -2.0, 1e-30];
        let bias = [0.5, -0.25];
        let (mut z, mut out) = (z0.clone(), vec![0.0; 8]);
        Activation::Relu.add_bias_activate(&mut z, &bias, &mut out);
        let mut inplace = z0.clone();
        Activation::Relu.add_bias_activate_in_place(&mut inplace, &bias);
        assert_eq!(inplace.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), out.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
        assert!(Activation::Relu.output_gives_derivative() && !Activation::Tanh.output_gives_derivative());
        let (mut from_z, mut from_y) = (vec![1.0; 8], vec![1.0; 8]);
        Activation::Relu.backward(&z, &out, &mut from_z);
        Activation::Relu.backward(&out, &out, &mut from_y);
        assert_eq!(from_z, from_y);
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
