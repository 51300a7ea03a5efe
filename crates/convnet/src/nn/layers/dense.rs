//! `Dense`: `y = act(x · kernel + bias)` on the last axis, kernel `[in, units]`.
//!
//! Backward: `dz = dy ⊙ act'(z)` (`z` the pre-activation, kept from the training pass for the
//! activations whose derivative is not a function of `y`), `dbias = Σ_rows dz`,
//! `dkernel = xᵀ · dz`, `dx = dz · kernelᵀ`. Each product is split over the worker threads by
//! rows or columns of its result.

use super::weights::{weight_option_builders, weighted_layer_plumbing, WeightOptions};
use super::{bias_activation, cfg, shape_str, ForwardCtx, Layer, Meta, Param};
use crate::error::{Error, Result};
use crate::kernels::gemm::{par_gemm, par_gemm_with, GemmShape};
use crate::rng::Rng;
use crate::tensor::Tensor;
use serde_json::{json, Map, Value};

/// A fully connected layer (Keras' `Dense`).
pub struct Dense {
    meta: Meta,
    units: usize,
    opts: WeightOptions,
    in_features: usize,
    out_shape: Vec<usize>,
    params: Vec<Param>,
    fused: bool,
    /// The pre-activation of the last training pass, for activations that need it in the
    /// backward pass (sized on first use, then reused).
    pre: Vec<f32>,
    /// Per-part buffers for the input-gradient product (kept so steps allocate nothing).
    scratch: Vec<Vec<f32>>,
}

impl Dense {
    /// A layer of `units` outputs with Keras' defaults: no activation, a bias, glorot_uniform
    /// kernel, zero bias.
    pub fn new(units: usize) -> Self {
        Dense {
            meta: Meta::default(),
            units,
            opts: WeightOptions::default(),
            in_features: 0,
            out_shape: Vec::new(),
            params: Vec::new(),
            fused: false,
            pre: Vec::new(),
            scratch: Vec::new(),
        }
    }

    weight_option_builders!();

    /// Names the layer.
    pub fn name(mut self, name: &str) -> Self {
        self.meta.name = name.to_string();
        self
    }

    /// Declares the per-sample input shape (first layer).
    pub fn input_shape(mut self, shape: impl AsRef<[usize]>) -> Self {
        self.meta.input_shape = Some(shape.as_ref().to_vec());
        self
    }

    /// Reads Keras' config.
    pub fn from_config(c: &Map<String, Value>) -> Result<Self> {
        let mut layer = Dense::new(cfg::usize_req(c, "units", "Dense")?);
        layer.meta = Meta::from_config(c)?;
        layer.opts = WeightOptions::from_config(c)?;
        Ok(layer)
    }
}

