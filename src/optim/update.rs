//! The update machinery shared by every algorithm: the [`Rule`] trait each one
//! implements, and [`apply`], which picks the rule for a configuration and
//! drives it over a run of parameters, in fixed chunks on the thread pool
//! when the run is large.
//!
//! The driver also returns the largest magnitude of the weights it wrote,
//! taken chunk by chunk right after each chunk's update, while the chunk is
//! still in L1: the training step's finiteness check then needs no pass of
//! its own over every weight (it was one more read of the whole vector per
//! step, from L2 or beyond). A maximum is exact in any order, so the result
//! is the same however the chunks were shared between threads.

use std::ops::Range;

use super::bound::{Peak, Sizes};
use super::{adagrad, adam, rmsprop, sgd, OptimizerConfig};
use crate::kernels::reduce::max_abs_bits;
use crate::kernels::{available_threads, parallel_for, PAR_CHUNK};

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

    /// [`Rule::update`], returning the largest `|p|` written as
    /// [`max_abs_bits`] gives it. By default a second read of `p` (a chunk
    /// the caller just updated, so from L1); a rule may take it inside its
    /// own loop instead (Adam, the common case, does).
    fn update_max(&self, p: &mut [f32], g: &[f32], state: [&mut [f32]; N]) -> u32 {
        self.update(p, g, state);
        max_abs_bits(p)
    }
}

/// Applies `rule` to `p`, the parameters at `range` of the whole vector, with
/// the same range of each state buffer; in fixed chunks on the pool when large.
/// Returns the largest `|p|` written, as [`max_abs_bits`] gives it (at least
/// the bits of `+inf` when a written value is not finite).
pub(super) fn drive<R: Rule<N>, const N: usize>(
    rule: &R,
    p: &mut [f32],
    g: &[f32],
    bufs: &mut [Vec<f32>],
    range: Range<usize>,
) -> u32 {
    let mut bufs = bufs.iter_mut();
    // The caller sized one buffer per state name; the empty fallback only keeps
    // a broken invariant from panicking (zip then updates nothing).
    let state: [&mut [f32]; N] = std::array::from_fn(|_| {
        bufs.next()
            .and_then(|b| b.get_mut(range.clone()))
            .unwrap_or_default()
    });
    debug_assert!(
        state.iter().all(|s| s.len() == p.len()),
        "state sized for another model"
    );
    if parallel_for(p.len()) {
        split(rule, p, g, state)
    } else {
        serial(rule, p, g, state)
    }
}

/// The update of one piece, chunk by chunk on the calling thread: each
/// chunk's maximum is read back while the chunk is in L1.
fn serial<R: Rule<N>, const N: usize>(rule: &R, p: &mut [f32], g: &[f32], mut state: [&mut [f32]; N]) -> u32 {
    let mut top = 0;
    let mut at = 0;
    while at < p.len() {
        let end = (at + PAR_CHUNK).min(p.len());
        let chunk = state.each_mut().map(|s| s.get_mut(at..end).unwrap_or_default());
        let pc = &mut p[at..end];
        top = top.max(rule.update_max(pc, g.get(at..end).unwrap_or_default(), chunk));
        at = end;
    }
    top
}

/// Cuts the run at chunk boundaries into one contiguous piece per thread and
/// updates the pieces in parallel (each chunk by chunk, as [`serial`]).
/// A fixed piece per thread, rather than halving down to single chunks for
/// rayon to balance, keeps each thread on the same weights and moments from
/// step to step (in its own core's cache instead of moving between cores) and
/// costs one fork instead of a join per chunk. Each value is updated alone, so
/// the pieces change no bits.
fn split<R: Rule<N>, const N: usize>(rule: &R, p: &mut [f32], g: &[f32], state: [&mut [f32]; N]) -> u32 {
    let chunks = p.len().div_ceil(PAR_CHUNK);
    let parts = available_threads().min(chunks).max(1);
    halves(rule, p, g, state, parts)
}

