//! Folders of pictures as data sets, the way Keras' `image_dataset_from_directory` reads them.
//!
//! **Layout.** `DIR/<class>/…` (pictures anywhere below a class folder); or, when `DIR` holds a
//! `train` folder of class folders next to a `test`, `val` or `validation` folder, those two
//! trees used as given (the test tree's classes must be among the training tree's). Class names
//! are the sorted names of the class folders (names starting with `.` left out, as Keras does),
//! or the names given, in the order given. An empty class folder keeps its class (and index),
//! as in Keras; a tree with no pictures at all is an error ("No images found in directory …").
//!
//! **Files.** Only names ending (case-insensitively) in `.png`, `.jpg`, `.jpeg`, `.bmp`, `.gif`
//! or `.webp` are pictures — Keras' allow-list plus WebP — so `.DS_Store`, `Thumbs.db` and notes
//! are skipped without a word. A picture that does not decode is an error listing the first ten
//! such files and their count, raised before training starts; with
//! [`FolderOptions::skip_bad_images`] those files are left out and counted instead.
//!
//! **Order and split.** The sorted file list is shuffled with `seed` (unless `shuffle` is off,
//! as Keras' `shuffle`), so that taking the first N pictures takes every class. Without a test
//! tree, `validation_split` holds out pictures as Keras does: the sorted file list is shuffled
//! with `seed` (always), and the last `⌊n·split⌋` files are the validation
//! set (Keras: `int(validation_split * len(samples))`). The same files and seed always give the
//! same split. (Keras shuffles with NumPy's generator, so the same seed picks other files there.)
//!
//! **Pixels.** Decoded to `color_mode` (grey from colour with the weights 0.299, 0.587, 0.114
//! in libpng's 15-bit fixed point, as TensorFlow's PNG decoder converts; TensorFlow reads a
//! JPEG's own luma instead, which can differ by a level), then resized to
//! `image_size` with `tf.image.resize(…, "bilinear")` (half-pixel centres, no antialiasing);
//! optionally the centre crop with the target's aspect ratio first (`crop_to_aspect_ratio`, as
//! Keras' `smart_resize`) or a zero border after (`pad_to_aspect_ratio`, as
//! `tf.image.resize_with_pad`). Models see the values divided by 255, as for the built-in sets
//! (or as they are, 0–255, when the model begins with `Rescaling`: `FolderOptions::pixel_scale`).
//!
//! **Streaming.** [`FolderData`] is a [`TrainData`]: decoded pictures are kept in memory as bytes
//! (rounded to whole grey levels: at most half a level from TensorFlow's floats) for as many
//! files as fit in `cache_bytes`, decoded on all worker threads before training starts, so
//! later epochs read no files; pictures beyond the budget are decoded per batch, and only their
//! headers are checked before training.
//!
//! **Prefetch.** Batches beyond the cache are decoded ahead on one background thread: the fit
//! loop hands over the next batch's indices ([`TrainData::prefetch`]) before each step, the
//! thread decodes them while the step trains, and `fill` takes the decoded batch, decoding on
//! all worker threads whatever pictures the thread has not reached (so a thread the system kept
//! waiting never holds the step up), or decodes in place a batch that was not handed over. At
//! most [`FolderOptions::prefetch`] batches exist, in buffers that are reused, so memory stays
//! bounded whatever the data set's size. Decoding is a pure function of the file, so a batch is
//! the same bytes either way and training is bit-identical with and without prefetch; an
//! unreadable file is reported by `fill` with its path (the first in batch order), as without.

use crate::data::source::TrainData;
use crate::error::{Error, Result};
use crate::nn::model::Sequential;
use crate::tensor::Tensor;
use rayon::prelude::*;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Condvar, Mutex};

/// File name endings read as pictures (Keras' `ALLOWLIST_FORMATS` plus WebP).
pub const ALLOWED_FORMATS: [&str; 6] = [".bmp", ".gif", ".jpeg", ".jpg", ".png", ".webp"];

/// Names of the held-out tree next to `train`, in the order they are looked for.
const TEST_DIRS: [&str; 3] = ["test", "val", "validation"];

/// Default in-memory cache of decoded pictures: 1 GiB.
pub const DEFAULT_CACHE_BYTES: usize = 1 << 30;

/// Default bound on batches decoded ahead of the training step (the fit loop hands over one).
pub const DEFAULT_PREFETCH: usize = 2;

/// Largest picture accepted, in pixels per side (guards against decompression bombs).
const MAX_SIDE: u32 = 16_384;

/// Bad files named in an error before "and N more".
const LISTED_BAD: usize = 10;

/// Channels of the pictures fed to the model (Keras' `color_mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ColorMode {
    /// One grey channel.
    Grayscale,
    /// Red, green, blue.
    #[default]
    Rgb,
    /// Red, green, blue, alpha.
    Rgba,
}

impl ColorMode {
    /// Parses `grayscale` (or `grey`/`gray`), `rgb`, `rgba`.
    pub fn parse(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "grayscale" | "greyscale" | "gray" | "grey" => Ok(ColorMode::Grayscale),
            "rgb" => Ok(ColorMode::Rgb),
            "rgba" => Ok(ColorMode::Rgba),
            _ => Err(Error::config(format!("color_mode must be one of grayscale, rgb, rgba, not {s:?}"))),
        }
    }

    /// The mode with `channels` channels (1, 3 or 4).
    pub fn from_channels(channels: usize) -> Result<Self> {
        match channels {
            1 => Ok(ColorMode::Grayscale),
            3 => Ok(ColorMode::Rgb),
            4 => Ok(ColorMode::Rgba),
            c => Err(Error::shape(format!("pictures have 1, 3 or 4 channels; the model wants {c}"))),
        }
    }

    /// Values per pixel.
    pub fn channels(self) -> usize {
        match self {
            ColorMode::Grayscale => 1,
            ColorMode::Rgb => 3,
            ColorMode::Rgba => 4,
        }
    }

    /// Keras' name of the mode.
    pub fn name(self) -> &'static str {
        match self {
            ColorMode::Grayscale => "grayscale",
            ColorMode::Rgb => "rgb",
            ColorMode::Rgba => "rgba",
        }
    }
}

/// How pictures of another aspect ratio reach `image_size`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum AspectRatio {
    /// Stretched to the size (Keras' default).
    #[default]
    Stretch,
    /// The largest centred crop with the target's aspect ratio, then resized (`crop_to_aspect_ratio`).
    Crop,
    /// Resized to fit inside, then bordered with zeros (`pad_to_aspect_ratio`).
    Pad,
}

/// How targets are written: class indices or one-hot rows (Keras' `label_mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum LabelMode {
    /// One class index per picture, `[n]` (for sparse losses).
    Int,
    /// One-hot rows, `[n, classes]`.
    #[default]
    Categorical,
}

impl LabelMode {
    /// The label mode `model`'s loss wants (sparse losses take indices).
    pub fn for_model(model: &Sequential) -> LabelMode {
        match model.compiled().map(|c| c.loss.kind) {
            Some(crate::nn::losses::LossKind::SparseCategoricalCrossentropy) => LabelMode::Int,
            _ => LabelMode::Categorical,
        }
    }
}

/// Options of [`index`] and [`FolderData`], with Keras' names.
#[derive(Clone, Debug)]
pub struct FolderOptions {
    /// `(height, width)` every picture is resized to (Keras' default: 256×256).
    pub image_size: (usize, usize),
    /// Channels fed to the model.
    pub color_mode: ColorMode,
    /// The classes, in label order (default: the sorted class folders).
    pub class_names: Option<Vec<String>>,
    /// Fraction of a single tree held out for validation (ignored when a test tree exists).
    pub validation_split: f32,
    /// Seed of the shuffle of the file list (and so of the validation split).
    pub seed: u64,
    /// Shuffle the training files' order with `seed` (Keras' `shuffle`, default true); the split
    /// is always drawn from a shuffle.
    pub shuffle: bool,
    /// Stretch, crop or pad to `image_size`.
    pub aspect_ratio: AspectRatio,
    /// Leave out (and count) files that do not decode, instead of stopping.
    pub skip_bad_images: bool,
    /// Bytes of decoded pictures kept in memory (0: decode every batch from the files).
    pub cache_bytes: usize,
    /// Targets as class indices or one-hot rows.
    pub label_mode: LabelMode,
    /// Batches beyond the cache decoded ahead on a background thread, at most this many at
    /// once (0: every batch decoded when it is filled).
    pub prefetch: usize,
    /// Factor the 0–255 values are multiplied by on their way to the model: 1/255 (values in
    /// [0, 1], as the built-in sets) or 1 for a model that begins with `Rescaling` or
    /// `Normalization` (see `Sequential::pixel_scale`).
    pub pixel_scale: f32,
}

