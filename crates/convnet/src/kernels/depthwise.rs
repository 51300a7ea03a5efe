//! Depthwise convolution over NHWC data: each input channel `c` is convolved with its own
//! `depth_multiplier` kernels, giving output channels `c·M + m`:
//! `y[oy, ox, c·M + m] = b[c·M + m] + Σ_{ky,kx} x[iy, ix, c] · k[ky, kx, c, m]`, with the
//! dilated geometry of [`super::dilated`]. Keras' kernel `[kh, kw, C, M]` is, flattened, a
//! `[taps, C·M]` matrix: one row of weights per tap, in the output's channel order.
//!
//! With the channels innermost, every product is a vector multiply-add over a run of
//! channels: a pixel's output is the sum, over the taps inside the input, of the input pixel
//! under the tap times the tap's row of weights. Several blocks of channels are accumulated
//! at once so the multiply-adds of a pixel do not wait on each other. The input gradient is
//! the same sum gathered from the output side (the output pixels whose tap lands on the input
//! pixel), so it needs no scattered writes; the weight gradient of a tap is a sum over output
//! pixels of `dy ⊙ x`, accumulated along output rows. With `M > 1` each sample's input is first
//! spread to `C·M` channels (`x[c]` repeated `M` times), which turns the layer into the
//! `M = 1` case; its input gradient is summed back over `m`.

use super::dilated::Dilated;
use super::simd::{multiversion, Madd};

/// Scratch of the depthwise kernels, reused between calls.
#[derive(Default, Clone, Debug)]
pub struct DepthwiseScratch {
    /// One sample spread to `C·M` channels (`M > 1`).
    spread: Vec<f32>,
    /// Its gradient.
    dspread: Vec<f32>,
    /// (input offset, weight offset) of the taps of one pixel.
    taps: Vec<(usize, usize)>,
    /// The same, relative to the first tap, for pixels whose taps are all inside.
    full: Vec<(usize, usize)>,
}

/// The outputs along one axis whose taps all land inside the input: the intersection of the
/// first and the last tap's valid ranges.
fn interior(first: std::ops::Range<usize>, last: std::ops::Range<usize>) -> std::ops::Range<usize> {
    let (lo, hi) = (first.start.max(last.start), first.end.min(last.end));
    lo..hi.max(lo)
}

/// `out[..W] = init + Σ_t x[xo_t + c0 ..] ⊙ k[ko_t + c0 ..]` for a block of `W` channels.
#[inline(always)]
fn block<M: Madd, const W: usize>(
    x: &[f32],
    k: &[f32],
    taps: &[(usize, usize)],
    c0: usize,
    init: Option<&[f32]>,
    out: &mut [f32],
) {
    let mut acc = [0.0f32; W];
    if let Some(b) = init {
        acc.copy_from_slice(&b[c0..c0 + W]);
    }
    for &(xo, ko) in taps {
        let xs: &[f32; W] = x[xo + c0..xo + c0 + W].try_into().expect("block");
        let ks: &[f32; W] = k[ko + c0..ko + c0 + W].try_into().expect("block");
        for l in 0..W {
            acc[l] = M::madd(xs[l], ks[l], acc[l]);
        }
    }
    out[c0..c0 + W].copy_from_slice(&acc);
}

/// [`block`] over all `c` channels: blocks of 64, then 32, 16, 8 and single channels.
#[inline(always)]
fn pixel<M: Madd>(x: &[f32], k: &[f32], taps: &[(usize, usize)], c: usize, init: Option<&[f32]>, out: &mut [f32]) {
    let mut c0 = 0;
    while c0 + 64 <= c {
        block::<M, 64>(x, k, taps, c0, init, out);
        c0 += 64;
    }
    if c0 + 32 <= c {
        block::<M, 32>(x, k, taps, c0, init, out);
        c0 += 32;
    }
    if c0 + 16 <= c {
        block::<M, 16>(x, k, taps, c0, init, out);
        c0 += 16;
    }
    if c0 + 8 <= c {
        block::<M, 8>(x, k, taps, c0, init, out);
        c0 += 8;
    }
    while c0 < c {
        block::<M, 1>(x, k, taps, c0, init, out);
        c0 += 1;
    }
}

