//! The subcommands: each turns parsed arguments into library calls and prints the results.

use crate::{
    AugmentArgs, BenchArgs, DataArgs, EvaluateArgs, ExportArgs, FeaturesArgs, FilterArgs, FiltersArgs, PlotArgs,
    PredictArgs, SummaryArgs, TrainArgs,
};
use convnet::data::augment::ImageDataGenerator;
use convnet::data::images::{self, Invert};
use convnet::data::{self, Dataset, DatasetKind, LoadOptions};
use convnet::io;
use convnet::prelude::*;
use convnet::presets::ModelSource;
use convnet::train::callbacks::{
    CsvLogger, EarlyStopping, LearningRateScheduler, Mode, ModelCheckpoint, ReduceLROnPlateau,
};
use convnet::train::checkpoint::{load_checkpoint, TrainState};
use convnet::viz::charts::{grid_png, GridImage, GridSection};
use convnet::Logs;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

mod folders;

type CliResult = std::result::Result<(), Box<dyn std::error::Error>>;

/// Opens a model named on the command line, printing any warnings on stderr.
fn open(spec: &str) -> Result<(Sequential, ModelSource)> {
    let o = convnet::open_model(spec)?;
    for w in &o.warnings {
        eprintln!("warning: {spec}: {w}");
    }
    Ok((o.model, o.source))
}

/// The dataset to use: the flag, else the preset's, else one matching the model.
fn pick_dataset(args: &DataArgs, source: &ModelSource, model: &Sequential) -> Result<DatasetKind> {
    if let Some(name) = &args.dataset {
        return DatasetKind::parse(name);
    }
    if let ModelSource::Preset(p) = source {
        if let Some(k) = convnet::presets::default_dataset(p) {
            return Ok(k);
        }
    }
    let fashion: Vec<String> = DatasetKind::FashionMnist.class_names().iter().map(|s| s.to_string()).collect();
    if model.class_names() == Some(fashion.as_slice()) {
        return Ok(DatasetKind::FashionMnist);
    }
    Ok(match model.input_shape() {
        Some([32, 32, 3]) => DatasetKind::Cifar10,
        _ => DatasetKind::Mnist,
    })
}

/// Loads the dataset, printing where it came from (and any notice) on stderr.
fn load_dataset(args: &DataArgs, kind: DatasetKind, quiet: bool) -> Result<Dataset> {
    let opts = LoadOptions {
        data_dir: args.data_dir.clone(),
        download: !args.no_download,
        progress: std::io::stderr().is_terminal(),
        allow_sample: true,
    };
    let ds = data::load(kind, &opts)?;
    if let Some(n) = &ds.notice {
        eprintln!("note: {n}");
    }
    if !quiet {
        eprintln!(
            "Dataset: {} ({} train / {} test images, from {})",
            kind.name(),
            ds.train.count,
            ds.test.count,
            ds.source
        );
    }
    Ok(ds)
}

/// A preset that takes pictures of any size (`resnet20`, `mobilenet-v2`) rebuilt for the data
/// set's (28×28×1 for the MNIST sets); any other model stays as it is.
fn fit_preset(model: &mut Sequential, source: &ModelSource, kind: DatasetKind) -> Result<()> {
    if let ModelSource::Preset(p) = source {
        let want = kind.image_shape();
        if convnet::presets::adapts_to_input(p) && model.input_shape() != Some(&want[..]) {
            *model = convnet::presets::preset_for(p, [want[0], want[1], want[2]])?;
        }
    }
    Ok(())
}

/// Checks that the model takes the dataset's images and has one output per class.
fn check_fit(model: &mut Sequential, kind: DatasetKind) -> Result<()> {
    let want = kind.image_shape();
    let input = model.input_shape().map(<[usize]>::to_vec);
    if input.as_deref() != Some(&want[..]) {
        return Err(Error::Shape(format!(
            "the model takes input of shape {:?} but {} images are {:?}",
            input.unwrap_or_default(),
            kind.name(),
            want
        )));
    }
    let out = model.output_shape()?;
    if out != [10] {
        return Err(Error::Shape(format!("the model has output shape {out:?}; {} has 10 classes", kind.name())));
    }
    Ok(())
}

/// Targets for `labels` in the form the model's loss wants.
fn targets(model: &Sequential, set: &data::ImageSet) -> Tensor {
    match model.compiled().map(|c| c.loss.kind) {
        Some(convnet::nn::losses::LossKind::SparseCategoricalCrossentropy) => set.y_sparse(),
        _ => set.y_one_hot(10),
    }
}

fn compile_for_evaluation(model: &mut Sequential) -> Result<()> {
    if model.compiled().is_none() {
        model.compile(Loss::CategoricalCrossentropy, Adam::default(), &[Metric::Accuracy])?;
    }
    let c = model.compiled().expect("compiled").clone();
    if c.metrics.is_empty() {
        model.compile(c.loss, c.optimizer, &[Metric::Accuracy])?;
    }
    Ok(())
}

fn metric(logs: &Logs, key: &str) -> f64 {
    logs.get(key).copied().unwrap_or(f64::NAN)
}

/// A progress bar on stderr for `steps` steps, when stderr is a terminal.
fn progress_bar(steps: usize, what: &str) -> Option<indicatif::ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let b = indicatif::ProgressBar::new(steps as u64);
    if let Ok(style) = indicatif::ProgressStyle::with_template("{msg} {bar:30.green/white} {pos}/{len} {eta}") {
        b.set_style(style);
    }
    b.set_message(what.to_string());
    Some(b)
}

