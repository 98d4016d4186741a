//! Bidirectional recurrence (Keras' `Bidirectional`, PyTorch's
//! `bidirectional=True`): two recurrent layers read the same sequence, one
//! from its start and one from its end, and their outputs are merged.
//!
//! The two directions are plain [`Recurrent`] layers (their cell math, BPTT
//! and workspaces are recurrent.rs's); this kind only merges their outputs
//! and splits the output gradient between them. As Keras, the backward
//! direction is the layer with `go_backwards` flipped, and with
//! `return_sequences` its outputs (which come in its reading order) are
//! reversed back in time before merging, so output step `t` pairs the
//! forward state after input step `t` with the backward state after reading
//! input steps `T-1 .. t`. Tensors are `forward.<name>` and `backward.<name>`
//! (`forward.weight_ih`, ...), PyTorch's `weight_ih_l0` and
//! `weight_ih_l0_reverse` when both directions are the same cell and size.
//!
//! Sequences of any length: the kind works step by step, so it re-targets
//! both directions at another `T` as a recurrent layer does.
//!
//! Masks (Keras 3's `Bidirectional`): the step mask of padded sequences goes
//! to both directions, which skip the same padded steps and carry their
//! state over them. With `return_sequences` the mask passes on to the next
//! layer, and (unlike a plain recurrent layer, whose padded step repeats the
//! state so far) a padded step's output is zero in both directions: Keras
//! forces `zero_output_for_mask = return_sequences` on the wrapped layers.
//! So a padded output step is zero whatever the merge, and gets no gradient.
//! Without `return_sequences` the output is the last states, as the
//! directions give them, and the mask ends with the time axis.
//!
//! The merge is elementwise on the calling thread, so results stay
//! bit-identical whatever the thread count; its workspaces grow only with
//! the batch.

use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::{ensure_config, try_grow, Result};
use crate::layers::kind::{check_backward, BuildLayer};
use crate::layers::recurrent::{Recurrent, RecurrentSpec};
use crate::layers::{Alloc, Ctx, LayerKind, MaskFlow, ParamInfo, StepMask};
use crate::regularizer::Penalty;
use crate::tensor::{MatRef, Matrix};

/// How the two directions' outputs combine (Keras' `merge_mode`; its `None`,
/// two separate outputs, has no place in a single-output chain).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MergeMode {
    /// `[forward, backward]` along the feature axis (Keras' default).
    Concat,
    /// `forward + backward`.
    Sum,
    /// `forward · backward`, elementwise.
    Mul,
    /// `(forward + backward) / 2`.
    Ave,
}

fn concat() -> MergeMode {
    MergeMode::Concat
}

/// `{"type": "bidirectional", "forward": {..}, "backward": {..}, "merge_mode": "concat"}`:
/// the two directions' recurrent specs (without their `"type"`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BidirectionalSpec {
    /// The direction whose outputs come first (`go_backwards` as the wrapped layer's).
    pub forward: RecurrentSpec,
    /// The other direction: `go_backwards` flipped, the rest as Keras allows.
    pub backward: RecurrentSpec,
    #[serde(default = "concat")]
    pub merge_mode: MergeMode,
}

impl BuildLayer for BidirectionalSpec {
    type Layer = Bidirectional;

    /// # Errors
    /// `Error::Config` when the directions read the sequence the same way, do
    /// not agree on `return_sequences` or the input shape, or (merge modes
    /// other than concat) differ in units; and as [`RecurrentSpec::build`].
    fn build(&self, in_dim: usize, alloc: &mut Alloc) -> Result<Bidirectional> {
        let (f, b) = (&self.forward, &self.backward);
        ensure_config(f.go_backwards != b.go_backwards, || {
            "Bidirectional's forward and backward layers must read the sequence in opposite directions (different go_backwards)".into()
        })?;
        ensure_config(f.return_sequences == b.return_sequences, || {
            format!("Bidirectional's forward and backward layers must agree on return_sequences, got {} and {}", f.return_sequences, b.return_sequences)
        })?;
        ensure_config(f.input == b.input, || format!("Bidirectional's forward and backward layers must take the same input shape, got {:?} and {:?}", f.input, b.input))?;
        ensure_config(self.merge_mode == MergeMode::Concat || f.units == b.units, || {
            format!("Bidirectional merge_mode {:?} needs both directions to have the same units, got {} and {}", self.merge_mode, f.units, b.units)
        })?;
        let forward = f.build(in_dim, alloc)?;
        let backward = b.build(in_dim, alloc)?;
        ensure_config(forward.out_dim().checked_add(backward.out_dim()).is_some(), || "Bidirectional's output is too large: its size overflows".into())?;
        Ok(Bidirectional {
            forward,
            backward,
            merge: self.merge_mode,
            units: [f.units, b.units],
            return_sequences: f.return_sequences,
            positions: 0,
            in_cols: 0,
            rows: 0,
            out: Matrix::default(),
            dy: [Matrix::default(), Matrix::default()],
            dx_backward: Matrix::default(),
            keep: Vec::new(),
        })
    }
}

