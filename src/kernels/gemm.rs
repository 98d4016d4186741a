//! Matrix products on the `gemm` crate's AVX-512/AVX2 microkernels (its `x86-v4`
//! feature, runtime-dispatched), blocked and threaded by `blocked` with reused
//! packing buffers; vector-shaped products use the crate's GEMV paths.
//!
//! `gemm` was kept over `faer` after measuring both on our shapes
//! (`cargo bench --features bench-faer --bench gemm`); see the README table.
//! Its threads split the output into tiles and never the inner dimension, so each
//! output element is summed in the same order whatever the thread count, which
//! keeps training bit-reproducible across thread counts.

use gemm::Parallelism;

use crate::error::{ensure_shape, Result};
use crate::kernels::{available_threads, blocked, gemv};
use crate::tensor::{MatMut, MatRef};

/// Whether an operand is used as stored or transposed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    N,
    T,
}

/// (rows, cols, row stride, column stride) of `op(a)` for a row-major `a`
/// whose rows lie `ld` values apart.
fn layout(a: &MatRef<'_>, op: Op, ld: usize) -> (usize, usize, isize, isize) {
    match op {
        Op::N => (a.rows, a.cols, ld as isize, 1),
        Op::T => (a.cols, a.rows, 1, ld as isize),
    }
}

/// Products below this many multiply-adds run on one thread.
const PAR_FLOPS: usize = 1 << 18;

/// Products with a transposed operand (the weight and input gradients of a
/// Dense layer) below this many multiply-adds run on one thread: split on
/// two threads, those between [`PAR_FLOPS`] and this size ran slower than on
/// one (a 10-unit head's weight gradient at batch 512: 29–32 µs split, 12–13
/// µs on one thread), while forward products of the same sizes still gained
/// from the split (docs/PERFORMANCE.md, "A profile of every product and
/// phase").
const PAR_FLOPS_TRANSPOSED: usize = 1 << 20;

/// Whether `gemm::gemm` answers `p` through its unpacked GEMV/outer-product paths
/// (which allocate nothing): a single column or row of output with a unit-stride
/// operand, or a depth of at most two.
fn vector_shaped(p: &blocked::Problem) -> bool {
    p.k <= 2 || (p.n == 1 && (p.lhs_rs == 1 || (p.lhs_cs == 1 && p.rhs_rs == 1))) || (p.m == 1 && (p.rhs_cs == 1 || (p.rhs_rs == 1 && p.lhs_cs == 1)))
}

/// Whether `c = op(a)·op(b)` (m×k·k×n) is cheaper with `op(a)` as the
/// microkernels' left operand than with `op(b)ᵀ`: the input gradient `dy·Wᵀ`
/// of a small batch. Viewed as `cᵀ = op(b)ᵀ·op(a)ᵀ` (the default, whose
/// output the microkernels store as whole vectors), a transposed `op(b)`
/// must be repacked into panels, all `n·k` of it (the whole weight matrix),
/// on every call; with `op(a)` on the left only its `m·k` values are packed,
/// but the `m·n` outputs are stored one by one (a row stride). Taken when
/// the second costs less, and only when `op(b)ᵀ` would need packing at all.
fn rows_as_lhs(m: usize, n: usize, k: usize, a_cs: isize, b_cs: isize) -> bool {
    b_cs != 1 && a_cs == 1 && m.saturating_mul(n + k) < n.saturating_mul(k)
}

/// Whether `c = op(a)·op(b)` (m×k·k×n) with at most [`NARROW_COLS`] output
/// columns, `op(a)` a transposed row-major matrix and `op(b)` row-major (the
/// weight gradient `xᵀ·dz` of a layer of at most that many units, such as a
/// classifier's 10 outputs), takes `op(a)` as the microkernels' left
/// operand. Viewed as `cᵀ = op(b)ᵀ·op(a)ᵀ` (the default), the left operand
/// has `n` ≤ 16 rows, one vector wide, so the microkernel loads as often as
/// it multiplies, and `op(a)ᵀ` is read in place along a stride of `x`'s row
/// length (at 10 units: 16–46 GFLOP/s on one AVX-512 core). With `op(a)` on
/// the left it is read in place with unit stride, in the full 64-row tiles,
/// and only the `m·n` outputs are stored one by one; measured 1.1–2.3x
/// faster on one thread (`benches/profile_step.py`, docs/PERFORMANCE.md).
/// Wider layers keep the default, which was faster at 48 units.
fn narrow_rows_as_lhs(m: usize, n: usize, a_rs: isize, b_cs: isize) -> bool {
    a_rs == 1 && b_cs == 1 && n <= NARROW_COLS && m >= 64
}

