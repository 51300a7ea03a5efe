//! `Conv2D`: 2-D convolution over NHWC input with a `[kh, kw, in, filters]` kernel.
//!
//! The products are those of im2col + GEMM: forward `y = cols · kernel + bias`, then the
//! activation; backward `dz = dy ⊙ act'(z)`, `dbias = Σ dz`, `dkernel = colsᵀ · dz`,
//! `dx = col2im(dz · kernelᵀ)`. The derivative is taken from `y` where the activation allows
//! it; for the others (GELU, SiLU, …) the layer keeps the pre-activation `z` of its training
//! pass in a buffer of its own. Three ways to compute them, chosen per layer (see [`Path`]):
//! AVX-512 implicit GEMM (no column matrix at all), the direct kernels for few input
//! channels, or im2col with the GEMM crate. Work is split into batch chunks sized to stay in
//! cache and spread over the worker threads; each worker keeps its own buffers and partial
//! weight gradients, summed in worker order so results are reproducible.
//!
//! With `dilation_rate` or `groups` (Keras' kernel `[kh, kw, in/groups, filters]`) the layer
//! takes a fourth way of its own: per group, columns of the group's input channels at
//! the dilated taps ([`crate::kernels::dilated`]) times the group's slice of the kernel,
//! packed contiguous once per pass. The three fast paths above serve the plain convolution
//! only and are not touched by it.

use super::weights::{weight_option_builders, weighted_layer_plumbing, WeightOptions};
use super::{bias_activation, cfg, shape_str, ForwardCtx, Layer, Meta, Pair, Param};
use crate::error::{Error, Result};
use crate::kernels::conv::{col2im, im2col, Padding, Window};
use crate::kernels::dilated::{col2im_group_add, im2col_group, Dilated};
use crate::kernels::direct::{self, DirectScratch};
use crate::kernels::gemm::{gemm, transpose, GemmShape};
use crate::kernels::implicit::{self, ImplicitScratch, PreparedKernel};
use crate::kernels::simd::add_rows;
use crate::nn::activations::Activation;
use crate::parallel::{self, SharedMut};
use crate::rng::Rng;
use crate::tensor::Tensor;
use serde_json::{json, Map, Value};

/// Bytes of a chunk's working set (im2col buffer, or input and output gradient) that fit a
/// core's L2 cache with room to spare.
const CHUNK_BYTES: usize = 1 << 20;

/// How a layer computes its products.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Path {
    /// AVX-512 implicit GEMM straight from the NHWC input; input gradient too when stride 1.
    Implicit,
    /// Direct loops for few input channels (first layers) without AVX-512.
    Direct,
    /// im2col and the GEMM crate.
    Gemm,
}

impl Path {
    fn for_window(w: &Window) -> Path {
        if implicit::available() {
            Path::Implicit
        } else if direct::suits(w) {
            Path::Direct
        } else {
            Path::Gemm
        }
    }

    /// Whether the input gradient goes through the im2col buffer: always off the implicit
    /// path, and on it for strided windows, for fewer than 16 input channels (a vector of
    /// channels would be mostly empty) and for 1×1 outputs (a plain matrix product).
    fn dx_via_cols(self, w: &Window) -> bool {
        self != Path::Implicit || w.sh != 1 || w.sw != 1 || w.channels < 16 || w.out_pixels() == 1
    }
}

/// Per-worker buffers: im2col columns (reused for their gradient), partial weight gradients,
/// and the scratch of the direct and implicit kernels.
#[derive(Default)]
struct Work {
    cols: Vec<f32>,
    /// The worker's share of the kernel gradient: the kernel's layout, or on the implicit path
    /// the accumulator of [`implicit::grad_len`] values (the Winograd domain for 3×3 layers).
    dkernel: Vec<f32>,
    dbias: Vec<f32>,
    direct: DirectScratch,
    implicit: ImplicitScratch,
    /// One group's outputs or output gradient, contiguous (grouped path).
    group: Vec<f32>,
}

/// A 2-D convolution layer (Keras' `Conv2D`).
pub struct Conv2D {
    meta: Meta,
    filters: usize,
    kernel_size: Pair,
    strides: Pair,
    padding: Padding,
    dilation_rate: Pair,
    groups: usize,
    opts: WeightOptions,
    window: Option<Window>,
    /// The geometry of a dilated or grouped layer (then `window` is unused).
    grouped: Option<Dilated>,
    /// The kernel of the grouped path, group by group (`[groups, kh·kw·in/groups, filters/groups]`).
    packed: Vec<f32>,
    out_shape: Vec<usize>,
    params: Vec<Param>,
    fused: bool,
    /// The pre-activation of the last training pass, for activations that need it in the
    /// backward pass (sized on first use, then reused).
    pre: Vec<f32>,
    work: Vec<Work>,
    /// The kernel transposed (`[filters, kh·kw·c]`), for the column path's `dz · kernelᵀ`.
    kernel_t: Vec<f32>,
    /// The kernel in the layouts the implicit path reads, shared by the workers.
    prepared: PreparedKernel,
}

