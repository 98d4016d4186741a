//! Network-level tests of the core: training, reproducibility, save/load and the
//! promise that a steady training loop does not allocate.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use ferronn::io;
use ferronn::loss::Targets;
use ferronn::network::{Network, NetworkSpec};
use ferronn::loss::LossStats;
use ferronn::tensor::{MatRef, Matrix};
use ferronn::train::EpochOptions;
use ferronn::Error;

/// One whole epoch, as before chunked epochs existed.
fn run_epoch(net: &mut Network, x: MatRef<'_>, t: Targets<'_>, batch_size: usize, shuffle: bool, seed: u64, epoch: u64) -> ferronn::Result<LossStats> {
    let opts = EpochOptions { batch_size, shuffle, seed, epoch, start_batch: 0, max_batches: None, trusted: false };
    net.train_epoch(x, t, None, &opts).map(|r| r.stats)
}

/// Counts allocations made by the current thread (tests run in parallel, so a
/// global count would include other tests' allocations).
struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn count_one() {
    let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
}

fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_one();
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_one();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn spec(input: usize, hidden: &[usize], out: usize, loss: &str, seed: u64) -> NetworkSpec {
    let mut layers: Vec<String> = hidden.iter().map(|h| format!(r#"{{"type":"dense","units":{h},"activation":"tanh"}}"#)).collect();
    layers.push(format!(r#"{{"type":"dense","units":{out}}}"#));
    let json = format!(
        r#"{{"input_dim":{input},"layers":[{}],"loss":"{loss}","optimizer":{{"name":"adam","lr":0.01,"beta1":0.9,"beta2":0.999,"eps":1e-8,"weight_decay":0.0}},"seed":{seed}}}"#,
        layers.join(",")
    );
    serde_json::from_str(&json).unwrap()
}

/// Two noisy blobs, labels 0/1.
fn blobs(n: usize) -> (Matrix, Vec<i64>) {
    let mut state = 12345u64;
    let mut next = || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((state >> 40) as f32 / (1u64 << 24) as f32) - 0.5
    };
    let mut x = Vec::with_capacity(n * 4);
    let mut y = Vec::with_capacity(n);
    for i in 0..n {
        let label = (i % 2) as i64;
        let centre = if label == 1 { 1.0 } else { -1.0 };
        for _ in 0..4 {
            x.push(centre + next());
        }
        y.push(label);
    }
    (Matrix::from_vec(n, 4, x).unwrap(), y)
}

#[test]
fn training_separates_two_blobs() {
    let (x, y) = blobs(200);
    let mut net = Network::new(spec(4, &[8], 2, "cross_entropy", 0)).unwrap();
    let first = run_epoch(&mut net, x.view(), Targets::Labels(&y), 16, true, 0, 0).unwrap();
    let mut last = first;
    for epoch in 1..20 {
        last = run_epoch(&mut net, x.view(), Targets::Labels(&y), 16, true, 0, epoch).unwrap();
    }
    assert!(last.mean_loss() < first.mean_loss() / 4.0, "{} -> {}", first.mean_loss(), last.mean_loss());
    assert_eq!(last.correct, 200);
}

/// Allocations made by `f` on this thread.
fn allocations_of(f: impl FnOnce()) -> usize {
    let before = allocations();
    f();
    allocations() - before
}

/// Allocations made by `steps` train_steps of `net` on `(x, y)`.
fn steps_allocations(net: &mut Network, x: MatRef<'_>, y: &[i64], steps: usize) -> usize {
    allocations_of(|| {
        for _ in 0..steps {
            net.train_step(x, Targets::Labels(y), None).unwrap();
        }
    })
}

#[test]
fn steady_state_training_and_prediction_allocate_nothing() {
    let (x, y) = blobs(64);
    // Every product of a step is matrix-shaped (packed, blocked GEMM), and the
    // work is below the pool threshold, so it stays on the calling thread and
    // the thread-local count sees every allocation (through `gemm::gemm`, which
    // packs into fresh buffers, this was 17 per step).
    let mut net = Network::new(spec(4, &[20, 16], 3, "cross_entropy", 1)).unwrap();
    // Warm-up sizes every workspace, packing buffer and the optimizer state.
    for _ in 0..2 {
        net.train_step(x.view(), Targets::Labels(&y), None).unwrap();
    }
    let step = steps_allocations(&mut net, x.view(), &y, 5);
    assert_eq!(step, 0, "train_step allocated {step} times in 5 steps");

    // An epoch chunk of shuffled batches (the order is drawn once per epoch).
    let opts = |start_batch| EpochOptions { batch_size: 16, shuffle: true, seed: 3, epoch: 1, start_batch, max_batches: Some(2), trusted: start_batch > 0 };
    net.train_epoch(x.view(), Targets::Labels(&y), None, &opts(0)).unwrap();
    let chunk = allocations_of(|| {
        net.train_epoch(x.view(), Targets::Labels(&y), None, &opts(2)).unwrap();
    });
    assert_eq!(chunk, 0, "a train_epoch chunk allocated {chunk} times");

    // Prediction into a preallocated output, at batch 64 and at batch 1 (the
    // vector-shaped products).
    for rows in [64, 1] {
        let xs = x.view().rows_range(0, rows);
        let mut out = Matrix::zeros(rows, 3);
        net.predict_into(xs, out.view_mut()).unwrap();
        let n = allocations_of(|| {
            for _ in 0..3 {
                net.predict_into(xs, out.view_mut()).unwrap();
            }
        });
        assert_eq!(n, 0, "predict_into at batch {rows} allocated {n} times");
        assert_eq!(out, net.predict(xs).unwrap());
    }
    let mut wrong = Matrix::zeros(64, 2);
    assert!(matches!(net.predict_into(x.view(), wrong.view_mut()), Err(Error::Shape(_))));
}

/// A small batch through layers wide enough that the input gradients pack
/// `dy` and store the output with a row stride (`rows_as_lhs` in
/// kernels/gemm.rs), and one-sample predictions through the row×matrix
/// kernel (kernels/gemv.rs): neither path allocates in the steady state.
#[test]
fn small_batch_and_one_sample_paths_allocate_nothing() {
    let (x, y) = blobs(8);
    let mut net = Network::new(spec(4, &[64, 48], 3, "cross_entropy", 2)).unwrap();
    for _ in 0..2 {
        net.train_step(x.view(), Targets::Labels(&y), None).unwrap();
    }
    let step = steps_allocations(&mut net, x.view(), &y, 5);
    assert_eq!(step, 0, "train_step at batch 8 allocated {step} times in 5 steps");
    let one = x.view().rows_range(0, 1);
    let mut out = Matrix::zeros(1, 3);
    net.predict_into(one, out.view_mut()).unwrap();
    let n = allocations_of(|| {
        for _ in 0..3 {
            net.predict_into(one, out.view_mut()).unwrap();
        }
    });
    assert_eq!(n, 0, "predict_into at batch 1 allocated {n} times");
    // The one-sample path answers what the batch path answers for that row.
    let batch = net.predict(x.view()).unwrap();
    for (a, b) in out.as_slice().iter().zip(&batch.as_slice()[..3]) {
        assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "batch-1 {a} vs batch-8 {b}");
    }
}

/// A one-sample predict through a layer wide enough to share its columns with
/// the helper thread (src/handoff.rs) allocates nothing on the calling thread
/// once the helper is running, and the helper's half allocates nothing at all
/// (it is the same register-blocked kernel, on borrowed slices). A CNN under
/// the same settings stays allocation-free and bit-identical too.
#[test]
fn one_sample_predict_with_the_helper_allocates_nothing() {
    let before = ferronn::threads::num_threads();
    ferronn::threads::set_num_threads(2).unwrap();
    let net = Network::new(spec(784, &[256], 10, "cross_entropy", 4)).unwrap();
    let x = Matrix::from_vec(1, 784, (0..784).map(|i| (i % 11) as f32 * 0.1 - 0.5).collect()).unwrap();
    // Three warm-up calls, then the allocations of `calls` more.
    let steady = |net: &Network, out: &mut Matrix, calls: usize| {
        for _ in 0..3 {
            net.predict_into(x.view(), out.view_mut()).unwrap();
        }
        allocations_of(|| {
            for _ in 0..calls {
                net.predict_into(x.view(), out.view_mut()).unwrap();
            }
        })
    };
    let mut out = Matrix::zeros(1, 10);
    let n = steady(&net, &mut out, 50);
    assert_eq!(n, 0, "a one-sample predict with the helper allocated {n} times in 50 calls");
    // A one-image CNN (28x28x1 -> 32 filters -> pool -> 64 filters -> Dense):
    // the Dense's 12544x10 product is too narrow to share, the rest runs as before.
    let cnn = r#"{"input_dim":784,"input_shape":[28,28,1],"layers":[
        {"type":"conv","input":[28,28,1],"filters":32,"kernel":[3,3],"strides":[1,1],"pads":[1,1,1,1],"dilation":[1,1],"activation":"relu"},
        {"type":"pool","mode":"max","input":[28,28,32],"pool":[2,2],"strides":[2,2],"pads":[0,0,0,0]},
        {"type":"conv","input":[14,14,32],"filters":64,"kernel":[3,3],"strides":[1,1],"pads":[1,1,1,1],"dilation":[1,1],"activation":"relu"},
        {"type":"flatten"},{"type":"dense","units":10}],
        "loss":"cross_entropy","optimizer":{"name":"adam","lr":0.01,"beta1":0.9,"beta2":0.999,"eps":1e-8,"weight_decay":0.0},"seed":0}"#;
    let cnn = Network::new(serde_json::from_str(cnn).unwrap()).unwrap();
    let mut cnn_out = Matrix::zeros(1, 10);
    let n = steady(&cnn, &mut cnn_out, 20);
    assert_eq!(n, 0, "a one-image CNN predict with the helper allocated {n} times in 20 calls");
    ferronn::threads::set_num_threads(1).unwrap();
    let mut alone = Matrix::zeros(1, 10);
    net.predict_into(x.view(), alone.view_mut()).unwrap();
    let mut cnn_alone = Matrix::zeros(1, 10);
    cnn.predict_into(x.view(), cnn_alone.view_mut()).unwrap();
    ferronn::threads::set_num_threads(before).unwrap();
    assert_eq!(out, alone, "the helper changed the bits");
    assert_eq!(cnn_out, cnn_alone, "the helper changed the CNN's bits");
}

