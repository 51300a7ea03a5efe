//! Files: models saved and loaded by format — chosen from the extension when saving and from
//! the file's first bytes when loading — one file per format (Keras HDF5, Keras 3 archive,
//! convnet's safetensors, TOML model descriptions, Keras' model and training configs), and the
//! atomic write that every file convnet writes goes through.

pub mod atomic;
pub mod config;
pub mod keras_h5;
pub mod keras_v3;
pub mod native;
pub mod onnx;
pub mod toml_model;

pub use atomic::{atomic_write, atomic_write_with};

use crate::error::{Error, Result};
use crate::nn::model::Sequential;
use std::path::Path;

/// A model file format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Keras' HDF5 model file (`.h5`, `.hdf5`), read by Keras 2 and Keras 3.
    KerasH5,
    /// Keras 3's `.keras` archive.
    Keras,
    /// convnet's safetensors file (`.safetensors`).
    Native,
}

impl Format {
    /// The format `save_model` uses for `path`, from its extension (`.h5`/`.hdf5`, `.keras`,
    /// `.safetensors`).
    pub fn for_path(path: &Path) -> Result<Format> {
        let ext = path.extension().map(|e| e.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
        match ext.as_str() {
            "h5" | "hdf5" => Ok(Format::KerasH5),
            "keras" => Ok(Format::Keras),
            "safetensors" => Ok(Format::Native),
            _ => Err(Error::config(format!(
                "{}: the file name must end in .h5 (Keras HDF5), .keras (Keras 3) or .safetensors (convnet)",
                path.display()
            ))),
        }
    }

    /// The format of a file's bytes, from its first bytes.
    pub fn sniff(bytes: &[u8]) -> Option<Format> {
        if bytes.starts_with(b"\x89HDF\r\n\x1a\n") || hdf5_pure::is_hdf5_bytes(bytes) {
            Some(Format::KerasH5)
        } else if bytes.starts_with(b"PK\x03\x04") {
            Some(Format::Keras)
        } else if native::sniff(bytes) {
            Some(Format::Native)
        } else {
            None
        }
    }
}

/// Keras' `model.save(path)` on a model, as a Keras user first writes it (the model lives
/// below the file formats, so the method comes with this trait, in the prelude).
pub trait SaveModel {
    /// Saves the model to `path` in the format its extension names (see [`save_model`]).
    fn save(&self, path: impl AsRef<Path>) -> Result<()>;
}

impl SaveModel for Sequential {
    fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        save_model(self, path.as_ref())
    }
}

/// Options of [`save_model_with`].
#[derive(Clone, Copy, Debug)]
pub struct SaveOptions {
    /// Save the optimizer's variables so training can resume (Keras' `include_optimizer`).
    pub include_optimizer: bool,
}

impl Default for SaveOptions {
    fn default() -> Self {
        SaveOptions { include_optimizer: true }
    }
}

/// Saves a built model (architecture, weights, compile settings, optimizer state) to `path`,
/// in the format its extension names. The write is atomic.
pub fn save_model(model: &Sequential, path: &Path) -> Result<()> {
    save_model_with(model, path, SaveOptions::default())
}

/// [`save_model`] with options.
pub fn save_model_with(model: &Sequential, path: &Path, opts: SaveOptions) -> Result<()> {
    if model.layers().is_empty() || !model.is_built() {
        return Err(Error::State("only a built model can be saved (build, fit or predict it first)".into()));
    }
    let bytes = match Format::for_path(path)? {
        Format::KerasH5 => keras_h5::to_bytes(model, opts.include_optimizer)?,
        Format::Keras => keras_v3::to_bytes(model, opts.include_optimizer)?,
        Format::Native => native::to_bytes(model, opts.include_optimizer)?,
    };
    atomic_write(path, &bytes)
}

/// Loads a model file of any supported format, recognised by its content.
pub fn load_model(path: &Path) -> Result<Sequential> {
    Ok(load_model_with_warnings(path)?.0)
}

