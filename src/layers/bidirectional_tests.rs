//! Unit tests of the bidirectional kind: forward and gradients against the
//! `f64` transcription of PyTorch's recurrent equations (recurrent_tests.rs)
//! run in both directions and merged as Keras does, with and without step
//! masks, at another sequence length; thread-count determinism, named errors.

use crate::error::Error;
use crate::layers::bidirectional::{BidirectionalSpec, MergeMode};
use crate::layers::recurrent::CellKind;
use crate::layers::recurrent_tests::{reference_masked, spec};
use crate::layers::testkit::{check_grads, check_masked_then_plain, random, rel_err, run_in_pool, to64, WithMask};
use crate::layers::{Alloc, BuildLayer, Ctx, LayerKind, MaskFlow, StepMask};
use crate::tensor::{MatRef, Matrix};

fn bidir(cell: CellKind, t: usize, f: usize, h: usize, seq: bool, merge: MergeMode) -> BidirectionalSpec {
    BidirectionalSpec { forward: spec(cell, t, f, h, seq, false), backward: spec(cell, t, f, h, seq, true), merge_mode: merge }
}

/// Both directions by the reference, the backward one's steps put back in
/// time order, merged per position.
#[allow(clippy::too_many_arguments)]
fn merged(cell: CellKind, t: usize, f: usize, h: usize, seq: bool, merge: MergeMode, x: &[f64], p: &[f64]) -> Vec<f64> {
    merged_masked(cell, t, f, h, seq, merge, &[], x, p)
}

/// [`merged`] with a step mask `keep` (`[n, t]`, empty for none) given to
/// both directions; with `seq` a padded output step is zero (Keras 3 sets
/// `zero_output_for_mask = return_sequences` on the wrapped layers).
#[allow(clippy::too_many_arguments)]
fn merged_masked(cell: CellKind, t: usize, f: usize, h: usize, seq: bool, merge: MergeMode, keep: &[bool], x: &[f64], p: &[f64]) -> Vec<f64> {
    let half = p.len() / 2;
    let fw = reference_masked(cell, t, f, h, seq, false, keep, x, &p[..half]);
    let bw = reference_masked(cell, t, f, h, seq, true, keep, x, &p[half..]);
    let s = if seq { t } else { 1 };
    let n = x.len() / (t * f);
    let width = if merge == MergeMode::Concat { 2 * h } else { h };
    let mut out = Vec::new();
    for i in 0..n {
        for pos in 0..s {
            if seq && !keep.is_empty() && !keep[i * t + pos] {
                out.extend(std::iter::repeat_n(0.0, width));
                continue;
            }
            let a = &fw[(i * s + pos) * h..(i * s + pos + 1) * h];
            let b = &bw[(i * s + s - 1 - pos) * h..(i * s + s - pos) * h];
            match merge {
                MergeMode::Concat => out.extend(a.iter().chain(b)),
                MergeMode::Sum => out.extend(a.iter().zip(b).map(|(x, y)| x + y)),
                MergeMode::Mul => out.extend(a.iter().zip(b).map(|(x, y)| x * y)),
                MergeMode::Ave => out.extend(a.iter().zip(b).map(|(x, y)| 0.5 * (x + y))),
            }
        }
    }
    out
}

#[test]
fn forward_and_gradients_match_both_directions_merged() {
    let (t, f, h, n) = (4, 3, 3, 2);
    for cell in [CellKind::SimpleRnn, CellKind::Lstm, CellKind::Gru] {
        for seq in [false, true] {
            for merge in [MergeMode::Concat, MergeMode::Sum, MergeMode::Mul, MergeMode::Ave] {
                let mut layer = bidir(cell, t, f, h, seq, merge).build(t * f, &mut Alloc::default()).unwrap();
                let names: Vec<String> = layer.params().into_iter().map(|p| p.name).collect();
                assert_eq!(names[0], "forward.weight_ih");
                assert_eq!(names[7], "backward.bias_hh");
                let len: usize = layer.params().iter().map(|p| p.len()).sum();
                let params = random(len, 13, -0.6, 0.6);
                let x = Matrix::from_vec(n, t * f, random(n * t * f, 14, -1.0, 1.0)).unwrap();
                check_grads(&mut layer, &x, &params, &mut [], &Ctx::default(), |x, p| merged(cell, t, f, h, seq, merge, x, p));
            }
        }
    }
}

