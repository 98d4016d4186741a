//! The batched passes of a convolution, chunk by chunk, whole chunks per thread.
//!
//! The batch is cut into chunks of samples whose size depends on the shapes
//! alone (see [`Conv::chunk_samples`]). With more than one chunk and more than
//! one thread, each thread takes whole chunks: its im2col, the product, the
//! bias and activation (forward), or the kernel-gradient share, the input
//! gradient's product and col2im (backward), all on that thread while the
//! chunk's patch matrix sits in its own cache. That is one fork per pass and
//! channel group instead of one per product and chunk, and no product is split
//! into slivers too small to share well.
//!
//! Determinism: a chunk's values are computed by the same kernels whichever
//! thread runs them (every kernel gives the same bits on any number of
//! threads, so running one on a single thread changes nothing). The kernel
//! gradient, the one sum across chunks, is summed per *partial group* of
//! consecutive chunks into the group's own buffer, then over the groups in
//! order; groups, like chunks, follow from the shapes alone. So the result is
//! the same on 1, 2 or 64 threads.

use std::marker::PhantomData;
use std::sync::{Mutex, PoisonError};

use rayon::prelude::*;

use crate::activation::{add_bias, Activation};
use crate::error::{checked_size, try_grow, Result};
use crate::kernels::gemm::{matmul, Op};
use crate::kernels::reduce::col_sums;
use crate::kernels::{available_threads, on_this_thread};
use crate::layers::grid::{add_into, col2im, im2col, DataFormat};
use crate::tensor::{MatMut, MatRef};

use super::winograd::{Winograd, POINTS};
use super::Conv;

/// The most partial groups a kernel gradient is summed in (see the module
/// docs): enough tasks for every thread of a large machine to take some, few
/// enough that adding up the groups' buffers stays a small pass.
pub(super) const MAX_PARTIALS: usize = 16;

/// One thread's scratch for the chunks it runs.
#[derive(Debug, Default)]
pub(super) struct ChunkWs {
    /// im2col of one chunk and one group, `[chunk · positions, kg]`.
    cols: Vec<f32>,
    /// The input gradient's columns of one chunk, shaped as `cols` (before col2im).
    dcols: Vec<f32>,
    /// One group's output (or output-gradient) columns of one chunk,
    /// `[chunk · positions, filters/groups]` (groups > 1).
    pack: Vec<f32>,
    /// One sample zero-padded, for the direct kernels (`conv_direct`).
    padded: Vec<f32>,
    /// Winograd's transformed inputs, its products (or transformed output
    /// gradients), and one tile's values (`conv_winograd`).
    wv: Vec<f32>,
    wm: Vec<f32>,
    wtile: Vec<f32>,
}

/// A workspace per pool thread, each behind its own (never contended) lock:
/// a task locks the slot of the thread it runs on. Nothing inside a task
/// enters the pool ([`on_this_thread`]), so a thread never runs a second task
/// while it holds its slot.
#[derive(Debug, Default)]
pub(super) struct Slots(Vec<Mutex<ChunkWs>>);

/// Clones start empty: the slots are scratch, refilled by every pass.
impl Clone for Slots {
    fn clone(&self) -> Self {
        Slots::default()
    }
}

/// `v` grown fallibly to at least `len` values (never shrunk).
fn at_least(v: &mut Vec<f32>, len: usize, what: &str) -> Result<()> {
    if v.len() < len {
        try_grow(v, len, what)?;
        v.resize(len, 0.0);
    }
    Ok(())
}

impl Slots {
    /// At least `threads` workspaces of at least these sizes (growing
    /// fallibly); `wino` holds the sizes of the Winograd scratch.
    fn reserve(&mut self, threads: usize, cols: usize, dcols: usize, pack: usize, padded: usize, wino: [usize; 3]) -> Result<()> {
        while self.0.len() < threads.max(1) {
            self.0.push(Mutex::new(ChunkWs::default()));
        }
        for slot in &mut self.0 {
            let ws = slot.get_mut().unwrap_or_else(PoisonError::into_inner);
            at_least(&mut ws.cols, cols, "the Conv im2col workspace")?;
            at_least(&mut ws.dcols, dcols, "the Conv input-gradient workspace")?;
            at_least(&mut ws.pack, pack, "the Conv group workspace")?;
            at_least(&mut ws.padded, padded, "the Conv padded-sample workspace")?;
            at_least(&mut ws.wv, wino[0], "the Conv Winograd input workspace")?;
            at_least(&mut ws.wm, wino[1], "the Conv Winograd product workspace")?;
            at_least(&mut ws.wtile, wino[2], "the Conv Winograd tile workspace")?;
        }
        Ok(())
    }

