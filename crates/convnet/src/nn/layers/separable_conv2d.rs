//! `SeparableConv2D`: a depthwise convolution (no bias, no activation) followed by a 1×1
//! pointwise convolution, with Keras' weights in Keras' order: `depthwise_kernel`
//! `[kh, kw, in, depth_multiplier]`, `pointwise_kernel` `[1, 1, in·depth_multiplier, filters]`,
//! `bias` `[filters]`.
//!
//! Forward `u = depthwise(x, d)`, `y = act(u · p + b)`, with `u` kept for the backward pass.
//! Backward `dz = dy ⊙ act'(z)`, `db = Σ dz`, `dp = uᵀ · dz`, `du = dz · pᵀ`, then the depthwise
//! kernels' gradients of `du` ([`crate::kernels::depthwise`]). Each batch chunk runs both
//! stages while its intermediate is in cache.

use super::depthwise_conv2d::{depthwise_geometry, depthwise_options};
use super::weights::{weighted_layer_plumbing, WeightOptions};
use super::{bias_activation, cfg, init_param, ForwardCtx, Layer, Meta, Pair, Param};
use crate::error::{Error, Result};
use crate::kernels::conv::Padding;
use crate::kernels::depthwise::{self, DepthwiseScratch};
use crate::kernels::dilated::Dilated;
use crate::kernels::gemm::{gemm, transpose, GemmShape};
use crate::kernels::simd::add_rows;
use crate::nn::activations::Activation;
use crate::nn::constraints::Constraint;
use crate::nn::initializers::Initializer;
use crate::nn::regularizers::Regularizer;
use crate::parallel::{self, SharedMut};
use crate::rng::Rng;
use crate::tensor::Tensor;
use serde_json::{json, Map, Value};

/// Bytes of a chunk's working set that fit a core's L2 cache with room to spare.
const CHUNK_BYTES: usize = 1 << 20;

/// Per-worker scratch and partial gradients.
#[derive(Default)]
struct Work {
    scratch: DepthwiseScratch,
    /// The intermediate's gradient for one chunk.
    du: Vec<f32>,
    dd: Vec<f32>,
    dp: Vec<f32>,
    db: Vec<f32>,
}

/// A depthwise separable 2-D convolution layer (Keras' `SeparableConv2D`).
pub struct SeparableConv2D {
    meta: Meta,
    filters: usize,
    kernel_size: Pair,
    strides: Pair,
    padding: Padding,
    depth_multiplier: usize,
    dilation_rate: Pair,
    /// Activation, bias and the pointwise kernel's options (as `kernel_*`).
    opts: WeightOptions,
    /// The depthwise kernel's initializer, regularizer and constraint (as `kernel_*`).
    depthwise: WeightOptions,
    geom: Option<Dilated>,
    out_shape: Vec<usize>,
    params: Vec<Param>,
    fused: bool,
    pre: Vec<f32>,
    /// The depthwise stage's output of the last forward pass.
    mid: Vec<f32>,
    /// The pointwise kernel transposed (`[filters, in·depth_multiplier]`) for `du = dz · pᵀ`.
    pointwise_t: Vec<f32>,
    work: Vec<Work>,
}

/// Config keys of the pointwise kernel, and the [`WeightOptions`] keys they stand for.
const POINTWISE: [(&str, &str); 3] = [
    ("pointwise_initializer", "kernel_initializer"),
    ("pointwise_regularizer", "kernel_regularizer"),
    ("pointwise_constraint", "kernel_constraint"),
];

impl SeparableConv2D {
    /// `filters` outputs from `kernel_size` depthwise kernels, with Keras' defaults:
    /// depth_multiplier 1, strides 1, padding "valid", no dilation, no activation, a bias,
    /// glorot_uniform kernels, zero bias.
    pub fn new(filters: usize, kernel_size: impl Into<Pair>) -> Self {
        SeparableConv2D {
            meta: Meta::default(),
            filters,
            kernel_size: kernel_size.into(),
            strides: Pair(1, 1),
            padding: Padding::Valid,
            depth_multiplier: 1,
            dilation_rate: Pair(1, 1),
            opts: WeightOptions::default(),
            depthwise: WeightOptions::default(),
            geom: None,
            out_shape: Vec::new(),
            params: Vec::new(),
            fused: false,
            pre: Vec::new(),
            mid: Vec::new(),
            pointwise_t: Vec::new(),
            work: Vec::new(),
        }
    }

