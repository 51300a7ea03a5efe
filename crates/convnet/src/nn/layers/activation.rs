//! `Activation`: applies an activation function as a layer of its own. [`Apply`] is what it
//! shares with the activation layer classes (`ReLU`, `LeakyReLU`, `ELU`, `Softmax`): the
//! shape is kept, the function runs on a copy of the input, and the backward pass reads the
//! input where the derivative needs it (it is the pre-activation, so nothing else is kept).

use super::{Layer, Meta};
use crate::error::Result;
use crate::nn::activations::Activation;
use crate::rng::Rng;
use crate::tensor::Tensor;
use serde_json::{Map, Value};

/// The `Layer` methods every activation layer (`Activation`, `ReLU`, `LeakyReLU`, `ELU`,
/// `Softmax`) delegates to its `meta` and `apply` fields: identity, output shape, both passes,
/// and the loss's fused gradient.
macro_rules! apply_plumbing {
    () => {
        fn meta(&self) -> &$crate::nn::layers::Meta {
            &self.meta
        }

        fn meta_mut(&mut self) -> &mut $crate::nn::layers::Meta {
            &mut self.meta
        }

        fn output_shape(&self) -> &[usize] {
            self.apply.output_shape()
        }

        fn forward(
            &mut self,
            x: &$crate::tensor::Tensor,
            y: &mut $crate::tensor::Tensor,
            _ctx: &mut $crate::nn::layers::ForwardCtx<'_>,
        ) {
            self.apply.forward(x, y);
        }

        fn backward(
            &mut self,
            x: &$crate::tensor::Tensor,
            y: &$crate::tensor::Tensor,
            dy: &mut $crate::tensor::Tensor,
            dx: Option<&mut $crate::tensor::Tensor>,
        ) {
            self.apply.backward(x, y, dy, dx);
        }

        fn set_output_gradient_fused(&mut self, fused: bool) {
            self.apply.set_fused(fused);
        }
    };
}
pub(crate) use apply_plumbing;

/// The work of a layer that applies one activation to its whole input.
#[derive(Default)]
pub(crate) struct Apply {
    /// The function applied.
    pub activation: Activation,
    out_shape: Vec<usize>,
    fused: bool,
}

impl Apply {
    /// Applies `activation`.
    pub fn new(activation: Activation) -> Self {
        Apply { activation, out_shape: Vec::new(), fused: false }
    }

    /// Keeps the shape; returns it as the output shape.
    pub fn build(&mut self, input_shape: &[usize]) -> Vec<usize> {
        self.out_shape = input_shape.to_vec();
        self.out_shape.clone()
    }

    /// The per-sample output shape.
    pub fn output_shape(&self) -> &[usize] {
        &self.out_shape
    }

    fn width(&self) -> usize {
        self.out_shape.last().copied().unwrap_or(1)
    }

    /// `y = act(x)`.
    pub fn forward(&self, x: &Tensor, y: &mut Tensor) {
        y.data_mut().copy_from_slice(x.data());
        self.activation.forward(y.data_mut(), self.width());
    }

    /// `dx = dy ⊙ act'(x)` (`dy` is turned in place first, unless the loss folded it in).
    pub fn backward(&self, x: &Tensor, y: &Tensor, dy: &mut Tensor, dx: Option<&mut Tensor>) {
        if !self.fused {
            self.activation.backward(Some(x.data()), y.data(), dy.data_mut(), self.width());
        }
        if let Some(dx) = dx {
            dx.data_mut().copy_from_slice(dy.data());
        }
    }

    /// See [`Layer::set_output_gradient_fused`].
    pub fn set_fused(&mut self, fused: bool) {
        self.fused = fused;
    }
}

/// An activation as a separate layer (Keras' `Activation`).
pub struct ActivationLayer {
    meta: Meta,
    apply: Apply,
}

