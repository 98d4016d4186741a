//! `Network::time_step_grad_norms` (‖∂L/∂h_t‖ per input step of each
//! recurrent layer) on a linear SimpleRNN, where the gradient through time has
//! a closed form: with `h_t = W_hh·h_{t-1} + ..`, `∂L/∂h_{t-1} = ∂L/∂h_t·W_hh`,
//! starting from `∂L/∂h_{T-1} = ∂L/∂y·W_denseᵀ`. The float64 reference below
//! is that product, independent of the inputs. (`weight_hh` is drawn Glorot-
//! uniform: an orthogonal one, the default, would keep every norm equal.)

use ferronn::loss::Targets;
use ferronn::network::{Network, NetworkSpec};
use ferronn::tensor::Matrix;

const T: usize = 6;
const F: usize = 2;
const H: usize = 3;
const N: usize = 4;
const OUT: usize = 2;

fn network(cell_json: &str, back: bool) -> Network {
    let json = format!(
        r#"{{"input_dim":{},"input_shape":[{T},{F}],"layers":[{cell_json},{{"type":"dense","units":{OUT}}}],"loss":"mse","optimizer":{{"name":"sgd","lr":0.1,"momentum":0.0,"dampening":0.0,"nesterov":false,"weight_decay":0.0}},"seed":3}}"#,
        T * F
    )
    .replace("BACK", if back { "true" } else { "false" });
    let spec: NetworkSpec = serde_json::from_str(&json).unwrap();
    Network::new(spec).unwrap()
}

