//! Keras' HDF5 files: whole models (`model.save("x.h5")`, the legacy format both Keras 2 and
//! Keras 3 read and write) and weights (`save_weights`), in both directions.
//!
//! Reading follows Keras' own rules: layers with weights are paired by position with the
//! `layer_names` whose `weight_names` are not empty, and each layer's values are taken in
//! `weight_names` order; string arrays may be fixed- or variable-length; optimizer variables
//! are recognised in tf_keras' and in Keras 3's naming. Writing uses the Keras 2 form of
//! `model_config` and `training_config`, which Keras 2 and Keras 3 both load, and tf_keras'
//! layout of `optimizer_weights`, with which tf_keras resumes training exactly. (Keras 3
//! restores the step count from it but, as with its own `.h5` files, cannot continue `fit`
//! on a legacy file holding optimizer state; use `.keras` for Keras 3.)
//!
//! The Keras 3 weights layout (`layers/<path>/vars/<i>`, `optimizer/vars/<i>`, used by
//! `.weights.h5` files and inside `.keras` archives) is read and written here too. Keras 3's
//! saving library addresses a layer there not by its name but by its class and its position
//! among the model's layers of that class ([`keras3_layer_paths`]): `conv2d`, `conv2d_1`,
//! `dense`, … whatever the layers are called, so a notebook's second model (`conv2d_3`), custom
//! names and layers built out of order all land where Keras looks for them.
//!
//! Optimizer variables exist for the trainable weights only ([`Sequential::trainable_params`]),
//! in Keras' order, in both layouts. A saved optimizer state that does not fit the model is
//! dropped with a warning (the weights still load); weights that do not fit are an error naming
//! the layer — they are never matched by a guess.

use super::config;
use crate::error::{Error, Result};
use crate::nn::layers::with_weight_budget;
use crate::nn::model::Sequential;
use crate::nn::optimizers::{Keras3Variable, Optimizer, OptimizerState};
use crate::tensor::Tensor;
use hdf5_pure::{AttrValue, File as H5File, FileBuilder, FinishedGroup, GroupBuilder};
use std::collections::HashMap;
use std::path::Path;

/// The Keras version recorded in written files: the line whose optimizer layout they carry.
pub const KERAS_VERSION: &str = "3.15.1";

fn h5err(path: &Path) -> impl Fn(hdf5_pure::Error) -> Error + '_ {
    move |e| Error::format(path, format!("HDF5: {e}"))
}

/// A string attribute (fixed- or variable-length, ASCII or UTF-8).
fn attr_str(attrs: &HashMap<String, AttrValue>, key: &str) -> Option<String> {
    let v = attrs.get(key)?;
    if let Some(s) = v.as_str() {
        return Some(s.to_string());
    }
    match v {
        AttrValue::U8Array(b) => String::from_utf8(b.clone()).ok().map(|s| s.trim_end_matches('\0').to_string()),
        _ => v.as_strings().and_then(|s| (s.len() == 1).then(|| s[0].clone())),
    }
}

/// A list-of-strings attribute, joined from Keras' `key0`, `key1`, … chunks when it was split;
/// empty for Keras' empty (float) arrays.
fn attr_strings(attrs: &HashMap<String, AttrValue>, key: &str, path: &Path) -> Result<Vec<String>> {
    let one = |v: &AttrValue| -> Result<Vec<String>> {
        if let Some(s) = v.as_strings() {
            return Ok(s.iter().map(|x| x.trim_end_matches('\0').to_string()).collect());
        }
        if let Some(s) = v.as_str() {
            return Ok(vec![s.to_string()]);
        }
        match v {
            AttrValue::F64Array(a) if a.is_empty() => Ok(Vec::new()),
            AttrValue::F32Array(a) if a.is_empty() => Ok(Vec::new()),
            other => {
                Err(Error::format(path, format!("attribute {key} is a {}, not a list of names", other.type_name())))
            }
        }
    };
    if let Some(v) = attrs.get(key) {
        return one(v);
    }
    let mut out = Vec::new();
    for i in 0.. {
        match attrs.get(&format!("{key}{i}")) {
            Some(v) => out.extend(one(v)?),
            None => break,
        }
    }
    Ok(out)
}

