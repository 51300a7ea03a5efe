//! Training over epochs: the `fit` loop, its [`History`], Keras' progress output, callbacks,
//! and checkpoints that let a run stop and resume exactly.
//!
//! Built on [`crate::nn`] (the model and its training step), [`crate::data`] (batch sources)
//! and [`crate::io`] (checkpoints and saved models are files).

pub mod callbacks;
pub mod checkpoint;
pub mod fit;
pub mod history;
pub mod progress;

pub use fit::FitOptions;
pub use history::History;
