//! The time loops of a recurrent layer's forward and backward passes, each
//! run by shares of the batch that go through all `T` steps on their own.
//!
//! A sample's recurrence never reads another sample: its `h_t` needs only its
//! own `h_{t-1}`, and backward its `dh_{t-1}` only its own gate gradients. So
//! the batch is cut once per pass into contiguous shares of rows, one per
//! thread, and each share runs every step (its rows' product by the packed
//! `W_hh` and its rows' gate pass) with no meeting point between steps: one
//! fork per pass instead of one (or two) per step, and the elementwise gate
//! passes run in parallel too.
//!
//! Determinism: the gate passes compute each value alone, and a product's
//! rows can be split between calls without changing a bit
//! ([`matmul_packed_rows_here`]: the depth blocking depends on the depth
//! alone; shares keep at least two rows, so no share takes the
//! matrix-vector path). So results are the same whatever the number of
//! shares, hence whatever the thread count.
//!
//! Layout (a share's rows are one contiguous piece of every buffer):
//! sample-major by input time for what the weight-gradient GEMMs read:
//! `hs` `[n·T, units]`, which holds at row `i·T + time` the state *entering*
//! the step that reads input `time` (so `h_0 = 0` sits at the first step
//! read), and `d_in` (the gate gradients, see [`Cell::grad_width`]), which
//! holds one backward chunk's steps, `[n·len, grad_width]` (see [`Chunk`]).
//! A sample's states entering a chunk's steps are then one contiguous block
//! of `hs` in the order of its gate gradients, also with `go_backwards`.
//! What only the time loops read is kept step by
//! step within each share (`[T, rows, ·]` in processing order), so the
//! backward pass streams it: `saved` and (LSTM) `cs`, the cell state
//! entering each step; the backward pass must therefore split the batch as
//! its forward pass did (the caller keeps the forward's share count).
//! `last`/`c_last` `[n, units]` hold the final state.

use crate::error::Result;
use crate::kernels::available_threads;
use crate::kernels::gemm::{matmul_packed_rows_here, Op, PackedRhs};
use crate::layers::recurrent_cells::{Cell, RowBack, RowFwd};
use crate::tensor::{MatMut, MatRef};

/// The sizes and options a pass runs with.
#[derive(Clone, Copy, Debug)]
pub(super) struct Dims {
    pub cell: Cell,
    pub steps: usize,
    pub features: usize,
    pub units: usize,
    pub go_backwards: bool,
    pub return_sequences: bool,
}

impl Dims {
    fn gh(&self) -> usize {
        self.cell.gates() * self.units
    }

    /// The input time index of processing step `s`.
    fn time(&self, s: usize) -> usize {
        if self.go_backwards {
            self.steps - 1 - s
        } else {
            s
        }
    }

    /// Whether sample `i` of a share has a real (not padded) step at `time`;
    /// `keep` is the share's rows of the step mask (empty: no mask).
    fn kept(&self, keep: &[bool], i: usize, time: usize) -> bool {
        keep.is_empty() || keep[i * self.steps + time]
    }
}

/// How many shares a forward pass over `n` samples splits into (its backward
/// pass uses the same): one per thread, but
/// at least four rows each (never a one-row product, see the module docs),
/// and a single share for layers too narrow or batches too small to gain.
pub(super) fn shares(n: usize, units: usize) -> usize {
    let threads = available_threads();
    if threads < 2 || units < 8 || n < 8 {
        1
    } else {
        threads.min(n / 4)
    }
}

/// Cuts `v` (`rows` rows of equal width) after row `at`.
pub(super) fn cut<T>(v: &mut [T], rows: usize, at: usize) -> (&mut [T], &mut [T]) {
    v.split_at_mut(v.len() / rows * at)
}

pub(super) fn cut_ref<T>(v: &[T], rows: usize, at: usize) -> (&[T], &[T]) {
    v.split_at(v.len() / rows * at)
}

/// A set of row buffers that can be cut between two shares.
pub(super) trait Rows: Sized + Send {
    fn rows(&self) -> usize;
    fn split(self, at: usize) -> (Self, Self);
}

