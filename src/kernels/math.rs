//! Branchless f32 transcendentals for elementwise kernels.
//!
//! libm's `expf`, `tanhf` and `erff` are opaque calls with branches, so a loop
//! over them runs one element at a time. These versions use only arithmetic,
//! bit casts and selects; marked `#[inline(always)]`, they inline into the
//! caller's loop, which LLVM then vectorises with whatever instruction set the
//! enclosing (multiversioned) function was compiled for. None of them uses
//! `mul_add`: without FMA hardware it becomes a libm call, and plain multiply-add
//! also keeps every dispatch target bit-identical (Rust never contracts `a*b+c`).
//!
//! Polynomial coefficients were fitted for this file (weighted least squares
//! iterated towards minimax in float64, then rounded to f32); accuracies are
//! measured against float64 in `tests/activation.rs`.

use std::f32::consts::{FRAC_1_SQRT_2, FRAC_2_SQRT_PI, LN_2, LOG2_E};

use multiversion::multiversion;

/// Adding then subtracting 1.5·2^23 rounds an f32 of magnitude < 2^22 to an
/// integer, and leaves that integer in the low mantissa bits.
const ROUND_MAGIC: f32 = 12_582_912.0;
const ROUND_MAGIC_BITS: i32 = 0x4B40_0000;
/// ln 2 split so that `n * LN2_HI` is exact for every reachable n (LN2_HI has 9
/// significant bits), which keeps the reduced argument accurate (Cody–Waite).
const LN2_HI: f32 = 355.0 / 512.0;
const LN2_LO: f32 = -2.121_944_4e-4;

/// e^r − 1 = r + r²·Q(r) on |r| ≤ ln2/2 (relative error 1.4e-8).
const EXPM1_Q: [f32; 5] = [
    0.499_999_97,
    0.166_665_39,
    0.041_667_22,
    0.008_367_173,
    0.001_388_239_7,
];
/// erf(a) = a·P(a²) on 0 ≤ a ≤ 1 (relative error 1.2e-9).
const ERF_SMALL: [f32; 7] = [
    FRAC_2_SQRT_PI,
    -0.376_126_26,
    0.112_835_854,
    -0.026_853_813,
    0.005_188_329_6,
    -0.000_801_020_9,
    7.853_907e-5,
];
/// erfc(a) = e^(−a²)·G(t), t = 1/(1 + a/2), on a ≥ 1 (relative error 6.8e-9).
const ERFC_TAIL: [f32; 9] = [
    -2.755_76e-6,
    0.282_167_3,
    0.281_314_6,
    0.251_164_38,
    0.164_113_75,
    0.092_653_684,
    0.041_154_902,
    -0.196_391_52,
    0.084_305_62,
];
/// 2·atanh(s) = s·L(s²) on |s| ≤ 0.1716 (relative error below 1e-9).
const LOG_ATANH: [f32; 4] = [2.0, 0.666_668_2, 0.399_747_82, 0.299_260_38];

/// Above this, e^x exceeds f32::MAX; inputs are clamped here so exp stays finite.
const EXP_HI: f32 = 88.722_83;
/// ln(f32::MIN_POSITIVE) rounded up: below this e^x would be subnormal, and exp
/// returns 0 instead. Subnormal results would cost a microcode assist (~100
/// cycles per vector) in every later operation on them, and are far below
/// anything a network can resolve.
const EXP_LO: f32 = -87.336_54;

#[inline(always)]
fn horner<const N: usize>(c: &[f32; N], x: f32) -> f32 {
    let mut acc = c[N - 1];
    let mut i = N - 1;
    while i > 0 {
        i -= 1;
        acc = acc * x + c[i];
    }
    acc
}

/// Clamps without `f32::min/max`, whose NaN rule would turn NaN into a bound.
#[inline(always)]
fn clamp_keep_nan(x: f32, lo: f32, hi: f32) -> f32 {
    let x = if x < lo { lo } else { x };
    if x > hi {
        hi
    } else {
        x
    }
}

/// 2^k for -126 ≤ k ≤ 127, built directly in the exponent field.
#[inline(always)]
fn pow2i(k: i32) -> f32 {
    f32::from_bits((k.wrapping_add(127) as u32) << 23)
}

