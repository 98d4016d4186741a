//! Gated linear units `y = gate(x·W_g + b_g) ⊙ (x·W_v + b_v)`.
//!
//! The gate and value projections share one weight matrix `[in_dim, 2·units]`
//! (gate columns first), so the forward pass is a single GEMM into
//! `h = [h_g | h_v]` and the backward pass two GEMMs on `dh = [dh_g | dh_v]`:
//! one wide product keeps the GEMM kernels busier than two narrow ones, and the
//! weight and its gradient stay one contiguous tensor.

use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::kind::{check_backward, Alloc, BuildLayer, Ctx, LayerKind, ParamInfo};
use super::spec::{ActivationSpec, WeightSpec};
use crate::activation::{add_bias, Activation};
use crate::error::{checked_size, ensure_config, ensure_shape, Result};
use crate::init::Init;
use crate::kernels::gemm::{matmul, Op};
use crate::kernels::reduce::col_sums;
use crate::kernels::{parallel_for, PAR_CHUNK};
use crate::regularizer::Regularizer;
use crate::tensor::{MatMut, MatRef, Matrix};

/// `{"type": "gated", "units": .., "gate": ..}`: `gate(x·Wg + bg) ⊙ (x·Wv + bv)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GatedSpec {
    pub units: usize,
    pub gate: ActivationSpec,
    #[serde(flatten)]
    pub weights: WeightSpec,
}

impl BuildLayer for GatedSpec {
    type Layer = Gated;

    fn build(&self, in_dim: usize, alloc: &mut Alloc) -> Result<Gated> {
        let gate = self.gate.resolve()?;
        let (kernel, bias) = self.weights.inits(&gate)?;
        Gated::new(in_dim, self.units, gate, kernel, bias, alloc)
    }

    fn regularizers(&self) -> (Option<Regularizer>, Option<Regularizer>) {
        self.weights.regularizers()
    }
}

/// A gated linear unit layer.
///
/// With a sigmoid gate this is the GLU of Dauphin et al. 2017 ("Language
/// Modeling with Gated Convolutional Networks"); silu, gelu and relu gates give
/// SwiGLU, GeGLU and ReGLU (Shazeer 2020, "GLU Variants Improve Transformer").
#[derive(Clone, Debug)]
pub struct Gated {
    in_dim: usize,
    units: usize,
    gate: Activation,
    kernel_init: Init,
    bias_init: Init,
    w_off: usize,
    b_off: usize,
    /// `x·W + b`, `[batch, 2·units]`: gate pre-activations, then values.
    h: Matrix,
    /// `gate(h_g)`, `[batch, units]` (kept for the gate's derivative and `dh_v`).
    g: Matrix,
    /// The output `g ⊙ h_v`, `[batch, units]`.
    y: Matrix,
    /// Gradient w.r.t. `h`, `[batch, 2·units]`.
    dh: Matrix,
}

impl Gated {
    /// # Errors
    /// `Error::Config` when `in_dim` or `units` is zero.
    pub fn new(in_dim: usize, units: usize, gate: Activation, kernel_init: Init, bias_init: Init, alloc: &mut Alloc) -> Result<Self> {
        ensure_config(units > 0, || "Gated units must be at least 1, got 0".into())?;
        ensure_config(in_dim > 0, || "Gated input width must be at least 1, got 0".into())?;
        let width = checked_size(units, 2, "Gated units (gate and value columns)")?;
        let w_off = alloc.params(checked_size(in_dim, width, "Gated weight (inputs x 2·units)")?, "Gated weight")?;
        let b_off = alloc.params(width, "Gated bias")?;
        Ok(Self {
            in_dim,
            units,
            gate,
            kernel_init,
            bias_init,
            w_off,
            b_off,
            h: Matrix::zeros(0, 2 * units),
            g: Matrix::zeros(0, units),
            y: Matrix::zeros(0, units),
            dh: Matrix::zeros(0, 2 * units),
        })
    }

