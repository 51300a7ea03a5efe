//! Threads for the engine: batch chunks spread over rayon's workers with a static schedule, so
//! the same inputs on the same machine always give the same sums in the same order.

use rayon::prelude::*;
use std::marker::PhantomData;
use std::ops::Range;

/// Number of worker threads the engine uses (rayon's pool size).
pub fn workers() -> usize {
    rayon::current_num_threads().max(1)
}

/// Runs `f(p)` for every `p` in `0..parts`, in parallel when `parts > 1`.
pub fn run(parts: usize, f: impl Fn(usize) + Sync + Send) {
    match parts {
        0 => {}
        1 => f(0),
        _ => (0..parts).into_par_iter().for_each(f),
    }
}

/// Splits `0..n` into chunks of at most `max_chunk` items, with a chunk count that is a multiple
/// of `workers` so the static schedule stays balanced. Returns the chunk length.
pub fn chunk_len(n: usize, workers: usize, max_chunk: usize) -> usize {
    if n == 0 {
        return 1;
    }
    let workers = workers.max(1);
    let mut chunks = n.div_ceil(max_chunk.max(1)).max(workers.min(n));
    chunks = chunks.div_ceil(workers) * workers;
    n.div_ceil(chunks.min(n)).max(1)
}

/// Runs `f(state, chunk)` over `0..n` in chunks of `chunk` items. Worker `w` owns `states[w]`
/// and takes chunks `w, w + W, w + 2W, …` in order, where `W = states.len()`: the assignment
/// depends only on `n`, `chunk` and `W`, never on timing.
pub fn for_chunks<S: Send>(n: usize, chunk: usize, states: &mut [S], f: impl Fn(&mut S, Range<usize>) + Sync + Send) {
    let chunk = chunk.max(1);
    let nchunks = n.div_ceil(chunk);
    let w = states.len().min(nchunks);
    let body = |wi: usize, s: &mut S| {
        let mut c = wi;
        while c < nchunks {
            f(s, c * chunk..((c + 1) * chunk).min(n));
            c += w;
        }
    };
    if w <= 1 {
        if let Some(s) = states.first_mut() {
            body(0, s);
        }
        return;
    }
    states[..w].par_iter_mut().enumerate().for_each(|(wi, s)| body(wi, s));
}

/// A mutable slice shared between threads that write disjoint parts of it.
pub struct SharedMut<'a, T> {
    ptr: *mut T,
    len: usize,
    _borrow: PhantomData<&'a mut [T]>,
}

// SAFETY: SharedMut only hands out sub-slices through `unsafe` methods whose callers promise
// that concurrently used ranges are disjoint; T itself must be Send.
unsafe impl<T: Send> Send for SharedMut<'_, T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for SharedMut<'_, T> {}

impl<'a, T> SharedMut<'a, T> {
    /// Wraps a unique borrow for shared, disjoint writing.
    pub fn new(slice: &'a mut [T]) -> Self {
        SharedMut { ptr: slice.as_mut_ptr(), len: slice.len(), _borrow: PhantomData }
    }

    /// The base pointer.
    pub fn ptr(&self) -> *mut T {
        self.ptr
    }

    /// The sub-slice `range`.
    ///
    /// # Safety
    /// No two threads may hold overlapping ranges at the same time.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn slice(&self, range: Range<usize>) -> &'a mut [T] {
        assert!(range.start <= range.end && range.end <= self.len);
        // SAFETY: in bounds (checked); disjointness is the caller's promise.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(range.start), range.len()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_everything_once_in_a_fixed_schedule() {
        for n in [1, 5, 128, 1000] {
            for workers in [1, 2, 3] {
                let chunk = chunk_len(n, workers, 7);
                assert!(chunk >= 1 && chunk <= 7.max(n.div_ceil(workers)));
                let mut seen: Vec<Vec<Range<usize>>> = vec![Vec::new(); workers];
                let log = std::sync::Mutex::new(Vec::new());
                for_chunks(n, chunk, &mut seen, |s, r| {
                    s.push(r.clone());
                    log.lock().unwrap().push(r);
                });
                let mut all: Vec<usize> = log.into_inner().unwrap().into_iter().flatten().collect();
                all.sort();
                assert_eq!(all, (0..n).collect::<Vec<_>>());
                // Worker w got chunks w, w+W, ... in increasing order.
                for ranges in &seen {
                    assert!(ranges.windows(2).all(|p| p[0].start < p[1].start));
                }
            }
        }
    }
}
