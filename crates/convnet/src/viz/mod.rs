//! What a person would rather look at than read: charts of a training history, grids of
//! pictures (augmented samples, feature maps, filters), confusion matrices.
//!
//! Built on everything below it; nothing below draws.

pub mod charts;
pub mod pictures;