#[test]
fn results_do_not_depend_on_threads() {
    // run_in_pool feeds an output gradient shaped as x: 2·units = features.
    let (t, f, h, n) = (6, 34, 17, 40);
    for cell in [CellKind::Lstm, CellKind::Gru] {
        let mut layer = bidir(cell, t, f, h, true, MergeMode::Concat).build(t * f, &mut Alloc::default()).unwrap();
        let len: usize = layer.params().iter().map(|p| p.len()).sum();
        let params = random(len, 15, -0.3, 0.3);
        let x = Matrix::from_vec(n, t * f, random(n * t * f, 16, -1.0, 1.0)).unwrap();
        let one = run_in_pool(&mut layer, 1, &x, &params, &[], &Ctx::default());
        let three = run_in_pool(&mut layer, 3, &x, &params, &[], &Ctx::default());
        assert_eq!(one, three, "{cell:?}");
    }
}

#[test]
fn bad_specs_are_config_errors() {
    let (t, f) = (3, 2);
    let build = |s: BidirectionalSpec| s.build(t * f, &mut Alloc::default());
    let same_way = BidirectionalSpec { backward: spec(CellKind::Lstm, t, f, 4, false, false), ..bidir(CellKind::Lstm, t, f, 4, false, MergeMode::Concat) };
    let seqs = BidirectionalSpec { backward: spec(CellKind::Lstm, t, f, 4, true, true), ..bidir(CellKind::Lstm, t, f, 4, false, MergeMode::Concat) };
    let shapes = BidirectionalSpec { backward: spec(CellKind::Lstm, 2, 3, 4, false, true), ..bidir(CellKind::Lstm, t, f, 4, false, MergeMode::Concat) };
    let units = BidirectionalSpec { backward: spec(CellKind::Lstm, t, f, 5, false, true), ..bidir(CellKind::Lstm, t, f, 4, false, MergeMode::Sum) };
    for (bad, says) in [(same_way, "opposite"), (seqs, "return_sequences"), (shapes, "input shape"), (units, "same units")] {
        match build(bad) {
            Err(Error::Config(m)) => assert!(m.contains(says), "{m}"),
            other => panic!("{says}: {other:?}"),
        }
    }
    // Concat takes directions of different sizes (and cells): 4 + 5 units.
    let mixed = BidirectionalSpec { backward: spec(CellKind::Gru, t, f, 5, false, true), ..bidir(CellKind::Lstm, t, f, 4, false, MergeMode::Concat) };
    assert_eq!(build(mixed).unwrap().out_dim(), 9);
    assert!(matches!(bidir(CellKind::Gru, t, f, 4, false, MergeMode::Concat).build(5, &mut Alloc::default()), Err(Error::Config(_))));
    let json = r#"{"type":"bidirectional","forward":{"cell":"gru","input":[3,2],"units":4},"backward":{"cell":"gru","input":[3,2],"units":4,"go_backwards":true},"merge_mode":"max"}"#;
    assert!(serde_json::from_str::<crate::layers::LayerSpec>(json).is_err());
}

#[test]
fn wrong_input_width_is_a_shape_error() {
    let mut alloc = Alloc::default();
    let mut layer = bidir(CellKind::Gru, 3, 2, 4, true, MergeMode::Ave).build(6, &mut alloc).unwrap();
    let params = vec![0.0; alloc.params];
    assert!(matches!(layer.forward(Matrix::zeros(2, 5).view(), &params, &[], &Ctx::default()), Err(Error::Shape(_))));
}