/// Like [`load_model`], also returning warnings (an optimizer state that could not be
/// restored, a training config that could not be applied).
pub fn load_model_with_warnings(path: &Path) -> Result<(Sequential, Vec<String>)> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    model_from_bytes(bytes, path)
}

/// Reads a model of any supported format from bytes (recognised by their content); `path`
/// names them in errors. Returns the model and any warnings.
pub fn model_from_bytes(bytes: Vec<u8>, path: &Path) -> Result<(Sequential, Vec<String>)> {
    // The damage check looks only at the file's frame (its declared length, its zip directory),
    // so it runs only once a read has failed, on a copy of the few bytes it needs.
    let frame = Frame::of(&bytes);
    let read = match Format::sniff(&bytes) {
        Some(Format::KerasH5) => keras_h5::from_bytes(bytes, path),
        Some(Format::Keras) => keras_v3::from_bytes(&bytes, path),
        Some(Format::Native) => native::from_bytes(&bytes, path).map(|m| (m, Vec::new())),
        None => Err(Error::format(
            path,
            "not a model file convnet can read (expected Keras .h5, Keras .keras or convnet .safetensors)",
        )),
    };
    read.map_err(|e| frame.diagnose(e, path, None))
}

/// What a failed read needs to tell a truncated file from a wrong one: the format its first
/// bytes announce, and whether its length falls short of what its own header declares.
#[derive(Clone, Copy, Debug)]
pub struct Frame {
    format: Option<Format>,
    truncated: bool,
}

impl Frame {
    /// Reads the frame of a file's bytes: HDF5's superblock end-of-file address, the zip
    /// archive's end-of-central-directory record, safetensors' header length and data offsets.
    pub fn of(bytes: &[u8]) -> Frame {
        // A safetensors file cut inside its header no longer passes `sniff`: its declared
        // header length runs past the end. It is still recognisable by its first bytes.
        let cut_header = bytes.len() > 8
            && bytes[8] == b'{'
            && u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) > (bytes.len() - 8) as u64
            && u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) < 1 << 30;
        let format = Format::sniff(bytes).or(cut_header.then_some(Format::Native));
        let truncated = match format {
            Some(Format::KerasH5) => hdf5_declared_len(bytes).is_some_and(|n| (bytes.len() as u64) < n),
            // A zip archive ends with its directory ("PK\x05\x06" within the last 64 KiB + 22 bytes).
            Some(Format::Keras) => {
                let tail = &bytes[bytes.len().saturating_sub(65_557)..];
                !tail.windows(4).any(|w| w == b"PK\x05\x06")
            }
            Some(Format::Native) => safetensors_declared_len(bytes).is_none_or(|n| (bytes.len() as u64) < n),
            None => false,
        };
        Frame { format, truncated }
    }

    /// `err`, or when the file is cut short, a message that says so and what the file was
    /// expected to be (`expected` overrides the format's name, e.g. "convnet checkpoint").
    pub fn diagnose(self, err: Error, path: &Path, expected: Option<&str>) -> Error {
        if !self.truncated {
            return err;
        }
        let what = expected.unwrap_or(match self.format {
            Some(Format::KerasH5) => "Keras HDF5 model (.h5)",
            Some(Format::Keras) => "Keras 3 archive (.keras)",
            _ => "convnet safetensors model",
        });
        // The reader's own complaint (a missing model_config, a missing zip directory) would
        // send the user after the wrong cause, so only the frame's finding is said.
        drop(err);
        let how = match self.format {
            Some(Format::Keras) => "its zip directory, written last, is missing",
            _ => "it ends before the length its header declares",
        };
        Error::format(
            path,
            format!(
                "this {what} is truncated or damaged: {how} (an interrupted copy or download, or a full disk?); \
                 copy or save it again"
            ),
        )
    }
}

