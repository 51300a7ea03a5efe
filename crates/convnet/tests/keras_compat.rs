//! convnet's half of the compatibility test `tests/keras_check/compat.py`, which writes Keras
//! files the way notebooks do and checks what convnet makes of them. Ignored in normal runs;
//! the check runs it:
//! `CONVNET_COMPAT_DIR=dir cargo test --release -p convnet --test keras_compat -- --ignored`.
//!
//! The contract with the Python side, all in `dir`:
//! - `manifest.json` lists the files to read: `{"files": [{"id", "file", "x", "x_shape",
//!   "y", "y_shape"}]}`; `x` and `y` name raw little-endian f32 arrays (`y` may be null:
//!   nothing to train on). Targets are as the file's loss wants them: one-hot rows, or integer
//!   labels stored as f32 for the sparse losses.
//! - For each entry, convnet loads `file`, predicts `x` (`<id>.cn_pred.bin`), trains one step
//!   on (`x`, `y`) when the model is compiled and predicts again (`<id>.cn_next.bin`), saves
//!   the model as `<id>.cn.keras` and `<id>.cn.h5`, then trains one more step from that saved
//!   state and predicts (`<id>.cn_next2.bin`), for Keras to repeat from convnet's files.
//! - `convnet.json` reports each entry: the error of each stage (null when it went well),
//!   load warnings, the trainable and non-trainable parameter counts, and which of the outputs
//!   above exist.
//! - An entry with `xs` (a list of `{"x", "x_shape"}`) is a model with several inputs or
//!   outputs: convnet predicts each output (`<id>.cn_pred_<k>.bin`) and saves the model, no
//!   training.
//!
//! Nothing here judges: the comparisons against Keras are made and printed by `compat.py`.
//! Every entry runs even when an earlier one fails, and a panic counts as that entry's error.

use convnet::prelude::*;
use serde_json::{json, Map, Value};
use std::path::Path;

/// Reads a raw little-endian f32 array of `shape`.
fn read_bin(path: &Path, shape: &[usize]) -> std::result::Result<Tensor, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let data: Vec<f32> = bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    Tensor::from_vec(shape, data).map_err(|e| format!("{}: {e}", path.display()))
}

/// Writes `t` as a raw little-endian f32 array.
fn write_bin(path: &Path, t: &Tensor) {
    let bytes: Vec<u8> = t.data().iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(path, bytes).unwrap();
}

fn shape_of(v: &Value) -> Vec<usize> {
    v.as_array().map(|a| a.iter().filter_map(Value::as_u64).map(|d| d as usize).collect()).unwrap_or_default()
}

/// Runs one manifest entry; fills `rep` stage by stage, so a failure leaves the earlier
/// stages' results in place.
fn run_entry(dir: &Path, entry: &Value, rep: &mut Map<String, Value>) -> std::result::Result<(), String> {
    let id = entry["id"].as_str().ok_or("entry without id")?.to_string();
    let out = |suffix: &str| dir.join(format!("{id}.{suffix}"));
    if let Some(xs) = entry["xs"].as_array() {
        return run_many(dir, entry, xs, &out, rep);
    }
    let x = read_bin(&dir.join(entry["x"].as_str().ok_or("entry without x")?), &shape_of(&entry["x_shape"]))?;
    let y = match entry["y"].as_str() {
        Some(y) => Some(read_bin(&dir.join(y), &shape_of(&entry["y_shape"]))?),
        None => None,
    };
    let batch = x.shape()[0];

    let (mut m, warnings) = convnet::io::load_model_with_warnings(&dir.join(entry["file"].as_str().ok_or("no file")?))
        .map_err(|e| {
            rep.insert("load".into(), json!(e.to_string()));
            "load".to_string()
        })?;
    rep.insert("load".into(), Value::Null);
    rep.insert("warnings".into(), json!(warnings));
    rep.insert("compiled".into(), json!(m.compiled().is_some()));
    let trainable = m.count_trainable_params();
    rep.insert("params".into(), json!({"trainable": trainable, "non_trainable": m.count_params() - trainable}));

    match m.predict(&x, batch) {
        Ok(p) => {
            write_bin(&out("cn_pred.bin"), &p);
            rep.insert("predict".into(), Value::Null);
        }
        Err(e) => {
            rep.insert("predict".into(), json!(e.to_string()));
        }
    }

    // One step, as Keras would take it next from the file's state.
    let trained = match (&y, m.compiled()) {
        (None, _) => None,
        (Some(_), None) => Some(Err("the model was loaded uncompiled".to_string())),
        (Some(y), Some(_)) => Some(m.train_on_batch(&x, y).map_err(|e| e.to_string()).and_then(|_| {
            let p = m.predict(&x, batch).map_err(|e| e.to_string())?;
            write_bin(&out("cn_next.bin"), &p);
            Ok(())
        })),
    };
    if let Some(r) = &trained {
        rep.insert("train".into(), json!(r.as_ref().err()));
    }

    // The file convnet writes holds the state after that step (or the loaded state).
    for ext in ["keras", "h5"] {
        let r = convnet::io::save_model(&m, &out(&format!("cn.{ext}")));
        rep.insert(format!("save_{ext}"), json!(r.err().map(|e| e.to_string())));
    }
    if let (Some(y), Some(Ok(()))) = (&y, &trained) {
        let r = m.train_on_batch(&x, y).map_err(|e| e.to_string()).and_then(|_| {
            let p = m.predict(&x, batch).map_err(|e| e.to_string())?;
            write_bin(&out("cn_next2.bin"), &p);
            Ok(())
        });
        rep.insert("train2".into(), json!(r.err()));
    }
    Ok(())
}

