//! Pictures: accuracy and loss charts as Keras courses draw them (PNG and SVG), grids of images with
//! captions (augmented samples, feature maps, filters), and confusion matrices.
//!
//! Text is drawn with an embedded font (DejaVu Sans), so nothing depends on system libraries
//! or installed fonts. Every file is written atomically.

use crate::error::{Error, Result};
use crate::io::atomic_write;
use crate::train::history::History;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::Once;

/// Width and height of charts, in pixels (matplotlib's default figure at 100 dpi).
pub const CHART_SIZE: (u32, u32) = (640, 480);
/// matplotlib's first colour (tab:blue), for the training series.
pub const TRAIN_COLOR: RGBColor = RGBColor(31, 119, 180);
/// matplotlib's second colour (tab:orange), for the validation series.
pub const VALIDATION_COLOR: RGBColor = RGBColor(255, 127, 14);

const FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

/// Registers the embedded font once as "sans-serif".
fn ensure_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        for style in [FontStyle::Normal, FontStyle::Bold] {
            // The font is embedded and valid; a failure would only lose text, not crash.
            let _ = plotters::style::register_font("sans-serif", style, FONT);
        }
    });
}

fn perr<E: std::fmt::Debug>(e: E) -> Error {
    Error::Config(format!("drawing failed: {e:?}"))
}

/// Pixel positions of a chart's data points, one list per series.
pub type PointsPx = Vec<Vec<(i32, i32)>>;

/// One line of a chart.
pub struct Series<'a> {
    /// Legend label.
    pub label: &'a str,
    /// One value per epoch.
    pub values: &'a [f64],
    /// Line colour.
    pub color: RGBColor,
}

/// Where the legend goes: the corner with the fewest data points near it (matplotlib's
/// `loc='best'`, simplified).
fn legend_corner(series: &[Series<'_>], x_max: f64, y: (f64, f64)) -> SeriesLabelPosition {
    let corners = [
        (SeriesLabelPosition::UpperRight, true, true),
        (SeriesLabelPosition::LowerRight, true, false),
        (SeriesLabelPosition::UpperLeft, false, true),
        (SeriesLabelPosition::LowerLeft, false, false),
    ];
    let count = |right: bool, upper: bool| {
        series
            .iter()
            .flat_map(|s| s.values.iter().enumerate())
            .filter(|(i, v)| {
                let fx = if x_max > 0.0 { *i as f64 / x_max } else { 0.5 };
                let fy = (**v - y.0) / (y.1 - y.0).max(1e-12);
                (if right { fx > 0.55 } else { fx < 0.45 }) && (if upper { fy > 0.6 } else { fy < 0.4 })
            })
            .count()
    };
    corners.into_iter().min_by_key(|(_, r, u)| count(*r, *u)).map_or(SeriesLabelPosition::UpperRight, |c| c.0)
}

/// Draws a line chart (title, "Epoch" on x, `y_label` on y, grid, legend) on `area`; returns
/// the pixel position of every data point, series by series.
pub fn draw_chart<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    title: &str,
    y_label: &str,
    series: &[Series<'_>],
) -> Result<PointsPx> {
    ensure_font();
    area.fill(&WHITE).map_err(perr)?;
    let n = series.iter().map(|s| s.values.len()).max().unwrap_or(0).max(1);
    let finite = || series.iter().flat_map(|s| s.values.iter().copied()).filter(|v| v.is_finite());
    let (mut lo, mut hi) = (finite().fold(f64::INFINITY, f64::min), finite().fold(f64::NEG_INFINITY, f64::max));
    if !lo.is_finite() {
        (lo, hi) = (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.05).max(1e-3);
    let (lo, hi) = (lo - pad, hi + pad);
    let x_max = (n - 1).max(1) as f64;
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(-0.02 * x_max..x_max * 1.02, lo..hi)
        .map_err(perr)?;
    chart
        .configure_mesh()
        .x_desc("Epoch")
        .y_desc(y_label)
        .label_style(("sans-serif", 13))
        .axis_desc_style(("sans-serif", 15))
        .x_labels(n.clamp(2, 11))
        .x_label_formatter(&|v| if (v - v.round()).abs() < 1e-6 { format!("{:.0}", v) } else { String::new() })
        .light_line_style(TRANSPARENT)
        .bold_line_style(RGBColor(210, 210, 210))
        .draw()
        .map_err(perr)?;
    let mut points = Vec::new();
    for s in series {
        let data: Vec<(f64, f64)> = s.values.iter().enumerate().map(|(i, &v)| (i as f64, v)).collect();
        let color = s.color;
        chart
            .draw_series(LineSeries::new(data.iter().copied(), color.stroke_width(2)))
            .map_err(perr)?
            .label(s.label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 22, y)], color.stroke_width(2)));
        // A line through one point draws nothing: a one-epoch history gets a dot.
        if data.len() == 1 {
            chart.draw_series(data.iter().map(|&p| Circle::new(p, 4, color.filled()))).map_err(perr)?;
        }
        points.push(data.iter().map(|p| chart.backend_coord(p)).collect());
    }
    chart
        .configure_series_labels()
        .position(legend_corner(series, x_max, (lo, hi)))
        .label_font(("sans-serif", 14))
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(200, 200, 200))
        .draw()
        .map_err(perr)?;
    Ok(points)
}