/// Runs `f` on `parts` contiguous shares of `rows` (sizes differing by at
/// most one), on the pool: halves recursively with `rayon::join`, which
/// allocates nothing.
pub(super) fn in_shares<R: Rows>(rows: R, parts: usize, f: &(impl Fn(R) -> Result<()> + Sync)) -> Result<()> {
    if parts <= 1 {
        return f(rows);
    }
    let left = parts / 2;
    let at = rows.rows() * left / parts;
    let (a, b) = rows.split(at);
    let (ra, rb) = rayon::join(|| in_shares(a, left, f), || in_shares(b, parts - left, f));
    ra.and(rb)
}

/// `h_{t-1}` (row `read`) and the slot of `h_t` (row `write`) of one buffer.
fn row_pair(buf: &mut [f32], read: usize, write: usize, w: usize) -> (&[f32], &mut [f32]) {
    if read < write {
        let (a, b) = buf.split_at_mut(write * w);
        (&a[read * w..(read + 1) * w], &mut b[..w])
    } else {
        let (a, b) = buf.split_at_mut(read * w);
        (&b[..w], &mut a[write * w..(write + 1) * w])
    }
}

/// The forward pass's buffers over some rows (see the module docs; `proj`
/// `[n, G·units]` is one step's pre-activations, `rec` the GRU's product
/// scratch as large, `out` the `return_sequences` output `[n, T·units]` in
/// processing order; unused ones are empty), and its input `x` `[n, T·F]`.
pub(super) struct FwdRows<'a> {
    pub rows: usize,
    pub x: &'a [f32],
    pub proj: &'a mut [f32],
    pub saved: &'a mut [f32],
    pub hs: &'a mut [f32],
    pub cs: &'a mut [f32],
    pub last: &'a mut [f32],
    pub c_last: &'a mut [f32],
    pub rec: &'a mut [f32],
    pub out: &'a mut [f32],
    pub keep: &'a [bool],
}

impl Rows for FwdRows<'_> {
    fn rows(&self) -> usize {
        self.rows
    }

    fn split(self, at: usize) -> (Self, Self) {
        let n = self.rows;
        let (x, x2) = cut_ref(self.x, n, at);
        let (proj, proj2) = cut(self.proj, n, at);
        let (saved, saved2) = cut(self.saved, n, at);
        let (hs, hs2) = cut(self.hs, n, at);
        let (cs, cs2) = cut(self.cs, n, at);
        let (last, last2) = cut(self.last, n, at);
        let (c_last, c_last2) = cut(self.c_last, n, at);
        let (rec, rec2) = cut(self.rec, n, at);
        let (out, out2) = cut(self.out, n, at);
        let (keep, keep2) = cut_ref(self.keep, n, at);
        (
            FwdRows { rows: at, x, proj, saved, hs, cs, last, c_last, rec, out, keep },
            FwdRows { rows: n - at, x: x2, proj: proj2, saved: saved2, hs: hs2, cs: cs2, last: last2, c_last: c_last2, rec: rec2, out: out2, keep: keep2 },
        )
    }
}

/// The weights of a pass: `W_ih` `[G·units, F]`, `W_hh` `[G·units, units]`
/// and the packs of the per-step products' right operands (`W_ihᵀ` and
/// `W_hhᵀ` forward, `W_hh` backward), `b_ih`, `b_hh`.
pub(super) struct Weights<'a> {
    pub w_ih: MatRef<'a>,
    pub w_hh: MatRef<'a>,
    pub ih_pack: &'a PackedRhs,
    pub hh_pack: &'a PackedRhs,
    pub b_ih: &'a [f32],
    pub b_hh: &'a [f32],
}

/// The recurrence forward over all steps: per step the input projection
/// `x_t·W_ihᵀ` of the share's rows (in cache, where the step's product and
/// gate pass then read it), the biases, `h_{t-1}·W_hhᵀ` and the gates.
pub(super) fn forward(d: &Dims, rows: FwdRows<'_>, parts: usize, w: &Weights<'_>) -> Result<()> {
    in_shares(rows, parts, &|r| forward_share(d, r, w))
}