#[test]
fn directions_are_reachable_by_their_tensor_prefixes() {
    let mut layer = bidir(CellKind::Gru, 3, 2, 4, false, MergeMode::Concat).build(6, &mut Alloc::default()).unwrap();
    let sizes: Vec<(&str, usize)> = layer.directions_mut().into_iter().map(|(name, r)| (name, r.out_dim())).collect();
    assert_eq!(sizes, [("forward", 4), ("backward", 4)]);
    let names: Vec<String> = layer.params().into_iter().map(|p| p.name).collect();
    assert!(names.iter().all(|n| n.starts_with("forward.") || n.starts_with("backward.")));
}

/// Sample 0 padded at the end, 1 at the start, 2 in the middle, 3 not at
/// all, 4 entirely.
fn ragged(t: usize) -> StepMask {
    let mut mask = StepMask::default();
    mask.fill(5, t, |i, s| match i {
        0 => s < t - 2,
        1 => s >= 2,
        2 => s != 2,
        3 => true,
        _ => false,
    })
    .unwrap();
    mask
}

#[test]
fn masked_forward_and_gradients_match_both_directions_masked() {
    let (t, f, h, n) = (5, 3, 3, 5);
    let mask = ragged(t);
    let keep = mask.as_slice().to_vec();
    for cell in [CellKind::SimpleRnn, CellKind::Lstm, CellKind::Gru] {
        for seq in [false, true] {
            for merge in [MergeMode::Concat, MergeMode::Sum, MergeMode::Mul, MergeMode::Ave] {
                let inner = bidir(cell, t, f, h, seq, merge).build(t * f, &mut Alloc::default()).unwrap();
                assert_eq!(inner.mask_flow(), if seq { MaskFlow::Keeps } else { MaskFlow::Ends });
                let masked = |x: &[f64], p: &[f64]| merged_masked(cell, t, f, h, seq, merge, &keep, x, p);
                // The same layer without a mask computes every step again.
                let plain = |x: &[f64], p: &[f64]| merged(cell, t, f, h, seq, merge, x, p);
                // The fully padded sample gives zeros; with return_sequences so do all padded steps.
                let padded_are_zero = |out: MatRef<'_>| {
                    assert!(out.row(4).iter().all(|&v| v == 0.0), "{cell:?} {merge:?}");
                    if seq {
                        let w = out.cols / t;
                        assert!(out.row(1)[..2 * w].iter().all(|&v| v == 0.0) && out.row(0)[(t - 2) * w..].iter().all(|&v| v == 0.0));
                    }
                };
                check_masked_then_plain(inner, &mask, n, t * f, 41, masked, plain, padded_are_zero);
            }
        }
    }
}

#[test]
fn masked_results_do_not_depend_on_threads() {
    // run_in_pool feeds an output gradient shaped as x: 2·units = features.
    let (t, f, h) = (5, 34, 17);
    let mask = ragged(t);
    for cell in [CellKind::Lstm, CellKind::Gru] {
        let inner = bidir(cell, t, f, h, true, MergeMode::Concat).build(t * f, &mut Alloc::default()).unwrap();
        let len: usize = inner.params().iter().map(|p| p.len()).sum();
        let params = random(len, 43, -0.3, 0.3);
        let x = Matrix::from_vec(5, t * f, random(5 * t * f, 44, -1.0, 1.0)).unwrap();
        let mut layer = WithMask { inner, mask: &mask };
        let runs: Vec<_> = [1, 2, 3].iter().map(|&k| run_in_pool(&mut layer, k, &x, &params, &[], &Ctx::default())).collect();
        assert_eq!(runs[0], runs[1], "{cell:?}");
        assert_eq!(runs[0], runs[2], "{cell:?}");
    }
}

