//! Weight initializers with Keras' names, defaults and formulas.
//!
//! Fans follow Keras: a Dense kernel `[in, out]` has `fan_in = in`, `fan_out = out`; a Conv2D
//! kernel `[kh, kw, c, f]` has `fan_in = kh·kw·c`, `fan_out = kh·kw·f`. The "normal" variance
//! scaling initializers draw from a normal truncated at two deviations, with the deviation
//! divided by 0.87962566103423978 to keep the intended variance, exactly as Keras does.

use crate::error::{Error, Result};
use crate::rng::Rng;
use serde_json::{json, Value};

/// Deviation correction for a normal truncated at ±2σ (Keras' constant).
const TRUNCATION_CORRECTION: f32 = 0.879_625_7;

/// A rule for the initial values of a weight (Keras' `kernel_initializer` / `bias_initializer`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Initializer {
    /// Uniform in ±sqrt(6 / (fan_in + fan_out)) (Keras' default for kernels).
    GlorotUniform,
    /// Truncated normal with σ = sqrt(2 / (fan_in + fan_out)).
    GlorotNormal,
    /// Uniform in ±sqrt(6 / fan_in).
    HeUniform,
    /// Truncated normal with σ = sqrt(2 / fan_in).
    HeNormal,
    /// Uniform in ±sqrt(3 / fan_in).
    LecunUniform,
    /// Truncated normal with σ = sqrt(1 / fan_in).
    LecunNormal,
    /// All zeros (Keras' default for biases).
    Zeros,
    /// All ones.
    Ones,
    /// A constant value.
    Constant(f32),
    /// Normal with the given mean and deviation (Keras' defaults 0 and 0.05).
    RandomNormal {
        /// Mean.
        mean: f32,
        /// Standard deviation.
        stddev: f32,
    },
    /// Uniform in [minval, maxval) (Keras' defaults −0.05 and 0.05).
    RandomUniform {
        /// Lower bound.
        minval: f32,
        /// Upper bound.
        maxval: f32,
    },
    /// Normal truncated at two deviations (Keras' defaults 0 and 0.05).
    TruncatedNormal {
        /// Mean.
        mean: f32,
        /// Standard deviation before truncation.
        stddev: f32,
    },
}

impl Initializer {
    /// Parses a Keras initializer name (snake or class case) with its default arguments.
    pub fn parse(name: &str) -> Result<Self> {
        let key: String = name.chars().filter(|c| *c != '_').collect::<String>().to_ascii_lowercase();
        Ok(match key.as_str() {
            "glorotuniform" => Initializer::GlorotUniform,
            "glorotnormal" => Initializer::GlorotNormal,
            "heuniform" => Initializer::HeUniform,
            "henormal" => Initializer::HeNormal,
            "lecununiform" => Initializer::LecunUniform,
            "lecunnormal" => Initializer::LecunNormal,
            "zeros" | "zero" => Initializer::Zeros,
            "ones" | "one" => Initializer::Ones,
            "constant" => Initializer::Constant(0.0),
            "randomnormal" | "normal" => Initializer::RandomNormal { mean: 0.0, stddev: 0.05 },
            "randomuniform" | "uniform" => Initializer::RandomUniform { minval: -0.05, maxval: 0.05 },
            "truncatednormal" => Initializer::TruncatedNormal { mean: 0.0, stddev: 0.05 },
            _ => {
                return Err(Error::config(format!(
                    "unknown initializer {name:?} (convnet has glorot_uniform, glorot_normal, he_uniform, \
                     he_normal, lecun_uniform, lecun_normal, zeros, ones, constant, random_normal, \
                     random_uniform, truncated_normal)"
                )))
            }
        })
    }

    /// Reads Keras' config form: a name string, or `{"class_name": …, "config": {…}}`.
    pub fn from_config(v: &Value) -> Result<Self> {
        match v {
            Value::String(s) => Initializer::parse(s),
            Value::Object(o) => {
                let class = o
                    .get("class_name")
                    .and_then(Value::as_str)
                    .ok_or_else(|| Error::config("initializer config without class_name"))?;
                let mut init = Initializer::parse(class)?;
                let cfg = o.get("config").and_then(Value::as_object);
                let num = |key: &str, default: f32| -> f32 {
                    cfg.and_then(|c| c.get(key)).and_then(Value::as_f64).map_or(default, |v| v as f32)
                };
                match &mut init {
                    Initializer::Constant(c) => *c = num("value", 0.0),
                    Initializer::RandomNormal { mean, stddev } | Initializer::TruncatedNormal { mean, stddev } => {
                        *mean = num("mean", 0.0);
                        *stddev = num("stddev", 0.05);
                    }
                    Initializer::RandomUniform { minval, maxval } => {
                        *minval = num("minval", -0.05);
                        *maxval = num("maxval", 0.05);
                    }
                    _ => {}
                }
                Ok(init)
            }
            Value::Null => Err(Error::config("initializer is null")),
            other => Err(Error::config(format!("initializer must be a name or an object, not {other}"))),
        }
    }

