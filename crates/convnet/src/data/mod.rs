//! Datasets like `keras.datasets`: MNIST, Fashion-MNIST and CIFAR-10, found locally or
//! downloaded (with SHA-256 checks) into a cache; plus normalisation and one-hot encoding.
//!
//! Where a dataset comes from, in order: an explicit directory (`data_dir`, or the
//! `CONVNET_DATA_DIR` environment variable); system copies such as Debian's
//! `/usr/share/datasets/fashion-mnist`; Keras' cache `~/.keras/datasets`; convnet's cache
//! (`CONVNET_CACHE_DIR`, else `$XDG_CACHE_HOME/convnet`, else `~/.cache/convnet`); a download
//! into that cache. Offline, `mnist` falls back to 2,000 real digits shipped inside convnet.

pub mod augment;
pub mod cifar;
pub mod download;
pub mod folder;
pub mod idx;
pub mod images;
pub mod source;

use crate::error::{Error, Result};
use crate::tensor::Tensor;
use download::Remote;
use std::path::{Path, PathBuf};

/// Images with labels, stored as bytes: `count × height × width × channels`, NHWC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageSet {
    /// Pixel values 0–255, NHWC order.
    pub images: Vec<u8>,
    /// One class index per image.
    pub labels: Vec<u8>,
    /// Number of images.
    pub count: usize,
    /// Image height.
    pub height: usize,
    /// Image width.
    pub width: usize,
    /// Channels per pixel (1 grey, 3 RGB).
    pub channels: usize,
}

impl ImageSet {
    /// Values per image.
    pub fn image_len(&self) -> usize {
        self.height * self.width * self.channels
    }

    /// The images as an NHWC f32 tensor scaled to [0, 1] (Keras' `x.astype("float32") / 255`).
    pub fn x(&self) -> Tensor {
        self.x_scaled(1.0 / 255.0)
    }

    /// The images as an NHWC f32 tensor, each value multiplied by `scale`.
    pub fn x_scaled(&self, scale: f32) -> Tensor {
        let data = self.images.iter().map(|&v| v as f32 * scale).collect();
        Tensor::from_vec(&[self.count, self.height, self.width, self.channels], data).expect("consistent image set")
    }

    /// The labels one-hot encoded over `classes` classes (Keras' `to_categorical`).
    pub fn y_one_hot(&self, classes: usize) -> Tensor {
        to_categorical(&self.labels, classes)
    }

    /// The labels as a `[count]` tensor of class indices (for the sparse losses).
    pub fn y_sparse(&self) -> Tensor {
        Tensor::from_vec(&[self.count], self.labels.iter().map(|&l| l as f32).collect()).expect("labels")
    }

    /// The first `n` images (all if fewer).
    pub fn take(&self, n: usize) -> ImageSet {
        self.slice(0, n.min(self.count))
    }

    /// Images `start..end`.
    pub fn slice(&self, start: usize, end: usize) -> ImageSet {
        let l = self.image_len();
        ImageSet {
            images: self.images[start * l..end * l].to_vec(),
            labels: self.labels[start..end].to_vec(),
            count: end - start,
            height: self.height,
            width: self.width,
            channels: self.channels,
        }
    }
}

/// Keras' `to_categorical`: one row per label with a 1 at the label's index.
pub fn to_categorical(labels: &[u8], classes: usize) -> Tensor {
    let mut data = vec![0.0; labels.len() * classes];
    for (i, &l) in labels.iter().enumerate() {
        if (l as usize) < classes {
            data[i * classes + l as usize] = 1.0;
        }
    }
    Tensor::from_vec(&[labels.len(), classes], data).expect("shape")
}

/// The datasets convnet knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DatasetKind {
    /// Handwritten digits, 28×28 grey, 60k/10k.
    Mnist,
    /// Zalando's clothing images, 28×28 grey, 60k/10k.
    FashionMnist,
    /// Small colour photos in 10 classes, 32×32 RGB, 50k/10k.
    Cifar10,
}

