//! Augmentation against Keras: fixed transforms reproduce `ImageDataGenerator.apply_transform`
//! (tests/fixtures/augment, made by its script with tf_keras and scipy).

use convnet::data::augment::{FillMode, ImageDataGenerator, Transform};
use serde_json::Value;

#[test]
fn fixed_transforms_match_keras() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/augment/keras_transforms.json");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let shape: Vec<usize> = v["shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect();
    let (h, w, c) = (shape[0], shape[1], shape[2]);
    let image: Vec<f32> = v["image"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect();
    let cases = v["cases"].as_array().unwrap();
    assert!(cases.len() >= 30);
    for case in cases {
        let p = &case["params"];
        let num = |k: &str, d: f32| p.get(k).and_then(Value::as_f64).map_or(d, |x| x as f32);
        let t = Transform {
            theta: num("theta", 0.0),
            tx: num("tx", 0.0),
            ty: num("ty", 0.0),
            shear: num("shear", 0.0),
            zx: num("zx", 1.0),
            zy: num("zy", 1.0),
            flip_horizontal: p.get("flip_horizontal").and_then(Value::as_bool).unwrap_or(false),
            flip_vertical: p.get("flip_vertical").and_then(Value::as_bool).unwrap_or(false),
            channel_shift: p.get("channel_shift_intensity").and_then(Value::as_f64).map(|x| x as f32),
            brightness: p.get("brightness").and_then(Value::as_f64).map(|x| x as f32),
        };
        let g = ImageDataGenerator {
            fill_mode: FillMode::parse(case["fill_mode"].as_str().unwrap()).unwrap(),
            cval: case["cval"].as_f64().unwrap() as f32,
            ..Default::default()
        };
        let mut out = vec![0.0f32; image.len()];
        g.apply(&t, &image, h, w, c, &mut out);
        let want: Vec<f32> = case["output"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect();
        let worst = out.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(worst < 1e-2, "{} {p}: max |diff| {worst} (values 0..255)", case["fill_mode"]);
    }
}
