//! Weight initializers: every Keras built-in, with Keras' names, defaults, formulas and configs.
//!
//! Fans follow Keras' `compute_fans`: a Dense kernel `[in, out]` has `fan_in = in`,
//! `fan_out = out`; a Conv2D kernel `[kh, kw, c, f]` has `fan_in = kh·kw·c`, `fan_out = kh·kw·f`;
//! a bias `[n]` has both `n`. `VarianceScaling(scale, mode, distribution)` divides `scale` by
//! `max(1, n)` with `n` the fan of `mode` (`fan_avg`: the mean of both), then draws from
//!
//! - `truncated_normal`: a normal cut at two deviations, of deviation `sqrt(scale) / 0.8796…`
//!   (the deviation of a standard normal cut at ±2, so the values keep the intended variance);
//! - `untruncated_normal`: a normal of deviation `sqrt(scale)`;
//! - `uniform`: uniform in `±sqrt(3·scale)`.
//!
//! Glorot (`fan_avg`, scale 1), He (`fan_in`, scale 2) and Lecun (`fan_in`, scale 1), each
//! uniform or truncated normal, are its special cases. `Orthogonal(gain)` takes the `Q` of the QR
//! decomposition of a normal matrix of `(max(r, c), min(r, c))` with `r` the product of all but
//! the last axis and `c` the last, its columns' signs set so that `R` has a positive diagonal
//! (which makes `Q` unique), transposed when `r < c`, times `gain`, reshaped to the weight.
//! `Identity(gain)` is `gain` times the (possibly rectangular) identity, for 2-D weights only.
//!
//! Seeds follow Keras: an initializer with an integer `seed` draws from its own generator
//! seeded with it, so it gives the same values each time it is called (two layers given the same
//! seeded initializer start equal); without a seed the draws come from the model's generator.
//!
//! Configs are read in both dialects, Keras 3's (`{"module": "keras.initializers", "class_name",
//! "config": {…, "input_axes": null, "output_axes": null}, "registered_name": null}`) and
//! tf_keras' (the same without the axes), snake-case aliases included. They are written with
//! tf_keras' keys, which both load (tf_keras refuses the axes keys). An initializer convnet does
//! not know (a custom class, `STFT`, fan axes) is kept as read and written back unchanged: it
//! does not block loading a trained file, whose weights replace the initial values, but building
//! a new model with it is an error naming it.

use crate::error::{Error, Result};
use crate::rng::Rng;
use serde_json::{json, Map, Value};

/// Deviation correction for a normal truncated at ±2σ (Keras' constant).
const TRUNCATION_CORRECTION: f32 = 0.879_625_7;

/// Which fan divides a [`Initializer::VarianceScaling`] scale (Keras' `mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FanMode {
    /// Input units (`"fan_in"`).
    FanIn,
    /// Output units (`"fan_out"`).
    FanOut,
    /// Mean of input and output units (`"fan_avg"`).
    FanAvg,
}

/// The distribution of a [`Initializer::VarianceScaling`] (Keras' `distribution`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Distribution {
    /// Normal cut at two deviations (`"truncated_normal"`; Keras 2's `"normal"`).
    TruncatedNormal,
    /// Plain normal (`"untruncated_normal"`).
    UntruncatedNormal,
    /// Uniform (`"uniform"`).
    Uniform,
}

impl FanMode {
    /// Keras' name.
    pub fn name(self) -> &'static str {
        match self {
            FanMode::FanIn => "fan_in",
            FanMode::FanOut => "fan_out",
            FanMode::FanAvg => "fan_avg",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "fan_in" => Ok(FanMode::FanIn),
            "fan_out" => Ok(FanMode::FanOut),
            "fan_avg" => Ok(FanMode::FanAvg),
            _ => Err(Error::config(format!("VarianceScaling: mode {s:?} is not one of fan_in, fan_out, fan_avg"))),
        }
    }
}

impl Distribution {
    /// Keras' name.
    pub fn name(self) -> &'static str {
        match self {
            Distribution::TruncatedNormal => "truncated_normal",
            Distribution::UntruncatedNormal => "untruncated_normal",
            Distribution::Uniform => "uniform",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            // Keras maps Keras 2's "normal" to the truncated normal.
            "truncated_normal" | "normal" => Ok(Distribution::TruncatedNormal),
            "untruncated_normal" => Ok(Distribution::UntruncatedNormal),
            "uniform" => Ok(Distribution::Uniform),
            _ => Err(Error::config(format!(
                "VarianceScaling: distribution {s:?} is not one of truncated_normal, untruncated_normal, uniform"
            ))),
        }
    }
}

/// Keras' `seed` argument of a random initializer.
#[derive(Clone, Debug, PartialEq)]
pub enum Seed {
    /// An integer: the initializer draws from a generator seeded with it, the same values at
    /// every call.
    Fixed(i64),
    /// A serialised `keras.random.SeedGenerator`, kept as read: its draws change from call to
    /// call, so they come from the model's generator.
    Generator(Value),
}

impl Seed {
    fn to_json(&self) -> Value {
        match self {
            Seed::Fixed(s) => json!(s),
            Seed::Generator(v) => v.clone(),
        }
    }
}

