//! Layers, one file per kind, following Keras' life cycle: construct from a config, `build` on
//! the input shape (creating the weights), `forward`, `backward`, named weights and a config in
//! Keras' own field names. The set of layers is registered in one place, [`registry`].

mod activation;
mod basics;
mod batch_normalization;
mod conv2d;
mod conv2d_transpose;
mod dense;
mod depthwise_conv2d;
mod dropout;
mod elu;
mod flatten;
mod global_pooling;
mod leaky_relu;
mod merge;
mod padding;
mod pooling;
mod prelu;
mod preprocessing;
pub mod registry;
mod relu;
mod reshape;
mod separable_conv2d;
mod softmax;
mod spatial_dropout;
mod up_sampling;
mod weights;

pub use activation::ActivationLayer;
pub use batch_normalization::BatchNormalization;
pub use conv2d::Conv2D;
pub use conv2d_transpose::Conv2DTranspose;
pub use dense::Dense;
pub use depthwise_conv2d::DepthwiseConv2D;
pub use dropout::Dropout;
pub use elu::ELU;
pub use flatten::Flatten;
pub use global_pooling::{GlobalAveragePooling2D, GlobalMaxPooling2D};
pub use leaky_relu::LeakyReLU;
pub use merge::{Add, Average, Concatenate, Maximum, Minimum, Multiply, Subtract};
pub use padding::{Cropping2D, Margins, ZeroPadding2D};
pub use pooling::{AveragePooling2D, MaxPooling2D};
pub use prelu::PReLU;
pub use preprocessing::{Normalization, Rescaling};
pub use relu::ReLU;
pub use reshape::Reshape;
pub use separable_conv2d::SeparableConv2D;
pub use softmax::Softmax;
pub use spatial_dropout::SpatialDropout2D;
pub use up_sampling::{Interpolation, UpSampling2D};
pub use weights::WeightOptions;

use crate::error::{Error, Result};
use crate::nn::activations::Activation;
use crate::nn::constraints::Constraint;
use crate::nn::initializers::Initializer;
use crate::nn::regularizers::Regularizer;
use crate::rng::Rng;
use crate::tensor::Tensor;
use serde_json::{json, Map, Value};

/// A weight of a layer (Keras' `kernel` or `bias`): values, gradient and penalty.
#[derive(Clone, Debug)]
pub struct Param {
    /// Keras' name of the weight within its layer (`kernel`, `bias`).
    pub name: &'static str,
    /// Shape in Keras' layout.
    pub shape: Vec<usize>,
    /// Current values, row-major.
    pub value: Vec<f32>,
    /// Gradient of the loss w.r.t. the values, from the last backward pass.
    pub grad: Vec<f32>,
    /// Weight penalty added to the loss, if any.
    pub regularizer: Option<Regularizer>,
    /// Projection applied after each optimizer update, if any (Keras' `kernel_constraint`).
    pub constraint: Option<Constraint>,
    /// Whether the optimizer updates this weight (Keras' `trainable` of `add_weight`): false
    /// for state the layer updates itself, such as `BatchNormalization`'s moving statistics.
    /// Such weights get no optimizer slots, no penalties, and count as non-trainable.
    pub trainable: bool,
}

/// Most values one weight may hold (2^28, 1 GiB of f32): a config asking for more is refused
/// before anything is allocated.
pub const MAX_WEIGHT_VALUES: usize = 1 << 28;

thread_local! {
    /// Values that weights created on this thread may still take (None: no budget).
    static WEIGHT_BUDGET: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
}

/// Runs `f` with at most `values` weight values allowed to be created on this thread: a
/// reader gives the number a file can really hold, so a config that declares huge layers
/// fails before anything is allocated. The weights created meanwhile are the file's, so an
/// initializer convnet cannot run fills zeros there instead of failing (see
/// [`weights_from_file`]).
pub fn with_weight_budget<T>(values: usize, f: impl FnOnce() -> Result<T>) -> Result<T> {
    let before = WEIGHT_BUDGET.with(|b| b.replace(Some(values)));
    let out = f();
    WEIGHT_BUDGET.with(|b| b.set(before));
    out
}

