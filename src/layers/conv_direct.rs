//! The direct convolution for layers with a small window (`kg` = window
//! cells × channels at most [`DIRECT_MAX_K`], one channel group): typically a
//! network's first layer, one or three input channels and a 3×3 window.
//!
//! Through im2col such a layer is a GEMM with an inner dimension of 9 or 27:
//! the microkernel loads and stores its output tile for a handful of
//! multiply-adds, and the patch matrix is written, packed and read again.
//! Here each sample is copied once into a zero-padded grid, and each output
//! row is summed straight from it: `z[r, :] = Σ_k padded[base(r) + off[k]] ·
//! W[k, :]`, the multiply-adds in the order of `k`, starting from zero, as the
//! GEMM sums them; the kernel gradient `dW[k, :] += padded[base(r) + off[k]]
//! · dz[r, :]` row by row (a different summation order from the GEMM's blocked
//! one: the tests compare both against the float64 definition). The input
//! gradient, when one is wanted, still takes the GEMM and col2im (`dz·Wᵀ`
//! needs no patch matrix).

use multiversion::multiversion;

use crate::error::{checked_size, Result};
use crate::layers::grid::{DataFormat, Grid, Window};

/// The largest window (cells × channels) the direct kernels take: beyond
/// it the GEMM's tiles are long enough to run well (and `W` stays small
/// enough for L1 here: `DIRECT_MAX_K` rows of the filters).
pub(super) const DIRECT_MAX_K: usize = 32;

/// The most kernel values (`kg × filters`) the direct kernels take, so that
/// the kernel and its gradient, read or updated for every output row, stay
/// in L1 (32 KB).
const DIRECT_MAX_W: usize = 8 * 1024;

/// Where the values of one output row's window lie in a sample's padded grid.
#[derive(Clone, Debug)]
pub(super) struct Direct {
    /// Padded grid: rows, columns (the span the windows reach), channels.
    hp: usize,
    wp: usize,
    c: usize,
    /// Offset of each of the `kg` window values, in im2col's (ky, kx, channel) order.
    offsets: Vec<usize>,
    /// Padded-grid offsets between neighbouring output rows and columns.
    row_step: usize,
    col_step: usize,
    /// Output grid.
    out: [usize; 2],
    pad_begin: [usize; 2],
}

impl Direct {
    /// The direct plan of a convolution, when it qualifies: one group, a
    /// window of at most [`DIRECT_MAX_K`] values, and a sample whose channels
    /// are its last axis (channels_last, or one channel in either layout).
    pub(super) fn plan(grid: &Grid, win: &Window, groups: usize, filters: usize) -> Result<Option<Direct>> {
        let kg = win.cells() * grid.c;
        let small = groups == 1 && kg <= DIRECT_MAX_K && kg * filters <= DIRECT_MAX_W;
        if !small || !(grid.format == DataFormat::ChannelsLast || grid.c == 1) {
            return Ok(None);
        }
        // The padded extent the windows reach: the last window's last cell, plus one.
        let reach = |a: usize| (win.out[a] - 1) * win.stride[a] + (win.k[a] - 1) * win.dilation[a] + 1;
        let (hp, wp) = (reach(0), reach(1));
        checked_size(checked_size(hp, wp, "Conv padded input")?, grid.c, "Conv padded input")?;
        let mut offsets = Vec::with_capacity(kg);
        for ky in 0..win.k[0] {
            for kx in 0..win.k[1] {
                for ch in 0..grid.c {
                    offsets.push((ky * win.dilation[0] * wp + kx * win.dilation[1]) * grid.c + ch);
                }
            }
        }
        Ok(Some(Direct {
            hp,
            wp,
            c: grid.c,
            offsets,
            row_step: win.stride[0] * wp * grid.c,
            col_step: win.stride[1] * grid.c,
            out: win.out,
            pad_begin: win.pad_begin,
        }))
    }

    /// Values of one padded sample.
    pub(super) fn padded_len(&self) -> usize {
        self.hp * self.wp * self.c
    }