/// Reads an f32 dataset, checking its shape against `want`.
fn read_f32(f: &H5File, ds_path: &str, want: &[usize], what: &str, path: &Path) -> Result<Vec<f32>> {
    let ds = f.dataset(ds_path).map_err(|e| Error::format(path, format!("{what}: no dataset {ds_path}: {e}")))?;
    let shape: Vec<usize> = ds.shape().map_err(h5err(path))?.iter().map(|&d| d as usize).collect();
    if shape != want {
        return Err(Error::format(
            path,
            format!("{what} has shape {shape:?} in the file but the model needs {want:?}"),
        ));
    }
    let values = ds.read::<f32>().map_err(h5err(path))?;
    if values.len() != want.iter().product::<usize>() {
        return Err(Error::format(path, format!("{what}: dataset {ds_path} holds {} values", values.len())));
    }
    Ok(values)
}

/// Fills the model's weights from a legacy weights group at `base` ("" for the root).
fn load_legacy_weights(model: &mut Sequential, f: &H5File, base: &str, path: &Path) -> Result<()> {
    let group = if base.is_empty() { f.root() } else { f.group(base).map_err(h5err(path))? };
    let attrs = group.attrs().map_err(h5err(path))?;
    let layer_names = attr_strings(&attrs, "layer_names", path)?;
    let join = |a: &str, b: &str| if a.is_empty() { b.to_string() } else { format!("{a}/{b}") };
    let mut saved = Vec::new();
    for name in &layer_names {
        let g = f.group(&join(base, name)).map_err(|e| Error::format(path, format!("layer group {name}: {e}")))?;
        let wn = attr_strings(&g.attrs().map_err(h5err(path))?, "weight_names", path)?;
        if !wn.is_empty() {
            saved.push((name.clone(), wn));
        }
    }
    let mut with_weights: Vec<usize> =
        (0..model.layers().len()).filter(|&i| !model.layers()[i].params().is_empty()).collect();
    // Keras pairs layers by position; a graph whose layers all carry the file's names is
    // paired by name, so an order of equal-depth branches other than Keras' cannot swap them.
    if model.graph().is_some() && saved.len() == with_weights.len() {
        let by_name: Option<Vec<usize>> = saved
            .iter()
            .map(|(fname, _)| with_weights.iter().copied().find(|&i| model.layers()[i].name() == fname))
            .collect();
        if let Some(order) = by_name {
            with_weights = order;
        }
    }
    if saved.len() != with_weights.len() {
        return Err(Error::format(
            path,
            format!(
                "the file has weights for {} layers, the model has {} layers with weights",
                saved.len(),
                with_weights.len()
            ),
        ));
    }
    for ((fname, wnames), &li) in saved.iter().zip(&with_weights) {
        let layer = &mut model.layers_mut()[li];
        let lname = layer.name().to_string();
        if wnames.len() != layer.params().len() {
            return Err(Error::format(
                path,
                format!(
                    "layer {lname} (saved as {fname}) has {} weights, the file {}",
                    layer.params().len(),
                    wnames.len()
                ),
            ));
        }
        for (p, wn) in layer.params_mut().iter_mut().zip(wnames) {
            let what = format!("weight {lname}/{}", p.name);
            p.value = read_f32(f, &join(&join(base, fname), wn), &p.shape, &what, path)?;
        }
    }
    Ok(())
}

