//! Optimizers: a serialisable [`OptimizerConfig`] and the [`Optimizer`] that
//! applies it.
//!
//! The network keeps every parameter in one flat slice and every gradient in
//! another, so an optimizer step is one fused pass over flat memory. The
//! bookkeeping every algorithm needs (the step counter, lazily sized state
//! buffers, the split into fixed chunks for the thread pool) lives here once;
//! each algorithm supplies only its per-chunk update through the `Rule` trait.

mod adam;
mod sgd;

pub use adam::AdamConfig;
pub use sgd::SgdConfig;

use serde::{Deserialize, Serialize};

use crate::error::{ensure_config, Error, Result};
use crate::kernels::{parallel_for, PAR_CHUNK};

/// Which optimizer to use, with its hyperparameters.
///
/// Serialises as a flat JSON object tagged by `name`, e.g.
/// `{"name":"adam","lr":0.001,"beta1":0.9,"beta2":0.999,"eps":1e-8,"weight_decay":0.0}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "snake_case")]
pub enum OptimizerConfig {
    /// Stochastic gradient descent (optionally with momentum or Nesterov
    /// momentum, Sutskever et al. 2013), following PyTorch's update rule.
    Sgd(SgdConfig),
    /// Adam (Kingma & Ba 2015), following PyTorch's update rule; weight decay
    /// is an L2 term in the gradient.
    Adam(AdamConfig),
    /// AdamW (Loshchilov & Hutter 2019), following PyTorch's update rule;
    /// weight decay shrinks the weights directly.
    Adamw(AdamConfig),
}

impl OptimizerConfig {
    /// The names [`from_name`](Self::from_name) accepts.
    pub const NAMES: [&'static str; 3] = ["sgd", "adam", "adamw"];

    /// AdamW with PyTorch's defaults, including its weight decay of 0.01.
    pub fn adamw_default() -> Self {
        Self::Adamw(AdamConfig {
            weight_decay: 0.01,
            ..AdamConfig::default()
        })
    }

    /// The default configuration of the optimizer called `name` ("sgd", "adam"
    /// or "adamw", as PyTorch's defaults).
    ///
    /// # Errors
    /// `Error::UnknownName` for any other name.
    pub fn from_name(name: &str) -> Result<Self> {
        match name {
            "sgd" => Ok(Self::Sgd(SgdConfig::default())),
            "adam" => Ok(Self::Adam(AdamConfig::default())),
            "adamw" => Ok(Self::adamw_default()),
            _ => Err(Error::UnknownName(format!(
                "unknown optimizer {name:?}; expected one of {}",
                Self::NAMES.join(", ")
            ))),
        }
    }

    /// Checks every hyperparameter against its valid range.
    ///
    /// # Errors
    /// `Error::Config` naming the first offending field, its value and the
    /// valid range.
    pub fn validate(&self) -> Result<()> {
        match self {
            Self::Sgd(c) => c.validate(),
            Self::Adam(c) | Self::Adamw(c) => c.validate(self.name()),
        }
    }

    /// The learning rate.
    pub fn lr(&self) -> f32 {
        match self {
            Self::Sgd(c) => c.lr,
            Self::Adam(c) | Self::Adamw(c) => c.lr,
        }
    }

    /// Replaces the learning rate without checking it; see [`Optimizer::set_lr`]
    /// for the checked version.
    pub fn set_lr(&mut self, lr: f32) {
        match self {
            Self::Sgd(c) => c.lr = lr,
            Self::Adam(c) | Self::Adamw(c) => c.lr = lr,
        }
    }

    /// The optimizer's name: "sgd", "adam" or "adamw".
    pub fn name(&self) -> &'static str {
        match self {
            Self::Sgd(_) => "sgd",
            Self::Adam(_) => "adam",
            Self::Adamw(_) => "adamw",
        }
    }

    /// The names of the state buffers this configuration keeps, in the order
    /// [`Optimizer::state`] returns them.
    pub fn state_names(&self) -> &'static [&'static str] {
        match self {
            Self::Sgd(c) if c.momentum == 0.0 => &<sgd::PlainStep as Rule<0>>::STATE_NAMES,
            Self::Sgd(_) => &<sgd::MomentumStep as Rule<1>>::STATE_NAMES,
            Self::Adam(_) | Self::Adamw(_) => &<adam::AdamStep as Rule<2>>::STATE_NAMES,
        }
    }
}

pub(crate) fn check_lr(lr: f32) -> Result<()> {
    ensure_config(lr.is_finite() && lr >= 0.0, || {
        format!("learning rate (lr) must be finite and >= 0, got {lr}")
    })
}

pub(crate) fn check_weight_decay(name: &str, wd: f32) -> Result<()> {
    ensure_config(wd.is_finite() && wd >= 0.0, || {
        format!("{name} weight_decay must be finite and >= 0, got {wd}")
    })
}

