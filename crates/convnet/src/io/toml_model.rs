//! Model files in TOML: one `[[layers]]` table per layer with Keras' class and argument names,
//! and an optional `[compile]` table.
//!
//! ```toml
//! name = "my_cnn"
//! input_shape = [28, 28, 1]
//!
//! [[layers]]
//! class_name = "Conv2D"          # or: type = "Conv2D"
//! filters = 6
//! kernel_size = [5, 5]
//! padding = "same"
//! activation = "relu"
//! kernel_regularizer = { l2 = 0.01 }
//!
//! [[layers]]
//! type = "MaxPooling2D"
//!
//! [compile]
//! loss = "categorical_crossentropy"
//! optimizer = "adam"
//! learning_rate = 0.001
//! metrics = ["accuracy"]
//! ```
//!
//! A graph (Keras' functional model) names what each layer reads: `inputs = ["conv1",
//! "input"]` lists earlier layers by name (`name = "conv1"`, or Keras' automatic names
//! `conv2d`, `conv2d_1`, … in file order) or model inputs. The input of `input_shape` is called
//! `input`; several inputs are `[[inputs]]` tables with `name` and `shape`. A layer without
//! `inputs` reads the layer before it; `outputs` lists the model's outputs (by default the last
//! layer).
//!
//! ```toml
//! input_shape = [28, 28, 1]
//!
//! [[layers]]
//! type = "Conv2D"
//! name = "stem"
//! filters = 8
//! kernel_size = 3
//! padding = "same"
//! activation = "relu"
//!
//! [[layers]]
//! type = "Conv2D"
//! filters = 8
//! kernel_size = 3
//! padding = "same"
//!
//! [[layers]]
//! type = "Add"
//! inputs = ["conv2d", "stem"]
//! ```
//!
//! Unlike Keras' own files (read leniently, as Keras reads them), a TOML file is written by
//! hand, so every key must be one the reader knows: a misspelt `activaton` would otherwise
//! train a linear layer without a word. Keras itself raises "Unrecognized keyword arguments"
//! here. The keys a layer takes are the ones its own `config()` writes (plus `type` and the
//! input-shape keys), so a new layer is checked with no list to keep.

use super::config;
use crate::error::{unknown_name, Error, Result};
use crate::nn::layers::{registry, shape_list};
use crate::nn::model::Sequential;
use crate::nn::optimizers::Optimizer;
use serde_json::{json, Map, Value};
use std::path::Path;

/// Converts TOML to the equivalent JSON value.
fn to_json(v: &toml::Value) -> Value {
    match v {
        toml::Value::String(s) => json!(s),
        toml::Value::Integer(i) => json!(i),
        toml::Value::Float(f) => json!(f),
        toml::Value::Boolean(b) => json!(b),
        toml::Value::Datetime(d) => json!(d.to_string()),
        toml::Value::Array(a) => Value::Array(a.iter().map(to_json).collect()),
        toml::Value::Table(t) => Value::Object(t.iter().map(|(k, v)| (k.clone(), to_json(v))).collect()),
    }
}

/// `{ l2 = 0.01 }` → Keras' `{"class_name": "L2", "config": {"l2": 0.01}}`; other forms pass.
fn regularizer_form(v: &Value) -> Value {
    match v.as_object() {
        Some(o) if !o.contains_key("class_name") => {
            let class = match (o.contains_key("l1"), o.contains_key("l2")) {
                (true, true) => "L1L2",
                (true, false) => "L1",
                _ => "L2",
            };
            json!({"class_name": class, "config": v})
        }
        _ => v.clone(),
    }
}

/// The keys a model file may have at its top level.
const TOP_LEVEL_KEYS: &[&str] = &["name", "input_shape", "inputs", "outputs", "layers", "compile", "augment"];

/// Keys every layer table may have besides its config's: its class and Keras' input-shape forms.
const LAYER_EXTRA_KEYS: &[&str] = &["class_name", "type", "input_shape", "batch_input_shape", "batch_shape", "inputs"];

/// The `[compile]` keys that are not the optimizer's own options.
const COMPILE_KEYS: &[&str] = &["loss", "optimizer", "metrics"];

/// Refuses the first key of `keys` not in `valid`, naming the closest valid one.
fn check_keys<'a>(keys: impl IntoIterator<Item = &'a String>, valid: &[&str], what: &str) -> Result<()> {
    match keys.into_iter().find(|k| !valid.contains(&k.as_str())) {
        Some(k) => Err(Error::config(unknown_name(what, k, valid))),
        None => Ok(()),
    }
}

