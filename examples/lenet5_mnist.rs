//! The lecture's first program, LeNet5_MNIST: load MNIST, normalise, one-hot, build LeNet-5,
//! compile with Adam and categorical cross-entropy, fit (batch 128, validation on the test
//! set), evaluate and print the accuracy.
//!
//! Run: `cargo run --release --example lenet5_mnist [EPOCHS]` (the lecture uses 30).

use convnet::prelude::*;

fn main() -> Result<()> {
    let epochs: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(30);

    // Read MNIST and shape it for the network: (n, 28, 28, 1) floats in [0, 1], one-hot labels.
    let ds = convnet::data::load(DatasetKind::Mnist, &Default::default())?;
    if let Some(note) = &ds.notice {
        eprintln!("{note}");
    }
    let x_train = ds.train.x();
    let x_test = ds.test.x();
    let y_train = to_categorical(&ds.train.labels, 10);
    let y_test = to_categorical(&ds.test.labels, 10);

    // LeNet-5
    let mut cnn = Sequential::new();
    cnn.add(Conv2D::new(6, (5, 5)).padding(Padding::Same).activation(Activation::Relu).input_shape([28, 28, 1]));
    cnn.add(MaxPooling2D::new((2, 2)));
    cnn.add(Conv2D::new(16, (5, 5)).padding(Padding::Valid).activation(Activation::Relu));
    cnn.add(MaxPooling2D::new((2, 2)));
    cnn.add(Conv2D::new(120, (5, 5)).padding(Padding::Valid).activation(Activation::Relu));
    cnn.add(Flatten::new());
    cnn.add(Dense::new(84).activation(Activation::Relu));
    cnn.add(Dense::new(10).activation(Activation::Softmax));

    // Train
    cnn.compile(Loss::CategoricalCrossentropy, Adam::default(), &[Metric::Accuracy])?;
    let _hist = cnn.fit(
        &x_train,
        &y_train,
        FitOptions {
            batch_size: 128,
            epochs,
            validation_data: Some((&x_test, &y_test)),
            verbose: 2,
            ..Default::default()
        },
    )?;

    // Evaluate
    let res = cnn.evaluate(&x_test, &y_test, 128)?;
    println!("accuracy: {:.2} %", res["accuracy"] * 100.0);
    Ok(())
}
