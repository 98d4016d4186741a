//! Recurrent layers: SimpleRNN, LSTM and GRU over sequences `[batch, T, F]`,
//! trained by backpropagation through time inside the one-call step.
//!
//! Each sample's row holds its `T` steps one after the other (`[T, F]`), so
//! the whole batch is also the `[batch·T, F]` matrix of every step: the input
//! projection of all steps is one GEMM, and so are the input and `weight_ih`
//! gradients. Only the recurrent product `h_{t-1}·W_hhᵀ` runs per step; the
//! gate nonlinearities and the state update follow it in one fused pass
//! (recurrent_cells.rs). Hidden states and saved gates are kept time-major
//! (`[T, batch, ·]`) so each step's slice is contiguous, and the `weight_hh`
//! gradient is again one GEMM over all steps. The elementwise passes run on
//! the calling thread and the GEMMs split only their output, so results are
//! bit-identical whatever the thread count.
//!
//! SimpleRNN and LSTM ([`Cell::direct`]) add both biases in the projection
//! pass and let each step's product accumulate onto that step's (strided)
//! rows of the projection, so the pre-activation is `(x·W_ihᵀ + b_ih + b_hh)
//! + h·W_hhᵀ` summed in that order (the GRU keeps the product apart and adds
//! `proj + rec + b_hh`); backward their gate gradients are written once, in
//! place in the sample-major buffer the `weight_ih` and input gradients read,
//! and the per-step product reads them there.
//!
//! Parameters use PyTorch's layout and gate order, so its `state_dict` maps
//! one to one: `weight_ih` `[G·units, F]` (`weight_ih_l0`), `weight_hh`
//! `[G·units, units]` (`weight_hh_l0`), `bias_ih`, `bias_hh` `[G·units]`, with
//! `G` = 1 (SimpleRNN), 4 (LSTM: i, f, g, o) or 3 (GRU: r, z, n, the reset
//! gate applied to `W_hn·h + b_hn` as in PyTorch and Keras' `reset_after`).

use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::{checked_size, ensure_config, ensure_shape, try_grow, Result};
use crate::init::{orthogonal, Init};
use crate::kernels::gemm::{matmul, matmul_packed, matmul_packed_rows, Op, PackedRhs};
use crate::kernels::reduce::col_sums;
use crate::layers::kind::{check_backward, BuildLayer};
use crate::layers::recurrent_cells::{Cell, StepBack, StepFwd};
use crate::layers::{ActivationSpec, Alloc, Ctx, InitSpec, LayerKind, MaskFlow, ParamInfo, StepMask, WeightSpec};
use crate::regularizer::{Penalty, Regularizer};
use crate::tensor::{MatMut, MatRef, Matrix};

/// Which recurrence a [`RecurrentSpec`] builds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CellKind {
    SimpleRnn,
    Lstm,
    Gru,
}

/// `{"type": "recurrent", "cell": "lstm", "input": [T, F], "units": ..}`: a
/// recurrent layer built for sequences of `T` steps of `F` features.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecurrentSpec {
    pub cell: CellKind,
    pub input: Vec<usize>,
    pub units: usize,
    /// SimpleRNN's activation (the gated cells use sigmoid and tanh).
    #[serde(default = "tanh")]
    pub activation: ActivationSpec,
    #[serde(default)]
    pub return_sequences: bool,
    #[serde(default)]
    pub go_backwards: bool,
    /// LSTM: the forget gate's part of `bias_ih` starts at 1 (Keras' default).
    #[serde(default = "yes")]
    pub unit_forget_bias: bool,
    /// `None` or `"orthogonal"`: an orthogonal `weight_hh` (Keras' default).
    #[serde(default)]
    pub recurrent_initializer: Option<InitSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recurrent_regularizer: Option<Regularizer>,
    #[serde(flatten)]
    pub weights: WeightSpec,
}

fn tanh() -> ActivationSpec {
    ActivationSpec::Name("tanh".into())
}

fn yes() -> bool {
    true
}

/// How `weight_hh` starts: orthogonal (Keras) or any element-wise initializer.
#[derive(Clone, Copy, Debug, PartialEq)]
enum RecurrentInit {
    Orthogonal,
    Plain(Init),
}