impl Layer for Dense {
    fn class_name(&self) -> &'static str {
        "Dense"
    }

    fn base_name(&self) -> &'static str {
        "dense"
    }

    fn meta(&self) -> &Meta {
        &self.meta
    }

    fn meta_mut(&mut self) -> &mut Meta {
        &mut self.meta
    }

    fn build(&mut self, input_shape: &[usize], rng: &mut Rng) -> Result<Vec<usize>> {
        let Some(&inf) = input_shape.last() else {
            return Err(Error::shape(format!(
                "Dense {:?} needs an input with at least one axis besides the batch, got {}",
                self.meta.name,
                shape_str(input_shape)
            )));
        };
        if self.units == 0 {
            return Err(Error::config("Dense needs at least one unit"));
        }
        let kshape = [inf, self.units];
        self.params = self.opts.build_params(&kshape, self.units, &self.meta.name, rng)?;
        self.in_features = inf;
        self.out_shape = input_shape.to_vec();
        *self.out_shape.last_mut().expect("non-empty") = self.units;
        Ok(self.out_shape.clone())
    }

    fn output_shape(&self) -> &[usize] {
        &self.out_shape
    }

    fn forward(&mut self, x: &Tensor, y: &mut Tensor, ctx: &mut ForwardCtx<'_>) {
        let rows = x.len() / self.in_features;
        let kernel = &self.params[0].value;
        par_gemm(GemmShape::nn(rows, self.in_features, self.units), x.data(), kernel, y.data_mut(), false);
        let bias = self.params.get(1).map(|p| p.value.as_slice());
        let keep = if ctx.training && self.opts.activation.needs_input() {
            if self.pre.len() < y.len() {
                self.pre.resize(y.len(), 0.0);
            }
            Some(&mut self.pre[..y.len()])
        } else {
            None
        };
        bias_activation(y.data_mut(), bias, self.opts.activation, self.units, keep);
    }

    fn backward(&mut self, x: &Tensor, y: &Tensor, dy: &mut Tensor, dx: Option<&mut Tensor>) {
        let rows = x.len() / self.in_features;
        let (inf, units) = (self.in_features, self.units);
        if !self.fused {
            let pre = self.opts.activation.needs_input().then(|| &self.pre[..y.len()]);
            self.opts.activation.backward(pre, y.data(), dy.data_mut(), units);
        }
        let dz = dy.data();
        if let Some(b) = self.params.get_mut(1) {
            b.grad.fill(0.0);
            crate::kernels::simd::add_rows(&mut b.grad, dz);
        }
        par_gemm(GemmShape::tn(inf, rows, units), x.data(), dz, &mut self.params[0].grad, false);
        if let Some(dx) = dx {
            // dx = dz · Wᵀ: the product transposes W a cache-sized chunk at a time.
            let s = GemmShape::nt(rows, units, inf);
            par_gemm_with(s, dz, &self.params[0].value, dx.data_mut(), false, &mut self.scratch);
        }
    }

    weighted_layer_plumbing!();

    fn config(&self) -> Map<String, Value> {
        let mut m = self.meta.config();
        m.insert("units".into(), json!(self.units));
        self.opts.write_config(&mut m);
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::activations::Activation;
    use crate::nn::initializers::Initializer;
    use crate::nn::layers::activation::tests::Scaled;
    use crate::nn::layers::gradcheck::{check_layer, check_layer_piecewise};

    #[test]
    fn gradients_match_finite_differences() {
        let acts = [Activation::Linear, Activation::Tanh, Activation::Sigmoid, Activation::Softmax, Activation::Relu];
        for (i, a) in acts.into_iter().enumerate() {
            let mut l =
                Dense::new(5).activation(a).bias_initializer(Initializer::RandomNormal { mean: 0.0, stddev: 0.3 });
            check_layer(&mut l, &[7], 4, 200 + i as u64, 2e-2);
        }
        // Every activation as Dense's own, the input scaled so that the pre-activations reach
        // every piece of the piecewise functions.
        let all = Activation::all().map(|(_, a)| a).chain(crate::nn::layers::activation::tests::with_arguments());
        for (i, a) in all.enumerate() {
            let l = Dense::new(5).activation(a).bias_initializer(Initializer::RandomNormal { mean: 0.0, stddev: 0.5 });
            check_layer_piecewise(&mut Scaled(l, 3.0, a.name()), &[4], 3, 300 + i as u64, 2e-2);
        }
        // On a rank-3 input, Dense works on the last axis.
        let mut l = Dense::new(3).use_bias(false).activation(Activation::Tanh);
        check_layer(&mut l, &[2, 4], 3, 210, 2e-2);
    }

    #[test]
    fn parameter_counts_and_shapes() {
        let mut rng = Rng::new(0);
        let mut l = Dense::new(84);
        assert_eq!(l.build(&[120], &mut rng).unwrap(), vec![84]);
        assert_eq!(l.count_params(), 10_164);
        let mut l = Dense::new(4);
        assert_eq!(l.build(&[3, 5], &mut rng).unwrap(), vec![3, 4]);
    }
}