impl ActivationLayer {
    /// A layer applying `activation`.
    pub fn new(activation: Activation) -> Self {
        ActivationLayer { meta: Meta::default(), apply: Apply::new(activation) }
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

    apply_plumbing!();

    fn build(&mut self, input_shape: &[usize], _rng: &mut Rng) -> Result<Vec<usize>> {
        Ok(self.apply.build(input_shape))
    }

    fn activation(&self) -> Activation {
        self.apply.activation
    }

    fn config(&self) -> Map<String, Value> {
        let mut m = self.meta.config();
        m.insert("activation".into(), self.apply.activation.to_config());
        m
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::nn::layers::gradcheck::check_layer_piecewise;

    /// Arguments away from the defaults, to check the parameterised variants too.
    pub(crate) fn with_arguments() -> Vec<Activation> {
        vec![
            Activation::LeakyRelu { negative_slope: 0.3 },
            Activation::LeakyRelu { negative_slope: -0.4 },
            Activation::Elu { alpha: 0.5 },
            Activation::Elu { alpha: -0.7 },
            Activation::ReluWith { negative_slope: 0.1, max_value: Some(0.6), threshold: 0.25 },
            Activation::ReluWith { negative_slope: 0.2, max_value: Some(0.5), threshold: 0.0 },
            Activation::ReluWith { negative_slope: 0.0, max_value: None, threshold: -0.3 },
        ]
    }

    #[test]
    fn gradients_match_finite_differences() {
        let all = Activation::all().map(|(_, a)| a).chain(with_arguments());
        for (i, a) in all.enumerate() {
            // Inputs in (−1, 1) scaled by 4 reach every piece of the piecewise functions.
            check_layer_piecewise(
                &mut Scaled(ActivationLayer::new(a), 4.0, a.name()),
                &[2, 5],
                3,
                500 + i as u64,
                2e-2,
            );
        }
    }

    /// A layer whose input is scaled before the wrapped one sees it (the gradient checker
    /// draws inputs in (−1, 1)), reporting failures under a label of its own.
    pub(crate) struct Scaled<L: Layer>(pub L, pub f32, pub &'static str);

    impl<L: Layer> Layer for Scaled<L> {
        fn class_name(&self) -> &'static str {
            self.2
        }
        fn base_name(&self) -> &'static str {
            self.0.base_name()
        }
        fn meta(&self) -> &crate::nn::layers::Meta {
            self.0.meta()
        }
        fn meta_mut(&mut self) -> &mut crate::nn::layers::Meta {
            self.0.meta_mut()
        }
        fn build(&mut self, input_shape: &[usize], rng: &mut Rng) -> Result<Vec<usize>> {
            self.0.build(input_shape, rng)
        }
        fn output_shape(&self) -> &[usize] {
            self.0.output_shape()
        }
        fn forward(&mut self, x: &Tensor, y: &mut Tensor, ctx: &mut crate::nn::layers::ForwardCtx<'_>) {
            let mut xs = x.clone();
            xs.data_mut().iter_mut().for_each(|v| *v *= self.1);
            self.0.forward(&xs, y, ctx)
        }
        fn backward(&mut self, x: &Tensor, y: &Tensor, dy: &mut Tensor, dx: Option<&mut Tensor>) {
            let mut xs = x.clone();
            xs.data_mut().iter_mut().for_each(|v| *v *= self.1);
            let s = self.1;
            match dx {
                Some(dx) => {
                    self.0.backward(&xs, y, dy, Some(&mut *dx));
                    dx.data_mut().iter_mut().for_each(|v| *v *= s);
                }
                None => self.0.backward(&xs, y, dy, None),
            }
        }
        fn params(&self) -> &[crate::nn::layers::Param] {
            self.0.params()
        }
        fn params_mut(&mut self) -> &mut [crate::nn::layers::Param] {
            self.0.params_mut()
        }
        fn config(&self) -> Map<String, Value> {
            self.0.config()
        }
    }
}
