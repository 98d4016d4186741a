//! A network: its layers, one flat parameter vector, the optimizer and every
//! workspace a training step needs.
//!
//! `train_step` is forward → loss and its gradient → backward → update, in one
//! call. Workspaces grow only when the batch grows, so a steady training loop
//! allocates nothing. `train_epoch` runs a whole seeded-shuffle epoch the same way.

use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use crate::error::{ensure_config, ensure_shape, Error, Result};
use crate::init::rng_for;
use crate::kernels::reduce::all_finite;
use crate::layers::{Alloc, Chain, Ctx, LayerSpec, ParamInfo};
use crate::loss::{Loss, LossStats, Targets};
use crate::optim::{Optimizer, OptimizerConfig};
use crate::tensor::{MatRef, Matrix};
use crate::threads;

/// Everything needed to rebuild a network: stored as JSON in model files.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NetworkSpec {
    pub input_dim: usize,
    pub layers: Vec<LayerSpec>,
    pub loss: String,
    pub optimizer: OptimizerConfig,
    #[serde(default)]
    pub seed: u64,
}

/// Rows per forward chunk in `predict`/`evaluate`, bounding workspace memory.
const INFER_CHUNK: usize = 1024;

/// Work (rows × parameters) below which a call stays on the caller's thread:
/// waking the pool costs more than it saves for tiny calls such as one sample.
const POOL_WORK: usize = 1 << 16;

/// Random streams derived from the user's seed (see [`rng_for`]).
const STREAM_INIT: u64 = 0;
const STREAM_SHUFFLE: u64 = 1;

/// The compute state: layers, parameters, gradients, optimizer, gradient buffers.
/// Kept apart from the batch buffers so a step can borrow both at once.
#[derive(Clone, Debug)]
struct Core {
    chain: Chain,
    loss: Loss,
    params: Vec<f32>,
    grads: Vec<f32>,
    /// Non-trainable state (running statistics), updated by training forwards.
    buffers: Vec<f32>,
    optimizer: Optimizer,
    dy: Matrix,
    dx: Matrix,
}

/// Shuffled mini-batches are gathered here.
#[derive(Clone, Debug, Default)]
struct BatchBuffers {
    x: Matrix,
    labels: Vec<i64>,
    values: Matrix,
    order: Vec<usize>,
}

/// A trainable feed-forward network.
#[derive(Clone, Debug)]
pub struct Network {
    spec: NetworkSpec,
    core: Core,
    batch: BatchBuffers,
    /// The mode of `train_step`/`train_epoch`/`forward`: training (dropout on,
    /// batch statistics) unless set otherwise. `predict` and `evaluate` always infer.
    training: bool,
}

