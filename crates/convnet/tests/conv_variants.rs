//! The convolution variants (dilated and grouped `Conv2D`, `DepthwiseConv2D`,
//! `SeparableConv2D`, `Conv2DTranspose`) against Keras: built from Keras 3's and tf_keras'
//! configs, given Keras' weights, they give Keras' outputs, input gradients and weight
//! gradients, and Keras' parameter counts. The numbers come from
//! `tests/fixtures/conv_variants/make.py`.

use convnet::nn::layers::registry::layer_from_config;
use convnet::nn::layers::ForwardCtx;
use convnet::{Rng, Tensor};
use serde_json::Value;

fn fixture() -> Value {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/conv_variants/keras_conv_variants.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("fixture JSON")
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array().expect("array").iter().map(|x| x.as_f64().expect("number") as f32).collect()
}

fn sizes(v: &Value) -> Vec<usize> {
    v.as_array().expect("array").iter().map(|x| x.as_u64().expect("size") as usize).collect()
}

fn assert_close(got: &[f32], want: &[f32], tol: f32, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        assert!((a - b).abs() <= tol * (1.0 + b.abs()), "{what}[{i}]: convnet {a}, Keras {b}");
    }
}

#[test]
fn outputs_and_gradients_match_keras() {
    let f = fixture();
    let cases = f["cases"].as_array().unwrap();
    assert!(cases.len() >= 15);
    for (ci, case) in cases.iter().enumerate() {
        let class = case["class"].as_str().unwrap();
        for key in ["config", "tf_keras_config"] {
            let what = format!("case {ci} {class} ({key})");
            let mut layer = layer_from_config(class, case[key].as_object().unwrap()).unwrap();
            let shape = sizes(&case["input_shape"]);
            let mut rng = Rng::new(0);
            let out = layer.build(&shape, &mut rng).unwrap();
            assert_eq!(out, sizes(&case["y_shape"]), "{what}: output shape");
            assert_eq!(layer.count_params() as u64, case["params"].as_u64().unwrap(), "{what}: parameters");
            let shapes: Vec<Vec<usize>> = case["weight_shapes"].as_array().unwrap().iter().map(sizes).collect();
            assert_eq!(layer.params().len(), shapes.len(), "{what}: weights");
            for (p, (s, w)) in layer.params_mut().iter_mut().zip(shapes.iter().zip(case["weights"].as_array().unwrap()))
            {
                assert_eq!(&p.shape, s, "{what}: weight {} shape", p.name);
                p.value = floats(w);
            }
            let mut xs = vec![2];
            xs.extend(&shape);
            let mut ys = vec![2];
            ys.extend(&out);
            let x = Tensor::from_vec(&xs, floats(&case["x"])).unwrap();
            let mut y = Tensor::zeros(&ys);
            layer.forward(&x, &mut y, &mut ForwardCtx { training: true, rng: &mut rng });
            assert_close(y.data(), &floats(&case["y"]), 1e-4, &format!("{what}: y"));
            let mut dy = Tensor::from_vec(&ys, floats(&case["r"])).unwrap();
            let mut dx = Tensor::zeros(&xs);
            layer.backward(&x, &y, &mut dy, Some(&mut dx));
            assert_close(dx.data(), &floats(&case["dx"]), 1e-4, &format!("{what}: dx"));
            for (p, g) in layer.params().iter().zip(case["dweights"].as_array().unwrap()) {
                assert_close(&p.grad, &floats(g), 1e-4, &format!("{what}: d{}", p.name));
            }
            // convnet's config reads back to the same layer.
            let c = layer.config();
            assert_eq!(layer_from_config(class, &c).unwrap().config(), c, "{what}: config round trip");
        }
    }
}

/// A model of every variant, trained a step, saved in each format convnet writes (`.keras`,
/// `.h5`, `.safetensors`) and loaded back: same configs, same predictions.
#[test]
fn every_format_round_trips_the_variants() {
    use convnet::nn::layers::{Conv2DTranspose, DepthwiseConv2D, SeparableConv2D};
    use convnet::prelude::*;
    let mut m = Sequential::new().seed(2);
    m.add(
        Conv2D::new(4, 3).dilation_rate(2).padding(Padding::Same).activation(Activation::Relu).input_shape([9, 8, 2]),
    );
    m.add(Conv2D::new(6, 3).groups(2).activation(Activation::Tanh));
    m.add(DepthwiseConv2D::new(3).depth_multiplier(2).strides(2).padding(Padding::Same));
    m.add(SeparableConv2D::new(4, 3).padding(Padding::Same).depth_multiplier(2).activation(Activation::Relu));
    m.add(Conv2DTranspose::new(3, 3).strides(2).padding(Padding::Same).output_padding(1));
    m.add(Flatten::new());
    m.add(Dense::new(3).activation(Activation::Softmax));
    m.compile(Loss::CategoricalCrossentropy, Adam::default(), &[]).unwrap();
    let mut rng = Rng::new(3);
    let x = Tensor::from_vec(&[4, 9, 8, 2], (0..4 * 9 * 8 * 2).map(|_| rng.uniform()).collect()).unwrap();
    let y = to_categorical(&[0, 1, 2, 1], 3);
    m.train_on_batch(&x, &y).unwrap();
    let want = m.predict(&x, 4).unwrap();
    let dir = std::env::temp_dir().join(format!("convnet-conv-variants-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for ext in ["keras", "h5", "safetensors"] {
        let path = dir.join(format!("m.{ext}"));
        convnet::io::save_model(&m, &path).unwrap();
        let mut back = convnet::io::load_model(&path).unwrap();
        for (a, b) in m.layers().iter().zip(back.layers()) {
            assert_eq!(a.config(), b.config(), "{ext}: {}", a.name());
        }
        let got = back.predict(&x, 4).unwrap();
        assert_close(got.data(), want.data(), 1e-6, ext);
    }
    std::fs::remove_dir_all(&dir).ok();
}
