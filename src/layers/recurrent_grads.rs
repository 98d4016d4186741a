//! The weight gradients of a recurrent layer's backward pass, summed chunk by
//! chunk of steps (recurrent.rs runs the chunks): how many steps a chunk
//! holds, and per chunk the products `[dW_ih | db_ih] += d_inᵀ·[x | 1]` and
//! `dW_hh += d_recᵀ·h_{t-1}`.
//!
//! The batch is cut into a fixed number of row groups ([`weight_groups`],
//! from the batch size alone), each of which sums its own rows' products
//! over all chunks into a partial gradient of its own; the partials are added
//! in group order at the end ([`finish`]). The groups run in parallel, each
//! product on one thread when there are as many groups as threads: on two
//! threads each thread then reads the gate gradients, inputs and states of
//! the batch half its own time loop wrote (recurrent_pass.rs splits the
//! batch at the same row), with no fork inside the products and no right
//! operand packed by one thread while the other waits. The sums depend on the
//! groups only, never on the thread count, so results stay bit-identical
//! whatever the threads.

use crate::error::Result;
use crate::kernels::gemm::{matmul_strided, Op};
use crate::kernels::{available_threads, on_this_thread};
#[cfg(doc)]
use crate::layers::recurrent_cells::Cell;
use crate::layers::recurrent_pass::{cut, cut_ref, in_shares, Rows};
use crate::tensor::{MatMut, MatRef};

/// The processing steps a backward chunk holds: all of them while the gate
/// gradients of the whole pass (`[n·T, grad_width]`) take at most 2 MiB
/// (they then stay in cache anyway, and one chunk needs no meeting point and
/// no copy of the states), else as many as keep a chunk's within 1 MiB, so
/// that its weight-gradient products read them from cache. Depends on the
/// batch and the layer only, never on the thread count (the chunks set the
/// order in which the weight gradients are summed).
pub(super) fn chunk_steps(n: usize, grad_width: usize, t: usize) -> usize {
    const WHOLE_BYTES: usize = 2 << 20;
    const CHUNK_BYTES: usize = 1 << 20;
    let per_step = (n * grad_width * std::mem::size_of::<f32>()).max(1);
    if per_step.saturating_mul(t) <= WHOLE_BYTES {
        return t;
    }
    (CHUNK_BYTES / per_step).clamp(1, t)
}

/// How many row groups sum the weight gradients of a batch of `n` samples
/// apart (see the module docs): two from 16 samples up (each group's
/// products keep a depth of at least 8 rows per step), else one. Never
/// depends on the thread count: the groups set the order of the sums.
pub(super) fn weight_groups(n: usize) -> usize {
    if n >= 16 {
        2
    } else {
        1
    }
}

/// The sizes one chunk's weight-gradient products run with: the layer's
/// `(n, T, F, units)`, the gate-gradient row width `dw` and the column of the
/// recurrent-side gradients `rec_at` (see [`Cell::grad_width`]), `G·units`,
/// the chunk's first input time and length, and whether it is the first
/// chunk (its products overwrite the partials).
#[derive(Clone, Copy, Debug)]
pub(super) struct ChunkShape {
    pub n: usize,
    pub t: usize,
    pub f: usize,
    pub h: usize,
    pub dw: usize,
    pub rec_at: usize,
    pub gh: usize,
    pub t0: usize,
    pub len: usize,
    pub first: bool,
}

/// The buffers of some consecutive row groups: read the layer input `x`
/// `[n, T·F]` and states `hs` `[n·T, units]` (whole, indexed from sample
/// `s0`) and the chunk's gate gradients `d_in` of the groups' samples;
/// written the staging buffers `x_one` and (chunks shorter than `T`)
/// `hs_chunk` of their samples, and per group its partial `[dW_ih | db]`
/// (`ih`, `G·units × (F + 1)` floats each) and `dW_hh` (`hh`, `G·units ×
/// units` each).
pub(super) struct GroupRows<'a> {
    /// The first group, how many this piece holds, and how many the batch has.
    pub g0: usize,
    pub groups: usize,
    pub total: usize,
    pub x: &'a [f32],
    pub hs: &'a [f32],
    pub d_in: &'a [f32],
    pub x_one: &'a mut [f32],
    pub hs_chunk: &'a mut [f32],
    pub ih: &'a mut [f32],
    pub hh: &'a mut [f32],
    pub shape: ChunkShape,
}

