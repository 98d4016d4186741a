//! A chain of layers applied in order: the body of a network and of a
//! residual block. Building it fuses a linear `Dense` followed by an
//! elementwise activation layer into one Dense with that activation, so the
//! bias add and the activation run as one pass over the GEMM's output.

use rand_chacha::ChaCha8Rng;

use crate::activation::Activation;
use crate::error::{ensure_config, Error, Result};
use crate::kernels::available_threads;
use crate::layers::dense_rows::{self, RowPass};
use crate::layers::mask::check_mask_flow;
use crate::layers::{Alloc, Ctx, DenseSpec, Layer, LayerKind, LayerSpec, MaskFlow, ParamInfo, Recurrent, StepMask};
use crate::regularizer::Penalty;
use crate::tensor::{MatRef, Matrix};

/// Built layers, each with the index of the spec it came from (a fused
/// activation layer has no entry of its own; it has no tensors to name).
#[derive(Clone, Debug)]
pub struct Chain {
    layers: Vec<(usize, Layer)>,
    /// The input width each layer is currently set for (see [`Chain::resize`]).
    widths: Vec<usize>,
    /// The layer whose step mask the output carries after the last forward
    /// pass (see [`Chain::output_mask`]).
    mask_from: Option<usize>,
    /// L1/L2 penalties of this chain's own layers (nested blocks keep theirs).
    penalties: Vec<Penalty>,
}

/// The Dense that spec `next` folds into, with the activation it brings:
/// when `spec` is a linear Dense and `next` an activation layer. The one
/// fusion there is; every other pair builds as it is.
fn fusable<'s>(spec: &'s LayerSpec, next: Option<&LayerSpec>) -> Result<Option<(&'s DenseSpec, Activation)>> {
    if let (LayerSpec::Dense(dense), Some(LayerSpec::Activation(act))) = (spec, next) {
        if dense.is_linear()? {
            return Ok(Some((dense, act.activation.resolve()?)));
        }
    }
    Ok(None)
}

impl Chain {
    /// Builds `specs` for inputs of width `in_dim`, taking tensor offsets from `alloc`.
    ///
    /// # Errors
    /// `Error::Config`/`Error::UnknownName` for an invalid spec or an empty list,
    /// and `Error::Config` when a step mask reaches a layer that refuses it
    /// ([`check_mask_flow`]).
    pub fn build(specs: &[LayerSpec], in_dim: usize, alloc: &mut Alloc) -> Result<Chain> {
        ensure_config(!specs.is_empty(), || "a network (and a residual block) needs at least one layer".into())?;
        let mut layers = Vec::with_capacity(specs.len());
        let mut widths = Vec::with_capacity(specs.len());
        let mut penalties = Vec::new();
        let mut width = in_dim;
        let mut i = 0;
        while i < specs.len() {
            let fused = fusable(&specs[i], specs.get(i + 1))?;
            let layer = match fused {
                Some((dense, act)) => Layer::Dense(dense.build_with(width, act, alloc)?),
                None => specs[i].build(width, alloc)?,
            };
            let (kernel, bias) = specs[i].regularizers();
            for (reg, name) in [(kernel, "weight"), (bias, "bias")] {
                if let Some(reg) = reg {
                    reg.validate()?;
                    penalties.extend(layer.params().into_iter().filter(|p| p.name == name).map(|p| Penalty { range: p.range(), reg }));
                }
            }
            widths.push(width);
            width = layer.out_dim();
            layers.push((i, layer));
            i += if fused.is_some() { 2 } else { 1 };
        }
        check_mask_flow(layers.iter().map(|(i, l)| (*i, l)))?;
        Ok(Chain { layers, widths, mask_from: None, penalties })
    }

    /// The input width the chain is currently set for.
    pub fn in_dim(&self) -> usize {
        self.widths.first().copied().unwrap_or(0)
    }

    /// Re-targets the chain at inputs of width `in_dim`, for sequence models
    /// called with another number of time steps: every layer whose input
    /// width changes must work step by step ([`LayerKind::step_width`]) and
    /// takes `width / step_width` steps. Cheap when nothing changes (one
    /// comparison per layer) and it allocates nothing; every layer is visited,
    /// so a call that failed half way leaves no layer out of step.
    ///
    /// # Errors
    /// `Error::Shape` naming the first layer that cannot take its new width.
    pub fn resize(&mut self, in_dim: usize) -> Result<()> {
        let mut width = in_dim;
        for (k, ((i, layer), set)) in self.layers.iter_mut().zip(&mut self.widths).enumerate() {
            if width != *set {
                let step = layer.step_width().filter(|&f| f > 0 && width > 0 && width % f == 0);
                let Some(f) = step else {
                    return Err(Error::Shape(format!(
                        "layer {i} takes {set} values per sample and cannot take {width}: only layers that work step by step along the time axis (recurrent, Embedding, Dense, Dropout, activations, global 1-D pools) follow a change of sequence length{}",
                        if k == 0 { "" } else { " (its input comes from the layers before it)" }
                    )));
                };
                layer.set_steps(width / f)?;
                *set = width;
            }
            width = layer.out_dim();
        }
        Ok(())
    }

