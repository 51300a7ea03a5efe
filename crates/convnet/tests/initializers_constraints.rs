//! Initializers and constraints through whole models: constraints hold during training, both
//! survive Keras files, and initializers convnet cannot run block new models but not trained
//! files.

use convnet::nn::constraints::{max_norm, min_max_norm, non_neg};
use convnet::nn::initializers::{Distribution, FanMode};
use convnet::prelude::*;
use serde_json::{json, Value};
use std::io::{Read, Write};

fn data(n: usize, rng: &mut convnet::Rng) -> (Tensor, Tensor) {
    let x: Vec<f32> = (0..n * 8 * 8).map(|_| rng.uniform_range(-1.0, 1.0)).collect();
    let mut y = vec![0.0; n * 3];
    for i in 0..n {
        y[i * 3 + rng.below(3)] = 1.0;
    }
    (Tensor::from_vec(&[n, 8, 8, 1], x).unwrap(), Tensor::from_vec(&[n, 3], y).unwrap())
}

/// Column norms of a Dense kernel `[in, units]` (axis 0), or filter norms of a Conv2D kernel
/// (axes 0, 1, 2): the largest.
fn largest_norm(p: &convnet::nn::layers::Param) -> f32 {
    let cols = *p.shape.last().unwrap();
    (0..cols).map(|c| p.value.iter().skip(c).step_by(cols).map(|v| v * v).sum::<f32>().sqrt()).fold(0.0, f32::max)
}

fn model(constrained: bool) -> Sequential {
    let mut m = Sequential::new().seed(3);
    let mut conv = Conv2D::new(4, (3, 3)).activation(Activation::Relu).input_shape([8, 8, 1]);
    let mut dense = Dense::new(3).activation(Activation::Softmax);
    if constrained {
        conv = conv.kernel_constraint(max_norm(0.4, vec![0, 1, 2]));
        dense = dense.kernel_constraint(max_norm(0.3, 0)).bias_constraint(non_neg());
    }
    m.add(conv);
    m.add(Flatten::new());
    m.add(dense);
    m.compile(Loss::CategoricalCrossentropy, Sgd { learning_rate: 2.0, ..Default::default() }, &[]).unwrap();
    m
}

/// With a large learning rate the norms grow past the bounds without constraints; with
/// MaxNorm they stay within them after every step, and NonNeg keeps the bias non-negative.
#[test]
fn max_norm_bounds_the_norms_during_training() {
    let mut rng = convnet::Rng::new(8);
    let (x, y) = data(32, &mut rng);
    let mut free = model(false);
    let mut bound = model(true);
    for _ in 0..5 {
        free.train_on_batch(&x, &y).unwrap();
        bound.train_on_batch(&x, &y).unwrap();
        let conv = &bound.layers()[0].params()[0];
        let dense = &bound.layers()[2].params();
        assert!(largest_norm(conv) <= 0.4 * (1.0 + 1e-6), "conv filter norm {}", largest_norm(conv));
        assert!(largest_norm(&dense[0]) <= 0.3 * (1.0 + 1e-6), "dense column norm {}", largest_norm(&dense[0]));
        assert!(dense[1].value.iter().all(|&b| b >= 0.0));
    }
    assert!(largest_norm(&free.layers()[0].params()[0]) > 0.4);
    assert!(largest_norm(&free.layers()[2].params()[0]) > 0.3);
    assert!(free.layers()[2].params()[1].value.iter().any(|&b| b < 0.0));
}

fn layer_configs(m: &Sequential) -> Vec<Value> {
    m.layers().iter().map(|l| Value::Object(l.config())).collect()
}

