//! Weight initialisers (seeded).
//!
//! Xavier/Glorot (Glorot & Bengio 2010) keeps the variance of activations and
//! gradients equal across layers for symmetric activations such as tanh; He/Kaiming
//! (He et al. 2015) doubles it to make up for ReLU zeroing half its inputs; LeCun
//! (LeCun et al. 1998) uses fan-in only, the choice for SELU-style networks.

use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal, StandardNormal, Uniform};
use serde::{Deserialize, Serialize};

use crate::activation::Activation;
use crate::error::{ensure_config, Error, Result};

/// How a parameter tensor is filled before training.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "snake_case")]
pub enum Init {
    Zeros,
    Constant { value: f32 },
    Uniform { low: f32, high: f32 },
    Normal { mean: f32, std: f32 },
    XavierUniform,
    XavierNormal,
    HeUniform,
    HeNormal,
    LecunNormal,
}

const NAMES: &str = "zeros, constant, uniform, normal, xavier_uniform (glorot_uniform), xavier_normal (glorot_normal), he_uniform (kaiming_uniform), he_normal (kaiming_normal), lecun_normal";

impl Init {
    /// Parses a name as Keras or PyTorch spell it, with Keras' defaults for the
    /// parametrised kinds (uniform on [-0.05, 0.05], normal with std 0.05).
    ///
    /// # Errors
    /// `Error::UnknownName` for a name not in the list.
    pub fn from_name(name: &str) -> Result<Init> {
        Ok(match name.to_ascii_lowercase().as_str() {
            "zeros" => Init::Zeros,
            "ones" => Init::Constant { value: 1.0 },
            "constant" => Init::Constant { value: 0.0 },
            "uniform" => Init::Uniform { low: -0.05, high: 0.05 },
            "normal" => Init::Normal { mean: 0.0, std: 0.05 },
            "xavier_uniform" | "glorot_uniform" => Init::XavierUniform,
            "xavier_normal" | "glorot_normal" => Init::XavierNormal,
            "he_uniform" | "kaiming_uniform" => Init::HeUniform,
            "he_normal" | "kaiming_normal" => Init::HeNormal,
            "lecun_normal" => Init::LecunNormal,
            other => return Err(Error::UnknownName(format!("unknown initializer '{other}'; expected one of: {NAMES}"))),
        })
    }

    /// The default kernel initialiser for a layer followed by `act`: He for the
    /// ReLU family, Xavier otherwise.
    pub fn default_for(act: &Activation) -> Init {
        if act.is_relu_family() {
            Init::HeUniform
        } else {
            Init::XavierUniform
        }
    }

    /// Checks the parameters of the parametrised kinds.
    ///
    /// # Errors
    /// `Error::Config` for non-finite values, `low >= high` or `std < 0`.
    pub fn validate(&self) -> Result<()> {
        match *self {
            Init::Constant { value } => ensure_config(value.is_finite(), || format!("constant initializer value must be finite, got {value}")),
            Init::Uniform { low, high } => ensure_config(low.is_finite() && high.is_finite() && low < high, || {
                format!("uniform initializer needs finite low < high, got low={low}, high={high}")
            }),
            Init::Normal { mean, std } => ensure_config(mean.is_finite() && std.is_finite() && std >= 0.0, || {
                format!("normal initializer needs a finite mean and std >= 0, got mean={mean}, std={std}")
            }),
            _ => Ok(()),
        }
    }

    /// Fills `out` (a tensor with the given fans) from `rng`.
    pub fn fill(&self, out: &mut [f32], fan_in: usize, fan_out: usize, rng: &mut ChaCha8Rng) {
        let fi = fan_in.max(1) as f32;
        let fo = fan_out.max(1) as f32;
        match *self {
            Init::Zeros => out.fill(0.0),
            Init::Constant { value } => out.fill(value),
            Init::Uniform { low, high } => fill_uniform(out, low, high, rng),
            Init::Normal { mean, std } => fill_normal(out, mean, std, rng),
            Init::XavierUniform => {
                let a = (6.0 / (fi + fo)).sqrt();
                fill_uniform(out, -a, a, rng)
            }
            Init::XavierNormal => fill_normal(out, 0.0, (2.0 / (fi + fo)).sqrt(), rng),
            Init::HeUniform => {
                let a = (6.0 / fi).sqrt();
                fill_uniform(out, -a, a, rng)
            }
            Init::HeNormal => fill_normal(out, 0.0, (2.0 / fi).sqrt(), rng),
            Init::LecunNormal => fill_normal(out, 0.0, (1.0 / fi).sqrt(), rng),
        }
    }
}

