//! Activation passes over flat buffers. Forward passes work in place on the layer's output;
//! backward passes turn `dy` (gradient w.r.t. the output `y`) into the gradient w.r.t. the
//! pre-activation `x`, in place, from `y` where the derivative is a function of it and from
//! `x` otherwise. ReLU, sigmoid, tanh and softmax have their own loops (ReLU's branch-free and
//! compiled for each SIMD level); the other functions are scalar formulas applied by [`map`]
//! and [`scale`].
//!
//! The formulas are those of Keras 3 on its TensorFlow backend, operation for operation in
//! `f32` where TensorFlow's are plain arithmetic (so results agree to the last bit there), and
//! the same transcendental functions elsewhere (agreeing to a few units in the last place).

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
    map(y, sigmoid);
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

/// Applies `f` to each value in place.
#[inline]
pub fn map(y: &mut [f32], f: impl Fn(f32) -> f32) {
    y.iter_mut().for_each(|v| *v = f(*v));
}

/// `dy *= g(s)` value by value, `s` being the activation's output or input.
#[inline]
pub fn scale(dy: &mut [f32], s: &[f32], g: impl Fn(f32) -> f32) {
    for (d, &v) in dy.iter_mut().zip(s) {
        *d *= g(v);
    }
}

/// SELU's `scale` (Klambauer et al.), as TensorFlow writes it.
pub const SELU_SCALE: f32 = 1.050_701;
/// SELU's `scale·alpha`.
pub const SELU_SCALE_ALPHA: f32 = 1.758_099_3;

/// `1 / (1 + e^-x)`, without overflow for large |x|.
#[inline]
pub fn sigmoid(x: f32) -> f32 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// `ln(1 + e^x)` as TensorFlow computes it: `x` above `−ln ε − 2`, `e^x` below `ln ε + 2`
/// (each within ε of the exact value there), `log1p(e^x)` between.
#[inline]
pub fn softplus(x: f32) -> f32 {
    const T: f32 = -13.942_385; // ln(f32::EPSILON) + 2
    if x > -T {
        x
    } else if x < T {
        x.exp()
    } else {
        x.exp().ln_1p()
    }
}

/// `min(max(x, 0), 6)`.
#[inline]
pub fn relu6(x: f32) -> f32 {
    x.clamp(0.0, 6.0)
}

/// `x` for `x > 0`, else `slope·x`.
#[inline]
pub fn leaky_relu(x: f32, slope: f32) -> f32 {
    if x > 0.0 {
        x
    } else {
        x * slope
    }
}

/// Keras' `relu(x, negative_slope, max_value, threshold)`: `x` above the threshold (0 below
/// it), clipped to `[0, max_value]` when there is a maximum, minus `negative_slope·max(threshold − x, 0)`.
#[inline]
pub fn relu_with(x: f32, slope: f32, max: Option<f32>, threshold: f32) -> f32 {
    let mut a = if threshold != 0.0 {
        if x > threshold {
            x
        } else {
            0.0
        }
    } else {
        x.max(0.0)
    };
    if let Some(m) = max {
        a = a.max(0.0).min(m);
    }
    if slope != 0.0 {
        a -= slope * (threshold - x).max(0.0);
    }
    a
}

/// Derivative of [`relu_with`] at `x`.
#[inline]
pub fn relu_with_grad(x: f32, slope: f32, max: Option<f32>, threshold: f32) -> f32 {
    let above = if threshold != 0.0 { x > threshold } else { x > 0.0 };
    let mut d = match (above, max) {
        (false, _) => 0.0,
        (true, None) => 1.0,
        (true, Some(m)) => (x > 0.0 && x < m) as u8 as f32,
    };
    if slope != 0.0 && x < threshold {
        d += slope;
    }
    d
}

