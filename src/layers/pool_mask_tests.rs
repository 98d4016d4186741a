//! Unit tests of the global 1-D average pool given a step mask: the mean of
//! the real steps (0 for a sample of padding only), its adjoint as the
//! backward pass, in both layouts, against an `f64` reference.

use crate::error::Error;
use crate::layers::grid::DataFormat;
use crate::layers::pool::{PoolMode, PoolSpec};
use crate::layers::testkit::{random, rel_err};
use crate::layers::{Alloc, BuildLayer, Ctx, LayerKind, StepMask};
use crate::tensor::Matrix;

const T: usize = 5;
const C: usize = 3;
const N: usize = 4;

fn pool(mode: PoolMode, format: DataFormat) -> crate::layers::pool::Pool {
    let input = match format {
        DataFormat::ChannelsLast => vec![T, C],
        DataFormat::ChannelsFirst => vec![C, T],
    };
    let spec = PoolSpec { mode, input, pool: vec![T], strides: vec![1], pads: vec![0, 0], data_format: format, global: true };
    spec.build(T * C, &mut Alloc::default()).unwrap()
}

/// Padded at the end, at the start, not at all, and padding only.
fn mask() -> StepMask {
    let mut m = StepMask::default();
    m.fill(N, T, |i, t| match i {
        0 => t < 2,
        1 => t >= 3,
        2 => true,
        _ => false,
    })
    .unwrap();
    m
}

/// Value of channel `c` at step `t` in one sample of the layout.
fn at(format: DataFormat, t: usize, c: usize) -> usize {
    match format {
        DataFormat::ChannelsLast => t * C + c,
        DataFormat::ChannelsFirst => c * T + t,
    }
}

#[test]
fn the_masked_average_is_the_mean_of_the_real_steps_and_its_adjoint() {
    for format in [DataFormat::ChannelsLast, DataFormat::ChannelsFirst] {
        let mut layer = pool(PoolMode::Avg, format);
        let (m, x) = (mask(), Matrix::from_vec(N, T * C, random(N * T * C, 41, -1.0, 1.0)).unwrap());
        layer.forward_masked(x.view(), &[], &[], &Ctx::default(), Some(&m)).unwrap();
        let mut want = vec![0.0f64; N * C];
        for i in 0..N {
            let real: Vec<usize> = (0..T).filter(|&t| m.keep(i, t)).collect();
            for c in 0..C {
                let sum: f64 = real.iter().map(|&t| f64::from(x.view().row(i)[at(format, t, c)])).sum();
                want[i * C + c] = if real.is_empty() { 0.0 } else { sum / real.len() as f64 };
            }
        }
        assert!(rel_err(layer.output().data, &want) < 1e-6, "{format:?}: forward");
        assert!(layer.output().data[3 * C..].iter().all(|&v| v == 0.0), "padding only gives 0");
        // Backward: each real step gets dy / count, a padded step nothing.
        let dy_vals = random(N * C, 42, -1.0, 1.0);
        let mut dy = Matrix::from_vec(N, C, dy_vals.clone()).unwrap();
        let mut dx = Matrix::default();
        layer.backward(x.view(), &[], &mut [], &mut dy, Some(&mut dx)).unwrap();
        for i in 0..N {
            let count = (0..T).filter(|&t| m.keep(i, t)).count();
            for t in 0..T {
                for c in 0..C {
                    let want = if m.keep(i, t) { dy_vals[i * C + c] / count as f32 } else { 0.0 };
                    let got = dx.as_slice()[i * T * C + at(format, t, c)];
                    assert!((got - want).abs() < 1e-6, "{format:?}: dx of sample {i} step {t} channel {c}");
                }
            }
        }
        // Without a mask the next pass averages every step again.
        layer.forward(x.view(), &[], &[], &Ctx::default()).unwrap();
        let all: f64 = (0..T).map(|t| f64::from(x.view().row(0)[at(format, t, 0)])).sum::<f64>() / T as f64;
        assert!((f64::from(layer.output().data[0]) - all).abs() < 1e-6, "{format:?}: unmasked");
    }
}

