//! Winograd's minimal filtering F(2×2, 3×3) for 3×3, stride-1, undilated,
//! ungrouped convolutions with enough input channels (Lavin & Gray, "Fast
//! Algorithms for Convolutional Neural Networks", 2016).
//!
//! Each 2×2 block of outputs (a *tile*) is computed from the 4×4 block of
//! inputs under it: `Y = Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A`, summed over the input
//! channels. Per transformed point ξ (16 of them) the channel sum is one GEMM
//! `M[ξ] = V[ξ]·U[ξ]` (`[tiles, c]·[c, f]`): 16 multiply-adds per tile and
//! channel pair instead of im2col's 36, the rest additions in the transforms.
//! F(4×4, 3×3) would save more (36 for 144) but its transforms' constants
//! amplify float32 rounding about tenfold; F(2×2, 3×3)'s only divide by two.
//!
//! The same routine ([`Geom`], [`Winograd::conv_tiles`]) serves the forward
//! pass and the input gradient: for stride 1 the input gradient is the
//! convolution of the output gradient with the kernel flipped in space and
//! its channels swapped, padded by `2 - pad` on each side. The kernel
//! gradient is the transpose of the forward's products: per ξ, `dU[ξ] =
//! V[ξ]ᵀ·dM[ξ]` with `dM = A dY Aᵀ` per tile, summed over the batch, then
//! `dg = Gᵀ dU G`.
//!
//! Filters are transformed on every pass (once per forward and once per
//! backward): the weights change between steps, and the transform costs
//! 16·9 multiply-adds per (channel, filter) pair, nothing beside the GEMMs.

use multiversion::multiversion;

use crate::error::{checked_size, Result};
use crate::kernels::gemm::{matmul, Op};
use crate::layers::grid::{Grid, Window};
use crate::tensor::{MatMut, MatRef};

/// The fewest input channels for which the Winograd path is taken: below it
/// each GEMM's inner dimension is too short to run near the FMA peak and the
/// transforms' additions weigh more than the multiply-adds saved.
pub(super) const MIN_CHANNELS: usize = 8;

/// Transformed points per tile (4×4).
pub(super) const POINTS: usize = 16;

/// Tiles transformed and multiplied together: their transformed inputs and
/// products (`16 · TILE_BLOCK · channels` values each) stay in L2.
pub(super) const TILE_BLOCK: usize = 64;

/// `G`, the filter transform (4×3).
const G: [[f32; 3]; 4] = [[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]];

/// One stride-1 3×3 convolution as the Winograd routine sees it: an input
/// grid read through its strides, zero outside, and an output grid written
/// through its strides.
#[derive(Clone, Copy, Debug)]
pub(super) struct Geom {
    h: usize,
    w: usize,
    c: usize,
    /// (row, column, channel) strides of the input within a sample.
    in_strides: (usize, usize, usize),
    /// Padding before the rows and the columns.
    pad: [usize; 2],
    oh: usize,
    ow: usize,
    oc: usize,
    /// (row, column, channel) strides of the output within a sample.
    out_strides: (usize, usize, usize),
}

impl Geom {
    fn tile_cols(&self) -> usize {
        self.ow.div_ceil(2)
    }

    /// Tiles per sample.
    pub(super) fn tiles(&self) -> usize {
        self.oh.div_ceil(2) * self.tile_cols()
    }

    fn in_len(&self) -> usize {
        self.h * self.w * self.c
    }

    fn out_len(&self) -> usize {
        self.oh * self.ow * self.oc
    }
}

/// The plan of a convolution the Winograd path runs; see the module docs.
#[derive(Clone, Debug)]
pub(super) struct Winograd {
    /// The forward pass: the layer's input to its channels_last output.
    pub(super) fwd: Geom,
    /// The input gradient: the channels_last output gradient to the input's layout.
    pub(super) bwd: Geom,
    /// `U = G g Gᵀ`, `[16, c, f]`, the forward's transformed filters.
    pub(super) u: Vec<f32>,
    /// The flipped kernel's, `[16, f, c]`, for the input gradient.
    pub(super) ut: Vec<f32>,
}

