//! `fit`: the training loop with Keras' options (batch size, epochs, validation data or split,
//! shuffling, verbosity, callbacks), checkpointing as it goes and resuming where a checkpoint
//! stopped.

use crate::data::source::{validation_cut, TensorData, TrainData};
use crate::error::{Error, Result};
use crate::nn::model::{Logs, Sequential, Tally, Totals};
use crate::tensor::Tensor;
use crate::train::callbacks::{Callback, Control, TrainParams};
use crate::train::checkpoint::{save_checkpoint, TrainState};
use crate::train::history::History;
use crate::train::progress::ProgbarLogger;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

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
    /// Continue from this state (read with [`crate::train::checkpoint::load_checkpoint`]) instead
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

impl Sequential {
    /// Trains on `x` and `y` (Keras' `fit`); returns the per-epoch history.
    pub fn fit(&mut self, x: &Tensor, y: &Tensor, opts: FitOptions<'_>) -> Result<History> {
        let n = self.check_input(x)?;
        self.check_targets(y, n)?;
        let mut opts = opts;
        if let Some(v) = opts.validation_data.take() {
            return self.fit_data(&mut TensorData::new(x, y), Some(v), opts);
        }
        let cut = validation_cut(n, opts.validation_split)?;
        if cut == n {
            return self.fit_data(&mut TensorData::new(x, y), None, opts);
        }
        let (vx, vy) = (x.slice_batch(cut, n), y.slice_batch(cut, n));
        self.fit_data(&mut TensorData::first(x, y, cut), Some((&vx, &vy)), opts)
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

/// Progress inside one epoch: what a checkpoint taken mid-epoch must hold to resume it.
struct EpochProgress {
    epoch: usize,
    /// Batches done.
    batch: usize,
    totals: Totals,
    /// Seconds spent in this epoch before the current run (when resumed mid-epoch).
    seconds_before: f64,
}

impl EpochProgress {
    fn fresh(epoch: usize) -> Self {
        EpochProgress { epoch, batch: 0, totals: Totals::default(), seconds_before: 0.0 }
    }

    /// Where a mid-epoch checkpoint stopped.
    fn resumed(st: &TrainState) -> Self {
        let mut totals = Totals { loss_sum: st.loss_sum(), seen: st.seen, ..Default::default() };
        for (t, (c, k)) in totals.tallies.iter_mut().zip(&st.tallies) {
            *t = Tally { correct: *c, count: *k };
        }
        EpochProgress { epoch: st.epoch, batch: st.batch, totals, seconds_before: st.epoch_seconds }
    }
}

/// How the batches of an epoch ended.
enum BatchesEnd {
    /// All batches ran.
    Done,
    /// A callback asked to stop.
    Stopped,
}

impl EpochRunner<'_, '_, '_> {
    /// The whole run: restore a resumed state, then epoch after epoch until the last one or
    /// until a callback stops training.
    fn run(&mut self, model: &mut Sequential) -> Result<History> {
        let n = self.data.len();
        let steps = n.div_ceil(self.bs);
        let params = TrainParams { epochs: self.opts.epochs, steps, samples: n, batch_size: self.bs };
        for cb in self.callbacks.iter_mut() {
            cb.on_train_begin(&params, model)?;
        }
        let (mut history, first_epoch, mut resume_mid) = self.restore(model, steps)?;
        let mut order: Vec<usize> = Vec::with_capacity(n);
        let mut idx: Vec<usize> = Vec::with_capacity(self.bs);
        // The running logs keep their keys for the whole run: updating values allocates nothing.
        let mut batch_logs = Logs::new();
        Totals::default().write_logs(&mut batch_logs, metrics_of(model));
        for epoch in first_epoch..self.opts.epochs {
            let start = Instant::now();
            for cb in self.callbacks.iter_mut() {
                cb.on_epoch_begin(epoch, model)?;
            }
            let mut p = match resume_mid.take() {
                Some(st) => {
                    order.clear();
                    order.extend_from_slice(&st.order);
                    EpochProgress::resumed(&st)
                }
                None => {
                    self.shuffle(model, &mut order);
                    EpochProgress::fresh(epoch)
                }
            };
            let end = self.run_batches(model, &mut p, &order, &mut idx, &mut batch_logs, &history, start)?;
            let stop = self.end_epoch(model, &p, &batch_logs, &mut history, start)?;
            if stop || matches!(end, BatchesEnd::Stopped) {
                break;
            }
        }
        self.end(model);
        Ok(history)
    }

    /// Takes over a checkpoint's state, if resuming: generators, callbacks and history.
    /// Returns the history so far, the first epoch to run and, when the checkpoint stopped
    /// inside an epoch, its state.
    fn restore(&mut self, model: &mut Sequential, steps: usize) -> Result<(History, usize, Option<TrainState>)> {
        let Some(st) = self.opts.resume.take() else {
            return Ok((History::default(), self.opts.initial_epoch, None));
        };
        let (n, bs) = (self.data.len(), self.bs);
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
        let history = st.history.clone();
        let first = st.epoch;
        Ok((history, first, (st.batch > 0).then_some(st)))
    }

    /// A fresh epoch's sample order. Every epoch draws a new permutation, so an epoch's order
    /// depends only on the generator's state at its start (what a checkpoint keeps).
    fn shuffle(&self, model: &mut Sequential, order: &mut Vec<usize>) {
        order.clear();
        order.extend(0..self.data.len());
        if self.opts.shuffle {
            model.rng_mut().shuffle(order);
        }
    }

    /// Trains the epoch's remaining batches, updating the running logs after each; on an
    /// interrupt, writes a checkpoint and returns [`Error::Interrupted`].
    #[allow(clippy::too_many_arguments)]
    fn run_batches(
        &mut self,
        model: &mut Sequential,
        p: &mut EpochProgress,
        order: &[usize],
        idx: &mut Vec<usize>,
        batch_logs: &mut Logs,
        history: &History,
        start: Instant,
    ) -> Result<BatchesEnd> {
        let (n, bs) = (order.len(), self.bs);
        for b in p.batch..n.div_ceil(bs) {
            idx.clear();
            idx.extend_from_slice(&order[b * bs..((b + 1) * bs).min(n)]);
            {
                let (xb, yb) = model.batch_buffers();
                self.data.fill(idx, xb, yb)?;
            }
            // The next batch of this epoch, so a source reading files prepares it while this
            // step trains (the next epoch's order is drawn only after this one ends).
            if (b + 1) * bs < n {
                self.data.prefetch(&order[(b + 1) * bs..((b + 2) * bs).min(n)]);
            }
            let r = model.train_loaded()?;
            if !r.loss.is_finite() && self.opts.stop_on_non_finite {
                self.end(model);
                return Err(Error::NonFinite { epoch: p.epoch + 1, batch: b + 1, value: r.loss });
            }
            p.batch = b + 1;
            p.totals.add(&r, idx.len());
            p.totals.write_logs(batch_logs, metrics_of(model));
            let mut stop = false;
            for cb in self.callbacks.iter_mut() {
                stop |= cb.on_train_batch_end(b, batch_logs, model)? == Control::Stop;
            }
            if stop {
                return Ok(BatchesEnd::Stopped);
            }
            if self.opts.interrupt.is_some_and(|f| f.load(Ordering::Relaxed)) {
                p.seconds_before += start.elapsed().as_secs_f64();
                let st = self.state(model, p, order, history);
                let written = self.write_checkpoint(model, &st)?;
                self.end(model);
                return Err(Error::Interrupted {
                    epoch: p.epoch + 1,
                    batch: p.batch,
                    checkpoint: if written { self.opts.checkpoint.clone() } else { None },
                });
            }
        }
        Ok(BatchesEnd::Done)
    }

    /// Validation, the history's new row, the callbacks' epoch end and the epoch's
    /// checkpoint. Returns whether a callback asked to stop.
    fn end_epoch(
        &mut self,
        model: &mut Sequential,
        p: &EpochProgress,
        batch_logs: &Logs,
        history: &mut History,
        start: Instant,
    ) -> Result<bool> {
        let mut logs = batch_logs.clone();
        if let Some((vx, vy)) = self.validation {
            for (k, val) in model.evaluate(vx, vy, self.bs)? {
                logs.insert(format!("val_{k}"), val);
            }
        }
        // The rate this epoch trained with, as Keras 3's rate callbacks log it (the f32 rate
        // as a double, before any change at the epoch's end).
        if self.callbacks.iter().any(|c| c.logs_learning_rate()) {
            if let Some(o) = model.optimizer() {
                logs.insert("learning_rate".into(), f64::from(o.learning_rate()));
            }
        }
        history.push(p.epoch, &logs, p.seconds_before + start.elapsed().as_secs_f64());
        let mut stop = false;
        for cb in self.callbacks.iter_mut() {
            stop |= cb.on_epoch_end(p.epoch, &logs, model)? == Control::Stop;
        }
        if self.opts.checkpoint.is_some() && self.opts.checkpoint_each_epoch {
            let st = self.state(model, &EpochProgress::fresh(p.epoch + 1), &[], history);
            self.write_checkpoint(model, &st)?;
        }
        Ok(stop)
    }

    /// A checkpoint state for `model` at `p` (with `order` when mid-epoch).
    fn state(&self, model: &Sequential, p: &EpochProgress, order: &[usize], history: &History) -> TrainState {
        let mid = p.batch > 0;
        let mut st = TrainState::at_epoch(p.epoch, self.bs, model.rng().clone());
        st.batch = p.batch;
        st.order = if mid { order.to_vec() } else { Vec::new() };
        st.loss_sum_bits = p.totals.loss_sum.to_bits();
        st.seen = p.totals.seen;
        st.tallies = p.totals.tallies.iter().map(|t| (t.correct, t.count)).collect();
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
}

/// The compiled metrics (none if not compiled).
fn metrics_of(model: &Sequential) -> &[crate::nn::metrics::Metric] {
    model.compiled().map_or(&[], |c| c.metrics.as_slice())
}
