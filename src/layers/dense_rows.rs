//! A chain of flat Dense layers run forward in row ranges: each range goes
//! through every layer on its own share of the threads, with no wait between
//! layers.
//!
//! Rows are independent in a Dense layer, so a range's rows need nothing from
//! the other ranges until the loss. Split per product instead, every layer
//! forks and joins once for its product and once for its bias and activation
//! pass, and a small product (the 256×128 layer at batch 128) splits badly:
//! on two threads its busy time grew by a fifth. Each output element is the
//! same chain of multiply-adds over the same depth blocks however many rows
//! share the product (the depth blocking depends on the depth alone, and a
//! range has at least two rows, so no product turns into a matrix-vector
//! one), so the bits are those of the whole batch on one thread.

use crate::activation::{add_bias, Activation};
use crate::error::Result;
use crate::kernels::gemm::{matmul, Op};
use crate::kernels::{available_threads, join_shares};
use crate::tensor::{MatMut, MatRef};

/// Chains of more layers than this take the per-product path (the ranges'
/// buffers are kept in arrays of this length on the stack).
pub(crate) const MAX_LAYERS: usize = 16;

/// Rows are cut in ranges only from twice this many (two ranges of 64 rows
/// gained at batch 128; at batch 32 and 64 ranges of 16 and 32 rows gained
/// nothing over splitting each product); smaller batches split each product.
/// On an odd thread count the cut follows the threads' shares (2:1 on three).
pub(crate) const MIN_RANGE_ROWS: usize = 64;

/// Chains with a weight matrix of more values than this (2 MiB, one core's
/// L2 cache on the machine measured) split each product instead: every range
/// packs all of every weight matrix, and at 784×1024 and 1024×1024 (batch
/// 512, two threads) that extra packing cost what the ranges saved, while
/// 784×512 and 512×512 still gained 7% in the forward pass.
pub(crate) const MAX_WEIGHTS: usize = 1 << 19;

/// One flat Dense layer's forward over some rows, copied out of the layer so
/// that threads can run row ranges of it at once.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RowPass {
    pub(crate) in_dim: usize,
    pub(crate) out_dim: usize,
    pub(crate) act: Activation,
    pub(crate) w_off: usize,
    pub(crate) b_off: usize,
}

impl Default for RowPass {
    fn default() -> Self {
        Self { in_dim: 0, out_dim: 0, act: Activation::Identity, w_off: 0, b_off: 0 }
    }
}

impl RowPass {
    /// `z = x·W + b` and, unless the activation is the identity, `a = f(z)`
    /// (`a` is then as long as `z`; else it is not touched).
    ///
    /// # Errors
    /// `Error::Shape` when the sizes do not agree.
    pub(crate) fn run(&self, x: MatRef<'_>, params: &[f32], z: &mut [f32], a: &mut [f32]) -> Result<()> {
        let w = MatRef { rows: self.in_dim, cols: self.out_dim, data: &params[self.w_off..self.b_off] };
        matmul(x, Op::N, w, Op::N, MatMut::new(x.rows, self.out_dim, z)?, false)?;
        let bias = &params[self.b_off..self.b_off + self.out_dim];
        if self.act == Activation::Identity {
            add_bias(z, bias);
        } else {
            self.act.add_bias_activate(z, bias, a);
        }
        Ok(())
    }

    /// The layer's output among its buffers `(z, a)`.
    fn output<'b>(&self, z: &'b [f32], a: &'b [f32]) -> &'b [f32] {
        if self.act == Activation::Identity {
            z
        } else {
            a
        }
    }
}

/// The buffers `(z, a)` of each layer, whole or for one range of rows.
type Buffers<'b> = [(&'b mut [f32], &'b mut [f32])];

/// Runs `passes` (layer after layer) over the rows of `x`, writing each
/// layer's `(z, a)` in `bufs` (whole-batch buffers; `a` empty for an identity
/// layer). With two or more threads and rows for two ranges of
/// [`MIN_RANGE_ROWS`], the rows are cut in two ranges, each run on its share
/// of the threads ([`join_shares`]) and cut again while its share allows.
///
/// # Errors
/// `Error::Shape` when the sizes do not agree.
pub(crate) fn forward_in_ranges(passes: &[RowPass], x: MatRef<'_>, params: &[f32], bufs: &mut Buffers<'_>) -> Result<()> {
    let threads = available_threads();
    if threads < 2 || x.rows < 2 * MIN_RANGE_ROWS || passes.len() > MAX_LAYERS {
        return forward_rows(passes, x, params, bufs);
    }
    // The first range gets the larger share of an odd thread count, and rows in proportion.
    let mid = x.rows * (threads - threads / 2) / threads;
    let mut top: [(&mut [f32], &mut [f32]); MAX_LAYERS] = Default::default();
    let mut bottom: [(&mut [f32], &mut [f32]); MAX_LAYERS] = Default::default();
    for (l, (pass, (z, a))) in passes.iter().zip(bufs.iter_mut()).enumerate() {
        let (z_top, z_bottom) = std::mem::take(z).split_at_mut(mid * pass.out_dim);
        let a = std::mem::take(a);
        let (a_top, a_bottom) = a.split_at_mut(if a.is_empty() { 0 } else { mid * pass.out_dim });
        top[l] = (z_top, a_top);
        bottom[l] = (z_bottom, a_bottom);
    }
    let n = passes.len();
    let (first, second) = join_shares(
        || forward_in_ranges(passes, x.rows_range(0, mid), params, &mut top[..n]),
        || forward_in_ranges(passes, x.rows_range(mid, x.rows), params, &mut bottom[..n]),
    );
    first.and(second)
}

/// Runs `passes` over all of `x`'s rows on the calling thread's share.
fn forward_rows(passes: &[RowPass], x: MatRef<'_>, params: &[f32], bufs: &mut Buffers<'_>) -> Result<()> {
    for l in 0..passes.len() {
        let (done, rest) = bufs.split_at_mut(l);
        let input = match done.last() {
            None => x,
            Some((z, a)) => MatRef { rows: x.rows, cols: passes[l - 1].out_dim, data: passes[l - 1].output(z, a) },
        };
        let (z, a) = &mut rest[0];
        passes[l].run(input, params, z, a)?;
    }
    Ok(())
}
