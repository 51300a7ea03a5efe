//! Activations against Keras 3 (TensorFlow backend) and tf_keras: every function by name,
//! the `activation` entries Keras writes in layer configs (names and layer objects), and the
//! activation layers built from the configs Keras writes (PReLU with its weight), on inputs
//! covering large negatives, the pieces' edges, the neighbourhood of zero and large positives.
//! The numbers come from `tests/fixtures/activations/make.py`.

use convnet::nn::layers::registry::layer_from_config;
use convnet::nn::layers::ForwardCtx;
use convnet::{Activation, Rng, Tensor};
use serde_json::Value;

/// Outputs agree within 1e-6, relative above 1 and absolute below.
const TOL: f64 = 1e-6;

fn fixture() -> Value {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/activations/keras_activations.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("fixture JSON")
}

/// Rows of numbers as one flat buffer and the row width.
fn rows(v: &Value) -> (Vec<f32>, usize) {
    let rows = v.as_array().expect("rows");
    let width = rows[0].as_array().expect("a row").len();
    let flat = rows.iter().flat_map(|r| r.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32)).collect();
    (flat, width)
}

/// The largest error (relative above 1, absolute below) of `ours` against `keras`; fails
/// beyond [`TOL`], naming the value.
fn compare(ours: &[f32], keras: &[f32], input: &[f32], what: &str) -> f64 {
    assert_eq!(ours.len(), keras.len(), "{what}");
    let mut worst = 0.0f64;
    for (i, (&a, &b)) in ours.iter().zip(keras).enumerate() {
        let err = (a as f64 - b as f64).abs() / (b as f64).abs().max(1.0);
        assert!(err <= TOL, "{what}: at input {} convnet gives {a}, Keras {b}", input[i]);
        worst = worst.max(err);
    }
    worst
}

#[test]
fn every_function_matches_keras() {
    let f = fixture();
    let (x, width) = rows(&f["input"]);
    let functions = f["functions"].as_object().unwrap();
    // Every name convnet knows is in Keras' registry, and the other way round.
    let ours: std::collections::BTreeSet<&str> = Activation::all().map(|(n, _)| n).collect();
    let keras: std::collections::BTreeSet<&str> = functions.keys().map(String::as_str).collect();
    assert_eq!(ours, keras);
    let mut report = Vec::new();
    for (name, out) in functions {
        let a = Activation::parse(name).unwrap();
        let mut y = x.clone();
        a.forward(&mut y, width);
        let (want, _) = rows(out);
        report.push(format!("{name} {:.1e}", compare(&y, &want, &x, name)));
    }
    eprintln!("largest error per function: {}", report.join(", "));
}

/// The activation a Dense layer gets from `activation` in its config (layer objects used as
/// activations are read there).
fn read_in_dense(v: &serde_json::Value) -> Activation {
    use convnet::nn::layers::{Dense, Layer};
    let c = serde_json::json!({"units": 1, "activation": v});
    Layer::activation(&Dense::from_config(c.as_object().unwrap()).unwrap())
}

#[test]
fn keras_config_entries_are_read_and_written_as_keras_does() {
    let f = fixture();
    for (name, entry) in f["configs"].as_object().unwrap() {
        let a = Activation::from_config(entry).unwrap();
        assert_eq!(a, Activation::parse(name).unwrap(), "{name}");
        // Keras writes the canonical name (`swish` as `silu`); so does convnet.
        assert_eq!(&a.to_config(), entry, "{name}");
    }
    let (x, width) = rows(&f["input"]);
    for o in f["objects"].as_array().unwrap() {
        let a = read_in_dense(&o["config"]);
        let mut y = x.clone();
        a.forward(&mut y, width);
        let what = o["config"]["class_name"].as_str().unwrap();
        compare(&y, &rows(&o["output"]).0, &x, what);
        // What convnet writes back reads as the same function.
        assert_eq!(read_in_dense(&a.to_config()), a, "{what}");
    }
}

#[test]
fn activation_layers_match_keras_and_tf_keras() {
    let f = fixture();
    let mut rng = Rng::new(0);
    for case in f["layers"].as_array().unwrap() {
        let class = case["class_name"].as_str().unwrap();
        let what = format!("{} {class} {}", case["dialect"].as_str().unwrap(), case["config"]["name"]);
        let shape: Vec<usize> =
            case["input_shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect();
        let mut layer = layer_from_config(class, case["config"].as_object().unwrap()).unwrap();
        assert_eq!(layer.build(&shape[1..], &mut rng).unwrap(), shape[1..].to_vec(), "{what}");
        let weights = case["weights"].as_array().unwrap();
        assert_eq!(layer.params().len(), weights.len(), "{what}");
        for (p, (w, s)) in
            layer.params_mut().iter_mut().zip(weights.iter().zip(case["weight_shapes"].as_array().unwrap()))
        {
            let s: Vec<usize> = s.as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect();
            assert_eq!(p.shape, s, "{what}: Keras' weight shape");
            p.value.copy_from_slice(&rows(w).0);
        }
        let (x, _) = rows(&case["input"]);
        let x = Tensor::from_vec(&shape, x).unwrap();
        let mut y = Tensor::zeros(&shape);
        layer.forward(&x, &mut y, &mut ForwardCtx { training: false, rng: &mut rng });
        compare(y.data(), &rows(&case["output"]).0, x.data(), &what);
        // The config convnet writes reads back as the same layer.
        let again = layer_from_config(class, &layer.config()).unwrap();
        assert_eq!(again.config(), layer.config(), "{what}");
        assert_eq!(again.activation(), layer.activation(), "{what}");
    }
}
