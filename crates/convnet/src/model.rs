//! `Sequential`: a stack of layers with Keras' workflow — add, compile, fit, evaluate, predict,
//! summary — and the training step at its heart.
//!
//! The model owns one activation buffer and one gradient buffer per layer boundary, sized to
//! the largest batch seen; after the first step a training step allocates nothing.

use crate::activations::Activation;
use crate::error::{Error, Result};
use crate::layers::{ForwardCtx, Layer, Param};
use crate::losses::Loss;
use crate::metrics::Metric;
use crate::optimizers::{Optimizer, OptimizerState, StepInfo};
use crate::parallel::{self, SharedMut};
use crate::rng::Rng;
use crate::tensor::Tensor;
use std::collections::BTreeMap;

/// Largest batch `evaluate` and `predict` run at once: bigger requests are split, which keeps
/// memory bounded and the working set in cache without changing any result.
pub const MAX_INFERENCE_BATCH: usize = 256;

/// Seed used when none is given: every model is reproducible by default.
pub const DEFAULT_SEED: u64 = 42;

/// Most values one sample may have at any layer's output (2^26).
pub const MAX_SAMPLE_VALUES: usize = 1 << 26;

/// Named scalar results of an epoch or an evaluation (`loss`, `accuracy`, `val_loss`, …),
/// sorted by name as Keras 3 prints them.
pub type Logs = BTreeMap<String, f64>;

/// What `compile` fixed: the loss, the optimizer and the metrics.
#[derive(Clone, Debug)]
pub struct Compiled {
    /// The training objective.
    pub loss: Loss,
    /// The optimizer and its hyper-parameters.
    pub optimizer: Optimizer,
    /// Metrics as requested (names as logged).
    pub metrics: Vec<Metric>,
    /// Whether the loss gradient is folded into the last layer's activation.
    fused: bool,
}

/// Sum of one metric over the batches of an epoch.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Tally {
    pub correct: usize,
    pub count: usize,
}

/// Result of one training or test step.
#[derive(Clone, Debug, Default)]
pub(crate) struct StepResult {
    /// Loss including penalties, averaged over the batch.
    pub loss: f32,
    /// One tally per compiled metric.
    pub tallies: [Tally; 4],
    /// Seconds of the optimizer update (when timed).
    pub optimizer_seconds: f64,
}

/// A linear stack of layers (Keras' `Sequential`).
pub struct Sequential {
    name: String,
    layers: Vec<Box<dyn Layer>>,
    input_shape: Option<Vec<usize>>,
    /// Number of leading layers that are built.
    built: usize,
    compiled: Option<Compiled>,
    rng: Rng,
    /// `acts[0]` is the input batch; `acts[i + 1]` the output of layer `i`.
    acts: Vec<Tensor>,
    /// `grads[i]` is the gradient w.r.t. `acts[i]`.
    grads: Vec<Tensor>,
    /// Targets of the current batch.
    targets: Tensor,
    opt_state: OptimizerState,
    class_names: Option<Vec<String>>,
}

impl std::fmt::Debug for Sequential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sequential")
            .field("name", &self.name)
            .field("input_shape", &self.input_shape)
            .field("layers", &self.layers.iter().map(|l| (l.name(), l.class_name())).collect::<Vec<_>>())
            .field("compiled", &self.compiled)
            .finish()
    }
}

impl Default for Sequential {
    fn default() -> Self {
        Sequential::new()
    }
}

impl Sequential {
    /// An empty model named "sequential", seeded with [`DEFAULT_SEED`].
    pub fn new() -> Self {
        Sequential {
            name: "sequential".to_string(),
            layers: Vec::new(),
            input_shape: None,
            built: 0,
            compiled: None,
            rng: Rng::new(DEFAULT_SEED),
            acts: Vec::new(),
            grads: Vec::new(),
            targets: Tensor::default(),
            opt_state: OptimizerState::default(),
            class_names: None,
        }
    }

    /// Sets the seed of every random choice (initial weights, shuffling, dropout). Call it
    /// before the model is built.
    pub fn seed(mut self, seed: u64) -> Self {
        self.rng = Rng::new(seed);
        self
    }

    /// Re-seeds the model's generator (initial weights not yet built, shuffling, dropout).
    pub fn set_seed(&mut self, seed: u64) {
        self.rng = Rng::new(seed);
    }

    /// Renames the model.
    pub fn with_name(mut self, name: &str) -> Self {
        self.name = name.to_string();
        self
    }

    /// The model's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Renames the model.
    pub fn set_name(&mut self, name: &str) {
        self.name = name.to_string();
    }

    /// Appends a layer. The first layer's `input_shape`, if given, becomes the model's.
    pub fn add(&mut self, layer: impl Layer + 'static) -> &mut Self {
        self.add_boxed(Box::new(layer))
    }

    /// Appends a boxed layer.
    pub fn add_boxed(&mut self, layer: Box<dyn Layer>) -> &mut Self {
        if self.layers.is_empty() && self.input_shape.is_none() {
            self.input_shape = layer.declared_input_shape().map(<[usize]>::to_vec);
        }
        self.layers.push(layer);
        self
    }

