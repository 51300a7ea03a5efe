//! `MaxPooling2D` and `AveragePooling2D` over NHWC input. Max pooling stores the winning index
//! of every output value so its backward pass is a scatter. Everything but the passes is
//! shared: the configuration and window ([`PoolConfig`]), the builders and the layer
//! plumbing (the `pool_builders!` and `pool_layer_basics!` macros).

use super::{cfg, shape_str, ForwardCtx, Layer, Meta, Pair};
use crate::error::{Error, Result};
use crate::kernels::conv::{Padding, Window};
use crate::kernels::pool;
use crate::parallel::{self, SharedMut};
use crate::rng::Rng;
use crate::tensor::Tensor;
use serde_json::{json, Map, Value};

/// Configuration and geometry shared by both pooling layers.
#[derive(Clone, Debug)]
struct PoolConfig {
    meta: Meta,
    pool_size: Pair,
    strides: Option<Pair>,
    padding: Padding,
    /// The window, once built.
    window: Option<Window>,
    out_shape: Vec<usize>,
}

impl PoolConfig {
    fn new(pool_size: Pair) -> Self {
        PoolConfig {
            meta: Meta::default(),
            pool_size,
            strides: None,
            padding: Padding::Valid,
            window: None,
            out_shape: Vec::new(),
        }
    }

    /// Sets the window for a per-sample `input_shape`; returns the output shape.
    fn build(&mut self, input_shape: &[usize], layer: &str) -> Result<Vec<usize>> {
        let w = self.window(input_shape, layer)?;
        self.out_shape = vec![w.out_h, w.out_w, w.channels];
        self.window = Some(w);
        Ok(self.out_shape.clone())
    }

    /// The built window.
    fn built(&self) -> Window {
        self.window.expect("pooling layer used before build")
    }

    fn from_config(c: &Map<String, Value>, layer: &str) -> Result<Self> {
        cfg::channels_last(c, layer)?;
        let pool_size = cfg::pair(c, "pool_size", Some(Pair(2, 2)), layer)?;
        let strides = match c.get("strides") {
            None | Some(Value::Null) => None,
            Some(_) => Some(cfg::pair(c, "strides", None, layer)?),
        };
        let padding = match c.get("padding").and_then(Value::as_str) {
            Some(p) => Padding::parse(p)?,
            None => Padding::Valid,
        };
        Ok(PoolConfig { meta: Meta::from_config(c)?, strides, padding, ..PoolConfig::new(pool_size) })
    }

    fn strides(&self) -> Pair {
        self.strides.unwrap_or(self.pool_size)
    }

    fn window(&self, input_shape: &[usize], layer: &str) -> Result<Window> {
        if input_shape.len() != 3 {
            return Err(Error::shape(format!(
                "{layer} {:?} needs input of shape (None, height, width, channels), got {}",
                self.meta.name,
                shape_str(input_shape)
            )));
        }
        Window::new(
            input_shape[0],
            input_shape[1],
            input_shape[2],
            self.pool_size.tuple(),
            self.strides().tuple(),
            self.padding,
        )
        .map_err(|e| Error::shape(format!("{layer} {:?}: {e}", self.meta.name)))
    }

    fn config(&self) -> Map<String, Value> {
        let mut m = self.meta.config();
        m.insert("pool_size".into(), self.pool_size.to_json());
        m.insert("padding".into(), json!(self.padding.name()));
        m.insert("strides".into(), self.strides().to_json());
        m.insert("data_format".into(), json!("channels_last"));
        m
    }
}

/// Runs `f(first_sample, samples)` over batch chunks of `n` samples on the worker threads.
fn for_sample_chunks(n: usize, f: impl Fn(std::ops::Range<usize>) + Sync + Send) {
    let workers = parallel::workers();
    let chunk = parallel::chunk_len(n, workers, 32);
    let mut states = vec![(); workers];
    parallel::for_chunks(n, chunk, &mut states, |_, r| f(r));
}

