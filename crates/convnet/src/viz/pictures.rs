//! Seeing the network: classic edge kernels applied to a picture, feature maps of every
//! convolution layer, learned first-layer filters, the confusion matrix with per-class
//! precision and recall, and a preview of what an augmenting generator makes of a data set.

use crate::data::augment::ImageDataGenerator;
use crate::data::ImageSet;
use crate::error::{Error, Result};
use crate::kernels::conv::{conv2d_naive, Padding, Window};
use crate::nn::model::Sequential;
use crate::tensor::Tensor;
use crate::viz::charts::{grid_png, GridImage, GridSection};
use std::path::Path;

/// A 2-D kernel (single channel), row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Kernel2d {
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
    /// Values, row-major.
    pub values: Vec<f32>,
}

impl Kernel2d {
    /// The classic horizontal-edge kernel `[[1, 1, 1], [0, 0, 0], [-1, -1, -1]]`.
    pub fn horizontal_edge() -> Self {
        Kernel2d { height: 3, width: 3, values: vec![1.0, 1.0, 1.0, 0.0, 0.0, 0.0, -1.0, -1.0, -1.0] }
    }

    /// The classic vertical-edge kernel `[[-1, 0, 1], [-1, 0, 1], [-1, 0, 1]]`.
    pub fn vertical_edge() -> Self {
        Kernel2d { height: 3, width: 3, values: vec![-1.0, 0.0, 1.0, -1.0, 0.0, 1.0, -1.0, 0.0, 1.0] }
    }

    /// `vertical-edge`, `horizontal-edge`, or a text file of rows of numbers (spaces or commas).
    pub fn parse(spec: &str) -> Result<Self> {
        match spec {
            "vertical-edge" | "vertical" => return Ok(Self::vertical_edge()),
            "horizontal-edge" | "horizontal" => return Ok(Self::horizontal_edge()),
            _ => {}
        }
        let path = Path::new(spec);
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::Config(format!(
                "kernel {spec:?} is neither vertical-edge, horizontal-edge nor a readable file ({e})"
            ))
        })?;
        Self::from_text(&text, path)
    }

    /// Parses a kernel file's text: rows of numbers separated by spaces or commas, `#` comments.
    pub fn from_text(text: &str, path: &Path) -> Result<Self> {
        let rows: Vec<Vec<f32>> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| {
                l.split(|c: char| c == ',' || c.is_whitespace())
                    .filter(|t| !t.is_empty())
                    .map(|t| t.parse::<f32>().map_err(|_| Error::format(path, format!("{t:?} is not a number"))))
                    .collect()
            })
            .collect::<Result<_>>()?;
        let width = rows.first().map_or(0, Vec::len);
        if rows.is_empty() || width == 0 || rows.iter().any(|r| r.len() != width) || rows.len() > 64 || width > 64 {
            return Err(Error::format(path, "a kernel file holds equal rows of numbers (at most 64 × 64)"));
        }
        Ok(Kernel2d { height: rows.len(), width, values: rows.concat() })
    }

    /// Applies the kernel (cross-correlation, as Conv2D does) to a grey `h × w` image.
    pub fn apply(
        &self,
        image: &[f32],
        h: usize,
        w: usize,
        stride: usize,
        padding: Padding,
    ) -> Result<(Vec<f32>, usize, usize)> {
        let win = Window::new(h, w, 1, (self.height, self.width), (stride.max(1), stride.max(1)), padding)?;
        let out = conv2d_naive(&win, image, 1, &self.values, None, 1);
        Ok((out, win.out_h, win.out_w))
    }
}

