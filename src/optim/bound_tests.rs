//! The update bound (bound.rs) is sound: whenever it says a step stays finite,
//! the step really writes only finite weights and state, for every optimizer
//! and option, over magnitudes from tiny to the edge of f32.

use rand::{Rng, SeedableRng};

use rand_chacha::ChaCha8Rng;

use super::*;
use crate::layers::ParamInfo;
use crate::kernels::reduce::max_abs;
use crate::regularizer::finite_sums;

/// Every optimizer kind and option that changes the arithmetic.
fn configs() -> Vec<OptimizerConfig> {
    let sgd = SgdConfig::default();
    let adam = AdamConfig::default();
    let rms = RmspropConfig::default();
    let clip = OptimizerOptions { clipvalue: Some(3.0), global_clipnorm: Some(5.0), ..OptimizerOptions::default() };
    let per_tensor = OptimizerOptions { clipnorm: Some(2.0), ..OptimizerOptions::default() };
    vec![
        OptimizerConfig::Sgd(sgd.clone()),
        OptimizerConfig::Sgd(SgdConfig { weight_decay: 0.5, ..sgd.clone() }),
        OptimizerConfig::Sgd(SgdConfig { momentum: 0.9, dampening: 0.1, ..sgd.clone() }),
        OptimizerConfig::Sgd(SgdConfig { momentum: 0.9, nesterov: true, weight_decay: 0.1, ..sgd.clone() }),
        OptimizerConfig::Sgd(SgdConfig { momentum: 0.5, options: per_tensor.clone(), ..sgd }),
        OptimizerConfig::Adam(adam.clone()),
        OptimizerConfig::Adam(AdamConfig { weight_decay: 0.3, eps: 1e-3, ..adam.clone() }),
        OptimizerConfig::Adam(AdamConfig { options: clip.clone(), ..adam.clone() }),
        OptimizerConfig::Adamw(AdamConfig { weight_decay: 0.01, options: OptimizerOptions { exclude_from_weight_decay: vec!["b".into()], ..OptimizerOptions::default() }, ..adam.clone() }),
        OptimizerConfig::Adamw(AdamConfig { weight_decay: 0.5, amsgrad: true, beta1: 0.0, beta2: 0.5, ..adam.clone() }),
        OptimizerConfig::Adam(AdamConfig { amsgrad: true, options: per_tensor, ..adam }),
        OptimizerConfig::Rmsprop(rms.clone()),
        OptimizerConfig::Rmsprop(RmspropConfig { momentum: 0.9, weight_decay: 0.2, ..rms.clone() }),
        OptimizerConfig::Rmsprop(RmspropConfig { centered: true, ..rms.clone() }),
        OptimizerConfig::Rmsprop(RmspropConfig { centered: true, momentum: 0.5, eps_inside_sqrt: true, ..rms.clone() }),
        OptimizerConfig::Rmsprop(RmspropConfig { eps_inside_sqrt: true, options: clip.clone(), ..rms }),
        OptimizerConfig::Adagrad(AdagradConfig::default()),
        OptimizerConfig::Adagrad(AdagradConfig { weight_decay: 0.1, lr_decay: 0.01, initial_accumulator_value: 0.5, options: clip, ..AdagradConfig::default() }),
    ]
}

/// A value of magnitude about `10^e` with a random sign and mantissa.
fn value(rng: &mut ChaCha8Rng, e: f32) -> f32 {
    let v = rng.random_range(0.1f32..1.0) * 10f32.powf(e);
    let v = if v.is_finite() { v } else { f32::MAX };
    if rng.random_bool(0.5) { v } else { -v }
}

