//! Fuzzing every reader of outside bytes, on stable Rust, inside `cargo test`.
//!
//! Each target starts from its corpus (`tests/fixtures/fuzz/<target>/`: valid files and every
//! input that ever broke a reader) and feeds the reader mutations of it — bit flips, absurd
//! size fields, truncations, deleted, repeated and spliced chunks, hostile text tokens — for
//! `CONVNET_FUZZ_SECONDS` seconds per target (default 2). A reader must answer every input
//! with `Ok` or a typed error: no panic, no allocation beyond a cap tied to the input's real
//! size, no input taking longer than a few seconds. A failing input is written to
//! `target/tmp/fuzz-failures/` (move it into the corpus once fixed); the seed comes from
//! `CONVNET_FUZZ_SEED` (else the clock) and is printed, so a run can be repeated.
//!
//! `CONVNET_FUZZ_WRITE_SEEDS=1` regenerates the seed files of the corpus.

use convnet::data::{cifar, idx, images};
use convnet::io::{keras_h5, keras_v3, native, toml_model};
use convnet::prelude::*;
use convnet::Rng;
use std::alloc::{GlobalAlloc, Layout, System};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Tracks the largest single allocation since the last reset, and refuses any request over
/// the hard cap (the process then aborts with the input saved on disk).
struct CapAlloc;

static LARGEST: AtomicUsize = AtomicUsize::new(0);
static HARD_CAP: AtomicUsize = AtomicUsize::new(usize::MAX);

impl CapAlloc {
    fn note(size: usize) -> bool {
        LARGEST.fetch_max(size, Ordering::Relaxed);
        size <= HARD_CAP.load(Ordering::Relaxed)
    }
}

unsafe impl GlobalAlloc for CapAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if Self::note(layout.size()) {
            System.alloc(layout)
        } else {
            std::ptr::null_mut()
        }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if Self::note(layout.size()) {
            System.alloc_zeroed(layout)
        } else {
            std::ptr::null_mut()
        }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if Self::note(new_size) {
            System.realloc(ptr, layout, new_size)
        } else {
            std::ptr::null_mut()
        }
    }
}

#[global_allocator]
static ALLOC: CapAlloc = CapAlloc;

/// The most one input of `len` bytes may make a reader allocate at once: room for the data
/// it can really hold (deflate expands at most ~1,032×) and a fixed allowance.
fn cap_for(len: usize) -> usize {
    (64 << 20) + 1100 * len
}

/// Pictures may decode up to the decoder's own limit (a PNG or JPEG header sets the size).
const IMAGE_CAP: usize = images::MAX_DECODE_BYTES as usize + (64 << 20);

/// Longest any single input may take.
const SLOW: Duration = Duration::from_secs(10);

type Reader = fn(&[u8]) -> bool;

struct Target {
    name: &'static str,
    read: Reader,
    text: bool,
    image: bool,
}

fn p() -> &'static Path {
    Path::new("fuzz-input")
}

fn lenet() -> Sequential {
    let mut m = convnet::presets::lenet5();
    m.build().unwrap();
    m
}

