//! Unit tests of the convolution and pooling kinds: forward against a direct
//! `f64` transcription of PyTorch's definitions (the window sums written out,
//! no im2col), finite-difference gradients, and thread-count independence.

use crate::layers::grid::DataFormat;
use crate::layers::testkit::{check_grads, random, run_in_pool};
use crate::layers::{Alloc, BuildLayer, ConvSpec, Ctx, LayerKind, PoolSpec};
use crate::tensor::Matrix;

/// A conv case: input (h, w, c), filters, kernel, stride, dilation, pads
/// [top, bottom, left, right], groups; `h == 0` means a sequence of length w.
#[derive(Clone, Copy)]
pub(super) struct Case {
    pub h: usize,
    pub w: usize,
    pub c: usize,
    pub f: usize,
    pub k: [usize; 2],
    pub s: [usize; 2],
    pub d: [usize; 2],
    pub pads: [usize; 4],
    pub groups: usize,
    pub format: DataFormat,
    pub act: &'static str,
}

impl Case {
    fn seq(&self) -> bool {
        self.h == 0
    }

    pub(super) fn hh(&self) -> usize {
        if self.seq() { 1 } else { self.h }
    }

    fn spatial(&self, v: [usize; 2]) -> Vec<usize> {
        if self.seq() { vec![v[1]] } else { v.to_vec() }
    }

    fn input(&self) -> Vec<usize> {
        let mut sp = self.spatial([self.h, self.w]);
        match self.format {
            DataFormat::ChannelsLast => sp.push(self.c),
            DataFormat::ChannelsFirst => sp.insert(0, self.c),
        }
        sp
    }

    pub(super) fn spec(&self) -> ConvSpec {
        let pads = if self.seq() { vec![self.pads[2], self.pads[3]] } else { self.pads.to_vec() };
        let json = serde_json::json!({
            "input": self.input(), "filters": self.f, "kernel": self.spatial(self.k), "strides": self.spatial(self.s),
            "pads": pads, "dilation": self.spatial(self.d), "groups": self.groups, "data_format": self.format,
            "activation": self.act, "kernel_initializer": "glorot_uniform",
        });
        serde_json::from_value(json).unwrap()
    }

    pub(super) fn out(&self) -> [usize; 2] {
        let (hh, kh) = (self.hh(), if self.seq() { 1 } else { self.k[0] });
        let o = |size: usize, k: usize, s: usize, d: usize, p: usize| (size + p - d * (k - 1) - 1) / s + 1;
        [o(hh, kh, self.s[0], self.d[0], self.pads[0] + self.pads[1]), o(self.w, self.k[1], self.s[1], self.d[1], self.pads[2] + self.pads[3])]
    }

    /// Offset of (y, x, c) in a sample of `[h, w, c]` (or `[c, h, w]`) layout.
    fn at(&self, h: usize, w: usize, c: usize, y: usize, x: usize, ch: usize) -> usize {
        match self.format {
            DataFormat::ChannelsLast => (y * w + x) * c + ch,
            DataFormat::ChannelsFirst => (ch * h + y) * w + x,
        }
    }

    /// PyTorch's Conv2d: `out[f, oy, ox] = b[f] + Σ_c Σ_ky Σ_kx W[f, c, ky, kx] ·
    /// x[g·cg + c, oy·s - pad + ky·d, ox·s - pad + kx·d]`, then the activation;
    /// the weight read from ferronn's `[kh, kw, c/groups, f]` layout.
    pub(super) fn reference(&self, x: &[f64], p: &[f64], rows: usize) -> Vec<f64> {
        let (hh, [oh, ow]) = (self.hh(), self.out());
        let kh = if self.seq() { 1 } else { self.k[0] };
        let (cg, fg) = (self.c / self.groups, self.f / self.groups);
        let (weight, bias) = p.split_at(kh * self.k[1] * cg * self.f);
        let mut out = Vec::new();
        for n in 0..rows {
            let xs = &x[n * hh * self.w * self.c..];
            let mut y = vec![0.0; oh * ow * self.f];
            for f in 0..self.f {
                let g = f / fg;
                for oy in 0..oh {
                    for ox in 0..ow {
                        let mut sum = bias[f];
                        for ci in 0..cg {
                            for ky in 0..kh {
                                for kx in 0..self.k[1] {
                                    let iy = (oy * self.s[0] + ky * self.d[0]) as isize - self.pads[0] as isize;
                                    let ix = (ox * self.s[1] + kx * self.d[1]) as isize - self.pads[2] as isize;
                                    if iy < 0 || ix < 0 || iy >= hh as isize || ix >= self.w as isize {
                                        continue;
                                    }
                                    let wv = weight[((ky * self.k[1] + kx) * cg + ci) * self.f + f];
                                    sum += wv * xs[self.at(hh, self.w, self.c, iy as usize, ix as usize, g * cg + ci)];
                                }
                            }
                        }
                        let v = match self.act {
                            "relu" => sum.max(0.0),
                            "tanh" => sum.tanh(),
                            _ => sum,
                        };
                        y[self.at(oh, ow, self.f, oy, ox, f)] = v;
                    }
                }
            }
            out.extend(y);
        }
        out
    }
}