/// Every initializer kind and constraint, saved as `.keras` and `.h5` and read back: the same
/// configs and weights.
#[test]
fn initializers_and_constraints_survive_keras_files() {
    let mut m = Sequential::new().seed(1);
    m.add(
        Conv2D::new(4, (3, 3))
            .input_shape([8, 8, 1])
            .kernel_initializer(Initializer::Orthogonal { gain: 1.5 }.with_seed(4))
            .bias_initializer(Initializer::Constant(0.25))
            .kernel_constraint(max_norm(2.0, vec![0, 1, 2]))
            .bias_constraint(non_neg()),
    );
    m.add(Flatten::new());
    m.add(
        Dense::new(5)
            .kernel_initializer(Initializer::VarianceScaling {
                scale: 0.5,
                mode: FanMode::FanAvg,
                distribution: Distribution::UntruncatedNormal,
            })
            .kernel_constraint(min_max_norm(0.5, 1.5, 0.7, 0)),
    );
    m.add(Dense::new(5).kernel_initializer(Initializer::Identity { gain: 2.0 }));
    m.compile(Loss::CategoricalCrossentropy, Adam::default(), &[]).unwrap();
    m.build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    for file in ["m.keras", "m.h5"] {
        let path = dir.path().join(file);
        convnet::io::save_model(&m, &path).unwrap();
        let back = convnet::io::load_model(&path).unwrap();
        assert_eq!(layer_configs(&back), layer_configs(&m), "{file}");
        assert_eq!(back.get_weights(), m.get_weights(), "{file}");
        let c = &layer_configs(&back)[0];
        assert_eq!(c["kernel_constraint"]["class_name"], "MaxNorm");
        assert_eq!(c["kernel_constraint"]["config"]["axis"], json!([0, 1, 2]));
        assert_eq!(c["kernel_initializer"]["config"]["seed"], 4);
    }
}

/// Rewrites `config.json` of a `.keras` archive with `edit`.
fn edit_keras(path: &std::path::Path, edit: impl Fn(&mut Value)) {
    let bytes = std::fs::read(path).unwrap();
    let mut zin = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for i in 0..zin.len() {
        let mut f = zin.by_index(i).unwrap();
        let name = f.name().unwrap().to_string();
        let mut buf = Vec::new();
        f.read_to_end(&mut buf).unwrap();
        if name == "config.json" {
            let mut v: Value = serde_json::from_slice(&buf).unwrap();
            edit(&mut v);
            buf = v.to_string().into_bytes();
        }
        out.start_file(name, zip::write::SimpleFileOptions::default()).unwrap();
        out.write_all(&buf).unwrap();
    }
    std::fs::write(path, out.finish().unwrap().into_inner()).unwrap();
}

/// A trained file whose config names an initializer and a constraint convnet lacks loads,
/// predicts as before, writes both back unchanged, and refuses to train naming the constraint.
#[test]
fn unknown_initializers_and_constraints_in_a_file_do_not_block_loading() {
    let mut m = model(false);
    let mut rng = convnet::Rng::new(2);
    let (x, y) = data(8, &mut rng);
    let before = m.predict(&x, 8).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.keras");
    convnet::io::save_model(&m, &path).unwrap();
    let init = json!({"module": "my_pkg.inits", "class_name": "FancyInit", "config": {"width": 3},
                      "registered_name": "Custom>FancyInit"});
    let orth_axes = json!({"module": "keras.initializers", "class_name": "GlorotUniform",
                           "config": {"seed": null, "input_axes": [0], "output_axes": [1]}, "registered_name": null});
    let cons =
        json!({"module": "keras.constraints", "class_name": "RadialConstraint", "config": {}, "registered_name": null});
    edit_keras(&path, |v| {
        let layers = v["config"]["layers"].as_array_mut().unwrap();
        // layers[0] is the InputLayer.
        layers[1]["config"]["kernel_initializer"] = init.clone();
        layers[3]["config"]["kernel_initializer"] = orth_axes.clone();
        layers[3]["config"]["kernel_constraint"] = cons.clone();
    });
    let (mut back, warnings) = convnet::io::load_model_with_warnings(&path).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(back.predict(&x, 8).unwrap(), before);
    let cfg = layer_configs(&back);
    assert_eq!(cfg[0]["kernel_initializer"], init);
    assert_eq!(cfg[2]["kernel_initializer"], orth_axes);
    assert_eq!(cfg[2]["kernel_constraint"], cons);
    let again = dir.path().join("again.h5");
    convnet::io::save_model(&back, &again).unwrap();
    let cfg = layer_configs(&convnet::io::load_model(&again).unwrap());
    assert_eq!(cfg[0]["kernel_initializer"], init);
    assert_eq!(cfg[2]["kernel_constraint"], cons);
    let weights = back.get_weights();
    let e = back.train_on_batch(&x, &y).unwrap_err().to_string();
    assert!(e.contains("RadialConstraint") && e.contains("dense"), "{e}");
    assert_eq!(back.get_weights(), weights, "a refused step changes nothing");
}