/// Restores optimizer state from a legacy `optimizer_weights` group, by slot name and order
/// of appearance. Returns a warning when the saved state does not fit.
fn load_legacy_optimizer(model: &mut Sequential, f: &H5File, path: &Path) -> Result<Option<String>> {
    let Ok(g) = f.group("optimizer_weights") else { return Ok(None) };
    let names = attr_strings(&g.attrs().map_err(h5err(path))?, "weight_names", path)?;
    let Some(opt) = model.optimizer().copied() else { return Ok(None) };
    let slot_names = opt.slot_names();
    let shapes: Vec<Vec<usize>> = model.trainable_params().map(|p| p.shape.clone()).collect();
    let mut slots: Vec<Vec<Vec<f32>>> = vec![vec![Vec::new(); slot_names.len()]; shapes.len()];
    let mut seen = vec![0usize; slot_names.len()];
    let mut iterations = 0u64;
    let mut lr = None;
    let unfit = |why: String| {
        Ok(Some(format!(
            "the saved optimizer state does not fit the model ({why}); training restarts with a fresh optimizer"
        )))
    };
    for n in &names {
        let leaf = n.rsplit('/').next().unwrap_or(n).trim_end_matches(":0");
        let ds_path = format!("optimizer_weights/{n}");
        if leaf == "iteration" || leaf == "iterations" || leaf == "iter" {
            let ds = f.dataset(&ds_path).map_err(h5err(path))?;
            iterations = ds.read::<i64>().map_err(h5err(path))?.first().copied().unwrap_or(0).max(0) as u64;
            continue;
        }
        if leaf == "learning_rate" || leaf == "lr" {
            let ds = f.dataset(&ds_path).map_err(h5err(path))?;
            lr = ds.read::<f32>().map_err(h5err(path))?.first().copied();
            continue;
        }
        let Some(si) = opt.slot_of_variable(n) else {
            // Keras 3's extra scalars (Nadam's u_product) follow from the step count.
            let ds = f.dataset(&ds_path).map_err(h5err(path))?;
            if !opt.scalar_names().is_empty() && ds.shape().map_err(h5err(path))?.is_empty() {
                continue;
            }
            return unfit(format!("{n} is not a variable of {}", opt.class_name()));
        };
        let Some(&slot) = slot_names.get(si) else {
            continue; // a tf_keras slot convnet does not keep (SGD's m without momentum)
        };
        let pi = seen[si];
        if pi >= shapes.len() {
            return unfit(format!("more {slot} variables than weights"));
        }
        seen[si] += 1;
        match read_f32(f, &ds_path, &shapes[pi], &format!("optimizer variable {n}"), path) {
            Ok(v) => slots[pi][si] = v,
            Err(e) => return unfit(e.to_string().trim_start_matches(&format!("{}: ", path.display())).to_string()),
        }
    }
    if seen.iter().any(|&s| s != shapes.len()) {
        return unfit(format!("{seen:?} slot variables for {} weights", shapes.len()));
    }
    if let (Some(lr), Some(o)) = (lr, model.optimizer_mut()) {
        if o.schedule().is_none() {
            o.set_learning_rate(lr);
        }
    }
    model.set_optimizer_state(OptimizerState { iterations, slots, ..Default::default() })?;
    Ok(None)
}

/// Reads a Keras `.h5` model file; returns the model and any warnings (for example an
/// optimizer state that could not be restored).
pub fn from_bytes(bytes: Vec<u8>, path: &Path) -> Result<(Sequential, Vec<String>)> {
    let len = bytes.len();
    let f = H5File::from_bytes(bytes).map_err(h5err(path))?;
    let attrs = f.root().attrs().map_err(h5err(path))?;
    let Some(mc) = attr_str(&attrs, "model_config") else {
        return Err(Error::format(
            path,
            "an HDF5 file without a model_config: a weights-only file? (load it into a model with load_weights)",
        ));
    };
    let mc: serde_json::Value =
        serde_json::from_str(&mc).map_err(|e| Error::format(path, format!("model_config is not JSON: {e}")))?;
    // Every weight is stored in the file (at least 2 bytes a value), which bounds what the
    // config may make us allocate.
    let mut model = with_weight_budget(len / 2 + 1024, || {
        let mut m = config::model_from_config(&mc)?;
        m.build()?;
        Ok(m)
    })
    .map_err(|e| Error::format(path, e.to_string()))?;
    let base = if f.group("model_weights").is_ok() { "model_weights" } else { "" };
    load_legacy_weights(&mut model, &f, base, path)?;
    let mut warnings = Vec::new();
    // Keras 2's hard_sigmoid is clip(0.2x + 0.5, 0, 1); Keras 3 (and convnet) compute
    // relu6(x + 3) / 6 under the same name, so such a file predicts differently here.
    let keras2 = attr_str(&attrs, "keras_version").is_some_and(|v| v.starts_with("2."));
    if keras2 && mc.to_string().contains("\"hard_sigmoid\"") {
        warnings.push(
            "this Keras 2 file uses hard_sigmoid, which Keras 2 defines as clip(0.2x + 0.5, 0, 1); convnet, \
             like Keras 3, computes relu6(x + 3) / 6, so predictions differ from Keras 2's"
                .into(),
        );
    }
    if let Some(tc) = attr_str(&attrs, "training_config") {
        let tc: serde_json::Value =
            serde_json::from_str(&tc).map_err(|e| Error::format(path, format!("training_config is not JSON: {e}")))?;
        match config::compile_from_config(&mut model, &tc) {
            Ok(()) => warnings.extend(load_legacy_optimizer(&mut model, &f, path)?),
            Err(e) => warnings.push(format!("the model was not compiled: {e}")),
        }
    }
    if let Some(c) = attr_str(&attrs, "class_names") {
        if let Ok(names) = serde_json::from_str::<Vec<String>>(&c) {
            model.set_class_names(names);
        }
    }
    Ok((model, warnings))
}