/// Renders a chart to PNG bytes; also returns the data points' pixel positions.
pub fn chart_png(title: &str, y_label: &str, series: &[Series<'_>]) -> Result<(Vec<u8>, PointsPx)> {
    let (w, h) = CHART_SIZE;
    let mut buf = vec![255u8; (w * h * 3) as usize];
    let points = {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        let p = draw_chart(&root, title, y_label, series)?;
        root.present().map_err(perr)?;
        p
    };
    Ok((encode_png(&buf, w, h)?, points))
}

/// Renders a chart to SVG text.
pub fn chart_svg(title: &str, y_label: &str, series: &[Series<'_>]) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, CHART_SIZE).into_drawing_area();
        draw_chart(&root, title, y_label, series)?;
        root.present().map_err(perr)?;
    }
    Ok(svg)
}

/// Encodes an RGB buffer as PNG.
pub fn encode_png(rgb: &[u8], w: u32, h: u32) -> Result<Vec<u8>> {
    let img = image::RgbImage::from_raw(w, h, rgb.to_vec()).ok_or_else(|| Error::shape("image buffer size"))?;
    let mut out = Vec::new();
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .map_err(|e| Error::Config(format!("PNG encoding failed: {e}")))?;
    Ok(out)
}

/// One chart of a history: file stem, title, y label and its series.
type Panel<'a> = (&'static str, &'static str, &'static str, Vec<Series<'a>>);

/// The panels of a history's charts: (file stem, title, y label, series) for "Model Accuracy"
/// (accuracy and val_accuracy) and "Model Loss" (loss and val_loss), each when the history has it.
fn history_panels(history: &History) -> Vec<Panel<'_>> {
    let mut panels = Vec::new();
    for (file, title, y_label, train, val) in [
        ("accuracy", "Model Accuracy", "Accuracy", "accuracy", "val_accuracy"),
        ("loss", "Model Loss", "Loss", "loss", "val_loss"),
    ] {
        let mut series = Vec::new();
        if let Some(v) = history.get(train) {
            series.push(Series { label: "Train", values: v, color: TRAIN_COLOR });
        }
        if let Some(v) = history.get(val) {
            series.push(Series { label: "Validation", values: v, color: VALIDATION_COLOR });
        }
        if !series.is_empty() {
            panels.push((file, title, y_label, series));
        }
    }
    panels
}

fn nothing_to_plot() -> Error {
    Error::Config("the history has neither accuracy nor loss to plot".into())
}

/// The two classic charts from a history: "Model Accuracy" (accuracy and val_accuracy) and
/// "Model Loss" (loss and val_loss), each as `<dir>/accuracy.png|svg` and `<dir>/loss.png|svg`.
/// Returns the files written.
pub fn history_charts(history: &History, dir: &Path) -> Result<Vec<PathBuf>> {
    let panels = history_panels(history);
    if panels.is_empty() {
        return Err(nothing_to_plot());
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut written = Vec::new();
    for (file, title, y_label, series) in panels {
        let (png, _) = chart_png(title, y_label, &series)?;
        let p = dir.join(format!("{file}.png"));
        atomic_write(&p, &png)?;
        written.push(p);
        let p = dir.join(format!("{file}.svg"));
        atomic_write(&p, chart_svg(title, y_label, &series)?.as_bytes())?;
        written.push(p);
    }
    Ok(written)
}

/// The picture format a chart path asks for by its extension: `Some("png")`, `Some("svg")`, or
/// `None` for a path without one of them (a directory for [`history_charts`]).
pub fn chart_format(path: &Path) -> Option<&'static str> {
    let ext = path.extension()?.to_string_lossy().to_ascii_lowercase();
    ["png", "svg"].into_iter().find(|f| *f == ext)
}

