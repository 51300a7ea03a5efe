//! The lecture's networks, ready to train: `lenet5`, `mnist-cnn` and `cifar10-cnn`.

use crate::activations::Activation::{Relu, Softmax};
use crate::error::{Error, Result};
use crate::kernels::conv::Padding;
use crate::layers::{Conv2D, Dense, Dropout, Flatten, MaxPooling2D};
use crate::model::Sequential;

/// Names of the presets.
pub const NAMES: [&str; 3] = ["lenet5", "mnist-cnn", "cifar10-cnn"];

/// LeNet-5 as the lecture builds it for 28×28×1 digits (61,706 parameters):
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

/// The lecture's flexible variant for MNIST: C(32,3×3) → C(64,3×3) → P → Dropout(0.25) →
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

/// The lecture's CIFAR-10 network for 32×32×3 images: C(32) → C(32) → P → Dropout(0.25) →
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lenet5_has_the_lecture_parameter_counts() {
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
