//! `PReLU`: a leaky ReLU whose slope is learned, `y = x` for `x > 0`, else `alpha·x`.
//!
//! `alpha` has the per-sample input shape with each of `shared_axes` (counted as Keras does,
//! the batch being axis 0) set to 1, so one slope serves the whole of those axes (`[1, 2]`
//! on an image: one slope per channel). Keras computes `relu(x) − alpha·relu(−x)`; so
//! `∂y/∂alpha = min(x, 0)`, summed over the batch and the shared axes, and `∂y/∂x` is 1 for
//! `x > 0`, `alpha` for `x < 0`.

use super::{init_param, shape_str, ForwardCtx, Layer, Meta, Param};
use crate::error::{Error, Result};
use crate::nn::constraints::Constraint;
use crate::nn::initializers::Initializer;
use crate::nn::regularizers::Regularizer;
use crate::rng::Rng;
use crate::tensor::Tensor;
use serde_json::{json, Map, Value};

/// The parametric ReLU layer (Keras' `PReLU`).
pub struct PReLU {
    meta: Meta,
    alpha_initializer: Initializer,
    alpha_regularizer: Option<Regularizer>,
    alpha_constraint: Option<Constraint>,
    /// Axes (from 1, as Keras counts them) that share one slope.
    shared_axes: Option<Vec<usize>>,
    out_shape: Vec<usize>,
    params: Vec<Param>,
    /// For each value of a sample, the index of its slope in `alpha` (made by `build`).
    alpha_index: Vec<u32>,
}

impl Default for PReLU {
    fn default() -> Self {
        PReLU::new()
    }
}

impl PReLU {
    /// A PReLU with Keras' defaults: slopes start at zero, one per input value.
    pub fn new() -> Self {
        PReLU {
            meta: Meta::default(),
            alpha_initializer: Initializer::Zeros,
            alpha_regularizer: None,
            alpha_constraint: None,
            shared_axes: None,
            out_shape: Vec::new(),
            params: Vec::new(),
            alpha_index: Vec::new(),
        }
    }

    /// Sets the slopes' initializer.
    pub fn alpha_initializer(mut self, i: Initializer) -> Self {
        self.alpha_initializer = i;
        self
    }

    /// Sets a penalty on the slopes.
    pub fn alpha_regularizer(mut self, r: Regularizer) -> Self {
        self.alpha_regularizer = Some(r);
        self
    }

    /// Shares one slope along these axes (from 1; e.g. `[1, 2]` for one slope per channel).
    pub fn shared_axes(mut self, axes: &[usize]) -> Self {
        self.shared_axes = Some(axes.to_vec());
        self
    }

    /// Names the layer.
    pub fn name(mut self, name: &str) -> Self {
        self.meta.name = name.to_string();
        self
    }

    /// Reads Keras' config.
    pub fn from_config(c: &Map<String, Value>) -> Result<Self> {
        let mut l = PReLU::new();
        l.meta = Meta::from_config(c)?;
        if let Some(v) = c.get("alpha_initializer").filter(|v| !v.is_null()) {
            l.alpha_initializer = Initializer::from_config(v)?;
        }
        l.alpha_regularizer = c.get("alpha_regularizer").map_or(Ok(None), Regularizer::from_config)?;
        l.alpha_constraint = c.get("alpha_constraint").map_or(Ok(None), Constraint::from_config)?;
        let axis = |v: &Value| match v.as_u64() {
            Some(a) if (1..=1 << 16).contains(&a) => Ok(a as usize),
            _ => Err(Error::config(format!("PReLU: shared_axes must hold axes from 1 (0 is the batch), found {v}"))),
        };
        l.shared_axes = match c.get("shared_axes") {
            None | Some(Value::Null) => None,
            Some(Value::Array(a)) => Some(a.iter().map(axis).collect::<Result<_>>()?),
            Some(v) => Some(vec![axis(v)?]),
        };
        Ok(l)
    }

    /// The slopes' shape for a per-sample input shape.
    fn alpha_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        let mut shape = input_shape.to_vec();
        for &a in self.shared_axes.iter().flatten() {
            if a == 0 || a > shape.len() {
                return Err(Error::shape(format!(
                    "PReLU {:?}: shared axis {a} is not an axis of input {} (axes count from 1)",
                    self.meta.name,
                    shape_str(input_shape)
                )));
            }
            shape[a - 1] = 1;
        }
        Ok(shape)
    }
}

