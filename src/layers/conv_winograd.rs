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

/// The fewest input channels for which the Winograd path is taken. Measured
/// against im2col (one `Conv2D(f, 3, same)` layer, b=128, 2 threads, CPU per
/// train step / predict): 8 channels to 32 filters 1.28x / 1.42x *slower*,
/// 16 to 32 or 64 even (train 0.9–1.0x, predict 1.03–1.35x slower), 32 to
/// 32 1.26x / 1.19x faster, 32 to 64 1.32x / 1.3x faster. Below it the
/// transforms' additions, which grow with `c + f`, weigh more than the
/// multiply-adds saved, which grow with `c · f`.
pub(super) const MIN_CHANNELS: usize = 32;

/// Transformed points per tile (4×4).
pub(super) const POINTS: usize = 16;

/// Tiles transformed and multiplied together: their transformed inputs and
/// products (`16 · TILE_BLOCK · channels` values each) stay in L2.
pub(super) const TILE_BLOCK: usize = 64;

/// Values from one point's block to the next in a `[16, TILE_BLOCK, n]`
/// buffer: one cache line more than the block, so that the 16 rows a tile
/// writes (or reads) are not a power of two apart and do not all fall into
/// the same L1 sets (they did: the input transform took 60% of the GEMMs' time).
fn point_stride(n: usize) -> usize {
    TILE_BLOCK * n + 16
}

/// `G`, the filter transform (4×3).
const G: [[f32; 3]; 4] = [[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]];

