//! What every layer with a kernel and a bias shares — `Conv2D`, `Dense`, and the convolutions
//! to come: the activation applied to the output, the bias switch, and for each weight its
//! initializer, regularizer and constraint. One struct, [`WeightOptions`], read from and
//! written to Keras' config keys here; the builder methods (`.activation(…)`,
//! `.kernel_initializer(…)`, …) come from [`weight_option_builders!`], so a new layer with
//! weights writes none of this again.

use super::{init_param, Param};
use crate::error::Result;
use crate::nn::activations::Activation;
use crate::nn::constraints::Constraint;
use crate::nn::initializers::Initializer;
use crate::nn::regularizers::Regularizer;
use crate::rng::Rng;
use serde_json::{json, Map, Value};

/// A layer's weight options with Keras' names and defaults: no activation, a bias,
/// `glorot_uniform` kernel, zero bias, no penalties, no constraints.
#[derive(Clone, Debug)]
pub struct WeightOptions {
    /// Applied to the output (Keras' `activation`).
    pub activation: Activation,
    /// Whether the layer has a bias.
    pub use_bias: bool,
    /// Initial values of the kernel.
    pub kernel_initializer: Initializer,
    /// Initial values of the bias.
    pub bias_initializer: Initializer,
    /// Penalty on the kernel.
    pub kernel_regularizer: Option<Regularizer>,
    /// Penalty on the bias.
    pub bias_regularizer: Option<Regularizer>,
    /// Penalty on the output, divided by the batch size.
    pub activity_regularizer: Option<Regularizer>,
    /// Projection of the kernel after each update.
    pub kernel_constraint: Option<Constraint>,
    /// Projection of the bias after each update.
    pub bias_constraint: Option<Constraint>,
}

impl Default for WeightOptions {
    fn default() -> Self {
        WeightOptions {
            activation: Activation::Linear,
            use_bias: true,
            kernel_initializer: Initializer::GlorotUniform,
            bias_initializer: Initializer::Zeros,
            kernel_regularizer: None,
            bias_regularizer: None,
            activity_regularizer: None,
            kernel_constraint: None,
            bias_constraint: None,
        }
    }
}

impl WeightOptions {
    /// Reads the options from a layer's Keras config (absent or null keys keep the defaults).
    pub fn from_config(c: &Map<String, Value>) -> Result<Self> {
        let d = WeightOptions::default();
        let init = |k: &str, default: Initializer| match c.get(k).filter(|v| !v.is_null()) {
            Some(v) => Initializer::from_config(v),
            None => Ok(default),
        };
        let reg = |k: &str| c.get(k).map_or(Ok(None), Regularizer::from_config);
        let con = |k: &str| c.get(k).map_or(Ok(None), Constraint::from_config);
        Ok(WeightOptions {
            activation: super::cfg::activation(c)?,
            use_bias: super::cfg::bool_or(c, "use_bias", true)?,
            kernel_initializer: init("kernel_initializer", d.kernel_initializer)?,
            bias_initializer: init("bias_initializer", d.bias_initializer)?,
            kernel_regularizer: reg("kernel_regularizer")?,
            bias_regularizer: reg("bias_regularizer")?,
            activity_regularizer: reg("activity_regularizer")?,
            kernel_constraint: con("kernel_constraint")?,
            bias_constraint: con("bias_constraint")?,
        })
    }

    /// Writes the options into a layer's Keras config.
    pub fn write_config(&self, m: &mut Map<String, Value>) {
        let reg = |r: &Option<Regularizer>| r.map_or(Value::Null, |r| r.to_config());
        let con = |c: &Option<Constraint>| c.as_ref().map_or(Value::Null, Constraint::to_config);
        m.insert("activation".into(), self.activation.to_config());
        m.insert("use_bias".into(), json!(self.use_bias));
        m.insert("kernel_initializer".into(), self.kernel_initializer.to_config());
        m.insert("bias_initializer".into(), self.bias_initializer.to_config());
        m.insert("kernel_regularizer".into(), reg(&self.kernel_regularizer));
        m.insert("bias_regularizer".into(), reg(&self.bias_regularizer));
        m.insert("activity_regularizer".into(), reg(&self.activity_regularizer));
        m.insert("kernel_constraint".into(), con(&self.kernel_constraint));
        m.insert("bias_constraint".into(), con(&self.bias_constraint));
    }