/// ELU: `x` for `x > 0`, else `alpha·(e^x − 1)` (TensorFlow's `exp(x) − 1`, not `expm1`).
#[inline]
pub fn elu(x: f32, alpha: f32) -> f32 {
    let res = if x < 0.0 { x.exp() - 1.0 } else { x };
    if alpha == 1.0 || x > 0.0 {
        res
    } else {
        alpha * res
    }
}

/// SELU: `scale·x` for `x ≥ 0`, else `scale·alpha·(e^x − 1)`.
#[inline]
pub fn selu(x: f32) -> f32 {
    if x < 0.0 {
        SELU_SCALE_ALPHA * (x.exp() - 1.0)
    } else {
        SELU_SCALE * x
    }
}

/// CELU with Keras' `alpha = 1`: `max(x, 0) + expm1(min(x, 0))`.
#[inline]
pub fn celu(x: f32) -> f32 {
    x.max(0.0) + x.min(0.0).exp_m1()
}

/// `x / (|x| + 1)`.
#[inline]
pub fn softsign(x: f32) -> f32 {
    x / (x.abs() + 1.0)
}

/// Squareplus with Keras' `b = 4`: `(x + √(x² + 4)) / 2`.
#[inline]
pub fn squareplus(x: f32) -> f32 {
    (x + (x * x + 4.0).sqrt()) / 2.0
}

/// Soft shrink with Keras' threshold 0.5: `x ∓ 0.5` beyond ±0.5, else 0.
#[inline]
pub fn soft_shrink(x: f32) -> f32 {
    if x > 0.5 {
        x - 0.5
    } else if x < -0.5 {
        x + 0.5
    } else {
        0.0
    }
}

/// Hard shrink with Keras' threshold 0.5: `x` beyond ±0.5, else 0.
#[inline]
pub fn hard_shrink(x: f32) -> f32 {
    if x.abs() > 0.5 {
        x
    } else {
        0.0
    }
}

/// Sparse plus: 0 up to −1, `(x + 1)² / 4` up to 1, `x` beyond.
#[inline]
pub fn sparse_plus(x: f32) -> f32 {
    if x <= -1.0 {
        0.0
    } else if x < 1.0 {
        0.25 * ((x + 1.0) * (x + 1.0))
    } else {
        x
    }
}

/// Sparse sigmoid: 0 up to −1, `(x + 1) / 2` up to 1, 1 beyond.
#[inline]
pub fn sparse_sigmoid(x: f32) -> f32 {
    if x <= -1.0 {
        0.0
    } else if x >= 1.0 {
        1.0
    } else {
        0.5 * (x + 1.0)
    }
}

/// `x·sigmoid(x)` (SiLU, swish).
#[inline]
pub fn silu(x: f32) -> f32 {
    x * sigmoid(x)
}

/// Derivative of [`silu`]: `σ(x)·(1 + x·(1 − σ(x)))`.
#[inline]
pub fn silu_grad(x: f32) -> f32 {
    let s = sigmoid(x);
    s * (1.0 + x * (1.0 - s))
}

/// Exact GELU as TensorFlow computes it: `0.5·x·erfc(−x/√2)` (erfc keeps the far negative
/// tail accurate where `1 + erf` would cancel).
#[inline]
pub fn gelu(x: f32) -> f32 {
    0.5 * x * libm::erfcf(-x * std::f32::consts::FRAC_1_SQRT_2)
}

/// Derivative of [`gelu`]: `Φ(x) + x·φ(x)`.
#[inline]
pub fn gelu_grad(x: f32) -> f32 {
    // 1/√(2π)
    const INV_SQRT_2PI: f32 = 0.398_942_3;
    let cdf = 0.5 * libm::erfcf(-x * std::f32::consts::FRAC_1_SQRT_2);
    cdf + x * (-0.5 * x * x).exp() * INV_SQRT_2PI
}

/// `x − tanh(x)`.
#[inline]
pub fn tanh_shrink(x: f32) -> f32 {
    x - x.tanh()
}

