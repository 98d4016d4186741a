//! Accuracy and gradient checks for the vectorised transcendentals, the
//! activation functions and softmax, against independent float64 references.
//!
//! Run with `--nocapture` to see the measured maximum errors.

use std::f64::consts::PI;

use ferronn::activation::{add_bias, Activation, ACTIVATION_NAMES};
use ferronn::kernels::{math, softmax, PAR_THRESHOLD};
use ferronn::Error;

fn grid(lo: f64, hi: f64, n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| (lo + (hi - lo) * i as f64 / (n - 1) as f64) as f32)
        .collect()
}

/// Deterministic values in [lo, hi) (xorshift), so failures reproduce.
fn noise(n: usize, lo: f32, hi: f32, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            lo + (hi - lo) * ((s >> 40) as f32 / (1u64 << 24) as f32)
        })
        .collect()
}

/// erf in float64 from e^(−x²)·Σ 2ⁿx^(2n+1)/(2n+1)!!, whose terms are all
/// positive, so nothing cancels (std has no stable erf).
fn erf64(x: f64) -> f64 {
    let a = x.abs();
    if a > 6.5 {
        return 1f64.copysign(x);
    }
    let (x2, mut term, mut sum) = (a * a, a, a);
    for n in 1..500 {
        term *= 2.0 * x2 / (2 * n + 1) as f64;
        sum += term;
        if term < sum * 1e-17 {
            break;
        }
    }
    (2.0 / PI.sqrt() * (-x2).exp() * sum).copysign(x)
}

fn reference(act: Activation, x: f64) -> f64 {
    match act {
        Activation::Identity => x,
        Activation::Sigmoid => 1.0 / (1.0 + (-x).exp()),
        Activation::Tanh => x.tanh(),
        Activation::Relu => x.max(0.0),
        Activation::LeakyRelu { alpha } => {
            if x > 0.0 {
                x
            } else {
                alpha as f64 * x
            }
        }
        Activation::Elu { alpha } => {
            if x > 0.0 {
                x
            } else {
                alpha as f64 * x.exp_m1()
            }
        }
        Activation::Gelu => 0.5 * x * (1.0 + erf64(x / 2f64.sqrt())),
        Activation::GeluTanh => {
            0.5 * x * (1.0 + ((2.0 / PI).sqrt() * (x + 0.044715 * x * x * x)).tanh())
        }
        Activation::Silu => x / (1.0 + (-x).exp()),
        Activation::Softplus => x.max(0.0) + (-x.abs()).exp().ln_1p(),
    }
}

fn all_activations() -> Vec<Activation> {
    let mut acts = Vec::new();
    let named = ACTIVATION_NAMES
        .iter()
        .map(|n| Activation::from_name(n, None).unwrap());
    for act in named.chain([
        Activation::LeakyRelu { alpha: 0.2 },
        Activation::Elu { alpha: 0.7 },
    ]) {
        if !acts.contains(&act) {
            acts.push(act);
        }
    }
    acts
}

/// Max relative error of `f` against `g` over `xs`, skipping points where the
/// reference is not a normal f32 (subnormals carry less relative precision).
fn max_rel(xs: &[f32], f: impl Fn(f32) -> f32, g: impl Fn(f64) -> f64) -> f64 {
    xs.iter()
        .map(|&x| (f(x) as f64, g(x as f64)))
        .filter(|(_, r)| r.abs() >= f32::MIN_POSITIVE as f64)
        .map(|(y, r)| (y - r).abs() / r.abs())
        .fold(0.0, f64::max)
}

fn max_abs(xs: &[f32], f: impl Fn(f32) -> f32, g: impl Fn(f64) -> f64) -> f64 {
    xs.iter()
        .map(|&x| (f(x) as f64 - g(x as f64)).abs())
        .fold(0.0, f64::max)
}

