//! `BatchNormalization` over the last axis (the channels of NHWC input, the units of a dense
//! output), as Keras 3 computes it.
//!
//! Training (`training` and the layer trainable): per channel, over the `M` rows of the batch
//! (every sample and pixel), `μ = mean(x)`, `σ² = mean((x − μ)²)` (biased), `x̂ = (x − μ)/√(σ² + ε)`,
//! `y = γ·x̂ + β`; the moving statistics move towards the batch's,
//! `moving = moving·momentum + batch·(1 − momentum)`, with the biased `σ²` as Keras 3 does.
//! Inference, and a frozen layer in any mode (Keras 3 runs a non-trainable BatchNormalization in
//! inference mode): the same with `μ, σ²` the moving statistics.
//!
//! Backward, in one reduction and one element pass: with `k = γ/√(σ² + ε)`,
//! `dβ = Σ dy`, `dγ = Σ dy·x̂`, and in training `dx = k·(dy − mean(dy) − x̂·mean(dy·x̂))`
//! (the batch statistics depend on `x`), at inference `dx = k·dy`. Written per channel as
//! `dx = k·dy + c₁·(x − μ) + c₀`, so the element pass is one vectorisable loop over the
//! channels, the innermost axis.
//!
//! Weights in Keras' order: `gamma` (with `scale`), `beta` (with `center`), `moving_mean`,
//! `moving_variance`; the moving statistics are non-trainable ([`Param::trainable`]): the
//! optimizer never sees them, files and checkpoints keep them.
//!
//! Reductions run over batch chunks on the worker threads; each worker sums its chunks in
//! order (in f32 over blocks of rows, then in f64), and the workers' sums are added in worker
//! order, so the result does not depend on timing.

use super::{cfg, init_param, shape_str, ForwardCtx, Layer, Meta, Param};
use crate::error::{Error, Result};
use crate::nn::constraints::Constraint;
use crate::nn::initializers::Initializer;
use crate::nn::regularizers::Regularizer;
use crate::numbers::one_minus;
use crate::parallel::{self, SharedMut};
use crate::rng::Rng;
use crate::tensor::Tensor;
use serde_json::{json, Map, Value};

/// Values of `x` a worker's chunk covers at most (fits a core's L2 cache).
const CHUNK_VALUES: usize = 1 << 16;
/// Rows summed in f32 before the partial sums go to the f64 accumulator.
const ROW_BLOCK: usize = 64;

/// A worker's partial sums: two per channel, in f64 across blocks, f32 within one.
#[derive(Default)]
struct Work {
    acc: Vec<f64>,
    part: Vec<f32>,
}

/// Batch normalization (Keras' `BatchNormalization`: axis -1, momentum 0.99, epsilon 1e-3,
/// center and scale, beta zeros, gamma ones, moving mean zeros, moving variance ones).
pub struct BatchNormalization {
    meta: Meta,
    axis: i64,
    momentum: f32,
    epsilon: f32,
    center: bool,
    scale: bool,
    beta_initializer: Initializer,
    gamma_initializer: Initializer,
    moving_mean_initializer: Initializer,
    moving_variance_initializer: Initializer,
    beta_regularizer: Option<Regularizer>,
    gamma_regularizer: Option<Regularizer>,
    beta_constraint: Option<Constraint>,
    gamma_constraint: Option<Constraint>,
    out_shape: Vec<usize>,
    params: Vec<Param>,
    /// Per channel, of the last forward pass: the mean used, then `1/√(σ² + ε)`.
    stats: Vec<f32>,
    /// Per channel, for the backward element pass: `k`, `c₁`, `c₀`.
    coef: Vec<f32>,
    /// Whether the last forward pass used the batch's statistics.
    batch_stats: bool,
    /// Per channel, the two sums of the last reduction.
    sums: Vec<f64>,
    work: Vec<Work>,
}

impl Default for BatchNormalization {
    fn default() -> Self {
        Self::new()
    }
}

