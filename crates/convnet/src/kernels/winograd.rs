//! Winograd F(2×2, 3×3) convolution on AVX-512 for 3×3, stride-1 windows.
//!
//! Each 2×2 block of outputs is computed from the 4×4 block of inputs that covers it with 16
//! multiplies per channel pair instead of 36: the input tile `d` becomes `V = Bᵀ d B`, the
//! kernel `g` becomes `U = G g Gᵀ`, and `Y = Aᵀ (U ⊙ V) A`. Summed over channels, `U ⊙ V`
//! is 16 independent matrix products `M[ξ] (tiles × out) = V[ξ] (tiles × in) · U[ξ] (in ×
//! out)`, which run on the register-tiled kernel of [`super::avx512`]; the two transforms
//! are short add/subtract passes over vectors of 16 channels. Work is done one sample at a
//! time so that `V` and `M` stay in the core's L2 cache.
//!
//! The matrices (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks"):
//! `Bᵀ = [[1,0,−1,0],[0,1,1,0],[0,−1,1,0],[0,1,0,−1]]`,
//! `G = [[1,0,0],[½,½,½],[½,−½,½],[0,0,1]]`, `Aᵀ = [[1,1,1,0],[0,1,−1,−1]]`.
//! These products are exact up to f32 rounding (no large constants, unlike larger tiles).

use super::avx512;
use super::tiling::{blocks, tiles};
use crate::tensor::AlignedVec;
use std::arch::x86_64::*;

/// Fewest input channels worth the transforms (a vector of 16 channels).
pub const MIN_CHANNELS: usize = 16;

/// Reusable buffers: transformed input tiles and their products with the kernel.
#[derive(Default, Clone, Debug)]
pub struct WinogradScratch {
    v: AlignedVec,
    m: AlignedVec,
}

/// Transforms a `[3, 3, cin, cout]` kernel into `u[ξ][cin][cout]` (`U = G g Gᵀ`).
pub fn transform_kernel(kernel: &[f32], cin: usize, cout: usize, u: &mut AlignedVec) {
    assert!(kernel.len() >= 9 * cin * cout);
    let u = u.resize(16 * cin * cout);
    let plane = cin * cout;
    for ci in 0..cin {
        for fi in 0..cout {
            let g = |ky: usize, kx: usize| kernel[(ky * 3 + kx) * plane + ci * cout + fi];
            // Rows: G g (4 × 3).
            let mut r = [[0.0f32; 3]; 4];
            for kx in 0..3 {
                let (g0, g1, g2) = (g(0, kx), g(1, kx), g(2, kx));
                r[0][kx] = g0;
                r[1][kx] = 0.5 * (g0 + g1 + g2);
                r[2][kx] = 0.5 * (g0 - g1 + g2);
                r[3][kx] = g2;
            }
            // Columns: (G g) Gᵀ (4 × 4).
            for (i, ri) in r.iter().enumerate() {
                let vals = [ri[0], 0.5 * (ri[0] + ri[1] + ri[2]), 0.5 * (ri[0] - ri[1] + ri[2]), ri[2]];
                for (j, val) in vals.into_iter().enumerate() {
                    u[(i * 4 + j) * plane + ci * cout + fi] = val;
                }
            }
        }
    }
}

/// Where the input of one call lies: `n` samples `sample` apart, rows `row` apart, `cin`
/// contiguous channels per pixel; every sample must hold `2·⌈out_h/2⌉ + 2` rows of
/// `2·⌈out_w/2⌉ + 2` pixels (zero beyond the real input).
#[derive(Clone, Copy, Debug)]
pub struct Source<'a> {
    /// The values.
    pub data: &'a [f32],
    /// Samples.
    pub n: usize,
    /// Stride between samples.
    pub sample: usize,
    /// Stride between rows.
    pub row: usize,
    /// Channels per pixel.
    pub cin: usize,
}