/// The keys a layer of `class` takes: those its `config()` writes, read off a layer built from
/// the user's table or, when that fails (a required key misspelt), from a stand-in built with
/// the usual required keys filled.
fn layer_keys(class: &str, cfg: &Map<String, Value>) -> Option<Vec<String>> {
    let stand_in: Map<String, Value> =
        [("units", json!(1)), ("filters", json!(1)), ("kernel_size", json!(1)), ("rate", json!(0.5))]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
    let layer =
        registry::layer_from_config(class, cfg).or_else(|_| registry::layer_from_config(class, &stand_in)).ok()?;
    let mut keys: Vec<String> = layer.config().keys().cloned().collect();
    keys.extend(LAYER_EXTRA_KEYS.iter().map(|k| k.to_string()));
    if layer.class_name() == "LeakyReLU" {
        keys.push("alpha".into()); // Keras 2's name for negative_slope, still accepted by Keras 3
    }
    Some(keys)
}

/// Reads a TOML model; returns the model, compiled if the file has a `[compile]` table.
/// Unknown keys anywhere are refused with the closest valid name.
pub fn model_from_toml(text: &str, path: &Path) -> Result<Sequential> {
    let doc: toml::Table =
        text.parse().map_err(|e: toml::de::Error| Error::format(path, format!("invalid TOML: {}", e.message())))?;
    let bad = |m: String| Error::format(path, m);
    check_keys(doc.keys(), TOP_LEVEL_KEYS, "top-level key").map_err(|e| bad(strip(e)))?;
    let mut model = Sequential::new();
    if let Some(name) = doc.get("name").and_then(|v| v.as_str()) {
        model.set_name(name);
    }
    if let Some(shape) = doc.get("input_shape") {
        let a = to_json(shape);
        let a = a.as_array().ok_or_else(|| bad("input_shape must be a list of sizes".into()))?;
        model.set_input_shape(&shape_list(a, "input_shape").map_err(|e| bad(e.to_string()))?);
    }
    let layers = doc
        .get("layers")
        .and_then(|v| v.as_array())
        .ok_or_else(|| bad("a model file needs [[layers]] tables".into()))?;
    let graph = doc.contains_key("inputs")
        || doc.contains_key("outputs")
        || layers.iter().any(|l| l.as_table().is_some_and(|t| t.contains_key("inputs")));
    let mut built = Vec::new();
    for (i, l) in layers.iter().enumerate() {
        let Value::Object(mut cfg) = to_json(l) else {
            return Err(bad(format!("layer {} must be a table", i + 1)));
        };
        let class = cfg
            .remove("class_name")
            .or_else(|| cfg.remove("type"))
            .and_then(|v| v.as_str().map(str::to_string))
            .ok_or_else(|| bad(format!("layer {} needs class_name = \"Conv2D\" (or another Keras layer)", i + 1)))?;
        if let Some(valid) = layer_keys(&class, &cfg) {
            let valid: Vec<&str> = valid.iter().map(String::as_str).collect();
            check_keys(cfg.keys(), &valid, &format!("{class} key"))
                .map_err(|e| bad(format!("layer {}: {}", i + 1, strip(e))))?;
        }
        for key in ["kernel_regularizer", "bias_regularizer", "activity_regularizer", "alpha_regularizer"] {
            if let Some(v) = cfg.get(key) {
                let r = regularizer_form(v);
                cfg.insert(key.into(), r);
            }
        }
        let inputs = match cfg.remove("inputs") {
            None => None,
            Some(Value::Array(a)) if a.iter().all(Value::is_string) && !a.is_empty() => {
                Some(a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect::<Vec<_>>())
            }
            Some(Value::String(one)) => Some(vec![one]),
            Some(_) => return Err(bad(format!("layer {}: inputs must be a list of layer names", i + 1))),
        };
        let layer = registry::layer_from_config(&class, &cfg).map_err(|e| bad(format!("layer {}: {e}", i + 1)))?;
        if graph {
            built.push((layer, inputs));
        } else {
            model.add_boxed(layer);
        }
    }
    if graph {
        model = graph_from_toml(&doc, model, built).map_err(|e| bad(strip(e)))?;
    }
    if let Some(c) = doc.get("compile") {
        let mut c = match to_json(c) {
            Value::Object(m) => m,
            _ => return Err(bad("[compile] must be a table".into())),
        };
        let opt_name =
            c.remove("optimizer").and_then(|v| v.as_str().map(str::to_string)).unwrap_or_else(|| "adam".into());
        // The optimizer's options are the keys its own config writes (as for layers).
        let opt_keys: Vec<String> = match Optimizer::parse(&opt_name).map_err(|e| bad(strip(e)))?.to_config() {
            Value::Object(m) => m.get("config").and_then(Value::as_object).unwrap_or(&m).keys().cloned().collect(),
            _ => Vec::new(),
        };
        let opt_keys: Vec<&str> = opt_keys.iter().map(String::as_str).filter(|k| *k != "name").collect();
        let valid: Vec<&str> = COMPILE_KEYS.iter().copied().chain(opt_keys.iter().copied()).collect();
        check_keys(c.keys().chain(std::iter::once(&"optimizer".to_string())), &valid, "[compile] key")
            .map_err(|e| bad(strip(e)))?;
        let mut opt_cfg = Map::new();
        for key in opt_keys {
            if let Some(v) = c.remove(key) {
                opt_cfg.insert(key.into(), v);
            }
        }
        c.insert("optimizer".into(), json!({"class_name": opt_name, "config": opt_cfg}));
        if !c.contains_key("loss") {
            c.insert("loss".into(), json!("categorical_crossentropy"));
        }
        if !c.contains_key("metrics") {
            c.insert("metrics".into(), json!(["accuracy"]));
        }
        config::compile_from_config(&mut model, &Value::Object(c)).map_err(|e| bad(e.to_string()))?;
    }
    Ok(model)
}