fn forward_share(d: &Dims, r: FwdRows<'_>, w: &Weights<'_>) -> Result<()> {
    let (m, t, f, h, gh) = (r.rows, d.steps, d.features, d.units, d.gh());
    let sw = d.cell.saved_width(h);
    let (direct, lstm) = (d.cell.direct(), d.cell == Cell::Lstm);
    let first = d.time(0);
    for i in 0..m {
        let row = i * t + first;
        r.hs[row * h..(row + 1) * h].fill(0.0);
    }
    if lstm {
        r.cs[..m * h].fill(0.0);
    }
    for s in 0..t {
        let time = d.time(s);
        // `x·W_ihᵀ` of the share's inputs at `time` (sample i's at row i·T + time).
        let xt = MatRef { rows: m, cols: f, data: &r.x[time * f..] };
        matmul_packed_rows_here(xt, t * f, w.w_ih, Op::T, w.ih_pack, MatMut { rows: m, cols: gh, data: &mut *r.proj }, gh, false)?;
        for p in r.proj.chunks_exact_mut(gh) {
            d.cell.add_biases(p, w.b_ih, w.b_hh);
        }
        if s > 0 {
            // From the states entering this step (sample i's at row i·T + time
            // of `hs`), onto the projection (SimpleRNN, LSTM) or apart (GRU).
            let prev = MatRef { rows: m, cols: h, data: &r.hs[time * h..] };
            let (c, accumulate) = if direct { (&mut *r.proj, true) } else { (&mut *r.rec, false) };
            matmul_packed_rows_here(prev, t * h, w.w_hh, Op::T, w.hh_pack, MatMut { rows: m, cols: gh, data: c }, gh, accumulate)?;
        } else if !direct {
            // h_0 = 0: its product is zero.
            r.rec.fill(0.0);
        }
        let next = (s + 1 < t).then(|| d.time(s + 1));
        for i in 0..m {
            let row = i * t + time;
            let step_row = s * m + i;
            let saved = &mut r.saved[step_row * sw..(step_row + 1) * sw];
            let (prev, h_next) = match next {
                Some(nt) => row_pair(&mut *r.hs, row, i * t + nt, h),
                None => (&r.hs[row * h..(row + 1) * h], &mut r.last[i * h..(i + 1) * h]),
            };
            let (c_prev, c_next): (&[f32], &mut [f32]) = match (lstm, next) {
                (false, _) => (&[], &mut []),
                (true, Some(_)) => row_pair(&mut *r.cs, step_row, step_row + m, h),
                (true, None) => (&r.cs[step_row * h..(step_row + 1) * h], &mut r.c_last[i * h..(i + 1) * h]),
            };
            if !d.kept(r.keep, i, time) {
                d.cell.pass_row(prev, c_prev, saved, h_next, c_next);
                continue;
            }
            let rec = if direct { &[][..] } else { &r.rec[i * gh..(i + 1) * gh] };
            let inputs = RowFwd { proj: &r.proj[i * gh..(i + 1) * gh], b_ih: w.b_ih, b_hh: w.b_hh, prev, c_prev };
            d.cell.forward_row(&inputs, rec, saved, h_next, c_next);
        }
    }
    if d.return_sequences {
        // The state after each step, in processing order.
        for i in 0..m {
            for s in 0..t {
                let src = match (s + 1 < t).then(|| d.time(s + 1)) {
                    Some(nt) => &r.hs[(i * t + nt) * h..(i * t + nt + 1) * h],
                    None => &r.last[i * h..(i + 1) * h],
                };
                r.out[(i * t + s) * h..(i * t + s + 1) * h].copy_from_slice(src);
            }
        }
    }
    Ok(())
}

/// The backward pass's buffers over some rows: written `d_in` (the gate
/// gradients, rows of [`Cell::grad_width`]), the state gradients `dh`, `dc`, `carry`
/// `[n, units]` and (when recording) `norm_sq` `[n·T]`; read the forward
/// pass's buffers and the output gradient `dy` (`[n, T·units]` in processing
/// order with `return_sequences`, else `[n, units]`).
pub(super) struct BackRows<'a> {
    pub rows: usize,
    pub d_in: &'a mut [f32],
    pub dh: &'a mut [f32],
    pub dc: &'a mut [f32],
    pub carry: &'a mut [f32],
    pub norm_sq: &'a mut [f64],
    /// GRU: per sample, the recurrent candidate's gate gradients `d_rn`
    /// summed over its steps, `[n, units]` (the candidate's `bias_hh`
    /// gradient once summed over the samples in order; the layer takes the
    /// other bias gradients from its `weight_ih` product).
    pub bias_rn: &'a mut [f32],
    pub saved: &'a [f32],
    pub hs: &'a [f32],
    pub cs: &'a [f32],
    pub last: &'a [f32],
    pub keep: &'a [bool],
    pub dy: &'a [f32],
    /// The input gradient `[n, T·F]` (empty: not wanted), each step's rows
    /// computed while that step's gate gradients are in cache.
    pub dx: &'a mut [f32],
}