#[test]
fn another_sequence_length_is_followed_by_both_directions() {
    let (f, h, n) = (2, 3, 3);
    for seq in [false, true] {
        let mut alloc = Alloc::default();
        let mut layer = bidir(CellKind::Lstm, 4, f, h, seq, MergeMode::Concat).build(4 * f, &mut alloc).unwrap();
        assert_eq!(layer.step_width(), Some(f));
        let params = random(alloc.params, 45, -0.6, 0.6);
        for t in [7, 1, 4] {
            layer.set_steps(t).unwrap();
            assert_eq!(layer.out_dim(), if seq { t * 2 * h } else { 2 * h });
            check_grads(&mut layer, &Matrix::from_vec(n, t * f, random(n * t * f, 46 + t as u64, -1.0, 1.0)).unwrap(), &params, &mut [], &Ctx::default(), |x, p| {
                merged(CellKind::Lstm, t, f, h, seq, MergeMode::Concat, x, p)
            });
        }
        assert!(matches!(layer.set_steps(0), Err(Error::Config(_))));
        // A mask of another length than the input's is a shape error.
        let x = Matrix::zeros(5, 4 * f);
        assert!(matches!(layer.forward_masked(x.view(), &params, &[], &Ctx::default(), Some(&ragged(5))), Err(Error::Shape(_))));
    }
}

/// In a chain: Embedding(mask_zero) → Bidirectional(return_sequences) →
/// Bidirectional keeps the mask to the output; without return_sequences it
/// ends with the last states; a resized chain takes another length.
#[test]
fn the_mask_flows_through_a_bidirectional_layer_in_a_chain() {
    use crate::layers::{Chain, LayerSpec};
    let t = 4;
    let dir = |input: usize, units: usize, back: bool| format!(r#"{{"cell":"gru","input":[{t},{input}],"units":{units},"return_sequences":true,"go_backwards":{back}}}"#);
    let json = format!(
        r#"[{{"type":"embedding","input_dim":6,"output_dim":3,"length":{t},"mask_zero":true}},{{"type":"bidirectional","forward":{},"backward":{}}},{{"type":"bidirectional","forward":{},"backward":{},"merge_mode":"sum"}}]"#,
        dir(3, 2, false),
        dir(3, 2, true),
        dir(4, 2, false),
        dir(4, 2, true)
    );
    let build = |json: &str| {
        let specs: Vec<LayerSpec> = serde_json::from_str(json).unwrap();
        let mut alloc = Alloc::default();
        let chain = Chain::build(&specs, t, &mut alloc).unwrap();
        let mut params = vec![0.0; alloc.params];
        chain.init(&mut params, &mut [], &mut crate::init::rng_for(5, 0));
        (chain, params)
    };
    let (mut c, params) = build(&json);
    let ids = Matrix::from_vec(2, t, vec![3.0, 5.0, 0.0, 0.0, 0.0, 1.0, 2.0, 4.0]).unwrap();
    c.run(ids.view(), &params, &[], &Ctx::default()).unwrap();
    assert_eq!(c.output_mask().unwrap().as_slice(), &[true, true, false, false, false, true, true, true]);
    let out = c.output().data.to_vec();
    assert!(out[4..8].iter().all(|&v| v == 0.0) && out[8..10].iter().all(|&v| v == 0.0), "padded steps are zero: {out:?}");
    // Sample 0 alone, cut to its two real steps: the same outputs there.
    c.resize(2).unwrap();
    c.run(Matrix::from_vec(1, 2, vec![3.0, 5.0]).unwrap().view(), &params, &[], &Ctx::default()).unwrap();
    assert!(rel_err(c.output().data, &to64(&out[..4])) < 1e-6);
    // Without return_sequences at the end, the mask ends there.
    let mut specs: Vec<LayerSpec> = serde_json::from_str(&json).unwrap();
    if let Some(LayerSpec::Bidirectional(b)) = specs.last_mut() {
        b.forward.return_sequences = false;
        b.backward.return_sequences = false;
    }
    let mut alloc = Alloc::default();
    let mut c = Chain::build(&specs, t, &mut alloc).unwrap();
    c.run(ids.view(), &vec![0.1; alloc.params], &[], &Ctx::default()).unwrap();
    assert!(c.output_mask().is_none(), "the last states have no time axis");
}