pub(super) fn base() -> Case {
    Case { h: 5, w: 6, c: 2, f: 3, k: [3, 2], s: [1, 1], d: [1, 1], pads: [0; 4], groups: 1, format: DataFormat::ChannelsLast, act: "identity" }
}

fn cases() -> Vec<Case> {
    let cf = DataFormat::ChannelsFirst;
    vec![
        base(),
        Case { act: "tanh", ..base() },
        Case { s: [2, 3], pads: [1, 1, 0, 2], ..base() },
        Case { d: [2, 1], pads: [1, 2, 1, 0], act: "tanh", ..base() },
        Case { c: 4, f: 6, groups: 2, act: "tanh", ..base() },
        Case { c: 3, f: 3, groups: 3, k: [3, 3], pads: [1, 1, 1, 1], ..base() },
        Case { format: cf, ..base() },
        Case { format: cf, c: 4, f: 2, groups: 2, s: [2, 2], pads: [1, 0, 1, 0], act: "tanh", ..base() },
        Case { h: 0, w: 9, k: [1, 3], s: [1, 2], pads: [0, 0, 1, 1], act: "tanh", ..base() },
        Case { h: 0, w: 7, c: 4, f: 2, k: [1, 2], d: [1, 3], groups: 2, format: cf, ..base() },
        // A window of at least 64 values and fewer than 64 filters: the
        // kernel gradient is taken as its transpose (see Conv::backward).
        Case { c: 8, k: [3, 3], pads: [1, 1, 1, 1], act: "tanh", ..base() },
        Case { h: 0, w: 9, c: 16, f: 5, k: [1, 5], s: [1, 2], format: cf, ..base() },
    ]
}

pub(super) fn build(case: &Case) -> (crate::layers::Conv, Vec<f32>, Matrix) {
    let mut alloc = Alloc::default();
    let in_dim = case.hh() * case.w * case.c;
    let layer = case.spec().build(in_dim, &mut alloc).unwrap();
    let params = random(alloc.params, 3, -0.6, 0.6);
    let rows = 3;
    let x = Matrix::from_vec(rows, in_dim, random(rows * in_dim, 4, -1.0, 1.0)).unwrap();
    (layer, params, x)
}

#[test]
fn conv_matches_pytorch_definition_and_finite_differences() {
    for (i, case) in cases().into_iter().enumerate() {
        let (mut layer, params, x) = build(&case);
        let [oh, ow] = case.out();
        assert_eq!(layer.out_dim(), oh * ow * case.f, "case {i}");
        let rows = x.rows();
        check_grads(&mut layer, &x, &params, &mut [], &Ctx::inference(), |x, p| case.reference(x, p, rows));
        if layer.is_direct() {
            // The same case through im2col and the GEMM.
            layer.use_im2col();
            check_grads(&mut layer, &x, &params, &mut [], &Ctx::inference(), |x, p| case.reference(x, p, rows));
        }
    }
}

/// Small windows the direct kernels take (see `conv_direct`): a first layer's
/// one channel and 3×3 window, padded, strided, dilated, with filters in whole
/// and partial register blocks, and one channel stored channels_first.
fn direct_cases() -> Vec<Case> {
    let first = Case { h: 9, w: 8, c: 1, f: 32, k: [3, 3], pads: [1, 1, 1, 1], act: "relu", ..base() };
    vec![
        first,
        Case { f: 21, s: [2, 1], d: [1, 2], pads: [2, 0, 0, 3], act: "tanh", ..first },
        Case { c: 3, f: 16, k: [3, 2], pads: [0, 1, 1, 0], ..first },
        Case { format: DataFormat::ChannelsFirst, f: 5, ..first },
        Case { h: 0, w: 11, c: 4, f: 7, k: [1, 5], s: [1, 2], pads: [0, 0, 2, 1], act: "tanh", ..base() },
    ]
}

