//! Training a chain of Dense layers in row ranges (`layers/dense_rows.rs`):
//! on 2–4 threads the forward pass runs each range of a batch through every
//! layer on its own share of the threads, and the backward runs each layer's
//! two products at once. The weights after training are those of one thread,
//! bit for bit. A test binary of its own: it sets the thread count and turns
//! the profile on, which no test running beside it should see.

use ferronn::loss::Targets;
use ferronn::network::{Network, NetworkSpec};
use ferronn::profile;
use ferronn::tensor::Matrix;
use ferronn::train::EpochOptions;

const IN: usize = 300;

/// A ReLU layer, a linear one (its output is `z` itself), a tanh layer and
/// the 10-unit head.
fn network() -> Network {
    network_of(IN, &[(200, "relu"), (37, "identity"), (64, "tanh"), (10, "identity")])
}

fn network_of(input: usize, layers: &[(usize, &str)]) -> Network {
    let layers: Vec<String> = layers.iter().map(|(units, act)| format!(r#"{{"type":"dense","units":{units},"activation":"{act}"}}"#)).collect();
    let json = format!(
        r#"{{"input_dim":{input},"layers":[{}],"loss":"cross_entropy","optimizer":{{"name":"adam","lr":0.01,"beta1":0.9,"beta2":0.999,"eps":1e-8,"weight_decay":0.0}},"seed":7}}"#,
        layers.join(",")
    );
    let spec: NetworkSpec = serde_json::from_str(&json).unwrap();
    Network::new(spec).unwrap()
}

fn data(n: usize) -> (Matrix, Vec<i64>) {
    let x = Matrix::from_vec(n, IN, (0..n * IN).map(|i| ((i * 37 % 101) as f32) / 50.0 - 1.0).collect()).unwrap();
    let y = (0..n).map(|i| (i * 7 % 10) as i64).collect();
    (x, y)
}

/// The weights after an epoch of shuffled batches of `batch` and a
/// `train_step` on the first `batch` rows, on `threads` threads.
fn trained(threads: usize, batch: usize) -> Vec<f32> {
    ferronn::threads::set_num_threads(threads).unwrap();
    let (x, y) = data(777);
    let mut net = network();
    let opts = EpochOptions { batch_size: batch, shuffle: true, seed: 1, epoch: 0, start_batch: 0, max_batches: None, trusted: false };
    net.train_epoch(x.view(), Targets::Labels(&y), None, &opts).unwrap();
    net.train_step(x.view().rows_range(0, batch), Targets::Labels(&y[..batch]), None).unwrap();
    net.params().to_vec()
}

#[test]
fn training_in_row_ranges_gives_the_bits_of_one_thread() {
    // 128 rows: two ranges of 64; 200 and 257: uneven cuts on 3 threads, and
    // a last batch of 777 % batch rows below the ranges' minimum.
    for batch in [128, 200, 257] {
        let alone = trained(1, batch);
        for threads in [2, 3, 4] {
            assert!(trained(threads, batch) == alone, "batch {batch}: {threads} threads changed the weights");
        }
    }

    // The forward products on two threads are those of the ranges: 64 rows each.
    ferronn::threads::set_num_threads(2).unwrap();
    let (x, y) = data(128);
    let mut net = network();
    profile::set_enabled(true);
    net.train_step(x.view(), Targets::Labels(&y), None).unwrap();
    let p = profile::take();
    profile::set_enabled(false);
    let calls = |m: usize, n: usize, k: usize| p.products.iter().filter(|s| (s.m, s.n, s.k) == (m, n, k)).map(|s| s.calls).sum::<u64>();
    assert_eq!(calls(64, 200, IN), 2, "the first layer's forward, once per range");
    assert_eq!(calls(128, 200, IN), 0, "no whole-batch forward product");
    assert_eq!(calls(64, 10, 64), 2, "the head's forward, once per range");
    // The backward products cover the whole batch.
    assert_eq!(calls(IN, 200, 128), 1, "the first layer's weight gradient");

    // A layer of more than 2^19 weights: every product splits by itself instead.
    let mut wide = network_of(IN, &[(1800, "relu"), (10, "identity")]);
    profile::set_enabled(true);
    wide.train_step(x.view(), Targets::Labels(&y), None).unwrap();
    let p = profile::take();
    profile::set_enabled(false);
    let calls = |m: usize, n: usize, k: usize| p.products.iter().filter(|s| (s.m, s.n, s.k) == (m, n, k)).map(|s| s.calls).sum::<u64>();
    assert_eq!((calls(128, 1800, IN), calls(64, 1800, IN)), (1, 0), "the wide layer's forward over the whole batch");
}
