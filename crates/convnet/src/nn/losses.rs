//! Losses with Keras' names and formulas, each returning the batch-mean loss and its gradient.
//!
//! Predictions are rows of `width` values (the last axis); the loss is averaged over rows, as
//! Keras' `sum_over_batch_size` reduction does. Probabilities are clipped to
//! `[1e-7, 1 − 1e-7]` before logarithms (Keras' epsilon). When the model ends in the matching
//! activation (softmax for the categorical losses, sigmoid for binary cross-entropy), the
//! gradient is taken directly w.r.t. the pre-activation: `p − t`, stable and exact.

use crate::error::{Error, Result};
use crate::nn::activations::Activation;

/// Keras' `epsilon()`.
pub const EPSILON: f32 = 1e-7;

/// A training objective (Keras' `loss=` argument of `compile`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Loss {
    /// Cross-entropy against one-hot (or probability) targets.
    CategoricalCrossentropy,
    /// Cross-entropy against integer class targets.
    SparseCategoricalCrossentropy,
    /// Element-wise binary cross-entropy.
    BinaryCrossentropy,
    /// Mean of squared differences.
    MeanSquaredError,
}

impl Loss {
    /// Parses Keras' loss names and aliases.
    pub fn parse(name: &str) -> Result<Self> {
        match name.to_ascii_lowercase().replace('_', "").as_str() {
            "categoricalcrossentropy" => Ok(Loss::CategoricalCrossentropy),
            "sparsecategoricalcrossentropy" => Ok(Loss::SparseCategoricalCrossentropy),
            "binarycrossentropy" => Ok(Loss::BinaryCrossentropy),
            "meansquarederror" | "mse" => Ok(Loss::MeanSquaredError),
            _ => Err(Error::config(format!(
                "unknown loss {name:?} (convnet has categorical_crossentropy, \
                 sparse_categorical_crossentropy, binary_crossentropy, mean_squared_error)"
            ))),
        }
    }