/// A built bidirectional layer; see the module docs.
#[derive(Clone, Debug)]
pub struct Bidirectional {
    forward: Recurrent,
    backward: Recurrent,
    merge: MergeMode,
    /// Units of the forward and backward directions.
    units: [usize; 2],
    /// Both directions' (the build checks that they agree).
    return_sequences: bool,
    /// Of the last forward pass: output positions per sample (`T` with
    /// `return_sequences`, else 1), the input width and the samples. Read
    /// from the pass rather than fixed at build, so nothing here depends on
    /// the sequence length.
    positions: usize,
    in_cols: usize,
    rows: usize,
    out: Matrix,
    /// The output gradient split per direction, each in its own layer's
    /// order (the backward one in reading order).
    dy: [Matrix; 2],
    /// The backward direction's input gradient, added into the forward's.
    dx_backward: Matrix,
    /// With `return_sequences` and a step mask: the mask of the last forward
    /// pass, sample-major `[batch, T]` by output (= input) step; empty when
    /// every output step is real.
    keep: Vec<bool>,
}

impl Bidirectional {
    /// The two directions, named as their tensors' prefixes (`forward`,
    /// `backward`): for diagnostics that switch on per-layer recording in
    /// the recurrent layers (per-step gradient norms).
    pub fn directions_mut(&mut self) -> [(&'static str, &mut Recurrent); 2] {
        [("forward", &mut self.forward), ("backward", &mut self.backward)]
    }

    /// Runs both directions on `x` with the same step mask: each skips the
    /// same padded steps (each checks the mask against its input).
    fn run_directions(&mut self, x: MatRef<'_>, params: &[f32], buffers: &[f32], ctx: &Ctx, mask: Option<&StepMask>) -> Result<()> {
        self.forward.forward_masked(x, params, buffers, ctx, mask)?;
        self.backward.forward_masked(x, params, buffers, ctx, mask)
    }

    /// Merged values per output position.
    fn width(&self) -> usize {
        match self.merge {
            MergeMode::Concat => self.units[0] + self.units[1],
            _ => self.units[0],
        }
    }

    fn merge_outputs(&mut self) -> Result<()> {
        let n = self.rows;
        self.out.reshape_for(n, self.out_dim())?;
        let width = self.width();
        let (fw, bw) = (self.forward.output().data, self.backward.output().data);
        let [uf, ub] = self.units;
        let out = self.out.as_mut_slice();
        for i in 0..n {
            for p in 0..self.positions {
                let [of, ob, oo] = offsets(self.units, self.positions, width, i, p);
                if !self.keep.is_empty() && !self.keep[i * self.positions + p] {
                    out[oo..oo + width].fill(0.0);
                    continue;
                }
                let (a, b) = (&fw[of..of + uf], &bw[ob..ob + ub]);
                match self.merge {
                    MergeMode::Concat => {
                        out[oo..oo + uf].copy_from_slice(a);
                        out[oo + uf..oo + uf + ub].copy_from_slice(b);
                    }
                    MergeMode::Sum => out[oo..oo + uf].iter_mut().zip(a.iter().zip(b)).for_each(|(o, (x, y))| *o = x + y),
                    MergeMode::Mul => out[oo..oo + uf].iter_mut().zip(a.iter().zip(b)).for_each(|(o, (x, y))| *o = x * y),
                    MergeMode::Ave => out[oo..oo + uf].iter_mut().zip(a.iter().zip(b)).for_each(|(o, (x, y))| *o = 0.5 * (x + y)),
                }
            }
        }
        Ok(())
    }

    /// Splits `dy` into each direction's output gradient (the merge's chain rule).
    fn split_gradient(&mut self, dy: &[f32]) -> Result<()> {
        let n = self.rows;
        let [uf, ub] = self.units;
        let (s, width) = (self.positions, self.width());
        self.dy[0].reshape_for(n, s * uf)?;
        self.dy[1].reshape_for(n, s * ub)?;
        let (fw, bw) = (self.forward.output().data, self.backward.output().data);
        let [dy_f, dy_b] = &mut self.dy;
        let (dy_f, dy_b) = (dy_f.as_mut_slice(), dy_b.as_mut_slice());
        for i in 0..n {
            for p in 0..s {
                let [of, ob, oo] = offsets(self.units, s, width, i, p);
                let (df, db) = (&mut dy_f[of..of + uf], &mut dy_b[ob..ob + ub]);
                if !self.keep.is_empty() && !self.keep[i * s + p] {
                    // A padded step's output is the constant zero: nothing flows back from it.
                    df.fill(0.0);
                    db.fill(0.0);
                    continue;
                }
                let g = &dy[oo..];
                match self.merge {
                    MergeMode::Concat => {
                        df.copy_from_slice(&g[..uf]);
                        db.copy_from_slice(&g[uf..uf + ub]);
                    }
                    MergeMode::Sum => {
                        df.copy_from_slice(&g[..uf]);
                        db.copy_from_slice(&g[..uf]);
                    }
                    MergeMode::Mul => {
                        df.iter_mut().zip(&g[..uf]).zip(&bw[ob..ob + ub]).for_each(|((d, g), y)| *d = g * y);
                        db.iter_mut().zip(&g[..uf]).zip(&fw[of..of + uf]).for_each(|((d, g), x)| *d = g * x);
                    }
                    MergeMode::Ave => {
                        df.iter_mut().zip(&g[..uf]).for_each(|(d, g)| *d = 0.5 * g);
                        db.iter_mut().zip(&g[..uf]).for_each(|(d, g)| *d = 0.5 * g);
                    }
                }
            }
        }
        Ok(())
    }
}

/// For output position `p` of sample `i` (of `s` positions per sample, each
/// `width` merged values): the offsets of the forward state, of the backward
/// state (its reading order reversed) and of the merged output.
fn offsets([uf, ub]: [usize; 2], s: usize, width: usize, i: usize, p: usize) -> [usize; 3] {
    [(i * s + p) * uf, (i * s + s - 1 - p) * ub, (i * s + p) * width]
}

fn prefixed(infos: Vec<ParamInfo>, prefix: &str) -> impl Iterator<Item = ParamInfo> + '_ {
    infos.into_iter().map(move |i| ParamInfo { name: format!("{prefix}{}", i.name), ..i })
}