/// Stride between the 16 planes of `t` tiles × `c` channels: whole cache lines, skewed so
/// that the planes do not all fall on the same L1 sets (a multiple of 4 KiB would make the
/// transforms' 16 loads or stores per vector evict each other).
fn plane_len(t: usize, c: usize) -> usize {
    let p = (t * c).next_multiple_of(16);
    if (p * 4).is_multiple_of(2048) {
        p + 16
    } else {
        p
    }
}

impl Source<'_> {
    /// The tile grid (rows, columns) of an `out_h × out_w` output over this source, after
    /// checking that the source covers what the tiles read.
    fn tiles_for(&self, out_h: usize, out_w: usize) -> (usize, usize) {
        assert!(super::simd::level() == super::simd::Level::Avx512);
        let need = (input_extent(out_h) - 1) * self.row + input_extent(out_w) * self.cin;
        assert!(self.row >= input_extent(out_w) * self.cin);
        assert!(self.n == 0 || self.data.len() >= (self.n - 1) * self.sample + need);
        (out_h.div_ceil(2), out_w.div_ceil(2))
    }
}

/// Rows (and columns) of input a Winograd pass over `out` outputs reads.
pub fn input_extent(out: usize) -> usize {
    2 * out.div_ceil(2) + 2
}

/// Valid 3×3 convolution of `src` with the transformed kernel `u` (`[16][cin][cout]`):
/// `y[s, oy, ox, :] = act(bias + Σ x[s, oy+ky, ox+kx, :] · kernel[ky, kx])` for an
/// `out_h × out_w` output per sample, ReLU when `relu`.
pub fn convolve(
    src: &Source<'_>,
    out_h: usize,
    out_w: usize,
    u: &[f32],
    cout: usize,
    bias: Option<&[f32]>,
    relu: bool,
    y: &mut [f32],
    s: &mut WinogradScratch,
) {
    let (th, tw) = src.tiles_for(out_h, out_w);
    let (cin, n) = (src.cin, src.n);
    assert!(u.len() >= 16 * cin * cout && y.len() >= n * out_h * out_w * cout);
    assert!(bias.is_none_or(|b| b.len() >= cout));
    let t = th * tw;
    let tb = t.min(BLOCK_TILES);
    let (pv, pm) = (plane_len(tb, cin), plane_len(tb, cout));
    let v = s.v.resize(16 * pv).as_mut_ptr();
    let mp = s.m.resize(16 * pm).as_mut_ptr();
    for smp in 0..n {
        let x = &src.data[smp * src.sample..];
        let ys = &mut y[smp * out_h * out_w * cout..(smp + 1) * out_h * out_w * cout];
        for (b0, bn) in tiles(t, tb) {
            let range = Tiles { first: b0, count: bn, per_row: tw };
            // SAFETY: AVX-512F checked above; the tiles read rows 0..2·th+2 and columns
            // 0..2·tw+2 of this sample, inside the length checked above; v holds 16 planes
            // of pv ≥ bn·cin values.
            unsafe { input_transform(x.as_ptr(), src.row, cin, range, v, pv) };
            for xi in 0..16 {
                for (f0, vv, mask) in blocks(cout) {
                    for (t0, m) in tiles(bn, avx512::max_m(vv)) {
                        // SAFETY: offsets stay inside plane ξ of v (bn·cin), of u (cin·cout)
                        // and of m (bn·cout).
                        unsafe {
                            avx512::product(
                                (m, vv, mask),
                                v.add(xi * pv + t0 * cin),
                                cin,
                                cin,
                                u.as_ptr().add(xi * cin * cout + f0),
                                cout,
                                mp.add(xi * pm + t0 * cout + f0),
                                cout,
                                false,
                            )
                        };
                    }
                }
            }
            // SAFETY: m holds the block's products; the stores stay inside this sample's
            // output.
            unsafe {
                output_transform(
                    mp,
                    pm,
                    range,
                    cout,
                    out_h,
                    out_w,
                    bias.map_or(std::ptr::null(), <[f32]>::as_ptr),
                    relu,
                    ys.as_mut_ptr(),
                )
            };
        }
    }
}

