//! Model and training configs as Keras serialises them: `model_config` (the architecture)
//! and `training_config` / `compile_config` (loss, optimizer, metrics).
//!
//! convnet writes the Keras 2 form (`batch_input_shape`, string dtypes), which both Keras 2 and
//! Keras 3 read, and reads both forms.

use crate::error::{Error, Result};
use crate::nn::layers::{registry, shape_list};
use crate::nn::losses::Loss;
use crate::nn::metrics::Metric;
use crate::nn::model::Sequential;
use crate::nn::optimizers::Optimizer;
use serde_json::{json, Map, Value};

/// `{"class_name": "Sequential", "config": {"name", "layers": [InputLayer, …]}}`, or for a
/// graph Keras 2's functional form (`inbound_nodes: [[[layer, 0, 0, {}], …]]`, which tf_keras
/// and Keras 3 both read).
pub fn model_config(model: &Sequential) -> Value {
    if model.graph().is_some() {
        return functional_config(model, false);
    }
    let mut layers = Vec::new();
    if let Some(shape) = model.input_shape() {
        let mut b = vec![Value::Null];
        b.extend(shape.iter().map(|&d| json!(d)));
        layers.push(json!({
            "class_name": "InputLayer",
            "config": {"batch_input_shape": b, "dtype": "float32", "sparse": false, "ragged": false, "name": "input_1"}
        }));
    }
    for l in model.layers() {
        let mut entry = json!({"class_name": l.class_name(), "config": Value::Object(l.config())});
        keras2_keys(&mut entry);
        layers.push(entry);
    }
    json!({"class_name": "Sequential", "config": {"name": model.name(), "layers": layers}})
}

/// Keras 2's spelling of the few arguments Keras 3 renamed, wherever a layer object sits in
/// a config (as a layer, or as another layer's activation): `LeakyReLU(negative_slope)` is
/// `alpha` in tf_keras, which refuses the new key; Keras 3 still reads `alpha`.
fn keras2_keys(v: &mut Value) {
    match v {
        Value::Object(o) => {
            if o.get("class_name").and_then(Value::as_str) == Some("LeakyReLU") {
                if let Some(Value::Object(c)) = o.get_mut("config") {
                    if let Some(slope) = c.remove("negative_slope") {
                        c.insert("alpha".into(), slope);
                    }
                }
            }
            o.values_mut().for_each(keras2_keys);
        }
        Value::Array(a) => a.iter_mut().for_each(keras2_keys),
        _ => {}
    }
}

/// Keras 3's serialised model (the `config.json` of a `.keras` archive): module and
/// class names, per-layer `build_config`, and the `compile_config` when compiled.
pub fn model_config_v3(model: &Sequential) -> Value {
    if model.graph().is_some() {
        let mut v = functional_config(model, true);
        if let Some(c) = compile_config(model) {
            v["compile_config"] = c;
        }
        return v;
    }
    let dims = |s: &[usize]| {
        let mut b = vec![Value::Null];
        b.extend(s.iter().map(|&d| json!(d)));
        Value::Array(b)
    };
    let input = model.input_shape().unwrap_or(&[]).to_vec();
    let mut layers = vec![json!({
        "module": "keras.layers", "class_name": "InputLayer", "registered_name": null,
        "config": {"batch_shape": dims(&input), "dtype": "float32", "sparse": false, "ragged": false,
                   "name": "input_layer", "optional": false},
    })];
    let mut shape = input.clone();
    for l in model.layers() {
        layers.push(json!({
            "module": "keras.layers", "class_name": l.class_name(), "config": Value::Object(l.config()),
            "registered_name": null, "build_config": {"input_shape": dims(&shape)},
        }));
        shape = l.output_shape().to_vec();
    }
    let mut v = json!({
        "module": "keras", "class_name": "Sequential", "registered_name": null,
        "config": {"name": model.name(), "trainable": true, "dtype": "float32", "layers": layers,
                   "build_input_shape": dims(&input)},
        "build_config": {"input_shape": dims(&input)},
    });
    if let Some(c) = compile_config(model) {
        v["compile_config"] = c;
    }
    v
}

/// `[null, d1, d2, …]`: a per-sample shape with Keras' batch axis.
fn batch_dims(s: &[usize]) -> Value {
    let mut b = vec![Value::Null];
    b.extend(s.iter().map(|&d| json!(d)));
    Value::Array(b)
}