impl RecurrentSpec {
    fn recurrent_init(&self) -> Result<RecurrentInit> {
        match &self.recurrent_initializer {
            None => Ok(RecurrentInit::Orthogonal),
            Some(InitSpec::Name(n)) if n.eq_ignore_ascii_case("orthogonal") => Ok(RecurrentInit::Orthogonal),
            Some(spec) => Ok(RecurrentInit::Plain(spec.resolve()?)),
        }
    }
}

impl BuildLayer for RecurrentSpec {
    type Layer = Recurrent;

    fn build(&self, in_dim: usize, alloc: &mut Alloc) -> Result<Recurrent> {
        let kind = self.cell.name();
        ensure_config(self.input.len() == 2, || format!("{kind} takes sequences [T, F]; it was given the per-sample shape {:?}", self.input))?;
        let (t, f, h) = (self.input[0], self.input[1], self.units);
        ensure_config(t > 0 && f > 0, || format!("{kind} needs at least one step of at least one feature, got the shape [{t}, {f}]"))?;
        ensure_config(h > 0, || format!("{kind} units must be at least 1, got 0"))?;
        let len = checked_size(t, f, &format!("{kind} input"))?;
        ensure_config(len == in_dim, || format!("{kind} was built for sequences of shape [{t}, {f}] ({len} values), but its input has {in_dim} values per sample"))?;
        let act = self.activation.resolve()?;
        let cell = match self.cell {
            CellKind::SimpleRnn => Cell::Simple(act),
            CellKind::Lstm => Cell::Lstm,
            CellKind::Gru => Cell::Gru,
        };
        let gh = checked_size(cell.gates(), h, &format!("{kind} gates"))?;
        let resolve = |s: &Option<InitSpec>, default: Init| s.as_ref().map(InitSpec::resolve).transpose().map(|i| i.unwrap_or(default));
        let kernel_init = resolve(&self.weights.kernel_initializer, Init::XavierUniform)?;
        let bias_init = resolve(&self.weights.bias_initializer, Init::Zeros)?;
        let recurrent_init = self.recurrent_init()?;
        for reg in [self.weights.kernel_regularizer, self.recurrent_regularizer, self.weights.bias_regularizer].into_iter().flatten() {
            reg.validate()?;
        }
        checked_size(t, h, &format!("{kind} output"))?;
        let w_ih = alloc.params(checked_size(gh, f, &format!("{kind} weight_ih"))?, &format!("{kind} weight_ih"))?;
        let w_hh = alloc.params(checked_size(gh, h, &format!("{kind} weight_hh"))?, &format!("{kind} weight_hh"))?;
        let b_ih = alloc.params(gh, &format!("{kind} bias_ih"))?;
        let b_hh = alloc.params(gh, &format!("{kind} bias_hh"))?;
        Ok(Recurrent {
            kind: self.cell,
            cell,
            steps: t,
            features: f,
            units: h,
            return_sequences: self.return_sequences,
            go_backwards: self.go_backwards,
            unit_forget_bias: self.unit_forget_bias,
            kernel_init,
            recurrent_init,
            bias_init,
            regs: [self.weights.kernel_regularizer, self.recurrent_regularizer, self.weights.bias_regularizer],
            offsets: [w_ih, w_hh, b_ih, b_hh],
            rows: 0,
            ws: Workspace::default(),
            step_norms: None,
        })
    }
}

impl CellKind {
    /// The Keras class name, for messages.
    pub fn name(self) -> &'static str {
        match self {
            CellKind::SimpleRnn => "SimpleRNN",
            CellKind::Lstm => "LSTM",
            CellKind::Gru => "GRU",
        }
    }
}

