//! Callbacks: code that runs at the stages of `fit`, with Keras' names and options, one file
//! each: [`ModelCheckpoint`], [`EarlyStopping`], [`ReduceLROnPlateau`],
//! [`LearningRateScheduler`], [`CsvLogger`] (Keras' `CSVLogger`), [`TerminateOnNaN`]. Keras'
//! progress output is a callback too ([`crate::train::progress::ProgbarLogger`]). This file
//! holds the [`Callback`] trait and what several callbacks share: the monitored quantity and
//! its [`Mode`], checkpoint file patterns.

mod csv_logger;
mod early_stopping;
mod lr_scheduler;
mod model_checkpoint;
mod reduce_lr_on_plateau;
mod terminate_on_nan;

pub use csv_logger::CsvLogger;
pub use early_stopping::EarlyStopping;
pub use lr_scheduler::LearningRateScheduler;
pub use model_checkpoint::ModelCheckpoint;
pub use reduce_lr_on_plateau::ReduceLROnPlateau;
pub use terminate_on_nan::TerminateOnNaN;

use crate::error::{Error, Result};
use crate::nn::model::{Logs, Sequential};
use serde_json::{json, Value};

/// What `fit` tells callbacks when training starts.
#[derive(Clone, Copy, Debug)]
pub struct TrainParams {
    /// Number of epochs `fit` will run to.
    pub epochs: usize,
    /// Batches per epoch.
    pub steps: usize,
    /// Training samples per epoch.
    pub samples: usize,
    /// Samples per batch.
    pub batch_size: usize,
}

/// A callback's answer: go on, or stop training after this point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    /// Keep training.
    Continue,
    /// Stop training (as Keras' `model.stop_training = True`).
    Stop,
}

/// Hooks into the training loop. Every method has a default that does nothing. (Training runs
/// on the engine's worker threads, so callbacks must be `Send`.)
pub trait Callback: Send {
    /// Before the first epoch.
    fn on_train_begin(&mut self, _params: &TrainParams, _model: &mut Sequential) -> Result<()> {
        Ok(())
    }
    /// At the start of epoch `epoch` (0-based).
    fn on_epoch_begin(&mut self, _epoch: usize, _model: &mut Sequential) -> Result<()> {
        Ok(())
    }
    /// After batch `batch` (0-based) with the epoch's running logs.
    fn on_train_batch_end(&mut self, _batch: usize, _logs: &Logs, _model: &mut Sequential) -> Result<Control> {
        Ok(Control::Continue)
    }
    /// After epoch `epoch` with its logs (validation metrics included).
    fn on_epoch_end(&mut self, _epoch: usize, _logs: &Logs, _model: &mut Sequential) -> Result<Control> {
        Ok(Control::Continue)
    }
    /// When training ends, normally or not.
    fn on_train_end(&mut self, _model: &mut Sequential) {}
    /// The callback's running state, kept in checkpoints (default: it has none).
    fn state(&self) -> Option<Value> {
        None
    }
    /// Restores a state from [`Callback::state`] when training resumes.
    fn set_state(&mut self, _state: &Value) -> Result<()> {
        Ok(())
    }
    /// Whether the epoch logs (and so the history) should carry the epoch's `learning_rate`,
    /// as Keras 3's ReduceLROnPlateau and LearningRateScheduler add it (default: no).
    fn logs_learning_rate(&self) -> bool {
        false
    }
}

/// Prints a callback's message on stdout as Keras' `print_msg` does, when `verbose` > 0.
pub(crate) fn say(verbose: u8, message: &str) {
    if verbose > 0 {
        println!("{message}");
    }
}

/// Whether a monitored quantity improves upwards or downwards (Keras' `mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Mode {
    /// `max` for names with "acc" in them, `min` otherwise.
    #[default]
    Auto,
    /// Smaller is better.
    Min,
    /// Larger is better.
    Max,
}

