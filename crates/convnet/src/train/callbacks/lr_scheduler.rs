//! `LearningRateScheduler`: sets the learning rate at the start of every epoch.

use super::Callback;
use crate::error::{Error, Result};
use crate::nn::model::Sequential;

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
                    _ => Err(Error::config(format!("learning-rate schedule {spec:?}: expected step:EVERY:FACTOR"))),
                }
            }
            ["exp", factor] => match num(factor) {
                Some(f) => Ok(Self::new(move |epoch, _| base_lr * f.powi(epoch as i32))),
                None => Err(Error::config(format!("learning-rate schedule {spec:?}: expected exp:FACTOR"))),
            },
            _ => Err(Error::config(format!("learning-rate schedule {spec:?}: use step:EVERY:FACTOR or exp:FACTOR"))),
        }
    }
}

impl Callback for LearningRateScheduler {
    fn logs_learning_rate(&self) -> bool {
        true
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    /// As in Keras 3, a rate callback puts the rate each epoch trained with into the history;
    /// without one there is no such column.
    #[test]
    fn the_history_logs_the_learning_rate_with_a_rate_callback() {
        use crate::nn::layers::{Dense, Flatten};
        use crate::nn::losses::Loss;
        use crate::nn::optimizers::Sgd;
        use crate::tensor::Tensor;
        use crate::train::FitOptions;
        let fit = |callbacks: Vec<Box<dyn Callback>>| {
            let mut m = Sequential::new().seed(1);
            m.add(Flatten::new().input_shape([2, 2, 1]));
            m.add(Dense::new(2).activation(crate::nn::activations::Activation::Softmax));
            m.compile(Loss::CategoricalCrossentropy, Sgd { learning_rate: 0.1, ..Default::default() }, &[]).unwrap();
            let x = Tensor::from_vec(&[4, 2, 2, 1], (0..16).map(|i| i as f32 / 16.0).collect()).unwrap();
            let y = crate::data::to_categorical(&[0, 1, 0, 1], 2);
            let opts = FitOptions { epochs: 3, batch_size: 2, verbose: 0, callbacks, ..Default::default() };
            m.fit(&x, &y, opts).unwrap()
        };
        let h = fit(vec![Box::new(LearningRateScheduler::parse("step:1:0.5", 0.1).unwrap())]);
        let want: Vec<f64> = [0.1f32, 0.05, 0.025].iter().map(|&r| f64::from(r)).collect();
        assert_eq!(h.get("learning_rate").unwrap(), want.as_slice());
        assert!(fit(Vec::new()).get("learning_rate").is_none());
    }

    #[test]
    fn schedules_parse() {
        assert!(LearningRateScheduler::parse("step:10:0.5", 0.1).is_ok());
        assert!(LearningRateScheduler::parse("cosine", 0.1).is_err());
    }
}
