//! The training step at the model's heart — forward through the layers, loss, backward,
//! penalties, optimizer update — and the buffers a batch goes through.
//!
//! The model owns one activation buffer and one gradient buffer per layer boundary, sized to
//! the largest batch seen; after the first step a training step allocates nothing.

use super::{Sequential, StepResult, Tally, Totals};
use crate::error::{Error, Result};
use crate::nn::layers::{ForwardCtx, Inputs, Layer, Param};
use crate::nn::model::Logs;
use crate::nn::optimizers::{Optimizer, StepInfo};
use crate::parallel::{self, SharedMut};
use crate::tensor::Tensor;
use std::time::Instant;

impl Sequential {
    /// Runs the forward pass on `acts[0]`, which holds `n` samples. With `alias`, layers that
    /// pass their input through unchanged (Flatten, Dropout outside training) swap buffers
    /// instead of copying: their output buffer takes the input's data and the input buffer
    /// is left stale until the backward pass swaps it back. With `times`, each layer's
    /// seconds go to `times[i].0`.
    ///
    /// Layer `i` writes node `n_in + i` from the nodes it reads, all before its own; a node is
    /// handed on by swapping only when its one reader is the passthrough layer (otherwise
    /// other readers still need it).
    pub(super) fn forward(&mut self, n: usize, training: bool, alias: bool, mut times: Option<&mut [(f64, f64)]>) {
        let mut ctx = ForwardCtx { training, rng: &mut self.rng };
        let n_in = self.n_in;
        for (i, layer) in self.layers.iter_mut().enumerate() {
            let t = times.is_some().then(Instant::now);
            let o = n_in + i;
            let ins = &self.inbound[i];
            let (xs, ys) = self.acts.split_at_mut(o);
            if layer.multi_input() {
                ys[0].resize_batch(n, layer.output_shape());
                layer.forward_multi(Inputs::new(xs, ins), &mut ys[0], &mut ctx);
            } else if alias && layer.is_passthrough(training) && self.private[ins[0]] {
                std::mem::swap(&mut xs[ins[0]], &mut ys[0]);
                ys[0].resize_batch(n, layer.output_shape());
            } else {
                ys[0].resize_batch(n, layer.output_shape());
                layer.forward(&xs[ins[0]], &mut ys[0], &mut ctx);
            }
            if let (Some(t), Some(times)) = (t, times.as_deref_mut()) {
                times[i].0 = t.elapsed().as_secs_f64();
            }
        }
    }

    /// Sum of weight and activity penalties for the current batch of `n` samples.
    fn penalty(&self, n: usize) -> f32 {
        let mut total = 0.0f32;
        for (i, l) in self.layers.iter().enumerate() {
            // Keras counts the weight penalties of trainable weights only.
            for p in l.params().iter().filter(|p| l.trainable() && p.trainable) {
                if let Some(r) = p.regularizer {
                    total += r.penalty(&p.value);
                }
            }
            if let Some(r) = l.activity_regularizer() {
                total += r.penalty(self.acts[self.n_in + i].data()) / n as f32;
            }
        }
        total
    }

    /// Metric tallies of the current output against the current targets.
    fn tally(&self) -> [Tally; 4] {
        let mut t = [Tally::default(); 4];
        let Some(c) = &self.compiled else { return t };
        let out = &self.acts[self.outputs[0]];
        let width = self.out_shape().last().copied().unwrap_or(1);
        for (i, m) in c.metrics.iter().enumerate() {
            let (correct, count) = m.resolve(c.loss).count(out.data(), self.targets.data(), width);
            t[i] = Tally { correct, count };
        }
        t
    }

    /// One step of training on the batch in `acts[0]` / `targets`: forward, loss, backward,
    /// penalties, optimizer update.
    pub(crate) fn train_step(&mut self) -> Result<StepResult> {
        self.train_step_timed(None)
    }

    /// [`Sequential::train_step`], recording each layer's forward and backward seconds in
    /// `times` when given, and the optimizer's in the result.
    pub(super) fn train_step_timed(&mut self, mut times: Option<&mut [(f64, f64)]>) -> Result<StepResult> {
        let (loss_fn, fused) = {
            let c = self.require_compiled()?;
            (c.loss, c.fused)
        };
        self.require_single_io("training")?;
        let clock = |on: bool| on.then(Instant::now);
        let n = self.acts[0].batch();
        let (l, n_in, out) = (self.layers.len(), self.n_in, self.outputs[0]);
        self.forward(n, true, true, times.as_deref_mut());
        let width = self.out_shape().last().copied().unwrap_or(1);
        // The output node's shape, borrowed field by field (no copy per step).
        let out_shape: &[usize] = if out >= n_in {
            self.layers[out - n_in].output_shape()
        } else {
            match &self.graph {
                Some(g) => &g.input_shapes[out],
                None => self.input_shape.as_deref().unwrap_or(&[]),
            }
        };
        self.grads[out].resize_batch(n, out_shape);
        let mut loss =
            loss_fn.compute(self.acts[out].data(), self.targets.data(), width, Some(self.grads[out].data_mut()), fused);
        loss += self.penalty(n);
        self.filled.fill(false);
        self.filled[out] = true;
        for i in (0..l).rev() {
            let t = clock(times.is_some());
            self.backward_layer(i, n_in + i, n);
            if let (Some(t), Some(times)) = (t, times.as_deref_mut()) {
                times[i].1 = t.elapsed().as_secs_f64();
            }
        }
        let tallies = self.tally();
        let t = clock(times.is_some());
        self.apply_gradients()?;
        let opt_secs = t.map_or(0.0, |t| t.elapsed().as_secs_f64());
        Ok(StepResult { loss, tallies, optimizer_seconds: opt_secs })
    }

