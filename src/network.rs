//! A network: its layers, one flat parameter vector, the optimizer and every
//! workspace a training step needs.
//!
//! `train_step` is forward → loss and its gradient → backward → update, in one
//! call. Workspaces grow only when the batch grows, so a steady training loop
//! allocates nothing. `train_epoch` runs a whole seeded-shuffle epoch the same way.

use serde::{Deserialize, Serialize};

use crate::error::{ensure_config, ensure_shape, try_vec, Error, Result};
use crate::infer::Workspaces;
use crate::init::rng_for;
use crate::kernels::reduce::{all_finite, par_all_finite};
use crate::layers::{Alloc, Chain, Ctx, LayerSpec, ParamInfo};
use crate::regularizer::{Penalty, Weights};
use crate::schedule::Schedule;
use crate::loss::{Loss, Targets};
use crate::optim::{Optimizer, OptimizerConfig};
use crate::tensor::{MatRef, Matrix};
use crate::threads;

/// Everything needed to rebuild a network: stored as JSON in model files.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NetworkSpec {
    pub input_dim: usize,
    /// The per-sample shape of N-D inputs (images, sequences), whose product
    /// is `input_dim`; absent for plain `[batch, features]` inputs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_shape: Option<Vec<usize>>,
    /// A sequence model whose first axis of `input_shape` (the number of time
    /// steps `T`) may differ between calls, as Keras' `input_shape=(None, F)`:
    /// `input_dim` and `input_shape` then hold the length it was built for, and
    /// any whole number of steps of `input_dim / T` values is accepted.
    #[serde(default, skip_serializing_if = "is_false")]
    pub variable_steps: bool,
    pub layers: Vec<LayerSpec>,
    pub loss: String,
    pub optimizer: OptimizerConfig,
    #[serde(default)]
    pub seed: u64,
    /// A learning-rate schedule applied inside the training step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<Schedule>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// The most layers a network may have, nested ones included: far beyond any
/// real model, and it bounds what a spec (or a model file) can make the build
/// spend on layers that hold no tensors.
pub const MAX_LAYERS: usize = 100_000;


/// Work (rows × parameters) below which a call stays on the caller's thread:
/// waking the pool costs more than it saves for tiny calls such as one sample.
pub(crate) const POOL_WORK: usize = 1 << 16;

/// Inputs of at least this many values are scanned for NaN and infinity on
/// the pool's threads (4 MiB of floats: long enough to pay for the hand-over).
const SCAN_IN_POOL: usize = 1 << 20;

/// Random streams derived from the user's seed (see [`rng_for`]).
const STREAM_INIT: u64 = 0;
pub(crate) const STREAM_SHUFFLE: u64 = 1;

/// The compute state: layers, parameters, gradients, optimizer, gradient buffers.
/// Kept apart from the batch buffers so a step can borrow both at once.
#[derive(Clone, Debug)]
pub(crate) struct Core {
    pub(crate) chain: Chain,
    pub(crate) loss: Loss,
    pub(crate) params: Weights,
    pub(crate) grads: Vec<f32>,
    /// Non-trainable state (running statistics), updated by training forwards.
    pub(crate) buffers: Vec<f32>,
    pub(crate) optimizer: Optimizer,
    pub(crate) penalties: Vec<Penalty>,
    pub(crate) rate: Rate,
    pub(crate) dy: Matrix,
    pub(crate) dx: Matrix,
    /// The state at the start of the current training call (see train.rs).
    pub(crate) snap: Option<Box<Snapshot>>,
    /// With `record_grads` on: the weights the last step's gradients were
    /// taken at (see [`Network::set_record_grads`]).
    pub(crate) grad_weights: Option<GradWeights>,
}

/// The weights of the last step, kept for [`Network::grads`]: only the
/// L2-regularized ranges are copied, the only ones `grads` reads.
#[derive(Clone, Debug)]
pub(crate) struct GradWeights {
    pub(crate) values: Vec<f32>,
    /// Whether a step has written them since recording was turned on.
    pub(crate) filled: bool,
}

/// Everything a training step changes.
#[derive(Clone, Debug)]
pub(crate) struct Snapshot {
    pub(crate) params: Vec<f32>,
    pub(crate) buffers: Vec<f32>,
    pub(crate) optimizer: Optimizer,
    /// Whether `params` and `optimizer` were saved too (else only `buffers`,
    /// and the L2-regularized ranges of `params`).
    pub(crate) full: bool,
}