/// The filter transform's walk, shared by the forward and the flipped
/// filters: for each of the 16 points `(i, j)`, clears its `cf` values of
/// `out` and adds `G[i][ky]·G[j][kx]` times each nonzero-weighted kernel tap
/// `g` (`[c, f]`, the tap `(2-ky, 2-kx)` when `flipped`) through `add`.
fn for_points(weight: &[f32], cf: usize, out: &mut [f32], flipped: bool, add: impl Fn(&mut [f32], f32, &[f32])) {
    for (i, gi) in G.iter().enumerate() {
        for (j, gj) in G.iter().enumerate() {
            let point = &mut out[(i * 4 + j) * cf..][..cf];
            point.fill(0.0);
            for (ky, &gy) in gi.iter().enumerate() {
                for (kx, &gx) in gj.iter().enumerate() {
                    let s = gy * gx;
                    if s != 0.0 {
                        let tap = if flipped { (2 - ky) * 3 + (2 - kx) } else { ky * 3 + kx };
                        add(point, s, &weight[tap * cf..][..cf]);
                    }
                }
            }
        }
    }
}

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
    /// and at least `min_channels` input channels ([`MIN_CHANNELS`] but in tests).
    pub(super) fn plan(grid: &Grid, win: &Window, groups: usize, filters: usize, min_channels: usize) -> Result<Option<Winograd>> {
        if win.k != [3, 3] || win.stride != [1, 1] || win.dilation != [1, 1] || groups != 1 || grid.c < min_channels {
            return Ok(None);
        }
        // At stride 1 the output is `size + before + after - 2` long (Window::new).
        let after = |a: usize, size: usize| (win.out[a] + 2).checked_sub(size + win.pad_begin[a]);
        let pads = [win.pad_begin[0], after(0, grid.h).unwrap_or(usize::MAX), win.pad_begin[1], after(1, grid.w).unwrap_or(usize::MAX)];
        if pads.iter().any(|&p| p > 2) {
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
        POINTS * point_stride(channels)
    }

    /// Transforms the kernel `weight` (`[3, 3, c, f]`) into `u` (`[16, c, f]`).
    pub(super) fn transform_filters(&mut self, weight: &[f32]) {
        for_points(weight, self.fwd.c * self.fwd.oc, &mut self.u, false, |u, s, g| {
            for (a, &v) in u.iter_mut().zip(g) {
                *a += s * v;
            }
        });
    }

    /// Transforms the kernel `weight` flipped in space, its channels swapped
    /// (`g'[ky][kx][f][c] = g[2-ky][2-kx][c][f]`), into `ut` (`[16, f, c]`):
    /// the input gradient's filters.
    pub(super) fn transform_flipped(&mut self, weight: &[f32]) {
        let (c, f) = (self.fwd.c, self.fwd.oc);
        for_points(weight, c * f, &mut self.ut, true, |ut, s, g| {
            for (ci, row) in g.chunks_exact(f).enumerate() {
                for (fi, &v) in row.iter().enumerate() {
                    ut[fi * c + ci] += s * v;
                }
            }
        });
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
                input_transform(&input_cells(geom, x, t0 + ti, tile), c, ti, v);
            }
            for xi in 0..POINTS {
                let a = MatRef { rows: nt, cols: c, data: &v[xi * point_stride(c)..][..nt * c] };
                let b = MatRef { rows: c, cols: oc, data: &u[xi * c * oc..][..c * oc] };
                matmul(a, Op::N, b, Op::N, MatMut { rows: nt, cols: oc, data: &mut m[xi * point_stride(oc)..][..nt * oc] }, false)?;
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
                input_transform(&input_cells(geom, x, t0 + ti, tile), c, ti, v);
            }
            // The zeros past the output's edge (the tile scratch is free again).
            let zeros = &mut tile[..f];
            zeros.fill(0.0);
            for ti in 0..nt {
                output_grad_transform(geom, dz, t0 + ti, zeros, ti, m);
            }
            for xi in 0..POINTS {
                let a = MatRef { rows: nt, cols: c, data: &v[xi * point_stride(c)..][..nt * c] };
                let b = MatRef { rows: nt, cols: f, data: &m[xi * point_stride(f)..][..nt * f] };
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

/// The 16 cells of tile `t`'s 4×4 input block, each `c` channels: slices of
/// `x` itself for a channels_last input (the zero cells outside the grid
/// from `scratch`, which this zeroes), else copies gathered into `scratch`
/// (`[16, c]`).
fn input_cells<'a>(geom: &Geom, x: &'a [f32], t: usize, scratch: &'a mut [f32]) -> [&'a [f32]; POINTS] {
    let (s, ty, tx) = locate(geom, t);
    let c = geom.c;
    let xs = &x[s * geom.in_len()..][..geom.in_len()];
    let (rs, cs, chs) = geom.in_strides;
    let at = |p: usize| {
        let (iy, ix) = ((2 * ty + p / 4).wrapping_sub(geom.pad[0]), (2 * tx + p % 4).wrapping_sub(geom.pad[1]));
        (iy < geom.h && ix < geom.w).then_some(iy * rs + ix * cs)
    };
    if chs == 1 {
        let zeros = &mut scratch[..c];
        zeros.fill(0.0);
        let zeros: &'a [f32] = zeros;
        return std::array::from_fn(|p| at(p).map_or(zeros, |o| &xs[o..o + c]));
    }
    for (p, d) in scratch[..POINTS * c].chunks_exact_mut(c).enumerate() {
        match at(p) {
            Some(o) => d.iter_mut().enumerate().for_each(|(ch, a)| *a = xs[o + ch * chs]),
            None => d.fill(0.0),
        }
    }
    let scratch: &'a [f32] = scratch;
    std::array::from_fn(|p| &scratch[p * c..(p + 1) * c])
}

/// Channels per step of the transforms: one AVX-512 register.
const LANES: usize = 16;

/// Channels `ch0..ch0 + LANES` of `src` (fewer at the end, zero-filled).
/// The whole block is a fixed-size copy the compiler keeps in a register
/// (a slice of runtime length would go through `memmove`).
#[inline(always)]
fn load(src: &[f32], ch0: usize) -> [f32; LANES] {
    if let Some(block) = src.get(ch0..ch0 + LANES) {
        return block.try_into().expect("LANES values");
    }
    let mut a = [0.0; LANES];
    let n = src.len() - ch0;
    a[..n].copy_from_slice(&src[ch0..]);
    a
}

/// Writes `a` into channels `ch0..` of `dst` (as many as it has left).
#[inline(always)]
fn store(dst: &mut [f32], ch0: usize, a: &[f32; LANES]) {
    if let Some(block) = dst.get_mut(ch0..ch0 + LANES) {
        let block: &mut [f32; LANES] = block.try_into().expect("LANES values");
        *block = *a;
        return;
    }
    let n = dst.len() - ch0;
    dst[ch0..].copy_from_slice(&a[..n]);
}

/// `x ± y` lane by lane (written out so the compiler keeps them in registers).
#[inline(always)]
fn add(x: &[f32; LANES], y: &[f32; LANES]) -> [f32; LANES] {
    std::array::from_fn(|l| x[l] + y[l])
}

#[inline(always)]
fn sub(x: &[f32; LANES], y: &[f32; LANES]) -> [f32; LANES] {
    std::array::from_fn(|l| x[l] - y[l])
}

/// Row `ti` of each point's block of a `[16, TILE_BLOCK, n]` buffer.
fn point_rows(buf: &mut [f32], n: usize, ti: usize) -> [&mut [f32]; POINTS] {
    let mut rest = &mut buf[ti * n..];
    std::array::from_fn(|xi| {
        let (head, tail) = std::mem::take(&mut rest).split_at_mut(if xi + 1 < POINTS { point_stride(n) } else { n });
        rest = tail;
        &mut head[..n]
    })
}

/// `Bᵀ d B` of one tile's cells `d` into row `ti` of each point's block of
/// `v` (`[16, TILE_BLOCK, c]`), [`LANES`] channels at a time.
#[multiversion(targets("x86_64+avx512f+avx512bw+avx512vl+avx512dq", "x86_64+avx2+fma"))]
fn input_transform(d: &[&[f32]; POINTS], c: usize, ti: usize, v: &mut [f32]) {
    let out = point_rows(v, c, ti);
    for ch0 in (0..c).step_by(LANES) {
        // Rows: t = Bᵀ d, column by column.
        let mut t = [[[0.0f32; LANES]; 4]; 4];
        for j in 0..4 {
            let [d0, d1, d2, d3] = [0, 1, 2, 3].map(|i| load(d[i * 4 + j], ch0));
            t[0][j] = sub(&d0, &d2);
            t[1][j] = add(&d1, &d2);
            t[2][j] = sub(&d2, &d1);
            t[3][j] = sub(&d1, &d3);
        }
        // Columns: t B.
        for (i, [a0, a1, a2, a3]) in t.iter().enumerate() {
            store(out[i * 4], ch0, &sub(a0, a2));
            store(out[i * 4 + 1], ch0, &add(a1, a2));
            store(out[i * 4 + 2], ch0, &sub(a2, a1));
            store(out[i * 4 + 3], ch0, &sub(a1, a3));
        }
    }
}

/// `Aᵀ M A` of row `ti` of each point's block of `m` (`[16, TILE_BLOCK,
/// oc]`) into `y` (`[4, oc]`: the tile's 2×2 outputs, row-major).
#[multiversion(targets("x86_64+avx512f+avx512bw+avx512vl+avx512dq", "x86_64+avx2+fma"))]
fn output_transform(m: &[f32], oc: usize, ti: usize, y: &mut [f32]) {
    let pts: [&[f32]; POINTS] = std::array::from_fn(|xi| &m[xi * point_stride(oc) + ti * oc..][..oc]);
    let (y01, y23) = y[..4 * oc].split_at_mut(2 * oc);
    let (y0, y1) = y01.split_at_mut(oc);
    let (y2, y3) = y23.split_at_mut(oc);
    for ch0 in (0..oc).step_by(LANES) {
        // Columns: M A, per row i.
        let s: [[[f32; LANES]; 2]; 4] = std::array::from_fn(|i| {
            let [p0, p1, p2, p3] = [0, 1, 2, 3].map(|j| load(pts[i * 4 + j], ch0));
            [add(&add(&p0, &p1), &p2), sub(&sub(&p1, &p2), &p3)]
        });
        // Rows: Aᵀ (M A).
        store(y0, ch0, &add(&add(&s[0][0], &s[1][0]), &s[2][0]));
        store(y1, ch0, &add(&add(&s[0][1], &s[1][1]), &s[2][1]));
        store(y2, ch0, &sub(&sub(&s[1][0], &s[2][0]), &s[3][0]));
        store(y3, ch0, &sub(&sub(&s[1][1], &s[2][1]), &s[3][1]));
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

/// `A dY Aᵀ` of tile `t`'s output gradients (read from the channels_last
/// `dz`, zero past the grid's edge) into row `ti` of each point's block of
/// `m` (`[16, TILE_BLOCK, oc]`): the transpose of [`output_transform`].
fn output_grad_transform(geom: &Geom, dz: &[f32], t: usize, zeros: &[f32], ti: usize, m: &mut [f32]) {
    let (s, ty, tx) = locate(geom, t);
    let oc = geom.oc;
    let ds = &dz[s * geom.out_len()..][..geom.out_len()];
    let y: [&[f32]; 4] = std::array::from_fn(|ab| {
        let (oy, ox) = (2 * ty + ab / 2, 2 * tx + ab % 2);
        if oy < geom.oh && ox < geom.ow { &ds[(oy * geom.ow + ox) * oc..][..oc] } else { &zeros[..oc] }
    });
    grad_transform(&y, oc, ti, m);
}

/// See [`output_grad_transform`]: `y` holds the tile's four cells.
#[multiversion(targets("x86_64+avx512f+avx512bw+avx512vl+avx512dq", "x86_64+avx2+fma"))]
fn grad_transform(y: &[&[f32]; 4], oc: usize, ti: usize, m: &mut [f32]) {
    let out = point_rows(m, oc, ti);
    for ch0 in (0..oc).step_by(LANES) {
        let [y0, y1, y2, y3] = y.map(|r| load(r, ch0));
        // Rows of A dY: A = [[1, 0], [1, 1], [1, -1], [0, -1]].
        let zero = [0.0; LANES];
        let r = [[y0, y1], [add(&y0, &y2), add(&y1, &y3)], [sub(&y0, &y2), sub(&y1, &y3)], [sub(&zero, &y2), sub(&zero, &y3)]];
        // Columns: (A dY) Aᵀ.
        for (i, [a, b]) in r.iter().enumerate() {
            store(&mut *out[i * 4], ch0, a);
            store(&mut *out[i * 4 + 1], ch0, &add(a, b));
            store(&mut *out[i * 4 + 2], ch0, &sub(a, b));
            store(&mut *out[i * 4 + 3], ch0, &sub(&zero, b));
        }
    }
}
