//! The preprocessing layers that scale pixels inside the model: `Rescaling`
//! (`y = x·scale + offset`) and `Normalization` (`y = (x − mean) / max(√variance, 1e-7)` per
//! channel, or with `invert` `y = mean + x·max(√variance, 1e-7)`), as Keras 3 computes them.
//!
//! `Normalization` takes its statistics from its config (`mean`, `variance`) or, when those
//! are null, from [`Normalization::adapt`] over a data set; adapted statistics are the
//! layer's non-trainable weights `mean`, `variance` and `count` (which Keras 3 leaves at zero),
//! as Keras stores them. Only
//! the last axis (the channels) is supported.

use super::basics::{layer_basics, meta_builders};
use super::{shape_str, ForwardCtx, Layer, Meta, Param};
use crate::error::{Error, Result};
use crate::rng::Rng;
use crate::tensor::Tensor;
use serde_json::{json, Map, Value};

/// Keras' `backend.epsilon()`, the floor of the standard deviation.
const EPSILON: f32 = 1e-7;

/// A finite number from a config; a list (per-channel scales) is refused by name.
fn number(c: &Map<String, Value>, key: &str, default: f64, layer: &str) -> Result<f64> {
    match c.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v.as_f64().filter(|x| x.is_finite()).ok_or_else(|| {
            Error::config(format!(
                "{layer}: `{key}` must be one finite number (convnet has no per-channel {key}), not {v}"
            ))
        }),
    }
}

/// Multiplies and shifts its input (Keras' `Rescaling`, e.g. `scale=1/255` for pixels).
pub struct Rescaling {
    meta: Meta,
    scale: f64,
    offset: f64,
    out_shape: Vec<usize>,
}

impl Rescaling {
    /// `y = x·scale + offset`.
    pub fn new(scale: f64, offset: f64) -> Self {
        Rescaling { meta: Meta::default(), scale, offset, out_shape: Vec::new() }
    }

    meta_builders!();

    /// Reads Keras' config.
    pub fn from_config(c: &Map<String, Value>) -> Result<Self> {
        let l = "Rescaling";
        let mut layer = Rescaling::new(number(c, "scale", f64::NAN, l)?, number(c, "offset", 0.0, l)?);
        if layer.scale.is_nan() {
            return Err(Error::config("Rescaling: `scale` is required"));
        }
        layer.meta = Meta::from_config(c)?;
        Ok(layer)
    }
}

impl Layer for Rescaling {
    layer_basics!("Rescaling", "rescaling");

    fn build(&mut self, input_shape: &[usize], _rng: &mut Rng) -> Result<Vec<usize>> {
        self.out_shape = input_shape.to_vec();
        Ok(self.out_shape.clone())
    }

    fn forward(&mut self, x: &Tensor, y: &mut Tensor, _ctx: &mut ForwardCtx<'_>) {
        let (s, o) = (self.scale as f32, self.offset as f32);
        for (out, &v) in y.data_mut().iter_mut().zip(x.data()) {
            *out = v * s + o;
        }
    }

    fn backward(&mut self, _x: &Tensor, _y: &Tensor, dy: &mut Tensor, dx: Option<&mut Tensor>) {
        let Some(dx) = dx else { return };
        let s = self.scale as f32;
        for (out, &g) in dx.data_mut().iter_mut().zip(dy.data()) {
            *out = g * s;
        }
    }

    fn config(&self) -> Map<String, Value> {
        let mut m = self.meta.config();
        m.insert("scale".into(), json!(self.scale));
        m.insert("offset".into(), json!(self.offset));
        m
    }
}

/// Standardizes each channel with a mean and a variance (Keras' `Normalization`, axis -1).
pub struct Normalization {
    meta: Meta,
    /// The statistics given in the config (one value, or one per channel), if any.
    given: Option<(Vec<f32>, Vec<f32>)>,
    invert: bool,
    out_shape: Vec<usize>,
    /// Adapted statistics: `mean`, `variance`, `count` (empty with given statistics).
    params: Vec<Param>,
    /// Per channel: the mean, then `max(√variance, ε)`.
    stats: Vec<f32>,
}

impl Default for Normalization {
    fn default() -> Self {
        Self::new()
    }
}

impl Normalization {
    /// A layer to [`adapt`](Normalization::adapt).
    pub fn new() -> Self {
        Normalization {
            meta: Meta::default(),
            given: None,
            invert: false,
            out_shape: Vec::new(),
            params: Vec::new(),
            stats: Vec::new(),
        }
    }

    /// With the statistics given (one value for every channel, or one per channel).
    pub fn with_statistics(mean: &[f32], variance: &[f32]) -> Self {
        Normalization { given: Some((mean.to_vec(), variance.to_vec())), ..Self::new() }
    }

    /// Undoes the normalization instead (`y = mean + x·σ`).
    pub fn invert(mut self, i: bool) -> Self {
        self.invert = i;
        self
    }

    meta_builders!();

