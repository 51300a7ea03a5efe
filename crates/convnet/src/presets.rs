//! Ready-made networks — `lenet5`, `mnist-cnn` and `cifar10-cnn`, the classic first CNNs of
//! Keras courses, and the next step, `resnet20` and `mobilenet-v2` — and [`open_model`], which
//! opens what a command line names: a preset, a TOML model description or a saved model file.

use crate::error::{Error, Result};
use crate::io::{load_model_with_warnings, toml_model};
use crate::kernels::conv::Padding;
use crate::nn::activations::Activation::{Relu, Softmax};
use crate::nn::initializers::Initializer;
use crate::nn::layers::{
    ActivationLayer, Add, BatchNormalization, Conv2D, Dense, DepthwiseConv2D, Dropout, Flatten, GlobalAveragePooling2D,
    MaxPooling2D, ReLU, ZeroPadding2D,
};
use crate::nn::model::{Functional, Node, Sequential};
use std::path::{Path, PathBuf};

/// Names of the presets.
pub const NAMES: [&str; 5] = ["lenet5", "mnist-cnn", "cifar10-cnn", "resnet20", "mobilenet-v2"];

/// LeNet-5 as Keras courses build it for 28×28×1 digits (61,706 parameters):
/// C(6,5×5,same) → P → C(16,5×5) → P → C(120,5×5) → Flatten → FC(84) → FC(10, softmax).
pub fn lenet5() -> Sequential {
    let mut m = Sequential::new();
    m.add(Conv2D::new(6, (5, 5)).padding(Padding::Same).activation(Relu).input_shape([28, 28, 1]));
    m.add(MaxPooling2D::new((2, 2)));
    m.add(Conv2D::new(16, (5, 5)).padding(Padding::Valid).activation(Relu));
    m.add(MaxPooling2D::new((2, 2)));
    m.add(Conv2D::new(120, (5, 5)).padding(Padding::Valid).activation(Relu));
    m.add(Flatten::new());
    m.add(Dense::new(84).activation(Relu));
    m.add(Dense::new(10).activation(Softmax));
    m
}

/// The classic Keras MNIST CNN: C(32,3×3) → C(64,3×3) → P → Dropout(0.25) →
/// Flatten → FC(128) → Dropout(0.25) → FC(10, softmax).
pub fn mnist_cnn() -> Sequential {
    let mut m = Sequential::new();
    m.add(Conv2D::new(32, (3, 3)).activation(Relu).input_shape([28, 28, 1]));
    m.add(Conv2D::new(64, (3, 3)).activation(Relu));
    m.add(MaxPooling2D::new((2, 2)));
    m.add(Dropout::new(0.25));
    m.add(Flatten::new());
    m.add(Dense::new(128).activation(Relu));
    m.add(Dropout::new(0.25));
    m.add(Dense::new(10).activation(Softmax));
    m
}

/// The classic Keras CIFAR-10 network for 32×32×3 images: C(32) → C(32) → P → Dropout(0.25) →
/// C(64) → C(64) → P → Dropout(0.25) → Flatten → FC(512) → Dropout(0.5) → FC(10, softmax).
pub fn cifar10_cnn() -> Sequential {
    let mut m = Sequential::new();
    m.add(Conv2D::new(32, (3, 3)).activation(Relu).input_shape([32, 32, 3]));
    m.add(Conv2D::new(32, (3, 3)).activation(Relu));
    m.add(MaxPooling2D::new((2, 2)));
    m.add(Dropout::new(0.25));
    m.add(Conv2D::new(64, (3, 3)).activation(Relu));
    m.add(Conv2D::new(64, (3, 3)).activation(Relu));
    m.add(MaxPooling2D::new((2, 2)));
    m.add(Dropout::new(0.25));
    m.add(Flatten::new());
    m.add(Dense::new(512).activation(Relu));
    m.add(Dropout::new(0.5));
    m.add(Dense::new(10).activation(Softmax));
    m
}

