//! Callbacks: code that runs at the stages of `fit`, with Keras' names and options
//! (`ModelCheckpoint`, `EarlyStopping`, `ReduceLROnPlateau`, `LearningRateScheduler`,
//! `CSVLogger`, `TerminateOnNaN`), and the progress logger that prints Keras' training lines.

use crate::error::{Error, Result};
use crate::fit::{emit, keras_value, History};
use crate::model::{Logs, Sequential};
use crate::tensor::Tensor;
use serde_json::{json, Value};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

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
}

/// Prints Keras' progress: `Epoch 1/10`, a live bar (verbose 1 on a terminal) and the epoch's
/// line `469/469 - 3s - 6ms/step - accuracy: 0.9123 - loss: 0.2345 - val_…`.
pub struct ProgbarLogger {
    verbose: u8,
    to_stderr: bool,
    live: bool,
    epochs: usize,
    steps: usize,
    start: Instant,
    last_draw: Instant,
    width: usize,
}

impl ProgbarLogger {
    /// A logger for `verbose` 1 (bar) or 2 (one line per epoch), on stdout or stderr. The bar is
    /// drawn only when the stream is a terminal; otherwise verbose 1 prints like verbose 2.
    pub fn new(verbose: u8, to_stderr: bool) -> Self {
        let tty = if to_stderr { std::io::stderr().is_terminal() } else { std::io::stdout().is_terminal() };
        ProgbarLogger {
            verbose,
            to_stderr,
            live: verbose == 1 && tty,
            epochs: 0,
            steps: 0,
            start: Instant::now(),
            last_draw: Instant::now(),
            width: 0,
        }
    }

    fn metrics(logs: &Logs) -> String {
        let mut s = String::new();
        for (k, v) in logs {
            s += &format!(" - {k}: {}", keras_value(*v));
        }
        s
    }

    /// The finished epoch's line, as Keras prints it with verbose 2.
    pub fn epoch_line(steps: usize, seconds: f64, logs: &Logs) -> String {
        let per_step = seconds / steps.max(1) as f64;
        format!("{steps}/{steps} - {seconds:.0}s -{}{}\n", format_time(per_step), Self::metrics(logs))
    }

    fn bar(&self, current: usize) -> String {
        let width = 20;
        let done = width * current / self.steps.max(1);
        let digits = self.steps.to_string().len();
        format!(
            "\x1b[1m{current:>digits$}/{}\x1b[0m \x1b[32m{}\x1b[0m\x1b[37m{}\x1b[0m",
            self.steps,
            "━".repeat(done),
            "━".repeat(width - done)
        )
    }

    fn draw(&mut self, text: String, visible: usize, end: bool) {
        let pad = self.width.saturating_sub(visible);
        let mut s = format!("\r{text}{}", " ".repeat(pad));
        if end {
            s.push('\n');
        }
        self.width = visible;
        emit(self.to_stderr, &s);
    }
}

/// Keras' time-per-step: ` 1s/step`, ` 6ms/step` or ` 950us/step`.
fn format_time(per: f64) -> String {
    if per >= 1.0 || per == 0.0 {
        format!(" {per:.0}s/step")
    } else if per >= 1e-3 {
        format!(" {:.0}ms/step", per * 1e3)
    } else {
        format!(" {:.0}us/step", per * 1e6)
    }
}

impl Callback for ProgbarLogger {
    fn on_train_begin(&mut self, params: &TrainParams, _model: &mut Sequential) -> Result<()> {
        self.epochs = params.epochs;
        self.steps = params.steps;
        Ok(())
    }

    fn on_epoch_begin(&mut self, epoch: usize, _model: &mut Sequential) -> Result<()> {
        if self.epochs > 1 {
            emit(self.to_stderr, &format!("Epoch {}/{}\n", epoch + 1, self.epochs));
        }
        self.start = Instant::now();
        self.last_draw = self.start;
        self.width = 0;
        Ok(())
    }

