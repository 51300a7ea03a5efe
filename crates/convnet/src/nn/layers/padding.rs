//! `ZeroPadding2D` and `Cropping2D`: rows and columns of zeros added around each picture, or
//! removed from its edges, as `((top, bottom), (left, right))`. Keras accepts one integer
//! (all four sides), a pair (symmetric height and width amounts) or the pair of pairs, and
//! writes the pair of pairs. Each one's gradient is the other's forward pass.

use super::basics::{image_shape, layer_basics, meta_builders};
use super::{cfg, ForwardCtx, Layer, Meta};
use crate::error::{Error, Result};
use crate::rng::Rng;
use crate::tensor::Tensor;
use serde_json::{json, Map, Value};

/// `((top, bottom), (left, right))`.
pub type Margins = [[usize; 2]; 2];

/// Reads a margin in any of Keras' forms; `default` when absent.
fn margins(c: &Map<String, Value>, key: &str, default: Margins, layer: &str) -> Result<Margins> {
    let bad = || Error::config(format!("{layer}: `{key}` must be an integer, a pair, or a pair of pairs"));
    let int = |v: &Value| v.as_u64().filter(|&x| x <= 1 << 16).map(|x| x as usize).ok_or_else(bad);
    let pair = |v: &Value| match v {
        Value::Array(a) if a.len() == 2 => Ok([int(&a[0])?, int(&a[1])?]),
        v => int(v).map(|x| [x, x]),
    };
    match c.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Array(a)) if a.len() == 2 => Ok([pair(&a[0])?, pair(&a[1])?]),
        Some(v) => int(v).map(|x| [[x, x], [x, x]]),
    }
}

/// Copies the `[h, w, c]` picture window starting at row `r0`, column `c0` of size
/// `oh × ow` from each sample of `src` (pictures `sh × sw`) into `dst` (pictures `dh × dw`) at
/// row `d0`, column `e0`.
#[allow(clippy::too_many_arguments)]
fn copy_window(
    src: &[f32],
    [sh, sw]: [usize; 2],
    [r0, c0]: [usize; 2],
    dst: &mut [f32],
    [dh, dw]: [usize; 2],
    [d0, e0]: [usize; 2],
    [oh, ow]: [usize; 2],
    c: usize,
) {
    for (s, d) in src.chunks_exact(sh * sw * c).zip(dst.chunks_exact_mut(dh * dw * c)) {
        for i in 0..oh {
            let from = ((r0 + i) * sw + c0) * c;
            let to = ((d0 + i) * dw + e0) * c;
            d[to..to + ow * c].copy_from_slice(&s[from..from + ow * c]);
        }
    }
}

macro_rules! margin_layer {
    ($t:ident, $class:literal, $key:literal, $default:expr, $doc:literal) => {
        #[doc = $doc]
        pub struct $t {
            meta: Meta,
            margins: Margins,
            in_shape: [usize; 3],
            out_shape: Vec<usize>,
        }

        impl $t {
            /// With `((top, bottom), (left, right))` margins.
            pub fn new(margins: Margins) -> Self {
                $t { meta: Meta::default(), margins, in_shape: [0; 3], out_shape: Vec::new() }
            }

            /// The same margin on all four sides.
            pub fn uniform(m: usize) -> Self {
                Self::new([[m, m], [m, m]])
            }

            meta_builders!();

            /// Reads Keras' config.
            pub fn from_config(c: &Map<String, Value>) -> Result<Self> {
                cfg::channels_last(c, $class)?;
                let mut l = Self::new(margins(c, $key, $default, $class)?);
                l.meta = Meta::from_config(c)?;
                Ok(l)
            }
        }

        impl Default for $t {
            fn default() -> Self {
                Self::new($default)
            }
        }
    };
}

margin_layer!(
    ZeroPadding2D,
    "ZeroPadding2D",
    "padding",
    [[1, 1], [1, 1]],
    "Zeros around each picture (Keras' `ZeroPadding2D`, default one on every side)."
);
margin_layer!(
    Cropping2D,
    "Cropping2D",
    "cropping",
    [[0, 0], [0, 0]],
    "Rows and columns removed from the edges of each picture (Keras' `Cropping2D`)."
);

impl Layer for ZeroPadding2D {
    layer_basics!("ZeroPadding2D", "zero_padding2d");

    fn build(&mut self, input_shape: &[usize], _rng: &mut Rng) -> Result<Vec<usize>> {
        let [h, w, c] = image_shape(input_shape, "ZeroPadding2D", &self.meta.name)?;
        let [[t, b], [l, r]] = self.margins;
        let (oh, ow) = (h + t + b, w + l + r);
        if oh.checked_mul(ow).and_then(|v| v.checked_mul(c)).is_none_or(|v| v > super::MAX_WEIGHT_VALUES) {
            return Err(Error::shape(format!("ZeroPadding2D {:?}: the padded pictures are too large", self.meta.name)));
        }
        self.in_shape = [h, w, c];
        self.out_shape = vec![oh, ow, c];
        Ok(self.out_shape.clone())
    }