/// `(weight index, slot index)` in the order Keras 3 lists an optimizer's slot variables
/// (see [`Optimizer::keras3_variables`]).
pub fn keras3_slot_order(opt: &Optimizer, weights: usize) -> Vec<(usize, usize)> {
    opt.keras3_slot_order(weights)
}

fn f32_dataset(g: &mut GroupBuilder, name: &str, values: &[f32], shape: &[usize]) {
    let shape: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
    g.create_dataset(name).with_f32_data(values).with_shape(&shape);
}

/// The file root or a group, being written.
trait Container {
    fn attr(&mut self, name: &str, v: AttrValue);
    fn group(&mut self, name: &str) -> GroupBuilder;
    fn add(&mut self, g: FinishedGroup);
}

impl Container for FileBuilder {
    fn attr(&mut self, name: &str, v: AttrValue) {
        self.set_attr(name, v);
    }
    fn group(&mut self, name: &str) -> GroupBuilder {
        self.create_group(name)
    }
    fn add(&mut self, g: FinishedGroup) {
        self.add_group(g);
    }
}

impl Container for GroupBuilder {
    fn attr(&mut self, name: &str, v: AttrValue) {
        self.set_attr(name, v);
    }
    fn group(&mut self, name: &str) -> GroupBuilder {
        self.create_group(name)
    }
    fn add(&mut self, g: FinishedGroup) {
        self.add_group(g);
    }
}

/// Writes the legacy weights layout into `g`: `layer_names`, a group per layer with
/// `weight_names`, values at `<layer>/<layer>/<weight>:0`.
fn write_legacy_weights(model: &Sequential, g: &mut impl Container) {
    // A graph lists its InputLayers first, as Keras does (they hold no weights).
    let inputs: Vec<String> = model.graph().map(|g| g.input_names.clone()).unwrap_or_default();
    let names: Vec<String> =
        inputs.iter().cloned().chain(model.layers().iter().map(|l| l.name().to_string())).collect();
    g.attr("layer_names", AttrValue::VarLenAsciiStringArray(names));
    for name in &inputs {
        let mut lg = g.group(name);
        lg.set_attr("weight_names", AttrValue::F64Array(Vec::new()));
        g.add(lg.finish());
    }
    g.attr("backend", AttrValue::VarLenAsciiString("tensorflow".into()));
    g.attr("keras_version", AttrValue::VarLenAsciiString(KERAS_VERSION.into()));
    for l in model.layers() {
        let mut lg = g.group(l.name());
        if l.params().is_empty() {
            lg.set_attr("weight_names", AttrValue::F64Array(Vec::new()));
        } else {
            let wn: Vec<String> = l.params().iter().map(|p| format!("{}/{}:0", l.name(), p.name)).collect();
            lg.set_attr("weight_names", AttrValue::VarLenAsciiStringArray(wn));
            let mut inner = lg.create_group(l.name());
            for p in l.params() {
                f32_dataset(&mut inner, &format!("{}:0", p.name), &p.value, &p.shape);
            }
            lg.add_group(inner.finish());
        }
        g.add(lg.finish());
    }
    let mut top = g.group("top_level_model_weights");
    top.set_attr("weight_names", AttrValue::F64Array(Vec::new()));
    g.add(top.finish());
}

