//! The engine's hot loops as plain functions over slices, each with a naive reference twin
//! that the tests compare it with.

pub mod activation;
#[cfg(target_arch = "x86_64")]
pub mod avx512;
pub mod conv;
pub mod depthwise;
pub mod dilated;
pub mod direct;
pub mod gemm;
#[cfg(target_arch = "x86_64")]
pub mod implicit;
#[cfg(not(target_arch = "x86_64"))]
#[path = "implicit_none.rs"]
pub mod implicit;
pub mod pool;
pub mod simd;
pub mod tiling;
#[cfg(target_arch = "x86_64")]
pub mod winograd;

#[cfg(test)]
pub(crate) mod testing {
    //! Helpers shared by the kernel and layer tests.
    use crate::rng::Rng;

    /// `n` uniform values in [-1, 1).
    pub fn random_vec(rng: &mut Rng, n: usize) -> Vec<f32> {
        (0..n).map(|_| rng.uniform_range(-1.0, 1.0)).collect()
    }

    /// Whether a test of the AVX-512 kernels can run here. When it cannot (a processor without
    /// AVX-512, or `CONVNET_SIMD` capping below it), the skip is said loudly on stderr; and
    /// where `CONVNET_REQUIRE_AVX512` is set (CI, at the uncapped level), it fails instead, so
    /// the kernels are never silently left untested.
    pub fn avx512_or_skip(test: &str) -> bool {
        if super::simd::level() == super::simd::Level::Avx512 {
            return true;
        }
        let why =
            format!("{test}: SKIPPED, the AVX-512 kernels are not in use here (level {:?})", super::simd::level());
        assert!(std::env::var_os("CONVNET_REQUIRE_AVX512").is_none(), "{why}, but CONVNET_REQUIRE_AVX512 is set");
        eprintln!("{why}");
        false
    }

    /// Asserts `|a − b| <= tol·(1 + |b|)` element-wise, naming the first failure.
    pub fn assert_close(a: &[f32], b: &[f32], tol: f32, what: &str) {
        assert_eq!(a.len(), b.len(), "{what}: lengths differ");
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!((x - y).abs() <= tol * (1.0 + y.abs()), "{what}: element {i}: {x} vs {y}");
        }
    }
}