/// Splits x into n·ln2 + r with |r| ≤ ln2/2 and returns (n, e^r − 1).
#[inline(always)]
fn reduce(x: f32) -> (i32, f32) {
    let t = x * LOG2_E + ROUND_MAGIC;
    let n = (t.to_bits() as i32).wrapping_sub(ROUND_MAGIC_BITS);
    let nf = t - ROUND_MAGIC;
    let r = (x - nf * LN2_HI) - nf * LN2_LO;
    (n, r + r * r * horner(&EXPM1_Q, r))
}

/// e^x, relative error below 1e-7 (measured 8.3e-8).
///
/// Inputs above 88.72 give about `3.4e38` (finite, never infinity); inputs
/// below -87.3365 (where e^x < `f32::MIN_POSITIVE`) give exactly 0, so the
/// result is never subnormal. NaN propagates.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    let xc = clamp_keep_nan(x, EXP_LO, EXP_HI);
    let (n, p) = reduce(xc);
    // n spans [-126, 128]: 2^128 has no f32, so scale by two halves.
    let n1 = n >> 1;
    let y = (1.0 + p) * pow2i(n1) * pow2i(n.wrapping_sub(n1));
    if x < EXP_LO {
        0.0
    } else {
        y
    }
}

/// e^x − 1, accurate (relative error ~1e-7) also for tiny |x|, where `exp(x) - 1`
/// would cancel. Inputs are clamped to [-30, 88.37] (the result is then −1, or
/// about 2.4e38), so the result is always finite. NaN propagates.
#[inline(always)]
pub fn expm1(x: f32) -> f32 {
    let x = clamp_keep_nan(x, -30.0, 88.37);
    let (n, p) = reduce(x);
    // e^x − 1 = 2^n·(e^r − 1) + (2^n − 1): for n = 0 this is the polynomial
    // alone, and 2^n − 1 is exact for |n| ≤ 24, so nothing cancels near 0.
    let s = pow2i(n);
    s * p + (s - 1.0)
}

/// Hyperbolic tangent; absolute error below 2e-7 and relative error below
/// 2e-7 everywhere, including tiny inputs. Saturates to ±1. NaN propagates.
#[inline(always)]
pub fn tanh(x: f32) -> f32 {
    // tanh|x| = −m/(2 + m) with m = expm1(−2|x|) ∈ (−1, 0]: expm1 keeps the
    // relative accuracy near 0, and the argument is never positive, so nothing
    // can overflow.
    let m = expm1(-2.0 * x.abs());
    (-m / (2.0 + m)).copysign(x)
}

/// Logistic function 1/(1 + e^−x), relative error below 2e-7 where the result
/// is normal; computed from e^−|x| so that neither tail overflows or cancels.
#[inline(always)]
pub fn sigmoid(x: f32) -> f32 {
    let e = exp(-x.abs());
    let s = 1.0 / (1.0 + e);
    if x >= 0.0 {
        s
    } else {
        e * s
    }
}

#[inline(always)]
fn erf_small(a: f32) -> f32 {
    a * horner(&ERF_SMALL, a * a)
}

/// erfc(a) for a ≥ 1; finite but inaccurate below 1, where callers select the
/// other branch.
#[inline(always)]
fn erfc_tail(a: f32) -> f32 {
    let t = 1.0 / (1.0 + 0.5 * a);
    exp(-(a * a)) * horner(&ERFC_TAIL, t)
}

/// Error function; absolute error below 2e-7. NaN propagates.
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    let a = x.abs();
    let big = 1.0 - erfc_tail(a);
    let small = erf_small(a);
    (if a > 1.0 { big } else { small }).copysign(x)
}

/// Complementary error function 1 − erf(x), keeping a relative error below
/// ~4e-6 in the upper tail, where `1.0 - erf(x)` would cancel (it becomes 0
/// where e^(−x²) is no longer a normal f32, x ≳ 9.3).
#[inline(always)]
pub fn erfc(x: f32) -> f32 {
    let a = x.abs();
    let c = if a > 1.0 {
        erfc_tail(a)
    } else {
        1.0 - erf_small(a)
    };
    if x < 0.0 {
        2.0 - c
    } else {
        c
    }
}

