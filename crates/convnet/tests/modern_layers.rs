//! The single-input modern layers against Keras 3 (TensorFlow backend): BatchNormalization's
//! training steps (losses, weights and moving statistics after four SGD steps, then
//! inference), and every other layer's inference output from the configs Keras 3 and tf_keras
//! write. The numbers come from `tests/fixtures/modern_layers/make.py`.

use convnet::nn::layers::registry::layer_from_config;
use convnet::nn::layers::{ForwardCtx, Layer};
use convnet::{Loss, Rng, Sequential, Sgd, Tensor};
use serde_json::Value;

fn fixture() -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/modern_layers/keras_layers.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("fixture JSON")
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array().expect("numbers").iter().map(|x| x.as_f64().expect("a number") as f32).collect()
}

fn shape(v: &Value) -> Vec<usize> {
    v.as_array().expect("shape").iter().map(|x| x.as_u64().expect("a size") as usize).collect()
}

/// Largest difference, relative above 1 and absolute below; fails beyond `tol`.
fn compare(ours: &[f32], keras: &[f32], tol: f32, what: &str) -> f32 {
    assert_eq!(ours.len(), keras.len(), "{what}: lengths");
    let mut worst = 0.0f32;
    for (i, (&a, &b)) in ours.iter().zip(keras).enumerate() {
        let err = (a - b).abs() / b.abs().max(1.0);
        assert!(err <= tol, "{what}[{i}]: convnet {a}, Keras {b}");
        worst = worst.max(err);
    }
    worst
}

#[test]
fn batch_normalization_trains_like_keras() {
    let f = fixture();
    for (ci, case) in f["batch_norm"].as_array().unwrap().iter().enumerate() {
        let in_shape = shape(&case["input_shape"]);
        let mut m = Sequential::new();
        m.set_input_shape(&in_shape);
        for l in case["layers"].as_array().unwrap() {
            m.add_boxed(
                layer_from_config(l["class_name"].as_str().unwrap(), l["config"].as_object().unwrap()).unwrap(),
            );
        }
        m.build().unwrap();
        assert_eq!(m.count_trainable_params(), case["trainable_params"].as_u64().unwrap() as usize);
        assert_eq!(
            m.count_params() - m.count_trainable_params(),
            case["non_trainable_params"].as_u64().unwrap() as usize
        );
        let shapes: Vec<Vec<usize>> = m.params().map(|p| p.shape.clone()).collect();
        let init: Vec<Tensor> = case["initial_weights"]
            .as_array()
            .unwrap()
            .iter()
            .zip(&shapes)
            .map(|(w, s)| Tensor::from_vec(s, floats(w)).unwrap())
            .collect();
        m.set_weights(&init).unwrap();
        m.compile(Loss::MeanSquaredError, Sgd { learning_rate: 0.1, ..Default::default() }, &[]).unwrap();
        let mut xs = vec![8];
        xs.extend(&in_shape);
        let x = Tensor::from_vec(&xs, floats(&case["x"])).unwrap();
        let ys = m.layers().last().unwrap().output_shape().to_vec();
        let y = Tensor::from_vec(&[8, ys[0]], floats(&case["y"])).unwrap();
        let mut losses = Vec::new();
        for _ in 0..4 {
            losses.push(m.train_on_batch(&x, &y).unwrap()["loss"] as f32);
        }
        let worst_loss = compare(&losses, &floats(&case["losses"]), 1e-4, &format!("case {ci} losses"));
        let mut worst_w = 0.0f32;
        let names: Vec<String> =
            case["weight_names"].as_array().unwrap().iter().map(|n| n.as_str().unwrap().to_string()).collect();
        for ((p, want), name) in m.params().zip(case["trained_weights"].as_array().unwrap()).zip(&names) {
            assert!(name.ends_with(p.name), "{name} vs {}", p.name);
            worst_w = worst_w.max(compare(&p.value, &floats(want), 1e-4, &format!("case {ci} {name}")));
        }
        xs[0] = 3;
        let xt = Tensor::from_vec(&xs, floats(&case["x_test"])).unwrap();
        let pred = m.predict(&xt, 32).unwrap();
        let worst_p = compare(pred.data(), &floats(&case["predict"]), 1e-4, &format!("case {ci} predict"));
        eprintln!("case {ci}: losses {worst_loss:.1e}, weights {worst_w:.1e}, predictions {worst_p:.1e}");
    }
}

/// Every layer built from the config Keras 3 writes and from tf_keras', given Keras' weights,
/// gives Keras' inference output.
#[test]
fn layers_match_keras_in_inference() {
    let f = fixture();
    let mut report = Vec::new();
    for case in f["layers"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let class = case["class_name"].as_str().unwrap();
        let in_shape = shape(&case["input_shape"]);
        let mut xs = vec![2];
        xs.extend(&in_shape);
        let x = Tensor::from_vec(&xs, floats(&case["x"])).unwrap();
        for key in ["config", "tf_keras_config"] {
            let mut l = layer_from_config(class, case[key].as_object().unwrap()).unwrap();
            let out = l.build(&in_shape, &mut Rng::new(0)).unwrap();
            assert_eq!(out, shape(&case["output_shape"]), "{name} ({key})");
            let weights = case["weights"].as_array().unwrap();
            assert_eq!(l.params().len(), weights.len(), "{name}: weights");
            for (p, w) in l.params_mut().iter_mut().zip(weights) {
                p.value = floats(w);
            }
            let mut ys = vec![2];
            ys.extend(&out);
            let mut y = Tensor::zeros(&ys);
            l.forward(&x, &mut y, &mut ForwardCtx { training: false, rng: &mut Rng::new(0) });
            let worst = compare(y.data(), &floats(&case["y"]), 1e-5, &format!("{name} ({key})"));
            if key == "config" {
                report.push(format!("{name} {worst:.0e}"));
            }
        }
    }
    eprintln!("largest error per layer: {}", report.join(", "));
}