impl Winograd {
    /// The Winograd plan of a convolution, when it qualifies: a 3×3 window,
    /// stride 1, dilation 1, one group, padding of at most 2 on every side,
    /// and at least [`MIN_CHANNELS`] input channels.
    pub(super) fn plan(grid: &Grid, win: &Window, pads: &[usize], groups: usize, filters: usize) -> Result<Option<Winograd>> {
        let fits = win.k == [3, 3] && win.stride == [1, 1] && win.dilation == [1, 1] && groups == 1 && grid.c >= MIN_CHANNELS && pads.len() == 4 && pads.iter().all(|&p| p <= 2);
        if !fits {
            return Ok(None);
        }
        let (c, f) = (grid.c, filters);
        let per_point = checked_size(c, f, "Conv Winograd filters")?;
        let len = checked_size(POINTS, per_point, "Conv Winograd filters")?;
        let [oh, ow] = win.out;
        let fwd = Geom { h: grid.h, w: grid.w, c, in_strides: grid.strides(), pad: win.pad_begin, oh, ow, oc: f, out_strides: (ow * f, f, 1) };
        let out_grid = Grid { h: grid.h, w: grid.w, c, format: grid.format };
        let bwd = Geom {
            h: oh,
            w: ow,
            c: f,
            in_strides: (ow * f, f, 1),
            pad: [2 - pads[0], 2 - pads[2]],
            oh: grid.h,
            ow: grid.w,
            oc: c,
            out_strides: out_grid.strides(),
        };
        let mut u = Vec::new();
        crate::error::try_grow(&mut u, len, "the Conv Winograd filters")?;
        u.resize(len, 0.0);
        Ok(Some(Winograd { fwd, bwd, ut: u.clone(), u }))
    }

    /// Values of one block's transformed inputs, or products, for `channels`.
    pub(super) fn block_len(channels: usize) -> usize {
        POINTS * TILE_BLOCK * channels
    }

    /// Transforms the kernel `weight` (`[3, 3, c, f]`) into `u` (`[16, c, f]`).
    pub(super) fn transform_filters(&mut self, weight: &[f32]) {
        let (c, f) = (self.fwd.c, self.fwd.oc);
        let cf = c * f;
        for i in 0..4 {
            for j in 0..4 {
                let u = &mut self.u[(i * 4 + j) * cf..][..cf];
                u.fill(0.0);
                for ky in 0..3 {
                    for kx in 0..3 {
                        let s = G[i][ky] * G[j][kx];
                        if s != 0.0 {
                            for (a, &g) in u.iter_mut().zip(&weight[(ky * 3 + kx) * cf..][..cf]) {
                                *a += s * g;
                            }
                        }
                    }
                }
            }
        }
    }

    /// Transforms the kernel `weight` flipped in space, its channels swapped
    /// (`g'[ky][kx][f][c] = g[2-ky][2-kx][c][f]`), into `ut` (`[16, f, c]`):
    /// the input gradient's filters.
    pub(super) fn transform_flipped(&mut self, weight: &[f32]) {
        let (c, f) = (self.fwd.c, self.fwd.oc);
        let cf = c * f;
        for i in 0..4 {
            for j in 0..4 {
                let ut = &mut self.ut[(i * 4 + j) * cf..][..cf];
                ut.fill(0.0);
                for ky in 0..3 {
                    for kx in 0..3 {
                        let s = G[i][ky] * G[j][kx];
                        if s == 0.0 {
                            continue;
                        }
                        let g = &weight[((2 - ky) * 3 + (2 - kx)) * cf..][..cf];
                        for (ci, row) in g.chunks_exact(f).enumerate() {
                            for (fi, &v) in row.iter().enumerate() {
                                ut[fi * c + ci] += s * v;
                            }
                        }
                    }
                }
            }
        }
    }

