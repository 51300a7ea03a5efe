//! convnet's own model file: one safetensors file whose tensors are the weights (and the
//! optimizer's slots) and whose metadata holds the Keras model and training configs.
//!
//! Tensor names: `weights/<layer>/<weight>` and `optimizer/<index>/<slot>` (index = the weight's
//! position among the trainable weights). Metadata keys: `format` = `convnet`, `format_version`,
//! `model_config`, `training_config`, `optimizer_iterations`, `class_names`.

use super::config;
use crate::error::{Error, Result};
use crate::nn::model::Sequential;
use crate::nn::optimizers::OptimizerState;
use crate::tensor::Tensor;
use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;
use std::collections::HashMap;
use std::path::Path;

/// Serialises a built model to safetensors bytes.
pub fn to_bytes(model: &Sequential, include_optimizer: bool) -> Result<Vec<u8>> {
    to_bytes_with_metadata(model, include_optimizer, &[])
}

/// Serialises a built model with extra metadata entries (a checkpoint's training state).
pub fn to_bytes_with_metadata(
    model: &Sequential,
    include_optimizer: bool,
    extra: &[(&str, String)],
) -> Result<Vec<u8>> {
    let mut owned: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for l in model.layers() {
        for p in l.params() {
            owned.push((format!("weights/{}/{}", l.name(), p.name), p.shape.clone(), f32_bytes(&p.value)));
        }
    }
    let state = model.optimizer_state();
    let slot_names = model.optimizer().map(|o| o.slot_names()).unwrap_or(&[]);
    let shapes: Vec<Vec<usize>> = model.trainable_params().map(|p| p.shape.clone()).collect();
    let saved_slots: &[Vec<Vec<f32>>] = if include_optimizer { &state.slots } else { &[] };
    for (i, slots) in saved_slots.iter().enumerate() {
        for (s, values) in slots.iter().enumerate() {
            let name = slot_names.get(s).copied().unwrap_or("slot");
            owned.push((format!("optimizer/{i}/{name}"), shapes[i].clone(), f32_bytes(values)));
        }
    }
    let views: Vec<(String, TensorView<'_>)> = owned
        .iter()
        .map(|(n, s, b)| {
            TensorView::new(Dtype::F32, s.clone(), b)
                .map(|v| (n.clone(), v))
                .map_err(|e| Error::config(format!("tensor {n}: {e}")))
        })
        .collect::<Result<_>>()?;
    let mut meta = HashMap::new();
    meta.insert("format".to_string(), "convnet".to_string());
    meta.insert("format_version".to_string(), "1".to_string());
    meta.insert("model_config".to_string(), config::model_config(model).to_string());
    if let Some(t) = config::training_config(model) {
        meta.insert("training_config".to_string(), t.to_string());
        if include_optimizer {
            meta.insert("optimizer_iterations".to_string(), state.iterations.to_string());
        }
    }
    if let Some(c) = model.class_names() {
        meta.insert("class_names".to_string(), serde_json::to_string(c).unwrap_or_default());
    }
    for (k, v) in extra {
        meta.insert(k.to_string(), v.clone());
    }
    safetensors::serialize(views, Some(meta)).map_err(|e| Error::config(format!("cannot serialise the model: {e}")))
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn tensor_f32(st: &SafeTensors<'_>, name: &str, path: &Path) -> Result<Tensor> {
    let t = st.tensor(name).map_err(|_| Error::format(path, format!("the file has no tensor {name}")))?;
    if t.dtype() != Dtype::F32 {
        return Err(Error::format(path, format!("tensor {name} is {:?}, expected F32", t.dtype())));
    }
    let data: Vec<f32> = t.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    Tensor::from_vec(t.shape(), data).map_err(|e| Error::format(path, e.to_string()))
}

/// True when `bytes` look like a safetensors file.
pub fn sniff(bytes: &[u8]) -> bool {
    if bytes.len() < 10 {
        return false;
    }
    let n = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"));
    n >= 2 && n <= (bytes.len() - 8) as u64 && bytes[8] == b'{'
}

/// The metadata entries of a convnet safetensors file.
pub fn metadata(bytes: &[u8], path: &Path) -> Result<HashMap<String, String>> {
    let (_, meta) =
        SafeTensors::read_metadata(bytes).map_err(|e| Error::format(path, format!("not a convnet model file: {e}")))?;
    Ok(meta.metadata().clone().unwrap_or_default())
}

/// Reads a model written by [`to_bytes`].
pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Sequential> {
    let meta = metadata(bytes, path)?;
    if meta.get("format").map(String::as_str) != Some("convnet") {
        return Err(Error::format(path, "a safetensors file without convnet's model metadata"));
    }
    let st = SafeTensors::deserialize(bytes).map_err(|e| Error::format(path, format!("corrupt tensors: {e}")))?;
    let json = |key: &str| -> Result<Option<serde_json::Value>> {
        meta.get(key)
            .map(|s| serde_json::from_str(s).map_err(|e| Error::format(path, format!("{key} is not JSON: {e}"))))
            .transpose()
    };
    let mc = json("model_config")?.ok_or_else(|| Error::format(path, "no model_config in the file"))?;
    // Every weight is a tensor in the file: that bounds what the config may make us allocate.
    let mut model = crate::nn::layers::with_weight_budget(bytes.len() / 4 + 1024, || {
        let mut m = config::model_from_config(&mc)?;
        m.build()?;
        Ok(m)
    })
    .map_err(|e| Error::format(path, e.to_string()))?;
    let mut weights = Vec::new();
    for l in model.layers() {
        for p in l.params() {
            weights.push(tensor_f32(&st, &format!("weights/{}/{}", l.name(), p.name), path)?);
        }
    }
    model.set_weights(&weights).map_err(|e| Error::format(path, e.to_string()))?;
    if let Some(tc) = json("training_config")? {
        config::compile_from_config(&mut model, &tc).map_err(|e| Error::format(path, e.to_string()))?;
        let names = model.optimizer().map(|o| o.slot_names()).unwrap_or(&[]);
        let iterations: u64 = meta.get("optimizer_iterations").and_then(|s| s.parse().ok()).unwrap_or(0);
        let n = model.trainable_params().count();
        let mut slots = Vec::with_capacity(n);
        let have = names.is_empty() || st.tensor(&format!("optimizer/0/{}", names[0])).is_ok();
        if iterations > 0 && have {
            for i in 0..n {
                let mut s = Vec::new();
                for name in names {
                    s.push(tensor_f32(&st, &format!("optimizer/{i}/{name}"), path)?.into_vec());
                }
                slots.push(s);
            }
            model
                .set_optimizer_state(OptimizerState { iterations, slots, ..Default::default() })
                .map_err(|e| Error::format(path, e.to_string()))?;
        }
    }
    if let Some(c) = json("class_names")? {
        let names: Vec<String> = serde_json::from_value(c).map_err(|e| Error::format(path, e.to_string()))?;
        model.set_class_names(names);
    }
    Ok(model)
}