/// A layer of a graph model file and the names of what it reads (`None`: the layer before).
type WiredLayer = (Box<dyn crate::nn::layers::Layer>, Option<Vec<String>>);

/// Wires the layers of a graph model file (see the module doc): each reads the nodes its
/// `inputs` name, or the layer before it.
fn graph_from_toml(doc: &toml::Table, stack: Sequential, layers: Vec<WiredLayer>) -> Result<Sequential> {
    use crate::nn::model::{Functional, Node};
    let mut f = Functional::new().with_name(stack.name());
    let mut known: Vec<(String, Node)> = Vec::new();
    match doc.get("inputs") {
        Some(toml::Value::Array(tables)) => {
            for (k, t) in tables.iter().enumerate() {
                let t = t.as_table().ok_or_else(|| Error::config(format!("[[inputs]] {} must be a table", k + 1)))?;
                check_keys(t.keys(), &["name", "shape"], "[[inputs]] key")?;
                let name = t.get("name").and_then(|v| v.as_str()).unwrap_or("input").to_string();
                let shape = t.get("shape").map(to_json).unwrap_or(Value::Null);
                let shape = shape.as_array().ok_or_else(|| Error::config(format!("input {name:?} needs a shape")))?;
                let node = f.input_named(&name, &shape_list(shape, "shape")?);
                known.push((name, node));
            }
        }
        Some(_) => return Err(Error::config("inputs must be [[inputs]] tables with name and shape")),
        None => {
            let shape = stack
                .input_shape()
                .or_else(|| layers.first().and_then(|l| l.0.declared_input_shape()))
                .ok_or_else(|| Error::config("the model needs input_shape"))?
                .to_vec();
            known.push(("input".into(), f.input_named("input", &shape)));
        }
    }
    let inputs: Vec<Node> = known.iter().map(|k| k.1).collect();
    let mut last = *inputs.last().expect("at least one input");
    for (i, (layer, ins)) in layers.into_iter().enumerate() {
        let args = match ins {
            None => vec![last],
            Some(names) => names
                .iter()
                .map(|n| {
                    known.iter().find(|k| k.0 == *n).map(|k| k.1).ok_or_else(|| {
                        let names: Vec<&str> = known.iter().map(|k| k.0.as_str()).collect();
                        Error::config(unknown_name(&format!("layer {}: input", i + 1), n, &names))
                    })
                })
                .collect::<Result<Vec<_>>>()?,
        };
        last = f.add_boxed(layer, args);
        let name = f.last_name().to_string();
        known.push((name, last));
    }
    let outputs = match doc.get("outputs") {
        None => vec![last],
        Some(v) => {
            let v = to_json(v);
            let names: Vec<&str> = match &v {
                Value::String(s) => vec![s.as_str()],
                Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
                _ => Vec::new(),
            };
            if names.is_empty() {
                return Err(Error::config("outputs must list layer names"));
            }
            names
                .iter()
                .map(|n| {
                    known.iter().find(|k| k.0 == *n).map(|k| k.1).ok_or_else(|| {
                        let all: Vec<&str> = known.iter().map(|k| k.0.as_str()).collect();
                        Error::config(unknown_name("output", n, &all))
                    })
                })
                .collect::<Result<Vec<_>>>()?
        }
    };
    f.build(&inputs, &outputs)
}

