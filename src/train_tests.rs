//! `train_step`'s undo: it copies the weights and optimizer state only when
//! the update's bound fails (optim/bound.rs), and that changes no bit of the
//! result. Each branch is forced here for every optimizer: the bounded step,
//! the copied step that goes through (the first one), the copied step that
//! genuinely overflows and is undone, and the refusal before the update.

use super::EpochOptions;
use crate::loss::Targets;
use crate::network::{Network, NetworkSpec};
use crate::optim::{AdagradConfig, AdamConfig, OptimizerConfig, OptimizerOptions, RmspropConfig, SgdConfig};
use crate::tensor::Matrix;

fn optimizers() -> Vec<OptimizerConfig> {
    let (sgd, adam, rms) = (SgdConfig::default(), AdamConfig::default(), RmspropConfig::default());
    let clip = OptimizerOptions { clipvalue: Some(0.5), global_clipnorm: Some(2.0), ..OptimizerOptions::default() };
    vec![
        OptimizerConfig::Sgd(SgdConfig { lr: 0.05, ..sgd.clone() }),
        OptimizerConfig::Sgd(SgdConfig { lr: 0.05, momentum: 0.9, weight_decay: 0.01, ..sgd.clone() }),
        OptimizerConfig::Sgd(SgdConfig { lr: 0.05, momentum: 0.9, nesterov: true, options: OptimizerOptions { clipnorm: Some(1.0), ..OptimizerOptions::default() }, ..sgd }),
        OptimizerConfig::Adam(adam.clone()),
        OptimizerConfig::Adam(AdamConfig { options: clip.clone(), weight_decay: 0.01, ..adam.clone() }),
        OptimizerConfig::Adamw(AdamConfig { weight_decay: 0.01, ..adam.clone() }),
        OptimizerConfig::Adam(AdamConfig { amsgrad: true, ..adam }),
        OptimizerConfig::Rmsprop(rms.clone()),
        OptimizerConfig::Rmsprop(RmspropConfig { momentum: 0.9, centered: true, ..rms.clone() }),
        OptimizerConfig::Rmsprop(RmspropConfig { centered: true, eps_inside_sqrt: true, options: clip, ..rms }),
        OptimizerConfig::Adagrad(AdagradConfig::default()),
    ]
}