/// The buffers of one forward and backward pass, grown to the largest batch.
#[derive(Clone, Debug, Default)]
struct Workspace {
    /// `x·W_ihᵀ + b_ih` of every step, sample-major `[batch·T, G·units]`
    /// (SimpleRNN, LSTM: `+ b_hh`, and the forward pass adds `h·W_hhᵀ` onto it).
    proj: Vec<f32>,
    /// GRU: one step's `h_{t-1}·W_hhᵀ`, `[batch, G·units]`.
    rec: Vec<f32>,
    /// Per step (time-major `[T, batch, ·]`): what the cell keeps for its backward.
    saved: Vec<f32>,
    /// Hidden states `h_0 = 0, h_1, .., h_T`, `[T+1, batch, units]`.
    hs: Vec<f32>,
    /// LSTM: cell states `c_0 = 0, .., c_T`, as `hs`.
    cs: Vec<f32>,
    /// `return_sequences`: the output, sample-major `[batch, T·units]`.
    out: Matrix,
    /// Gradients w.r.t. the gate pre-activations: of the input projection
    /// (sample-major, as `proj`) and (GRU) of the recurrent product
    /// (time-major). SimpleRNN and LSTM have one set, in `d_in`, and use
    /// `d_rec` for the hidden states gathered into `d_in`'s row order.
    d_in: Vec<f32>,
    d_rec: Vec<f32>,
    /// The gradient flowing into `h_t` (and an LSTM's `c_t`), and its next value.
    dh: Vec<f32>,
    dc: Vec<f32>,
    carry: Vec<f32>,
    /// `W_hh` packed once per pass for the per-step products (as `W_hhᵀ` in
    /// the forward, as `W_hh` in the backward).
    w_hh_pack: PackedRhs,
    /// `dW_ihᵀ` `[F, G·units]` before it is transposed into the gradient (see
    /// [`weight_ih_grad`]).
    dw_t: Vec<f32>,
    /// The step mask of the last forward pass, sample-major `[batch, T]` (empty: none).
    keep: Vec<bool>,
}

fn grow(v: &mut Vec<f32>, len: usize, what: &str) -> Result<()> {
    try_grow(v, len, what)?;
    v.resize(len, 0.0);
    Ok(())
}

/// A built recurrent layer; see the module docs for its parameters.
#[derive(Clone, Debug)]
pub struct Recurrent {
    kind: CellKind,
    cell: Cell,
    steps: usize,
    features: usize,
    units: usize,
    return_sequences: bool,
    go_backwards: bool,
    unit_forget_bias: bool,
    kernel_init: Init,
    recurrent_init: RecurrentInit,
    bias_init: Init,
    /// Regularizers of (weight_ih, weight_hh, both biases).
    regs: [Option<Regularizer>; 3],
    /// Offsets of weight_ih, weight_hh, bias_ih, bias_hh.
    offsets: [usize; 4],
    /// Samples in the last forward pass.
    rows: usize,
    ws: Workspace,
    /// When recording (diagnostics): `‖∂L/∂h_t‖` of the last backward pass
    /// per input time step `t` (see [`Recurrent::record_step_norms`]).
    step_norms: Option<Vec<f64>>,
}

impl Recurrent {
    fn gh(&self) -> usize {
        self.cell.gates() * self.units
    }

    fn lens(&self) -> [usize; 4] {
        let gh = self.gh();
        [gh * self.features, gh * self.units, gh, gh]
    }

    fn tensor<'p>(&self, params: &'p [f32], i: usize) -> &'p [f32] {
        &params[self.offsets[i]..self.offsets[i] + self.lens()[i]]
    }

    fn in_len(&self) -> usize {
        self.steps * self.features
    }

    /// The input time index of processing step `s`.
    fn time(&self, s: usize) -> usize {
        if self.go_backwards {
            self.steps - 1 - s
        } else {
            s
        }
    }

    fn check_input(&self, x: MatRef<'_>) -> Result<()> {
        let (t, f) = (self.steps, self.features);
        ensure_shape(x.cols == self.in_len(), || {
            format!("{} expects sequences of shape [{t}, {f}] ({} values per sample), got {} values per sample", self.kind.name(), t * f, x.cols)
        })
    }

    fn reserve(&mut self, n: usize) -> Result<()> {
        let name = self.kind.name();
        let (t, h, gh) = (self.steps, self.units, self.gh());
        let nt = checked_size(n, t, name)?;
        let nh = checked_size(n, h, name)?;
        let ws = &mut self.ws;
        grow(&mut ws.proj, checked_size(nt, gh, name)?, "the recurrent input projection")?;
        if !self.cell.direct() {
            grow(&mut ws.rec, checked_size(n, gh, name)?, "the recurrent product")?;
        }
        grow(&mut ws.saved, checked_size(nt, self.cell.saved_width(h), name)?, "the recurrent gate values")?;
        grow(&mut ws.hs, checked_size(nh, t + 1, name)?, "the recurrent hidden states")?;
        if self.cell == Cell::Lstm {
            grow(&mut ws.cs, checked_size(nh, t + 1, name)?, "the LSTM cell states")?;
        }
        if self.return_sequences {
            ws.out.reshape_for(n, checked_size(t, h, name)?)?;
        }
        Ok(())
    }
}

