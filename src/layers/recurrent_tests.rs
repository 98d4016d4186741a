//! Unit tests of the recurrent kinds and Embedding: forward against a direct
//! `f64` transcription of PyTorch's RNN/LSTM/GRU equations, gradients by
//! central differences of it, thread-count determinism, named errors.

use crate::error::Error;
use crate::layers::embedding::EmbeddingSpec;
use crate::layers::recurrent::{CellKind, Recurrent, RecurrentSpec};
use crate::layers::recurrent_grads::weight_groups;
use crate::layers::testkit::{check_grads, random, run_in_pool, WithMask};
use crate::layers::{ActivationSpec, Alloc, BuildLayer, Ctx, LayerKind, StepMask, WeightSpec};
use crate::tensor::Matrix;

pub(super) fn spec(cell: CellKind, t: usize, f: usize, h: usize, seq: bool, back: bool) -> RecurrentSpec {
    RecurrentSpec {
        cell,
        input: vec![t, f],
        units: h,
        activation: ActivationSpec::Name("tanh".into()),
        return_sequences: seq,
        go_backwards: back,
        unit_forget_bias: true,
        recurrent_initializer: None,
        recurrent_regularizer: None,
        weights: WeightSpec::default(),
    }
}

/// The layer of [`spec`] built for `t · f` inputs, and its parameter count.
fn built(cell: CellKind, t: usize, f: usize, h: usize, seq: bool, back: bool) -> (Recurrent, usize) {
    let layer = spec(cell, t, f, h, seq, back).build(t * f, &mut Alloc::default()).unwrap();
    let len = layer.params().iter().map(|p| p.len()).sum();
    (layer, len)
}

