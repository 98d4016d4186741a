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
use crate::layers::{Layer, LayerSpec, ParamInfo};
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
    layers: Vec<Layer>,
    loss: Loss,
    params: Vec<f32>,
    grads: Vec<f32>,
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
        let mut layers = Vec::with_capacity(spec.layers.len());
        let (mut width, mut offset) = (spec.input_dim, 0);
        for ls in &spec.layers {
            let layer = Layer::build(ls, width, offset)?;
            width = layer.out_dim();
            offset += layer.n_params();
            layers.push(layer);
        }
        let mut params = vec![0.0; offset];
        let mut rng = rng_for(spec.seed, STREAM_INIT);
        for layer in &layers {
            layer.init_params(&mut params, &mut rng);
        }
        let grads = vec![0.0; offset];
        let core = Core { layers, loss, params, grads, optimizer, dy: Matrix::default(), dx: Matrix::default() };
        Ok(Self { spec, core, batch: BatchBuffers::default() })
    }

    pub fn spec(&self) -> &NetworkSpec {
        &self.spec
    }

    pub fn input_dim(&self) -> usize {
        self.spec.input_dim
    }

    pub fn output_dim(&self) -> usize {
        self.core.layers.last().map_or(0, Layer::out_dim)
    }

    pub fn loss(&self) -> Loss {
        self.core.loss
    }

    pub fn layers(&self) -> &[Layer] {
        &self.core.layers
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

    /// Named parameter tensors: `layers.{i}.{name}` with shapes and offsets.
    pub fn param_infos(&self) -> Vec<(String, ParamInfo)> {
        let mut out = Vec::new();
        for (i, layer) in self.core.layers.iter().enumerate() {
            for p in layer.params() {
                out.push((format!("layers.{i}.{}", p.name), p));
            }
        }
        out
    }

    /// Overwrites the tensor called `name` (see [`Network::param_infos`]).
    ///
    /// # Errors
    /// `Error::Config` for an unknown name, `Error::Shape` for a wrong length,
    /// `Error::NonFinite` for NaN/inf values.
    pub fn set_param(&mut self, name: &str, values: &[f32]) -> Result<()> {
        let info = self
            .param_infos()
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, p)| p)
            .ok_or_else(|| Error::Config(format!("no parameter named '{name}'")))?;
        ensure_shape(values.len() == info.len(), || format!("parameter '{name}' has shape {:?} ({} values), got {} values", info.shape, info.len(), values.len()))?;
        if !all_finite(values) {
            return Err(Error::NonFinite(format!("values for '{name}' contain NaN or infinity")));
        }
        self.core.params[info.offset..info.offset + info.len()].copy_from_slice(values);
        Ok(())
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
        self.run(x.rows, |net| net.core.step(x, &targets))
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
        let mut total = LossStats::default();
        if !shuffle {
            for start in (0..n).step_by(batch_size) {
                let end = (start + batch_size).min(n);
                total.add(self.core.step(x.rows_range(start, end), &targets.rows_range(start, end))?);
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
            total.add(self.core.step(b.x.view(), &batch_targets)?);
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
                let y = net.core.forward(x.rows_range(start, end))?;
                out.as_mut_slice()[start * y.cols..end * y.cols].copy_from_slice(y.data);
            }
            Ok::<_, Error>(())
        })?;
        Ok(out)
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
                let y = net.core.forward(x.rows_range(start, end))?;
                total.add(loss.evaluate(y, &targets.rows_range(start, end), None));
            }
            Ok(total)
        })
    }
}

impl Core {
    fn forward<'s, 'x: 's>(&'s mut self, x: MatRef<'x>) -> Result<MatRef<'s>> {
        for i in 0..self.layers.len() {
            let (done, rest) = self.layers.split_at_mut(i);
            let input = done.last().map_or(x, Layer::output);
            rest[0].forward(input, &self.params)?;
        }
        Ok(self.layers.last().map_or(x, Layer::output))
    }

    /// Forward, loss gradient, backward, update; inputs already checked.
    fn step(&mut self, x: MatRef<'_>, targets: &Targets<'_>) -> Result<LossStats> {
        self.forward(x)?;
        let out = self.layers.last().map_or(x, Layer::output);
        self.dy.reshape_for(out.rows, out.cols);
        let stats = self.loss.evaluate(out, targets, Some(self.dy.as_mut_slice()));
        for i in (0..self.layers.len()).rev() {
            let (before, rest) = self.layers.split_at_mut(i);
            let input = before.last().map_or(x, Layer::output);
            let dx = if i > 0 { Some(&mut self.dx) } else { None };
            rest[0].backward(input, &self.params, &mut self.grads, &mut self.dy, dx)?;
            std::mem::swap(&mut self.dy, &mut self.dx);
        }
        self.optimizer.step(&mut self.params, &self.grads);
        Ok(stats)
    }
}
