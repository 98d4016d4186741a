//! Packing buffers of the blocked product: the per-thread scratch that only
//! grows (so a product of a shape seen before allocates nothing) and a left
//! operand packed once for a run of products that share it ([`PackedLhs`]).

use std::cell::RefCell;

use gemm_common::cache::kernel_params;
use gemm_common::pack_operands::pack_lhs;
use gemm_common::simd::Simd;
use gemm_common::Ptr;

thread_local! {
    /// Packed right-hand blocks, owned by the thread that calls the product.
    static RHS_PACK: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    /// Packed left-hand panels and their "already packed" flags, per worker.
    static LHS_PACK: RefCell<(Vec<f32>, Vec<bool>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// Cache-line alignment of the packed panels.
const ALIGN_FLOATS: usize = 16;

/// A 64-byte-aligned pointer to at least `len` floats of `buf`, growing it (the
/// only allocation, made once per new largest size) when it is too short.
fn aligned(buf: &mut Vec<f32>, len: usize) -> *mut f32 {
    let need = len + ALIGN_FLOATS;
    if buf.len() < need {
        *buf = vec![0.0; need];
    }
    let ptr = buf.as_mut_ptr();
    // SAFETY: the offset is below ALIGN_FLOATS, and `need` leaves that much room.
    unsafe { ptr.add(ptr.align_offset(ALIGN_FLOATS * 4)) }
}

/// A left operand packed once into the microkernels' panel layout, for a run
/// of products that share it (a recurrent layer's `W_hh` across its time
/// steps). Packing only copies values, so a product reading these panels gives
/// exactly the bits of one that packs (or reads in place) as it goes.
///
/// Layout: depth block `d` (of `kc`), then row panel `g` (of `mr` rows), each
/// panel `kc·mr` floats, starting `align` floats into `buf`.
#[derive(Clone, Debug, Default)]
pub(crate) struct PackedLhs {
    buf: Vec<f32>,
    align: usize,
    /// (m, k, kc, mr) the panels were packed for; `mr == 0` until packed.
    m: usize,
    k: usize,
    kc: usize,
    mr: usize,
}

impl PackedLhs {
    /// The first panel and the number of row panels, when these panels are the
    /// ones a product of `m`×`k` left operand with depth blocks `kc` and panels
    /// of `mr` rows reads; None otherwise.
    pub(super) fn panels_for(&self, m: usize, k: usize, kc: usize, mr: usize) -> Option<(*const f32, usize)> {
        if !(self.mr == mr && self.m == m && self.k == k && self.kc == kc) {
            return None;
        }
        // SAFETY: `align` was taken inside the buffer when it was packed.
        Some((unsafe { self.buf.as_ptr().add(self.align) }, self.m.div_ceil(self.mr)))
    }

    /// Packs the `m`×`k` operand at `lhs` (strides `rs`, `cs`), reusing the
    /// buffer; `false` when this CPU has none of the microkernels (nothing is
    /// packed then, and products run as without it).
    ///
    /// # Errors
    /// `Error::Memory` when the buffer must grow and cannot.
    ///
    /// # Safety
    /// `lhs`, `rs` and `cs` must describe a valid `m`×`k` matrix.
    pub(crate) unsafe fn pack(&mut self, m: usize, k: usize, lhs: *const f32, rs: isize, cs: isize) -> crate::error::Result<bool> {
        self.mr = 0;
        #[cfg(target_arch = "x86_64")]
        {
            use gemm_common::simd::{MixedSimd, V3, V4};
            if let Some(simd) = <V4 as MixedSimd<f32, f32, f32, f32>>::try_new() {
                use gemm_f32::microkernel::avx512f::f32 as ukr;
                // SAFETY: forwarded from the caller.
                unsafe { self.pack_for::<_, 16, { 16 * ukr::MR_DIV_N }, { ukr::NR }>(simd, m, k, lhs, rs, cs)? };
                return Ok(true);
            }
            if let Some(simd) = <V3 as MixedSimd<f32, f32, f32, f32>>::try_new() {
                use gemm_f32::microkernel::fma::f32 as ukr;
                // SAFETY: forwarded from the caller.
                unsafe { self.pack_for::<_, 8, { 8 * ukr::MR_DIV_N }, { ukr::NR }>(simd, m, k, lhs, rs, cs)? };
                return Ok(true);
            }
        }
        let _ = (m, k, lhs, rs, cs);
        Ok(false)
    }

    unsafe fn pack_for<S: Simd, const N: usize, const MR: usize, const NR: usize>(
        &mut self,
        simd: S,
        m: usize,
        k: usize,
        lhs: *const f32,
        rs: isize,
        cs: isize,
    ) -> crate::error::Result<()> {
        if m == 0 || k == 0 {
            return Ok(());
        }
        // The same depth blocking `super::drive` derives (it depends on `k` alone; a
        // product whose blocking differs ignores these panels).
        let kc = kernel_params(m, NR, k, MR, NR, std::mem::size_of::<f32>()).kc.clamp(1, k);
        let panels = m.div_ceil(MR);
        let stride = kc * MR;
        let need = crate::error::checked_size(k.div_ceil(kc) * panels, stride, "a packed matrix operand")? + ALIGN_FLOATS;
        if self.buf.len() < need {
            crate::error::try_grow(&mut self.buf, need, "a packed matrix operand")?;
            self.buf.resize(need, 0.0);
        }
        let base = self.buf.as_mut_ptr();
        self.align = base.align_offset(ALIGN_FLOATS * 4);
        // SAFETY: `align < ALIGN_FLOATS`, and `need` leaves that much room.
        let base = unsafe { base.add(self.align) };
        let (mut depth, mut block) = (0, 0);
        while depth < k {
            let k_chunk = kc.min(k - depth);
            for g in 0..panels {
                let row = g * MR;
                // SAFETY: the panel lies inside the buffer sized above, and the
                // source block inside the operand (the caller's contract).
                unsafe {
                    let src = lhs.offset(row as isize * rs + depth as isize * cs);
                    let dst = base.add((block * panels + g) * stride);
                    pack_lhs::<f32, N, MR, S>(simd, MR.min(m - row), k_chunk, Ptr(dst), Ptr(src as *mut f32), cs, rs, stride);
                }
            }
            depth += k_chunk;
            block += 1;
        }
        (self.m, self.k, self.kc, self.mr) = (m, k, kc, MR);
        Ok(())
    }
}

/// Runs `f` with a thread-local buffer, or a fresh one when this thread is
/// already using its own (a product started from inside another product's rayon
/// task): the numbers are the same either way, only the allocation differs.
pub(super) fn with_rhs_buffer<R>(len: usize, f: impl FnOnce(*mut f32) -> R) -> R {
    RHS_PACK.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => f(aligned(&mut buf, len)),
        Err(_) => f(aligned(&mut Vec::new(), len)),
    })
}

pub(super) fn with_lhs_buffer<R>(len: usize, panels: usize, f: impl FnOnce(*mut f32, &mut [bool]) -> R) -> R {
    LHS_PACK.with(|cell| match cell.try_borrow_mut() {
        Ok(mut scratch) => {
            let (buf, flags) = &mut *scratch;
            if flags.len() < panels {
                flags.resize(panels, false);
            }
            f(aligned(buf, len), &mut flags[..panels])
        }
        Err(_) => f(aligned(&mut Vec::new(), len), &mut vec![false; panels]),
    })
}
