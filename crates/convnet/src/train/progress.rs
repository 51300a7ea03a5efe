//! Keras' training output: the progress logger (`Epoch 1/10`, a live bar with ETA on a
//! terminal, or one line per epoch), and Keras' way of printing numbers.
//!
//! The live line is redrawn in place with `\r`, so it must never reach the terminal's last
//! column: a line that wraps leaves one new row per redraw. [`live_line`] fits it to the width,
//! shortening the bar first, then leaving out metrics from the last, then the bar and the time
//! per step. The epoch's final line, drawn once, keeps every metric.

use crate::error::Result;
use crate::nn::model::{Logs, Sequential};
use crate::train::callbacks::{Callback, Control, TrainParams};
use std::io::{IsTerminal, Write};
use std::time::Instant;

/// Prints Keras' progress: `Epoch 1/10`, a live bar (verbose 1 on a terminal) and the epoch's
/// line `469/469 - 3s - 6ms/step - accuracy: 0.9123 - loss: 0.2345 - val_…`.
pub struct ProgbarLogger {
    verbose: u8,
    to_stderr: bool,
    live: bool,
    epochs: usize,
    steps: usize,
    start: Instant,
    last_draw: Instant,
    width: usize,
    /// The first batch this run trains in the current epoch (not 0 when a checkpoint resumed
    /// it mid-epoch): the time measured covers only the batches from here.
    first_batch: Option<usize>,
}

impl ProgbarLogger {
    /// A logger for `verbose` 1 (bar) or 2 (one line per epoch), on stdout or stderr. The bar is
    /// drawn only when the stream is a terminal; otherwise verbose 1 prints like verbose 2.
    pub fn new(verbose: u8, to_stderr: bool) -> Self {
        let tty = if to_stderr { std::io::stderr().is_terminal() } else { std::io::stdout().is_terminal() };
        ProgbarLogger {
            verbose,
            to_stderr,
            live: verbose == 1 && tty,
            epochs: 0,
            steps: 0,
            start: Instant::now(),
            last_draw: Instant::now(),
            width: 0,
            first_batch: None,
        }
    }

    fn metrics(logs: &Logs) -> String {
        let mut s = String::new();
        for (k, v) in logs {
            s += &format!(" - {k}: {}", keras_value(*v));
        }
        s
    }

    /// The finished epoch's line, as Keras prints it with verbose 2.
    /// `seconds` is the epoch's time in this run and `per_step` the time per batch trained in it.
    pub fn epoch_line(steps: usize, seconds: f64, per_step: f64, logs: &Logs) -> String {
        format!("{steps}/{steps} - {seconds:.0}s -{}{}\n", format_time(per_step), Self::metrics(logs))
    }

    fn draw(&mut self, text: String, visible: usize, end: bool) {
        let pad = self.width.saturating_sub(visible);
        let mut s = format!("\r{text}{}", " ".repeat(pad));
        if end {
            s.push('\n');
        }
        self.width = visible;
        emit(self.to_stderr, &s);
    }
}

/// Width of the full bar, in characters (Keras' 20).
const BAR_WIDTH: usize = 20;
/// The shortest bar drawn; below it the bar is left out.
const MIN_BAR_WIDTH: usize = 6;

/// The live progress line for `current` of `steps` batches: counter, bar, `lead` (the ETA, or
/// the epoch's time at its end), time per step and the metrics, as Keras draws it, with ANSI
/// colours. Fitted to a terminal `columns` wide: its visible length (also returned) stays
/// below `columns`, shortening the bar, then leaving out metrics from the last, then the bar,
/// then the time per step.
pub fn live_line(
    current: usize,
    steps: usize,
    lead: &str,
    per_step: f64,
    logs: &Logs,
    columns: usize,
) -> (String, usize) {
    let digits = steps.to_string().len();
    let counter = format!("{current:>digits$}/{steps}");
    let time = format_time(per_step);
    let metrics: Vec<String> = logs.iter().map(|(k, v)| format!(" - {k}: {}", keras_value(*v))).collect();
    let limit = columns.saturating_sub(1);
    let len = |bar: usize, time: bool, kept: usize| {
        counter.chars().count()
            + if bar > 0 { bar + 1 } else { 0 }
            + 1
            + lead.chars().count()
            + if time { time_len(per_step) } else { 0 }
            + metrics[..kept].iter().map(|m| m.chars().count()).sum::<usize>()
    };
    let (mut bar, mut show_time, mut kept) = (BAR_WIDTH, true, metrics.len());
    if len(bar, show_time, kept) > limit {
        bar = BAR_WIDTH - (len(bar, show_time, kept) - limit).min(BAR_WIDTH - MIN_BAR_WIDTH);
    }
    while len(bar, show_time, kept) > limit && kept > 0 {
        kept -= 1;
    }
    // Room left by the metrics that went out goes back to the bar.
    if len(bar, show_time, kept) < limit {
        bar = (bar + limit - len(bar, show_time, kept)).min(BAR_WIDTH);
    }
    if len(bar, show_time, kept) > limit {
        bar = 0;
    }
    if len(bar, show_time, kept) > limit {
        show_time = false;
    }
    let done = bar * current.min(steps) / steps.max(1);
    let mut text = format!("\x1b[1m{counter}\x1b[0m");
    if bar > 0 {
        text += &format!(" \x1b[32m{}\x1b[0m\x1b[37m{}\x1b[0m", "━".repeat(done), "━".repeat(bar - done));
    }
    text += &format!(" \x1b[1m{lead}\x1b[0m");
    if show_time {
        text += &time;
    }
    for m in &metrics[..kept] {
        text += m;
    }
    let mut visible = len(bar, show_time, kept);
    if visible > limit {
        // Narrower than the counter and the ETA: the plain text, cut.
        let plain: String = strip_ansi(&text).chars().take(limit).collect();
        visible = plain.chars().count();
        text = plain;
    }
    (text, visible)
}

