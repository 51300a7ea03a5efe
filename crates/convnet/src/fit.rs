//! `fit`: the training loop with Keras' options (batch size, epochs, validation data or split,
//! shuffling, verbosity, callbacks) and the `History` it returns.

use crate::callbacks::{Callback, Control, ProgbarLogger};
use crate::checkpoint::{save_checkpoint, TrainState};
use crate::error::{Error, Result};
use crate::model::{Logs, Sequential, Tally};
use crate::rng::Rng;
use crate::tensor::Tensor;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::Path;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// A source of training batches: plain tensors, or a generator that augments them. (Training
/// runs on the engine's worker threads, so sources must be `Send`.)
pub trait TrainData: Send {
    /// Number of samples in an epoch.
    fn len(&self) -> usize;
    /// True when there are no samples.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Per-sample input shape.
    fn input_shape(&self) -> &[usize];
    /// Writes samples `indices` into `x` and their targets into `y` (both resized to fit).
    fn fill(&mut self, indices: &[usize], x: &mut Tensor, y: &mut Tensor) -> Result<()>;
    /// Checks the data against the model before training starts (default: nothing).
    fn check(&self, _model: &mut Sequential) -> Result<()> {
        Ok(())
    }
    /// The source's random generator, for checkpoints (default: it has none).
    fn rng_state(&self) -> Option<Rng> {
        None
    }
    /// Restores the generator saved by [`TrainData::rng_state`].
    fn set_rng_state(&mut self, _rng: Rng) {}
}

/// Training data held in two tensors, `x` (inputs) and `y` (targets), optionally restricted
/// to the first `len` samples (the part `validation_split` leaves for training).
pub struct TensorData<'a> {
    x: &'a Tensor,
    y: &'a Tensor,
    len: usize,
}

impl<'a> TensorData<'a> {
    /// All samples of `x` and `y`.
    pub fn new(x: &'a Tensor, y: &'a Tensor) -> Self {
        TensorData { x, y, len: x.batch() }
    }
}

impl TrainData for TensorData<'_> {
    fn len(&self) -> usize {
        self.len
    }

    fn input_shape(&self) -> &[usize] {
        &self.x.shape()[1..]
    }

    fn fill(&mut self, indices: &[usize], x: &mut Tensor, y: &mut Tensor) -> Result<()> {
        self.x.gather_into(indices, x);
        self.y.gather_into(indices, y);
        Ok(())
    }

    fn check(&self, model: &mut Sequential) -> Result<()> {
        let n = model.check_input(self.x)?;
        model.check_targets(self.y, n)
    }
}

/// Keras' `fit` arguments, with Keras' defaults.
pub struct FitOptions<'a> {
    /// Samples per gradient step (Keras' default 32).
    pub batch_size: usize,
    /// Last epoch to train (epochs run `initial_epoch..epochs`).
    pub epochs: usize,
    /// 0 = silent, 1 = progress bar, 2 = one line per epoch.
    pub verbose: u8,
    /// Fraction of the data (taken from the end, before shuffling) held out for validation.
    pub validation_split: f32,
    /// Data to evaluate at the end of every epoch (takes precedence over the split).
    pub validation_data: Option<(&'a Tensor, &'a Tensor)>,
    /// Shuffle the training samples before every epoch.
    pub shuffle: bool,
    /// Epoch to start from (for resuming).
    pub initial_epoch: usize,
    /// Callbacks, called in order.
    pub callbacks: Vec<Box<dyn Callback + 'a>>,
    /// Where progress goes: standard output (Keras' behaviour) or standard error.
    pub progress_to_stderr: bool,
    /// Stop with [`Error::NonFinite`] when the loss becomes NaN or infinite (default); when
    /// off, training goes on (and no checkpoint with non-finite weights is written).
    pub stop_on_non_finite: bool,
    /// Checked after every batch: when set, training stops, writes `checkpoint` (if given)
    /// and returns [`Error::Interrupted`].
    pub interrupt: Option<&'a AtomicBool>,
    /// Write a checkpoint here on interrupt, and after every epoch unless
    /// `checkpoint_each_epoch` is off.
    pub checkpoint: Option<PathBuf>,
    /// Write `checkpoint` after every epoch too (default), not only on interrupt.
    pub checkpoint_each_epoch: bool,
    /// Continue from this state (read with [`crate::checkpoint::load_checkpoint`]) instead
    /// of starting at `initial_epoch`.
    pub resume: Option<TrainState>,
    /// Stored in every checkpoint's state as `settings` (the command line keeps its
    /// arguments here).
    pub settings: serde_json::Value,
}

