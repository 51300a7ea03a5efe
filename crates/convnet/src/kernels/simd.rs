//! Run-time SIMD dispatch: a kernel written as plain loops is compiled three times — for
//! AVX-512, for AVX2 + FMA and for the baseline — and the best version the processor supports
//! is chosen when it runs. The loops are written so the compiler vectorises them.
//!
//! `CONVNET_SIMD=baseline` (or `avx2`) caps the level, to test the other versions.

use std::sync::OnceLock;

/// Instruction-set levels the kernels are compiled for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Whatever the build target guarantees (SSE2 on x86-64).
    Baseline,
    /// AVX2 with FMA (x86-64-v3).
    Avx2,
    /// AVX-512 F/BW/VL/DQ (x86-64-v4).
    Avx512,
}

/// The level in use: the best the processor has, capped by `CONVNET_SIMD`.
pub fn level() -> Level {
    static LEVEL: OnceLock<Level> = OnceLock::new();
    *LEVEL.get_or_init(|| {
        let cap = match std::env::var("CONVNET_SIMD").ok().as_deref() {
            Some("baseline") | Some("none") => Level::Baseline,
            Some("avx2") => Level::Avx2,
            _ => Level::Avx512,
        };
        detect().min(cap)
    })
}

#[cfg(target_arch = "x86_64")]
fn detect() -> Level {
    if is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512bw")
        && is_x86_feature_detected!("avx512vl")
        && is_x86_feature_detected!("avx512dq")
        && is_x86_feature_detected!("avx2")
        && is_x86_feature_detected!("fma")
    {
        Level::Avx512
    } else if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        Level::Avx2
    } else {
        Level::Baseline
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn detect() -> Level {
    Level::Baseline
}

/// Multiply-add as the instruction set allows: fused where FMA exists, else `a·b + c`.
pub trait Madd {
    /// `a·b + c`.
    fn madd(a: f32, b: f32, c: f32) -> f32;
}

/// [`Madd`] with a fused instruction (only used where FMA is enabled).
pub struct Fused;

/// [`Madd`] as a separate multiply and add (baseline processors).
pub struct Unfused;

impl Madd for Fused {
    #[inline(always)]
    fn madd(a: f32, b: f32, c: f32) -> f32 {
        a.mul_add(b, c)
    }
}

impl Madd for Unfused {
    #[inline(always)]
    fn madd(a: f32, b: f32, c: f32) -> f32 {
        a * b + c
    }
}

/// Defines a function whose body is compiled for each [`Level`] and dispatched at run time.
/// Arguments must be plain (no generics); the body is an ordinary block, in which `M::madd`
/// is the multiply-add of the level being compiled.
macro_rules! multiversion {
    ($(#[$m:meta])* $vis:vis fn $name:ident($($a:ident: $t:ty),* $(,)?) $(-> $r:ty)? $body:block) => {
        $(#[$m])*
        $vis fn $name($($a: $t),*) $(-> $r)? {
            #[inline(always)]
            #[allow(clippy::extra_unused_type_parameters)]
            fn body<M: $crate::kernels::simd::Madd>($($a: $t),*) $(-> $r)? {
                $body
            }
            #[cfg(target_arch = "x86_64")]
            {
                /// The body compiled for AVX-512.
                ///
                /// # Safety
                /// The processor must have the enabled features (the caller checks the level).
                #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma")]
                unsafe fn v4($($a: $t),*) $(-> $r)? { body::<$crate::kernels::simd::Fused>($($a),*) }
                /// The body compiled for AVX2 and FMA.
                ///
                /// # Safety
                /// The processor must have the enabled features (the caller checks the level).
                #[target_feature(enable = "avx2,fma")]
                unsafe fn v3($($a: $t),*) $(-> $r)? { body::<$crate::kernels::simd::Fused>($($a),*) }
                match $crate::kernels::simd::level() {
                    // SAFETY: the level was detected on this processor.
                    $crate::kernels::simd::Level::Avx512 => return unsafe { v4($($a),*) },
                    // SAFETY: as above.
                    $crate::kernels::simd::Level::Avx2 => return unsafe { v3($($a),*) },
                    $crate::kernels::simd::Level::Baseline => {}
                }
            }
            body::<$crate::kernels::simd::Unfused>($($a),*)
        }
    };
}

pub(crate) use multiversion;

/// Copies `src` into `dst` (same length) in fixed-size blocks, which compile to vector moves;
/// faster than `copy_from_slice`'s library call for the short rows of im2col.
#[inline(always)]
pub fn copy_short(dst: &mut [f32], src: &[f32]) {
    let n = dst.len().min(src.len());
    let (dst, src) = (&mut dst[..n], &src[..n]);
    if n >= 64 {
        dst.copy_from_slice(src);
        return;
    }
    let mut i = 0;
    while i + 8 <= n {
        let d: &mut [f32; 8] = (&mut dst[i..i + 8]).try_into().expect("8");
        let s: &[f32; 8] = (&src[i..i + 8]).try_into().expect("8");
        *d = *s;
        i += 8;
    }
    while i < n {
        dst[i] = src[i];
        i += 1;
    }
}

multiversion! {
    /// Adds every row of `data` (rows `acc.len()` wide) into `acc` (column sums, as for a
    /// bias gradient).
    pub fn add_rows(acc: &mut [f32], data: &[f32]) {
        let w = acc.len();
        if w == 0 {
            return;
        }
        for row in data.chunks_exact(w) {
            for (a, v) in acc.iter_mut().zip(row) {
                *a += v;
            }
        }
    }
}

/// Adds `src` into `dst` element-wise.
#[inline(always)]
pub fn add_into(dst: &mut [f32], src: &[f32]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d += s;
    }
}
