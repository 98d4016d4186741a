//! Matrix-product throughput of `ferronn::kernels::gemm::matmul` (the `gemm`
//! crate underneath), on square sizes and on the three products a dense layer
//! of a 784-256 MLP runs per step at batch 128.
//!
//! Run: `cargo bench --bench gemm`. With `--features bench-faer` the same shapes
//! also run through faer 0.22's `matmul`, in the same thread pool, so the two
//! crates can be compared in one report. Throughput is reported in elements of
//! 2·m·n·k, so criterion's "elem/s" reads directly as FLOP/s.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ferronn::kernels::gemm::{matmul, Op};
use ferronn::tensor::Matrix;
use ferronn::threads;

const THREADS: usize = 2;

/// A deterministic matrix with entries in [-1, 1) (no RNG: the values do not
/// matter for speed, only that they are not all zero or denormal).
fn filled(rows: usize, cols: usize, seed: u32) -> Matrix {
    let data = (0..rows * cols)
        .map(|i| {
            (((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) >> 16) % 2000) as f32
                / 1000.0
                - 1.0
        })
        .collect();
    Matrix::from_vec(rows, cols, data).expect("length matches shape")
}

/// One product `c = op_a(a) · op_b(b)` with its label: a is stored `a_shape`,
/// b is stored `b_shape` (row-major), as a dense layer stores them.
struct Case {
    name: &'static str,
    a_shape: (usize, usize),
    op_a: Op,
    b_shape: (usize, usize),
    op_b: Op,
}

impl Case {
    fn new(name: &'static str, (a_shape, op_a): ((usize, usize), Op), (b_shape, op_b): ((usize, usize), Op)) -> Self {
        Case { name, a_shape, op_a, b_shape, op_b }
    }

    fn square(name: &'static str, n: usize) -> Self {
        Case::new(name, ((n, n), Op::N), ((n, n), Op::N))
    }

    /// (m, k, n) of the product.
    fn mkn(&self) -> (usize, usize, usize) {
        let (m, k) = if self.op_a == Op::N {
            self.a_shape
        } else {
            (self.a_shape.1, self.a_shape.0)
        };
        let n = if self.op_b == Op::N {
            self.b_shape.1
        } else {
            self.b_shape.0
        };
        (m, k, n)
    }

    fn flops(&self) -> u64 {
        let (m, k, n) = self.mkn();
        2 * (m * k * n) as u64
    }
}

fn cases() -> Vec<Case> {
    vec![
        Case::square("square_256", 256),
        Case::square("square_512", 512),
        Case::square("square_1024", 1024),
        // Forward: y = x·W, x 128×784, W 784×256.
        Case::new("dense_fwd_xW_128x784x256", ((128, 784), Op::N), ((784, 256), Op::N)),
        // Weight gradient: dW = xᵀ·dy, x 128×784, dy 128×256.
        Case::new("dense_dW_xTdy_784x128x256", ((128, 784), Op::T), ((128, 256), Op::N)),
        // Input gradient: dx = dy·Wᵀ, dy 128×256, W 784×256.
        Case::new("dense_dx_dyWT_128x256x784", ((128, 256), Op::N), ((784, 256), Op::T)),
    ]
}

/// `op(m)` as a faer view over the same row-major storage (no copy).
#[cfg(feature = "bench-faer")]
fn faer_view(m: &Matrix, op: Op) -> faer::MatRef<'_, f32> {
    let r = faer::MatRef::from_row_major_slice(m.as_slice(), m.rows(), m.cols());
    if op == Op::T {
        r.transpose()
    } else {
        r
    }
}

fn bench_gemm(c: &mut Criterion) {
    threads::set_num_threads(THREADS).expect("start the thread pool");
    let mut group = c.benchmark_group("matmul");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    for case in cases() {
        let a = filled(case.a_shape.0, case.a_shape.1, 1);
        let b = filled(case.b_shape.0, case.b_shape.1, 2);
        let (m, _, n) = case.mkn();
        let mut out = Matrix::zeros(m, n);
        group.throughput(Throughput::Elements(case.flops()));

        group.bench_function(BenchmarkId::new("ferronn_gemm", case.name), |bench| {
            bench.iter(|| {
                threads::install(|| {
                    matmul(
                        a.view(),
                        case.op_a,
                        b.view(),
                        case.op_b,
                        out.view_mut(),
                        false,
                    )
                })
                .expect("shapes agree")
            })
        });

        #[cfg(feature = "bench-faer")]
        group.bench_function(BenchmarkId::new("faer", case.name), |bench| {
            use faer::{Accum, MatMut, Par};
            // Check once that faer computes the same product, so the timing
            // compares equal work.
            let want = out.as_slice().to_vec();
            let faer_matmul = |out: &mut Matrix| {
                threads::install(|| {
                    let dst = MatMut::from_row_major_slice_mut(out.as_mut_slice(), m, n);
                    let (lhs, rhs) = (faer_view(&a, case.op_a), faer_view(&b, case.op_b));
                    faer::linalg::matmul::matmul(dst, Accum::Replace, lhs, rhs, 1.0f32, Par::rayon(THREADS));
                })
            };
            faer_matmul(&mut out);
            let worst = want
                .iter()
                .zip(out.as_slice())
                .map(|(x, y)| (x - y).abs())
                .fold(0.0f32, f32::max);
            assert!(
                worst < 1e-2,
                "faer and gemm disagree by {worst} on {}",
                case.name
            );
            bench.iter(|| faer_matmul(&mut out))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_gemm);
criterion_main!(benches);
