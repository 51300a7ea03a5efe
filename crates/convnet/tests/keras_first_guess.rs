//! The program a Keras user writes first, in Keras' words: layers built with `"relu"` and
//! `"same"`, `compile` with Keras' names, `summary()` on a shared model, `save` and
//! `load_model`. That it compiles is half the test; the rest checks that the names mean what
//! Keras means and that a wrong name is a clear error, not a panic.

use convnet::prelude::*;

/// A model as Keras users write it, with Keras' names throughout.
fn keras_model() -> Sequential {
    let mut model = Sequential::new();
    model.add(Conv2D::new(8, (3, 3)).activation("relu").padding("same").input_shape([28, 28, 1]));
    model.add(MaxPooling2D::new((2, 2)).padding("same"));
    model.add(Flatten::new());
    model.add(Dense::new(10).activation("softmax"));
    model
}

/// Only a shared reference: `summary` needs no `&mut`.
fn show(model: &Sequential) -> String {
    model.summary().unwrap()
}

#[test]
fn the_keras_users_first_program_runs() -> Result<()> {
    let mut model = keras_model();
    model.compile_str("adam", "categorical_crossentropy", &["accuracy"])?;
    // Unbuilt, the summary comes from a copy: the model keeps no weights until it is built.
    let before = show(&model);
    assert!(!model.is_built());
    assert!(before.contains("conv2d (Conv2D)") && before.contains("(None, 28, 28, 8)"), "{before}");
    assert!(before.contains("Total params: 15,770 "), "{before}");
    model.build()?;
    assert_eq!(show(&model), before);

    let layers = model.layers();
    assert_eq!(layers[0].activation(), Activation::Relu);
    assert_eq!(layers[0].config()["padding"], "same");
    assert_eq!(layers[1].config()["padding"], "same");
    assert_eq!(layers[3].activation(), Activation::Softmax);
    let c = model.compiled().unwrap();
    assert_eq!(
        (c.loss, c.optimizer.class_name(), c.metrics.clone()),
        (Loss::CategoricalCrossentropy, "Adam", vec![Metric::Accuracy])
    );

    let x = Tensor::from_vec(&[4, 28, 28, 1], (0..4 * 784).map(|i| (i % 7) as f32 / 7.0).collect())?;
    let y = to_categorical(&[1, 2, 3, 4], 10);
    model.fit(&x, &y, FitOptions { epochs: 1, batch_size: 2, verbose: 0, ..Default::default() })?;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.keras");
    model.save(&path)?;
    let back = convnet::load_model(&path)?;
    assert_eq!(back.get_weights(), model.get_weights());
    Ok(())
}

/// Typed and named arguments mix; Keras' order (optimizer first) works for `compile_str`, and
/// `compile`, which takes the loss first, says so when given them the other way round.
#[test]
fn compile_takes_names_and_types() -> Result<()> {
    let mut model = keras_model();
    model.compile("categorical_crossentropy", "sgd", &[Metric::Accuracy])?;
    assert_eq!(model.compiled().unwrap().optimizer.class_name(), "SGD");
    model.compile(Loss::MeanSquaredError, "rmsprop", &[])?;
    model.compile("sparse_categorical_crossentropy", Adam::default(), &[Metric::Accuracy])?;
    model.compile_str("categorical_crossentropy", "nadam", &["acc"])?;
    assert_eq!(model.compiled().unwrap().optimizer.class_name(), "Nadam");

    let err = model.compile("adam", "categorical_crossentropy", &[]).unwrap_err().to_string();
    assert!(err.contains("\"adam\" is an optimizer, not a loss: compile takes the loss first"), "{err}");
    let err = model.compile_str("adamm", "categorical_crossentropy", &["accuracy"]).unwrap_err().to_string();
    assert!(err.contains("unknown optimizer \"adamm\"") && err.contains("sgd, adam"), "{err}");
    let err = model.compile_str("adam", "categorical_crossentropy", &["acuracy"]).unwrap_err().to_string();
    assert!(err.contains("unknown metric \"acuracy\"") && err.contains("accuracy"), "{err}");
    Ok(())
}

