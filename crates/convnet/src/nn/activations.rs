//! Activation functions by Keras' names: every function of Keras 3's `keras.activations`
//! (`relu`, `leaky_relu`, `relu6`, `elu`, `selu`, `celu`, `gelu`, `silu`/`swish`, `mish`,
//! `softplus`, `softsign`, `softmax`, `log_softmax`, `sparsemax`, the hard and sparse variants,
//! …), applied in place to a layer's output, with their derivatives.
//!
//! Two functions of Keras' registry are refused by name, because no Keras model can use them
//! by name either: `glu` halves the last axis while Keras' layers declare it unchanged (Keras
//! fails to build the next layer), and `threshold` has no defaults for its two required
//! arguments (Keras fails when the layer runs).
//!
//! **Backward.** Most derivatives are functions of the output `y` (ReLU, sigmoid, tanh,
//! softmax, ELU, softplus, …: the derivative TensorFlow itself takes). The others (GELU, SiLU,
//! mish, …) need the pre-activation `x`: [`Activation::needs_input`] says which, and a layer
//! that applies such an activation to its own output keeps `x` from its training pass.
//!
//! **Arguments.** Keras stores an activation function by its name alone, so a function takes
//! Keras' defaults (`leaky_relu`'s slope 0.2, `elu`'s alpha 1, `gelu` exact, `celu`'s alpha 1,
//! `squareplus`'s b = 4, the shrinks' threshold 0.5). Other values come with the layer classes
//! `ReLU`, `LeakyReLU` and `ELU`, whose objects Keras also accepts as another layer's
//! `activation`: [`Activation::to_config`] writes such a layer object where a name would lose
//! the arguments, and [`Activation::from_config`] reads both forms.

use crate::error::{Error, Result};
use crate::kernels::activation as k;
use serde_json::{json, Map, Value};

/// An activation applied to a layer's output (Keras' `activation=` argument).
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub enum Activation {
    /// Identity (Keras' default, `None` or `"linear"`).
    #[default]
    Linear,
    /// `max(x, 0)`.
    Relu,
    /// `1 / (1 + e^-x)`.
    Sigmoid,
    /// Hyperbolic tangent.
    Tanh,
    /// Softmax over the last axis.
    Softmax,
    /// Keras' `relu` with arguments (the `ReLU` layer): `x` above `threshold` (else 0),
    /// clipped to `[0, max_value]` when there is a maximum, minus
    /// `negative_slope·max(threshold − x, 0)`. Build it with [`Activation::relu_with`].
    ReluWith {
        /// Slope below the threshold.
        negative_slope: f32,
        /// Largest output, if any.
        max_value: Option<f32>,
        /// Where the function turns on.
        threshold: f32,
    },
    /// `x` for `x > 0`, else `negative_slope·x` (Keras' `leaky_relu`, slope 0.2 by name).
    LeakyRelu {
        /// Slope for negative inputs.
        negative_slope: f32,
    },
    /// `min(max(x, 0), 6)`.
    Relu6,
    /// `x` for `x > 0`, else `alpha·(e^x − 1)` (Keras' `elu`, alpha 1 by name).
    Elu {
        /// Scale of the negative part.
        alpha: f32,
    },
    /// `scale·elu(x, alpha)` with Klambauer et al.'s constants.
    Selu,
    /// `max(x, 0) + expm1(min(x, 0))` (Keras' `celu` with alpha 1).
    Celu,
    /// `ln(1 + e^x)`.
    Softplus,
    /// `x / (|x| + 1)`.
    Softsign,
    /// `(x + √(x² + 4)) / 2` (Keras' `squareplus` with b = 4).
    Squareplus,
    /// `x ∓ 0.5` beyond ±0.5, else 0 (Keras' `soft_shrink`).
    SoftShrink,
    /// `x` beyond ±0.5, else 0 (Keras' `hard_shrink`).
    HardShrink,
    /// 0 up to −1, `(x + 1)²/4` up to 1, then `x` (Keras' `sparse_plus`).
    SparsePlus,
    /// `x·sigmoid(x)` (Keras' `silu`, also named `swish`).
    Silu,
    /// `x·Φ(x)` with the exact normal CDF (Keras' `gelu`, `approximate=False`).
    Gelu,
    /// `x − tanh(x)`.
    TanhShrink,
    /// 0 up to −1, `(x + 1)/2` up to 1, then 1 (Keras' `sparse_sigmoid`).
    SparseSigmoid,
    /// `e^x`.
    Exponential,
    /// `relu6(x + 3) / 6` (Keras 3's definition).
    HardSigmoid,
    /// `x·hard_sigmoid(x)` (Keras' `hard_silu`, also named `hard_swish`).
    HardSilu,
    /// `clip(x, −1, 1)`.
    HardTanh,
    /// `x·tanh(softplus(x))`.
    Mish,
    /// `x − ln Σ e^x` over the last axis.
    LogSoftmax,
    /// `ln sigmoid(x)`.
    LogSigmoid,
    /// Keras' sparsemax over the last axis (see [`crate::kernels::activation`] for Keras'
    /// threshold, which differs from the published one).
    Sparsemax,
}

