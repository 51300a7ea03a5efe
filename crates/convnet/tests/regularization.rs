//! Regularisation works as the lecture says: on a tiny training set a network overfits, and
//! dropout with L2 weight decay narrows the gap between training and validation.

use convnet::prelude::*;

fn gap(regularised: bool) -> (f64, f64) {
    let (train, test) = convnet::data::mnist_sample().unwrap();
    let small = train.take(120);
    let (x, y) = (small.x(), small.y_one_hot(10));
    let (vx, vy) = (test.x(), test.y_one_hot(10));
    let mut m = Sequential::new().seed(3);
    m.add(Flatten::new().input_shape([28, 28, 1]));
    if regularised {
        m.add(Dropout::new(0.2));
    }
    let mut hidden = Dense::new(512).activation(Activation::Relu);
    if regularised {
        hidden = hidden.kernel_regularizer(l2(1e-2));
    }
    m.add(hidden);
    if regularised {
        m.add(Dropout::new(0.5));
    }
    let mut out = Dense::new(10).activation(Activation::Softmax);
    if regularised {
        out = out.kernel_regularizer(l2(1e-2));
    }
    m.add(out);
    m.compile(Loss::CategoricalCrossentropy, Adam::default(), &[Metric::Accuracy]).unwrap();
    let h = m
        .fit(
            &x,
            &y,
            FitOptions {
                batch_size: 32,
                epochs: 60,
                verbose: 0,
                validation_data: Some((&vx, &vy)),
                ..Default::default()
            },
        )
        .unwrap();
    // The gap in cross-entropy alone (reported losses also hold the L2 penalty, as in Keras).
    let penalty: f64 = m.params().filter_map(|p| p.regularizer.map(|r| r.penalty(&p.value) as f64)).sum();
    let train_ce = m.evaluate(&x, &y, 128).unwrap()["loss"] - penalty;
    let val_ce = m.evaluate(&vx, &vy, 128).unwrap()["loss"] - penalty;
    let ce_gap = val_ce - train_ce;
    eprintln!(
        "regularised {regularised}: cross-entropy gap {ce_gap:.3}, accuracy gap {:.3}",
        h.last("accuracy").unwrap() - h.last("val_accuracy").unwrap()
    );
    let acc_gap = h.last("accuracy").unwrap() - h.last("val_accuracy").unwrap();
    (ce_gap, acc_gap)
}

#[test]
fn dropout_and_weight_decay_narrow_the_generalisation_gap() {
    let (plain_loss_gap, plain_acc_gap) = gap(false);
    let (reg_loss_gap, reg_acc_gap) = gap(true);
    assert!(plain_acc_gap > 0.15, "the plain network overfits: accuracy gap {plain_acc_gap}");
    // Validation cross-entropy minus training cross-entropy (penalties excluded).
    assert!(reg_loss_gap < 0.85 * plain_loss_gap, "loss gap {reg_loss_gap} vs {plain_loss_gap}");
    assert!(reg_acc_gap <= plain_acc_gap + 0.02, "accuracy gap {reg_acc_gap} vs {plain_acc_gap}");
}
