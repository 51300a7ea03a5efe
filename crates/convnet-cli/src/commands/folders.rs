//! `train`, `evaluate` and `predict` on folders of pictures (`--data-dir DIR` with class
//! folders, or folders given to `predict`).

use super::{install_interrupt_handler, metric, open, prepare_output, run_callbacks, top_k, RunSettings, INTERRUPTED};
use crate::{DataArgs, EvaluateArgs, FolderArgs, PredictArgs, TrainArgs};
use convnet::data::augment::ImageDataGenerator;
use convnet::data::folder::{self, AspectRatio, ColorMode, FolderData, FolderIndex, FolderOptions, LabelMode};
use convnet::data::source::TrainData;
use convnet::io;
use convnet::prelude::*;
use serde_json::{json, Value};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

type CliResult = std::result::Result<(), Box<dyn std::error::Error>>;

/// The folder of class folders that `--data-dir` names, if it is one (and no `--dataset` is given).
pub(super) fn folder_of(d: &DataArgs) -> Option<PathBuf> {
    match (&d.dataset, &d.data_dir) {
        (None, Some(dir)) if folder::is_image_folder(dir) => Some(dir.clone()),
        _ => None,
    }
}

/// Parses `HxW` (or one number for a square).
fn parse_size(s: &str) -> Result<(usize, usize)> {
    let bad = || Error::config(format!("--image-size takes HxW, e.g. 64x64, not {s:?}"));
    let parts: Vec<&str> = s.split(['x', 'X', ',']).map(str::trim).collect();
    let n = |t: &str| t.parse::<usize>().ok().filter(|&v| v > 0).ok_or_else(bad);
    match parts.as_slice() {
        [one] => Ok((n(one)?, n(one)?)),
        [h, w] => Ok((n(h)?, n(w)?)),
        _ => Err(bad()),
    }
}

/// The folder options for `model`: its input size and channels unless the flags say otherwise.
fn options(f: &FolderArgs, model: &Sequential) -> Result<FolderOptions> {
    let input = model.input_shape().map(<[usize]>::to_vec).unwrap_or_default();
    let image_size = match (&f.image_size, input.as_slice()) {
        (Some(s), _) => parse_size(s)?,
        (None, [h, w, _]) => (*h, *w),
        _ => return Err(Error::config("the model has no (height, width, channels) input; give --image-size HxW")),
    };
    let color_mode = match (&f.color_mode, input.as_slice()) {
        (Some(m), _) => ColorMode::parse(m)?,
        (None, [_, _, c]) => ColorMode::from_channels(*c)?,
        _ => ColorMode::Rgb,
    };
    Ok(FolderOptions {
        image_size,
        color_mode,
        aspect_ratio: if f.crop_to_aspect_ratio {
            AspectRatio::Crop
        } else if f.pad_to_aspect_ratio {
            AspectRatio::Pad
        } else {
            AspectRatio::Stretch
        },
        skip_bad_images: f.skip_bad_images,
        cache_bytes: f.image_cache.saturating_mul(1 << 20),
        prefetch: f.prefetch,
        label_mode: LabelMode::for_model(model),
        pixel_scale: model.pixel_scale(),
        ..Default::default()
    })
}

/// Checks that the model has one output per class of the folder.
fn check_classes(model: &mut Sequential, ix: &FolderIndex) -> Result<()> {
    let out = model.output_shape()?;
    if out != [ix.class_names.len()] {
        return Err(Error::Shape(format!(
            "the model has output shape {out:?}, but {} has {} classes ({}); give a model with {} outputs",
            ix.root.display(),
            ix.class_names.len(),
            ix.class_names.join(", "),
            ix.class_names.len()
        )));
    }
    Ok(())
}

/// Prepares a set of pictures, reporting skipped files.
fn prepare(files: Vec<folder::ImageFile>, classes: usize, opts: &FolderOptions, what: &str) -> Result<FolderData> {
    let data = FolderData::new(files, classes, opts)?;
    if !data.skipped().is_empty() {
        eprintln!("Skipped {} {what} picture(s) that could not be decoded", data.skipped().len());
    }
    Ok(data)
}

