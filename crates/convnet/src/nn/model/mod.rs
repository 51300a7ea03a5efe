//! `Sequential`: a stack of layers with Keras' workflow — add, compile, fit, evaluate, predict,
//! summary. This file holds the stack itself (adding, naming, building, compiling, weights);
//! the training step is in `step.rs`, inference in `infer.rs`, the
//! summary table in `summary.rs`.

mod functional;
mod infer;
mod step;
mod summary;

pub use functional::{Functional, Node, Nodes};

/// The residual test model of `functional.rs`, for the tests of other modules.
#[cfg(test)]
pub(crate) fn functional_tests_residual(seed: u64) -> Sequential {
    functional::tests::residual(seed)
}
pub use summary::group_thousands;

use crate::error::{Error, Result};
use crate::nn::activations::Activation;
use crate::nn::layers::{Layer, Param};
use crate::nn::losses::Loss;
use crate::nn::metrics::Metric;
use crate::nn::optimizers::{Optimizer, OptimizerState};
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

/// Running sums over the batches of a pass (an epoch, an evaluation): the loss weighted by
/// batch size and each metric's tally. The one place where logs are made from tallies.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Totals {
    /// Sum of batch losses, each times its batch size.
    pub loss_sum: f64,
    /// Samples seen.
    pub seen: usize,
    /// One tally per compiled metric.
    pub tallies: [Tally; 4],
}

impl Totals {
    /// Adds a step's results over a batch of `n` samples.
    pub fn add(&mut self, r: &StepResult, n: usize) {
        self.loss_sum += r.loss as f64 * n as f64;
        self.seen += n;
        for (t, rt) in self.tallies.iter_mut().zip(&r.tallies) {
            t.correct += rt.correct;
            t.count += rt.count;
        }
    }