/// A graph model's config, in Keras 3's form (`v3`: `inbound_nodes` of `args`/`kwargs` with
/// `keras_history`) or Keras 2's (`[[[layer, 0, 0, {}], …]]`).
fn functional_config(model: &Sequential, v3: bool) -> Value {
    let g = model.graph().expect("a graph model");
    let n_in = g.input_names.len();
    let node_name =
        |x: usize| if x < n_in { g.input_names[x].clone() } else { model.layers()[x - n_in].name().to_string() };
    let mut layers = Vec::new();
    for (name, shape) in g.input_names.iter().zip(&g.input_shapes) {
        layers.push(if v3 {
            json!({"module": "keras.layers", "class_name": "InputLayer", "registered_name": null, "name": name,
                   "config": {"batch_shape": batch_dims(shape), "dtype": "float32", "sparse": false, "ragged": false,
                              "name": name, "optional": false},
                   "inbound_nodes": []})
        } else {
            json!({"class_name": "InputLayer", "name": name, "inbound_nodes": [],
                   "config": {"batch_input_shape": batch_dims(shape), "dtype": "float32", "sparse": false,
                              "ragged": false, "name": name}})
        });
    }
    for (i, l) in model.layers().iter().enumerate() {
        let ins = model.inbound(i);
        let mut entry = json!({"class_name": l.class_name(), "config": Value::Object(l.config()), "name": l.name()});
        if v3 {
            let tensor = |x: usize| {
                json!({"class_name": "__keras_tensor__", "config": {"shape": batch_dims(model.node_shape(x)),
                       "dtype": "float32", "keras_history": [node_name(x), 0, 0]}})
            };
            let (args, shapes) = if l.multi_input() {
                (
                    json!([ins.iter().map(|&x| tensor(x)).collect::<Vec<_>>()]),
                    json!(ins.iter().map(|&x| batch_dims(model.node_shape(x))).collect::<Vec<_>>()),
                )
            } else {
                (json!([tensor(ins[0])]), batch_dims(model.node_shape(ins[0])))
            };
            entry["module"] = json!("keras.layers");
            entry["registered_name"] = Value::Null;
            entry["build_config"] = json!({ "input_shape": shapes });
            entry["inbound_nodes"] = json!([{"args": args, "kwargs": {}}]);
        } else {
            keras2_keys(&mut entry);
            entry["inbound_nodes"] = json!([ins.iter().map(|&x| json!([node_name(x), 0, 0, {}])).collect::<Vec<_>>()]);
        }
        layers.push(entry);
    }
    let refs = |nodes: Vec<usize>| {
        let all: Vec<Value> = nodes.into_iter().map(|x| json!([node_name(x), 0, 0])).collect();
        // Keras 3 writes a lone tensor unwrapped (and then returns one array, not a list).
        if v3 && all.len() == 1 {
            all[0].clone()
        } else {
            Value::Array(all)
        }
    };
    let inputs = refs((0..n_in).collect());
    let outputs = refs(g.outputs.clone());
    let config = json!({"name": model.name(), "trainable": true, "layers": layers,
                        "input_layers": inputs, "output_layers": outputs});
    if v3 {
        json!({"module": "keras.src.models.functional", "class_name": "Functional",
               "registered_name": "Functional", "config": config, "build_config": {"input_shape": null}})
    } else {
        json!({"class_name": "Functional", "config": config})
    }
}

/// The `[layer, node, tensor]` references of `input_layers` / `output_layers`: one, or a list.
fn tensor_refs(v: &Value, what: &str) -> Result<Vec<String>> {
    let one = |r: &Value| -> Result<String> {
        match r.as_array().map(Vec::as_slice) {
            Some([Value::String(n), node, tensor, ..]) => {
                if node.as_u64() != Some(0) || tensor.as_u64() != Some(0) {
                    return Err(Error::config(format!(
                        "{what}: {r} refers to a layer's second call or output, which convnet does not support"
                    )));
                }
                Ok(n.clone())
            }
            _ => Err(Error::config(format!("{what}: {r} is not a [layer, node, tensor] reference"))),
        }
    };
    match v {
        Value::Array(a) if a.first().is_some_and(Value::is_string) => Ok(vec![one(v)?]),
        Value::Array(a) => a.iter().map(one).collect(),
        Value::Object(o) => o.values().map(one).collect(),
        _ => Err(Error::config(format!("{what} must list [layer, node, tensor] references"))),
    }
}