/// [`block`] for `P` pixels at once, `step` apart in `x` and `ostep` apart in `out`: each
/// weight vector loaded serves `P` multiply-adds.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn block_px<M: Madd, const W: usize, const P: usize>(
    x: &[f32],
    step: usize,
    k: &[f32],
    taps: &[(usize, usize)],
    c0: usize,
    init: Option<&[f32]>,
    out: &mut [f32],
    ostep: usize,
) {
    let mut acc = [[0.0f32; W]; P];
    if let Some(b) = init {
        for a in acc.iter_mut() {
            a.copy_from_slice(&b[c0..c0 + W]);
        }
    }
    for &(xo, ko) in taps {
        let ks: &[f32; W] = k[ko + c0..ko + c0 + W].try_into().expect("block");
        for (p, a) in acc.iter_mut().enumerate() {
            let at = p * step + xo + c0;
            let xs: &[f32; W] = x[at..at + W].try_into().expect("block");
            for l in 0..W {
                a[l] = M::madd(xs[l], ks[l], a[l]);
            }
        }
    }
    for (p, a) in acc.iter().enumerate() {
        out[p * ostep + c0..p * ostep + c0 + W].copy_from_slice(a);
    }
}

/// [`block_px`] over all `c` channels for 4 pixels: blocks of 32, 16 and 8 channels, then
/// single channels.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn pixels4<M: Madd>(
    x: &[f32],
    step: usize,
    k: &[f32],
    taps: &[(usize, usize)],
    c: usize,
    init: Option<&[f32]>,
    out: &mut [f32],
    ostep: usize,
) {
    let mut c0 = 0;
    while c0 + 32 <= c {
        block_px::<M, 32, 4>(x, step, k, taps, c0, init, out, ostep);
        c0 += 32;
    }
    if c0 + 16 <= c {
        block_px::<M, 16, 4>(x, step, k, taps, c0, init, out, ostep);
        c0 += 16;
    }
    if c0 + 8 <= c {
        block_px::<M, 8, 4>(x, step, k, taps, c0, init, out, ostep);
        c0 += 8;
    }
    while c0 < c {
        block_px::<M, 1, 4>(x, step, k, taps, c0, init, out, ostep);
        c0 += 1;
    }
}

/// `out[..W] += Σ_i a[i·sa + c0 ..] ⊙ b[i·sb + c0 ..]` for `i < count`, a block of `W` channels.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn dot_block<M: Madd, const W: usize>(
    a: &[f32],
    sa: usize,
    b: &[f32],
    sb: usize,
    count: usize,
    c0: usize,
    out: &mut [f32],
) {
    let mut acc = [0.0f32; W];
    for i in 0..count {
        let av: &[f32; W] = a[i * sa + c0..i * sa + c0 + W].try_into().expect("block");
        let bv: &[f32; W] = b[i * sb + c0..i * sb + c0 + W].try_into().expect("block");
        for l in 0..W {
            acc[l] = M::madd(av[l], bv[l], acc[l]);
        }
    }
    for (o, v) in out[c0..c0 + W].iter_mut().zip(&acc) {
        *o += v;
    }
}

/// [`dot_block`] over all `c` channels.
#[inline(always)]
fn dot_rows<M: Madd>(a: &[f32], sa: usize, b: &[f32], sb: usize, count: usize, c: usize, out: &mut [f32]) {
    if count == 0 {
        return;
    }
    let mut c0 = 0;
    while c0 + 64 <= c {
        dot_block::<M, 64>(a, sa, b, sb, count, c0, out);
        c0 += 64;
    }
    if c0 + 32 <= c {
        dot_block::<M, 32>(a, sa, b, sb, count, c0, out);
        c0 += 32;
    }
    if c0 + 16 <= c {
        dot_block::<M, 16>(a, sa, b, sb, count, c0, out);
        c0 += 16;
    }
    if c0 + 8 <= c {
        dot_block::<M, 8>(a, sa, b, sb, count, c0, out);
        c0 += 8;
    }
    while c0 < c {
        dot_block::<M, 1>(a, sa, b, sb, count, c0, out);
        c0 += 1;
    }
}

