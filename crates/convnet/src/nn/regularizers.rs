//! Weight decay as Keras does it: `l1(…)`, `l2(…)`, `l1_l2(…)` penalties added to the loss.
//!
//! Penalty `l1·Σ|w| + l2·Σw²`, gradient `l1·sign(w) + 2·l2·w`. Activity regularizers apply
//! the same penalty to a layer's output, divided by the batch size.

use crate::error::{Error, Result};
use serde_json::{json, Value};

/// An L1/L2 penalty on a weight or an activation (Keras' `L1`, `L2` and `L1L2`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Regularizer {
    /// L1 factor.
    pub l1: f32,
    /// L2 factor.
    pub l2: f32,
}

/// Keras' `regularizers.l1(l1=0.01)`.
pub fn l1(l1: f32) -> Regularizer {
    Regularizer { l1, l2: 0.0 }
}

/// Keras' `regularizers.l2(l2=0.01)`.
pub fn l2(l2: f32) -> Regularizer {
    Regularizer { l1: 0.0, l2 }
}

/// Keras' `regularizers.l1_l2(l1, l2)`.
pub fn l1_l2(l1: f32, l2: f32) -> Regularizer {
    Regularizer { l1, l2 }
}

impl Regularizer {
    /// The penalty for `w`: `l1·Σ|w| + l2·Σw²`.
    pub fn penalty(&self, w: &[f32]) -> f32 {
        let mut s1 = 0.0f64;
        let mut s2 = 0.0f64;
        for &v in w {
            s1 += v.abs() as f64;
            s2 += (v as f64) * (v as f64);
        }
        (self.l1 as f64 * s1 + self.l2 as f64 * s2) as f32
    }

    /// Adds `scale·∂penalty/∂w` to `grad`.
    pub fn add_gradient(&self, w: &[f32], grad: &mut [f32], scale: f32) {
        let a = self.l1 * scale;
        let b = 2.0 * self.l2 * scale;
        for (g, &v) in grad.iter_mut().zip(w) {
            let sign = if v > 0.0 {
                1.0
            } else if v < 0.0 {
                -1.0
            } else {
                0.0
            };
            *g += a * sign + b * v;
        }
    }

    /// Keras' serialized form: class `L1`, `L2` or `L1L2` with its factors.
    pub fn to_config(&self) -> Value {
        if self.l2 == 0.0 {
            json!({"class_name": "L1", "config": {"l1": self.l1}})
        } else if self.l1 == 0.0 {
            json!({"class_name": "L2", "config": {"l2": self.l2}})
        } else {
            json!({"class_name": "L1L2", "config": {"l1": self.l1, "l2": self.l2}})
        }
    }

    /// Reads Keras' config form; `null` means no regularizer. A bare name (`"l2"`) takes Keras'
    /// default factor 0.01.
    pub fn from_config(v: &Value) -> Result<Option<Self>> {
        let (class, cfg) = match v {
            Value::Null => return Ok(None),
            Value::String(s) => (s.as_str(), None),
            Value::Object(o) => (
                o.get("class_name")
                    .and_then(Value::as_str)
                    .ok_or_else(|| Error::config("regularizer config without class_name"))?,
                o.get("config").and_then(Value::as_object),
            ),
            other => return Err(Error::config(format!("regularizer must be null, a name or an object, not {other}"))),
        };
        let get = |key: &str, default: f32| {
            cfg.and_then(|c| c.get(key)).and_then(Value::as_f64).map_or(default, |x| x as f32)
        };
        let r = match class.to_ascii_lowercase().replace('_', "").as_str() {
            "l1" => l1(get("l1", 0.01)),
            "l2" => l2(get("l2", 0.01)),
            "l1l2" => l1_l2(get("l1", 0.0), get("l2", 0.0)),
            other => return Err(Error::config(format!("unknown regularizer {other:?} (convnet has L1, L2, L1L2)"))),
        };
        if !(r.l1.is_finite() && r.l2.is_finite() && r.l1 >= 0.0 && r.l2 >= 0.0) {
            return Err(Error::config("regularizer factors must be finite and non-negative"));
        }
        Ok(Some(r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn penalty_matches_keras_formula() {
        let w = [1.0, -2.0, 0.5];
        assert!((l1(0.1).penalty(&w) - 0.1 * 3.5).abs() < 1e-6);
        assert!((l2(0.01).penalty(&w) - 0.01 * 5.25).abs() < 1e-6);
        assert!((l1_l2(0.1, 0.01).penalty(&w) - (0.35 + 0.0525)).abs() < 1e-6);
    }

    #[test]
    fn gradient_matches_finite_differences() {
        let r = l1_l2(0.03, 0.2);
        let w = vec![0.7f32, -1.3, 0.2, -0.05];
        let mut g = vec![0.0; 4];
        r.add_gradient(&w, &mut g, 1.0);
        for i in 0..w.len() {
            let h = 1e-3;
            let mut wp = w.clone();
            wp[i] += h;
            let mut wm = w.clone();
            wm[i] -= h;
            let fd = (r.penalty(&wp) - r.penalty(&wm)) / (2.0 * h);
            assert!((fd - g[i]).abs() < 1e-3, "{i}: {fd} vs {}", g[i]);
        }
    }

    #[test]
    fn config_round_trip() {
        for r in [l1(0.01), l2(0.5), l1_l2(0.1, 0.2)] {
            assert_eq!(Regularizer::from_config(&r.to_config()).unwrap(), Some(r));
        }
        assert_eq!(Regularizer::from_config(&Value::Null).unwrap(), None);
        assert_eq!(Regularizer::from_config(&json!("l2")).unwrap(), Some(l2(0.01)));
        assert!(Regularizer::from_config(&json!({"class_name": "L2", "config": {"l2": -1}})).is_err());
    }
}
