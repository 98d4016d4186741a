//! The blocked matrix-product loop around the `gemm` crate's register
//! microkernels, with packing buffers kept per thread and reused.
//!
//! `gemm::gemm` allocates its packing buffers (and a flag vector) on every call,
//! so a training step made a few heap allocations per product. This loop does the
//! same blocking (the crate's own cache-derived `kc`/`mc`/`nc`, its packing
//! routines and microkernels) but packs into thread-local buffers that only grow:
//! once a shape has been seen, a product allocates nothing.
//!
//! Determinism: the depth blocking `kc` depends only on the shape, every output
//! tile is summed over the depth blocks in order by one microkernel call each, and
//! threads only split the output tiles; so each output element is computed by the
//! same instructions in the same order whatever the thread count.
//!
//! The problem is stated column-major, as the microkernels want it: `dst` is
//! m×n, with unit row stride in the common case (the microkernels then store
//! whole vectors; any other stride goes through their scalar store path);
//! `lhs` m×k and `rhs` k×n have arbitrary strides.

use gemm_common::cache::{kernel_params, KernelParams};
use gemm_common::microkernel::MicroKernelFn;
use gemm_common::pack_operands::pack_rhs;
use gemm_common::simd::Simd;
use gemm_common::Ptr;
use rayon::prelude::*;

#[path = "blocked_pack.rs"]
mod pack;
#[path = "blocked_tiles.rs"]
mod tiles;

pub(crate) use pack::PackedLhs;
use pack::{with_lhs_buffer, with_rhs_buffer};
use tiles::Block;

/// One column-major product `dst = lhs·rhs` (or `dst += lhs·rhs`).
#[derive(Clone, Copy)]
pub(crate) struct Problem {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub dst: *mut f32,
    pub dst_rs: isize,
    pub dst_cs: isize,
    pub lhs: *const f32,
    pub lhs_rs: isize,
    pub lhs_cs: isize,
    pub rhs: *const f32,
    pub rhs_rs: isize,
    pub rhs_cs: isize,
    pub accumulate: bool,
}

/// Raw pointers crossing into rayon tasks; every task writes disjoint output tiles
/// and reads shared, unchanging packed data while the caller waits.
#[derive(Clone, Copy)]
struct Shared<T>(T);
// SAFETY: see the type's documentation: disjoint writes, read-only sharing, and
// the calling thread outlives every task because rayon's `for_each` joins them.
unsafe impl<T> Send for Shared<T> {}
unsafe impl<T> Sync for Shared<T> {}

impl<T: Copy> Shared<T> {
    /// The wrapped value (a method, so closures capture the whole wrapper).
    fn get(&self) -> T {
        self.0
    }
}

/// Column blocks at most this many microkernel panels wide read a column-major
/// left operand in place (the `gemm` crate's single-thread threshold).
const LHS_PACK_PANELS: usize = 8;

/// Products of at most this depth walk their tiles columns outer (see
/// `drive`): the input gradient `dz·Wᵀ` of a 10-unit layer (depth 10, into
/// 512×1024 outputs) took 479 µs rows outer and 233 µs columns outer on one
/// thread, 312 and 137 µs on two (`benches/profile_step.py`). Only the order
/// of the tiles changes, so the bits do not.
const STORE_BOUND_DEPTH: usize = 16;

/// Whether this CPU has microkernels [`run`] can use (AVX-512 or AVX2 + FMA).
pub(crate) fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use gemm_common::simd::{MixedSimd, V3, V4};
        if <V4 as MixedSimd<f32, f32, f32, f32>>::try_new().is_some() || <V3 as MixedSimd<f32, f32, f32, f32>>::try_new().is_some() {
            return true;
        }
    }
    false
}

