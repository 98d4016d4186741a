//! One helper thread that takes half of a one-sample product off the caller.
//!
//! A one-sample `predict` is too small for the rayon pool: entering it costs
//! two thread wake-ups, about as long as the work (measured: sending it to the
//! pool was 10–15% slower). Yet the first layer of 784-256-128-10 is a pass
//! over 800 KB of weights that two cores read faster than one. So one helper
//! thread, outside the pool, waits for such halves:
//!
//! - the caller posts the second half of its work, does the first half itself,
//!   then takes the second half back if the helper has not started it, so a
//!   busy, descheduled or missing helper costs the caller nothing but its own
//!   work; it waits only for a half the helper is already running;
//! - after each job the helper spins for [`SPIN`] waiting for the next one (the
//!   next layer, the next call), then parks; a parked helper uses no CPU; a
//!   product that finds it asleep runs alone and wakes it for the next one;
//! - one caller uses the helper at a time (a `try` lock): a second thread
//!   predicting at the same moment does all its work itself, so concurrent
//!   callers never wait on each other;
//! - a panic in a job is caught on the helper and the caller redoes that half,
//!   so the helper can neither die nor leave a caller waiting.
//!
//! Callers split work so that each output is computed by the same
//! instructions whichever thread runs it (by output columns of a product), so
//! results do not depend on whether, or how much, the helper helped.

use std::cell::{Cell, UnsafeCell};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU8, AtomicUsize, Ordering::*};
use std::sync::OnceLock;
use std::thread::Thread;
use std::time::{Duration, Instant};

use crate::placement;

/// How long the helper spins for a next job before it parks: longer than the
/// gap between the layers of a call and between back-to-back calls from Python
/// (a few µs), short enough that an idle process stops spinning at once.
const SPIN: Duration = Duration::from_micros(50);

/// The slot's states.
const IDLE: u8 = 0;
const POSTED: u8 = 1;
const TAKEN: u8 = 2;
const DONE: u8 = 3;
const FAILED: u8 = 4;

/// A job: a borrowed closure with its lifetime erased. The poster keeps the
/// closure alive until the slot is back to `IDLE` (see [`both`]).
#[derive(Clone, Copy)]
struct Job(*const (dyn Fn() + Sync));

struct Slot {
    state: AtomicU8,
    /// Written by the owner while `IDLE`, read by the helper after it moved
    /// `POSTED` to `TAKEN`: the state's release/acquire orders the two.
    job: UnsafeCell<Option<Job>>,
    /// Held by the one caller that may post (a `try` lock).
    owner: AtomicBool,
    /// Set by the helper just before it parks.
    sleeping: AtomicBool,
    /// The CPU the poster ran on when it posted (`usize::MAX`: unknown),
    /// written before `POSTED` like `job`.
    poster_cpu: AtomicUsize,
    /// The helper's thread id (0: unknown), for moving it off a caller's CPU.
    helper_tid: AtomicI32,
    helper: OnceLock<Option<Thread>>,
}

// SAFETY: `job` is only touched under the protocol described on the field.
unsafe impl Sync for Slot {}

static SLOT: Slot = Slot { state: AtomicU8::new(IDLE), job: UnsafeCell::new(None), owner: AtomicBool::new(false), sleeping: AtomicBool::new(false), poster_cpu: AtomicUsize::new(usize::MAX), helper_tid: AtomicI32::new(0), helper: OnceLock::new() };

/// The helper thread, started on first use; `None` when the OS refused a thread
/// (everything then runs on the callers).
fn helper() -> Option<&'static Thread> {
    SLOT.helper
        .get_or_init(|| std::thread::Builder::new().name("ferronn-helper".into()).spawn(serve).ok().map(|h| h.thread().clone()))
        .as_ref()
}

/// The helper's loop: take posted jobs, spin a while after each, park when idle.
fn serve() {
    SLOT.helper_tid.store(placement::thread_id().unwrap_or(0), Relaxed);
    let mut last = Instant::now();
    let mut polls = 0u32;
    loop {
        if SLOT.state.load(Acquire) == POSTED && SLOT.state.compare_exchange(POSTED, TAKEN, Acquire, Relaxed).is_ok() {
            // SAFETY: `TAKEN` gives this thread the job; the poster keeps the
            // closure alive until the state leaves `TAKEN`.
            let job = unsafe { *SLOT.job.get() };
            // Queued on the poster's CPU, the half would wait for the poster
            // instead of running beside it: move to another CPU first.
            let poster = SLOT.poster_cpu.load(Relaxed);
            if poster != usize::MAX && placement::current_cpu() == Some(poster) {
                placement::leave_cpu(poster);
            }
            let ok = job.is_some_and(|Job(f)| catch_unwind(AssertUnwindSafe(|| unsafe { (*f)() })).is_ok());
            SLOT.state.store(if ok { DONE } else { FAILED }, Release);
            last = Instant::now();
            polls = 0;
            continue;
        }
        polls += 1;
        if polls % 64 != 0 {
            std::hint::spin_loop();
            continue;
        }
        if last.elapsed() < SPIN {
            // Give the core away if anything else wants it: on a busy machine a
            // spinning helper would otherwise slow the thread it helps.
            std::thread::yield_now();
            continue;
        }
        // Park unless a job arrived meanwhile. `sleeping` and `state` are both
        // SeqCst on both sides: either the poster sees `sleeping` and unparks,
        // or this thread sees `POSTED` and does not park.
        SLOT.sleeping.store(true, SeqCst);
        if SLOT.state.load(SeqCst) != POSTED {
            std::thread::park();
        }
        SLOT.sleeping.store(false, SeqCst);
        last = Instant::now();
        polls = 0;
    }
}

