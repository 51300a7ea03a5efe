//! Per-layer forward/backward times of one training step (development aid).
use convnet::prelude::*;
fn main() -> Result<()> {
    let name = std::env::args().nth(1).unwrap_or_else(|| "lenet5".into());
    let batch: usize = std::env::args().nth(2).and_then(|s| s.parse().ok()).unwrap_or(128);
    let mut m = convnet::presets::preset(&name)?;
    m.compile(Loss::CategoricalCrossentropy, Adam::default(), &[Metric::Accuracy])?;
    let shape = m.input_shape().unwrap().to_vec();
    let mut rng = convnet::Rng::new(1);
    let mut s = vec![batch];
    s.extend(&shape);
    let n: usize = s.iter().product();
    let x = Tensor::from_vec(&s, (0..n).map(|_| rng.uniform()).collect())?;
    let labels: Vec<u8> = (0..batch).map(|i| (i % 10) as u8).collect();
    let y = to_categorical(&labels, 10);
    for _ in 0..5 {
        m.profile_step(&x, &y)?;
    }
    let iters = 30;
    let mut acc = vec![(0.0, 0.0); m.layers().len()];
    let mut opt = 0.0;
    for _ in 0..iters {
        let (t, o) = m.profile_step(&x, &y)?;
        for (a, b) in acc.iter_mut().zip(t) {
            a.0 += b.0;
            a.1 += b.1;
        }
        opt += o;
    }
    let mut total = opt;
    for (l, (f, b)) in m.layers().iter().zip(&acc) {
        println!("{:20} fwd {:8.3} ms  bwd {:8.3} ms", l.name(), f / iters as f64 * 1e3, b / iters as f64 * 1e3);
        total += f + b;
    }
    println!(
        "optimizer {:.3} ms; step {:.3} ms = {:.0} samples/s",
        opt / iters as f64 * 1e3,
        total / iters as f64 * 1e3,
        batch as f64 * iters as f64 / total
    );
    Ok(())
}
