//! Micro-benchmarks of the convolution kernels on the presets' layer shapes, one thread,
//! one chunk of samples: GFLOP/s of the forward pass, the weight gradient and the input
//! gradient, for each implementation this processor runs.
//!
//! `cargo bench -p convnet --bench kernels`

use convnet::kernels::conv::{col2im, im2col, Padding, Window};
use convnet::kernels::gemm::{gemm, GemmShape};
use convnet::kernels::implicit;
use std::time::Instant;

fn time(mut f: impl FnMut()) -> f64 {
    f();
    let start = Instant::now();
    let mut n = 0;
    while start.elapsed().as_secs_f64() < 0.3 {
        f();
        n += 1;
    }
    start.elapsed().as_secs_f64() / n as f64
}

fn main() {
    // (name, h, w, c, k, f, padding, samples per chunk)
    let layers = [
        ("lenet5 conv1", 28, 28, 1, 5, 6, Padding::Same, 16),
        ("lenet5 conv2", 14, 14, 6, 5, 16, Padding::Valid, 16),
        ("lenet5 conv3", 5, 5, 16, 5, 120, Padding::Valid, 16),
        ("mnist-cnn conv1", 28, 28, 1, 3, 32, Padding::Valid, 8),
        ("mnist-cnn conv2", 26, 26, 32, 3, 64, Padding::Valid, 4),
        ("cifar10-cnn conv1", 32, 32, 3, 3, 32, Padding::Valid, 8),
        ("cifar10-cnn conv2", 30, 30, 32, 3, 32, Padding::Valid, 4),
        ("cifar10-cnn conv3", 14, 14, 32, 3, 64, Padding::Valid, 8),
        ("cifar10-cnn conv4", 12, 12, 64, 3, 64, Padding::Valid, 8),
    ];
    println!(
        "{:20} {:>8} | {:>9} {:>9} {:>9} | {:>9} {:>9} {:>9}",
        "layer", "MFLOP", "fwd", "wgrad", "dx", "gemm fwd", "gemm dw", "gemm dx"
    );
    for (name, h, wd, c, k, f, pad, n) in layers {
        let w = Window::new(h, wd, c, (k, k), (1, 1), pad).unwrap();
        let x: Vec<f32> = (0..n * w.in_len()).map(|i| (i % 13) as f32 * 0.1).collect();
        let kern: Vec<f32> = (0..w.patch_len() * f).map(|i| (i % 7) as f32 * 0.01).collect();
        let mut dy: Vec<f32> = (0..n * w.out_pixels() * f).map(|i| (i % 5) as f32 * 0.1).collect();
        let mut y = vec![0.0; dy.len()];
        let mut dk = vec![0.0; kern.len()];
        let mut dx = vec![0.0; x.len()];
        let flop = 2.0 * (n * w.out_pixels() * w.patch_len() * f) as f64;
        let gf = |t: f64| flop / t / 1e9;
        let (mut tf, mut tw, mut td) = (f64::NAN, f64::NAN, f64::NAN);
        if implicit::available() {
            let mut s = implicit::ImplicitScratch::default();
            let mut p = implicit::PreparedKernel::default();
            tf = time(|| {
                p.for_forward(&w, &kern, f);
                implicit::forward(&w, &x, n, &kern, &p, None, f, true, &mut y, &mut s)
            });
            let mut acc = vec![0.0; implicit::grad_len(&w, f)];
            tw = time(|| {
                implicit::weight_grad(&w, &x, n, &dy, f, &mut acc, &mut s);
                implicit::finish_weight_grad(&w, f, &acc, &mut dk);
            });
            td = time(|| {
                p.for_backward(&w, &kern, f);
                implicit::backward_data(&w, &mut dy, n, &p, f, &mut dx, &mut s, &mut |_, _| {})
            });
        }
        let (m, kk) = (n * w.out_pixels(), w.patch_len());
        let mut cols = vec![0.0; m * kk];
        let gfw = time(|| {
            im2col(&w, &x, n, &mut cols);
            gemm(GemmShape::nn(m, kk, f), &cols, &kern, &mut y, false);
        });
        let gdw = time(|| {
            im2col(&w, &x, n, &mut cols);
            gemm(GemmShape::tn(kk, m, f), &cols, &dy, &mut dk, true);
        });
        let gdx = time(|| {
            gemm(GemmShape::nt(m, f, kk), &dy, &kern, &mut cols, false);
            col2im(&w, &cols, n, &mut dx);
        });
        println!(
            "{name:20} {:8.1} | {:9.1} {:9.1} {:9.1} | {:9.1} {:9.1} {:9.1}   GFLOP/s",
            flop / 1e6,
            gf(tf),
            gf(tw),
            gf(td),
            gf(gfw),
            gf(gdw),
            gf(gdx)
        );
    }
}