impl LayerKind for Recurrent {
    fn out_dim(&self) -> usize {
        if self.return_sequences {
            self.steps * self.units
        } else {
            self.units
        }
    }

    fn params(&self) -> Vec<ParamInfo> {
        let gh = self.gh();
        let shapes = [vec![gh, self.features], vec![gh, self.units], vec![gh], vec![gh]];
        ["weight_ih", "weight_hh", "bias_ih", "bias_hh"].into_iter().zip(shapes).zip(self.offsets).map(|((n, s), o)| ParamInfo::new(n, o, s)).collect()
    }

    /// Keras' fans for the kernel (`F` in, `G·units` out); its bias goes to
    /// `bias_ih` (LSTM: the forget gate's quarter at 1 with
    /// `unit_forget_bias`) and `bias_hh` starts at zero, so their sum is
    /// Keras' one bias.
    fn init(&self, params: &mut [f32], _buffers: &mut [f32], rng: &mut ChaCha8Rng) {
        let [l_ih, l_hh, l_b, _] = self.lens();
        let [o_ih, o_hh, o_bi, o_bh] = self.offsets;
        let (f, gh, h) = (self.features, self.gh(), self.units);
        self.kernel_init.fill(&mut params[o_ih..o_ih + l_ih], f, gh, rng);
        match self.recurrent_init {
            RecurrentInit::Orthogonal => orthogonal(&mut params[o_hh..o_hh + l_hh], gh, h, rng),
            RecurrentInit::Plain(init) => init.fill(&mut params[o_hh..o_hh + l_hh], h, gh, rng),
        }
        self.bias_init.fill(&mut params[o_bi..o_bi + l_b], f, gh, rng);
        if self.cell == Cell::Lstm && self.unit_forget_bias {
            params[o_bi + h..o_bi + 2 * h].fill(1.0);
        }
        params[o_bh..o_bh + l_b].fill(0.0);
    }

    fn forward(&mut self, x: MatRef<'_>, params: &[f32], buffers: &[f32], ctx: &Ctx) -> Result<()> {
        self.forward_masked(x, params, buffers, ctx, None)
    }

    /// With a mask, padded steps carry the state over (Keras' masking with
    /// `zero_output_for_mask=False`, its default for RNN layers): a padded
    /// step's output is the state so far, zeros before the first real step.
    fn forward_masked(&mut self, x: MatRef<'_>, params: &[f32], _buffers: &[f32], _ctx: &Ctx, mask: Option<&StepMask>) -> Result<()> {
        self.check_input(x)?;
        let n = x.rows;
        self.ws.keep.clear();
        if let Some(m) = mask {
            m.check(self.kind.name(), n, self.steps)?;
            try_grow(&mut self.ws.keep, n * self.steps, "the recurrent step mask")?;
            self.ws.keep.extend_from_slice(m.as_slice());
        }
        self.reserve(n)?;
        self.rows = n;
        let (t, f, h, gh) = (self.steps, self.features, self.units, self.gh());
        let (w_ih, w_hh) = (self.tensor(params, 0), self.tensor(params, 1));
        let (b_ih, b_hh) = (self.tensor(params, 2), self.tensor(params, 3));
        let nt = n * t;
        let xs = MatRef { rows: nt, cols: f, data: x.data };
        let proj = &mut self.ws.proj[..nt * gh];
        matmul(xs, Op::N, MatRef { rows: gh, cols: f, data: w_ih }, Op::T, MatMut { rows: nt, cols: gh, data: proj }, false)?;
        let direct = self.cell.direct();
        if direct {
            // Both biases now, so that each step's product can accumulate onto its
            // rows of `proj` and leave the whole pre-activation there.
            for row in proj.chunks_exact_mut(gh) {
                row.iter_mut().zip(b_ih.iter().zip(b_hh)).for_each(|(v, (b, c))| *v = *v + b + c);
            }
        } else {
            for row in proj.chunks_exact_mut(gh) {
                row.iter_mut().zip(b_ih).for_each(|(v, b)| *v += b);
            }
        }
        let nh = n * h;
        let sw = self.cell.saved_width(h);
        self.ws.hs[..nh].fill(0.0);
        let lstm = self.cell == Cell::Lstm;
        if lstm {
            self.ws.cs[..nh].fill(0.0);
        }
        let w_hh_ref = MatRef { rows: gh, cols: h, data: w_hh };
        self.ws.w_hh_pack.pack(w_hh_ref, Op::T, n)?;
        for s in 0..t {
            let time = self.time(s);
            let (prev, next) = self.ws.hs[s * nh..(s + 2) * nh].split_at_mut(nh);
            let (c_prev, c_next) = if lstm { self.ws.cs[s * nh..(s + 2) * nh].split_at_mut(nh) } else { (&mut [][..], &mut [][..]) };
            let rec = if direct { &mut [][..] } else { &mut self.ws.rec[..n * gh] };
            let prev_ref = MatRef { rows: n, cols: h, data: prev };
            if direct {
                // Onto this step's rows of `proj` (sample i's at row i·T + time).
                let rows = MatMut { rows: n, cols: gh, data: &mut self.ws.proj[time * gh..nt * gh] };
                matmul_packed_rows(prev_ref, h, w_hh_ref, Op::T, &self.ws.w_hh_pack, rows, t * gh, true)?;
            } else {
                matmul_packed(prev_ref, Op::N, w_hh_ref, Op::T, &self.ws.w_hh_pack, MatMut { rows: n, cols: gh, data: rec }, false)?;
            }
            let saved = &mut self.ws.saved[s * n * sw..(s + 1) * n * sw];
            let step = StepFwd { units: h, proj: &self.ws.proj, steps: t, time, b_hh, prev, c_prev, keep: &self.ws.keep };
            self.cell.forward_step(n, &step, rec, saved, next, c_next);
        }
        if self.return_sequences {
            let out = self.ws.out.as_mut_slice();
            for s in 0..t {
                let hs = &self.ws.hs[(s + 1) * nh..(s + 2) * nh];
                for (i, row) in hs.chunks_exact(h).enumerate() {
                    out[(i * t + s) * h..(i * t + s + 1) * h].copy_from_slice(row);
                }
            }
        }
        Ok(())
    }

