//! Keras model files: files written by real Keras 2 and Keras 3 (tests/fixtures/keras, see its
//! README) load here and reproduce Keras' outputs; files written here reload identically.

use convnet::io::{self, keras_h5};
use convnet::prelude::*;
use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/keras").join(name)
}

fn f32_file(name: &str) -> Vec<f32> {
    std::fs::read(fixture(name))
        .unwrap()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// Reads the float32 arrays of a NumPy `.npz` (uncompressed) archive.
fn npz(name: &str) -> HashMap<String, Tensor> {
    let bytes = std::fs::read(fixture(name)).unwrap();
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    let mut out = HashMap::new();
    for i in 0..zip.len() {
        let mut f = zip.by_index(i).unwrap();
        let mut b = Vec::new();
        f.read_to_end(&mut b).unwrap();
        assert_eq!(&b[..6], b"\x93NUMPY");
        let hlen = u16::from_le_bytes([b[8], b[9]]) as usize;
        let header = std::str::from_utf8(&b[10..10 + hlen]).unwrap();
        assert!(header.contains("'descr': '<f4'") && header.contains("'fortran_order': False"), "{header}");
        let shape_txt = header.split("'shape': (").nth(1).unwrap().split(')').next().unwrap();
        let shape: Vec<usize> = shape_txt.split(',').filter_map(|s| s.trim().parse().ok()).collect();
        let data: Vec<f32> =
            b[10 + hlen..].chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        out.insert(f.name().unwrap().trim_end_matches(".npy").to_string(), Tensor::from_vec(&shape, data).unwrap());
    }
    out
}

fn assert_close(a: &[f32], b: &[f32], tol: f32, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}");
    let worst = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
    assert!(worst <= tol, "{what}: max |diff| {worst}");
}

const FILES: [&str; 3] = ["keras_lenet5_legacy.h5", "keras2_lenet5_legacy.h5", "keras_lenet5.keras"];

#[test]
fn keras_files_reproduce_keras_outputs_layer_by_layer() {
    let x = Tensor::from_vec(&[4, 28, 28, 1], f32_file("keras_lenet5_x.bin")).unwrap();
    let y = f32_file("keras_lenet5_y.bin");
    let acts = npz("keras_lenet5_io.npz");
    assert_eq!(acts["x"].data(), x.data());
    for file in FILES {
        let (mut m, warnings) = io::load_model_with_warnings(&fixture(file)).unwrap();
        let p = m.predict(&x, 4).unwrap();
        assert_close(p.data(), &y, 1e-5, file);
        let outs = m.layer_outputs(&x).unwrap();
        assert_eq!(outs.len(), 8);
        for (i, (out, layer)) in outs.iter().zip(m.layers()).enumerate() {
            let key = format!("act_{i}_{}", layer.name());
            let want = acts.get(&key).unwrap_or_else(|| panic!("{file}: no {key}"));
            assert_eq!(&out.shape()[1..], &want.shape()[1..], "{file} {key}");
            assert_close(out.data(), want.data(), 1e-5, &format!("{file} {key}"));
        }
        // Compiled as saved: Adam(1e-3), categorical cross-entropy, accuracy; 32 steps taken.
        let c = m.compiled().expect("compiled from the file");
        assert_eq!(c.loss, Loss::CategoricalCrossentropy);
        assert_eq!(c.metrics, vec![Metric::Accuracy]);
        assert!(matches!(c.optimizer, Optimizer::Adam(a) if (a.learning_rate - 1e-3).abs() < 1e-9));
        assert!(warnings.is_empty(), "{file}: {warnings:?}");
        let st = m.optimizer_state();
        assert_eq!(st.iterations, 32, "{file}");
        assert_eq!(st.slots.len(), 10);
        assert!(st.slots.iter().all(|s| s.len() == 2 && s.iter().all(|v| v.iter().any(|x| *x != 0.0))));
    }
}

#[test]
fn keras2_and_keras3_files_hold_the_same_optimizer_state() {
    let a = io::load_model(&fixture("keras_lenet5_legacy.h5")).unwrap();
    let b = io::load_model(&fixture("keras2_lenet5_legacy.h5")).unwrap();
    let c = io::load_model(&fixture("keras_lenet5.keras")).unwrap();
    assert_eq!(a.optimizer_state(), b.optimizer_state());
    assert_eq!(a.optimizer_state(), c.optimizer_state());
    assert_eq!(a.get_weights(), b.get_weights());
}

