//! `History`: the per-epoch metrics a `fit` returns (Keras' `History.history`), as CSV and
//! JSON in Keras' layouts.

use crate::error::{Error, Result};
use crate::nn::model::Logs;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Per-epoch metrics of a `fit` (Keras' `History.history`), plus seconds per epoch.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    /// Epoch numbers, 0-based as Keras counts them.
    pub epoch: Vec<usize>,
    /// Metric name → one value per epoch (`loss`, `accuracy`, `val_loss`, …).
    pub history: std::collections::BTreeMap<String, Vec<f64>>,
    /// Wall-clock seconds of each epoch (training and validation).
    pub seconds: Vec<f64>,
}

impl History {
    /// Values of metric `name`, one per epoch.
    pub fn get(&self, name: &str) -> Option<&[f64]> {
        self.history.get(name).map(Vec::as_slice)
    }

    /// The last value of metric `name`.
    pub fn last(&self, name: &str) -> Option<f64> {
        self.get(name).and_then(|v| v.last().copied())
    }

    /// Appends one epoch's logs.
    pub fn push(&mut self, epoch: usize, logs: &Logs, seconds: f64) {
        self.epoch.push(epoch);
        self.seconds.push(seconds);
        for (k, v) in logs {
            self.history.entry(k.clone()).or_default().push(*v);
        }
    }

    /// CSV with a header `epoch,<metrics…>` and one row per epoch (Keras' CSVLogger layout).
    pub fn to_csv(&self) -> String {
        let keys: Vec<&String> = self.history.keys().collect();
        let mut s = String::from("epoch");
        for k in &keys {
            s.push(',');
            s.push_str(k);
        }
        s.push('\n');
        for (i, e) in self.epoch.iter().enumerate() {
            s.push_str(&e.to_string());
            for k in &keys {
                s.push(',');
                if let Some(v) = self.history[*k].get(i) {
                    s.push_str(&format!("{v}"));
                }
            }
            s.push('\n');
        }
        s
    }

    /// Parses the CSV written by [`History::to_csv`] (or Keras' CSVLogger).
    pub fn from_csv(text: &str, path: &Path) -> Result<Self> {
        let mut lines = text.lines().filter(|l| !l.trim().is_empty());
        let header: Vec<&str> =
            lines.next().ok_or_else(|| Error::format(path, "empty history file"))?.split(',').map(str::trim).collect();
        if header.first() != Some(&"epoch") {
            return Err(Error::format(path, "a history CSV starts with an `epoch` column"));
        }
        let mut h = History::default();
        for (ln, line) in lines.enumerate() {
            let cells: Vec<&str> = line.split(',').map(str::trim).collect();
            if cells.len() != header.len() {
                return Err(Error::format(
                    path,
                    format!("row {} has {} cells, the header {}", ln + 2, cells.len(), header.len()),
                ));
            }
            let epoch: usize = cells[0]
                .parse()
                .map_err(|_| Error::format(path, format!("row {}: epoch {:?} is not a number", ln + 2, cells[0])))?;
            h.epoch.push(epoch);
            for (k, c) in header.iter().zip(&cells).skip(1) {
                let v: f64 = c
                    .parse()
                    .map_err(|_| Error::format(path, format!("row {}: {k} = {c:?} is not a number", ln + 2)))?;
                h.history.entry(k.to_string()).or_default().push(v);
            }
        }
        Ok(h)
    }

    /// JSON `{"epoch": [...], "history": {...}, "seconds": [...]}`.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Parses the JSON written by [`History::to_json`], or a bare Keras `history` dict.
    pub fn from_json(text: &str, path: &Path) -> Result<Self> {
        let v: serde_json::Value =
            serde_json::from_str(text).map_err(|e| Error::format(path, format!("not JSON: {e}")))?;
        let hist = v.get("history").unwrap_or(&v);
        let obj = hist.as_object().ok_or_else(|| Error::format(path, "a history JSON is an object of metric lists"))?;
        let mut h = History::default();
        for (k, vals) in obj {
            let list = vals
                .as_array()
                .ok_or_else(|| Error::format(path, format!("{k} is not a list")))?
                .iter()
                .map(|x| x.as_f64().ok_or_else(|| Error::format(path, format!("{k} holds a non-number"))))
                .collect::<Result<Vec<f64>>>()?;
            h.history.insert(k.clone(), list);
        }
        let n = h.history.values().map(Vec::len).max().unwrap_or(0);
        h.epoch = match v.get("epoch").and_then(|e| e.as_array()) {
            Some(e) => e.iter().filter_map(|x| x.as_u64().map(|x| x as usize)).collect(),
            None => (0..n).collect(),
        };
        h.seconds = v
            .get("seconds")
            .and_then(|s| s.as_array())
            .map(|s| s.iter().filter_map(|x| x.as_f64()).collect())
            .unwrap_or_default();
        Ok(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_csv_and_json_round_trip() {
        let mut h = History::default();
        let mut l = Logs::new();
        l.insert("loss".into(), 0.5);
        l.insert("accuracy".into(), 0.8);
        h.push(0, &l, 1.0);
        l.insert("loss".into(), 0.25);
        l.insert("accuracy".into(), 0.875);
        h.push(1, &l, 1.0);
        let csv = h.to_csv();
        assert_eq!(csv, "epoch,accuracy,loss\n0,0.8,0.5\n1,0.875,0.25\n");
        let back = History::from_csv(&csv, Path::new("h.csv")).unwrap();
        assert_eq!(back.history, h.history);
        let back = History::from_json(&h.to_json(), Path::new("h.json")).unwrap();
        assert_eq!(back.history, h.history);
        assert!(History::from_csv("epoch,loss\n0,abc\n", Path::new("x")).is_err());
        assert!(History::from_csv("", Path::new("x")).is_err());
    }
}
