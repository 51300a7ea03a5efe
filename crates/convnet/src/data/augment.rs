//! Data augmentation with Keras' `ImageDataGenerator` options and geometry: random rotations,
//! shifts, shears, zooms, flips, channel shifts and brightness, drawn per image and applied
//! with bilinear sampling, while batches are produced for `fit`.
//!
//! The geometry is Keras' own, quirks included: the affine matrix is built as
//! `rotation · shift(tx, ty) · shear · zoom` about the image centre, with `tx` (from
//! `height_shift_range`, scaled by the height) acting on the column coordinate and `ty` (from
//! `width_shift_range`) on the row coordinate, exactly as `apply_affine_transform` does, and
//! sampling follows `scipy.ndimage` with `order=1` and its `nearest`, `constant`, `reflect`
//! and `wrap` modes. Fixed transforms are checked against Keras' outputs in the tests.

use crate::data::source::TrainData;
use crate::error::{Error, Result};
use crate::parallel::{self, SharedMut};
use crate::rng::Rng;
use crate::tensor::Tensor;

/// How points outside the image are filled (Keras' `fill_mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum FillMode {
    /// Repeat the edge pixel (Keras' default).
    #[default]
    Nearest,
    /// Use the constant `cval`.
    Constant,
    /// Mirror with the edge repeated (`d c b a | a b c d | d c b a`).
    Reflect,
    /// Wrap around, the first and last samples coinciding (scipy's `wrap`).
    Wrap,
}

impl FillMode {
    /// Parses Keras' names.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "nearest" => Ok(FillMode::Nearest),
            "constant" => Ok(FillMode::Constant),
            "reflect" => Ok(FillMode::Reflect),
            "wrap" => Ok(FillMode::Wrap),
            other => Err(Error::config(format!("fill_mode must be nearest, constant, reflect or wrap, not {other:?}"))),
        }
    }
}

/// A shift range (Keras' `width_shift_range` / `height_shift_range`).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum ShiftRange {
    /// Uniform in `[-v, v)`: a fraction of the image size when `v < 1`, pixels otherwise.
    Uniform(f32),
    /// One of these pixel counts, with a random sign.
    Choices(Vec<f32>),
}

impl Default for ShiftRange {
    fn default() -> Self {
        ShiftRange::Uniform(0.0)
    }
}

/// The random transformation of one image (Keras' `transform_parameters`).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Transform {
    /// Rotation in degrees.
    pub theta: f32,
    /// Shift applied to the column coordinate, in pixels (Keras' `tx`).
    pub tx: f32,
    /// Shift applied to the row coordinate, in pixels (Keras' `ty`).
    pub ty: f32,
    /// Shear angle in degrees.
    pub shear: f32,
    /// Zoom of the column coordinate.
    pub zx: f32,
    /// Zoom of the row coordinate.
    pub zy: f32,
    /// Mirror left–right.
    pub flip_horizontal: bool,
    /// Mirror top–bottom.
    pub flip_vertical: bool,
    /// Value added to every channel, clipped to the image's range.
    pub channel_shift: Option<f32>,
    /// Brightness factor (values in 0–255, as Keras' PIL-based shift).
    pub brightness: Option<f32>,
}

impl Transform {
    /// The identity transform.
    pub fn identity() -> Self {
        Transform { zx: 1.0, zy: 1.0, ..Default::default() }
    }
}

/// Keras' `ImageDataGenerator`: random per-image transforms, with Keras' option names.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ImageDataGenerator {
    /// Degrees of random rotation, uniform in `[-r, r)`.
    pub rotation_range: f32,
    /// Random horizontal shift (Keras' `width_shift_range`).
    pub width_shift_range: ShiftRange,
    /// Random vertical shift (Keras' `height_shift_range`).
    pub height_shift_range: ShiftRange,
    /// Degrees of random shear.
    pub shear_range: f32,
    /// Random zoom factors `[lower, upper]` (Keras' float `z` means `[1 − z, 1 + z]`).
    pub zoom_range: (f32, f32),
    /// Random value added to all channels.
    pub channel_shift_range: f32,
    /// Random brightness factor range.
    pub brightness_range: Option<(f32, f32)>,
    /// Randomly mirror left–right.
    pub horizontal_flip: bool,
    /// Randomly mirror top–bottom.
    pub vertical_flip: bool,
    /// How to fill points outside the image.
    pub fill_mode: FillMode,
    /// Fill value for [`FillMode::Constant`].
    pub cval: f32,
    /// Factor applied after the transforms (Keras' `rescale`).
    pub rescale: Option<f32>,
}

