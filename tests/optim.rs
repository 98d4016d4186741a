//! Optimizer tests: every rule against an independent f64 reference of
//! PyTorch's update, hand-computed scalar steps, thread-count independence,
//! config validation, serde, and state save/restore.

use ferronn::optim::{AdamConfig, Optimizer, OptimizerConfig, SgdConfig};
use ferronn::Error;

/// Deterministic values in [-1, 1) (splitmix64), so failures reproduce.
fn uniform(seed: u64, n: usize) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            ((z >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// The update rules written out in f64, in the textbook form (bias-corrected
/// moments) rather than the crate's rearranged one. Returns the parameters and
/// the state buffers in `Optimizer::state` order.
fn reference(cfg: &OptimizerConfig, p0: &[f32], grads: &[Vec<f32>]) -> (Vec<f64>, Vec<Vec<f64>>) {
    let n = p0.len();
    let mut p: Vec<f64> = p0.iter().map(|&x| f64::from(x)).collect();
    match cfg {
        OptimizerConfig::Sgd(c) => {
            let (lr, mom, damp, wd) = (
                f64::from(c.lr),
                f64::from(c.momentum),
                f64::from(c.dampening),
                f64::from(c.weight_decay),
            );
            let mut buf = vec![0.0f64; n];
            for (t, g) in grads.iter().enumerate() {
                for i in 0..n {
                    let mut d = f64::from(g[i]) + wd * p[i];
                    if mom != 0.0 {
                        buf[i] = if t == 0 {
                            d
                        } else {
                            mom * buf[i] + (1.0 - damp) * d
                        };
                        d = if c.nesterov { d + mom * buf[i] } else { buf[i] };
                    }
                    p[i] -= lr * d;
                }
            }
            let state = if mom != 0.0 { vec![buf] } else { vec![] };
            (p, state)
        }
        OptimizerConfig::Adam(c) | OptimizerConfig::Adamw(c) => {
            let decoupled = matches!(cfg, OptimizerConfig::Adamw(_));
            let (lr, b1, b2, eps, wd) = (
                f64::from(c.lr),
                f64::from(c.beta1),
                f64::from(c.beta2),
                f64::from(c.eps),
                f64::from(c.weight_decay),
            );
            let (mut m, mut v) = (vec![0.0f64; n], vec![0.0f64; n]);
            for (t, g) in grads.iter().enumerate() {
                let t = (t + 1) as i32;
                for i in 0..n {
                    let mut gi = f64::from(g[i]);
                    if decoupled {
                        p[i] *= 1.0 - lr * wd;
                    } else {
                        gi += wd * p[i];
                    }
                    m[i] = b1 * m[i] + (1.0 - b1) * gi;
                    v[i] = b2 * v[i] + (1.0 - b2) * gi * gi;
                    let m_hat = m[i] / (1.0 - b1.powi(t));
                    let v_hat = v[i] / (1.0 - b2.powi(t));
                    p[i] -= lr * m_hat / (v_hat.sqrt() + eps);
                }
            }
            (p, vec![m, v])
        }
    }
}

/// Largest relative error. Values far below the vector's largest magnitude
/// arise from cancelling O(max) terms and inherit their absolute rounding
/// (f32 ulp of the operands), so they are measured against a tenth of the
/// largest magnitude instead of their own.
fn max_rel_err(got: &[f32], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len());
    let floor = 0.1 * want.iter().fold(0.0f64, |m, b| m.max(b.abs()));
    got.iter()
        .zip(want)
        .map(|(&a, &b)| (f64::from(a) - b).abs() / b.abs().max(floor).max(f64::MIN_POSITIVE))
        .fold(0.0, f64::max)
}

fn sgd(
    lr: f32,
    momentum: f32,
    dampening: f32,
    nesterov: bool,
    weight_decay: f32,
) -> OptimizerConfig {
    OptimizerConfig::Sgd(SgdConfig {
        lr,
        momentum,
        dampening,
        nesterov,
        weight_decay,
    })
}

fn adam(lr: f32, weight_decay: f32) -> AdamConfig {
    AdamConfig {
        lr,
        weight_decay,
        ..AdamConfig::default()
    }
}

fn configs() -> Vec<(&'static str, OptimizerConfig)> {
    vec![
        ("sgd plain", sgd(0.1, 0.0, 0.0, false, 0.0)),
        ("sgd momentum", sgd(0.1, 0.9, 0.0, false, 0.0)),
        ("sgd momentum+dampening", sgd(0.05, 0.9, 0.3, false, 0.0)),
        ("sgd nesterov", sgd(0.1, 0.9, 0.0, true, 0.0)),
        ("sgd weight decay", sgd(0.1, 0.0, 0.0, false, 0.05)),
        ("sgd nesterov+weight decay", sgd(0.1, 0.8, 0.0, true, 0.01)),
        ("adam", OptimizerConfig::Adam(adam(0.01, 0.0))),
        ("adam weight decay", OptimizerConfig::Adam(adam(0.01, 0.1))),
        (
            "adam odd betas",
            OptimizerConfig::Adam(AdamConfig {
                lr: 0.05,
                beta1: 0.5,
                beta2: 0.9,
                eps: 1e-3,
                weight_decay: 0.0,
            }),
        ),
        ("adamw", OptimizerConfig::Adamw(adam(0.01, 0.1))),
        ("adamw default", OptimizerConfig::adamw_default()),
    ]
}

/// Runs `steps` updates with per-step gradients; returns the final params.
fn run(opt: &mut Optimizer, p: &mut [f32], grads: &[Vec<f32>]) {
    for g in grads {
        opt.step(p, g);
    }
}

#[test]
fn matches_f64_reference() {
    let n = 1000;
    let p0 = uniform(1, n);
    let grads: Vec<Vec<f32>> = (0..5).map(|s| uniform(100 + s, n)).collect();
    for (label, cfg) in configs() {
        let mut opt = Optimizer::new(cfg.clone()).unwrap();
        let mut p = p0.clone();
        run(&mut opt, &mut p, &grads);
        let (want_p, want_state) = reference(&cfg, &p0, &grads);
        let err = max_rel_err(&p, &want_p);
        assert!(err <= 1e-5, "{label}: params rel err {err:e}");
        assert!(
            p.iter().zip(&p0).any(|(a, b)| a != b),
            "{label}: nothing moved"
        );
        let state = opt.state();
        assert_eq!(state.len(), want_state.len(), "{label}: state buffers");
        for ((name, got), want) in state.iter().zip(&want_state) {
            let err = max_rel_err(got, want);
            assert!(err <= 1e-5, "{label}: state {name} rel err {err:e}");
        }
        assert_eq!(opt.steps(), 5);
    }
}

#[test]
fn sgd_scalar_steps_by_hand() {
    // Plain: 1 - 0.1 * 0.5.
    let mut opt = Optimizer::new(sgd(0.1, 0.0, 0.0, false, 0.0)).unwrap();
    let mut p = [1.0f32];
    opt.step(&mut p, &[0.5]);
    assert!((p[0] - 0.95).abs() < 1e-7, "{}", p[0]);

    // Momentum 0.9: b1 = 0.5 (undamped seed), p = 0.95; b2 = 0.9*0.5 + 0.5 = 0.95, p = 0.855.
    let mut opt = Optimizer::new(sgd(0.1, 0.9, 0.5, false, 0.0)).unwrap();
    let mut p = [1.0f32];
    opt.step(&mut p, &[0.5]);
    assert!((p[0] - 0.95).abs() < 1e-7, "{}", p[0]);
    // With dampening 0.5 the second buffer is 0.9*0.5 + 0.5*0.5 = 0.7, p = 0.88.
    opt.step(&mut p, &[0.5]);
    assert!((p[0] - 0.88).abs() < 1e-6, "{}", p[0]);
    assert!((opt.state()[0].1[0] - 0.7).abs() < 1e-7);

    // Nesterov first step: b = g = 0.5, d = 0.5 + 0.9*0.5 = 0.95, p = 1 - 0.095.
    let mut opt = Optimizer::new(sgd(0.1, 0.9, 0.0, true, 0.0)).unwrap();
    let mut p = [1.0f32];
    opt.step(&mut p, &[0.5]);
    assert!((p[0] - 0.905).abs() < 1e-6, "{}", p[0]);

    // L2 decay: g = 0.5 + 0.1 * 2 = 0.7, p = 2 - 0.07.
    let mut opt = Optimizer::new(sgd(0.1, 0.0, 0.0, false, 0.1)).unwrap();
    let mut p = [2.0f32];
    opt.step(&mut p, &[0.5]);
    assert!((p[0] - 1.93).abs() < 1e-6, "{}", p[0]);
}

#[test]
fn adam_scalar_steps_by_hand() {
    // The first bias-corrected step is lr * g / (|g| + eps): lr * sign(g).
    let mut opt = Optimizer::new(OptimizerConfig::Adam(adam(0.1, 0.0))).unwrap();
    let mut p = [1.0f32, 1.0, -3.0];
    opt.step(&mut p, &[0.5, -2.0, 1e-3]);
    for (got, want) in p.iter().zip([0.9f32, 1.1, -3.1]) {
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
    }
    // A constant gradient keeps m_hat / sqrt(v_hat) = 1, so every step moves lr.
    opt.step(&mut p, &[0.5, -2.0, 1e-3]);
    for (got, want) in p.iter().zip([0.8f32, 1.2, -3.2]) {
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
    }

    // AdamW shrinks first: 1 * (1 - 0.1 * 0.1) = 0.99, then moves lr: 0.89.
    let mut opt = Optimizer::new(OptimizerConfig::Adamw(adam(0.1, 0.1))).unwrap();
    let mut p = [1.0f32];
    opt.step(&mut p, &[0.5]);
    assert!((p[0] - 0.89).abs() < 1e-6, "{}", p[0]);

    // Adam's L2 decay is inside the normalised step, so the first step is still lr.
    let mut opt = Optimizer::new(OptimizerConfig::Adam(adam(0.1, 0.1))).unwrap();
    let mut p = [1.0f32];
    opt.step(&mut p, &[0.5]);
    assert!((p[0] - 0.9).abs() < 1e-6, "{}", p[0]);
}

#[test]
fn bit_identical_across_thread_counts() {
    // Above the parallel threshold and not a multiple of the chunk length.
    let n = (1 << 15) * 3 + 123;
    let p0 = uniform(7, n);
    let grads: Vec<Vec<f32>> = (0..3).map(|s| uniform(200 + s, n)).collect();
    for (label, cfg) in configs() {
        let results: Vec<(Vec<f32>, Vec<Vec<f32>>)> = [1, 2]
            .iter()
            .map(|&threads| {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap();
                pool.install(|| {
                    let mut opt = Optimizer::new(cfg.clone()).unwrap();
                    let mut p = p0.clone();
                    run(&mut opt, &mut p, &grads);
                    let state = opt.state().iter().map(|(_, s)| s.to_vec()).collect();
                    (p, state)
                })
            })
            .collect();
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(
            bits(&results[0].0),
            bits(&results[1].0),
            "{label}: params differ"
        );
        for (a, b) in results[0].1.iter().zip(&results[1].1) {
            assert_eq!(bits(a), bits(b), "{label}: state differs");
        }
        // The parallel path must also be right, not just consistent.
        let (want, _) = reference(&cfg, &p0, &grads);
        let err = max_rel_err(&results[1].0, &want);
        assert!(err <= 1e-5, "{label}: parallel rel err {err:e}");
    }
}

fn config_err(cfg: OptimizerConfig) -> String {
    match cfg.validate() {
        Err(Error::Config(msg)) => {
            assert!(matches!(Optimizer::new(cfg), Err(Error::Config(_))));
            msg
        }
        other => panic!("{cfg:?}: expected Error::Config, got {other:?}"),
    }
}

#[test]
fn validate_rejects_bad_hyperparameters() {
    let msg = config_err(sgd(-0.1, 0.0, 0.0, false, 0.0));
    assert!(msg.contains("lr") && msg.contains("-0.1"), "{msg}");
    let msg = config_err(sgd(f32::NAN, 0.0, 0.0, false, 0.0));
    assert!(msg.contains("lr") && msg.contains("NaN"), "{msg}");
    config_err(OptimizerConfig::Adam(adam(f32::INFINITY, 0.0)));
    let msg = config_err(sgd(0.1, -0.5, 0.0, false, 0.0));
    assert!(msg.contains("momentum"), "{msg}");
    let msg = config_err(sgd(0.1, 0.0, 0.0, true, 0.0));
    assert!(msg.contains("nesterov"), "{msg}");
    let msg = config_err(sgd(0.1, 0.9, 0.1, true, 0.0));
    assert!(
        msg.contains("nesterov") && msg.contains("dampening"),
        "{msg}"
    );
    let msg = config_err(sgd(0.1, 0.0, 0.0, false, -1.0));
    assert!(msg.contains("weight_decay"), "{msg}");
    let msg = config_err(OptimizerConfig::Adam(AdamConfig {
        beta1: 1.0,
        ..AdamConfig::default()
    }));
    assert!(msg.contains("beta1") && msg.contains("[0, 1)"), "{msg}");
    let msg = config_err(OptimizerConfig::Adamw(AdamConfig {
        beta2: 1.0,
        ..AdamConfig::default()
    }));
    assert!(msg.contains("adamw") && msg.contains("beta2"), "{msg}");
    config_err(OptimizerConfig::Adam(AdamConfig {
        beta2: f32::NAN,
        ..AdamConfig::default()
    }));
    let msg = config_err(OptimizerConfig::Adam(AdamConfig {
        eps: 0.0,
        ..AdamConfig::default()
    }));
    assert!(msg.contains("eps"), "{msg}");

    for (_, cfg) in configs() {
        cfg.validate().unwrap();
    }
    OptimizerConfig::Sgd(SgdConfig::default())
        .validate()
        .unwrap();
    OptimizerConfig::Adam(AdamConfig::default())
        .validate()
        .unwrap();
}

#[test]
fn set_lr_checks_and_keeps_state() {
    let mut opt = Optimizer::new(OptimizerConfig::Adam(adam(0.1, 0.0))).unwrap();
    let mut p = vec![1.0f32; 4];
    opt.step(&mut p, &[1.0; 4]);
    assert!(matches!(opt.set_lr(-1.0), Err(Error::Config(_))));
    assert!(matches!(opt.set_lr(f32::NAN), Err(Error::Config(_))));
    assert_eq!(opt.config().lr(), 0.1);
    opt.set_lr(0.05).unwrap();
    assert_eq!(opt.config().lr(), 0.05);
    assert_eq!(opt.steps(), 1);
    assert_eq!(opt.state().len(), 2);
}

#[test]
fn names_and_defaults() {
    assert_eq!(OptimizerConfig::from_name("sgd").unwrap().name(), "sgd");
    assert_eq!(
        OptimizerConfig::from_name("adam").unwrap(),
        OptimizerConfig::Adam(AdamConfig::default())
    );
    assert_eq!(
        OptimizerConfig::from_name("adamw").unwrap(),
        OptimizerConfig::adamw_default()
    );
    match OptimizerConfig::adamw_default() {
        OptimizerConfig::Adamw(c) => assert_eq!((c.lr, c.weight_decay), (1e-3, 0.01)),
        other => panic!("{other:?}"),
    }
    match OptimizerConfig::from_name("rmsprop") {
        Err(Error::UnknownName(msg)) => {
            assert!(msg.contains("rmsprop") && msg.contains("adamw"), "{msg}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn serde_round_trip() {
    for (label, cfg) in configs() {
        let json = serde_json::to_string(&cfg).unwrap();
        assert!(
            json.contains(&format!("\"name\":\"{}\"", cfg.name())),
            "{label}: {json}"
        );
        let back: OptimizerConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(back, cfg, "{label}: {json}");
    }
    let json = r#"{"name":"sgd","lr":0.1,"momentum":0.9,"dampening":0.0,"nesterov":true,"weight_decay":0.0}"#;
    let cfg: OptimizerConfig = serde_json::from_str(json).unwrap();
    assert_eq!(cfg, sgd(0.1, 0.9, 0.0, true, 0.0));
    assert!(serde_json::from_str::<OptimizerConfig>(r#"{"name":"lion","lr":0.1}"#).is_err());
    let typo = r#"{"name":"adam","lr":0.1,"beta1":0.9,"beta2":0.999,"eps":1e-8,"weight_decay":0,"betta":1}"#;
    assert!(serde_json::from_str::<OptimizerConfig>(typo).is_err());
}

fn owned(opt: &Optimizer) -> Vec<(String, Vec<f32>)> {
    opt.state()
        .into_iter()
        .map(|(n, s)| (n.to_string(), s.to_vec()))
        .collect()
}

#[test]
fn state_round_trip_continues_identically() {
    let n = 300;
    let p0 = uniform(3, n);
    let grads: Vec<Vec<f32>> = (0..6).map(|s| uniform(300 + s, n)).collect();
    for (label, cfg) in configs() {
        let mut whole = Optimizer::new(cfg.clone()).unwrap();
        let mut p_whole = p0.clone();
        run(&mut whole, &mut p_whole, &grads);

        let mut first = Optimizer::new(cfg.clone()).unwrap();
        let mut p = p0.clone();
        run(&mut first, &mut p, &grads[..3]);
        let (steps, saved) = (first.steps(), owned(&first));
        let mut resumed = Optimizer::new(cfg.clone()).unwrap();
        // Buffers in reverse order: load_state matches them by name.
        let reversed: Vec<_> = saved.iter().rev().cloned().collect();
        resumed.load_state(steps, &reversed, n).unwrap();
        assert_eq!(resumed.steps(), 3);
        assert_eq!(owned(&resumed), saved, "{label}");
        run(&mut resumed, &mut p, &grads[3..]);
        assert_eq!(p, p_whole, "{label}: resumed run diverged");
        assert_eq!(owned(&resumed), owned(&whole), "{label}");
    }
}

#[test]
fn load_state_rejects_mismatches() {
    let mut opt = Optimizer::new(OptimizerConfig::Adam(AdamConfig::default())).unwrap();
    let mut p = vec![0.5f32; 10];
    opt.step(&mut p, &[0.1; 10]);
    let good = owned(&opt);
    let format_err = |opt: &mut Optimizer, steps, bufs: &[(String, Vec<f32>)], n| match opt
        .load_state(steps, bufs, n)
    {
        Err(Error::Format(msg)) => msg,
        other => panic!("expected Error::Format, got {other:?}"),
    };

    let msg = format_err(&mut opt, 1, &good, 11);
    assert!(msg.contains("10") && msg.contains("11"), "{msg}");
    let mut short = good.clone();
    short[1].1.pop();
    format_err(&mut opt, 1, &short, 10);
    let msg = format_err(&mut opt, 1, &good[..1], 10);
    assert!(msg.contains("exp_avg_sq"), "{msg}");
    let mut renamed = good.clone();
    renamed[0].0 = "momentum_buffer".into();
    let msg = format_err(&mut opt, 1, &renamed, 10);
    assert!(msg.contains("momentum_buffer"), "{msg}");
    let doubled = vec![good[0].clone(), good[0].clone(), good[1].clone()];
    format_err(&mut opt, 1, &doubled, 10);
    format_err(&mut opt, 0, &good, 10);

    // A failed load leaves the state as it was.
    assert_eq!(opt.steps(), 1);
    assert_eq!(owned(&opt), good);

    // Plain SGD keeps no buffers, so any buffer is foreign to it.
    let mut plain = Optimizer::new(sgd(0.1, 0.0, 0.0, false, 0.0)).unwrap();
    format_err(&mut plain, 1, &good, 10);
    plain.load_state(4, &[], 10).unwrap();
    assert_eq!(plain.steps(), 4);
}

#[test]
fn reset_and_resize_start_afresh() {
    let cfg = sgd(0.1, 0.9, 0.0, false, 0.0);
    let mut opt = Optimizer::new(cfg.clone()).unwrap();
    assert!(opt.state().is_empty());
    let mut p = vec![1.0f32; 8];
    opt.step(&mut p, &[1.0; 8]);
    opt.step(&mut p, &[1.0; 8]);
    opt.reset();
    assert_eq!(opt.steps(), 0);
    assert!(opt.state().is_empty());

    // After a reset, and after the parameter count changes, the next step is
    // a first step again (SGD seeds its buffer with the raw gradient).
    let mut fresh = Optimizer::new(cfg).unwrap();
    let (mut a, mut b) = (vec![1.0f32; 8], vec![1.0f32; 8]);
    opt.step(&mut a, &[0.5; 8]);
    fresh.step(&mut b, &[0.5; 8]);
    assert_eq!(a, b);
    let mut c = vec![1.0f32; 5];
    opt.step(&mut c, &[0.5; 5]);
    assert_eq!(opt.steps(), 1);
    assert_eq!(c, vec![a[0]; 5]);
    assert_eq!(opt.state()[0].1.len(), 5);
}
