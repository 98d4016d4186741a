//! `Network::loss_and_grads` against the training step it mirrors: with plain SGD
//! one full-batch step moves every parameter by `-lr` times the gradient it
//! returns, and reports the loss it returns; evaluating changes nothing.

use ferronn::loss::Targets;
use ferronn::network::{Network, NetworkSpec};
use ferronn::tensor::Matrix;
use ferronn::Error;

const LR: f32 = 0.05;

fn network(loss: &str, out: usize) -> Network {
    let json = format!(
        r#"{{"input_dim":3,"layers":[{{"type":"dense","units":4,"activation":"tanh","kernel_regularizer":{{"l1":0.01,"l2":0.05}}}},{{"type":"dense","units":{out},"bias_regularizer":{{"l2":0.02}}}}],"loss":"{loss}","optimizer":{{"name":"sgd","lr":{LR},"momentum":0.0,"dampening":0.0,"nesterov":false,"weight_decay":0.0}},"seed":5}}"#
    );
    let spec: NetworkSpec = serde_json::from_str(&json).unwrap();
    Network::new(spec).unwrap()
}

fn inputs() -> Matrix {
    let x: Vec<f32> = (0..18).map(|i| ((i * 7 % 11) as f32 - 5.0) / 4.0).collect();
    Matrix::from_vec(6, 3, x).unwrap()
}

fn check_against_a_step(loss: &str, out: usize, targets: Targets<'_>, weights: Option<&[f32]>) {
    let x = inputs();
    let mut net = network(loss, out);
    let before = net.params().to_vec();
    let (value, grad) = net.loss_and_grads(x.view(), targets, weights).unwrap();
    assert_eq!(net.params(), &before[..], "evaluating must not move the parameters");
    assert_eq!(net.optimizer().steps(), 0);
    assert_eq!(grad.len(), before.len());
    let stats = net.train_step(x.view(), targets, weights).unwrap();
    assert!((stats.mean_loss() - value).abs() <= 1e-6 * value.abs().max(1.0), "{loss}: {} vs {value}", stats.mean_loss());
    for (i, ((&p0, &p1), &g)) in before.iter().zip(net.params()).zip(&grad).enumerate() {
        let want = p0 - LR * g;
        assert!((p1 - want).abs() <= 1e-6 * want.abs().max(1.0), "{loss}: parameter {i}: {p1} vs {want}");
    }
}

#[test]
fn the_gradient_is_what_a_full_batch_sgd_step_follows() {
    let labels = [0i64, 1, 2, 1, 0, 2];
    check_against_a_step("cross_entropy", 3, Targets::Labels(&labels), None);
    let values = Matrix::from_vec(6, 2, (0..12).map(|i| (i % 4) as f32 * 0.5).collect()).unwrap();
    let weights = [0.5f32, 1.0, 2.0, 0.0, 1.5, 1.0];
    check_against_a_step("mse", 2, Targets::Values(values.view()), Some(&weights));
    check_against_a_step("poisson_nll", 2, Targets::Values(values.view()), None);
    let bits = Matrix::from_vec(6, 2, (0..12).map(|i| (i % 3 == 0) as u8 as f32).collect()).unwrap();
    check_against_a_step("binary_cross_entropy", 2, Targets::Values(bits.view()), Some(&weights));
}

#[test]
fn flat_parameters_are_set_whole_or_not_at_all() {
    let mut net = network("mse", 1);
    let before = net.params().to_vec();
    assert!(matches!(net.set_params_flat(&before[1..]), Err(Error::Shape(_))));
    assert_eq!(net.params(), &before[..]);
    let doubled: Vec<f32> = before.iter().map(|v| v * 2.0).collect();
    net.set_params_flat(&doubled).unwrap();
    assert_eq!(net.params(), &doubled[..]);
}

#[test]
fn bad_data_is_refused() {
    let mut net = network("mse", 1);
    let mut x = inputs();
    let short = Matrix::from_vec(2, 1, vec![0.0; 2]).unwrap();
    assert!(matches!(net.loss_and_grads(x.view(), Targets::Values(short.view()), None), Err(Error::Shape(_))));
    x.as_mut_slice()[0] = f32::NAN;
    let y = Matrix::from_vec(6, 1, vec![0.0; 6]).unwrap();
    assert!(matches!(net.loss_and_grads(x.view(), Targets::Values(y.view()), None), Err(Error::NonFinite(_))));
}