impl Default for ImageDataGenerator {
    fn default() -> Self {
        ImageDataGenerator {
            rotation_range: 0.0,
            width_shift_range: ShiftRange::default(),
            height_shift_range: ShiftRange::default(),
            shear_range: 0.0,
            zoom_range: (1.0, 1.0),
            channel_shift_range: 0.0,
            brightness_range: None,
            horizontal_flip: false,
            vertical_flip: false,
            fill_mode: FillMode::Nearest,
            cval: 0.0,
            rescale: None,
        }
    }
}

/// Draws from a shift range for an image dimension of `size` pixels.
fn draw_shift(r: &ShiftRange, size: usize, rng: &mut Rng) -> f32 {
    match r {
        ShiftRange::Uniform(v) if *v == 0.0 => 0.0,
        ShiftRange::Uniform(v) => {
            let s = rng.uniform_range(-v, *v);
            if *v < 1.0 {
                s * size as f32
            } else {
                s
            }
        }
        ShiftRange::Choices(c) if c.is_empty() => 0.0,
        ShiftRange::Choices(c) => {
            let s = c[rng.below(c.len())];
            if rng.below(2) == 0 {
                -s
            } else {
                s
            }
        }
    }
}

/// Maps a possibly out-of-range index `i` into `0..n` by `mode` (scipy's rules), or `None`
/// for a constant fill.
#[inline]
fn fold(i: i64, n: i64, mode: FillMode) -> Option<usize> {
    if (0..n).contains(&i) {
        return Some(i as usize);
    }
    Some(match mode {
        FillMode::Constant => return None,
        FillMode::Nearest => i.clamp(0, n - 1),
        FillMode::Reflect => {
            let p = 2 * n;
            let m = i.rem_euclid(p);
            if m < n {
                m
            } else {
                p - 1 - m
            }
        }
        // Coordinates were wrapped already; only the upper neighbour of n − 1 can fall here.
        FillMode::Wrap => {
            if n <= 1 {
                0
            } else {
                i.rem_euclid(n - 1)
            }
        }
    } as usize)
}