impl Conv2D {
    /// `filters` kernels of `kernel_size`, with Keras' defaults: strides 1, padding "valid",
    /// no activation, a bias, glorot_uniform kernel and zero bias.
    pub fn new(filters: usize, kernel_size: impl Into<Pair>) -> Self {
        Conv2D {
            meta: Meta::default(),
            filters,
            kernel_size: kernel_size.into(),
            strides: Pair(1, 1),
            padding: Padding::Valid,
            dilation_rate: Pair(1, 1),
            groups: 1,
            opts: WeightOptions::default(),
            window: None,
            grouped: None,
            packed: Vec::new(),
            out_shape: Vec::new(),
            params: Vec::new(),
            fused: false,
            pre: Vec::new(),
            work: Vec::new(),
            kernel_t: Vec::new(),
            prepared: PreparedKernel::default(),
        }
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

    /// Sets the dilation rate (Keras' `dilation_rate`): taps this many pixels apart.
    pub fn dilation_rate(mut self, d: impl Into<Pair>) -> Self {
        self.dilation_rate = d.into();
        self
    }

    /// Splits the input channels and the filters into `groups` independent convolutions
    /// (Keras' `groups`; both counts must divide by it).
    pub fn groups(mut self, groups: usize) -> Self {
        self.groups = groups;
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

    /// Reads Keras' config.
    pub fn from_config(c: &Map<String, Value>) -> Result<Self> {
        let l = "Conv2D";
        cfg::channels_last(c, l)?;
        let mut layer = Conv2D::new(cfg::usize_req(c, "filters", l)?, cfg::pair(c, "kernel_size", None, l)?);
        layer.meta = Meta::from_config(c)?;
        layer.strides = cfg::pair(c, "strides", Some(Pair(1, 1)), l)?;
        layer.dilation_rate = cfg::pair(c, "dilation_rate", Some(Pair(1, 1)), l)?;
        layer.groups = match c.get("groups") {
            None | Some(Value::Null) => 1,
            Some(_) => cfg::usize_req(c, "groups", l)?,
        };
        layer.padding = match c.get("padding").and_then(Value::as_str) {
            Some(p) => Padding::parse(p)?,
            None => Padding::Valid,
        };
        layer.opts = WeightOptions::from_config(c)?;
        Ok(layer)
    }

    fn window(&self) -> &Window {
        self.window.as_ref().expect("Conv2D used before build")
    }

    /// Samples per chunk for a batch of `n`; sizes the workers' column buffers when `cols`.
    fn plan(&mut self, n: usize, cols: bool) -> usize {
        let w = *self.window();
        let per_sample =
            if cols { w.out_pixels() * w.patch_len() * 4 } else { (w.in_len() + w.out_pixels() * self.filters) * 4 };
        let workers = parallel::workers();
        let chunk = parallel::chunk_len(n, workers, (CHUNK_BYTES / per_sample.max(1)).max(1));
        if self.work.len() != workers {
            self.work.resize_with(workers, Work::default);
        }
        if cols {
            let cols_len = chunk * w.out_pixels() * w.patch_len();
            for wk in &mut self.work {
                if wk.cols.len() < cols_len {
                    wk.cols.resize(cols_len, 0.0);
                }
            }
        }
        chunk
    }

    /// `build` for a dilated or grouped layer.
    fn build_grouped(&mut self, input_shape: &[usize], rng: &mut Rng) -> Result<Vec<usize>> {
        let (c, f, groups) = (input_shape[2], self.filters, self.groups);
        if groups == 0 || c % groups != 0 || f % groups != 0 {
            return Err(Error::config(format!(
                "Conv2D {:?}: the input channels ({c}) and the filters ({f}) must both divide by groups ({groups})",
                self.meta.name
            )));
        }
        let g = Dilated::new(
            input_shape[0],
            input_shape[1],
            c,
            self.kernel_size.tuple(),
            self.strides.tuple(),
            self.dilation_rate.tuple(),
            self.padding,
        )
        .map_err(|e| Error::shape(format!("Conv2D {:?}: {e}", self.meta.name)))?;
        let kshape = [g.kh, g.kw, c / groups, f];
        self.params = self.opts.build_params(&kshape, f, &self.meta.name, rng)?;
        self.out_shape = vec![g.out_h, g.out_w, f];
        self.window = None;
        self.grouped = Some(g);
        self.packed = vec![0.0; g.taps() * (c / groups) * f];
        for wk in &mut self.work {
            wk.dkernel.clear();
            wk.dbias.clear();
        }
        Ok(self.out_shape.clone())
    }

    /// Samples per chunk on the grouped path; sizes the workers' buffers (one group's columns
    /// and outputs).
    fn plan_grouped(&mut self, n: usize) -> usize {
        let g = self.grouped.expect("grouped geometry");
        let (kl, fg) = (g.taps() * g.channels / self.groups, self.filters / self.groups);
        let per_sample = g.out_pixels() * (kl + fg) * 4;
        let workers = parallel::workers();
        let chunk = parallel::chunk_len(n, workers, (CHUNK_BYTES / per_sample.max(1)).max(1));
        if self.work.len() != workers {
            self.work.resize_with(workers, Work::default);
        }
        let rows = chunk * g.out_pixels();
        for wk in &mut self.work {
            if wk.cols.len() < rows * kl {
                wk.cols.resize(rows * kl, 0.0);
            }
            if self.groups > 1 && wk.group.len() < rows * fg {
                wk.group.resize(rows * fg, 0.0);
            }
        }
        chunk
    }

    /// Packs the kernel `[taps·cg, filters]` group by group into `packed` (`[groups, taps·cg, fg]`).
    fn pack_kernel(&mut self) {
        let (f, groups) = (self.filters, self.groups);
        let fg = f / groups;
        let kernel = &self.params[0].value;
        let kl = kernel.len() / f;
        for gi in 0..groups {
            for r in 0..kl {
                let dst = (gi * kl + r) * fg;
                self.packed[dst..dst + fg].copy_from_slice(&kernel[r * f + gi * fg..r * f + (gi + 1) * fg]);
            }
        }
    }

    fn forward_grouped(&mut self, x: &Tensor, y: &mut Tensor, ctx: &mut ForwardCtx<'_>) {
        let n = x.batch();
        let g = self.grouped.expect("grouped geometry");
        let chunk = self.plan_grouped(n);
        let keep = ctx.training && self.opts.activation.needs_input();
        if keep && self.pre.len() < y.len() {
            self.pre.resize(y.len(), 0.0);
        }
        if self.groups > 1 {
            self.pack_kernel();
        }
        let pres = keep.then(|| SharedMut::new(&mut self.pre[..]));
        let (f, groups, op) = (self.filters, self.groups, g.out_pixels());
        let (cg, fg) = (g.channels / groups, f / groups);
        let kl = g.taps() * cg;
        let kernel = if groups > 1 { &self.packed[..] } else { &self.params[0].value[..] };
        let bias = self.params.get(1).map(|p| p.value.as_slice());
        let act = self.opts.activation;
        let xd = x.data();
        let ys = SharedMut::new(y.data_mut());
        parallel::for_chunks(n, chunk, &mut self.work, |wk, r| {
            let m = r.len() * op;
            let xc = &xd[r.start * g.in_len()..r.end * g.in_len()];
            // SAFETY: chunks are disjoint ranges of samples.
            let yc = unsafe { ys.slice(r.start * op * f..r.end * op * f) };
            // SAFETY: as above.
            let keep = pres.as_ref().map(|p| unsafe { p.slice(r.start * op * f..r.end * op * f) });
            let cols = &mut wk.cols[..m * kl];
            for gi in 0..groups {
                im2col_group(&g, xc, r.len(), gi * cg, cg, cols);
                let kg = &kernel[gi * kl * fg..(gi + 1) * kl * fg];
                if groups == 1 {
                    gemm(GemmShape::nn(m, kl, f), cols, kg, yc, false);
                } else {
                    let out = &mut wk.group[..m * fg];
                    gemm(GemmShape::nn(m, kl, fg), cols, kg, out, false);
                    for (row, o) in yc.chunks_exact_mut(f).zip(out.chunks_exact(fg)) {
                        row[gi * fg..(gi + 1) * fg].copy_from_slice(o);
                    }
                }
            }
            bias_activation(yc, bias, act, f, keep);
        });
    }

    fn backward_grouped(&mut self, x: &Tensor, y: &Tensor, dy: &mut Tensor, dx: Option<&mut Tensor>) {
        let n = x.batch();
        let g = self.grouped.expect("grouped geometry");
        let chunk = self.plan_grouped(n);
        let (f, groups, op) = (self.filters, self.groups, g.out_pixels());
        let (cg, fg) = (g.channels / groups, f / groups);
        let kl = g.taps() * cg;
        let use_bias = self.opts.use_bias;
        for wk in &mut self.work {
            wk.dkernel.clear();
            wk.dkernel.resize(kl * f, 0.0);
            wk.dbias.clear();
            wk.dbias.resize(f, 0.0);
        }
        if groups > 1 {
            self.pack_kernel();
        }
        // Each group's kernel transposed (`[fg, kl]`), so the input gradient is a plain product
        // (a transposed operand would need the product's per-thread buffer).
        let kernel = if groups > 1 { &self.packed[..] } else { &self.params[0].value[..] };
        if dx.is_some() {
            self.kernel_t.resize(kl * f, 0.0);
            for gi in 0..groups {
                let part = gi * kl * fg..(gi + 1) * kl * fg;
                transpose(&kernel[part.clone()], kl, fg, &mut self.kernel_t[part]);
            }
        }
        let kernel_t = &self.kernel_t;
        let act = if self.fused { Activation::Linear } else { self.opts.activation };
        let (xd, yd) = (x.data(), y.data());
        let pre = act.needs_input().then(|| &self.pre[..yd.len()]);
        let dys = SharedMut::new(dy.data_mut());
        let dxs = dx.map(|t| SharedMut::new(t.data_mut()));
        parallel::for_chunks(n, chunk, &mut self.work, |wk, r| {
            let m = r.len() * op;
            let out = r.start * op * f..r.end * op * f;
            // SAFETY: chunks are disjoint ranges of samples.
            let dz = unsafe { dys.slice(out.clone()) };
            act.backward(pre.map(|p| &p[out.clone()]), &yd[out], dz, f);
            if use_bias {
                add_rows(&mut wk.dbias, dz);
            }
            let xc = &xd[r.start * g.in_len()..r.end * g.in_len()];
            // SAFETY: disjoint sample ranges.
            let mut dxc = dxs.as_ref().map(|d| unsafe { d.slice(r.start * g.in_len()..r.end * g.in_len()) });
            if let Some(d) = dxc.as_deref_mut() {
                d.fill(0.0);
            }
            let cols = &mut wk.cols[..m * kl];
            for gi in 0..groups {
                let dzg: &[f32] = if groups == 1 {
                    dz
                } else {
                    let buf = &mut wk.group[..m * fg];
                    for (o, row) in buf.chunks_exact_mut(fg).zip(dz.chunks_exact(f)) {
                        o.copy_from_slice(&row[gi * fg..(gi + 1) * fg]);
                    }
                    buf
                };
                im2col_group(&g, xc, r.len(), gi * cg, cg, cols);
                let dk = &mut wk.dkernel[gi * kl * fg..(gi + 1) * kl * fg];
                gemm(GemmShape::tn(kl, m, fg), cols, dzg, dk, true);
                if let Some(d) = dxc.as_deref_mut() {
                    gemm(GemmShape::nn(m, fg, kl), dzg, &kernel_t[gi * kl * fg..(gi + 1) * kl * fg], cols, false);
                    col2im_group_add(&g, cols, r.len(), gi * cg, cg, d);
                }
            }
        });
        let (first, rest) = self.work.split_first_mut().expect("at least one worker");
        for wk in rest.iter() {
            for (a, v) in first.dkernel.iter_mut().zip(&wk.dkernel) {
                *a += v;
            }
            for (a, v) in first.dbias.iter_mut().zip(&wk.dbias) {
                *a += v;
            }
        }
        let gk = &mut self.params[0].grad;
        for gi in 0..groups {
            for r in 0..kl {
                let src = (gi * kl + r) * fg;
                gk[r * f + gi * fg..r * f + (gi + 1) * fg].copy_from_slice(&first.dkernel[src..src + fg]);
            }
        }
        if use_bias {
            self.params[1].grad.copy_from_slice(&first.dbias);
        }
    }
}

impl Layer for Conv2D {
    fn class_name(&self) -> &'static str {
        "Conv2D"
    }

    fn base_name(&self) -> &'static str {
        "conv2d"
    }