/// Output, input gradient and parameter gradients of one forward and backward
/// pass on `threads` threads, the output gradient `cos(y)`.
pub(super) fn pass(layer: &mut crate::layers::Conv, threads: usize, x: &Matrix, params: &[f32]) -> [Vec<f32>; 3] {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
    pool.install(|| {
        layer.forward(x.view(), params, &[], &Ctx::inference()).unwrap();
        let y = layer.output().data.to_vec();
        let mut dy = Matrix::from_vec(x.rows(), layer.out_dim(), y.iter().map(|v| v.cos()).collect()).unwrap();
        let (mut grads, mut dx) = (vec![0.0; params.len()], Matrix::default());
        layer.backward(x.view(), params, &mut grads, &mut dy, Some(&mut dx)).unwrap();
        [y, dx.into_vec(), grads]
    })
}

#[test]
fn direct_conv_matches_the_definition_and_the_im2col_path() {
    for (i, case) in direct_cases().into_iter().enumerate() {
        let (mut layer, params, x) = build(&case);
        assert!(layer.is_direct(), "case {i} should take the direct kernels");
        let rows = x.rows();
        check_grads(&mut layer, &x, &params, &mut [], &Ctx::inference(), |x, p| case.reference(x, p, rows));
        let direct = pass(&mut layer, 1, &x, &params);
        let mut generic = layer.clone();
        generic.use_im2col();
        let im2col = pass(&mut generic, 1, &x, &params);
        // The forward sums in the GEMM's order, from zero, by fused multiply-adds:
        // the same bits. The input gradient takes the same GEMM and col2im.
        assert_eq!(direct[0], im2col[0], "case {i}: outputs differ");
        assert_eq!(direct[1], im2col[1], "case {i}: input gradients differ");
        // The bias sums take col_sums' order: the same bits. The kernel
        // gradient sums its rows in another order: equal to rounding.
        let w_len = params.len() - case.f;
        assert_eq!(direct[2][w_len..], im2col[2][w_len..], "case {i}: bias gradients differ");
        for (a, b) in direct[2][..w_len].iter().zip(&im2col[2][..w_len]) {
            assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "case {i}: kernel gradients {a} and {b}");
        }
    }
}

#[test]
fn direct_conv_is_the_same_on_any_thread_count() {
    // A first layer on 40 samples in one-sample chunks (three per partial
    // group of the kernel gradient, the last group shorter), then in one chunk.
    let case = Case { h: 12, w: 10, c: 1, f: 32, k: [3, 3], pads: [1, 1, 1, 1], act: "relu", ..base() };
    let (mut layer, params, _) = build(&case);
    assert!(layer.is_direct());
    let x = Matrix::from_vec(40, 120, random(40 * 120, 7, -1.0, 1.0)).unwrap();
    for bytes in [1, usize::MAX] {
        layer.set_chunk_bytes(bytes);
        let one = pass(&mut layer, 1, &x, &params);
        for threads in [2, 3] {
            assert_eq!(pass(&mut layer, threads, &x, &params), one, "{threads} threads");
        }
    }
}

#[test]
fn conv_is_the_same_on_any_thread_count() {
    // Large enough that the GEMM and the per-sample loops take the pool.
    // Same padding and f == c: run_in_pool's output gradient is shaped like x.
    let case = Case { h: 20, w: 20, c: 8, f: 8, k: [3, 3], pads: [1, 1, 1, 1], act: "relu", ..base() };
    let case_g = Case { groups: 4, format: DataFormat::ChannelsFirst, ..case };
    for case in [case, case_g] {
        let (mut layer, params, _) = build(&case);
        let in_dim = case.hh() * case.w * case.c;
        let x = Matrix::from_vec(16, in_dim, random(16 * in_dim, 5, -1.0, 1.0)).unwrap();
        // One chunk for the batch, then chunks of 3 samples (the last of 1).
        for bytes in [usize::MAX, 3 * 400 * 72 * 4 / case.groups] {
            layer.set_chunk_bytes(bytes);
            let one = run_in_pool(&mut layer, 1, &x, &params, &[], &Ctx::inference());
            for threads in [2, 3] {
                assert_eq!(run_in_pool(&mut layer, threads, &x, &params, &[], &Ctx::inference()), one);
            }
        }
    }
}