/// `Normalization::adapt` finds the statistics Keras' `adapt` finds on the same data.
#[test]
fn normalization_adapts_like_keras() {
    let f = fixture();
    let case = f["layers"].as_array().unwrap().iter().find(|c| c["name"] == "normalization_adapted").unwrap();
    let data = Tensor::from_vec(&shape(&f["adapt_data_shape"]), floats(&f["adapt_data"])).unwrap();
    let mut l = convnet::nn::layers::Normalization::new();
    l.adapt(&data).unwrap();
    for (p, want) in l.params().iter().zip(case["weights"].as_array().unwrap()) {
        compare(&p.value, &floats(want), 1e-5, p.name);
    }
}

/// A model with BatchNormalization keeps its moving statistics (non-trainable, with no
/// optimizer slots) through every format and a checkpoint; training goes on identically from
/// each file.
#[test]
fn batch_normalization_survives_every_format() {
    use convnet::nn::layers::*;
    use convnet::{Adam, Padding};
    let mut m = Sequential::new();
    m.add(Rescaling::new(1.0 / 255.0, 0.0).input_shape([6, 6, 2]));
    m.add(Conv2D::new(4, 3).padding(Padding::Same));
    m.add(BatchNormalization::new().momentum(0.8));
    m.add(GlobalAveragePooling2D::new());
    m.add(Dense::new(3).activation(convnet::Activation::Softmax));
    m.compile(Loss::CategoricalCrossentropy, Adam::default(), &[]).unwrap();
    let mut rng = Rng::new(4);
    let x = Tensor::from_vec(&[5, 6, 6, 2], (0..360).map(|_| rng.uniform_range(0.0, 255.0)).collect()).unwrap();
    let y = Tensor::from_vec(&[5, 3], (0..15).map(|i| (i % 4 == 0) as u8 as f32).collect()).unwrap();
    for _ in 0..3 {
        m.train_on_batch(&x, &y).unwrap();
    }
    assert_eq!(m.count_params() - m.count_trainable_params(), 8, "moving mean and variance");
    let summary = m.summary().unwrap();
    assert!(summary.contains("Non-trainable params: 8 "), "{summary}");
    let moving = &m.layers()[2].params()[2].value;
    assert!(moving.iter().any(|&v| v.abs() > 1e-3), "the moving mean moved: {moving:?}");
    let dir = std::env::temp_dir().join(format!("convnet-modern-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let exts = ["keras", "h5", "safetensors"];
    for ext in exts {
        convnet::io::save_model(&m, &dir.join(format!("bn.{ext}"))).unwrap();
    }
    let before: Vec<Vec<f32>> = m.params().map(|p| p.value.clone()).collect();
    m.train_on_batch(&x, &y).unwrap();
    for ext in exts {
        let mut back = convnet::load_model(dir.join(format!("bn.{ext}"))).unwrap();
        for (a, b) in m.params().zip(back.params()).zip(&before).map(|((a, b), v)| ((a, v), b)) {
            assert_eq!(&b.value, a.1, "{ext}: {}", b.name);
            assert_eq!(a.0.trainable, b.trainable, "{ext}: {}", b.name);
        }
        assert_eq!(back.count_trainable_params(), m.count_trainable_params(), "{ext}");
        back.train_on_batch(&x, &y).unwrap();
        for (a, b) in m.params().zip(back.params()) {
            compare(&b.value, &a.value, 1e-6, &format!("{ext}: {} after one more step", a.name));
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// A model that begins with Rescaling or Normalization takes 0–255 pixels, as in Keras; any
/// other keeps taking values in [0, 1].
#[test]
fn models_that_scale_their_input_take_raw_pixels() {
    use convnet::nn::layers::*;
    let mut m = Sequential::new();
    m.add(Rescaling::new(1.0 / 255.0, 0.0).input_shape([4, 4, 1]));
    m.add(Flatten::new());
    assert!(m.takes_raw_pixels());
    assert_eq!(m.pixel_scale(), 1.0);
    let mut n = Sequential::new();
    n.add(Normalization::with_statistics(&[120.0], &[3000.0]).input_shape([4, 4, 1]));
    assert!(n.takes_raw_pixels());
    let mut plain = Sequential::new();
    plain.add(Flatten::new().input_shape([4, 4, 1]));
    plain.add(Rescaling::new(2.0, 0.0));
    assert!(!plain.takes_raw_pixels());
    assert_eq!(plain.pixel_scale(), 1.0 / 255.0);
}
