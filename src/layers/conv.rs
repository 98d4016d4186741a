//! Convolution over sequences (Conv1D) and images (Conv2D), grouped and
//! dilated, as im2col followed by one GEMM per channel group, with the bias
//! add and the activation fused into one pass over the GEMM's output.
//!
//! The whole batch's im2col matrix is built at once (`[batch · positions,
//! window · channels]`), so the product is one large GEMM that the GEMM crate
//! threads by output tiles; the backward pass reuses that matrix for the
//! kernel gradient and then overwrites it with the input gradient's columns.
//! Every other loop runs per sample, so results do not depend on threads.
//!
//! Weight layout: `weight` is `[kh, kw, in/groups, filters]` (`[k, in/groups,
//! filters]` for Conv1D), Keras' layout for both data formats; filter `f`
//! belongs to group `f / (filters/groups)`. PyTorch's `[filters, in/groups,
//! kh, kw]` is its transpose by axes `(3, 2, 0, 1)`.

use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::activation::{add_bias, Activation};
use crate::error::{checked_size, ensure_config, ensure_shape, Result};
use crate::init::Init;
use crate::kernels::gemm::{matmul, Op};
use crate::kernels::reduce::col_sums;
use crate::layers::grid::{col2im, im2col, transpose_samples, DataFormat, Grid, Window};
use crate::layers::kind::{check_backward, BuildLayer};
use crate::layers::{ActivationSpec, Alloc, Ctx, LayerKind, ParamInfo, WeightSpec};
use crate::regularizer::Regularizer;
use crate::tensor::{MatMut, MatRef, Matrix};

/// `{"type": "conv", "input": [h, w, c], "filters": .., "kernel": [kh, kw], ..}`:
/// a convolution built for inputs of the stated per-sample shape (in the
/// layout's order). One spatial value per list entry: two for images, one for
/// sequences; `pads` holds the padding before and after each spatial axis.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConvSpec {
    pub input: Vec<usize>,
    pub filters: usize,
    pub kernel: Vec<usize>,
    pub strides: Vec<usize>,
    pub pads: Vec<usize>,
    pub dilation: Vec<usize>,
    #[serde(default = "one")]
    pub groups: usize,
    #[serde(default)]
    pub data_format: DataFormat,
    #[serde(default = "identity")]
    pub activation: ActivationSpec,
    #[serde(default = "yes")]
    pub use_bias: bool,
    #[serde(flatten)]
    pub weights: WeightSpec,
}

fn one() -> usize {
    1
}

fn yes() -> bool {
    true
}

fn identity() -> ActivationSpec {
    ActivationSpec::Name("identity".into())
}

impl BuildLayer for ConvSpec {
    type Layer = Conv;

    fn build(&self, in_dim: usize, alloc: &mut Alloc) -> Result<Conv> {
        let kind = "Conv";
        let grid = Grid::from_shape(&self.input, self.data_format, kind)?;
        let len = grid.len(kind)?;
        ensure_config(len == in_dim, || format!("{kind} was built for inputs of shape {:?} ({len} values), but its input has {in_dim} values per sample", self.input))?;
        let rank = self.input.len() - 1;
        let win = Window::new(&grid, rank, &self.kernel, &self.strides, &self.dilation, &self.pads, kind)?;
        let (f, g) = (self.filters, self.groups);
        ensure_config(f > 0, || format!("{kind} filters must be at least 1, got {f}"))?;
        ensure_config(g > 0 && grid.c % g == 0 && f % g == 0, || {
            format!("{kind} groups={g} must divide both the input channels ({}) and the filters ({f})", grid.c)
        })?;
        let act = self.activation.resolve()?;
        let (kernel_init, bias_init) = self.weights.inits(&act)?;
        let kg = checked_size(win.cells(), grid.c / g, "Conv window (kernel x channels)")?;
        let w_len = checked_size(kg, f, "Conv weight")?;
        checked_size(win.positions(), f, "Conv output")?;
        let w_off = alloc.params(w_len, "Conv weight")?;
        let b_off = alloc.params(if self.use_bias { f } else { 0 }, "Conv bias")?;
        let mut shape: Vec<usize> = if rank == 2 { win.k.to_vec() } else { vec![win.k[1]] };
        shape.extend([grid.c / g, f]);
        Ok(Conv {
            grid,
            win,
            filters: f,
            groups: g,
            kg,
            act,
            kernel_init,
            bias_init,
            use_bias: self.use_bias,
            w_shape: shape,
            w_off,
            b_off,
            zero_bias: vec![0.0; f],
            rows: 0,
            cols: Vec::new(),
            dcols: Vec::new(),
            z: Matrix::zeros(0, f),
            a: Matrix::zeros(0, f),
            out: Matrix::default(),
            dz: Matrix::default(),
            pack: Vec::new(),
            wpack: Vec::new(),
        })
    }

