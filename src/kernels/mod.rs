//! Numeric kernels: matrix products, vectorised transcendentals, reductions.

pub(crate) mod blocked;
pub mod gemm;
pub(crate) mod gemv;
pub mod math;
pub mod reduce;

/// Element counts below this run on one thread: splitting costs more than it saves.
pub const PAR_THRESHOLD: usize = 1 << 15;

/// The fixed chunk length of parallel elementwise loops. Fixed (not derived from
/// the thread count) so that results never depend on how work was split.
pub const PAR_CHUNK: usize = 1 << 12;

std::thread_local! {
    /// Set while [`on_this_thread`] runs its closure on this thread.
    static HERE_ONLY: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Threads available to the caller: the pool's size inside a rayon pool, else
/// one. Work started outside a pool stays on the calling thread (small calls such
/// as a one-sample `predict` would pay more to wake the pool than they compute),
/// and so does work inside [`on_this_thread`].
pub fn available_threads() -> usize {
    if rayon::current_thread_index().is_some() && !HERE_ONLY.with(|h| h.get()) {
        rayon::current_num_threads()
    } else {
        1
    }
}

/// Runs `f` with every kernel it calls (products, elementwise loops) kept on
/// the calling thread, for callers that already split their work between
/// threads in larger pieces (a convolution gives each thread whole chunks of
/// its batch: one fork per pass instead of one per product). Every kernel
/// gives the same bits on any number of threads, so this changes only where
/// the work runs. Nothing inside `f` enters the pool, so a pool thread running
/// `f` never picks up another task until `f` returns.
pub fn on_this_thread<R>(f: impl FnOnce() -> R) -> R {
    with_flag_set(&HERE_ONLY, f)
}

/// Runs `f` with the thread-local `flag` set, then restores its previous
/// value, also when `f` unwinds (so nested calls keep the outer setting).
pub(crate) fn with_flag_set<R>(flag: &'static std::thread::LocalKey<std::cell::Cell<bool>>, f: impl FnOnce() -> R) -> R {
    struct Restore(&'static std::thread::LocalKey<std::cell::Cell<bool>>, bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            self.0.with(|h| h.set(self.1));
        }
    }
    let _restore = Restore(flag, flag.with(|h| h.replace(true)));
    f()
}

/// Whether an elementwise loop over `len` values should use the pool.
pub fn parallel_for(len: usize) -> bool {
    len >= PAR_THRESHOLD && available_threads() > 1
}
pub mod softmax;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn on_this_thread_keeps_kernels_on_the_caller_and_restores() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
        pool.install(|| {
            assert_eq!(available_threads(), 3);
            let inner = on_this_thread(|| (available_threads(), parallel_for(1 << 20), on_this_thread(available_threads)));
            assert_eq!(inner, (1, false, 1));
            assert_eq!(available_threads(), 3, "the pool is available again afterwards");
            let unwound = std::panic::catch_unwind(|| on_this_thread(|| panic!("inside")));
            assert!(unwound.is_err());
            assert_eq!(available_threads(), 3, "restored after a panic too");
        });
    }
}
