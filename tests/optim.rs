//! Optimizer tests: every rule against an independent f64 reference of
//! PyTorch's update, hand-computed scalar steps, thread-count independence,
//! config validation, serde, and state save/restore.

use ferronn::layers::ParamInfo;
use ferronn::optim::{
    AdagradConfig, AdamConfig, Optimizer, OptimizerConfig, RmspropConfig, SgdConfig,
};
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

/// A parameter layout like the network's: tensors of `n` parameters in all,
/// named as the network names them, in proportions that give large and tiny
/// tensors alike.
fn layout(n: usize) -> Vec<ParamInfo> {
    let names = [
        ("layers.0.weight", 50),
        ("layers.0.bias", 1),
        ("layers.1.gamma", 6),
        ("layers.1.beta", 6),
        ("layers.2.block.0.weight", 25),
        ("layers.2.block.0.bias", 1),
        ("layers.3.alpha", 1),
        ("layers.4.weight", 10),
    ];
    let total: usize = names.iter().map(|(_, w)| w).sum();
    let mut out = Vec::new();
    let mut offset = 0;
    for (i, (name, w)) in names.iter().enumerate() {
        let len = if i + 1 == names.len() {
            n - offset
        } else {
            (n * w / total).max(1).min(n - offset)
        };
        out.push(ParamInfo::new(*name, offset, vec![len]));
        offset += len;
    }
    out
}

/// The options every config shares, as the reference reads them.
struct Common {
    weight_decay: f64,
    clipvalue: Option<f32>,
    clipnorm: Option<f32>,
    global_clipnorm: Option<f32>,
    exclude: Vec<String>,
}

fn common(cfg: &OptimizerConfig) -> Common {
    let c = cfg.clipping();
    Common {
        weight_decay: f64::from(cfg.weight_decay()),
        clipvalue: c.clipvalue,
        clipnorm: c.clipnorm,
        global_clipnorm: c.global_clipnorm,
        exclude: cfg.exclude_from_weight_decay().to_vec(),
    }
}

/// Keras' clipping in f64: clipvalue, then per-tensor clipnorm, then the
/// global norm with PyTorch's `clip_grad_norm_` eps.
fn clip_ref(c: &Common, g: &mut [f64], tensors: &[std::ops::Range<usize>]) {
    if let Some(v) = c.clipvalue {
        let v = f64::from(v);
        g.iter_mut().for_each(|x| *x = x.clamp(-v, v));
    }
    if let Some(m) = c.clipnorm {
        let m = f64::from(m);
        for r in tensors {
            let norm = g[r.clone()].iter().map(|x| x * x).sum::<f64>().sqrt();
            g[r.clone()]
                .iter_mut()
                .for_each(|x| *x = *x * m / norm.max(m));
        }
    }
    if let Some(m) = c.global_clipnorm {
        let norm = g.iter().map(|x| x * x).sum::<f64>().sqrt();
        let coef = (f64::from(m) / (norm + 1e-6)).min(1.0);
        g.iter_mut().for_each(|x| *x *= coef);
    }
}