impl Network {
    /// Builds the layers and initialises the parameters from `spec.seed`.
    ///
    /// # Errors
    /// `Error::Config`/`Error::UnknownName` for an invalid spec.
    pub fn new(spec: NetworkSpec) -> Result<Self> {
        ensure_config(spec.input_dim > 0, || "input_dim must be at least 1, got 0".into())?;
        ensure_config(!spec.layers.is_empty(), || "a network needs at least one layer".into())?;
        let loss = Loss::from_name(&spec.loss)?;
        let optimizer = Optimizer::new(spec.optimizer.clone())?;
        let mut alloc = Alloc::default();
        let chain = Chain::build(&spec.layers, spec.input_dim, &mut alloc)?;
        let mut params = vec![0.0; alloc.params];
        let mut buffers = vec![0.0; alloc.buffers];
        chain.init(&mut params, &mut buffers, &mut rng_for(spec.seed, STREAM_INIT));
        let grads = vec![0.0; alloc.params];
        let core = Core { chain, loss, params, grads, buffers, optimizer, dy: Matrix::default(), dx: Matrix::default() };
        Ok(Self { spec, core, batch: BatchBuffers::default(), training: true })
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

    /// Gradients of the last training step, laid out like [`Network::params`].
    pub fn grads(&self) -> &[f32] {
        &self.core.grads
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
        let mut all: Vec<(ParamInfo, bool)> = self.param_infos().into_iter().map(|p| (p, true)).collect();
        all.extend(self.buffer_infos().into_iter().map(|p| (p, false)));
        let layer_of = |name: &str| name.split('.').nth(1).and_then(|i| i.parse::<usize>().ok()).unwrap_or(usize::MAX);
        all.sort_by_key(|(p, _)| layer_of(&p.name)); // stable: parameters stay before buffers
        all
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
        let target = if trainable { &mut self.core.params } else { &mut self.core.buffers };
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
        let source = if trainable { &self.core.params } else { &self.core.buffers };
        Ok((info.shape.clone(), source[info.range()].to_vec()))
    }

    fn check_inputs(&self, x: MatRef<'_>) -> Result<()> {
        if x.rows == 0 {
            return x.check_samples("X");
        }
        ensure_shape(x.cols == self.spec.input_dim, || format!("X has {} features per sample but the model expects {}", x.cols, self.spec.input_dim))?;
        x.check_samples("X")
    }

    /// Checks a dataset against the model without training on it.
    ///
    /// # Errors
    /// As [`Network::train_step`].
    pub fn check(&self, x: MatRef<'_>, targets: &Targets<'_>) -> Result<()> {
        self.check_inputs(x)?;
        self.core.loss.check_targets(targets, x.rows, self.output_dim())
    }

    /// Runs `f` in the thread pool when `rows` samples make enough work for it.
    fn run<R: Send>(&mut self, rows: usize, f: impl FnOnce(&mut Self) -> R + Send) -> R {
        if rows.saturating_mul(self.core.params.len()) >= POOL_WORK {
            threads::install(|| f(self))
        } else {
            f(self)
        }
    }

    /// One training step on a batch: forward, loss, backward, update.
    /// Returns the batch's loss statistics (before the update).
    ///
    /// # Errors
    /// Shape, label, emptiness and finiteness errors; the network is unchanged.
    pub fn train_step(&mut self, x: MatRef<'_>, targets: Targets<'_>) -> Result<LossStats> {
        self.check(x, &targets)?;
        let (training, seed) = (self.training, self.spec.seed);
        self.run(x.rows, |net| net.core.step(x, &targets, training, seed))
    }

    /// One epoch over `(x, targets)` in mini-batches of `batch_size`, shuffled
    /// with a generator seeded by `(seed, epoch)` when `shuffle` is set.
    ///
    /// # Errors
    /// As [`Network::train_step`], plus `Error::Config` for `batch_size == 0`.
    pub fn train_epoch(&mut self, x: MatRef<'_>, targets: Targets<'_>, batch_size: usize, shuffle: bool, seed: u64, epoch: u64) -> Result<LossStats> {
        ensure_config(batch_size > 0, || "batch_size must be at least 1, got 0".into())?;
        self.check(x, &targets)?;
        self.run(x.rows, |net| net.epoch_checked(x, &targets, batch_size, shuffle, seed, epoch))
    }

    fn epoch_checked(&mut self, x: MatRef<'_>, targets: &Targets<'_>, batch_size: usize, shuffle: bool, seed: u64, epoch: u64) -> Result<LossStats> {
        let n = x.rows;
        let (training, net_seed) = (self.training, self.spec.seed);
        let mut total = LossStats::default();
        if !shuffle {
            for start in (0..n).step_by(batch_size) {
                let end = (start + batch_size).min(n);
                total.add(self.core.step(x.rows_range(start, end), &targets.rows_range(start, end), training, net_seed)?);
            }
            return Ok(total);
        }
        let b = &mut self.batch;
        b.order.clear();
        b.order.extend(0..n);
        // Each epoch gets its own stream so that resuming at epoch k reproduces
        // the shuffles of an uninterrupted run.
        let mut rng = rng_for(seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15), STREAM_SHUFFLE);
        b.order.shuffle(&mut rng);
        for start in (0..n).step_by(batch_size) {
            let end = (start + batch_size).min(n);
            let idx = &b.order[start..end];
            b.x.reshape_for(idx.len(), x.cols);
            for (dst, &i) in b.x.as_mut_slice().chunks_exact_mut(x.cols).zip(idx) {
                dst.copy_from_slice(x.row(i));
            }
            let batch_targets = match targets {
                Targets::Labels(l) => {
                    b.labels.clear();
                    b.labels.extend(idx.iter().map(|&i| l[i]));
                    Targets::Labels(&b.labels)
                }
                Targets::Values(v) => {
                    b.values.reshape_for(idx.len(), v.cols);
                    for (dst, &i) in b.values.as_mut_slice().chunks_exact_mut(v.cols).zip(idx) {
                        dst.copy_from_slice(v.row(i));
                    }
                    Targets::Values(b.values.view())
                }
            };
            total.add(self.core.step(b.x.view(), &batch_targets, training, net_seed)?);
        }
        Ok(total)
    }