    /// Creates the layer's weights in Keras' order: `kernel` of `kernel_shape`, then (with
    /// `use_bias`) `bias` of `bias_len` values, each initialised and constrained as set.
    pub fn build_params(
        &self,
        kernel_shape: &[usize],
        bias_len: usize,
        layer: &str,
        rng: &mut Rng,
    ) -> Result<Vec<Param>> {
        let mut kernel = Param::new("kernel", kernel_shape, self.kernel_regularizer)?;
        init_param(&mut kernel, &self.kernel_initializer, &self.kernel_constraint, layer, rng)?;
        let mut params = vec![kernel];
        if self.use_bias {
            let mut bias = Param::new("bias", &[bias_len], self.bias_regularizer)?;
            init_param(&mut bias, &self.bias_initializer, &self.bias_constraint, layer, rng)?;
            params.push(bias);
        }
        Ok(params)
    }
}

/// The builder methods of [`WeightOptions`] for a layer that keeps them in a field `opts`:
/// `activation`, `use_bias`, `kernel_initializer`, `bias_initializer`, `kernel_regularizer`,
/// `bias_regularizer`, `activity_regularizer`, `kernel_constraint`, `bias_constraint`.
macro_rules! weight_option_builders {
    () => {
        /// Sets the activation applied to the output: an [`Activation`](crate::Activation) or
        /// Keras' name (`"relu"`). A name convnet does not know makes building the model fail,
        /// naming the valid ones.
        pub fn activation<A>(mut self, a: A) -> Self
        where
            A: TryInto<$crate::nn::activations::Activation>,
            A::Error: Into<$crate::error::Error>,
        {
            let meta = $crate::nn::layers::Layer::meta_mut(&mut self);
            if let Some(a) = meta.accept(a, "activation") {
                self.opts.activation = a;
            }
            self
        }

        /// Enables or disables the bias.
        pub fn use_bias(mut self, b: bool) -> Self {
            self.opts.use_bias = b;
            self
        }

        /// Sets the kernel initializer.
        pub fn kernel_initializer(mut self, i: $crate::nn::initializers::Initializer) -> Self {
            self.opts.kernel_initializer = i;
            self
        }

        /// Sets the bias initializer.
        pub fn bias_initializer(mut self, i: $crate::nn::initializers::Initializer) -> Self {
            self.opts.bias_initializer = i;
            self
        }

        /// Sets a penalty on the kernel.
        pub fn kernel_regularizer(mut self, r: $crate::nn::regularizers::Regularizer) -> Self {
            self.opts.kernel_regularizer = Some(r);
            self
        }

        /// Sets a penalty on the bias.
        pub fn bias_regularizer(mut self, r: $crate::nn::regularizers::Regularizer) -> Self {
            self.opts.bias_regularizer = Some(r);
            self
        }

        /// Sets a penalty on the output.
        pub fn activity_regularizer(mut self, r: $crate::nn::regularizers::Regularizer) -> Self {
            self.opts.activity_regularizer = Some(r);
            self
        }

        /// Sets a projection of the kernel after each update (Keras' `kernel_constraint`).
        pub fn kernel_constraint(mut self, c: $crate::nn::constraints::Constraint) -> Self {
            self.opts.kernel_constraint = Some(c);
            self
        }

        /// Sets a projection of the bias after each update (Keras' `bias_constraint`).
        pub fn bias_constraint(mut self, c: $crate::nn::constraints::Constraint) -> Self {
            self.opts.bias_constraint = Some(c);
            self
        }
    };
}
pub(crate) use weight_option_builders;

/// The `Layer` methods every layer with [`WeightOptions`] answers the same way from its fields
/// `params`, `opts` and `fused`: its weights, its activation and activity penalty (from the
/// options), and whether the loss has folded its activation's gradient in. Used inside
/// `impl Layer for …`.
macro_rules! weighted_layer_plumbing {
    () => {
        fn params(&self) -> &[$crate::nn::layers::Param] {
            &self.params
        }

        fn params_mut(&mut self) -> &mut [$crate::nn::layers::Param] {
            &mut self.params
        }

        fn activation(&self) -> $crate::nn::activations::Activation {
            self.opts.activation
        }

        fn set_output_gradient_fused(&mut self, fused: bool) {
            self.fused = fused;
        }

        fn activity_regularizer(&self) -> Option<$crate::nn::regularizers::Regularizer> {
            self.opts.activity_regularizer
        }
    };
}
pub(crate) use weighted_layer_plumbing;
