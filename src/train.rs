//! Training: one step, or a run of an epoch's mini-batches, per call.
//!
//! A step is forward → loss gradient (sample-weighted) → backward → L1/L2
//! penalty gradients → learning rate from the schedule → optimizer update.
//!
//! A step whose loss, gradients or updated weights are not finite is refused:
//! the caller learns which batch it was, and the network is exactly as it was
//! before that step (Keras' TerminateOnNaN, without the damage). Copying the
//! whole state before every step would cost several passes over it per
//! batch, so each call snapshots the state once; on a refused step it restores
//! the snapshot and replays the call's good batches, which is deterministic
//! (same batches, same dropout masks), so the result is bit for bit the state
//! just before the bad step.
//!
//! A `train_step` call runs one batch, so that amortises nothing: it copies
//! the weights and the optimizer state only when the step might need undoing.
//! Its forward and backward change only the small buffers (BatchNorm's
//! running statistics), copied up front; before the update, the optimizer
//! bounds every value the update can compute from the largest gradient and
//! weight (`optim::bound`), and only when that bound fails (a diverging run,
//! the first step) are the weights and state copied. The update is the same
//! either way, so the weights are bit for bit those of an always-copying step.

use rand::seq::SliceRandom;

use crate::error::{ensure_config, try_copy, Error, Result};
use crate::init::rng_for;
use crate::kernels::reduce::{all_finite, par_max_abs};
use crate::kernels::{parallel_for, PAR_CHUNK};
use crate::loss::{LossStats, Targets};
use crate::network::{Core, Network, Snapshot, STREAM_SHUFFLE};
use crate::profile::{Phase, PhaseTimer};
use crate::regularizer;
use crate::tensor::MatRef;

/// Which batches of which epoch a `train_epoch` call runs.
#[derive(Clone, Copy, Debug)]
pub struct EpochOptions {
    pub batch_size: usize,
    pub shuffle: bool,
    /// The shuffle seed; the order depends only on `(seed, epoch)`.
    pub seed: u64,
    pub epoch: u64,
    /// First batch to run (batches are numbered within the epoch).
    pub start_batch: usize,
    /// At most this many batches (all remaining when `None`).
    pub max_batches: Option<usize>,
    /// The data were already checked by an earlier call: skip the finiteness scans.
    pub trusted: bool,
}

/// What a `train_epoch` call did.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct EpochReport {
    pub stats: LossStats,
    /// Batches whose update was applied.
    pub batches: usize,
    /// The batch (index within the epoch) whose loss or gradients were not
    /// finite; no update was applied for it and the call stopped there.
    pub diverged_at: Option<usize>,
}

/// How a step can be undone.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Undo {
    /// The caller copied everything before the step (`train_epoch`).
    Saved,
    /// The caller copied the buffers; the step copies the weights and the
    /// optimizer state itself, before its update, unless the update is
    /// bounded to stay finite (`train_step`).
    Lazy,
}

