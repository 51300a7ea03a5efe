//! `UpSampling2D`: each picture enlarged `size = (sh, sw)` times. `nearest` repeats every
//! pixel into an `sh × sw` block; `bilinear` interpolates as TensorFlow's `resize` with half-
//! pixel centres (which Keras uses): output row `i` reads input row `(i + ½)/sh − ½`, clamped to
//! the picture, mixing its two neighbours `lo`, `hi` by the fractional part `t`:
//! `top = a + (b − a)·tx`, `bottom = c + (d − c)·tx`, `y = top + (bottom − top)·ty`.
//! The backward pass scatters each output gradient back with the same weights.

use super::basics::{image_shape, layer_basics, meta_builders};
use super::{cfg, ForwardCtx, Layer, Meta, Pair};
use crate::error::{Error, Result};
use crate::rng::Rng;
use crate::tensor::Tensor;
use serde_json::{json, Map, Value};

/// One output coordinate of bilinear interpolation: the two input coordinates and the weight of
/// the second.
#[derive(Clone, Copy, Debug, Default)]
struct Tap {
    lo: usize,
    hi: usize,
    t: f32,
}

/// The taps of an axis of `n` input values enlarged `s` times.
fn taps(n: usize, s: usize) -> Vec<Tap> {
    let scale = 1.0 / s as f32;
    (0..n * s)
        .map(|i| {
            let src = (i as f32 + 0.5) * scale - 0.5;
            let f = src.floor();
            let lo = (f.max(0.0) as usize).min(n - 1);
            let hi = ((f + 1.0).max(0.0) as usize).min(n - 1);
            Tap { lo, hi, t: src - f }
        })
        .collect()
}

/// Keras' interpolations convnet implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interpolation {
    /// Each pixel repeated.
    Nearest,
    /// Bilinear, half-pixel centres.
    Bilinear,
}

/// Enlarges pictures (Keras' `UpSampling2D`: size 2×2, nearest).
pub struct UpSampling2D {
    meta: Meta,
    size: Pair,
    interpolation: Interpolation,
    in_shape: [usize; 3],
    out_shape: Vec<usize>,
    rows: Vec<Tap>,
    cols: Vec<Tap>,
}

impl Default for UpSampling2D {
    fn default() -> Self {
        Self::new(2)
    }
}

impl UpSampling2D {
    /// Enlarges `size` times, nearest neighbour.
    pub fn new(size: impl Into<Pair>) -> Self {
        UpSampling2D {
            meta: Meta::default(),
            size: size.into(),
            interpolation: Interpolation::Nearest,
            in_shape: [0; 3],
            out_shape: Vec::new(),
            rows: Vec::new(),
            cols: Vec::new(),
        }
    }

    /// Sets the interpolation.
    pub fn interpolation(mut self, i: Interpolation) -> Self {
        self.interpolation = i;
        self
    }

    meta_builders!();

    /// Reads Keras' config.
    pub fn from_config(c: &Map<String, Value>) -> Result<Self> {
        let l = "UpSampling2D";
        cfg::channels_last(c, l)?;
        let interpolation = match c.get("interpolation").and_then(Value::as_str) {
            None | Some("nearest") => Interpolation::Nearest,
            Some("bilinear") => Interpolation::Bilinear,
            Some(other) => {
                return Err(Error::config(format!(
                    "{l}: interpolation {other:?} is not supported (convnet has nearest and bilinear)"
                )))
            }
        };
        let mut layer = UpSampling2D::new(cfg::pair(c, "size", Some(Pair(2, 2)), l)?).interpolation(interpolation);
        layer.meta = Meta::from_config(c)?;
        Ok(layer)
    }
}

impl Layer for UpSampling2D {
    layer_basics!("UpSampling2D", "up_sampling2d");

    fn build(&mut self, input_shape: &[usize], _rng: &mut Rng) -> Result<Vec<usize>> {
        let [h, w, c] = image_shape(input_shape, "UpSampling2D", &self.meta.name)?;
        let Pair(sh, sw) = self.size;
        let values = [h, sh, w, sw, c].iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        if values.is_none_or(|v| v > super::MAX_WEIGHT_VALUES) {
            return Err(Error::shape(format!(
                "UpSampling2D {:?}: {h}×{w} pictures enlarged {sh}×{sw} times are too large",
                self.meta.name
            )));
        }
        self.in_shape = [h, w, c];
        self.out_shape = vec![h * sh, w * sw, c];
        self.rows = taps(h, sh);
        self.cols = taps(w, sw);
        Ok(self.out_shape.clone())
    }

