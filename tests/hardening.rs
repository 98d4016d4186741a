//! Hardening of the core (issue 11): sizes from specs and files are checked and
//! reserved fallibly, a file's architecture is checked against its tensors
//! before anything is reserved, and a step that overflows the optimizer state
//! or BatchNorm's running statistics is refused and undone bit for bit.

use ferronn::io;
use ferronn::loss::Targets;
use ferronn::network::{Network, NetworkSpec};
use ferronn::optim::{AdagradConfig, AdamConfig, OptimizerConfig, SgdConfig};
use ferronn::tensor::Matrix;
use ferronn::Error;

fn spec(input_dim: usize, layers: &str, optimizer: &str) -> NetworkSpec {
    let optimizer = match optimizer {
        "adam" => OptimizerConfig::Adam(AdamConfig::default()),
        "adagrad" => OptimizerConfig::Adagrad(AdagradConfig::default()),
        _ => OptimizerConfig::Sgd(SgdConfig::default()),
    };
    NetworkSpec { input_dim, layers: serde_json::from_str(layers).unwrap(), loss: "mse".into(), optimizer, seed: 0, schedule: None, input_shape: None, variable_steps: false }
}

#[test]
fn overflowing_sizes_are_config_errors() {
    for (dim, layers) in [(4, r#"[{"type": "dense", "units": 4611686018427387904}]"#), (4, r#"[{"type": "gated", "units": 4611686018427387904, "gate": "silu"}]"#), (4, r#"[{"type": "dense", "units": 18446744073709551615}]"#)] {
        let err = Network::new(spec(dim, layers, "adam")).unwrap_err();
        assert!(matches!(err, Error::Config(ref m) if m.contains("too large")), "{err}");
    }
}

#[test]
fn sizes_that_do_not_fit_in_memory_are_memory_errors() {
    for (dim, layers) in [(4, r#"[{"type": "dense", "units": 1000000000000}]"#), (1000000000000, r#"[{"type": "batch_norm"}]"#)] {
        let err = Network::new(spec(dim, layers, "adam")).unwrap_err();
        assert!(matches!(err, Error::Memory(ref m) if m.contains("asked for")), "{err}");
    }
    assert!(matches!(Matrix::default().reshape_for(1 << 40, 1 << 20), Err(Error::Memory(_))));
}

#[test]
fn too_many_layers_are_refused_before_building() {
    let layers = format!("[{}]", vec![r#"{"type": "activation", "activation": "relu"}"#; 100_001].join(","));
    assert!(matches!(Network::new(spec(2, &layers, "sgd")), Err(Error::Config(m)) if m.contains("at most")));
}

#[test]
fn a_file_claiming_a_huge_layer_is_refused() {
    let net = Network::new(spec(4, r#"[{"type": "dense", "units": 3}]"#, "adam")).unwrap();
    let bytes = io::to_bytes(&net, "").unwrap();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    for units in ["100000000", "18446744073709551615"] {
        // Same header length: the spec's units field, padded with spaces.
        let edited = text.replacen(r#"\"units\":3"#, &format!(r#"\"units\":{units}"#), 1);
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize + units.len() - 1;
        let mut out = (n as u64).to_le_bytes().to_vec();
        out.extend_from_slice(&edited.as_bytes()[8..]);
        assert!(matches!(io::from_bytes(&out), Err(Error::Format(_))));
    }
}

/// A network's parameters, buffers, named optimizer state and step count.
type State<'a> = (Vec<f32>, Vec<f32>, Vec<(&'a str, Vec<f32>)>, u64);

#[test]
fn an_overflowing_step_leaves_state_and_statistics_bit_for_bit() {
    for (layers, opt, scale) in [(r#"[{"type": "dense", "units": 1}]"#, "adam", 1e11f32), (r#"[{"type": "dense", "units": 1}]"#, "adagrad", 1e11), (r#"[{"type": "batch_norm"}, {"type": "dense", "units": 1}]"#, "sgd", 1e20)] {
        let mut net = Network::new(spec(3, layers, opt)).unwrap();
        let x: Vec<f32> = (0..48).map(|i| ((i * 7 % 11) as f32 - 5.0) / 3.0).collect();
        let y = Matrix::from_vec(16, 1, vec![1.0; 16]).unwrap();
        let x1 = Matrix::from_vec(16, 3, x.clone()).unwrap();
        net.train_step(x1.view(), Targets::Values(y.view()), None).unwrap();
        let state = |n: &Network| (n.params().to_vec(), n.buffers().to_vec(), n.optimizer().state().iter().map(|(k, v)| (*k, v.to_vec())).collect::<Vec<_>>(), n.optimizer().steps());
        let before = state(&net);
        let big = Matrix::from_vec(16, 3, x.iter().map(|v| v * scale).collect()).unwrap();
        let stats = net.train_step(big.view(), Targets::Values(y.view()), None).unwrap();
        assert!(stats.loss_sum.is_nan(), "{opt}: the step was not refused");
        // Bit for bit: compare the bits, so that -0.0 and 0.0 differ.
        let bits = |s: &State<'_>| format!("{:?}", (s.0.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), s.1.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), s.2.iter().map(|(k, v)| (*k, v.iter().map(|x| x.to_bits()).collect::<Vec<_>>())).collect::<Vec<_>>(), s.3));
        assert_eq!(bits(&state(&net)), bits(&before), "{opt}");
    }
}
