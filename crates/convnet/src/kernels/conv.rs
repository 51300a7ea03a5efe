//! Convolution lowering over NHWC data: the window geometry with Keras' padding rules,
//! im2col / col2im, and direct (naive) convolutions that the tests use as references.
//!
//! Shapes: x `[n, in_h, in_w, c]`, kernel `[kh, kw, c, f]` (Keras' layout), y
//! `[n, out_h, out_w, f]`, cols `[n·out_h·out_w, kh·kw·c]`. With this layout the kernel is
//! already the `K × F` right operand of `y = cols · kernel`.

use super::simd::{add_into, copy_short, multiversion};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// Keras' `padding` argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Padding {
    /// No padding: windows stay inside the input (Keras' default).
    #[default]
    Valid,
    /// Zero padding so that `out = ceil(in / stride)`, split with the smaller half first.
    Same,
}

/// Keras' name of a padding (`"same"`), as layer builders take it.
impl TryFrom<&str> for Padding {
    type Error = Error;
    fn try_from(s: &str) -> Result<Self> {
        Padding::parse(s)
    }
}

impl Padding {
    /// Parses Keras' names `"valid"` and `"same"` (any case).
    pub fn parse(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "valid" => Ok(Padding::Valid),
            "same" => Ok(Padding::Same),
            other => Err(Error::config(format!("padding must be \"valid\" or \"same\", not {other:?}"))),
        }
    }

    /// Keras' name for this padding.
    pub fn name(self) -> &'static str {
        match self {
            Padding::Valid => "valid",
            Padding::Same => "same",
        }
    }
}

/// Output length and leading padding along one axis, by Keras' (TensorFlow's) rules.
///
/// `valid`: `out = floor((in − k) / s) + 1`, none if `in < k`. `same`: `out = ceil(in / s)`,
/// total padding `max((out − 1)·s + k − in, 0)`, of which `floor(total / 2)` goes before.
pub fn output_len(input: usize, kernel: usize, stride: usize, padding: Padding) -> Option<(usize, usize)> {
    if kernel == 0 || stride == 0 || input == 0 {
        return None;
    }
    match padding {
        Padding::Valid => {
            if input < kernel {
                None
            } else {
                Some(((input - kernel) / stride + 1, 0))
            }
        }
        Padding::Same => {
            let out = input.div_ceil(stride);
            let total = ((out - 1) * stride + kernel).saturating_sub(input);
            Some((out, total / 2))
        }
    }
}

/// Geometry of a sliding window (convolution or pooling) over one NHWC sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// Input height.
    pub in_h: usize,
    /// Input width.
    pub in_w: usize,
    /// Input channels.
    pub channels: usize,
    /// Window height.
    pub kh: usize,
    /// Window width.
    pub kw: usize,
    /// Vertical stride.
    pub sh: usize,
    /// Horizontal stride.
    pub sw: usize,
    /// Rows of padding above the input.
    pub pad_top: usize,
    /// Columns of padding left of the input.
    pub pad_left: usize,
    /// Output height.
    pub out_h: usize,
    /// Output width.
    pub out_w: usize,
}

impl Window {
    /// The window for an `in_h × in_w × channels` input; fails when it does not fit.
    pub fn new(
        in_h: usize,
        in_w: usize,
        channels: usize,
        kernel: (usize, usize),
        strides: (usize, usize),
        padding: Padding,
    ) -> Result<Self> {
        let (out_h, pad_top) = output_len(in_h, kernel.0, strides.0, padding).ok_or_else(|| {
            Error::shape(format!(
                "a {}x{} window with stride {} and padding {:?} does not fit an input of height {}",
                kernel.0,
                kernel.1,
                strides.0,
                padding.name(),
                in_h
            ))
        })?;
        let (out_w, pad_left) = output_len(in_w, kernel.1, strides.1, padding).ok_or_else(|| {
            Error::shape(format!(
                "a {}x{} window with stride {} and padding {:?} does not fit an input of width {}",
                kernel.0,
                kernel.1,
                strides.1,
                padding.name(),
                in_w
            ))
        })?;
        if channels == 0 {
            return Err(Error::shape("an input with 0 channels"));
        }
        Ok(Window {
            in_h,
            in_w,
            channels,
            kh: kernel.0,
            kw: kernel.1,
            sh: strides.0,
            sw: strides.1,
            pad_top,
            pad_left,
            out_h,
            out_w,
        })
    }