    /// The network's raw outputs (logits for classification losses).
    ///
    /// # Errors
    /// Shape, emptiness and finiteness errors.
    pub fn predict(&mut self, x: MatRef<'_>) -> Result<Matrix> {
        self.check_inputs(x)?;
        let mut out = Matrix::zeros(x.rows, self.output_dim());
        self.run(x.rows, |net| {
            for start in (0..x.rows).step_by(INFER_CHUNK) {
                let end = (start + INFER_CHUNK).min(x.rows);
                let y = net.core.forward(x.rows_range(start, end), &Ctx::inference())?;
                out.as_mut_slice()[start * y.cols..end * y.cols].copy_from_slice(y.data);
            }
            Ok::<_, Error>(())
        })?;
        Ok(out)
    }

    /// The outputs in the network's current mode (see [`Network::set_training`]):
    /// in training mode dropout is active and BatchNorm uses, and updates, the
    /// batch statistics, as a PyTorch module's forward does. The whole batch is
    /// one pass (batch statistics depend on it).
    ///
    /// # Errors
    /// Shape, emptiness and finiteness errors.
    pub fn forward(&mut self, x: MatRef<'_>) -> Result<Matrix> {
        self.check_inputs(x)?;
        let ctx = self.core.ctx(self.training, self.spec.seed);
        self.run(x.rows, |net| {
            let y = net.core.forward(x, &ctx)?;
            Matrix::from_vec(y.rows, y.cols, y.data.to_vec())
        })
    }

    /// Loss statistics over `(x, targets)` without training.
    ///
    /// # Errors
    /// As [`Network::train_step`].
    pub fn evaluate(&mut self, x: MatRef<'_>, targets: Targets<'_>) -> Result<LossStats> {
        self.check(x, &targets)?;
        self.run(x.rows, |net| {
            let mut total = LossStats::default();
            for start in (0..x.rows).step_by(INFER_CHUNK) {
                let end = (start + INFER_CHUNK).min(x.rows);
                let loss = net.core.loss;
                let y = net.core.forward(x.rows_range(start, end), &Ctx::inference())?;
                total.add(loss.evaluate(y, &targets.rows_range(start, end), None));
            }
            Ok(total)
        })
    }
}

impl Core {
    /// The context of a pass: the mode, and the seed and step dropout draws from.
    fn ctx(&self, training: bool, seed: u64) -> Ctx {
        Ctx { training, seed, step: self.optimizer.steps() }
    }

    fn forward(&mut self, x: MatRef<'_>, ctx: &Ctx) -> Result<MatRef<'_>> {
        self.chain.forward(x, &self.params, &mut self.buffers, ctx)?;
        Ok(self.chain.output())
    }

    /// Forward, loss gradient, backward, update; inputs already checked.
    fn step(&mut self, x: MatRef<'_>, targets: &Targets<'_>, training: bool, seed: u64) -> Result<LossStats> {
        let ctx = self.ctx(training, seed);
        self.chain.forward(x, &self.params, &mut self.buffers, &ctx)?;
        let out = self.chain.output();
        self.dy.reshape_for(out.rows, out.cols);
        let stats = self.loss.evaluate(out, targets, Some(self.dy.as_mut_slice()));
        self.chain.backward(x, &self.params, &mut self.grads, &mut self.dy, &mut self.dx, false)?;
        self.optimizer.step(&mut self.params, &self.grads);
        Ok(stats)
    }
}
