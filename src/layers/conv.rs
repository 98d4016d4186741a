//! Convolution over sequences (Conv1D) and images (Conv2D), grouped and
//! dilated, as im2col followed by one GEMM per channel group, with the bias
//! add and the activation fused into one pass over the GEMM's output.
//!
//! The batch is processed in chunks of samples whose im2col matrix is about
//! one L2 cache in size (`CHUNK_BYTES`): im2col, the GEMM and the bias and
//! activation run chunk by chunk while the patch matrix is cached, each
//! thread taking whole chunks (`conv_passes`). Building the whole batch's
//! matrix at once streamed ~150 MB per layer through memory for 32×32 images
//! and was a third slower on the ResNet-style benchmark. The backward pass
//! rebuilds each chunk's im2col (a copy, cheaper than keeping the batch's),
//! adds its share of the kernel gradient (per fixed group of chunks, the
//! groups summed in order) and scatters its input gradient back by col2im.
//! Chunks and groups depend on the shapes alone, so results do not depend on
//! threads. A layer with a small window (a first layer's one or three
//! channels) skips im2col and the GEMM for direct kernels (`conv_direct`);
//! a 3×3 stride-1 layer with more channels takes Winograd's F(2×2, 3×3)
//! (`conv_winograd`), 16 multiply-adds per tile and channel pair for 36.
//!
//! Weight layout: `weight` is `[kh, kw, in/groups, filters]` (`[k, in/groups,
//! filters]` for Conv1D), Keras' layout for both data formats; filter `f`
//! belongs to group `f / (filters/groups)`. PyTorch's `[filters, in/groups,
//! kh, kw]` is its transpose by axes `(3, 2, 0, 1)`.

use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::activation::Activation;
use crate::error::{checked_size, ensure_config, ensure_shape, Result};
use crate::init::Init;
use crate::layers::grid::{transpose_samples, DataFormat, Grid, Window};
use crate::layers::kind::{check_backward, BuildLayer};
use crate::layers::{ActivationSpec, Alloc, Ctx, LayerKind, ParamInfo, WeightSpec};
use crate::regularizer::Regularizer;
use crate::tensor::{MatRef, Matrix};

#[path = "conv_direct.rs"]
mod direct;
#[path = "conv_passes.rs"]
mod passes;
#[path = "conv_winograd.rs"]
mod winograd;

/// `{"type": "conv", "input": [h, w, c], "filters": .., "kernel": [kh, kw], ..}`:
/// a convolution built for inputs of the stated per-sample shape (in the
/// layout's order). One spatial value per list entry: two for images, one for
/// sequences; `pads` holds the padding before and after each spatial axis.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConvSpec {
    pub input: Vec<usize>,
    pub filters: usize,
    pub kernel: Vec<usize>,
    pub strides: Vec<usize>,
    pub pads: Vec<usize>,
    pub dilation: Vec<usize>,
    #[serde(default = "one")]
    pub groups: usize,
    #[serde(default)]
    pub data_format: DataFormat,
    #[serde(default = "identity")]
    pub activation: ActivationSpec,
    #[serde(default = "yes")]
    pub use_bias: bool,
    #[serde(flatten)]
    pub weights: WeightSpec,
}

fn one() -> usize {
    1
}

fn yes() -> bool {
    true
}

fn identity() -> ActivationSpec {
    ActivationSpec::Name("identity".into())
}

impl BuildLayer for ConvSpec {
    type Layer = Conv;