/// True while the weights being built will be replaced by a file's (inside
/// [`with_weight_budget`]): their initializers play no part.
pub fn weights_from_file() -> bool {
    WEIGHT_BUDGET.with(|b| b.get().is_some())
}

impl Param {
    /// A zero weight of `shape`; fails for shapes beyond [`MAX_WEIGHT_VALUES`] or beyond the
    /// budget set by [`with_weight_budget`].
    pub fn new(name: &'static str, shape: &[usize], regularizer: Option<Regularizer>) -> Result<Self> {
        let n = shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .filter(|&n| n <= MAX_WEIGHT_VALUES)
            .ok_or_else(|| Error::config(format!("a {name} of shape {shape:?} is too large")))?;
        WEIGHT_BUDGET.with(|b| match b.get() {
            Some(left) if n > left => {
                Err(Error::config(format!("a {name} of shape {shape:?} needs more weights than the file holds")))
            }
            Some(left) => {
                b.set(Some(left - n));
                Ok(())
            }
            None => Ok(()),
        })?;
        Ok(Param {
            name,
            shape: shape.to_vec(),
            value: vec![0.0; n],
            grad: vec![0.0; n],
            regularizer,
            constraint: None,
            trainable: true,
        })
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        self.value.len()
    }

    /// True for a weight without values.
    pub fn is_empty(&self) -> bool {
        self.value.is_empty()
    }

    /// Marks the weight as updated by its layer rather than by the optimizer.
    pub fn non_trainable(mut self) -> Self {
        self.trainable = false;
        self
    }

    /// Projects the values with the weight's constraint, if any (after an optimizer update).
    pub fn apply_constraint(&mut self) {
        if let Some(c) = &self.constraint {
            c.apply(&mut self.value, &self.shape);
        }
    }
}

/// Fills a new weight of layer `layer` with `init` and gives it `constraint` (checked against
/// its shape); errors name the layer and the weight.
pub(crate) fn init_param(
    p: &mut Param,
    init: &Initializer,
    constraint: &Option<Constraint>,
    layer: &str,
    rng: &mut Rng,
) -> Result<()> {
    let what = |e: Error| {
        let m = match e {
            Error::Config(m) => m,
            other => other.to_string(),
        };
        Error::config(format!("layer {layer:?}, {}: {m}", p.name))
    };
    // While the weights being built will be replaced by a file's (see
    // [`with_weight_budget`]), an initializer that cannot run fills zeros instead of failing:
    // initializers play no part once weights are loaded.
    match init.fill(&mut p.value, &p.shape, rng) {
        Err(_) if weights_from_file() => p.value.fill(0.0),
        other => other.map_err(what)?,
    }
    if let Some(c) = constraint {
        c.check(&p.shape).map_err(what)?;
    }
    p.constraint = constraint.clone();
    Ok(())
}

/// What a forward pass needs besides its input: the mode and the random source (dropout).
pub struct ForwardCtx<'a> {
    /// True while training (dropout active).
    pub training: bool,
    /// The model's random generator.
    pub rng: &'a mut Rng,
}