    fn meta(&self) -> &Meta {
        &self.meta
    }

    fn meta_mut(&mut self) -> &mut Meta {
        &mut self.meta
    }

    fn build(&mut self, input_shape: &[usize], rng: &mut Rng) -> Result<Vec<usize>> {
        if input_shape.len() != 3 {
            return Err(Error::shape(format!(
                "Conv2D {:?} needs input of shape (None, height, width, channels), got {}",
                self.meta.name,
                shape_str(input_shape)
            )));
        }
        if self.filters == 0 {
            return Err(Error::config("Conv2D needs at least one filter"));
        }
        if self.groups != 1 || self.dilation_rate != Pair(1, 1) {
            return self.build_grouped(input_shape, rng);
        }
        self.grouped = None;
        let w = Window::new(
            input_shape[0],
            input_shape[1],
            input_shape[2],
            self.kernel_size.tuple(),
            self.strides.tuple(),
            self.padding,
        )
        .map_err(|e| Error::shape(format!("Conv2D {:?}: {e}", self.meta.name)))?;
        let kshape = [w.kh, w.kw, w.channels, self.filters];
        self.params = self.opts.build_params(&kshape, self.filters, &self.meta.name, rng)?;
        self.out_shape = vec![w.out_h, w.out_w, self.filters];
        self.window = Some(w);
        for wk in &mut self.work {
            wk.dkernel.clear();
            wk.dbias.clear();
        }
        Ok(self.out_shape.clone())
    }