    fn regularizers(&self) -> (Option<Regularizer>, Option<Regularizer>) {
        self.weights.regularizers()
    }
}

/// A built convolution; see the module docs for its weight layout.
#[derive(Clone, Debug)]
pub struct Conv {
    grid: Grid,
    win: Window,
    filters: usize,
    groups: usize,
    /// Rows of one group's kernel matrix: window cells × channels per group.
    kg: usize,
    act: Activation,
    kernel_init: Init,
    bias_init: Init,
    use_bias: bool,
    w_shape: Vec<usize>,
    w_off: usize,
    b_off: usize,
    /// Added in place of a bias when there is none (the fused pass needs one).
    zero_bias: Vec<f32>,
    /// Samples in the last forward pass.
    rows: usize,
    /// im2col of the last forward pass, `[groups][batch · positions, kg]`.
    cols: Vec<f32>,
    /// The input gradient's columns, shaped as `cols` (before col2im).
    dcols: Vec<f32>,
    /// Pre-activation, channels_last: `[batch · positions, filters]`.
    z: Matrix,
    /// Post-activation (unused for the identity).
    a: Matrix,
    /// channels_first: the output, transposed from `z` or `a`.
    out: Matrix,
    /// channels_first: the output gradient transposed to channels_last.
    dz: Matrix,
    /// One group's output columns, `[batch · positions, filters/groups]` (groups > 1).
    pack: Vec<f32>,
    /// One group's kernel (or its gradient), `[kg, filters/groups]` (groups > 1);
    /// the transposed kernel gradient `[filters, kg]` (groups == 1).
    wpack: Vec<f32>,
}

impl Conv {
    fn w_len(&self) -> usize {
        self.kg * self.filters
    }

    fn out_positions(&self) -> usize {
        self.win.positions()
    }

    fn is_identity(&self) -> bool {
        self.act == Activation::Identity
    }

    /// Copies columns `g·fg..(g+1)·fg` of the `[rows, filters]` matrix `m`
    /// into the contiguous `[rows, fg]` matrix `dst`.
    fn gather(m: &[f32], filters: usize, g: usize, fg: usize, dst: &mut [f32]) {
        for (row, d) in m.chunks_exact(filters).zip(dst.chunks_exact_mut(fg)) {
            d.copy_from_slice(&row[g * fg..(g + 1) * fg]);
        }
    }

    /// The inverse of [`Conv::gather`]: writes `src` into those columns of `m`.
    fn scatter(m: &mut [f32], filters: usize, g: usize, fg: usize, src: &[f32]) {
        for (row, s) in m.chunks_exact_mut(filters).zip(src.chunks_exact(fg)) {
            row[g * fg..(g + 1) * fg].copy_from_slice(s);
        }
    }

    /// Grows the workspaces for `n` samples (fallibly).
    fn reserve(&mut self, n: usize) -> Result<usize> {
        let rows = checked_size(n, self.out_positions(), "Conv output rows")?;
        let cols_len = checked_size(checked_size(rows, self.kg, "Conv im2col")?, self.groups, "Conv im2col")?;
        crate::error::try_grow(&mut self.cols, cols_len, "the Conv im2col workspace")?;
        self.cols.resize(cols_len, 0.0);
        self.z.resize_rows(rows)?;
        if !self.is_identity() {
            self.a.resize_rows(rows)?;
        }
        if self.groups > 1 {
            let fg = self.filters / self.groups;
            let len = checked_size(rows, fg, "Conv group output")?;
            crate::error::try_grow(&mut self.pack, len, "the Conv group workspace")?;
            self.pack.resize(len, 0.0);
            self.wpack.resize(self.kg * fg, 0.0);
        } else {
            // The transposed kernel gradient (see `backward`); the weight's size was checked at build.
            self.wpack.resize(self.kg * self.filters, 0.0);
        }
        if self.grid.format == DataFormat::ChannelsFirst {
            self.out.reshape_for(n, checked_size(self.out_positions(), self.filters, "Conv output")?)?;
        }
        Ok(rows)
    }
}

