//! Development aid: the implicit forward kernel on 64 samples per thread, each thread with its
//! own data, to see how the two cores scale without any framework around them.
use convnet::kernels::conv::{Padding, Window};
use convnet::kernels::implicit;
use std::time::Instant;

fn work(seconds: f64) -> f64 {
    let w = Window::new(26, 26, 32, (3, 3), (1, 1), Padding::Valid).unwrap();
    let (n, f, chunk) = (64, 64, 4);
    // Tensors, as the layers use: 64-byte aligned.
    let mut xt = convnet::Tensor::zeros(&[n * w.in_len()]);
    xt.data_mut().iter_mut().enumerate().for_each(|(i, v)| *v = (i % 13) as f32 * 0.1);
    let x = xt.data();
    let kern: Vec<f32> = (0..w.patch_len() * f).map(|i| (i % 7) as f32 * 0.01).collect();
    let mut yt = convnet::Tensor::zeros(&[n * w.out_pixels() * f]);
    let y = yt.data_mut();
    let mut s = implicit::ImplicitScratch::default();
    let mut p = implicit::PreparedKernel::default();
    p.for_forward(&w, &kern, f);
    let t = Instant::now();
    let mut reps = 0;
    while t.elapsed().as_secs_f64() < seconds {
        for c in (0..n).step_by(chunk) {
            implicit::forward(
                &w,
                &x[c * w.in_len()..],
                chunk,
                &kern,
                &p,
                None,
                f,
                true,
                &mut y[c * w.out_pixels() * f..],
                &mut s,
            );
        }
        reps += 1;
    }
    2.0 * (reps * n * w.out_pixels() * w.patch_len() * f) as f64 / t.elapsed().as_secs_f64() / 1e9
}

fn main() {
    println!("1 thread: {:.0} GFLOP/s", work(1.0));
    if std::env::var("ONE").is_ok() {
        return;
    }
    let h: Vec<_> = (0..2).map(|_| std::thread::spawn(|| work(1.0))).collect();
    let r: Vec<f64> = h.into_iter().map(|t| t.join().unwrap()).collect();
    println!("2 threads: {:.0} + {:.0} = {:.0} GFLOP/s", r[0], r[1], r[0] + r[1]);
}