    /// Keras' name of the loss.
    pub fn name(self) -> &'static str {
        match self {
            Loss::CategoricalCrossentropy => "categorical_crossentropy",
            Loss::SparseCategoricalCrossentropy => "sparse_categorical_crossentropy",
            Loss::BinaryCrossentropy => "binary_crossentropy",
            Loss::MeanSquaredError => "mean_squared_error",
        }
    }

    /// The output activation whose gradient this loss can fuse with its own.
    pub fn fusable_activation(self) -> Option<Activation> {
        match self {
            Loss::CategoricalCrossentropy | Loss::SparseCategoricalCrossentropy => Some(Activation::Softmax),
            Loss::BinaryCrossentropy => Some(Activation::Sigmoid),
            Loss::MeanSquaredError => None,
        }
    }

    /// Values per target row for predictions of `width` values per row.
    pub fn target_width(self, width: usize) -> usize {
        match self {
            Loss::SparseCategoricalCrossentropy => 1,
            _ => width,
        }
    }

    /// Checks that targets fit predictions: `y_true` must hold `rows × target_width` values.
    pub fn check_targets(self, pred_len: usize, width: usize, target_len: usize) -> Result<()> {
        let rows = pred_len / width.max(1);
        let want = rows * self.target_width(width);
        if target_len != want {
            return Err(Error::shape(format!(
                "{} needs {} target values for {} prediction rows of {} but got {}{}",
                self.name(),
                want,
                rows,
                width,
                target_len,
                match self {
                    Loss::CategoricalCrossentropy if target_len == rows =>
                        " (integer labels? one-hot them with to_categorical or use sparse_categorical_crossentropy)",
                    Loss::SparseCategoricalCrossentropy if target_len == rows * width =>
                        " (one-hot targets? use categorical_crossentropy)",
                    _ => "",
                }
            )));
        }
        Ok(())
    }

    /// Mean loss over the rows of `pred` (each `width` wide) against `target`.
    ///
    /// With `grad`, also writes `∂loss/∂pred` there, or, when `fused` is true, the gradient
    /// w.r.t. the pre-activation of the [`Loss::fusable_activation`] that produced `pred`.
    pub fn compute(self, pred: &[f32], target: &[f32], width: usize, grad: Option<&mut [f32]>, fused: bool) -> f32 {
        let width = width.max(1);
        let rows = pred.len() / width;
        if rows == 0 {
            return 0.0;
        }
        let inv_rows = 1.0 / rows as f32;
        let mut total = 0.0f64;
        match self {
            Loss::CategoricalCrossentropy | Loss::SparseCategoricalCrossentropy => {
                let sparse = self == Loss::SparseCategoricalCrossentropy;
                let mut grad = grad;
                for r in 0..rows {
                    let p = &pred[r * width..(r + 1) * width];
                    let sum: f32 = p.iter().sum();
                    let s = if sum > 0.0 { sum } else { 1.0 };
                    let class = if sparse { target[r] as usize } else { 0 };
                    let t = |i: usize| -> f32 {
                        if sparse {
                            (i == class) as u8 as f32
                        } else {
                            target[r * width + i]
                        }
                    };
                    let mut row_loss = 0.0f64;
                    for (i, &pi) in p.iter().enumerate() {
                        let ti = t(i);
                        if ti != 0.0 {
                            let q = (pi / s).clamp(EPSILON, 1.0 - EPSILON);
                            row_loss -= ti as f64 * (q as f64).ln();
                        }
                    }
                    total += row_loss;
                    if let Some(g) = grad.as_deref_mut() {
                        let g = &mut g[r * width..(r + 1) * width];
                        if fused {
                            let tsum: f32 = (0..width).map(t).sum();
                            for (i, gi) in g.iter_mut().enumerate() {
                                *gi = (p[i] * tsum - t(i)) * inv_rows;
                            }
                        } else {
                            // L = −Σ tᵢ log clip(pᵢ / S): chain through the clip and the sum S.
                            let mut weighted = 0.0f32;
                            for (i, gi) in g.iter_mut().enumerate() {
                                let q = p[i] / s;
                                let d = if q > EPSILON && q < 1.0 - EPSILON { -t(i) / q } else { 0.0 };
                                *gi = d;
                                weighted += d * p[i];
                            }
                            for gi in g.iter_mut() {
                                *gi = (*gi / s - weighted / (s * s)) * inv_rows;
                            }
                        }
                    }
                }
            }
            Loss::BinaryCrossentropy => {
                let inv = inv_rows / width as f32;
                let mut grad = grad;
                for (i, (&p, &t)) in pred.iter().zip(target).enumerate() {
                    let q = p.clamp(EPSILON, 1.0 - EPSILON);
                    total -= (t as f64 * (q as f64).ln() + (1.0 - t as f64) * (1.0 - q as f64).ln()) / width as f64;
                    if let Some(g) = grad.as_deref_mut() {
                        g[i] = if fused {
                            (p - t) * inv
                        } else if p > EPSILON && p < 1.0 - EPSILON {
                            (-t / p + (1.0 - t) / (1.0 - p)) * inv
                        } else {
                            0.0
                        };
                    }
                }
            }
            Loss::MeanSquaredError => {
                let inv = inv_rows / width as f32;
                let mut grad = grad;
                for (i, (&p, &t)) in pred.iter().zip(target).enumerate() {
                    let d = p - t;
                    total += (d as f64) * (d as f64) / width as f64;
                    if let Some(g) = grad.as_deref_mut() {
                        g[i] = 2.0 * d * inv;
                    }
                }
            }
        }
        (total / rows as f64) as f32
    }
}

impl std::str::FromStr for Loss {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Loss::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::activation::{sigmoid_forward, softmax_forward};