    /// Reads Keras' config.
    pub fn from_config(c: &Map<String, Value>) -> Result<Self> {
        let l = "Normalization";
        match c.get("axis") {
            None => {}
            Some(Value::Number(n)) if n.as_i64() == Some(-1) => {}
            Some(Value::Array(a)) if a.len() == 1 && a[0].as_i64() == Some(-1) => {}
            Some(v) => {
                return Err(Error::config(format!(
                    "{l}: convnet normalizes the last axis only (axis=-1), not axis={v}"
                )))
            }
        }
        let list =
            |k: &str| -> Result<Option<Vec<f32>>> {
                match c.get(k) {
                    None | Some(Value::Null) => Ok(None),
                    Some(Value::Array(a)) => a
                        .iter()
                        .map(|v| v.as_f64().filter(|x| x.is_finite()).map(|x| x as f32))
                        .collect::<Option<Vec<f32>>>()
                        .map(Some)
                        .ok_or_else(|| Error::config(format!("{l}: `{k}` must be a list of numbers"))),
                    Some(v) => v.as_f64().filter(|x| x.is_finite()).map(|x| Some(vec![x as f32])).ok_or_else(|| {
                        Error::config(format!("{l}: `{k}` must be a number or a list of numbers, not {v}"))
                    }),
                }
            };
        let given = match (list("mean")?, list("variance")?) {
            (Some(m), Some(v)) if m.len() == v.len() => Some((m, v)),
            (None, None) => None,
            _ => {
                return Err(Error::config(format!("{l}: `mean` and `variance` must be given together, of one length")))
            }
        };
        // tf_keras writes the shape `adapt` saw, `[null, null, …]` for a layer adapted before
        // the model knew its input: no shape at all.
        let mut c = c.clone();
        if let Some(Value::Array(a)) = c.get("batch_input_shape") {
            if a.iter().skip(1).any(Value::is_null) {
                c.remove("batch_input_shape");
            }
        }
        Ok(Normalization {
            meta: Meta::from_config(&c)?,
            given,
            invert: super::cfg::bool_or(&c, "invert", false)?,
            ..Self::new()
        })
    }

    /// Sets the mean and variance of every channel from `data` (`[n, …, channels]`), over all
    /// its samples and positions, as Keras' `adapt` does with an array (the biased variance);
    /// builds the layer on `data`'s sample shape if needed.
    pub fn adapt(&mut self, data: &Tensor) -> Result<()> {
        if self.given.is_some() {
            return Err(Error::config("Normalization: a layer given its mean and variance cannot be adapted"));
        }
        let sample = data.shape().get(1..).unwrap_or(&[]).to_vec();
        if self.params.is_empty() || self.out_shape != sample {
            self.build(&sample, &mut Rng::new(0))?;
        }
        let c = self.stats.len() / 2;
        let rows = data.len() / c.max(1);
        if rows == 0 {
            return Err(Error::shape("Normalization: adapt needs at least one sample"));
        }
        let mut mean = vec![0.0f64; c];
        for row in data.data().chunks_exact(c) {
            for (m, &v) in mean.iter_mut().zip(row) {
                *m += f64::from(v);
            }
        }
        mean.iter_mut().for_each(|m| *m /= rows as f64);
        let mut var = vec![0.0f64; c];
        for row in data.data().chunks_exact(c) {
            for ((s, &v), &m) in var.iter_mut().zip(row).zip(&mean) {
                *s += (f64::from(v) - m).powi(2);
            }
        }
        for ch in 0..c {
            self.params[0].value[ch] = mean[ch] as f32;
            self.params[1].value[ch] = (var[ch] / rows as f64) as f32;
        }
        // Keras 3 keeps `count` at zero through `adapt`; so does convnet, for identical files.
        Ok(())
    }

    /// The per-channel mean and `max(√variance, ε)` from the given or adapted statistics.
    fn refresh(&mut self) {
        let c = self.stats.len() / 2;
        for ch in 0..c {
            let (m, v) = match &self.given {
                Some((m, v)) => (m[ch % m.len()], v[ch % v.len()]),
                None => (self.params[0].value[ch], self.params[1].value[ch]),
            };
            self.stats[ch] = m;
            self.stats[c + ch] = v.sqrt().max(EPSILON);
        }
    }
}

impl Layer for Normalization {
    layer_basics!("Normalization", "normalization");

    fn build(&mut self, input_shape: &[usize], _rng: &mut Rng) -> Result<Vec<usize>> {
        let Some(&c) = input_shape.last() else {
            return Err(Error::shape(format!("Normalization {:?} needs input with channels", self.meta.name)));
        };
        if let Some((m, _)) = &self.given {
            if m.len() != 1 && m.len() != c {
                return Err(Error::shape(format!(
                    "Normalization {:?}: {} means for input {} with {c} channels",
                    self.meta.name,
                    m.len(),
                    shape_str(input_shape)
                )));
            }
            self.params.clear();
        } else {
            let mut mean = Param::new("mean", &[c], None)?.non_trainable();
            mean.value.fill(0.0);
            let mut var = Param::new("variance", &[c], None)?.non_trainable();
            var.value.fill(1.0);
            let count = Param::new("count", &[], None)?.non_trainable();
            self.params = vec![mean, var, count];
        }
        self.out_shape = input_shape.to_vec();
        self.stats = vec![0.0; 2 * c];
        Ok(self.out_shape.clone())
    }