    fn build(&self, in_dim: usize, alloc: &mut Alloc) -> Result<Conv> {
        let kind = "Conv";
        let grid = Grid::from_shape(&self.input, self.data_format, kind)?;
        let len = grid.len(kind)?;
        ensure_config(len == in_dim, || format!("{kind} was built for inputs of shape {:?} ({len} values), but its input has {in_dim} values per sample", self.input))?;
        let rank = self.input.len() - 1;
        let win = Window::new(&grid, rank, &self.kernel, &self.strides, &self.dilation, &self.pads, kind)?;
        let (f, g) = (self.filters, self.groups);
        ensure_config(f > 0, || format!("{kind} filters must be at least 1, got {f}"))?;
        ensure_config(g > 0 && grid.c % g == 0 && f % g == 0, || {
            format!("{kind} groups={g} must divide both the input channels ({}) and the filters ({f})", grid.c)
        })?;
        let act = self.activation.resolve()?;
        let (kernel_init, bias_init) = self.weights.inits(&act)?;
        let kg = checked_size(win.cells(), grid.c / g, "Conv window (kernel x channels)")?;
        let w_len = checked_size(kg, f, "Conv weight")?;
        checked_size(win.positions(), f, "Conv output")?;
        let w_off = alloc.params(w_len, "Conv weight")?;
        let b_off = alloc.params(if self.use_bias { f } else { 0 }, "Conv bias")?;
        let direct = direct::Direct::plan(&grid, &win, g, f)?.map(Box::new);
        let winograd = match direct {
            None => winograd::Winograd::plan(&grid, &win, g, f, winograd::MIN_CHANNELS)?.map(Box::new),
            Some(_) => None,
        };
        let mut shape: Vec<usize> = if rank == 2 { win.k.to_vec() } else { vec![win.k[1]] };
        shape.extend([grid.c / g, f]);
        Ok(Conv {
            grid,
            win,
            filters: f,
            groups: g,
            kg,
            act,
            kernel_init,
            bias_init,
            use_bias: self.use_bias,
            w_shape: shape,
            w_off,
            b_off,
            zero_bias: vec![0.0; f],
            rows: 0,
            chunk_bytes: CHUNK_BYTES,
            min_chunk_samples: MIN_CHUNK_SAMPLES,
            target_chunks: TARGET_CHUNKS,
            slots: passes::Slots::default(),
            direct,
            winograd,
            z: Matrix::zeros(0, f),
            a: Matrix::zeros(0, f),
            out: Matrix::default(),
            dz: Matrix::default(),
            wpack: Vec::new(),
            partials: Vec::new(),
            bias_partials: Vec::new(),
        })
    }

    fn regularizers(&self) -> (Option<Regularizer>, Option<Regularizer>) {
        self.weights.regularizers()
    }
}

/// Bytes of im2col matrix one chunk of samples aims at (at least one sample
/// per chunk): about the size of a core's L2 cache, so the patch matrix is
/// written, packed and read by the product while it is still cached instead
/// of streaming the whole batch's (hundreds of MB for 32×32 images) through
/// memory. Depends on the shape alone, so every thread count chunks alike.
const CHUNK_BYTES: usize = 1 << 20;

/// The fewest samples a chunk holds, whatever its bytes. One: each thread
/// takes whole chunks, so a sample whose patch matrix alone fills
/// [`CHUNK_BYTES`] (a 32×32 image with 32 input channels) is still a task of
/// its own that stays in its thread's cache. (When a chunk's im2col and
/// col2im were split between threads by samples, the floor was four, or the
/// second core idled in those passes.) A constant, not the thread count, so
/// every thread count chunks alike.
const MIN_CHUNK_SAMPLES: usize = 1;

/// A batch is cut into at least this many chunks when each can still hold
/// [`MIN_CHUNK_SAMPLES`] (the first layer's small patch matrices would
/// otherwise give a batch of 128 four chunks, the last short): threads take
/// whole chunks, and more of them balance better. Fixed, so every thread
/// count chunks alike.
const TARGET_CHUNKS: usize = 8;