    /// Values in one im2col row: `kh·kw·channels`.
    pub fn patch_len(&self) -> usize {
        self.kh * self.kw * self.channels
    }

    /// Output pixels per sample.
    pub fn out_pixels(&self) -> usize {
        self.out_h * self.out_w
    }

    /// Values in one input sample.
    pub fn in_len(&self) -> usize {
        self.in_h * self.in_w * self.channels
    }

    /// The input rows covered by output row `oy`: `(first window row inside, iy of it, count)`.
    #[inline]
    fn rows(&self, oy: usize) -> (usize, usize, usize) {
        span(oy * self.sh, self.pad_top, self.kh, self.in_h)
    }

    /// The input columns covered by output column `ox`, like [`Window::rows`].
    #[inline]
    fn cols(&self, ox: usize) -> (usize, usize, usize) {
        span(ox * self.sw, self.pad_left, self.kw, self.in_w)
    }
}

/// For a window starting at padded coordinate `start`, the first kernel index that lands
/// inside the input, the input index it lands on, and how many kernel indices are inside.
#[inline]
fn span(start: usize, pad: usize, k: usize, len: usize) -> (usize, usize, usize) {
    let k0 = pad.saturating_sub(start);
    let i0 = (start + k0).saturating_sub(pad);
    let end = (start + k).saturating_sub(pad).min(len);
    let count = end.saturating_sub(i0).min(k.saturating_sub(k0));
    (k0, i0, count)
}

/// Input pixel index range of a window, for pooling: `(iy0, iy1, ix0, ix1)`, end exclusive.
#[inline]
pub fn window_bounds(w: &Window, oy: usize, ox: usize) -> (usize, usize, usize, usize) {
    let (_, iy0, ny) = w.rows(oy);
    let (_, ix0, nx) = w.cols(ox);
    (iy0, iy0 + ny, ix0, ix0 + nx)
}

multiversion! {
    /// Lowers `n` samples of `x` to `cols` (`[n·out_pixels, patch_len]`); padding becomes zeros.
    pub fn im2col(w: &Window, x: &[f32], n: usize, cols: &mut [f32]) {
        let c = w.channels;
        let k = w.patch_len();
        let row_len = w.kw * c;
        assert!(x.len() >= n * w.in_len() && cols.len() >= n * w.out_pixels() * k);
        for s in 0..n {
            let xs = &x[s * w.in_len()..(s + 1) * w.in_len()];
            for oy in 0..w.out_h {
                let (ky0, iy0, ny) = w.rows(oy);
                for ox in 0..w.out_w {
                    let (kx0, ix0, nx) = w.cols(ox);
                    let r = (s * w.out_pixels() + oy * w.out_w + ox) * k;
                    let row = &mut cols[r..r + k];
                    if ny < w.kh || nx < w.kw {
                        row.fill(0.0);
                    }
                    for dy in 0..ny {
                        let ky = ky0 + dy;
                        let src = ((iy0 + dy) * w.in_w + ix0) * c;
                        let dst = ky * row_len + kx0 * c;
                        copy_short(&mut row[dst..dst + nx * c], &xs[src..src + nx * c]);
                    }
                }
            }
        }
    }
}