#[test]
fn saved_files_reload_bit_identically_in_every_format() {
    let tmp = tempfile::tempdir().unwrap();
    let mut rng = convnet::Rng::new(3);
    for name in convnet::presets::NAMES {
        let mut m = convnet::presets::preset(name).unwrap();
        m.compile(Loss::CategoricalCrossentropy, Adam::default(), &[Metric::Accuracy]).unwrap();
        let mut shape = vec![3];
        shape.extend(m.input_shape().unwrap());
        let n: usize = shape.iter().product();
        let x = Tensor::from_vec(&shape, (0..n).map(|_| rng.uniform()).collect()).unwrap();
        let y = to_categorical(&[0, 4, 9], 10);
        m.train_on_batch(&x, &y).unwrap();
        m.train_on_batch(&x, &y).unwrap();
        let want = m.predict(&x, 3).unwrap();
        for ext in ["h5", "keras", "safetensors"] {
            let p = tmp.path().join(format!("{name}.{ext}"));
            io::save_model(&m, &p).unwrap();
            let (mut back, warnings) = io::load_model_with_warnings(&p).unwrap();
            assert!(warnings.is_empty(), "{name}.{ext}: {warnings:?}");
            assert_eq!(back.predict(&x, 3).unwrap(), want, "{name}.{ext}");
            assert_eq!(back.optimizer_state(), m.optimizer_state(), "{name}.{ext}");
            assert_eq!(back.compiled().unwrap().optimizer, m.compiled().unwrap().optimizer);
            // Training resumes exactly where it stopped.
            back.set_rng(m.rng().clone());
            let mut cont = convnet::io::load_model(&p).unwrap();
            cont.set_rng(m.rng().clone());
            let mut orig = io::load_model(&p).unwrap();
            orig.set_rng(m.rng().clone());
            assert_eq!(cont.train_on_batch(&x, &y).unwrap(), orig.train_on_batch(&x, &y).unwrap());
        }
        // Weights alone, in both Keras layouts.
        for file in ["w.weights.h5", "w_legacy.h5"] {
            let p = tmp.path().join(file);
            io::save_weights(&m, &p).unwrap();
            let mut fresh = convnet::presets::preset(name).unwrap().seed(99);
            io::load_weights(&mut fresh, &p).unwrap();
            assert_eq!(fresh.predict(&x, 3).unwrap(), want, "{name} {file}");
        }
    }
}

#[test]
fn keras_weight_files_load_into_a_matching_model() {
    let mut m = convnet::presets::lenet5();
    io::load_weights(&mut m, &fixture("keras_lenet5_legacy.h5")).unwrap();
    let x = Tensor::from_vec(&[4, 28, 28, 1], f32_file("keras_lenet5_x.bin")).unwrap();
    assert_close(m.predict(&x, 4).unwrap().data(), &f32_file("keras_lenet5_y.bin"), 1e-5, "load_weights");
    // A model of another shape is refused with the layer named.
    let mut other = convnet::presets::mnist_cnn();
    let e = io::load_weights(&mut other, &fixture("keras_lenet5_legacy.h5")).unwrap_err().to_string();
    assert!(e.contains("layers with weights") || e.contains("shape"), "{e}");
}

/// Builds an .h5 file with a given model_config and one weight per conv layer.
fn h5_with_config(config: &str) -> Vec<u8> {
    let mut b = hdf5_pure::FileBuilder::new();
    b.set_attr("model_config", hdf5_pure::AttrValue::VarLenAsciiString(config.into()));
    b.finish().unwrap()
}

#[test]
fn bad_files_give_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("bad.h5");
    // A layer class convnet does not have is named.
    let cfg = r#"{"class_name": "Sequential", "config": {"name": "s", "layers": [
        {"class_name": "InputLayer", "config": {"batch_input_shape": [null, 4]}},
        {"class_name": "LSTM", "config": {"units": 3}}]}}"#;
    std::fs::write(&p, h5_with_config(cfg)).unwrap();
    let e = io::load_model(&p).unwrap_err().to_string();
    assert!(e.contains("LSTM") && e.contains("bad.h5"), "{e}");
    // Truncated files.
    let good = std::fs::read(fixture("keras_lenet5_legacy.h5")).unwrap();
    std::fs::write(&p, &good[..good.len() / 3]).unwrap();
    assert!(io::load_model(&p).is_err());
    let good = std::fs::read(fixture("keras_lenet5.keras")).unwrap();
    let pk = tmp.path().join("bad.keras");
    std::fs::write(&pk, &good[..good.len() / 2]).unwrap();
    assert!(io::load_model(&pk).is_err());
    // A weight of the wrong shape: the same file's config with a wider first conv.
    let f = hdf5_pure::File::open(fixture("keras_lenet5_legacy.h5")).unwrap();
    let attrs = f.root().attrs().unwrap();
    let mc = attrs["model_config"].as_str().unwrap().replacen("\"filters\": 6", "\"filters\": 7", 1);
    let mut m = convnet::io::config::model_from_config(&serde_json::from_str(&mc).unwrap()).unwrap();
    let e = io::load_weights(&mut m, &fixture("keras_lenet5_legacy.h5")).unwrap_err().to_string();
    assert!(e.contains("conv2d/kernel") && e.contains("shape"), "{e}");
    // Not a model at all.
    std::fs::write(&p, b"\x89HDF\r\n\x1a\nnonsense").unwrap();
    assert!(io::load_model(&p).is_err());
    let _ = keras_h5::KERAS_VERSION;
}
