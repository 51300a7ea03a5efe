//! `DepthwiseConv2D`: each input channel convolved with its own `depth_multiplier` kernels,
//! Keras' kernel `[kh, kw, in, depth_multiplier]`, output channel `c·M + m`.
//!
//! Forward `y = act(depthwise(x, k) + b)`; backward `dz = dy ⊙ act'(z)`, `db = Σ dz`, and the
//! depthwise kernels' input and weight gradients ([`crate::kernels::depthwise`]). Batch chunks
//! spread over the workers; each worker keeps its scratch and partial weight gradients, summed
//! in worker order. Keras 3 names the weight `kernel` (tf_keras `depthwise_kernel`; the files
//! address weights by position, so both load); the config keys are `depthwise_initializer`,
//! `depthwise_regularizer`, `depthwise_constraint`.

use super::weights::{weighted_layer_plumbing, WeightOptions};
use super::{bias_activation, cfg, shape_str, ForwardCtx, Layer, Meta, Pair, Param};
use crate::error::{Error, Result};
use crate::kernels::conv::Padding;
use crate::kernels::depthwise::{self, DepthwiseScratch};
use crate::kernels::dilated::Dilated;
use crate::kernels::simd::add_rows;
use crate::nn::activations::Activation;
use crate::nn::constraints::Constraint;
use crate::nn::initializers::Initializer;
use crate::nn::regularizers::Regularizer;
use crate::parallel::{self, SharedMut};
use crate::rng::Rng;
use crate::tensor::Tensor;
use serde_json::{json, Map, Value};

/// Bytes of a chunk's input and output that fit a core's L2 cache with room to spare.
const CHUNK_BYTES: usize = 1 << 20;

/// The config keys of the depthwise weight, and the [`WeightOptions`] keys they stand for.
const RENAMED: [(&str, &str); 3] = [
    ("depthwise_initializer", "kernel_initializer"),
    ("depthwise_regularizer", "kernel_regularizer"),
    ("depthwise_constraint", "kernel_constraint"),
];

/// Reads [`WeightOptions`] from a config whose kernel keys are named `depthwise_*`.
pub(super) fn depthwise_options(c: &Map<String, Value>) -> Result<WeightOptions> {
    let mut m = c.clone();
    for (from, to) in RENAMED {
        m.remove(to);
        if let Some(v) = c.get(from) {
            m.insert(to.into(), v.clone());
        }
    }
    WeightOptions::from_config(&m)
}

/// Writes [`WeightOptions`] with the kernel keys named `depthwise_*`.
fn write_depthwise_options(opts: &WeightOptions, m: &mut Map<String, Value>) {
    opts.write_config(m);
    for (to, from) in RENAMED {
        if let Some(v) = m.remove(from) {
            m.insert(to.into(), v);
        }
    }
}

/// Per-worker scratch and partial gradients.
#[derive(Default)]
pub(super) struct DwWork {
    pub(super) scratch: DepthwiseScratch,
    pub(super) dk: Vec<f32>,
    pub(super) db: Vec<f32>,
}

/// A depthwise 2-D convolution layer (Keras' `DepthwiseConv2D`).
pub struct DepthwiseConv2D {
    meta: Meta,
    kernel_size: Pair,
    strides: Pair,
    padding: Padding,
    depth_multiplier: usize,
    dilation_rate: Pair,
    opts: WeightOptions,
    geom: Option<Dilated>,
    out_shape: Vec<usize>,
    params: Vec<Param>,
    fused: bool,
    /// The pre-activation of the last training pass, for activations that need it.
    pre: Vec<f32>,
    work: Vec<DwWork>,
}

impl DepthwiseConv2D {
    /// Depthwise kernels of `kernel_size`, with Keras' defaults: depth_multiplier 1, strides 1,
    /// padding "valid", no dilation, no activation, a bias, glorot_uniform kernel, zero bias.
    pub fn new(kernel_size: impl Into<Pair>) -> Self {
        DepthwiseConv2D {
            meta: Meta::default(),
            kernel_size: kernel_size.into(),
            strides: Pair(1, 1),
            padding: Padding::Valid,
            depth_multiplier: 1,
            dilation_rate: Pair(1, 1),
            opts: WeightOptions::default(),
            geom: None,
            out_shape: Vec::new(),
            params: Vec::new(),
            fused: false,
            pre: Vec::new(),
            work: Vec::new(),
        }
    }

