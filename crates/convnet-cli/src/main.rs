//! The `convnet` command: argument parsing and printing over the convnet library.

mod commands;
mod flags;

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Convolutional networks on the CPU, the Keras way: train, evaluate, predict, inspect.
#[derive(Parser)]
#[command(name = "convnet", version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a model on a dataset, then report its test accuracy
    Train(Box<TrainArgs>),
    /// Evaluate a saved model on a dataset's test set
    Evaluate(EvaluateArgs),
    /// Predict the classes of pictures or of a dataset's test images
    Predict(PredictArgs),
    /// Show a model's layers, output shapes and parameter counts
    Summary(SummaryArgs),
    /// Measure training and inference speed and memory of the presets (or given models)
    Bench(BenchArgs),
    /// Draw the accuracy and loss charts of a training history (CSV or JSON)
    Plot(PlotArgs),
    /// Show what augmentation does: the first training images, then generator trials (PNG)
    Augment(AugmentArgs),
    /// Apply a convolution kernel (the lecture's edge kernels, or your own) to a picture
    Filter(FilterArgs),
    /// Draw the feature maps of every convolution layer of a model for one picture
    Features(FeaturesArgs),
    /// Draw the learned kernels of a model's first convolution layer
    Filters(FiltersArgs),
    /// Export a model to ONNX (for ONNX Runtime, TensorRT, Triton, the browser)
    Export(ExportArgs),
}

/// Where the data comes from.
#[derive(Args, Clone)]
pub struct DataArgs {
    /// Dataset: mnist, fashion-mnist or cifar10 (default: the one the model was made for)
    #[arg(long)]
    dataset: Option<String>,
    /// Read the dataset from this directory (files under their published names)
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Never download; use local copies only
    #[arg(long)]
    no_download: bool,
}

/// How pictures in a folder given to --data-dir (or to predict) become model inputs.
#[derive(Args, Clone, Default)]
pub struct FolderArgs {
    /// Resize pictures to HxW, e.g. 64x64 (default: the model's input size)
    #[arg(long, value_name = "HxW")]
    image_size: Option<String>,
    /// grayscale, rgb or rgba (default: from the model's input channels)
    #[arg(long, value_name = "MODE")]
    color_mode: Option<String>,
    /// Crop pictures to the target's aspect ratio (centre) before resizing, instead of stretching
    #[arg(long, conflicts_with = "pad_to_aspect_ratio")]
    crop_to_aspect_ratio: bool,
    /// Resize pictures to fit and pad them with black to the target's aspect ratio
    #[arg(long)]
    pad_to_aspect_ratio: bool,
    /// Leave out pictures that cannot be decoded (and say how many) instead of stopping
    #[arg(long)]
    skip_bad_images: bool,
    /// Memory for decoded pictures, in MiB; beyond it pictures are decoded from the files every epoch
    #[arg(long, value_name = "MIB", default_value_t = 1024)]
    image_cache: usize,
    /// Batches of pictures beyond the cache decoded ahead of the training step, on a background
    /// thread (0: each batch decoded when it is needed)
    #[arg(long, value_name = "N", default_value_t = convnet::data::folder::DEFAULT_PREFETCH)]
    prefetch: usize,
}

