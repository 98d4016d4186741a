//! The activation and loss tables (`crate::activation::ACTIVATIONS`,
//! `crate::loss::LOSSES`) as typed Python objects. The Python package reads
//! them once (`ferronn/names.py`) instead of keeping its own copies of names,
//! aliases, defaults and properties.

use pyo3::prelude::*;

use crate::activation::ACTIVATIONS;
use crate::loss::LOSSES;

/// One activation function: its names, parameter and properties.
#[pyclass(frozen, get_all, module = "ferronn._core")]
pub struct ActivationInfo {
    /// The canonical name ("silu").
    name: String,
    /// Other accepted names (["swish"]).
    aliases: Vec<String>,
    /// Whether it has the parameter `alpha` (leaky_relu, elu).
    takes_alpha: bool,
    /// The default `alpha`, or None for functions without one.
    default_alpha: Option<f64>,
    /// He rather than Xavier initialisation suits it.
    relu_family: bool,
    /// Its derivative jumps at 0 (gradient checks skip points across it).
    kinked: bool,
    /// Each output depends on its own input alone (fusable into a layer).
    elementwise: bool,
}

#[pymethods]
impl ActivationInfo {
    fn __repr__(&self) -> String {
        format!("ActivationInfo(name='{}', aliases={})", self.name, py_list(&self.aliases))
    }
}

/// One loss: its names, targets and how outputs become probabilities.
#[pyclass(frozen, get_all, module = "ferronn._core")]
pub struct LossInfo {
    /// The canonical name ("cross_entropy").
    name: String,
    /// Other accepted names (["categorical_crossentropy", ...]).
    aliases: Vec<String>,
    /// Targets are integer class labels (else floats shaped like the outputs).
    uses_labels: bool,
    /// "softmax", "sigmoid" or "exp" (what `predict_proba` applies), or None.
    proba: Option<String>,
    /// The loss applies its own final nonlinearity to raw scores.
    takes_logits: bool,
}

#[pymethods]
impl LossInfo {
    fn __repr__(&self) -> String {
        format!("LossInfo(name='{}', aliases={})", self.name, py_list(&self.aliases))
    }
}

/// The f64 nearest the decimal an f32 is written as (0.01, not 0.009999999776482582
/// as a plain widening gives): what a user would type, and it rounds back to
/// the same f32 in the core.
fn as_written(v: f32) -> f64 {
    v.to_string().parse().unwrap_or(f64::from(v))
}

/// `['a', 'b']`, as Python writes a list of these plain names.
fn py_list(names: &[String]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("'{n}'")).collect();
    format!("[{}]", quoted.join(", "))
}

fn strings(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// Every activation the core knows, in the order of its error messages.
#[pyfunction]
pub fn activation_table() -> Vec<ActivationInfo> {
    ACTIVATIONS
        .iter()
        .map(|r| ActivationInfo {
            name: r.name.to_string(),
            aliases: strings(r.aliases),
            takes_alpha: r.default_alpha().is_some(),
            default_alpha: r.default_alpha().map(as_written),
            relu_family: r.relu_family,
            kinked: r.kinked,
            elementwise: r.elementwise,
        })
        .collect()
}

/// Every loss the core knows, in the order of its error messages.
#[pyfunction]
pub fn loss_table() -> Vec<LossInfo> {
    LOSSES
        .iter()
        .map(|r| LossInfo {
            name: r.name.to_string(),
            aliases: strings(r.aliases),
            uses_labels: r.uses_labels,
            proba: r.proba.map(str::to_string),
            takes_logits: r.takes_logits,
        })
        .collect()
}
