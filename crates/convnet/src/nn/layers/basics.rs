//! The plumbing every layer without weights repeats: class and automatic names, the common
//! part ([`super::Meta`]), the output shape, and the `name` / `input_shape` builders.

/// The `Layer` methods naming `$class` (automatic names `$base`), for a struct with fields
/// `meta: Meta` and `out_shape: Vec<usize>`.
macro_rules! layer_basics {
    ($class:literal, $base:literal) => {
        fn class_name(&self) -> &'static str {
            $class
        }

        fn base_name(&self) -> &'static str {
            $base
        }

        fn meta(&self) -> &Meta {
            &self.meta
        }

        fn meta_mut(&mut self) -> &mut Meta {
            &mut self.meta
        }

        fn output_shape(&self) -> &[usize] {
            &self.out_shape
        }
    };
}
pub(crate) use layer_basics;

/// The `name` and `input_shape` builders, for a struct with a field `meta: Meta`.
macro_rules! meta_builders {
    () => {
        /// Names the layer.
        pub fn name(mut self, name: &str) -> Self {
            self.meta.name = name.to_string();
            self
        }

        /// Declares the per-sample input shape (first layer).
        pub fn input_shape(mut self, shape: impl AsRef<[usize]>) -> Self {
            self.meta.input_shape = Some(shape.as_ref().to_vec());
            self
        }
    };
}
pub(crate) use meta_builders;

/// Fails unless `input_shape` is `(height, width, channels)`, naming the layer.
pub(crate) fn image_shape(input_shape: &[usize], class: &str, name: &str) -> crate::error::Result<[usize; 3]> {
    match input_shape {
        &[h, w, c] => Ok([h, w, c]),
        _ => Err(crate::error::Error::shape(format!(
            "{class} {name:?} needs input of shape (None, height, width, channels), got {}",
            super::shape_str(input_shape)
        ))),
    }
}