/// Tiles per block of [`convolve`]: four register tiles, so the block's transformed input
/// and products stay in L2 next to the transformed kernel (measured best of 14–144 tiles on
/// the presets' layers with `cargo run --release --example kernel_threads`).
const BLOCK_TILES: usize = 4 * avx512::max_m(2);

/// A run of `count` tiles from tile `first` of a grid `per_row` tiles wide.
#[derive(Clone, Copy)]
struct Tiles {
    first: usize,
    count: usize,
    per_row: usize,
}

impl Tiles {
    /// Grid row and column of the run's tile `t`.
    fn position(&self, t: usize) -> (usize, usize) {
        ((self.first + t) / self.per_row, (self.first + t) % self.per_row)
    }

    /// Grid row and column of tile `t`, and the rows and columns (1 or 2 each) of an
    /// `out_h × out_w` output it covers.
    fn extent(&self, t: usize, out_h: usize, out_w: usize) -> (usize, usize, usize, usize) {
        let (ty, tx) = self.position(t);
        (ty, tx, (out_h - 2 * ty).min(2), (out_w - 2 * tx).min(2))
    }
}

/// Adds the kernel gradient of a valid 3×3 convolution, in the transformed domain, to `du`
/// (`[16][cin][cout]`): `dU[ξ] += Σ_tiles V[ξ]ᵀ dM[ξ]` with `dM = A dY Aᵀ` per output tile,
/// `dz` being the `out_h × out_w × cout` output gradient of each sample of `src`.
/// [`finish_weight_grad`] turns the sum into the kernel gradient.
pub fn weight_grad(
    src: &Source<'_>,
    out_h: usize,
    out_w: usize,
    dz: &[f32],
    cout: usize,
    du: &mut [f32],
    s: &mut WinogradScratch,
) {
    let (th, tw) = src.tiles_for(out_h, out_w);
    let (cin, n) = (src.cin, src.n);
    assert!(dz.len() >= n * out_h * out_w * cout && du.len() >= 16 * cin * cout);
    let t = th * tw;
    let (pv, pm) = (plane_len(t, cin), plane_len(t, cout));
    let v = s.v.resize(16 * pv).as_mut_ptr();
    let mp = s.m.resize(16 * pm).as_mut_ptr();
    for smp in 0..n {
        let x = &src.data[smp * src.sample..];
        let dzs = &dz[smp * out_h * out_w * cout..(smp + 1) * out_h * out_w * cout];
        // SAFETY: as in `convolve`; the gradient transform reads this sample's outputs only.
        unsafe {
            let range = Tiles { first: 0, count: t, per_row: tw };
            input_transform(x.as_ptr(), src.row, cin, range, v, pv);
            gradient_transform(dzs.as_ptr(), range, cout, out_h, out_w, mp, pm);
        }
        for xi in 0..16 {
            for (f0, vv, mask) in blocks(cout) {
                for (c0, m) in tiles(cin, avx512::max_m(vv)) {
                    // SAFETY: plane ξ of v (t·cin), m (t·cout) and du (cin·cout); the tile
                    // reads channels c0..c0+m of every tile and writes rows c0.. of dU.
                    unsafe {
                        avx512::product_tn(
                            (m, vv, mask),
                            v.add(xi * pv + c0),
                            cin,
                            t,
                            mp.add(xi * pm + f0),
                            cout,
                            du.as_mut_ptr().add((xi * cin + c0) * cout + f0),
                            cout,
                            true,
                        )
                    };
                }
            }
        }
    }
}