#[test]
fn exp_accuracy() {
    let xs = grid(-87.0, 88.0, 200_001);
    let rel = max_rel(&xs, math::exp, f64::exp);
    println!("exp: max rel {rel:.3e} on [-87, 88]");
    assert!(rel <= 3e-7);
    let flushed = grid(-200.0, -87.3366, 20_001)
        .iter()
        .all(|&x| math::exp(x) == 0.0);
    assert!(
        flushed,
        "results below f32::MIN_POSITIVE are flushed to 0, never subnormal"
    );
    assert!(math::exp(88.72).is_finite() && math::exp(1e6).is_finite() && math::exp(-1e6) == 0.0);
    let rel = max_rel(&grid(-30.0, 88.0, 200_001), math::expm1, f64::exp_m1);
    println!("expm1: max rel {rel:.3e} on [-30, 88]");
    assert!(rel <= 3e-7);
}

#[test]
fn tanh_accuracy() {
    let xs = grid(-10.0, 10.0, 200_001);
    let abs = max_abs(&xs, math::tanh, f64::tanh);
    let tiny: Vec<f32> = (0..=3000)
        .map(|i| 10f32.powf(-30.0 + i as f32 / 100.0))
        .collect();
    let rel = max_rel(&tiny, math::tanh, f64::tanh).max(max_rel(&xs, math::tanh, f64::tanh));
    println!("tanh: max abs {abs:.3e} on [-10, 10]; max rel {rel:.3e} (incl. 1e-30..1)");
    assert!(abs <= 2e-7);
    assert!(rel <= 2e-6);
    assert!((math::tanh(1e-5) as f64 - 1e-5f32 as f64).abs() <= 1e-12);
    assert_eq!(math::tanh(30.0), 1.0);
}

#[test]
fn erf_sigmoid_softplus_accuracy() {
    let abs = max_abs(&grid(-6.0, 6.0, 200_001), math::erf, erf64);
    println!("erf: max abs {abs:.3e} on [-6, 6]");
    assert!(abs <= 3e-7);
    let erfc64 = |x: f64| 1.0 - erf64(x);
    let abs = max_abs(&grid(-6.0, 6.0, 200_001), math::erfc, erfc64);
    println!("erfc: max abs {abs:.3e} on [-6, 6]");
    assert!(abs <= 3e-7);
    let xs = grid(-100.0, 100.0, 200_001);
    let rel = max_rel(&xs, math::sigmoid, |x| 1.0 / (1.0 + (-x).exp()));
    println!("sigmoid: max rel {rel:.3e} on [-100, 100] (normal results)");
    assert!(rel <= 3e-7);
    let rel = max_rel(&xs, math::softplus, |x| {
        x.max(0.0) + (-x.abs()).exp().ln_1p()
    });
    println!("softplus: max rel {rel:.3e} on [-100, 100] (normal results)");
    assert!(rel <= 3e-7);
}