fn sig(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// PyTorch's equations in f64, one sample and one step at a time. `p` holds
/// weight_ih `[G·h, f]`, weight_hh `[G·h, h]`, bias_ih, bias_hh, in that order.
#[allow(clippy::too_many_arguments)]
pub(super) fn reference(cell: CellKind, t: usize, f: usize, h: usize, seq: bool, back: bool, x: &[f64], p: &[f64]) -> Vec<f64> {
    reference_masked(cell, t, f, h, seq, back, &[], x, p)
}

/// [`reference`] with a step mask `keep` (`[n, t]` by input time, empty for
/// none): a padded step leaves `h` and `c` as they were (Keras' masking).
#[allow(clippy::too_many_arguments)]
pub(super) fn reference_masked(cell: CellKind, t: usize, f: usize, h: usize, seq: bool, back: bool, keep: &[bool], x: &[f64], p: &[f64]) -> Vec<f64> {
    let g = match cell {
        CellKind::SimpleRnn => 1,
        CellKind::Lstm => 4,
        CellKind::Gru => 3,
    };
    let (w_ih, rest) = p.split_at(g * h * f);
    let (w_hh, rest) = rest.split_at(g * h * h);
    let (b_ih, b_hh) = rest.split_at(g * h);
    let n = x.len() / (t * f);
    let mut out = Vec::new();
    for s in 0..n {
        let (mut hs, mut cs) = (vec![0.0; h], vec![0.0; h]);
        let mut seq_out = Vec::new();
        for step in 0..t {
            let ts = if back { t - 1 - step } else { step };
            if !keep.is_empty() && !keep[s * t + ts] {
                seq_out.extend_from_slice(&hs);
                continue;
            }
            let xt = &x[(s * t + ts) * f..(s * t + ts + 1) * f];
            // a[k] = W_ih[k]·x + b_ih[k], b[k] = W_hh[k]·h + b_hh[k]
            let a: Vec<f64> = (0..g * h).map(|k| (0..f).map(|j| w_ih[k * f + j] * xt[j]).sum::<f64>() + b_ih[k]).collect();
            let b: Vec<f64> = (0..g * h).map(|k| (0..h).map(|j| w_hh[k * h + j] * hs[j]).sum::<f64>() + b_hh[k]).collect();
            let new_h: Vec<f64> = match cell {
                CellKind::SimpleRnn => (0..h).map(|k| (a[k] + b[k]).tanh()).collect(),
                CellKind::Lstm => (0..h)
                    .map(|k| {
                        let (i, fg, gg, o) = (sig(a[k] + b[k]), sig(a[h + k] + b[h + k]), (a[2 * h + k] + b[2 * h + k]).tanh(), sig(a[3 * h + k] + b[3 * h + k]));
                        cs[k] = fg * cs[k] + i * gg;
                        o * cs[k].tanh()
                    })
                    .collect(),
                CellKind::Gru => (0..h)
                    .map(|k| {
                        let r = sig(a[k] + b[k]);
                        let z = sig(a[h + k] + b[h + k]);
                        let nn = (a[2 * h + k] + r * b[2 * h + k]).tanh();
                        (1.0 - z) * nn + z * hs[k]
                    })
                    .collect(),
            };
            hs = new_h;
            seq_out.extend_from_slice(&hs);
        }
        if seq {
            out.extend(seq_out);
        } else {
            out.extend(hs);
        }
    }
    out
}

#[test]
fn forward_and_gradients_match_pytorch_equations() {
    let (t, f, h) = (4, 3, 5);
    // 3 samples sum the weight gradients in one row group, 17 in two
    // uneven ones (8 and 9 samples) added at the end.
    assert_eq!((weight_groups(3), weight_groups(17)), (1, 2));
    for cell in [CellKind::SimpleRnn, CellKind::Lstm, CellKind::Gru] {
        // The backward pass in one chunk of steps, in chunks of 1, and in
        // chunks of 3 and 1 (the weight gradients summed chunk by chunk).
        for ((seq, back), cap) in [(false, false), (true, false), (false, true), (true, true)].into_iter().flat_map(|o| [(o, t), (o, 1), (o, 3)]) {
            for n in [3, 17] {
                let (mut layer, len) = built(cell, t, f, h, seq, back);
                layer.cap_chunk_steps(cap);
                let params = random(len, 3, -0.6, 0.6);
                let x = Matrix::from_vec(n, t * f, random(n * t * f, 4, -1.0, 1.0)).unwrap();
                check_grads(&mut layer, &x, &params, &mut [], &Ctx::default(), |x, p| reference(cell, t, f, h, seq, back, x, p));
            }
        }
    }
}

/// More features than gate rows (`F ≥ G·units`): `weight_ih`'s gradient
/// takes its untransposed product, and the GRU's rotated gate-gradient
/// columns (candidate first) must still land in `W_ih`'s row order.
#[test]
fn wide_inputs_give_weight_ih_gradients_in_gate_order() {
    let (t, f, h, n) = (3, 7, 2, 3);
    for cell in [CellKind::SimpleRnn, CellKind::Lstm, CellKind::Gru] {
        let (mut layer, len) = built(cell, t, f, h, false, false);
        let params = random(len, 5, -0.6, 0.6);
        let x = Matrix::from_vec(n, t * f, random(n * t * f, 6, -1.0, 1.0)).unwrap();
        check_grads(&mut layer, &x, &params, &mut [], &Ctx::default(), |x, p| reference(cell, t, f, h, false, false, x, p));
    }
}

#[test]
fn simple_rnn_with_another_activation_matches_its_definition() {
    let (t, f, h, n) = (3, 2, 4, 2);
    let mut s = spec(CellKind::SimpleRnn, t, f, h, true, false);
    s.activation = ActivationSpec::Name("sigmoid".into());
    let mut layer = s.build(t * f, &mut Alloc::default()).unwrap();
    let params = random(h * f + h * h + 2 * h, 5, -0.5, 0.5);
    let x = Matrix::from_vec(n, t * f, random(n * t * f, 6, -1.0, 1.0)).unwrap();
    let reference = |x: &[f64], p: &[f64]| {
        let (w_ih, rest) = p.split_at(h * f);
        let (w_hh, rest) = rest.split_at(h * h);
        let (b_ih, b_hh) = rest.split_at(h);
        let mut out = Vec::new();
        for s in 0..n {
            let mut hs = vec![0.0; h];
            for ts in 0..t {
                hs = (0..h)
                    .map(|k| sig((0..f).map(|j| w_ih[k * f + j] * x[(s * t + ts) * f + j]).sum::<f64>() + b_ih[k] + (0..h).map(|j| w_hh[k * h + j] * hs[j]).sum::<f64>() + b_hh[k]))
                    .collect();
                out.extend_from_slice(&hs);
            }
        }
        out
    };
    check_grads(&mut layer, &x, &params, &mut [], &Ctx::default(), reference);
}

#[test]
fn init_follows_keras_defaults() {
    let (t, f, h) = (2, 3, 6);
    let (layer, len) = built(CellKind::Lstm, t, f, h, false, false);
    let mut params = vec![f32::NAN; len];
    layer.init(&mut params, &mut [], &mut crate::init::rng_for(1, 0));
    let infos = layer.params();
    // weight_hh [4h, h] has orthonormal columns.
    let w = &params[infos[1].range()];
    for a in 0..h {
        for b in 0..h {
            let dot: f32 = (0..4 * h).map(|r| w[r * h + a] * w[r * h + b]).sum();
            assert!((dot - if a == b { 1.0 } else { 0.0 }).abs() < 1e-5, "column {a}·{b} = {dot}");
        }
    }
    let b_ih = &params[infos[2].range()];
    assert!(b_ih[..h].iter().all(|&v| v == 0.0) && b_ih[h..2 * h].iter().all(|&v| v == 1.0) && b_ih[2 * h..].iter().all(|&v| v == 0.0));
    assert!(params[infos[3].range()].iter().all(|&v| v == 0.0));
    let limit = (6.0f32 / (f + 4 * h) as f32).sqrt();
    assert!(params[infos[0].range()].iter().all(|v| v.abs() <= limit));
}

/// The passes split the batch into one share per thread (40 samples: four
/// shares on four threads, two on two), so this compares the one-share
/// results with several splits: forward, input and parameter gradients and
/// the per-step gradient norms, with and without a step mask, in both
/// reading directions, with and without `return_sequences`, with the
/// backward pass in one chunk of steps and in chunks of 3, 3 and 1.
#[test]
fn results_do_not_depend_on_threads() {
    // run_in_pool feeds an output gradient shaped as x: units = features.
    let (t, f, h, n) = (7, 33, 33, 40);
    let mut mask = StepMask::default();
    mask.fill(n, t, |i, s| (i * 7 + s * 3) % 5 != 0).unwrap();
    for cell in [CellKind::SimpleRnn, CellKind::Lstm, CellKind::Gru] {
        for ((back, masked), cap) in [(false, false), (true, false), (false, true), (true, true)].into_iter().flat_map(|o| [(o, t), (o, 3)]) {
            let (mut layer, len) = built(cell, t, f, h, true, back);
            layer.cap_chunk_steps(cap);
            let params = random(len, 8, -0.3, 0.3);
            let x = Matrix::from_vec(n, t * f, random(n * t * f, 9, -1.0, 1.0)).unwrap();
            layer.record_step_norms(true);
            let mut runs = Vec::new();
            for threads in [1, 2, 4] {
                let got = if masked {
                    let mut with = WithMask { inner: layer.clone(), mask: &mask };
                    let got = run_in_pool(&mut with, threads, &x, &params, &[], &Ctx::default());
                    (got, with.inner.step_norms().unwrap().to_vec())
                } else {
                    let got = run_in_pool(&mut layer, threads, &x, &params, &[], &Ctx::default());
                    (got, layer.step_norms().unwrap().to_vec())
                };
                assert_eq!(got.1.len(), t);
                runs.push(got);
            }
            assert_eq!(runs[0], runs[1], "{cell:?} go_backwards {back} masked {masked} chunks of {cap}: 1 vs 2 threads");
            assert_eq!(runs[0], runs[2], "{cell:?} go_backwards {back} masked {masked} chunks of {cap}: 1 vs 4 threads");
        }
        // The last state only (its gradient enters at the last step).
        let (mut layer, len) = built(cell, t, f, h, false, false);
        let params = random(len, 10, -0.3, 0.3);
        let x = Matrix::from_vec(n, t * f, random(n * t * f, 11, -1.0, 1.0)).unwrap();
        let dy = Matrix::from_vec(n, h, random(n * h, 12, -1.0, 1.0)).unwrap();
        let mut run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| {
                layer.forward(x.view(), &params, &[], &Ctx::default()).unwrap();
                let (mut grads, mut dx, mut dy) = (vec![0.0; len], Matrix::default(), dy.clone());
                layer.backward(x.view(), &params, &mut grads, &mut dy, Some(&mut dx)).unwrap();
                (layer.output().data.to_vec(), grads, dx)
            })
        };
        let one = run(1);
        assert_eq!(one, run(4), "{cell:?} without return_sequences");
    }
}

