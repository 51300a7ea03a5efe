//! `Dropout`: inverted dropout. In training each value is zeroed with probability `rate` and
//! the survivors are scaled by `1 / (1 − rate)`, so the expected output equals the input; at
//! inference the layer passes values through unchanged.

use super::{ForwardCtx, Layer, Meta};
use crate::error::{Error, Result};
use crate::parallel::SharedMut;
use crate::rng::Rng;
use crate::tensor::Tensor;
use serde_json::{json, Map, Value};

/// Values per independently seeded block of the mask.
const MASK_BLOCK: usize = 1 << 14;

/// Fills `mask` with `scale` (kept) or 0, four 16-bit draws per random word.
fn fill_mask(rng: &mut Rng, mask: &mut [f32], threshold: u32, scale: f32) {
    for quad in mask.chunks_mut(4) {
        let bits = rng.next_u64();
        for (k, m) in quad.iter_mut().enumerate() {
            let r = ((bits >> (16 * k)) & 0xFFFF) as u32;
            *m = if r < threshold { scale } else { 0.0 };
        }
    }
}

/// Randomly drops inputs while training (Keras' `Dropout`).
pub struct Dropout {
    meta: Meta,
    rate: f32,
    out_shape: Vec<usize>,
    /// Per value: 0 or `1 / (1 − rate)` from the last training forward pass.
    mask: Vec<f32>,
    /// Whether the last forward pass was in training mode.
    masked: bool,
}

impl Dropout {
    /// Drops each input with probability `rate` (in [0, 1)) while training.
    pub fn new(rate: f32) -> Self {
        Dropout { meta: Meta::default(), rate, out_shape: Vec::new(), mask: Vec::new(), masked: false }
    }

    /// Names the layer.
    pub fn name(mut self, name: &str) -> Self {
        self.meta.name = name.to_string();
        self
    }

    /// The drop probability.
    pub fn rate(&self) -> f32 {
        self.rate
    }

    /// Reads Keras' config.
    pub fn from_config(c: &Map<String, Value>) -> Result<Self> {
        let rate =
            c.get("rate").and_then(Value::as_f64).ok_or_else(|| Error::config("Dropout: `rate` must be a number"))?
                as f32;
        super::cfg::require_default(c, "noise_shape", &[], "Dropout")?;
        let mut l = Dropout::new(rate);
        l.meta = Meta::from_config(c)?;
        Ok(l)
    }
}

impl Layer for Dropout {
    fn class_name(&self) -> &'static str {
        "Dropout"
    }

    fn base_name(&self) -> &'static str {
        "dropout"
    }

    fn meta(&self) -> &Meta {
        &self.meta
    }

    fn meta_mut(&mut self) -> &mut Meta {
        &mut self.meta
    }

    fn build(&mut self, input_shape: &[usize], _rng: &mut Rng) -> Result<Vec<usize>> {
        if !(0.0..1.0).contains(&self.rate) {
            return Err(Error::config(format!("Dropout rate must be in [0, 1), not {}", self.rate)));
        }
        self.out_shape = input_shape.to_vec();
        Ok(self.out_shape.clone())
    }

    fn output_shape(&self) -> &[usize] {
        &self.out_shape
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
        let keep = 1.0 - self.rate;
        let scale = 1.0 / keep;
        // Each value is kept when a 16-bit random number falls below keep·2¹⁶. Fixed-size
        // blocks, each with its own generator derived from one draw of the model's, so the
        // mask does not depend on the number of threads.
        let threshold = (keep as f64 * 65536.0).round() as u32;
        let seed = ctx.rng.next_u64();
        self.mask.resize(x.len(), 0.0);
        let blocks = x.len().div_ceil(MASK_BLOCK);
        let (xd, ys, ms) = (x.data(), SharedMut::new(y.data_mut()), SharedMut::new(&mut self.mask));
        let workers = crate::parallel::workers().min(blocks).max(1);
        crate::parallel::run(workers, |wi| {
            for b in (wi..blocks).step_by(workers) {
                let r = b * MASK_BLOCK..((b + 1) * MASK_BLOCK).min(xd.len());
                // SAFETY: blocks are disjoint.
                let (yb, mb) = unsafe { (ys.slice(r.clone()), ms.slice(r.clone())) };
                let mut rng = Rng::new(seed ^ (b as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
                fill_mask(&mut rng, mb, threshold, scale);
                for ((o, &v), &m) in yb.iter_mut().zip(&xd[r]).zip(mb.iter()) {
                    *o = v * m;
                }
            }
        });
    }

    fn backward(&mut self, _x: &Tensor, _y: &Tensor, dy: &mut Tensor, dx: Option<&mut Tensor>) {
        let Some(dx) = dx else { return };
        if self.masked {
            for ((o, &g), &m) in dx.data_mut().iter_mut().zip(dy.data()).zip(&self.mask) {
                *o = g * m;
            }
        } else {
            dx.data_mut().copy_from_slice(dy.data());
        }
    }

    fn config(&self) -> Map<String, Value> {
        let mut m = self.meta.config();
        m.insert("rate".into(), json!(self.rate));
        m.insert("noise_shape".into(), Value::Null);
        m.insert("seed".into(), Value::Null);
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::layers::gradcheck::check_layer;

    fn run(rate: f32, training: bool, n: usize) -> (Tensor, Tensor) {
        let mut l = Dropout::new(rate);
        let mut rng = Rng::new(9);
        l.build(&[n], &mut rng).unwrap();
        let x = Tensor::from_vec(&[1, n], (0..n).map(|i| 1.0 + (i % 7) as f32).collect()).unwrap();
        let mut y = Tensor::zeros(&[1, n]);
        l.forward(&x, &mut y, &mut ForwardCtx { training, rng: &mut rng });
        (x, y)
    }

    #[test]
    fn training_drops_at_the_rate_and_keeps_the_mean() {
        for rate in [0.25f32, 0.5, 0.8] {
            let n = 200_000;
            let (x, y) = run(rate, true, n);
            let dropped = y.data().iter().filter(|v| **v == 0.0).count() as f32 / n as f32;
            assert!((dropped - rate).abs() < 0.01, "rate {rate}: dropped {dropped}");
            let mx: f64 = x.data().iter().map(|v| *v as f64).sum::<f64>() / n as f64;
            let my: f64 = y.data().iter().map(|v| *v as f64).sum::<f64>() / n as f64;
            assert!((mx - my).abs() / mx < 0.02, "rate {rate}: mean {mx} vs {my}");
            // survivors are scaled by exactly 1/(1-rate)
            for (a, b) in x.data().iter().zip(y.data()) {
                assert!(*b == 0.0 || (b - a / (1.0 - rate)).abs() < 1e-5);
            }
        }
    }

    #[test]
    fn inference_is_identity() {
        let (x, y) = run(0.5, false, 1000);
        assert_eq!(x, y);
    }

    #[test]
    fn gradient_follows_the_mask() {
        let mut l = Dropout::new(0.4);
        check_layer(&mut l, &[3, 4], 2, 400, 1e-2);
    }

    #[test]
    fn rejects_bad_rates() {
        let mut rng = Rng::new(0);
        assert!(Dropout::new(1.0).build(&[3], &mut rng).is_err());
        assert!(Dropout::new(-0.1).build(&[3], &mut rng).is_err());
    }
}