impl BatchNormalization {
    /// Keras' defaults.
    pub fn new() -> Self {
        BatchNormalization {
            meta: Meta::default(),
            axis: -1,
            momentum: 0.99,
            epsilon: 1e-3,
            center: true,
            scale: true,
            beta_initializer: Initializer::Zeros,
            gamma_initializer: Initializer::Ones,
            moving_mean_initializer: Initializer::Zeros,
            moving_variance_initializer: Initializer::Ones,
            beta_regularizer: None,
            gamma_regularizer: None,
            beta_constraint: None,
            gamma_constraint: None,
            out_shape: Vec::new(),
            params: Vec::new(),
            stats: Vec::new(),
            coef: Vec::new(),
            batch_stats: false,
            sums: Vec::new(),
            work: Vec::new(),
        }
    }

    /// Sets the momentum of the moving statistics.
    pub fn momentum(mut self, m: f32) -> Self {
        self.momentum = m;
        self
    }

    /// Sets ε, added to the variance.
    pub fn epsilon(mut self, e: f32) -> Self {
        self.epsilon = e;
        self
    }

    /// With `false`, no `beta` (no offset).
    pub fn center(mut self, c: bool) -> Self {
        self.center = c;
        self
    }

    /// With `false`, no `gamma` (no scale).
    pub fn scale(mut self, s: bool) -> Self {
        self.scale = s;
        self
    }

    /// Initial values of `beta`.
    pub fn beta_initializer(mut self, i: Initializer) -> Self {
        self.beta_initializer = i;
        self
    }

    /// Initial values of `gamma`.
    pub fn gamma_initializer(mut self, i: Initializer) -> Self {
        self.gamma_initializer = i;
        self
    }

    /// Initial values of `moving_mean`.
    pub fn moving_mean_initializer(mut self, i: Initializer) -> Self {
        self.moving_mean_initializer = i;
        self
    }

    /// Initial values of `moving_variance`.
    pub fn moving_variance_initializer(mut self, i: Initializer) -> Self {
        self.moving_variance_initializer = i;
        self
    }

    /// A penalty on `beta`.
    pub fn beta_regularizer(mut self, r: Regularizer) -> Self {
        self.beta_regularizer = Some(r);
        self
    }

    /// A penalty on `gamma`.
    pub fn gamma_regularizer(mut self, r: Regularizer) -> Self {
        self.gamma_regularizer = Some(r);
        self
    }

    /// A projection of `beta` after each update.
    pub fn beta_constraint(mut self, c: Constraint) -> Self {
        self.beta_constraint = Some(c);
        self
    }

    /// A projection of `gamma` after each update.
    pub fn gamma_constraint(mut self, c: Constraint) -> Self {
        self.gamma_constraint = Some(c);
        self
    }

    /// Names the layer.
    pub fn name(mut self, name: &str) -> Self {
        self.meta.name = name.to_string();
        self
    }

    /// Declares the per-sample input shape (first layer).
    pub fn input_shape(mut self, shape: impl AsRef<[usize]>) -> Self {
        self.meta.input_shape = Some(shape.as_ref().to_vec());
        self
    }

