//! Learning-rate schedules as Keras stores them in an optimizer's `learning_rate`
//! (`keras.optimizers.schedules`): `ExponentialDecay`, `PiecewiseConstantDecay`,
//! `CosineDecay`, `InverseTimeDecay`, `PolynomialDecay`.
//!
//! Keras evaluates the schedule at the optimizer's `iterations` *before* the step is
//! counted: the first update uses `schedule(0)`, the n-th `schedule(n − 1)`; weight decay in
//! that step uses the same rate. Every formula is evaluated in f32, in Keras' order of
//! operations, so rates match Keras' to the last bit or two:
//!
//! - exponential: `lr₀ · rateᵖ`, `p = step / decay_steps` (floored when `staircase`);
//! - inverse time: `lr₀ / (1 + rate · p)`, same `p`;
//! - piecewise constant: `values[i]` for `boundaries[i−1] < step ≤ boundaries[i]` (boundaries
//!   are cast to integers, as Keras casts them to the step's dtype);
//! - polynomial: `(lr₀ − end) · (1 − s/d)ᵖᵒʷᵉʳ + end` with `s = min(step, d)`, or with
//!   `cycle` `d` stretched to the first multiple of `decay_steps` ≥ step (1 at step 0);
//! - cosine: `lr₀ · ((1 − α) · ½(1 + cos(π · s/d)) + α)`, `s = min(step, d)`; with a
//!   `warmup_target`, a linear ramp from `lr₀` to the target over `warmup_steps` first, then
//!   the cosine decays from the target.
//!
//! A schedule is `Copy` (so is the optimizer holding it): `PiecewiseConstantDecay` keeps up to
//! [`MAX_PIECES`] values inline; longer lists are refused when read.

use crate::error::{Error, Result};
use serde_json::{json, Map, Value};

/// Most values a `PiecewiseConstantDecay` may have (boundaries: one fewer).
pub const MAX_PIECES: usize = 16;

/// Keras' `PiecewiseConstantDecay`: constant values between step boundaries.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Piecewise {
    /// Number of values (`boundaries` has one fewer).
    pub len: usize,
    /// Step boundaries, increasing (the first `len − 1` are used).
    pub boundaries: [f64; MAX_PIECES - 1],
    /// Rates (the first `len` are used).
    pub values: [f32; MAX_PIECES],
}

impl Piecewise {
    /// The schedule with these boundaries and values (`values.len() == boundaries.len() + 1`).
    pub fn new(boundaries: &[f64], values: &[f32]) -> Result<Self> {
        if values.len() != boundaries.len() + 1 {
            return Err(Error::config(format!(
                "PiecewiseConstantDecay needs one more value than boundaries, got {} boundaries and {} values",
                boundaries.len(),
                values.len()
            )));
        }
        if values.len() > MAX_PIECES {
            return Err(Error::config(format!(
                "PiecewiseConstantDecay with {} values: convnet handles at most {MAX_PIECES}",
                values.len()
            )));
        }
        let mut p = Piecewise { len: values.len(), boundaries: [0.0; MAX_PIECES - 1], values: [0.0; MAX_PIECES] };
        p.boundaries[..boundaries.len()].copy_from_slice(boundaries);
        p.values[..values.len()].copy_from_slice(values);
        Ok(p)
    }

    /// The boundaries in use.
    pub fn boundaries(&self) -> &[f64] {
        &self.boundaries[..self.len - 1]
    }

    /// The values in use.
    pub fn values(&self) -> &[f32] {
        &self.values[..self.len]
    }
}

