//! An opt-in profile of where a training or inference call spends its time:
//! every matrix product by shape (its wall time, and the time its threads
//! spent on it), and the phases of each training step.
//!
//! Off by default. While off, each product and each phase costs one relaxed
//! atomic load. While on, figures accumulate until [`take`] returns and clears
//! them. Concurrent callers add into the same figures, so profile one call at
//! a time. `benches/profile_step.py` prints a step's profile on one and two
//! threads.
//!
//! The threads' time on a product is the sum, over the pieces a product was
//! split into, of each piece's own wall time. Against the product's wall time
//! it shows how well the split went, and against the same product on one
//! thread it shows what splitting added (for instance, reading operands that
//! the other core wrote).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

static ON: AtomicBool = AtomicBool::new(false);

/// Time spent in product pieces ([`piece`]), in nanoseconds, since start.
static PIECES_NS: AtomicU64 = AtomicU64::new(0);

static PRODUCTS: Mutex<Vec<ProductStat>> = Mutex::new(Vec::new());

/// The phases of a training step, in the order a step runs them (and their
/// index in [`Phase::ALL`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Copying a shuffled batch's rows and targets out of the data.
    Gather,
    /// The layers' forward passes.
    Forward,
    /// The loss and its gradient.
    Loss,
    /// The layers' backward passes and the L1 penalties' gradients.
    Backward,
    /// The update's bound, the optimizer update and the check of its result.
    Update,
}

impl Phase {
    pub const ALL: [Phase; 5] = [Phase::Gather, Phase::Forward, Phase::Loss, Phase::Backward, Phase::Update];

    pub fn name(self) -> &'static str {
        match self {
            Phase::Gather => "gather",
            Phase::Forward => "forward",
            Phase::Loss => "loss",
            Phase::Backward => "backward",
            Phase::Update => "update",
        }
    }
}

/// Per phase: times entered, nanoseconds.
static PHASES: [[AtomicU64; 2]; 5] = [const { [AtomicU64::new(0), AtomicU64::new(0)] }; 5];

/// The figures of one product shape: `c (m×n) = op(a) (m×k) · op(b) (k×n)`,
/// as the caller stated it (row-major), with the threads it was allowed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProductStat {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub threads: usize,
    pub calls: u64,
    pub wall_ns: u64,
    /// The pieces' own times added up; a product that was not split counts
    /// its wall time.
    pub busy_ns: u64,
}

/// What [`take`] returns.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Profile {
    pub products: Vec<ProductStat>,
    /// `(phase, times entered, nanoseconds)` for each phase.
    pub phases: Vec<(Phase, u64, u64)>,
}

/// Whether figures are being taken.
#[inline]
pub fn enabled() -> bool {
    ON.load(Relaxed)
}

/// Starts (clearing what was taken before) or stops taking figures.
pub fn set_enabled(on: bool) {
    if on {
        take();
    }
    ON.store(on, Relaxed);
}

/// The figures taken since the last call (or since profiling started), which
/// are then cleared.
pub fn take() -> Profile {
    let products = std::mem::take(&mut *PRODUCTS.lock().unwrap_or_else(PoisonError::into_inner));
    let phases = Phase::ALL.iter().zip(&PHASES).map(|(&p, [calls, ns])| (p, calls.swap(0, Relaxed), ns.swap(0, Relaxed))).collect();
    Profile { products, phases }
}

fn nanos_since(t: Instant) -> u64 {
    u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// Times a product until dropped (nothing when profiling is off).
pub(crate) struct ProductTimer {
    start: Option<(Instant, u64)>,
    shape: (usize, usize, usize, usize),
}

impl ProductTimer {
    pub(crate) fn start(m: usize, n: usize, k: usize, threads: usize) -> Self {
        let start = enabled().then(|| (Instant::now(), PIECES_NS.load(Relaxed)));
        Self { start, shape: (m, n, k, threads) }
    }
}

impl Drop for ProductTimer {
    fn drop(&mut self) {
        let Some((t, pieces_before)) = self.start else { return };
        let wall = nanos_since(t);
        let pieces = PIECES_NS.load(Relaxed).saturating_sub(pieces_before);
        let busy = if pieces == 0 { wall } else { pieces };
        let (m, n, k, threads) = self.shape;
        let mut all = PRODUCTS.lock().unwrap_or_else(PoisonError::into_inner);
        match all.iter_mut().find(|s| (s.m, s.n, s.k, s.threads) == self.shape) {
            Some(s) => {
                s.calls += 1;
                s.wall_ns += wall;
                s.busy_ns += busy;
            }
            None => all.push(ProductStat { m, n, k, threads, calls: 1, wall_ns: wall, busy_ns: busy }),
        }
    }
}

/// Runs `f`, one piece of a split product, adding its time to the product's.
#[inline]
pub(crate) fn piece<R>(f: impl FnOnce() -> R) -> R {
    if !enabled() {
        return f();
    }
    let t = Instant::now();
    let out = f();
    PIECES_NS.fetch_add(nanos_since(t), Relaxed);
    out
}

/// Times a phase until dropped (nothing when profiling is off).
pub(crate) struct PhaseTimer(Option<(Instant, usize)>);

impl PhaseTimer {
    pub(crate) fn start(phase: Phase) -> Self {
        Self(enabled().then(|| (Instant::now(), phase as usize)))
    }
}

impl Drop for PhaseTimer {
    fn drop(&mut self) {
        if let Some((t, i)) = self.0 {
            PHASES[i][0].fetch_add(1, Relaxed);
            PHASES[i][1].fetch_add(nanos_since(t), Relaxed);
        }
    }
}
