//! Keras' training output: the progress logger (`Epoch 1/10`, a live bar with ETA on a
//! terminal, or one line per epoch), and Keras' way of printing numbers.

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
    pub fn epoch_line(steps: usize, seconds: f64, logs: &Logs) -> String {
        let per_step = seconds / steps.max(1) as f64;
        format!("{steps}/{steps} - {seconds:.0}s -{}{}\n", format_time(per_step), Self::metrics(logs))
    }

    fn bar(&self, current: usize) -> String {
        let width = 20;
        let done = width * current / self.steps.max(1);
        let digits = self.steps.to_string().len();
        format!(
            "\x1b[1m{current:>digits$}/{}\x1b[0m \x1b[32m{}\x1b[0m\x1b[37m{}\x1b[0m",
            self.steps,
            "━".repeat(done),
            "━".repeat(width - done)
        )
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
        Ok(())
    }

    fn on_train_batch_end(&mut self, batch: usize, logs: &Logs, _model: &mut Sequential) -> Result<Control> {
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
        let per = elapsed / current as f64;
        let eta = per * (self.steps - current) as f64;
        let eta_s = if eta > 3600.0 {
            format!("{}:{:02}:{:02}", eta as u64 / 3600, (eta as u64 % 3600) / 60, eta as u64 % 60)
        } else if eta > 60.0 {
            format!("{}:{:02}", eta as u64 / 60, eta as u64 % 60)
        } else {
            format!("{}s", eta as u64)
        };
        let bar = self.bar(current);
        let info = format!(" \x1b[1m{eta_s}\x1b[0m{}{}", format_time(per), Self::metrics(logs));
        let visible = strip_ansi(&bar).chars().count() + strip_ansi(&info).chars().count();
        self.draw(format!("{bar}{info}"), visible, false);
        Ok(Control::Continue)
    }

    fn on_epoch_end(&mut self, _epoch: usize, logs: &Logs, _model: &mut Sequential) -> Result<Control> {
        let elapsed = self.start.elapsed().as_secs_f64();
        if self.live {
            let bar = self.bar(self.steps);
            let per = elapsed / self.steps.max(1) as f64;
            let info = format!(" \x1b[1m{elapsed:.0}s\x1b[0m{}{}", format_time(per), Self::metrics(logs));
            let visible = strip_ansi(&bar).chars().count() + strip_ansi(&info).chars().count();
            self.draw(format!("{bar}{info}"), visible, true);
        } else if self.verbose > 0 {
            emit(self.to_stderr, &Self::epoch_line(self.steps, elapsed, logs));
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

    #[test]
    fn verbose_two_line_matches_keras() {
        let mut logs = Logs::new();
        logs.insert("loss".into(), 0.43314);
        logs.insert("accuracy".into(), 0.871234);
        logs.insert("val_loss".into(), 0.10661);
        logs.insert("val_accuracy".into(), 0.9677);
        assert_eq!(
            ProgbarLogger::epoch_line(469, 2.6, &logs),
            "469/469 - 3s - 6ms/step - accuracy: 0.8712 - loss: 0.4331 - val_accuracy: 0.9677 - val_loss: 0.1066\n"
        );
        assert_eq!(format_time(1.4), " 1s/step");
        assert_eq!(format_time(0.0004), " 400us/step");
        assert_eq!(strip_ansi("\x1b[1m12/34\x1b[0m x"), "12/34 x");
    }
}
