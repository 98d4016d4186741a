//! The thread pool that every parallel kernel runs in.
//!
//! rayon's global pool cannot be resized once built, yet users expect
//! `set_num_threads` to work at any time (as `torch.set_num_threads` does). So
//! ferronn keeps its own pool behind a lock and swaps it on a change; work enters
//! it through [`install`].

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant};

use rayon::{ThreadPool, ThreadPoolBuilder};

use crate::error::{Error, Result};

static POOL: RwLock<Option<Arc<ThreadPool>>> = RwLock::new(None);

/// The pool's size once known (0 before the pool exists), read without the lock
/// on every one-sample call.
static THREADS: AtomicUsize = AtomicUsize::new(0);

fn available_cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

fn build(n: usize) -> Result<Arc<ThreadPool>> {
    ThreadPoolBuilder::new()
        .num_threads(n)
        .thread_name(|i| format!("ferronn-{i}"))
        .build()
        .map(Arc::new)
        .map_err(|e| Error::Config(format!("could not start {n} threads: {e}")))
}

fn pool() -> Arc<ThreadPool> {
    if let Some(p) = POOL.read().unwrap_or_else(|e| e.into_inner()).as_ref() {
        return p.clone();
    }
    let mut slot = POOL.write().unwrap_or_else(|e| e.into_inner());
    if slot.is_none() {
        // Building a pool of the machine's size only fails if the OS refuses
        // threads; fall back to one thread rather than failing every call.
        let built = build(available_cores()).or_else(|_| build(1)).expect("a one-thread pool");
        THREADS.store(built.current_num_threads(), Ordering::Relaxed);
        *slot = Some(built);
    }
    slot.as_ref().map(Arc::clone).expect("pool was just set")
}

/// Uses `n` threads from now on (`n >= 1`).
///
/// # Errors
/// `Error::Config` when `n == 0` or the threads cannot be started.
pub fn set_num_threads(n: usize) -> Result<()> {
    if n == 0 {
        return Err(Error::Config("num_threads must be at least 1, got 0".into()));
    }
    let new = build(n)?;
    let mut slot = POOL.write().unwrap_or_else(|e| e.into_inner());
    THREADS.store(new.current_num_threads(), Ordering::Relaxed);
    *slot = Some(new);
    Ok(())
}

/// The number of threads kernels use; by default every available core. Read
/// without taking the pool's lock once the pool exists (every one-sample call
/// asks).
pub fn num_threads() -> usize {
    match THREADS.load(Ordering::Relaxed) {
        0 => pool().current_num_threads(),
        n => n,
    }
}

/// Runs `f` inside ferronn's pool, so that rayon calls in it use that pool.
pub fn install<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    pool().install(f)
}

/// Runs `f` inside ferronn's pool as [`install`] does, with the pool's other
/// threads kept awake until `f` returns: for calls that fork many times in a
/// row (a training step forks once per product and per large pass).
///
/// Between two forks a rayon worker that found nothing to do yields 32 times
/// and then sleeps, and the next fork has to wake it through the OS, which on
/// the 2-core VM came later than the fork several times per step. Here each
/// other thread runs a keeper: pool work when there is some
/// (`rayon::yield_now`), else a spin that offers its core to the OS every 64
/// polls. On a busy machine a thread that is awake steals halves of products
/// and is then descheduled in the middle of them, so the caller waits: a
/// keeper that lost more than [`PREEMPTED`] of wall time off its core (its
/// thread CPU time against the clock) ends, and keeping stays off for
/// [`BACK_OFF`]. Results do not depend on any of this: which thread runs a
/// piece of work never changes its arithmetic. Linux only (the thread CPU
/// clock); elsewhere this is [`install`].
pub fn install_awake<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    awake_in(&pool(), f)
}

fn awake_in<R: Send>(p: &ThreadPool, f: impl FnOnce() -> R + Send) -> R {
    let keepers = p.current_num_threads() - 1;
    // A call made from one of the pool's own threads is inside an outer call,
    // whose keepers already run.
    if keepers == 0 || p.current_thread_index().is_some() || backing_off() || thread_cpu_time().is_none() {
        return p.install(f);
    }
    p.install(|| {
        let done = AtomicBool::new(false);
        with_keepers(keepers, &done, || {
            // Set even when `f` panics, so that no keeper spins on.
            let _done = SetOnDrop(&done);
            f()
        })
    })
}

/// A keeper that lost this much time off its core found the machine busy.
const PREEMPTED: Duration = Duration::from_micros(200);
/// How long keeping stays off after that.
const BACK_OFF: Duration = Duration::from_millis(100);

/// When keeping may resume, in nanoseconds since [`start`].
static BACK_OFF_UNTIL: AtomicU64 = AtomicU64::new(0);

fn start() -> Instant {
    static START: OnceLock<Instant> = OnceLock::new();
    *START.get_or_init(Instant::now)
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn backing_off() -> bool {
    nanos(start().elapsed()) < BACK_OFF_UNTIL.load(Ordering::Relaxed)
}

/// The calling thread's CPU time (Linux), `None` elsewhere or on failure.
fn thread_cpu_time() -> Option<Duration> {
    #[cfg(target_os = "linux")]
    {
        let mut t = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: clock_gettime only writes the timespec it is given.
        let ok = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) } == 0;
        ok.then(|| Duration::new(u64::try_from(t.tv_sec).unwrap_or(0), u32::try_from(t.tv_nsec).unwrap_or(0)))
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

struct SetOnDrop<'a>(&'a AtomicBool);

impl Drop for SetOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