impl Layer for PReLU {
    fn class_name(&self) -> &'static str {
        "PReLU"
    }

    fn base_name(&self) -> &'static str {
        "p_re_lu"
    }

    fn meta(&self) -> &Meta {
        &self.meta
    }

    fn meta_mut(&mut self) -> &mut Meta {
        &mut self.meta
    }

    fn build(&mut self, input_shape: &[usize], rng: &mut Rng) -> Result<Vec<usize>> {
        let shape = self.alpha_shape(input_shape)?;
        let mut alpha = Param::new("alpha", &shape, self.alpha_regularizer)?;
        init_param(&mut alpha, &self.alpha_initializer, &self.alpha_constraint, &self.meta.name, rng)?;
        let per_sample = input_shape.iter().product::<usize>();
        if per_sample > u32::MAX as usize {
            return Err(Error::shape(format!(
                "PReLU {:?}: input {} is too large",
                self.meta.name,
                shape_str(input_shape)
            )));
        }
        // Row-major strides of alpha, zero along the shared axes.
        let mut strides = vec![0usize; shape.len()];
        let mut s = 1;
        for d in (0..shape.len()).rev() {
            strides[d] = if shape[d] == 1 { 0 } else { s };
            s *= shape[d];
        }
        self.alpha_index.clear();
        self.alpha_index.resize(per_sample, 0);
        let mut coord = vec![0usize; input_shape.len()];
        for slot in self.alpha_index.iter_mut() {
            *slot = coord.iter().zip(&strides).map(|(c, s)| c * s).sum::<usize>() as u32;
            for d in (0..coord.len()).rev() {
                coord[d] += 1;
                if coord[d] < input_shape[d] {
                    break;
                }
                coord[d] = 0;
            }
        }
        self.params = vec![alpha];
        self.out_shape = input_shape.to_vec();
        Ok(self.out_shape.clone())
    }

    fn output_shape(&self) -> &[usize] {
        &self.out_shape
    }

    fn forward(&mut self, x: &Tensor, y: &mut Tensor, _ctx: &mut ForwardCtx<'_>) {
        let alpha = &self.params[0].value;
        let per = self.alpha_index.len().max(1);
        for (xs, ys) in x.data().chunks_exact(per).zip(y.data_mut().chunks_exact_mut(per)) {
            for ((o, &v), &j) in ys.iter_mut().zip(xs).zip(&self.alpha_index) {
                *o = if v > 0.0 { v } else { alpha[j as usize] * v };
            }
        }
    }

    fn backward(&mut self, x: &Tensor, _y: &Tensor, dy: &mut Tensor, dx: Option<&mut Tensor>) {
        let per = self.alpha_index.len().max(1);
        let p = &mut self.params[0];
        p.grad.fill(0.0);
        for (xs, ds) in x.data().chunks_exact(per).zip(dy.data().chunks_exact(per)) {
            for ((&v, &d), &j) in xs.iter().zip(ds).zip(&self.alpha_index) {
                if v < 0.0 {
                    p.grad[j as usize] += v * d;
                }
            }
        }
        if let Some(dx) = dx {
            let rows = x.data().chunks_exact(per).zip(dy.data().chunks_exact(per));
            for ((xs, ds), gs) in rows.zip(dx.data_mut().chunks_exact_mut(per)) {
                for (((g, &d), &v), &j) in gs.iter_mut().zip(ds).zip(xs).zip(&self.alpha_index) {
                    *g = if v > 0.0 {
                        d
                    } else if v < 0.0 {
                        p.value[j as usize] * d
                    } else {
                        0.0
                    };
                }
            }
        }
    }

    fn params(&self) -> &[Param] {
        &self.params
    }

    fn params_mut(&mut self) -> &mut [Param] {
        &mut self.params
    }

    fn config(&self) -> Map<String, Value> {
        let mut m = self.meta.config();
        m.insert("alpha_initializer".into(), self.alpha_initializer.to_config());
        m.insert("alpha_regularizer".into(), self.alpha_regularizer.map_or(Value::Null, |r| r.to_config()));
        m.insert("alpha_constraint".into(), self.alpha_constraint.as_ref().map_or(Value::Null, Constraint::to_config));
        m.insert("shared_axes".into(), self.shared_axes.as_ref().map_or(Value::Null, |a| json!(a)));
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::layers::gradcheck::check_layer_piecewise as check_layer;

    #[test]
    fn gradients_match_finite_differences() {
        let slopes = Initializer::RandomUniform { minval: -0.5, maxval: 0.8 };
        check_layer(&mut PReLU::new().alpha_initializer(slopes.clone()), &[3, 4, 2], 3, 750, 2e-2);
        check_layer(&mut PReLU::new().alpha_initializer(slopes.clone()).shared_axes(&[1, 2]), &[3, 4, 2], 3, 751, 2e-2);
        check_layer(&mut PReLU::new().alpha_initializer(slopes).shared_axes(&[2]), &[3, 4, 2], 2, 752, 2e-2);
    }

    #[test]
    fn weight_shape_follows_keras() {
        let mut rng = Rng::new(0);
        let mut l = PReLU::new().shared_axes(&[1, 2]);
        l.build(&[5, 6, 3], &mut rng).unwrap();
        assert_eq!((l.params()[0].name, l.params()[0].shape.as_slice()), ("alpha", &[1, 1, 3][..]));
        let mut l = PReLU::new();
        l.build(&[7], &mut rng).unwrap();
        assert_eq!(l.params()[0].shape, vec![7]);
        assert!(PReLU::new().shared_axes(&[3]).build(&[4, 4], &mut rng).is_err());
        // alpha_constraint is read, applied to the weight and written back.
        let c = serde_json::json!({"alpha_constraint": {"class_name": "NonNeg", "config": {}}});
        let mut l = PReLU::from_config(c.as_object().unwrap()).unwrap();
        l.build(&[4], &mut rng).unwrap();
        assert!(l.params()[0].constraint.is_some());
        assert_eq!(l.config()["alpha_constraint"]["class_name"], "NonNeg");
    }

    #[test]
    fn slopes_apply_per_shared_group() {
        let mut rng = Rng::new(0);
        let mut l = PReLU::new().shared_axes(&[1]);
        l.build(&[2, 2], &mut rng).unwrap();
        l.params_mut()[0].value.copy_from_slice(&[0.1, 0.5]);
        let x = Tensor::from_vec(&[1, 2, 2], vec![-1.0, -1.0, 2.0, -4.0]).unwrap();
        let mut y = Tensor::zeros(&[1, 2, 2]);
        l.forward(&x, &mut y, &mut ForwardCtx { training: false, rng: &mut rng });
        assert_eq!(y.data(), &[-0.1, -0.5, 2.0, -2.0]);
    }
}
