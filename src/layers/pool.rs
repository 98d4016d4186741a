//! Max and average pooling over sequences and images, windowed or global.
//!
//! Max pooling records, per output value, the input offset that won (its
//! argmax, the first on ties), and the backward pass routes the gradient
//! there. Average pooling divides by the number of window cells inside the
//! input (padding is not counted, as Keras' "same" padding does). A global
//! pool is the window covering the whole grid: `[1, 1, c]` and `[c, 1, 1]` are
//! both the `c` values the core stores, whatever the layout.
//!
//! A global 1-D average pool given the step mask of padded sequences averages
//! the real steps only (Keras 3's masked mean) and ends the mask; a sample
//! with no real step gets 0 (Keras divides 0 by 0 there; see `masked_avg`).

use multiversion::multiversion;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{checked_size, ensure_config, ensure_shape, try_grow, Result};
use crate::kernels::parallel_for;
use crate::layers::grid::{per_sample, DataFormat, Grid, Window};
use crate::layers::kind::{check_backward, BuildLayer};
use crate::layers::{Alloc, Ctx, LayerKind, ParamInfo, StepMask};
use crate::tensor::{MatRef, Matrix};

/// Which statistic a pooling window takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PoolMode {
    Max,
    Avg,
}

/// `{"type": "pool", "mode": "max", "input": [h, w, c], "pool": [ph, pw], ..}`.
/// `global` marks a window spanning the whole input (its `pool` must then be
/// the input's spatial size, with stride 1 and no padding).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PoolSpec {
    pub mode: PoolMode,
    pub input: Vec<usize>,
    pub pool: Vec<usize>,
    pub strides: Vec<usize>,
    pub pads: Vec<usize>,
    #[serde(default)]
    pub data_format: DataFormat,
    #[serde(default)]
    pub global: bool,
}

impl BuildLayer for PoolSpec {
    type Layer = Pool;

    fn build(&self, in_dim: usize, _alloc: &mut Alloc) -> Result<Pool> {
        let kind = match self.mode {
            PoolMode::Max => "MaxPool",
            PoolMode::Avg => "AvgPool",
        };
        let grid = Grid::from_shape(&self.input, self.data_format, kind)?;
        let len = grid.len(kind)?;
        ensure_config(len == in_dim, || format!("{kind} was built for inputs of shape {:?} ({len} values), but its input has {in_dim} values per sample", self.input))?;
        let rank = self.input.len() - 1;
        let ones = vec![1; rank];
        let win = Window::new(&grid, rank, &self.pool, &self.strides, &ones, &self.pads, kind)?;
        // A window wholly inside the padding would have no value to take ("same" pads less).
        let fits = self.pads.chunks(2).zip(if rank == 2 { win.k.to_vec() } else { vec![win.k[1]] }).all(|(p, k)| p.iter().all(|&v| v < k));
        ensure_config(fits, || format!("{kind} padding {:?} must be smaller than its window {:?}", self.pads, self.pool))?;
        ensure_config(!self.global || win.out == [1, 1], || format!("a global {kind} must cover its whole input {:?}", self.input))?;
        let out_dim = checked_size(win.positions(), grid.c, kind)?;
        Ok(Pool { mode: self.mode, global: self.global, grid, win, out_dim, rows: 0, y: Matrix::zeros(0, out_dim), arg: Vec::new(), mask: StepMask::default(), masked: false })
    }
}

/// A built pooling layer.
#[derive(Clone, Debug)]
pub struct Pool {
    mode: PoolMode,
    global: bool,
    grid: Grid,
    win: Window,
    out_dim: usize,
    rows: usize,
    y: Matrix,
    /// Max pooling: the winning input offset (within its sample) per output value.
    arg: Vec<u32>,
    /// The step mask of the last forward pass, when it was masked (global 1-D average only).
    mask: StepMask,
    masked: bool,
}

/// `y[c] = max(y[c], src[c])`, recording `base + c` in `arg[c]` where `src` wins
/// (strictly greater: the first maximum is kept on ties), as branch-free selects.
#[multiversion(targets("x86_64+avx512f+avx512bw+avx512vl+avx512dq", "x86_64+avx2+fma"))]
fn max_update(y: &mut [f32], arg: &mut [u32], src: &[f32], base: u32) {
    for (ch, ((yv, av), &v)) in y.iter_mut().zip(arg.iter_mut()).zip(src).enumerate() {
        let better = v > *yv;
        *yv = if better { v } else { *yv };
        *av = if better { base + ch as u32 } else { *av };
    }
}

