//! One row times a matrix, `y = x·B` with `B` stored row-major: a one-sample
//! forward through a dense layer (`x·W`, `W` `[in, out]`).
//!
//! The `gemm` crate answers this shape with an axpy loop that reads and writes
//! `y` for every row of `B`. Here a block of up to [`WIDE`] outputs stays in
//! registers while the kernel streams once through the block's columns of
//! every row of `B` (each row's block is contiguous), so the product runs at
//! the speed `B` can be read: it is bound by memory, not arithmetic.
//!
//! Every output is its own fused multiply-add chain over the depth in order,
//! `acc = fma(x[p], B[p, j], acc)` from `acc = 0`, whatever the block width or
//! target (FMA rounds once, so AVX-512, AVX2 and the scalar fallback agree bit
//! for bit). Any split of the columns, between blocks or threads, therefore
//! leaves every bit of the result unchanged.

/// Products of at least this many multiply-adds (784×256: 9.0 µs alone, 5.6
/// µs when the helper takes half; measured with the helper spinning) share
/// their columns with the helper thread when it may be used
/// (`crate::handoff`). At 256×128 (1.2 µs) the post and take-back alone cost
/// ~0.4 µs when the helper is not ready, about what a taken half saves.
/// Only outputs at least `2·WIDE` wide are split: a half narrower than
/// [`WIDE`] runs fewer independent chains than hide the FMA latency, so each
/// half took as long as the whole (3136×128 in the CNN: +13 µs per call).
pub(crate) const SHARE_MACS: usize = 1 << 17;

/// Outputs per register block: 8 AVX-512 vectors (16 AVX2 ones), enough
/// independent FMA chains to hide the instruction's latency.
const WIDE: usize = 128;

/// `y[j] = Σ_p x[p·x_stride]·b[p·ldb + j]` for `j < y.len()`, `p < k`; with
/// `accumulate`, `y[j] += ` that sum (the sum is formed first, then added,
/// as the GEMM's `beta = 1` does).
///
/// # Panics
/// When a slice is shorter than the sizes and strides say (callers check
/// shapes first; the indexing is checked, never unchecked).
pub(crate) fn row_times_matrix(x: &[f32], x_stride: usize, b: &[f32], ldb: usize, k: usize, y: &mut [f32], accumulate: bool) {
    kernel(x, x_stride, b, ldb, k, y, accumulate);
}

/// [`row_times_matrix`], its output columns split in two, the second part run
/// by the helper thread (`crate::handoff`) when the product is large enough and
/// the caller is in a one-sample inference pass. Every output is the same chain whichever thread
/// computes it, so the bits are those of [`row_times_matrix`].
///
/// # Panics
/// As [`row_times_matrix`].
pub(crate) fn row_times_matrix_shared(x: &[f32], x_stride: usize, b: &[f32], ldb: usize, k: usize, y: &mut [f32], accumulate: bool) {
    let n = y.len();
    if n < 2 * WIDE || k.saturating_mul(n) < SHARE_MACS || !crate::handoff::sharing() {
        return kernel(x, x_stride, b, ldb, k, y, accumulate);
    }
    split_with_helper(x, x_stride, b, ldb, k, y, accumulate);
}

/// The split of [`row_times_matrix_shared`], unconditionally.
fn split_with_helper(x: &[f32], x_stride: usize, b: &[f32], ldb: usize, k: usize, y: &mut [f32], accumulate: bool) {
    let n = y.len();
    // A whole number of 16-wide vectors in the first part.
    let half = (n / 2).next_multiple_of(16);
    let (first, second) = y.split_at_mut(half);
    let out = SharedOut(second.as_mut_ptr(), second.len());
    let b_rest = &b[half..];
    let rest = move || {
        // SAFETY: `both` runs this once at a time (on the helper, or on the
        // caller after the helper finished or never started), while `y` is
        // borrowed by this function; nothing else touches this part.
        let y = unsafe { std::slice::from_raw_parts_mut(out.ptr(), out.1) };
        kernel(x, x_stride, b_rest, ldb, k, y, accumulate);
    };
    crate::handoff::both(|| kernel(x, x_stride, b, ldb, k, first, accumulate), &rest);
}

/// The helper's part of the output, handed across threads.
#[derive(Clone, Copy)]
struct SharedOut(*mut f32, usize);
// SAFETY: see `row_times_matrix_shared`: one writer at a time, joined before return.
unsafe impl Send for SharedOut {}
unsafe impl Sync for SharedOut {}

impl SharedOut {
    /// The pointer (a method, so closures capture the whole wrapper).
    fn ptr(&self) -> *mut f32 {
        self.0
    }
}

