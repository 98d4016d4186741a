//! [`Layout`]: how the parameter vector splits into named tensors, and the
//! runs of tensors that share a weight-decay flag and extra L2 coefficient.

use std::ops::Range;

use super::OptimizerConfig;
use crate::layers::ParamInfo;

/// How the parameter vector splits into named tensors, from
/// [`Optimizer::set_layout`](super::Optimizer::set_layout).
#[derive(Clone, Debug, Default)]
pub(super) struct Layout {
    /// The parameter count the layout describes (0: none set).
    pub(super) len: usize,
    /// Tensor ranges, in order, tiling `0..len` (for `clipnorm`).
    pub(super) tensors: Vec<Range<usize>>,
    /// Whether each tensor gets weight decay (parallel to `tensors`).
    decay: Vec<bool>,
    /// The update's runs: maximal runs of tensors with the same weight decay
    /// flag and the same extra L2 gradient coefficient (an L2 regularizer's
    /// `2·l2`, folded into the update instead of a pass of its own).
    pub(super) runs: Vec<(Range<usize>, bool, f32)>,
}

impl Layout {
    /// Maximal runs of consecutive tensors that all get weight decay or all
    /// do not (one run when nothing is excluded and no regularizer is set).
    #[cfg(test)]
    pub(super) fn decay_runs(&self) -> Vec<(Range<usize>, bool)> {
        self.runs.iter().map(|(r, d, _)| (r.clone(), *d)).collect()
    }

    /// Recomputes `runs` with `extra[i]` as tensor `i`'s extra L2 coefficient.
    pub(super) fn set_runs(&mut self, extra: &[f32]) {
        self.runs.clear();
        for ((r, &decay), &l2) in self.tensors.iter().zip(&self.decay).zip(extra.iter().chain(std::iter::repeat(&0.0))) {
            match self.runs.last_mut() {
                Some((last, d, e)) if *d == decay && *e == l2 => last.end = r.end,
                _ => self.runs.push((r.clone(), decay, l2)),
            }
        }
    }
}

impl Layout {
    pub(super) fn new(config: &OptimizerConfig, infos: &[ParamInfo]) -> Self {
        let mut sorted: Vec<&ParamInfo> = infos.iter().filter(|i| !i.is_empty()).collect();
        sorted.sort_by_key(|i| i.offset);
        let exclude = config.exclude_from_weight_decay();
        // Decay is off only where it would change something.
        let any_excluded = config.weight_decay() != 0.0 && !exclude.is_empty();
        let mut tensors = Vec::with_capacity(sorted.len() + 1);
        let mut flags = Vec::with_capacity(sorted.len() + 1);
        let mut end = 0;
        for info in sorted {
            let r = info.range();
            debug_assert!(r.start >= end, "parameter tensors overlap at {}", info.name);
            // A gap (which the network never leaves) is a tensor of its own, with decay.
            if r.start > end {
                tensors.push(end..r.start);
                flags.push(true);
            }
            let start = r.start.max(end);
            if r.end <= start {
                continue;
            }
            let decay = !(any_excluded && exclude.iter().any(|s| info.name.contains(s.as_str())));
            tensors.push(start..r.end);
            flags.push(decay);
            end = r.end;
        }
        let mut layout = Self {
            len: end,
            tensors,
            decay: flags,
            runs: Vec::new(),
        };
        layout.set_runs(&[]);
        layout
    }
}
