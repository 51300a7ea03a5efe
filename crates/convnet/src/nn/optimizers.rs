//! Optimizers with Keras 3's defaults, config keys, variable layouts and update rules: SGD
//! (momentum, Nesterov), Adam (AMSGrad), AdamW, Nadam, Adamax, Adagrad, Adadelta, RMSprop.
//!
//! Each optimizer keeps per-weight slots (Keras' optimizer variables: `momentum`, `velocity`,
//! …) and any extra scalar variables (Nadam's `u_product`) in an [`OptimizerState`] together
//! with the step count, so the state can be saved and training resumed exactly.
//!
//! One step, in Keras' order (`BaseOptimizer.apply`):
//! 1. the gradients (with the regularisation penalties' gradients) are clipped: `clipnorm`
//!    scales each weight's gradient to an L2 norm of at most `clipnorm`
//!    (`g · c / max(‖g‖, c)`), `global_clipnorm` scales all gradients together by
//!    `c · min(1/‖G‖, 1/c)`, `clipvalue` clamps each value to `[−c, c]` (at most one of them);
//! 2. weight decay, when set (AdamW's `weight_decay`, or any optimizer's): `w ← w − w·wd·lr`,
//!    before the update and with the same learning rate;
//! 3. the optimizer's update, with `t` = the 1-based step number and `lr` the learning rate —
//!    a constant, or the [`LearningRateSchedule`] evaluated at `t − 1` (Keras' `iterations`
//!    before the step is counted):
//!    - SGD: `m ← μ·m − lr·g`; `w ← w + m` (Nesterov: `w ← w + μ·m − lr·g`), or `w ← w − lr·g`;
//!    - Adam/AdamW: `m ← m + (g − m)(1 − β₁)`, `v ← v + (g² − v)(1 − β₂)`, AMSGrad
//!      `v̂ ← max(v̂, v)`; `w ← w − m·α / (√v + ε)` with `α = lr·√(1 − β₂ᵗ) / (1 − β₁ᵗ)`;
//!    - Nadam: `uₜ = β₁(1 − ½·0.96ᵗ)`, `Πₜ = Πₜ₋₁·uₜ` (the `u_product` variable);
//!      `m̂ = uₜ₊₁·m / (1 − Πₜ·uₜ₊₁) + (1 − uₜ)·g / (1 − Πₜ)`, `v̂ = v / (1 − β₂ᵗ)`,
//!      `w ← w − lr·m̂ / (√v̂ + ε)` (m, v as Adam's);
//!    - Adamax: `m` as Adam's, `u ← max(β₂·u, |g|)`, `w ← w − lr·m / ((1 − β₁ᵗ)(u + ε))`;
//!    - Adagrad: `a ← a + g²` (starting at `initial_accumulator_value`),
//!      `w ← w − lr·g / √(a + ε)`;
//!    - Adadelta: `a ← ρa + (1 − ρ)g²`, `Δ = −√(d + ε)·g / √(a + ε)`,
//!      `d ← ρd + (1 − ρ)Δ²`, `w ← w + lr·Δ`;
//!    - RMSprop: `v ← ρv + (1 − ρ)g²` (centred: `a ← ρa + (1 − ρ)g`, divide by
//!      `√(v − a² + ε)` instead of `√(v + ε)`), with momentum `m ← μm + lr·g/√…`, `w ← w − m`.
//!
//! Every step is computed in f32 in Keras' order of operations. Hyper-parameters are kept as
//! f32; where Keras computes with the Python float before casting (`1 − β₁`, `1 − β₂`,
//! `1 − ρ`), the f32 is read back as the decimal it came from, so `1 − 0.999` is 0.001 as
//! in Keras, not 0.00099998713 (a 1.3·10⁻⁵ relative error in every second moment otherwise).
//! Weights and variables match Keras 3's within 10⁻⁶ relative, step after step
//! (`tests/fixtures/optimizers`).

use crate::error::{Error, Result};
use crate::nn::schedules::LearningRateSchedule;
use crate::numbers::one_minus;
use serde_json::{json, Map, Value};

/// Keras' arguments common to every optimizer (`weight_decay`, the clipping options) and
/// the learning-rate schedule, if the learning rate is one.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct BaseOptions {
    /// Decoupled weight decay: `w ← w − w·wd·lr` before each update.
    pub weight_decay: Option<f32>,
    /// Clip each weight's gradient to this L2 norm.
    pub clipnorm: Option<f32>,
    /// Clip each gradient value to `[−clipvalue, clipvalue]`.
    pub clipvalue: Option<f32>,
    /// Clip all gradients together to this global L2 norm.
    pub global_clipnorm: Option<f32>,
    /// The learning-rate schedule; `None` for a constant rate.
    pub schedule: Option<LearningRateSchedule>,
}

/// Stochastic gradient descent (Keras' `SGD`: learning_rate 0.01, momentum 0, nesterov off).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sgd {
    /// Step size.
    pub learning_rate: f32,
    /// Momentum factor in [0, 1).
    pub momentum: f32,
    /// Use Nesterov momentum.
    pub nesterov: bool,
    /// Weight decay, clipping, schedule.
    pub base: BaseOptions,
}

impl Default for Sgd {
    fn default() -> Self {
        Sgd { learning_rate: 0.01, momentum: 0.0, nesterov: false, base: BaseOptions::default() }
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
    /// Weight decay, clipping, schedule.
    pub base: BaseOptions,
}

impl Default for Adam {
    fn default() -> Self {
        Adam {
            learning_rate: 0.001,
            beta_1: 0.9,
            beta_2: 0.999,
            epsilon: 1e-7,
            amsgrad: false,
            base: BaseOptions::default(),
        }
    }
}

/// AdamW: Adam with decoupled weight decay (Keras' defaults: Adam's, weight_decay 0.004).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamW {
    /// Step size.
    pub learning_rate: f32,
    /// Decoupled weight decay (this one, not `base.weight_decay`, is used).
    pub weight_decay: f32,
    /// Decay of the first-moment estimate.
    pub beta_1: f32,
    /// Decay of the second-moment estimate.
    pub beta_2: f32,
    /// Added to the root of the second moment.
    pub epsilon: f32,
    /// Use the AMSGrad variant.
    pub amsgrad: bool,
    /// Clipping, schedule (`weight_decay` here is ignored).
    pub base: BaseOptions,
}

impl Default for AdamW {
    fn default() -> Self {
        AdamW {
            learning_rate: 0.001,
            weight_decay: 0.004,
            beta_1: 0.9,
            beta_2: 0.999,
            epsilon: 1e-7,
            amsgrad: false,
            base: BaseOptions::default(),
        }
    }
}