    fn output(&self) -> MatRef<'_> {
        let n = self.rows;
        if self.return_sequences {
            return MatRef { rows: n, cols: self.steps * self.units, data: &self.ws.out.as_slice()[..n * self.steps * self.units] };
        }
        let nh = n * self.units;
        MatRef { rows: n, cols: self.units, data: &self.ws.hs[self.steps * nh..(self.steps + 1) * nh] }
    }

    /// Backpropagation through time: per step (last to first) the fused
    /// cell backward gives the gate gradients and `dh_{t-1} = d_rec·W_hh`
    /// (plus the GRU's direct path); then one GEMM each for `dW_ih`, `dW_hh`
    /// and `dx`, and column sums for the biases.
    fn backward(&mut self, x: MatRef<'_>, params: &[f32], grads: &mut [f32], dy: &mut Matrix, dx: Option<&mut Matrix>) -> Result<()> {
        check_backward(self.kind.name(), x, dy, self.rows, self.in_len(), self.out_dim())?;
        let (n, t, f, h, gh) = (self.rows, self.steps, self.features, self.units, self.gh());
        let (nt, nh, sw) = (n * t, n * h, self.cell.saved_width(h));
        let name = self.kind.name();
        let direct = self.cell.direct();
        let ws = &mut self.ws;
        grow(&mut ws.d_in, checked_size(nt, gh, name)?, "the recurrent input-gradient workspace")?;
        grow(&mut ws.d_rec, checked_size(nt, gh, name)?, "the recurrent gradient workspace")?;
        for v in [&mut ws.dh, &mut ws.dc, &mut ws.carry] {
            grow(v, nh, "the recurrent state gradient")?;
            v[..nh].fill(0.0);
        }
        let w_hh = &params[self.offsets[1]..self.offsets[1] + gh * h];
        let w_hh_ref = MatRef { rows: gh, cols: h, data: w_hh };
        ws.w_hh_pack.pack(w_hh_ref, Op::N, n)?;
        let dy = dy.as_slice();
        for s in (0..t).rev() {
            let ts = if self.go_backwards { t - 1 - s } else { s };
            let dh = &mut ws.dh[..nh];
            if self.return_sequences {
                for (i, d) in dh.chunks_exact_mut(h).enumerate() {
                    d.iter_mut().zip(&dy[(i * t + s) * h..(i * t + s + 1) * h]).for_each(|(a, b)| *a += b);
                }
            } else if s == t - 1 {
                dh.copy_from_slice(&dy[..nh]);
            }
            if let Some(norms) = self.step_norms.as_mut() {
                record_norm(norms, ts, t, h, &ws.dh[..nh], &ws.keep);
            }
            let c_prev = if self.cell == Cell::Lstm { &ws.cs[s * nh..(s + 1) * nh] } else { &[][..] };
            let back = StepBack {
                units: h,
                saved: &ws.saved[s * n * sw..(s + 1) * n * sw],
                proj: &ws.proj[..nt * gh],
                prev: &ws.hs[s * nh..(s + 1) * nh],
                out: &ws.hs[(s + 1) * nh..(s + 2) * nh],
                c_prev,
                dh: &ws.dh[..nh],
                keep: &ws.keep,
                steps: t,
                time: ts,
            };
            let carry = MatMut { rows: n, cols: h, data: &mut ws.carry[..nh] };
            // The gate gradients go straight into this step's rows of the
            // sample-major `d_in` (sample i's at row i·T + time); the GRU's, as
            // its recurrent product sees them, also into the time-major `d_rec`.
            let d_step = &mut ws.d_in[ts * gh..nt * gh];
            let d_rec = if direct { &mut [][..] } else { &mut ws.d_rec[s * n * gh..(s + 1) * n * gh] };
            self.cell.backward_step(n, &back, &mut ws.dc[..nh], d_step, t * gh, d_rec, carry.data);
            if direct {
                // Both products see the same gate gradients: read them in place.
                matmul_packed_rows(MatRef { rows: n, cols: gh, data: d_step }, t * gh, w_hh_ref, Op::N, &ws.w_hh_pack, carry, h, true)?;
            } else {
                matmul_packed(MatRef { rows: n, cols: gh, data: d_rec }, Op::N, w_hh_ref, Op::N, &ws.w_hh_pack, carry, true)?;
            }
            std::mem::swap(&mut ws.dh, &mut ws.carry);
            ws.carry[..nh].fill(0.0);
        }
        let [o_ih, o_hh, o_bi, o_bh] = self.offsets;
        let d_in = MatRef { rows: nt, cols: gh, data: &ws.d_in[..nt * gh] };
        let xs = MatRef { rows: nt, cols: f, data: x.data };
        weight_ih_grad(d_in, xs, &mut ws.dw_t, &mut grads[o_ih..o_ih + gh * f])?;
        col_sums(d_in.data, &mut grads[o_bi..o_bi + gh]);
        let dw_hh = MatMut { rows: gh, cols: h, data: &mut grads[o_hh..o_hh + gh * h] };
        if direct {
            // `dW_hh = Σ d_gatesᵀ·h_{t-1}` over `d_in`'s sample-major rows: the
            // states entering each step gathered into the same row order (a
            // quarter of the copy of the LSTM's gate gradients it replaces).
            let hs_rows = &mut ws.d_rec[..nt * h];
            for s in 0..t {
                let ts = if self.go_backwards { t - 1 - s } else { s };
                for (i, row) in ws.hs[s * nh..(s + 1) * nh].chunks_exact(h).enumerate() {
                    hs_rows[(i * t + ts) * h..(i * t + ts + 1) * h].copy_from_slice(row);
                }
            }
            matmul(d_in, Op::T, MatRef { rows: nt, cols: h, data: hs_rows }, Op::N, dw_hh, false)?;
            grads.copy_within(o_bi..o_bi + gh, o_bh);
        } else {
            let d_rec = MatRef { rows: nt, cols: gh, data: &ws.d_rec[..nt * gh] };
            matmul(d_rec, Op::T, MatRef { rows: nt, cols: h, data: &ws.hs[..nt * h] }, Op::N, dw_hh, false)?;
            col_sums(d_rec.data, &mut grads[o_bh..o_bh + gh]);
        }
        if let Some(dx) = dx {
            dx.reshape_for(n, t * f)?;
            let w_ih = &params[o_ih..o_ih + gh * f];
            matmul(d_in, Op::N, MatRef { rows: gh, cols: f, data: w_ih }, Op::N, MatMut { rows: nt, cols: f, data: dx.as_mut_slice() }, false)?;
        }
        Ok(())
    }

    fn step_width(&self) -> Option<usize> {
        Some(self.features)
    }

    /// Keras' `compute_mask`: the mask stays with `return_sequences` (as it
    /// is, also with `go_backwards`), and ends with the last state.
    fn mask_flow(&self) -> MaskFlow {
        if self.return_sequences {
            MaskFlow::Keeps
        } else {
            MaskFlow::Ends
        }
    }

    fn set_steps(&mut self, steps: usize) -> Result<()> {
        let name = self.kind.name();
        ensure_config(steps > 0, || format!("{name} needs at least one time step, got a zero-length sequence"))?;
        checked_size(steps, self.features.max(self.gh()), &format!("{name} input"))?;
        checked_size(steps + 1, self.units, &format!("{name} output"))?;
        self.steps = steps;
        self.rows = 0;
        self.ws.keep.clear();
        Ok(())
    }

    /// The kernel, recurrent and bias regularizers, on their tensors (the
    /// chain matches only tensors named `weight` and `bias`).
    fn nested_penalties(&self) -> Vec<Penalty> {
        let infos = self.params();
        let mut out = Vec::new();
        for (reg, idx) in [(self.regs[0], &[0][..]), (self.regs[1], &[1][..]), (self.regs[2], &[2, 3][..])] {
            if let Some(reg) = reg {
                out.extend(idx.iter().map(|&i| Penalty { range: infos[i].range(), reg }));
            }
        }
        out
    }
}