    fn fd_check(loss: Loss, pred: &[f32], target: &[f32], width: usize) {
        let mut g = vec![0.0; pred.len()];
        loss.compute(pred, target, width, Some(&mut g), false);
        for i in 0..pred.len() {
            let h = 1e-3;
            let mut p1 = pred.to_vec();
            p1[i] += h;
            let mut p2 = pred.to_vec();
            p2[i] -= h;
            let fd = (loss.compute(&p1, target, width, None, false) as f64
                - loss.compute(&p2, target, width, None, false) as f64)
                / (2.0 * h as f64);
            assert!((fd - g[i] as f64).abs() < 2e-3 * (1.0 + fd.abs()), "{loss:?} [{i}]: fd {fd} vs {}", g[i]);
        }
    }

    #[test]
    fn gradients_match_finite_differences() {
        let pred = [0.2, 0.5, 0.3, 0.1, 0.1, 0.8];
        fd_check(Loss::CategoricalCrossentropy, &pred, &[0.0, 1.0, 0.0, 0.3, 0.0, 0.7], 3);
        fd_check(Loss::SparseCategoricalCrossentropy, &pred, &[2.0, 0.0], 3);
        // unnormalised "probabilities" exercise the division by the row sum
        fd_check(Loss::CategoricalCrossentropy, &[0.2, 0.9, 0.4], &[0.0, 0.0, 1.0], 3);
        fd_check(Loss::BinaryCrossentropy, &[0.3, 0.8, 0.6, 0.1], &[1.0, 0.0, 1.0, 0.0], 2);
        fd_check(Loss::MeanSquaredError, &[0.3, -0.8, 1.6, 0.1], &[1.0, 0.5, 1.0, 0.0], 2);
    }

    #[test]
    fn fused_gradients_match_finite_differences_through_the_activation() {
        let logits = [0.3f32, -1.2, 2.0, 0.5, 0.0, -0.4];
        let cases: [(Loss, &[f32], Activation); 3] = [
            (Loss::CategoricalCrossentropy, &[0.0, 0.0, 1.0, 1.0, 0.0, 0.0], Activation::Softmax),
            (Loss::SparseCategoricalCrossentropy, &[1.0, 2.0], Activation::Softmax),
            (Loss::BinaryCrossentropy, &[1.0, 0.0, 1.0, 0.0, 1.0, 1.0], Activation::Sigmoid),
        ];
        for (loss, target, act) in cases {
            let f = |z: &[f32]| {
                let mut p = z.to_vec();
                match act {
                    Activation::Softmax => softmax_forward(&mut p, 3),
                    _ => sigmoid_forward(&mut p),
                }
                p
            };
            let p = f(&logits);
            let mut g = vec![0.0; 6];
            loss.compute(&p, target, 3, Some(&mut g), true);
            for i in 0..6 {
                let h = 1e-3;
                let mut a = logits.to_vec();
                a[i] += h;
                let mut b = logits.to_vec();
                b[i] -= h;
                let fd = (loss.compute(&f(&a), target, 3, None, false) - loss.compute(&f(&b), target, 3, None, false))
                    / (2.0 * h);
                assert!((fd - g[i]).abs() < 2e-3, "{loss:?} [{i}]: fd {fd} vs {}", g[i]);
            }
        }
    }

    #[test]
    fn values_match_keras_formulas() {
        // −ln(0.5) for a confident-enough correct row; clip bounds a zero probability.
        let l = Loss::CategoricalCrossentropy.compute(&[0.5, 0.5], &[1.0, 0.0], 2, None, false);
        assert!((l - std::f32::consts::LN_2).abs() < 1e-6);
        let l = Loss::CategoricalCrossentropy.compute(&[0.0, 1.0], &[1.0, 0.0], 2, None, false);
        assert!((l - (-(EPSILON.ln()))).abs() < 1e-3);
        let l = Loss::MeanSquaredError.compute(&[1.0, 3.0], &[0.0, 0.0], 2, None, false);
        assert!((l - 5.0).abs() < 1e-6);
        assert!(Loss::CategoricalCrossentropy.check_targets(20, 10, 2).is_err());
        assert!(Loss::SparseCategoricalCrossentropy.check_targets(20, 10, 2).is_ok());
    }
}
