//! `TerminateOnNaN`: stops training when the loss stops being finite.

use super::{Callback, Control};
use crate::error::Result;
use crate::nn::model::{Logs, Sequential};
use crate::train::progress::emit;

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