fn targets() -> Vec<Target> {
    let t = |name, read: Reader| Target { name, read, text: false, image: false };
    vec![
        t("idx", |b| idx::parse_idx_bytes(b, p()).is_ok()),
        t("cifar-batch", |b| {
            let mut set = cifar::empty_set();
            cifar::parse_batch(b, p(), &mut set).is_ok()
        }),
        t("cifar-archive", |b| cifar::read_archive(b, p()).is_ok()),
        t("keras-h5", |b| keras_h5::from_bytes(b.to_vec(), p()).is_ok()),
        t("keras-h5-weights", |b| keras_h5::load_weights_bytes(&mut lenet(), b.to_vec(), p()).is_ok()),
        t("keras-zip", |b| keras_v3::from_bytes(b, p()).is_ok()),
        Target {
            name: "keras-config",
            read: |b| keras_v3::from_bytes(&zip_with_config(b), p()).is_ok(),
            text: true,
            image: false,
        },
        t("native", |b| native::from_bytes(b, p()).is_ok()),
        t("checkpoint", |b| convnet::train::checkpoint::checkpoint_from_bytes(b, p()).is_ok()),
        t("load-model", |b| convnet::io::model_from_bytes(b.to_vec(), p()).is_ok()),
        Target {
            name: "toml-model",
            read: |b| {
                let text = String::from_utf8_lossy(b);
                let m = toml_model::model_from_toml(&text, p()).is_ok();
                let a = toml_model::augment_from_toml(&text, p()).is_ok();
                m || a
            },
            text: true,
            image: false,
        },
        Target {
            name: "history",
            read: |b| {
                let text = String::from_utf8_lossy(b);
                History::from_csv(&text, p()).is_ok() | History::from_json(&text, p()).is_ok()
            },
            text: true,
            image: false,
        },
        Target {
            name: "kernel",
            read: |b| convnet::viz::pictures::Kernel2d::from_text(&String::from_utf8_lossy(b), p()).is_ok(),
            text: true,
            image: false,
        },
        Target {
            name: "image",
            read: |b| {
                let a = images::decode_image(b, p(), &[28, 28, 1], images::Invert::Auto).is_ok();
                let c = images::decode_grey(b, p(), 64).is_ok();
                a || c
            },
            text: false,
            image: true,
        },
    ]
}

/// The real Keras LeNet-5 archive's members.
fn keras_members() -> &'static Vec<(String, Vec<u8>)> {
    static M: std::sync::OnceLock<Vec<(String, Vec<u8>)>> = std::sync::OnceLock::new();
    M.get_or_init(|| {
        let bytes = keras_fixture("keras_lenet5.keras");
        let mut z = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
        (0..z.len())
            .map(|i| {
                let mut f = z.by_index(i).unwrap();
                let mut v = Vec::new();
                std::io::Read::read_to_end(&mut f, &mut v).unwrap();
                (f.name().unwrap().to_string(), v)
            })
            .collect()
    })
}

/// A `.keras` archive with `config` as its config.json and Keras' real weights: fuzzes the
/// model config inside an archive whose checksums hold.
fn zip_with_config(config: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut z = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, bytes) in keras_members() {
        z.start_file(name.as_str(), opts).unwrap();
        z.write_all(if name == "config.json" { config } else { bytes }).unwrap();
    }
    z.finish().unwrap().into_inner()
}

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fuzz").join(target)
}

