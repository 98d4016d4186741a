//! Learning-rate schedules: a serialisable [`Schedule`] whose
//! [`lr_at`](Schedule::lr_at) gives the rate for any step or epoch in closed
//! form, so the training step can set the rate per batch without Python.
//!
//! A schedule serialises as a flat JSON object tagged by `name`, e.g.
//! `{"name":"cosine","lr":0.1,"t_max":100,"eta_min":0.0,"per":"epoch"}`.
//! Optional fields may be left out and take the defaults documented on each
//! [`ScheduleKind`] variant; unknown fields are rejected. `per` says which
//! counter drives the schedule: `"step"` (optimizer steps already taken) or
//! `"epoch"` (the 0-based epoch index). It defaults to `"step"` for
//! `one_cycle` and `warmup_cosine` and to `"epoch"` for all the others.
//!
//! Below, `t` is that counter. The rate for the batch about to be trained is
//! `lr_at(steps_taken, epoch)`, which is the rate a PyTorch scheduler holds
//! after `t` calls to `scheduler.step()`: its `last_epoch == t`. All arithmetic
//! is in f64 (as in PyTorch) and only the result is rounded to f32.

use std::f64::consts::PI;

use serde::de::Error as _;
use serde::ser::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{ensure_config, Error, Result};

/// Which counter drives a schedule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Per {
    /// The number of optimizer steps already taken (changes every batch).
    Step,
    /// The 0-based epoch index (changes once per epoch).
    Epoch,
}

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
                max_lr,
                total_steps,
                pct_start,
                div_factor,
                final_div_factor,
                anneal,
                three_phase,
            } => {
                let t = t.min(total_steps.saturating_sub(1)) as f64;
                let phases = one_cycle_phases(
                    max_lr,
                    total_steps,
                    pct_start,
                    div_factor,
                    final_div_factor,
                    three_phase,
                );
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

    /// Checks every hyperparameter against its valid range.
    ///
    /// # Errors
    /// `Error::Config` naming the schedule, the offending field, its value and
    /// the valid range.
    pub fn validate(&self) -> Result<()> {
        let name = self.name();
        let nonneg = |field: &str, v: f64| {
            ensure_config(v.is_finite() && v >= 0.0, || {
                format!("{name} schedule {field} must be finite and >= 0, got {v}")
            })
        };
        let positive = |field: &str, v: f64| {
            ensure_config(v.is_finite() && v > 0.0, || {
                format!("{name} schedule {field} must be finite and > 0, got {v}")
            })
        };
        let at_least_one = |field: &str, v: u64| {
            ensure_config(v >= 1, || {
                format!("{name} schedule {field} must be >= 1, got {v}")
            })
        };
        match *self {
            Self::Constant { lr } => nonneg("lr", lr),
            Self::Step {
                lr,
                step_size,
                gamma,
            } => {
                nonneg("lr", lr)?;
                at_least_one("step_size", step_size)?;
                positive("gamma", gamma)
            }
            Self::Multistep {
                lr,
                ref milestones,
                gamma,
            } => {
                nonneg("lr", lr)?;
                ensure_config(milestones.windows(2).all(|w| w[0] < w[1]), || {
                    format!(
                        "{name} schedule milestones must be strictly increasing, got {milestones:?}"
                    )
                })?;
                positive("gamma", gamma)
            }
            Self::Exponential { lr, gamma } => {
                nonneg("lr", lr)?;
                positive("gamma", gamma)
            }
            Self::Cosine { lr, t_max, eta_min } => {
                nonneg("lr", lr)?;
                at_least_one("t_max", t_max)?;
                nonneg("eta_min", eta_min)
            }
            Self::CosineRestarts {
                lr,
                t_0,
                t_mult,
                eta_min,
            } => {
                nonneg("lr", lr)?;
                at_least_one("t_0", t_0)?;
                at_least_one("t_mult", t_mult)?;
                nonneg("eta_min", eta_min)
            }
            Self::WarmupCosine {
                lr,
                warmup,
                total,
                eta_min,
            } => {
                nonneg("lr", lr)?;
                ensure_config(total > warmup, || {
                    format!(
                        "{name} schedule total must be > warmup (the cosine phase needs at least one step), got warmup={warmup}, total={total}"
                    )
                })?;
                nonneg("eta_min", eta_min)
            }
            Self::OneCycle {
                max_lr,
                total_steps,
                pct_start,
                div_factor,
                final_div_factor,
                three_phase,
                ..
            } => {
                nonneg("max_lr", max_lr)?;
                at_least_one("total_steps", total_steps)?;
                ensure_config(pct_start > 0.0 && pct_start < 1.0, || {
                    format!("{name} schedule pct_start must be in (0, 1), got {pct_start}")
                })?;
                positive("div_factor", div_factor)?;
                positive("final_div_factor", final_div_factor)?;
                let phases = one_cycle_phases(
                    max_lr,
                    total_steps,
                    pct_start,
                    div_factor,
                    final_div_factor,
                    three_phase,
                );
                let ramp = pct_start * total_steps as f64;
                ensure_config(phases[0].0 > 0.0, || {
                    format!(
                        "{name} schedule warm-up must last more than one step: pct_start * total_steps must be > 1, got {pct_start} * {total_steps} = {ramp}; raise total_steps or pct_start"
                    )
                })?;
                let mut start = 0.0;
                for (i, &(end, _, _)) in phases.iter().enumerate() {
                    ensure_config(end > start, || {
                        if three_phase {
                            format!(
                                "{name} schedule with three_phase=true needs 2 * pct_start * total_steps < total_steps + 1 so the final phase is not empty, got pct_start={pct_start}, total_steps={total_steps}; use pct_start <= 0.5"
                            )
                        } else {
                            format!(
                                "{name} schedule phase {} is empty (pct_start={pct_start}, total_steps={total_steps}); use a smaller pct_start",
                                i + 1
                            )
                        }
                    })?;
                    start = end;
                }
                Ok(())
            }
            Self::Polynomial {
                lr,
                total_iters,
                power,
            } => {
                nonneg("lr", lr)?;
                at_least_one("total_iters", total_iters)?;
                nonneg("power", power)
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
fn restart_position(t: u64, t_0: u64, t_mult: u64) -> (u128, u128) {
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

/// A learning-rate schedule: its kind and hyperparameters, and the counter
/// (`per`) that drives it.
///
/// Serialises as one flat JSON object, the [`ScheduleKind`] fields plus
/// `"per"`, e.g. `{"name":"cosine","lr":0.1,"t_max":100,"eta_min":0.0,"per":"epoch"}`.
/// When deserialising, `per` may be omitted (see
/// [`ScheduleKind::default_per`]); deserialising does not check ranges, call
/// [`validate`](Self::validate) (or use [`from_json`](Self::from_json)).
#[derive(Clone, Debug, PartialEq)]
pub struct Schedule {
    /// The shape of the schedule and its hyperparameters.
    pub kind: ScheduleKind,
    /// Whether `t` counts optimizer steps or epochs.
    pub per: Per,
}

impl Schedule {
    /// A schedule following `kind`'s default counter.
    pub fn new(kind: ScheduleKind) -> Self {
        let per = kind.default_per();
        Self { kind, per }
    }

    /// Parses and validates a JSON spec.
    ///
    /// # Errors
    /// `Error::UnknownName` if `name` is not one of [`ScheduleKind::NAMES`];
    /// `Error::Config` if the JSON is malformed, a field is missing, unknown
    /// or of the wrong type, or a value is out of range.
    pub fn from_json(json: &str) -> Result<Self> {
        let value: serde_json::Value = serde_json::from_str(json)
            .map_err(|e| Error::Config(format!("invalid schedule spec: {e}")))?;
        let name = match value.get("name") {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(other) => {
                return Err(Error::Config(format!(
                    "schedule name must be a string, got {other}"
                )))
            }
            None if value.is_object() => {
                return Err(Error::Config(
                    "schedule spec has no \"name\" field".to_string(),
                ))
            }
            None => {
                return Err(Error::Config(format!(
                    "schedule spec must be a JSON object, got {value}"
                )))
            }
        };
        if !ScheduleKind::NAMES.contains(&name.as_str()) {
            return Err(Error::UnknownName(format!(
                "unknown schedule {name:?}; expected one of {}",
                ScheduleKind::NAMES.join(", ")
            )));
        }
        // serde's own type errors do not name the field; these are the likely ones.
        for (field, v) in value.as_object().into_iter().flatten() {
            let ok = match field.as_str() {
                "step_size" | "t_max" | "t_0" | "t_mult" | "warmup" | "total" | "total_steps"
                | "total_iters" => v.is_u64(),
                "milestones" => v
                    .as_array()
                    .is_some_and(|a| a.iter().all(serde_json::Value::is_u64)),
                _ => true,
            };
            ensure_config(ok, || {
                let what = if field == "milestones" {
                    "a list of non-negative integers"
                } else {
                    "a non-negative integer"
                };
                format!("{name} schedule {field} must be {what}, got {v}")
            })?;
        }
        let schedule: Self = serde_json::from_value(value)
            .map_err(|e| Error::Config(format!("invalid {name} schedule: {e}")))?;
        schedule.validate()?;
        Ok(schedule)
    }

    /// The spec as compact JSON, with every default filled in.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a schedule always serialises")
    }

    /// Checks every hyperparameter against its valid range.
    ///
    /// # Errors
    /// `Error::Config` naming the schedule, the offending field, its value and
    /// the valid range.
    pub fn validate(&self) -> Result<()> {
        self.kind.validate()
    }

    /// Whether the rate changes per optimizer step (`per == "step"`) rather
    /// than per epoch.
    pub fn per_step(&self) -> bool {
        self.per == Per::Step
    }

    /// The rate for the next batch: `step` is the number of optimizer steps
    /// already taken, `epoch` the 0-based index of the current epoch; the
    /// schedule reads the one its `per` names. Rounded from f64 to f32 at the
    /// end.
    pub fn lr_at(&self, step: u64, epoch: u64) -> f32 {
        let t = if self.per_step() { step } else { epoch };
        self.kind.lr_at(t) as f32
    }

    /// The rate for the very first batch, `lr_at(0, 0)`.
    pub fn initial_lr(&self) -> f32 {
        self.lr_at(0, 0)
    }
}

/// The flat JSON object: the kind's fields, then `per`.
#[derive(Serialize)]
struct Flat<'a> {
    #[serde(flatten)]
    kind: &'a ScheduleKind,
    per: Per,
}

impl Serialize for Schedule {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        let flat = Flat {
            kind: &self.kind,
            per: self.per,
        };
        flat.serialize(serializer)
            .map_err(|e| S::Error::custom(format!("schedule: {e}")))
    }
}

impl<'de> Deserialize<'de> for Schedule {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        // `per` is taken out first so that the kind can still reject unknown
        // fields (serde's `flatten` cannot be combined with that).
        let mut map = serde_json::Map::<String, serde_json::Value>::deserialize(deserializer)?;
        let per = map
            .remove("per")
            .map(Per::deserialize)
            .transpose()
            .map_err(|e| D::Error::custom(format!("per: {e}")))?;
        let kind =
            ScheduleKind::deserialize(serde_json::Value::Object(map)).map_err(D::Error::custom)?;
        let per = per.unwrap_or_else(|| kind.default_per());
        Ok(Self { kind, per })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sched(json: &str) -> Schedule {
        Schedule::from_json(json).unwrap()
    }

    fn close(a: f32, b: f64) -> bool {
        (f64::from(a) - b).abs() <= 1e-6 * b.abs().max(1e-12)
    }

    #[track_caller]
    fn check(s: &Schedule, want: &[(u64, f64)]) {
        for &(t, w) in want {
            let got = if s.per_step() {
                s.lr_at(t, 999)
            } else {
                s.lr_at(999, t)
            };
            assert!(
                close(got, w),
                "{} at t={t}: got {got}, want {w}",
                s.kind.name()
            );
        }
    }

    #[test]
    fn constant() {
        check(
            &sched(r#"{"name":"constant","lr":0.5}"#),
            &[(0, 0.5), (1000, 0.5)],
        );
    }

    #[test]
    fn step_decay() {
        let s = sched(r#"{"name":"step","lr":1.0,"step_size":3,"gamma":0.5}"#);
        check(
            &s,
            &[
                (0, 1.0),
                (2, 1.0),
                (3, 0.5),
                (5, 0.5),
                (6, 0.25),
                (9, 0.125),
            ],
        );
        // gamma defaults to 0.1
        let s = sched(r#"{"name":"step","lr":1.0,"step_size":2}"#);
        check(&s, &[(1, 1.0), (2, 0.1), (4, 0.01)]);
    }

    #[test]
    fn multistep() {
        let s = sched(r#"{"name":"multistep","lr":1.0,"milestones":[2,5],"gamma":0.5}"#);
        check(
            &s,
            &[
                (0, 1.0),
                (1, 1.0),
                (2, 0.5),
                (4, 0.5),
                (5, 0.25),
                (100, 0.25),
            ],
        );
        let s = sched(r#"{"name":"multistep","lr":1.0,"milestones":[]}"#);
        check(&s, &[(0, 1.0), (100, 1.0)]);
    }

    #[test]
    fn exponential() {
        let s = sched(r#"{"name":"exponential","lr":2.0,"gamma":0.5}"#);
        check(&s, &[(0, 2.0), (1, 1.0), (3, 0.25)]);
    }

    #[test]
    fn cosine_holds_at_eta_min_after_t_max() {
        let s = sched(r#"{"name":"cosine","lr":1.0,"t_max":4,"eta_min":0.2}"#);
        // eta_min + 0.8 * (1 + cos(pi t / 4)) / 2
        let half = std::f64::consts::FRAC_1_SQRT_2;
        check(
            &s,
            &[
                (0, 1.0),
                (1, 0.2 + 0.4 * (1.0 + half)),
                (2, 0.6),
                (3, 0.2 + 0.4 * (1.0 - half)),
                (4, 0.2),
                (5, 0.2),
                (8, 0.2),
            ],
        );
        assert!(!s.per_step());
    }

    #[test]
    fn cosine_restarts_t_mult_1_and_2() {
        let s = sched(r#"{"name":"cosine_restarts","lr":1.0,"t_0":2}"#);
        // T_i = 2: t=0 -> 1, t=1 -> 0.5, t=2 restart -> 1
        check(&s, &[(0, 1.0), (1, 0.5), (2, 1.0), (3, 0.5), (4, 1.0)]);
        let s = sched(r#"{"name":"cosine_restarts","lr":1.0,"t_0":2,"t_mult":2}"#);
        // Cycles [0,2), [2,6), [6,14): (T_cur, T_i) at t=3 is (1,4): (1+cos(pi/4))/2
        let q = (1.0 + std::f64::consts::FRAC_1_SQRT_2) / 2.0;
        check(
            &s,
            &[
                (0, 1.0),
                (1, 0.5),
                (2, 1.0),
                (3, q),
                (4, 0.5),
                (5, 1.0 - q),
                (6, 1.0),
                (10, 0.5),
                (14, 1.0),
            ],
        );
        // Huge t with growing cycles neither overflows nor loops forever.
        let (t_cur, t_i) = restart_position(u64::MAX, 1, 3);
        assert!(t_cur < t_i);
    }

    #[test]
    fn warmup_cosine() {
        let s = sched(r#"{"name":"warmup_cosine","lr":1.0,"warmup":4,"total":8,"eta_min":0.0}"#);
        assert!(s.per_step());
        check(
            &s,
            &[
                (0, 0.25),
                (1, 0.5),
                (3, 1.0),
                (4, 1.0),
                (6, 0.5),
                (8, 0.0),
                (9, 0.0),
            ],
        );
        let s = sched(r#"{"name":"warmup_cosine","lr":1.0,"warmup":0,"total":2}"#);
        check(&s, &[(0, 1.0), (1, 0.5), (2, 0.0)]);
    }

    #[test]
    fn one_cycle_two_phase() {
        // total 10, pct 0.3: phase 1 ends at step 2 (0.3*10 - 1), phase 2 at 9.
        let s = sched(r#"{"name":"one_cycle","max_lr":1.0,"total_steps":10}"#);
        assert!(s.per_step());
        let init = 1.0 / 25.0;
        let min = init / 1e4;
        let cos =
            |a: f64, b: f64, p: f64| b + (a - b) / 2.0 * ((std::f64::consts::PI * p).cos() + 1.0);
        check(
            &s,
            &[
                (0, init),
                (1, cos(init, 1.0, 0.5)),
                (2, 1.0),
                (5, cos(1.0, min, 3.0 / 7.0)),
                (9, min),
                (10, min),
                (50, min),
            ],
        );
        let s = sched(
            r#"{"name":"one_cycle","max_lr":1.0,"total_steps":10,"anneal":"linear","div_factor":10,"final_div_factor":10}"#,
        );
        check(&s, &[(0, 0.1), (1, 0.55), (2, 1.0), (9, 0.01)]);
    }

    #[test]
    fn one_cycle_three_phase() {
        // total 10, pct 0.25: ends at 1.5, 3.0, 9.
        let s = sched(
            r#"{"name":"one_cycle","max_lr":1.0,"total_steps":10,"pct_start":0.25,"anneal":"linear","div_factor":10,"final_div_factor":10,"three_phase":true}"#,
        );
        // t=1: phase 1, pct 1/1.5; t=2: phase 2 from 1.5 to 3, pct 1/3;
        // t=3: initial; t=6: phase 3, pct 3/6.
        check(
            &s,
            &[
                (0, 0.1),
                (1, 0.1 + 0.9 / 1.5),
                (2, 1.0 - 0.9 / 3.0),
                (3, 0.1),
                (6, 0.1 + (0.01 - 0.1) * 0.5),
                (9, 0.01),
            ],
        );
    }

    #[test]
    fn polynomial() {
        let s = sched(r#"{"name":"polynomial","lr":1.0,"total_iters":4,"power":2.0}"#);
        check(&s, &[(0, 1.0), (1, 0.5625), (2, 0.25), (4, 0.0), (10, 0.0)]);
        let s = sched(r#"{"name":"polynomial","lr":1.0,"total_iters":4}"#);
        check(&s, &[(1, 0.75), (3, 0.25)]);
    }

    #[test]
    fn per_override_and_counter_choice() {
        let s = sched(r#"{"name":"step","lr":1.0,"step_size":1,"gamma":0.5,"per":"step"}"#);
        assert!(s.per_step());
        assert_eq!(s.lr_at(2, 0), 0.25);
        let s = sched(r#"{"name":"one_cycle","max_lr":1.0,"total_steps":10,"per":"epoch"}"#);
        assert!(!s.per_step());
        assert_eq!(s.lr_at(5, 2), 1.0);
    }

    #[test]
    fn round_trip_fills_defaults() {
        let s = sched(r#"{"name":"cosine","lr":0.1,"t_max":100}"#);
        assert_eq!(
            s.to_json(),
            r#"{"name":"cosine","lr":0.1,"t_max":100,"eta_min":0.0,"per":"epoch"}"#
        );
        for json in [
            r#"{"name":"one_cycle","max_lr":0.1,"total_steps":1000}"#,
            r#"{"name":"multistep","lr":0.1,"milestones":[3,7],"per":"step"}"#,
            r#"{"name":"cosine_restarts","lr":0.1,"t_0":3,"t_mult":2}"#,
        ] {
            let s = sched(json);
            assert_eq!(sched(&s.to_json()), s);
        }
    }

    #[test]
    fn rejects_nonsense() {
        let config = |json: &str| match Schedule::from_json(json) {
            Err(Error::Config(msg)) => msg,
            other => panic!("{json}: expected a Config error, got {other:?}"),
        };
        for (json, needle) in [
            (
                r#"{"name":"constant","lr":-1}"#,
                "lr must be finite and >= 0",
            ),
            (
                r#"{"name":"cosine","lr":0.1,"t_max":0}"#,
                "t_max must be >= 1",
            ),
            (
                r#"{"name":"step","lr":0.1,"step_size":0}"#,
                "step_size must be >= 1",
            ),
            (
                r#"{"name":"step","lr":0.1,"step_size":2,"gamma":0}"#,
                "gamma must be finite and > 0",
            ),
            (
                r#"{"name":"exponential","lr":0.1,"gamma":-0.5}"#,
                "gamma must be finite and > 0",
            ),
            (
                r#"{"name":"multistep","lr":0.1,"milestones":[5,2]}"#,
                "strictly increasing",
            ),
            (
                r#"{"name":"multistep","lr":0.1,"milestones":[2,2]}"#,
                "strictly increasing",
            ),
            (
                r#"{"name":"one_cycle","max_lr":0.1,"total_steps":100,"pct_start":0}"#,
                "pct_start must be in (0, 1)",
            ),
            (
                r#"{"name":"one_cycle","max_lr":0.1,"total_steps":100,"pct_start":1.0}"#,
                "pct_start must be in (0, 1)",
            ),
            (
                r#"{"name":"one_cycle","max_lr":0.1,"total_steps":3}"#,
                "pct_start * total_steps must be > 1",
            ),
            (
                r#"{"name":"one_cycle","max_lr":0.1,"total_steps":100,"pct_start":0.6,"three_phase":true}"#,
                "pct_start <= 0.5",
            ),
            (
                r#"{"name":"one_cycle","max_lr":0.1,"total_steps":100,"div_factor":0}"#,
                "div_factor must be finite and > 0",
            ),
            (
                r#"{"name":"warmup_cosine","lr":0.1,"warmup":10,"total":10}"#,
                "total must be > warmup",
            ),
            (
                r#"{"name":"cosine_restarts","lr":0.1,"t_0":0}"#,
                "t_0 must be >= 1",
            ),
            (
                r#"{"name":"cosine_restarts","lr":0.1,"t_0":1,"t_mult":0}"#,
                "t_mult must be >= 1",
            ),
            (
                r#"{"name":"polynomial","lr":0.1,"total_iters":0}"#,
                "total_iters must be >= 1",
            ),
            (
                r#"{"name":"polynomial","lr":0.1,"total_iters":5,"power":-1}"#,
                "power must be finite and >= 0",
            ),
            (
                r#"{"name":"cosine","lr":0.1,"t_max":5,"eta_min":-0.1}"#,
                "eta_min must be finite and >= 0",
            ),
            // Structural errors.
            (r#"{"name":"cosine","lr":0.1}"#, "missing field `t_max`"),
            (
                r#"{"name":"cosine","lr":0.1,"t_max":5,"tmax":5}"#,
                "unknown field `tmax`",
            ),
            (
                r#"{"name":"cosine","lr":0.1,"t_max":5,"per":"batch"}"#,
                "per: unknown variant `batch`",
            ),
            (
                r#"{"name":"cosine","lr":0.1,"t_max":2.5}"#,
                "t_max must be a non-negative integer, got 2.5",
            ),
            (
                r#"{"name":"cosine","lr":0.1,"t_max":-3}"#,
                "t_max must be a non-negative integer, got -3",
            ),
            (
                r#"{"name":"multistep","lr":0.1,"milestones":[1,-3]}"#,
                "milestones must be a list of non-negative integers",
            ),
            (r#"{"name":"constant","lr":"big"}"#, "invalid type: string"),
            (r#"{"lr":0.1}"#, "no \"name\""),
            (r#"[1]"#, "must be a JSON object"),
            (r#"{"name":"#, "invalid schedule spec"),
        ] {
            let msg = config(json);
            assert!(msg.contains(needle), "{json}: {msg:?} lacks {needle:?}");
        }
        assert!(matches!(
            Schedule::from_json(r#"{"name":"linear","lr":0.1}"#),
            Err(Error::UnknownName(_))
        ));
    }
}
