//! Unit tests of sequences of any length and of masked (padded) sequences:
//! layers and chains re-targeted at another number of time steps than they
//! were built for, and recurrent layers skipping padded steps, checked
//! against the `f64` reference of recurrent_tests.rs.

use crate::error::Error;
use crate::layers::recurrent::CellKind;
use crate::layers::recurrent_tests::{reference, reference_masked, spec};
use crate::layers::testkit::{check_grads, check_masked_then_plain, random, run_in_pool, WithMask};
use crate::layers::{Alloc, BuildLayer, Chain, Ctx, LayerKind, LayerSpec, MaskingSpec, StepMask};
use crate::tensor::{MatRef, Matrix};

#[test]
fn recurrent_layers_run_any_number_of_steps() {
    let (f, h, n) = (3, 4, 2);
    for cell in [CellKind::SimpleRnn, CellKind::Lstm, CellKind::Gru] {
        for (seq, back) in [(false, false), (true, false), (true, true)] {
            let mut layer = spec(cell, 5, f, h, seq, back).build(5 * f, &mut Alloc::default()).unwrap();
            let len: usize = layer.params().iter().map(|p| p.len()).sum();
            let params = random(len, 21, -0.6, 0.6);
            // Longer, shorter, then the built length again: workspaces are reused.
            for t in [9, 2, 5] {
                layer.set_steps(t).unwrap();
                assert_eq!(layer.out_dim(), if seq { t * h } else { h });
                let x = Matrix::from_vec(n, t * f, random(n * t * f, 22 + t as u64, -1.0, 1.0)).unwrap();
                check_grads(&mut layer, &x, &params, &mut [], &Ctx::default(), |x, p| reference(cell, t, f, h, seq, back, x, p));
            }
            assert!(matches!(layer.set_steps(0), Err(Error::Config(_))));
        }
    }
}

fn chain(json: &str, in_dim: usize) -> (Chain, Vec<f32>) {
    let specs: Vec<LayerSpec> = serde_json::from_str(json).unwrap();
    let mut alloc = Alloc::default();
    let chain = Chain::build(&specs, in_dim, &mut alloc).unwrap();
    let mut params = vec![0.0; alloc.params];
    chain.init(&mut params, &mut [], &mut crate::init::rng_for(3, 0));
    (chain, params)
}

/// A chain re-targeted at `t` steps computes what a chain built for `t` does.
#[test]
fn a_resized_chain_matches_one_built_for_that_length() {
    let layers = |t: usize| {
        format!(
            r#"[{{"type":"embedding","input_dim":7,"output_dim":3,"length":{t}}},{{"type":"recurrent","cell":"gru","input":[{t},3],"units":4,"return_sequences":true}},{{"type":"dropout","rate":0.5}},{{"type":"dense","units":2,"in_features":4}},{{"type":"activation","activation":"tanh"}},{{"type":"recurrent","cell":"lstm","input":[{t},2],"units":3}}]"#
        )
    };
    let (mut resized, params) = chain(&layers(4), 4);
    for t in [6, 1, 4] {
        let (mut fresh, same) = chain(&layers(t), t);
        assert_eq!(params, same, "parameters do not depend on the length");
        let ids: Vec<f32> = (0..2 * t).map(|i| (i * 5 % 7) as f32).collect();
        let x = Matrix::from_vec(2, t, ids).unwrap();
        resized.resize(t).unwrap();
        assert_eq!(resized.in_dim(), t);
        for c in [&mut resized, &mut fresh] {
            c.run(x.view(), &params, &[], &Ctx::default()).unwrap();
        }
        assert_eq!(resized.output().data, fresh.output().data);
        assert_eq!(resized.out_dim(), 3);
    }
}

