//! Max and average pooling over sequences and images, windowed or global.
//!
//! Max pooling records, per output value, the input offset that won (its
//! argmax, the first on ties), and the backward pass routes the gradient
//! there. Average pooling divides by the number of window cells inside the
//! input (padding is not counted, as Keras' "same" padding does). A global
//! pool is the window covering the whole grid: `[1, 1, c]` and `[c, 1, 1]` are
//! both the `c` values the core stores, whatever the layout.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{checked_size, ensure_config, ensure_shape, try_grow, Result};
use crate::kernels::parallel_for;
use crate::layers::grid::{per_sample, DataFormat, Grid, Window};
use crate::layers::kind::{check_backward, BuildLayer};
use crate::layers::{Alloc, Ctx, LayerKind, ParamInfo};
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
        ensure_config(!self.global || win.out == [1, 1], || format!("a global {kind} must cover its whole input {:?}", self.input))?;
        let out_dim = checked_size(win.positions(), grid.c, kind)?;
        Ok(Pool { mode: self.mode, grid, win, out_dim, rows: 0, y: Matrix::zeros(0, out_dim), arg: Vec::new() })
    }
}

/// A built pooling layer.
#[derive(Clone, Debug)]
pub struct Pool {
    mode: PoolMode,
    grid: Grid,
    win: Window,
    out_dim: usize,
    rows: usize,
    y: Matrix,
    /// Max pooling: the winning input offset (within its sample) per output value.
    arg: Vec<u32>,
}

impl Pool {
    /// Offset of output `(oy, ox, c)` within a sample of the output grid.
    fn out_offset(&self, oy: usize, ox: usize, c: usize) -> usize {
        match self.grid.format {
            DataFormat::ChannelsLast => (oy * self.win.out[1] + ox) * self.grid.c + c,
            DataFormat::ChannelsFirst => c * self.win.positions() + oy * self.win.out[1] + ox,
        }
    }

    /// Calls `f(output offset, cells inside the input, input offsets of its
    /// window)` for every output value.
    fn each_window(&self, mut f: impl FnMut(usize, usize, &mut dyn Iterator<Item = usize>)) {
        let (sy, sx, sc) = self.grid.strides();
        for oy in 0..self.win.out[0] {
            for ox in 0..self.win.out[1] {
                for c in 0..self.grid.c {
                    let mut cells = (0..self.win.k[0]).flat_map(|ky| (0..self.win.k[1]).map(move |kx| (ky, kx))).filter_map(|(ky, kx)| self.win.source(&self.grid, oy, ox, ky, kx)).map(|(iy, ix)| iy * sy + ix * sx + c * sc);
                    let count = cells.clone().count();
                    f(self.out_offset(oy, ox, c), count, &mut cells);
                }
            }
        }
    }
}

impl LayerKind for Pool {
    fn out_dim(&self) -> usize {
        self.out_dim
    }

    fn params(&self) -> Vec<ParamInfo> {
        Vec::new()
    }

    fn forward(&mut self, x: MatRef<'_>, _params: &[f32], _buffers: &[f32], _ctx: &Ctx) -> Result<()> {
        let in_len = self.grid.h * self.grid.w * self.grid.c;
        ensure_shape(x.cols == in_len, || format!("pooling expects inputs of {in_len} values per sample, got {}", x.cols))?;
        ensure_shape(in_len <= u32::MAX as usize, || format!("pooling supports at most {} values per sample, got {in_len}", u32::MAX))?;
        self.y.resize_rows(x.rows)?;
        self.rows = x.rows;
        let out_dim = self.out_dim;
        let mut y = std::mem::take(&mut self.y);
        match self.mode {
            PoolMode::Max => {
                let n = checked_size(x.rows, out_dim, "the pooling argmax")?;
                try_grow(&mut self.arg, n, "the pooling argmax")?;
                self.arg.resize(n, 0);
                let mut arg = std::mem::take(&mut self.arg);
                let this = &*self;
                let run = |n: usize, (yo, ao): (&mut [f32], &mut [u32])| {
                    let xs = x.row(n);
                    this.each_window(|o, _, cells| {
                        let (mut best, mut at) = (f32::NEG_INFINITY, u32::MAX);
                        for i in cells {
                            if at == u32::MAX || xs[i] > best {
                                best = xs[i];
                                at = i as u32;
                            }
                        }
                        yo[o] = best;
                        ao[o] = at;
                    });
                };
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
                per_sample(y.as_mut_slice(), out_dim, |n, yo| {
                    let xs = x.row(n);
                    this.each_window(|o, count, cells| {
                        let sum: f32 = cells.map(|i| xs[i]).sum();
                        yo[o] = sum / count as f32;
                    });
                });
            }
        }
        self.y = y;
        Ok(())
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
        match self.mode {
            PoolMode::Max => {
                let arg = &self.arg;
                per_sample(dx.as_mut_slice(), in_len, |n, d| {
                    d.fill(0.0);
                    for (g, &i) in dys[n * out_dim..(n + 1) * out_dim].iter().zip(&arg[n * out_dim..(n + 1) * out_dim]) {
                        d[i as usize] += g;
                    }
                });
            }
            PoolMode::Avg => {
                let this = &*self;
                per_sample(dx.as_mut_slice(), in_len, |n, d| {
                    d.fill(0.0);
                    let g = &dys[n * out_dim..(n + 1) * out_dim];
                    this.each_window(|o, count, cells| {
                        let share = g[o] / count as f32;
                        cells.for_each(|i| d[i] += share);
                    });
                });
            }
        }
        Ok(())
    }
}
