//! Inference through a shared network: `predict`, `evaluate` and the
//! inference-mode forward take `&self`, so one network serves many threads
//! at once, in parallel.
//!
//! A layer owns its output workspace, so a pass needs a chain of its own. The
//! network keeps a small pool of spare chains (clones of its own, workspaces
//! included): a call checks one out, runs it over the shared parameters and
//! buffers (read only; inference never writes them), and returns it. Once the
//! pool holds as many chains as there are concurrent callers, inference
//! allocates nothing but its result. The arithmetic is the training chain's,
//! so results are bit-identical whichever thread or workspace computes them.

use std::sync::{Mutex, PoisonError};

use crate::error::{ensure_shape, Error, Result};
use crate::layers::{Chain, Ctx, LayerKind};
use crate::loss::{LossStats, Targets};
use crate::network::{Network, POOL_WORK};
use crate::regularizer;
use crate::tensor::{MatMut, MatRef, Matrix};
use crate::threads;
use crate::handoff;
use crate::kernels::reduce;

/// Rows per forward chunk in `predict`/`evaluate`, bounding workspace memory.
const INFER_CHUNK: usize = 1024;

/// One-sample calls of models with at least this many parameters (enough for
/// one product the helper shares) may share their large products with the
/// helper thread (`crate::handoff`); smaller models never use it.
const WAKE_PARAMS: usize = crate::kernels::gemv::SHARE_MACS;

/// Batches of at most this many rows through a network of row products only
/// (Dense layers on flat inputs, activations, dropout) run on the calling
/// thread, their large products split by output columns with the helper
/// thread (`crate::handoff::small_batch`), instead of entering the pool: at
/// these sizes the pool's wake-ups (the caller's hand-over, the second
/// worker's, per product) cost about as much as the work.
const SMALL_BATCH: usize = 64;

/// Batches through row products only give each pool thread a contiguous
/// range of at least this many rows (see `Network::rows_in_parts`); smaller
/// ones split each product instead. At 64 rather than 128, 784-256-128-10 on
/// two threads predicted 128 rows in 262–318 µs against 268–316 and 192 rows
/// in 330–486 against 412–455 (`benches/ab_predict.py 128,192 2`, 4
/// alternating rounds; the medians 6% and 15% lower), as the training
/// forward's ranges of 64 rows had gained.
const ROWS_PER_PART: usize = 64;

/// Small batches of at least twice this many rows give the helper thread
/// their second half of rows (`Network::rows_with_helper`); smaller ones
/// split each wide product by output columns instead.
const HELPER_HALF_ROWS: usize = 8;

/// Spare chains kept at most: more concurrent callers than this still work,
/// the extra ones just clone a chain per call.
const MAX_IDLE: usize = 32;

/// The pool of inference workspaces.
#[derive(Debug, Default)]
pub(crate) struct Workspaces {
    free: Mutex<Vec<Chain>>,
}

/// A copy of a network starts with an empty pool: workspaces hold no state.
impl Clone for Workspaces {
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl Workspaces {
    /// Runs `f` on a spare chain (a clone of `proto` when none is idle), then
    /// returns the chain to the pool. A panic in `f` drops the chain, which is
    /// harmless: the next call clones a fresh one.
    pub(crate) fn with<R>(&self, proto: &Chain, f: impl FnOnce(&mut Chain) -> R) -> R {
        // Poisoning cannot leave the list inconsistent (push and pop only), so it is ignored.
        let idle = self.free.lock().unwrap_or_else(PoisonError::into_inner).pop();
        let mut chain = idle.unwrap_or_else(|| proto.clone());
        let out = f(&mut chain);
        let mut free = self.free.lock().unwrap_or_else(PoisonError::into_inner);
        if free.len() < MAX_IDLE {
            free.push(chain);
        }
        out
    }
}

impl Network {
    /// Runs `f` on an inference workspace, in the thread pool when `rows`
    /// samples make enough work for it. One sample never goes to the pool (the
    /// hand-over to a pool thread and back would be pure latency); its large
    /// matrix-vector products share their columns with the helper thread
    /// instead (`crate::handoff`).
    ///
    /// A small batch (≤ [`SMALL_BATCH`] rows) through row products only, of a
    /// model large enough for the helper, with more than one thread allowed,
    /// stays off the pool too: on the caller, its wide products sharing their
    /// output columns with the helper. Same bits on every path (the products'
    /// sums do not depend on the split).
    fn infer_with<R: Send>(&self, rows: usize, f: impl FnOnce(&mut Chain) -> R + Send) -> R {
        self.infer.with(&self.core.chain, |chain| {
            // Models too small for the helper keep the pool rule below: their
            // products have nothing to split, and the pool still halves a
            // product past `PAR_FLOPS` (784-64-10 at 64 rows).
            if rows > 1 && rows <= SMALL_BATCH && self.core.params.len() >= WAKE_PARAMS && handoff::usable() && chain.layers().all(LayerKind::row_products_only) {
                return handoff::small_batch(|| f(chain));
            }
            if rows > 1 && rows.saturating_mul(self.core.params.len()) >= POOL_WORK {
                threads::install(|| f(chain))
            } else {
                if rows == 1 && self.core.params.len() >= WAKE_PARAMS && handoff::usable() {
                    // Large matrix-vector products ahead share their columns
                    // with the helper thread.
                    return handoff::one_sample(|| f(chain));
                }
                f(chain)
            }
        })
    }

