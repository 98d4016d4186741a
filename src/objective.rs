//! The full-batch objective and its gradient, evaluated without an update:
//! what an outside optimizer drives (ferronn.sklearn's `solver="lbfgs"` runs
//! scipy's L-BFGS-B over the flat parameter vector, asking for both in one call
//! per evaluation).
//!
//! Kept apart from train.rs: nothing here touches the optimizer, its state,
//! the step count or the running statistics, so a line search may evaluate
//! any point any number of times and always get the same answer.

use crate::error::{ensure_shape, try_copy, Result};
use crate::loss::Targets;
use crate::network::{Core, Network};
use crate::tensor::MatRef;

impl Network {
    /// The objective a training step follows, over the whole of `(x, targets)`
    /// as one batch: the mean (sample-weighted) loss plus every L1/L2 penalty,
    /// and its gradient with respect to every parameter, laid out like
    /// [`Network::params`]. Runs in the network's mode (training mode: dropout
    /// masks drawn from the seed and the current step, which this call does not
    /// advance; BatchNorm normalises with the batch's statistics but its running
    /// statistics are left as they are). Nothing is updated; the gradient
    /// buffer [`Network::grads`] reads afterwards holds this evaluation's data
    /// gradient.
    ///
    /// # Errors
    /// Shape, label, emptiness and finiteness errors of the data;
    /// `Error::Memory` when the returned gradient cannot be reserved. A
    /// non-finite loss is returned as it is (an outside optimizer decides).
    pub fn loss_and_grads(&mut self, x: MatRef<'_>, targets: Targets<'_>, weights: Option<&[f32]>) -> Result<(f64, Vec<f32>)> {
        self.check(x, &targets, weights)?;
        let (training, seed) = (self.training, self.spec.seed);
        self.run(x.rows, |net| net.core.objective(x, &targets, weights, training, seed))
    }

    /// For every recurrent layer (named `layers.{i}` as its tensors, nested
    /// ones too), the norm of the objective's gradient with respect to its
    /// hidden state at each input time step, `‖∂L/∂h_t‖` over the whole batch
    /// (see [`crate::layers::Recurrent::step_norms`]), from one evaluation of
    /// [`Network::loss_and_grads`] on `(x, targets)`; nothing is updated.
    ///
    /// # Errors
    /// As [`Network::loss_and_grads`].
    pub fn time_step_grad_norms(&mut self, x: MatRef<'_>, targets: Targets<'_>, weights: Option<&[f32]>) -> Result<Vec<(String, Vec<f64>)>> {
        for (_, layer) in self.core.chain.recurrent_mut("layers.") {
            layer.record_step_norms(true);
        }
        let evaluated = self.loss_and_grads(x, targets, weights);
        let mut norms = Vec::new();
        for (name, layer) in self.core.chain.recurrent_mut("layers.") {
            norms.push((name, layer.step_norms().unwrap_or_default().to_vec()));
            layer.record_step_norms(false);
        }
        evaluated?;
        Ok(norms)
    }

    /// Overwrites every parameter from one flat vector laid out like
    /// [`Network::params`] (the buffers and the optimizer state are untouched).
    ///
    /// # Errors
    /// `Error::Shape` when the length differs from the parameter count; the
    /// parameters are then unchanged.
    pub fn set_params_flat(&mut self, values: &[f32]) -> Result<()> {
        let n = self.core.params.len();
        ensure_shape(values.len() == n, || format!("expected {n} parameter values, got {}", values.len()))?;
        self.core.params.write().copy_from_slice(values);
        Ok(())
    }
}

impl Core {
    /// Forward, loss with its gradient, backward, penalty gradients; inputs already checked.
    fn objective(&mut self, x: MatRef<'_>, targets: &Targets<'_>, weights: Option<&[f32]>, training: bool, seed: u64) -> Result<(f64, Vec<f32>)> {
        let ctx = self.ctx(training, seed);
        // `run` reads the running statistics and never writes them (unlike `Chain::forward`).
        self.chain.resize(x.cols)?;
        self.chain.run(x, &self.params, &self.buffers, &ctx)?;
        let out = self.chain.output();
        self.dy.reshape_for(out.rows, out.cols)?;
        let stats = self.loss.evaluate(out, targets, weights, self.chain.output_mask(), Some(self.dy.as_mut_slice()));
        self.chain.backward(x, &self.params, &mut self.grads, &mut self.dy, &mut self.dx, false)?;
        let mut grad = Vec::new();
        try_copy(&mut grad, &self.grads, "the gradient")?;
        for p in &self.penalties {
            p.reg.add_grad(&self.params[p.range.clone()], &mut grad[p.range.clone()]);
        }
        let loss = stats.mean_loss() + self.params.penalty(&self.penalties);
        Ok((loss, grad))
    }
}