/// Nadam: Adam with Nesterov momentum (Keras' defaults: learning_rate 0.001, beta_1 0.9,
/// beta_2 0.999, epsilon 1e-7).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Nadam {
    /// Step size.
    pub learning_rate: f32,
    /// Decay of the first-moment estimate.
    pub beta_1: f32,
    /// Decay of the second-moment estimate.
    pub beta_2: f32,
    /// Added to the root of the second moment.
    pub epsilon: f32,
    /// Weight decay, clipping, schedule.
    pub base: BaseOptions,
}

impl Default for Nadam {
    fn default() -> Self {
        Nadam { learning_rate: 0.001, beta_1: 0.9, beta_2: 0.999, epsilon: 1e-7, base: BaseOptions::default() }
    }
}

/// Adamax: Adam with the infinity norm (Keras' defaults: learning_rate 0.001, beta_1 0.9,
/// beta_2 0.999, epsilon 1e-7).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Adamax {
    /// Step size.
    pub learning_rate: f32,
    /// Decay of the first-moment estimate.
    pub beta_1: f32,
    /// Decay of the infinity norm.
    pub beta_2: f32,
    /// Added to the norm.
    pub epsilon: f32,
    /// Weight decay, clipping, schedule.
    pub base: BaseOptions,
}

impl Default for Adamax {
    fn default() -> Self {
        Adamax { learning_rate: 0.001, beta_1: 0.9, beta_2: 0.999, epsilon: 1e-7, base: BaseOptions::default() }
    }
}

/// Adagrad (Keras' defaults: learning_rate 0.001, initial_accumulator_value 0.1, epsilon 1e-7).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Adagrad {
    /// Step size.
    pub learning_rate: f32,
    /// Starting value of the accumulators.
    pub initial_accumulator_value: f32,
    /// Added to the accumulator before the root.
    pub epsilon: f32,
    /// Weight decay, clipping, schedule.
    pub base: BaseOptions,
}

impl Default for Adagrad {
    fn default() -> Self {
        Adagrad { learning_rate: 0.001, initial_accumulator_value: 0.1, epsilon: 1e-7, base: BaseOptions::default() }
    }
}

/// Adadelta (Keras' defaults: learning_rate 0.001, rho 0.95, epsilon 1e-7).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Adadelta {
    /// Step size.
    pub learning_rate: f32,
    /// Decay of the accumulators.
    pub rho: f32,
    /// Added inside the roots.
    pub epsilon: f32,
    /// Weight decay, clipping, schedule.
    pub base: BaseOptions,
}

impl Default for Adadelta {
    fn default() -> Self {
        Adadelta { learning_rate: 0.001, rho: 0.95, epsilon: 1e-7, base: BaseOptions::default() }
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
    /// Weight decay, clipping, schedule.
    pub base: BaseOptions,
}

impl Default for RmsProp {
    fn default() -> Self {
        RmsProp {
            learning_rate: 0.001,
            rho: 0.9,
            momentum: 0.0,
            epsilon: 1e-7,
            centered: false,
            base: BaseOptions::default(),
        }
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
    /// AdamW.
    AdamW(AdamW),
    /// Nadam.
    Nadam(Nadam),
    /// Adamax.
    Adamax(Adamax),
    /// Adagrad.
    Adagrad(Adagrad),
    /// Adadelta.
    Adadelta(Adadelta),
}

macro_rules! from_impls {
    ($($t:ident => $v:ident),*) => {$(
        impl From<$t> for Optimizer {
            fn from(o: $t) -> Self {
                Optimizer::$v(o)
            }
        }
    )*};
}
from_impls!(Sgd => Sgd, Adam => Adam, RmsProp => RmsProp, AdamW => AdamW, Nadam => Nadam, Adamax => Adamax,
    Adagrad => Adagrad, Adadelta => Adadelta);

/// Applies `$body` to the inner struct of any variant, bound to `$o`.
macro_rules! each {
    ($self:expr, $o:ident => $body:expr) => {
        match $self {
            Optimizer::Sgd($o) => $body,
            Optimizer::Adam($o) => $body,
            Optimizer::RmsProp($o) => $body,
            Optimizer::AdamW($o) => $body,
            Optimizer::Nadam($o) => $body,
            Optimizer::Adamax($o) => $body,
            Optimizer::Adagrad($o) => $body,
            Optimizer::Adadelta($o) => $body,
        }
    };
}

/// The optimizer's variables: step count, per-weight slots (`slots[weight][slot]`) and extra
/// scalar variables ([`Optimizer::scalar_names`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OptimizerState {
    /// Steps applied so far (Keras' `iterations`).
    pub iterations: u64,
    /// For each weight the optimizer updates, in model order, one buffer per slot.
    pub slots: Vec<Vec<Vec<f32>>>,
    /// Extra scalar variables (Nadam's `u_product`); empty means "derive them from
    /// `iterations`" (they are a function of the step count).
    pub scalars: Vec<f32>,
}

/// What one step needs besides the gradients: the step number, the learning rate and the
/// optimizer's scalar variables after this step's own update. Computed once per step by
/// [`Optimizer::begin_step`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepInfo {
    /// 1-based step number (Keras' `iterations + 1`).
    pub step: u64,
    /// Learning rate of this step.
    pub learning_rate: f32,
    /// Nadam's `u_product` after this step's factor (1 for the others).
    pub u_product: f32,
}

/// One of the variables Keras 3 saves under `optimizer/vars/<i>`, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keras3Variable {
    /// `iteration` (int64 scalar).
    Iterations,
    /// `learning_rate` (float scalar; absent when the rate is a schedule).
    LearningRate,
    /// A slot of one weight (indices into the optimizer's weights and [`Optimizer::slot_names`]).
    Slot {
        /// Which weight.
        weight: usize,
        /// Which slot.
        slot: usize,
    },
    /// An extra scalar ([`Optimizer::scalar_names`]).
    Scalar(usize),
}

/// Nadam's momentum-schedule factor `uₜ = β₁(1 − ½·0.96ᵗ)`, in f32 as Keras computes it.
fn nadam_u(beta_1: f32, t: u64) -> f32 {
    beta_1 * (1.0 - 0.5 * 0.96f32.powf(t as f32))
}

/// Keras' name of an optimizer (`"adam"`) with its default arguments, as `compile` takes it.
impl TryFrom<&str> for Optimizer {
    type Error = Error;
    fn try_from(s: &str) -> Result<Self> {
        Optimizer::parse(s)
    }
}