fn time_len(per_step: f64) -> usize {
    format_time(per_step).chars().count()
}

/// Columns of the terminal the progress goes to (`COLUMNS` when it cannot be asked; 80 when
/// neither says).
fn terminal_columns(to_stderr: bool) -> usize {
    let term = if to_stderr { console::Term::stderr() } else { console::Term::stdout() };
    term.size_checked()
        .map(|(_, c)| c as usize)
        .filter(|&c| c > 0)
        .or_else(|| std::env::var("COLUMNS").ok()?.trim().parse().ok())
        .unwrap_or(80)
}

/// Seconds per step of an epoch: `elapsed` seconds were spent on the batches from `first`
/// (0-based; not 0 when the epoch was resumed from a checkpoint) up to `done` batches done.
pub fn seconds_per_step(elapsed: f64, first: usize, done: usize) -> f64 {
    elapsed / done.saturating_sub(first).max(1) as f64
}

/// Keras' time-per-step: ` 1s/step`, ` 6ms/step` or ` 950us/step`.
fn format_time(per: f64) -> String {
    if per >= 1.0 || per == 0.0 {
        format!(" {per:.0}s/step")
    } else if per >= 1e-3 {
        format!(" {:.0}ms/step", per * 1e3)
    } else {
        format!(" {:.0}us/step", per * 1e6)
    }
}

impl Callback for ProgbarLogger {
    fn on_train_begin(&mut self, params: &TrainParams, _model: &mut Sequential) -> Result<()> {
        self.epochs = params.epochs;
        self.steps = params.steps;
        Ok(())
    }

    fn on_epoch_begin(&mut self, epoch: usize, _model: &mut Sequential) -> Result<()> {
        if self.epochs > 1 {
            emit(self.to_stderr, &format!("Epoch {}/{}\n", epoch + 1, self.epochs));
        }
        self.start = Instant::now();
        self.last_draw = self.start;
        self.width = 0;
        self.first_batch = None;
        Ok(())
    }

    fn on_train_batch_end(&mut self, batch: usize, logs: &Logs, _model: &mut Sequential) -> Result<Control> {
        let first = *self.first_batch.get_or_insert(batch);
        if !self.live {
            return Ok(Control::Continue);
        }
        let now = Instant::now();
        let current = batch + 1;
        if now.duration_since(self.last_draw).as_secs_f64() < 0.05 && current < self.steps {
            return Ok(Control::Continue);
        }
        self.last_draw = now;
        let elapsed = now.duration_since(self.start).as_secs_f64();
        let per = seconds_per_step(elapsed, first, current);
        let eta = per * (self.steps - current) as f64;
        let eta_s = if eta > 3600.0 {
            format!("{}:{:02}:{:02}", eta as u64 / 3600, (eta as u64 % 3600) / 60, eta as u64 % 60)
        } else if eta > 60.0 {
            format!("{}:{:02}", eta as u64 / 60, eta as u64 % 60)
        } else {
            format!("{}s", eta as u64)
        };
        let (text, visible) = live_line(current, self.steps, &eta_s, per, logs, terminal_columns(self.to_stderr));
        self.draw(text, visible, false);
        Ok(Control::Continue)
    }

    fn on_epoch_end(&mut self, _epoch: usize, logs: &Logs, _model: &mut Sequential) -> Result<Control> {
        let elapsed = self.start.elapsed().as_secs_f64();
        let per = seconds_per_step(elapsed, self.first_batch.unwrap_or(0), self.steps);
        if self.live {
            // The epoch's last draw is never redrawn: it may wrap, so it keeps every metric
            // (the validation ones above all).
            let lead = format!("{elapsed:.0}s");
            let (text, visible) = live_line(self.steps, self.steps, &lead, per, logs, usize::MAX);
            self.draw(text, visible, true);
        } else if self.verbose > 0 {
            emit(self.to_stderr, &Self::epoch_line(self.steps, elapsed, per, logs));
        }
        Ok(Control::Continue)
    }
}

