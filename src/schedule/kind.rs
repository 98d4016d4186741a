//! [`ScheduleKind`]: the shape of a learning-rate schedule and its
//! hyperparameters, their serde defaults, and the closed-form formula helpers
//! (`cosine`, `restart_position`, `one_cycle_phases`). Validation lives in
//! `kind/validate.rs`.

mod validate;

use std::f64::consts::PI;

use serde::{Deserialize, Serialize};

use super::Per;

/// How [`ScheduleKind::OneCycle`] interpolates within a phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Anneal {
    /// `end + (start - end) / 2 * (1 + cos(pi * pct))`.
    Cos,
    /// `(end - start) * pct + start`.
    Linear,
}

fn default_gamma() -> f64 {
    0.1
}
fn default_one() -> u64 {
    1
}
fn default_power() -> f64 {
    1.0
}
fn default_pct_start() -> f64 {
    0.3
}
fn default_div_factor() -> f64 {
    25.0
}
fn default_final_div_factor() -> f64 {
    1e4
}
fn default_anneal() -> Anneal {
    Anneal::Cos
}

/// The shape of a schedule and its hyperparameters (everything but `per`).
///
/// `t` is the step or epoch counter (see the module docs). Each formula is
/// given exactly as computed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "snake_case", deny_unknown_fields)]
pub enum ScheduleKind {
    /// `lr` at every `t`.
    ///
    /// JSON: `{"name":"constant","lr":0.1}`.
    Constant {
        /// The rate, finite and `>= 0`.
        lr: f64,
    },
    /// `lr * gamma^floor(t / step_size)`: PyTorch `StepLR`'s closed form.
    ///
    /// JSON: `{"name":"step","lr":0.1,"step_size":30,"gamma":0.1}`.
    Step {
        /// The rate at `t = 0`, finite and `>= 0`.
        lr: f64,
        /// How many `t` between decays, `>= 1`.
        step_size: u64,
        /// The factor applied at each decay, finite and `> 0`; default 0.1.
        #[serde(default = "default_gamma")]
        gamma: f64,
    },
    /// `lr * gamma^k` where `k` is the number of milestones `<= t`: PyTorch
    /// `MultiStepLR`'s closed form (which uses `bisect_right`).
    ///
    /// JSON: `{"name":"multistep","lr":0.1,"milestones":[30,80],"gamma":0.1}`.
    Multistep {
        /// The rate at `t = 0`, finite and `>= 0`.
        lr: f64,
        /// The `t` at which the rate is multiplied by `gamma`, strictly
        /// increasing. (PyTorch also accepts repeats, meaning `gamma^2`; here a
        /// repeat is an error.)
        milestones: Vec<u64>,
        /// The factor applied at each milestone, finite and `> 0`; default 0.1.
        #[serde(default = "default_gamma")]
        gamma: f64,
    },
    /// `lr * gamma^t`: PyTorch `ExponentialLR`'s closed form. A `gamma > 1`
    /// grows without bound and eventually overflows f32 to infinity, which the
    /// optimizer then rejects.
    ///
    /// JSON: `{"name":"exponential","lr":0.1,"gamma":0.95}`.
    Exponential {
        /// The rate at `t = 0`, finite and `>= 0`.
        lr: f64,
        /// The factor per `t`, finite and `> 0`.
        gamma: f64,
    },
    /// `eta_min + (lr - eta_min) * (1 + cos(pi * t / t_max)) / 2` for
    /// `t <= t_max`, and `eta_min` for `t > t_max`.
    ///
    /// This is PyTorch `CosineAnnealingLR`'s closed form up to `t_max`.
    /// PyTorch's recursive form (what `scheduler.step()` uses) agrees with it
    /// to rounding up to `t_max` but then continues periodically, climbing back
    /// to `lr` at `2 * t_max`; this schedule instead holds at `eta_min`.
    ///
    /// JSON: `{"name":"cosine","lr":0.1,"t_max":100,"eta_min":0.0}`.
    Cosine {
        /// The rate at `t = 0`, finite and `>= 0`.
        lr: f64,
        /// The `t` at which the rate reaches `eta_min`, `>= 1`.
        t_max: u64,
        /// The final rate, finite and `>= 0`; default 0.
        #[serde(default)]
        eta_min: f64,
    },
    /// SGDR cosine annealing with warm restarts, PyTorch
    /// `CosineAnnealingWarmRestarts`:
    /// `eta_min + (lr - eta_min) * (1 + cos(pi * T_cur / T_i)) / 2`.
    ///
    /// `T_i` starts at `t_0` and `T_cur` at `t`; while `T_cur >= T_i`,
    /// `T_cur -= T_i` and `T_i *= t_mult` (what PyTorch's `step()` does one
    /// call at a time, in exact integer arithmetic). So the first cycle lasts
    /// `t_0`, the next `t_0 * t_mult`, and so on, and each restart returns to
    /// `lr`.
    ///
    /// JSON: `{"name":"cosine_restarts","lr":0.1,"t_0":10,"t_mult":2,"eta_min":0.0}`.
    CosineRestarts {
        /// The rate at each restart, finite and `>= 0`.
        lr: f64,
        /// The length of the first cycle, `>= 1`.
        t_0: u64,
        /// The factor by which each cycle is longer than the last, `>= 1`;
        /// default 1.
        #[serde(default = "default_one")]
        t_mult: u64,
        /// The rate approached at the end of each cycle, finite and `>= 0`;
        /// default 0.
        #[serde(default)]
        eta_min: f64,
    },
    /// Linear warm-up, then cosine decay (no PyTorch equivalent):
    ///
    /// ```text
    /// t <  warmup:          lr * (t + 1) / warmup
    /// warmup <= t <= total: eta_min + (lr - eta_min) * (1 + cos(pi * (t - warmup) / (total - warmup))) / 2
    /// t >  total:           eta_min
    /// ```
    ///
    /// So the rate at `t = 0` is `lr / warmup` (not 0), the warm-up reaches
    /// `lr` at `t = warmup - 1`, the rate is `lr` again at `t = warmup`, and
    /// `eta_min` at `t = total`. `warmup = 0` is a plain cosine decay over
    /// `total`.
    ///
    /// JSON: `{"name":"warmup_cosine","lr":0.001,"warmup":500,"total":10000,"eta_min":0.0}`.
    WarmupCosine {
        /// The peak rate, finite and `>= 0`.
        lr: f64,
        /// The number of warm-up `t`, `< total`.
        warmup: u64,
        /// The `t` at which the rate reaches `eta_min`, `> warmup`.
        total: u64,
        /// The final rate, finite and `>= 0`; default 0.
        #[serde(default)]
        eta_min: f64,
    },
    /// The 1cycle policy (Smith & Topin 2017), PyTorch `OneCycleLR` (learning
    /// rate only, no momentum cycling), with its phase boundaries exactly:
    ///
    /// ```text
    /// initial_lr = max_lr / div_factor
    /// min_lr     = initial_lr / final_div_factor
    /// two phases (three_phase = false), as (end_step: start_lr -> end_lr):
    ///     pct_start * total_steps - 1:     initial_lr -> max_lr
    ///     total_steps - 1:                 max_lr     -> min_lr
    /// three phases (three_phase = true):
    ///     pct_start * total_steps - 1:     initial_lr -> max_lr
    ///     2 * pct_start * total_steps - 2: max_lr     -> initial_lr
    ///     total_steps - 1:                 initial_lr -> min_lr
    /// ```
    ///
    /// At `t`, the phase is the first whose `end_step >= t` (the last phase
    /// if none), `start_step` is the previous phase's `end_step` (0 for the
    /// first), `pct = (t - start_step) / (end_step - start_step)`, and the
    /// rate is `anneal(start_lr, end_lr, pct)` (see [`Anneal`]).
    ///
    /// PyTorch raises an error past `t = total_steps` (and at
    /// `t = total_steps` extrapolates one step beyond `min_lr`); this
    /// schedule holds at `min_lr` for every `t >= total_steps - 1`.
    ///
    /// Every phase must be longer than zero (PyTorch divides by zero when one
    /// is exactly zero, and silently skips the warm-up when
    /// `pct_start * total_steps < 1`): so `pct_start * total_steps > 1`, and
    /// with three phases also `2 * pct_start * total_steps < total_steps + 1`.
    ///
    /// JSON: `{"name":"one_cycle","max_lr":0.1,"total_steps":1000,"pct_start":0.3,
    /// "div_factor":25.0,"final_div_factor":10000.0,"anneal":"cos","three_phase":false}`.
    OneCycle {
        /// The peak rate, finite and `>= 0`.
        max_lr: f64,
        /// The length of the cycle in `t`, `>= 1`.
        total_steps: u64,
        /// The fraction of the cycle spent increasing the rate, in `(0, 1)`;
        /// default 0.3.
        #[serde(default = "default_pct_start")]
        pct_start: f64,
        /// `initial_lr = max_lr / div_factor`, finite and `> 0`; default 25.
        #[serde(default = "default_div_factor")]
        div_factor: f64,
        /// `min_lr = initial_lr / final_div_factor`, finite and `> 0`;
        /// default 1e4.
        #[serde(default = "default_final_div_factor")]
        final_div_factor: f64,
        /// `"cos"` or `"linear"`; default `"cos"`.
        #[serde(default = "default_anneal")]
        anneal: Anneal,
        /// Whether to anneal back to `initial_lr` before the final decay;
        /// default false.
        #[serde(default)]
        three_phase: bool,
    },
    /// `lr * (1 - min(t, total_iters) / total_iters)^power`: PyTorch
    /// `PolynomialLR`'s closed form; 0 from `total_iters` on (for
    /// `power > 0`).
    ///
    /// JSON: `{"name":"polynomial","lr":0.1,"total_iters":100,"power":1.0}`.
    Polynomial {
        /// The rate at `t = 0`, finite and `>= 0`.
        lr: f64,
        /// The `t` at which the rate reaches 0, `>= 1`.
        total_iters: u64,
        /// The exponent, finite and `>= 0`; default 1.
        #[serde(default = "default_power")]
        power: f64,
    },
}

