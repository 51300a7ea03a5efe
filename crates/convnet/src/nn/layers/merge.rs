//! Keras' merge layers, which take several tensors and give one: `Add`, `Subtract`,
//! `Multiply`, `Average`, `Maximum`, `Minimum` (element-wise over inputs of one shape) and
//! `Concatenate` (joined along an axis).
//!
//! For inputs `x_1 … x_n` and the output gradient `g`:
//! - `Add`: `y = Σ x_k`, `∂/∂x_k = g`;
//! - `Subtract` (two inputs): `y = x_1 − x_2`, `∂/∂x_1 = g`, `∂/∂x_2 = −g`;
//! - `Multiply`: `y = Π x_k`, `∂/∂x_k = g · Π_{j≠k} x_j`;
//! - `Average`: `y = Σ x_k / n`, `∂/∂x_k = g / n`;
//! - `Maximum` / `Minimum`: `y = max_k x_k` (`min`), the gradient goes to the first input that
//!   attains it — Keras folds `maximum(maximum(x_1, x_2), x_3)…`, and each fold hands the
//!   gradient to its left operand on ties;
//! - `Concatenate(axis)`: each input's slab of `g` along `axis` (Keras' axis, `-1` the
//!   channels; `0`, the batch, is refused).
//!
//! Keras 3 broadcasts element-wise inputs whose sizes differ by 1s; convnet asks for equal
//! shapes and says so.

use super::{ForwardCtx, Inputs, Layer, Meta};
use crate::error::{Error, Result};
use crate::rng::Rng;
use crate::tensor::Tensor;
use serde_json::{json, Map, Value};

/// The element-wise operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Add,
    Subtract,
    Multiply,
    Average,
    Maximum,
    Minimum,
}

/// Element-wise merge of inputs of one shape.
struct Elementwise {
    op: Op,
    meta: Meta,
    out_shape: Vec<usize>,
}

impl Elementwise {
    fn class_name(&self) -> &'static str {
        match self.op {
            Op::Add => "Add",
            Op::Subtract => "Subtract",
            Op::Multiply => "Multiply",
            Op::Average => "Average",
            Op::Maximum => "Maximum",
            Op::Minimum => "Minimum",
        }
    }

    fn build(&mut self, shapes: &[Vec<usize>]) -> Result<Vec<usize>> {
        let class = self.class_name();
        if shapes.len() < 2 {
            return Err(Error::shape(format!("{class} needs at least 2 inputs, got {}", shapes.len())));
        }
        if self.op == Op::Subtract && shapes.len() != 2 {
            return Err(Error::shape(format!("Subtract needs exactly 2 inputs, got {}", shapes.len())));
        }
        if let Some(s) = shapes.iter().find(|s| **s != shapes[0]) {
            return Err(Error::shape(format!(
                "{class} needs inputs of one shape, got {} and {} (convnet does not broadcast)",
                super::shape_str(&shapes[0]),
                super::shape_str(s)
            )));
        }
        self.out_shape = shapes[0].clone();
        Ok(self.out_shape.clone())
    }

    fn forward(&self, xs: Inputs<'_>, y: &mut Tensor) {
        let y = y.data_mut();
        y.copy_from_slice(xs.get(0).data());
        for (k, x) in xs.iter().enumerate().skip(1) {
            let x = x.data();
            match self.op {
                Op::Add | Op::Average => y.iter_mut().zip(x).for_each(|(a, b)| *a += b),
                Op::Subtract => y.iter_mut().zip(x).for_each(|(a, b)| *a -= b),
                Op::Multiply => y.iter_mut().zip(x).for_each(|(a, b)| *a *= b),
                Op::Maximum => y.iter_mut().zip(x).for_each(|(a, b)| *a = a.max(*b)),
                Op::Minimum => y.iter_mut().zip(x).for_each(|(a, b)| *a = a.min(*b)),
            }
            if self.op == Op::Average && k + 1 == xs.len() {
                let inv = 1.0 / xs.len() as f32;
                y.iter_mut().for_each(|a| *a *= inv);
            }
        }
    }

    fn backward(&self, xs: Inputs<'_>, dy: &Tensor, k: usize, dx: &mut Tensor) {
        let (g, d) = (dy.data(), dx.data_mut());
        match self.op {
            Op::Add => d.copy_from_slice(g),
            Op::Subtract if k == 0 => d.copy_from_slice(g),
            Op::Subtract => d.iter_mut().zip(g).for_each(|(a, b)| *a = -b),
            Op::Average => {
                let inv = 1.0 / xs.len() as f32;
                d.iter_mut().zip(g).for_each(|(a, b)| *a = b * inv);
            }
            Op::Multiply => {
                d.copy_from_slice(g);
                for (_, x) in xs.iter().enumerate().filter(|&(j, _)| j != k) {
                    d.iter_mut().zip(x.data()).for_each(|(a, b)| *a *= b);
                }
            }
            Op::Maximum | Op::Minimum => {
                let better = |a: f32, b: f32| if self.op == Op::Maximum { a > b } else { a < b };
                for (i, (a, &gi)) in d.iter_mut().zip(g).enumerate() {
                    // The first input holding the extreme value takes the gradient.
                    let mut best = 0;
                    let mut v = xs.get(0).data()[i];
                    for j in 1..xs.len() {
                        let w = xs.get(j).data()[i];
                        if better(w, v) {
                            best = j;
                            v = w;
                        }
                    }
                    *a = if best == k { gi } else { 0.0 };
                }
            }
        }
    }
}