/// The first `rows` rows of `x` predicted on `threads` threads (10 outputs):
/// three warm-up calls, then the allocations of `calls` more, and the output.
fn predict_counted(net: &Network, x: &Matrix, threads: usize, rows: usize, calls: usize) -> (usize, Matrix) {
    ferronn::threads::set_num_threads(threads).unwrap();
    let xs = x.view().rows_range(0, rows);
    let mut out = Matrix::zeros(rows, 10);
    for _ in 0..3 {
        net.predict_into(xs, out.view_mut()).unwrap();
    }
    let n = allocations_of(|| {
        for _ in 0..calls {
            net.predict_into(xs, out.view_mut()).unwrap();
        }
    });
    (n, out)
}

/// Small batches (2 to 64 rows) of a Dense-only network stay off the pool and
/// split their wide products by output columns with the helper thread
/// (src/infer.rs, `gemm::split_columns`), or from 16 rows on their rows
/// (`rows_with_helper`): no allocation on the calling thread
/// once warm, and the bits of one thread and of the pool (65 rows, past the
/// small-batch bound).
#[test]
fn small_batch_predict_with_the_helper_allocates_nothing_and_keeps_the_bits() {
    let before = ferronn::threads::num_threads();
    let net = Network::new(spec(784, &[256, 128], 10, "cross_entropy", 5)).unwrap();
    let x = Matrix::from_vec(65, 784, (0..65 * 784).map(|i| (i % 13) as f32 * 0.1 - 0.6).collect()).unwrap();
    let run = |threads: usize, rows: usize| predict_counted(&net, &x, threads, rows, 20);
    // 2–15 rows split each wide product's columns; 16–64 give the helper the
    // second half of the rows (`rows_with_helper`); 65 goes to the pool.
    for rows in [2, 7, 15, 16, 17, 32, 63, 64, 65] {
        let (n, shared) = run(2, rows);
        assert_eq!(n, 0, "a {rows}-row predict on 2 threads allocated {n} times in 20 calls");
        let (_, alone) = run(1, rows);
        assert_eq!(shared, alone, "{rows} rows: 2 threads changed the bits");
        let (_, four) = run(4, rows);
        assert_eq!(four, alone, "{rows} rows: 4 threads changed the bits");
    }
    // The rows of a small batch are those of the batch predicted whole.
    ferronn::threads::set_num_threads(2).unwrap();
    let whole = net.predict(x.view()).unwrap();
    let first = net.predict(x.view().rows_range(0, 32)).unwrap();
    assert_eq!(first.as_slice(), &whole.as_slice()[..32 * 10]);
    ferronn::threads::set_num_threads(before).unwrap();
}

