//! Keras' `summary()` table: each layer with its output shape and parameter count, and the
//! totals (trainable and non-trainable) with their sizes.

use super::Sequential;
use crate::error::{Error, Result};
use crate::nn::layers::registry::layer_from_config;

impl Sequential {
    /// Keras' `summary()` table: each layer with its output shape and parameter count.
    ///
    /// A built model is read as it is. An unbuilt one whose input shape is known (Keras builds
    /// such a model as layers are added; a graph always knows its inputs) is summarized from a
    /// copy built from its layers' configs: the model itself stays unbuilt, its weights not yet
    /// created (call [`Sequential::build`] for that). Without an input shape, as in Keras,
    /// there is nothing to summarize yet: the error says how to give one.
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
        let mut layers = Vec::with_capacity(self.layers.len());
        for (i, l) in self.layers.iter().enumerate() {
            if let Some(m) = &l.meta().invalid {
                return Err(Error::config(format!("layer {i} ({}): {m}", l.class_name())));
            }
            layers.push(layer_from_config(l.class_name(), &l.config())?);
        }
        let mut copy = match &self.graph {
            Some(g) => Sequential::from_graph(&self.name, layers, g.clone()),
            None => {
                let mut c = Sequential::new().with_name(&self.name);
                c.input_shape.clone_from(&self.input_shape);
                for l in layers {
                    c.add_boxed(l);
                }
                c
            }
        };
        copy.build()?;
        Ok(copy.table())
    }

    /// The table of a built model. Each row: name (type), output shape, parameters, and for a
    /// graph the nodes it reads (Keras' "Connected to", one per line).
    fn table(&self) -> String {
        let mut rows: Vec<(String, String, String, Vec<String>)> = Vec::new();
        let graph = self.graph.as_ref();
        if let Some(g) = graph {
            for (name, shape) in g.input_names.iter().zip(&g.input_shapes) {
                rows.push((
                    format!("{name} (InputLayer)"),
                    crate::nn::layers::shape_str(shape),
                    "0".into(),
                    vec!["-".into()],
                ));
            }
        }
        let node_name = |x: usize| match graph {
            Some(g) if x < self.n_in => g.input_names[x].clone(),
            _ => self.layers[x - self.n_in].name().to_string(),
        };
        for (i, l) in self.layers.iter().enumerate() {
            let ins: &[usize] = if graph.is_some() { &self.inbound[i] } else { &[] };
            let connected = ins
                .iter()
                .enumerate()
                .map(|(k, &x)| format!("{}[0][0]{}", node_name(x), if k + 1 < ins.len() { "," } else { "" }))
                .collect();
            rows.push((
                format!("{} ({})", l.name(), l.class_name()),
                crate::nn::layers::shape_str(l.output_shape()),
                group_thousands(l.count_params()),
                connected,
            ));
        }
        let w0 = rows.iter().map(|r| r.0.chars().count()).max().unwrap_or(0).max(29) + 2;
        let w1 = rows.iter().map(|r| r.1.len()).max().unwrap_or(0).max(20) + 2;
        let w2 = 15;
        let w3 = rows.iter().flat_map(|r| r.3.iter().map(|c| c.chars().count())).max().unwrap_or(0).max(12) + 2;
        let cols = if graph.is_some() { 4 } else { 3 };
        let widths = [w0, w1, w2, w3];
        let line = |l: char, m: char, r: char, h: char| {
            let parts: Vec<String> = widths[..cols].iter().map(|&w| h.to_string().repeat(w)).collect();
            format!("{l}{}{r}\n", parts.join(&m.to_string()))
        };
        let cell = |t: &str, w: usize, right: bool| {
            if right {
                format!(" {t:>a$} ", a = w - 2)
            } else {
                format!(" {t:<a$}", a = w - 1)
            }
        };
        let mut s = format!("Model: \"{}\"\n", self.name);
        s += &line('┏', '┳', '┓', '━');
        let head = [
            cell("Layer (type)", w0, false),
            cell("Output Shape", w1, false),
            cell("Param #", w2, true),
            cell("Connected to", w3, false),
        ];
        s += &format!("┃{}┃\n", head[..cols].join("┃"));
        s += &line('┡', '╇', '┩', '━');
        for (i, r) in rows.iter().enumerate() {
            for k in 0..r.3.len().max(1) {
                let first = k == 0;
                let c = [
                    cell(if first { &r.0 } else { "" }, w0, false),
                    cell(if first { &r.1 } else { "" }, w1, false),
                    cell(if first { &r.2 } else { "" }, w2, true),
                    cell(r.3.get(k).map_or("", String::as_str), w3, false),
                ];
                s += &format!("│{}│\n", c[..cols].join("│"));
                if cols == 3 {
                    break;
                }
            }
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

    #[test]
    fn a_graph_shows_what_each_layer_reads() {
        let m = crate::nn::model::functional_tests_residual(1);
        let s = m.summary().unwrap();
        assert!(s.contains("┃ Connected to"), "{s}");
        assert!(s.contains("│ input_layer (InputLayer)"), "{s}");
        let add = s.lines().position(|l| l.contains("add (Add)")).unwrap();
        let lines: Vec<&str> = s.lines().collect();
        assert!(lines[add].contains("│ conv2d_2[0][0],") && lines[add + 1].contains("│ conv2d[0][0]"), "{s}");
        assert!(s.contains("│ -"), "{s}");
    }
}