/// Where each step's learning rate comes from: `scale · (schedule(step, epoch)
/// or base)`. `scale` is what ReduceLROnPlateau lowers.
#[derive(Clone, Debug)]
pub(crate) struct Rate {
    pub(crate) base: f32,
    pub(crate) scale: f32,
    pub(crate) epoch: u64,
    pub(crate) schedule: Option<Schedule>,
}

impl Rate {
    /// The rate of the next step, after `steps` steps.
    pub(crate) fn at(&self, steps: u64) -> f32 {
        self.scale * self.schedule.as_ref().map_or(self.base, |s| s.lr_at(steps, self.epoch))
    }
}

/// Shuffled mini-batches are gathered here.
#[derive(Clone, Debug, Default)]
pub(crate) struct BatchBuffers {
    pub(crate) x: Matrix,
    pub(crate) labels: Vec<i64>,
    pub(crate) values: Matrix,
    pub(crate) weights: Vec<f32>,
    pub(crate) order: Vec<usize>,
    /// `(seed, epoch, n)` of the permutation in `order`.
    pub(crate) order_key: Option<(u64, u64, usize)>,
}

/// A trainable feed-forward network.
#[derive(Clone, Debug)]
pub struct Network {
    pub(crate) spec: NetworkSpec,
    pub(crate) core: Core,
    pub(crate) batch: BatchBuffers,
    /// The mode of `train_step`/`train_epoch`/`forward`: training (dropout on,
    /// batch statistics) unless set otherwise. `predict` and `evaluate` always infer.
    pub(crate) training: bool,
    /// Spare workspaces for inference through `&self` (src/infer.rs).
    pub(crate) infer: Workspaces,
}

impl Network {
    /// Builds the layers and initialises the parameters from `spec.seed`.
    ///
    /// # Errors
    /// `Error::Config`/`Error::UnknownName` for an invalid spec (sizes that
    /// overflow included), `Error::Memory` when the parameters, gradients or
    /// buffers cannot be reserved.
    pub fn new(spec: NetworkSpec) -> Result<Self> {
        Self::new_checked(spec, |_| Ok(()))
    }

    /// As [`Network::new`], with `check` run on the tensors the spec asks
    /// for (as [`Network::tensor_infos`] lists them) after the layers are
    /// built but before anything sized by the spec is reserved: a loader
    /// compares them with the tensors its file holds, so a file cannot make
    /// it reserve more than it carries.
    ///
    /// # Errors
    /// As [`Network::new`], and whatever `check` returns.
    pub fn new_checked(spec: NetworkSpec, check: impl FnOnce(&[(ParamInfo, bool)]) -> Result<()>) -> Result<Self> {
        ensure_config(spec.input_dim > 0, || "input_dim must be at least 1, got 0".into())?;
        ensure_config(!spec.layers.is_empty(), || "a network needs at least one layer".into())?;
        if let Some(shape) = &spec.input_shape {
            let count = shape.iter().try_fold(1usize, |acc, &s| acc.checked_mul(s));
            ensure_config(!shape.is_empty() && count == Some(spec.input_dim), || format!("input_shape {shape:?} does not hold input_dim = {} values", spec.input_dim))?;
        }
        if spec.variable_steps {
            let t = spec.input_shape.as_ref().and_then(|s| s.first().copied()).unwrap_or(0);
            ensure_config(t > 0, || "variable_steps needs input_shape with the number of time steps first".into())?;
        }
        let loss = Loss::from_name(&spec.loss)?;
        let mut optimizer = Optimizer::new(spec.optimizer.clone())?;
        if let Some(s) = &spec.schedule {
            s.validate()?;
        }
        let layers = crate::layers::layer_count(&spec.layers);
        ensure_config(layers <= MAX_LAYERS, || format!("a network may have at most {MAX_LAYERS} layers (nested ones included), this one has {layers}"))?;
        let mut alloc = Alloc::default();
        // Building takes only offsets (checked sums); nothing sized by the spec
        // is reserved before `check` has seen the tensors it asks for.
        let chain = Chain::build(&spec.layers, spec.input_dim, &mut alloc)?;
        check(&chain.tensors("layers."))?;
        optimizer.set_layout(&chain.params("layers."));
        let mut penalties = chain.penalties();
        penalties.sort_by_key(|p| p.range.start);
        // L2 gradients are folded into the update (no pass of their own).
        let extra: Vec<_> = penalties.iter().filter(|p| p.reg.l2 != 0.0).map(|p| (p.range.clone(), 2.0 * p.reg.l2)).collect();
        optimizer.set_extra_l2(&extra);
        let rate = Rate { base: spec.optimizer.lr(), scale: 1.0, epoch: 0, schedule: spec.schedule.clone() };
        // Sizes from the spec: reserved fallibly, so a huge model is an error, not an abort.
        let mut params = try_vec(alloc.params, 0.0, "the parameters")?;
        let mut buffers = try_vec(alloc.buffers, 0.0, "the buffers")?;
        let grads = try_vec(alloc.params, 0.0, "the gradients")?;
        chain.init(&mut params, &mut buffers, &mut rng_for(spec.seed, STREAM_INIT));
        let params = Weights::new(params);
        let core = Core { chain, loss, params, grads, buffers, optimizer, penalties, rate, dy: Matrix::default(), dx: Matrix::default(), snap: None, grad_weights: None };
        Ok(Self { spec, core, batch: BatchBuffers::default(), training: true, infer: Workspaces::default() })
    }

