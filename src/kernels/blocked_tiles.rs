//! One (column block, depth block) step of the blocked product: its MR×NR
//! output tiles, numbered so that threads take contiguous shares, each
//! computed by one microkernel call on packed or in-place panels.

use gemm_common::microkernel::MicroKernelFn;
use gemm_common::pack_operands::pack_lhs;
use gemm_common::simd::Simd;
use gemm_common::Ptr;

use super::Problem;

/// One (column block, depth block) step of the loop.
#[derive(Clone, Copy)]
pub(super) struct Block {
    pub(super) p: Problem,
    pub(super) col_outer: usize,
    pub(super) n_chunk: usize,
    pub(super) n_panels: usize,
    pub(super) depth: usize,
    pub(super) k_chunk: usize,
    pub(super) overwrite: bool,
    pub(super) mc: usize,
    pub(super) lhs_stride: usize,
    pub(super) rhs_stride: usize,
    /// Whether the right-hand block was packed (else it is read in place).
    pub(super) pack_rhs: bool,
    /// The column panel the packed right-hand buffer starts at (0 when the
    /// whole block was packed; a thread that packed only its own columns'
    /// panels starts at its first one).
    pub(super) rhs_first_panel: usize,
    /// Whether whole-vector left panels are read in place instead of packed.
    pub(super) lhs_in_place: bool,
    /// Tile order within a row block (see [`Block::tiles`]).
    pub(super) rows_outer: bool,
    /// This depth block's pre-packed left panels (every row panel, in
    /// order), or null to pack them here.
    pub(super) pre_lhs: *const f32,
}

impl Block {
    /// Number of MR×NR output tiles of this block.
    pub(super) fn jobs<const MR: usize>(&self) -> usize {
        let mut jobs = 0;
        let mut row = 0;
        while row < self.p.m {
            let m_chunk = self.mc.min(self.p.m - row);
            jobs += self.n_panels * m_chunk.div_ceil(MR);
            row += m_chunk;
        }
        jobs
    }

    /// Computes tiles `start..end`, numbered row block by row block, then (with
    /// `rows_outer`) row panel and column panel, else column panel and row panel.
    /// Rows outer, a thread's contiguous share covers whole row panels, so each
    /// left panel is packed by one thread (two at a boundary); columns outer, the
    /// threads share the left panels and split the (larger) right-hand block.
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn tiles<S: Simd, const N: usize, const MR: usize, const NR: usize>(
        &self,
        simd: S,
        ukr: &[[MicroKernelFn<f32>; NR]],
        packed_rhs: *const f32,
        packed_lhs: *mut f32,
        packed: &mut [bool],
        start: usize,
        end: usize,
    ) {
        let p = &self.p;
        let mut job = 0;
        let mut row_outer = 0;
        while row_outer < p.m && job < end {
            let m_chunk = self.mc.min(p.m - row_outer);
            let m_panels = m_chunk.div_ceil(MR);
            let block_jobs = self.n_panels * m_panels;
            if job + block_jobs <= start {
                job += block_jobs;
                row_outer += m_chunk;
                continue;
            }
            packed.fill(false);
            let (outer, inner) = if self.rows_outer { (m_panels, self.n_panels) } else { (self.n_panels, m_panels) };
            for o in 0..outer {
                for q in 0..inner {
                    let (i, j) = if self.rows_outer { (o, q) } else { (q, o) };
                    if job >= start && job < end {
                        // SAFETY: every offset below stays inside the operands
                        // (the caller's contract) or the packed buffers (sized
                        // by `super::drive`); the output tile is this task's alone.
                        unsafe { self.tile::<S, N, MR, NR>(simd, ukr, packed_rhs, packed_lhs, packed, row_outer, m_chunk, i, j) };
                    }
                    job += 1;
                }
            }
            row_outer += m_chunk;
        }
    }

    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    unsafe fn tile<S: Simd, const N: usize, const MR: usize, const NR: usize>(
        &self,
        simd: S,
        ukr: &[[MicroKernelFn<f32>; NR]],
        packed_rhs: *const f32,
        packed_lhs: *mut f32,
        packed: &mut [bool],
        row_outer: usize,
        m_chunk: usize,
        i: usize,
        j: usize,
    ) {
        let p = &self.p;
        let row = row_outer + MR * i;
        let m_inner = MR.min(m_chunk - MR * i);
        let col = self.col_outer + NR * j;
        let n_inner = NR.min(self.n_chunk - NR * j);
        let lhs_at = unsafe { p.lhs.offset(row as isize * p.lhs_rs + self.depth as isize * p.lhs_cs) };
        // In place only for whole vectors: the microkernels load N rows at a time.
        let (lhs_panel, lhs_cs) = if !self.pre_lhs.is_null() {
            // `row` is a multiple of MR: row blocks are whole panels.
            (unsafe { self.pre_lhs.add(row / MR * self.lhs_stride) }, MR as isize)
        } else if self.lhs_in_place && m_inner % N == 0 {
            (lhs_at, p.lhs_cs)
        } else {
            let panel = unsafe { packed_lhs.add(i * self.lhs_stride) };
            if !packed[i] {
                unsafe { pack_lhs::<f32, N, MR, S>(simd, m_inner, self.k_chunk, Ptr(panel), Ptr(lhs_at as *mut f32), p.lhs_cs, p.lhs_rs, self.lhs_stride) };
                packed[i] = true;
            }
            (panel as *const f32, MR as isize)
        };
        let (rhs_panel, rhs_rs, rhs_cs) = if self.pack_rhs {
            (unsafe { packed_rhs.add((j - self.rhs_first_panel) * self.rhs_stride) }, NR as isize, 1)
        } else {
            (unsafe { p.rhs.offset(self.depth as isize * p.rhs_rs + col as isize * p.rhs_cs) }, p.rhs_rs, p.rhs_cs)
        };
        let (alpha, alpha_status) = if self.overwrite { (0.0, 0) } else { (1.0, 1) };
        let kernel = ukr[m_inner.div_ceil(N) - 1][n_inner - 1];
        unsafe {
            kernel(
                m_inner,
                n_inner,
                self.k_chunk,
                p.dst.offset(row as isize * p.dst_rs + col as isize * p.dst_cs),
                lhs_panel,
                rhs_panel,
                p.dst_cs,
                p.dst_rs,
                lhs_cs,
                rhs_rs,
                rhs_cs,
                alpha,
                1.0,
                alpha_status,
                false,
                false,
                false,
                std::ptr::null(),
            );
        }
    }
}
