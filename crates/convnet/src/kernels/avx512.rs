//! AVX-512 micro-kernels of the implicit-GEMM convolution (see [`super::implicit`]).
//!
//! Both kernels keep an `M × 16V` block of results in `M·V` zmm registers (M ≤ 14 for V = 2,
//! M ≤ 24 for V = 1, so accumulators plus operands fit the 32 registers) and stream the
//! reduction through them: one or two vector loads of weights (or output gradients) and `M`
//! broadcasts of input values per step. `M` and `V` are compile-time constants so the loops
//! unroll into straight-line FMAs; [`fwd`] and [`wgrad`] pick the instance at run time.
//!
//! Every function here requires AVX-512F; callers check [`super::simd::level`] first.

use std::arch::x86_64::*;

/// Largest tile height for `V` vectors.
pub const fn max_m(v: usize) -> usize {
    if v == 1 {
        24
    } else {
        14
    }
}

/// Arguments of a forward tile: `y[m, f0..f0+16V] = act(bias + Σ_{ky, j} x[m·sx + ky·rs + j] ·
/// w[(ky·kwc + j)·ws + …])`.
#[derive(Clone, Copy)]
pub struct FwdArgs {
    /// First input value of pixel 0 at tap (0, 0).
    pub x: *const f32,
    /// Input stride between the tile's pixels.
    pub sx: usize,
    /// Input stride between kernel rows.
    pub rs: usize,
    /// Kernel rows.
    pub kh: usize,
    /// Contiguous input values per kernel row (`kw · channels`).
    pub kwc: usize,
    /// First weight of this filter block.
    pub w: *const f32,
    /// Weight stride between reduction steps (the filter count).
    pub ws: usize,
    /// Output of pixel 0, first filter of the block.
    pub y: *mut f32,
    /// Output stride between pixels.
    pub ys: usize,
    /// Bias of the block's first filter, or null.
    pub bias: *const f32,
    /// Add to the values already in `y` (then `bias` is ignored).
    pub accumulate: bool,
    /// Lanes of the last vector that are real filters.
    pub mask: u16,
    /// Apply ReLU before storing.
    pub relu: bool,
}

/// The forward tile for compile-time `M` pixels and `V` vectors (see [`fwd`]).
///
/// # Safety
/// As for [`fwd`].
#[target_feature(enable = "avx512f")]
unsafe fn fwd_tile<const M: usize, const V: usize>(a: &FwdArgs) {
    unsafe {
        let full: __mmask16 = 0xFFFF;
        let lane_mask = |v: usize| if v + 1 == V { a.mask } else { full };
        let mut acc = [[_mm512_setzero_ps(); V]; M];
        if a.accumulate {
            for m in 0..M {
                for v in 0..V {
                    acc[m][v] = _mm512_maskz_loadu_ps(lane_mask(v), a.y.add(m * a.ys + 16 * v));
                }
            }
        } else if !a.bias.is_null() {
            for v in 0..V {
                let b = _mm512_maskz_loadu_ps(lane_mask(v), a.bias.add(16 * v));
                for m in 0..M {
                    acc[m][v] = b;
                }
            }
        }
        for ky in 0..a.kh {
            let xr = a.x.add(ky * a.rs);
            let mut wr = a.w.add(ky * a.kwc * a.ws);
            for j in 0..a.kwc {
                let mut wv = [_mm512_setzero_ps(); V];
                for v in 0..V {
                    wv[v] = _mm512_maskz_loadu_ps(lane_mask(v), wr.add(16 * v));
                }
                for m in 0..M {
                    let xv = _mm512_set1_ps(*xr.add(m * a.sx + j));
                    for v in 0..V {
                        acc[m][v] = _mm512_fmadd_ps(xv, wv[v], acc[m][v]);
                    }
                }
                wr = wr.add(a.ws);
            }
        }
        let zero = _mm512_setzero_ps();
        for m in 0..M {
            for v in 0..V {
                let r = if a.relu { _mm512_max_ps(acc[m][v], zero) } else { acc[m][v] };
                _mm512_mask_storeu_ps(a.y.add(m * a.ys + 16 * v), lane_mask(v), r);
            }
        }
    }
}

/// Arguments of a weight-gradient tile: `dw[m, f0..] += Σ_p x(p)[m] · dz(p)[f0..]` over the
/// pixels `p` of `n` samples × `oh` rows × `ow` columns.
#[derive(Clone, Copy)]
pub struct WgradArgs {
    /// Input value of tap `m = 0` for pixel (sample 0, row 0, column 0).
    pub x: *const f32,
    /// Input stride between samples.
    pub xs_sample: usize,
    /// Input stride between output rows.
    pub xs_row: usize,
    /// Input stride between output columns.
    pub xs_col: usize,
    /// Output gradient of pixel 0, first filter of the block.
    pub dz: *const f32,
    /// Output-gradient stride between pixels (the filter count).
    pub dzs: usize,
    /// Samples, output rows, output columns.
    pub n: usize,
    /// Output rows.
    pub oh: usize,
    /// Output columns.
    pub ow: usize,
    /// Gradient of tap 0, first filter of the block (accumulated into).
    pub dw: *mut f32,
    /// Gradient stride between taps (the filter count).
    pub dws: usize,
    /// Add to the values in `dw` (else overwrite them).
    pub accumulate: bool,
    /// Lanes of the last vector that are real filters.
    pub mask: u16,
}