/// Writes the kernel gradient `dg = Gᵀ dU G` (`[3, 3, cin, cout]`) of the transformed-domain
/// sum `du` into `dkernel`.
pub fn finish_weight_grad(du: &[f32], cin: usize, cout: usize, dkernel: &mut [f32]) {
    let plane = cin * cout;
    assert!(du.len() >= 16 * plane && dkernel.len() >= 9 * plane);
    for e in 0..plane {
        let u = |i: usize, j: usize| du[(i * 4 + j) * plane + e];
        let mut p = [[0.0f32; 4]; 3];
        for (j, col) in (0..4).map(|j| (j, [u(0, j), u(1, j), u(2, j), u(3, j)])) {
            p[0][j] = col[0] + 0.5 * (col[1] + col[2]);
            p[1][j] = 0.5 * (col[1] - col[2]);
            p[2][j] = 0.5 * (col[1] + col[2]) + col[3];
        }
        for (ky, pk) in p.iter().enumerate() {
            let g = [pk[0] + 0.5 * (pk[1] + pk[2]), 0.5 * (pk[1] - pk[2]), 0.5 * (pk[1] + pk[2]) + pk[3]];
            for (kx, v) in g.into_iter().enumerate() {
                dkernel[(ky * 3 + kx) * plane + e] = v;
            }
        }
    }
}

/// `m[ξ][tile][f] = (A dY Aᵀ)[ξ]` for every 2×2 block `dY` of the output gradient (zero
/// outside `out_h × out_w`).
///
/// # Safety
/// AVX-512F must be available; `dz` must hold `out_h × out_w × f` values and `m` the 16
/// planes of `plane` values each that `range` and `f` address.
#[target_feature(enable = "avx512f")]
unsafe fn gradient_transform(
    dz: *const f32,
    range: Tiles,
    f: usize,
    out_h: usize,
    out_w: usize,
    m: *mut f32,
    plane: usize,
) {
    unsafe {
        let zero = _mm512_setzero_ps();
        for t in 0..range.count {
            let (ty, tx, rows, cols) = range.extent(t, out_h, out_w);
            for f0 in (0..f).step_by(16) {
                let k = lanes(f0, f);
                let mut d = [[zero; 2]; 2];
                for (a, da) in d.iter_mut().enumerate().take(rows) {
                    for (b, dab) in da.iter_mut().enumerate().take(cols) {
                        let pix = (2 * ty + a) * out_w + 2 * tx + b;
                        *dab = _mm512_maskz_loadu_ps(k, dz.add(pix * f + f0));
                    }
                }
                // Rows: A dY (4 × 2), then columns: (A dY) Aᵀ (4 × 4).
                let r = [
                    d[0],
                    [_mm512_add_ps(d[0][0], d[1][0]), _mm512_add_ps(d[0][1], d[1][1])],
                    [_mm512_sub_ps(d[0][0], d[1][0]), _mm512_sub_ps(d[0][1], d[1][1])],
                    [_mm512_sub_ps(zero, d[1][0]), _mm512_sub_ps(zero, d[1][1])],
                ];
                for (i, ri) in r.iter().enumerate() {
                    let vals =
                        [ri[0], _mm512_add_ps(ri[0], ri[1]), _mm512_sub_ps(ri[0], ri[1]), _mm512_sub_ps(zero, ri[1])];
                    for (j, val) in vals.into_iter().enumerate() {
                        _mm512_mask_storeu_ps(m.add((i * 4 + j) * plane + t * f + f0), k, val);
                    }
                }
            }
        }
    }
}

/// Mask of the `16`-channel vector at `c0` of `c` channels.
#[inline(always)]
fn lanes(c0: usize, c: usize) -> __mmask16 {
    let k = (c - c0).min(16);
    if k == 16 {
        0xFFFF
    } else {
        (1u16 << k) - 1
    }
}

