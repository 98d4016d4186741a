//! Losses with their gradients, each computed in one pass over the outputs.
//!
//! Classification losses take logits and fuse the final nonlinearity with the
//! loss (log-softmax + cross-entropy, sigmoid + binary cross-entropy), which is
//! both cheaper and numerically safer than composing them: the gradient becomes
//! `softmax(z) - onehot(y)` and no log of a rounded-to-zero probability is taken.

use serde::{Deserialize, Serialize};

use crate::error::{ensure_shape, unknown_name, Error, Result};
use crate::kernels::{math, reduce};
use crate::layers::StepMask;
use crate::tensor::MatRef;

/// A training objective. Every loss is the mean over the batch (and, for the
/// elementwise ones, over outputs too), as PyTorch's `reduction="mean"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Loss {
    /// Mean squared error on float targets.
    Mse,
    /// Binary cross-entropy on logits, targets in [0, 1] (one column per label).
    BinaryCrossEntropy,
    /// Categorical cross-entropy on logits with integer class labels.
    CrossEntropy,
    /// Negative log-likelihood of log-probabilities with integer class labels.
    Nll,
    /// Poisson negative log-likelihood of log-rates (PyTorch's `PoissonNLLLoss`
    /// with `log_input=True`): `exp(z) - t·z`, counts `t >= 0` shaped like the outputs.
    PoissonNll,
}

/// What a batch is compared against.
#[derive(Clone, Copy, Debug)]
pub enum Targets<'a> {
    /// One class index per row.
    Labels(&'a [i64]),
    /// A float matrix shaped like the outputs.
    Values(MatRef<'a>),
    /// Per-step class indices of sequences, `[rows, steps]` sample-major,
    /// against per-step scores `[rows, steps, classes]` (a tagger: recurrent
    /// layers with `return_sequences`, then Dense). Steps that the output's
    /// step mask marks as padding are left out of the loss and the accuracy.
    Steps { labels: &'a [i64], steps: usize },
}

impl<'a> Targets<'a> {
    /// Number of samples.
    pub fn len(&self) -> usize {
        match self {
            Targets::Labels(l) => l.len(),
            Targets::Values(v) => v.rows,
            Targets::Steps { labels, steps } => labels.len() / steps.max(&1),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Rows `start..end`.
    pub fn rows_range(&self, start: usize, end: usize) -> Targets<'a> {
        match self {
            Targets::Labels(l) => Targets::Labels(&l[start..end]),
            Targets::Values(v) => Targets::Values(v.rows_range(start, end)),
            Targets::Steps { labels, steps } => Targets::Steps { labels: &labels[start * steps..end * steps], steps: *steps },
        }
    }
}

/// Sums over the samples of one or more batches; divide to get means.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LossStats {
    /// Σ over samples of the per-sample loss.
    pub loss_sum: f64,
    /// Samples (for the loss mean).
    pub samples: u64,
    /// Correct predictions: argmax for labels, `logit > 0` per output for BCE.
    pub correct: u64,
    /// Predictions that `correct` counts over (0 for MSE, which has no accuracy).
    pub counted: u64,
}

impl LossStats {
    pub fn add(&mut self, other: LossStats) {
        self.loss_sum += other.loss_sum;
        self.samples += other.samples;
        self.correct += other.correct;
        self.counted += other.counted;
    }

    /// Mean loss per sample (NaN when empty).
    pub fn mean_loss(&self) -> f64 {
        self.loss_sum / self.samples as f64
    }
}

/// What the library knows about one loss besides its arithmetic: its names,
/// what it compares against, and how its outputs become probabilities.
/// [`LOSSES`] holds one row per loss; `from_name`, `name` and `uses_labels`
/// read it, and the Python package reads it through `_core.loss_table()`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LossInfo {
    pub loss: Loss,
    /// The canonical name, as serialised models store it.
    pub name: &'static str,
    /// Other names accepted for the same loss (Keras' and PyTorch's spellings).
    pub aliases: &'static [&'static str],
    /// Targets are integer class labels (else a float matrix shaped like the outputs).
    pub uses_labels: bool,
    /// What turns the model's outputs into probabilities: "softmax" (over each
    /// row), "sigmoid" (per output), "exp" (of log-probabilities), or `None`
    /// when the outputs are not scores (regression).
    pub proba: Option<&'static str>,
    /// The loss applies its own final nonlinearity to raw scores (so the model
    /// must not end in Softmax / a sigmoid).
    pub takes_logits: bool,
}