    /// Declares the per-sample input shape (Keras' `Input(shape=…)`).
    pub fn set_input_shape(&mut self, shape: &[usize]) {
        if self.input_shape.as_deref() != Some(shape) {
            self.input_shape = Some(shape.to_vec());
            self.built = 0;
        }
    }

    /// The per-sample input shape, once known.
    pub fn input_shape(&self) -> Option<&[usize]> {
        self.input_shape.as_deref()
    }

    /// The per-sample output shape (builds the model if needed).
    pub fn output_shape(&mut self) -> Result<Vec<usize>> {
        self.build()?;
        Ok(self.out_shape().to_vec())
    }

    fn out_shape(&self) -> &[usize] {
        match self.layers.last() {
            Some(l) => l.output_shape(),
            None => self.input_shape.as_deref().unwrap_or(&[]),
        }
    }

    /// True when every layer has its weights.
    pub fn is_built(&self) -> bool {
        self.built == self.layers.len() && self.built > 0
    }

    /// Names of the output classes, if known (saved with the model; used by `predict`).
    pub fn class_names(&self) -> Option<&[String]> {
        self.class_names.as_deref()
    }

    /// Records the names of the output classes.
    pub fn set_class_names(&mut self, names: Vec<String>) {
        self.class_names = Some(names);
    }

    /// The layers, in order.
    pub fn layers(&self) -> &[Box<dyn Layer>] {
        &self.layers
    }

    /// The layers, mutable.
    pub fn layers_mut(&mut self) -> &mut [Box<dyn Layer>] {
        &mut self.layers
    }

    /// Builds every layer not yet built (creating its weights) for the declared input shape.
    pub fn build(&mut self) -> Result<()> {
        if self.is_built() {
            return Ok(());
        }
        let Some(input) = self.input_shape.clone() else {
            return Err(Error::State(
                "the model's input shape is unknown: give the first layer an input_shape \
                 (e.g. Conv2D::new(6, 5).input_shape([28, 28, 1])) or call set_input_shape"
                    .into(),
            ));
        };
        if self.layers.is_empty() {
            return Err(Error::State("the model has no layers".into()));
        }
        self.assign_names();
        let mut shape = if self.built == 0 { input } else { self.layers[self.built - 1].output_shape().to_vec() };
        let mut weights = self.layers[..self.built].iter().map(|l| l.count_params()).sum::<usize>();
        for i in self.built..self.layers.len() {
            shape = self.layers[i].build(&shape, &mut self.rng).map_err(|e| match e {
                Error::Shape(m) => Error::Shape(format!("layer {} ({}): {m}", i, self.layers[i].name())),
                other => other,
            })?;
            weights += self.layers[i].count_params();
            let values = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
            if values.is_none_or(|v| v > MAX_SAMPLE_VALUES) || weights > crate::layers::MAX_WEIGHT_VALUES {
                return Err(Error::config(format!(
                    "layer {} ({}) makes the model too large (output {:?}, {} weights so far)",
                    i,
                    self.layers[i].name(),
                    shape,
                    weights
                )));
            }
            self.built = i + 1;
        }
        self.acts.resize_with(self.layers.len() + 1, Tensor::default);
        self.grads.resize_with(self.layers.len() + 1, Tensor::default);
        if let Some(c) = &self.compiled {
            let (loss, opt) = (c.loss, c.optimizer);
            let metrics = c.metrics.clone();
            self.compile(loss, opt, &metrics)?;
        }
        Ok(())
    }

    /// Gives unnamed layers Keras' automatic names (`conv2d`, `conv2d_1`, …), unique in the model.
    fn assign_names(&mut self) {
        let mut taken: Vec<String> =
            self.layers.iter().map(|l| l.name().to_string()).filter(|n| !n.is_empty()).collect();
        let mut counters: BTreeMap<&'static str, usize> = BTreeMap::new();
        for l in self.layers.iter_mut() {
            if !l.name().is_empty() {
                continue;
            }
            let base = l.base_name();
            loop {
                let k = counters.entry(base).or_insert(0);
                let name = if *k == 0 { base.to_string() } else { format!("{base}_{k}") };
                *k += 1;
                if !taken.contains(&name) {
                    taken.push(name.clone());
                    l.set_name(name);
                    break;
                }
            }
        }
    }

    /// Fixes the loss, optimizer and metrics for training (Keras' `compile`).
    pub fn compile(&mut self, loss: Loss, optimizer: impl Into<Optimizer>, metrics: &[Metric]) -> Result<()> {
        let optimizer = optimizer.into();
        optimizer.validate()?;
        loss.validate()?;
        if metrics.len() > 4 {
            return Err(Error::config("at most four metrics"));
        }
        // A ReLU layer followed by one that can fold relu' into its own input gradient (max
        // pooling) hands its output gradient through as the pre-activation one.
        for i in 1..self.layers.len() {
            let (head, tail) = self.layers.split_at_mut(i);
            let prev = &mut head[i - 1];
            let foldable = prev.activation() == Activation::Relu && prev.activity_regularizer().is_none();
            let folded = tail[0].fold_input_relu(foldable) && foldable;
            prev.set_output_gradient_fused(folded);
        }
        let mut fused = false;
        if let Some(last) = self.layers.last_mut() {
            fused = loss.fusable_activation() == Some(last.activation()) && last.activity_regularizer().is_none();
            last.set_output_gradient_fused(fused);
        }
        let same_opt = self.compiled.as_ref().is_some_and(|c| {
            c.optimizer.class_name() == optimizer.class_name() && c.optimizer.slot_names() == optimizer.slot_names()
        });
        if !same_opt {
            self.opt_state = OptimizerState::default();
        }
        let mut optimizer = optimizer;
        optimizer.sync_learning_rate(self.opt_state.iterations);
        self.compiled = Some(Compiled { loss, optimizer, metrics: metrics.to_vec(), fused });
        Ok(())
    }

