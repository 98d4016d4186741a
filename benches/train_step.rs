//! One `Network::train_step` (forward, fused softmax cross-entropy, backward,
//! Adam update) of a 784-256-128-10 ReLU MLP at batch 32, 128 and 512, on two
//! threads. This is the Rust-only cost of a step: compare it with the per-batch
//! time of `model.fit` in `benches/compare.py` to see the Python overhead.
//!
//! Run: `cargo bench --bench train_step`.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ferronn::loss::Targets;
use ferronn::network::{Network, NetworkSpec};
use ferronn::tensor::Matrix;
use ferronn::threads;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

const THREADS: usize = 2;

const SPEC: &str = r#"{"input_dim":784,"layers":[
    {"type":"dense","units":256,"activation":"relu"},
    {"type":"dense","units":128,"activation":"relu"},
    {"type":"dense","units":10}],
  "loss":"cross_entropy",
  "optimizer":{"name":"adam","lr":0.001,"beta1":0.9,"beta2":0.999,"eps":1e-8,"weight_decay":0.0},
  "seed":0}"#;

/// Rows of the synthetic data set the steps cycle through.
const DATA_ROWS: usize = 8192;

/// Standard-normal inputs and uniform labels 0..10 from a seeded generator (as
/// `benches/compare.py` uses). Each step takes the next batch, as an epoch would.
/// Not a cheap integer hash: on hashed inputs the loss rose instead of falling,
/// most second-layer ReLUs died, and the step time doubled after ~1000 steps (most
/// likely Adam's first moments of the zero-gradient weights decaying into
/// subnormal floats). That measures the data, not a normal step.
fn data() -> (Matrix, Vec<i64>) {
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let x = (0..DATA_ROWS * 784)
        .map(|_| rng.sample::<f32, _>(StandardNormal))
        .collect();
    let labels = (0..DATA_ROWS).map(|_| rng.random_range(0..10i64)).collect();
    (
        Matrix::from_vec(DATA_ROWS, 784, x).expect("length matches shape"),
        labels,
    )
}

fn bench_train_step(c: &mut Criterion) {
    threads::set_num_threads(THREADS).expect("start the thread pool");
    let (x, labels) = data();
    let mut group = c.benchmark_group("train_step_784_256_128_10");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    for &rows in &[32usize, 128, 512] {
        let spec: NetworkSpec = serde_json::from_str(SPEC).expect("valid spec");
        let mut net = Network::new(spec).expect("valid network");
        let batches = DATA_ROWS / rows;
        let mut next = 0;
        // Throughput in samples, so criterion's "elem/s" reads as samples/s.
        group.throughput(Throughput::Elements(rows as u64));
        group.bench_function(
            BenchmarkId::new("adam_cross_entropy", format!("batch_{rows}")),
            |bench| {
                bench.iter(|| {
                    let (start, end) = (next * rows, (next + 1) * rows);
                    next = (next + 1) % batches;
                    let targets = Targets::Labels(&labels[start..end]);
                    threads::install(|| net.train_step(x.view().rows_range(start, end), targets, None))
                        .expect("valid batch")
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, bench_train_step);
criterion_main!(benches);