fn keras_fixture(name: &str) -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/keras").join(name)).unwrap()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// Valid inputs for each target, made with convnet's own writers (and Keras' real files).
fn make_seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    let mut rng = Rng::new(9);
    let pixels: Vec<u8> = (0..3 * 4 * 4).map(|_| (rng.next_u64() & 0xff) as u8).collect();
    let small = {
        let mut m = Sequential::new();
        m.add(Conv2D::new(2, (3, 3)).activation(Activation::Relu).input_shape([6, 6, 1]));
        m.add(Flatten::new());
        m.add(Dense::new(3).activation(Activation::Softmax));
        m.compile(Loss::CategoricalCrossentropy, Adam::default(), &[Metric::Accuracy]).unwrap();
        let x = Tensor::from_vec(&[4, 6, 6, 1], (0..144).map(|i| (i % 7) as f32 / 7.0).collect()).unwrap();
        let y = convnet::data::to_categorical(&[0, 1, 2, 1], 3);
        m.fit(&x, &y, FitOptions { batch_size: 2, epochs: 1, verbose: 0, ..Default::default() }).unwrap();
        m
    };
    let dir = tempfile::tempdir().unwrap();
    let save = |name: &str| {
        let path = dir.path().join(name);
        convnet::io::save_model(&small, &path).unwrap();
        std::fs::read(&path).unwrap()
    };
    match target {
        "idx" => {
            let images = idx::encode_idx(&[3, 4, 4], &pixels);
            let labels = idx::encode_idx(&[3], &[7, 0, 9]);
            vec![
                ("images.idx".into(), images.clone()),
                ("labels.idx".into(), labels.clone()),
                ("images.idx.gz".into(), gzip(&images)),
                ("labels.idx.gz".into(), gzip(&labels)),
            ]
        }
        "cifar-batch" => {
            let img: Vec<u8> = (0..2 * 3072).map(|_| (rng.next_u64() & 0xff) as u8).collect();
            vec![("batch.bin".into(), cifar::encode_batch(&img, &[3, 8]))]
        }
        "cifar-archive" => {
            let img: Vec<u8> = (0..3072).map(|_| (rng.next_u64() & 0xff) as u8).collect();
            let batch = cifar::encode_batch(&img, &[5]);
            let mut tar = tar::Builder::new(Vec::new());
            let mut names: Vec<String> = (1..=5).map(|i| format!("data_batch_{i}.bin")).collect();
            names.push(cifar::TEST_FILE.into());
            for n in names {
                let mut h = tar::Header::new_gnu();
                h.set_size(batch.len() as u64);
                h.set_mode(0o644);
                h.set_cksum();
                tar.append_data(&mut h, format!("{}/{n}", cifar::ARCHIVE_DIR), &batch[..]).unwrap();
            }
            vec![("cifar-10-binary.tar.gz".into(), gzip(&tar.into_inner().unwrap()))]
        }
        "keras-h5" => vec![
            ("keras3_lenet5.h5".into(), keras_fixture("keras_lenet5_legacy.h5")),
            ("tf_keras_lenet5.h5".into(), keras_fixture("keras2_lenet5_legacy.h5")),
            ("convnet_small.h5".into(), save("small.h5")),
        ],
        "keras-h5-weights" => {
            let m = lenet();
            let path = dir.path().join("w.weights.h5");
            convnet::io::save_weights(&m, &path).unwrap();
            vec![("lenet5.weights.h5".into(), std::fs::read(&path).unwrap())]
        }
        "keras-zip" => {
            vec![
                ("keras_lenet5.keras".into(), keras_fixture("keras_lenet5.keras")),
                ("small.keras".into(), save("s.keras")),
            ]
        }
        "keras-config" => {
            let cfg = keras_members().iter().find(|(n, _)| n == "config.json").unwrap().1.clone();
            vec![("lenet5_config.json".into(), cfg)]
        }
        "native" => vec![("small.safetensors".into(), save("small.safetensors"))],
        "checkpoint" => {
            let path = dir.path().join("c.ckpt");
            let mut st = convnet::train::checkpoint::TrainState::at_epoch(1, 2, small.rng().clone());
            st.batch = 1;
            st.order = vec![2, 0, 3, 1];
            convnet::train::checkpoint::save_checkpoint(&small, &st, &path).unwrap();
            vec![("small.ckpt".into(), std::fs::read(&path).unwrap())]
        }
        "load-model" => vec![
            ("small.h5".into(), save("small.h5")),
            ("small.keras".into(), save("small.keras")),
            ("small.safetensors".into(), save("small.safetensors")),
        ],
        "toml-model" => {
            let ex = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/models");
            let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(&ex)
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|e| e == "toml"))
                .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap()))
                .collect();
            v.sort();
            v
        }
        "history" => {
            let mut h = History::default();
            let mut l = convnet::Logs::new();
            l.insert("loss".into(), 0.5);
            l.insert("accuracy".into(), 0.75);
            l.insert("val_loss".into(), 0.625);
            h.push(0, &l, 1.5);
            h.push(1, &l, 1.25);
            vec![("history.csv".into(), h.to_csv().into_bytes()), ("history.json".into(), h.to_json().into_bytes())]
        }
        "kernel" => vec![
            ("sobel.txt".into(), b"# Sobel\n-1 0 1\n-2, 0, 2\n-1 0 1\n".to_vec()),
            ("blur.txt".into(), b"0.0625 0.125 0.0625\n0.125 0.25 0.125\n0.0625 0.125 0.0625\n".to_vec()),
        ],
        "image" => {
            let img = image::RgbImage::from_fn(12, 9, |x, y| image::Rgb([(x * 20) as u8, (y * 25) as u8, 128]));
            let mut png = Vec::new();
            img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png).unwrap();
            let mut jpg = Vec::new();
            img.write_to(&mut std::io::Cursor::new(&mut jpg), image::ImageFormat::Jpeg).unwrap();
            let grey = image::GrayImage::from_fn(8, 8, |x, y| image::Luma([((x + y) * 16) as u8]));
            let mut gpng = Vec::new();
            grey.write_to(&mut std::io::Cursor::new(&mut gpng), image::ImageFormat::Png).unwrap();
            vec![("rgb.png".into(), png), ("rgb.jpg".into(), jpg), ("grey.png".into(), gpng)]
        }
        other => panic!("no seeds for {other}"),
    }
}