/// The layers a layer's call reads, from its `inbound_nodes` in either Keras form.
fn inbound_names(entry: &Value, lname: &str) -> Result<Vec<String>> {
    let nodes = entry.get("inbound_nodes").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[]);
    let node = match nodes {
        [] => return Err(Error::config(format!("layer {lname:?} is not called on anything (no inbound_nodes)"))),
        [one] => one,
        _ => {
            return Err(Error::config(format!(
                "layer {lname:?} is called {} times (a shared layer), which convnet does not support",
                nodes.len()
            )))
        }
    };
    let bad = || Error::config(format!("layer {lname:?}: inbound_nodes entry {node} is not understood"));
    let check = |h: &[Value]| -> Result<String> {
        match h {
            [Value::String(n), a, b, ..] if a.as_u64() == Some(0) && b.as_u64() == Some(0) => Ok(n.clone()),
            [Value::String(_), ..] => Err(Error::config(format!(
                "layer {lname:?} reads a layer's second call or output, which convnet does not support"
            ))),
            _ => Err(bad()),
        }
    };
    match node {
        // Keras 2: [[layer, node, tensor, kwargs], …]
        Value::Array(list) => list.iter().map(|r| r.as_array().ok_or_else(bad).and_then(|r| check(r))).collect(),
        // Keras 3: {"args": [tensor or [tensors]], "kwargs": {}}
        Value::Object(o) => {
            if o.get("kwargs")
                .and_then(Value::as_object)
                .is_some_and(|k| k.values().any(|v| v.to_string().contains("keras_history")))
            {
                return Err(Error::config(format!("layer {lname:?} takes a tensor as a keyword argument")));
            }
            let history = |t: &Value| -> Result<String> {
                let h =
                    t.get("config").and_then(|c| c.get("keras_history")).and_then(Value::as_array).ok_or_else(bad)?;
                check(h)
            };
            let args = o.get("args").and_then(Value::as_array).ok_or_else(bad)?;
            match args.as_slice() {
                [Value::Array(ts)] => ts.iter().map(history).collect(),
                [t] => Ok(vec![history(t)?]),
                _ => Err(bad()),
            }
        }
        _ => Err(bad()),
    }
}

/// Builds a graph model from Keras' functional config (either form), its layers in Keras'
/// `model.layers` order.
fn functional_from_config(cfg: &Map<String, Value>) -> Result<Sequential> {
    use crate::nn::model::{Functional, Node};
    use std::collections::HashMap;
    let name = cfg.get("name").and_then(Value::as_str).unwrap_or("functional");
    let entries = cfg
        .get("layers")
        .and_then(Value::as_array)
        .ok_or_else(|| Error::config("functional model without `layers`"))?;
    let mut f = Functional::new().with_name(name);
    let mut nodes: HashMap<String, Node> = HashMap::new();
    let mut pending: Vec<(String, &Value, Vec<String>)> = Vec::new();
    let empty = Map::new();
    for entry in entries {
        let class = entry
            .get("class_name")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::config("a layer entry without class_name"))?;
        let lcfg = entry.get("config").and_then(Value::as_object).unwrap_or(&empty);
        let lname = entry
            .get("name")
            .or_else(|| lcfg.get("name"))
            .and_then(Value::as_str)
            .ok_or_else(|| Error::config(format!("a {class} entry without a name")))?
            .to_string();
        if nodes.contains_key(&lname) || pending.iter().any(|p| p.0 == lname) {
            return Err(Error::config(format!("the name {lname:?} is used by more than one layer")));
        }
        if class == "InputLayer" {
            let shape = lcfg
                .get("batch_shape")
                .or_else(|| lcfg.get("batch_input_shape"))
                .and_then(Value::as_array)
                .filter(|a| !a.is_empty())
                .ok_or_else(|| Error::config(format!("InputLayer {lname:?} without batch_shape")))?;
            let node = f.input_named(&lname, &shape_list(&shape[1..], "InputLayer batch_shape")?);
            nodes.insert(lname, node);
        } else {
            pending.push((lname.clone(), entry, inbound_names(entry, &lname)?));
        }
    }
    // Layers are created once everything they read exists (Keras' configs list them in
    // order, but need not).
    while !pending.is_empty() {
        let before = pending.len();
        let mut rest = Vec::new();
        for (lname, entry, ins) in pending {
            if !ins.iter().all(|n| nodes.contains_key(n)) {
                rest.push((lname, entry, ins));
                continue;
            }
            let class = entry.get("class_name").and_then(Value::as_str).unwrap_or("");
            let lcfg = entry.get("config").and_then(Value::as_object).unwrap_or(&empty);
            let mut layer = registry::layer_from_config(class, lcfg)?;
            layer.set_name(lname.clone());
            let args: Vec<Node> = ins.iter().map(|n| nodes[n]).collect();
            let node = f.add_boxed(layer, args);
            nodes.insert(lname, node);
        }
        if rest.len() == before {
            let missing: Vec<&str> = rest.iter().map(|p| p.0.as_str()).collect();
            return Err(Error::config(format!(
                "the functional model's graph has loops or reads unknown layers (at {})",
                missing.join(", ")
            )));
        }
        pending = rest;
    }
    let pick = |key: &str| -> Result<Vec<Node>> {
        let v = cfg.get(key).ok_or_else(|| Error::config(format!("functional model without `{key}`")))?;
        tensor_refs(v, key)?
            .iter()
            .map(|n| nodes.get(n).copied().ok_or_else(|| Error::config(format!("{key} names an unknown layer {n:?}"))))
            .collect()
    };
    let (inputs, outputs) = (pick("input_layers")?, pick("output_layers")?);
    f.build(&inputs, &outputs)
}