    fn forward(&mut self, x: &Tensor, y: &mut Tensor, _ctx: &mut ForwardCtx<'_>) {
        let [h, w, c] = self.in_shape;
        let (oh, ow) = (self.out_shape[0], self.out_shape[1]);
        y.data_mut().fill(0.0);
        let at = [self.margins[0][0], self.margins[1][0]];
        copy_window(x.data(), [h, w], [0, 0], y.data_mut(), [oh, ow], at, [h, w], c);
    }

    fn backward(&mut self, _x: &Tensor, _y: &Tensor, dy: &mut Tensor, dx: Option<&mut Tensor>) {
        let Some(dx) = dx else { return };
        let [h, w, c] = self.in_shape;
        let (oh, ow) = (self.out_shape[0], self.out_shape[1]);
        let at = [self.margins[0][0], self.margins[1][0]];
        copy_window(dy.data(), [oh, ow], at, dx.data_mut(), [h, w], [0, 0], [h, w], c);
    }

    fn config(&self) -> Map<String, Value> {
        let mut m = self.meta.config();
        m.insert("padding".into(), json!(self.margins));
        m.insert("data_format".into(), json!("channels_last"));
        m
    }
}

impl Layer for Cropping2D {
    layer_basics!("Cropping2D", "cropping2d");

    fn build(&mut self, input_shape: &[usize], _rng: &mut Rng) -> Result<Vec<usize>> {
        let [h, w, c] = image_shape(input_shape, "Cropping2D", &self.meta.name)?;
        let [[t, b], [l, r]] = self.margins;
        if t + b >= h || l + r >= w {
            return Err(Error::shape(format!(
                "Cropping2D {:?}: cropping {:?} leaves nothing of a {h}×{w} picture",
                self.meta.name, self.margins
            )));
        }
        self.in_shape = [h, w, c];
        self.out_shape = vec![h - t - b, w - l - r, c];
        Ok(self.out_shape.clone())
    }

    fn forward(&mut self, x: &Tensor, y: &mut Tensor, _ctx: &mut ForwardCtx<'_>) {
        let [h, w, c] = self.in_shape;
        let (oh, ow) = (self.out_shape[0], self.out_shape[1]);
        let at = [self.margins[0][0], self.margins[1][0]];
        copy_window(x.data(), [h, w], at, y.data_mut(), [oh, ow], [0, 0], [oh, ow], c);
    }

    fn backward(&mut self, _x: &Tensor, _y: &Tensor, dy: &mut Tensor, dx: Option<&mut Tensor>) {
        let Some(dx) = dx else { return };
        let [h, w, c] = self.in_shape;
        let (oh, ow) = (self.out_shape[0], self.out_shape[1]);
        let at = [self.margins[0][0], self.margins[1][0]];
        dx.data_mut().fill(0.0);
        copy_window(dy.data(), [oh, ow], [0, 0], dx.data_mut(), [h, w], at, [oh, ow], c);
    }

    fn config(&self) -> Map<String, Value> {
        let mut m = self.meta.config();
        m.insert("cropping".into(), json!(self.margins));
        m.insert("data_format".into(), json!("channels_last"));
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::layers::gradcheck::check_layer;

    #[test]
    fn gradients_match_finite_differences() {
        check_layer(&mut ZeroPadding2D::new([[1, 2], [0, 1]]), &[3, 2, 2], 2, 1, 1e-2);
        check_layer(&mut Cropping2D::new([[1, 0], [2, 1]]), &[4, 5, 2], 2, 2, 1e-2);
    }

    #[test]
    fn reads_every_form_of_the_margins() {
        let read = |v: Value| ZeroPadding2D::from_config(json!({ "padding": v }).as_object().unwrap()).unwrap().margins;
        assert_eq!(read(json!(2)), [[2, 2], [2, 2]]);
        assert_eq!(read(json!([1, 3])), [[1, 1], [3, 3]]);
        assert_eq!(read(json!([[1, 2], [3, 4]])), [[1, 2], [3, 4]]);
        let l = Cropping2D::new([[1, 0], [0, 2]]).name("c");
        assert_eq!(Cropping2D::from_config(&l.config()).unwrap().config(), l.config());
        assert!(Cropping2D::uniform(2).build(&[4, 9, 1], &mut Rng::new(0)).is_err());
    }
}
