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
        let first = lines.next().ok_or_else(|| Error::format(path, "empty history file"))?;
        // Keras' CSVLogger may use another separator (`separator=";"`); pandas' `to_csv`
        // writes its row index under an empty first header instead of `epoch`.
        let sep = if !first.contains(',') && first.contains(';') { ';' } else { ',' };
        let header: Vec<&str> = first.split(sep).map(|c| c.trim().trim_matches('"')).collect();
        if !matches!(header.first(), Some(&"epoch") | Some(&"")) {
            return Err(Error::format(
                path,
                "a history CSV starts with an `epoch` column (Keras' CSVLogger) or an unnamed index (pandas' to_csv)",
            ));
        }
        let mut h = History::default();
        for (ln, line) in lines.enumerate() {
            let cells: Vec<&str> = line.split(sep).map(str::trim).collect();
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
                h.history.entry(keras3_name(k)).or_default().push(v);
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
            h.history.insert(keras3_name(k), list);
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

/// Keras 3's name of a history column: Keras 2 logged accuracy as `acc` / `val_acc`.
fn keras3_name(key: &str) -> String {
    match key {
        "acc" => "accuracy".into(),
        "val_acc" => "val_accuracy".into(),
        other => other.to_string(),
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
        assert!(History::from_csv("loss,accuracy\n0.5,0.8\n", Path::new("x")).is_err());
    }

    /// The other dialects a user brings: CSVLogger with `;`, pandas' `to_csv` (unnamed index),
    /// Keras 2's `acc` names, in CSV and JSON.
    #[test]
    fn other_csv_dialects_and_keras2_names_are_read() {
        let want = |h: &History| {
            assert_eq!(h.epoch, [0, 1]);
            assert_eq!(h.get("accuracy").unwrap(), [0.8, 0.9]);
            assert_eq!(h.get("val_accuracy").unwrap(), [0.7, 0.75]);
        };
        want(&History::from_csv("epoch;accuracy;val_accuracy\n0;0.8;0.7\n1;0.9;0.75\n", Path::new("x")).unwrap());
        want(&History::from_csv(",loss,acc,val_acc\n0,0.5,0.8,0.7\n1,0.4,0.9,0.75\n", Path::new("x")).unwrap());
        want(&History::from_json(r#"{"acc": [0.8, 0.9], "val_acc": [0.7, 0.75]}"#, Path::new("x")).unwrap());
    }
}