/// The `Layer` methods both pooling layers share, for class `$class` (auto-names `$base`).
macro_rules! pool_layer_basics {
    ($class:literal, $base:literal) => {
        fn class_name(&self) -> &'static str {
            $class
        }

        fn base_name(&self) -> &'static str {
            $base
        }

        fn meta(&self) -> &Meta {
            &self.cfg.meta
        }

        fn meta_mut(&mut self) -> &mut Meta {
            &mut self.cfg.meta
        }

        fn build(&mut self, input_shape: &[usize], _rng: &mut Rng) -> Result<Vec<usize>> {
            self.cfg.build(input_shape, $class)
        }

        fn output_shape(&self) -> &[usize] {
            &self.cfg.out_shape
        }

        fn config(&self) -> Map<String, Value> {
            self.cfg.config()
        }
    };
}

macro_rules! pool_builders {
    ($t:ident) => {
        impl $t {
            /// Sets the strides (default: the pool size).
            pub fn strides(mut self, s: impl Into<Pair>) -> Self {
                self.cfg.strides = Some(s.into());
                self
            }

            /// Sets the padding: [`Padding`] or Keras' name ("valid" or "same"; another name
            /// makes building the model fail).
            pub fn padding<P: TryInto<Padding, Error: Into<crate::error::Error>>>(mut self, p: P) -> Self {
                if let Some(p) = self.cfg.meta.accept(p, "padding") {
                    self.cfg.padding = p;
                }
                self
            }

            /// Names the layer.
            pub fn name(mut self, name: &str) -> Self {
                self.cfg.meta.name = name.to_string();
                self
            }

            /// Declares the per-sample input shape (first layer).
            pub fn input_shape(mut self, shape: impl AsRef<[usize]>) -> Self {
                self.cfg.meta.input_shape = Some(shape.as_ref().to_vec());
                self
            }
        }
    };
}

/// Max pooling (Keras' `MaxPooling2D`: pool 2×2, strides = pool size, padding "valid").
pub struct MaxPooling2D {
    cfg: PoolConfig,
    argmax: Vec<u32>,
    fold_relu: bool,
}

impl MaxPooling2D {
    /// Max pooling over `pool_size` windows.
    pub fn new(pool_size: impl Into<Pair>) -> Self {
        MaxPooling2D { cfg: PoolConfig::new(pool_size.into()), argmax: Vec::new(), fold_relu: false }
    }

    /// Reads Keras' config.
    pub fn from_config(c: &Map<String, Value>) -> Result<Self> {
        let mut l = MaxPooling2D::new(2);
        l.cfg = PoolConfig::from_config(c, "MaxPooling2D")?;
        Ok(l)
    }
}

impl Default for MaxPooling2D {
    fn default() -> Self {
        MaxPooling2D::new(2)
    }
}

pool_builders!(MaxPooling2D);

impl Layer for MaxPooling2D {
    pool_layer_basics!("MaxPooling2D", "max_pooling2d");

    fn forward(&mut self, x: &Tensor, y: &mut Tensor, _ctx: &mut ForwardCtx<'_>) {
        let w = self.cfg.built();
        let n = x.batch();
        let ol = w.out_pixels() * w.channels;
        self.argmax.resize(n * ol, 0);
        let xd = x.data();
        let ys = SharedMut::new(y.data_mut());
        let am = SharedMut::new(&mut self.argmax);
        for_sample_chunks(n, |r| {
            // SAFETY: disjoint sample ranges.
            let (yc, ac) = unsafe { (ys.slice(r.start * ol..r.end * ol), am.slice(r.start * ol..r.end * ol)) };
            pool::max_pool_forward(&w, &xd[r.start * w.in_len()..r.end * w.in_len()], r.len(), yc, ac);
        });
    }

    fn fold_input_relu(&mut self, fold: bool) -> bool {
        // The winner of a window is the pooled output, so relu'(winner) = (y > 0).
        self.fold_relu = fold;
        true
    }

    fn backward(&mut self, x: &Tensor, y: &Tensor, dy: &mut Tensor, dx: Option<&mut Tensor>) {
        let Some(dx) = dx else { return };
        let w = self.cfg.built();
        let n = x.batch();
        let ol = w.out_pixels() * w.channels;
        let (dyd, yd, am, fold) = (dy.data(), y.data(), &self.argmax, self.fold_relu);
        let dxs = SharedMut::new(dx.data_mut());
        for_sample_chunks(n, |r| {
            // SAFETY: disjoint sample ranges.
            let dxc = unsafe { dxs.slice(r.start * w.in_len()..r.end * w.in_len()) };
            let o = r.start * ol..r.end * ol;
            let y = fold.then(|| &yd[o.clone()]);
            pool::max_pool_backward(&w, &dyd[o.clone()], &am[o], y, r.len(), dxc);
        });
    }
}