impl ScheduleKind {
    /// The names a schedule's `name` field accepts.
    pub const NAMES: [&'static str; 9] = [
        "constant",
        "step",
        "multistep",
        "exponential",
        "cosine",
        "cosine_restarts",
        "warmup_cosine",
        "one_cycle",
        "polynomial",
    ];

    /// The schedule's name, as in its JSON.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Constant { .. } => "constant",
            Self::Step { .. } => "step",
            Self::Multistep { .. } => "multistep",
            Self::Exponential { .. } => "exponential",
            Self::Cosine { .. } => "cosine",
            Self::CosineRestarts { .. } => "cosine_restarts",
            Self::WarmupCosine { .. } => "warmup_cosine",
            Self::OneCycle { .. } => "one_cycle",
            Self::Polynomial { .. } => "polynomial",
        }
    }

    /// The counter this kind follows when `per` is not given: steps for
    /// `one_cycle` and `warmup_cosine`, epochs for the others.
    pub fn default_per(&self) -> Per {
        match self {
            Self::OneCycle { .. } | Self::WarmupCosine { .. } => Per::Step,
            _ => Per::Epoch,
        }
    }

    /// OneCycle's phases as `(end_step, start_lr, end_lr)` (see
    /// [`one_cycle_phases`]); empty for the other kinds.
    fn one_cycle_phases(&self) -> Vec<(f64, f64, f64)> {
        match *self {
            Self::OneCycle {
                max_lr,
                total_steps,
                pct_start,
                div_factor,
                final_div_factor,
                three_phase,
                ..
            } => one_cycle_phases(max_lr, total_steps, pct_start, div_factor, final_div_factor, three_phase),
            _ => Vec::new(),
        }
    }

    /// The rate at counter value `t`, in f64.
    pub fn lr_at(&self, t: u64) -> f64 {
        match *self {
            Self::Constant { lr } => lr,
            Self::Step {
                lr,
                step_size,
                gamma,
            } => lr * gamma.powf((t / step_size.max(1)) as f64),
            Self::Multistep {
                lr,
                ref milestones,
                gamma,
            } => {
                // Milestones are sorted, so this is bisect_right.
                let k = milestones.partition_point(|&m| m <= t);
                lr * gamma.powf(k as f64)
            }
            Self::Exponential { lr, gamma } => lr * gamma.powf(t as f64),
            Self::Cosine { lr, t_max, eta_min } => {
                if t > t_max {
                    eta_min
                } else {
                    cosine(lr, eta_min, t as f64, t_max as f64)
                }
            }
            Self::CosineRestarts {
                lr,
                t_0,
                t_mult,
                eta_min,
            } => {
                let (t_cur, t_i) = restart_position(t, t_0, t_mult);
                cosine(lr, eta_min, t_cur as f64, t_i as f64)
            }
            Self::WarmupCosine {
                lr,
                warmup,
                total,
                eta_min,
            } => {
                if t < warmup {
                    lr * (t as f64 + 1.0) / warmup as f64
                } else if t <= total {
                    cosine(lr, eta_min, (t - warmup) as f64, (total - warmup) as f64)
                } else {
                    eta_min
                }
            }
            Self::OneCycle {
                total_steps,
                anneal,
                ..
            } => {
                let t = t.min(total_steps.saturating_sub(1)) as f64;
                let phases = self.one_cycle_phases();
                let mut start_step = 0.0;
                let last = phases.len() - 1;
                for (i, &(end_step, start_lr, end_lr)) in phases.iter().enumerate() {
                    if t <= end_step || i == last {
                        let pct = (t - start_step) / (end_step - start_step);
                        return match anneal {
                            Anneal::Cos => {
                                end_lr + (start_lr - end_lr) / 2.0 * ((PI * pct).cos() + 1.0)
                            }
                            Anneal::Linear => (end_lr - start_lr) * pct + start_lr,
                        };
                    }
                    start_step = end_step;
                }
                unreachable!("the last phase always matches")
            }
            Self::Polynomial {
                lr,
                total_iters,
                power,
            } => {
                let frac = t.min(total_iters) as f64 / total_iters as f64;
                lr * (1.0 - frac).powf(power)
            }
        }
    }
}

