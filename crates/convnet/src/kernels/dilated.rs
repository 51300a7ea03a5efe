//! Convolution geometry with dilation and channel groups, and the column lowering for it.
//!
//! A dilated window reads taps `d` apart: output `(oy, ox)` takes input rows
//! `oy·sh + ky·dh − pad_top` and columns `ox·sw + kx·dw − pad_left`. Lengths and padding follow
//! Keras with the dilated extent `(k − 1)·d + 1` in place of the kernel size. With `groups`,
//! input channels `[g·cg, (g+1)·cg)` feed filters `[g·fg, (g+1)·fg)` only, and Keras' kernel is
//! `[kh, kw, cg, filters]`. A group's columns are `[pixels, kh·kw·cg]` (tap-major, channel
//! innermost), the right operand of `y_g = cols_g · kernel_g`. Shapes are NHWC as in
//! [`super::conv`].

use super::conv::{output_len, Padding};
use super::simd::{add_into, copy_short, multiversion};
use crate::error::{Error, Result};

/// Geometry of a dilated convolution over one NHWC sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dilated {
    /// Input height.
    pub in_h: usize,
    /// Input width.
    pub in_w: usize,
    /// Input channels (all groups).
    pub channels: usize,
    /// Kernel height.
    pub kh: usize,
    /// Kernel width.
    pub kw: usize,
    /// Vertical stride.
    pub sh: usize,
    /// Horizontal stride.
    pub sw: usize,
    /// Vertical dilation.
    pub dh: usize,
    /// Horizontal dilation.
    pub dw: usize,
    /// Rows of padding above the input.
    pub pad_top: usize,
    /// Columns of padding left of the input.
    pub pad_left: usize,
    /// Output height.
    pub out_h: usize,
    /// Output width.
    pub out_w: usize,
}

impl Dilated {
    /// The geometry for an `in_h × in_w × channels` input; fails when the window does not fit.
    pub fn new(
        in_h: usize,
        in_w: usize,
        channels: usize,
        kernel: (usize, usize),
        strides: (usize, usize),
        dilation: (usize, usize),
        padding: Padding,
    ) -> Result<Self> {
        if channels == 0 || dilation.0 == 0 || dilation.1 == 0 {
            return Err(Error::shape("an input with 0 channels or a dilation of 0"));
        }
        let ext = |k: usize, d: usize| (k.max(1) - 1) * d + 1;
        let fit = |len: usize, k: usize, s: usize, d: usize, what: &str| {
            output_len(len, if k == 0 { 0 } else { ext(k, d) }, s, padding).ok_or_else(|| {
                Error::shape(format!(
                    "a {}x{} window with stride {s}, dilation {d} and padding {:?} does not fit an input of {what} {len}",
                    kernel.0,
                    kernel.1,
                    padding.name()
                ))
            })
        };
        let (out_h, pad_top) = fit(in_h, kernel.0, strides.0, dilation.0, "height")?;
        let (out_w, pad_left) = fit(in_w, kernel.1, strides.1, dilation.1, "width")?;
        Ok(Dilated {
            in_h,
            in_w,
            channels,
            kh: kernel.0,
            kw: kernel.1,
            sh: strides.0,
            sw: strides.1,
            dh: dilation.0,
            dw: dilation.1,
            pad_top,
            pad_left,
            out_h,
            out_w,
        })
    }

    /// Output pixels per sample.
    pub fn out_pixels(&self) -> usize {
        self.out_h * self.out_w
    }

    /// Values in one input sample.
    pub fn in_len(&self) -> usize {
        self.in_h * self.in_w * self.channels
    }

    /// Kernel taps `kh·kw`.
    pub fn taps(&self) -> usize {
        self.kh * self.kw
    }

    /// The input row under kernel row `ky` for output row `oy`, if inside the input.
    #[inline(always)]
    pub fn in_row(&self, oy: usize, ky: usize) -> Option<usize> {
        (oy * self.sh + ky * self.dh).checked_sub(self.pad_top).filter(|&i| i < self.in_h)
    }

