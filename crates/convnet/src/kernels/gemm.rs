//! Matrix products for the engine, with a split over the worker threads for large products and
//! the naive reference the tests compare them with.
//!
//! On AVX-512 the products run on the engine's own micro-kernels ([`super::avx512`]), blocked
//! along the reduction so each block of the right operand stays in L1, with no allocation
//! after the first call on a thread (transposes use a per-thread buffer). Elsewhere they use
//! the `matrixmultiply` crate.
//!
//! All matrices are row-major. `op(A)` is `m × k`: A is stored `m × k`, or `k × m` when
//! `a_trans` is set. `op(B)` is `k × n`: B is stored `k × n`, or `n × k` when `b_trans` is set.
//! `C = op(A)·op(B)` (or `C += …` with `accumulate`).

use crate::parallel::{self, SharedMut};

/// The operands' layouts of one product.
#[derive(Clone, Copy, Debug)]
pub struct GemmShape {
    /// Rows of `op(A)` and of C.
    pub m: usize,
    /// Inner dimension.
    pub k: usize,
    /// Columns of `op(B)` and of C.
    pub n: usize,
    /// A is stored transposed (`k × m`).
    pub a_trans: bool,
    /// B is stored transposed (`n × k`).
    pub b_trans: bool,
}

impl GemmShape {
    /// `C[m×n] = A[m×k]·B[k×n]`, nothing transposed.
    pub fn nn(m: usize, k: usize, n: usize) -> Self {
        GemmShape { m, k, n, a_trans: false, b_trans: false }
    }

    /// `C[m×n] = Aᵀ·B` with A stored `k × m`.
    pub fn tn(m: usize, k: usize, n: usize) -> Self {
        GemmShape { a_trans: true, ..Self::nn(m, k, n) }
    }

    /// `C[m×n] = A·Bᵀ` with B stored `n × k`.
    pub fn nt(m: usize, k: usize, n: usize) -> Self {
        GemmShape { b_trans: true, ..Self::nn(m, k, n) }
    }

    /// Row and column strides of A as stored.
    fn a_strides(&self) -> (isize, isize) {
        if self.a_trans {
            (1, self.m as isize)
        } else {
            (self.k as isize, 1)
        }
    }

    /// Row and column strides of B as stored.
    fn b_strides(&self) -> (isize, isize) {
        if self.b_trans {
            (1, self.k as isize)
        } else {
            (self.n as isize, 1)
        }
    }

    fn check(&self, a: &[f32], b: &[f32], c: &[f32]) {
        assert!(a.len() >= self.m * self.k, "gemm: A is too short");
        assert!(b.len() >= self.k * self.n, "gemm: B is too short");
        assert!(c.len() >= self.m * self.n, "gemm: C is too short");
    }
}

