//! Unit tests of the optimizer bookkeeping: the parallel split, state names,
//! the clipping scratch buffer and the tensor layout.

use super::update::drive;
use super::*;
use crate::kernels::PAR_CHUNK;

/// Marks each element it visits, so a chunk visited twice or skipped shows.
struct Mark;

impl Rule<2> for Mark {
    const STATE_NAMES: [&'static str; 2] = ["a", "b"];

    fn update(&self, p: &mut [f32], g: &[f32], [a, b]: [&mut [f32]; 2]) {
        // Leaves of the parallel split are single chunks; the serial path gets all.
        assert!(p.len() <= PAR_CHUNK || p.len() < crate::kernels::PAR_THRESHOLD);
        assert!(a.len() == p.len() && b.len() == p.len() && g.len() == p.len());
        for (((p, &g), a), b) in p.iter_mut().zip(g).zip(a.iter_mut()).zip(b.iter_mut()) {
            *p += 1.0;
            *a += g;
            *b += 2.0 * g;
        }
    }
}

#[test]
fn split_visits_every_element_once() {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    for n in [
        0,
        1,
        PAR_CHUNK - 1,
        PAR_CHUNK * 8,
        PAR_CHUNK * 9 + 5,
        (1 << 15) + 1,
    ] {
        let mut p = vec![0.0f32; n];
        let g: Vec<f32> = (0..n).map(|i| i as f32).collect();
        let mut bufs = vec![vec![0.0f32; n]; 2];
        pool.install(|| drive(&Mark, &mut p, &g, &mut bufs, 0..n));
        assert!(p.iter().all(|&x| x == 1.0), "n = {n}");
        assert_eq!(bufs[0], g, "n = {n}");
        assert!(
            bufs[1].iter().zip(&g).all(|(b, g)| *b == 2.0 * g),
            "n = {n}"
        );
    }
}

#[test]
fn state_names_match_state() {
    for name in OptimizerConfig::NAMES {
        let cfg = OptimizerConfig::from_name(name).unwrap();
        let mut opt = Optimizer::new(cfg.clone()).unwrap();
        opt.step(&mut [1.0; 3], &[0.5; 3]);
        let got: Vec<_> = opt.state().iter().map(|(n, s)| (*n, s.len())).collect();
        let want: Vec<_> = cfg.state_names().iter().map(|n| (*n, 3)).collect();
        assert_eq!(got, want, "{name}");
    }
}

#[test]
fn clipping_scratch_only_when_clipping() {
    let mut opt = Optimizer::new(OptimizerConfig::Adam(AdamConfig::default())).unwrap();
    opt.step(&mut [1.0; 4], &[0.5; 4]);
    assert!(opt.clipped.is_empty() && opt.clipped.capacity() == 0);

    let cfg = OptimizerConfig::Adam(AdamConfig {
        options: OptimizerOptions { clipnorm: Some(0.1), ..Default::default() },
        ..AdamConfig::default()
    });
    let mut opt = Optimizer::new(cfg).unwrap();
    opt.step(&mut [1.0; 4], &[0.5; 4]);
    let at = opt.clipped.as_ptr();
    for _ in 0..3 {
        opt.step(&mut [1.0; 4], &[0.5; 4]);
    }
    assert_eq!((opt.clipped.as_ptr(), opt.clipped.len()), (at, 4));
}

#[test]
fn layout_runs_merge_and_fill_gaps() {
    let cfg = OptimizerConfig::Sgd(SgdConfig {
        weight_decay: 0.1,
        options: OptimizerOptions { exclude_from_weight_decay: vec!["bias".into()], ..Default::default() },
        ..SgdConfig::default()
    });
    let infos = [
        ParamInfo::new("layers.1.weight", 7, vec![3]),
        ParamInfo::new("layers.0.weight", 0, vec![2, 2]),
        ParamInfo::new("layers.0.bias", 4, vec![2]),
        ParamInfo::new("layers.1.bias", 10, vec![1]),
        ParamInfo::new("layers.2.bias", 11, vec![0]),
    ];
    let l = Layout::new(&cfg, &infos);
    assert_eq!(l.len, 11);
    assert_eq!(l.tensors, vec![0..4, 4..6, 6..7, 7..10, 10..11]);
    assert_eq!(
        l.decay_runs(),
        vec![(0..4, true), (4..6, false), (6..10, true), (10..11, false)]
    );
    // Nothing to exclude, or no decay at all: one run.
    let plain = OptimizerConfig::Sgd(SgdConfig {
        weight_decay: 0.1,
        ..SgdConfig::default()
    });
    assert_eq!(
        Layout::new(&plain, &infos).decay_runs(),
        vec![(0..11, true)]
    );
    let no_decay = OptimizerConfig::Sgd(SgdConfig {
        options: OptimizerOptions { exclude_from_weight_decay: vec!["bias".into()], ..Default::default() },
        ..SgdConfig::default()
    });
    assert_eq!(
        Layout::new(&no_decay, &infos).decay_runs(),
        vec![(0..11, true)]
    );
}

#[test]
fn shared_options_serialise_flat_after_the_algorithm_fields() {
    let json = r#"{"name":"adamw","lr":0.01,"beta1":0.9,"beta2":0.999,"eps":1e-8,"weight_decay":0.1,"amsgrad":true,"clipvalue":0.5,"clipnorm":1.0,"global_clipnorm":2.0,"exclude_from_weight_decay":["bias"]}"#;
    let cfg: OptimizerConfig = serde_json::from_str(json).unwrap();
    assert_eq!(cfg.options().global_clipnorm, Some(2.0));
    assert_eq!(serde_json::to_string(&cfg).unwrap(), json);
    // Unknown fields are still refused, beside the options too.
    let typo = r#"{"name":"sgd","lr":0.1,"momentum":0.0,"dampening":0.0,"nesterov":false,"weight_decay":0.0,"clipnorm":1.0,"clip_norm":1.0}"#;
    assert!(serde_json::from_str::<OptimizerConfig>(typo).is_err());
}

#[test]
fn drive_returns_the_largest_magnitude_it_wrote() {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
    for n in [1, PAR_CHUNK + 3, (1 << 15) + 1, PAR_CHUNK * 11] {
        // Mark adds 1 to each weight: the largest written is the largest |p + 1|.
        let start: Vec<f32> = (0..n).map(|i| ((i * 7919) % 1000) as f32 - 600.0).collect();
        let want = start.iter().map(|p| (p + 1.0).abs()).fold(0.0f32, f32::max);
        let g = vec![0.0f32; n];
        let mut p = start.clone();
        let mut bufs = vec![vec![0.0f32; n]; 2];
        let bits = pool.install(|| drive(&Mark, &mut p, &g, &mut bufs, 0..n));
        assert_eq!(f32::from_bits(bits), want, "n = {n}");
        // A NaN in the last chunk still shows, as a pattern at or above inf's.
        let mut p = start.clone();
        p[n - 1] = f32::NAN;
        let bits = pool.install(|| drive(&Mark, &mut p, &g, &mut bufs, 0..n));
        assert!(bits >= f32::INFINITY.to_bits(), "n = {n}");
    }
}

/// The maximum `step` returns is the whole updated vector's, bit for bit, on
/// one and two threads, for every optimizer, over several decay runs.
#[test]
fn step_returns_the_largest_updated_weight() {
    use crate::kernels::reduce::max_abs;
    let n = (1 << 15) + PAR_CHUNK + 7;
    let infos = [ParamInfo::new("layers.0.weight", 0, vec![n - 100]), ParamInfo::new("layers.0.bias", n - 100, vec![100])];
    let p0: Vec<f32> = (0..n).map(|i| ((i * 31) % 997) as f32 / 400.0 - 1.2).collect();
    let g: Vec<f32> = (0..n).map(|i| ((i * 17) % 101) as f32 / 50.0 - 1.0).collect();
    for threads in [1, 2] {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        for name in OptimizerConfig::NAMES {
            let mut cfg = OptimizerConfig::from_name(name).unwrap();
            cfg.options_mut().exclude_from_weight_decay = vec!["bias".into()];
            let mut opt = Optimizer::new(cfg).unwrap();
            opt.set_layout(&infos);
            let mut p = p0.clone();
            for _ in 0..3 {
                let top = pool.install(|| opt.step(&mut p, &g));
                assert_eq!(top.to_bits(), max_abs(&p).to_bits(), "{name}, {threads} threads");
            }
            // A NaN gradient near the end makes a NaN weight: reported as +inf.
            let mut bad = g.clone();
            bad[n - 5] = f32::NAN;
            let top = pool.install(|| opt.step(&mut p, &bad));
            assert!(p[n - 5].is_nan(), "{name}");
            assert_eq!(top, f32::INFINITY, "{name}, {threads} threads");
        }
    }
}