/// ResNet-20 v1 (He et al. 2016) for pictures of `input` (height, width, channels: 32×32×3
/// for CIFAR-10, 28×28×1 for the MNIST sets), as Keras' CIFAR-10 ResNet example builds it: a
/// 3×3 convolution–BatchNormalization–ReLU stem; three stages of three residual blocks with 16,
/// 32 and 64 filters, each block conv–BN–ReLU, conv–BN, added to the block's input (through a
/// 1×1 convolution with stride 2 where a stage begins), then ReLU; global average pooling and a
/// 10-way softmax. He-normal kernels. 274,442 parameters at 32×32×3, of which 1,376 are
/// BatchNormalization's moving statistics. Fails for pictures smaller than 4×4.
pub fn resnet20(input: [usize; 3]) -> Result<Sequential> {
    /// Convolution, then BatchNormalization and ReLU where asked.
    fn unit(f: &mut Functional, x: Node, filters: usize, kernel: usize, strides: usize, bn: bool, relu: bool) -> Node {
        let conv = Conv2D::new(filters, kernel)
            .strides(strides)
            .padding(Padding::Same)
            .kernel_initializer(Initializer::HeNormal);
        let mut x = f.add(conv, x);
        if bn {
            x = f.add(BatchNormalization::new(), x);
        }
        if relu {
            x = f.add(ActivationLayer::new(Relu), x);
        }
        x
    }
    if input[0] < 4 || input[1] < 4 || input[2] == 0 {
        return Err(Error::Shape(format!("resnet20 needs pictures of at least 4×4, not {input:?}")));
    }
    let mut f = Functional::new().with_name("resnet20");
    let inp = f.input(&input);
    let mut x = unit(&mut f, inp, 16, 3, 1, true, true);
    for (stage, filters) in [16, 32, 64].into_iter().enumerate() {
        for block in 0..3 {
            let strides = if stage > 0 && block == 0 { 2 } else { 1 };
            let y = unit(&mut f, x, filters, 3, strides, true, true);
            let y = unit(&mut f, y, filters, 3, 1, true, false);
            if strides != 1 {
                // Projection shortcut: the block's input brought to the new shape.
                x = unit(&mut f, x, filters, 1, strides, false, false);
            }
            let sum = f.add(Add::new(), [x, y]);
            x = f.add(ActivationLayer::new(Relu), sum);
        }
    }
    let x = f.add(GlobalAveragePooling2D::new(), x);
    let out = f.add(Dense::new(10).activation(Softmax).kernel_initializer(Initializer::HeNormal), x);
    f.build(&[inp], &[out])
}

/// Keras' channel rounding for MobileNet widths (`_make_divisible`): the nearest multiple of
/// 8, never below 8 nor more than 10 % below `v`.
fn divisible(v: f32) -> usize {
    let n = (((v + 4.0) as usize) / 8 * 8).max(8);
    if (n as f32) < 0.9 * v {
        n + 8
    } else {
        n
    }
}

/// MobileNetV2 (Sandler et al. 2018) at width `alpha` 0.35 for pictures of `input` (96×96×3 is
/// the size it is measured at; 28×28×1 and 32×32×3 work too) with 10 classes, as
/// `keras.applications.MobileNetV2(alpha=0.35, weights=None, classes=10)` builds it, with
/// Keras' layer names, so its files and Keras' exchange weights: a stride-2 3×3 stem, 17
/// inverted residual blocks (1×1 expansion, 3×3 depthwise — stride-2 ones after Keras'
/// asymmetric zero padding — and a linear 1×1 projection, added to the block's input where the
/// shapes agree), BatchNormalization (momentum 0.999) and ReLU6 throughout, a 1×1 convolution to
/// 1,280 channels, global average pooling and a softmax. 423,018 parameters at 96×96×3, of
/// which 14,080 are moving statistics. Fails for pictures smaller than 8×8.
pub fn mobilenet_v2(input: [usize; 3]) -> Result<Sequential> {
    const ALPHA: f32 = 0.35;
    // Expansion, filters, repeats, stride of the first block of each group.
    const BLOCKS: [(usize, usize, usize, usize); 7] =
        [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)];
    if input[0] < 8 || input[1] < 8 || input[2] == 0 {
        return Err(Error::Shape(format!("mobilenet-v2 needs pictures of at least 8×8, not {input:?}")));
    }
    let bn = |name: &str| BatchNormalization::new().momentum(0.999).epsilon(1e-3).name(name);
    let relu6 = |name: &str| ReLU::new().max_value(Some(6.0)).name(name);
    let conv1x1 =
        |filters: usize, name: &str| Conv2D::new(filters, 1).padding(Padding::Same).use_bias(false).name(name);
    let mut f = Functional::new().with_name(&format!("mobilenetv2_{ALPHA:.2}_{}", input[0]));
    let inp = f.input_named("input_layer", &input);
    let first = divisible(32.0 * ALPHA);
    let x = f.add(Conv2D::new(first, 3).strides(2).padding(Padding::Same).use_bias(false).name("Conv1"), inp);
    let x = f.add(bn("bn_Conv1"), x);
    let mut x = f.add(relu6("Conv1_relu"), x);
    let (mut channels, mut size) = (first, [input[0].div_ceil(2), input[1].div_ceil(2)]);
    let mut block_id = 0;
    for (expansion, filters, repeats, first_stride) in BLOCKS {
        let out = divisible(((filters as f32 * ALPHA) as usize) as f32);
        for r in 0..repeats {
            let stride = if r == 0 { first_stride } else { 1 };
            let p = if block_id == 0 { "expanded_conv_".to_string() } else { format!("block_{block_id}_") };
            let block_in = x;
            let mut y = x;
            if block_id > 0 {
                y = f.add(conv1x1(expansion * channels, &format!("{p}expand")), y);
                y = f.add(bn(&format!("{p}expand_BN")), y);
                y = f.add(relu6(&format!("{p}expand_relu")), y);
            }
            let depthwise = DepthwiseConv2D::new(3).strides(stride).use_bias(false).name(&format!("{p}depthwise"));
            y = if stride == 2 {
                // Keras' `correct_pad`: one more row and column after than before on even sides.
                let (t, l) = (1 - size[0] % 2, 1 - size[1] % 2);
                let pad = ZeroPadding2D::new([[1 - t, 1], [1 - l, 1]]).name(&format!("{p}pad"));
                let y = f.add(pad, y);
                f.add(depthwise.padding(Padding::Valid), y)
            } else {
                f.add(depthwise.padding(Padding::Same), y)
            };
            size = [size[0].div_ceil(stride), size[1].div_ceil(stride)];
            y = f.add(bn(&format!("{p}depthwise_BN")), y);
            y = f.add(relu6(&format!("{p}depthwise_relu")), y);
            y = f.add(conv1x1(out, &format!("{p}project")), y);
            y = f.add(bn(&format!("{p}project_BN")), y);
            x = if channels == out && stride == 1 {
                f.add(Add::new().name(&format!("{p}add")), [block_in, y])
            } else {
                y
            };
            channels = out;
            block_id += 1;
        }
    }
    let x = f.add(conv1x1(1280, "Conv_1"), x);
    let x = f.add(bn("Conv_1_bn"), x);
    let x = f.add(relu6("out_relu"), x);
    let x = f.add(GlobalAveragePooling2D::new().name("global_average_pooling2d"), x);
    let out = f.add(Dense::new(10).activation(Softmax).name("predictions"), x);
    f.build(&[inp], &[out])
}