    /// Reads Keras' config (Keras 3's keys and tf_keras', whose `axis` is a list such as `[3]`).
    pub fn from_config(c: &Map<String, Value>) -> Result<Self> {
        let l = "BatchNormalization";
        let axis = match c.get("axis") {
            None | Some(Value::Null) => -1,
            Some(Value::Array(a)) if a.len() == 1 && a[0].as_i64().is_some() => a[0].as_i64().unwrap_or(-1),
            Some(v) => v.as_i64().ok_or_else(|| {
                Error::config(format!("{l}: `axis` must be one integer (convnet normalizes one axis), not {v}"))
            })?,
        };
        cfg::require_default(c, "renorm", &[json!(false)], l)?;
        cfg::require_default(c, "virtual_batch_size", &[], l)?;
        cfg::require_default(c, "adjustment", &[], l)?;
        let init = |k: &str, default: Initializer| match c.get(k).filter(|v| !v.is_null()) {
            Some(v) => Initializer::from_config(v),
            None => Ok(default),
        };
        let reg = |k: &str| c.get(k).map_or(Ok(None), Regularizer::from_config);
        let con = |k: &str| c.get(k).map_or(Ok(None), Constraint::from_config);
        let momentum = cfg::f32_or(c, "momentum", 0.99, l)?;
        let epsilon = cfg::f32_or(c, "epsilon", 1e-3, l)?;
        if !(0.0..=1.0).contains(&momentum) || epsilon < 0.0 {
            return Err(Error::config(format!(
                "{l}: momentum must be in [0, 1] and epsilon at least 0, not {momentum} and {epsilon}"
            )));
        }
        let d = BatchNormalization::new();
        Ok(BatchNormalization {
            meta: Meta::from_config(c)?,
            axis,
            momentum,
            epsilon,
            center: cfg::bool_or(c, "center", true)?,
            scale: cfg::bool_or(c, "scale", true)?,
            beta_initializer: init("beta_initializer", d.beta_initializer)?,
            gamma_initializer: init("gamma_initializer", d.gamma_initializer)?,
            moving_mean_initializer: init("moving_mean_initializer", d.moving_mean_initializer)?,
            moving_variance_initializer: init("moving_variance_initializer", d.moving_variance_initializer)?,
            beta_regularizer: reg("beta_regularizer")?,
            gamma_regularizer: reg("gamma_regularizer")?,
            beta_constraint: con("beta_constraint")?,
            gamma_constraint: con("gamma_constraint")?,
            ..d
        })
    }

    /// Number of channels (after `build`).
    fn channels(&self) -> usize {
        self.out_shape.last().copied().unwrap_or(0)
    }

    /// Positions of gamma, beta, moving_mean, moving_variance in `params`.
    fn slots(&self) -> (Option<usize>, Option<usize>, usize, usize) {
        let g = self.scale.then_some(0);
        let b = self.center.then_some(self.scale as usize);
        let m = self.scale as usize + self.center as usize;
        (g, b, m, m + 1)
    }
}

/// Two per-channel sums over all rows of `a` and `b` (same layout, `c` channels innermost, `n`
/// samples) into `out[0..c]` and `out[c..2c]`: `f(row_a, row_b, s1, s2)` adds one row's terms
/// to the partial sums `s1`, `s2` (a loop over the channels the compiler vectorizes).
fn reduce2(
    work: &mut Vec<Work>,
    c: usize,
    n: usize,
    a: &[f32],
    b: &[f32],
    out: &mut [f64],
    f: impl Fn(&[f32], &[f32], &mut [f32], &mut [f32]) + Sync + Send,
) {
    let per_sample = a.len() / n.max(1);
    let workers = parallel::workers();
    if work.len() != workers {
        work.resize_with(workers, Work::default);
    }
    for w in work.iter_mut() {
        w.acc.clear();
        w.acc.resize(2 * c, 0.0);
        w.part.resize(2 * c, 0.0);
    }
    let chunk = parallel::chunk_len(n, workers, (CHUNK_VALUES / per_sample.max(1)).max(1));
    parallel::for_chunks(n, chunk, work, |w, r| {
        let span = r.start * per_sample..r.end * per_sample;
        let mut rows = a[span.clone()].chunks_exact(c).zip(b[span].chunks_exact(c)).peekable();
        while rows.peek().is_some() {
            let (p1, p2) = w.part.split_at_mut(c);
            p1.fill(0.0);
            p2.fill(0.0);
            for (ra, rb) in rows.by_ref().take(ROW_BLOCK) {
                f(ra, rb, p1, p2);
            }
            for (acc, &p) in w.acc.iter_mut().zip(w.part.iter()) {
                *acc += f64::from(p);
            }
        }
    });
    out.fill(0.0);
    for w in work.iter() {
        for (o, &v) in out.iter_mut().zip(&w.acc) {
            *o += v;
        }
    }
}

/// Runs `f(first_sample, samples)` over batch chunks of `n` samples on the worker threads.
fn for_sample_chunks(n: usize, chunk: usize, f: impl Fn(std::ops::Range<usize>) + Sync + Send) {
    let mut states = vec![(); parallel::workers()];
    parallel::for_chunks(n, chunk, &mut states, |_, r| f(r));
}