/// Extensions of pictures that charts are not drawn in: a path ending so is refused rather than
/// taken for a directory.
const OTHER_PICTURES: [&str; 9] = ["jpg", "jpeg", "gif", "bmp", "webp", "pdf", "eps", "tif", "tiff"];

/// One figure of a history, the accuracy and loss charts side by side (each 640×480), written
/// to `path` as PNG or SVG by its extension.
pub fn history_figure(history: &History, path: &Path) -> Result<PathBuf> {
    let Some(format) = chart_format(path) else {
        return Err(Error::Config(format!("{}: charts are drawn as .png or .svg", path.display())));
    };
    let panels = history_panels(history);
    if panels.is_empty() {
        return Err(nothing_to_plot());
    }
    let (w, h) = (CHART_SIZE.0 * panels.len() as u32, CHART_SIZE.1);
    fn draw<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, panels: &[Panel<'_>]) -> Result<()> {
        for ((_, title, y_label, series), area) in panels.iter().zip(root.split_evenly((1, panels.len()))) {
            draw_chart(&area, title, y_label, series)?;
        }
        root.present().map_err(perr)
    }
    let bytes = if format == "svg" {
        let mut svg = String::new();
        draw(SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area(), &panels)?;
        svg.into_bytes()
    } else {
        let mut buf = vec![255u8; (w * h * 3) as usize];
        draw(BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area(), &panels)?;
        encode_png(&buf, w, h)?
    };
    atomic_write(path, &bytes)?;
    Ok(path.to_path_buf())
}

/// Whether charts written to `out` go into a directory (`false`: one figure file, `out` ends in
/// `.png` or `.svg`). A path ending in another picture format (`.jpg`, `.pdf`, …) that is not
/// an existing directory is refused.
pub fn charts_into_directory(out: &Path) -> Result<bool> {
    if chart_format(out).is_some() {
        return Ok(false);
    }
    let ext = out.extension().map(|e| e.to_string_lossy().to_ascii_lowercase());
    if ext.is_some_and(|e| OTHER_PICTURES.contains(&e.as_str())) && !out.is_dir() {
        return Err(Error::Config(format!(
            "{}: charts are drawn as .png or .svg (one file with both charts), or into a directory",
            out.display()
        )));
    }
    Ok(true)
}

/// Writes a history's charts where `out` says ([`charts_into_directory`]): one figure with
/// both charts when it ends in `.png` or `.svg` ([`history_figure`]), else the four files of
/// [`history_charts`] in that directory.
pub fn write_history_charts(history: &History, out: &Path) -> Result<Vec<PathBuf>> {
    if charts_into_directory(out)? {
        history_charts(history, out)
    } else {
        Ok(vec![history_figure(history, out)?])
    }
}

/// An image for a grid: `height × width × channels` (1 or 3) values in [0, 1].
#[derive(Clone, Debug)]
pub struct GridImage {
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
    /// 1 (grey) or 3 (RGB).
    pub channels: usize,
    /// HWC values in [0, 1].
    pub values: Vec<f32>,
}

impl GridImage {
    /// An image from HWC values already in [0, 1] (clamped).
    pub fn new(values: &[f32], height: usize, width: usize, channels: usize) -> Self {
        GridImage { height, width, channels, values: values.iter().map(|v| v.clamp(0.0, 1.0)).collect() }
    }

    /// An image from arbitrary values, stretched so its minimum is black and maximum white.
    pub fn normalized(values: &[f32], height: usize, width: usize, channels: usize) -> Self {
        let (lo, hi) = values.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
        let span = if hi > lo { hi - lo } else { 1.0 };
        GridImage { height, width, channels, values: values.iter().map(|v| (v - lo) / span).collect() }
    }

