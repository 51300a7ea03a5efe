//! ONNX export: a built [`Sequential`] as an ONNX model (opset [`OPSET`]) that ONNX Runtime,
//! TensorRT, Triton or a browser runtime can serve.
//!
//! **Contract.** The graph takes the Keras model's input — NHWC `float32`, named `input_layer`
//! as Keras names a `Sequential`'s input, with a dynamic batch dimension `N` — and outputs what
//! [`Sequential::predict`] gives (named after the last layer). Training-only parts play no
//! part: dropout is the identity, and frozen flags, regularizers and constraints are not
//! written. The protobuf is the ONNX project's own `onnx.proto`, compiled by prost-build in
//! `build.rs` (the messages are in [`proto`]).
//!
//! **Layout.** ONNX's `Conv` and pooling read NCHW, Keras' tensors are NHWC. The exporter
//! tracks the layout of the current value and inserts a `Transpose` only where an operator
//! needs the other one: once before the first convolution or pooling, and back to NHWC before
//! whatever depends on the order of the values (`Flatten`, `Dense` on images, `PReLU`'s slopes,
//! the graph's output). Element-wise activations run in either layout; softmax-like ones take
//! the channel axis (1 in NCHW, −1 in NHWC).
//!
//! **Operators.** `Conv2D` → `Conv` (kernel `[kh, kw, in/groups, out]` transposed to OIHW,
//! with `dilations` and `group`; Keras' "same" padding as explicit pads, the smaller half
//! first, so asymmetric when the total is odd); `DepthwiseConv2D` → `Conv` with one group per
//! input channel; `SeparableConv2D` → that, then a 1×1 `Conv`; `Conv2DTranspose` →
//! `ConvTranspose` (kernel `[kh, kw, out, in]` to `[in, out, kh, kw]`, pads and
//! `output_padding` giving Keras' output size); pooling → `MaxPool` / `AveragePool` (`count_include_pad=0`: Keras' "same" average
//! divides by the valid values only); `Flatten` → `Flatten` in NHWC order; `Dense` → `MatMul`
//! then `Add`; activations and the layer classes `ReLU`, `LeakyReLU`, `ELU`, `Softmax`, `PReLU` →
//! their ONNX operators or a few standard ones composed (GELU from `Erf`, SiLU as
//! `x·Sigmoid(x)`, Keras 3's hard sigmoid as `HardSigmoid(α = 1/6, β = ½)`, …);
//! `BatchNormalization` → `BatchNormalization` with the moving statistics (images and
//! `(batch, channels)`; other ranks as `Mul`/`Add`), global pooling → `GlobalAveragePool` /
//! `GlobalMaxPool` (then `Flatten` unless `keepdims`), `ZeroPadding2D` → `Pad`, `Cropping2D`
//! → `Slice`, `UpSampling2D` → `Resize` (nearest: `asymmetric`/`floor`; bilinear: `linear`
//! with `half_pixel`, TensorFlow's), `Rescaling` and `Normalization` → `Mul`/`Add`, `Sub`/`Div`,
//! `Reshape` → `Reshape` in NHWC order, `SpatialDropout2D` → nothing. What has no
//! form (`sparsemax`, a layer class the exporter does not know) is an
//! [`Error::Unexportable`] naming the layer.
//!
//! **Graphs.** A functional model exports with one graph input per model input (named as its
//! `InputLayer`) and one output per model output (named after its layer, NHWC); each layer's
//! nodes read the values of the layers it reads. Merge layers bring their inputs to the first
//! input's layout and become `Add` (`Sum` for more than two), `Sub`, `Mul`, `Mean`, `Max`,
//! `Min` or `Concat` (Keras' axis mapped to that layout).

use crate::error::{Error, Result};
use crate::nn::activations::Activation;
use crate::nn::layers::Layer;
use crate::nn::model::Sequential;
use prost::Message;
use serde_json::Value;
use std::path::Path;

/// The ONNX messages (`ModelProto`, `GraphProto`, `NodeProto`, …), generated from the ONNX
/// project's `onnx.proto` by prost-build.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/onnx.rs"));
}

use proto::attribute_proto::AttributeType;
use proto::tensor_proto::DataType;
use proto::{
    tensor_shape_proto, type_proto, AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
    TensorShapeProto, TypeProto, ValueInfoProto,
};

/// The opset of the default ONNX domain that exported models import (every operator used has
/// been standard since then or earlier; 17 is what most runtimes serve).
pub const OPSET: i64 = 17;
/// The IR version that goes with opset 17.
const IR_VERSION: i64 = 8;
/// The graph input's name: Keras' name of a `Sequential`'s input.
pub const INPUT_NAME: &str = "input_layer";

/// Exports a built model to the ONNX file `path` (atomically: on error nothing is written).
pub fn export(model: &Sequential, path: &Path) -> Result<()> {
    let bytes = to_bytes(model)?;
    super::atomic_write(path, &bytes)
}

/// The ONNX model's bytes (a serialized `ModelProto`).
pub fn to_bytes(model: &Sequential) -> Result<Vec<u8>> {
    Ok(to_model(model)?.encode_to_vec())
}

/// The ONNX model of a built `Sequential`.
pub fn to_model(model: &Sequential) -> Result<ModelProto> {
    if model.layers().is_empty() || !model.is_built() {
        return Err(Error::State("only a built model can be exported (build, fit or predict it first)".into()));
    }
    if model.graph().is_some() {
        return graph_model(model);
    }
    let input_shape = model.input_shape().unwrap_or(&[]).to_vec();
    let mut g = Graph::new(&input_shape);
    let last = model.layers().len() - 1;
    for (i, layer) in model.layers().iter().enumerate() {
        let before = g.nodes.len();
        g.layer(layer.as_ref())?;
        // The layer's result carries the layer's name (as Keras' tensors do), except that the
        // last one's name is kept for the graph's output, which may follow a transpose.
        if i < last && g.nodes.len() > before {
            g.rename_current(layer.name().to_string());
        }
    }
    g.make_nhwc();
    let out_name = model.layers()[last].name().to_string();
    if !g.nodes.is_empty() && g.cur != INPUT_NAME {
        g.rename_current(out_name.clone());
    } else {
        g.node("Identity", &[&g.cur.clone()], vec![], "output");
        g.rename_current(out_name.clone());
    }
    let graph = GraphProto {
        name: Some(if model.name().is_empty() { "sequential".into() } else { model.name().into() }),
        node: g.nodes,
        initializer: g.inits,
        input: vec![value_info(INPUT_NAME, &input_shape)],
        output: vec![value_info(&out_name, &g.shape)],
        ..Default::default()
    };
    Ok(ModelProto {
        ir_version: Some(IR_VERSION),
        opset_import: vec![OperatorSetIdProto { domain: Some(String::new()), version: Some(OPSET) }],
        producer_name: Some("convnet".into()),
        producer_version: Some(env!("CARGO_PKG_VERSION").into()),
        graph: Some(graph),
        ..Default::default()
    })
}