impl Default for FolderOptions {
    fn default() -> Self {
        FolderOptions {
            image_size: (256, 256),
            color_mode: ColorMode::Rgb,
            class_names: None,
            validation_split: 0.0,
            seed: 42,
            shuffle: true,
            aspect_ratio: AspectRatio::Stretch,
            skip_bad_images: false,
            cache_bytes: DEFAULT_CACHE_BYTES,
            label_mode: LabelMode::Categorical,
            prefetch: DEFAULT_PREFETCH,
            pixel_scale: 1.0 / 255.0,
        }
    }
}

/// One picture file and its class index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageFile {
    /// Where the picture is.
    pub path: PathBuf,
    /// Its class index (into the class names).
    pub label: usize,
}

/// How the folder was laid out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Layout {
    /// `DIR/train/<class>` and this test tree, used as given.
    TrainTest(PathBuf),
    /// One tree of class folders, split by `validation_split` (or not at all).
    OneTree,
}

/// The pictures of a folder, their classes and the training/held-out split.
#[derive(Clone, Debug)]
pub struct FolderIndex {
    /// The folder given.
    pub root: PathBuf,
    /// Class names, index = label.
    pub class_names: Vec<String>,
    /// Training pictures, in the order drawn (sorted, or shuffled for a split).
    pub train: Vec<ImageFile>,
    /// Held-out pictures: the test tree, or the validation split (empty when neither).
    pub test: Vec<ImageFile>,
    /// How the folder was read.
    pub layout: Layout,
}

/// True when `name` ends in one of [`ALLOWED_FORMATS`] (case-insensitively).
pub fn is_picture_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    ALLOWED_FORMATS.iter().any(|e| lower.ends_with(e))
}

/// Sorted names of the visible subfolders of `dir`.
fn subfolders(dir: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with('.') && entry.path().is_dir() {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// Whether `dir` looks like a folder of class folders of pictures (and not a data set's files):
/// it holds no IDX or CIFAR-10 files, and a picture below one of its subfolders.
pub fn is_image_folder(dir: &Path) -> bool {
    let Ok(subs) = subfolders(dir) else { return false };
    let dataset_file = |n: &str| n.contains("-ubyte") || n.starts_with("cifar-10") || n.ends_with(".bin");
    let Ok(entries) = std::fs::read_dir(dir) else { return false };
    if entries.flatten().any(|e| dataset_file(&e.file_name().to_string_lossy())) {
        return false;
    }
    let has_picture = |d: &Path| {
        walk(d).map(|files| files.iter().any(|f| f.file_name().is_some_and(|n| is_picture_name(&n.to_string_lossy()))))
    };
    subs.iter().any(|s| {
        let d = dir.join(s);
        has_picture(&d).unwrap_or(false)
    })
}

/// Every file below `dir`, in sorted order (folders first by path, then file names), as
/// Python's sorted `os.walk` gives them.
fn walk(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    let mut dirs = Vec::new();
    while let Some(d) = stack.pop() {
        dirs.push(d.clone());
        for entry in std::fs::read_dir(&d).map_err(|e| Error::io(&d, e))? {
            let entry = entry.map_err(|e| Error::io(&d, e))?;
            // Symbolic links to folders are not followed (Keras' `follow_links=False`).
            let ft = entry.file_type().map_err(|e| Error::io(entry.path(), e))?;
            if ft.is_dir() {
                stack.push(entry.path());
            }
        }
    }
    dirs.sort();
    for d in dirs {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(&d).map_err(|e| Error::io(&d, e))? {
            let entry = entry.map_err(|e| Error::io(&d, e))?;
            if !entry.path().is_dir() {
                files.push(entry.path());
            }
        }
        files.sort();
        out.extend(files);
    }
    Ok(out)
}

/// Every picture below `dir`, in sorted order (for prediction; no classes).
pub fn pictures_under(dir: &Path) -> Result<Vec<PathBuf>> {
    Ok(walk(dir)?
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| is_picture_name(&n.to_string_lossy())))
        .collect())
}

/// The pictures of one tree of class folders, labelled by `class_names`.
fn list_tree(dir: &Path, class_names: &[String]) -> Result<Vec<ImageFile>> {
    let mut files = Vec::new();
    for (label, name) in class_names.iter().enumerate() {
        let d = dir.join(name);
        if !d.is_dir() {
            continue;
        }
        for path in walk(&d)? {
            if path.file_name().is_some_and(|n| is_picture_name(&n.to_string_lossy())) {
                files.push(ImageFile { path, label });
            }
        }
    }
    Ok(files)
}

/// The class names of the tree `dir`: the given ones (which must be class folders there), or
/// the sorted class folders.
fn classes_of(dir: &Path, given: Option<&[String]>) -> Result<Vec<String>> {
    let subs = subfolders(dir)?;
    match given {
        Some(names) => {
            if let Some(bad) = names.iter().find(|n| !subs.contains(n)) {
                return Err(Error::config(format!(
                    "the class names given do not match the class folders of {}: {bad:?} is not among {subs:?}",
                    dir.display()
                )));
            }
            Ok(names.to_vec())
        }
        None => Ok(subs),
    }
}

/// Finds the pictures of `dir` and their classes, and draws the split (see the module doc).
pub fn index(dir: &Path, opts: &FolderOptions) -> Result<FolderIndex> {
    if !dir.is_dir() {
        return Err(Error::config(format!("{} is not a folder", dir.display())));
    }
    let no_images = |d: &Path| {
        Error::config(format!(
            "No images found in directory {}. Allowed formats: {}",
            d.display(),
            ALLOWED_FORMATS.join(", ")
        ))
    };
    let train_dir = dir.join("train");
    let test_dir = TEST_DIRS.iter().map(|t| dir.join(t)).find(|d| d.is_dir());
    if let (true, Some(test_dir)) = (train_dir.is_dir() && !subfolders(&train_dir)?.is_empty(), test_dir) {
        let class_names = classes_of(&train_dir, opts.class_names.as_deref())?;
        if let Some(extra) = subfolders(&test_dir)?.into_iter().find(|s| !class_names.contains(s)) {
            let has = list_tree(&test_dir, std::slice::from_ref(&extra))?;
            if !has.is_empty() {
                return Err(Error::config(format!(
                    "{} has pictures of a class {extra:?} that {} does not have (its classes: {class_names:?})",
                    test_dir.display(),
                    train_dir.display()
                )));
            }
        }
        let mut train = list_tree(&train_dir, &class_names)?;
        let test = list_tree(&test_dir, &class_names)?;
        if opts.shuffle {
            crate::rng::Rng::new(opts.seed).shuffle(&mut train);
        }
        if train.is_empty() {
            return Err(no_images(&train_dir));
        }
        if test.is_empty() {
            return Err(no_images(&test_dir));
        }
        return Ok(FolderIndex { root: dir.into(), class_names, train, test, layout: Layout::TrainTest(test_dir) });
    }
    let class_names = classes_of(dir, opts.class_names.as_deref())?;
    let mut files = list_tree(dir, &class_names)?;
    if files.is_empty() {
        return Err(no_images(dir));
    }
    let split = opts.validation_split;
    if !(0.0..1.0).contains(&split) {
        return Err(Error::config(format!("validation_split must be in [0, 1), not {split}")));
    }
    let mut test = Vec::new();
    if split > 0.0 || opts.shuffle {
        crate::rng::Rng::new(opts.seed).shuffle(&mut files);
    }
    if split > 0.0 {
        // Keras: num_val_samples = int(validation_split * len(samples)), with the decimal written.
        let n_val = (files.len() as f64 * crate::numbers::decimal(split)) as usize;
        if n_val == 0 || n_val == files.len() {
            return Err(Error::config(format!(
                "validation_split {split} of {} pictures leaves no training or no validation pictures",
                files.len()
            )));
        }
        test = files.split_off(files.len() - n_val);
    }
    Ok(FolderIndex { root: dir.into(), class_names, train: files, test, layout: Layout::OneTree })
}