impl GroupRows<'_> {
    /// The first sample of group `g` (groups split the batch as evenly as
    /// recurrent_pass.rs splits it into shares).
    fn sample(&self, g: usize) -> usize {
        self.shape.n * g / self.total
    }
}

impl Rows for GroupRows<'_> {
    fn rows(&self) -> usize {
        self.groups
    }

    fn split(self, at: usize) -> (Self, Self) {
        let (s0, s_mid, s_end) = (self.sample(self.g0), self.sample(self.g0 + at), self.sample(self.g0 + self.groups));
        // A piece of two or more groups holds at least 16 samples.
        let (samples, left) = (s_end - s0, s_mid - s0);
        let (d_in, d_in2) = cut_ref(self.d_in, samples, left);
        let (x_one, x_one2) = cut(self.x_one, samples, left);
        let (hs_chunk, hs_chunk2) = cut(self.hs_chunk, samples, left);
        let (ih, ih2) = cut(self.ih, self.groups, at);
        let (hh, hh2) = cut(self.hh, self.groups, at);
        let (x, hs, shape, total) = (self.x, self.hs, self.shape, self.total);
        (
            GroupRows { g0: self.g0, groups: at, total, x, hs, d_in, x_one, hs_chunk, ih, hh, shape },
            GroupRows { g0: self.g0 + at, groups: self.groups - at, total, x, hs, d_in: d_in2, x_one: x_one2, hs_chunk: hs_chunk2, ih: ih2, hh: hh2, shape },
        )
    }
}

/// One chunk's weight-gradient products, each row group adding its own rows'
/// to its partials (see the module docs).
pub(super) fn chunk_products(rows: GroupRows<'_>) -> Result<()> {
    let parts = rows.groups;
    let alone = parts >= available_threads();
    in_shares(rows, parts, &|g| if alone { on_this_thread(|| group_products(g)) } else { group_products(g) })
}

/// The products of one group (a piece of one group: see [`in_shares`]).
fn group_products(r: GroupRows<'_>) -> Result<()> {
    let ChunkShape { h, dw, rec_at, gh, len, first, .. } = r.shape;
    let (s0, s1) = (r.sample(r.g0), r.sample(r.g0 + 1));
    let (xs, hc) = stage_chunk(r.x, r.hs, &r.shape, s0..s1, r.x_one, r.hs_chunk);
    let rows = (s1 - s0) * len;
    let d_in = MatRef { rows, cols: gh, data: &r.d_in[..rows * dw] };
    ih_product(d_in, dw, xs, r.ih, !first)?;
    // The GRU's recurrent-side gradients are the columns from `rec_at`.
    let d_rec = MatRef { rows, cols: gh, data: &r.d_in[rec_at..rows * dw] };
    matmul_strided(d_rec, Op::T, dw, hc, Op::N, h, MatMut { rows: gh, cols: h, data: &mut r.hh[..gh * h] }, !first)
}

/// `[dW_ih | db_ih] (+)= d_inᵀ·[x | 1]` (`[G·units, F + 1]`) over one
/// group's rows of a chunk, into `out` (read by [`finish`]): `x_one` is the
/// input with a column of ones appended, so the product's last column sums
/// the input-side gate gradients (the bias gradient, at no cost where the
/// column falls in a microkernel tile's padding). `d_in`'s rows lie `d_ld`
/// apart. The microkernels tile their output in 64-row (AVX-512) panels
/// along its columns here, so with few features (F = 28: one half-empty
/// 32-row tile) the product is computed transposed, `x_oneᵀ·d_in`, with the
/// wide `G·units` side on the full tiles.
fn ih_product(d_in: MatRef<'_>, d_ld: usize, x_one: MatRef<'_>, out: &mut [f32], accumulate: bool) -> Result<()> {
    let (gh, f1) = (d_in.cols, x_one.cols);
    let t = &mut out[..gh * f1];
    if f1 > gh {
        matmul_strided(d_in, Op::T, d_ld, x_one, Op::N, f1, MatMut { rows: gh, cols: f1, data: t }, accumulate)
    } else {
        matmul_strided(x_one, Op::T, f1, d_in, Op::N, d_ld, MatMut { rows: f1, cols: gh, data: t }, accumulate)
    }
}