/// Every loss, one row each (the order of error messages and docs).
#[rustfmt::skip]
pub const LOSSES: [LossInfo; 5] = [
    LossInfo { loss: Loss::CrossEntropy, name: "cross_entropy",
               aliases: &["categorical_crossentropy", "sparse_categorical_crossentropy"],
               uses_labels: true, proba: Some("softmax"), takes_logits: true },
    LossInfo { loss: Loss::BinaryCrossEntropy, name: "binary_cross_entropy", aliases: &["bce", "binary_crossentropy"],
               uses_labels: false, proba: Some("sigmoid"), takes_logits: true },
    LossInfo { loss: Loss::Mse, name: "mse", aliases: &["mean_squared_error"],
               uses_labels: false, proba: None, takes_logits: false },
    LossInfo { loss: Loss::Nll, name: "nll", aliases: &["nll_loss"],
               uses_labels: true, proba: Some("exp"), takes_logits: false },
    LossInfo { loss: Loss::PoissonNll, name: "poisson_nll", aliases: &["poisson_nll_loss"],
               uses_labels: false, proba: None, takes_logits: true },
];

impl Loss {
    /// Parses a name (case-insensitive): a row of [`LOSSES`] or one of its aliases.
    ///
    /// # Errors
    /// `Error::UnknownName` for an unknown name (the message lists the known ones).
    pub fn from_name(name: &str) -> Result<Loss> {
        let lower = name.to_ascii_lowercase();
        LOSSES
            .iter()
            .find(|r| r.name == lower || r.aliases.contains(&lower.as_str()))
            .map(|r| r.loss)
            .ok_or_else(|| unknown_name("loss", name, LOSSES.iter().map(|r| (r.name, r.aliases))))
    }

