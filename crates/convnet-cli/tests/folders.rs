//! `convnet train`, `evaluate` and `predict` on a folder of pictures, as a user runs them.

use convnet::prelude::*;
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Stdio};

fn convnet(args: &[&str]) -> (bool, Value, String) {
    let home = std::env::temp_dir().join("convnet-cli-test-empty-home");
    let out = Command::new(env!("CARGO_BIN_EXE_convnet"))
        .args(args)
        .env("HOME", &home)
        .env("CONVNET_CACHE_DIR", &home)
        .env_remove("CONVNET_DATA_DIR")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let json = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.success(), json, String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Two classes told apart by colour: light pictures ("day") and dark ones ("night"), mixed sizes.
fn pictures(dir: &Path) {
    let mut rng = convnet::Rng::new(9);
    for (class, base) in [("day", 190u8), ("night", 40u8)] {
        std::fs::create_dir_all(dir.join(class)).unwrap();
        for i in 0..30 {
            let (w, h) = (12 + rng.below(20) as u32, 12 + rng.below(20) as u32);
            let img = image::RgbImage::from_fn(w, h, |_, _| {
                image::Rgb([base.wrapping_add(rng.below(40) as u8), base, base.wrapping_add(rng.below(20) as u8)])
            });
            let ext = if i % 2 == 0 { "png" } else { "jpg" };
            img.save(dir.join(class).join(format!("{i}.{ext}"))).unwrap();
        }
    }
    std::fs::write(dir.join("day/.DS_Store"), b"junk").unwrap();
}

#[test]
fn train_evaluate_and_predict_on_a_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("photos");
    pictures(&data);
    let model = tmp.path().join("small.keras");
    let mut m = Sequential::new();
    m.add(Conv2D::new(4, (3, 3)).activation(Activation::Relu).input_shape([16, 16, 3]));
    m.add(Flatten::new());
    m.add(Dense::new(2).activation(Activation::Softmax));
    m.compile(Loss::CategoricalCrossentropy, Adam::default(), &[Metric::Accuracy]).unwrap();
    m.build().unwrap();
    convnet::io::save_model(&m, &model).unwrap();
    let (d, s, trained) = (data.to_str().unwrap(), model.to_str().unwrap(), tmp.path().join("trained.h5"));
    let t = trained.to_str().unwrap();

    let (ok, out, err) =
        convnet(&["train", s, "--data-dir", d, "--epochs", "30", "--batch-size", "8", "--json", "--save", t]);
    assert!(ok, "{err}");
    assert_eq!(out["class_names"], serde_json::json!(["day", "night"]));
    // 60 pictures, ⌊60 · 0.2⌋ = 12 held out.
    assert_eq!((out["train_samples"].as_u64(), out["test_samples"].as_u64()), (Some(48), Some(12)));
    assert!(out["test_accuracy"].as_f64().unwrap() >= 0.9, "{out}");

    let (ok, out, err) = convnet(&["evaluate", t, "--data-dir", d, "--json"]);
    assert!(ok, "{err}");
    assert_eq!(out["class_names"], serde_json::json!(["day", "night"]));
    assert_eq!(out["samples"].as_u64(), Some(60));

    let (ok, out, err) = convnet(&["predict", t, data.join("night").to_str().unwrap(), "--json"]);
    assert!(ok, "{err}");
    let results = out["results"].as_array().unwrap();
    assert_eq!(results.len(), 30);
    let right = results.iter().filter(|r| r["class"] == "night").count();
    assert!(right >= 27, "{right} of 30 night pictures predicted as night");
    assert!(
        results[0]["file"].as_str().unwrap().ends_with(".png")
            || results[0]["file"].as_str().unwrap().ends_with(".jpg")
    );

    // An unreadable picture stops training before it starts, unless skipped.
    std::fs::write(data.join("night/broken.jpg"), b"not a jpeg").unwrap();
    let (ok, _, err) = convnet(&["train", s, "--data-dir", d, "--epochs", "1", "--json"]);
    assert!(!ok && err.contains("broken.jpg") && err.contains("--skip-bad-images"), "{err}");
    let (ok, out, err) = convnet(&["train", s, "--data-dir", d, "--epochs", "1", "--json", "--skip-bad-images"]);
    assert!(ok, "{err}");
    assert_eq!(out["skipped_images"].as_u64(), Some(1));
    assert_eq!(out["train_samples"].as_u64().unwrap() + out["test_samples"].as_u64().unwrap(), 60);

    // A model with another number of outputs is refused with the folder's classes named.
    let (ok, _, err) = convnet(&["train", "lenet5", "--data-dir", d, "--epochs", "1"]);
    assert!(!ok && err.contains("2 classes (day, night)"), "{err}");
}
