//! Accuracy metrics with Keras' names; `"accuracy"` resolves by the loss, as in Keras.

use crate::error::{Error, Result};
use crate::nn::losses::{Loss, LossKind};
use crate::tensor::argmax;

/// A metric requested in `compile` (Keras' `metrics=[…]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    /// `"accuracy"`: categorical, sparse or binary accuracy chosen from the loss; logged as
    /// `accuracy`.
    Accuracy,
    /// Argmax of prediction equals argmax of the one-hot target.
    CategoricalAccuracy,
    /// Argmax of prediction equals the integer target.
    SparseCategoricalAccuracy,
    /// Prediction above 0.5 equals the 0/1 target, per value.
    BinaryAccuracy,
}

/// Keras' name of a metric (`"accuracy"`).
impl TryFrom<&str> for Metric {
    type Error = Error;
    fn try_from(s: &str) -> Result<Self> {
        Metric::parse(s)
    }
}

impl Metric {
    /// Parses Keras' metric names (`accuracy`/`acc`, `categorical_accuracy`, …).
    pub fn parse(name: &str) -> Result<Self> {
        match name.to_ascii_lowercase().as_str() {
            "accuracy" | "acc" => Ok(Metric::Accuracy),
            "categorical_accuracy" => Ok(Metric::CategoricalAccuracy),
            "sparse_categorical_accuracy" => Ok(Metric::SparseCategoricalAccuracy),
            "binary_accuracy" => Ok(Metric::BinaryAccuracy),
            other => Err(Error::config(format!(
                "unknown metric {other:?} (convnet has accuracy, categorical_accuracy, \
                 sparse_categorical_accuracy, binary_accuracy)"
            ))),
        }
    }

    /// The name under which the metric is logged (and prefixed `val_` for validation).
    pub fn name(self) -> &'static str {
        match self {
            Metric::Accuracy => "accuracy",
            Metric::CategoricalAccuracy => "categorical_accuracy",
            Metric::SparseCategoricalAccuracy => "sparse_categorical_accuracy",
            Metric::BinaryAccuracy => "binary_accuracy",
        }
    }

    /// The concrete accuracy computed for this metric under `loss`.
    pub fn resolve(self, loss: Loss) -> Metric {
        match (self, loss.kind) {
            (Metric::Accuracy, LossKind::SparseCategoricalCrossentropy) => Metric::SparseCategoricalAccuracy,
            (Metric::Accuracy, LossKind::BinaryCrossentropy) => Metric::BinaryAccuracy,
            (Metric::Accuracy, _) => Metric::CategoricalAccuracy,
            (m, _) => m,
        }
    }

    /// `(correct, counted)` over a batch of predictions `width` wide, for a resolved metric.
    pub fn count(self, pred: &[f32], target: &[f32], width: usize) -> (usize, usize) {
        let width = width.max(1);
        let rows = pred.len() / width;
        let mut correct = 0;
        match self {
            Metric::BinaryAccuracy => {
                for (&p, &t) in pred.iter().zip(target) {
                    correct += ((p > 0.5) == (t > 0.5)) as usize;
                }
                (correct, pred.len())
            }
            Metric::SparseCategoricalAccuracy => {
                for r in 0..rows {
                    let p = argmax(&pred[r * width..(r + 1) * width]);
                    correct += (p as f32 == target[r].round()) as usize;
                }
                (correct, rows)
            }
            Metric::CategoricalAccuracy | Metric::Accuracy => {
                for r in 0..rows {
                    let p = argmax(&pred[r * width..(r + 1) * width]);
                    let t = argmax(&target[r * width..(r + 1) * width]);
                    correct += (p == t) as usize;
                }
                (correct, rows)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accuracies_count_right_answers() {
        let pred = [0.1, 0.7, 0.2, 0.5, 0.3, 0.2];
        assert_eq!(Metric::CategoricalAccuracy.count(&pred, &[0.0, 1.0, 0.0, 0.0, 1.0, 0.0], 3), (1, 2));
        assert_eq!(Metric::SparseCategoricalAccuracy.count(&pred, &[1.0, 0.0], 3), (2, 2));
        assert_eq!(Metric::BinaryAccuracy.count(&[0.9, 0.2, 0.6], &[1.0, 1.0, 1.0], 1), (2, 3));
        assert_eq!(Metric::Accuracy.resolve(Loss::SparseCategoricalCrossentropy), Metric::SparseCategoricalAccuracy);
    }
}
