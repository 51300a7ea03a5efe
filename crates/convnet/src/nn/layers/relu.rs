//! `ReLU`: Keras' `relu` with its arguments as a layer: `x` above `threshold` (else 0),
//! clipped to `max_value` when one is set, and `negative_slope·(x − threshold)` below the
//! threshold. With Keras' defaults it is the plain ReLU (and keeps its fast paths).

use super::activation::{apply_plumbing, Apply};
use super::{cfg, Layer, Meta};
use crate::error::{Error, Result};
use crate::nn::activations::{f32_json, Activation};
use crate::rng::Rng;
use serde_json::{Map, Value};

/// The rectified linear unit layer (Keras' `ReLU`).
pub struct ReLU {
    meta: Meta,
    max_value: Option<f32>,
    negative_slope: f32,
    threshold: f32,
    apply: Apply,
}

impl Default for ReLU {
    fn default() -> Self {
        ReLU::new()
    }
}

impl ReLU {
    /// A ReLU with Keras' defaults: no maximum, slope 0, threshold 0.
    pub fn new() -> Self {
        ReLU { meta: Meta::default(), max_value: None, negative_slope: 0.0, threshold: 0.0, apply: Apply::default() }
    }

    /// Sets the largest output (at least 0).
    pub fn max_value(mut self, m: Option<f32>) -> Self {
        self.max_value = m;
        self
    }

    /// Sets the slope below the threshold (at least 0).
    pub fn negative_slope(mut self, s: f32) -> Self {
        self.negative_slope = s;
        self
    }

    /// Sets where the function turns on (at least 0).
    pub fn threshold(mut self, t: f32) -> Self {
        self.threshold = t;
        self
    }

    /// Names the layer.
    pub fn name(mut self, name: &str) -> Self {
        self.meta.name = name.to_string();
        self
    }

    /// Reads Keras' config.
    pub fn from_config(c: &Map<String, Value>) -> Result<Self> {
        let mut l = ReLU::new();
        l.meta = Meta::from_config(c)?;
        l.max_value = match c.get("max_value") {
            None | Some(Value::Null) => None,
            Some(_) => Some(cfg::f32_or(c, "max_value", 0.0, "ReLU")?),
        };
        l.negative_slope = cfg::f32_or(c, "negative_slope", 0.0, "ReLU")?;
        l.threshold = cfg::f32_or(c, "threshold", 0.0, "ReLU")?;
        l.check()?;
        Ok(l)
    }

    /// Keras' checks on the arguments.
    fn check(&self) -> Result<()> {
        let bad = |what: &str, v: f32| Err(Error::config(format!("ReLU: {what} cannot be negative, got {v}")));
        match (self.max_value, self.negative_slope, self.threshold) {
            (Some(m), _, _) if !(m >= 0.0 && m.is_finite()) => bad("max_value", m),
            (_, s, _) if !(s >= 0.0 && s.is_finite()) => bad("negative_slope", s),
            (_, _, t) if !(t >= 0.0 && t.is_finite()) => bad("threshold", t),
            _ => Ok(()),
        }
    }

    fn activation_fn(&self) -> Activation {
        Activation::relu_with(self.negative_slope, self.max_value, self.threshold)
    }
}

impl Layer for ReLU {
    fn class_name(&self) -> &'static str {
        "ReLU"
    }

    fn base_name(&self) -> &'static str {
        "re_lu"
    }

    apply_plumbing!();

    fn build(&mut self, input_shape: &[usize], _rng: &mut Rng) -> Result<Vec<usize>> {
        self.check()?;
        self.apply.activation = self.activation_fn();
        Ok(self.apply.build(input_shape))
    }

    fn activation(&self) -> Activation {
        self.activation_fn()
    }

    fn config(&self) -> Map<String, Value> {
        let mut m = self.meta.config();
        m.insert("max_value".into(), self.max_value.map_or(Value::Null, f32_json));
        m.insert("negative_slope".into(), f32_json(self.negative_slope));
        m.insert("threshold".into(), f32_json(self.threshold));
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::layers::activation::tests::Scaled;
    use crate::nn::layers::gradcheck::check_layer_piecewise;
    use serde_json::json;

    #[test]
    fn gradients_match_finite_differences() {
        let layers = [
            ReLU::new(),
            ReLU::new().max_value(Some(6.0)),
            ReLU::new().negative_slope(0.3),
            ReLU::new().max_value(Some(1.5)).negative_slope(0.2).threshold(0.7),
            ReLU::new().threshold(1.1),
        ];
        for (i, l) in layers.into_iter().enumerate() {
            check_layer_piecewise(&mut Scaled(l, 3.0, "ReLU"), &[4, 3], 2, 700 + i as u64, 2e-2);
        }
    }

    #[test]
    fn keras_arguments_are_checked_and_kept() {
        let c = json!({"name": "r", "max_value": 6.0, "negative_slope": 0.0, "threshold": 0.0});
        let l = ReLU::from_config(c.as_object().unwrap()).unwrap();
        assert_eq!(l.activation(), Activation::Relu6);
        assert_eq!(l.config()["max_value"], json!(6.0));
        for bad in [json!({"max_value": -1.0}), json!({"negative_slope": -0.5}), json!({"threshold": -2.0})] {
            let e = ReLU::from_config(bad.as_object().unwrap()).err().expect("refused").to_string();
            assert!(e.contains("cannot be negative"), "{e}");
        }
        let mut rng = Rng::new(0);
        assert!(ReLU::new().negative_slope(-1.0).build(&[3], &mut rng).is_err());
    }
}
