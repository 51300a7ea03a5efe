//! Losses with Keras' names, arguments and formulas, each returning the batch-mean loss and
//! its gradient.
//!
//! Predictions are rows of `width` values (the last axis); the loss is averaged over rows, as
//! Keras' `sum_over_batch_size` reduction does. With `label_smoothing` ε the targets are
//! first smoothed as Keras does: `t·(1 − ε) + ε/K` for categorical cross-entropy over K
//! classes, `t·(1 − ε) + ε/2` for binary cross-entropy.
//!
//! On probabilities (`from_logits` off), probabilities are clipped to `[1e-7, 1 − 1e-7]`
//! before logarithms (Keras' epsilon), and categorical rows are first divided by their sum.
//! When the model ends in the matching activation (softmax for the categorical losses,
//! sigmoid for binary cross-entropy), the gradient is taken directly w.r.t. the
//! pre-activation: `p·Σt − t`, stable and exact.
//!
//! On logits (`from_logits`, the model's output is then unnormalised scores), the loss is
//! computed as TensorFlow's `*_cross_entropy_with_logits` compute it, without any clipping:
//! categorical `−Σ tᵢ·(zᵢ − logsumexp(z))` with the maximum subtracted before `exp`, binary
//! `max(z, 0) − z·t + log(1 + e^{−|z|})`; gradients `softmax(z)·Σt − t` and `σ(z) − t`.

use crate::error::{Error, Result};
use crate::nn::activations::Activation;
use serde_json::{json, Value};

/// Keras' `epsilon()`.
pub const EPSILON: f32 = 1e-7;

/// Which loss function (the formula; [`Loss`] adds its arguments).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LossKind {
    /// Cross-entropy against one-hot (or probability) targets.
    CategoricalCrossentropy,
    /// Cross-entropy against integer class targets.
    SparseCategoricalCrossentropy,
    /// Element-wise binary cross-entropy.
    BinaryCrossentropy,
    /// Mean of squared differences.
    MeanSquaredError,
}

/// A training objective (Keras' `loss=` argument of `compile`): a [`LossKind`] with Keras'
/// `from_logits` and `label_smoothing` arguments. `Loss::CategoricalCrossentropy` and the
/// other constants are the losses with Keras' defaults.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Loss {
    /// The formula.
    pub kind: LossKind,
    /// Predictions are logits, not probabilities (cross-entropies only).
    pub from_logits: bool,
    /// Label smoothing in [0, 1] (categorical and binary cross-entropy only).
    pub label_smoothing: f32,
}

#[allow(non_upper_case_globals)]
impl Loss {
    /// Categorical cross-entropy on probabilities.
    pub const CategoricalCrossentropy: Loss = Loss::of(LossKind::CategoricalCrossentropy);
    /// Sparse categorical cross-entropy on probabilities.
    pub const SparseCategoricalCrossentropy: Loss = Loss::of(LossKind::SparseCategoricalCrossentropy);
    /// Binary cross-entropy on probabilities.
    pub const BinaryCrossentropy: Loss = Loss::of(LossKind::BinaryCrossentropy);
    /// Mean squared error.
    pub const MeanSquaredError: Loss = Loss::of(LossKind::MeanSquaredError);
}

impl From<LossKind> for Loss {
    fn from(kind: LossKind) -> Self {
        Loss::of(kind)
    }
}

impl Loss {
    /// The loss `kind` with Keras' default arguments.
    pub const fn of(kind: LossKind) -> Self {
        Loss { kind, from_logits: false, label_smoothing: 0.0 }
    }

    /// The same loss on logits (`from_logits=True`) or on probabilities.
    pub fn with_from_logits(mut self, on: bool) -> Self {
        self.from_logits = on;
        self
    }

    /// The same loss with `label_smoothing`.
    pub fn with_label_smoothing(mut self, smoothing: f32) -> Self {
        self.label_smoothing = smoothing;
        self
    }

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