impl Mode {
    /// Parses `auto`, `min`, `max`.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(Mode::Auto),
            "min" => Ok(Mode::Min),
            "max" => Ok(Mode::Max),
            other => Err(Error::config(format!("mode must be auto, min or max, not {other:?}"))),
        }
    }

    /// True when larger values are better for `monitor`.
    fn maximise(self, monitor: &str) -> bool {
        match self {
            Mode::Max => true,
            Mode::Min => false,
            Mode::Auto => monitor.contains("acc") || monitor.starts_with("fmeasure"),
        }
    }
}

/// Tracks the best value of a monitored quantity.
#[derive(Clone, Debug)]
struct Monitor {
    name: String,
    maximise: bool,
    min_delta: f64,
    best: f64,
}

impl Monitor {
    fn new(name: &str, mode: Mode, min_delta: f64) -> Self {
        let maximise = mode.maximise(name);
        Monitor {
            name: name.to_string(),
            maximise,
            min_delta: min_delta.abs(),
            best: if maximise { f64::NEG_INFINITY } else { f64::INFINITY },
        }
    }

    fn improved(&self, current: f64) -> bool {
        if self.maximise {
            current > self.best + self.min_delta
        } else {
            current < self.best - self.min_delta
        }
    }

    fn value(&self, logs: &Logs) -> Option<f64> {
        logs.get(&self.name).copied().filter(|v| v.is_finite())
    }

    /// The best value for a checkpoint (null while there is none).
    fn best_json(&self) -> Value {
        if self.best.is_finite() {
            json!(self.best)
        } else {
            Value::Null
        }
    }

    /// Restores the best value from [`Monitor::best_json`].
    fn set_best(&mut self, v: &Value) {
        self.best = v.as_f64().unwrap_or(if self.maximise { f64::NEG_INFINITY } else { f64::INFINITY });
    }
}

/// Reads a non-negative integer field of a callback state.
fn state_usize(state: &Value, key: &str) -> Result<usize> {
    state
        .get(key)
        .and_then(Value::as_u64)
        .map(|v| v as usize)
        .ok_or_else(|| Error::config(format!("callback state lacks {key}")))
}