    /// Copies one sample (`[h, w, c]`) into `padded` at the padding's offset,
    /// zero around it; the parts of the input no window reaches are left out.
    pub(super) fn pad(&self, grid: &Grid, x: &[f32], padded: &mut [f32]) {
        padded.fill(0.0);
        let c = self.c;
        let cols = grid.w.min(self.wp.saturating_sub(self.pad_begin[1]));
        for iy in 0..grid.h.min(self.hp.saturating_sub(self.pad_begin[0])) {
            let dst = ((iy + self.pad_begin[0]) * self.wp + self.pad_begin[1]) * c;
            padded[dst..dst + cols * c].copy_from_slice(&x[iy * grid.w * c..][..cols * c]);
        }
    }

    /// The padded-grid offset of output row `r`'s window.
    #[inline]
    fn base(&self, r: usize) -> usize {
        (r / self.out[1]) * self.row_step + (r % self.out[1]) * self.col_step
    }

    /// One sample's output rows without bias: `z` is `[positions, f]`.
    pub(super) fn forward(&self, padded: &[f32], weight: &[f32], f: usize, z: &mut [f32]) {
        forward_rows(self, padded, weight, f, z);
    }

    /// Adds one sample's share of the kernel gradient into `wgrad` (`[kg, f]`)
    /// from its output gradient `dz` (`[positions, f]`), and when `bias` is
    /// given its column sums into `bias`, row after row (the order of
    /// `col_sums`, so the bias gradient keeps its bits).
    pub(super) fn kernel_grad(&self, padded: &[f32], dz: &[f32], f: usize, wgrad: &mut [f32], bias: Option<&mut [f32]>) {
        kernel_grad_rows(self, padded, dz, f, wgrad, bias);
    }
}

/// Filters per accumulator block: one AVX-512 register (two AVX2 ones).
const LANES: usize = 16;

/// Output rows summed together in the forward pass: each value is a chain
/// of dependent multiply-adds, so one row's block at a time would wait on
/// the FMA latency; this many independent chains keep the units busy.
const ROWS: usize = 8;

/// Output-gradient rows taken together in the kernel gradient: each `wgrad`
/// value is loaded and stored once per this many rows instead of per row.
const GRAD_ROWS: usize = 4;

/// See [`Direct::forward`]. Blocks of [`ROWS`] rows × 32 or 16 filters sum
/// into local arrays the compiler keeps in registers (with AVX-512: 16 or 8
/// of them); the remaining rows and filters one row at a time. Each value is
/// `Σ_k` in order of `k` from zero, by fused multiply-adds, however it is
/// blocked.
#[multiversion(targets("x86_64+avx512f+avx512bw+avx512vl+avx512dq", "x86_64+avx2+fma"))]
fn forward_rows(d: &Direct, padded: &[f32], weight: &[f32], f: usize, z: &mut [f32]) {
    let kg = d.offsets.len();
    let weight = &weight[..kg * f];
    let rows = z.len() / f;
    // Two registers of filters per row where they fit (one broadcast of a
    // window value feeds two multiply-adds), then one, then the rest.
    let (pairs, whole) = (f - f % (2 * LANES), f - f % LANES);
    let mut r0 = 0;
    while r0 + ROWS <= rows {
        let windows: [&[f32]; ROWS] = std::array::from_fn(|i| &padded[d.base(r0 + i)..]);
        for j0 in (0..pairs).step_by(2 * LANES) {
            block::<{ 2 * LANES }>(&d.offsets, &windows, weight, f, j0, &mut z[r0 * f..]);
        }
        if whole > pairs {
            block::<LANES>(&d.offsets, &windows, weight, f, pairs, &mut z[r0 * f..]);
        }
        if whole < f {
            for i in 0..ROWS {
                row_range(d, padded, weight, f, r0 + i, whole, &mut z[(r0 + i) * f..(r0 + i + 1) * f]);
            }
        }
        r0 += ROWS;
    }
    for r in r0..rows {
        row_range(d, padded, weight, f, r, 0, &mut z[r * f..(r + 1) * f]);
    }
}