impl Rows for BackRows<'_> {
    fn rows(&self) -> usize {
        self.rows
    }

    fn split(self, at: usize) -> (Self, Self) {
        let n = self.rows;
        let (d_in, d_in2) = cut(self.d_in, n, at);
        let (dh, dh2) = cut(self.dh, n, at);
        let (dc, dc2) = cut(self.dc, n, at);
        let (carry, carry2) = cut(self.carry, n, at);
        let (norm_sq, norm_sq2) = cut(self.norm_sq, n, at);
        let (bias_rn, bias_rn2) = cut(self.bias_rn, n, at);
        let (saved, saved2) = cut_ref(self.saved, n, at);
        let (hs, hs2) = cut_ref(self.hs, n, at);
        let (cs, cs2) = cut_ref(self.cs, n, at);
        let (last, last2) = cut_ref(self.last, n, at);
        let (keep, keep2) = cut_ref(self.keep, n, at);
        let (dy, dy2) = cut_ref(self.dy, n, at);
        let (dx, dx2) = cut(self.dx, n, at);
        (
            BackRows { rows: at, d_in, dh, dc, carry, norm_sq, bias_rn, saved, hs, cs, last, keep, dy, dx },
            BackRows {
                rows: n - at,
                d_in: d_in2,
                dh: dh2,
                dc: dc2,
                carry: carry2,
                norm_sq: norm_sq2,
                bias_rn: bias_rn2,
                saved: saved2,
                hs: hs2,
                cs: cs2,
                last: last2,
                keep: keep2,
                dy: dy2,
                dx: dx2,
            },
        )
    }
}

/// The weights of a backward pass: `W_hh` and `W_ih` with their packs (as
/// themselves, the right operands of `dh_{t-1} = d_rec·W_hh` and `dx_t =
/// d_in·W_ih`; `ih_pack` is read only when `dx` is wanted). `w_ih`'s rows
/// follow the input projection's gate-gradient columns: the GRU's are a
/// copy with the candidate rows first (see [`Cell::in_lead`]).
pub(super) struct BackWeights<'a> {
    pub w_hh: MatRef<'a>,
    pub hh_pack: &'a PackedRhs,
    pub w_ih: MatRef<'a>,
    pub ih_pack: &'a PackedRhs,
}

/// The processing steps `lo..hi` of a backward pass, run between two
/// meeting points of the shares (see [`backward`]); `d_in` holds only
/// these steps' gate gradients, sample-major: sample `i`'s at rows
/// `i·len + (time − first_time)`.
#[derive(Clone, Copy, Debug)]
pub(super) struct Chunk {
    pub lo: usize,
    pub hi: usize,
}

impl Chunk {
    pub fn len(self) -> usize {
        self.hi - self.lo
    }

    /// The smallest input time among the chunk's steps.
    pub fn first_time(self, d: &Dims) -> usize {
        d.time(self.lo).min(d.time(self.hi - 1))
    }
}

/// Backpropagation through time over one chunk of steps, last to first
/// (the caller runs the chunks from the last step down and computes the
/// chunk's weight gradients between them, per row group of the batch, while
/// its gate gradients are in cache, see recurrent_grads.rs): per step the
/// fused cell backward gives the gate gradients, `dh_{t-1} = d_rec·W_hh`
/// (plus the GRU's direct path) and (when wanted) the step's input gradient `dx_t = d_in·W_ih`, its rows
/// summed exactly as one all-steps product would (see
/// [`matmul_packed_rows_here`]). The state gradients carry over between
/// chunks in `dh`/`carry` (which of the two holds `dh` alternates by step),
/// `dc` and `bias_rn`.
pub(super) fn backward(d: &Dims, rows: BackRows<'_>, parts: usize, w: &BackWeights<'_>, chunk: Chunk) -> Result<()> {
    in_shares(rows, parts, &|r| backward_share(d, r, w, chunk))
}

