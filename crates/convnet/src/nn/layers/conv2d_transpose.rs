//! `Conv2DTranspose`: the adjoint of a convolution, Keras' kernel `[kh, kw, filters, in]` (the
//! last two axes swapped against `Conv2D`'s).
//!
//! The layer is the input gradient of the convolution `C` that maps its output
//! (`L_h × L_w × filters`) back to its input (`H × W × in`) with the same kernel, strides and
//! padding: that convolution's kernel `[kh, kw, filters, in]` is this layer's, unchanged. So
//! forward `y = act(col2im(x · kᵀ) + b)`, and backward `dz = dy ⊙ act'(z)`, `db = Σ dz`,
//! `cols = im2col(dz)`, `dk = colsᵀ · x`, `dx = cols · k` (the column machinery of
//! [`crate::kernels::conv`] on `C`'s window). The output length is Keras'
//! (`deconv_output_length`): "valid" `(H − 1)·s + k + output_padding` (without it,
//! `(H − 1)·s + max(k, s)`), "same" `(H − 1)·s + k mod 2 + output_padding` (without it, `H·s`);
//! TensorFlow's padding of `C` then follows from `L`, and `C` must map `L` back to `H`.

use super::weights::{weight_option_builders, weighted_layer_plumbing, WeightOptions};
use super::{bias_activation, cfg, shape_str, ForwardCtx, Layer, Meta, Pair, Param};
use crate::error::{Error, Result};
use crate::kernels::conv::{col2im, im2col, Padding, Window};
use crate::kernels::gemm::{gemm, transpose, GemmShape};
use crate::kernels::simd::add_rows;
use crate::nn::activations::Activation;
use crate::parallel::{self, SharedMut};
use crate::rng::Rng;
use crate::tensor::Tensor;
use serde_json::{json, Map, Value};

/// Bytes of a chunk's column buffer that fit a core's L2 cache with room to spare.
const CHUNK_BYTES: usize = 1 << 20;

/// Per-worker column buffer and partial gradients.
#[derive(Default)]
struct Work {
    cols: Vec<f32>,
    dk: Vec<f32>,
    db: Vec<f32>,
}

/// A transposed 2-D convolution layer (Keras' `Conv2DTranspose`).
pub struct Conv2DTranspose {
    meta: Meta,
    filters: usize,
    kernel_size: Pair,
    strides: Pair,
    padding: Padding,
    output_padding: Option<Pair>,
    opts: WeightOptions,
    /// The window of the adjoint convolution (from this layer's output to its input).
    window: Option<Window>,
    out_shape: Vec<usize>,
    params: Vec<Param>,
    fused: bool,
    pre: Vec<f32>,
    /// The kernel transposed (`[in, kh·kw·filters]`) for `x · kᵀ`.
    kernel_t: Vec<f32>,
    work: Vec<Work>,
}

/// Keras' `deconv_output_length` with dilation 1; `None` for an impossible length.
pub fn deconv_output_length(
    input: usize,
    kernel: usize,
    stride: usize,
    padding: Padding,
    output_padding: Option<usize>,
) -> Option<usize> {
    let len = match (padding, output_padding) {
        (Padding::Valid, None) => (input - 1) * stride + kernel.max(stride),
        (Padding::Valid, Some(op)) => (input - 1) * stride + kernel + op,
        (Padding::Same, None) => input * stride,
        (Padding::Same, Some(op)) => (input - 1) * stride + kernel % 2 + op,
    };
    (len > 0).then_some(len)
}

impl Conv2DTranspose {
    /// `filters` output channels from kernels of `kernel_size`, with Keras' defaults: strides
    /// 1, padding "valid", no output_padding, no activation, a bias, glorot_uniform kernel,
    /// zero bias.
    pub fn new(filters: usize, kernel_size: impl Into<Pair>) -> Self {
        Conv2DTranspose {
            meta: Meta::default(),
            filters,
            kernel_size: kernel_size.into(),
            strides: Pair(1, 1),
            padding: Padding::Valid,
            output_padding: None,
            opts: WeightOptions::default(),
            window: None,
            out_shape: Vec::new(),
            params: Vec::new(),
            fused: false,
            pre: Vec::new(),
            kernel_t: Vec::new(),
            work: Vec::new(),
        }
    }

    /// Sets the strides (the upsampling factor).
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

    /// Sets the extra rows and columns at the end of the output (each below its stride).
    pub fn output_padding(mut self, p: impl Into<Pair>) -> Self {
        self.output_padding = Some(p.into());
        self
    }