/// Standard normal CDF Φ(x) = (1 + erf(x/√2))/2, accurate in relative terms in
/// the lower tail (GELU needs x·Φ(x) for very negative x, where the textbook
/// formula cancels).
#[inline(always)]
pub fn normal_cdf(x: f32) -> f32 {
    let a = (x * FRAC_1_SQRT_2).abs();
    let half_tail = 0.5 * erfc_tail(a);
    let tail = if x < 0.0 { half_tail } else { 1.0 - half_tail };
    let centre = 0.5 + 0.5 * erf_small(a).copysign(x);
    if a > 1.0 {
        tail
    } else {
        centre
    }
}

/// ln(1 + e) for 0 ≤ e ≤ 1, without libm's scalar `log1pf`.
#[inline(always)]
fn ln_1p_unit(e: f32) -> f32 {
    // Near 1, shift by ln 2 (ln(1+e) = ln2 + ln(1 + (e−1)/2)) so that the atanh
    // series argument s = m/(2+m) stays within ±0.1716.
    let big = e > std::f32::consts::SQRT_2 - 1.0;
    let m = if big { (e - 1.0) * 0.5 } else { e };
    let s = m / (2.0 + m);
    let series = s * horner(&LOG_ATANH, s * s);
    if big {
        series + LN_2
    } else {
        series
    }
}

/// Softplus ln(1 + e^x) = max(x, 0) + ln(1 + e^−|x|), which neither overflows
/// nor loses the tiny values of the lower tail. NaN propagates.
#[inline(always)]
pub fn softplus(x: f32) -> f32 {
    let pos = if x > 0.0 { x } else { 0.0 };
    pos + ln_1p_unit(exp(-x.abs()))
}

/// Applies `f` elementwise; `inline(always)` so that each multiversioned caller
/// gets the loop vectorised for its own instruction set.
#[inline(always)]
fn map(x: &[f32], out: &mut [f32], f: impl Fn(f32) -> f32) {
    debug_assert_eq!(x.len(), out.len(), "input and output lengths differ");
    for (o, &v) in out.iter_mut().zip(x) {
        *o = f(v);
    }
}

/// `out[i] = exp(x[i])`, vectorised for the best instruction set of this CPU.
///
/// # Shapes
/// `x` and `out` have the same length (extra elements of the longer are left alone).
#[multiversion(targets("x86_64+avx512f+avx512bw+avx512vl+avx512dq", "x86_64+avx2+fma"))]
pub fn exp_slice(x: &[f32], out: &mut [f32]) {
    map(x, out, exp);
}

/// `out[i] = expm1(x[i])`, vectorised; shapes as in [`exp_slice`].
#[multiversion(targets("x86_64+avx512f+avx512bw+avx512vl+avx512dq", "x86_64+avx2+fma"))]
pub fn expm1_slice(x: &[f32], out: &mut [f32]) {
    map(x, out, expm1);
}

/// `out[i] = tanh(x[i])`, vectorised; shapes as in [`exp_slice`].
#[multiversion(targets("x86_64+avx512f+avx512bw+avx512vl+avx512dq", "x86_64+avx2+fma"))]
pub fn tanh_slice(x: &[f32], out: &mut [f32]) {
    map(x, out, tanh);
}

/// `out[i] = sigmoid(x[i])`, vectorised; shapes as in [`exp_slice`].
#[multiversion(targets("x86_64+avx512f+avx512bw+avx512vl+avx512dq", "x86_64+avx2+fma"))]
pub fn sigmoid_slice(x: &[f32], out: &mut [f32]) {
    map(x, out, sigmoid);
}