multiversion! {
    /// The adjoint of [`im2col`]: sums `cols` back into `dx` (`[n, in_h, in_w, c]`), which it
    /// overwrites.
    pub fn col2im(w: &Window, cols: &[f32], n: usize, dx: &mut [f32]) {
        let c = w.channels;
        let k = w.patch_len();
        let row_len = w.kw * c;
        assert!(dx.len() >= n * w.in_len() && cols.len() >= n * w.out_pixels() * k);
        dx[..n * w.in_len()].fill(0.0);
        for s in 0..n {
            let xs = &mut dx[s * w.in_len()..(s + 1) * w.in_len()];
            for oy in 0..w.out_h {
                let (ky0, iy0, ny) = w.rows(oy);
                for ox in 0..w.out_w {
                    let (kx0, ix0, nx) = w.cols(ox);
                    let r = (s * w.out_pixels() + oy * w.out_w + ox) * k;
                    let row = &cols[r..r + k];
                    for dy in 0..ny {
                        let ky = ky0 + dy;
                        let dst = ((iy0 + dy) * w.in_w + ix0) * c;
                        let src = ky * row_len + kx0 * c;
                        add_into(&mut xs[dst..dst + nx * c], &row[src..src + nx * c]);
                    }
                }
            }
        }
    }
}

/// Naive direct convolution: `y[n, oy, ox, f] = b[f] + Σ x[n, iy, ix, c]·k[ky, kx, c, f]`.
pub fn conv2d_naive(w: &Window, x: &[f32], n: usize, kernel: &[f32], bias: Option<&[f32]>, filters: usize) -> Vec<f32> {
    let c = w.channels;
    let mut y = vec![0.0f32; n * w.out_pixels() * filters];
    for s in 0..n {
        for oy in 0..w.out_h {
            for ox in 0..w.out_w {
                for f in 0..filters {
                    let mut acc = bias.map_or(0.0, |b| b[f] as f64);
                    for ky in 0..w.kh {
                        for kx in 0..w.kw {
                            let iy = (oy * w.sh + ky) as isize - w.pad_top as isize;
                            let ix = (ox * w.sw + kx) as isize - w.pad_left as isize;
                            if iy < 0 || ix < 0 || iy >= w.in_h as isize || ix >= w.in_w as isize {
                                continue;
                            }
                            for ci in 0..c {
                                let xv = x[((s * w.in_h + iy as usize) * w.in_w + ix as usize) * c + ci];
                                let kv = kernel[((ky * w.kw + kx) * c + ci) * filters + f];
                                acc += xv as f64 * kv as f64;
                            }
                        }
                    }
                    y[((s * w.out_h + oy) * w.out_w + ox) * filters + f] = acc as f32;
                }
            }
        }
    }
    y
}

