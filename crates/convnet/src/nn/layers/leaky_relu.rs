//! `LeakyReLU`: `x` for `x > 0`, else `negative_slope·x` (Keras 3 default slope 0.3; Keras 2
//! files call it `alpha`).

use super::activation::{apply_plumbing, Apply};
use super::{cfg, Layer, Meta};
use crate::error::{Error, Result};
use crate::nn::activations::{f32_json, Activation};
use crate::rng::Rng;
use serde_json::{Map, Value};

/// The leaky rectified linear unit layer (Keras' `LeakyReLU`).
pub struct LeakyReLU {
    meta: Meta,
    negative_slope: f32,
    apply: Apply,
}

impl Default for LeakyReLU {
    /// Keras' default slope, 0.3.
    fn default() -> Self {
        LeakyReLU::new(0.3)
    }
}

impl LeakyReLU {
    /// A leaky ReLU with slope `negative_slope` (at least 0) for negative inputs.
    pub fn new(negative_slope: f32) -> Self {
        LeakyReLU { meta: Meta::default(), negative_slope, apply: Apply::default() }
    }

    /// Names the layer.
    pub fn name(mut self, name: &str) -> Self {
        self.meta.name = name.to_string();
        self
    }

    /// Reads Keras' config (`negative_slope`, or Keras 2's `alpha`).
    pub fn from_config(c: &Map<String, Value>) -> Result<Self> {
        let key = if c.get("negative_slope").is_none() && c.contains_key("alpha") { "alpha" } else { "negative_slope" };
        let mut l = LeakyReLU::new(cfg::f32_or(c, key, 0.3, "LeakyReLU")?);
        l.meta = Meta::from_config(c)?;
        l.check()?;
        Ok(l)
    }

    fn check(&self) -> Result<()> {
        if self.negative_slope >= 0.0 && self.negative_slope.is_finite() {
            Ok(())
        } else {
            Err(Error::config(format!("LeakyReLU: negative_slope cannot be negative, got {}", self.negative_slope)))
        }
    }
}

impl Layer for LeakyReLU {
    fn class_name(&self) -> &'static str {
        "LeakyReLU"
    }

    fn base_name(&self) -> &'static str {
        "leaky_re_lu"
    }

    apply_plumbing!();

    fn build(&mut self, input_shape: &[usize], _rng: &mut Rng) -> Result<Vec<usize>> {
        self.check()?;
        self.apply.activation = self.activation();
        Ok(self.apply.build(input_shape))
    }

    fn activation(&self) -> Activation {
        Activation::LeakyRelu { negative_slope: self.negative_slope }
    }

    fn config(&self) -> Map<String, Value> {
        let mut m = self.meta.config();
        m.insert("negative_slope".into(), f32_json(self.negative_slope));
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::layers::gradcheck::check_layer_piecewise as check_layer;
    use serde_json::json;

    #[test]
    fn gradients_match_finite_differences() {
        check_layer(&mut LeakyReLU::default(), &[3, 4], 2, 720, 2e-2);
        check_layer(&mut LeakyReLU::new(1.7), &[5], 3, 721, 2e-2);
    }

    #[test]
    fn reads_both_keras_keys() {
        let l = LeakyReLU::from_config(json!({"alpha": 0.1}).as_object().unwrap()).unwrap();
        assert_eq!(l.activation(), Activation::LeakyRelu { negative_slope: 0.1 });
        let l = LeakyReLU::from_config(json!({"name": "x"}).as_object().unwrap()).unwrap();
        assert_eq!(l.activation(), Activation::LeakyRelu { negative_slope: 0.3 });
        assert!(LeakyReLU::from_config(json!({"negative_slope": -0.1}).as_object().unwrap()).is_err());
    }
}