/// A new model (library or TOML file) with an initializer convnet cannot run is an error
/// naming it, not zeros.
#[test]
fn new_models_with_unknown_initializers_are_refused() {
    let toml = r#"
input_shape = [8, 8, 1]
[[layers]]
class_name = "Conv2D"
filters = 2
kernel_size = 3
kernel_initializer = { class_name = "FancyInit", config = {} }
"#;
    let mut m = convnet::io::toml_model::model_from_toml(toml, std::path::Path::new("m.toml")).unwrap();
    let e = m.build().unwrap_err().to_string();
    assert!(e.contains("FancyInit") && e.contains("conv2d"), "{e}");

    let stft = Initializer::from_config(&json!({"class_name": "STFT", "config": {}})).unwrap();
    let mut m = Sequential::new();
    m.add(Dense::new(3).input_shape([4]).kernel_initializer(stft));
    let e = m.build().unwrap_err().to_string();
    assert!(e.contains("STFT"), "{e}");

    // Shapes Keras refuses too: Identity on a conv kernel, Orthogonal on a bias.
    let mut m = Sequential::new();
    m.add(Conv2D::new(2, 3).input_shape([8, 8, 1]).kernel_initializer(Initializer::Identity { gain: 1.0 }));
    assert!(m.build().unwrap_err().to_string().contains("Identity"));
    let mut m = Sequential::new();
    m.add(Dense::new(2).input_shape([3]).bias_initializer(Initializer::Orthogonal { gain: 1.0 }));
    assert!(m.build().unwrap_err().to_string().contains("Orthogonal"));
    // And a constraint axis the weight lacks.
    let mut m = Sequential::new();
    m.add(Dense::new(2).input_shape([3]).kernel_constraint(max_norm(1.0, 2)));
    assert!(m.build().unwrap_err().to_string().contains("axis 2"));
}

/// Two SGD steps of a model with a constraint on every weight against Keras 3's weights after
/// each step (fixture written by `tests/fixtures/initializers/make.py`): the constraints apply
/// after each update, as Keras applies them.
#[test]
fn constrained_steps_match_keras() {
    use convnet::nn::constraints::unit_norm;
    let fx: Value = serde_json::from_str(include_str!("fixtures/initializers/keras_configs.json")).expect("fixture");
    let t = &fx["training"];
    let floats = |v: &Value| v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect::<Vec<_>>();
    let mut m = Sequential::new();
    m.add(
        Conv2D::new(3, 3)
            .activation(Activation::Relu)
            .input_shape([6, 6, 1])
            .kernel_constraint(max_norm(0.5, vec![0, 1, 2]))
            .bias_constraint(non_neg()),
    );
    m.add(Flatten::new());
    m.add(Dense::new(5).activation(Activation::Tanh).kernel_constraint(unit_norm(0)));
    m.add(
        Dense::new(3)
            .activation(Activation::Softmax)
            .kernel_constraint(min_max_norm(0.5, 1.0, 0.7, 0))
            .bias_constraint(max_norm(0.3, 0)),
    );
    let initial: Vec<Tensor> = t["initial"]
        .as_array()
        .unwrap()
        .iter()
        .zip(t["shapes"].as_array().unwrap())
        .map(|(w, s)| {
            let shape: Vec<usize> = s.as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect();
            Tensor::from_vec(&shape, floats(w)).unwrap()
        })
        .collect();
    m.set_weights(&initial).unwrap();
    m.compile(Loss::CategoricalCrossentropy, Sgd { learning_rate: 1.0, ..Default::default() }, &[]).unwrap();
    let x = Tensor::from_vec(&[4, 6, 6, 1], floats(&t["x"])).unwrap();
    let y = Tensor::from_vec(&[4, 3], floats(&t["y"])).unwrap();
    let mut worst = 0.0f32;
    for (step, want) in t["steps"].as_array().unwrap().iter().enumerate() {
        m.train_on_batch(&x, &y).unwrap();
        for (wi, (got, want)) in m.get_weights().iter().zip(want.as_array().unwrap()).enumerate() {
            for (a, b) in got.data().iter().zip(floats(want)) {
                let err = (a - b).abs();
                worst = worst.max(err);
                assert!(err <= 2e-6 * (1.0 + b.abs()), "step {} weight {wi}: {a} vs Keras {b}", step + 1);
            }
        }
    }
    eprintln!("constrained SGD steps: worst difference to Keras {worst:e}");
}