/// Builds a model (not yet built: no weights) from a Keras `model_config`.
pub fn model_from_config(v: &Value) -> Result<Sequential> {
    let class = v.get("class_name").and_then(Value::as_str).unwrap_or("");
    if class == "Functional" || class == "Model" {
        let cfg = v
            .get("config")
            .and_then(Value::as_object)
            .ok_or_else(|| Error::config("model `config` must be an object"))?;
        return functional_from_config(cfg);
    }
    if class != "Sequential" {
        return Err(Error::config(format!(
            "only Sequential and Functional models are supported, this file holds a {:?} model",
            if class.is_empty() { "unknown" } else { class }
        )));
    }
    let cfg = v.get("config").ok_or_else(|| Error::config("model config without `config`"))?;
    // Keras 2.0 stored the layer list directly as `config`.
    let (layers, name, build_shape) = match cfg {
        Value::Array(a) => (a.as_slice(), "sequential", None),
        Value::Object(o) => (
            o.get("layers")
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .ok_or_else(|| Error::config("model config without a `layers` list"))?,
            o.get("name").and_then(Value::as_str).unwrap_or("sequential"),
            o.get("build_input_shape").and_then(Value::as_array),
        ),
        _ => return Err(Error::config("model `config` must be an object")),
    };
    let mut model = Sequential::new();
    model.set_name(name);
    for entry in layers {
        let class = entry
            .get("class_name")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::config("a layer entry without class_name"))?;
        let empty = Map::new();
        let lcfg = entry.get("config").and_then(Value::as_object).unwrap_or(&empty);
        if class == "InputLayer" {
            let shape = lcfg
                .get("batch_input_shape")
                .or_else(|| lcfg.get("batch_shape"))
                .and_then(Value::as_array)
                .filter(|a| !a.is_empty())
                .ok_or_else(|| Error::config("InputLayer without batch_shape"))?;
            model.set_input_shape(&shape_list(&shape[1..], "InputLayer batch_shape")?);
            continue;
        }
        model.add_boxed(registry::layer_from_config(class, lcfg)?);
    }
    if model.input_shape().is_none() {
        if let Some(s) = build_shape.filter(|s| !s.is_empty()) {
            model.set_input_shape(&shape_list(&s[1..], "build_input_shape")?);
        }
    }
    Ok(model)
}

/// Keras 2's `training_config`: loss, metrics and `optimizer_config`.
pub fn training_config(model: &Sequential) -> Option<Value> {
    let c = model.compiled()?;
    Some(json!({
        "loss": c.loss.to_config(),
        "metrics": c.metrics.iter().map(|m| m.name()).collect::<Vec<_>>(),
        "weighted_metrics": null,
        "loss_weights": null,
        "optimizer_config": {
            "class_name": format!("Custom>{}", c.optimizer.class_name()),
            "config": tf_keras_optimizer_config(&c.optimizer),
        },
    }))
}