/// Naive gradients of [`conv2d_naive`]: `(dx, dkernel, dbias)` for upstream gradient `dy`.
pub fn conv2d_backward_naive(
    w: &Window,
    x: &[f32],
    n: usize,
    kernel: &[f32],
    filters: usize,
    dy: &[f32],
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let c = w.channels;
    let mut dx = vec![0.0f32; n * w.in_len()];
    let mut dk = vec![0.0f32; w.patch_len() * filters];
    let mut db = vec![0.0f32; filters];
    for s in 0..n {
        for oy in 0..w.out_h {
            for ox in 0..w.out_w {
                for f in 0..filters {
                    let g = dy[((s * w.out_h + oy) * w.out_w + ox) * filters + f];
                    db[f] += g;
                    for ky in 0..w.kh {
                        for kx in 0..w.kw {
                            let iy = (oy * w.sh + ky) as isize - w.pad_top as isize;
                            let ix = (ox * w.sw + kx) as isize - w.pad_left as isize;
                            if iy < 0 || ix < 0 || iy >= w.in_h as isize || ix >= w.in_w as isize {
                                continue;
                            }
                            for ci in 0..c {
                                let xi = ((s * w.in_h + iy as usize) * w.in_w + ix as usize) * c + ci;
                                let ki = ((ky * w.kw + kx) * c + ci) * filters + f;
                                dx[xi] += g * kernel[ki];
                                dk[ki] += g * x[xi];
                            }
                        }
                    }
                }
            }
        }
    }
    (dx, dk, db)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::gemm::{gemm, GemmShape};
    use crate::kernels::testing::{assert_close, random_vec};
    use crate::rng::Rng;

    #[test]
    fn keras_output_lengths() {
        // valid: floor((in - k) / s) + 1
        assert_eq!(output_len(28, 5, 1, Padding::Valid), Some((24, 0)));
        assert_eq!(output_len(7, 3, 2, Padding::Valid), Some((3, 0)));
        assert_eq!(output_len(8, 3, 3, Padding::Valid), Some((2, 0)));
        assert_eq!(output_len(2, 3, 1, Padding::Valid), None);
        // same: ceil(in / s), padding split with the smaller half first
        assert_eq!(output_len(28, 5, 1, Padding::Same), Some((28, 2)));
        assert_eq!(output_len(28, 4, 1, Padding::Same), Some((28, 1))); // total 3 → 1 before, 2 after
        assert_eq!(output_len(7, 3, 2, Padding::Same), Some((4, 1))); // total 2
        assert_eq!(output_len(8, 3, 2, Padding::Same), Some((4, 0))); // total 1 → 0 before
        assert_eq!(output_len(5, 2, 3, Padding::Same), Some((2, 0))); // total 0
        assert_eq!(output_len(1, 5, 1, Padding::Same), Some((1, 2)));
    }

    fn random_window(rng: &mut Rng) -> Window {
        loop {
            let h = 1 + rng.below(9);
            let wd = 1 + rng.below(9);
            let c = 1 + rng.below(4);
            let k = (1 + rng.below(4), 1 + rng.below(4));
            let s = (1 + rng.below(3), 1 + rng.below(3));
            let p = if rng.below(2) == 0 { Padding::Valid } else { Padding::Same };
            if let Ok(w) = Window::new(h, wd, c, k, s, p) {
                return w;
            }
        }
    }

    #[test]
    fn im2col_gemm_matches_direct_convolution() {
        let mut rng = Rng::new(10);
        for _ in 0..200 {
            let w = random_window(&mut rng);
            let n = 1 + rng.below(3);
            let f = 1 + rng.below(5);
            let x = random_vec(&mut rng, n * w.in_len());
            let kern = random_vec(&mut rng, w.patch_len() * f);
            let bias = random_vec(&mut rng, f);
            let mut cols = vec![f32::NAN; n * w.out_pixels() * w.patch_len()];
            im2col(&w, &x, n, &mut cols);
            let mut y = vec![0.0; n * w.out_pixels() * f];
            gemm(GemmShape::nn(n * w.out_pixels(), w.patch_len(), f), &cols, &kern, &mut y, false);
            for row in y.chunks_mut(f) {
                for (v, b) in row.iter_mut().zip(&bias) {
                    *v += b;
                }
            }
            let want = conv2d_naive(&w, &x, n, &kern, Some(&bias), f);
            assert_close(&y, &want, 1e-4, &format!("{w:?}"));
        }
    }

    #[test]
    fn col2im_gradients_match_direct_backward() {
        let mut rng = Rng::new(11);
        for _ in 0..200 {
            let w = random_window(&mut rng);
            let n = 1 + rng.below(3);
            let f = 1 + rng.below(5);
            let x = random_vec(&mut rng, n * w.in_len());
            let kern = random_vec(&mut rng, w.patch_len() * f);
            let dy = random_vec(&mut rng, n * w.out_pixels() * f);
            let m = n * w.out_pixels();
            let k = w.patch_len();
            // dx = col2im(dy · kernelᵀ); dkernel = colsᵀ · dy
            let mut dcols = vec![0.0; m * k];
            gemm(GemmShape::nt(m, f, k), &dy, &kern, &mut dcols, false);
            let mut dx = vec![f32::NAN; n * w.in_len()];
            col2im(&w, &dcols, n, &mut dx);
            let mut cols = vec![0.0; m * k];
            im2col(&w, &x, n, &mut cols);
            let mut dk = vec![0.0; k * f];
            gemm(GemmShape::tn(k, m, f), &cols, &dy, &mut dk, false);
            let (dx_ref, dk_ref, _) = conv2d_backward_naive(&w, &x, n, &kern, f, &dy);
            assert_close(&dx, &dx_ref, 1e-4, &format!("dx {w:?}"));
            assert_close(&dk, &dk_ref, 1e-4, &format!("dk {w:?}"));
        }
    }
}
