//! Once the first steps have run, a training step allocates nothing: every buffer is kept and
//! reused, the engine's rule. A counting allocator watches the steady state of `fit`.

use convnet::prelude::*;
use convnet::train::callbacks::{Callback, Control};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator, only counting calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The count is global: tests that read it run one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Records the allocation count after chosen batches (without allocating itself).
struct Probe<'a> {
    counts: &'a mut [usize; 2],
    at: [usize; 2],
}

impl Callback for Probe<'_> {
    fn on_train_batch_end(&mut self, batch: usize, _logs: &Logs, _m: &mut Sequential) -> Result<Control> {
        for k in 0..2 {
            if batch == self.at[k] {
                self.counts[k] = ALLOCATIONS.load(Ordering::Relaxed);
            }
        }
        Ok(Control::Continue)
    }
}

#[test]
fn steady_state_training_steps_do_not_allocate() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (train, _) = convnet::data::mnist_sample().unwrap();
    let (x, y) = (train.x(), train.y_one_hot(10));
    for name in ["lenet5", "mnist-cnn", "activations", "conv-variants", "modern", "residual"] {
        let mut m = match name {
            "activations" => activations(),
            "conv-variants" => conv_variants(),
            "modern" => modern(),
            "residual" => residual(),
            _ => convnet::presets::preset(name).unwrap(),
        };
        m.compile(Loss::CategoricalCrossentropy, Adam::default(), &[Metric::Accuracy]).unwrap();
        let mut counts = [0usize; 2];
        let probe = Probe { counts: &mut counts, at: [3, 9] };
        let opts = FitOptions {
            batch_size: 64,
            epochs: 1,
            verbose: 0,
            callbacks: vec![Box::new(probe)],
            ..Default::default()
        };
        m.fit(&x, &y, opts).unwrap();
        assert!(counts[1] > 0, "{name}: the probe ran");
        assert_eq!(counts[1] - counts[0], 0, "{name}: allocations during training steps 5 to 10");
    }
}

#[test]
fn every_optimizer_schedule_and_clipping_trains_without_allocating() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (train, _) = convnet::data::mnist_sample().unwrap();
    let (x, y) = (train.x(), train.y_one_hot(10));
    let schedule = serde_json::json!({"class_name": "CosineDecay",
        "config": {"initial_learning_rate": 0.001, "decay_steps": 20, "warmup_target": 0.002, "warmup_steps": 3}});
    let configs = [
        serde_json::json!({"class_name": "Nadam", "config": {"learning_rate": schedule, "clipnorm": 1.0}}),
        serde_json::json!({"class_name": "AdamW", "config": {"amsgrad": true, "global_clipnorm": 1.0}}),
        serde_json::json!({"class_name": "SGD", "config": {"momentum": 0.9, "nesterov": true, "weight_decay": 0.01, "clipvalue": 0.5}}),
        serde_json::json!({"class_name": "Adagrad", "config": {}}),
        serde_json::json!({"class_name": "Adadelta", "config": {}}),
        serde_json::json!({"class_name": "Adamax", "config": {}}),
        serde_json::json!({"class_name": "RMSprop", "config": {"momentum": 0.5, "centered": true}}),
    ];
    for config in configs {
        let mut m = convnet::presets::preset("lenet5").unwrap();
        let opt = Optimizer::from_config(&config).unwrap();
        m.compile(Loss::CategoricalCrossentropy.with_label_smoothing(0.1), opt, &[Metric::Accuracy]).unwrap();
        let mut counts = [0usize; 2];
        let probe = Probe { counts: &mut counts, at: [3, 9] };
        let opts = FitOptions {
            batch_size: 64,
            epochs: 1,
            verbose: 0,
            callbacks: vec![Box::new(probe)],
            ..Default::default()
        };
        m.fit(&x, &y, opts).unwrap();
        assert!(counts[1] > 0, "{config}: the probe ran");
        assert_eq!(counts[1] - counts[0], 0, "{config}: allocations during training steps 5 to 10");
    }
}

