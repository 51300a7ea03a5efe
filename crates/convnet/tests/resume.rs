//! Never losing work: checkpoints, interrupts and resuming give exactly the weights of a run
//! that was never stopped; a NaN never reaches a checkpoint.

use convnet::data::augment::ImageDataGenerator;
use convnet::prelude::*;
use convnet::train::callbacks::{EarlyStopping, ReduceLROnPlateau};
use convnet::train::checkpoint::{load_checkpoint, save_checkpoint, TrainState};
use std::sync::atomic::{AtomicBool, Ordering};

fn digits(n: usize) -> (Tensor, Tensor, Tensor, Tensor) {
    let (train, test) = convnet::data::mnist_sample().unwrap();
    let (x, y) = (train.x(), train.y_one_hot(10));
    (x.slice_batch(0, n), y.slice_batch(0, n), test.x().slice_batch(0, 100), test.y_one_hot(10).slice_batch(0, 100))
}

/// A small CNN with dropout, so the model's generator matters after initialisation.
fn model(seed: u64) -> Sequential {
    let mut m = convnet::presets::mnist_cnn().seed(seed);
    m.compile(Loss::CategoricalCrossentropy, Adam::default(), &[Metric::Accuracy]).unwrap();
    m
}

/// Raises the interrupt flag after batch `batch` of epoch `epoch` (both 0-based).
struct InterruptAt<'f> {
    flag: &'f AtomicBool,
    epoch: usize,
    batch: usize,
    current: usize,
}

impl Callback for InterruptAt<'_> {
    fn on_epoch_begin(&mut self, epoch: usize, _m: &mut Sequential) -> Result<()> {
        self.current = epoch;
        Ok(())
    }
    fn on_train_batch_end(&mut self, batch: usize, _l: &Logs, _m: &mut Sequential) -> Result<Control> {
        if self.current == self.epoch && batch == self.batch {
            self.flag.store(true, Ordering::Relaxed);
        }
        Ok(Control::Continue)
    }
}

fn callbacks<'a>() -> Vec<Box<dyn Callback + 'a>> {
    vec![
        Box::new(EarlyStopping::new("val_loss", 5).restore_best_weights(true)),
        Box::new(ReduceLROnPlateau::new("val_loss", 0.5, 1).unwrap()),
    ]
}

/// Interrupted in the middle of epoch 2, then resumed from the checkpoint in a fresh model:
/// the final weights and the whole history equal those of a run that was never stopped.
#[test]
fn resume_mid_epoch_is_bit_identical() {
    let (x, y, vx, vy) = digits(600);
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("run.ckpt");
    let opts = |cbs: Vec<Box<dyn Callback>>| FitOptions {
        batch_size: 64,
        epochs: 3,
        verbose: 0,
        validation_data: Some((&vx, &vy)),
        callbacks: cbs,
        ..Default::default()
    };

    let mut straight = model(3);
    let h_straight = straight.fit(&x, &y, opts(callbacks())).unwrap();

    let flag = AtomicBool::new(false);
    let mut first = model(3);
    let mut cbs = callbacks();
    cbs.push(Box::new(InterruptAt { flag: &flag, epoch: 1, batch: 4, current: 0 }));
    let err = first
        .fit(&x, &y, FitOptions { interrupt: Some(&flag), checkpoint: Some(ckpt.clone()), ..opts(cbs) })
        .unwrap_err();
    match err {
        Error::Interrupted { epoch, batch, checkpoint } => {
            assert_eq!((epoch, batch), (2, 5));
            assert_eq!(checkpoint.as_deref(), Some(ckpt.as_path()));
        }
        other => panic!("expected an interrupt, got {other}"),
    }
    assert_ne!(first.get_weights(), straight.get_weights(), "the interrupted run stopped early");

    let (mut resumed, state) = load_checkpoint(&ckpt).unwrap();
    assert_eq!((state.epoch, state.batch), (1, 5));
    assert_eq!(state.history.epoch, vec![0]);
    let h_resumed = resumed.fit(&x, &y, FitOptions { resume: Some(state), ..opts(callbacks()) }).unwrap();
    assert_eq!(resumed.get_weights(), straight.get_weights(), "weights differ after resuming");
    assert_eq!(h_resumed.history, h_straight.history);
    assert_eq!(
        resumed.optimizer().unwrap().learning_rate(),
        straight.optimizer().unwrap().learning_rate(),
        "ReduceLROnPlateau's state came back"
    );
}