#[test]
fn slices_equal_scalars() {
    let xs = grid(-100.0, 100.0, 200_003);
    let mut out = vec![0.0; xs.len()];
    type Case = (&'static str, fn(&[f32], &mut [f32]), fn(f32) -> f32);
    let cases: [Case; 5] = [
        ("exp", math::exp_slice, math::exp),
        ("expm1", math::expm1_slice, math::expm1),
        ("tanh", math::tanh_slice, math::tanh),
        ("sigmoid", math::sigmoid_slice, math::sigmoid),
        ("erf", math::erf_slice, math::erf),
    ];
    for (name, slice_fn, scalar) in cases {
        slice_fn(&xs, &mut out);
        let same = out
            .iter()
            .zip(&xs)
            .all(|(o, &x)| o.to_bits() == scalar(x).to_bits());
        assert!(same, "{name}_slice differs from the scalar {name}");
    }
}

fn forward_points() -> Vec<f32> {
    let mut xs = grid(-12.0, 12.0, 48_001);
    xs.extend([1e-7f32, -1e-7, 1e-4, -1e-4, 0.0, -30.0, 30.0]);
    xs
}

#[test]
fn forward_matches_f64_reference() {
    let xs = forward_points();
    let mut ys = vec![0.0; xs.len()];
    for act in all_activations() {
        act.forward(&xs, &mut ys);
        let mut worst = 0.0f64;
        for (&x, &y) in xs.iter().zip(&ys) {
            let r = reference(act, x as f64);
            let err = (y as f64 - r).abs();
            assert!(err <= 1e-6 + 1e-6 * r.abs(), "{act:?} at {x}: {y} vs {r}");
            assert_eq!(
                act.apply(x).to_bits(),
                y.to_bits(),
                "{act:?}: apply differs from forward"
            );
            worst = worst.max(err / (1.0 + r.abs()));
        }
        println!("forward {:<10} max |err|/(1+|ref|) {worst:.3e}", act.name());
    }
}

#[test]
fn backward_matches_finite_differences() {
    let h = 1e-4;
    let zs: Vec<f32> = grid(-12.0, 12.0, 24_001)
        .into_iter()
        .filter(|z| z.abs() > 1e-3)
        .collect();
    let mut ys = vec![0.0; zs.len()];
    for act in all_activations() {
        act.forward(&zs, &mut ys);
        let mut grad = vec![1.0; zs.len()];
        act.backward(&zs, &ys, &mut grad);
        let mut worst = 0.0f64;
        for (&z, &g) in zs.iter().zip(&grad) {
            let z = z as f64;
            let fd = (reference(act, z + h) - reference(act, z - h)) / (2.0 * h);
            // Relative, with the denominator floored at 1e-3: f32 cannot resolve
            // derivatives far below that (e.g. y(1−y) for a saturated sigmoid).
            let rel = (g as f64 - fd).abs() / fd.abs().max(1e-3);
            assert!(rel <= 1e-3, "{act:?} at {z}: {g} vs finite difference {fd}");
            worst = worst.max(rel);
        }
        println!("backward {:<10} max rel err {worst:.3e}", act.name());
    }
    let mut g = vec![2.0; 3];
    Activation::Identity.backward(&[1.0, -1.0, 0.0], &[1.0, -1.0, 0.0], &mut g);
    assert_eq!(g, [2.0; 3]);
}

#[test]
fn add_bias_activate_is_bias_then_forward() {
    let (rows, cols) = (7, 33);
    let z0 = noise(rows * cols, -5.0, 5.0, 1);
    let bias = noise(cols, -1.0, 1.0, 2);
    for act in all_activations() {
        let mut z = z0.clone();
        let mut out = vec![0.0; z.len()];
        act.add_bias_activate(&mut z, &bias, &mut out);
        let mut z2 = z0.clone();
        add_bias(&mut z2, &bias);
        let mut out2 = vec![0.0; z.len()];
        act.forward(&z2, &mut out2);
        assert_eq!(z, z2, "{act:?}: pre-activation");
        assert_eq!(out, out2, "{act:?}: activation");
    }
}

/// Everything the crate's row/elementwise kernels produce for one input, so
/// that runs under different pools can be compared bit for bit.
fn run_all(act: Activation, z0: &[f32], bias: &[f32], dy: &[f32], block: usize) -> Vec<Vec<f32>> {
    let (n, cols, t) = (z0.len(), bias.len(), 0.7);
    let (mut z, mut zb, mut g) = (z0.to_vec(), z0.to_vec(), dy.to_vec());
    let mut outs = vec![vec![0.0f32; n]; 6];
    let [a, f, sm, lsm, dsm, dlsm] = &mut outs[..] else {
        unreachable!()
    };
    for start in (0..n).step_by(block) {
        let r = start..(start + block).min(n);
        act.add_bias_activate(&mut z[r.clone()], bias, &mut a[r.clone()]);
        act.backward(&z[r.clone()], &a[r.clone()], &mut g[r.clone()]);
        act.forward(&z0[r.clone()], &mut f[r.clone()]);
        add_bias(&mut zb[r.clone()], bias);
        softmax::softmax_rows(&z0[r.clone()], cols, t, &mut sm[r.clone()]);
        softmax::log_softmax_rows(&z0[r.clone()], cols, t, &mut lsm[r.clone()]);
        softmax::softmax_backward(&sm[r.clone()], &dy[r.clone()], cols, t, &mut dsm[r.clone()]);
        softmax::log_softmax_backward(&lsm[r.clone()], &dy[r.clone()], cols, t, &mut dlsm[r]);
    }
    outs.extend([z, zb, g]);
    outs
}

#[test]
fn parallel_results_are_bit_identical() {
    let (rows, cols) = (301, 257);
    assert!(rows * cols > 2 * PAR_THRESHOLD);
    let z0 = noise(rows * cols, -8.0, 8.0, 3);
    let bias = noise(cols, -1.0, 1.0, 4);
    let dy = noise(rows * cols, -1.0, 1.0, 5);
    let pool = |t| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .build()
            .unwrap()
    };
    for act in all_activations() {
        let two = pool(2).install(|| run_all(act, &z0, &bias, &dy, rows * cols));
        let one = pool(1).install(|| run_all(act, &z0, &bias, &dy, rows * cols));
        let small = run_all(act, &z0, &bias, &dy, 16 * cols);
        assert!(16 * cols < PAR_THRESHOLD);
        for (k, ((t, o), s)) in two.iter().zip(&one).zip(&small).enumerate() {
            let bits = |v: &Vec<f32>| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(t), bits(o), "{act:?}: output {k}, 2 threads vs 1");
            assert_eq!(
                bits(t),
                bits(s),
                "{act:?}: output {k}, 2 threads vs serial blocks"
            );
        }
    }
}