/// A loaded dataset: training and test images, class names, and where it came from.
#[derive(Clone, Debug)]
pub struct Dataset {
    /// Which dataset.
    pub kind: DatasetKind,
    /// Training images.
    pub train: ImageSet,
    /// Test images.
    pub test: ImageSet,
    /// Where the files were found (a directory, a download, or the shipped sample).
    pub source: String,
    /// A one-line note for the user (for example: offline, using the shipped sample).
    pub notice: Option<String>,
}

impl Dataset {
    /// Class names of this dataset.
    pub fn class_names(&self) -> &'static [&'static str] {
        self.kind.class_names()
    }
}

/// How to look for, and whether to download, a dataset.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// Read the files from this directory only (overrides `CONVNET_DATA_DIR`).
    pub data_dir: Option<PathBuf>,
    /// Download into the cache when no local copy exists.
    pub download: bool,
    /// Show a progress bar while downloading.
    pub progress: bool,
    /// For MNIST: fall back to the shipped 2,000-digit sample when nothing else works.
    pub allow_sample: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions { data_dir: None, download: true, progress: false, allow_sample: true }
    }
}

const IDX_FILES: [&str; 4] = [
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
];

macro_rules! urls {
    ($file:literal, $($base:literal),+) => { &[$(concat!($base, $file)),+] };
}

const MNIST_REMOTES: [Remote; 4] = [
    Remote {
        file_name: IDX_FILES[0],
        urls: urls!(
            "train-images-idx3-ubyte.gz",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
            "https://ossci-datasets.s3.amazonaws.com/mnist/"
        ),
        sha256: "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        size: 9_912_422,
    },
    Remote {
        file_name: IDX_FILES[1],
        urls: urls!(
            "train-labels-idx1-ubyte.gz",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
            "https://ossci-datasets.s3.amazonaws.com/mnist/"
        ),
        sha256: "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        size: 28_881,
    },
    Remote {
        file_name: IDX_FILES[2],
        urls: urls!(
            "t10k-images-idx3-ubyte.gz",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
            "https://ossci-datasets.s3.amazonaws.com/mnist/"
        ),
        sha256: "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        size: 1_648_877,
    },
    Remote {
        file_name: IDX_FILES[3],
        urls: urls!(
            "t10k-labels-idx1-ubyte.gz",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
            "https://ossci-datasets.s3.amazonaws.com/mnist/"
        ),
        sha256: "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
        size: 4_542,
    },
];

const FASHION_REMOTES: [Remote; 4] = [
    Remote {
        file_name: IDX_FILES[0],
        urls: urls!(
            "train-images-idx3-ubyte.gz",
            "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
        ),
        sha256: "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        size: 26_421_880,
    },
    Remote {
        file_name: IDX_FILES[1],
        urls: urls!(
            "train-labels-idx1-ubyte.gz",
            "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
        ),
        sha256: "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        size: 29_515,
    },
    Remote {
        file_name: IDX_FILES[2],
        urls: urls!(
            "t10k-images-idx3-ubyte.gz",
            "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
        ),
        sha256: "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        size: 4_422_102,
    },
    Remote {
        file_name: IDX_FILES[3],
        urls: urls!(
            "t10k-labels-idx1-ubyte.gz",
            "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
        ),
        sha256: "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
        size: 5_148,
    },
];

const CIFAR_REMOTE: Remote = Remote {
    file_name: cifar::ARCHIVE,
    urls: &["https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"],
    sha256: "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd",
    size: 170_052_171,
};

/// The shipped real MNIST sample (2,000 digits), embedded in the library.
const SAMPLE_IMAGES: &[u8] = include_bytes!("../../../../data/mnist-sample/images-idx3-ubyte.gz");
const SAMPLE_LABELS: &[u8] = include_bytes!("../../../../data/mnist-sample/labels-idx1-ubyte.gz");
/// Digits of the sample used for training; the rest are the test set.
pub const SAMPLE_TRAIN: usize = 1600;

