//! Model files: save and load by format, chosen from the extension when saving and from the
//! file's first bytes when loading; every write is atomic.

pub mod config;
pub mod native;
pub mod toml_model;

use crate::error::{Error, Result};
use crate::model::Sequential;
use std::io::Write;
use std::path::{Path, PathBuf};

/// A model file format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// convnet's safetensors file (`.safetensors`, or any other extension).
    Native,
}

impl Format {
    /// The format `save_model` uses for `path`, from its extension.
    pub fn for_path(_path: &Path) -> Format {
        Format::Native
    }
}

/// Saves a built model (architecture, weights, compile settings, optimizer state) to `path`.
pub fn save_model(model: &Sequential, path: &Path) -> Result<()> {
    if model.layers().is_empty() || !model.is_built() {
        return Err(Error::State("only a built model can be saved (build, fit or predict it first)".into()));
    }
    match Format::for_path(path) {
        Format::Native => atomic_write(path, &native::to_bytes(model)?),
    }
}

/// Loads a model saved by [`save_model`].
pub fn load_model(path: &Path) -> Result<Sequential> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    if native::sniff(&bytes) {
        return native::from_bytes(&bytes, path);
    }
    Err(Error::format(path, "not a model file convnet can read (expected a convnet .safetensors model)"))
}

/// Where a model named on a command line came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ModelSource {
    /// A built-in preset (`lenet5`, `mnist-cnn`, `cifar10-cnn`).
    Preset(String),
    /// A TOML model description (untrained).
    Toml(PathBuf),
    /// A saved model (trained weights).
    File(PathBuf),
}

/// Opens a model named by `spec`: a preset name, a `.toml` model description, or a saved
/// model file.
pub fn open_model(spec: &str) -> Result<(Sequential, ModelSource)> {
    let path = Path::new(spec);
    if !path.exists() {
        if let Ok(m) = crate::presets::preset(spec) {
            return Ok((m, ModelSource::Preset(spec.to_ascii_lowercase().replace('_', "-"))));
        }
        return Err(Error::config(format!(
            "{spec:?} is neither a preset ({}) nor an existing file",
            crate::presets::NAMES.join(", ")
        )));
    }
    if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("toml")) {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        return Ok((toml_model::model_from_toml(&text, path)?, ModelSource::Toml(path.to_path_buf())));
    }
    Ok((load_model(path)?, ModelSource::File(path.to_path_buf())))
}

/// Writes `bytes` to `path` atomically: a temporary file in the same directory, flushed to
/// disk, then renamed over the target. A crash or a full disk never leaves a partial file
/// where the old one was.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<()> {
    atomic_write_with(path, |f| f.write_all(bytes))
}

/// Like [`atomic_write`], with the content produced by `write`.
pub fn atomic_write_with(path: &Path, write: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| Error::io(path, std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file path")))?;
    let tmp = dir.join(format!(".{}.tmp-{}", name.to_string_lossy(), std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        write(&mut f)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        if let Ok(d) = std::fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    result.map_err(|e: std::io::Error| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(path, e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::presets;
    use crate::tensor::Tensor;

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

    #[test]
    fn atomic_write_keeps_the_old_file_on_failure() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("m.bin");
        atomic_write(&p, b"old").unwrap();
        let e = atomic_write_with(&p, |f| {
            f.write_all(b"partial")?;
            Err(std::io::Error::other("disk full"))
        });
        assert!(e.is_err());
        assert_eq!(std::fs::read(&p).unwrap(), b"old");
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 1, "no temporary file left");
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
