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

/// `x` as Python's `repr(float)` writes it (0.0005000000237487257, 1e-05, 3.0): the form of
/// the numbers in Keras' own messages.
pub fn python_repr(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        return match x {
            v if v.is_nan() => "nan".into(),
            v if v == f64::INFINITY => "inf".into(),
            v if v == f64::NEG_INFINITY => "-inf".into(),
            v if v.is_sign_negative() => "-0.0".into(),
            _ => "0.0".into(),
        };
    }
    let exp = x.abs().log10().floor() as i32;
    if (-4..16).contains(&exp) {
        let s = format!("{x}");
        return if s.contains('.') { s } else { format!("{s}.0") };
    }
    // Scientific: shortest digits, a signed exponent of at least two digits.
    let s = format!("{x:e}");
    let (mantissa, e) = s.split_once('e').unwrap_or((&s, "0"));
    let (sign, digits) = e.strip_prefix('-').map_or(("+", e), |d| ("-", d));
    format!("{mantissa}e{sign}{digits:0>2}")
}

/// `1 − β`, as Keras computes it from the Python float and then casts to f32 (so
/// 1 − 0.999 is 0.001, not 0.00099998713).
pub fn one_minus(beta: f32) -> f32 {
    (1.0 - decimal(beta)) as f32
}

#[cfg(test)]
mod tests {
    use super::python_repr;

    #[test]
    fn python_repr_writes_floats_as_python_does() {
        // Values printed by Python 3 (`repr`).
        assert_eq!(python_repr(f64::from(0.001f32) * 0.5), "0.0005000000237487257");
        assert_eq!(python_repr(1e-5), "1e-05");
        assert_eq!(python_repr(3.0), "3.0");
        assert_eq!(python_repr(0.0001), "0.0001");
        assert_eq!(python_repr(1.5e16), "1.5e+16");
        assert_eq!(python_repr(0.0), "0.0");
    }

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
