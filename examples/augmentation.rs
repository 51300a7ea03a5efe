//! The lecture's DA program: take the first 12 training images, show them with their class
//! names, then draw two trials of 6 from an `ImageDataGenerator` (rotation 30°, width and
//! height shifts 0.2, horizontal flips) and show those, all in one figure.
//!
//! Run: `cargo run --release --example augmentation [DATASET] [OUT.png]` (the lecture uses
//! CIFAR-10; offline, name another dataset such as fashion-mnist).

use convnet::data::augment::{ImageDataGenerator, ShiftRange};
use convnet::prelude::*;
use convnet::viz::pictures::preview_png;

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let kind = DatasetKind::parse(&args.next().unwrap_or_else(|| "cifar10".into()))?;
    let out = args.next().unwrap_or_else(|| "augmentation.png".into());

    // The dataset; only the first 12 training images are augmented.
    let ds = convnet::data::load(kind, &Default::default())?;
    let first = ds.train.take(12);

    // The image generator: 6 images per trial.
    let generator = ImageDataGenerator {
        rotation_range: 30.0,
        width_shift_range: ShiftRange::Uniform(0.2),
        height_shift_range: ShiftRange::Uniform(0.2),
        horizontal_flip: true,
        ..Default::default()
    };
    let png = preview_png(&generator, &first, ds.class_names(), 6, 2, 42)?;
    convnet::io::atomic_write(out.as_ref(), &png)?;
    println!("{out}");
    Ok(())
}
