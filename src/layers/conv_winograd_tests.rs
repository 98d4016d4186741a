//! Tests of the Winograd F(2×2, 3×3) path (`conv_winograd`): which layers
//! take it, its output and both gradients against the `f64` transcription of
//! PyTorch's definition and finite differences (both paddings and layouts,
//! odd sizes whose last tiles are partial), its float32 error next to
//! im2col's, and thread-count independence with uneven chunk groups.

use super::conv_tests::{base, build, pass, Case};
use crate::layers::grid::DataFormat;
use crate::layers::testkit::{check_grads, random, to64};
use crate::layers::{Alloc, BuildLayer, Ctx, LayerKind};
use crate::tensor::Matrix;

/// A 3×3 "same" layer over 8 channels on a 7×9 grid: the last tile row and
/// column are half outside the grid. Winograd's path takes 32 channels or
/// more (`MIN_CHANNELS`); the tests send smaller layers through it with
/// `use_winograd`, so finite differences stay quick.
fn same() -> Case {
    Case { h: 7, w: 9, c: 8, f: 5, k: [3, 3], pads: [1, 1, 1, 1], act: "relu", ..base() }
}

fn winograd_cases() -> Vec<Case> {
    let cf = DataFormat::ChannelsFirst;
    vec![
        same(),
        Case { act: "tanh", format: cf, ..same() },
        // "valid": the input gradient pads the output gradient by 2.
        Case { pads: [0; 4], act: "identity", ..same() },
        Case { pads: [0; 4], h: 6, w: 5, c: 9, f: 17, format: cf, act: "tanh", ..same() },
        // Uneven padding, and the most Winograd takes (the input gradient's is 0).
        Case { pads: [0, 1, 2, 0], act: "tanh", ..same() },
        Case { pads: [2, 2, 1, 2], h: 4, w: 3, format: cf, ..same() },
    ]
}

#[test]
fn winograd_takes_only_3x3_stride_1_layers_with_enough_channels() {
    let by_default = |case: Case| build(&case).0.is_winograd();
    assert!(by_default(Case { c: 32, ..same() }));
    assert!(by_default(Case { c: 32, pads: [0; 4], format: DataFormat::ChannelsFirst, ..same() }));
    assert!(!by_default(Case { c: 31, ..same() }), "too few channels");
    // The test switch takes any channel count, and the same shapes as the default.
    let taken = |case: Case| {
        let mut layer = build(&case).0;
        layer.use_winograd();
        layer.is_winograd()
    };
    assert!(taken(same()) && taken(Case { c: 1, ..same() }));
    assert!(!taken(Case { s: [2, 1], ..same() }), "strided");
    assert!(!taken(Case { d: [1, 2], pads: [0; 4], ..same() }), "dilated");
    assert!(!taken(Case { groups: 2, f: 6, ..same() }), "grouped");
    assert!(!taken(Case { k: [3, 2], ..same() }), "not 3×3");
    assert!(!taken(Case { pads: [3, 0, 1, 1], ..same() }), "padded past the window");
    assert!(!taken(Case { h: 0, k: [1, 3], pads: [0, 0, 1, 1], ..same() }), "a sequence");
    // A first layer's one channel stays on the direct kernels.
    let first = build(&Case { c: 1, f: 32, ..same() }).0;
    assert!(!by_default(Case { c: 1, f: 32, ..same() }));
    assert!(first.is_direct() && !first.is_winograd());
}

#[test]
fn winograd_matches_the_definition_and_finite_differences() {
    for (i, case) in winograd_cases().into_iter().enumerate() {
        let (mut layer, params, x) = build(&case);
        layer.use_winograd();
        assert!(layer.is_winograd(), "case {i} should take Winograd's path");
        let rows = x.rows();
        check_grads(&mut layer, &x, &params, &mut [], &Ctx::inference(), |x, p| case.reference(x, p, rows));
        // One sample per chunk: each chunk's tiles, kernel-gradient share and
        // input gradient, checked as a whole.
        layer.set_chunk_bytes(1);
        assert_eq!(layer.chunk_samples(rows), 1);
        check_grads(&mut layer, &x, &params, &mut [], &Ctx::inference(), |x, p| case.reference(x, p, rows));
    }
}