/// A layer of a [`crate::Sequential`] model.
///
/// The model owns the activation buffers: `forward` writes `y` (already sized to the batch and
/// [`Layer::output_shape`]) from `x`; `backward` receives the forward pass's `x` and `y`, turns
/// `dy` into the gradient w.r.t. its pre-activation in place, sets the weights' gradients, and
/// writes `dx` when asked for it (the first layer is not).
pub trait Layer: Send {
    /// Keras' class name (`Conv2D`, `Dense`, …).
    fn class_name(&self) -> &'static str;
    /// Prefix of automatic names (`conv2d`, `dense`, …).
    fn base_name(&self) -> &'static str;
    /// What every layer has: name, declared input shape, trainable flag.
    fn meta(&self) -> &Meta;
    /// The common part, mutable.
    fn meta_mut(&mut self) -> &mut Meta;
    /// The layer's name (unique within a model).
    fn name(&self) -> &str {
        &self.meta().name
    }
    /// Renames the layer.
    fn set_name(&mut self, name: String) {
        self.meta_mut().name = name;
    }
    /// Per-sample input shape given to the layer itself (Keras' `input_shape=` argument).
    fn declared_input_shape(&self) -> Option<&[usize]> {
        self.meta().input_shape.as_deref()
    }
    /// Whether training updates the layer's weights (Keras' `layer.trainable`). A frozen
    /// layer still passes gradients to the layers before it; its weights count as
    /// non-trainable and get no optimizer slots.
    fn trainable(&self) -> bool {
        self.meta().trainable
    }
    /// Freezes (`false`) or unfreezes the layer's weights. As in Keras, compile again after
    /// a change: the optimizer's slots follow the trainable weights.
    fn set_trainable(&mut self, trainable: bool) {
        self.meta_mut().trainable = trainable;
    }
    /// Creates the weights for a per-sample `input_shape`; returns the per-sample output shape.
    fn build(&mut self, input_shape: &[usize], rng: &mut Rng) -> Result<Vec<usize>>;
    /// Per-sample output shape (after `build`).
    fn output_shape(&self) -> &[usize];
    /// Computes `y` from `x`.
    fn forward(&mut self, x: &Tensor, y: &mut Tensor, ctx: &mut ForwardCtx<'_>);
    /// Back-propagates `dy` (modified in place), setting weight gradients and `dx` if given.
    fn backward(&mut self, x: &Tensor, y: &Tensor, dy: &mut Tensor, dx: Option<&mut Tensor>);
    /// True when the layer's output is its input unchanged (reshaped at most) in this mode, so
    /// the model can hand the buffer on instead of running `forward`/`backward`.
    fn is_passthrough(&self, _training: bool) -> bool {
        false
    }
    /// The layer's weights in Keras' order (kernel, then bias).
    fn params(&self) -> &[Param] {
        &[]
    }
    /// The layer's weights, mutable.
    fn params_mut(&mut self) -> &mut [Param] {
        &mut []
    }
    /// The activation applied to the output.
    fn activation(&self) -> Activation {
        Activation::Linear
    }
    /// When set, `backward` treats `dy` as the gradient w.r.t. the pre-activation (the loss has
    /// already folded in the activation, as softmax + cross-entropy does).
    fn set_output_gradient_fused(&mut self, _fused: bool) {}
    /// Asks the layer to multiply its input gradient by the derivative of a ReLU that
    /// produced its input (so that the ReLU layer can skip it); returns whether it will.
    fn fold_input_relu(&mut self, _fold: bool) -> bool {
        false
    }
    /// Penalty on the layer's output, divided by the batch size (Keras' `activity_regularizer`).
    fn activity_regularizer(&self) -> Option<Regularizer> {
        None
    }
    /// Keras' config of the layer (the `config` object of `{"class_name", "config"}`).
    fn config(&self) -> Map<String, Value>;
    /// Number of weight values.
    fn count_params(&self) -> usize {
        self.params().iter().map(Param::len).sum()
    }
    /// True for a layer that takes several inputs (the merge layers): the model then calls
    /// [`Layer::build_multi`], [`Layer::forward_multi`] and [`Layer::backward_multi`]
    /// instead of their one-input forms.
    fn multi_input(&self) -> bool {
        false
    }
    /// Creates the weights for several per-sample input shapes; returns the output shape.
    /// A one-input layer takes exactly one.
    fn build_multi(&mut self, input_shapes: &[Vec<usize>], rng: &mut Rng) -> Result<Vec<usize>> {
        match input_shapes {
            [one] => self.build(one, rng),
            _ => Err(Error::shape(format!("{} takes one input, not {}", self.class_name(), input_shapes.len()))),
        }
    }
    /// Computes `y` from the inputs `xs` (several-input layers).
    fn forward_multi(&mut self, xs: Inputs<'_>, y: &mut Tensor, ctx: &mut ForwardCtx<'_>) {
        self.forward(xs.get(0), y, ctx)
    }
    /// Writes into `dx` the gradient w.r.t. input `k` (several-input layers); called once per
    /// input with the same `dy`, which it must leave as it is.
    fn backward_multi(&mut self, xs: Inputs<'_>, y: &Tensor, dy: &mut Tensor, k: usize, dx: &mut Tensor) {
        debug_assert_eq!(k, 0);
        self.backward(xs.get(0), y, dy, Some(dx))
    }
}

/// The inputs of a several-input layer: tensors picked from the model's activations by node
/// index, without copying or allocating.
#[derive(Clone, Copy)]
pub struct Inputs<'a> {
    acts: &'a [Tensor],
    nodes: &'a [usize],
}