/// The message of a configuration error without its "invalid configuration: " prefix, for a
/// file error that names the file instead.
fn strip(e: Error) -> String {
    match e {
        Error::Config(m) => m,
        other => other.to_string(),
    }
}

/// The `[augment]` table of a TOML model file, if any, as an augmentation generator
/// (keys as in [`crate::data::augment::ImageDataGenerator::from_spec`], e.g. `rotation = 30`, `horizontal_flip = true`).
pub fn augment_from_toml(text: &str, path: &Path) -> Result<Option<crate::data::augment::ImageDataGenerator>> {
    let doc: toml::Table =
        text.parse().map_err(|e: toml::de::Error| Error::format(path, format!("invalid TOML: {}", e.message())))?;
    let Some(t) = doc.get("augment") else { return Ok(None) };
    let t = t.as_table().ok_or_else(|| Error::format(path, "[augment] must be a table"))?;
    let spec: Vec<String> = t
        .iter()
        .map(|(k, v)| match v {
            toml::Value::Array(a) => {
                format!("{k}={}", a.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(":"))
            }
            toml::Value::String(s) => format!("{k}={s}"),
            other => format!("{k}={other}"),
        })
        .collect();
    crate::data::augment::ImageDataGenerator::from_spec(&spec.join(","))
        .map(Some)
        .map_err(|e| Error::format(path, format!("[augment]: {}", strip(e))))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LENET: &str = r#"
name = "lenet"
input_shape = [28, 28, 1]

[[layers]]
class_name = "Conv2D"
filters = 6
kernel_size = [5, 5]
padding = "same"
activation = "relu"
kernel_regularizer = { l2 = 0.001 }

[[layers]]
type = "MaxPooling2D"

[[layers]]
type = "Conv2D"
filters = 16
kernel_size = 5
activation = "relu"

[[layers]]
type = "MaxPooling2D"
pool_size = [2, 2]

[[layers]]
type = "Conv2D"
filters = 120
kernel_size = 5
activation = "relu"

[[layers]]
type = "Flatten"

[[layers]]
type = "Dense"
units = 84
activation = "relu"

[[layers]]
type = "Dense"
units = 10
activation = "softmax"

[compile]
optimizer = "sgd"
learning_rate = 0.05
momentum = 0.9
"#;

    #[test]
    fn reads_a_lenet_description() {
        let mut m = model_from_toml(LENET, Path::new("lenet.toml")).unwrap();
        m.build().unwrap();
        assert_eq!(m.count_params(), 61_706);
        assert_eq!(m.name(), "lenet");
        let opt = m.compiled().unwrap().optimizer;
        assert_eq!(opt.class_name(), "SGD");
        assert!((opt.learning_rate() - 0.05).abs() < 1e-9);
        let reg = m.layers()[0].params()[0].regularizer.unwrap();
        assert!((reg.l2 - 0.001).abs() < 1e-9 && reg.l1 == 0.0);
    }

    #[test]
    fn reads_an_augment_table() {
        let text = "[augment]\nrotation = 30\nwidth_shift = 0.2\nhorizontal_flip = true\nbrightness = [0.8, 1.2]\n";
        let g = augment_from_toml(text, Path::new("m.toml")).unwrap().unwrap();
        assert_eq!(g.rotation_range, 30.0);
        assert!(g.horizontal_flip);
        assert_eq!(g.brightness_range, Some((0.8, 1.2)));
        assert!(augment_from_toml("name = \"x\"\n", Path::new("m.toml")).unwrap().is_none());
        let e = augment_from_toml("[augment]\nrotaton = 30\n", Path::new("m.toml")).unwrap_err().to_string();
        assert!(e.contains("did you mean `rotation`?"), "{e}");
        let e = augment_from_toml("[augment]\nwidth_shift_rnage = 0.1\n", Path::new("m.toml")).unwrap_err().to_string();
        assert!(e.contains("did you mean `width_shift_range`?"), "{e}");
    }

    #[test]
    fn errors_name_the_layer_and_the_problem() {
        let p = Path::new("m.toml");
        let e = model_from_toml("input_shape = [4]\n[[layers]]\ntype = \"Dense\"\n", p).unwrap_err().to_string();
        assert!(e.contains("layer 1") && e.contains("units"), "{e}");
        let e = model_from_toml("[[layers]]\ntype = \"LSTM\"\nunits = 3\n", p).unwrap_err().to_string();
        assert!(e.contains("LSTM"), "{e}");
        let e = model_from_toml("layers = 3 = 4", p).unwrap_err().to_string();
        assert!(e.contains("invalid TOML"), "{e}");
        assert!(model_from_toml("name = \"x\"\n", p).is_err());
    }

    #[test]
    fn reads_a_graph_with_named_inputs() {
        let text = r#"
input_shape = [6, 6, 2]

[[layers]]
type = "Conv2D"
name = "stem"
filters = 2
kernel_size = 3
padding = "same"
activation = "relu"

[[layers]]
type = "Conv2D"
filters = 2
kernel_size = 3
padding = "same"

[[layers]]
type = "Add"
inputs = ["conv2d", "stem"]

[[layers]]
type = "Concatenate"
inputs = ["add", "input"]

[[layers]]
type = "Flatten"

[[layers]]
type = "Dense"
units = 3
"#;
        let mut m = model_from_toml(text, Path::new("g.toml")).unwrap();
        assert_eq!(m.output_shape().unwrap(), vec![3]);
        let g = m.graph().unwrap();
        assert_eq!(g.input_names, ["input"]);
        assert_eq!(g.inbound[2], [2, 1], "Add reads conv2d and stem");
        assert_eq!(g.inbound[3], [3, 0], "Concatenate reads add and the input");
        let e = model_from_toml(&text.replace("[\"conv2d\", \"stem\"]", "[\"conv2d\", \"stme\"]"), Path::new("g.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("stme") && e.contains("stem"), "{e}");
        let e = model_from_toml(
            &text.replace("type = \"Flatten\"", "type = \"Flatten\"\ninptus = [\"add\"]"),
            Path::new("g.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("inptus"), "{e}");
    }

    #[test]
    fn unknown_keys_are_refused_with_the_closest_name() {
        let p = Path::new("m.toml");
        let dense = "input_shape = [4]\n[[layers]]\ntype = \"Dense\"\nunits = 2\n";
        let cases = [
            (format!("{dense}activaton = \"softmax\"\n"), "layer 1: unknown Dense key `activaton`: did you mean `activation`?"),
            // A misspelt required key is named too, not reported as missing.
            ("input_shape = [4]\n[[layers]]\ntype = \"Dense\"\nunit = 2\n".into(), "did you mean `units`?"),
            (format!("{dense}[compile]\noptimzer = \"sgd\"\n"), "unknown [compile] key `optimzer`: did you mean `optimizer`?"),
            (format!("{dense}[compile]\noptimizer = \"sgd\"\nmomentun = 0.9\n"), "did you mean `momentum`?"),
            (format!("nmae = \"x\"\n{dense}"), "unknown top-level key `nmae`: did you mean `name`?"),
            ("input_shape = [8, 8, 1]\n[[layers]]\ntype = \"Conv2D\"\nfilters = 2\nkernel_size = 3\npading = \"same\"\n".to_string(), "did you mean `padding`?"),
        ];
        for (text, want) in cases {
            let e = model_from_toml(&text, p).unwrap_err().to_string();
            assert!(e.starts_with("m.toml: ") && e.contains(want), "{e}");
        }
        // Every key a layer's config writes is accepted back, and Keras 2's LeakyReLU alpha.
        let ok = format!("{dense}use_bias = false\nkernel_initializer = \"he_normal\"\n[[layers]]\ntype = \"LeakyReLU\"\nalpha = 0.2\n[compile]\noptimizer = \"adam\"\nweight_decay = 0.01\nbeta_1 = 0.8\n");
        let m = model_from_toml(&ok, p).unwrap();
        assert_eq!(m.compiled().unwrap().optimizer.class_name(), "Adam");
    }
}