    /// The compile settings, if compiled.
    pub fn compiled(&self) -> Option<&Compiled> {
        self.compiled.as_ref()
    }

    /// The optimizer, if compiled.
    pub fn optimizer(&self) -> Option<&Optimizer> {
        self.compiled.as_ref().map(|c| &c.optimizer)
    }

    /// The optimizer, mutable (to change the learning rate).
    pub fn optimizer_mut(&mut self) -> Option<&mut Optimizer> {
        self.compiled.as_mut().map(|c| &mut c.optimizer)
    }

    /// The optimizer's variables (step count and slots).
    pub fn optimizer_state(&self) -> &OptimizerState {
        &self.opt_state
    }

    /// Replaces the optimizer's variables (when loading a saved model or checkpoint).
    pub fn set_optimizer_state(&mut self, state: OptimizerState) -> Result<()> {
        if !state.slots.is_empty() {
            let params: Vec<usize> = self.params().map(Param::len).collect();
            if state.slots.len() != params.len()
                || state.slots.iter().zip(&params).any(|(s, &n)| s.iter().any(|v| v.len() != n))
            {
                return Err(Error::shape("optimizer state does not match the model's weights"));
            }
        }
        if let Some(c) = self.compiled.as_mut() {
            c.optimizer.sync_learning_rate(state.iterations);
        }
        self.opt_state = state;
        Ok(())
    }

    /// The model's random generator (for checkpoints).
    pub fn rng(&self) -> &Rng {
        &self.rng
    }

    /// The model's random generator, mutable (shuffling in `fit`).
    pub(crate) fn rng_mut(&mut self) -> &mut Rng {
        &mut self.rng
    }

    /// Replaces the model's random generator (when resuming).
    pub fn set_rng(&mut self, rng: Rng) {
        self.rng = rng;
    }

    /// Every weight, layer by layer, kernel before bias.
    pub fn params(&self) -> impl Iterator<Item = &Param> {
        self.layers.iter().flat_map(|l| l.params().iter())
    }

    /// Total number of weight values.
    pub fn count_params(&self) -> usize {
        self.layers.iter().map(|l| l.count_params()).sum()
    }

    /// Copies of all weights, in Keras' `get_weights()` order.
    pub fn get_weights(&self) -> Vec<Tensor> {
        self.params().map(|p| Tensor::from_vec(&p.shape, p.value.clone()).expect("param shape")).collect()
    }

    /// Sets all weights from `weights` (Keras' `set_weights`), checking every shape.
    pub fn set_weights(&mut self, weights: &[Tensor]) -> Result<()> {
        self.build()?;
        let n = self.params().count();
        if weights.len() != n {
            return Err(Error::shape(format!("the model has {n} weights but {} were given", weights.len())));
        }
        let mut it = weights.iter();
        for l in self.layers.iter_mut() {
            let lname = l.name().to_string();
            for p in l.params_mut() {
                let w = it.next().expect("counted");
                if w.shape() != p.shape.as_slice() {
                    return Err(Error::shape(format!(
                        "weight {}/{} has shape {:?}, but {:?} was given",
                        lname,
                        p.name,
                        p.shape,
                        w.shape()
                    )));
                }
                p.value.copy_from_slice(w.data());
            }
        }
        Ok(())
    }

    /// Keras' `summary()` table: each layer with its output shape and parameter count.
    pub fn summary(&mut self) -> Result<String> {
        self.build()?;
        let rows: Vec<(String, String, String)> = self
            .layers
            .iter()
            .map(|l| {
                (
                    format!("{} ({})", l.name(), l.class_name()),
                    crate::layers::shape_str(l.output_shape()),
                    group_thousands(l.count_params()),
                )
            })
            .collect();
        let w0 = rows.iter().map(|r| r.0.chars().count()).max().unwrap_or(0).max(29) + 2;
        let w1 = rows.iter().map(|r| r.1.len()).max().unwrap_or(0).max(20) + 2;
        let w2 = 15;
        let line = |l: char, m: char, r: char, h: char| {
            format!(
                "{l}{}{m}{}{m}{}{r}\n",
                h.to_string().repeat(w0),
                h.to_string().repeat(w1),
                h.to_string().repeat(w2)
            )
        };
        let mut s = format!("Model: \"{}\"\n", self.name);
        s += &line('┏', '┳', '┓', '━');
        s += &format!(
            "┃ {:<a$}┃ {:<b$}┃ {:>c$} ┃\n",
            "Layer (type)",
            "Output Shape",
            "Param #",
            a = w0 - 1,
            b = w1 - 1,
            c = w2 - 2
        );
        s += &line('┡', '╇', '┩', '━');
        for (i, r) in rows.iter().enumerate() {
            s += &format!("│ {:<a$}│ {:<b$}│ {:>c$} │\n", r.0, r.1, r.2, a = w0 - 1, b = w1 - 1, c = w2 - 2);
            if i + 1 < rows.len() {
                s += &line('├', '┼', '┤', '─');
            }
        }
        s += &line('└', '┴', '┘', '─');
        let total = self.count_params();
        s += &format!(" Total params: {} ({})\n", group_thousands(total), human_bytes(total * 4));
        s += &format!(" Trainable params: {} ({})\n", group_thousands(total), human_bytes(total * 4));
        s += &format!(" Non-trainable params: 0 ({})\n", human_bytes(0));
        Ok(s)
    }