impl<'a> Inputs<'a> {
    /// The inputs `acts[nodes[0]]`, `acts[nodes[1]]`, ….
    pub fn new(acts: &'a [Tensor], nodes: &'a [usize]) -> Self {
        Inputs { acts, nodes }
    }

    /// Number of inputs.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Input `k`.
    pub fn get(&self, k: usize) -> &'a Tensor {
        &self.acts[self.nodes[k]]
    }

    /// The inputs in order.
    pub fn iter(&self) -> impl Iterator<Item = &'a Tensor> + '_ {
        self.nodes.iter().map(|&i| &self.acts[i])
    }
}

/// A height and width pair (Keras accepts `3` or `(3, 3)` for kernel sizes and strides).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pair(pub usize, pub usize);

impl From<usize> for Pair {
    fn from(v: usize) -> Self {
        Pair(v, v)
    }
}

impl From<(usize, usize)> for Pair {
    fn from(v: (usize, usize)) -> Self {
        Pair(v.0, v.1)
    }
}

impl From<[usize; 2]> for Pair {
    fn from(v: [usize; 2]) -> Self {
        Pair(v[0], v[1])
    }
}

impl Pair {
    /// As a tuple.
    pub fn tuple(self) -> (usize, usize) {
        (self.0, self.1)
    }

    fn to_json(self) -> Value {
        json!([self.0, self.1])
    }
}

/// What every layer has, whatever its kind: its name, the input shape given to it, and
/// whether its weights train (Keras' `name`, `input_shape`, `trainable`).
#[derive(Clone, Debug)]
pub struct Meta {
    /// The layer's name; empty until the model gives it Keras' automatic one.
    pub name: String,
    /// Per-sample input shape given to the layer itself, if any.
    pub input_shape: Option<Vec<usize>>,
    /// Whether training updates the layer's weights.
    pub trainable: bool,
    /// A builder argument that could not be read (`.activation("rleu")`): a builder returns
    /// the layer to chain on, so the layer keeps the error and building the model reports it.
    pub invalid: Option<String>,
}

impl Default for Meta {
    fn default() -> Self {
        Meta { name: String::new(), input_shape: None, trainable: true, invalid: None }
    }
}

impl Meta {
    /// Converts a builder argument given by name or typed (`"relu"` or `Activation::Relu`):
    /// `Some` value, or `None` after keeping the first error for [`Meta::check`].
    pub fn accept<T, A>(&mut self, arg: A, what: &str) -> Option<T>
    where
        A: TryInto<T>,
        A::Error: Into<Error>,
    {
        match arg.try_into() {
            Ok(v) => Some(v),
            Err(e) => {
                let e: Error = e.into();
                let text = match e {
                    Error::Config(m) => m,
                    other => other.to_string(),
                };
                self.invalid.get_or_insert_with(|| format!("{what}: {text}"));
                None
            }
        }
    }

    /// Fails with the error a builder kept, if any.
    pub fn check(&self) -> Result<()> {
        match &self.invalid {
            Some(m) => Err(Error::config(m.clone())),
            None => Ok(()),
        }
    }

    /// Keras' common config fields: name, trainable, dtype. (A model's input shape is written
    /// as its `InputLayer`, as Keras does.)
    fn config(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("name".into(), json!(self.name));
        m.insert("trainable".into(), json!(self.trainable));
        m.insert("dtype".into(), json!("float32"));
        m
    }

