//! Every optimizer's state (slots, extra scalars, step count, schedule) survives saving in
//! each format: a reloaded model continues training bit for bit as the original does.

use convnet::io;
use convnet::prelude::*;
use serde_json::json;

fn optimizers() -> Vec<Optimizer> {
    let schedule = json!({"class_name": "ExponentialDecay",
        "config": {"initial_learning_rate": 0.01, "decay_steps": 2, "decay_rate": 0.5}});
    [
        json!({"class_name": "Nadam", "config": {"learning_rate": 0.01}}),
        json!({"class_name": "Nadam", "config": {"learning_rate": schedule}}),
        json!({"class_name": "AdamW", "config": {"amsgrad": true, "weight_decay": 0.05}}),
        json!({"class_name": "Adamax", "config": {"clipnorm": 0.5}}),
        json!({"class_name": "Adagrad", "config": {"initial_accumulator_value": 0.3}}),
        json!({"class_name": "Adadelta", "config": {"learning_rate": 1.0}}),
        json!({"class_name": "SGD", "config": {"momentum": 0.9, "nesterov": true, "global_clipnorm": 1.0}}),
        json!({"class_name": "RMSprop", "config": {"momentum": 0.5, "centered": true, "learning_rate": schedule}}),
    ]
    .iter()
    .map(|c| Optimizer::from_config(c).unwrap())
    .collect()
}

#[test]
fn reloaded_optimizers_continue_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let mut rng = convnet::Rng::new(5);
    let x = Tensor::from_vec(&[3, 28, 28, 1], (0..3 * 784).map(|_| rng.uniform()).collect()).unwrap();
    let y = to_categorical(&[0, 4, 9], 10);
    for (k, opt) in optimizers().into_iter().enumerate() {
        let mut m = convnet::presets::preset("lenet5").unwrap();
        let loss = Loss::CategoricalCrossentropy.with_label_smoothing(0.05);
        m.compile(loss, opt, &[Metric::Accuracy]).unwrap();
        for _ in 0..3 {
            m.train_on_batch(&x, &y).unwrap();
        }
        let mut continued = Vec::new();
        for ext in ["keras", "h5", "safetensors"] {
            let p = tmp.path().join(format!("m{k}.{ext}"));
            io::save_model(&m, &p).unwrap();
            let (mut back, warnings) = io::load_model_with_warnings(&p).unwrap();
            assert!(warnings.is_empty(), "{opt:?} .{ext}: {warnings:?}");
            let c = back.compiled().unwrap();
            assert_eq!(c.loss, loss, ".{ext}");
            assert_eq!(c.optimizer, *m.optimizer().unwrap(), "{opt:?} .{ext}");
            assert_eq!(back.optimizer_state().iterations, 3);
            assert_eq!(back.optimizer_state().slots, m.optimizer_state().slots, "{opt:?} .{ext}");
            back.set_rng(m.rng().clone());
            back.train_on_batch(&x, &y).unwrap();
            continued.push((ext, back.get_weights()));
        }
        m.train_on_batch(&x, &y).unwrap();
        for (ext, w) in continued {
            assert!(w == m.get_weights(), "{opt:?}: training resumed from .{ext} differs");
        }
    }
}