/// Formats Keras' checkpoint file patterns: `{epoch:02d}`, `{val_loss:.2f}` and plain
/// `{name}` fields, with `epoch` counted from 1.
pub fn format_filepath(pattern: &str, epoch: usize, logs: &Logs) -> Result<String> {
    let mut out = String::new();
    let mut rest = pattern;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close =
            rest[open..].find('}').ok_or_else(|| Error::config(format!("unclosed {{ in file pattern {pattern:?}")))?;
        let field = &rest[open + 1..open + close];
        let (name, spec) = field.split_once(':').unwrap_or((field, ""));
        let value = if name == "epoch" {
            (epoch + 1) as f64
        } else {
            *logs.get(name).ok_or_else(|| {
                Error::config(format!("file pattern {pattern:?} names {name:?}, which the logs do not have"))
            })?
        };
        let text = if let Some(d) = spec.strip_suffix('d') {
            let width: usize = d.trim_start_matches('0').parse().unwrap_or(0);
            if d.starts_with('0') {
                format!("{:0width$}", value as i64)
            } else {
                format!("{:width$}", value as i64)
            }
        } else if let Some(p) = spec.strip_prefix('.').and_then(|p| p.strip_suffix('f')) {
            format!("{value:.prec$}", prec = p.parse().unwrap_or(6))
        } else if name == "epoch" {
            format!("{}", value as i64)
        } else {
            format!("{value}")
        };
        out.push_str(&text);
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// True when every weight of the model is finite (a NaN never reaches a checkpoint).
fn weights_finite(model: &Sequential) -> bool {
    model.params().all(|p| p.value.iter().all(|v| v.is_finite()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_patterns_format_like_keras() {
        let mut logs = Logs::new();
        logs.insert("val_loss".into(), 0.123456);
        logs.insert("accuracy".into(), 0.9);
        assert_eq!(format_filepath("w.{epoch:02d}-{val_loss:.2f}.h5", 4, &logs).unwrap(), "w.05-0.12.h5");
        assert_eq!(format_filepath("m_{epoch}.keras", 0, &logs).unwrap(), "m_1.keras");
        assert_eq!(format_filepath("plain.h5", 3, &logs).unwrap(), "plain.h5");
        assert!(format_filepath("w.{nope}.h5", 0, &logs).is_err());
        assert!(format_filepath("w.{epoch.h5", 0, &logs).is_err());
    }

    #[test]
    fn monitors_pick_their_direction() {
        assert!(Monitor::new("val_accuracy", Mode::Auto, 0.0).maximise);
        assert!(!Monitor::new("val_loss", Mode::Auto, 0.0).maximise);
        let mut m = Monitor::new("val_loss", Mode::Auto, 0.1);
        m.best = 1.0;
        assert!(m.improved(0.85) && !m.improved(0.95));
    }

    /// Keras' own lines, word for word (from keras/src/callbacks/*.py, Keras 3.15): the epoch
    /// that stopped, the best epoch restored, each learning-rate cut, each checkpoint.
    #[test]
    fn verbose_callbacks_say_what_keras_says() {
        use crate::nn::layers::Dense;
        let mut model = Sequential::new();
        model.add(Dense::new(2).input_shape([3]));
        model.compile(crate::Loss::CategoricalCrossentropy, crate::Adam::default(), &[]).unwrap();
        model.build().unwrap();
        let params = TrainParams { epochs: 20, steps: 1, samples: 1, batch_size: 1 };
        let losses = [0.9, 0.5, 0.6, 0.7, 0.8];
        let logs = |v: f64| -> Logs { [("val_loss".to_string(), v)].into_iter().collect() };

        let mut es = EarlyStopping::new("val_loss", 3).restore_best_weights(true).verbose(1);
        es.on_train_begin(&params, &mut model).unwrap();
        let stops: Vec<Control> =
            losses.iter().enumerate().map(|(e, &v)| es.on_epoch_end(e, &logs(v), &mut model).unwrap()).collect();
        assert_eq!(stops.last(), Some(&Control::Stop));
        assert_eq!(
            es.end_messages(),
            ["Epoch 5: early stopping", "Restoring model weights from the end of the best epoch: 2."]
        );

        let mut rl = ReduceLROnPlateau::new("val_loss", 0.5, 1).unwrap().verbose(1);
        for (e, &v) in losses.iter().enumerate().take(3) {
            rl.on_epoch_end(e, &logs(v), &mut model).unwrap();
        }
        // Keras: float(np.float32(0.001)) * 0.5, printed by Python.
        assert_eq!(
            rl.last_message.as_deref(),
            Some("\nEpoch 3: ReduceLROnPlateau reducing learning rate to 0.0005000000237487257.")
        );
        assert_eq!(model.optimizer().unwrap().learning_rate(), 0.0005);

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("best.safetensors");
        let mut mc = ModelCheckpoint::new(&path.to_string_lossy()).save_best_only(true).verbose(1);
        mc.on_epoch_end(0, &logs(0.9), &mut model).unwrap();
        let shown = path.display();
        assert_eq!(
            mc.last_message,
            Some(format!("\nEpoch 1: val_loss improved from None to 0.90000, saving model to {shown}"))
        );
        mc.on_epoch_end(1, &logs(0.5), &mut model).unwrap();
        assert_eq!(
            mc.last_message,
            Some(format!("\nEpoch 2: val_loss improved from 0.90000 to 0.50000, saving model to {shown}"))
        );
        mc.on_epoch_end(2, &logs(0.6), &mut model).unwrap();
        assert_eq!(mc.last_message.as_deref(), Some("\nEpoch 3: val_loss did not improve from 0.50000"));
        let mut every = ModelCheckpoint::new(&path.to_string_lossy()).verbose(1);
        every.on_epoch_end(6, &logs(0.6), &mut model).unwrap();
        assert_eq!(every.last_message, Some(format!("\nEpoch 7: saving model to {shown}")));
    }
}