impl LayerKind for Conv {
    fn out_dim(&self) -> usize {
        self.out_positions() * self.filters
    }

    fn params(&self) -> Vec<ParamInfo> {
        let mut p = vec![ParamInfo::new("weight", self.w_off, self.w_shape.clone())];
        if self.use_bias {
            p.push(ParamInfo::new("bias", self.b_off, vec![self.filters]));
        }
        p
    }

    /// Fans as Keras computes them for a conv kernel: window cells times the
    /// input channels per group (in) or times the filters (out).
    fn init(&self, params: &mut [f32], _buffers: &mut [f32], rng: &mut ChaCha8Rng) {
        let (fan_in, fan_out) = (self.kg, self.win.cells() * self.filters);
        self.kernel_init.fill(&mut params[self.w_off..self.w_off + self.w_len()], fan_in, fan_out, rng);
        if self.use_bias {
            self.bias_init.fill(&mut params[self.b_off..self.b_off + self.filters], fan_in, fan_out, rng);
        }
    }

    fn forward(&mut self, x: MatRef<'_>, params: &[f32], _buffers: &[f32], _ctx: &Ctx) -> Result<()> {
        let in_len = self.grid.h * self.grid.w * self.grid.c;
        ensure_shape(x.cols == in_len, || format!("Conv expects inputs of {in_len} values per sample, got {}", x.cols))?;
        let rows = self.reserve(x.rows)?;
        self.rows = x.rows;
        let (g, fg, cg, kg, f) = (self.groups, self.filters / self.groups, self.grid.c / self.groups, self.kg, self.filters);
        let weight = &params[self.w_off..self.w_off + self.w_len()];
        for gi in 0..g {
            let cols = &mut self.cols[gi * rows * kg..(gi + 1) * rows * kg];
            im2col(x.data, &self.grid, &self.win, gi * cg, cg, cols);
            let cols = MatRef { rows, cols: kg, data: cols };
            if g == 1 {
                matmul(cols, Op::N, MatRef { rows: kg, cols: f, data: weight }, Op::N, self.z.view_mut(), false)?;
            } else {
                Self::gather(weight, f, gi, fg, &mut self.wpack);
                matmul(cols, Op::N, MatRef { rows: kg, cols: fg, data: &self.wpack }, Op::N, MatMut { rows, cols: fg, data: &mut self.pack }, false)?;
                Self::scatter(self.z.as_mut_slice(), f, gi, fg, &self.pack);
            }
        }
        let bias = if self.use_bias { &params[self.b_off..self.b_off + f] } else { &self.zero_bias[..] };
        if self.is_identity() {
            add_bias(self.z.as_mut_slice(), bias);
        } else {
            self.act.add_bias_activate(self.z.as_mut_slice(), bias, self.a.as_mut_slice());
        }
        if self.grid.format == DataFormat::ChannelsFirst {
            let src = if self.is_identity() { self.z.as_slice() } else { self.a.as_slice() };
            transpose_samples(src, self.out_positions(), f, self.out.as_mut_slice());
        }
        Ok(())
    }

