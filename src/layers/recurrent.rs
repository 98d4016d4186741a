//! Recurrent layers: SimpleRNN, LSTM and GRU over sequences `[batch, T, F]`,
//! trained by backpropagation through time inside the one-call step.
//!
//! Each sample's row holds its `T` steps one after the other (`[T, F]`), so
//! the whole batch is also the `[batch·T, F]` matrix of every step. Forward,
//! each step runs its input projection `x_t·W_ihᵀ`, its recurrent product
//! `h_{t-1}·W_hhᵀ` (both right operands packed once per pass) and the fused
//! gate pass of each sample (recurrent_cells.rs) while that step's rows are
//! in cache. The time loops (recurrent_pass.rs) run by shares of the batch,
//! one per thread, each through all steps with no meeting point between
//! steps forward; backward they meet once per chunk of a few steps (see
//! [`chunk_steps`]), and between chunks the weight gradients of the chunk's
//! steps, `[dW_ih | db] += d_inᵀ·[x | 1]` and `dW_hh += d_recᵀ·h_{t-1}`,
//! are two GEMMs per row group of the batch, run in parallel while the gate
//! gradients are in cache (recurrent_grads.rs; the input gradient is
//! computed step by step inside the shares). Results are bit-identical
//! whatever the thread count: the chunks and the row groups depend on the
//! batch and layer sizes alone (see recurrent_pass.rs).
//!
//! SimpleRNN and LSTM ([`Cell::direct`]) add both biases to the step's
//! projection and let the step's product accumulate onto it, so the
//! pre-activation is summed in the order
//! `(x·W_ihᵀ + b_ih + b_hh) + h·W_hhᵀ` (the GRU keeps the product apart and
//! adds `rec + (proj + b_hh)`); backward their gate gradients are written once, in
//! place in the buffer the `weight_ih` and input gradients read, and the
//! per-step product reads them there.
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
use crate::kernels::gemm::{Op, PackedRhs};
use crate::kernels::reduce::col_sums;
use crate::layers::kind::{check_backward, BuildLayer};
use crate::layers::recurrent_cells::Cell;
use crate::layers::recurrent_grads::{chunk_products, chunk_steps, finish, weight_groups, ChunkShape, GroupRows};
use crate::layers::recurrent_pass::{self, BackRows, BackWeights, Chunk, Dims, FwdRows, Weights};
use crate::layers::{ActivationSpec, Alloc, Ctx, InitSpec, LayerKind, MaskFlow, ParamInfo, StepMask, WeightSpec};
use crate::regularizer::{Penalty, Regularizer};
use crate::tensor::{MatRef, Matrix};

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
            shares: 1,
            ws: Box::default(),
            step_norms: None,
            chunk_cap: usize::MAX,
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