impl ImageDataGenerator {
    /// Parses a specification like `rotation=30,width_shift=0.2,height_shift=0.2,horizontal_flip`
    /// (Keras' option names work too, with or without `_range`). Keys: rotation, width_shift,
    /// height_shift, shear, zoom (`z` or `lo:hi`), channel_shift, brightness (`lo:hi`),
    /// horizontal_flip, vertical_flip, fill_mode, cval, rescale.
    pub fn from_spec(spec: &str) -> Result<Self> {
        const SPEC_KEYS: &[&str] = &[
            "rotation",
            "width_shift",
            "height_shift",
            "shear",
            "zoom",
            "channel_shift",
            "brightness",
            "horizontal_flip",
            "vertical_flip",
            "fill_mode",
            "cval",
            "rescale",
        ];
        const RANGED: &[&str] =
            &["rotation", "width_shift", "height_shift", "shear", "zoom", "channel_shift", "brightness"];
        let mut g = ImageDataGenerator::default();
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (key, value) = match item.split_once('=') {
                Some((k, v)) => (k.trim(), Some(v.trim())),
                None => (item, None),
            };
            let key = key.trim_end_matches("_range");
            let num = |v: Option<&str>| -> Result<f32> {
                v.ok_or_else(|| Error::config(format!("augmentation option {key} needs a value ({key}=...)")))?
                    .parse::<f32>()
                    .ok()
                    .filter(|x| x.is_finite())
                    .ok_or_else(|| Error::config(format!("augmentation option {key}: {v:?} is not a number")))
            };
            let pair = |v: Option<&str>| -> Result<(f32, f32)> {
                let v = v.ok_or_else(|| Error::config(format!("augmentation option {key} needs lo:hi")))?;
                let (a, b) = v.split_once(':').unwrap_or((v, v));
                let p =
                    |s: &str| s.trim().parse::<f32>().map_err(|_| Error::config(format!("{key}: {v:?} is not lo:hi")));
                Ok((p(a)?, p(b)?))
            };
            let flag = |v: Option<&str>| -> Result<bool> {
                match v {
                    None | Some("true") | Some("1") | Some("yes") => Ok(true),
                    Some("false") | Some("0") | Some("no") => Ok(false),
                    Some(o) => Err(Error::config(format!("{key}: {o:?} is not true or false"))),
                }
            };
            match key {
                "rotation" => g.rotation_range = num(value)?.abs(),
                "width_shift" => g.width_shift_range = ShiftRange::Uniform(num(value)?.abs()),
                "height_shift" => g.height_shift_range = ShiftRange::Uniform(num(value)?.abs()),
                "shear" => g.shear_range = num(value)?.abs(),
                "zoom" => {
                    g.zoom_range = match value.filter(|v| v.contains(':')) {
                        Some(_) => pair(value)?,
                        None => {
                            let z = num(value)?.abs();
                            (1.0 - z, 1.0 + z)
                        }
                    }
                }
                "channel_shift" => g.channel_shift_range = num(value)?.abs(),
                "brightness" => g.brightness_range = Some(pair(value)?),
                "horizontal_flip" => g.horizontal_flip = flag(value)?,
                "vertical_flip" => g.vertical_flip = flag(value)?,
                "fill_mode" => g.fill_mode = FillMode::parse(value.unwrap_or(""))?,
                "cval" => g.cval = num(value)?,
                "rescale" => g.rescale = Some(num(value)?),
                _ => {
                    // Named as written; the suggestion may be a short name or Keras' `…_range` one.
                    let written = item.split('=').next().unwrap_or(item).trim();
                    let names: Vec<String> = SPEC_KEYS
                        .iter()
                        .map(|k| k.to_string())
                        .chain(RANGED.iter().map(|k| format!("{k}_range")))
                        .collect();
                    let names: Vec<&str> = names.iter().map(String::as_str).collect();
                    return Err(Error::config(crate::error::unknown_name("augmentation option", written, &names)));
                }
            }
        }
        g.validate()?;
        Ok(g)
    }

    /// Checks the options' ranges.
    pub fn validate(&self) -> Result<()> {
        let (lo, hi) = self.zoom_range;
        if !(lo > 0.0 && hi >= lo) {
            return Err(Error::config(format!("zoom_range must satisfy 0 < lower <= upper, not ({lo}, {hi})")));
        }
        if let Some((a, b)) = self.brightness_range {
            if !(a >= 0.0 && b >= a) {
                return Err(Error::config(format!(
                    "brightness_range must satisfy 0 <= lower <= upper, not ({a}, {b})"
                )));
            }
        }
        Ok(())
    }

    /// Draws the random transform of one `h × w` image (Keras' `get_random_transform`).
    pub fn random_transform(&self, h: usize, w: usize, rng: &mut Rng) -> Transform {
        let mut t = Transform::identity();
        if self.rotation_range != 0.0 {
            t.theta = rng.uniform_range(-self.rotation_range, self.rotation_range);
        }
        t.tx = draw_shift(&self.height_shift_range, h, rng);
        t.ty = draw_shift(&self.width_shift_range, w, rng);
        if self.shear_range != 0.0 {
            t.shear = rng.uniform_range(-self.shear_range, self.shear_range);
        }
        if self.zoom_range != (1.0, 1.0) {
            t.zx = rng.uniform_range(self.zoom_range.0, self.zoom_range.1);
            t.zy = rng.uniform_range(self.zoom_range.0, self.zoom_range.1);
        }
        t.flip_horizontal = self.horizontal_flip && rng.uniform() < 0.5;
        t.flip_vertical = self.vertical_flip && rng.uniform() < 0.5;
        if self.channel_shift_range != 0.0 {
            t.channel_shift = Some(rng.uniform_range(-self.channel_shift_range, self.channel_shift_range));
        }
        if let Some((a, b)) = self.brightness_range {
            t.brightness = Some(rng.uniform_range(a, b));
        }
        t
    }

    /// Applies `t` to one HWC image (`src`, `h × w × c`), writing `dst` (Keras'
    /// `apply_transform`, then `rescale`).
    pub fn apply(&self, t: &Transform, src: &[f32], h: usize, w: usize, c: usize, dst: &mut [f32]) {
        let n = h * w * c;
        assert!(src.len() >= n && dst.len() >= n);
        let (src, dst) = (&src[..n], &mut dst[..n]);
        affine(t, src, h, w, c, self.fill_mode, self.cval, dst);
        if let Some(shift) = t.channel_shift {
            let (lo, hi) = src.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
            dst.iter_mut().for_each(|v| *v = (*v + shift).clamp(lo, hi));
        }
        if t.flip_horizontal {
            for row in dst.chunks_exact_mut(w * c) {
                for x in 0..w / 2 {
                    for ch in 0..c {
                        row.swap(x * c + ch, (w - 1 - x) * c + ch);
                    }
                }
            }
        }
        if t.flip_vertical {
            for y in 0..h / 2 {
                let (top, bottom) = dst.split_at_mut((h - 1 - y) * w * c);
                top[y * w * c..(y + 1) * w * c].swap_with_slice(&mut bottom[..w * c]);
            }
        }
        if let Some(b) = t.brightness {
            // Keras goes through an 8-bit PIL image: truncate, scale, truncate, clip.
            dst.iter_mut().for_each(|v| *v = (v.clamp(0.0, 255.0).trunc() * b).trunc().min(255.0));
        }
        if let Some(r) = self.rescale {
            dst.iter_mut().for_each(|v| *v *= r);
        }
    }

    /// Batches of augmented samples of `x` with their targets `y` (Keras' `flow`); usable as
    /// training data for [`crate::Sequential::fit_data`] and as an iterator of batches.
    pub fn flow<'a>(
        &'a self,
        x: &'a Tensor,
        y: &'a Tensor,
        batch_size: usize,
        shuffle: bool,
        seed: u64,
    ) -> Result<Flow<'a>> {
        if x.shape().len() != 4 {
            return Err(Error::shape(format!(
                "flow needs images of shape (n, height, width, channels), got {:?}",
                x.shape()
            )));
        }
        if y.batch() != x.batch() {
            return Err(Error::shape(format!("{} images but {} targets", x.batch(), y.batch())));
        }
        self.validate()?;
        Ok(Flow {
            gen: self,
            x,
            y,
            batch_size: batch_size.max(1),
            shuffle,
            rng: Rng::new(seed),
            order: (0..x.batch()).collect(),
            cursor: 0,
            params: Vec::new(),
            raw: Tensor::default(),
        })
    }
}