/// The update rules written out in f64, in the textbook form (bias-corrected
/// moments) rather than the crate's rearranged one, after clipping the
/// gradients and with weight decay only on tensors not excluded by name
/// (`layout` empty: one tensor with decay). Returns the parameters and the
/// state buffers in `Optimizer::state` order.
fn reference(
    cfg: &OptimizerConfig,
    p0: &[f32],
    grads: &[Vec<f32>],
    layout: &[ParamInfo],
) -> (Vec<f64>, Vec<Vec<f64>>) {
    let n = p0.len();
    let mut p: Vec<f64> = p0.iter().map(|&x| f64::from(x)).collect();
    let com = common(cfg);
    let (tensors, wd): (Vec<_>, Vec<f64>) = if layout.is_empty() {
        (std::iter::once(0..n).collect(), vec![com.weight_decay; n])
    } else {
        let mut wd = vec![0.0; n];
        for t in layout {
            let excluded = com.exclude.iter().any(|s| t.name.contains(s.as_str()));
            let w = if excluded { 0.0 } else { com.weight_decay };
            wd[t.range()].iter_mut().for_each(|x| *x = w);
        }
        (layout.iter().map(|t| t.range()).collect(), wd)
    };
    let grads: Vec<Vec<f64>> = grads
        .iter()
        .map(|g| {
            let mut g: Vec<f64> = g.iter().map(|&x| f64::from(x)).collect();
            clip_ref(&com, &mut g, &tensors);
            g
        })
        .collect();
    match cfg {
        OptimizerConfig::Sgd(c) => {
            let (lr, mom, damp) = (
                f64::from(c.lr),
                f64::from(c.momentum),
                f64::from(c.dampening),
            );
            let mut buf = vec![0.0f64; n];
            for (t, g) in grads.iter().enumerate() {
                for i in 0..n {
                    let mut d = g[i] + wd[i] * p[i];
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
            let (lr, b1, b2, eps) = (
                f64::from(c.lr),
                f64::from(c.beta1),
                f64::from(c.beta2),
                f64::from(c.eps),
            );
            let (mut m, mut v, mut vmax) = (vec![0.0f64; n], vec![0.0f64; n], vec![0.0f64; n]);
            for (t, g) in grads.iter().enumerate() {
                let t = (t + 1) as i32;
                for i in 0..n {
                    let mut gi = g[i];
                    if decoupled {
                        p[i] *= 1.0 - lr * wd[i];
                    } else {
                        gi += wd[i] * p[i];
                    }
                    m[i] = b1 * m[i] + (1.0 - b1) * gi;
                    v[i] = b2 * v[i] + (1.0 - b2) * gi * gi;
                    vmax[i] = vmax[i].max(v[i]);
                    let second = if c.amsgrad { vmax[i] } else { v[i] };
                    let m_hat = m[i] / (1.0 - b1.powi(t));
                    let v_hat = second / (1.0 - b2.powi(t));
                    p[i] -= lr * m_hat / (v_hat.sqrt() + eps);
                }
            }
            let state = if c.amsgrad {
                vec![m, v, vmax]
            } else {
                vec![m, v]
            };
            (p, state)
        }
        OptimizerConfig::Rmsprop(c) => {
            let (lr, alpha, eps, mom) = (
                f64::from(c.lr),
                f64::from(c.alpha),
                f64::from(c.eps),
                f64::from(c.momentum),
            );
            let (mut sq, mut buf, mut avg) = (vec![0.0f64; n], vec![0.0f64; n], vec![0.0f64; n]);
            for g in &grads {
                for i in 0..n {
                    let gi = g[i] + wd[i] * p[i];
                    sq[i] = alpha * sq[i] + (1.0 - alpha) * gi * gi;
                    let var = if c.centered {
                        avg[i] = alpha * avg[i] + (1.0 - alpha) * gi;
                        sq[i] - avg[i] * avg[i]
                    } else {
                        sq[i]
                    };
                    let d = if c.eps_inside_sqrt {
                        (var + eps).sqrt() // Keras' placement
                    } else {
                        var.sqrt() + eps
                    };
                    if mom > 0.0 {
                        buf[i] = mom * buf[i] + gi / d;
                        p[i] -= lr * buf[i];
                    } else {
                        p[i] -= lr * gi / d;
                    }
                }
            }
            let mut state = vec![sq];
            if mom > 0.0 {
                state.push(buf);
            }
            if c.centered {
                state.push(avg);
            }
            (p, state)
        }
        OptimizerConfig::Adagrad(c) => {
            let (lr, decay, eps) = (f64::from(c.lr), f64::from(c.lr_decay), f64::from(c.eps));
            let mut sum = vec![f64::from(c.initial_accumulator_value); n];
            for (t, g) in grads.iter().enumerate() {
                let clr = lr / (1.0 + t as f64 * decay);
                for i in 0..n {
                    let gi = g[i] + wd[i] * p[i];
                    sum[i] += gi * gi;
                    p[i] -= clr * gi / (sum[i].sqrt() + eps);
                }
            }
            (p, vec![sum])
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
        ..SgdConfig::default()
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
                ..AdamConfig::default()
            }),
        ),
        ("adamw", OptimizerConfig::Adamw(adam(0.01, 0.1))),
        ("adamw default", OptimizerConfig::adamw_default()),
        // A short second-moment memory, so exp_avg_sq often falls below its maximum.
        (
            "adam amsgrad",
            OptimizerConfig::Adam(amsgrad(AdamConfig {
                beta2: 0.5,
                ..adam(0.02, 0.05)
            })),
        ),
        (
            "adamw amsgrad",
            OptimizerConfig::Adamw(amsgrad(AdamConfig {
                beta2: 0.8,
                ..adam(0.02, 0.1)
            })),
        ),
        (
            "rmsprop default",
            OptimizerConfig::Rmsprop(RmspropConfig::default()),
        ),
        ("rmsprop momentum", rmsprop(0.01, 0.9, 0.9, false, 0.0)),
        ("rmsprop centered", rmsprop(0.01, 0.9, 0.0, true, 0.0)),
        (
            "rmsprop centered+momentum",
            rmsprop(0.005, 0.95, 0.8, true, 0.0),
        ),
        ("rmsprop weight decay", rmsprop(0.01, 0.99, 0.0, false, 0.1)),
        ("rmsprop all", rmsprop(0.01, 0.9, 0.5, true, 0.05)),
        // Keras' rule, sqrt(v + eps), with Keras' eps so that it matters.
        (
            "rmsprop eps inside sqrt",
            OptimizerConfig::Rmsprop(RmspropConfig {
                eps_inside_sqrt: true,
                eps: 1e-3,
                ..RmspropConfig::default()
            }),
        ),
        (
            "rmsprop eps inside sqrt, centered+momentum",
            OptimizerConfig::Rmsprop(RmspropConfig {
                eps_inside_sqrt: true,
                eps: 1e-3,
                ..match rmsprop(0.005, 0.95, 0.8, true, 0.0) {
                    OptimizerConfig::Rmsprop(c) => c,
                    _ => unreachable!(),
                }
            }),
        ),
        (
            "adagrad default",
            OptimizerConfig::Adagrad(AdagradConfig::default()),
        ),
        (
            "adagrad lr_decay+weight decay+accumulator",
            OptimizerConfig::Adagrad(AdagradConfig {
                lr: 0.1,
                lr_decay: 0.3,
                weight_decay: 0.05,
                initial_accumulator_value: 0.5,
                ..AdagradConfig::default()
            }),
        ),
        (
            "sgd clipvalue",
            clipped(sgd(0.1, 0.9, 0.0, false, 0.0), Some(0.5), None, None),
        ),
        (
            "sgd clipnorm",
            clipped(sgd(0.1, 0.0, 0.0, false, 0.0), None, Some(3.0), None),
        ),
        (
            "adam global_clipnorm",
            clipped(
                OptimizerConfig::Adam(adam(0.01, 0.0)),
                None,
                None,
                Some(5.0),
            ),
        ),
        (
            "rmsprop all clipping",
            clipped(
                rmsprop(0.01, 0.9, 0.5, false, 0.0),
                Some(0.7),
                Some(4.0),
                Some(6.0),
            ),
        ),
        (
            "sgd exclusion",
            excluding(sgd(0.1, 0.9, 0.0, false, 0.2), &["bias", "gamma", "beta"]),
        ),
        (
            "adamw exclusion",
            excluding(OptimizerConfig::Adamw(adam(0.02, 0.5)), &["bias", "alpha"]),
        ),
        (
            "adagrad exclusion+clipnorm",
            clipped(
                excluding(
                    OptimizerConfig::Adagrad(AdagradConfig {
                        weight_decay: 0.1,
                        ..AdagradConfig::default()
                    }),
                    &["beta", "weight"],
                ),
                None,
                Some(2.0),
                None,
            ),
        ),
        (
            "rmsprop exclusion",
            excluding(rmsprop(0.01, 0.9, 0.0, true, 0.2), &["layers.0.", "gamma"]),
        ),
    ]
}