fn softmax64(x: &[f64], t: f64) -> (Vec<f64>, Vec<f64>) {
    let m = x.iter().map(|&v| v / t).fold(f64::NEG_INFINITY, f64::max);
    let lse = m + x.iter().map(|&v| (v / t - m).exp()).sum::<f64>().ln();
    let logp: Vec<f64> = x.iter().map(|&v| v / t - lse).collect();
    (logp.iter().map(|l| l.exp()).collect(), logp)
}

fn to64(x: &[f32]) -> Vec<f64> {
    x.iter().map(|&v| v as f64).collect()
}

#[test]
fn softmax_matches_f64_reference() {
    for &cols in &[1usize, 3, 10, 16, 37, 100] {
        let rows = 20;
        let x = noise(rows * cols, -15.0, 15.0, cols as u64);
        for &t in &[0.5f32, 1.0, 2.0, 0.3] {
            let (mut y, mut ly) = (vec![0.0; x.len()], vec![0.0; x.len()]);
            softmax::softmax_rows(&x, cols, t, &mut y);
            softmax::log_softmax_rows(&x, cols, t, &mut ly);
            let (mut e_sm, mut e_lsm, mut e_sum) = (0.0f64, 0.0f64, 0.0f64);
            for r in 0..rows {
                let row = r * cols..(r + 1) * cols;
                let (p, lp) = softmax64(&to64(&x[row.clone()]), t as f64);
                let sum: f64 = y[row.clone()].iter().map(|&v| v as f64).sum();
                e_sum = e_sum.max((sum - 1.0).abs());
                for j in 0..cols {
                    e_sm = e_sm.max((y[row.start + j] as f64 - p[j]).abs() / (1e-6 + p[j]));
                    e_lsm =
                        e_lsm.max((ly[row.start + j] as f64 - lp[j]).abs() / (1.0 + lp[j].abs()));
                }
            }
            assert!(e_sum <= 1e-6, "cols {cols} T {t}: row sum off by {e_sum}");
            assert!(e_sm <= 1e-5, "cols {cols} T {t}: softmax error {e_sm}");
            assert!(
                e_lsm <= 1e-6,
                "cols {cols} T {t}: log_softmax error {e_lsm}"
            );
            if cols == 100 {
                println!("softmax T={t}: |sum−1| {e_sum:.2e}, |err|/(1e-6+p) {e_sm:.2e}, log_softmax |err|/(1+|ref|) {e_lsm:.2e}");
            }
        }
    }
}

#[test]
fn softmax_extreme_logits() {
    let x = [1e4f32, -1e4, 0.0];
    for &t in &[1.0f32, 2.0] {
        let (mut y, mut ly) = ([0.0f32; 3], [0.0f32; 3]);
        softmax::softmax_rows(&x, 3, t, &mut y);
        softmax::log_softmax_rows(&x, 3, t, &mut ly);
        assert_eq!(y, [1.0, 0.0, 0.0]);
        let want = [0.0, -2e4 / t as f64, -1e4 / t as f64];
        for (&got, &w) in ly.iter().zip(&want) {
            assert!(
                got.is_finite() && (got as f64 - w).abs() <= 1e-6 * w.abs(),
                "T {t}: {ly:?}"
            );
        }
    }
    let mut y = [0.0f32; 4];
    softmax::softmax_rows(&[3e38, -3e38, 3e38, 0.0], 4, 1.0, &mut y);
    assert_eq!(y, [0.5, 0.0, 0.5, 0.0]);
}