/// The buffers of one forward and backward pass, grown to the largest batch;
/// sample-major by input time (see recurrent_pass.rs).
#[derive(Clone, Debug, Default)]
struct Workspace {
    /// One step's `x·W_ihᵀ + b_ih`, `[batch, G·units]` (SimpleRNN, LSTM:
    /// `+ b_hh`, and the step's product adds `h·W_hhᵀ` onto it).
    proj: Vec<f32>,
    /// GRU: one step's `h_{t-1}·W_hhᵀ`, `[batch, G·units]`.
    rec: Vec<f32>,
    /// Per step: what the cell keeps for its backward, `[batch·T, ·]` (step
    /// by step within each share of the batch).
    saved: Vec<f32>,
    /// The hidden (and LSTM cell) state entering each step, `[batch·T,
    /// units]` (`cs` step by step within each share).
    hs: Vec<f32>,
    cs: Vec<f32>,
    /// The final hidden (and cell) state, `[batch, units]`.
    last: Vec<f32>,
    c_last: Vec<f32>,
    /// `return_sequences`: the output, `[batch, T·units]` in processing order.
    out: Matrix,
    /// Gradients w.r.t. the gate pre-activations of one backward chunk
    /// of steps, `[batch·steps, grad_width]` (see [`chunk_steps`]):
    /// as the input projection and as the recurrent product see them (the
    /// GRU's two sets interleaved, see [`Cell::grad_width`]).
    d_in: Vec<f32>,
    /// GRU, when the input gradient is wanted: `W_ih` with its candidate
    /// rows first, the order of its input-side gate gradients.
    w_ih_lead: Vec<f32>,
    /// The gradient flowing into `h_t` (and an LSTM's `c_t`), and its next value.
    dh: Vec<f32>,
    dc: Vec<f32>,
    carry: Vec<f32>,
    /// When recording step norms: `‖∂L/∂h_t‖²` per sample and input step.
    norm_sq: Vec<f64>,
    /// One backward chunk's inputs with a column of ones appended, `[batch·steps,
    /// F + 1]`, and the states entering its steps, `[batch·steps, units]`, in
    /// the rows of its gate gradients: the `weight_ih` gradient's product
    /// then also sums the input-side gate gradients, the bias gradient (see
    /// recurrent_grads.rs).
    x_one: Vec<f32>,
    hs_chunk: Vec<f32>,
    /// GRU: per sample, its recurrent candidate gradients `d_rn` summed over
    /// the steps, `[batch, units]`.
    bias_rn: Vec<f32>,
    /// `W_ih` and `W_hh` packed once per pass for the per-step products (as
    /// `W_ihᵀ` and `W_hhᵀ` in the forward, `W_hh` in the backward).
    w_ih_pack: PackedRhs,
    w_hh_pack: PackedRhs,
    /// Per row group (see [`weight_groups`]): its partial `[dW_ih | db]`,
    /// transposed or not, and its partial `dW_hh`, summed over the chunks
    /// before they are added and put in the gradients' layout (see [`finish`]).
    dw_t: Vec<f32>,
    dw_hh: Vec<f32>,
    /// The step mask of the last forward pass, sample-major `[batch, T]` (empty: none).
    keep: Vec<bool>,
}

