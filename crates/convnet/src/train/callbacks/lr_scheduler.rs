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

    #[test]
    fn schedules_parse() {
        assert!(LearningRateScheduler::parse("step:10:0.5", 0.1).is_ok());
        assert!(LearningRateScheduler::parse("cosine", 0.1).is_err());
    }
}
