//! Picture files (PNG, JPEG) as model inputs: decoded, converted to the model's channels,
//! resized to its input size and scaled to [0, 1].

use crate::error::{Error, Result};
use crate::tensor::Tensor;
use image::imageops::FilterType;
use std::path::Path;

/// Largest picture accepted, in pixels per side (guards against decompression bombs).
const MAX_SIDE: u32 = 16_384;

/// Whether to invert grey pictures (MNIST-style models expect light strokes on black).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Invert {
    /// Invert when the picture's border is mostly light (dark strokes on white paper).
    #[default]
    Auto,
    /// Always invert.
    Yes,
    /// Never invert.
    No,
}

/// A picture prepared for a model: its values and whether it was inverted.
#[derive(Clone, Debug)]
pub struct PreparedImage {
    /// `[height, width, channels]` values in [0, 1].
    pub values: Vec<f32>,
    /// True when the grey values were inverted.
    pub inverted: bool,
}

/// Decodes `path` and prepares it for an input of `shape` = `[height, width, channels]`
/// (1 or 3 channels).
pub fn load_image(path: &Path, shape: &[usize], invert: Invert) -> Result<PreparedImage> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    decode_image(&bytes, path, shape, invert)
}

/// Like [`load_image`], from bytes already read.
pub fn decode_image(bytes: &[u8], path: &Path, shape: &[usize], invert: Invert) -> Result<PreparedImage> {
    let [h, w, c] = match *shape {
        [h, w, c] if c == 1 || c == 3 => [h, w, c],
        _ => {
            return Err(Error::shape(format!(
                "pictures can feed models whose input is (height, width, 1 or 3), not {shape:?}"
            )))
        }
    };
    let img = decode(bytes, path)?;
    let img = img.resize_exact(w as u32, h as u32, FilterType::Triangle);
    let mut values: Vec<f32> = if c == 1 {
        img.to_luma8().into_raw().into_iter().map(|v| v as f32 / 255.0).collect()
    } else {
        img.to_rgb8().into_raw().into_iter().map(|v| v as f32 / 255.0).collect()
    };
    let inverted = c == 1
        && match invert {
            Invert::Yes => true,
            Invert::No => false,
            Invert::Auto => border_mean(&values, h, w) > 0.5,
        };
    if inverted {
        values.iter_mut().for_each(|v| *v = 1.0 - *v);
    }
    Ok(PreparedImage { values, inverted })
}

/// Most bytes a picture's decoder may allocate.
pub const MAX_DECODE_BYTES: u64 = 1 << 30;

/// Decodes PNG or JPEG bytes with limits on size and memory, checked against the header
/// before any pixel buffer is allocated.
fn decode(bytes: &[u8], path: &Path) -> Result<image::DynamicImage> {
    let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| Error::format(path, e.to_string()))?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    reader.limits(limits);
    reader.decode().map_err(|e| Error::format(path, format!("cannot decode the picture: {e}")))
}

/// Mean of the outermost ring of a grey picture.
fn border_mean(v: &[f32], h: usize, w: usize) -> f32 {
    let mut sum = 0.0;
    let mut n = 0;
    for y in 0..h {
        for x in 0..w {
            if y == 0 || x == 0 || y + 1 == h || x + 1 == w {
                sum += v[y * w + x];
                n += 1;
            }
        }
    }
    sum / n.max(1) as f32
}

/// Decodes a picture as grey values in [0, 1] at its own size (scaled down to at most
/// `max_side` pixels per side); returns `(values, height, width)`.
pub fn load_grey(path: &Path, max_side: u32) -> Result<(Vec<f32>, usize, usize)> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    decode_grey(&bytes, path, max_side)
}

/// Like [`load_grey`], from bytes already read.
pub fn decode_grey(bytes: &[u8], path: &Path, max_side: u32) -> Result<(Vec<f32>, usize, usize)> {
    let mut img = decode(bytes, path)?;
    if img.width() > max_side || img.height() > max_side {
        img = img.resize(max_side, max_side, FilterType::Triangle);
    }
    let g = img.to_luma8();
    let (w, h) = (g.width() as usize, g.height() as usize);
    Ok((g.into_raw().into_iter().map(|v| v as f32 / 255.0).collect(), h, w))
}

/// Stacks prepared pictures into one NHWC batch.
pub fn batch(images: &[PreparedImage], shape: &[usize]) -> Result<Tensor> {
    let mut s = vec![images.len()];
    s.extend_from_slice(shape);
    Tensor::from_vec(&s, images.iter().flat_map(|i| i.values.iter().copied()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(w: u32, h: u32, f: impl Fn(u32, u32) -> [u8; 3]) -> Vec<u8> {
        let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb(f(x, y)));
        let mut out = Vec::new();
        image::DynamicImage::ImageRgb8(img)
            .write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
            .unwrap();
        out
    }

    #[test]
    fn converts_resizes_and_inverts_dark_on_light() {
        // A black vertical bar on white, 56x56: becomes a light bar on black at 28x28x1.
        let bytes = png(56, 56, |x, _| if (24..32).contains(&x) { [0, 0, 0] } else { [255, 255, 255] });
        let p = decode_image(&bytes, Path::new("digit.png"), &[28, 28, 1], Invert::Auto).unwrap();
        assert!(p.inverted);
        assert_eq!(p.values.len(), 784);
        assert!(p.values[14 * 28 + 14] > 0.9 && p.values[14 * 28 + 2] < 0.1);
        let p = decode_image(&bytes, Path::new("digit.png"), &[32, 32, 3], Invert::Auto).unwrap();
        assert!(!p.inverted && p.values.len() == 32 * 32 * 3);
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(decode_image(b"not a picture", Path::new("x.png"), &[28, 28, 1], Invert::No).is_err());
        let bytes = png(4, 4, |_, _| [1, 2, 3]);
        assert!(decode_image(&bytes, Path::new("x.png"), &[10], Invert::No).is_err());
    }
}