/// A rule for the initial values of a weight (Keras' `kernel_initializer` / `bias_initializer`).
#[derive(Clone, Debug, PartialEq)]
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
    /// Keras' `VarianceScaling` (defaults: scale 1, `fan_in`, `truncated_normal`).
    VarianceScaling {
        /// Scaling factor, positive.
        scale: f32,
        /// Which fan divides the scale.
        mode: FanMode,
        /// The distribution drawn from.
        distribution: Distribution,
    },
    /// A (semi-)orthogonal matrix times `gain` (Keras' `Orthogonal`, default gain 1).
    Orthogonal {
        /// Multiplicative factor.
        gain: f32,
    },
    /// The identity matrix times `gain`, 2-D weights only (Keras' `Identity`, default gain 1).
    Identity {
        /// Multiplicative factor.
        gain: f32,
    },
    /// A random initializer with Keras' `seed` argument (see [`Initializer::with_seed`]).
    Seeded {
        /// The initializer.
        init: Box<Initializer>,
        /// Its seed.
        seed: Seed,
    },
    /// An initializer convnet cannot compute, kept as read from a Keras config (written back
    /// unchanged; filled with zeros when a file's weights replace it, an error otherwise).
    Unsupported(Value),
}

/// Keras' module name of built-in initializers, as both Keras 3 and tf_keras write it.
const MODULE: &str = "keras.initializers";

/// A float written as its shortest decimal (0.1, not 0.10000000149011612).
pub(crate) fn num(x: f32) -> Value {
    x.to_string().parse::<f64>().ok().and_then(serde_json::Number::from_f64).map_or(Value::Null, Value::Number)
}

/// True when a serialised object (`{"module", "class_name", "registered_name"}`) names one of
/// Keras' own classes: a class from another module or registered under another name is a
/// custom one, whatever its class name.
pub(crate) fn keras_builtin(o: &Map<String, Value>, class: &str) -> bool {
    let module_ok = match o.get("module") {
        None | Some(Value::Null) => true,
        Some(Value::String(m)) => {
            m == "keras" || m.starts_with("keras.") || m == "tf_keras" || m.starts_with("tf_keras.")
        }
        Some(_) => false,
    };
    let registered_ok = match o.get("registered_name") {
        None | Some(Value::Null) => true,
        Some(Value::String(r)) => r == class,
        Some(_) => false,
    };
    module_ok && registered_ok
}

/// Why an initializer convnet knows by name is not runnable here.
fn unrunnable(class: &str) -> Option<&'static str> {
    match class.to_ascii_lowercase().replace('_', "").as_str() {
        "stft" | "stftinitializer" => {
            Some("STFT makes (frame_length, 1, bins) kernels for STFTSpectrogram; convnet's layers cannot use it")
        }
        _ => None,
    }
}

impl Initializer {
    /// Parses a Keras initializer name (snake or class case) with its default arguments.
    pub fn parse(name: &str) -> Result<Self> {
        let lower = name.to_ascii_lowercase().replace('_', "");
        // tf_keras also registers each class with a "V2" suffix.
        let key = lower.strip_suffix("v2").unwrap_or(&lower);
        Ok(match key {
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
            "variancescaling" => Initializer::VarianceScaling {
                scale: 1.0,
                mode: FanMode::FanIn,
                distribution: Distribution::TruncatedNormal,
            },
            "orthogonal" | "orthogonalinitializer" => Initializer::Orthogonal { gain: 1.0 },
            "identity" | "identityinitializer" => Initializer::Identity { gain: 1.0 },
            _ => {
                if let Some(why) = unrunnable(name) {
                    return Err(Error::config(format!("initializer {name:?}: {why}")));
                }
                return Err(Error::config(format!(
                    "unknown initializer {name:?} (convnet has glorot_uniform, glorot_normal, he_uniform, \
                     he_normal, lecun_uniform, lecun_normal, variance_scaling, orthogonal, identity, \
                     truncated_normal, random_normal, random_uniform, constant, zeros, ones)"
                )));
            }
        })
    }

    /// This initializer with Keras' integer `seed`: its own generator, the same values at every
    /// call. Initializers that draw nothing (zeros, ones, constant, identity) are returned as
    /// they are.
    pub fn with_seed(self, seed: i64) -> Self {
        self.with(Some(Seed::Fixed(seed)))
    }

    fn with(self, seed: Option<Seed>) -> Self {
        let base = match self {
            Initializer::Seeded { init, .. } => *init,
            other => other,
        };
        match seed {
            Some(seed) if base.is_random() => Initializer::Seeded { init: Box::new(base), seed },
            _ => base,
        }
    }

    /// The initializer without its seed, and the seed (the outermost, should seeds nest).
    fn parts(&self) -> (&Initializer, Option<&Seed>) {
        let (mut init, mut outer) = (self, None);
        while let Initializer::Seeded { init: inner, seed } = init {
            outer = outer.or(Some(seed));
            init = inner;
        }
        (init, outer)
    }

    /// True for initializers that draw random numbers (and so take a `seed`).
    fn is_random(&self) -> bool {
        !matches!(
            self,
            Initializer::Zeros
                | Initializer::Ones
                | Initializer::Constant(_)
                | Initializer::Identity { .. }
                | Initializer::Unsupported(_)
        )
    }

    /// Keras' `seed`: an integer, or `None` for draws from the model's generator.
    pub fn seed(&self) -> Option<i64> {
        match self.parts().1 {
            Some(Seed::Fixed(s)) => Some(*s),
            _ => None,
        }
    }

    /// True when convnet can compute the values (not an [`Initializer::Unsupported`] one).
    pub fn is_supported(&self) -> bool {
        !matches!(self.parts().0, Initializer::Unsupported(_))
    }