/// A group tree of datasets, for writing nested HDF5 paths.
#[derive(Default)]
struct Tree {
    datasets: Vec<(String, Vec<f32>, Vec<usize>)>,
    children: std::collections::BTreeMap<String, Tree>,
}

impl Tree {
    fn insert(&mut self, path: &str, values: Vec<f32>, shape: Vec<usize>) {
        match path.split_once('/') {
            Some((head, rest)) => self.children.entry(head.to_string()).or_default().insert(rest, values, shape),
            None => self.datasets.push((path.to_string(), values, shape)),
        }
    }

    fn write(self, g: &mut GroupBuilder) {
        for (name, values, shape) in self.datasets {
            f32_dataset(g, &name, &values, &shape);
        }
        for (name, child) in self.children {
            let mut cg = g.create_group(&name);
            child.write(&mut cg);
            g.add_group(cg.finish());
        }
    }
}

/// Writes the optimizer's variables as tf_keras does (`iteration:0`, `Adam/m/<var>:0`, …), in
/// its variable order, which is also Keras 3's.
fn write_tf_keras_optimizer(model: &Sequential, opt: &Optimizer, b: &mut FileBuilder) {
    let state = model.optimizer_state();
    let vars: Vec<(String, Vec<usize>)> = model
        .layers()
        .iter()
        .filter(|l| l.trainable())
        .flat_map(|l| {
            l.params()
                .iter()
                .filter(|p| p.trainable)
                .map(move |p| (format!("{}/{}", l.name(), p.name), p.shape.clone()))
        })
        .collect();
    let class = opt.class_name();
    let tokens = opt.tf_keras_slot_tokens();
    let mut names = vec!["iteration:0".to_string()];
    let mut tree = Tree::default();
    for (p, s) in opt.tf_keras_slot_order(vars.len()) {
        let name = format!("{class}/{}/{}:0", tokens[s], vars[p].0);
        let values = state.slots[p].get(s).cloned().unwrap_or_else(|| vec![0.0; vars[p].1.iter().product()]);
        tree.insert(&name, values, vars[p].1.clone());
        names.push(name);
    }
    let mut og = b.create_group("optimizer_weights");
    og.create_dataset("iteration:0").with_i64_data(&[state.iterations as i64]).with_shape(&[]);
    tree.write(&mut og);
    og.set_attr("weight_names", AttrValue::VarLenAsciiStringArray(names));
    b.add_group(og.finish());
}

/// Serialises a built model as a Keras `.h5` file; `include_optimizer` adds the optimizer's
/// variables (Keras' default).
pub fn to_bytes(model: &Sequential, include_optimizer: bool) -> Result<Vec<u8>> {
    let mut b = FileBuilder::new();
    b.set_attr("backend", AttrValue::VarLenString("tensorflow".into()));
    b.set_attr("keras_version", AttrValue::VarLenString(KERAS_VERSION.into()));
    b.set_attr("convnet_version", AttrValue::VarLenString(env!("CARGO_PKG_VERSION").into()));
    b.set_attr("model_config", AttrValue::VarLenAsciiString(config::model_config(model).to_string()));
    if let Some(tc) = config::training_config(model) {
        b.set_attr("training_config", AttrValue::VarLenAsciiString(tc.to_string()));
    }
    if let Some(c) = model.class_names() {
        b.set_attr("class_names", AttrValue::VarLenString(serde_json::to_string(c).unwrap_or_default()));
    }
    let mut mw = b.create_group("model_weights");
    write_legacy_weights(model, &mut mw);
    b.add_group(mw.finish());

    let state = model.optimizer_state();
    if let (Some(opt), false, true) = (model.optimizer(), state.slots.is_empty(), include_optimizer) {
        write_tf_keras_optimizer(model, opt, &mut b);
    }
    b.finish().map_err(|e| Error::config(format!("cannot write HDF5: {e}")))
}