    fn from_config(cfg: &Map<String, Value>) -> Result<Self> {
        let name = cfg.get("name").and_then(Value::as_str).unwrap_or("").to_string();
        let trainable = cfg::bool_or(cfg, "trainable", true)?;
        let input_shape = match cfg.get("batch_input_shape").or_else(|| cfg.get("batch_shape")) {
            Some(Value::Array(a)) if !a.is_empty() => Some(shape_list(&a[1..], "batch_input_shape")?),
            _ => match cfg.get("input_shape") {
                Some(Value::Array(a)) => Some(shape_list(a, "input_shape")?),
                _ => None,
            },
        };
        Ok(Meta { name, input_shape, trainable, invalid: None })
    }
}

/// Reads a list of positive dimensions.
pub(crate) fn shape_list(a: &[Value], what: &str) -> Result<Vec<usize>> {
    a.iter()
        .map(|v| match v.as_u64() {
            Some(d) if d > 0 && d <= 1 << 24 => Ok(d as usize),
            _ => Err(Error::config(format!("{what} must hold positive sizes, found {v}"))),
        })
        .collect()
}

/// Config-reading helpers shared by the layers' `from_config`.
pub(crate) mod cfg {
    use super::*;

    /// A required positive integer.
    pub fn usize_req(c: &Map<String, Value>, key: &str, layer: &str) -> Result<usize> {
        match c.get(key).and_then(Value::as_u64) {
            Some(v) if v > 0 && v <= 1 << 24 => Ok(v as usize),
            _ => Err(Error::config(format!("{layer}: `{key}` must be a positive integer (at most {})", 1 << 24))),
        }
    }

    /// An integer or a pair of integers; `default` when absent or null.
    pub fn pair(c: &Map<String, Value>, key: &str, default: Option<Pair>, layer: &str) -> Result<Pair> {
        let bad = || Error::config(format!("{layer}: `{key}` must be a positive integer or a pair of them"));
        let pos = |v: &Value| v.as_u64().filter(|&x| x > 0 && x <= 1 << 16).map(|x| x as usize);
        match c.get(key) {
            None | Some(Value::Null) => default.ok_or_else(bad),
            Some(Value::Array(a)) if a.len() == 2 => Ok(Pair(pos(&a[0]).ok_or_else(bad)?, pos(&a[1]).ok_or_else(bad)?)),
            Some(Value::Array(a)) if a.len() == 1 => pos(&a[0]).map(Pair::from).ok_or_else(bad),
            Some(v) => pos(v).map(Pair::from).ok_or_else(bad),
        }
    }

    /// An optional boolean with a default.
    pub fn bool_or(c: &Map<String, Value>, key: &str, default: bool) -> Result<bool> {
        match c.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(v) => Err(Error::config(format!("`{key}` must be true or false, not {v}"))),
        }
    }

    /// An activation in any of Keras' forms (null or absent: linear).
    pub fn activation(c: &Map<String, Value>) -> Result<Activation> {
        let Some(v) = c.get("activation") else { return Ok(Activation::Linear) };
        // A layer object used as the activation (`Activation`, `ReLU`, `LeakyReLU`, `ELU`,
        // `Softmax`): built from its config, its activation taken.
        let class = v.get("class_name").and_then(Value::as_str).unwrap_or("");
        match v.get("config") {
            Some(Value::Object(c)) if ["Activation", "ReLU", "LeakyReLU", "ELU", "Softmax"].contains(&class) => {
                Ok(super::registry::layer_from_config(class, c)?.activation())
            }
            _ => Activation::from_config(v),
        }
    }

    /// An optional finite number; `default` when absent or null.
    pub fn f32_or(c: &Map<String, Value>, key: &str, default: f32, layer: &str) -> Result<f32> {
        match c.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(v) => match v.as_f64() {
                Some(x) if x.is_finite() && x.abs() <= f32::MAX as f64 => Ok(x as f32),
                _ => Err(Error::config(format!("{layer}: `{key}` must be a finite number, not {v}"))),
            },
        }
    }

    /// Rejects features convnet does not implement when the config asks for them.
    pub fn require_default(c: &Map<String, Value>, key: &str, ok: &[Value], layer: &str) -> Result<()> {
        match c.get(key) {
            None | Some(Value::Null) => Ok(()),
            Some(v) if ok.contains(v) => Ok(()),
            Some(v) => Err(Error::config(format!("{layer}: {key} = {v} is not supported"))),
        }
    }

    /// Checks `data_format`, which must be channels-last.
    pub fn channels_last(c: &Map<String, Value>, layer: &str) -> Result<()> {
        require_default(c, "data_format", &[json!("channels_last")], layer)
    }
}