/// How pictures become model inputs: the size, channels and aspect-ratio handling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PictureSpec {
    /// Output height.
    pub height: usize,
    /// Output width.
    pub width: usize,
    /// Output channels.
    pub color_mode: ColorMode,
    /// Stretch, crop or pad.
    pub aspect_ratio: AspectRatio,
}

impl PictureSpec {
    /// The spec of `opts`.
    pub fn of(opts: &FolderOptions) -> PictureSpec {
        PictureSpec {
            height: opts.image_size.0,
            width: opts.image_size.1,
            color_mode: opts.color_mode,
            aspect_ratio: opts.aspect_ratio,
        }
    }

    /// Values per picture.
    pub fn len(&self) -> usize {
        self.height * self.width * self.color_mode.channels()
    }

    /// True for a zero-sized picture.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// `[height, width, channels]`.
    pub fn shape(&self) -> [usize; 3] {
        [self.height, self.width, self.color_mode.channels()]
    }
}

/// Decodes a picture's bytes with limits on size and memory, into `color_mode` pixels:
/// `(values, height, width)`, values 0–255.
pub fn decode_pixels(bytes: &[u8], path: &Path, mode: ColorMode) -> Result<(Vec<u8>, usize, usize)> {
    let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| Error::format(path, e.to_string()))?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(crate::data::images::MAX_DECODE_BYTES);
    reader.limits(limits);
    let img = reader.decode().map_err(|e| Error::format(path, format!("cannot decode the picture: {e}")))?;
    let (w, h) = (img.width() as usize, img.height() as usize);
    let values = match mode {
        ColorMode::Rgb => img.into_rgb8().into_raw(),
        ColorMode::Rgba => img.into_rgba8().into_raw(),
        ColorMode::Grayscale => {
            if img.color().has_color() {
                img.into_rgb8().into_raw().chunks_exact(3).map(|p| grey(p[0], p[1], p[2])).collect()
            } else {
                img.into_luma8().into_raw()
            }
        }
    };
    Ok((values, h, w))
}

/// Grey from colour as libpng converts for TensorFlow's decoder: 0.299, 0.587 and the rest in
/// 15-bit fixed point (libpng's `⌊29900·32768/100000⌋`, `⌊58700·32768/100000⌋`), truncated.
fn grey(r: u8, g: u8, b: u8) -> u8 {
    const RC: u32 = 9797;
    const GC: u32 = 19234;
    const BC: u32 = 32768 - RC - GC;
    ((RC * r as u32 + GC * g as u32 + BC * b as u32) >> 15) as u8
}

/// One axis of `tf.image.resize`'s bilinear sampling (half-pixel centres): for each output
/// index, the two source indices and the weight of the second.
fn axis_weights(input: usize, output: usize) -> Vec<(usize, usize, f32)> {
    let scale = input as f32 / output as f32;
    (0..output)
        .map(|o| {
            let x = (o as f32 + 0.5) * scale - 0.5;
            let f = x.floor();
            let lo = (f.max(0.0) as usize).min(input - 1);
            let hi = (x.ceil().max(0.0) as usize).min(input - 1);
            (lo, hi, x - f)
        })
        .collect()
}

/// `tf.image.resize(img, (oh, ow), "bilinear")` of an `h × w × c` picture, values as given.
pub fn resize_bilinear(src: &[f32], h: usize, w: usize, c: usize, oh: usize, ow: usize) -> Vec<f32> {
    let mut out = vec![0.0; oh * ow * c];
    if h == 0 || w == 0 {
        return out;
    }
    let ys = axis_weights(h, oh);
    let xs = axis_weights(w, ow);
    for (oy, &(y0, y1, ly)) in ys.iter().enumerate() {
        for (ox, &(x0, x1, lx)) in xs.iter().enumerate() {
            for ch in 0..c {
                let p = |y: usize, x: usize| src[(y * w + x) * c + ch];
                // TensorFlow's order: top and bottom rows across x, then down y.
                let top = p(y0, x0) + (p(y0, x1) - p(y0, x0)) * lx;
                let bottom = p(y1, x0) + (p(y1, x1) - p(y1, x0)) * lx;
                out[(oy * ow + ox) * c + ch] = top + (bottom - top) * ly;
            }
        }
    }
    out
}

/// Resizes decoded pixels to `spec` (stretch, Keras' `smart_resize` crop, or
/// `resize_with_pad`); values 0–255 as floats.
pub fn fit_to(pixels: &[u8], h: usize, w: usize, spec: &PictureSpec) -> Vec<f32> {
    let c = spec.color_mode.channels();
    let (th, tw) = (spec.height, spec.width);
    match spec.aspect_ratio {
        AspectRatio::Stretch => {
            let src: Vec<f32> = pixels.iter().map(|&v| v as f32).collect();
            resize_bilinear(&src, h, w, c, th, tw)
        }
        AspectRatio::Crop => {
            // smart_resize: crop_height = min(h, int(w·th/tw)), crop_width = min(w, int(h·tw/th)).
            let ch = (((w * th) as f64 / tw as f64) as usize).min(h).max(1);
            let cw = (((h * tw) as f64 / th as f64) as usize).min(w).max(1);
            let (y0, x0) = ((h - ch) / 2, (w - cw) / 2);
            let mut src = Vec::with_capacity(ch * cw * c);
            for y in y0..y0 + ch {
                src.extend(pixels[((y * w) + x0) * c..((y * w) + x0 + cw) * c].iter().map(|&v| v as f32));
            }
            resize_bilinear(&src, ch, cw, c, th, tw)
        }
        AspectRatio::Pad => {
            // resize_with_pad: scale by max(w/tw, h/th), floor the resized sides, centre with
            // ⌊(target − resized_float)/2⌋ zeros before.
            let ratio = (w as f64 / tw as f64).max(h as f64 / th as f64);
            let (rhf, rwf) = (h as f64 / ratio, w as f64 / ratio);
            let (rh, rw) = ((rhf as usize).clamp(1, th), (rwf as usize).clamp(1, tw));
            let (py, px) = (
                (((th as f64 - rhf) / 2.0).floor().max(0.0)) as usize,
                (((tw as f64 - rwf) / 2.0).floor().max(0.0)) as usize,
            );
            let src: Vec<f32> = pixels.iter().map(|&v| v as f32).collect();
            let small = resize_bilinear(&src, h, w, c, rh, rw);
            let mut out = vec![0.0; th * tw * c];
            for y in 0..rh.min(th - py) {
                let row = &small[y * rw * c..(y * rw + rw.min(tw - px)) * c];
                out[((y + py) * tw + px) * c..][..row.len()].copy_from_slice(row);
            }
            out
        }
    }
}

/// Reads and prepares one picture as `spec` bytes (values rounded to whole levels).
pub fn load_picture_bytes(path: &Path, spec: &PictureSpec, out: &mut [u8]) -> Result<()> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let (pixels, h, w) = decode_pixels(&bytes, path, spec.color_mode)?;
    if h == spec.height && w == spec.width && spec.aspect_ratio != AspectRatio::Pad {
        // Same size: bilinear resampling is the identity (every weight is 0).
        out.copy_from_slice(&pixels);
        return Ok(());
    }
    for (o, v) in out.iter_mut().zip(fit_to(&pixels, h, w, spec)) {
        *o = v.round().clamp(0.0, 255.0) as u8;
    }
    Ok(())
}

/// Reads and prepares one picture as model input: `spec` values scaled to [0, 1] (no rounding).
pub fn load_picture(path: &Path, spec: &PictureSpec) -> Result<Vec<f32>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let (pixels, h, w) = decode_pixels(&bytes, path, spec.color_mode)?;
    Ok(fit_to(&pixels, h, w, spec).into_iter().map(|v| v * (1.0 / 255.0)).collect())
}

/// Checks that a file's header is a picture within the size limits (without decoding pixels).
fn check_header(path: &Path) -> Result<()> {
    let reader = image::ImageReader::open(path)
        .map_err(|e| Error::io(path, e))?
        .with_guessed_format()
        .map_err(|e| Error::format(path, e.to_string()))?;
    let (w, h) =
        reader.into_dimensions().map_err(|e| Error::format(path, format!("cannot decode the picture: {e}")))?;
    if w == 0 || h == 0 || w > MAX_SIDE || h > MAX_SIDE {
        return Err(Error::format(path, format!("a picture of {w}×{h} pixels is not accepted")));
    }
    Ok(())
}

