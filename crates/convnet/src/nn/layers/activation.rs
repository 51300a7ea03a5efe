//! `Activation`: applies an activation function as a layer of its own.

use super::{ForwardCtx, Layer, Meta};
use crate::error::Result;
use crate::nn::activations::Activation;
use crate::rng::Rng;
use crate::tensor::Tensor;
use serde_json::{json, Map, Value};

/// An activation as a separate layer (Keras' `Activation`).
pub struct ActivationLayer {
    meta: Meta,
    activation: Activation,
    out_shape: Vec<usize>,
    fused: bool,
}

impl ActivationLayer {
    /// A layer applying `activation`.
    pub fn new(activation: Activation) -> Self {
        ActivationLayer { meta: Meta::default(), activation, out_shape: Vec::new(), fused: false }
    }

    /// Names the layer.
    pub fn name(mut self, name: &str) -> Self {
        self.meta.name = name.to_string();
        self
    }

    /// Reads Keras' config.
    pub fn from_config(c: &Map<String, Value>) -> Result<Self> {
        let mut l = ActivationLayer::new(super::cfg::activation(c)?);
        l.meta = Meta::from_config(c)?;
        Ok(l)
    }
}

impl Layer for ActivationLayer {
    fn class_name(&self) -> &'static str {
        "Activation"
    }

    fn base_name(&self) -> &'static str {
        "activation"
    }

    fn meta(&self) -> &Meta {
        &self.meta
    }

    fn meta_mut(&mut self) -> &mut Meta {
        &mut self.meta
    }

    fn build(&mut self, input_shape: &[usize], _rng: &mut Rng) -> Result<Vec<usize>> {
        self.out_shape = input_shape.to_vec();
        Ok(self.out_shape.clone())
    }

    fn output_shape(&self) -> &[usize] {
        &self.out_shape
    }

    fn forward(&mut self, x: &Tensor, y: &mut Tensor, _ctx: &mut ForwardCtx<'_>) {
        y.data_mut().copy_from_slice(x.data());
        let width = self.out_shape.last().copied().unwrap_or(1);
        self.activation.forward(y.data_mut(), width);
    }

    fn backward(&mut self, _x: &Tensor, y: &Tensor, dy: &mut Tensor, dx: Option<&mut Tensor>) {
        let width = self.out_shape.last().copied().unwrap_or(1);
        if !self.fused {
            self.activation.backward(y.data(), dy.data_mut(), width);
        }
        if let Some(dx) = dx {
            dx.data_mut().copy_from_slice(dy.data());
        }
    }

    fn activation(&self) -> Activation {
        self.activation
    }

    fn set_output_gradient_fused(&mut self, fused: bool) {
        self.fused = fused;
    }

    fn config(&self) -> Map<String, Value> {
        let mut m = self.meta.config();
        m.insert("activation".into(), json!(self.activation.name()));
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::layers::gradcheck::check_layer;

    #[test]
    fn gradients_match_finite_differences() {
        for (i, a) in
            [Activation::Relu, Activation::Sigmoid, Activation::Tanh, Activation::Softmax].into_iter().enumerate()
        {
            check_layer(&mut ActivationLayer::new(a), &[2, 5], 3, 500 + i as u64, 2e-2);
        }
    }
}