impl DatasetKind {
    /// Parses `mnist`, `fashion-mnist` (or `fashion_mnist`), `cifar10` (or `cifar-10`).
    pub fn parse(name: &str) -> Result<Self> {
        match name.to_ascii_lowercase().replace('_', "-").as_str() {
            "mnist" => Ok(DatasetKind::Mnist),
            "fashion-mnist" | "fashionmnist" => Ok(DatasetKind::FashionMnist),
            "cifar10" | "cifar-10" => Ok(DatasetKind::Cifar10),
            other => {
                Err(Error::config(format!("unknown dataset {other:?} (convnet has mnist, fashion-mnist, cifar10)")))
            }
        }
    }

    /// The dataset's name as convnet spells it.
    pub fn name(self) -> &'static str {
        match self {
            DatasetKind::Mnist => "mnist",
            DatasetKind::FashionMnist => "fashion-mnist",
            DatasetKind::Cifar10 => "cifar10",
        }
    }

    /// Class names, index = label.
    pub fn class_names(self) -> &'static [&'static str] {
        match self {
            DatasetKind::Mnist => &["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"],
            DatasetKind::FashionMnist => &[
                "T-shirt/top",
                "Trouser",
                "Pullover",
                "Dress",
                "Coat",
                "Sandal",
                "Shirt",
                "Sneaker",
                "Bag",
                "Ankle boot",
            ],
            DatasetKind::Cifar10 => {
                &["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
            }
        }
    }

    /// Per-image shape `[height, width, channels]`.
    pub fn image_shape(self) -> [usize; 3] {
        match self {
            DatasetKind::Cifar10 => [32, 32, 3],
            _ => [28, 28, 1],
        }
    }

    /// Directories where system packages put this dataset.
    fn system_dirs(self) -> Vec<PathBuf> {
        let mut v = vec![PathBuf::from("/usr/share/datasets").join(self.name())];
        if let Some(home) = home_dir() {
            let keras = match self {
                DatasetKind::FashionMnist => Some("fashion-mnist"),
                _ => None,
            };
            if let Some(k) = keras {
                v.push(home.join(".keras/datasets").join(k));
            }
        }
        v
    }
}

fn home_dir() -> Option<PathBuf> {
    std::env::var_os("HOME").filter(|h| !h.is_empty()).map(PathBuf::from)
}

/// convnet's cache directory for downloads.
pub fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("CONVNET_CACHE_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(d).join("convnet");
    }
    match home_dir() {
        Some(h) => h.join(".cache").join("convnet"),
        None => PathBuf::from(".convnet-cache"),
    }
}

/// Finds a published IDX file in `dir`, compressed or not.
fn find_idx(dir: &Path, gz_name: &str) -> Option<PathBuf> {
    let plain = gz_name.trim_end_matches(".gz");
    [gz_name.to_string(), plain.to_string(), plain.replacen("-idx", ".idx", 1)]
        .iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_file())
}

/// The directory (of `dir` and `dir/<name>`) that holds all of `kind`'s files, if any.
fn local_dir(kind: DatasetKind, dir: &Path) -> Option<PathBuf> {
    for d in [dir.to_path_buf(), dir.join(kind.name())] {
        let found = match kind {
            DatasetKind::Cifar10 => d.join(cifar::ARCHIVE).is_file() || cifar::find_batches(&d).is_some(),
            _ => IDX_FILES.iter().all(|f| find_idx(&d, f).is_some()),
        };
        if found {
            return Some(d);
        }
    }
    None
}

/// Loads an image/label pair of IDX files and checks that they belong together.
pub fn load_idx_pair(images: &Path, labels: &Path, classes: usize) -> Result<ImageSet> {
    let img = idx::read_idx_file(images)?;
    let lab = idx::read_idx_file(labels)?;
    idx_pair(img, lab, images, labels, classes)
}

