//! `ModelCheckpoint`: saves the model (or its weights) after epochs, optionally only the best.

use super::{format_filepath, say, weights_finite, Callback, Control, Mode, Monitor};
use crate::error::Result;
use crate::io::{save_model, save_weights};
use crate::nn::model::{Logs, Sequential};
use serde_json::{json, Value};
use std::path::PathBuf;

/// Saves the model after every epoch (Keras' `ModelCheckpoint`): `filepath` may hold
/// `{epoch:02d}`-style fields; with `save_best_only`, only when `monitor` improves; with
/// `save_weights_only`, weights alone. The format follows the extension (`.h5`, `.keras`,
/// `.safetensors`, `.weights.h5`). Writes are atomic, and a model with non-finite weights is
/// never written.
pub struct ModelCheckpoint {
    filepath: String,
    monitor: Monitor,
    save_best_only: bool,
    save_weights_only: bool,
    verbose: u8,
    /// Keras' message of the last epoch, if any.
    pub last_message: Option<String>,
    /// Files written so far.
    pub saved: Vec<PathBuf>,
}

impl ModelCheckpoint {
    /// Saves to `filepath` every epoch (Keras' defaults: monitor "val_loss", mode auto).
    pub fn new(filepath: &str) -> Self {
        ModelCheckpoint {
            filepath: filepath.to_string(),
            monitor: Monitor::new("val_loss", Mode::Auto, 0.0),
            save_best_only: false,
            save_weights_only: false,
            verbose: 0,
            last_message: None,
            saved: Vec::new(),
        }
    }

    /// Sets the monitored quantity and its mode.
    pub fn monitor(mut self, monitor: &str, mode: Mode) -> Self {
        self.monitor = Monitor::new(monitor, mode, 0.0);
        self
    }

    /// Saves only when the monitored quantity improves.
    pub fn save_best_only(mut self, on: bool) -> Self {
        self.save_best_only = on;
        self
    }

    /// 1 prints Keras' line at each epoch: saving, improved from … to …, or did not improve
    /// (Keras' default, 0, is silent).
    pub fn verbose(mut self, v: u8) -> Self {
        self.verbose = v;
        self
    }

    /// Saves only the weights.
    pub fn save_weights_only(mut self, on: bool) -> Self {
        self.save_weights_only = on;
        self
    }
}

impl Callback for ModelCheckpoint {
    fn on_epoch_end(&mut self, epoch: usize, logs: &Logs, model: &mut Sequential) -> Result<Control> {
        let e = epoch + 1;
        let improved_from = if self.save_best_only {
            let Some(v) = self.monitor.value(logs) else { return Ok(Control::Continue) };
            // Keras starts from `None`; convnet's monitor starts from an infinite best.
            let best = self.monitor.best;
            let best = if best.is_finite() { format!("{best:.5}") } else { "None".into() };
            let name = &self.monitor.name;
            if !self.monitor.improved(v) {
                let m = format!("\nEpoch {e}: {name} did not improve from {best}");
                say(self.verbose, &m);
                self.last_message = Some(m);
                return Ok(Control::Continue);
            }
            self.monitor.best = v;
            Some(format!("{name} improved from {best} to {v:.5}, "))
        } else {
            None
        };
        let path = PathBuf::from(format_filepath(&self.filepath, epoch, logs)?);
        let message = format!("\nEpoch {e}: {}saving model to {}", improved_from.unwrap_or_default(), path.display());
        if !weights_finite(model) {
            return Ok(Control::Continue);
        }
        say(self.verbose, &message);
        self.last_message = Some(message);
        if self.save_weights_only {
            save_weights(model, &path)?;
        } else {
            save_model(model, &path)?;
        }
        self.saved.push(path);
        Ok(Control::Continue)
    }

    fn state(&self) -> Option<Value> {
        Some(json!({ "best": self.monitor.best_json() }))
    }

    fn set_state(&mut self, state: &Value) -> Result<()> {
        self.monitor.set_best(&state["best"]);
        Ok(())
    }
}