    /// Builds and checks that `x` fits the input shape; returns the batch size.
    pub(crate) fn check_input(&mut self, x: &Tensor) -> Result<usize> {
        self.build()?;
        let want = self.input_shape.clone().unwrap_or_default();
        let got = &x.shape()[1.min(x.shape().len())..];
        if !same_up_to_unit_axes(got, &want) {
            return Err(Error::shape(format!(
                "the model expects input of shape {} but got {}",
                crate::layers::shape_str(&want),
                crate::layers::shape_str(got)
            )));
        }
        Ok(x.batch())
    }

    fn require_compiled(&self) -> Result<&Compiled> {
        self.compiled.as_ref().ok_or_else(|| Error::State("the model must be compiled first (call compile)".into()))
    }

    /// Checks targets `y` against the model's output and the loss, for `n` samples.
    pub(crate) fn check_targets(&mut self, y: &Tensor, n: usize) -> Result<()> {
        self.build()?;
        let loss = self.require_compiled()?.loss;
        if y.batch() != n {
            return Err(Error::shape(format!("{n} inputs but {} targets", y.batch())));
        }
        let out = self.out_shape().to_vec();
        let width = out.last().copied().unwrap_or(1);
        let per_sample: usize = out.iter().product();
        loss.check_targets(per_sample, width, y.sample_len())
    }

    /// Runs the forward pass on `acts[0]`, which holds `n` samples. With `alias`, layers that
    /// pass their input through unchanged (Flatten, Dropout outside training) swap buffers
    /// instead of copying: their output buffer takes the input's data and the input buffer
    /// is left stale until the backward pass swaps it back.
    fn forward(&mut self, n: usize, training: bool, alias: bool) {
        let mut ctx = ForwardCtx { training, rng: &mut self.rng };
        for (i, layer) in self.layers.iter_mut().enumerate() {
            if alias && layer.is_passthrough(training) {
                self.acts.swap(i, i + 1);
                self.acts[i + 1].resize_batch(n, layer.output_shape());
                continue;
            }
            let (xs, ys) = self.acts.split_at_mut(i + 1);
            ys[0].resize_batch(n, layer.output_shape());
            layer.forward(&xs[i], &mut ys[0], &mut ctx);
        }
    }

    /// Sum of weight and activity penalties for the current batch of `n` samples.
    fn penalty(&self, n: usize) -> f32 {
        let mut total = 0.0f32;
        for (i, l) in self.layers.iter().enumerate() {
            for p in l.params() {
                if let Some(r) = p.regularizer {
                    total += r.penalty(&p.value);
                }
            }
            if let Some(r) = l.activity_regularizer() {
                total += r.penalty(self.acts[i + 1].data()) / n as f32;
            }
        }
        total
    }

    /// Metric tallies of the current output against the current targets.
    fn tally(&self) -> [Tally; 4] {
        let mut t = [Tally::default(); 4];
        let Some(c) = &self.compiled else { return t };
        let out = &self.acts[self.layers.len()];
        let width = self.out_shape().last().copied().unwrap_or(1);
        for (i, m) in c.metrics.iter().enumerate() {
            let (correct, count) = m.resolve(c.loss).count(out.data(), self.targets.data(), width);
            t[i] = Tally { correct, count };
        }
        t
    }

    /// One step of training on the batch in `acts[0]` / `targets`: forward, loss, backward,
    /// penalties, optimizer update. With `times`, records each layer's forward and backward
    /// seconds and returns the optimizer's in the result.
    pub(crate) fn train_step(&mut self) -> Result<StepResult> {
        self.train_step_timed(None)
    }

