//! Matrix products through the `gemm` crate (AVX-512 kernels via its `x86-v4`
//! feature, runtime-dispatched), threaded with rayon.
//!
//! `gemm` was kept over `faer` after measuring both on our shapes
//! (`cargo bench --features bench-faer --bench gemm`); see the README table.
//! Its threads split the output into tiles and never the inner dimension, so each
//! output element is summed in the same order whatever the thread count, which
//! keeps training bit-reproducible across thread counts.

use gemm::Parallelism;

use crate::error::{ensure_shape, Result};
use crate::kernels::available_threads;
use crate::tensor::{MatMut, MatRef};

/// Whether an operand is used as stored or transposed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    N,
    T,
}

/// (rows, cols, row stride, column stride) of `op(a)` for a row-major `a`.
fn layout(a: &MatRef<'_>, op: Op) -> (usize, usize, isize, isize) {
    match op {
        Op::N => (a.rows, a.cols, a.cols as isize, 1),
        Op::T => (a.cols, a.rows, 1, a.cols as isize),
    }
}

/// Products below this many multiply-adds run on one thread.
const PAR_FLOPS: usize = 1 << 18;

/// `c = op(a) · op(b)`, or `c += op(a) · op(b)` when `accumulate`.
///
/// # Shapes
/// `op(a)`: m×k, `op(b)`: k×n, `c`: m×n.
///
/// # Errors
/// `Error::Shape` when the shapes do not agree.
pub fn matmul(a: MatRef<'_>, op_a: Op, b: MatRef<'_>, op_b: Op, c: MatMut<'_>, accumulate: bool) -> Result<()> {
    let (m, k, a_rs, a_cs) = layout(&a, op_a);
    let (k2, n, b_rs, b_cs) = layout(&b, op_b);
    ensure_shape(k == k2 && c.rows == m && c.cols == n, || {
        format!("matmul: op(a) is {m}x{k}, op(b) is {k2}x{n}, output is {}x{}; expected {m}x{n} with equal inner sizes", c.rows, c.cols)
    })?;
    if m == 0 || n == 0 {
        return Ok(());
    }
    if k == 0 {
        if !accumulate {
            c.data.fill(0.0);
        }
        return Ok(());
    }
    let threads = available_threads();
    let parallelism = if threads > 1 && m * n * k >= PAR_FLOPS { Parallelism::Rayon(threads) } else { Parallelism::None };
    // SAFETY: the shape check above guarantees every index gemm forms from these
    // sizes and strides lies inside the three slices, and `c` is borrowed mutably
    // so it cannot alias `a` or `b`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.data.as_mut_ptr(),
            1,
            n as isize,
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
    }
}
