//! Element-wise activation passes over flat buffers. Forward passes work in place on the
//! layer's output; backward passes turn `dy` (gradient w.r.t. the output `y`) into the
//! gradient w.r.t. the pre-activation, in place, using only `y`. Loops are branch-free and
//! compiled for each SIMD level.

use super::simd::multiversion;

multiversion! {
    /// `y = max(y, 0)` in place.
    pub fn relu_forward(y: &mut [f32]) {
        y.iter_mut().for_each(|v| *v = if *v > 0.0 { *v } else { 0.0 });
    }
}

multiversion! {
    /// `dy *= (y > 0)`.
    pub fn relu_backward(y: &[f32], dy: &mut [f32]) {
        for (d, &v) in dy.iter_mut().zip(y) {
            *d = if v > 0.0 { *d } else { 0.0 };
        }
    }
}

/// Logistic sigmoid in place, computed without overflow for large |x|.
pub fn sigmoid_forward(y: &mut [f32]) {
    for v in y.iter_mut() {
        let x = *v;
        *v = if x >= 0.0 {
            1.0 / (1.0 + (-x).exp())
        } else {
            let e = x.exp();
            e / (1.0 + e)
        };
    }
}

multiversion! {
    /// `dy *= y·(1 − y)`.
    pub fn sigmoid_backward(y: &[f32], dy: &mut [f32]) {
        for (d, &v) in dy.iter_mut().zip(y) {
            *d *= v * (1.0 - v);
        }
    }
}

/// `tanh` in place.
pub fn tanh_forward(y: &mut [f32]) {
    y.iter_mut().for_each(|v| *v = v.tanh());
}

multiversion! {
    /// `dy *= 1 − y²`.
    pub fn tanh_backward(y: &[f32], dy: &mut [f32]) {
        for (d, &v) in dy.iter_mut().zip(y) {
            *d *= 1.0 - v * v;
        }
    }
}

/// Softmax over each row of `width` values, in place, shifted by the row maximum for stability.
pub fn softmax_forward(y: &mut [f32], width: usize) {
    for row in y.chunks_exact_mut(width.max(1)) {
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0.0f32;
        for v in row.iter_mut() {
            *v = (*v - max).exp();
            sum += *v;
        }
        let inv = 1.0 / sum;
        row.iter_mut().for_each(|v| *v *= inv);
    }
}

/// Softmax Jacobian-vector product per row: `dz_i = y_i·(dy_i − Σ_j dy_j·y_j)`.
pub fn softmax_backward(y: &[f32], dy: &mut [f32], width: usize) {
    let width = width.max(1);
    for (yr, dr) in y.chunks_exact(width).zip(dy.chunks_exact_mut(width)) {
        let dot: f32 = yr.iter().zip(dr.iter()).map(|(a, b)| a * b).sum();
        for (d, &v) in dr.iter_mut().zip(yr) {
            *d = v * (*d - dot);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_rows_sum_to_one_and_survive_large_inputs() {
        let mut y = vec![1000.0, 1001.0, 999.0, -5.0, 0.0, 5.0];
        softmax_forward(&mut y, 3);
        for row in y.chunks(3) {
            let s: f32 = row.iter().sum();
            assert!((s - 1.0).abs() < 1e-6);
            assert!(row.iter().all(|v| v.is_finite()));
        }
        assert!(y[1] > y[0] && y[0] > y[2]);
    }

    #[test]
    fn sigmoid_is_stable_and_symmetric() {
        let mut y = vec![-100.0, -1.0, 0.0, 1.0, 100.0];
        sigmoid_forward(&mut y);
        assert_eq!(y[2], 0.5);
        assert!((y[1] + y[3] - 1.0).abs() < 1e-6);
        assert!(y[0] >= 0.0 && y[0] < 1e-30 && y[4] == 1.0);
    }
}
