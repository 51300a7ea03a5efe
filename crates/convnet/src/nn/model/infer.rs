//! Using a model: `evaluate`, `predict`, every layer's output, and a timed training step
//! for profiling. Inference runs in batches of at most [`MAX_INFERENCE_BATCH`] samples.

use super::{same_up_to_unit_axes, Sequential, Totals, MAX_INFERENCE_BATCH};
use crate::error::{Error, Result};
use crate::nn::model::Logs;
use crate::tensor::Tensor;

impl Sequential {
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
        self.require_compiled()?;
        let mut totals = Totals::default();
        let mut idx: Vec<usize> = Vec::with_capacity(bs);
        for s in 0..steps {
            idx.clear();
            idx.extend(s * bs..((s + 1) * bs).min(n));
            self.load_batch(x, Some(y), &idx);
            let r = self.test_step()?;
            totals.add(&r, idx.len());
            progress(s + 1, steps);
        }
        let mut logs = Logs::new();
        totals.write_logs(&mut logs, &self.require_compiled()?.metrics);
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
            self.forward(idx.len(), false, true, None);
            let o = &self.acts[self.outputs[0]];
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
        self.forward(n, false, false, None);
        Ok(self.acts[self.n_in..].to_vec())
    }

    /// The outputs of a model with any number of inputs and outputs (Keras' `predict` on a
    /// list): one tensor per model input, in the model's input order, all with the same
    /// number of samples; one tensor per output comes back.
    pub fn predict_many(&mut self, xs: &[Tensor], batch_size: usize) -> Result<Vec<Tensor>> {
        self.build()?;
        if xs.len() != self.n_in {
            return Err(Error::shape(format!(
                "the model has {} inputs but {} tensors were given",
                self.n_in,
                xs.len()
            )));
        }
        let n = xs.first().map_or(0, Tensor::batch);
        for (k, x) in xs.iter().enumerate() {
            let want = self.node_shape(k);
            let got = &x.shape()[1.min(x.shape().len())..];
            if x.batch() != n || !same_up_to_unit_axes(got, want) {
                return Err(Error::shape(format!(
                    "input {k} must hold {n} samples of shape {}, got {:?}",
                    crate::nn::layers::shape_str(want),
                    x.shape()
                )));
            }
        }
        let outs: Vec<Vec<usize>> = self.outputs.iter().map(|&o| self.node_shape(o).to_vec()).collect();
        let mut results: Vec<Vec<f32>> = outs.iter().map(|s| vec![0.0; n * s.iter().product::<usize>()]).collect();
        let bs = batch_size.clamp(1, MAX_INFERENCE_BATCH);
        let mut idx: Vec<usize> = Vec::with_capacity(bs);
        for s in 0..n.div_ceil(bs) {
            idx.clear();
            idx.extend(s * bs..((s + 1) * bs).min(n));
            for (k, x) in xs.iter().enumerate() {
                x.gather_into(&idx, &mut self.acts[k]);
                let shape = self.node_shape(k).to_vec();
                self.acts[k].resize_batch(idx.len(), &shape);
            }
            self.forward(idx.len(), false, true, None);
            for (r, (&o, shape)) in results.iter_mut().zip(self.outputs.iter().zip(&outs)) {
                let per: usize = shape.iter().product();
                let a = &self.acts[o];
                r[s * bs * per..s * bs * per + a.len()].copy_from_slice(a.data());
            }
        }
        results
            .into_iter()
            .zip(outs)
            .map(|(r, s)| {
                let mut shape = vec![n];
                shape.extend_from_slice(&s);
                Tensor::from_vec(&shape, r)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::losses::Loss;
    use crate::nn::metrics::Metric;
    use crate::nn::model::tests::tiny;
    use crate::nn::optimizers::Adam;
    use crate::rng::Rng;

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
}