/// Stopping after an epoch (the checkpoint written at every epoch end) and resuming with more
/// epochs equals training the full count at once, with augmentation's generator included.
#[test]
fn resume_at_epoch_end_with_augmentation_is_bit_identical() {
    let (x, y, _, _) = digits(300);
    let x255 = x.clone().scale(255.0);
    let mut gen = ImageDataGenerator::from_spec("rotation=10,width_shift=0.1,zoom=0.1").unwrap();
    gen.rescale = Some(1.0 / 255.0);
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("epochs.ckpt");
    let run =
        |epochs: usize, resume: Option<TrainState>, checkpoint: Option<std::path::PathBuf>, m: &mut Sequential| {
            let mut flow = gen.flow(&x255, &y, 50, true, 11).unwrap();
            m.fit_data(
                &mut flow,
                None,
                FitOptions { batch_size: 50, epochs, verbose: 0, resume, checkpoint, ..Default::default() },
            )
            .unwrap()
        };
    let mut straight = model(5);
    run(3, None, None, &mut straight);

    let mut part = model(5);
    run(2, None, Some(ckpt.clone()), &mut part);
    let (mut resumed, state) = load_checkpoint(&ckpt).unwrap();
    assert_eq!((state.epoch, state.batch), (2, 0));
    assert!(state.data_rng.is_some(), "the augmentation generator is saved");
    let h = run(3, Some(state), None, &mut resumed);
    assert_eq!(h.epoch, vec![0, 1, 2]);
    assert_eq!(resumed.get_weights(), straight.get_weights());
}

/// A checkpoint round-trips its state exactly, and a model file is refused as a checkpoint.
#[test]
fn checkpoint_files_round_trip_and_are_told_apart() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = model(1);
    m.build().unwrap();
    let mut st = TrainState::at_epoch(4, 32, m.rng().clone());
    st.batch = 2;
    st.order = vec![3, 1, 2, 0];
    st.loss_sum_bits = 0.1f64.to_bits();
    st.settings = serde_json::json!({"dataset": "mnist"});
    let p = dir.path().join("c.ckpt");
    save_checkpoint(&m, &st, &p).unwrap();
    let (back, st2) = load_checkpoint(&p).unwrap();
    assert_eq!(st2, st);
    assert_eq!(back.get_weights(), m.get_weights());

    let plain = dir.path().join("model.safetensors");
    convnet::io::save_model(&m, &plain).unwrap();
    let err = load_checkpoint(&plain).unwrap_err().to_string();
    assert!(err.contains("not a checkpoint"), "{err}");
    std::fs::write(&p, b"garbage").unwrap();
    assert!(load_checkpoint(&p).is_err());
}

/// A loss that becomes NaN stops training with the epoch and batch named, and the checkpoint
/// on disk stays the last good one; asked to go on, training goes on without writing NaNs.
#[test]
fn nan_loss_stops_and_never_reaches_a_checkpoint() {
    let (x, y, _, _) = digits(256);
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("nan.ckpt");
    let mut m = convnet::presets::lenet5().seed(2);
    m.compile(Loss::MeanSquaredError, Sgd::default(), &[]).unwrap();
    m.fit(
        &x,
        &y,
        FitOptions { batch_size: 64, epochs: 1, verbose: 0, checkpoint: Some(ckpt.clone()), ..Default::default() },
    )
    .unwrap();
    let good = std::fs::read(&ckpt).unwrap();
    m.optimizer_mut().unwrap().set_learning_rate(1e30);
    let err = m
        .fit(
            &x,
            &y,
            FitOptions {
                batch_size: 64,
                epochs: 3,
                initial_epoch: 1,
                verbose: 0,
                checkpoint: Some(ckpt.clone()),
                ..Default::default()
            },
        )
        .unwrap_err();
    match err {
        Error::NonFinite { epoch, batch, .. } => assert!(epoch == 2 && (1..=4).contains(&batch), "{epoch} {batch}"),
        other => panic!("expected a non-finite loss, got {other}"),
    }
    assert_eq!(std::fs::read(&ckpt).unwrap(), good, "the good checkpoint is untouched");

    let h = m
        .fit(
            &x,
            &y,
            FitOptions {
                batch_size: 64,
                epochs: 2,
                verbose: 0,
                stop_on_non_finite: false,
                checkpoint: Some(ckpt.clone()),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(h.epoch.len(), 2, "training went on as asked");
    assert_eq!(std::fs::read(&ckpt).unwrap(), good, "no checkpoint with NaN weights was written");
    let (restored, _) = load_checkpoint(&ckpt).unwrap();
    assert!(restored.get_weights().iter().all(|w| w.data().iter().all(|v| v.is_finite())));
}
