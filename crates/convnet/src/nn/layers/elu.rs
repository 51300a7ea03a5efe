//! `ELU`: `x` for `x > 0`, else `alpha·(e^x − 1)`.

use super::activation::{apply_plumbing, Apply};
use super::{cfg, Layer, Meta};
use crate::error::Result;
use crate::nn::activations::{f32_json, Activation};
use crate::rng::Rng;
use serde_json::{Map, Value};

/// The exponential linear unit layer (Keras' `ELU`).
// Keras' class name, kept as Keras spells it like the other layers.
#[allow(clippy::upper_case_acronyms)]
pub struct ELU {
    meta: Meta,
    alpha: f32,
    apply: Apply,
}

impl Default for ELU {
    /// Keras' default, alpha 1.
    fn default() -> Self {
        ELU::new(1.0)
    }
}

impl ELU {
    /// An ELU with scale `alpha` for the negative part.
    pub fn new(alpha: f32) -> Self {
        ELU { meta: Meta::default(), alpha, apply: Apply::default() }
    }

    /// Names the layer.
    pub fn name(mut self, name: &str) -> Self {
        self.meta.name = name.to_string();
        self
    }

    /// Reads Keras' config.
    pub fn from_config(c: &Map<String, Value>) -> Result<Self> {
        let mut l = ELU::new(cfg::f32_or(c, "alpha", 1.0, "ELU")?);
        l.meta = Meta::from_config(c)?;
        Ok(l)
    }
}

impl Layer for ELU {
    fn class_name(&self) -> &'static str {
        "ELU"
    }

    fn base_name(&self) -> &'static str {
        "elu"
    }

    apply_plumbing!();

    fn build(&mut self, input_shape: &[usize], _rng: &mut Rng) -> Result<Vec<usize>> {
        self.apply.activation = self.activation();
        Ok(self.apply.build(input_shape))
    }

    fn activation(&self) -> Activation {
        Activation::Elu { alpha: self.alpha }
    }

    fn config(&self) -> Map<String, Value> {
        let mut m = self.meta.config();
        m.insert("alpha".into(), f32_json(self.alpha));
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::layers::gradcheck::check_layer_piecewise as check_layer;

    #[test]
    fn gradients_match_finite_differences() {
        check_layer(&mut ELU::default(), &[6], 3, 730, 2e-2);
        check_layer(&mut ELU::new(0.4), &[2, 3], 2, 731, 2e-2);
        check_layer(&mut ELU::new(-0.4), &[2, 3], 2, 732, 2e-2);
    }
}
