//! Writes trained models and convnet's predictions for the ONNX Runtime check in
//! `tests/keras_check/onnx_check.py`, which exports them with `convnet export` and runs the
//! `.onnx` files in ONNX Runtime. Ignored in normal runs; the check runs it:
//! `CONVNET_ONNX_DIR=dir cargo test --release -p convnet --test onnx_export -- --ignored`.
//!
//! The models: every preset, a model with every layer class, and one small model per
//! activation function. For each model `name`: `name.keras` (the model), `name_x.f32` (64 input images, raw
//! little-endian float32) and `name_pred.f32` (convnet's predictions); `models.json` lists the
//! names with the input and output shapes.

use convnet::nn::layers::{AveragePooling2D, PReLU};
use convnet::prelude::*;
use serde_json::json;
use std::io::Write;
use std::path::Path;

const N: usize = 64;

fn write_f32(path: &Path, t: &Tensor) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for v in t.data() {
        f.write_all(&v.to_le_bytes()).unwrap();
    }
}

fn random(shape: &[usize], rng: &mut convnet::Rng) -> Tensor {
    let n: usize = shape.iter().product();
    Tensor::from_vec(shape, (0..n).map(|_| rng.uniform()).collect()).unwrap()
}

/// The activation functions convnet can export, by Keras' names (all but `linear`, which is
/// in every preset, and `sparsemax`, which has no ONNX form).
const ACTIVATIONS: [&str; 26] = [
    "relu",
    "sigmoid",
    "tanh",
    "leaky_relu",
    "relu6",
    "elu",
    "selu",
    "celu",
    "softplus",
    "softsign",
    "squareplus",
    "soft_shrink",
    "hard_shrink",
    "sparse_plus",
    "silu",
    "gelu",
    "tanh_shrink",
    "sparse_sigmoid",
    "exponential",
    "hard_sigmoid",
    "hard_silu",
    "hard_tanh",
    "mish",
    "log_softmax",
    "log_sigmoid",
    "softmax",
];

/// A small model with every layer class on images, with sizes that make "same" padding
/// asymmetric (the 2×2 convolution, both poolings); the Softmax layer comes last.
fn layers_model() -> Sequential {
    let mut m = Sequential::new().seed(3);
    m.add(Conv2D::new(4, 3).strides(2).padding(Padding::Same).activation(Activation::Gelu).input_shape([11, 11, 2]));
    m.add(ReLU::new().max_value(Some(0.8)).negative_slope(0.1).threshold(0.05));
    m.add(Conv2D::new(5, 2).padding(Padding::Same).activation(Activation::Silu));
    m.add(ELU::new(0.7));
    m.add(PReLU::new().alpha_initializer(Initializer::Constant(0.25)).shared_axes(&[1, 2]));
    m.add(AveragePooling2D::new(3).strides(2).padding(Padding::Same));
    m.add(LeakyReLU::new(0.15));
    m.add(MaxPooling2D::new(2).strides(1).padding(Padding::Same));
    m.add(Flatten::new());
    m.add(Dropout::new(0.3));
    m.add(Dense::new(16));
    m.add(PReLU::new().alpha_initializer(Initializer::Constant(-0.3)));
    m.add(Dense::new(10));
    m.add(convnet::nn::layers::Softmax::new());
    m
}

/// The convolution variants: dilated and grouped `Conv2D`, `DepthwiseConv2D` (multiplier 2,
/// stride 2), `SeparableConv2D`, and `Conv2DTranspose` with output padding and with a stride
/// larger than its kernel.
fn conv_variants_model() -> Sequential {
    use convnet::nn::layers::{Conv2DTranspose, DepthwiseConv2D, SeparableConv2D};
    let mut m = Sequential::new().seed(4);
    m.add(
        Conv2D::new(6, 3).dilation_rate(2).padding(Padding::Same).activation(Activation::Relu).input_shape([12, 11, 4]),
    );
    m.add(Conv2D::new(6, 3).groups(3).activation(Activation::Tanh));
    m.add(DepthwiseConv2D::new(3).depth_multiplier(2).strides(2).padding(Padding::Same));
    m.add(SeparableConv2D::new(5, 3).padding(Padding::Same).activation(Activation::Relu));
    m.add(Conv2DTranspose::new(4, 3).strides(2).padding(Padding::Same).output_padding(1));
    m.add(Conv2DTranspose::new(3, 2).strides(3).activation(Activation::Sigmoid));
    m.add(Flatten::new());
    m.add(Dense::new(10).activation(Activation::Softmax));
    m
}

