//! `SpatialDropout2D`: dropout of whole channels. In training each channel of each picture is
//! zeroed with probability `rate` (all its pixels at once) and the kept ones are scaled by
//! `1 / (1 − rate)`, as Keras does; at inference the layer passes values through unchanged.

use super::basics::{image_shape, layer_basics, meta_builders};
use super::{cfg, ForwardCtx, Layer, Meta};
use crate::error::{Error, Result};
use crate::rng::Rng;
use crate::tensor::Tensor;
use serde_json::{json, Map, Value};

/// Randomly drops whole channels while training (Keras' `SpatialDropout2D`).
pub struct SpatialDropout2D {
    meta: Meta,
    rate: f32,
    in_shape: [usize; 3],
    out_shape: Vec<usize>,
    /// Per sample and channel: 0 or `1 / (1 − rate)`, from the last training pass.
    mask: Vec<f32>,
    masked: bool,
}

impl SpatialDropout2D {
    /// Drops each channel with probability `rate` (in [0, 1)) while training.
    pub fn new(rate: f32) -> Self {
        SpatialDropout2D {
            meta: Meta::default(),
            rate,
            in_shape: [0; 3],
            out_shape: Vec::new(),
            mask: Vec::new(),
            masked: false,
        }
    }

    meta_builders!();

    /// Reads Keras' config.
    pub fn from_config(c: &Map<String, Value>) -> Result<Self> {
        let l = "SpatialDropout2D";
        cfg::channels_last(c, l)?;
        let rate = c
            .get("rate")
            .and_then(Value::as_f64)
            .ok_or_else(|| Error::config(format!("{l}: `rate` must be a number")))?;
        let mut layer = SpatialDropout2D::new(rate as f32);
        layer.meta = Meta::from_config(c)?;
        Ok(layer)
    }
}

impl Layer for SpatialDropout2D {
    layer_basics!("SpatialDropout2D", "spatial_dropout2d");

    fn build(&mut self, input_shape: &[usize], _rng: &mut Rng) -> Result<Vec<usize>> {
        if !(0.0..1.0).contains(&self.rate) {
            return Err(Error::config(format!("SpatialDropout2D rate must be in [0, 1), not {}", self.rate)));
        }
        self.in_shape = image_shape(input_shape, "SpatialDropout2D", &self.meta.name)?;
        self.out_shape = input_shape.to_vec();
        Ok(self.out_shape.clone())
    }

    fn is_passthrough(&self, training: bool) -> bool {
        !training || self.rate == 0.0
    }

    fn forward(&mut self, x: &Tensor, y: &mut Tensor, ctx: &mut ForwardCtx<'_>) {
        self.masked = ctx.training && self.rate > 0.0;
        if !self.masked {
            y.data_mut().copy_from_slice(x.data());
            return;
        }
        let [h, w, c] = self.in_shape;
        let scale = 1.0 / (1.0 - self.rate);
        self.mask.resize(x.batch() * c, 0.0);
        for m in &mut self.mask {
            *m = if ctx.rng.uniform() < self.rate { 0.0 } else { scale };
        }
        let samples = y.data_mut().chunks_exact_mut(h * w * c).zip(x.data().chunks_exact(h * w * c));
        for ((ys, xs), m) in samples.zip(self.mask.chunks_exact(c)) {
            for (yr, xr) in ys.chunks_exact_mut(c).zip(xs.chunks_exact(c)) {
                for ((o, &v), &k) in yr.iter_mut().zip(xr).zip(m) {
                    *o = v * k;
                }
            }
        }
    }

    fn backward(&mut self, _x: &Tensor, _y: &Tensor, dy: &mut Tensor, dx: Option<&mut Tensor>) {
        let Some(dx) = dx else { return };
        if !self.masked {
            dx.data_mut().copy_from_slice(dy.data());
            return;
        }
        let [h, w, c] = self.in_shape;
        let samples = dx.data_mut().chunks_exact_mut(h * w * c).zip(dy.data().chunks_exact(h * w * c));
        for ((ds, gs), m) in samples.zip(self.mask.chunks_exact(c)) {
            for (dr, gr) in ds.chunks_exact_mut(c).zip(gs.chunks_exact(c)) {
                for ((o, &g), &k) in dr.iter_mut().zip(gr).zip(m) {
                    *o = g * k;
                }
            }
        }
    }

    fn config(&self) -> Map<String, Value> {
        // Keras 3's SpatialDropout2D takes no `trainable` argument, and tf_keras takes these.
        let mut m = Map::new();
        m.insert("name".into(), json!(self.meta.name));
        m.insert("dtype".into(), json!("float32"));
        m.insert("rate".into(), json!(crate::numbers::decimal(self.rate)));
        m.insert("seed".into(), Value::Null);
        m.insert("data_format".into(), json!("channels_last"));
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::layers::gradcheck::check_layer;

    /// Whole channels are dropped at the rate, the kept ones scaled by 1/(1 − rate).
    #[test]
    fn drops_whole_channels_at_the_rate() {
        let mut l = SpatialDropout2D::new(0.3);
        let mut rng = Rng::new(5);
        l.build(&[2, 2, 8], &mut rng).unwrap();
        let n = 2000;
        let x = Tensor::from_vec(&[n, 2, 2, 8], vec![1.0; n * 32]).unwrap();
        let mut y = Tensor::zeros(&[n, 2, 2, 8]);
        l.forward(&x, &mut y, &mut ForwardCtx { training: true, rng: &mut rng });
        let mut dropped = 0;
        for s in y.data().chunks_exact(32) {
            for ch in 0..8 {
                let px: Vec<f32> = s.iter().skip(ch).step_by(8).copied().collect();
                assert!(px.iter().all(|&v| v == px[0]), "a channel is dropped whole");
                assert!(px[0] == 0.0 || (px[0] - 1.0 / 0.7).abs() < 1e-6);
                dropped += (px[0] == 0.0) as usize;
            }
        }
        let rate = dropped as f32 / (n * 8) as f32;
        assert!((rate - 0.3).abs() < 0.02, "{rate}");
        let mut y2 = Tensor::zeros(&[n, 2, 2, 8]);
        l.forward(&x, &mut y2, &mut ForwardCtx { training: false, rng: &mut rng });
        assert_eq!(y2, x);
    }

    #[test]
    fn gradient_follows_the_mask() {
        check_layer(&mut SpatialDropout2D::new(0.4), &[2, 3, 4], 3, 2, 1e-2);
        let l = SpatialDropout2D::new(0.25).name("s");
        assert_eq!(SpatialDropout2D::from_config(&l.config()).unwrap().config(), l.config());
    }
}