/// Runs `f` beside `n` keeper jobs. They are queued before `f` starts, so
/// other threads steal them before any of `f`'s own work (a steal takes the
/// oldest job), and the caller can only find one in its own queue after `f`
/// returned, when it sees `done` and ends at once.
fn with_keepers<R: Send>(n: usize, done: &AtomicBool, f: impl FnOnce() -> R + Send) -> R {
    if n == 0 {
        return f();
    }
    rayon::join(|| with_keepers(n - 1, done, f), || keep(done)).0
}

/// Whether, between two (clock, thread CPU time) marks, the thread spent
/// more than [`PREEMPTED`] off its core.
fn lost_core(from: (Instant, Duration), to: (Instant, Duration)) -> bool {
    let wall = to.0.duration_since(from.0);
    wall.saturating_sub(to.1.saturating_sub(from.1)) > PREEMPTED
}

/// A keeper: runs pool work or spins until `done`, or until it finds that it
/// lost its core (then keeping backs off).
fn keep(done: &AtomicBool) {
    let mut polls = 0u32;
    let mut mark = (Instant::now(), thread_cpu_time().unwrap_or_default());
    while !done.load(Ordering::Acquire) {
        if !matches!(rayon::yield_now(), Some(rayon::Yield::Executed)) {
            polls += 1;
            if polls % 64 != 0 {
                std::hint::spin_loop();
                continue;
            }
            std::thread::yield_now();
        }
        let now = (Instant::now(), thread_cpu_time().unwrap_or_default());
        if lost_core(mark, now) {
            BACK_OFF_UNTIL.fetch_max(nanos(start().elapsed() + BACK_OFF), Ordering::Relaxed);
            return;
        }
        mark = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use rayon::prelude::*;
    use std::panic::{catch_unwind, AssertUnwindSafe};
    use std::sync::mpsc;

    #[test]
    fn zero_threads_is_rejected() {
        assert!(matches!(set_num_threads(0), Err(Error::Config(_))));
    }

    /// Runs `f` on its own thread and fails the test if it has not returned
    /// within 60 s (a keeper that never ends would otherwise hang the run).
    fn within_a_minute(f: impl FnOnce() + Send + 'static) {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            f();
            let _ = tx.send(());
        });
        rx.recv_timeout(Duration::from_secs(60)).expect("the call did not return: a keeper kept running");
    }

    fn test_pool(n: usize) -> Arc<ThreadPool> {
        Arc::new(ThreadPoolBuilder::new().num_threads(n).build().unwrap())
    }

    /// Forks many times in a row, as a training step does.
    fn forking_work(seed: u64) -> u64 {
        (0..20u64).map(|r| (0..4096u64).into_par_iter().map(|i| (i ^ seed).wrapping_mul(r + 1) % 1009).sum::<u64>()).sum()
    }

    #[test]
    fn kept_awake_gives_the_result_and_every_keeper_ends() {
        within_a_minute(|| {
            for n in [1, 2, 4] {
                let p = test_pool(n);
                for seed in 0..50 {
                    assert_eq!(awake_in(&p, || forking_work(seed)), forking_work(seed));
                    // Work that ends before any keeper was stolen.
                    assert_eq!(awake_in(&p, || seed + 1), seed + 1);
                }
                // `f` runs on a pool thread, as with `install`.
                assert!(awake_in(&p, rayon::current_thread_index).is_some());
            }
        });
    }

    #[test]
    fn a_panic_ends_the_keepers_and_the_pool_still_works() {
        within_a_minute(|| {
            let p = test_pool(3);
            for _ in 0..5 {
                let r = catch_unwind(AssertUnwindSafe(|| awake_in(&p, || -> u64 { panic!("boom after {}", forking_work(1)) })));
                assert!(r.is_err());
                assert_eq!(awake_in(&p, || forking_work(2)), forking_work(2));
            }
        });
    }

    #[test]
    fn concurrent_callers_share_a_pool_without_waiting_on_each_other_forever() {
        within_a_minute(|| {
            let p = test_pool(4);
            let callers: Vec<_> = (0..3u64)
                .map(|c| {
                    let p = Arc::clone(&p);
                    std::thread::spawn(move || {
                        for seed in 0..30 {
                            // Nested: a call made from inside the pool.
                            let got = awake_in(&p, || awake_in(&p, || forking_work(seed + c)) + forking_work(c));
                            assert_eq!(got, forking_work(seed + c) + forking_work(c));
                        }
                    })
                })
                .collect();
            callers.into_iter().for_each(|t| t.join().unwrap());
        });
    }

    #[test]
    fn only_time_off_the_core_counts_as_preemption() {
        let t = Instant::now();
        let ms = Duration::from_millis;
        // 1 ms of wall time, all of it on the core: not preempted.
        assert!(!lost_core((t, ms(5)), (t + ms(1), ms(6))));
        // 1 ms of wall time, 0.1 ms on the core.
        assert!(lost_core((t, ms(5)), (t + ms(1), ms(5) + Duration::from_micros(100))));
        // Just under and over the limit.
        let us = Duration::from_micros;
        assert!(!lost_core((t, ms(0)), (t + us(1000), us(1000) - PREEMPTED)));
        assert!(lost_core((t, ms(0)), (t + us(1000), us(999) - PREEMPTED)));
    }

    /// (Whether it resumes afterwards is not asserted: a keeper of a test
    /// running beside this one may back off again meanwhile.)
    #[test]
    fn a_backed_off_call_runs_without_keepers() {
        within_a_minute(|| {
            let p = test_pool(2);
            BACK_OFF_UNTIL.fetch_max(nanos(start().elapsed() + BACK_OFF), Ordering::Relaxed);
            assert!(backing_off());
            assert_eq!(awake_in(&p, || forking_work(3)), forking_work(3));
        });
    }
}
