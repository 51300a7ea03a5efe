//! Implicit-GEMM convolution on AVX-512: the products of im2col + GEMM computed straight from
//! the NHWC input, with no column matrix in memory.
//!
//! With NHWC data and Keras' `[kh, kw, c, f]` kernels, the `kw·c` values a kernel row covers
//! are contiguous in the input, and so are the filters of one tap in the kernel. A tile of up
//! to 24 output pixels × 16–32 filters is accumulated in registers over the `kh · kw·c`
//! reduction ([`super::avx512`]); each output value is written once, with bias and ReLU
//! applied on the way out. The weight gradient runs the same way over taps × filters,
//! reducing over all pixels of a batch chunk. The input gradient (stride 1) is the forward
//! convolution of the zero-padded output gradient with the kernel flipped and transposed.
//!
//! Shapes as in [`super::conv`]; these functions require [`available`].

use super::avx512::{self, FwdArgs, WgradArgs};
use super::conv::Window;
use super::simd::{level, Level};
use super::tiling::{blocks, tiles};
use super::winograd::{self, Source, WinogradScratch};
use crate::tensor::AlignedVec;

/// True when the processor runs the AVX-512 kernels.
pub fn available() -> bool {
    cfg!(target_arch = "x86_64") && level() == Level::Avx512
}

/// Reusable buffers of the implicit kernels.
#[derive(Default, Clone, Debug)]
pub struct ImplicitScratch {
    pad: AlignedVec,
    wino: WinogradScratch,
}

/// Layouts of a layer's kernel that the kernels read, derived once per pass and shared by
/// all workers: its Winograd transform for [`forward`]; the kernel flipped and transposed,
/// and its transform, for [`backward_data`].
#[derive(Default, Clone, Debug)]
pub struct PreparedKernel {
    wino: AlignedVec,
    flipped: Vec<f32>,
    wino_flipped: AlignedVec,
}

impl PreparedKernel {
    /// Prepares what [`forward`] needs for `kernel` (`[kh, kw, c, filters]`).
    pub fn for_forward(&mut self, w: &Window, kernel: &[f32], filters: usize) {
        if winograd_suits(w, w.channels) {
            winograd::transform_kernel(kernel, w.channels, filters, &mut self.wino);
        }
    }

    /// Prepares what [`backward_data`] needs for `kernel`.
    pub fn for_backward(&mut self, w: &Window, kernel: &[f32], filters: usize) {
        let (c, f, kh, kw) = (w.channels, filters, w.kh, w.kw);
        assert!(kernel.len() >= kh * kw * c * f);
        // flipped[ky', kx', f, c] = kernel[kh-1-ky', kw-1-kx', c, f]
        self.flipped.clear();
        self.flipped.resize(kh * kw * f * c, 0.0);
        for ky in 0..kh {
            for kx in 0..kw {
                for ci in 0..c {
                    for fi in 0..f {
                        self.flipped[(((kh - 1 - ky) * kw + (kw - 1 - kx)) * f + fi) * c + ci] =
                            kernel[((ky * kw + kx) * c + ci) * f + fi];
                    }
                }
            }
        }
        if winograd_suits(w, f) {
            winograd::transform_kernel(&self.flipped, f, c, &mut self.wino_flipped);
        }
    }
}

/// Length of the weight-gradient accumulator [`weight_grad`] adds to (the kernel's length,
/// or that of its Winograd transform); [`finish_weight_grad`] turns it into the gradient.
pub fn grad_len(w: &Window, filters: usize) -> usize {
    grad_len_with(w, filters, true)
}

fn grad_len_with(w: &Window, filters: usize, allow_winograd: bool) -> usize {
    if allow_winograd && winograd_suits(w, w.channels) {
        16 * w.channels * filters
    } else {
        w.patch_len() * filters
    }
}

/// Writes the kernel gradient (`[kh, kw, c, filters]`) that the accumulator `acc` of
/// [`weight_grad`] holds into `dkernel`.
pub fn finish_weight_grad(w: &Window, filters: usize, acc: &[f32], dkernel: &mut [f32]) {
    finish_weight_grad_with(w, filters, acc, dkernel, true)
}