/// Updates `p` in `parts` pieces of whole chunks (the first `chunks % parts`
/// pieces one chunk longer), two groups of pieces at a time.
fn halves<R: Rule<N>, const N: usize>(rule: &R, p: &mut [f32], g: &[f32], state: [&mut [f32]; N], parts: usize) -> u32 {
    if parts <= 1 || p.len() <= PAR_CHUNK {
        return serial(rule, p, g, state);
    }
    let chunks = p.len().div_ceil(PAR_CHUNK);
    let lo_parts = parts / 2;
    // The chunks of the first `lo_parts` pieces.
    let lo_chunks = lo_parts * (chunks / parts) + lo_parts.min(chunks % parts);
    let mid = (lo_chunks * PAR_CHUNK).min(p.len());
    let (p_lo, p_hi) = p.split_at_mut(mid);
    let (g_lo, g_hi) = g.split_at(mid.min(g.len()));
    let mut cut = state.map(|s| s.split_at_mut(mid.min(s.len())));
    let s_lo = cut.each_mut().map(|h| std::mem::take(&mut h.0));
    let s_hi = cut.map(|h| h.1);
    let (lo, hi) = rayon::join(
        || halves(rule, p_lo, g_lo, s_lo, lo_parts),
        || halves(rule, p_hi, g_hi, s_hi, parts - lo_parts),
    );
    lo.max(hi)
}

/// One update of the parameters at `range` (`p` and `g` are that range), with
/// weight decay when `decay`, else none, and `extra_l2·p` added to the
/// gradient (an L2 regularizer's gradient). Returns the largest `|p|` written,
/// as [`drive`].
#[allow(clippy::too_many_arguments)]
pub(super) fn apply(
    config: &OptimizerConfig,
    t: u64,
    decay: bool,
    extra_l2: f32,
    fused_clip: Option<(f32, f32)>,
    p: &mut [f32],
    g: &[f32],
    bufs: &mut [Vec<f32>],
    range: Range<usize>,
) -> u32 {
    let wd = if decay { config.weight_decay() } else { 0.0 };
    // SGD, Adam, RMSprop and Adagrad put weight decay into the gradient, so the
    // regularizer's coefficient simply adds to it; AdamW keeps them apart.
    let l2 = wd + extra_l2;
    match config {
        OptimizerConfig::Sgd(c) if c.momentum == 0.0 => {
            drive(&sgd::PlainStep::new(c, l2), p, g, bufs, range)
        }
        OptimizerConfig::Sgd(c) => drive(&sgd::MomentumStep::new(c, t, l2), p, g, bufs, range),
        OptimizerConfig::Adam(c) | OptimizerConfig::Adamw(c) => {
            let decoupled = matches!(config, OptimizerConfig::Adamw(_));
            let rule = adam::AdamStep::new(c, t, decoupled, wd, extra_l2, fused_clip);
            if c.amsgrad {
                drive::<_, 3>(&rule, p, g, bufs, range)
            } else {
                drive::<_, 2>(&rule, p, g, bufs, range)
            }
        }
        OptimizerConfig::Rmsprop(c) => {
            let rule = rmsprop::RmspropStep::new(c, l2);
            match (c.has_momentum(), c.centered) {
                (false, false) => drive::<_, 1>(&rule, p, g, bufs, range),
                (true, true) => drive::<_, 3>(&rule, p, g, bufs, range),
                // The rule reads the second buffer as the momentum buffer or
                // the gradient average, as the config says.
                _ => drive::<_, 2>(&rule, p, g, bufs, range),
            }
        }
        OptimizerConfig::Adagrad(c) => {
            drive(&adagrad::AdagradStep::new(c, t, l2), p, g, bufs, range)
        }
    }
}

/// Bounds one step `t` of `config`'s rule over every run (see `optim::bound`):
/// the rule is built as for the run with the most decay (weight decay `wd`
/// and regularizer coefficient `extra` from `l2 = (wd, extra)`), which bounds
/// every other run too. Returns the state buffers' bounds after the step and
/// the new weights' bound; each intermediate goes through `peak`.
pub(super) fn bound(config: &OptimizerConfig, t: u64, (wd, extra): (f32, f32), s: Sizes, state: [f64; 3], peak: &mut Peak) -> ([f64; 3], f64) {
    let l2 = wd + extra;
    match config {
        OptimizerConfig::Sgd(c) if c.momentum == 0.0 => sgd::PlainStep::new(c, l2).bound(s, peak),
        OptimizerConfig::Sgd(c) => sgd::MomentumStep::new(c, t, l2).bound(s, state, peak),
        OptimizerConfig::Adam(c) | OptimizerConfig::Adamw(c) => {
            let decoupled = matches!(config, OptimizerConfig::Adamw(_));
            adam::AdamStep::new(c, t, decoupled, wd, extra, None).bound(s, state, peak)
        }
        OptimizerConfig::Rmsprop(c) => rmsprop::RmspropStep::new(c, l2).bound(s, state, peak),
        OptimizerConfig::Adagrad(c) => adagrad::AdagradStep::new(c, t, l2).bound(s, state, peak),
    }
}