/// The weight-gradient tile for compile-time `M` taps and `V` vectors (see [`wgrad`]).
///
/// # Safety
/// As for [`fwd`].
#[target_feature(enable = "avx512f")]
unsafe fn wgrad_tile<const M: usize, const V: usize>(a: &WgradArgs) {
    unsafe {
        let full: __mmask16 = 0xFFFF;
        let lane_mask = |v: usize| if v + 1 == V { a.mask } else { full };
        let mut acc = [[_mm512_setzero_ps(); V]; M];
        for s in 0..a.n {
            for oy in 0..a.oh {
                let mut xp = a.x.add(s * a.xs_sample + oy * a.xs_row);
                let mut dp = a.dz.add(((s * a.oh + oy) * a.ow) * a.dzs);
                for _ in 0..a.ow {
                    let mut dv = [_mm512_setzero_ps(); V];
                    for v in 0..V {
                        dv[v] = _mm512_maskz_loadu_ps(lane_mask(v), dp.add(16 * v));
                    }
                    for m in 0..M {
                        let xv = _mm512_set1_ps(*xp.add(m));
                        for v in 0..V {
                            acc[m][v] = _mm512_fmadd_ps(xv, dv[v], acc[m][v]);
                        }
                    }
                    xp = xp.add(a.xs_col);
                    dp = dp.add(a.dzs);
                }
            }
        }
        for m in 0..M {
            for v in 0..V {
                let p = a.dw.add(m * a.dws + 16 * v);
                let r = if a.accumulate {
                    _mm512_add_ps(_mm512_maskz_loadu_ps(lane_mask(v), p), acc[m][v])
                } else {
                    acc[m][v]
                };
                _mm512_mask_storeu_ps(p, lane_mask(v), r);
            }
        }
    }
}

macro_rules! dispatch {
    ($kernel:ident, $m:expr, $v:expr, $args:expr; $($mm:literal)*; $($m2:literal)*) => {
        match ($v, $m) {
            $((1, $mm) => $kernel::<$mm, 1>($args),)*
            $((2, $m2) => $kernel::<$m2, 2>($args),)*
            _ => unreachable!("tile {}x{} out of range", $m, $v),
        }
    };
}

/// Runs a forward tile of `m` pixels and `v` vectors (1 ≤ m ≤ [`max_m`]`(v)`, v ∈ {1, 2}).
///
/// # Safety
/// AVX-512F must be available, and every address the arguments describe must be valid.
pub unsafe fn fwd(m: usize, v: usize, a: &FwdArgs) {
    unsafe {
        dispatch!(fwd_tile, m, v, a;
            1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24;
            1 2 3 4 5 6 7 8 9 10 11 12 13 14)
    }
}

/// Runs a weight-gradient tile of `m` taps and `v` vectors.
///
/// # Safety
/// As for [`fwd`].
pub unsafe fn wgrad(m: usize, v: usize, a: &WgradArgs) {
    unsafe {
        dispatch!(wgrad_tile, m, v, a;
            1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24;
            1 2 3 4 5 6 7 8 9 10 11 12 13 14)
    }
}

/// A plain matrix-product tile on [`fwd`]: `C[m × 16v] (+)= A[m × k] · B[k × 16v]`, rows of A,
/// B and C `lda`, `ldb` and `ldc` values apart; `mask` selects the last vector's real columns.
///
/// # Safety
/// As for [`fwd`]: AVX-512F, and the described extents valid (C not overlapping A or B).
#[allow(clippy::too_many_arguments)]
pub unsafe fn product(
    (m, v, mask): (usize, usize, u16),
    a: *const f32,
    lda: usize,
    k: usize,
    b: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
) {
    let args = FwdArgs {
        x: a,
        sx: lda,
        rs: 0,
        kh: 1,
        kwc: k,
        w: b,
        ws: ldb,
        y: c,
        ys: ldc,
        bias: std::ptr::null(),
        accumulate,
        mask,
        relu: false,
    };
    // SAFETY: the caller's guarantee.
    unsafe { fwd(m, v, &args) }
}

/// A transposed-operand product tile on [`wgrad`]: `C[m × 16v] (+)= Σ_{i<k} A[i, 0..m]ᵀ ·
/// B[i, ..]`, rows of A (m values each used), B and C `lda`, `ldb` and `ldc` values apart.
///
/// # Safety
/// As for [`product`].
#[allow(clippy::too_many_arguments)]
pub unsafe fn product_tn(
    (m, v, mask): (usize, usize, u16),
    a: *const f32,
    lda: usize,
    k: usize,
    b: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
) {
    let args = WgradArgs {
        x: a,
        xs_sample: 0,
        xs_row: 0,
        xs_col: lda,
        dz: b,
        dzs: ldb,
        n: 1,
        oh: 1,
        ow: k,
        dw: c,
        dws: ldc,
        accumulate,
        mask,
    };
    // SAFETY: the caller's guarantee.
    unsafe { wgrad(m, v, &args) }
}
