//! `Reshape`: the same values in a new per-sample shape (`target_shape`, one entry of which may
//! be -1, inferred), in row-major (NHWC) order. The model hands the buffer on without copying.

use super::basics::{layer_basics, meta_builders};
use super::{shape_str, ForwardCtx, Layer, Meta};
use crate::error::{Error, Result};
use crate::rng::Rng;
use crate::tensor::Tensor;
use serde_json::{json, Map, Value};

/// Gives each sample a new shape (Keras' `Reshape`).
pub struct Reshape {
    meta: Meta,
    /// Keras' `target_shape`, with at most one -1.
    target: Vec<i64>,
    out_shape: Vec<usize>,
}

impl Reshape {
    /// To `target_shape` (one entry may be -1).
    pub fn new(target_shape: &[i64]) -> Self {
        Reshape { meta: Meta::default(), target: target_shape.to_vec(), out_shape: Vec::new() }
    }

    meta_builders!();

    /// Reads Keras' config.
    pub fn from_config(c: &Map<String, Value>) -> Result<Self> {
        let bad = || Error::config("Reshape: `target_shape` must be a list of positive sizes and at most one -1");
        let target = c
            .get("target_shape")
            .and_then(Value::as_array)
            .ok_or_else(bad)?
            .iter()
            .map(|v| v.as_i64().filter(|&d| d == -1 || (1..=1 << 24).contains(&d)).ok_or_else(bad))
            .collect::<Result<Vec<i64>>>()?;
        let mut l = Reshape::new(&target);
        l.meta = Meta::from_config(c)?;
        Ok(l)
    }
}

impl Layer for Reshape {
    layer_basics!("Reshape", "reshape");

    fn build(&mut self, input_shape: &[usize], _rng: &mut Rng) -> Result<Vec<usize>> {
        let total: usize = input_shape.iter().product();
        // A product beyond any real sample (or overflowing) cannot match the input.
        let known = self
            .target
            .iter()
            .filter(|&&d| d > 0)
            .try_fold(1usize, |a, &d| a.checked_mul(d as usize))
            .filter(|&k| k <= total.max(1))
            .unwrap_or(0);
        let unknown = self.target.iter().filter(|&&d| d == -1).count();
        let fits = match unknown {
            0 => known == total && known > 0,
            1 => known > 0 && total.is_multiple_of(known),
            _ => false,
        };
        if !fits || self.target.iter().any(|&d| d == 0 || d < -1) {
            return Err(Error::shape(format!(
                "Reshape {:?}: input {} cannot be reshaped to {:?}",
                self.meta.name,
                shape_str(input_shape),
                self.target
            )));
        }
        self.out_shape = self.target.iter().map(|&d| if d == -1 { total / known } else { d as usize }).collect();
        Ok(self.out_shape.clone())
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
        m.insert("target_shape".into(), json!(self.target));
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::layers::gradcheck::check_layer;

    #[test]
    fn infers_the_missing_size_and_refuses_misfits() {
        let mut rng = Rng::new(0);
        assert_eq!(Reshape::new(&[-1, 4]).build(&[2, 3, 4], &mut rng).unwrap(), [6, 4]);
        assert!(Reshape::new(&[5, -1]).build(&[2, 3, 4], &mut rng).is_err());
        assert!(Reshape::new(&[-1, -1]).build(&[2, 3, 4], &mut rng).is_err());
        assert!(Reshape::new(&[1 << 24, 1 << 24, 1 << 24, -1]).build(&[2, 3, 4], &mut rng).is_err());
        check_layer(&mut Reshape::new(&[4, 3]), &[2, 6], 2, 1, 1e-2);
        let l = Reshape::new(&[3, -1]).name("r");
        assert_eq!(Reshape::from_config(&l.config()).unwrap().config(), l.config());
    }
}