/// What the time loops keep is laid out by the forward pass's shares of the
/// batch, so a backward pass run on another thread count (here: forward on
/// the calling thread, backward on a pool of four, and the other way round)
/// must follow the forward's split and give the same gradients.
#[test]
fn backward_follows_the_forward_split() {
    let (t, f, h, n) = (6, 9, 16, 32);
    for cell in [CellKind::SimpleRnn, CellKind::Lstm, CellKind::Gru] {
        let (mut layer, len) = built(cell, t, f, h, true, true);
        layer.cap_chunk_steps(4);
        let params = random(len, 21, -0.4, 0.4);
        let x = Matrix::from_vec(n, t * f, random(n * t * f, 22, -1.0, 1.0)).unwrap();
        let dy = Matrix::from_vec(n, t * h, random(n * t * h, 23, -1.0, 1.0)).unwrap();
        let pool = rayon::ThreadPoolBuilder::new().num_threads(4).build().unwrap();
        let mut run = |fwd_pool: bool, back_pool: bool| {
            let fwd = |layer: &mut Recurrent| layer.forward(x.view(), &params, &[], &Ctx::default()).unwrap();
            if fwd_pool { pool.install(|| fwd(&mut layer)) } else { fwd(&mut layer) }
            let (mut grads, mut dx, mut g) = (vec![0.0; len], Matrix::default(), dy.clone());
            let mut back = || layer.backward(x.view(), &params, &mut grads, &mut g, Some(&mut dx)).unwrap();
            if back_pool { pool.install(back) } else { back() }
            (grads, dx)
        };
        let one = run(false, false);
        assert_eq!(one, run(false, true), "{cell:?}: forward on one thread, backward on four");
        assert_eq!(one, run(true, false), "{cell:?}: forward on four threads, backward on one");
    }
}