use Activation::*;

/// Keras' names (and aliases) of the functions that take no arguments or Keras' defaults.
const NAMES: &[(&str, Activation)] = &[
    ("linear", Linear),
    ("relu", Relu),
    ("sigmoid", Sigmoid),
    ("tanh", Tanh),
    ("softmax", Softmax),
    ("leaky_relu", LeakyRelu { negative_slope: 0.2 }),
    ("relu6", Relu6),
    ("elu", Elu { alpha: 1.0 }),
    ("selu", Selu),
    ("celu", Celu),
    ("softplus", Softplus),
    ("softsign", Softsign),
    ("squareplus", Squareplus),
    ("soft_shrink", SoftShrink),
    ("hard_shrink", HardShrink),
    ("sparse_plus", SparsePlus),
    ("silu", Silu),
    ("swish", Silu),
    ("gelu", Gelu),
    ("tanh_shrink", TanhShrink),
    ("sparse_sigmoid", SparseSigmoid),
    ("exponential", Exponential),
    ("hard_sigmoid", HardSigmoid),
    ("hard_silu", HardSilu),
    ("hard_swish", HardSilu),
    ("hard_tanh", HardTanh),
    ("mish", Mish),
    ("log_softmax", LogSoftmax),
    ("log_sigmoid", LogSigmoid),
    ("sparsemax", Sparsemax),
];

/// Keras' functions convnet refuses, with the reason.
const REFUSED: &[(&str, &str)] = &[
    ("glu", "it halves the last axis, which Keras' layers do not allow for (Keras cannot build the next layer)"),
    (
        "threshold",
        "Keras' threshold has no defaults for its `threshold` and `default_value` arguments, which a name cannot give",
    ),
];

/// Keras' `leaky_relu` slope when named.
const LEAKY_DEFAULT: f32 = 0.2;

/// A number as JSON, written with the fewest digits that read back as the same `f32`
/// (`0.3`, not `0.30000001192092896`).
pub(crate) fn f32_json(v: f32) -> Value {
    v.to_string().parse::<f64>().ok().and_then(serde_json::Number::from_f64).map_or(Value::Null, Value::Number)
}

impl Activation {
    /// Parses a Keras activation name; `None`/`"linear"` give [`Activation::Linear`].
    pub fn parse(name: &str) -> Result<Self> {
        let lower = name.to_ascii_lowercase();
        let lower = lower.as_str();
        if matches!(lower, "none" | "") {
            return Ok(Linear);
        }
        if let Some((_, a)) = NAMES.iter().find(|(n, _)| *n == lower) {
            return Ok(*a);
        }
        if let Some((n, why)) = REFUSED.iter().find(|(n, _)| *n == lower) {
            return Err(Error::config(format!("activation {n:?} is not supported by convnet: {why}")));
        }
        let known: Vec<&str> = NAMES.iter().map(|(n, _)| *n).collect();
        Err(Error::config(format!("unknown activation {name:?} (convnet has {})", known.join(", "))))
    }

    /// Builds Keras' `relu(x, negative_slope, max_value, threshold)`, as the plain variant
    /// it amounts to where there is one ([`Activation::Relu`], [`Activation::Relu6`],
    /// [`Activation::LeakyRelu`]), so that those keep their fast paths.
    pub fn relu_with(negative_slope: f32, max_value: Option<f32>, threshold: f32) -> Self {
        match (negative_slope, max_value, threshold) {
            (s, None, t) if s == 0.0 && t == 0.0 => Relu,
            (s, Some(m), t) if s == 0.0 && m == 6.0 && t == 0.0 => Relu6,
            (s, None, 0.0) => LeakyRelu { negative_slope: s },
            _ => ReluWith { negative_slope, max_value, threshold },
        }
    }

