//! [`ScheduleKind::validate`]: every hyperparameter of every schedule checked
//! against its valid range, with an error naming the schedule and the field.

use super::ScheduleKind;
use crate::error::{ensure_config, Result};

impl ScheduleKind {
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
                let phases = self.one_cycle_phases();
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