fn amsgrad(c: AdamConfig) -> AdamConfig {
    AdamConfig { amsgrad: true, ..c }
}

fn rmsprop(
    lr: f32,
    alpha: f32,
    momentum: f32,
    centered: bool,
    weight_decay: f32,
) -> OptimizerConfig {
    OptimizerConfig::Rmsprop(RmspropConfig {
        lr,
        alpha,
        momentum,
        centered,
        weight_decay,
        ..RmspropConfig::default()
    })
}

/// `cfg` with the given clipping options set.
fn clipped(
    mut cfg: OptimizerConfig,
    value: Option<f32>,
    norm: Option<f32>,
    global: Option<f32>,
) -> OptimizerConfig {
    let o = cfg.options_mut();
    (o.clipvalue, o.clipnorm, o.global_clipnorm) = (value, norm, global);
    cfg
}

/// `cfg` excluding tensors whose names contain any of `names` from weight decay.
fn excluding(mut cfg: OptimizerConfig, names: &[&str]) -> OptimizerConfig {
    cfg.options_mut().exclude_from_weight_decay = names.iter().map(|s| s.to_string()).collect();
    cfg
}

/// Runs `steps` updates with per-step gradients; returns the final params.
fn run(opt: &mut Optimizer, p: &mut [f32], grads: &[Vec<f32>]) {
    for g in grads {
        opt.step(p, g);
    }
}

/// The parameters and optimizer state after the `grads` steps from `p0`, run on a
/// pool of `threads` threads.
fn run_on_threads(threads: usize, cfg: &OptimizerConfig, layout: &[ParamInfo], p0: &[f32], grads: &[Vec<f32>]) -> (Vec<f32>, Vec<Vec<f32>>) {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
    pool.install(|| {
        let mut opt = Optimizer::new(cfg.clone()).unwrap();
        opt.set_layout(layout);
        let mut p = p0.to_vec();
        run(&mut opt, &mut p, grads);
        let state = opt.state().iter().map(|(_, s)| s.to_vec()).collect();
        (p, state)
    })
}

