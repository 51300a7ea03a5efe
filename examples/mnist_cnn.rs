//! The lecture's flexible structure on MNIST: C → C → P → dropout → FC → dropout → FC.
//!
//! Run: `cargo run --release --example mnist_cnn [EPOCHS]` (the lecture uses 30).

use convnet::prelude::*;

fn main() -> Result<()> {
    let epochs: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(30);

    let ds = convnet::data::load(DatasetKind::Mnist, &Default::default())?;
    if let Some(note) = &ds.notice {
        eprintln!("{note}");
    }
    let (x_train, x_test) = (ds.train.x(), ds.test.x());
    let (y_train, y_test) = (to_categorical(&ds.train.labels, 10), to_categorical(&ds.test.labels, 10));

    let mut cnn = Sequential::new();
    cnn.add(Conv2D::new(32, (3, 3)).activation(Activation::Relu).input_shape([28, 28, 1]));
    cnn.add(Conv2D::new(64, (3, 3)).activation(Activation::Relu));
    cnn.add(MaxPooling2D::new((2, 2)));
    cnn.add(Dropout::new(0.25));
    cnn.add(Flatten::new());
    cnn.add(Dense::new(128).activation(Activation::Relu));
    cnn.add(Dropout::new(0.25));
    cnn.add(Dense::new(10).activation(Activation::Softmax));

    cnn.compile(Loss::CategoricalCrossentropy, Adam::default(), &[Metric::Accuracy])?;
    cnn.fit(
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

    let res = cnn.evaluate(&x_test, &y_test, 128)?;
    println!("accuracy: {:.2} %", res["accuracy"] * 100.0);
    Ok(())
}
