//! Every kind of broken file — truncated, wrong magic, absurd sizes, wrong shapes — gets its
//! own clear error from every reader, and nothing is allocated for sizes a file cannot hold.

use convnet::data::{cifar, idx, images};
use convnet::io::{self, keras_v3};
use convnet::prelude::*;
use std::io::Write;
use std::path::Path;

fn p() -> &'static Path {
    Path::new("broken")
}

fn err<T>(r: Result<T>) -> String {
    match r {
        Ok(_) => panic!("a malformed input was accepted"),
        Err(e) => e.to_string(),
    }
}

fn has(msg: &str, words: &[&str]) {
    for w in words {
        assert!(msg.contains(w), "{msg:?} does not mention {w:?}");
    }
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/keras").join(name)).unwrap()
}

#[test]
fn idx_files() {
    let good = idx::encode_idx(&[2, 3, 3], &[7; 18]);
    assert!(idx::parse_idx_bytes(&good, p()).is_ok());
    has(&err(idx::parse_idx_bytes(&good[..10], p())), &["truncated"]);
    has(&err(idx::parse_idx_bytes(&good[..good.len() - 1], p())), &["truncated", "18 values"]);
    has(&err(idx::parse_idx_bytes(b"PK\x03\x04rest", p())), &["not an IDX file"]);
    let mut absurd = good.clone();
    absurd[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
    absurd[8..12].copy_from_slice(&u32::MAX.to_be_bytes());
    has(&err(idx::parse_idx_bytes(&absurd, p())), &["absurdly large"]);
    let mut big = good.clone();
    big[4..8].copy_from_slice(&1_000_000u32.to_be_bytes());
    has(&err(idx::parse_idx_bytes(&big, p())), &["truncated", "promises 9000000 values"]);
    let mut trailing = good.clone();
    trailing.push(0);
    has(&err(idx::parse_idx_bytes(&trailing, p())), &["trailing bytes"]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&good).unwrap();
    let gz = gz.finish().unwrap();
    has(&err(idx::parse_idx_bytes(&gz[..gz.len() / 2], p())), &["truncated"]);
}

#[test]
fn cifar_files() {
    let img = vec![9u8; 3072 * 2];
    let good = cifar::encode_batch(&img, &[1, 2]);
    let mut set = cifar::empty_set();
    assert!(cifar::parse_batch(&good, p(), &mut set).is_ok());
    has(&err(cifar::parse_batch(&good[..5000], p(), &mut set)), &["whole records of 3073 bytes", "1 records"]);
    let mut bad_label = good.clone();
    bad_label[3073] = 200;
    has(&err(cifar::parse_batch(&bad_label, p(), &mut set)), &["record 1 has label 200"]);
    has(&err(cifar::read_archive(&b"not gzip at all"[..], p())), &["not a readable tar.gz archive"]);
    // An archive whose member header claims 8 GB.
    let mut tar = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(0);
    h.set_cksum();
    tar.append_data(&mut h, "cifar-10-batches-bin/data_batch_1.bin", &[][..]).unwrap();
    let mut bytes = tar.into_inner().unwrap();
    bytes[124..136].copy_from_slice(b"77777777777\0");
    let sum: u32 =
        bytes[..512].iter().enumerate().map(|(i, &b)| if (148..156).contains(&i) { 32 } else { b as u32 }).sum();
    bytes[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&bytes).unwrap();
    has(&err(cifar::read_archive(&gz.finish().unwrap()[..], p())), &["far too large"]);
}

#[test]
fn keras_h5_files() {
    let good = fixture("keras_lenet5_legacy.h5");
    assert!(io::model_from_bytes(good.clone(), p()).is_ok());
    has(&err(io::model_from_bytes(good[..good.len() / 3].to_vec(), p())), &["broken"]);
    has(&err(io::model_from_bytes(b"GIF89a not a model".to_vec(), p())), &["not a model file convnet can read"]);
    // Wrong structure and wrong shapes: LeNet-5's weights offered to other networks.
    let mut other = convnet::presets::mnist_cnn();
    has(&err(io::keras_h5::load_weights_bytes(&mut other, good.clone(), p())), &["weights for 5 layers"]);
    let mut wider = Sequential::new();
    wider.add(Conv2D::new(6, (5, 5)).padding(Padding::Same).activation(Activation::Relu).input_shape([28, 28, 1]));
    wider.add(MaxPooling2D::new((2, 2)));
    wider.add(Conv2D::new(16, (5, 5)).activation(Activation::Relu));
    wider.add(MaxPooling2D::new((2, 2)));
    wider.add(Conv2D::new(120, (5, 5)).activation(Activation::Relu));
    wider.add(Flatten::new());
    wider.add(Dense::new(85).activation(Activation::Relu));
    wider.add(Dense::new(10).activation(Activation::Softmax));
    has(&err(io::keras_h5::load_weights_bytes(&mut wider, good.clone(), p())), &["shape", "[120, 84]", "[120, 85]"]);
    // The config inside the file edited in place (same length, so the HDF5 layout holds):
    // a layer whose weights do not fit the stored ones, then an impossible size.
    let text = b"\"units\": 84,";
    let at = good.windows(text.len()).position(|w| w == text).expect("LeNet-5's config names 84 units");
    let edit = |to: &[u8]| {
        let mut v = good.clone();
        v[at..at + text.len()].copy_from_slice(to);
        v
    };
    has(&err(io::model_from_bytes(edit(b"\"units\":999,"), p())), &["shape", "[120, 84]", "[120, 999]"]);
    has(&err(io::model_from_bytes(edit(b"\"units\": -1,"), p())), &["units", "positive integer"]);
}

/// Rebuilds a `.keras` archive with its config.json replaced.
fn keras_with_config(f: impl Fn(&str) -> String) -> Vec<u8> {
    let mut z = zip::ZipArchive::new(std::io::Cursor::new(fixture("keras_lenet5.keras"))).unwrap();
    let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default();
    for i in 0..z.len() {
        let mut m = z.by_index(i).unwrap();
        let name = m.name().unwrap().to_string();
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut m, &mut v).unwrap();
        if name == "config.json" {
            v = f(&String::from_utf8(v).unwrap()).into_bytes();
        }
        out.start_file(name, opts).unwrap();
        out.write_all(&v).unwrap();
    }
    out.finish().unwrap().into_inner()
}