fn finish_weight_grad_with(w: &Window, filters: usize, acc: &[f32], dkernel: &mut [f32], allow_winograd: bool) {
    assert_eq!(acc.len(), grad_len_with(w, filters, allow_winograd));
    if allow_winograd && winograd_suits(w, w.channels) {
        winograd::finish_weight_grad(acc, w.channels, filters, dkernel);
    } else {
        dkernel.copy_from_slice(acc);
    }
}

/// Whether a window with `cin` channels into the product goes through Winograd F(2×2, 3×3):
/// 3×3, stride 1, and at least a vector of channels.
pub fn winograd_suits(w: &Window, cin: usize) -> bool {
    available() && (w.kh, w.kw, w.sh, w.sw) == (3, 3, 1, 1) && cin >= winograd::MIN_CHANNELS
}

/// The input as the kernels read it: the samples themselves when no padding is needed, else
/// zero-padded copies in `pad`. Returns (data, sample stride, row stride).
fn source<'a>(w: &Window, x: &'a [f32], n: usize, pad: &'a mut AlignedVec) -> (&'a [f32], usize, usize) {
    let ph = (w.out_h - 1) * w.sh + w.kh;
    let pw = (w.out_w - 1) * w.sw + w.kw;
    source_extent(w, x, n, pad, ph, pw)
}

/// As [`source`], for kernels that read `ph` rows of `pw` pixels per sample.
fn source_extent<'a>(
    w: &Window,
    x: &'a [f32],
    n: usize,
    pad: &'a mut AlignedVec,
    ph: usize,
    pw: usize,
) -> (&'a [f32], usize, usize) {
    let c = w.channels;
    if w.pad_top == 0 && w.pad_left == 0 && ph <= w.in_h && pw <= w.in_w {
        return (&x[..n * w.in_len()], w.in_len(), w.in_w * c);
    }
    let plen = ph * pw * c;
    let pad = pad.resize(n * plen);
    let rows = w.in_h.min(ph.saturating_sub(w.pad_top));
    let cols = w.in_w.min(pw.saturating_sub(w.pad_left));
    let canvas = Canvas { rows: ph, len: pw * c, top: w.pad_top, left: w.pad_left * c };
    canvas.embed(pad, n, rows, cols * c, |s, r, dst| {
        let at = s * w.in_len() + r * w.in_w * c;
        dst.copy_from_slice(&x[at..at + cols * c]);
    });
    (pad, plen, pw * c)
}

/// A zero-padded copy of each sample: `rows` rows of `len` values, the sample's own rows
/// placed from row `top`, value `left` on.
struct Canvas {
    rows: usize,
    len: usize,
    top: usize,
    left: usize,
}

impl Canvas {
    /// Writes `n` samples of `h` rows × `w` values into `dst` (`n` canvases), row `r` of
    /// sample `s` through `fill(s, r, row)`; every value of the canvases is written once, the
    /// padding with zeros, so there is no separate clearing pass.
    fn embed(&self, dst: &mut [f32], n: usize, h: usize, w: usize, mut fill: impl FnMut(usize, usize, &mut [f32])) {
        for (s, sample) in dst.chunks_exact_mut(self.rows * self.len).take(n).enumerate() {
            for (py, row) in sample.chunks_exact_mut(self.len).enumerate() {
                if py < self.top || py >= self.top + h {
                    row.fill(0.0);
                    continue;
                }
                let (head, rest) = row.split_at_mut(self.left);
                let (mid, tail) = rest.split_at_mut(w);
                head.fill(0.0);
                fill(s, py - self.top, mid);
                tail.fill(0.0);
            }
        }
    }
}

/// Forward convolution of `n` samples: `y = conv(x, kernel) + bias`, with ReLU applied when
/// `relu` (any other activation is the caller's).
pub fn forward(
    w: &Window,
    x: &[f32],
    n: usize,
    kernel: &[f32],
    prepared: &PreparedKernel,
    bias: Option<&[f32]>,
    filters: usize,
    relu: bool,
    y: &mut [f32],
    s: &mut ImplicitScratch,
) {
    forward_with(w, x, n, kernel, prepared, bias, filters, relu, y, s, true)
}