    /// Reads Keras' config form: a name string, or `{"class_name": …, "config": {…}}` as Keras 3
    /// or tf_keras write it. A class convnet does not know, a custom (registered) class or an
    /// argument convnet does not implement gives [`Initializer::Unsupported`], kept as read;
    /// malformed arguments of a known class are errors, as in Keras.
    pub fn from_config(v: &Value) -> Result<Self> {
        match v {
            Value::String(s) => Ok(Initializer::parse(s).unwrap_or_else(|_| Initializer::Unsupported(v.clone()))),
            Value::Object(o) => {
                let class = o
                    .get("class_name")
                    .and_then(Value::as_str)
                    .ok_or_else(|| Error::config("initializer config without class_name"))?;
                let empty = Map::new();
                let cfg = match o.get("config") {
                    Some(Value::Object(c)) => c,
                    None | Some(Value::Null) => &empty,
                    Some(other) => {
                        return Err(Error::config(format!(
                            "initializer {class}: config must be an object, not {other}"
                        )))
                    }
                };
                // Keras 3's fan axes change the fans; convnet keeps them as written.
                let axes = ["input_axes", "output_axes"].iter().any(|k| cfg.get(*k).is_some_and(|a| !a.is_null()));
                let init = match Initializer::parse(class) {
                    Ok(init) if keras_builtin(o, class) && !axes => init,
                    _ => return Ok(Initializer::Unsupported(v.clone())),
                };
                Initializer::with_arguments(init, class, cfg)
            }
            Value::Null => Err(Error::config("initializer is null")),
            other => Err(Error::config(format!("initializer must be a name or an object, not {other}"))),
        }
    }

    /// Sets the arguments of `init` (of Keras class `class`) from its `config` object.
    fn with_arguments(mut init: Initializer, class: &str, cfg: &Map<String, Value>) -> Result<Self> {
        let num = |key: &str, default: f32| -> Result<f32> {
            match cfg.get(key) {
                None | Some(Value::Null) => Ok(default),
                Some(v) => v.as_f64().map(|x| x as f32).filter(|x| x.is_finite()).ok_or_else(|| {
                    Error::config(format!("initializer {class}: `{key}` must be a finite number, not {v}"))
                }),
            }
        };
        match &mut init {
            Initializer::Constant(c) => *c = num("value", 0.0)?,
            Initializer::RandomNormal { mean, stddev } | Initializer::TruncatedNormal { mean, stddev } => {
                *mean = num("mean", 0.0)?;
                *stddev = num("stddev", 0.05)?;
            }
            Initializer::RandomUniform { minval, maxval } => {
                *minval = num("minval", -0.05)?;
                *maxval = num("maxval", 0.05)?;
            }
            Initializer::VarianceScaling { scale, mode, distribution } => {
                *scale = num("scale", 1.0)?;
                if *scale <= 0.0 {
                    return Err(Error::config(format!("VarianceScaling: scale must be positive, not {scale}")));
                }
                let text = |key: &str| match cfg.get(key) {
                    None | Some(Value::Null) => Ok(None),
                    Some(Value::String(s)) => Ok(Some(s.as_str())),
                    Some(v) => Err(Error::config(format!("VarianceScaling: `{key}` must be a string, not {v}"))),
                };
                *mode = text("mode")?.map_or(Ok(FanMode::FanIn), FanMode::parse)?;
                *distribution = text("distribution")?.map_or(Ok(Distribution::TruncatedNormal), Distribution::parse)?;
            }
            Initializer::Orthogonal { gain } | Initializer::Identity { gain } => *gain = num("gain", 1.0)?,
            _ => {}
        }
        let seed = match cfg.get("seed") {
            None | Some(Value::Null) => None,
            Some(v) => match v.as_i64().or_else(|| v.as_u64().map(|u| u as i64)) {
                Some(s) => Some(Seed::Fixed(s)),
                None if v.is_object() => Some(Seed::Generator(v.clone())),
                None => return Err(Error::config(format!("initializer {class}: seed must be an integer, not {v}"))),
            },
        };
        Ok(init.with(seed))
    }

    /// Keras' class name (for a kept initializer, the class name it was read with).
    pub fn class_name(&self) -> &str {
        match self.parts().0 {
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
            Initializer::VarianceScaling { .. } => "VarianceScaling",
            Initializer::Orthogonal { .. } => "Orthogonal",
            Initializer::Identity { .. } => "Identity",
            Initializer::Unsupported(v) => match v {
                Value::String(s) => s,
                other => other.get("class_name").and_then(Value::as_str).unwrap_or("?"),
            },
            Initializer::Seeded { .. } => "Seeded",
        }
    }

    /// Keras' serialised form, `{"module": "keras.initializers", "class_name", "config",
    /// "registered_name": null}` with tf_keras' config keys (which Keras 3 loads too); a kept
    /// initializer is written exactly as it was read.
    pub fn to_config(&self) -> Value {
        let (init, seed) = self.parts();
        let seed = seed.map_or(Value::Null, Seed::to_json);
        let config = match *init {
            Initializer::Unsupported(ref v) => return v.clone(),
            Initializer::Zeros | Initializer::Ones => json!({}),
            Initializer::Constant(v) => json!({ "value": num(v) }),
            Initializer::RandomNormal { mean, stddev } | Initializer::TruncatedNormal { mean, stddev } => {
                json!({ "mean": num(mean), "stddev": num(stddev), "seed": seed })
            }
            Initializer::RandomUniform { minval, maxval } => {
                json!({ "minval": num(minval), "maxval": num(maxval), "seed": seed })
            }
            Initializer::VarianceScaling { scale, mode, distribution } => json!({
                "scale": num(scale), "mode": mode.name(), "distribution": distribution.name(), "seed": seed
            }),
            Initializer::Orthogonal { gain } => json!({ "gain": num(gain), "seed": seed }),
            Initializer::Identity { gain } => json!({ "gain": num(gain) }),
            _ => json!({ "seed": seed }),
        };
        json!({ "module": MODULE, "class_name": self.class_name(), "config": config, "registered_name": null })
    }