    pub fn spec(&self) -> &NetworkSpec {
        &self.spec
    }

    pub fn input_dim(&self) -> usize {
        self.spec.input_dim
    }

    pub fn output_dim(&self) -> usize {
        self.core.chain.out_dim()
    }

    pub fn loss(&self) -> Loss {
        self.core.loss
    }

    pub fn chain(&self) -> &Chain {
        &self.core.chain
    }

    /// Whether `train_step`, `train_epoch` and `forward` run in training mode.
    pub fn training(&self) -> bool {
        self.training
    }

    /// Sets the mode of `train_step`, `train_epoch` and `forward` (PyTorch's
    /// `train()`/`eval()`).
    pub fn set_training(&mut self, training: bool) {
        self.training = training;
    }

    /// Non-trainable state, flat, laid out as [`Network::buffer_infos`] says.
    pub fn buffers(&self) -> &[f32] {
        &self.core.buffers
    }

    /// All parameters, flat, in layer order.
    pub fn params(&self) -> &[f32] {
        &self.core.params
    }

    /// Gradients of the last training step's objective (data loss plus L1/L2
    /// penalties), laid out like [`Network::params`]. A copy: the step itself
    /// adds the L2 part inside the optimizer update, so it is rebuilt here from
    /// the weights before the last step. Those are exact after `train_step`, and
    /// after anything with [`Network::set_record_grads`] on; otherwise, after a
    /// `train_epoch` call of several batches, the L2 part is taken at the
    /// weights the call started from.
    pub fn grads(&self) -> Vec<f32> {
        let mut g = self.core.grads.clone();
        let at = match &self.core.grad_weights {
            Some(r) if r.filled => &r.values,
            _ => self.core.grad_params(),
        };
        for p in self.core.penalties.iter().filter(|p| p.reg.l2 != 0.0) {
            for (gi, &w) in g[p.range.clone()].iter_mut().zip(&at[p.range.clone()]) {
                *gi += 2.0 * p.reg.l2 * w;
            }
        }
        g
    }

    /// Whether each training step keeps the weights its gradients were taken at.
    pub fn record_grads(&self) -> bool {
        self.core.grad_weights.is_some()
    }

    /// Makes each training step keep a copy of its L2-regularized weights as
    /// they were before its update, so that [`Network::grads`] is exact after a
    /// `train_epoch` of many batches too (a gradient monitor turns this on).
    /// Off by default: it costs a copy of those weights per step.
    pub fn set_record_grads(&mut self, on: bool) {
        if on != self.record_grads() {
            self.core.grad_weights = on.then(|| GradWeights { values: vec![0.0; self.core.params.len()], filled: false });
        }
    }

    pub fn optimizer(&self) -> &Optimizer {
        &self.core.optimizer
    }

    pub fn optimizer_mut(&mut self) -> &mut Optimizer {
        &mut self.core.optimizer
    }

    /// Trainable tensors, named `layers.{i}.{name}` (`i` the layer's index in
    /// the spec), with shapes and offsets into [`Network::params`].
    pub fn param_infos(&self) -> Vec<ParamInfo> {
        self.core.chain.params("layers.")
    }

    /// Non-trainable tensors, named like parameters, with offsets into [`Network::buffers`].
    pub fn buffer_infos(&self) -> Vec<ParamInfo> {
        self.core.chain.buffers("layers.")
    }

    /// Every tensor in layer order (a layer's parameters, then its buffers),
    /// with `true` for trainable ones.
    pub fn tensor_infos(&self) -> Vec<(ParamInfo, bool)> {
        self.core.chain.tensors("layers.")
    }