/// Average pooling (Keras' `AveragePooling2D`: pool 2×2, strides = pool size, "valid").
pub struct AveragePooling2D {
    cfg: PoolConfig,
}

impl AveragePooling2D {
    /// Average pooling over `pool_size` windows.
    pub fn new(pool_size: impl Into<Pair>) -> Self {
        AveragePooling2D { cfg: PoolConfig::new(pool_size.into()) }
    }

    /// Reads Keras' config.
    pub fn from_config(c: &Map<String, Value>) -> Result<Self> {
        let mut l = AveragePooling2D::new(2);
        l.cfg = PoolConfig::from_config(c, "AveragePooling2D")?;
        Ok(l)
    }
}

impl Default for AveragePooling2D {
    fn default() -> Self {
        AveragePooling2D::new(2)
    }
}

pool_builders!(AveragePooling2D);

impl Layer for AveragePooling2D {
    pool_layer_basics!("AveragePooling2D", "average_pooling2d");

    fn forward(&mut self, x: &Tensor, y: &mut Tensor, _ctx: &mut ForwardCtx<'_>) {
        let w = self.cfg.built();
        let ol = w.out_pixels() * w.channels;
        let xd = x.data();
        let ys = SharedMut::new(y.data_mut());
        for_sample_chunks(x.batch(), |r| {
            // SAFETY: disjoint sample ranges.
            let yc = unsafe { ys.slice(r.start * ol..r.end * ol) };
            pool::avg_pool_forward(&w, &xd[r.start * w.in_len()..r.end * w.in_len()], r.len(), yc);
        });
    }

    fn backward(&mut self, x: &Tensor, _y: &Tensor, dy: &mut Tensor, dx: Option<&mut Tensor>) {
        let Some(dx) = dx else { return };
        let w = self.cfg.built();
        let ol = w.out_pixels() * w.channels;
        let dyd = dy.data();
        let dxs = SharedMut::new(dx.data_mut());
        for_sample_chunks(x.batch(), |r| {
            // SAFETY: disjoint sample ranges.
            let dxc = unsafe { dxs.slice(r.start * w.in_len()..r.end * w.in_len()) };
            pool::avg_pool_backward(&w, &dyd[r.start * ol..r.end * ol], r.len(), dxc);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::layers::gradcheck::check_layer;

    #[test]
    fn shapes_and_default_strides() {
        let mut rng = Rng::new(0);
        assert_eq!(MaxPooling2D::new(2).build(&[28, 28, 6], &mut rng).unwrap(), vec![14, 14, 6]);
        assert_eq!(MaxPooling2D::new(2).build(&[5, 5, 1], &mut rng).unwrap(), vec![2, 2, 1]);
        assert_eq!(MaxPooling2D::new(2).padding(Padding::Same).build(&[5, 5, 1], &mut rng).unwrap(), vec![3, 3, 1]);
        assert_eq!(AveragePooling2D::new(3).strides(1).build(&[5, 4, 2], &mut rng).unwrap(), vec![3, 2, 2]);
        assert!(MaxPooling2D::new(2).build(&[1, 1, 1], &mut rng).is_err());
    }

    #[test]
    fn gradients_match_finite_differences() {
        let mut l = MaxPooling2D::new(2);
        check_layer(&mut l, &[6, 5, 3], 2, 300, 2e-2);
        let mut l = MaxPooling2D::new(3).strides(2).padding(Padding::Same);
        check_layer(&mut l, &[7, 6, 2], 2, 301, 2e-2);
        let mut l = AveragePooling2D::new(2).padding(Padding::Same);
        check_layer(&mut l, &[5, 5, 2], 2, 302, 2e-2);
        let mut l = AveragePooling2D::new((3, 2)).strides(1);
        check_layer(&mut l, &[6, 5, 1], 3, 303, 2e-2);
    }

    #[test]
    fn config_round_trip_keeps_keras_strides() {
        let l = MaxPooling2D::new(2).name("p");
        let c = l.config();
        assert_eq!(c["strides"], json!([2, 2]));
        assert_eq!(MaxPooling2D::from_config(&c).unwrap().config(), c);
    }
}
