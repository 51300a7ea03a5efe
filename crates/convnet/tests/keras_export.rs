//! Writes models in Keras' formats for the Python check in `tests/keras_check/check.py`,
//! which loads them with real Keras 2 and Keras 3. Ignored in normal runs; the check runs it:
//! `CONVNET_EXPORT_DIR=dir cargo test --release -p convnet --test keras_export -- --ignored`.

use convnet::prelude::*;
use std::io::Write;
use std::path::Path;

/// Writes a float32 NumPy `.npy` file.
fn write_npy(path: &Path, t: &Tensor) {
    let shape: Vec<String> = t.shape().iter().map(|d| d.to_string()).collect();
    let shape = if shape.len() == 1 { format!("{},", shape[0]) } else { shape.join(", ") };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({shape}), }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut f = std::fs::File::create(path).unwrap();
    f.write_all(b"\x93NUMPY\x01\x00").unwrap();
    f.write_all(&(header.len() as u16).to_le_bytes()).unwrap();
    f.write_all(header.as_bytes()).unwrap();
    for v in t.data() {
        f.write_all(&v.to_le_bytes()).unwrap();
    }
}

#[test]
#[ignore = "run by tests/keras_check/check.py"]
fn export_models_for_keras() {
    let dir = std::path::PathBuf::from(std::env::var("CONVNET_EXPORT_DIR").expect("set CONVNET_EXPORT_DIR"));
    std::fs::create_dir_all(&dir).unwrap();
    let mut rng = convnet::Rng::new(11);
    for name in convnet::presets::NAMES {
        let mut m = convnet::presets::preset(name).unwrap().seed(5);
        m.compile(
            Loss::CategoricalCrossentropy,
            Adam { learning_rate: 2e-3, ..Default::default() },
            &[Metric::Accuracy],
        )
        .unwrap();
        let mut shape = vec![8];
        shape.extend(m.input_shape().unwrap());
        let n: usize = shape.iter().product();
        let x = Tensor::from_vec(&shape, (0..n).map(|_| rng.uniform()).collect()).unwrap();
        let labels: Vec<u8> = (0..8).map(|i| (i * 3 % 10) as u8).collect();
        let y = to_categorical(&labels, 10);
        for _ in 0..3 {
            m.train_on_batch(&x, &y).unwrap();
        }
        write_npy(&dir.join(format!("{name}_x.npy")), &x);
        write_npy(&dir.join(format!("{name}_y.npy")), &y);
        write_npy(&dir.join(format!("{name}_pred.npy")), &m.predict(&x, 8).unwrap());
        for ext in ["h5", "keras"] {
            convnet::io::save_model(&m, &dir.join(format!("{name}.{ext}"))).unwrap();
        }
        let no_opt = convnet::io::SaveOptions { include_optimizer: false };
        convnet::io::save_model_with(&m, &dir.join(format!("{name}_noopt.h5")), no_opt).unwrap();
        // One more step here, for Keras to repeat from the saved state.
        m.train_on_batch(&x, &y).unwrap();
        write_npy(&dir.join(format!("{name}_pred_after.npy")), &m.predict(&x, 8).unwrap());
    }
}