impl Recurrent {
    /// Turns on (or off) recording of the per-step hidden-state gradient norms
    /// in each backward pass, read by [`Recurrent::step_norms`]. Off by default:
    /// it costs one pass over `∂L/∂h_t` per step.
    pub fn record_step_norms(&mut self, on: bool) {
        self.step_norms = on.then(Vec::new);
    }

    /// With recording on, after a backward pass: per input time step `t`
    /// (input order, also with `go_backwards`) the Frobenius norm over the
    /// batch of `∂L/∂h_t`, the whole gradient reaching the hidden state the
    /// layer computes at `x_t` (from the loss at that step and, through the
    /// recurrence, from every step processed after it); the LSTM's cell
    /// state is not included. With a step mask only the samples for which
    /// step `t` is real count: a padded step computes no state (it carries
    /// the previous one), so a step padded in every sample reads 0.
    pub fn step_norms(&self) -> Option<&[f64]> {
        self.step_norms.as_deref()
    }
}

/// `dW_ih = d_inᵀ·x` (`[G·units, F]`) over all steps. The microkernels tile
/// their output in 64-row (AVX-512) panels along its columns here, so with
/// few features (F = 28: one half-empty 32-row tile) the product is computed
/// transposed, `xᵀ·d_in` with the wide `G·units` side on the full tiles, into
/// `scratch` and transposed back (a `G·units × F` copy, small next to the
/// product's `N·T` depth).
fn weight_ih_grad(d_in: MatRef<'_>, x: MatRef<'_>, scratch: &mut Vec<f32>, out: &mut [f32]) -> Result<()> {
    let (gh, f) = (d_in.cols, x.cols);
    if f >= gh {
        return matmul(d_in, Op::T, x, Op::N, MatMut { rows: gh, cols: f, data: out }, false);
    }
    grow(scratch, gh * f, "the recurrent weight_ih gradient")?;
    let t = &mut scratch[..gh * f];
    matmul(x, Op::T, d_in, Op::N, MatMut { rows: f, cols: gh, data: t }, false)?;
    for (j, row) in t.chunks_exact(gh).enumerate() {
        for (g, v) in row.iter().enumerate() {
            out[g * f + j] = *v;
        }
    }
    Ok(())
}

/// Stores `‖dh‖` (`[batch, units]`, summed in f64) at `norms[time]`, sizing
/// `norms` to `steps`; with a step mask `keep` (`[batch, steps]`, empty:
/// none) over the samples whose step `time` is real.
fn record_norm(norms: &mut Vec<f64>, time: usize, steps: usize, units: usize, dh: &[f32], keep: &[bool]) {
    norms.resize(steps, 0.0);
    let real = |i: usize| keep.is_empty() || keep[i * steps + time];
    let sq: f64 = dh.chunks_exact(units).enumerate().filter(|&(i, _)| real(i)).flat_map(|(_, r)| r).map(|&v| f64::from(v) * f64::from(v)).sum();
    norms[time] = sq.sqrt();
}
