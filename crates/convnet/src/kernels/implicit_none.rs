//! Stand-in for the AVX-512 implicit-GEMM kernels on processors other than x86-64: never
//! available, so the layers use their portable paths.

use super::conv::Window;

/// Always false here.
pub fn available() -> bool {
    false
}

/// Reusable buffers (unused here).
#[derive(Default, Clone, Debug)]
pub struct ImplicitScratch;

/// Kernel layouts of the implicit kernels (none here).
#[derive(Default, Clone, Debug)]
pub struct PreparedKernel;

impl PreparedKernel {
    /// Nothing to prepare here.
    pub fn for_forward(&mut self, _w: &Window, _kernel: &[f32], _filters: usize) {}

    /// Nothing to prepare here.
    pub fn for_backward(&mut self, _w: &Window, _kernel: &[f32], _filters: usize) {}
}

/// Length of the weight-gradient accumulator: the kernel's.
pub fn grad_len(w: &Window, filters: usize) -> usize {
    w.patch_len() * filters
}

/// Copies the accumulated gradient into `dkernel`.
pub fn finish_weight_grad(_w: &Window, _filters: usize, acc: &[f32], dkernel: &mut [f32]) {
    dkernel.copy_from_slice(acc);
}

/// Not available on this processor.
pub fn forward(
    _w: &Window,
    _x: &[f32],
    _n: usize,
    _kernel: &[f32],
    _prepared: &PreparedKernel,
    _bias: Option<&[f32]>,
    _filters: usize,
    _relu: bool,
    _y: &mut [f32],
    _s: &mut ImplicitScratch,
) {
    unreachable!("implicit kernels are not available")
}

/// Not available on this processor.
pub fn weight_grad(
    _w: &Window,
    _x: &[f32],
    _n: usize,
    _dz: &[f32],
    _f: usize,
    _dk: &mut [f32],
    _s: &mut ImplicitScratch,
) {
    unreachable!("implicit kernels are not available")
}

/// Not available on this processor.
pub fn backward_data(
    _w: &Window,
    _dz: &mut [f32],
    _n: usize,
    _prepared: &PreparedKernel,
    _f: usize,
    _dx: &mut [f32],
    _s: &mut ImplicitScratch,
    _prep: &mut dyn FnMut(usize, &mut [f32]),
) {
    unreachable!("implicit kernels are not available")
}