#[derive(Args)]
pub struct TrainArgs {
    /// A preset (lenet5, mnist-cnn, cifar10-cnn), a TOML model file, or a saved model
    #[arg(required_unless_present = "resume")]
    model: Option<String>,
    #[command(flatten)]
    data: DataArgs,
    /// Passes over the training set [default: 10; with --resume, the checkpoint's]
    #[arg(long, value_parser = flags::positive_count, allow_hyphen_values = true)]
    epochs: Option<usize>,
    /// Samples per gradient step
    #[arg(long, default_value_t = 128, value_parser = flags::positive_count, allow_hyphen_values = true)]
    batch_size: usize,
    /// Optimizer: adam, adamw, nadam, adamax, adagrad, adadelta, sgd or rmsprop (default: the
    /// model file's, else adam)
    #[arg(long)]
    optimizer: Option<String>,
    /// Learning rate (default: the optimizer's Keras default)
    #[arg(long, value_name = "LR", value_parser = flags::positive_number, allow_hyphen_values = true)]
    learning_rate: Option<f32>,
    /// Hold out this fraction of the training set for validation (default: validate on the test set)
    #[arg(long, value_name = "FRACTION", value_parser = flags::fraction, allow_hyphen_values = true)]
    validation_split: Option<f32>,
    /// Seed for weights, shuffling and dropout
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Train on the first N training images only
    #[arg(long, value_name = "N", value_parser = flags::positive_count, allow_hyphen_values = true)]
    limit: Option<usize>,
    /// Save the trained model here
    #[arg(long, value_name = "PATH")]
    save: Option<PathBuf>,
    /// Write the per-epoch history here (.csv or .json)
    #[arg(long, value_name = "PATH")]
    history: Option<PathBuf>,
    /// Draw the accuracy and loss charts after training: into this directory (PNG and SVG), or as
    /// one figure when it ends in .png or .svg
    #[arg(long, value_name = "FILE|DIR")]
    plot: Option<PathBuf>,
    /// Augment training images on the fly, e.g. rotation=30,width_shift=0.2,height_shift=0.2,horizontal_flip
    #[arg(long, value_name = "SPEC")]
    augment: Option<String>,
    /// Write a checkpoint here after every epoch (and on Ctrl-C), to continue with --resume
    #[arg(long, value_name = "PATH")]
    checkpoint: Option<PathBuf>,
    /// Continue the run saved in this checkpoint (its model, data and settings); --epochs may raise the
    /// goal, and --data-dir says where the data is now if it moved. Once the resumed run finishes,
    /// the checkpoint that Ctrl-C wrote is removed (a --checkpoint file stays)
    #[arg(long, value_name = "CKPT", conflicts_with_all = ["model", "dataset", "batch_size", "optimizer",
        "learning_rate", "validation_split", "seed", "limit", "augment", "early_stopping",
        "reduce_lr_on_plateau", "lr_schedule", "monitor", "save_best", "on_nan"])]
    resume: Option<PathBuf>,
    /// Stop when the monitored metric has not improved for N epochs, keeping the best weights
    #[arg(long, value_name = "N")]
    early_stopping: Option<usize>,
    /// Multiply the learning rate by FACTOR (default 0.1) after N epochs without improvement
    #[arg(long, value_name = "N[:FACTOR]")]
    reduce_lr_on_plateau: Option<String>,
    /// Learning-rate schedule: step:EVERY:FACTOR or exp:FACTOR
    #[arg(long, value_name = "SPEC")]
    lr_schedule: Option<String>,
    /// The metric that early stopping, plateau reduction and --save-best watch
    #[arg(long, default_value = "val_loss", value_name = "METRIC")]
    monitor: String,
    /// Save the model here whenever the monitored metric improves
    #[arg(long, value_name = "PATH")]
    save_best: Option<PathBuf>,
    /// Append each epoch's metrics to this CSV file as training goes
    #[arg(long, value_name = "PATH")]
    csv_log: Option<PathBuf>,
    /// What to do when the loss becomes NaN or infinite: stop (naming the epoch and batch) or continue
    #[arg(long, default_value = "stop", value_parser = ["stop", "continue"])]
    on_nan: String,
    /// 0 = silent, 1 = progress bar, 2 = one line per epoch (default: 1 on a terminal, else 0)
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=2))]
    verbose: Option<u8>,
    /// Print one JSON object with the results on stdout (progress goes to stderr)
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    folder: FolderArgs,
}

#[derive(Args)]
pub struct EvaluateArgs {
    /// A saved model file
    model: String,
    #[command(flatten)]
    data: DataArgs,
    /// Samples per batch
    #[arg(long, default_value_t = 256, value_parser = flags::positive_count, allow_hyphen_values = true)]
    batch_size: usize,
    /// Evaluate on the first N test images only
    #[arg(long, value_name = "N", value_parser = flags::positive_count, allow_hyphen_values = true)]
    limit: Option<usize>,
    /// Also draw the confusion matrix here (PNG) and print per-class precision and recall
    #[arg(long, value_name = "PNG")]
    confusion: Option<PathBuf>,
    /// Print one JSON object with the results
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    folder: FolderArgs,
}

#[derive(Args)]
pub struct PredictArgs {
    /// A saved model file
    model: String,
    /// Pictures (PNG, JPEG, BMP, GIF, WebP) or folders of them to classify; without them, the
    /// dataset's test images are used
    images: Vec<PathBuf>,
    #[command(flatten)]
    data: DataArgs,
    /// Number of test images to predict when no pictures are given
    #[arg(long, value_name = "N", default_value_t = 10, value_parser = flags::positive_count, allow_hyphen_values = true)]
    limit: usize,
    /// Classes to show per input
    #[arg(long, default_value_t = 3, value_parser = flags::positive_count, allow_hyphen_values = true)]
    top: usize,
    /// Invert grey pictures: auto (when the background is light), yes, no
    #[arg(long, default_value = "auto")]
    invert: String,
    /// Print one JSON object with the predictions (for each picture, "inverted" says whether
    /// --invert turned it light-on-dark)
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    folder: FolderArgs,
}