multiversion! {
    /// One sample with `M = 1` (`g.channels` channels in and out): `y = bias + Σ taps`.
    fn forward_sample(g: &Dilated, x: &[f32], kernel: &[f32], bias: Option<&[f32]>, y: &mut [f32], taps: &mut Vec<(usize, usize)>, full: &mut Vec<(usize, usize)>) {
        let c = g.channels;
        // Pixels away from the border read every tap at fixed offsets from their first one.
        full.clear();
        for ky in 0..g.kh {
            for kx in 0..g.kw {
                full.push(((ky * g.dh * g.in_w + kx * g.dw) * c, (ky * g.kw + kx) * c));
            }
        }
        let rows = interior(g.valid_rows(0), g.valid_rows(g.kh - 1));
        let cols = interior(g.valid_cols(0), g.valid_cols(g.kw - 1));
        for oy in 0..g.out_h {
            let mut ox = 0;
            while ox < g.out_w {
                let o = (oy * g.out_w + ox) * c;
                if rows.contains(&oy) && cols.contains(&ox) {
                    let base = ((oy * g.sh - g.pad_top) * g.in_w + ox * g.sw - g.pad_left) * c;
                    if ox + 4 <= cols.end {
                        // Four interior pixels share each weight vector.
                        pixels4::<M>(&x[base..], g.sw * c, kernel, full, c, bias, &mut y[o..o + 4 * c], c);
                        ox += 4;
                    } else {
                        pixel::<M>(&x[base..], kernel, full, c, bias, &mut y[o..o + c]);
                        ox += 1;
                    }
                    continue;
                }
                taps.clear();
                for ky in 0..g.kh {
                    let Some(iy) = g.in_row(oy, ky) else { continue };
                    for kx in 0..g.kw {
                        if let Some(ix) = g.in_col(ox, kx) {
                            taps.push(((iy * g.in_w + ix) * c, (ky * g.kw + kx) * c));
                        }
                    }
                }
                pixel::<M>(x, kernel, taps, c, bias, &mut y[o..o + c]);
                ox += 1;
            }
        }
    }
}

multiversion! {
    /// One sample's input gradient with `M = 1`: `dx[iy, ix] = Σ dy[oy, ox] ⊙ k[tap]` over the
    /// output pixels whose tap lands on `(iy, ix)`.
    fn backward_sample(g: &Dilated, dy: &[f32], kernel: &[f32], dx: &mut [f32], taps: &mut Vec<(usize, usize)>, full: &mut Vec<(usize, usize)>) {
        let c = g.channels;
        // With stride 1, input pixels away from the border take every tap, at fixed offsets
        // from the output pixel of the last tap.
        let (kh, kw) = (g.kh, g.kw);
        let (rows, cols) = if g.sh == 1 && g.sw == 1 {
            full.clear();
            for ky in 0..kh {
                for kx in 0..kw {
                    full.push((((kh - 1 - ky) * g.dh * g.out_w + (kw - 1 - kx) * g.dw) * c, (ky * kw + kx) * c));
                }
            }
            // Input row iy takes tap ky from output row iy + pad − ky·d, inside when in 0..out.
            let span = |pad: usize, d: usize, k: usize, out: usize, len: usize| {
                let (lo, hi) = (((k - 1) * d).saturating_sub(pad), out.saturating_sub(pad).min(len));
                lo..hi.max(lo)
            };
            (span(g.pad_top, g.dh, kh, g.out_h, g.in_h), span(g.pad_left, g.dw, kw, g.out_w, g.in_w))
        } else {
            (0..0, 0..0)
        };
        // The output index along one axis whose tap `t` lands on input index `i`.
        let hit = |i: usize, t: usize, pad: usize, s: usize, d: usize, out: usize| -> Option<usize> {
            let p = (i + pad).checked_sub(t * d)?;
            (p % s == 0 && p / s < out).then_some(p / s)
        };
        for iy in 0..g.in_h {
            let mut ix = 0;
            while ix < g.in_w {
                let o = (iy * g.in_w + ix) * c;
                if rows.contains(&iy) && cols.contains(&ix) {
                    let base = ((iy + g.pad_top - (kh - 1) * g.dh) * g.out_w + ix + g.pad_left - (kw - 1) * g.dw) * c;
                    if ix + 4 <= cols.end {
                        pixels4::<M>(&dy[base..], c, kernel, full, c, None, &mut dx[o..o + 4 * c], c);
                        ix += 4;
                    } else {
                        pixel::<M>(&dy[base..], kernel, full, c, None, &mut dx[o..o + c]);
                        ix += 1;
                    }
                    continue;
                }
                taps.clear();
                for ky in 0..g.kh {
                    let Some(oy) = hit(iy, ky, g.pad_top, g.sh, g.dh, g.out_h) else { continue };
                    for kx in 0..g.kw {
                        if let Some(ox) = hit(ix, kx, g.pad_left, g.sw, g.dw, g.out_w) {
                            taps.push(((oy * g.out_w + ox) * c, (ky * g.kw + kx) * c));
                        }
                    }
                }
                pixel::<M>(dy, kernel, taps, c, None, &mut dx[o..o + c]);
                ix += 1;
            }
        }
    }
}