/// One section per convolution layer: its feature maps for input `x` (one sample), each map
/// stretched to its own range.
pub fn feature_map_sections(model: &mut Sequential, x: &Tensor, max_maps: usize) -> Result<Vec<GridSection>> {
    let outs = model.layer_outputs(x)?;
    let mut sections = Vec::new();
    for (layer, out) in model.layers().iter().zip(&outs) {
        if layer.class_name() != "Conv2D" {
            continue;
        }
        let s = out.shape();
        let (h, w, c) = (s[1], s[2], s[3]);
        let sample = out.sample(0);
        if h * w == 1 {
            // One value per map: show the layer's activations as one near-square image.
            let cols = (c as f64).sqrt().ceil() as usize;
            let rows = c.div_ceil(cols);
            let mut v = sample.to_vec();
            v.resize(rows * cols, 0.0);
            let cells = vec![(GridImage::normalized(&v, rows, cols, 1), Some(format!("{c} activations")))];
            sections.push(GridSection { title: Some(format!("{} (1×1×{c})", layer.name())), cells });
            continue;
        }
        let cells = (0..c.min(max_maps))
            .map(|ch| {
                let map: Vec<f32> = (0..h * w).map(|p| sample[p * c + ch]).collect();
                (GridImage::normalized(&map, h, w, 1), Some(format!("{ch}")))
            })
            .collect();
        sections.push(GridSection { title: Some(format!("{} ({}×{}×{})", layer.name(), h, w, c)), cells });
    }
    if sections.is_empty() {
        return Err(Error::Config("the model has no Conv2D layer".into()));
    }
    Ok(sections)
}

/// The first convolution layer's kernels, one image each (RGB for 3 input channels, grey
/// otherwise, channel 0), stretched to the kernel's own range.
pub fn filter_section(model: &Sequential) -> Result<GridSection> {
    let layer = model
        .layers()
        .iter()
        .find(|l| l.class_name() == "Conv2D")
        .ok_or_else(|| Error::Config("the model has no Conv2D layer".into()))?;
    let k = &layer.params()[0];
    let (kh, kw, c, f) = (k.shape[0], k.shape[1], k.shape[2], k.shape[3]);
    let shown = if c == 3 { 3 } else { 1 };
    let cells = (0..f)
        .map(|fi| {
            let mut v = Vec::with_capacity(kh * kw * shown);
            for p in 0..kh * kw {
                for ch in 0..shown {
                    v.push(k.value[(p * c + ch) * f + fi]);
                }
            }
            (GridImage::normalized(&v, kh, kw, shown), Some(format!("{fi}")))
        })
        .collect();
    Ok(GridSection { title: Some(format!("{}: {f} filters of {kh}×{kw}×{c}", layer.name())), cells })
}

/// `counts[true][predicted]` over `classes` classes.
pub fn confusion_matrix(predicted: &[usize], truth: &[usize], classes: usize) -> Vec<Vec<usize>> {
    let mut m = vec![vec![0usize; classes]; classes];
    for (&p, &t) in predicted.iter().zip(truth) {
        if p < classes && t < classes {
            m[t][p] += 1;
        }
    }
    m
}

/// Per-class `(precision, recall, support)` from a confusion matrix.
pub fn precision_recall(m: &[Vec<usize>]) -> Vec<(f64, f64, usize)> {
    (0..m.len())
        .map(|k| {
            let tp = m[k][k] as f64;
            let predicted: usize = m.iter().map(|row| row[k]).sum();
            let actual: usize = m[k].iter().sum();
            let p = if predicted > 0 { tp / predicted as f64 } else { 0.0 };
            let r = if actual > 0 { tp / actual as f64 } else { 0.0 };
            (p, r, actual)
        })
        .collect()
}

