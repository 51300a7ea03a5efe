//! The binary version of CIFAR-10: `data_batch_1.bin` … `data_batch_5.bin`, `test_batch.bin`,
//! loose or inside `cifar-10-binary.tar.gz` as published.
//!
//! Each record is one label byte followed by 3,072 pixel bytes: the 1,024 red values of the
//! 32×32 image in row-major order, then green, then blue. Records are converted to NHWC.

use super::ImageSet;
use crate::error::{Error, Result};
use flate2::read::GzDecoder;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Bytes per record: label + 32·32·3 pixels.
pub const RECORD: usize = 1 + 3072;
/// Records per batch file in the published dataset.
pub const PER_FILE: usize = 10_000;
/// Names of the training batch files.
pub const TRAIN_FILES: [&str; 5] =
    ["data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"];
/// Name of the test batch file.
pub const TEST_FILE: &str = "test_batch.bin";
/// Name of the published archive.
pub const ARCHIVE: &str = "cifar-10-binary.tar.gz";
/// Directory inside the archive.
pub const ARCHIVE_DIR: &str = "cifar-10-batches-bin";

/// Parses the records of one batch file into `set` (appending).
pub fn parse_batch(bytes: &[u8], path: &Path, set: &mut ImageSet) -> Result<()> {
    if bytes.is_empty() || !bytes.len().is_multiple_of(RECORD) {
        return Err(Error::format(
            path,
            format!(
                "a CIFAR-10 batch holds whole records of {RECORD} bytes; this file has {} bytes ({} records and {} bytes over)",
                bytes.len(),
                bytes.len() / RECORD,
                bytes.len() % RECORD
            ),
        ));
    }
    set.images.reserve(bytes.len() / RECORD * 3072);
    for (i, rec) in bytes.chunks_exact(RECORD).enumerate() {
        let label = rec[0];
        if label > 9 {
            return Err(Error::format(path, format!("record {i} has label {label} (CIFAR-10 labels are 0–9)")));
        }
        set.labels.push(label);
        let px = &rec[1..];
        for p in 0..1024 {
            set.images.extend_from_slice(&[px[p], px[1024 + p], px[2048 + p]]);
        }
        set.count += 1;
    }
    Ok(())
}

/// An empty set of 32×32 RGB images, for [`parse_batch`] to fill.
pub fn empty_set() -> ImageSet {
    ImageSet { images: Vec::new(), labels: Vec::new(), count: 0, height: 32, width: 32, channels: 3 }
}

/// Finds the batch files in `dir` (or its `cifar-10-batches-bin/`), if all six are there.
pub fn find_batches(dir: &Path) -> Option<PathBuf> {
    [dir.to_path_buf(), dir.join(ARCHIVE_DIR)]
        .into_iter()
        .find(|d| TRAIN_FILES.iter().chain([&TEST_FILE]).all(|f| d.join(f).is_file()))
}

fn read_file(path: &Path) -> Result<Vec<u8>> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if meta.len() > (PER_FILE * RECORD * 8) as u64 {
        return Err(Error::format(path, format!("{} bytes is far larger than a CIFAR-10 batch", meta.len())));
    }
    std::fs::read(path).map_err(|e| Error::io(path, e))
}

/// Loads (train, test) from the six batch files in `dir`.
pub fn load_dir(dir: &Path) -> Result<(ImageSet, ImageSet)> {
    let mut train = empty_set();
    let mut test = empty_set();
    for f in TRAIN_FILES {
        let p = dir.join(f);
        parse_batch(&read_file(&p)?, &p, &mut train)?;
    }
    let p = dir.join(TEST_FILE);
    parse_batch(&read_file(&p)?, &p, &mut test)?;
    Ok((train, test))
}

/// Loads (train, test) from the published `cifar-10-binary.tar.gz`, streaming it.
pub fn load_archive(path: &Path) -> Result<(ImageSet, ImageSet)> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    read_archive(std::io::BufReader::new(file), path)
}

/// Reads (train, test) from the bytes of a `cifar-10-binary.tar.gz`; `path` names it in errors.
pub fn read_archive<R: Read>(reader: R, path: &Path) -> Result<(ImageSet, ImageSet)> {
    let mut archive = tar::Archive::new(GzDecoder::new(reader));
    let mut train_parts: Vec<Option<Vec<u8>>> = vec![None; 5];
    let mut test: Option<Vec<u8>> = None;
    let bad = |e: std::io::Error| Error::format(path, format!("not a readable tar.gz archive: {e}"));
    for entry in archive.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let name = entry.path().map_err(bad)?.to_string_lossy().into_owned();
        let base = name.rsplit('/').next().unwrap_or(&name).to_string();
        let slot = if base == TEST_FILE {
            Some(&mut test)
        } else {
            TRAIN_FILES.iter().position(|f| *f == base).map(|i| &mut train_parts[i])
        };
        if let Some(slot) = slot {
            let size = entry.header().size().map_err(bad)? as usize;
            if size > PER_FILE * RECORD * 8 {
                return Err(Error::format(path, format!("archive member {name} is {size} bytes, far too large")));
            }
            let mut buf = Vec::with_capacity(size.min(PER_FILE * RECORD));
            entry.read_to_end(&mut buf).map_err(bad)?;
            *slot = Some(buf);
        }
    }
    let mut train = empty_set();
    for (i, part) in train_parts.iter().enumerate() {
        let bytes =
            part.as_ref().ok_or_else(|| Error::format(path, format!("the archive has no {}", TRAIN_FILES[i])))?;
        parse_batch(bytes, &path.join(TRAIN_FILES[i]), &mut train)?;
    }
    let bytes = test.ok_or_else(|| Error::format(path, format!("the archive has no {TEST_FILE}")))?;
    let mut test_set = empty_set();
    parse_batch(&bytes, &path.join(TEST_FILE), &mut test_set)?;
    Ok((train, test_set))
}

/// Encodes NHWC 32×32×3 images and labels as CIFAR-10 binary records (for tests and tools).
pub fn encode_batch(images: &[u8], labels: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(labels.len() * RECORD);
    for (i, &l) in labels.iter().enumerate() {
        out.push(l);
        let img = &images[i * 3072..(i + 1) * 3072];
        for c in 0..3 {
            for p in 0..1024 {
                out.push(img[p * 3 + c]);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_become_nhwc() {
        let mut rec = vec![7u8];
        rec.extend((0..1024).map(|p| (p % 251) as u8)); // red
        rec.extend(std::iter::repeat_n(100u8, 1024)); // green
        rec.extend(std::iter::repeat_n(200u8, 1024)); // blue
        let mut set = empty_set();
        parse_batch(&rec, Path::new("b"), &mut set).unwrap();
        assert_eq!(set.labels, vec![7]);
        assert_eq!(&set.images[..6], &[0, 100, 200, 1, 100, 200]);
        assert_eq!(encode_batch(&set.images, &set.labels), rec);
    }

    #[test]
    fn bad_batches_are_rejected() {
        let mut set = empty_set();
        assert!(parse_batch(&[0u8; RECORD + 5], Path::new("b"), &mut set)
            .unwrap_err()
            .to_string()
            .contains("whole records"));
        let mut rec = vec![12u8];
        rec.extend(vec![0u8; 3072]);
        assert!(parse_batch(&rec, Path::new("b"), &mut set).unwrap_err().to_string().contains("label 12"));
        assert!(parse_batch(&[], Path::new("b"), &mut set).is_err());
    }
}