multiversion! {
    /// Adds one sample's weight gradient with `M = 1` into `dk` (`[taps, C]`):
    /// `dk[tap] += Σ_{oy, ox} dy[oy, ox] ⊙ x[iy, ix]`, accumulated along output rows.
    fn weight_grad_sample(g: &Dilated, x: &[f32], dy: &[f32], dk: &mut [f32]) {
        let c = g.channels;
        // Output row by output row, so that its gradient and the input rows under it stay in
        // cache while every tap reads them.
        for oy in 0..g.out_h {
            for ky in 0..g.kh {
                let Some(iy) = g.in_row(oy, ky) else { continue };
                for kx in 0..g.kw {
                    let cols = g.valid_cols(kx);
                    if cols.is_empty() {
                        continue;
                    }
                    let ix0 = g.in_col(cols.start, kx).expect("valid column");
                    let t = (ky * g.kw + kx) * c;
                    let a = &dy[(oy * g.out_w + cols.start) * c..];
                    let b = &x[(iy * g.in_w + ix0) * c..];
                    dot_rows::<M>(a, c, b, g.sw * c, cols.len(), c, &mut dk[t..t + c]);
                }
            }
        }
    }
}

/// Spreads `c` channels to `c·m`: `out[p, ch·m + j] = x[p, ch]`.
fn spread(x: &[f32], c: usize, m: usize, out: &mut Vec<f32>) {
    out.clear();
    out.extend(x.iter().flat_map(|&v| std::iter::repeat_n(v, m)));
    debug_assert_eq!(out.len(), x.len() / c * c * m);
}

/// The geometry over the spread input (`C·M` channels).
fn spread_geometry(g: &Dilated, m: usize) -> Dilated {
    Dilated { channels: g.channels * m, ..*g }
}

/// Forward pass for `n` samples: `x` `[n, in_h, in_w, C]`, kernel `[taps, C·M]`, `y`
/// `[n, out_h, out_w, C·M]` (overwritten), `bias` of `C·M` values.
#[allow(clippy::too_many_arguments)]
pub fn forward(
    g: &Dilated,
    x: &[f32],
    n: usize,
    m: usize,
    kernel: &[f32],
    bias: Option<&[f32]>,
    y: &mut [f32],
    s: &mut DepthwiseScratch,
) {
    let (il, ol) = (g.in_len(), g.out_pixels() * g.channels * m);
    assert!(x.len() >= n * il && y.len() >= n * ol && kernel.len() >= g.taps() * g.channels * m);
    let gs = spread_geometry(g, m);
    for i in 0..n {
        let xs = &x[i * il..(i + 1) * il];
        let ys = &mut y[i * ol..(i + 1) * ol];
        if m == 1 {
            forward_sample(g, xs, kernel, bias, ys, &mut s.taps, &mut s.full);
        } else {
            spread(xs, g.channels, m, &mut s.spread);
            forward_sample(&gs, &s.spread, kernel, bias, ys, &mut s.taps, &mut s.full);
        }
    }
}