    /// Sets the number of depthwise kernels per input channel.
    pub fn depth_multiplier(mut self, m: usize) -> Self {
        self.depth_multiplier = m;
        self
    }

    /// Sets the strides.
    pub fn strides(mut self, s: impl Into<Pair>) -> Self {
        self.strides = s.into();
        self
    }

    /// Sets the padding: [`Padding`] or Keras' name ("valid" or "same"; another name makes
    /// building the model fail).
    pub fn padding<P: TryInto<Padding, Error: Into<Error>>>(mut self, p: P) -> Self {
        if let Some(p) = self.meta.accept(p, "padding") {
            self.padding = p;
        }
        self
    }

    /// Sets the dilation rate of the depthwise stage.
    pub fn dilation_rate(mut self, d: impl Into<Pair>) -> Self {
        self.dilation_rate = d.into();
        self
    }

    /// Sets the activation applied to the output: an [`Activation`] or Keras' name ("relu";
    /// another name makes building the model fail).
    pub fn activation<A: TryInto<Activation, Error: Into<Error>>>(mut self, a: A) -> Self {
        if let Some(a) = self.meta.accept(a, "activation") {
            self.opts.activation = a;
        }
        self
    }

    /// Enables or disables the bias.
    pub fn use_bias(mut self, b: bool) -> Self {
        self.opts.use_bias = b;
        self
    }

    /// Sets the depthwise kernel's initializer.
    pub fn depthwise_initializer(mut self, i: Initializer) -> Self {
        self.depthwise.kernel_initializer = i;
        self
    }

    /// Sets the pointwise kernel's initializer.
    pub fn pointwise_initializer(mut self, i: Initializer) -> Self {
        self.opts.kernel_initializer = i;
        self
    }

    /// Sets the bias initializer.
    pub fn bias_initializer(mut self, i: Initializer) -> Self {
        self.opts.bias_initializer = i;
        self
    }

    /// Sets a penalty on the depthwise kernel.
    pub fn depthwise_regularizer(mut self, r: Regularizer) -> Self {
        self.depthwise.kernel_regularizer = Some(r);
        self
    }

    /// Sets a penalty on the pointwise kernel.
    pub fn pointwise_regularizer(mut self, r: Regularizer) -> Self {
        self.opts.kernel_regularizer = Some(r);
        self
    }

    /// Sets a projection of the depthwise kernel after each update.
    pub fn depthwise_constraint(mut self, c: Constraint) -> Self {
        self.depthwise.kernel_constraint = Some(c);
        self
    }

    /// Sets a projection of the pointwise kernel after each update.
    pub fn pointwise_constraint(mut self, c: Constraint) -> Self {
        self.opts.kernel_constraint = Some(c);
        self
    }

    /// Names the layer.
    pub fn name(mut self, name: &str) -> Self {
        self.meta.name = name.to_string();
        self
    }

    /// Declares the per-sample input shape `[height, width, channels]` (first layer).
    pub fn input_shape(mut self, shape: impl AsRef<[usize]>) -> Self {
        self.meta.input_shape = Some(shape.as_ref().to_vec());
        self
    }

    /// Reads Keras' config (Keras 3's or tf_keras').
    pub fn from_config(c: &Map<String, Value>) -> Result<Self> {
        let l = "SeparableConv2D";
        cfg::channels_last(c, l)?;
        cfg::require_default(c, "groups", &[json!(1)], l)?;
        let mut layer = SeparableConv2D::new(cfg::usize_req(c, "filters", l)?, cfg::pair(c, "kernel_size", None, l)?);
        layer.meta = Meta::from_config(c)?;
        layer.strides = cfg::pair(c, "strides", Some(Pair(1, 1)), l)?;
        layer.dilation_rate = cfg::pair(c, "dilation_rate", Some(Pair(1, 1)), l)?;
        layer.depth_multiplier = match c.get("depth_multiplier") {
            None | Some(Value::Null) => 1,
            Some(_) => cfg::usize_req(c, "depth_multiplier", l)?,
        };
        layer.padding = match c.get("padding").and_then(Value::as_str) {
            Some(p) => Padding::parse(p)?,
            None => Padding::Valid,
        };
        layer.depthwise = depthwise_options(c)?;
        let mut m = c.clone();
        for (from, to) in POINTWISE {
            m.remove(to);
            if let Some(v) = c.get(from) {
                m.insert(to.into(), v.clone());
            }
        }
        layer.opts = WeightOptions::from_config(&m)?;
        Ok(layer)
    }