/// The ONNX model of a built graph model: one ONNX input per model input (named as its
/// `InputLayer`), one output per model output (named after the layer that makes it, NHWC),
/// each layer's nodes reading the values of the nodes it reads.
fn graph_model(model: &Sequential) -> Result<ModelProto> {
    let wiring = model.graph().expect("a graph model");
    let n_in = wiring.input_names.len();
    let mut g = Graph::new(&[]);
    // Per model node: its ONNX value, per-sample NHWC shape and layout.
    let mut vals: Vec<(String, Vec<usize>, Layout)> = wiring
        .input_names
        .iter()
        .zip(&wiring.input_shapes)
        .map(|(n, s)| (n.clone(), s.clone(), Layout::Nhwc))
        .collect();
    for (i, layer) in model.layers().iter().enumerate() {
        let ins = model.inbound(i);
        let before = g.nodes.len();
        if layer.multi_input() {
            let inputs: Vec<(String, Vec<usize>, Layout)> = ins.iter().map(|&x| vals[x].clone()).collect();
            g.merge(layer.as_ref(), &inputs)?;
        } else {
            (g.cur, g.shape, g.layout) = vals[ins[0]].clone();
            g.layer(layer.as_ref())?;
        }
        // A layer's result carries its name, as Keras' tensors do; an output's name is given
        // last, to the value after any transpose back to NHWC.
        if g.nodes.len() > before && !model.output_nodes().contains(&(n_in + i)) {
            g.rename_current(layer.name().to_string());
        }
        vals.push((g.cur.clone(), g.shape.clone(), g.layout));
    }
    let mut outputs = Vec::new();
    for &o in model.output_nodes() {
        (g.cur, g.shape, g.layout) = vals[o].clone();
        let name = if o < n_in { wiring.input_names[o].clone() } else { model.layers()[o - n_in].name().to_string() };
        g.scope = name.clone();
        let before = g.nodes.len();
        g.make_nhwc();
        let taken = outputs.iter().any(|v: &ValueInfoProto| v.name.as_deref() == Some(name.as_str()));
        if g.nodes.len() > before && !taken {
            g.rename_current(name.clone());
        } else if g.nodes.iter().any(|n| n.output[0] == g.cur) && !taken && g.cur != name {
            g.rename_value(&g.cur.clone(), &name);
        } else if g.cur != name || taken {
            // A model input given as an output, or one value given twice.
            let out = if taken { format!("{name}_{}", outputs.len()) } else { name.clone() };
            g.node("Identity", &[&g.cur.clone()], vec![], "output");
            g.rename_current(out);
        }
        outputs.push(value_info(&g.cur, &g.shape));
    }
    let graph = GraphProto {
        name: Some(model.name().to_string()),
        node: g.nodes,
        initializer: g.inits,
        input: wiring.input_names.iter().zip(&wiring.input_shapes).map(|(n, s)| value_info(n, s)).collect(),
        output: outputs,
        ..Default::default()
    };
    Ok(ModelProto {
        ir_version: Some(IR_VERSION),
        opset_import: vec![OperatorSetIdProto { domain: Some(String::new()), version: Some(OPSET) }],
        producer_name: Some("convnet".into()),
        producer_version: Some(env!("CARGO_PKG_VERSION").into()),
        graph: Some(graph),
        ..Default::default()
    })
}

/// A graph input or output: `float32` of `[N, shape…]`.
fn value_info(name: &str, shape: &[usize]) -> ValueInfoProto {
    use tensor_shape_proto::{dimension::Value as Dim, Dimension};
    let mut dim = vec![Dimension { value: Some(Dim::DimParam("N".into())), ..Default::default() }];
    dim.extend(shape.iter().map(|&d| Dimension { value: Some(Dim::DimValue(d as i64)), ..Default::default() }));
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(DataType::Float as i32),
                shape: Some(TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn attr_int(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Int as i32),
        i: Some(v),
        ..Default::default()
    }
}

fn attr_ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Ints as i32),
        ints: v.to_vec(),
        ..Default::default()
    }
}

fn attr_string(name: &str, v: &str) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::String as i32),
        s: Some(v.as_bytes().to_vec()),
        ..Default::default()
    }
}

fn attr_float(name: &str, v: f32) -> AttributeProto {
    AttributeProto {
        name: Some(name.into()),
        r#type: Some(AttributeType::Float as i32),
        f: Some(v),
        ..Default::default()
    }
}

/// Where a 4-D value's channels are.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Layout {
    Nhwc,
    Nchw,
}

/// The graph being built: nodes, weights, and the current value (its name, its per-sample
/// shape in Keras' NHWC order, and its layout).
struct Graph {
    nodes: Vec<NodeProto>,
    inits: Vec<TensorProto>,
    cur: String,
    shape: Vec<usize>,
    layout: Layout,
    /// The layer being exported, which names the values and nodes it makes.
    scope: String,
    counter: usize,
}

impl Graph {
    fn new(input_shape: &[usize]) -> Self {
        Graph {
            nodes: Vec::new(),
            inits: Vec::new(),
            cur: INPUT_NAME.into(),
            shape: input_shape.to_vec(),
            layout: Layout::Nhwc,
            scope: String::new(),
            counter: 0,
        }
    }

    /// A new value name within the current layer.
    fn fresh(&mut self, what: &str) -> String {
        self.counter += 1;
        format!("{}/{what}_{}", self.scope, self.counter)
    }