/// Filters `j0..j0 + W` of [`ROWS`] output rows (`z` starts at the first),
/// each row's window starting at its entry of `windows`: `ROWS × W` sums in
/// local arrays the compiler keeps in registers.
#[inline(always)]
fn block<const W: usize>(offsets: &[usize], windows: &[&[f32]; ROWS], weight: &[f32], f: usize, j0: usize, z: &mut [f32]) {
    let mut acc = [[0.0f32; W]; ROWS];
    for (k, &off) in offsets.iter().enumerate() {
        let w: &[f32; W] = weight[k * f + j0..][..W].try_into().expect("a block of W");
        for (a, win) in acc.iter_mut().zip(windows) {
            let p = win[off];
            for t in 0..W {
                a[t] = p.mul_add(w[t], a[t]);
            }
        }
    }
    for (i, a) in acc.iter().enumerate() {
        z[i * f + j0..][..W].copy_from_slice(a);
    }
}

/// Filters `j0..f` of output row `r` (`zr`, the whole row), one at a time
/// per window value, in the same order as the blocked sums.
#[inline(always)]
fn row_range(d: &Direct, padded: &[f32], weight: &[f32], f: usize, r: usize, j0: usize, zr: &mut [f32]) {
    let window = &padded[d.base(r)..];
    let rest = &mut zr[j0..];
    rest.fill(0.0);
    for (k, &off) in d.offsets.iter().enumerate() {
        let p = window[off];
        for (a, &w) in rest.iter_mut().zip(&weight[k * f + j0..(k + 1) * f]) {
            *a = p.mul_add(w, *a);
        }
    }
}

/// See [`Direct::kernel_grad`]: the rows added into the bias sums one by one
/// (`col_sums`' order), and each window value times its row added into its
/// row of `wgrad` (L1-resident), [`GRAD_ROWS`] rows per load and store.
#[multiversion(targets("x86_64+avx512f+avx512bw+avx512vl+avx512dq", "x86_64+avx2+fma"))]
fn kernel_grad_rows(d: &Direct, padded: &[f32], dz: &[f32], f: usize, wgrad: &mut [f32], bias: Option<&mut [f32]>) {
    let kg = d.offsets.len();
    let wgrad = &mut wgrad[..kg * f];
    if let Some(b) = bias {
        for dzr in dz.chunks_exact(f) {
            for (s, &g) in b.iter_mut().zip(dzr) {
                *s += g;
            }
        }
    }
    let rows = dz.len() / f;
    let mut r0 = 0;
    while r0 + GRAD_ROWS <= rows {
        let windows: [&[f32]; GRAD_ROWS] = std::array::from_fn(|i| &padded[d.base(r0 + i)..]);
        let grads: [&[f32]; GRAD_ROWS] = std::array::from_fn(|i| &dz[(r0 + i) * f..(r0 + i + 1) * f]);
        let whole = f - f % LANES;
        for (&off, acc) in d.offsets.iter().zip(wgrad.chunks_exact_mut(f)) {
            let p: [f32; GRAD_ROWS] = std::array::from_fn(|i| windows[i][off]);
            for j0 in (0..whole).step_by(LANES) {
                let a: &mut [f32; LANES] = (&mut acc[j0..j0 + LANES]).try_into().expect("a block of LANES");
                let mut v = *a;
                for (&pi, g) in p.iter().zip(&grads) {
                    let g: &[f32; LANES] = g[j0..j0 + LANES].try_into().expect("a block of LANES");
                    for t in 0..LANES {
                        v[t] = pi.mul_add(g[t], v[t]);
                    }
                }
                *a = v;
            }
            for j in whole..f {
                let mut v = acc[j];
                for (&pi, g) in p.iter().zip(&grads) {
                    v = pi.mul_add(g[j], v);
                }
                acc[j] = v;
            }
        }
        r0 += GRAD_ROWS;
    }
    for r in r0..rows {
        let (window, dzr) = (&padded[d.base(r)..], &dz[r * f..(r + 1) * f]);
        for (&off, acc) in d.offsets.iter().zip(wgrad.chunks_exact_mut(f)) {
            let p = window[off];
            for (a, &g) in acc.iter_mut().zip(dzr) {
                *a = p.mul_add(g, *a);
            }
        }
    }
}
