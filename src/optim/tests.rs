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
