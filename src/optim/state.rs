//! Sizing and copying an optimizer's state, fallibly.
//!
//! The state is as large as the parameter vector, whose size came from a
//! user's spec or a model file; a failed reservation must be an error the
//! training call returns, not the process abort an infallible `Vec` gives.
//! The training step sizes the state here before its first update (so
//! [`Optimizer::step`] then allocates nothing), and its snapshot copies it here.

use super::{Optimizer, OptimizerConfig};
use crate::error::{try_copy, try_vec, Result};

impl Optimizer {
    /// Sizes the state (and the clipping buffer, when one is used) for `n`
    /// parameters, as the first [`Optimizer::step`] would: a different count
    /// starts a fresh state. Does nothing when the state already fits.
    ///
    /// # Errors
    /// `Error::Memory` when the state cannot be reserved; the optimizer is then unchanged.
    pub fn prepare(&mut self, n: usize) -> Result<()> {
        let names = self.config.state_names();
        if n != self.n_params || self.bufs.len() != names.len() {
            let bufs = names.iter().map(|s| try_vec(n, self.config.initial_state_value(s), "the optimizer state")).collect::<Result<Vec<_>>>()?;
            self.forget_bounds();
            self.t = 0;
            self.n_params = n;
            self.bufs = bufs;
        }
        let clip = self.config.clipping();
        // Adam fuses value and global-norm clipping into its update (see `step`).
        let adam = matches!(self.config, OptimizerConfig::Adam(_) | OptimizerConfig::Adamw(_));
        if clip.is_active() && !(adam && clip.fusable()) && self.clipped.len() != n {
            self.clipped = try_vec(n, 0.0, "the clipped gradients")?;
        }
        Ok(())
    }

    /// A copy of this optimizer's configuration and layout with no state:
    /// the start of a snapshot, without the infallible copy `clone` makes.
    pub(crate) fn stateless_clone(&self) -> Optimizer {
        Optimizer { config: self.config.clone(), t: 0, n_params: 0, bufs: Vec::new(), layout: self.layout.clone(), clipped: Vec::new(), bounds: None, pending_bounds: None }
    }

    /// Makes this optimizer's state (step count, learning rate, moment
    /// buffers) equal to `other`'s, reusing this one's memory: the training
    /// step's snapshot and restore (see train.rs) run once per call, so they
    /// must not allocate once sized.
    ///
    /// # Errors
    /// `Error::Memory` when a buffer must grow and cannot (this optimizer's
    /// state is then incomplete: a snapshot that failed is not used).
    pub fn copy_state_from(&mut self, other: &Optimizer) -> Result<()> {
        self.t = other.t;
        self.n_params = other.n_params;
        self.forget_bounds();
        self.config.clone_from(&other.config);
        self.bufs.resize_with(other.bufs.len(), Vec::new);
        for (dst, src) in self.bufs.iter_mut().zip(&other.bufs) {
            try_copy(dst, src, "a snapshot of the optimizer state")?;
        }
        // Only once every buffer is copied do the bounds describe this state.
        self.bounds = other.bounds;
        self.pending_bounds = other.pending_bounds;
        Ok(())
    }
}