/// `eta_min + (lr - eta_min) * (1 + cos(pi * t / t_max)) / 2`, with PyTorch's
/// order of operations.
fn cosine(lr: f64, eta_min: f64, t: f64, t_max: f64) -> f64 {
    eta_min + (lr - eta_min) * (1.0 + (PI * t / t_max).cos()) / 2.0
}

/// `(T_cur, T_i)` of `CosineAnnealingWarmRestarts` after `t` steps. In u128 so
/// that `T_i * t_mult` cannot overflow before `T_i` exceeds any u64 `t`.
pub(super) fn restart_position(t: u64, t_0: u64, t_mult: u64) -> (u128, u128) {
    let t_0 = u128::from(t_0.max(1));
    let t_mult = u128::from(t_mult.max(1));
    let t = u128::from(t);
    if t_mult == 1 {
        return (t % t_0, t_0);
    }
    let (mut t_cur, mut t_i) = (t, t_0);
    while t_cur >= t_i {
        t_cur -= t_i;
        t_i *= t_mult;
    }
    (t_cur, t_i)
}

/// OneCycleLR's phases as `(end_step, start_lr, end_lr)`, with PyTorch's
/// arithmetic: `float(pct_start * total_steps) - 1` and so on.
fn one_cycle_phases(
    max_lr: f64,
    total_steps: u64,
    pct_start: f64,
    div_factor: f64,
    final_div_factor: f64,
    three_phase: bool,
) -> Vec<(f64, f64, f64)> {
    let initial_lr = max_lr / div_factor;
    let min_lr = initial_lr / final_div_factor;
    let total = total_steps as f64;
    if three_phase {
        vec![
            (pct_start * total - 1.0, initial_lr, max_lr),
            (2.0 * pct_start * total - 2.0, max_lr, initial_lr),
            (total - 1.0, initial_lr, min_lr),
        ]
    } else {
        vec![
            (pct_start * total - 1.0, initial_lr, max_lr),
            (total - 1.0, max_lr, min_lr),
        ]
    }
}