/// Writes Keras 3's weights layout (`layers/<path>/vars/<i>`, `optimizer/vars/<i>`, `vars`),
/// as in `model.weights.h5` inside a `.keras` archive or a `.weights.h5` file.
pub fn keras3_weights_to_bytes(model: &Sequential, with_optimizer: bool) -> Result<Vec<u8>> {
    let mut b = FileBuilder::new();
    let mut layers = b.create_group("layers");
    // A graph's InputLayers are among Keras' `model.layers`, with empty variable lists.
    for at in keras3_input_paths(model) {
        let mut lg = layers.create_group(&at);
        let mut vars = lg.create_group("vars");
        vars.set_attr("name", AttrValue::VarLenString(at.clone()));
        lg.add_group(vars.finish());
        layers.add_group(lg.finish());
    }
    for (l, at) in model.layers().iter().zip(keras3_layer_paths(model)) {
        let mut lg = layers.create_group(&at);
        let mut vars = lg.create_group("vars");
        vars.set_attr("name", AttrValue::VarLenString(at.clone()));
        for (i, p) in l.params().iter().enumerate() {
            f32_dataset(&mut vars, &i.to_string(), &p.value, &p.shape);
        }
        lg.add_group(vars.finish());
        layers.add_group(lg.finish());
    }
    b.add_group(layers.finish());
    if with_optimizer {
        if let Some(opt) = model.optimizer() {
            let state = model.optimizer_state();
            let shapes: Vec<Vec<usize>> = model.trainable_params().map(|p| p.shape.clone()).collect();
            let mut og = b.create_group("optimizer");
            let mut vars = og.create_group("vars");
            vars.set_attr("name", AttrValue::VarLenString(opt.keras_name().into()));
            let scalars =
                if state.scalars.is_empty() { opt.scalars_after(state.iterations) } else { state.scalars.clone() };
            for (i, v) in opt.keras3_variables(shapes.len()).into_iter().enumerate() {
                let name = i.to_string();
                match v {
                    Keras3Variable::Iterations => {
                        vars.create_dataset(&name).with_i64_data(&[state.iterations as i64]).with_shape(&[]);
                    }
                    Keras3Variable::LearningRate => {
                        vars.create_dataset(&name).with_f32_data(&[opt.learning_rate()]).with_shape(&[]);
                    }
                    Keras3Variable::Scalar(k) => {
                        vars.create_dataset(&name).with_f32_data(&[scalars[k]]).with_shape(&[]);
                    }
                    Keras3Variable::Slot { weight: p, slot: s } => {
                        let fresh;
                        let values = match state.slots.get(p).and_then(|v| v.get(s)) {
                            Some(v) => v.as_slice(),
                            None => {
                                fresh = vec![opt.slot_initial_value(s); shapes[p].iter().product()];
                                &fresh
                            }
                        };
                        f32_dataset(&mut vars, &name, values, &shapes[p]);
                    }
                }
            }
            og.add_group(vars.finish());
            b.add_group(og.finish());
        }
    }
    let mut vars = b.create_group("vars");
    vars.set_attr("name", AttrValue::VarLenString(model.name().into()));
    b.add_group(vars.finish());
    b.finish().map_err(|e| Error::config(format!("cannot write HDF5: {e}")))
}

