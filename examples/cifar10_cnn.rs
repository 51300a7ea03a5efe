//! The lecture's CIFAR10 program: load CIFAR-10, normalise, one-hot, build the CNN
//! (C-C-P-dropout-C-C-P-dropout-FC-dropout-FC), train with Adam (batch 128, validation on the
//! test set), print the accuracy, and save the model as `my_cnn.h5` for `reuse_cnn`.
//!
//! Run: `cargo run --release --example cifar10_cnn [EPOCHS] [DATA_DIR]` (the lecture uses 30
//! epochs). CIFAR-10 is downloaded when possible; offline, give a directory holding
//! `cifar-10-binary.tar.gz` or its `data_batch_*.bin` files.

use convnet::prelude::*;

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let epochs: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(30);
    let opts = convnet::data::LoadOptions { data_dir: args.next().map(Into::into), ..Default::default() };

    // CIFAR-10: 32x32 colour images in [0, 1], one-hot labels.
    let ds = convnet::data::load(DatasetKind::Cifar10, &opts)?;
    let (x_train, x_test) = (ds.train.x(), ds.test.x());
    let (y_train, y_test) = (to_categorical(&ds.train.labels, 10), to_categorical(&ds.test.labels, 10));

    // The CIFAR-10 network
    let mut cnn = Sequential::new();
    cnn.add(Conv2D::new(32, (3, 3)).activation(Activation::Relu).input_shape([32, 32, 3]));
    cnn.add(Conv2D::new(32, (3, 3)).activation(Activation::Relu));
    cnn.add(MaxPooling2D::new((2, 2)));
    cnn.add(Dropout::new(0.25));
    cnn.add(Conv2D::new(64, (3, 3)).activation(Activation::Relu));
    cnn.add(Conv2D::new(64, (3, 3)).activation(Activation::Relu));
    cnn.add(MaxPooling2D::new((2, 2)));
    cnn.add(Dropout::new(0.25));
    cnn.add(Flatten::new());
    cnn.add(Dense::new(512).activation(Activation::Relu));
    cnn.add(Dropout::new(0.5));
    cnn.add(Dense::new(10).activation(Activation::Softmax));

    cnn.compile(Loss::CategoricalCrossentropy, Adam::default(), &[Metric::Accuracy])?;
    let hist = cnn.fit(
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
    std::fs::write("history.csv", hist.to_csv()).map_err(|e| Error::io("history.csv", e))?;

    // Save the trained network, as `cnn.save('my_cnn.h5')` does.
    cnn.set_class_names(ds.class_names().iter().map(|s| s.to_string()).collect());
    convnet::io::save_model(&cnn, "my_cnn.h5".as_ref())?;
    Ok(())
}