    /// Overwrites the tensor called `name`, a parameter or a buffer (see
    /// [`Network::tensor_infos`]).
    ///
    /// # Errors
    /// `Error::Config` for an unknown name or a negative running variance,
    /// `Error::Shape` for a wrong length, `Error::NonFinite` for NaN/inf values.
    pub fn set_param(&mut self, name: &str, values: &[f32]) -> Result<()> {
        let (info, trainable) = self.find_tensor(name)?;
        ensure_shape(values.len() == info.len(), || format!("parameter '{name}' has shape {:?} ({} values), got {} values", info.shape, info.len(), values.len()))?;
        if !all_finite(values) {
            return Err(Error::NonFinite(format!("values for '{name}' contain NaN or infinity")));
        }
        ensure_config(!name.ends_with("running_var") || values.iter().all(|&v| v >= 0.0), || format!("'{name}' is a variance and cannot be negative"))?;
        let target = if trainable { self.core.params.write() } else { &mut self.core.buffers };
        target[info.range()].copy_from_slice(values);
        Ok(())
    }

    fn find_tensor(&self, name: &str) -> Result<(ParamInfo, bool)> {
        self.tensor_infos().into_iter().find(|(p, _)| p.name == name).ok_or_else(|| Error::Config(format!("no parameter or buffer named '{name}'")))
    }

    /// A copy of tensor `name` (a parameter or a buffer) with its shape.
    ///
    /// # Errors
    /// `Error::Config` for an unknown name.
    pub fn get_tensor(&self, name: &str) -> Result<(Vec<usize>, Vec<f32>)> {
        let (info, trainable) = self.find_tensor(name)?;
        let source: &[f32] = if trainable { &self.core.params } else { &self.core.buffers };
        Ok((info.shape.clone(), source[info.range()].to_vec()))
    }

    /// Values per time step of a model with [`NetworkSpec::variable_steps`].
    fn step_width(&self) -> Option<usize> {
        let t = self.spec.input_shape.as_ref().and_then(|s| s.first().copied()).filter(|_| self.spec.variable_steps)?;
        Some(self.spec.input_dim / t)
    }