    /// Writes `loss` and each metric's mean into `logs`, in place: once the keys exist, this
    /// allocates nothing (the fit loop calls it after every batch).
    pub fn write_logs(&self, logs: &mut Logs, metrics: &[Metric]) {
        let mut set = |key: &str, v: f64| match logs.get_mut(key) {
            Some(slot) => *slot = v,
            None => {
                logs.insert(key.to_string(), v);
            }
        };
        set("loss", self.loss_sum / self.seen.max(1) as f64);
        for (m, t) in metrics.iter().zip(&self.tallies) {
            set(m.name(), t.correct as f64 / t.count.max(1) as f64);
        }
    }
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

/// A model: a linear stack of layers (Keras' `Sequential`) or a graph of layers with
/// several inputs, outputs and skip connections (Keras' functional `Model`, built with
/// [`Functional`]). Both run on one engine.
///
/// The values between layers are *nodes*: nodes `0..k` are the model's `k` inputs (one for a
/// stack) and node `k + i` is the output of layer `i`. Layers are kept in an order where each
/// reads only nodes before its own (Keras' `model.layers` order), so weights, files,
/// checkpoints and optimizer slots all follow the layer list as for a stack.
pub struct Sequential {
    name: String,
    layers: Vec<Box<dyn Layer>>,
    input_shape: Option<Vec<usize>>,
    /// Number of leading layers that are built.
    built: usize,
    compiled: Option<Compiled>,
    rng: Rng,
    /// The value of each node: the input batches, then each layer's output.
    acts: Vec<Tensor>,
    /// `grads[j]` is the gradient w.r.t. `acts[j]`.
    grads: Vec<Tensor>,
    /// Targets of the current batch.
    targets: Tensor,
    opt_state: OptimizerState,
    class_names: Option<Vec<String>>,
    /// The wiring of a graph model; `None` for a stack, each layer reading the one before.
    graph: Option<Graph>,
    /// Number of model inputs: nodes `0..n_in`.
    n_in: usize,
    /// For each layer, the nodes it reads.
    inbound: Vec<Vec<usize>>,
    /// The model's output nodes.
    outputs: Vec<usize>,
    /// Per node, true when one layer alone reads it and it is no model output: only then may
    /// a layer hand the node's buffer on (passthrough aliasing) or fold into its producer's
    /// backward (ReLU into max pooling).
    private: Vec<bool>,
    /// Per node, whether its gradient already holds a contribution in the current backward
    /// pass (a node read by several layers gets the sum of their contributions).
    filled: Vec<bool>,
    /// Where a further contribution to a node's gradient is made before it is added.
    scratch: Tensor,
}

/// The wiring of a graph model: its inputs (as Keras' `InputLayer`s) and, for each layer, the
/// nodes it reads (see [`Sequential`] for the numbering).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Graph {
    /// Names of the model's inputs (their `InputLayer`s).
    pub input_names: Vec<String>,
    /// Per-sample shape of each input.
    pub input_shapes: Vec<Vec<usize>>,
    /// For each layer, the nodes it reads, in argument order.
    pub inbound: Vec<Vec<usize>>,
    /// The model's output nodes, in order.
    pub outputs: Vec<usize>,
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
            graph: None,
            n_in: 1,
            inbound: Vec::new(),
            outputs: Vec::new(),
            private: Vec::new(),
            filled: Vec::new(),
            scratch: Tensor::default(),
        }
    }

    /// A graph model from layers in an order where each reads only earlier nodes, and their
    /// wiring (checked when the model is built).
    pub(crate) fn from_graph(name: &str, layers: Vec<Box<dyn Layer>>, graph: Graph) -> Self {
        let mut m = Sequential::new().with_name(name);
        m.input_shape = graph.input_shapes.first().cloned();
        m.layers = layers;
        m.graph = Some(graph);
        m.rewire();
        m
    }

    /// The wiring of a graph model (Keras' functional `Model`); `None` for a stack.
    pub fn graph(&self) -> Option<&Graph> {
        self.graph.as_ref()
    }

    /// Number of model inputs.
    pub fn input_count(&self) -> usize {
        self.n_in
    }

    /// The nodes layer `i` reads (see [`Sequential`] for the numbering).
    pub fn inbound(&self, i: usize) -> &[usize] {
        &self.inbound[i]
    }

    /// The model's output nodes.
    pub fn output_nodes(&self) -> &[usize] {
        &self.outputs
    }

    /// The per-sample shape of node `node` (built models).
    pub fn node_shape(&self, node: usize) -> &[usize] {
        if node >= self.n_in {
            return self.layers[node - self.n_in].output_shape();
        }
        match &self.graph {
            Some(g) => &g.input_shapes[node],
            None => self.input_shape.as_deref().unwrap_or(&[]),
        }
    }

    /// Recomputes the derived wiring (inbound nodes, outputs, single readers) from the graph
    /// or, for a stack, from the layer count.
    fn rewire(&mut self) {
        let l = self.layers.len();
        match &self.graph {
            Some(g) => {
                self.n_in = g.input_names.len();
                self.inbound.clone_from(&g.inbound);
                self.outputs.clone_from(&g.outputs);
            }
            None => {
                self.n_in = 1;
                self.inbound = (0..l).map(|i| vec![i]).collect();
                self.outputs = vec![l];
            }
        }
        let nodes = self.n_in + l;
        let mut readers = vec![0usize; nodes];
        for &x in self.inbound.iter().flatten() {
            if x < nodes {
                readers[x] += 1;
            }
        }
        self.private = (0..nodes).map(|x| readers[x] == 1 && !self.outputs.contains(&x)).collect();
        self.filled.resize(nodes, false);
    }

    /// How many layers read `node`.
    pub(crate) fn readers(&self, node: usize) -> usize {
        self.inbound.iter().flatten().filter(|&&x| x == node).count()
    }

    /// Fails unless the model has one input and one output (training and the one-tensor
    /// `evaluate`/`predict` ask for that).
    pub(crate) fn require_single_io(&self, what: &str) -> Result<()> {
        if self.n_in != 1 || self.outputs.len() != 1 {
            return Err(Error::State(format!(
                "{what} needs a model with one input and one output, this one has {} inputs and {} outputs \
                 (predict_many runs such models)",
                self.n_in,
                self.outputs.len()
            )));
        }
        Ok(())
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
        self.rewire();
        self
    }

    /// Declares the per-sample input shape (Keras' `Input(shape=…)`).
    pub fn set_input_shape(&mut self, shape: &[usize]) {
        if self.input_shape.as_deref() != Some(shape) {
            self.input_shape = Some(shape.to_vec());
            if let Some(g) = self.graph.as_mut().filter(|g| !g.input_shapes.is_empty()) {
                g.input_shapes[0] = shape.to_vec();
            }
            self.built = 0;
        }
    }

    /// The per-sample input shape, once known.
    pub fn input_shape(&self) -> Option<&[usize]> {
        self.input_shape.as_deref()
    }

    /// True when the model scales its own input — it begins with `Rescaling` or
    /// `Normalization` — so pictures are fed as raw 0–255 pixel values, as in Keras.
    pub fn takes_raw_pixels(&self) -> bool {
        self.layers.first().is_some_and(|l| matches!(l.class_name(), "Rescaling" | "Normalization"))
    }

    /// The factor pixels (0–255) are multiplied by before they enter the model: 1 for a model
    /// that [takes raw pixels](Sequential::takes_raw_pixels), else 1/255 (values in [0, 1]).
    pub fn pixel_scale(&self) -> f32 {
        if self.takes_raw_pixels() {
            1.0
        } else {
            1.0 / 255.0
        }
    }

    /// The per-sample output shape (builds the model if needed).
    pub fn output_shape(&mut self) -> Result<Vec<usize>> {
        self.build()?;
        Ok(self.out_shape().to_vec())
    }

    fn out_shape(&self) -> &[usize] {
        if let Some(&o) = self.outputs.first().filter(|&&o| o < self.n_in + self.layers.len()) {
            return self.node_shape(o);
        }
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
        if let Some(g) = &self.graph {
            check_graph(g, self.layers.len())?;
        }
        self.assign_names();
        self.rewire();
        let mut shape = if self.built == 0 { input } else { self.layers[self.built - 1].output_shape().to_vec() };
        let mut weights = self.layers[..self.built].iter().map(|l| l.count_params()).sum::<usize>();
        for i in self.built..self.layers.len() {
            // A builder argument that could not be read (`.activation("rleu")`) fails here.
            self.layers[i].meta().check().map_err(|e| match e {
                Error::Config(m) => Error::config(format!("layer {} ({}): {m}", i, self.layers[i].name())),
                other => other,
            })?;
            let built = if self.graph.is_some() {
                let shapes: Vec<Vec<usize>> = self.inbound[i].iter().map(|&x| self.node_shape(x).to_vec()).collect();
                self.layers[i].build_multi(&shapes, &mut self.rng)
            } else {
                self.layers[i].build(&shape, &mut self.rng)
            };
            shape = built.map_err(|e| match e {
                Error::Shape(m) => Error::Shape(format!("layer {} ({}): {m}", i, self.layers[i].name())),
                other => other,
            })?;
            weights += self.layers[i].count_params();
            let values = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
            if values.is_none_or(|v| v > MAX_SAMPLE_VALUES) || weights > crate::nn::layers::MAX_WEIGHT_VALUES {
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
        self.acts.resize_with(self.n_in + self.layers.len(), Tensor::default);
        self.grads.resize_with(self.n_in + self.layers.len(), Tensor::default);
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
        taken.extend(self.graph.iter().flat_map(|g| g.input_names.iter().cloned()));
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

    /// Fixes the loss, optimizer and metrics for training (Keras' `compile`). The loss and the
    /// optimizer are typed (`Loss::CategoricalCrossentropy`, `Adam::default()`) or Keras' names
    /// (`"categorical_crossentropy"`, `"adam"`); an unknown name is an error listing the known
    /// ones. For Keras' names throughout, metrics too, see [`Sequential::compile_str`].
    pub fn compile<L, O>(&mut self, loss: L, optimizer: O, metrics: &[Metric]) -> Result<()>
    where
        L: TryInto<Loss, Error: Into<Error>>,
        O: TryInto<Optimizer, Error: Into<Error>>,
    {
        let loss: Loss = loss.try_into().map_err(Into::into)?;
        let optimizer: Optimizer = optimizer.try_into().map_err(Into::into)?;
        optimizer.validate()?;
        loss.validate()?;
        if metrics.len() > 4 {
            return Err(Error::config("at most four metrics"));
        }
        self.rewire();
        // A ReLU layer read only by one that can fold relu' into its own input gradient (max
        // pooling) hands its output gradient through as the pre-activation one. A node read by
        // several layers gets the sum of their gradients, which no one layer can fold.
        let n_in = self.n_in;
        for layer in self.layers.iter_mut() {
            layer.set_output_gradient_fused(false);
        }
        for i in 0..self.layers.len() {
            let x = self.inbound[i][0];
            let single = self.inbound[i].len() == 1 && !self.layers[i].multi_input();
            if !(single && x >= n_in && self.private[x]) {
                self.layers[i].fold_input_relu(false);
                continue;
            }
            let (head, tail) = self.layers.split_at_mut(i);
            let prev = &mut head[x - n_in];
            let foldable = prev.activation() == Activation::Relu && prev.activity_regularizer().is_none();
            let folded = tail[0].fold_input_relu(foldable) && foldable;
            prev.set_output_gradient_fused(folded);
        }
        // The loss folds the last activation's derivative into the output's gradient when
        // nothing else adds to that gradient.
        let mut fused = false;
        if let (&[out], true) = (&self.outputs[..], self.readers(self.outputs.first().copied().unwrap_or(0)) == 0) {
            if out >= n_in {
                let last = &mut self.layers[out - n_in];
                fused = loss.fusable_activation() == Some(last.activation()) && last.activity_regularizer().is_none();
                last.set_output_gradient_fused(fused);
            }
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

    /// Keras' `compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])`
    /// with Keras' names: `compile_str("adam", "categorical_crossentropy", &["accuracy"])`. The
    /// optimizer and the loss may come in either order (their names differ); an unknown name is
    /// an error listing the known ones.
    pub fn compile_str(&mut self, optimizer: &str, loss: &str, metrics: &[&str]) -> Result<()> {
        let (optimizer, loss) = match (Optimizer::parse(optimizer), Loss::parse(optimizer)) {
            (Err(_), Ok(_)) => (loss, optimizer),
            _ => (optimizer, loss),
        };
        let metrics = metrics.iter().map(|m| Metric::parse(m)).collect::<Result<Vec<_>>>()?;
        self.compile(Loss::parse(loss)?, Optimizer::parse(optimizer)?, &metrics)
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

    /// Replaces the optimizer's variables (when loading a saved model or checkpoint): one
    /// entry of slots per trainable weight, in [`Sequential::trainable_params`] order.
    pub fn set_optimizer_state(&mut self, state: OptimizerState) -> Result<()> {
        if !state.slots.is_empty() {
            let params: Vec<usize> = self.trainable_params().map(Param::len).collect();
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

    /// The weights training updates — those of trainable layers — in model order (Keras'
    /// `trainable_weights`): the optimizer keeps its slots for these, in this order.
    pub fn trainable_params(&self) -> impl Iterator<Item = &Param> {
        self.layers.iter().filter(|l| l.trainable()).flat_map(|l| l.params().iter().filter(|p| p.trainable))
    }

    /// Total number of weight values.
    pub fn count_params(&self) -> usize {
        self.layers.iter().map(|l| l.count_params()).sum()
    }

    /// Number of weight values training updates (Keras' "Trainable params").
    pub fn count_trainable_params(&self) -> usize {
        self.trainable_params().map(Param::len).sum()
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

    /// Builds and checks that `x` fits the input shape; returns the batch size.
    pub(crate) fn check_input(&mut self, x: &Tensor) -> Result<usize> {
        self.build()?;
        self.require_single_io("training, evaluate and predict")?;
        let want = self.input_shape.clone().unwrap_or_default();
        let got = &x.shape()[1.min(x.shape().len())..];
        if !same_up_to_unit_axes(got, &want) {
            return Err(Error::shape(format!(
                "the model expects input of shape {} but got {}",
                crate::nn::layers::shape_str(&want),
                crate::nn::layers::shape_str(got)
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
}

/// Checks a graph's wiring against its `layers` layers: each layer reads existing nodes
/// before its own, and the outputs exist.
fn check_graph(g: &Graph, layers: usize) -> Result<()> {
    let n_in = g.input_names.len();
    if n_in == 0 || g.input_shapes.len() != n_in {
        return Err(Error::config("a functional model needs at least one input with a shape"));
    }
    if g.inbound.len() != layers {
        return Err(Error::State(format!(
            "the functional model's wiring covers {} layers but it has {layers} (add layers through Functional)",
            g.inbound.len()
        )));
    }
    for (i, ins) in g.inbound.iter().enumerate() {
        if ins.is_empty() || ins.iter().any(|&x| x >= n_in + i) {
            return Err(Error::config(format!("layer {i} of the functional model reads no earlier node")));
        }
    }
    if g.outputs.is_empty() || g.outputs.iter().any(|&o| o >= n_in + layers) {
        return Err(Error::config("the functional model's outputs are not nodes of the model"));
    }
    Ok(())
}

/// True when two shapes are equal once axes of size 1 are dropped (so a `[28, 28]` image fits
/// a `[28, 28, 1]` input).
fn same_up_to_unit_axes(a: &[usize], b: &[usize]) -> bool {
    let strip = |s: &[usize]| s.iter().copied().filter(|&d| d != 1).collect::<Vec<_>>();
    a == b || strip(a) == strip(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::conv::Padding;
    use crate::nn::activations::Activation;
    use crate::nn::layers::{Conv2D, Dense, Dropout, Flatten, MaxPooling2D};
    use crate::nn::losses::Loss;
    use crate::nn::optimizers::Adam;

    /// A small model with every kind of layer.
    pub(crate) fn tiny() -> Sequential {
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
