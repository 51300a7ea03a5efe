//! `ModelCheckpoint`: saves the model (or its weights) after epochs, optionally only the best.

use super::{format_filepath, weights_finite, Callback, Control, Mode, Monitor};
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

    /// Saves only the weights.
    pub fn save_weights_only(mut self, on: bool) -> Self {
        self.save_weights_only = on;
        self
    }
}

impl Callback for ModelCheckpoint {
    fn on_epoch_end(&mut self, epoch: usize, logs: &Logs, model: &mut Sequential) -> Result<Control> {
        if self.save_best_only {
            match self.monitor.value(logs) {
                Some(v) if self.monitor.improved(v) => self.monitor.best = v,
                _ => return Ok(Control::Continue),
            }
        }
        if !weights_finite(model) {
            return Ok(Control::Continue);
        }
        let path = PathBuf::from(format_filepath(&self.filepath, epoch, logs)?);
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