    weight_option_builders!();

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
        let l = "Conv2DTranspose";
        cfg::channels_last(c, l)?;
        cfg::require_default(c, "dilation_rate", &[json!([1, 1]), json!(1), json!([1])], l)?;
        cfg::require_default(c, "groups", &[json!(1)], l)?;
        let mut layer = Conv2DTranspose::new(cfg::usize_req(c, "filters", l)?, cfg::pair(c, "kernel_size", None, l)?);
        layer.meta = Meta::from_config(c)?;
        layer.strides = cfg::pair(c, "strides", Some(Pair(1, 1)), l)?;
        layer.padding = match c.get("padding").and_then(Value::as_str) {
            Some(p) => Padding::parse(p)?,
            None => Padding::Valid,
        };
        layer.output_padding = match c.get("output_padding") {
            None | Some(Value::Null) => None,
            Some(v) => {
                let bad =
                    || Error::config(format!("{l}: `output_padding` must be null, an integer or a pair, not {v}"));
                let n = |v: &Value| v.as_u64().filter(|&x| x < 1 << 16).map(|x| x as usize).ok_or_else(bad);
                Some(match v {
                    Value::Array(a) if a.len() == 2 => Pair(n(&a[0])?, n(&a[1])?),
                    other => Pair::from(n(other)?),
                })
            }
        };
        layer.opts = WeightOptions::from_config(c)?;
        Ok(layer)
    }

    fn window(&self) -> Window {
        self.window.expect("Conv2DTranspose used before build")
    }

    /// Samples per chunk for a batch of `n`; sizes the workers' column buffers.
    fn plan(&mut self, n: usize) -> usize {
        let w = self.window();
        let per_sample = w.out_pixels() * w.patch_len() * 4;
        let workers = parallel::workers();
        if self.work.len() != workers {
            self.work.resize_with(workers, Work::default);
        }
        let chunk = parallel::chunk_len(n, workers, (CHUNK_BYTES / per_sample.max(1)).max(1));
        for wk in &mut self.work {
            if wk.cols.len() < chunk * w.out_pixels() * w.patch_len() {
                wk.cols.resize(chunk * w.out_pixels() * w.patch_len(), 0.0);
            }
        }
        chunk
    }
}