#[test]
fn fixed_layers_refuse_another_length_by_name() {
    let (mut c, _) = chain(r#"[{"type":"recurrent","cell":"lstm","input":[3,2],"units":2,"return_sequences":true},{"type":"flatten"},{"type":"dense","units":1}]"#, 6);
    match c.resize(10) {
        Err(Error::Shape(m)) => assert!(m.contains("layer 1") && m.contains("6 values"), "{m}"),
        other => panic!("{other:?}"),
    }
    // Back to the built width: every layer is in step again.
    c.resize(6).unwrap();
    assert_eq!(c.out_dim(), 1);
    let (mut e, _) = chain(r#"[{"type":"embedding","input_dim":3,"output_dim":2,"length":2}]"#, 2);
    assert!(matches!(e.resize(0), Err(Error::Shape(_))));
}

/// Sample 0 padded at the end, sample 1 at the start, sample 2 in the
/// middle, sample 3 not at all, sample 4 entirely.
fn ragged_mask(t: usize) -> (StepMask, Vec<bool>) {
    ragged_mask_of(t, 5)
}

/// [`ragged_mask`]'s five patterns repeated over `n` samples.
fn ragged_mask_of(t: usize, n: usize) -> (StepMask, Vec<bool>) {
    let keep = |i: usize, s: usize| match i % 5 {
        0 => s < t - 2,
        1 => s >= 2,
        2 => s != 2,
        3 => true,
        _ => false,
    };
    let mut mask = StepMask::default();
    mask.fill(n, t, keep).unwrap();
    let flat = mask.as_slice().to_vec();
    (mask, flat)
}

#[test]
fn masked_steps_carry_the_state_and_get_no_gradient() {
    let (t, f, h) = (5, 3, 4);
    // 5 samples sum the weight gradients in one row group, 20 in two.
    for n in [5, 20] {
        let (mask, keep) = ragged_mask_of(t, n);
        for cell in [CellKind::SimpleRnn, CellKind::Lstm, CellKind::Gru] {
            // The odd cases run the backward pass in chunks of 2, 2 and 1 steps.
            for (k, (seq, back)) in [(false, false), (true, false), (false, true), (true, true), (true, false), (false, true)].into_iter().enumerate() {
                let mut inner = spec(cell, t, f, h, seq, back).build(t * f, &mut Alloc::default()).unwrap();
                inner.cap_chunk_steps(if k % 2 == 1 { 2 } else { t });
                let masked = |x: &[f64], p: &[f64]| reference_masked(cell, t, f, h, seq, back, &keep, x, p);
                let plain = |x: &[f64], p: &[f64]| reference(cell, t, f, h, seq, back, x, p);
                // The fully padded sample stays at the initial state: zeros.
                let padded_is_zero = |out: MatRef<'_>| assert!(out.row(4).iter().all(|&v| v == 0.0), "{cell:?}");
                check_masked_then_plain(inner, &mask, n, t * f, 31, masked, plain, padded_is_zero);
            }
        }
    }
}

#[test]
fn masked_results_do_not_depend_on_threads() {
    let (t, f, h) = (5, 33, 33);
    let (mask, _) = ragged_mask(t);
    for cell in [CellKind::SimpleRnn, CellKind::Lstm, CellKind::Gru] {
        let inner = spec(cell, t, f, h, true, false).build(t * f, &mut Alloc::default()).unwrap();
        let len: usize = inner.params().iter().map(|p| p.len()).sum();
        let params = random(len, 33, -0.3, 0.3);
        let x = Matrix::from_vec(5, t * f, random(5 * t * f, 34, -1.0, 1.0)).unwrap();
        let mut layer = WithMask { inner, mask: &mask };
        let runs: Vec<_> = [1, 2, 3].iter().map(|&k| run_in_pool(&mut layer, k, &x, &params, &[], &Ctx::default())).collect();
        assert_eq!(runs[0], runs[1], "{cell:?}");
        assert_eq!(runs[0], runs[2], "{cell:?}");
    }
}

#[test]
fn a_mask_of_another_shape_is_a_shape_error() {
    let mut layer = spec(CellKind::Gru, 4, 2, 3, false, false).build(8, &mut Alloc::default()).unwrap();
    let params = vec![0.1; layer.params().iter().map(|p| p.len()).sum()];
    let (mask, _) = ragged_mask(5);
    let x = Matrix::zeros(5, 8);
    assert!(matches!(layer.forward_masked(x.view(), &params, &[], &Ctx::default(), Some(&mask)), Err(Error::Shape(_))));
}

#[test]
fn masking_zeroes_padded_steps_and_their_gradient() {
    let (t, f) = (3, 2);
    let mut layer = MaskingSpec { mask_value: -1.0, features: f }.build(t * f, &mut Alloc::default()).unwrap();
    let x = Matrix::from_vec(2, t * f, vec![1.0, 2.0, -1.0, -1.0, -1.0, 5.0, -1.0, -1.0, 0.0, 0.0, -1.0, -1.0]).unwrap();
    layer.forward(x.view(), &[], &[], &Ctx::default()).unwrap();
    assert_eq!(layer.output().data, &[1.0, 2.0, 0.0, 0.0, -1.0, 5.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
    assert_eq!(layer.step_mask().unwrap().as_slice(), &[true, false, true, false, true, false]);
    let mut dy = Matrix::from_vec(2, t * f, vec![1.0; 12]).unwrap();
    let mut dx = Matrix::default();
    layer.backward(x.view(), &[], &mut [], &mut dy, Some(&mut dx)).unwrap();
    assert_eq!(dx.as_slice(), &[1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0]);
    assert!(MaskingSpec { mask_value: f32::NAN, features: f }.build(6, &mut Alloc::default()).is_err());
    assert!(MaskingSpec { mask_value: 0.0, features: 4 }.build(6, &mut Alloc::default()).is_err());
}

/// The mask flows from Embedding(mask_zero) through Dense and a stacked
/// recurrent layer with return_sequences, and ends after the last state.
#[test]
fn the_mask_flows_through_layers_that_keep_the_time_axis() {
    let t = 4;
    let json = format!(
        r#"[{{"type":"embedding","input_dim":6,"output_dim":3,"length":{t},"mask_zero":true}},{{"type":"dense","units":2,"in_features":3}},{{"type":"activation","activation":"tanh"}},{{"type":"recurrent","cell":"lstm","input":[{t},2],"units":3,"return_sequences":true}},{{"type":"recurrent","cell":"gru","input":[{t},3],"units":2}}]"#
    );
    let (mut c, params) = chain(&json, t);
    let ids = Matrix::from_vec(2, t, vec![3.0, 5.0, 0.0, 0.0, 0.0, 1.0, 2.0, 4.0]).unwrap();
    c.run(ids.view(), &params, &[], &Ctx::default()).unwrap();
    assert!(c.output_mask().is_none(), "the last state has no time axis");
    let got = c.output().data.to_vec();
    // Each sample alone without its padding (and without a mask).
    for (i, real) in [(0usize, vec![3.0, 5.0]), (1, vec![1.0, 2.0, 4.0])] {
        let (mut alone, _) = chain(&json.replace("\"mask_zero\":true", "\"mask_zero\":false"), t);
        alone.resize(real.len()).unwrap();
        let x = Matrix::from_vec(1, real.len(), real).unwrap();
        alone.run(x.view(), &params, &[], &Ctx::default()).unwrap();
        let want = alone.output().data;
        for (a, b) in got[i * 2..i * 2 + 2].iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "sample {i}: {a} vs {b}");
        }
    }
    // With Dropout between the recurrent layers and per-step outputs at the
    // end, the mask reaches the output.
    let seq = json.replace(r#""return_sequences":true"#, r#""return_sequences":true},{"type":"dropout","rate":0.2"#).replace(r#""units":2}]"#, r#""units":2,"return_sequences":true}]"#);
    let (mut e, p3) = chain(&seq, t);
    e.run(ids.view(), &p3, &[], &Ctx::default()).unwrap();
    assert_eq!(e.output_mask().unwrap().as_slice(), &[true, true, false, false, false, true, true, true]);
}

/// A network spec written before `variable_steps` existed loads as a
/// fixed-length model (and writes back without the field); with the flag it
/// takes any whole number of steps and names what it cannot take.
#[test]
fn network_specs_with_and_without_variable_steps() {
    use crate::network::{Network, NetworkSpec};
    let old = r#"{"input_dim":6,"input_shape":[3,2],"layers":[{"type":"recurrent","cell":"gru","input":[3,2],"units":2}],"loss":"mse","optimizer":{"name":"adam","lr":0.01,"beta1":0.9,"beta2":0.999,"eps":1e-8,"weight_decay":0.0}}"#;
    let spec: NetworkSpec = serde_json::from_str(old).unwrap();
    assert!(!spec.variable_steps);
    assert!(!serde_json::to_string(&spec).unwrap().contains("variable_steps"));
    let fixed = Network::new(spec.clone()).unwrap();
    let x5 = Matrix::from_vec(1, 10, random(10, 41, -1.0, 1.0)).unwrap();
    assert!(matches!(fixed.predict(x5.view()), Err(Error::Shape(_))));
    let net = Network::new(NetworkSpec { variable_steps: true, ..spec }).unwrap();
    assert_eq!(net.predict(x5.view()).unwrap().cols(), 2);
    for (cols, what) in [(7, "whole number of time steps"), (0, "zero-length")] {
        let x = Matrix::zeros(1, cols);
        match net.predict(x.view()) {
            Err(Error::Shape(m)) => assert!(m.contains(what), "{m}"),
            other => panic!("{cols}: {other:?}"),
        }
    }
    let bad = r#"{"input_dim":6,"variable_steps":true,"layers":[{"type":"dense","units":1}],"loss":"mse","optimizer":{"name":"adam","lr":0.01,"beta1":0.9,"beta2":0.999,"eps":1e-8,"weight_decay":0.0}}"#;
    assert!(matches!(Network::new(serde_json::from_str(bad).unwrap()), Err(Error::Config(_))));
}
