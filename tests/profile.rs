//! The opt-in profile (`ferronn::profile`): what a training epoch records
//! while it is on, and that nothing is recorded while it is off. A test
//! binary of its own, so no other test trains while the profile is on.

use std::time::Instant;

use ferronn::loss::Targets;
use ferronn::network::{Network, NetworkSpec};
use ferronn::profile::{self, Phase, ProductStat};
use ferronn::tensor::{MatRef, Matrix};
use ferronn::train::EpochOptions;

const IN: usize = 20;
const HIDDEN: usize = 32;
const OUT: usize = 3;

fn network() -> Network {
    let json = format!(
        r#"{{"input_dim":{IN},"layers":[{{"type":"dense","units":{HIDDEN},"activation":"relu"}},{{"type":"dense","units":{OUT}}}],"loss":"cross_entropy","optimizer":{{"name":"adam","lr":0.01,"beta1":0.9,"beta2":0.999,"eps":1e-8,"weight_decay":0.0}},"seed":3}}"#
    );
    let spec: NetworkSpec = serde_json::from_str(&json).unwrap();
    Network::new(spec).unwrap()
}

fn data(n: usize) -> (Matrix, Vec<i64>) {
    let x = Matrix::from_vec(n, IN, (0..n * IN).map(|i| ((i * 37 % 101) as f32) / 50.0 - 1.0).collect()).unwrap();
    let y = (0..n).map(|i| (i % OUT) as i64).collect();
    (x, y)
}

/// One epoch of `n` samples in batches of `batch`, shuffled.
fn epoch(net: &mut Network, x: MatRef<'_>, y: &[i64], batch: usize) -> usize {
    let opts = EpochOptions { batch_size: batch, shuffle: true, seed: 1, epoch: 0, start_batch: 0, max_batches: None, trusted: false };
    net.train_epoch(x, Targets::Labels(y), None, &opts).unwrap().batches
}

fn calls_of(products: &[ProductStat], m: usize, n: usize, k: usize) -> u64 {
    products.iter().filter(|s| (s.m, s.n, s.k) == (m, n, k)).map(|s| s.calls).sum()
}

#[test]
fn an_epoch_records_its_products_and_phases_only_while_on() {
    let (x, y) = data(100);
    let mut net = network();

    profile::set_enabled(false);
    epoch(&mut net, x.view(), &y, 24);
    profile::set_enabled(true);
    // `set_enabled(true)` cleared what little an off profile could hold.
    let empty = profile::take();
    assert!(empty.products.is_empty());
    assert!(empty.phases.iter().all(|&(_, calls, ns)| calls == 0 && ns == 0));

    let t = Instant::now();
    let batches = epoch(&mut net, x.view(), &y, 24);
    let wall = t.elapsed().as_nanos() as u64;
    let p = profile::take();
    profile::set_enabled(false);

    // 100 samples in batches of 24: four full batches and one of 4.
    assert_eq!(batches, 5);
    // The forward products `x·W`: (batch × IN)·(IN × HIDDEN), (batch × HIDDEN)·(HIDDEN × OUT).
    assert_eq!(calls_of(&p.products, 24, HIDDEN, IN), 4);
    assert_eq!(calls_of(&p.products, 4, HIDDEN, IN), 1);
    assert_eq!(calls_of(&p.products, 24, OUT, HIDDEN), 4);
    // The weight gradients `xᵀ·dz`, one per layer and batch, depth = batch.
    assert_eq!(calls_of(&p.products, IN, HIDDEN, 24), 4);
    assert_eq!(calls_of(&p.products, HIDDEN, OUT, 24), 4);
    // The input gradient of the second layer only (the first has no input to pass it to).
    assert_eq!(calls_of(&p.products, 24, HIDDEN, OUT), 4);
    assert_eq!(calls_of(&p.products, 24, IN, HIDDEN), 0);
    for s in &p.products {
        assert!(s.wall_ns > 0 && s.busy_ns > 0 && s.threads >= 1, "{s:?}");
    }

    // Every phase ran once per batch, and together they fit in the call.
    for &(phase, calls, ns) in &p.phases {
        assert_eq!(calls, 5, "{}", phase.name());
        assert!(ns > 0, "{}", phase.name());
    }
    let phases: u64 = p.phases.iter().map(|&(_, _, ns)| ns).sum();
    assert!(phases <= wall, "phases {phases} ns, call {wall} ns");
    assert_eq!(p.phases.iter().map(|&(ph, _, _)| ph).collect::<Vec<_>>(), Phase::ALL.to_vec());

    // Taking clears, and an off profile records nothing.
    epoch(&mut net, x.view(), &y, 24);
    let after = profile::take();
    assert!(after.products.is_empty());
    assert!(after.phases.iter().all(|&(_, calls, _)| calls == 0));
}