/// A learning-rate schedule (Keras' `keras.optimizers.schedules.*`), with Keras' arguments.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LearningRateSchedule {
    /// `ExponentialDecay(initial_learning_rate, decay_steps, decay_rate, staircase)`.
    ExponentialDecay {
        /// Rate at step 0.
        initial_learning_rate: f32,
        /// Steps over which the rate is multiplied by `decay_rate`.
        decay_steps: f64,
        /// Factor per `decay_steps`.
        decay_rate: f32,
        /// Decay in whole periods only.
        staircase: bool,
    },
    /// `PiecewiseConstantDecay(boundaries, values)`.
    PiecewiseConstantDecay(Piecewise),
    /// `CosineDecay(initial_learning_rate, decay_steps, alpha, warmup_target, warmup_steps)`.
    CosineDecay {
        /// Rate at step 0.
        initial_learning_rate: f32,
        /// Steps of the cosine decay (after the warm-up).
        decay_steps: f64,
        /// Floor of the decay, as a fraction of the rate it decays from.
        alpha: f32,
        /// Rate reached at the end of the warm-up, if any.
        warmup_target: Option<f32>,
        /// Steps of the linear warm-up.
        warmup_steps: f64,
    },
    /// `InverseTimeDecay(initial_learning_rate, decay_steps, decay_rate, staircase)`.
    InverseTimeDecay {
        /// Rate at step 0.
        initial_learning_rate: f32,
        /// Steps per unit of decay.
        decay_steps: f64,
        /// Decay per `decay_steps`.
        decay_rate: f32,
        /// Decay in whole periods only.
        staircase: bool,
    },
    /// `PolynomialDecay(initial_learning_rate, decay_steps, end_learning_rate, power, cycle)`.
    PolynomialDecay {
        /// Rate at step 0.
        initial_learning_rate: f32,
        /// Steps to reach `end_learning_rate`.
        decay_steps: f64,
        /// Rate at the end.
        end_learning_rate: f32,
        /// Exponent of the polynomial.
        power: f32,
        /// Restart the decay after `decay_steps`.
        cycle: bool,
    },
}