fn idx_pair(img: idx::IdxArray, lab: idx::IdxArray, images: &Path, labels: &Path, classes: usize) -> Result<ImageSet> {
    if img.dims.len() != 3 {
        return Err(Error::format(
            images,
            format!("an image file holds 3 dimensions (count, height, width); this one has {:?}", img.dims),
        ));
    }
    if lab.dims.len() != 1 {
        return Err(Error::format(
            labels,
            format!("a label file holds 1 dimension (count); this one has {:?}", lab.dims),
        ));
    }
    if img.dims[0] != lab.dims[0] {
        return Err(Error::format(
            labels,
            format!("{} labels for {} images in {}", lab.dims[0], img.dims[0], images.display()),
        ));
    }
    if let Some((i, &l)) = lab.data.iter().enumerate().find(|(_, &l)| l as usize >= classes) {
        return Err(Error::format(labels, format!("label {l} at index {i} is not a class 0–{}", classes - 1)));
    }
    Ok(ImageSet {
        count: img.dims[0],
        height: img.dims[1],
        width: img.dims[2],
        channels: 1,
        images: img.data,
        labels: lab.data,
    })
}

/// Reads `kind` from the files in `dir`.
pub fn load_from_dir(kind: DatasetKind, dir: &Path) -> Result<(ImageSet, ImageSet)> {
    let not_found = || {
        Error::DatasetUnavailable(format!(
            "{}: {} does not hold the dataset's files ({})",
            kind.name(),
            dir.display(),
            match kind {
                DatasetKind::Cifar10 => format!("{} or {}/data_batch_1.bin …", cifar::ARCHIVE, cifar::ARCHIVE_DIR),
                _ => IDX_FILES.join(", "),
            }
        ))
    };
    let d = local_dir(kind, dir).ok_or_else(not_found)?;
    match kind {
        DatasetKind::Cifar10 => match cifar::find_batches(&d) {
            Some(b) => cifar::load_dir(&b),
            None => cifar::load_archive(&d.join(cifar::ARCHIVE)),
        },
        _ => {
            let f = |n: &str| find_idx(&d, n).ok_or_else(not_found);
            let train = load_idx_pair(&f(IDX_FILES[0])?, &f(IDX_FILES[1])?, 10)?;
            let test = load_idx_pair(&f(IDX_FILES[2])?, &f(IDX_FILES[3])?, 10)?;
            Ok((train, test))
        }
    }
}

/// The 2,000 real MNIST digits shipped with convnet, split 1,600 / 400.
pub fn mnist_sample() -> Result<(ImageSet, ImageSet)> {
    let p = Path::new("<shipped mnist sample>");
    let set = idx_pair(idx::parse_idx_bytes(SAMPLE_IMAGES, p)?, idx::parse_idx_bytes(SAMPLE_LABELS, p)?, p, p, 10)?;
    Ok((set.slice(0, SAMPLE_TRAIN), set.slice(SAMPLE_TRAIN, set.count)))
}