/// Large batches of a Dense-only network give each pool thread a contiguous
/// range of rows to run through every layer (src/infer.rs, `rows_in_parts`):
/// the bits of one thread whatever the thread count and the cut (a hidden
/// width of 37 puts the cut inside the activations' vectors), no allocation on
/// the calling thread once warm, and a non-finite value in the last part is
/// refused before any output is written.
#[test]
fn large_batch_predict_in_row_ranges_keeps_the_bits() {
    let before = ferronn::threads::num_threads();
    let net = Network::new(spec(300, &[200, 37], 10, "cross_entropy", 6)).unwrap();
    let x = Matrix::from_vec(1001, 300, (0..1001 * 300).map(|i| (i % 17) as f32 * 0.07 - 0.55).collect()).unwrap();
    let run = |threads: usize, rows: usize| predict_counted(&net, &x, threads, rows, 5);
    for rows in [127, 128, 130, 255, 256, 257, 383, 1001] {
        let (_, alone) = run(1, rows);
        for threads in [2, 3, 4] {
            let (n, split) = run(threads, rows);
            assert_eq!(n, 0, "a {rows}-row predict on {threads} threads allocated {n} times in 5 calls");
            assert_eq!(split, alone, "{rows} rows: {threads} threads changed the bits");
        }
        // The whole batch in one pass (`forward_inference`) gives the same rows.
        ferronn::threads::set_num_threads(2).unwrap();
        assert_eq!(net.forward_inference(x.view().rows_range(0, rows)).unwrap(), alone, "{rows} rows in one pass");
    }
    let mut bad = x.clone();
    bad.as_mut_slice()[1000 * 300 + 5] = f32::NAN;
    let mut out = Matrix::zeros(1001, 10);
    for threads in [1, 2, 4] {
        ferronn::threads::set_num_threads(threads).unwrap();
        let err = net.predict_into(bad.view(), out.view_mut()).unwrap_err();
        assert!(matches!(err, Error::NonFinite(_)), "{threads} threads: {err:?}");
        assert!(out.as_slice().iter().all(|&v| v == 0.0), "{threads} threads: outputs written before the input was refused");
    }
    ferronn::threads::set_num_threads(before).unwrap();
}