#[test]
fn softmax_backward_matches_finite_differences() {
    let (rows, cols, h) = (6, 11, 1e-5);
    let x = noise(rows * cols, -4.0, 4.0, 7);
    let dy = noise(rows * cols, -1.0, 1.0, 8);
    for &t in &[0.5f32, 1.0, 2.0] {
        let (mut y, mut ly) = (vec![0.0; x.len()], vec![0.0; x.len()]);
        softmax::softmax_rows(&x, cols, t, &mut y);
        softmax::log_softmax_rows(&x, cols, t, &mut ly);
        let (mut dx, mut dlx) = (vec![0.0; x.len()], vec![0.0; x.len()]);
        softmax::softmax_backward(&y, &dy, cols, t, &mut dx);
        softmax::log_softmax_backward(&ly, &dy, cols, t, &mut dlx);
        let mut worst = 0.0f64;
        for r in 0..rows {
            let row = r * cols..(r + 1) * cols;
            // L = Σ dy·softmax(x/T) (or log-softmax); perturb one logit at a time.
            let loss = |xs: &[f64], log: bool| {
                let (p, lp) = softmax64(xs, t as f64);
                let v = if log { lp } else { p };
                v.iter()
                    .zip(&dy[row.clone()])
                    .map(|(a, &b)| a * b as f64)
                    .sum::<f64>()
            };
            for j in 0..cols {
                for (log, got) in [(false, dx[row.start + j]), (true, dlx[row.start + j])] {
                    let (mut up, mut down) = (to64(&x[row.clone()]), to64(&x[row.clone()]));
                    up[j] += h;
                    down[j] -= h;
                    let fd = (loss(&up, log) - loss(&down, log)) / (2.0 * h);
                    let rel = (got as f64 - fd).abs() / fd.abs().max(1e-3);
                    assert!(rel <= 1e-3, "T {t} log {log} [{r},{j}]: {got} vs {fd}");
                    worst = worst.max(rel);
                }
            }
        }
        println!("softmax/log_softmax backward T={t}: max rel err {worst:.3e}");
    }
}

#[test]
fn names_errors_and_serde() {
    match Activation::from_name("relu6", None) {
        Err(Error::UnknownName(msg)) => {
            for name in ACTIVATION_NAMES {
                assert!(msg.contains(name), "message {msg:?} lacks {name}");
            }
        }
        other => panic!("expected UnknownName, got {other:?}"),
    }
    assert_eq!(
        Activation::from_name("Swish", None).unwrap(),
        Activation::Silu
    );
    assert_eq!(
        Activation::from_name("LINEAR", None).unwrap(),
        Activation::Identity
    );
    assert_eq!(
        Activation::from_name("elu", None).unwrap(),
        Activation::Elu { alpha: 1.0 }
    );
    match Activation::from_name("tanh", Some(0.5)) {
        Err(Error::Config(msg)) => assert!(msg.contains("tanh") && msg.contains("alpha")),
        other => panic!("expected Config, got {other:?}"),
    }
    assert!(matches!(
        Activation::from_name("leaky_relu", Some(f32::NAN)),
        Err(Error::Config(_))
    ));
    for act in all_activations() {
        let json = serde_json::to_string(&act).unwrap();
        assert!(
            json.contains(&format!("\"name\":\"{}\"", act.name())),
            "{json}"
        );
        assert_eq!(
            serde_json::from_str::<Activation>(&json).unwrap(),
            act,
            "{json}"
        );
    }
    let leaky: Activation = serde_json::from_str(r#"{"name":"leaky_relu","alpha":0.1}"#).unwrap();
    assert_eq!(leaky, Activation::LeakyRelu { alpha: 0.1 });
}