#[test]
fn uneven_chunk_groups_are_the_same_on_any_thread_count() {
    // 37 one-sample chunks: more than MAX_PARTIALS, so each partial group of
    // the kernel gradient takes three chunks and the last group one; the
    // threads take whole groups (backward) and chunks (forward) in any order.
    let case = Case { h: 6, w: 7, c: 4, f: 5, k: [3, 3], pads: [1, 1, 1, 1], act: "relu", ..base() };
    let case_g = Case { groups: 2, f: 6, format: DataFormat::ChannelsFirst, act: "tanh", ..case };
    for case in [case, case_g] {
        let (mut layer, params, _) = build(&case);
        let in_dim = case.hh() * case.w * case.c;
        let rows = 37;
        let x = Matrix::from_vec(rows, in_dim, random(rows * in_dim, 6, -1.0, 1.0)).unwrap();
        layer.set_chunk_bytes(1);
        assert_eq!(layer.chunk_samples(rows), 1);
        // run_in_pool's output gradient is shaped like x: give it a same-sized output.
        let out = layer.out_dim();
        let mut runs = Vec::new();
        for threads in [1, 2, 3, 4] {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            runs.push(pool.install(|| {
                layer.forward(x.view(), &params, &[], &Ctx::inference()).unwrap();
                let y = layer.output().data.to_vec();
                let mut dy = Matrix::from_vec(rows, out, y.iter().map(|v| v.cos()).collect()).unwrap();
                let (mut grads, mut dx) = (vec![0.0; params.len()], Matrix::default());
                layer.backward(x.view(), &params, &mut grads, &mut dy, Some(&mut dx)).unwrap();
                (y, dx.into_vec(), grads)
            }));
        }
        assert!(runs.iter().all(|r| *r == runs[0]), "results depend on the thread count");
        // And they are right: the same chunking checked against the definition.
        let small = Matrix::from_vec(3, in_dim, x.as_slice()[..3 * in_dim].to_vec()).unwrap();
        check_grads(&mut layer, &small, &params, &mut [], &Ctx::inference(), |x, p| case.reference(x, p, 3));
    }
}

#[test]
fn chunked_conv_matches_the_definition_and_finite_differences() {
    // One sample per chunk (the smallest budget), then chunks of two samples
    // with a shorter last one: every chunk's im2col, product, kernel-gradient
    // share and col2im, checked as a whole against the reference.
    for (i, case) in cases().into_iter().enumerate() {
        let (mut layer, params, x) = build(&case);
        let rows = x.rows();
        let per_sample = case.out()[0] * case.out()[1] * case.k[0] * case.k[1] * case.c / case.groups * 4;
        for bytes in [1, 2 * per_sample] {
            layer.set_chunk_bytes(bytes);
            assert!(layer.chunk_samples(rows) < rows, "case {i}: {bytes} bytes make one chunk");
            check_grads(&mut layer, &x, &params, &mut [], &Ctx::inference(), |x, p| case.reference(x, p, rows));
        }
    }
}

#[test]
fn conv_rejects_bad_specs() {
    let bad = [
        Case { groups: 2, c: 3, ..base() },
        Case { groups: 2, c: 2, f: 3, ..base() },
        Case { k: [6, 2], ..base() },
        Case { s: [0, 1], ..base() },
        Case { d: [3, 1], ..base() },
    ];
    for case in bad {
        let in_dim = case.hh() * case.w * case.c;
        assert!(matches!(case.spec().build(in_dim, &mut Alloc::default()), Err(crate::error::Error::Config(_))));
    }
    // The input width must be the product of the stated shape.
    assert!(base().spec().build(59, &mut Alloc::default()).is_err());
}

/// PyTorch's MaxPool2d / Keras' AveragePooling2D (padding cells not counted).
fn pool_reference(case: &Case, max: bool, x: &[f64], rows: usize) -> Vec<f64> {
    let (hh, [oh, ow]) = (case.hh(), case.out());
    let kh = if case.seq() { 1 } else { case.k[0] };
    let mut out = Vec::new();
    for n in 0..rows {
        let xs = &x[n * hh * case.w * case.c..];
        let mut y = vec![0.0; oh * ow * case.c];
        for c in 0..case.c {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut vals = Vec::new();
                    for ky in 0..kh {
                        for kx in 0..case.k[1] {
                            let iy = (oy * case.s[0] + ky) as isize - case.pads[0] as isize;
                            let ix = (ox * case.s[1] + kx) as isize - case.pads[2] as isize;
                            if iy >= 0 && ix >= 0 && iy < hh as isize && ix < case.w as isize {
                                vals.push(xs[case.at(hh, case.w, case.c, iy as usize, ix as usize, c)]);
                            }
                        }
                    }
                    let v = if max { vals.iter().copied().fold(f64::NEG_INFINITY, f64::max) } else { vals.iter().sum::<f64>() / vals.len() as f64 };
                    y[case.at(oh, ow, case.c, oy, ox, c)] = v;
                }
            }
        }
        out.extend(y);
    }
    out
}

