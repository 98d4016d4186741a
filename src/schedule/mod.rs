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

mod kind;
#[cfg(test)]
mod tests;

pub use kind::{Anneal, ScheduleKind};

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
