//! Per-shape timings of `matmul` on the products a training step actually runs:
//! the three layers of 784-256-128-10 at batch 32/128/512 (forward, weight
//! gradient, input gradient), the wide 784-1024-1024-10 model, the recurrent
//! step product of `compare_rnn.py`, the convolutions of `compare_conv.py`
//! and the one-sample products of `predict` (784-256-128-10 and 64-64-10).
//!
//! Run: `cargo bench --bench gemm_shapes -- [threads] [filter]` (default 2
//! threads, every shape). Prints the median time per product over several
//! rounds and its GFLOP/s, so two builds can be run alternately and compared
//! (an A/B of the kernels, rather than criterion's absolute estimates).
//! The timing loop runs inside the pool, as a training step does.

use std::time::Instant;

use ferronn::kernels::gemm::{matmul, matmul_packed, Op, PackedRhs};
use ferronn::tensor::{MatMut, Matrix};
use ferronn::threads;

/// A deterministic matrix with entries in [-1, 1).
fn filled(rows: usize, cols: usize, seed: u32) -> Matrix {
    let data = (0..rows * cols)
        .map(|i| (((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) >> 16) % 2000) as f32 / 1000.0 - 1.0)
        .collect();
    Matrix::from_vec(rows, cols, data).expect("length matches shape")
}

/// `c (m×n) = op_a(a) · op_b(b)`, a and b stored row-major as `a`/`b` shapes.
struct Case {
    name: String,
    a: (usize, usize),
    op_a: Op,
    b: (usize, usize),
    op_b: Op,
    accumulate: bool,
    /// Time one `PackedRhs::pack` of b plus `STEPS` products reading it (a
    /// recurrent pass), reported per product.
    packed: bool,
    /// Read b from a pack made once before timing (inference with weights
    /// packed once per update).
    prepacked: bool,
}

/// Time steps of `compare_rnn.py`.
const STEPS: usize = 28;

fn case(name: String, a: (usize, usize), op_a: Op, b: (usize, usize), op_b: Op) -> Case {
    Case { name, a, op_a, b, op_b, accumulate: false, packed: false, prepacked: false }
}

impl Case {
    fn mkn(&self) -> (usize, usize, usize) {
        let (m, k) = if self.op_a == Op::N { self.a } else { (self.a.1, self.a.0) };
        let n = if self.op_b == Op::N { self.b.1 } else { self.b.0 };
        (m, k, n)
    }
}