impl Core {
    /// Forward, loss gradient, backward, update; inputs already checked.
    /// `None` when the loss, a gradient or the updated state is not finite
    /// (then restoring the snapshot undoes it).
    fn step(&mut self, x: MatRef<'_>, targets: &Targets<'_>, weights: Option<&[f32]>, training: bool, seed: u64, undo: Undo) -> Result<Option<LossStats>> {
        let ctx = self.ctx(training, seed);
        let phase = PhaseTimer::start(Phase::Forward);
        self.chain.resize(x.cols)?;
        self.chain.forward(x, &self.params, &mut self.buffers, &ctx)?;
        drop(phase);
        let phase = PhaseTimer::start(Phase::Loss);
        let out = self.chain.output();
        self.dy.reshape_for(out.rows, out.cols)?;
        let mut stats = self.loss.evaluate(out, targets, weights, self.chain.output_mask(), Some(self.dy.as_mut_slice()));
        drop(phase);
        let phase = PhaseTimer::start(Phase::Backward);
        self.chain.backward(x, &self.params, &mut self.grads, &mut self.dy, &mut self.dx, false)?;
        if !self.penalties.is_empty() {
            // L2 gradients are added inside the optimizer update; only L1 needs a pass.
            for p in self.penalties.iter().filter(|p| p.reg.l1 != 0.0) {
                let l1_only = regularizer::Regularizer { l1: p.reg.l1, l2: 0.0 };
                l1_only.add_grad(&self.params[p.range.clone()], &mut self.grads[p.range.clone()]);
            }
            stats.loss_sum += self.params.penalty(&self.penalties) * stats.samples as f64;
        }
        if let Some(r) = &mut self.grad_weights {
            for p in self.penalties.iter().filter(|p| p.reg.l2 != 0.0) {
                r.values[p.range.clone()].copy_from_slice(&self.params[p.range.clone()]);
            }
            r.filled = true;
        }
        drop(phase);
        let _phase = PhaseTimer::start(Phase::Update);
        // The buffers (BatchNorm's running statistics, 2 values per feature)
        // are small enough to scan; only the forward changed them, so they are
        // checked before the update.
        if !stats.loss_sum.is_finite() || !all_finite(&self.buffers) {
            return Ok(None);
        }
        let lr = self.rate.at(self.optimizer.steps());
        // With `Undo::Saved`, a NaN/inf gradient needs no pass of its own: it
        // makes the updated weights NaN/inf, which the check after the update
        // catches. With `Undo::Lazy` the gradient's pass gives the bound.
        let bounded = undo == Undo::Lazy && {
            let (g_max, p_max) = (par_max_abs(&self.grads), self.params.max_abs());
            self.optimizer.update_stays_finite(self.grads.len(), g_max, p_max, lr)
        };
        if undo == Undo::Lazy && !bounded {
            self.snapshot_state()?;
        }
        if lr != self.optimizer.config().lr() {
            self.optimizer.set_lr(lr)?;
        }
        // Sized fallibly here, so the update itself allocates nothing.
        self.optimizer.prepare(self.grads.len())?;
        let top = self.optimizer.step(self.params.write(), &self.grads);
        // An update can also overflow from finite gradients (a huge rate), and
        // an optimizer's state can overflow (Adam's `g²`): its kernel then
        // writes NaN weights (`optim::adam::poison`), so the largest |w| the
        // update saw covers weights and state; with the penalty over the
        // regularized tensors it also gives the next step's penalty and bound.
        if !self.params.check(top, &self.penalties) {
            if bounded {
                // Unreachable while the bounds are right; said loudly rather
                // than leaving the undone weights unexplained.
                return Err(Error::NonFinite("internal error: an update bounded to stay finite was not; the weights could not be restored".into()));
            }
            return Ok(None);
        }
        Ok(Some(stats))
    }

    /// Saves everything a step changes (reusing the snapshot's memory).
    ///
    /// # Errors
    /// `Error::Memory` when the first snapshot of a large model cannot be
    /// reserved; nothing has changed then, and no snapshot is kept.
    fn snapshot(&mut self) -> Result<()> {
        self.snapshot_buffers()?;
        self.snapshot_state()
    }

    /// Saves the buffers, the part of the state a forward pass changes, and
    /// marks the weights and optimizer state as not saved. Also copies the
    /// L2-regularized weights, the only ones [`Network::grads`] reads from the
    /// snapshot, so it stays exact after a `train_step` that copied no more.
    ///
    /// # Errors
    /// `Error::Memory` as [`Core::snapshot`].
    fn snapshot_buffers(&mut self) -> Result<()> {
        let mut s = match self.snap.take() {
            Some(s) => s,
            None => Box::new(Snapshot { params: Vec::new(), buffers: Vec::new(), optimizer: self.optimizer.stateless_clone(), full: false }),
        };
        s.full = false;
        try_copy(&mut s.buffers, &self.buffers, "a snapshot of the buffers")?;
        if self.penalties.iter().any(|p| p.reg.l2 != 0.0) {
            if s.params.len() != self.params.len() {
                try_copy(&mut s.params, &self.params, "a snapshot of the parameters")?;
            }
            for p in self.penalties.iter().filter(|p| p.reg.l2 != 0.0) {
                s.params[p.range.clone()].copy_from_slice(&self.params[p.range.clone()]);
            }
        }
        self.snap = Some(s);
        Ok(())
    }

    /// Saves the weights and the optimizer state beside the buffers
    /// [`Core::snapshot_buffers`] saved.
    ///
    /// # Errors
    /// `Error::Memory` as [`Core::snapshot`]; the snapshot then restores the
    /// buffers only, and the step must not go on.
    fn snapshot_state(&mut self) -> Result<()> {
        let Some(s) = self.snap.as_mut() else {
            return self.snapshot();
        };
        s.full = false;
        try_copy(&mut s.params, &self.params, "a snapshot of the parameters")?;
        s.optimizer.copy_state_from(&self.optimizer)?;
        s.full = true;
        Ok(())
    }