    /// Appends a node of `op` on `inputs`; returns its output's name.
    fn node(&mut self, op: &str, inputs: &[&str], attribute: Vec<AttributeProto>, what: &str) -> String {
        let out = self.fresh(what);
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![out.clone()],
            name: Some(out.clone()),
            op_type: Some(op.into()),
            attribute,
            ..Default::default()
        });
        out
    }

    /// Applies `op` to the current value, which becomes its output.
    fn apply(&mut self, op: &str, attribute: Vec<AttributeProto>) {
        let cur = self.cur.clone();
        self.cur = self.node(op, &[&cur], attribute, &op.to_ascii_lowercase());
    }

    /// Renames the current value (the output of the last node).
    fn rename_current(&mut self, name: String) {
        let node = self.nodes.last_mut().expect("a node made the current value");
        debug_assert_eq!(node.output[0], self.cur);
        node.output[0] = name.clone();
        node.name = Some(name.clone());
        self.cur = name;
    }

    /// Renames the value `old` wherever a node makes or reads it.
    fn rename_value(&mut self, old: &str, new: &str) {
        for n in &mut self.nodes {
            for v in n.output.iter_mut().chain(n.input.iter_mut()) {
                if v == old {
                    *v = new.to_string();
                }
            }
            if n.name.as_deref() == Some(old) {
                n.name = Some(new.to_string());
            }
        }
        if self.cur == old {
            self.cur = new.to_string();
        }
    }

    /// Exports a merge layer on `inputs` (value, NHWC shape, layout): all are brought to the
    /// first one's layout, then `Add`/`Sum`, `Sub`, `Mul`, `Mean`, `Max`, `Min` or `Concat`
    /// (Keras' axis mapped to the layout).
    fn merge(&mut self, l: &dyn Layer, inputs: &[(String, Vec<usize>, Layout)]) -> Result<()> {
        self.scope = l.name().to_string();
        let layout = inputs[0].2;
        let mut names = Vec::new();
        for (name, shape, lay) in inputs {
            (self.cur, self.shape, self.layout) = (name.clone(), shape.clone(), *lay);
            if layout == Layout::Nchw {
                self.make_nchw();
            } else {
                self.make_nhwc();
            }
            names.push(self.cur.clone());
        }
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let binary_chain = |g: &mut Self, op: &str| {
            let mut acc = refs[0].to_string();
            for r in &refs[1..] {
                acc = g.node(op, &[&acc, r], vec![], &op.to_ascii_lowercase());
            }
            acc
        };
        self.cur = match l.class_name() {
            "Add" if refs.len() == 2 => self.node("Add", &refs, vec![], "add"),
            "Add" => self.node("Sum", &refs, vec![], "sum"),
            "Subtract" => self.node("Sub", &refs, vec![], "sub"),
            "Multiply" => binary_chain(self, "Mul"),
            "Average" => self.node("Mean", &refs, vec![], "mean"),
            "Maximum" => self.node("Max", &refs, vec![], "max"),
            "Minimum" => self.node("Min", &refs, vec![], "min"),
            "Concatenate" => {
                let rank = inputs[0].1.len() as i64;
                let axis = l.config().get("axis").and_then(Value::as_i64).unwrap_or(-1);
                let mut a = if axis < 0 { rank + 1 + axis } else { axis };
                if layout == Layout::Nchw && rank == 3 {
                    a = [0, 2, 3, 1][a as usize];
                }
                self.node("Concat", &refs, vec![attr_int("axis", a)], "concat")
            }
            other => {
                return Err(Error::Unexportable { format: "ONNX", layer: l.name().into(), what: other.to_string() })
            }
        };
        self.shape = l.output_shape().to_vec();
        self.layout = if self.shape.len() == 3 { layout } else { Layout::Nhwc };
        Ok(())
    }

    /// A `float32` weight of `dims`.
    fn weight(&mut self, what: &str, dims: &[usize], values: &[f32]) -> String {
        let name = self.fresh(what);
        self.inits.push(TensorProto {
            name: Some(name.clone()),
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: Some(DataType::Float as i32),
            raw_data: Some(values.iter().flat_map(|v| v.to_le_bytes()).collect()),
            ..Default::default()
        });
        name
    }

    /// A `float32` scalar.
    fn scalar(&mut self, v: f32) -> String {
        self.weight("const", &[], &[v])
    }

    /// An `int64` vector (shapes, pads, slice bounds).
    fn ints(&mut self, what: &str, values: &[i64]) -> String {
        let name = self.fresh(what);
        self.inits.push(TensorProto {
            name: Some(name.clone()),
            dims: vec![values.len() as i64],
            data_type: Some(DataType::Int64 as i32),
            raw_data: Some(values.iter().flat_map(|v| v.to_le_bytes()).collect()),
            ..Default::default()
        });
        name
    }

    /// A per-channel constant that broadcasts against the current value: `[c, 1, 1]` for an
    /// NCHW image, `[c]` (the last axis) otherwise.
    fn per_channel(&mut self, what: &str, values: &[f32]) -> String {
        if self.shape.len() == 3 && self.layout == Layout::Nchw {
            self.weight(what, &[values.len(), 1, 1], values)
        } else {
            self.weight(what, &[values.len()], values)
        }
    }

    /// Applies the binary `op` with the constant `b` as its second input.
    fn apply_with(&mut self, op: &str, b: &str) {
        let cur = self.cur.clone();
        self.cur = self.node(op, &[&cur, b], vec![], &op.to_ascii_lowercase());
    }

    /// The image axes (height, width) of the current 4-D value in its layout.
    fn spatial_axes(&self) -> [usize; 2] {
        if self.layout == Layout::Nchw {
            [2, 3]
        } else {
            [1, 2]
        }
    }

    fn transpose(&mut self, perm: &[i64], layout: Layout) {
        self.apply("Transpose", vec![attr_ints("perm", perm)]);
        self.layout = layout;
    }

    /// Makes a 4-D current value NCHW (for convolution and pooling).
    fn make_nchw(&mut self) {
        if self.shape.len() == 3 && self.layout == Layout::Nhwc {
            self.transpose(&[0, 3, 1, 2], Layout::Nchw);
        }
    }

    /// Makes a 4-D current value NHWC again (Keras' order).
    fn make_nhwc(&mut self) {
        if self.shape.len() == 3 && self.layout == Layout::Nchw {
            self.transpose(&[0, 2, 3, 1], Layout::Nhwc);
        }
    }

    /// Exports one layer.
    fn layer(&mut self, l: &dyn Layer) -> Result<()> {
        self.scope = l.name().to_string();
        let cfg = l.config();
        let unexportable = |what: String| Error::Unexportable { format: "ONNX", layer: l.name().into(), what };
        let pair = |key: &str| -> Result<[usize; 2]> {
            match cfg.get(key).and_then(Value::as_array).map(|a| a.iter().map(Value::as_u64).collect::<Vec<_>>()) {
                Some(v) if v.len() == 2 && v.iter().all(Option::is_some) => {
                    Ok([v[0].unwrap() as usize, v[1].unwrap() as usize])
                }
                _ => Err(Error::config(format!("layer {:?}: `{key}` is not a pair of integers", l.name()))),
            }
        };
        let same = cfg.get("padding").and_then(Value::as_str) == Some("same");
        match l.class_name() {
            class @ ("Conv2D" | "DepthwiseConv2D" | "SeparableConv2D") => {
                let [kh, kw] = pair("kernel_size")?;
                let strides = pair("strides")?;
                let dil = pair("dilation_rate")?;
                let [h, w, c] = self.image_shape(l)?;
                let params = l.params();
                // Keras' kernel `[kh, kw, c/groups, f]` is ONNX's grouped `[f, c/groups, kh, kw]`;
                // a depthwise kernel `[kh, kw, c, m]` is the grouped kernel with `c` groups of
                // one channel and `c·m` filters.
                let (cg, f, groups) = match class {
                    "Conv2D" => {
                        let g = cfg.get("groups").and_then(Value::as_u64).unwrap_or(1) as usize;
                        (params[0].shape[2], params[0].shape[3], g)
                    }
                    _ => (1, c * params[0].shape[3], c),
                };
                let oihw = grouped_oihw(&params[0].value, kh, kw, cg, f);
                self.make_nchw();
                let wname = self.weight("kernel", &[f, cg, kh, kw], &oihw);
                let mut inputs = vec![self.cur.clone(), wname];
                let bias = if class == "SeparableConv2D" { None } else { params.get(1) };
                if let Some(b) = bias {
                    inputs.push(self.weight("bias", &[f], &b.value));
                }
                let ext = [(kh - 1) * dil[0] + 1, (kw - 1) * dil[1] + 1];
                let (pads, oh, ow) = window(h, w, ext, strides, same);
                let attrs = vec![
                    attr_ints("kernel_shape", &[kh as i64, kw as i64]),
                    attr_ints("strides", &[strides[0] as i64, strides[1] as i64]),
                    attr_ints("pads", &pads),
                    attr_ints("dilations", &[dil[0] as i64, dil[1] as i64]),
                    attr_int("group", groups as i64),
                ];
                let refs: Vec<&str> = inputs.iter().map(String::as_str).collect();
                self.cur = self.node("Conv", &refs, attrs, "conv");
                self.shape = vec![oh, ow, f];
                if class == "SeparableConv2D" {
                    // The pointwise stage: a 1×1 convolution `[1, 1, c·m, filters]`.
                    let fo = params[1].shape[3];
                    let pw = grouped_oihw(&params[1].value, 1, 1, f, fo);
                    let wname = self.weight("pointwise_kernel", &[fo, f, 1, 1], &pw);
                    let mut inputs = vec![self.cur.clone(), wname];
                    if let Some(b) = params.get(2) {
                        inputs.push(self.weight("bias", &[fo], &b.value));
                    }
                    let refs: Vec<&str> = inputs.iter().map(String::as_str).collect();
                    self.cur = self.node("Conv", &refs, vec![attr_ints("kernel_shape", &[1, 1])], "conv");
                    self.shape = vec![oh, ow, fo];
                }
                self.activation(l.activation(), l)?;
            }
            "Conv2DTranspose" => {
                let [kh, kw] = pair("kernel_size")?;
                let strides = pair("strides")?;
                let [h, w, c] = self.image_shape(l)?;
                let out = l.output_shape().to_vec();
                let params = l.params();
                let f = params[0].shape[2];
                // Keras' `[kh, kw, filters, in]` → ONNX's `[in, filters, kh, kw]`.
                let kernel = &params[0].value;
                let mut iohw = vec![0.0; kernel.len()];
                for y in 0..kh {
                    for x in 0..kw {
                        for o in 0..f {
                            for i in 0..c {
                                iohw[((i * f + o) * kh + y) * kw + x] = kernel[((y * kw + x) * f + o) * c + i];
                            }
                        }
                    }
                }
                // The leading padding is that of the convolution from the output back to the
                // input ("same": TensorFlow's smaller half first); the trailing one follows
                // from ONNX's `out = s·(in − 1) + k − begin − end + output_padding`.
                let (pads_hw, _, _) = window(out[0], out[1], [kh, kw], strides, same);
                let mut pads = [pads_hw[0], pads_hw[1], 0, 0];
                let mut extra = [0i64; 2];
                for (a, (&len, &i)) in [out[0], out[1]].iter().zip(&[h, w]).enumerate() {
                    let end = (strides[a] * (i - 1) + [kh, kw][a]) as i64 - pads[a] - len as i64;
                    if end >= 0 {
                        pads[2 + a] = end;
                    } else {
                        extra[a] = -end;
                    }
                }
                self.make_nchw();
                let wname = self.weight("kernel", &[c, f, kh, kw], &iohw);
                let mut inputs = vec![self.cur.clone(), wname];
                if let Some(b) = params.get(1) {
                    inputs.push(self.weight("bias", &[f], &b.value));
                }
                let attrs = vec![
                    attr_ints("kernel_shape", &[kh as i64, kw as i64]),
                    attr_ints("strides", &[strides[0] as i64, strides[1] as i64]),
                    attr_ints("pads", &pads),
                    attr_ints("output_padding", &extra),
                ];
                let refs: Vec<&str> = inputs.iter().map(String::as_str).collect();
                self.cur = self.node("ConvTranspose", &refs, attrs, "conv_transpose");
                self.shape = out;
                self.activation(l.activation(), l)?;
            }
            class @ ("MaxPooling2D" | "AveragePooling2D") => {
                let pool = pair("pool_size")?;
                let strides = pair("strides")?;
                let [h, w, c] = self.image_shape(l)?;
                self.make_nchw();
                let (pads, oh, ow) = window(h, w, pool, strides, same);
                let mut attrs = vec![
                    attr_ints("kernel_shape", &[pool[0] as i64, pool[1] as i64]),
                    attr_ints("strides", &[strides[0] as i64, strides[1] as i64]),
                    attr_ints("pads", &pads),
                ];
                let op = if class == "MaxPooling2D" {
                    "MaxPool"
                } else {
                    // Keras divides by the number of values inside the input.
                    attrs.push(attr_int("count_include_pad", 0));
                    "AveragePool"
                };
                self.apply(op, attrs);
                self.shape = vec![oh, ow, c];
            }
            "Flatten" => {
                self.make_nhwc();
                if self.shape.len() != 1 {
                    self.apply("Flatten", vec![attr_int("axis", 1)]);
                }
                self.shape = vec![self.shape.iter().product()];
            }
            "Dense" => {
                self.make_nhwc();
                let params = l.params();
                let [n_in, n_out] = [params[0].shape[0], params[0].shape[1]];
                let k = self.weight("kernel", &[n_in, n_out], &params[0].value);
                let cur = self.cur.clone();
                self.cur = self.node("MatMul", &[&cur, &k], vec![], "matmul");
                if let Some(b) = params.get(1) {
                    let b = self.weight("bias", &[n_out], &b.value);
                    let cur = self.cur.clone();
                    self.cur = self.node("Add", &[&cur, &b], vec![], "add");
                }
                *self.shape.last_mut().expect("Dense has an input") = n_out;
                self.activation(l.activation(), l)?;
            }
            "Dropout" | "SpatialDropout2D" => {}
            "BatchNormalization" => {
                let eps = cfg.get("epsilon").and_then(Value::as_f64).unwrap_or(1e-3) as f32;
                let find = |n: &str| l.params().iter().find(|p| p.name == n).map(|p| p.value.clone());
                let (mean, var) =
                    (find("moving_mean").unwrap_or_default(), find("moving_variance").unwrap_or_default());
                let c = mean.len();
                let gamma = find("gamma").unwrap_or_else(|| vec![1.0; c]);
                let beta = find("beta").unwrap_or_else(|| vec![0.0; c]);
                if self.shape.len() == 3 || self.shape.len() == 1 {
                    // The operator normalizes axis 1: NCHW images, or (batch, channels).
                    self.make_nchw();
                    let inputs: Vec<String> =
                        [("gamma", &gamma), ("beta", &beta), ("moving_mean", &mean), ("moving_variance", &var)]
                            .iter()
                            .map(|(n, v)| self.weight(n, &[c], v))
                            .collect();
                    let cur = self.cur.clone();
                    let refs: Vec<&str> =
                        std::iter::once(cur.as_str()).chain(inputs.iter().map(String::as_str)).collect();
                    self.cur = self.node("BatchNormalization", &refs, vec![attr_float("epsilon", eps)], "batchnorm");
                } else {
                    // Other ranks: the same affine map on the last axis, y = x·k + (β − μ·k).
                    let k: Vec<f32> = gamma.iter().zip(&var).map(|(g, v)| g / (v + eps).sqrt()).collect();
                    let b: Vec<f32> = beta.iter().zip(&mean).zip(&k).map(|((b, m), k)| b - m * k).collect();
                    let (k, b) = (self.per_channel("scale", &k), self.per_channel("offset", &b));
                    self.apply_with("Mul", &k);
                    self.apply_with("Add", &b);
                }
            }
            class @ ("GlobalAveragePooling2D" | "GlobalMaxPooling2D") => {
                let [_, _, c] = self.image_shape(l)?;
                self.make_nchw();
                self.apply(if class == "GlobalMaxPooling2D" { "GlobalMaxPool" } else { "GlobalAveragePool" }, vec![]);
                if cfg.get("keepdims").and_then(Value::as_bool) == Some(true) {
                    self.shape = vec![1, 1, c];
                } else {
                    self.apply("Flatten", vec![attr_int("axis", 1)]);
                    self.shape = vec![c];
                }
            }
            class @ ("ZeroPadding2D" | "Cropping2D") => {
                let [h, w, c] = self.image_shape(l)?;
                let m = l.output_shape().to_vec();
                let key = if class == "ZeroPadding2D" { "padding" } else { "cropping" };
                let get = |i: usize, j: usize| cfg[key][i][j].as_i64().unwrap_or(0);
                let [ah, aw] = self.spatial_axes();
                if class == "ZeroPadding2D" {
                    let mut pads = [0i64; 8];
                    (pads[ah], pads[aw], pads[4 + ah], pads[4 + aw]) = (get(0, 0), get(1, 0), get(0, 1), get(1, 1));
                    let pads = self.ints("pads", &pads);
                    self.apply_with("Pad", &pads);
                } else {
                    let starts = self.ints("starts", &[get(0, 0), get(1, 0)]);
                    let ends = self.ints("ends", &[h as i64 - get(0, 1), w as i64 - get(1, 1)]);
                    let axes = self.ints("axes", &[ah as i64, aw as i64]);
                    let cur = self.cur.clone();
                    self.cur = self.node("Slice", &[&cur, &starts, &ends, &axes], vec![], "slice");
                }
                self.shape = vec![m[0], m[1], c];
            }
            "UpSampling2D" => {
                let [sh, sw] = pair("size")?;
                self.image_shape(l)?;
                self.make_nchw();
                let scales = self.weight("scales", &[4], &[1.0, 1.0, sh as f32, sw as f32]);
                let attrs = if cfg.get("interpolation").and_then(Value::as_str) == Some("bilinear") {
                    // TensorFlow's resize with half-pixel centres, clamped at the edges.
                    vec![attr_string("mode", "linear"), attr_string("coordinate_transformation_mode", "half_pixel")]
                } else {
                    vec![
                        attr_string("mode", "nearest"),
                        attr_string("coordinate_transformation_mode", "asymmetric"),
                        attr_string("nearest_mode", "floor"),
                    ]
                };
                let cur = self.cur.clone();
                self.cur = self.node("Resize", &[&cur, "", &scales], attrs, "resize");
                self.shape = l.output_shape().to_vec();
            }
            "Rescaling" => {
                let num = |k: &str, d: f64| cfg.get(k).and_then(Value::as_f64).unwrap_or(d) as f32;
                let (scale, offset) = (self.scalar(num("scale", 1.0)), self.scalar(num("offset", 0.0)));
                self.apply_with("Mul", &scale);
                self.apply_with("Add", &offset);
            }
            "Normalization" => {
                let c = *self.shape.last().unwrap_or(&1);
                let list = |k: &str| -> Option<Vec<f32>> {
                    match cfg.get(k)? {
                        Value::Array(a) => Some(a.iter().filter_map(Value::as_f64).map(|v| v as f32).collect()),
                        v => v.as_f64().map(|v| vec![v as f32; c]),
                    }
                };
                let find = |n: &str| l.params().iter().find(|p| p.name == n).map(|p| p.value.clone());
                let mean = list("mean").or_else(|| find("mean")).unwrap_or_else(|| vec![0.0; c]);
                let var = list("variance").or_else(|| find("variance")).unwrap_or_else(|| vec![1.0; c]);
                let sd: Vec<f32> = var.iter().map(|v| v.sqrt().max(1e-7)).collect();
                let (mean, sd) = (self.per_channel("mean", &mean), self.per_channel("sd", &sd));
                if cfg.get("invert").and_then(Value::as_bool) == Some(true) {
                    self.apply_with("Mul", &sd);
                    self.apply_with("Add", &mean);
                } else {
                    self.apply_with("Sub", &mean);
                    self.apply_with("Div", &sd);
                }
            }
            "Reshape" => {
                self.make_nhwc();
                let out = l.output_shape().to_vec();
                // 0 keeps the batch dimension.
                let dims: Vec<i64> = std::iter::once(0).chain(out.iter().map(|&d| d as i64)).collect();
                let shape = self.ints("shape", &dims);
                self.apply_with("Reshape", &shape);
                self.shape = out;
            }
            "Activation" | "ReLU" | "LeakyReLU" | "ELU" | "Softmax" => self.activation(l.activation(), l)?,
            "PReLU" => {
                // The slopes have the per-sample shape (1 on shared axes), NHWC: they
                // broadcast against the NHWC value.
                self.make_nhwc();
                let a = &l.params()[0];
                let slope = self.weight("alpha", &a.shape, &a.value);
                let cur = self.cur.clone();
                self.cur = self.node("PRelu", &[&cur, &slope], vec![], "prelu");
            }
            other => return Err(unexportable(other.to_string())),
        }
        Ok(())
    }

    /// The per-sample `[h, w, c]` of an image input to `l`.
    fn image_shape(&self, l: &dyn Layer) -> Result<[usize; 3]> {
        match self.shape[..] {
            [h, w, c] => Ok([h, w, c]),
            _ => Err(Error::shape(format!("layer {:?} needs an image input, not {:?}", l.name(), self.shape))),
        }
    }

    /// Applies `a` to the current value.
    fn activation(&mut self, a: Activation, l: &dyn Layer) -> Result<()> {
        use Activation::*;
        // The channel axis, over which softmax-like functions run.
        let axis = if self.shape.len() == 3 && self.layout == Layout::Nchw { 1 } else { -1 };
        let x = self.cur.clone();
        match a {
            Linear => {}
            Relu => self.apply("Relu", vec![]),
            Sigmoid => self.apply("Sigmoid", vec![]),
            Tanh => self.apply("Tanh", vec![]),
            Softmax => self.apply("Softmax", vec![attr_int("axis", axis)]),
            LogSoftmax => self.apply("LogSoftmax", vec![attr_int("axis", axis)]),
            LeakyRelu { negative_slope } => self.apply("LeakyRelu", vec![attr_float("alpha", negative_slope)]),
            Relu6 => self.clip(0.0, 6.0),
            HardTanh => self.clip(-1.0, 1.0),
            Elu { alpha } => self.apply("Elu", vec![attr_float("alpha", alpha)]),
            Selu => {
                let k = crate::kernels::activation::SELU_SCALE;
                let ka = crate::kernels::activation::SELU_SCALE_ALPHA;
                self.apply("Selu", vec![attr_float("alpha", ka / k), attr_float("gamma", k)]);
            }
            Celu => self.apply("Celu", vec![attr_float("alpha", 1.0)]),
            Softplus => self.apply("Softplus", vec![]),
            Softsign => self.apply("Softsign", vec![]),
            Exponential => self.apply("Exp", vec![]),
            HardSigmoid => self.apply("HardSigmoid", vec![attr_float("alpha", 1.0 / 6.0), attr_float("beta", 0.5)]),
            HardSilu => self.apply("HardSwish", vec![]),
            SparseSigmoid => self.apply("HardSigmoid", vec![attr_float("alpha", 0.5), attr_float("beta", 0.5)]),
            SoftShrink => self.apply("Shrink", vec![attr_float("bias", 0.5), attr_float("lambd", 0.5)]),
            HardShrink => self.apply("Shrink", vec![attr_float("bias", 0.0), attr_float("lambd", 0.5)]),
            Silu => {
                let s = self.node("Sigmoid", &[&x], vec![], "sigmoid");
                self.cur = self.node("Mul", &[&x, &s], vec![], "silu");
            }
            Gelu => {
                // x·Φ(x) = x·(1 + erf(x/√2))/2.
                let r = self.scalar(std::f32::consts::FRAC_1_SQRT_2);
                let t = self.node("Mul", &[&x, &r], vec![], "scaled");
                let e = self.node("Erf", &[&t], vec![], "erf");
                let one = self.scalar(1.0);
                let e1 = self.node("Add", &[&e, &one], vec![], "add");
                let half = self.scalar(0.5);
                let xh = self.node("Mul", &[&x, &half], vec![], "half");
                self.cur = self.node("Mul", &[&xh, &e1], vec![], "gelu");
            }
            Mish => {
                let sp = self.node("Softplus", &[&x], vec![], "softplus");
                let t = self.node("Tanh", &[&sp], vec![], "tanh");
                self.cur = self.node("Mul", &[&x, &t], vec![], "mish");
            }
            TanhShrink => {
                let t = self.node("Tanh", &[&x], vec![], "tanh");
                self.cur = self.node("Sub", &[&x, &t], vec![], "tanh_shrink");
            }
            LogSigmoid => {
                // −softplus(−x), as Keras computes it.
                let n = self.node("Neg", &[&x], vec![], "neg");
                let sp = self.node("Softplus", &[&n], vec![], "softplus");
                self.cur = self.node("Neg", &[&sp], vec![], "log_sigmoid");
            }
            Squareplus => {
                // (x + √(x² + 4)) / 2.
                let sq = self.node("Mul", &[&x, &x], vec![], "square");
                let four = self.scalar(4.0);
                let s4 = self.node("Add", &[&sq, &four], vec![], "add");
                let r = self.node("Sqrt", &[&s4], vec![], "sqrt");
                let sum = self.node("Add", &[&x, &r], vec![], "add");
                let half = self.scalar(0.5);
                self.cur = self.node("Mul", &[&sum, &half], vec![], "squareplus");
            }
            SparsePlus => {
                // (clip(x, −1, 1) + 1)²/4 + relu(x − 1).
                self.clip(-1.0, 1.0);
                let c = self.cur.clone();
                let one = self.scalar(1.0);
                let c1 = self.node("Add", &[&c, &one], vec![], "add");
                let sq = self.node("Mul", &[&c1, &c1], vec![], "square");
                let quarter = self.scalar(0.25);
                let q = self.node("Mul", &[&sq, &quarter], vec![], "quarter");
                let xm = self.node("Sub", &[&x, &one], vec![], "sub");
                let r = self.node("Relu", &[&xm], vec![], "relu");
                self.cur = self.node("Add", &[&q, &r], vec![], "sparse_plus");
            }
            ReluWith { negative_slope, max_value, threshold } => {
                // x above the threshold (else 0), clipped to [0, max], minus slope·relu(t − x).
                let t = self.scalar(threshold);
                let mut a = if threshold != 0.0 {
                    let zero = self.scalar(0.0);
                    let above = self.node("Greater", &[&x, &t], vec![], "above");
                    self.node("Where", &[&above, &x, &zero], vec![], "where")
                } else {
                    self.node("Relu", &[&x], vec![], "relu")
                };
                if let Some(m) = max_value {
                    self.cur = a;
                    self.clip(0.0, m);
                    a = self.cur.clone();
                }
                if negative_slope != 0.0 {
                    let d = self.node("Sub", &[&t, &x], vec![], "below");
                    let r = self.node("Relu", &[&d], vec![], "relu");
                    let s = self.scalar(negative_slope);
                    let n = self.node("Mul", &[&r, &s], vec![], "negative");
                    a = self.node("Sub", &[&a, &n], vec![], "relu");
                }
                self.cur = a;
            }
            Sparsemax => {
                return Err(Error::Unexportable {
                    format: "ONNX",
                    layer: l.name().into(),
                    what: "activation sparsemax".into(),
                })
            }
        }
        Ok(())
    }

    /// `Clip(current, lo, hi)`.
    fn clip(&mut self, lo: f32, hi: f32) {
        let (lo, hi) = (self.scalar(lo), self.scalar(hi));
        let cur = self.cur.clone();
        self.cur = self.node("Clip", &[&cur, &lo, &hi], vec![], "clip");
    }
}