/// Max pooling of one channels_last sample by 2×2 windows at stride 2, all
/// inside the input (`out` output rows and columns of `c` channels, `w`
/// input columns): the four cells compared in row-major order, strictly
/// greater winning, as the general path does (the same values and argmax),
/// in one vectorised pass instead of one call per cell.
#[multiversion(targets("x86_64+avx512f+avx512bw+avx512vl+avx512dq", "x86_64+avx2+fma"))]
fn max_2x2(xs: &[f32], w: usize, c: usize, out: [usize; 2], y: &mut [f32], arg: &mut [u32]) {
    for oy in 0..out[0] {
        for ox in 0..out[1] {
            let o = (oy * out[1] + ox) * c;
            let i0 = (2 * oy * w + 2 * ox) * c;
            let cells = [i0, i0 + c, i0 + w * c, i0 + w * c + c];
            let src: [&[f32]; 4] = cells.map(|i| &xs[i..i + c]);
            let (yo, ao) = (&mut y[o..o + c], &mut arg[o..o + c]);
            // Blocks of 16 channels as fixed-size arrays, so the selects vectorise.
            let whole = c - c % 16;
            for ch0 in (0..whole).step_by(16) {
                let block = |k: usize| -> &[f32; 16] { src[k][ch0..ch0 + 16].try_into().expect("16 channels") };
                let mut best = *block(0);
                let mut at: [u32; 16] = std::array::from_fn(|t| (cells[0] + ch0 + t) as u32);
                for (k, &cell) in cells.iter().enumerate().skip(1) {
                    let (v, base) = (block(k), (cell + ch0) as u32);
                    for t in 0..16 {
                        let better = v[t] > best[t];
                        best[t] = if better { v[t] } else { best[t] };
                        at[t] = if better { base + t as u32 } else { at[t] };
                    }
                }
                yo[ch0..ch0 + 16].copy_from_slice(&best);
                ao[ch0..ch0 + 16].copy_from_slice(&at);
            }
            for ch in whole..c {
                let (mut best, mut at) = (src[0][ch], cells[0] + ch);
                for (s, &i) in src[1..].iter().zip(&cells[1..]) {
                    let better = s[ch] > best;
                    best = if better { s[ch] } else { best };
                    at = if better { i + ch } else { at };
                }
                yo[ch] = best;
                ao[ch] = at as u32;
            }
        }
    }
}

impl Pool {
    /// Whether [`max_2x2`] computes this pool: channels_last, 2×2 windows at
    /// stride 2, none reaching into the padding.
    fn is_2x2(&self) -> bool {
        let (win, g) = (&self.win, &self.grid);
        g.format == DataFormat::ChannelsLast && win.k == [2, 2] && win.stride == [2, 2] && win.pad_begin == [0, 0] && 2 * win.out[0] <= g.h && 2 * win.out[1] <= g.w
    }

    /// (channel stride, position stride) of the output grid.
    fn out_strides(&self) -> (usize, usize) {
        match self.grid.format {
            DataFormat::ChannelsLast => (1, self.grid.c),
            DataFormat::ChannelsFirst => (self.win.positions(), 1),
        }
    }

    /// Calls `f(output offset of channel 0, input offset of channel 0 of each window
    /// cell inside the input)` for every output position, the cells in row-major
    /// order; the geometry is worked out once per position, not per channel.
    fn each_position(&self, mut f: impl FnMut(usize, &mut dyn FnMut(&mut dyn FnMut(usize)))) {
        let (sy, sx, _) = self.grid.strides();
        let (_, op) = self.out_strides();
        for oy in 0..self.win.out[0] {
            for ox in 0..self.win.out[1] {
                let mut cells = |g: &mut dyn FnMut(usize)| {
                    for ky in 0..self.win.k[0] {
                        for kx in 0..self.win.k[1] {
                            if let Some((iy, ix)) = self.win.source(&self.grid, oy, ox, ky, kx) {
                                g(iy * sy + ix * sx);
                            }
                        }
                    }
                };
                f((oy * self.win.out[1] + ox) * op, &mut cells);
            }
        }
    }

    /// Max pooling of one sample: `y` and the winning offsets `arg` (the first on ties).
    fn max_sample(&self, xs: &[f32], y: &mut [f32], arg: &mut [u32]) {
        let (c, (_, _, sc), (oc, _)) = (self.grid.c, self.grid.strides(), self.out_strides());
        if self.is_2x2() {
            max_2x2(xs, self.grid.w, c, self.win.out, y, arg);
            return;
        }
        if sc == 1 && oc == 1 {
            // channels_last: each cell's channels are contiguous, in the input and the
            // output; a branch-free select per channel lets the loop vectorise.
            self.each_position(|o, cells| {
                let (yo, ao) = (&mut y[o..o + c], &mut arg[o..o + c]);
                let mut first = true;
                cells(&mut |i| {
                    let src = &xs[i..i + c];
                    if first {
                        yo.copy_from_slice(src);
                        ao.iter_mut().enumerate().for_each(|(ch, a)| *a = (i + ch) as u32);
                        first = false;
                        return;
                    }
                    max_update(yo, ao, src, i as u32);
                });
            });
            return;
        }
        self.each_position(|o, cells| {
            let mut first = true;
            cells(&mut |i| {
                for ch in 0..c {
                    let (src, dst) = (i + ch * sc, o + ch * oc);
                    if first || xs[src] > y[dst] {
                        y[dst] = xs[src];
                        arg[dst] = src as u32;
                    }
                }
                first = false;
            });
        });
    }