impl Default for FitOptions<'_> {
    fn default() -> Self {
        FitOptions {
            batch_size: 32,
            epochs: 1,
            verbose: 1,
            validation_split: 0.0,
            validation_data: None,
            shuffle: true,
            initial_epoch: 0,
            callbacks: Vec::new(),
            progress_to_stderr: false,
            stop_on_non_finite: true,
            interrupt: None,
            checkpoint: None,
            checkpoint_each_epoch: true,
            resume: None,
            settings: serde_json::Value::Null,
        }
    }
}

/// Per-epoch metrics of a `fit` (Keras' `History.history`), plus seconds per epoch.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    /// Epoch numbers, 0-based as Keras counts them.
    pub epoch: Vec<usize>,
    /// Metric name → one value per epoch (`loss`, `accuracy`, `val_loss`, …).
    pub history: std::collections::BTreeMap<String, Vec<f64>>,
    /// Wall-clock seconds of each epoch (training and validation).
    pub seconds: Vec<f64>,
}

impl History {
    /// Values of metric `name`, one per epoch.
    pub fn get(&self, name: &str) -> Option<&[f64]> {
        self.history.get(name).map(Vec::as_slice)
    }

    /// The last value of metric `name`.
    pub fn last(&self, name: &str) -> Option<f64> {
        self.get(name).and_then(|v| v.last().copied())
    }

    /// Appends one epoch's logs.
    pub fn push(&mut self, epoch: usize, logs: &Logs, seconds: f64) {
        self.epoch.push(epoch);
        self.seconds.push(seconds);
        for (k, v) in logs {
            self.history.entry(k.clone()).or_default().push(*v);
        }
    }

    /// CSV with a header `epoch,<metrics…>` and one row per epoch (Keras' CSVLogger layout).
    pub fn to_csv(&self) -> String {
        let keys: Vec<&String> = self.history.keys().collect();
        let mut s = String::from("epoch");
        for k in &keys {
            s.push(',');
            s.push_str(k);
        }
        s.push('\n');
        for (i, e) in self.epoch.iter().enumerate() {
            s.push_str(&e.to_string());
            for k in &keys {
                s.push(',');
                if let Some(v) = self.history[*k].get(i) {
                    s.push_str(&format!("{v}"));
                }
            }
            s.push('\n');
        }
        s
    }

    /// Parses the CSV written by [`History::to_csv`] (or Keras' CSVLogger).
    pub fn from_csv(text: &str, path: &Path) -> Result<Self> {
        let mut lines = text.lines().filter(|l| !l.trim().is_empty());
        let header: Vec<&str> =
            lines.next().ok_or_else(|| Error::format(path, "empty history file"))?.split(',').map(str::trim).collect();
        if header.first() != Some(&"epoch") {
            return Err(Error::format(path, "a history CSV starts with an `epoch` column"));
        }
        let mut h = History::default();
        for (ln, line) in lines.enumerate() {
            let cells: Vec<&str> = line.split(',').map(str::trim).collect();
            if cells.len() != header.len() {
                return Err(Error::format(
                    path,
                    format!("row {} has {} cells, the header {}", ln + 2, cells.len(), header.len()),
                ));
            }
            let epoch: usize = cells[0]
                .parse()
                .map_err(|_| Error::format(path, format!("row {}: epoch {:?} is not a number", ln + 2, cells[0])))?;
            h.epoch.push(epoch);
            for (k, c) in header.iter().zip(&cells).skip(1) {
                let v: f64 = c
                    .parse()
                    .map_err(|_| Error::format(path, format!("row {}: {k} = {c:?} is not a number", ln + 2)))?;
                h.history.entry(k.to_string()).or_default().push(v);
            }
        }
        Ok(h)
    }

    /// JSON `{"epoch": [...], "history": {...}, "seconds": [...]}`.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Parses the JSON written by [`History::to_json`], or a bare Keras `history` dict.
    pub fn from_json(text: &str, path: &Path) -> Result<Self> {
        let v: serde_json::Value =
            serde_json::from_str(text).map_err(|e| Error::format(path, format!("not JSON: {e}")))?;
        let hist = v.get("history").unwrap_or(&v);
        let obj = hist.as_object().ok_or_else(|| Error::format(path, "a history JSON is an object of metric lists"))?;
        let mut h = History::default();
        for (k, vals) in obj {
            let list = vals
                .as_array()
                .ok_or_else(|| Error::format(path, format!("{k} is not a list")))?
                .iter()
                .map(|x| x.as_f64().ok_or_else(|| Error::format(path, format!("{k} holds a non-number"))))
                .collect::<Result<Vec<f64>>>()?;
            h.history.insert(k.clone(), list);
        }
        let n = h.history.values().map(Vec::len).max().unwrap_or(0);
        h.epoch = match v.get("epoch").and_then(|e| e.as_array()) {
            Some(e) => e.iter().filter_map(|x| x.as_u64().map(|x| x as usize)).collect(),
            None => (0..n).collect(),
        };
        h.seconds = v
            .get("seconds")
            .and_then(|s| s.as_array())
            .map(|s| s.iter().filter_map(|x| x.as_f64()).collect())
            .unwrap_or_default();
        Ok(h)
    }
}