/// ONNX `pads` `[top, left, bottom, right]` and the output size of a window over `h × w`:
/// none for "valid"; for "same" Keras' (TensorFlow's) total `max((out − 1)·s + k − in, 0)`
/// with the smaller half before, so the extra row or column goes after.
/// A Keras kernel `[kh, kw, cg, f]` in ONNX's `[f, cg, kh, kw]` order.
fn grouped_oihw(kernel: &[f32], kh: usize, kw: usize, cg: usize, f: usize) -> Vec<f32> {
    let mut oihw = vec![0.0; kernel.len()];
    for y in 0..kh {
        for x in 0..kw {
            for i in 0..cg {
                for o in 0..f {
                    oihw[((o * cg + i) * kh + y) * kw + x] = kernel[((y * kw + x) * cg + i) * f + o];
                }
            }
        }
    }
    oihw
}

fn window(h: usize, w: usize, k: [usize; 2], s: [usize; 2], same: bool) -> ([i64; 4], usize, usize) {
    if !same {
        return ([0; 4], (h - k[0]) / s[0] + 1, (w - k[1]) / s[1] + 1);
    }
    let (oh, ow) = (h.div_ceil(s[0]), w.div_ceil(s[1]));
    let th = ((oh - 1) * s[0] + k[0]).saturating_sub(h);
    let tw = ((ow - 1) * s[1] + k[1]).saturating_sub(w);
    ([(th / 2) as i64, (tw / 2) as i64, (th - th / 2) as i64, (tw - tw / 2) as i64], oh, ow)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::layers::{
        ActivationLayer, AveragePooling2D, Conv2D, Dense, Dropout, Flatten, MaxPooling2D, PReLU, ReLU, Softmax, ELU,
    };
    use crate::Padding;

    fn ops(m: &ModelProto) -> Vec<String> {
        m.graph.as_ref().unwrap().node.iter().map(|n| n.op_type().to_string()).collect()
    }

    fn attr<'a>(n: &'a NodeProto, name: &str) -> &'a AttributeProto {
        n.attribute.iter().find(|a| a.name() == name).unwrap()
    }

    #[test]
    fn lenet5_decodes_into_the_expected_graph() {
        let mut m = crate::presets::lenet5();
        m.build().unwrap();
        let bytes = to_bytes(&m).unwrap();
        let back = ModelProto::decode(bytes.as_slice()).unwrap();
        assert_eq!(back.opset_import[0].version(), OPSET);
        let g = back.graph.as_ref().unwrap();
        assert_eq!(
            ops(&back),
            [
                "Transpose",
                "Conv",
                "Relu",
                "MaxPool",
                "Conv",
                "Relu",
                "MaxPool",
                "Conv",
                "Relu",
                "Transpose",
                "Flatten",
                "MatMul",
                "Add",
                "Relu",
                "MatMul",
                "Add",
                "Softmax"
            ]
        );
        assert_eq!(g.input[0].name(), "input_layer");
        assert_eq!(g.output[0].name(), m.layers().last().unwrap().name());
        assert_eq!(g.node.last().unwrap().output[0], g.output[0].name());
        // The first convolution's kernel is [6, 1, 5, 5], its value at [o, i, y, x] the
        // Keras kernel's at [y, x, i, o].
        let conv = &g.node[1];
        let k = g.initializer.iter().find(|t| t.name() == conv.input[1]).unwrap();
        assert_eq!(k.dims, [6, 1, 5, 5]);
        let raw = k.raw_data();
        let at = |i: usize| f32::from_le_bytes(raw[4 * i..4 * i + 4].try_into().unwrap());
        let keras = &m.layers()[0].params()[0].value;
        // One input channel: OIHW index (o·5 + y)·5 + x, Keras index (y·5 + x)·6 + o.
        let (o, y, x) = (3, 2, 4);
        assert_eq!(at((o * 5 + y) * 5 + x), keras[(y * 5 + x) * 6 + o]);
        assert_ne!(at((o * 5 + y) * 5 + x), at((o * 5 + x) * 5 + y), "a transposed kernel would pass");
        // "same" 5×5 on 28×28: two rows and columns of zeros on each side.
        assert_eq!(attr(conv, "pads").ints, [2, 2, 2, 2]);
        // The batch dimension is named, the rest fixed.
        let dims = match &g.input[0].r#type.as_ref().unwrap().value {
            Some(type_proto::Value::TensorType(t)) => t.shape.as_ref().unwrap().dim.clone(),
            _ => panic!("not a tensor type"),
        };
        use tensor_shape_proto::dimension::Value as D;
        assert_eq!(dims[0].value, Some(D::DimParam("N".into())));
        assert_eq!(
            dims[1..].iter().map(|d| d.value.clone().unwrap()).collect::<Vec<_>>(),
            [D::DimValue(28), D::DimValue(28), D::DimValue(1)]
        );
    }

    #[test]
    fn same_padding_puts_the_odd_row_after() {
        // 7 wide, kernel 2, stride 2: out 4, total 1, none before, one after.
        assert_eq!(window(7, 6, [2, 3], [2, 1], true), ([0, 1, 1, 1], 4, 6));
        assert_eq!(window(7, 6, [2, 3], [2, 1], false), ([0; 4], 3, 4));
        let mut m = Sequential::new();
        m.add(AveragePooling2D::new(2).padding(Padding::Same).input_shape([7, 7, 2]));
        m.build().unwrap();
        let p = to_model(&m).unwrap();
        let pool = &p.graph.as_ref().unwrap().node[1];
        assert_eq!(pool.op_type(), "AveragePool");
        assert_eq!(attr(pool, "pads").ints, [0, 0, 1, 1]);
        assert_eq!(attr(pool, "count_include_pad").i(), 0);
    }

    #[test]
    fn activation_layers_map_to_standard_operators() {
        let mut m = Sequential::new();
        m.add(Conv2D::new(3, 3).activation(Activation::Gelu).input_shape([6, 6, 2]));
        m.add(ReLU::new().max_value(Some(2.0)).negative_slope(0.1).threshold(0.5));
        m.add(ELU::new(0.7));
        m.add(PReLU::new());
        m.add(Dropout::new(0.5));
        m.add(Flatten::new());
        m.add(Dense::new(4).activation(Activation::HardSigmoid));
        m.add(ActivationLayer::new(Activation::Silu));
        m.add(Softmax::new());
        m.build().unwrap();
        let p = to_model(&m).unwrap();
        let o = ops(&p);
        for op in ["Erf", "Greater", "Where", "Clip", "Elu", "PRelu", "HardSigmoid", "Sigmoid", "Softmax"] {
            assert!(o.iter().any(|x| x == op), "{op} missing from {o:?}");
        }
        // PReLU's slopes broadcast against NHWC, so the value is transposed back before.
        let prelu = o.iter().position(|x| x == "PRelu").unwrap();
        assert_eq!(o[prelu - 1], "Transpose");
        assert_eq!(o.iter().filter(|x| *x == "Transpose").count(), 2);
        let g = p.graph.unwrap();
        let hs = g.node.iter().find(|n| n.op_type() == "HardSigmoid").unwrap();
        assert_eq!((attr(hs, "alpha").f(), attr(hs, "beta").f()), (1.0 / 6.0, 0.5));
        // Every node's name is unique and every input is defined before it is used.
        let mut defined: std::collections::HashSet<String> = g.initializer.iter().map(|t| t.name().into()).collect();
        defined.insert(INPUT_NAME.into());
        for n in &g.node {
            for i in &n.input {
                assert!(defined.contains(i), "{i} used before it is defined");
            }
            assert!(defined.insert(n.output[0].clone()), "{} defined twice", n.output[0]);
        }
    }

    #[test]
    fn an_unexportable_activation_is_refused_by_name() {
        let mut m = Sequential::new();
        m.add(Dense::new(4).input_shape([3]).name("hidden"));
        m.add(ActivationLayer::new(Activation::Sparsemax).name("sparse"));
        m.build().unwrap();
        let e = to_bytes(&m).unwrap_err();
        assert!(matches!(&e, Error::Unexportable { layer, .. } if layer == "sparse"), "{e:?}");
        let msg = e.to_string();
        assert!(msg.contains("\"sparse\"") && msg.contains("sparsemax") && !msg.contains('\n'), "{msg}");
        // Nothing is written.
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("m.onnx");
        assert!(export(&m, &p).is_err());
        assert!(!p.exists());
    }

    /// A layer class the exporter does not know (one a user could implement).
    struct Doubling {
        meta: crate::nn::layers::Meta,
        shape: Vec<usize>,
    }

    impl Layer for Doubling {
        fn class_name(&self) -> &'static str {
            "Doubling"
        }
        fn base_name(&self) -> &'static str {
            "doubling"
        }
        fn meta(&self) -> &crate::nn::layers::Meta {
            &self.meta
        }
        fn meta_mut(&mut self) -> &mut crate::nn::layers::Meta {
            &mut self.meta
        }
        fn build(&mut self, input_shape: &[usize], _: &mut crate::Rng) -> Result<Vec<usize>> {
            self.shape = input_shape.to_vec();
            Ok(self.shape.clone())
        }
        fn output_shape(&self) -> &[usize] {
            &self.shape
        }
        fn forward(&mut self, x: &crate::Tensor, y: &mut crate::Tensor, _: &mut crate::nn::layers::ForwardCtx<'_>) {
            y.data_mut().iter_mut().zip(x.data()).for_each(|(y, x)| *y = 2.0 * x);
        }
        fn backward(
            &mut self,
            _: &crate::Tensor,
            _: &crate::Tensor,
            _: &mut crate::Tensor,
            _: Option<&mut crate::Tensor>,
        ) {
        }
        fn config(&self) -> serde_json::Map<String, Value> {
            serde_json::Map::new()
        }
    }

    #[test]
    fn an_unknown_layer_class_is_refused_by_name() {
        let mut m = Sequential::new();
        m.add(Dense::new(4).input_shape([3]));
        m.add(Doubling { meta: Default::default(), shape: Vec::new() });
        m.build().unwrap();
        let name = m.layers()[1].name().to_string();
        let e = to_bytes(&m).unwrap_err();
        assert!(matches!(&e, Error::Unexportable { layer, what, .. } if *layer == name && what == "Doubling"), "{e}");
    }

    #[test]
    fn an_unbuilt_model_is_refused() {
        let mut m = Sequential::new();
        m.add(MaxPooling2D::new(2).input_shape([4, 4, 1]));
        assert!(matches!(to_bytes(&m), Err(Error::State(_))));
    }
}