    /// This loss's row of [`LOSSES`].
    pub fn info(&self) -> &'static LossInfo {
        // Every variant has a row: `table_rows_match_the_enum` checks it.
        LOSSES.iter().find(|r| r.loss == *self).unwrap_or(&LOSSES[0])
    }

    /// The canonical name.
    pub fn name(&self) -> &'static str {
        self.info().name
    }

    /// Whether targets are class labels (else a float matrix).
    pub fn uses_labels(&self) -> bool {
        self.info().uses_labels
    }

    /// Checks targets against `rows` samples of `outputs` outputs.
    ///
    /// # Errors
    /// `Error::Shape` for the wrong kind or shape of target, `Error::Label` for a
    /// label outside `0..outputs` or a BCE target outside [0, 1],
    /// `Error::NonFinite` for NaN/inf targets.
    pub fn check_targets(&self, targets: &Targets<'_>, rows: usize, outputs: usize) -> Result<()> {
        ensure_shape(targets.len() == rows, || format!("X has {rows} samples but y has {}; expected the same number", targets.len()))?;
        match (self.uses_labels(), targets) {
            (true, Targets::Steps { labels, steps }) => {
                let t = *steps;
                ensure_shape(t > 0 && labels.len() == rows * t && outputs % t == 0, || {
                    format!("per-step labels [N, {t}] need per-step outputs [N, {t}, classes], but the model has {outputs} outputs per sample")
                })?;
                let classes = outputs / t;
                if let Some((i, &l)) = labels.iter().enumerate().find(|(_, &l)| l < 0 || l >= classes as i64) {
                    return Err(Error::Label(format!(
                        "label {l} at sample {}, step {} is out of range; {} expects labels in 0..{} (the classes per step)",
                        i / t,
                        i % t,
                        self.name(),
                        classes.saturating_sub(1)
                    )));
                }
                Ok(())
            }
            (true, Targets::Labels(labels)) => {
                if let Some((i, &l)) = labels.iter().enumerate().find(|(_, &l)| l < 0 || l >= outputs as i64) {
                    return Err(Error::Label(format!(
                        "label {l} at index {i} is out of range; {} expects labels in 0..{} (the output width)",
                        self.name(),
                        outputs.saturating_sub(1)
                    )));
                }
                Ok(())
            }
            (false, Targets::Values(v)) => {
                ensure_shape(v.cols == outputs, || format!("y has {} columns but the model has {outputs} outputs; {} needs them equal", v.cols, self.name()))?;
                if !reduce::all_finite(v.data) {
                    return Err(Error::NonFinite("y contains NaN or infinity; targets must be finite".into()));
                }
                if *self == Loss::BinaryCrossEntropy {
                    if let Some(t) = v.data.iter().find(|t| !(0.0..=1.0).contains(*t)) {
                        return Err(Error::Label(format!("binary_cross_entropy targets must lie in [0, 1], found {t}")));
                    }
                }
                if *self == Loss::PoissonNll {
                    if let Some(t) = v.data.iter().find(|&&t| t < 0.0) {
                        return Err(Error::Label(format!("poisson_nll targets are counts and must be >= 0, found {t}")));
                    }
                }
                Ok(())
            }
            (true, Targets::Values(_)) => Err(Error::Shape(format!("{} needs integer class labels (one per sample), got a float matrix", self.name()))),
            (false, Targets::Labels(_) | Targets::Steps { .. }) => {
                Err(Error::Shape(format!("{} needs float targets shaped like the outputs, got integer labels", self.name())))
            }
        }
    }

    /// Loss statistics of `out` against `targets` (already checked), and when
    /// `grad` is given, the gradient of the batch-mean loss w.r.t. `out`.
    ///
    /// With `weights`, sample `i`'s loss (and its gradient) is multiplied by
    /// `weights[i]` and the batch loss is `Σ w_i·l_i / batch` (Keras'
    /// convention for `sample_weight`); accuracy counts stay unweighted.
    ///
    /// Per-step labels ([`Targets::Steps`]) are scored step by step; the
    /// batch loss is the mean over the steps that `mask` (the output's step
    /// mask, when its shape matches) keeps, as Keras averages a masked loss
    /// over the valid entries; masked steps get no gradient.
    pub fn evaluate(&self, out: MatRef<'_>, targets: &Targets<'_>, weights: Option<&[f32]>, mask: Option<&StepMask>, mut grad: Option<&mut [f32]>) -> LossStats {
        if let Targets::Steps { labels, steps } = *targets {
            return self.evaluate_steps(out, labels, steps, weights, mask, grad);
        }
        if let (Targets::Values(t), Some(m)) = (targets, mask) {
            if m.rows() == out.rows && m.steps() > 0 && out.cols % m.steps() == 0 {
                return self.values_masked(out, *t, weights, m, grad);
            }
        }
        let (rows, cols) = (out.rows, out.cols);
        let inv_b = 1.0 / rows.max(1) as f32;
        let mut stats = LossStats { samples: rows as u64, ..Default::default() };
        for r in 0..rows {
            let o = out.row(r);
            let w = weights.map_or(1.0, |w| w[r]);
            let scale = inv_b * w;
            let g = grad.as_deref_mut().map(|g| &mut g[r * cols..(r + 1) * cols]);
            let (loss, correct, counted) = match (self, targets) {
                (Loss::CrossEntropy, Targets::Labels(l)) => cross_entropy_row(o, l[r] as usize, scale, g),
                (Loss::Nll, Targets::Labels(l)) => nll_row(o, l[r] as usize, scale, g),
                (Loss::Mse, Targets::Values(t)) => (mse_row(o, t.row(r), scale, g), 0, 0),
                (Loss::BinaryCrossEntropy, Targets::Values(t)) => bce_row(o, t.row(r), scale, g),
                (Loss::PoissonNll, Targets::Values(t)) => (poisson_row(o, t.row(r), scale, g), 0, 0),
                // check_targets rules these pairs out before any call.
                _ => (f64::NAN, 0, 0),
            };
            stats.loss_sum += if weights.is_some() { loss * w as f64 } else { loss };
            stats.correct += correct;
            stats.counted += counted;
        }
        stats
    }

    /// [`Loss::evaluate`] of per-step labels: `LossStats::loss_sum` is the
    /// batch's mean over its kept steps times its samples (so means over
    /// batches weigh batches by their samples, as for every other loss), and
    /// the accuracy counts kept steps.
    fn evaluate_steps(&self, out: MatRef<'_>, labels: &[i64], steps: usize, weights: Option<&[f32]>, mask: Option<&StepMask>, grad: Option<&mut [f32]>) -> LossStats {
        let (rows, cols) = (out.rows, out.cols);
        let c = cols / steps.max(1);
        let mask = mask.filter(|m| m.rows() == rows && m.steps() == steps);
        let count = mask.map_or(rows * steps, |m| m.as_slice().iter().filter(|&&k| k).count());
        let kept = |r: usize, s: usize| mask.is_none_or(|m| m.keep(r, s));
        mean_over_kept_steps(rows, steps, c, count, weights, kept, grad, |r, s, at, scale, g| {
            let (o, y) = (&out.data[at..at + c], labels[r * steps + s] as usize);
            match self {
                Loss::Nll => nll_row(o, y, scale, g),
                _ => cross_entropy_row(o, y, scale, g),
            }
        })
    }

    /// [`Loss::evaluate`] of float targets on per-step outputs `[rows, steps, D]`
    /// whose output carries a step mask (MSE, binary cross-entropy, Poisson):
    /// each kept step's loss is its mean over `D`, and the batch loss their
    /// mean over the kept steps (Keras' masked mean); padded steps get no
    /// gradient and, for binary cross-entropy, no place in the accuracy.
    /// `loss_sum` is that mean times the samples, as for per-step labels.
    fn values_masked(&self, out: MatRef<'_>, t: MatRef<'_>, weights: Option<&[f32]>, mask: &StepMask, grad: Option<&mut [f32]>) -> LossStats {
        let (rows, steps) = (out.rows, mask.steps());
        let d = out.cols / steps;
        let count = mask.as_slice().iter().filter(|&&k| k).count();
        mean_over_kept_steps(rows, steps, d, count, weights, |r, s| mask.keep(r, s), grad, |_, _, at, scale, g| {
            let (o, y) = (&out.data[at..at + d], &t.data[at..at + d]);
            match self {
                Loss::Mse => (mse_row(o, y, scale, g), 0, 0),
                Loss::PoissonNll => (poisson_row(o, y, scale, g), 0, 0),
                Loss::BinaryCrossEntropy => bce_row(o, y, scale, g),
                // check_targets gives float targets only to the three above.
                Loss::CrossEntropy | Loss::Nll => (f64::NAN, 0, 0),
            }
        })
    }

    /// Checks per-sample weights: one finite, non-negative value per sample.
    ///
    /// # Errors
    /// `Error::Shape` for the wrong length, `Error::NonFinite` for NaN/inf,
    /// `Error::Config` for negative weights.
    pub fn check_weights(weights: &[f32], rows: usize) -> Result<()> {
        ensure_shape(weights.len() == rows, || format!("sample_weight has {} values but X has {rows} samples; expected one weight per sample", weights.len()))?;
        if !reduce::all_finite(weights) {
            return Err(Error::NonFinite("sample_weight contains NaN or infinity".into()));
        }
        if let Some(w) = weights.iter().find(|&&w| w < 0.0) {
            return Err(Error::Config(format!("sample weights must be >= 0, found {w}")));
        }
        Ok(())
    }
}