/// tf_keras' optimizer config: Keras' keys plus the markers that select its current
/// (non-legacy) optimizers.
fn tf_keras_optimizer_config(o: &Optimizer) -> Value {
    let mut c = o.to_config();
    c["jit_compile"] = json!(false);
    c["is_legacy_optimizer"] = json!(false);
    // tf_keras' own defaults where they differ from Keras 3's: RMSprop's EMA overwrite period
    // (unused without EMA) and unnamed schedules.
    if matches!(o, Optimizer::RmsProp(_)) && c["ema_overwrite_frequency"].is_null() {
        c["ema_overwrite_frequency"] = json!(100);
    }
    if let Some(Value::Object(lr)) = c.get_mut("learning_rate") {
        if let Some(Value::Object(sc)) = lr.get_mut("config") {
            sc.insert("name".into(), Value::Null);
        }
    }
    c
}

/// Keras 3's `compile_config` (as in a `.keras` archive).
pub fn compile_config(model: &Sequential) -> Option<Value> {
    let c = model.compiled()?;
    Some(json!({
        "optimizer": {
            "module": "keras.optimizers", "class_name": c.optimizer.class_name(),
            "config": c.optimizer.to_config(), "registered_name": null,
        },
        "loss": c.loss.to_config(),
        "loss_weights": null,
        "metrics": c.metrics.iter().map(|m| m.name()).collect::<Vec<_>>(),
        "weighted_metrics": null,
        "run_eagerly": false,
        "steps_per_execution": 1,
        "jit_compile": false,
    }))
}

/// Reads a loss in any of Keras' forms (see [`Loss::from_config`]).
fn loss_from_config(v: &Value) -> Result<Loss> {
    Loss::from_config(v)
}

/// Reads metrics in Keras' forms: names, `MeanMetricWrapper` objects, nested lists.
fn metrics_from_config(v: &Value, out: &mut Vec<Metric>) -> Result<()> {
    match v {
        Value::Null => Ok(()),
        Value::String(s) => {
            out.push(Metric::parse(s)?);
            Ok(())
        }
        Value::Array(a) => a.iter().try_for_each(|m| metrics_from_config(m, out)),
        Value::Object(o) => {
            let name = o
                .get("config")
                .and_then(|c| c.get("name"))
                .and_then(Value::as_str)
                .or_else(|| o.get("class_name").and_then(Value::as_str))
                .unwrap_or("");
            let m = match name {
                "CategoricalAccuracy" => Metric::CategoricalAccuracy,
                "SparseCategoricalAccuracy" => Metric::SparseCategoricalAccuracy,
                "BinaryAccuracy" => Metric::BinaryAccuracy,
                other => Metric::parse(other)?,
            };
            out.push(m);
            Ok(())
        }
        other => Err(Error::config(format!("unsupported metrics entry {other}"))),
    }
}

