//! Keras 3's native `.keras` archive: a zip of `metadata.json`, `config.json` (the model and
//! its compile settings) and `model.weights.h5` (weights and optimizer variables).

use super::{config, keras_h5};
use crate::error::{Error, Result};
use crate::nn::model::Sequential;
use std::io::{Read, Write};
use std::path::Path;

/// Largest archive member convnet reads (4 GiB).
const MAX_MEMBER: u64 = 1 << 32;

/// Serialises a built model as a `.keras` archive (entries stored uncompressed, as Keras does).
pub fn to_bytes(model: &Sequential, include_optimizer: bool) -> Result<Vec<u8>> {
    let metadata = serde_json::json!({
        "keras_version": keras_h5::KERAS_VERSION,
        "date_saved": date_string(),
        "convnet_version": env!("CARGO_PKG_VERSION"),
    });
    let mut config = config::model_config_v3(model);
    if let Some(c) = model.class_names() {
        config["convnet_class_names"] = serde_json::json!(c);
    }
    let weights = keras_h5::keras3_weights_to_bytes(model, include_optimizer)?;
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    let werr = |e: zip::result::ZipError| Error::config(format!("cannot write the archive: {e}"));
    for (name, bytes) in [
        ("metadata.json", metadata.to_string().into_bytes()),
        ("config.json", config.to_string().into_bytes()),
        ("model.weights.h5", weights),
    ] {
        zip.start_file(name, opts).map_err(werr)?;
        zip.write_all(&bytes).map_err(|e| Error::config(format!("cannot write the archive: {e}")))?;
    }
    Ok(zip.finish().map_err(werr)?.into_inner())
}

/// `YYYY-MM-DD@HH:MM:SS` (UTC) for `metadata.json`.
fn date_string() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + (m <= 2) as i64;
    format!("{y:04}-{m:02}-{d:02}@{:02}:{:02}:{:02}", rem / 3600, rem % 3600 / 60, rem % 60)
}

fn member(archive: &mut zip::ZipArchive<std::io::Cursor<&[u8]>>, name: &str, path: &Path) -> Result<Vec<u8>> {
    let mut f = archive
        .by_name(name)
        .map_err(|_| Error::format(path, format!("the archive has no {name}: not a .keras model")))?;
    if f.size() > MAX_MEMBER {
        return Err(Error::format(path, format!("{name} is {} bytes", f.size())));
    }
    // The declared size is only a hint: deflate expands at most ~1,032×, so never reserve
    // more than the compressed bytes could become.
    let plausible = f.compressed_size().saturating_mul(1100).saturating_add(4096);
    let mut buf = Vec::with_capacity(f.size().min(plausible).min(1 << 26) as usize);
    f.by_ref().take(MAX_MEMBER).read_to_end(&mut buf).map_err(|e| Error::format(path, format!("{name}: {e}")))?;
    Ok(buf)
}

/// Reads a `.keras` archive; returns the model and any warnings.
pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<(Sequential, Vec<String>)> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|e| Error::format(path, format!("not a zip archive: {e}")))?;
    let cfg = member(&mut archive, "config.json", path)?;
    let cfg: serde_json::Value =
        serde_json::from_slice(&cfg).map_err(|e| Error::format(path, format!("config.json is not JSON: {e}")))?;
    // The weights member holds every weight (at least 2 bytes a value): that bounds what the
    // config may make us allocate.
    let weights_len = archive.by_name("model.weights.h5").map(|f| f.size()).unwrap_or(0) as usize;
    let mut model = crate::nn::layers::with_weight_budget(weights_len.min(MAX_MEMBER as usize) / 2 + 1024, || {
        let mut m = config::model_from_config(&cfg)?;
        m.build()?;
        Ok(m)
    })
    .map_err(|e| Error::format(path, e.to_string()))?;
    let mut warnings = Vec::new();
    // An uncompiled Keras 3 model stores `compile_config: {}` (or null).
    let compile_config =
        cfg.get("compile_config").filter(|c| !c.is_null() && c.as_object().is_none_or(|o| !o.is_empty()));
    let compiled = match compile_config {
        Some(c) => match config::compile_from_config(&mut model, c) {
            Ok(()) => true,
            Err(e) => {
                warnings.push(format!("the model was not compiled: {e}"));
                false
            }
        },
        None => false,
    };
    let weights = member(&mut archive, "model.weights.h5", path)?;
    let f = hdf5_pure::File::from_bytes(weights).map_err(|e| Error::format(path, format!("model.weights.h5: {e}")))?;
    warnings.extend(keras_h5::load_keras3_weights(&mut model, &f, compiled, path)?);
    if let Some(names) =
        cfg.get("convnet_class_names").and_then(|v| serde_json::from_value::<Vec<String>>(v.clone()).ok())
    {
        model.set_class_names(names);
    }
    Ok((model, warnings))
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates_are_civil() {
        let d = super::date_string();
        assert_eq!(d.len(), 19);
        assert!(d.starts_with("20") && d.as_bytes()[10] == b'@', "{d}");
    }
}
