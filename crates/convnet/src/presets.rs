//! Ready-made networks — `lenet5`, `mnist-cnn` and `cifar10-cnn`, the classic first CNNs of
//! Keras courses — and [`open_model`], which opens what a command line names: a preset, a TOML
//! model description or a saved model file.

use crate::error::{Error, Result};
use crate::io::{load_model_with_warnings, toml_model};
use crate::kernels::conv::Padding;
use crate::nn::activations::Activation::{Relu, Softmax};
use crate::nn::layers::{Conv2D, Dense, Dropout, Flatten, MaxPooling2D};
use crate::nn::model::Sequential;
use std::path::{Path, PathBuf};

/// Names of the presets.
pub const NAMES: [&str; 3] = ["lenet5", "mnist-cnn", "cifar10-cnn"];

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

/// The preset called `name` (`lenet5`, `mnist-cnn`, `cifar10-cnn`; `_` and `-` alike).
pub fn preset(name: &str) -> Result<Sequential> {
    match name.to_ascii_lowercase().replace('_', "-").as_str() {
        "lenet5" | "lenet-5" => Ok(lenet5()),
        "mnist-cnn" => Ok(mnist_cnn()),
        "cifar10-cnn" => Ok(cifar10_cnn()),
        other => Err(Error::config(format!("unknown preset {other:?} (presets: {})", NAMES.join(", ")))),
    }
}

/// The dataset a preset was made for.
pub fn default_dataset(name: &str) -> Option<crate::data::DatasetKind> {
    use crate::data::DatasetKind;
    match name.to_ascii_lowercase().replace('_', "-").as_str() {
        "lenet5" | "lenet-5" | "mnist-cnn" => Some(DatasetKind::Mnist),
        "cifar10-cnn" => Some(DatasetKind::Cifar10),
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
}
