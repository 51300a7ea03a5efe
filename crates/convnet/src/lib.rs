//! convnet: convolutional networks on the CPU, the Keras way.
//!
//! Build a [`Sequential`] model from [`layers`], `compile` it with a [`Loss`], an
//! [`Optimizer`] and [`Metric`]s, `fit` it on a [`data`] set, `evaluate`, `predict`, and save
//! or reload it with [`io`]. Tensors are NHWC `f32` and weights keep Keras' layouts.
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
#![warn(missing_docs)]

pub mod activations;
pub mod bench;
pub mod callbacks;
pub mod checkpoint;
pub mod data;
pub mod error;
pub mod fit;
pub mod initializers;
pub mod io;
pub mod kernels;
pub mod layers;
pub mod losses;
pub mod metrics;
pub mod model;
pub mod optimizers;
pub mod parallel;
pub mod plot;
pub mod presets;
pub mod regularizers;
pub mod rng;
pub mod tensor;
pub mod visual;

pub use activations::Activation;
pub use error::{Error, Result};
pub use fit::{FitOptions, History};
pub use initializers::Initializer;
pub use kernels::conv::Padding;
pub use losses::Loss;
pub use metrics::Metric;
pub use model::{Logs, Sequential};
pub use optimizers::{Adam, Optimizer, RmsProp, Sgd};
pub use rng::Rng;
pub use tensor::Tensor;

/// Everything a training program needs, in one import.
pub mod prelude {
    pub use crate::activations::Activation;
    pub use crate::callbacks::{Callback, Control};
    pub use crate::data::{to_categorical, DatasetKind};
    pub use crate::error::{Error, Result};
    pub use crate::fit::{FitOptions, History};
    pub use crate::initializers::Initializer;
    pub use crate::kernels::conv::Padding;
    pub use crate::layers::{
        ActivationLayer, AveragePooling2D, Conv2D, Dense, Dropout, Flatten, Layer, LeakyReLU, MaxPooling2D, PReLU,
        ReLU, Softmax, ELU,
    };
    pub use crate::losses::Loss;
    pub use crate::metrics::Metric;
    pub use crate::model::{Logs, Sequential};
    pub use crate::optimizers::{Adam, Optimizer, RmsProp, Sgd};
    pub use crate::regularizers::{l1, l1_l2, l2};
    pub use crate::tensor::Tensor;
}
