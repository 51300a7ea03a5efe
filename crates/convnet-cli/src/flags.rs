//! Checks on flag values, run while the command line is parsed: a bad value is refused at once,
//! naming the flag, before any model or data is loaded.

/// A whole number of at least 1 (`--epochs`, `--batch-size`, `--limit`, …).
pub fn positive_count(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("{s:?} is not a whole number of at least 1")),
    }
}

/// A fraction in [0, 1), as Keras' `validation_split` takes.
pub fn fraction(s: &str) -> Result<f32, String> {
    match s.trim().parse::<f32>() {
        Ok(x) if (0.0..1.0).contains(&x) => Ok(x),
        Ok(_) => Err("must be in [0, 1): the fraction of the training set held out".into()),
        Err(_) => Err(format!("{s:?} is not a number")),
    }
}

/// A finite number above 0 (`--learning-rate`).
pub fn positive_number(s: &str) -> Result<f32, String> {
    match s.trim().parse::<f32>() {
        Ok(x) if x.is_finite() && x > 0.0 => Ok(x),
        Ok(_) => Err("must be a finite number above 0".into()),
        Err(_) => Err(format!("{s:?} is not a number")),
    }
}

/// A finite number of seconds above 0.
pub fn positive_seconds(s: &str) -> Result<f64, String> {
    positive_number(s).map(f64::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_outside_their_range_are_refused() {
        assert!(positive_count("0").is_err());
        assert!(positive_count("-3").is_err());
        assert_eq!(positive_count("12"), Ok(12));
        assert!(fraction("1").is_err() && fraction("1.5").is_err() && fraction("-0.5").is_err());
        assert_eq!(fraction("0"), Ok(0.0));
        assert_eq!(fraction("0.2"), Ok(0.2));
        assert!(positive_number("-1").is_err() && positive_number("0").is_err());
        assert!(positive_number("inf").is_err() && positive_number("NaN").is_err());
        assert_eq!(positive_number("1e-3"), Ok(0.001));
    }
}