/// The file length an HDF5 superblock declares (its end-of-file address), if it can be read.
fn hdf5_declared_len(b: &[u8]) -> Option<u64> {
    let start = (0..b.len()).step_by(512).find(|&o| b[o..].starts_with(b"\x89HDF\r\n\x1a\n"))?;
    let sb = &b[start..];
    let version = *sb.get(8)?;
    let (offsets, eof_at) = match version {
        0 => (*sb.get(13)? as usize, 24 + 2 * *sb.get(13)? as usize),
        1 => (*sb.get(13)? as usize, 28 + 2 * *sb.get(13)? as usize),
        2 | 3 => (*sb.get(9)? as usize, 12 + 2 * *sb.get(9)? as usize),
        _ => return None,
    };
    if !(1..=8).contains(&offsets) {
        return None;
    }
    let field = sb.get(eof_at..eof_at + offsets)?;
    let mut n = [0u8; 8];
    n[..offsets].copy_from_slice(field);
    Some(u64::from_le_bytes(n) + start as u64)
}

/// The file length a safetensors header declares (8 + header + the largest data end), or
/// `None` when the header itself is cut short or unreadable.
fn safetensors_declared_len(b: &[u8]) -> Option<u64> {
    let n = u64::from_le_bytes(b.get(..8)?.try_into().ok()?);
    let header = b.get(8..8usize.checked_add(usize::try_from(n).ok()?)?)?;
    let v: serde_json::Value = serde_json::from_slice(header).ok()?;
    let end = v.as_object()?.values().filter_map(|t| t.get("data_offsets")?.get(1)?.as_u64()).max().unwrap_or(0);
    Some(8 + n + end)
}

/// Saves only the weights (Keras' `save_weights`): Keras 3's layout for `*.weights.h5`,
/// Keras 2's for other `.h5` names.
pub fn save_weights(model: &Sequential, path: &Path) -> Result<()> {
    if !model.is_built() {
        return Err(Error::State("only a built model's weights can be saved".into()));
    }
    atomic_write(path, &keras_h5::save_weights_bytes(model, path)?)
}