#[test]
fn a_step_the_bound_passes_is_finite_and_the_bound_passes_ordinary_steps() {
    let n = 37;
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for config in configs() {
        let name = format!("{config:?}");
        let (mut passed, mut refused) = (0, 0);
        for trial in 0..400 {
            let mut opt = Optimizer::new(config.clone()).unwrap();
            // Two tensors, so per-tensor clipping and layouts have two runs.
            opt.set_layout(&[ParamInfo::new("a", 0, vec![20]), ParamInfo::new("b", 20, vec![n - 20])]);
            if trial % 2 == 0 {
                opt.set_extra_l2(&[(0..20, 0.25)]);
            }
            // Ordinary magnitudes for a quarter of the trials, anything up to f32's edge otherwise.
            let top = if trial % 4 == 0 { 1.0 } else { 39.0 };
            let (ep, eg, es) = (rng.random_range(-3.0..top), rng.random_range(-3.0..top), rng.random_range(-3.0..top));
            let elr = if top > 1.0 { rng.random_range(-4.0..38.0) } else { rng.random_range(-4.0..-1.0) };
            let mut p: Vec<f32> = (0..n).map(|_| value(&mut rng, ep)).collect();
            let g: Vec<f32> = (0..n).map(|_| value(&mut rng, eg)).collect();
            let lr = value(&mut rng, elr).abs();
            // A state as a run could have left it: moments of either sign,
            // second moments and sums non-negative.
            let steps = rng.random_range(1u64..50);
            let non_negative = config.non_negative_states();
            let buffers: Vec<(String, Vec<f32>)> = config.state_names().iter().map(|s| {
                let v = (0..n).map(|_| value(&mut rng, es)).map(|v| if non_negative.contains(s) { v.abs() } else { v }).collect();
                (s.to_string(), v)
            }).collect();
            opt.load_state(steps, &buffers, n).unwrap();
            let bounded = opt.update_stays_finite(n, max_abs(&g), max_abs(&p), lr);
            opt.set_lr(lr).unwrap();
            opt.step(&mut p, &g);
            if bounded {
                passed += 1;
                assert!(p.iter().all(|v| v.is_finite()), "{name}: bounded step wrote a non-finite weight (trial {trial})");
                assert!(finite_sums(&p, true, true).0, "{name}: bounded step's penalty sums overflow (trial {trial})");
                for (s, b) in opt.state() {
                    assert!(b.iter().all(|v| v.is_finite()), "{name}: bounded step wrote a non-finite {s} (trial {trial})");
                }
                // The carried bounds hold for the state the step wrote.
                let carried = opt.bounds.expect("a bounded step carries its bounds");
                for ((_, b), bound) in opt.state().iter().zip(carried) {
                    assert!(f64::from(max_abs(b)) <= bound, "{name}: carried bound {bound} below the state (trial {trial})");
                }
            } else {
                refused += 1;
                assert!(opt.bounds.is_none(), "{name}: an unbounded step must forget the bounds");
            }
        }
        // The bound is useful (ordinary steps pass) and not vacuous (huge ones fail).
        assert!(passed >= 100 && refused >= 50, "{name}: {passed} passed, {refused} refused");
    }
}

#[test]
fn ordinary_training_is_bounded_after_the_first_step() {
    let n = 1000;
    for config in configs() {
        let mut opt = Optimizer::new(config.clone()).unwrap();
        let mut p: Vec<f32> = (0..n).map(|i| ((i * 37 % 101) as f32 - 50.0) / 100.0).collect();
        assert!(!opt.update_stays_finite(n, 1.0, 0.5, 1e-3), "{config:?}: the first step has no state to bound");
        for step in 0..20 {
            let g: Vec<f32> = (0..n).map(|i| (((i + step) * 13 % 29) as f32 - 14.0) / 10.0).collect();
            // As the training step asks: before `prepare` sizes a first state.
            let bounded = opt.update_stays_finite(n, max_abs(&g), max_abs(&p), 1e-3);
            opt.prepare(n).unwrap();
            assert_eq!(bounded, step > 0, "{config:?}: step {step}");
            opt.step(&mut p, &g);
        }
        // Any other change of the state forgets the bounds; the next call scans.
        let state: Vec<(String, Vec<f32>)> = opt.state().iter().map(|(k, v)| (k.to_string(), v.to_vec())).collect();
        opt.load_state(opt.steps(), &state, n).unwrap();
        assert!(opt.bounds.is_none());
        assert!(opt.update_stays_finite(n, 1.0, max_abs(&p), 1e-3));
        // A non-finite gradient or weight is never bounded.
        assert!(!opt.update_stays_finite(n, f32::INFINITY, 1.0, 1e-3));
        assert!(!opt.update_stays_finite(n, 1.0, f32::INFINITY, 1e-3));
        // A state holding NaN (say from a file) is never bounded either.
        let nan: Vec<(String, Vec<f32>)> = state.iter().map(|(k, v)| (k.clone(), v.iter().map(|_| f32::NAN).collect())).collect();
        if !nan.is_empty() {
            let mut fresh = Optimizer::new(config.clone()).unwrap();
            fresh.load_state(5, &nan, n).unwrap();
            assert!(!fresh.update_stays_finite(n, 1.0, 1.0, 1e-3), "{config:?}");
        }
    }
}