macro_rules! elementwise_layer {
    ($(#[$doc:meta])* $name:ident, $op:expr, $class:literal, $base:literal) => {
        $(#[$doc])*
        pub struct $name(Elementwise);

        impl Default for $name {
            fn default() -> Self {
                $name(Elementwise { op: $op, meta: Meta::default(), out_shape: Vec::new() })
            }
        }

        impl $name {
            /// The layer with Keras' defaults.
            pub fn new() -> Self {
                Self::default()
            }

            /// Names the layer.
            pub fn name(mut self, name: &str) -> Self {
                self.0.meta.name = name.to_string();
                self
            }

            /// Reads Keras' config (name, trainable, dtype).
            pub fn from_config(c: &Map<String, Value>) -> Result<Self> {
                let mut l = Self::default();
                l.0.meta = Meta::from_config(c)?;
                Ok(l)
            }
        }

        impl Layer for $name {
            fn class_name(&self) -> &'static str {
                $class
            }
            fn base_name(&self) -> &'static str {
                $base
            }
            fn meta(&self) -> &Meta {
                &self.0.meta
            }
            fn meta_mut(&mut self) -> &mut Meta {
                &mut self.0.meta
            }
            fn build(&mut self, input_shape: &[usize], _rng: &mut Rng) -> Result<Vec<usize>> {
                self.0.build(&[input_shape.to_vec()])
            }
            fn output_shape(&self) -> &[usize] {
                &self.0.out_shape
            }
            fn forward(&mut self, x: &Tensor, y: &mut Tensor, _ctx: &mut ForwardCtx<'_>) {
                y.data_mut().copy_from_slice(x.data());
            }
            fn backward(&mut self, _x: &Tensor, _y: &Tensor, dy: &mut Tensor, dx: Option<&mut Tensor>) {
                if let Some(dx) = dx {
                    dx.data_mut().copy_from_slice(dy.data());
                }
            }
            fn multi_input(&self) -> bool {
                true
            }
            fn build_multi(&mut self, input_shapes: &[Vec<usize>], _rng: &mut Rng) -> Result<Vec<usize>> {
                self.0.build(input_shapes)
            }
            fn forward_multi(&mut self, xs: Inputs<'_>, y: &mut Tensor, _ctx: &mut ForwardCtx<'_>) {
                self.0.forward(xs, y)
            }
            fn backward_multi(&mut self, xs: Inputs<'_>, _y: &Tensor, dy: &mut Tensor, k: usize, dx: &mut Tensor) {
                self.0.backward(xs, dy, k, dx)
            }
            fn config(&self) -> Map<String, Value> {
                self.0.meta.config()
            }
        }
    };
}