/// Loads weights saved by [`save_weights`], by Keras' `save_weights`, or from a whole Keras
/// `.h5` model file, into `model` (which must have the same architecture).
pub fn load_weights(model: &mut Sequential, path: &Path) -> Result<()> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let frame = Frame::of(&bytes);
    keras_h5::load_weights_bytes(model, bytes, path).map_err(|e| frame.diagnose(e, path, Some("Keras HDF5 file")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::presets;
    use crate::tensor::Tensor;
    use std::io::Write;

    /// Keras' first guess compiles and round-trips: `model.save(path)`, `convnet::load_model(path)`.
    #[test]
    fn save_and_load_as_keras_users_write_them() {
        use crate::prelude::*;
        let tmp = tempfile::tempdir().unwrap();
        let mut model = crate::presets::preset("lenet5").unwrap();
        model.compile(Loss::CategoricalCrossentropy, Adam::default(), &[Metric::Accuracy]).unwrap();
        model.build().unwrap();
        let p = tmp.path().join("m.keras");
        model.save(&p).unwrap();
        let back = crate::load_model(&p).unwrap();
        let _ = crate::load_model("no-such-file.keras").unwrap_err(); // a &str works, as in Keras
        assert_eq!(back.get_weights(), model.get_weights());
        assert!(model.save(tmp.path().join("m.txt")).is_err());
    }

    /// A graph model, trained a few steps, comes back from each format with its wiring, its
    /// weights, its optimizer state (the next step is the same) and its predictions.
    #[test]
    fn functional_models_round_trip_through_every_format() {
        use crate::prelude::*;
        let tmp = tempfile::tempdir().unwrap();
        let mut m = crate::nn::model::functional_tests_residual(9);
        m.compile(Loss::CategoricalCrossentropy, Adam::default(), &[Metric::Accuracy]).unwrap();
        let mut rng = crate::Rng::new(4);
        let x = Tensor::from_vec(&[6, 6, 6, 2], (0..432).map(|_| rng.uniform_range(-1.0, 1.0)).collect()).unwrap();
        let y = crate::data::to_categorical(&[0, 1, 2, 0, 1, 2], 3);
        for _ in 0..2 {
            m.train_on_batch(&x, &y).unwrap();
        }
        let w = tmp.path().join("g.weights.h5");
        save_weights(&m, &w).unwrap();
        let mut back = crate::nn::model::functional_tests_residual(1);
        load_weights(&mut back, &w).unwrap();
        assert_eq!(back.get_weights(), m.get_weights(), "weights file");
        let names = ["g.keras", "g.h5", "g.safetensors"];
        for name in names {
            save_model(&m, &tmp.path().join(name)).unwrap();
        }
        let before = m.predict(&x, 6).unwrap();
        m.train_on_batch(&x, &y).unwrap();
        for name in names {
            let mut back = load_model(tmp.path().join(name)).unwrap();
            assert_eq!(back.graph(), m.graph(), "{name}");
            assert_eq!(back.predict(&x, 6).unwrap(), before, "{name}");
            back.train_on_batch(&x, &y).unwrap();
            assert_eq!(back.get_weights(), m.get_weights(), "{name}: the next step from the file");
        }
    }

    /// A file cut short is called truncated, with the format it was meant to be, for each
    /// format; a whole file of the wrong kind keeps its own message.
    #[test]
    fn truncated_files_are_diagnosed_as_such() {
        let tmp = tempfile::tempdir().unwrap();
        let mut m = presets::preset("lenet5").unwrap();
        m.compile(crate::Loss::CategoricalCrossentropy, crate::Adam::default(), &[crate::Metric::Accuracy]).unwrap();
        m.build().unwrap();
        for (name, what) in [
            ("m.h5", "Keras HDF5 model (.h5)"),
            ("m.keras", "Keras 3 archive (.keras)"),
            ("m.safetensors", "convnet safetensors model"),
        ] {
            let p = tmp.path().join(name);
            save_model(&m, &p).unwrap();
            let bytes = std::fs::read(&p).unwrap();
            assert!(!Frame::of(&bytes).truncated, "{name}: a whole file is not truncated");
            for keep in [bytes.len() / 2, bytes.len() * 9 / 10, 4096.min(bytes.len() / 3)] {
                let e = model_from_bytes(bytes[..keep].to_vec(), &p).map(|_| ()).expect_err(name).to_string();
                assert!(e.contains(&format!("this {what} is truncated or damaged")), "{name} cut at {keep}: {e}");
            }
        }
        let e = model_from_bytes(b"\x89HDF\r\n\x1a\nthis is not really hdf5".to_vec(), Path::new("j.h5"));
        assert!(!e.unwrap_err().to_string().contains("truncated"));
    }

    #[test]
    fn native_round_trip_predicts_bit_identically_for_every_preset() {
        let tmp = tempfile::tempdir().unwrap();
        for name in presets::NAMES {
            let mut m = presets::preset(name).unwrap();
            m.compile(crate::Loss::CategoricalCrossentropy, crate::Adam::default(), &[crate::Metric::Accuracy])
                .unwrap();
            let shape = m.input_shape().unwrap().to_vec();
            let mut rng = crate::Rng::new(7);
            let mut xs = vec![2];
            xs.extend(&shape);
            let n: usize = xs.iter().product();
            let x = Tensor::from_vec(&xs, (0..n).map(|_| rng.uniform()).collect()).unwrap();
            let y = crate::data::to_categorical(&[1, 7], 10);
            m.train_on_batch(&x, &y).unwrap();
            m.set_class_names((0..10).map(|i| format!("c{i}")).collect());
            let p = tmp.path().join(format!("{name}.safetensors"));
            save_model(&m, &p).unwrap();
            let mut back = load_model(&p).unwrap();
            assert_eq!(m.predict(&x, 2).unwrap(), back.predict(&x, 2).unwrap(), "{name}");
            assert_eq!(back.optimizer_state(), m.optimizer_state());
            assert_eq!(back.class_names(), m.class_names());
            // Training continues identically from the loaded state (given the same dropout
            // generator, which a model file does not hold).
            back.set_rng(m.rng().clone());
            let a = m.train_on_batch(&x, &y).unwrap();
            let b = back.train_on_batch(&x, &y).unwrap();
            assert_eq!(a, b, "{name}");
        }
    }

    /// A small model whose layers carry custom names, permuted against their positions.
    fn renamed_model() -> Sequential {
        use crate::nn::layers::{Conv2D, Dense, Flatten, MaxPooling2D};
        let mut m = Sequential::new().seed(11);
        m.add(Conv2D::new(2, 3).name("c1").activation(crate::Activation::Relu).input_shape([6, 6, 1]));
        m.add(MaxPooling2D::new(2).name("pool"));
        m.add(Flatten::new().name("flatten_9"));
        m.add(Dense::new(5).name("dense_1").activation(crate::Activation::Tanh));
        m.add(Dense::new(3).name("dense").activation(crate::Activation::Softmax));
        m.compile(crate::Loss::CategoricalCrossentropy, crate::Adam::default(), &[]).unwrap();
        m
    }

    fn batch() -> (Tensor, Tensor) {
        let mut rng = crate::Rng::new(3);
        let x = Tensor::from_vec(&[4, 6, 6, 1], (0..144).map(|_| rng.uniform()).collect()).unwrap();
        (x, crate::data::to_categorical(&[0, 2, 1, 2], 3))
    }

    /// Keras 3 finds a layer's weights by class and position (`layers/dense` is the first
    /// Dense, whatever it is called), so convnet writes and reads them there.
    #[test]
    fn keras3_layout_addresses_layers_by_class_and_position() {
        let tmp = tempfile::tempdir().unwrap();
        let mut m = renamed_model();
        let (x, y) = batch();
        m.train_on_batch(&x, &y).unwrap();
        let p = tmp.path().join("m.weights.h5");
        save_weights(&m, &p).unwrap();
        let f = hdf5_pure::File::from_bytes(std::fs::read(&p).unwrap()).unwrap();
        let mut groups = f.group("layers").unwrap().groups().unwrap();
        groups.sort();
        assert_eq!(groups, ["conv2d", "dense", "dense_1", "flatten", "max_pooling2d"]);
        let first_dense = keras_h5::read_tensor(&f, "layers/dense/vars/0", &p).unwrap();
        assert_eq!(first_dense.shape(), [8, 5], "layers/dense is the first Dense (named dense_1)");
        assert_eq!(first_dense.data(), m.layers()[3].params()[0].value.as_slice());

        let archive = tmp.path().join("m.keras");
        save_model(&m, &archive).unwrap();
        let mut back = load_model(&archive).unwrap();
        let names: Vec<&str> = back.layers().iter().map(|l| l.name()).collect();
        assert_eq!(names, ["c1", "pool", "flatten_9", "dense_1", "dense"]);
        assert_eq!(back.predict(&x, 4).unwrap(), m.predict(&x, 4).unwrap());
        assert_eq!(back.optimizer_state(), m.optimizer_state());

        // Weights that do not fit are refused, naming the layer; never matched by a guess.
        let mut other = renamed_model();
        other.layers_mut()[0] = Box::new(crate::nn::layers::Conv2D::new(4, 3).name("c1").input_shape([6, 6, 1]));
        let e = load_weights(&mut other, &p).unwrap_err().to_string();
        assert!(e.contains("c1/kernel") && e.contains("[3, 3, 1, 2]"), "{e}");
        let mut shorter = Sequential::new();
        shorter.add(crate::nn::layers::Flatten::new().input_shape([6, 6, 1]));
        shorter.add(crate::nn::layers::Dense::new(3));
        let e = load_weights(&mut shorter, &p).unwrap_err().to_string();
        assert!(e.contains("does not have") && e.contains("conv2d"), "{e}");
    }

    #[test]
    fn keras_snake_case_matches_keras() {
        for (class, want) in [
            ("Conv2D", "conv2d"),
            ("MaxPooling2D", "max_pooling2d"),
            ("ReLU", "re_lu"),
            ("LeakyReLU", "leaky_re_lu"),
            ("PReLU", "p_re_lu"),
            ("ELU", "elu"),
            ("Conv2DTranspose", "conv2d_transpose"),
            ("BatchNormalization", "batch_normalization"),
            ("UpSampling2D", "up_sampling2d"),
            ("SpatialDropout2D", "spatial_dropout2d"),
            ("ABcDe", "a_bc_de"),
            ("HTMLParser", "html_parser"),
            ("getHTTPResponseCode", "get_http_response_code"),
        ] {
            assert_eq!(keras_h5::snake_case(class), want, "{class}");
        }
    }

    /// `trainable=False` survives every format, and so does the optimizer state, which covers
    /// the trainable weights only; training resumes identically.
    #[test]
    fn frozen_layers_round_trip_in_every_format() {
        let tmp = tempfile::tempdir().unwrap();
        let (x, y) = batch();
        for ext in ["h5", "keras", "safetensors"] {
            let mut m = renamed_model();
            m.build().unwrap();
            m.layers_mut()[0].set_trainable(false);
            m.compile(crate::Loss::CategoricalCrossentropy, crate::Adam::default(), &[]).unwrap();
            m.train_on_batch(&x, &y).unwrap();
            m.train_on_batch(&x, &y).unwrap();
            let p = tmp.path().join(format!("frozen.{ext}"));
            save_model(&m, &p).unwrap();
            let (mut back, warnings) = load_model_with_warnings(&p).unwrap();
            assert!(warnings.is_empty(), "{ext}: {warnings:?}");
            let flags: Vec<bool> = back.layers().iter().map(|l| l.trainable()).collect();
            assert_eq!(flags, [false, true, true, true, true], "{ext}");
            assert_eq!(back.optimizer_state(), m.optimizer_state(), "{ext}");
            assert_eq!(back.optimizer_state().slots.len(), 4, "{ext}");
            back.set_rng(m.rng().clone());
            m.train_on_batch(&x, &y).unwrap();
            back.train_on_batch(&x, &y).unwrap();
            assert_eq!(back.get_weights(), m.get_weights(), "{ext}");
        }
    }

    /// A writer that dies between its steps (here: a panic after half the model is written)
    /// leaves the previous model whole and loadable; a full disk is reported as such.
    #[test]
    fn a_writer_killed_mid_save_leaves_the_old_model() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("m.safetensors");
        let mut old = crate::presets::lenet5();
        old.build().unwrap();
        save_model(&old, &p).unwrap();
        let mut new = crate::presets::lenet5().seed(99);
        new.build().unwrap();
        let bytes = native::to_bytes(&new, false).unwrap();
        let died = std::panic::catch_unwind(|| {
            let _ = atomic_write_with(&p, |f| {
                f.write_all(&bytes[..bytes.len() / 2])?;
                panic!("killed between steps");
            });
        });
        assert!(died.is_err());
        assert_eq!(load_model(&p).unwrap().get_weights(), old.get_weights(), "the old model is intact");

        let e = atomic_write_with(&p, |f| {
            f.write_all(&bytes[..100])?;
            Err(std::io::Error::from_raw_os_error(28))
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("No space left on device") && e.contains("previous file is unchanged"), "{e}");
        assert_eq!(load_model(&p).unwrap().get_weights(), old.get_weights());
    }

    #[test]
    fn garbage_files_are_errors() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("x.safetensors");
        std::fs::write(&p, b"hello world, not a model").unwrap();
        assert!(load_model(&p).is_err());
        std::fs::write(&p, [8u8, 0, 0, 0, 0, 0, 0, 0, b'{', b'}']).unwrap();
        assert!(load_model(&p).is_err());
        assert!(load_model(&tmp.path().join("missing")).is_err());
    }
}