/// Keras' `to_snake_case` of a class name (`Conv2D` → `conv2d`, `MaxPooling2D` →
/// `max_pooling2d`, `ReLU` → `re_lu`, `PReLU` → `p_re_lu`): non-word characters dropped, an
/// underscore before each capital that starts a lower-case run (`(.)([A-Z][a-z]+)`), then
/// before each capital that follows a lower-case letter (`([a-z])([A-Z])`), each pass taking
/// its matches left to right without overlap, as Python's `re.sub` does.
pub fn snake_case(class: &str) -> String {
    let c: Vec<char> = class.chars().filter(|c| c.is_alphanumeric() || *c == '_').collect();
    let mut first = Vec::with_capacity(c.len() + 4);
    let mut i = 0;
    while i < c.len() {
        let run = c[i + 1..].iter().skip(1).take_while(|ch| ch.is_ascii_lowercase()).count();
        if i + 2 < c.len() && c[i + 1].is_ascii_uppercase() && run > 0 {
            first.extend([c[i], '_']);
            first.extend_from_slice(&c[i + 1..i + 2 + run]);
            i += 2 + run;
        } else {
            first.push(c[i]);
            i += 1;
        }
    }
    let mut out = String::with_capacity(first.len() + 4);
    let mut i = 0;
    while i < first.len() {
        if i + 1 < first.len() && first[i].is_ascii_lowercase() && first[i + 1].is_ascii_uppercase() {
            out.extend([first[i], '_', first[i + 1]]);
            i += 2;
        } else {
            out.push(first[i]);
            i += 1;
        }
    }
    out.to_lowercase()
}

/// Where Keras 3's saving library keeps each layer's variables, in model order: the snake-case
/// class name, suffixed `_1`, `_2`, … for the second, third, … layer of the same class — the
/// layer's own name plays no part (Keras' `_save_container_state`).
pub fn keras3_layer_paths(model: &Sequential) -> Vec<String> {
    let mut used: HashMap<String, usize> = HashMap::new();
    model
        .layers()
        .iter()
        .map(|l| {
            let stem = snake_case(l.class_name());
            match used.get_mut(&stem) {
                Some(k) => {
                    *k += 1;
                    format!("{stem}_{k}")
                }
                None => {
                    used.insert(stem.clone(), 0);
                    stem
                }
            }
        })
        .collect()
}

/// Where Keras 3 keeps a graph model's `InputLayer`s (which hold no variables):
/// `input_layer`, `input_layer_1`, …; none for a stack.
pub fn keras3_input_paths(model: &Sequential) -> Vec<String> {
    let n = if model.graph().is_some() { model.input_count() } else { 0 };
    (0..n).map(|k| if k == 0 { "input_layer".to_string() } else { format!("input_layer_{k}") }).collect()
}