    /// Runs `f(task, workspace)` for tasks `0..tasks`: on the pool, whole
    /// tasks per thread, when `parallel`; else in order on the calling thread,
    /// whose kernels may then use the pool themselves.
    fn run<F>(&self, parallel: bool, tasks: usize, f: F) -> Result<()>
    where
        F: Fn(usize, &mut ChunkWs) -> Result<()> + Sync,
    {
        if !parallel {
            let mut ws = self.0[0].lock().unwrap_or_else(PoisonError::into_inner);
            return (0..tasks).try_for_each(|t| f(t, &mut ws));
        }
        (0..tasks).into_par_iter().try_for_each(|t| {
            let slot = rayon::current_thread_index().unwrap_or(0) % self.0.len();
            let mut ws = self.0[slot].lock().unwrap_or_else(PoisonError::into_inner);
            on_this_thread(|| f(t, &mut ws))
        })
    }
}

/// A mutable slice that parallel tasks write in parts that never overlap
/// (each task its own chunk's rows): the parts' bounds come from the plan,
/// which no borrow checker can see, so each task takes its part through
/// [`Disjoint::part`], whose caller promises the ranges are disjoint.
struct Disjoint<'a> {
    ptr: *mut f32,
    len: usize,
    _slice: PhantomData<&'a mut [f32]>,
}

// SAFETY: a `Disjoint` is a `&mut [f32]` whose parts go to different threads;
// `part`'s contract keeps them from overlapping.
unsafe impl Send for Disjoint<'_> {}
unsafe impl Sync for Disjoint<'_> {}

impl<'a> Disjoint<'a> {
    fn new(s: &'a mut [f32]) -> Self {
        Disjoint { ptr: s.as_mut_ptr(), len: s.len(), _slice: PhantomData }
    }

    /// Values `start..end` (checked against the slice's length).
    ///
    /// # Safety
    /// No two parts in use at the same time may overlap.
    #[allow(clippy::mut_from_ref)]
    unsafe fn part(&self, start: usize, end: usize) -> &'a mut [f32] {
        assert!(start <= end && end <= self.len, "a part {start}..{end} outside {} values", self.len);
        // SAFETY: inside the slice (checked above), which outlives 'a; not
        // aliased, by the caller's promise.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(start), end - start) }
    }
}

/// How a batch of `n` samples is cut: chunks of `step` samples (the last may
/// be shorter), and partial groups of `per_group` consecutive chunks.
#[derive(Clone, Copy, Debug)]
pub(super) struct Plan {
    pub step: usize,
    pub chunks: usize,
    pub per_group: usize,
    pub groups: usize,
}

impl Plan {
    pub(super) fn new(n: usize, step: usize) -> Plan {
        let chunks = n.div_ceil(step.max(1)).max(1);
        let per_group = chunks.div_ceil(MAX_PARTIALS);
        Plan { step: step.max(1), chunks, per_group, groups: chunks.div_ceil(per_group) }
    }
}

impl Conv {
    /// Grows every workspace of the chunked passes for `n` samples (and
    /// the input gradient's when `dx`); returns the batch's plan.
    pub(super) fn reserve_chunks(&mut self, n: usize, dx: bool) -> Result<Plan> {
        let (p, kg, fg) = (self.out_positions(), self.kg, self.filters / self.groups);
        let plan = Plan::new(n, self.chunk_samples(n));
        let rows = checked_size(plan.step.min(n), p, "Conv chunk rows")?;
        let cols = checked_size(rows, kg, "Conv im2col")?;
        let pack = if self.groups > 1 { checked_size(rows, fg, "Conv group output")? } else { 0 };
        // The direct kernels need no patch matrix, only one padded sample;
        // Winograd's, one block of transformed tiles (sizes checked at build).
        let (im2col_len, padded) = match &self.direct {
            Some(d) => (0, d.padded_len()),
            None if self.winograd.is_some() => (0, 0),
            None => (cols, 0),
        };
        let wino = match &self.winograd {
            Some(_) => {
                let wide = self.grid.c.max(self.filters);
                // block_len(1) · wide, checked, is at least block_len(wide).
                let block = checked_size(Winograd::block_len(1), wide, "Conv Winograd block")?;
                [block, block, POINTS * wide]
            }
            None => [0; 3],
        };
        let dcols = if dx && self.winograd.is_none() { cols } else { 0 };
        self.slots.reserve(available_threads(), im2col_len, dcols, pack, padded, wino)?;
        Ok(plan)
    }

