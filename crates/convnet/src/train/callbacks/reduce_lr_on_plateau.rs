//! `ReduceLROnPlateau`: lowers the learning rate when a monitored quantity stops improving.

use super::{say, state_usize, Callback, Control, Mode, Monitor};
use crate::error::{Error, Result};
use crate::nn::model::{Logs, Sequential};
use serde_json::{json, Value};

/// Lowers the learning rate when a monitored quantity stops improving (Keras'
/// `ReduceLROnPlateau`: factor 0.1, patience 10, cooldown 0, min_lr 0, min_delta 1e-4).
pub struct ReduceLROnPlateau {
    monitor: Monitor,
    factor: f32,
    patience: usize,
    cooldown: usize,
    min_lr: f32,
    verbose: u8,
    wait: usize,
    /// Keras' message of the last reduction, if any.
    pub last_message: Option<String>,
    cooldown_counter: usize,
}

impl ReduceLROnPlateau {
    /// Watches `monitor` and multiplies the rate by `factor` after `patience` flat epochs.
    pub fn new(monitor: &str, factor: f32, patience: usize) -> Result<Self> {
        if !(factor > 0.0 && factor < 1.0) {
            return Err(Error::config(format!("ReduceLROnPlateau factor must be in (0, 1), not {factor}")));
        }
        Ok(ReduceLROnPlateau {
            monitor: Monitor::new(monitor, Mode::Auto, 1e-4),
            factor,
            patience,
            cooldown: 0,
            min_lr: 0.0,
            verbose: 0,
            wait: 0,
            last_message: None,
            cooldown_counter: 0,
        })
    }

    /// 1 prints Keras' message at each reduction (Keras' default, 0, is silent).
    pub fn verbose(mut self, v: u8) -> Self {
        self.verbose = v;
        self
    }

    /// Epochs to wait after a reduction before watching again.
    pub fn cooldown(mut self, c: usize) -> Self {
        self.cooldown = c;
        self
    }

    /// The lowest learning rate.
    pub fn min_lr(mut self, lr: f32) -> Self {
        self.min_lr = lr;
        self
    }

    /// The smallest change that counts as an improvement.
    pub fn min_delta(mut self, d: f64) -> Self {
        self.monitor.min_delta = d.abs();
        self
    }
}

impl Callback for ReduceLROnPlateau {
    fn logs_learning_rate(&self) -> bool {
        true
    }

    fn on_epoch_end(&mut self, epoch: usize, logs: &Logs, model: &mut Sequential) -> Result<Control> {
        let Some(current) = self.monitor.value(logs) else { return Ok(Control::Continue) };
        if self.cooldown_counter > 0 {
            self.cooldown_counter -= 1;
            self.wait = 0;
        }
        if self.monitor.improved(current) {
            self.monitor.best = current;
            self.wait = 0;
        } else if self.cooldown_counter == 0 {
            self.wait += 1;
            if self.wait >= self.patience {
                if let Some(opt) = model.optimizer_mut() {
                    let old = opt.learning_rate();
                    if old > self.min_lr {
                        // Keras multiplies the f32 rate, read as a Python float, by the
                        // factor's Python float, and prints that product.
                        let new = (f64::from(old) * crate::numbers::decimal(self.factor))
                            .max(crate::numbers::decimal(self.min_lr));
                        opt.set_learning_rate(new as f32);
                        let m = format!(
                            "\nEpoch {}: ReduceLROnPlateau reducing learning rate to {}.",
                            epoch + 1,
                            crate::numbers::python_repr(new)
                        );
                        say(self.verbose, &m);
                        self.last_message = Some(m);
                        self.cooldown_counter = self.cooldown;
                        self.wait = 0;
                    }
                }
            }
        }
        Ok(Control::Continue)
    }

    fn state(&self) -> Option<Value> {
        Some(json!({ "best": self.monitor.best_json(), "wait": self.wait, "cooldown": self.cooldown_counter }))
    }

    fn set_state(&mut self, state: &Value) -> Result<()> {
        self.monitor.set_best(&state["best"]);
        self.wait = state_usize(state, "wait")?;
        self.cooldown_counter = state_usize(state, "cooldown")?;
        Ok(())
    }
}