impl Layer for BatchNormalization {
    fn class_name(&self) -> &'static str {
        "BatchNormalization"
    }

    fn base_name(&self) -> &'static str {
        "batch_normalization"
    }

    fn meta(&self) -> &Meta {
        &self.meta
    }

    fn meta_mut(&mut self) -> &mut Meta {
        &mut self.meta
    }

    fn build(&mut self, input_shape: &[usize], rng: &mut Rng) -> Result<Vec<usize>> {
        let rank = input_shape.len() as i64;
        // Keras counts the batch as axis 0: the last axis is -1 or the per-sample rank.
        if rank == 0 || (self.axis != -1 && self.axis != rank) {
            return Err(Error::config(format!(
                "BatchNormalization {:?}: convnet normalizes the last axis only (axis=-1), not axis={} of input {}",
                self.meta.name,
                self.axis,
                shape_str(input_shape)
            )));
        }
        let c = input_shape[input_shape.len() - 1];
        let name = self.meta.name.clone();
        let mut params = Vec::new();
        if self.scale {
            let mut p = Param::new("gamma", &[c], self.gamma_regularizer)?;
            init_param(&mut p, &self.gamma_initializer, &self.gamma_constraint, &name, rng)?;
            params.push(p);
        }
        if self.center {
            let mut p = Param::new("beta", &[c], self.beta_regularizer)?;
            init_param(&mut p, &self.beta_initializer, &self.beta_constraint, &name, rng)?;
            params.push(p);
        }
        let mut p = Param::new("moving_mean", &[c], None)?.non_trainable();
        init_param(&mut p, &self.moving_mean_initializer, &None, &name, rng)?;
        params.push(p);
        let mut p = Param::new("moving_variance", &[c], None)?.non_trainable();
        init_param(&mut p, &self.moving_variance_initializer, &None, &name, rng)?;
        params.push(p);
        self.params = params;
        self.out_shape = input_shape.to_vec();
        self.stats = vec![0.0; 2 * c];
        self.coef = vec![0.0; 3 * c];
        self.sums = vec![0.0; 2 * c];
        Ok(self.out_shape.clone())
    }

    fn output_shape(&self) -> &[usize] {
        &self.out_shape
    }

    fn forward(&mut self, x: &Tensor, y: &mut Tensor, ctx: &mut ForwardCtx<'_>) {
        let n = x.batch();
        let c = self.channels();
        let (gi, bi, mi, vi) = self.slots();
        self.batch_stats = ctx.training && self.meta.trainable;
        let xd = x.data();
        if self.batch_stats {
            let rows = (xd.len() / c.max(1)) as f64;
            // Two passes, as tf.nn.moments: the mean, then the mean squared deviation from it.
            let sums = &mut self.sums;
            reduce2(&mut self.work, c, n, xd, xd, sums, |a, _, s1, _| {
                for (s, &v) in s1.iter_mut().zip(a) {
                    *s += v;
                }
            });
            for ch in 0..c {
                self.stats[ch] = (sums[ch] / rows) as f32;
            }
            let mean = &self.stats[..c];
            reduce2(&mut self.work, c, n, xd, xd, sums, |a, _, s1, _| {
                for ((s, &v), &m) in s1.iter_mut().zip(a).zip(mean) {
                    *s += (v - m) * (v - m);
                }
            });
            let (m, om) = (self.momentum, one_minus(self.momentum));
            for ch in 0..c {
                let var = (sums[ch] / rows) as f32;
                let mu = self.stats[ch];
                self.stats[c + ch] = 1.0 / (var + self.epsilon).sqrt();
                let mm = &mut self.params[mi].value[ch];
                *mm = *mm * m + mu * om;
                let mv = &mut self.params[vi].value[ch];
                *mv = *mv * m + var * om;
            }
        } else {
            for ch in 0..c {
                self.stats[ch] = self.params[mi].value[ch];
                self.stats[c + ch] = 1.0 / (self.params[vi].value[ch] + self.epsilon).sqrt();
            }
        }
        // y = (x − μ)·k + β with k = γ/√(σ² + ε), one pass over the rows.
        for ch in 0..c {
            let g = gi.map_or(1.0, |i| self.params[i].value[ch]);
            self.coef[ch] = g * self.stats[c + ch];
            self.coef[c + ch] = bi.map_or(0.0, |i| self.params[i].value[ch]);
        }
        let (mean, k, beta) = (&self.stats[..c], &self.coef[..c], &self.coef[c..2 * c]);
        let per_sample = xd.len() / n.max(1);
        let chunk = parallel::chunk_len(n, parallel::workers(), (CHUNK_VALUES / per_sample.max(1)).max(1));
        let ys = SharedMut::new(y.data_mut());
        for_sample_chunks(n, chunk, |r| {
            let span = r.start * per_sample..r.end * per_sample;
            // SAFETY: chunks are disjoint ranges of samples.
            let yc = unsafe { ys.slice(span.clone()) };
            for (yr, xr) in yc.chunks_exact_mut(c).zip(xd[span].chunks_exact(c)) {
                for ((((o, &v), &mu), &kk), &b) in yr.iter_mut().zip(xr).zip(mean).zip(k).zip(beta) {
                    *o = (v - mu) * kk + b;
                }
            }
        });
    }

    fn backward(&mut self, x: &Tensor, _y: &Tensor, dy: &mut Tensor, dx: Option<&mut Tensor>) {
        let n = x.batch();
        let c = self.channels();
        let (gi, bi, _, _) = self.slots();
        let (xd, dyd) = (x.data(), dy.data());
        let rows = (xd.len() / c.max(1)) as f32;
        // Σ dy and Σ dy·(x − μ) per channel.
        let sums = &mut self.sums;
        let mean = &self.stats[..c];
        reduce2(&mut self.work, c, n, dyd, xd, sums, |g, v, s1, s2| {
            for ((((a, b), &g), &v), &m) in s1.iter_mut().zip(s2.iter_mut()).zip(g).zip(v).zip(mean) {
                *a += g;
                *b += g * (v - m);
            }
        });
        for ch in 0..c {
            let inv = self.stats[c + ch];
            let (sum_dy, sum_dyxhat) = (sums[ch] as f32, (sums[c + ch] as f32) * inv);
            if let Some(i) = gi {
                self.params[i].grad[ch] = sum_dyxhat;
            }
            if let Some(i) = bi {
                self.params[i].grad[ch] = sum_dy;
            }
            let k = gi.map_or(1.0, |i| self.params[i].value[ch]) * inv;
            self.coef[ch] = k;
            if self.batch_stats {
                // dx = k·dy − k·mean(dy) − k·x̂·mean(dy·x̂), x̂ = (x − μ)·inv.
                self.coef[c + ch] = -k * inv * sum_dyxhat / rows;
                self.coef[2 * c + ch] = -k * sum_dy / rows;
            } else {
                self.coef[c + ch] = 0.0;
                self.coef[2 * c + ch] = 0.0;
            }
        }
        let Some(dx) = dx else { return };
        let mean = &self.stats[..c];
        let (k, c1, c0) = (&self.coef[..c], &self.coef[c..2 * c], &self.coef[2 * c..]);
        let per_sample = xd.len() / n.max(1);
        let chunk = parallel::chunk_len(n, parallel::workers(), (CHUNK_VALUES / per_sample.max(1)).max(1));
        let dxs = SharedMut::new(dx.data_mut());
        for_sample_chunks(n, chunk, |r| {
            let span = r.start * per_sample..r.end * per_sample;
            // SAFETY: chunks are disjoint ranges of samples.
            let dxc = unsafe { dxs.slice(span.clone()) };
            let rows = dxc.chunks_exact_mut(c).zip(dyd[span.clone()].chunks_exact(c)).zip(xd[span].chunks_exact(c));
            for ((o, g), v) in rows {
                let terms = g.iter().zip(v).zip(mean).zip(k.iter().zip(c1).zip(c0));
                for (o, (((&g, &v), &m), ((&k, &c1), &c0))) in o.iter_mut().zip(terms) {
                    *o = k * g + c1 * (v - m) + c0;
                }
            }
        });
    }

    fn params(&self) -> &[Param] {
        &self.params
    }

    fn params_mut(&mut self) -> &mut [Param] {
        &mut self.params
    }

    fn config(&self) -> Map<String, Value> {
        let reg = |r: &Option<Regularizer>| r.map_or(Value::Null, |r| r.to_config());
        let con = |c: &Option<Constraint>| c.as_ref().map_or(Value::Null, Constraint::to_config);
        let mut m = self.meta.config();
        m.insert("axis".into(), json!(self.axis));
        m.insert("momentum".into(), json!(crate::numbers::decimal(self.momentum)));
        m.insert("epsilon".into(), json!(crate::numbers::decimal(self.epsilon)));
        m.insert("center".into(), json!(self.center));
        m.insert("scale".into(), json!(self.scale));
        m.insert("beta_initializer".into(), self.beta_initializer.to_config());
        m.insert("gamma_initializer".into(), self.gamma_initializer.to_config());
        m.insert("moving_mean_initializer".into(), self.moving_mean_initializer.to_config());
        m.insert("moving_variance_initializer".into(), self.moving_variance_initializer.to_config());
        m.insert("beta_regularizer".into(), reg(&self.beta_regularizer));
        m.insert("gamma_regularizer".into(), reg(&self.gamma_regularizer));
        m.insert("beta_constraint".into(), con(&self.beta_constraint));
        m.insert("gamma_constraint".into(), con(&self.gamma_constraint));
        m.insert("synchronized".into(), json!(false));
        m.insert("renorm".into(), json!(false));
        m.insert("renorm_clipping".into(), Value::Null);
        m.insert("renorm_momentum".into(), json!(0.99));
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::layers::gradcheck::check_layer;

    fn built(l: BatchNormalization, shape: &[usize]) -> BatchNormalization {
        let mut l = l.name("bn");
        l.build(shape, &mut Rng::new(1)).unwrap();
        l
    }

    fn run(l: &mut BatchNormalization, x: &Tensor, training: bool) -> Tensor {
        let mut y = Tensor::zeros(x.shape());
        l.forward(x, &mut y, &mut ForwardCtx { training, rng: &mut Rng::new(0) });
        y
    }

    fn random(shape: &[usize], seed: u64, lo: f32, hi: f32) -> Tensor {
        let mut rng = Rng::new(seed);
        let n = shape.iter().product();
        Tensor::from_vec(shape, (0..n).map(|_| rng.uniform_range(lo, hi)).collect()).unwrap()
    }

    /// Training normalizes each channel to mean β and standard deviation γ·σ/√(σ²+ε), and moves
    /// the moving statistics by (1 − momentum) towards the batch's biased ones.
    #[test]
    fn training_uses_batch_statistics_and_updates_the_moving_ones() {
        let mut l = built(BatchNormalization::new().momentum(0.9), &[3, 2, 4]);
        l.params[0].value.copy_from_slice(&[2.0, 1.0, 0.5, 3.0]);
        l.params[1].value.copy_from_slice(&[0.1, -0.2, 0.3, 0.0]);
        let x = random(&[5, 3, 2, 4], 3, -2.0, 5.0);
        let y = run(&mut l, &x, true);
        for ch in 0..4 {
            let xs: Vec<f64> = x.data().iter().skip(ch).step_by(4).map(|&v| v as f64).collect();
            let ys: Vec<f64> = y.data().iter().skip(ch).step_by(4).map(|&v| v as f64).collect();
            let m = xs.len() as f64;
            let mu = xs.iter().sum::<f64>() / m;
            let var = xs.iter().map(|v| (v - mu).powi(2)).sum::<f64>() / m;
            let ym = ys.iter().sum::<f64>() / m;
            let ysd = (ys.iter().map(|v| (v - ym).powi(2)).sum::<f64>() / m).sqrt();
            let g = l.params[0].value[ch] as f64;
            assert!((ym - l.params[1].value[ch] as f64).abs() < 1e-5, "channel {ch}: mean {ym}");
            assert!((ysd - g * var.sqrt() / (var + 1e-3).sqrt()).abs() < 1e-4, "channel {ch}: sd {ysd}");
            assert!((l.params[2].value[ch] as f64 - 0.1 * mu).abs() < 1e-5);
            assert!((l.params[3].value[ch] as f64 - (0.9 + 0.1 * var)).abs() < 1e-5);
        }
    }

    /// Inference, and a frozen layer while training, use the moving statistics and leave them.
    #[test]
    fn inference_and_frozen_layers_use_the_moving_statistics() {
        let mut l = built(BatchNormalization::new(), &[4]);
        l.params[2].value.copy_from_slice(&[1.0, -1.0, 0.0, 2.0]);
        l.params[3].value.copy_from_slice(&[4.0, 1.0, 0.25, 9.0]);
        let x = Tensor::from_vec(&[1, 4], vec![3.0, 0.0, 1.0, 2.0]).unwrap();
        let want: Vec<f32> = [(2.0, 4.0), (1.0, 1.0), (1.0, 0.25), (0.0, 9.0)]
            .iter()
            .map(|&(d, v): &(f32, f32)| d / (v + 1e-3).sqrt())
            .collect();
        assert_eq!(run(&mut l, &x, false).data(), want.as_slice());
        l.set_trainable(false);
        assert_eq!(run(&mut l, &x, true).data(), want.as_slice());
        assert_eq!(l.params[2].value, [1.0, -1.0, 0.0, 2.0], "frozen: no update");
    }

    #[test]
    fn gradients_match_finite_differences_in_training() {
        let mut l = BatchNormalization::new().gamma_initializer(Initializer::RandomNormal { mean: 1.0, stddev: 0.5 });
        check_layer(&mut l, &[3, 3, 5], 4, 11, 2e-2);
        let mut l = BatchNormalization::new().center(false);
        check_layer(&mut l, &[6], 7, 12, 2e-2);
    }

    #[test]
    fn gradients_match_finite_differences_in_inference() {
        let mut l = BatchNormalization::new()
            .moving_mean_initializer(Initializer::RandomNormal { mean: 0.0, stddev: 0.5 })
            .moving_variance_initializer(Initializer::Constant(2.0))
            .beta_initializer(Initializer::Constant(0.3));
        l.set_trainable(false);
        check_layer(&mut l, &[2, 3, 4], 3, 13, 1e-2);
    }

    /// The moving statistics are non-trainable weights, in Keras' order after gamma and beta.
    #[test]
    fn weights_in_keras_order_with_non_trainable_statistics() {
        let l = built(BatchNormalization::new(), &[5, 5, 3]);
        let names: Vec<(&str, bool)> = l.params().iter().map(|p| (p.name, p.trainable)).collect();
        assert_eq!(names, [("gamma", true), ("beta", true), ("moving_mean", false), ("moving_variance", false)]);
        let l = built(BatchNormalization::new().scale(false), &[3]);
        let names: Vec<&str> = l.params().iter().map(|p| p.name).collect();
        assert_eq!(names, ["beta", "moving_mean", "moving_variance"]);
    }

    #[test]
    fn config_round_trips_and_reads_tf_keras_axis() {
        let l = BatchNormalization::new()
            .momentum(0.9)
            .epsilon(1e-5)
            .center(false)
            .gamma_regularizer(crate::nn::regularizers::l2(0.01))
            .name("bn");
        let c = l.config();
        assert_eq!(c["momentum"], json!(0.9));
        let back = BatchNormalization::from_config(&c).unwrap();
        assert_eq!(back.config(), c);
        let tf = json!({"name": "b", "axis": [3], "momentum": 0.99, "epsilon": 0.001, "renorm": false,
                        "virtual_batch_size": null, "adjustment": null});
        let mut l = BatchNormalization::from_config(tf.as_object().unwrap()).unwrap();
        assert!(l.build(&[4, 4, 2], &mut Rng::new(0)).is_ok());
        let mut l = BatchNormalization::from_config(json!({"axis": 1}).as_object().unwrap()).unwrap();
        let e = l.build(&[4, 4, 2], &mut Rng::new(0)).unwrap_err().to_string();
        assert!(e.contains("axis=1"), "{e}");
        assert!(BatchNormalization::from_config(json!({"renorm": true}).as_object().unwrap()).is_err());
    }
}