    fn forward(&mut self, x: &Tensor, y: &mut Tensor, _ctx: &mut ForwardCtx<'_>) {
        self.refresh();
        let c = self.stats.len() / 2;
        let (mean, sd) = self.stats.split_at(c);
        for (yr, xr) in y.data_mut().chunks_exact_mut(c).zip(x.data().chunks_exact(c)) {
            for (((o, &v), &m), &s) in yr.iter_mut().zip(xr).zip(mean).zip(sd) {
                *o = if self.invert { m + v * s } else { (v - m) / s };
            }
        }
    }

    fn backward(&mut self, _x: &Tensor, _y: &Tensor, dy: &mut Tensor, dx: Option<&mut Tensor>) {
        let Some(dx) = dx else { return };
        let c = self.stats.len() / 2;
        let sd = &self.stats[c..];
        for (dr, gr) in dx.data_mut().chunks_exact_mut(c).zip(dy.data().chunks_exact(c)) {
            for ((o, &g), &s) in dr.iter_mut().zip(gr).zip(sd) {
                *o = if self.invert { g * s } else { g / s };
            }
        }
    }

    fn params(&self) -> &[Param] {
        &self.params
    }

    fn params_mut(&mut self) -> &mut [Param] {
        &mut self.params
    }

    fn config(&self) -> Map<String, Value> {
        let mut m = self.meta.config();
        m.insert("axis".into(), json!([-1]));
        m.insert("invert".into(), json!(self.invert));
        let list = |v: &[f32]| {
            if v.len() == 1 {
                json!(crate::numbers::decimal(v[0]))
            } else {
                json!(v.iter().map(|&x| crate::numbers::decimal(x)).collect::<Vec<f64>>())
            }
        };
        let (mean, var) = match &self.given {
            Some((mean, var)) => (list(mean), list(var)),
            None => (Value::Null, Value::Null),
        };
        m.insert("mean".into(), mean);
        m.insert("variance".into(), var);
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::layers::gradcheck::check_layer;

    #[test]
    fn gradients_match_finite_differences() {
        check_layer(&mut Rescaling::new(0.5, -1.0), &[2, 2, 3], 2, 1, 1e-2);
        check_layer(&mut Normalization::with_statistics(&[1.0, -2.0], &[4.0, 0.25]), &[2, 3, 2], 2, 2, 1e-2);
        check_layer(&mut Normalization::with_statistics(&[1.0], &[9.0]).invert(true), &[3, 2], 2, 3, 1e-2);
    }

    /// Adapting gives the per-channel mean and biased variance, and the outputs are then
    /// standardized.
    #[test]
    fn adapt_standardizes_each_channel() {
        let n = 40;
        let data: Vec<f32> =
            (0..n * 2).map(|i| if i % 2 == 0 { (i / 2) as f32 } else { 5.0 - (i % 7) as f32 }).collect();
        let x = Tensor::from_vec(&[n, 2], data).unwrap();
        let mut l = Normalization::new();
        l.adapt(&x).unwrap();
        assert!((l.params[0].value[0] - 19.5).abs() < 1e-5);
        assert!((l.params[1].value[0] - (n * n - 1) as f32 / 12.0).abs() < 1e-3);
        let mut y = Tensor::zeros(&[n, 2]);
        l.forward(&x, &mut y, &mut ForwardCtx { training: false, rng: &mut Rng::new(0) });
        for ch in 0..2 {
            let v: Vec<f32> = y.data().iter().skip(ch).step_by(2).copied().collect();
            let mean = v.iter().sum::<f32>() / n as f32;
            let var = v.iter().map(|a| (a - mean).powi(2)).sum::<f32>() / n as f32;
            assert!(mean.abs() < 1e-5 && (var - 1.0).abs() < 1e-4, "channel {ch}: {mean} {var}");
        }
        assert!(Normalization::with_statistics(&[0.0], &[1.0]).adapt(&x).is_err());
    }

    #[test]
    fn configs_round_trip() {
        let l = Normalization::with_statistics(&[1.0, 0.5], &[2.0, 3.0]).invert(true).name("n");
        assert_eq!(Normalization::from_config(&l.config()).unwrap().config(), l.config());
        let l = Normalization::new().name("n");
        assert_eq!(Normalization::from_config(&l.config()).unwrap().config(), l.config());
        let l = Rescaling::new(1.0 / 255.0, 0.0).name("r");
        assert_eq!(Rescaling::from_config(&l.config()).unwrap().config(), l.config());
        assert!(Normalization::from_config(json!({"axis": [1]}).as_object().unwrap()).is_err());
        assert!(Rescaling::from_config(json!({"scale": [1, 2]}).as_object().unwrap()).is_err());
    }
}