    fn rgb(&self, y: usize, x: usize) -> [u8; 3] {
        let i = (y * self.width + x) * self.channels;
        let q = |v: f32| (v.clamp(0.0, 1.0) * 255.0).round() as u8;
        if self.channels >= 3 {
            [q(self.values[i]), q(self.values[i + 1]), q(self.values[i + 2])]
        } else {
            let g = q(self.values[i]);
            [g, g, g]
        }
    }
}

/// A titled group of captioned images, laid out in rows.
#[derive(Clone, Debug, Default)]
pub struct GridSection {
    /// Heading above the group.
    pub title: Option<String>,
    /// Images with their captions.
    pub cells: Vec<(GridImage, Option<String>)>,
}

const TITLE_PX: u32 = 28;
const CAPTION_PX: u32 = 18;
const PAD: u32 = 8;

/// Renders sections of images, `cols` per line and each scaled to `cell × cell` pixels
/// (nearest neighbour), to PNG bytes.
pub fn grid_png(sections: &[GridSection], cell: u32, cols: usize) -> Result<Vec<u8>> {
    ensure_font();
    let cols = cols.max(1);
    let widest = sections.iter().map(|s| s.cells.len().min(cols)).max().unwrap_or(1).max(1) as u32;
    let width = (PAD + widest * (cell + PAD)).max(240);
    let mut height = PAD;
    for s in sections {
        if s.title.is_some() {
            height += TITLE_PX;
        }
        let lines = s.cells.len().div_ceil(cols) as u32;
        height += lines * (cell + CAPTION_PX + PAD);
    }
    let mut buf = vec![255u8; (width * height * 3) as usize];
    // Pass 1: the images, written straight into the buffer.
    let mut y = PAD;
    let mut text: Vec<(String, i32, i32, u32)> = Vec::new();
    for s in sections {
        if let Some(t) = &s.title {
            text.push((t.clone(), (width / 2) as i32, y as i32 + 4, 18));
            y += TITLE_PX;
        }
        for (i, (img, caption)) in s.cells.iter().enumerate() {
            let (line, col) = ((i / cols) as u32, (i % cols) as u32);
            let x0 = PAD + col * (cell + PAD);
            let y0 = y + line * (cell + CAPTION_PX + PAD);
            if img.height == 0 || img.width == 0 {
                continue;
            }
            for py in 0..cell {
                let sy = (py as usize * img.height / cell as usize).min(img.height - 1);
                for px in 0..cell {
                    let sx = (px as usize * img.width / cell as usize).min(img.width - 1);
                    let o = (((y0 + py) * width + x0 + px) * 3) as usize;
                    buf[o..o + 3].copy_from_slice(&img.rgb(sy, sx));
                }
            }
            if let Some(c) = caption {
                text.push((c.clone(), (x0 + cell / 2) as i32, (y0 + cell + 3) as i32, 13));
            }
        }
        y += s.cells.len().div_ceil(cols) as u32 * (cell + CAPTION_PX + PAD);
    }
    // Pass 2: titles and captions, centred.
    {
        let root = BitMapBackend::with_buffer(&mut buf, (width, height)).into_drawing_area();
        for (t, cx, ty, size) in &text {
            let style = TextStyle::from(("sans-serif", *size).into_font()).color(&BLACK).pos(
                plotters::style::text_anchor::Pos::new(
                    plotters::style::text_anchor::HPos::Center,
                    plotters::style::text_anchor::VPos::Top,
                ),
            );
            root.draw(&Text::new(t.as_str(), (*cx, *ty), style)).map_err(perr)?;
        }
        root.present().map_err(perr)?;
    }
    encode_png(&buf, width, height)
}