    /// Back-propagates through layer `i` (output node `o`, batch `n`). A node read by several
    /// layers gets the sum of their gradients: the first contribution is written in place,
    /// the others are made in `scratch` and added.
    fn backward_layer(&mut self, i: usize, o: usize, n: usize) {
        if !self.filled[o] {
            return; // nothing the loss depends on reads this layer's output
        }
        let n_in = self.n_in;
        let x = self.inbound[i][0];
        let layer = &self.layers[i];
        if !layer.multi_input() && layer.is_passthrough(true) && self.private[x] {
            // Undo the forward swap: the input buffer gets its data back, and the output
            // gradient becomes the input gradient as it is.
            self.acts.swap(x, o);
            self.grads.swap(x, o);
            let in_shape: &[usize] = if x >= n_in {
                self.layers[x - n_in].output_shape()
            } else {
                match &self.graph {
                    Some(g) => &g.input_shapes[x],
                    None => self.input_shape.as_deref().unwrap_or(&[]),
                }
            };
            self.acts[x].resize_batch(n, in_shape);
            self.grads[x].resize_batch(n, in_shape);
            self.filled[x] = true;
            return;
        }
        let Sequential { layers, acts, grads, inbound, filled, scratch, .. } = self;
        let layer = &mut layers[i];
        let ins = &inbound[i];
        if let Some(r) = layer.activity_regularizer() {
            r.add_gradient(acts[o].data(), grads[o].data_mut(), 1.0 / n as f32);
        }
        let (ga, gb) = grads.split_at_mut(o);
        let dy = &mut gb[0];
        for (k, &x) in ins.iter().enumerate() {
            let multi = layer.multi_input();
            if x < n_in {
                // The model's inputs need no gradient.
                if !multi {
                    layer.backward(&acts[x], &acts[o], dy, None);
                }
                continue;
            }
            let shape = acts[x].shape().get(1..).unwrap_or(&[]);
            let first = !filled[x];
            let dx = if first {
                ga[x].resize_batch(n, shape);
                &mut ga[x]
            } else {
                scratch.resize_batch(n, shape);
                &mut *scratch
            };
            if multi {
                layer.backward_multi(Inputs::new(acts, ins), &acts[o], dy, k, dx);
            } else {
                layer.backward(&acts[x], &acts[o], dy, Some(dx));
            }
            if first {
                filled[x] = true;
            } else {
                ga[x].data_mut().iter_mut().zip(scratch.data()).for_each(|(g, s)| *g += s);
            }
        }
    }