impl Layer for Conv2DTranspose {
    fn class_name(&self) -> &'static str {
        "Conv2DTranspose"
    }

    fn base_name(&self) -> &'static str {
        "conv2d_transpose"
    }

    fn meta(&self) -> &Meta {
        &self.meta
    }

    fn meta_mut(&mut self) -> &mut Meta {
        &mut self.meta
    }

    fn build(&mut self, input_shape: &[usize], rng: &mut Rng) -> Result<Vec<usize>> {
        let name = &self.meta.name;
        if input_shape.len() != 3 {
            return Err(Error::shape(format!(
                "Conv2DTranspose {name:?} needs input of shape (None, height, width, channels), got {}",
                shape_str(input_shape)
            )));
        }
        let (k, s) = (self.kernel_size, self.strides);
        if self.filters == 0 || k.0 == 0 || k.1 == 0 || s.0 == 0 || s.1 == 0 {
            return Err(Error::config("Conv2DTranspose needs positive filters, kernel_size and strides"));
        }
        if let Some(op) = self.output_padding {
            if op.0 >= s.0 || op.1 >= s.1 {
                return Err(Error::config(format!(
                    "Conv2DTranspose {name:?}: output_padding {:?} must be smaller than the strides {:?}",
                    op.tuple(),
                    s.tuple()
                )));
            }
        }
        let (h, w, c) = (input_shape[0], input_shape[1], input_shape[2]);
        let op = self.output_padding;
        let len = |i: usize, k: usize, s: usize, o: Option<usize>| deconv_output_length(i, k, s, self.padding, o);
        let (Some(lh), Some(lw)) = (len(h, k.0, s.0, op.map(|p| p.0)), len(w, k.1, s.1, op.map(|p| p.1))) else {
            return Err(Error::shape(format!("Conv2DTranspose {name:?}: the output would be empty")));
        };
        let window = Window::new(lh, lw, self.filters, k.tuple(), s.tuple(), self.padding)
            .ok()
            .filter(|win| win.out_h == h && win.out_w == w)
            .ok_or_else(|| {
                Error::shape(format!(
                    "Conv2DTranspose {name:?}: a {}x{} kernel with strides {:?} and padding {:?} cannot map {h}x{w} to {lh}x{lw}",
                    k.0,
                    k.1,
                    s.tuple(),
                    self.padding.name()
                ))
            })?;
        self.params = self.opts.build_params(&[k.0, k.1, self.filters, c], self.filters, name, rng)?;
        self.out_shape = vec![lh, lw, self.filters];
        self.window = Some(window);
        Ok(self.out_shape.clone())
    }

    fn output_shape(&self) -> &[usize] {
        &self.out_shape
    }

    fn forward(&mut self, x: &Tensor, y: &mut Tensor, ctx: &mut ForwardCtx<'_>) {
        let n = x.batch();
        let w = self.window();
        let chunk = self.plan(n);
        let keep = ctx.training && self.opts.activation.needs_input();
        if keep && self.pre.len() < y.len() {
            self.pre.resize(y.len(), 0.0);
        }
        let pres = keep.then(|| SharedMut::new(&mut self.pre[..]));
        let (f, act) = (self.filters, self.opts.activation);
        let (k, ip, c) = (w.patch_len(), w.out_pixels(), x.sample_len() / w.out_pixels().max(1));
        let ol = w.in_len();
        // kᵀ as a plain operand (a transposed one would need the product's per-thread buffer).
        self.kernel_t.resize(k * c, 0.0);
        transpose(&self.params[0].value, k, c, &mut self.kernel_t);
        let kernel_t = &self.kernel_t;
        let bias = self.params.get(1).map(|p| p.value.as_slice());
        let xd = x.data();
        let ys = SharedMut::new(y.data_mut());
        parallel::for_chunks(n, chunk, &mut self.work, |wk, r| {
            let m = r.len() * ip;
            let xc = &xd[r.start * ip * c..r.end * ip * c];
            // SAFETY: chunks are disjoint ranges of samples.
            let yc = unsafe { ys.slice(r.start * ol..r.end * ol) };
            // SAFETY: as above.
            let keep = pres.as_ref().map(|p| unsafe { p.slice(r.start * ol..r.end * ol) });
            let cols = &mut wk.cols[..m * k];
            gemm(GemmShape::nn(m, c, k), xc, kernel_t, cols, false);
            col2im(&w, cols, r.len(), yc);
            bias_activation(yc, bias, act, f, keep);
        });
    }

    fn backward(&mut self, x: &Tensor, y: &Tensor, dy: &mut Tensor, dx: Option<&mut Tensor>) {
        let n = x.batch();
        let w = self.window();
        let chunk = self.plan(n);
        let f = self.filters;
        let (k, ip, c) = (w.patch_len(), w.out_pixels(), x.sample_len() / w.out_pixels().max(1));
        let ol = w.in_len();
        let use_bias = self.opts.use_bias;
        for wk in &mut self.work {
            wk.dk.clear();
            wk.dk.resize(k * c, 0.0);
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
            let m = r.len() * ip;
            let out = r.start * ol..r.end * ol;
            // SAFETY: chunks are disjoint ranges of samples.
            let dz = unsafe { dys.slice(out.clone()) };
            act.backward(pre.map(|p| &p[out.clone()]), &yd[out], dz, f);
            if use_bias {
                add_rows(&mut wk.db, dz);
            }
            let cols = &mut wk.cols[..m * k];
            im2col(&w, dz, r.len(), cols);
            let xc = &xd[r.start * ip * c..r.end * ip * c];
            gemm(GemmShape::tn(k, m, c), cols, xc, &mut wk.dk, true);
            if let Some(dxs) = &dxs {
                // SAFETY: disjoint sample ranges.
                let dxc = unsafe { dxs.slice(r.start * ip * c..r.end * ip * c) };
                gemm(GemmShape::nn(m, k, c), cols, kernel, dxc, false);
            }
        });
        let (first, rest) = self.work.split_first_mut().expect("at least one worker");
        for wk in rest.iter() {
            for (a, v) in first.dk.iter_mut().zip(&wk.dk) {
                *a += v;
            }
            for (a, v) in first.db.iter_mut().zip(&wk.db) {
                *a += v;
            }
        }
        self.params[0].grad.copy_from_slice(&first.dk);
        if use_bias {
            self.params[1].grad.copy_from_slice(&first.db);
        }
    }

    weighted_layer_plumbing!();

    fn config(&self) -> Map<String, Value> {
        let mut m = self.meta.config();
        m.insert("filters".into(), json!(self.filters));
        m.insert("kernel_size".into(), self.kernel_size.to_json());
        m.insert("strides".into(), self.strides.to_json());
        m.insert("padding".into(), json!(self.padding.name()));
        m.insert("output_padding".into(), self.output_padding.map_or(Value::Null, Pair::to_json));
        m.insert("data_format".into(), json!("channels_last"));
        m.insert("dilation_rate".into(), json!([1, 1]));
        self.opts.write_config(&mut m);
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::initializers::Initializer;
    use crate::nn::layers::gradcheck::check_layer;

    #[test]
    fn output_shapes_follow_keras() {
        let mut rng = Rng::new(0);
        let cases = [
            (Conv2DTranspose::new(2, 3), [4, 5, 3], vec![6, 7, 2]),
            (Conv2DTranspose::new(2, 3).strides(2), [4, 5, 3], vec![9, 11, 2]),
            (Conv2DTranspose::new(2, 2).strides(3), [4, 5, 1], vec![12, 15, 2]),
            (Conv2DTranspose::new(2, 3).strides(2).padding(Padding::Same), [4, 5, 3], vec![8, 10, 2]),
            (Conv2DTranspose::new(2, 3).strides(2).padding(Padding::Same).output_padding(1), [4, 5, 3], vec![8, 10, 2]),
            (Conv2DTranspose::new(2, 3).strides(2).padding(Padding::Same).output_padding(0), [4, 5, 3], vec![7, 9, 2]),
            (Conv2DTranspose::new(2, 3).strides(2).output_padding((1, 0)), [4, 5, 3], vec![10, 11, 2]),
            (Conv2DTranspose::new(2, 4).strides(2).padding(Padding::Same), [4, 5, 3], vec![8, 10, 2]),
        ];
        for (mut layer, input, want) in cases {
            assert_eq!(layer.build(&input, &mut rng).unwrap(), want);
            assert_eq!(layer.params()[0].shape, vec![layer.kernel_size.0, layer.kernel_size.1, 2, input[2]]);
        }
        assert!(Conv2DTranspose::new(2, 3).strides(2).output_padding(2).build(&[4, 4, 1], &mut rng).is_err());
    }

    /// The forward pass is the adjoint of the convolution with the same kernel:
    /// `⟨T(x), u⟩ = ⟨x, C(u)⟩` for every `x` and `u`.
    #[test]
    fn forward_is_the_adjoint_of_the_convolution() {
        use crate::kernels::conv::conv2d_naive;
        use crate::kernels::testing::random_vec;
        let mut rng = Rng::new(5);
        for (layer, input) in [
            (Conv2DTranspose::new(3, 3).strides(2).padding(Padding::Same).output_padding(1), [4, 3, 2]),
            (Conv2DTranspose::new(2, (2, 3)).strides((2, 1)), [3, 4, 3]),
            (Conv2DTranspose::new(2, 3).strides(2).padding(Padding::Same), [5, 4, 1]),
        ] {
            let mut l = layer.use_bias(false);
            let out = l.build(&input, &mut rng).unwrap();
            let n = 2;
            let x = Tensor::from_vec(
                &[n, input[0], input[1], input[2]],
                random_vec(&mut rng, n * input.iter().product::<usize>()),
            )
            .unwrap();
            let mut y = Tensor::zeros(&[n, out[0], out[1], out[2]]);
            l.forward(&x, &mut y, &mut ForwardCtx { training: false, rng: &mut rng });
            let u = random_vec(&mut rng, y.len());
            let cu = conv2d_naive(&l.window(), &u, n, &l.params()[0].value, None, input[2]);
            let lhs: f64 = y.data().iter().zip(&u).map(|(a, b)| (a * b) as f64).sum();
            let rhs: f64 = x.data().iter().zip(&cu).map(|(a, b)| (a * b) as f64).sum();
            assert!((lhs - rhs).abs() < 1e-3 * (1.0 + rhs.abs()), "{lhs} vs {rhs}");
        }
    }

    #[test]
    fn gradients_match_finite_differences() {
        let init = Initializer::RandomNormal { mean: 0.0, stddev: 0.3 };
        for (i, (layer, input)) in [
            (Conv2DTranspose::new(3, 3).activation(Activation::Tanh), [4, 3, 2]),
            (Conv2DTranspose::new(2, 3).strides(2).padding(Padding::Same).output_padding(1), [3, 4, 3]),
            (Conv2DTranspose::new(2, (2, 3)).strides((2, 3)).activation(Activation::Sigmoid), [3, 3, 2]),
            (Conv2DTranspose::new(4, 4).strides(2).padding(Padding::Same).use_bias(false), [3, 3, 3]),
        ]
        .into_iter()
        .enumerate()
        {
            let mut layer = layer.bias_initializer(init.clone());
            check_layer(&mut layer, &input, 3, 1000 + i as u64, 2e-2);
        }
    }

    #[test]
    fn config_round_trip() {
        let l = Conv2DTranspose::new(4, 3).strides(2).padding(Padding::Same).output_padding((1, 0)).name("t");
        let c = l.config();
        assert_eq!(c["output_padding"], json!([1, 0]));
        assert_eq!(Conv2DTranspose::from_config(&c).unwrap().config(), c);
        let c = Conv2DTranspose::new(4, 3).config();
        assert_eq!(c["output_padding"], Value::Null);
        assert_eq!(Conv2DTranspose::from_config(&c).unwrap().config(), c);
    }
}