#[multiversion::multiversion(targets("x86_64+avx512f+avx512bw+avx512vl+avx512dq", "x86_64+avx2+fma"))]
fn kernel(x: &[f32], x_stride: usize, b: &[f32], ldb: usize, k: usize, y: &mut [f32], accumulate: bool) {
    let n = y.len();
    let mut j = 0;
    while n - j >= WIDE {
        block::<WIDE>(x, x_stride, b, ldb, k, j, &mut y[j..j + WIDE], accumulate);
        j += WIDE;
    }
    // What is left in halving blocks, so a narrow layer (64 outputs, 10
    // outputs) still runs several chains side by side.
    if n - j >= 64 {
        block::<64>(x, x_stride, b, ldb, k, j, &mut y[j..j + 64], accumulate);
        j += 64;
    }
    if n - j >= 32 {
        block::<32>(x, x_stride, b, ldb, k, j, &mut y[j..j + 32], accumulate);
        j += 32;
    }
    if n - j >= 16 {
        block::<16>(x, x_stride, b, ldb, k, j, &mut y[j..j + 16], accumulate);
        j += 16;
    }
    if j < n {
        tail(x, x_stride, b, ldb, k, j, &mut y[j..], accumulate);
    }
}

/// Outputs `j0..j0 + W`: `W` accumulators, one pass over the depth.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn block<const W: usize>(x: &[f32], x_stride: usize, b: &[f32], ldb: usize, k: usize, j0: usize, y: &mut [f32], accumulate: bool) {
    let mut acc = [0.0f32; W];
    for p in 0..k {
        let xp = x[p * x_stride];
        let row: &[f32; W] = b[p * ldb + j0..p * ldb + j0 + W].try_into().expect("a block of W values");
        for (a, &w) in acc.iter_mut().zip(row) {
            *a = xp.mul_add(w, *a);
        }
    }
    let y: &mut [f32; W] = y.try_into().expect("a block of W outputs");
    if accumulate {
        for (o, a) in y.iter_mut().zip(acc) {
            *o += a;
        }
    } else {
        *y = acc;
    }
}

/// The last `y.len() < 16` outputs from `j0`: [`block`] at that width, each
/// width compiled on its own so the loop body is unrolled and unchecked (a
/// run-time width cost ~5 instructions per multiply-add on a 10-unit layer).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn tail(x: &[f32], x_stride: usize, b: &[f32], ldb: usize, k: usize, j0: usize, y: &mut [f32], accumulate: bool) {
    macro_rules! widths {
        ($($w:literal)*) => {
            match y.len() {
                $($w => block::<$w>(x, x_stride, b, ldb, k, j0, y, accumulate),)*
                _ => unreachable!("a tail is narrower than 16 outputs"),
            }
        };
    }
    widths!(1 2 3 4 5 6 7 8 9 10 11 12 13 14 15);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filled(len: usize, seed: u32) -> Vec<f32> {
        (0..len).map(|i| (((i as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 16) % 200) as f32 / 100.0 - 1.0).collect()
    }

    /// Each output is the in-order FMA chain, on every block width (wide,
    /// narrow and single tails), with strided `x` and padded rows of `b`.
    #[test]
    fn every_output_is_the_in_order_fma_chain() {
        for &(k, n, x_stride, ldb) in &[(1, 1, 1, 1), (784, 256, 1, 256), (300, 128 + 64 + 32 + 16 + 5, 3, 260), (40, 128 + 16 + 5, 1, 149), (7, 15, 1, 20), (0, 9, 1, 9), (64, 10, 2, 10)] {
            let x = filled(k * x_stride, 1);
            let b = filled(k * ldb, 2);
            let base = filled(n, 3);
            for accumulate in [false, true] {
                let mut y = base.clone();
                row_times_matrix(&x, x_stride, &b, ldb, k, &mut y, accumulate);
                for j in 0..n {
                    let chain = (0..k).fold(0.0f32, |acc, p| x[p * x_stride].mul_add(b[p * ldb + j], acc));
                    let want = if accumulate { base[j] + chain } else { chain };
                    assert_eq!(y[j].to_bits(), want.to_bits(), "k {k} n {n} j {j} accumulate {accumulate}");
                    let exact: f64 = (0..k).map(|p| f64::from(x[p * x_stride]) * f64::from(b[p * ldb + j])).sum();
                    assert!((f64::from(chain) - exact).abs() <= 1e-5 * (k as f64 + 1.0), "k {k} j {j}: {chain} vs {exact}");
                }
            }
        }
    }

    /// The columns split with the helper thread give the bits of one pass,
    /// overwriting or accumulating, whether the helper or the caller ran the
    /// second part (repeated, so both happen on an idle machine).
    #[test]
    fn the_split_with_the_helper_is_bit_identical() {
        for &(k, n, x_stride, ldb) in &[(784, 256, 1, 256), (300, 128 + 64 + 5, 2, 200), (64, 32, 1, 40), (513, 49, 1, 49)] {
            let x = filled(k * x_stride, 4);
            let b = filled(k * ldb, 5);
            let base = filled(n, 6);
            for accumulate in [false, true] {
                let mut want = base.clone();
                row_times_matrix(&x, x_stride, &b, ldb, k, &mut want, accumulate);
                for _ in 0..200 {
                    let mut got = base.clone();
                    split_with_helper(&x, x_stride, &b, ldb, k, &mut got, accumulate);
                    assert_eq!(want, got, "k {k} n {n} accumulate {accumulate}");
                }
            }
        }
    }
}