impl Sequential {
    /// Trains on `x` and `y` (Keras' `fit`); returns the per-epoch history.
    pub fn fit(&mut self, x: &Tensor, y: &Tensor, opts: FitOptions<'_>) -> Result<History> {
        let n = self.check_input(x)?;
        self.check_targets(y, n)?;
        let mut opts = opts;
        let mut held_out = None;
        let mut data = TensorData::new(x, y);
        if opts.validation_data.is_none() && opts.validation_split > 0.0 {
            if !(0.0..1.0).contains(&opts.validation_split) {
                return Err(Error::config("validation_split must be in [0, 1)"));
            }
            // Keras holds out the last samples, before any shuffling.
            let split = (n as f64 * (1.0 - opts.validation_split as f64)) as usize;
            if split == 0 || split == n {
                return Err(Error::config(format!(
                    "validation_split {} of {n} samples leaves an empty training or validation set",
                    opts.validation_split
                )));
            }
            held_out = Some((x.slice_batch(split, n), y.slice_batch(split, n)));
            data.len = split;
        }
        let val = held_out.as_ref().map(|(a, b)| (a, b));
        if let Some(v) = val {
            opts.validation_data = None;
            return self.fit_data(&mut data, Some(v), opts);
        }
        let v = opts.validation_data.take();
        self.fit_data(&mut data, v, opts)
    }

    /// Trains on any [`TrainData`] source (plain tensors or an augmenting generator).
    pub fn fit_data(
        &mut self,
        data: &mut dyn TrainData,
        validation: Option<(&Tensor, &Tensor)>,
        mut opts: FitOptions<'_>,
    ) -> Result<History> {
        self.build()?;
        if self.compiled().is_none() {
            return Err(Error::State("the model must be compiled before fit (call compile)".into()));
        }
        data.check(self)?;
        if let Some((vx, vy)) = validation {
            let vn = self.check_input(vx)?;
            self.check_targets(vy, vn)?;
        }
        let n = data.len();
        if n == 0 {
            return Err(Error::config("no training samples"));
        }
        if opts.batch_size == 0 {
            return Err(Error::config("batch_size must be at least 1"));
        }
        let bs = opts.batch_size;
        let mut callbacks = std::mem::take(&mut opts.callbacks);
        if opts.verbose > 0 {
            callbacks.insert(0, Box::new(ProgbarLogger::new(opts.verbose, opts.progress_to_stderr)));
        }
        // The loop runs on a worker thread of the pool, so the layers' parallel sections
        // stay inside it (no cross-thread job injection, which allocates).
        rayon::scope(|_| {
            let mut run = EpochRunner { data, validation, callbacks: &mut callbacks, bs, opts: &mut opts };
            run.run(self)
        })
    }
}

/// The state of the training loop that `fit` threads through its epochs.
struct EpochRunner<'r, 'a, 'd> {
    data: &'r mut dyn TrainData,
    validation: Option<(&'r Tensor, &'r Tensor)>,
    callbacks: &'r mut [Box<dyn Callback + 'd>],
    bs: usize,
    opts: &'r mut FitOptions<'a>,
}

/// Progress inside one epoch.
struct EpochProgress {
    epoch: usize,
    batch: usize,
    loss_sum: f64,
    seen: usize,
    tallies: [Tally; 4],
    seconds_before: f64,
}