/// The input a preset was made for.
fn default_input(name: &str) -> Option<[usize; 3]> {
    match name {
        "lenet5" | "lenet-5" | "mnist-cnn" => Some([28, 28, 1]),
        "cifar10-cnn" | "resnet20" => Some([32, 32, 3]),
        "mobilenet-v2" => Some([96, 96, 3]),
        _ => None,
    }
}

/// The preset called `name` (`lenet5`, `mnist-cnn`, `cifar10-cnn`, `resnet20`, `mobilenet-v2`;
/// `_` and `-` alike), for the pictures it was made for.
pub fn preset(name: &str) -> Result<Sequential> {
    let key = name.to_ascii_lowercase().replace('_', "-");
    match default_input(&key) {
        Some(input) => preset_for(&key, input),
        None => Err(Error::config(format!("unknown preset {key:?} (presets: {})", NAMES.join(", ")))),
    }
}

/// Whether the preset `name` can be built for pictures of any size and channel count
/// ([`preset_for`]): the ones that end in global pooling. The lecture's networks have fixed
/// inputs.
pub fn adapts_to_input(name: &str) -> bool {
    matches!(name.to_ascii_lowercase().replace('_', "-").as_str(), "resnet20" | "mobilenet-v2")
}

/// The preset `name` for pictures of `input` (height, width, channels). The lecture's networks
/// take only the input they were made for; `resnet20` and `mobilenet-v2` take any (a data set's
/// 28×28×1 or 32×32×3, for example).
pub fn preset_for(name: &str, input: [usize; 3]) -> Result<Sequential> {
    let key = name.to_ascii_lowercase().replace('_', "-");
    let fixed = default_input(&key);
    if !adapts_to_input(&key) && fixed.is_some_and(|f| f != input) {
        return Err(Error::Shape(format!(
            "the preset {key} takes pictures of {:?}, not {input:?}",
            fixed.unwrap_or_default()
        )));
    }
    match key.as_str() {
        "lenet5" | "lenet-5" => Ok(lenet5()),
        "mnist-cnn" => Ok(mnist_cnn()),
        "cifar10-cnn" => Ok(cifar10_cnn()),
        "resnet20" => resnet20(input),
        "mobilenet-v2" => mobilenet_v2(input),
        other => Err(Error::config(format!("unknown preset {other:?} (presets: {})", NAMES.join(", ")))),
    }
}

