//! The set of layers convnet knows, in one place: Keras class name → constructor from config.

use super::{
    ActivationLayer, Add, Average, AveragePooling2D, Concatenate, Conv2D, Dense, Dropout, Flatten, Layer, LeakyReLU,
    MaxPooling2D, Maximum, Minimum, Multiply, PReLU, ReLU, Softmax, Subtract, ELU,
};
use crate::error::{Error, Result};
use serde_json::{Map, Value};

type Constructor = fn(&Map<String, Value>) -> Result<Box<dyn Layer>>;

/// Keras class names convnet can build, with their constructors.
const LAYERS: &[(&str, Constructor)] = &[
    ("Conv2D", |c| Ok(Box::new(Conv2D::from_config(c)?))),
    ("MaxPooling2D", |c| Ok(Box::new(MaxPooling2D::from_config(c)?))),
    ("AveragePooling2D", |c| Ok(Box::new(AveragePooling2D::from_config(c)?))),
    ("Flatten", |c| Ok(Box::new(Flatten::from_config(c)?))),
    ("Dense", |c| Ok(Box::new(Dense::from_config(c)?))),
    ("Dropout", |c| Ok(Box::new(Dropout::from_config(c)?))),
    ("Activation", |c| Ok(Box::new(ActivationLayer::from_config(c)?))),
    ("ReLU", |c| Ok(Box::new(ReLU::from_config(c)?))),
    ("LeakyReLU", |c| Ok(Box::new(LeakyReLU::from_config(c)?))),
    ("ELU", |c| Ok(Box::new(ELU::from_config(c)?))),
    ("Softmax", |c| Ok(Box::new(Softmax::from_config(c)?))),
    ("PReLU", |c| Ok(Box::new(PReLU::from_config(c)?))),
    ("Add", |c| Ok(Box::new(Add::from_config(c)?))),
    ("Subtract", |c| Ok(Box::new(Subtract::from_config(c)?))),
    ("Multiply", |c| Ok(Box::new(Multiply::from_config(c)?))),
    ("Average", |c| Ok(Box::new(Average::from_config(c)?))),
    ("Maximum", |c| Ok(Box::new(Maximum::from_config(c)?))),
    ("Minimum", |c| Ok(Box::new(Minimum::from_config(c)?))),
    ("Concatenate", |c| Ok(Box::new(Concatenate::from_config(c)?))),
];

/// Keras' aliases for the same classes.
const ALIASES: &[(&str, &str)] =
    &[("Convolution2D", "Conv2D"), ("MaxPool2D", "MaxPooling2D"), ("AvgPool2D", "AveragePooling2D")];

/// The class names convnet supports.
pub fn supported() -> Vec<&'static str> {
    LAYERS.iter().map(|(n, _)| *n).collect()
}

/// Builds a layer from its Keras class name and config.
pub fn layer_from_config(class_name: &str, config: &Map<String, Value>) -> Result<Box<dyn Layer>> {
    let class = ALIASES.iter().find(|(alias, _)| *alias == class_name).map_or(class_name, |(_, real)| real);
    match LAYERS.iter().find(|(n, _)| *n == class) {
        Some((_, make)) => make(config).map_err(|e| match e {
            Error::Config(m) if !m.starts_with(class) => Error::Config(format!("{class}: {m}")),
            other => other,
        }),
        None => Err(Error::config(format!(
            "layer class {class_name:?} is not supported by convnet (it has {})",
            supported().join(", ")
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_layer_round_trips_through_its_config() {
        let mut layers: Vec<Box<dyn Layer>> = vec![
            Box::new(Conv2D::new(3, 3).name("a")),
            Box::new(MaxPooling2D::new(2).name("b")),
            Box::new(AveragePooling2D::new(3).name("c")),
            Box::new(Flatten::new().name("d")),
            Box::new(Dense::new(4).name("e")),
            Box::new(Dropout::new(0.3).name("f")),
            Box::new(ActivationLayer::new(crate::Activation::Tanh).name("g")),
            Box::new(ActivationLayer::new(crate::Activation::Elu { alpha: 0.5 }).name("h")),
            Box::new(ReLU::new().max_value(Some(2.5)).negative_slope(0.1).threshold(0.3).name("i")),
            Box::new(LeakyReLU::new(0.15).name("j")),
            Box::new(ELU::new(0.7).name("k")),
            Box::new(Softmax::new().name("l")),
            Box::new(PReLU::new().shared_axes(&[1, 2]).alpha_regularizer(crate::nn::regularizers::l2(0.1)).name("m")),
            Box::new(Dense::new(4).activation(crate::Activation::LeakyRelu { negative_slope: 0.05 }).name("n")),
            Box::new(Add::new().name("o")),
            Box::new(Subtract::new().name("p")),
            Box::new(Multiply::new().name("q")),
            Box::new(Average::new().name("r")),
            Box::new(Maximum::new().name("s")),
            Box::new(Minimum::new().name("t")),
            Box::new(Concatenate::new().axis(2).name("u")),
        ];
        for (name, a) in crate::Activation::all() {
            layers.push(Box::new(ActivationLayer::new(a).name(name)));
            layers.push(Box::new(Dense::new(2).activation(a).name(name)));
        }
        for l in layers {
            let c = l.config();
            let back = layer_from_config(l.class_name(), &c).unwrap();
            assert_eq!(back.config(), c, "{}", l.class_name());
            assert_eq!(back.activation(), l.activation(), "{}", l.name());
        }
    }

    #[test]
    fn unknown_class_is_named() {
        let e = layer_from_config("BatchNormalization", &Map::new()).err().unwrap().to_string();
        assert!(e.contains("BatchNormalization") && e.contains("Conv2D"), "{e}");
        let e = layer_from_config("Dense", json!({"units": 0}).as_object().unwrap()).err().unwrap();
        assert!(e.to_string().contains("units"), "{e}");
    }
}