    /// The equivalent `VarianceScaling` arguments of the Glorot, He and Lecun initializers.
    fn variance_scaling(&self) -> Option<(f32, FanMode, Distribution)> {
        use Distribution::{TruncatedNormal as Tn, Uniform as U};
        Some(match *self {
            Initializer::GlorotUniform => (1.0, FanMode::FanAvg, U),
            Initializer::GlorotNormal => (1.0, FanMode::FanAvg, Tn),
            Initializer::HeUniform => (2.0, FanMode::FanIn, U),
            Initializer::HeNormal => (2.0, FanMode::FanIn, Tn),
            Initializer::LecunUniform => (1.0, FanMode::FanIn, U),
            Initializer::LecunNormal => (1.0, FanMode::FanIn, Tn),
            Initializer::VarianceScaling { scale, mode, distribution } => (scale, mode, distribution),
            _ => return None,
        })
    }

    /// Fills `values` for a weight of `shape`, drawing from `rng` unless the initializer has an
    /// integer seed. Fails for an [`Initializer::Unsupported`] initializer and for shapes Keras
    /// refuses too (`Orthogonal` below 2-D, `Identity` other than 2-D).
    pub fn fill(&self, values: &mut [f32], shape: &[usize], rng: &mut Rng) -> Result<()> {
        if shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)) != Some(values.len()) {
            return Err(Error::shape(format!("{} values cannot fill a weight of shape {shape:?}", values.len())));
        }
        let (init, seed) = self.parts();
        match seed {
            Some(Seed::Fixed(s)) => init.fill_from(values, shape, &mut Rng::new(*s as u64)),
            _ => init.fill_from(values, shape, rng),
        }
    }

    fn fill_from(&self, values: &mut [f32], shape: &[usize], rng: &mut Rng) -> Result<()> {
        if let Some((scale, mode, distribution)) = self.variance_scaling() {
            let (fan_in, fan_out) = fans(shape);
            let n = match mode {
                FanMode::FanIn => fan_in,
                FanMode::FanOut => fan_out,
                FanMode::FanAvg => (fan_in + fan_out) / 2.0,
            };
            let scale = scale / n.max(1.0);
            match distribution {
                Distribution::TruncatedNormal => {
                    let std = scale.sqrt() / TRUNCATION_CORRECTION;
                    values.iter_mut().for_each(|v| *v = rng.truncated_normal(0.0, std));
                }
                Distribution::UntruncatedNormal => {
                    let std = scale.sqrt();
                    values.iter_mut().for_each(|v| *v = std * rng.normal() as f32);
                }
                Distribution::Uniform => {
                    let limit = (3.0 * scale).sqrt();
                    values.iter_mut().for_each(|v| *v = rng.uniform_range(-limit, limit));
                }
            }
            return Ok(());
        }
        match *self {
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
            Initializer::Orthogonal { gain } => orthogonal(values, shape, gain, rng)?,
            Initializer::Identity { gain } => {
                let [rows, cols] = shape else {
                    return Err(Error::config(format!(
                        "the Identity initializer makes 2-D weights only, not shape {shape:?}"
                    )));
                };
                values.fill(0.0);
                for i in 0..(*rows).min(*cols) {
                    values[i * cols + i] = gain;
                }
            }
            Initializer::Unsupported(_) => {
                let class = self.class_name();
                let why = unrunnable(class)
                    .unwrap_or("convnet cannot compute it (a custom class, or Keras 3's input_axes/output_axes)");
                return Err(Error::config(format!(
                    "initializer {class} ({}): {why}; choose one of Keras' built-in initializers",
                    self.to_config()
                )));
            }
            // Variance scaling returned above; `parts` unwrapped the seeds.
            _ => {}
        }
        Ok(())
    }
}

/// Keras' `Orthogonal`: see the module documentation.
fn orthogonal(values: &mut [f32], shape: &[usize], gain: f32, rng: &mut Rng) -> Result<()> {
    if shape.len() < 2 {
        return Err(Error::config(format!(
            "the Orthogonal initializer needs a weight of at least 2 axes, not shape {shape:?}"
        )));
    }
    let cols = shape[shape.len() - 1];
    let rows = values.len() / cols.max(1);
    let (m, n) = (rows.max(cols), rows.min(cols));
    if n == 0 {
        return Ok(());
    }
    // `a` is m×n, row-major, drawn in that order as Keras draws its flat matrix.
    let mut a: Vec<f64> = (0..m * n).map(|_| rng.normal()).collect();
    let q = thin_q(&mut a, m, n);
    // q is m×n; Keras transposes it when the weight has fewer rows than columns.
    for r in 0..rows {
        for c in 0..cols {
            let v = if rows >= cols { q[r * n + c] } else { q[c * n + r] };
            values[r * cols + c] = gain * v as f32;
        }
    }
    Ok(())
}

