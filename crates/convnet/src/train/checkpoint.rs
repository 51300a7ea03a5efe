//! Training checkpoints: everything `fit` needs to continue exactly where it stopped.
//!
//! A checkpoint is a convnet model file (safetensors: weights, optimizer slots, model and
//! training configs) whose metadata also holds a `train_state` entry: the epoch and batch
//! reached, the epoch's sample order and running sums, the random generators' states, the
//! history so far, the callbacks' states and the caller's own settings. Resuming from it gives
//! weights bit-identical to a run that was never stopped.

use crate::error::{Error, Result};
use crate::io::{atomic_write, native};
use crate::nn::model::Sequential;
use crate::rng::Rng;
use crate::train::history::History;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::Path;

/// Version of the `train_state` layout.
const STATE_VERSION: u32 = 1;

/// Where a training run stands: saved in a checkpoint, handed back to `fit` to resume.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Layout version.
    pub version: u32,
    /// The epoch in progress (0-based).
    pub epoch: usize,
    /// Batches of that epoch already trained (0: the epoch has not started).
    pub batch: usize,
    /// Samples per batch of the run (a mid-epoch resume needs the same).
    pub batch_size: usize,
    /// The epoch's sample order (empty when `batch` is 0).
    pub order: Vec<usize>,
    /// Running loss sum of the epoch, as the bits of an f64.
    pub loss_sum_bits: u64,
    /// Samples trained so far in the epoch.
    pub seen: usize,
    /// Running (correct, count) of each metric in the epoch.
    pub tallies: Vec<(usize, usize)>,
    /// Seconds already spent in the epoch.
    pub epoch_seconds: f64,
    /// The model's generator (shuffling, dropout).
    pub model_rng: Rng,
    /// The data source's generator (augmentation), if it has one.
    pub data_rng: Option<Rng>,
    /// Metrics of the finished epochs.
    pub history: History,
    /// Each callback's own state, by position.
    pub callbacks: Vec<Option<Value>>,
    /// The caller's settings (the command line keeps its arguments here).
    pub settings: Value,
}

impl TrainState {
    /// A state at the start of epoch `epoch` with nothing else recorded.
    pub fn at_epoch(epoch: usize, batch_size: usize, model_rng: Rng) -> Self {
        TrainState {
            version: STATE_VERSION,
            epoch,
            batch: 0,
            batch_size,
            order: Vec::new(),
            loss_sum_bits: 0f64.to_bits(),
            seen: 0,
            tallies: Vec::new(),
            epoch_seconds: 0.0,
            model_rng,
            data_rng: None,
            history: History::default(),
            callbacks: Vec::new(),
            settings: Value::Null,
        }
    }

    /// The running loss sum.
    pub fn loss_sum(&self) -> f64 {
        f64::from_bits(self.loss_sum_bits)
    }
}

/// Writes `model` (with its optimizer state) and `state` to `path`, atomically: a crash or a
/// full disk leaves any earlier checkpoint there intact.
pub fn save_checkpoint(model: &Sequential, state: &TrainState, path: &Path) -> Result<()> {
    let json = serde_json::to_string(state).map_err(|e| Error::config(format!("cannot encode the state: {e}")))?;
    let bytes = native::to_bytes_with_metadata(model, true, &[("train_state", json)])?;
    atomic_write(path, &bytes)
}

/// Reads a checkpoint written by [`save_checkpoint`]: the compiled model with its optimizer
/// state, and the training state.
pub fn load_checkpoint(path: &Path) -> Result<(Sequential, TrainState)> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    checkpoint_from_bytes(&bytes, path)
}

/// Like [`load_checkpoint`], from bytes already read; `path` names them in errors.
pub fn checkpoint_from_bytes(bytes: &[u8], path: &Path) -> Result<(Sequential, TrainState)> {
    read_checkpoint(bytes, path).map_err(|e| crate::io::Frame::of(bytes).diagnose(e, path, Some("convnet checkpoint")))
}

fn read_checkpoint(bytes: &[u8], path: &Path) -> Result<(Sequential, TrainState)> {
    if !native::sniff(bytes) {
        return Err(Error::format(path, "not a convnet checkpoint (no safetensors header)"));
    }
    let meta = native::metadata(bytes, path)?;
    let text = meta
        .get("train_state")
        .ok_or_else(|| Error::format(path, "a model file, not a checkpoint: it has no training state"))?;
    let state: TrainState = serde_json::from_str(text)
        .map_err(|e| Error::format(path, format!("the checkpoint's training state is damaged: {e}")))?;
    if state.version != STATE_VERSION {
        return Err(Error::format(
            path,
            format!("checkpoint layout {} is not supported (this convnet reads {STATE_VERSION})", state.version),
        ));
    }
    let model = native::from_bytes(bytes, path)?;
    if model.compiled().is_none() {
        return Err(Error::format(path, "the checkpoint has no training configuration"));
    }
    Ok((model, state))
}