    /// The forward pass over `x` into `self.z` (and `self.a` unless
    /// [`Conv::output_in_z`]), chunk by chunk.
    /// `bias` is `None` without one.
    pub(super) fn forward_chunks(&mut self, x: MatRef<'_>, weight: &[f32], bias: Option<&[f32]>, plan: Plan) -> Result<()> {
        let (g, fg, cg, kg, f, p) = (self.groups, self.filters / self.groups, self.grid.c / self.groups, self.kg, self.filters, self.out_positions());
        let in_len = self.grid.h * self.grid.w * self.grid.c;
        let parallel = plan.chunks > 1 && available_threads() > 1;
        if let Some(w) = self.winograd.as_deref_mut() {
            w.transform_filters(weight);
        }
        let (grid, win, act, rows, direct, wino) = (self.grid, self.win, self.act, x.rows * p, self.direct.as_deref(), self.winograd.as_deref());
        let bias = bias.unwrap_or(&self.zero_bias);
        for gi in 0..g {
            if g > 1 {
                Self::gather(weight, f, gi, fg, &mut self.wpack);
            }
            let wg: &[f32] = if g == 1 { weight } else { &self.wpack };
            let last = gi + 1 == g;
            let z = Disjoint::new(&mut self.z.as_mut_slice()[..rows * f]);
            let in_z = act.output_gives_derivative();
            let a = (!in_z).then(|| Disjoint::new(&mut self.a.as_mut_slice()[..rows * f]));
            self.slots.run(parallel, plan.chunks, |c, ws| {
                let (n0, n1) = (c * plan.step, ((c + 1) * plan.step).min(x.rows));
                let cr = (n1 - n0) * p;
                // SAFETY: chunk c alone touches rows n0..n1.
                let z = unsafe { z.part(n0 * p * f, n1 * p * f) };
                if let Some(d) = direct {
                    // One group (see Direct::plan): each sample summed, biased and activated while cached.
                    for s in 0..n1 - n0 {
                        d.pad(&grid, &x.data[(n0 + s) * in_len..][..in_len], &mut ws.padded);
                        let zs = &mut z[s * p * f..(s + 1) * p * f];
                        d.forward(&ws.padded, wg, f, zs);
                        let at = (n0 + s) * p * f;
                        match &a {
                            None if act == Activation::Identity => add_bias(zs, bias),
                            None => act.add_bias_activate_in_place(zs, bias),
                            // SAFETY: as z.
                            Some(a) => act.add_bias_activate(zs, bias, unsafe { a.part(at, at + p * f) }),
                        }
                    }
                    return Ok(());
                }
                if let Some(w) = wino {
                    // One group (see Winograd::plan): bias and activation follow below.
                    Winograd::conv_tiles(&w.fwd, &w.u, &x.data[n0 * in_len..n1 * in_len], n1 - n0, &mut ws.wv, &mut ws.wm, &mut ws.wtile, z)?;
                } else if g == 1 {
                    let cols = &mut ws.cols[..cr * kg];
                    im2col(&x.data[n0 * in_len..n1 * in_len], &grid, &win, gi * cg, cg, cols);
                    let cols = MatRef { rows: cr, cols: kg, data: cols };
                    matmul(cols, Op::N, MatRef { rows: kg, cols: f, data: wg }, Op::N, MatMut { rows: cr, cols: f, data: z }, false)?;
                } else {
                    let cols = &mut ws.cols[..cr * kg];
                    im2col(&x.data[n0 * in_len..n1 * in_len], &grid, &win, gi * cg, cg, cols);
                    let cols = MatRef { rows: cr, cols: kg, data: cols };
                    let pack = &mut ws.pack[..cr * fg];
                    matmul(cols, Op::N, MatRef { rows: kg, cols: fg, data: wg }, Op::N, MatMut { rows: cr, cols: fg, data: pack }, false)?;
                    Self::scatter(z, f, gi, fg, pack);
                }
                if last {
                    match &a {
                        None if act == Activation::Identity => add_bias(z, bias),
                        None => act.add_bias_activate_in_place(z, bias),
                        // SAFETY: as z.
                        Some(a) => act.add_bias_activate(z, bias, unsafe { a.part(n0 * p * f, n1 * p * f) }),
                    }
                }
                Ok(())
            })?;
        }
        Ok(())
    }