/// Loads a dataset, looking in the places listed in the module documentation.
pub fn load(kind: DatasetKind, opts: &LoadOptions) -> Result<Dataset> {
    let make = |(train, test): (ImageSet, ImageSet), source: String, notice: Option<String>| Dataset {
        kind,
        train,
        test,
        source,
        notice,
    };
    let explicit = opts
        .data_dir
        .clone()
        .or_else(|| std::env::var_os("CONVNET_DATA_DIR").filter(|d| !d.is_empty()).map(PathBuf::from));
    if let Some(dir) = explicit {
        return Ok(make(load_from_dir(kind, &dir)?, dir.display().to_string(), None));
    }
    let cache = cache_dir().join("datasets").join(kind.name());
    let mut candidates = kind.system_dirs();
    candidates.push(cache.clone());
    for dir in &candidates {
        if local_dir(kind, dir).is_some() {
            return Ok(make(load_from_dir(kind, dir)?, dir.display().to_string(), None));
        }
    }
    let mut why = String::from("downloads are off");
    if opts.download {
        let remotes: &[Remote] = match kind {
            DatasetKind::Mnist => &MNIST_REMOTES,
            DatasetKind::FashionMnist => &FASHION_REMOTES,
            DatasetKind::Cifar10 => std::slice::from_ref(&CIFAR_REMOTE),
        };
        let fetched: Result<Vec<PathBuf>> = remotes.iter().map(|r| download::fetch(r, &cache, opts.progress)).collect();
        match fetched {
            Ok(_) => return Ok(make(load_from_dir(kind, &cache)?, format!("downloaded to {}", cache.display()), None)),
            Err(e) => why = e.to_string(),
        }
    }
    if kind == DatasetKind::Mnist && opts.allow_sample {
        return Ok(make(
            mnist_sample()?,
            "shipped sample".into(),
            Some(format!(
                "MNIST could not be found or downloaded ({why}), so this uses the 2,000 real digits shipped with \
                 convnet ({SAMPLE_TRAIN} train / {} test); for the full set, {}",
                2000 - SAMPLE_TRAIN,
                supply_hint(kind)
            )),
        ));
    }
    Err(Error::DatasetUnavailable(format!(
        "{} is not on this machine and could not be downloaded ({why}); {}",
        kind.name(),
        supply_hint(kind)
    )))
}