#[test]
fn bad_specs_and_inputs_are_named_errors() {
    let mut alloc = Alloc::default();
    assert!(matches!(spec(CellKind::Lstm, 3, 2, 4, false, false).build(5, &mut alloc), Err(Error::Config(_))));
    assert!(matches!(spec(CellKind::Gru, 0, 2, 4, false, false).build(0, &mut alloc), Err(Error::Config(_))));
    assert!(matches!(spec(CellKind::Gru, 2, 2, 0, false, false).build(4, &mut alloc), Err(Error::Config(_))));
    assert!(matches!(spec(CellKind::Gru, usize::MAX, 2, 1, false, false).build(4, &mut alloc), Err(Error::Config(_))));
    let mut layer = spec(CellKind::Lstm, 3, 2, 4, false, false).build(6, &mut alloc).unwrap();
    let params = vec![0.0; alloc.params];
    let x = Matrix::zeros(2, 5);
    match layer.forward(x.view(), &params, &[], &Ctx::default()) {
        Err(Error::Shape(m)) => assert!(m.contains("[3, 2]"), "{m}"),
        other => panic!("{other:?}"),
    }
}

fn embedding(v: usize, d: usize, t: usize) -> EmbeddingSpec {
    EmbeddingSpec { input_dim: v, output_dim: d, length: t, embeddings_initializer: None, mask_zero: false }
}