    /// Average pooling of one sample over the window cells inside the input.
    fn avg_sample(&self, xs: &[f32], y: &mut [f32]) {
        let (c, (_, _, sc), (oc, _)) = (self.grid.c, self.grid.strides(), self.out_strides());
        self.each_position(|o, cells| {
            (0..c).for_each(|ch| y[o + ch * oc] = 0.0);
            let mut count = 0u32;
            cells(&mut |i| {
                count += 1;
                (0..c).for_each(|ch| y[o + ch * oc] += xs[i + ch * sc]);
            });
            (0..c).for_each(|ch| y[o + ch * oc] /= count as f32);
        });
    }

    /// The adjoint of [`Pool::avg_sample`]: each output's gradient shared equally
    /// among its cells, added into `d` (zeroed by the caller).
    fn avg_backward_sample(&self, g: &[f32], d: &mut [f32]) {
        let (c, (_, _, sc), (oc, _)) = (self.grid.c, self.grid.strides(), self.out_strides());
        self.each_position(|o, cells| {
            let mut count = 0u32;
            cells(&mut |_| count += 1);
            let inv = 1.0 / count as f32;
            cells(&mut |i| (0..c).for_each(|ch| d[i + ch * sc] += g[o + ch * oc] * inv));
        });
    }
}

impl Pool {
    /// Whether a step mask changes this kind: a global average over a sequence's
    /// steps (Keras 3's `GlobalAveragePooling1D` is the one pooling layer that
    /// supports masking).
    fn uses_mask(&self) -> bool {
        self.global && self.mode == PoolMode::Avg && self.grid.h == 1
    }

    /// The masked mean of one sample over its real steps (`keep[t]`); 0 where no
    /// step is real. Keras computes 0/0 (NaN) there; here a sample of padding
    /// only gives 0, as a recurrent layer gives its zero initial state for it,
    /// so outputs stay finite and no gradient flows.
    fn masked_avg(&self, xs: &[f32], y: &mut [f32], keep: &[bool]) {
        let (c, (_, sx, sc)) = (self.grid.c, self.grid.strides());
        y.fill(0.0);
        let mut count = 0u32;
        for (t, _) in keep.iter().enumerate().filter(|(_, &k)| k) {
            count += 1;
            (0..c).for_each(|ch| y[ch] += xs[t * sx + ch * sc]);
        }
        if count > 0 {
            let inv = 1.0 / count as f32;
            y.iter_mut().for_each(|v| *v *= inv);
        }
    }

    /// The adjoint of [`Pool::masked_avg`]: each real step gets `g / count`, a
    /// padded step nothing (`d` zeroed by the caller).
    fn masked_avg_backward(&self, g: &[f32], d: &mut [f32], keep: &[bool]) {
        let (c, (_, sx, sc)) = (self.grid.c, self.grid.strides());
        let count = keep.iter().filter(|&&k| k).count();
        if count == 0 {
            return;
        }
        let inv = 1.0 / count as f32;
        for (t, _) in keep.iter().enumerate().filter(|(_, &k)| k) {
            (0..c).for_each(|ch| d[t * sx + ch * sc] += g[ch] * inv);
        }
    }