    /// The input column under kernel column `kx` for output column `ox`, if inside the input.
    #[inline(always)]
    pub fn in_col(&self, ox: usize, kx: usize) -> Option<usize> {
        (ox * self.sw + kx * self.dw).checked_sub(self.pad_left).filter(|&i| i < self.in_w)
    }

    /// The output columns `ox` whose tap `kx` lands inside the input, as a range.
    #[inline(always)]
    pub fn valid_cols(&self, kx: usize) -> std::ops::Range<usize> {
        valid_range(kx * self.dw, self.pad_left, self.sw, self.in_w, self.out_w)
    }

    /// The output rows `oy` whose tap `ky` lands inside the input, as a range.
    #[inline(always)]
    pub fn valid_rows(&self, ky: usize) -> std::ops::Range<usize> {
        valid_range(ky * self.dh, self.pad_top, self.sh, self.in_h, self.out_h)
    }
}

/// The outputs `o < out` with `0 ≤ o·s + off − pad < len`.
#[inline(always)]
fn valid_range(off: usize, pad: usize, s: usize, len: usize, out: usize) -> std::ops::Range<usize> {
    // o·s ≥ pad − off, and o·s + off − pad ≤ len − 1.
    let lo = pad.saturating_sub(off).div_ceil(s);
    let hi = if len + pad > off { ((len + pad - off - 1) / s + 1).min(out) } else { 0 };
    lo.min(hi)..hi
}

multiversion! {
    /// Lowers channels `[c0, c0 + cg)` of `n` samples to `cols` (`[n·out_pixels, kh·kw·cg]`),
    /// padding as zeros.
    pub fn im2col_group(g: &Dilated, x: &[f32], n: usize, c0: usize, cg: usize, cols: &mut [f32]) {
        let c = g.channels;
        let k = g.taps() * cg;
        assert!(c0 + cg <= c && x.len() >= n * g.in_len() && cols.len() >= n * g.out_pixels() * k);
        for s in 0..n {
            let xs = &x[s * g.in_len()..(s + 1) * g.in_len()];
            for oy in 0..g.out_h {
                for ox in 0..g.out_w {
                    let r = (s * g.out_pixels() + oy * g.out_w + ox) * k;
                    let row = &mut cols[r..r + k];
                    for ky in 0..g.kh {
                        let iy = g.in_row(oy, ky);
                        for kx in 0..g.kw {
                            let dst = &mut row[(ky * g.kw + kx) * cg..(ky * g.kw + kx + 1) * cg];
                            match (iy, g.in_col(ox, kx)) {
                                (Some(iy), Some(ix)) => {
                                    let src = (iy * g.in_w + ix) * c + c0;
                                    copy_short(dst, &xs[src..src + cg]);
                                }
                                _ => dst.fill(0.0),
                            }
                        }
                    }
                }
            }
        }
    }
}

multiversion! {
    /// The adjoint of [`im2col_group`]: adds `cols` into channels `[c0, c0 + cg)` of `dx`.
    pub fn col2im_group_add(g: &Dilated, cols: &[f32], n: usize, c0: usize, cg: usize, dx: &mut [f32]) {
        let c = g.channels;
        let k = g.taps() * cg;
        assert!(c0 + cg <= c && dx.len() >= n * g.in_len() && cols.len() >= n * g.out_pixels() * k);
        for s in 0..n {
            let xs = &mut dx[s * g.in_len()..(s + 1) * g.in_len()];
            for oy in 0..g.out_h {
                for ox in 0..g.out_w {
                    let r = (s * g.out_pixels() + oy * g.out_w + ox) * k;
                    let row = &cols[r..r + k];
                    for ky in 0..g.kh {
                        let Some(iy) = g.in_row(oy, ky) else { continue };
                        for kx in 0..g.kw {
                            let Some(ix) = g.in_col(ox, kx) else { continue };
                            let dst = (iy * g.in_w + ix) * c + c0;
                            add_into(&mut xs[dst..dst + cg], &row[(ky * g.kw + kx) * cg..(ky * g.kw + kx + 1) * cg]);
                        }
                    }
                }
            }
        }
    }
}