    fn output_shape(&self) -> &[usize] {
        &self.out_shape
    }

    fn forward(&mut self, x: &Tensor, y: &mut Tensor, ctx: &mut ForwardCtx<'_>) {
        if self.grouped.is_some() {
            return self.forward_grouped(x, y, ctx);
        }
        let n = x.batch();
        let w = *self.window();
        let path = Path::for_window(&w);
        let chunk = self.plan(n, path == Path::Gemm);
        let keep = ctx.training && self.opts.activation.needs_input();
        if keep && self.pre.len() < y.len() {
            self.pre.resize(y.len(), 0.0);
        }
        let pres = keep.then(|| SharedMut::new(&mut self.pre[..]));
        let (f, k, op) = (self.filters, w.patch_len(), w.out_pixels());
        let kernel = &self.params[0].value;
        if path == Path::Implicit {
            self.prepared.for_forward(&w, kernel, f);
        }
        let prepared = &self.prepared;
        let bias = self.params.get(1).map(|p| p.value.as_slice());
        let act = self.opts.activation;
        let xd = x.data();
        let ys = SharedMut::new(y.data_mut());
        parallel::for_chunks(n, chunk, &mut self.work, |wk, r| {
            let cn = r.len();
            let xc = &xd[r.start * w.in_len()..r.end * w.in_len()];
            // SAFETY: chunks are disjoint ranges of samples.
            let yc = unsafe { ys.slice(r.start * op * f..r.end * op * f) };
            // SAFETY: as above.
            let keep = pres.as_ref().map(|p| unsafe { p.slice(r.start * op * f..r.end * op * f) });
            match path {
                Path::Implicit => {
                    let relu = act == Activation::Relu;
                    implicit::forward(&w, xc, cn, kernel, prepared, bias, f, relu, yc, &mut wk.implicit);
                    if !relu {
                        bias_activation(yc, None, act, f, keep);
                    }
                }
                Path::Direct => {
                    direct::conv_forward(&w, xc, cn, kernel, bias, f, yc, &mut wk.direct);
                    bias_activation(yc, None, act, f, keep);
                }
                Path::Gemm => {
                    let cols = &mut wk.cols[..cn * op * k];
                    im2col(&w, xc, cn, cols);
                    gemm(GemmShape::nn(cn * op, k, f), cols, kernel, yc, false);
                    bias_activation(yc, bias, act, f, keep);
                }
            }
        });
    }

