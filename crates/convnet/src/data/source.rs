//! Where training batches come from: the [`TrainData`] trait (plain tensors, or a generator
//! that augments them) and Keras' `validation_split`, in one place.

use crate::error::{Error, Result};
use crate::nn::model::Sequential;
use crate::rng::Rng;
use crate::tensor::Tensor;

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
    /// A hint: the next [`TrainData::fill`] after the current one will ask for `upcoming`. A
    /// source that reads files may start preparing them now, while the current step trains;
    /// the batch it then returns must be exactly what `fill` would give without the hint.
    /// (Default: nothing. The fit loop calls it before each training step but the last of an
    /// epoch, so it must not allocate for in-memory sources.)
    fn prefetch(&mut self, _upcoming: &[usize]) {}
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

    /// The first `len` samples only (at most all of them).
    pub fn first(x: &'a Tensor, y: &'a Tensor, len: usize) -> Self {
        TensorData { x, y, len: len.min(x.batch()) }
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

/// Where Keras' `validation_split` cuts `n` samples: training takes `0..cut`, validation the
/// last `n − cut` samples, taken before any shuffling (`cut = ⌊n·(1 − split)⌋`, as Keras
/// computes it). A split of 0 keeps everything for training; a split outside `[0, 1)` or one
/// that leaves either part empty is an error.
pub fn validation_cut(n: usize, split: f32) -> Result<usize> {
    if !(0.0..1.0).contains(&split) {
        return Err(Error::config(format!("validation_split must be in [0, 1), not {split}")));
    }
    if split == 0.0 {
        return Ok(n);
    }
    // The split as the decimal the user wrote (0.1, not 0.100000001490116): Keras computes
    // with Python's float, and `n·(1 − 0.1f32)` would drop a sample (89 of 100, not 90).
    let cut = (n as f64 * (1.0 - crate::numbers::decimal(split))) as usize;
    if cut == 0 || cut == n {
        return Err(Error::config(format!(
            "validation_split {split} of {n} samples leaves an empty training or validation set"
        )));
    }
    Ok(cut)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_cut_holds_out_the_last_samples_as_keras_does() {
        assert_eq!(validation_cut(100, 0.0).unwrap(), 100);
        assert_eq!(validation_cut(100, 0.1).unwrap(), 90);
        // ⌊7·0.7⌋ = 4: Keras rounds the training part down.
        assert_eq!(validation_cut(7, 0.3).unwrap(), 4);
        assert!(validation_cut(100, 1.0).is_err());
        assert!(validation_cut(100, -0.5).is_err());
        assert!(validation_cut(1, 0.5).is_err());
    }
}