/// [`forward`], through Winograd where it suits only when `allow_winograd`.
pub fn forward_with(
    w: &Window,
    x: &[f32],
    n: usize,
    kernel: &[f32],
    prepared: &PreparedKernel,
    bias: Option<&[f32]>,
    filters: usize,
    relu: bool,
    y: &mut [f32],
    s: &mut ImplicitScratch,
    allow_winograd: bool,
) {
    assert!(available());
    assert!(kernel.len() >= w.patch_len() * filters && y.len() >= n * w.out_pixels() * filters);
    assert!(bias.is_none_or(|b| b.len() >= filters));
    let c = w.channels;
    if allow_winograd && winograd_suits(w, c) {
        let (ph, pw) = (winograd::input_extent(w.out_h), winograd::input_extent(w.out_w));
        let (data, sample, row) = source_extent(w, x, n, &mut s.pad, ph, pw);
        assert_eq!(prepared.wino.len(), 16 * c * filters, "kernel not prepared for the forward pass");
        let src = Source { data, n, sample, row, cin: c };
        winograd::convolve(&src, w.out_h, w.out_w, prepared.wino.as_slice(), filters, bias, relu, y, &mut s.wino);
        return;
    }
    let (src, ss, rs) = source(w, x, n, &mut s.pad);
    let (f, kwc) = (filters, w.kw * c);
    let args = |xp: *const f32, sx: usize, yp: *mut f32, f0: usize, mask: u16| FwdArgs {
        x: xp,
        sx,
        rs,
        kh: w.kh,
        kwc,
        // SAFETY (of the pointer offsets below): f0 < filters, within the kernel and bias.
        w: unsafe { kernel.as_ptr().add(f0) },
        ws: f,
        y: yp,
        ys: f,
        bias: bias.map_or(std::ptr::null(), |b| unsafe { b.as_ptr().add(f0) }),
        accumulate: false,
        mask,
        relu,
    };
    let (xp, yp) = (src.as_ptr(), y.as_mut_ptr());
    if w.out_h == 1 && w.out_w == 1 {
        // One output pixel per sample (a dense layer in disguise): tile across samples.
        for (f0, v, mask) in blocks(f) {
            for (s0, m) in tiles(n, avx512::max_m(v)) {
                // SAFETY: tiles and blocks stay inside the n samples and f filters checked above;
                // the kernel reads kh rows of kwc values from each sample's start.
                unsafe { avx512::fwd(m, v, &args(xp.add(s0 * ss), ss, yp.add(s0 * f + f0), f0, mask)) };
            }
        }
        return;
    }
    for smp in 0..n {
        for oy in 0..w.out_h {
            // SAFETY: row oy·sh of the (padded) sample; the window's rows stay inside it.
            let xrow = unsafe { xp.add(smp * ss + oy * w.sh * rs) };
            let yrow = (smp * w.out_h + oy) * w.out_w;
            for (f0, v, mask) in blocks(f) {
                for (ox0, m) in tiles(w.out_w, avx512::max_m(v)) {
                    // SAFETY: as above; output pixels yrow + ox0 .. + m exist.
                    unsafe {
                        let a = args(xrow.add(ox0 * w.sw * c), w.sw * c, yp.add((yrow + ox0) * f + f0), f0, mask);
                        avx512::fwd(m, v, &a);
                    }
                }
            }
        }
    }
}

/// Adds the kernel gradient of `n` samples, `dk[ky, kx, c, f] += Σ x·dz`, to the accumulator
/// `acc` ([`grad_len`] values; [`finish_weight_grad`] turns the sum into the gradient).
pub fn weight_grad(
    w: &Window,
    x: &[f32],
    n: usize,
    dz: &[f32],
    filters: usize,
    acc: &mut [f32],
    s: &mut ImplicitScratch,
) {
    weight_grad_with(w, x, n, dz, filters, acc, s, true)
}

