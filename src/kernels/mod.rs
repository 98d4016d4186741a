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
    /// The most threads the kernels called on this thread may use (0: the
    /// whole pool): 1 inside [`on_this_thread`], a share of the pool inside
    /// [`join_shares`].
    static BUDGET: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Threads available to the caller: the pool's size inside a rayon pool (or
/// the share [`join_shares`] gave this side), else one. Work started outside a
/// pool stays on the calling thread (small calls such as a one-sample
/// `predict` would pay more to wake the pool than they compute), and so does
/// work inside [`on_this_thread`].
pub fn available_threads() -> usize {
    if rayon::current_thread_index().is_none() {
        return 1;
    }
    let pool = rayon::current_num_threads();
    match BUDGET.with(std::cell::Cell::get) {
        0 => pool,
        budget => budget.min(pool),
    }
}

/// Runs `f` with the kernels it calls limited to `threads` (never more than
/// an enclosing limit), then restores the previous limit, also when `f`
/// unwinds.
fn with_budget<R>(threads: usize, f: impl FnOnce() -> R) -> R {
    struct Restore(usize);
    impl Drop for Restore {
        fn drop(&mut self) {
            BUDGET.with(|b| b.set(self.0));
        }
    }
    let outer = BUDGET.with(std::cell::Cell::get);
    let limit = if outer == 0 { threads.max(1) } else { threads.clamp(1, outer) };
    let _restore = Restore(BUDGET.with(|b| b.replace(limit)));
    f()
}

/// Runs `f` with every kernel it calls (products, elementwise loops) kept on
/// the calling thread, for callers that already split their work between
/// threads in larger pieces (a convolution gives each thread whole chunks of
/// its batch: one fork per pass instead of one per product). Every kernel
/// gives the same bits on any number of threads, so this changes only where
/// the work runs. Nothing inside `f` enters the pool, so a pool thread running
/// `f` never picks up another task until `f` returns.
pub fn on_this_thread<R>(f: impl FnOnce() -> R) -> R {
    with_budget(1, f)
}

/// Runs two independent pieces of work at once, each with its kernels
/// limited to half of the available threads (`a` takes the larger half of an
/// odd count); in sequence when only one thread is available. For pairs of
/// products too small to split well (a Dense layer's weight gradient and
/// input gradient): each runs whole on its share of the threads instead of
/// both paying the split's extra packing and wake-ups. Every kernel gives the
/// same bits on any number of threads, so only where the work runs changes.
pub fn join_shares<RA: Send, RB: Send>(a: impl FnOnce() -> RA + Send, b: impl FnOnce() -> RB + Send) -> (RA, RB) {
    let threads = available_threads();
    if threads < 2 {
        return (a(), b());
    }
    let second = threads / 2;
    rayon::join(|| with_budget(threads - second, a), || with_budget(second, b))
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

    #[test]
    fn join_shares_gives_each_side_half_of_the_threads() {
        for (pool_size, expected) in [(1, (1, 1)), (2, (1, 1)), (3, (2, 1)), (4, (2, 2)), (5, (3, 2))] {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(pool_size).build().unwrap();
            pool.install(|| {
                assert_eq!(join_shares(available_threads, available_threads), expected, "a pool of {pool_size}");
                assert_eq!(available_threads(), pool_size, "the whole pool again afterwards");
                // Inside `on_this_thread` both sides stay on one thread.
                assert_eq!(on_this_thread(|| join_shares(available_threads, available_threads)), (1, 1));
                // Nested: a share of a share.
                let nested = join_shares(|| join_shares(available_threads, available_threads), || 0);
                assert_eq!(nested.0, (expected.0 - expected.0 / 2, (expected.0 / 2).max(1)));
                let unwound = std::panic::catch_unwind(|| join_shares(|| panic!("inside"), available_threads));
                assert!(unwound.is_err());
                assert_eq!(available_threads(), pool_size, "restored after a panic too");
            });
        }
        // Outside a pool: one thread, in sequence.
        assert_eq!(join_shares(available_threads, available_threads), (1, 1));
    }
}