/// Compiles `model` from a Keras 2 `training_config` or a Keras 3 `compile_config`.
pub fn compile_from_config(model: &mut Sequential, v: &Value) -> Result<()> {
    let loss = loss_from_config(v.get("loss").ok_or_else(|| Error::config("training config without a loss"))?)?;
    let opt_cfg = v
        .get("optimizer_config")
        .or_else(|| v.get("optimizer"))
        .ok_or_else(|| Error::config("training config without an optimizer"))?;
    let optimizer = Optimizer::from_config(opt_cfg)?;
    let mut metrics = Vec::new();
    if let Some(m) = v.get("metrics") {
        metrics_from_config(m, &mut metrics)?;
    }
    metrics.dedup();
    model.compile(loss, optimizer, &metrics)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::presets;

    #[test]
    fn presets_round_trip_through_their_configs() {
        for name in presets::NAMES {
            let mut m = presets::preset(name).unwrap();
            m.build().unwrap();
            let c = model_config(&m);
            let mut back = model_from_config(&c).unwrap();
            back.build().unwrap();
            assert_eq!(model_config(&back), c, "{name}");
            assert_eq!(back.count_params(), m.count_params());
        }
    }

    #[test]
    fn reads_keras3_style_configs() {
        let v = json!({"class_name": "Sequential", "config": {"name": "s", "trainable": true,
            "dtype": {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"}},
            "layers": [
                {"module": "keras.layers", "class_name": "InputLayer", "config": {"batch_shape": [null, 8, 8, 1], "dtype": "float32", "name": "input_layer"}},
                {"module": "keras.layers", "class_name": "Conv2D", "config": {"name": "conv2d", "filters": 2, "kernel_size": [3, 3],
                    "dtype": {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"}},
                    "kernel_initializer": {"module": "keras.initializers", "class_name": "GlorotUniform", "config": {"seed": null, "input_axes": null}}}},
                {"module": "keras.layers", "class_name": "Flatten", "config": {"name": "flatten"}},
                {"module": "keras.layers", "class_name": "Dense", "config": {"name": "dense", "units": 3, "activation": "softmax"}}
            ], "build_input_shape": [null, 8, 8, 1]}});
        let mut m = model_from_config(&v).unwrap();
        assert_eq!(m.output_shape().unwrap(), vec![3]);
        assert_eq!(m.count_params(), 20 + 72 * 3 + 3);
    }

    #[test]
    fn compiles_from_keras2_and_keras3_training_configs() {
        let k2 = json!({"loss": "categorical_crossentropy", "metrics": [[{"class_name": "MeanMetricWrapper",
            "config": {"name": "accuracy", "dtype": "float32", "fn": "categorical_accuracy"}}]],
            "optimizer_config": {"class_name": "Custom>Adam", "config": {"name": "Adam", "learning_rate": 0.002, "beta_1": 0.9}}});
        let mut m = presets::preset("lenet5").unwrap();
        compile_from_config(&mut m, &k2).unwrap();
        let c = m.compiled().unwrap();
        assert_eq!(c.metrics, vec![Metric::Accuracy]);
        assert!((c.optimizer.learning_rate() - 0.002).abs() < 1e-9);
        let k3 = compile_config(&m).unwrap();
        let mut m2 = presets::preset("lenet5").unwrap();
        compile_from_config(&mut m2, &k3).unwrap();
        assert_eq!(m2.compiled().unwrap().optimizer, m.compiled().unwrap().optimizer);
        // Losses on logits and schedules round-trip through both dialects.
        let k3 = json!({"loss": {"module": "keras.losses", "class_name": "CategoricalCrossentropy",
            "config": {"name": "categorical_crossentropy", "reduction": "sum_over_batch_size", "from_logits": true,
                       "label_smoothing": 0.1, "axis": -1}, "registered_name": null},
            "optimizer": {"module": "keras.optimizers", "class_name": "Nadam", "config": {"name": "nadam",
                "learning_rate": {"module": "keras.optimizers.schedules", "class_name": "CosineDecay",
                    "config": {"initial_learning_rate": 0.01, "decay_steps": 100, "alpha": 0.1, "name": "CosineDecay",
                               "warmup_target": 0.02, "warmup_steps": 10}, "registered_name": null},
                "weight_decay": 0.01, "clipnorm": 1.0, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-07},
                "registered_name": null}});
        compile_from_config(&mut m2, &k3).unwrap();
        let want = m2.compiled().unwrap().clone();
        assert!(want.loss.from_logits && want.optimizer.schedule().is_some());
        for written in [compile_config(&m2).unwrap(), training_config(&m2).unwrap()] {
            let mut m3 = presets::preset("lenet5").unwrap();
            compile_from_config(&mut m3, &written).unwrap();
            assert_eq!(m3.compiled().unwrap().loss, want.loss);
            assert_eq!(m3.compiled().unwrap().optimizer, want.optimizer);
        }
        let bad = json!({"loss": "categorical_crossentropy", "optimizer": {"class_name": "Adam", "config": {"use_ema": true}}});
        assert!(compile_from_config(&mut m2, &bad).is_err());
    }

    #[test]
    fn other_model_classes_are_refused_by_name() {
        let e = model_from_config(&json!({"class_name": "MyModel", "config": {}})).unwrap_err();
        assert!(e.to_string().contains("MyModel"));
        let e = model_from_config(&json!({"class_name": "Functional", "config": {}})).unwrap_err();
        assert!(e.to_string().contains("layers"), "{e}");
    }

    /// A graph's config in both of Keras' forms reads back to the same model, and each form
    /// is the one Keras writes (the layer entries and wiring of real Keras 3 / tf_keras files).
    #[test]
    fn functional_configs_round_trip_in_both_forms() {
        let mut m = crate::nn::model::functional_tests_residual(3);
        m.build().unwrap();
        for v3 in [false, true] {
            let c = if v3 { model_config_v3(&m) } else { model_config(&m) };
            assert_eq!(c["class_name"], "Functional");
            let add = c["config"]["layers"].as_array().unwrap().iter().find(|l| l["class_name"] == "Add").unwrap();
            if v3 {
                assert_eq!(add["inbound_nodes"][0]["args"][0][1]["config"]["keras_history"], json!(["conv2d", 0, 0]));
                assert_eq!(c["config"]["input_layers"], json!(["input_layer", 0, 0]));
            } else {
                assert_eq!(add["inbound_nodes"], json!([[["conv2d_2", 0, 0, {}], ["conv2d", 0, 0, {}]]]));
                assert_eq!(c["config"]["output_layers"], json!([["dense", 0, 0]]));
            }
            let mut back = model_from_config(&c).unwrap();
            back.build().unwrap();
            assert_eq!(back.graph(), m.graph());
            assert_eq!(if v3 { model_config_v3(&back) } else { model_config(&back) }, c);
        }
        // Two inputs and two outputs: lists in both forms.
        let mut f = crate::nn::model::Functional::new();
        let a = f.input(&[4]);
        let b = f.input_named("extra", &[2]);
        let c = f.add(crate::nn::layers::Concatenate::new(), [a, b]);
        let d = f.add(crate::nn::layers::Dense::new(3), c);
        let e = f.add(crate::nn::layers::Dense::new(1), b);
        let mut two = f.build(&[a, b], &[d, e]).unwrap();
        two.build().unwrap();
        for c in [model_config(&two), model_config_v3(&two)] {
            assert_eq!(c["config"]["input_layers"], json!([["input_layer", 0, 0], ["extra", 0, 0]]));
            assert_eq!(c["config"]["output_layers"], json!([["dense", 0, 0], ["dense_1", 0, 0]]));
            let mut back = model_from_config(&c).unwrap();
            back.build().unwrap();
            assert_eq!(back.graph(), two.graph());
        }
        // tf_keras' own file (Keras 2 form) of Input → Conv2D → Add(conv, input) → Flatten.
        let tk = json!({"class_name": "Functional", "config": {"name": "model", "trainable": true, "layers": [
            {"class_name": "InputLayer", "config": {"batch_input_shape": [null, 8, 8, 2], "dtype": "float32", "name": "input_1"}, "name": "input_1", "inbound_nodes": []},
            {"class_name": "Flatten", "config": {"name": "flatten"}, "name": "flatten", "inbound_nodes": [[["add", 0, 0, {}]]]},
            {"class_name": "Add", "config": {"name": "add"}, "name": "add", "inbound_nodes": [[["conv2d", 0, 0, {}], ["input_1", 0, 0, {}]]]},
            {"class_name": "Conv2D", "config": {"name": "conv2d", "filters": 2, "kernel_size": [3, 3], "padding": "same"}, "name": "conv2d", "inbound_nodes": [[["input_1", 0, 0, {}]]]}],
            "input_layers": [["input_1", 0, 0]], "output_layers": [["flatten", 0, 0]]}});
        let mut m = model_from_config(&tk).unwrap();
        assert_eq!(m.output_shape().unwrap(), vec![128]);
        let names: Vec<&str> = m.layers().iter().map(|l| l.name()).collect();
        assert_eq!(names, ["conv2d", "add", "flatten"]);
        let mut shared = tk.clone();
        shared["config"]["layers"][1]["inbound_nodes"] = json!([[["add", 0, 0, {}]], [["add", 0, 0, {}]]]);
        assert!(model_from_config(&shared).unwrap_err().to_string().contains("shared"));
        let mut looped = tk.clone();
        looped["config"]["layers"][3]["inbound_nodes"] = json!([[["add", 0, 0, {}]]]);
        assert!(model_from_config(&looped).unwrap_err().to_string().contains("loops"));
    }
}