    fn train_step_timed(&mut self, mut times: Option<&mut [(f64, f64)]>) -> Result<StepResult> {
        use std::time::Instant;
        let (loss_fn, fused) = {
            let c = self.require_compiled()?;
            (c.loss, c.fused)
        };
        let n = self.acts[0].batch();
        let l = self.layers.len();
        let clock = |on: bool| on.then(Instant::now);
        {
            let mut ctx = ForwardCtx { training: true, rng: &mut self.rng };
            for (i, layer) in self.layers.iter_mut().enumerate() {
                let t = clock(times.is_some());
                if layer.is_passthrough(true) {
                    self.acts.swap(i, i + 1);
                    self.acts[i + 1].resize_batch(n, layer.output_shape());
                } else {
                    let (xs, ys) = self.acts.split_at_mut(i + 1);
                    ys[0].resize_batch(n, layer.output_shape());
                    layer.forward(&xs[i], &mut ys[0], &mut ctx);
                }
                if let (Some(t), Some(times)) = (t, times.as_deref_mut()) {
                    times[i].0 = t.elapsed().as_secs_f64();
                }
            }
        }
        let width = self.out_shape().last().copied().unwrap_or(1);
        let out_shape = self.layers.last().map_or(&[][..], |x| x.output_shape());
        self.grads[l].resize_batch(n, out_shape);
        let mut loss =
            loss_fn.compute(self.acts[l].data(), self.targets.data(), width, Some(self.grads[l].data_mut()), fused);
        loss += self.penalty(n);
        for i in (0..l).rev() {
            let t = clock(times.is_some());
            if self.layers[i].is_passthrough(true) {
                // Undo the forward swap: the input buffer gets its data back, and the output
                // gradient becomes the input gradient as it is.
                self.acts.swap(i, i + 1);
                self.grads.swap(i, i + 1);
                let in_shape =
                    if i == 0 { self.input_shape.as_deref().unwrap_or(&[]) } else { self.layers[i - 1].output_shape() };
                self.acts[i].resize_batch(n, in_shape);
                self.grads[i].resize_batch(n, in_shape);
            } else {
                if let Some(r) = self.layers[i].activity_regularizer() {
                    r.add_gradient(self.acts[i + 1].data(), self.grads[i + 1].data_mut(), 1.0 / n as f32);
                }
                let (ga, gb) = self.grads.split_at_mut(i + 1);
                let dx = if i > 0 {
                    ga[i].resize_batch(n, self.acts[i].shape().get(1..).unwrap_or(&[]));
                    Some(&mut ga[i])
                } else {
                    None
                };
                self.layers[i].backward(&self.acts[i], &self.acts[i + 1], &mut gb[0], dx);
            }
            if let (Some(t), Some(times)) = (t, times.as_deref_mut()) {
                times[i].1 = t.elapsed().as_secs_f64();
            }
        }
        let tallies = self.tally();
        let t = clock(times.is_some());
        self.apply_gradients();
        let opt_secs = t.map_or(0.0, |t| t.elapsed().as_secs_f64());
        Ok(StepResult { loss, tallies, optimizer_seconds: opt_secs })
    }

    /// Adds weight penalties' gradients and applies one optimizer step to every weight, in
    /// Keras' order: gradients clipped, weights decayed, then the update (see
    /// [`crate::optimizers`]). The optimizer is borrowed in place, never copied.
    fn apply_gradients(&mut self) {
        let Sequential { layers, compiled, opt_state, .. } = self;
        let Some(c) = compiled.as_mut() else { return };
        let opt = &c.optimizer;
        opt.prepare_state(opt_state, layers.iter().flat_map(|l| l.params().iter().map(Param::len)));
        let info = opt.next_step(opt_state);
        let mut sum_sq = 0.0f64;
        for layer in layers.iter_mut() {
            for p in layer.params_mut() {
                if let Some(r) = p.regularizer {
                    r.add_gradient(&p.value, &mut p.grad, 1.0);
                }
                if opt.clips_globally() {
                    sum_sq += p.grad.iter().map(|&g| f64::from(g) * f64::from(g)).sum::<f64>();
                }
            }
        }
        let global_norm = sum_sq.sqrt() as f32;
        let mut pi = 0;
        for layer in layers.iter_mut() {
            for p in layer.params_mut() {
                opt.clip_gradient(&mut p.grad, global_norm);
                opt.decay_weight(&info, &mut p.value);
                update_param(opt, &info, &mut p.value, &p.grad, &mut opt_state.slots[pi]);
                pi += 1;
            }
        }
        c.optimizer.sync_learning_rate(opt_state.iterations);
    }

    /// Loss and metrics of the batch in `acts[0]` / `targets`, without training.
    fn test_step(&mut self) -> Result<StepResult> {
        let loss_fn = self.require_compiled()?.loss;
        let n = self.acts[0].batch();
        self.forward(n, false, true);
        let l = self.layers.len();
        let width = self.out_shape().last().copied().unwrap_or(1);
        let loss = loss_fn.compute(self.acts[l].data(), self.targets.data(), width, None, false) + self.penalty(n);
        Ok(StepResult { loss, tallies: self.tally(), optimizer_seconds: 0.0 })
    }

    /// Loads samples `indices` of `x` and `y` as the current batch.
    pub(crate) fn load_batch(&mut self, x: &Tensor, y: Option<&Tensor>, indices: &[usize]) {
        self.build().expect("checked by the caller");
        x.gather_into(indices, &mut self.acts[0]);
        self.acts[0].resize_batch(indices.len(), self.input_shape.as_deref().unwrap_or(&[]));
        if let Some(y) = y {
            y.gather_into(indices, &mut self.targets);
        }
    }

    /// The input and target buffers of the current batch, for data sources that fill them.
    pub(crate) fn batch_buffers(&mut self) -> (&mut Tensor, &mut Tensor) {
        let (a, _) = self.acts.split_at_mut(1);
        (&mut a[0], &mut self.targets)
    }