pub(super) fn grow(v: &mut Vec<f32>, len: usize, what: &str) -> Result<()> {
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
    /// Samples in the last forward pass, and the shares it split them into
    /// (its backward pass splits them alike, see recurrent_pass.rs).
    rows: usize,
    shares: usize,
    /// Boxed: the buffers would make every `Layer` as large as a recurrent one.
    ws: Box<Workspace>,
    /// When recording (diagnostics): `‖∂L/∂h_t‖` of the last backward pass
    /// per input time step `t` (see [`Recurrent::record_step_norms`]).
    step_norms: Option<Vec<f64>>,
    /// The most steps a backward chunk may hold (tests set it low to run
    /// several chunks on small layers; see [`chunk_steps`]).
    chunk_cap: usize,
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
        grow(&mut ws.proj, checked_size(n, gh, name)?, "the recurrent input projection")?;
        if !self.cell.direct() {
            grow(&mut ws.rec, checked_size(n, gh, name)?, "the recurrent product")?;
        }
        grow(&mut ws.saved, checked_size(nt, self.cell.saved_width(h), name)?, "the recurrent gate values")?;
        grow(&mut ws.hs, checked_size(nt, h, name)?, "the recurrent hidden states")?;
        grow(&mut ws.last, nh, "the recurrent hidden states")?;
        if self.cell == Cell::Lstm {
            grow(&mut ws.cs, checked_size(nt, h, name)?, "the LSTM cell states")?;
            grow(&mut ws.c_last, nh, "the LSTM cell states")?;
        }
        if self.return_sequences {
            ws.out.reshape_for(n, checked_size(t, h, name)?)?;
        }
        Ok(())
    }

    fn dims(&self) -> Dims {
        Dims { cell: self.cell, steps: self.steps, features: self.features, units: self.units, go_backwards: self.go_backwards, return_sequences: self.return_sequences }
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
        let direct = self.cell.direct();
        let (nh, sw) = (n * h, self.cell.saved_width(h));
        let (w_ih_ref, w_hh_ref) = (MatRef { rows: gh, cols: f, data: w_ih }, MatRef { rows: gh, cols: h, data: w_hh });
        self.ws.w_ih_pack.pack(w_ih_ref, Op::T, n)?;
        self.ws.w_hh_pack.pack(w_hh_ref, Op::T, n)?;
        let (lstm, dims) = (self.cell == Cell::Lstm, self.dims());
        let ws = &mut self.ws;
        let rows = FwdRows {
            rows: n,
            x: &x.data[..nt * f],
            proj: &mut ws.proj[..n * gh],
            saved: &mut ws.saved[..nt * sw],
            hs: &mut ws.hs[..nt * h],
            cs: if lstm { &mut ws.cs[..nt * h] } else { &mut [] },
            last: &mut ws.last[..nh],
            c_last: if lstm { &mut ws.c_last[..nh] } else { &mut [] },
            rec: if direct { &mut [] } else { &mut ws.rec[..n * gh] },
            out: if self.return_sequences { ws.out.as_mut_slice() } else { &mut [] },
            keep: &ws.keep,
        };
        self.shares = recurrent_pass::shares(n, h);
        let weights = Weights { w_ih: w_ih_ref, w_hh: w_hh_ref, ih_pack: &ws.w_ih_pack, hh_pack: &ws.w_hh_pack, b_ih, b_hh };
        recurrent_pass::forward(&dims, rows, self.shares, &weights)
    }

    fn output(&self) -> MatRef<'_> {
        let n = self.rows;
        if self.return_sequences {
            return MatRef { rows: n, cols: self.steps * self.units, data: &self.ws.out.as_slice()[..n * self.steps * self.units] };
        }
        MatRef { rows: n, cols: self.units, data: &self.ws.last[..n * self.units] }
    }

    /// Backpropagation through time, chunk by chunk from the last step
    /// (recurrent_pass.rs gives a chunk's gate gradients, the GRU's
    /// per-sample candidate sums and `dx` step by step), each chunk followed
    /// by one GEMM each onto `dW_ih` (with the input-side bias) and `dW_hh`.
    fn backward(&mut self, x: MatRef<'_>, params: &[f32], grads: &mut [f32], dy: &mut Matrix, dx: Option<&mut Matrix>) -> Result<()> {
        check_backward(self.kind.name(), x, dy, self.rows, self.in_len(), self.out_dim())?;
        let (n, t, f, h, gh) = (self.rows, self.steps, self.features, self.units, self.gh());
        let (nt, nh, sw) = (n * t, n * h, self.cell.saved_width(h));
        let name = self.kind.name();
        let (direct, lstm) = (self.cell.direct(), self.cell == Cell::Lstm);
        let (dims, dy_len) = (self.dims(), n * self.out_dim());
        let (dw, rec_at, lead) = (self.cell.grad_width(h), self.cell.rec_offset(h), self.cell.in_lead(h));
        let ws = &mut self.ws;
        let steps = chunk_steps(n, dw, t).min(self.chunk_cap);
        let nc = checked_size(n, steps, name)?;
        let groups = weight_groups(n);
        grow(&mut ws.dw_t, checked_size(groups * gh, f + 1, name)?, "the recurrent weight_ih gradient")?;
        grow(&mut ws.dw_hh, checked_size(groups * gh, h, name)?, "the recurrent weight_hh gradient")?;
        grow(&mut ws.d_in, checked_size(nc, dw, name)?, "the recurrent gate-gradient workspace")?;
        grow(&mut ws.x_one, checked_size(nc, f + 1, name)?, "the recurrent input with a ones column")?;
        if steps < t {
            grow(&mut ws.hs_chunk, checked_size(nc, h, name)?, "the recurrent hidden states")?;
        }
        for v in [&mut ws.dh, &mut ws.dc, &mut ws.carry] {
            grow(v, nh, "the recurrent state gradient")?;
        }
        if !direct {
            grow(&mut ws.bias_rn, nh, "the recurrent bias gradient")?;
        }
        let recording = self.step_norms.is_some();
        if recording {
            try_grow(&mut ws.norm_sq, nt, "the recurrent step norms")?;
            ws.norm_sq.resize(nt, 0.0);
        }
        let w_hh = &params[self.offsets[1]..self.offsets[1] + gh * h];
        let w_hh_ref = MatRef { rows: gh, cols: h, data: w_hh };
        ws.w_hh_pack.pack(w_hh_ref, Op::N, n)?;
        let [o_ih, o_hh, o_bi, o_bh] = self.offsets;
        let w_ih = &params[o_ih..o_ih + gh * f];
        if dx.is_some() && lead > 0 {
            // `W_ih`'s rows in the order of the input-side gate gradients.
            grow(&mut ws.w_ih_lead, gh * f, "the recurrent input weights")?;
            let at = (gh - lead) * f;
            ws.w_ih_lead[..lead * f].copy_from_slice(&w_ih[at..]);
            ws.w_ih_lead[lead * f..gh * f].copy_from_slice(&w_ih[..at]);
        }
        let w_ih_ref = MatRef { rows: gh, cols: f, data: if lead > 0 && dx.is_some() { &ws.w_ih_lead[..gh * f] } else { w_ih } };
        let dx = match dx {
            Some(dx) => {
                dx.reshape_for(n, t * f)?;
                ws.w_ih_pack.pack(w_ih_ref, Op::N, n)?;
                dx.as_mut_slice()
            }
            None => &mut [],
        };
        let weights = BackWeights { w_hh: w_hh_ref, hh_pack: &ws.w_hh_pack, w_ih: w_ih_ref, ih_pack: &ws.w_ih_pack };
        // `bias_ih` lies after `weight_ih` (built in that order).
        let (g_w, g_b) = grads.split_at_mut(o_bi);
        let mut hi = t;
        while hi > 0 {
            let chunk = Chunk { lo: hi.saturating_sub(steps), hi };
            let (len, t0) = (chunk.len(), chunk.first_time(&dims));
            let rows = BackRows {
                rows: n,
                d_in: &mut ws.d_in[..n * len * dw],
                dh: &mut ws.dh[..nh],
                dc: &mut ws.dc[..nh],
                carry: &mut ws.carry[..nh],
                norm_sq: if recording { &mut ws.norm_sq[..nt] } else { &mut [] },
                bias_rn: if direct { &mut [] } else { &mut ws.bias_rn[..nh] },
                saved: &ws.saved[..nt * sw],
                hs: &ws.hs[..nt * h],
                cs: if lstm { &ws.cs[..nt * h] } else { &[] },
                last: &ws.last[..nh],
                keep: &ws.keep,
                dy: &dy.as_slice()[..dy_len],
                dx: &mut *dx,
            };
            recurrent_pass::backward(&dims, rows, self.shares, &weights, chunk)?;
            let rows_c = n * len;
            let shape = ChunkShape { n, t, f, h, dw, rec_at, gh, t0, len, first: hi == t };
            chunk_products(GroupRows {
                g0: 0,
                groups,
                total: groups,
                x: x.data,
                hs: &ws.hs[..nt * h],
                d_in: &ws.d_in[..rows_c * dw],
                x_one: &mut ws.x_one[..rows_c * (f + 1)],
                hs_chunk: if len < t { &mut ws.hs_chunk[..rows_c * h] } else { &mut [] },
                ih: &mut ws.dw_t[..groups * gh * (f + 1)],
                hh: &mut ws.dw_hh[..groups * gh * h],
                shape,
            })?;
            hi = chunk.lo;
        }
        let (g_ih, g_hh) = g_w.split_at_mut(o_hh);
        finish(&mut ws.dw_t, &mut ws.dw_hh, groups, (gh, f, lead), &mut g_ih[o_ih..o_ih + gh * f], &mut g_b[..gh], &mut g_hh[..gh * h]);
        if let Some(norms) = self.step_norms.as_mut() {
            // Over the batch in sample order, whatever the shares were.
            norms.clear();
            norms.extend((0..t).map(|time| (0..n).map(|i| ws.norm_sq[i * t + time]).sum::<f64>().sqrt()));
        }
        if direct {
            grads.copy_within(o_bi..o_bi + gh, o_bh);
        } else {
            // The recurrent reset and update gradients are the input side's:
            // the same values summed in the same order. The candidate's:
            // per-sample sums over the steps, summed over the samples in
            // order (whatever the shares were).
            grads.copy_within(o_bi..o_bi + 2 * h, o_bh);
            col_sums(&ws.bias_rn[..nh], &mut grads[o_bh + 2 * h..o_bh + gh]);
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

    /// Caps the steps of a backward chunk, so that small test layers run
    /// several chunks (chunks of uneven length included).
    #[cfg(test)]
    pub(crate) fn cap_chunk_steps(&mut self, steps: usize) {
        self.chunk_cap = steps.max(1);
    }
}