    fn forward(&mut self, x: &Tensor, y: &mut Tensor, _ctx: &mut ForwardCtx<'_>) {
        let [h, w, c] = self.in_shape;
        let Pair(sh, sw) = self.size;
        let (oh, ow) = (h * sh, w * sw);
        let samples = x.data().chunks_exact(h * w * c).zip(y.data_mut().chunks_exact_mut(oh * ow * c));
        for (xs, ys) in samples {
            for (i, yrow) in ys.chunks_exact_mut(ow * c).enumerate() {
                match self.interpolation {
                    Interpolation::Nearest => {
                        let xrow = &xs[(i / sh) * w * c..][..w * c];
                        for (j, px) in yrow.chunks_exact_mut(c).enumerate() {
                            px.copy_from_slice(&xrow[(j / sw) * c..][..c]);
                        }
                    }
                    Interpolation::Bilinear => {
                        let r = self.rows[i];
                        let (top, bottom) = (&xs[r.lo * w * c..][..w * c], &xs[r.hi * w * c..][..w * c]);
                        for (px, q) in yrow.chunks_exact_mut(c).zip(&self.cols) {
                            let (a, b) = (&top[q.lo * c..][..c], &top[q.hi * c..][..c]);
                            let (cc, d) = (&bottom[q.lo * c..][..c], &bottom[q.hi * c..][..c]);
                            for ch in 0..c {
                                let t = a[ch] + (b[ch] - a[ch]) * q.t;
                                let u = cc[ch] + (d[ch] - cc[ch]) * q.t;
                                px[ch] = t + (u - t) * r.t;
                            }
                        }
                    }
                }
            }
        }
    }

    fn backward(&mut self, _x: &Tensor, _y: &Tensor, dy: &mut Tensor, dx: Option<&mut Tensor>) {
        let Some(dx) = dx else { return };
        let [h, w, c] = self.in_shape;
        let Pair(sh, sw) = self.size;
        let (oh, ow) = (h * sh, w * sw);
        let samples = dx.data_mut().chunks_exact_mut(h * w * c).zip(dy.data().chunks_exact(oh * ow * c));
        for (dxs, g) in samples {
            dxs.fill(0.0);
            for (i, grow) in g.chunks_exact(ow * c).enumerate() {
                match self.interpolation {
                    Interpolation::Nearest => {
                        let drow = &mut dxs[(i / sh) * w * c..][..w * c];
                        for (j, px) in grow.chunks_exact(c).enumerate() {
                            for (o, &v) in drow[(j / sw) * c..][..c].iter_mut().zip(px) {
                                *o += v;
                            }
                        }
                    }
                    Interpolation::Bilinear => {
                        let r = self.rows[i];
                        for (px, q) in grow.chunks_exact(c).zip(&self.cols) {
                            for (row, wr) in [(r.lo, 1.0 - r.t), (r.hi, r.t)] {
                                for (col, wc) in [(q.lo, 1.0 - q.t), (q.hi, q.t)] {
                                    let k = wr * wc;
                                    let at = &mut dxs[(row * w + col) * c..][..c];
                                    for (o, &v) in at.iter_mut().zip(px) {
                                        *o += v * k;
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    fn config(&self) -> Map<String, Value> {
        let mut m = self.meta.config();
        m.insert("size".into(), self.size.to_json());
        m.insert("data_format".into(), json!("channels_last"));
        let i = match self.interpolation {
            Interpolation::Nearest => "nearest",
            Interpolation::Bilinear => "bilinear",
        };
        m.insert("interpolation".into(), json!(i));
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::layers::gradcheck::check_layer;

    #[test]
    fn gradients_match_finite_differences() {
        check_layer(&mut UpSampling2D::new((2, 3)), &[2, 3, 2], 2, 1, 1e-2);
        check_layer(&mut UpSampling2D::new(2).interpolation(Interpolation::Bilinear), &[3, 4, 2], 2, 2, 1e-2);
        check_layer(&mut UpSampling2D::new((3, 2)).interpolation(Interpolation::Bilinear), &[2, 3, 1], 2, 3, 1e-2);
    }

    #[test]
    fn config_round_trips_and_refuses_other_interpolations() {
        let l = UpSampling2D::new((2, 3)).interpolation(Interpolation::Bilinear).name("u");
        assert_eq!(UpSampling2D::from_config(&l.config()).unwrap().config(), l.config());
        let e = UpSampling2D::from_config(json!({"interpolation": "lanczos3"}).as_object().unwrap());
        assert!(e.err().unwrap().to_string().contains("lanczos3"));
        assert!(UpSampling2D::new(1 << 15).build(&[1 << 10, 1 << 10, 3], &mut Rng::new(0)).is_err());
    }
}
