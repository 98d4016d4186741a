//! The thread pool that every parallel kernel runs in.
//!
//! rayon's global pool cannot be resized once built, yet users expect
//! `set_num_threads` to work at any time (as `torch.set_num_threads` does). So
//! ferronn keeps its own pool behind a lock and swaps it on a change; work enters
//! it through [`install`].

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_threads_is_rejected() {
        assert!(matches!(set_num_threads(0), Err(Error::Config(_))));
    }
}