    fn output(&self) -> MatRef<'_> {
        let data = match (self.grid.format, self.is_identity()) {
            (DataFormat::ChannelsFirst, _) => self.out.as_slice(),
            (_, true) => self.z.as_slice(),
            (_, false) => self.a.as_slice(),
        };
        MatRef { rows: self.rows, cols: self.out_dim(), data }
    }

    /// `dz = dy ⊙ f'(z)`, `db = Σ dz`, `dW = colsᵀ·dz` per group, then the
    /// input gradient's columns `dz·Wᵀ` (into their own workspace) scattered
    /// back by col2im.
    fn backward(&mut self, x: MatRef<'_>, params: &[f32], grads: &mut [f32], dy: &mut Matrix, dx: Option<&mut Matrix>) -> Result<()> {
        let in_len = self.grid.h * self.grid.w * self.grid.c;
        check_backward("Conv", x, dy, self.rows, in_len, self.out_dim())?;
        let (positions, w_len, samples) = (self.out_positions(), self.w_len(), self.rows);
        let rows = samples * positions;
        let (g, fg, cg, kg, f) = (self.groups, self.filters / self.groups, self.grid.c / self.groups, self.kg, self.filters);
        // dz, channels_last [rows, filters]: dy itself, or dy transposed.
        let dz: &mut [f32] = if self.grid.format == DataFormat::ChannelsFirst {
            self.dz.reshape_for(rows, f)?;
            transpose_samples(dy.as_slice(), f, positions, self.dz.as_mut_slice());
            self.dz.as_mut_slice()
        } else {
            dy.as_mut_slice()
        };
        if self.act != Activation::Identity {
            self.act.backward(self.z.as_slice(), self.a.as_slice(), dz);
        }
        let (gw, gb) = grads[self.w_off..].split_at_mut(w_len);
        if self.use_bias {
            col_sums(dz, &mut gb[self.b_off - self.w_off - w_len..][..f]);
        }
        let weight = &params[self.w_off..self.w_off + w_len];
        if dx.is_some() {
            crate::error::try_grow(&mut self.dcols, self.cols.len(), "the Conv input-gradient workspace")?;
            self.dcols.resize(self.cols.len(), 0.0);
        }
        for gi in 0..g {
            let cols = &self.cols[gi * rows * kg..(gi + 1) * rows * kg];
            let dcols = if dx.is_some() { &mut self.dcols[gi * rows * kg..(gi + 1) * rows * kg] } else { &mut [][..] };
            if g == 1 && f < 64 && kg >= 64 {
                // The kernel gradient as its transpose `dzᵀ·cols`, `[filters, kg]`:
                // the GEMM's column-major tiles (64 rows with AVX-512) then run
                // along `kg` instead of fewer than 64 filters, which would leave
                // it the narrower microkernel; the small result is transposed
                // into place. A shape-only choice, so thread counts agree.
                let gwt = &mut self.wpack[..kg * f];
                matmul(MatRef { rows, cols: f, data: dz }, Op::T, MatRef { rows, cols: kg, data: cols }, Op::N, MatMut { rows: f, cols: kg, data: gwt }, false)?;
                for (j, row) in gwt.chunks_exact(kg).enumerate() {
                    for (i, &v) in row.iter().enumerate() {
                        gw[i * f + j] = v;
                    }
                }
                if dx.is_some() {
                    matmul(MatRef { rows, cols: f, data: dz }, Op::N, MatRef { rows: kg, cols: f, data: weight }, Op::T, MatMut { rows, cols: kg, data: dcols }, false)?;
                }
            } else if g == 1 {
                matmul(MatRef { rows, cols: kg, data: cols }, Op::T, MatRef { rows, cols: f, data: dz }, Op::N, MatMut { rows: kg, cols: f, data: gw }, false)?;
                if dx.is_some() {
                    matmul(MatRef { rows, cols: f, data: dz }, Op::N, MatRef { rows: kg, cols: f, data: weight }, Op::T, MatMut { rows, cols: kg, data: dcols }, false)?;
                }
            } else {
                Self::gather(dz, f, gi, fg, &mut self.pack);
                let pack = MatRef { rows, cols: fg, data: &self.pack };
                matmul(MatRef { rows, cols: kg, data: cols }, Op::T, pack, Op::N, MatMut { rows: kg, cols: fg, data: &mut self.wpack }, false)?;
                Self::scatter(gw, f, gi, fg, &self.wpack);
                if dx.is_some() {
                    Self::gather(weight, f, gi, fg, &mut self.wpack);
                    matmul(pack, Op::N, MatRef { rows: kg, cols: fg, data: &self.wpack }, Op::T, MatMut { rows, cols: kg, data: dcols }, false)?;
                }
            }
        }
        if let Some(dx) = dx {
            dx.reshape_for(samples, in_len)?;
            dx.as_mut_slice().fill(0.0);
            for gi in 0..g {
                col2im(&self.dcols[gi * rows * kg..(gi + 1) * rows * kg], &self.grid, &self.win, gi * cg, cg, dx.as_mut_slice());
            }
        }
        Ok(())
    }
}