elementwise_layer!(
    /// Sum of its inputs (Keras' `Add`).
    Add, Op::Add, "Add", "add"
);
elementwise_layer!(
    /// First input minus the second (Keras' `Subtract`).
    Subtract, Op::Subtract, "Subtract", "subtract"
);
elementwise_layer!(
    /// Element-wise product of its inputs (Keras' `Multiply`).
    Multiply, Op::Multiply, "Multiply", "multiply"
);
elementwise_layer!(
    /// Mean of its inputs (Keras' `Average`).
    Average, Op::Average, "Average", "average"
);
elementwise_layer!(
    /// Element-wise maximum of its inputs (Keras' `Maximum`).
    Maximum, Op::Maximum, "Maximum", "maximum"
);
elementwise_layer!(
    /// Element-wise minimum of its inputs (Keras' `Minimum`).
    Minimum, Op::Minimum, "Minimum", "minimum"
);

/// Joins its inputs along an axis (Keras' `Concatenate`, `axis=-1` by default).
pub struct Concatenate {
    meta: Meta,
    /// Keras' axis: negative from the end, positive counting the batch as 0.
    axis: i64,
    out_shape: Vec<usize>,
    /// Per input, the values of one slab (its size along the axis times the inner size).
    slabs: Vec<usize>,
    /// Number of slabs per sample (the product of the sizes before the axis).
    outer: usize,
}

impl Default for Concatenate {
    fn default() -> Self {
        Concatenate { meta: Meta::default(), axis: -1, out_shape: Vec::new(), slabs: Vec::new(), outer: 1 }
    }
}

impl Concatenate {
    /// Concatenation along the last axis.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets Keras' axis (`-1` the last; `1` the first axis after the batch).
    pub fn axis(mut self, axis: i64) -> Self {
        self.axis = axis;
        self
    }

    /// Names the layer.
    pub fn name(mut self, name: &str) -> Self {
        self.meta.name = name.to_string();
        self
    }

    /// Reads Keras' config (`axis`).
    pub fn from_config(c: &Map<String, Value>) -> Result<Self> {
        let axis = match c.get("axis") {
            None | Some(Value::Null) => -1,
            Some(v) => v
                .as_i64()
                .filter(|a| (-8..=8).contains(a) && *a != 0)
                .ok_or_else(|| Error::config(format!("Concatenate: `axis` must be a non-zero integer, not {v}")))?,
        };
        Ok(Concatenate { meta: Meta::from_config(c)?, axis, ..Default::default() })
    }

    /// The per-sample axis (0-based) for inputs of `rank` per-sample axes.
    fn sample_axis(&self, rank: usize) -> Result<usize> {
        let a = if self.axis < 0 { rank as i64 + self.axis } else { self.axis - 1 };
        if a < 0 || a >= rank as i64 {
            return Err(Error::shape(format!(
                "Concatenate: axis {} is out of range for inputs of shape (None, …) with {rank} axes",
                self.axis
            )));
        }
        Ok(a as usize)
    }
}