/// The dataset a preset was made for.
pub fn default_dataset(name: &str) -> Option<crate::data::DatasetKind> {
    use crate::data::DatasetKind;
    match name.to_ascii_lowercase().replace('_', "-").as_str() {
        "lenet5" | "lenet-5" | "mnist-cnn" => Some(DatasetKind::Mnist),
        "cifar10-cnn" | "resnet20" | "mobilenet-v2" => Some(DatasetKind::Cifar10),
        _ => None,
    }
}

/// Where a model named on a command line came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ModelSource {
    /// A built-in preset (`lenet5`, `mnist-cnn`, `cifar10-cnn`).
    Preset(String),
    /// A TOML model description (untrained).
    Toml(PathBuf),
    /// A saved model (trained weights).
    File(PathBuf),
}

/// A model opened by [`open_model`].
#[derive(Debug)]
pub struct Opened {
    /// The model.
    pub model: Sequential,
    /// Where it came from.
    pub source: ModelSource,
    /// Things the user should know (for example an optimizer state that was not restored).
    pub warnings: Vec<String>,
}

/// Opens a model named by `spec`: a preset name, a `.toml` model description, or a saved
/// model file of any supported format.
pub fn open_model(spec: &str) -> Result<Opened> {
    let path = Path::new(spec);
    if !path.exists() {
        if let Ok(model) = preset(spec) {
            let source = ModelSource::Preset(spec.to_ascii_lowercase().replace('_', "-"));
            return Ok(Opened { model, source, warnings: Vec::new() });
        }
        return Err(Error::config(format!("{spec:?} is neither a preset ({}) nor an existing file", NAMES.join(", "))));
    }
    if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("toml")) {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let model = toml_model::model_from_toml(&text, path)?;
        return Ok(Opened { model, source: ModelSource::Toml(path.to_path_buf()), warnings: Vec::new() });
    }
    let (model, warnings) = load_model_with_warnings(path)?;
    Ok(Opened { model, source: ModelSource::File(path.to_path_buf()), warnings })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lenet5_has_its_published_parameter_counts() {
        let mut m = lenet5();
        m.build().unwrap();
        let counts: Vec<usize> = m.layers().iter().map(|l| l.count_params()).filter(|&c| c > 0).collect();
        assert_eq!(counts, vec![156, 2_416, 48_120, 10_164, 850]);
        assert_eq!(m.count_params(), 61_706);
    }

    #[test]
    fn other_presets_match_keras_counts() {
        let mut m = mnist_cnn();
        m.build().unwrap();
        assert_eq!(m.count_params(), 1_199_882);
        let mut m = cifar10_cnn();
        m.build().unwrap();
        assert_eq!(m.count_params(), 890_410);
    }

    #[test]
    fn resnet20_and_mobilenet_v2_have_keras_parameter_counts() {
        // Keras' own counts of the same models (bench/reference/models.py builds them).
        for (mut m, total, frozen) in [
            (resnet20([32, 32, 3]).unwrap(), 274_442, 1_376),
            (resnet20([28, 28, 1]).unwrap(), 274_154, 1_376),
            (mobilenet_v2([96, 96, 3]).unwrap(), 423_018, 14_080),
        ] {
            m.build().unwrap();
            assert_eq!((m.count_params(), m.count_params() - m.count_trainable_params()), (total, frozen));
            assert_eq!(m.output_shape().unwrap(), vec![10]);
        }
        // 17 inverted residual blocks, 10 of them with a skip connection.
        let m = mobilenet_v2([96, 96, 3]).unwrap();
        assert_eq!(m.layers().iter().filter(|l| l.class_name() == "DepthwiseConv2D").count(), 17);
        assert_eq!(m.layers().iter().filter(|l| l.class_name() == "Add").count(), 10);
        let m = resnet20([32, 32, 3]).unwrap();
        assert_eq!(m.layers().iter().filter(|l| l.class_name() == "Add").count(), 9);
    }

    #[test]
    fn presets_adapt_to_pictures_where_they_can() {
        assert!(preset_for("resnet20", [28, 28, 1]).is_ok());
        assert!(preset_for("mobilenet_v2", [32, 32, 3]).is_ok());
        assert!(matches!(preset_for("lenet5", [32, 32, 3]), Err(Error::Shape(_))));
        assert!(matches!(resnet20([2, 2, 1]), Err(Error::Shape(_))));
        assert!(matches!(mobilenet_v2([4, 9, 3]), Err(Error::Shape(_))));
        assert!(preset("no-such-net").is_err());
    }
}