    fn on_train_batch_end(&mut self, batch: usize, logs: &Logs, _model: &mut Sequential) -> Result<Control> {
        if !self.live {
            return Ok(Control::Continue);
        }
        let now = Instant::now();
        let current = batch + 1;
        if now.duration_since(self.last_draw).as_secs_f64() < 0.05 && current < self.steps {
            return Ok(Control::Continue);
        }
        self.last_draw = now;
        let elapsed = now.duration_since(self.start).as_secs_f64();
        let per = elapsed / current as f64;
        let eta = per * (self.steps - current) as f64;
        let eta_s = if eta > 3600.0 {
            format!("{}:{:02}:{:02}", eta as u64 / 3600, (eta as u64 % 3600) / 60, eta as u64 % 60)
        } else if eta > 60.0 {
            format!("{}:{:02}", eta as u64 / 60, eta as u64 % 60)
        } else {
            format!("{}s", eta as u64)
        };
        let bar = self.bar(current);
        let info = format!(" \x1b[1m{eta_s}\x1b[0m{}{}", format_time(per), Self::metrics(logs));
        let visible = strip_ansi(&bar).chars().count() + strip_ansi(&info).chars().count();
        self.draw(format!("{bar}{info}"), visible, false);
        Ok(Control::Continue)
    }

