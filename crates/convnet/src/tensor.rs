//! `Tensor`: a shape and a contiguous `Vec<f32>` in row-major order, batch axis first (NHWC).

use crate::error::{Error, Result};

/// An n-dimensional f32 array in row-major (C) order; axis 0 is the batch.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Tensor {
    shape: Vec<usize>,
    data: Vec<f32>,
}

impl Tensor {
    /// A tensor of zeros with the given shape.
    pub fn zeros(shape: &[usize]) -> Self {
        Tensor { shape: shape.to_vec(), data: vec![0.0; shape.iter().product()] }
    }

    /// Wraps `data` with `shape`; fails if the element counts differ.
    pub fn from_vec(shape: &[usize], data: Vec<f32>) -> Result<Self> {
        let n: usize = shape.iter().product();
        if n != data.len() {
            return Err(Error::shape(format!("shape {:?} holds {} values but {} were given", shape, n, data.len())));
        }
        Ok(Tensor { shape: shape.to_vec(), data })
    }

    /// The shape, batch axis first.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// All values in row-major order.
    pub fn data(&self) -> &[f32] {
        &self.data
    }

    /// All values in row-major order, mutable.
    pub fn data_mut(&mut self) -> &mut [f32] {
        &mut self.data
    }

    /// Consumes the tensor and returns its values.
    pub fn into_vec(self) -> Vec<f32> {
        self.data
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// True when the tensor holds no values.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Size of axis 0 (the batch); 0 for a tensor without axes.
    pub fn batch(&self) -> usize {
        self.shape.first().copied().unwrap_or(0)
    }

    /// Values per sample: the product of all axes but the first.
    pub fn sample_len(&self) -> usize {
        self.shape.iter().skip(1).product()
    }

    /// The values of sample `i`.
    pub fn sample(&self, i: usize) -> &[f32] {
        let n = self.sample_len();
        &self.data[i * n..(i + 1) * n]
    }

    /// The same values under a new shape with the same number of elements.
    pub fn reshape(mut self, shape: &[usize]) -> Result<Self> {
        let n: usize = shape.iter().product();
        if n != self.data.len() {
            return Err(Error::shape(format!(
                "cannot reshape {:?} ({} values) to {:?} ({} values)",
                self.shape,
                self.data.len(),
                shape,
                n
            )));
        }
        self.shape = shape.to_vec();
        Ok(self)
    }

    /// Sets the batch size (axis 0) of a buffer whose per-sample shape is `sample_shape`.
    pub(crate) fn resize_batch(&mut self, batch: usize, sample_shape: &[usize]) {
        let per: usize = sample_shape.iter().product();
        if self.shape.len() != sample_shape.len() + 1 || self.shape[0] != batch || self.shape[1..] != *sample_shape {
            self.shape.clear();
            self.shape.push(batch);
            self.shape.extend_from_slice(sample_shape);
        }
        self.data.resize(batch * per, 0.0);
    }

    /// Copies samples `start..end` into a new tensor.
    pub fn slice_batch(&self, start: usize, end: usize) -> Tensor {
        let n = self.sample_len();
        let mut shape = self.shape.clone();
        shape[0] = end - start;
        Tensor { shape, data: self.data[start * n..end * n].to_vec() }
    }

    /// Copies the samples at `indices`, in that order, into a new tensor.
    pub fn select(&self, indices: &[usize]) -> Tensor {
        let mut out = Tensor::default();
        self.gather_into(indices, &mut out);
        out
    }

    /// Copies the samples at `indices` into `out`, reusing its storage.
    pub(crate) fn gather_into(&self, indices: &[usize], out: &mut Tensor) {
        let n = self.sample_len();
        out.resize_batch(indices.len(), &self.shape[1..]);
        for (dst, &i) in out.data.chunks_exact_mut(n.max(1)).zip(indices) {
            dst.copy_from_slice(&self.data[i * n..(i + 1) * n]);
        }
    }

    /// Index of the largest value of each sample (first one on ties).
    pub fn argmax_rows(&self) -> Vec<usize> {
        let n = self.sample_len().max(1);
        self.data.chunks_exact(n).map(argmax).collect()
    }

    /// Multiplies every value by `factor`.
    pub fn scale(mut self, factor: f32) -> Tensor {
        self.data.iter_mut().for_each(|v| *v *= factor);
        self
    }
}

/// Index of the largest value in `row` (the first one on ties; 0 for an empty row).
pub fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_vec_checks_the_count() {
        assert!(Tensor::from_vec(&[2, 3], vec![0.0; 6]).is_ok());
        assert!(Tensor::from_vec(&[2, 3], vec![0.0; 5]).is_err());
    }

    #[test]
    fn select_and_argmax() {
        let t = Tensor::from_vec(&[3, 2], vec![0.0, 1.0, 5.0, 2.0, 3.0, 3.0]).unwrap();
        let s = t.select(&[2, 0]);
        assert_eq!(s.shape(), &[2, 2]);
        assert_eq!(s.data(), &[3.0, 3.0, 0.0, 1.0]);
        assert_eq!(t.argmax_rows(), vec![1, 0, 0]);
    }

    #[test]
    fn resize_reuses_capacity() {
        let mut t = Tensor::zeros(&[8, 4]);
        let p = t.data.as_ptr();
        t.resize_batch(3, &[4]);
        assert_eq!(t.shape(), &[3, 4]);
        t.resize_batch(8, &[4]);
        assert_eq!(t.data.as_ptr(), p);
    }
}