/// A misspelt name in a builder does not panic: the layer keeps it and building the model
/// fails, naming the layer and the valid choices.
#[test]
fn a_wrong_name_in_a_builder_fails_at_build() {
    let mut model = Sequential::new();
    model.add(Conv2D::new(4, 3).activation("rleu").input_shape([8, 8, 1]));
    model.add(Flatten::new());
    let err = model.build().unwrap_err().to_string();
    assert!(err.contains("layer 0 (conv2d): activation: unknown activation \"rleu\""), "{err}");
    assert!(err.contains("relu") && err.contains("softmax"), "{err}");
    assert!(model.summary().unwrap_err().to_string().contains("\"rleu\""));

    let mut model = Sequential::new();
    model.add(Flatten::new().input_shape([8, 8, 1]));
    model.add(Dense::new(3).activation("softmax").activation("sofmax"));
    let err = model.build().unwrap_err().to_string();
    assert!(err.contains("layer 1 (dense): activation: unknown activation \"sofmax\""), "{err}");

    let mut model = Sequential::new();
    model.add(MaxPooling2D::new(2).padding("smae").input_shape([8, 8, 1]));
    let err = model.build().unwrap_err().to_string();
    assert!(err.contains("padding: padding must be \"valid\" or \"same\", not \"smae\""), "{err}");

    // Without an input shape there is nothing to summarize yet, as in Keras.
    let mut model = Sequential::new();
    model.add(Dense::new(3));
    let err = model.summary().unwrap_err().to_string();
    assert!(err.contains("has not been built yet") && err.contains("input_shape"), "{err}");
}

/// The functional model of the README, as written there: a skip connection around conv-BN-ReLU.
#[test]
fn the_readme_functional_model_builds_and_trains() -> Result<()> {
    let mut f = Functional::new();
    let inp = f.input(&[32, 32, 3]);
    let x = f.add(Conv2D::new(16, 3).padding("same"), inp);
    let x = f.add(BatchNormalization::new(), x);
    let x = f.add(ReLU::new(), x);
    let y = f.add(Conv2D::new(16, 3).padding("same"), x);
    let y = f.add(BatchNormalization::new(), y);
    let x = f.add(Add::new(), [x, y]);
    let x = f.add(GlobalAveragePooling2D::new(), x);
    let out = f.add(Dense::new(10).activation("softmax"), x);
    let mut model: Model = f.build(&[inp], &[out])?;
    model.compile_str("adam", "categorical_crossentropy", &["accuracy"])?;
    model.build()?; // weights are made on the first build (or fit), after any `seed`
                    // conv 448 + BN 64 + conv 2,320 + BN 64 + dense 170; the BNs' moving statistics (64) frozen.
    assert_eq!(model.count_params(), 3_066);
    assert_eq!(model.count_params() - model.count_trainable_params(), 64);
    let x = Tensor::from_vec(&[4, 32, 32, 3], (0..4 * 32 * 32 * 3).map(|i| (i % 7) as f32 / 7.0).collect())?;
    let y = Tensor::from_vec(&[4, 10], (0..40).map(|i| if i % 11 == 0 { 1.0 } else { 0.0 }).collect())?;
    let before = model.predict(&x, 4)?;
    model.fit(&x, &y, FitOptions { batch_size: 4, epochs: 1, verbose: 0, ..Default::default() })?;
    assert_ne!(before.data(), model.predict(&x, 4)?.data());
    Ok(())
}

/// The convolution variants take Keras' names as Conv2D does, and a wrong one fails at build.
#[test]
fn convolution_variants_take_keras_names() {
    let mut m = Sequential::new();
    m.add(DepthwiseConv2D::new(3).padding("same").activation("relu").input_shape([8, 8, 2]));
    m.add(SeparableConv2D::new(4, 3).padding("same").activation("relu"));
    m.add(Conv2DTranspose::new(2, 3).padding("same").activation("tanh"));
    m.build().unwrap();
    assert_eq!(m.output_shape().unwrap(), vec![8, 8, 2]);
    let mut bad = Sequential::new();
    bad.add(DepthwiseConv2D::new(3).padding("smae").input_shape([8, 8, 2]));
    assert!(bad.build().unwrap_err().to_string().contains("smae"));
}