/// See [`narrow_rows_as_lhs`].
const NARROW_COLS: usize = 16;

/// Small-batch products at least this wide (output columns) split their
/// columns with the helper thread: two halves of at least one 64-wide
/// microkernel panel each.
const SPLIT_MIN_COLS: usize = 128;

/// `c = op(a) · op(b)`, or `c += op(a) · op(b)` when `accumulate`.
///
/// # Shapes
/// `op(a)`: m×k, `op(b)`: k×n, `c`: m×n.
///
/// # Errors
/// `Error::Shape` when the shapes do not agree.
pub fn matmul(a: MatRef<'_>, op_a: Op, b: MatRef<'_>, op_b: Op, c: MatMut<'_>, accumulate: bool) -> Result<()> {
    let (a_ld, c_ld) = (a.cols, c.cols);
    product(a, op_a, a_ld, b, op_b, b.cols, c, c_ld, accumulate, None, available_threads())
}

/// The right operand `op(b)` of a run of products `op(a)·op(b)`, packed once
/// into the microkernels' layout: a recurrent layer multiplies by the same
/// `W_hh` at every time step, and packing it once per pass instead of once per
/// step (per thread) saves that copy `T` times over.
///
/// Reading the packed copy gives exactly the bits `matmul` gives: packing
/// only rearranges values. The buffer grows to the largest operand seen and
/// is reused, so repacking allocates nothing in the steady state.
#[derive(Clone, Debug, Default)]
pub struct PackedRhs {
    panels: blocked::PackedLhs,
    /// (address, rows, cols, op) of the `b` packed; `None` until packed.
    source: Option<(usize, usize, usize, Op)>,
}

impl PackedRhs {
    /// An empty pack (nothing allocated until [`PackedRhs::pack`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// Packs `op(b)` for products whose `op(a)` has `a_rows` rows. Pack again
    /// whenever `b`'s values change: the pack is a copy, and [`matmul_packed`]
    /// trusts it to hold `b`'s current values. With `a_rows < 2` the products
    /// are matrix-vector ones, which read `b` in place, so nothing is packed
    /// (and an earlier pack is dropped).
    ///
    /// # Errors
    /// `Error::Memory` when the buffer must grow and cannot (the pack is then
    /// left empty and products fall back to packing as they go).
    pub fn pack(&mut self, b: MatRef<'_>, op_b: Op, a_rows: usize) -> Result<()> {
        self.source = None;
        if a_rows < 2 {
            return Ok(());
        }
        let (k, n, b_rs, b_cs) = layout(&b, op_b, b.cols);
        // The column-major left operand of `product`: op(b)ᵀ, n×k.
        // SAFETY: `b`'s slice holds rows·cols values, so these strides and
        // sizes address only inside it.
        if unsafe { self.panels.pack(n, k, b.data.as_ptr(), b_cs, b_rs)? } {
            self.source = Some((b.data.as_ptr() as usize, b.rows, b.cols, op_b));
        }
        Ok(())
    }

    fn packs(&self, b: &MatRef<'_>, op_b: Op) -> bool {
        self.source == Some((b.data.as_ptr() as usize, b.rows, b.cols, op_b))
    }
}

/// `matmul` with `op(b)` read from `packed` (see [`PackedRhs`]) when it was
/// packed from this `b` and `op_b`; otherwise exactly `matmul`. The result is
/// bit-identical to `matmul`'s either way.
///
/// # Errors
/// `Error::Shape` when the shapes do not agree.
pub fn matmul_packed(a: MatRef<'_>, op_a: Op, b: MatRef<'_>, op_b: Op, packed: &PackedRhs, c: MatMut<'_>, accumulate: bool) -> Result<()> {
    let pre = packed.packs(&b, op_b).then_some(&packed.panels);
    let (a_ld, c_ld) = (a.cols, c.cols);
    product(a, op_a, a_ld, b, op_b, b.cols, c, c_ld, accumulate, pre, available_threads())
}

