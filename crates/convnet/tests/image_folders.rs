//! Training, evaluating and saving models on folders of pictures (`data::folder`).

use convnet::data::folder::{self, ColorMode, FolderData, FolderOptions, LabelMode};
use convnet::data::source::TrainData;
use convnet::prelude::*;
use std::path::Path;

/// Writes an image set as `dir/<label>/<index>.png` (grey PNGs).
fn write_pngs(set: &convnet::data::ImageSet, dir: &Path, first_index: usize) {
    for i in 0..set.count {
        let d = dir.join(set.labels[i].to_string());
        std::fs::create_dir_all(&d).unwrap();
        let px = set.images[i * set.image_len()..(i + 1) * set.image_len()].to_vec();
        let img = image::GrayImage::from_raw(set.width as u32, set.height as u32, px).unwrap();
        img.save(d.join(format!("{:05}.png", first_index + i))).unwrap();
    }
}

/// The index each picture was written from (its file name).
fn source_index(f: &folder::ImageFile) -> usize {
    f.path.file_stem().unwrap().to_string_lossy().parse().unwrap()
}

/// The shipped MNIST digits as `train/<digit>` and `test/<digit>` PNG folders train LeNet-5 to
/// the same weights, bit for bit, as the same digits from IDX in the same order — so the folder
/// path decodes every pixel and label exactly — and to at least 90 % on the held-out digits.
#[test]
fn lenet5_on_a_png_folder_matches_training_from_idx() {
    let (train, test) = convnet::data::mnist_sample().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("digits");
    write_pngs(&train, &root.join("train"), 0);
    write_pngs(&test, &root.join("test"), train.count);
    std::fs::write(root.join("train/3/.DS_Store"), b"junk").unwrap();
    assert!(folder::is_image_folder(&root));

    let opts = FolderOptions { image_size: (28, 28), color_mode: ColorMode::Grayscale, ..Default::default() };
    let ix = folder::index(&root, &opts).unwrap();
    assert_eq!(ix.class_names, (0..10).map(|d| d.to_string()).collect::<Vec<_>>());
    assert_eq!((ix.train.len(), ix.test.len()), (1600, 400));
    let mut data = FolderData::new(ix.train.clone(), 10, &opts).unwrap();
    let (vx, vy) = FolderData::new(ix.test.clone(), 10, &opts).unwrap().to_tensors().unwrap();

    // The same digits from IDX, in the folder's order.
    let order: Vec<usize> = ix.train.iter().map(source_index).collect();
    let x_idx = train.x().select(&order);
    let y_idx = train.y_one_hot(10).select(&order);
    let test_order: Vec<usize> = ix.test.iter().map(|f| source_index(f) - train.count).collect();
    let (tx, ty) = (test.x().select(&test_order), test.y_one_hot(10).select(&test_order));
    assert!(vx.data() == tx.data(), "test pixels differ from the IDX digits");
    assert!(vy.data() == ty.data(), "test labels differ from the IDX labels");

    let run = |from_folder: bool, data: &mut FolderData| {
        let mut cnn = convnet::presets::lenet5().seed(3);
        cnn.compile(Loss::CategoricalCrossentropy, Adam::default(), &[Metric::Accuracy]).unwrap();
        let fit = FitOptions { batch_size: 128, epochs: 12, verbose: 0, ..Default::default() };
        if from_folder {
            cnn.fit_data(data, Some((&vx, &vy)), fit).unwrap();
        } else {
            cnn.fit(&x_idx, &y_idx, FitOptions { validation_data: Some((&tx, &ty)), ..fit }).unwrap();
        }
        let acc = cnn.evaluate(&vx, &vy, 128).unwrap()["accuracy"];
        (cnn.get_weights(), acc)
    };
    let (w_folder, acc_folder) = run(true, &mut data);
    let (w_idx, acc_idx) = run(false, &mut data);
    assert!(acc_folder >= 0.90, "accuracy from the folder {acc_folder}");
    assert_eq!(acc_folder, acc_idx);
    assert!(w_folder == w_idx, "weights trained from the folder differ from those trained from IDX");
}