/// Keras' affine resampling (`apply_affine_transform` with `order=1`).
fn affine(t: &Transform, src: &[f32], h: usize, w: usize, c: usize, mode: FillMode, cval: f32, dst: &mut [f32]) {
    // M = R · T · Sh · Z in Keras' (x, y) frame, where x turns out to be the column.
    type M3 = [[f64; 3]; 3];
    let mul = |a: &M3, b: &M3| -> M3 {
        let mut r = [[0.0; 3]; 3];
        for i in 0..3 {
            for j in 0..3 {
                r[i][j] = (0..3).map(|k| a[i][k] * b[k][j]).sum();
            }
        }
        r
    };
    let mut m: Option<M3> = None;
    let mut push = |b: M3| m = Some(m.map_or(b, |a| mul(&a, &b)));
    if t.theta != 0.0 {
        let th = (t.theta as f64).to_radians();
        push([[th.cos(), -th.sin(), 0.0], [th.sin(), th.cos(), 0.0], [0.0, 0.0, 1.0]]);
    }
    if t.tx != 0.0 || t.ty != 0.0 {
        push([[1.0, 0.0, t.tx as f64], [0.0, 1.0, t.ty as f64], [0.0, 0.0, 1.0]]);
    }
    if t.shear != 0.0 {
        let s = (t.shear as f64).to_radians();
        push([[1.0, -s.sin(), 0.0], [0.0, s.cos(), 0.0], [0.0, 0.0, 1.0]]);
    }
    if t.zx != 1.0 || t.zy != 1.0 {
        push([[t.zx as f64, 0.0, 0.0], [0.0, t.zy as f64, 0.0], [0.0, 0.0, 1.0]]);
    }
    let Some(m) = m else {
        dst.copy_from_slice(src);
        return;
    };
    // About the centre: offset uses h for x and w for y, as Keras does.
    let (ox, oy) = (h as f64 / 2.0 - 0.5, w as f64 / 2.0 - 0.5);
    let m = mul(
        &mul(&[[1.0, 0.0, ox], [0.0, 1.0, oy], [0.0, 0.0, 1.0]], &m),
        &[[1.0, 0.0, -ox], [0.0, 1.0, -oy], [0.0, 0.0, 1.0]],
    );
    let (hi, wi) = (h as i64, w as i64);
    for r in 0..h {
        for col in 0..w {
            // (x, y) = (col, row) → input (column, row) = M · (x, y, 1)
            let xin = m[0][0] * col as f64 + m[0][1] * r as f64 + m[0][2];
            let yin = m[1][0] * col as f64 + m[1][1] * r as f64 + m[1][2];
            let out = &mut dst[(r * w + col) * c..(r * w + col + 1) * c];
            if mode == FillMode::Constant {
                // scipy's `constant`: no interpolation beyond the edges.
                let eps = 1e-9;
                if yin < -eps || yin > (h - 1) as f64 + eps || xin < -eps || xin > (w - 1) as f64 + eps {
                    out.fill(cval);
                    continue;
                }
            }
            // scipy's `wrap` moves the coordinate itself into [0, n − 1] (period n − 1).
            let wrap = |v: f64, n: usize| {
                if mode == FillMode::Wrap && n > 1 && (v < 0.0 || v > (n - 1) as f64) {
                    v.rem_euclid((n - 1) as f64)
                } else {
                    v
                }
            };
            let (yin, xin) = (wrap(yin, h), wrap(xin, w));
            let (y0, x0) = (yin.floor(), xin.floor());
            let (fy, fx) = ((yin - y0) as f32, (xin - x0) as f32);
            let (y0, x0) = (y0 as i64, x0 as i64);
            let rows = [fold(y0, hi, mode), fold(y0 + 1, hi, mode)];
            let cols = [fold(x0, wi, mode), fold(x0 + 1, wi, mode)];
            for (ch, o) in out.iter_mut().enumerate() {
                let px = |ry: Option<usize>, cx: Option<usize>| match (ry, cx) {
                    (Some(a), Some(b)) => src[(a * w + b) * c + ch],
                    _ => cval,
                };
                let top = px(rows[0], cols[0]) * (1.0 - fx) + px(rows[0], cols[1]) * fx;
                let bottom = px(rows[1], cols[0]) * (1.0 - fx) + px(rows[1], cols[1]) * fx;
                *o = top * (1.0 - fy) + bottom * fy;
            }
        }
    }
}

