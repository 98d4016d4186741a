//! The machine's fused multiply-add ceiling: how many single-precision
//! FLOP/s its cores can retire when they do nothing but independent FMAs,
//! measured on 1 thread and on `threads` threads at once (one per core).
//!
//! Issue 15 sets its training goals against this limit ("≈ 84% of peak"), and
//! a ratio against a peer means little once both run near it: this bench says
//! where the limit is on the machine at hand, so the GEMM rate and the
//! training rates of `benches/compare.py` can be read as fractions of it.
//! (A virtual machine's clock and vector width differ from host to host;
//! this measures instead of assuming.)
//!
//! Each thread runs 12 independent accumulator chains (enough to cover the
//! FMA latency on current x86 cores), with the widest vectors the CPU
//! offers: 16 lanes with AVX-512F, 8 with AVX2+FMA, otherwise a scalar
//! `mul_add` loop (reported as such). Prints the median of `rounds` runs.
//!
//! Run: `cargo bench --bench fma_peak` (add `-- 2 7` for 2 threads and 7 rounds).

use std::hint::black_box;
use std::time::Instant;

/// Iterations of the 12-chain block per timed run.
const ITERS: usize = 20_000_000;
const CHAINS: usize = 12;

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{CHAINS, ITERS};

    /// FLOPs done: 12 chains × 16 lanes × 2 per FMA per iteration.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn avx512(seed: f32) -> (f32, f64) {
        let a = _mm512_set1_ps(0.999_999);
        let b = _mm512_set1_ps(1e-7);
        let mut acc = [_mm512_set1_ps(seed); CHAINS];
        for _ in 0..ITERS {
            for v in acc.iter_mut() {
                *v = _mm512_fmadd_ps(*v, a, b);
            }
        }
        let mut s = _mm512_setzero_ps();
        for v in acc {
            s = _mm512_add_ps(s, v);
        }
        (_mm512_reduce_add_ps(s), (ITERS * CHAINS * 16 * 2) as f64)
    }

    /// FLOPs done: 12 chains × 8 lanes × 2 per FMA per iteration.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn avx2(seed: f32) -> (f32, f64) {
        let a = _mm256_set1_ps(0.999_999);
        let b = _mm256_set1_ps(1e-7);
        let mut acc = [_mm256_set1_ps(seed); CHAINS];
        for _ in 0..ITERS {
            for v in acc.iter_mut() {
                *v = _mm256_fmadd_ps(*v, a, b);
            }
        }
        let mut lanes = [0f32; 8];
        let mut s = _mm256_setzero_ps();
        for v in acc {
            s = _mm256_add_ps(s, v);
        }
        _mm256_storeu_ps(lanes.as_mut_ptr(), s);
        (lanes.iter().sum(), (ITERS * CHAINS * 8 * 2) as f64)
    }
}

/// The scalar fallback: FLOPs done are 12 chains × 2 per iteration.
fn scalar(seed: f32) -> (f32, f64) {
    let mut acc = [seed; CHAINS];
    for _ in 0..ITERS {
        for v in acc.iter_mut() {
            *v = v.mul_add(black_box(0.999_999), 1e-7);
        }
    }
    (acc.iter().sum(), (ITERS * CHAINS * 2) as f64)
}

/// The widest kernel this CPU runs, and its name.
fn kernel() -> (fn(f32) -> (f32, f64), &'static str) {
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512f") {
            // SAFETY: the feature was detected just above.
            return (|s| unsafe { x86::avx512(s) }, "AVX-512F, 16 lanes");
        }
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            // SAFETY: the features were detected just above.
            return (|s| unsafe { x86::avx2(s) }, "AVX2+FMA, 8 lanes");
        }
    }
    (scalar, "scalar mul_add (no wide FMA detected)")
}

/// GFLOP/s of `threads` threads running the kernel at the same time (sum).
fn run(f: fn(f32) -> (f32, f64), threads: usize) -> f64 {
    let t = Instant::now();
    let flops: f64 = std::thread::scope(|s| {
        let hs: Vec<_> = (0..threads)
            .map(|i| {
                s.spawn(move || {
                    let (v, flops) = f(black_box(1.0 + i as f32));
                    black_box(v);
                    flops
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().expect("FMA thread")).sum()
    });
    flops / t.elapsed().as_secs_f64() / 1e9
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let nums: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let threads = nums.first().copied().unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let rounds = nums.get(1).copied().unwrap_or(5).max(1);
    let (f, name) = kernel();
    println!("FMA peak ({name}), median of {rounds} runs:");
    let one = median((0..rounds).map(|_| run(f, 1)).collect());
    println!("  1 thread:   {one:7.1} GFLOP/s");
    if threads > 1 {
        let all = median((0..rounds).map(|_| run(f, threads)).collect());
        println!("  {threads} threads: {all:7.1} GFLOP/s ({:.2}x one thread)", all / one);
    }
}