/// Writes `n` colour JPEGs of mixed sizes per class into `dir/<class>`: each class a dominant
/// colour under noise.
fn write_colour_jpegs(dir: &Path, n: usize) -> Vec<String> {
    let classes = ["blue sky", "green", "rouge"];
    let mut rng = convnet::Rng::new(5);
    for (ci, class) in classes.iter().enumerate() {
        let d = dir.join(class);
        std::fs::create_dir_all(&d).unwrap();
        for i in 0..n {
            let (w, h) = (20 + rng.below(40) as u32, 20 + rng.below(40) as u32);
            let img = image::RgbImage::from_fn(w, h, |_, _| {
                let mut p = [0u8; 3];
                for (k, v) in p.iter_mut().enumerate() {
                    let base = if k == 2 - ci { 170 } else { 60 };
                    *v = (base + rng.below(60) as i32 - 30) as u8;
                }
                image::Rgb(p)
            });
            img.save(d.join(format!("{i}.jpg"))).unwrap();
        }
    }
    std::fs::write(dir.join("green/Thumbs.db"), b"junk").unwrap();
    let mut names: Vec<String> = classes.iter().map(|s| s.to_string()).collect();
    names.sort();
    names
}

/// A CIFAR-shaped model trains on colour JPEGs of mixed sizes split 80/20 from one tree (with
/// the cache off: every batch decoded from the files), and its class names survive `.h5`,
/// `.keras` and native files.
#[test]
fn a_cifar_shaped_model_learns_colour_jpegs_and_keeps_their_class_names() {
    let tmp = tempfile::tempdir().unwrap();
    let names = write_colour_jpegs(tmp.path(), 40);
    let opts = FolderOptions {
        image_size: (32, 32),
        color_mode: ColorMode::Rgb,
        validation_split: 0.2,
        seed: 1,
        cache_bytes: 0,
        label_mode: LabelMode::Int,
        ..Default::default()
    };
    let ix = folder::index(tmp.path(), &opts).unwrap();
    assert_eq!(ix.class_names, names);
    assert_eq!((ix.train.len(), ix.test.len()), (96, 24));
    let mut data = FolderData::new(ix.train.clone(), 3, &opts).unwrap();
    assert_eq!(data.cached(), 0);
    assert_eq!(data.input_shape(), &[32, 32, 3]);
    let (vx, vy) = FolderData::new(ix.test.clone(), 3, &opts).unwrap().to_tensors().unwrap();

    let mut m = Sequential::new().seed(2);
    m.add(Conv2D::new(8, (3, 3)).activation(Activation::Relu).input_shape([32, 32, 3]));
    m.add(MaxPooling2D::new((4, 4)));
    m.add(Flatten::new());
    m.add(Dense::new(3).activation(Activation::Softmax));
    m.compile(
        Loss::SparseCategoricalCrossentropy,
        Adam { learning_rate: 0.01, ..Default::default() },
        &[Metric::Accuracy],
    )
    .unwrap();
    assert_eq!(LabelMode::for_model(&m), LabelMode::Int);
    m.fit_data(&mut data, None, FitOptions { batch_size: 16, epochs: 8, verbose: 0, ..Default::default() }).unwrap();
    let acc = m.evaluate(&vx, &vy, 32).unwrap()["accuracy"];
    assert!(acc >= 0.9, "validation accuracy {acc}");

    m.set_class_names(ix.class_names.clone());
    for file in ["m.h5", "m.keras", "m.safetensors"] {
        let p = tmp.path().join(file);
        convnet::io::save_model(&m, &p).unwrap();
        let back = convnet::io::load_model(&p).unwrap();
        assert_eq!(back.class_names(), Some(names.as_slice()), "{file}");
    }
}

/// The model's input shape is checked against the prepared pictures before training.
#[test]
fn a_model_of_another_input_size_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    write_colour_jpegs(tmp.path(), 2);
    let opts = FolderOptions { image_size: (28, 28), color_mode: ColorMode::Grayscale, ..Default::default() };
    let ix = folder::index(tmp.path(), &opts).unwrap();
    let mut data = FolderData::new(ix.train, 3, &opts).unwrap();
    let mut m = convnet::presets::cifar10_cnn();
    m.compile(Loss::CategoricalCrossentropy, Adam::default(), &[Metric::Accuracy]).unwrap();
    let e = m.fit_data(&mut data, None, FitOptions { verbose: 0, ..Default::default() }).unwrap_err().to_string();
    assert!(e.contains("[28, 28, 1]"), "{e}");
}