/// `v[ξ][tile][c] = (Bᵀ d B)[ξ]` for every 4×4 input tile `d` at rows/columns `2·ty`, `2·tx`.
///
/// # Safety
/// AVX-512F must be available; `x` must cover every 4×4 tile of `range` (rows `rs` values
/// apart, `c` channels) and `v` the 16 planes of `plane` values each.
#[target_feature(enable = "avx512f")]
unsafe fn input_transform(x: *const f32, rs: usize, c: usize, range: Tiles, v: *mut f32, plane: usize) {
    unsafe {
        for t in 0..range.count {
            let (ty, tx) = range.position(t);
            let base = x.add(2 * ty * rs + 2 * tx * c);
            for c0 in (0..c).step_by(16) {
                let k = lanes(c0, c);
                let mut d = [[_mm512_setzero_ps(); 4]; 4];
                for (i, di) in d.iter_mut().enumerate() {
                    for (j, dij) in di.iter_mut().enumerate() {
                        *dij = _mm512_maskz_loadu_ps(k, base.add(i * rs + j * c + c0));
                    }
                }
                let mut r = [[_mm512_setzero_ps(); 4]; 4];
                for j in 0..4 {
                    r[0][j] = _mm512_sub_ps(d[0][j], d[2][j]);
                    r[1][j] = _mm512_add_ps(d[1][j], d[2][j]);
                    r[2][j] = _mm512_sub_ps(d[2][j], d[1][j]);
                    r[3][j] = _mm512_sub_ps(d[1][j], d[3][j]);
                }
                for (i, ri) in r.iter().enumerate() {
                    let vals = [
                        _mm512_sub_ps(ri[0], ri[2]),
                        _mm512_add_ps(ri[1], ri[2]),
                        _mm512_sub_ps(ri[2], ri[1]),
                        _mm512_sub_ps(ri[1], ri[3]),
                    ];
                    for (j, val) in vals.into_iter().enumerate() {
                        _mm512_mask_storeu_ps(v.add((i * 4 + j) * plane + t * c + c0), k, val);
                    }
                }
            }
        }
    }
}

/// `y = act(bias + Aᵀ m A)` for every tile, keeping the outputs inside `out_h × out_w`.
///
/// # Safety
/// AVX-512F must be available; `m` must hold the 16 planes that `range` and `f` address, `y`
/// `out_h × out_w × f` values, and `bias` (when not null) `f` values.
#[target_feature(enable = "avx512f")]
unsafe fn output_transform(
    m: *const f32,
    plane: usize,
    range: Tiles,
    f: usize,
    out_h: usize,
    out_w: usize,
    bias: *const f32,
    relu: bool,
    y: *mut f32,
) {
    unsafe {
        let zero = _mm512_setzero_ps();
        for t in 0..range.count {
            let (ty, tx, rows, cols) = range.extent(t, out_h, out_w);
            for f0 in (0..f).step_by(16) {
                let k = lanes(f0, f);
                let mut q = [[zero; 4]; 4];
                for (i, qi) in q.iter_mut().enumerate() {
                    for (j, qij) in qi.iter_mut().enumerate() {
                        *qij = _mm512_maskz_loadu_ps(k, m.add((i * 4 + j) * plane + t * f + f0));
                    }
                }
                let mut r = [[zero; 4]; 2];
                for j in 0..4 {
                    r[0][j] = _mm512_add_ps(_mm512_add_ps(q[0][j], q[1][j]), q[2][j]);
                    r[1][j] = _mm512_sub_ps(_mm512_sub_ps(q[1][j], q[2][j]), q[3][j]);
                }
                let b = if bias.is_null() { zero } else { _mm512_maskz_loadu_ps(k, bias.add(f0)) };
                for (a, ra) in r.iter().enumerate().take(rows) {
                    let vals = [
                        _mm512_add_ps(_mm512_add_ps(ra[0], ra[1]), ra[2]),
                        _mm512_sub_ps(_mm512_sub_ps(ra[1], ra[2]), ra[3]),
                    ];
                    for (bx, val) in vals.into_iter().enumerate().take(cols) {
                        let mut o = _mm512_add_ps(val, b);
                        if relu {
                            o = _mm512_max_ps(o, zero);
                        }
                        let pix = (2 * ty + a) * out_w + 2 * tx + bx;
                        _mm512_mask_storeu_ps(y.add(pix * f + f0), k, o);
                    }
                }
            }
        }
    }
}
