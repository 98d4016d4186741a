//! Row and column reductions with a fixed summation order (reproducible).

/// `out[j] = Σ_i x[i, j]` for a row-major `x` with `out.len()` columns, summed
/// row by row so the order never depends on threads. Vectorises across columns
/// (at the widest vectors this CPU has: the lanes are columns, so the width
/// never changes a column's order).
#[multiversion::multiversion(targets("x86_64+avx512f+avx512bw+avx512vl+avx512dq", "x86_64+avx2+fma"))]
pub fn col_sums(x: &[f32], out: &mut [f32]) {
    let cols = out.len();
    out.fill(0.0);
    if cols == 0 {
        return;
    }
    for row in x.chunks_exact(cols) {
        for (o, v) in out.iter_mut().zip(row) {
            *o += *v;
        }
    }
}

/// Index of the largest value in `row` (the first one on ties; NaN never wins).
pub fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    let mut best_v = f32::NEG_INFINITY;
    for (i, &v) in row.iter().enumerate() {
        if v > best_v {
            best_v = v;
            best = i;
        }
    }
    best
}

/// Whether every value is finite (no NaN, no ±inf). Branch-free so it vectorises.
#[multiversion::multiversion(targets("x86_64+avx512f+avx512bw+avx512vl+avx512dq", "x86_64+avx2+fma"))]
pub fn all_finite(x: &[f32]) -> bool {
    // An exponent of all ones marks NaN and inf. Folding with `|` rather than
    // returning early lets the loop vectorise; chunks still stop at the first bad one.
    const EXP: u32 = 0x7f80_0000;
    x.chunks(1024).all(|c| !c.iter().fold(false, |bad, v| bad | (v.to_bits() & EXP == EXP)))
}

/// The largest `|x|`, or `+inf` when a value is NaN or infinite (0 for an
/// empty slice): [`max_abs_bits`] read back as a float.
pub fn max_abs(x: &[f32]) -> f32 {
    abs_bits_to_f32(max_abs_bits(x))
}

/// The largest of the values' bit patterns with the sign cleared. For finite
/// floats their order is the order of the magnitudes, and every NaN and inf
/// pattern lies above every finite one, so one integer max per value (it
/// vectorises like [`all_finite`]) gives both the bound and the finiteness.
/// A maximum is exact in any order: the maxima of pieces combine with `max`
/// into the same result, however the pieces were cut (the optimizer update
/// takes it per chunk, see `optim::update`). Compiled for AVX-512 and AVX2 too:
/// the baseline x86-64 target has no unsigned 32-bit vector max, and a pass
/// over every weight after each update took ~7% of a batch-32 training step.
#[multiversion::multiversion(targets("x86_64+avx512f+avx512bw+avx512vl+avx512dq", "x86_64+avx2+fma"))]
pub fn max_abs_bits(x: &[f32]) -> u32 {
    const ABS: u32 = 0x7fff_ffff;
    x.chunks(1024).fold(0u32, |top, c| c.iter().fold(top, |m, v| m.max(v.to_bits() & ABS)))
}

/// [`all_finite`] on the thread pool in fixed chunks when `x` is large (the
/// input check of a large `predict`, which would otherwise be a serial scan
/// while the pool waits). Whether every value is finite does not depend on
/// how the values were cut, so the answer is the same on any thread count.
pub fn par_all_finite(x: &[f32]) -> bool {
    use rayon::prelude::*;
    if !super::parallel_for(x.len()) {
        return all_finite(x);
    }
    x.par_chunks(super::PAR_CHUNK).all(all_finite)
}

/// [`max_abs`] on the thread pool in fixed chunks when `x` is large (the
/// training step's read of every gradient, which the GEMMs of both threads
/// just wrote). A maximum is exact in any order, so the result is the same on
/// any number of threads.
pub fn par_max_abs(x: &[f32]) -> f32 {
    use rayon::prelude::*;
    if !super::parallel_for(x.len()) {
        return max_abs(x);
    }
    abs_bits_to_f32(x.par_chunks(super::PAR_CHUNK).map(max_abs_bits).max().unwrap_or(0))
}