/// Naive grouped, dilated convolution (Keras' kernel `[kh, kw, c/groups, f]`), the reference.
pub fn conv_naive(
    g: &Dilated,
    x: &[f32],
    n: usize,
    kernel: &[f32],
    bias: Option<&[f32]>,
    f: usize,
    groups: usize,
) -> Vec<f32> {
    let (c, cg, fg) = (g.channels, g.channels / groups, f / groups);
    let mut y = vec![0.0f32; n * g.out_pixels() * f];
    for s in 0..n {
        for oy in 0..g.out_h {
            for ox in 0..g.out_w {
                for fo in 0..f {
                    let grp = fo / fg;
                    let mut acc = bias.map_or(0.0, |b| b[fo] as f64);
                    for ky in 0..g.kh {
                        for kx in 0..g.kw {
                            let (Some(iy), Some(ix)) = (g.in_row(oy, ky), g.in_col(ox, kx)) else { continue };
                            for ci in 0..cg {
                                let xv = x[((s * g.in_h + iy) * g.in_w + ix) * c + grp * cg + ci];
                                let kv = kernel[((ky * g.kw + kx) * cg + ci) * f + fo];
                                acc += xv as f64 * kv as f64;
                            }
                        }
                    }
                    y[((s * g.out_h + oy) * g.out_w + ox) * f + fo] = acc as f32;
                }
            }
        }
    }
    y
}