/// Adds the groups' partials in group order and puts them in the gradients'
/// layout: `hh` (`groups` partials of `dW_hh`) into `w_hh`, and `ih` (of
/// `[dW_ih | db]`, transposed or not as [`ih_product`] wrote them; the first
/// `lead` gate columns belong to `W_ih`'s last rows, see [`Cell::in_lead`])
/// into `w_ih` and `bias`. The `G·units × (F + 1)` copy is small next to the
/// products' `N·T` depth.
pub(super) fn finish(ih: &mut [f32], hh: &mut [f32], groups: usize, (gh, f, lead): (usize, usize, usize), w_ih: &mut [f32], bias: &mut [f32], w_hh: &mut [f32]) {
    w_hh.copy_from_slice(sum_parts(hh, groups, w_hh.len()));
    ih_finish(sum_parts(ih, groups, gh * (f + 1)), gh, f, lead, w_ih, bias);
}

/// Adds `parts[1..groups]` (each `len` floats) onto `parts[0]`, in group
/// order, and returns it.
fn sum_parts(parts: &mut [f32], groups: usize, len: usize) -> &[f32] {
    let (sum, rest) = parts.split_at_mut(len);
    for part in rest[..(groups - 1) * len].chunks_exact(len) {
        sum.iter_mut().zip(part).for_each(|(a, b)| *a += b);
    }
    sum
}

/// Puts the summed `[dW_ih | db]` in the gradients' layout (see [`finish`]).
fn ih_finish(scratch: &[f32], gh: usize, f: usize, lead: usize, out: &mut [f32], bias: &mut [f32]) {
    let f1 = f + 1;
    let row_of = |c: usize| (c + gh - lead) % gh;
    if f1 > gh {
        for (c, row) in scratch[..gh * f1].chunks_exact(f1).enumerate() {
            out[row_of(c) * f..(row_of(c) + 1) * f].copy_from_slice(&row[..f]);
            bias[row_of(c)] = row[f];
        }
        return;
    }
    for (j, row) in scratch[..gh * f1].chunks_exact(gh).enumerate() {
        for (c, v) in row.iter().enumerate() {
            if j < f {
                out[row_of(c) * f + j] = *v;
            } else {
                bias[row_of(c)] = *v;
            }
        }
    }
}

/// Lays out samples `samples` of one chunk (input times `t0..t0 + len`) in
/// the rows of their gate gradients (sample `s0 + i`'s step `t0 + j` at row
/// `i·len + j`): their inputs from `x` `[n, T·F]` with a column of ones
/// appended, into `x_one`, and the states entering their steps, from `hs`
/// `[n·T, units]` into `hs_chunk` (both sized for these samples by the
/// caller). A chunk of all `T` steps reads `hs` itself: the same layout.
fn stage_chunk<'a>(x: &[f32], hs: &'a [f32], c: &ChunkShape, samples: std::ops::Range<usize>, x_one: &'a mut [f32], hs_chunk: &'a mut [f32]) -> (MatRef<'a>, MatRef<'a>) {
    let (t, f, h, t0, len) = (c.t, c.f, c.h, c.t0, c.len);
    let (s0, m) = (samples.start, samples.len());
    let (rows, f1) = (m * len, f + 1);
    let xs = &mut x_one[..rows * f1];
    for i in 0..m {
        for j in 0..len {
            let (r, src) = (i * len + j, (s0 + i) * t + t0 + j);
            xs[r * f1..r * f1 + f].copy_from_slice(&x[src * f..(src + 1) * f]);
            xs[r * f1 + f] = 1.0;
        }
    }
    let states = if len == t {
        &hs[s0 * t * h..(s0 * t + rows) * h]
    } else {
        let hc = &mut hs_chunk[..rows * h];
        for i in 0..m {
            let src = (s0 + i) * t + t0;
            hc[i * len * h..(i + 1) * len * h].copy_from_slice(&hs[src * h..(src + len) * h]);
        }
        &*hc
    };
    (MatRef { rows, cols: f1, data: xs }, MatRef { rows, cols: h, data: states })
}