    /// Sets the number of kernels per input channel.
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

    /// Sets the dilation rate.
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
        self.opts.kernel_regularizer = Some(r);
        self
    }

    /// Sets a projection of the depthwise kernel after each update.
    pub fn depthwise_constraint(mut self, c: Constraint) -> Self {
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
        let l = "DepthwiseConv2D";
        cfg::channels_last(c, l)?;
        cfg::require_default(c, "groups", &[json!(1)], l)?;
        let mut layer = DepthwiseConv2D::new(cfg::pair(c, "kernel_size", None, l)?);
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
        layer.opts = depthwise_options(c)?;
        Ok(layer)
    }

    fn geom(&self) -> Dilated {
        self.geom.expect("DepthwiseConv2D used before build")
    }

    /// Samples per chunk for a batch of `n`; sizes the workers.
    fn plan(&mut self, n: usize) -> usize {
        let g = self.geom();
        let per_sample = (g.in_len() + g.out_pixels() * g.channels * self.depth_multiplier) * 4;
        let workers = parallel::workers();
        if self.work.len() != workers {
            self.work.resize_with(workers, DwWork::default);
        }
        parallel::chunk_len(n, workers, (CHUNK_BYTES / per_sample.max(1)).max(1))
    }
}

/// The geometry of a depthwise layer on `input_shape`, with errors naming the layer.
pub(super) fn depthwise_geometry(
    class: &str,
    name: &str,
    input_shape: &[usize],
    kernel_size: Pair,
    strides: Pair,
    dilation: Pair,
    padding: Padding,
) -> Result<Dilated> {
    if input_shape.len() != 3 {
        return Err(Error::shape(format!(
            "{class} {name:?} needs input of shape (None, height, width, channels), got {}",
            shape_str(input_shape)
        )));
    }
    Dilated::new(
        input_shape[0],
        input_shape[1],
        input_shape[2],
        kernel_size.tuple(),
        strides.tuple(),
        dilation.tuple(),
        padding,
    )
    .map_err(|e| Error::shape(format!("{class} {name:?}: {e}")))
}