    fn geom(&self) -> Dilated {
        self.geom.expect("SeparableConv2D used before build")
    }

    /// Samples per chunk for a batch of `n`; sizes the workers and the intermediate.
    fn plan(&mut self, n: usize, backward: bool) -> usize {
        let g = self.geom();
        let cm = g.channels * self.depth_multiplier;
        let per_sample = (g.in_len() + g.out_pixels() * (cm + self.filters)) * 4;
        let workers = parallel::workers();
        if self.work.len() != workers {
            self.work.resize_with(workers, Work::default);
        }
        let chunk = parallel::chunk_len(n, workers, (CHUNK_BYTES / per_sample.max(1)).max(1));
        if self.mid.len() < n * g.out_pixels() * cm {
            self.mid.resize(n * g.out_pixels() * cm, 0.0);
        }
        if backward {
            for wk in &mut self.work {
                if wk.du.len() < chunk * g.out_pixels() * cm {
                    wk.du.resize(chunk * g.out_pixels() * cm, 0.0);
                }
            }
        }
        chunk
    }
}

impl Layer for SeparableConv2D {
    fn class_name(&self) -> &'static str {
        "SeparableConv2D"
    }

    fn base_name(&self) -> &'static str {
        "separable_conv2d"
    }

    fn meta(&self) -> &Meta {
        &self.meta
    }

    fn meta_mut(&mut self) -> &mut Meta {
        &mut self.meta
    }

    fn build(&mut self, input_shape: &[usize], rng: &mut Rng) -> Result<Vec<usize>> {
        if self.depth_multiplier == 0 || self.filters == 0 {
            return Err(Error::config(
                "SeparableConv2D needs at least one filter and a depth_multiplier of at least 1",
            ));
        }
        let name = self.meta.name.clone();
        let g = depthwise_geometry(
            "SeparableConv2D",
            &name,
            input_shape,
            self.kernel_size,
            self.strides,
            self.dilation_rate,
            self.padding,
        )?;
        let (c, m, f) = (g.channels, self.depth_multiplier, self.filters);
        let d = &self.depthwise;
        let mut dk = Param::new("depthwise_kernel", &[g.kh, g.kw, c, m], d.kernel_regularizer)?;
        init_param(&mut dk, &d.kernel_initializer, &d.kernel_constraint, &name, rng)?;
        let o = &self.opts;
        let mut pk = Param::new("pointwise_kernel", &[1, 1, c * m, f], o.kernel_regularizer)?;
        init_param(&mut pk, &o.kernel_initializer, &o.kernel_constraint, &name, rng)?;
        self.params = vec![dk, pk];
        if o.use_bias {
            let mut b = Param::new("bias", &[f], o.bias_regularizer)?;
            init_param(&mut b, &o.bias_initializer, &o.bias_constraint, &name, rng)?;
            self.params.push(b);
        }
        self.out_shape = vec![g.out_h, g.out_w, f];
        self.geom = Some(g);
        Ok(self.out_shape.clone())
    }

    fn output_shape(&self) -> &[usize] {
        &self.out_shape
    }

    fn forward(&mut self, x: &Tensor, y: &mut Tensor, ctx: &mut ForwardCtx<'_>) {
        let n = x.batch();
        let g = self.geom();
        let chunk = self.plan(n, false);
        let keep = ctx.training && self.opts.activation.needs_input();
        if keep && self.pre.len() < y.len() {
            self.pre.resize(y.len(), 0.0);
        }
        let pres = keep.then(|| SharedMut::new(&mut self.pre[..]));
        let (m, f, act) = (self.depth_multiplier, self.filters, self.opts.activation);
        let (op, cm) = (g.out_pixels(), g.channels * m);
        let (dk, pk) = (&self.params[0].value, &self.params[1].value);
        let bias = self.params.get(2).map(|p| p.value.as_slice());
        let xd = x.data();
        let ys = SharedMut::new(y.data_mut());
        let mids = SharedMut::new(&mut self.mid[..]);
        parallel::for_chunks(n, chunk, &mut self.work, |wk, r| {
            let rows = r.len() * op;
            let xc = &xd[r.start * g.in_len()..r.end * g.in_len()];
            // SAFETY: chunks are disjoint ranges of samples.
            let (yc, mc) =
                unsafe { (ys.slice(r.start * op * f..r.end * op * f), mids.slice(r.start * op * cm..r.end * op * cm)) };
            // SAFETY: as above.
            let keep = pres.as_ref().map(|p| unsafe { p.slice(r.start * op * f..r.end * op * f) });
            depthwise::forward(&g, xc, r.len(), m, dk, None, mc, &mut wk.scratch);
            gemm(GemmShape::nn(rows, cm, f), mc, pk, yc, false);
            bias_activation(yc, bias, act, f, keep);
        });
    }

    fn backward(&mut self, x: &Tensor, y: &Tensor, dy: &mut Tensor, dx: Option<&mut Tensor>) {
        let n = x.batch();
        let g = self.geom();
        let chunk = self.plan(n, true);
        let (m, f) = (self.depth_multiplier, self.filters);
        let (op, cm) = (g.out_pixels(), g.channels * m);
        let use_bias = self.opts.use_bias;
        for wk in &mut self.work {
            wk.dd.clear();
            wk.dd.resize(g.taps() * cm, 0.0);
            wk.dp.clear();
            wk.dp.resize(cm * f, 0.0);
            wk.db.clear();
            wk.db.resize(f, 0.0);
        }
        let act = if self.fused { Activation::Linear } else { self.opts.activation };
        // pᵀ as a plain operand (a transposed one would need the product's per-thread buffer).
        self.pointwise_t.resize(cm * f, 0.0);
        transpose(&self.params[1].value, cm, f, &mut self.pointwise_t);
        let (dk, pt) = (&self.params[0].value, &self.pointwise_t);
        let (xd, yd) = (x.data(), y.data());
        let mid = &self.mid;
        let pre = act.needs_input().then(|| &self.pre[..yd.len()]);
        let dys = SharedMut::new(dy.data_mut());
        let dxs = dx.map(|t| SharedMut::new(t.data_mut()));
        parallel::for_chunks(n, chunk, &mut self.work, |wk, r| {
            let rows = r.len() * op;
            let out = r.start * op * f..r.end * op * f;
            // SAFETY: chunks are disjoint ranges of samples.
            let dz = unsafe { dys.slice(out.clone()) };
            act.backward(pre.map(|p| &p[out.clone()]), &yd[out], dz, f);
            if use_bias {
                add_rows(&mut wk.db, dz);
            }
            let mc = &mid[r.start * op * cm..r.end * op * cm];
            gemm(GemmShape::tn(cm, rows, f), mc, dz, &mut wk.dp, true);
            let du = &mut wk.du[..rows * cm];
            gemm(GemmShape::nn(rows, f, cm), dz, pt, du, false);
            let xc = &xd[r.start * g.in_len()..r.end * g.in_len()];
            depthwise::weight_grad(&g, xc, r.len(), m, du, &mut wk.dd, &mut wk.scratch);
            if let Some(dxs) = &dxs {
                // SAFETY: disjoint sample ranges.
                let dxc = unsafe { dxs.slice(r.start * g.in_len()..r.end * g.in_len()) };
                depthwise::backward_data(&g, du, r.len(), m, dk, dxc, &mut wk.scratch);
            }
        });
        let (first, rest) = self.work.split_first_mut().expect("at least one worker");
        for wk in rest.iter() {
            for (a, v) in first.dd.iter_mut().zip(&wk.dd) {
                *a += v;
            }
            for (a, v) in first.dp.iter_mut().zip(&wk.dp) {
                *a += v;
            }
            for (a, v) in first.db.iter_mut().zip(&wk.db) {
                *a += v;
            }
        }
        self.params[0].grad.copy_from_slice(&first.dd);
        self.params[1].grad.copy_from_slice(&first.dp);
        if use_bias {
            self.params[2].grad.copy_from_slice(&first.db);
        }
    }

    weighted_layer_plumbing!();

    fn config(&self) -> Map<String, Value> {
        let mut m = self.meta.config();
        m.insert("depth_multiplier".into(), json!(self.depth_multiplier));
        m.insert("filters".into(), json!(self.filters));
        m.insert("kernel_size".into(), self.kernel_size.to_json());
        m.insert("strides".into(), self.strides.to_json());
        m.insert("padding".into(), json!(self.padding.name()));
        m.insert("data_format".into(), json!("channels_last"));
        m.insert("dilation_rate".into(), self.dilation_rate.to_json());
        self.opts.write_config(&mut m);
        for (to, from) in POINTWISE {
            if let Some(v) = m.remove(from) {
                m.insert(to.into(), v);
            }
        }
        let d = &self.depthwise;
        m.insert("depthwise_initializer".into(), d.kernel_initializer.to_config());
        m.insert("depthwise_regularizer".into(), d.kernel_regularizer.map_or(Value::Null, |r| r.to_config()));
        m.insert(
            "depthwise_constraint".into(),
            d.kernel_constraint.as_ref().map_or(Value::Null, Constraint::to_config),
        );
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::layers::gradcheck::check_layer;

    #[test]
    fn shapes_and_parameter_counts_follow_keras() {
        let mut rng = Rng::new(0);
        let mut l = SeparableConv2D::new(4, 3).depth_multiplier(2);
        assert_eq!(l.build(&[7, 6, 5], &mut rng).unwrap(), vec![5, 4, 4]);
        let shapes: Vec<_> = l.params().iter().map(|p| (p.name, p.shape.clone())).collect();
        assert_eq!(
            shapes,
            vec![("depthwise_kernel", vec![3, 3, 5, 2]), ("pointwise_kernel", vec![1, 1, 10, 4]), ("bias", vec![4])]
        );
        assert_eq!(l.count_params(), 90 + 40 + 4);
    }

    #[test]
    fn gradients_match_finite_differences() {
        let init = Initializer::RandomNormal { mean: 0.0, stddev: 0.3 };
        for (i, (layer, input)) in [
            (SeparableConv2D::new(4, 3).padding(Padding::Same).activation(Activation::Tanh), [5, 6, 3]),
            (SeparableConv2D::new(3, 3).strides(2).depth_multiplier(2).activation(Activation::Sigmoid), [7, 6, 2]),
            (SeparableConv2D::new(2, (2, 3)).dilation_rate(2).padding(Padding::Same).use_bias(false), [6, 7, 3]),
        ]
        .into_iter()
        .enumerate()
        {
            let mut layer = layer.bias_initializer(init.clone());
            check_layer(&mut layer, &input, 3, 900 + i as u64, 2e-2);
        }
    }

    #[test]
    fn config_round_trip_in_keras_keys() {
        let l = SeparableConv2D::new(8, 3)
            .depth_multiplier(2)
            .padding(Padding::Same)
            .activation(Activation::Relu)
            .depthwise_initializer(Initializer::HeNormal)
            .pointwise_regularizer(crate::nn::regularizers::l2(0.01))
            .name("sep");
        let c = l.config();
        for k in ["depthwise_initializer", "pointwise_initializer", "pointwise_regularizer", "depthwise_constraint"] {
            assert!(c.contains_key(k), "{k}");
        }
        assert!(!c.contains_key("kernel_initializer"));
        let back = SeparableConv2D::from_config(&c).unwrap();
        assert_eq!(back.config(), c);
        assert_eq!(back.depthwise.kernel_initializer, Initializer::HeNormal);
        assert_eq!(back.opts.kernel_initializer, Initializer::GlorotUniform);
    }
}