/// The shape of a tensor with batch `n` and per-sample `shape`, for error messages.
pub(crate) fn shape_str(shape: &[usize]) -> String {
    let dims: Vec<String> = std::iter::once("None".to_string()).chain(shape.iter().map(|d| d.to_string())).collect();
    format!("({})", dims.join(", "))
}

/// Adds `bias` to each row of `y` and applies `act` (rows are `width` wide); when `keep` is
/// given, the pre-activation is copied there first (for activations whose derivative needs it).
pub(crate) fn bias_activation(
    y: &mut [f32],
    bias: Option<&[f32]>,
    act: Activation,
    width: usize,
    keep: Option<&mut [f32]>,
) {
    if let Some(b) = bias {
        for row in y.chunks_exact_mut(width) {
            for (v, bv) in row.iter_mut().zip(b) {
                *v += bv;
            }
        }
    }
    if let Some(keep) = keep {
        keep.copy_from_slice(y);
    }
    act.forward(y, width);
}

#[cfg(test)]
pub(crate) mod gradcheck {
    //! Finite-difference gradient checks for layers.
    use super::*;

    /// Checks a built layer's input and weight gradients against central differences of
    /// `L = Σ r ⊙ y` for a random `r`. Runs in training mode with a fixed generator state, so
    /// dropout masks repeat between evaluations.
    pub fn check_layer(layer: &mut dyn Layer, input_shape: &[usize], batch: usize, seed: u64, tol: f32) {
        check(layer, input_shape, batch, seed, tol, false);
    }

    /// [`check_layer`] for layers with kinks or jumps (piecewise activations): a coordinate
    /// whose one-sided differences disagree has a kink within the step and is skipped, but at
    /// least two thirds of the coordinates must be checked.
    pub fn check_layer_piecewise(layer: &mut dyn Layer, input_shape: &[usize], batch: usize, seed: u64, tol: f32) {
        check(layer, input_shape, batch, seed, tol, true);
    }

