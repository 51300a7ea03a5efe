//! Development aid: the three products of a Dense layer (9216 -> 128, batch 128), own kernels.
use convnet::kernels::gemm::{gemm, par_gemm, GemmShape};
use std::time::Instant;
fn time(mut f: impl FnMut()) -> f64 {
    f();
    let t = Instant::now();
    let mut n = 0;
    while t.elapsed().as_secs_f64() < 0.5 {
        f();
        n += 1;
    }
    t.elapsed().as_secs_f64() / n as f64
}
fn main() {
    let (b, i, u) = (128, 9216, 128);
    let x: Vec<f32> = (0..b * i).map(|v| (v % 7) as f32 * 0.1).collect();
    let w: Vec<f32> = (0..i * u).map(|v| (v % 5) as f32 * 0.1).collect();
    let dz: Vec<f32> = (0..b * u).map(|v| (v % 3) as f32 * 0.1).collect();
    let mut y = vec![0.0; b * u];
    let mut dw = vec![0.0; i * u];
    let mut dx = vec![0.0; b * i];
    let fl = 2.0 * (b * i * u) as f64 / 1e9;
    for (name, par) in [("1 thread", false), ("2 threads", true)] {
        let g = |s, a: &[f32], bb: &[f32], c: &mut [f32]| {
            if par {
                par_gemm(s, a, bb, c, false)
            } else {
                gemm(s, a, bb, c, false)
            }
        };
        let t1 = time(|| g(GemmShape::nn(b, i, u), &x, &w, &mut y));
        let t2 = time(|| g(GemmShape::tn(i, b, u), &x, &dz, &mut dw));
        let t3 = time(|| g(GemmShape::nt(b, u, i), &dz, &w, &mut dx));
        let mut wt = vec![0.0; i * u];
        let t4 = time(|| convnet::kernels::gemm::transpose(&w, i, u, &mut wt));
        let t5 = time(|| g(GemmShape::nn(b, u, i), &dz, &wt, &mut dx));
        println!(
            "{name}: fwd {:.0}  dW {:.0}  dx(nt) {:.0}  dx(nn) {:.0} GFLOP/s; transpose {:.3} ms, fwd {:.3} ms, dW {:.3} ms, dx(nn) {:.3} ms",
            fl / t1,
            fl / t2,
            fl / t3,
            fl / t5,
            t4 * 1e3,
            t1 * 1e3,
            t2 * 1e3,
            t5 * 1e3
        );
    }
}