/// `text` without ANSI colour sequences (for width computations).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Formats a metric value as Keras' progress bar does: 4 decimals, or scientific below 1e-3.
pub fn keras_value(v: f64) -> String {
    if v.abs() > 1e-3 {
        format!("{v:.4}")
    } else {
        // Python's `{:.4e}`: mantissa, 'e', sign, at least two exponent digits.
        let s = format!("{v:.4e}");
        match s.split_once('e') {
            Some((m, e)) => {
                let (sign, digits) = match e.strip_prefix('-') {
                    Some(d) => ('-', d),
                    None => ('+', e),
                };
                format!("{m}e{sign}{digits:0>2}")
            }
            None => s,
        }
    }
}

/// Writes `text` followed by a flush, ignoring broken pipes.
pub(crate) fn emit(to_stderr: bool, text: &str) {
    if to_stderr {
        let mut e = std::io::stderr().lock();
        let _ = e.write_all(text.as_bytes());
        let _ = e.flush();
    } else {
        let mut o = std::io::stdout().lock();
        let _ = o.write_all(text.as_bytes());
        let _ = o.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keras_number_format() {
        assert_eq!(keras_value(0.912345), "0.9123");
        assert_eq!(keras_value(2.5), "2.5000");
        assert_eq!(keras_value(0.0001234), "1.2340e-04");
        assert_eq!(keras_value(0.0), "0.0000e+00");
    }

    fn some_logs() -> Logs {
        let mut logs = Logs::new();
        for (k, v) in [("accuracy", 0.871234), ("loss", 0.43314), ("val_accuracy", 0.9677), ("val_loss", 0.10661)] {
            logs.insert(k.into(), v);
        }
        logs
    }

    /// The live line stays below the terminal's width, so a redraw never wraps: at 60 columns
    /// the last metrics go; at 40 only counter, bar, ETA and time remain; at 20 the bar goes too.
    #[test]
    fn the_live_line_fits_narrow_terminals() {
        let logs = some_logs();
        let (wide, n) = live_line(120, 469, "3s", 0.006, &logs, 200);
        let plain = strip_ansi(&wide);
        assert_eq!(plain.chars().count(), n);
        assert_eq!(
            plain,
            format!(
                "120/469 {} 3s 6ms/step - accuracy: 0.8712 - loss: 0.4331 - val_accuracy: 0.9677 - val_loss: 0.1066",
                "━".repeat(20)
            )
        );
        for columns in [60, 40, 20, 8, 1] {
            let (line, n) = live_line(120, 469, "3s", 0.006, &logs, columns);
            let plain = strip_ansi(&line);
            assert_eq!(plain.chars().count(), n);
            assert!(n < columns.max(1) || n == 0, "{columns} columns: {plain:?} is {n} long");
        }
        let (line, n) = live_line(120, 469, "3s", 0.006, &logs, 60);
        assert_eq!(strip_ansi(&line), format!("120/469 {} 3s 6ms/step - accuracy: 0.8712", "━".repeat(20)));
        assert_eq!(n, 59);
        let (line, n) = live_line(120, 469, "3s", 0.006, &logs, 40);
        assert_eq!(strip_ansi(&line), format!("120/469 {} 3s 6ms/step", "━".repeat(19)));
        assert_eq!(n, 39);
        assert_eq!(strip_ansi(&live_line(120, 469, "3s", 0.006, &logs, 20).0), "120/469 3s 6ms/step");
        assert_eq!(strip_ansi(&live_line(120, 469, "3s", 0.006, &logs, 12).0), "120/469 3s");
    }

    /// An epoch resumed at batch 40 of 50 trains 10 batches in this run: its time is divided
    /// by 10, not by 50 (nor by the 41 batches done when the first is drawn).
    #[test]
    fn a_resumed_epoch_divides_its_time_by_the_batches_it_trained() {
        assert_eq!(seconds_per_step(1.0, 40, 50), 0.1);
        assert_eq!(seconds_per_step(0.1, 40, 41), 0.1);
        assert_eq!(seconds_per_step(4.69, 0, 469), 0.01);
        assert_eq!(seconds_per_step(0.0, 3, 3), 0.0, "no batch trained: no division by zero");
    }

    #[test]
    fn verbose_two_line_matches_keras() {
        let mut logs = Logs::new();
        logs.insert("loss".into(), 0.43314);
        logs.insert("accuracy".into(), 0.871234);
        logs.insert("val_loss".into(), 0.10661);
        logs.insert("val_accuracy".into(), 0.9677);
        assert_eq!(
            ProgbarLogger::epoch_line(469, 2.6, seconds_per_step(2.6, 0, 469), &logs),
            "469/469 - 3s - 6ms/step - accuracy: 0.8712 - loss: 0.4331 - val_accuracy: 0.9677 - val_loss: 0.1066\n"
        );
        assert_eq!(format_time(1.4), " 1s/step");
        assert_eq!(format_time(0.0004), " 400us/step");
        assert_eq!(strip_ansi("\x1b[1m12/34\x1b[0m x"), "12/34 x");
    }
}