/// `C = op(A)·op(B)`, or `C += op(A)·op(B)` when `accumulate`; single-threaded.
pub fn gemm(s: GemmShape, a: &[f32], b: &[f32], c: &mut [f32], accumulate: bool) {
    s.check(a, b, c);
    if s.m == 0 || s.n == 0 {
        return;
    }
    if s.k == 0 {
        if !accumulate {
            c[..s.m * s.n].fill(0.0);
        }
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if super::implicit::available() {
        own::gemm(s, a, b, c, accumulate);
        return;
    }
    let (rsa, csa) = s.a_strides();
    let (rsb, csb) = s.b_strides();
    let beta = if accumulate { 1.0 } else { 0.0 };
    // SAFETY: the lengths were checked above against the strides' extents, and C is a unique
    // borrow that does not alias A or B.
    unsafe {
        matrixmultiply::sgemm(
            s.m,
            s.k,
            s.n,
            1.0,
            a.as_ptr(),
            rsa,
            csa,
            b.as_ptr(),
            rsb,
            csb,
            beta,
            c.as_mut_ptr(),
            s.n as isize,
            1,
        );
    }
}

/// Like [`gemm`], but splits large products over the worker threads by rows or columns of C.
pub fn par_gemm(s: GemmShape, a: &[f32], b: &[f32], c: &mut [f32], accumulate: bool) {
    s.check(a, b, c);
    let workers = parallel::workers();
    let work = s.m * s.n * s.k;
    if workers < 2 || work < (1 << 18) || (s.m < 2 && s.n < 2) {
        gemm(s, a, b, c, accumulate);
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if super::implicit::available() && s.k > 0 {
        own::par_gemm(s, a, b, c, accumulate, workers);
        return;
    }
    let split_rows = s.m >= s.n;
    let total = if split_rows { s.m } else { s.n };
    let parts = workers.min(total);
    let shared = SharedMut::new(c);
    parallel::run(parts, |p| {
        let lo = total * p / parts;
        let hi = total * (p + 1) / parts;
        if lo == hi {
            return;
        }
        let (rsa, csa) = s.a_strides();
        let (rsb, csb) = s.b_strides();
        let beta = if accumulate { 1.0 } else { 0.0 };
        // SAFETY: each part writes a disjoint block of C (rows lo..hi, or columns lo..hi) and
        // reads A and B only; offsets stay inside the checked lengths.
        unsafe {
            let cp = shared.ptr();
            if split_rows {
                matrixmultiply::sgemm(
                    hi - lo,
                    s.k,
                    s.n,
                    1.0,
                    a.as_ptr().offset(lo as isize * rsa),
                    rsa,
                    csa,
                    b.as_ptr(),
                    rsb,
                    csb,
                    beta,
                    cp.add(lo * s.n),
                    s.n as isize,
                    1,
                );
            } else {
                matrixmultiply::sgemm(
                    s.m,
                    s.k,
                    hi - lo,
                    1.0,
                    a.as_ptr(),
                    rsa,
                    csa,
                    b.as_ptr().offset(lo as isize * csb),
                    rsb,
                    csb,
                    beta,
                    cp.add(lo),
                    s.n as isize,
                    1,
                );
            }
        }
    });
}

/// Like [`par_gemm`], with the caller's buffers for packing transposed operands (one per
/// part, grown on first use), so repeated products allocate nothing.
pub fn par_gemm_with(s: GemmShape, a: &[f32], b: &[f32], c: &mut [f32], accumulate: bool, scratch: &mut Vec<Vec<f32>>) {
    s.check(a, b, c);
    #[cfg(target_arch = "x86_64")]
    if super::implicit::available() && s.k > 0 {
        let workers = parallel::workers();
        let work = s.m * s.n * s.k;
        let workers = if workers < 2 || work < (1 << 18) { 1 } else { workers };
        own::par_gemm_scratch(s, a, b, c, accumulate, workers, scratch);
        return;
    }
    let _ = scratch;
    par_gemm(s, a, b, c, accumulate);
}

/// Writes the transpose of the `rows × cols` matrix `src` into `dst` (`cols × rows`).
pub fn transpose(src: &[f32], rows: usize, cols: usize, dst: &mut [f32]) {
    assert!(src.len() >= rows * cols && dst.len() >= rows * cols);
    transpose_block(src, rows, cols, cols, dst, rows);
}

/// Transposes the `rows × cols` block at `src` (rows `lds` apart) into `dst` (`cols × rows`,
/// rows `ldd` apart). Tiles of 64 source rows × 16 columns: each destination row segment is
/// written whole and in order (64 floats, 4 cache lines), while the 64 source lines being
/// gathered stay in L1. (Writing 16 destination rows at once instead thrashes L1 when the
/// destination stride is a multiple of 4 KiB, as it is for 9216-wide layers.)
fn transpose_block(src: &[f32], rows: usize, cols: usize, lds: usize, dst: &mut [f32], ldd: usize) {
    const TR: usize = 64;
    const TC: usize = 16;
    for r0 in (0..rows).step_by(TR) {
        let r1 = (r0 + TR).min(rows);
        for c0 in (0..cols).step_by(TC) {
            for c in c0..(c0 + TC).min(cols) {
                let d = &mut dst[c * ldd + r0..c * ldd + r1];
                for (k, v) in d.iter_mut().enumerate() {
                    *v = src[(r0 + k) * lds + c];
                }
            }
        }
    }
}

/// Products on the AVX-512 micro-kernels.
#[cfg(target_arch = "x86_64")]
mod own {
    use super::GemmShape;
    use crate::kernels::avx512;
    use crate::kernels::tiling::{blocks, tiles};
    use crate::parallel::{self, SharedMut};
    use std::cell::RefCell;

    /// Reduction steps per block: a 32-column block of B is 32 KiB, within L1.
    const KB: usize = 256;
    /// Bytes of B kept in L2 across the row tiles of a product.
    const L2_BLOCK: usize = 256 << 10;

    thread_local! {
        /// Per-thread buffer for transposed operands (only `op(B) = Bᵀ` needs it; the engine's
    /// layers transpose their weights themselves so their steps allocate nothing).
        static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    }

    /// A matrix operand: base pointer and row stride.
    #[derive(Clone, Copy)]
    struct Mat {
        p: *const f32,
        ld: usize,
    }

    /// `C[rows, cols] (+)= A[rows, k] · op(B)[k, cols]`: K-blocked forward tiles. Reduction
    /// blocks outermost, then column chunks whose slice of `op(B)` (kb × chunk) stays in L2
    /// while every row tile passes over it (wide products, a Dense layer's input gradient with
    /// 9216 columns, would otherwise stream all of B from memory once per row tile), then row
    /// tiles, then column blocks: a tile of A (up to 14 rows × KB) stays in L1 across the
    /// column blocks. `b_chunk(k0, kb, cc0, cw)` gives the chunk: rows `k0..k0+kb`, columns
    /// `cc0..cc0+cw` of `op(B)`, as a matrix whose element (0, 0) is (k0, cc0).
    ///
    /// # Safety
    /// The operands must cover the described extents; C must not overlap A or B.
    unsafe fn blocked(
        rows: usize,
        k: usize,
        cols: usize,
        a: Mat,
        c: *mut f32,
        ldc: usize,
        accumulate: bool,
        mut b_chunk: impl FnMut(usize, usize, usize, usize) -> Mat,
    ) {
        for k0 in (0..k).step_by(KB) {
            let kb = KB.min(k - k0);
            let chunk = ((L2_BLOCK / (kb * 4)) / 32 * 32).max(32);
            for cc0 in (0..cols).step_by(chunk) {
                let cw = chunk.min(cols - cc0);
                let bm = b_chunk(k0, kb, cc0, cw);
                for (r0, m) in tiles(rows, avx512::max_m(2)) {
                    for blk @ (c0, _, _) in blocks(cw) {
                        // SAFETY: within the extents the caller guarantees; the chunk holds
                        // kb rows of cw columns.
                        unsafe {
                            avx512::product(
                                (m, blk.1, blk.2),
                                a.p.add(r0 * a.ld + k0),
                                a.ld,
                                kb,
                                bm.p.add(c0),
                                bm.ld,
                                c.add(r0 * ldc + cc0 + c0),
                                ldc,
                                accumulate || k0 > 0,
                            )
                        };
                    }
                }
            }
        }
    }

    /// `C[rows, cols] (+)= A[rows, k] · B[k, cols]`: [`blocked`] over B in place.
    ///
    /// # Safety
    /// As for [`blocked`].
    unsafe fn nn(rows: usize, k: usize, cols: usize, a: Mat, b: Mat, c: *mut f32, ldc: usize, accumulate: bool) {
        // SAFETY: the caller's guarantee; chunks are views into B.
        unsafe {
            blocked(rows, k, cols, a, c, ldc, accumulate, |k0, _, cc0, _| Mat { p: b.p.add(k0 * b.ld + cc0), ld: b.ld })
        }
    }

    /// `C[rows, cols] (+)= A · Bᵀ` with B stored `cols × k`: [`blocked`], each L2 chunk of Bᵀ
    /// transposed into `bt` just before the row tiles use it (so the transpose never leaves
    /// the cache and no whole transposed copy is made).
    ///
    /// # Safety
    /// As for [`blocked`].
    unsafe fn nt(
        rows: usize,
        k: usize,
        cols: usize,
        a: Mat,
        b: Mat,
        c: *mut f32,
        ldc: usize,
        accumulate: bool,
        bt: &mut Vec<f32>,
    ) {
        let chunk = |k0, kb, cc0, cw| {
            if bt.len() < kb * cw {
                bt.resize(kb * cw, 0.0);
            }
            // SAFETY: rows cc0..cc0+cw of B, columns k0..k0+kb, are inside B.
            let src = unsafe { std::slice::from_raw_parts(b.p.add(cc0 * b.ld + k0), (cw - 1) * b.ld + kb) };
            super::transpose_block(src, cw, kb, b.ld, bt, cw);
            Mat { p: bt.as_ptr(), ld: cw }
        };
        // SAFETY: the caller's guarantee.
        unsafe { blocked(rows, k, cols, a, c, ldc, accumulate, chunk) }
    }

    /// `C[rows, cols] (+)= Aᵀ · B` with A stored `k × rows` and B `k × cols`: weight-gradient
    /// tiles reducing over k, row tiles outermost so a tile of A stays in L1 across the
    /// column blocks.
    ///
    /// # Safety
    /// As for [`blocked`].
    unsafe fn tn(rows: usize, k: usize, cols: usize, a: Mat, b: Mat, c: *mut f32, ldc: usize, accumulate: bool) {
        for (r0, m) in tiles(rows, avx512::max_m(2)) {
            for (c0, v, mask) in blocks(cols) {
                // SAFETY: within the extents the caller guarantees.
                unsafe {
                    avx512::product_tn(
                        (m, v, mask),
                        a.p.add(r0),
                        a.ld,
                        k,
                        b.p.add(c0),
                        b.ld,
                        c.add(r0 * ldc + c0),
                        ldc,
                        accumulate,
                    )
                };
            }
        }
    }

    /// Runs rows `r.0..r.1` and columns `cl.0..cl.1` of the product `s`.
    ///
    /// # Safety
    /// The slices must cover `s`; parts run concurrently must not overlap in C.
    unsafe fn part(
        s: GemmShape,
        a: &[f32],
        b: &[f32],
        c: *mut f32,
        accumulate: bool,
        r: (usize, usize),
        cl: (usize, usize),
        scratch: Option<&mut Vec<f32>>,
    ) {
        let (rows, cols) = (r.1 - r.0, cl.1 - cl.0);
        if rows == 0 || cols == 0 {
            return;
        }
        // SAFETY: offsets stay inside the operands (checked by the callers).
        unsafe {
            let cp = c.add(r.0 * s.n + cl.0);
            let a_mat = if s.a_trans {
                Mat { p: a.as_ptr().add(r.0), ld: s.m }
            } else {
                Mat { p: a.as_ptr().add(r.0 * s.k), ld: s.k }
            };
            if !s.b_trans {
                let b_mat = Mat { p: b.as_ptr().add(cl.0), ld: s.n };
                if s.a_trans {
                    tn(rows, s.k, cols, a_mat, b_mat, cp, s.n, accumulate)
                } else {
                    nn(rows, s.k, cols, a_mat, b_mat, cp, s.n, accumulate)
                }
                return;
            }
            if !s.a_trans {
                let b_mat = Mat { p: b.as_ptr().add(cl.0 * s.k), ld: s.k };
                return match scratch {
                    Some(bt) => nt(rows, s.k, cols, a_mat, b_mat, cp, s.n, accumulate, bt),
                    None => SCRATCH
                        .with(|buf| nt(rows, s.k, cols, a_mat, b_mat, cp, s.n, accumulate, &mut buf.borrow_mut())),
                };
            }
            SCRATCH.with(|buf| {
                // Bᵀ is needed row-major: transpose the columns this part uses.
                let mut bt = buf.borrow_mut();
                bt.clear();
                bt.resize(s.k * cols, 0.0);
                super::transpose_block(&b[cl.0 * s.k..], cols, s.k, s.k, &mut bt, cols);
                let b_mat = Mat { p: bt.as_ptr(), ld: cols };
                if s.a_trans {
                    tn(rows, s.k, cols, a_mat, b_mat, cp, s.n, accumulate)
                } else {
                    nn(rows, s.k, cols, a_mat, b_mat, cp, s.n, accumulate)
                }
            })
        }
    }

    /// Single-threaded product.
    pub fn gemm(s: GemmShape, a: &[f32], b: &[f32], c: &mut [f32], accumulate: bool) {
        // SAFETY: the caller checked the operands' lengths against `s`.
        unsafe { part(s, a, b, c.as_mut_ptr(), accumulate, (0, s.m), (0, s.n), None) }
    }

    /// Product split over `workers` threads by rows or by columns of C.
    pub fn par_gemm(s: GemmShape, a: &[f32], b: &[f32], c: &mut [f32], accumulate: bool, workers: usize) {
        let split_rows = s.m >= s.n;
        let total = if split_rows { s.m } else { s.n };
        let parts = workers.min(total);
        let shared = SharedMut::new(c);
        parallel::run(parts, |p| {
            let (lo, hi) = (total * p / parts, total * (p + 1) / parts);
            let (r, cl) = if split_rows { ((lo, hi), (0, s.n)) } else { ((0, s.m), (lo, hi)) };
            // SAFETY: the parts write disjoint rows (or columns) of C.
            unsafe { part(s, a, b, shared.ptr(), accumulate, r, cl, None) }
        });
    }

    /// Like [`par_gemm`], each part packing into its own buffer of `scratch`.
    pub fn par_gemm_scratch(
        s: GemmShape,
        a: &[f32],
        b: &[f32],
        c: &mut [f32],
        accumulate: bool,
        workers: usize,
        scratch: &mut Vec<Vec<f32>>,
    ) {
        let split_rows = s.m >= s.n;
        let total = if split_rows { s.m } else { s.n };
        let parts = workers.min(total).max(1);
        if scratch.len() < parts {
            scratch.resize_with(parts, Vec::new);
        }
        let shared = SharedMut::new(c);
        let bufs = SharedMut::new(&mut scratch[..parts]);
        parallel::run(parts, |p| {
            let (lo, hi) = (total * p / parts, total * (p + 1) / parts);
            let (r, cl) = if split_rows { ((lo, hi), (0, s.n)) } else { ((0, s.m), (lo, hi)) };
            // SAFETY: the parts write disjoint rows (or columns) of C, and each uses only its
            // own buffer.
            unsafe {
                let buf = &mut bufs.slice(p..p + 1)[0];
                part(s, a, b, shared.ptr(), accumulate, r, cl, Some(buf))
            }
        });
    }
}

/// Naive reference for [`gemm`]: three loops, f64 accumulation.
pub fn gemm_naive(s: GemmShape, a: &[f32], b: &[f32], c: &mut [f32], accumulate: bool) {
    for i in 0..s.m {
        for j in 0..s.n {
            let mut acc = 0.0f64;
            for p in 0..s.k {
                let av = if s.a_trans { a[p * s.m + i] } else { a[i * s.k + p] };
                let bv = if s.b_trans { b[j * s.k + p] } else { b[p * s.n + j] };
                acc += av as f64 * bv as f64;
            }
            let dst = &mut c[i * s.n + j];
            *dst = if accumulate { *dst + acc as f32 } else { acc as f32 };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::testing::{assert_close, random_vec};
    use crate::rng::Rng;

    #[test]
    fn gemm_matches_naive_for_all_layouts() {
        let mut rng = Rng::new(1);
        for &(m, k, n) in &[(1, 1, 1), (3, 5, 7), (17, 9, 6), (64, 33, 10), (5, 0, 3)] {
            for (at, bt) in [(false, false), (true, false), (false, true), (true, true)] {
                let s = GemmShape { m, k, n, a_trans: at, b_trans: bt };
                let a = random_vec(&mut rng, m * k);
                let b = random_vec(&mut rng, k * n);
                for acc in [false, true] {
                    let init = random_vec(&mut rng, m * n);
                    let mut c1 = init.clone();
                    let mut c2 = init.clone();
                    let mut c3 = init;
                    gemm(s, &a, &b, &mut c1, acc);
                    par_gemm(s, &a, &b, &mut c3, acc);
                    gemm_naive(s, &a, &b, &mut c2, acc);
                    assert_close(&c1, &c2, 1e-4, "gemm");
                    assert_close(&c3, &c2, 1e-4, "par_gemm");
                }
            }
        }
    }

    #[test]
    fn transpose_matches_the_definition() {
        let mut rng = Rng::new(3);
        for &(r, c) in &[(1, 1), (3, 70), (130, 17), (64, 16), (200, 129)] {
            let a = random_vec(&mut rng, r * c);
            let mut t = vec![0.0; r * c];
            transpose(&a, r, c, &mut t);
            for i in 0..r {
                for j in 0..c {
                    assert_eq!(t[j * r + i], a[i * c + j], "{r}x{c} at {i},{j}");
                }
            }
        }
    }

    #[test]
    fn par_gemm_splits_large_products_correctly() {
        let mut rng = Rng::new(2);
        // The last shape is wide enough to span several L2 column chunks, with a remainder.
        for &(m, k, n) in &[(300, 70, 20), (20, 70, 300), (129, 257, 65), (20, 300, 1100)] {
            for (at, bt) in [(false, false), (true, false), (false, true)] {
                let s = GemmShape { m, k, n, a_trans: at, b_trans: bt };
                let a = random_vec(&mut rng, m * k);
                let b = random_vec(&mut rng, k * n);
                let mut c1 = vec![0.0; m * n];
                let mut c2 = vec![0.0; m * n];
                par_gemm(s, &a, &b, &mut c1, false);
                gemm_naive(s, &a, &b, &mut c2, false);
                assert_close(&c1, &c2, 1e-3, "par_gemm large");
                let mut scratch = Vec::new();
                let mut c3 = vec![1.0; m * n];
                par_gemm_with(s, &a, &b, &mut c3, false, &mut scratch);
                assert_close(&c3, &c2, 1e-3, "par_gemm_with");
            }
        }
    }
}