impl EpochRunner<'_, '_, '_> {
    /// A checkpoint state for `model` at `p` (with `order` when mid-epoch).
    fn state(&self, model: &Sequential, p: &EpochProgress, order: &[usize], history: &History) -> TrainState {
        let mid = p.batch > 0;
        let mut st = TrainState::at_epoch(p.epoch, self.bs, model.rng().clone());
        st.batch = p.batch;
        st.order = if mid { order.to_vec() } else { Vec::new() };
        st.loss_sum_bits = p.loss_sum.to_bits();
        st.seen = p.seen;
        st.tallies = p.tallies.iter().map(|t| (t.correct, t.count)).collect();
        st.epoch_seconds = p.seconds_before;
        st.data_rng = self.data.rng_state();
        st.history = history.clone();
        st.callbacks = self.callbacks.iter().map(|c| c.state()).collect();
        st.settings = self.opts.settings.clone();
        st
    }

    /// Writes a checkpoint, unless the weights hold NaN or infinity.
    fn write_checkpoint(&self, model: &Sequential, st: &TrainState) -> Result<bool> {
        let Some(path) = &self.opts.checkpoint else { return Ok(false) };
        if !model.params().all(|p| p.value.iter().all(|v| v.is_finite())) {
            return Ok(false);
        }
        save_checkpoint(model, st, path)?;
        Ok(true)
    }

    fn end(&mut self, model: &mut Sequential) {
        for cb in self.callbacks.iter_mut() {
            cb.on_train_end(model);
        }
    }

    fn run(&mut self, model: &mut Sequential) -> Result<History> {
        let n = self.data.len();
        let bs = self.bs;
        let steps = n.div_ceil(bs);
        let epochs = self.opts.epochs;
        let params = crate::callbacks::TrainParams { epochs, steps, samples: n, batch_size: bs };
        for cb in self.callbacks.iter_mut() {
            cb.on_train_begin(&params, model)?;
        }
        let metric_names: Vec<&'static str> =
            model.compiled().map(|c| c.metrics.iter().map(|m| m.name()).collect()).unwrap_or_default();
        let mut history = History::default();
        let mut order: Vec<usize> = Vec::with_capacity(n);
        let mut first_epoch = self.opts.initial_epoch;
        let mut resume_mid = None;
        if let Some(st) = self.opts.resume.take() {
            if st.batch > 0 && (st.batch_size != bs || st.order.len() != n || st.batch > steps) {
                return Err(Error::config(format!(
                    "the checkpoint stopped inside an epoch of {} samples in batches of {}; \
                     this run has {n} samples in batches of {bs}",
                    st.order.len(),
                    st.batch_size
                )));
            }
            model.set_rng(st.model_rng.clone());
            if let Some(r) = &st.data_rng {
                self.data.set_rng_state(r.clone());
            }
            for (cb, s) in self.callbacks.iter_mut().zip(&st.callbacks) {
                if let Some(s) = s {
                    cb.set_state(s)?;
                }
            }
            history = st.history.clone();
            first_epoch = st.epoch;
            if st.batch > 0 {
                resume_mid = Some(st);
            }
        }
        let mut idx: Vec<usize> = Vec::with_capacity(bs);
        // The running logs keep their keys for the whole run: updating values allocates nothing.
        let mut batch_logs = Logs::new();
        batch_logs.insert("loss".into(), 0.0);
        for name in &metric_names {
            batch_logs.insert((*name).into(), 0.0);
        }
        let mut stop = false;
        for epoch in first_epoch..epochs {
            let start = Instant::now();
            for cb in self.callbacks.iter_mut() {
                cb.on_epoch_begin(epoch, model)?;
            }
            let mut p = EpochProgress {
                epoch,
                batch: 0,
                loss_sum: 0.0,
                seen: 0,
                tallies: [Tally::default(); 4],
                seconds_before: 0.0,
            };
            order.clear();
            match resume_mid.take() {
                Some(st) => {
                    order.extend_from_slice(&st.order);
                    p.batch = st.batch;
                    p.loss_sum = st.loss_sum();
                    p.seen = st.seen;
                    for (t, (c, k)) in p.tallies.iter_mut().zip(&st.tallies) {
                        t.correct = *c;
                        t.count = *k;
                    }
                    p.seconds_before = st.epoch_seconds;
                }
                None => {
                    // Every epoch draws a fresh permutation, so an epoch's order depends only
                    // on the generator's state at its start (what a checkpoint keeps).
                    order.extend(0..n);
                    if self.opts.shuffle {
                        model.rng_mut().shuffle(&mut order);
                    }
                }
            }
            for b in p.batch..steps {
                idx.clear();
                idx.extend_from_slice(&order[b * bs..((b + 1) * bs).min(n)]);
                {
                    let (xb, yb) = model.batch_buffers();
                    self.data.fill(&idx, xb, yb)?;
                }
                let r = model.train_loaded()?;
                if !r.loss.is_finite() && self.opts.stop_on_non_finite {
                    self.end(model);
                    return Err(Error::NonFinite { epoch: epoch + 1, batch: b + 1, value: r.loss });
                }
                p.batch = b + 1;
                p.loss_sum += r.loss as f64 * idx.len() as f64;
                p.seen += idx.len();
                for (t, rt) in p.tallies.iter_mut().zip(&r.tallies) {
                    t.correct += rt.correct;
                    t.count += rt.count;
                }
                if let Some(v) = batch_logs.get_mut("loss") {
                    *v = p.loss_sum / p.seen as f64;
                }
                for (i, name) in metric_names.iter().enumerate() {
                    if let Some(v) = batch_logs.get_mut(*name) {
                        *v = p.tallies[i].correct as f64 / p.tallies[i].count.max(1) as f64;
                    }
                }
                for cb in self.callbacks.iter_mut() {
                    if cb.on_train_batch_end(b, &batch_logs, model)? == Control::Stop {
                        stop = true;
                    }
                }
                if stop {
                    break;
                }
                if self.opts.interrupt.is_some_and(|f| f.load(Ordering::Relaxed)) {
                    p.seconds_before += start.elapsed().as_secs_f64();
                    let st = self.state(model, &p, &order, &history);
                    let written = self.write_checkpoint(model, &st)?;
                    self.end(model);
                    return Err(Error::Interrupted {
                        epoch: epoch + 1,
                        batch: p.batch,
                        checkpoint: if written { self.opts.checkpoint.clone() } else { None },
                    });
                }
            }
            let mut logs = batch_logs.clone();
            if let Some((vx, vy)) = self.validation {
                let v = model.evaluate(vx, vy, bs)?;
                for (k, val) in v {
                    logs.insert(format!("val_{k}"), val);
                }
            }
            let secs = p.seconds_before + start.elapsed().as_secs_f64();
            history.push(epoch, &logs, secs);
            for cb in self.callbacks.iter_mut() {
                if cb.on_epoch_end(epoch, &logs, model)? == Control::Stop {
                    stop = true;
                }
            }
            if self.opts.checkpoint.is_some() && self.opts.checkpoint_each_epoch {
                let next = EpochProgress {
                    epoch: epoch + 1,
                    batch: 0,
                    loss_sum: 0.0,
                    seen: 0,
                    tallies: [Tally::default(); 4],
                    seconds_before: 0.0,
                };
                let st = self.state(model, &next, &[], &history);
                self.write_checkpoint(model, &st)?;
            }
            if stop {
                break;
            }
        }
        self.end(model);
        Ok(history)
    }
}

