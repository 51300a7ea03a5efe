//! The IDX format of MNIST and Fashion-MNIST (raw or gzip-compressed).
//!
//! Header: two zero bytes, a type byte (0x08 = unsigned byte, the only one these datasets
//! use), the number of dimensions, then each dimension as a big-endian u32. The values follow.
//! Allocation is bounded by the data actually present, never by the header alone.

use crate::error::{Error, Result};
use flate2::read::GzDecoder;
use std::io::{BufReader, Read};
use std::path::Path;

/// Largest array the reader accepts (1 GiB of values).
const MAX_VALUES: usize = 1 << 30;

/// An IDX array of unsigned bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdxArray {
    /// Dimensions, outermost first.
    pub dims: Vec<usize>,
    /// Values in row-major order.
    pub data: Vec<u8>,
}

/// Reads an IDX file, decompressing it first if it is gzip (detected by its magic bytes).
pub fn read_idx_file(path: &Path) -> Result<IdxArray> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut reader = BufReader::new(file);
    let head = {
        use std::io::BufRead;
        reader.fill_buf().map_err(|e| Error::io(path, e))?.get(..2).map(|h| h.to_vec())
    };
    if head.as_deref() == Some(&[0x1f, 0x8b]) {
        parse_idx(GzDecoder::new(reader), path)
    } else {
        parse_idx(reader, path)
    }
}

/// Reads an IDX array from bytes (raw or gzip).
pub fn parse_idx_bytes(bytes: &[u8], path: &Path) -> Result<IdxArray> {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        parse_idx(GzDecoder::new(bytes), path)
    } else {
        parse_idx(bytes, path)
    }
}

/// Reads an uncompressed IDX stream; `path` names it in errors.
pub fn parse_idx<R: Read>(mut reader: R, path: &Path) -> Result<IdxArray> {
    let io = |e: std::io::Error| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            Error::format(path, "truncated IDX header")
        } else if e.kind() == std::io::ErrorKind::InvalidInput || e.kind() == std::io::ErrorKind::InvalidData {
            Error::format(path, format!("corrupt compressed data: {e}"))
        } else {
            Error::io(path, e)
        }
    };
    let mut magic = [0u8; 4];
    reader.read_exact(&mut magic).map_err(io)?;
    if magic[0] != 0 || magic[1] != 0 {
        return Err(Error::format(
            path,
            format!(
                "not an IDX file (magic bytes {:02x} {:02x} {:02x} {:02x}; expected 00 00 08 <dims>)",
                magic[0], magic[1], magic[2], magic[3]
            ),
        ));
    }
    if magic[2] != 0x08 {
        return Err(Error::format(
            path,
            format!("IDX value type 0x{:02x} is not supported (only unsigned bytes, 0x08)", magic[2]),
        ));
    }
    let ndim = magic[3] as usize;
    if ndim == 0 || ndim > 4 {
        return Err(Error::format(path, format!("IDX file with {ndim} dimensions (expected 1 to 4)")));
    }
    let mut dims = Vec::with_capacity(ndim);
    let mut total: usize = 1;
    for _ in 0..ndim {
        let mut b = [0u8; 4];
        reader.read_exact(&mut b).map_err(io)?;
        let d = u32::from_be_bytes(b) as usize;
        total = total
            .checked_mul(d)
            .filter(|&t| t <= MAX_VALUES)
            .ok_or_else(|| Error::format(path, format!("IDX dimensions {dims:?}×{d} are absurdly large")))?;
        dims.push(d);
    }
    let mut data = Vec::with_capacity(total.min(1 << 24));
    let got = reader.by_ref().take(total as u64).read_to_end(&mut data).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::InvalidInput | std::io::ErrorKind::InvalidData => {
            Error::format(path, format!("corrupt or truncated compressed data: {e}"))
        }
        _ => Error::io(path, e),
    })?;
    if got < total {
        return Err(Error::format(
            path,
            format!("truncated: the header promises {total} values for dimensions {dims:?}, the file holds {got}"),
        ));
    }
    let mut extra = [0u8; 1];
    if reader.read(&mut extra).map_err(|e| Error::io(path, e))? != 0 {
        return Err(Error::format(
            path,
            format!("trailing bytes after the {total} values that dimensions {dims:?} hold"),
        ));
    }
    Ok(IdxArray { dims, data })
}

/// Encodes `data` with `dims` as IDX bytes (for tests and for writing datasets).
pub fn encode_idx(dims: &[usize], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 0x08, dims.len() as u8];
    for &d in dims {
        out.extend_from_slice(&(d as u32).to_be_bytes());
    }
    out.extend_from_slice(data);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::GzEncoder;
    use std::io::Write;

    fn gz(bytes: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn reads_raw_and_gzip() {
        let bytes = encode_idx(&[2, 3], &[1, 2, 3, 4, 5, 6]);
        let p = Path::new("t");
        let a = parse_idx_bytes(&bytes, p).unwrap();
        assert_eq!(a.dims, vec![2, 3]);
        assert_eq!(a.data, vec![1, 2, 3, 4, 5, 6]);
        assert_eq!(parse_idx_bytes(&gz(&bytes), p).unwrap(), a);
    }

    #[test]
    fn malformed_files_give_their_errors() {
        let p = Path::new("bad.idx");
        let good = encode_idx(&[2, 3], &[0; 6]);
        let msg = |b: &[u8]| parse_idx_bytes(b, p).unwrap_err().to_string();
        assert!(msg(&[1, 2, 8, 1, 0, 0, 0, 0]).contains("not an IDX file"));
        assert!(msg(&[0, 0, 0x0d, 1, 0, 0, 0, 1, 0, 0, 0, 0]).contains("not supported"));
        assert!(msg(&[0, 0, 8]).contains("truncated IDX header"));
        assert!(msg(&good[..good.len() - 1]).contains("truncated"));
        let mut long = good.clone();
        long.push(9);
        assert!(msg(&long).contains("trailing"));
        // A header claiming 4 GiB of values fails before any large allocation.
        assert!(msg(&[0, 0, 8, 2, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]).contains("absurdly large"));
        // Truncated gzip stream.
        let z = gz(&good);
        assert!(msg(&z[..z.len() / 2]).contains("truncated") || msg(&z[..z.len() / 2]).contains("corrupt"));
    }
}
