//! The optimizer update of a 784-256-128-10 MLP's parameters (235,146 values),
//! with and without the separate read of every weight that the training
//! step's finiteness check used to make after it (`max_abs`): since the update
//! returns the largest `|p|` it wrote, that pass is gone; this measures what
//! it cost. Both variants run in one process, alternating in rounds, on 1 and
//! 2 threads; prints the median µs per update of each and their ratio.
//!
//! Run: `cargo bench --bench update` (add `-- 9` for nine rounds).

use std::time::Instant;

use ferronn::kernels::reduce::max_abs;
use ferronn::optim::{AdamConfig, Optimizer, OptimizerConfig};
use ferronn::threads;

const PARAMS: usize = 784 * 256 + 256 + 256 * 128 + 128 + 128 * 10 + 10;
const STEPS: usize = 400;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// µs per update over `STEPS` updates; with `extra_pass`, each is followed by
/// the old separate `max_abs` pass. Returns the time and a checksum (so the
/// maxima are used).
fn run(opt: &mut Optimizer, p: &mut [f32], g: &[f32], extra_pass: bool) -> (f64, f32) {
    let t = Instant::now();
    let mut sum = 0.0f32;
    threads::install(|| {
        for _ in 0..STEPS {
            let top = opt.step(p, g);
            sum += if extra_pass { max_abs(p) } else { top };
        }
    });
    (t.elapsed().as_secs_f64() * 1e6 / STEPS as f64, sum)
}

fn main() {
    let rounds: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(5);
    // Gradients of a few magnitudes and signs, none zero (a zero gradient lets
    // Adam's moments decay into subnormals, which is another measurement).
    let g: Vec<f32> = (0..PARAMS).map(|i| ((i * 7919) % 2001) as f32 / 1000.0 - 1.0005).collect();
    for n in [1, 2] {
        threads::set_num_threads(n).expect("start the thread pool");
        let (mut with, mut without) = (Vec::new(), Vec::new());
        let mut p: Vec<f32> = (0..PARAMS).map(|i| ((i * 31) % 997) as f32 / 5000.0 - 0.1).collect();
        let mut opt = Optimizer::new(OptimizerConfig::Adam(AdamConfig::default())).expect("valid config");
        run(&mut opt, &mut p, &g, false);
        let mut check = 0.0;
        for _ in 0..rounds {
            let (a, s1) = run(&mut opt, &mut p, &g, true);
            let (b, s2) = run(&mut opt, &mut p, &g, false);
            with.push(a);
            without.push(b);
            check += s1 + s2;
        }
        let (a, b) = (median(with), median(without));
        println!("{n} thread(s): update + max_abs pass {a:.1} µs, update (max inside) {b:.1} µs, ratio {:.3} (checksum {check:.3e})", a / b);
    }
}