/// `out[i] = erf(x[i])`, vectorised; shapes as in [`exp_slice`].
#[multiversion(targets("x86_64+avx512f+avx512bw+avx512vl+avx512dq", "x86_64+avx2+fma"))]
pub fn erf_slice(x: &[f32], out: &mut [f32]) {
    map(x, out, erf);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rel(a: f32, b: f64) -> f64 {
        ((a as f64) - b).abs() / b.abs().max(f64::MIN_POSITIVE)
    }

    #[test]
    fn exp_matches_f64_on_normal_range() {
        let mut worst = 0.0f64;
        for i in 0..=100_000 {
            let x = -87.0 + 175.0 * i as f32 / 100_000.0;
            worst = worst.max(rel(exp(x), (x as f64).exp()));
        }
        assert!(worst < 2e-7, "exp relative error {worst}");
    }

    #[test]
    fn exp_edges_stay_finite_or_zero() {
        assert!(exp(89.0).is_finite() && exp(f32::INFINITY).is_finite());
        assert!(exp(88.7) > 3.0e38);
        assert_eq!(exp(-200.0), 0.0);
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp(-87.34), 0.0, "flushed instead of subnormal");
        assert!(exp(-87.336) >= f32::MIN_POSITIVE);
        assert!(exp(f32::NAN).is_nan() && tanh(f32::NAN).is_nan() && erf(f32::NAN).is_nan());
        assert_eq!(exp(0.0), 1.0);
    }

    #[test]
    fn tanh_is_accurate_near_zero_and_saturates() {
        for &x in &[1e-30f32, 1e-10, 1e-5, 1e-3, 0.1, 0.3] {
            assert!(rel(tanh(x), (x as f64).tanh()) < 3e-7, "tanh({x})");
            assert_eq!(tanh(-x), -tanh(x));
        }
        assert_eq!(tanh(50.0), 1.0);
        assert_eq!(tanh(-1e30), -1.0);
        assert!(tanh(-0.0).is_sign_negative());
    }

    #[test]
    fn sigmoid_and_softplus_tails() {
        assert_eq!(sigmoid(1e30), 1.0);
        assert_eq!(sigmoid(-1e30), 0.0);
        assert!(rel(sigmoid(-80.0), 1.0 / (1.0 + 80f64.exp())) < 1e-6);
        assert_eq!(softplus(1e30), 1e30);
        assert!(rel(softplus(-80.0), (-80f64).exp().ln_1p()) < 1e-6);
        assert!(rel(softplus(0.0), 2f64.ln()) < 1e-7);
    }

    #[test]
    fn erf_family_is_consistent() {
        assert_eq!(erf(0.0), 0.0);
        assert_eq!(erf(10.0), 1.0);
        assert_eq!(erf(-10.0), -1.0);
        for i in -300..=300 {
            let x = i as f32 / 50.0;
            assert!((erf(x) + erfc(x) - 1.0).abs() < 3e-7, "erf+erfc at {x}");
            let phi = 0.5 * (1.0 + erf(x * FRAC_1_SQRT_2));
            assert!((normal_cdf(x) - phi).abs() < 3e-7, "normal_cdf at {x}");
        }
        // The lower tail keeps its relative accuracy: Φ(−6) ≈ 9.8659e-10.
        assert!(rel(normal_cdf(-6.0), 9.865_876_450_377e-10) < 1e-5);
    }

    #[test]
    fn expm1_is_relative_accurate_near_zero() {
        for &x in &[1e-20f32, -1e-7, 3e-4, -0.2, 0.34, -0.35, 1.0, -5.0, 20.0] {
            assert!(rel(expm1(x), (x as f64).exp_m1()) < 2e-7, "expm1({x})");
        }
        assert_eq!(expm1(-100.0), -1.0);
        assert!(expm1(1000.0).is_finite());
    }

    #[test]
    fn slices_match_scalars() {
        let x: Vec<f32> = (0..1001).map(|i| (i as f32 - 500.0) * 0.037).collect();
        let mut out = vec![0.0; x.len()];
        type Case = (fn(&[f32], &mut [f32]), fn(f32) -> f32);
        let cases: [Case; 5] = [
            (exp_slice, exp),
            (expm1_slice, expm1),
            (tanh_slice, tanh),
            (sigmoid_slice, sigmoid),
            (erf_slice, erf),
        ];
        for (slice_fn, scalar) in cases {
            slice_fn(&x, &mut out);
            for (&o, &v) in out.iter().zip(&x) {
                assert_eq!(o.to_bits(), scalar(v).to_bits(), "at {v}");
            }
        }
    }
}