/// The per-step loss shared by per-step labels and masked float targets: the
/// mean over the `count` kept steps of `[rows, steps, width]` outputs, each
/// step's `row(r, s, offset, scale, grad)` called with its sample weight over
/// `count` as the gradient scale; padded steps get a zero gradient and no
/// place in the accuracy. `loss_sum` is that mean times the samples, so means
/// over batches weigh batches by their samples, as for every other loss.
#[allow(clippy::too_many_arguments)]
fn mean_over_kept_steps(
    rows: usize,
    steps: usize,
    width: usize,
    count: usize,
    weights: Option<&[f32]>,
    kept: impl Fn(usize, usize) -> bool,
    mut grad: Option<&mut [f32]>,
    mut row: impl FnMut(usize, usize, usize, f32, Option<&mut [f32]>) -> (f64, u64, u64),
) -> LossStats {
    let inv = 1.0 / count.max(1) as f32;
    let mut stats = LossStats { samples: rows as u64, ..Default::default() };
    let mut total = 0.0f64;
    for r in 0..rows {
        let w = weights.map_or(1.0, |w| w[r]);
        for s in 0..steps {
            let at = (r * steps + s) * width;
            let g = grad.as_deref_mut().map(|g| &mut g[at..at + width]);
            if !kept(r, s) {
                if let Some(g) = g {
                    g.fill(0.0);
                }
                continue;
            }
            let (loss, correct, counted) = row(r, s, at, inv * w, g);
            total += loss * w as f64;
            stats.correct += correct;
            stats.counted += counted;
        }
    }
    stats.loss_sum = if count == 0 { 0.0 } else { total / count as f64 * rows as f64 };
    stats
}