    fn backward(&mut self, x: &Tensor, y: &Tensor, dy: &mut Tensor, dx: Option<&mut Tensor>) {
        if self.grouped.is_some() {
            return self.backward_grouped(x, y, dy, dx);
        }
        let n = x.batch();
        let w = *self.window();
        let path = Path::for_window(&w);
        let cols_dx = dx.is_some() && path.dx_via_cols(&w);
        let chunk = self.plan(n, path == Path::Gemm || cols_dx);
        let (f, k, op) = (self.filters, w.patch_len(), w.out_pixels());
        let use_bias = self.opts.use_bias;
        let acc_len = if path == Path::Implicit { implicit::grad_len(&w, f) } else { k * f };
        for wk in &mut self.work {
            wk.dkernel.clear();
            wk.dkernel.resize(acc_len, 0.0);
            wk.dbias.clear();
            wk.dbias.resize(f, 0.0);
        }
        if cols_dx {
            self.kernel_t.resize(k * f, 0.0);
            transpose(&self.params[0].value, k, f, &mut self.kernel_t);
        }
        if dx.is_some() && !cols_dx {
            self.prepared.for_backward(&w, &self.params[0].value, f);
        }
        let prepared = &self.prepared;
        let kernel_t = &self.kernel_t;
        let act = if self.fused { Activation::Linear } else { self.opts.activation };
        let (xd, yd) = (x.data(), y.data());
        let pre = act.needs_input().then(|| &self.pre[..yd.len()]);
        let dys = SharedMut::new(dy.data_mut());
        let dxs = dx.map(|t| SharedMut::new(t.data_mut()));
        parallel::for_chunks(n, chunk, &mut self.work, |wk, r| {
            let cn = r.len();
            let m = cn * op;
            let out = r.start * op * f..r.end * op * f;
            // SAFETY: chunks are disjoint ranges of samples.
            let dz = unsafe { dys.slice(out.clone()) };
            let yc = &yd[out.clone()];
            let zc = pre.map(|p| &p[out]);
            let xc = &xd[r.start * w.in_len()..r.end * w.in_len()];
            if let (Some(dxs), false) = (&dxs, cols_dx) {
                // The input-gradient pass finishes dz row by row (activation derivative, bias
                // sum) as it copies it, before the weight gradient reads it.
                // SAFETY: disjoint sample ranges.
                let dxc = unsafe { dxs.slice(r.start * w.in_len()..r.end * w.in_len()) };
                let row_len = w.out_w * f;
                let dbias = &mut wk.dbias;
                let mut prep = |row: usize, dzr: &mut [f32]| {
                    let rows = row * row_len..(row + 1) * row_len;
                    act.backward(zc.map(|z| &z[rows.clone()]), &yc[rows], dzr, f);
                    if use_bias {
                        add_rows(dbias, dzr);
                    }
                };
                implicit::backward_data(&w, dz, cn, prepared, f, dxc, &mut wk.implicit, &mut prep);
            } else {
                act.backward(zc, yc, dz, f);
                if use_bias && path != Path::Direct {
                    add_rows(&mut wk.dbias, dz);
                }
            }
            match path {
                Path::Implicit => implicit::weight_grad(&w, xc, cn, dz, f, &mut wk.dkernel, &mut wk.implicit),
                Path::Direct => {
                    let db = if use_bias { Some(wk.dbias.as_mut_slice()) } else { None };
                    direct::conv_weight_grad(&w, xc, cn, dz, f, &mut wk.dkernel, db, &mut wk.direct);
                }
                Path::Gemm => {
                    im2col(&w, xc, cn, &mut wk.cols[..m * k]);
                    gemm(GemmShape::tn(k, m, f), &wk.cols[..m * k], dz, &mut wk.dkernel, true);
                }
            }
            if let (Some(dxs), true) = (&dxs, cols_dx) {
                // SAFETY: disjoint sample ranges.
                let dxc = unsafe { dxs.slice(r.start * w.in_len()..r.end * w.in_len()) };
                // The columns are no longer needed: reuse them for their gradient.
                let cols = &mut wk.cols[..m * k];
                gemm(GemmShape::nn(m, f, k), dz, kernel_t, cols, false);
                col2im(&w, cols, cn, dxc);
            }
        });
        let (first, rest) = self.work.split_first_mut().expect("at least one worker");
        for wk in rest.iter() {
            for (g, v) in first.dkernel.iter_mut().zip(&wk.dkernel) {
                *g += v;
            }
        }
        let gk = &mut self.params[0].grad;
        if path == Path::Implicit {
            implicit::finish_weight_grad(&w, f, &first.dkernel, gk);
        } else {
            gk.copy_from_slice(&first.dkernel);
        }
        if use_bias {
            let gb = &mut self.params[1].grad;
            gb.copy_from_slice(&first.dbias);
            for wk in rest {
                for (g, v) in gb.iter_mut().zip(&wk.dbias) {
                    *g += v;
                }
            }
        }
    }