impl LayerKind for Bidirectional {
    fn out_dim(&self) -> usize {
        match self.merge {
            MergeMode::Concat => self.forward.out_dim() + self.backward.out_dim(),
            _ => self.forward.out_dim(),
        }
    }

    fn params(&self) -> Vec<ParamInfo> {
        prefixed(self.forward.params(), "forward.").chain(prefixed(self.backward.params(), "backward.")).collect()
    }

    /// Each direction as its own layer would start (Keras' initializers).
    fn init(&self, params: &mut [f32], buffers: &mut [f32], rng: &mut ChaCha8Rng) {
        self.forward.init(params, buffers, rng);
        self.backward.init(params, buffers, rng);
    }

    fn forward(&mut self, x: MatRef<'_>, params: &[f32], buffers: &[f32], ctx: &Ctx) -> Result<()> {
        self.forward_masked(x, params, buffers, ctx, None)
    }

    /// Both directions skip the padded steps; with `return_sequences` the
    /// padded output steps are zero (see the module docs).
    fn forward_masked(&mut self, x: MatRef<'_>, params: &[f32], buffers: &[f32], ctx: &Ctx, mask: Option<&StepMask>) -> Result<()> {
        self.keep.clear();
        self.rows = 0;
        self.run_directions(x, params, buffers, ctx, mask)?;
        self.rows = x.rows;
        self.in_cols = x.cols;
        self.positions = self.forward.output().cols / self.units[0];
        if let (Some(m), true) = (mask, self.return_sequences) {
            // The directions accepted the mask, so it is [rows, T] with T = positions.
            try_grow(&mut self.keep, m.as_slice().len(), "the bidirectional step mask")?;
            self.keep.extend_from_slice(m.as_slice());
        }
        self.merge_outputs()
    }

    fn output(&self) -> MatRef<'_> {
        self.out.view()
    }

    /// Each direction back-propagates its share of `dy`; their input
    /// gradients add up (both read the same `x`).
    fn backward(&mut self, x: MatRef<'_>, params: &[f32], grads: &mut [f32], dy: &mut Matrix, dx: Option<&mut Matrix>) -> Result<()> {
        check_backward("Bidirectional", x, dy, self.rows, self.in_cols, self.out_dim())?;
        self.split_gradient(dy.as_slice())?;
        match dx {
            Some(dx) => {
                self.forward.backward(x, params, grads, &mut self.dy[0], Some(&mut *dx))?;
                self.backward.backward(x, params, grads, &mut self.dy[1], Some(&mut self.dx_backward))?;
                dx.as_mut_slice().iter_mut().zip(self.dx_backward.as_slice()).for_each(|(a, b)| *a += b);
            }
            None => {
                self.forward.backward(x, params, grads, &mut self.dy[0], None)?;
                self.backward.backward(x, params, grads, &mut self.dy[1], None)?;
            }
        }
        Ok(())
    }

    /// The directions' per-step input width: both read the same sequence.
    fn step_width(&self) -> Option<usize> {
        self.forward.step_width()
    }

    /// Both directions follow the new length (their checks name the cell).
    fn set_steps(&mut self, steps: usize) -> Result<()> {
        self.forward.set_steps(steps)?;
        self.backward.set_steps(steps)?;
        self.rows = 0;
        self.keep.clear();
        Ok(())
    }

    /// Keras' `compute_mask`: the mask stays with `return_sequences` and
    /// ends with the last states.
    fn mask_flow(&self) -> MaskFlow {
        if self.return_sequences {
            MaskFlow::Keeps
        } else {
            MaskFlow::Ends
        }
    }

    /// Both directions' kernel, recurrent and bias regularizers.
    fn nested_penalties(&self) -> Vec<Penalty> {
        let mut out = self.forward.nested_penalties();
        out.extend(self.backward.nested_penalties());
        out
    }
}
