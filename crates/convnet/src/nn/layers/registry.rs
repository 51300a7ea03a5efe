//! The set of layers convnet knows, in one place: Keras class name → constructor from config.

use super::{
    ActivationLayer, Add, Average, AveragePooling2D, BatchNormalization, Concatenate, Conv2D, Conv2DTranspose,
    Cropping2D, Dense, DepthwiseConv2D, Dropout, Flatten, GlobalAveragePooling2D, GlobalMaxPooling2D, Layer, LeakyReLU,
    MaxPooling2D, Maximum, Minimum, Multiply, Normalization, PReLU, ReLU, Rescaling, Reshape, SeparableConv2D, Softmax,
    SpatialDropout2D, Subtract, UpSampling2D, ZeroPadding2D, ELU,
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
    ("DepthwiseConv2D", |c| Ok(Box::new(DepthwiseConv2D::from_config(c)?))),
    ("SeparableConv2D", |c| Ok(Box::new(SeparableConv2D::from_config(c)?))),
    ("Conv2DTranspose", |c| Ok(Box::new(Conv2DTranspose::from_config(c)?))),
    ("BatchNormalization", |c| Ok(Box::new(BatchNormalization::from_config(c)?))),
    ("GlobalAveragePooling2D", |c| Ok(Box::new(GlobalAveragePooling2D::from_config(c)?))),
    ("GlobalMaxPooling2D", |c| Ok(Box::new(GlobalMaxPooling2D::from_config(c)?))),
    ("ZeroPadding2D", |c| Ok(Box::new(ZeroPadding2D::from_config(c)?))),
    ("Cropping2D", |c| Ok(Box::new(Cropping2D::from_config(c)?))),
    ("UpSampling2D", |c| Ok(Box::new(UpSampling2D::from_config(c)?))),
    ("Rescaling", |c| Ok(Box::new(Rescaling::from_config(c)?))),
    ("Normalization", |c| Ok(Box::new(Normalization::from_config(c)?))),
    ("Reshape", |c| Ok(Box::new(Reshape::from_config(c)?))),
    ("SpatialDropout2D", |c| Ok(Box::new(SpatialDropout2D::from_config(c)?))),
    ("Add", |c| Ok(Box::new(Add::from_config(c)?))),
    ("Subtract", |c| Ok(Box::new(Subtract::from_config(c)?))),
    ("Multiply", |c| Ok(Box::new(Multiply::from_config(c)?))),
    ("Average", |c| Ok(Box::new(Average::from_config(c)?))),
    ("Maximum", |c| Ok(Box::new(Maximum::from_config(c)?))),
    ("Minimum", |c| Ok(Box::new(Minimum::from_config(c)?))),
    ("Concatenate", |c| Ok(Box::new(Concatenate::from_config(c)?))),
];

/// Keras' aliases for the same classes.
const ALIASES: &[(&str, &str)] = &[
    ("Convolution2D", "Conv2D"),
    ("MaxPool2D", "MaxPooling2D"),
    ("AvgPool2D", "AveragePooling2D"),
    ("SeparableConvolution2D", "SeparableConv2D"),
    ("Convolution2DTranspose", "Conv2DTranspose"),
    ("GlobalAvgPool2D", "GlobalAveragePooling2D"),
    ("GlobalMaxPool2D", "GlobalMaxPooling2D"),
];

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
            Box::new(DepthwiseConv2D::new(3).depth_multiplier(2).name("o")),
            Box::new(SeparableConv2D::new(4, 3).depth_multiplier(2).name("p")),
            Box::new(Conv2DTranspose::new(4, 3).strides(2).output_padding(1).name("q")),
            Box::new(Conv2D::new(4, 3).dilation_rate(2).groups(2).name("r")),
            Box::new(BatchNormalization::new().momentum(0.9).scale(false).name("o")),
            Box::new(GlobalAveragePooling2D::new().keepdims(true).name("p")),
            Box::new(GlobalMaxPooling2D::new().name("q")),
            Box::new(ZeroPadding2D::new([[1, 2], [3, 4]]).name("r")),
            Box::new(Cropping2D::uniform(1).name("s")),
            Box::new(UpSampling2D::new((2, 3)).interpolation(crate::nn::layers::Interpolation::Bilinear).name("t")),
            Box::new(Rescaling::new(1.0 / 255.0, -0.5).name("u")),
            Box::new(Normalization::with_statistics(&[0.5, 1.0], &[2.0, 4.0]).name("v")),
            Box::new(Reshape::new(&[-1, 3]).name("w")),
            Box::new(SpatialDropout2D::new(0.2).name("x")),
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
        let e = layer_from_config("Bidirectional", &Map::new()).err().unwrap().to_string();
        assert!(e.contains("Bidirectional") && e.contains("Conv2D"), "{e}");
        let e = layer_from_config("Dense", json!({"units": 0}).as_object().unwrap()).err().unwrap();
        assert!(e.to_string().contains("units"), "{e}");
    }
}