    /// The forward pass, over the real steps of `self.mask` when `self.masked`.
    fn run(&mut self, x: MatRef<'_>) -> Result<()> {
        let in_len = self.grid.h * self.grid.w * self.grid.c;
        ensure_shape(x.cols == in_len, || format!("pooling expects inputs of {in_len} values per sample, got {}", x.cols))?;
        ensure_shape(in_len <= u32::MAX as usize, || format!("pooling supports at most {} values per sample, got {in_len}", u32::MAX))?;
        self.y.resize_rows(x.rows)?;
        self.rows = x.rows;
        let out_dim = self.out_dim;
        let mut y = std::mem::take(&mut self.y);
        match self.mode {
            _ if self.masked => {
                let (this, steps) = (&*self, self.grid.w);
                per_sample(y.as_mut_slice(), out_dim, |n, yo| this.masked_avg(x.row(n), yo, &this.mask.as_slice()[n * steps..(n + 1) * steps]));
            }
            PoolMode::Max => {
                let n = checked_size(x.rows, out_dim, "the pooling argmax")?;
                try_grow(&mut self.arg, n, "the pooling argmax")?;
                self.arg.resize(n, 0);
                let mut arg = std::mem::take(&mut self.arg);
                let this = &*self;
                let run = |n: usize, (yo, ao): (&mut [f32], &mut [u32])| this.max_sample(x.row(n), yo, ao);
                // Each sample writes its own rows of y and arg.
                if parallel_for(y.as_slice().len()) {
                    y.as_mut_slice().par_chunks_mut(out_dim).zip(arg.par_chunks_mut(out_dim)).enumerate().for_each(|(n, p)| run(n, p));
                } else {
                    y.as_mut_slice().chunks_mut(out_dim).zip(arg.chunks_mut(out_dim)).enumerate().for_each(|(n, p)| run(n, p));
                }
                self.arg = arg;
            }
            PoolMode::Avg => {
                let this = &*self;
                per_sample(y.as_mut_slice(), out_dim, |n, yo| this.avg_sample(x.row(n), yo));
            }
        }
        self.y = y;
        Ok(())
    }
}

impl LayerKind for Pool {
    fn out_dim(&self) -> usize {
        self.out_dim
    }

    fn params(&self) -> Vec<ParamInfo> {
        Vec::new()
    }

    /// A global pool over a sequence's steps (channels_last: one step is the `c`
    /// channels of a row of `[T, c]`) takes any number of steps, as Keras'.
    fn step_width(&self) -> Option<usize> {
        (self.global && self.grid.h == 1 && self.grid.format == DataFormat::ChannelsLast).then_some(self.grid.c)
    }

    /// The mask marks the first axis of `[timesteps, features]`; channels_first reads that axis as channels.
    fn mask_refusal(&self) -> Option<&'static str> {
        (self.uses_mask() && self.grid.format != DataFormat::ChannelsLast).then_some(
            "GlobalAvgPool1D (channels_first): the mask marks the first axis of [timesteps, features], which channels_first reads as its channels; use channels_last",
        )
    }

    fn set_steps(&mut self, steps: usize) -> Result<()> {
        ensure_config(steps > 0, || "a global pooling layer needs at least one step, got none".into())?;
        let grid = Grid { w: steps, ..self.grid };
        grid.len("GlobalPool1D")?;
        self.win = Window::new(&grid, 1, &[steps], &[1], &[1], &[0, 0], "GlobalPool1D")?;
        self.grid = grid;
        self.rows = 0;
        Ok(())
    }

    fn forward(&mut self, x: MatRef<'_>, _params: &[f32], _buffers: &[f32], _ctx: &Ctx) -> Result<()> {
        self.masked = false;
        self.run(x)
    }

    fn forward_masked(&mut self, x: MatRef<'_>, _params: &[f32], _buffers: &[f32], _ctx: &Ctx, mask: Option<&StepMask>) -> Result<()> {
        self.masked = false;
        if let Some(m) = mask.filter(|_| self.uses_mask()) {
            m.check("GlobalAvgPool1D", x.rows, self.grid.w)?;
            self.mask.copy_from(m)?;
            self.masked = true;
        }
        self.run(x)
    }

    fn output(&self) -> MatRef<'_> {
        self.y.view()
    }

    fn backward(&mut self, x: MatRef<'_>, _params: &[f32], _grads: &mut [f32], dy: &mut Matrix, dx: Option<&mut Matrix>) -> Result<()> {
        let in_len = self.grid.h * self.grid.w * self.grid.c;
        check_backward("pooling", x, dy, self.rows, in_len, self.out_dim)?;
        let Some(dx) = dx else { return Ok(()) };
        dx.reshape_for(self.rows, in_len)?;
        let out_dim = self.out_dim;
        let dys = dy.as_slice();
        let this = &*self;
        per_sample(dx.as_mut_slice(), in_len, |n, d| {
            d.fill(0.0);
            let g = &dys[n * out_dim..(n + 1) * out_dim];
            match this.mode {
                PoolMode::Max => {
                    for (v, &i) in g.iter().zip(&this.arg[n * out_dim..(n + 1) * out_dim]) {
                        d[i as usize] += v;
                    }
                }
                _ if this.masked => this.masked_avg_backward(g, d, &this.mask.as_slice()[n * this.grid.w..(n + 1) * this.grid.w]),
                PoolMode::Avg => this.avg_backward_sample(g, d),
            }
        });
        Ok(())
    }
}
