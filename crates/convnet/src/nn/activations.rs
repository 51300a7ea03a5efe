//! Activation functions by Keras' names: `linear`, `relu`, `sigmoid`, `tanh`, `softmax`.

use crate::error::{Error, Result};
use crate::kernels::activation as k;

/// An activation applied to a layer's output (Keras' `activation=` argument).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Activation {
    /// Identity (Keras' default, `None` or `"linear"`).
    #[default]
    Linear,
    /// `max(x, 0)`.
    Relu,
    /// `1 / (1 + e^-x)`.
    Sigmoid,
    /// Hyperbolic tangent.
    Tanh,
    /// Softmax over the last axis.
    Softmax,
}

impl Activation {
    /// Parses a Keras activation name; `None`/`"linear"` give [`Activation::Linear`].
    pub fn parse(name: &str) -> Result<Self> {
        match name.to_ascii_lowercase().as_str() {
            "linear" | "none" | "" => Ok(Activation::Linear),
            "relu" => Ok(Activation::Relu),
            "sigmoid" => Ok(Activation::Sigmoid),
            "tanh" => Ok(Activation::Tanh),
            "softmax" => Ok(Activation::Softmax),
            other => Err(Error::config(format!(
                "unknown activation {other:?} (convnet has linear, relu, sigmoid, tanh, softmax)"
            ))),
        }
    }

    /// Keras' name of this activation.
    pub fn name(self) -> &'static str {
        match self {
            Activation::Linear => "linear",
            Activation::Relu => "relu",
            Activation::Sigmoid => "sigmoid",
            Activation::Tanh => "tanh",
            Activation::Softmax => "softmax",
        }
    }

    /// Applies the activation in place; `width` is the size of the last axis (for softmax).
    pub fn forward(self, y: &mut [f32], width: usize) {
        match self {
            Activation::Linear => {}
            Activation::Relu => k::relu_forward(y),
            Activation::Sigmoid => k::sigmoid_forward(y),
            Activation::Tanh => k::tanh_forward(y),
            Activation::Softmax => k::softmax_forward(y, width),
        }
    }

    /// Turns `dy` (gradient w.r.t. the activation's output `y`) into the gradient w.r.t. its
    /// input, in place.
    pub fn backward(self, y: &[f32], dy: &mut [f32], width: usize) {
        match self {
            Activation::Linear => {}
            Activation::Relu => k::relu_backward(y, dy),
            Activation::Sigmoid => k::sigmoid_backward(y, dy),
            Activation::Tanh => k::tanh_backward(y, dy),
            Activation::Softmax => k::softmax_backward(y, dy, width),
        }
    }
}

impl std::str::FromStr for Activation {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Activation::parse(s)
    }
}