#[test]
fn a_mask_of_another_shape_is_a_shape_error_and_max_pooling_ignores_masks() {
    let mut layer = pool(PoolMode::Avg, DataFormat::ChannelsLast);
    let mut short = StepMask::default();
    short.fill(N, T - 1, |_, _| true).unwrap();
    let x = Matrix::from_vec(N, T * C, random(N * T * C, 43, -1.0, 1.0)).unwrap();
    assert!(matches!(layer.forward_masked(x.view(), &[], &[], &Ctx::default(), Some(&short)), Err(Error::Shape(_))));
    let mut max = pool(PoolMode::Max, DataFormat::ChannelsLast);
    max.forward_masked(x.view(), &[], &[], &Ctx::default(), Some(&mask())).unwrap();
    let masked = max.output().data.to_vec();
    max.forward(x.view(), &[], &[], &Ctx::default()).unwrap();
    assert_eq!(masked, max.output().data, "Keras' GlobalMaxPooling1D does not support masking");
}

#[test]
fn masked_pooling_is_identical_across_thread_counts() {
    let rows = 300; // enough values for the parallel path
    let mut m = StepMask::default();
    m.fill(rows, T, |i, t| t <= i % T).unwrap();
    let x = Matrix::from_vec(rows, T * C, random(rows * T * C, 44, -1.0, 1.0)).unwrap();
    let dy_vals = random(rows * C, 45, -1.0, 1.0);
    let runs: Vec<(Vec<f32>, Vec<f32>)> = [1, 2, 3]
        .iter()
        .map(|&threads| {
            let threads = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            threads.install(|| {
                let mut layer = pool(PoolMode::Avg, DataFormat::ChannelsLast);
                layer.forward_masked(x.view(), &[], &[], &Ctx::default(), Some(&m)).unwrap();
                let (mut dy, mut dx) = (Matrix::from_vec(rows, C, dy_vals.clone()).unwrap(), Matrix::default());
                layer.backward(x.view(), &[], &mut [], &mut dy, Some(&mut dx)).unwrap();
                (layer.output().data.to_vec(), dx.into_vec())
            })
        })
        .collect();
    assert!(runs.windows(2).all(|w| w[0] == w[1]));
}

#[test]
fn global_sequence_pools_take_any_number_of_steps_in_channels_last() {
    for mode in [PoolMode::Avg, PoolMode::Max] {
        let mut layer = pool(mode, DataFormat::ChannelsLast);
        assert_eq!(layer.step_width(), Some(C));
        for t in [7, 1, T] {
            layer.set_steps(t).unwrap();
            assert_eq!(layer.out_dim(), C);
            let x = Matrix::from_vec(2, t * C, random(2 * t * C, 46 + t as u64, -1.0, 1.0)).unwrap();
            let mut m = StepMask::default();
            m.fill(2, t, |i, s| i == 0 || s == 0).unwrap();
            layer.forward_masked(x.view(), &[], &[], &Ctx::default(), Some(&m)).unwrap();
            for i in 0..2 {
                let real: Vec<usize> = (0..t).filter(|&s| mode == PoolMode::Max || m.keep(i, s)).collect();
                for c in 0..C {
                    let vals = real.iter().map(|&s| f64::from(x.view().row(i)[s * C + c]));
                    let want = match mode {
                        PoolMode::Avg => vals.sum::<f64>() / real.len() as f64,
                        PoolMode::Max => vals.fold(f64::MIN, f64::max),
                    };
                    assert!((f64::from(layer.output().data[i * C + c]) - want).abs() < 1e-6, "{mode:?} T={t}");
                }
            }
        }
        assert!(matches!(layer.set_steps(0), Err(Error::Config(_))));
    }
    assert_eq!(pool(PoolMode::Avg, DataFormat::ChannelsFirst).step_width(), None, "its steps are not rows");
}