#[test]
fn steady_state_recurrent_step_allocates_nothing() {
    // LSTM, GRU and SimpleRNN over 5 steps of 3 features, batch 8: the per-step
    // products read `W_hh` packed once per pass, into a buffer kept by the layer.
    let opt = r#""loss":"cross_entropy","optimizer":{"name":"adam","lr":0.01,"beta1":0.9,"beta2":0.999,"eps":1e-8,"weight_decay":0.0},"seed":0}"#;
    let x = Matrix::from_vec(8, 15, (0..120).map(|i| ((i * 7 % 13) as f32) / 13.0 - 0.5).collect()).unwrap();
    let y = [0i64, 1, 1, 0, 1, 0, 0, 1];
    for cell in ["lstm", "gru", "simple_rnn"] {
        let json = format!(
            r#"{{"input_dim":15,"input_shape":[5,3],"layers":[{{"type":"recurrent","cell":"{cell}","input":[5,3],"units":8,"return_sequences":true}},{{"type":"recurrent","cell":"{cell}","input":[5,8],"units":8}},{{"type":"dense","units":2}}],{opt}"#
        );
        let mut net = Network::new(serde_json::from_str(&json).unwrap()).unwrap();
        steps_allocations(&mut net, x.view(), &y, 2); // warm-up: the buffers grow
        let steps = steps_allocations(&mut net, x.view(), &y, 5);
        assert_eq!(steps, 0, "{cell}: train_step allocated {steps} times in 5 steps");
    }
    // Gate gradients past 2 MiB per pass (batch 64, 40 steps, 64 units; LSTM
    // and GRU, SimpleRNN's stay in one chunk): the backward pass runs in chunks of
    // 16, 16 and 8 steps, with their staging buffers.
    let x = Matrix::from_vec(64, 120, (0..7680).map(|i| ((i * 7 % 13) as f32) / 13.0 - 0.5).collect()).unwrap();
    let y: Vec<i64> = (0..64).map(|i| i % 2).collect();
    for cell in ["lstm", "gru", "simple_rnn"] {
        let json = format!(r#"{{"input_dim":120,"input_shape":[40,3],"layers":[{{"type":"recurrent","cell":"{cell}","input":[40,3],"units":64}},{{"type":"dense","units":2}}],{opt}"#);
        let mut net = Network::new(serde_json::from_str(&json).unwrap()).unwrap();
        steps_allocations(&mut net, x.view(), &y, 2); // warm-up: the buffers grow
        let steps = steps_allocations(&mut net, x.view(), &y, 3);
        assert_eq!(steps, 0, "{cell} in chunks: train_step allocated {steps} times in 3 steps");
    }
}

#[test]
fn steady_state_conv_step_allocates_only_inside_gemm() {
    // conv 3x3 (relu, same padding) -> pool 2x2 -> flatten -> dense 2 on 6x6 images with 2
    // channels: channels_last with max pooling, then channels_first, grouped, average pooling.
    let opt = r#""loss":"cross_entropy","optimizer":{"name":"adam","lr":0.01,"beta1":0.9,"beta2":0.999,"eps":1e-8,"weight_decay":0.0},"seed":0}"#;
    let nets = [
        r#"{"input_dim":72,"input_shape":[6,6,2],"layers":[
            {"type":"conv","input":[6,6,2],"filters":2,"kernel":[3,3],"strides":[1,1],"pads":[1,1,1,1],"dilation":[1,1],"activation":"relu"},
            {"type":"pool","mode":"max","input":[6,6,2],"pool":[2,2],"strides":[2,2],"pads":[0,0,0,0]},
            {"type":"flatten"},{"type":"dense","units":2}],"#,
        r#"{"input_dim":72,"input_shape":[2,6,6],"layers":[
            {"type":"conv","input":[2,6,6],"filters":4,"kernel":[3,3],"strides":[1,1],"pads":[1,1,1,1],"dilation":[1,1],"groups":2,"data_format":"channels_first","activation":"relu"},
            {"type":"pool","mode":"avg","input":[4,6,6],"pool":[2,2],"strides":[2,2],"pads":[0,1,0,1],"data_format":"channels_first"},
            {"type":"flatten"},{"type":"dense","units":2}],"#,
        // 3x3 stride-1 layers over 32 channels: Winograd's F(2x2, 3x3), channels_last ("same"
        // then "valid") and channels_first (its 16 products per block of tiles reuse the packing buffers).
        r#"{"input_dim":1152,"input_shape":[6,6,32],"layers":[
            {"type":"conv","input":[6,6,32],"filters":32,"kernel":[3,3],"strides":[1,1],"pads":[1,1,1,1],"dilation":[1,1],"activation":"relu"},
            {"type":"conv","input":[6,6,32],"filters":2,"kernel":[3,3],"strides":[1,1],"pads":[0,0,0,0],"dilation":[1,1],"activation":"tanh"},
            {"type":"flatten"},{"type":"dense","units":2}],"#,
        r#"{"input_dim":1152,"input_shape":[32,6,6],"layers":[
            {"type":"conv","input":[32,6,6],"filters":8,"kernel":[3,3],"strides":[1,1],"pads":[1,1,1,1],"dilation":[1,1],"data_format":"channels_first","activation":"relu"},
            {"type":"flatten"},{"type":"dense","units":2}],"#,
    ];
    for (i, json) in nets.iter().enumerate() {
        let mut net = Network::new(serde_json::from_str(&format!("{json}{opt}")).unwrap()).unwrap();
        let width = if i < 2 { 72 } else { 1152 };
        let x = Matrix::from_vec(4, width, (0..4 * width).map(|i| ((i * 7 % 13) as f32) / 13.0).collect()).unwrap();
        let y = [0i64, 1, 1, 0];
        for _ in 0..3 {
            net.train_step(x.view(), Targets::Labels(&y), None).unwrap();
        }
        let count = |steps: usize, net: &mut Network| steps_allocations(net, x.view(), &y, steps);
        let one = count(1, &mut net);
        assert_eq!(count(10, &mut net), 10 * one, "net {i}: allocations per step must not change between steps");
        // What remains are the `gemm` crate's packing buffers (one to three per call here,
        // depending on the shapes): conv forward and kernel gradient per group (the first layer needs no
        // input gradient), dense forward, kernel and input gradients; plus the fixed
        // allocation a one-Dense step makes too.
        let gemm_calls = [5, 2 * 2 + 3, 0, 0][i];
        if i >= 2 {
            // Winograd's products all reuse the blocked GEMM's packing buffers.
            assert_eq!(one, 0, "net {i}: {one} allocations per step");
            continue;
        }
        assert!(one <= 3 * gemm_calls + 2, "net {i}: {one} allocations per step for {gemm_calls} GEMM calls");
    }
}