/// Reads Keras 3's weights layout into a built model (layers addressed by class and position,
/// see [`keras3_layer_paths`]), and the optimizer's variables if `with_optimizer` and present.
/// Every layer's variables must match in number and shape; returns warnings.
pub fn load_keras3_weights(
    model: &mut Sequential,
    f: &H5File,
    with_optimizer: bool,
    path: &Path,
) -> Result<Vec<String>> {
    // Files written by tf.keras 2.13–2.15 kept the layers under another group name.
    let root = if f.group("layers").is_err() && f.group("_layer_checkpoint_dependencies").is_ok() {
        "_layer_checkpoint_dependencies"
    } else {
        "layers"
    };
    let paths = keras3_layer_paths(model);
    if let Ok(g) = f.group(root) {
        let inputs = keras3_input_paths(model);
        let extra: Vec<String> = g
            .groups()
            .map_err(h5err(path))?
            .into_iter()
            .filter(|name| !paths.contains(name) && !inputs.contains(name))
            .collect();
        if !extra.is_empty() {
            return Err(Error::format(
                path,
                format!(
                    "the file holds weights for layers the model does not have ({}): it was saved from another architecture",
                    extra.join(", ")
                ),
            ));
        }
    }
    for (li, at) in paths.iter().enumerate() {
        let layer = &mut model.layers_mut()[li];
        let lname = layer.name().to_string();
        let class = layer.class_name();
        let base = format!("{root}/{at}/vars");
        let stored = match f.group(&base) {
            Ok(g) => g.datasets().map_err(h5err(path))?.len(),
            Err(_) => 0,
        };
        let n = layer.params().len();
        if stored != n {
            return Err(Error::format(
                path,
                format!("layer {lname} ({class}, stored as {at}) has {n} weights, the file holds {stored} for it"),
            ));
        }
        for (i, p) in layer.params_mut().iter_mut().enumerate() {
            let what = format!("weight {lname}/{} (stored as {at}/vars/{i})", p.name);
            p.value = read_f32(f, &format!("{base}/{i}"), &p.shape, &what, path)?;
        }
    }
    let mut warnings = Vec::new();
    if !with_optimizer {
        return Ok(warnings);
    }
    let (Some(opt), Ok(g)) = (model.optimizer().copied(), f.group("optimizer/vars")) else { return Ok(warnings) };
    let count = g.datasets().map_err(h5err(path))?.len();
    let shapes: Vec<Vec<usize>> = model.trainable_params().map(|p| p.shape.clone()).collect();
    let layout = opt.keras3_variables(shapes.len());
    if count != layout.len() {
        warnings.push(format!(
            "the saved optimizer has {count} variables, {} needs {}; training restarts with a fresh optimizer",
            opt.class_name(),
            layout.len()
        ));
        return Ok(warnings);
    }
    let mut state = OptimizerState {
        slots: vec![vec![Vec::new(); opt.slot_names().len()]; shapes.len()],
        scalars: vec![0.0; opt.scalar_names().len()],
        ..Default::default()
    };
    let mut lr = None;
    for (i, v) in layout.into_iter().enumerate() {
        let ds_path = format!("optimizer/vars/{i}");
        let scalar =
            || -> Result<Vec<f32>> { f.dataset(&ds_path).map_err(h5err(path))?.read::<f32>().map_err(h5err(path)) };
        match v {
            Keras3Variable::Iterations => {
                let it = f.dataset(&ds_path).map_err(h5err(path))?.read::<i64>().map_err(h5err(path))?;
                state.iterations = it.first().copied().unwrap_or(0).max(0) as u64;
            }
            Keras3Variable::LearningRate => lr = scalar()?.first().copied(),
            Keras3Variable::Scalar(k) => {
                state.scalars[k] = scalar()?.first().copied().unwrap_or(1.0);
            }
            Keras3Variable::Slot { weight: p, slot: s } => {
                let what = format!("optimizer variable {i} ({})", opt.slot_names()[s]);
                match read_f32(f, &ds_path, &shapes[p], &what, path) {
                    Ok(v) => state.slots[p][s] = v,
                    Err(e) => {
                        warnings.push(format!(
                            "the saved optimizer state does not fit the model ({e}); training restarts with a fresh optimizer"
                        ));
                        return Ok(warnings);
                    }
                }
            }
        }
    }
    if let (Some(lr), Some(o)) = (lr, model.optimizer_mut()) {
        o.set_learning_rate(lr);
    }
    model.set_optimizer_state(state)?;
    Ok(warnings)
}

/// Saves the model's weights: Keras 3's layout for names ending in `.weights.h5`, else the
/// legacy layout of Keras 2's `save_weights`.
pub fn save_weights_bytes(model: &Sequential, path: &Path) -> Result<Vec<u8>> {
    if path.to_string_lossy().ends_with(".weights.h5") {
        return keras3_weights_to_bytes(model, false);
    }
    // The legacy weights file keeps its layer groups at the root.
    let mut b = FileBuilder::new();
    write_legacy_weights(model, &mut b);
    b.finish().map_err(|e| Error::config(format!("cannot write HDF5: {e}")))
}

/// Loads weights saved by Keras (either layout) or by convnet into a built model.
pub fn load_weights_bytes(model: &mut Sequential, bytes: Vec<u8>, path: &Path) -> Result<()> {
    model.build()?;
    let f = H5File::from_bytes(bytes).map_err(h5err(path))?;
    if f.group("layers").is_ok() {
        load_keras3_weights(model, &f, false, path)?;
        return Ok(());
    }
    let base = if f.group("model_weights").is_ok() { "model_weights" } else { "" };
    load_legacy_weights(model, &f, base, path)
}

/// Stacks a dataset into a tensor (for tests and tools).
pub fn read_tensor(f: &H5File, ds_path: &str, path: &Path) -> Result<Tensor> {
    let ds = f.dataset(ds_path).map_err(h5err(path))?;
    let shape: Vec<usize> = ds.shape().map_err(h5err(path))?.iter().map(|&d| d as usize).collect();
    Tensor::from_vec(&shape, ds.read::<f32>().map_err(h5err(path))?)
}