/// Unparks the helper if it sleeps (starting it on first use), so that it is
/// spinning when the next product is posted.
pub(crate) fn wake() {
    if SLOT.sleeping.load(SeqCst) {
        if let Some(t) = SLOT.helper.get().and_then(Option::as_ref) {
            t.unpark();
        }
    } else if SLOT.helper.get().is_none() {
        helper();
    }
}

/// Whether a one-sample call on this thread may use the helper: more than one
/// thread allowed (`set_num_threads`), and not already inside the rayon pool.
pub(crate) fn usable() -> bool {
    crate::threads::num_threads() > 1 && rayon::current_thread_index().is_none()
}

thread_local! {
    /// Set while this thread runs a one-sample inference pass that may share
    /// its large products with the helper (see [`sharing`]).
    static SHARING: Cell<bool> = const { Cell::new(false) };
    /// Set while this thread runs a small-batch inference pass whose large
    /// matrix products may share their output columns with the helper (see
    /// [`sharing_columns`]).
    static SHARING_COLUMNS: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` (a one-sample inference pass) with its large products shared with
/// the helper. Only inference opts in; every other product keeps its path. (The
/// helper is woken by the first product that finds it asleep, not here: a
/// model with no product wide enough to share never wakes it.)
pub(crate) fn one_sample<R>(f: impl FnOnce() -> R) -> R {
    crate::kernels::with_flag_set(&SHARING, f)
}

/// Whether a product on this thread should offer half of itself to the
/// helper: inside [`one_sample`] (which is entered only when [`usable`]).
pub(crate) fn sharing() -> bool {
    SHARING.with(Cell::get)
}

/// Runs `f` (an inference pass over a few rows) with its large matrix
/// products split by output columns with the helper (`gemm`'s
/// `split_columns`): two cores without the rayon pool's two wake-ups per
/// call, which cost as much as a small batch's work. A separate flag from
/// [`one_sample`] so that only the passes that opt in change path.
pub(crate) fn small_batch<R>(f: impl FnOnce() -> R) -> R {
    crate::kernels::with_flag_set(&SHARING_COLUMNS, f)
}

/// Whether a matrix product (two rows or more) on this thread should offer
/// half of its output columns to the helper: inside [`small_batch`].
pub(crate) fn sharing_columns() -> bool {
    SHARING_COLUMNS.with(Cell::get)
}

/// Runs `first` on the calling thread and `second` on the helper when it takes
/// it in time, else on the calling thread too; returns when both have run.
/// `second` must give the same result on either thread (it runs exactly once,
/// or, after a panic on the helper, once more on the caller).
pub(crate) fn both(first: impl FnOnce(), second: &(dyn Fn() + Sync)) {
    share(first, second, false);
}

/// [`both`] for halves long enough to be worth waking a parked helper for
/// (tens of µs: a small batch's half of the rows through every layer): the
/// second half is posted even when the helper sleeps, and it takes the half
/// if it wakes before the caller has finished its own. Taken late, the half
/// still ends no later than the caller would have finished both, so posting
/// never costs more than the wake-up call. (A product that found the helper
/// asleep used to run alone and only wake it for the next one; with one
/// hand-over per call the next one came after the helper's spin had ended,
/// and two calls in three found it asleep again.)
pub(crate) fn both_long(first: impl FnOnce(), second: &(dyn Fn() + Sync)) {
    share(first, second, true);
}

/// [`both`] and [`both_long`]: `wake_for_this` posts the second half to a
/// sleeping helper too.
fn share(first: impl FnOnce(), second: &(dyn Fn() + Sync), wake_for_this: bool) {
    let Some(thread) = helper() else {
        first();
        second();
        return;
    };
    if !wake_for_this && SLOT.sleeping.load(Relaxed) {
        // Woken now it would come too late for this product: wake it for the
        // next one (the next layer, the next call) and do this one here.
        wake();
        first();
        second();
        return;
    }
    if SLOT.owner.compare_exchange(false, true, Acquire, Relaxed).is_err() {
        // Another caller has the helper: do it all here.
        first();
        second();
        return;
    }
    // The owner lock guarantees the slot is IDLE (every owner leaves it so).
    // SAFETY: the lifetime is erased only while this function keeps `second`
    // borrowed: it returns (or unwinds, through `Reclaim`) only after the
    // slot is IDLE again, when the helper no longer holds the pointer.
    let erased: *const (dyn Fn() + Sync + 'static) = unsafe { std::mem::transmute::<*const (dyn Fn() + Sync + '_), _>(second as *const _) };
    unsafe { *SLOT.job.get() = Some(Job(erased)) };
    SLOT.poster_cpu.store(placement::current_cpu().unwrap_or(usize::MAX), Relaxed);
    SLOT.state.store(POSTED, SeqCst);
    if SLOT.sleeping.load(SeqCst) {
        // It went to sleep just now: whoever gets there first runs the half.
        thread.unpark();
    }
    let mut guard = Settle { armed: true };
    first();
    guard.armed = false;
    if settle() {
        second();
    }
}

/// Takes the slot back after the caller's own half: the second half is
/// withdrawn if the helper has not started it, or awaited if it has. Returns
/// whether the caller must run the second half itself (withdrawn, or failed on
/// the helper). Leaves the slot IDLE and releases the owner lock.
fn settle() -> bool {
    let redo = if SLOT.state.compare_exchange(POSTED, IDLE, Acquire, Acquire).is_ok() {
        // Withdrawn: an awake helper that did not take the half in all that
        // time may be queued behind this thread on its CPU. Move it off, so
        // that it runs beside the next call instead (a hint; see placement).
        if !SLOT.sleeping.load(Relaxed) {
            if let Some(cpu) = placement::current_cpu() {
                placement::move_off(SLOT.helper_tid.load(Relaxed), cpu);
            }
        }
        true
    } else {
        // TAKEN: the helper is running it (a few µs unless it was descheduled).
        let mut polls = 0u32;
        loop {
            match SLOT.state.load(Acquire) {
                DONE => break false,
                FAILED => break true,
                _ if polls < 1 << 14 => {
                    polls += 1;
                    std::hint::spin_loop();
                }
                _ => std::thread::yield_now(),
            }
        }
    };
    // SAFETY: the helper holds no job now (withdrawn, or finished with it).
    unsafe { *SLOT.job.get() = None };
    SLOT.state.store(IDLE, Release);
    SLOT.owner.store(false, Release);
    redo
}

/// Settles the slot when the caller's own half unwinds, so that `second` is
/// never freed while the helper may still run it.
struct Settle {
    armed: bool,
}

impl Drop for Settle {
    fn drop(&mut self) {
        if self.armed {
            settle();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// Both halves run exactly once per call, from several callers at once
    /// (one of them at a time owns the helper; the others run both halves),
    /// through [`both`] and [`both_long`].
    #[test]
    fn each_half_runs_once_from_concurrent_callers() {
        let callers: Vec<_> = (0..4)
            .map(|c| {
                std::thread::spawn(move || {
                    for i in 0..3000usize {
                        let (firsts, seconds) = (AtomicUsize::new(0), AtomicUsize::new(0));
                        // Half the calls post to a sleeping helper too (`both_long`).
                        let share = if i % 2 == 0 { both } else { both_long };
                        share(
                            || {
                                firsts.fetch_add(1, SeqCst);
                                // Some calls long enough for the helper to take the second half.
                                let t = Instant::now();
                                while t.elapsed() < Duration::from_micros((i % 8) as u64) {
                                    std::hint::spin_loop();
                                }
                            },
                            &|| {
                                seconds.fetch_add(1, SeqCst);
                            },
                        );
                        assert_eq!((firsts.load(SeqCst), seconds.load(SeqCst)), (1, 1), "caller {c} call {i}");
                    }
                })
            })
            .collect();
        for c in callers {
            c.join().unwrap();
        }
    }

    /// A second half that panics on the helper is run again by the caller, and
    /// the helper keeps serving later calls.
    #[test]
    fn a_panic_on_the_helper_is_redone_by_the_caller() {
        let me = std::thread::current().id();
        let (mut redone, start) = (0, Instant::now());
        // Until the helper has taken (and failed) a few, or two seconds pass on a
        // machine too busy for the helper to run alongside.
        while redone < 3 && start.elapsed() < Duration::from_secs(2) {
            let (on_helper, on_caller) = (AtomicUsize::new(0), AtomicUsize::new(0));
            both(
                || {
                    let t = Instant::now();
                    while t.elapsed() < Duration::from_micros(20) {
                        std::hint::spin_loop();
                    }
                },
                &|| {
                    if std::thread::current().id() == me {
                        on_caller.fetch_add(1, SeqCst);
                    } else {
                        on_helper.fetch_add(1, SeqCst);
                        panic!("a failing half (expected by the test)");
                    }
                },
            );
            assert_eq!(on_caller.load(SeqCst), 1, "the caller must finish the half whether or not the helper failed it");
            redone += on_helper.load(SeqCst);
        }
        // The slot is free again.
        assert!(!SLOT.owner.load(SeqCst));
        assert_eq!(SLOT.state.load(SeqCst), IDLE);
    }
}