/// The corpus: every file in the target's directory (seeds written by
/// `CONVNET_FUZZ_WRITE_SEEDS=1`, and saved failures), plus the large Keras files by reference.
fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = corpus_dir(target);
    if std::env::var_os("CONVNET_FUZZ_WRITE_SEEDS").is_some() {
        std::fs::create_dir_all(&dir).unwrap();
        for (name, bytes) in make_seeds(target) {
            if !name.starts_with("keras3_") && !name.starts_with("tf_keras_") && !name.starts_with("keras_lenet5") {
                std::fs::write(dir.join(name), bytes).unwrap();
            }
        }
    }
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file())
                .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap()))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    match target {
        "keras-h5" => {
            v.push(("keras3_lenet5.h5".into(), keras_fixture("keras_lenet5_legacy.h5")));
            v.push(("tf_keras_lenet5.h5".into(), keras_fixture("keras2_lenet5_legacy.h5")));
        }
        "keras-zip" => v.push(("keras_lenet5.keras".into(), keras_fixture("keras_lenet5.keras"))),
        _ => {}
    }
    assert!(!v.is_empty(), "the {target} corpus in {} is empty", dir.display());
    v
}

const INTERESTING_U32: [u32; 10] = [0, 1, 0x7f, 0x80, 0xff, 0xffff, 0x7fff_ffff, 0x8000_0000, 0xffff_fffe, 0xffff_ffff];

const TOKENS: [&str; 24] = [
    "0",
    "-1",
    "4294967296",
    "99999999999",
    "1e30",
    "-1e30",
    "nan",
    "inf",
    "[",
    "]",
    "{",
    "}",
    "\"",
    ",",
    "=",
    "\n",
    "[[layers]]",
    "type = \"Dense\"",
    "units = 1000000000",
    "kernel_size = [0, 0]",
    "strides = 0",
    "input_shape = [100000, 100000, 3]",
    "pool_size = 1000000",
    "\u{0}",
];