    weighted_layer_plumbing!();

    fn config(&self) -> Map<String, Value> {
        let mut m = self.meta.config();
        m.insert("filters".into(), json!(self.filters));
        m.insert("kernel_size".into(), self.kernel_size.to_json());
        m.insert("strides".into(), self.strides.to_json());
        m.insert("padding".into(), json!(self.padding.name()));
        m.insert("data_format".into(), json!("channels_last"));
        m.insert("dilation_rate".into(), self.dilation_rate.to_json());
        m.insert("groups".into(), json!(self.groups));
        self.opts.write_config(&mut m);
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::initializers::Initializer;
    use crate::nn::layers::activation::tests::Scaled;
    use crate::nn::layers::gradcheck::{check_layer, check_layer_piecewise};

    #[test]
    fn output_shapes_follow_keras() {
        let mut rng = Rng::new(0);
        let cases = [
            (Conv2D::new(6, 5).padding(Padding::Same), [28, 28, 1], vec![28, 28, 6]),
            (Conv2D::new(16, 5), [14, 14, 6], vec![10, 10, 16]),
            (Conv2D::new(4, 3).strides(2), [7, 7, 3], vec![3, 3, 4]),
            (Conv2D::new(4, 3).strides(2).padding(Padding::Same), [7, 7, 3], vec![4, 4, 4]),
            (Conv2D::new(2, (2, 4)).strides((3, 1)).padding(Padding::Same), [8, 5, 1], vec![3, 5, 2]),
        ];
        for (mut layer, input, want) in cases {
            assert_eq!(layer.build(&input, &mut rng).unwrap(), want);
        }
        assert!(Conv2D::new(1, 5).build(&[3, 3, 1], &mut rng).is_err());
        assert!(Conv2D::new(1, 3).build(&[9, 9], &mut rng).is_err());
    }

    #[test]
    fn lenet_parameter_counts() {
        let mut rng = Rng::new(0);
        let mut c = Conv2D::new(6, 5).padding(Padding::Same);
        c.build(&[28, 28, 1], &mut rng).unwrap();
        assert_eq!(c.count_params(), 156);
        let mut c = Conv2D::new(16, 5);
        c.build(&[14, 14, 6], &mut rng).unwrap();
        assert_eq!(c.count_params(), 2416);
    }

    #[test]
    fn gradients_match_finite_differences() {
        for (i, (layer, input)) in [
            (Conv2D::new(3, 3).activation(Activation::Tanh), [6, 5, 2]),
            (Conv2D::new(2, (2, 3)).strides(2).padding(Padding::Same).activation(Activation::Sigmoid), [7, 6, 3]),
            (Conv2D::new(4, 3).strides((1, 3)).padding(Padding::Same), [5, 7, 1]),
            (Conv2D::new(2, 4).padding(Padding::Same).use_bias(false), [6, 6, 2]),
            (Conv2D::new(3, 2).activation(Activation::Relu), [5, 5, 2]),
            // 3×3, stride 1, ≥ 16 channels in and out: the Winograd path where AVX-512 runs it.
            (Conv2D::new(17, 3).padding(Padding::Same).activation(Activation::Tanh), [5, 7, 16]),
            (Conv2D::new(16, 3).activation(Activation::Sigmoid), [6, 5, 20]),
        ]
        .into_iter()
        .enumerate()
        {
            let mut layer = layer.bias_initializer(Initializer::RandomNormal { mean: 0.0, stddev: 0.3 });
            check_layer(&mut layer, &input, 3, 100 + i as u64, 2e-2);
        }
    }

    #[test]
    fn every_activation_has_matching_gradients() {
        // Each activation on each path the processor offers: few channels (direct or
        // column path) and 16 channels (implicit path where AVX-512 runs it, by rows in
        // the input-gradient pass). Inputs are scaled so that the pre-activations reach
        // every piece of the piecewise functions.
        let all = Activation::all().map(|(_, a)| a).chain(crate::nn::layers::activation::tests::with_arguments());
        for (i, a) in all.enumerate() {
            let init = Initializer::RandomNormal { mean: 0.0, stddev: 0.5 };
            let l = Conv2D::new(3, 2).activation(a).bias_initializer(init.clone());
            check_layer_piecewise(&mut Scaled(l, 3.0, a.name()), &[4, 4, 2], 2, 400 + i as u64, 2e-2);
            let l = Conv2D::new(5, 3).padding(Padding::Same).activation(a).bias_initializer(init);
            check_layer_piecewise(&mut Scaled(l, 2.0, a.name()), &[3, 4, 16], 2, 450 + i as u64, 2e-2);
        }
    }

    #[test]
    fn config_round_trip() {
        let l = Conv2D::new(8, (3, 5))
            .strides(2)
            .padding(Padding::Same)
            .activation(Activation::Relu)
            .kernel_initializer(Initializer::HeNormal)
            .kernel_regularizer(crate::nn::regularizers::l2(0.01))
            .name("c1")
            .input_shape([32, 32, 3]);
        let c = l.config();
        let l2 = Conv2D::from_config(&c).unwrap();
        assert_eq!(l2.config(), c);
        let mut bad = c.clone();
        bad.insert("data_format".into(), json!("channels_first"));
        assert!(Conv2D::from_config(&bad).is_err());
        let l = Conv2D::new(4, 3).dilation_rate((2, 3)).groups(2).name("c2");
        let c = l.config();
        assert_eq!((c["dilation_rate"].clone(), c["groups"].clone()), (json!([2, 3]), json!(2)));
        assert_eq!(Conv2D::from_config(&c).unwrap().config(), c);
    }

    #[test]
    fn dilated_and_grouped_shapes_follow_keras() {
        let mut rng = Rng::new(0);
        // Keras: kernel (kh, kw, in/groups, filters); valid output in − (k−1)·d.
        let mut l = Conv2D::new(6, 3).dilation_rate(2).groups(3);
        assert_eq!(l.build(&[9, 8, 6], &mut rng).unwrap(), vec![5, 4, 6]);
        assert_eq!(l.params()[0].shape, vec![3, 3, 2, 6]);
        let mut l = Conv2D::new(4, 3).dilation_rate(2).padding(Padding::Same);
        assert_eq!(l.build(&[5, 7, 3], &mut rng).unwrap(), vec![5, 7, 4]);
        assert!(Conv2D::new(4, 3).groups(2).build(&[5, 5, 3], &mut rng).is_err());
        assert!(Conv2D::new(3, 3).groups(2).build(&[5, 5, 4], &mut rng).is_err());
        assert!(Conv2D::new(3, 3).dilation_rate(3).build(&[6, 6, 4], &mut rng).is_err());
    }

    #[test]
    fn dilated_and_grouped_gradients_match_finite_differences() {
        for (i, (layer, input)) in [
            (Conv2D::new(3, 3).dilation_rate(2).activation(Activation::Tanh), [7, 6, 2]),
            (Conv2D::new(4, 3).groups(2).padding(Padding::Same).activation(Activation::Sigmoid), [5, 6, 4]),
            (Conv2D::new(6, (2, 3)).groups(3).dilation_rate((2, 1)).strides(2).padding(Padding::Same), [7, 7, 3]),
            (Conv2D::new(4, 2).groups(4).dilation_rate(3).use_bias(false).activation(Activation::Gelu), [7, 8, 4]),
        ]
        .into_iter()
        .enumerate()
        {
            let mut layer = layer.bias_initializer(Initializer::RandomNormal { mean: 0.0, stddev: 0.3 });
            check_layer(&mut layer, &input, 3, 700 + i as u64, 2e-2);
        }
    }

    /// The grouped path against the naive grouped, dilated convolution, on a batch large
    /// enough to be split over the workers.
    #[test]
    fn grouped_forward_matches_the_reference() {
        use crate::kernels::dilated::conv_naive;
        let mut rng = Rng::new(9);
        let mut l = Conv2D::new(8, 3).groups(4).dilation_rate(2).padding(Padding::Same);
        l.build(&[9, 7, 12], &mut rng).unwrap();
        let x =
            Tensor::from_vec(&[37, 9, 7, 12], crate::kernels::testing::random_vec(&mut rng, 37 * 9 * 7 * 12)).unwrap();
        let mut y = Tensor::zeros(&[37, 9, 7, 8]);
        l.forward(&x, &mut y, &mut ForwardCtx { training: false, rng: &mut rng });
        let g = l.grouped.unwrap();
        let want = conv_naive(&g, x.data(), 37, &l.params()[0].value, Some(&l.params()[1].value), 8, 4);
        crate::kernels::testing::assert_close(y.data(), &want, 1e-4, "grouped");
    }
}

#[cfg(test)]
mod speed {
    use super::*;