/// The error listing unreadable pictures: the first ten and how many in all.
fn bad_files_error(bad: &[(PathBuf, String)]) -> Error {
    let mut msg =
        format!("{} picture file(s) could not be read (pass --skip-bad-images to leave them out):", bad.len());
    for (p, why) in bad.iter().take(LISTED_BAD) {
        msg.push_str(&format!("\n  {}: {why}", p.display()));
    }
    if bad.len() > LISTED_BAD {
        msg.push_str(&format!("\n  … and {} more", bad.len() - LISTED_BAD));
    }
    Error::config(msg)
}

/// One picture of a prefetched batch: its decoded bytes and how decoding went.
struct Slot {
    pixels: Vec<u8>,
    result: Result<()>,
}

/// A batch handed to the prefetch thread. Its pictures beyond the cache are claimed one at a
/// time by whichever thread comes first: the prefetch thread ahead of the step, and `fill`
/// (on all worker threads) for any it has not reached, so `fill` never waits on a thread the
/// system has not scheduled for more than the one picture it is decoding. Batches are reused,
/// so their buffers are allocated once.
struct Batch {
    /// The sample indices of the batch: what `fill` must ask for to use it.
    indices: Vec<usize>,
    /// File indices to decode (those beyond the cache), in batch order.
    todo: Vec<usize>,
    /// The next entry of `todo` to claim (set past the end to cancel).
    next: AtomicUsize,
    /// One slot per entry of `todo`.
    slots: Vec<Mutex<Slot>>,
    /// Slots decoded so far, and the signal when one more is.
    finished: Mutex<usize>,
    more: Condvar,
}

impl Batch {
    fn new() -> Batch {
        Batch {
            indices: Vec::new(),
            todo: Vec::new(),
            next: AtomicUsize::new(0),
            slots: Vec::new(),
            finished: Mutex::new(0),
            more: Condvar::new(),
        }
    }

    /// Claims and decodes pictures until none is left.
    fn work(&self, files: &[ImageFile], spec: &PictureSpec) {
        loop {
            let k = self.next.fetch_add(1, Ordering::AcqRel);
            let Some(&i) = self.todo.get(k) else { return };
            {
                let mut slot = lock(&self.slots[k]);
                let slot = &mut *slot;
                slot.pixels.resize(spec.len(), 0);
                slot.result = load_picture_bytes(&files[i].path, spec, &mut slot.pixels);
            }
            *lock(&self.finished) += 1;
            self.more.notify_all();
        }
    }

