//! The library's error type: every failure a caller can cause or meet, typed.

use std::path::PathBuf;

/// Everything that can go wrong in convnet, from a bad file to a shape that does not fit.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing a file failed at the operating-system level.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A file's bytes are not what its format requires (bad magic, truncated, inconsistent).
    #[error("{path}: {message}")]
    Format {
        /// The file (or archive member) that is malformed.
        path: PathBuf,
        /// What was expected and what was found.
        message: String,
    },
    /// Tensor shapes that do not fit together.
    #[error("shape mismatch: {0}")]
    Shape(String),
    /// A model, layer, loss or optimizer configuration that is invalid or unsupported.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A model was used before `compile` or before its input shape was known.
    #[error("{0}")]
    State(String),
    /// A download failed or delivered the wrong bytes.
    #[error("download of {url} failed: {message}")]
    Download {
        /// The address that was tried.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// A dataset could not be found locally and could not be downloaded.
    #[error("{0}")]
    DatasetUnavailable(String),
    /// A layer or activation that an export format has no form for (named).
    #[error("cannot export to {format}: layer {layer:?} ({what}) has no {format} form")]
    Unexportable {
        /// The target format (`ONNX`).
        format: &'static str,
        /// The layer's name.
        layer: String,
        /// What cannot be exported: the layer's class or its activation.
        what: String,
    },
    /// Training produced a loss that is NaN or infinite.
    #[error("the loss became {value} at epoch {epoch}, batch {batch}: training stopped")]
    NonFinite {
        /// 1-based epoch number.
        epoch: usize,
        /// 1-based batch number within the epoch.
        batch: usize,
        /// The offending loss value.
        value: f32,
    },
    /// Training was interrupted (Ctrl-C, or the caller's interrupt flag).
    #[error("training was interrupted at epoch {epoch}, batch {batch}{}", match checkpoint {
        Some(p) => format!("; checkpoint saved to {}", p.display()),
        None => String::new(),
    })]
    Interrupted {
        /// 1-based epoch in progress.
        epoch: usize,
        /// Batches of that epoch that were trained.
        batch: usize,
        /// Where the checkpoint to resume from was written, if one was.
        checkpoint: Option<PathBuf>,
    },
}

/// The library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The candidate closest to `word` by edit distance, when close enough to be a slip of the
/// keyboard (at most a third of the word's letters, and at least one, differ).
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .map(|c| (edit_distance(word, c), c))
        .filter(|&(d, _)| d <= limit)
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}

/// `unknown {what} `{word}`` with Keras' suggestion "did you mean …?" when a candidate is close,
/// else the list of valid names.
pub fn unknown_name(what: &str, word: &str, candidates: &[&str]) -> String {
    match closest(word, candidates.iter().copied()) {
        Some(c) => format!("unknown {what} `{word}`: did you mean `{c}`?"),
        None => format!("unknown {what} `{word}` (valid: {})", candidates.join(", ")),
    }
}

/// Levenshtein distance (insertions, deletions, substitutions; a swap of two neighbours counts one).
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    // Optimal string alignment: three rows of the dynamic-programming table.
    let mut prev2 = vec![0; b.len() + 1];
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut cur = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            cur[j] = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                cur[j] = cur[j].min(prev2[j - 2] + 1);
            }
        }
        prev2 = std::mem::replace(&mut prev, cur);
    }
    prev[b.len()]
}

impl Error {
    /// Builds an [`Error::Format`] for `path` with `message`.
    pub fn format(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Format { path: path.into(), message: message.into() }
    }

    /// Builds an [`Error::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }

    /// Builds an [`Error::Config`].
    pub fn config(message: impl Into<String>) -> Self {
        Error::Config(message.into())
    }

    /// Builds an [`Error::Shape`].
    pub fn shape(message: impl Into<String>) -> Self {
        Error::Shape(message.into())
    }
}

/// A conversion that cannot fail (a typed argument where a name is also accepted) turns into
/// no error at all.
impl From<std::convert::Infallible> for Error {
    fn from(never: std::convert::Infallible) -> Self {
        match never {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closest_names_the_slip_and_nothing_far() {
        let keys = ["activation", "units", "use_bias", "kernel_initializer"];
        assert_eq!(closest("activaton", keys), Some("activation"));
        assert_eq!(closest("unist", keys), Some("units")); // a swap is one edit
        assert_eq!(closest("optimizer", keys), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        let m = unknown_name("key", "activaton", &keys);
        assert_eq!(m, "unknown key `activaton`: did you mean `activation`?");
        assert!(unknown_name("key", "zzz", &keys).contains("valid: activation, units"));
    }
}