    /// The dilated and grouped path against the plain one on equal work (3×3, 64 filters, 64
    /// input channels per group, 24×24, "same"), in GFLOP/s:
    /// `cargo test --release -p convnet --lib grouped_speed -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn grouped_speed() {
        let mut rng = Rng::new(1);
        let batch = std::env::var("CONV_BATCH").ok().and_then(|v| v.parse().ok()).unwrap_or(64);
        let h = 24;
        for (label, layer, c) in [
            ("plain", Conv2D::new(64, 3).padding(Padding::Same), 64),
            ("dilation 2", Conv2D::new(64, 3).padding(Padding::Same).dilation_rate(2), 64),
            ("groups 2", Conv2D::new(64, 3).padding(Padding::Same).groups(2), 128),
            ("groups 4", Conv2D::new(64, 3).padding(Padding::Same).groups(4), 256),
        ] {
            let mut l = layer;
            l.build(&[h, h, c], &mut rng).unwrap();
            let x = Tensor::from_vec(&[batch, h, h, c], (0..batch * h * h * c).map(|i| (i % 7) as f32 * 0.1).collect())
                .unwrap();
            let mut y = Tensor::zeros(&[batch, h, h, 64]);
            let mut dx = Tensor::zeros(&[batch, h, h, c]);
            let flops = 2.0 * 9.0 * 64.0 * 64.0 * (batch * h * h) as f64;
            let mut ctx = ForwardCtx { training: true, rng: &mut rng };
            l.forward(&x, &mut y, &mut ctx);
            let mut dy = y.clone();
            l.backward(&x, &y, &mut dy, Some(&mut dx));
            let reps = 3;
            let t = std::time::Instant::now();
            for _ in 0..reps {
                l.forward(&x, &mut y, &mut ctx);
            }
            let fwd = t.elapsed().as_secs_f64() / reps as f64;
            let t = std::time::Instant::now();
            for _ in 0..reps {
                dy.data_mut().copy_from_slice(y.data());
                l.backward(&x, &y, &mut dy, Some(&mut dx));
            }
            let bwd = t.elapsed().as_secs_f64() / reps as f64;
            eprintln!(
                "conv 3x3 {label:10} {batch}x{h}x{h}x{c} -> 64: forward {:.1} ms {:.1} GFLOP/s, backward {:.1} ms {:.1} GFLOP/s",
                fwd * 1e3,
                flops / fwd / 1e9,
                bwd * 1e3,
                2.0 * flops / bwd / 1e9
            );
        }
    }
}