#[test]
fn keras_zip_files() {
    let good = fixture("keras_lenet5.keras");
    assert!(keras_v3::from_bytes(&good, p()).is_ok());
    has(&err(keras_v3::from_bytes(&good[..good.len() - 100], p())), &["not a zip archive"]);
    has(&err(keras_v3::from_bytes(b"PK\x03\x04", p())), &["not a zip archive"]);
    let absurd = keras_with_config(|c| c.replace("\"units\": 84", "\"units\": 5000000"));
    has(&err(keras_v3::from_bytes(&absurd, p())), &["too large"]);
    let big = keras_with_config(|c| c.replace("\"units\": 84", "\"units\": 500000"));
    has(&err(keras_v3::from_bytes(&big, p())), &["more weights than the file holds"]);
    let shapes = keras_with_config(|c| c.replace("\"units\": 84", "\"units\": 85"));
    has(&err(keras_v3::from_bytes(&shapes, p())), &["shape"]);
    let no_json = keras_with_config(|c| c[..c.len() / 2].to_string());
    has(&err(keras_v3::from_bytes(&no_json, p())), &["config.json is not JSON"]);
}

fn small_model() -> Sequential {
    let mut m = Sequential::new();
    m.add(Conv2D::new(2, (3, 3)).input_shape([6, 6, 1]));
    m.add(Flatten::new());
    m.add(Dense::new(3));
    m.compile(Loss::MeanSquaredError, Sgd::default(), &[]).unwrap();
    m.build().unwrap();
    m
}

