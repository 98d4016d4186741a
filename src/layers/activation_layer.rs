//! Parameter-free layers that apply a function to their input: an elementwise
//! activation, and (log-)softmax over each row.
//!
//! Both keep only their output: the activation derivatives take `z` from the
//! input handed back to `backward` (the network keeps it anyway), and the
//! softmax gradients need only the output.

use serde::{Deserialize, Serialize};

use super::kind::{check_backward, Alloc, BuildLayer, Ctx, LayerKind, ParamInfo};
use super::mask::MaskFlow;
use super::spec::ActivationSpec;
use crate::activation::Activation;
use crate::error::{ensure_config, ensure_shape, Result};
use crate::kernels::softmax::{check_temperature, log_softmax_backward, log_softmax_rows, softmax_backward, softmax_rows};
use crate::tensor::{MatRef, Matrix};

/// `{"type": "activation", "activation": ..}`: an elementwise activation on its
/// own (a chain fuses it into a preceding linear Dense).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ActivationLayerSpec {
    pub activation: ActivationSpec,
}

impl BuildLayer for ActivationLayerSpec {
    type Layer = ActivationLayer;

    fn build(&self, in_dim: usize, _alloc: &mut Alloc) -> Result<ActivationLayer> {
        ActivationLayer::new(in_dim, self.activation.resolve()?)
    }
}

fn one() -> f32 {
    1.0
}

/// `{"type": "softmax", "temperature": ..}`: softmax over the features of `x / temperature`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SoftmaxSpec {
    #[serde(default = "one")]
    pub temperature: f32,
}

impl BuildLayer for SoftmaxSpec {
    type Layer = Softmax;

    fn build(&self, in_dim: usize, _alloc: &mut Alloc) -> Result<Softmax> {
        Softmax::new(in_dim, self.temperature, false)
    }
}

/// `{"type": "log_softmax", "temperature": ..}`: log-softmax over the features
/// of `x / temperature` (the same layer kind as softmax, in its log form).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LogSoftmaxSpec {
    #[serde(default = "one")]
    pub temperature: f32,
}

impl BuildLayer for LogSoftmaxSpec {
    type Layer = Softmax;

    fn build(&self, in_dim: usize, _alloc: &mut Alloc) -> Result<Softmax> {
        Softmax::new(in_dim, self.temperature, true)
    }
}

/// `y = f(x)` elementwise, as a layer of its own (for instance after a
/// normalisation layer, where the activation cannot fuse into a dense GEMM).
#[derive(Clone, Debug)]
pub struct ActivationLayer {
    dim: usize,
    act: Activation,
    y: Matrix,
}

impl ActivationLayer {
    /// # Errors
    /// `Error::Config` when `dim` is zero.
    pub fn new(dim: usize, act: Activation) -> Result<Self> {
        ensure_config(dim > 0, || "Activation layer input width must be at least 1, got 0".into())?;
        Ok(Self { dim, act, y: Matrix::zeros(0, dim) })
    }
}

impl LayerKind for ActivationLayer {
    fn out_dim(&self) -> usize {
        self.dim
    }

    fn row_products_only(&self) -> bool {
        true
    }

    fn params(&self) -> Vec<ParamInfo> {
        Vec::new()
    }

    fn forward(&mut self, x: MatRef<'_>, _params: &[f32], _buffers: &[f32], _ctx: &Ctx) -> Result<()> {
        ensure_shape(x.cols == self.dim, || {
            format!("{} activation layer expects inputs with {} features, got {}", self.act.name(), self.dim, x.cols)
        })?;
        self.y.resize_rows(x.rows)?;
        self.act.forward(x.data, self.y.as_mut_slice());
        Ok(())
    }

    fn output(&self) -> MatRef<'_> {
        self.y.view()
    }

    /// Elementwise: any width.
    fn step_width(&self) -> Option<usize> {
        Some(1)
    }

    /// Elementwise: the time axis, and its mask, stay.
    fn mask_flow(&self) -> MaskFlow {
        MaskFlow::Keeps
    }

    fn set_steps(&mut self, steps: usize) -> Result<()> {
        ensure_config(steps > 0, || "Activation layer input width must be at least 1, got 0".into())?;
        self.dim = steps;
        self.y.reshape_for(0, steps)
    }

    /// `dx = f'(x) ⊙ dy`.
    fn backward(&mut self, x: MatRef<'_>, _params: &[f32], _grads: &mut [f32], dy: &mut Matrix, dx: Option<&mut Matrix>) -> Result<()> {
        check_backward("Activation layer", x, dy, self.y.rows(), self.dim, self.dim)?;
        // No parameters: without a `dx` to fill there is nothing to compute.
        let Some(dx) = dx else { return Ok(()) };
        dx.reshape_for(x.rows, self.dim)?;
        dx.as_mut_slice().copy_from_slice(dy.as_slice());
        self.act.backward(x.data, self.y.as_slice(), dx.as_mut_slice());
        Ok(())
    }
}