/// The largest error of `got` against the `f64` reference, relative to the
/// reference's largest magnitude.
fn max_err(got: &[f32], want: &[f64]) -> f64 {
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    got.iter().zip(want).map(|(&a, &b)| (f64::from(a) - b).abs()).fold(0.0, f64::max) / scale
}

#[test]
fn winograd_rounding_stays_near_im2col() {
    // The CNN's second layer (14×14×32 → 64 filters, "same"), 2 samples:
    // more than one block of tiles per chunk. F(2×2, 3×3)'s transforms add
    // up to 4 inputs (input), 9 products (output) and scale by at most 1/2
    // (filters), so its float32 error is a small multiple of the direct
    // sum's: both must stay within 1e-5 of the output's scale, Winograd's
    // within 8 times im2col's (measured: 2.3e-7 against im2col's 4.7e-7).
    let case = Case { h: 14, w: 14, c: 32, f: 64, k: [3, 3], pads: [1, 1, 1, 1], act: "identity", ..base() };
    let mut layer = case.spec().build(14 * 14 * 32, &mut Alloc::default()).unwrap();
    assert!(layer.is_winograd());
    let params = random(layer.params().iter().map(|p| p.len()).sum(), 3, -0.1, 0.1);
    let x = Matrix::from_vec(2, 14 * 14 * 32, random(2 * 14 * 14 * 32, 4, -1.0, 1.0)).unwrap();
    let want = case.reference(&to64(x.as_slice()), &to64(&params), 2);
    let wino = pass(&mut layer, 1, &x, &params);
    let mut generic = layer.clone();
    generic.use_im2col();
    let im2col = pass(&mut generic, 1, &x, &params);
    let (e_w, e_i) = (max_err(&wino[0], &want), max_err(&im2col[0], &want));
    assert!(e_w < 1e-5 && e_w <= 8.0 * e_i.max(1e-7), "Winograd's error {e_w:e}, im2col's {e_i:e}");
    // The gradients of the same loss agree to the same order.
    for (what, k) in [("input gradient", 1), ("parameter gradients", 2)] {
        let scale = im2col[k].iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let diff = wino[k].iter().zip(&im2col[k]).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        assert!(diff <= 2e-5 * scale, "{what}: differ by {diff:e} at scale {scale}");
    }
}

#[test]
fn winograd_is_the_same_on_any_thread_count() {
    // 37 one-sample chunks: more than MAX_PARTIALS, so each partial group of
    // the kernel gradient takes three chunks and the last group one; a sample
    // of 10×11 has 30 tiles. Then the whole batch in one chunk, whose tiles
    // span several blocks.
    for format in [DataFormat::ChannelsLast, DataFormat::ChannelsFirst] {
        let case = Case { h: 10, w: 11, c: 8, f: 12, k: [3, 3], pads: [1, 1, 1, 1], act: "tanh", format, ..base() };
        let (mut layer, params, _) = build(&case);
        layer.use_winograd();
        assert!(layer.is_winograd());
        let (rows, in_dim) = (37, 10 * 11 * 8);
        let x = Matrix::from_vec(rows, in_dim, random(rows * in_dim, 6, -1.0, 1.0)).unwrap();
        for bytes in [1, usize::MAX] {
            layer.set_chunk_bytes(bytes);
            let one = pass(&mut layer, 1, &x, &params);
            for threads in [2, 3, 4] {
                assert!(pass(&mut layer, threads, &x, &params) == one, "{format:?}, {bytes} bytes: {threads} threads differ");
            }
        }
    }
}