    /// Runs the current batch (already in the buffers) through a training step.
    pub(crate) fn train_loaded(&mut self) -> Result<StepResult> {
        let n = self.acts[0].batch();
        self.acts[0].resize_batch(n, self.input_shape.as_deref().unwrap_or(&[]));
        self.train_step()
    }

    /// Trains on one batch (Keras' `train_on_batch`); returns the logs of that step.
    pub fn train_on_batch(&mut self, x: &Tensor, y: &Tensor) -> Result<Logs> {
        let n = self.check_input(x)?;
        self.check_targets(y, n)?;
        let idx: Vec<usize> = (0..n).collect();
        self.load_batch(x, Some(y), &idx);
        let r = self.train_step()?;
        Ok(self.step_logs(&r, n))
    }

    fn step_logs(&self, r: &StepResult, _n: usize) -> Logs {
        let c = self.compiled.as_ref().expect("compiled");
        let mut logs = Logs::new();
        logs.insert("loss".into(), r.loss as f64);
        for (i, m) in c.metrics.iter().enumerate() {
            let t = r.tallies[i];
            logs.insert(m.name().into(), t.correct as f64 / t.count.max(1) as f64);
        }
        logs
    }

    /// Loss and metrics over `x`, `y` in batches of `batch_size` (Keras' `evaluate`).
    pub fn evaluate(&mut self, x: &Tensor, y: &Tensor, batch_size: usize) -> Result<Logs> {
        let n = self.check_input(x)?;
        self.check_targets(y, n)?;
        self.evaluate_with(x, y, batch_size, &mut |_, _| {})
    }

