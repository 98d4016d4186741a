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
    let threads = if threads > 1 && m * n * k >= PAR_FLOPS { threads } else { 1 };
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
    if pre.is_none() && !vector_shaped(&problem) && rows_as_lhs(m, n, k, a_cs, b_cs) {
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
mod tests {
    use super::*;
    use crate::tensor::Matrix;

    fn naive(a: &Matrix, ta: bool, b: &Matrix, tb: bool) -> Vec<f64> {
        let at = |i: usize, j: usize| if ta { a.as_slice()[j * a.cols() + i] } else { a.as_slice()[i * a.cols() + j] };
        let bt = |i: usize, j: usize| if tb { b.as_slice()[j * b.cols() + i] } else { b.as_slice()[i * b.cols() + j] };
        let (m, k) = if ta { (a.cols(), a.rows()) } else { (a.rows(), a.cols()) };
        let n = if tb { b.rows() } else { b.cols() };
        let mut out = vec![0.0f64; m * n];
        for i in 0..m {
            for j in 0..n {
                out[i * n + j] = (0..k).map(|p| at(i, p) as f64 * bt(p, j) as f64).sum();
            }
        }
        out
    }

    fn filled(rows: usize, cols: usize, seed: u32) -> Matrix {
        let data = (0..rows * cols).map(|i| (((i as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 16) % 200) as f32 / 100.0 - 1.0).collect();
        Matrix::from_vec(rows, cols, data).unwrap()
    }

    #[test]
    fn all_transpose_combinations_match_naive() {
        for &(ta, tb) in &[(false, false), (true, false), (false, true), (true, true)] {
            let (m, k, n) = (7, 13, 5);
            let a = if ta { filled(k, m, 1) } else { filled(m, k, 1) };
            let b = if tb { filled(n, k, 2) } else { filled(k, n, 2) };
            let mut c = Matrix::zeros(m, n);
            let op = |t| if t { Op::T } else { Op::N };
            matmul(a.view(), op(ta), b.view(), op(tb), c.view_mut(), false).unwrap();
            let want = naive(&a, ta, &b, tb);
            for (g, w) in c.as_slice().iter().zip(&want) {
                assert!((*g as f64 - w).abs() < 1e-4, "{g} vs {w}");
            }
            // Accumulating adds the same product again.
            matmul(a.view(), op(ta), b.view(), op(tb), c.view_mut(), true).unwrap();
            for (g, w) in c.as_slice().iter().zip(&want) {
                assert!((*g as f64 - 2.0 * w).abs() < 1e-4);
            }
        }
    }

    /// Shapes across the blocking: vector-shaped ones (the GEMV paths), partial
    /// microkernel tiles, and depths/widths past one cache block.
    #[test]
    fn blocked_shapes_match_naive() {
        let shapes = [(1, 1, 1), (1, 300, 17), (40, 1, 33), (5, 7, 2), (3, 3, 3), (17, 9, 31), (64, 6, 64), (65, 7, 129), (130, 70, 1100), (300, 200, 700), (33, 1500, 40), (800, 20, 140)];
        for (case, &(m, k, n)) in shapes.iter().enumerate() {
            for &(ta, tb) in &[(false, false), (true, false), (false, true), (true, true)] {
                let a = if ta { filled(k, m, case as u32) } else { filled(m, k, case as u32) };
                let b = if tb { filled(n, k, 7 + case as u32) } else { filled(k, n, 7 + case as u32) };
                let op = |t| if t { Op::T } else { Op::N };
                let want = naive(&a, ta, &b, tb);
                // Stale values in `c` must be overwritten, then accumulated onto.
                let mut c = Matrix::from_vec(m, n, vec![f32::NAN; m * n]).unwrap();
                matmul(a.view(), op(ta), b.view(), op(tb), c.view_mut(), false).unwrap();
                let tol = 1e-5 * k as f64;
                for (g, w) in c.as_slice().iter().zip(&want) {
                    assert!((*g as f64 - w).abs() <= tol, "{m}x{k}x{n} {ta} {tb}: {g} vs {w}");
                }
                matmul(a.view(), op(ta), b.view(), op(tb), c.view_mut(), true).unwrap();
                for (g, w) in c.as_slice().iter().zip(&want) {
                    assert!((*g as f64 - 2.0 * w).abs() <= 2.0 * tol, "{m}x{k}x{n} {ta} {tb} accumulated");
                }
            }
        }
    }

    /// A packed right operand gives the bits of the unpacked product, on any
    /// thread count, overwriting or accumulating; a pack of another matrix
    /// (or op) is ignored rather than read.
    #[test]
    fn packed_rhs_is_bit_identical_to_matmul() {
        let shapes = [(128, 128, 512), (128, 512, 128), (33, 700, 90), (5, 7, 2), (1, 64, 64), (200, 1100, 70), (64, 9, 300), (32, 128, 256), (20, 300, 1000), (70, 1024, 1024)];
        for (case, &(m, k, n)) in shapes.iter().enumerate() {
            for &(ta, tb) in &[(false, false), (false, true), (true, false), (true, true)] {
                let op = |t| if t { Op::T } else { Op::N };
                let a = if ta { filled(k, m, case as u32) } else { filled(m, k, case as u32) };
                let b = if tb { filled(n, k, 9 + case as u32) } else { filled(k, n, 9 + case as u32) };
                let mut packed = PackedRhs::new();
                packed.pack(b.view(), op(tb), m).unwrap();
                for threads in [1, 2, 3] {
                    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                    let mut want = filled(m, n, 5);
                    let mut got = want.clone();
                    pool.install(|| {
                        matmul(a.view(), op(ta), b.view(), op(tb), want.view_mut(), true).unwrap();
                        matmul_packed(a.view(), op(ta), b.view(), op(tb), &packed, got.view_mut(), true).unwrap();
                    });
                    assert_eq!(want, got, "{m}x{k}x{n} {ta} {tb} accumulate, {threads} threads");
                    pool.install(|| {
                        matmul(a.view(), op(ta), b.view(), op(tb), want.view_mut(), false).unwrap();
                        matmul_packed(a.view(), op(ta), b.view(), op(tb), &packed, got.view_mut(), false).unwrap();
                    });
                    assert_eq!(want, got, "{m}x{k}x{n} {ta} {tb}, {threads} threads");
                }
                // Another matrix of the same shape: the pack is not used for it.
                let other = if tb { filled(n, k, 99) } else { filled(k, n, 99) };
                let (mut want, mut got) = (Matrix::zeros(m, n), Matrix::zeros(m, n));
                matmul(a.view(), op(ta), other.view(), op(tb), want.view_mut(), false).unwrap();
                matmul_packed(a.view(), op(ta), other.view(), op(tb), &packed, got.view_mut(), false).unwrap();
                assert_eq!(want, got, "{m}x{k}x{n} {ta} {tb}: a pack of another matrix was read");
            }
        }
    }

    /// The pack is what the product reads (values changed in place without
    /// repacking still give the old product: the caller's contract is to
    /// repack), and repacking replaces the old panels.
    #[test]
    fn the_pack_is_read_and_repacking_follows_new_values() {
        let a = filled(128, 128, 1);
        let mut b = filled(512, 128, 2);
        let mut before = Matrix::zeros(128, 512);
        matmul(a.view(), Op::N, b.view(), Op::T, before.view_mut(), false).unwrap();
        let mut packed = PackedRhs::new();
        packed.pack(b.view(), Op::T, 128).unwrap();
        b.as_mut_slice().iter_mut().for_each(|v| *v = -*v + 0.25);
        let mut got = Matrix::zeros(128, 512);
        matmul_packed(a.view(), Op::N, b.view(), Op::T, &packed, got.view_mut(), false).unwrap();
        assert_eq!(before, got, "the packed panels were not used");
        packed.pack(b.view(), Op::T, 128).unwrap();
        let mut want = Matrix::zeros(128, 512);
        matmul(a.view(), Op::N, b.view(), Op::T, want.view_mut(), false).unwrap();
        matmul_packed(a.view(), Op::N, b.view(), Op::T, &packed, got.view_mut(), false).unwrap();
        assert_ne!(before, want);
        assert_eq!(want, got);
    }

    /// Row-strided `a` and `c` (one time step's rows of a sample-major
    /// buffer) give the bits of the contiguous product, overwriting or
    /// accumulating, and leave the rows between them untouched.
    #[test]
    fn row_strided_operands_match_contiguous_copies() {
        for &(m, k, n, a_ld, c_ld) in &[(128, 128, 512, 128 * 28, 512 * 28), (9, 13, 20, 40, 31), (1, 8, 8, 8, 20), (64, 6, 300, 6, 300), (5, 0, 7, 3, 9)] {
            let a_big = filled(m, a_ld, 3);
            let b = filled(n, k, 4);
            let a_rows: Vec<f32> = (0..m).flat_map(|i| a_big.as_slice()[i * a_ld..i * a_ld + k].to_vec()).collect();
            let a = Matrix::from_vec(m, k, a_rows).unwrap();
            let mut packed = PackedRhs::new();
            packed.pack(b.view(), Op::T, m).unwrap();
            for accumulate in [false, true] {
                for threads in [1, 2] {
                    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                    let c_big0 = filled(m, c_ld, 8);
                    let mut want: Vec<f32> = (0..m).flat_map(|i| c_big0.as_slice()[i * c_ld..i * c_ld + n].to_vec()).collect();
                    let mut c_big = c_big0.clone();
                    pool.install(|| {
                        matmul(a.view(), Op::N, b.view(), Op::T, MatMut { rows: m, cols: n, data: &mut want }, accumulate).unwrap();
                        let a_view = MatRef { rows: m, cols: k, data: a_big.as_slice() };
                        matmul_packed_rows(a_view, a_ld, b.view(), Op::T, &packed, MatMut { rows: m, cols: n, data: c_big.as_mut_slice() }, c_ld, accumulate).unwrap();
                    });
                    for i in 0..m {
                        let row = &c_big.as_slice()[i * c_ld..(i + 1) * c_ld];
                        assert_eq!(&row[..n], &want[i * n..(i + 1) * n], "{m}x{k}x{n} row {i}, {threads} threads");
                        assert_eq!(&row[n..], &c_big0.as_slice()[i * c_ld + n..(i + 1) * c_ld], "{m}x{k}x{n}: a gap between rows was written");
                    }
                }
            }
        }
        // A slice too short for its stride is a shape error, not a bad access.
        let (a, b) = (filled(4, 8, 1), filled(8, 8, 2));
        let mut c = Matrix::zeros(4, 8);
        let short = MatRef { rows: 4, cols: 8, data: a.as_slice() };
        assert!(matmul_packed_rows(short, 9, b.view(), Op::T, &PackedRhs::new(), c.view_mut(), 8, false).is_err());
    }

    /// Column ranges of wider buffers as `a` and `b`, in every transpose
    /// combination (the all-steps weight-gradient products of a GRU read its
    /// interleaved gate gradients so), give the bits of contiguous copies,
    /// overwriting or accumulating, on one thread or several.
    #[test]
    fn strided_operands_match_contiguous_copies() {
        let narrow = |m: &Matrix, cols: usize, skip: usize| -> Matrix {
            let rows: Vec<f32> = m.as_slice().chunks(m.cols()).flat_map(|r| r[skip..skip + cols].to_vec()).collect();
            Matrix::from_vec(m.rows(), cols, rows).unwrap()
        };
        for &(m, k, n) in &[(384, 3584, 128), (28, 3584, 384), (7, 13, 5), (65, 700, 129), (3, 2, 4)] {
            for &(ta, tb) in &[(false, false), (true, false), (false, true), (true, true)] {
                let (ar, ac) = if ta { (k, m) } else { (m, k) };
                let (br, bc) = if tb { (n, k) } else { (k, n) };
                let (a_wide, b_wide) = (filled(ar, ac + 7, 21), filled(br, bc + 3, 22));
                let (a, b) = (narrow(&a_wide, ac, 5), narrow(&b_wide, bc, 1));
                let op = |t| if t { Op::T } else { Op::N };
                for accumulate in [false, true] {
                    for threads in [1, 2, 3] {
                        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                        let (mut want, mut got) = (filled(m, n, 23), filled(m, n, 23));
                        pool.install(|| {
                            matmul(a.view(), op(ta), b.view(), op(tb), want.view_mut(), accumulate).unwrap();
                            let a_view = MatRef { rows: ar, cols: ac, data: &a_wide.as_slice()[5..] };
                            let b_view = MatRef { rows: br, cols: bc, data: &b_wide.as_slice()[1..] };
                            matmul_strided(a_view, op(ta), ac + 7, b_view, op(tb), bc + 3, got.view_mut(), accumulate).unwrap();
                        });
                        assert_eq!(got, want, "{m}x{k}x{n} ta {ta} tb {tb} accumulate {accumulate}, {threads} threads");
                    }
                }
            }
        }
        // A slice too short for its stride is a shape error, not a bad access.
        let (a, b) = (filled(4, 8, 1), filled(8, 8, 2));
        let mut c = Matrix::zeros(4, 8);
        assert!(matmul_strided(a.view(), Op::N, 9, b.view(), Op::N, 8, c.view_mut(), false).is_err());
        assert!(matmul_strided(a.view(), Op::N, 8, b.view(), Op::N, 7, c.view_mut(), false).is_err());
    }

    /// The rows of a product split between calls on one thread each (as a
    /// recurrent layer splits its batch) give the bits of the whole product
    /// on the pool: tile boundaries move, the sums do not. Depths past one
    /// depth block (700) included; every share has at least two rows.
    #[test]
    fn a_product_split_by_rows_is_bit_identical() {
        for &(m, k, n) in &[(128, 128, 512), (37, 128, 384), (20, 700, 96), (9, 33, 99), (64, 6, 40)] {
            let (a_ld, c_ld) = (k + 3, n + 5);
            let a = filled(m, a_ld, 11);
            let b = filled(n, k, 12);
            let mut packed = PackedRhs::new();
            packed.pack(b.view(), Op::T, m).unwrap();
            let c0 = filled(m, c_ld, 13);
            for accumulate in [false, true] {
                let mut whole = c0.clone();
                let pool = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
                pool.install(|| {
                    let c = MatMut { rows: m, cols: n, data: whole.as_mut_slice() };
                    matmul_packed_rows(MatRef { rows: m, cols: k, data: a.as_slice() }, a_ld, b.view(), Op::T, &packed, c, c_ld, accumulate).unwrap();
                });
                for first in [2, 5, 6, 7, m / 2, m - 2] {
                    let mut split = c0.clone();
                    let (top, bottom) = split.as_mut_slice().split_at_mut(first * c_ld);
                    let (a_top, a_bottom) = a.as_slice().split_at(first * a_ld);
                    matmul_packed_rows_here(MatRef { rows: first, cols: k, data: a_top }, a_ld, b.view(), Op::T, &packed, MatMut { rows: first, cols: n, data: top }, c_ld, accumulate).unwrap();
                    let rest = m - first;
                    matmul_packed_rows_here(MatRef { rows: rest, cols: k, data: a_bottom }, a_ld, b.view(), Op::T, &packed, MatMut { rows: rest, cols: n, data: bottom }, c_ld, accumulate).unwrap();
                    assert_eq!(whole, split, "{m}x{k}x{n} split after {first} rows, accumulate {accumulate}");
                }
            }
        }
    }

    /// Small-batch products split by output columns with the helper thread
    /// (inside `handoff::small_batch`) give the bits of the whole product on
    /// one thread and on the pool, overwriting or accumulating, whichever
    /// thread ran the second part (repeated, so both happen); shapes below the
    /// split's thresholds, transposed ones and a one-row product keep their paths.
    #[test]
    fn products_split_by_columns_with_the_helper_are_bit_identical() {
        let shapes = [(32, 784, 256), (2, 784, 256), (64, 256, 128), (7, 300, 200), (17, 1100, 144), (32, 128, 10), (1, 784, 256), (40, 64, 130)];
        for (case, &(m, k, n)) in shapes.iter().enumerate() {
            let a = filled(m, k, 20 + case as u32);
            let b = filled(k, n, 40 + case as u32);
            let c0 = filled(m, n, 60 + case as u32);
            for accumulate in [false, true] {
                let mut want = c0.clone();
                matmul(a.view(), Op::N, b.view(), Op::N, want.view_mut(), accumulate).unwrap();
                let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
                let mut pooled = c0.clone();
                pool.install(|| matmul(a.view(), Op::N, b.view(), Op::N, pooled.view_mut(), accumulate).unwrap());
                assert_eq!(want, pooled, "{m}x{k}x{n} on the pool");
                for round in 0..100 {
                    let mut got = c0.clone();
                    crate::handoff::small_batch(|| matmul(a.view(), Op::N, b.view(), Op::N, got.view_mut(), accumulate)).unwrap();
                    assert_eq!(want, got, "{m}x{k}x{n} accumulate {accumulate} round {round}");
                }
            }
            // A transposed right operand (not split) still agrees with the naive product.
            let bt = filled(n, k, 80 + case as u32);
            let mut got = Matrix::zeros(m, n);
            crate::handoff::small_batch(|| matmul(a.view(), Op::N, bt.view(), Op::T, got.view_mut(), false)).unwrap();
            for (g, w) in got.as_slice().iter().zip(naive(&a, false, &bt, true)) {
                assert!((*g as f64 - w).abs() <= 1e-5 * k as f64);
            }
        }
    }

    #[test]
    fn mismatched_shapes_are_rejected() {
        let a = Matrix::zeros(3, 4);
        let b = Matrix::zeros(5, 2);
        let mut c = Matrix::zeros(3, 2);
        assert!(matmul(a.view(), Op::N, b.view(), Op::N, c.view_mut(), false).is_err());
    }

    #[test]
    fn thread_count_does_not_change_results() {
        let a = filled(300, 200, 3);
        let b = filled(200, 150, 4);
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            let mut c = Matrix::zeros(300, 150);
            pool.install(|| matmul(a.view(), Op::N, b.view(), Op::N, c.view_mut(), false).unwrap());
            let mut ct = Matrix::zeros(200, 150);
            let c2 = c.clone();
            pool.install(|| matmul(a.view(), Op::T, c2.view(), Op::N, ct.view_mut(), false).unwrap());
            (c, ct)
        };
        assert_eq!(run(1), run(2));
        assert_eq!(run(1), run(3));
        // Wide enough for several column blocks and deep enough for several depth
        // blocks, so the split between threads crosses block boundaries.
        let a = filled(1500, 700, 5);
        let b = filled(700, 90, 6);
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            let mut c = Matrix::zeros(1500, 90);
            pool.install(|| matmul(a.view(), Op::N, b.view(), Op::N, c.view_mut(), false).unwrap());
            let mut g = Matrix::zeros(700, 90);
            pool.install(|| matmul(a.view(), Op::T, c.view(), Op::N, g.view_mut(), false).unwrap());
            (c, g)
        };
        assert_eq!(run(1), run(2));
        assert_eq!(run(1), run(5));
        // A strided right operand, packed: split by columns (200 output rows in
        // the kernel's view, 300 columns), each thread packs its own columns'
        // panels; split by rows (300 rows, 200 columns), the right-hand blocks are
        // packed once per block and shared, so the threads meet per block.
        for (rows, cols) in [(300, 200), (200, 300)] {
            let a = filled(1500, rows, 7);
            let b = filled(1500, cols, 8);
            let run = |threads: usize| {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                let mut c = Matrix::zeros(rows, cols);
                pool.install(|| matmul(a.view(), Op::T, b.view(), Op::N, c.view_mut(), false).unwrap());
                c
            };
            assert_eq!(run(1), run(2));
            assert_eq!(run(1), run(3));
        }
    }

    /// Weight-gradient shapes `xᵀ·dz` (a strided right operand, packed, split
    /// by columns): each thread packs the right panels of its own columns.
    /// Wide and deep enough for several column and depth blocks, with a
    /// partial last panel; the same bits on any thread count, with and without
    /// accumulating, and the right values.
    #[test]
    fn threads_packing_their_own_right_panels_match() {
        for &(batch, din, dout) in &[(128, 784, 256), (700, 2003, 150), (300, 1037, 256), (64, 333, 200)] {
            let x = filled(batch, din, 11);
            let dz = filled(batch, dout, 12);
            let run = |threads: usize| {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                let mut g = Matrix::zeros(din, dout);
                pool.install(|| matmul(x.view(), Op::T, dz.view(), Op::N, g.view_mut(), false).unwrap());
                let mut acc = g.clone();
                pool.install(|| matmul(x.view(), Op::T, dz.view(), Op::N, acc.view_mut(), true).unwrap());
                (g, acc)
            };
            let one = run(1);
            let want = naive(&x, true, &dz, false);
            for (g, w) in one.0.as_slice().iter().zip(&want) {
                assert!((*g as f64 - w).abs() < 1e-3 * (1.0 + w.abs()), "{batch}x{din}x{dout}: {g} vs {w}");
            }
            for (g, w) in one.1.as_slice().iter().zip(&want) {
                assert!((*g as f64 - 2.0 * w).abs() < 2e-3 * (1.0 + w.abs()), "{batch}x{din}x{dout} accumulated: {g} vs {w}");
            }
            for threads in [2, 3, 4] {
                assert!(run(threads) == one, "{batch}x{din}x{dout} on {threads} threads");
            }
        }
    }
}