    /// Decodes what is left on all worker threads, then waits for the pictures the prefetch
    /// thread is still decoding.
    fn complete(&self, files: &[ImageFile], spec: &PictureSpec) {
        if self.next.load(Ordering::Acquire) < self.todo.len() {
            crate::parallel::run(crate::parallel::workers(), |_| self.work(files, spec));
        }
        let mut done = lock(&self.finished);
        while *done < self.todo.len() {
            done = self.more.wait(done).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// A lock that a panicking holder did not spoil (the data is a picture buffer).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The background thread that decodes handed-over batches, in the order handed over.
struct Prefetcher {
    /// Batches to decode (`None` once shutting down).
    requests: Option<SyncSender<Arc<Batch>>>,
    /// Batches handed over and not yet taken by `fill`, in order.
    pending: VecDeque<Arc<Batch>>,
    /// Batches taken (or dropped), reusable once the thread has let go of them.
    spent: Vec<Arc<Batch>>,
    /// Batches ever made (at most the bound).
    made: usize,
    /// Batches `fill` took from here.
    taken: usize,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Prefetcher {
    /// Starts the thread for `files`, with room for `bound` batches.
    fn start(files: Arc<Vec<ImageFile>>, spec: PictureSpec, bound: usize) -> Result<Prefetcher> {
        let (requests, jobs) = std::sync::mpsc::sync_channel::<Arc<Batch>>(bound);
        let thread = std::thread::Builder::new()
            .name("convnet-prefetch".into())
            .spawn(move || {
                for batch in jobs {
                    batch.work(&files, &spec);
                }
            })
            .map_err(|e| Error::io("prefetch thread", e))?;
        Ok(Prefetcher {
            requests: Some(requests),
            pending: VecDeque::with_capacity(bound),
            spent: Vec::with_capacity(bound),
            made: 0,
            taken: 0,
            thread: Some(thread),
        })
    }

    /// Hands over `indices` (with `todo`, the files to decode) unless `bound` batches are in
    /// flight or every batch buffer is still in use; returns whether it did.
    fn request(&mut self, indices: &[usize], todo: impl Iterator<Item = usize>, bound: usize) -> bool {
        if self.pending.len() >= bound {
            return false;
        }
        // A spent batch the thread no longer holds, or a new one while fewer than `bound` exist.
        let mut batch = match self.spent.iter().position(|b| Arc::strong_count(b) == 1) {
            Some(k) => self.spent.swap_remove(k),
            None if self.made < bound => {
                self.made += 1;
                Arc::new(Batch::new())
            }
            None => return false,
        };
        let Some(b) = Arc::get_mut(&mut batch) else {
            self.spent.push(batch);
            return false;
        };
        b.indices.clear();
        b.indices.extend_from_slice(indices);
        b.todo.clear();
        b.todo.extend(todo);
        while b.slots.len() < b.todo.len() {
            b.slots.push(Mutex::new(Slot { pixels: Vec::new(), result: Ok(()) }));
        }
        *b.next.get_mut() = 0;
        *lock(&b.finished) = 0;
        let Some(tx) = &self.requests else { return false };
        match tx.send(batch.clone()) {
            Ok(()) => {
                self.pending.push_back(batch);
                true
            }
            // The thread is gone (it cannot be, short of a panic): batches decode in place.
            Err(_) => {
                self.spent.push(batch);
                false
            }
        }
    }

    /// The batch for `indices`, if it was handed over; batches handed over before it (hints
    /// that did not come true) are cancelled.
    fn take(&mut self, indices: &[usize]) -> Option<Arc<Batch>> {
        while let Some(batch) = self.pending.pop_front() {
            if batch.indices == indices {
                self.taken += 1;
                return Some(batch);
            }
            batch.next.store(usize::MAX / 2, Ordering::Release);
            self.spent.push(batch);
        }
        None
    }
}

impl Drop for Prefetcher {
    fn drop(&mut self) {
        // Cancel what is queued; closing the request channel then ends the thread's loop.
        for b in &self.pending {
            b.next.store(usize::MAX / 2, Ordering::Release);
        }
        self.requests = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Pictures of a folder as training (or evaluation) data: a [`TrainData`] source that decodes
/// on the worker threads, ahead of the step on a background thread, and keeps decoded
/// pictures in memory within a budget.
pub struct FolderData {
    files: Arc<Vec<ImageFile>>,
    classes: usize,
    spec: PictureSpec,
    shape: [usize; 3],
    label_mode: LabelMode,
    /// Decoded pictures of files `0..cached`, `spec.len()` bytes each.
    cache: Vec<u8>,
    cached: usize,
    /// Files left out because they did not decode.
    skipped: Vec<PathBuf>,
    /// Per-batch decoding buffers (pictures beyond the cache).
    scratch: Vec<u8>,
    /// Bound on batches decoded ahead (0: no prefetch).
    prefetch: usize,
    /// The prefetch thread, started by the first hint that needs it.
    prefetcher: Option<Prefetcher>,
    /// Factor from 0–255 to the model's input values.
    pixel_scale: f32,
}

impl FolderData {
    /// Prepares `files` for training: decodes into the cache those that fit in
    /// `opts.cache_bytes` (in parallel), checks the others' headers, and stops with the list
    /// of unreadable files — or, with `skip_bad_images`, leaves them out.
    pub fn new(files: Vec<ImageFile>, classes: usize, opts: &FolderOptions) -> Result<FolderData> {
        let spec = PictureSpec::of(opts);
        if spec.is_empty() {
            return Err(Error::config("image_size must be at least 1×1"));
        }
        let len = spec.len();
        let cached = (opts.cache_bytes / len).min(files.len());
        let mut cache = vec![0u8; cached * len];
        let mut errors: Vec<Option<String>> = vec![None; files.len()];
        {
            let (head, tail) = errors.split_at_mut(cached);
            cache.par_chunks_mut(len).zip(head.par_iter_mut()).zip(files[..cached].par_iter()).for_each(
                |((out, err), f)| {
                    if let Err(e) = load_picture_bytes(&f.path, &spec, out) {
                        *err = Some(short_reason(&e));
                    }
                },
            );
            tail.par_iter_mut().zip(files[cached..].par_iter()).for_each(|(err, f)| {
                if let Err(e) = check_header(&f.path) {
                    *err = Some(short_reason(&e));
                }
            });
        }
        let mut bad: Vec<(PathBuf, String)> =
            errors.iter().zip(&files).filter_map(|(e, f)| e.as_ref().map(|e| (f.path.clone(), e.clone()))).collect();
        // Listed in path order, whatever order the files are drawn in.
        bad.sort();
        if !bad.is_empty() && !opts.skip_bad_images {
            return Err(bad_files_error(&bad));
        }
        let mut data = FolderData {
            files: Arc::new(files),
            classes,
            spec,
            shape: spec.shape(),
            label_mode: opts.label_mode,
            cache,
            cached,
            skipped: Vec::new(),
            scratch: Vec::new(),
            prefetch: opts.prefetch,
            prefetcher: None,
            pixel_scale: opts.pixel_scale,
        };
        if !bad.is_empty() {
            data.drop_bad(&errors);
        }
        Ok(data)
    }

    /// Removes the files marked in `errors`, compacting the cache.
    fn drop_bad(&mut self, errors: &[Option<String>]) {
        let len = self.spec.len();
        let mut kept = Vec::with_capacity(self.files.len());
        let mut cached = 0;
        let files = Arc::try_unwrap(std::mem::take(&mut self.files)).unwrap_or_else(|shared| (*shared).clone());
        for (i, (f, e)) in files.into_iter().zip(errors).enumerate() {
            if e.is_some() {
                self.skipped.push(f.path);
                continue;
            }
            if i < self.cached {
                self.cache.copy_within(i * len..(i + 1) * len, cached * len);
                cached += 1;
            }
            kept.push(f);
        }
        self.cache.truncate(cached * len);
        self.cached = cached;
        self.files = Arc::new(kept);
    }

    /// Gives a prefetched batch back for reuse.
    fn recycle(&mut self, batch: Option<Arc<Batch>>) {
        if let (Some(p), Some(b)) = (&mut self.prefetcher, batch) {
            p.spent.push(b);
        }
    }

    /// Files left out because they did not decode.
    pub fn skipped(&self) -> &[PathBuf] {
        &self.skipped
    }

    /// The files, in sample order.
    pub fn files(&self) -> &[ImageFile] {
        &self.files
    }

    /// Pictures held decoded in memory.
    pub fn cached(&self) -> usize {
        self.cached
    }

    /// Number of classes.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// All pictures as one `[n, h, w, c]` tensor (scaled by the options' `pixel_scale`), and
    /// their targets.
    pub fn to_tensors(&mut self) -> Result<(Tensor, Tensor)> {
        let idx: Vec<usize> = (0..self.files.len()).collect();
        let mut x = Tensor::zeros(&[0]);
        let mut y = Tensor::zeros(&[0]);
        self.fill(&idx, &mut x, &mut y)?;
        Ok((x, y))
    }

    /// Class indices of all pictures.
    pub fn labels(&self) -> Vec<usize> {
        self.files.iter().map(|f| f.label).collect()
    }
}

/// An error's message without the path (the listing prints the path).
fn short_reason(e: &Error) -> String {
    match e {
        Error::Format { message, .. } => message.clone(),
        Error::Io { source, .. } => source.to_string(),
        other => other.to_string(),
    }
}

impl TrainData for FolderData {
    fn len(&self) -> usize {
        self.files.len()
    }

    fn input_shape(&self) -> &[usize] {
        &self.shape
    }

    fn fill(&mut self, indices: &[usize], x: &mut Tensor, y: &mut Tensor) -> Result<()> {
        let len = self.spec.len();
        x.resize_batch(indices.len(), &self.shape);
        match self.label_mode {
            LabelMode::Int => y.resize_batch(indices.len(), &[]),
            LabelMode::Categorical => y.resize_batch(indices.len(), &[self.classes]),
        }
        // Pictures beyond the cache: decoded ahead (the prefetch thread's batch, finished here
        // if it has not got through it), or else now, in parallel, into the scratch buffer; in
        // batch order either way, and the first failure in that order is the error.
        let missing = indices.iter().filter(|&&i| i >= self.cached).count();
        let batch = match (&mut self.prefetcher, missing) {
            (Some(p), 1..) => p.take(indices),
            _ => None,
        };
        if let Some(b) = &batch {
            b.complete(&self.files, &self.spec);
            let failed = b.slots[..missing].iter().find_map(|s| {
                let mut s = lock(s);
                s.result.is_err().then(|| std::mem::replace(&mut s.result, Ok(())))
            });
            if let Some(e) = failed {
                self.recycle(batch);
                return e;
            }
        } else if missing > 0 {
            self.scratch.resize(missing * len, 0);
            let todo: Vec<&Path> =
                indices.iter().filter(|&&i| i >= self.cached).map(|&i| self.files[i].path.as_path()).collect();
            let spec = self.spec;
            let failed: Vec<Error> = self
                .scratch
                .par_chunks_mut(len)
                .zip(todo.par_iter())
                .filter_map(|(out, p)| load_picture_bytes(p, &spec, out).err())
                .collect();
            if let Some(e) = failed.into_iter().next() {
                return Err(e);
            }
        }
        // As the built-in sets scale (`ImageSet::x_scaled`): times 1/255 unless the model
        // takes raw pixels.
        let factor = self.pixel_scale;
        let scale = |dst: &mut [f32], src: &[u8]| {
            for (d, &s) in dst.iter_mut().zip(src) {
                *d = s as f32 * factor;
            }
        };
        let mut k = 0;
        for (dst, &i) in x.data_mut().chunks_exact_mut(len).zip(indices) {
            if i < self.cached {
                scale(dst, &self.cache[i * len..(i + 1) * len]);
                continue;
            }
            match &batch {
                Some(b) => scale(dst, &lock(&b.slots[k]).pixels),
                None => scale(dst, &self.scratch[k * len..(k + 1) * len]),
            }
            k += 1;
        }
        let yd = y.data_mut();
        match self.label_mode {
            LabelMode::Int => {
                for (d, &i) in yd.iter_mut().zip(indices) {
                    *d = self.files[i].label as f32;
                }
            }
            LabelMode::Categorical => {
                yd.fill(0.0);
                for (row, &i) in yd.chunks_exact_mut(self.classes.max(1)).zip(indices) {
                    row[self.files[i].label] = 1.0;
                }
            }
        }
        self.recycle(batch);
        Ok(())
    }

    fn prefetch(&mut self, upcoming: &[usize]) {
        // Nothing to decode ahead when every picture is cached; an index out of range is
        // never handed to the thread.
        if self.prefetch == 0
            || upcoming.iter().all(|&i| i < self.cached)
            || upcoming.iter().any(|&i| i >= self.files.len())
        {
            return;
        }
        if self.prefetcher.is_none() {
            match Prefetcher::start(self.files.clone(), self.spec, self.prefetch) {
                Ok(p) => self.prefetcher = Some(p),
                // No thread to be had: batches decode in place, as without prefetch.
                Err(_) => {
                    self.prefetch = 0;
                    return;
                }
            }
        }
        let cached = self.cached;
        if let Some(p) = &mut self.prefetcher {
            p.request(upcoming, upcoming.iter().copied().filter(|&i| i >= cached), self.prefetch);
        }
    }

    fn check(&self, model: &mut Sequential) -> Result<()> {
        if let Some(s) = model.input_shape() {
            if s != self.shape {
                return Err(Error::shape(format!(
                    "the model takes inputs of shape {s:?}; the pictures are prepared as {:?} (image_size and color_mode)",
                    self.shape
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fixture's picture: v(y, x, c) = (37x + 91y + 53c + 11xy) mod 256.
    fn pattern(h: usize, w: usize, c: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(h * w * c);
        for y in 0..h {
            for x in 0..w {
                for ch in 0..c {
                    v.push(((37 * x + 91 * y + 53 * ch + 11 * x * y) % 256) as u8);
                }
            }
        }
        v
    }

    fn encode(w: u32, h: u32, rgb: &[u8], format: image::ImageFormat) -> Vec<u8> {
        let img = image::RgbImage::from_raw(w, h, rgb.to_vec()).unwrap();
        let mut out = Vec::new();
        image::DynamicImage::ImageRgb8(img).write_to(&mut std::io::Cursor::new(&mut out), format).unwrap();
        out
    }

    fn write_png(path: &Path, w: u32, h: u32, seed: u8) {
        let rgb: Vec<u8> = (0..w * h * 3).map(|i| (i as u8).wrapping_mul(seed)).collect();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, encode(w, h, &rgb, image::ImageFormat::Png)).unwrap();
    }

    fn write_jpeg(path: &Path, w: u32, h: u32) {
        let rgb: Vec<u8> = (0..w * h).flat_map(|i| [200, (i % 256) as u8, 30]).collect();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, encode(w, h, &rgb, image::ImageFormat::Jpeg)).unwrap();
    }

    fn fixture() -> serde_json::Value {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/folder/resize.json");
        serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
    }

    fn floats(v: &serde_json::Value) -> Vec<f32> {
        v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
    }

    #[test]
    fn resizing_matches_tensorflow_bilinear_crop_and_pad() {
        let fx = fixture();
        for case in fx["cases"].as_array().unwrap() {
            let dims: Vec<usize> =
                case["in"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
            let out: Vec<usize> =
                case["out"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
            let (h, w, c) = (dims[0], dims[1], dims[2]);
            let px = pattern(h, w, c);
            for (key, aspect) in
                [("resize", AspectRatio::Stretch), ("crop", AspectRatio::Crop), ("pad", AspectRatio::Pad)]
            {
                let spec = PictureSpec {
                    height: out[0],
                    width: out[1],
                    color_mode: ColorMode::from_channels(c).unwrap(),
                    aspect_ratio: aspect,
                };
                let got = fit_to(&px, h, w, &spec);
                let want = floats(&case[key]);
                assert_eq!(got.len(), want.len(), "{key} {dims:?}");
                for (i, (g, k)) in got.iter().zip(&want).enumerate() {
                    assert!((g - k).abs() < 2e-3, "{key} {dims:?}->{out:?} at {i}: {g} vs TensorFlow {k}");
                }
            }
        }
    }

    #[test]
    fn grey_and_rgba_from_colour_as_tensorflow_decodes() {
        let fx = fixture();
        let png = encode(16, 16, &pattern(16, 16, 3), image::ImageFormat::Png);
        let (grey, h, w) = decode_pixels(&png, Path::new("p.png"), ColorMode::Grayscale).unwrap();
        assert_eq!((h, w), (16, 16));
        let want: Vec<u8> = floats(&fx["grey_from_rgb"]["values"]).iter().map(|&v| v as u8).collect();
        assert_eq!(grey, want);
        let (rgba, _, _) = decode_pixels(&png, Path::new("p.png"), ColorMode::Rgba).unwrap();
        let want: Vec<u8> = floats(&fx["rgba_from_rgb"]).iter().map(|&v| v as u8).collect();
        assert_eq!(rgba, want);
    }

    /// A one-tree folder: two classes of mixed PNG/JPEG sizes, an empty class, and strays.
    fn one_tree(d: &Path) {
        for i in 0..6 {
            write_png(&d.join(format!("cat/c{i}.png")), 10 + i, 8, 3 + i as u8);
            write_jpeg(&d.join(format!("dog/sub/d{i}.JPG")), 12, 9 + i);
        }
        std::fs::create_dir_all(d.join("empty")).unwrap();
        std::fs::create_dir_all(d.join(".hidden")).unwrap();
        write_png(&d.join(".hidden/x.png"), 4, 4, 1);
        std::fs::write(d.join("cat/.DS_Store"), b"\0\0\0\x01Bud1").unwrap();
        std::fs::write(d.join("dog/Thumbs.db"), b"junk").unwrap();
        std::fs::write(d.join("dog/notes.txt"), b"junk").unwrap();
        write_png(&d.join("loose.png"), 4, 4, 1); // not in a class folder: not a sample
    }

    #[test]
    fn one_tree_classes_strays_and_a_stable_split() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        one_tree(d);
        assert!(is_image_folder(d));
        let opts = FolderOptions { validation_split: 0.25, seed: 7, ..Default::default() };
        // A data set's own files next to the folders: not a picture folder.
        std::fs::write(d.join("train-images-idx3-ubyte.gz"), b"").unwrap();
        assert!(!is_image_folder(d));
        std::fs::remove_file(d.join("train-images-idx3-ubyte.gz")).unwrap();
        let ix = index(d, &opts).unwrap();
        assert_eq!(ix.layout, Layout::OneTree);
        // Sorted folder names; the empty class keeps its index; hidden folders are not classes.
        assert_eq!(ix.class_names, ["cat", "dog", "empty"]);
        // ⌊12 · 0.25⌋ = 3 held out.
        assert_eq!((ix.train.len(), ix.test.len()), (9, 3));
        let mut all: Vec<_> = ix.train.iter().chain(&ix.test).map(|f| f.path.clone()).collect();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 12);
        for f in ix.train.iter().chain(&ix.test) {
            let s = f.path.to_string_lossy();
            assert_eq!(f.label, if s.contains("/cat/") { 0 } else { 1 }, "{s}");
        }
        // Stable: the same seed draws the same split; another seed another one.
        let again = index(d, &opts).unwrap();
        assert_eq!(again.test, ix.test);
        let other = index(d, &FolderOptions { seed: 8, ..opts.clone() }).unwrap();
        assert_ne!(other.test, ix.test);
        // No split: everything for training, in sorted order.
        let sorted = index(d, &FolderOptions { shuffle: false, ..Default::default() }).unwrap();
        assert_eq!((sorted.train.len(), sorted.test.len()), (12, 0));
        assert!(sorted.train.windows(2).all(|p| p[0].path < p[1].path));
        // Shuffled by default: the same files in another order.
        let whole = index(d, &FolderOptions::default()).unwrap();
        assert_ne!(whole.train, sorted.train);
        let mut back = whole.train.clone();
        back.sort_by(|a, b| a.path.cmp(&b.path));
        assert_eq!(back, sorted.train);
        // Given class names set the order, and must be folders there.
        let given =
            FolderOptions { class_names: Some(vec!["dog".into(), "cat".into()]), shuffle: false, ..Default::default() };
        let ix = index(d, &given).unwrap();
        assert_eq!(ix.class_names, ["dog", "cat"]);
        assert_eq!(ix.train[0].label, 0);
        assert!(ix.train[0].path.to_string_lossy().contains("/dog/"));
        let wrong = FolderOptions { class_names: Some(vec!["bird".into()]), ..Default::default() };
        assert!(index(d, &wrong).unwrap_err().to_string().contains("\"bird\""));
        // A split that leaves a side empty is an error.
        assert!(index(d, &FolderOptions { validation_split: 0.01, ..Default::default() }).is_err());
    }

    #[test]
    fn train_and_test_trees_are_used_as_given() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        for (split, n) in [("train", 4), ("val", 2)] {
            for class in ["a", "b"] {
                for i in 0..n {
                    write_png(&d.join(format!("{split}/{class}/{i}.png")), 5, 5, i as u8 + 1);
                }
            }
        }
        let ix = index(d, &FolderOptions { validation_split: 0.5, ..Default::default() }).unwrap();
        assert_eq!(ix.layout, Layout::TrainTest(d.join("val")));
        assert_eq!(ix.class_names, ["a", "b"]);
        assert_eq!((ix.train.len(), ix.test.len()), (8, 4));
        assert!(ix.test.iter().all(|f| f.path.starts_with(d.join("val"))));
        // A test class the training tree lacks is an error.
        write_png(&d.join("val/c/0.png"), 5, 5, 1);
        assert!(index(d, &FolderOptions::default()).unwrap_err().to_string().contains("\"c\""));
    }

    #[test]
    fn a_single_class_and_no_pictures() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        std::fs::create_dir_all(d.join("only")).unwrap();
        std::fs::write(d.join("only/readme.txt"), b"x").unwrap();
        let e = index(d, &FolderOptions::default()).unwrap_err().to_string();
        assert!(e.contains("No images found in directory"), "{e}");
        assert!(!is_image_folder(d));
        write_png(&d.join("only/0.png"), 3, 3, 1);
        let ix = index(d, &FolderOptions::default()).unwrap();
        assert_eq!((ix.class_names.len(), ix.train.len()), (1, 1));
    }

    #[test]
    fn pictures_stream_the_same_with_and_without_the_cache() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        one_tree(d);
        let opts =
            FolderOptions { image_size: (8, 6), color_mode: ColorMode::Rgb, shuffle: false, ..Default::default() };
        let ix = index(d, &opts).unwrap();
        let mut cached = FolderData::new(ix.train.clone(), 3, &opts).unwrap();
        assert_eq!(cached.cached(), 12);
        // A budget for five pictures: the rest decode per batch.
        let budget = FolderOptions { cache_bytes: 5 * 8 * 6 * 3, ..opts.clone() };
        let mut partial = FolderData::new(ix.train.clone(), 3, &budget).unwrap();
        assert_eq!(partial.cached(), 5);
        let mut none = FolderData::new(ix.train.clone(), 3, &FolderOptions { cache_bytes: 0, ..opts.clone() }).unwrap();
        let idx = [11, 0, 6, 4, 5, 3];
        let (mut xa, mut ya, mut xb, mut yb, mut xc, mut yc) = (
            Tensor::zeros(&[0]),
            Tensor::zeros(&[0]),
            Tensor::zeros(&[0]),
            Tensor::zeros(&[0]),
            Tensor::zeros(&[0]),
            Tensor::zeros(&[0]),
        );
        cached.fill(&idx, &mut xa, &mut ya).unwrap();
        partial.fill(&idx, &mut xb, &mut yb).unwrap();
        none.fill(&idx, &mut xc, &mut yc).unwrap();
        assert_eq!(xa.shape(), &[6, 8, 6, 3]);
        assert_eq!(ya.shape(), &[6, 3]);
        assert_eq!(xa.data(), xb.data());
        assert_eq!(xa.data(), xc.data());
        assert_eq!(ya.data(), yc.data());
        // Values: the resized picture, rounded to whole levels, over 255.
        let spec = PictureSpec::of(&opts);
        let exact = load_picture(&ix.train[11].path, &spec).unwrap();
        for (a, b) in xa.sample(0).iter().zip(&exact) {
            assert!((a - b).abs() <= 0.5 / 255.0 + 1e-6);
        }
        assert!(xa.data().iter().all(|v| (0.0..=1.0).contains(v)));
        // A model that begins with Rescaling takes the same pictures as 0–255 values.
        let mut raw =
            FolderData::new(ix.train.clone(), 3, &FolderOptions { pixel_scale: 1.0, ..opts.clone() }).unwrap();
        let (mut xr, mut yr) = (Tensor::zeros(&[0]), Tensor::zeros(&[0]));
        raw.fill(&idx, &mut xr, &mut yr).unwrap();
        assert!(xr.data().iter().any(|&v| v > 1.0));
        for (r, a) in xr.data().iter().zip(xa.data()) {
            assert_eq!(*r, (a * 255.0).round());
        }
        // One-hot rows follow the labels; sparse labels are indices.
        assert_eq!(&ya.data()[..3], &[0.0, 1.0, 0.0]); // file 11 is a dog
        let mut sparse =
            FolderData::new(ix.train.clone(), 3, &FolderOptions { label_mode: LabelMode::Int, ..opts.clone() })
                .unwrap();
        sparse.fill(&idx, &mut xa, &mut ya).unwrap();
        assert_eq!(ya.shape(), &[6]);
        assert_eq!(ya.data(), &[1.0, 0.0, 1.0, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn bad_pictures_are_listed_before_training_or_skipped() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        for i in 0..3 {
            write_png(&d.join(format!("a/ok{i}.png")), 4, 4, 1);
        }
        for i in 0..12 {
            std::fs::write(d.join(format!("a/bad{i:02}.png")), b"not a picture").unwrap();
        }
        let ix = index(d, &FolderOptions::default()).unwrap();
        assert_eq!(ix.train.len(), 15);
        for cache in [DEFAULT_CACHE_BYTES, 0] {
            let opts = FolderOptions { image_size: (4, 4), cache_bytes: cache, ..Default::default() };
            let e = FolderData::new(ix.train.clone(), 1, &opts).err().unwrap().to_string();
            assert!(e.contains("12 picture file(s) could not be read"), "{e}");
            assert!(e.contains("bad00.png") && e.contains("bad09.png") && !e.contains("bad10.png"), "{e}");
            assert!(e.contains("and 2 more"), "{e}");
            let skip = FolderOptions { skip_bad_images: true, ..opts };
            let data = FolderData::new(ix.train.clone(), 1, &skip).unwrap();
            assert_eq!((data.len(), data.skipped().len()), (3, 12));
            assert!(data.files().iter().all(|f| f.path.to_string_lossy().contains("ok")));
        }
        // A file whose header reads but whose pixels do not: found at once when cached,
        // and an error naming the file when decoded per batch.
        let png = std::fs::read(d.join("a/ok0.png")).unwrap();
        std::fs::write(d.join("a/ok2.png"), &png[..png.len() - 20]).unwrap();
        let files: Vec<ImageFile> =
            ix.train.iter().filter(|f| !f.path.to_string_lossy().contains("bad")).cloned().collect();
        let opts = FolderOptions { image_size: (4, 4), ..Default::default() };
        let e = FolderData::new(files.clone(), 1, &opts).err().unwrap().to_string();
        assert!(e.contains("ok2.png"), "{e}");
        let mut lazy = FolderData::new(files, 1, &FolderOptions { cache_bytes: 0, ..opts }).unwrap();
        let e = lazy.fill(&[0, 1, 2], &mut Tensor::zeros(&[0]), &mut Tensor::zeros(&[0])).unwrap_err().to_string();
        assert!(e.contains("ok2.png"), "{e}");
    }

    /// Batches of `n` samples in a drawn order, filled as the fit loop does: each fill, then the
    /// next batch handed over. Returns every batch's inputs and targets.
    fn stream(data: &mut FolderData, order: &[usize], n: usize) -> Vec<(Vec<f32>, Vec<f32>)> {
        let (mut x, mut y) = (Tensor::zeros(&[0]), Tensor::zeros(&[0]));
        let batches: Vec<&[usize]> = order.chunks(n).collect();
        let mut out = Vec::new();
        for (b, idx) in batches.iter().enumerate() {
            data.fill(idx, &mut x, &mut y).unwrap();
            if let Some(next) = batches.get(b + 1) {
                data.prefetch(next);
            }
            out.push((x.data().to_vec(), y.data().to_vec()));
        }
        out
    }

    #[test]
    fn prefetched_batches_are_the_batches_decoded_in_place() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        one_tree(d);
        let opts = FolderOptions { image_size: (7, 9), cache_bytes: 0, shuffle: false, ..Default::default() };
        let ix = index(d, &opts).unwrap();
        let order = [3, 11, 0, 7, 5, 9, 1, 10, 2, 8, 6, 4];
        let mut plain = FolderData::new(ix.train.clone(), 3, &FolderOptions { prefetch: 0, ..opts.clone() }).unwrap();
        let want = stream(&mut plain, &order, 5);
        assert!(plain.prefetcher.is_none());
        // Cache off, and a cache holding five of the twelve (batches mix cached and decoded).
        for cache in [0, 5 * 7 * 9 * 3] {
            let mut ahead =
                FolderData::new(ix.train.clone(), 3, &FolderOptions { cache_bytes: cache, ..opts.clone() }).unwrap();
            let got = stream(&mut ahead, &order, 5);
            assert!(got == want, "cache {cache}: prefetched batches differ");
            // The two batches after the first came from the thread (two hints, two buffers).
            assert_eq!(ahead.prefetcher.as_ref().unwrap().taken, 2, "cache {cache}");
        }
        // Everything cached: nothing to decode ahead, no thread.
        let mut cached = FolderData::new(ix.train.clone(), 3, &FolderOptions { cache_bytes: 1 << 20, ..opts }).unwrap();
        assert!(stream(&mut cached, &order, 5) == want);
        assert!(cached.prefetcher.is_none());
    }

    #[test]
    fn the_prefetch_queue_is_bounded_and_drops_hints_that_do_not_come_true() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        one_tree(d);
        let opts = FolderOptions { image_size: (4, 4), cache_bytes: 0, prefetch: 2, ..Default::default() };
        let ix = index(d, &opts).unwrap();
        let mut data = FolderData::new(ix.train.clone(), 3, &opts).unwrap();
        let mut plain = FolderData::new(ix.train.clone(), 3, &FolderOptions { prefetch: 0, ..opts }).unwrap();
        // Five hints without a fill: two batches in flight, two buffers ever made.
        for b in 0..5 {
            data.prefetch(&[b, b + 6]);
            let p = data.prefetcher.as_ref().unwrap();
            assert_eq!((p.pending.len(), p.made), ((b + 1).min(2), (b + 1).min(2)), "after hint {b}");
        }
        let (mut x, mut y, mut xp, mut yp) =
            (Tensor::zeros(&[0]), Tensor::zeros(&[0]), Tensor::zeros(&[0]), Tensor::zeros(&[0]));
        // The second hint comes true: the first is dropped, the second taken.
        data.fill(&[1, 7], &mut x, &mut y).unwrap();
        plain.fill(&[1, 7], &mut xp, &mut yp).unwrap();
        assert_eq!((x.data(), y.data()), (xp.data(), yp.data()));
        let p = data.prefetcher.as_ref().unwrap();
        assert_eq!((p.pending.len(), p.taken, p.spent.len()), (0, 1, 2));
        // A batch never handed over decodes in place; buffers are reused, never more than two.
        // (A hint finds no free buffer while the thread still holds both: then it is dropped.)
        for b in 0..6 {
            data.prefetch(&[b, 11 - b]);
            data.fill(&[b, 11 - b], &mut x, &mut y).unwrap();
            plain.fill(&[b, 11 - b], &mut xp, &mut yp).unwrap();
            assert_eq!(x.data(), xp.data());
            data.fill(&[11, b], &mut x, &mut y).unwrap();
            plain.fill(&[11, b], &mut xp, &mut yp).unwrap();
            assert_eq!(x.data(), xp.data());
        }
        let p = data.prefetcher.as_ref().unwrap();
        assert_eq!((p.pending.len(), p.made), (0, 2));
        assert!((1..=7).contains(&p.taken));
    }

    #[test]
    fn fill_finishes_a_batch_the_thread_has_not_reached() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        one_tree(d);
        let opts = FolderOptions { image_size: (5, 5), cache_bytes: 0, prefetch: 0, ..Default::default() };
        let ix = index(d, &opts).unwrap();
        let mut plain = FolderData::new(ix.train.clone(), 3, &opts).unwrap();
        let (mut x, mut y) = (Tensor::zeros(&[0]), Tensor::zeros(&[0]));
        plain.fill(&[4, 9, 2, 11], &mut x, &mut y).unwrap();
        // A batch no thread has touched (as when the prefetch thread was kept off the
        // processor), and one it got halfway through: `complete` decodes the rest.
        for claimed in [0, 2] {
            let mut b = Batch::new();
            b.todo = vec![4, 9, 2, 11];
            b.slots = (0..4).map(|_| Mutex::new(Slot { pixels: Vec::new(), result: Ok(()) })).collect();
            let spec = PictureSpec::of(&opts);
            for k in 0..claimed {
                let mut s = lock(&b.slots[k]);
                s.pixels = vec![0; spec.len()];
                load_picture_bytes(&ix.train[b.todo[k]].path, &spec, &mut s.pixels).unwrap();
            }
            *b.next.get_mut() = claimed;
            *b.finished.get_mut().unwrap() = claimed;
            b.complete(&ix.train, &spec);
            assert_eq!(b.next.load(Ordering::Acquire), 4 + crate::parallel::workers());
            let got: Vec<f32> =
                b.slots.iter().flat_map(|s| lock(s).pixels.clone()).map(|v| v as f32 * (1.0 / 255.0)).collect();
            assert!(got == x.data(), "{claimed} claimed by the thread");
        }
    }

    #[test]
    fn an_unreadable_file_found_ahead_is_reported_with_its_path() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        for i in 0..4 {
            write_png(&d.join(format!("a/{i}.png")), 6, 6, 3 + i as u8);
        }
        // The header reads (so it passes the check before training); the pixels do not.
        let png = std::fs::read(d.join("a/0.png")).unwrap();
        std::fs::write(d.join("a/2.png"), &png[..png.len() - 20]).unwrap();
        let opts = FolderOptions { image_size: (6, 6), cache_bytes: 0, shuffle: false, ..Default::default() };
        let ix = index(d, &opts).unwrap();
        let mut plain = FolderData::new(ix.train.clone(), 1, &FolderOptions { prefetch: 0, ..opts.clone() }).unwrap();
        let mut ahead = FolderData::new(ix.train.clone(), 1, &opts).unwrap();
        let (mut x, mut y) = (Tensor::zeros(&[0]), Tensor::zeros(&[0]));
        let want = plain.fill(&[3, 2, 1], &mut x, &mut y).unwrap_err().to_string();
        assert!(want.contains("a/2.png"), "{want}");
        ahead.fill(&[0], &mut x, &mut y).unwrap();
        ahead.prefetch(&[3, 2, 1]);
        let got = ahead.fill(&[3, 2, 1], &mut x, &mut y).unwrap_err().to_string();
        assert_eq!(ahead.prefetcher.as_ref().unwrap().taken, 1, "the error came from the thread");
        assert_eq!(got, want);
        // And training stops with it, naming the file.
        let mut m = small_model([6, 6, 3], 1);
        let fit = crate::train::FitOptions { batch_size: 1, verbose: 0, shuffle: false, ..Default::default() };
        let e = m.fit_data(&mut ahead, None, fit).unwrap_err().to_string();
        assert!(e.contains("a/2.png"), "{e}");
    }

    fn small_model(input: [usize; 3], classes: usize) -> Sequential {
        use crate::nn::layers::{Conv2D, Dense, Flatten};
        let mut m = Sequential::new().seed(4);
        m.add(Conv2D::new(4, (3, 3)).activation(crate::Activation::Relu).input_shape(input));
        m.add(Flatten::new());
        m.add(Dense::new(classes).activation(crate::Activation::Softmax));
        m.compile(crate::Loss::CategoricalCrossentropy, crate::Adam::default(), &[crate::Metric::Accuracy]).unwrap();
        m
    }

    #[test]
    fn training_is_bit_identical_with_and_without_prefetch() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        one_tree(d);
        let opts = FolderOptions { image_size: (8, 8), ..Default::default() };
        let ix = index(d, &opts).unwrap();
        let train = |cache: usize, prefetch: usize| {
            let mut data =
                FolderData::new(ix.train.clone(), 3, &FolderOptions { cache_bytes: cache, prefetch, ..opts.clone() })
                    .unwrap();
            let mut m = small_model([8, 8, 3], 3);
            let fit = crate::train::FitOptions { batch_size: 5, epochs: 3, verbose: 0, ..Default::default() };
            let h = m.fit_data(&mut data, None, fit).unwrap();
            let taken = data.prefetcher.as_ref().map_or(0, |p| p.taken);
            (m.get_weights(), h.history["loss"].clone(), taken)
        };
        let (w, loss, taken) = train(DEFAULT_CACHE_BYTES, 2);
        assert_eq!(taken, 0, "all cached: nothing decoded ahead");
        assert!(train(0, 0) == (w.clone(), loss.clone(), 0));
        // 12 pictures in batches of 5: the 2nd and 3rd batch of each of the 3 epochs are handed
        // over (each taken unless no buffer was free when it was).
        let (w2, loss2, taken) = train(0, 2);
        assert!(w2 == w && loss2 == loss, "prefetch changed training");
        assert!((2..=6).contains(&taken), "{taken} batches taken from the thread");
    }

    #[test]
    fn every_allowed_format_decodes() {
        let rgb = pattern(6, 7, 3);
        for f in [
            image::ImageFormat::Png,
            image::ImageFormat::Jpeg,
            image::ImageFormat::Bmp,
            image::ImageFormat::Gif,
            image::ImageFormat::WebP,
        ] {
            let bytes = encode(7, 6, &rgb, f);
            let (px, h, w) = decode_pixels(&bytes, Path::new("x"), ColorMode::Rgb).unwrap();
            assert_eq!((h, w, px.len()), (6, 7, 126), "{f:?}");
        }
        assert!(is_picture_name("A.JPEG") && is_picture_name("b.webp") && !is_picture_name("Thumbs.db"));
    }
}