#[test]
fn pooling_matches_the_definitions_and_finite_differences() {
    let cf = DataFormat::ChannelsFirst;
    let pools = [
        Case { k: [2, 2], s: [2, 2], ..base() },
        Case { k: [2, 3], s: [2, 2], pads: [0, 1, 0, 1], ..base() },
        Case { k: [3, 3], s: [1, 2], pads: [1, 1, 1, 1], format: cf, ..base() },
        Case { h: 0, w: 7, k: [1, 3], s: [1, 2], pads: [0, 0, 1, 1], ..base() },
        Case { k: [5, 6], s: [1, 1], ..base() }, // global
    ];
    for (i, case) in pools.iter().enumerate() {
        for max in [true, false] {
            let pads = if case.seq() { vec![case.pads[2], case.pads[3]] } else { case.pads.to_vec() };
            let json = serde_json::json!({"mode": if max { "max" } else { "avg" }, "input": case.input(), "pool": case.spatial(case.k),
                "strides": case.spatial(case.s), "pads": pads, "data_format": case.format, "global": i == 4});
            let spec: PoolSpec = serde_json::from_value(json).unwrap();
            let in_dim = case.hh() * case.w * case.c;
            let mut layer = spec.build(in_dim, &mut Alloc::default()).unwrap();
            let [oh, ow] = case.out();
            assert_eq!(layer.out_dim(), oh * ow * case.c);
            // Distinct values, so max pooling has no ties for finite differences to straddle.
            let mut v = random(3 * in_dim, 6, -1.0, 1.0);
            v.iter_mut().enumerate().for_each(|(j, a)| *a += j as f32 * 1e-2);
            let x = Matrix::from_vec(3, in_dim, v).unwrap();
            check_grads(&mut layer, &x, &[], &mut [], &Ctx::inference(), |x, _| pool_reference(case, max, x, 3));
        }
    }
}

#[test]
fn max_pool_2x2_routes_ties_to_the_first_cell() {
    // The 2×2 stride-2 kernel (an odd row and column left over) on values with
    // many ties: the output is each window's max, and the gradient goes to the
    // window's first cell holding it in row-major order, as the general path does.
    let (h, w, c, n) = (5, 7, 3, 2);
    let json = serde_json::json!({"mode": "max", "input": [h, w, c], "pool": [2, 2], "strides": [2, 2], "pads": [0, 0, 0, 0]});
    let spec: PoolSpec = serde_json::from_value(json).unwrap();
    let mut layer = spec.build(h * w * c, &mut Alloc::default()).unwrap();
    let v: Vec<f32> = random(n * h * w * c, 8, 0.0, 3.0).iter().map(|a| a.floor()).collect();
    let x = Matrix::from_vec(n, h * w * c, v.clone()).unwrap();
    layer.forward(x.view(), &[], &[], &Ctx::inference()).unwrap();
    let y = layer.output().data.to_vec();
    let dy: Vec<f32> = (0..y.len()).map(|i| 1.0 + i as f32).collect();
    let mut dx = Matrix::default();
    layer.backward(x.view(), &[], &mut [], &mut Matrix::from_vec(n, y.len() / n, dy.clone()).unwrap(), Some(&mut dx)).unwrap();
    let (mut want_y, mut want_dx) = (Vec::new(), vec![0.0f32; v.len()]);
    for s in 0..n {
        for oy in 0..h / 2 {
            for ox in 0..w / 2 {
                for ch in 0..c {
                    let cells = [(0, 0), (0, 1), (1, 0), (1, 1)].map(|(dy, dx)| s * h * w * c + ((2 * oy + dy) * w + 2 * ox + dx) * c + ch);
                    let best = cells.iter().map(|&i| v[i]).fold(f32::NEG_INFINITY, f32::max);
                    let first = *cells.iter().find(|&&i| v[i] == best).unwrap();
                    want_dx[first] += dy[want_y.len()];
                    want_y.push(best);
                }
            }
        }
    }
    assert_eq!(y, want_y);
    assert_eq!(dx.as_slice(), &want_dx[..]);
}

#[test]
fn pooling_rejects_a_window_inside_the_padding() {
    let json = serde_json::json!({"mode": "max", "input": [4, 4, 1], "pool": [2, 2], "strides": [2, 2], "pads": [2, 0, 0, 0]});
    let spec: PoolSpec = serde_json::from_value(json).unwrap();
    assert!(matches!(spec.build(16, &mut Alloc::default()), Err(crate::error::Error::Config(_))));
}
