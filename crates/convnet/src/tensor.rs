//! `Tensor`: a shape and contiguous f32 values in row-major order, batch axis first (NHWC),
//! stored in an [`AlignedVec`].

use crate::error::{Error, Result};

/// An n-dimensional f32 array in row-major (C) order; axis 0 is the batch.
///
/// Tensors the engine allocates start on a 64-byte boundary, so that the kernels' vector
/// loads and stores never straddle two cache lines; a tensor made from a `Vec` keeps that
/// `Vec` as it is.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Tensor {
    shape: Vec<usize>,
    data: AlignedVec,
}

/// A growable f32 buffer whose values start on a 64-byte boundary (a cache line, one 512-bit
/// vector), so that whole-vector loads and stores never straddle two lines. Resizing works as
/// `Vec::resize` does (values kept, new ones zero). One made from a `Vec` keeps that `Vec`, as
/// it is, until it has to grow.
#[derive(Clone, Debug, Default)]
pub struct AlignedVec {
    buf: Vec<f32>,
    off: usize,
    len: usize,
}

/// Extra values allocated so that a 64-byte boundary falls within reach of the start.
const SLACK: usize = 15;

impl AlignedVec {
    /// Wraps `v` without copying it (aligned or not).
    pub fn from_vec(v: Vec<f32>) -> Self {
        AlignedVec { len: v.len(), buf: v, off: 0 }
    }

    /// Makes the buffer `len` values long, aligned: values kept, new ones zero. Allocates only
    /// when the buffer must grow (or was not aligned).
    pub fn resize(&mut self, len: usize) -> &mut [f32] {
        let aligned = (self.buf.as_ptr() as usize + self.off * 4).is_multiple_of(64);
        if aligned && self.off + len <= self.buf.len() {
            if len > self.len {
                self.buf[self.off + self.len..self.off + len].fill(0.0);
            }
        } else {
            let mut buf = vec![0.0; len + SLACK];
            let off = buf.as_ptr().align_offset(64).min(SLACK);
            let keep = self.len.min(len);
            buf[off..off + keep].copy_from_slice(&self.buf[self.off..self.off + keep]);
            (self.buf, self.off) = (buf, off);
        }
        self.len = len;
        self.as_mut_slice()
    }

    /// The values.
    pub fn as_slice(&self) -> &[f32] {
        &self.buf[self.off..self.off + self.len]
    }

    /// The values, mutable.
    pub fn as_mut_slice(&mut self) -> &mut [f32] {
        &mut self.buf[self.off..self.off + self.len]
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the buffer holds no values.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The values as a `Vec`, without a copy when the buffer is one that starts at its front.
    pub fn into_vec(mut self) -> Vec<f32> {
        if self.off == 0 {
            self.buf.truncate(self.len);
            self.buf
        } else {
            self.as_slice().to_vec()
        }
    }
}

impl PartialEq for AlignedVec {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Tensor {
    /// A tensor of zeros with the given shape.
    pub fn zeros(shape: &[usize]) -> Self {
        let mut t = Tensor { shape: shape.to_vec(), ..Tensor::default() };
        t.data.resize(shape.iter().product());
        t
    }

    /// Wraps `data` with `shape`; fails if the element counts differ.
    pub fn from_vec(shape: &[usize], data: Vec<f32>) -> Result<Self> {
        let n: usize = shape.iter().product();
        if n != data.len() {
            return Err(Error::shape(format!("shape {:?} holds {} values but {} were given", shape, n, data.len())));
        }
        Ok(Tensor { shape: shape.to_vec(), data: AlignedVec::from_vec(data) })
    }

    /// The shape, batch axis first.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// All values in row-major order.
    pub fn data(&self) -> &[f32] {
        self.data.as_slice()
    }

    /// All values in row-major order, mutable.
    pub fn data_mut(&mut self) -> &mut [f32] {
        self.data.as_mut_slice()
    }

    /// Consumes the tensor and returns its values.
    pub fn into_vec(self) -> Vec<f32> {
        self.data.into_vec()
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
        &self.data()[i * n..(i + 1) * n]
    }

    /// The same values under a new shape with the same number of elements.
    pub fn reshape(mut self, shape: &[usize]) -> Result<Self> {
        let n: usize = shape.iter().product();
        if n != self.len() {
            return Err(Error::shape(format!(
                "cannot reshape {:?} ({} values) to {:?} ({} values)",
                self.shape,
                self.len(),
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
        self.data.resize(batch * per);
    }

    /// Copies samples `start..end` into a new tensor.
    pub fn slice_batch(&self, start: usize, end: usize) -> Tensor {
        let n = self.sample_len();
        let mut shape = self.shape.clone();
        shape[0] = end - start;
        let mut data = AlignedVec::default();
        data.resize((end - start) * n).copy_from_slice(&self.data()[start * n..end * n]);
        Tensor { shape, data }
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
        let src = self.data();
        for (dst, &i) in out.data_mut().chunks_exact_mut(n.max(1)).zip(indices) {
            dst.copy_from_slice(&src[i * n..(i + 1) * n]);
        }
    }

    /// Index of the largest value of each sample (first one on ties).
    pub fn argmax_rows(&self) -> Vec<usize> {
        let n = self.sample_len().max(1);
        self.data().chunks_exact(n).map(argmax).collect()
    }

    /// Multiplies every value by `factor`.
    pub fn scale(mut self, factor: f32) -> Tensor {
        self.data_mut().iter_mut().for_each(|v| *v *= factor);
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
        let p = t.data().as_ptr();
        assert_eq!(p as usize % 64, 0, "engine tensors start on a cache line");
        t.data_mut().fill(7.0);
        t.resize_batch(3, &[4]);
        assert_eq!(t.shape(), &[3, 4]);
        assert_eq!(t.len(), 12);
        t.resize_batch(8, &[4]);
        assert_eq!(t.data().as_ptr(), p);
        // Kept values stay, regrown ones are zero, as with `Vec::resize`.
        assert!(t.data()[..12].iter().all(|&v| v == 7.0));
        assert!(t.data()[12..].iter().all(|&v| v == 0.0));
        let mut u = Tensor::from_vec(&[2, 2], vec![1.0, 2.0, 3.0, 4.0]).unwrap();
        u.resize_batch(3, &[2]);
        assert_eq!(u.data(), &[1.0, 2.0, 3.0, 4.0, 0.0, 0.0]);
        assert_eq!(u.data().as_ptr() as usize % 64, 0);
        assert_eq!(u.clone().into_vec(), vec![1.0, 2.0, 3.0, 4.0, 0.0, 0.0]);
        assert_eq!(Tensor::from_vec(&[1, 2], vec![5.0, 6.0]).unwrap().into_vec(), vec![5.0, 6.0]);
    }
}
