//! The weight gradients of a recurrent layer's backward pass, summed chunk by
//! chunk of steps over the whole batch (recurrent.rs runs the chunks): how
//! many steps a chunk holds, the chunk's inputs and states laid out in the
//! rows of its gate gradients, and the `[dW_ih | db_ih]` product and its
//! copy into the gradients' layout.

use crate::error::Result;
use crate::kernels::gemm::{matmul_strided, Op};
use crate::layers::recurrent::grow;
#[cfg(doc)]
use crate::layers::recurrent_cells::Cell;
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

/// `[dW_ih | db_ih] (+)= d_inᵀ·[x | 1]` (`[G·units, F + 1]`) over one
/// chunk's rows, into `scratch` (read by [`ih_finish`]): `x_one` is the
/// input with a column of ones appended, so the product's last column sums
/// the input-side gate gradients (the bias gradient, at no cost where the
/// column falls in a microkernel tile's padding). `d_in`'s rows lie `d_ld`
/// apart. The microkernels tile their output in 64-row (AVX-512) panels
/// along its columns here, so with few features (F = 28: one half-empty
/// 32-row tile) the product is computed transposed, `x_oneᵀ·d_in`, with the
/// wide `G·units` side on the full tiles.
pub(super) fn ih_product(d_in: MatRef<'_>, d_ld: usize, x_one: MatRef<'_>, scratch: &mut Vec<f32>, accumulate: bool) -> Result<()> {
    let (gh, f1) = (d_in.cols, x_one.cols);
    grow(scratch, gh * f1, "the recurrent weight_ih gradient")?;
    let t = &mut scratch[..gh * f1];
    if f1 > gh {
        matmul_strided(d_in, Op::T, d_ld, x_one, Op::N, f1, MatMut { rows: gh, cols: f1, data: t }, accumulate)
    } else {
        matmul_strided(x_one, Op::T, f1, d_in, Op::N, d_ld, MatMut { rows: f1, cols: gh, data: t }, accumulate)
    }
}

/// Puts [`ih_product`]'s sums in the gradients' layout (a `G·units × (F +
/// 1)` copy, small next to the products' `N·T` depth); `scratch`'s first
/// `lead` gate columns belong to `W_ih`'s last rows (see [`Cell::in_lead`]).
pub(super) fn ih_finish(scratch: &[f32], gh: usize, f: usize, lead: usize, out: &mut [f32], bias: &mut [f32]) {
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

/// Lays out one chunk (input times `t0..t0 + len`) in the rows of its gate
/// gradients (sample `i`'s step `t0 + j` at row `i·len + j`): its inputs
/// `x` `[n, T·F]` with a column of ones appended, into `x_one`, and the
/// states entering its steps, from `hs` `[n·T, units]` into `hs_chunk`
/// (both grown by the caller). A chunk of all `T` steps reads `hs` itself:
/// the same layout.
pub(super) fn stage_chunk<'a>(x: &[f32], hs: &'a [f32], (n, t, f, h): (usize, usize, usize, usize), (t0, len): (usize, usize), x_one: &'a mut [f32], hs_chunk: &'a mut [f32]) -> (MatRef<'a>, MatRef<'a>) {
    let (rows, f1) = (n * len, f + 1);
    let xs = &mut x_one[..rows * f1];
    for i in 0..n {
        for j in 0..len {
            let (r, src) = (i * len + j, i * t + t0 + j);
            xs[r * f1..r * f1 + f].copy_from_slice(&x[src * f..(src + 1) * f]);
            xs[r * f1 + f] = 1.0;
        }
    }
    let states = if len == t {
        &hs[..rows * h]
    } else {
        let hc = &mut hs_chunk[..rows * h];
        for i in 0..n {
            hc[i * len * h..(i + 1) * len * h].copy_from_slice(&hs[(i * t + t0) * h..(i * t + t0 + len) * h]);
        }
        &*hc
    };
    (MatRef { rows, cols: f1, data: xs }, MatRef { rows, cols: h, data: states })
}