/// Augmented batches of a dataset, drawn in a reproducible order (Keras' `NumpyArrayIterator`).
pub struct Flow<'a> {
    gen: &'a ImageDataGenerator,
    x: &'a Tensor,
    y: &'a Tensor,
    batch_size: usize,
    shuffle: bool,
    rng: Rng,
    order: Vec<usize>,
    cursor: usize,
    params: Vec<Transform>,
    raw: Tensor,
}

impl Flow<'_> {
    /// Augments samples `indices` into `x_out` and copies their targets to `y_out`. The
    /// transforms are drawn in order from the flow's generator and applied in parallel.
    fn make(&mut self, indices: &[usize], x_out: &mut Tensor, y_out: &mut Tensor) {
        let s = self.x.shape();
        let (h, w, c) = (s[1], s[2], s[3]);
        self.params.clear();
        for _ in indices {
            self.params.push(self.gen.random_transform(h, w, &mut self.rng));
        }
        self.x.gather_into(indices, &mut self.raw);
        self.y.gather_into(indices, y_out);
        x_out.resize_batch(indices.len(), &s[1..]);
        let per = h * w * c;
        let n = indices.len();
        let (raw, params, gen) = (self.raw.data(), &self.params, self.gen);
        let out = SharedMut::new(x_out.data_mut());
        let workers = parallel::workers().min(n).max(1);
        parallel::run(workers, |wi| {
            for i in (wi..n).step_by(workers) {
                // SAFETY: each sample's output range is written by one worker only.
                let d = unsafe { out.slice(i * per..(i + 1) * per) };
                gen.apply(&params[i], &raw[i * per..(i + 1) * per], h, w, c, d);
            }
        });
    }

    /// The next batch (Keras' `gen.next()`); starts a new pass (reshuffled) after the last.
    pub fn next_batch(&mut self) -> (Tensor, Tensor) {
        let n = self.x.batch();
        if self.cursor == 0 && self.shuffle {
            self.rng.shuffle(&mut self.order);
        }
        let end = (self.cursor + self.batch_size).min(n);
        let idx: Vec<usize> = self.order[self.cursor..end].to_vec();
        self.cursor = if end >= n { 0 } else { end };
        let (mut xb, mut yb) = (Tensor::default(), Tensor::default());
        self.make(&idx, &mut xb, &mut yb);
        (xb, yb)
    }
}

impl Iterator for Flow<'_> {
    type Item = (Tensor, Tensor);
    fn next(&mut self) -> Option<Self::Item> {
        Some(self.next_batch())
    }
}