/// Input gradient for `n` samples: `dx` (overwritten) from `dy` `[n, out_h, out_w, C·M]`.
pub fn backward_data(
    g: &Dilated,
    dy: &[f32],
    n: usize,
    m: usize,
    kernel: &[f32],
    dx: &mut [f32],
    s: &mut DepthwiseScratch,
) {
    let (il, ol) = (g.in_len(), g.out_pixels() * g.channels * m);
    assert!(dx.len() >= n * il && dy.len() >= n * ol);
    let gs = spread_geometry(g, m);
    for i in 0..n {
        let dys = &dy[i * ol..(i + 1) * ol];
        let dxs = &mut dx[i * il..(i + 1) * il];
        if m == 1 {
            backward_sample(g, dys, kernel, dxs, &mut s.taps, &mut s.full);
        } else {
            s.dspread.resize(il * m, 0.0);
            backward_sample(&gs, dys, kernel, &mut s.dspread, &mut s.taps, &mut s.full);
            for (d, v) in dxs.iter_mut().zip(s.dspread.chunks_exact(m)) {
                *d = v.iter().sum();
            }
        }
    }
}

/// Adds the weight gradient of `n` samples into `dk` (`[taps, C·M]`).
#[allow(clippy::too_many_arguments)]
pub fn weight_grad(g: &Dilated, x: &[f32], n: usize, m: usize, dy: &[f32], dk: &mut [f32], s: &mut DepthwiseScratch) {
    let (il, ol) = (g.in_len(), g.out_pixels() * g.channels * m);
    assert!(x.len() >= n * il && dy.len() >= n * ol && dk.len() >= g.taps() * g.channels * m);
    let gs = spread_geometry(g, m);
    for i in 0..n {
        let xs = &x[i * il..(i + 1) * il];
        let dys = &dy[i * ol..(i + 1) * ol];
        if m == 1 {
            weight_grad_sample(g, xs, dys, dk);
        } else {
            spread(xs, g.channels, m, &mut s.spread);
            weight_grad_sample(&gs, &s.spread, dys, dk);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::conv::Padding;
    use crate::kernels::dilated::{conv_backward_naive, conv_naive};
    use crate::kernels::testing::{assert_close, random_vec};
    use crate::rng::Rng;

    /// The depthwise kernel `[kh, kw, C, M]` is, byte for byte, the kernel of a grouped
    /// convolution with `C` groups of one channel and `C·M` filters: the naive grouped
    /// convolution is the reference.
    #[test]
    fn kernels_match_the_grouped_reference() {
        let mut rng = Rng::new(21);
        let mut s = DepthwiseScratch::default();
        let mut cases = 0;
        while cases < 150 {
            let c = [1, 3, 5, 8, 13, 16, 19, 37, 70, 96][rng.below(10)];
            let m = 1 + rng.below(2);
            let k = [(3, 3), (1, 1), (2, 3), (5, 5), (3, 1)][rng.below(5)];
            let st = [(1, 1), (2, 2), (1, 2)][rng.below(3)];
            let d = if rng.below(4) == 0 { (2, 2) } else { (1, 1) };
            let p = if rng.below(2) == 0 { Padding::Valid } else { Padding::Same };
            let Ok(g) = Dilated::new(1 + rng.below(9), 1 + rng.below(9), c, k, st, d, p) else { continue };
            cases += 1;
            let n = 1 + rng.below(2);
            let f = c * m;
            let x = random_vec(&mut rng, n * g.in_len());
            let kern = random_vec(&mut rng, g.taps() * f);
            let bias = random_vec(&mut rng, f);
            let dy = random_vec(&mut rng, n * g.out_pixels() * f);
            let what = format!("{g:?} m {m}");
            let mut y = vec![f32::NAN; n * g.out_pixels() * f];
            forward(&g, &x, n, m, &kern, Some(&bias), &mut y, &mut s);
            assert_close(&y, &conv_naive(&g, &x, n, &kern, Some(&bias), f, c), 1e-4, &what);
            let (dx_ref, dk_ref) = conv_backward_naive(&g, &x, n, &kern, f, c, &dy);
            let mut dx = vec![f32::NAN; n * g.in_len()];
            backward_data(&g, &dy, n, m, &kern, &mut dx, &mut s);
            assert_close(&dx, &dx_ref, 1e-4, &format!("dx {what}"));
            let mut dk = vec![0.5; g.taps() * f];
            weight_grad(&g, &x, n, m, &dy, &mut dk, &mut s);
            let want: Vec<f32> = dk_ref.iter().map(|v| v + 0.5).collect();
            assert_close(&dk, &want, 1e-4, &format!("dk {what}"));
        }
    }
}
