//! Weight constraints as Keras applies them: a projection of a weight after each optimizer
//! update (Keras' `kernel_constraint` / `bias_constraint`).
//!
//! With `‖w‖` the L2 norm over `axis` (an axis or a list of axes; negative counts from the end),
//! one norm per slice along the other axes, and `ε = 1e-7` (Keras' `epsilon()`), in float32:
//!
//! - `MaxNorm(max_value=2, axis=0)`: `w · (clip(‖w‖, 0, max_value) / (ε + ‖w‖))`;
//! - `MinMaxNorm(min_value=0, max_value=1, rate=1, axis=0)`:
//!   `w · ((rate·clip(‖w‖, min_value, max_value) + (1 − rate)·‖w‖) / (ε + ‖w‖))`;
//! - `UnitNorm(axis=0)`: `w / (ε + ‖w‖)`;
//! - `NonNeg`: `max(w, 0)`.
//!
//! For a Dense kernel `[in, units]`, `axis=0` bounds each unit's incoming weights; for a Conv2D
//! kernel `[kh, kw, c, f]`, `axis=[0, 1, 2]` bounds each filter. Configs are read as Keras 3 and
//! tf_keras write them (snake-case and tf_keras' `maxnorm`-style aliases too) and written in
//! the form both load. A constraint class convnet does not know (a custom one, tf_keras'
//! `RadialConstraint`) is kept and written back unchanged, so such a file loads and predicts;
//! training it is refused with an error naming the class.

use crate::error::{Error, Result};
use crate::nn::initializers::num;
use serde_json::{json, Map, Value};

/// Keras' `backend.epsilon()`, added to the norms before dividing.
const EPSILON: f32 = 1e-7;

/// Most axes a constrained weight may have.
const MAX_RANK: usize = 8;

/// Keras' `axis` argument: one axis or a list, kept in the form it was given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Axis {
    /// A single axis (`axis=0`).
    One(i64),
    /// Several axes (`axis=[0, 1, 2]`).
    Many(Vec<i64>),
}

impl Axis {
    fn list(&self) -> &[i64] {
        match self {
            Axis::One(a) => std::slice::from_ref(a),
            Axis::Many(v) => v,
        }
    }

    fn to_json(&self) -> Value {
        match self {
            Axis::One(a) => json!(a),
            Axis::Many(v) => json!(v),
        }
    }

    fn from_json(v: Option<&Value>, class: &str) -> Result<Self> {
        let bad = |v: &Value| Error::config(format!("{class}: axis must be an integer or a list of them, not {v}"));
        match v {
            None | Some(Value::Null) => Ok(Axis::One(0)),
            Some(Value::Array(a)) => {
                a.iter().map(|x| x.as_i64().ok_or_else(|| bad(x))).collect::<Result<_>>().map(Axis::Many)
            }
            Some(x) => x.as_i64().map(Axis::One).ok_or_else(|| bad(x)),
        }
    }

    /// A bit per axis of a weight of `rank` axes: set for the axes the norm sums over.
    fn mask(&self, rank: usize) -> Result<u32> {
        let mut m = 0u32;
        for &a in self.list() {
            let i = if a < 0 { a + rank as i64 } else { a };
            if !(0..rank as i64).contains(&i) {
                return Err(Error::config(format!("constraint axis {a} is out of range for a weight of {rank} axes")));
            }
            m |= 1 << i;
        }
        Ok(m)
    }
}

impl From<i64> for Axis {
    fn from(a: i64) -> Self {
        Axis::One(a)
    }
}

impl From<Vec<i64>> for Axis {
    fn from(a: Vec<i64>) -> Self {
        Axis::Many(a)
    }
}

/// A projection applied to a weight after each update (Keras' `keras.constraints`).
#[derive(Clone, Debug, PartialEq)]
pub enum Constraint {
    /// Rescales slices whose norm exceeds `max_value` down to it (Keras' `MaxNorm`).
    MaxNorm {
        /// Largest norm allowed (Keras' default 2).
        max_value: f32,
        /// Axes the norm sums over (Keras' default 0).
        axis: Axis,
    },
    /// Moves slice norms into `[min_value, max_value]` at `rate` (Keras' `MinMaxNorm`).
    MinMaxNorm {
        /// Smallest norm (Keras' default 0).
        min_value: f32,
        /// Largest norm (Keras' default 1).
        max_value: f32,
        /// 1 enforces the bounds at once; less moves towards them (Keras' default 1).
        rate: f32,
        /// Axes the norm sums over (Keras' default 0).
        axis: Axis,
    },
    /// Sets negative values to zero (Keras' `NonNeg`).
    NonNeg,
    /// Scales slices to unit norm (Keras' `UnitNorm`).
    UnitNorm {
        /// Axes the norm sums over (Keras' default 0).
        axis: Axis,
    },
    /// A constraint convnet cannot apply, kept as read from a Keras config and written back
    /// unchanged; training a model with it is refused.
    Unsupported(Value),
}