    /// `Error::Shape` unless the model takes samples of `cols` values: its
    /// input width, or for a model with variable sequence lengths any whole,
    /// non-zero number of time steps.
    pub(crate) fn check_width(&self, cols: usize) -> Result<()> {
        if cols == self.spec.input_dim {
            return Ok(());
        }
        let Some(step) = self.step_width() else {
            return Err(Error::Shape(format!("X has {cols} features per sample but the model expects {}", self.spec.input_dim)));
        };
        let shape = self.spec.input_shape.as_deref().unwrap_or(&[]);
        let per_step = if shape.len() > 1 { format!("{:?}", &shape[1..]) } else { "one value".into() };
        ensure_shape(cols > 0, || "X holds zero-length sequences (0 time steps); a sequence needs at least one step".into())?;
        ensure_shape(cols % step == 0, || {
            format!("X has {cols} values per sample, which is not a whole number of time steps of {per_step} ({step} values each): the model expects sequences of shape (T, {})", shape[1..].iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", "))
        })
    }

    /// The output width for inputs of `cols` values per sample (the same for
    /// every width but in models with variable sequence lengths, where it
    /// may follow the number of steps).
    ///
    /// # Errors
    /// As [`Chain::resize`].
    pub fn output_dim_for(&self, cols: usize) -> Result<usize> {
        if cols == self.core.chain.in_dim() {
            return Ok(self.output_dim());
        }
        self.check_width(cols)?;
        self.infer.with(&self.core.chain, |chain| {
            chain.resize(cols)?;
            Ok(chain.out_dim())
        })
    }

    /// Shape, emptiness and finiteness checks of `x`. Inputs of at least
    /// [`SCAN_IN_POOL`] values (a whole training set, checked once per
    /// `fit`) are scanned by every pool thread.
    pub(crate) fn check_inputs(&self, x: MatRef<'_>) -> Result<()> {
        if x.data.len() >= SCAN_IN_POOL {
            return threads::install(|| self.check_inputs_with(x, par_all_finite));
        }
        self.check_inputs_with(x, all_finite)
    }

    /// [`Network::check_inputs`] with the finiteness scan done by `finite`
    /// (inference runs it inside the pool, split over its threads).
    pub(crate) fn check_inputs_with(&self, x: MatRef<'_>, finite: fn(&[f32]) -> bool) -> Result<()> {
        if x.rows == 0 {
            return x.check_samples_with("X", finite);
        }
        self.check_width(x.cols)?;
        x.check_samples_with("X", finite)?;
        // Token ids are checked with the data, before any batch runs, so a
        // bad id leaves the model as it was.
        if let Some(LayerSpec::Embedding(e)) = self.spec.layers.first() {
            e.check_ids(x)?;
        }
        Ok(())
    }

    /// Checks a dataset (and its sample weights) against the model without training on it.
    ///
    /// # Errors
    /// As [`Network::train_step`].
    pub fn check(&self, x: MatRef<'_>, targets: &Targets<'_>, weights: Option<&[f32]>) -> Result<()> {
        self.check_inputs(x)?;
        self.core.loss.check_targets(targets, x.rows, self.output_dim_for(x.cols)?)?;
        weights.map_or(Ok(()), |w| Loss::check_weights(w, x.rows))
    }

    /// The shape-only part of [`Network::check`], for data already checked once
    /// (later chunks of an epoch): skips the O(n) finiteness scans.
    pub(crate) fn check_shapes(&self, x: MatRef<'_>, targets: &Targets<'_>, weights: Option<&[f32]>) -> Result<()> {
        ensure_shape(x.rows > 0, || "X must be non-empty".into())?;
        self.check_width(x.cols)?;
        let out_dim = self.output_dim_for(x.cols)?;
        ensure_shape(targets.len() == x.rows, || format!("X has {} samples but y has {}", x.rows, targets.len()))?;
        if let Targets::Values(v) = targets {
            ensure_shape(v.cols == out_dim, || format!("y has {} columns but the model has {out_dim} outputs", v.cols))?;
        }
        if let Targets::Steps { labels, steps } = targets {
            let classes = (out_dim / steps.max(&1)) as i64;
            ensure_shape(out_dim % steps.max(&1) == 0 && labels.iter().all(|&v| (0..classes).contains(&v)), || "a per-step label is out of range".into())?;
        }
        if let Targets::Labels(l) = targets {
            let out = out_dim as i64;
            ensure_shape(l.iter().all(|&v| (0..out).contains(&v)), || "a label is out of range".into())?;
        }
        ensure_shape(weights.is_none_or(|w| w.len() == x.rows), || "sample_weight needs one value per sample".into())
    }

    /// Runs `f` in the thread pool when `rows` samples make enough work for it.
    pub(crate) fn run<R: Send>(&mut self, rows: usize, f: impl FnOnce(&mut Self) -> R + Send) -> R {
        if rows.saturating_mul(self.core.params.len()) >= POOL_WORK {
            threads::install_awake(|| f(self))
        } else {
            f(self)
        }
    }

    /// The outputs in the network's current mode (see [`Network::set_training`]):
    /// in training mode dropout is active and BatchNorm uses, and updates, the
    /// batch statistics, as a PyTorch module's forward does. The whole batch is
    /// one pass (batch statistics depend on it).
    ///
    /// # Errors
    /// Shape, emptiness and finiteness errors.
    pub fn forward(&mut self, x: MatRef<'_>) -> Result<Matrix> {
        if !self.training {
            return self.forward_inference(x);
        }
        self.check_inputs(x)?;
        let mut out = Matrix::try_zeros(x.rows, self.output_dim_for(x.cols)?)?;
        let ctx = self.core.ctx(self.training, self.spec.seed);
        self.run(x.rows, |net| {
            out.as_mut_slice().copy_from_slice(net.core.forward(x, &ctx)?.data);
            Ok::<_, Error>(())
        })?;
        Ok(out)
    }
}

impl Core {
    /// The parameters the last step's gradients were taken at: the snapshot
    /// (exact after `train_step`, whose snapshot is the state before its one
    /// step), else the current ones.
    fn grad_params(&self) -> &[f32] {
        self.snap.as_ref().map_or(&self.params, |s| &s.params[..])
    }

    /// The context of a pass: the mode, and the seed and step dropout draws from.
    pub(crate) fn ctx(&self, training: bool, seed: u64) -> Ctx {
        Ctx { training, seed, step: self.optimizer.steps() }
    }

    pub(crate) fn forward(&mut self, x: MatRef<'_>, ctx: &Ctx) -> Result<MatRef<'_>> {
        self.chain.resize(x.cols)?;
        self.chain.forward(x, &self.params, &mut self.buffers, ctx)?;
        Ok(self.chain.output())
    }
}