/// A built convolution; see the module docs for its weight layout.
#[derive(Clone, Debug)]
pub struct Conv {
    grid: Grid,
    win: Window,
    filters: usize,
    groups: usize,
    /// Rows of one group's kernel matrix: window cells × channels per group.
    kg: usize,
    act: Activation,
    kernel_init: Init,
    bias_init: Init,
    use_bias: bool,
    w_shape: Vec<usize>,
    w_off: usize,
    b_off: usize,
    /// Added in place of a bias when there is none (the fused pass needs one).
    zero_bias: Vec<f32>,
    /// Samples in the last forward pass.
    rows: usize,
    /// The im2col bytes a chunk of samples aims at ([`CHUNK_BYTES`]; tests lower it).
    chunk_bytes: usize,
    /// The fewest samples in a chunk ([`MIN_CHUNK_SAMPLES`]; tests lower it).
    min_chunk_samples: usize,
    /// The chunks a batch is cut into at least ([`TARGET_CHUNKS`]; tests set 1).
    target_chunks: usize,
    /// Per-thread scratch of the chunked passes (im2col, input-gradient
    /// columns, a group's output columns, a padded sample).
    slots: passes::Slots,
    /// The direct kernels' plan, for a small window (`conv_direct`); `None`
    /// takes im2col and the GEMM.
    direct: Option<Box<direct::Direct>>,
    /// The Winograd plan and transformed filters, for a 3×3 stride-1 window
    /// over enough channels (`conv_winograd`); `None` takes another path.
    winograd: Option<Box<winograd::Winograd>>,
    /// Pre-activation, channels_last: `[batch · positions, filters]`.
    z: Matrix,
    /// Post-activation (unused when `z` holds the output, see [`Conv::output_in_z`]).
    a: Matrix,
    /// channels_first: the output, transposed from `z` or `a`.
    out: Matrix,
    /// channels_first: the output gradient transposed to channels_last.
    dz: Matrix,
    /// One group's kernel, `[kg, filters/groups]` (groups > 1).
    wpack: Vec<f32>,
    /// One group's kernel gradient, one sum per partial group of chunks (see
    /// `conv_passes`): each `[kg, filters/groups]`, or its transpose when that
    /// is the faster product (see [`Conv::transposed_kernel_gradient`]).
    partials: Vec<f32>,
    /// The bias gradient, one sum per partial group of chunks.
    bias_partials: Vec<f32>,
}

/// `v` resized to `len` values, growing fallibly.
fn grow(v: &mut Vec<f32>, len: usize, what: &str) -> Result<()> {
    crate::error::try_grow(v, len, what)?;
    v.resize(len, 0.0);
    Ok(())
}

impl Conv {
    fn w_len(&self) -> usize {
        self.kg * self.filters
    }

    fn out_positions(&self) -> usize {
        self.win.positions()
    }

    /// Whether `z` holds the output itself, the pre-activation never kept:
    /// for the identity, and for ReLU, whose derivative its output gives
    /// (one `[batch · positions, filters]` buffer fewer to write and read).
    fn output_in_z(&self) -> bool {
        self.act.output_gives_derivative()
    }

    /// Samples per chunk of a batch of `n` (see [`CHUNK_BYTES`] and
    /// [`TARGET_CHUNKS`]): a function of the shapes alone.
    pub(crate) fn chunk_samples(&self, n: usize) -> usize {
        let per_sample = self.out_positions().saturating_mul(self.kg).saturating_mul(std::mem::size_of::<f32>());
        let by_bytes = (self.chunk_bytes / per_sample.max(1)).max(self.min_chunk_samples);
        let by_count = n.div_ceil(self.target_chunks.max(1)).max(self.min_chunk_samples);
        by_bytes.min(by_count).max(1)
    }

    /// Sets the im2col bytes a chunk aims at, and nothing else (tests use it
    /// to run many chunks, or one, on small inputs).
    #[cfg(test)]
    pub(crate) fn set_chunk_bytes(&mut self, bytes: usize) {
        self.chunk_bytes = bytes;
        self.min_chunk_samples = 1;
        self.target_chunks = 1;
    }

    /// Whether the direct kernels run this layer (tests compare both paths).
    #[cfg(test)]
    pub(crate) fn is_direct(&self) -> bool {
        self.direct.is_some()
    }

    /// Whether Winograd's F(2×2, 3×3) runs this layer (tests compare paths).
    #[cfg(test)]
    pub(crate) fn is_winograd(&self) -> bool {
        self.winograd.is_some()
    }