    /// [`Sequential::evaluate`] with a hook called after each batch with (done, total) batches.
    pub fn evaluate_with(
        &mut self,
        x: &Tensor,
        y: &Tensor,
        batch_size: usize,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Logs> {
        let n = self.check_input(x)?;
        self.check_targets(y, n)?;
        let bs = batch_size.clamp(1, MAX_INFERENCE_BATCH);
        let steps = n.div_ceil(bs);
        let nmetrics = self.require_compiled()?.metrics.len();
        let mut loss_sum = 0.0f64;
        let mut tallies = [Tally::default(); 4];
        let mut idx: Vec<usize> = Vec::with_capacity(bs);
        for s in 0..steps {
            idx.clear();
            idx.extend(s * bs..((s + 1) * bs).min(n));
            self.load_batch(x, Some(y), &idx);
            let r = self.test_step()?;
            loss_sum += r.loss as f64 * idx.len() as f64;
            for (t, rt) in tallies.iter_mut().zip(&r.tallies).take(nmetrics) {
                t.correct += rt.correct;
                t.count += rt.count;
            }
            progress(s + 1, steps);
        }
        let c = self.require_compiled()?;
        let mut logs = Logs::new();
        logs.insert("loss".into(), loss_sum / n.max(1) as f64);
        for (i, m) in c.metrics.iter().enumerate() {
            logs.insert(m.name().into(), tallies[i].correct as f64 / tallies[i].count.max(1) as f64);
        }
        Ok(logs)
    }

    /// The model's outputs for `x`, computed in batches of `batch_size` (Keras' `predict`).
    pub fn predict(&mut self, x: &Tensor, batch_size: usize) -> Result<Tensor> {
        let n = self.check_input(x)?;
        let out = self.out_shape().to_vec();
        let per: usize = out.iter().product();
        let mut shape = vec![n];
        shape.extend_from_slice(&out);
        let mut result = vec![0.0f32; n * per];
        let bs = batch_size.clamp(1, MAX_INFERENCE_BATCH);
        let mut idx: Vec<usize> = Vec::with_capacity(bs);
        for s in 0..n.div_ceil(bs) {
            idx.clear();
            idx.extend(s * bs..((s + 1) * bs).min(n));
            self.load_batch(x, None, &idx);
            self.forward(idx.len(), false, true);
            let o = &self.acts[self.layers.len()];
            result[s * bs * per..s * bs * per + o.len()].copy_from_slice(o.data());
        }
        Tensor::from_vec(&shape, result)
    }

    /// Times one training step layer by layer on the batch in `x` / `y`: for each layer,
    /// (forward seconds, backward seconds), plus the optimizer update's seconds. For
    /// benchmarks; the step really trains.
    pub fn profile_step(&mut self, x: &Tensor, y: &Tensor) -> Result<(Vec<(f64, f64)>, f64)> {
        let n = self.check_input(x)?;
        self.check_targets(y, n)?;
        let idx: Vec<usize> = (0..n).collect();
        self.load_batch(x, Some(y), &idx);
        let mut times = vec![(0.0, 0.0); self.layers.len()];
        let r = self.train_step_timed(Some(&mut times))?;
        Ok((times, r.optimizer_seconds))
    }

    /// The outputs of every layer for `x` (for feature maps and layer-by-layer checks).
    pub fn layer_outputs(&mut self, x: &Tensor) -> Result<Vec<Tensor>> {
        let n = self.check_input(x)?;
        let idx: Vec<usize> = (0..n).collect();
        self.load_batch(x, None, &idx);
        self.forward(n, false, false);
        Ok(self.acts[1..].to_vec())
    }
}

/// Applies `opt` to one weight, splitting large weights over the worker threads (each value's
/// update is independent, so the result does not depend on the split).
fn update_param(opt: &Optimizer, info: &StepInfo, value: &mut [f32], grad: &[f32], slots: &mut [Vec<f32>]) {
    let n = value.len();
    let k = slots.len();
    let parts = if n >= 1 << 16 { parallel::workers() } else { 1 };
    if parts <= 1 {
        let mut refs: [&mut [f32]; 3] = [&mut [], &mut [], &mut []];
        for (r, s) in refs.iter_mut().zip(slots.iter_mut()) {
            *r = s.as_mut_slice();
        }
        opt.update_with(info, value, grad, &mut refs[..k]);
        return;
    }
    let vs = SharedMut::new(value);
    let mut it = slots.iter_mut();
    let ss: [Option<SharedMut<f32>>; 3] = [
        it.next().map(|s| SharedMut::new(s.as_mut_slice())),
        it.next().map(|s| SharedMut::new(s.as_mut_slice())),
        it.next().map(|s| SharedMut::new(s.as_mut_slice())),
    ];
    parallel::run(parts, |p| {
        let r = n * p / parts..n * (p + 1) / parts;
        // SAFETY: each part touches a disjoint range of the weight and its slots.
        unsafe {
            let mut refs: [&mut [f32]; 3] = [&mut [], &mut [], &mut []];
            for (dst, src) in refs.iter_mut().zip(ss.iter()) {
                if let Some(s) = src {
                    *dst = s.slice(r.clone());
                }
            }
            opt.update_with(info, vs.slice(r.clone()), &grad[r], &mut refs[..k]);
        }
    });
}

/// True when two shapes are equal once axes of size 1 are dropped (so a `[28, 28]` image fits
/// a `[28, 28, 1]` input).
fn same_up_to_unit_axes(a: &[usize], b: &[usize]) -> bool {
    let strip = |s: &[usize]| s.iter().copied().filter(|&d| d != 1).collect::<Vec<_>>();
    a == b || strip(a) == strip(b)
}

/// `1234567` → `"1,234,567"`.
pub fn group_thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// Keras' size string: `241.04 KB`, `0.00 B`.
fn human_bytes(bytes: usize) -> String {
    let b = bytes as f64;
    if b < 1024.0 {
        format!("{b:.2} B")
    } else if b < 1024.0 * 1024.0 {
        format!("{:.2} KB", b / 1024.0)
    } else if b < 1024.0 * 1024.0 * 1024.0 {
        format!("{:.2} MB", b / (1024.0 * 1024.0))
    } else {
        format!("{:.2} GB", b / (1024.0 * 1024.0 * 1024.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::conv::Padding;
    use crate::layers::{Conv2D, Dense, Dropout, Flatten, MaxPooling2D};
    use crate::optimizers::Adam;

    fn tiny() -> Sequential {
        let mut m = Sequential::new().seed(3);
        m.add(Conv2D::new(3, 3).padding(Padding::Same).activation(Activation::Tanh).input_shape([6, 6, 1]));
        m.add(MaxPooling2D::new(2));
        m.add(Flatten::new());
        m.add(Dropout::new(0.2));
        m.add(Dense::new(4).activation(Activation::Softmax));
        m
    }

    #[test]
    fn names_follow_keras() {
        let mut m = tiny();
        m.build().unwrap();
        let names: Vec<&str> = m.layers().iter().map(|l| l.name()).collect();
        assert_eq!(names, ["conv2d", "max_pooling2d", "flatten", "dropout", "dense"]);
        let mut m = Sequential::new();
        m.add(Dense::new(2).input_shape([3]));
        m.add(Dense::new(2).name("dense_1"));
        m.add(Dense::new(2));
        m.build().unwrap();
        let names: Vec<&str> = m.layers().iter().map(|l| l.name()).collect();
        assert_eq!(names, ["dense", "dense_1", "dense_2"]);
    }

    #[test]
    fn summary_counts_parameters() {
        let mut m = tiny();
        let s = m.summary().unwrap();
        // conv 3*3*1*3 + 3 = 30; dense 27*4 + 4 = 112
        assert!(s.contains("(None, 6, 6, 3)") && s.contains("│            30 │"), "{s}");
        assert!(s.contains(" Total params: 142 (568.00 B)"), "{s}");
        assert_eq!(group_thousands(61706), "61,706");
        assert_eq!(group_thousands(100), "100");
    }

    #[test]
    fn model_gradient_matches_finite_differences_of_the_loss() {
        // Full train-step gradient (fused softmax + cross-entropy, penalties) against central
        // differences of the evaluated loss, with dropout off for a deterministic loss.
        let mut m = Sequential::new().seed(5);
        m.add(
            Conv2D::new(2, 3)
                .activation(Activation::Tanh)
                .kernel_regularizer(crate::regularizers::l2(0.05))
                .input_shape([5, 5, 2]),
        );
        m.add(Flatten::new());
        m.add(Dense::new(3).activation(Activation::Softmax).kernel_regularizer(crate::regularizers::l1(0.01)));
        check_model_gradient(m, &[5, 5, 2]);
        // ReLU convolutions followed by max pooling: the pooling folds in relu'.
        let mut m = Sequential::new().seed(6);
        m.add(Conv2D::new(4, 3).activation(Activation::Relu).input_shape([9, 9, 2]));
        m.add(MaxPooling2D::new(2));
        m.add(Conv2D::new(3, 2).activation(Activation::Relu).padding(Padding::Same));
        m.add(MaxPooling2D::new(2));
        m.add(Flatten::new());
        m.add(Dense::new(3).activation(Activation::Softmax));
        check_model_gradient(m, &[9, 9, 2]);
    }

    fn check_model_gradient(mut m: Sequential, shape: &[usize]) {
        m.compile(
            Loss::CategoricalCrossentropy,
            crate::optimizers::Sgd { learning_rate: 0.0, ..Default::default() },
            &[],
        )
        .unwrap();
        let mut rng = Rng::new(1);
        let per: usize = shape.iter().product();
        let x = Tensor::from_vec(
            &[4, shape[0], shape[1], shape[2]],
            (0..4 * per).map(|_| rng.uniform_range(-1.0, 1.0)).collect(),
        )
        .unwrap();
        let y = Tensor::from_vec(&[4, 3], vec![1., 0., 0., 0., 1., 0., 0., 0., 1., 0., 1., 0.]).unwrap();
        let idx: Vec<usize> = (0..4).collect();
        m.load_batch(&x, Some(&y), &idx);
        m.train_step().unwrap(); // lr 0: weights unchanged, gradients (with penalties) stored
        let grads: Vec<Vec<f32>> = m.params().map(|p| p.grad.clone()).collect();
        let loss_at = |m: &mut Sequential| m.evaluate(&x, &y, 4).unwrap()["loss"];
        let h = 1e-3f32;
        for (pi, g) in grads.iter().enumerate() {
            for i in (0..g.len()).step_by(3) {
                let (li, wi) = locate(&m, pi);
                let orig = m.layers[li].params()[wi].value[i];
                m.layers[li].params_mut()[wi].value[i] = orig + h;
                let lp = loss_at(&mut m);
                m.layers[li].params_mut()[wi].value[i] = orig - h;
                let lm = loss_at(&mut m);
                m.layers[li].params_mut()[wi].value[i] = orig;
                let fd = ((lp - lm) / (2.0 * h as f64)) as f32;
                assert!((fd - g[i]).abs() < 2e-3 + 2e-2 * fd.abs(), "param {pi}[{i}]: fd {fd} vs {}", g[i]);
            }
        }
    }

    fn locate(m: &Sequential, mut pi: usize) -> (usize, usize) {
        for (li, l) in m.layers.iter().enumerate() {
            if pi < l.params().len() {
                return (li, pi);
            }
            pi -= l.params().len();
        }
        panic!("no such parameter")
    }

    #[test]
    fn training_reduces_the_loss_and_predict_matches_evaluate() {
        let mut m = tiny();
        m.compile(
            Loss::CategoricalCrossentropy,
            Adam { learning_rate: 0.01, ..Default::default() },
            &[Metric::Accuracy],
        )
        .unwrap();
        let mut rng = Rng::new(2);
        let n = 64;
        let mut xs = vec![0.0; n * 36];
        let mut ys = vec![0.0; n * 4];
        for i in 0..n {
            let c = i % 4;
            for j in 0..36 {
                xs[i * 36 + j] = rng.uniform() * 0.3 + if j / 9 == c { 1.0 } else { 0.0 };
            }
            ys[i * 4 + c] = 1.0;
        }
        let x = Tensor::from_vec(&[n, 6, 6, 1], xs).unwrap();
        let y = Tensor::from_vec(&[n, 4], ys).unwrap();
        let before = m.evaluate(&x, &y, 16).unwrap()["loss"];
        for _ in 0..60 {
            m.train_on_batch(&x, &y).unwrap();
        }
        let after = m.evaluate(&x, &y, 16).unwrap();
        assert!(after["loss"] < before * 0.5, "{before} -> {after:?}");
        assert!(after["accuracy"] > 0.9);
        let p = m.predict(&x, 7).unwrap();
        assert_eq!(p.shape(), &[n, 4]);
        let loss = Loss::CategoricalCrossentropy.compute(p.data(), y.data(), 4, None, false) as f64;
        assert!((loss - after["loss"]).abs() < 1e-5);
    }

    #[test]
    fn bad_inputs_are_errors_not_panics() {
        let mut m = tiny();
        let x = Tensor::zeros(&[2, 5, 5, 1]);
        assert!(m.predict(&x, 2).is_err());
        let x = Tensor::zeros(&[2, 6, 6]);
        assert!(m.predict(&x, 2).is_ok(), "a missing channel axis of size 1 is accepted");
        let y = Tensor::zeros(&[2]);
        assert!(m.evaluate(&Tensor::zeros(&[2, 6, 6, 1]), &y, 2).is_err(), "not compiled");
        m.compile(Loss::CategoricalCrossentropy, Adam::default(), &[]).unwrap();
        assert!(m.evaluate(&Tensor::zeros(&[2, 6, 6, 1]), &y, 2).is_err(), "sparse targets for a one-hot loss");
        let mut empty = Sequential::new();
        assert!(empty.build().is_err());
    }
}