/// [`matmul_packed`] with `a` (used as stored) and `c` read as row-strided
/// matrices: row `i` of `a` starts at `a.data[i·a_ld]`, row `i` of `c` at
/// `c.data[i·c_ld]` (`rows`/`cols` give the logical shape, the slices run
/// from the first row to at least the end of the last). A recurrent layer
/// uses it for one time step's rows inside a sample-major `[batch·T, ·]`
/// buffer, so the step's product lands where the step's input projection
/// (or gate gradient) already is, with no gather or scatter copy. Each output
/// element is summed exactly as by `matmul_packed` on contiguous copies.
///
/// # Errors
/// `Error::Shape` when the shapes do not agree or a slice is too short for
/// its stride.
#[allow(clippy::too_many_arguments)]
pub fn matmul_packed_rows(a: MatRef<'_>, a_ld: usize, b: MatRef<'_>, op_b: Op, packed: &PackedRhs, c: MatMut<'_>, c_ld: usize, accumulate: bool) -> Result<()> {
    check_strided(&a, a_ld, &c, c_ld)?;
    let pre = packed.packs(&b, op_b).then_some(&packed.panels);
    product(a, Op::N, a_ld, b, op_b, b.cols, c, c_ld, accumulate, pre, available_threads())
}

/// [`matmul_packed_rows`] on the calling thread alone, for callers that
/// already split their work between threads by rows of `a` and `c` (a
/// recurrent layer runs each share of its batch through all time steps on
/// one thread). Splitting the rows changes no bits: each output element is
/// summed over the same depth blocks, whose size depends on the depth alone,
/// by one register-tile chain per element whatever the tile it falls in; only
/// a one-row `a` (a matrix-vector product, summed otherwise) must be avoided
/// unless the whole product has one row.
///
/// # Errors
/// As [`matmul_packed_rows`].
#[allow(clippy::too_many_arguments)]
pub fn matmul_packed_rows_here(a: MatRef<'_>, a_ld: usize, b: MatRef<'_>, op_b: Op, packed: &PackedRhs, c: MatMut<'_>, c_ld: usize, accumulate: bool) -> Result<()> {
    check_strided(&a, a_ld, &c, c_ld)?;
    let pre = packed.packs(&b, op_b).then_some(&packed.panels);
    product(a, Op::N, a_ld, b, op_b, b.cols, c, c_ld, accumulate, pre, 1)
}

/// That row-strided `a` and `c` slices reach their last rows.
fn check_strided(a: &MatRef<'_>, a_ld: usize, c: &MatMut<'_>, c_ld: usize) -> Result<()> {
    let span = |rows: usize, cols: usize, ld: usize| if rows == 0 { 0 } else { (rows - 1) * ld + cols };
    ensure_shape(a_ld >= a.cols && c_ld >= c.cols && a.data.len() >= span(a.rows, a.cols, a_ld) && c.data.len() >= span(c.rows, c.cols, c_ld), || {
        format!("matmul: strided operands too short: a {}x{} every {a_ld} in {}, c {}x{} every {c_ld} in {}", a.rows, a.cols, a.data.len(), c.rows, c.cols, c.data.len())
    })
}

/// [`matmul`] with `a` and `b` read as row-strided matrices (as stored,
/// before `op`): row `i` of `a` starts at `a.data[i·a_ld]`, of `b` at
/// `b.data[i·b_ld]`; `c` is contiguous. A recurrent layer uses it for
/// column ranges of a wider buffer (the GRU keeps its two sets of gate
/// gradients interleaved in one row per sample and step). Each output element
/// is summed exactly as by `matmul` on contiguous copies.
///
/// # Errors
/// `Error::Shape` when the shapes do not agree or a slice is too short for
/// its stride.
#[allow(clippy::too_many_arguments)]
pub fn matmul_strided(a: MatRef<'_>, op_a: Op, a_ld: usize, b: MatRef<'_>, op_b: Op, b_ld: usize, c: MatMut<'_>, accumulate: bool) -> Result<()> {
    let span = |m: &MatRef<'_>, ld: usize| if m.rows == 0 { 0 } else { (m.rows - 1) * ld + m.cols };
    ensure_shape(a_ld >= a.cols && b_ld >= b.cols && a.data.len() >= span(&a, a_ld) && b.data.len() >= span(&b, b_ld) && c.data.len() >= c.rows * c.cols, || {
        format!("matmul: strided operands too short: a {}x{} every {a_ld} in {}, b {}x{} every {b_ld} in {}", a.rows, a.cols, a.data.len(), b.rows, b.cols, b.data.len())
    })?;
    let c_ld = c.cols;
    product(a, op_a, a_ld, b, op_b, b_ld, c, c_ld, accumulate, None, available_threads())
}