/// One random change to `data`.
fn mutate_once(data: &mut Vec<u8>, rng: &mut Rng, others: &[(String, Vec<u8>)], text: bool) {
    let len = data.len();
    let pos = |rng: &mut Rng| if len == 0 { 0 } else { rng.below(len) };
    // Binary formats carry text too (JSON configs), so every target gets token mutations.
    let _ = text;
    match rng.below(10) {
        0 if len > 0 => {
            let i = pos(rng);
            data[i] ^= 1 << rng.below(8);
        }
        1 if len > 0 => {
            let i = pos(rng);
            data[i] = [0u8, 1, 0x7f, 0x80, 0xff][rng.below(5)];
        }
        2 if len >= 4 => {
            let i = rng.below(len - 3);
            let v = INTERESTING_U32[rng.below(INTERESTING_U32.len())];
            let bytes = if rng.below(2) == 0 { v.to_le_bytes() } else { v.to_be_bytes() };
            data[i..i + 4].copy_from_slice(&bytes);
        }
        3 if len >= 8 => {
            let i = rng.below(len - 7);
            let v: u64 = [u64::MAX, 1 << 40, 1 << 62, len as u64 * 2, len as u64 + 1][rng.below(5)];
            data[i..i + 8].copy_from_slice(&v.to_le_bytes());
        }
        4 => {
            let cut = pos(rng);
            data.truncate(cut);
        }
        5 if len > 1 => {
            let a = pos(rng);
            let b = (a + 1 + rng.below(64.min(len - a))).min(len);
            data.drain(a..b);
        }
        6 if len > 1 => {
            let a = pos(rng);
            let b = (a + 1 + rng.below(64.min(len - a))).min(len);
            let chunk: Vec<u8> = data[a..b].to_vec();
            let at = pos(rng);
            for _ in 0..1 + rng.below(4) {
                data.splice(at..at, chunk.iter().copied());
            }
        }
        7 if !others.is_empty() => {
            let other = &others[rng.below(others.len())].1;
            if !other.is_empty() {
                let a = rng.below(other.len());
                let b = (a + 1 + rng.below(256)).min(other.len());
                let at = pos(rng);
                data.splice(at..at, other[a..b].iter().copied());
            }
        }
        8 | 9 => {
            let tok = TOKENS[rng.below(TOKENS.len())].as_bytes();
            let at = pos(rng);
            if rng.below(2) == 0 {
                // Replace the number or word under `at` with the token.
                let mut end = at;
                while end < data.len() && (data[end].is_ascii_alphanumeric() || data[end] == b'.') {
                    end += 1;
                }
                data.splice(at..end, tok.iter().copied());
            } else {
                data.splice(at..at, tok.iter().copied());
            }
        }
        _ => {}
    }
}

fn mutate(seed: &[u8], rng: &mut Rng, others: &[(String, Vec<u8>)], text: bool) -> Vec<u8> {
    let mut d = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        mutate_once(&mut d, rng, others, text);
    }
    d
}

/// True while a reader runs under `catch_unwind` (its panic message is not printed).
static QUIET: AtomicBool = AtomicBool::new(false);

/// Why an input failed, if it did (`None`: the reader answered in time, within the cap).
fn run_one(t: &Target, input: &[u8]) -> Option<String> {
    run_one_with(t, input).err()
}

/// Runs one input: `Ok(accepted)` when the reader behaved, else why it did not.
fn run_one_with(t: &Target, input: &[u8]) -> Result<bool, String> {
    let cap = if t.image { IMAGE_CAP } else { cap_for(input.len()) };
    LARGEST.store(0, Ordering::Relaxed);
    let start = Instant::now();
    QUIET.store(true, Ordering::Relaxed);
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| (t.read)(input)));
    QUIET.store(false, Ordering::Relaxed);
    let largest = LARGEST.load(Ordering::Relaxed);
    let took = start.elapsed();
    match outcome {
        Err(e) => {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            Err(format!("panicked: {msg}"))
        }
        Ok(_) if largest > cap => Err(format!("allocated {largest} bytes at once (cap {cap})")),
        Ok(_) if took > SLOW => Err(format!("took {took:?}")),
        Ok(ok) => Ok(ok),
    }
}

/// Stops the process if one input runs far too long (a hang), naming the saved input.
fn watchdog(started_ms: &'static AtomicU64, epoch: Instant) {
    std::thread::spawn(move || loop {
        std::thread::sleep(Duration::from_millis(500));
        let s = started_ms.load(Ordering::Relaxed);
        if s != 0 && epoch.elapsed().as_millis() as u64 > s + 4 * SLOW.as_millis() as u64 {
            eprintln!("fuzz: an input hangs; it is in {}", failures_dir().join("current.bin").display());
            std::process::abort();
        }
    });
}