    fn w<'p>(&self, params: &'p [f32]) -> MatRef<'p> {
        MatRef { rows: self.in_dim, cols: 2 * self.units, data: &params[self.w_off..self.b_off] }
    }

    /// Whole rows per parallel chunk, about `PAR_CHUNK` outputs: a fixed split,
    /// so results never depend on the thread count.
    fn chunk_rows(&self) -> usize {
        (PAR_CHUNK / self.units).max(1)
    }
}

/// `g = gate(h_g)`, `y = g ⊙ h_v` for a block of whole rows.
fn forward_rows(gate: Activation, units: usize, h: &[f32], g: &mut [f32], y: &mut [f32]) {
    let rows = h.chunks_exact(2 * units).zip(g.chunks_exact_mut(units));
    for ((hr, gr), yr) in rows.zip(y.chunks_exact_mut(units)) {
        let (hg, hv) = hr.split_at(units);
        gate.forward(hg, gr);
        for ((o, &gv), &v) in yr.iter_mut().zip(gr.iter()).zip(hv) {
            *o = gv * v;
        }
    }
}

/// `dh_g = gate'(h_g) ⊙ dy ⊙ h_v`, `dh_v = dy ⊙ g` for a block of whole rows.
fn backward_rows(gate: Activation, units: usize, h: &[f32], g: &[f32], dy: &[f32], dh: &mut [f32]) {
    let rows = h.chunks_exact(2 * units).zip(g.chunks_exact(units)).zip(dy.chunks_exact(units));
    for (((hr, gr), dyr), dhr) in rows.zip(dh.chunks_exact_mut(2 * units)) {
        let (hg, hv) = hr.split_at(units);
        let (dg, dv) = dhr.split_at_mut(units);
        for ((((a, b), &d), &v), &gv) in dg.iter_mut().zip(dv.iter_mut()).zip(dyr).zip(hv).zip(gr) {
            *a = d * v;
            *b = d * gv;
        }
        gate.backward(hg, gr, dg);
    }
}

impl LayerKind for Gated {
    fn out_dim(&self) -> usize {
        self.units
    }

    fn params(&self) -> Vec<ParamInfo> {
        vec![
            ParamInfo::new("weight", self.w_off, vec![self.in_dim, 2 * self.units]),
            ParamInfo::new("bias", self.b_off, vec![2 * self.units]),
        ]
    }

    fn init(&self, params: &mut [f32], _buffers: &mut [f32], rng: &mut ChaCha8Rng) {
        // Fans of one projection (in_dim → units): each half is a layer of its own.
        let (w, b) = params[self.w_off..self.b_off + 2 * self.units].split_at_mut(self.b_off - self.w_off);
        self.kernel_init.fill(w, self.in_dim, self.units, rng);
        self.bias_init.fill(b, self.in_dim, self.units, rng);
    }

    fn forward(&mut self, x: MatRef<'_>, params: &[f32], _buffers: &[f32], _ctx: &Ctx) -> Result<()> {
        ensure_shape(x.cols == self.in_dim, || {
            format!("Gated layer expects inputs with {} features, got {}", self.in_dim, x.cols)
        })?;
        let batch = x.rows;
        self.h.resize_rows(batch)?;
        self.g.resize_rows(batch)?;
        self.y.resize_rows(batch)?;
        matmul(x, Op::N, self.w(params), Op::N, self.h.view_mut(), false)?;
        add_bias(self.h.as_mut_slice(), &params[self.b_off..self.b_off + 2 * self.units]);
        let (gate, u, rows) = (self.gate, self.units, self.chunk_rows());
        if parallel_for(batch * u) {
            self.h
                .as_slice()
                .par_chunks(rows * 2 * u)
                .zip(self.g.as_mut_slice().par_chunks_mut(rows * u))
                .zip(self.y.as_mut_slice().par_chunks_mut(rows * u))
                .for_each(|((h, g), y)| forward_rows(gate, u, h, g, y));
        } else {
            forward_rows(gate, u, self.h.as_slice(), self.g.as_mut_slice(), self.y.as_mut_slice());
        }
        Ok(())
    }

