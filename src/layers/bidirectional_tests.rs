//! Unit tests of the bidirectional kind: forward and gradients against the
//! `f64` transcription of PyTorch's recurrent equations (recurrent_tests.rs)
//! run in both directions and merged as Keras does, thread-count
//! determinism, named errors.

use crate::error::Error;
use crate::layers::bidirectional::{BidirectionalSpec, MergeMode};
use crate::layers::recurrent::CellKind;
use crate::layers::recurrent_tests::{reference, spec};
use crate::layers::testkit::{check_grads, random, run_in_pool};
use crate::layers::{Alloc, BuildLayer, Ctx, LayerKind};
use crate::tensor::Matrix;

fn bidir(cell: CellKind, t: usize, f: usize, h: usize, seq: bool, merge: MergeMode) -> BidirectionalSpec {
    BidirectionalSpec { forward: spec(cell, t, f, h, seq, false), backward: spec(cell, t, f, h, seq, true), merge_mode: merge }
}

/// Both directions by the reference, the backward one's steps put back in
/// time order, merged per position.
#[allow(clippy::too_many_arguments)]
fn merged(cell: CellKind, t: usize, f: usize, h: usize, seq: bool, merge: MergeMode, x: &[f64], p: &[f64]) -> Vec<f64> {
    let half = p.len() / 2;
    let fw = reference(cell, t, f, h, seq, false, x, &p[..half]);
    let bw = reference(cell, t, f, h, seq, true, x, &p[half..]);
    let s = if seq { t } else { 1 };
    let n = x.len() / (t * f);
    let mut out = Vec::new();
    for i in 0..n {
        for pos in 0..s {
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