/// Softmax (or log-softmax) over each row of `x / T`. The log form pairs with
/// a negative log-likelihood loss and keeps full precision for tiny
/// probabilities; a temperature other than 1 flattens (T > 1) or sharpens
/// (T < 1) the distribution (Hinton et al. 2015, distillation).
#[derive(Clone, Debug)]
pub struct Softmax {
    dim: usize,
    temperature: f32,
    log: bool,
    y: Matrix,
}

impl Softmax {
    /// # Errors
    /// `Error::Config` when `dim` is zero or `temperature` is not finite and > 0.
    pub fn new(dim: usize, temperature: f32, log: bool) -> Result<Self> {
        ensure_config(dim > 0, || "Softmax input width must be at least 1, got 0".into())?;
        check_temperature(temperature)?;
        Ok(Self { dim, temperature, log, y: Matrix::zeros(0, dim) })
    }
}

impl LayerKind for Softmax {
    fn out_dim(&self) -> usize {
        self.dim
    }

    fn params(&self) -> Vec<ParamInfo> {
        Vec::new()
    }

    fn forward(&mut self, x: MatRef<'_>, _params: &[f32], _buffers: &[f32], _ctx: &Ctx) -> Result<()> {
        ensure_shape(x.cols == self.dim, || format!("Softmax layer expects inputs with {} features, got {}", self.dim, x.cols))?;
        self.y.resize_rows(x.rows)?;
        if self.log {
            log_softmax_rows(x.data, self.dim, self.temperature, self.y.as_mut_slice());
        } else {
            softmax_rows(x.data, self.dim, self.temperature, self.y.as_mut_slice());
        }
        Ok(())
    }