/// Checks, before any long work, that `path` can be written: creates the directory that will
/// hold it (or the directory itself, `is_dir`) and creates and removes a probe file there, so a
/// read-only or missing place fails at once, naming the flag, instead of after training.
fn prepare_output(path: &Path, is_dir: bool, flag: &str) -> CliResult {
    let dir = if is_dir { path } else { path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")) };
    let fail = |at: &Path, e: std::io::Error| -> Box<dyn std::error::Error> {
        format!(
            "{flag} {}: cannot write in {}: {e}; choose another path (nothing was done yet)",
            path.display(),
            at.display()
        )
        .into()
    };
    std::fs::create_dir_all(dir).map_err(|e| fail(dir, e))?;
    if !is_dir && path.is_dir() {
        return Err(format!("{flag} {}: is a directory; give a file name", path.display()).into());
    }
    let probe = dir.join(format!(".convnet-write-probe-{}", std::process::id()));
    std::fs::OpenOptions::new().write(true).create_new(true).open(&probe).map_err(|e| fail(dir, e))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// Everything that decides a training run, kept in its checkpoints so `--resume` repeats it.
#[derive(Clone, Serialize, Deserialize)]
struct RunSettings {
    model: String,
    dataset: String,
    /// Where the data set's files were read from (`--data-dir`, else `CONVNET_DATA_DIR`), as an
    /// absolute path so the printed resume command works from any directory.
    #[serde(default)]
    data_dir: Option<PathBuf>,
    /// `--no-download`.
    #[serde(default)]
    no_download: bool,
    epochs: usize,
    batch_size: usize,
    validation_split: Option<f32>,
    seed: u64,
    limit: Option<usize>,
    base_learning_rate: f32,
    augment: Option<ImageDataGenerator>,
    checkpoint: Option<PathBuf>,
    early_stopping: Option<usize>,
    reduce_lr_on_plateau: Option<String>,
    lr_schedule: Option<String>,
    monitor: String,
    save_best: Option<PathBuf>,
    csv_log: Option<PathBuf>,
    on_nan: String,
    save: Option<PathBuf>,
    history: Option<PathBuf>,
    plot: Option<PathBuf>,
}

/// Set by the Ctrl-C handler; training stops after the batch in progress.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Installs the Ctrl-C handler: the first press asks training to stop and checkpoint, the
/// second quits at once.
fn install_interrupt_handler() {
    let _ = ctrlc::set_handler(|| {
        if INTERRUPTED.swap(true, Ordering::SeqCst) {
            eprintln!("\nInterrupted again: quitting without a checkpoint.");
            std::process::exit(130);
        }
        eprintln!("\nInterrupt: saving a checkpoint after this batch (Ctrl-C again to quit at once)…");
    });
}

/// The callbacks the flags ask for, always in the same order (checkpoints match them by
/// position); `verbose` 1 has them print Keras' messages on stdout.
fn run_callbacks(s: &RunSettings, verbose: u8) -> Result<Vec<Box<dyn Callback>>> {
    let mut cbs: Vec<Box<dyn Callback>> = Vec::new();
    if let Some(p) = s.early_stopping {
        cbs.push(Box::new(EarlyStopping::new(&s.monitor, p).restore_best_weights(true).verbose(verbose)));
    }
    if let Some(spec) = &s.reduce_lr_on_plateau {
        let (n, f) = spec.split_once(':').unwrap_or((spec, "0.1"));
        let bad = || Error::config(format!("--reduce-lr-on-plateau {spec:?}: expected N or N:FACTOR"));
        let n: usize = n.parse().map_err(|_| bad())?;
        let f: f32 = f.parse().map_err(|_| bad())?;
        cbs.push(Box::new(ReduceLROnPlateau::new(&s.monitor, f, n)?.verbose(verbose)));
    }
    if let Some(spec) = &s.lr_schedule {
        cbs.push(Box::new(LearningRateScheduler::parse(spec, s.base_learning_rate)?));
    }
    if let Some(p) = &s.save_best {
        cbs.push(Box::new(
            ModelCheckpoint::new(&p.to_string_lossy())
                .monitor(&s.monitor, Mode::Auto)
                .save_best_only(true)
                .verbose(verbose),
        ));
    }
    if let Some(p) = &s.csv_log {
        cbs.push(Box::new(CsvLogger::new(p, false)));
    }
    Ok(cbs)
}

/// Where a Ctrl-C checkpoint goes when `--checkpoint` was not given.
fn interrupt_checkpoint_path(s: &RunSettings, resumed_from: Option<&Path>) -> PathBuf {
    if let Some(p) = s.checkpoint.as_deref().or(resumed_from) {
        return p.to_path_buf();
    }
    match &s.save {
        Some(p) => p.with_extension("ckpt"),
        None => PathBuf::from("convnet-train.ckpt"),
    }
}

/// The data directory a run reads (the flag, else `CONVNET_DATA_DIR`), made absolute.
fn run_data_dir(d: &DataArgs) -> Option<PathBuf> {
    let dir = d
        .data_dir
        .clone()
        .or_else(|| std::env::var_os("CONVNET_DATA_DIR").filter(|v| !v.is_empty()).map(PathBuf::from))?;
    Some(std::path::absolute(&dir).unwrap_or(dir))
}

/// Fresh run: opens and compiles the model, and settles every setting.
fn start_run(a: &TrainArgs) -> Result<(Sequential, RunSettings)> {
    let spec = a.model.clone().unwrap_or_default();
    let (mut model, source) = open(&spec)?;
    let kind = pick_dataset(&a.data, &source, &model)?;
    fit_preset(&mut model, &source, kind)?;
    model.set_seed(a.seed);
    check_fit(&mut model, kind)?;
    let explicit_opt = a.optimizer.as_deref().map(Optimizer::parse).transpose()?;
    // The file's own compile settings stay (its loss above all: a from_logits or sparse loss
    // trains as in Keras); --optimizer and --learning-rate replace only what they name.
    let file = model.compiled().cloned();
    let mut opt = match (explicit_opt, &file) {
        (Some(o), _) => o,
        (None, Some(c)) => c.optimizer,
        (None, None) => Adam::default().into(),
    };
    if let Some(lr) = a.learning_rate {
        opt.set_learning_rate(lr);
    }
    let (loss, metrics) = match file {
        Some(c) if !c.metrics.is_empty() => (c.loss, c.metrics),
        Some(c) => (c.loss, vec![Metric::Accuracy]),
        None => (Loss::CategoricalCrossentropy, vec![Metric::Accuracy]),
    };
    model.compile(loss, opt, &metrics)?;
    model.set_class_names(kind.class_names().iter().map(|s| s.to_string()).collect());
    let augment = match (&a.augment, &source) {
        (Some(spec), _) => Some(ImageDataGenerator::from_spec(spec)?),
        (None, ModelSource::Toml(p)) => {
            let text = std::fs::read_to_string(p).map_err(|e| Error::io(p, e))?;
            io::toml_model::augment_from_toml(&text, p)?
        }
        _ => None,
    };
    let settings = RunSettings {
        model: spec,
        dataset: kind.name().to_string(),
        data_dir: run_data_dir(&a.data),
        no_download: a.data.no_download,
        epochs: a.epochs.unwrap_or(10),
        batch_size: a.batch_size,
        validation_split: a.validation_split,
        seed: a.seed,
        limit: a.limit,
        base_learning_rate: model.optimizer().map(|o| o.learning_rate()).unwrap_or(0.001),
        augment,
        checkpoint: a.checkpoint.clone(),
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
    // Bad flag values fail now, not after loading data.
    run_callbacks(&settings, 0)?;
    Ok((model, settings))
}

/// Resumed run: the checkpoint's model, state and settings, with the flags a resume may change,
/// and whether the file is the one Ctrl-C wrote (the run had no `--checkpoint`), which the run
/// removes once it has finished.
fn resume_run(a: &TrainArgs, ckpt: &Path) -> Result<(Sequential, RunSettings, TrainState, bool)> {
    if !ckpt.exists() {
        return Err(Error::State(format!(
            "--resume {}: no such checkpoint (if Ctrl-C wrote it, the resumed run that finished removed it: \
             that run is complete)",
            ckpt.display()
        )));
    }
    let (model, state) = load_checkpoint(ckpt)?;
    let mut s: RunSettings = serde_json::from_value(state.settings.clone()).map_err(|e| {
        Error::format(
            ckpt,
            format!("this checkpoint was not written by `convnet train` ({e}); resume it from the library"),
        )
    })?;
    let interrupt_file = s.checkpoint.is_none();
    if let Some(e) = a.epochs {
        s.epochs = e;
    }
    for (slot, flag) in [(&mut s.save, &a.save), (&mut s.history, &a.history), (&mut s.plot, &a.plot)] {
        if flag.is_some() {
            slot.clone_from(flag);
        }
    }
    if a.checkpoint.is_some() {
        s.checkpoint.clone_from(&a.checkpoint);
    }
    if a.csv_log.is_some() {
        s.csv_log.clone_from(&a.csv_log);
    }
    // The data comes from where the checkpoint's run read it; a --data-dir given now wins
    // (the files may have moved) and says so when it differs.
    if let Some(flag) = &a.data.data_dir {
        let dir = std::path::absolute(flag).unwrap_or_else(|_| flag.clone());
        if !a.json && s.data_dir.as_ref().is_some_and(|old| *old != dir) {
            eprintln!(
                "note: reading the data from {} (the checkpoint's run read it from {})",
                dir.display(),
                s.data_dir.as_ref().map(|d| d.display().to_string()).unwrap_or_default()
            );
        }
        s.data_dir = Some(dir);
    }
    s.no_download |= a.data.no_download;
    if state.epoch >= s.epochs {
        return Err(Error::State(format!(
            "{}: this run is finished (it has already trained {} of {} epochs); give --epochs with a larger \
             number to train on",
            ckpt.display(),
            state.epoch,
            s.epochs
        )));
    }
    let interrupt_file = interrupt_file && s.checkpoint.as_deref() != Some(ckpt);
    Ok((model, s, state, interrupt_file))
}

/// Checks every output a run writes (`--save`, `--history`, `--csv-log`, `--checkpoint`,
/// `--save-best`, `--plot`) before anything is trained, and that `--save` names a known format.
fn check_outputs(s: &RunSettings) -> CliResult {
    let files = [
        (&s.save, "--save"),
        (&s.history, "--history"),
        (&s.csv_log, "--csv-log"),
        (&s.checkpoint, "--checkpoint"),
        (&s.save_best, "--save-best"),
    ];
    for (p, flag) in files {
        if let Some(p) = p {
            prepare_output(p, false, flag)?;
        }
    }
    if let Some(p) = &s.plot {
        prepare_output(p, convnet::viz::charts::charts_into_directory(p)?, "--plot")?;
    }
    if let Some(p) = &s.save {
        io::Format::for_path(p)?;
    }
    Ok(())
}

/// The model, settings and (when resuming) training state of this run, announced on stderr;
/// and the Ctrl-C checkpoint it resumes, to remove when the run has finished.
type OpenRun = (Sequential, RunSettings, Option<TrainState>, Option<PathBuf>);

fn open_run(a: &TrainArgs) -> Result<OpenRun> {
    let Some(ckpt) = &a.resume else {
        let (m, s) = start_run(a)?;
        return Ok((m, s, None, None));
    };
    let (m, s, st, interrupt_file) = resume_run(a, ckpt)?;
    if !a.json {
        eprintln!(
            "Resuming {} from {} at epoch {}{}",
            s.model,
            ckpt.display(),
            st.epoch + 1,
            if st.batch > 0 { format!(", batch {}", st.batch + 1) } else { String::new() }
        );
    }
    Ok((m, s, Some(st), interrupt_file.then(|| ckpt.clone())))
}

/// The progress level: the flag, else a bar when the progress stream is a terminal.
fn verbosity(a: &TrainArgs) -> u8 {
    a.verbose.unwrap_or_else(|| {
        let tty = if a.json { std::io::stderr().is_terminal() } else { std::io::stdout().is_terminal() };
        tty as u8
    })
}

/// Trains on `train_set`, plainly or through the augmentation generator; validation on the
/// held-out part when `validation_split` is set, else on the test set.
fn fit_run(
    model: &mut Sequential,
    s: &RunSettings,
    train_set: &data::ImageSet,
    test: (&Tensor, &Tensor),
    opts: FitOptions,
) -> Result<History> {
    let Some(gen) = &s.augment else {
        let validation_data = if s.validation_split.is_none() { Some(test) } else { None };
        let opts = FitOptions { validation_split: s.validation_split.unwrap_or(0.0), validation_data, ..opts };
        return model.fit(&train_set.x_scaled(model.pixel_scale()), &targets(model, train_set), opts);
    };
    // Augment the 0–255 pixels (as Keras users do), then scale to [0, 1] unless the model
    // scales them itself.
    let mut gen = gen.clone();
    gen.rescale = Some(gen.rescale.unwrap_or(1.0) * model.pixel_scale());
    let split = s.validation_split.unwrap_or(0.0);
    // The library's one validation split: the last samples held out, before any shuffling.
    let keep = convnet::data::source::validation_cut(train_set.count, split)?;
    let (fit_part, held) = (train_set.slice(0, keep), train_set.slice(keep, train_set.count));
    let (x, y) = (fit_part.x_scaled(1.0), targets(model, &fit_part));
    let (hx, hy) = (held.x_scaled(model.pixel_scale()), targets(model, &held));
    let mut flow = gen.flow(&x, &y, s.batch_size, true, s.seed)?;
    let validation = if split > 0.0 { Some((&hx, &hy)) } else { Some(test) };
    model.fit_data(&mut flow, validation, FitOptions { validation_data: None, validation_split: 0.0, ..opts })
}

/// The program as it was started (`target/release/convnet`, or `convnet` when found on the
/// PATH), so a printed command can be pasted back as is.
fn program_name() -> String {
    std::env::args().next().filter(|a| !a.is_empty()).unwrap_or_else(|| "convnet".into())
}

/// Says where the Ctrl-C checkpoint went and how to resume, then exits with 130.
fn exit_interrupted(epoch: usize, batch: usize, checkpoint: Option<PathBuf>) -> ! {
    match checkpoint {
        Some(p) => eprintln!(
            "Interrupted in epoch {epoch} after batch {batch}. Checkpoint saved to {}.\n\
             Resume with: {} train --resume {}",
            p.display(),
            program_name(),
            p.display()
        ),
        None => eprintln!(
            "Interrupted in epoch {epoch} after batch {batch}; the weights were not finite, so no checkpoint was written."
        ),
    }
    std::process::exit(130);
}

/// Where a model goes when `--save` fails after training: the same file name in the working
/// directory, else in the temporary directory.
fn save_fallback(model: &Sequential, wanted: &Path) -> Option<PathBuf> {
    let name = wanted.file_name().map_or_else(|| PathBuf::from("convnet-model.keras"), PathBuf::from);
    let stem = name.file_stem().unwrap_or_default().to_string_lossy().into_owned();
    let ext = name.extension().map_or_else(|| "keras".to_string(), |e| e.to_string_lossy().into_owned());
    let rescued = format!("{stem}-rescued-{}.{ext}", std::process::id());
    [PathBuf::from(&rescued), std::env::temp_dir().join(&rescued)]
        .into_iter()
        .find(|p| p != wanted && io::save_model(model, p).is_ok())
}

/// Writes the model, history and charts the run asked for. A failed `--save` still keeps the
/// trained model (at a fallback path, said on stderr) and is returned as the run's error.
fn write_outputs(model: &Sequential, s: &RunSettings, hist: &History, quiet: bool) -> CliResult {
    let mut save_error = None;
    if let Some(p) = &s.save {
        match io::save_model(model, p) {
            Ok(()) if !quiet => eprintln!("Saved the model to {}", p.display()),
            Ok(()) => {}
            Err(e) => {
                let kept = match save_fallback(model, p) {
                    Some(f) => format!("the trained model was saved to {} instead", f.display()),
                    None => "no fallback place could be written either".to_string(),
                };
                save_error = Some(format!("--save {}: {e}; {kept}", p.display()));
            }
        }
    } else if !quiet && s.save_best.is_none() {
        eprintln!("note: the trained model was not saved; add --save model.keras to keep it");
    }
    if let Some(p) = &s.history {
        let text =
            if p.extension().is_some_and(|e| e.eq_ignore_ascii_case("json")) { hist.to_json() } else { hist.to_csv() };
        io::atomic_write(p, text.as_bytes())?;
    }
    if let Some(dir) = &s.plot {
        let files = convnet::viz::charts::write_history_charts(hist, dir)?;
        if !quiet {
            eprintln!("Charts: {}", files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().join(", "));
        }
    }
    match save_error {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}

/// The results on stdout: one JSON object, or the test accuracy line.
#[allow(clippy::too_many_arguments)]
fn report_run(
    model: &Sequential,
    s: &RunSettings,
    kind: DatasetKind,
    ds: &Dataset,
    train_samples: usize,
    hist: &History,
    test: &Logs,
    as_json: bool,
) -> CliResult {
    if !as_json {
        println!(
            "Test accuracy: {:.2}% (loss {:.4}) on {} {} test images",
            metric(test, "accuracy") * 100.0,
            metric(test, "loss"),
            ds.test.count,
            kind.name()
        );
        return Ok(());
    }
    let mut out = json!({
        "model": s.model,
        "dataset": kind.name(),
        "data_source": ds.source,
        "train_samples": train_samples,
        "test_samples": ds.test.count,
        "epochs": hist.epoch.len(),
        "batch_size": s.batch_size,
        "seed": s.seed,
        "params": {"total": model.count_params(), "trainable": model.count_params()},
        "history": hist.history,
        "seconds_per_epoch": hist.seconds,
        "test_loss": metric(test, "loss"),
        "test_accuracy": metric(test, "accuracy"),
    });
    for (k, v) in &hist.history {
        if let Some(last) = v.last() {
            out[k] = json!(last);
        }
    }
    if let Some(p) = &s.save {
        out["saved"] = json!(p.display().to_string());
    }
    if let Some(p) = &s.checkpoint {
        out["checkpoint"] = json!(p.display().to_string());
    }
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

/// `convnet train`: settle the run, check its outputs, load the data, fit, evaluate on the test
/// set, write what was asked for and report.
pub fn train(a: TrainArgs) -> CliResult {
    if let Some(dir) = folders::folder_of(&a.data) {
        return folders::train(&a, &dir);
    }
    let (mut model, s, state, finished_checkpoint) = open_run(&a)?;
    check_outputs(&s)?;
    let kind = DatasetKind::parse(&s.dataset)?;
    check_fit(&mut model, kind)?;
    let data_args =
        DataArgs { dataset: Some(s.dataset.clone()), data_dir: s.data_dir.clone(), no_download: s.no_download };
    let ds = load_dataset(&data_args, kind, a.json)?;
    let train_set = match s.limit {
        Some(n) => ds.train.take(n),
        None => ds.train.clone(),
    };
    let x_test = ds.test.x_scaled(model.pixel_scale());
    let y_test = targets(&model, &ds.test);
    let checkpoint_path = interrupt_checkpoint_path(&s, a.resume.as_deref());
    install_interrupt_handler();
    let opts = FitOptions {
        batch_size: s.batch_size,
        epochs: s.epochs,
        verbose: verbosity(&a),
        progress_to_stderr: a.json,
        // Keras' callback messages go to stdout, so not beside a JSON result.
        callbacks: run_callbacks(&s, u8::from(verbosity(&a) > 0 && !a.json))?,
        stop_on_non_finite: s.on_nan == "stop",
        interrupt: Some(&INTERRUPTED),
        checkpoint: Some(checkpoint_path),
        checkpoint_each_epoch: s.checkpoint.is_some(),
        resume: state,
        settings: serde_json::to_value(&s)?,
        ..Default::default()
    };
    let hist = match fit_run(&mut model, &s, &train_set, (&x_test, &y_test), opts) {
        Ok(h) => h,
        Err(Error::Interrupted { epoch, batch, checkpoint }) => exit_interrupted(epoch, batch, checkpoint),
        Err(e) => return Err(e.into()),
    };
    let test = model.evaluate(&x_test, &y_test, s.batch_size.max(256))?;
    let written = write_outputs(&model, &s, &hist, a.json);
    report_run(&model, &s, kind, &ds, train_set.count, &hist, &test, a.json)?;
    // The run that Ctrl-C stopped is complete: its checkpoint would only train the same epochs
    // again. It stays when the model could not be written.
    if let (Ok(()), Some(p)) = (&written, finished_checkpoint) {
        if std::fs::remove_file(&p).is_ok() && !a.json {
            eprintln!("Removed the checkpoint {} (its run is finished)", p.display());
        }
    }
    written
}

/// Draws the confusion matrix of `predicted` against `truth` to `path` and, unless `json`,
/// prints per-class precision and recall; returns them.
fn write_confusion(
    path: &Path,
    predicted: &[usize],
    truth: &[usize],
    names: &[String],
    json: bool,
) -> Result<Vec<(f64, f64, usize)>> {
    let m = convnet::viz::pictures::confusion_matrix(predicted, truth, names.len());
    io::atomic_write(path, &convnet::viz::charts::confusion_png(&m, names)?)?;
    let per_class = convnet::viz::pictures::precision_recall(&m);
    if !json {
        println!("{:<14} {:>9} {:>9} {:>9}", "class", "precision", "recall", "support");
        for (name, (pr, rc, n)) in names.iter().zip(&per_class) {
            println!("{name:<14} {pr:>9.4} {rc:>9.4} {n:>9}");
        }
        eprintln!("Confusion matrix: {}", path.display());
    }
    Ok(per_class)
}

pub fn evaluate(a: EvaluateArgs) -> CliResult {
    if let Some(dir) = folders::folder_of(&a.data) {
        return folders::evaluate(&a, &dir);
    }
    let (mut model, source) = open(&a.model)?;
    if !matches!(source, ModelSource::File(_)) {
        eprintln!("note: {} is untrained; its accuracy will be near chance", a.model);
    }
    let kind = pick_dataset(&a.data, &source, &model)?;
    fit_preset(&mut model, &source, kind)?;
    check_fit(&mut model, kind)?;
    compile_for_evaluation(&mut model)?;
    if let Some(p) = &a.confusion {
        prepare_output(p, false, "--confusion")?;
    }
    let ds = load_dataset(&a.data, kind, a.json)?;
    let test = match a.limit {
        Some(n) => ds.test.take(n),
        None => ds.test.clone(),
    };
    let x = test.x_scaled(model.pixel_scale());
    let bar =
        progress_bar(test.count.div_ceil(a.batch_size.clamp(1, convnet::nn::model::MAX_INFERENCE_BATCH)), "Evaluating");
    let logs = model.evaluate_with(&x, &targets(&model, &test), a.batch_size, &mut |done, _| {
        if let Some(b) = &bar {
            b.set_position(done as u64);
        }
    })?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let mut per_class = Vec::new();
    if let Some(p) = &a.confusion {
        let predicted = model.predict(&x, a.batch_size)?.argmax_rows();
        let truth: Vec<usize> = test.labels.iter().map(|&l| l as usize).collect();
        let names: Vec<String> = kind.class_names().iter().map(|s| s.to_string()).collect();
        per_class = write_confusion(p, &predicted, &truth, &names, a.json)?;
    }
    if a.json {
        let mut out = json!({"model": a.model, "dataset": kind.name(), "samples": test.count});
        if !per_class.is_empty() {
            out["per_class"] = json!(per_class
                .iter()
                .zip(kind.class_names())
                .map(|((p, r, n), c)| json!({"class": c, "precision": p, "recall": r, "support": n}))
                .collect::<Vec<_>>());
        }
        for (k, v) in &logs {
            out[k] = json!(v);
        }
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!(
            "{} test images of {}: accuracy {:.2}%, loss {:.4}",
            test.count,
            kind.name(),
            metric(&logs, "accuracy") * 100.0,
            metric(&logs, "loss")
        );
    }
    Ok(())
}

/// The `k` most probable classes of one output row: (index, probability).
fn top_k(row: &[f32], k: usize) -> Vec<(usize, f32)> {
    let mut idx: Vec<usize> = (0..row.len()).collect();
    idx.sort_by(|&a, &b| row[b].total_cmp(&row[a]).then(a.cmp(&b)));
    idx.into_iter().take(k).map(|i| (i, row[i])).collect()
}

pub fn predict(a: PredictArgs) -> CliResult {
    if folders::any_folder(&a) {
        return folders::predict(&a);
    }
    let (mut model, source) = open(&a.model)?;
    model.build()?;
    let input = model.input_shape().map(<[usize]>::to_vec).unwrap_or_default();
    let invert = parse_invert(&a.invert)?;
    // Per picture, whether `--invert` turned it light-on-dark (none for test images).
    let mut inverted: Vec<bool> = Vec::new();
    let (x, names, labels): (Tensor, Vec<String>, Option<Vec<u8>>) = if a.images.is_empty() {
        let kind = pick_dataset(&a.data, &source, &model)?;
        check_fit(&mut model, kind)?;
        let ds = load_dataset(&a.data, kind, a.json)?;
        let set = ds.test.take(a.limit);
        let names = (0..set.count).map(|i| format!("test image {i}")).collect();
        if model.class_names().is_none() {
            model.set_class_names(kind.class_names().iter().map(|s| s.to_string()).collect());
        }
        (set.x_scaled(model.pixel_scale()), names, Some(set.labels))
    } else {
        let mut prepared = Vec::new();
        for p in &a.images {
            let img = images::load_image(p, &input, invert)?;
            if img.inverted && !a.json {
                eprintln!("note: {} has a light background; inverted it (--invert no to keep it)", p.display());
            }
            inverted.push(img.inverted);
            prepared.push(img);
        }
        let names = a.images.iter().map(|p| p.display().to_string()).collect();
        (in_model_scale(&model, images::batch(&prepared, &input)?), names, None)
    };
    let probs = model.predict(&x, 256)?;
    let width = probs.sample_len();
    let class_name =
        |i: usize| -> String { model.class_names().and_then(|c| c.get(i).cloned()).unwrap_or_else(|| i.to_string()) };
    let mut rows = Vec::new();
    for (r, name) in names.iter().enumerate() {
        let row = &probs.data()[r * width..(r + 1) * width];
        let top = top_k(row, a.top.max(1));
        if a.json {
            let mut entry = json!({
                "input": name,
                "top": top.iter().map(|(i, p)| json!({"class": class_name(*i), "index": i, "probability": p})).collect::<Vec<Value>>(),
            });
            if let Some(l) = &labels {
                entry["label"] = json!(l[r]);
            }
            if let Some(inv) = inverted.get(r) {
                entry["inverted"] = json!(inv);
            }
            rows.push(entry);
        } else {
            let shown: Vec<String> = top.iter().map(|(i, p)| format!("{} {:.1}%", class_name(*i), p * 100.0)).collect();
            let truth = labels.as_ref().map(|l| format!(" (label: {})", class_name(l[r] as usize))).unwrap_or_default();
            println!("{name}{truth}: {}", shown.join(", "));
        }
    }
    if a.json {
        let predictions: Vec<&[f32]> = probs.data().chunks(width.max(1)).collect();
        let out = json!({"model": a.model, "results": rows, "predictions": predictions});
        println!("{}", serde_json::to_string_pretty(&out)?);
    }
    Ok(())
}

/// Writes a model as an ONNX file; nothing is written when it fails.
pub fn export(a: ExportArgs) -> CliResult {
    let (mut model, _) = open(&a.model)?;
    model.build()?;
    io::onnx::export(&model, &a.output)?;
    // A graph's inputs keep their layer names; a stack's single input has the fixed name.
    let inputs: Vec<String> = match model.graph() {
        Some(g) => g
            .input_names
            .iter()
            .zip(&g.input_shapes)
            .map(|(n, s)| format!("{n} float32 [N, {}]", s.iter().map(usize::to_string).collect::<Vec<_>>().join(", ")))
            .collect(),
        None => {
            let shape: Vec<String> = model.input_shape().unwrap_or(&[]).iter().map(usize::to_string).collect();
            vec![format!("{} float32 [N, {}]", io::onnx::INPUT_NAME, shape.join(", "))]
        }
    };
    let noun = if inputs.len() == 1 { "input" } else { "inputs" };
    println!("wrote {} (ONNX opset {}; {noun} {})", a.output.display(), io::onnx::OPSET, inputs.join(", "));
    Ok(())
}

pub fn summary(a: SummaryArgs) -> CliResult {
    let (mut model, _) = open(&a.model)?;
    model.build()?;
    let table = model.summary()?;
    if a.json {
        let layers: Vec<Value> = model
            .layers()
            .iter()
            .map(|l| {
                json!({
                    "name": l.name(),
                    "class_name": l.class_name(),
                    "output_shape": l.output_shape(),
                    "params": l.count_params(),
                })
            })
            .collect();
        let out = json!({
            "name": model.name(),
            "input_shape": model.input_shape(),
            "layers": layers,
            "total_params": model.count_params(),
            "trainable_params": model.count_params(),
            "non_trainable_params": 0,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print!("{table}");
    }
    Ok(())
}

pub fn bench(a: BenchArgs) -> CliResult {
    let models: Vec<String> = if a.models.is_empty() {
        convnet::presets::NAMES.iter().map(|s| s.to_string()).collect()
    } else {
        a.models.clone()
    };
    let opts = convnet::bench::BenchOptions {
        batch_size: a.batch_size,
        infer_batch: a.infer_batch,
        seconds: a.seconds,
        ..Default::default()
    };
    let mut results = Vec::new();
    for name in &models {
        let (model, _) = open(name)?;
        if !a.json {
            eprintln!("measuring {name} ...");
        }
        results.push(convnet::bench::run(name, model, &opts)?);
    }
    if a.json {
        let out = json!({
            "framework": "convnet",
            "threads": convnet::parallel::workers(),
            "batch_size": a.batch_size,
            "infer_batch": a.infer_batch,
            "results": results,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!(
        "convnet, {} threads, training batch {}, inference batch {}",
        convnet::parallel::workers(),
        a.batch_size,
        a.infer_batch
    );
    println!(
        "{:<14} {:>16} {:>16} {:>16} {:>16}",
        "model", "train samples/s", "infer samples/s", "train peak MiB", "infer peak MiB"
    );
    for r in &results {
        println!(
            "{:<14} {:>16.0} {:>16.0} {:>16.1} {:>16.1}",
            r.model, r.train_samples_per_s, r.infer_samples_per_s, r.peak_rss_mib, r.infer_peak_rss_mib
        );
    }
    println!();
    println!("{:<14} {:<10} {:>9} {:>9} {:>9} {:>9}", "model", "layer", "fwd ms", "GFLOP/s", "bwd ms", "GFLOP/s");
    println!("(GFLOP/s of the direct convolution's operation count: effective rates for Winograd layers)");
    for r in &results {
        for c in &r.convs {
            println!(
                "{:<14} {:<10} {:>9.2} {:>9.1} {:>9.2} {:>9.1}",
                r.model, c.layer, c.forward_ms, c.forward_gflops, c.backward_ms, c.backward_gflops
            );
        }
    }
    Ok(())
}

pub fn plot(a: PlotArgs) -> CliResult {
    let bytes = std::fs::read(&a.history).map_err(|e| Error::io(&a.history, e))?;
    let expected = "plot reads the CSV or JSON history that `train --history` or Keras' CSVLogger writes";
    if io::Format::sniff(&bytes).is_some() {
        return Err(format!("{}: a model file, not a training history; {expected}", a.history.display()).into());
    }
    let text = String::from_utf8(bytes)
        .map_err(|_| format!("{}: not a text file, so not a training history; {expected}", a.history.display()))?;
    let hist = if a.history.extension().is_some_and(|e| e.eq_ignore_ascii_case("json")) {
        convnet::History::from_json(&text, &a.history)?
    } else {
        convnet::History::from_csv(&text, &a.history)?
    };
    prepare_output(&a.out, convnet::viz::charts::charts_into_directory(&a.out)?, "--out")?;
    for f in convnet::viz::charts::write_history_charts(&hist, &a.out)? {
        println!("{}", f.display());
    }
    Ok(())
}

pub fn augment(a: AugmentArgs) -> CliResult {
    let gen = ImageDataGenerator::from_spec(&a.augment)?;
    let kind = match &a.data.dataset {
        Some(d) => DatasetKind::parse(d)?,
        // MNIST by default: its shipped sample works offline.
        None => DatasetKind::Mnist,
    };
    prepare_output(&a.preview, false, "--preview")?;
    let ds = load_dataset(&a.data, kind, false)?;
    let first = ds.train.take(a.first.max(1));
    let names = kind.class_names();
    let png = convnet::viz::pictures::preview_png(&gen, &first, names, a.trial_size, a.trials, a.seed)?;
    io::atomic_write(&a.preview, &png)?;
    println!("{}", a.preview.display());
    Ok(())
}

fn parse_invert(s: &str) -> std::result::Result<Invert, Box<dyn std::error::Error>> {
    match s {
        "auto" => Ok(Invert::Auto),
        "yes" | "true" => Ok(Invert::Yes),
        "no" | "false" => Ok(Invert::No),
        other => Err(format!("--invert must be auto, yes or no, not {other:?}").into()),
    }
}

pub fn filter(a: FilterArgs) -> CliResult {
    let kernel = convnet::viz::pictures::Kernel2d::parse(&a.kernel)?;
    let padding = Padding::parse(&a.padding)?;
    prepare_output(&a.out, false, "--out")?;
    let (img, h, w) = images::load_grey(&a.image, 512)?;
    let (map, oh, ow) = kernel.apply(&img, h, w, a.stride, padding)?;
    let abs: Vec<f32> = map.iter().map(|v| v.abs()).collect();
    let cell = 256;
    let sections = [GridSection {
        title: Some(format!("{} kernel, stride {}, padding {}", a.kernel, a.stride, padding.name())),
        cells: vec![
            (GridImage::new(&img, h, w, 1), Some(format!("input {w}×{h}"))),
            (GridImage::normalized(&abs, oh, ow, 1), Some(format!("feature map {ow}×{oh} (|response|)"))),
        ],
    }];
    io::atomic_write(&a.out, &grid_png(&sections, cell, 2)?)?;
    let (lo, hi) = map.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), &v| (l.min(v), h.max(v)));
    println!("{}: feature map {ow}×{oh}, responses from {lo:.3} to {hi:.3}", a.out.display());
    Ok(())
}

/// Pictures prepared in [0, 1], in the scale `model` takes: back to 0–255 for a model that
/// scales its own input (`Rescaling` or `Normalization` first).
fn in_model_scale(model: &Sequential, mut x: Tensor) -> Tensor {
    if model.takes_raw_pixels() {
        x.data_mut().iter_mut().for_each(|v| *v *= 255.0);
    }
    x
}

pub fn features(a: FeaturesArgs) -> CliResult {
    let (mut model, _) = open(&a.model)?;
    model.build()?;
    prepare_output(&a.out, false, "--out")?;
    let input = model.input_shape().map(<[usize]>::to_vec).unwrap_or_default();
    let img = images::load_image(&a.image, &input, parse_invert(&a.invert)?)?;
    let x = in_model_scale(&model, images::batch(std::slice::from_ref(&img), &input)?);
    let mut sections = vec![GridSection {
        title: Some(format!("Input ({})", a.image.display())),
        cells: vec![(GridImage::new(&img.values, input[0], input[1], input[2]), None)],
    }];
    sections.extend(convnet::viz::pictures::feature_map_sections(&mut model, &x, a.max_maps)?);
    io::atomic_write(&a.out, &grid_png(&sections, 72, 16)?)?;
    println!("{}", a.out.display());
    Ok(())
}

pub fn filters(a: FiltersArgs) -> CliResult {
    let (mut model, _) = open(&a.model)?;
    model.build()?;
    prepare_output(&a.out, false, "--out")?;
    let section = convnet::viz::pictures::filter_section(&model)?;
    io::atomic_write(&a.out, &grid_png(&[section], 64, 16)?)?;
    println!("{}", a.out.display());
    Ok(())
}