/// The augmentation figure as a PNG: the images of `set` with their class names, then
/// `trials` batches of `trial_size` drawn from a generator over them.
pub fn preview_png(
    gen: &ImageDataGenerator,
    set: &ImageSet,
    class_names: &[&str],
    trial_size: usize,
    trials: usize,
    seed: u64,
) -> Result<Vec<u8>> {
    let (h, w, c) = (set.height, set.width, set.channels);
    let x = set.x_scaled(1.0);
    let y = set.y_sparse();
    let name = |label: f32| class_names.get(label as usize).map(|s| s.to_string());
    let to_cell = |img: &[f32], label: f32| {
        let v: Vec<f32> = img.iter().map(|p| p / 255.0).collect();
        (GridImage::new(&v, h, w, c), name(label))
    };
    let mut sections = vec![GridSection {
        title: Some(format!("First {} images in the train set", set.count)),
        cells: (0..set.count).map(|i| to_cell(x.sample(i), y.data()[i])).collect(),
    }];
    let mut flow = gen.flow(&x, &y, trial_size.max(1), true, seed)?;
    for t in 0..trials {
        let (bx, by) = flow.next_batch();
        sections.push(GridSection {
            title: Some(format!("Generator trial {}", t + 1)),
            cells: (0..bx.batch()).map(|i| to_cell(bx.sample(i), by.data()[i])).collect(),
        });
    }
    let cell = if h <= 32 { 96 } else { 128 };
    grid_png(&sections, cell, set.count.max(trial_size).clamp(1, 12))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 12×12 black image with two bright blocks: A (rows 0–5, columns 6–11) and B (rows
    /// 9–11, columns 0–3). A has a vertical edge between columns 5 and 6 and a horizontal one
    /// between rows 5 and 6; B has a horizontal edge between rows 8 and 9 and a vertical one
    /// between columns 3 and 4.
    fn image() -> Vec<f32> {
        let mut v = vec![0.0f32; 144];
        for y in 0..12 {
            for x in 0..12 {
                if (y < 6 && x >= 6) || (y >= 9 && x < 4) {
                    v[y * 12 + x] = 1.0;
                }
            }
        }
        v
    }

    #[test]
    fn edge_kernels_respond_where_they_should_and_nowhere_else() {
        let img = image();
        let (v, oh, ow) = Kernel2d::vertical_edge().apply(&img, 12, 12, 1, Padding::Valid).unwrap();
        let (hz, _, _) = Kernel2d::horizontal_edge().apply(&img, 12, 12, 1, Padding::Valid).unwrap();
        assert_eq!((oh, ow), (10, 10));
        // Output (y, x) sees input rows y..y+2 and columns x..x+2.
        let vertical_fires =
            |y: usize, x: usize| (y <= 5 && (x == 4 || x == 5)) || ((7..=9).contains(&y) && (x == 2 || x == 3));
        let horizontal_fires = |y: usize, x: usize| ((y == 4 || y == 5) && x >= 4) || ((y == 7 || y == 8) && x <= 3);
        for y in 0..oh {
            for x in 0..ow {
                assert_eq!(
                    v[y * ow + x] != 0.0,
                    vertical_fires(y, x),
                    "vertical kernel at ({y}, {x}): {}",
                    v[y * ow + x]
                );
                assert_eq!(
                    hz[y * ow + x] != 0.0,
                    horizontal_fires(y, x),
                    "horizontal kernel at ({y}, {x}): {}",
                    hz[y * ow + x]
                );
            }
        }
        // Dark → bright left to right gives +3 on A's vertical edge; bright → dark gives −1
        // per row on B's.
        assert_eq!(v[4], 3.0);
        assert_eq!(v[5], 3.0);
        assert_eq!(v[9 * ow + 3], -3.0);
        assert_eq!(v[8 * ow + 3], -2.0);
        // Bright above, dark below gives +3 under A; dark above bright gives −3 over B.
        assert_eq!(hz[4 * ow + 8], 3.0);
        assert_eq!(hz[7 * ow], -3.0);
        // "same" padding keeps the size; stride 2 halves it.
        assert_eq!(Kernel2d::vertical_edge().apply(&img, 12, 12, 1, Padding::Same).unwrap().1, 12);
        assert_eq!(Kernel2d::vertical_edge().apply(&img, 12, 12, 2, Padding::Same).unwrap().2, 6);
    }

    #[test]
    fn kernel_files_and_confusion() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("k.txt");
        std::fs::write(&p, "# sharpen\n0 -1 0\n-1, 5, -1\n0 -1 0\n").unwrap();
        let k = Kernel2d::parse(p.to_str().unwrap()).unwrap();
        assert_eq!((k.height, k.width, k.values[4]), (3, 3, 5.0));
        std::fs::write(&p, "1 2\n3\n").unwrap();
        assert!(Kernel2d::parse(p.to_str().unwrap()).is_err());
        let m = confusion_matrix(&[0, 1, 1, 2, 2, 2], &[0, 1, 2, 2, 2, 0], 3);
        assert_eq!(m, vec![vec![1, 0, 1], vec![0, 1, 0], vec![0, 1, 2]]);
        let pr = precision_recall(&m);
        assert!((pr[2].0 - 2.0 / 3.0).abs() < 1e-12 && (pr[2].1 - 2.0 / 3.0).abs() < 1e-12);
        assert!((pr[1].0 - 0.5).abs() < 1e-12 && (pr[1].1 - 1.0).abs() < 1e-12);
    }
}