    fn output(&self) -> MatRef<'_> {
        self.y.view()
    }

    fn backward(&mut self, x: MatRef<'_>, _params: &[f32], _grads: &mut [f32], dy: &mut Matrix, dx: Option<&mut Matrix>) -> Result<()> {
        check_backward("Softmax", x, dy, self.y.rows(), self.dim, self.dim)?;
        let Some(dx) = dx else { return Ok(()) };
        dx.reshape_for(x.rows, self.dim)?;
        let (y, t) = (self.y.as_slice(), self.temperature);
        if self.log {
            log_softmax_backward(y, dy.as_slice(), self.dim, t, dx.as_mut_slice());
        } else {
            softmax_backward(y, dy.as_slice(), self.dim, t, dx.as_mut_slice());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::init::rng_for;
    use rand::Rng;

    /// erf by its Taylor series: converges to f64 precision for the |v| <= 3 used here.
    fn erf(v: f64) -> f64 {
        let (mut term, mut sum) = (v, v);
        for n in 1..80 {
            term *= -v * v / n as f64;
            sum += term / (2 * n + 1) as f64;
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    }

    /// Independent f64 definitions of each activation.
    fn reference(act: Activation, v: f64) -> f64 {
        let sig = |t: f64| 1.0 / (1.0 + (-t).exp());
        match act {
            Activation::Identity => v,
            Activation::Sigmoid => sig(v),
            Activation::Tanh => v.tanh(),
            Activation::Relu => v.max(0.0),
            Activation::LeakyRelu { alpha } => if v > 0.0 { v } else { alpha as f64 * v },
            Activation::Elu { alpha } => if v > 0.0 { v } else { alpha as f64 * v.exp_m1() },
            Activation::Gelu => 0.5 * v * (1.0 + erf(v / 2f64.sqrt())),
            Activation::GeluTanh => 0.5 * v * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (v + 0.044715 * v.powi(3))).tanh()),
            Activation::Silu => v * sig(v),
            Activation::Softplus => v.exp().ln_1p(),
        }
    }

    fn softmax_ref(x: &[f64], c: &[f64], dim: usize, t: f64, log: bool) -> f64 {
        let mut total = 0.0;
        for (xr, cr) in x.chunks(dim).zip(c.chunks(dim)) {
            let m = xr.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let lse = xr.iter().map(|v| ((v - m) / t).exp()).sum::<f64>().ln();
            for (v, cv) in xr.iter().zip(cr) {
                let l = (v - m) / t - lse;
                total += cv * if log { l } else { l.exp() };
            }
        }
        total
    }

    /// Checks `backward` against central differences of `f`, an f64 version of
    /// `Σ c ⊙ layer(x)`.
    fn check(layer: &mut impl LayerKind, xv: &[f32], c: &[f64], dim: usize, f: impl Fn(&[f64]) -> f64, what: &str) {
        let x = MatRef::new(xv.len() / dim, dim, xv).unwrap();
        layer.forward(x, &[], &[], &Ctx::inference()).unwrap();
        let x64: Vec<f64> = xv.iter().map(|&v| v as f64).collect();
        let got: f64 = layer.output().data.iter().zip(c).map(|(&y, &cv)| y as f64 * cv).sum();
        assert!((got - f(&x64)).abs() < 1e-4, "{what}: forward {got} vs {}", f(&x64));
        let mut dy = Matrix::from_vec(x.rows, dim, c.iter().map(|&v| v as f32).collect()).unwrap();
        let mut dx = Matrix::default();
        layer.backward(x, &[], &mut [], &mut dy, Some(&mut dx)).unwrap();
        let (eps, mut p) = (1e-6, x64.clone());
        let (mut diff, mut norm) = (0.0f64, 0.0f64);
        for i in 0..p.len() {
            p[i] = x64[i] + eps;
            let up = f(&p);
            p[i] = x64[i] - eps;
            let num = (up - f(&p)) / (2.0 * eps);
            p[i] = x64[i];
            diff += (dx.as_slice()[i] as f64 - num).powi(2);
            norm += num * num;
        }
        let e = diff.sqrt() / norm.sqrt().max(1e-6);
        assert!(e <= 1e-3, "{what}: relative error {e}");
    }

    #[test]
    fn activation_gradients_match_finite_differences() {
        let (dim, batch) = (7, 4);
        let mut rng = rng_for(2, 0);
        // Inputs at least 0.05 from 0, where relu-like functions have a kink.
        let xv: Vec<f32> = (0..dim * batch).map(|_| rng.random_range(0.05..2.5f32) * if rng.random::<bool>() { 1.0 } else { -1.0 }).collect();
        let c: Vec<f64> = (0..dim * batch).map(|_| rng.random_range(-1.0..1.0)).collect();
        for name in crate::activation::ACTIVATION_NAMES {
            let act = Activation::from_name(name, None).unwrap();
            let mut layer = ActivationLayer::new(dim, act).unwrap();
            let f = |x: &[f64]| x.iter().zip(&c).map(|(&v, &cv)| cv * reference(act, v)).sum();
            check(&mut layer, &xv, &c, dim, f, name);
        }
    }

    #[test]
    fn softmax_gradients_match_finite_differences() {
        let (dim, batch) = (6, 3);
        let mut rng = rng_for(4, 0);
        let xv: Vec<f32> = (0..dim * batch).map(|_| rng.random_range(-3.0..3.0)).collect();
        let c: Vec<f64> = (0..dim * batch).map(|_| rng.random_range(-1.0..1.0)).collect();
        for log in [false, true] {
            for t in [1.0f32, 0.7, 2.5] {
                let mut layer = Softmax::new(dim, t, log).unwrap();
                let f = |x: &[f64]| softmax_ref(x, &c, dim, t as f64, log);
                check(&mut layer, &xv, &c, dim, f, &format!("softmax log={log} T={t}"));
            }
        }
    }

    #[test]
    fn config_and_shapes_are_checked() {
        assert!(ActivationLayer::new(0, Activation::Relu).is_err());
        for t in [0.0, -1.0, f32::NAN, f32::INFINITY] {
            assert!(matches!(Softmax::new(3, t, false), Err(crate::Error::Config(_))));
        }
        let mut layer = Softmax::new(3, 1.0, false).unwrap();
        let x = [0.0f32; 4];
        let err = layer.forward(MatRef::new(2, 2, &x).unwrap(), &[], &[], &Ctx::inference());
        assert!(matches!(err, Err(crate::Error::Shape(_))));
    }
}