/// log-sum-exp(z) - z_y, gradient (softmax(z) - onehot(y)) / B.
fn cross_entropy_row(z: &[f32], y: usize, inv_b: f32, grad: Option<&mut [f32]>) -> (f64, u64, u64) {
    let max = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0f32;
    match grad {
        Some(g) => {
            for (gi, &zi) in g.iter_mut().zip(z) {
                let e = math::exp(zi - max);
                *gi = e;
                sum += e;
            }
            let scale = inv_b / sum;
            g.iter_mut().for_each(|gi| *gi *= scale);
            g[y] -= inv_b;
        }
        None => sum = z.iter().map(|&zi| math::exp(zi - max)).sum(),
    }
    let loss = (max as f64 + (sum as f64).ln()) - z[y] as f64;
    (loss, (reduce::argmax(z) == y) as u64, 1)
}

/// -logp_y, gradient -onehot(y) / B.
fn nll_row(logp: &[f32], y: usize, inv_b: f32, grad: Option<&mut [f32]>) -> (f64, u64, u64) {
    if let Some(g) = grad {
        g.fill(0.0);
        g[y] = -inv_b;
    }
    (-(logp[y] as f64), (reduce::argmax(logp) == y) as u64, 1)
}

/// mean_c (o - t)^2, gradient 2 (o - t) / (B C).
fn mse_row(o: &[f32], t: &[f32], inv_b: f32, grad: Option<&mut [f32]>) -> f64 {
    let inv_c = 1.0 / o.len() as f32;
    if let Some(g) = grad {
        let s = 2.0 * inv_b * inv_c;
        for ((gi, &oi), &ti) in g.iter_mut().zip(o).zip(t) {
            *gi = s * (oi - ti);
        }
    }
    o.iter().zip(t).map(|(&oi, &ti)| ((oi - ti) as f64).powi(2)).sum::<f64>() * inv_c as f64
}

/// mean_c [exp(z) - t z], gradient (exp(z) - t) / (B C).
fn poisson_row(z: &[f32], t: &[f32], inv_b: f32, grad: Option<&mut [f32]>) -> f64 {
    let inv_c = 1.0 / z.len() as f32;
    if let Some(g) = grad {
        let s = inv_b * inv_c;
        for ((gi, &zi), &ti) in g.iter_mut().zip(z).zip(t) {
            *gi = s * (math::exp(zi) - ti);
        }
    }
    z.iter().zip(t).map(|(&zi, &ti)| (zi as f64).exp() - ti as f64 * zi as f64).sum::<f64>() * inv_c as f64
}

