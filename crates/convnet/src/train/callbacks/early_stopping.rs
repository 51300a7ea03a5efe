//! `EarlyStopping`: stops training when a monitored quantity stops improving, optionally
//! restoring the best weights.

use super::{say, state_usize, Callback, Control, Mode, Monitor, TrainParams};
use crate::error::{Error, Result};
use crate::nn::model::{Logs, Sequential};
use crate::tensor::Tensor;
use serde_json::{json, Value};

/// Stops training when a monitored quantity stops improving (Keras' `EarlyStopping`).
pub struct EarlyStopping {
    monitor: Monitor,
    patience: usize,
    baseline: Option<f64>,
    restore_best_weights: bool,
    start_from_epoch: usize,
    verbose: u8,
    wait: usize,
    best_weights: Option<Vec<Tensor>>,
    /// Epoch (0-based) at which training was stopped, if it was.
    pub stopped_epoch: Option<usize>,
    /// Epoch (0-based) of the best value.
    pub best_epoch: Option<usize>,
}

impl EarlyStopping {
    /// Watches `monitor` (Keras' default "val_loss") with `patience` epochs of no improvement.
    pub fn new(monitor: &str, patience: usize) -> Self {
        EarlyStopping {
            monitor: Monitor::new(monitor, Mode::Auto, 0.0),
            patience,
            baseline: None,
            restore_best_weights: false,
            start_from_epoch: 0,
            verbose: 0,
            wait: 0,
            best_weights: None,
            stopped_epoch: None,
            best_epoch: None,
        }
    }

    /// Sets the smallest change that counts as an improvement.
    pub fn min_delta(mut self, d: f64) -> Self {
        self.monitor.min_delta = d.abs();
        self
    }

    /// Sets the direction of improvement.
    pub fn mode(mut self, mode: Mode) -> Self {
        self.monitor = Monitor::new(&self.monitor.name.clone(), mode, self.monitor.min_delta);
        self
    }

    /// A value the monitor must beat for patience to reset.
    pub fn baseline(mut self, b: f64) -> Self {
        self.baseline = Some(b);
        self
    }

    /// Restores the best epoch's weights when training ends.
    pub fn restore_best_weights(mut self, on: bool) -> Self {
        self.restore_best_weights = on;
        self
    }

    /// 1 prints Keras' messages when training stops and when the best weights come back
    /// (Keras' default, 0, is silent).
    pub fn verbose(mut self, v: u8) -> Self {
        self.verbose = v;
        self
    }

    /// What Keras prints when training ends: the epoch that stopped it, the best epoch restored.
    pub fn end_messages(&self) -> Vec<String> {
        let mut m = Vec::new();
        if let Some(e) = self.stopped_epoch.filter(|&e| e > 0) {
            m.push(format!("Epoch {}: early stopping", e + 1));
        }
        if let (true, Some(_), Some(b)) = (self.restore_best_weights, &self.best_weights, self.best_epoch) {
            m.push(format!("Restoring model weights from the end of the best epoch: {}.", b + 1));
        }
        m
    }

    /// Epochs to wait before watching at all.
    pub fn start_from_epoch(mut self, e: usize) -> Self {
        self.start_from_epoch = e;
        self
    }
}

impl Callback for EarlyStopping {
    fn on_train_begin(&mut self, _p: &TrainParams, _m: &mut Sequential) -> Result<()> {
        self.wait = 0;
        self.stopped_epoch = None;
        self.best_weights = None;
        self.monitor.best = if self.monitor.maximise { f64::NEG_INFINITY } else { f64::INFINITY };
        Ok(())
    }

    fn on_epoch_end(&mut self, epoch: usize, logs: &Logs, model: &mut Sequential) -> Result<Control> {
        let Some(current) = self.monitor.value(logs) else { return Ok(Control::Continue) };
        if epoch < self.start_from_epoch {
            return Ok(Control::Continue);
        }
        if self.restore_best_weights && self.best_weights.is_none() {
            self.best_weights = Some(model.get_weights());
            self.best_epoch = Some(epoch);
        }
        self.wait += 1;
        if self.monitor.improved(current) {
            self.monitor.best = current;
            self.best_epoch = Some(epoch);
            if self.restore_best_weights {
                self.best_weights = Some(model.get_weights());
            }
            let beats_baseline = self.baseline.is_none_or(|b| {
                if self.monitor.maximise {
                    current > b + self.monitor.min_delta
                } else {
                    current < b - self.monitor.min_delta
                }
            });
            if beats_baseline {
                self.wait = 0;
            }
            return Ok(Control::Continue);
        }
        if self.wait >= self.patience && epoch > 0 {
            self.stopped_epoch = Some(epoch);
            return Ok(Control::Stop);
        }
        Ok(Control::Continue)
    }

    fn on_train_end(&mut self, model: &mut Sequential) {
        for m in self.end_messages() {
            say(self.verbose, &m);
        }
        if let (true, Some(w)) = (self.restore_best_weights, &self.best_weights) {
            // The weights came from this model, so their shapes fit.
            let _ = model.set_weights(w);
        }
    }

    fn state(&self) -> Option<Value> {
        // Weights go in as bit patterns so they come back exactly.
        let best_weights = self.best_weights.as_ref().map(|ws| {
            ws.iter()
                .map(|t| json!({ "shape": t.shape(), "bits": t.data().iter().map(|v| v.to_bits()).collect::<Vec<u32>>() }))
                .collect::<Vec<Value>>()
        });
        Some(json!({
            "best": self.monitor.best_json(),
            "wait": self.wait,
            "best_epoch": self.best_epoch,
            "best_weights": best_weights,
        }))
    }

    fn set_state(&mut self, state: &Value) -> Result<()> {
        self.monitor.set_best(&state["best"]);
        self.wait = state_usize(state, "wait")?;
        self.best_epoch = state["best_epoch"].as_u64().map(|v| v as usize);
        self.best_weights = match state["best_weights"].as_array() {
            None => None,
            Some(list) => Some(
                list.iter()
                    .map(|w| {
                        let shape: Vec<usize> = serde_json::from_value(w["shape"].clone())
                            .map_err(|e| Error::config(format!("EarlyStopping state: {e}")))?;
                        let bits: Vec<u32> = serde_json::from_value(w["bits"].clone())
                            .map_err(|e| Error::config(format!("EarlyStopping state: {e}")))?;
                        Tensor::from_vec(&shape, bits.into_iter().map(f32::from_bits).collect())
                    })
                    .collect::<Result<Vec<Tensor>>>()?,
            ),
        };
        Ok(())
    }
}
