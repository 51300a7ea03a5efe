//! convnet: convolutional networks on the CPU, the Keras way.
//!
//! Build a [`Sequential`] model from [`nn::layers`], `compile` it with a [`Loss`], an
//! [`Optimizer`] and [`Metric`]s, `fit` it on a [`data`] set, `evaluate`, `predict`, and save
//! or reload it with [`io`]. Tensors are NHWC `f32` and weights keep Keras' layouts.
//!
//! The modules are layers of one house, each using only those below it:
//! basic types ([`tensor`], [`rng`], [`parallel`], [`error`], [`numbers`]) → [`kernels`] (hot loops) →
//! [`nn`] (layers, constraints, losses, optimizers, the model) → [`data`] (data sets, batch sources,
//! augmentation) → [`io`] (file formats) → [`train`] (the fit loop, callbacks, checkpoints) →
//! [`viz`] (charts and pictures) → [`presets`] and [`bench`](mod@bench).
//!
//! ```no_run
//! use convnet::prelude::*;
//!
//! let ds = convnet::data::load(DatasetKind::Mnist, &Default::default())?;
//! let (x_train, y_train) = (ds.train.x(), ds.train.y_one_hot(10));
//! let (x_test, y_test) = (ds.test.x(), ds.test.y_one_hot(10));
//!
//! let mut cnn = Sequential::new();
//! cnn.add(Conv2D::new(6, (5, 5)).padding(Padding::Same).activation(Activation::Relu).input_shape([28, 28, 1]));
//! cnn.add(MaxPooling2D::new((2, 2)));
//! cnn.add(Conv2D::new(16, (5, 5)).activation(Activation::Relu));
//! cnn.add(MaxPooling2D::new((2, 2)));
//! cnn.add(Conv2D::new(120, (5, 5)).activation(Activation::Relu));
//! cnn.add(Flatten::new());
//! cnn.add(Dense::new(84).activation(Activation::Relu));
//! cnn.add(Dense::new(10).activation(Activation::Softmax));
//! cnn.compile(Loss::CategoricalCrossentropy, Adam::default(), &[Metric::Accuracy])?;
//! let hist = cnn.fit(&x_train, &y_train, FitOptions {
//!     batch_size: 128, epochs: 30, validation_data: Some((&x_test, &y_test)), verbose: 2,
//!     ..Default::default()
//! })?;
//! let res = cnn.evaluate(&x_test, &y_test, 128)?;
//! println!("accuracy: {:.2}%", res["accuracy"] * 100.0);
//! # Ok::<(), convnet::Error>(())
//! ```
//!
//! Keras' names work as well: `.activation("relu")`, `.padding("same")`,
//! `compile("categorical_crossentropy", "adam", …)`, or all of Keras' `compile` arguments by
//! name with [`Sequential::compile_str`]`("adam", "categorical_crossentropy", &["accuracy"])`.
//! A name convnet does not know is an error listing the ones it does.
#![warn(missing_docs)]

pub mod bench;
pub mod data;
pub mod error;
pub mod io;
pub mod kernels;
pub mod nn;
pub mod numbers;
pub mod parallel;
pub mod presets;
pub mod rng;
pub mod tensor;
pub mod train;
pub mod viz;

pub use error::{Error, Result};
pub use io::SaveModel;
pub use kernels::conv::Padding;
pub use nn::activations::Activation;
pub use nn::constraints::Constraint;
pub use nn::initializers::Initializer;
pub use nn::losses::{Loss, LossKind};
pub use nn::metrics::Metric;
pub use nn::model::{Functional, Logs, Sequential};

/// A model, stack or graph (Keras' `Model`); the same type as [`Sequential`].
pub type Model = Sequential;
pub use nn::optimizers::{Adadelta, Adagrad, Adam, AdamW, Adamax, Nadam, Optimizer, RmsProp, Sgd};
pub use presets::open_model;
pub use rng::Rng;
pub use tensor::Tensor;
pub use train::{FitOptions, History};

/// Loads a model file of any supported format (Keras' `keras.models.load_model`): a path as
/// text or as a `Path`. See [`io::load_model`].
pub fn load_model(path: impl AsRef<std::path::Path>) -> Result<Sequential> {
    io::load_model(path.as_ref())
}

/// Everything a training program needs, in one import.
pub mod prelude {
    pub use crate::data::{to_categorical, DatasetKind};
    pub use crate::error::{Error, Result};
    pub use crate::io::SaveModel;
    pub use crate::kernels::conv::Padding;
    pub use crate::load_model;
    pub use crate::nn::activations::Activation;
    pub use crate::nn::constraints::Constraint;
    pub use crate::nn::initializers::Initializer;
    pub use crate::nn::layers::{
        ActivationLayer, Add, Average, AveragePooling2D, BatchNormalization, Concatenate, Conv2D, Conv2DTranspose,
        Cropping2D, Dense, DepthwiseConv2D, Dropout, Flatten, GlobalAveragePooling2D, GlobalMaxPooling2D,
        Interpolation, Layer, LeakyReLU, MaxPooling2D, Maximum, Minimum, Multiply, Normalization, PReLU, ReLU,
        Rescaling, Reshape, SeparableConv2D, Softmax, SpatialDropout2D, Subtract, UpSampling2D, ZeroPadding2D, ELU,
    };
    pub use crate::nn::losses::{Loss, LossKind};
    pub use crate::nn::metrics::Metric;
    pub use crate::nn::model::{Functional, Logs, Sequential};
    pub use crate::nn::optimizers::{Adadelta, Adagrad, Adam, AdamW, Adamax, Nadam, Optimizer, RmsProp, Sgd};
    pub use crate::nn::regularizers::{l1, l1_l2, l2};
    pub use crate::tensor::Tensor;
    pub use crate::train::callbacks::{Callback, Control};
    pub use crate::train::{FitOptions, History};
    pub use crate::Model;
}