/// Formats a metric value as Keras' progress bar does: 4 decimals, or scientific below 1e-3.
pub fn keras_value(v: f64) -> String {
    if v.abs() > 1e-3 {
        format!("{v:.4}")
    } else {
        // Python's `{:.4e}`: mantissa, 'e', sign, at least two exponent digits.
        let s = format!("{v:.4e}");
        match s.split_once('e') {
            Some((m, e)) => {
                let (sign, digits) = match e.strip_prefix('-') {
                    Some(d) => ('-', d),
                    None => ('+', e),
                };
                format!("{m}e{sign}{digits:0>2}")
            }
            None => s,
        }
    }
}

/// Writes `text` followed by a flush, ignoring broken pipes.
pub(crate) fn emit(to_stderr: bool, text: &str) {
    if to_stderr {
        let mut e = std::io::stderr().lock();
        let _ = e.write_all(text.as_bytes());
        let _ = e.flush();
    } else {
        let mut o = std::io::stdout().lock();
        let _ = o.write_all(text.as_bytes());
        let _ = o.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keras_number_format() {
        assert_eq!(keras_value(0.912345), "0.9123");
        assert_eq!(keras_value(2.5), "2.5000");
        assert_eq!(keras_value(0.0001234), "1.2340e-04");
        assert_eq!(keras_value(0.0), "0.0000e+00");
    }

    #[test]
    fn history_csv_and_json_round_trip() {
        let mut h = History::default();
        let mut l = Logs::new();
        l.insert("loss".into(), 0.5);
        l.insert("accuracy".into(), 0.8);
        h.push(0, &l, 1.0);
        l.insert("loss".into(), 0.25);
        l.insert("accuracy".into(), 0.875);
        h.push(1, &l, 1.0);
        let csv = h.to_csv();
        assert_eq!(csv, "epoch,accuracy,loss\n0,0.8,0.5\n1,0.875,0.25\n");
        let back = History::from_csv(&csv, Path::new("h.csv")).unwrap();
        assert_eq!(back.history, h.history);
        let back = History::from_json(&h.to_json(), Path::new("h.json")).unwrap();
        assert_eq!(back.history, h.history);
        assert!(History::from_csv("epoch,loss\n0,abc\n", Path::new("x")).is_err());
        assert!(History::from_csv("", Path::new("x")).is_err());
    }
}
