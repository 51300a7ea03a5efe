//! Development aid: one convolution layer's forward and backward at batch 128 with 1 and 2
//! threads, to see how well the work splits.
use convnet::prelude::*;
use std::time::Instant;

fn main() -> Result<()> {
    let threads: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(2);
    rayon::ThreadPoolBuilder::new().num_threads(threads).build_global().unwrap();
    let mut m = Sequential::new();
    // mnist-cnn's second convolution, behind a cheap 1x1 layer so its input gradient is needed.
    m.add(Conv2D::new(32, 1).input_shape([26, 26, 32]));
    m.add(Conv2D::new(64, 3).activation(Activation::Relu));
    m.add(Flatten::new());
    m.add(Dense::new(10).activation(Activation::Softmax));
    m.compile(Loss::CategoricalCrossentropy, Sgd::default(), &[])?;
    let x = Tensor::from_vec(&[128, 26, 26, 32], (0..128 * 26 * 26 * 32).map(|i| (i % 17) as f32 * 0.01).collect())?;
    let y = to_categorical(&(0..128).map(|i| (i % 10) as u8).collect::<Vec<_>>(), 10);
    for _ in 0..3 {
        m.profile_step(&x, &y)?;
    }
    let t = Instant::now();
    let mut f = 0.0;
    let mut b = 0.0;
    for _ in 0..20 {
        let (times, _) = m.profile_step(&x, &y)?;
        f += times[1].0;
        b += times[1].1;
    }
    let flop = 2.0 * 128.0 * 576.0 * 64.0 * 288.0;
    println!(
        "{threads} threads: fwd {:.2} ms ({:.0} GFLOP/s), bwd {:.2} ms ({:.0} GFLOP/s), total {:.2}s",
        f / 20.0 * 1e3,
        flop / (f / 20.0) / 1e9,
        b / 20.0 * 1e3,
        2.0 * flop / (b / 20.0) / 1e9,
        t.elapsed().as_secs_f64()
    );
    Ok(())
}