impl Layer for DepthwiseConv2D {
    fn class_name(&self) -> &'static str {
        "DepthwiseConv2D"
    }

    fn base_name(&self) -> &'static str {
        "depthwise_conv2d"
    }

    fn meta(&self) -> &Meta {
        &self.meta
    }

    fn meta_mut(&mut self) -> &mut Meta {
        &mut self.meta
    }

    fn build(&mut self, input_shape: &[usize], rng: &mut Rng) -> Result<Vec<usize>> {
        if self.depth_multiplier == 0 {
            return Err(Error::config("DepthwiseConv2D needs a depth_multiplier of at least 1"));
        }
        let g = depthwise_geometry(
            "DepthwiseConv2D",
            &self.meta.name,
            input_shape,
            self.kernel_size,
            self.strides,
            self.dilation_rate,
            self.padding,
        )?;
        let f = g.channels * self.depth_multiplier;
        self.params =
            self.opts.build_params(&[g.kh, g.kw, g.channels, self.depth_multiplier], f, &self.meta.name, rng)?;
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
        let chunk = self.plan(n);
        let keep = ctx.training && self.opts.activation.needs_input();
        if keep && self.pre.len() < y.len() {
            self.pre.resize(y.len(), 0.0);
        }
        let pres = keep.then(|| SharedMut::new(&mut self.pre[..]));
        let (m, act) = (self.depth_multiplier, self.opts.activation);
        let f = g.channels * m;
        let ol = g.out_pixels() * f;
        let kernel = &self.params[0].value;
        let bias = self.params.get(1).map(|p| p.value.as_slice());
        let xd = x.data();
        let ys = SharedMut::new(y.data_mut());
        parallel::for_chunks(n, chunk, &mut self.work, |wk, r| {
            let xc = &xd[r.start * g.in_len()..r.end * g.in_len()];
            // SAFETY: chunks are disjoint ranges of samples.
            let yc = unsafe { ys.slice(r.start * ol..r.end * ol) };
            // SAFETY: as above.
            let keep = pres.as_ref().map(|p| unsafe { p.slice(r.start * ol..r.end * ol) });
            depthwise::forward(&g, xc, r.len(), m, kernel, bias, yc, &mut wk.scratch);
            bias_activation(yc, None, act, f, keep);
        });
    }

    fn backward(&mut self, x: &Tensor, y: &Tensor, dy: &mut Tensor, dx: Option<&mut Tensor>) {
        let n = x.batch();
        let g = self.geom();
        let chunk = self.plan(n);
        let m = self.depth_multiplier;
        let f = g.channels * m;
        let ol = g.out_pixels() * f;
        let use_bias = self.opts.use_bias;
        for wk in &mut self.work {
            wk.dk.clear();
            wk.dk.resize(g.taps() * f, 0.0);
            wk.db.clear();
            wk.db.resize(f, 0.0);
        }
        let act = if self.fused { Activation::Linear } else { self.opts.activation };
        let kernel = &self.params[0].value;
        let (xd, yd) = (x.data(), y.data());
        let pre = act.needs_input().then(|| &self.pre[..yd.len()]);
        let dys = SharedMut::new(dy.data_mut());
        let dxs = dx.map(|t| SharedMut::new(t.data_mut()));
        parallel::for_chunks(n, chunk, &mut self.work, |wk, r| {
            let out = r.start * ol..r.end * ol;
            // SAFETY: chunks are disjoint ranges of samples.
            let dz = unsafe { dys.slice(out.clone()) };
            act.backward(pre.map(|p| &p[out.clone()]), &yd[out], dz, f);
            if use_bias {
                add_rows(&mut wk.db, dz);
            }
            let xc = &xd[r.start * g.in_len()..r.end * g.in_len()];
            depthwise::weight_grad(&g, xc, r.len(), m, dz, &mut wk.dk, &mut wk.scratch);
            if let Some(dxs) = &dxs {
                // SAFETY: disjoint sample ranges.
                let dxc = unsafe { dxs.slice(r.start * g.in_len()..r.end * g.in_len()) };
                depthwise::backward_data(&g, dz, r.len(), m, kernel, dxc, &mut wk.scratch);
            }
        });
        let (first, rest) = self.work.split_first_mut().expect("at least one worker");
        let gk = &mut self.params[0].grad;
        gk.copy_from_slice(&first.dk);
        for wk in rest.iter() {
            for (a, v) in gk.iter_mut().zip(&wk.dk) {
                *a += v;
            }
        }
        if use_bias {
            let gb = &mut self.params[1].grad;
            gb.copy_from_slice(&first.db);
            for wk in rest.iter() {
                for (a, v) in gb.iter_mut().zip(&wk.db) {
                    *a += v;
                }
            }
        }
    }

    weighted_layer_plumbing!();

    fn config(&self) -> Map<String, Value> {
        let mut m = self.meta.config();
        m.insert("depth_multiplier".into(), json!(self.depth_multiplier));
        m.insert("kernel_size".into(), self.kernel_size.to_json());
        m.insert("strides".into(), self.strides.to_json());
        m.insert("padding".into(), json!(self.padding.name()));
        m.insert("data_format".into(), json!("channels_last"));
        m.insert("dilation_rate".into(), self.dilation_rate.to_json());
        write_depthwise_options(&self.opts, &mut m);
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
        let mut l = DepthwiseConv2D::new(3).depth_multiplier(2);
        assert_eq!(l.build(&[7, 6, 5], &mut rng).unwrap(), vec![5, 4, 10]);
        assert_eq!(l.params()[0].shape, vec![3, 3, 5, 2]);
        assert_eq!(l.count_params(), 3 * 3 * 5 * 2 + 10);
        let mut l = DepthwiseConv2D::new(3).strides(2).padding(Padding::Same);
        assert_eq!(l.build(&[7, 8, 4], &mut rng).unwrap(), vec![4, 4, 4]);
        assert!(DepthwiseConv2D::new(5).build(&[3, 3, 1], &mut rng).is_err());
        assert!(DepthwiseConv2D::new(3).depth_multiplier(0).build(&[3, 3, 1], &mut rng).is_err());
    }

    #[test]
    fn gradients_match_finite_differences() {
        let init = Initializer::RandomNormal { mean: 0.0, stddev: 0.3 };
        for (i, (layer, input)) in [
            (DepthwiseConv2D::new(3).padding(Padding::Same).activation(Activation::Tanh), [5, 6, 3]),
            (DepthwiseConv2D::new(3).strides(2).padding(Padding::Same).depth_multiplier(2), [7, 5, 3]),
            (DepthwiseConv2D::new((2, 3)).strides(2).depth_multiplier(2).activation(Activation::Sigmoid), [6, 7, 2]),
            (DepthwiseConv2D::new(3).dilation_rate(2).use_bias(false).activation(Activation::Gelu), [7, 7, 17]),
        ]
        .into_iter()
        .enumerate()
        {
            let mut layer = layer.bias_initializer(init.clone());
            check_layer(&mut layer, &input, 3, 800 + i as u64, 2e-2);
        }
    }

    #[test]
    fn config_round_trip_in_keras_keys() {
        let l = DepthwiseConv2D::new((3, 5))
            .depth_multiplier(2)
            .strides(2)
            .padding(Padding::Same)
            .dilation_rate(1)
            .activation(Activation::Relu)
            .depthwise_initializer(Initializer::HeNormal)
            .depthwise_regularizer(crate::nn::regularizers::l2(0.01))
            .name("dw");
        let c = l.config();
        for k in ["depthwise_initializer", "depthwise_regularizer", "depthwise_constraint", "depth_multiplier"] {
            assert!(c.contains_key(k), "{k}");
        }
        assert!(!c.contains_key("kernel_initializer") && !c.contains_key("filters"));
        let back = DepthwiseConv2D::from_config(&c).unwrap();
        assert_eq!(back.config(), c);
        assert_eq!(back.opts.kernel_initializer, Initializer::HeNormal);
        let mut bad = c.clone();
        bad.insert("groups".into(), json!(2));
        assert!(DepthwiseConv2D::from_config(&bad).is_err());
    }
}

