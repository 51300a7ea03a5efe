//! Benchmarks of whole networks: training and inference samples per second on synthetic data
//! of the right shape, peak memory, and per-convolution forward/backward times.

use crate::data::to_categorical;
use crate::error::Result;
use crate::nn::losses::Loss;
use crate::nn::metrics::Metric;
use crate::nn::model::Sequential;
use crate::nn::optimizers::Adam;
use crate::rng::Rng;
use crate::tensor::Tensor;
use serde::Serialize;
use std::time::Instant;

/// What to measure.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// Training batch size (128, as the classic Keras examples use).
    pub batch_size: usize,
    /// Inference batch size.
    pub infer_batch: usize,
    /// Training steps run before timing starts (excluded from the rate).
    pub warmup_steps: usize,
    /// Seconds of timed training per network (at least `min_steps` steps).
    pub seconds: f64,
    /// Fewest timed training steps.
    pub min_steps: usize,
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions { batch_size: 128, infer_batch: 1000, warmup_steps: 3, seconds: 3.0, min_steps: 5 }
    }
}

/// Timing of one convolution layer within a training step.
#[derive(Clone, Debug, Serialize)]
pub struct ConvTiming {
    /// Layer name.
    pub layer: String,
    /// Forward milliseconds per step.
    pub forward_ms: f64,
    /// Backward milliseconds per step (weight and, except for the first layer, input gradient).
    pub backward_ms: f64,
    /// Forward GFLOP/s, counting the direct convolution's 2·k·k·c·f per output pixel (so a
    /// Winograd layer, which does fewer, shows its effective rate).
    pub forward_gflops: f64,
    /// Backward GFLOP/s, counted the same way.
    pub backward_gflops: f64,
}

/// Results for one network.
#[derive(Clone, Debug, Serialize)]
pub struct BenchResult {
    /// Network name.
    pub model: String,
    /// Training samples per second, steady state.
    pub train_samples_per_s: f64,
    /// Inference samples per second at the inference batch size.
    pub infer_samples_per_s: f64,
    /// Peak resident memory while this network trained, in MiB (Linux; 0 elsewhere).
    pub peak_rss_mib: f64,
    /// Peak resident memory while it ran inference, in MiB.
    pub infer_peak_rss_mib: f64,
    /// Per-convolution timings.
    pub convs: Vec<ConvTiming>,
}

/// Resets the process's peak-RSS counter (Linux), so each network's peak is its own.
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Peak resident memory of this process in MiB (Linux `VmHWM`; 0 if unknown).
pub fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse::<f64>().ok()))
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

fn synthetic(shape: &[usize], n: usize, rng: &mut Rng) -> (Tensor, Tensor) {
    let mut s = vec![n];
    s.extend_from_slice(shape);
    let len: usize = s.iter().product();
    let x = Tensor::from_vec(&s, (0..len).map(|_| rng.uniform()).collect()).expect("shape");
    let labels: Vec<u8> = (0..n).map(|_| rng.below(10) as u8).collect();
    (x, to_categorical(&labels, 10))
}

/// Floating-point operations of a convolution layer's forward pass for one sample (the
/// direct convolution's count).
fn conv_flops(model: &Sequential, i: usize) -> f64 {
    let l = &model.layers()[i];
    let out = l.output_shape();
    let kernel = &l.params()[0].shape;
    2.0 * (out[0] * out[1] * out[2]) as f64 * (kernel[0] * kernel[1] * kernel[2]) as f64
}

/// Measures `model` (built, with 10 outputs): training with Adam and categorical
/// cross-entropy, inference, memory and per-convolution times.
pub fn run(name: &str, mut model: Sequential, opts: &BenchOptions) -> Result<BenchResult> {
    reset_peak_rss();
    model.compile(Loss::CategoricalCrossentropy, Adam::default(), &[Metric::Accuracy])?;
    model.build()?;
    let input = model.input_shape().unwrap_or(&[]).to_vec();
    let mut rng = Rng::new(1);
    let batches: Vec<(Tensor, Tensor)> = (0..4).map(|_| synthetic(&input, opts.batch_size, &mut rng)).collect();
    for i in 0..opts.warmup_steps {
        let (x, y) = &batches[i % batches.len()];
        model.train_on_batch(x, y)?;
    }
    let start = Instant::now();
    let mut steps = 0;
    while steps < opts.min_steps || start.elapsed().as_secs_f64() < opts.seconds {
        let (x, y) = &batches[steps % batches.len()];
        model.train_on_batch(x, y)?;
        steps += 1;
    }
    let train = (steps * opts.batch_size) as f64 / start.elapsed().as_secs_f64();

    // Per-layer times, averaged over a few profiled steps.
    let reps = 5;
    let mut acc = vec![(0.0, 0.0); model.layers().len()];
    for r in 0..reps {
        let (x, y) = &batches[r % batches.len()];
        let (t, _) = model.profile_step(x, y)?;
        for (a, b) in acc.iter_mut().zip(t) {
            a.0 += b.0 / reps as f64;
            a.1 += b.1 / reps as f64;
        }
    }
    let mut convs = Vec::new();
    for (i, l) in model.layers().iter().enumerate() {
        if l.class_name() == "Conv2D" {
            let flops = conv_flops(&model, i) * opts.batch_size as f64;
            let bwd_flops = if i == 0 { flops } else { 2.0 * flops };
            convs.push(ConvTiming {
                layer: l.name().to_string(),
                forward_ms: acc[i].0 * 1e3,
                backward_ms: acc[i].1 * 1e3,
                forward_gflops: flops / acc[i].0 / 1e9,
                backward_gflops: bwd_flops / acc[i].1 / 1e9,
            });
        }
    }

    let train_peak = peak_rss_mib();
    reset_peak_rss();
    let (xi, _) = synthetic(&input, opts.infer_batch, &mut rng);
    model.predict(&xi, opts.infer_batch)?;
    let start = Instant::now();
    let mut n = 0;
    while n < 3 || start.elapsed().as_secs_f64() < opts.seconds / 2.0 {
        model.predict(&xi, opts.infer_batch)?;
        n += 1;
    }
    let infer = (n * opts.infer_batch) as f64 / start.elapsed().as_secs_f64();
    Ok(BenchResult {
        model: name.to_string(),
        train_samples_per_s: train,
        infer_samples_per_s: infer,
        peak_rss_mib: train_peak,
        infer_peak_rss_mib: peak_rss_mib(),
        convs,
    })
}
