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
//! offers: 16 lanes with AVX-512F (in assembly), 8 with AVX2+FMA, otherwise a scalar
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
    ///
    /// Written in assembly because the AVX-512 intrinsics need a newer Rust
    /// than the crate's minimum. It uses only `zmm16`–`zmm29`, registers that
    /// code compiled without AVX-512 never touches, so nothing the compiler
    /// keeps in vector registers is clobbered; they start at zero (no
    /// denormals), and the sum is not read back (the time is what counts).
    ///
    /// # Safety
    /// The CPU must support AVX-512F.
    pub unsafe fn avx512(_seed: f32) -> (f32, f64) {
        let mut n = ITERS;
        std::arch::asm!(
            "vpxord zmm16, zmm16, zmm16", "vpxord zmm17, zmm17, zmm17",
            "vpxord zmm18, zmm18, zmm18", "vpxord zmm19, zmm19, zmm19",
            "vpxord zmm20, zmm20, zmm20", "vpxord zmm21, zmm21, zmm21",
            "vpxord zmm22, zmm22, zmm22", "vpxord zmm23, zmm23, zmm23",
            "vpxord zmm24, zmm24, zmm24", "vpxord zmm25, zmm25, zmm25",
            "vpxord zmm26, zmm26, zmm26", "vpxord zmm27, zmm27, zmm27",
            "vpxord zmm28, zmm28, zmm28", "vpxord zmm29, zmm29, zmm29",
            "2:",
            "vfmadd231ps zmm16, zmm28, zmm29", "vfmadd231ps zmm17, zmm28, zmm29",
            "vfmadd231ps zmm18, zmm28, zmm29", "vfmadd231ps zmm19, zmm28, zmm29",
            "vfmadd231ps zmm20, zmm28, zmm29", "vfmadd231ps zmm21, zmm28, zmm29",
            "vfmadd231ps zmm22, zmm28, zmm29", "vfmadd231ps zmm23, zmm28, zmm29",
            "vfmadd231ps zmm24, zmm28, zmm29", "vfmadd231ps zmm25, zmm28, zmm29",
            "vfmadd231ps zmm26, zmm28, zmm29", "vfmadd231ps zmm27, zmm28, zmm29",
            "dec {n}",
            "jnz 2b",
            n = inout(reg) n,
            options(nostack, nomem),
        );
        let _ = n;
        debug_assert_eq!(CHAINS, 12);
        (0.0, (ITERS * CHAINS * 16 * 2) as f64)
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

/// A kernel: takes a seed, returns a value to keep alive and the FLOPs done.
type Kernel = fn(f32) -> (f32, f64);

/// The widest kernel this CPU runs, and its name.
fn kernel() -> (Kernel, &'static str) {
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
fn run(f: Kernel, threads: usize) -> f64 {
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
    let nums: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let threads = nums
        .first()
        .copied()
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let rounds = nums.get(1).copied().unwrap_or(5).max(1);
    let (f, name) = kernel();
    println!("FMA peak ({name}), median of {rounds} runs:");
    let one = median((0..rounds).map(|_| run(f, 1)).collect());
    println!("  1 thread:   {one:7.1} GFLOP/s");
    if threads > 1 {
        let all = median((0..rounds).map(|_| run(f, threads)).collect());
        println!(
            "  {threads} threads: {all:7.1} GFLOP/s ({:.2}x one thread)",
            all / one
        );
    }
}
