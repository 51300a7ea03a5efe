//! Optimizers with Keras 3's defaults and update rules: SGD (momentum, Nesterov), Adam, RMSprop.
//!
//! Each optimizer keeps per-weight slots (Keras' optimizer variables: `momentum`, `velocity`,
//! …) in an [`OptimizerState`] together with the step count, so the state can be saved and
//! training resumed exactly.

use crate::error::{Error, Result};
use serde_json::{json, Map, Value};

/// Stochastic gradient descent (Keras' `SGD`: learning_rate 0.01, momentum 0, nesterov off).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sgd {
    /// Step size.
    pub learning_rate: f32,
    /// Momentum factor in [0, 1).
    pub momentum: f32,
    /// Use Nesterov momentum.
    pub nesterov: bool,
}

impl Default for Sgd {
    fn default() -> Self {
        Sgd { learning_rate: 0.01, momentum: 0.0, nesterov: false }
    }
}

/// Adam (Keras' defaults: learning_rate 0.001, beta_1 0.9, beta_2 0.999, epsilon 1e-7).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Adam {
    /// Step size.
    pub learning_rate: f32,
    /// Decay of the first-moment estimate.
    pub beta_1: f32,
    /// Decay of the second-moment estimate.
    pub beta_2: f32,
    /// Added to the root of the second moment.
    pub epsilon: f32,
    /// Use the AMSGrad variant (running maximum of the second moment).
    pub amsgrad: bool,
}

impl Default for Adam {
    fn default() -> Self {
        Adam { learning_rate: 0.001, beta_1: 0.9, beta_2: 0.999, epsilon: 1e-7, amsgrad: false }
    }
}

/// RMSprop (Keras' defaults: learning_rate 0.001, rho 0.9, momentum 0, epsilon 1e-7).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RmsProp {
    /// Step size.
    pub learning_rate: f32,
    /// Decay of the mean square.
    pub rho: f32,
    /// Momentum factor.
    pub momentum: f32,
    /// Added to the mean square before the root.
    pub epsilon: f32,
    /// Normalise by the variance instead of the second moment.
    pub centered: bool,
}

impl Default for RmsProp {
    fn default() -> Self {
        RmsProp { learning_rate: 0.001, rho: 0.9, momentum: 0.0, epsilon: 1e-7, centered: false }
    }
}

/// One of the optimizers, with its hyper-parameters (Keras' `optimizer=` of `compile`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Optimizer {
    /// Stochastic gradient descent.
    Sgd(Sgd),
    /// Adam.
    Adam(Adam),
    /// RMSprop.
    RmsProp(RmsProp),
}

impl From<Sgd> for Optimizer {
    fn from(o: Sgd) -> Self {
        Optimizer::Sgd(o)
    }
}

impl From<Adam> for Optimizer {
    fn from(o: Adam) -> Self {
        Optimizer::Adam(o)
    }
}

impl From<RmsProp> for Optimizer {
    fn from(o: RmsProp) -> Self {
        Optimizer::RmsProp(o)
    }
}

/// The optimizer's variables: step count and per-weight slots (`slots[weight][slot]`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OptimizerState {
    /// Steps applied so far (Keras' `iterations`).
    pub iterations: u64,
    /// For each trainable weight, in model order, one buffer per slot.
    pub slots: Vec<Vec<Vec<f32>>>,
}

impl Optimizer {
    /// The optimizer named `name` (`sgd`, `adam`, `rmsprop`) with Keras' defaults.
    pub fn parse(name: &str) -> Result<Self> {
        match name.to_ascii_lowercase().as_str() {
            "sgd" => Ok(Sgd::default().into()),
            "adam" => Ok(Adam::default().into()),
            "rmsprop" => Ok(RmsProp::default().into()),
            other => Err(Error::config(format!("unknown optimizer {other:?} (convnet has sgd, adam, rmsprop)"))),
        }
    }