/// Dropout (masks drawn per step) and an L2 regularizer (whose gradient
/// `grads` rebuilds from the snapshot); with `norm`, BatchNorm (state a
/// forward changes) and tanh, else linear (so huge inputs make huge gradients).
fn net(optimizer: OptimizerConfig, norm: bool) -> Network {
    let middle = if norm { r#"{"type": "batch_norm"}, {"type": "activation", "activation": "tanh"},"# } else { "" };
    let layers = format!(r#"[{{"type": "dense", "units": 8, "kernel_regularizer": {{"l2": 0.01}}}}, {middle} {{"type": "dropout", "rate": 0.2}}, {{"type": "dense", "units": 1}}]"#);
    let spec = NetworkSpec { input_dim: 3, layers: serde_json::from_str(&layers).unwrap(), loss: "mse".into(), optimizer, seed: 4, schedule: None, input_shape: None, variable_steps: false };
    Network::new(spec).unwrap()
}

fn batch(k: usize, scale: f32) -> (Matrix, Matrix) {
    let x: Vec<f32> = (0..48).map(|i| (((i * 7 + k * 5) % 11) as f32 - 5.0) / 3.0 * scale).collect();
    let y: Vec<f32> = (0..16).map(|i| ((i + k) % 3) as f32 - 1.0).collect();
    (Matrix::from_vec(16, 3, x).unwrap(), Matrix::from_vec(16, 1, y).unwrap())
}

/// Everything a step may change, as bits (so -0.0 and 0.0 differ).
fn state(n: &Network) -> String {
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    let opt: Vec<_> = n.optimizer().state().iter().map(|(k, v)| (*k, bits(v))).collect();
    format!("{:?}", (bits(n.params()), bits(n.buffers()), opt, n.optimizer().steps(), n.optimizer().config().lr().to_bits()))
}

/// Whether the last `train_step` copied the weights and optimizer state.
fn copied(n: &Network) -> bool {
    n.core.snap.as_ref().is_some_and(|s| s.full)
}

#[test]
fn train_step_equals_an_always_copying_step_bit_for_bit() {
    for opt in optimizers() {
        let name = format!("{opt:?}");
        // `a` steps with train_step; `b` runs each batch as a one-batch
        // train_epoch, which copies everything up front as every step did before.
        let (mut a, mut b) = (net(opt.clone(), true), net(opt, true));
        for k in 0..12 {
            let (x, y) = batch(k, 1.0);
            let sa = a.train_step(x.view(), Targets::Values(y.view()), None).unwrap();
            let opts = EpochOptions { batch_size: 16, shuffle: false, seed: 0, epoch: 0, start_batch: 0, max_batches: None, trusted: false };
            let rb = b.train_epoch(x.view(), Targets::Values(y.view()), None, &opts).unwrap();
            assert_eq!((sa, None), (rb.stats, rb.diverged_at), "{name}: step {k}");
            assert_eq!(state(&a), state(&b), "{name}: step {k}");
            assert_eq!(a.grads(), b.grads(), "{name}: grads after step {k}");
            // The first step has no state to bound; every later one is bounded.
            assert_eq!(copied(&a), k == 0, "{name}: step {k}");
        }
    }
}

#[test]
fn an_overflowing_update_is_undone_for_every_optimizer() {
    // Clipping would keep these gradients small; the unclipped configurations
    // cover every update rule.
    for opt in optimizers().into_iter().filter(|o| !o.clipping().is_active()) {
        let name = format!("{opt:?}");
        let mut n = net(opt, false);
        for k in 0..3 {
            let (x, y) = batch(k, 1.0);
            n.train_step(x.view(), Targets::Values(y.view()), None).unwrap();
        }
        assert!(!copied(&n), "{name}");
        // Gradients near 1e22 overflow every square average (g² > f32::MAX),
        // and with this rate SGD's step overflows too; the loss itself is finite.
        n.set_base_lr(1e30).unwrap();
        let before = state(&n);
        let (x, y) = batch(5, 1e11);
        let stats = n.train_step(x.view(), Targets::Values(y.view()), None).unwrap();
        assert!(stats.loss_sum.is_nan(), "{name}: the step was not refused");
        // The copy is taken only once the loss and the buffers proved finite,
        // so the refusal came from the update itself.
        assert!(copied(&n), "{name}: the bound should have failed");
        assert_eq!(state(&n), before, "{name}");
        // Training goes on from the restored state, bounded again.
        n.set_base_lr(1e-3).unwrap();
        let (x, y) = batch(6, 1.0);
        assert!(n.train_step(x.view(), Targets::Values(y.view()), None).unwrap().loss_sum.is_finite());
        assert!(!copied(&n), "{name}: bounds rescanned after the undo");
    }
}

#[test]
fn a_step_refused_before_its_update_restores_the_buffers_without_a_copy() {
    for opt in optimizers() {
        let name = format!("{opt:?}");
        // Without the first linear layer's scale reaching the loss: BatchNorm
        // first, so huge inputs overflow its running variance (a buffer).
        let layers = r#"[{"type": "batch_norm"}, {"type": "dense", "units": 1}]"#;
        let spec = NetworkSpec { input_dim: 3, layers: serde_json::from_str(layers).unwrap(), loss: "mse".into(), optimizer: opt, seed: 1, schedule: None, input_shape: None, variable_steps: false };
        let mut n = Network::new(spec).unwrap();
        for k in 0..2 {
            let (x, y) = batch(k, 1.0);
            n.train_step(x.view(), Targets::Values(y.view()), None).unwrap();
        }
        let before = state(&n);
        let (x, y) = batch(3, 1e20);
        assert!(n.train_step(x.view(), Targets::Values(y.view()), None).unwrap().loss_sum.is_nan(), "{name}");
        assert!(!copied(&n), "{name}: refused before the update, nothing but the buffers needed saving");
        assert_eq!(state(&n), before, "{name}");
    }
}

/// A shuffled epoch of batches large enough for the pool (the gather of each
/// batch's rows splits between threads, and the first layer's weight gradient
/// packs its strided right operand by threads' own columns) gives the bits of
/// `train_step` on the same rows gathered by hand, on 1, 2 and 3 threads.
#[test]
fn a_shuffled_epoch_on_the_pool_equals_steps_on_gathered_rows() {
    let (rows, cols, batch) = (384, 300, 128);
    let spec = || {
        let layers = r#"[{"type": "dense", "units": 160, "activation": "relu"}, {"type": "dense", "units": 4}]"#;
        let optimizer = OptimizerConfig::Adam(AdamConfig::default());
        NetworkSpec { input_dim: cols, layers: serde_json::from_str(layers).unwrap(), loss: "cross_entropy".into(), optimizer, seed: 9, schedule: None, input_shape: None, variable_steps: false }
    };
    let x = Matrix::from_vec(rows, cols, (0..rows * cols).map(|i| ((i * 37 % 101) as f32 - 50.0) / 40.0).collect()).unwrap();
    let y: Vec<i64> = (0..rows).map(|i| (i * 7 % 4) as i64).collect();
    let opts = EpochOptions { batch_size: batch, shuffle: true, seed: 5, epoch: 2, start_batch: 0, max_batches: None, trusted: false };
    // The step runs in ferronn's own pool, so its size is what is varied (the
    // results of every other test are the same on any thread count).
    let before = crate::threads::num_threads();
    let epoch_on = |threads: usize| {
        crate::threads::set_num_threads(threads).unwrap();
        let mut net = Network::new(spec()).unwrap();
        let report = net.train_epoch(x.view(), Targets::Labels(&y), None, &opts).unwrap();
        assert_eq!(report.batches, 3);
        (state(&net), net.batch.order.clone())
    };
    let (one, order) = epoch_on(1);
    let others: Vec<_> = [2, 3].into_iter().map(|t| (t, epoch_on(t).0)).collect();
    crate::threads::set_num_threads(before).unwrap();
    assert_ne!(order, (0..rows).collect::<Vec<_>>(), "the epoch was shuffled");
    for (threads, got) in others {
        assert!(got == one, "a shuffled epoch on {threads} threads changed the bits");
    }
    let mut net = Network::new(spec()).unwrap();
    for idx in order.chunks(batch) {
        let xb: Vec<f32> = idx.iter().flat_map(|&i| x.view().row(i).iter().copied()).collect();
        let yb: Vec<i64> = idx.iter().map(|&i| y[i]).collect();
        let xb = Matrix::from_vec(idx.len(), cols, xb).unwrap();
        net.train_step(xb.view(), Targets::Labels(&yb), None).unwrap();
    }
    assert!(state(&net) == one, "train_step on the gathered rows differs from the epoch");
}