    fn on_epoch_end(&mut self, _epoch: usize, logs: &Logs, _model: &mut Sequential) -> Result<Control> {
        let elapsed = self.start.elapsed().as_secs_f64();
        if self.live {
            let bar = self.bar(self.steps);
            let per = elapsed / self.steps.max(1) as f64;
            let info = format!(" \x1b[1m{elapsed:.0}s\x1b[0m{}{}", format_time(per), Self::metrics(logs));
            let visible = strip_ansi(&bar).chars().count() + strip_ansi(&info).chars().count();
            self.draw(format!("{bar}{info}"), visible, true);
        } else if self.verbose > 0 {
            emit(self.to_stderr, &Self::epoch_line(self.steps, elapsed, logs));
        }
        Ok(Control::Continue)
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
            crate::io::save_weights(model, &path)?;
        } else {
            crate::io::save_model(model, &path)?;
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

/// Stops training when a monitored quantity stops improving (Keras' `EarlyStopping`).
pub struct EarlyStopping {
    monitor: Monitor,
    patience: usize,
    baseline: Option<f64>,
    restore_best_weights: bool,
    start_from_epoch: usize,
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

/// Lowers the learning rate when a monitored quantity stops improving (Keras'
/// `ReduceLROnPlateau`: factor 0.1, patience 10, cooldown 0, min_lr 0, min_delta 1e-4).
pub struct ReduceLROnPlateau {
    monitor: Monitor,
    factor: f32,
    patience: usize,
    cooldown: usize,
    min_lr: f32,
    wait: usize,
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
            wait: 0,
            cooldown_counter: 0,
        })
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
    fn on_epoch_end(&mut self, _epoch: usize, logs: &Logs, model: &mut Sequential) -> Result<Control> {
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
                        opt.set_learning_rate((old * self.factor).max(self.min_lr));
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

/// Sets the learning rate at the start of every epoch from `schedule(epoch, current_rate)`
/// (Keras' `LearningRateScheduler`).
pub struct LearningRateScheduler {
    schedule: Box<dyn Fn(usize, f32) -> f32 + Send>,
}

impl LearningRateScheduler {
    /// A scheduler calling `schedule(epoch, lr)` (epoch 0-based).
    pub fn new(schedule: impl Fn(usize, f32) -> f32 + Send + 'static) -> Self {
        LearningRateScheduler { schedule: Box::new(schedule) }
    }

    /// From a text form: `step:EVERY:FACTOR` (multiply by FACTOR every EVERY epochs) or
    /// `exp:FACTOR` (multiply by FACTOR every epoch).
    pub fn parse(spec: &str, base_lr: f32) -> Result<Self> {
        let parts: Vec<&str> = spec.split(':').collect();
        let num = |s: &str| s.parse::<f32>().ok().filter(|v| v.is_finite() && *v > 0.0);
        match parts.as_slice() {
            ["step", every, factor] => {
                let every = every.parse::<usize>().ok().filter(|e| *e > 0);
                match (every, num(factor)) {
                    (Some(e), Some(f)) => Ok(Self::new(move |epoch, _| base_lr * f.powi((epoch / e) as i32))),
                    _ => Err(Error::config(format!("--lr-schedule {spec:?}: expected step:EVERY:FACTOR"))),
                }
            }
            ["exp", factor] => match num(factor) {
                Some(f) => Ok(Self::new(move |epoch, _| base_lr * f.powi(epoch as i32))),
                None => Err(Error::config(format!("--lr-schedule {spec:?}: expected exp:FACTOR"))),
            },
            _ => Err(Error::config(format!("--lr-schedule {spec:?}: use step:EVERY:FACTOR or exp:FACTOR"))),
        }
    }
}

impl Callback for LearningRateScheduler {
    fn on_epoch_begin(&mut self, epoch: usize, model: &mut Sequential) -> Result<()> {
        if let Some(opt) = model.optimizer_mut() {
            let lr = (self.schedule)(epoch, opt.learning_rate());
            if !(lr.is_finite() && lr >= 0.0) {
                return Err(Error::config(format!("the learning-rate schedule gave {lr} at epoch {}", epoch + 1)));
            }
            opt.set_learning_rate(lr);
        }
        Ok(())
    }
}

/// Writes the epoch logs to a CSV file after every epoch (Keras' `CSVLogger`), rewriting it
/// atomically so the file is always whole.
pub struct CsvLogger {
    path: PathBuf,
    history: History,
}

impl CsvLogger {
    /// Logs to `path` (appending to what is already there when `append` and it parses).
    pub fn new(path: &Path, append: bool) -> Self {
        let history = if append {
            std::fs::read_to_string(path).ok().and_then(|t| History::from_csv(&t, path).ok()).unwrap_or_default()
        } else {
            History::default()
        };
        CsvLogger { path: path.to_path_buf(), history }
    }
}

impl Callback for CsvLogger {
    fn on_epoch_end(&mut self, epoch: usize, logs: &Logs, _m: &mut Sequential) -> Result<Control> {
        self.history.push(epoch, logs, 0.0);
        crate::io::atomic_write(&self.path, self.history.to_csv().as_bytes())?;
        Ok(Control::Continue)
    }

    fn state(&self) -> Option<Value> {
        serde_json::to_value(&self.history).ok()
    }

    fn set_state(&mut self, state: &Value) -> Result<()> {
        self.history =
            serde_json::from_value(state.clone()).map_err(|e| Error::config(format!("CSVLogger state: {e}")))?;
        Ok(())
    }
}

/// Stops training as soon as the loss is NaN or infinite (Keras' `TerminateOnNaN`), without
/// an error; use it with `FitOptions::stop_on_non_finite` off.
#[derive(Default)]
pub struct TerminateOnNaN {
    /// `(epoch, batch)` (0-based) where the loss went bad, if it did.
    pub terminated_at: Option<(usize, usize)>,
    epoch: usize,
}

impl Callback for TerminateOnNaN {
    fn on_epoch_begin(&mut self, epoch: usize, _m: &mut Sequential) -> Result<()> {
        self.epoch = epoch;
        Ok(())
    }

    fn on_train_batch_end(&mut self, batch: usize, logs: &Logs, _m: &mut Sequential) -> Result<Control> {
        if logs.get("loss").is_some_and(|l| !l.is_finite()) {
            self.terminated_at = Some((self.epoch, batch));
            emit(true, &format!("Batch {batch}: Invalid loss, terminating training\n"));
            return Ok(Control::Stop);
        }
        Ok(Control::Continue)
    }
}

/// `text` without ANSI colour sequences (for width computations).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
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
        assert!(LearningRateScheduler::parse("step:10:0.5", 0.1).is_ok());
        assert!(LearningRateScheduler::parse("cosine", 0.1).is_err());
    }

    #[test]
    fn verbose_two_line_matches_keras() {
        let mut logs = Logs::new();
        logs.insert("loss".into(), 0.43314);
        logs.insert("accuracy".into(), 0.871234);
        logs.insert("val_loss".into(), 0.10661);
        logs.insert("val_accuracy".into(), 0.9677);
        assert_eq!(
            ProgbarLogger::epoch_line(469, 2.6, &logs),
            "469/469 - 3s - 6ms/step - accuracy: 0.8712 - loss: 0.4331 - val_accuracy: 0.9677 - val_loss: 0.1066\n"
        );
        assert_eq!(format_time(1.4), " 1s/step");
        assert_eq!(format_time(0.0004), " 400us/step");
        assert_eq!(strip_ansi("\x1b[1m12/34\x1b[0m x"), "12/34 x");
    }
}
