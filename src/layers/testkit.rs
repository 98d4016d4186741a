//! Test helpers shared by the layer kinds' unit tests: random data, central
//! differences, relative errors, and a finite-difference check of a layer
//! against an independent `f64` forward.

use rand::Rng;

use crate::init::rng_for;
use crate::error::Result;
use crate::layers::kind::{Ctx, LayerKind, ParamInfo};
use crate::layers::StepMask;
use crate::tensor::{MatRef, Matrix};

pub fn random(len: usize, stream: u64, lo: f32, hi: f32) -> Vec<f32> {
    let mut rng = rng_for(7, stream);
    (0..len).map(|_| rng.random_range(lo..hi)).collect()
}

pub fn to64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&a| f64::from(a)).collect()
}

/// `‖a - b‖ / ‖b‖`.
pub fn rel_err(a: &[f32], b: &[f64]) -> f64 {
    let diff = a.iter().zip(b).map(|(&x, &y)| (f64::from(x) - y).powi(2)).sum::<f64>().sqrt();
    diff / b.iter().map(|y| y * y).sum::<f64>().sqrt().max(1e-12)
}

/// Central differences of `f` at `at`, in f64.
pub fn numeric_grad(at: &[f64], f: impl Fn(&[f64]) -> f64) -> Vec<f64> {
    let h = 1e-5;
    let mut p = at.to_vec();
    (0..at.len())
        .map(|i| {
            p[i] = at[i] + h;
            let up = f(&p);
            p[i] = at[i] - h;
            let down = f(&p);
            p[i] = at[i];
            (up - down) / (2.0 * h)
        })
        .collect()
}

/// Runs `layer` forward and backward on `x` for the loss `Σ w·y` (random
/// `w`) and checks its output, `dx` and every parameter gradient against
/// `reference(x, params)` (an `f64` forward) and its central differences.
/// The gradient slots start as NaN, so a layer that adds into them fails.
pub fn check_grads<L: LayerKind + ?Sized>(layer: &mut L, x: &Matrix, params: &[f32], buffers: &mut [f32], ctx: &Ctx, reference: impl Fn(&[f64], &[f64]) -> Vec<f64>) {
    let (x64, p64) = (to64(x.as_slice()), to64(params));
    layer.forward(x.view(), params, buffers, ctx).unwrap();
    let want = reference(&x64, &p64);
    assert!(rel_err(layer.output().data, &want) < 1e-5, "forward differs from the reference");
    let w = random(want.len(), 99, -1.0, 1.0);
    let w64 = to64(&w);
    let loss = |x: &[f64], p: &[f64]| reference(x, p).iter().zip(&w64).map(|(y, c)| y * c).sum::<f64>();
    let dy = Matrix::from_vec(x.rows(), layer.out_dim(), w).unwrap();
    let (mut grads, mut dx) = (vec![f32::NAN; params.len()], Matrix::default());
    layer.backward(x.view(), params, &mut grads, &mut dy.clone(), Some(&mut dx)).unwrap();
    assert_eq!((dx.rows(), dx.cols()), (x.rows(), x.cols()));
    let e = rel_err(dx.as_slice(), &numeric_grad(&x64, |v| loss(v, &p64)));
    assert!(e <= 1e-3, "dx relative error {e}");
    let dp = numeric_grad(&p64, |v| loss(&x64, v));
    for info in layer.params() {
        let e = rel_err(&grads[info.range()], &dp[info.range()]);
        assert!(e <= 1e-3, "{} relative error {e}", info.name);
    }
    // Without dx the parameter gradients come out the same.
    let mut again = vec![f32::NAN; params.len()];
    layer.backward(x.view(), params, &mut again, &mut dy.clone(), None).unwrap();
    assert_eq!(grads, again);
}

/// Forward and backward inside a pool of `threads` threads (one thread
/// takes the serial path): output, dx, gradients and buffers afterwards.
pub fn run_in_pool<L: LayerKind + Send + ?Sized>(layer: &mut L, threads: usize, x: &Matrix, params: &[f32], buffers: &[f32], ctx: &Ctx) -> [Vec<f32>; 4] {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
    pool.install(|| {
        let mut buffers = buffers.to_vec();
        layer.forward(x.view(), params, &buffers, ctx).unwrap();
        layer.update_buffers(&mut buffers);
        let mut dy = Matrix::from_vec(x.rows(), layer.out_dim(), x.as_slice().iter().map(|v| v.sin()).collect()).unwrap();
        let (mut grads, mut dx) = (vec![0.0; params.len()], Matrix::default());
        layer.backward(x.view(), params, &mut grads, &mut dy, Some(&mut dx)).unwrap();
        [layer.output().data.to_vec(), dx.into_vec(), grads, buffers]
    })
}

/// The masked-sequence check of the recurrent and bidirectional layers:
/// `inner` under `mask` against the float64 `masked` reference (parameters
/// and `n` inputs of width `width` drawn from streams `seed` and `seed + 1`),
/// then `check` on the masked output, then the same layer without the mask
/// against the `plain` reference (every step computed again).
#[allow(clippy::too_many_arguments)]
pub fn check_masked_then_plain<L: LayerKind>(
    inner: L,
    mask: &StepMask,
    n: usize,
    width: usize,
    seed: u64,
    masked: impl Fn(&[f64], &[f64]) -> Vec<f64>,
    plain: impl Fn(&[f64], &[f64]) -> Vec<f64>,
    check: impl FnOnce(MatRef<'_>),
) {
    let len: usize = inner.params().iter().map(|p| p.len()).sum();
    let params = random(len, seed, -0.6, 0.6);
    let x = Matrix::from_vec(n, width, random(n * width, seed + 1, -1.0, 1.0)).unwrap();
    let mut layer = WithMask { inner, mask };
    check_grads(&mut layer, &x, &params, &mut [], &Ctx::default(), masked);
    check(layer.output());
    layer.inner.forward(x.view(), &params, &[], &Ctx::default()).unwrap();
    let want = plain(&to64(x.as_slice()), &to64(&params));
    assert!(rel_err(layer.inner.output().data, &want) < 1e-5);
}

/// A layer that always runs with one fixed step mask, so that the shared
/// finite-difference check ([`check_grads`]) sees the masked layer.
pub struct WithMask<'m, L> {
    pub inner: L,
    pub mask: &'m StepMask,
}

impl<L: LayerKind> LayerKind for WithMask<'_, L> {
    fn out_dim(&self) -> usize {
        self.inner.out_dim()
    }
    fn params(&self) -> Vec<ParamInfo> {
        self.inner.params()
    }
    fn forward(&mut self, x: MatRef<'_>, params: &[f32], buffers: &[f32], ctx: &Ctx) -> Result<()> {
        self.inner.forward_masked(x, params, buffers, ctx, Some(self.mask))
    }
    fn output(&self) -> MatRef<'_> {
        self.inner.output()
    }
    fn backward(&mut self, x: MatRef<'_>, params: &[f32], grads: &mut [f32], dy: &mut Matrix, dx: Option<&mut Matrix>) -> Result<()> {
        self.inner.backward(x, params, grads, dy, dx)
    }
}