/// Keras 3's hard sigmoid: `relu6(x + 3) / 6` (tf_keras' was `clip(0.2·x + 0.5, 0, 1)`).
#[inline]
pub fn hard_sigmoid(x: f32) -> f32 {
    relu6(x + 3.0) / 6.0
}

/// `x·hard_sigmoid(x)` (hard SiLU, hard swish).
#[inline]
pub fn hard_silu(x: f32) -> f32 {
    x * hard_sigmoid(x)
}

/// Derivative of [`hard_silu`]: 0 below −3, `(2x + 3) / 6` up to 3, 1 beyond.
#[inline]
pub fn hard_silu_grad(x: f32) -> f32 {
    if x < -3.0 {
        0.0
    } else if x > 3.0 {
        1.0
    } else {
        (2.0 * x + 3.0) / 6.0
    }
}

/// `clip(x, −1, 1)`.
#[inline]
pub fn hard_tanh(x: f32) -> f32 {
    x.clamp(-1.0, 1.0)
}

/// `tanh(softplus(x))` with one exponential: with `e = e^x` and `n = e·(e + 2)`,
/// `tanh(ln(1 + e)) = n / (n + 2)` (1 to `f32` precision from x = 20 on, where `n` would
/// overflow further up).
#[inline]
fn tanh_softplus(x: f32) -> (f32, f32, f32) {
    if x >= 20.0 {
        return (1.0, f32::INFINITY, 1.0);
    }
    let e = x.exp();
    let n = e * (e + 2.0);
    (n / (n + 2.0), n, e)
}

/// `x·tanh(softplus(x))`.
#[inline]
pub fn mish(x: f32) -> f32 {
    x * tanh_softplus(x).0
}

/// Derivative of [`mish`]: `t + x·(1 − t²)·σ(x)` with `t = tanh(softplus(x))`; in terms of
/// `n` and `e` above, `1 − t² = 4(n + 1)/(n + 2)²` and `σ(x) = e/(1 + e)`.
#[inline]
pub fn mish_grad(x: f32) -> f32 {
    let (t, n, e) = tanh_softplus(x);
    if x >= 20.0 {
        return 1.0;
    }
    let d = n + 2.0;
    t + x * (4.0 * (n + 1.0) / (d * d)) * (e / (1.0 + e))
}

/// `ln σ(x) = −softplus(−x)`.
#[inline]
pub fn log_sigmoid(x: f32) -> f32 {
    -softplus(-x)
}

/// Log-softmax over each row of `width` values, in place: `x − max − ln Σ e^(x − max)`.
pub fn log_softmax_forward(y: &mut [f32], width: usize) {
    for row in y.chunks_exact_mut(width.max(1)) {
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        row.iter_mut().for_each(|v| *v -= max);
        let sum: f32 = row.iter().map(|v| v.exp()).sum();
        let log = sum.ln();
        row.iter_mut().for_each(|v| *v -= log);
    }
}

/// Log-softmax backward per row: `dx_i = dy_i − e^(y_i)·Σ_j dy_j` (`e^y` is the softmax).
pub fn log_softmax_backward(y: &[f32], dy: &mut [f32], width: usize) {
    let width = width.max(1);
    for (yr, dr) in y.chunks_exact(width).zip(dy.chunks_exact_mut(width)) {
        let sum: f32 = dr.iter().sum();
        for (d, &v) in dr.iter_mut().zip(yr) {
            *d -= v.exp() * sum;
        }
    }
}

/// Whether `x[j]` comes at or after `x[i]` in Keras' descending sort (ties in index order).
#[inline]
fn ranks_after(x: &[f32], i: usize, j: usize) -> bool {
    x[j] < x[i] || (x[j] == x[i] && j >= i)
}

/// `x[i]`'s position (from 1) in the descending sort, and the sum of the values up to it.
fn sorted_position(x: &[f32], i: usize) -> (usize, f64) {
    let (mut m, mut c) = (1usize, x[i] as f64);
    for (j, &v) in x.iter().enumerate() {
        if !ranks_after(x, i, j) {
            m += 1;
            c += v as f64;
        }
    }
    (m, c)
}

