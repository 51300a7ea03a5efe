//! `Functional`: a graph of layers as Keras' functional API builds it — `x = Conv2D(…)(x)`,
//! then `Model(inputs, outputs)` — with skip connections, merges, several inputs and outputs.
//!
//! ```
//! use convnet::prelude::*;
//! use convnet::nn::layers::Add;
//!
//! let mut f = Functional::new();
//! let inp = f.input(&[8, 8, 3]);
//! let x = f.add(Conv2D::new(3, 3).padding(Padding::Same).activation(Activation::Relu), inp);
//! let x = f.add(Conv2D::new(3, 3).padding(Padding::Same), x);
//! let x = f.add(Add::new(), [x, inp]); // the skip connection
//! let x = f.add(ActivationLayer::new(Activation::Relu), x);
//! let x = f.add(Flatten::new(), x);
//! let out = f.add(Dense::new(10).activation(Activation::Softmax), x);
//! let mut model = f.build(&[inp], &[out]).unwrap();
//! assert_eq!(model.output_shape().unwrap(), vec![10]);
//! ```
//!
//! [`Functional::build`] orders the layers as Keras' `model.layers` does (`map_graph`): by
//! decreasing depth (the longest path to an output), ties broken by the order in which a
//! depth-first walk from the outputs first meets them. Keras 3 addresses a model's weights by
//! class and position in that order, so files written by either side land where the other
//! looks. Layers no output depends on are left out, as Keras leaves them out.

use super::{Graph, Sequential};
use crate::error::{Error, Result};
use crate::nn::layers::Layer;
use std::collections::{BTreeMap, HashMap};

/// A value in a graph being built: a model input or a layer's output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Node(Src);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Src {
    Input(usize),
    Layer(usize),
}

/// The inputs of a layer call: one [`Node`] or several (`[a, b]`, a slice, a `Vec`).
#[derive(Clone, Debug)]
pub struct Nodes(Vec<Node>);

impl From<Node> for Nodes {
    fn from(n: Node) -> Self {
        Nodes(vec![n])
    }
}

impl<const N: usize> From<[Node; N]> for Nodes {
    fn from(n: [Node; N]) -> Self {
        Nodes(n.to_vec())
    }
}

impl From<&[Node]> for Nodes {
    fn from(n: &[Node]) -> Self {
        Nodes(n.to_vec())
    }
}

impl From<Vec<Node>> for Nodes {
    fn from(n: Vec<Node>) -> Self {
        Nodes(n)
    }
}

/// Builds a graph model: declare inputs, call layers on nodes, then pick inputs and outputs.
pub struct Functional {
    name: String,
    inputs: Vec<(String, Vec<usize>)>,
    layers: Vec<Box<dyn Layer>>,
    wires: Vec<Vec<Node>>,
}

impl Default for Functional {
    fn default() -> Self {
        Functional::new()
    }
}

impl Functional {
    /// An empty graph; the model will be named "functional", as Keras names it.
    pub fn new() -> Self {
        Functional { name: "functional".into(), inputs: Vec::new(), layers: Vec::new(), wires: Vec::new() }
    }

    /// Names the model.
    pub fn with_name(mut self, name: &str) -> Self {
        self.name = name.to_string();
        self
    }

    /// A model input of per-sample `shape` (Keras' `Input(shape=…)`), named `input_layer`,
    /// `input_layer_1`, ….
    pub fn input(&mut self, shape: &[usize]) -> Node {
        let name = self.fresh_name("input_layer");
        self.input_named(&name, shape)
    }

    /// A model input with a given name.
    pub fn input_named(&mut self, name: &str, shape: &[usize]) -> Node {
        self.inputs.push((name.to_string(), shape.to_vec()));
        Node(Src::Input(self.inputs.len() - 1))
    }

    /// Calls `layer` on `inputs` (Keras' `layer(x)`, or `layer([a, b])` for a merge); returns
    /// its output. An unnamed layer gets Keras' automatic name here, in call order.
    pub fn add(&mut self, layer: impl Layer + 'static, inputs: impl Into<Nodes>) -> Node {
        self.add_boxed(Box::new(layer), inputs)
    }