/// [`weight_grad`], through Winograd where it suits only when `allow_winograd`.
pub fn weight_grad_with(
    w: &Window,
    x: &[f32],
    n: usize,
    dz: &[f32],
    filters: usize,
    dkernel: &mut [f32],
    s: &mut ImplicitScratch,
    allow_winograd: bool,
) {
    assert!(available());
    assert!(dz.len() >= n * w.out_pixels() * filters);
    assert_eq!(dkernel.len(), grad_len_with(w, filters, allow_winograd));
    let c = w.channels;
    if allow_winograd && winograd_suits(w, c) {
        let (ph, pw) = (winograd::input_extent(w.out_h), winograd::input_extent(w.out_w));
        let (data, sample, row) = source_extent(w, x, n, &mut s.pad, ph, pw);
        let src = Source { data, n, sample, row, cin: c };
        winograd::weight_grad(&src, w.out_h, w.out_w, dz, filters, dkernel, &mut s.wino);
        return;
    }
    let (src, ss, rs) = source(w, x, n, &mut s.pad);
    let (f, kwc) = (filters, w.kw * c);
    for (f0, v, mask) in blocks(f) {
        for ky in 0..w.kh {
            for (j0, m) in tiles(kwc, avx512::max_m(v)) {
                // SAFETY: taps ky, j0..j0+m of every pixel lie inside its (padded) sample;
                // dz and dkernel offsets stay inside the checked lengths.
                unsafe {
                    let a = WgradArgs {
                        x: src.as_ptr().add(ky * rs + j0),
                        xs_sample: ss,
                        xs_row: w.sh * rs,
                        xs_col: w.sw * c,
                        dz: dz.as_ptr().add(f0),
                        dzs: f,
                        n,
                        oh: w.out_h,
                        ow: w.out_w,
                        dw: dkernel.as_mut_ptr().add((ky * kwc + j0) * f + f0),
                        dws: f,
                        accumulate: true,
                        mask,
                    };
                    avx512::wgrad(m, v, &a);
                }
            }
        }
    }
}

/// Input gradient of `n` samples for stride 1: `dx = conv(pad(dz), flip(kernel)ᵀ)`;
/// overwrites `dx`.
///
/// `prep` is called on every row of `dz` (output row `r` of the chunk, `out_w · filters`
/// values) just before the row is copied into the padded buffer, so the caller can finish
/// the gradient there (the activation's derivative, the bias sum) without another pass.
pub fn backward_data(
    w: &Window,
    dz: &mut [f32],
    n: usize,
    prepared: &PreparedKernel,
    filters: usize,
    dx: &mut [f32],
    s: &mut ImplicitScratch,
    prep: &mut dyn FnMut(usize, &mut [f32]),
) {
    backward_data_with(w, dz, n, prepared, filters, dx, s, prep, true)
}

