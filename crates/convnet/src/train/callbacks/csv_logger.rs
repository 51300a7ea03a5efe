//! `CSVLogger`: the history so far as a CSV file, rewritten after every epoch.

use super::{Callback, Control};
use crate::error::{Error, Result};
use crate::io::atomic_write;
use crate::nn::model::{Logs, Sequential};
use crate::train::history::History;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Writes the epoch logs to a CSV file after every epoch (Keras' `CSVLogger`), rewriting it
/// atomically so the file is always whole.
pub struct CsvLogger {
    path: PathBuf,
    history: History,
}

impl CsvLogger {
    /// Logs to `path` (appending to what is already there when `append` and it parses).
    pub fn new(path: &Path, append: bool) -> Self {
        let history = if append {
            std::fs::read_to_string(path).ok().and_then(|t| History::from_csv(&t, path).ok()).unwrap_or_default()
        } else {
            History::default()
        };
        CsvLogger { path: path.to_path_buf(), history }
    }
}

impl Callback for CsvLogger {
    fn on_epoch_end(&mut self, epoch: usize, logs: &Logs, _m: &mut Sequential) -> Result<Control> {
        self.history.push(epoch, logs, 0.0);
        atomic_write(&self.path, self.history.to_csv().as_bytes())?;
        Ok(Control::Continue)
    }

    fn state(&self) -> Option<Value> {
        serde_json::to_value(&self.history).ok()
    }

    fn set_state(&mut self, state: &Value) -> Result<()> {
        self.history =
            serde_json::from_value(state.clone()).map_err(|e| Error::config(format!("CSVLogger state: {e}")))?;
        Ok(())
    }
}
