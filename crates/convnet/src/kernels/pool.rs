//! Max and average pooling over NHWC samples, with naive references for the tests.
//!
//! Shapes: x `[n, in_h, in_w, c]`, y `[n, out_h, out_w, c]`. Padding cells never win a max and
//! are not counted in an average (TensorFlow's rule for `padding="same"`).

use super::conv::{window_bounds, Window};
use super::simd::multiversion;

multiversion! {
    /// Max pooling of `n` samples; `argmax` receives, per output value, the index of the
    /// winning input value within its sample, for the backward pass. Ties go to the first
    /// maximum in row-major window order, as in TensorFlow.
    pub fn max_pool_forward(w: &Window, x: &[f32], n: usize, y: &mut [f32], argmax: &mut [u32]) {
        let c = w.channels;
        let out_len = w.out_pixels() * c;
        let simple = is_simple(w);
        for s in 0..n {
            let xs = &x[s * w.in_len()..(s + 1) * w.in_len()];
            let ys = &mut y[s * out_len..(s + 1) * out_len];
            let am = &mut argmax[s * out_len..(s + 1) * out_len];
            for oy in 0..w.out_h {
                for ox in 0..w.out_w {
                    let o = (oy * w.out_w + ox) * c;
                    let yo = &mut ys[o..o + c];
                    let ao = &mut am[o..o + c];
                    if simple {
                        // The common 2x2/2 window: four rows of `c` values, compared lane-wise.
                        let b00 = (2 * oy * w.in_w + 2 * ox) * c;
                        let b01 = b00 + c;
                        let b10 = b00 + w.in_w * c;
                        let b11 = b10 + c;
                        let (r00, r01, r10, r11) = (&xs[b00..b00 + c], &xs[b01..b01 + c], &xs[b10..b10 + c], &xs[b11..b11 + c]);
                        for ch in 0..c {
                            let mut m = r00[ch];
                            let mut i = b00 + ch;
                            if r01[ch] > m {
                                m = r01[ch];
                                i = b01 + ch;
                            }
                            if r10[ch] > m {
                                m = r10[ch];
                                i = b10 + ch;
                            }
                            if r11[ch] > m {
                                m = r11[ch];
                                i = b11 + ch;
                            }
                            yo[ch] = m;
                            ao[ch] = i as u32;
                        }
                        continue;
                    }
                    let (iy0, iy1, ix0, ix1) = window_bounds(w, oy, ox);
                    yo.fill(f32::NEG_INFINITY);
                    ao.fill(((iy0 * w.in_w + ix0) * c) as u32);
                    for iy in iy0..iy1 {
                        for ix in ix0..ix1 {
                            let base = (iy * w.in_w + ix) * c;
                            let xi = &xs[base..base + c];
                            for ch in 0..c {
                                if xi[ch] > yo[ch] {
                                    yo[ch] = xi[ch];
                                    ao[ch] = (base + ch) as u32;
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

multiversion! {
    /// Backward of [`max_pool_forward`]: routes each `dy` to its winner and zeroes the rest of
    /// `dx` (overwriting it). With `relu_outputs` (the pooled outputs `y`), the gradient of a
    /// preceding ReLU is folded in: a winner whose value `y` is not positive gets zero, as
    /// `relu'` would give it.
    pub fn max_pool_backward(w: &Window, dy: &[f32], argmax: &[u32], relu_outputs: Option<&[f32]>, n: usize, dx: &mut [f32]) {
        let c = w.channels;
        let out_len = w.out_pixels() * c;
        let simple = is_simple(w);
        for s in 0..n {
            let dxs = &mut dx[s * w.in_len()..(s + 1) * w.in_len()];
            let d = &dy[s * out_len..(s + 1) * out_len];
            let a = &argmax[s * out_len..(s + 1) * out_len];
            let y = relu_outputs.map(|y| &y[s * out_len..(s + 1) * out_len]);
            if !simple {
                dxs.fill(0.0);
                for (o, (&g, &i)) in d.iter().zip(a).enumerate() {
                    let keep = y.is_none_or(|y| y[o] > 0.0);
                    dxs[i as usize] += if keep { g } else { 0.0 };
                }
                continue;
            }
            // 2×2/2 windows tile the input: write every cell once, winners and zeros alike.
            for oy in 0..w.out_h {
                for ox in 0..w.out_w {
                    let o = (oy * w.out_w + ox) * c;
                    let b00 = (2 * oy * w.in_w + 2 * ox) * c;
                    let b10 = b00 + w.in_w * c;
                    let (top, bottom) = dxs.split_at_mut(b10);
                    let (t0, t1) = top[b00..b00 + 2 * c].split_at_mut(c);
                    let (u0, u1) = bottom[..2 * c].split_at_mut(c);
                    let cells = [t0, t1, u0, u1];
                    let bases = [b00 as u32, (b00 + c) as u32, b10 as u32, (b10 + c) as u32];
                    match y {
                        Some(y) => window_grad::<true>(cells, bases, &d[o..o + c], &a[o..o + c], &y[o..o + c]),
                        None => window_grad::<false>(cells, bases, &d[o..o + c], &a[o..o + c], &d[o..o + c]),
                    }
                }
                if w.in_w > 2 * w.out_w {
                    for r in [2 * oy, 2 * oy + 1] {
                        dxs[(r * w.in_w + 2 * w.out_w) * c..(r + 1) * w.in_w * c].fill(0.0);
                    }
                }
            }
            dxs[2 * w.out_h * w.in_w * c..].fill(0.0);
        }
    }
}

/// The input gradient of one 2×2 window over `c` channels: `cells` are its four pixels, at
/// `bases` within the sample; the winner of channel `ch` (index `argmax[ch]`) gets `dy`
/// (zero when `FOLD` and `y[ch]` is not positive), the others zero.
#[inline(always)]
fn window_grad<const FOLD: bool>(cells: [&mut [f32]; 4], bases: [u32; 4], dy: &[f32], argmax: &[u32], y: &[f32]) {
    let c = dy.len();
    let (argmax, y) = (&argmax[..c], &y[..c]);
    let [t0, t1, u0, u1] = cells;
    let (t0, t1, u0, u1) = (&mut t0[..c], &mut t1[..c], &mut u0[..c], &mut u1[..c]);
    for ch in 0..c {
        let g = if !FOLD || y[ch] > 0.0 { dy[ch] } else { 0.0 };
        let at = argmax[ch].wrapping_sub(ch as u32);
        t0[ch] = if at == bases[0] { g } else { 0.0 };
        t1[ch] = if at == bases[1] { g } else { 0.0 };
        u0[ch] = if at == bases[2] { g } else { 0.0 };
        u1[ch] = if at == bases[3] { g } else { 0.0 };
    }
}

/// The common 2×2 window with stride 2 and no padding, whose windows tile the input.
fn is_simple(w: &Window) -> bool {
    w.kh == 2
        && w.kw == 2
        && w.sh == 2
        && w.sw == 2
        && w.pad_top == 0
        && w.pad_left == 0
        && 2 * w.out_h <= w.in_h
        && 2 * w.out_w <= w.in_w
}

/// Average pooling of `n` samples (padding excluded from each window's count).
pub fn avg_pool_forward(w: &Window, x: &[f32], n: usize, y: &mut [f32]) {
    let c = w.channels;
    let out_len = w.out_pixels() * c;
    for s in 0..n {
        let xs = &x[s * w.in_len()..(s + 1) * w.in_len()];
        let ys = &mut y[s * out_len..(s + 1) * out_len];
        for oy in 0..w.out_h {
            for ox in 0..w.out_w {
                let (iy0, iy1, ix0, ix1) = window_bounds(w, oy, ox);
                let o = (oy * w.out_w + ox) * c;
                let yo = &mut ys[o..o + c];
                yo.fill(0.0);
                for iy in iy0..iy1 {
                    for ix in ix0..ix1 {
                        let base = (iy * w.in_w + ix) * c;
                        for (acc, v) in yo.iter_mut().zip(&xs[base..base + c]) {
                            *acc += v;
                        }
                    }
                }
                let inv = 1.0 / ((iy1 - iy0) * (ix1 - ix0)).max(1) as f32;
                yo.iter_mut().for_each(|v| *v *= inv);
            }
        }
    }
}

/// Backward of [`avg_pool_forward`]; overwrites `dx`.
pub fn avg_pool_backward(w: &Window, dy: &[f32], n: usize, dx: &mut [f32]) {
    let c = w.channels;
    let out_len = w.out_pixels() * c;
    dx[..n * w.in_len()].fill(0.0);
    for s in 0..n {
        let dxs = &mut dx[s * w.in_len()..(s + 1) * w.in_len()];
        let d = &dy[s * out_len..(s + 1) * out_len];
        for oy in 0..w.out_h {
            for ox in 0..w.out_w {
                let (iy0, iy1, ix0, ix1) = window_bounds(w, oy, ox);
                let o = (oy * w.out_w + ox) * c;
                let inv = 1.0 / ((iy1 - iy0) * (ix1 - ix0)).max(1) as f32;
                for iy in iy0..iy1 {
                    for ix in ix0..ix1 {
                        let base = (iy * w.in_w + ix) * c;
                        for (acc, g) in dxs[base..base + c].iter_mut().zip(&d[o..o + c]) {
                            *acc += g * inv;
                        }
                    }
                }
            }
        }
    }
}

/// Naive pooling reference: for every output value, scans its window with explicit padded
/// coordinates. `max` selects max or average pooling.
pub fn pool_naive(w: &Window, x: &[f32], n: usize, max: bool) -> Vec<f32> {
    let c = w.channels;
    let mut y = vec![0.0; n * w.out_pixels() * c];
    for s in 0..n {
        for oy in 0..w.out_h {
            for ox in 0..w.out_w {
                for ch in 0..c {
                    let mut best = f32::NEG_INFINITY;
                    let mut sum = 0.0f64;
                    let mut count = 0;
                    for ky in 0..w.kh {
                        for kx in 0..w.kw {
                            let iy = (oy * w.sh + ky) as isize - w.pad_top as isize;
                            let ix = (ox * w.sw + kx) as isize - w.pad_left as isize;
                            if iy < 0 || ix < 0 || iy >= w.in_h as isize || ix >= w.in_w as isize {
                                continue;
                            }
                            let v = x[((s * w.in_h + iy as usize) * w.in_w + ix as usize) * c + ch];
                            best = best.max(v);
                            sum += v as f64;
                            count += 1;
                        }
                    }
                    y[((s * w.out_h + oy) * w.out_w + ox) * c + ch] =
                        if max { best } else { (sum / count.max(1) as f64) as f32 };
                }
            }
        }
    }
    y
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::conv::Padding;
    use crate::kernels::testing::{assert_close, random_vec};
    use crate::rng::Rng;

    fn random_window(rng: &mut Rng) -> Window {
        loop {
            let p = if rng.below(2) == 0 { Padding::Valid } else { Padding::Same };
            let k = (1 + rng.below(3), 1 + rng.below(3));
            let s = (1 + rng.below(3), 1 + rng.below(3));
            if let Ok(w) = Window::new(1 + rng.below(9), 1 + rng.below(9), 1 + rng.below(4), k, s, p) {
                return w;
            }
        }
    }

    #[test]
    fn pooling_matches_naive() {
        let mut rng = Rng::new(20);
        for _ in 0..300 {
            let w = random_window(&mut rng);
            let n = 1 + rng.below(3);
            let x = random_vec(&mut rng, n * w.in_len());
            let mut y = vec![0.0; n * w.out_pixels() * w.channels];
            let mut am = vec![0u32; y.len()];
            max_pool_forward(&w, &x, n, &mut y, &mut am);
            assert_close(&y, &pool_naive(&w, &x, n, true), 0.0, "max");
            // every argmax points at its value
            for s in 0..n {
                let ol = w.out_pixels() * w.channels;
                for i in 0..ol {
                    assert_eq!(x[s * w.in_len() + am[s * ol + i] as usize], y[s * ol + i]);
                }
            }
            avg_pool_forward(&w, &x, n, &mut y);
            assert_close(&y, &pool_naive(&w, &x, n, false), 1e-5, "avg");
        }
    }

    #[test]
    fn pooling_backward_is_the_adjoint() {
        // <pool(x), dy> is linear in x for avg and piecewise linear for max, so the backward
        // pass must satisfy <J·x, dy> = <x, Jᵀ·dy> (exactly for avg, at x for max).
        let mut rng = Rng::new(21);
        for _ in 0..200 {
            let w = random_window(&mut rng);
            let n = 1 + rng.below(2);
            let x = random_vec(&mut rng, n * w.in_len());
            let ylen = n * w.out_pixels() * w.channels;
            let dy = random_vec(&mut rng, ylen);
            let mut y = vec![0.0; ylen];
            let mut dx = vec![f32::NAN; x.len()];
            avg_pool_forward(&w, &x, n, &mut y);
            avg_pool_backward(&w, &dy, n, &mut dx);
            let lhs: f64 = y.iter().zip(&dy).map(|(a, b)| (*a as f64) * (*b as f64)).sum();
            let rhs: f64 = x.iter().zip(&dx).map(|(a, b)| (*a as f64) * (*b as f64)).sum();
            assert!((lhs - rhs).abs() < 1e-4 * (1.0 + lhs.abs()), "avg adjoint {lhs} {rhs}");
            let mut am = vec![0u32; ylen];
            max_pool_forward(&w, &x, n, &mut y, &mut am);
            max_pool_backward(&w, &dy, &am, None, n, &mut dx);
            let lhs: f64 = y.iter().zip(&dy).map(|(a, b)| (*a as f64) * (*b as f64)).sum();
            let rhs: f64 = x.iter().zip(&dx).map(|(a, b)| (*a as f64) * (*b as f64)).sum();
            assert!((lhs - rhs).abs() < 1e-4 * (1.0 + lhs.abs()), "max adjoint {lhs} {rhs}");
        }
    }

    #[test]
    fn max_pool_backward_writes_every_cell_and_folds_relu() {
        let mut rng = Rng::new(22);
        for case in 0..120 {
            let (h, wd, c) = (2 + rng.below(9), 2 + rng.below(9), [1, 3, 16, 17][rng.below(4)]);
            let pool = if case % 2 == 0 { (2, 2) } else { (1 + rng.below(3), 1 + rng.below(3)) };
            let Ok(w) = Window::new(h, wd, c, pool, pool, Padding::Valid) else { continue };
            let n = 1 + rng.below(3);
            // Post-ReLU inputs: many exact zeros, so some windows have no positive winner.
            let x: Vec<f32> = random_vec(&mut rng, n * w.in_len()).iter().map(|v| v.max(0.0)).collect();
            let ylen = n * w.out_pixels() * c;
            let (mut y, mut am) = (vec![0.0; ylen], vec![0u32; ylen]);
            max_pool_forward(&w, &x, n, &mut y, &mut am);
            let dy = random_vec(&mut rng, ylen);
            // Reference: scatter into zeros.
            let mut want = vec![0.0; x.len()];
            for s in 0..n {
                let ol = w.out_pixels() * c;
                for o in 0..ol {
                    want[s * w.in_len() + am[s * ol + o] as usize] += dy[s * ol + o];
                }
            }
            let mut dx = vec![f32::NAN; x.len()];
            max_pool_backward(&w, &dy, &am, None, n, &mut dx);
            assert_eq!(dx, want, "{w:?}");
            // Folding relu' in equals applying it to the pool's input gradient afterwards.
            let folded: Vec<f32> = want.iter().zip(&x).map(|(g, v)| if *v > 0.0 { *g } else { 0.0 }).collect();
            dx.fill(f32::NAN);
            max_pool_backward(&w, &dy, &am, Some(&y), n, &mut dx);
            assert_eq!(dx, folded, "{w:?} folded");
        }
    }
}