    /// Keras' name of this activation (arguments aside: see [`Activation::to_config`]).
    pub fn name(self) -> &'static str {
        match self {
            ReluWith { .. } => "relu",
            LeakyRelu { .. } => "leaky_relu",
            Elu { .. } => "elu",
            _ => NAMES.iter().find(|(_, a)| *a == self).map_or("linear", |(n, _)| n),
        }
    }

    /// Keras' config form: the name, or where arguments differ from the named function's
    /// defaults, the layer object (`ReLU`, `LeakyReLU`, `ELU`) that Keras writes for an
    /// activation given as a layer.
    pub fn to_config(self) -> Value {
        let layer = |class: &str, name: &str, args: &[(&str, Value)]| {
            let mut c = Map::new();
            c.insert("name".into(), json!(name));
            c.insert("trainable".into(), json!(true));
            c.insert("dtype".into(), json!("float32"));
            for (k, v) in args {
                c.insert((*k).into(), v.clone());
            }
            json!({"module": "keras.layers", "class_name": class, "config": c, "registered_name": null})
        };
        match self {
            LeakyRelu { negative_slope } if negative_slope != LEAKY_DEFAULT => {
                layer("LeakyReLU", "leaky_re_lu", &[("negative_slope", f32_json(negative_slope))])
            }
            Elu { alpha } if alpha != 1.0 => layer("ELU", "elu", &[("alpha", f32_json(alpha))]),
            ReluWith { negative_slope, max_value, threshold } => layer(
                "ReLU",
                "re_lu",
                &[
                    ("max_value", max_value.map_or(Value::Null, f32_json)),
                    ("negative_slope", f32_json(negative_slope)),
                    ("threshold", f32_json(threshold)),
                ],
            ),
            _ => json!(self.name()),
        }
    }

    /// Reads an activation in the forms Keras writes for functions: null (linear), a name, or
    /// a serialised function (`{"class_name": "function", "config": "relu", …}`). (A layer
    /// object used as the activation is read by the layers' config reader, which knows the
    /// layer classes.)
    pub fn from_config(v: &Value) -> Result<Self> {
        match v {
            Value::Null => Ok(Linear),
            Value::String(s) => Activation::parse(s),
            Value::Object(o) => {
                let class = o.get("class_name").and_then(Value::as_str).unwrap_or("");
                match o.get("config") {
                    Some(Value::String(s)) => Activation::parse(s),
                    _ if class == "PReLU" => Err(Error::config(
                        "a PReLU layer cannot serve as another layer's activation in convnet (it has weights of \
                         its own): add it as a layer",
                    )),
                    _ => Err(Error::config(format!("unsupported activation {v}"))),
                }
            }
            other => Err(Error::config(format!("activation must be a name, not {other}"))),
        }
    }

    /// Whether [`Activation::backward`] needs the pre-activation `x` (its derivative is not a
    /// function of the output).
    pub fn needs_input(self) -> bool {
        match self {
            ReluWith { .. } | Softsign | Silu | Gelu | TanhShrink | HardSilu | Mish | Sparsemax => true,
            LeakyRelu { negative_slope } => negative_slope < 0.0,
            Elu { alpha } => alpha <= 0.0,
            _ => false,
        }
    }

    /// Applies the activation in place; `width` is the size of the last axis (for the
    /// functions over it: softmax, log-softmax, sparsemax).
    pub fn forward(self, y: &mut [f32], width: usize) {
        match self {
            Linear => {}
            Relu => k::relu_forward(y),
            Sigmoid => k::sigmoid_forward(y),
            Tanh => k::tanh_forward(y),
            Softmax => k::softmax_forward(y, width),
            ReluWith { negative_slope, max_value, threshold } => {
                k::map(y, |x| k::relu_with(x, negative_slope, max_value, threshold))
            }
            LeakyRelu { negative_slope } => k::map(y, |x| k::leaky_relu(x, negative_slope)),
            Relu6 => k::map(y, k::relu6),
            Elu { alpha } => k::map(y, |x| k::elu(x, alpha)),
            Selu => k::map(y, k::selu),
            Celu => k::map(y, k::celu),
            Softplus => k::map(y, k::softplus),
            Softsign => k::map(y, k::softsign),
            Squareplus => k::map(y, k::squareplus),
            SoftShrink => k::map(y, k::soft_shrink),
            HardShrink => k::map(y, k::hard_shrink),
            SparsePlus => k::map(y, k::sparse_plus),
            Silu => k::map(y, k::silu),
            Gelu => k::map(y, k::gelu),
            TanhShrink => k::map(y, k::tanh_shrink),
            SparseSigmoid => k::map(y, k::sparse_sigmoid),
            Exponential => k::map(y, f32::exp),
            HardSigmoid => k::map(y, k::hard_sigmoid),
            HardSilu => k::map(y, k::hard_silu),
            HardTanh => k::map(y, k::hard_tanh),
            Mish => k::map(y, k::mish),
            LogSoftmax => k::log_softmax_forward(y, width),
            LogSigmoid => k::map(y, k::log_sigmoid),
            Sparsemax => k::sparsemax_forward(y, width),
        }
    }

    /// Turns `dy` (gradient w.r.t. the activation's output `y`) into the gradient w.r.t. its
    /// input, in place. `x` is the input (the pre-activation), needed where
    /// [`Activation::needs_input`] says so and ignored elsewhere.
    ///
    /// # Panics
    /// When the activation needs `x` and none is given: a layer's contract, not user input.
    pub fn backward(self, x: Option<&[f32]>, y: &[f32], dy: &mut [f32], width: usize) {
        let x = || x.expect("this activation's backward pass needs its input (see Activation::needs_input)");
        match self {
            Linear => {}
            Relu => k::relu_backward(y, dy),
            Sigmoid => k::sigmoid_backward(y, dy),
            Tanh => k::tanh_backward(y, dy),
            Softmax => k::softmax_backward(y, dy, width),
            ReluWith { negative_slope, max_value, threshold } => {
                k::scale(dy, x(), |v| k::relu_with_grad(v, negative_slope, max_value, threshold))
            }
            // With a slope ≥ 0 (Keras' layers require it), y > 0 exactly where x > 0.
            LeakyRelu { negative_slope } if negative_slope >= 0.0 => {
                k::scale(dy, y, |v| if v > 0.0 { 1.0 } else { negative_slope })
            }
            LeakyRelu { negative_slope } => k::scale(dy, x(), |v| if v > 0.0 { 1.0 } else { negative_slope }),
            Relu6 => k::scale(dy, y, |v| (v > 0.0 && v < 6.0) as u8 as f32),
            // alpha·e^x = y + alpha below zero, where y < 0 when alpha > 0.
            Elu { alpha } if alpha > 0.0 => k::scale(dy, y, |v| if v < 0.0 { v + alpha } else { 1.0 }),
            Elu { alpha } => k::scale(dy, x(), |v| if v > 0.0 { 1.0 } else { alpha * v.exp() }),
            Selu => k::scale(dy, y, |v| if v < 0.0 { v + k::SELU_SCALE_ALPHA } else { k::SELU_SCALE }),
            Celu => k::scale(dy, y, |v| if v < 0.0 { v + 1.0 } else { 1.0 }),
            // sigmoid(x) = 1 − e^-y, accurate at both ends through expm1.
            Softplus => k::scale(dy, y, |v| -(-v).exp_m1()),
            Softsign => k::scale(dy, x(), |v| 1.0 / ((1.0 + v.abs()) * (1.0 + v.abs()))),
            // With s = √(x² + 4) = y + 1/y: y/s = 1 / (1 + 1/y²).
            Squareplus => k::scale(dy, y, |v| 1.0 / (1.0 + 1.0 / (v * v))),
            SoftShrink | HardShrink => k::scale(dy, y, |v| (v != 0.0) as u8 as f32),
            // (x + 1)/2 = √y on (−1, 1); 0 below, 1 above.
            SparsePlus => k::scale(dy, y, |v| v.sqrt().min(1.0)),
            Silu => k::scale(dy, x(), k::silu_grad),
            Gelu => k::scale(dy, x(), k::gelu_grad),
            TanhShrink => k::scale(dy, x(), |v| v.tanh() * v.tanh()),
            SparseSigmoid => k::scale(dy, y, |v| if v > 0.0 && v < 1.0 { 0.5 } else { 0.0 }),
            Exponential => k::scale(dy, y, |v| v),
            HardSigmoid => k::scale(dy, y, |v| if v > 0.0 && v < 1.0 { 1.0 / 6.0 } else { 0.0 }),
            HardSilu => k::scale(dy, x(), k::hard_silu_grad),
            HardTanh => k::scale(dy, y, |v| (v > -1.0 && v < 1.0) as u8 as f32),
            Mish => k::scale(dy, x(), k::mish_grad),
            LogSoftmax => k::log_softmax_backward(y, dy, width),
            // 1 − sigmoid(x) = 1 − e^y.
            LogSigmoid => k::scale(dy, y, |v| -v.exp_m1()),
            Sparsemax => k::sparsemax_backward(x(), dy, width),
        }
    }

    /// Every activation convnet has, by Keras' name, with Keras' default arguments.
    pub fn all() -> impl Iterator<Item = (&'static str, Activation)> {
        NAMES.iter().copied()
    }
}