    /// Puts back the state the snapshot saved: the buffers, and the weights
    /// and optimizer state when they were saved too. Never grows anything (a
    /// step only grows the state), so the error is for form's sake.
    fn restore(&mut self) -> Result<()> {
        if let Some(s) = &self.snap {
            self.buffers.clone_from(&s.buffers);
            if s.full {
                self.params.write().copy_from_slice(&s.params);
                self.optimizer.copy_state_from(&s.optimizer)?;
            }
        }
        Ok(())
    }
}

/// Copies rows `idx` of `x` into `dst` (`idx.len()` rows of `x.cols`), on the
/// pool when the batch is large: the copy ran on one thread while the other
/// waited for the step's first product (at batch 512 of 784 features, 1.6 MB
/// per step). A copy gives the same bits however the rows are shared.
fn gather_rows(x: MatRef<'_>, idx: &[usize], dst: &mut [f32]) {
    use rayon::prelude::*;
    let cols = x.cols.max(1);
    let copy = |d: &mut [f32], rows: &[usize]| {
        for (row, &i) in d.chunks_exact_mut(cols).zip(rows) {
            row.copy_from_slice(x.row(i));
        }
    };
    if parallel_for(dst.len()) {
        // Fixed groups of rows of about `PAR_CHUNK` values each.
        let group = PAR_CHUNK.div_ceil(cols);
        dst.par_chunks_mut(group * cols).zip(idx.par_chunks(group)).for_each(|(d, rows)| copy(d, rows));
    } else {
        copy(dst, idx);
    }
}

impl Network {
    /// One training step on a batch, in the network's mode: forward, loss,
    /// backward, update. Returns the batch's loss statistics (before the
    /// update); when they are not finite no update was applied.
    ///
    /// # Errors
    /// Shape, label, emptiness and finiteness errors; the network is unchanged.
    pub fn train_step(&mut self, x: MatRef<'_>, targets: Targets<'_>, weights: Option<&[f32]>) -> Result<LossStats> {
        self.check(x, &targets, weights)?;
        let (training, seed) = (self.training, self.spec.seed);
        let out = self.run(x.rows, |net| {
            net.core.snapshot_buffers()?;
            let out = net.core.step(x, &targets, weights, training, seed, Undo::Lazy);
            if !matches!(out, Ok(Some(_))) {
                net.core.restore()?;
            }
            out
        })?;
        Ok(out.unwrap_or(LossStats { loss_sum: f64::NAN, samples: x.rows as u64, correct: 0, counted: 0 }))
    }

    /// Runs batches `start_batch..` of one epoch over `(x, targets)` in
    /// mini-batches of `batch_size`, shuffled with a generator seeded by
    /// `(seed, epoch)` when `shuffle` is set (so running an epoch in several
    /// calls gives exactly the result of one call).
    ///
    /// # Errors
    /// As [`Network::train_step`], plus `Error::Config` for `batch_size == 0`.
    pub fn train_epoch(&mut self, x: MatRef<'_>, targets: Targets<'_>, weights: Option<&[f32]>, opts: &EpochOptions) -> Result<EpochReport> {
        ensure_config(opts.batch_size > 0, || "batch_size must be at least 1, got 0".into())?;
        if opts.trusted {
            self.check_shapes(x, &targets, weights)?;
        } else {
            self.check(x, &targets, weights)?;
        }
        self.core.rate.epoch = opts.epoch;
        self.run(x.rows, |net| net.epoch_checked(x, &targets, weights, opts))
    }

