//! `Flatten`: each sample's values as one vector, in NHWC order (as Keras flattens
//! channels-last data).

use super::{ForwardCtx, Layer, Meta};
use crate::error::Result;
use crate::rng::Rng;
use crate::tensor::Tensor;
use serde_json::{json, Map, Value};

/// Flattens every sample to one axis (Keras' `Flatten`).
#[derive(Default)]
pub struct Flatten {
    meta: Meta,
    out_shape: Vec<usize>,
}

impl Flatten {
    /// A flatten layer.
    pub fn new() -> Self {
        Flatten::default()
    }

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
        super::cfg::channels_last(c, "Flatten")?;
        Ok(Flatten { meta: Meta::from_config(c)?, out_shape: Vec::new() })
    }
}

impl Layer for Flatten {
    fn class_name(&self) -> &'static str {
        "Flatten"
    }

    fn base_name(&self) -> &'static str {
        "flatten"
    }

    fn meta(&self) -> &Meta {
        &self.meta
    }

    fn meta_mut(&mut self) -> &mut Meta {
        &mut self.meta
    }

    fn build(&mut self, input_shape: &[usize], _rng: &mut Rng) -> Result<Vec<usize>> {
        self.out_shape = vec![input_shape.iter().product()];
        Ok(self.out_shape.clone())
    }

    fn output_shape(&self) -> &[usize] {
        &self.out_shape
    }

    fn is_passthrough(&self, _training: bool) -> bool {
        true
    }

    fn forward(&mut self, x: &Tensor, y: &mut Tensor, _ctx: &mut ForwardCtx<'_>) {
        y.data_mut().copy_from_slice(x.data());
    }

    fn backward(&mut self, _x: &Tensor, _y: &Tensor, dy: &mut Tensor, dx: Option<&mut Tensor>) {
        if let Some(dx) = dx {
            dx.data_mut().copy_from_slice(dy.data());
        }
    }

    fn config(&self) -> Map<String, Value> {
        let mut m = self.meta.config();
        m.insert("data_format".into(), json!("channels_last"));
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_nhwc_order() {
        let mut l = Flatten::new();
        let mut rng = Rng::new(0);
        assert_eq!(l.build(&[2, 3, 4], &mut rng).unwrap(), vec![24]);
        let x = Tensor::from_vec(&[2, 2, 3, 4], (0..48).map(|v| v as f32).collect()).unwrap();
        let mut y = Tensor::zeros(&[2, 24]);
        l.forward(&x, &mut y, &mut ForwardCtx { training: false, rng: &mut rng });
        assert_eq!(y.data(), x.data());
    }
}