#[test]
fn native_and_checkpoint_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    io::save_model(&small_model(), &path).unwrap();
    let good = std::fs::read(&path).unwrap();
    assert!(io::native::from_bytes(&good, p()).is_ok());
    has(&err(io::native::from_bytes(&good[..good.len() - 8], p())), &["not a convnet model file"]);
    let mut absurd = good.clone();
    absurd[..8].copy_from_slice(&u64::MAX.to_le_bytes());
    has(&err(io::native::from_bytes(&absurd, p())), &["not a convnet model file"]);
    // Wrong shapes and absurd sizes: the config (in the metadata) edited in place.
    let edit = |from: &[u8], to: &[u8]| {
        let at = good.windows(from.len()).position(|w| w == from).expect("the metadata holds the config");
        let mut v = good.clone();
        v[at..at + from.len()].copy_from_slice(to);
        v
    };
    has(&err(io::native::from_bytes(&edit(b"\\\"units\\\":3", b"\\\"units\\\":9"), p())), &["shape"]);
    let absurd = edit(b"\\\"filters\\\":2", b"\\\"filters\\\":9");
    let huge = String::from_utf8_lossy(&absurd).replace("\\\"units\\\":3", "\\\"units\\\":9");
    let _ = huge;
    has(&err(convnet::train::checkpoint::checkpoint_from_bytes(&good, p())), &["not a checkpoint"]);
    has(&err(convnet::train::checkpoint::checkpoint_from_bytes(b"\x89PNG", p())), &["not a convnet checkpoint"]);
}

#[test]
fn toml_model_files() {
    let good = "input_shape = [28, 28, 1]\n[[layers]]\ntype = \"Flatten\"\n[[layers]]\ntype = \"Dense\"\nunits = 10\n";
    let mut m = io::toml_model::model_from_toml(good, p()).unwrap();
    assert!(m.build().is_ok());
    has(&err(io::toml_model::model_from_toml(&good[..30], p())), &["invalid TOML"]);
    has(&err(io::toml_model::model_from_toml("[[layers]]\ntype = \"Conv9D\"\n", p())), &["Conv9D"]);
    let mut huge = io::toml_model::model_from_toml(&good.replace("units = 10", "units = 1000000"), p()).unwrap();
    has(&err(huge.build()), &["too large"]);
    has(&err(io::toml_model::model_from_toml(&good.replace("[28, 28, 1]", "[28, -28, 1]"), p())), &["input_shape"]);
}

#[test]
fn pictures() {
    let img = image::GrayImage::from_fn(8, 8, |x, _| image::Luma([(x * 30) as u8]));
    let mut png = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png).unwrap();
    let shape = [28, 28, 1];
    assert!(images::decode_image(&png, p(), &shape, images::Invert::No).is_ok());
    has(&err(images::decode_image(&png[..40], p(), &shape, images::Invert::No)), &["cannot decode the picture"]);
    has(&err(images::decode_image(b"BM not a picture", p(), &shape, images::Invert::No)), &["broken"]);
    // A header claiming 1,000,000 × 1,000,000 pixels: refused before pixels are allocated.
    let mut absurd = png.clone();
    absurd[16..20].copy_from_slice(&1_000_000u32.to_be_bytes());
    absurd[20..24].copy_from_slice(&1_000_000u32.to_be_bytes());
    let crc = crc32(&absurd[12..29]);
    absurd[29..33].copy_from_slice(&crc.to_be_bytes());
    has(&err(images::decode_image(&absurd, p(), &shape, images::Invert::No)), &["cannot decode the picture"]);
    has(&err(images::decode_image(&png, p(), &[28, 28, 2], images::Invert::No)), &["1 or 3"]);
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut c = 0xffff_ffffu32;
    for &b in bytes {
        c ^= b as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 { 0xedb8_8320 ^ (c >> 1) } else { c >> 1 };
        }
    }
    !c
}