#[test]
fn same_seed_same_weights_different_seed_different_weights() {
    let (x, y) = blobs(100);
    let train = |seed| {
        let mut net = Network::new(spec(4, &[8], 2, "cross_entropy", seed)).unwrap();
        for epoch in 0..3 {
            run_epoch(&mut net, x.view(), Targets::Labels(&y), 10, true, seed, epoch).unwrap();
        }
        net.params().to_vec()
    };
    assert_eq!(train(5), train(5));
    assert_ne!(train(5), train(6));
}

/// A training set of over 2²⁰ values is scanned for NaN and infinity on the
/// pool's threads: a bad value anywhere in it, or in its last chunk, is
/// still refused before any batch runs, on any thread count.
#[test]
fn a_large_training_set_with_a_nan_is_refused_before_any_batch() {
    let (rows, cols) = (1400, 800);
    let x = Matrix::from_vec(rows, cols, (0..rows * cols).map(|i| (i % 23) as f32 * 0.05 - 0.5).collect()).unwrap();
    let y: Vec<i64> = (0..rows).map(|i| (i % 2) as i64).collect();
    let before_threads = ferronn::threads::num_threads();
    for (at, value) in [(0, f32::NAN), (rows * cols / 2 + 3, f32::INFINITY), (rows * cols - 1, f32::NAN)] {
        let mut bad = x.clone();
        bad.as_mut_slice()[at] = value;
        for threads in [1, 2, 3] {
            ferronn::threads::set_num_threads(threads).unwrap();
            let mut net = Network::new(spec(cols, &[8], 2, "cross_entropy", 1)).unwrap();
            let before = net.params().to_vec();
            let err = run_epoch(&mut net, bad.view(), Targets::Labels(&y), 100, true, 0, 0).unwrap_err();
            assert!(matches!(err, Error::NonFinite(_)), "{threads} threads, bad value at {at}: {err:?}");
            assert!(matches!(net.check(bad.view(), &Targets::Labels(&y), None), Err(Error::NonFinite(_))));
            assert_eq!(net.params(), before.as_slice(), "{threads} threads: a batch ran before the refusal");
            assert_eq!(net.optimizer().steps(), 0);
        }
    }
    ferronn::threads::set_num_threads(before_threads).unwrap();
    let mut net = Network::new(spec(cols, &[8], 2, "cross_entropy", 1)).unwrap();
    assert!(net.check(x.view(), &Targets::Labels(&y), None).is_ok());
    assert_eq!(run_epoch(&mut net, x.view(), Targets::Labels(&y), 700, true, 0, 0).unwrap().samples, rows as u64);
}