/// Computes `p` with the best microkernels this CPU has; `false` when it has none
/// of them (the caller then falls back to `gemm::gemm`). With `pre`, packed
/// from `p`'s left operand, its panels are read instead of packing again.
///
/// # Safety
/// The pointers and strides of `p` must describe valid matrices of its sizes,
/// `dst` must not overlap `lhs` or `rhs`, and `pre` (when given) must hold the
/// current values of `p.lhs`.
pub(crate) unsafe fn run(p: Problem, threads: usize, pre: Option<&PackedLhs>) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use gemm_common::simd::{MixedSimd, V3, V4};
        if let Some(simd) = <V4 as MixedSimd<f32, f32, f32, f32>>::try_new() {
            use gemm_f32::microkernel::avx512f::f32 as ukr;
            // SAFETY: forwarded from the caller; `simd` proves AVX-512 is present.
            unsafe { drive::<_, 16, { 16 * ukr::MR_DIV_N }, { ukr::NR }>(simd, &ukr::UKR, p, threads, pre) };
            return true;
        }
        if let Some(simd) = <V3 as MixedSimd<f32, f32, f32, f32>>::try_new() {
            use gemm_f32::microkernel::fma::f32 as ukr;
            // SAFETY: as above, with AVX2 and FMA present.
            unsafe { drive::<_, 8, { 8 * ukr::MR_DIV_N }, { ukr::NR }>(simd, &ukr::UKR, p, threads, pre) };
            return true;
        }
    }
    let _ = (p, threads, pre);
    false
}