/// A [`max_abs_bits`] result as the magnitude it stands for, `+inf` for any
/// NaN or infinite pattern.
pub fn abs_bits_to_f32(bits: u32) -> f32 {
    const INF: u32 = 0x7f80_0000;
    if bits >= INF { f32::INFINITY } else { f32::from_bits(bits) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn col_sums_sum_each_column() {
        let x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let mut out = [0.0; 3];
        col_sums(&x, &mut out);
        assert_eq!(out, [5.0, 7.0, 9.0]);
    }

    #[test]
    fn argmax_takes_first_maximum() {
        assert_eq!(argmax(&[1.0, 3.0, 3.0, -1.0]), 1);
        assert_eq!(argmax(&[f32::NAN, 0.5]), 1);
    }

    #[test]
    fn all_finite_finds_nan_and_inf() {
        let mut x = vec![1.0f32; 5000];
        assert!(all_finite(&x));
        x[4321] = f32::NAN;
        assert!(!all_finite(&x));
        x[4321] = f32::NEG_INFINITY;
        assert!(!all_finite(&x));
        x[4321] = f32::MAX;
        assert!(all_finite(&x));
        assert!(all_finite(&[0.0, -0.0, f32::MIN_POSITIVE, 1e-45]));
    }

    #[test]
    fn max_abs_is_the_largest_magnitude_or_inf() {
        let mut x = vec![0.25f32; 3000];
        assert_eq!(max_abs(&x), 0.25);
        x[2500] = -7.5;
        assert_eq!(max_abs(&x), 7.5);
        x[17] = f32::MAX;
        assert_eq!(max_abs(&x), f32::MAX);
        for bad in [f32::NAN, -f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let mut y = x.clone();
            y[2999] = bad;
            assert_eq!(max_abs(&y), f32::INFINITY);
        }
        assert_eq!(max_abs(&[]), 0.0);
        assert_eq!(max_abs(&[-0.0, 1e-45]), 1e-45);
        // Pieces combine with `max` into the whole's maximum, wherever the cut.
        x[2999] = f32::NAN;
        for cut in [0, 17, 18, 1024, 2999, 3000] {
            let (a, b) = x.split_at(cut);
            assert_eq!(max_abs_bits(a).max(max_abs_bits(b)), max_abs_bits(&x));
        }
        assert_eq!(abs_bits_to_f32(max_abs_bits(&x)), f32::INFINITY);
        // On the pool, in chunks: the same maximum, NaN or not.
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        let mut big: Vec<f32> = (0..(1 << 16) + 5).map(|i| (i % 977) as f32 - 500.0).collect();
        assert_eq!(pool.install(|| par_max_abs(&big)), max_abs(&big));
        assert_eq!(par_max_abs(&big), 500.0);
        big[(1 << 16) + 2] = f32::NAN;
        assert_eq!(pool.install(|| par_max_abs(&big)), f32::INFINITY);
    }

    #[test]
    fn par_all_finite_agrees_with_the_serial_scan() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
        let mut big: Vec<f32> = (0..(1 << 17) + 7).map(|i| (i % 977) as f32 - 500.0).collect();
        assert!(pool.install(|| par_all_finite(&big)) && par_all_finite(&big));
        // A bad value anywhere (first chunk, a chunk boundary, the ragged tail),
        // found by the pooled scan and by the one outside the pool.
        for at in [0, super::super::PAR_CHUNK - 1, super::super::PAR_CHUNK, big.len() - 1] {
            for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
                let old = std::mem::replace(&mut big[at], bad);
                assert!(!pool.install(|| par_all_finite(&big)), "{bad} at {at} missed on the pool");
                assert!(!par_all_finite(&big), "{bad} at {at} missed outside the pool");
                big[at] = old;
            }
        }
        assert!(par_all_finite(&[]));
    }
}