    /// The convolution `geom` of `samples` samples (`x`, each `geom.in_len()`
    /// values) with the transformed filters `u` (`[16, c, oc]`) into `out`
    /// (each sample `geom.out_len()` values, every value written), block
    /// by block of [`TILE_BLOCK`] tiles. `v`, `m` and `tile` are scratch of
    /// at least `block_len(c)`, `block_len(oc)` and `16 · max(c, oc)` values.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn conv_tiles(geom: &Geom, u: &[f32], x: &[f32], samples: usize, v: &mut [f32], m: &mut [f32], tile: &mut [f32], out: &mut [f32]) -> Result<()> {
        let (c, oc) = (geom.c, geom.oc);
        let total = samples * geom.tiles();
        let mut t0 = 0;
        while t0 < total {
            let nt = (total - t0).min(TILE_BLOCK);
            for ti in 0..nt {
                gather_input(geom, x, t0 + ti, &mut tile[..POINTS * c]);
                input_transform(&tile[..POINTS * c], c, ti, v);
            }
            for xi in 0..POINTS {
                let a = MatRef { rows: nt, cols: c, data: &v[xi * TILE_BLOCK * c..][..nt * c] };
                let b = MatRef { rows: c, cols: oc, data: &u[xi * c * oc..][..c * oc] };
                matmul(a, Op::N, b, Op::N, MatMut { rows: nt, cols: oc, data: &mut m[xi * TILE_BLOCK * oc..][..nt * oc] }, false)?;
            }
            for ti in 0..nt {
                output_transform(m, oc, ti, &mut tile[..4 * oc]);
                scatter_output(geom, &tile[..4 * oc], t0 + ti, out);
            }
            t0 += nt;
        }
        Ok(())
    }

    /// Adds the kernel gradient's transformed share `dU[ξ] += V[ξ]ᵀ·dM[ξ]`
    /// (`du`: `[16, c, f]`) of `samples` samples: their inputs `x` and
    /// channels_last output gradients `dz`, block by block. `accumulate`
    /// false overwrites `du` first. Scratch as [`Winograd::conv_tiles`].
    #[allow(clippy::too_many_arguments)]
    pub(super) fn kernel_grad_tiles(geom: &Geom, x: &[f32], dz: &[f32], samples: usize, v: &mut [f32], m: &mut [f32], tile: &mut [f32], du: &mut [f32], accumulate: bool) -> Result<()> {
        let (c, f) = (geom.c, geom.oc);
        let total = samples * geom.tiles();
        let mut t0 = 0;
        let mut first = !accumulate;
        while t0 < total {
            let nt = (total - t0).min(TILE_BLOCK);
            for ti in 0..nt {
                gather_input(geom, x, t0 + ti, &mut tile[..POINTS * c]);
                input_transform(&tile[..POINTS * c], c, ti, v);
                gather_output_grad(geom, dz, t0 + ti, &mut tile[..4 * f]);
                output_grad_transform(&tile[..4 * f], f, ti, m);
            }
            for xi in 0..POINTS {
                let a = MatRef { rows: nt, cols: c, data: &v[xi * TILE_BLOCK * c..][..nt * c] };
                let b = MatRef { rows: nt, cols: f, data: &m[xi * TILE_BLOCK * f..][..nt * f] };
                matmul(a, Op::T, b, Op::N, MatMut { rows: c, cols: f, data: &mut du[xi * c * f..][..c * f] }, !first)?;
            }
            first = false;
            t0 += nt;
        }
        Ok(())
    }

    /// The kernel gradient `dg = Gᵀ dU G` (`[3, 3, c, f]`) of its transformed
    /// sum `du` (`[16, c, f]`), written into `gw`.
    pub(super) fn kernel_grad_from(&self, du: &[f32], gw: &mut [f32]) {
        let cf = self.fwd.c * self.fwd.oc;
        for ky in 0..3 {
            for kx in 0..3 {
                let g = &mut gw[(ky * 3 + kx) * cf..][..cf];
                g.fill(0.0);
                for i in 0..4 {
                    for j in 0..4 {
                        let s = G[i][ky] * G[j][kx];
                        if s != 0.0 {
                            for (a, &d) in g.iter_mut().zip(&du[(i * 4 + j) * cf..][..cf]) {
                                *a += s * d;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The sample, tile row and tile column of tile `t` of a chunk.
#[inline]
fn locate(geom: &Geom, t: usize) -> (usize, usize, usize) {
    let (per, cols) = (geom.tiles(), geom.tile_cols());
    (t / per, (t % per) / cols, (t % per) % cols)
}

/// Copies tile `t`'s 4×4 input block into `d` (`[16, c]`), zero outside the grid.
fn gather_input(geom: &Geom, x: &[f32], t: usize, d: &mut [f32]) {
    let (s, ty, tx) = locate(geom, t);
    let c = geom.c;
    let xs = &x[s * geom.in_len()..][..geom.in_len()];
    let (rs, cs, chs) = geom.in_strides;
    for i in 0..4 {
        let iy = (2 * ty + i).wrapping_sub(geom.pad[0]);
        for j in 0..4 {
            let ix = (2 * tx + j).wrapping_sub(geom.pad[1]);
            let dst = &mut d[(i * 4 + j) * c..][..c];
            if iy >= geom.h || ix >= geom.w {
                dst.fill(0.0);
            } else if chs == 1 {
                dst.copy_from_slice(&xs[iy * rs + ix * cs..][..c]);
            } else {
                for (ch, a) in dst.iter_mut().enumerate() {
                    *a = xs[iy * rs + ix * cs + ch * chs];
                }
            }
        }
    }
}

/// `Bᵀ d B` of one tile's block `d` (`[16, c]`) into row `ti` of each
/// point's block of `v` (`[16, TILE_BLOCK, c]`).
#[multiversion(targets("x86_64+avx512f+avx512bw+avx512vl+avx512dq", "x86_64+avx2+fma"))]
fn input_transform(d: &[f32], c: usize, ti: usize, v: &mut [f32]) {
    let row = |p: usize| &d[p * c..(p + 1) * c];
    let mut t = [[0.0f32; 4]; 4];
    let out: [&mut [f32]; POINTS] = {
        let mut rest = &mut v[ti * c..];
        std::array::from_fn(|xi| {
            let (head, tail) = std::mem::take(&mut rest).split_at_mut(if xi + 1 < POINTS { TILE_BLOCK * c } else { c });
            rest = tail;
            &mut head[..c]
        })
    };
    let rows: [&[f32]; POINTS] = std::array::from_fn(row);
    for ch in 0..c {
        // Rows: Bᵀ d.
        for j in 0..4 {
            let (d0, d1, d2, d3) = (rows[j][ch], rows[4 + j][ch], rows[8 + j][ch], rows[12 + j][ch]);
            t[0][j] = d0 - d2;
            t[1][j] = d1 + d2;
            t[2][j] = d2 - d1;
            t[3][j] = d1 - d3;
        }
        // Columns: (Bᵀ d) B.
        for i in 0..4 {
            let [a0, a1, a2, a3] = t[i];
            out[i * 4][ch] = a0 - a2;
            out[i * 4 + 1][ch] = a1 + a2;
            out[i * 4 + 2][ch] = a2 - a1;
            out[i * 4 + 3][ch] = a1 - a3;
        }
    }
}

/// `Aᵀ M A` of row `ti` of each point's block of `m` (`[16, TILE_BLOCK,
/// oc]`) into `y` (`[4, oc]`: the tile's 2×2 outputs, row-major).
#[multiversion(targets("x86_64+avx512f+avx512bw+avx512vl+avx512dq", "x86_64+avx2+fma"))]
fn output_transform(m: &[f32], oc: usize, ti: usize, y: &mut [f32]) {
    let pts: [&[f32]; POINTS] = std::array::from_fn(|xi| &m[(xi * TILE_BLOCK + ti) * oc..][..oc]);
    let (y01, y23) = y.split_at_mut(2 * oc);
    let (y0, y1) = y01.split_at_mut(oc);
    let (y2, y3) = y23.split_at_mut(oc);
    for ch in 0..oc {
        let p = |i: usize, j: usize| pts[i * 4 + j][ch];
        // Columns: M A, per row i.
        let mut s = [[0.0f32; 2]; 4];
        for (i, si) in s.iter_mut().enumerate() {
            *si = [p(i, 0) + p(i, 1) + p(i, 2), p(i, 1) - p(i, 2) - p(i, 3)];
        }
        // Rows: Aᵀ (M A).
        y0[ch] = s[0][0] + s[1][0] + s[2][0];
        y1[ch] = s[0][1] + s[1][1] + s[2][1];
        y2[ch] = s[1][0] - s[2][0] - s[3][0];
        y3[ch] = s[1][1] - s[2][1] - s[3][1];
    }
}

/// Writes tile `t`'s outputs `y` (`[4, oc]`) into its sample of `out`,
/// leaving out the cells past the grid's last row or column.
fn scatter_output(geom: &Geom, y: &[f32], t: usize, out: &mut [f32]) {
    let (s, ty, tx) = locate(geom, t);
    let oc = geom.oc;
    let os = &mut out[s * geom.out_len()..][..geom.out_len()];
    let (rs, cs, chs) = geom.out_strides;
    for a in 0..2 {
        let oy = 2 * ty + a;
        for b in 0..2 {
            let ox = 2 * tx + b;
            if oy >= geom.oh || ox >= geom.ow {
                continue;
            }
            let src = &y[(a * 2 + b) * oc..][..oc];
            if chs == 1 {
                os[oy * rs + ox * cs..][..oc].copy_from_slice(src);
            } else {
                for (ch, &v) in src.iter().enumerate() {
                    os[oy * rs + ox * cs + ch * chs] = v;
                }
            }
        }
    }
}

/// Copies tile `t`'s 2×2 output gradients (channels_last `dz`) into `y`
/// (`[4, oc]`), zero past the grid's edge.
fn gather_output_grad(geom: &Geom, dz: &[f32], t: usize, y: &mut [f32]) {
    let (s, ty, tx) = locate(geom, t);
    let oc = geom.oc;
    let ds = &dz[s * geom.out_len()..][..geom.out_len()];
    for a in 0..2 {
        let oy = 2 * ty + a;
        for b in 0..2 {
            let ox = 2 * tx + b;
            let dst = &mut y[(a * 2 + b) * oc..][..oc];
            if oy >= geom.oh || ox >= geom.ow {
                dst.fill(0.0);
            } else {
                dst.copy_from_slice(&ds[(oy * geom.ow + ox) * oc..][..oc]);
            }
        }
    }
}

/// `A dY Aᵀ` of one tile's output gradients `y` (`[4, oc]`) into row `ti`
/// of each point's block of `m` (`[16, TILE_BLOCK, oc]`): the transpose of
/// [`output_transform`].
#[multiversion(targets("x86_64+avx512f+avx512bw+avx512vl+avx512dq", "x86_64+avx2+fma"))]
fn output_grad_transform(y: &[f32], oc: usize, ti: usize, m: &mut [f32]) {
    let out: [&mut [f32]; POINTS] = {
        let mut rest = &mut m[ti * oc..];
        std::array::from_fn(|xi| {
            let (head, tail) = std::mem::take(&mut rest).split_at_mut(if xi + 1 < POINTS { TILE_BLOCK * oc } else { oc });
            rest = tail;
            &mut head[..oc]
        })
    };
    let (y0, y1, y2, y3) = (&y[..oc], &y[oc..2 * oc], &y[2 * oc..3 * oc], &y[3 * oc..4 * oc]);
    for ch in 0..oc {
        // Rows of A dY: A = [[1, 0], [1, 1], [1, -1], [0, -1]].
        let r = [[y0[ch], y1[ch]], [y0[ch] + y2[ch], y1[ch] + y3[ch]], [y0[ch] - y2[ch], y1[ch] - y3[ch]], [-y2[ch], -y3[ch]]];
        // Columns: (A dY) Aᵀ.
        for (i, [a, b]) in r.into_iter().enumerate() {
            out[i * 4][ch] = a;
            out[i * 4 + 1][ch] = a + b;
            out[i * 4 + 2][ch] = a - b;
            out[i * 4 + 3][ch] = -b;
        }
    }
}
