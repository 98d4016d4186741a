//! Inference through a shared network: `predict` and `evaluate` take `&self`,
//! so several threads can run them on one network at once, and each gets the
//! single-thread result bit for bit (also with BatchNorm's running statistics,
//! which inference only reads).

use ferronn::loss::Targets;
use ferronn::network::{Network, NetworkSpec};
use ferronn::tensor::MatRef;

fn network() -> Network {
    let json = r#"{"input_dim": 12, "layers": [
        {"type": "dense", "units": 32, "activation": "relu"},
        {"type": "batch_norm"},
        {"type": "dropout", "rate": 0.3},
        {"type": "dense", "units": 5}],
        "loss": "cross_entropy", "optimizer": {"name":"adam","lr":0.01,"beta1":0.9,"beta2":0.999,"eps":1e-8,"weight_decay":0.0}, "seed": 3}"#;
    let spec: NetworkSpec = serde_json::from_str(json).unwrap();
    Network::new(spec).unwrap()
}

#[test]
fn predict_from_many_threads_matches_one_thread() {
    let mut net = network();
    let rows = 300;
    let x: Vec<f32> = (0..rows * 12).map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0).collect();
    let labels: Vec<i64> = (0..rows as i64).map(|i| i % 5).collect();
    let x = MatRef::new(rows, 12, &x).unwrap();
    // A few training steps give BatchNorm running statistics other than their defaults.
    for _ in 0..3 {
        net.train_step(x, Targets::Labels(&labels[..]), None).unwrap();
    }
    let net = &net;
    let want = &net.predict(x).unwrap();
    let labels = &labels;
    let want_stats = net.evaluate(x, Targets::Labels(&labels[..]), None).unwrap();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..6)
            .map(|t| {
                s.spawn(move || {
                    for i in 0..40 {
                        // Different batch sizes per call exercise workspaces of several sizes.
                        let n = if (t + i) % 3 == 0 { rows } else { 1 + (t * 7 + i) % rows };
                        let got = net.predict(x.rows_range(0, n)).unwrap();
                        assert_eq!(got.as_slice(), &want.as_slice()[..n * 5], "thread {t} call {i}");
                    }
                    assert_eq!(net.evaluate(x, Targets::Labels(&labels[..]), None).unwrap(), want_stats);
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
    });
}
