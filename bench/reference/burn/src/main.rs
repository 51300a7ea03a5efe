//! burn (Flex CPU backend) reference: the lecture's three networks built as in
//! `bench/reference/models.py`, Adam + cross-entropy on synthetic data, batch 128; training and
//! inference samples/s and peak memory, with the timing rules of `common.py`, printed as the
//! Python references print them (`--json` for `bench/compare.py`).
//!
//! cargo run --release --manifest-path bench/reference/burn/Cargo.toml -- [--json] [--seconds S] [MODEL…]

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};
use std::time::Instant;

fn conv(cin: usize, cout: usize, k: usize, same: bool, d: &Device) -> Conv2d {
    let c = Conv2dConfig::new([cin, cout], [k, k]);
    let c = if same { c.with_padding(PaddingConfig2d::Same) } else { c };
    c.init(d)
}

fn pool() -> MaxPool2d {
    MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init()
}

/// LeNet-5 as in the lecture.
#[derive(Module, Debug)]
struct LeNet5 {
    c1: Conv2d,
    c2: Conv2d,
    c3: Conv2d,
    p: MaxPool2d,
    f1: Linear,
    f2: Linear,
}

impl LeNet5 {
    fn new(d: &Device) -> Self {
        LeNet5 {
            c1: conv(1, 6, 5, true, d),
            c2: conv(6, 16, 5, false, d),
            c3: conv(16, 120, 5, false, d),
            p: pool(),
            f1: LinearConfig::new(120, 84).init(d),
            f2: LinearConfig::new(84, 10).init(d),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let x = self.p.forward(relu(self.c1.forward(x)));
        let x = self.p.forward(relu(self.c2.forward(x)));
        let x = relu(self.c3.forward(x)).flatten(1, 3);
        self.f2.forward(relu(self.f1.forward(x)))
    }
}

/// Keras' MNIST CNN example.
#[derive(Module, Debug)]
struct MnistCnn {
    c1: Conv2d,
    c2: Conv2d,
    p: MaxPool2d,
    d1: Dropout,
    f1: Linear,
    d2: Dropout,
    f2: Linear,
}

impl MnistCnn {
    fn new(d: &Device) -> Self {
        MnistCnn {
            c1: conv(1, 32, 3, false, d),
            c2: conv(32, 64, 3, false, d),
            p: pool(),
            d1: DropoutConfig::new(0.25).init(),
            f1: LinearConfig::new(9216, 128).init(d),
            d2: DropoutConfig::new(0.25).init(),
            f2: LinearConfig::new(128, 10).init(d),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let x = relu(self.c1.forward(x));
        let x = self.d1.forward(self.p.forward(relu(self.c2.forward(x))));
        let x = self.d2.forward(relu(self.f1.forward(x.flatten(1, 3))));
        self.f2.forward(x)
    }
}

/// Keras' CIFAR-10 CNN example.
#[derive(Module, Debug)]
struct Cifar10Cnn {
    c1: Conv2d,
    c2: Conv2d,
    c3: Conv2d,
    c4: Conv2d,
    p: MaxPool2d,
    d1: Dropout,
    d2: Dropout,
    f1: Linear,
    d3: Dropout,
    f2: Linear,
}

impl Cifar10Cnn {
    fn new(d: &Device) -> Self {
        Cifar10Cnn {
            c1: conv(3, 32, 3, false, d),
            c2: conv(32, 32, 3, false, d),
            c3: conv(32, 64, 3, false, d),
            c4: conv(64, 64, 3, false, d),
            p: pool(),
            d1: DropoutConfig::new(0.25).init(),
            d2: DropoutConfig::new(0.25).init(),
            f1: LinearConfig::new(1600, 512).init(d),
            d3: DropoutConfig::new(0.5).init(),
            f2: LinearConfig::new(512, 10).init(d),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let x = relu(self.c2.forward(relu(self.c1.forward(x))));
        let x = self.d1.forward(self.p.forward(x));
        let x = relu(self.c4.forward(relu(self.c3.forward(x))));
        let x = self.d2.forward(self.p.forward(x));
        let x = self.d3.forward(relu(self.f1.forward(x.flatten(1, 3))));
        self.f2.forward(x)
    }
}

/// Calls per second of `step`: `warmup` untimed calls, then at least `min_steps` and `seconds`.
fn timed(mut step: impl FnMut(), seconds: f64, min_steps: usize, warmup: usize) -> f64 {
    for _ in 0..warmup {
        step();
    }
    let t0 = Instant::now();
    let mut n = 0;
    while n < min_steps || t0.elapsed().as_secs_f64() < seconds {
        step();
        n += 1;
    }
    n as f64 / t0.elapsed().as_secs_f64()
}

fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn peak_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

struct Args {
    models: Vec<String>,
    seconds: f64,
    batch: usize,
    infer_batch: usize,
    json: bool,
}

fn args() -> Args {
    let mut a = Args { models: Vec::new(), seconds: 3.0, batch: 128, infer_batch: 1000, json: false };
    let mut it = std::env::args().skip(1);
    while let Some(s) = it.next() {
        let mut num = |what: &str| -> f64 {
            it.next().and_then(|v| v.parse().ok()).unwrap_or_else(|| {
                eprintln!("error: {what} needs a number");
                std::process::exit(2)
            })
        };
        match s.as_str() {
            "--json" => a.json = true,
            "--seconds" => a.seconds = num("--seconds"),
            "--batch-size" => a.batch = num("--batch-size") as usize,
            "--infer-batch" => a.infer_batch = num("--infer-batch") as usize,
            "--threads" => {
                // Flex sizes its pool from the machine; the value is accepted for symmetry.
                num("--threads");
            }
            m if !m.starts_with('-') => a.models.push(m.to_string()),
            other => {
                eprintln!("error: unknown option {other}");
                std::process::exit(2)
            }
        }
    }
    if a.models.is_empty() {
        a.models = vec!["lenet5".into(), "mnist-cnn".into(), "cifar10-cnn".into()];
    }
    a
}

/// A network the benchmark can train and run.
trait Net: Module {
    fn run(&self, x: Tensor<4>) -> Tensor<2>;
}

macro_rules! net {
    ($t:ident) => {
        impl Net for $t {
            fn run(&self, x: Tensor<4>) -> Tensor<2> {
                self.forward(x)
            }
        }
    };
}
net!(LeNet5);
net!(MnistCnn);
net!(Cifar10Cnn);

fn bench<M: Net>(model: M, shape: [usize; 3], a: &Args, d: &Device) -> (f64, f64, f64, f64) {
    let mut optim = AdamConfig::new().with_epsilon(1e-7).init();
    let loss_fn = CrossEntropyLossConfig::new().init(d);
    let batches: Vec<(Tensor<4>, Tensor<1, Int>)> = (0..4)
        .map(|i| {
            let x = Tensor::random([a.batch, shape[0], shape[1], shape[2]], Distribution::Uniform(0.0, 1.0), d);
            let labels: Vec<i32> = (0..a.batch).map(|j| ((i * 7 + j * 3) % 10) as i32).collect();
            (x, Tensor::from_data(TensorData::new(labels, [a.batch]), d))
        })
        .collect();
    let mut i = 0;
    let mut m = Some(model);
    let train = timed(
        || {
            let (x, y) = &batches[i % 4];
            i += 1;
            let net = m.take().expect("model");
            let loss = loss_fn.forward(net.run(x.clone()), y.clone());
            let grads = GradientsParams::from_grads(loss.backward(), &net);
            m = Some(optim.step(1e-3, net, grads));
            let _ = loss.into_data();
        },
        a.seconds,
        5,
        3,
    ) * a.batch as f64;
    let model = m.expect("model");
    let train_peak = peak_mib();
    reset_peak();
    let valid = model.valid();
    let xi: Tensor<4> =
        Tensor::random([a.infer_batch, shape[0], shape[1], shape[2]], Distribution::Uniform(0.0, 1.0), &Device::flex());
    let infer = timed(
        || {
            let _ = valid.run(xi.clone()).into_data();
        },
        a.seconds / 2.0,
        3,
        1,
    ) * a.infer_batch as f64;
    (train, infer, train_peak, peak_mib())
}

fn main() {
    let a = args();
    let d = Device::flex().autodiff();
    let mut rows = Vec::new();
    for name in &a.models {
        reset_peak();
        let r = match name.as_str() {
            "lenet5" => bench(LeNet5::new(&d), [1, 28, 28], &a, &d),
            "mnist-cnn" => bench(MnistCnn::new(&d), [1, 28, 28], &a, &d),
            "cifar10-cnn" => bench(Cifar10Cnn::new(&d), [3, 32, 32], &a, &d),
            other => {
                eprintln!("error: unknown model {other:?} (lenet5, mnist-cnn, cifar10-cnn)");
                std::process::exit(2)
            }
        };
        rows.push((name.clone(), r));
    }
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let framework = "burn 0.22.1 (Flex)";
    if a.json {
        let results: Vec<String> = rows
            .iter()
            .map(|(m, (t, i, p, ip))| {
                format!(
                    "{{\"model\": \"{m}\", \"train_samples_per_s\": {t}, \"infer_samples_per_s\": {i}, \
                     \"peak_rss_mib\": {p}, \"infer_peak_rss_mib\": {ip}}}"
                )
            })
            .collect();
        println!(
            "{{\"framework\": \"{framework}\", \"threads\": {threads}, \"batch_size\": {}, \"infer_batch\": {}, \
             \"results\": [{}]}}",
            a.batch,
            a.infer_batch,
            results.join(", ")
        );
        return;
    }
    println!("{framework}, {threads} threads, training batch {}, inference batch {}", a.batch, a.infer_batch);
    println!(
        "{:<14} {:>16} {:>16} {:>16} {:>16}",
        "model", "train samples/s", "infer samples/s", "train peak MiB", "infer peak MiB"
    );
    for (m, (t, i, p, ip)) in rows {
        println!("{m:<14} {t:>16.0} {i:>16.0} {p:>16.1} {ip:>16.1}");
    }
}