/// The product behind every entry point; `a_ld`, `b_ld` and `c_ld` are the
/// row strides of `a`, `b` and `c` (their `cols` for contiguous matrices),
/// `threads` the most it may use.
#[allow(clippy::too_many_arguments)]
fn product(a: MatRef<'_>, op_a: Op, a_ld: usize, b: MatRef<'_>, op_b: Op, b_ld: usize, c: MatMut<'_>, c_ld: usize, accumulate: bool, pre: Option<&blocked::PackedLhs>, threads: usize) -> Result<()> {
    let (m, k, a_rs, a_cs) = layout(&a, op_a, a_ld);
    let (k2, n, b_rs, b_cs) = layout(&b, op_b, b_ld);
    ensure_shape(k == k2 && c.rows == m && c.cols == n, || {
        format!("matmul: op(a) is {m}x{k}, op(b) is {k2}x{n}, output is {}x{}; expected {m}x{n} with equal inner sizes", c.rows, c.cols)
    })?;
    if m == 0 || n == 0 {
        return Ok(());
    }
    let _timer = crate::profile::ProductTimer::start(m, n, k, threads);
    if k == 0 {
        if !accumulate {
            c.data.chunks_mut(c_ld).take(m).for_each(|row| row[..n].fill(0.0));
        }
        return Ok(());
    }
    if m == 1 && b_cs == 1 {
        // One row times a row-major matrix (a one-sample dense forward): a
        // register-blocked pass over `b`, bound by reading it (see `gemv`);
        // a large one outside the pool shares its columns with the helper thread.
        if threads == 1 {
            gemv::row_times_matrix_shared(a.data, a_cs as usize, b.data, b_rs as usize, k, &mut c.data[..n], accumulate);
            return Ok(());
        }
        gemv::row_times_matrix(a.data, a_cs as usize, b.data, b_rs as usize, k, &mut c.data[..n], accumulate);
        return Ok(());
    }
    let par_flops = if op_a == Op::N && op_b == Op::N { PAR_FLOPS } else { PAR_FLOPS_TRANSPOSED };
    let threads = if threads > 1 && m * n * k >= par_flops { threads } else { 1 };
    if threads == 1 && pre.is_none() && m >= 2 && b_cs == 1 && n >= SPLIT_MIN_COLS && m.saturating_mul(n).saturating_mul(k) >= gemv::SHARE_MACS && crate::handoff::sharing_columns() && blocked::available() {
        // A small-batch inference product outside the pool: half of the
        // output columns on the helper thread.
        // SAFETY: the shape check above covers every index the two halves form.
        unsafe { split_columns(a, a_cs, a_rs, b, b_rs, c, c_ld, m, n, k, accumulate) };
        return Ok(());
    }
    // Column-major view for the microkernels: c^T (n×m) = op(b)^T · op(a)^T.
    let mut problem = blocked::Problem {
        m: n,
        n: m,
        k,
        dst: c.data.as_mut_ptr(),
        dst_rs: 1,
        dst_cs: c_ld as isize,
        lhs: b.data.as_ptr(),
        lhs_rs: b_cs,
        lhs_cs: b_rs,
        rhs: a.data.as_ptr(),
        rhs_rs: a_cs,
        rhs_cs: a_rs,
        accumulate,
    };
    if pre.is_none() && !vector_shaped(&problem) && (rows_as_lhs(m, n, k, a_cs, b_cs) || narrow_rows_as_lhs(m, n, a_rs, b_cs)) {
        // c (m×n) = op(a) · op(b) read column-major with row stride `c_ld`:
        // the microkernels then pack `op(a)` instead of `op(b)ᵀ`. Each output
        // is the same chain of products over the same depth blocks (`kc`
        // depends on `k` alone), so the bits are those of the view above.
        problem = blocked::Problem {
            m,
            n,
            k,
            dst: c.data.as_mut_ptr(),
            dst_rs: c_ld as isize,
            dst_cs: 1,
            lhs: a.data.as_ptr(),
            lhs_rs: a_rs,
            lhs_cs: a_cs,
            rhs: b.data.as_ptr(),
            rhs_rs: b_rs,
            rhs_cs: b_cs,
            accumulate,
        };
    }
    // Vector-shaped products (one sample, one output unit, a depth of one or
    // two) take the crate's GEMV-style paths, which neither pack nor allocate.
    // SAFETY (both calls): the shape check above guarantees every index formed
    // from these sizes and strides lies inside the three slices, and `c` is
    // borrowed mutably so it cannot alias `a` or `b`. `pre` was packed from
    // this `b` (same address, shape and op), so its panels cover the same
    // m×k operand; a stale pack can give stale values, never a bad access.
    if !vector_shaped(&problem) && unsafe { blocked::run(problem, threads, pre) } {
        return Ok(());
    }
    let parallelism = if threads > 1 { Parallelism::Rayon(threads) } else { Parallelism::None };
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.data.as_mut_ptr(),
            1,
            c_ld as isize,
            accumulate,
            a.data.as_ptr(),
            a_cs,
            a_rs,
            b.data.as_ptr(),
            b_cs,
            b_rs,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
    Ok(())
}