fn linear_rnn(back: bool) -> Network {
    network(&format!(r#"{{"type":"recurrent","cell":"simple_rnn","input":[{T},{F}],"units":{H},"activation":"linear","go_backwards":BACK,"recurrent_initializer":"glorot_uniform"}}"#), back)
}

fn data() -> (Matrix, Matrix) {
    let x = Matrix::from_vec(N, T * F, (0..N * T * F).map(|i| ((i * 5 % 13) as f32 - 6.0) / 5.0).collect()).unwrap();
    let y = Matrix::from_vec(N, OUT, (0..N * OUT).map(|i| (i % 3) as f32 - 1.0).collect()).unwrap();
    (x, y)
}

fn tensor(net: &Network, name: &str) -> Vec<f64> {
    let info = net.param_infos().into_iter().find(|p| p.name == name).unwrap();
    net.params()[info.range()].iter().map(|&v| f64::from(v)).collect()
}

/// ‖∂L/∂h_t‖ of the linear RNN in processing order (last step first is index T-1).
fn reference(net: &Network, x: &Matrix, y: &Matrix) -> Vec<f64> {
    reference_of(net, x, y, "layers.0", 0)
}

/// As [`reference`] for the recurrent layer whose tensors are `{layer}.*` and whose
/// final state meets the Dense weight's rows `offset..offset + H`.
fn reference_of(net: &Network, x: &Matrix, y: &Matrix, layer: &str, offset: usize) -> Vec<f64> {
    let out = net.predict(x.view()).unwrap();
    let (w_hh, w_d) = (tensor(net, &format!("{layer}.weight_hh")), tensor(net, "layers.1.weight"));
    let mut norms = vec![0.0; T];
    // dL/dy of the mean squared error over N·OUT values; dL/dh_{T-1} = dy·W_denseᵀ (W_dense is [H, OUT]).
    let mut dh: Vec<Vec<f64>> = (0..N)
        .map(|n| {
            let dy: Vec<f64> = (0..OUT).map(|o| 2.0 * f64::from(out.as_slice()[n * OUT + o] - y.as_slice()[n * OUT + o]) / (N * OUT) as f64).collect();
            (0..H).map(|j| (0..OUT).map(|o| dy[o] * w_d[(offset + j) * OUT + o]).sum()).collect()
        })
        .collect();
    for s in (0..T).rev() {
        norms[s] = dh.iter().flatten().map(|v| v * v).sum::<f64>().sqrt();
        // W_hh is [H, H] with h_t = W_hh·h_{t-1}: dh_{t-1}[k] = Σ_j dh_t[j]·W_hh[j, k].
        dh = dh.iter().map(|d| (0..H).map(|k| (0..H).map(|j| d[j] * w_hh[j * H + k]).sum()).collect()).collect();
    }
    norms
}

#[test]
fn a_linear_rnn_gives_the_closed_form_product() {
    let (x, y) = data();
    for back in [false, true] {
        let mut net = linear_rnn(back);
        let got = net.time_step_grad_norms(x.view(), Targets::Values(y.view()), None).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, "layers.0");
        let mut want = reference(&net, &x, &y);
        if back {
            want.reverse(); // processing step s reads input step T-1-s; norms are in input order
        }
        assert_eq!(got[0].1.len(), T);
        for (t, (g, w)) in got[0].1.iter().zip(&want).enumerate() {
            assert!((g - w).abs() <= 1e-5 * w.abs() + 1e-9, "go_backwards {back}, step {t}: {g} vs {w}");
        }
        assert!(want.iter().zip(want.iter().rev()).any(|(a, b)| (a - b).abs() > 1e-3 * a.abs()), "the profile must not be symmetric");
    }
}

#[test]
fn both_directions_of_a_bidirectional_layer_are_reported() {
    let (x, y) = data();
    let direction = |back: bool| format!(r#"{{"cell":"simple_rnn","input":[{T},{F}],"units":{H},"activation":"linear","go_backwards":{back},"recurrent_initializer":"glorot_uniform"}}"#);
    let mut net = network(&format!(r#"{{"type":"bidirectional","forward":{},"backward":{},"merge_mode":"concat"}}"#, direction(false), direction(true)), false);
    let got = net.time_step_grad_norms(x.view(), Targets::Values(y.view()), None).unwrap();
    let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["layers.0.forward", "layers.0.backward"]);
    // Concat: the forward final state meets the Dense rows 0..H, the backward one rows H..2H.
    let mut backward = reference_of(&net, &x, &y, "layers.0.backward", H);
    backward.reverse(); // it reads input step T-1 first; norms are in input order
    for ((name, g), w) in got.iter().zip([reference_of(&net, &x, &y, "layers.0.forward", 0), backward]) {
        for (t, (g, w)) in g.iter().zip(&w).enumerate() {
            assert!((g - w).abs() <= 1e-5 * w.abs() + 1e-9, "{name}, step {t}: {g} vs {w}");
        }
    }
}

#[test]
fn recording_changes_no_result_and_needs_a_recurrent_layer() {
    let (x, y) = data();
    let lstm = format!(r#"{{"type":"recurrent","cell":"lstm","input":[{T},{F}],"units":{H},"return_sequences":BACK}}"#);
    let mut plain = network(&lstm, false);
    let mut probed = plain.clone();
    let targets = Targets::Values(y.view());
    let norms = probed.time_step_grad_norms(x.view(), targets, None).unwrap();
    assert!(norms[0].1.iter().all(|v| v.is_finite() && *v > 0.0));
    assert_eq!(plain.loss_and_grads(x.view(), targets, None).unwrap(), probed.loss_and_grads(x.view(), targets, None).unwrap());
    assert_eq!(plain.params(), probed.params());
    let json = format!(r#"{{"input_dim":{},"layers":[{{"type":"dense","units":{OUT}}}],"loss":"mse","optimizer":{{"name":"sgd","lr":0.1,"momentum":0.0,"dampening":0.0,"nesterov":false,"weight_decay":0.0}}}}"#, T * F);
    let mut no_rnn = Network::new(serde_json::from_str(&json).unwrap()).unwrap();
    assert!(no_rnn.time_step_grad_norms(x.view(), targets, None).unwrap().is_empty());
    let short = Matrix::from_vec(N, T * F - 1, vec![0.0; N * (T * F - 1)]).unwrap();
    assert!(probed.time_step_grad_norms(short.view(), targets, None).is_err());
}