/// Compiles a fresh model as `start_run` does: the model file's settings, else Adam.
fn compile(model: &mut Sequential, a: &TrainArgs) -> Result<()> {
    let explicit = a.optimizer.as_deref().map(Optimizer::parse).transpose()?;
    let (loss, opt, metrics) = match (explicit, model.compiled().cloned()) {
        (None, Some(c)) => {
            let m = if c.metrics.is_empty() { vec![Metric::Accuracy] } else { c.metrics.clone() };
            (c.loss, c.optimizer, m)
        }
        (opt, _) => {
            (Loss::CategoricalCrossentropy, opt.unwrap_or_else(|| Adam::default().into()), vec![Metric::Accuracy])
        }
    };
    let mut opt = opt;
    if let Some(lr) = a.learning_rate {
        opt.set_learning_rate(lr);
    }
    model.compile(loss, opt, &metrics)
}

/// `convnet train MODEL --data-dir FOLDER`.
pub(super) fn train(a: &TrainArgs, dir: &Path) -> CliResult {
    if a.resume.is_some() {
        return Err(Error::config(
            "--resume continues runs on the built-in data sets; it does not take a picture folder yet",
        )
        .into());
    }
    let spec = a.model.clone().unwrap_or_default();
    let (mut model, _) = open(&spec)?;
    model.set_seed(a.seed);
    compile(&mut model, a)?;
    let mut opts = options(&a.folder, &model)?;
    opts.validation_split = a.validation_split.unwrap_or(0.2);
    opts.seed = a.seed;
    let ix = folder::index(dir, &opts)?;
    check_classes(&mut model, &ix)?;
    model.set_class_names(ix.class_names.clone());
    let mut train_files = ix.train.clone();
    if let Some(n) = a.limit {
        train_files.truncate(n);
    }
    let classes = ix.class_names.len();
    if !a.json {
        eprintln!(
            "Pictures: {} ({} classes: {}) — {} for training, {} for {} — {}×{} {}",
            dir.display(),
            classes,
            ix.class_names.join(", "),
            train_files.len(),
            ix.test.len(),
            match &ix.layout {
                folder::Layout::TrainTest(t) => format!("testing (from {})", t.display()),
                folder::Layout::OneTree => "validation".into(),
            },
            opts.image_size.0,
            opts.image_size.1,
            opts.color_mode.name()
        );
    }
    let mut data = prepare(train_files, classes, &opts, "training")?;
    let (x_test, y_test, test_skipped) = if ix.test.is_empty() {
        (None, None, 0)
    } else {
        let mut test = prepare(ix.test.clone(), classes, &opts, "test")?;
        let (x, y) = test.to_tensors()?;
        (Some(x), Some(y), test.skipped().len())
    };
    let augment = a.augment.as_deref().map(ImageDataGenerator::from_spec).transpose()?;
    let s = RunSettings {
        model: spec.clone(),
        dataset: dir.display().to_string(),
        data_dir: Some(std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf())),
        no_download: a.data.no_download,
        epochs: a.epochs.unwrap_or(10),
        batch_size: a.batch_size,
        validation_split: None,
        seed: a.seed,
        limit: a.limit,
        base_learning_rate: model.optimizer().map(|o| o.learning_rate()).unwrap_or(0.001),
        augment: None,
        checkpoint: None,
        early_stopping: a.early_stopping,
        reduce_lr_on_plateau: a.reduce_lr_on_plateau.clone(),
        lr_schedule: a.lr_schedule.clone(),
        monitor: a.monitor.clone(),
        save_best: a.save_best.clone(),
        csv_log: a.csv_log.clone(),
        on_nan: a.on_nan.clone(),
        save: a.save.clone(),
        history: a.history.clone(),
        plot: a.plot.clone(),
    };
    super::check_outputs(&s)?;
    install_interrupt_handler();
    let validation = x_test.as_ref().zip(y_test.as_ref());
    let verbose = a.verbose.unwrap_or_else(|| {
        let tty = if a.json { std::io::stderr().is_terminal() } else { std::io::stdout().is_terminal() };
        tty as u8
    });
    let fit = FitOptions {
        batch_size: s.batch_size,
        epochs: s.epochs,
        verbose,
        progress_to_stderr: a.json,
        callbacks: run_callbacks(&s, if a.json { 0 } else { verbose.min(1) })?,
        stop_on_non_finite: s.on_nan == "stop",
        interrupt: Some(&INTERRUPTED),
        settings: serde_json::to_value(&s)?,
        ..Default::default()
    };
    let result = match augment {
        None => model.fit_data(&mut data, validation, fit),
        Some(mut gen) => {
            // Augment the 0–255 pixels (as for the built-in sets), then scale to [0, 1].
            let (x, y) = data.to_tensors()?;
            let x = x.scale(255.0);
            gen.rescale = Some(gen.rescale.unwrap_or(1.0) / 255.0);
            let mut flow = gen.flow(&x, &y, s.batch_size, true, s.seed)?;
            model.fit_data(&mut flow, validation, fit)
        }
    };
    let hist = match result {
        Ok(h) => h,
        Err(Error::Interrupted { epoch, batch, .. }) => {
            eprintln!("Interrupted in epoch {epoch} after batch {batch}.");
            std::process::exit(130);
        }
        Err(e) => return Err(e.into()),
    };
    let test = match validation {
        Some((x, y)) => Some(model.evaluate(x, y, s.batch_size.max(256))?),
        None => None,
    };
    if let Some(p) = &s.save {
        io::save_model(&model, p)?;
        if !a.json {
            eprintln!("Saved the model to {}", p.display());
        }
    }
    if let Some(p) = &s.history {
        let text =
            if p.extension().is_some_and(|e| e.eq_ignore_ascii_case("json")) { hist.to_json() } else { hist.to_csv() };
        io::atomic_write(p, text.as_bytes())?;
    }
    if let Some(d) = &s.plot {
        convnet::viz::charts::write_history_charts(&hist, d)?;
    }
    if a.json {
        let mut out = json!({
            "model": s.model,
            "data_dir": dir.display().to_string(),
            "class_names": ix.class_names,
            "train_samples": data.len(),
            "test_samples": x_test.as_ref().map_or(0, |x| x.batch()),
            "skipped_images": data.skipped().len() + test_skipped,
            "image_size": [opts.image_size.0, opts.image_size.1],
            "color_mode": opts.color_mode.name(),
            "epochs": hist.epoch.len(),
            "batch_size": s.batch_size,
            "seed": s.seed,
            "history": hist.history,
            "seconds_per_epoch": hist.seconds,
        });
        if let Some(t) = &test {
            out["test_loss"] = json!(metric(t, "loss"));
            out["test_accuracy"] = json!(metric(t, "accuracy"));
        }
        for (k, v) in &hist.history {
            if let Some(last) = v.last() {
                out[k] = json!(last);
            }
        }
        if let Some(p) = &s.save {
            out["saved"] = json!(p.display().to_string());
        }
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else if let Some(t) = &test {
        println!(
            "Test accuracy: {:.2}% (loss {:.4}) on {} held-out pictures",
            metric(t, "accuracy") * 100.0,
            metric(t, "loss"),
            x_test.as_ref().map_or(0, |x| x.batch())
        );
    }
    Ok(())
}