/// `c = op(a)·b` (`b` row-major, used as stored) with its output columns cut
/// in two, the second part offered to the helper thread (`crate::handoff`):
/// a small batch's dense forward, outside the rayon pool. Each part is a
/// column-major problem of its own over the same depth; the depth blocking
/// `kc` depends on `k` alone and each output element is one microkernel chain
/// over those blocks in order, so the bits are those of the whole product
/// on any thread count.
///
/// # Safety
/// `a` (strides `a_cs`, `a_rs` as `layout` gives them), `b` (row stride
/// `b_rs`, unit column stride) and `c` (row stride `c_ld`) must hold an
/// `m×k`, `k×n` and `m×n` matrix; the blocked microkernels must be available.
#[allow(clippy::too_many_arguments)]
unsafe fn split_columns(a: MatRef<'_>, a_cs: isize, a_rs: isize, b: MatRef<'_>, b_rs: isize, c: MatMut<'_>, c_ld: usize, m: usize, n: usize, k: usize, accumulate: bool) {
    let half = (n / 2).next_multiple_of(16);
    let (dst, lhs) = (c.data.as_mut_ptr(), b.data.as_ptr());
    let part = |first: usize, cols: usize| blocked::Problem {
        m: cols,
        n: m,
        k,
        // SAFETY (both offsets): `first < n`, a column inside `b`'s and `c`'s rows.
        dst: unsafe { dst.add(first) },
        dst_rs: 1,
        dst_cs: c_ld as isize,
        lhs: unsafe { lhs.add(first) },
        lhs_rs: 1,
        lhs_cs: b_rs,
        rhs: a.data.as_ptr(),
        rhs_rs: a_cs,
        rhs_cs: a_rs,
        accumulate,
    };
    let (left, right) = (part(0, half), Sendable(part(half, n - half)));
    // SAFETY: the two parts write disjoint columns of `c`; `both` returns
    // only after the second has run (once), while `a`, `b` and `c` are borrowed.
    crate::handoff::both(
        || {
            unsafe { blocked::run(left, 1, None) };
        },
        &|| {
            unsafe { blocked::run(right.get(), 1, None) };
        },
    );
}

/// A problem handed to the helper thread (raw pointers are not `Sync`).
#[derive(Clone, Copy)]
struct Sendable(blocked::Problem);
// SAFETY: see `split_columns`: one writer per part, joined before return.
unsafe impl Sync for Sendable {}

impl Sendable {
    /// The problem (a method, so closures capture the whole wrapper).
    fn get(&self) -> blocked::Problem {
        self.0
    }
}

#[cfg(test)]
#[path = "gemm_tests.rs"]
mod tests;