#[test]
fn rejected_inputs_leave_the_network_unchanged() {
    let (x, y) = blobs(10);
    let mut net = Network::new(spec(4, &[3], 2, "cross_entropy", 0)).unwrap();
    let before = net.params().to_vec();
    let bad_labels = vec![0i64, 1, 2, 0, 1, 0, 1, 0, 1, 0];
    assert!(matches!(net.train_step(x.view(), Targets::Labels(&bad_labels), None), Err(Error::Label(_))));
    let mut nan = x.clone();
    nan.as_mut_slice()[7] = f32::NAN;
    assert!(matches!(net.train_step(nan.view(), Targets::Labels(&y), None), Err(Error::NonFinite(_))));
    let narrow = MatRef::new(10, 3, &x.as_slice()[..30]).unwrap();
    assert!(matches!(net.train_step(narrow, Targets::Labels(&y), None), Err(Error::Shape(_))));
    let empty = MatRef::new(0, 4, &[]).unwrap();
    assert!(matches!(net.train_step(empty, Targets::Labels(&[]), None), Err(Error::Empty(_))));
    assert!(matches!(run_epoch(&mut net, x.view(), Targets::Labels(&y), 0, true, 0, 0), Err(Error::Config(_))));
    assert_eq!(net.params(), before.as_slice());
    assert_eq!(net.optimizer().steps(), 0);
}