/// The `Q` (m×n, row-major) of the thin QR decomposition of the m×n matrix `a` (m ≥ n), with
/// columns signed so that `R` has a non-negative diagonal (Keras' `q *= sign(diag(r))`).
/// Householder reflections; `a` is overwritten.
fn thin_q(a: &mut [f64], m: usize, n: usize) -> Vec<f64> {
    let mut vs: Vec<Vec<f64>> = Vec::with_capacity(n);
    let mut diag = vec![0.0f64; n];
    for k in 0..n {
        let norm = (k..m).map(|i| a[i * n + k] * a[i * n + k]).sum::<f64>().sqrt();
        let x0 = a[k * n + k];
        let alpha = if x0 >= 0.0 { -norm } else { norm };
        let mut v: Vec<f64> = (k..m).map(|i| a[i * n + k]).collect();
        v[0] -= alpha;
        let vnorm2 = v.iter().map(|x| x * x).sum::<f64>();
        diag[k] = alpha;
        if vnorm2 > 0.0 {
            // Apply H = I − 2vvᵀ/(vᵀv) to the remaining columns.
            for j in k..n {
                let dot: f64 = (k..m).map(|i| v[i - k] * a[i * n + j]).sum();
                let f = 2.0 * dot / vnorm2;
                for i in k..m {
                    a[i * n + j] -= f * v[i - k];
                }
            }
        } else {
            diag[k] = x0;
        }
        vs.push(if vnorm2 > 0.0 { v.iter().map(|x| x / vnorm2.sqrt()).collect() } else { Vec::new() });
    }
    // Q = H_0 · … · H_{n−1} applied to the first n columns of the identity.
    let mut q = vec![0.0f64; m * n];
    for j in 0..n {
        q[j * n + j] = 1.0;
    }
    for k in (0..n).rev() {
        let v = &vs[k];
        if v.is_empty() {
            continue;
        }
        for j in 0..n {
            let dot: f64 = (k..m).map(|i| v[i - k] * q[i * n + j]).sum();
            for i in k..m {
                q[i * n + j] -= 2.0 * dot * v[i - k];
            }
        }
    }
    for (j, d) in diag.iter().enumerate() {
        let s = if *d > 0.0 {
            1.0
        } else if *d < 0.0 {
            -1.0
        } else {
            0.0
        };
        for i in 0..m {
            q[i * n + j] *= s;
        }
    }
    q
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

    fn stats(v: &[f32]) -> (f64, f64, f32) {
        let n = v.len() as f64;
        let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
        let var = v.iter().map(|&x| (x as f64 - mean) * (x as f64 - mean)).sum::<f64>() / n;
        let maxabs = v.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        (mean, var, maxabs)
    }

    fn filled(init: &Initializer, shape: &[usize], seed: u64) -> Vec<f32> {
        let mut v = vec![f32::NAN; shape.iter().product()];
        init.fill(&mut v, shape, &mut Rng::new(seed)).unwrap();
        v
    }

    /// Every mode and distribution, on a Dense and a Conv2D shape: mean 0, the variance
    /// `scale / n` (within 3%), and the bounds (±limit for uniform, ±2σ/0.8796 truncated).
    #[test]
    fn variance_scaling_statistics_match_keras_formulas() {
        let shapes: [&[usize]; 2] = [&[300, 500], &[3, 3, 40, 200]];
        for (si, shape) in shapes.iter().enumerate() {
            let (fi, fo) = fans(shape);
            for mode in [FanMode::FanIn, FanMode::FanOut, FanMode::FanAvg] {
                for distribution in
                    [Distribution::TruncatedNormal, Distribution::UntruncatedNormal, Distribution::Uniform]
                {
                    let scale = 1.7f32;
                    let init = Initializer::VarianceScaling { scale, mode, distribution };
                    let v = filled(&init, shape, 10 + si as u64);
                    let n = match mode {
                        FanMode::FanIn => fi,
                        FanMode::FanOut => fo,
                        FanMode::FanAvg => (fi + fo) / 2.0,
                    };
                    let want = (scale / n) as f64;
                    let (mean, var, maxabs) = stats(&v);
                    let what = format!("{mode:?} {distribution:?} {shape:?}");
                    assert!(mean.abs() < 0.02 * want.sqrt(), "{what}: mean {mean}");
                    assert!((var - want).abs() < 0.03 * want, "{what}: variance {var} vs {want}");
                    match distribution {
                        Distribution::Uniform => {
                            let limit = (3.0 * want).sqrt() as f32;
                            assert!(maxabs <= limit && maxabs > 0.99 * limit, "{what}: {maxabs} vs {limit}");
                        }
                        Distribution::TruncatedNormal => {
                            let bound = 2.0 * want.sqrt() as f32 / TRUNCATION_CORRECTION;
                            assert!(maxabs <= bound * 1.000_01 && maxabs > 0.99 * bound, "{what}: {maxabs} vs {bound}");
                        }
                        // An untruncated normal goes past two deviations (4.6% of values).
                        Distribution::UntruncatedNormal => {
                            let beyond = v.iter().filter(|x| x.abs() as f64 > 2.0 * want.sqrt()).count() as f64;
                            let frac = beyond / v.len() as f64;
                            assert!((frac - 0.0455).abs() < 0.005, "{what}: {frac} beyond 2σ");
                        }
                    }
                }
            }
        }
    }

    /// Glorot, He and Lecun are VarianceScaling with Keras' arguments: the same draws.
    #[test]
    fn named_initializers_are_variance_scaling_special_cases() {
        use Distribution::{TruncatedNormal as Tn, Uniform as U};
        let cases = [
            (Initializer::GlorotUniform, 1.0, FanMode::FanAvg, U),
            (Initializer::GlorotNormal, 1.0, FanMode::FanAvg, Tn),
            (Initializer::HeUniform, 2.0, FanMode::FanIn, U),
            (Initializer::HeNormal, 2.0, FanMode::FanIn, Tn),
            (Initializer::LecunUniform, 1.0, FanMode::FanIn, U),
            (Initializer::LecunNormal, 1.0, FanMode::FanIn, Tn),
        ];
        let shape = [5, 5, 6, 16];
        for (init, scale, mode, distribution) in cases {
            let vs = Initializer::VarianceScaling { scale, mode, distribution };
            assert_eq!(filled(&init, &shape, 3), filled(&vs, &shape, 3), "{init:?}");
        }
        // And the formulas of the old module: glorot_uniform's limit, he_normal's deviation.
        let v = filled(&Initializer::GlorotUniform, &[200, 300], 1);
        let limit = (6.0f32 / 500.0).sqrt();
        assert!(stats(&v).2 <= limit && stats(&v).2 > 0.99 * limit);
        let v = filled(&Initializer::HeNormal, &[3, 3, 64, 128], 2);
        assert!((stats(&v).1 - 2.0 / 576.0).abs() < 0.03 * 2.0 / 576.0);
    }

    #[test]
    fn random_normal_uniform_truncated_statistics() {
        let shape = [400, 500];
        let v = filled(&Initializer::RandomNormal { mean: 0.5, stddev: 0.2 }, &shape, 4);
        let (m, var, _) = stats(&v);
        assert!((m - 0.5).abs() < 2e-3 && (var - 0.04).abs() < 0.03 * 0.04, "{m} {var}");
        let v = filled(&Initializer::RandomUniform { minval: -2.0, maxval: 0.5 }, &shape, 5);
        let (m, var, _) = stats(&v);
        assert!(v.iter().all(|&x| (-2.0..0.5).contains(&x)));
        assert!((m + 0.75).abs() < 5e-3 && (var - 2.5 * 2.5 / 12.0).abs() < 0.02 * 2.5 * 2.5 / 12.0, "{m} {var}");
        // A normal of deviation σ cut at ±2σ keeps a variance of 0.7737·σ².
        let v = filled(&Initializer::TruncatedNormal { mean: 1.0, stddev: 0.25 }, &shape, 6);
        let (m, var, _) = stats(&v);
        assert!(v.iter().all(|&x| (0.5..=1.5).contains(&x)));
        let want = 0.773_741_6 * 0.0625;
        assert!((m - 1.0).abs() < 2e-3 && (var - want).abs() < 0.02 * want, "{m} {var}");
        assert_eq!(filled(&Initializer::Constant(0.75), &[3, 4], 0), vec![0.75; 12]);
        assert_eq!(filled(&Initializer::Ones, &[5], 0), vec![1.0; 5]);
        assert_eq!(filled(&Initializer::Zeros, &[5], 0), vec![0.0; 5]);
    }

    /// `QᵀQ = gain²·I` over the shorter side, for tall, wide, square and conv shapes.
    fn assert_orthogonal(v: &[f32], rows: usize, cols: usize, gain: f32) {
        let (outer, inner, stride_o, stride_i) =
            if rows >= cols { (cols, rows, 1, cols) } else { (rows, cols, cols, 1) };
        for a in 0..outer {
            for b in 0..outer {
                let dot: f64 = (0..inner)
                    .map(|k| v[a * stride_o + k * stride_i] as f64 * v[b * stride_o + k * stride_i] as f64)
                    .sum();
                let want = if a == b { (gain * gain) as f64 } else { 0.0 };
                assert!((dot - want).abs() < 1e-5 * (1.0 + want), "({a},{b}): {dot} vs {want} in {rows}x{cols}");
            }
        }
    }

    #[test]
    fn orthogonal_is_orthogonal_for_every_shape() {
        for (shape, gain) in [
            (vec![20, 7], 1.0f32),
            (vec![7, 20], 1.0),
            (vec![16, 16], 2.5),
            (vec![3, 3, 4, 8], 1.0),  // 36 rows, 8 filters: orthonormal filters
            (vec![3, 3, 2, 32], 0.5), // 18 rows, 32 filters: orthogonal rows
            (vec![1, 1, 1, 1], 1.0),
        ] {
            let v = filled(&Initializer::Orthogonal { gain }, &shape, 9);
            let cols = *shape.last().unwrap();
            assert_orthogonal(&v, v.len() / cols, cols, gain);
        }
        // The sign correction makes R's diagonal positive, which fixes Q: for a 1×1 weight,
        // Q is the sign of the normal draw (R its magnitude), for either sign.
        let mut signs = [0; 2];
        for seed in 0..16 {
            let x = Rng::new(seed).normal();
            let q = filled(&Initializer::Orthogonal { gain: 1.0 }, &[1, 1], seed);
            assert_eq!(q, vec![x.signum() as f32]);
            signs[(x > 0.0) as usize] += 1;
        }
        assert!(signs[0] > 0 && signs[1] > 0);
        // Q·R recovers the drawn matrix (R = Qᵀ·A upper triangular with a positive diagonal).
        let (m, n) = (6, 4);
        let mut rng = Rng::new(21);
        let a: Vec<f64> = (0..m * n).map(|_| rng.normal()).collect();
        let q = thin_q(&mut a.clone(), m, n);
        for i in 0..n {
            for j in 0..n {
                let r: f64 = (0..m).map(|k| q[k * n + i] * a[k * n + j]).sum();
                if i > j {
                    assert!(r.abs() < 1e-12, "R[{i},{j}] = {r}");
                } else if i == j {
                    assert!(r > 0.0);
                }
            }
        }
        let mut v = vec![0.0; 5];
        assert!(Initializer::Orthogonal { gain: 1.0 }.fill(&mut v, &[5], &mut Rng::new(0)).is_err());
    }

    #[test]
    fn identity_is_gain_times_eye_and_2d_only() {
        let v = filled(&Initializer::Identity { gain: 3.0 }, &[2, 3], 0);
        assert_eq!(v, vec![3.0, 0.0, 0.0, 0.0, 3.0, 0.0]);
        let v = filled(&Initializer::Identity { gain: 1.0 }, &[3, 2], 0);
        assert_eq!(v, vec![1.0, 0.0, 0.0, 1.0, 0.0, 0.0]);
        let mut v = vec![0.0; 36];
        assert!(Initializer::Identity { gain: 1.0 }.fill(&mut v, &[3, 3, 2, 2], &mut Rng::new(0)).is_err());
    }

    /// An integer seed gives the same values at every call and leaves the model's generator
    /// alone; without one, successive calls differ.
    #[test]
    fn seeded_initializers_repeat() {
        let shape = [4, 4, 3, 8];
        for init in [
            Initializer::GlorotUniform,
            Initializer::HeNormal,
            Initializer::VarianceScaling {
                scale: 2.0,
                mode: FanMode::FanOut,
                distribution: Distribution::UntruncatedNormal,
            },
            Initializer::Orthogonal { gain: 1.0 },
            Initializer::RandomNormal { mean: 0.0, stddev: 1.0 },
            Initializer::RandomUniform { minval: 0.0, maxval: 1.0 },
            Initializer::TruncatedNormal { mean: 0.0, stddev: 1.0 },
        ] {
            let seeded = init.clone().with_seed(42);
            assert_eq!(seeded.seed(), Some(42));
            let mut rng = Rng::new(1);
            let before = rng.clone();
            let mut a = vec![0.0; 384];
            let mut b = vec![0.0; 384];
            seeded.fill(&mut a, &shape, &mut rng).unwrap();
            seeded.fill(&mut b, &shape, &mut rng).unwrap();
            assert_eq!(a, b, "{init:?}");
            assert_eq!(rng, before, "a seeded initializer draws from its own generator");
            let mut c = vec![0.0; 384];
            init.clone().with_seed(43).fill(&mut c, &shape, &mut rng).unwrap();
            assert_ne!(a, c);
            init.fill(&mut a, &shape, &mut rng).unwrap();
            init.fill(&mut b, &shape, &mut rng).unwrap();
            assert_ne!(a, b, "{init:?} unseeded");
        }
        assert_eq!(Initializer::Zeros.with_seed(3), Initializer::Zeros);
        let nested = Initializer::Seeded { init: Box::new(Initializer::HeNormal.with_seed(1)), seed: Seed::Fixed(2) };
        assert_eq!(nested.seed(), Some(2));
        assert_eq!(nested.class_name(), "HeNormal");
    }

    fn fixture() -> Value {
        serde_json::from_str(include_str!("../../tests/fixtures/initializers/keras_configs.json")).unwrap()
    }

    /// Numbers compared as numbers (Keras writes `0` and `0.0` alike for tf_keras' Constant).
    fn same_json(a: &Value, b: &Value) -> bool {
        match (a, b) {
            (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
            (Value::Object(x), Value::Object(y)) => {
                x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w)))
            }
            (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(v, w)| same_json(v, w)),
            _ => a == b,
        }
    }

    /// Every built-in initializer as Keras 3 and tf_keras serialise it (fixture written by
    /// `tests/fixtures/initializers/make.py`): both read to the same initializer, which writes
    /// tf_keras' form exactly (the form both Keras load, checked by the script).
    #[test]
    fn keras_configs_round_trip_in_both_dialects() {
        use Distribution::*;
        use FanMode::*;
        let expected = |case: &str| -> Initializer {
            match case {
                "glorot_uniform" => Initializer::GlorotUniform,
                "glorot_normal_seed" => Initializer::GlorotNormal.with_seed(7),
                "he_uniform" => Initializer::HeUniform,
                "he_normal_seed" => Initializer::HeNormal.with_seed(11),
                "lecun_uniform" => Initializer::LecunUniform,
                "lecun_normal" => Initializer::LecunNormal,
                "variance_scaling" => {
                    Initializer::VarianceScaling { scale: 1.0, mode: FanIn, distribution: TruncatedNormal }
                }
                "variance_scaling_fan_out_uniform" => {
                    Initializer::VarianceScaling { scale: 2.5, mode: FanOut, distribution: Uniform }.with_seed(3)
                }
                "variance_scaling_fan_avg_untruncated" => {
                    Initializer::VarianceScaling { scale: 0.5, mode: FanAvg, distribution: UntruncatedNormal }
                }
                "variance_scaling_normal_alias" => {
                    Initializer::VarianceScaling { scale: 1.5, mode: FanIn, distribution: TruncatedNormal }
                }
                "orthogonal" => Initializer::Orthogonal { gain: 1.0 },
                "orthogonal_gain_seed" => Initializer::Orthogonal { gain: 2.0 }.with_seed(5),
                "identity" => Initializer::Identity { gain: 1.0 },
                "identity_gain" => Initializer::Identity { gain: 3.0 },
                "truncated_normal" => Initializer::TruncatedNormal { mean: 0.0, stddev: 0.05 },
                "truncated_normal_args" => Initializer::TruncatedNormal { mean: 0.5, stddev: 0.25 }.with_seed(9),
                "random_normal" => Initializer::RandomNormal { mean: 0.0, stddev: 0.05 },
                "random_normal_args" => Initializer::RandomNormal { mean: -1.0, stddev: 0.125 }.with_seed(2),
                "random_uniform" => Initializer::RandomUniform { minval: -0.05, maxval: 0.05 },
                "random_uniform_args" => Initializer::RandomUniform { minval: -2.0, maxval: 0.5 },
                "constant" => Initializer::Constant(0.0),
                "constant_value" => Initializer::Constant(0.75),
                "zeros" => Initializer::Zeros,
                "ones" => Initializer::Ones,
                other => panic!("fixture case {other} has no expectation"),
            }
        };
        let fx = fixture();
        let cases = fx["initializers"].as_object().unwrap();
        assert_eq!(cases.len(), 24);
        for (case, forms) in cases {
            let want = expected(case);
            let k3 = Initializer::from_config(&forms["keras3"]).unwrap();
            let k2 = Initializer::from_config(&forms["tf_keras"]).unwrap();
            // Keras 3 forgets Identity's gain in its config: it reads back as the default.
            if case == "identity_gain" {
                assert_eq!(k3, Initializer::Identity { gain: 1.0 });
            } else {
                assert_eq!(k3, want, "{case} (Keras 3)");
            }
            assert_eq!(k2, want, "{case} (tf_keras)");
            let written = want.to_config();
            assert!(
                same_json(&written, &forms["tf_keras"]),
                "{case}: wrote {written}, tf_keras writes {}",
                forms["tf_keras"]
            );
            assert_eq!(written["module"], forms["keras3"]["module"]);
            assert_eq!(Initializer::from_config(&written).unwrap(), want);
        }
        // Inside layer configs, as Dense.get_config() writes them.
        for dialect in ["keras3", "tf_keras"] {
            let c = &fx["layer_configs"][dialect];
            assert_eq!(
                Initializer::from_config(&c["kernel_initializer"]).unwrap(),
                Initializer::VarianceScaling { scale: 2.0, mode: FanOut, distribution: Uniform }.with_seed(5)
            );
            assert_eq!(Initializer::from_config(&c["bias_initializer"]).unwrap(), Initializer::Constant(0.1));
        }
    }

    #[test]
    fn names_and_aliases() {
        for (name, want) in [
            ("glorot_uniform", Initializer::GlorotUniform),
            ("GlorotUniformV2", Initializer::GlorotUniform),
            ("variance_scaling", Initializer::parse("VarianceScaling").unwrap()),
            ("orthogonal", Initializer::Orthogonal { gain: 1.0 }),
            ("OrthogonalInitializer", Initializer::Orthogonal { gain: 1.0 }),
            ("identity", Initializer::Identity { gain: 1.0 }),
            ("IdentityInitializer", Initializer::Identity { gain: 1.0 }),
            ("normal", Initializer::RandomNormal { mean: 0.0, stddev: 0.05 }),
            ("uniform", Initializer::RandomUniform { minval: -0.05, maxval: 0.05 }),
            ("one", Initializer::Ones),
            ("zero", Initializer::Zeros),
            ("truncated_normal", Initializer::TruncatedNormal { mean: 0.0, stddev: 0.05 }),
        ] {
            assert_eq!(Initializer::parse(name).unwrap(), want, "{name}");
            assert_eq!(Initializer::from_config(&json!(name)).unwrap(), want, "{name}");
        }
        assert!(Initializer::parse("orthogonal_plus").is_err());
        let e = Initializer::parse("stft").unwrap_err().to_string();
        assert!(e.contains("STFT"), "{e}");
    }

    /// Unknown classes, custom registered ones, STFT and fan axes are kept and written back as
    /// read; filling fails naming them, except while a file's weights will replace the values.
    #[test]
    fn unknown_initializers_are_kept_and_refused_for_fresh_weights() {
        let kept = [
            json!({"module": "my_pkg", "class_name": "MyInit", "config": {"a": 1}, "registered_name": "Custom>MyInit"}),
            json!({"module": "__main__", "class_name": "Orthogonal", "config": {}, "registered_name": "Orthogonal"}),
            json!({"module": "keras.initializers", "class_name": "GlorotUniform",
                   "config": {"seed": null, "input_axes": [0], "output_axes": [1]}, "registered_name": null}),
            json!({"module": "keras.initializers", "class_name": "STFT",
                   "config": {"side": "real", "window": "hann", "periodic": false, "scaling": "density"}, "registered_name": null}),
            json!({"class_name": "Funky", "config": {}}),
            json!("my_init"),
        ];
        for v in kept {
            let init = Initializer::from_config(&v).unwrap();
            assert!(!init.is_supported(), "{v}");
            assert_eq!(init.to_config(), v);
            let mut w = vec![1.0; 6];
            let e = init.fill(&mut w, &[2, 3], &mut Rng::new(0)).unwrap_err().to_string();
            assert!(e.contains(init.class_name()), "{e}");
        }
        // Malformed arguments of a known class are errors, as in Keras.
        for bad in [
            json!({"class_name": "VarianceScaling", "config": {"scale": -1.0}}),
            json!({"class_name": "VarianceScaling", "config": {"mode": "fan_sideways"}}),
            json!({"class_name": "VarianceScaling", "config": {"distribution": "cauchy"}}),
            json!({"class_name": "RandomNormal", "config": {"stddev": "wide"}}),
            json!({"class_name": "HeNormal", "config": {"seed": "abc"}}),
        ] {
            assert!(Initializer::from_config(&bad).is_err(), "{bad}");
        }
        // A SeedGenerator seed is kept as written.
        let sg = json!({"module": "keras.random", "class_name": "SeedGenerator", "config": {"seed": 3}, "registered_name": null});
        let v = json!({"class_name": "HeNormal", "config": {"seed": sg}});
        let init = Initializer::from_config(&v).unwrap();
        assert_eq!(init.seed(), None);
        assert_eq!(init.to_config()["config"]["seed"], sg);
    }
}