/// Naive gradients of [`conv_naive`]: `(dx, dkernel)` for the upstream gradient `dy`.
pub fn conv_backward_naive(
    g: &Dilated,
    x: &[f32],
    n: usize,
    kernel: &[f32],
    f: usize,
    groups: usize,
    dy: &[f32],
) -> (Vec<f32>, Vec<f32>) {
    let (c, cg, fg) = (g.channels, g.channels / groups, f / groups);
    let mut dx = vec![0.0f32; n * g.in_len()];
    let mut dk = vec![0.0f32; g.taps() * cg * f];
    for s in 0..n {
        for oy in 0..g.out_h {
            for ox in 0..g.out_w {
                for fo in 0..f {
                    let grp = fo / fg;
                    let d = dy[((s * g.out_h + oy) * g.out_w + ox) * f + fo];
                    for ky in 0..g.kh {
                        for kx in 0..g.kw {
                            let (Some(iy), Some(ix)) = (g.in_row(oy, ky), g.in_col(ox, kx)) else { continue };
                            for ci in 0..cg {
                                let xi = ((s * g.in_h + iy) * g.in_w + ix) * c + grp * cg + ci;
                                let ki = ((ky * g.kw + kx) * cg + ci) * f + fo;
                                dx[xi] += d * kernel[ki];
                                dk[ki] += d * x[xi];
                            }
                        }
                    }
                }
            }
        }
    }
    (dx, dk)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::conv::{conv2d_naive, Window};
    use crate::kernels::gemm::{gemm, GemmShape};
    use crate::kernels::testing::{assert_close, random_vec};
    use crate::rng::Rng;

    #[test]
    fn keras_lengths_with_dilation() {
        // Keras: valid out = floor((in − ((k−1)·d+1)) / s) + 1; same out = ceil(in / s).
        let g = Dilated::new(10, 9, 1, (3, 3), (1, 1), (2, 3), Padding::Valid).unwrap();
        assert_eq!((g.out_h, g.out_w), (6, 3));
        let g = Dilated::new(10, 9, 1, (3, 3), (1, 1), (2, 3), Padding::Same).unwrap();
        assert_eq!((g.out_h, g.out_w, g.pad_top, g.pad_left), (10, 9, 2, 3));
        assert!(Dilated::new(4, 9, 1, (3, 3), (1, 1), (2, 2), Padding::Valid).is_err());
    }

    #[test]
    fn valid_ranges_are_exact() {
        let mut rng = Rng::new(3);
        for _ in 0..300 {
            let (len, k, s, d) = (1 + rng.below(12), 1 + rng.below(4), 1 + rng.below(3), 1 + rng.below(3));
            let p = if rng.below(2) == 0 { Padding::Valid } else { Padding::Same };
            let Ok(g) = Dilated::new(len, len, 1, (k, k), (s, s), (d, d), p) else { continue };
            for kx in 0..k {
                let want: Vec<usize> = (0..g.out_w).filter(|&o| g.in_col(o, kx).is_some()).collect();
                assert_eq!(g.valid_cols(kx).collect::<Vec<_>>(), want, "{g:?} kx {kx}");
            }
        }
    }

    #[test]
    fn undilated_single_group_is_the_plain_convolution() {
        let mut rng = Rng::new(4);
        let g = Dilated::new(7, 6, 3, (3, 2), (2, 1), (1, 1), Padding::Same).unwrap();
        let w = Window::new(7, 6, 3, (3, 2), (2, 1), Padding::Same).unwrap();
        let x = random_vec(&mut rng, 2 * g.in_len());
        let k = random_vec(&mut rng, 6 * 3 * 4);
        assert_close(&conv_naive(&g, &x, 2, &k, None, 4, 1), &conv2d_naive(&w, &x, 2, &k, None, 4), 1e-5, "naive");
    }

    /// Per-group columns times the group's kernel give the reference; the adjoint pair gives
    /// the reference gradients.
    #[test]
    fn grouped_columns_match_the_reference() {
        let mut rng = Rng::new(5);
        for _ in 0..100 {
            let groups = 1 + rng.below(3);
            let (cg, fg) = (1 + rng.below(3), 1 + rng.below(3));
            let (c, f) = (cg * groups, fg * groups);
            let d = (1 + rng.below(3), 1 + rng.below(3));
            let p = if rng.below(2) == 0 { Padding::Valid } else { Padding::Same };
            let k = (1 + rng.below(3), 1 + rng.below(3));
            let s = (1 + rng.below(2), 1 + rng.below(2));
            let Ok(g) = Dilated::new(3 + rng.below(8), 3 + rng.below(8), c, k, s, d, p) else { continue };
            let n = 1 + rng.below(2);
            let m = n * g.out_pixels();
            let kl = g.taps() * cg;
            let x = random_vec(&mut rng, n * g.in_len());
            let kern = random_vec(&mut rng, kl * f);
            let dy = random_vec(&mut rng, m * f);
            let mut y = vec![0.0; m * f];
            let mut dx = vec![0.0; n * g.in_len()];
            let mut dk = vec![0.0; kl * f];
            for gi in 0..groups {
                let kg: Vec<f32> =
                    (0..kl).flat_map(|r| kern[r * f + gi * fg..r * f + (gi + 1) * fg].to_vec()).collect();
                let dyg: Vec<f32> = (0..m).flat_map(|r| dy[r * f + gi * fg..r * f + (gi + 1) * fg].to_vec()).collect();
                let mut cols = vec![f32::NAN; m * kl];
                im2col_group(&g, &x, n, gi * cg, cg, &mut cols);
                let mut yg = vec![0.0; m * fg];
                gemm(GemmShape::nn(m, kl, fg), &cols, &kg, &mut yg, false);
                let mut dkg = vec![0.0; kl * fg];
                gemm(GemmShape::tn(kl, m, fg), &cols, &dyg, &mut dkg, false);
                gemm(GemmShape::nt(m, fg, kl), &dyg, &kg, &mut cols, false);
                col2im_group_add(&g, &cols, n, gi * cg, cg, &mut dx);
                for r in 0..m {
                    y[r * f + gi * fg..r * f + (gi + 1) * fg].copy_from_slice(&yg[r * fg..(r + 1) * fg]);
                }
                for r in 0..kl {
                    dk[r * f + gi * fg..r * f + (gi + 1) * fg].copy_from_slice(&dkg[r * fg..(r + 1) * fg]);
                }
            }
            assert_close(&y, &conv_naive(&g, &x, n, &kern, None, f, groups), 1e-4, &format!("y {g:?}"));
            let (dx_ref, dk_ref) = conv_backward_naive(&g, &x, n, &kern, f, groups, &dy);
            assert_close(&dx, &dx_ref, 1e-4, &format!("dx {g:?}"));
            assert_close(&dk, &dk_ref, 1e-4, &format!("dk {g:?}"));
        }
    }
}