/// The model's class names when they are all folders of `dir`'s labelled tree (so labels keep
/// the model's order), else none (the folder's sorted names).
fn model_classes(model: &Sequential, dir: &Path) -> Option<Vec<String>> {
    let names = model.class_names()?.to_vec();
    let tree = if dir.join("train").is_dir() { dir.join("train") } else { dir.to_path_buf() };
    names.iter().all(|n| tree.join(n).is_dir()).then_some(names)
}

/// `convnet evaluate MODEL --data-dir FOLDER`: the test tree, or every picture of one tree.
pub(super) fn evaluate(a: &EvaluateArgs, dir: &Path) -> CliResult {
    let (mut model, _) = open(&a.model)?;
    model.build()?;
    super::compile_for_evaluation(&mut model)?;
    let mut opts = options(&a.folder, &model)?;
    opts.class_names = model_classes(&model, dir);
    let ix = folder::index(dir, &opts)?;
    check_classes(&mut model, &ix)?;
    let mut files = match ix.layout {
        folder::Layout::TrainTest(_) => ix.test.clone(),
        folder::Layout::OneTree => ix.train.clone(),
    };
    if let Some(n) = a.limit {
        files.truncate(n);
    }
    let names = ix.class_names.clone();
    let mut data = prepare(files, names.len(), &opts, "test")?;
    let (x, y) = data.to_tensors()?;
    let logs = model.evaluate(&x, &y, a.batch_size)?;
    let mut per_class = Vec::new();
    if let Some(p) = &a.confusion {
        prepare_output(p, false, "--confusion")?;
        let predicted = model.predict(&x, a.batch_size)?.argmax_rows();
        per_class = super::write_confusion(p, &predicted, &data.labels(), &names, a.json)?;
    }
    if a.json {
        let mut out = json!({
            "model": a.model, "data_dir": dir.display().to_string(), "class_names": names,
            "samples": x.batch(), "skipped_images": data.skipped().len(),
        });
        if !per_class.is_empty() {
            out["per_class"] = json!(per_class
                .iter()
                .zip(&names)
                .map(|((p, r, n), c)| json!({"class": c, "precision": p, "recall": r, "support": n}))
                .collect::<Vec<_>>());
        }
        for (k, v) in &logs {
            out[k] = json!(v);
        }
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!(
            "{} pictures of {} ({} classes): accuracy {:.2}%, loss {:.4}",
            x.batch(),
            dir.display(),
            names.len(),
            metric(&logs, "accuracy") * 100.0,
            metric(&logs, "loss")
        );
    }
    Ok(())
}