    /// The network's raw outputs (logits for classification losses), in
    /// inference mode, in chunks of rows. Safe to call from many threads at once.
    ///
    /// # Errors
    /// Shape, emptiness and finiteness errors; `Error::Memory` when the output
    /// cannot be allocated.
    pub fn predict(&self, x: MatRef<'_>) -> Result<Matrix> {
        self.outputs(x, INFER_CHUNK)
    }

    /// The outputs in inference mode with the whole batch as one pass: what
    /// [`Network::forward`] returns in inference mode, through a shared reference.
    ///
    /// # Errors
    /// As [`Network::predict`].
    pub fn forward_inference(&self, x: MatRef<'_>) -> Result<Matrix> {
        self.outputs(x, x.rows.max(1))
    }

    /// [`Network::predict`] into a caller's `x.rows × output_dim` matrix: with
    /// the output preallocated, a call at a batch size seen before allocates
    /// nothing.
    ///
    /// # Errors
    /// As [`Network::predict`], plus `Error::Shape` when `out` has the wrong shape.
    pub fn predict_into(&self, x: MatRef<'_>, out: MatMut<'_>) -> Result<()> {
        self.outputs_into(x, INFER_CHUNK, out)
    }

    /// Inference-mode outputs, `chunk` rows per pass.
    fn outputs(&self, x: MatRef<'_>, chunk: usize) -> Result<Matrix> {
        // Empty or too narrow inputs are refused before the output is allocated.
        if x.rows == 0 {
            x.check_samples("X")?;
        }
        self.check_width(x.cols)?;
        let mut out = Matrix::try_zeros(x.rows, self.output_dim_for(x.cols)?)?;
        self.outputs_into(x, chunk, out.view_mut())?;
        Ok(out)
    }

    /// Inference-mode outputs into `out`, `chunk` rows per pass. The inputs
    /// are checked inside the pass: a batch large enough for the pool scans
    /// them for non-finite values on all its threads, instead of on the
    /// caller alone while the pool waits (at 1024×784 that serial scan was
    /// ~4% of a two-thread call).
    fn outputs_into(&self, x: MatRef<'_>, chunk: usize, out: MatMut<'_>) -> Result<()> {
        if x.rows == 0 {
            return x.check_samples("X");
        }
        self.check_width(x.cols)?;
        let cols = self.output_dim_for(x.cols)?;
        ensure_shape(out.rows == x.rows && out.cols == cols, || {
            format!("predict_into: the output is {}x{}, expected {}x{cols}", out.rows, out.cols, x.rows)
        })?;
        if self.helper_takes_rows(x.rows) {
            self.check_inputs_with(x, reduce::all_finite)?;
            return self.rows_with_helper(x, chunk, out);
        }
        if let Some(parts) = self.row_parts(x.rows) {
            return threads::install(|| {
                self.check_inputs_with(x, reduce::par_all_finite)?;
                self.rows_in_parts(x, chunk, out, parts)
            });
        }
        self.infer_with(x.rows, |chain| {
            self.check_inputs_with(x, reduce::par_all_finite)?;
            self.rows_through(chain, x, chunk, out)
        })
    }

    /// Runs the rows of `x` through `chain`, `chunk` rows per pass, into `out`.
    fn rows_through(&self, chain: &mut Chain, x: MatRef<'_>, chunk: usize, out: MatMut<'_>) -> Result<()> {
        let (params, buffers, cols) = (&self.core.params[..], &self.core.buffers[..], out.cols);
        chain.resize(x.cols)?;
        for start in (0..x.rows).step_by(chunk) {
            let end = (start + chunk).min(x.rows);
            chain.run(x.rows_range(start, end), params, buffers, &Ctx::inference())?;
            let y = chain.output();
            out.data[start * cols..end * cols].copy_from_slice(y.data);
        }
        Ok(())
    }

    /// Whether a small batch is cut into two row halves, the second run
    /// through every layer by the helper thread (see
    /// [`Network::rows_with_helper`]): the small-batch conditions of
    /// `infer_with`, with halves of at least [`HELPER_HALF_ROWS`] rows.
    fn helper_takes_rows(&self, rows: usize) -> bool {
        (2 * HELPER_HALF_ROWS..=SMALL_BATCH).contains(&rows)
            && self.core.params.len() >= WAKE_PARAMS
            && handoff::usable()
            && self.core.chain.layers().all(LayerKind::row_products_only)
    }