/// An entry of a model with several inputs or outputs (`xs`: `[{"x", "x_shape"}, …]`):
/// convnet loads it, predicts each output (`<id>.cn_pred_<k>.bin`) and saves it as
/// `<id>.cn.keras` and `<id>.cn.h5`; no training.
fn run_many(
    dir: &Path,
    entry: &Value,
    xs: &[Value],
    out: &dyn Fn(&str) -> std::path::PathBuf,
    rep: &mut Map<String, Value>,
) -> std::result::Result<(), String> {
    let xs: Vec<Tensor> = xs
        .iter()
        .map(|x| read_bin(&dir.join(x["x"].as_str().unwrap_or("")), &shape_of(&x["x_shape"])))
        .collect::<std::result::Result<_, _>>()?;
    let (mut m, warnings) = convnet::io::load_model_with_warnings(&dir.join(entry["file"].as_str().ok_or("no file")?))
        .map_err(|e| {
            rep.insert("load".into(), json!(e.to_string()));
            "load".to_string()
        })?;
    rep.insert("load".into(), Value::Null);
    rep.insert("warnings".into(), json!(warnings));
    let trainable = m.count_trainable_params();
    rep.insert("params".into(), json!({"trainable": trainable, "non_trainable": m.count_params() - trainable}));
    match m.predict_many(&xs, 4) {
        Ok(outs) => {
            for (k, o) in outs.iter().enumerate() {
                write_bin(&out(&format!("cn_pred_{k}.bin")), o);
            }
            rep.insert("predict".into(), Value::Null);
        }
        Err(e) => {
            rep.insert("predict".into(), json!(e.to_string()));
        }
    }
    for ext in ["keras", "h5"] {
        let r = convnet::io::save_model(&m, &out(&format!("cn.{ext}")));
        rep.insert(format!("save_{ext}"), json!(r.err().map(|e| e.to_string())));
    }
    Ok(())
}

#[test]
#[ignore = "run by tests/keras_check/compat.py"]
fn keras_compat() {
    let dir = std::path::PathBuf::from(std::env::var("CONVNET_COMPAT_DIR").expect("set CONVNET_COMPAT_DIR"));
    let manifest: Value = serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    let mut reports = Map::new();
    for entry in manifest["files"].as_array().expect("manifest.files") {
        let id = entry["id"].as_str().unwrap_or("?").to_string();
        let mut rep = Map::new();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_entry(&dir, entry, &mut rep)));
        match r {
            Ok(Ok(())) => {}
            // A load error is already in the report; anything else (a missing input) is not.
            Ok(Err(e)) if !rep.contains_key("load") => {
                rep.insert("error".into(), json!(e));
            }
            Ok(Err(_)) => {}
            Err(panic) => {
                let msg = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "panic".into());
                rep.insert("error".into(), json!(format!("panicked: {msg}")));
            }
        }
        reports.insert(id, Value::Object(rep));
    }
    std::fs::write(dir.join("convnet.json"), serde_json::to_vec_pretty(&Value::Object(reports)).unwrap()).unwrap();
}
