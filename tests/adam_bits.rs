//! Adam's, AdamW's and AMSGrad's updates bit for bit against a scalar f32
//! replica of the documented rule (`AdamConfig`'s docs), in its order of
//! operations: the reciprocal of the second bias correction multiplies
//! `sqrt(v)` where PyTorch divides by the correction. Tolerance tests
//! (tests/optim.rs, the PyTorch parity tests) would let that order drift
//! silently; this pins it.

use ferronn::optim::{AdamConfig, Optimizer, OptimizerConfig};

/// The documented rule, one value at a time; `decoupled` is AdamW.
fn replica(c: &AdamConfig, decoupled: bool, steps: &[Vec<f32>], p0: &[f32]) -> Vec<f32> {
    let (lr, b1, b2) = (f64::from(c.lr), f64::from(c.beta1), f64::from(c.beta2));
    let (c1, c2) = ((1.0 - b1) as f32, (1.0 - b2) as f32);
    let wd = c.weight_decay;
    let mut p = p0.to_vec();
    let (mut m, mut v, mut vmax) = (vec![0f32; p.len()], vec![0f32; p.len()], vec![0f32; p.len()]);
    for (t, g) in steps.iter().enumerate() {
        let t = (t + 1) as f64;
        let step = (lr / (1.0 - b1.powf(t))) as f32;
        let rbc2 = (1.0 / (1.0 - b2.powf(t)).sqrt()) as f32;
        let shrink = if decoupled { (1.0 - lr * f64::from(wd)) as f32 } else { 1.0 };
        for i in 0..p.len() {
            let w = p[i] * shrink;
            let g = if decoupled || wd == 0.0 { g[i] } else { g[i] + wd * w };
            m[i] = c.beta1 * m[i] + c1 * g;
            v[i] = c.beta2 * v[i] + c2 * g * g;
            vmax[i] = vmax[i].max(v[i]);
            let second = if c.amsgrad { vmax[i] } else { v[i] };
            let denom = second.sqrt() * rbc2 + c.eps;
            p[i] = w - step * (m[i] / denom);
        }
    }
    p
}

/// Values in [-scale, scale) that vary in magnitude along the vector.
fn values(seed: u32, n: usize, scale: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(2_654_435_761).max(1);
    (0..n)
        .map(|i| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            let u = (s >> 8) as f32 / (1u32 << 24) as f32 * 2.0 - 1.0;
            u * scale * (1.0 + (i % 7) as f32)
        })
        .collect()
}

#[test]
fn adam_variants_match_the_documented_rule_bit_for_bit() {
    // Above the parallel threshold and not a multiple of the chunk length.
    let n = (1 << 15) + 4_099;
    let p0 = values(1, n, 0.3);
    let steps: Vec<Vec<f32>> = (0..6).map(|k| values(10 + k, n, 10f32.powi(k as i32 - 3))).collect();
    let base = AdamConfig { lr: 0.01, beta1: 0.8, beta2: 0.99, eps: 1e-6, ..AdamConfig::default() };
    let cases = [
        ("adam", AdamConfig::default(), false),
        ("adam, weight decay", AdamConfig { weight_decay: 0.1, ..base.clone() }, false),
        ("adamw", AdamConfig { weight_decay: 0.05, ..base.clone() }, true),
        ("amsgrad", AdamConfig { amsgrad: true, ..base.clone() }, false),
    ];
    for (name, c, decoupled) in cases {
        let want = replica(&c, decoupled, &steps, &p0);
        let cfg = if decoupled { OptimizerConfig::Adamw(c) } else { OptimizerConfig::Adam(c) };
        let mut opt = Optimizer::new(cfg).unwrap();
        let mut p = p0.clone();
        for g in &steps {
            opt.step(&mut p, g);
        }
        let differ = p.iter().zip(&want).filter(|(a, b)| a.to_bits() != b.to_bits()).count();
        assert_eq!(differ, 0, "{name}: {differ} of {n} weights differ from the replica");
    }
}