impl LearningRateSchedule {
    /// Keras' class name.
    pub fn class_name(&self) -> &'static str {
        match self {
            LearningRateSchedule::ExponentialDecay { .. } => "ExponentialDecay",
            LearningRateSchedule::PiecewiseConstantDecay(_) => "PiecewiseConstantDecay",
            LearningRateSchedule::CosineDecay { .. } => "CosineDecay",
            LearningRateSchedule::InverseTimeDecay { .. } => "InverseTimeDecay",
            LearningRateSchedule::PolynomialDecay { .. } => "PolynomialDecay",
        }
    }

    /// The rate at `step` (Keras calls the schedule with the optimizer's `iterations`, the
    /// number of steps already applied).
    pub fn rate(&self, step: u64) -> f32 {
        let s = step as f32;
        match *self {
            LearningRateSchedule::ExponentialDecay { initial_learning_rate, decay_steps, decay_rate, staircase } => {
                let mut p = s / decay_steps as f32;
                if staircase {
                    p = p.floor();
                }
                initial_learning_rate * decay_rate.powf(p)
            }
            LearningRateSchedule::InverseTimeDecay { initial_learning_rate, decay_steps, decay_rate, staircase } => {
                let mut p = s / decay_steps as f32;
                if staircase {
                    p = p.floor();
                }
                initial_learning_rate / (1.0 + decay_rate * p)
            }
            LearningRateSchedule::PiecewiseConstantDecay(ref p) => {
                let b = p.boundaries();
                let v = p.values();
                // Keras casts the boundaries to the step's integer type.
                let step = step as i128;
                let int = |x: f64| x.trunc() as i128;
                let i = b.iter().position(|&x| step <= int(x)).unwrap_or(b.len());
                v[i]
            }
            LearningRateSchedule::PolynomialDecay {
                initial_learning_rate,
                decay_steps,
                end_learning_rate,
                power,
                cycle,
            } => {
                let mut d = decay_steps as f32;
                let mut s = s;
                if cycle {
                    let multiplier = if s == 0.0 { 1.0 } else { (s / decay_steps as f32).ceil() };
                    d *= multiplier;
                } else {
                    s = s.min(d);
                }
                let p = s / d;
                (initial_learning_rate - end_learning_rate) * (1.0 - p).powf(power) + end_learning_rate
            }
            LearningRateSchedule::CosineDecay {
                initial_learning_rate,
                decay_steps,
                alpha,
                warmup_target,
                warmup_steps,
            } => {
                let d = decay_steps as f32;
                let cosine = |s: f32, from: f32| {
                    let fraction = s / d;
                    let c = 0.5 * (1.0 + (std::f32::consts::PI * fraction).cos());
                    // Keras: (1 − α) of the Python float, times the f32 cosine.
                    from * (crate::numbers::one_minus(alpha) * c + alpha)
                };
                match warmup_target {
                    None => cosine(s.min(d), initial_learning_rate),
                    Some(target) => {
                        let w = warmup_steps as f32;
                        let s = s.min(d + w);
                        if s < w {
                            (target - initial_learning_rate) * (s / w) + initial_learning_rate
                        } else {
                            cosine(s - w, target)
                        }
                    }
                }
            }
        }
    }

    /// Keras' config of the schedule (the `config` of its serialised form).
    pub fn to_config(&self) -> Value {
        let steps = |x: f64| if x.fract() == 0.0 && x.abs() < 1e15 { json!(x as i64) } else { json!(x) };
        match *self {
            LearningRateSchedule::ExponentialDecay { initial_learning_rate, decay_steps, decay_rate, staircase } => {
                json!({"initial_learning_rate": initial_learning_rate, "decay_steps": steps(decay_steps),
                       "decay_rate": decay_rate, "staircase": staircase, "name": "ExponentialDecay"})
            }
            LearningRateSchedule::InverseTimeDecay { initial_learning_rate, decay_steps, decay_rate, staircase } => {
                json!({"initial_learning_rate": initial_learning_rate, "decay_steps": steps(decay_steps),
                       "decay_rate": decay_rate, "staircase": staircase, "name": "InverseTimeDecay"})
            }
            LearningRateSchedule::PiecewiseConstantDecay(ref p) => json!({
                "boundaries": p.boundaries().iter().map(|&b| steps(b)).collect::<Vec<_>>(),
                "values": p.values(), "name": "PiecewiseConstant",
            }),
            LearningRateSchedule::PolynomialDecay {
                initial_learning_rate,
                decay_steps,
                end_learning_rate,
                power,
                cycle,
            } => json!({"initial_learning_rate": initial_learning_rate, "decay_steps": steps(decay_steps),
                        "end_learning_rate": end_learning_rate, "power": power, "cycle": cycle,
                        "name": "PolynomialDecay"}),
            LearningRateSchedule::CosineDecay {
                initial_learning_rate,
                decay_steps,
                alpha,
                warmup_target,
                warmup_steps,
            } => {
                json!({"initial_learning_rate": initial_learning_rate, "decay_steps": steps(decay_steps),
                       "alpha": alpha, "name": "CosineDecay", "warmup_target": warmup_target,
                       "warmup_steps": steps(warmup_steps)})
            }
        }
    }

    /// Keras 3's serialised form: `{"module", "class_name", "config", "registered_name"}`
    /// (which tf_keras reads too).
    pub fn to_keras(&self) -> Value {
        json!({"module": "keras.optimizers.schedules", "class_name": self.class_name(),
               "config": self.to_config(), "registered_name": null})
    }

    /// Reads a serialised schedule (`{"class_name", "config"}`, with or without `module`).
    pub fn from_config(v: &Value) -> Result<Self> {
        let class = v
            .get("class_name")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::config("learning-rate schedule without class_name"))?;
        let empty = Map::new();
        let cfg = v.get("config").and_then(Value::as_object).unwrap_or(&empty);
        let what = |key: &str| format!("{class} {key}");
        let num = |key: &str| -> Result<Option<f64>> {
            match cfg.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::Number(n)) => Ok(n.as_f64()),
                Some(other) => Err(Error::config(format!("{} must be a number, not {other}", what(key)))),
            }
        };
        let need = |key: &str| num(key)?.ok_or_else(|| Error::config(format!("{} is missing", what(key))));
        let flag = |key: &str| cfg.get(key).and_then(Value::as_bool).unwrap_or(false);
        let decay_steps = || -> Result<f64> {
            let d = need("decay_steps")?;
            if d > 0.0 {
                Ok(d)
            } else {
                Err(Error::config(format!("{class} decay_steps must be > 0, not {d}")))
            }
        };
        let class = class.rsplit('>').next().unwrap_or(class);
        let s = match class {
            "ExponentialDecay" => LearningRateSchedule::ExponentialDecay {
                initial_learning_rate: need("initial_learning_rate")? as f32,
                decay_steps: decay_steps()?,
                decay_rate: need("decay_rate")? as f32,
                staircase: flag("staircase"),
            },
            "InverseTimeDecay" => LearningRateSchedule::InverseTimeDecay {
                initial_learning_rate: need("initial_learning_rate")? as f32,
                decay_steps: decay_steps()?,
                decay_rate: need("decay_rate")? as f32,
                staircase: flag("staircase"),
            },
            "PolynomialDecay" => LearningRateSchedule::PolynomialDecay {
                initial_learning_rate: need("initial_learning_rate")? as f32,
                decay_steps: decay_steps()?,
                end_learning_rate: num("end_learning_rate")?.unwrap_or(0.0001) as f32,
                power: num("power")?.unwrap_or(1.0) as f32,
                cycle: flag("cycle"),
            },
            "CosineDecay" => LearningRateSchedule::CosineDecay {
                initial_learning_rate: need("initial_learning_rate")? as f32,
                decay_steps: decay_steps()?,
                alpha: num("alpha")?.unwrap_or(0.0) as f32,
                warmup_target: num("warmup_target")?.map(|x| x as f32),
                warmup_steps: num("warmup_steps")?.unwrap_or(0.0),
            },
            "PiecewiseConstantDecay" => {
                let list = |key: &str| -> Result<Vec<f64>> {
                    cfg.get(key)
                        .and_then(Value::as_array)
                        .ok_or_else(|| Error::config(format!("{} must be a list", what(key))))?
                        .iter()
                        .map(|x| x.as_f64().ok_or_else(|| Error::config(format!("{} holds {x}", what(key)))))
                        .collect()
                };
                let values: Vec<f32> = list("values")?.into_iter().map(|x| x as f32).collect();
                LearningRateSchedule::PiecewiseConstantDecay(Piecewise::new(&list("boundaries")?, &values)?)
            }
            other => {
                return Err(Error::config(format!(
                    "unknown learning-rate schedule {other:?} (convnet has ExponentialDecay, \
                     PiecewiseConstantDecay, CosineDecay, InverseTimeDecay, PolynomialDecay)"
                )))
            }
        };
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> Value {
        let text = include_str!("../../tests/fixtures/optimizers/keras3.json");
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn rates_match_keras_at_every_step() {
        let f = fixture();
        let steps: Vec<u64> = f["schedule_steps"].as_array().unwrap().iter().map(|s| s.as_u64().unwrap()).collect();
        let cases = f["schedules"].as_object().unwrap();
        assert_eq!(cases.len(), 9);
        for (name, case) in cases {
            let s = LearningRateSchedule::from_config(&case["config"]).unwrap();
            for (i, &t) in steps.iter().enumerate() {
                let want = case["rates"][i].as_f64().unwrap();
                let got = s.rate(t) as f64;
                assert!((got - want).abs() <= 1e-6 * want.abs() + 1e-12, "{name} at step {t}: {got} vs Keras {want}");
            }
            // Written back, Keras' config reads as the same schedule.
            assert_eq!(LearningRateSchedule::from_config(&s.to_keras()).unwrap(), s, "{name}");
        }
    }

    #[test]
    fn bad_schedules_are_refused() {
        let bad = [
            json!({"class_name": "ExponentialDecay", "config": {"initial_learning_rate": 0.1, "decay_steps": 0, "decay_rate": 0.5}}),
            json!({"class_name": "PiecewiseConstantDecay", "config": {"boundaries": [1, 2], "values": [0.1, 0.2]}}),
            json!({"class_name": "CosineDecayRestarts", "config": {}}),
            json!({"class_name": "ExponentialDecay", "config": {"decay_steps": 3, "decay_rate": 0.5}}),
        ];
        for b in bad {
            assert!(LearningRateSchedule::from_config(&b).is_err(), "{b}");
        }
        let many: Vec<f64> = (0..MAX_PIECES as i32).map(f64::from).collect();
        assert!(Piecewise::new(&many, &[0.1; MAX_PIECES + 1]).is_err());
    }
}
