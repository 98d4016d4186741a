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

/// Threads available to the caller: the pool's size inside a rayon pool, else
/// one. Work started outside a pool stays on the calling thread (small calls such
/// as a one-sample `predict` would pay more to wake the pool than they compute).
pub fn available_threads() -> usize {
    if rayon::current_thread_index().is_some() {
        rayon::current_num_threads()
    } else {
        1
    }
}

/// Whether an elementwise loop over `len` values should use the pool.
pub fn parallel_for(len: usize) -> bool {
    len >= PAR_THRESHOLD && available_threads() > 1
}
pub mod softmax;