/// Keras' `constraints.max_norm(max_value=2, axis=0)`.
pub fn max_norm(max_value: f32, axis: impl Into<Axis>) -> Constraint {
    Constraint::MaxNorm { max_value, axis: axis.into() }
}

/// Keras' `constraints.min_max_norm(min_value=0, max_value=1, rate=1, axis=0)`.
pub fn min_max_norm(min_value: f32, max_value: f32, rate: f32, axis: impl Into<Axis>) -> Constraint {
    Constraint::MinMaxNorm { min_value, max_value, rate, axis: axis.into() }
}

/// Keras' `constraints.unit_norm(axis=0)`.
pub fn unit_norm(axis: impl Into<Axis>) -> Constraint {
    Constraint::UnitNorm { axis: axis.into() }
}

/// Keras' `constraints.non_neg()`.
pub fn non_neg() -> Constraint {
    Constraint::NonNeg
}

/// How a slice's values change given its norm.
#[derive(Clone, Copy)]
enum Scale {
    Mul(f32),
    Div(f32),
}

impl Scale {
    #[inline]
    fn apply(self, w: f32) -> f32 {
        match self {
            Scale::Mul(q) => w * q,
            Scale::Div(d) => w / d,
        }
    }
}

impl Constraint {
    /// Reads Keras' config form: `null` (none), a name, or `{"class_name", "config"}` as Keras 3
    /// or tf_keras write it. An unknown or custom class gives [`Constraint::Unsupported`].
    pub fn from_config(v: &Value) -> Result<Option<Self>> {
        let (class, cfg) = match v {
            Value::Null => return Ok(None),
            Value::String(s) => (s.as_str(), None),
            Value::Object(o) => {
                let class = o
                    .get("class_name")
                    .and_then(Value::as_str)
                    .ok_or_else(|| Error::config("constraint config without class_name"))?;
                if !crate::nn::initializers::keras_builtin(o, class) {
                    return Ok(Some(Constraint::Unsupported(v.clone())));
                }
                (class, o.get("config").and_then(Value::as_object))
            }
            other => return Err(Error::config(format!("constraint must be null, a name or an object, not {other}"))),
        };
        let empty = Map::new();
        let cfg = cfg.unwrap_or(&empty);
        let get = |key: &str, default: f32| -> Result<f32> {
            match cfg.get(key) {
                None | Some(Value::Null) => Ok(default),
                Some(x) => x
                    .as_f64()
                    .map(|x| x as f32)
                    .filter(|x| x.is_finite())
                    .ok_or_else(|| Error::config(format!("{class}: `{key}` must be a finite number, not {x}"))),
            }
        };
        let c = match class.to_ascii_lowercase().replace('_', "").as_str() {
            "maxnorm" => Constraint::MaxNorm {
                max_value: get("max_value", 2.0)?,
                axis: Axis::from_json(cfg.get("axis"), class)?,
            },
            "minmaxnorm" => Constraint::MinMaxNorm {
                min_value: get("min_value", 0.0)?,
                max_value: get("max_value", 1.0)?,
                rate: get("rate", 1.0)?,
                axis: Axis::from_json(cfg.get("axis"), class)?,
            },
            "nonneg" => Constraint::NonNeg,
            "unitnorm" => Constraint::UnitNorm { axis: Axis::from_json(cfg.get("axis"), class)? },
            _ => Constraint::Unsupported(v.clone()),
        };
        Ok(Some(c))
    }

    /// Keras' class name (for a kept constraint, the name it was read with).
    pub fn class_name(&self) -> &str {
        match self {
            Constraint::MaxNorm { .. } => "MaxNorm",
            Constraint::MinMaxNorm { .. } => "MinMaxNorm",
            Constraint::NonNeg => "NonNeg",
            Constraint::UnitNorm { .. } => "UnitNorm",
            Constraint::Unsupported(Value::String(s)) => s,
            Constraint::Unsupported(v) => v.get("class_name").and_then(Value::as_str).unwrap_or("?"),
        }
    }