/// Keras' sparsemax threshold for one row and the support's size. Sorted descending as `s`,
/// with cumulative sums `c_m`, the positions where `s_m − (c_m − 1)/m > 0` are the support (a
/// prefix of the sort); `τ = (Σ_support c_m − 1) / k`, `k` the support's size. (Keras sums
/// the cumulative sums over the support, where the published sparsemax takes the last one;
/// Keras' outputs are kept.) Each element's position and cumulative sum come from comparing
/// it with the others, so no sort buffer is needed: `O(width²)` per row.
fn sparsemax_tau(x: &[f32]) -> (f32, usize) {
    let (mut total, mut k) = (0.0f64, 0usize);
    for i in 0..x.len() {
        let (m, c) = sorted_position(x, i);
        if x[i] as f64 - (c - 1.0) / m as f64 > 0.0 {
            total += c;
            k += 1;
        }
    }
    let k = k.max(1);
    (((total - 1.0) / k as f64) as f32, k)
}

/// Keras' sparsemax over each row of `width` values, in place: `max(x − τ, 0)`.
pub fn sparsemax_forward(y: &mut [f32], width: usize) {
    for row in y.chunks_exact_mut(width.max(1)) {
        let (tau, _) = sparsemax_tau(row);
        row.iter_mut().for_each(|v| *v = (*v - tau).max(0.0));
    }
}

/// Sparsemax backward per row from the input `x`: with `A` the outputs above zero,
/// `dx_j = [j ∈ A]·dy_j − (Σ_A dy)·∂τ/∂x_j`, where `∂τ/∂x_j = max(k + 1 − m_j, 0) / k` for
/// `x_j` at sorted position `m_j` (it enters the support's cumulative sums from its own on).
pub fn sparsemax_backward(x: &[f32], dy: &mut [f32], width: usize) {
    let width = width.max(1);
    for (xr, dr) in x.chunks_exact(width).zip(dy.chunks_exact_mut(width)) {
        let (tau, k) = sparsemax_tau(xr);
        let mut active_sum = 0.0f32;
        for (d, &v) in dr.iter_mut().zip(xr) {
            if v - tau > 0.0 {
                active_sum += *d;
            } else {
                *d = 0.0;
            }
        }
        for (j, d) in dr.iter_mut().enumerate() {
            let (m, _) = sorted_position(xr, j);
            *d -= active_sum * (k + 1).saturating_sub(m) as f32 / k as f32;
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
    fn sparsemax_follows_keras_threshold() {
        // Sorted (0.5, 0.4): both in the support, τ = (0.5 + 0.9 − 1) / 2 = 0.2 in Keras (the
        // published sparsemax takes (0.9 − 1) / 2 and sums to 1); a clear winner takes all.
        let mut y = vec![0.4, 0.5, 9.0, 0.0];
        sparsemax_forward(&mut y, 2);
        let want = [0.2, 0.3, 1.0, 0.0];
        assert!(y.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-6), "{y:?}");
    }

    #[test]
    fn piecewise_functions_meet_at_their_edges() {
        for (f, edges) in [
            (hard_silu as fn(f32) -> f32, &[-3.0f32, 3.0][..]),
            (sparse_plus, &[-1.0, 1.0]),
            (sparse_sigmoid, &[-1.0, 1.0]),
            (soft_shrink, &[-0.5, 0.5]),
            (hard_sigmoid, &[-3.0, 3.0]),
        ] {
            for &e in edges {
                assert!((f(e - 1e-4) - f(e + 1e-4)).abs() < 1e-3, "continuous at {e}");
            }
        }
        assert!((gelu(-10.0)).abs() < 1e-20 && gelu(-10.0) < 0.0, "the far tail keeps its sign");
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