fn cases() -> Vec<Case> {
    let mut out = Vec::new();
    for batch in [32, 128, 512] {
        for (i, &(din, dout)) in [(784, 256), (256, 128), (128, 10)].iter().enumerate() {
            out.push(case(format!("mlp_b{batch}_L{i}_fwd"), (batch, din), Op::N, (din, dout), Op::N));
            out.push(case(format!("mlp_b{batch}_L{i}_dW"), (batch, din), Op::T, (batch, dout), Op::N));
            if i > 0 {
                out.push(case(format!("mlp_b{batch}_L{i}_dx"), (batch, dout), Op::N, (din, dout), Op::T));
            }
        }
    }
    // Small-batch inference: the forward products, W read in place and from a
    // pack made once.
    for batch in [8, 32] {
        for (i, &(din, dout)) in [(784, 256), (256, 128), (128, 10)].iter().enumerate() {
            out.push(case(format!("predict_b{batch}_L{i}"), (batch, din), Op::N, (din, dout), Op::N));
            let mut pre = case(format!("predict_b{batch}_L{i}_prepacked"), (batch, din), Op::N, (din, dout), Op::N);
            pre.prepacked = true;
            out.push(pre);
        }
    }
    // One-sample inference (`predict` at batch 1): row times matrix.
    for (i, &(din, dout)) in [(784, 256), (256, 128), (128, 10), (64, 64), (64, 10)].iter().enumerate() {
        out.push(case(format!("predict_b1_L{i}_{din}x{dout}"), (1, din), Op::N, (din, dout), Op::N));
    }
    for (i, &(din, dout)) in [(784, 1024), (1024, 1024), (1024, 10)].iter().enumerate() {
        out.push(case(format!("wide_b512_L{i}_fwd"), (512, din), Op::N, (din, dout), Op::N));
        out.push(case(format!("wide_b512_L{i}_dW"), (512, din), Op::T, (512, dout), Op::N));
        if i > 0 {
            out.push(case(format!("wide_b512_L{i}_dx"), (512, dout), Op::N, (din, dout), Op::T));
        }
    }
    for (cell, g) in [("lstm", 4), ("gru", 3), ("rnn", 1)] {
        let gh = g * 128;
        out.push(case(format!("{cell}_b128_step_fwd"), (128, 128), Op::N, (gh, 128), Op::T));
        let mut back = case(format!("{cell}_b128_step_bwd"), (128, gh), Op::N, (gh, 128), Op::N);
        back.accumulate = true;
        let mut fwd_packed = case(format!("{cell}_b128_step_fwd_packed"), (128, 128), Op::N, (gh, 128), Op::T);
        fwd_packed.packed = true;
        let mut back_packed = case(format!("{cell}_b128_step_bwd_packed"), (128, gh), Op::N, (gh, 128), Op::N);
        (back_packed.accumulate, back_packed.packed) = (true, true);
        out.extend([back, fwd_packed, back_packed]);
        out.push(case(format!("{cell}_b128_proj_fwd"), (128 * 28, 28), Op::N, (gh, 28), Op::T));
        out.push(case(format!("{cell}_b128_dWhh"), (128 * 28, gh), Op::T, (128 * 28, 128), Op::N));
        // The all-steps products with the F = 28 input side: `dW_ih` both
        // ways round, `dx`, and `dW_ih` and `dW_hh` as one product over
        // `[x | h]` (F + units columns), both ways round.
        out.push(case(format!("{cell}_b128_dWhh_t"), (128 * 28, 128), Op::T, (128 * 28, gh), Op::N));
        out.push(case(format!("{cell}_b128_dWih"), (128 * 28, gh), Op::T, (128 * 28, 28), Op::N));
        out.push(case(format!("{cell}_b128_dWih_t"), (128 * 28, 28), Op::T, (128 * 28, gh), Op::N));
        out.push(case(format!("{cell}_b128_dx"), (128 * 28, gh), Op::N, (gh, 28), Op::N));
        out.push(case(format!("{cell}_b128_dWcat"), (128 * 28, gh), Op::T, (128 * 28, 156), Op::N));
        out.push(case(format!("{cell}_b128_dWcat_t"), (128 * 28, 156), Op::T, (128 * 28, gh), Op::N));
    }
    for batch in [64, 128] {
        let (r1, r2) = (batch * 28 * 28, batch * 14 * 14);
        out.push(case(format!("cnn_b{batch}_c1_fwd"), (r1, 9), Op::N, (9, 32), Op::N));
        out.push(case(format!("cnn_b{batch}_c1_dW"), (r1, 9), Op::T, (r1, 32), Op::N));
        out.push(case(format!("cnn_b{batch}_c2_fwd"), (r2, 288), Op::N, (288, 64), Op::N));
        out.push(case(format!("cnn_b{batch}_c2_dW"), (r2, 288), Op::T, (r2, 64), Op::N));
        out.push(case(format!("cnn_b{batch}_c2_dx"), (r2, 64), Op::N, (288, 64), Op::T));
    }
    out
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let threads: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(2);
    let filter = args.get(1).cloned().unwrap_or_default();
    threads::set_num_threads(threads).expect("start the thread pool");
    println!("{:<24} {:>10} {:>8}   ({threads} threads, median of 7 rounds)", "shape", "us", "GFLOP/s");
    for c in cases().into_iter().filter(|c| c.name.contains(&filter)) {
        let (a, b) = (filled(c.a.0, c.a.1, 1), filled(c.b.0, c.b.1, 2));
        let (m, k, n) = c.mkn();
        let mut out = Matrix::zeros(m, n);
        let flops = 2.0 * (m * k * n) as f64;
        // About 20 ms per round.
        let per_rep = if c.packed { STEPS } else { 1 };
        let reps = ((2e-2 * 1e11 / flops) as usize / per_rep).clamp(3, 20_000);
        let mut rounds: Vec<f64> = threads::install(|| {
            let mut pack = PackedRhs::new();
            if c.prepacked {
                pack.pack(b.view(), c.op_b, m).expect("room for the pack");
            }
            let mut run = |out: &mut Matrix| {
                if c.packed {
                    pack.pack(b.view(), c.op_b, m).expect("room for the pack");
                    for _ in 0..STEPS {
                        let dst = MatMut { rows: m, cols: n, data: out.as_mut_slice() };
                        matmul_packed(a.view(), c.op_a, b.view(), c.op_b, &pack, dst, c.accumulate).expect("shapes agree");
                    }
                } else if c.prepacked {
                    let dst = MatMut { rows: m, cols: n, data: out.as_mut_slice() };
                    matmul_packed(a.view(), c.op_a, b.view(), c.op_b, &pack, dst, c.accumulate).expect("shapes agree");
                } else {
                    let dst = MatMut { rows: m, cols: n, data: out.as_mut_slice() };
                    matmul(a.view(), c.op_a, b.view(), c.op_b, dst, c.accumulate).expect("shapes agree");
                }
            };
            for _ in 0..reps.min(50) {
                run(&mut out);
            }
            (0..7)
                .map(|_| {
                    let start = Instant::now();
                    for _ in 0..reps {
                        run(&mut out);
                    }
                    start.elapsed().as_secs_f64() / (reps * per_rep) as f64
                })
                .collect()
        });
        rounds.sort_by(f64::total_cmp);
        let t = rounds[3];
        println!("{:<24} {:>10.2} {:>8.1}", c.name, t * 1e6, flops / t / 1e9);
    }
}
