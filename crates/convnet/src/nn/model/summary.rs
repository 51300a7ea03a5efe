//! Keras' `summary()` table: each layer with its output shape and parameter count, and the
//! totals (trainable and non-trainable) with their sizes.

use super::Sequential;
use crate::error::{Error, Result};
use crate::nn::layers::registry::layer_from_config;

impl Sequential {
    /// Keras' `summary()` table: each layer with its output shape and parameter count.
    ///
    /// A built model is read as it is. An unbuilt one whose input shape is known (Keras builds
    /// such a model as layers are added) is summarized from a copy built from its layers'
    /// configs: the model itself stays unbuilt, its weights not yet created (call
    /// [`Sequential::build`] for that). Without an input shape, as in Keras, there is nothing
    /// to summarize yet: the error says how to give one.
    pub fn summary(&self) -> Result<String> {
        if self.is_built() {
            return Ok(self.table());
        }
        if self.input_shape.is_none() {
            return Err(Error::State(
                "this model has not been built yet, so it has no shapes to show: give the first layer an \
                 input_shape (e.g. Conv2D::new(6, 5).input_shape([28, 28, 1])) or call build"
                    .into(),
            ));
        }
        let mut copy = Sequential::new().with_name(&self.name);
        copy.input_shape.clone_from(&self.input_shape);
        for (i, l) in self.layers.iter().enumerate() {
            if let Some(m) = &l.meta().invalid {
                return Err(Error::config(format!("layer {i} ({}): {m}", l.class_name())));
            }
            copy.add_boxed(layer_from_config(l.class_name(), &l.config())?);
        }
        copy.build()?;
        Ok(copy.table())
    }

    /// The table of a built model.
    fn table(&self) -> String {
        let rows: Vec<(String, String, String)> = self
            .layers
            .iter()
            .map(|l| {
                (
                    format!("{} ({})", l.name(), l.class_name()),
                    crate::nn::layers::shape_str(l.output_shape()),
                    group_thousands(l.count_params()),
                )
            })
            .collect();
        let w0 = rows.iter().map(|r| r.0.chars().count()).max().unwrap_or(0).max(29) + 2;
        let w1 = rows.iter().map(|r| r.1.len()).max().unwrap_or(0).max(20) + 2;
        let w2 = 15;
        let line = |l: char, m: char, r: char, h: char| {
            format!(
                "{l}{}{m}{}{m}{}{r}\n",
                h.to_string().repeat(w0),
                h.to_string().repeat(w1),
                h.to_string().repeat(w2)
            )
        };
        let mut s = format!("Model: \"{}\"\n", self.name);
        s += &line('┏', '┳', '┓', '━');
        s += &format!(
            "┃ {:<a$}┃ {:<b$}┃ {:>c$} ┃\n",
            "Layer (type)",
            "Output Shape",
            "Param #",
            a = w0 - 1,
            b = w1 - 1,
            c = w2 - 2
        );
        s += &line('┡', '╇', '┩', '━');
        for (i, r) in rows.iter().enumerate() {
            s += &format!("│ {:<a$}│ {:<b$}│ {:>c$} │\n", r.0, r.1, r.2, a = w0 - 1, b = w1 - 1, c = w2 - 2);
            if i + 1 < rows.len() {
                s += &line('├', '┼', '┤', '─');
            }
        }
        s += &line('└', '┴', '┘', '─');
        let total = self.count_params();
        let trainable = self.count_trainable_params();
        let frozen = total - trainable;
        s += &format!(" Total params: {} ({})\n", group_thousands(total), human_bytes(total * 4));
        s += &format!(" Trainable params: {} ({})\n", group_thousands(trainable), human_bytes(trainable * 4));
        s += &format!(" Non-trainable params: {} ({})\n", group_thousands(frozen), human_bytes(frozen * 4));
        s
    }
}

/// `1234567` → `"1,234,567"`.
pub fn group_thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// Keras' size string: `241.04 KB`, `0.00 B`.
fn human_bytes(bytes: usize) -> String {
    let b = bytes as f64;
    if b < 1024.0 {
        format!("{b:.2} B")
    } else if b < 1024.0 * 1024.0 {
        format!("{:.2} KB", b / 1024.0)
    } else if b < 1024.0 * 1024.0 * 1024.0 {
        format!("{:.2} MB", b / (1024.0 * 1024.0))
    } else {
        format!("{:.2} GB", b / (1024.0 * 1024.0 * 1024.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::model::tests::tiny;

    #[test]
    fn summary_counts_parameters() {
        let m = tiny();
        let s = m.summary().unwrap();
        // conv 3*3*1*3 + 3 = 30; dense 27*4 + 4 = 112
        assert!(s.contains("(None, 6, 6, 3)") && s.contains("│            30 │"), "{s}");
        assert!(s.contains(" Total params: 142 (568.00 B)"), "{s}");
        assert_eq!(group_thousands(61706), "61,706");
        assert_eq!(group_thousands(100), "100");
    }
}