#[test]
fn embedding_looks_up_rows_and_sums_gradients_of_repeated_ids() {
    let (v, d, t) = (5, 3, 4);
    let mut layer = embedding(v, d, t).build(t, &mut Alloc::default()).unwrap();
    let table = random(v * d, 1, -1.0, 1.0);
    let x = Matrix::from_vec(2, t, vec![0.0, 4.0, 4.0, 1.0, 2.0, 4.0, 0.0, 0.0]).unwrap();
    layer.forward(x.view(), &table, &[], &Ctx::default()).unwrap();
    let out = layer.output().data.to_vec();
    for (k, &id) in x.as_slice().iter().enumerate() {
        assert_eq!(&out[k * d..(k + 1) * d], &table[id as usize * d..(id as usize + 1) * d]);
    }
    let dy = random(2 * t * d, 2, -1.0, 1.0);
    let mut grads = vec![f32::NAN; v * d];
    let mut dx = Matrix::default();
    layer.backward(x.view(), &table, &mut grads, &mut Matrix::from_vec(2, t * d, dy.clone()).unwrap(), Some(&mut dx)).unwrap();
    let mut want = vec![0.0f64; v * d];
    for (k, &id) in x.as_slice().iter().enumerate() {
        for j in 0..d {
            want[id as usize * d + j] += f64::from(dy[k * d + j]);
        }
    }
    for (g, w) in grads.iter().zip(&want) {
        assert!((f64::from(*g) - w).abs() < 1e-6);
    }
    assert!(dx.as_slice().iter().all(|&v| v == 0.0) && dx.cols() == t);
}

#[test]
fn embedding_refuses_bad_ids() {
    let mut layer = embedding(5, 2, 2).build(2, &mut Alloc::default()).unwrap();
    let table = vec![0.0; 10];
    for bad in [5.0, -1.0, 1.5, f32::NAN] {
        let x = Matrix::from_vec(1, 2, vec![0.0, bad]).unwrap();
        match layer.forward(x.view(), &table, &[], &Ctx::default()) {
            Err(Error::Label(m)) => assert!(m.contains("[0, 5)") && m.contains("position 1"), "{m}"),
            other => panic!("{bad}: {other:?}"),
        }
    }
    assert!(matches!(embedding(0, 2, 2).build(2, &mut Alloc::default()), Err(Error::Config(_))));
    assert!(matches!(embedding(3, 2, 2).build(3, &mut Alloc::default()), Err(Error::Config(_))));
}

#[test]
fn dense_on_sequences_applies_per_step() {
    use crate::layers::DenseSpec;
    let (t, f, u, n) = (3, 4, 2, 2);
    let spec = DenseSpec { units: u, activation: ActivationSpec::Name("tanh".into()), in_features: Some(f), weights: WeightSpec::default() };
    let mut layer = spec.build(t * f, &mut Alloc::default()).unwrap();
    assert_eq!(layer.out_dim(), t * u);
    let params = random(f * u + u, 11, -0.7, 0.7);
    let x = Matrix::from_vec(n, t * f, random(n * t * f, 12, -1.0, 1.0)).unwrap();
    let reference = |x: &[f64], p: &[f64]| {
        let (w, b) = p.split_at(f * u);
        x.chunks(f).flat_map(|row| (0..u).map(move |k| ((0..f).map(|j| row[j] * w[j * u + k]).sum::<f64>() + b[k]).tanh())).collect()
    };
    check_grads(&mut layer, &x, &params, &mut [], &Ctx::default(), reference);
    let bad = DenseSpec { in_features: Some(5), ..spec };
    assert!(matches!(bad.build(t * f, &mut Alloc::default()), Err(Error::Config(_))));
}
