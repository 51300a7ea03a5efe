//! Direct convolution for layers with few input channels (a network's first layer: 1 grey or
//! 3 colour channels), where im2col + GEMM wastes most of its work on tiny matrices.
//!
//! Each sample is first copied into a zero-padded, channel-planar image `xp[c][py][px]`. An
//! output row is then a sum, over kernel taps `(ky, c, kx)`, of shifted input rows scaled by
//! one weight per filter: `acc[f][ox] += k[ky, kx, c, f] · xp[c][oy·sh + ky][ox·sw + kx]`,
//! vectorised along `ox`. The weight gradient runs the same loops with the roles swapped.
//! Shapes as in [`super::conv`].

use super::conv::Window;
use super::simd::multiversion;

/// Scratch buffers of the direct kernels, reused between calls.
#[derive(Default, Clone, Debug)]
pub struct DirectScratch {
    xp: Vec<f32>,
    row: Vec<f32>,
    acc: Vec<f32>,
    dzt: Vec<f32>,
}

/// Padded extent of the input that the windows cover: `(rows, cols)`.
fn padded(w: &Window) -> (usize, usize) {
    ((w.out_h - 1) * w.sh + w.kh, (w.out_w - 1) * w.sw + w.kw)
}

/// True when the direct kernels are the better choice for this window.
pub fn suits(w: &Window) -> bool {
    w.channels <= 4
}

/// Copies one NHWC sample into the zero-padded channel-planar buffer `xp`.
#[inline(always)]
fn pad_planar(w: &Window, xs: &[f32], xp: &mut Vec<f32>) {
    let (ph, pw) = padded(w);
    let c = w.channels;
    xp.clear();
    xp.resize(c * ph * pw, 0.0);
    for iy in 0..w.in_h {
        let py = iy + w.pad_top;
        if py >= ph {
            break;
        }
        for ix in 0..w.in_w {
            let px = ix + w.pad_left;
            if px >= pw {
                break;
            }
            let src = &xs[(iy * w.in_w + ix) * c..(iy * w.in_w + ix + 1) * c];
            for (ch, &v) in src.iter().enumerate() {
                xp[(ch * ph + py) * pw + px] = v;
            }
        }
    }
}

/// The input values under tap `(ky, c, kx)` for output row `oy`, as a contiguous slice of
/// `out_w` values (copied into `row` when the horizontal stride is not 1).
#[inline(always)]
fn tap<'a>(w: &Window, xp: &'a [f32], row: &'a mut [f32], oy: usize, ky: usize, ch: usize, kx: usize) -> &'a [f32] {
    let (ph, pw) = padded(w);
    let base = (ch * ph + oy * w.sh + ky) * pw + kx;
    if w.sw == 1 {
        &xp[base..base + w.out_w]
    } else {
        for (ox, r) in row.iter_mut().enumerate().take(w.out_w) {
            *r = xp[base + ox * w.sw];
        }
        &row[..w.out_w]
    }
}

multiversion! {
    /// Forward pass of `n` samples: `y = conv(x, kernel) + bias` (no activation), NHWC.
    pub fn conv_forward(
        w: &Window,
        x: &[f32],
        n: usize,
        kernel: &[f32],
        bias: Option<&[f32]>,
        filters: usize,
        y: &mut [f32],
        s: &mut DirectScratch,
    ) {
        let (ow, f) = (w.out_w, filters);
        s.acc.resize(f * ow, 0.0);
        s.row.resize(ow, 0.0);
        for smp in 0..n {
            pad_planar(w, &x[smp * w.in_len()..(smp + 1) * w.in_len()], &mut s.xp);
            for oy in 0..w.out_h {
                for fi in 0..f {
                    let b = bias.map_or(0.0, |b| b[fi]);
                    s.acc[fi * ow..(fi + 1) * ow].fill(b);
                }
                for ky in 0..w.kh {
                    for kx in 0..w.kw {
                        for ch in 0..w.channels {
                            let xr = tap(w, &s.xp, &mut s.row, oy, ky, ch, kx);
                            let kw = &kernel[((ky * w.kw + kx) * w.channels + ch) * f..][..f];
                            for (fi, &k) in kw.iter().enumerate() {
                                let acc = &mut s.acc[fi * ow..(fi + 1) * ow];
                                for (a, &v) in acc.iter_mut().zip(xr) {
                                    *a = M::madd(k, v, *a);
                                }
                            }
                        }
                    }
                }
                // Transpose acc[f][ox] into the NHWC output row.
                let yr = &mut y[((smp * w.out_h + oy) * ow) * f..((smp * w.out_h + oy + 1) * ow) * f];
                for ox in 0..ow {
                    for fi in 0..f {
                        yr[ox * f + fi] = s.acc[fi * ow + ox];
                    }
                }
            }
        }
    }
}