impl std::str::FromStr for Activation {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Activation::parse(s)
    }
}

/// Keras' name of an activation (`"relu"`), as layer builders take it.
impl TryFrom<&str> for Activation {
    type Error = Error;
    fn try_from(s: &str) -> Result<Self> {
        Activation::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_aliases_resolve() {
        for (name, a) in Activation::all() {
            assert_eq!(Activation::parse(name).unwrap(), a, "{name}");
            let canonical = a.name();
            assert_eq!(Activation::parse(canonical).unwrap(), a);
            assert_eq!(Activation::from_config(&a.to_config()).unwrap(), a, "{name}");
        }
        assert_eq!(Activation::parse("swish").unwrap().name(), "silu");
        assert_eq!(Activation::parse("hard_swish").unwrap().name(), "hard_silu");
        assert_eq!(Activation::parse("leaky_relu").unwrap(), LeakyRelu { negative_slope: 0.2 });
    }

    #[test]
    fn refused_and_unknown_names_are_named() {
        for n in ["glu", "threshold"] {
            let e = Activation::parse(n).unwrap_err().to_string();
            assert!(e.contains(&format!("{n:?}")) && e.contains("not supported"), "{e}");
        }
        let e = Activation::parse("swishy").unwrap_err().to_string();
        assert!(e.contains("swishy") && e.contains("gelu"), "{e}");
    }

    #[test]
    fn serialised_forms_are_read() {
        let f =
            json!({"module": "builtins", "class_name": "function", "config": "gelu", "registered_name": "function"});
        assert_eq!(Activation::from_config(&f).unwrap(), Gelu);
        let f = json!({"module": "keras.activations", "class_name": "function", "config": "relu", "registered_name": "relu"});
        assert_eq!(Activation::from_config(&f).unwrap(), Relu);
        let e = Activation::from_config(&json!({"class_name": "PReLU", "config": {}})).unwrap_err();
        assert!(e.to_string().contains("PReLU"), "{e}");
    }

    #[test]
    fn arguments_survive_the_config() {
        for a in [
            LeakyRelu { negative_slope: 0.1 },
            Elu { alpha: 0.5 },
            ReluWith { negative_slope: 0.1, max_value: Some(3.0), threshold: 0.5 },
            ReluWith { negative_slope: 0.0, max_value: None, threshold: 1.0 },
        ] {
            let c = a.to_config();
            assert!(c.is_object(), "{a:?} must not be written as a bare name");
        }
        assert_eq!(LeakyRelu { negative_slope: 0.2 }.to_config(), json!("leaky_relu"));
        assert_eq!(f32_json(0.3), json!(0.3));
    }

    #[test]
    fn relu_with_collapses_to_the_plain_variants() {
        assert_eq!(Activation::relu_with(0.0, None, 0.0), Relu);
        assert_eq!(Activation::relu_with(0.0, Some(6.0), 0.0), Relu6);
        assert_eq!(Activation::relu_with(0.3, None, 0.0), LeakyRelu { negative_slope: 0.3 });
        assert!(matches!(Activation::relu_with(0.0, Some(1.0), 0.0), ReluWith { .. }));
    }
}
