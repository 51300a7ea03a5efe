//! The lecture's Reuse_CNN program: load a saved model (`my_cnn.h5`, from Keras or from
//! convnet), print its summary, load the dataset it was made for, evaluate it and print the
//! accuracy.
//!
//! Run: `cargo run --release --example reuse_cnn [MODEL_FILE] [DATASET]`. The model file
//! defaults to `my_cnn.h5` (what `cifar10_cnn` saves); the dataset defaults to CIFAR-10 for
//! 32x32x3 models and MNIST otherwise. For example:
//! `convnet train lenet5 --dataset fashion-mnist --save my_cnn.h5` then
//! `cargo run --release --example reuse_cnn my_cnn.h5 fashion-mnist`.

use convnet::prelude::*;

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let path = args.next().unwrap_or_else(|| "my_cnn.h5".to_string());

    // Read the file holding the network's structure and weights.
    let mut cnn = convnet::io::load_model(path.as_ref())?;
    print!("{}", cnn.summary()?);

    // Read the dataset and shape it for the network.
    let kind = match args.next() {
        Some(name) => DatasetKind::parse(&name)?,
        None if cnn.input_shape() == Some(&[32, 32, 3]) => DatasetKind::Cifar10,
        None => DatasetKind::Mnist,
    };
    let ds = convnet::data::load(kind, &Default::default())?;
    if let Some(note) = &ds.notice {
        eprintln!("{note}");
    }
    let x_test = ds.test.x();
    let y_test = to_categorical(&ds.test.labels, 10);

    if cnn.compiled().is_none() {
        cnn.compile(Loss::CategoricalCrossentropy, Adam::default(), &[Metric::Accuracy])?;
    }
    let res = cnn.evaluate(&x_test, &y_test, 128)?;
    println!("accuracy: {:.2} %", res["accuracy"] * 100.0);
    Ok(())
}