    /// Sends this layer through Winograd's F(2×2, 3×3) when its shape
    /// qualifies whatever its channels (tests check the path on small layers).
    #[cfg(test)]
    pub(crate) fn use_winograd(&mut self) {
        self.winograd = winograd::Winograd::plan(&self.grid, &self.win, self.groups, self.filters, 1).expect("sizes checked at build").map(Box::new);
        if self.winograd.is_some() {
            self.direct = None;
        }
    }

    /// Sends this layer through im2col and the GEMM even when it qualifies
    /// for the direct kernels or Winograd's (tests compare the paths).
    #[cfg(test)]
    pub(crate) fn use_im2col(&mut self) {
        self.direct = None;
        self.winograd = None;
    }

    /// Whether a group's kernel gradient is computed as its transpose
    /// `dzᵀ·cols` (`[filters/groups, kg]`): the GEMM's column-major tiles (64
    /// rows with AVX-512) then run along `kg` instead of fewer than 64 filters,
    /// which would leave it the narrower microkernel. A shape-only choice, so
    /// thread counts agree.
    fn transposed_kernel_gradient(&self) -> bool {
        self.filters / self.groups < 64 && self.kg >= 64
    }

    /// Values of one partial sum of a group's kernel gradient: `kg × filters/groups`,
    /// or Winograd's transformed `16 × c × filters`.
    fn partial_len(&self) -> usize {
        match &self.winograd {
            Some(_) => winograd::POINTS * self.kg / 9 * self.filters,
            None => self.kg * (self.filters / self.groups),
        }
    }

    /// Copies columns `g·fg..(g+1)·fg` of the `[rows, filters]` matrix `m`
    /// into the contiguous `[rows, fg]` matrix `dst`.
    fn gather(m: &[f32], filters: usize, g: usize, fg: usize, dst: &mut [f32]) {
        for (row, d) in m.chunks_exact(filters).zip(dst.chunks_exact_mut(fg)) {
            d.copy_from_slice(&row[g * fg..(g + 1) * fg]);
        }
    }

    /// The inverse of [`Conv::gather`]: writes `src` into those columns of `m`.
    fn scatter(m: &mut [f32], filters: usize, g: usize, fg: usize, src: &[f32]) {
        for (row, s) in m.chunks_exact_mut(filters).zip(src.chunks_exact(fg)) {
            row[g * fg..(g + 1) * fg].copy_from_slice(s);
        }
    }

    /// Grows the workspaces for `n` samples (fallibly): the outputs, and for
    /// the backward pass (`backward`) the kernel gradient's partial sums and,
    /// with `dx`, the input gradient's columns. Returns the batch's chunks.
    fn reserve(&mut self, n: usize, backward: bool, dx: bool) -> Result<passes::Plan> {
        let (p, kg, fg) = (self.out_positions(), self.kg, self.filters / self.groups);
        checked_size(n, p, "Conv output rows")?;
        let plan = self.reserve_chunks(n, dx)?;
        self.z.resize_rows(n * p)?;
        if !self.output_in_z() {
            self.a.resize_rows(n * p)?;
        }
        if backward {
            // The weight's size (kg · filters, or 16 · c · filters transformed, see
            // `partial_len`) was checked at build; there are at most MAX_PARTIALS groups.
            let len = checked_size(plan.groups, self.partial_len(), "Conv kernel-gradient sums")?;
            if self.partials.len() < len {
                grow(&mut self.partials, len, "the Conv kernel-gradient sums")?;
            }
            let len = checked_size(plan.groups, self.filters, "Conv bias-gradient sums")?;
            if self.bias_partials.len() < len {
                grow(&mut self.bias_partials, len, "the Conv bias-gradient sums")?;
            }
        }
        if self.groups > 1 {
            self.wpack.resize(kg * fg, 0.0);
        }
        if self.grid.format == DataFormat::ChannelsFirst {
            self.out.reshape_for(n, checked_size(p, self.filters, "Conv output")?)?;
        }
        Ok(plan)
    }
}

impl LayerKind for Conv {
    fn out_dim(&self) -> usize {
        self.out_positions() * self.filters
    }