    /// [`Functional::add`] for a boxed layer.
    pub fn add_boxed(&mut self, mut layer: Box<dyn Layer>, inputs: impl Into<Nodes>) -> Node {
        if layer.name().is_empty() {
            let name = self.fresh_name(layer.base_name());
            layer.set_name(name);
        }
        self.layers.push(layer);
        self.wires.push(inputs.into().0);
        Node(Src::Layer(self.layers.len() - 1))
    }

    /// The name of the layer added last (empty before any).
    pub fn last_name(&self) -> &str {
        self.layers.last().map_or("", |l| l.name())
    }

    /// `base`, `base_1`, … — the first not yet taken.
    fn fresh_name(&self, base: &str) -> String {
        let taken = |n: &str| self.inputs.iter().any(|(m, _)| m == n) || self.layers.iter().any(|l| l.name() == n);
        (0..)
            .map(|k| if k == 0 { base.to_string() } else { format!("{base}_{k}") })
            .find(|n| !taken(n))
            .expect("unbounded")
    }

    /// The model from `inputs` to `outputs` (Keras' `Model(inputs, outputs)`), its layers in
    /// Keras' order. Fails when an output needs an input not listed, when a node comes from
    /// another builder, or when two layers share a name.
    pub fn build(self, inputs: &[Node], outputs: &[Node]) -> Result<Sequential> {
        let Functional { name, inputs: declared, layers, wires } = self;
        let bad = |what: String| Error::config(format!("functional model {name:?}: {what}"));
        if inputs.is_empty() || outputs.is_empty() {
            return Err(bad("it needs at least one input and one output".into()));
        }
        let valid = |n: &Node, before: usize| match n.0 {
            Src::Input(k) => k < declared.len(),
            Src::Layer(j) => j < before,
        };
        for (j, w) in wires.iter().enumerate() {
            if w.is_empty() || !w.iter().all(|n| valid(n, j)) {
                return Err(bad(format!("layer {:?} is called on a node that is not in this graph", layers[j].name())));
            }
        }
        if !outputs.iter().all(|n| valid(n, layers.len())) {
            return Err(bad("an output is not a node of this graph".into()));
        }
        let mut input_pos: HashMap<usize, usize> = HashMap::new();
        for (p, n) in inputs.iter().enumerate() {
            match n.0 {
                Src::Input(k) if k < declared.len() => {
                    if input_pos.insert(k, p).is_some() {
                        return Err(bad(format!("input {:?} is listed twice", declared[k].0)));
                    }
                }
                _ => return Err(bad("the model's inputs must be nodes made by `input`".into())),
            }
        }
        // Keras' `_build_map`: a depth-first walk from the outputs, numbering operations as it
        // first meets them and listing layers after everything they read (iteratively, so a
        // deep graph cannot overflow the stack).
        let mut first_seen: HashMap<Src, usize> = HashMap::new();
        let mut post: Vec<usize> = Vec::new();
        let mut done = vec![false; layers.len()];
        for out in outputs {
            let mut stack: Vec<(Src, usize)> = vec![(out.0, 0)];
            while let Some(&mut (src, ref mut next)) = stack.last_mut() {
                let seen = first_seen.len();
                first_seen.entry(src).or_insert(seen);
                let j = match src {
                    Src::Input(k) => {
                        if !input_pos.contains_key(&k) {
                            return Err(bad(format!(
                                "graph disconnected: input {:?} is needed but not among the model's inputs",
                                declared[k].0
                            )));
                        }
                        stack.pop();
                        continue;
                    }
                    Src::Layer(j) if done[j] => {
                        stack.pop();
                        continue;
                    }
                    Src::Layer(j) => j,
                };
                if *next < wires[j].len() {
                    let child = wires[j][*next].0;
                    *next += 1;
                    stack.push((child, 0));
                } else {
                    done[j] = true;
                    post.push(j);
                    stack.pop();
                }
            }
        }
        // Depth: 0 at the outputs, each layer one more than the deepest layer reading it.
        let mut depth = vec![0usize; layers.len()];
        for &j in post.iter().rev() {
            for n in &wires[j] {
                if let Src::Layer(p) = n.0 {
                    depth[p] = depth[p].max(depth[j] + 1);
                }
            }
        }
        let mut order = post.clone();
        order.sort_by_key(|&j| (std::cmp::Reverse(depth[j]), first_seen[&Src::Layer(j)]));
        let n_in = inputs.len();
        let mut pos = vec![usize::MAX; layers.len()];
        for (p, &j) in order.iter().enumerate() {
            pos[j] = p;
        }
        let node_of = |n: &Node| match n.0 {
            Src::Input(k) => input_pos[&k],
            Src::Layer(j) => n_in + pos[j],
        };
        let graph = Graph {
            input_names: inputs
                .iter()
                .map(|n| match n.0 {
                    Src::Input(k) => declared[k].0.clone(),
                    Src::Layer(_) => unreachable!("checked above"),
                })
                .collect(),
            input_shapes: inputs
                .iter()
                .map(|n| match n.0 {
                    Src::Input(k) => declared[k].1.clone(),
                    Src::Layer(_) => unreachable!("checked above"),
                })
                .collect(),
            inbound: order.iter().map(|&j| wires[j].iter().map(node_of).collect()).collect(),
            outputs: outputs.iter().map(node_of).collect(),
        };
        let mut slots: Vec<Option<Box<dyn Layer>>> = layers.into_iter().map(Some).collect();
        let layers: Vec<Box<dyn Layer>> = order.iter().map(|&j| slots[j].take().expect("each layer once")).collect();
        let mut names: BTreeMap<&str, usize> = BTreeMap::new();
        for n in graph.input_names.iter().map(String::as_str).chain(layers.iter().map(|l| l.name())) {
            *names.entry(n).or_default() += 1;
        }
        if let Some((n, _)) = names.iter().find(|(_, &c)| c > 1) {
            return Err(bad(format!("the name {n:?} is used by more than one layer")));
        }
        Ok(Sequential::from_graph(&name, layers, graph))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::kernels::conv::Padding;
    use crate::nn::activations::Activation;
    use crate::nn::layers::{
        ActivationLayer, Add, Average, Concatenate, Conv2D, Dense, Dropout, Flatten, MaxPooling2D, Maximum, Multiply,
        Subtract,
    };
    use crate::nn::losses::Loss;
    use crate::nn::optimizers::{Adam, Sgd};
    use crate::rng::Rng;
    use crate::tensor::Tensor;

    /// A stem convolution, then the block: conv → relu → conv, added to the block's input
    /// (whose gradient is then the sum of two paths), relu; then a classifier.
    pub(crate) fn residual(seed: u64) -> Sequential {
        let mut f = Functional::new();
        let inp = f.input(&[6, 6, 2]);
        let stem = f.add(Conv2D::new(2, 1).activation(Activation::Tanh), inp);
        let x = f.add(Conv2D::new(2, 3).padding(Padding::Same).activation(Activation::Relu), stem);
        let x = f.add(Conv2D::new(2, 3).padding(Padding::Same), x);
        let x = f.add(Add::new(), [x, stem]);
        let x = f.add(ActivationLayer::new(Activation::Relu), x);
        let x = f.add(MaxPooling2D::new(2), x);
        let x = f.add(Flatten::new(), x);
        let out = f.add(Dense::new(3).activation(Activation::Softmax), x);
        f.build(&[inp], &[out]).unwrap().seed(seed)
    }

    /// Two branches from one input, concatenated, and the other merges on top.
    fn branches(seed: u64) -> Sequential {
        let mut f = Functional::new();
        let inp = f.input(&[5, 5, 2]);
        let a = f.add(Conv2D::new(3, 3).padding(Padding::Same).activation(Activation::Tanh), inp);
        let b = f.add(Conv2D::new(2, 1).activation(Activation::Sigmoid), inp);
        let c = f.add(Concatenate::new(), [a, b]);
        let d = f.add(Conv2D::new(5, 1), inp);
        let e = f.add(Multiply::new(), [c, d]);
        let g = f.add(Subtract::new(), [e, c]);
        let h = f.add(Average::new(), [g, d, c]);
        let k = f.add(Maximum::new(), [h, e]);
        let x = f.add(Flatten::new(), k);
        let x = f.add(Dropout::new(0.0), x);
        let out = f.add(Dense::new(3).activation(Activation::Softmax), x);
        f.build(&[inp], &[out]).unwrap().seed(seed)
    }

    /// The train step's weight gradients against central differences of the evaluated loss.
    fn check_model_gradient(mut m: Sequential, shape: &[usize]) {
        m.compile(Loss::CategoricalCrossentropy, Sgd { learning_rate: 0.0, ..Default::default() }, &[]).unwrap();
        let mut rng = Rng::new(1);
        let per: usize = shape.iter().product();
        let mut full = vec![4];
        full.extend_from_slice(shape);
        let x = Tensor::from_vec(&full, (0..4 * per).map(|_| rng.uniform_range(-1.0, 1.0)).collect()).unwrap();
        let y = Tensor::from_vec(&[4, 3], vec![1., 0., 0., 0., 1., 0., 0., 0., 1., 0., 1., 0.]).unwrap();
        m.train_on_batch(&x, &y).unwrap(); // lr 0: weights unchanged, gradients stored
        let grads: Vec<Vec<f32>> = m.params().map(|p| p.grad.clone()).collect();
        assert!(grads.iter().all(|g| g.iter().any(|&v| v != 0.0)), "every weight gets a gradient");
        let h = 1e-3f32;
        let mut pi = 0;
        for li in 0..m.layers.len() {
            for wi in 0..m.layers[li].params().len() {
                for i in (0..grads[pi].len()).step_by(2) {
                    let orig = m.layers[li].params()[wi].value[i];
                    m.layers[li].params_mut()[wi].value[i] = orig + h;
                    let lp = m.evaluate(&x, &y, 4).unwrap()["loss"];
                    m.layers[li].params_mut()[wi].value[i] = orig - h;
                    let lm = m.evaluate(&x, &y, 4).unwrap()["loss"];
                    m.layers[li].params_mut()[wi].value[i] = orig;
                    let fd = ((lp - lm) / (2.0 * f64::from(h))) as f32;
                    let g = grads[pi][i];
                    assert!((fd - g).abs() < 2e-3 + 2e-2 * fd.abs(), "weight {pi}[{i}]: fd {fd} vs {g}");
                }
                pi += 1;
            }
        }
    }

    #[test]
    fn residual_block_gradient_matches_finite_differences() {
        let mut m = residual(3);
        m.build().unwrap();
        let names: Vec<&str> = m.layers().iter().map(|l| l.name()).collect();
        assert_eq!(names, ["conv2d", "conv2d_1", "conv2d_2", "add", "activation", "max_pooling2d", "flatten", "dense"]);
        assert_eq!(m.inbound(3), &[3, 1], "Add reads conv2d_2 and the stem");
        check_model_gradient(m, &[6, 6, 2]);
    }

    #[test]
    fn branches_and_merges_gradient_matches_finite_differences() {
        check_model_gradient(branches(4), &[5, 5, 2]);
    }

    /// Keras' `model.layers` order for the graph of `probe.py`-style models: by depth, ties by
    /// the walk from the outputs (checked against Keras 3.15: input, conv2d, conv2d_1, add,
    /// activation, conv2d_2, concatenate, flatten, dense).
    #[test]
    fn layers_follow_keras_order() {
        let mut f = Functional::new();
        let inp = f.input(&[8, 8, 2]);
        let a = f.add(Conv2D::new(2, 3).padding(Padding::Same), inp);
        let b = f.add(Conv2D::new(2, 3).padding(Padding::Same), a);
        let c = f.add(Add::new(), [b, inp]);
        let d = f.add(ActivationLayer::new(Activation::Relu), c);
        let e = f.add(Conv2D::new(3, 1), inp);
        let g = f.add(Concatenate::new(), [d, e]);
        let h = f.add(Flatten::new(), g);
        let o = f.add(Dense::new(3), h);
        let _unused = f.add(Dense::new(3), h);
        let m = f.build(&[inp], &[o]).unwrap();
        let names: Vec<&str> = m.layers().iter().map(|l| l.name()).collect();
        assert_eq!(names, ["conv2d", "conv2d_1", "add", "activation", "conv2d_2", "concatenate", "flatten", "dense"]);
        // Created in the other order, the branch still comes after the deeper path.
        let mut f = Functional::new();
        let inp = f.input(&[8, 8, 2]);
        let e = f.add(Conv2D::new(3, 1).name("side"), inp);
        let a = f.add(Conv2D::new(2, 3).padding(Padding::Same).name("main"), inp);
        let d = f.add(Concatenate::new(), [a, e]);
        let m = f.build(&[inp], &[d]).unwrap();
        let names: Vec<&str> = m.layers().iter().map(|l| l.name()).collect();
        assert_eq!(names, ["main", "side", "concatenate"]);
    }

    #[test]
    fn a_chain_built_as_a_graph_trains_bit_identically() {
        let mut s = crate::nn::model::tests::tiny();
        let mut f = Functional::new();
        let inp = f.input(&[6, 6, 1]);
        let x = f.add(Conv2D::new(3, 3).padding(Padding::Same).activation(Activation::Tanh), inp);
        let x = f.add(MaxPooling2D::new(2), x);
        let x = f.add(Flatten::new(), x);
        let x = f.add(Dropout::new(0.2), x);
        let out = f.add(Dense::new(4).activation(Activation::Softmax), x);
        let mut g = f.build(&[inp], &[out]).unwrap().seed(3);
        let mut rng = Rng::new(2);
        let x = Tensor::from_vec(&[8, 6, 6, 1], (0..288).map(|_| rng.uniform()).collect()).unwrap();
        let y = crate::data::to_categorical(&[0, 1, 2, 3, 0, 1, 2, 3], 4);
        for m in [&mut s, &mut g] {
            m.compile(Loss::CategoricalCrossentropy, Adam::default(), &[]).unwrap();
            for _ in 0..3 {
                m.train_on_batch(&x, &y).unwrap();
            }
        }
        assert_eq!(s.get_weights(), g.get_weights());
        assert_eq!(s.predict(&x, 8).unwrap(), g.predict(&x, 8).unwrap());
    }

    #[test]
    fn several_inputs_and_outputs_predict_and_refuse_fit() {
        let mut f = Functional::new();
        let a = f.input(&[4]);
        let b = f.input_named("extra", &[2]);
        let c = f.add(Concatenate::new(), [a, b]);
        let d = f.add(Dense::new(3), c);
        let e = f.add(Dense::new(1), a);
        let mut m = f.build(&[a, b], &[d, e]).unwrap();
        let xa = Tensor::from_vec(&[5, 4], (0..20).map(|v| v as f32 / 10.0).collect()).unwrap();
        let xb = Tensor::from_vec(&[5, 2], (0..10).map(|v| v as f32 / 7.0).collect()).unwrap();
        let outs = m.predict_many(&[xa.clone(), xb.clone()], 2).unwrap();
        assert_eq!(outs[0].shape(), &[5, 3]);
        assert_eq!(outs[1].shape(), &[5, 1]);
        // The second output is Dense(1) of the first input alone.
        let w = m.get_weights();
        let (k, bias) = (&w[2], &w[3]);
        for i in 0..5 {
            let v: f32 = (0..4).map(|j| xa.data()[i * 4 + j] * k.data()[j]).sum::<f32>() + bias.data()[0];
            assert!((v - outs[1].data()[i]).abs() < 1e-6);
        }
        m.compile(Loss::MeanSquaredError, Adam::default(), &[]).unwrap();
        let e = m.predict(&xa, 2).unwrap_err().to_string();
        assert!(e.contains("2 inputs and 2 outputs"), "{e}");
        assert!(m.train_on_batch(&xa, &Tensor::zeros(&[5, 3])).is_err());
        assert!(m.predict_many(&[xa], 2).is_err());
    }

    #[test]
    fn bad_graphs_are_errors() {
        let mut f = Functional::new();
        let a = f.input(&[4]);
        let b = f.input(&[4]);
        let c = f.add(Add::new(), [a, b]);
        assert!(f.build(&[a], &[c]).unwrap_err().to_string().contains("disconnected"));
        let mut f = Functional::new();
        let a = f.input(&[4]);
        let c = f.add(Dense::new(2).name("x"), a);
        let d = f.add(Dense::new(2).name("x"), c);
        assert!(f.build(&[a], &[d]).unwrap_err().to_string().contains("\"x\""));
        let mut f = Functional::new();
        let a = f.input(&[4]);
        let b = f.input(&[5]);
        let c = f.add(Add::new(), [a, b]);
        let mut m = f.build(&[a, b], &[c]).unwrap();
        assert!(m.build().unwrap_err().to_string().contains("one shape"));
    }
}
