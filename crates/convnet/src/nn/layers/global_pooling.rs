//! `GlobalAveragePooling2D` and `GlobalMaxPooling2D`: one value per channel of each picture,
//! the mean or the maximum over its height and width; with `keepdims` the output keeps the
//! spatial axes as `(1, 1, channels)`. The mean's gradient spreads `dy / (h·w)` over the
//! picture; the maximum's goes to the first position holding it (kept from the forward pass).

use super::basics::{image_shape, layer_basics, meta_builders};
use super::{cfg, ForwardCtx, Layer, Meta};
use crate::error::Result;
use crate::rng::Rng;
use crate::tensor::Tensor;
use serde_json::{json, Map, Value};

macro_rules! global_pool {
    ($t:ident, $class:literal, $doc:literal) => {
        #[doc = $doc]
        pub struct $t {
            meta: Meta,
            keepdims: bool,
            in_shape: [usize; 3],
            out_shape: Vec<usize>,
            /// Per output value, the input position of the maximum (max pooling only).
            #[allow(dead_code)]
            argmax: Vec<u32>,
        }

        impl Default for $t {
            fn default() -> Self {
                Self::new()
            }
        }

        impl $t {
            /// Keras' defaults (`keepdims=False`).
            pub fn new() -> Self {
                $t {
                    meta: Meta::default(),
                    keepdims: false,
                    in_shape: [0; 3],
                    out_shape: Vec::new(),
                    argmax: Vec::new(),
                }
            }

            /// Keeps the spatial axes, as `(1, 1, channels)`.
            pub fn keepdims(mut self, k: bool) -> Self {
                self.keepdims = k;
                self
            }

            meta_builders!();

            /// Reads Keras' config.
            pub fn from_config(c: &Map<String, Value>) -> Result<Self> {
                cfg::channels_last(c, $class)?;
                Ok($t { meta: Meta::from_config(c)?, keepdims: cfg::bool_or(c, "keepdims", false)?, ..$t::new() })
            }

            fn build_shapes(&mut self, input_shape: &[usize]) -> Result<Vec<usize>> {
                self.in_shape = image_shape(input_shape, $class, &self.meta.name)?;
                let c = self.in_shape[2];
                self.out_shape = if self.keepdims { vec![1, 1, c] } else { vec![c] };
                Ok(self.out_shape.clone())
            }

            fn write_config(&self) -> Map<String, Value> {
                let mut m = self.meta.config();
                m.insert("data_format".into(), json!("channels_last"));
                m.insert("keepdims".into(), json!(self.keepdims));
                m
            }
        }
    };
}

global_pool!(
    GlobalAveragePooling2D,
    "GlobalAveragePooling2D",
    "The mean of each channel over the picture (Keras' `GlobalAveragePooling2D`)."
);
global_pool!(
    GlobalMaxPooling2D,
    "GlobalMaxPooling2D",
    "The maximum of each channel over the picture (Keras' `GlobalMaxPooling2D`)."
);

impl Layer for GlobalAveragePooling2D {
    layer_basics!("GlobalAveragePooling2D", "global_average_pooling2d");

    fn build(&mut self, input_shape: &[usize], _rng: &mut Rng) -> Result<Vec<usize>> {
        self.build_shapes(input_shape)
    }

    fn forward(&mut self, x: &Tensor, y: &mut Tensor, _ctx: &mut ForwardCtx<'_>) {
        let [h, w, c] = self.in_shape;
        let inv = 1.0 / (h * w) as f32;
        for (xs, ys) in x.data().chunks_exact(h * w * c).zip(y.data_mut().chunks_exact_mut(c)) {
            ys.fill(0.0);
            for row in xs.chunks_exact(c) {
                for (o, &v) in ys.iter_mut().zip(row) {
                    *o += v;
                }
            }
            ys.iter_mut().for_each(|o| *o *= inv);
        }
    }

    fn backward(&mut self, _x: &Tensor, _y: &Tensor, dy: &mut Tensor, dx: Option<&mut Tensor>) {
        let Some(dx) = dx else { return };
        let [h, w, c] = self.in_shape;
        let inv = 1.0 / (h * w) as f32;
        for (dxs, g) in dx.data_mut().chunks_exact_mut(h * w * c).zip(dy.data().chunks_exact(c)) {
            for row in dxs.chunks_exact_mut(c) {
                for (o, &v) in row.iter_mut().zip(g) {
                    *o = v * inv;
                }
            }
        }
    }

    fn config(&self) -> Map<String, Value> {
        self.write_config()
    }
}

impl Layer for GlobalMaxPooling2D {
    layer_basics!("GlobalMaxPooling2D", "global_max_pooling2d");

    fn build(&mut self, input_shape: &[usize], _rng: &mut Rng) -> Result<Vec<usize>> {
        self.build_shapes(input_shape)
    }

    fn forward(&mut self, x: &Tensor, y: &mut Tensor, _ctx: &mut ForwardCtx<'_>) {
        let [h, w, c] = self.in_shape;
        self.argmax.resize(y.len(), 0);
        let samples = x.data().chunks_exact(h * w * c).zip(y.data_mut().chunks_exact_mut(c));
        for ((xs, ys), am) in samples.zip(self.argmax.chunks_exact_mut(c)) {
            ys.copy_from_slice(&xs[..c]);
            am.fill(0);
            for (p, row) in xs.chunks_exact(c).enumerate().skip(1) {
                for ((o, a), &v) in ys.iter_mut().zip(am.iter_mut()).zip(row) {
                    if v > *o {
                        *o = v;
                        *a = p as u32;
                    }
                }
            }
        }
    }

    fn backward(&mut self, _x: &Tensor, _y: &Tensor, dy: &mut Tensor, dx: Option<&mut Tensor>) {
        let Some(dx) = dx else { return };
        let [h, w, c] = self.in_shape;
        let samples = dx.data_mut().chunks_exact_mut(h * w * c).zip(dy.data().chunks_exact(c));
        for ((dxs, g), am) in samples.zip(self.argmax.chunks_exact(c)) {
            dxs.fill(0.0);
            for (ch, (&v, &p)) in g.iter().zip(am).enumerate() {
                dxs[p as usize * c + ch] = v;
            }
        }
    }

    fn config(&self) -> Map<String, Value> {
        self.write_config()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::layers::gradcheck::check_layer;

    #[test]
    fn gradients_match_finite_differences() {
        check_layer(&mut GlobalAveragePooling2D::new(), &[3, 4, 5], 2, 1, 1e-2);
        check_layer(&mut GlobalAveragePooling2D::new().keepdims(true), &[2, 2, 3], 2, 2, 1e-2);
        check_layer(&mut GlobalMaxPooling2D::new(), &[3, 3, 4], 2, 3, 1e-2);
        check_layer(&mut GlobalMaxPooling2D::new().keepdims(true), &[2, 3, 2], 3, 4, 1e-2);
    }

    #[test]
    fn shapes_and_configs() {
        let mut l = GlobalMaxPooling2D::new().keepdims(true).name("g");
        assert_eq!(l.build(&[4, 4, 7], &mut Rng::new(0)).unwrap(), [1, 1, 7]);
        let back = GlobalMaxPooling2D::from_config(&l.config()).unwrap();
        assert_eq!(back.config(), l.config());
        assert!(GlobalAveragePooling2D::new().build(&[4, 7], &mut Rng::new(0)).is_err());
    }
}