/// mean_c [max(z,0) - z t + log(1 + e^-|z|)], gradient (sigmoid(z) - t) / (B C).
fn bce_row(z: &[f32], t: &[f32], inv_b: f32, grad: Option<&mut [f32]>) -> (f64, u64, u64) {
    let inv_c = 1.0 / z.len() as f32;
    if let Some(g) = grad {
        let s = inv_b * inv_c;
        for ((gi, &zi), &ti) in g.iter_mut().zip(z).zip(t) {
            *gi = s * (math::sigmoid(zi) - ti);
        }
    }
    let mut loss = 0.0f64;
    let mut correct = 0;
    for (&zi, &ti) in z.iter().zip(t) {
        let (zd, td) = (zi as f64, ti as f64);
        loss += zd.max(0.0) - zd * td + (-zd.abs()).exp().ln_1p();
        correct += ((zi > 0.0) == (ti >= 0.5)) as u64;
    }
    (loss * inv_c as f64, correct, z.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_rows_match_the_enum() {
        // The match fails to compile when a variant is added, pointing here.
        let every = |l: Loss| match l {
            Loss::Mse | Loss::BinaryCrossEntropy | Loss::CrossEntropy | Loss::Nll | Loss::PoissonNll => l,
        };
        for loss in [Loss::Mse, Loss::BinaryCrossEntropy, Loss::CrossEntropy, Loss::Nll, Loss::PoissonNll].map(every) {
            assert_eq!(loss.info().loss, loss);
            // The serialised name is the table's name.
            assert_eq!(serde_json::to_value(loss).unwrap(), loss.name());
        }
        for row in LOSSES {
            assert_eq!(Loss::from_name(&row.name.to_uppercase()).unwrap(), row.loss);
            for alias in row.aliases {
                assert_eq!(Loss::from_name(alias).unwrap(), row.loss, "{alias}");
            }
        }
        let msg = Loss::from_name("Hinge").unwrap_err().to_string();
        assert!(msg.starts_with("unknown loss 'Hinge'; expected one of: cross_entropy (categorical_crossentropy"), "{msg}");
    }

    /// Per-step cross-entropy and masked MSE, BCE and Poisson: the loss is the mean over kept
    /// steps, its gradient matches central differences, padded steps get none.
    #[test]
    fn per_step_losses_average_over_kept_steps() {
        let (rows, steps, c) = (2, 3, 4);
        let out: Vec<f32> = (0..rows * steps * c).map(|i| ((i * 7 % 11) as f32 - 5.0) * 0.3).collect();
        let mut mask = StepMask::default();
        mask.fill(rows, steps, |r, s| !(r == 1 && s > 0)).unwrap();
        let labels = [1i64, 3, 0, 2, 2, 2];
        let values: Vec<f32> = (0..out.len()).map(|i| (i % 5) as f32 * 0.2).collect();
        for (loss, targets) in [
            (Loss::CrossEntropy, Targets::Steps { labels: &labels, steps }),
            (Loss::Mse, Targets::Values(MatRef::new(rows, steps * c, &values).unwrap())),
            (Loss::BinaryCrossEntropy, Targets::Values(MatRef::new(rows, steps * c, &values).unwrap())),
            (Loss::PoissonNll, Targets::Values(MatRef::new(rows, steps * c, &values).unwrap())),
        ] {
            let mean = |o: &[f32]| {
                let s = loss.evaluate(MatRef::new(rows, steps * c, o).unwrap(), &targets, None, Some(&mask), None);
                s.loss_sum / s.samples as f64
            };
            let mut grad = vec![f32::NAN; out.len()];
            loss.evaluate(MatRef::new(rows, steps * c, &out).unwrap(), &targets, None, Some(&mask), Some(&mut grad));
            for i in 0..out.len() {
                let (mut up, mut down) = (out.clone(), out.clone());
                up[i] += 1e-2;
                down[i] -= 1e-2;
                let fd = (mean(&up) - mean(&down)) / 2e-2;
                assert!((f64::from(grad[i]) - fd).abs() < 1e-3, "{loss:?} [{i}]: {} vs {fd}", grad[i]);
            }
            // Sample 1's steps 1 and 2 are padding: no gradient, and their targets do not count.
            assert!(grad[steps * c + c..].iter().all(|&g| g == 0.0), "{loss:?}");
        }
        // BCE's accuracy counts the outputs of kept steps only: 4 kept steps of c outputs.
        let bce = Loss::BinaryCrossEntropy.evaluate(MatRef::new(rows, steps * c, &out).unwrap(), &Targets::Values(MatRef::new(rows, steps * c, &values).unwrap()), None, Some(&mask), None);
        assert_eq!(bce.counted, 4 * c as u64);
        let all = Loss::CrossEntropy.evaluate(MatRef::new(rows, steps * c, &out).unwrap(), &Targets::Steps { labels: &labels, steps }, None, None, None);
        assert_eq!((all.counted, all.samples), (6, 2));
        let bad = Loss::CrossEntropy.check_targets(&Targets::Steps { labels: &[0, 4, 0, 0, 0, 0], steps }, rows, steps * c);
        assert!(matches!(bad, Err(Error::Label(m)) if m.contains("sample 0, step 1")));
    }
}