/// BatchNormalization, global pooling, padding, cropping, resizing, rescaling, reshaping and
/// spatial dropout.
fn modern() -> Sequential {
    use convnet::nn::layers::*;
    let mut m = Sequential::new();
    m.add(Rescaling::new(2.0, -1.0).input_shape([28, 28, 1]));
    m.add(Conv2D::new(8, 3).padding(Padding::Same));
    m.add(BatchNormalization::new());
    m.add(ReLU::new());
    m.add(ZeroPadding2D::new([[1, 0], [0, 1]]));
    m.add(Conv2D::new(8, 3).strides(2));
    m.add(BatchNormalization::new().center(false));
    m.add(UpSampling2D::new(2).interpolation(Interpolation::Bilinear));
    m.add(Cropping2D::uniform(2));
    m.add(SpatialDropout2D::new(0.2));
    m.add(GlobalMaxPooling2D::new().keepdims(true));
    m.add(Reshape::new(&[-1]));
    m.add(Normalization::with_statistics(&[0.5], &[2.0]));
    m.add(Dense::new(10).activation(Activation::Softmax));
    m
}

/// A graph: a residual block (whose input's gradient is the sum of two paths), a second
/// branch joined by Concatenate, and passthrough layers inside and after it.
fn residual() -> Sequential {
    let mut f = Functional::new();
    let inp = f.input(&[28, 28, 1]);
    let stem = f.add(Conv2D::new(4, 3).padding(Padding::Same).activation(Activation::Relu), inp);
    let x = f.add(Conv2D::new(4, 3).padding(Padding::Same).activation(Activation::Relu), stem);
    let x = f.add(Conv2D::new(4, 3).padding(Padding::Same), x);
    let x = f.add(Add::new(), [x, stem]);
    let x = f.add(ActivationLayer::new(Activation::Relu), x);
    let x = f.add(MaxPooling2D::new(2), x);
    let side = f.add(Conv2D::new(2, 1).activation(Activation::Tanh), x);
    let x = f.add(Concatenate::new(), [x, side]);
    let x = f.add(Flatten::new(), x);
    let x = f.add(Dropout::new(0.25), x);
    let out = f.add(Dense::new(10).activation(Activation::Softmax), x);
    f.build(&[inp], &[out]).unwrap()
}

/// A network whose activations keep their pre-activation for the backward pass (GELU, mish,
/// SiLU), with activation layers and PReLU's weight.
fn activations() -> Sequential {
    let mut m = Sequential::new();
    m.add(Conv2D::new(6, 5).activation(Activation::Gelu).input_shape([28, 28, 1]));
    m.add(PReLU::new().shared_axes(&[1, 2]));
    m.add(MaxPooling2D::new(2));
    m.add(Conv2D::new(16, 3).activation(Activation::Mish));
    m.add(ReLU::new().max_value(Some(4.0)).threshold(0.1));
    m.add(Flatten::new());
    m.add(Dense::new(32).activation(Activation::Silu));
    m.add(LeakyReLU::default());
    m.add(Dense::new(10).activation(Activation::Softmax));
    m
}

/// The convolution variants: dilated and grouped Conv2D, DepthwiseConv2D with a multiplier,
/// SeparableConv2D and Conv2DTranspose.
fn conv_variants() -> Sequential {
    use convnet::nn::layers::{Conv2DTranspose, DepthwiseConv2D, SeparableConv2D};
    let mut m = Sequential::new();
    m.add(Conv2D::new(8, 3).dilation_rate(2).activation(Activation::Relu).input_shape([28, 28, 1]));
    m.add(DepthwiseConv2D::new(3).depth_multiplier(2).strides(2).padding(Padding::Same).activation(Activation::Gelu));
    m.add(Conv2D::new(8, 3).groups(4).activation(Activation::Relu));
    m.add(SeparableConv2D::new(8, 3).padding(Padding::Same).activation(Activation::Relu));
    m.add(Conv2DTranspose::new(4, 3).strides(2).padding(Padding::Same).output_padding(1).activation(Activation::Relu));
    m.add(MaxPooling2D::new(2));
    m.add(Flatten::new());
    m.add(Dense::new(10).activation(Activation::Softmax));
    m
}