#[test]
fn save_and_load_round_trip_exactly() {
    let (x, y) = blobs(50);
    let mut net = Network::new(spec(4, &[6], 2, "cross_entropy", 2)).unwrap();
    run_epoch(&mut net, x.view(), Targets::Labels(&y), 8, true, 2, 0).unwrap();
    let dir = std::env::temp_dir().join(format!("ferronn-io-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("model.safetensors");
    std::fs::write(&path, io::to_bytes(&net, "{\"k\":1}").unwrap()).unwrap();
    let (mut loaded, extra) = io::load(&path).unwrap();
    assert_eq!(extra, "{\"k\":1}");
    assert_eq!(loaded.params(), net.params());
    assert_eq!(loaded.predict(x.view()).unwrap(), net.predict(x.view()).unwrap());
    // The optimizer state came along: one more epoch gives the same weights.
    run_epoch(&mut net, x.view(), Targets::Labels(&y), 8, true, 2, 1).unwrap();
    run_epoch(&mut loaded, x.view(), Targets::Labels(&y), 8, true, 2, 1).unwrap();
    assert_eq!(loaded.params(), net.params());
    // Only the final file is left behind.
    let names: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names.len(), 1);
    let bytes = std::fs::read(&path).unwrap();
    for cut in [0, 7, 8, 100, bytes.len() / 2, bytes.len() - 1] {
        assert!(matches!(io::from_bytes(&bytes[..cut]), Err(Error::Format(_))), "cut at {cut}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn mse_and_bce_targets_are_checked() {
    let x = Matrix::from_vec(2, 2, vec![0.1, 0.2, 0.3, 0.4]).unwrap();
    let mut net = Network::new(spec(2, &[], 1, "binary_cross_entropy", 0)).unwrap();
    let t = Matrix::from_vec(2, 1, vec![0.0, 2.0]).unwrap();
    assert!(matches!(net.train_step(x.view(), Targets::Values(t.view()), None), Err(Error::Label(_))));
    let t = Matrix::from_vec(2, 1, vec![0.0, 1.0]).unwrap();
    assert!(net.train_step(x.view(), Targets::Values(t.view()), None).is_ok());
    assert!(matches!(net.train_step(x.view(), Targets::Labels(&[0, 1]), None), Err(Error::Shape(_))));
}

#[test]
fn an_epoch_in_chunks_equals_one_call() {
    let (x, y) = blobs(100);
    let mut whole = Network::new(spec(4, &[8], 2, "cross_entropy", 3)).unwrap();
    let mut chunked = whole.clone();
    let stats = run_epoch(&mut whole, x.view(), Targets::Labels(&y), 7, true, 5, 2).unwrap();
    let mut total = LossStats::default();
    let mut start = 0;
    while start < 15 {
        let opts = EpochOptions { batch_size: 7, shuffle: true, seed: 5, epoch: 2, start_batch: start, max_batches: Some(4), trusted: start > 0 };
        let r = chunked.train_epoch(x.view(), Targets::Labels(&y), None, &opts).unwrap();
        assert_eq!(r.diverged_at, None);
        total.add(r.stats);
        start += r.batches;
    }
    assert_eq!(start, 15); // ceil(100 / 7) batches in all
    assert_eq!(whole.params(), chunked.params());
    assert_eq!(stats.samples, total.samples);
    assert!((stats.loss_sum - total.loss_sum).abs() < 1e-9 * stats.loss_sum.abs());
}

#[test]
fn a_diverging_step_is_refused_and_reported() {
    let (x, y) = blobs(64);
    let targets: Vec<f32> = y.iter().flat_map(|&l| [l as f32 * 100.0, -(l as f32) * 100.0]).collect();
    let t = Matrix::from_vec(64, 2, targets).unwrap();
    let json = r#"{"input_dim":4,"layers":[{"type":"dense","units":16,"activation":"relu"},{"type":"dense","units":2}],"loss":"mse","optimizer":{"name":"sgd","lr":1e6,"momentum":0.0,"dampening":0.0,"nesterov":false,"weight_decay":0.0},"seed":1}"#;
    let mut net = Network::new(serde_json::from_str(json).unwrap()).unwrap();
    let mut before = net.params().to_vec();
    for epoch in 0..50 {
        before.copy_from_slice(net.params());
        let opts = EpochOptions { batch_size: 64, shuffle: false, seed: 0, epoch, start_batch: 0, max_batches: None, trusted: false };
        let r = net.train_epoch(x.view(), Targets::Values(t.view()), None, &opts).unwrap();
        if let Some(batch) = r.diverged_at {
            assert_eq!((batch, r.batches), (0, 0));
            assert!(net.params().iter().all(|v| v.is_finite()));
            assert_eq!(net.params(), before.as_slice(), "the refused step must not touch the weights");
            return;
        }
    }
    panic!("a learning rate of 1e6 should make the loss non-finite within 50 steps");
}


#[test]
fn steady_state_recurrent_and_bidirectional_steps_allocate_nothing() {
    // LSTM(6) over 5 steps of 3 features, as one direction and as both directions merged:
    // the recurrent workspaces and the merge buffers grow once, with the batch.
    let opt = r#""loss":"cross_entropy","optimizer":{"name":"adam","lr":0.01,"beta1":0.9,"beta2":0.999,"eps":1e-8,"weight_decay":0.0},"seed":0}"#;
    let lstm = |back: bool| format!(r#"{{"cell":"lstm","input":[5,3],"units":6,"return_sequences":true,"go_backwards":{back}}}"#);
    let one = format!(r#"{{"input_dim":15,"layers":[{{"type":"recurrent",{},{{"type":"flatten"}},{{"type":"dense","units":2}}],{opt}"#, &lstm(false)[1..]);
    let both = format!(r#"{{"input_dim":15,"layers":[{{"type":"bidirectional","forward":{},"backward":{},"merge_mode":"mul"}},{{"type":"flatten"}},{{"type":"dense","units":2}}],{opt}"#, lstm(false), lstm(true));
    let x = Matrix::from_vec(4, 15, (0..60).map(|i| ((i * 7 % 13) as f32) / 13.0).collect()).unwrap();
    let y = [0i64, 1, 1, 0];
    let per_step = |json: &str| {
        let mut net = Network::new(serde_json::from_str(json).unwrap()).unwrap();
        for _ in 0..3 {
            net.train_step(x.view(), Targets::Labels(&y), None).unwrap();
        }
        let count = |steps: usize, net: &mut Network| steps_allocations(net, x.view(), &y, steps);
        let one = count(1, &mut net);
        assert_eq!(count(10, &mut net), 10 * one, "allocations per step must not change between steps");
        one
    };
    let (single, bidir) = (per_step(&one), per_step(&both));
    assert_eq!((single, bidir), (0, 0), "allocations per step (one direction, bidirectional)");
}