/// One algorithm's update of a contiguous run of parameters, with its `N`
/// state buffers cut to the same run.
///
/// An implementor is built once per step (so per-step scalars such as bias
/// corrections are computed once) and then applied to each chunk, possibly
/// from several threads. The update must be elementwise: element `i` may read
/// and write only index `i` of each slice, which is what makes the result
/// independent of how the slices were chunked.
pub(crate) trait Rule<const N: usize>: Sync {
    /// The names of the state buffers, in the order `update` receives them.
    const STATE_NAMES: [&'static str; N];

    /// Updates `p` in place from the gradients `g` and the state; all slices
    /// have the same length.
    fn update(&self, p: &mut [f32], g: &[f32], state: [&mut [f32]; N]);
}

/// Applies `rule` to all of `p`, in fixed chunks on the pool when large.
fn drive<R: Rule<N>, const N: usize>(rule: &R, p: &mut [f32], g: &[f32], bufs: &mut [Vec<f32>]) {
    let mut bufs = bufs.iter_mut();
    // The caller sized one buffer per state name; the empty fallback only keeps
    // a broken invariant from panicking (zip then updates nothing).
    let state: [&mut [f32]; N] =
        std::array::from_fn(|_| bufs.next().map(Vec::as_mut_slice).unwrap_or_default());
    debug_assert!(
        state.iter().all(|s| s.len() == p.len()),
        "state sized for another model"
    );
    if parallel_for(p.len()) {
        split(rule, p, g, state);
    } else {
        rule.update(p, g, state);
    }
}

/// Halves the run at a chunk boundary until each piece is one `PAR_CHUNK`
/// chunk. Recursive `join` rather than `par_chunks` because the number of state
/// slices to zip with varies by algorithm.
fn split<R: Rule<N>, const N: usize>(rule: &R, p: &mut [f32], g: &[f32], state: [&mut [f32]; N]) {
    if p.len() <= PAR_CHUNK {
        rule.update(p, g, state);
        return;
    }
    let mid = p.len().div_ceil(PAR_CHUNK) / 2 * PAR_CHUNK;
    let (p_lo, p_hi) = p.split_at_mut(mid);
    let (g_lo, g_hi) = g.split_at(mid.min(g.len()));
    let mut halves = state.map(|s| s.split_at_mut(mid.min(s.len())));
    let s_lo = halves.each_mut().map(|h| std::mem::take(&mut h.0));
    let s_hi = halves.map(|h| h.1);
    rayon::join(
        || split(rule, p_lo, g_lo, s_lo),
        || split(rule, p_hi, g_hi, s_hi),
    );
}

/// An optimizer: its configuration, its step count and its state buffers (one
/// per name in [`OptimizerConfig::state_names`], each as long as the
/// parameter vector).
#[derive(Clone, Debug)]
pub struct Optimizer {
    config: OptimizerConfig,
    /// Steps taken since the state was last (re)initialised.
    t: u64,
    /// The parameter count the state belongs to.
    n_params: usize,
    /// Empty until the first step; then sized once and reused.
    bufs: Vec<Vec<f32>>,
}

impl Optimizer {
    /// An optimizer with no state yet.
    ///
    /// # Errors
    /// `Error::Config` if a hyperparameter is out of range.
    pub fn new(config: OptimizerConfig) -> Result<Self> {
        config.validate()?;
        Ok(Self {
            config,
            t: 0,
            n_params: 0,
            bufs: Vec::new(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &OptimizerConfig {
        &self.config
    }

    /// Changes the learning rate (for schedules); the state is kept.
    ///
    /// # Errors
    /// `Error::Config` if `lr` is negative or not finite; the old rate stays.
    pub fn set_lr(&mut self, lr: f32) -> Result<()> {
        check_lr(lr)?;
        self.config.set_lr(lr);
        Ok(())
    }

    /// Steps taken since the state was created or last reset.
    pub fn steps(&self) -> u64 {
        self.t
    }

    /// One update of every parameter from its gradient.
    ///
    /// The first step (and any step after the parameter count changed) sizes
    /// the state; later steps allocate nothing. Large vectors are updated on
    /// the thread pool in fixed chunks, so the result does not depend on the
    /// number of threads.
    ///
    /// # Shapes
    /// `params.len() == grads.len()`; a mismatch is a caller bug (checked in
    /// debug builds; release builds update only the common prefix).
    pub fn step(&mut self, params: &mut [f32], grads: &[f32]) {
        debug_assert_eq!(
            params.len(),
            grads.len(),
            "params and grads differ in length"
        );
        let n = params.len().min(grads.len());
        let (params, grads) = (&mut params[..n], &grads[..n]);
        let names = self.config.state_names();
        if n != self.n_params || self.bufs.len() != names.len() {
            // A different parameter count means a different model: its
            // moments would be meaningless, so start afresh.
            self.t = 0;
            self.n_params = n;
            self.bufs = names.iter().map(|_| vec![0.0; n]).collect();
        }
        self.t = self.t.saturating_add(1);
        let (t, bufs) = (self.t, &mut self.bufs);
        match &self.config {
            OptimizerConfig::Sgd(c) if c.momentum == 0.0 => {
                drive(&sgd::PlainStep::new(c), params, grads, bufs)
            }
            OptimizerConfig::Sgd(c) => drive(&sgd::MomentumStep::new(c, t), params, grads, bufs),
            OptimizerConfig::Adam(c) => {
                drive(&adam::AdamStep::new(c, t, false), params, grads, bufs)
            }
            OptimizerConfig::Adamw(c) => {
                drive(&adam::AdamStep::new(c, t, true), params, grads, bufs)
            }
        }
    }

    /// The named state buffers, e.g. `[("momentum_buffer", ..)]` or
    /// `[("exp_avg", ..), ("exp_avg_sq", ..)]`; empty before the first step.
    pub fn state(&self) -> Vec<(&'static str, &[f32])> {
        let names = self.config.state_names();
        names
            .iter()
            .copied()
            .zip(self.bufs.iter().map(Vec::as_slice))
            .collect()
    }

    /// Restores the state saved from [`state`](Self::state) and
    /// [`steps`](Self::steps), for a model with `n_params` parameters, so that
    /// training continues exactly as if it had not been interrupted.
    /// `buffers` may come in any order. `steps == 0` with no buffers is a
    /// fresh state.
    ///
    /// # Errors
    /// `Error::Format` if a buffer is missing, unknown, repeated or not
    /// `n_params` long, or if buffers come with `steps == 0`; the current
    /// state is then left unchanged.
    pub fn load_state(
        &mut self,
        steps: u64,
        buffers: &[(String, Vec<f32>)],
        n_params: usize,
    ) -> Result<()> {
        let name = self.config.name();
        // Before the first step there is no state to restore.
        let want = if steps == 0 {
            &[]
        } else {
            self.config.state_names()
        };
        let got: Vec<&str> = buffers.iter().map(|(b, _)| b.as_str()).collect();
        // Equal counts with every wanted name present leave no room for an
        // unknown or repeated buffer.
        if got.len() != want.len() || !want.iter().all(|w| got.contains(w)) {
            return Err(Error::Format(format!(
                "{name} state after {steps} steps must have buffers {want:?}, got {got:?}"
            )));
        }
        if let Some((b, data)) = buffers.iter().find(|(_, d)| d.len() != n_params) {
            return Err(Error::Format(format!(
                "{name} state buffer {b:?} has {} values, expected {n_params} (one per parameter)",
                data.len()
            )));
        }
        if steps == 0 {
            self.reset();
            return Ok(());
        }
        let find = |w: &&str| buffers.iter().find(|(b, _)| b == w).map(|(_, d)| d.clone());
        self.bufs = want.iter().map(|w| find(w).unwrap_or_default()).collect();
        self.t = steps;
        self.n_params = n_params;
        Ok(())
    }

    /// Forgets the state and the step count (for example after new weights
    /// were loaded); the next step starts like the first.
    pub fn reset(&mut self) {
        self.t = 0;
        self.n_params = 0;
        self.bufs = Vec::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Marks each element it visits, so a chunk visited twice or skipped shows.
    struct Mark;

    impl Rule<2> for Mark {
        const STATE_NAMES: [&'static str; 2] = ["a", "b"];

        fn update(&self, p: &mut [f32], g: &[f32], [a, b]: [&mut [f32]; 2]) {
            // Leaves of the parallel split are single chunks; the serial path gets all.
            assert!(p.len() <= PAR_CHUNK || p.len() < crate::kernels::PAR_THRESHOLD);
            assert!(a.len() == p.len() && b.len() == p.len() && g.len() == p.len());
            for (((p, &g), a), b) in p.iter_mut().zip(g).zip(a.iter_mut()).zip(b.iter_mut()) {
                *p += 1.0;
                *a += g;
                *b += 2.0 * g;
            }
        }
    }

    #[test]
    fn split_visits_every_element_once() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        for n in [
            0,
            1,
            PAR_CHUNK - 1,
            PAR_CHUNK * 8,
            PAR_CHUNK * 9 + 5,
            (1 << 15) + 1,
        ] {
            let mut p = vec![0.0f32; n];
            let g: Vec<f32> = (0..n).map(|i| i as f32).collect();
            let mut bufs = vec![vec![0.0f32; n]; 2];
            pool.install(|| drive(&Mark, &mut p, &g, &mut bufs));
            assert!(p.iter().all(|&x| x == 1.0), "n = {n}");
            assert_eq!(bufs[0], g, "n = {n}");
            assert!(
                bufs[1].iter().zip(&g).all(|(b, g)| *b == 2.0 * g),
                "n = {n}"
            );
        }
    }

    #[test]
    fn state_names_match_state() {
        for name in OptimizerConfig::NAMES {
            let cfg = OptimizerConfig::from_name(name).unwrap();
            let mut opt = Optimizer::new(cfg.clone()).unwrap();
            opt.step(&mut [1.0; 3], &[0.5; 3]);
            let got: Vec<_> = opt.state().iter().map(|(n, s)| (*n, s.len())).collect();
            let want: Vec<_> = cfg.state_names().iter().map(|n| (*n, 3)).collect();
            assert_eq!(got, want, "{name}");
        }
    }
}