fn failures_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz-failures")
}

#[test]
fn fuzz_every_reader() {
    // Silence the default panic message while a reader runs: those panics are caught,
    // recorded and reported below.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !QUIET.load(Ordering::Relaxed) {
            default_hook(info);
        }
    }));
    let seconds: f64 = std::env::var("CONVNET_FUZZ_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(2.0);
    let seed: u64 = std::env::var("CONVNET_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1)
    });
    let only = std::env::var("CONVNET_FUZZ_TARGET").ok();
    eprintln!("fuzz: seed {seed}, {seconds} s per target (CONVNET_FUZZ_SEED / CONVNET_FUZZ_SECONDS)");
    std::fs::create_dir_all(failures_dir()).unwrap();
    static STARTED: AtomicU64 = AtomicU64::new(0);
    let epoch = Instant::now();
    watchdog(&STARTED, epoch);
    // Anything above the largest cap aborts the process; the current input is on disk.
    HARD_CAP.store(IMAGE_CAP.max(cap_for(16 << 20)), Ordering::Relaxed);

    // The harness itself notices a panic and an oversized allocation.
    let panics = Target { name: "self-test", read: |b| b[usize::MAX / 2] == 0, text: false, image: false };
    assert!(run_one(&panics, b"x").is_some_and(|w| w.starts_with("panicked")));
    let hog =
        Target { name: "self-test", read: |b| vec![0u8; cap_for(b.len()) + 1].len() > 1, text: false, image: false };
    assert!(run_one(&hog, b"x").is_some_and(|w| w.starts_with("allocated")));

    let mut failures = Vec::new();
    let mut report = Vec::new();
    for t in targets() {
        if only.as_deref().is_some_and(|o| o != t.name) {
            continue;
        }
        // The seeds are real, valid files: the fuzzing starts from inputs the reader accepts.
        for (name, bytes) in make_seeds(t.name) {
            assert!((t.read)(&bytes), "{}: seed {name} is refused", t.name);
        }
        let corpus = corpus(t.name);
        let mut rng = Rng::new(seed ^ t.name.bytes().fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(b as u64)));
        let mut runs = 0usize;
        let mut accepted = 0usize;
        let check = |input: &[u8], what: &str, failures: &mut Vec<String>| {
            std::fs::write(failures_dir().join("current.bin"), input).ok();
            STARTED.store(epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
            let r = run_one_with(&t, input);
            STARTED.store(0, Ordering::Relaxed);
            match r {
                Err(why) => {
                    let name = format!("{}-{:016x}.bin", t.name, fnv(input));
                    std::fs::write(failures_dir().join(&name), input).ok();
                    failures.push(format!("{} ({what}): {why}; input saved as {}", t.name, name));
                    false
                }
                Ok(accepted) => accepted,
            }
        };
        // Every corpus file (seeds and past failures) must pass, and the seeds must parse.
        for (name, bytes) in &corpus {
            check(bytes, name, &mut failures);
        }
        let start = Instant::now();
        while start.elapsed().as_secs_f64() < seconds {
            let (_, base) = &corpus[rng.below(corpus.len())];
            let input = mutate(base, &mut rng, &corpus, t.text);
            runs += 1;
            if check(&input, "mutation", &mut failures) {
                accepted += 1;
            }
        }
        report.push(format!(
            "{:<18} {:>7} inputs in {:.1} s ({} read as valid), {} corpus files",
            t.name,
            runs,
            seconds,
            accepted,
            corpus.len()
        ));
    }
    for r in &report {
        eprintln!("fuzz: {r}");
    }
    assert!(failures.is_empty(), "{} failing inputs:\n{}", failures.len(), failures.join("\n"));
}

fn fnv(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &x| (h ^ x as u64).wrapping_mul(0x100_0000_01b3))
}
