//! End-to-end training on the shipped real MNIST digits.

use convnet::prelude::*;

fn sample() -> (Tensor, Tensor, Tensor, Tensor) {
    let (train, test) = convnet::data::mnist_sample().unwrap();
    (train.x(), train.y_one_hot(10), test.x(), test.y_one_hot(10))
}

/// LeNet-5 as the lecture trains it (Adam, batch 128) learns real digits: at least 90 % on
/// 400 held-out digits after training on the other 1,600. Chance is 10 %; a wrong gradient,
/// layout or optimizer stays far below.
#[test]
fn lenet5_learns_the_shipped_digits() {
    let (x_train, y_train, x_test, y_test) = sample();
    let mut cnn = convnet::presets::lenet5();
    cnn.compile(Loss::CategoricalCrossentropy, Adam::default(), &[Metric::Accuracy]).unwrap();
    let hist = cnn
        .fit(&x_train, &y_train, FitOptions { batch_size: 128, epochs: 15, verbose: 0, ..Default::default() })
        .unwrap();
    let res = cnn.evaluate(&x_test, &y_test, 128).unwrap();
    let losses = hist.get("loss").unwrap();
    assert!(losses.last().unwrap() < &losses[0], "training loss fell: {losses:?}");
    assert!(res["accuracy"] >= 0.90, "test accuracy {}", res["accuracy"]);
}

/// The same seed gives bit-identical weights (initialisation, shuffling and dropout all drawn
/// from the model's generator); another seed gives different ones.
#[test]
fn same_seed_same_weights() {
    let (x_train, y_train, _, _) = sample();
    let x = x_train.slice_batch(0, 300);
    let y = y_train.slice_batch(0, 300);
    let run = |seed: u64| {
        let mut m = convnet::presets::mnist_cnn().seed(seed);
        m.compile(Loss::CategoricalCrossentropy, Adam::default(), &[Metric::Accuracy]).unwrap();
        m.fit(&x, &y, FitOptions { batch_size: 64, epochs: 2, verbose: 0, ..Default::default() }).unwrap();
        m.get_weights()
    };
    let a = run(7);
    let b = run(7);
    let c = run(8);
    assert_eq!(a, b);
    assert_ne!(a, c);
}

/// `validation_split` holds out the last samples and reports `val_` metrics per epoch.
#[test]
fn validation_split_reports_validation_metrics() {
    let (x_train, y_train, _, _) = sample();
    let x = x_train.slice_batch(0, 200);
    let y = y_train.slice_batch(0, 200);
    let mut m = convnet::presets::lenet5();
    m.compile(Loss::CategoricalCrossentropy, Sgd::default(), &[Metric::Accuracy]).unwrap();
    let h = m
        .fit(&x, &y, FitOptions { batch_size: 50, epochs: 2, validation_split: 0.25, verbose: 0, ..Default::default() })
        .unwrap();
    for k in ["loss", "accuracy", "val_loss", "val_accuracy"] {
        assert_eq!(h.get(k).map(<[f64]>::len), Some(2), "{k}");
    }
    // The held-out part is exactly the last 50 samples.
    let v = m.evaluate(&x.slice_batch(150, 200), &y.slice_batch(150, 200), 50).unwrap();
    assert!((v["loss"] - h.last("val_loss").unwrap()).abs() < 1e-9);
}