    pub fn out_dim(&self) -> usize {
        self.layers.last().map_or(0, |(_, l)| l.out_dim())
    }

    pub fn layers(&self) -> impl Iterator<Item = &Layer> {
        self.layers.iter().map(|(_, l)| l)
    }

    /// The recurrent layers here and in nested residual blocks, in layer
    /// order, each named as its tensors' prefix (`{prefix}{i}`,
    /// `{prefix}{i}.block.{j}`, and a bidirectional layer's two directions
    /// `{prefix}{i}.forward`, `{prefix}{i}.backward`): what the per-step
    /// diagnostics address.
    pub fn recurrent_mut(&mut self, prefix: &str) -> Vec<(String, &mut Recurrent)> {
        let mut out = Vec::new();
        for (i, layer) in &mut self.layers {
            match layer {
                Layer::Recurrent(r) => out.push((format!("{prefix}{i}"), r)),
                Layer::Bidirectional(b) => out.extend(b.directions_mut().map(|(name, r)| (format!("{prefix}{i}.{name}"), r))),
                Layer::Residual(block) => out.extend(block.block_mut().recurrent_mut(&format!("{prefix}{i}.block."))),
                _ => {}
            }
        }
        out
    }

    fn named(&self, prefix: &str, get: impl Fn(&Layer) -> Vec<ParamInfo>) -> Vec<ParamInfo> {
        let mut out = Vec::new();
        for (i, layer) in &self.layers {
            for p in get(layer) {
                out.push(ParamInfo { name: format!("{prefix}{i}.{}", p.name), ..p });
            }
        }
        out
    }

    /// Trainable tensors named `{prefix}{spec index}.{name}`.
    pub fn params(&self, prefix: &str) -> Vec<ParamInfo> {
        self.named(prefix, Layer::params)
    }

    /// Every tensor in layer order (a layer's parameters, then its buffers),
    /// with `true` for trainable ones; named like [`Chain::params`].
    pub fn tensors(&self, prefix: &str) -> Vec<(ParamInfo, bool)> {
        let mut all: Vec<(ParamInfo, bool)> = self.params(prefix).into_iter().map(|p| (p, true)).collect();
        all.extend(self.buffers(prefix).into_iter().map(|p| (p, false)));
        let layer_of = |name: &str| name[prefix.len()..].split('.').next().and_then(|i| i.parse::<usize>().ok()).unwrap_or(usize::MAX);
        all.sort_by_key(|(p, _)| layer_of(&p.name)); // stable: parameters stay before buffers
        all
    }

    /// Buffers named like [`Chain::params`].
    pub fn buffers(&self, prefix: &str) -> Vec<ParamInfo> {
        self.named(prefix, Layer::buffers)
    }

    /// Every L1/L2 penalty in the chain, nested residual blocks included.
    pub fn penalties(&self) -> Vec<Penalty> {
        let mut out = self.penalties.clone();
        for (_, layer) in &self.layers {
            out.extend(layer.nested_penalties());
        }
        out
    }

    pub fn init(&self, params: &mut [f32], buffers: &mut [f32], rng: &mut ChaCha8Rng) {
        for (_, layer) in &self.layers {
            layer.init(params, buffers, rng);
        }
    }

    /// Runs every layer and, in training mode, folds the batch statistics into
    /// the running ones in `buffers`; the result is then in [`Chain::output`].
    ///
    /// # Errors
    /// `Error::Shape` when `x` has the wrong width (`buffers` are then unchanged).
    pub fn forward(&mut self, x: MatRef<'_>, params: &[f32], buffers: &mut [f32], ctx: &Ctx) -> Result<()> {
        if self.forward_dense_in_ranges(x, params)? {
            return Ok(());
        }
        self.run(x, params, buffers, ctx)?;
        if ctx.training {
            self.update_buffers(buffers);
        }
        Ok(())
    }