    /// Keras' class name.
    pub fn class_name(&self) -> &'static str {
        match self {
            Initializer::GlorotUniform => "GlorotUniform",
            Initializer::GlorotNormal => "GlorotNormal",
            Initializer::HeUniform => "HeUniform",
            Initializer::HeNormal => "HeNormal",
            Initializer::LecunUniform => "LecunUniform",
            Initializer::LecunNormal => "LecunNormal",
            Initializer::Zeros => "Zeros",
            Initializer::Ones => "Ones",
            Initializer::Constant(_) => "Constant",
            Initializer::RandomNormal { .. } => "RandomNormal",
            Initializer::RandomUniform { .. } => "RandomUniform",
            Initializer::TruncatedNormal { .. } => "TruncatedNormal",
        }
    }

    /// Keras' serialized form (`{"class_name": …, "config": {…}}`).
    pub fn to_config(&self) -> Value {
        let config = match *self {
            Initializer::Zeros | Initializer::Ones => json!({}),
            Initializer::Constant(v) => json!({ "value": v }),
            Initializer::RandomNormal { mean, stddev } | Initializer::TruncatedNormal { mean, stddev } => {
                json!({ "mean": mean, "stddev": stddev, "seed": null })
            }
            Initializer::RandomUniform { minval, maxval } => {
                json!({ "minval": minval, "maxval": maxval, "seed": null })
            }
            _ => json!({ "seed": null }),
        };
        json!({ "class_name": self.class_name(), "config": config })
    }

    /// Fills `values` for a weight of `shape`.
    pub fn fill(&self, values: &mut [f32], shape: &[usize], rng: &mut Rng) {
        let (fan_in, fan_out) = fans(shape);
        let uniform = |values: &mut [f32], limit: f32, rng: &mut Rng| {
            values.iter_mut().for_each(|v| *v = rng.uniform_range(-limit, limit));
        };
        let truncated = |values: &mut [f32], std: f32, rng: &mut Rng| {
            values.iter_mut().for_each(|v| *v = rng.truncated_normal(0.0, std / TRUNCATION_CORRECTION));
        };
        match *self {
            Initializer::GlorotUniform => uniform(values, (6.0 / (fan_in + fan_out).max(1.0)).sqrt(), rng),
            Initializer::GlorotNormal => truncated(values, (2.0 / (fan_in + fan_out).max(1.0)).sqrt(), rng),
            Initializer::HeUniform => uniform(values, (6.0 / fan_in.max(1.0)).sqrt(), rng),
            Initializer::HeNormal => truncated(values, (2.0 / fan_in.max(1.0)).sqrt(), rng),
            Initializer::LecunUniform => uniform(values, (3.0 / fan_in.max(1.0)).sqrt(), rng),
            Initializer::LecunNormal => truncated(values, (1.0 / fan_in.max(1.0)).sqrt(), rng),
            Initializer::Zeros => values.fill(0.0),
            Initializer::Ones => values.fill(1.0),
            Initializer::Constant(c) => values.fill(c),
            Initializer::RandomNormal { mean, stddev } => {
                values.iter_mut().for_each(|v| *v = mean + stddev * rng.normal() as f32)
            }
            Initializer::RandomUniform { minval, maxval } => {
                values.iter_mut().for_each(|v| *v = rng.uniform_range(minval, maxval))
            }
            Initializer::TruncatedNormal { mean, stddev } => {
                values.iter_mut().for_each(|v| *v = rng.truncated_normal(mean, stddev))
            }
        }
    }
}

/// Keras' `compute_fans`: (fan_in, fan_out) of a weight shape.
pub fn fans(shape: &[usize]) -> (f32, f32) {
    match shape.len() {
        0 => (1.0, 1.0),
        1 => (shape[0] as f32, shape[0] as f32),
        2 => (shape[0] as f32, shape[1] as f32),
        n => {
            let receptive: usize = shape[..n - 2].iter().product();
            ((receptive * shape[n - 2]) as f32, (receptive * shape[n - 1]) as f32)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(v: &[f32]) -> (f32, f32, f32) {
        let n = v.len() as f32;
        let mean = v.iter().sum::<f32>() / n;
        let var = v.iter().map(|x| (x - mean) * (x - mean)).sum::<f32>() / n;
        let maxabs = v.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        (mean, var, maxabs)
    }

    #[test]
    fn variance_scaling_matches_keras_formulas() {
        let mut rng = Rng::new(4);
        let shape = [5, 5, 6, 16]; // fan_in 150, fan_out 400
        let mut v = vec![0.0; 5 * 5 * 6 * 16 * 20];
        let big = [5, 5, 6, 16 * 20];
        let (fi, fo) = fans(&big);
        assert_eq!(fans(&shape), (150.0, 400.0));
        Initializer::GlorotUniform.fill(&mut v, &big, &mut rng);
        let limit = (6.0 / (fi + fo)).sqrt();
        let (m, var, maxabs) = stats(&v);
        assert!(m.abs() < 0.01 * limit && maxabs <= limit);
        assert!((var - limit * limit / 3.0).abs() < 0.03 * limit * limit / 3.0);
        Initializer::HeNormal.fill(&mut v, &big, &mut rng);
        let (_, var, maxabs) = stats(&v);
        let want = 2.0 / fi;
        assert!((var - want).abs() < 0.03 * want, "he_normal variance {var} vs {want}");
        assert!(maxabs <= 2.0 * want.sqrt() / TRUNCATION_CORRECTION + 1e-6);
        Initializer::LecunNormal.fill(&mut v, &big, &mut rng);
        let (_, var, _) = stats(&v);
        assert!((var - 1.0 / fi).abs() < 0.03 / fi);
    }

    #[test]
    fn config_round_trip() {
        for init in [
            Initializer::GlorotUniform,
            Initializer::HeNormal,
            Initializer::Constant(0.5),
            Initializer::RandomUniform { minval: -1.0, maxval: 2.0 },
            Initializer::TruncatedNormal { mean: 0.1, stddev: 0.2 },
        ] {
            assert_eq!(Initializer::from_config(&init.to_config()).unwrap(), init);
        }
        assert_eq!(Initializer::parse("glorot_uniform").unwrap(), Initializer::GlorotUniform);
        assert!(Initializer::parse("orthogonal_plus").is_err());
    }
}
