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

use super::config;
use crate::error::{Error, Result};
use crate::nn::layers::{registry, shape_list};
use crate::nn::model::Sequential;
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

/// Reads a TOML model; returns the model, compiled if the file has a `[compile]` table.
pub fn model_from_toml(text: &str, path: &Path) -> Result<Sequential> {
    let doc: toml::Table =
        text.parse().map_err(|e: toml::de::Error| Error::format(path, format!("invalid TOML: {}", e.message())))?;
    let bad = |m: String| Error::format(path, m);
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
    for (i, l) in layers.iter().enumerate() {
        let Value::Object(mut cfg) = to_json(l) else {
            return Err(bad(format!("layer {} must be a table", i + 1)));
        };
        let class = cfg
            .remove("class_name")
            .or_else(|| cfg.remove("type"))
            .and_then(|v| v.as_str().map(str::to_string))
            .ok_or_else(|| bad(format!("layer {} needs class_name = \"Conv2D\" (or another Keras layer)", i + 1)))?;
        for key in ["kernel_regularizer", "bias_regularizer", "activity_regularizer", "alpha_regularizer"] {
            if let Some(v) = cfg.get(key) {
                let r = regularizer_form(v);
                cfg.insert(key.into(), r);
            }
        }
        let layer = registry::layer_from_config(&class, &cfg).map_err(|e| bad(format!("layer {}: {e}", i + 1)))?;
        model.add_boxed(layer);
    }
    if let Some(c) = doc.get("compile") {
        let mut c = match to_json(c) {
            Value::Object(m) => m,
            _ => return Err(bad("[compile] must be a table".into())),
        };
        let opt_name =
            c.remove("optimizer").and_then(|v| v.as_str().map(str::to_string)).unwrap_or_else(|| "adam".into());
        let mut opt_cfg = Map::new();
        for key in
            ["learning_rate", "momentum", "nesterov", "beta_1", "beta_2", "epsilon", "rho", "centered", "amsgrad"]
        {
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
        .map_err(|e| Error::format(path, format!("[augment]: {e}")))
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
}