/// The blocking loop: columns in blocks of `nc`, depth in blocks of `kc`, then
/// MR×NR tiles split between threads in fixed contiguous ranges, each thread
/// packing the left panels it needs. When the right-hand block is packed and
/// the threads split its columns, each packs its own columns' panels; when
/// they split its rows, it is packed once per block by the calling thread and
/// shared, and the threads meet after each block. Otherwise (and in the first
/// case) they fork once and walk all blocks on their own.
unsafe fn drive<S: Simd, const N: usize, const MR: usize, const NR: usize>(
    simd: S,
    ukr: &[[MicroKernelFn<f32>; NR]],
    p: Problem,
    threads: usize,
    pre: Option<&PackedLhs>,
) {
    let KernelParams { kc, mc, nc } = blocking(p.m, p.n, p.k, MR, NR);
    let kc = kc.clamp(1, p.k);
    // Pre-packed left panels (null: pack as we go), used only when they were
    // packed with this very blocking.
    let (pre_lhs, pre_panels) = match pre.and_then(|pk| pk.panels_for(p.m, p.k, kc, MR)) {
        Some((panels, count)) => (Shared(panels), count),
        None => (Shared(std::ptr::null()), 0),
    };
    let mc = (mc / MR).max(1) * MR;
    // Bounded even when the crate leaves `nc` open, so the packed right-hand
    // block (kc·nc floats, kept per thread) never grows with the problem.
    let nc = if nc == 0 { 128 * NR } else { nc }.min(p.n).div_ceil(NR) * NR;
    let rhs_stride = kc * NR;
    let lhs_stride = kc * MR;
    let pack_rhs_blocks = (p.rhs_rs != 1 && p.m > 2 * MR) || p.m > 128 * MR;
    // The step of the loop at (column block, depth block).
    let block_at = |col_outer: usize, depth: usize, depth_block: usize| {
        let n_chunk = nc.min(p.n - col_outer);
        // The first depth block overwrites dst unless accumulating.
        let overwrite = depth == 0 && !p.accumulate;
        // A column-major left operand is read in place for narrow blocks,
        // where packing it would cost more than the product reuses it.
        let lhs_in_place = p.lhs_rs == 1 && n_chunk <= LHS_PACK_PANELS * NR;
        // Split the threads along the larger operand, so the smaller one
        // is what each of them packs or reads in full. But when the right
        // operand is read in place and the left one is packed as it goes,
        // splitting by rows whenever every thread gets a row panel of its
        // own is cheaper even for wide outputs: each left panel is then
        // packed by one thread (two at a boundary) instead of by all of them,
        // and reading the right operand in full costs no writes.
        let packs_lhs = pre_lhs.get().is_null() && !lhs_in_place;
        //
        // A product of depth at most `STORE_BOUND_DEPTH` always walks columns
        // outer: its time goes to storing the output, not to multiplying, and
        // columns outer a thread stores whole contiguous columns of it, where
        // rows outer it stores 64-row pieces of every column in turn.
        let rows_outer = p.k > STORE_BOUND_DEPTH && (p.m > n_chunk || (packs_lhs && !pack_rhs_blocks && p.m.min(mc).div_ceil(MR) >= threads));
        let pre_block = if pre_lhs.get().is_null() {
            std::ptr::null()
        } else {
            // SAFETY: depth block `depth_block` lies inside the packed buffer.
            unsafe { pre_lhs.get().add(depth_block * pre_panels * lhs_stride) }
        };
        let k_chunk = kc.min(p.k - depth);
        let n_panels = n_chunk.div_ceil(NR);
        Block { p, col_outer, n_chunk, n_panels, depth, k_chunk, overwrite, mc, lhs_stride, rhs_stride, pack_rhs: pack_rhs_blocks, rhs_first_panel: 0, lhs_in_place, rows_outer, pre_lhs: pre_block }
    };
    let rhs_len = rhs_stride * (nc / NR);
    // A packed right operand split by columns (one row block, columns outer:
    // each thread's tiles cover a contiguous run of column panels) needs no
    // sharing: each thread packs the panels of its own columns. Otherwise the
    // calling thread packed every panel alone while the others waited, then
    // all met once per block.
    let first = block_at(0, 0, 0);
    let own_rhs = pack_rhs_blocks && threads > 1 && p.m <= mc && !first.rows_outer;
    if !pack_rhs_blocks || own_rhs {
        // Nothing is shared between the threads' tiles (each packs its own left
        // panels, and its own right panels or none), so they need no barrier
        // between blocks: one fork for the whole product, each thread walking
        // every (column, depth) block over its own tiles. A thread owns the same
        // tiles in every depth block of a column block, so each tile still sums
        // its depth blocks in order, by one thread at a time. Packing only
        // copies values, so who packs a panel changes no bits.
        let parts = threads.min(first.jobs::<MR>()).max(1);
        let work = |tid: usize| {
            with_lhs_buffer(lhs_stride * (mc / MR), mc / MR, |lhs_buf, flags| {
                let mut col_outer = 0;
                while col_outer < p.n {
                    let (mut depth, mut depth_block) = (0, 0);
                    let mut block = block_at(col_outer, 0, 0);
                    let jobs = block.jobs::<MR>();
                    let parts = parts.min(jobs);
                    while depth < p.k {
                        block = block_at(col_outer, depth, depth_block);
                        if tid < parts {
                            let (start, end) = split(jobs, tid, parts);
                            if own_rhs {
                                // Columns outer in one row block (also for a
                                // last, narrower column block): tile `t` is
                                // column panel `t / m_panels`.
                                block.rows_outer = false;
                                let m_panels = p.m.div_ceil(MR);
                                let (j0, j1) = (start / m_panels, (end - 1) / m_panels + 1);
                                block.rhs_first_panel = j0;
                                let cols = (NR * j1).min(block.n_chunk) - NR * j0;
                                with_rhs_buffer(rhs_len, |packed_rhs| {
                                    // SAFETY: the columns lie inside the block
                                    // (so inside rhs, the caller's contract),
                                    // and the buffer holds every panel of one.
                                    unsafe {
                                        pack_rhs::<f32, 1, NR, S>(
                                            simd,
                                            cols,
                                            block.k_chunk,
                                            Ptr(packed_rhs),
                                            Ptr(p.rhs.offset(depth as isize * p.rhs_rs + (col_outer + NR * j0) as isize * p.rhs_cs) as *mut f32),
                                            p.rhs_cs,
                                            p.rhs_rs,
                                            rhs_stride,
                                        );
                                        block.tiles::<S, N, MR, NR>(simd, ukr, packed_rhs, lhs_buf, flags, start, end);
                                    }
                                });
                            } else {
                                // SAFETY: forwarded; tiles [start, end) of this
                                // column block are this task's alone.
                                unsafe { block.tiles::<S, N, MR, NR>(simd, ukr, std::ptr::null(), lhs_buf, flags, start, end) };
                            }
                        }
                        depth += block.k_chunk;
                        depth_block += 1;
                    }
                    col_outer += block.n_chunk;
                }
            });
        };
        if parts == 1 {
            work(0);
        } else {
            let work = Shared(&work);
            (0..parts).into_par_iter().for_each(|tid| crate::profile::piece(|| (work.get())(tid)));
        }
        return;
    }
    with_rhs_buffer(rhs_len, |packed_rhs| {
        let mut col_outer = 0;
        while col_outer < p.n {
            let (mut depth, mut depth_block) = (0, 0);
            let mut block = block_at(col_outer, 0, 0);
            while depth < p.k {
                block = block_at(col_outer, depth, depth_block);
                // Packing the right-hand block pays off only for tall outputs;
                // otherwise the microkernels read it in place (as `gemm` does).
                // SAFETY: the block lies inside rhs (caller's contract) and
                // the buffer holds n_panels panels of rhs_stride floats.
                unsafe {
                    pack_rhs::<f32, 1, NR, S>(
                        simd,
                        block.n_chunk,
                        block.k_chunk,
                        Ptr(packed_rhs),
                        Ptr(p.rhs.offset(depth as isize * p.rhs_rs + col_outer as isize * p.rhs_cs) as *mut f32),
                        p.rhs_cs,
                        p.rhs_rs,
                        rhs_stride,
                    );
                }
                let jobs = block.jobs::<MR>();
                let rhs_ptr = Shared(packed_rhs as *const f32);
                let work = |tid: usize, parts: usize| {
                    let (start, end) = split(jobs, tid, parts);
                    // SAFETY: forwarded; tiles [start, end) are this task's own.
                    with_lhs_buffer(lhs_stride * (mc / MR), mc / MR, |lhs_buf, flags| unsafe {
                        block.tiles::<S, N, MR, NR>(simd, ukr, rhs_ptr.get(), lhs_buf, flags, start, end)
                    });
                };
                let parts = threads.min(jobs).max(1);
                if parts == 1 {
                    work(0, 1);
                } else {
                    let work = Shared(&work);
                    (0..parts).into_par_iter().for_each(|tid| crate::profile::piece(|| (work.get())(tid, parts)));
                }
                depth += block.k_chunk;
                depth_block += 1;
            }
            col_outer += block.n_chunk;
        }
    });
}