    /// Keras' serialised form, `{"module": "keras.constraints", "class_name", "config",
    /// "registered_name": null}` (Keras 3 and tf_keras write and load the same keys); a kept
    /// constraint is written exactly as it was read.
    pub fn to_config(&self) -> Value {
        let config = match self {
            Constraint::MaxNorm { max_value, axis } => json!({"max_value": num(*max_value), "axis": axis.to_json()}),
            Constraint::MinMaxNorm { min_value, max_value, rate, axis } => json!({
                "min_value": num(*min_value), "max_value": num(*max_value), "rate": num(*rate), "axis": axis.to_json()
            }),
            Constraint::NonNeg => json!({}),
            Constraint::UnitNorm { axis } => json!({"axis": axis.to_json()}),
            Constraint::Unsupported(v) => return v.clone(),
        };
        json!({"module": "keras.constraints", "class_name": self.class_name(), "config": config, "registered_name": null})
    }

    /// True when convnet can apply it (not a [`Constraint::Unsupported`] one).
    pub fn is_supported(&self) -> bool {
        !matches!(self, Constraint::Unsupported(_))
    }

    /// Checks that the constraint fits a weight of `shape` (its axes exist).
    pub fn check(&self, shape: &[usize]) -> Result<()> {
        match self {
            Constraint::MaxNorm { axis, .. } | Constraint::MinMaxNorm { axis, .. } | Constraint::UnitNorm { axis } => {
                if shape.len() > MAX_RANK {
                    return Err(Error::config(format!("{}: weights of more than {MAX_RANK} axes", self.class_name())));
                }
                axis.mask(shape.len()).map(|_| ()).map_err(|e| Error::config(format!("{}: {e}", self.class_name())))
            }
            _ => Ok(()),
        }
    }

    /// Projects `values` (a weight of `shape`, row-major) in place. Allocates nothing. A
    /// constraint that does not fit the shape (see [`Constraint::check`]), values that do not
    /// match it, or an unsupported constraint leave the values as they are.
    pub fn apply(&self, values: &mut [f32], shape: &[usize]) {
        if shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)) != Some(values.len()) {
            return;
        }
        let scale = |norm: f32| match *self {
            Constraint::MaxNorm { max_value, .. } => Scale::Mul(norm.clamp(0.0, max_value) / (EPSILON + norm)),
            Constraint::MinMaxNorm { min_value, max_value, rate, .. } => {
                let desired = rate * norm.max(min_value).min(max_value) + (1.0 - rate) * norm;
                Scale::Mul(desired / (EPSILON + norm))
            }
            _ => Scale::Div(EPSILON + norm),
        };
        match self {
            Constraint::NonNeg => values.iter_mut().for_each(|v| *v = v.max(0.0)),
            Constraint::MaxNorm { axis, .. } | Constraint::MinMaxNorm { axis, .. } | Constraint::UnitNorm { axis } => {
                if shape.len() <= MAX_RANK {
                    if let Ok(mask) = axis.mask(shape.len()) {
                        rescale_slices(values, shape, mask, scale);
                    }
                }
            }
            Constraint::Unsupported(_) => {}
        }
    }
}