    /// The forward pass of a chain of flat Dense layers (the MLP) in row
    /// ranges, each through every layer on its share of the threads
    /// ([`dense_rows::forward_in_ranges`]): `false`, with nothing done, for
    /// other chains, layers of more than [`dense_rows::MAX_WEIGHTS`] weights,
    /// a single thread, batches too small for two ranges, or inputs of the
    /// wrong width (the layer-by-layer pass then reports it).
    /// Dense layers keep no state but their buffers, so no mode or mask
    /// matters here.
    ///
    /// # Errors
    /// `Error::Memory` when a buffer cannot grow.
    fn forward_dense_in_ranges(&mut self, x: MatRef<'_>, params: &[f32]) -> Result<bool> {
        let n = self.layers.len();
        let flat_dense = |(_, l): &(usize, Layer)| matches!(l, Layer::Dense(d) if d.row_products_only() && d.weight_len() <= dense_rows::MAX_WEIGHTS);
        if n > dense_rows::MAX_LAYERS || x.rows < 2 * dense_rows::MIN_RANGE_ROWS || available_threads() < 2 || x.cols != self.in_dim() || !self.layers.iter().all(flat_dense) {
            return Ok(false);
        }
        let mut passes = [RowPass::default(); dense_rows::MAX_LAYERS];
        let mut bufs: [(&mut [f32], &mut [f32]); dense_rows::MAX_LAYERS] = Default::default();
        for (l, (_, layer)) in self.layers.iter_mut().enumerate() {
            if let Layer::Dense(dense) = layer {
                let (pass, z, a) = dense.buffers_for(x.rows, x.rows)?;
                passes[l] = pass;
                bufs[l] = (z, a);
            }
        }
        dense_rows::forward_in_ranges(&passes[..n], x, params, &mut bufs[..n])?;
        self.mask_from = None;
        Ok(true)
    }

    /// Runs every layer, reading `buffers` only: what an inference pass through
    /// a shared network does (the chain is then a private workspace, see
    /// network's `infer` module), and the first half of [`Chain::forward`].
    ///
    /// # Errors
    /// `Error::Shape` when `x` has the wrong width.
    pub fn run(&mut self, x: MatRef<'_>, params: &[f32], buffers: &[f32], ctx: &Ctx) -> Result<()> {
        // The step mask of padded sequences, as the index of the layer that
        // made it: handed on while the layers keep the time axis.
        let mut source: Option<usize> = None;
        self.mask_from = None;
        for i in 0..self.layers.len() {
            let (done, rest) = self.layers.split_at_mut(i);
            let input = done.last().map_or(x, |(_, l)| l.output());
            let mask = source.and_then(|j| done[j].1.step_mask());
            let layer = &mut rest[0].1;
            layer.forward_masked(input, params, buffers, ctx, mask)?;
            source = match layer.mask_flow() {
                MaskFlow::Ends => None,
                MaskFlow::Keeps => source,
                MaskFlow::Produces => Some(i),
            };
        }
        self.mask_from = source;
        Ok(())
    }

    /// The step mask the chain's output carries after the last forward pass:
    /// when a mask producer's time axis reaches the output (per-step outputs
    /// of padded sequences), for the loss to leave the padded steps out.
    pub fn output_mask(&self) -> Option<&StepMask> {
        self.mask_from.and_then(|j| self.layers[j].1.step_mask())
    }

    /// Every layer's [`LayerKind::update_buffers`], after a training-mode [`Chain::run`].
    pub fn update_buffers(&self, buffers: &mut [f32]) {
        for (_, layer) in &self.layers {
            layer.update_buffers(buffers);
        }
    }

    pub fn output(&self) -> MatRef<'_> {
        self.layers.last().expect("a chain has at least one layer").1.output()
    }

    /// Back-propagates `dy` through every layer, last to first, writing the
    /// parameter gradients. `scratch` is a second gradient buffer; the two are
    /// swapped after each layer. When `want_dx` is set, the gradient w.r.t. `x`
    /// ends up in `dy`.
    ///
    /// # Errors
    /// `Error::Shape` when `x` or `dy` do not match the last forward pass.
    pub fn backward(&mut self, x: MatRef<'_>, params: &[f32], grads: &mut [f32], dy: &mut Matrix, scratch: &mut Matrix, want_dx: bool) -> Result<()> {
        for i in (0..self.layers.len()).rev() {
            let (before, rest) = self.layers.split_at_mut(i);
            let input = before.last().map_or(x, |(_, l)| l.output());
            let need = i > 0 || want_dx;
            rest[0].1.backward(input, params, grads, dy, if need { Some(scratch) } else { None })?;
            if need {
                std::mem::swap(dy, scratch);
            }
        }
        Ok(())
    }
}