    fn check(layer: &mut dyn Layer, input_shape: &[usize], batch: usize, seed: u64, tol: f32, piecewise: bool) {
        let lname = layer.class_name();
        let mut rng = Rng::new(seed);
        let out_shape = layer.build(input_shape, &mut rng).expect("build");
        let mut xs = vec![batch];
        xs.extend_from_slice(input_shape);
        let mut ys = vec![batch];
        ys.extend_from_slice(&out_shape);
        let n_in: usize = xs.iter().product();
        let x = Tensor::from_vec(&xs, (0..n_in).map(|_| rng.uniform_range(-1.0, 1.0)).collect()).unwrap();
        let n_out: usize = ys.iter().product();
        let r: Vec<f32> = (0..n_out).map(|_| rng.uniform_range(-1.0, 1.0)).collect();
        let fwd_seed = rng.next_u64();

        let eval = |layer: &mut dyn Layer, x: &Tensor| -> (f64, Tensor) {
            let mut y = Tensor::zeros(&ys);
            let mut r2 = Rng::new(fwd_seed);
            layer.forward(x, &mut y, &mut ForwardCtx { training: true, rng: &mut r2 });
            let l = y.data().iter().zip(&r).map(|(a, b)| *a as f64 * *b as f64).sum();
            (l, y)
        };
        let (_, y) = eval(layer, &x);
        let mut dy = Tensor::from_vec(&ys, r.clone()).unwrap();
        let mut dx = Tensor::zeros(&xs);
        layer.backward(&x, &y, &mut dy, Some(&mut dx));

        let h = 1e-3f32;
        let (l0, _) = eval(layer, &x);
        let (mut checked, mut skipped) = (0usize, 0usize);
        let mut check = |analytic: f32, lp: f64, lm: f64, what: &str| {
            let fd = ((lp - lm) / (2.0 * h as f64)) as f32;
            let (fp, fm) = (((lp - l0) / h as f64) as f32, ((l0 - lm) / h as f64) as f32);
            if piecewise && (fp - fm).abs() > tol * (1.0 + fp.abs().max(fm.abs())) {
                skipped += 1;
                return;
            }
            checked += 1;
            assert!(
                (fd - analytic).abs() <= tol * (1.0 + fd.abs().max(analytic.abs())),
                "{lname} {what}: finite difference {fd} vs backward {analytic}"
            );
        };
        // Input gradient.
        for i in (0..n_in).step_by((n_in / 40).max(1)) {
            let mut xp = x.clone();
            xp.data_mut()[i] += h;
            let mut xm = x.clone();
            xm.data_mut()[i] -= h;
            let (lp, _) = eval(layer, &xp);
            let (lm, _) = eval(layer, &xm);
            check(dx.data()[i], lp, lm, &format!("dx[{i}]"));
        }
        // Weight gradients (of the weights the optimizer updates: a layer keeps no gradient for
        // state it updates itself).
        let grads: Vec<Option<Vec<f32>>> = layer.params().iter().map(|p| p.trainable.then(|| p.grad.clone())).collect();
        for (pi, g) in grads.iter().enumerate().filter_map(|(pi, g)| g.as_ref().map(|g| (pi, g))) {
            let n = g.len();
            for i in (0..n).step_by((n / 30).max(1)) {
                let orig = layer.params()[pi].value[i];
                layer.params_mut()[pi].value[i] = orig + h;
                let (lp, _) = eval(layer, &x);
                layer.params_mut()[pi].value[i] = orig - h;
                let (lm, _) = eval(layer, &x);
                layer.params_mut()[pi].value[i] = orig;
                check(g[i], lp, lm, &format!("param {pi} [{i}]"));
            }
        }
        assert!(
            checked * 3 >= (checked + skipped) * 2,
            "{lname}: {skipped} of {} coordinates not smooth",
            checked + skipped
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::activations::Activation::{LeakyRelu, Mish, ReluWith};

    fn read(v: Value) -> Result<Activation> {
        cfg::activation(json!({ "activation": v }).as_object().unwrap())
    }

    /// A layer object serves as an activation, in Keras 3's and tf_keras' keys.
    #[test]
    fn layer_objects_serve_as_activations() {
        let l = json!({"module": "keras.layers", "class_name": "LeakyReLU", "config": {"name": "l", "negative_slope": 0.1}});
        assert_eq!(read(l).unwrap(), LeakyRelu { negative_slope: 0.1 });
        let l = json!({"class_name": "LeakyReLU", "config": {"name": "l", "alpha": 0.1}});
        assert_eq!(read(l).unwrap(), LeakyRelu { negative_slope: 0.1 });
        let l = json!({"class_name": "ReLU", "config": {"max_value": 3.0, "threshold": 0.5}});
        assert_eq!(read(l).unwrap(), ReluWith { negative_slope: 0.0, max_value: Some(3.0), threshold: 0.5 });
        let l = json!({"class_name": "Activation", "config": {"activation": "mish"}});
        assert_eq!(read(l).unwrap(), Mish);
        assert!(read(json!({"class_name": "PReLU", "config": {}})).unwrap_err().to_string().contains("PReLU"));
    }

    /// Arguments an activation name cannot hold are written as the layer object, and read back.
    #[test]
    fn activation_arguments_survive_the_config() {
        for a in [
            LeakyRelu { negative_slope: 0.1 },
            Activation::Elu { alpha: 0.5 },
            ReluWith { negative_slope: 0.1, max_value: Some(3.0), threshold: 0.5 },
            ReluWith { negative_slope: 0.0, max_value: None, threshold: 1.0 },
        ] {
            assert_eq!(read(a.to_config()).unwrap(), a);
        }
    }
}