/// Scales each slice of `values` (the elements sharing their indices on the axes outside
/// `mask`) by `scale(‖slice‖)`.
fn rescale_slices(values: &mut [f32], shape: &[usize], mask: u32, scale: impl Fn(f32) -> Scale) {
    // Merge neighbouring axes of the same kind (size-1 axes fit either) into runs.
    let mut runs = [(0usize, false); MAX_RANK];
    let mut k = 0;
    for (i, &d) in shape.iter().enumerate() {
        let reduced = mask & (1 << i) != 0;
        if d == 1 {
            continue;
        }
        if k > 0 && runs[k - 1].1 == reduced {
            runs[k - 1].0 *= d;
        } else {
            runs[k] = (d, reduced);
            k += 1;
        }
    }
    let runs = &runs[..k];
    match runs.iter().filter(|r| r.1).count() {
        0 => {
            // Every slice is one value: ‖w‖ = |w|.
            values.iter_mut().for_each(|v| *v = scale(v.abs()).apply(*v));
        }
        1 => {
            // Layout [outer, reduced, inner]: norms of `inner` columns at a time, a block of
            // columns per pass so that the reads stay sequential.
            let p = runs.iter().position(|r| r.1).expect("one reduced run");
            let outer: usize = runs[..p].iter().map(|r| r.0).product();
            let red = runs[p].0;
            let inner: usize = runs[p + 1..].iter().map(|r| r.0).product();
            const BLOCK: usize = 64;
            for o in 0..outer {
                let base = o * red * inner;
                for i0 in (0..inner).step_by(BLOCK) {
                    let b = BLOCK.min(inner - i0);
                    let mut acc = [0.0f64; BLOCK];
                    for r in 0..red {
                        let row = &values[base + r * inner + i0..][..b];
                        for (a, &v) in acc.iter_mut().zip(row) {
                            *a += v as f64 * v as f64;
                        }
                    }
                    let mut scales = [Scale::Mul(1.0); BLOCK];
                    for (s, a) in scales.iter_mut().zip(&acc[..b]) {
                        *s = scale(a.sqrt() as f32);
                    }
                    for r in 0..red {
                        let row = &mut values[base + r * inner + i0..][..b];
                        for (v, s) in row.iter_mut().zip(&scales) {
                            *v = s.apply(*v);
                        }
                    }
                }
            }
        }
        _ => {
            // Reduced axes interleaved with kept ones: walk each slice by index arithmetic.
            let mut strides = [0usize; MAX_RANK];
            let mut s = 1;
            for i in (0..k).rev() {
                strides[i] = s;
                s *= runs[i].0;
            }
            let slices: usize = runs.iter().filter(|r| !r.1).map(|r| r.0).product();
            let members: usize = runs.iter().filter(|r| r.1).map(|r| r.0).product();
            let offset = |mut idx: usize, reduced: bool| {
                let mut off = 0;
                for i in (0..k).rev().filter(|&i| runs[i].1 == reduced) {
                    off += (idx % runs[i].0) * strides[i];
                    idx /= runs[i].0;
                }
                off
            };
            for g in 0..slices {
                let base = offset(g, false);
                let sum: f64 = (0..members).map(|m| values[base + offset(m, true)] as f64).map(|v| v * v).sum();
                let sc = scale(sum.sqrt() as f32);
                for m in 0..members {
                    let v = &mut values[base + offset(m, true)];
                    *v = sc.apply(*v);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> Value {
        serde_json::from_str(include_str!("../../tests/fixtures/initializers/keras_configs.json")).unwrap()
    }

    fn floats(v: &Value) -> Vec<f32> {
        v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
    }

    /// Every constraint and axis form on Dense, Conv2D and bias shapes against the outputs of
    /// Keras 3 and tf_keras (fixture written by `tests/fixtures/initializers/make.py`).
    #[test]
    fn outputs_match_keras() {
        let fx = fixture();
        let mut checked = 0;
        let mut worst = 0.0f32;
        for (case, c) in fx["constraints"].as_object().unwrap() {
            let k3 = Constraint::from_config(&c["keras3"]).unwrap().unwrap();
            let k2 = Constraint::from_config(&c["tf_keras"]).unwrap().unwrap();
            assert_eq!(k3, k2, "{case}");
            for o in c["outputs"].as_array().unwrap() {
                let shape: Vec<usize> =
                    o["shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect();
                k3.check(&shape).unwrap();
                let mut w = floats(&o["w"]);
                k3.apply(&mut w, &shape);
                for dialect in ["keras3", "tf_keras"] {
                    for (i, (a, b)) in w.iter().zip(floats(&o[dialect])).enumerate() {
                        let err = (a - b).abs() / (1.0 + b.abs());
                        worst = worst.max(err);
                        assert!(err <= 1e-6, "{case} {} [{i}]: {a} vs {dialect} {b}", o["weight"]);
                    }
                }
                checked += 1;
            }
        }
        assert!(checked >= 20, "{checked} cases");
        eprintln!("constraints: {checked} outputs, worst relative difference to Keras {worst:e}");
    }

    #[test]
    fn configs_round_trip_in_both_dialects() {
        let fx = fixture();
        for (case, c) in fx["constraints"].as_object().unwrap() {
            let k = Constraint::from_config(&c["keras3"]).unwrap().unwrap();
            // Keras 3 and tf_keras write the same form; convnet writes it back (numbers as numbers).
            let written = k.to_config();
            assert_eq!(written["class_name"], c["keras3"]["class_name"], "{case}");
            assert_eq!(written["module"], c["keras3"]["module"]);
            assert_eq!(written["registered_name"], Value::Null);
            let wc = written["config"].as_object().unwrap();
            let kc = c["keras3"]["config"].as_object().unwrap();
            assert_eq!(wc.len(), kc.len(), "{case}");
            for (key, v) in kc {
                match v {
                    Value::Number(n) => assert_eq!(wc[key].as_f64(), n.as_f64(), "{case} {key}"),
                    other => assert_eq!(&wc[key], other, "{case} {key}"),
                }
            }
            assert_eq!(Constraint::from_config(&written).unwrap().unwrap(), k);
        }
        for dialect in ["keras3", "tf_keras"] {
            let lc = &fx["layer_configs"][dialect];
            assert_eq!(Constraint::from_config(&lc["kernel_constraint"]).unwrap(), Some(max_norm(3.0, vec![0])));
            assert_eq!(Constraint::from_config(&lc["bias_constraint"]).unwrap(), Some(non_neg()));
        }
        assert_eq!(Constraint::from_config(&Value::Null).unwrap(), None);
        for (name, want) in [
            ("max_norm", max_norm(2.0, 0)),
            ("maxnorm", max_norm(2.0, 0)),
            ("MinMaxNorm", min_max_norm(0.0, 1.0, 1.0, 0)),
            ("non_neg", non_neg()),
            ("nonneg", non_neg()),
            ("unit_norm", unit_norm(0)),
        ] {
            assert_eq!(Constraint::from_config(&json!(name)).unwrap(), Some(want), "{name}");
        }
        assert!(Constraint::from_config(&json!({"class_name": "MaxNorm", "config": {"axis": "rows"}})).is_err());
        assert!(Constraint::from_config(&json!({"class_name": "MaxNorm", "config": {"max_value": "big"}})).is_err());
    }

    #[test]
    fn unknown_constraints_are_kept_as_read() {
        for v in [
            json!({"module": "keras.constraints", "class_name": "RadialConstraint", "config": {}, "registered_name": null}),
            json!({"module": "my_pkg", "class_name": "MaxNorm", "config": {"max_value": 1}, "registered_name": "Custom>MaxNorm"}),
            json!("clip_weights"),
        ] {
            let c = Constraint::from_config(&v).unwrap().unwrap();
            assert!(!c.is_supported());
            assert_eq!(c.to_config(), v);
            let mut w = vec![-1.0, 2.0];
            c.apply(&mut w, &[2]);
            assert_eq!(w, vec![-1.0, 2.0]);
        }
    }

    /// The three layouts (one slice per value, one reduced run, interleaved runs) against a
    /// direct computation of the norms.
    #[test]
    fn every_axis_layout_matches_a_direct_computation() {
        let shape = [3usize, 4, 2, 5];
        let n: usize = shape.iter().product();
        let w: Vec<f32> = (0..n).map(|i| ((i * 37 % 23) as f32 - 11.0) / 7.0).collect();
        let idx = |i: usize| {
            let mut r = [0usize; 4];
            let mut x = i;
            for a in (0..4).rev() {
                r[a] = x % shape[a];
                x /= shape[a];
            }
            r
        };
        for axes in [vec![], vec![0], vec![3], vec![1, 2], vec![0, 2], vec![0, 1, 2], vec![0, 1, 2, 3], vec![-1, 1]] {
            let c = unit_norm(Axis::Many(axes.clone()));
            let mask = Axis::Many(axes.clone()).mask(4).unwrap();
            let mut got = w.clone();
            c.apply(&mut got, &shape);
            for i in 0..n {
                let key = |j: usize| (0..4).filter(|a| mask & (1 << a) == 0).map(|a| idx(j)[a]).collect::<Vec<_>>();
                let norm = (0..n).filter(|&j| key(j) == key(i)).map(|j| (w[j] as f64).powi(2)).sum::<f64>().sqrt();
                let want = w[i] / (EPSILON + norm as f32);
                assert!((got[i] - want).abs() < 1e-6, "axes {axes:?} [{i}]: {} vs {want}", got[i]);
            }
        }
        assert!(max_norm(2.0, 4).check(&shape).is_err());
        assert!(max_norm(2.0, -5).check(&shape).is_err());
        assert!(max_norm(2.0, -4).check(&shape).is_ok());
    }
}