#[derive(Args)]
pub struct SummaryArgs {
    /// A preset, a TOML model file, or a saved model
    model: String,
    /// Print one JSON object instead of the table
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct ExportArgs {
    /// A preset, a TOML model file, or a saved model (.keras, .h5, .safetensors)
    model: String,
    /// The ONNX file to write (NHWC float32 input named input_layer, or a graph's input layers' names; batch dimension N)
    output: PathBuf,
}

#[derive(Args)]
pub struct FilterArgs {
    /// A picture (PNG or JPEG)
    image: PathBuf,
    /// vertical-edge, horizontal-edge, or a text file of kernel rows
    #[arg(long, default_value = "vertical-edge")]
    kernel: String,
    /// Step of the kernel
    #[arg(long, default_value_t = 1, value_parser = flags::positive_count, allow_hyphen_values = true)]
    stride: usize,
    /// valid or same
    #[arg(long, default_value = "valid")]
    padding: String,
    /// Write the figure (picture and feature map) here
    #[arg(long, value_name = "PNG", default_value = "feature_map.png")]
    out: PathBuf,
}

#[derive(Args)]
pub struct FeaturesArgs {
    /// A saved model (or a preset, to see untrained maps)
    model: String,
    /// A picture (PNG or JPEG), converted to the model's input
    image: PathBuf,
    /// Maps shown per layer
    #[arg(long, default_value_t = 32)]
    max_maps: usize,
    /// Invert grey pictures: auto, yes, no
    #[arg(long, default_value = "auto")]
    invert: String,
    /// Write the figure here
    #[arg(long, value_name = "PNG", default_value = "features.png")]
    out: PathBuf,
}

#[derive(Args)]
pub struct FiltersArgs {
    /// A saved model (or a preset)
    model: String,
    /// Write the figure here
    #[arg(long, value_name = "PNG", default_value = "filters.png")]
    out: PathBuf,
}

#[derive(Args)]
pub struct AugmentArgs {
    // Without --dataset, MNIST (whose shipped sample works offline).
    /// Write the figure here (PNG)
    #[arg(long, value_name = "PNG", default_value = "augmentation.png")]
    preview: PathBuf,
    /// Augmentation options (default: the lecture's rotation=30,width_shift=0.2,height_shift=0.2,horizontal_flip)
    #[arg(long, value_name = "SPEC", default_value = "rotation=30,width_shift=0.2,height_shift=0.2,horizontal_flip")]
    augment: String,
    #[command(flatten)]
    data: DataArgs,
    /// Images shown before augmentation
    #[arg(long, default_value_t = 12)]
    first: usize,
    /// Images per generator trial
    #[arg(long, default_value_t = 6)]
    trial_size: usize,
    /// Generator trials
    #[arg(long, default_value_t = 2)]
    trials: usize,
    /// Seed of the generator
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

#[derive(Args)]
pub struct PlotArgs {
    /// A history written by `train --history` (CSV or JSON) or Keras' CSVLogger
    history: PathBuf,
    /// Where the charts go: a file ending in .png or .svg gets one figure in that format with both
    /// charts side by side (accuracy, loss); anything else is a directory that gets
    /// accuracy.png/.svg and loss.png/.svg
    #[arg(long, value_name = "FILE|DIR", default_value = ".")]
    out: PathBuf,
}

#[derive(Args)]
pub struct BenchArgs {
    /// Models to measure: presets, TOML files or saved models (default: the three presets)
    models: Vec<String>,
    /// Training batch size
    #[arg(long, default_value_t = 128, value_parser = flags::positive_count, allow_hyphen_values = true)]
    batch_size: usize,
    /// Inference batch size
    #[arg(long, default_value_t = 1000, value_parser = flags::positive_count, allow_hyphen_values = true)]
    infer_batch: usize,
    /// Seconds of timed training per model
    #[arg(long, default_value_t = 3.0, value_parser = flags::positive_seconds, allow_hyphen_values = true)]
    seconds: f64,
    /// Print one JSON object with every number
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Train(a) => commands::train(*a),
        Command::Evaluate(a) => commands::evaluate(a),
        Command::Predict(a) => commands::predict(a),
        Command::Summary(a) => commands::summary(a),
        Command::Bench(a) => commands::bench(a),
        Command::Plot(a) => commands::plot(a),
        Command::Augment(a) => commands::augment(a),
        Command::Filter(a) => commands::filter(a),
        Command::Features(a) => commands::features(a),
        Command::Filters(a) => commands::filters(a),
        Command::Export(a) => commands::export(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