fn backward_share(d: &Dims, r: BackRows<'_>, w: &BackWeights<'_>, chunk: Chunk) -> Result<()> {
    let (m, t, h, gh) = (r.rows, d.steps, d.units, d.gh());
    let (sw, dw, rec_at) = (d.cell.saved_width(h), d.cell.grad_width(h), d.cell.rec_offset(h));
    let (direct, lstm) = (d.cell.direct(), d.cell == Cell::Lstm);
    let (len, t0) = (chunk.len(), chunk.first_time(d));
    // Every step before this chunk swapped the two buffers once.
    let (mut dh, mut carry) = if (t - chunk.hi) % 2 == 0 { (r.dh, r.carry) } else { (r.carry, r.dh) };
    if chunk.hi == t {
        dh.fill(0.0);
        carry.fill(0.0);
        r.dc.fill(0.0);
        r.bias_rn.fill(0.0);
    }
    for s in (chunk.lo..chunk.hi).rev() {
        let time = d.time(s);
        let j = time - t0;
        if d.return_sequences {
            for (i, g) in dh.chunks_exact_mut(h).enumerate() {
                g.iter_mut().zip(&r.dy[(i * t + s) * h..(i * t + s + 1) * h]).for_each(|(a, b)| *a += b);
            }
        } else if s == t - 1 {
            dh.copy_from_slice(r.dy);
        }
        if !r.norm_sq.is_empty() {
            // Per sample, summed over the batch in sample order by the caller.
            for (i, g) in dh.chunks_exact(h).enumerate() {
                r.norm_sq[i * t + time] = if d.kept(r.keep, i, time) { g.iter().map(|&v| f64::from(v) * f64::from(v)).sum() } else { 0.0 };
            }
        }
        let next = (s + 1 < t).then(|| d.time(s + 1));
        for i in 0..m {
            let row = i * t + time;
            let d_row = i * len + j;
            let d_gates = &mut r.d_in[d_row * dw..(d_row + 1) * dw];
            let (dh_i, carry_i) = (&dh[i * h..(i + 1) * h], &mut carry[i * h..(i + 1) * h]);
            if !d.kept(r.keep, i, time) {
                d.cell.pass_row_back(dh_i, d_gates, carry_i);
                continue;
            }
            let out = match next {
                Some(nt) => &r.hs[(i * t + nt) * h..(i * t + nt + 1) * h],
                None => &r.last[i * h..(i + 1) * h],
            };
            let inputs = RowBack {
                saved: &r.saved[(s * m + i) * sw..(s * m + i + 1) * sw],
                prev: &r.hs[row * h..(row + 1) * h],
                out,
                c_prev: if lstm { &r.cs[(s * m + i) * h..(s * m + i + 1) * h] } else { &[] },
                dh: dh_i,
            };
            let bias_rn = if direct { &mut [][..] } else { &mut r.bias_rn[i * h..(i + 1) * h] };
            d.cell.backward_row(&inputs, &mut r.dc[i * h..(i + 1) * h], d_gates, carry_i, bias_rn);
        }
        if !r.dx.is_empty() {
            let f = d.features;
            let a = MatRef { rows: m, cols: gh, data: &r.d_in[j * dw..] };
            matmul_packed_rows_here(a, len * dw, w.w_ih, Op::N, w.ih_pack, MatMut { rows: m, cols: f, data: &mut r.dx[time * f..] }, t * f, false)?;
        }
        if s == 0 {
            // The gradient w.r.t. h_0 (a constant zero state) is not needed.
            break;
        }
        // The share's gate-gradient rows of this step, in place (the GRU's
        // recurrent-side columns of them).
        let a = MatRef { rows: m, cols: gh, data: &r.d_in[j * dw + rec_at..] };
        matmul_packed_rows_here(a, len * dw, w.w_hh, Op::N, w.hh_pack, MatMut { rows: m, cols: h, data: &mut *carry }, h, true)?;
        std::mem::swap(&mut dh, &mut carry);
        carry.fill(0.0);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::shares;

    /// The split the thread-count tests rely on: one share per thread, at
    /// least four rows each, none for narrow layers, small batches or one
    /// thread (bit-identity across these is tested in recurrent_tests.rs).
    #[test]
    fn shares_follow_threads_and_keep_several_rows() {
        assert_eq!(shares(40, 33), 1, "outside a pool: one share");
        let pool = rayon::ThreadPoolBuilder::new().num_threads(4).build().unwrap();
        pool.install(|| {
            assert_eq!(shares(40, 33), 4);
            assert_eq!(shares(128, 128), 4);
            assert_eq!(shares(12, 128), 3);
            assert_eq!(shares(7, 128), 1);
            assert_eq!(shares(128, 7), 1);
        });
    }
}