/// A confusion matrix (`counts[true][predicted]`) as a PNG heat map with class names and
/// counts.
pub fn confusion_png(counts: &[Vec<usize>], names: &[String]) -> Result<Vec<u8>> {
    ensure_font();
    let k = counts.len().max(1);
    let cell = (560 / k as u32).clamp(28, 64);
    let (left, top) = (130u32, 70u32);
    let (w, h) = (left + cell * k as u32 + 20, top + cell * k as u32 + 110);
    let mut buf = vec![255u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(perr)?;
        let center = |size: u32| {
            TextStyle::from(("sans-serif", size).into_font()).pos(plotters::style::text_anchor::Pos::new(
                plotters::style::text_anchor::HPos::Center,
                plotters::style::text_anchor::VPos::Center,
            ))
        };
        root.draw(&Text::new("Confusion matrix", ((w / 2) as i32, 22), center(20))).map_err(perr)?;
        let max = counts.iter().flatten().copied().max().unwrap_or(1).max(1) as f64;
        for (t, row) in counts.iter().enumerate() {
            for (p, &c) in row.iter().enumerate() {
                let f = c as f64 / max;
                // White to matplotlib's "Blues" dark end.
                let color = RGBColor(
                    (255.0 - f * (255.0 - 8.0)) as u8,
                    (255.0 - f * (255.0 - 48.0)) as u8,
                    (255.0 - f * (255.0 - 107.0)) as u8,
                );
                let (x0, y0) = ((left + p as u32 * cell) as i32, (top + t as u32 * cell) as i32);
                root.draw(&Rectangle::new([(x0, y0), (x0 + cell as i32, y0 + cell as i32)], color.filled()))
                    .map_err(perr)?;
                let ink = if f > 0.5 { WHITE } else { BLACK };
                root.draw(&Text::new(
                    c.to_string(),
                    (x0 + cell as i32 / 2, y0 + cell as i32 / 2),
                    center(12).color(&ink),
                ))
                .map_err(perr)?;
            }
            let name = names.get(t).cloned().unwrap_or_else(|| t.to_string());
            let ls = TextStyle::from(("sans-serif", 13).into_font()).pos(plotters::style::text_anchor::Pos::new(
                plotters::style::text_anchor::HPos::Right,
                plotters::style::text_anchor::VPos::Center,
            ));
            root.draw(&Text::new(name, (left as i32 - 6, (top + t as u32 * cell + cell / 2) as i32), ls))
                .map_err(perr)?;
        }
        for p in 0..k {
            let name = names.get(p).cloned().unwrap_or_else(|| p.to_string());
            let style = TextStyle::from(("sans-serif", 12).into_font()).transform(FontTransform::Rotate90).pos(
                plotters::style::text_anchor::Pos::new(
                    plotters::style::text_anchor::HPos::Left,
                    plotters::style::text_anchor::VPos::Center,
                ),
            );
            let x = (left + p as u32 * cell + cell / 2) as i32;
            root.draw(&Text::new(name, (x, (top + k as u32 * cell + 6) as i32), style)).map_err(perr)?;
        }
        root.draw(&Text::new("Predicted", ((left + cell * k as u32 / 2) as i32, (h - 14) as i32), center(15)))
            .map_err(perr)?;
        root.draw(&Text::new("True", (24, (top + cell * k as u32 / 2) as i32), center(15))).map_err(perr)?;
        root.present().map_err(perr)?;
    }
    encode_png(&buf, w, h)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A one-epoch history still shows its value (as a dot), not an empty frame.
    #[test]
    fn a_single_epoch_is_drawn() {
        let one = [0.5];
        let series = [Series { label: "Train", values: &one, color: TRAIN_COLOR }];
        let svg = chart_svg("Model Loss", "Loss", &series).unwrap();
        assert!(svg.contains("<circle"), "no mark for the only epoch");
        let two = [0.5, 0.4];
        let series = [Series { label: "Train", values: &two, color: TRAIN_COLOR }];
        assert!(!chart_svg("Model Loss", "Loss", &series).unwrap().contains("<circle"));
    }

    /// A path ending in .svg or .png gets that one file, in that format, with both charts.
    #[test]
    fn a_file_path_gets_one_figure_in_its_format() {
        let mut h = History::default();
        for (i, (a, l)) in [(0.5, 1.2), (0.7, 0.8), (0.8, 0.6)].into_iter().enumerate() {
            let mut logs = crate::nn::model::Logs::new();
            logs.insert("accuracy".into(), a);
            logs.insert("loss".into(), l);
            h.push(i, &logs, 1.0);
        }
        let dir = tempfile::tempdir().unwrap();
        let svg = dir.path().join("chart.svg");
        assert_eq!(write_history_charts(&h, &svg).unwrap(), vec![svg.clone()]);
        let text = std::fs::read_to_string(&svg).unwrap();
        assert!(text.starts_with("<svg") && text.contains("Model Accuracy") && text.contains("Model Loss"));
        let png = dir.path().join("chart.PNG");
        write_history_charts(&h, &png).unwrap();
        let img = decode(&std::fs::read(&png).unwrap());
        assert_eq!((img.width(), img.height()), (2 * CHART_SIZE.0, CHART_SIZE.1));
        let err = write_history_charts(&h, &dir.path().join("chart.jpg")).unwrap_err().to_string();
        assert!(err.contains("charts are drawn as .png or .svg"), "{err}");
        // Anything else is a directory of the four charts.
        let files = write_history_charts(&h, &dir.path().join("charts")).unwrap();
        assert_eq!(files.len(), 4);
        assert!(dir.path().join("charts").join("loss.svg").is_file());
    }

    fn decode(png: &[u8]) -> image::RgbImage {
        image::load_from_memory(png).unwrap().to_rgb8()
    }

    #[test]
    fn chart_points_are_drawn_where_the_values_put_them() {
        let train = [0.2, 0.5, 0.7, 0.8, 0.85];
        let val = [0.3, 0.45, 0.5, 0.52, 0.5];
        let series = [
            Series { label: "Train", values: &train, color: TRAIN_COLOR },
            Series { label: "Validation", values: &val, color: VALIDATION_COLOR },
        ];
        let (png, points) = chart_png("Model Accuracy", "Accuracy", &series).unwrap();
        let img = decode(&png);
        assert_eq!((img.width(), img.height()), CHART_SIZE);
        // Higher values sit higher (smaller y); epochs advance to the right.
        for (s, pts) in series.iter().zip(&points) {
            for (i, w) in pts.windows(2).enumerate() {
                assert!(w[1].0 > w[0].0);
                assert_eq!(w[1].1 < w[0].1, s.values[i + 1] > s.values[i], "{} epoch {i}", s.label);
            }
        }
        // Each point has its series' colour at (or right next to) its pixel.
        for (s, pts) in series.iter().zip(&points) {
            for &(x, y) in pts {
                let near = (-2..=2).any(|dx| {
                    (-2..=2).any(|dy| {
                        let p = img.get_pixel((x + dx) as u32, (y + dy) as u32);
                        p.0 == [s.color.0, s.color.1, s.color.2]
                    })
                });
                assert!(near, "{} at ({x}, {y})", s.label);
            }
        }
        let svg = chart_svg("Model Accuracy", "Accuracy", &series).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("Model Accuracy") && svg.contains("Validation"));
        assert!(svg.contains("<polyline"));
    }

    #[test]
    fn grids_hold_their_images() {
        let red = GridImage::new(&[1.0, 0.0, 0.0].repeat(4), 2, 2, 3);
        let grey = GridImage::normalized(&[0.0, 2.0, 4.0, 8.0], 2, 2, 1);
        let sections = [
            GridSection { title: Some("First".into()), cells: vec![(red.clone(), Some("red".into())); 3] },
            GridSection { title: None, cells: vec![(grey, None)] },
        ];
        let img = decode(&grid_png(&sections, 40, 2).unwrap());
        // Two cells of 40 + padding is narrower than the minimum width of 240.
        assert_eq!(img.width(), 240);
        // The first cell is red inside.
        assert_eq!(img.get_pixel(8 + 20, 8 + 28 + 20).0, [255, 0, 0]);
        // Text was drawn: some dark pixels in the title band.
        let dark = (0..img.width()).any(|x| (8..30).any(|y| img.get_pixel(x, y).0[0] < 100));
        assert!(dark);
    }

    #[test]
    fn confusion_matrix_renders() {
        let counts = vec![vec![5, 1], vec![0, 7]];
        let img = decode(&confusion_png(&counts, &["cat".into(), "dog".into()]).unwrap());
        assert!(img.width() > 100 && img.height() > 100);
        let blue = img.pixels().filter(|p| p.0[0] < 100 && p.0[2] > p.0[0] + 40).count();
        assert!(blue > 100, "dark cells drawn");
    }
}