#[test]
fn matches_f64_reference() {
    let n = 1000;
    let p0 = uniform(1, n);
    let grads: Vec<Vec<f32>> = (0..5).map(|s| uniform(100 + s, n)).collect();
    for (label, cfg) in configs() {
        for layout in [vec![], layout(n)] {
            let label = format!("{label} ({} tensors)", layout.len().max(1));
            let mut opt = Optimizer::new(cfg.clone()).unwrap();
            opt.set_layout(&layout);
            let mut p = p0.clone();
            run(&mut opt, &mut p, &grads);
            let (want_p, want_state) = reference(&cfg, &p0, &grads, &layout);
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
    let layout = layout(n);
    for (label, cfg) in configs() {
        // One contiguous piece per thread: 2, 3 and 5 pieces of uneven lengths.
        let results: Vec<(Vec<f32>, Vec<Vec<f32>>)> = [1, 2, 3, 5].iter().map(|&threads| run_on_threads(threads, &cfg, &layout, &p0, &grads)).collect();
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        for other in &results[1..] {
            assert_eq!(bits(&results[0].0), bits(&other.0), "{label}: params differ");
            for (a, b) in results[0].1.iter().zip(&other.1) {
                assert_eq!(bits(a), bits(b), "{label}: state differs");
            }
        }
        // The parallel path must also be right, not just consistent.
        let (want, _) = reference(&cfg, &p0, &grads, &layout);
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
    assert_eq!(
        OptimizerConfig::from_name("rmsprop").unwrap(),
        OptimizerConfig::Rmsprop(RmspropConfig::default())
    );
    assert_eq!(
        OptimizerConfig::from_name("adagrad").unwrap(),
        OptimizerConfig::Adagrad(AdagradConfig::default())
    );
    match OptimizerConfig::from_name("lion") {
        Err(Error::UnknownName(msg)) => {
            assert!(msg.contains("lion") && msg.contains("adagrad"), "{msg}")
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
    let layout = layout(n);
    for (label, cfg) in configs() {
        let fresh = || {
            let mut opt = Optimizer::new(cfg.clone()).unwrap();
            opt.set_layout(&layout);
            opt
        };
        let mut whole = fresh();
        let mut p_whole = p0.clone();
        run(&mut whole, &mut p_whole, &grads);

        let mut first = fresh();
        let mut p = p0.clone();
        run(&mut first, &mut p, &grads[..3]);
        let (steps, saved) = (first.steps(), owned(&first));
        let mut resumed = fresh();
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

// -- training control: RMSprop, Adagrad, AMSGrad, clipping, decay exclusion --

#[test]
fn rmsprop_and_adagrad_scalar_steps_by_hand() {
    // RMSprop: v = 0.01 * 0.25, d = 0.05 (+1e-8), p = 1 - 0.01 * 0.5 / 0.05 = 0.9.
    let mut opt = Optimizer::new(OptimizerConfig::Rmsprop(RmspropConfig::default())).unwrap();
    let mut p = [1.0f32];
    opt.step(&mut p, &[0.5]);
    assert!((p[0] - 0.9).abs() < 1e-6, "{}", p[0]);
    assert!((opt.state()[0].1[0] - 0.0025).abs() < 1e-8);

    // Centered: a = 0.005, var = 0.0025 - 0.000025, so the step is a bit larger.
    let mut opt = Optimizer::new(rmsprop(0.01, 0.99, 0.0, true, 0.0)).unwrap();
    let mut p = [1.0f32];
    opt.step(&mut p, &[0.5]);
    let want = 1.0 - 0.01 * 0.5 / (0.002475f64.sqrt() + 1e-8);
    assert!((f64::from(p[0]) - want).abs() < 1e-6, "{} vs {want}", p[0]);

    // Momentum: b = 0 * 0.9 + 0.5 / 0.05 = 10, p = 1 - 0.01 * 10; then
    // v = 0.99 * 0.0025 + 0.0025, b = 9 + 0.5 / sqrt(v).
    let mut opt = Optimizer::new(rmsprop(0.01, 0.99, 0.9, false, 0.0)).unwrap();
    let mut p = [1.0f32];
    opt.step(&mut p, &[0.5]);
    assert!((p[0] - 0.9).abs() < 1e-6, "{}", p[0]);
    opt.step(&mut p, &[0.5]);
    let b2 = 9.0 + 0.5 / (0.0025f64 * 1.99).sqrt();
    assert!(
        (f64::from(p[0]) - (0.9 - 0.01 * b2)).abs() < 1e-5,
        "{}",
        p[0]
    );

    // Adagrad: s = 0.25, p = 1 - 0.1 * 0.5 / 0.5 = 0.9; then with lr_decay 0.5
    // clr = 0.1 / 1.5, s = 0.5, p = 0.9 - clr * 0.5 / sqrt(0.5).
    let mut opt = Optimizer::new(OptimizerConfig::Adagrad(AdagradConfig {
        lr: 0.1,
        lr_decay: 0.5,
        ..AdagradConfig::default()
    }))
    .unwrap();
    let mut p = [1.0f32];
    opt.step(&mut p, &[0.5]);
    assert!((p[0] - 0.9).abs() < 1e-6, "{}", p[0]);
    opt.step(&mut p, &[0.5]);
    let want = 0.9 - 0.1 / 1.5 * 0.5 / 0.5f64.sqrt();
    assert!((f64::from(p[0]) - want).abs() < 1e-6, "{} vs {want}", p[0]);

    // The accumulator starts at initial_accumulator_value: s = 0.75 + 0.25 = 1.
    let mut opt = Optimizer::new(OptimizerConfig::Adagrad(AdagradConfig {
        lr: 0.1,
        initial_accumulator_value: 0.75,
        ..AdagradConfig::default()
    }))
    .unwrap();
    let mut p = [1.0f32];
    opt.step(&mut p, &[0.5]);
    assert!((p[0] - 0.95).abs() < 1e-6, "{}", p[0]);
    assert_eq!(opt.state()[0], ("sum", &[1.0f32][..]));
}

#[test]
fn amsgrad_keeps_the_running_maximum() {
    let cfg = OptimizerConfig::Adam(amsgrad(adam(0.1, 0.0)));
    let mut opt = Optimizer::new(cfg).unwrap();
    let mut p = [0.0f32];
    opt.step(&mut p, &[1.0]);
    let v1 = opt.state()[1].1[0];
    assert_eq!(opt.state()[2], ("max_exp_avg_sq", &[v1][..]));
    // A much smaller gradient lowers exp_avg_sq but not its maximum.
    opt.step(&mut p, &[0.01]);
    let state = opt.state();
    assert!(state[1].1[0] < v1);
    assert_eq!(state[2].1[0], v1);
    // ...so the step is smaller than plain Adam's.
    let mut plain = Optimizer::new(OptimizerConfig::Adam(adam(0.1, 0.0))).unwrap();
    let mut q = [0.0f32];
    plain.step(&mut q, &[1.0]);
    plain.step(&mut q, &[0.01]);
    assert_eq!(p.len(), 1);
    assert!(
        (q[0] - -0.1) < (p[0] - -0.1),
        "amsgrad {} vs adam {}",
        p[0],
        q[0]
    );
}

#[test]
fn state_names_follow_the_settings() {
    let names = |cfg: OptimizerConfig| cfg.state_names().to_vec();
    assert_eq!(names(rmsprop(0.01, 0.9, 0.0, false, 0.0)), ["square_avg"]);
    assert_eq!(
        names(rmsprop(0.01, 0.9, 0.5, false, 0.0)),
        ["square_avg", "momentum_buffer"]
    );
    assert_eq!(
        names(rmsprop(0.01, 0.9, 0.0, true, 0.0)),
        ["square_avg", "grad_avg"]
    );
    assert_eq!(
        names(rmsprop(0.01, 0.9, 0.5, true, 0.0)),
        ["square_avg", "momentum_buffer", "grad_avg"]
    );
    assert_eq!(
        names(OptimizerConfig::Adagrad(AdagradConfig::default())),
        ["sum"]
    );
    assert_eq!(
        names(OptimizerConfig::Adamw(amsgrad(AdamConfig::default()))),
        ["exp_avg", "exp_avg_sq", "max_exp_avg_sq"]
    );
    for (label, cfg) in configs() {
        let mut opt = Optimizer::new(cfg.clone()).unwrap();
        opt.step(&mut [1.0; 3], &[0.5; 3]);
        let got: Vec<_> = opt.state().iter().map(|(n, _)| *n).collect();
        assert_eq!(got, cfg.state_names(), "{label}");
        for name in cfg.non_negative_states() {
            assert!(
                !got.contains(name)
                    || opt
                        .state()
                        .iter()
                        .any(|(n, s)| n == name && s.iter().all(|&v| v >= 0.0)),
                "{label}: {name}"
            );
        }
    }
}

/// With plain SGD at lr 1 a step subtracts exactly the (clipped) gradient.
fn clipped_grads(cfg: OptimizerConfig, layout: &[ParamInfo], g: &[f32]) -> Vec<f32> {
    let mut opt = Optimizer::new(cfg).unwrap();
    opt.set_layout(layout);
    let mut p = vec![0.0f32; g.len()];
    opt.step(&mut p, g);
    p.iter().map(|x| -x).collect()
}

#[test]
fn clipping_by_hand() {
    let plain = sgd(1.0, 0.0, 0.0, false, 0.0);
    let layout = vec![
        ParamInfo::new("layers.0.weight", 0, vec![2, 1]),
        ParamInfo::new("layers.0.bias", 2, vec![2]),
    ];
    let g = [3.0f32, -4.0, 0.3, 0.4];

    let got = clipped_grads(clipped(plain.clone(), Some(1.0), None, None), &layout, &g);
    assert_eq!(got, [1.0, -1.0, 0.3, 0.4]);

    // Per tensor: (3, -4) has norm 5 -> (0.6, -0.8); (0.3, 0.4) is within 1.
    let got = clipped_grads(clipped(plain.clone(), None, Some(1.0), None), &layout, &g);
    for (a, b) in got.iter().zip([0.6f32, -0.8, 0.3, 0.4]) {
        assert!((a - b).abs() < 1e-6, "{got:?}");
    }
    // Without a layout the whole vector is one tensor (norm sqrt(25.25)).
    let got = clipped_grads(clipped(plain.clone(), None, Some(1.0), None), &[], &g);
    let s = 1.0 / 25.25f64.sqrt();
    for (a, b) in got.iter().zip(g) {
        assert!((f64::from(*a) - f64::from(b) * s).abs() < 1e-6, "{got:?}");
    }

    // Global: scale = 2 / (sqrt(25.25) + 1e-6) for every element.
    let got = clipped_grads(clipped(plain.clone(), None, None, Some(2.0)), &layout, &g);
    let s = 2.0 / (25.25f64.sqrt() + 1e-6);
    for (a, b) in got.iter().zip(g) {
        assert!((f64::from(*a) - f64::from(b) * s).abs() < 1e-6, "{got:?}");
    }
    // Within the bound nothing changes, bit for bit.
    let got = clipped_grads(
        clipped(plain.clone(), None, Some(10.0), Some(10.0)),
        &layout,
        &g,
    );
    assert_eq!(got, g);

    // All three in order: clamp to 2 -> (2, -2, 0.3, 0.4); per tensor norm
    // 2.83 -> (0.707, -0.707); then global norm sqrt(1 + 0.25) = 1.118 -> / 1.118 * 0.5.
    let got = clipped_grads(clipped(plain, Some(2.0), Some(1.0), Some(0.5)), &layout, &g);
    let r = 0.5f64.sqrt();
    let s = 0.5 / (1.25f64.sqrt() + 1e-6);
    for (a, b) in got.iter().zip([r, -r, 0.3, 0.4]) {
        assert!((f64::from(*a) - b * s).abs() < 1e-6, "{got:?}");
    }
}

#[test]
fn clipping_leaves_the_callers_gradients_alone() {
    let cfg = clipped(
        OptimizerConfig::Adam(adam(0.1, 0.0)),
        Some(0.1),
        Some(0.1),
        Some(0.1),
    );
    let mut opt = Optimizer::new(cfg).unwrap();
    let g = uniform(5, 100);
    let copy = g.clone();
    let mut p = vec![0.0f32; 100];
    opt.step(&mut p, &g);
    assert_eq!(g, copy);
}

#[test]
fn weight_decay_exclusion_by_hand() {
    let layout = vec![
        ParamInfo::new("layers.0.weight", 0, vec![2]),
        ParamInfo::new("layers.0.bias", 2, vec![1]),
        ParamInfo::new("layers.1.gamma", 3, vec![1]),
        ParamInfo::new("layers.1.beta", 4, vec![1]),
        ParamInfo::new("layers.2.weight", 5, vec![1]),
    ];
    let p0 = [1.0f32; 6];
    let zero = [0.0f32; 6];
    let exclude = ["bias", "gamma", "beta"];
    // SGD's L2 term: p = 1 - 0.1 * 0.5 * 1 where decayed, untouched elsewhere.
    let mut opt = Optimizer::new(excluding(sgd(0.1, 0.0, 0.0, false, 0.5), &exclude)).unwrap();
    opt.set_layout(&layout);
    let mut p = p0;
    opt.step(&mut p, &zero);
    assert_eq!(p, [0.95, 0.95, 1.0, 1.0, 1.0, 0.95]);
    // AdamW's decoupled shrink skips the excluded tensors too (m = 0, so only the shrink moves).
    let mut opt =
        Optimizer::new(excluding(OptimizerConfig::Adamw(adam(0.1, 0.5)), &exclude)).unwrap();
    opt.set_layout(&layout);
    let mut p = p0;
    opt.step(&mut p, &zero);
    assert_eq!(p, [0.95, 0.95, 1.0, 1.0, 1.0, 0.95]);
    // Without a layout everything decays.
    let mut opt = Optimizer::new(excluding(sgd(0.1, 0.0, 0.0, false, 0.5), &exclude)).unwrap();
    let mut p = p0;
    opt.step(&mut p, &zero);
    assert_eq!(p, [0.95; 6]);
    // The layout survives reset and load_state.
    let mut opt = Optimizer::new(excluding(
        OptimizerConfig::Rmsprop(RmspropConfig {
            weight_decay: 0.5,
            ..RmspropConfig::default()
        }),
        &["weight"],
    ))
    .unwrap();
    opt.set_layout(&layout);
    opt.reset();
    let mut p = p0;
    opt.step(&mut p, &zero);
    assert_eq!([p[0], p[1], p[5]], [1.0; 3]);
    assert!(p[2..5].iter().all(|&x| x < 1.0), "{p:?}");
}

#[test]
fn options_change_the_trajectory() {
    // Each option of the reference test really changes the result (so the
    // comparison above exercises it): the same run without it differs.
    let n = 1000;
    let layout = layout(n);
    let p0 = uniform(1, n);
    let grads: Vec<Vec<f32>> = (0..5).map(|s| uniform(100 + s, n)).collect();
    let final_params = |cfg: OptimizerConfig| {
        let mut opt = Optimizer::new(cfg).unwrap();
        opt.set_layout(&layout);
        let mut p = p0.clone();
        run(&mut opt, &mut p, &grads);
        p
    };
    for (label, cfg) in configs() {
        let mut without = vec![];
        if cfg.clipping().is_active() {
            without.push(("clipping", clipped(cfg.clone(), None, None, None)));
            let c = cfg.clipping();
            for (i, on) in [c.clipvalue, c.clipnorm, c.global_clipnorm]
                .iter()
                .enumerate()
            {
                if on.is_some() {
                    let mut v = [c.clipvalue, c.clipnorm, c.global_clipnorm];
                    v[i] = None;
                    without.push(("one clip option", clipped(cfg.clone(), v[0], v[1], v[2])));
                }
            }
        }
        if !cfg.exclude_from_weight_decay().is_empty() {
            without.push(("exclusion", excluding(cfg.clone(), &[])));
        }
        if let OptimizerConfig::Adam(c) | OptimizerConfig::Adamw(c) = &cfg {
            if c.amsgrad {
                let plain = AdamConfig {
                    amsgrad: false,
                    ..c.clone()
                };
                let plain = match cfg {
                    OptimizerConfig::Adam(_) => OptimizerConfig::Adam(plain),
                    _ => OptimizerConfig::Adamw(plain),
                };
                without.push(("amsgrad", plain));
            }
        }
        let with = final_params(cfg.clone());
        for (what, other) in without {
            let other = final_params(other);
            assert!(
                max_rel_err(
                    &with,
                    &other.iter().map(|&x| f64::from(x)).collect::<Vec<_>>()
                ) > 1e-4,
                "{label}: {what} changes nothing"
            );
        }
    }
}

#[test]
fn global_clipnorm_is_thread_count_independent() {
    // Large enough that the norm is summed on the pool, with a ragged tail.
    let n = (1 << 20) + 4097;
    let p0 = uniform(11, n);
    let grads: Vec<Vec<f32>> = (0..3).map(|s| uniform(400 + s, n)).collect();
    let big = vec![
        ParamInfo::new("layers.0.weight", 0, vec![n - 70_001]),
        ParamInfo::new("layers.0.bias", n - 70_001, vec![70_001]),
    ];
    for (label, cfg, layout) in [
        (
            "global",
            clipped(
                OptimizerConfig::Adam(adam(0.01, 0.0)),
                None,
                None,
                Some(1.0),
            ),
            vec![],
        ),
        (
            "per tensor",
            clipped(sgd(0.1, 0.9, 0.0, false, 0.0), None, Some(1.0), None),
            big.clone(),
        ),
        (
            "all",
            clipped(
                sgd(0.1, 0.0, 0.0, false, 0.0),
                Some(0.9),
                Some(50.0),
                Some(2.0),
            ),
            big,
        ),
    ] {
        let results: Vec<Vec<u32>> = [1, 2, 3]
            .iter()
            .map(|&threads| run_on_threads(threads, &cfg, &layout, &p0, &grads).0.iter().map(|x| x.to_bits()).collect())
            .collect();
        assert!(results[0] == results[1], "{label}: 1 vs 2 threads");
        assert!(results[0] == results[2], "{label}: 1 vs 3 threads");
        // And it is the right answer.
        let got: Vec<f32> = results[0].iter().map(|&b| f32::from_bits(b)).collect();
        let (want, _) = reference(&cfg, &p0, &grads, &layout);
        let err = max_rel_err(&got, &want);
        assert!(err <= 1e-5, "{label}: rel err {err:e}");
    }
}

#[test]
fn validate_rejects_bad_new_options() {
    for field in ["clipvalue", "clipnorm", "global_clipnorm"] {
        for bad in [-1.0f32, 0.0, f32::NAN, f32::INFINITY] {
            let mut v = [None; 3];
            v[["clipvalue", "clipnorm", "global_clipnorm"]
                .iter()
                .position(|f| *f == field)
                .unwrap()] = Some(bad);
            for base in [
                sgd(0.1, 0.0, 0.0, false, 0.0),
                OptimizerConfig::adamw_default(),
            ] {
                let msg = config_err(clipped(base, v[0], v[1], v[2]));
                assert!(msg.contains(field) && msg.contains("> 0"), "{msg}");
            }
        }
    }
    // Both norm clips at once are fine (applied per tensor, then globally).
    clipped(
        OptimizerConfig::Adam(AdamConfig::default()),
        Some(1.0),
        Some(1.0),
        Some(1.0),
    )
    .validate()
    .unwrap();
    let msg = config_err(excluding(sgd(0.1, 0.0, 0.0, false, 0.1), &["bias", ""]));
    assert!(
        msg.contains("exclude_from_weight_decay") && msg.contains("empty"),
        "{msg}"
    );

    let rms = |f: fn(&mut RmspropConfig)| {
        let mut c = RmspropConfig::default();
        f(&mut c);
        OptimizerConfig::Rmsprop(c)
    };
    let msg = config_err(rms(|c| c.alpha = 1.5));
    assert!(
        msg.contains("rmsprop alpha") && msg.contains("[0, 1]"),
        "{msg}"
    );
    let msg = config_err(rms(|c| c.alpha = -0.1));
    assert!(msg.contains("alpha"), "{msg}");
    let msg = config_err(rms(|c| c.momentum = -0.5));
    assert!(msg.contains("rmsprop momentum"), "{msg}");
    let msg = config_err(rms(|c| c.eps = 0.0));
    assert!(msg.contains("rmsprop eps"), "{msg}");
    let msg = config_err(rms(|c| c.weight_decay = -1.0));
    assert!(msg.contains("weight_decay"), "{msg}");
    let msg = config_err(rms(|c| c.lr = -1.0));
    assert!(msg.contains("lr"), "{msg}");
    rms(|c| c.alpha = 1.0).validate().unwrap();
    rms(|c| c.alpha = 0.0).validate().unwrap();

    let ada = |f: fn(&mut AdagradConfig)| {
        let mut c = AdagradConfig::default();
        f(&mut c);
        OptimizerConfig::Adagrad(c)
    };
    let msg = config_err(ada(|c| c.lr_decay = -0.1));
    assert!(msg.contains("adagrad lr_decay"), "{msg}");
    let msg = config_err(ada(|c| c.initial_accumulator_value = -1.0));
    assert!(msg.contains("initial_accumulator_value"), "{msg}");
    let msg = config_err(ada(|c| c.eps = -1e-10));
    assert!(msg.contains("adagrad eps"), "{msg}");
    let msg = config_err(ada(|c| c.weight_decay = f32::NAN));
    assert!(msg.contains("weight_decay"), "{msg}");
}

#[test]
fn serde_of_new_options() {
    // Unset options stay out of the JSON, so such files read as before.
    let json = serde_json::to_string(&OptimizerConfig::Adam(AdamConfig::default())).unwrap();
    assert_eq!(
        json,
        r#"{"name":"adam","lr":0.001,"beta1":0.9,"beta2":0.999,"eps":1e-8,"weight_decay":0.0}"#
    );
    let json = serde_json::to_string(&OptimizerConfig::Rmsprop(RmspropConfig::default())).unwrap();
    assert_eq!(
        json,
        r#"{"name":"rmsprop","lr":0.01,"alpha":0.99,"eps":1e-8,"weight_decay":0.0,"momentum":0.0,"centered":false}"#
    );
    let json = serde_json::to_string(&OptimizerConfig::Adagrad(AdagradConfig::default())).unwrap();
    assert_eq!(
        json,
        r#"{"name":"adagrad","lr":0.01,"lr_decay":0.0,"weight_decay":0.0,"initial_accumulator_value":0.0,"eps":1e-10}"#
    );
    let cfg = excluding(
        clipped(
            OptimizerConfig::Adamw(amsgrad(adam(0.01, 0.1))),
            Some(0.5),
            Some(1.0),
            None,
        ),
        &["bias"],
    );
    let json = serde_json::to_string(&cfg).unwrap();
    for part in [
        r#""amsgrad":true"#,
        r#""clipvalue":0.5"#,
        r#""clipnorm":1.0"#,
        r#""exclude_from_weight_decay":["bias"]"#,
    ] {
        assert!(json.contains(part), "{json}");
    }
    assert!(!json.contains("global_clipnorm"), "{json}");
    assert_eq!(serde_json::from_str::<OptimizerConfig>(&json).unwrap(), cfg);
    // null reads as unset (the Python side may write it).
    let json = r#"{"name":"sgd","lr":0.1,"momentum":0.0,"dampening":0.0,"nesterov":false,"weight_decay":0.0,"clipnorm":null,"exclude_from_weight_decay":[]}"#;
    assert_eq!(
        serde_json::from_str::<OptimizerConfig>(json).unwrap(),
        sgd(0.1, 0.0, 0.0, false, 0.0)
    );
    // Typos stay errors.
    for bad in [
        r#"{"name":"rmsprop","lr":0.01,"alpha":0.99,"eps":1e-8,"weight_decay":0,"momentum":0,"centered":false,"clip_norm":1}"#,
        r#"{"name":"adagrad","lr":0.01,"lr_decay":0,"weight_decay":0,"initial_accumulator_value":0,"eps":1e-10,"amsgrad":true}"#,
        r#"{"name":"rmsprop","lr":0.01}"#,
    ] {
        assert!(
            serde_json::from_str::<OptimizerConfig>(bad).is_err(),
            "{bad}"
        );
    }
}

#[test]
fn load_state_rejects_negative_squares() {
    for (cfg, state) in [
        (
            OptimizerConfig::Rmsprop(RmspropConfig::default()),
            "square_avg",
        ),
        (OptimizerConfig::Adagrad(AdagradConfig::default()), "sum"),
        (
            OptimizerConfig::Adam(amsgrad(AdamConfig::default())),
            "max_exp_avg_sq",
        ),
        (OptimizerConfig::Adam(AdamConfig::default()), "exp_avg_sq"),
    ] {
        let mut opt = Optimizer::new(cfg).unwrap();
        let mut p = vec![0.5f32; 4];
        opt.step(&mut p, &[0.1; 4]);
        let mut saved = owned(&opt);
        opt.load_state(1, &saved, 4).unwrap();
        saved.iter_mut().find(|(n, _)| n == state).unwrap().1[2] = -1e-3;
        match opt.load_state(1, &saved, 4) {
            Err(Error::Format(msg)) => {
                assert!(msg.contains(state) && msg.contains("negative"), "{msg}")
            }
            other => panic!("{state}: {other:?}"),
        }
    }
    // grad_avg and the momentum buffer may be negative.
    let mut opt = Optimizer::new(rmsprop(0.01, 0.9, 0.9, true, 0.0)).unwrap();
    let mut p = vec![0.5f32; 4];
    opt.step(&mut p, &[-0.1; 4]);
    let saved = owned(&opt);
    assert!(saved.iter().any(|(n, d)| n == "grad_avg" && d[0] < 0.0));
    opt.load_state(1, &saved, 4).unwrap();
}