impl Layer for Concatenate {
    fn class_name(&self) -> &'static str {
        "Concatenate"
    }
    fn base_name(&self) -> &'static str {
        "concatenate"
    }
    fn meta(&self) -> &Meta {
        &self.meta
    }
    fn meta_mut(&mut self) -> &mut Meta {
        &mut self.meta
    }
    fn build(&mut self, input_shape: &[usize], rng: &mut Rng) -> Result<Vec<usize>> {
        self.build_multi(&[input_shape.to_vec()], rng)
    }
    fn output_shape(&self) -> &[usize] {
        &self.out_shape
    }
    fn forward(&mut self, x: &Tensor, y: &mut Tensor, _ctx: &mut ForwardCtx<'_>) {
        y.data_mut().copy_from_slice(x.data());
    }
    fn backward(&mut self, _x: &Tensor, _y: &Tensor, dy: &mut Tensor, dx: Option<&mut Tensor>) {
        if let Some(dx) = dx {
            dx.data_mut().copy_from_slice(dy.data());
        }
    }
    fn multi_input(&self) -> bool {
        true
    }
    fn build_multi(&mut self, shapes: &[Vec<usize>], _rng: &mut Rng) -> Result<Vec<usize>> {
        if shapes.len() < 2 {
            return Err(Error::shape(format!("Concatenate needs at least 2 inputs, got {}", shapes.len())));
        }
        let rank = shapes[0].len();
        let a = self.sample_axis(rank)?;
        let mut out = shapes[0].clone();
        out[a] = 0;
        for s in shapes {
            let same_rest = s.len() == rank && s.iter().zip(&shapes[0]).enumerate().all(|(i, (x, y))| i == a || x == y);
            if !same_rest {
                return Err(Error::shape(format!(
                    "Concatenate (axis {}) needs inputs that match except on that axis, got {} and {}",
                    self.axis,
                    super::shape_str(&shapes[0]),
                    super::shape_str(s)
                )));
            }
            out[a] += s[a];
        }
        let inner: usize = shapes[0][a + 1..].iter().product();
        self.outer = shapes[0][..a].iter().product();
        self.slabs = shapes.iter().map(|s| s[a] * inner).collect();
        self.out_shape = out;
        Ok(self.out_shape.clone())
    }
    fn forward_multi(&mut self, xs: Inputs<'_>, y: &mut Tensor, _ctx: &mut ForwardCtx<'_>) {
        let width: usize = self.slabs.iter().sum();
        let y = y.data_mut();
        let mut off = 0;
        for (x, &slab) in xs.iter().zip(&self.slabs) {
            for (row, src) in y.chunks_exact_mut(width).zip(x.data().chunks_exact(slab)) {
                row[off..off + slab].copy_from_slice(src);
            }
            off += slab;
        }
    }
    fn backward_multi(&mut self, _xs: Inputs<'_>, _y: &Tensor, dy: &mut Tensor, k: usize, dx: &mut Tensor) {
        let width: usize = self.slabs.iter().sum();
        let off: usize = self.slabs[..k].iter().sum();
        let slab = self.slabs[k];
        for (dst, row) in dx.data_mut().chunks_exact_mut(slab).zip(dy.data().chunks_exact(width)) {
            dst.copy_from_slice(&row[off..off + slab]);
        }
    }
    fn config(&self) -> Map<String, Value> {
        let mut m = self.meta.config();
        m.insert("axis".into(), json!(self.axis));
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Central differences of `L = Σ r ⊙ y` w.r.t. every input value against `backward_multi`.
    fn check_merge(layer: &mut dyn Layer, shapes: &[Vec<usize>], seed: u64) {
        let mut rng = Rng::new(seed);
        let out = layer.build_multi(shapes, &mut rng).unwrap();
        let batch = 2;
        let mut acts: Vec<Tensor> = shapes
            .iter()
            .map(|s| {
                let mut full = vec![batch];
                full.extend_from_slice(s);
                let n: usize = full.iter().product();
                Tensor::from_vec(&full, (0..n).map(|_| rng.uniform_range(-1.0, 1.0)).collect()).unwrap()
            })
            .collect();
        let nodes: Vec<usize> = (0..shapes.len()).collect();
        let mut ys = vec![batch];
        ys.extend_from_slice(&out);
        let r: Vec<f32> = (0..ys.iter().product()).map(|_| rng.uniform_range(-1.0, 1.0)).collect();
        let eval = |layer: &mut dyn Layer, acts: &[Tensor]| -> (f64, Tensor) {
            let mut y = Tensor::zeros(&ys);
            let mut r2 = Rng::new(0);
            layer.forward_multi(Inputs::new(acts, &nodes), &mut y, &mut ForwardCtx { training: true, rng: &mut r2 });
            (y.data().iter().zip(&r).map(|(a, b)| f64::from(*a) * f64::from(*b)).sum(), y)
        };
        let (_, y) = eval(layer, &acts);
        let mut dy = Tensor::from_vec(&ys, r.clone()).unwrap();
        for k in 0..shapes.len() {
            let mut dx = Tensor::zeros(acts[k].shape());
            layer.backward_multi(Inputs::new(&acts, &nodes), &y, &mut dy, k, &mut dx);
            assert_eq!(dy.data(), &r[..], "dy is left as it was");
            let h = 1e-3f32;
            for i in 0..acts[k].len() {
                let orig = acts[k].data()[i];
                acts[k].data_mut()[i] = orig + h;
                let (lp, _) = eval(layer, &acts);
                acts[k].data_mut()[i] = orig - h;
                let (lm, _) = eval(layer, &acts);
                acts[k].data_mut()[i] = orig;
                let fd = ((lp - lm) / (2.0 * f64::from(h))) as f32;
                let g = dx.data()[i];
                assert!(
                    (fd - g).abs() < 2e-3 * (1.0 + fd.abs()),
                    "{} input {k}[{i}]: fd {fd} vs {g}",
                    layer.class_name()
                );
            }
        }
    }

    #[test]
    fn merge_gradients_match_finite_differences() {
        let s = vec![vec![3, 2, 4], vec![3, 2, 4], vec![3, 2, 4]];
        check_merge(&mut Add::new(), &s, 1);
        check_merge(&mut Subtract::new(), &s[..2], 2);
        check_merge(&mut Multiply::new(), &s, 3);
        check_merge(&mut Average::new(), &s, 4);
        check_merge(&mut Maximum::new(), &s, 5);
        check_merge(&mut Minimum::new(), &s, 6);
        let c = vec![vec![3, 2, 4], vec![3, 2, 1], vec![3, 2, 2]];
        check_merge(&mut Concatenate::new(), &c, 7);
        let c = vec![vec![3, 2, 4], vec![1, 2, 4]];
        check_merge(&mut Concatenate::new().axis(1), &c, 8);
        let c = vec![vec![3, 2, 4], vec![3, 5, 4]];
        check_merge(&mut Concatenate::new().axis(-2), &c, 9);
    }

    #[test]
    fn forward_values_and_shape_errors() {
        let mut rng = Rng::new(0);
        let acts = vec![
            Tensor::from_vec(&[1, 3], vec![1.0, -2.0, 3.0]).unwrap(),
            Tensor::from_vec(&[1, 3], vec![2.0, -5.0, 1.0]).unwrap(),
        ];
        let nodes = [0, 1];
        let run = |l: &mut dyn Layer, rng: &mut Rng| {
            let out = l.build_multi(&[vec![3], vec![3]], rng).unwrap();
            let mut y = Tensor::zeros(&[1, out[0]]);
            l.forward_multi(Inputs::new(&acts, &nodes), &mut y, &mut ForwardCtx { training: false, rng });
            y.into_vec()
        };
        assert_eq!(run(&mut Add::new(), &mut rng), [3.0, -7.0, 4.0]);
        assert_eq!(run(&mut Subtract::new(), &mut rng), [-1.0, 3.0, 2.0]);
        assert_eq!(run(&mut Multiply::new(), &mut rng), [2.0, 10.0, 3.0]);
        assert_eq!(run(&mut Average::new(), &mut rng), [1.5, -3.5, 2.0]);
        assert_eq!(run(&mut Maximum::new(), &mut rng), [2.0, -2.0, 3.0]);
        assert_eq!(run(&mut Minimum::new(), &mut rng), [1.0, -5.0, 1.0]);
        assert_eq!(run(&mut Concatenate::new(), &mut rng), [1.0, -2.0, 3.0, 2.0, -5.0, 1.0]);
        assert!(Add::new().build_multi(&[vec![3], vec![4]], &mut rng).is_err());
        assert!(Add::new().build_multi(&[vec![3]], &mut rng).is_err());
        assert!(Subtract::new().build_multi(&[vec![3], vec![3], vec![3]], &mut rng).is_err());
        assert!(Concatenate::new().axis(1).build_multi(&[vec![3, 2], vec![3, 4]], &mut rng).is_err());
        assert!(Concatenate::new().axis(3).build_multi(&[vec![3, 2], vec![3, 2]], &mut rng).is_err());
    }
}