multiversion! {
    /// Weight gradient of `n` samples, added to `dkernel` (`[kh, kw, c, f]`) and `dbias`:
    /// `dk[ky, kx, c, f] += Σ x[…]·dz[…, f]`, `db[f] += Σ dz[…, f]`.
    pub fn conv_weight_grad(
        w: &Window,
        x: &[f32],
        n: usize,
        dz: &[f32],
        filters: usize,
        dkernel: &mut [f32],
        dbias: Option<&mut [f32]>,
        s: &mut DirectScratch,
    ) {
        let (ow, f) = (w.out_w, filters);
        let taps = w.kh * w.kw * w.channels;
        // Element-wise partial products, reduced once at the end: acc[tap][f][ox].
        s.acc.clear();
        s.acc.resize(taps * f * ow, 0.0);
        s.dzt.resize(f * ow, 0.0);
        s.row.resize(ow, 0.0);
        let mut dbias = dbias;
        for smp in 0..n {
            pad_planar(w, &x[smp * w.in_len()..(smp + 1) * w.in_len()], &mut s.xp);
            for oy in 0..w.out_h {
                let dr = &dz[((smp * w.out_h + oy) * ow) * f..((smp * w.out_h + oy + 1) * ow) * f];
                for ox in 0..ow {
                    for fi in 0..f {
                        s.dzt[fi * ow + ox] = dr[ox * f + fi];
                    }
                }
                if let Some(db) = dbias.as_deref_mut() {
                    for fi in 0..f {
                        db[fi] += s.dzt[fi * ow..(fi + 1) * ow].iter().sum::<f32>();
                    }
                }
                for ky in 0..w.kh {
                    for kx in 0..w.kw {
                        for ch in 0..w.channels {
                            let t = (ky * w.kw + kx) * w.channels + ch;
                            let xr = tap(w, &s.xp, &mut s.row, oy, ky, ch, kx);
                            for fi in 0..f {
                                let acc = &mut s.acc[(t * f + fi) * ow..(t * f + fi + 1) * ow];
                                let d = &s.dzt[fi * ow..(fi + 1) * ow];
                                for ((a, &v), &g) in acc.iter_mut().zip(xr).zip(d) {
                                    *a = M::madd(v, g, *a);
                                }
                            }
                        }
                    }
                }
            }
        }
        for (i, g) in dkernel.iter_mut().enumerate().take(taps * f) {
            *g += s.acc[i * ow..(i + 1) * ow].iter().sum::<f32>();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::conv::{conv2d_backward_naive, conv2d_naive, Padding};
    use crate::kernels::testing::{assert_close, random_vec};
    use crate::rng::Rng;

    #[test]
    fn direct_kernels_match_naive_references() {
        let mut rng = Rng::new(30);
        for _ in 0..150 {
            let p = if rng.below(2) == 0 { Padding::Valid } else { Padding::Same };
            let k = (1 + rng.below(5), 1 + rng.below(5));
            let st = (1 + rng.below(3), 1 + rng.below(3));
            let Ok(w) = Window::new(1 + rng.below(12), 1 + rng.below(12), 1 + rng.below(4), k, st, p) else {
                continue;
            };
            let n = 1 + rng.below(3);
            let f = 1 + rng.below(7);
            let x = random_vec(&mut rng, n * w.in_len());
            let kern = random_vec(&mut rng, w.patch_len() * f);
            let bias = random_vec(&mut rng, f);
            let mut s = DirectScratch::default();
            let mut y = vec![f32::NAN; n * w.out_pixels() * f];
            conv_forward(&w, &x, n, &kern, Some(&bias), f, &mut y, &mut s);
            assert_close(&y, &conv2d_naive(&w, &x, n, &kern, Some(&bias), f), 1e-4, &format!("fwd {w:?}"));
            let dy = random_vec(&mut rng, y.len());
            let mut dk = vec![0.0; kern.len()];
            let mut db = vec![0.0; f];
            conv_weight_grad(&w, &x, n, &dy, f, &mut dk, Some(&mut db), &mut s);
            let (_, dk_ref, db_ref) = conv2d_backward_naive(&w, &x, n, &kern, f, &dy);
            assert_close(&dk, &dk_ref, 1e-3, &format!("dk {w:?}"));
            assert_close(&db, &db_ref, 1e-3, &format!("db {w:?}"));
        }
    }
}
