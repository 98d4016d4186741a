//! Tests of `kernels::gemm`: every entry point against a float64 product,
//! bit-identity across thread counts and splits, and shape errors.

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

/// `c = a·b` and `aᵀ·c` on a pool of `threads` threads.
fn product_and_back(a: &Matrix, b: &Matrix, threads: usize) -> (Matrix, Matrix) {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
    let mut c = Matrix::zeros(a.rows(), b.cols());
    pool.install(|| matmul(a.view(), Op::N, b.view(), Op::N, c.view_mut(), false).unwrap());
    let mut back = Matrix::zeros(a.cols(), b.cols());
    pool.install(|| matmul(a.view(), Op::T, c.view(), Op::N, back.view_mut(), false).unwrap());
    (c, back)
}

#[test]
fn thread_count_does_not_change_results() {
    let a = filled(300, 200, 3);
    let b = filled(200, 150, 4);
    let run = |threads: usize| product_and_back(&a, &b, threads);
    assert_eq!(run(1), run(2));
    assert_eq!(run(1), run(3));
    // Wide enough for several column blocks and deep enough for several depth
    // blocks, so the split between threads crosses block boundaries.
    let a = filled(1500, 700, 5);
    let b = filled(700, 90, 6);
    let run = |threads: usize| product_and_back(&a, &b, threads);
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

/// `matmul(a, op_a, b, op_b)` into a new matrix, on a pool of `threads`.
fn product_on(threads: usize, a: &Matrix, op_a: Op, b: &Matrix, op_b: Op) -> Matrix {
    let m = if op_a == Op::N { a.rows() } else { a.cols() };
    let n = if op_b == Op::N { b.cols() } else { b.rows() };
    let mut c = Matrix::zeros(m, n);
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
    pool.install(|| matmul(a.view(), op_a, b.view(), op_b, c.view_mut(), false)).unwrap();
    c
}

/// `c = op(a)·op(b)` through `blocked::run` as `cᵀ = op(b)ᵀ·op(a)ᵀ` (the
/// default view) or as `c` with `op(a)` on the left, on `threads` threads.
fn in_view(a: &Matrix, ta: bool, b: &Matrix, tb: bool, a_left: bool, threads: usize) -> Matrix {
    let (m, k, a_rs, a_cs) = layout(&a.view(), if ta { Op::T } else { Op::N }, a.cols());
    let (_, n, b_rs, b_cs) = layout(&b.view(), if tb { Op::T } else { Op::N }, b.cols());
    let mut c = Matrix::zeros(m, n);
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
    let ran = pool.install(|| {
        let (dst, lhs, rhs) = (c.as_mut_slice().as_mut_ptr(), a.as_slice().as_ptr(), b.as_slice().as_ptr());
        let p = if a_left {
            blocked::Problem { m, n, k, dst, dst_rs: n as isize, dst_cs: 1, lhs, lhs_rs: a_rs, lhs_cs: a_cs, rhs, rhs_rs: b_rs, rhs_cs: b_cs, accumulate: false }
        } else {
            blocked::Problem { m: n, n: m, k, dst, dst_rs: 1, dst_cs: n as isize, lhs: rhs, lhs_rs: b_cs, lhs_cs: b_rs, rhs: lhs, rhs_rs: a_cs, rhs_cs: a_rs, accumulate: false }
        };
        // SAFETY: both views describe the same three contiguous matrices.
        unsafe { blocked::run(p, threads, None) }
    });
    assert!(ran);
    c
}

/// A layer of at most 16 units (a classifier's head): its weight gradient
/// `xᵀ·dz` is computed with `xᵀ` on the left, which must give the bits of
/// the default view, on any thread count, and the right values.
#[test]
fn narrow_weight_gradients_give_the_same_bits_in_either_view() {
    if !blocked::available() {
        return;
    }
    // Depths across `kc` (600, 784: two depth blocks), partial panels.
    for &(m, n, k) in &[(64, 2, 7), (100, 10, 128), (128, 10, 512), (300, 12, 128), (256, 16, 128), (1024, 10, 600), (784, 3, 784)] {
        let (x, dz) = (filled(k, m, 5), filled(k, n, 6));
        assert!(narrow_rows_as_lhs(m, n, 1, 1));
        let want = naive(&x, true, &dz, false);
        for threads in [1, 2, 3] {
            let left = in_view(&x, true, &dz, false, true, threads);
            let default = in_view(&x, true, &dz, false, false, threads);
            assert!(left.as_slice().iter().zip(default.as_slice()).all(|(p, q)| p.to_bits() == q.to_bits()), "{m}x{n}x{k}, {threads} threads");
            for (g, w) in left.as_slice().iter().zip(&want) {
                assert!((*g as f64 - w).abs() < 1e-3 * (1.0 + w.abs()), "{m}x{n}x{k}: {g} vs {w}");
            }
            // `matmul` takes that view.
            let c = product_on(threads, &x, Op::T, &dz, Op::N);
            assert!(c.as_slice().iter().zip(left.as_slice()).all(|(p, q)| p.to_bits() == q.to_bits()), "{m}x{n}x{k} matmul");
        }
    }
    // Wider layers, too few rows and other layouts keep the default view.
    assert!(!narrow_rows_as_lhs(784, 17, 1, 1));
    assert!(!narrow_rows_as_lhs(63, 10, 1, 1));
    assert!(!narrow_rows_as_lhs(784, 10, 784, 1));
    assert!(!narrow_rows_as_lhs(784, 10, 1, 10));
}

/// The input gradient `dz·Wᵀ` of a layer of few units: a depth of at most
/// `STORE_BOUND_DEPTH`, walked columns outer; the same bits on any thread
/// count, and the right values.
#[test]
fn shallow_products_give_the_same_bits_on_any_thread_count() {
    for &(batch, units, inputs) in &[(512, 10, 1024), (128, 10, 128), (70, 16, 300), (33, 3, 200)] {
        let dz = filled(batch, units, 13);
        let w = filled(inputs, units, 14);
        let run = |threads: usize| product_on(threads, &dz, Op::N, &w, Op::T);
        let one = run(1);
        for (g, want) in one.as_slice().iter().zip(naive(&dz, false, &w, true)) {
            assert!((*g as f64 - want).abs() < 1e-4 * (1.0 + want.abs()), "{batch}x{units}x{inputs}: {g} vs {want}");
        }
        for threads in [2, 3] {
            assert!(run(threads) == one, "{batch}x{units}x{inputs} on {threads} threads");
        }
    }
}