/// The `gemm` crate's blocking (`kernel_params`) for an m×n×k product of
/// MR×NR tiles, remembered per thread for the last [`REMEMBERED`] shapes.
/// The shapes repeat: a training step runs the same few, and a convolution
/// the same small products thousands of times per step, where recomputing
/// the blocking each time took ~1% of a CNN's step (`perf`, one thread).
fn blocking(m: usize, n: usize, k: usize, mr: usize, nr: usize) -> KernelParams {
    type Entry = ((usize, usize, usize, usize, usize), KernelParams);
    thread_local! {
        static SEEN: std::cell::RefCell<([Entry; REMEMBERED], usize)> = const { std::cell::RefCell::new(([((0, 0, 0, 0, 0), KernelParams { kc: 0, mc: 0, nc: 0 }); REMEMBERED], 0)) };
    }
    let key = (m, n, k, mr, nr);
    SEEN.with_borrow_mut(|(entries, next)| {
        if let Some(&(_, params)) = entries.iter().find(|e| e.0 == key) {
            return params;
        }
        let params = kernel_params(m, n, k, mr, nr, std::mem::size_of::<f32>());
        entries[*next] = (key, params);
        *next = (*next + 1) % REMEMBERED;
        params
    })
}

/// Shapes whose blocking [`blocking`] remembers per thread.
const REMEMBERED: usize = 8;

/// Contiguous share `[start, end)` of `jobs` for part `tid` of `parts`; the first
/// `jobs % parts` parts take one more.
fn split(jobs: usize, tid: usize, parts: usize) -> (usize, usize) {
    let base = jobs / parts;
    let extra = jobs % parts;
    let start = tid * base + tid.min(extra);
    (start, start + base + usize::from(tid < extra))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The remembered blocking is the crate's, for repeated shapes, for
    /// more shapes than are remembered, and for shapes met again later.
    #[test]
    fn remembered_blocking_matches_the_crates() {
        let shapes: Vec<(usize, usize, usize)> = (1..=3 * REMEMBERED).map(|i| (17 * i, 300 + 5 * i, 7 + 100 * i)).collect();
        for _ in 0..3 {
            for &(m, n, k) in shapes.iter().chain(shapes.iter().take(2)) {
                for (mr, nr) in [(64, 6), (24, 4)] {
                    let want = kernel_params(m, n, k, mr, nr, std::mem::size_of::<f32>());
                    let got = blocking(m, n, k, mr, nr);
                    assert_eq!((got.kc, got.mc, got.nc), (want.kc, want.mc, want.nc), "{m}x{n}x{k}, {mr}x{nr}");
                }
            }
        }
    }
}
