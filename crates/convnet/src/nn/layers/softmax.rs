//! `Softmax`: softmax as a layer, over the last axis (`axis=-1`, Keras' default; other axes
//! are refused when the layer is built, where the input's rank tells which axis is last).

use super::activation::{apply_plumbing, Apply};
use super::{shape_str, Layer, Meta};
use crate::error::{Error, Result};
use crate::nn::activations::Activation;
use crate::rng::Rng;
use serde_json::{json, Map, Value};

/// The softmax layer (Keras' `Softmax`).
pub struct Softmax {
    meta: Meta,
    /// The axis as the config gives it (an integer or a list of them, counting the batch).
    axis: Value,
    apply: Apply,
}

impl Default for Softmax {
    fn default() -> Self {
        Softmax::new()
    }
}

impl Softmax {
    /// A softmax over the last axis.
    pub fn new() -> Self {
        Softmax { meta: Meta::default(), axis: json!(-1), apply: Apply::new(Activation::Softmax) }
    }

    /// Names the layer.
    pub fn name(mut self, name: &str) -> Self {
        self.meta.name = name.to_string();
        self
    }

    /// Reads Keras' config.
    pub fn from_config(c: &Map<String, Value>) -> Result<Self> {
        let mut l = Softmax::new();
        l.meta = Meta::from_config(c)?;
        match c.get("axis") {
            None | Some(Value::Null) => {}
            Some(a) => {
                let one = |v: &Value| v.as_i64().is_some();
                let ok = match a {
                    Value::Array(v) => !v.is_empty() && v.iter().all(one),
                    v => one(v),
                };
                if !ok {
                    return Err(Error::config(format!("Softmax: `axis` must be an integer, not {a}")));
                }
                l.axis = a.clone();
            }
        }
        // A Softmax object given as another layer's activation is never built on its own.
        if l.last_axis(None).is_err() {
            return Err(Error::config(format!(
                "Softmax over axis {} is not supported: convnet's Softmax works on the last axis (axis=-1)",
                l.axis
            )));
        }
        Ok(l)
    }

    /// Whether the axis is the last one, for inputs of per-sample `rank` (when known).
    fn last_axis(&self, rank: Option<usize>) -> std::result::Result<(), ()> {
        let is_last = |a: i64| a == -1 || (a >= 1 && rank.is_none_or(|r| a == r as i64));
        match &self.axis {
            Value::Array(v) if v.len() == 1 => v[0].as_i64().filter(|&a| is_last(a)).map(|_| ()).ok_or(()),
            v => v.as_i64().filter(|&a| is_last(a)).map(|_| ()).ok_or(()),
        }
    }
}

impl Layer for Softmax {
    fn class_name(&self) -> &'static str {
        "Softmax"
    }

    fn base_name(&self) -> &'static str {
        "softmax"
    }

    apply_plumbing!();

    fn build(&mut self, input_shape: &[usize], _rng: &mut Rng) -> Result<Vec<usize>> {
        if self.last_axis(Some(input_shape.len())).is_err() {
            return Err(Error::config(format!(
                "Softmax {:?} over axis {} of input {} is not supported: convnet's Softmax works on the last axis",
                self.meta.name,
                self.axis,
                shape_str(input_shape)
            )));
        }
        Ok(self.apply.build(input_shape))
    }

    fn activation(&self) -> Activation {
        Activation::Softmax
    }

    fn config(&self) -> Map<String, Value> {
        let mut m = self.meta.config();
        m.insert("axis".into(), self.axis.clone());
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::layers::gradcheck::check_layer;

    #[test]
    fn gradients_match_finite_differences() {
        check_layer(&mut Softmax::new(), &[2, 6], 2, 740, 2e-2);
    }

    #[test]
    fn only_the_last_axis_is_taken() {
        let mut rng = Rng::new(0);
        let cfg = |a: Value| Softmax::from_config(json!({"axis": a}).as_object().unwrap());
        // Axis 3 of (None, h, w, c) is the last one: accepted when built on a rank-3 sample.
        let mut l = cfg(json!(3)).unwrap();
        assert_eq!(l.build(&[4, 4, 2], &mut rng).unwrap(), vec![4, 4, 2]);
        let mut l = cfg(json!(1)).unwrap();
        let e = l.build(&[4, 4, 2], &mut rng).unwrap_err().to_string();
        assert!(e.contains("axis 1") && e.contains("last axis"), "{e}");
        assert!(cfg(json!([-1])).is_ok());
        assert!(cfg(json!(-2)).is_err());
        assert!(cfg(json!("x")).is_err());
        assert_eq!(cfg(json!(-1)).unwrap().config()["axis"], json!(-1));
    }
}