    /// A small batch as two row halves: the caller runs the first through
    /// every layer, the helper thread the second (or the caller too, when the
    /// helper does not take it in time), each on a workspace of its own. One
    /// hand-over per call, and each thread's activations stay in its own
    /// core's cache: split by output columns, every layer's output crossed
    /// between the cores twice (the caller's bias pass read the helper's
    /// columns, the helper's next product read the caller's), which `perf`
    /// showed as the caller's bias pass taking a quarter as long as its
    /// products. Each half is at least two rows, so its products take the
    /// same matrix path (no matrix-vector one), and the bits are those of
    /// the whole batch on one thread.
    fn rows_with_helper(&self, x: MatRef<'_>, chunk: usize, out: MatMut<'_>) -> Result<()> {
        let mid = x.rows / 2;
        let cols = out.cols;
        let (top, bottom) = out.data.split_at_mut(mid * cols);
        let proto = &self.core.chain;
        self.infer.with(proto, |first| {
            self.infer.with(proto, |second| {
                // The helper's half, behind a lock (uncontended: it runs once,
                // or twice in a row when the caller redoes it after a panic).
                let theirs = Mutex::new((second, MatMut { rows: x.rows - mid, cols, data: bottom }, Ok(())));
                let mut mine = Ok(());
                handoff::both_long(
                    || mine = self.rows_through(first, x.rows_range(0, mid), chunk, MatMut { rows: mid, cols, data: top }),
                    &|| {
                        let mut half = theirs.lock().unwrap_or_else(PoisonError::into_inner);
                        let (chain, out, result) = &mut *half;
                        *result = self.rows_through(chain, x.rows_range(mid, x.rows), chunk, MatMut { rows: out.rows, cols, data: out.data });
                    },
                );
                let (_, _, result) = theirs.into_inner().unwrap_or_else(PoisonError::into_inner);
                mine.and(result)
            })
        })
    }

    /// How many contiguous row ranges a large batch is cut into, one per pool
    /// thread, each run through the whole network on one thread: `None` for
    /// a batch too small to give every thread [`ROWS_PER_PART`] rows, a
    /// single thread, a caller already inside the pool, or a model with
    /// layers that mix rows (whose products are left to split themselves).
    fn row_parts(&self, rows: usize) -> Option<usize> {
        let threads = threads::num_threads();
        let parts = threads.min(rows / ROWS_PER_PART);
        (parts > 1 && rayon::current_thread_index().is_none() && self.core.chain.layers().all(LayerKind::row_products_only)).then_some(parts)
    }

    /// [`Network::rows_through`] for `parts` contiguous row ranges of `x` at
    /// once, each on one pool thread with its own workspace and its kernels
    /// kept on that thread: one fork per call instead of one per product and
    /// per elementwise pass, and no thread waits for another between layers.
    /// Rows are independent and each output element is summed over the same
    /// depth blocks however many rows share the product, so the bits are
    /// those of one pass over the whole batch.
    fn rows_in_parts(&self, x: MatRef<'_>, chunk: usize, out: MatMut<'_>, parts: usize) -> Result<()> {
        if parts <= 1 {
            return self.infer.with(&self.core.chain, |chain| crate::kernels::on_this_thread(|| self.rows_through(chain, x, chunk, out)));
        }
        // Split in two (recursively, so no list of parts is allocated).
        let left = parts / 2;
        let mid = x.rows * left / parts;
        let (top, bottom) = out.data.split_at_mut(mid * out.cols);
        let (a, b) = rayon::join(
            || self.rows_in_parts(x.rows_range(0, mid), chunk, MatMut { rows: mid, cols: out.cols, data: top }, left),
            || self.rows_in_parts(x.rows_range(mid, x.rows), chunk, MatMut { rows: x.rows - mid, cols: out.cols, data: bottom }, parts - left),
        );
        a.and(b)
    }

    /// Loss statistics over `(x, targets)` without training, in inference
    /// mode. Safe to call from many threads at once.
    ///
    /// # Errors
    /// As [`Network::train_step`].
    pub fn evaluate(&self, x: MatRef<'_>, targets: Targets<'_>, weights: Option<&[f32]>) -> Result<LossStats> {
        self.check(x, &targets, weights)?;
        let (params, buffers, loss) = (&self.core.params[..], &self.core.buffers[..], self.core.loss);
        let mut total = self.infer_with(x.rows, |chain| {
            chain.resize(x.cols)?;
            let mut total = LossStats::default();
            for start in (0..x.rows).step_by(INFER_CHUNK) {
                let end = (start + INFER_CHUNK).min(x.rows);
                chain.run(x.rows_range(start, end), params, buffers, &Ctx::inference())?;
                total.add(loss.evaluate(chain.output(), &targets.rows_range(start, end), weights.map(|w| &w[start..end]), chain.output_mask(), None));
            }
            Ok::<_, Error>(total)
        })?;
        // The objective includes the weight penalties, as Keras reports it.
        total.loss_sum += regularizer::total(&self.core.penalties, &self.core.params) * total.samples as f64;
        Ok(total)
    }
}