    fn params(&self) -> Vec<ParamInfo> {
        let mut p = vec![ParamInfo::new("weight", self.w_off, self.w_shape.clone())];
        if self.use_bias {
            p.push(ParamInfo::new("bias", self.b_off, vec![self.filters]));
        }
        p
    }

    /// Fans as Keras computes them for a conv kernel: window cells times the
    /// input channels per group (in) or times the filters (out).
    fn init(&self, params: &mut [f32], _buffers: &mut [f32], rng: &mut ChaCha8Rng) {
        let (fan_in, fan_out) = (self.kg, self.win.cells() * self.filters);
        self.kernel_init.fill(&mut params[self.w_off..self.w_off + self.w_len()], fan_in, fan_out, rng);
        if self.use_bias {
            self.bias_init.fill(&mut params[self.b_off..self.b_off + self.filters], fan_in, fan_out, rng);
        }
    }

    /// Per group, per chunk of samples: im2col, the product, and (once the
    /// chunk's last group is in) the bias and activation, while it is cached.
    fn forward(&mut self, x: MatRef<'_>, params: &[f32], _buffers: &[f32], _ctx: &Ctx) -> Result<()> {
        let in_len = self.grid.h * self.grid.w * self.grid.c;
        ensure_shape(x.cols == in_len, || format!("Conv expects inputs of {in_len} values per sample, got {}", x.cols))?;
        let plan = self.reserve(x.rows, false, false)?;
        self.rows = x.rows;
        let (f, p) = (self.filters, self.out_positions());
        let weight = &params[self.w_off..self.w_off + self.w_len()];
        let bias = self.use_bias.then(|| &params[self.b_off..self.b_off + f]);
        self.forward_chunks(x, weight, bias, plan)?;
        if self.channels_first() {
            let src = if self.output_in_z() { self.z.as_slice() } else { self.a.as_slice() };
            transpose_samples(src, p, f, self.out.as_mut_slice());
        }
        Ok(())
    }

    fn output(&self) -> MatRef<'_> {
        let data = match (self.grid.format, self.output_in_z()) {
            (DataFormat::ChannelsFirst, _) => self.out.as_slice(),
            (_, true) => self.z.as_slice(),
            (_, false) => self.a.as_slice(),
        };
        MatRef { rows: self.rows, cols: self.out_dim(), data }
    }

    /// `dz = dy ⊙ f'(z)`, `db = Σ dz`, then per group, per chunk of samples,
    /// the chunk's im2col again (cheaper than keeping the whole batch's), its
    /// share of `dW = colsᵀ·dz`, and the input gradient's columns `dz·Wᵀ`
    /// scattered back by col2im (`conv_passes`).
    fn backward(&mut self, x: MatRef<'_>, params: &[f32], grads: &mut [f32], dy: &mut Matrix, dx: Option<&mut Matrix>) -> Result<()> {
        let in_len = self.grid.h * self.grid.w * self.grid.c;
        check_backward("Conv", x, dy, self.rows, in_len, self.out_dim())?;
        let (p, w_len, samples, f) = (self.out_positions(), self.w_len(), self.rows, self.filters);
        let plan = self.reserve(samples, true, dx.is_some())?;
        let mut dx = dx;
        if let Some(dx) = dx.as_deref_mut() {
            dx.reshape_for(samples, in_len)?;
        }
        // dz, channels_last [rows, filters]: dy itself, or dy transposed.
        let mut dz_t = std::mem::take(&mut self.dz);
        let dz: &mut [f32] = if self.channels_first() {
            dz_t.reshape_for(samples * p, f)?;
            transpose_samples(dy.as_slice(), f, p, dz_t.as_mut_slice());
            dz_t.as_mut_slice()
        } else {
            dy.as_mut_slice()
        };
        let (gw, gb) = grads[self.w_off..].split_at_mut(w_len);
        let gb = self.use_bias.then(|| &mut gb[self.b_off - self.w_off - w_len..][..f]);
        let weight = &params[self.w_off..self.w_off + w_len];
        let done = self.backward_chunks(x, weight, dz, gw, gb, dx.map(|d| d.as_mut_slice()), plan);
        self.dz = dz_t;
        done
    }
}