    /// Keras' class name (`SGD`, `Adam`, `RMSprop`).
    pub fn class_name(&self) -> &'static str {
        match self {
            Optimizer::Sgd(_) => "SGD",
            Optimizer::Adam(_) => "Adam",
            Optimizer::RmsProp(_) => "RMSprop",
        }
    }

    /// The current learning rate.
    pub fn learning_rate(&self) -> f32 {
        match self {
            Optimizer::Sgd(o) => o.learning_rate,
            Optimizer::Adam(o) => o.learning_rate,
            Optimizer::RmsProp(o) => o.learning_rate,
        }
    }

    /// Changes the learning rate (for schedules and plateaus).
    pub fn set_learning_rate(&mut self, lr: f32) {
        match self {
            Optimizer::Sgd(o) => o.learning_rate = lr,
            Optimizer::Adam(o) => o.learning_rate = lr,
            Optimizer::RmsProp(o) => o.learning_rate = lr,
        }
    }

    /// Names of the per-weight slots, in Keras' order.
    pub fn slot_names(&self) -> &'static [&'static str] {
        match self {
            Optimizer::Sgd(o) if o.momentum != 0.0 => &["momentum"],
            Optimizer::Sgd(_) => &[],
            Optimizer::Adam(o) if o.amsgrad => &["momentum", "velocity", "velocity_hat"],
            Optimizer::Adam(_) => &["momentum", "velocity"],
            Optimizer::RmsProp(o) => match (o.momentum > 0.0, o.centered) {
                (false, false) => &["velocity"],
                (true, false) => &["velocity", "momentum"],
                (false, true) => &["velocity", "average_gradient"],
                (true, true) => &["velocity", "momentum", "average_gradient"],
            },
        }
    }

    /// Keras' config of the optimizer (the `config` of `{"class_name", "config"}`).
    pub fn to_config(&self) -> Value {
        let mut c = match *self {
            Optimizer::Sgd(o) => json!({
                "name": "SGD", "learning_rate": o.learning_rate, "momentum": o.momentum, "nesterov": o.nesterov,
            }),
            Optimizer::Adam(o) => json!({
                "name": "Adam", "learning_rate": o.learning_rate, "beta_1": o.beta_1, "beta_2": o.beta_2,
                "epsilon": o.epsilon, "amsgrad": o.amsgrad,
            }),
            Optimizer::RmsProp(o) => json!({
                "name": "RMSprop", "learning_rate": o.learning_rate, "rho": o.rho, "momentum": o.momentum,
                "epsilon": o.epsilon, "centered": o.centered,
            }),
        };
        let common = json!({
            "weight_decay": null, "clipnorm": null, "global_clipnorm": null, "clipvalue": null,
            "use_ema": false, "ema_momentum": 0.99, "ema_overwrite_frequency": null,
        });
        if let (Some(c), Some(common)) = (c.as_object_mut(), common.as_object()) {
            for (k, v) in common {
                c.insert(k.clone(), v.clone());
            }
        }
        c
    }

    /// Reads Keras' `{"class_name": …, "config": {…}}` (or a bare name); unknown keys are
    /// ignored, missing ones take Keras' defaults.
    pub fn from_config(v: &Value) -> Result<Self> {
        let (class, cfg) = match v {
            Value::String(s) => (s.as_str(), Map::new()),
            Value::Object(o) => (
                o.get("class_name")
                    .and_then(Value::as_str)
                    .ok_or_else(|| Error::config("optimizer config without class_name"))?,
                o.get("config").and_then(Value::as_object).cloned().unwrap_or_default(),
            ),
            other => return Err(Error::config(format!("optimizer must be a name or an object, not {other}"))),
        };
        let class = class.rsplit('>').next().unwrap_or(class); // "Custom>Adam" in some files
        let mut opt = Optimizer::parse(class)?;
        let num = |key: &str| -> Result<Option<f32>> {
            match cfg.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::Number(n)) => Ok(n.as_f64().map(|x| x as f32)),
                // Keras 2 stores a schedule object here; convnet runs a constant rate.
                Some(Value::Object(_)) if key == "learning_rate" => Err(Error::config(
                    "learning-rate schedules stored in a model file are not supported; \
                     use a LearningRateScheduler callback instead",
                )),
                Some(other) => Err(Error::config(format!("optimizer {key} must be a number, not {other}"))),
            }
        };
        let flag = |key: &str| cfg.get(key).and_then(Value::as_bool);
        let lr = num("learning_rate")?.or(num("lr")?);
        match &mut opt {
            Optimizer::Sgd(o) => {
                o.learning_rate = lr.unwrap_or(o.learning_rate);
                o.momentum = num("momentum")?.unwrap_or(o.momentum);
                o.nesterov = flag("nesterov").unwrap_or(o.nesterov);
            }
            Optimizer::Adam(o) => {
                o.learning_rate = lr.unwrap_or(o.learning_rate);
                o.beta_1 = num("beta_1")?.unwrap_or(o.beta_1);
                o.beta_2 = num("beta_2")?.unwrap_or(o.beta_2);
                o.epsilon = num("epsilon")?.unwrap_or(o.epsilon);
                o.amsgrad = flag("amsgrad").unwrap_or(o.amsgrad);
            }
            Optimizer::RmsProp(o) => {
                o.learning_rate = lr.unwrap_or(o.learning_rate);
                o.rho = num("rho")?.unwrap_or(o.rho);
                o.momentum = num("momentum")?.unwrap_or(o.momentum);
                o.epsilon = num("epsilon")?.unwrap_or(o.epsilon);
                o.centered = flag("centered").unwrap_or(o.centered);
            }
        }
        opt.validate()?;
        Ok(opt)
    }

    /// Checks that hyper-parameters are in range.
    pub fn validate(&self) -> Result<()> {
        let lr = self.learning_rate();
        if !(lr.is_finite() && lr >= 0.0) {
            return Err(Error::config(format!("learning rate must be a non-negative number, not {lr}")));
        }
        let bad = |what: &str, v: f32| Err(Error::config(format!("{what} must be in [0, 1), not {v}")));
        match *self {
            Optimizer::Sgd(o) if !(0.0..1.0).contains(&o.momentum) => bad("momentum", o.momentum),
            Optimizer::Adam(o) if !(0.0..1.0).contains(&o.beta_1) => bad("beta_1", o.beta_1),
            Optimizer::Adam(o) if !(0.0..1.0).contains(&o.beta_2) => bad("beta_2", o.beta_2),
            Optimizer::RmsProp(o) if !(0.0..1.0).contains(&o.rho) => bad("rho", o.rho),
            Optimizer::RmsProp(o) if !(0.0..1.0).contains(&o.momentum) => bad("momentum", o.momentum),
            _ => Ok(()),
        }
    }

    /// Applies step number `step` (1-based) to weight `w` with gradient `g`; `slots` are this
    /// weight's slot buffers (or matching sub-slices of them), in [`Optimizer::slot_names`]
    /// order.
    pub fn update(&self, step: u64, w: &mut [f32], g: &[f32], slots: &mut [&mut [f32]]) {
        match *self {
            Optimizer::Sgd(o) => {
                let lr = o.learning_rate;
                if o.momentum != 0.0 {
                    let mu = o.momentum;
                    let m = &mut *slots[0];
                    for i in 0..w.len() {
                        m[i] = m[i] * mu - g[i] * lr;
                        w[i] += if o.nesterov { m[i] * mu - g[i] * lr } else { m[i] };
                    }
                } else {
                    for (wi, gi) in w.iter_mut().zip(g) {
                        *wi -= gi * lr;
                    }
                }
            }
            Optimizer::Adam(o) => {
                let t = step as f64;
                let b1p = (o.beta_1 as f64).powf(t);
                let b2p = (o.beta_2 as f64).powf(t);
                let alpha = (o.learning_rate as f64 * (1.0 - b2p).sqrt() / (1.0 - b1p)) as f32;
                let (a1, a2) = (1.0 - o.beta_1, 1.0 - o.beta_2);
                let eps = o.epsilon;
                let (m_slot, rest) = slots.split_at_mut(1);
                let m = &mut *m_slot[0];
                let (v_slot, rest) = rest.split_at_mut(1);
                let v = &mut *v_slot[0];
                if o.amsgrad {
                    let vh = &mut *rest[0];
                    for i in 0..w.len() {
                        m[i] += (g[i] - m[i]) * a1;
                        v[i] += (g[i] * g[i] - v[i]) * a2;
                        vh[i] = vh[i].max(v[i]);
                        w[i] -= m[i] * alpha / (vh[i].sqrt() + eps);
                    }
                } else {
                    for i in 0..w.len() {
                        m[i] += (g[i] - m[i]) * a1;
                        v[i] += (g[i] * g[i] - v[i]) * a2;
                        w[i] -= m[i] * alpha / (v[i].sqrt() + eps);
                    }
                }
            }
            Optimizer::RmsProp(o) => {
                let (rho, lr, eps, mu) = (o.rho, o.learning_rate, o.epsilon, o.momentum);
                let has_m = mu > 0.0;
                let (first, rest) = slots.split_at_mut(1);
                let vel = &mut *first[0];
                let (mom, avg): (Option<&mut [f32]>, Option<&mut [f32]>) = match (has_m, o.centered) {
                    (true, true) => {
                        let (a, b) = rest.split_at_mut(1);
                        (Some(&mut *a[0]), Some(&mut *b[0]))
                    }
                    (true, false) => (Some(&mut *rest[0]), None),
                    (false, true) => (None, Some(&mut *rest[0])),
                    (false, false) => (None, None),
                };
                let mut mom = mom;
                let mut avg = avg;
                for i in 0..w.len() {
                    vel[i] = rho * vel[i] + (1.0 - rho) * g[i] * g[i];
                    let denom = match avg.as_deref_mut() {
                        Some(a) => {
                            a[i] = rho * a[i] + (1.0 - rho) * g[i];
                            vel[i] - a[i] * a[i] + eps
                        }
                        None => vel[i] + eps,
                    };
                    let inc = lr * g[i] / denom.sqrt();
                    match mom.as_deref_mut() {
                        Some(m) => {
                            m[i] = mu * m[i] + inc;
                            w[i] -= m[i];
                        }
                        None => w[i] -= inc,
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `steps` updates on a one-element weight with a constant gradient.
    fn run(opt: Optimizer, steps: u64, g: f32) -> f32 {
        let mut w = [1.0f32];
        let mut slots: Vec<Vec<f32>> = opt.slot_names().iter().map(|_| vec![0.0]).collect();
        for t in 1..=steps {
            let mut refs: Vec<&mut [f32]> = slots.iter_mut().map(|s| s.as_mut_slice()).collect();
            opt.update(t, &mut w, &[g], &mut refs);
        }
        w[0]
    }

    #[test]
    fn sgd_rules() {
        assert!((run(Sgd::default().into(), 1, 2.0) - 0.98).abs() < 1e-7);
        // momentum 0.9: m1 = -0.02, m2 = -0.038; w = 1 - 0.058
        let o = Sgd { momentum: 0.9, ..Default::default() };
        assert!((run(o.into(), 2, 2.0) - (1.0 - 0.058)).abs() < 1e-6);
        // nesterov: w1 = 1 + 0.9*(-0.02) - 0.02 = 0.962
        let o = Sgd { momentum: 0.9, nesterov: true, ..Default::default() };
        assert!((run(o.into(), 1, 2.0) - 0.962).abs() < 1e-6);
    }

    #[test]
    fn adam_first_step_moves_by_learning_rate() {
        // With bias correction, the first Adam step is lr·g/(|g| + ε') ≈ lr·sign(g).
        let w = run(Adam::default().into(), 1, 3.0);
        assert!((w - (1.0 - 0.001)).abs() < 1e-6);
        // A hand-computed second step with a changing gradient.
        let o = Adam::default();
        let mut w = [0.5f32];
        let mut m = [0.0f32];
        let mut v = [0.0f32];
        Optimizer::Adam(o).update(1, &mut w, &[1.0], &mut [&mut m, &mut v]);
        Optimizer::Adam(o).update(2, &mut w, &[-2.0], &mut [&mut m, &mut v]);
        let (m1, v1) = (0.1f64, 0.001f64);
        let (m2, v2) = (0.9 * m1 + 0.1 * -2.0, 0.999 * v1 + 0.001 * 4.0);
        let alpha = 0.001 * (1.0 - 0.999f64.powi(2)).sqrt() / (1.0 - 0.9f64.powi(2));
        let want = 0.5 - 0.001 - alpha * m2 / (v2.sqrt() + 1e-7);
        assert!((w[0] as f64 - want).abs() < 1e-6, "{} vs {want}", w[0]);
    }

    #[test]
    fn rmsprop_rules() {
        // v = 0.1·g² → step = lr·g/sqrt(0.1·g² + ε)
        let w = run(RmsProp::default().into(), 1, 2.0);
        let want = 1.0 - 0.001 * 2.0 / (0.1f32 * 4.0 + 1e-7).sqrt();
        assert!((w - want).abs() < 1e-6);
        let o = RmsProp { momentum: 0.5, centered: true, ..Default::default() };
        let w2 = run(o.into(), 2, 2.0);
        assert!(w2 < w, "momentum and centring make larger steps");
    }

    #[test]
    fn config_round_trip_and_validation() {
        for o in [
            Optimizer::from(Sgd { learning_rate: 0.1, momentum: 0.9, nesterov: true }),
            Adam { learning_rate: 3e-4, ..Default::default() }.into(),
            RmsProp { rho: 0.8, centered: true, ..Default::default() }.into(),
        ] {
            let v = json!({"class_name": o.class_name(), "config": o.to_config()});
            assert_eq!(Optimizer::from_config(&v).unwrap(), o);
        }
        assert!(Optimizer::from_config(&json!({"class_name": "Adam", "config": {"beta_1": 1.5}})).is_err());
        assert!(Optimizer::parse("adagrad_x").is_err());
    }
}