/// BatchNormalization (on images, on dense features and on rank-2 values), global pooling,
/// padding, cropping, both resizings, the preprocessing layers, Reshape and SpatialDropout2D.
fn modern_models() -> Vec<(String, Sequential)> {
    use convnet::nn::layers::*;
    let bn = || {
        BatchNormalization::new()
            .moving_mean_initializer(Initializer::Constant(0.1))
            .moving_variance_initializer(Initializer::Constant(1.7))
            .gamma_initializer(Initializer::Constant(1.3))
    };
    let mut m = Sequential::new().seed(4);
    m.add(Rescaling::new(2.0, -0.5).input_shape([9, 9, 3]));
    m.add(Normalization::with_statistics(&[0.1, 0.2, 0.3], &[1.5, 0.5, 2.0]));
    m.add(Conv2D::new(4, 3).activation(Activation::Relu));
    m.add(bn());
    m.add(ZeroPadding2D::new([[1, 2], [0, 1]]));
    m.add(Cropping2D::new([[0, 1], [2, 0]]));
    m.add(UpSampling2D::new((2, 1)));
    m.add(Conv2D::new(5, 3).strides(2));
    m.add(bn().center(false));
    m.add(UpSampling2D::new((2, 3)).interpolation(Interpolation::Bilinear));
    m.add(SpatialDropout2D::new(0.2));
    m.add(GlobalMaxPooling2D::new().keepdims(true));
    m.add(Reshape::new(&[-1]));
    m.add(Dense::new(6));
    m.add(bn().scale(false));
    m.add(Dense::new(10).activation(Activation::Softmax));
    let mut r = Sequential::new().seed(5);
    r.add(Conv2D::new(4, 3).input_shape([6, 6, 3]));
    r.add(Reshape::new(&[-1, 4]));
    r.add(bn());
    r.add(Normalization::with_statistics(&[0.5], &[3.0]).invert(true));
    r.add(Flatten::new());
    r.add(Dense::new(10));
    let mut g = Sequential::new().seed(6);
    g.add(Conv2D::new(4, 3).input_shape([7, 7, 2]));
    g.add(bn());
    g.add(GlobalAveragePooling2D::new());
    g.add(Dense::new(10));
    vec![("modern".into(), m), ("modern-rank2".into(), r), ("modern-gap".into(), g)]
}

/// One activation function fused into a convolution (where it runs on NCHW values in ONNX:
/// softmax over the channel axis) and into the output layer, whose values are compared as
/// they are.
fn activation_model(name: &str) -> Sequential {
    let a = Activation::from_config(&json!(name)).unwrap();
    let mut m = Sequential::new().seed(7);
    m.add(Conv2D::new(6, 2).padding(Padding::Same).activation(a).input_shape([3, 3, 4]));
    m.add(Flatten::new());
    m.add(Dense::new(10).activation(a));
    m
}