/// [`backward_data`], through Winograd where it suits only when `allow_winograd`.
pub fn backward_data_with(
    w: &Window,
    dz: &mut [f32],
    n: usize,
    prepared: &PreparedKernel,
    filters: usize,
    dx: &mut [f32],
    s: &mut ImplicitScratch,
    prep: &mut dyn FnMut(usize, &mut [f32]),
    allow_winograd: bool,
) {
    assert!(available() && w.sh == 1 && w.sw == 1);
    assert!(dz.len() >= n * w.out_pixels() * filters && dx.len() >= n * w.in_len());
    let (c, f, kh, kw) = (w.channels, filters, w.kh, w.kw);
    assert_eq!(prepared.flipped.len(), kh * kw * f * c, "kernel not prepared for the backward pass");
    let wino = allow_winograd && winograd_suits(w, f);
    let (mut hq, mut wq) = (w.in_h + kh - 1, w.in_w + kw - 1);
    if wino {
        hq = hq.max(winograd::input_extent(w.in_h));
        wq = wq.max(winograd::input_extent(w.in_w));
    }
    let (top, left) = (kh - 1 - w.pad_top, kw - 1 - w.pad_left);
    let plen = hq * wq * f;
    let canvas = Canvas { rows: hq, len: wq * f, top, left: left * f };
    let row_len = w.out_w * f;
    canvas.embed(s.pad.resize(n * plen), n, w.out_h, row_len, |smp, oy, dst| {
        let row = smp * w.out_h + oy;
        let src = &mut dz[row * row_len..(row + 1) * row_len];
        prep(row, src);
        dst.copy_from_slice(src);
    });
    if wino {
        let src = Source { data: s.pad.as_slice(), n, sample: plen, row: wq * f, cin: f };
        winograd::convolve(&src, w.in_h, w.in_w, prepared.wino_flipped.as_slice(), c, None, false, dx, &mut s.wino);
        return;
    }
    let (rs, kwc) = (wq * f, kw * f);
    let (pp, wtp, dxp) = (s.pad.as_slice().as_ptr(), prepared.flipped.as_ptr(), dx.as_mut_ptr());
    for smp in 0..n {
        for iy in 0..w.in_h {
            let yrow = (smp * w.in_h + iy) * w.in_w;
            for (c0, v, mask) in blocks(c) {
                for (ix0, m) in tiles(w.in_w, avx512::max_m(v)) {
                    // SAFETY: the padded gradient holds in_h + kh - 1 rows of in_w + kw - 1
                    // pixels per sample, covering every window; offsets stay in bounds.
                    unsafe {
                        let a = FwdArgs {
                            x: pp.add(smp * plen + iy * rs + ix0 * f),
                            sx: f,
                            rs,
                            kh,
                            kwc,
                            w: wtp.add(c0),
                            ws: c,
                            y: dxp.add((yrow + ix0) * c + c0),
                            ys: c,
                            bias: std::ptr::null(),
                            accumulate: false,
                            mask,
                            relu: false,
                        };
                        avx512::fwd(m, v, &a);
                    }
                }
            }
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
    fn winograd_matches_naive_references() {
        if !crate::kernels::testing::avx512_or_skip("winograd_matches_naive_references") {
            return;
        }
        let mut rng = Rng::new(41);
        let mut scratch = ImplicitScratch::default();
        let mut cases = 0;
        while cases < 120 {
            let p = if rng.below(2) == 0 { Padding::Valid } else { Padding::Same };
            let c = [16, 17, 31, 32, 33, 64][rng.below(6)];
            let Ok(w) = Window::new(1 + rng.below(17), 1 + rng.below(17), c, (3, 3), (1, 1), p) else { continue };
            let f = [1, 5, 16, 17, 32, 40, 64][rng.below(7)];
            assert!(winograd_suits(&w, c));
            cases += 1;
            let n = 1 + rng.below(3);
            let x = random_vec(&mut rng, n * w.in_len());
            let kern = random_vec(&mut rng, w.patch_len() * f);
            let bias = random_vec(&mut rng, f);
            let relu = rng.below(2) == 0;
            let mut want = conv2d_naive(&w, &x, n, &kern, Some(&bias), f);
            if relu {
                want.iter_mut().for_each(|v| *v = v.max(0.0));
            }
            let mut prepared = PreparedKernel::default();
            prepared.for_forward(&w, &kern, f);
            prepared.for_backward(&w, &kern, f);
            let mut y = vec![f32::NAN; want.len()];
            forward(&w, &x, n, &kern, &prepared, Some(&bias), f, relu, &mut y, &mut scratch);
            assert_close(&y, &want, 1e-4, &format!("winograd forward {w:?} f={f}"));
            let dy = random_vec(&mut rng, y.len());
            let (dx_ref, dk_ref, _) = conv2d_backward_naive(&w, &x, n, &kern, f, &dy);
            // Two halves of the batch accumulated one after the other.
            assert_eq!(grad_len(&w, f), 16 * c * f);
            let mut acc = vec![0.0; grad_len(&w, f)];
            let h = n / 2;
            let (pi, po) = (w.in_len(), w.out_pixels() * f);
            weight_grad(&w, &x[..h * pi], h, &dy[..h * po], f, &mut acc, &mut scratch);
            weight_grad(&w, &x[h * pi..], n - h, &dy[h * po..], f, &mut acc, &mut scratch);
            let mut dk = vec![f32::NAN; kern.len()];
            finish_weight_grad(&w, f, &acc, &mut dk);
            assert_close(&dk, &dk_ref, 1e-3, &format!("winograd dkernel {w:?} f={f}"));
            let mut dx = vec![f32::NAN; x.len()];
            let mut dy2 = dy.clone();
            backward_data(&w, &mut dy2, n, &prepared, f, &mut dx, &mut scratch, &mut |_, _| {});
            assert_close(&dx, &dx_ref, 1e-3, &format!("winograd dx {w:?} f={f}"));
        }
    }

    #[test]
    fn implicit_kernels_match_naive_references() {
        if !crate::kernels::testing::avx512_or_skip("implicit_kernels_match_naive_references") {
            return;
        }
        let mut rng = Rng::new(40);
        let mut scratch = ImplicitScratch::default();
        let mut cases = 0;
        while cases < 250 {
            let p = if rng.below(2) == 0 { Padding::Valid } else { Padding::Same };
            let k = (1 + rng.below(5), 1 + rng.below(5));
            let st = if rng.below(3) == 0 { (1 + rng.below(3), 1 + rng.below(3)) } else { (1, 1) };
            let c = [1, 2, 3, 6, 16, 17, 33][rng.below(7)];
            let Ok(w) = Window::new(1 + rng.below(11), 1 + rng.below(30), c, k, st, p) else { continue };
            cases += 1;
            let n = 1 + rng.below(3);
            let f = [1, 5, 6, 16, 17, 32, 40, 64, 70][rng.below(9)];
            let x = random_vec(&mut rng, n * w.in_len());
            let kern = random_vec(&mut rng, w.patch_len() * f);
            let bias = random_vec(&mut rng, f);
            let relu = rng.below(2) == 0;
            let mut want = conv2d_naive(&w, &x, n, &kern, Some(&bias), f);
            if relu {
                want.iter_mut().for_each(|v| *v = v.max(0.0));
            }
            let mut prepared = PreparedKernel::default();
            prepared.for_forward(&w, &kern, f);
            if w.sh == 1 && w.sw == 1 {
                prepared.for_backward(&w, &kern, f);
            }
            let mut y = vec![f32::NAN; n * w.out_pixels() * f];
            for wino in [false, true] {
                y.fill(f32::NAN);
                forward_with(&w, &x, n, &kern, &prepared, Some(&bias), f, relu, &mut y, &mut scratch, wino);
                assert_close(&y, &want, 1e-4, &format!("forward {w:?} f={f} winograd={wino}"));
            }
            let dy = random_vec(&mut rng, y.len());
            let (dx_ref, dk_ref, _) = conv2d_backward_naive(&w, &x, n, &kern, f, &dy);
            for wino in [false, true] {
                let mut acc = vec![0.0; grad_len_with(&w, f, wino)];
                weight_grad_with(&w, &x, n, &dy, f, &mut acc, &mut scratch, wino);
                let mut dk = vec![f32::NAN; kern.len()];
                finish_weight_grad_with(&w, f, &acc, &mut dk, wino);
                assert_close(&dk, &dk_ref, 1e-3, &format!("dkernel {w:?} f={f} winograd={wino}"));
            }
            if w.sh == 1 && w.sw == 1 {
                for wino in [false, true] {
                    let mut dx = vec![f32::NAN; x.len()];
                    let mut dy2 = dy.clone();
                    let mut rows = 0;
                    let mut prep = |_: usize, _: &mut [f32]| rows += 1;
                    backward_data_with(&w, &mut dy2, n, &prepared, f, &mut dx, &mut scratch, &mut prep, wino);
                    assert_eq!(rows, n * w.out_h);
                    assert_close(&dx, &dx_ref, 1e-3, &format!("dx {w:?} f={f} winograd={wino}"));
                }
            }
        }
    }
}