    /// Adds weight penalties' gradients and applies one optimizer step to every trainable
    /// weight in Keras' order — gradients clipped, weights decayed, the update, then the
    /// weight's constraint (see [`crate::nn::optimizers`]); frozen layers keep their weights.
    /// The optimizer is borrowed in place, never copied. A constraint convnet cannot apply
    /// stops the step before any weight changes.
    fn apply_gradients(&mut self) -> Result<()> {
        check_constraints(&self.layers)?;
        let Sequential { layers, compiled, opt_state, .. } = self;
        let Some(c) = compiled.as_mut() else { return Ok(()) };
        let opt = &c.optimizer;
        // Slots belong to the trainable weights; they are made on the first step, and again
        // when the trainable weights changed since (a layer frozen without compiling again).
        let sizes = layers
            .iter()
            .filter(|l| l.trainable())
            .flat_map(|l| l.params().iter().filter(|p| p.trainable).map(Param::len));
        opt.prepare_state(opt_state, sizes);
        let info = opt.next_step(opt_state);
        let mut sum_sq = 0.0f64;
        for layer in layers.iter_mut().filter(|l| l.trainable()) {
            for p in layer.params_mut().iter_mut().filter(|p| p.trainable) {
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
        for layer in layers.iter_mut().filter(|l| l.trainable()) {
            for p in layer.params_mut().iter_mut().filter(|p| p.trainable) {
                opt.clip_gradient(&mut p.grad, global_norm);
                opt.decay_weight(&info, &mut p.value);
                update_param(opt, &info, &mut p.value, &p.grad, &mut opt_state.slots[pi]);
                p.apply_constraint();
                pi += 1;
            }
        }
        c.optimizer.sync_learning_rate(opt_state.iterations);
        Ok(())
    }

    /// Loss and metrics of the batch in `acts[0]` / `targets`, without training.
    pub(super) fn test_step(&mut self) -> Result<StepResult> {
        let loss_fn = self.require_compiled()?.loss;
        let n = self.acts[0].batch();
        self.require_single_io("evaluate")?;
        self.forward(n, false, true, None);
        let width = self.out_shape().last().copied().unwrap_or(1);
        let loss = loss_fn.compute(self.acts[self.outputs[0]].data(), self.targets.data(), width, None, false)
            + self.penalty(n);
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
        let mut totals = Totals::default();
        totals.add(&r, n);
        let mut logs = Logs::new();
        totals.write_logs(&mut logs, &self.require_compiled()?.metrics);
        Ok(logs)
    }
}

/// Fails, naming the layer and the class, when a trainable weight of `layers` has a constraint convnet
/// cannot apply (kept from a file): training would silently skip it.
fn check_constraints(layers: &[Box<dyn Layer>]) -> Result<()> {
    for l in layers.iter().filter(|l| l.trainable()) {
        for p in l.params().iter().filter(|p| p.trainable) {
            if let Some(c) = p.constraint.as_ref().filter(|c| !c.is_supported()) {
                return Err(Error::config(format!(
                    "layer {:?}: the {} constraint {} is not one convnet can apply, so the model cannot be \
                     trained (it still loads, predicts and saves); use MaxNorm, MinMaxNorm, NonNeg or UnitNorm",
                    l.name(),
                    p.name,
                    c.class_name()
                )));
            }
        }
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::conv::Padding;
    use crate::nn::activations::Activation;
    use crate::nn::layers::{Conv2D, Dense, Flatten, MaxPooling2D};
    use crate::nn::losses::Loss;
    use crate::nn::optimizers::Adam;
    use crate::rng::Rng;

    /// A frozen layer keeps its weights through training, is counted as non-trainable, gets
    /// no optimizer slots and no weight penalty, and still passes gradients to the layers
    /// before it.
    #[test]
    fn frozen_layers_are_not_trained() {
        let mut m = Sequential::new().seed(5);
        m.add(Conv2D::new(3, 3).activation(Activation::Relu).input_shape([6, 6, 1]));
        m.add(Flatten::new());
        m.add(Dense::new(5).activation(Activation::Tanh).kernel_regularizer(crate::nn::regularizers::l2(0.5)));
        m.add(Dense::new(3).activation(Activation::Softmax));
        m.build().unwrap();
        m.layers_mut()[2].set_trainable(false);
        m.compile(Loss::CategoricalCrossentropy, Adam::default(), &[]).unwrap();
        let mut rng = Rng::new(1);
        let x = Tensor::from_vec(&[4, 6, 6, 1], (0..144).map(|_| rng.uniform()).collect()).unwrap();
        let y = crate::data::to_categorical(&[0, 1, 2, 1], 3);
        let before = m.get_weights();
        let loss_with_frozen_penalty_excluded = m.evaluate(&x, &y, 4).unwrap()["loss"];
        for _ in 0..3 {
            m.train_on_batch(&x, &y).unwrap();
        }
        let after = m.get_weights();
        assert_eq!(before[2], after[2], "frozen kernel");
        assert_eq!(before[3], after[3], "frozen bias");
        assert_ne!(before[0], after[0], "the conv layer before the frozen one still learns");
        assert_ne!(before[4], after[4]);
        let shapes: Vec<usize> = m.optimizer_state().slots.iter().map(|s| s[0].len()).collect();
        assert_eq!(shapes, [27, 3, 15, 3], "slots for the trainable weights only");
        assert_eq!(m.count_trainable_params(), 48);
        let summary = m.summary().unwrap();
        assert!(
            summary.contains("Trainable params: 48 ") && summary.contains("Non-trainable params: 245 "),
            "{summary}"
        );
        // Keras leaves a frozen weight's regularizer out of the loss.
        m.layers_mut()[2].set_trainable(true);
        m.set_weights(&before).unwrap();
        let with_penalty = m.evaluate(&x, &y, 4).unwrap()["loss"];
        assert!(with_penalty > loss_with_frozen_penalty_excluded + 1e-3);
        // Unfreezing without compiling again gives the optimizer fresh slots for every weight.
        m.train_on_batch(&x, &y).unwrap();
        assert_eq!(m.optimizer_state().slots.len(), 6);
    }

    #[test]
    fn model_gradient_matches_finite_differences_of_the_loss() {
        // Full train-step gradient (fused softmax + cross-entropy, penalties) against central
        // differences of the evaluated loss, with dropout off for a deterministic loss.
        let mut m = Sequential::new().seed(5);
        m.add(
            Conv2D::new(2, 3)
                .activation(Activation::Tanh)
                .kernel_regularizer(crate::nn::regularizers::l2(0.05))
                .input_shape([5, 5, 2]),
        );
        m.add(Flatten::new());
        m.add(Dense::new(3).activation(Activation::Softmax).kernel_regularizer(crate::nn::regularizers::l1(0.01)));
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
            crate::nn::optimizers::Sgd { learning_rate: 0.0, ..Default::default() },
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
}