    /// Keras' name of the loss function.
    pub fn name(self) -> &'static str {
        match self.kind {
            LossKind::CategoricalCrossentropy => "categorical_crossentropy",
            LossKind::SparseCategoricalCrossentropy => "sparse_categorical_crossentropy",
            LossKind::BinaryCrossentropy => "binary_crossentropy",
            LossKind::MeanSquaredError => "mean_squared_error",
        }
    }

    /// Keras' class name of the loss.
    pub fn class_name(self) -> &'static str {
        match self.kind {
            LossKind::CategoricalCrossentropy => "CategoricalCrossentropy",
            LossKind::SparseCategoricalCrossentropy => "SparseCategoricalCrossentropy",
            LossKind::BinaryCrossentropy => "BinaryCrossentropy",
            LossKind::MeanSquaredError => "MeanSquaredError",
        }
    }

    /// Checks the arguments: `from_logits` for cross-entropies, `label_smoothing` in [0, 1]
    /// for categorical and binary cross-entropy (Keras' sparse one has none).
    pub fn validate(self) -> Result<()> {
        if self.from_logits && self.kind == LossKind::MeanSquaredError {
            return Err(Error::config("mean_squared_error has no from_logits"));
        }
        let ls = self.label_smoothing;
        if ls != 0.0 {
            if matches!(self.kind, LossKind::SparseCategoricalCrossentropy | LossKind::MeanSquaredError) {
                return Err(Error::config(format!("{} has no label_smoothing", self.name())));
            }
            if !(0.0..=1.0).contains(&ls) {
                return Err(Error::config(format!("label_smoothing must be in [0, 1], not {ls}")));
            }
        }
        Ok(())
    }

    /// Keras' serialised loss: the bare name for a loss with default arguments, else Keras 3's
    /// `{"module": "keras.losses", "class_name", "config"}` (which tf_keras reads too).
    pub fn to_config(self) -> Value {
        if !self.from_logits && self.label_smoothing == 0.0 {
            return json!(self.name());
        }
        let mut config =
            json!({"name": self.name(), "reduction": "sum_over_batch_size", "from_logits": self.from_logits});
        match self.kind {
            LossKind::CategoricalCrossentropy | LossKind::BinaryCrossentropy => {
                config["label_smoothing"] = json!(self.label_smoothing);
                config["axis"] = json!(-1);
            }
            LossKind::SparseCategoricalCrossentropy => config["ignore_class"] = Value::Null,
            LossKind::MeanSquaredError => {}
        }
        json!({"module": "keras.losses", "class_name": self.class_name(), "config": config, "registered_name": null})
    }

    /// Reads a loss in any of Keras' forms: a name, Keras 3's or tf_keras'
    /// `{"class_name", "config"}`, `{"class_name": "function", "config": name}`, or a
    /// one-element list. Arguments convnet does not implement (another `axis` or
    /// `reduction`, `ignore_class`) are refused.
    pub fn from_config(v: &Value) -> Result<Self> {
        let loss = match v {
            Value::String(s) => Loss::parse(s)?,
            Value::Object(o) => {
                let class = o
                    .get("class_name")
                    .and_then(Value::as_str)
                    .ok_or_else(|| Error::config("loss config without class_name"))?;
                let cfg = match o.get("config") {
                    // `{"class_name": "function", "config": "categorical_crossentropy"}`
                    Some(Value::String(name)) => return Loss::parse(name),
                    Some(Value::Object(c)) => c.clone(),
                    _ => Default::default(),
                };
                let mut loss = Loss::parse(class)?;
                loss.from_logits = cfg.get("from_logits").and_then(Value::as_bool).unwrap_or(false);
                loss.label_smoothing = match cfg.get("label_smoothing") {
                    None | Some(Value::Null) => 0.0,
                    Some(x) => x
                        .as_f64()
                        .ok_or_else(|| Error::config(format!("loss label_smoothing must be a number, not {x}")))?
                        as f32,
                };
                if let Some(axis) = cfg.get("axis").filter(|a| !a.is_null()) {
                    if axis.as_i64() != Some(-1) {
                        return Err(Error::config(format!("losses over axis {axis} are not supported (only -1)")));
                    }
                }
                if let Some(r) = cfg.get("reduction").and_then(Value::as_str) {
                    if !matches!(r, "sum_over_batch_size" | "auto" | "mean") {
                        return Err(Error::config(format!("loss reduction {r:?} is not supported")));
                    }
                }
                if cfg.get("ignore_class").is_some_and(|c| !c.is_null()) {
                    return Err(Error::config("sparse_categorical_crossentropy with ignore_class is not supported"));
                }
                loss
            }
            Value::Array(a) if a.len() == 1 => Loss::from_config(&a[0])?,
            other => return Err(Error::config(format!("unsupported loss {other}"))),
        };
        loss.validate()?;
        Ok(loss)
    }

    /// The output activation whose gradient this loss can fuse with its own (none on logits).
    pub fn fusable_activation(self) -> Option<Activation> {
        if self.from_logits {
            return None;
        }
        match self.kind {
            LossKind::CategoricalCrossentropy | LossKind::SparseCategoricalCrossentropy => Some(Activation::Softmax),
            LossKind::BinaryCrossentropy => Some(Activation::Sigmoid),
            LossKind::MeanSquaredError => None,
        }
    }

    /// Values per target row for predictions of `width` values per row.
    pub fn target_width(self, width: usize) -> usize {
        match self.kind {
            LossKind::SparseCategoricalCrossentropy => 1,
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
                match self.kind {
                    LossKind::CategoricalCrossentropy if target_len == rows =>
                        " (integer labels? one-hot them with to_categorical or use sparse_categorical_crossentropy)",
                    LossKind::SparseCategoricalCrossentropy if target_len == rows * width =>
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
        let ls = self.label_smoothing;
        let mut total = 0.0f64;
        match self.kind {
            LossKind::CategoricalCrossentropy | LossKind::SparseCategoricalCrossentropy => {
                let sparse = self.kind == LossKind::SparseCategoricalCrossentropy;
                let classes = width as f32;
                let mut grad = grad;
                for r in 0..rows {
                    let p = &pred[r * width..(r + 1) * width];
                    let class = if sparse { target[r] as usize } else { 0 };
                    let t = |i: usize| -> f32 {
                        let raw = if sparse { (i == class) as u8 as f32 } else { target[r * width + i] };
                        if ls != 0.0 {
                            raw * (1.0 - ls) + ls / classes
                        } else {
                            raw
                        }
                    };
                    if self.from_logits {
                        // log-softmax with the maximum subtracted: exact and finite.
                        let max = p.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
                        let sum_exp: f64 = p.iter().map(|&z| f64::from(z - max).exp()).sum();
                        let lse = f64::from(max) + sum_exp.ln();
                        let mut tsum = 0.0f32;
                        for (i, &z) in p.iter().enumerate() {
                            let ti = t(i);
                            tsum += ti;
                            if ti != 0.0 {
                                total -= f64::from(ti) * (f64::from(z) - lse);
                            }
                        }
                        if let Some(g) = grad.as_deref_mut() {
                            let g = &mut g[r * width..(r + 1) * width];
                            for (i, gi) in g.iter_mut().enumerate() {
                                let soft = (f64::from(p[i]) - lse).exp() as f32;
                                *gi = (soft * tsum - t(i)) * inv_rows;
                            }
                        }
                        continue;
                    }
                    let sum: f32 = p.iter().sum();
                    let s = if sum > 0.0 { sum } else { 1.0 };
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
            LossKind::BinaryCrossentropy => {
                let inv = inv_rows / width as f32;
                let mut grad = grad;
                for (i, (&p, &t)) in pred.iter().zip(target).enumerate() {
                    let t = if ls != 0.0 { t * (1.0 - ls) + 0.5 * ls } else { t };
                    if self.from_logits {
                        let (z, t64) = (f64::from(p), f64::from(t));
                        total += (z.max(0.0) - z * t64 + (-z.abs()).exp().ln_1p()) / width as f64;
                        if let Some(g) = grad.as_deref_mut() {
                            let sig = 1.0 / (1.0 + (-z).exp());
                            g[i] = (sig as f32 - t) * inv;
                        }
                        continue;
                    }
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
            LossKind::MeanSquaredError => {
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

/// Optimizer names, to tell a loss and an optimizer given in each other's place.
const OPTIMIZER_NAMES: [&str; 8] = ["sgd", "adam", "adamw", "nadam", "adamax", "adagrad", "adadelta", "rmsprop"];

/// Keras' name of a loss (`"categorical_crossentropy"`), as `compile` takes it.
impl TryFrom<&str> for Loss {
    type Error = Error;
    fn try_from(s: &str) -> Result<Self> {
        Loss::parse(s).map_err(|e| {
            if OPTIMIZER_NAMES.contains(&s.to_ascii_lowercase().as_str()) {
                Error::config(format!(
                    "{s:?} is an optimizer, not a loss: compile takes the loss first, then the optimizer \
                     (compile(\"categorical_crossentropy\", \"{s}\", …)); compile_str takes them in either order"
                ))
            } else {
                e
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::activation::{sigmoid_forward, softmax_forward};
    use serde_json::json;

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

    /// The Keras 3 fixture (`tests/fixtures/optimizers/make.py`).
    fn fixture() -> Value {
        serde_json::from_str(include_str!("../../tests/fixtures/optimizers/keras3.json")).unwrap()
    }

    fn keras_losses() -> serde_json::Map<String, Value> {
        fixture()["losses"].as_object().unwrap().clone()
    }

    #[test]
    fn tf_keras_configs_read_as_the_keras3_ones() {
        let f = fixture();
        for (name, v) in f["tf_keras_losses"].as_object().unwrap() {
            let want = Loss::from_config(&f["losses"][name]["config"]).unwrap();
            assert_eq!(Loss::from_config(v).unwrap(), want, "{name}");
            assert!(want.from_logits || want.label_smoothing > 0.0, "{name}");
        }
    }

    fn floats(v: &Value) -> Vec<f32> {
        v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
    }

    #[test]
    fn values_and_gradients_match_keras() {
        let cases = keras_losses();
        assert_eq!(cases.len(), 10);
        for (name, case) in &cases {
            let loss = Loss::from_config(&case["config"]).unwrap_or_else(|e| panic!("{name}: {e}"));
            let (t, p) = (floats(&case["y_true"]), floats(&case["y_pred"]));
            let width = case["width"].as_u64().unwrap() as usize;
            let mut g = vec![0.0; p.len()];
            let value = loss.compute(&p, &t, width, Some(&mut g), false);
            let want = case["value"].as_f64().unwrap() as f32;
            assert!((value - want).abs() <= 2e-6 * want.abs().max(1.0), "{name}: {value} vs Keras {want}");
            for (i, (&a, b)) in g.iter().zip(floats(&case["grad"])).enumerate() {
                assert!((a - b).abs() <= 2e-6 * b.abs().max(1.0), "{name} grad[{i}]: {a} vs Keras {b}");
            }
            // Written back, Keras' config reads as the same loss.
            assert_eq!(Loss::from_config(&loss.to_config()).unwrap(), loss, "{name}");
        }
    }

    #[test]
    fn logits_and_smoothing_gradients_match_finite_differences() {
        let z = [0.3f32, -1.2, 2.0, 0.5, 0.0, -0.4];
        let cce = Loss::CategoricalCrossentropy;
        fd_check(cce.with_from_logits(true), &z, &[0.0, 0.0, 1.0, 0.2, 0.8, 0.0], 3);
        fd_check(cce.with_from_logits(true).with_label_smoothing(0.2), &z, &[0.0, 1.0, 0.0, 0.0, 0.0, 1.0], 3);
        fd_check(Loss::SparseCategoricalCrossentropy.with_from_logits(true), &z, &[2.0, 1.0], 3);
        fd_check(Loss::BinaryCrossentropy.with_from_logits(true), &z, &[1.0, 0.0, 1.0, 0.0, 0.5, 1.0], 3);
        fd_check(
            Loss::BinaryCrossentropy.with_from_logits(true).with_label_smoothing(0.3),
            &z,
            &[1.0, 0.0, 1.0, 0.0, 0.5, 1.0],
            3,
        );
        fd_check(cce.with_label_smoothing(0.1), &[0.2, 0.5, 0.3, 0.1, 0.1, 0.8], &[0.0, 1.0, 0.0, 0.3, 0.0, 0.7], 3);
        fd_check(Loss::BinaryCrossentropy.with_label_smoothing(0.1), &[0.3, 0.8, 0.6, 0.1], &[1.0, 0.0, 1.0, 0.0], 2);
        // Huge logits stay finite and exact: −log softmax of the right class is ~0.
        let l = cce.with_from_logits(true).compute(&[1000.0, -1000.0], &[1.0, 0.0], 2, None, false);
        assert!(l.abs() < 1e-6, "{l}");
        let l = Loss::BinaryCrossentropy.with_from_logits(true).compute(&[-1000.0], &[1.0], 1, None, false);
        assert!((l - 1000.0).abs() < 1e-3, "{l}");
        // On logits nothing fuses with the output activation.
        assert_eq!(cce.with_from_logits(true).fusable_activation(), None);
    }

    #[test]
    fn fused_smoothed_gradient_matches_finite_differences_through_softmax() {
        let logits = [0.3f32, -1.2, 2.0, 0.5, 0.0, -0.4];
        let target = [0.0, 0.0, 1.0, 1.0, 0.0, 0.0];
        let loss = Loss::CategoricalCrossentropy.with_label_smoothing(0.25);
        let f = |z: &[f32]| {
            let mut p = z.to_vec();
            softmax_forward(&mut p, 3);
            p
        };
        let mut g = vec![0.0; 6];
        loss.compute(&f(&logits), &target, 3, Some(&mut g), true);
        for i in 0..6 {
            let (mut a, mut b) = (logits.to_vec(), logits.to_vec());
            a[i] += 1e-3;
            b[i] -= 1e-3;
            let fd =
                (loss.compute(&f(&a), &target, 3, None, false) - loss.compute(&f(&b), &target, 3, None, false)) / 2e-3;
            assert!((fd - g[i]).abs() < 2e-3, "[{i}]: fd {fd} vs {}", g[i]);
        }
    }

    #[test]
    fn configs_in_every_keras_form() {
        let tf_keras = json!({"class_name": "CategoricalCrossentropy", "config": {"reduction": "auto",
            "name": "categorical_crossentropy", "from_logits": true, "label_smoothing": 0.1, "axis": -1,
            "fn": "categorical_crossentropy"}});
        let l = Loss::from_config(&tf_keras).unwrap();
        assert_eq!(l, Loss::CategoricalCrossentropy.with_from_logits(true).with_label_smoothing(0.1));
        assert_eq!(Loss::from_config(&json!("binary_crossentropy")).unwrap(), Loss::BinaryCrossentropy);
        assert_eq!(
            Loss::from_config(&json!({"class_name": "function", "config": "mse"})).unwrap(),
            Loss::MeanSquaredError
        );
        assert_eq!(
            Loss::from_config(&json!([{"class_name": "BinaryCrossentropy", "config": {}}])).unwrap(),
            Loss::BinaryCrossentropy
        );
        // Defaults are written as the bare name, as Keras' compile(loss="…") stores them.
        assert_eq!(Loss::SparseCategoricalCrossentropy.to_config(), json!("sparse_categorical_crossentropy"));
        let k3 = Loss::SparseCategoricalCrossentropy.with_from_logits(true).to_config();
        assert_eq!(k3["class_name"], "SparseCategoricalCrossentropy");
        assert_eq!(k3["config"]["from_logits"], true);
        for bad in [
            json!({"class_name": "SparseCategoricalCrossentropy", "config": {"ignore_class": 0}}),
            json!({"class_name": "CategoricalCrossentropy", "config": {"axis": 1}}),
            json!({"class_name": "CategoricalCrossentropy", "config": {"reduction": "sum"}}),
            json!({"class_name": "CategoricalCrossentropy", "config": {"label_smoothing": 1.5}}),
            json!({"class_name": "SparseCategoricalCrossentropy", "config": {"label_smoothing": 0.1}}),
            json!({"class_name": "Huber", "config": {}}),
        ] {
            assert!(Loss::from_config(&bad).is_err(), "{bad}");
        }
    }
}