fn fill_uniform(out: &mut [f32], low: f32, high: f32, rng: &mut ChaCha8Rng) {
    match Uniform::new(low, high) {
        Ok(dist) => out.iter_mut().for_each(|v| *v = dist.sample(rng)),
        // Only reachable for low == high, which validate() rejects; a constant is
        // the limit of that distribution anyway.
        Err(_) => out.fill(low),
    }
}

fn fill_normal(out: &mut [f32], mean: f32, std: f32, rng: &mut ChaCha8Rng) {
    match Normal::new(mean, std) {
        Ok(dist) => out.iter_mut().for_each(|v| *v = dist.sample(rng)),
        Err(_) => out.fill(mean),
    }
}

/// A generator for stream `stream` of `seed`: independent streams (weights,
/// shuffling of each epoch) from one user seed.
pub fn rng_for(seed: u64, stream: u64) -> ChaCha8Rng {
    use rand::SeedableRng;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    rng
}

/// Fills the row-major `[rows, cols]` matrix `out` (`rows >= cols` here:
/// a recurrent `weight_hh` is `[G·units, units]`) with orthonormal columns, as Keras'
/// `Orthogonal` does for its transpose: a Gaussian matrix, Gram–Schmidt in
/// `f64` (the QR factor with a positive diagonal).
pub(crate) fn orthogonal(out: &mut [f32], rows: usize, cols: usize, rng: &mut ChaCha8Rng) {
    let mut a: Vec<f64> = (0..rows * cols).map(|_| StandardNormal.sample(rng)).collect();
    let (m, k) = if rows >= cols { (rows, cols) } else { (cols, rows) };
    // Vectors are a's columns (rows >= cols) or its rows; `at(v, i)` indexes them.
    let idx = |v: usize, i: usize| if rows >= cols { i * cols + v } else { v * cols + i };
    for v in 0..k {
        for u in 0..v {
            let dot: f64 = (0..m).map(|i| a[idx(u, i)] * a[idx(v, i)]).sum();
            for i in 0..m {
                a[idx(v, i)] -= dot * a[idx(u, i)];
            }
        }
        let norm = (0..m).map(|i| a[idx(v, i)].powi(2)).sum::<f64>().sqrt().max(f64::MIN_POSITIVE);
        for i in 0..m {
            a[idx(v, i)] /= norm;
        }
    }
    out.iter_mut().zip(&a).for_each(|(o, v)| *o = *v as f32);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(v: &[f32]) -> (f64, f64) {
        let n = v.len() as f64;
        let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
        let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
        (mean, var)
    }

    #[test]
    fn variances_follow_their_formulas() {
        let (fan_in, fan_out) = (300, 100);
        let cases = [
            (Init::XavierUniform, 2.0 / 400.0),
            (Init::XavierNormal, 2.0 / 400.0),
            (Init::HeUniform, 2.0 / 300.0),
            (Init::HeNormal, 2.0 / 300.0),
            (Init::LecunNormal, 1.0 / 300.0),
        ];
        for (init, want_var) in cases {
            let mut w = vec![0.0; fan_in * fan_out];
            init.fill(&mut w, fan_in, fan_out, &mut rng_for(1, 0));
            let (mean, var) = stats(&w);
            assert!(mean.abs() < 3e-3, "{init:?} mean {mean}");
            assert!((var / want_var - 1.0).abs() < 0.05, "{init:?} var {var} want {want_var}");
        }
    }

    #[test]
    fn same_seed_same_weights() {
        let mut a = vec![0.0; 100];
        let mut b = vec![0.0; 100];
        Init::HeNormal.fill(&mut a, 10, 10, &mut rng_for(7, 0));
        Init::HeNormal.fill(&mut b, 10, 10, &mut rng_for(7, 0));
        assert_eq!(a, b);
        Init::HeNormal.fill(&mut b, 10, 10, &mut rng_for(7, 1));
        assert_ne!(a, b);
    }

    #[test]
    fn names_and_validation() {
        assert_eq!(Init::from_name("glorot_uniform").unwrap(), Init::XavierUniform);
        assert!(matches!(Init::from_name("orthogonal"), Err(Error::UnknownName(_))));
        assert!(Init::Uniform { low: 1.0, high: 0.0 }.validate().is_err());
        assert!(Init::Normal { mean: 0.0, std: -1.0 }.validate().is_err());
    }
}