#[cfg(test)]
mod speed {
    use super::*;

    /// Forward and backward throughput on MobileNetV2's shapes, in GFLOP/s (2 per
    /// multiply-add): `cargo test --release -p convnet --lib depthwise_speed -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn depthwise_speed() {
        let mut rng = Rng::new(1);
        let batch = std::env::var("DW_BATCH").ok().and_then(|v| v.parse().ok()).unwrap_or(128);
        for (h, c, s) in [(48, 96, 1), (48, 96, 2), (24, 144, 1), (24, 144, 2), (12, 192, 1), (6, 576, 1)] {
            let mut l = DepthwiseConv2D::new(3).strides(s).padding(Padding::Same);
            let out = l.build(&[h, h, c], &mut rng).unwrap();
            let x = Tensor::from_vec(&[batch, h, h, c], (0..batch * h * h * c).map(|i| (i % 7) as f32 * 0.1).collect())
                .unwrap();
            let mut y = Tensor::zeros(&[batch, out[0], out[1], out[2]]);
            let mut dx = Tensor::zeros(&[batch, h, h, c]);
            let flops = 2.0 * 9.0 * (batch * out[0] * out[1] * c) as f64;
            let mut ctx = ForwardCtx { training: true, rng: &mut rng };
            l.forward(&x, &mut y, &mut ctx);
            // The best of repeated runs over about half a second: the machine may be shared.
            let best = |f: &mut dyn FnMut()| {
                let (mut best, start) = (f64::MAX, std::time::Instant::now());
                while start.elapsed().as_secs_f64() < 0.5 {
                    let t = std::time::Instant::now();
                    f();
                    best = best.min(t.elapsed().as_secs_f64());
                }
                best
            };
            let fwd = best(&mut || l.forward(&x, &mut y, &mut ctx));
            let mut dy = y.clone();
            let bwd = best(&mut || {
                dy.data_mut().copy_from_slice(y.data());
                l.backward(&x, &y, &mut dy, Some(&mut dx));
            });
            eprintln!(
                "depthwise 3x3 s{s} {batch}x{h}x{h}x{c}: forward {:.2} ms {:.1} GFLOP/s, backward (dx + dk) {:.2} ms {:.1} GFLOP/s",
                fwd * 1e3,
                flops / fwd / 1e9,
                bwd * 1e3,
                2.0 * flops / bwd / 1e9
            );
        }
    }
}