/// How to supply `kind`'s files by hand: their published names and where to point.
fn supply_hint(kind: DatasetKind) -> String {
    let files = match kind {
        DatasetKind::Cifar10 => format!("{} (or its extracted {}/)", cifar::ARCHIVE, cifar::ARCHIVE_DIR),
        _ => IDX_FILES.join(", "),
    };
    format!("put {files} in a directory and pass --data-dir DIR (or set CONVNET_DATA_DIR)")
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::GzEncoder;
    use std::io::Write;

    #[test]
    fn shipped_sample_is_real_mnist() {
        let (train, test) = mnist_sample().unwrap();
        assert_eq!((train.count, test.count), (1600, 400));
        assert_eq!((train.height, train.width, train.channels), (28, 28, 1));
        let mut counts = [0; 10];
        for &l in train.labels.iter().chain(&test.labels) {
            counts[l as usize] += 1;
        }
        assert!(counts.iter().all(|&c| c > 150), "{counts:?}");
        let x = train.x();
        assert_eq!(x.shape(), &[1600, 28, 28, 1]);
        assert!(x.data().iter().all(|v| (0.0..=1.0).contains(v)));
    }

    #[test]
    fn to_categorical_one_hot() {
        let t = to_categorical(&[2, 0], 3);
        assert_eq!(t.data(), &[0., 0., 1., 1., 0., 0.]);
    }

    fn write_gz(path: &Path, bytes: &[u8]) {
        let mut e = GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(bytes).unwrap();
        std::fs::write(path, e.finish().unwrap()).unwrap();
    }

    #[test]
    fn reads_a_directory_in_the_published_mnist_layout() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        let imgs: Vec<u8> = (0..5 * 4 * 3).map(|v| v as u8).collect();
        write_gz(&d.join(IDX_FILES[0]), &idx::encode_idx(&[5, 4, 3], &imgs));
        write_gz(&d.join(IDX_FILES[1]), &idx::encode_idx(&[5], &[0, 1, 2, 3, 4]));
        // uncompressed test files are accepted too
        std::fs::write(d.join("t10k-images-idx3-ubyte"), idx::encode_idx(&[2, 4, 3], &imgs[..24])).unwrap();
        std::fs::write(d.join("t10k-labels-idx1-ubyte"), idx::encode_idx(&[2], &[9, 8])).unwrap();
        let opts = LoadOptions { data_dir: Some(d.to_path_buf()), ..Default::default() };
        let ds = load(DatasetKind::FashionMnist, &opts).unwrap();
        assert_eq!(ds.train.count, 5);
        assert_eq!(ds.test.labels, vec![9, 8]);
        assert_eq!((ds.train.height, ds.train.width), (4, 3));
        assert_eq!(&ds.train.images[..3], &[0, 1, 2]);

        // mismatched counts
        std::fs::write(d.join("t10k-labels-idx1-ubyte"), idx::encode_idx(&[3], &[1, 2, 3])).unwrap();
        let e = load(DatasetKind::FashionMnist, &opts).unwrap_err().to_string();
        assert!(e.contains("3 labels for 2 images"), "{e}");
        // labels out of range
        std::fs::write(d.join("t10k-labels-idx1-ubyte"), idx::encode_idx(&[2], &[1, 12])).unwrap();
        let e = load(DatasetKind::FashionMnist, &opts).unwrap_err().to_string();
        assert!(e.contains("label 12"), "{e}");
        // wrong dimensions: labels given where images belong
        std::fs::write(d.join("t10k-images-idx3-ubyte"), idx::encode_idx(&[2], &[1, 2])).unwrap();
        let e = load(DatasetKind::FashionMnist, &opts).unwrap_err().to_string();
        assert!(e.contains("3 dimensions"), "{e}");
        // missing directory contents
        let empty = tempfile::tempdir().unwrap();
        let opts = LoadOptions { data_dir: Some(empty.path().to_path_buf()), ..Default::default() };
        assert!(matches!(load(DatasetKind::Mnist, &opts), Err(Error::DatasetUnavailable(_))));
    }

    #[test]
    fn reads_cifar_as_published_archive_and_as_loose_batches() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        let mut rng = crate::rng::Rng::new(1);
        let mut tar_builder = tar::Builder::new(GzEncoder::new(Vec::new(), flate2::Compression::fast()));
        let mut all_labels = Vec::new();
        let mut first_image = Vec::new();
        for (fi, name) in cifar::TRAIN_FILES.iter().chain([&cifar::TEST_FILE]).enumerate() {
            let n = 3 + fi;
            let images: Vec<u8> = (0..n * 3072).map(|_| rng.below(256) as u8).collect();
            let labels: Vec<u8> = (0..n).map(|_| rng.below(10) as u8).collect();
            if fi == 0 {
                first_image = images[..3072].to_vec();
            }
            if fi < 5 {
                all_labels.extend_from_slice(&labels);
            }
            let bytes = cifar::encode_batch(&images, &labels);
            let mut h = tar::Header::new_gnu();
            h.set_size(bytes.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            tar_builder.append_data(&mut h, format!("{}/{name}", cifar::ARCHIVE_DIR), bytes.as_slice()).unwrap();
            std::fs::create_dir_all(d.join("loose")).unwrap();
            std::fs::write(d.join("loose").join(name), &bytes).unwrap();
        }
        let gz = tar_builder.into_inner().unwrap().finish().unwrap();
        std::fs::create_dir_all(d.join("arch")).unwrap();
        std::fs::write(d.join("arch").join(cifar::ARCHIVE), &gz).unwrap();
        for sub in ["arch", "loose"] {
            let opts = LoadOptions { data_dir: Some(d.join(sub)), ..Default::default() };
            let ds = load(DatasetKind::Cifar10, &opts).unwrap();
            assert_eq!(ds.train.count, 3 + 4 + 5 + 6 + 7);
            assert_eq!(ds.test.count, 8);
            assert_eq!(ds.train.labels, all_labels);
            assert_eq!(&ds.train.images[..3072], &first_image[..]);
            assert_eq!(ds.train.x().shape(), &[25, 32, 32, 3]);
        }
        // A truncated archive is an error, not a panic.
        std::fs::write(d.join("arch").join(cifar::ARCHIVE), &gz[..gz.len() / 2]).unwrap();
        let opts = LoadOptions { data_dir: Some(d.join("arch")), ..Default::default() };
        assert!(load(DatasetKind::Cifar10, &opts).is_err());
    }
}