/// Whether `predict` reads its pictures as a folder data set does (some input is a folder).
pub(super) fn any_folder(a: &PredictArgs) -> bool {
    a.images.iter().any(|p| p.is_dir())
}

/// `convnet predict MODEL FOLDER_OR_PICTURES…`: every picture under the folders, prepared as
/// for training from a folder (no inversion), with the model's class names.
pub(super) fn predict(a: &PredictArgs) -> CliResult {
    let (mut model, _) = open(&a.model)?;
    model.build()?;
    let opts = options(&a.folder, &model)?;
    let spec = folder::PictureSpec::of(&opts);
    let mut paths = Vec::new();
    for p in &a.images {
        if p.is_dir() {
            let before = paths.len();
            paths.extend(folder::pictures_under(p)?);
            if paths.len() == before {
                eprintln!("note: {} holds no pictures", p.display());
            }
        } else {
            paths.push(p.clone());
        }
    }
    let mut values = Vec::with_capacity(paths.len() * spec.len());
    let mut kept = Vec::new();
    let mut bad = 0;
    for p in &paths {
        match folder::load_picture(p, &spec) {
            Ok(v) => {
                // load_picture gives [0, 1]; a model that begins with Rescaling takes 0–255.
                let to_model = model.pixel_scale() * 255.0;
                values.extend(v.into_iter().map(|x| x * to_model));
                kept.push(p);
            }
            Err(e) if a.folder.skip_bad_images => {
                bad += 1;
                if !a.json {
                    eprintln!("skipped: {e}");
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    if bad > 0 {
        eprintln!("Skipped {bad} picture(s) that could not be decoded");
    }
    let mut shape = vec![kept.len()];
    shape.extend(spec.shape());
    let x = Tensor::from_vec(&shape, values)?;
    let probs = model.predict(&x, 256)?;
    let width = probs.sample_len();
    let class_name =
        |i: usize| -> String { model.class_names().and_then(|c| c.get(i).cloned()).unwrap_or_else(|| i.to_string()) };
    let mut rows = Vec::new();
    for (r, p) in kept.iter().enumerate() {
        let row = &probs.data()[r * width..(r + 1) * width];
        let top = top_k(row, a.top.max(1));
        if a.json {
            rows.push(json!({
                "file": p.display().to_string(),
                "class": class_name(top[0].0),
                "probability": top[0].1,
                "top": top.iter().map(|(i, p)| json!({"class": class_name(*i), "index": i, "probability": p})).collect::<Vec<Value>>(),
            }));
        } else {
            let shown: Vec<String> = top.iter().map(|(i, p)| format!("{} {:.1}%", class_name(*i), p * 100.0)).collect();
            println!("{}: {}", p.display(), shown.join(", "));
        }
    }
    if a.json {
        let out = json!({"model": a.model, "class_names": model.class_names(), "results": rows, "skipped_images": bad});
        println!("{}", serde_json::to_string_pretty(&out)?);
    }
    Ok(())
}
