//! The network: layers and the functions they apply (activations, initializers, regularizers,
//! constraints), what training minimises and measures (losses, metrics), how it steps
//! (optimizers), and the model that stacks the layers.
//!
//! Built on [`crate::kernels`] and the basic types; knows nothing of data sets, files or the
//! training loop.

pub mod activations;
pub mod constraints;
pub mod initializers;
pub mod layers;
pub mod losses;
pub mod metrics;
pub mod model;
pub mod optimizers;
pub mod regularizers;
pub mod schedules;
