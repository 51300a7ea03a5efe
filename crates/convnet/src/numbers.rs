//! Keras' numbers in f32: Keras keeps hyper-parameters as Python floats (f64) and computes
//! with them before casting, so convnet, which keeps them as f32, recovers the decimal the
//! config held before doing the same arithmetic.

/// The shortest decimal that reads back as `x` (0.999 for `0.999f32`, not
/// 0.99900001287…): the Python float a Keras config holds for a hyper-parameter convnet
/// keeps as f32. Allocates nothing.
pub fn decimal(x: f32) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return f64::from(x);
    }
    let wide = f64::from(x);
    let magnitude = wide.abs().log10().floor() as i32;
    for digits in 1..=9 {
        let scale = 10f64.powi(digits - 1 - magnitude);
        let r = (wide * scale).round() / scale;
        if r as f32 == x {
            return r;
        }
    }
    wide
}

/// `1 − β`, as Keras computes it from the Python float and then casts to f32 (so
/// 1 − 0.999 is 0.001, not 0.00099998713).
pub fn one_minus(beta: f32) -> f32 {
    (1.0 - decimal(beta)) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hyper_parameters_are_read_as_the_decimals_keras_holds() {
        assert_eq!(decimal(0.999), 0.999);
        assert_eq!(decimal(0.9), 0.9);
        assert_eq!(decimal(1e-7), 1e-7);
        assert_eq!(one_minus(0.999), 0.001);
        let third = 1.0f32 / 3.0;
        assert_eq!(decimal(third) as f32, third);
    }
}