impl TrainData for Flow<'_> {
    fn len(&self) -> usize {
        self.x.batch()
    }

    fn input_shape(&self) -> &[usize] {
        &self.x.shape()[1..]
    }

    fn fill(&mut self, indices: &[usize], x: &mut Tensor, y: &mut Tensor) -> Result<()> {
        self.make(indices, x, y);
        Ok(())
    }

    fn check(&self, model: &mut crate::Sequential) -> Result<()> {
        let n = model.check_input(self.x)?;
        model.check_targets(self.y, n)
    }

    fn rng_state(&self) -> Option<Rng> {
        Some(self.rng.clone())
    }

    fn set_rng_state(&mut self, rng: Rng) {
        self.rng = rng;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_modes_fold_like_scipy() {
        let f = |i, m| fold(i, 4, m);
        assert_eq!(f(-1, FillMode::Nearest), Some(0));
        assert_eq!(f(5, FillMode::Nearest), Some(3));
        assert_eq!(f(-1, FillMode::Reflect), Some(0));
        assert_eq!(f(-2, FillMode::Reflect), Some(1));
        assert_eq!(f(4, FillMode::Reflect), Some(3));
        assert_eq!(f(5, FillMode::Reflect), Some(2));
        assert_eq!(f(4, FillMode::Wrap), Some(1));
        assert_eq!(f(-1, FillMode::Wrap), Some(2));
        assert_eq!(f(-1, FillMode::Constant), None);
    }

    #[test]
    fn flips_and_identity() {
        let g = ImageDataGenerator::default();
        let src: Vec<f32> = (0..2 * 3).map(|v| v as f32).collect(); // 2x3x1
        let mut dst = vec![0.0; 6];
        g.apply(&Transform::identity(), &src, 2, 3, 1, &mut dst);
        assert_eq!(dst, src);
        g.apply(&Transform { flip_horizontal: true, ..Transform::identity() }, &src, 2, 3, 1, &mut dst);
        assert_eq!(dst, vec![2.0, 1.0, 0.0, 5.0, 4.0, 3.0]);
        g.apply(&Transform { flip_vertical: true, ..Transform::identity() }, &src, 2, 3, 1, &mut dst);
        assert_eq!(dst, vec![3.0, 4.0, 5.0, 0.0, 1.0, 2.0]);
    }

    #[test]
    fn spec_parsing() {
        let g = ImageDataGenerator::from_spec("rotation=30,width_shift=0.2,height_shift=0.1,horizontal_flip").unwrap();
        assert_eq!(g.rotation_range, 30.0);
        assert_eq!(g.width_shift_range, ShiftRange::Uniform(0.2));
        assert!(g.horizontal_flip && !g.vertical_flip);
        let g = ImageDataGenerator::from_spec("zoom=0.2,brightness=0.5:1.5,fill_mode=reflect,rescale=0.5").unwrap();
        assert!((g.zoom_range.0 - 0.8).abs() < 1e-6 && (g.zoom_range.1 - 1.2).abs() < 1e-6);
        assert_eq!(g.fill_mode, FillMode::Reflect);
        assert!(ImageDataGenerator::from_spec("spin=3").is_err());
        assert!(ImageDataGenerator::from_spec("rotation=abc").is_err());
        assert!(ImageDataGenerator::from_spec("zoom=2").is_err());
    }

    #[test]
    fn same_seed_same_batches() {
        let g = ImageDataGenerator::from_spec("rotation=30,width_shift=0.2,height_shift=0.2,horizontal_flip").unwrap();
        let mut rng = Rng::new(1);
        let x = Tensor::from_vec(&[10, 8, 8, 3], (0..1920).map(|_| rng.uniform() * 255.0).collect()).unwrap();
        let y = crate::data::to_categorical(&[0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 10);
        let a: Vec<(Tensor, Tensor)> = g.flow(&x, &y, 4, true, 7).unwrap().take(4).collect();
        let b: Vec<(Tensor, Tensor)> = g.flow(&x, &y, 4, true, 7).unwrap().take(4).collect();
        let c: Vec<(Tensor, Tensor)> = g.flow(&x, &y, 4, true, 8).unwrap().take(4).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a[2].0.batch(), 2, "the third batch holds the last 2 of 10 samples");
        // Labels travel with their images.
        let labels: Vec<usize> = a[..3].iter().flat_map(|(_, y)| y.argmax_rows()).collect();
        let mut sorted = labels.clone();
        sorted.sort();
        assert_eq!(sorted, (0..10).collect::<Vec<_>>());
    }
}