    /// From `dz` (channels_last, the output gradient): `dz ⊙ f'(z)` in
    /// place, the bias gradient (into `gb` when there is a bias), the kernel
    /// gradient (into `gw`, the layer's weight gradient) and, when `dx` is
    /// given, the input gradient, chunk by chunk. The derivative and the bias
    /// sums run per partial group, on rows the group's products read next
    /// while they are cached; the bias sums, like the kernel's, are summed per
    /// group, then over the groups in order.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn backward_chunks(&mut self, x: MatRef<'_>, weight: &[f32], dz: &mut [f32], gw: &mut [f32], gb: Option<&mut [f32]>, dx: Option<&mut [f32]>, plan: Plan) -> Result<()> {
        let (g, fg, cg, kg, f, p) = (self.groups, self.filters / self.groups, self.grid.c / self.groups, self.kg, self.filters, self.out_positions());
        let in_len = self.grid.h * self.grid.w * self.grid.c;
        let part = self.partial_len();
        if let (Some(w), true) = (self.winograd.as_deref_mut(), dx.is_some()) {
            w.transform_flipped(weight);
        }
        let (grid, win, act, transposed, samples, direct) = (self.grid, self.win, self.act, self.transposed_kernel_gradient(), x.rows, self.direct.as_deref());
        let wino = self.winograd.as_deref();
        let parallel = plan.groups > 1 && available_threads() > 1;
        let with_bias = gb.is_some();
        // The output stands in for the pre-activation when it alone is kept.
        let z = self.z.as_slice();
        let a = if act.output_gives_derivative() { z } else { self.a.as_slice() };
        let dz = Disjoint::new(&mut dz[..samples * p * f]);
        let dx = dx.map(|d| Disjoint::new(&mut d[..samples * in_len]));
        for gi in 0..g {
            if g > 1 {
                Self::gather(weight, f, gi, fg, &mut self.wpack);
            }
            let wg: &[f32] = if g == 1 { weight } else { &self.wpack };
            let partials = Disjoint::new(&mut self.partials[..plan.groups * part]);
            let bias_sums = Disjoint::new(&mut self.bias_partials[..if with_bias { plan.groups * f } else { 0 }]);
            self.slots.run(parallel, plan.groups, |t, ws| {
                let first = t * plan.per_group;
                let (g0, g1) = (first * plan.step, ((first + plan.per_group) * plan.step).min(samples));
                // SAFETY: group t alone touches its samples g0..g1, its kernel and bias sums.
                let (dzg, wgrad) = unsafe { (dz.part(g0 * p * f, g1 * p * f), partials.part(t * part, (t + 1) * part)) };
                // The direct kernels take the derivative and the bias sums sample by sample, below.
                if gi == 0 && direct.is_none() {
                    if act != Activation::Identity {
                        act.backward(&z[g0 * p * f..g1 * p * f], &a[g0 * p * f..g1 * p * f], dzg);
                    }
                    if with_bias {
                        col_sums(dzg, unsafe { bias_sums.part(t * f, (t + 1) * f) });
                    }
                }
                let mut dxg = dx.as_ref().map(|d| unsafe { d.part(g0 * in_len, g1 * in_len) });
                // The direct kernels' bias sums, as col_sums would have written them above.
                let mut bsum = (direct.is_some() && with_bias).then(|| unsafe { bias_sums.part(t * f, (t + 1) * f) });
                for c in first..(first + plan.per_group).min(plan.chunks) {
                    let (n0, n1) = (c * plan.step, ((c + 1) * plan.step).min(samples));
                    let cr = (n1 - n0) * p;
                    if let Some(d) = direct {
                        // One group: per sample, while its rows are cached, the derivative, then
                        // the bias and kernel gradients summed row by row from the padded sample.
                        if c == first {
                            wgrad.fill(0.0);
                            if let Some(b) = bsum.as_deref_mut() {
                                b.fill(0.0);
                            }
                        }
                        for s in n0..n1 {
                            let (at, rows) = (s * p * f..(s + 1) * p * f, (s - g0) * p * f..(s - g0 + 1) * p * f);
                            if act != Activation::Identity {
                                act.backward(&z[at.clone()], &a[at], &mut dzg[rows.clone()]);
                            }
                            d.pad(&grid, &x.data[s * in_len..][..in_len], &mut ws.padded);
                            d.kernel_grad(&ws.padded, &dzg[rows], f, wgrad, bsum.as_deref_mut());
                        }
                    }
                    let dzc = &dzg[(n0 - g0) * p * f..(n1 - g0) * p * f];
                    let dzc: &[f32] = if g == 1 {
                        dzc
                    } else {
                        Self::gather(dzc, f, gi, fg, &mut ws.pack[..cr * fg]);
                        &ws.pack[..cr * fg]
                    };
                    if let Some(w) = wino {
                        let xc = &x.data[n0 * in_len..n1 * in_len];
                        Winograd::kernel_grad_tiles(&w.fwd, xc, dzc, n1 - n0, &mut ws.wv, &mut ws.wm, &mut ws.wtile, wgrad, c > first)?;
                    } else if direct.is_none() {
                        let cols = &mut ws.cols[..cr * kg];
                        im2col(&x.data[n0 * in_len..n1 * in_len], &grid, &win, gi * cg, cg, cols);
                        let cols = MatRef { rows: cr, cols: kg, data: cols };
                        let dzc = MatRef { rows: cr, cols: fg, data: dzc };
                        if transposed {
                            matmul(dzc, Op::T, cols, Op::N, MatMut { rows: fg, cols: kg, data: wgrad }, c > first)?;
                        } else {
                            matmul(cols, Op::T, dzc, Op::N, MatMut { rows: kg, cols: fg, data: wgrad }, c > first)?;
                        }
                    }
                    let dzc = MatRef { rows: cr, cols: fg, data: dzc };
                    if let Some(dxg) = dxg.as_deref_mut() {
                        let dxc = &mut dxg[(n0 - g0) * in_len..(n1 - g0) * in_len];
                        if let Some(w) = wino {
                            // Every input position is some tile's output: written, not added.
                            Winograd::conv_tiles(&w.bwd, &w.ut, dzc.data, n1 - n0, &mut ws.wv, &mut ws.wm, &mut ws.wtile, dxc)?;
                            continue;
                        }
                        let dcols = &mut ws.dcols[..cr * kg];
                        matmul(dzc, Op::N, MatRef { rows: kg, cols: fg, data: wg }, Op::T, MatMut { rows: cr, cols: kg, data: dcols }, false)?;
                        if gi == 0 {
                            dxc.fill(0.0);
                        }
                        col2im(dcols, &grid, &win, gi * cg, cg, dxc);
                    }
                }
                Ok(())
            })?;
            // The groups' sums, added in group order (see the module docs).
            let (sum, rest) = self.partials.split_at_mut(part);
            for other in rest[..(plan.groups - 1) * part].chunks_exact(part) {
                add_into(sum, other);
            }
            if let Some(w) = wino {
                w.kernel_grad_from(sum, gw);
            } else if transposed {
                // The small `[fg, kg]` sum transposed into the group's columns.
                for (j, row) in sum.chunks_exact(kg).enumerate() {
                    for (i, &v) in row.iter().enumerate() {
                        gw[i * f + gi * fg + j] = v;
                    }
                }
            } else {
                Self::scatter(gw, f, gi, fg, sum);
            }
        }
        if let Some(gb) = gb {
            gb.copy_from_slice(&self.bias_partials[..f]);
            for other in self.bias_partials[f..plan.groups * f].chunks_exact(f) {
                add_into(gb, other);
            }
        }
        Ok(())
    }

    /// Whether the output is stored channels_first (and so transposed).
    pub(super) fn channels_first(&self) -> bool {
        self.grid.format == DataFormat::ChannelsFirst
    }
}