/// A functional model: a residual block with a skip from a stem, branches joined by each
/// merge layer, values merged in NCHW (after convolutions) and in NHWC (after Flatten).
fn graph_model() -> Sequential {
    let mut f = Functional::new();
    let inp = f.input(&[28, 28, 1]);
    let stem = f.add(Conv2D::new(4, 3).activation(Activation::Relu), inp);
    let x = f.add(Conv2D::new(4, 3).padding(Padding::Same).activation(Activation::Relu), stem);
    let x = f.add(Conv2D::new(4, 3).padding(Padding::Same), x);
    let x = f.add(Add::new(), [x, stem]);
    let x = f.add(MaxPooling2D::new(2), x);
    let a = f.add(Conv2D::new(3, 1).activation(Activation::Tanh), x);
    let b = f.add(Conv2D::new(3, 3).padding(Padding::Same).activation(Activation::Sigmoid), x);
    let c = f.add(Concatenate::new(), [a, b, x]);
    let m = f.add(Multiply::new(), [a, b]);
    let d = f.add(Subtract::new(), [m, a]);
    let e = f.add(Maximum::new(), [d, b, a]);
    let g = f.add(Minimum::new(), [e, m]);
    let h = f.add(Concatenate::new().axis(1), [g, e]);
    let h = f.add(Concatenate::new().axis(2), [h, h]);
    let h = f.add(Flatten::new(), h);
    let c = f.add(Flatten::new(), c);
    let h = f.add(Concatenate::new(), [h, c]);
    let k = f.add(Dense::new(16).activation(Activation::Relu), h);
    let l = f.add(Dense::new(16), h);
    let k = f.add(Average::new(), [k, l]);
    let k = f.add(Concatenate::new(), [k, l]);
    let out = f.add(Dense::new(10).activation(Activation::Softmax), k);
    f.build(&[inp], &[out]).unwrap()
}

#[test]
#[ignore = "run by tests/keras_check/onnx_check.py"]
fn write_models_for_onnx_runtime() {
    let dir = std::path::PathBuf::from(std::env::var("CONVNET_ONNX_DIR").expect("set CONVNET_ONNX_DIR"));
    std::fs::create_dir_all(&dir).unwrap();
    let (digits_train, digits_test) = convnet::data::mnist_sample().unwrap();
    let mut rng = convnet::Rng::new(17);
    let mut listed = Vec::new();
    let mut models: Vec<(String, Sequential)> =
        convnet::presets::NAMES.iter().map(|n| (n.to_string(), convnet::presets::preset(n).unwrap().seed(5))).collect();
    models.push(("layers".into(), layers_model()));
    models.push(("conv-variants".into(), conv_variants_model()));
    models.extend(modern_models());
    models.push(("graph".into(), graph_model()));
    models.extend(ACTIVATIONS.iter().map(|a| (format!("act-{a}"), activation_model(a))));
    for (name, mut m) in models {
        m.compile(Loss::CategoricalCrossentropy, Adam::default(), &[]).unwrap();
        let shape = m.input_shape().unwrap().to_vec();
        // Real digits for the digit models, uniform noise for the others; a few training
        // steps so that the weights are not the initial ones.
        let (x_train, y_train, x) = if shape == [28, 28, 1] {
            let train = digits_train.take(256);
            (train.x(), train.y_one_hot(10), digits_test.take(N).x())
        } else {
            let xs: Vec<usize> = [N].iter().chain(&shape).copied().collect();
            let labels: Vec<u8> = (0..N).map(|i| (i * 7 % 10) as u8).collect();
            (random(&xs, &mut rng), to_categorical(&labels, 10), random(&xs, &mut rng))
        };
        // Inputs in [−2, 2] for the activation models, so that their values cross every
        // threshold (the shrinks' ±0.5, sparse_plus' ±1, …).
        let x = if name.starts_with("act-") {
            let shape = x.shape().to_vec();
            Tensor::from_vec(&shape, x.data().iter().map(|v| 4.0 * v - 2.0).collect()).unwrap()
        } else {
            x
        };
        let b = x_train.shape()[0].min(64);
        for s in 0..x_train.shape()[0] / b {
            let xb = x_train.slice_batch(s * b, (s + 1) * b);
            let yb = y_train.slice_batch(s * b, (s + 1) * b);
            m.train_on_batch(&xb, &yb).unwrap();
        }
        let pred = m.predict(&x, 32).unwrap();
        convnet::io::save_model(&m, &dir.join(format!("{name}.keras"))).unwrap();
        write_f32(&dir.join(format!("{name}_x.f32")), &x);
        write_f32(&dir.join(format!("{name}_pred.f32")), &pred);
        listed.push(json!({"name": name, "x_shape": x.shape(), "pred_shape": pred.shape()}));
    }
    std::fs::write(dir.join("models.json"), serde_json::to_string_pretty(&listed).unwrap()).unwrap();
}