impl Optimizer {
    /// The optimizer named `name` (`sgd`, `adam`, `adamw`, `nadam`, `adamax`, `adagrad`,
    /// `adadelta`, `rmsprop`) with Keras' defaults.
    pub fn parse(name: &str) -> Result<Self> {
        match name.to_ascii_lowercase().replace('_', "").as_str() {
            "sgd" => Ok(Sgd::default().into()),
            "adam" => Ok(Adam::default().into()),
            "rmsprop" => Ok(RmsProp::default().into()),
            "adamw" => Ok(AdamW::default().into()),
            "nadam" => Ok(Nadam::default().into()),
            "adamax" => Ok(Adamax::default().into()),
            "adagrad" => Ok(Adagrad::default().into()),
            "adadelta" => Ok(Adadelta::default().into()),
            _ => Err(Error::config(format!(
                "unknown optimizer {name:?} (convnet has sgd, adam, adamw, nadam, adamax, adagrad, adadelta, rmsprop)"
            ))),
        }
    }

    /// Keras' class name (`SGD`, `Adam`, `RMSprop`, `AdamW`, …).
    pub fn class_name(&self) -> &'static str {
        match self {
            Optimizer::Sgd(_) => "SGD",
            Optimizer::Adam(_) => "Adam",
            Optimizer::RmsProp(_) => "RMSprop",
            Optimizer::AdamW(_) => "AdamW",
            Optimizer::Nadam(_) => "Nadam",
            Optimizer::Adamax(_) => "Adamax",
            Optimizer::Adagrad(_) => "Adagrad",
            Optimizer::Adadelta(_) => "Adadelta",
        }
    }

    /// Keras 3's default `name` of the optimizer (the snake case of the class: `adam_w`,
    /// `rm_sprop`), which also names its variables' group in a `.keras` file.
    pub fn keras_name(&self) -> &'static str {
        match self {
            Optimizer::Sgd(_) => "sgd",
            Optimizer::Adam(_) => "adam",
            Optimizer::RmsProp(_) => "rm_sprop",
            Optimizer::AdamW(_) => "adam_w",
            Optimizer::Nadam(_) => "nadam",
            Optimizer::Adamax(_) => "adamax",
            Optimizer::Adagrad(_) => "adagrad",
            Optimizer::Adadelta(_) => "adadelta",
        }
    }

    /// Weight decay, clipping and schedule.
    pub fn base(&self) -> &BaseOptions {
        each!(self, o => &o.base)
    }

    /// Weight decay, clipping and schedule, mutable.
    pub fn base_mut(&mut self) -> &mut BaseOptions {
        each!(self, o => &mut o.base)
    }

    /// The learning-rate schedule, if the rate is one.
    pub fn schedule(&self) -> Option<&LearningRateSchedule> {
        self.base().schedule.as_ref()
    }

    /// The weight decay in effect (AdamW's own, or the common `weight_decay`).
    pub fn weight_decay(&self) -> Option<f32> {
        match self {
            Optimizer::AdamW(o) => Some(o.weight_decay),
            _ => self.base().weight_decay,
        }
    }

    /// The current learning rate: the constant rate, or with a schedule the rate of the
    /// next step (what Keras' `optimizer.learning_rate` reports; the model keeps it current,
    /// see [`Optimizer::sync_learning_rate`]).
    pub fn learning_rate(&self) -> f32 {
        each!(self, o => o.learning_rate)
    }

    /// Sets a constant learning rate (for callbacks such as `ReduceLROnPlateau` and
    /// `LearningRateScheduler`). A schedule, if any, is dropped: from then on the rate is the
    /// one set here. (Keras refuses to set the rate of an optimizer built on a schedule; convnet
    /// lets the caller take over from the schedule, at the rate it last reported.)
    pub fn set_learning_rate(&mut self, lr: f32) {
        self.base_mut().schedule = None;
        self.set_current_rate(lr);
    }

    fn set_current_rate(&mut self, lr: f32) {
        each!(self, o => o.learning_rate = lr)
    }

    /// Replaces the learning rate by `schedule` (the current rate becomes its rate at step 0).
    pub fn set_schedule(&mut self, schedule: LearningRateSchedule) {
        self.base_mut().schedule = Some(schedule);
        self.set_current_rate(schedule.rate(0));
    }

    /// The learning rate after `iterations` steps (the rate of step `iterations + 1`).
    pub fn learning_rate_at(&self, iterations: u64) -> f32 {
        match self.schedule() {
            Some(s) => s.rate(iterations),
            None => self.learning_rate(),
        }
    }

    /// With a schedule, sets the reported rate to the one after `iterations` steps.
    pub fn sync_learning_rate(&mut self, iterations: u64) {
        if let Some(s) = self.base().schedule {
            self.set_current_rate(s.rate(iterations));
        }
    }

    /// Names of the per-weight slots, in Keras 3's names and order of creation.
    pub fn slot_names(&self) -> &'static [&'static str] {
        match self {
            Optimizer::Sgd(o) if o.momentum != 0.0 => &["momentum"],
            Optimizer::Sgd(_) => &[],
            Optimizer::Adam(Adam { amsgrad: true, .. }) | Optimizer::AdamW(AdamW { amsgrad: true, .. }) => {
                &["momentum", "velocity", "velocity_hat"]
            }
            Optimizer::Adam(_) | Optimizer::AdamW(_) | Optimizer::Nadam(_) => &["momentum", "velocity"],
            Optimizer::Adamax(_) => &["momentum", "norm"],
            Optimizer::Adagrad(_) => &["accumulator"],
            Optimizer::Adadelta(_) => &["accumulated_grad", "accumulated_delta_var"],
            Optimizer::RmsProp(o) => match (o.momentum > 0.0, o.centered) {
                (false, false) => &["velocity"],
                (true, false) => &["velocity", "momentum"],
                (false, true) => &["velocity", "average_gradient"],
                (true, true) => &["velocity", "momentum", "average_gradient"],
            },
        }
    }

    /// tf_keras' names of the slots (the token in `Adam/m/dense/kernel:0`), in
    /// [`Optimizer::slot_names`] order. tf_keras' SGD keeps its `m` slots even without
    /// momentum, so for it this list may be longer than the slots convnet keeps.
    pub fn tf_keras_slot_tokens(&self) -> &'static [&'static str] {
        match self {
            Optimizer::Sgd(_) => &["m"],
            Optimizer::Adam(_) | Optimizer::AdamW(_) | Optimizer::Nadam(_) => {
                &["m", "v", "vhat"][..self.slot_names().len()]
            }
            Optimizer::Adamax(_) => &["m", "u"],
            // tf_keras names these slots as Keras 3 does.
            Optimizer::Adagrad(_) | Optimizer::Adadelta(_) | Optimizer::RmsProp(_) => self.slot_names(),
        }
    }

    /// `(weight, slot)` in the order tf_keras lists the slot variables (in `.h5` files'
    /// `optimizer_weights`): Keras 3's order, plus for SGD without momentum the `m` slots
    /// tf_keras keeps anyway (slot index 0, which convnet does not hold: they stay zero).
    pub fn tf_keras_slot_order(&self, weights: usize) -> Vec<(usize, usize)> {
        if self.slot_names().is_empty() && !self.tf_keras_slot_tokens().is_empty() {
            return (0..weights).map(|w| (w, 0)).collect();
        }
        self.keras3_slot_order(weights)
    }

    /// Which slot a saved optimizer variable holds, from its name in any of Keras' namings:
    /// tf_keras' `Adam/m/conv2d/kernel:0` (older: `Adam/conv2d/kernel/m:0`) or Keras 3's
    /// `adam/sequential_conv2d_kernel_momentum`. An index past [`Optimizer::slot_names`]
    /// is a tf_keras slot convnet does not keep (SGD's `m` without momentum).
    pub fn slot_of_variable(&self, name: &str) -> Option<usize> {
        let names = self.slot_names();
        let tokens = self.tf_keras_slot_tokens();
        let alias = |t: &str| -> Option<usize> {
            let t = match t {
                "momentums" => "momentum",
                "velocities" | "rms" if names.contains(&"velocity") => "velocity",
                "mg" => "average_gradient",
                t => t,
            };
            tokens.iter().position(|&k| k == t).or_else(|| names.iter().position(|&k| k == t))
        };
        let parts: Vec<&str> = name.split('/').map(|p| p.trim_end_matches(":0")).collect();
        if parts.len() >= 3 {
            if let Some(s) = alias(parts[1]).or_else(|| alias(parts[parts.len() - 1])) {
                return Some(s);
            }
        }
        let last = parts.last()?;
        // The longest matching suffix: `velocity_hat` before `velocity`.
        (0..names.len()).filter(|&i| last.ends_with(&format!("_{}", names[i]))).max_by_key(|&i| names[i].len())
    }

    /// Starting value of slot `slot` (Adagrad's `initial_accumulator_value`, else 0).
    pub fn slot_initial_value(&self, slot: usize) -> f32 {
        match self {
            Optimizer::Adagrad(o) if slot == 0 => o.initial_accumulator_value,
            _ => 0.0,
        }
    }

    /// Names of the optimizer's extra scalar variables (Nadam: `u_product`).
    pub fn scalar_names(&self) -> &'static [&'static str] {
        match self {
            Optimizer::Nadam(_) => &["u_product"],
            _ => &[],
        }
    }

    /// The scalar variables after `iterations` steps (Nadam's `u_product` is the product of
    /// its per-step factors, computed in f32 in Keras' order).
    pub fn scalars_after(&self, iterations: u64) -> Vec<f32> {
        match self {
            Optimizer::Nadam(o) => {
                let mut u = 1.0f32;
                for t in 1..=iterations {
                    u = u * o.beta_1 * (1.0 - 0.5 * 0.96f32.powf(t as f32));
                }
                vec![u]
            }
            _ => Vec::new(),
        }
    }

    /// The variables Keras 3 saves in `optimizer/vars/<i>`, in order, for an optimizer
    /// updating `weights` weights: `iteration`, `learning_rate` (unless the rate is a
    /// schedule), the slots in the optimizer's order of creation (Adam, AdamW, Nadam,
    /// Adamax and Adadelta interleave their first slots weight by weight; AMSGrad's
    /// `velocity_hat` and RMSprop's slots come slot by slot), then the extra scalars.
    pub fn keras3_variables(&self, weights: usize) -> Vec<Keras3Variable> {
        let mut v = vec![Keras3Variable::Iterations];
        if self.schedule().is_none() {
            v.push(Keras3Variable::LearningRate);
        }
        let n = self.slot_names().len();
        // Slots created together by one `add_optimizer_variables` call are interleaved.
        let together = match self {
            Optimizer::Adam(_)
            | Optimizer::AdamW(_)
            | Optimizer::Nadam(_)
            | Optimizer::Adamax(_)
            | Optimizer::Adadelta(_) => 2,
            _ => 1,
        };
        let slot = |weight, slot| Keras3Variable::Slot { weight, slot };
        v.extend((0..weights).flat_map(|w| (0..together.min(n)).map(move |s| slot(w, s))));
        for s in together.min(n)..n {
            v.extend((0..weights).map(|w| slot(w, s)));
        }
        v.extend((0..self.scalar_names().len()).map(Keras3Variable::Scalar));
        v
    }

    /// `(weight, slot)` in the order Keras 3 lists the slot variables (the
    /// [`Keras3Variable::Slot`]s of [`Optimizer::keras3_variables`]).
    pub fn keras3_slot_order(&self, weights: usize) -> Vec<(usize, usize)> {
        self.keras3_variables(weights)
            .into_iter()
            .filter_map(|v| match v {
                Keras3Variable::Slot { weight, slot } => Some((weight, slot)),
                _ => None,
            })
            .collect()
    }

    /// Keras' config of the optimizer (the `config` of `{"class_name", "config"}`).
    pub fn to_config(&self) -> Value {
        let lr = match self.schedule() {
            Some(s) => s.to_keras(),
            None => json!(self.learning_rate()),
        };
        let mut c = match *self {
            Optimizer::Sgd(o) => json!({"name": "SGD", "momentum": o.momentum, "nesterov": o.nesterov}),
            Optimizer::Adam(o) => json!({
                "name": "Adam", "beta_1": o.beta_1, "beta_2": o.beta_2, "epsilon": o.epsilon, "amsgrad": o.amsgrad,
            }),
            Optimizer::AdamW(o) => json!({
                "name": "AdamW", "beta_1": o.beta_1, "beta_2": o.beta_2, "epsilon": o.epsilon, "amsgrad": o.amsgrad,
            }),
            Optimizer::Nadam(o) => {
                json!({"name": "Nadam", "beta_1": o.beta_1, "beta_2": o.beta_2, "epsilon": o.epsilon})
            }
            Optimizer::Adamax(o) => {
                json!({"name": "Adamax", "beta_1": o.beta_1, "beta_2": o.beta_2, "epsilon": o.epsilon})
            }
            Optimizer::Adagrad(o) => json!({
                "name": "Adagrad", "initial_accumulator_value": o.initial_accumulator_value, "epsilon": o.epsilon,
            }),
            Optimizer::Adadelta(o) => json!({"name": "Adadelta", "rho": o.rho, "epsilon": o.epsilon}),
            Optimizer::RmsProp(o) => json!({
                "name": "RMSprop", "rho": o.rho, "momentum": o.momentum, "epsilon": o.epsilon, "centered": o.centered,
            }),
        };
        let b = self.base();
        let common = json!({
            "learning_rate": lr,
            "weight_decay": self.weight_decay(), "clipnorm": b.clipnorm, "global_clipnorm": b.global_clipnorm,
            "clipvalue": b.clipvalue, "use_ema": false, "ema_momentum": 0.99, "ema_overwrite_frequency": null,
        });
        if let (Some(c), Some(common)) = (c.as_object_mut(), common.as_object()) {
            for (k, v) in common {
                c.insert(k.clone(), v.clone());
            }
        }
        c
    }

    /// Reads Keras' `{"class_name": …, "config": {…}}` (or a bare name), in Keras 3's and
    /// tf_keras' forms; unknown keys are ignored, missing ones take Keras' defaults. A
    /// `learning_rate` that is a serialised schedule becomes the optimizer's schedule.
    /// Options convnet does not implement (`use_ema`, `gradient_accumulation_steps`,
    /// `loss_scale_factor`) are refused, never ignored.
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
                Some(other) => Err(Error::config(format!("optimizer {key} must be a number, not {other}"))),
            }
        };
        let flag = |key: &str| cfg.get(key).and_then(Value::as_bool);
        if flag("use_ema") == Some(true) {
            return Err(Error::config("optimizers with use_ema=True are not supported"));
        }
        for key in ["gradient_accumulation_steps", "loss_scale_factor"] {
            if num(key)?.is_some() {
                return Err(Error::config(format!("optimizers with {key} set are not supported")));
            }
        }
        // Keras 2's legacy optimizers decayed the rate as lr / (1 + decay·t).
        if let Some(d) = num("decay")?.filter(|&d| d != 0.0) {
            return Err(Error::config(format!(
                "the legacy optimizer argument decay={d} is not supported; use an InverseTimeDecay schedule"
            )));
        }
        let lr_key = if cfg.contains_key("learning_rate") { "learning_rate" } else { "lr" };
        let schedule = match cfg.get(lr_key) {
            Some(s @ Value::Object(_)) => Some(LearningRateSchedule::from_config(s)?),
            _ => None,
        };
        let lr = if schedule.is_some() { None } else { num(lr_key)? };
        let base = BaseOptions {
            weight_decay: num("weight_decay")?,
            clipnorm: num("clipnorm")?,
            clipvalue: num("clipvalue")?,
            global_clipnorm: num("global_clipnorm")?,
            schedule: None,
        };
        match &mut opt {
            Optimizer::Sgd(o) => {
                o.momentum = num("momentum")?.unwrap_or(o.momentum);
                o.nesterov = flag("nesterov").unwrap_or(o.nesterov);
            }
            Optimizer::Adam(o) => {
                o.beta_1 = num("beta_1")?.unwrap_or(o.beta_1);
                o.beta_2 = num("beta_2")?.unwrap_or(o.beta_2);
                o.epsilon = num("epsilon")?.unwrap_or(o.epsilon);
                o.amsgrad = flag("amsgrad").unwrap_or(o.amsgrad);
            }
            Optimizer::AdamW(o) => {
                o.weight_decay = base.weight_decay.unwrap_or(o.weight_decay);
                o.beta_1 = num("beta_1")?.unwrap_or(o.beta_1);
                o.beta_2 = num("beta_2")?.unwrap_or(o.beta_2);
                o.epsilon = num("epsilon")?.unwrap_or(o.epsilon);
                o.amsgrad = flag("amsgrad").unwrap_or(o.amsgrad);
            }
            Optimizer::Nadam(o) => {
                o.beta_1 = num("beta_1")?.unwrap_or(o.beta_1);
                o.beta_2 = num("beta_2")?.unwrap_or(o.beta_2);
                o.epsilon = num("epsilon")?.unwrap_or(o.epsilon);
            }
            Optimizer::Adamax(o) => {
                o.beta_1 = num("beta_1")?.unwrap_or(o.beta_1);
                o.beta_2 = num("beta_2")?.unwrap_or(o.beta_2);
                o.epsilon = num("epsilon")?.unwrap_or(o.epsilon);
            }
            Optimizer::Adagrad(o) => {
                o.initial_accumulator_value = num("initial_accumulator_value")?.unwrap_or(o.initial_accumulator_value);
                o.epsilon = num("epsilon")?.unwrap_or(o.epsilon);
            }
            Optimizer::Adadelta(o) => {
                o.rho = num("rho")?.unwrap_or(o.rho);
                o.epsilon = num("epsilon")?.unwrap_or(o.epsilon);
            }
            Optimizer::RmsProp(o) => {
                o.rho = num("rho")?.unwrap_or(o.rho);
                o.momentum = num("momentum")?.unwrap_or(o.momentum);
                o.epsilon = num("epsilon")?.unwrap_or(o.epsilon);
                o.centered = flag("centered").unwrap_or(o.centered);
            }
        }
        let is_adamw = matches!(opt, Optimizer::AdamW(_));
        *opt.base_mut() = BaseOptions { weight_decay: if is_adamw { None } else { base.weight_decay }, ..base };
        if let Some(lr) = lr {
            opt.set_learning_rate(lr);
        }
        if let Some(s) = schedule {
            opt.set_schedule(s);
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
        let b = self.base();
        for (what, v) in [
            ("weight_decay", self.weight_decay()),
            ("clipnorm", b.clipnorm),
            ("clipvalue", b.clipvalue),
            ("global_clipnorm", b.global_clipnorm),
        ] {
            if let Some(v) = v.filter(|v| !(v.is_finite() && *v >= 0.0)) {
                return Err(Error::config(format!("{what} must be a non-negative number, not {v}")));
            }
        }
        if [b.clipnorm, b.clipvalue, b.global_clipnorm].iter().filter(|c| c.is_some()).count() > 1 {
            return Err(Error::config(format!(
                "only one of clipnorm, clipvalue and global_clipnorm can be set (got clipnorm={:?}, \
                 clipvalue={:?}, global_clipnorm={:?})",
                b.clipnorm, b.clipvalue, b.global_clipnorm
            )));
        }
        let unit = |what: &str, v: f32| {
            if (0.0..1.0).contains(&v) {
                Ok(())
            } else {
                Err(Error::config(format!("{what} must be in [0, 1), not {v}")))
            }
        };
        let positive = |what: &str, v: f32| {
            if v.is_finite() && v >= 0.0 {
                Ok(())
            } else {
                Err(Error::config(format!("{what} must be a non-negative number, not {v}")))
            }
        };
        match *self {
            Optimizer::Sgd(o) => unit("momentum", o.momentum),
            Optimizer::Adam(Adam { beta_1, beta_2, epsilon, .. })
            | Optimizer::AdamW(AdamW { beta_1, beta_2, epsilon, .. })
            | Optimizer::Nadam(Nadam { beta_1, beta_2, epsilon, .. })
            | Optimizer::Adamax(Adamax { beta_1, beta_2, epsilon, .. }) => {
                unit("beta_1", beta_1)?;
                unit("beta_2", beta_2)?;
                positive("epsilon", epsilon)
            }
            Optimizer::Adagrad(o) => {
                positive("initial_accumulator_value", o.initial_accumulator_value)?;
                positive("epsilon", o.epsilon)
            }
            Optimizer::Adadelta(o) => {
                unit("rho", o.rho)?;
                positive("epsilon", o.epsilon)
            }
            Optimizer::RmsProp(o) => {
                unit("rho", o.rho)?;
                unit("momentum", o.momentum)?;
                positive("epsilon", o.epsilon)
            }
        }
    }

    /// Starts step `step` (1-based): advances the scalar variables (`scalars`, in
    /// [`Optimizer::scalar_names`] order) and returns what the step's updates need.
    pub fn begin_step(&self, step: u64, scalars: &mut [f32]) -> StepInfo {
        let learning_rate = self.learning_rate_at(step.saturating_sub(1));
        let mut u_product = 1.0;
        if let (Optimizer::Nadam(o), Some(u)) = (self, scalars.first_mut()) {
            *u = *u * o.beta_1 * (1.0 - 0.5 * 0.96f32.powf(step as f32));
            u_product = *u;
        }
        StepInfo { step, learning_rate, u_product }
    }

    /// True when clipping needs the norm of all gradients together (`global_clipnorm`).
    pub fn clips_globally(&self) -> bool {
        self.base().global_clipnorm.is_some_and(|c| c > 0.0)
    }

    /// Clips one weight's gradient as Keras does (`clipnorm`, `clipvalue`, or
    /// `global_clipnorm` given the norm of all gradients together, `global_norm`).
    pub fn clip_gradient(&self, g: &mut [f32], global_norm: f32) {
        let b = self.base();
        if let Some(c) = b.clipnorm.filter(|&c| c > 0.0) {
            let norm = (g.iter().map(|&x| f64::from(x) * f64::from(x)).sum::<f64>() as f32).sqrt();
            let denom = norm.max(c);
            for x in g.iter_mut() {
                *x = *x * c / denom;
            }
        } else if let Some(c) = b.global_clipnorm.filter(|&c| c > 0.0) {
            // Keras: scale = c·min(1/‖G‖, 1/c) + (‖G‖ − ‖G‖): a non-finite norm makes it NaN.
            let scale = if global_norm.is_finite() { c * (1.0 / global_norm).min(1.0 / c) } else { f32::NAN };
            for x in g.iter_mut() {
                *x *= scale;
            }
        } else if let Some(c) = b.clipvalue.filter(|&c| c > 0.0) {
            for x in g.iter_mut() {
                *x = x.clamp(-c, c);
            }
        }
    }

    /// Applies the weight decay, if any, to one weight: `w ← w − w·wd·lr`.
    pub fn decay_weight(&self, info: &StepInfo, w: &mut [f32]) {
        if let Some(wd) = self.weight_decay() {
            let lr = info.learning_rate;
            for x in w.iter_mut() {
                *x -= *x * wd * lr;
            }
        }
    }

    /// Applies step number `step` (1-based) to weight `w` with gradient `g`, without
    /// clipping or weight decay; `slots` are this weight's slot buffers (or matching
    /// sub-slices of them), in [`Optimizer::slot_names`] order. A convenience over
    /// [`Optimizer::update_with`] (for Nadam it recomputes `u_product` from `step`).
    pub fn update(&self, step: u64, w: &mut [f32], g: &[f32], slots: &mut [&mut [f32]]) {
        let mut scalars = self.scalars_after(step.saturating_sub(1));
        let info = self.begin_step(step, &mut scalars);
        self.update_with(&info, w, g, slots);
    }

    /// Applies the optimizer's update rule for the step described by `info` to weight `w`
    /// with (already clipped) gradient `g`; `slots` in [`Optimizer::slot_names`] order.
    pub fn update_with(&self, info: &StepInfo, w: &mut [f32], g: &[f32], slots: &mut [&mut [f32]]) {
        let lr = info.learning_rate;
        let t = info.step as f32;
        match *self {
            Optimizer::Sgd(o) => {
                if o.momentum != 0.0 {
                    let mu = o.momentum;
                    let n = w.len();
                    let (m, g) = (&mut slots[0][..n], &g[..n]);
                    for i in 0..n {
                        m[i] = m[i] * mu - g[i] * lr;
                        w[i] += if o.nesterov { m[i] * mu - g[i] * lr } else { m[i] };
                    }
                } else {
                    for (wi, gi) in w.iter_mut().zip(g) {
                        *wi -= gi * lr;
                    }
                }
            }
            Optimizer::Adam(Adam { beta_1, beta_2, epsilon, amsgrad, .. })
            | Optimizer::AdamW(AdamW { beta_1, beta_2, epsilon, amsgrad, .. }) => {
                let b1p = beta_1.powf(t);
                let b2p = beta_2.powf(t);
                let alpha = lr * (1.0 - b2p).sqrt() / (1.0 - b1p);
                let (a1, a2) = (one_minus(beta_1), one_minus(beta_2));
                let [m, v, rest @ ..] = slots else { return };
                // Plain slices of the weight's length: the loops then run without bounds
                // checks and vectorise (through the slot table they did neither).
                let n = w.len();
                let (m, v, g) = (&mut m[..n], &mut v[..n], &g[..n]);
                if amsgrad {
                    let vh = &mut rest[0][..n];
                    for i in 0..n {
                        m[i] += (g[i] - m[i]) * a1;
                        v[i] += (g[i] * g[i] - v[i]) * a2;
                        vh[i] = vh[i].max(v[i]);
                        w[i] -= m[i] * alpha / (vh[i].sqrt() + epsilon);
                    }
                } else {
                    for i in 0..n {
                        m[i] += (g[i] - m[i]) * a1;
                        v[i] += (g[i] * g[i] - v[i]) * a2;
                        w[i] -= m[i] * alpha / (v[i].sqrt() + epsilon);
                    }
                }
            }
            Optimizer::Nadam(o) => {
                let (b1, b2) = (o.beta_1, o.beta_2);
                let u_t = nadam_u(b1, info.step);
                let u_t1 = nadam_u(b1, info.step + 1);
                let u_prod = info.u_product;
                let u_prod_1 = u_prod * u_t1;
                let b2p = b2.powf(t);
                // Keras' Nadam casts the betas to f32 before `1 − β`.
                let (a1, a2) = (1.0 - b1, 1.0 - b2);
                let [m, v, ..] = slots else { return };
                for i in 0..w.len() {
                    m[i] += (g[i] - m[i]) * a1;
                    v[i] += (g[i] * g[i] - v[i]) * a2;
                    let m_hat = u_t1 * m[i] / (1.0 - u_prod_1) + (1.0 - u_t) * g[i] / (1.0 - u_prod);
                    let v_hat = v[i] / (1.0 - b2p);
                    w[i] -= m_hat * lr / (v_hat.sqrt() + o.epsilon);
                }
            }
            Optimizer::Adamax(o) => {
                let b1p = o.beta_1.powf(t);
                let a1 = one_minus(o.beta_1);
                let [m, u, ..] = slots else { return };
                for i in 0..w.len() {
                    m[i] += (g[i] - m[i]) * a1;
                    u[i] = (o.beta_2 * u[i]).max(g[i].abs());
                    w[i] -= lr * m[i] / ((1.0 - b1p) * (u[i] + o.epsilon));
                }
            }
            Optimizer::Adagrad(o) => {
                let a = &mut *slots[0];
                for i in 0..w.len() {
                    a[i] += g[i] * g[i];
                    w[i] -= lr * g[i] / (a[i] + o.epsilon).sqrt();
                }
            }
            Optimizer::Adadelta(o) => {
                let (rho, a1, eps) = (o.rho, one_minus(o.rho), o.epsilon);
                let [acc, delta_acc, ..] = slots else { return };
                for i in 0..w.len() {
                    acc[i] = rho * acc[i] + a1 * (g[i] * g[i]);
                    let delta = -((delta_acc[i] + eps).sqrt() * g[i] / (acc[i] + eps).sqrt());
                    delta_acc[i] = rho * delta_acc[i] + a1 * (delta * delta);
                    w[i] += lr * delta;
                }
            }
            Optimizer::RmsProp(o) => {
                let (rho, a1, eps, mu) = (o.rho, one_minus(o.rho), o.epsilon, o.momentum);
                let has_m = mu > 0.0;
                let (first, rest) = slots.split_at_mut(1);
                let vel = &mut *first[0];
                let (mut mom, mut avg): (Option<&mut [f32]>, Option<&mut [f32]>) = match (has_m, o.centered) {
                    (true, true) => {
                        let (a, b) = rest.split_at_mut(1);
                        (Some(&mut *a[0]), Some(&mut *b[0]))
                    }
                    (true, false) => (Some(&mut *rest[0]), None),
                    (false, true) => (None, Some(&mut *rest[0])),
                    (false, false) => (None, None),
                };
                for i in 0..w.len() {
                    vel[i] = rho * vel[i] + a1 * (g[i] * g[i]);
                    let denom = match avg.as_deref_mut() {
                        Some(a) => {
                            a[i] = rho * a[i] + a1 * g[i];
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

impl Optimizer {
    /// Creates the slots (at [`Optimizer::slot_initial_value`]) for weights of `sizes` values
    /// when `state` has none or they do not fit those weights, and the scalar variables when they are missing (derived from
    /// `state.iterations`). Allocates only when something is missing.
    pub fn prepare_state(&self, state: &mut OptimizerState, sizes: impl Iterator<Item = usize> + Clone) {
        let n = self.slot_names().len();
        let fits = state.slots.len() == sizes.clone().count()
            && state.slots.iter().zip(sizes.clone()).all(|(s, len)| s.len() == n && s.iter().all(|v| v.len() == len));
        if !fits {
            state.slots = sizes.map(|len| (0..n).map(|s| vec![self.slot_initial_value(s); len]).collect()).collect();
        }
        if state.scalars.len() != self.scalar_names().len() {
            state.scalars = self.scalars_after(state.iterations);
        }
    }

    /// Counts a step in `state` and starts it ([`Optimizer::begin_step`]).
    pub fn next_step(&self, state: &mut OptimizerState) -> StepInfo {
        state.iterations += 1;
        self.begin_step(state.iterations, &mut state.scalars)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `steps` updates on a one-element weight with a constant gradient.
    fn run(opt: Optimizer, steps: u64, g: f32) -> f32 {
        let mut w = [1.0f32];
        let mut slots: Vec<Vec<f32>> = (0..opt.slot_names().len()).map(|s| vec![opt.slot_initial_value(s)]).collect();
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
    }

    /// The Keras 3 fixture (`tests/fixtures/optimizers/make.py`).
    fn fixture() -> Value {
        serde_json::from_str(include_str!("../../tests/fixtures/optimizers/keras3.json")).unwrap()
    }

    fn floats(v: &Value) -> Vec<f32> {
        v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
    }

    fn close(got: f32, want: f32, what: &str) {
        let tol = 1e-6 * want.abs() + 1e-12;
        assert!((got - want).abs() <= tol, "{what}: {got} vs Keras {want} (diff {})", (got - want).abs());
    }

    /// One training step as the model takes it: clip, decay, update.
    fn step(opt: &Optimizer, state: &mut OptimizerState, weights: &mut [Vec<f32>], grads: &[Vec<f32>]) {
        opt.prepare_state(state, weights.iter().map(Vec::len));
        let info = opt.next_step(state);
        let mut grads = grads.to_vec();
        let global = grads.iter().flatten().map(|&g| f64::from(g) * f64::from(g)).sum::<f64>().sqrt() as f32;
        for (p, (w, g)) in weights.iter_mut().zip(grads.iter_mut()).enumerate() {
            opt.clip_gradient(g, global);
            opt.decay_weight(&info, w);
            let mut refs: Vec<&mut [f32]> = state.slots[p].iter_mut().map(|s| s.as_mut_slice()).collect();
            opt.update_with(&info, w, g, &mut refs);
        }
        let mut opt = *opt;
        opt.sync_learning_rate(state.iterations);
        assert_eq!(opt.learning_rate(), opt.learning_rate_at(state.iterations));
    }

    #[test]
    fn every_optimizer_matches_keras_step_by_step() {
        let f = fixture();
        let w0: Vec<Vec<f32>> = f["initial_weights"].as_array().unwrap().iter().map(floats).collect();
        let grads: Vec<Vec<Vec<f32>>> = f["gradients"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_array().unwrap().iter().map(floats).collect())
            .collect();
        let cases = f["optimizers"].as_object().unwrap();
        assert!(cases.len() >= 20);
        for (name, case) in cases {
            let mut opt = Optimizer::from_config(&case["config"]).unwrap_or_else(|e| panic!("{name}: {e}"));
            // Written back, the config reads as the same optimizer.
            let again = json!({"class_name": opt.class_name(), "config": opt.to_config()});
            assert_eq!(Optimizer::from_config(&again).unwrap(), opt, "{name}");
            // The variable layout is Keras 3's.
            let layout = opt.keras3_variables(w0.len());
            let paths: Vec<&str> =
                case["variable_paths"].as_array().unwrap().iter().map(|p| p.as_str().unwrap()).collect();
            assert_eq!(layout.len(), paths.len(), "{name}: {paths:?}");
            for (v, path) in layout.iter().zip(&paths) {
                match *v {
                    Keras3Variable::Iterations => assert!(path.ends_with("/iteration"), "{name}: {path}"),
                    Keras3Variable::LearningRate => assert!(path.ends_with("/learning_rate"), "{name}: {path}"),
                    Keras3Variable::Slot { slot, .. } => {
                        assert_eq!(opt.slot_of_variable(path), Some(slot), "{name}: {path}")
                    }
                    Keras3Variable::Scalar(_) => assert!(!path.ends_with("_momentum"), "{name}: {path}"),
                }
            }
            let mut state = OptimizerState::default();
            let mut w = w0.clone();
            for (k, (g, want)) in grads.iter().zip(case["steps"].as_array().unwrap()).enumerate() {
                step(&opt, &mut state, &mut w, g);
                opt.sync_learning_rate(state.iterations);
                for (p, wp) in w.iter().enumerate() {
                    for (i, (&got, exp)) in wp.iter().zip(floats(&want["weights"][p])).enumerate() {
                        close(got, exp, &format!("{name} step {} weight {p}[{i}]", k + 1));
                    }
                }
                close(opt.learning_rate(), want["learning_rate"].as_f64().unwrap() as f32, &format!("{name} rate"));
                let vars = want["variables"].as_array().unwrap();
                for (v, saved) in layout.iter().zip(vars) {
                    let keras = floats(saved);
                    let ours: Vec<f32> = match *v {
                        Keras3Variable::Iterations => vec![state.iterations as f32],
                        Keras3Variable::LearningRate => vec![opt.learning_rate()],
                        Keras3Variable::Slot { weight, slot } => state.slots[weight][slot].clone(),
                        Keras3Variable::Scalar(i) => vec![state.scalars[i]],
                    };
                    assert_eq!(ours.len(), keras.len(), "{name} {v:?}");
                    for (&a, b) in ours.iter().zip(keras) {
                        close(a, b, &format!("{name} step {} {v:?}", k + 1));
                    }
                }
                // The scalars are a function of the step count.
                assert_eq!(opt.scalars_after(state.iterations), state.scalars, "{name}");
            }
        }
    }

    #[test]
    fn tf_keras_configs_read_as_the_keras3_ones() {
        let f = fixture();
        let tfk = f["tf_keras_optimizers"].as_object().unwrap();
        assert_eq!(tfk.len(), f["optimizers"].as_object().unwrap().len());
        for (name, v) in tfk {
            let ours = Optimizer::from_config(v).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(ours, Optimizer::from_config(&f["optimizers"][name]["config"]).unwrap(), "{name}");
        }
    }

    #[test]
    fn reads_tf_keras_configs_and_names() {
        // tf_keras' compile form: learning rate rounded through f32, legacy markers, schedule.
        let v = json!({"class_name": "Custom>AdamW", "config": {"name": "AdamW", "weight_decay": 0.004,
            "clipnorm": null, "global_clipnorm": null, "clipvalue": null, "use_ema": false, "ema_momentum": 0.99,
            "ema_overwrite_frequency": null, "jit_compile": false, "is_legacy_optimizer": false,
            "learning_rate": {"module": "keras.optimizers.schedules", "class_name": "ExponentialDecay",
                "config": {"initial_learning_rate": 0.1, "decay_steps": 10, "decay_rate": 0.5, "staircase": false, "name": null},
                "registered_name": null},
            "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-07, "amsgrad": false}});
        let o = Optimizer::from_config(&v).unwrap();
        assert_eq!(o.weight_decay(), Some(0.004));
        assert!(o.schedule().is_some());
        assert!((o.learning_rate_at(10) - 0.05).abs() < 1e-7);
        assert_eq!(o.keras3_variables(1)[1], Keras3Variable::Slot { weight: 0, slot: 0 }, "no learning_rate variable");
        assert_eq!(o.slot_of_variable("AdamW/v/dense/kernel:0"), Some(1));
        assert_eq!(o.slot_of_variable("Adam/dense/kernel/m:0"), Some(0));
        let nadam = Optimizer::parse("nadam").unwrap();
        assert_eq!(nadam.tf_keras_slot_tokens(), ["m", "v"]);
        let sgd = Optimizer::parse("sgd").unwrap();
        assert_eq!(sgd.slot_of_variable("SGD/m/dense/kernel:0"), Some(0));
        assert!(sgd.slot_names().is_empty());
        assert_eq!(sgd.tf_keras_slot_order(2), [(0, 0), (1, 0)]);
        let adamax = Optimizer::parse("Adamax").unwrap();
        assert_eq!(adamax.slot_of_variable("Adamax/u/conv2d/bias:0"), Some(1));
        assert_eq!(adamax.slot_of_variable("adamax/sequential_conv2d_bias_norm"), Some(1));
        let ams = Optimizer::from(Adam { amsgrad: true, ..Default::default() });
        assert_eq!(ams.slot_of_variable("adam/dense_kernel_velocity_hat"), Some(2));
        assert_eq!(ams.slot_of_variable("adam/dense_kernel_velocity"), Some(1));
        // set_learning_rate takes over from a schedule.
        let mut o = o;
        o.set_learning_rate(0.01);
        assert!(o.schedule().is_none() && o.learning_rate_at(100) == 0.01);
    }

    #[test]
    fn unsupported_options_and_bad_values_are_refused() {
        for bad in [
            json!({"class_name": "Adam", "config": {"beta_1": 1.5}}),
            json!({"class_name": "Adam", "config": {"use_ema": true}}),
            json!({"class_name": "SGD", "config": {"gradient_accumulation_steps": 2}}),
            json!({"class_name": "SGD", "config": {"clipnorm": 1.0, "clipvalue": 0.5}}),
            json!({"class_name": "SGD", "config": {"weight_decay": -1.0}}),
            json!({"class_name": "Adadelta", "config": {"rho": 1.0}}),
            json!({"class_name": "Ftrl", "config": {}}),
            json!({"class_name": "SGD", "config": {"lr": 0.1, "decay": 1e-4}}),
        ] {
            assert!(Optimizer::from_config(&bad).is_err(), "{bad}");
        }
        assert!(Optimizer::parse("adagrad_x").is_err());
        for name in ["sgd", "adam", "adamw", "nadam", "adamax", "adagrad", "adadelta", "rmsprop"] {
            let o = Optimizer::parse(name).unwrap();
            assert_eq!(Optimizer::parse(o.class_name()).unwrap(), o);
        }
    }
}