    fn epoch_checked(&mut self, x: MatRef<'_>, targets: &Targets<'_>, weights: Option<&[f32]>, opts: &EpochOptions) -> Result<EpochReport> {
        let n = x.rows;
        let n_batches = n.div_ceil(opts.batch_size);
        let end_batch = opts.max_batches.map_or(n_batches, |m| opts.start_batch.saturating_add(m).min(n_batches));
        // The order depends only on (seed, epoch, n): the later chunks of an
        // epoch reuse the permutation the first one drew.
        let key = (opts.seed, opts.epoch, n);
        if opts.shuffle && self.batch.order_key != Some(key) {
            let b = &mut self.batch;
            b.order_key = Some(key);
            b.order.clear();
            b.order.extend(0..n);
            // Each epoch gets its own stream so that resuming at epoch k reproduces
            // the shuffles of an uninterrupted run.
            let mut rng = rng_for(opts.seed ^ opts.epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15), STREAM_SHUFFLE);
            b.order.shuffle(&mut rng);
        }
        self.core.snapshot()?;
        let mut report = EpochReport::default();
        for batch in opts.start_batch..end_batch {
            match self.batch_step(x, targets, weights, opts, batch) {
                Ok(Some(stats)) => {
                    report.stats.add(stats);
                    report.batches += 1;
                }
                Ok(None) => {
                    // Back to the state just before this batch: restore, replay the good ones.
                    self.core.restore()?;
                    for good in opts.start_batch..batch {
                        self.batch_step(x, targets, weights, opts, good)?;
                    }
                    report.diverged_at = Some(batch);
                    break;
                }
                Err(e) => {
                    self.core.restore()?;
                    return Err(e);
                }
            }
        }
        Ok(report)
    }

    /// Gathers batch `batch` of the epoch (in shuffled order when asked) and
    /// takes one step on it.
    fn batch_step(&mut self, x: MatRef<'_>, targets: &Targets<'_>, weights: Option<&[f32]>, opts: &EpochOptions, batch: usize) -> Result<Option<LossStats>> {
        let (training, net_seed) = (self.training, self.spec.seed);
        let (start, end) = (batch * opts.batch_size, ((batch + 1) * opts.batch_size).min(x.rows));
        if !opts.shuffle {
            return self.core.step(x.rows_range(start, end), &targets.rows_range(start, end), weights.map(|w| &w[start..end]), training, net_seed, Undo::Saved);
        }
        let gather = PhaseTimer::start(Phase::Gather);
        let b = &mut self.batch;
        let idx = &b.order[start..end];
        b.x.reshape_for(idx.len(), x.cols)?;
        gather_rows(x, idx, b.x.as_mut_slice());
        let batch_targets = match targets {
            Targets::Labels(l) => {
                b.labels.clear();
                b.labels.extend(idx.iter().map(|&i| l[i]));
                Targets::Labels(&b.labels)
            }
            Targets::Steps { labels, steps } => {
                b.labels.clear();
                b.labels.extend(idx.iter().flat_map(|&i| &labels[i * steps..(i + 1) * steps]));
                Targets::Steps { labels: &b.labels, steps: *steps }
            }
            Targets::Values(v) => {
                b.values.reshape_for(idx.len(), v.cols)?;
                for (dst, &i) in b.values.as_mut_slice().chunks_exact_mut(v.cols).zip(idx) {
                    dst.copy_from_slice(v.row(i));
                }
                Targets::Values(b.values.view())
            }
        };
        let batch_weights = weights.map(|w| {
            b.weights.clear();
            b.weights.extend(idx.iter().map(|&i| w[i]));
            b.weights.as_slice()
        });
        drop(gather);
        self.core.step(b.x.view(), &batch_targets, batch_weights, training, net_seed, Undo::Saved)
    }

    /// The base learning rate (the optimizer's `lr`; a schedule replaces it).
    pub fn base_lr(&self) -> f32 {
        self.core.rate.base
    }

    /// Sets the base learning rate (also in the spec, so it is saved).
    ///
    /// # Errors
    /// `Error::Config` for a negative or non-finite rate.
    pub fn set_base_lr(&mut self, lr: f32) -> Result<()> {
        self.core.optimizer.set_lr(lr)?;
        self.spec.optimizer.set_lr(lr);
        self.core.rate.base = lr;
        Ok(())
    }

    /// The factor on the base or scheduled rate (ReduceLROnPlateau lowers it).
    pub fn lr_scale(&self) -> f32 {
        self.core.rate.scale
    }

    /// # Errors
    /// `Error::Config` for a negative or non-finite factor.
    pub fn set_lr_scale(&mut self, scale: f32) -> Result<()> {
        ensure_config(scale.is_finite() && scale >= 0.0, || format!("lr_scale must be finite and >= 0, got {scale}"))?;
        self.core.rate.scale = scale;
        Ok(())
    }

    /// The epoch index schedules stepped per epoch see.
    pub fn epoch(&self) -> u64 {
        self.core.rate.epoch
    }

    pub fn set_epoch(&mut self, epoch: u64) {
        self.core.rate.epoch = epoch;
    }

    /// The learning rate the next step will use.
    pub fn current_lr(&self) -> f32 {
        self.core.rate.at(self.core.optimizer.steps())
    }
}

#[cfg(test)]
#[path = "train_tests.rs"]
mod tests;