    fn output(&self) -> MatRef<'_> {
        self.y.view()
    }

    fn backward(&mut self, x: MatRef<'_>, params: &[f32], grads: &mut [f32], dy: &mut Matrix, dx: Option<&mut Matrix>) -> Result<()> {
        let batch = self.h.rows();
        check_backward("Gated", x, dy, batch, self.in_dim, self.units)?;
        self.dh.resize_rows(batch)?;
        let (gate, u, rows) = (self.gate, self.units, self.chunk_rows());
        if parallel_for(batch * u) {
            self.h
                .as_slice()
                .par_chunks(rows * 2 * u)
                .zip(self.g.as_slice().par_chunks(rows * u))
                .zip(dy.as_slice().par_chunks(rows * u))
                .zip(self.dh.as_mut_slice().par_chunks_mut(rows * 2 * u))
                .for_each(|(((h, g), d), dh)| backward_rows(gate, u, h, g, d, dh));
        } else {
            backward_rows(gate, u, self.h.as_slice(), self.g.as_slice(), dy.as_slice(), self.dh.as_mut_slice());
        }
        let (gw, gb) = grads[self.w_off..self.b_off + 2 * u].split_at_mut(self.b_off - self.w_off);
        col_sums(self.dh.as_slice(), gb);
        matmul(x, Op::T, self.dh.view(), Op::N, MatMut::new(self.in_dim, 2 * u, gw)?, false)?;
        if let Some(dx) = dx {
            dx.reshape_for(batch, self.in_dim)?;
            matmul(self.dh.view(), Op::N, self.w(params), Op::T, dx.view_mut(), false)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::testkit::{numeric_grad, rel_err};
    use crate::init::rng_for;
    use rand::Rng;

    /// Independent f64 forward: `Σ_{r,j} c[r,j]·gate(h_g)·h_v`, with `gate`
    /// written out from its textbook definition.
    fn loss(gate: &str, x: &[f64], w: &[f64], b: &[f64], c: &[f64], n: usize, u: usize) -> f64 {
        let act = |v: f64| match gate {
            "sigmoid" => 1.0 / (1.0 + (-v).exp()),
            "silu" => v / (1.0 + (-v).exp()),
            "gelu_tanh" => 0.5 * v * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (v + 0.044715 * v.powi(3))).tanh()),
            "relu" => v.max(0.0),
            _ => unreachable!(),
        };
        let batch = x.len() / n;
        let mut total = 0.0;
        for r in 0..batch {
            for j in 0..u {
                let proj = |col: usize| b[col] + (0..n).map(|k| x[r * n + k] * w[k * 2 * u + col]).sum::<f64>();
                let (hg, hv) = (proj(j), proj(u + j));
                assert!(gate != "relu" || hg.abs() > 1e-3, "input too close to the relu kink");
                total += c[r * u + j] * act(hg) * hv;
            }
        }
        total
    }



    #[test]
    fn gradients_match_finite_differences() {
        let (n, u, batch) = (5, 4, 3);
        for (name, act) in [("sigmoid", Activation::Sigmoid), ("silu", Activation::Silu), ("gelu_tanh", Activation::GeluTanh), ("relu", Activation::Relu)] {
            let mut alloc = Alloc::default();
            let bias_init = Init::Uniform { low: -0.5, high: 0.5 };
            let mut layer = Gated::new(n, u, act, Init::XavierUniform, bias_init, &mut alloc).unwrap();
            let mut rng = rng_for(3, 0);
            let mut params = vec![0.0f32; alloc.params];
            layer.init(&mut params, &mut [], &mut rng);
            let xv: Vec<f32> = (0..batch * n).map(|_| rng.random_range(-1.5..1.5)).collect();
            let c: Vec<f64> = (0..batch * u).map(|_| rng.random_range(-1.0..1.0)).collect();
            let x = MatRef::new(batch, n, &xv).unwrap();
            layer.forward(x, &params, &[], &Ctx::inference()).unwrap();
            let mut dy = Matrix::from_vec(batch, u, c.iter().map(|&v| v as f32).collect()).unwrap();
            let mut grads = vec![f32::NAN; alloc.params];
            let mut dx = Matrix::default();
            layer.backward(x, &params, &mut grads, &mut dy, Some(&mut dx)).unwrap();

            let f64s = |s: &[f32]| s.iter().map(|&v| v as f64).collect::<Vec<f64>>();
            let (x64, p64) = (f64s(&xv), f64s(&params));
            let (w64, b64) = p64.split_at(n * 2 * u);
            // The f32 layer output agrees with the f64 reference.
            let want: f64 = loss(name, &x64, w64, b64, &c, n, u);
            let got: f64 = layer.output().data.iter().zip(&c).map(|(&y, &cv)| y as f64 * cv).sum();
            assert!((want - got).abs() < 1e-4, "{name}: forward {got} vs {want}");

            let ndx = numeric_grad(&x64, |xp| loss(name, xp, w64, b64, &c, n, u));
            let ndw = numeric_grad(w64, |wp| loss(name, &x64, wp, b64, &c, n, u));
            let ndb = numeric_grad(b64, |bp| loss(name, &x64, w64, bp, &c, n, u));
            let (gw, gb) = grads.split_at(n * 2 * u);
            for (what, a, num) in [("x", dx.as_slice(), &ndx), ("weight", gw, &ndw), ("bias", gb, &ndb)] {
                let e = rel_err(a, num);
                assert!(e <= 1e-3, "{name}: d{what} relative error {e}");
            }
        }
    }

    #[test]
    fn shapes_and_config_are_checked() {
        let mut alloc = Alloc::default();
        assert!(Gated::new(0, 3, Activation::Silu, Init::XavierUniform, Init::Zeros, &mut alloc).is_err());
        assert!(Gated::new(3, 0, Activation::Silu, Init::XavierUniform, Init::Zeros, &mut alloc).is_err());
        let mut layer = Gated::new(3, 2, Activation::Silu, Init::XavierUniform, Init::Zeros, &mut alloc).unwrap();
        assert_eq!(alloc.params, 3 * 4 + 4);
        let names: Vec<_> = layer.params().into_iter().map(|p| (p.name, p.shape)).collect();
        assert_eq!(names, [("weight".to_string(), vec![3, 4]), ("bias".to_string(), vec![4])]);
        let params = vec![0.1f32; alloc.params];
        let bad = [0.0f32; 4];
        let err = layer.forward(MatRef::new(2, 2, &bad).unwrap(), &params, &[], &Ctx::inference());
        assert!(matches!(err, Err(crate::Error::Shape(_))));
    }

    #[test]
    fn thread_count_does_not_change_results() {
        let (n, u, batch) = (8, 64, 700);
        let mut alloc = Alloc::default();
        let mut layer = Gated::new(n, u, Activation::Gelu, Init::HeUniform, Init::Zeros, &mut alloc).unwrap();
        let mut params = vec![0.0f32; alloc.params];
        layer.init(&mut params, &mut [], &mut rng_for(1, 0));
        let xv: Vec<f32> = (0..batch * n).map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0).collect();
        let x = MatRef::new(batch, n, &xv).unwrap();
        let run = |threads: usize, layer: &mut Gated| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| {
                layer.forward(x, &params, &[], &Ctx::inference()).unwrap();
                let mut dy = Matrix::from_vec(batch, u, layer.output().data.to_vec()).unwrap();
                let (mut grads, mut dx) = (vec![0.0f32; params.len()], Matrix::default());
                layer.backward(x, &params, &mut grads, &mut dy, Some(&mut dx)).unwrap();
                (layer.output().data.to_vec(), grads, dx)
            })
        };
        let one = run(1, &mut layer);
        assert_eq!(one, run(4, &mut layer));
    }
}
